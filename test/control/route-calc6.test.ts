// The IPv6 half of the model (src/control/route-calc6.ts): routes per Felix's rules for IPv6
// pools, /128 workloads, blocks, IPv6 VXLAN (MTU underlay - 70, VTEP MAC from sha1(name-v6)),
// CrossSubnet, unencapsulated pools and borrowed addresses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { computeNodeModel, parseClusterYaml, diffModels } from '../../src/control';

function yaml(mode: string, opts: { node2Vtep?: boolean; node2Addr?: string; extraWep?: string } = {}): string {
  const n2addr = opts.node2Addr ?? 'fd99::2/64';
  return `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: v4 }
spec: { cidr: 10.244.0.0/16, vxlanMode: Always }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: v6 }
spec: { cidr: "fd00:10:244::/64", vxlanMode: ${mode} }
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node1 }
spec:
  bgp: { ipv4Address: 10.99.0.1/24, ipv6Address: "fd99::1/64" }
  ipv6VXLANTunnelAddr: "fd00:10:244::"
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: node2 }
spec:
  bgp: { ipv4Address: 10.99.0.2/24, ipv6Address: "${n2addr}" }
${opts.node2Vtep === false ? '' : '  ipv6VXLANTunnelAddr: "fd00:10:244::40"'}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: a1 }
spec: { node: node1, cidr: "fd00:10:244::/122", state: confirmed, deleted: "false" }
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: a2 }
spec: { node: node2, cidr: "fd00:10:244::40/122", state: confirmed, deleted: "false" }
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: a3 }
spec: { node: node2, cidr: "fd00:10:244::80/122", state: pending, deleted: "false" }
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: { name: node1-k8s-a-eth0, namespace: default }
spec: { node: node1, pod: a, interfaceName: caliA, ipNetworks: [10.244.0.1/32, "fd00:10:244::1/128"] }
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: { name: node2-k8s-b-eth0, namespace: default }
spec: { node: node2, pod: b, interfaceName: caliB, ipNetworks: [10.244.0.65/32, "fd00:10:244::7/128"] }
${opts.extraWep ?? ''}`;
}

const model = (y: string, node = 'node1') => computeNodeModel(parseClusterYaml(y, 't.yaml'), node);
const routes = (y: string) => new Map(model(y).v6.routes.map((r) => [r.cidr, r]));

test('VXLAN Always: local /128, our block blackholed, node2\'s block via IPv6 VXLAN with Felix\'s VTEP MAC', () => {
  const m = model(yaml('Always'));
  const r = new Map(m.v6.routes.map((x) => [x.cidr, x]));
  assert.is(r.get('fd00:10:244::1/128')!.kind, 'local');
  assert.is(r.get('fd00:10:244::/122')!.kind, 'blackhole');
  const remote = r.get('fd00:10:244::40/122')!;
  assert.is(remote.kind, 'vxlan');
  assert.is(remote.mtu, 1430);
  assert.is(remote.nodeIp6, 'fd99::2');
  const sha = createHash('sha1').update('node2-v6').digest('hex');
  assert.is(remote.vtepMac, `66:${sha.slice(0, 2)}:${sha.slice(2, 4)}:${sha.slice(4, 6)}:${sha.slice(6, 8)}:${sha.slice(8, 10)}`);
  assert.not.ok(r.has('fd00:10:244::80/122'), 'pending affinity: no route');
  assert.is(r.get('fd00:10:244::7/128')!.kind, 'vxlan', 'borrowed /128 routed to its node');
  assert.equal(m.v6.endpoints, [{ interfaceName: 'caliA', ips6: ['fd00:10:244::1'] }]);
  assert.equal(m.v6.knownNodeIps6, ['fd99::1', 'fd99::2']);
  // The IPv4 half is unchanged by the IPv6 addresses beside it.
  assert.equal(m.endpoints[0].ips.length, 1);
});

test('its own IPv6 VTEP address is a host /128 (vxlan-v6.calico\'s in Calico) while an IPv6 pool is VXLAN, none otherwise', () => {
  const host = (mode: string) => model(yaml(mode)).v6.routes.filter((r) => r.kind === 'host').map((r) => r.cidr);
  const vtep = model(yaml('Always')).v6.vtepIp6!;
  assert.equal(host('Always'), [`${vtep}/128`]);
  assert.equal(host('CrossSubnet'), [`${vtep}/128`]);
  assert.equal(host('Never'), []);
});

test('CrossSubnet inside the IPv6 subnet is unencapsulated; outside it, VXLAN', () => {
  assert.is(routes(yaml('CrossSubnet')).get('fd00:10:244::40/122')!.kind, 'direct');
  assert.is(routes(yaml('CrossSubnet', { node2Addr: 'fd98::2/64' })).get('fd00:10:244::40/122')!.kind, 'vxlan');
});

