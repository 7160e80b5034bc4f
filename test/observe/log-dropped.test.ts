// Log lines lost on a stuck stderr are counted where operators look: the counter
// podway_log_lines_dropped_total (with its HELP text) and a `podway status` line when not 0.
// A real stuck pipe, as observe/log.test: a child whose stderr (fd 2, the logger's) is a FIFO
// filled up and never read logs through the real logger (createLogger: pino over fdLines); the
// first line waits for the pipe (5 s), the next ones are dropped at once. The child then scrapes
// the real collector with the snapshot podway run's main thread serves (a forwarding worker's
// lost lines summed with its own: mergeSnapshots, withLogLinesDropped) and formats the status line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseMetrics, valueOf, family } from './prom-text';
import { logDroppedLine } from '../../src/cli/format';

const SRC = path.join(__dirname, '../../src');
const CHILD = `
const src = process.argv[1];
const { createLogger, logLinesDropped } = require(src + '/observe/log');
const { PodwayMetrics } = require(src + '/observe/metrics');
const { DataplaneCollector } = require(src + '/observe/dataplane-metrics');
const { mergeSnapshots, withLogLinesDropped } = require(src + '/observe/snapshot');
const { logDroppedLine } = require(src + '/cli/format');
const before = logLinesDropped();
const log = createLogger({ human: false, base: { node: 'n1' } });
for (let i = 0; i < 201; i++) log.warn('line ' + i);
const worker = { ports: [], counters: [], counterBytes: [], rxBatches: [], txBatches: [], logLinesDropped: 3 };
const metrics = new PodwayMetrics({ processMetrics: false });
metrics.add(new DataplaneCollector(async () => withLogLinesDropped(mergeSnapshots([worker]))));
metrics.scrape().then((text) => {
  process.stdout.write(JSON.stringify({ before, dropped: logLinesDropped(), text, status: logDroppedLine(withLogLinesDropped(mergeSnapshots([worker])).logLinesDropped) }));
});
`;

test('a stuck stderr: every line lost counted in podway_log_lines_dropped_total (main thread plus workers) and said by podway status', () => {
  const dir = mkdtempSync(path.join(tmpdir(), `podway-log-dropped-${process.pid}-`));
  let r = -1;
  let w = -1;
  try {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    r = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    w = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    const fill = Buffer.alloc(65536, 0x2e);
    for (let i = 0; i < 1000; i++) {
      try {
        writeSync(w, fill);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw e;
      }
    }
    // the reader (r, held open here) never reads: the child's every log line meets a full pipe
    const out = execFileSync(process.execPath, ['-e', CHILD, SRC], { stdio: ['ignore', 'pipe', w], timeout: 30_000, killSignal: 'SIGKILL', encoding: 'utf8' });
    const c = JSON.parse(out) as { before: number; dropped: number; text: string; status: string | null };
    assert.is(c.before, 0);
    assert.is(c.dropped, 201, 'the first line timed out, the 200 after it dropped at once: all counted');
    const m = parseMetrics(c.text);
    const f = family(m, 'podway_log_lines_dropped_total');
    assert.is(f.type, 'COUNTER');
    assert.ok(f.help.length > 40, `HELP text: ${f.help}`);
    assert.is(valueOf(m, 'podway_log_lines_dropped_total'), 204, 'the main thread\'s 201 and a worker\'s 3');
    assert.is(c.status, 'log: 204 lines dropped (podway\'s stderr was full and not read, or gone; podway_log_lines_dropped_total)');
  } finally {
    if (w >= 0) closeSync(w);
    if (r >= 0) closeSync(r);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('podway status says nothing of lost log lines while there are none', () => {
  assert.is(logDroppedLine(0), null);
  assert.is(logDroppedLine(undefined), null);
  assert.is(logDroppedLine(1), 'log: 1 line dropped (podway\'s stderr was full and not read, or gone; podway_log_lines_dropped_total)');
});

test.run();
