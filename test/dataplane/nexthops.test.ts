// The next-hop table built from a node model: one next hop per route with its kind, port, MTU,
// gateway and (once resolved) MAC, a FIB that answers with them, and learnNeighbor filling in the
// MAC of every next hop through a gateway.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildNextHops, learnNeighbor, NhKind, CALICO_VNI } from '../../src/dataplane/nexthops';
import { NO_ROUTE } from '../../src/lpm';
import { isVxlanTemplate, parseIpv4, parseMac, formatMac } from '../../src/packet';
import { clusterModel, makeHarness, NODE1, NODE2, VTEP1_MAC, VTEP2_MAC } from './helpers';

const ip = parseIpv4;
const model = clusterModel();

function ctx(ports: Record<string, number>, neighbors: Record<string, string> = {}, gateways: Record<string, string> = {}) {
  return {
    portOf: (n: string) => ports[n] ?? -1,
    neighbor: (a: number) => {
      const n = Object.entries(neighbors).find(([k]) => ip(k) === a);
      return n ? parseMac(n[1]) : undefined;
    },
    nextHop: (a: number) => {
      const g = Object.entries(gateways).find(([k]) => ip(k) === a);
      return g ? ip(g[1]) : a;
    },
  };
}

const PORTS = { caliA: 10, caliB: 11, tapT: 12, tunU: 13 };

function at(nh: ReturnType<typeof buildNextHops>, addr: string): number {
  const i = nh.fib.lookup(ip(addr));
  assert.is.not(i, NO_ROUTE, `${addr} has a route`);
  return i;
}

test('model: the MTUs of a 1500 underlay (VXLAN 1450, IPIP 1480, pods 1450)', () => {
  assert.equal(model.mtu, { underlay: 1500, vxlan: 1450, ipip: 1480, pod: 1450 });
  assert.is(model.node.ip, NODE1);
});

test('buildNextHops: kinds, ports, MTUs and node addresses per destination', () => {
  const nh = buildNextHops(model, ctx(PORTS));
  assert.is(nh.count, model.routes.length);
  const want: [string, number, number, number, number][] = [
    // address, kind, port, mtu, node ip
    ['10.244.0.1', NhKind.LOCAL, 10, 1450, 0],
    ['10.244.0.2', NhKind.LOCAL, 11, 1450, 0],
    ['10.245.0.3', NhKind.LOCAL, 12, 1450, 0],
    ['10.246.0.4', NhKind.LOCAL, 13, 1450, 0],
    ['10.244.0.9', NhKind.BLACKHOLE, -1, 1450, 0],
    ['10.246.0.63', NhKind.BLACKHOLE, -1, 1450, 0],
    ['10.244.0.65', NhKind.VXLAN, -1, 1450, NODE2],
    ['10.244.0.127', NhKind.VXLAN, -1, 1450, NODE2],
    ['10.245.0.65', NhKind.IPIP, -1, 1480, NODE2],
    ['10.246.0.65', NhKind.DIRECT, -1, 1500, NODE2],
  ];
  for (const [addr, kind, port, mtu, node] of want) {
    const i = at(nh, addr);
    assert.is(nh.kind[i], kind, `${addr} kind`);
    assert.is(nh.port[i], port, `${addr} port`);
    assert.is(nh.mtu[i], mtu, `${addr} mtu`);
    assert.is(nh.ip[i], node >>> 0, `${addr} node ip`);
    assert.is(nh.macKnown[i], 0, `${addr} unresolved`);
  }
  assert.is(nh.fib.lookup(ip('10.244.1.1')), NO_ROUTE, 'pool address without a block');
  assert.is(nh.fib.lookup(ip('8.8.8.8')), NO_ROUTE);
  // The VXLAN next hop carries its outer header template: node1 -> node2, VNI 4096, the VTEP MACs.
  const v = at(nh, '10.244.0.65');
  const tpl = nh.tpl[v];
  assert.is(tpl.length, 48);
  assert.ok(isVxlanTemplate(tpl));
  assert.is(((tpl[12] << 24) | (tpl[13] << 16) | (tpl[14] << 8) | tpl[15]) >>> 0, NODE1);
  assert.is(((tpl[16] << 24) | (tpl[17] << 16) | (tpl[18] << 8) | tpl[19]) >>> 0, NODE2);
  assert.is((tpl[32] << 16) | (tpl[33] << 8) | tpl[34], CALICO_VNI);
  assert.is(formatMac(tpl, 36), VTEP2_MAC);
  assert.is(formatMac(tpl, 42), VTEP1_MAC);
  assert.is(nh.tpl[at(nh, '10.245.0.65')].length, 0, 'no template for IPIP');
});

test('buildNextHops: a local endpoint without a port falls back to its block blackhole', () => {
  const nh = buildNextHops(model, ctx({ caliA: 10 }));
  assert.is(nh.kind[at(nh, '10.244.0.1')], NhKind.LOCAL);
  assert.is(nh.kind[at(nh, '10.244.0.2')], NhKind.BLACKHOLE);
  assert.is(nh.kind[at(nh, '10.245.0.3')], NhKind.BLACKHOLE);
});

test('gateways: tunnels follow the underlay next hop, direct routes to a node on our subnet go to the node', () => {
  const nh = buildNextHops(model, ctx(PORTS, { '10.99.0.254': '52:54:00:99:00:fe' }, { '10.99.0.2': '10.99.0.254' }));
  const v = at(nh, '10.244.0.65');
  const i = at(nh, '10.245.0.65');
  const d = at(nh, '10.246.0.65');
  assert.is(nh.gw[v], ip('10.99.0.254'));
  assert.is(nh.gw[i], ip('10.99.0.254'));
  assert.is(nh.gw[d], NODE2);
  assert.is(nh.macKnown[v], 1);
  assert.is(nh.macKnown[i], 1);
  assert.is(nh.macKnown[d], 0, 'direct next hop is not through the gateway');
  assert.is(formatMac(nh.mac, v * 6), '52:54:00:99:00:fe');
});

