// The logger: JSON lines a shipper can parse (level names, ISO time, node and resource fields),
// level changes at run time reaching loggers made before the change, human lines for terminals,
// and the level and metrics-port settings from flags and Felix's environment.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openSync, closeSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createLogger, fdLines, humanLine, levelLogger, parseLogLevel, startLevel } from '../../src/observe/log';
import { metricsPortOption } from '../../src/cli/main';

function capture(level: 'info' | 'debug' = 'info') {
  const lines: string[] = [];
  const log = createLogger({ level, base: { node: 'node1' }, human: false, write: (s) => lines.push(...s.split('\n').filter(Boolean)) });
  return { log, lines };
}

test('JSON lines: level name, ISO time, node, message and the resource as a field', () => {
  const { log, lines } = capture();
  log.child({ datastore: 'etcd:http://10.0.0.5:2379' }).warn('datastore unreachable', { attempt: 2 });
  log.info('endpoint default/web: attached caliA', { workload: 'default/web', interface: 'caliA' });
  log.debug('not shown at info');
  assert.is(lines.length, 2);
  const a = JSON.parse(lines[0]);
  assert.is(a.level, 'warn');
  assert.is(a.node, 'node1');
  assert.is(a.datastore, 'etcd:http://10.0.0.5:2379');
  assert.is(a.attempt, 2);
  assert.is(a.msg, 'datastore unreachable');
  assert.ok(Number.isFinite(Date.parse(a.time)) && a.time.endsWith('Z'), a.time);
  const b = JSON.parse(lines[1]);
  assert.equal([b.level, b.workload, b.interface], ['info', 'default/web', 'caliA']);
});

test('a field the logger carries already (run\'s node) given again by a line (the liveness holder\'s) is written once', () => {
  const { log, lines } = capture();
  log.warn('node node1: liveness key not renewed', { node: 'node1' });
  log.child({ node: 'node1', component: 'x' }).info('again');
  assert.is(lines.length, 2);
  for (const l of lines) assert.is(l.match(/"node":/g)?.length, 1, l);
  assert.ok(lines[0]!.startsWith('{"level":"warn","time":"'), lines[0]);
  assert.match(lines[0]!, /,"node":"node1","msg":"node node1: liveness key not renewed"\}$/);
});

