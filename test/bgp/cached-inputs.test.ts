// The BGP settings in podway run's model cache (src/control/bgp/cached-inputs.ts): the plan made
// from them is the plan made from the snapshot they came from (so the speaker started on the cache
// keeps its sessions when the datastore's settings replace them), and they hold a password's
// secret reference, never its value.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeBgpPlan } from '../../src/control/bgp/peering';
import { bgpInputsOf, checkBgpInputs, snapshotOfBgpInputs } from '../../src/control/bgp/cached-inputs';
import { BgpAgent } from '../../src/control/bgp/agent';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import type { LearnedRoute } from '../../src/control/route-calc';
import { createServer } from 'node:net';
import { affinity, node, pool, snapshotOf, wep } from '../control/fixtures';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeNodeModel } from '../../src/control';
import { ModelCacheWriter, readModelCache } from '../../src/cli/model-cache';
import { secretFromDir } from '../../src/cli/bgp-secrets';
import { until } from '../helpers/until';

const API = 'projectcalico.org/v3';
type Obj = Record<string, unknown>;
const bgpPeer = (name: string, spec: Obj): Obj => ({ apiVersion: API, kind: 'BGPPeer', metadata: { name }, spec });
const labelled = (n: Obj, labels: Record<string, string>): Obj => ({ ...n, metadata: { ...(n.metadata as Obj), labels } });
const SECRET = 's3cret-value';
const resolveSecret = (name: string, key: string) => (name === 'bgp' && key === 'tor' ? SECRET : undefined);

const snap = snapshotOf(
  pool('p', '10.244.0.0/16'),
  labelled(node('node1', '10.99.0.2/24'), { rack: 'a' }), node('node2', '10.99.0.3/24'), node('node3', '10.99.0.10/24'),
  { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64600, listenPort: 1179 } },
  bgpPeer('tor', { peerIP: '10.99.0.254', asNumber: 65000, password: { secretKeyRef: { name: 'bgp', key: 'tor' } }, keepOriginalNextHop: true, numAllowedLocalASNumbers: 2 }),
  bgpPeer('rack-a', { nodeSelector: 'rack == "a"', peerIP: '10.99.0.253', asNumber: 65001 }),
  bgpPeer('other-node', { node: 'node2', peerIP: '10.99.0.252', asNumber: 65002 }),
  affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.64/26'),
  wep('node1', 'pod-a', ['10.244.0.70/32'], 'calia'),
);

test('the plan from the cached inputs is the snapshot\'s plan (speaker, peers with their password, exports)', () => {
  const fromSnap = computeBgpPlan(snap, 'node1', { resolveSecret });
  const inputs = bgpInputsOf(snap, 'node1');
  // written to the file as JSON and read back
  const read = checkBgpInputs(JSON.parse(JSON.stringify(inputs)));
  const fromCache = computeBgpPlan(snapshotOfBgpInputs(read, 'the model cache'), 'node1', { resolveSecret, exports: read.exports, learnedExport: read.learnedExport });
  assert.equal(fromCache.speaker, fromSnap.speaker);
  assert.equal(fromCache.learnedExport, fromSnap.learnedExport);
  assert.equal(fromSnap.learnedExport, { pools: [{ cidr: '10.244.0.0/16', exported: true }], blocks: ['10.244.0.0/26'] });
  // A cache written before the policy was kept: no pools, so nothing learned is passed on.
  const { learnedExport: _le, ...older } = read;
  assert.equal(computeBgpPlan(snapshotOfBgpInputs(older, 'the model cache'), 'node1', { resolveSecret, exports: older.exports }).learnedExport, { pools: [], blocks: [] });
  assert.is(JSON.stringify(fromCache.peers), JSON.stringify(fromSnap.peers), 'the same peer configs, key order included (the speaker compares them as JSON)');
  assert.equal(fromCache.exports, fromSnap.exports);
  assert.equal(fromSnap.exports.map((e) => e.prefix), ['10.244.0.0/26', '10.244.0.70/32']);
  assert.equal(fromSnap.peers.map((p) => p.address), ['10.99.0.3', '10.99.0.10', '10.99.0.254', '10.99.0.253']);
  assert.is(fromCache.peers.find((p) => p.address === '10.99.0.254')?.password, SECRET);
  assert.is(fromCache.peers.find((p) => p.address === '10.99.0.254')?.allowLocalAs, 2, 'numAllowedLocalASNumbers kept in the cache');
  // another node's node-specific BGPPeer is not kept
  assert.equal(inputs.peers.map((p) => p.name), ['tor', 'rack-a']);
});

