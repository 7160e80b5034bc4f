/**
 * A forwarding thread of `podway run --workers 2` dies (src/cli/worker-deaths.ts; root, network
 * namespaces). It is killed for real: a preload module handed to podway through NODE_OPTIONS (the
 * test's, written at run time; podway reads nothing for it) throws from setImmediate in forwarding
 * worker 1 only, an exception nothing catches, once per count in a file the test writes. A UDP
 * stream from web-1 (node1) to web-2 (node2) on a source port whose flow node1 steers to worker 1
 * (steer.ts steerIndex) runs throughout.
 * - each death is said (the error, `worker 1 died (uncaught exception: ...)`) and a new worker 1
 *   is started after a wait that doubles per death (0.2, 0.4, 0.8, 1.6 s); the stream's flow comes
 *   back on it (its counters move again, and the receiver's gap ends when they do, give or take
 *   the machine's own stalls of the stream); before the change the flow stayed lost and the node
 *   not ready (`worker 1 exited`) until a restart. How fast a thread starts is the machine's (its
 *   modules load on a CPU that a loaded host gives late: 5.3 s at load 40): the bounds here are
 *   for a hang, the times are printed;
 * - what node1 reports never goes down across a death (the dead thread's counts are carried:
 *   observe/retired-counts.ts): worker 1's row for web-1 in `podway counters`, web-1's
 *   podway_port_rx_packets_total and podway_rx_batch_size's count in /metrics (before: all three
 *   dropped, the new thread's counts alone, a counter reset to Prometheus);
 * - no fd, packet socket or ring mapping is left behind across the deaths: the process's counts
 *   are those it had before the first;
 * - while a new thread is awaited (the fourth death's 1.6 s) the node is not ready naming it; once
 *   back, ready; status and podway_worker_restarts_total count the restarts;
 * - the fifth death within a minute: podway stops and exits 1, saying why (a crash loop is left to
 *   the supervisor, as Felix's fatal errors are).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { teardown, isRoot, logTail, udpStream, gapIn, allowedGap, nsExec, sourcePortFor, preloadEnv, workersLab, startWorkersLab, scrapeNode1, web1Sums } from './e2e-kit';
import { until } from '../helpers/until';
import { valueOf } from '../observe/prom-text';
import { exitedAndRead } from '../helpers/proc';

const PORT = 9091;
const DST_PORT = 7811;
const PODWAY = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

let lab: Lab | null = null;
let ok = false;
let dir = '';
let killFile = '';

interface Threads { count: number; restarts: number; deathsInWindow: number; lastDeath: { worker: number; at: string; error: string } | null; down: { worker: number; restartAt: string | null }[] }
interface Status { ready?: boolean; notReady?: string[]; forwardingThreads?: Threads | null }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as Status;

async function metric(name: string): Promise<number | undefined> {
  return valueOf(await scrapeNode1(lab!, PORT, 10_000), name);
}

const sums = () => web1Sums(lab!, PORT, 10_000);

/** web-1's port's frames received by worker `w` of node1 (a dead worker's counts carried into its
 * new thread's row: observe/retired-counts.ts). */
async function podRx(w: number): Promise<number> {
  const c = (await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as { ports: { port: string; rx: number }[] };
  return c.ports.find((p) => p.port === `${lab!.pod('web-1').ifname} [w${w}]`)?.rx ?? -1;
}

/** What the podway process holds: fds, the node's packet sockets, its mappings of sockets (rings). */
function held(): { fds: number; packetSockets: number; ringMaps: number } {
  const pid = lab!.node('node1').proc!.pid!;
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const packetSockets = nsExec(lab!.node('node1').ns, ['cat', '/proc/net/packet']).trim().split('\n').length - 1;
  const ringMaps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => /socket:|packet/.test(l)).length;
  return { fds, packetSockets, ringMaps };
}

/** The preload: in forwarding worker 1 (its workerData has index 1 of count), the kill file is
 * read every 50 ms; above 0 it is counted down and an error thrown where nothing catches it. */
