// natOutgoing over routes learned with BGP (podway run --bgp): Calico masquerades traffic from a
// natOutgoing pool to any destination outside every pool, whatever the route (its cali-nat-outgoing
// rule matches addresses). So pod egress over a learned route out of the pod network goes to the
// kernel's raw socket (tx4), where table ip podway masquerades it, exactly as egress with no route
// does; egress to another pool over the same routes is forwarded unchanged. Another node's address
// is outside too with Felix's default natOutgoingExclusions (IPPoolsOnly: to the kernel, whose
// table masquerades the connections the pod opens there); with IPPoolsAndHostIPs it is not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Event, Reason } from '../../src/dataplane/counters';
import { NatExit, natExitOf } from '../../src/dataplane/nexthops';
import { computeNodeModel, parseClusterYaml } from '../../src/control';
import { parseIpv4, parseMac } from '../../src/packet';
import { makeHarness, Harness, frame, onlyFrame, nothingSent, assertBytes, fixIpChecksum, CLUSTER_YAML, NODE2_MAC } from './helpers';

const TOR = '10.99.0.254';
const TOR_MAC = '52:54:00:99:00:fe';
const PEER = 'bgp tor';

/** node1 in BGP mode: an outside prefix and a default route from the ToR, node2's plain block from node2. */
function bgpHarness(natToNodes = true, extraNodes: string[] = []): Harness {
  const computed = computeNodeModel(parseClusterYaml(CLUSTER_YAML, 'test-cluster.yaml'), 'node1', {
    bgp: {
      learned: [
        { prefix: '192.0.2.0/24', nextHop: TOR, peer: PEER },
        { prefix: '0.0.0.0/0', nextHop: TOR, peer: PEER },
        { prefix: '10.246.0.64/26', nextHop: '10.99.0.2', peer: 'mesh node2' },
      ],
    },
  });
  // a node of another rack, known from the datastore, reached over the ToR's default route
  const model = { ...computed, node: { ...computed.node, knownNodeIps: new Set([...computed.node.knownNodeIps, ...extraNodes.map(parseIpv4)]) } };
  const h = makeHarness({ model, natToNodes, neighbors: { [TOR]: TOR_MAC, '10.99.0.2': NODE2_MAC } });
  // natOutgoing on the VXLAN pool only (pod A, 10.244.0.1, is in it; tap T, 10.245.0.3, is not).
  h.pipe.natSources.set(model.pools.filter((p) => p.cidr === '10.244.0.0/16'));
  return h;
}

function retarget(f: Uint8Array, dst: string): Uint8Array {
  const c = f.slice();
  const d = parseIpv4(dst);
  c.set([d >>> 24, (d >>> 16) & 255, (d >>> 8) & 255, d & 255], 30);
  fixIpChecksum(c, 14);
  return c;
}

/** The packet as it must reach the kernel: its IPv4 part, TTL - 1, checksum to match. */
function forwardedIp(f: Uint8Array): Uint8Array {
  const e = f.slice(14);
  e[8] -= 1;
  fixIpChecksum(e, 0);
  return e;
}

/** Pod `ifname` sends `f`; it must leave to the kernel (tx4) for `dst`, counted as egress_nat (or,
 * `counted` 'egress', as egress: another node's address, where the table masquerades only the
 * connections the pod opens). */
function assertNatToKernel(h: Harness, ifname: string, f: Uint8Array, dst: string, what: string, counted: 'egress_nat' | 'egress' = 'egress_nat'): void {
  const before = { nat: h.pipe.counters[Event.EGRESS_NAT], plain: h.pipe.counters[Event.EGRESS] };
  h.receive(h.port(ifname), f);
  const out = onlyFrame(h, h.infra.tx4, what);
  assertBytes(out.bytes, forwardedIp(f), what);
  assert.is(out.addr, parseIpv4(dst), `${what}: routed by the kernel to its destination`);
  const nat = counted === 'egress_nat' ? 1 : 0;
  assert.is(h.pipe.counters[Event.EGRESS_NAT], before.nat + nat, `${what}: counted as ${counted}`);
  assert.is(h.pipe.counters[Event.EGRESS], before.plain + 1 - nat, `${what}: counted as ${counted}`);
}

