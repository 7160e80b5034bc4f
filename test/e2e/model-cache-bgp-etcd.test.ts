/**
 * `podway run --bgp` on its cached model (src/cli/model-cache.ts) while etcd is down (root, network
 * namespaces, etcd and a BIRD ToR in the fabric namespace, both killed by PID). node1 peers with
 * the ToR through a global BGPPeer and writes its model cache (with its BGP settings); etcd is
 * killed and node1's podway restarted: it forwards on the cached model, and
 * - its speaker runs on the cache's BGP settings: the ToR's session is Established again and the
 *   ToR has node1's block from it, without etcd (the speaker used to wait for the datastore, and
 *   the ToR dropped the block once its graceful-restart time was up); `podway node status`
 *   answers (rc 0) with the session and says the settings are the cache's;
 * - etcd back, the datastore's settings replace the cache's in the same speaker: the ToR's session
 *   is not reset (BIRD's protocol line, its time included, is the same) nor podway's, the ToR
 *   keeps the block, and the node is ready;
 * - the datastore's first model refused by the engine while on the cache (its Node names a second
 *   address whose VXLAN port another socket holds): the speaker keeps the cache's settings, its
 *   router ID and the session; the Node put back, the datastore's settings take over, same session.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import type { Lab, LabKvStore } from '../../src/lab/lab';
import type { LabEtcd } from '../../src/lab/etcd';
import { controlRequest } from '../../src/dataplane/control-server';
import { spawn, type ChildProcess } from 'node:child_process';
import { stopWithCacheOfAnotherBoot, logMessage, nsExec, until, waitLog } from './e2e-kit';
import { Birds, BirdProcess, etcdTor, startEtcdTor, stopEtcdTor, kernelRoutesVia, peerState, podwayCli, TOR_IP, birdProtocolLine, birdNeighborCaps, birdImportUpdates, sameBirdSession } from './bgp-kit';

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let etcd: LabEtcd | null = null;
let birds: Birds | null = null;
let tor: BirdProcess | null = null;
let ok = false;

interface Status { ready?: boolean; notReady?: string[]; cachedModel?: { file: string; appliedAt: string } | null }
const status = async (): Promise<Status> => (await controlRequest(lab!.node('node1').control, { cmd: 'status' }, 5000)) as Status;

const rig = etcdTor();
test.before(async () => {
  await startEtcdTor(rig, 'podway-modelcache-bgp-');
  ({ lab, store, etcd, birds, tor } = rig);
});

test.after(() => stopEtcdTor(rig, ok, 30));

test('at start: the ToR session is up, the ToR routes node1\'s block; node1 wrote its model cache', async () => {
  const n1 = lab!.node('node1');
  assert.ok(await until(async () => (await peerState(lab!, 'node1', TOR_IP)) === 'Established', 30_000, 250), 'session up');
  assert.ok(await until(() => kernelRoutesVia(lab!.fabric, n1.block, n1.ip), 20_000, 250), `the ToR routes ${n1.block}: ${tor!.birdc('show', 'route', 'all')}`);
  assert.ok(await until(() => existsSync(lab!.modelCachePath('node1')), 15_000, 100), 'node1 wrote its model cache');
});

const torProtocol = () => birdProtocolLine(tor!, 'node1');
const neighborCaps = () => birdNeighborCaps(tor!, 'node1');
const importUpdates = () => birdImportUpdates(tor!, 'node1');
interface StatusPeer { address: string; bgpState: string; since: string }
const nodeStatus = async () => (await controlRequest(lab!.node('node1').control, { cmd: 'node-status' }, 5000)) as { routerId: string; peers: StatusPeer[]; cachedSettings?: string | null; speakerError?: string | null };
const torPeer = (s: { peers: StatusPeer[] }) => s.peers.find((p) => p.address === TOR_IP);
let onCache: { tor: string; since: string } | null = null;

test('etcd killed, node1 restarted on its cached model: its speaker runs on the cache\'s BGP settings, the ToR session is Established and the ToR has node1\'s block, without etcd', async () => {
  const n1 = lab!.node('node1');
  const updatesBefore = importUpdates();
  assert.ok(updatesBefore > 0, tor!.birdc('show', 'protocols', 'all', 'node1'));
  await etcd!.kill();
  assert.is(await lab!.stopPodway('node1'), 0, 'node1 stopped cleanly');
  const mark = n1.log.length;
  await lab!.startPodway('node1', 20_000, ['--bgp']);
  assert.ok(await waitLog(n1, /forwarding on the cached model from/, mark, 10_000), `on the cache: ${n1.log.slice(mark).join(' | ')}`);
  // The ToR's side: Established again (BIRD dials every 2 s), node1's block in its table and kernel.
  assert.ok(await until(() => /Established/.test(torProtocol()), 60_000, 250), `the ToR's session with node1 is up without etcd: ${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
  assert.ok(await until(async () => (await peerState(lab!, 'node1', TOR_IP)) === 'Established', 30_000, 250), 'podway\'s side Established');
  // node1 sent its block again in this session (BIRD's import counters add up across sessions): not
  // only the stale copy BIRD keeps as graceful-restart helper, which it drops after 120 s.
  assert.ok(await until(() => importUpdates() > updatesBefore && tor!.birdc('show', 'route', 'protocol', 'node1').includes(n1.block), 30_000, 250), `the ToR has ${n1.block} from node1 again (updates received before the restart: ${updatesBefore}): ${tor!.birdc('show', 'route', 'all')}\n${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
  assert.ok(await until(() => kernelRoutesVia(lab!.fabric, n1.block, n1.ip), 20_000, 250), `the ToR routes ${n1.block} via node1`);
  // A restart in the same boot: node1's OPEN claims a graceful restart (R) with its forwarding
  // state preserved (F), as it is (the cache written in this boot).
  const caps = neighborCaps();
  assert.match(caps, /Restart recovery/, caps);
  assert.match(caps, /AF preserved:\s+ipv4/, caps);
  assert.ok(await waitLog(n1, new RegExp(`bgp: on the model cache's settings from .* until the datastore answers: router ID ${n1.ip.replace(/\./g, '\\.')}, AS 64512, 1 peers, 1 prefixes exported`), mark, 10_000), `the speaker on the cache's settings: ${n1.log.slice(mark).join(' | ')}`);
  // `podway node status`: the session, and whose settings (rc 0: execFileSync throws otherwise).
  const table = podwayCli(['node', 'status', '--control', n1.control]);
  assert.match(table, /BGP settings from the model cache \(the model applied [^)]+\): the datastore has not answered since podway started/);
  assert.match(table, new RegExp(`${TOR_IP.replace(/\./g, '\\.')} .* up .*Established`));
  const json = JSON.parse(podwayCli(['node', 'status', '--control', n1.control, '-o', 'json'])) as { enabled: boolean; speakerError: string | null; cachedSettings: string | null; routerId: string };
  assert.is(json.enabled, true);
  assert.is(json.speakerError, null);
  assert.is(json.routerId, n1.ip);
  assert.ok(json.cachedSettings, 'the settings are the cache\'s');
  // Not ready (the datastore is away), but BGP is not among the reasons.
  const st = await status();
  assert.ok(st.cachedModel, 'on the cache');
  assert.is(st.ready, false);
  assert.not.ok(st.notReady?.some((r) => /^bgp:/.test(r)), JSON.stringify(st.notReady));
  assert.ok(st.notReady?.some((r) => /running on the cached model/.test(r)), JSON.stringify(st.notReady));
  onCache = { tor: torProtocol(), since: torPeer(await nodeStatus())!.since };
});

test('etcd back: the datastore\'s settings replace the cache\'s in the same speaker, the ToR session is not reset and keeps the block, the node is ready', async () => {
  const n1 = lab!.node('node1');
  assert.ok(onCache, 'on the cache with the session up (the test before)');
  const mark = n1.log.length;
  await etcd!.start();
  assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 30_000), `node1 follows etcd again: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await waitLog(n1, /bgp: the datastore's settings replace the model cache's from .*: the same speaker, peers and exports \(sessions kept\)/, mark, 20_000), `the handover: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(async () => (await status()).ready === true, 30_000, 200), `ready again: ${JSON.stringify(await status())}`);
  const since = n1.log.slice(mark);
  assert.not.ok(since.some((l) => /restarting the speaker|speaker up|session down|cannot start the speaker/.test(l)), `the speaker was left alone:\n${since.join('\n')}`);
  const after = await nodeStatus();
  assert.is(after.cachedSettings ?? null, null, 'the datastore\'s settings now');
  assert.is(torPeer(after)?.bgpState, 'Established');
  assert.is(torPeer(after)?.since, onCache!.since, 'podway\'s session with the ToR was not reset');
  assert.ok(sameBirdSession(torProtocol(), onCache!.tor), `the ToR's session was not reset:\n${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
  assert.ok(tor!.birdc('show', 'route', 'protocol', 'node1').includes(n1.block), `the ToR kept ${n1.block}: ${tor!.birdc('show', 'route', 'all')}`);
  assert.ok(kernelRoutesVia(lab!.fabric, n1.block, n1.ip), `the ToR still routes ${n1.block} via node1`);
  // The cache written again holds the BGP settings (the next restart on it peers at once too).
  const cache = JSON.parse(readFileSync(lab!.modelCachePath('node1'), 'utf8')) as { version: number; bgp: string | null };
  assert.is(cache.version, 4);
  const bgp = JSON.parse(cache.bgp ?? 'null') as { exports: { prefix: string }[]; peers: { name: string }[] } | null;
  assert.equal(bgp?.exports.map((e) => e.prefix), [n1.block]);
  assert.equal(bgp?.peers.map((p) => p.name), ['tor']);
});

// The datastore's first model goes through the engine's answer like every later one: refused on the
// cache, the speaker stays on the cache's settings (it used to take the first snapshot at once).
test('the datastore\'s first model refused by the engine while on the cache: the speaker keeps the cache\'s settings, router ID and the ToR session; then the datastore\'s model applies, the same session goes on', async () => {
  const n1 = lab!.node('node1');
  const nodeKey = '/calico/resources/v3/projectcalico.org/nodes/node1';
  const setNodeIp = async (ip: string) => {
    const e = (await store!.kv.get(nodeKey))!;
    const o = JSON.parse(e.value) as { spec: { bgp: { ipv4Address: string } } };
    o.spec.bgp.ipv4Address = `${ip}/${n1.prefix}`;
    assert.ok(await store!.kv.update(nodeKey, JSON.stringify(o), e.modRevision), `Node address ${ip} written`);
  };
  // A second address on node1 (B), which the datastore's Node will name, with its VXLAN port taken
  // by another socket: the engine refuses to follow B (EADDRINUSE on B:4789).
  const other = `${n1.ip.split('.').slice(0, 3).join('.')}.201`;
  const esc = other.replace(/\./g, '\\.');
  const table = `podway_test_blackhole_${process.pid}`;
  let blocked = false;
  let holder: ChildProcess | null = null;
  assert.ok(await until(async () => (await status()).ready === true, 20_000, 200), 'node1 ready before');
  assert.is(await lab!.stopPodway('node1'), 0);
  nsExec(n1.ns, ['ip', 'addr', 'add', `${other}/${n1.prefix}`, 'dev', 'eth0']);
  try {
    // (no SO_REUSEADDR: podway's bind of the same address and port fails; ends by itself after 5 min)
    holder = spawn('ip', ['netns', 'exec', n1.ns, process.execPath, '-e', `const s = require('node:dgram').createSocket('udp4'); s.bind(4789, '${other}', () => console.log('bound')); setTimeout(() => process.exit(0), 300000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let bound = false;
    holder.stdout!.on('data', (d: Buffer) => { if (/bound/.test(d.toString())) bound = true; });
    assert.ok(await until(() => bound, 10_000, 50), `a socket holds ${other}:4789`);
    await setNodeIp(other);
    // etcd silent to node1 at start: it runs on its cache (address A, its BGP settings), then etcd
    // answers with B.
    nsExec(n1.ns, ['nft', `add table inet ${table}; add chain inet ${table} out { type filter hook output priority 0; }; add rule inet ${table} out tcp dport 2379 drop`]);
    blocked = true;
    const mark = n1.log.length;
    await lab!.startPodway('node1', 20_000, ['--bgp']);
    assert.ok(await waitLog(n1, /bgp: on the model cache's settings from/, mark, 20_000), `the speaker on the cache's settings: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await until(() => /Established/.test(torProtocol()), 60_000, 250), `the ToR's session with node1 is up: ${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
    assert.ok(await until(async () => torPeer(await nodeStatus())?.bgpState === 'Established', 30_000, 250), 'podway\'s side Established');
    const torBefore = torProtocol();
    const sinceBefore = torPeer(await nodeStatus())!.since;
    nsExec(n1.ns, ['nft', 'delete', 'table', 'inet', table]);
    blocked = false;
    assert.ok(await waitLog(n1, new RegExp(`update rejected, keeping the last good state: .*${esc}:4789: Address already in use`), mark, 60_000), `the datastore's model is refused: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await waitLog(n1, /rejected by the forwarding engine: .*\(BGP keeps its last settings\)/, mark, 20_000), `the speaker's side said: ${n1.log.slice(mark).join(' | ')}`);
    const st = await nodeStatus();
    assert.is(st.routerId, n1.ip, 'router ID unchanged');
    assert.ok(st.cachedSettings, 'still the cache\'s settings');
    assert.is(torPeer(st)?.since, sinceBefore, 'podway\'s session with the ToR was not reset');
    assert.ok(sameBirdSession(torProtocol(), torBefore), `the ToR's session was not reset: ${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
    assert.ok(kernelRoutesVia(lab!.fabric, n1.block, n1.ip), `the ToR still routes ${n1.block} via node1`);
    // B free again and the Node back on A: the datastore's model applies and its settings replace
    // the cache's in the same speaker.
    holder.kill('SIGKILL');
    holder = null;
    await setNodeIp(n1.ip);
    assert.ok(await waitLog(n1, /answers: its model replaces the cached one/, mark, 30_000), `node1 leaves the cache: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await waitLog(n1, /bgp: the datastore's settings replace the model cache's from .*\(sessions kept\)/, mark, 20_000), `the handover: ${n1.log.slice(mark).join(' | ')}`);
    assert.ok(await until(async () => (await status()).ready === true, 30_000, 200), `ready: ${JSON.stringify(await status())}`);
    const since = n1.log.slice(mark);
    assert.not.ok(since.some((l) => new RegExp(`restarting the speaker|router ID ${esc}|session down`).test(l)), `the speaker was left alone:\n${since.join('\n')}`);
    assert.is(torPeer(await nodeStatus())?.since, sinceBefore, 'the same session');
    assert.ok(sameBirdSession(torProtocol(), torBefore), 'the ToR\'s session still the same');
  } finally {
    if (holder) holder.kill('SIGKILL');
    if (blocked) nsExec(n1.ns, ['nft', 'delete', 'table', 'inet', table]);
    nsExec(n1.ns, ['ip', 'addr', 'del', `${other}/${n1.prefix}`, 'dev', 'eth0']);
  }
});

// RFC 4724: F says the forwarding state was preserved. After a reboot it is not (the pods, their
// routes and the blocks' forwarding are gone): a start on a cache of another boot claims nothing,
// so the ToR drops what it kept of node1 at once instead of forwarding on it.
test('a start on a cache of another boot claims no graceful restart: node1\'s OPEN has neither R nor F, said in the log', async () => {
  const n1 = lab!.node('node1');
  const other = await stopWithCacheOfAnotherBoot(lab!, 'node1', store!.spec);
  const before = torProtocol();
  const mark = n1.log.length;
  await lab!.startPodway('node1', 20_000, ['--bgp']);
  assert.ok(await waitLog(n1, new RegExp(`model cache .*node1\\.model\\.json: it was written in another boot of the machine \\(boot id ${other}, this one [0-9a-f-]+\\): the speaker does not claim a graceful restart \\(R and F clear in its OPENs: the peers drop the routes they kept of this node at once\\)`), mark, 10_000), `said: ${n1.log.slice(mark).map(logMessage).join(' | ')}`);
  // A new session (BIRD's line changes), Established, from this start's OPEN.
  assert.ok(await until(() => /Established/.test(torProtocol()) && !sameBirdSession(torProtocol(), before), 60_000, 250), `a new session with node1: ${tor!.birdc('show', 'protocols', 'all', 'node1')}`);
  const caps = neighborCaps();
  assert.match(caps, /Graceful restart/, `still graceful-restart capable: ${caps}`);
  assert.not.match(caps, /Restart recovery/, caps);
  assert.not.match(caps, /AF preserved:\s+ipv4/, caps);
  assert.ok(await until(() => kernelRoutesVia(lab!.fabric, n1.block, n1.ip), 30_000, 250), `the ToR routes ${n1.block} via node1 again`);
  ok = true;
});

test.run();