test('fdLines: whole lines to the fd; a destination that fails (here /dev/full: ENOSPC, as EIO from a closed terminal) drops and counts the line instead of throwing', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-fdlines-'));
  try {
    const file = path.join(dir, 'out.log');
    const fd = openSync(file, 'w');
    const ok = fdLines(fd);
    ok.write('first line\n');
    ok.write('zweite Zeile: ü\n');
    closeSync(fd);
    assert.is(readFileSync(file, 'utf8'), 'first line\nzweite Zeile: ü\n');
    assert.is(ok.lost, 0);
    const full = openSync('/dev/full', 'w');
    try {
      const gone = fdLines(full);
      for (let i = 0; i < 1000; i++) gone.write(`line ${i}\n`);
      assert.is(gone.lost, 1000, 'every line counted as lost, none kept');
      // a logger on such a destination logs on without an exception
      const log = createLogger({ human: false, write: (s) => gone.write(s) });
      log.warn('still alive');
      assert.is(gone.lost, 1001);
    } finally {
      closeSync(full);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Runs in a child (the test's own guard: killed after 20 s), on a FIFO whose reader never reads:
// the pipe is filled, one page freed, then a line longer than the page (part of it goes out) and
// 999 short ones. Only the first line may wait for the pipe; after it, lines are dropped at once.
const STUCK_READER = `
const fs = require('node:fs');
const { fdLines } = require(process.argv[1]);
const fifo = process.argv[2];
const r = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
const w = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
const fill = Buffer.alloc(65536, 0x2e);
for (let i = 0; i < 1000; i++) {
  try { fs.writeSync(w, fill); } catch (e) { if (e.code === 'EAGAIN') break; throw e; }
}
const freed = fs.readSync(r, Buffer.alloc(4096));
const out = fdLines(w, { lostLine: (n) => 'LOST ' + n + '\\n' });
out.write('x'.repeat(10000) + '\\n');
for (let i = 0; i < 999; i++) out.write('line ' + i + '\\n');
const lost = out.lost;
const drain = () => {
  const parts = [];
  const b = Buffer.alloc(65536);
  for (let i = 0; i < 1000; i++) {
    let n = 0;
    try { n = fs.readSync(r, b); } catch (e) { if (e.code === 'EAGAIN') break; throw e; }
    if (n === 0) break;
    parts.push(Buffer.from(b.subarray(0, n)));
  }
  return Buffer.concat(parts).toString('latin1');
};
let text = drain();
out.write('after\\n');
text += drain();
process.stdout.write(JSON.stringify({ freed, lost, lostAfter: out.lost, text: text.replace(/^\\.+/, '') }));
`;

test('fdLines on a pipe whose reader is stuck (O_NONBLOCK, full): one line waits, the next 999 are dropped at once and counted; the cut line is ended and the loss said in the next line written', () => {
  const dir = mkdtempSync(path.join(tmpdir(), `podway-fdlines-stuck-${process.pid}-`));
  try {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // Without the fix every line waits its 5 s: 1000 lines would take 83 minutes, so the guard
    // (SIGKILL after 20 s) ends the child and execFileSync throws.
    const out = execFileSync(process.execPath, ['-e', STUCK_READER, path.join(__dirname, '../../src/observe/log'), fifo], {
      timeout: 20_000,
      killSignal: 'SIGKILL',
      encoding: 'utf8',
    });
    const r = JSON.parse(out) as { freed: number; lost: number; lostAfter: number; text: string };
    assert.is(r.freed, 4096);
    assert.is(r.lost, 1000, 'every line counted as lost');
    assert.is(r.lostAfter, 1000, 'the line after the reader came back is written');
    // the part of the long line that went out, ended by '\n'; then the count; then the new line
    assert.match(r.text, /^x+\nLOST 1000\nafter\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a level change reaches child loggers made before it', () => {
  const { log, lines } = capture();
  const child = log.child({ component: 'metrics' });
  child.debug('hidden');
  assert.is(lines.length, 0);
  log.level = 'debug';
  child.debug('shown');
  assert.is(JSON.parse(lines[0]).msg, 'shown');
  assert.is(JSON.parse(lines[0]).component, 'metrics');
  log.level = 'error';
  child.warn('hidden too');
  log.error('kept');
  assert.is(lines.length, 2);
  assert.is(log.level, 'error');
});

test('(level, message) loggers (the BGP speaker) go through the same logger and level', () => {
  const { log, lines } = capture();
  const say = levelLogger(log.child({ component: 'bgp' }));
  say('info', 'peer 10.0.0.2 established');
  say('debug', 'keepalive');
  assert.is(lines.length, 1);
  assert.equal([JSON.parse(lines[0]).level, JSON.parse(lines[0]).component], ['info', 'bgp']);
});

test('human lines for a terminal: time, LEVEL, node/worker, message, fields', () => {
  const json = JSON.stringify({ level: 'warn', time: '2026-12-04T20:01:02.345Z', node: 'node1', worker: 1, msg: 'port caliA: send failed', port: 'caliA', errno: 'ENXIO' });
  assert.is(humanLine(json), '20:01:02.345 WARN  [node1/w1] port caliA: send failed port=caliA errno=ENXIO\n');
  assert.is(humanLine('not json\n'), 'not json\n');
});

test('levels from flags and environment (Felix names too); bad ones named', () => {
  assert.is(parseLogLevel('Warning', '$FELIX_LOGSEVERITYSCREEN'), 'warn');
  assert.is(parseLogLevel('DEBUG', 'x'), 'debug');
  assert.is(parseLogLevel('Panic', 'x'), 'fatal');
  assert.throws(() => parseLogLevel('loud', '--log-level'), /--log-level: unknown log level "loud"/);
  assert.is(startLevel(undefined, {}), 'info');
  assert.is(startLevel(undefined, { FELIX_LOGSEVERITYSCREEN: 'Error' }), 'error');
  assert.is(startLevel(undefined, { LOG_LEVEL: 'debug', FELIX_LOGSEVERITYSCREEN: 'Error' }), 'debug');
  assert.is(startLevel('warn', { LOG_LEVEL: 'debug' }), 'warn');
  assert.throws(() => startLevel(undefined, { LOG_LEVEL: 'verbose' }), /\$LOG_LEVEL/);
});

test('metrics port: the flag, else Felix\'s FELIX_PROMETHEUSMETRICS* (9091 by default), else off', () => {
  assert.is(metricsPortOption(undefined, {}), undefined);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSPORT: '9200' }), undefined, 'the port alone does not enable it');
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'true' }), 9091);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'True', FELIX_PROMETHEUSMETRICSPORT: '9200' }), 9200);
  assert.is(metricsPortOption('9300', { FELIX_PROMETHEUSMETRICSENABLED: 'true' }), 9300);
  assert.throws(() => metricsPortOption('70000'), /--metrics-port: "70000" is not a port/);
  assert.throws(() => metricsPortOption('9o91'), /--metrics-port/);
  assert.throws(() => metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'true', FELIX_PROMETHEUSMETRICSPORT: 'x' }), /\$FELIX_PROMETHEUSMETRICSPORT/);
  // Felix's other boolean words; a value that is none of them is an error, not a silent "off".
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'yes' }), 9091);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: '1' }), 9091);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'false' }), undefined);
  assert.is(metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'No' }), undefined);
  assert.throws(() => metricsPortOption(undefined, { FELIX_PROMETHEUSMETRICSENABLED: 'enabled' }), /\$FELIX_PROMETHEUSMETRICSENABLED: "enabled" is not a boolean/);
});

test.run();
