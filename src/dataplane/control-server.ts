/**
 * The local control socket of a running podway: newline-delimited JSON requests
 * ({"cmd":"status"|"routes"|"endpoints"|"counters"|"trace", ...}) answered with one JSON line.
 */
import * as net from 'node:net';
import { existsSync, unlinkSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import type { Engine } from './engine';
import { parseTraceFilter, describeFilter } from './trace';

export function defaultControlPath(node: string): string {
  return `/run/podway/${node}.sock`;
}

type Counters = ReturnType<Engine['counters']>;

/** Counters of the other forwarding workers (podway run --workers N), merged into `counters`. */
export type WorkerCounters = () => Promise<Counters[]>;

export function startControlServer(engine: Engine, sockPath: string, workerCounters: WorkerCounters = async () => []): net.Server {
  mkdirSync(path.dirname(sockPath), { recursive: true });
  const server = net.createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => {});
    conn.on('data', (d) => {
      buf += d;
      if (buf.length > 65536) return conn.destroy();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        handle(engine, line, workerCounters).then(
          (res) => conn.write(JSON.stringify({ ok: true, result: res }) + '\n'),
          (err) => conn.write(JSON.stringify({ ok: false, error: (err as Error).message }) + '\n'),
        );
      }
    });
  });
  if (!existsSync(sockPath)) {
    server.listen(sockPath);
    return server;
  }
  // A socket file is there: a stale one from a crashed run (nobody accepts: remove it and bind), or
  // a live podway's (it accepts: fail, never unlink a running instance's socket from under it).
  const probe = net.createConnection(sockPath);
  probe.once('connect', () => {
    probe.destroy();
    server.emit('error', new Error('in use by a running podway (stop it first, or pass another --control path)'));
  });
  probe.once('error', () => {
    try {
      unlinkSync(sockPath);
    } catch {
      /* already gone */
    }
    server.listen(sockPath);
  });
  return server;
}

async function handle(engine: Engine, line: string, workerCounters: WorkerCounters): Promise<unknown> {
  let req: { cmd?: string; filter?: string[]; count?: number; timeoutMs?: number };
  try {
    req = JSON.parse(line);
  } catch {
    throw new Error('request is not JSON');
  }
  switch (req.cmd) {
    case 'status':
      return engine.status();
    case 'routes':
      return engine.routes();
    case 'endpoints':
      return engine.endpointList();
    case 'counters':
      return mergeCounters(engine.counters(), await workerCounters());
    case 'trace': {
      const f = parseTraceFilter(req.filter ?? []);
      const records = await engine.trace(f, req.count ?? 1, Math.min(req.timeoutMs ?? 10_000, 120_000));
      return { filter: describeFilter(f), records };
    }
    default:
      throw new Error(`unknown command ${JSON.stringify(req.cmd)}`);
  }
}

/** Drop reasons add up across workers; each worker's ports are listed with its index. */
export function mergeCounters(main: Counters, others: Counters[]): Counters {
  if (others.length === 0) return main;
  const reasons: Record<string, number> = { ...main.reasons };
  const ports = main.ports.map((p) => ({ ...p, port: `${p.port as string} [w0]` }));
  others.forEach((c, k) => {
    for (const [r, n] of Object.entries(c.reasons)) reasons[r] = (reasons[r] ?? 0) + n;
    for (const p of c.ports) ports.push({ ...p, port: `${p.port as string} [w${k + 1}]` });
  });
  return { reasons, ports };
}

/** Client side: one request, one answer (bounded by a timeout). */
export function controlRequest(sockPath: string, req: object, timeoutMs = 15_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sockPath);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer from ${sockPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      c.end();
      const res = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
      if (res.ok) resolve(res.result);
      else reject(new Error(res.error));
    });
    c.on('error', (e) => {
      clearTimeout(timer);
      const code = (e as NodeJS.ErrnoException).code;
      reject(new Error(code === 'ENOENT' || code === 'ECONNREFUSED' ? `podway is not running (no control socket at ${sockPath})` : e.message));
    });
  });
}