function preload(kills: string): string {
  return `'use strict';
const { isMainThread, workerData } = require('node:worker_threads');
if (!isMainThread && workerData && workerData.index === 1 && typeof workerData.count === 'number') {
  const fs = require('node:fs');
  const timer = setInterval(() => {
    let n = 0;
    try { n = Number(fs.readFileSync(${JSON.stringify(kills)}, 'utf8')); } catch { return; }
    if (!(n > 0)) return;
    fs.writeFileSync(${JSON.stringify(kills)}, String(n - 1));
    clearInterval(timer);
    setImmediate(() => { throw new Error('injected by the test: worker 1 fails'); });
  }, 50);
  timer.unref();
}
`;
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  dir = mkdtempSync(path.join(tmpdir(), `podway-worker-death-${process.pid}-`));
  killFile = path.join(dir, 'kills');
  const env = preloadEnv(dir, 'kill-worker.js', preload(killFile));
  lab = workersLab();
  await startWorkersLab(lab, PORT, env);
});

test.after(async () => {
  if (lab) {
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('worker 1 dies: restarted with its flows, nothing leaked; a crash loop exits 1', async () => {
  const n1 = lab!.node('node1');
  assert.ok(await until(async () => (await status()).ready === true, 20_000, 200), `ready: ${JSON.stringify(await status())}`);
  assert.is(lab!.ping('web-1', lab!.pod('web-2').ip, 3).loss, 0, 'the pods talk');
  const src = sourcePortFor('udp', lab!.pod('web-1').ip, lab!.pod('web-2').ip, DST_PORT, 1);
  // long enough to span the three deaths on a loaded host too (their restarts took 30 s at load 40)
  const finish = await udpStream(lab!, 'web-1', 'web-2', 45, { rate: 200, port: DST_PORT, srcPort: src });
  // the flow is worker 1's
  assert.ok(await until(async () => (await podRx(1)) > 100, 5000, 100), `the stream reaches worker 1: ${await podRx(1)}`);
  const before = held();
  assert.ok(before.packetSockets > 0 && before.ringMaps > 0, `the counts look at something: ${JSON.stringify(before)}`);
  const s0 = await status();
  assert.is(s0.forwardingThreads?.restarts, 0);
  assert.is(s0.forwardingThreads?.lastDeath, null);
  const windows: { t0: number; t1: number }[] = [];
  for (let k = 1; k <= 3; k++) {
    // what the node reported before the death: never less after it (a dead thread's counts are
    // carried; before, the new thread's row and every sum started again from its counts alone)
    const rxRow = await podRx(1);
    const sums0 = await sums();
    const from = n1.log.length;
    const t0 = Date.now();
    writeFileSync(killFile, '1');
    const said = await until(() => n1.log.slice(from).some((l) => /worker 1 died \(uncaught exception: injected by the test: worker 1 fails\)/.test(l)), 20_000, 20);
    assert.ok(said, `death ${k} said: ${n1.log.slice(from).join('\n')}`);
    const back = await until(() => n1.log.slice(from).some((l) => new RegExp(`worker 1 started again \\(restart ${k}\\)`).test(l)), 20_000, 20);
    assert.ok(back, `restart ${k} said: ${n1.log.slice(from).join('\n')}`);
    // the new thread takes the flow: its counters move (bounded for a flow that never comes back,
    // as before the change; not timed: 4 s here was beaten by the load, 5.3 s at load 40)
    const r1 = await podRx(1);
    assert.ok(await until(async () => (await podRx(1)) > Math.max(r1, 0) + 20, 20_000, 50), `the flow on the new worker 1 (restart ${k}): ${await podRx(1)}`);
    const t1 = Date.now();
    windows.push({ t0, t1 });
    // nothing the dead thread held is left
    assert.ok(await until(() => JSON.stringify(held()) === JSON.stringify(before), 10_000, 100), `death ${k}: held ${JSON.stringify(held())}, before ${JSON.stringify(before)}`);
    // monotonic: worker 1's row in podway counters, web-1's port in /metrics
    const rxRowAfter = await podRx(1);
    assert.ok(rxRowAfter > rxRow, `death ${k}: web-1 [w1] rx ${rxRow} before, ${rxRowAfter} after (carried)`);
    const sums1 = await sums();
    assert.ok(sums1.rx > sums0.rx, `death ${k}: podway_port_rx_packets_total{web-1} ${sums0.rx} before, ${sums1.rx} after`);
    assert.ok(sums1.batches > sums0.batches, `death ${k}: podway_rx_batch_size's count ${sums0.batches} before, ${sums1.batches} after`);
  }
  const s3 = await status();
  assert.is(s3.ready, true, JSON.stringify(s3.notReady));
  assert.is(s3.forwardingThreads?.restarts, 3);
  assert.is(s3.forwardingThreads?.deathsInWindow, 3);
  assert.is(s3.forwardingThreads?.lastDeath?.worker, 1);
  assert.match(s3.forwardingThreads?.lastDeath?.error ?? '', /uncaught exception: injected by the test/);
  assert.is(await metric('podway_worker_restarts_total'), 3);
  assert.is(await metric('podway_worker_deaths_recent'), 3);
  const text = execFileSync(process.execPath, [PODWAY, 'status', '--control', n1.control], { encoding: 'utf8', timeout: 20_000 });
  assert.match(text, /forwarding threads: restarted 3 times \(3 deaths in the last 60 s; podway exits at 5\); last died: worker 1 at \S+: uncaught exception: injected by the test: worker 1 fails/);
  // the fourth: a new thread in 1.6 s; meanwhile not ready, naming it
  writeFileSync(killFile, '1');
  assert.ok(await until(async () => ((await status()).notReady ?? []).some((r) => /worker 1 died \(uncaught exception: injected by the test: worker 1 fails\); a new one at /.test(r)), 20_000, 50), `not ready while worker 1 is down: ${JSON.stringify(await status())}`);
  const down = await status();
  assert.is(down.ready, false);
  assert.is(down.forwardingThreads?.down.length, 1);
  assert.ok(await until(async () => (await status()).ready === true, 20_000, 100), `ready again: ${JSON.stringify(await status())}`);
  assert.is((await status()).forwardingThreads?.restarts, 4);
  // the fifth within the minute: podway gives up, exit 1
  const proc = n1.proc!;
  const exited = exitedAndRead(proc).then((x) => x.code); // its last log lines read too
  writeFileSync(killFile, '1');
  const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
  assert.is(code, 1, `podway exits 1 (${code}): ${n1.log.slice(-8).join('\n')}`);
  assert.ok(n1.log.some((l) => /forwarding threads died 5 times within 60 s \(the last: worker 1: uncaught exception: injected by the test: worker 1 fails\): giving up, exiting 1/.test(l)), n1.log.slice(-8).join('\n'));
  // the stream (node1 gone since the fifth: its tail is lost) across the first three deaths
  const result = await finish();
  // The receiver's gap at each death ends when the new worker 1 counts the flow (t1, as the test
  // saw it), give or take the stream's own stalls elsewhere (a receiver a loaded host runs late):
  // a thread that counted the flow but did not forward it leaves the gap open. (Was: under 3 s,
  // which the load beat: 3.2 s at load 40.)
  const slack = allowedGap(result, windows);
  for (const [k, w] of windows.entries()) {
    const g = gapIn(result, w.t0, w.t1 + 500);
    assert.ok(g.maxGapMs <= w.t1 - w.t0 + slack, `death ${k + 1}: the stream's gap ${Math.round(g.maxGapMs)} ms, the flow back on worker 1 after ${w.t1 - w.t0} ms (stalls elsewhere allow ${Math.round(slack)} ms more)`);
    assert.ok(g.count > 0, `death ${k + 1}: the stream arrived after it`);
  }
  console.log(`stream gaps at deaths 1-3: ${windows.map((w) => Math.round(gapIn(result, w.t0, w.t1 + 500).maxGapMs)).join(', ')} ms; the flow back on a new worker 1 after ${windows.map((w) => w.t1 - w.t0).join(', ')} ms`);
  ok = true;
});

test.run();
