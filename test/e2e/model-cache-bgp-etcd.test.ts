/**
 * `podway run --bgp` on its cached model (src/cli/model-cache.ts) while etcd is down (root, network
 * namespaces, etcd and a BIRD ToR in the fabric namespace, both killed by PID). node1 peers with
 * the ToR through a global BGPPeer and writes its model cache; etcd is killed and node1's podway
 * restarted: it forwards on the cached model, and
 * - `podway node status` answers (rc 0), saying the speaker is not running and why (it starts once
 *   the datastore answers), instead of "the model thread did not answer within 2 s"; readiness
 *   says the same;
 * - etcd back, the speaker starts and the ToR session is Established again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { Lab, LabKvStore } from '../../src/lab/lab';
import type { LabEtcd } from '../../src/lab/etcd';
import { applyResource, JsonObject } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, until, waitLog } from './e2e-kit';
import { Birds, BirdProcess, nodesOnOneSubnet, bgpPeerYaml, kernelRoutesVia, peerState, podwayCli, TOR_IP, TOR_AS } from './bgp-kit';

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let etcd: LabEtcd | null = null;
let birds: Birds | null = null;
let tor: BirdProcess | null = null;
let ok = false;

interface Status { ready?: boolean; notReady?: string[]; cachedModel?: { file: string; appliedAt: string } | null }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as Status;

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(nodesOnOneSubnet(1)));
  birds = new Birds(lab);
  lab.build();
  lab.setMode('direct');
  store = await lab.openKvStore('etcd', 'podway-modelcache-bgp-');
  etcd = await lab.startEtcd();
  await lab.useKvDatastore(store.kv, store.spec);
  await applyResource(store.kv, parseAllDocuments(bgpPeerYaml('tor', TOR_IP, TOR_AS))[0]!.toJS() as JsonObject);
  tor = await birds.tor();
  await lab.startPodway('node1', 20_000, ['--bgp']);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30), `\n--- ToR:\n${tor?.birdc('show', 'protocols', 'all') ?? ''}\n--- etcd:\n${etcd?.log().slice(-1500)}`);
  await birds?.killAll();
  await teardown(lab); // etcd too (killed by PID, its data removed)
  await store?.close();
});

test('at start: the ToR session is up, the ToR routes node1\'s block; node1 wrote its model cache', async () => {
  const n1 = lab!.node('node1');
  assert.ok(await until(async () => (await peerState(lab!, 'node1', TOR_IP)) === 'Established', 30_000, 250), 'session up');
  assert.ok(await until(() => kernelRoutesVia(lab!.fabric, n1.block, n1.ip), 20_000, 250), `the ToR routes ${n1.block}: ${tor!.birdc('show', 'route', 'all')}`);
  assert.ok(await until(() => existsSync(lab!.modelCachePath('node1')), 15_000, 100), 'node1 wrote its model cache');
});

test('etcd killed, node1 restarted on its cached model: `podway node status` answers, saying the speaker waits for the datastore', async () => {
  const n1 = lab!.node('node1');
  await etcd!.kill();
  assert.is(await lab!.stopPodway('node1'), 0, 'node1 stopped cleanly');
  const mark = n1.log.length;
  await lab!.startPodway('node1', 20_000, ['--bgp']);
  assert.ok(await waitLog(n1, /forwarding on the cached model from/, mark, 10_000), `on the cache: ${n1.log.slice(mark).join(' | ')}`);
  // The table (rc 0: execFileSync throws otherwise) and the JSON.
  const table = podwayCli(['node', 'status', '--control', n1.control]);
  assert.match(table, /The BGP speaker is not running: it starts once the datastore answers \(podway forwards on the cached model from /);
  const json = JSON.parse(podwayCli(['node', 'status', '--control', n1.control, '-o', 'json'])) as { enabled: boolean; speakerError: string | null; peers: unknown[] };
  assert.is(json.enabled, true);
  assert.match(json.speakerError ?? '', /^it starts once the datastore answers/);
  const st = await status();
  assert.ok(st.cachedModel, 'on the cache');
  assert.is(st.ready, false);
  assert.ok(st.notReady?.some((r) => /^bgp: the BGP speaker is not running: it starts once the datastore answers/.test(r)), JSON.stringify(st.notReady));
});

test('etcd back: the speaker starts and the ToR session is Established again', async () => {
  const n1 = lab!.node('node1');
  const mark = n1.log.length;
  await etcd!.start();
  assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 30_000), `node1 follows etcd again: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(async () => (await peerState(lab!, 'node1', TOR_IP)) === 'Established', 30_000, 250), 'session up again');
  assert.ok(await until(async () => (await status()).ready === true, 20_000, 200), `ready again: ${JSON.stringify(await status())}`);
  ok = true;
});

test.run();
