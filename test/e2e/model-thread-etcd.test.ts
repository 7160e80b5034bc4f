/**
 * The model thread (src/cli/model-worker.ts: the datastore watch and the model computation) dying
 * or hanging inside a running `podway run` on etcd (root, network namespaces). It is killed for
 * real: a preload module handed to podway through NODE_OPTIONS (the test's, written at run time;
 * podway reads nothing for it) throws from setImmediate in the model thread only, as etcd3 rethrows
 * a listener's error from its gRPC stream handler, once per count in a file the test writes; or
 * spins (a loop that never ends) once per count in another file. Three deaths in a row (the first
 * thread, then the first two new ones, each within 0.1 s of starting):
 * - node1 says so (the error, its stack) and is not ready meanwhile (status, /readyz 503,
 *   podway_datastore_in_sync 0); it used to stay ready, following nothing written after;
 * - the third death in a row makes the thread failing: said in the log, status and /readyz
 *   (`model thread: failing: ...`), podway_model_thread_failing 1; the new thread lives and its
 *   model is applied, but node1 stays not ready until it has run 30 s (--model-thread-stable-after
 *   here, not the default minute: said with it, and not ready before);
 * - an endpoint written to etcd while no thread follows it is attached once a new thread lives,
 *   and its pod talks; node1 is ready again, no longer failing; status and
 *   podway_model_thread_restarts_total count 3 restarts, the waits backing off (1, 2, 4 s);
 * - the new thread watches: an endpoint written after is attached too;
 * - the thread spinning (it answers nothing, the node used to stay ready on a frozen model): after
 *   the heartbeat's timeout (8 s here by --model-thread-hang-after, not the default 20 s: said with
 *   it) it is terminated and said hung, a new one started after 1 s (the one
 *   before had run its 30 s: the backoff starts again), the endpoint written while it spun is
 *   attached and its pod talks; status and podway_model_thread_hangs_total count the hang.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { METRICS_RENDER_MS } from '../../src/observe/http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, logMessage, until, waitLog, preloadEnv } from './e2e-kit';
import { execBounded } from './tools';
import { parseMetrics, valueOf } from '../observe/prom-text';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'web-1b', type: 'veth' }, { name: 'web-1c', type: 'veth' }, { name: 'web-1d', type: 'veth' }] },
];
const PORT = 9091;
/** `--model-thread-hang-after`: the heartbeat's timeout (default 20 s), so the hang is found in 8 (4 was too short for a loaded CI host: a thread busy loading its datastore client at load 45 was taken for hung at start). */
const HANG_AFTER_S = 8;
/** `--model-thread-stable-after`: how long a new thread runs before it ends failing (default 60 s). */
const STABLE_AFTER_S = 30;
const HTTP_GET = path.join(__dirname, 'http-get.js');
const PODWAY = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;
let dir = '';
/** How many model threads the preload still kills (it reads and counts it down). */
let countFile = '';
/** How many model threads the preload still makes spin for ever (it reads and counts it down). */
let spinFile = '';

interface ModelThread { state: string; restarts: number; hangs: number; lastExit: { at: string; error: string } | null; nextStartAt: string | null; failing: { deaths: number; since: string } | null }
interface Status { ready?: boolean; notReady?: string[]; endpoints?: number; modelThread?: ModelThread | null }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as Status;
const talks = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip, 1, 56, ['-W', '1']).received === 1;