test('Never: unencapsulated via the node\'s IPv6 address (MTU of the underlay)', () => {
  const r = routes(yaml('Never')).get('fd00:10:244::40/122')!;
  assert.is(r.kind, 'direct');
  assert.is(r.nodeIp6, 'fd99::2');
  assert.is(r.mtu, 1500);
});

test('withheld while the remote IPv6 VTEP is unknown', () => {
  const m = model(yaml('Always', { node2Vtep: false }));
  assert.not.ok(m.v6.routes.some((r) => r.cidr === 'fd00:10:244::40/122'));
  assert.ok(m.v6.withheld.some((w) => w.cidr === 'fd00:10:244::40/122' && /VTEP/.test(w.reason)));
});

test('borrowed IPv6 addresses from the IPAM blocks go to the node their allocation names; an endpoint and its allocation make one route', () => {
  const snap = parseClusterYaml(yaml('Always'), 't.yaml');
  const s = {
    ...snap,
    ipamBlocks: [
      // node2's IPv6 VTEP and pod b's address out of node1's block (b's endpoint names it too); one naming no node.
      { cidr: 'fd00:10:244::/122', host: 'node1', allocations: [{ ip: 'fd00:10:244::9', node: 'node2' }, { ip: 'fd00:10:244::7', node: 'node2' }, { ip: 'fd00:10:244::a', node: '' }] },
      // node1's own address out of node2's block: no route to ourselves.
      { cidr: 'fd00:10:244::40/122', host: 'node2', allocations: [{ ip: 'fd00:10:244::45', node: 'node1' }, { ip: '10.244.0.70', node: 'node1' }] },
    ],
  };
  const m1 = computeNodeModel(s, 'node1').v6;
  const r9 = m1.routes.find((r) => r.cidr === 'fd00:10:244::9/128');
  assert.equal([r9?.kind, r9?.node, r9?.vtepIp6], ['vxlan', 'node2', 'fd00:10:244::40']);
  assert.is(m1.routes.filter((r) => r.cidr === 'fd00:10:244::7/128').length, 1);
  assert.is(m1.routes.find((r) => r.cidr === 'fd00:10:244::a/128'), undefined, 'no node named: not routed');
  assert.is(m1.routes.find((r) => r.cidr === 'fd00:10:244::45/128'), undefined);
  const m2 = computeNodeModel(s, 'node2').v6;
  assert.equal(m2.routes.find((r) => r.cidr === 'fd00:10:244::45/128')?.node, 'node1');
  assert.is(m2.routes.find((r) => r.cidr === 'fd00:10:244::9/128'), undefined, 'its own borrowed address needs no route to itself');
});

test('a change of IPv6 data alone is a model change', () => {
  const a = model(yaml('Always'));
  const b = model(yaml('Never'));
  assert.ok(diffModels(a, a).empty);
  const d = diffModels(a, b);
  assert.ok(d.v6Changed);
  assert.not.ok(d.empty);
});

test('bad IPv6 input in the file is a named error', () => {
  assert.throws(() => parseClusterYaml(yaml('Always').replace('ipv6VXLANTunnelAddr: "fd00:10:244::"', 'ipv6VXLANTunnelAddr: "fd00::zz"'), 't.yaml'), /ipv6VXLANTunnelAddr/);
  assert.throws(() => parseClusterYaml(yaml('Always').replace('"fd00:10:244::1/128"', '"fd00:10:244::1/64"'), 't.yaml'), /IPv6 \/128/);
});