test('another node\'s BGPPeer naming this node by its address is kept: the reverse peering from the cache is the snapshot\'s', () => {
  const oneWay = snapshotOf(
    pool('p', '10.244.0.0/16'), node('node1', '10.99.0.2/24'), node('node2', '10.99.0.3/24'),
    { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { nodeToNodeMeshEnabled: false } },
    bgpPeer('to-node1', { node: 'node2', peerIP: '10.99.0.2', asNumber: 64512 }),
    bgpPeer('elsewhere', { node: 'node2', peerIP: '10.99.0.99', asNumber: 64512 }),
  );
  const inputs = checkBgpInputs(JSON.parse(JSON.stringify(bgpInputsOf(oneWay, 'node1'))));
  assert.equal(inputs.peers.map((p) => p.name), ['to-node1']);
  const fromCache = computeBgpPlan(snapshotOfBgpInputs(inputs, 'the model cache'), 'node1', { exports: inputs.exports, learnedExport: inputs.learnedExport });
  assert.equal(fromCache.peers.map((p) => [p.address, p.source]), [['10.99.0.3', 'BGPPeer to-node1 (reverse)']]);
  assert.is(JSON.stringify(fromCache.peers), JSON.stringify(computeBgpPlan(oneWay, 'node1').peers));
});

test('another node\'s BGPPeer with a peerSelector selecting this node (a route reflector) is kept: the reverse peering from the cache is the snapshot\'s', () => {
  const rr = node('node1', '10.99.0.2/24');
  const toRr = snapshotOf(
    pool('p', '10.244.0.0/16'), { ...rr, metadata: { name: 'node1', labels: { rr: 'true' } } }, node('node2', '10.99.0.3/24'),
    { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { nodeToNodeMeshEnabled: false } },
    bgpPeer('node2-to-rr', { node: 'node2', peerSelector: "rr == 'true'" }),
  );
  const inputs = checkBgpInputs(JSON.parse(JSON.stringify(bgpInputsOf(toRr, 'node1'))));
  assert.equal(inputs.peers.map((p) => p.name), ['node2-to-rr']);
  const fromSnap = computeBgpPlan(toRr, 'node1').peers;
  assert.equal(fromSnap.map((p) => [p.address, p.source]), [['10.99.0.3', 'BGPPeer node2-to-rr (reverse)']]);
  const fromCache = computeBgpPlan(snapshotOfBgpInputs(inputs, 'the model cache'), 'node1', { exports: inputs.exports, learnedExport: inputs.learnedExport });
  assert.is(JSON.stringify(fromCache.peers), JSON.stringify(fromSnap));
});

test('a password is kept as its secret reference, never its value; a secret not there leaves that peer out, said', () => {
  const text = JSON.stringify(bgpInputsOf(snap, 'node1'));
  assert.ok(text.includes('"secretKeyRef":{"name":"bgp","key":"tor"}'), text);
  const inputs = checkBgpInputs(JSON.parse(text));
  const plan = computeBgpPlan(snapshotOfBgpInputs(inputs, 'the model cache'), 'node1', { exports: inputs.exports });
  assert.not.ok(plan.peers.some((p) => p.address === '10.99.0.254'));
  assert.ok(plan.warnings.some((w) => /BGPPeer tor: spec.password: secret bgp\/tor is not available; peer left out/.test(w)), plan.warnings.join('\n'));
});

