/**
 * The model thread (src/cli/model-worker.ts: the datastore watch and the model computation) dying
 * inside a running `podway run` on etcd (root, network namespaces). It is killed for real: a
 * preload module handed to podway through NODE_OPTIONS (the test's, written at run time; podway
 * reads nothing for it) throws from setImmediate in the model thread only, as etcd3 rethrows a
 * listener's error from its gRPC stream handler, once per count in a file the test writes. Three
 * deaths in a row (the first thread, then the first two new ones, each within 0.1 s of starting):
 * - node1 says so (the error, its stack) and is not ready meanwhile (status, /readyz 503,
 *   podway_datastore_in_sync 0); it used to stay ready, following nothing written after;
 * - an endpoint written to etcd while no thread follows it is attached once a new thread lives,
 *   and its pod talks; node1 is ready again; status and podway_model_thread_restarts_total count 3
 *   restarts, the waits backing off (1, 2, 4 s);
 * - the new thread watches: an endpoint written after is attached too.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, logMessage, until, waitLog } from './e2e-kit';
import { execBounded } from './tools';
import { parseMetrics, valueOf } from '../observe/prom-text';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'web-1b', type: 'veth' }, { name: 'web-1c', type: 'veth' }] },
];
const PORT = 9091;
const HTTP_GET = path.join(__dirname, 'http-get.js');
const PODWAY = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;
let dir = '';
/** How many model threads the preload still kills (it reads and counts it down). */
let countFile = '';

interface ModelThread { state: string; restarts: number; lastExit: { at: string; error: string } | null; nextStartAt: string | null }
interface Status { ready?: boolean; notReady?: string[]; endpoints?: number; modelThread?: ModelThread | null }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as Status;
const talks = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip, 1, 56, ['-W', '1']).received === 1;

/** GET a path of node1's metrics port, from inside node1's namespace. */
async function get(pathname: string): Promise<{ status: number; body: string }> {
  const r = await execBounded('ip', ['netns', 'exec', lab!.node('node1').ns, process.execPath, HTTP_GET, `http://127.0.0.1:${PORT}${pathname}`], 10_000);
  if (r.code !== 0) throw new Error(`http-get ${pathname}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as { status: number; body: string };
}
const metric = async (name: string): Promise<number | undefined> => valueOf(parseMetrics((await get('/metrics')).body), name);

/** The preload: in podway run's model thread (its workerData has the datastore spec; a forwarding
 * worker's has an index), it looks at the count file every 0.1 s and, when it is above 0, counts
 * it down and throws where nothing catches it. */
function preload(file: string): string {
  return `'use strict';
const { isMainThread, workerData } = require('node:worker_threads');
if (!isMainThread && workerData && typeof workerData.spec === 'string' && !('index' in workerData)) {
  const fs = require('node:fs');
  const timer = setInterval(() => {
    let n = 0;
    try { n = Number(fs.readFileSync(${JSON.stringify(file)}, 'utf8')); } catch { return; }
    if (!(n > 0)) return;
    fs.writeFileSync(${JSON.stringify(file)}, String(n - 1));
    clearInterval(timer);
    setImmediate(() => { throw new Error('injected by the test: a stream handler threw'); });
  }, 100);
  timer.unref();
}
`;
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  dir = mkdtempSync(path.join(tmpdir(), `podway-model-thread-${process.pid}-`));
  countFile = path.join(dir, 'kills');
  const inject = path.join(dir, 'kill-model-thread.js');
  writeFileSync(inject, preload(countFile));
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', 'podway-model-thread-');
  // web-1b's endpoint is written while no model thread runs, web-1c's after.
  await lab.useKvDatastore(store.kv, store.spec, { withoutEndpoints: ['web-1b', 'web-1c'] });
  await lab.startPodway('node1', 20_000, ['--metrics-port', String(PORT)], { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${inject}`.trim() });
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
  assert.equal(s.modelThread, { state: 'running', restarts: 0, lastExit: null, nextStartAt: null });
  assert.is(await metric('podway_model_thread_restarts_total'), 0);
});

test('the model thread killed three times in a row: not ready meanwhile, an endpoint written then is attached after, ready again, 3 restarts', async () => {
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
  // A new thread lives: the endpoint written meanwhile is attached, node1 ready again.
  assert.ok(await until(async () => (s = await status()).ready === true && s.endpoints === 2, 60_000, 200), `ready again with web-1b: ${JSON.stringify(s)} ${n.log.slice(mark).map(logMessage).join(' | ')}`);
  assert.ok(await until(() => talks('web-1', 'web-1b') && talks('web-1b', 'web-1'), 15_000, 100), 'web-1b talks');
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
  ok = true;
});

test.run();
