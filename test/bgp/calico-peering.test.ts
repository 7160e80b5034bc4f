// Calico's peering model (src/control/bgp/peering.ts) and exports (exports.ts) from datastore
// resources, checked against what confd renders for BIRD in the same situations.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeBgpPlan, DEFAULT_AS_NUMBER, hashRouterId } from '../../src/control/bgp/peering';
import { computeExports, computeLearnedExportPolicy } from '../../src/control/bgp/exports';
import { affinity, node, pool, snapshotOf, wep, errorOf, yamlOf } from '../control/fixtures';

const API = 'projectcalico.org/v3';
type Obj = Record<string, unknown>;
const bgpConfig = (spec: Obj): Obj => ({ apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec });
const bgpPeer = (name: string, spec: Obj): Obj => ({ apiVersion: API, kind: 'BGPPeer', metadata: { name }, spec });
const labelled = (n: Obj, labels: Record<string, string>): Obj => ({ ...n, metadata: { ...(n.metadata as Obj), labels } });

// 10.99.0.10 < 10.99.0.2 < 10.99.0.3 as strings (Calico's comparison), unlike as numbers.
const nodes = [node('node1', '10.99.0.2/24'), node('node2', '10.99.0.3/24'), node('node3', '10.99.0.10/24')];
const ippool = pool('p', '10.244.0.0/16');

test('mesh by default: AS 64512, one session per other node, passive when the other address is the larger string', () => {
  const plan = computeBgpPlan(snapshotOf(ippool, ...nodes), 'node1');
  assert.equal(plan.speaker, { localAs: DEFAULT_AS_NUMBER, routerId: '10.99.0.2', gracefulRestartSeconds: 120 });
  assert.equal(plan.peers.map((p) => [p.name, p.address, p.asNumber, p.passive, p.type, p.localAddress]), [
    ['Mesh_10_99_0_3', '10.99.0.3', 64512, true, 'node-to-node mesh', '10.99.0.2'],
    ['Mesh_10_99_0_10', '10.99.0.10', 64512, false, 'node-to-node mesh', '10.99.0.2'],
  ]);
  // Each pair is active on exactly one side.
  const plans = ['node1', 'node2', 'node3'].map((n) => computeBgpPlan(snapshotOf(ippool, ...nodes), n));
  for (const a of plans) {
    for (const b of plans) {
      if (a === b) continue;
      const ab = a.peers.find((p) => p.address === b.speaker.routerId)!;
      const ba = b.peers.find((p) => p.address === a.speaker.routerId)!;
      assert.is(ab.passive !== ba.passive, true, `${a.node}<->${b.node}`);
    }
  }
  assert.equal(plan.warnings, []);
});

test('BGPConfiguration asNumber and Node asNumber; mesh off leaves no mesh sessions', () => {
  const snap = snapshotOf(ippool, bgpConfig({ asNumber: 65001 }), node('node1', '10.99.0.2/24', undefined, { bgp: { ipv4Address: '10.99.0.2/24', asNumber: 65100 } }), nodes[1]!);
  assert.is(computeBgpPlan(snap, 'node1').speaker.localAs, 65100);
  const plan2 = computeBgpPlan(snap, 'node2');
  assert.is(plan2.speaker.localAs, 65001);
  assert.equal(plan2.peers.map((p) => [p.address, p.asNumber]), [['10.99.0.2', 65100]]);
  const ported = computeBgpPlan(snapshotOf(ippool, bgpConfig({ listenPort: 1179 }), ...nodes), 'node1');
  assert.equal(ported.peers.map((p) => p.port), [1179, 1179], 'mesh peers listen on the cluster\'s port too');
  const off = computeBgpPlan(snapshotOf(ippool, bgpConfig({ nodeToNodeMeshEnabled: false, listenPort: 1179, bindMode: 'NodeIP' }), ...nodes), 'node1');
  assert.equal(off.peers, []);
  assert.equal(off.speaker, { localAs: 64512, routerId: '10.99.0.2', gracefulRestartSeconds: 120, listenPort: 1179, listenAddress: '10.99.0.2' });
  // AS 0 (reserved, RFC 7607) stored in a Node or BGPConfiguration: as unset, with a warning
  const zero = computeBgpPlan(snapshotOf(ippool, bgpConfig({ asNumber: 0 }), node('node1', '10.99.0.2/24', undefined, { bgp: { ipv4Address: '10.99.0.2/24', asNumber: 0 } }), nodes[1]!, bgpPeer('zero', { peerIP: '10.99.0.251', asNumber: 0 })), 'node1');
  assert.ok(zero.warnings.includes('BGPPeer zero: spec.asNumber 0 is reserved (RFC 7607) and can never establish; skipped'), JSON.stringify(zero.warnings));
  assert.is(zero.speaker.localAs, 64512);
  assert.equal(zero.peers.map((p) => p.asNumber), [64512]);
  assert.ok(zero.warnings.some((w) => /BGPConfiguration default: spec\.asNumber 0 is reserved/.test(w)), JSON.stringify(zero.warnings));
  assert.ok(zero.warnings.some((w) => /Node node1: spec\.bgp\.asNumber 0 is reserved/.test(w)), JSON.stringify(zero.warnings));
});

test('global and node-specific BGPPeers: node, nodeSelector, peerIP with port, keepOriginalNextHop, numAllowedLocalASNumbers', () => {
  const snap = snapshotOf(
    ippool,
    labelled(nodes[0]!, { rack: 'a' }), labelled(nodes[1]!, { rack: 'b' }), nodes[2]!,
    bgpConfig({ nodeToNodeMeshEnabled: false }),
    bgpPeer('tor', { peerIP: '10.99.0.254', asNumber: 65000, numAllowedLocalASNumbers: 0 }),
    bgpPeer('rack-a', { nodeSelector: "rack == 'a'", peerIP: '10.99.0.253:1179', asNumber: 65000, keepOriginalNextHop: true, numAllowedLocalASNumbers: 3 }),
    bgpPeer('only-node2', { node: 'node2', peerIP: '10.99.0.252', asNumber: 64512 }),
  );
  const one = computeBgpPlan(snap, 'node1');
  assert.equal(one.peers.map((p) => [p.name, p.type, p.address, p.port, p.asNumber, p.keepOriginalNextHop, p.passive, p.source, p.allowLocalAs]), [
    ['Global_10_99_0_254', 'global', '10.99.0.254', undefined, 65000, undefined, undefined, 'BGPPeer tor', undefined],
    ['Node_10_99_0_253', 'node specific', '10.99.0.253', 1179, 65000, true, undefined, 'BGPPeer rack-a', 3],
  ]);
  const two = computeBgpPlan(snap, 'node2');
  assert.equal(two.peers.map((p) => [p.name, p.type]), [['Global_10_99_0_254', 'global'], ['Node_10_99_0_252', 'node specific']]);
  const three = computeBgpPlan(snap, 'node3');
  assert.equal(three.peers.map((p) => p.address), ['10.99.0.254']);
});