/** GET a path of node1's metrics port, from inside node1's namespace. */
async function get(pathname: string): Promise<{ status: number; body: string }> {
  const r = await execBounded('ip', ['netns', 'exec', lab!.node('node1').ns, process.execPath, HTTP_GET, `http://127.0.0.1:${PORT}${pathname}`], 10_000);
  if (r.code !== 0) throw new Error(`http-get ${pathname}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as { status: number; body: string };
}
/** A metric as /metrics says it now: the port serves the last text rendered to quick scrapes
 * (at most one render a second after a burst: src/observe/http.ts), so a scrape waits a render
 * interval first (one token back in the bucket: this one renders afresh). */
const metric = async (name: string): Promise<number | undefined> => {
  await new Promise((r) => setTimeout(r, METRICS_RENDER_MS + 50));
  return valueOf(parseMetrics((await get('/metrics')).body), name);
};

/** The preload: in podway run's model thread (its workerData has the datastore spec; a forwarding
 * worker's has an index), it looks at the count files every 0.1 s; when the kill count is above 0
 * it counts it down and throws where nothing catches it; when the spin count is, it counts it down
 * and loops for ever (only terminate() ends it). */
function preload(kills: string, spins: string): string {
  return `'use strict';
const { isMainThread, workerData } = require('node:worker_threads');
if (!isMainThread && workerData && typeof workerData.spec === 'string' && !('index' in workerData)) {
  const fs = require('node:fs');
  const take = (file) => {
    let n = 0;
    try { n = Number(fs.readFileSync(file, 'utf8')); } catch { return false; }
    if (!(n > 0)) return false;
    fs.writeFileSync(file, String(n - 1));
    return true;
  };
  const timer = setInterval(() => {
    if (take(${JSON.stringify(kills)})) {
      clearInterval(timer);
      setImmediate(() => { throw new Error('injected by the test: a stream handler threw'); });
    } else if (take(${JSON.stringify(spins)})) {
      clearInterval(timer);
      for (;;) {}
    }
  }, 100);
  timer.unref();
}
`;
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  dir = mkdtempSync(path.join(tmpdir(), `podway-model-thread-${process.pid}-`));
  countFile = path.join(dir, 'kills');
  spinFile = path.join(dir, 'spins');
  const env = preloadEnv(dir, 'kill-model-thread.js', preload(countFile, spinFile));
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', 'podway-model-thread-');
  // web-1b's endpoint is written while no model thread runs, web-1c's after, web-1d's while it spins.
  await lab.useKvDatastore(store.kv, store.spec, { withoutEndpoints: ['web-1b', 'web-1c', 'web-1d'] });
  await lab.startPodway('node1', 20_000, ['--metrics-port', String(PORT), '--model-thread-hang-after', `${HANG_AFTER_S}s`, '--model-thread-stable-after', `${STABLE_AFTER_S}s`], env);
});

test.after(async () => {
  if (lab) {
    if (!ok) console.log(logTail(lab, 40));
    await teardown(lab); // etcd too (killed by PID, its data removed)
  }
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('at start: ready, one endpoint, the model thread running, no restart', async () => {
  assert.ok(await until(async () => (await status()).ready === true, 20_000, 200), `ready: ${JSON.stringify(await status())}`);
  const s = await status();
  assert.is(s.endpoints, 1);
  assert.equal(s.modelThread, { state: 'running', restarts: 0, hangs: 0, lastExit: null, nextStartAt: null, failing: null, stableAfterS: STABLE_AFTER_S });
  assert.is(await metric('podway_model_thread_restarts_total'), 0);
  assert.is(await metric('podway_model_thread_hangs_total'), 0);
  assert.is(await metric('podway_model_thread_failing'), 0);
});

test('the model thread killed three times in a row: not ready meanwhile, failing after the third (not ready until the new thread ran --model-thread-stable-after), an endpoint written then is attached after, ready again, 3 restarts', async () => {
  const n = lab!.node('node1');
  const mark = n.log.length;
  writeFileSync(countFile, '3');
  const died = await waitLog(n, /the model thread died/, mark, 20_000);
  assert.ok(died, `said: ${n.log.slice(mark).join(' | ')}`);
  const line = JSON.parse(died!) as { msg: string; level: number | string; stack?: string };
  assert.match(line.msg, 'the model thread died (uncaught exception: injected by the test: a stream handler threw): not following the datastore, forwarding on the last good model; a new thread in 1 s (restart 1)');
  assert.match(line.stack ?? '', /Error: injected by the test: a stream handler threw\n\s+at /, 'the stack is logged');
  // Not ready while no thread follows the datastore (it stayed ready before).
  let s: Status = {};
  assert.ok(await until(async () => (s = await status()).ready === false, 10_000, 50), `not ready: ${JSON.stringify(s)}`);
  assert.ok(s.notReady!.some((r) => /datastore: the model thread died/.test(r)), JSON.stringify(s.notReady));
  // Written while the threads keep dying (3 deaths: 1 + 2 + 4 s of waits at least).
  await lab!.addEndpoint('web-1b');
  const whenWritten = await status();
  assert.ok(whenWritten.modelThread!.restarts < 3 && whenWritten.ready === false, `written while down: ${JSON.stringify(whenWritten.modelThread)}`);
  const readyz = await get('/readyz');
  const inSync = await metric('podway_datastore_in_sync');
  // Still in the series of deaths (the third new thread lives): checked once more after the reads.
  const after = await status();
  if (after.modelThread!.restarts < 3) {
    assert.is(readyz.status, 503, readyz.body);
    assert.is(inSync, 0);
  }
  // The third death in a row: failing (said with it in the log, in status and /readyz).
  const third = await waitLog(n, /the model thread died \(restart 2, before its first model/, mark, 30_000);
  assert.ok(third, `the third death: ${n.log.slice(mark).map(logMessage).join(' | ')}`);
  assert.match(logMessage(third!), /a new thread in 4 s \(restart 3, backing off: 3 deaths in a row, at most every 30 s\); failing: the model thread died 3 times since \S+, none running 30 s in between \(restarted at most every 30 s, never given up; not ready until a new one has run 30 s\)$/);
  assert.ok(await until(async () => (s = await status()).modelThread?.failing?.deaths === 3, 10_000, 100), `failing: ${JSON.stringify(s.modelThread)}`);
  assert.ok(s.notReady!.some((r) => /^model thread: failing: the model thread died 3 times since \S+, .*; last died at \S+: uncaught exception: injected by the test/.test(r)), JSON.stringify(s.notReady));
  assert.is(await metric('podway_model_thread_failing'), 1);
  // The new thread lives: the endpoint written meanwhile is attached, but node1 is not ready until
  // that thread has run STABLE_AFTER_S (readiness does not come and go with each new thread).
  assert.ok(await until(async () => (s = await status()).endpoints === 2 && s.modelThread?.state === 'running', 60_000, 200), `web-1b attached: ${JSON.stringify(s)} ${n.log.slice(mark).map(logMessage).join(' | ')}`);
  assert.ok(await until(() => talks('web-1', 'web-1b') && talks('web-1b', 'web-1'), 15_000, 100), 'web-1b talks');
  s = await status();
  assert.is(s.ready, false, 'not ready while failing');
  assert.equal(s.notReady!.filter((r) => !/^model thread: failing: /.test(r)), [], `failing is the only reason: ${JSON.stringify(s.notReady)}`);
  const failingReadyz = await get('/readyz');
  assert.is(failingReadyz.status, 503);
  assert.match(failingReadyz.body, 'model thread: failing: the model thread died 3 times since');
  assert.is(await metric('podway_datastore_in_sync'), 1, 'the new thread is in sync');
  // Ready again once it has run STABLE_AFTER_S, not before (its first model came before the
  // "listed the datastore" line was logged).
  const listed = n.log.slice(mark).find((l) => logMessage(l).includes('the model thread started again (restart 3) listed the datastore'));
  assert.ok(listed, n.log.slice(mark).map(logMessage).join(' | '));
  const listedAt = Date.parse((JSON.parse(listed!) as { time: string }).time);
  assert.ok(await until(async () => (s = await status()).ready === true, 120_000, 500), `ready again: ${JSON.stringify(s)}`);
  const readyAfterS = (Date.now() - listedAt) / 1000;
  assert.ok(readyAfterS >= STABLE_AFTER_S - 1, `ready again ${readyAfterS} s after the new thread's first model, before its --model-thread-stable-after ${STABLE_AFTER_S}s`);
  assert.is(s.endpoints, 2);
  assert.is(s.modelThread!.failing, null);
  assert.is(await metric('podway_model_thread_failing'), 0);
  assert.is(s.modelThread!.state, 'running');
  assert.is(s.modelThread!.restarts, 3, JSON.stringify(s.modelThread));
  assert.match(s.modelThread!.lastExit!.error, 'uncaught exception: injected by the test: a stream handler threw');
  assert.is(await metric('podway_model_thread_restarts_total'), 3);
  assert.is(await metric('podway_datastore_in_sync'), 1);
  assert.is((await get('/readyz')).status, 200);
  const said = n.log.slice(mark).map(logMessage);
  // The waits backed off: 1, 2, 4 s (the second and third threads died before their first model).
  for (const [k, wait] of [[1, 1], [2, 2], [3, 4]] as const) {
    assert.ok(said.some((m) => m.includes(`a new thread in ${wait} s (restart ${k}`)), `restart ${k} after ${wait} s: ${said.join(' | ')}`);
  }
  assert.ok(said.some((m) => m.includes('the model thread died (restart 2, before its first model: uncaught exception: injected by the test')), said.join(' | '));
  assert.ok(said.some((m) => m.includes('the model thread started again (restart 3) listed the datastore')), said.join(' | '));
  const text = await execBounded(process.execPath, [PODWAY, 'status', '--control', n.control], 30_000);
  assert.match(text.stdout, /^model thread: running; restarted 3 times; last died at \S+: uncaught exception: injected by the test: a stream handler threw$/m);
  assert.is(n.proc?.exitCode, null, 'podway ran all along');
});