/** Pod `ifname` sends `f`; it must leave unchanged on the underlay to `mac`, not counted as NAT. */
function assertDirect(h: Harness, ifname: string, f: Uint8Array, mac: string, what: string): void {
  const before = h.pipe.counters[Event.EGRESS_NAT];
  h.receive(h.port(ifname), f);
  const out = onlyFrame(h, h.infra.underlay, what);
  assertBytes(out.bytes.subarray(0, 6), parseMac(mac), `${what}: to ${mac}`);
  assertBytes(out.bytes.subarray(14), forwardedIp(f), `${what}: unchanged but the TTL`);
  assert.is(h.pipe.counters[Event.EGRESS_NAT], before, `${what}: not NATed`);
}

test('natExitOf: inside a pool none, disjoint from pools and nodes out, holding a pool or a node check', () => {
  const pools = [{ addr: parseIpv4('10.244.0.0'), prefixLen: 16 }];
  const nodes = [parseIpv4('10.99.0.1')];
  assert.is(natExitOf(parseIpv4('10.244.1.0'), 26, pools, nodes), NatExit.NONE);
  assert.is(natExitOf(parseIpv4('10.244.0.0'), 16, pools, nodes), NatExit.NONE);
  assert.is(natExitOf(parseIpv4('192.0.2.0'), 24, pools, nodes), NatExit.OUT);
  assert.is(natExitOf(0, 0, pools, nodes), NatExit.CHECK);
  assert.is(natExitOf(parseIpv4('10.0.0.0'), 8, pools, []), NatExit.CHECK);
  assert.is(natExitOf(parseIpv4('10.99.0.0'), 24, pools, nodes), NatExit.CHECK);
});

test('natOutgoing over a learned outside prefix and a learned default route: to the kernel to be masqueraded, as with no route', () => {
  const h = bgpHarness();
  assertNatToKernel(h, 'caliA', retarget(frame('a_to_b'), '192.0.2.10'), '192.0.2.10', 'A -> 192.0.2.10 (learned /24)');
  assertNatToKernel(h, 'caliA', retarget(frame('a_to_b'), '8.8.8.8'), '8.8.8.8', 'A -> 8.8.8.8 (learned default route)');
  assert.is(h.pipe.counters[Event.EGRESS], 0);
});

test('natOutgoing over a learned route, bigger than the underlay MTU (the route\'s MTU passed it): fragmentation needed with the underlay\'s MTU, not handed to the kernel that would refuse it', () => {
  const h = bgpHarness();
  const big = retarget(frame('a_big_df'), '192.0.2.10');
  const total = (big[16] << 8) | big[17];
  h.pipe.tx4Mtu = total - 1;
  h.receive(h.port('caliA'), big);
  const out = onlyFrame(h, h.port('caliA'), 'frag needed').bytes;
  assert.is(out[34], 3);
  assert.is(out[35], 4);
  assert.is((out[40] << 8) | out[41], total - 1, 'the underlay MTU');
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 0);
  h.pipe.tx4Mtu = total;
  assertNatToKernel(h, 'caliA', big, '192.0.2.10', 'at the underlay MTU it goes');
});

