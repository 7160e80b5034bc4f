/**
 * podway's one logger (pino): JSON lines on stderr for log shippers, plain human lines when stderr
 * is a terminal. Every line carries `node` (and `worker` in a forwarding thread); a message that
 * names a resource also carries it as a field (`workload`, `interface`, `port`, `neighbor`,
 * `datastore`, ...), so a shipper can filter without parsing the text. Nothing logs per packet.
 *
 * The level is set at start (--log-level, $LOG_LEVEL or Felix's $FELIX_LOGSEVERITYSCREEN) and at
 * run time over the control socket (`podway log-level debug`).
 */
import type { Logger as PinoLogger } from 'pino';
import { isatty } from 'node:tty';

export type Fields = Record<string, unknown>;

/** What podway's modules log through: a message, and the resources it names as fields. */
export interface Log {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger whose lines all carry `fields` too. */
  child(fields: Fields): Log;
  level: LogLevel;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Felix's severities (Debug, Info, Warning, Error, Fatal, Panic) and pino's names, any case. */
export function parseLogLevel(text: string, where: string): LogLevel {
  const t = text.trim().toLowerCase();
  const alias: Record<string, LogLevel> = { warning: 'warn', panic: 'fatal', none: 'silent' };
  const level = alias[t] ?? t;
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new Error(`${where}: unknown log level ${JSON.stringify(text)} (one of ${LOG_LEVELS.join(', ')}; Felix's Warning and Panic too)`);
}

/** The starting level: the flag, else $LOG_LEVEL, else $FELIX_LOGSEVERITYSCREEN, else info. */
export function startLevel(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): LogLevel {
  if (flag) return parseLogLevel(flag, '--log-level');
  if (env.LOG_LEVEL) return parseLogLevel(env.LOG_LEVEL, '$LOG_LEVEL');
  if (env.FELIX_LOGSEVERITYSCREEN) return parseLogLevel(env.FELIX_LOGSEVERITYSCREEN, '$FELIX_LOGSEVERITYSCREEN');
  return 'info';
}

/** One JSON log line as a person reads it: `time LEVEL message key=value ...`. */
export function humanLine(json: string): string {
  let o: Fields;
  try {
    o = JSON.parse(json) as Fields;
  } catch {
    return json;
  }
  const { time, level, msg, node, worker, pid: _pid, hostname: _host, ...rest } = o;
  const who = worker !== undefined ? `${String(node)}/w${String(worker)}` : String(node ?? '');
  const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`);
  const t = typeof time === 'string' ? time.slice(11, 23) : String(time ?? '');
  return [t, String(level ?? '').toUpperCase().padEnd(5), who ? `[${who}]` : '', String(msg ?? ''), ...extra].filter(Boolean).join(' ') + '\n';
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Fields on every line (node, worker). */
  base?: Fields;
  /** Human lines instead of JSON (default: when stderr is a terminal). */
  human?: boolean;
  /** Where lines go (default stderr, written synchronously so nothing is lost at exit). */
  write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions = {}): Log {
  // pino loads with the first logger: a command that only parses a level (\`podway log-level\`,
  // every CLI start through main.ts) does not pay for it.
  const pino = require('pino') as typeof import('pino');
  const human = opts.human ?? isatty(2);
  // Synchronous: nothing is lost at exit; a full pipe (EAGAIN) is waited on (one line: once a line
  // timed out, lines are dropped until the pipe takes one again); a stderr that is gone loses its
  // lines instead of ending podway; lost lines are counted and said (fdLines).
  const dest: { write(s: string): unknown } = opts.write
    ? { write: opts.write }
    : fdLines(2, human ? { lostLine: (n) => humanLine(lostLinesLine(n)) } : {});
  const stream = human ? { write: (s: string) => void dest.write(humanLine(s)) } : dest;
  const p = pino(
    {
      level: opts.level ?? 'info',
      // The base fields are merged with each line's own (wrap): given both ways (run's `node`, and
      // a line that names its node too), pino would write the key twice ("node":"n1","node":"n1").
      base: {},
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  return wrap(p, opts.base && Object.keys(opts.base).length > 0 ? opts.base : undefined);
}

/** How long a line waits on a full pipe (EAGAIN) before it is dropped: 50 tries, 100 ms apart. */
const FULL_PIPE_TRIES = 50;
const FULL_PIPE_WAIT_MS = 100;

/** Log lines this thread's fdLines writers dropped (timed out on a stuck pipe, or a destination
 * gone), since the process (or thread: each worker_thread loads its own copy) started. */
let linesDropped = 0;

/** Lines this thread's log lost so far (podway_log_lines_dropped_total: the main thread's plus the
 * forwarding workers', each read in its own thread; `podway status` says it when not 0). */
export function logLinesDropped(): number {
  return linesDropped;
}

/** The line that says how many lines were lost before it (JSON, as the logger's own lines). */
export function lostLinesLine(n: number): string {
  return `${JSON.stringify({ level: 'warn', time: new Date().toISOString(), msg: `${n} log line${n === 1 ? '' : 's'} lost: the log output was full or gone`, lost: n })}\n`;
}

/**
 * Lines written to `fd` synchronously (each whole before the call returns, as pino's sonic-boom
 * did with sync: true). A full pipe (EAGAIN) is waited on, at most FULL_PIPE_TRIES x
 * FULL_PIPE_WAIT_MS, for one line: after a line timed out, later lines are dropped at their first
 * EAGAIN without waiting, until a write goes through again (a reader that is stuck would otherwise
 * stall the forwarding thread 5 s per log line). A destination that is gone (EIO: the terminal of
 * a `podway run ... &` was closed; EPIPE: the reader of the pipe went; any other write error)
 * drops the line. Every dropped line is counted in `lost` (and the thread's logLinesDropped), and the next line that is written is
 * preceded by one saying how many were lost since the last one written (`lostLine`); a line
 * dropped after part of it went out is ended with '\n' before anything else is written, so the
 * next line is not glued to it. sonic-boom emitted these as an 'error' event nobody could handle
 * well (unhandled: podway ended at its next log line after the terminal hung up; handled: every
 * later line was kept in its buffer, without bound): podway forwards on without its log instead.
 */
export function fdLines(
  fd: number,
  opts: { lostLine?: (n: number) => string } = {},
): { write(s: string): void; readonly lost: number } {
  const { writeSync } = require('node:fs') as typeof import('node:fs');
  const lostLine = opts.lostLine ?? lostLinesLine;
  let lost = 0;
  /** Lines lost since the last line written (said before the next one). */
  let unsaid = 0;
  /** A line timed out on a full pipe: later lines do not wait until a write goes through. */
  let stuck = false;
  /** The last byte written ended a line (false: a dropped line was cut, '\n' goes first). */
  let atLineStart = true;
  const waitCell = new Int32Array(new SharedArrayBuffer(4));
  return {
    write(s: string): void {
      const head = (atLineStart ? '' : '\n') + (unsaid > 0 ? lostLine(unsaid) : '');
      const headBytes = Buffer.byteLength(head, 'utf8');
      let buf = Buffer.from(head + s, 'utf8');
      let sent = 0;
      let tries = 0;
      while (buf.length > 0) {
        let n = 0;
        let code: string | undefined;
        try {
          n = writeSync(fd, buf);
        } catch (e) {
          code = (e as NodeJS.ErrnoException).code ?? 'EIO';
        }
        if (n > 0) {
          stuck = false;
          atLineStart = buf[n - 1] === 0x0a;
          sent += n;
          if (headBytes > 0 && sent >= headBytes) unsaid = 0;
          buf = buf.subarray(n);
          continue;
        }
        const full = code === undefined || code === 'EAGAIN' || code === 'EBUSY';
        if (full && !stuck && ++tries < FULL_PIPE_TRIES) {
          Atomics.wait(waitCell, 0, 0, FULL_PIPE_WAIT_MS);
          continue;
        }
        if (full) stuck = true;
        lost++;
        linesDropped++;
        unsaid++;
        return;
      }
      unsaid = 0;
    },
    get lost() {
      return lost;
    },
  };
}

/** Children bind fields on the same pino logger (not pino's child loggers), so one level change
 * at run time reaches every module's logger. */
function wrap(p: PinoLogger, bound?: Fields): Log {
  const f = (fields?: Fields) => (bound ? { ...bound, ...fields } : fields);
  return {
    debug: (msg, fields) => void (p.isLevelEnabled('debug') && p.debug(f(fields) ?? {}, msg)),
    info: (msg, fields) => void (p.isLevelEnabled('info') && p.info(f(fields) ?? {}, msg)),
    warn: (msg, fields) => p.warn(f(fields) ?? {}, msg),
    error: (msg, fields) => p.error(f(fields) ?? {}, msg),
    child: (fields) => wrap(p, { ...bound, ...fields }),
    get level() {
      return p.level as LogLevel;
    },
    set level(l: LogLevel) {
      p.level = l;
    },
  };
}

/** For modules that log as (level, message), e.g. the BGP speaker: through `log`. */
export function levelLogger(log: Log): (level: 'debug' | 'info' | 'warn' | 'error', msg: string) => void {
  return (level, msg) => log[level](msg);
}

/** A logger that drops everything (tests, library use without a logger). Its lines would go
 * nowhere whatever its level, so it needs no pino (which then loads only with a real logger). */
export const silentLog: Log = dropAll({ level: 'silent' });

function dropAll(state: { level: LogLevel }): Log {
  const drop = () => {};
  return {
    debug: drop, info: drop, warn: drop, error: drop,
    child: () => dropAll(state),
    get level() {
      return state.level;
    },
    set level(l: LogLevel) {
      state.level = l;
    },
  };
}
