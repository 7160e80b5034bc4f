import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseIPv4 } from '../../src/control/ipv4';
import { cidrsAround, computeNodeModel, diffModels, LearnedRoute, NodeDataplaneModel, Route, RouteClass } from '../../src/control/route-calc';
import { parseIPv4Cidr } from '../../src/control/ipv4';
import { parseClusterYaml } from '../../src/control/snapshot';
import { affinity, EXAMPLES_DIR, node, pool, snapshotOf, wep } from './fixtures';

const ip = (text: string): number => parseIPv4(text)!;
const routeFor = (model: NodeDataplaneModel, cidr: string): Route | undefined => model.routes.find((r) => r.cidr === cidr);

// node1 and node2 share 10.99.0.0/24; node3 is on another subnet.
const nodes = [
  node('node1', '10.99.0.1/24', '10.244.0.0'),
  node('node2', '10.99.0.2/24', '10.244.0.64'),
  node('node3', '10.98.0.3/24', '10.244.0.128'),
];
const blocks = [
  affinity('node1', '10.244.0.0/26'),
  affinity('node2', '10.244.0.64/26'),
  affinity('node3', '10.244.0.128/26'),
];
const modelFor = (poolSpec: Record<string, unknown>, nodeName = 'node1') =>
  computeNodeModel(snapshotOf(pool('p', '10.244.0.0/16', poolSpec), ...nodes, ...blocks), nodeName);

test('pools: tunnelAddr says whether a pool calls for a tunnel address on this node (nodeSelector against its labels, allowedUses, encapsulated)', () => {
  const labelled = { ...node('node1', '10.99.0.1/24'), metadata: { name: 'node1', labels: { zone: 'a' } } };
  const snap = snapshotOf(
    pool('sel-a', '10.10.0.0/24', { vxlanMode: 'Always', nodeSelector: 'zone == "a"' }),
    pool('sel-b', '10.11.0.0/24', { vxlanMode: 'Always', nodeSelector: 'zone == "b"' }),
    pool('ipip-all', '10.12.0.0/24', { ipipMode: 'CrossSubnet', disabled: true }),
    pool('workload-only', '10.13.0.0/24', { vxlanMode: 'Always', allowedUses: ['Workload'] }),
    pool('plain', '10.14.0.0/24', {}),
    pool('v6-sel-a', 'fd00:10::/64', { vxlanMode: 'Always', nodeSelector: 'zone == "a"' }),
    pool('v6-sel-b', 'fd00:11::/64', { vxlanMode: 'Always', nodeSelector: 'zone == "b"', disabled: true }),
    labelled,
  );
  const m = computeNodeModel(snap, 'node1');
  assert.equal(m.pools.map((p) => [p.name, p.tunnelAddr]), [['sel-a', true], ['sel-b', false], ['ipip-all', true], ['workload-only', false], ['plain', false]]);
  assert.equal(m.v6.pools.map((p) => [p.name, p.tunnelAddr, p.disabled]), [['v6-sel-a', true, false], ['v6-sel-b', false, true]]);
});

