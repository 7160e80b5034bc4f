/**
 * `podway run --bgp` on etcd when its model thread dies (root, network namespaces, etcd and a BIRD
 * ToR in the fabric namespace, both killed by PID). The BGP speaker lives in the model thread
 * (src/cli/model-worker.ts): its sessions end with it and a new thread brings a new speaker. The
 * thread is killed for real, as in model-thread-etcd.test.ts (a preload module handed to podway
 * through NODE_OPTIONS throws in the model thread only, once per count in a file the test writes).
 * - node1 peers with the ToR and the ToR routes node1's block;
 * - the thread killed: a new thread's speaker opens a new session with the ToR, Established, its
 *   OPEN claiming a graceful restart with forwarding preserved (R and F: this process forwarded
 *   all along), and the ToR routes node1's block the whole time (it keeps it as graceful-restart
 *   helper, then has it again from the new session); node1 is ready again;
 * - the new thread's speaker follows the datastore: the pool's disableBGPExport set, the ToR no
 *   longer has node1's block; cleared, it has it again, in the same session.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Lab, LabKvStore } from '../../src/lab/lab';
import { applyResource, JsonObject } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logMessage, logTail, until, waitLog } from './e2e-kit';
import { Birds, BirdProcess, nodesOnOneSubnet, bgpPeerYaml, kernelRoutesVia, peerState, TOR_IP, TOR_AS, birdProtocolLine, birdNeighborCaps, birdImportUpdates, sameBirdSession } from './bgp-kit';

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let birds: Birds | null = null;
let tor: BirdProcess | null = null;
let ok = false;
let dir = '';
/** How many model threads the preload still kills (it reads and counts it down). */
let countFile = '';

interface Status { ready?: boolean; notReady?: string[]; modelThread?: { state: string; restarts: number } | null }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as Status;
const torProtocol = () => birdProtocolLine(tor!, 'node1');
const neighborCaps = () => birdNeighborCaps(tor!, 'node1');
const importUpdates = () => birdImportUpdates(tor!, 'node1');
/** Whether BIRD has node1's block from node1 (stale or not). */
const torHasBlock = () => tor!.birdc('show', 'route', 'protocol', 'node1').includes(lab!.node('node1').block);

/** The preload (model-thread-etcd.test.ts's): in podway run's model thread only, it looks at the
 * count file every 0.1 s and, when it is above 0, counts it down and throws where nothing catches it. */
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