test('a password from --bgp-secrets is in the plan, never in the model cache file written (its reference is; read back, the plan has the password again)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podway-cached-secret-'));
  try {
    const secrets = join(dir, 'secrets');
    mkdirSync(join(secrets, 'bgp'), { recursive: true });
    writeFileSync(join(secrets, 'bgp', 'tor'), `${SECRET}\n`);
    const fromDir = (name: string, key: string) => secretFromDir(secrets, name, key);
    // the plan of the snapshot the settings are taken from has the password (podway run --bgp-secrets)
    const plan = computeBgpPlan(snap, 'node1', { resolveSecret: fromDir });
    assert.is(plan.peers.find((p) => p.address === '10.99.0.254')?.password, SECRET);
    const file = join(dir, 'node1.model.json');
    const writer = new ModelCacheWriter(file, 'node1', 'etcd:http://127.0.0.1:2379', { info: () => undefined, warn: (m) => { throw new Error(m); } }, 0);
    writer.node({ uid: 'u-1', createRevision: 5 });
    writer.applied(computeNodeModel(snap, 'node1'), new Date(), bgpInputsOf(snap, 'node1'));
    await writer.stop();
    const onDisk = readFileSync(file, 'utf8');
    assert.ok(onDisk.includes('secretKeyRef'), 'the reference is written');
    assert.not.ok(onDisk.includes(SECRET), 'the value is not');
    const read = readModelCache(file, 'node1', 'etcd:http://127.0.0.1:2379');
    if (read === 'none' || 'refused' in read || !read.bgp) throw new Error(`not read back: ${JSON.stringify(read).slice(0, 200)}`);
    const again = computeBgpPlan(snapshotOfBgpInputs(read.bgp, 'the model cache'), 'node1', { resolveSecret: fromDir, exports: read.bgp.exports });
    assert.is(again.peers.find((p) => p.address === '10.99.0.254')?.password, SECRET);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed inputs are refused naming the field', () => {
  const good = JSON.parse(JSON.stringify(bgpInputsOf(snap, 'node1'))) as Obj;
  const err = (v: unknown) => { try { checkBgpInputs(v); return 'accepted'; } catch (e) { return (e as Error).message; } };
  assert.is(err(good), 'accepted');
  assert.is(err(null), 'the BGP settings are malformed (bgp.not an object)');
  assert.is(err({ ...good, nodes: [{ labels: {} }] }), 'the BGP settings are malformed (bgp.nodes[0].name)');
  assert.is(err({ ...good, peers: [{ name: 'x' }] }), 'the BGP settings are malformed (bgp.peers[0])');
  assert.is(err({ ...good, exports: [{ prefix: 1 }] }), 'the BGP settings are malformed (bgp.exports[0].prefix)');
  assert.is(err({ ...good, config: 'x' }), 'the BGP settings are malformed (bgp.config)');
  assert.is(err({ ...good, learnedExport: { pools: [{ cidr: '10.244.0.1/16', exported: true }], blocks: [] } }), 'the BGP settings are malformed (bgp.learnedExport.pools[0])');
  assert.is(err({ ...good, learnedExport: { pools: [{ cidr: '10.244.0.0/16' }], blocks: [] } }), 'the BGP settings are malformed (bgp.learnedExport.pools[0])');
  assert.is(err({ ...good, learnedExport: { pools: [], blocks: ['x'] } }), 'the BGP settings are malformed (bgp.learnedExport.blocks[0])');
  assert.is(err({ ...good, learnedExport: [] }), 'the BGP settings are malformed (bgp.learnedExport.pools)');
  const { learnedExport: _le, ...older } = good;
  assert.is(err(older), 'accepted', 'a cache written before the policy was kept');
});