test('example two-node VXLAN file: full model for node1', () => {
  const file = path.join(EXAMPLES_DIR, 'two-node-vxlan.yaml');
  const model = computeNodeModel(parseClusterYaml(readFileSync(file, 'utf8'), file), 'node1');
  assert.equal(model.node, {
    name: 'node1', ip: ip('10.99.0.1'), subnet: { cidr: '10.99.0.0/24', addr: ip('10.99.0.0'), prefixLen: 24 },
    vtepIp: ip('10.244.0.0'), vtepMac: '66:f9:37:c3:7e:94', ipipTunnelIp: null, knownNodeIps: new Set([ip('10.99.0.1'), ip('10.99.0.2')]),
  });
  assert.equal(model.endpoints, [
    { key: 'default/node1-k8s-web--1-eth0', interfaceName: 'cali0761ccbeace', interfaceType: 'veth', interfaceNetns: null, ips: [ip('10.244.0.1')], cidrs: ['10.244.0.1/32'], mac: '2a:5f:10:00:01:01' },
    { key: 'default/node1-k8s-web--2-eth0', interfaceName: 'cali9fb0db7f13e', interfaceType: 'veth', interfaceNetns: null, ips: [ip('10.244.0.2')], cidrs: ['10.244.0.2/32'], mac: '2a:5f:10:00:01:02' },
  ]);
  const p = 'default-ipv4-ippool';
  assert.equal(model.routes, [
    { cidr: '10.244.0.0/26', addr: ip('10.244.0.0'), prefixLen: 26, kind: 'blackhole', class: RouteClass.IPAMBlockDrop, endpoint: null, node: 'node1', nodeIp: null, vtepIp: null, vtepMac: null, pool: p, mtu: 1450 },
    // its own VTEP address: a local address of the node (vxlan.calico's in Calico), to the node's stack
    { cidr: '10.244.0.0/32', addr: ip('10.244.0.0'), prefixLen: 32, kind: 'host', class: RouteClass.LocalWorkload, endpoint: null, node: 'node1', nodeIp: null, vtepIp: null, vtepMac: null, pool: p, mtu: 1500 },
    { cidr: '10.244.0.1/32', addr: ip('10.244.0.1'), prefixLen: 32, kind: 'local', class: RouteClass.LocalWorkload, endpoint: 'cali0761ccbeace', node: 'node1', nodeIp: null, vtepIp: null, vtepMac: null, pool: p, mtu: 1450 },
    { cidr: '10.244.0.2/32', addr: ip('10.244.0.2'), prefixLen: 32, kind: 'local', class: RouteClass.LocalWorkload, endpoint: 'cali9fb0db7f13e', node: 'node1', nodeIp: null, vtepIp: null, vtepMac: null, pool: p, mtu: 1450 },
    { cidr: '10.244.0.64/26', addr: ip('10.244.0.64'), prefixLen: 26, kind: 'vxlan', class: RouteClass.VXLANTunnel, endpoint: null, node: 'node2', nodeIp: ip('10.99.0.2'), vtepIp: ip('10.244.0.64'), vtepMac: '66:2d:bf:44:a6:8b', pool: p, mtu: 1450 },
  ]);
  assert.equal(model.withheld, []);
  assert.equal(model.mtu, { underlay: 1500, vxlan: 1450, ipip: 1480, pod: 1450 });
  assert.equal(model.encap, { vxlan: true, ipip: false });
  assert.equal(model.pools, [{ name: p, cidr: '10.244.0.0/16', addr: ip('10.244.0.0'), prefixLen: 16, blockSize: 26, encap: 'vxlan', crossSubnet: false, natOutgoing: true, disabled: false, tunnelAddr: true }]);
});

test('route classes follow Felix: local < VXLAN same-subnet < VXLAN tunnel < IPIP same-subnet < IPIP tunnel < no-encap < blackhole < BGP', () => {
  const order = [RouteClass.LocalWorkload, RouteClass.VXLANSameSubnet, RouteClass.VXLANTunnel, RouteClass.IPIPSameSubnet,
    RouteClass.IPIPTunnel, RouteClass.NoEncap, RouteClass.IPAMBlockDrop, RouteClass.BGP];
  assert.equal([...order].sort((a, b) => a - b), order);
  assert.is(new Set(order).size, order.length);
});

test('VXLAN Always: both remote nodes tunnelled, whatever their subnet', () => {
  const m = modelFor({ vxlanMode: 'Always' });
  for (const [cidr, name, nodeIp, vtep] of [['10.244.0.64/26', 'node2', '10.99.0.2', '10.244.0.64'], ['10.244.0.128/26', 'node3', '10.98.0.3', '10.244.0.128']] as const) {
    const r = routeFor(m, cidr)!;
    assert.is(r.kind, 'vxlan');
    assert.is(r.class, RouteClass.VXLANTunnel);
    assert.is(r.node, name);
    assert.is(r.nodeIp, ip(nodeIp));
    assert.is(r.vtepIp, ip(vtep));
    assert.is(r.mtu, 1450);
  }
  // Derived MAC; computed with: python3 -c "import hashlib; h=hashlib.sha1(b'node3').digest(); print(':'.join('%02x'%b for b in bytes([0x66])+h[:5]))"
  assert.is(routeFor(m, '10.244.0.128/26')!.vtepMac, '66:a4:6f:e0:c4:da');
});