test('BGP mode: unencapsulated IPv6 pools are routed by learned IPv6 routes (direct via an on-link next hop), VXLAN pools stay the datastore\'s', () => {
  const snap = parseClusterYaml(yaml('Never'), 't.yaml');
  const bgp = (learned: { prefix: string; nextHop: string; peer: string }[]) => new Map(computeNodeModel(snap, 'node1', { bgp: { learned } }).v6.routes.map((r) => [r.cidr, r]));
  // Without learned routes, node2's block and borrowed /128 are not routed from the datastore.
  const none = bgp([]);
  assert.not.ok(none.has('fd00:10:244::40/122'));
  assert.not.ok(none.has('fd00:10:244::7/128'));
  assert.is(none.get('fd00:10:244::/122')!.kind, 'blackhole');
  const m = bgp([
    { prefix: 'fd00:10:244::40/122', nextHop: 'fd99::2', peer: 'fd99::2' },
    { prefix: 'fd00:10:244::7/128', nextHop: 'fd99::2', peer: 'fd99::2' },
    { prefix: 'fd00:10:244::/122', nextHop: 'fd99::2', peer: 'fd99::2' }, // our own block: the blackhole wins
    { prefix: 'fd00:77::/64', nextHop: 'fd98::9', peer: 'fd99::2' }, // next hop off our subnet: withheld
    { prefix: 'fd00:10:244::c0/122', nextHop: 'fd99::1', peer: 'fd99::2' }, // our own address as next hop: ignored
    { prefix: '10.244.0.64/26', nextHop: '10.99.0.2', peer: '10.99.0.2' }, // IPv4: route-calc.ts's
  ]);
  const block = m.get('fd00:10:244::40/122')!;
  assert.equal([block.kind, block.class, block.nodeIp6, block.node, block.mtu], ['direct', 9, 'fd99::2', 'node2', 1500]);
  assert.is(m.get('fd00:10:244::7/128')!.kind, 'direct');
  assert.is(m.get('fd00:10:244::/122')!.kind, 'blackhole');
  assert.not.ok(m.has('fd00:77::/64'));
  assert.not.ok(m.has('fd00:10:244::c0/122'));
  const withheld = computeNodeModel(snap, 'node1', { bgp: { learned: [{ prefix: 'fd00:77::/64', nextHop: 'fd98::9', peer: 'fd99::2' }] } }).v6.withheld;
  assert.equal(withheld.map((w) => [w.cidr, w.reason]), [['fd00:77::/64', 'learned from fd99::2 with next hop fd98::9, not on fd99::/64 (a route outside the pools goes into the node\'s kernel too, which takes an on-link next hop only)']]);
  // Only a link-local next hop: not routed, withheld with the reason (podway routes shows it).
  const ll = computeNodeModel(snap, 'node1', { bgp: { learned: [{ prefix: 'fd00:10:244::40/122', nextHop: 'fe80::2', peer: 'fd99::2' }] } }).v6;
  assert.not.ok(ll.routes.some((x) => x.cidr === 'fd00:10:244::40/122'));
  assert.equal(ll.withheld.map((w) => [w.cidr, w.reason]), [['fd00:10:244::40/122', 'learned from fd99::2 with only a link-local next hop (fe80::2): it needs an interface, which podway\'s routes do not name']]);
  // A learned default route is installed around our connected subnet (fd99::/64): the connected
  // route wins for it, as in the kernel, so a neighbour on the link is not sent to the router.
  const def = [...bgp([{ prefix: '::/0', nextHop: 'fd99::2', peer: 'fd99::2' }]).values()].filter((r) => r.class === 9);
  assert.is(def.length, 64);
  assert.ok(def.every((r) => r.cidr !== '::/0' && r.nodeIp6 === 'fd99::2'));
  assert.ok(def.some((r) => r.cidr === 'fd99:0:0:1::/64'));
  assert.ok(!def.some((r) => r.prefixLen > 64), 'nothing inside fd99::/64');
  // The subnet itself announced: nothing of it is podway's.
  assert.equal([...bgp([{ prefix: 'fd99::/64', nextHop: 'fd99::fe', peer: 'fd99::fe' }]).values()].filter((r) => r.class === 9), []);
  // A longer prefix inside it holding our own address: around the address.
  const inner = [...bgp([{ prefix: 'fd99::/120', nextHop: 'fd99::fe', peer: 'fd99::fe' }]).values()].filter((r) => r.class === 9);
  assert.is(inner.length, 8);
  assert.ok(inner.some((r) => r.cidr === 'fd99::/128'), 'fd99:: beside fd99::1');
  assert.ok(inner.some((r) => r.cidr === 'fd99::2/127'));
  assert.ok(!inner.some((r) => r.cidr === 'fd99::1/128'));
  // VXLAN pools: learned routes ignored, the datastore's VXLAN route stays.
  const vx = new Map(computeNodeModel(parseClusterYaml(yaml('Always'), 't.yaml'), 'node1', { bgp: { learned: [{ prefix: 'fd00:10:244::40/122', nextHop: 'fd99::2', peer: 'fd99::2' }] } }).v6.routes.map((r) => [r.cidr, r]));
  assert.is(vx.get('fd00:10:244::40/122')!.kind, 'vxlan');
});

