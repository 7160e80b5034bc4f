// The IPv6 next-hop table (src/dataplane/nexthops6.ts) built from a node model's IPv6 half: one
// next hop per route with its kind, port, MTU, node address and underlay neighbour (gw6: the node
// on our IPv6 subnet, else the kernel's IPv6 gateway towards it; IPv6 VXLAN always the kernel's),
// its MAC once NDP resolved that neighbour (or FAILED), the VXLAN template, a FIB that answers
// with them, learnNeighbor6/failNeighbor6 touching only the next hops through that neighbour, and a
// new model applied on the previous table giving the same answers as a fresh one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildNextHops6, directGateway6, underlayNeighbor6, learnNeighbor6, failNeighbor6, type NextHops6, type NextHop6Context } from '../../src/dataplane/nexthops6';
import { NhKind, MAC_KNOWN, MAC_FAILED, MAC_UNRESOLVED, CALICO_VNI } from '../../src/dataplane/nexthops';
import { computeNodeModel, parseClusterYaml } from '../../src/control';
import type { LearnedRoute } from '../../src/control/route-calc';
import { ip6Bytes } from '../../src/control/route-calc6';
import { NO_ROUTE } from '../../src/lpm';
import { networkOf6, parseIp6 } from '../../src/lpm/cidr';
import { formatIpv6 } from '../../src/packet/ipv6';
import { formatMac, parseMac } from '../../src/packet';
import { VXLAN_PORT } from '../../src/packet/vxlan';