test('VXLAN CrossSubnet: same subnet goes direct, other subnet is tunnelled', () => {
  const m = modelFor({ vxlanMode: 'CrossSubnet' });
  const same = routeFor(m, '10.244.0.64/26')!;
  assert.equal([same.kind, same.class, same.nodeIp, same.vtepIp, same.vtepMac, same.mtu], ['direct', RouteClass.VXLANSameSubnet, ip('10.99.0.2'), null, null, 1500]);
  const other = routeFor(m, '10.244.0.128/26')!;
  assert.equal([other.kind, other.class, other.nodeIp, other.vtepIp, other.mtu], ['vxlan', RouteClass.VXLANTunnel, ip('10.98.0.3'), ip('10.244.0.128'), 1450]);
  assert.is(m.pools[0]!.crossSubnet, true);
});

test('IPIP Always and CrossSubnet', () => {
  const always = modelFor({ ipipMode: 'Always' });
  for (const cidr of ['10.244.0.64/26', '10.244.0.128/26']) {
    const r = routeFor(always, cidr)!;
    assert.equal([r.kind, r.class, r.vtepIp, r.mtu], ['ipip', RouteClass.IPIPTunnel, null, 1480]);
  }
  assert.equal(always.mtu, { underlay: 1500, vxlan: 1450, ipip: 1480, pod: 1480 });
  const cross = modelFor({ ipipMode: 'CrossSubnet' });
  const same = routeFor(cross, '10.244.0.64/26')!;
  assert.equal([same.kind, same.class, same.nodeIp, same.mtu], ['direct', RouteClass.IPIPSameSubnet, ip('10.99.0.2'), 1500]);
  const other = routeFor(cross, '10.244.0.128/26')!;
  assert.equal([other.kind, other.class, other.nodeIp, other.mtu], ['ipip', RouteClass.IPIPTunnel, ip('10.98.0.3'), 1480]);
});

test('no encapsulation: every remote block direct via its node, pod MTU = underlay', () => {
  const m = modelFor({});
  const r = routeFor(m, '10.244.0.128/26')!;
  assert.equal([r.kind, r.class, r.nodeIp, r.mtu], ['direct', RouteClass.NoEncap, ip('10.98.0.3'), 1500]);
  assert.equal(m.encap, { vxlan: false, ipip: false });
  assert.is(m.mtu.pod, 1500);
});

test('blackholes: only own confirmed blocks; pending blocks route nowhere; /32 blocks get none', () => {
  const s = snapshotOf(pool('p', '10.244.0.0/16', { vxlanMode: 'Always' }), ...nodes,
    affinity('node1', '10.244.0.0/26'), affinity('node1', '10.244.1.0/26', 'pending'), affinity('node2', '10.244.2.0/26', 'pendingDeletion'),
    pool('tunnels', '10.250.0.0/24', { blockSize: 32 }), affinity('node1', '10.250.0.1/32'));
  const m = computeNodeModel(s, 'node1');
  assert.equal(m.routes.map((r) => `${r.cidr} ${r.kind}`), ['10.244.0.0/26 blackhole', '10.244.0.0/32 host']);
});

test('own tunnel addresses: a host /32 while their encapsulation is in use (VXLAN address, IPIP address), also when borrowed from another node\'s block', () => {
  const withIpip = [
    node('node1', '10.99.0.1/24', '10.244.0.0', { bgp: { ipv4Address: '10.99.0.1/24', ipv4IPIPTunnelAddr: '10.244.0.70' } }),
    nodes[1], nodes[2],
  ];
  const hosts = (spec: Record<string, unknown>) => computeNodeModel(snapshotOf(pool('p', '10.244.0.0/16', spec), ...withIpip, ...blocks), 'node1').routes
    .filter((r) => r.kind === 'host').map((r) => r.cidr);
  assert.equal(hosts({ vxlanMode: 'Always' }), ['10.244.0.0/32']);
  assert.equal(hosts({ vxlanMode: 'CrossSubnet' }), ['10.244.0.0/32']);
  // IPIP: its IPIP address, which lies in node2's block, beats node2's block route
  assert.equal(hosts({ ipipMode: 'Always' }), ['10.244.0.70/32']);
  const m = computeNodeModel(snapshotOf(pool('p', '10.244.0.0/16', { ipipMode: 'Always' }), ...withIpip, ...blocks), 'node1');
  assert.is(m.node.ipipTunnelIp, ip('10.244.0.70'));
  assert.is(routeFor(m, '10.244.0.64/26')!.kind, 'ipip');
  assert.equal(hosts({}), [], 'no encapsulation: no tunnel device, no tunnel address');
});

