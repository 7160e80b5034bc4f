/**
 * A forwarding thread of `podway run --workers 2` alive but late to answer the main thread (its
 * answer past the 2 s wait: a thread held by a long batch or apply). It is held for real: a preload
 * module handed to podway through NODE_OPTIONS (the test's, written at run time; podway reads
 * nothing for it) blocks forwarding worker 1's event loop (Atomics.wait, in 50 ms steps, at most
 * 30 s) from when a file the test writes says so until a second file appears. A UDP stream from
 * web-1 (node1) to web-2 (node2) on a source port whose flow node1 steers to worker 1 runs
 * throughout, so worker 1 counts while it is not held.
 * - while worker 1 is held, what node1 reports never goes down: worker 1's row for web-1 in
 *   `podway counters` is there with its last known counts (the answer names it late), web-1's
 *   podway_port_rx_packets_total and podway_rx_batch_size's count in /metrics are at least what
 *   they were (before: worker 1's row was missing and both sums dropped by all it had counted,
 *   which Prometheus reads as a counter reset of the whole node: a rate() spike when it answered);
 * - once released, its own answers come back (not late) and the counts move on from there.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { teardown, isRoot, logTail, udpStream, sourcePortFor, preloadEnv, workersLab, startWorkersLab, web1Sums } from './e2e-kit';
import { until } from '../helpers/until';

const PORT = 9093;
const DST_PORT = 7813;

let lab: Lab | null = null;
let ok = false;
let dir = '';
let holdFile = '';
let heldFile = '';
let releaseFile = '';

const sums = () => web1Sums(lab!, PORT, 15_000);

interface CountersAnswer { ports: { port: string; rx: number }[]; reasons: Record<string, number>; lateWorkers?: number[]; missingWorkers?: number[] }
const counters = async (): Promise<CountersAnswer> => (await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 10_000)) as CountersAnswer;
/** web-1's port's frames received by worker `w` of node1 (-1: no such row). */
const rowRx = (c: CountersAnswer, w: number) => c.ports.find((p) => p.port === `${lab!.pod('web-1').ifname} [w${w}]`)?.rx ?? -1;

/** The preload: in forwarding worker 1 (its workerData has index 1 of count), the hold file is
 * read every 50 ms; once it says 1, the thread says so (the held file) and blocks until the
 * release file exists (30 s at most). */
function preload(): string {
  return `'use strict';
const { isMainThread, workerData } = require('node:worker_threads');
if (!isMainThread && workerData && workerData.index === 1 && typeof workerData.count === 'number') {
  const fs = require('node:fs');
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const timer = setInterval(() => {
    let n = 0;
    try { n = Number(fs.readFileSync(${JSON.stringify(holdFile)}, 'utf8')); } catch { return; }
    if (!(n > 0)) return;
    fs.writeFileSync(${JSON.stringify(holdFile)}, '0');
    fs.writeFileSync(${JSON.stringify(heldFile)}, String(Date.now()));
    const end = Date.now() + 30000;
    while (!fs.existsSync(${JSON.stringify(releaseFile)}) && Date.now() < end) Atomics.wait(cell, 0, 0, 50);
  }, 50);
  timer.unref();
}
`;
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  dir = mkdtempSync(path.join(tmpdir(), `podway-worker-late-${process.pid}-`));
  holdFile = path.join(dir, 'hold');
  heldFile = path.join(dir, 'held');
  releaseFile = path.join(dir, 'release');
  const env = preloadEnv(dir, 'hold-worker.js', preload());
  lab = workersLab();
  await startWorkersLab(lab, PORT, env);
});

test.after(async () => {
  if (lab) {
    // a thread still held is let go before the stop (the stop's own wait for it is 2 s)
    if (releaseFile) writeFileSync(releaseFile, '1');
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('worker 1 late to answer: counters and metrics keep its last known counts, never dip', async () => {
  const n1 = lab!.node('node1');
  const ready = async () => ((await controlRequest(n1.control, { cmd: 'status' }, 10_000)) as { ready?: boolean }).ready === true;
  assert.ok(await until(ready, 20_000, 200), 'node1 ready');
  assert.is(lab!.ping('web-1', lab!.pod('web-2').ip, 3).loss, 0, 'the pods talk');
  const src = sourcePortFor('udp', lab!.pod('web-1').ip, lab!.pod('web-2').ip, DST_PORT, 1);
  const finish = await udpStream(lab!, 'web-1', 'web-2', 40, { rate: 200, port: DST_PORT, srcPort: src });
  // the flow is worker 1's, and both its answers (counters, snapshot) are known to the main thread
  assert.ok(await until(async () => rowRx(await counters(), 1) > 100, 10_000, 100), 'the stream reaches worker 1');
  const c0 = await counters();
  const s0 = await sums();
  assert.is(c0.lateWorkers, undefined, 'nobody late yet');
  const from = n1.log.length;
  writeFileSync(holdFile, '1');
  assert.ok(await until(() => existsSync(heldFile), 10_000, 20), 'worker 1 held');
  // held: both questions go unanswered for 2 s; the sums keep worker 1's last known counts
  const [c1, s1] = await Promise.all([counters(), sums()]);
  assert.ok(rowRx(c1, 1) >= rowRx(c0, 1), `web-1 [w1] rx ${rowRx(c0, 1)} before, ${rowRx(c1, 1)} while held (its row kept)`);
  assert.ok(s1.rx >= s0.rx, `podway_port_rx_packets_total{web-1} ${s0.rx} before, ${s1.rx} while held`);
  assert.ok(s1.batches >= s0.batches, `podway_rx_batch_size's count ${s0.batches} before, ${s1.batches} while held`);
  assert.equal(c1.lateWorkers, [1], `worker 1 named late: ${JSON.stringify({ late: c1.lateWorkers, missing: c1.missingWorkers })}`);
  assert.is(c1.missingWorkers, undefined);
  assert.ok(await until(() => n1.log.slice(from).some((l) => /worker 1 did not answer within 2 s: counted in the (counters|metrics) by its last answer/.test(l)), 5000, 50), `the warning: ${n1.log.slice(from).join('\n')}`);
  // released: its own answers again, not late, the counts on from the held ones
  writeFileSync(releaseFile, '1');
  assert.ok(await until(async () => {
    const c = await counters();
    return c.lateWorkers === undefined && rowRx(c, 1) > rowRx(c1, 1) + 20;
  }, 15_000, 200), `worker 1 answers again and counts on: ${JSON.stringify((await counters()).lateWorkers)} ${rowRx(await counters(), 1)}`);
  const s2 = await sums();
  assert.ok(s2.rx > s1.rx && s2.batches > s1.batches, `the sums move on: ${JSON.stringify({ s1, s2 })}`);
  const result = await finish();
  assert.ok(result.received > 0, 'the stream arrived');
  ok = true;
});

test.run();