test('BGPPeer session fields (keepaliveTime, maxRestartTime, sourceAddress, nextHopMode, reversePeering, ttlSecurity, localASNumber) and the BGPFilters its filters name are kept: the plan from the cache is the snapshot\'s', () => {
  const fields = snapshotOf(
    pool('p', '10.244.0.0/16'), node('node1', '10.99.0.2/24'), node('node2', '10.99.0.3/24'),
    { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { nodeToNodeMeshEnabled: false } },
    bgpPeer('tor', { peerIP: '10.99.0.254', asNumber: 65000, keepaliveTime: '20s', maxRestartTime: '3m', sourceAddress: 'None', nextHopMode: 'Self', filters: ['f'], ttlSecurity: 2, localASNumber: 65010 }),
    bgpPeer('manual', { node: 'node2', peerIP: '10.99.0.2', asNumber: 64512, reversePeering: 'Manual' }),
    { apiVersion: API, kind: 'BGPFilter', metadata: { name: 'f' }, spec: { exportV4: [{ cidr: '10.244.0.0/16', matchOperator: 'In', prefixLength: { min: 32 }, action: 'Reject' }] } },
    { apiVersion: API, kind: 'BGPFilter', metadata: { name: 'unused' }, spec: { exportV4: [{ action: 'Reject' }] } },
  );
  const fromSnap = computeBgpPlan(fields, 'node1');
  assert.equal(bgpInputsOf(fields, 'node1').filters?.map((f) => f.name), ['f'], 'only the BGPFilters a kept BGPPeer names');
  const inputs = checkBgpInputs(JSON.parse(JSON.stringify(bgpInputsOf(fields, 'node1'))));
  const fromCache = computeBgpPlan(snapshotOfBgpInputs(inputs, 'the model cache'), 'node1', { exports: inputs.exports, learnedExport: inputs.learnedExport });
  assert.equal(fromSnap.peers.map((p) => [p.address, p.keepaliveSeconds, p.gracefulRestartSeconds, p.localAddress, p.nextHopSelf, p.ttlSecurity, p.localAs, p.filters?.map((f) => f.name)]),
    [['10.99.0.254', 20, 180, undefined, true, 2, 65010, ['f']]], 'no reverse peering (Manual), the tor\'s settings');
  assert.is(JSON.stringify(fromCache.peers), JSON.stringify(fromSnap.peers));
  assert.equal(fromCache.warnings, fromSnap.warnings);
  assert.equal(fromSnap.warnings, [], fromSnap.warnings.join('\n'));
});

test('BGPConfiguration node.NAME in the cache: this node\'s listen port and the port each other node is dialled on are the snapshot\'s; a cache without them (an older podway\'s) reads, on default\'s ports', () => {
  const perNode = (name: string, listenPort: number): Obj => ({ apiVersion: API, kind: 'BGPConfiguration', metadata: { name: `node.${name}` }, spec: { listenPort } });
  const ported = snapshotOf(
    pool('p', '10.244.0.0/16'), node('node1', '10.99.0.2/24'), node('node2', '10.99.0.3/24'), node('node3', '10.99.0.10/24'),
    { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: 1179 } },
    perNode('node1', 1181), perNode('node3', 1183), perNode('gone', 1189),
  );
  const inputs = bgpInputsOf(ported, 'node1');
  assert.equal(inputs.nodeConfigs, [{ name: 'node.node1', spec: { listenPort: 1181 } }, { name: 'node.node3', spec: { listenPort: 1183 } }], 'those of the Nodes here');
  const read = checkBgpInputs(JSON.parse(JSON.stringify(inputs)));
  const fromSnap = computeBgpPlan(ported, 'node1');
  const fromCache = computeBgpPlan(snapshotOfBgpInputs(read, 'the model cache'), 'node1', { exports: read.exports, learnedExport: read.learnedExport });
  assert.equal(fromSnap.speaker.listenPort, 1181);
  assert.equal(fromSnap.peers.map((p) => [p.address, p.port]), [['10.99.0.3', 1179], ['10.99.0.10', 1183]]);
  assert.equal(fromCache.speaker, fromSnap.speaker);
  assert.is(JSON.stringify(fromCache.peers), JSON.stringify(fromSnap.peers));
  // Without per-node ones the inputs are as an older podway wrote them (no nodeConfigs field).
  assert.not.ok('nodeConfigs' in bgpInputsOf(snap, 'node1'));
  // An older podway's cache (no nodeConfigs): read, and planned on default's port for every node.
  const { nodeConfigs: _nc, ...older } = read;
  const fromOlder = computeBgpPlan(snapshotOfBgpInputs(checkBgpInputs(older), 'the model cache'), 'node1', { exports: older.exports, learnedExport: older.learnedExport });
  assert.equal([fromOlder.speaker.listenPort, ...fromOlder.peers.map((p) => p.port)], [1179, 1179, 1179]);
  // Malformed, named.
  const err = (v: unknown) => { try { checkBgpInputs(v); return 'accepted'; } catch (e) { return (e as Error).message; } };
  assert.is(err({ ...read, nodeConfigs: {} }), 'the BGP settings are malformed (bgp.nodeConfigs)');
  assert.is(err({ ...read, nodeConfigs: [{ name: 'node.node1', spec: 5 }] }), 'the BGP settings are malformed (bgp.nodeConfigs[0])');
  assert.is(err({ ...read, nodeConfigs: [{ name: 'default', spec: {} }] }), 'the BGP settings are malformed (bgp.nodeConfigs[0])');
  // A listen port of the wrong type there (unchecked JSON): as if unset.
  const odd = computeBgpPlan(snapshotOfBgpInputs(checkBgpInputs({ ...read, nodeConfigs: [{ name: 'node.node1', spec: { listenPort: '1181' } }] }), 'the model cache'), 'node1', { exports: read.exports });
  assert.is(odd.speaker.listenPort, 1179);
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}