/** The lab's IPv4 pool with disableBGPExport as given, written to etcd. */
async function setPoolExport(disabled: boolean): Promise<void> {
  const pool = lab!.kvResources('direct').find((o) => o.kind === 'IPPool')!;
  (pool.spec as Record<string, unknown>).disableBGPExport = disabled;
  await applyResource(store!.kv, pool);
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  dir = mkdtempSync(path.join(tmpdir(), `podway-model-thread-bgp-${process.pid}-`));
  countFile = path.join(dir, 'kills');
  const inject = path.join(dir, 'kill-model-thread.js');
  writeFileSync(inject, preload(countFile));
  lab = guard(new Lab(nodesOnOneSubnet(1)));
  birds = new Birds(lab);
  lab.build();
  lab.setMode('direct');
  store = await lab.openKvStore('etcd', 'podway-model-thread-bgp-');
  await lab.useKvDatastore(store.kv, store.spec);
  await applyResource(store.kv, parseAllDocuments(bgpPeerYaml('tor', TOR_IP, TOR_AS))[0]!.toJS() as JsonObject);
  tor = await birds.tor();
  await lab.startPodway('node1', 20_000, ['--bgp'], { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${inject}`.trim() });
});

test.after(async () => {
  if (lab) {
    if (!ok) console.log(logTail(lab, 40), `\n--- ToR:\n${tor?.birdc('show', 'protocols', 'all') ?? ''}\n${tor?.birdc('show', 'route', 'all') ?? ''}`);
    await birds?.killAll();
    await teardown(lab); // etcd too (killed by PID, its data removed)
  }
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('at start: the ToR session is up, the ToR routes node1\'s block, node1 ready', async () => {
  const n1 = lab!.node('node1');
  assert.ok(await until(async () => (await peerState(lab!, 'node1', TOR_IP)) === 'Established', 30_000, 250), 'session up');
  assert.ok(await until(() => kernelRoutesVia(lab!.fabric, n1.block, n1.ip), 20_000, 250), `the ToR routes ${n1.block}: ${tor!.birdc('show', 'route', 'all')}`);
  assert.ok(await until(async () => (await status()).ready === true, 30_000, 200), `ready: ${JSON.stringify(await status())}`);
});

test('the model thread killed: a new speaker, a new session Established claiming R and F, the ToR routes node1\'s block all along, ready again', async () => {
  const n1 = lab!.node('node1');
  const before = torProtocol();
  assert.match(before, /Established/);
  const updatesBefore = importUpdates();
  assert.ok(updatesBefore > 0, tor!.birdc('show', 'protocols', 'all', 'node1'));
  const mark = n1.log.length;
  writeFileSync(countFile, '1');
  assert.ok(await waitLog(n1, /the model thread died \(uncaught exception: injected by the test/, mark, 20_000), `died: ${n1.log.slice(mark).map(logMessage).join(' | ')}`);
  // From the death until the new session is Established: the ToR's route to the block, every 0.1 s.
  const misses: string[] = [];
  const newSession = await until(() => {
    if (!kernelRoutesVia(lab!.fabric, n1.block, n1.ip)) misses.push(new Date().toISOString());
    const now = torProtocol();
    return !sameBirdSession(now, before) && /Established/.test(now);
  }, 60_000, 100);
  assert.ok(newSession, `a new session with node1: ${tor!.birdc('show', 'protocols', 'all', 'node1')} ${n1.log.slice(mark).map(logMessage).join(' | ')}`);
  assert.equal(misses, [], `the ToR routed ${n1.block} via node1 all along`);
  const caps = neighborCaps();
  assert.match(caps, /Restart recovery/, caps);
  assert.match(caps, /AF preserved:\s+ipv4/, caps);
  assert.ok(await until(async () => (await peerState(lab!, 'node1', TOR_IP)) === 'Established', 30_000, 250), 'podway\'s side Established');
  // The block sent again in the new session (BIRD's import counters add up across sessions): not
  // only the stale copy BIRD keeps as graceful-restart helper.
  assert.ok(await until(() => importUpdates() > updatesBefore && torHasBlock(), 30_000, 250), `the ToR has ${n1.block} from the new session (updates before: ${updatesBefore}): ${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
  let s: Status = {};
  assert.ok(await until(async () => (s = await status()).ready === true, 60_000, 200), `ready again: ${JSON.stringify(s)}`);
  assert.is(s.modelThread?.restarts, 1);
  assert.is(n1.proc?.exitCode, null, 'podway ran all along');
});

test('the new thread\'s speaker follows the datastore: disableBGPExport withdraws node1\'s block from the ToR, cleared it comes back, one session', async () => {
  const n1 = lab!.node('node1');
  const session = torProtocol();
  await setPoolExport(true);
  assert.ok(await until(() => !torHasBlock(), 30_000, 250), `the ToR no longer has ${n1.block}: ${tor!.birdc('show', 'route', 'all')}`);
  await setPoolExport(false);
  assert.ok(await until(() => torHasBlock() && kernelRoutesVia(lab!.fabric, n1.block, n1.ip), 30_000, 250), `the ToR has ${n1.block} again: ${tor!.birdc('show', 'route', 'all')}`);
  assert.ok(sameBirdSession(torProtocol(), session), 'the same session');
  assert.is((await status()).modelThread?.restarts, 1);
  ok = true;
});

test.run();