test('borrowed addresses: /32 to the borrowing node, overriding the lender\'s blackhole', () => {
  const s = snapshotOf(pool('p', '10.244.0.0/16', { vxlanMode: 'Always' }), ...nodes, ...blocks,
    wep('node2', 'borrower', ['10.244.0.5/32'], 'cali2'), wep('node2', 'owner', ['10.244.0.70/32'], 'cali3'));
  // node1 lent 10.244.0.5 from its block: its blackhole stays, the /32 goes to node2.
  const m1 = computeNodeModel(s, 'node1');
  assert.is(routeFor(m1, '10.244.0.0/26')!.kind, 'blackhole');
  const b1 = routeFor(m1, '10.244.0.5/32')!;
  assert.equal([b1.kind, b1.node, b1.vtepIp], ['vxlan', 'node2', ip('10.244.0.64')]);
  assert.is(routeFor(m1, '10.244.0.70/32'), undefined, 'an address in its own node\'s block needs no /32');
  // node3 routes node1's block to node1 and the borrowed /32 to node2.
  const m3 = computeNodeModel(s, 'node3');
  assert.is(routeFor(m3, '10.244.0.0/26')!.node, 'node1');
  assert.is(routeFor(m3, '10.244.0.5/32')!.node, 'node2');
  // node2 sees it as its own local endpoint.
  const m2 = computeNodeModel(s, 'node2');
  assert.equal([routeFor(m2, '10.244.0.5/32')!.kind, routeFor(m2, '10.244.0.5/32')!.endpoint], ['local', 'cali2']);
});

test('borrowed addresses from the blocks: non-affine allocations go to the node they name (Felix\'s L3 resolver)', () => {
  const base = snapshotOf(pool('p', '10.244.0.0/16', { vxlanMode: 'Always' }), ...nodes, ...blocks, pool('plain', '10.60.0.0/16'),
    wep('node2', 'pod', ['10.244.0.6/32'], 'cali6'));
  const s = {
    ...base,
    ipamBlocks: [
      // node2's tunnel address and an `ipam assign` for node3, both out of node1's block, no endpoint.
      { cidr: '10.244.0.0/26', host: 'node1', allocations: [{ ip: '10.244.0.9', node: 'node2' }, { ip: '10.244.0.10', node: 'node3' }, { ip: '10.244.0.6', node: 'node2' }] },
      // node1's own address out of node2's block; one naming no node; one for a node we do not know.
      { cidr: '10.244.0.64/26', host: 'node2', allocations: [{ ip: '10.244.0.77', node: 'node1' }, { ip: '10.244.0.78', node: '' }, { ip: '10.244.0.79', node: 'node9' }] },
      // A block nobody holds, in an unencapsulated pool.
      { cidr: '10.60.0.0/26', host: null, allocations: [{ ip: '10.60.0.3', node: 'node2' }] },
    ],
  };
  const m1 = computeNodeModel(s, 'node1');
  const r9 = routeFor(m1, '10.244.0.9/32')!;
  assert.equal([r9.kind, r9.node, r9.vtepIp, r9.class], ['vxlan', 'node2', ip('10.244.0.64'), RouteClass.VXLANTunnel]);
  assert.equal([routeFor(m1, '10.244.0.10/32')!.kind, routeFor(m1, '10.244.0.10/32')!.node], ['vxlan', 'node3']);
  assert.is(routeFor(m1, '10.244.0.0/26')!.kind, 'blackhole', 'the lender keeps its block\'s blackhole');
  // An endpoint and its allocation make one route, not two candidates.
  assert.is(m1.routes.filter((r) => r.cidr === '10.244.0.6/32').length, 1);
  assert.is(routeFor(m1, '10.244.0.77/32'), undefined, 'our own borrowed address needs no route to us');
  assert.is(routeFor(m1, '10.244.0.78/32'), undefined, 'an allocation naming no node cannot be routed');
  assert.is(routeFor(m1, '10.244.0.79/32'), undefined);
  assert.ok(m1.withheld.some((w) => w.cidr === '10.244.0.79/32' && w.node === 'node9' && w.reason === 'node unknown'));
  assert.equal([routeFor(m1, '10.60.0.3/32')!.kind, routeFor(m1, '10.60.0.3/32')!.node], ['direct', 'node2']);
  // node2 routes node1's /32 out of its own block to node1; its own borrowed addresses get none.
  const m2 = computeNodeModel(s, 'node2');
  assert.equal([routeFor(m2, '10.244.0.77/32')!.kind, routeFor(m2, '10.244.0.77/32')!.node], ['vxlan', 'node1']);
  assert.is(routeFor(m2, '10.244.0.9/32'), undefined);
  // Without blocks (a YAML file) nothing changes.
  assert.is(routeFor(computeNodeModel(base, 'node1'), '10.244.0.9/32'), undefined);
  // BGP mode: unencapsulated and IPIP borrowed /32s are BGP's; VXLAN ones stay the datastore's.
  const mb = computeNodeModel(s, 'node1', { bgp: { learned: [] } } as Parameters<typeof computeNodeModel>[2]);
  assert.ok(routeFor(mb, '10.244.0.9/32'));
  assert.is(routeFor(mb, '10.60.0.3/32'), undefined);
});