test('over the same learned routes: another pool, a node on the subnet (the kernel\'s, not the default route\'s), a pool without natOutgoing and the flag off keep the pod address; the node itself is the host\'s', () => {
  const h = bgpHarness();
  // Another pool's block over BGP (node2's plain pool): forwarded to node2 unchanged.
  assertDirect(h, 'caliA', retarget(frame('a_to_b'), '10.246.0.65'), NODE2_MAC, 'A -> 10.246.0.65 (pool block via node2)');
  // A pool address only the default route holds: still in a pool, so not NATed (Calico's rule).
  assertDirect(h, 'caliA', retarget(frame('a_to_b'), '10.245.7.9'), TOR_MAC, 'A -> 10.245.7.9 (a pool, via the default route)');
  // Another node on this node's own subnet: the learned default route is cut around the connected
  // subnet (the kernel's connected route wins, as under Calico), so it goes to the node's kernel
  // (tx4) unchanged, never to the ToR: outside every pool, the kernel masquerades the connections
  // the pod opens there (natOutgoingExclusions IPPoolsOnly, Felix's default), so counted egress,
  // not egress_nat (which counts what the table masquerades, every packet).
  const egress = h.pipe.counters[Event.EGRESS_NAT];
  const plain = h.pipe.counters[Event.EGRESS];
  const toNode2 = retarget(frame('a_to_b'), '10.99.0.2');
  h.receive(h.port('caliA'), toNode2);
  const out = onlyFrame(h, h.infra.tx4, 'A -> node2 (its own subnet: not the default route)');
  assertBytes(out.bytes, forwardedIp(toNode2), 'A -> node2: unchanged but the TTL');
  assert.is(out.addr, parseIpv4('10.99.0.2'), 'A -> node2: routed by the kernel (connected route)');
  assert.is(h.pipe.counters[Event.EGRESS_NAT], egress, 'A -> node2 (IPPoolsOnly): not egress_nat');
  assert.is(h.pipe.counters[Event.EGRESS], plain + 1, 'A -> node2 (IPPoolsOnly): egress');
  // IPPoolsAndHostIPs: the same packet still goes to the kernel, not counted as NAT
  h.pipe.natToNodes = false;
  h.receive(h.port('caliA'), toNode2);
  assert.is(onlyFrame(h, h.infra.tx4, 'A -> node2, IPPoolsAndHostIPs').addr, parseIpv4('10.99.0.2'));
  assert.is(h.pipe.counters[Event.EGRESS_NAT], egress, 'A -> node2: not NATed (IPPoolsAndHostIPs)');
  assert.is(h.pipe.counters[Event.EGRESS], plain + 2);
  h.pipe.natToNodes = true;
  // The node's own address is left out of the learned default route: the node's kernel has the
  // veth pod's frame.
  const toHost = h.pipe.counters[Event.TO_HOST];
  h.receive(h.port('caliA'), retarget(frame('a_to_b'), '10.99.0.1'));
  nothingSent(h, 'A -> its node');
  assert.is(h.pipe.counters[Event.TO_HOST], toHost + 1);
  // A pod of a pool without natOutgoing (tap T, IPIP pool): forwarded as routed.
  assertDirect(h, 'tapT', retarget(frame('t_to_ri'), '192.0.2.10'), TOR_MAC, 'T -> 192.0.2.10 (no natOutgoing)');
  // natOutgoing turned off: A's egress follows the route again.
  h.pipe.natSources.set([]);
  assertDirect(h, 'caliA', retarget(frame('a_to_b'), '192.0.2.10'), TOR_MAC, 'A -> 192.0.2.10, flag off');
  assert.is(h.pipe.counters[Event.EGRESS_NAT], egress);
});

test('a node only a learned route reaches (another rack, via the ToR\'s default route): to the kernel to be masqueraded with IPPoolsOnly (what the pod opens: counted egress, not egress_nat), forwarded with the pod\'s address with IPPoolsAndHostIPs', () => {
  const far = '10.98.0.5';
  const h = bgpHarness(true, [far]);
  assertNatToKernel(h, 'caliA', retarget(frame('a_to_b'), far), far, 'A -> a far node (IPPoolsOnly)', 'egress');
  // an outside address over the same route: egress_nat
  assertNatToKernel(h, 'caliA', retarget(frame('a_to_b'), '8.8.8.8'), '8.8.8.8', 'A -> 8.8.8.8 (IPPoolsOnly)');
  const hosts = bgpHarness(false, [far]);
  assertDirect(hosts, 'caliA', retarget(frame('a_to_b'), far), TOR_MAC, 'A -> a far node (IPPoolsAndHostIPs)');
  // an outside address over the same route: masqueraded either way
  assertNatToKernel(hosts, 'caliA', retarget(frame('a_to_b'), '8.8.8.8'), '8.8.8.8', 'A -> 8.8.8.8 (IPPoolsAndHostIPs)');
});

test('natExitOf with only this node\'s own address (IPPoolsOnly): a route holding other nodes but no pool is out', () => {
  const pools = [{ addr: parseIpv4('10.244.0.0'), prefixLen: 16 }];
  assert.is(natExitOf(parseIpv4('10.98.0.0'), 16, pools, [parseIpv4('10.99.0.1')]), NatExit.OUT);
  assert.is(natExitOf(parseIpv4('10.98.0.0'), 16, pools, [parseIpv4('10.98.0.5')]), NatExit.CHECK);
});

test.run();