test('route reflectors: the reflector skips the mesh, others do not mesh with it, peerSelector makes clients', () => {
  const rr = node('rr1', '10.99.0.100/24', undefined, { bgp: { ipv4Address: '10.99.0.100/24', routeReflectorClusterID: '224.0.0.1' } });
  const snap = snapshotOf(
    ippool, labelled(rr, { 'route-reflector': 'true' }), ...nodes,
    bgpPeer('to-rr', { nodeSelector: '!has(route-reflector)', peerSelector: 'has(route-reflector)' }),
    bgpPeer('rr-clients', { nodeSelector: 'has(route-reflector)', peerSelector: '!has(route-reflector)' }),
  );
  const reflector = computeBgpPlan(snap, 'rr1');
  assert.is(reflector.speaker.clusterId, '224.0.0.1');
  assert.equal(reflector.peers.map((p) => [p.address, p.type, p.routeReflectorClient, p.passive]), [
    ['10.99.0.2', 'node specific', true, true],
    ['10.99.0.3', 'node specific', true, true],
    ['10.99.0.10', 'node specific', true, false],
  ]);
  const client = computeBgpPlan(snap, 'node1');
  assert.is(client.speaker.clusterId, undefined);
  // Mesh with the two other clients, and the reflector through the BGPPeer (active: "10.99.0.100" < "10.99.0.2").
  assert.equal(client.peers.map((p) => [p.address, p.type, p.routeReflectorClient, p.passive]), [
    ['10.99.0.3', 'node-to-node mesh', undefined, true],
    ['10.99.0.10', 'node-to-node mesh', undefined, false],
    ['10.99.0.100', 'node specific', undefined, false],
  ]);
});