test('withheld: remote node IP unknown, remote VTEP unknown, local VTEP unknown', () => {
  const p = pool('p', '10.244.0.0/16', { vxlanMode: 'CrossSubnet' });
  const s = snapshotOf(p, node('node1', '10.99.0.1/24', '10.244.0.0'), node('node2'), node('node3', '10.98.0.3/24'), node('node4', '10.99.0.4/24'),
    affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.64/26'), affinity('node3', '10.244.0.128/26'), affinity('node4', '10.244.0.192/26'));
  const m = computeNodeModel(s, 'node1');
  assert.equal(m.withheld, [
    { cidr: '10.244.0.64/26', node: 'node2', reason: 'node IP unknown' },
    { cidr: '10.244.0.128/26', node: 'node3', reason: 'VTEP IP unknown' },
  ]);
  // Same subnet needs no VTEP: node4's block goes direct.
  assert.is(routeFor(m, '10.244.0.192/26')!.kind, 'direct');
  assert.equal(m.node.knownNodeIps, new Set([ip('10.99.0.1'), ip('10.98.0.3'), ip('10.99.0.4')]));

  const noLocalVtep = snapshotOf(pool('p', '10.244.0.0/16', { vxlanMode: 'Always' }), node('node1', '10.99.0.1/24'), nodes[1]!, blocks[1]!);
  const m2 = computeNodeModel(noLocalVtep, 'node1');
  assert.equal(m2.withheld, [{ cidr: '10.244.0.64/26', node: 'node2', reason: 'local VTEP IP unknown' }]);
  assert.is(m2.node.vtepIp, null);
});

test('same CIDR from several sources: lowest class wins, then the newest', () => {
  const p = pool('p', '10.244.0.0/16', { vxlanMode: 'Always' });
  // 10.244.0.70 is claimed by a local workload and by one on node2 (whose block holds it).
  const s = snapshotOf(p, ...nodes, ...blocks, wep('node1', 'here', ['10.244.0.70/32'], 'cali1'),
    wep('node2', 'there', ['10.244.0.70/32'], 'cali2'));
  const local = routeFor(computeNodeModel(s, 'node1'), '10.244.0.70/32')!;
  assert.equal([local.kind, local.class, local.endpoint], ['local', RouteClass.LocalWorkload, 'cali1']);
  // Claimed (outside their blocks) by workloads on node2 and node3: the later document wins.
  const tie = snapshotOf(p, ...nodes, ...blocks, wep('node2', 'a', ['10.244.0.10/32'], 'cali2'), wep('node3', 'b', ['10.244.0.10/32'], 'cali3'));
  assert.is(routeFor(computeNodeModel(tie, 'node1'), '10.244.0.10/32')!.node, 'node3');
  // With IPIP for node2's address and no-encap for node3's, the better class wins regardless of order.
  const mixed = snapshotOf(pool('a', '10.244.0.0/16', { ipipMode: 'Always' }), pool('b', '10.245.0.0/16'), ...nodes,
    affinity('node2', '10.245.0.0/26'), wep('node2', 'x', ['10.244.9.9/32'], 'cali2'), wep('node3', 'y', ['10.244.9.9/32'], 'cali3'));
  assert.equal(computeNodeModel(mixed, 'node1').routes.map((r) => [r.cidr, r.kind, r.node]), [
    ['10.244.9.9/32', 'ipip', 'node3'],
    ['10.245.0.0/26', 'direct', 'node2'],
  ]);
});

test('MTU: smallest enabled encapsulation, underlay option, disabled pools still count and still route', () => {
  const s = snapshotOf(pool('v', '10.244.0.0/16', { vxlanMode: 'Always' }), pool('i', '10.245.0.0/16', { ipipMode: 'Always', disabled: true }),
    ...nodes, affinity('node2', '10.245.0.0/26'));
  const m = computeNodeModel(s, 'node1', { underlayMtu: 9000 });
  assert.equal(m.mtu, { underlay: 9000, vxlan: 8950, ipip: 8980, pod: 8950 });
  assert.equal(m.encap, { vxlan: true, ipip: true });
  const r = routeFor(m, '10.245.0.0/26')!;
  assert.equal([r.kind, r.mtu, r.pool], ['ipip', 8980, 'i']);
});

test('the local node must exist and have an address (IPv4, or IPv6 on an IPv6-only node: test/control/ipv6-only)', () => {
  const s = snapshotOf(pool('p', '10.244.0.0/16'), node('node1'));
  assert.throws(() => computeNodeModel(s, 'nodeX'), /node "nodeX" is not in test\.yaml/);
  assert.throws(() => computeNodeModel(s, 'node1'), /node "node1" has neither spec\.bgp\.ipv4Address nor spec\.bgp\.ipv6Address in test\.yaml/);
});

test('explicit vxlanTunnelMACAddr overrides the derived MAC', () => {
  const s = snapshotOf(pool('p', '10.244.0.0/16', { vxlanMode: 'Always' }), nodes[0]!,
    node('node2', '10.99.0.2/24', '10.244.0.64', { vxlanTunnelMACAddr: '02:AA:BB:CC:DD:EE' }), blocks[1]!);
  assert.is(routeFor(computeNodeModel(s, 'node1'), '10.244.0.64/26')!.vtepMac, '02:aa:bb:cc:dd:ee');
});

test('diffModels: first model adds everything, same model is empty, edits become add/remove/replace', () => {
  const p = pool('p', '10.244.0.0/16', { vxlanMode: 'Always' });
  const before = computeNodeModel(snapshotOf(p, ...nodes, ...blocks, wep('node1', 'a', ['10.244.0.1/32'], 'cali1')), 'node1');
  const first = diffModels(null, before);
  assert.is(first.add.length, before.routes.length);
  assert.ok(first.nodeChanged && first.endpointsChanged && first.mtuChanged && first.poolsChanged);
  assert.ok(diffModels(before, before).empty);

  // Pod a moves to 10.244.0.2, node3's block goes away, node2 moves to another subnet IP.
  const after = computeNodeModel(snapshotOf(p, nodes[0]!, node('node2', '10.99.0.22/24', '10.244.0.64'), nodes[2]!,
    blocks[0]!, blocks[1]!, wep('node1', 'a', ['10.244.0.2/32'], 'cali1')), 'node1');
  const d = diffModels(before, after);
  assert.equal(d.add.map((r) => r.cidr), ['10.244.0.2/32']);
  assert.equal(d.remove.map((r) => r.cidr), ['10.244.0.1/32', '10.244.0.128/26']);
  assert.equal(d.replace.map((x) => [x.from.cidr, x.from.nodeIp, x.to.nodeIp]), [['10.244.0.64/26', ip('10.99.0.2'), ip('10.99.0.22')]]);
  assert.ok(d.endpointsChanged);
  assert.ok(d.nodeChanged, 'known node IPs changed');
  assert.not.ok(d.mtuChanged);
  assert.not.ok(d.empty);

  // An MTU change replaces every route whose MTU moved.
  const bigger = computeNodeModel(snapshotOf(p, ...nodes, ...blocks, wep('node1', 'a', ['10.244.0.1/32'], 'cali1')), 'node1', { underlayMtu: 9000 });
  const m = diffModels(before, bigger);
  assert.is(m.replace.length, before.routes.length);
  assert.ok(m.mtuChanged);
});

// ---- BGP mode: routes of IPIP and unencapsulated pools come from learned routes -----------------

const learned = (prefix: string, nextHop: string, peer = nextHop): LearnedRoute => ({ prefix, nextHop, peer });
const bgpModel = (poolSpec: Record<string, unknown>, routes: LearnedRoute[], extra: Record<string, unknown>[] = []) =>
  computeNodeModel(snapshotOf(pool('p', '10.244.0.0/16', poolSpec), ...nodes, ...blocks, ...extra), 'node1', { bgp: { learned: routes } });
const shape = (r: Route | undefined) => (r ? [r.kind, r.class, r.node, r.nodeIp, r.pool, r.mtu] : undefined);

test('BGP mode, unencapsulated pool: nothing from the datastore for other nodes, learned blocks go direct to the next hop (off our subnet too)', () => {
  const none = bgpModel({}, []);
  assert.equal(none.routes.map((r) => [r.cidr, r.kind]), [['10.244.0.0/26', 'blackhole']]);
  const borrowed = wep('node2', 'b', ['10.244.0.7/32'], 'calib');
  const m = bgpModel({}, [learned('10.244.0.64/26', '10.99.0.2'), learned('10.244.0.7/32', '10.99.0.2'), learned('10.244.0.128/26', '10.98.0.3')], [borrowed]);
  assert.equal(shape(routeFor(m, '10.244.0.64/26')), ['direct', RouteClass.BGP, 'node2', ip('10.99.0.2'), 'p', 1500]);
  // A borrowed /32 out of our own block beats the block's blackhole by being longer.
  assert.equal(shape(routeFor(m, '10.244.0.7/32')), ['direct', RouteClass.BGP, 'node2', ip('10.99.0.2'), 'p', 1500]);
  assert.is(routeFor(m, '10.244.0.0/26')!.kind, 'blackhole');
  // Next hop off our subnet (node3 across a router): resolved recursively, as BIRD's `gateway
  // recursive` does: a direct route to node3, which the dataplane sends to the gateway towards it.
  assert.equal(shape(routeFor(m, '10.244.0.128/26')), ['direct', RouteClass.BGP, 'node3', ip('10.98.0.3'), 'p', 1500]);
  assert.equal(m.withheld, []);
  // Outside every pool an off-subnet next hop is still withheld: such a route goes into the node's
  // kernel too, which takes an on-link next hop only.
  const out = bgpModel({}, [learned('192.0.2.0/24', '10.98.0.3')]);
  assert.is(routeFor(out, '192.0.2.0/24'), undefined);
  assert.equal(out.withheld, [{ cidr: '192.0.2.0/24', node: 'node3', reason: "learned from 10.98.0.3 with next hop 10.98.0.3, not on 10.99.0.0/24 (a route outside the pools goes into the node's kernel too, which takes an on-link next hop only)" }]);
  assert.equal(out.kernelRoutes, []);
  // Without BGP mode the same snapshot routes every block from the datastore, as before.
  const plain = computeNodeModel(snapshotOf(pool('p', '10.244.0.0/16'), ...nodes, ...blocks, borrowed), 'node1');
  assert.equal(shape(routeFor(plain, '10.244.0.64/26')), ['direct', RouteClass.NoEncap, 'node2', ip('10.99.0.2'), 'p', 1500]);
});

test('BGP mode, IPIP pools: IPIP to the next hop; CrossSubnet goes direct on our subnet; VXLAN pools stay the datastore\'s', () => {
  const routes = [learned('10.244.0.64/26', '10.99.0.2'), learned('10.244.0.128/26', '10.98.0.3')];
  const always = bgpModel({ ipipMode: 'Always' }, routes);
  assert.equal(shape(routeFor(always, '10.244.0.64/26')), ['ipip', RouteClass.BGP, 'node2', ip('10.99.0.2'), 'p', 1480]);
  assert.equal(shape(routeFor(always, '10.244.0.128/26')), ['ipip', RouteClass.BGP, 'node3', ip('10.98.0.3'), 'p', 1480]);
  const cross = bgpModel({ ipipMode: 'CrossSubnet' }, routes);
  assert.equal(shape(routeFor(cross, '10.244.0.64/26')), ['direct', RouteClass.BGP, 'node2', ip('10.99.0.2'), 'p', 1500]);
  assert.equal(shape(routeFor(cross, '10.244.0.128/26')), ['ipip', RouteClass.BGP, 'node3', ip('10.98.0.3'), 'p', 1480]);
  const vxlan = bgpModel({ vxlanMode: 'Always' }, [learned('10.244.0.64/26', '10.99.0.9')]);
  assert.equal(shape(routeFor(vxlan, '10.244.0.64/26')), ['vxlan', RouteClass.VXLANTunnel, 'node2', ip('10.99.0.2'), 'p', 1450]);
});

const coveredBy = (routes: readonly Route[], addr: number) => routes.some((r) => r.prefixLen === 0 || ((addr ^ r.addr) >>> (32 - r.prefixLen)) === 0);

test('BGP mode: a ToR\'s default route serves pod egress around our own subnet; our own routes reflected back are ignored', () => {
  const m = bgpModel({}, [learned('0.0.0.0/0', '10.99.0.254'), learned('10.244.0.0/26', '10.99.0.1'), learned('192.0.2.0/24', '10.99.0.254')]);
  const egress = m.routes.filter((r) => r.node === '10.99.0.254');
  // 0.0.0.0/0 minus 10.99.0.0/24 (our connected subnet): 24 prefixes that cover everything else.
  assert.is(egress.filter((r) => r.cidr !== '192.0.2.0/24').length, 24);
  for (const r of egress) assert.equal([r.kind, r.class, r.nodeIp, r.pool, r.mtu], ['direct', RouteClass.BGP, ip('10.99.0.254'), null, 1500]);
  assert.ok(coveredBy(egress, ip('8.8.8.8')));
  assert.ok(coveredBy(egress, ip('10.98.0.3')));
  assert.not.ok(coveredBy(egress, ip('10.99.0.2')), 'a neighbour on our link is not sent to the router');
  assert.not.ok(coveredBy(egress, ip('10.99.0.1')), 'the node itself stays a miss (the pipeline hands it to the node)');
  assert.equal(shape(routeFor(m, '192.0.2.0/24')), ['direct', RouteClass.BGP, '10.99.0.254', ip('10.99.0.254'), null, 1500]);
  assert.is(routeFor(m, '10.244.0.0/26')!.kind, 'blackhole');
});

test('BGP mode: a learned route as long as our subnet or shorter never covers it (the connected route wins, as in the kernel); a longer one inside it is cut around our own address', () => {
  // The ToR announces node1's own /24: nothing of it is podway's (the kernel's connected route wins).
  const same = bgpModel({}, [learned('10.99.0.0/24', '10.99.0.254')]);
  assert.equal(same.routes.filter((r) => r.class === RouteClass.BGP), []);
  assert.equal(same.kernelRoutes, [{ cidr: '10.99.0.0/24', via: '10.99.0.254', peer: '10.99.0.254' }], 'the kernel gets it whole (its connected route, metric 0, wins)');
  // A /16 holding it: the /16 minus the /24, 8 prefixes.
  const wide = bgpModel({}, [learned('10.99.0.0/16', '10.99.0.254')]).routes.filter((r) => r.class === RouteClass.BGP);
  assert.equal(wide.map((r) => r.cidr).sort(), ['10.99.1.0/24', '10.99.2.0/23', '10.99.4.0/22', '10.99.8.0/21', '10.99.16.0/20', '10.99.32.0/19', '10.99.64.0/18', '10.99.128.0/17'].sort());
  for (const a of ['10.99.0.1', '10.99.0.2', '10.99.0.255']) assert.not.ok(coveredBy(wide, ip(a)), a);
  assert.ok(coveredBy(wide, ip('10.99.1.1')));
  // Longer than our subnet (the kernel's longest match takes it over the connected /24): installed,
  // around our own address when it holds it.
  const upper = bgpModel({}, [learned('10.99.0.128/25', '10.99.0.254')]).routes.filter((r) => r.class === RouteClass.BGP);
  assert.equal(upper.map((r) => r.cidr), ['10.99.0.128/25']);
  const lower = bgpModel({}, [learned('10.99.0.0/25', '10.99.0.254')]).routes.filter((r) => r.class === RouteClass.BGP);
  assert.is(lower.length, 7);
  assert.ok(coveredBy(lower, ip('10.99.0.2')));
  assert.not.ok(coveredBy(lower, ip('10.99.0.1')));
});

test('cidrsAround: the prefixes left when one address is taken out', () => {
  const around = cidrsAround(parseIPv4Cidr('10.0.0.0/30')!, ip('10.0.0.2'));
  assert.equal(around.map((c) => c.cidr), ['10.0.0.0/31', '10.0.0.3/32']);
  assert.equal(cidrsAround(parseIPv4Cidr('0.0.0.0/0')!, ip('10.0.0.1')).slice(0, 2).map((c) => c.cidr), ['128.0.0.0/1', '64.0.0.0/2']);
  assert.equal(cidrsAround(parseIPv4Cidr('10.0.0.0/22')!, ip('10.0.1.0'), 24).map((c) => c.cidr), ['10.0.2.0/23', '10.0.0.0/24']);
});

test.run();
