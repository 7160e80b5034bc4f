/**
 * `podway run --bgp` started on the model cache of a Node that was deleted and registered again
 * under the same name (src/cli/model-cache.ts notSameNode, run.ts onNodeVerdict), against a real
 * BIRD ToR (root, network namespaces, etcd and BIRD in the fabric namespace, both killed by PID).
 * node1 peers with the ToR through a global BGPPeer and writes its model cache; it is stopped, its
 * Node deleted (`podway delete node`), and it starts again with etcd blackholed from its namespace
 * (nft drop of port 2379, removed in finally): it forwards on the cache and its speaker announces
 * the cache's block to the ToR on the cache's BGP settings. Once etcd answers, the registration
 * finds no Node: the cache is not this node's state and is withdrawn, and
 * - the speaker withdraws what it announced from the cache (the ToR receives the withdrawal: BIRD's
 *   import withdraws counter), in the same session: it used to close the model thread (a graceful
 *   stop: the ToR kept the old Node's block as a graceful-restart helper) and reset the session;
 * - the datastore's settings then take over in that speaker (the handover's line, no restart), the
 *   ToR's session is the one it had on the cache, and the ToR routes the new Node's block via node1.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import type { Lab, LabKvStore } from '../../src/lab/lab';
import type { LabEtcd } from '../../src/lab/etcd';
import { readModelCache } from '../../src/cli/model-cache';
import { controlRequest } from '../../src/dataplane/control-server';
import { execBounded } from './tools';
import { nsExec, until, waitLog } from './e2e-kit';
import { Birds, BirdProcess, etcdTor, startEtcdTor, stopEtcdTor, kernelRoutesVia, TOR_IP, birdProtocolLine, birdImportUpdates, sameBirdSession } from './bgp-kit';

const PODWAY = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let etcd: LabEtcd | null = null;
let birds: Birds | null = null;
let tor: BirdProcess | null = null;
let ok = false;

interface Status { ready?: boolean; notReady?: string[]; cachedModel?: { file: string; appliedAt: string } | null; endpoints?: number }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as Status;
const ready = async () => {
  try {
    return (await status()).ready === true;
  } catch {
    return false;
  }
};
interface StatusPeer { address: string; bgpState: string; since: string }
const nodeStatus = async () => (await controlRequest(lab!.node('node1').control, { cmd: 'node-status' }, 5000)) as { peers: StatusPeer[]; exported: number; cachedSettings?: string | null };
const torPeer = (s: { peers: StatusPeer[] }) => s.peers.find((p) => p.address === TOR_IP);
const torProtocol = () => birdProtocolLine(tor!, 'node1');
/** BIRD's count of withdrawals received from node1 (`Import withdraws:` received, all sessions). */
const importWithdraws = () => Number(/Import withdraws:\s+(\d+)/.exec(tor!.birdc('show', 'protocols', 'all', 'node1'))?.[1] ?? -1);
/** The prefixes the ToR has from node1. */
const torPrefixes = () => [...tor!.birdc('show', 'route', 'protocol', 'node1').matchAll(/^(\d+\.\d+\.\d+\.\d+\/\d+)/gm)].map((m) => m[1]!);
const cacheOf = () => readModelCache(lab!.modelCachePath('node1'), 'node1', store!.spec);

const rig = etcdTor();
test.before(async () => {
  await startEtcdTor(rig, 'podway-cache-withdraw-bgp-');
  ({ lab, store, etcd, birds, tor } = rig);
});

test.after(() => stopEtcdTor(rig, ok, 40, [['show', 'protocols', 'all'], ['show', 'route', 'all']]));