test('the new thread watches: an endpoint written after it started is attached', async () => {
  await lab!.addEndpoint('web-1c');
  assert.ok(await until(async () => (await status()).endpoints === 3, 20_000, 100), `web-1c attached: ${JSON.stringify(await status())}`);
  assert.ok(await until(() => talks('web-1', 'web-1c') && talks('web-1c', 'web-1'), 15_000, 100), 'web-1c talks');
  assert.is((await status()).modelThread!.restarts, 3);
});

test('the model thread spinning: terminated after the heartbeat\'s timeout (--model-thread-hang-after) and said hung, a new one after 1 s, the endpoint written while it spun attached, the hang counted', async () => {
  const n = lab!.node('node1');
  const mark = n.log.length;
  writeFileSync(spinFile, '1');
  // Taken by the thread (it spins from here on); written while it spins, web-1d waits for the next.
  assert.ok(await until(() => readFileSync(spinFile, 'utf8') === '0', 10_000, 100), 'the thread took the spin');
  await lab!.addEndpoint('web-1d');
  const hung = await waitLog(n, /the model thread died \(hung: /, mark, 90_000);
  assert.ok(hung, `said hung: ${n.log.slice(mark).map(logMessage).join(' | ')}`);
  // The one before ran its STABLE_AFTER_S (the test before waited for that): the backoff starts again at 1 s.
  assert.match(logMessage(hung!), /^datastore: the model thread died \(hung: no answer to the heartbeat for \d+ s, a loop that does not end or a call that does not return; terminated\): not following the datastore, forwarding on the last good model; a new thread in 1 s \(restart 4\)$/);
  // --model-thread-hang-after took: found after its 8 s (a late tick asks afresh), not the default 20.
  const silentS = Number(/heartbeat for (\d+) s/.exec(logMessage(hung!))![1]);
  assert.ok(silentS >= HANG_AFTER_S && silentS < 20, `said hung after ${silentS} s`);
  let s: Status = {};
  assert.ok(await until(async () => (s = await status()).ready === true && s.endpoints === 4, 60_000, 200), `ready with web-1d: ${JSON.stringify(s)} ${n.log.slice(mark).map(logMessage).join(' | ')}`);
  assert.ok(await until(() => talks('web-1', 'web-1d') && talks('web-1d', 'web-1'), 15_000, 100), 'web-1d talks');
  assert.is(s.modelThread!.restarts, 4);
  assert.is(s.modelThread!.hangs, 1);
  assert.is(s.modelThread!.failing, null);
  assert.match(s.modelThread!.lastExit!.error, /^hung: no answer to the heartbeat for \d+ s/);
  assert.is(await metric('podway_model_thread_hangs_total'), 1);
  assert.is(await metric('podway_model_thread_restarts_total'), 4);
  const text = await execBounded(process.execPath, [PODWAY, 'status', '--control', n.control], 30_000);
  assert.match(text.stdout, /^model thread: running; restarted 4 times \(1 of them after it hung\); last died at \S+: hung: no answer to the heartbeat/m);
  assert.is(n.proc?.exitCode, null, 'podway ran all along');
  ok = true;
});

test.run();