test('reverse peerings (confd\'s second pass): the reflectors a peerSelector selects peer back with the nodes the BGPPeer is for, as rr clients', () => {
  // Calico's documented route-reflector setup: one BGPPeer, from every node to the reflectors.
  const rr = node('rr1', '10.99.0.100/24', undefined, { bgp: { ipv4Address: '10.99.0.100/24', routeReflectorClusterID: '224.0.0.1' } });
  const snap = snapshotOf(
    ippool, labelled(rr, { 'route-reflector': 'true' }), ...nodes,
    bgpConfig({ nodeToNodeMeshEnabled: false }),
    bgpPeer('peer-with-rrs', { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" }),
  );
  const reflector = computeBgpPlan(snap, 'rr1');
  assert.equal(reflector.peers.map((p) => [p.name, p.address, p.type, p.routeReflectorClient, p.passive, p.source]), [
    ['Node_10_99_0_2', '10.99.0.2', 'node specific', true, true, 'BGPPeer peer-with-rrs (reverse)'],
    ['Node_10_99_0_3', '10.99.0.3', 'node specific', true, true, 'BGPPeer peer-with-rrs (reverse)'],
    ['Node_10_99_0_10', '10.99.0.10', 'node specific', true, false, 'BGPPeer peer-with-rrs (reverse)'],
  ]);
  assert.equal(reflector.warnings, []);
  // Every pair has a session on both ends, active on exactly one.
  for (const n of ['node1', 'node2', 'node3']) {
    const plan = computeBgpPlan(snap, n);
    assert.equal(plan.peers.map((p) => [p.address, p.type, p.routeReflectorClient]), [['10.99.0.100', 'node specific', undefined]], n);
    const back = reflector.peers.find((p) => p.address === plan.speaker.routerId)!;
    assert.is(plan.peers[0]!.passive !== back.passive, true, n);
  }
  // Mesh on: the reflector skips the mesh, the clients mesh among themselves and peer it.
  const meshed = snapshotOf(ippool, labelled(rr, { 'route-reflector': 'true' }), ...nodes, bgpPeer('peer-with-rrs', { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" }));
  assert.equal(computeBgpPlan(meshed, 'rr1').peers.map((p) => p.address), ['10.99.0.2', '10.99.0.3', '10.99.0.10']);
  assert.equal(computeBgpPlan(meshed, 'node1').peers.map((p) => [p.address, p.type]), [['10.99.0.3', 'node-to-node mesh'], ['10.99.0.10', 'node-to-node mesh'], ['10.99.0.100', 'node specific']]);
  // A nodeSelector narrows the reverse side too; a password comes along; a reflector of another
  // cluster is a client (confd: rr_cluster_id differs), one of ours is not.
  const rr2 = node('rr2', '10.99.0.101/24', undefined, { bgp: { ipv4Address: '10.99.0.101/24', routeReflectorClusterID: '224.0.0.2' } });
  const rr3 = node('rr3', '10.99.0.102/24', undefined, { bgp: { ipv4Address: '10.99.0.102/24', routeReflectorClusterID: '224.0.0.1' } });
  const narrow = snapshotOf(
    ippool, labelled(rr, { 'route-reflector': 'true' }), labelled(rr2, { rack: 'a' }), labelled(rr3, { rack: 'a' }), labelled(nodes[0]!, { rack: 'a' }), ...nodes.slice(1),
    bgpConfig({ nodeToNodeMeshEnabled: false }),
    bgpPeer('rack-a', { nodeSelector: "rack == 'a'", peerSelector: "route-reflector == 'true'", password: { secretKeyRef: { name: 'bgp', key: 'rr' } } }),
  );
  assert.equal(computeBgpPlan(narrow, 'rr1', { resolveSecret: () => 'pw' }).peers.map((p) => [p.address, p.routeReflectorClient, p.password]), [
    ['10.99.0.101', true, 'pw'], ['10.99.0.102', undefined, 'pw'], ['10.99.0.2', true, 'pw'],
  ]);
  const noSecret = computeBgpPlan(narrow, 'rr1');
  assert.equal(noSecret.peers, []);
  assert.equal(noSecret.warnings, ['BGPPeer rack-a: spec.password: secret bgp/rr is not available; reverse peerings left out']);
});

test('reverse peerings: a BGPPeer whose peerIP is a node\'s address and AS makes that node peer back (the string rule picks the passive side); another AS or port does not', () => {
  const snap = (spec: Obj, ...extra: Obj[]) => snapshotOf(ippool, ...nodes, bgpConfig({ nodeToNodeMeshEnabled: false }), bgpPeer('one-way', spec), ...extra);
  const one = snap({ node: 'node1', peerIP: '10.99.0.10', asNumber: 64512 });
  const fwd = computeBgpPlan(one, 'node1').peers;
  const back = computeBgpPlan(one, 'node3').peers;
  assert.equal(fwd.map((p) => [p.name, p.address, p.passive]), [['Node_10_99_0_10', '10.99.0.10', false]], '"10.99.0.10" < "10.99.0.2": node1 dials');
  assert.equal(back.map((p) => [p.name, p.address, p.type, p.passive, p.source]), [['Node_10_99_0_2', '10.99.0.2', 'node specific', true, 'BGPPeer one-way (reverse)']]);
  assert.equal(computeBgpPlan(one, 'node2').peers, []);
  // A global one (no node, no nodeSelector): the named node peers back with every node.
  const global = snap({ peerIP: '10.99.0.3', asNumber: 64512 });
  assert.equal(computeBgpPlan(global, 'node2').peers.map((p) => [p.address, p.passive]), [['10.99.0.2', false], ['10.99.0.10', false]]);
  assert.equal(computeBgpPlan(global, 'node1').peers.map((p) => [p.address, p.type, p.passive]), [['10.99.0.3', 'global', true]]);
  assert.equal(computeBgpPlan(global, 'node3').peers.map((p) => [p.address, p.type, p.passive]), [['10.99.0.3', 'global', true]]);
  // Another AS than the node's: an external speaker at that address, no reverse; the forward
  // session keeps dialling (no passive).
  const otherAs = snap({ node: 'node1', peerIP: '10.99.0.10', asNumber: 65000 });
  assert.equal(computeBgpPlan(otherAs, 'node3').peers, []);
  assert.equal(computeBgpPlan(otherAs, 'node1').peers.map((p) => p.passive), [undefined]);
  // A port other than the cluster's listenPort: not the node; the same port: the node.
  const ported = (port: number) => snapshotOf(ippool, ...nodes, bgpConfig({ nodeToNodeMeshEnabled: false, listenPort: 1179 }), bgpPeer('one-way', { node: 'node1', peerIP: `10.99.0.10:${port}`, asNumber: 64512 }));
  assert.equal(computeBgpPlan(ported(1180), 'node3').peers, []);
  assert.equal(computeBgpPlan(ported(1179), 'node3').peers.map((p) => [p.address, p.port]), [['10.99.0.2', 1179]]);
  // No port: a node's address with its AS is dialled on the cluster's listenPort (confd's
  // nodesWithIPPortAndAS), another AS (an outside speaker there) on 179.
  const portless = (asNumber: number) => snapshotOf(ippool, ...nodes, bgpConfig({ nodeToNodeMeshEnabled: false, listenPort: 1179 }), bgpPeer('one-way', { node: 'node1', peerIP: '10.99.0.10', asNumber }));
  assert.equal(computeBgpPlan(portless(64512), 'node1').peers.map((p) => [p.address, p.port, p.passive]), [['10.99.0.10', 1179, false]]);
  assert.equal(computeBgpPlan(portless(65000), 'node1').peers.map((p) => [p.address, p.port]), [['10.99.0.10', undefined]]);
  // An explicit BGPPeer the other way wins over the reverse one, without a warning.
  const both = snap({ node: 'node1', peerIP: '10.99.0.10', asNumber: 64512 }, bgpPeer('back', { node: 'node3', peerIP: '10.99.0.2:179', asNumber: 64512 }));
  const at3 = computeBgpPlan(both, 'node3');
  assert.equal(at3.peers.map((p) => [p.address, p.port, p.source]), [['10.99.0.2', 179, 'BGPPeer back']]);
  assert.equal(at3.warnings, []);
});

test('keepOriginalNextHop and numAllowedLocalASNumbers as confd gives them: the peerIP session gets both; peerSelector sessions and reverse peerings (nodeAsBGPPeers) keepOriginalNextHop only, with a warning when numAllowedLocalASNumbers is set', () => {
  // node1 (AS 65001, rack a) and node2 (AS 65002, rack b): eBGP between racks.
  const n1 = labelled(node('node1', '10.99.0.2/24', undefined, { bgp: { ipv4Address: '10.99.0.2/24', asNumber: 65001 } }), { rack: 'a' });
  const n2 = labelled(node('node2', '10.99.0.3/24', undefined, { bgp: { ipv4Address: '10.99.0.3/24', asNumber: 65002 } }), { rack: 'b' });
  const opts = { keepOriginalNextHop: true, numAllowedLocalASNumbers: 2 };
  const bySelector = snapshotOf(ippool, n1, n2, bgpConfig({ nodeToNodeMeshEnabled: false }),
    bgpPeer('a-to-b', { nodeSelector: "rack == 'a'", peerSelector: "rack == 'b'", ...opts }),
    bgpPeer('tor', { peerIP: '10.99.0.254', asNumber: 65000, ...opts }));
  const fwd = computeBgpPlan(bySelector, 'node1');
  assert.equal(fwd.peers.map((p) => [p.address, p.source, p.keepOriginalNextHop, p.allowLocalAs]), [
    ['10.99.0.3', 'BGPPeer a-to-b', true, undefined],
    ['10.99.0.254', 'BGPPeer tor', true, 2],
  ]);
  assert.equal(fwd.warnings, ['BGPPeer a-to-b: spec.numAllowedLocalASNumbers 2 is not applied to the sessions a peerSelector makes (calico-node\'s confd applies it to peerIP sessions only): routes with AS 65001 in their path are refused on them']);
  const rev = computeBgpPlan(bySelector, 'node2');
  assert.equal(rev.peers.map((p) => [p.address, p.source, p.keepOriginalNextHop, p.allowLocalAs]), [
    ['10.99.0.254', 'BGPPeer tor', true, 2],
    ['10.99.0.2', 'BGPPeer a-to-b (reverse)', true, undefined],
  ]);
  // A peerIP naming node2 (its address and AS): node2's reverse session keeps the next hop, allows no local AS.
  const byIp = snapshotOf(ippool, n1, n2, bgpConfig({ nodeToNodeMeshEnabled: false }), bgpPeer('one-way', { node: 'node1', peerIP: '10.99.0.3', asNumber: 65002, ...opts }));
  assert.equal(computeBgpPlan(byIp, 'node1').peers.map((p) => [p.address, p.keepOriginalNextHop, p.allowLocalAs]), [['10.99.0.3', true, 2]]);
  assert.equal(computeBgpPlan(byIp, 'node2').peers.map((p) => [p.address, p.source, p.keepOriginalNextHop, p.allowLocalAs]), [['10.99.0.2', 'BGPPeer one-way (reverse)', true, undefined]]);
  assert.equal(computeBgpPlan(byIp, 'node1').warnings, []);
});

test('duplicates keep the first rule, our own address is never a peer, bad selectors and missing secrets are reported', () => {
  const snap = snapshotOf(
    ippool, ...nodes,
    bgpPeer('dup', { peerIP: '10.99.0.3', asNumber: 64512 }),
    bgpPeer('self', { peerIP: '10.99.0.2', asNumber: 64512 }),
    bgpPeer('bad', { nodeSelector: 'rack == "x"', peerIP: '10.99.0.250', asNumber: 65000 }),
    bgpPeer('secret', { peerIP: '10.99.0.251', asNumber: 65000, password: { secretKeyRef: { name: 'bgp', key: 'tor' } } }),
    bgpPeer('v6', { peerIP: 'fd00::1', asNumber: 65000 }),
  );
  // a malformed selector as another tool may have stored it in etcd (a YAML file with it is refused)
  (snap.bgpPeers!.find((p) => p.metadata.name === 'bad')!.spec as { nodeSelector?: string }).nodeSelector = 'rack ==';
  const plan = computeBgpPlan(snap, 'node1');
  assert.equal(plan.peers.map((p) => [p.address, p.source]), [['10.99.0.3', 'mesh'], ['10.99.0.10', 'mesh']]);
  assert.is(plan.warnings.length, 4);
  assert.match(plan.warnings[0]!, /BGPPeer dup: 10.99.0.3 is already peered by mesh/);
  assert.match(plan.warnings[1]!, /BGPPeer bad: spec.nodeSelector: /);
  assert.match(plan.warnings[2]!, /BGPPeer secret: spec.password: secret bgp\/tor is not available/);
  assert.match(plan.warnings[3]!, /BGPPeer v6: spec.peerIP fd00::1 is IPv6 and node node1 has no spec.bgp.ipv6Address/);
  const withSecret = computeBgpPlan(snap, 'node1', { resolveSecret: (name, key) => (name === 'bgp' && key === 'tor' ? 's3cret' : undefined) });
  assert.equal(withSecret.peers.find((p) => p.address === '10.99.0.251')?.password, 's3cret');
});

test('a node without an address has no plan; a bad BGPPeer in a file is an error naming the field', () => {
  assert.throws(() => computeBgpPlan(snapshotOf(ippool, node('node1')), 'node1'), /node1.*no spec.bgp.ipv4Address/);
  assert.throws(() => computeBgpPlan(snapshotOf(ippool, ...nodes), 'nope'), /"nope" is not in/);
  const text = yamlOf(ippool, nodes[0]!, bgpPeer('x', { asNumber: 65000 }));
  assert.match(errorOf(text), /document 3 \(BGPPeer x\): spec.peerIP: required/);
  assert.match(errorOf(yamlOf(ippool, bgpPeer('x', { peerIP: '1.2.3.4', asNumber: 1 }), bgpPeer('x', { peerIP: '1.2.3.5', asNumber: 1 }))), /duplicate BGPPeer "x"/);
});

test('router ID: CALICO_ROUTER_ID (a.b.c.d, or hash: confd\'s hashToIPv4 of the node name) over the IPv4 address; an IPv6-only node peers over IPv6 alone, and without the setting has no plan, naming it', () => {
  const v6only = node('test-node-hash', undefined, undefined, { bgp: { ipv6Address: 'fd99::1/64' } });
  const docs = [ippool, ...nodes, v6only, node('node9', undefined, undefined, { bgp: { ipv6Address: 'fd99::9/64' } }),
    bgpPeer('tor4', { peerIP: '10.99.0.254', asNumber: 65000 }), bgpPeer('tor6', { peerIP: 'fd99::fe', asNumber: 65000 })];
  const snap = snapshotOf(...docs);
  // Hashes worked out apart from podway (Python's hashlib): sha256 bytes 0..3, byte 0 above 223 less 32.
  assert.is(hashRouterId('node1'), '202.18.243.27');
  assert.is(hashRouterId('test-node-hash'), '197.137.39.194', 'first byte 229: lowered by 32');
  assert.is(computeBgpPlan(snap, 'node1').speaker.routerId, '10.99.0.2', 'default: the IPv4 address');
  assert.is(computeBgpPlan(snap, 'node1', { routerId: 'hash' }).speaker.routerId, '202.18.243.27');
  assert.is(computeBgpPlan(snap, 'node1', { routerId: '192.0.2.77' }).speaker.routerId, '192.0.2.77');
  const plan = computeBgpPlan(snap, 'test-node-hash', { routerId: 'hash' });
  assert.is(plan.speaker.routerId, '197.137.39.194');
  // IPv6 sessions only: the IPv6 mesh and the IPv6 BGPPeer; the IPv4 BGPPeer skipped with a warning.
  assert.equal(plan.peers.map((p) => [p.address, p.families, p.localAddress]), [['fd99::9', ['ipv6'], 'fd99::1'], ['fd99::fe', ['ipv6'], 'fd99::1']]);
  assert.ok(plan.warnings.some((w) => w === 'BGPPeer tor4: spec.peerIP 10.99.0.254 is IPv4 and node test-node-hash has no spec.bgp.ipv4Address to peer from; skipped'), plan.warnings.join('\n'));
  // IPv4 nodes do not mesh with it over IPv4 (it has no IPv4 address).
  assert.not.ok(computeBgpPlan(snap, 'node1').peers.some((p) => p.address.startsWith('fd99::1')));
  assert.throws(() => computeBgpPlan(snap, 'test-node-hash'), /node "test-node-hash" has no spec.bgp.ipv4Address in .*, so no BGP router ID: an IPv6-only node needs CALICO_ROUTER_ID \(podway run --router-id\) set, to "hash"/);
  assert.throws(() => computeBgpPlan(snap, 'node1', { routerId: '1.2.3' }), /CALICO_ROUTER_ID \(podway run --router-id\) must be "hash" or a router ID in IPv4 form/);
});

test('exports: confirmed affine blocks and borrowed /32s, disabled pools\' too; not pending blocks, other nodes, disableBGPExport pools', () => {
  const snap = snapshotOf(
    pool('p', '10.244.0.0/16'), pool('off', '10.245.0.0/16', { disabled: true }), pool('quiet', '10.246.0.0/16', { disableBGPExport: true }),
    pool('vx', '10.247.0.0/16', { vxlanMode: 'Always' }),
    ...nodes,
    affinity('node1', '10.244.0.0/26'), affinity('node1', '10.244.1.0/26', 'pending'), affinity('node2', '10.244.0.64/26'),
    affinity('node1', '10.245.0.0/26'), affinity('node1', '10.246.0.0/26'), affinity('node1', '10.247.0.0/26'),
    wep('node1', 'a', ['10.244.0.5/32'], 'calia'),
    wep('node1', 'borrowed', ['10.244.0.70/32'], 'calib'),
    wep('node1', 'quiet', ['10.246.3.3/32'], 'calic'),
    wep('node1', 'off', ['10.245.9.9/32'], 'calie'),
    wep('node2', 'b', ['10.244.0.66/32'], 'calid'),
  );
  // A disabled pool only stops new assignments: its block and borrowed /32 are announced (Calico's
  // BIRD filter reads only disableBGPExport), so its pods stay reachable from other racks.
  assert.equal(computeExports(snap, 'node1'), [
    { prefix: '10.244.0.0/26' }, { prefix: '10.244.0.70/32' }, { prefix: '10.245.0.0/26' }, { prefix: '10.245.9.9/32' }, { prefix: '10.247.0.0/26' },
  ]);
  assert.equal(computeExports(snap, 'node2'), [{ prefix: '10.244.0.64/26' }]);
  assert.equal(computeExports(snap, 'node3'), []);
  assert.equal(computeBgpPlan(snap, 'node1').exports, computeExports(snap, 'node1'));
  // Learned routes: passed on inside any pool, a disabled one too (calico_export_to_bgp_peers
  // rejects only disableBGPExport pools); never strictly inside the node's own confirmed blocks.
  assert.equal(computeLearnedExportPolicy(snap, 'node1'), {
    pools: [
      { cidr: '10.244.0.0/16', exported: true }, { cidr: '10.245.0.0/16', exported: true },
      { cidr: '10.246.0.0/16', exported: false }, { cidr: '10.247.0.0/16', exported: true },
    ],
    blocks: ['10.244.0.0/26', '10.245.0.0/26', '10.246.0.0/26', '10.247.0.0/26'],
  });
});

// Dual-stack nodes: IPv4 and IPv6 address. fd00::10 < fd00::2 < fd00::3 as strings.
const dual = (name: string, v4: string, v6: string, bgp: Obj = {}): Obj => node(name, v4, undefined, { bgp: { ipv4Address: v4, ipv6Address: v6, ...bgp } });
const duals = [dual('node1', '10.99.0.2/24', 'fd00::2/64'), dual('node2', '10.99.0.3/24', 'fd00:0::3/64'), dual('node3', '10.99.0.10/24', 'fd00::10/64'), node('v4only', '10.99.0.4/24')];

test('IPv6 mesh (bird6): a session to every other node with an IPv6 address, from ours, IPv6 unicast only; IPv4 sessions IPv4 only', () => {
  const plan = computeBgpPlan(snapshotOf(ippool, ...duals), 'node1');
  assert.equal(plan.speaker.routerId, '10.99.0.2', 'the router ID stays the IPv4 address');
  assert.equal(plan.peers.map((p) => [p.name, p.address, p.passive, p.localAddress, p.families, p.type]), [
    ['Mesh_10_99_0_3', '10.99.0.3', true, '10.99.0.2', ['ipv4'], 'node-to-node mesh'],
    ['Mesh_10_99_0_10', '10.99.0.10', false, '10.99.0.2', ['ipv4'], 'node-to-node mesh'],
    ['Mesh_10_99_0_4', '10.99.0.4', true, '10.99.0.2', ['ipv4'], 'node-to-node mesh'],
    ['Mesh_fd00__3', 'fd00::3', true, 'fd00::2', ['ipv6'], 'node-to-node mesh'],
    ['Mesh_fd00__10', 'fd00::10', false, 'fd00::2', ['ipv6'], 'node-to-node mesh'],
  ]);
  assert.equal(plan.warnings, []);
  // Each IPv6 pair is active on exactly one side too.
  const plans = ['node1', 'node2', 'node3'].map((n) => computeBgpPlan(snapshotOf(ippool, ...duals), n));
  for (const a of plans) {
    for (const b of plans) {
      if (a === b) continue;
      const a6 = a.peers.find((p) => p.families?.[0] === 'ipv6' && p.address === b.peers.find((q) => q.families?.[0] === 'ipv6')!.localAddress)!;
      const b6 = b.peers.find((p) => p.address === a6.localAddress)!;
      assert.is(a6.passive !== b6.passive, true, `${a.node}<->${b.node}`);
    }
  }
  // The rule compares canonical texts, as calico-node's does: libcalico-go's BGP syncer stores a
  // Node's ipv6Address as ip_addr_v6 = the parsed address's Go String() (canonical, no prefix
  // length), and confd compares those strings. Raw text would disagree here ('FD00:0:0::0A' <
  // 'fd00::9' by bytes, but 'fd00::a' > 'fd00::9'), so podway and a calico-node could both wait.
  const odd = [dual('node-a', '10.99.0.2/24', 'FD00:0:0::0A/64'), dual('node-b', '10.99.0.3/24', 'fd00::9/64')];
  const atA = computeBgpPlan(snapshotOf(ippool, ...odd), 'node-a').peers.find((p) => p.families?.[0] === 'ipv6')!;
  const atB = computeBgpPlan(snapshotOf(ippool, ...odd), 'node-b').peers.find((p) => p.families?.[0] === 'ipv6')!;
  assert.equal([atA.address, atA.localAddress, atA.passive], ['fd00::9', 'fd00::a', false], 'node-a (fd00::a, the greater) dials');
  assert.equal([atB.address, atB.localAddress, atB.passive], ['fd00::a', 'fd00::9', true], 'node-b waits, as calico-node at fd00::9 would');
  // A node without an IPv6 address has no IPv6 sessions; nor does anyone with it.
  assert.equal(computeBgpPlan(snapshotOf(ippool, ...duals), 'v4only').peers.map((p) => p.address), ['10.99.0.2', '10.99.0.3', '10.99.0.10']);
  // bindMode NodeIP: listen on both node addresses.
  const bound = computeBgpPlan(snapshotOf(ippool, bgpConfig({ bindMode: 'NodeIP' }), ...duals), 'node1');
  assert.equal([bound.speaker.listenAddress, bound.speaker.listenAddress6], ['10.99.0.2', 'fd00::2']);
});

test('IPv6 BGPPeers: peerIP with and without [ ]:port, nodeSelector, peerSelector over both families, ourselves skipped', () => {
  const snap = snapshotOf(
    ippool, labelled(duals[0]!, { rack: 'a' }), labelled(duals[1]!, { rr: 'yes' }), duals[2]!,
    bgpConfig({ nodeToNodeMeshEnabled: false }),
    bgpPeer('tor6', { peerIP: 'FD00::FE', asNumber: 65000 }),
    bgpPeer('rack-a6', { nodeSelector: "rack == 'a'", peerIP: '[fd00::fd]:1179', asNumber: 65000, password: { secretKeyRef: { name: 'bgp', key: 'tor' } } }),
    bgpPeer('to-rr', { peerSelector: "rr == 'yes'" }),
    bgpPeer('self6', { peerIP: 'fd00::2', asNumber: 64512 }),
  );
  const plan = computeBgpPlan(snap, 'node1', { resolveSecret: () => 'pw' });
  assert.equal(plan.peers.map((p) => [p.name, p.type, p.address, p.port, p.asNumber, p.localAddress, p.families, p.password]), [
    ['Global_fd00__fe', 'global', 'fd00::fe', undefined, 65000, 'fd00::2', ['ipv6'], undefined],
    ['Node_fd00__fd', 'node specific', 'fd00::fd', 1179, 65000, 'fd00::2', ['ipv6'], 'pw'],
    ['Global_10_99_0_3', 'global', '10.99.0.3', undefined, 64512, '10.99.0.2', ['ipv4'], undefined],
    ['Global_fd00__3', 'global', 'fd00::3', undefined, 64512, 'fd00::2', ['ipv6'], undefined],
    // self6 names node1's own IPv6 address and AS: node1 peers back (confd's reverse peering)
    // with every node over IPv6, those not peered already: node3 (node2 is to-rr's).
    ['Node_fd00__10', 'node specific', 'fd00::10', undefined, 64512, 'fd00::2', ['ipv6'], undefined],
  ]);
  assert.equal(plan.warnings, []);
  assert.equal(computeBgpPlan(snap, 'node3', { resolveSecret: () => 'pw' }).peers.map((p) => p.address), ['fd00::fe', '10.99.0.3', 'fd00::3', 'fd00::2'], 'node1 is a global peer of the others');
});

test('IPv6 exports and learned-route filter: the same rules as IPv4 (blocks, borrowed /128s, pools, disableBGPExport, disabled pools still exported)', () => {
  const snap = snapshotOf(
    pool('p', '10.244.0.0/16'), pool('p6', 'fd00:10:244::/48'), pool('quiet6', 'fd00:10:246::/48', { disableBGPExport: true }), pool('off6', 'fd00:10:245::/48', { disabled: true }),
    ...duals,
    affinity('node1', '10.244.0.0/26'), affinity('node1', 'fd00:10:244::/122'), affinity('node1', 'fd00:10:244::40/122', 'pending'),
    affinity('node2', 'fd00:10:244::80/122'), affinity('node1', 'fd00:10:246::/122'), affinity('node1', 'fd00:10:245::/122'),
    wep('node1', 'a', ['10.244.0.5/32', 'fd00:10:244::5/128'], 'calia'),
    wep('node1', 'borrowed', ['fd00:10:244::85/128'], 'calib'),
    wep('node1', 'quiet', ['fd00:10:246::99/128'], 'calic'),
  );
  assert.equal(computeExports(snap, 'node1'), [{ prefix: '10.244.0.0/26' }, { prefix: 'fd00:10:244::/122' }, { prefix: 'fd00:10:244::85/128' }, { prefix: 'fd00:10:245::/122' }], 'a disabled pool\'s block too');
  assert.equal(computeExports(snap, 'node2'), [{ prefix: 'fd00:10:244::80/122' }]);
  const policy = computeLearnedExportPolicy(snap, 'node1');
  assert.equal(policy.pools, [
    { cidr: '10.244.0.0/16', exported: true }, { cidr: 'fd00:10:244::/48', exported: true },
    { cidr: 'fd00:10:246::/48', exported: false }, { cidr: 'fd00:10:245::/48', exported: true },
  ]);
  assert.equal(policy.blocks, ['10.244.0.0/26', 'fd00:10:244::/122', 'fd00:10:245::/122', 'fd00:10:246::/122']);
});

test('BGPPeer keepaliveTime, maxRestartTime, sourceAddress None, nextHopMode on every session it makes (confd setPeerConfigFieldsFromV3Resource, getNextHopMode); reversePeering Manual makes no reverse peering', () => {
  const n1 = labelled(node('node1', '10.99.0.2/24', undefined, { bgp: { ipv4Address: '10.99.0.2/24', asNumber: 65001 } }), { rack: 'a' });
  const n2 = labelled(node('node2', '10.99.0.3/24', undefined, { bgp: { ipv4Address: '10.99.0.3/24', asNumber: 65002 } }), { rack: 'b' });
  const fields = { keepaliveTime: '20s', maxRestartTime: '1m30.4s', sourceAddress: 'None', nextHopMode: 'Self', keepOriginalNextHop: true };
  const snap = snapshotOf(ippool, n1, n2, bgpConfig({ nodeToNodeMeshEnabled: false }),
    bgpPeer('a-to-b', { nodeSelector: "rack == 'a'", peerSelector: "rack == 'b'", ...fields }),
    bgpPeer('tor', { peerIP: '10.99.0.254', asNumber: 65000, ...fields, nextHopMode: 'Keep', sourceAddress: 'UseNodeIP' }));
  const row = (peer: object) => { const p = peer as Record<string, unknown>; return [p.address, p.source, p.keepaliveSeconds, p.gracefulRestartSeconds, p.localAddress, p.nextHopSelf, p.keepOriginalNextHop]; };
  assert.equal(computeBgpPlan(snap, 'node1').peers.map(row), [
    ['10.99.0.3', 'BGPPeer a-to-b', 20, 90, undefined, true, undefined],
    ['10.99.0.254', 'BGPPeer tor', 20, 90, '10.99.0.2', undefined, true],
  ]);
  const rev = computeBgpPlan(snap, 'node2');
  assert.equal(rev.peers.map(row), [
    ['10.99.0.254', 'BGPPeer tor', 20, 90, '10.99.0.3', undefined, true],
    ['10.99.0.2', 'BGPPeer a-to-b (reverse)', 20, 90, undefined, true, undefined],
  ]);
  assert.equal(rev.warnings, []);
  // nextHopMode Auto: keepOriginalNextHop is ignored (confd: NextHopMode set wins over it).
  const auto = snapshotOf(ippool, n1, n2, bgpConfig({ nodeToNodeMeshEnabled: false }), bgpPeer('tor', { peerIP: '10.99.0.254', asNumber: 65000, nextHopMode: 'Auto', keepOriginalNextHop: true }));
  assert.equal(computeBgpPlan(auto, 'node1').peers.map(row), [['10.99.0.254', 'BGPPeer tor', undefined, undefined, '10.99.0.2', undefined, undefined]]);
  // reversePeering Manual: node2 does not peer back; the forward session is as before.
  const manual = (reversePeering: string) => snapshotOf(ippool, n1, n2, bgpConfig({ nodeToNodeMeshEnabled: false }),
    bgpPeer('a-to-b', { nodeSelector: "rack == 'a'", peerSelector: "rack == 'b'", reversePeering }));
  assert.equal(computeBgpPlan(manual('Auto'), 'node2').peers.map((p) => p.source), ['BGPPeer a-to-b (reverse)']);
  assert.equal(computeBgpPlan(manual('Manual'), 'node2').peers, []);
  assert.equal(computeBgpPlan(manual('Manual'), 'node1').peers.map((p) => [p.address, p.source]), [['10.99.0.3', 'BGPPeer a-to-b']]);
});

test('BGPPeer filters, ttlSecurity, localASNumber: applied where confd applies them (filters and ttlSecurity on every session the BGPPeer makes, reverse ones too; localASNumber on a peerIP session only, said for a peerSelector); the mesh gets none', () => {
  const n1 = labelled(node('node1', '10.99.0.2/24'), { rack: 'a' });
  const n2 = labelled(node('node2', '10.99.0.3/24'), { rack: 'b' });
  const n3 = node('node3', '10.99.0.10/24');
  const filter = { apiVersion: API, kind: 'BGPFilter', metadata: { name: 'no-default' }, spec: { importV4: [{ cidr: '0.0.0.0/0', matchOperator: 'Equal', action: 'Reject' }] } };
  const snap = snapshotOf(ippool, n1, n2, n3, filter,
    bgpPeer('a-to-b', { nodeSelector: "rack == 'a'", peerSelector: "rack == 'b'", filters: ['no-default', 'missing'], ttlSecurity: 1, localASNumber: 65010 }),
    bgpPeer('plain', { node: 'node1', peerIP: '10.99.0.254', asNumber: 65000, ttlSecurity: 0, localASNumber: '65020', filters: ['no-default'] }));
  const rules = { name: 'no-default', import4: [{ action: 'reject', cidr: { prefix: '0.0.0.0/0', op: 'Equal' } }], import6: [], export4: [], export6: [] };
  const plan1 = computeBgpPlan(snap, 'node1');
  const fields = (p: object) => {
    const q = p as Record<string, unknown>;
    return [q.address, q.source, q.ttlSecurity, q.localAs, JSON.stringify(q.filters)];
  };
  assert.equal(plan1.peers.map(fields), [
    ['10.99.0.3', 'mesh', undefined, undefined, undefined],
    ['10.99.0.10', 'mesh', undefined, undefined, undefined],
    ['10.99.0.254', 'BGPPeer plain', undefined, 65020, JSON.stringify([rules])],
  ]);
  const said = [
    'BGPPeer a-to-b: spec.localASNumber 65010 is not applied to the sessions a peerSelector makes (calico-node\'s confd applies it to peerIP sessions only): they use the node\'s AS',
    'BGPPeer a-to-b: spec.filters: BGPFilter "missing" does not exist; left out (as calico-node\'s confd does): its routes pass as without it',
    'BGPPeer a-to-b: 10.99.0.3 is already peered by mesh; skipped',
  ];
  assert.equal(plan1.warnings, said);
  // Without the mesh: the peerSelector session and node2's reverse one carry filters and ttlSecurity, never localAs.
  const noMesh = snapshotOf(ippool, n1, n2, n3, filter, bgpConfig({ nodeToNodeMeshEnabled: false }),
    bgpPeer('a-to-b', { nodeSelector: "rack == 'a'", peerSelector: "rack == 'b'", filters: ['no-default', 'missing'], ttlSecurity: 1, localASNumber: 65010 }));
  assert.equal(computeBgpPlan(noMesh, 'node1').peers.map(fields), [['10.99.0.3', 'BGPPeer a-to-b', 1, undefined, JSON.stringify([rules])]]);
  assert.equal(computeBgpPlan(noMesh, 'node2').peers.map(fields), [['10.99.0.2', 'BGPPeer a-to-b (reverse)', 1, undefined, JSON.stringify([rules])]]);
  assert.equal(computeBgpPlan(noMesh, 'node2').warnings, said.slice(0, 2));
  assert.equal(computeBgpPlan(noMesh, 'node3').warnings, []); // not a session of node3's
  // The node's own AS as localASNumber is no local AS at all.
  const same = snapshotOf(ippool, n1, bgpConfig({ nodeToNodeMeshEnabled: false }), bgpPeer('tor', { peerIP: '10.99.0.254', asNumber: 65000, localASNumber: 64512 }));
  assert.is(computeBgpPlan(same, 'node1').peers[0]!.localAs, undefined);
});

test('route reflector with localASNumber: rr client by the session\'s AS (confd\'s effective AS), not the node\'s', () => {
  const rr = node('rr1', '10.99.0.100/24', undefined, { bgp: { ipv4Address: '10.99.0.100/24', routeReflectorClusterID: '224.0.0.1' } });
  const snap = snapshotOf(ippool, rr, bgpConfig({ nodeToNodeMeshEnabled: false }),
    // iBGP in the session's AS 65010: a client.
    bgpPeer('in-local-as', { peerIP: '10.99.0.250', asNumber: 65010, localASNumber: 65010 }),
    // The node's AS 64512 under local AS 65010: eBGP, no client (BIRD refuses `rr client` there).
    bgpPeer('in-node-as', { peerIP: '10.99.0.251', asNumber: 64512, localASNumber: 65010 }),
    // No localASNumber: the node's AS decides, as before.
    bgpPeer('plain-ibgp', { peerIP: '10.99.0.252', asNumber: 64512 }),
    bgpPeer('plain-ebgp', { peerIP: '10.99.0.253', asNumber: 65010 }));
  assert.equal(computeBgpPlan(snap, 'rr1').peers.map((p) => [p.address, p.localAs, p.routeReflectorClient]), [
    ['10.99.0.250', 65010, true],
    ['10.99.0.251', 65010, undefined],
    ['10.99.0.252', undefined, true],
    ['10.99.0.253', undefined, undefined],
  ]);
});

test('BGPConfiguration node.NAME (confd\'s nodeListenPorts): its listenPort for that node only, over default\'s: it listens there, and the other nodes dial it there (mesh, peerSelector, reverse peerings, a portless peerIP); the fields Calico reads from default only are ignored there, said', () => {
  const perNode = (name: string, spec: Obj): Obj => ({ apiVersion: API, kind: 'BGPConfiguration', metadata: { name: `node.${name}` }, spec });
  const snap = snapshotOf(ippool, ...nodes, bgpConfig({ listenPort: 1179 }), perNode('node3', { listenPort: 1180 }));
  const at = (s: ReturnType<typeof snapshotOf>, n: string) => computeBgpPlan(s, n);
  assert.is(at(snap, 'node3').speaker.listenPort, 1180, 'node3 listens on its own port');
  assert.is(at(snap, 'node1').speaker.listenPort, 1179, 'the others on default\'s');
  assert.is(at(snap, 'node2').speaker.listenPort, 1179);
  assert.equal(at(snap, 'node1').peers.map((p) => [p.address, p.port]), [['10.99.0.3', 1179], ['10.99.0.10', 1180]], 'node3 dialled on its port');
  assert.equal(at(snap, 'node3').peers.map((p) => [p.address, p.port]), [['10.99.0.2', 1179], ['10.99.0.3', 1179]]);
  assert.equal(at(snap, 'node3').warnings, []);
  // Without default's listenPort: the others on BIRD's 179 (no port given), node3 on its own.
  const alone = snapshotOf(ippool, ...nodes, perNode('node3', { listenPort: 1180 }));
  assert.is(at(alone, 'node1').speaker.listenPort, undefined);
  assert.is(at(alone, 'node3').speaker.listenPort, 1180);
  assert.equal(at(alone, 'node1').peers.map((p) => [p.address, p.port]), [['10.99.0.3', undefined], ['10.99.0.10', 1180]]);
  // Deleted: default's port again, for node3 and for those dialling it.
  assert.equal(at(snapshotOf(ippool, ...nodes, bgpConfig({ listenPort: 1179 })), 'node1').peers.map((p) => p.port), [1179, 1179]);
  // A node.NAME of no node here, or a name confd does not read, changes nothing.
  const stray = snapshotOf(ippool, ...nodes, bgpConfig({ listenPort: 1179 }), perNode('node9', { listenPort: 1181 }),
    { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'node3' }, spec: { listenPort: 1182 } });
  assert.equal([at(stray, 'node3').speaker.listenPort, ...at(stray, 'node1').peers.map((p) => p.port)], [1179, 1179, 1179]);

  // peerSelector and a portless peerIP naming node3 (its address, its AS) dial its port; the
  // reverse peerings node3 makes dial the others' ports.
  const n3 = labelled(nodes[2]!, { rr: 'true' });
  const withPeer = (spec: Obj) => snapshotOf(ippool, nodes[0]!, nodes[1]!, n3, bgpConfig({ nodeToNodeMeshEnabled: false, listenPort: 1179 }), perNode('node3', { listenPort: 1180 }), bgpPeer('to-3', { node: 'node1', ...spec }));
  for (const spec of [{ peerSelector: "rr == 'true'" }, { peerIP: '10.99.0.10', asNumber: 64512 }, { peerIP: '10.99.0.10:1180', asNumber: 64512 }]) {
    const s = withPeer(spec);
    assert.equal(at(s, 'node1').peers.map((p) => [p.address, p.port]), [['10.99.0.10', 1180]], JSON.stringify(spec));
    assert.equal(at(s, 'node3').peers.map((p) => [p.address, p.port, p.source]), [['10.99.0.2', 1179, 'BGPPeer to-3 (reverse)']], JSON.stringify(spec));
  }
  // A peerIP naming node3 on default's port: not where node3 listens, so not node3 (no reverse
  // peering; the session is dialled as given).
  const wrongPort = withPeer({ peerIP: '10.99.0.10:1179', asNumber: 64512 });
  assert.equal(at(wrongPort, 'node3').peers, []);
  assert.equal(at(wrongPort, 'node1').peers.map((p) => [p.address, p.port]), [['10.99.0.10', 1179]]);

  // Fields read from default only: ignored in node.NAME (its AS and the mesh stay default's),
  // said in that node's plan only.
  const defaultOnly = snapshotOf(ippool, ...nodes, bgpConfig({ asNumber: 64600 }), perNode('node3', { listenPort: 1180, asNumber: 65000, nodeToNodeMeshEnabled: false, bindMode: 'NodeIP', logSeverityScreen: 'Debug' }));
  const p3 = at(defaultOnly, 'node3');
  assert.equal([p3.speaker.localAs, p3.speaker.listenPort, p3.speaker.listenAddress, p3.peers.length], [64600, 1180, undefined, 2]);
  assert.equal(p3.warnings, ['BGPConfiguration node.node3: spec.nodeToNodeMeshEnabled, spec.asNumber, spec.bindMode ignored: calico-node reads them from BGPConfiguration default only (per node: listenPort, logSeverityScreen, prefixAdvertisements, communities; a node\'s own AS is its Node\'s spec.bgp.asNumber)']);
  assert.equal(at(defaultOnly, 'node1').warnings, []);
});

test.run();