test('a deleted Node\'s cache with --bgp: announced on the cache\'s settings, then withdrawn in the same session once etcd answers; the datastore\'s settings take over without a reset', async () => {
  const n1 = lab!.node('node1');
  assert.ok(await until(() => /Established/.test(torProtocol()), 60_000, 250), `session up: ${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
  assert.ok(await until(() => kernelRoutesVia(lab!.fabric, n1.block, n1.ip), 30_000, 250), `the ToR routes ${n1.block}: ${tor!.birdc('show', 'route', 'all')}`);
  assert.ok(await until(ready, 30_000, 200), 'node1 ready');
  assert.is(await lab!.stopPodway('node1'), 0, 'node1 stopped cleanly (writes its cache)');
  const c = cacheOf();
  assert.ok(c !== 'none' && !('refused' in c) && c.nodeIdentity !== null && c.bgp?.exports.some((e) => e.prefix === n1.block), `the cache records its Node and exports ${n1.block}: ${JSON.stringify(c).slice(0, 400)}`);
  const del = await execBounded('ip', ['netns', 'exec', n1.ns, process.execPath, PODWAY, 'delete', 'node', 'node1', '--datastore', lab!.datastoreSpec], 30_000);
  assert.is(del.code, 0, `podway delete node node1: ${del.stderr}`);
  assert.is(await store!.kv.get('/calico/resources/v3/projectcalico.org/nodes/node1'), null, 'node1\'s Node deleted');
  const table = `podway_test_cachewd_${process.pid}`;
  let blocked = false;
  const mark = n1.log.length;
  // BIRD's line and counters, and podway's session, as on the cache before etcd can answer (read
  // after the block is lifted, the withdrawal could already be counted)
  let torBefore = '';
  let sinceBefore = '';
  let withdrawsBefore = -1;
  try {
    nsExec(n1.ns, ['nft', `add table inet ${table}; add chain inet ${table} out { type filter hook output priority 0; }; add rule inet ${table} out tcp dport 2379 drop`]);
    blocked = true;
    const updatesBefore = birdImportUpdates(tor!, 'node1');
    await lab!.startPodway('node1', 20_000, ['--bgp']);
    assert.ok(await waitLog(n1, /start-up: forwarding on the cached model from \S+ \(same boot\)/, mark, 10_000), `on the cache at once: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await waitLog(n1, /bgp: on the model cache's settings from .* 1 prefixes exported/, mark, 20_000), `the speaker on the cache's settings: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await until(() => /Established/.test(torProtocol()), 60_000, 250), `the ToR's session is up without etcd: ${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
    assert.ok(await until(async () => torPeer(await nodeStatus())?.bgpState === 'Established', 30_000, 250), 'podway\'s side Established');
    // the block sent again in this session, not only the stale copy BIRD kept as helper
    assert.ok(await until(() => birdImportUpdates(tor!, 'node1') > updatesBefore && torPrefixes().includes(n1.block), 30_000, 250), `the ToR has ${n1.block} from node1's cache: ${tor!.birdc('show', 'route', 'all')}`);
    torBefore = torProtocol();
    sinceBefore = torPeer(await nodeStatus())!.since;
    withdrawsBefore = importWithdraws();
    assert.ok(withdrawsBefore >= 0, tor!.birdc('show', 'protocols', 'all', 'node1'));
  } finally {
    if (blocked) nsExec(n1.ns, ['nft', 'delete', 'table', 'inet', table]);
  }
  // etcd answers: no Node node1 any more.
  const WITHDRAWN = /model cache \S*node1\.model\.json: its Node node1 \(uid [0-9a-f-]+, created at revision \d+\) is not in the datastore any more \(deleted\): not this node's state/;
  assert.ok(await waitLog(n1, WITHDRAWN, mark, 60_000), `withdrawn once the registration read etcd: ${n1.log.slice(mark).join(' | ')}`);
  const SPEAKER_WITHDREW = /bgp: the model cache is not this node's state \(its Node node1 .* \(deleted\)\): 1 prefix it exported withdrawn, the sessions kept, until the datastore's settings take over/;
  assert.ok(await waitLog(n1, SPEAKER_WITHDREW, mark, 20_000), `the speaker withdrew the cache's announcements: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 60_000), `the datastore's model applied: ${n1.log.slice(mark).join(' | ')}`);
  const HANDOVER = /bgp: the datastore's settings replace the model cache's from /;
  assert.ok(await waitLog(n1, HANDOVER, mark, 20_000), `the handover: ${n1.log.slice(mark).join(' | ')}`);
  const at = (re: RegExp) => n1.log.findIndex((l, k) => k >= mark && re.test(l));
  assert.ok(at(SPEAKER_WITHDREW) < at(HANDOVER), 'the cache\'s announcements withdrawn before the datastore\'s settings came');
  // The ToR was told: a withdrawal received from node1 (BIRD counts it), in the same session.
  assert.ok(await until(() => importWithdraws() > withdrawsBefore, 20_000, 250), `the ToR received node1's withdrawal (withdraws before: ${withdrawsBefore}): ${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
  assert.ok(await until(ready, 30_000, 200), `node1 ready: ${JSON.stringify(await status())}`);
  const since = n1.log.slice(mark);
  assert.not.ok(since.some((l) => /restarting the speaker|session down|the model thread exited/.test(l)), `the speaker was left alone:\n${since.join('\n')}`);
  assert.is(torPeer(await nodeStatus())?.since, sinceBefore, 'podway\'s session with the ToR was not reset');
  assert.ok(sameBirdSession(torProtocol(), torBefore), `the ToR's session was not reset:\n${torBefore}\n${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
  // The new Node's exports, from the datastore (its pod went with the deleted Node: maybe none),
  // are what the ToR has from node1; the old Node's block is gone unless the new one has it again.
  assert.ok(await until(() => {
    const r = cacheOf();
    return r !== 'none' && !('refused' in r) && r.nodeIdentity !== null && r.nodeIdentity.uid !== (c as { nodeIdentity: { uid: string } }).nodeIdentity.uid;
  }, 30_000, 200), 'the cache now records the new Node');
  // The cache is written at most every 10 s: its exports are read again until they and the ToR's
  // agree (the new Node may claim a block after its first write: podway run holds the orphan pod's
  // address, control/ipam/orphan-holds.ts, and exports the block that holds it).
  let exported: string[] = [];
  assert.ok(await until(() => {
    const now = cacheOf() as Exclude<ReturnType<typeof cacheOf>, 'none' | { refused: string }>;
    exported = (now.bgp?.exports ?? []).map((e) => e.prefix).sort();
    return JSON.stringify(torPrefixes().sort()) === JSON.stringify(exported);
  }, 40_000, 250), `the ToR has the new Node's prefixes [${exported.join(', ')}] from node1: ${tor!.birdc('show', 'route', 'all')}`);
  for (const p of exported) assert.ok(await until(() => kernelRoutesVia(lab!.fabric, p, n1.ip), 20_000, 250), `the ToR routes ${p} via node1`);
  if (!exported.includes(n1.block)) assert.not.ok(kernelRoutesVia(lab!.fabric, n1.block, n1.ip), `the ToR no longer routes the old Node's ${n1.block} via node1`);
  console.log(`  (the new Node exports [${exported.join(', ')}]; withdraws received by the ToR ${withdrawsBefore} -> ${importWithdraws()})`);
  ok = true;
});

test.run();