test('BGP mode: a learned IPv6 block whose next hop is off our IPv6 subnet (the mesh across a router) is direct via that next hop, as IPv4\'s (BIRD\'s gateway recursive); outside every pool such a route stays withheld', () => {
  // node2 on fd98::/64, node1 on fd99::/64: the mesh announces node2's block and borrowed /128 with fd98::2.
  const snap = parseClusterYaml(yaml('Never', { node2Addr: 'fd98::2/64' }), 't.yaml');
  const learned = [
    { prefix: 'fd00:10:244::40/122', nextHop: 'fd98::2', peer: 'fd98::2' },
    { prefix: 'fd00:10:244::7/128', nextHop: 'fd98::2', peer: 'fd98::2' },
    { prefix: 'fd00:77::/64', nextHop: 'fd98::2', peer: 'fd98::2' }, // outside the pools
  ];
  const m = computeNodeModel(snap, 'node1', { bgp: { learned, complete: true } });
  const byCidr = new Map(m.v6.routes.map((r) => [r.cidr, r]));
  const shape = (c: string) => { const r = byCidr.get(c); return r && [r.kind, r.class, r.node, r.nodeIp6, r.pool, r.mtu]; };
  assert.equal(shape('fd00:10:244::40/122'), ['direct', 9, 'node2', 'fd98::2', 'v6', 1500]);
  assert.equal(shape('fd00:10:244::7/128'), ['direct', 9, 'node2', 'fd98::2', 'v6', 1500]);
  // Outside every pool: such a route goes into the node's kernel too, which takes on-link next hops only.
  assert.not.ok(byCidr.has('fd00:77::/64'));
  assert.equal(m.v6.withheld, [{ cidr: 'fd00:77::/64', node: 'node2', reason: 'learned from fd98::2 with next hop fd98::2, not on fd99::/64 (a route outside the pools goes into the node\'s kernel too, which takes an on-link next hop only)' }]);
  assert.equal(m.kernelRoutes, []);
  // A node whose IPv6 address has no prefix (/128: every next hop is off its subnet) routes a pool
  // block the same way (the dataplane asks the kernel for the neighbour), as IPv4 with a /32.
  const bare = computeNodeModel(parseClusterYaml(yaml('Never').replace('ipv6Address: "fd99::1/64"', 'ipv6Address: "fd99::1"'), 't.yaml'), 'node1', { bgp: { learned: [{ prefix: 'fd00:10:244::40/122', nextHop: 'fd99::2', peer: 'fd99::2' }, { prefix: 'fd00:77::/64', nextHop: 'fd99::fe', peer: 'fd99::fe' }] } });
  assert.equal(bare.v6.routes.filter((r) => r.class === 9).map((r) => [r.cidr, r.kind, r.nodeIp6]), [['fd00:10:244::40/122', 'direct', 'fd99::2']]);
  assert.equal(bare.v6.withheld.map((w) => w.cidr), ['fd00:77::/64']);
  // An IPv6 VXLAN pool stays the datastore's: a learned copy with an off-subnet next hop is ignored.
  const vx = computeNodeModel(parseClusterYaml(yaml('Always', { node2Addr: 'fd98::2/64' }), 't.yaml'), 'node1', { bgp: { learned: learned.slice(0, 1) } });
  assert.equal(vx.v6.routes.find((r) => r.cidr === 'fd00:10:244::40/122')?.kind, 'vxlan');
  assert.equal(vx.v6.withheld, []);
});

test('BGP mode: learned IPv6 routes outside every pool with a usable next hop go to the node\'s kernel (kernelRoutes, beside IPv4\'s); pool blocks, link-local, off-subnet and our own next hops never', () => {
  const snap = parseClusterYaml(yaml('Never'), 't.yaml');
  const model = computeNodeModel(snap, 'node1', { bgp: { complete: true, learned: [
    { prefix: '::/0', nextHop: 'fd99::fe', peer: 'fd99::fe' }, // a ToR's default route
    { prefix: 'fd00:77::/64', nextHop: 'fd99::fe', peer: 'fd99::fe' }, // an outside network
    { prefix: 'fd00:10:244::40/122', nextHop: 'fd99::2', peer: 'fd99::2' }, // node2's block: podway's own
    { prefix: 'fd00:78::/64', nextHop: 'fe80::2', peer: 'fd99::2' }, // link-local only
    { prefix: 'fd00:79::/64', nextHop: 'fd98::9', peer: 'fd99::2' }, // off our subnet
    { prefix: 'fd00:7a::/64', nextHop: 'fd99::1', peer: 'fd99::2' }, // our own address: our route reflected
    { prefix: '198.51.100.0/24', nextHop: '10.99.0.254', peer: '10.99.0.254' }, // IPv4: route-calc.ts's
  ] } });
  assert.equal(model.kernelRoutes, [
    { cidr: '198.51.100.0/24', via: '10.99.0.254', peer: '10.99.0.254' },
    { cidr: '::/0', via: 'fd99::fe', peer: 'fd99::fe' },
    { cidr: 'fd00:77::/64', via: 'fd99::fe', peer: 'fd99::fe' },
  ]);
  assert.is(model.kernelRoutesComplete, true);
  // Without BGP: no kernel routes at all (the field is absent, as for IPv4).
  assert.is(computeNodeModel(snap, 'node1').kernelRoutes, undefined);
});

test.run();