test('gateways: a direct route to a node off our subnet goes to the underlay next hop towards it, as the tunnels do', () => {
  // node1's subnet as a /32: node2 (10.99.0.2) is off it, and the kernel routes it via 10.99.0.254
  const off = { ...model, node: { ...model.node, subnet: { cidr: '10.99.0.1/32', addr: NODE1, prefixLen: 32 } } };
  const nh = buildNextHops(off, ctx(PORTS, { '10.99.0.254': '52:54:00:99:00:fe' }, { '10.99.0.2': '10.99.0.254' }));
  const d = at(nh, '10.246.0.65');
  assert.is(nh.kind[d], NhKind.DIRECT);
  assert.is(nh.ip[d], NODE2, 'still the route to node2');
  assert.is(nh.gw[d], ip('10.99.0.254'), 'its frames go to the gateway, never ARP for node2 across the router');
  assert.is(nh.macKnown[d], 1);
  assert.is(formatMac(nh.mac, d * 6), '52:54:00:99:00:fe');
  // the kernel has node2 on a link (no gateway): to node2 itself
  const onLink = buildNextHops(off, ctx(PORTS));
  assert.is(onLink.gw[at(onLink, '10.246.0.65')], NODE2);
  assert.is(learnNeighbor(nh, ip('10.99.0.254'), parseMac('02:00:00:00:00:09'), 0), nh.routes.filter((r) => r.nodeIp !== null).length);
  assert.is(formatMac(nh.mac, d * 6), '02:00:00:00:00:09');
});

test('learnNeighbor writes the MAC into every next hop through that neighbour, and only those', () => {
  const nh = buildNextHops(model, ctx(PORTS, {}, { '10.99.0.2': '10.99.0.254' }));
  const mac = new Uint8Array([0, 0, 0, 0x52, 0x54, 0, 0x99, 0, 0xfe, 0]);
  const through = model.routes.filter((r) => r.kind === 'vxlan' || r.kind === 'ipip').length;
  assert.ok(through >= 2);
  assert.is(learnNeighbor(nh, ip('10.99.0.254'), mac, 3), through);
  for (let k = 0; k < nh.count; k++) {
    const kind = nh.kind[k];
    if (kind === NhKind.VXLAN || kind === NhKind.IPIP) {
      assert.is(nh.macKnown[k], 1);
      assert.is(formatMac(nh.mac, k * 6), '52:54:00:99:00:fe');
    } else {
      assert.is(nh.macKnown[k], 0, `${model.routes[k].cidr} untouched`);
    }
  }
  // The direct route's neighbour is node2 itself.
  assert.is(learnNeighbor(nh, NODE2, parseMac('52:54:00:99:00:02'), 0), model.routes.filter((r) => r.kind === 'direct').length);
  assert.is(formatMac(nh.mac, at(nh, '10.246.0.65') * 6), '52:54:00:99:00:02');
  assert.is(learnNeighbor(nh, ip('10.99.0.77'), mac, 3), 0, 'nobody goes through a stranger');
  // A changed MAC replaces the old one.
  assert.is(learnNeighbor(nh, ip('10.99.0.254'), parseMac('02:00:00:00:00:01'), 0), through);
  assert.is(formatMac(nh.mac, at(nh, '10.244.0.65') * 6), '02:00:00:00:00:01');
});

test('the harness builds the same table from its MemoryIO ports', () => {
  const h = makeHarness();
  const i = h.nh.fib.lookup(ip('10.244.0.2'));
  assert.is(h.nh.port[i], h.port('caliB'));
  assert.is(h.pipe.nh, h.nh);
});

test('a new model updates the previous table incrementally: same answers as a fresh build, routes renumbered, added, removed', () => {
  const first = buildNextHops(model, ctx(PORTS));
  // drop a pod (its /32 falls back to the block's blackhole), reverse the order (every next hop
  // renumbered), and add a route that was not there
  const routes = [...model.routes].filter((r) => r.endpoint !== 'caliB').reverse();
  const extra = { ...routes.find((r) => r.kind === 'vxlan')!, cidr: '10.244.200.0/26', addr: ip('10.244.200.0'), prefixLen: 26 };
  const next = { ...model, routes: [...routes, extra] };
  const inc = buildNextHops(next, ctx(PORTS), first);
  const fresh = buildNextHops(next, ctx(PORTS));
  assert.ok(inc.table === first.table, 'the table is kept, not rebuilt');
  const keys = ['10.244.0.1', '10.244.0.2', '10.244.0.9', '10.245.0.3', '10.246.0.4', '10.244.0.65', '10.244.200.7', '10.244.201.1', '10.245.1.1', '8.8.8.8'];
  for (const k of keys) assert.is(inc.fib.lookup(ip(k)), fresh.fib.lookup(ip(k)), `lookup ${k}`);
  assert.is(inc.kind[inc.fib.lookup(ip('10.244.0.2'))], NhKind.BLACKHOLE, 'the removed pod falls back to the blackhole');
  assert.is(inc.routes[inc.fib.lookup(ip('10.244.200.7'))].cidr, '10.244.200.0/26');
  // and back again
  const back = buildNextHops(model, ctx(PORTS), inc);
  const fresh0 = buildNextHops(model, ctx(PORTS));
  for (const k of keys) assert.is(back.fib.lookup(ip(k)), fresh0.fib.lookup(ip(k)), `lookup ${k} after the way back`);
});

test.run();