test('an agent started on the cached inputs peers (loopback mesh), and the same snapshot then changes nothing: one speaker, the session stays up', async () => {
  const port = await freePort();
  const config = { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: port, bindMode: 'NodeIP' } };
  const mesh = snapshotOf(pool('p', '10.244.0.0/16'), config, node('node1', '127.0.0.1/8'), node('node2', '127.0.0.2/8'), affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.64/26'));
  const learned = new Map<string, readonly LearnedRoute[]>();
  const logs: string[] = [];
  let made = 0;
  const agents = ['node1', 'node2'].map((name) => new BgpAgent({
    node: name,
    createSpeaker: (o) => { made += name === 'node1' ? 1 : 0; return new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: (_l, m) => logs.push(`${name}: ${m}`) }); },
    log: (m) => logs.push(`${name}: ${m}`),
    onLearned: (routes) => learned.set(name, routes),
  }));
  try {
    // node1 on its cache (written as JSON, read back), node2 on the datastore.
    const inputs = checkBgpInputs(JSON.parse(JSON.stringify(bgpInputsOf(mesh, 'node1'))));
    assert.not.ok(agents[0]!.hasPlan());
    agents[0]!.update(snapshotOfBgpInputs(inputs, 'the model cache'), { exports: inputs.exports, learnedExport: inputs.learnedExport });
    assert.ok(agents[0]!.hasPlan());
    agents[1]!.update(mesh);
    assert.ok(await until(() => learned.get('node2')?.[0]?.prefix === '10.244.0.0/26' && learned.get('node1')?.[0]?.prefix === '10.244.0.64/26', 15_000), `learned: ${JSON.stringify([...learned])}\n${logs.join('\n')}`);
    const before = agents[0]!.status().peers[0]!;
    const before2 = agents[1]!.status().peers[0]!;
    assert.is(before.bgpState, 'Established');
    // The datastore answers with the same settings: nothing to do for the speaker.
    assert.is(agents[0]!.update(mesh), '', 'the datastore\'s settings change nothing');
    await new Promise((r) => setTimeout(r, 1500));
    const after = agents[0]!.status().peers[0]!;
    assert.is(made, 1, 'the speaker was not replaced');
    assert.is(after.bgpState, 'Established');
    assert.is(after.since, before.since, 'the session stayed up');
    assert.is(agents[1]!.status().peers[0]!.since, before2.since, 'node2\'s side stayed up too');
    assert.equal(learned.get('node2'), [{ prefix: '10.244.0.0/26', nextHop: '127.0.0.1', peer: '127.0.0.1' }]);
    assert.not.ok(logs.some((l) => /session down|restarting the speaker/.test(l)), logs.join('\n'));
  } finally {
    await Promise.all(agents.map((a) => a.stop({ graceful: false })));
  }
});

test.run();