// node1 and node2 on fd99::/64, node3 on fd98::/64 behind the router (fd99::fe on node1's link).
// Pools: v6-vx (VXLAN) and v6-plain (unencapsulated), a block of each per node.
const node = (name: string, v4: string, v6: string, vtep: string) => `---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: ${name} }
spec:
  bgp: { ipv4Address: ${v4}, ipv6Address: "${v6}" }
  ipv6VXLANTunnelAddr: "${vtep}"
`;
const block = (name: string, cidr: string) => `---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: { name: ${name}-${cidr.replace(/[:/]/g, '-')} }
spec: { node: ${name}, cidr: "${cidr}", state: confirmed, deleted: "false" }
`;
const wep = (name: string, pod: string, ifname: string, addr: string) => `---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: { name: ${name}-k8s-${pod}-eth0, namespace: default }
spec: { node: ${name}, pod: ${pod}, interfaceName: ${ifname}, ipNetworks: ["${addr}/128"] }
`;
const POOLS = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: v6-vx }
spec: { cidr: "fd00:10:244::/64", blockSize: 122, vxlanMode: Always }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: v6-plain }
spec: { cidr: "fd00:10:245::/64", blockSize: 122, vxlanMode: Never }
`;
const NODE1 = node('node1', '10.99.0.1/24', 'fd99::1/64', 'fd00:10:244::') + block('node1', 'fd00:10:244::/122') + block('node1', 'fd00:10:245::/122') + wep('node1', 'a', 'caliA', 'fd00:10:244::1') + wep('node1', 'b', 'caliB', 'fd00:10:245::2');
const NODE2 = node('node2', '10.99.0.2/24', 'fd99::2/64', 'fd00:10:244::40') + block('node2', 'fd00:10:244::40/122') + block('node2', 'fd00:10:245::40/122');
const NODE3 = node('node3', '10.98.0.3/24', 'fd98::3/64', 'fd00:10:244::80') + block('node3', 'fd00:10:244::80/122') + block('node3', 'fd00:10:245::80/122');
const YAML = POOLS + NODE1 + NODE2 + NODE3;

const model = (yaml = YAML, learned?: LearnedRoute[]) => computeNodeModel(parseClusterYaml(yaml, 't.yaml'), 'node1', learned ? { bgp: { learned } } : {});
const m = model();
const ROUTER = 'fd99::fe';
const ROUTER_MAC = '52:54:00:99:00:fe';

/** portOf from `ports`; neighbours resolved (`macs`) or failed; the kernel's IPv6 next hop per
 * address (`gateways`, else on-link). */
function ctx(opts: { ports?: Record<string, number>; macs?: Record<string, string>; failed?: string[]; gateways?: Record<string, string> } = {}): NextHop6Context {
  return {
    portOf: (n) => (opts.ports ?? { caliA: 10, caliB: 11 })[n] ?? -1,
    neighbor6: (a) => (opts.macs?.[a] !== undefined ? parseMac(opts.macs[a]!) : undefined),
    neighborFailed6: (a) => opts.failed?.includes(a) ?? false,
    nextHop6: (a) => opts.gateways?.[a] ?? a,
  };
}

/** The next hop the FIB gives for `addr` (asserted to exist). */
function at(nh: NextHops6, addr: string): number {
  const w = parseIp6(addr);
  const i = nh.fib.lookup(w[0], w[1], w[2], w[3]);
  assert.is.not(i, NO_ROUTE, `${addr} has a route`);
  return i;
}
const gwOf = (nh: NextHops6, i: number) => formatIpv6(nh.gw6, i * 16);
const ipOf = (nh: NextHops6, i: number) => formatIpv6(nh.ip6, i * 16);

test('kinds, ports, MTUs and node addresses per destination; no route outside them', () => {
  const nh = buildNextHops6(m.v6, ctx());
  assert.is(nh.count, m.v6.routes.length);
  const want: [string, number, number, number, string][] = [
    // address, kind, port, mtu, node address ('::' for none)
    ['fd00:10:244::1', NhKind.LOCAL, 10, 1430, '::'],
    ['fd00:10:245::2', NhKind.LOCAL, 11, 1430, '::'],
    ['fd00:10:244::', NhKind.HOST, -1, 1500, '::'], // our own IPv6 VTEP
    ['fd00:10:244::9', NhKind.BLACKHOLE, -1, 1430, '::'],
    ['fd00:10:245::3f', NhKind.BLACKHOLE, -1, 1430, '::'],
    ['fd00:10:244::41', NhKind.VXLAN, -1, 1430, 'fd99::2'],
    ['fd00:10:244::bf', NhKind.VXLAN, -1, 1430, 'fd98::3'],
    ['fd00:10:245::41', NhKind.DIRECT, -1, 1500, 'fd99::2'],
    ['fd00:10:245::81', NhKind.DIRECT, -1, 1500, 'fd98::3'],
  ];
  for (const [addr, kind, port, mtu, nodeIp] of want) {
    const i = at(nh, addr);
    assert.is(nh.kind[i], kind, `${addr} kind`);
    assert.is(nh.port[i], port, `${addr} port`);
    assert.is(nh.mtu[i], mtu, `${addr} mtu`);
    assert.is(ipOf(nh, i), nodeIp, `${addr} node address`);
    assert.is(nh.macKnown[i], MAC_UNRESOLVED, `${addr} unresolved`);
  }
  for (const a of ['fd00:10:244::100', 'fd00:10:246::1', 'fd99::2', '::1']) {
    const w = parseIp6(a);
    assert.is(nh.fib.lookup(w[0], w[1], w[2], w[3]), NO_ROUTE, `${a}: no route`);
  }
  // The VXLAN template: outer fd99::1 -> fd98::3, UDP to the VXLAN port, VNI 4096, the VTEP MACs.
  const v = at(nh, 'fd00:10:244::81');
  const tpl = nh.tpl[v]!;
  assert.is(tpl.length, 68);
  assert.is(formatIpv6(tpl, 8), 'fd99::1');
  assert.is(formatIpv6(tpl, 24), 'fd98::3');
  assert.is((tpl[42]! << 8) | tpl[43]!, VXLAN_PORT);
  assert.is((tpl[52]! << 16) | (tpl[53]! << 8) | tpl[54]!, CALICO_VNI);
  const node3 = m.v6.routes.find((r) => r.cidr === 'fd00:10:244::80/122')!;
  assert.is(formatMac(tpl, 56), node3.vtepMac);
  assert.is(formatMac(tpl, 62), m.v6.vtepMac6);
  assert.is(nh.tpl[at(nh, 'fd00:10:245::81')]!.length, 0, 'no template for a direct route');
});

test('Felix\'s vxlanVNI and vxlanPort in force go into the templates', () => {
  const nh = buildNextHops6(m.v6, { ...ctx(), vni: 77, vxlanPort: 8472 });
  const tpl = nh.tpl[at(nh, 'fd00:10:244::41')]!;
  assert.is((tpl[42]! << 8) | tpl[43]!, 8472);
  assert.is((tpl[52]! << 16) | (tpl[53]! << 8) | tpl[54]!, 77);
  assert.equal([nh.vni, nh.vxlanPort], [77, 8472]);
});

test('a local endpoint without its interface falls back to its block\'s blackhole', () => {
  const nh = buildNextHops6(m.v6, ctx({ ports: { caliA: 10 } }));
  assert.is(nh.kind[at(nh, 'fd00:10:244::1')], NhKind.LOCAL);
  assert.is(nh.kind[at(nh, 'fd00:10:245::2')], NhKind.BLACKHOLE);
});

test('underlay neighbours: direct to a node on our IPv6 subnet goes to the node whatever the kernel says; off it, and VXLAN always, to the kernel\'s IPv6 next hop', () => {
  // The kernel routes both fd99::2 and fd98::3 through the router (a /128 host route for fd99::2,
  // say): VXLAN follows it for both; unencapsulated, fd99::2 on our subnet is still solicited itself.
  const nh = buildNextHops6(m.v6, ctx({ gateways: { 'fd99::2': ROUTER, 'fd98::3': ROUTER }, macs: { [ROUTER]: ROUTER_MAC } }));
  const rows: [string, string][] = [
    ['fd00:10:244::41', ROUTER], // VXLAN to node2: the kernel's next hop
    ['fd00:10:244::81', ROUTER], // VXLAN to node3
    ['fd00:10:245::41', 'fd99::2'], // direct to node2 on our subnet: node2 itself
    ['fd00:10:245::81', ROUTER], // direct to node3 off it: the gateway (directGateway6)
  ];
  for (const [addr, gw] of rows) {
    const i = at(nh, addr);
    assert.is(gwOf(nh, i), gw, `${addr} neighbour`);
    assert.is(nh.macKnown[i], gw === ROUTER ? MAC_KNOWN : MAC_UNRESOLVED, `${addr} MAC known through ${gw}`);
    if (gw === ROUTER) assert.is(formatMac(nh.mac, i * 6), ROUTER_MAC);
  }
  // A failed neighbour marks the next hops through it FAILED, those only.
  const failed = buildNextHops6(m.v6, ctx({ gateways: { 'fd98::3': ROUTER }, failed: [ROUTER] }));
  assert.is(failed.macKnown[at(failed, 'fd00:10:245::81')], MAC_FAILED);
  assert.is(failed.macKnown[at(failed, 'fd00:10:244::81')], MAC_FAILED);
  assert.is(failed.macKnown[at(failed, 'fd00:10:245::41')], MAC_UNRESOLVED);
  // Without the kernel's answer (no nextHop6): every neighbour is the node itself.
  const plain = buildNextHops6(m.v6, { portOf: () => -1, neighbor6: () => undefined });
  assert.is(gwOf(plain, at(plain, 'fd00:10:245::81')), 'fd98::3');
  assert.is(gwOf(plain, at(plain, 'fd00:10:244::81')), 'fd98::3');
});

test('directGateway6 and underlayNeighbor6 on their own', () => {
  const sub = networkOf6('fd99::/64');
  const k = ctx({ gateways: { 'fd98::3': ROUTER, 'fd99::2': ROUTER } });
  assert.is(directGateway6('fd99::2', sub, k), 'fd99::2');
  assert.is(directGateway6('fd98::3', sub, k), ROUTER);
  assert.is(directGateway6('fd98::3', sub, {}), 'fd98::3', 'no kernel table: the address itself');
  assert.is(directGateway6('fd99::2', null, k), ROUTER, 'no subnet of our own: every next hop asks the kernel');
  assert.is(directGateway6('fd99::2', networkOf6('fd99::1/128'), k), ROUTER, 'a /128 holds nobody else');
  assert.is(underlayNeighbor6({ kind: 'vxlan', nodeIp6: 'fd99::2' }, sub, k), ROUTER);
  assert.is(underlayNeighbor6({ kind: 'direct', nodeIp6: 'fd99::2' }, sub, k), 'fd99::2');
  assert.is(underlayNeighbor6({ kind: 'local', nodeIp6: null }, sub, k), null);
  assert.is(underlayNeighbor6({ kind: 'blackhole', nodeIp6: 'fd99::2' }, sub, k), null, 'no neighbour for a blackhole');
});

test('--bgp: a learned block whose next hop is off our IPv6 subnet (route-calc6) is a direct next hop through the gateway', () => {
  const bgp = model(YAML, [
    { prefix: 'fd00:10:245::80/122', nextHop: 'fd98::3', peer: 'fd98::3' },
    { prefix: 'fd00:10:245::40/122', nextHop: 'fd99::2', peer: 'fd99::2' },
  ]);
  const nh = buildNextHops6(bgp.v6, ctx({ gateways: { 'fd98::3': ROUTER, 'fd99::2': ROUTER }, macs: { [ROUTER]: ROUTER_MAC } }));
  const off = at(nh, 'fd00:10:245::81');
  assert.equal([nh.kind[off], ipOf(nh, off), gwOf(nh, off), nh.macKnown[off]], [NhKind.DIRECT, 'fd98::3', ROUTER, MAC_KNOWN]);
  assert.is(nh.routes[off]!.class, 9, 'the learned route (class BGP)');
  const on = at(nh, 'fd00:10:245::41');
  assert.equal([nh.kind[on], gwOf(nh, on)], [NhKind.DIRECT, 'fd99::2']);
});

test('learnNeighbor6 and failNeighbor6 touch the next hops through that neighbour only', () => {
  const nh = buildNextHops6(m.v6, ctx({ gateways: { 'fd98::3': ROUTER } }));
  const bytes = (a: string) => ip6Bytes(a);
  const macB = parseMac('02:00:00:00:00:fe');
  const through = (gw: string) => m.v6.routes.filter((_, i) => (nh.kind[i] === NhKind.VXLAN || nh.kind[i] === NhKind.DIRECT) && gwOf(nh, i) === gw).length;
  assert.is(through(ROUTER), 2);
  assert.is(through('fd99::2'), 2);
  // the address at an offset in a larger buffer, as the pipeline hands an NA's target
  const buf = new Uint8Array(40);
  buf.set(bytes(ROUTER), 8);
  assert.is(learnNeighbor6(nh, buf, 8, macB, 0), 2);
  for (let i = 0; i < nh.count; i++) {
    const viaRouter = (nh.kind[i] === NhKind.VXLAN || nh.kind[i] === NhKind.DIRECT) && gwOf(nh, i) === ROUTER;
    assert.is(nh.macKnown[i], viaRouter ? MAC_KNOWN : MAC_UNRESOLVED, m.v6.routes[i]!.cidr);
    if (viaRouter) assert.is(formatMac(nh.mac, i * 6), '02:00:00:00:00:fe');
  }
  assert.is(learnNeighbor6(nh, bytes('fd99::77'), 0, macB, 0), 0, 'nobody goes through a stranger');
  // node2 stops answering: its two next hops FAILED, the router's keep their MAC; once only.
  assert.is(failNeighbor6(nh, bytes('fd99::2'), 0), 2);
  assert.is(failNeighbor6(nh, bytes('fd99::2'), 0), 0, 'already failed');
  assert.is(nh.macKnown[at(nh, 'fd00:10:245::41')], MAC_FAILED);
  assert.is(nh.macKnown[at(nh, 'fd00:10:245::81')], MAC_KNOWN);
  // ... and answers again: known again, with its MAC.
  assert.is(learnNeighbor6(nh, bytes('fd99::2'), 0, parseMac('02:00:00:00:00:02'), 0), 2);
  assert.is(formatMac(nh.mac, at(nh, 'fd00:10:244::41') * 6), '02:00:00:00:00:02');
  assert.is(nh.macKnown[at(nh, 'fd00:10:244::41')], MAC_KNOWN);
});

test('a new model on the previous table: the same answers as a fresh build (routes added, removed, renumbered), hits kept by CIDR', () => {
  const first = buildNextHops6(m.v6, ctx());
  first.hits[at(first, 'fd00:10:245::81')] = 7;
  first.hits[at(first, 'fd00:10:244::41')] = 3;
  // node2 gone (its blocks with it), a new pod on node1 and a block of node4's.
  const y2 = POOLS + NODE1 + wep('node1', 'c', 'caliC', 'fd00:10:245::5') + NODE3 + node('node4', '10.99.0.4/24', 'fd99::4/64', 'fd00:10:244::c0') + block('node4', 'fd00:10:245::c0/122');
  const m2 = model(y2);
  assert.not.ok(m2.v6.routes.some((r) => r.node === 'node2'), 'node2\'s routes gone');
  assert.ok(m2.v6.routes.some((r) => r.cidr === 'fd00:10:245::c0/122'));
  const k = ctx({ ports: { caliA: 10, caliB: 11, caliC: 12 } });
  const next = buildNextHops6(m2.v6, k, first);
  const fresh = buildNextHops6(m2.v6, k);
  assert.is(next.table, first.table, 'the long-lived table, changed in place');
  const probe = ['fd00:10:244::1', 'fd00:10:245::2', 'fd00:10:245::5', 'fd00:10:244::', 'fd00:10:244::9', 'fd00:10:244::41', 'fd00:10:245::41', 'fd00:10:244::81', 'fd00:10:245::81', 'fd00:10:245::c1', 'fd00:10:245::100'];
  for (const a of probe) {
    const w = parseIp6(a);
    const [x, y] = [next.fib.lookup(w[0], w[1], w[2], w[3]), fresh.fib.lookup(w[0], w[1], w[2], w[3])];
    assert.is(x === NO_ROUTE, y === NO_ROUTE, `${a}: routed in both or neither`);
    if (x === NO_ROUTE) continue;
    assert.is(next.routes[x]!.cidr, fresh.routes[y]!.cidr, `${a}: same route`);
    assert.equal([next.kind[x], next.port[x], next.mtu[x]], [fresh.kind[y], fresh.port[y], fresh.mtu[y]], `${a}: same next hop`);
  }
  assert.is(next.kind[at(next, 'fd00:10:245::5')], NhKind.LOCAL);
  assert.is(next.port[at(next, 'fd00:10:245::5')], 12);
  // node2's block is now outside every route but the pool: no route
  const w = parseIp6('fd00:10:245::41');
  assert.is(next.fib.lookup(w[0], w[1], w[2], w[3]), NO_ROUTE);
  assert.is(next.hits[at(next, 'fd00:10:245::81')], 7, 'hits kept by CIDR');
  assert.is(next.hits[at(next, 'fd00:10:245::c1')], 0);
});

test.run();
