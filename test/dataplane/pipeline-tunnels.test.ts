// What a node decapsulates, as Calico's kernel dataplane does: only the tunnels of a mode some IP
// pool uses (Calico makes vxlan.calico / tunl0 only then; tunnel_mode_unused otherwise), and of a
// VXLAN frame only an inner Ethernet frame for this node's VTEP MAC, not from it (the kernel's
// vxlan device drops another host's unicast as PACKET_OTHERHOST, never forwards a broadcast or
// multicast one, and drops its own MAC as a source as a loop; vxlan_inner_mac).
// IPv6 VXLAN's part: pipeline6-cross.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason } from '../../src/dataplane/counters';
import { Tunnel, tunnelsOf } from '../../src/dataplane/pipeline';
import { parseIpv4, parseMac } from '../../src/packet';
import { CLUSTER_YAML, Harness, NODE2, VTEP1_MAC, VTEP2_MAC, clusterModel, fixIpChecksum, frame, learnTapMac, makeHarness, outcome } from './helpers';

const VXLAN_POOL = 'spec: { cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always, ipipMode: Never }';
const IPIP_POOL = 'spec: { cidr: 10.245.0.0/16, blockSize: 26, vxlanMode: Never, ipipMode: Always }';

/** node1 of helpers.ts's cluster with its 10.244/16 and 10.245/16 pools' specs ending in `a` and
 * `b` (instead of VXLAN Always and IPIP Always), the tap pod's MAC learned. */
function harness(a: string, b: string): Harness {
  assert.ok(CLUSTER_YAML.includes(VXLAN_POOL) && CLUSTER_YAML.includes(IPIP_POOL), 'the pools as this test knows them');
  const yaml = CLUSTER_YAML.replace(VXLAN_POOL, `spec: { cidr: 10.244.0.0/16, blockSize: 26, ${a} }`).replace(IPIP_POOL, `spec: { cidr: 10.245.0.0/16, blockSize: 26, ${b} }`);
  const h = makeHarness({ model: clusterModel('node1', yaml) });
  learnTapMac(h);
  return h;
}

/** The four ways a tunnel packet from node2 arrives: VXLAN (node2's pod RV -> A) on the UDP socket
 * and on the underlay port, IPIP (RI -> T) on the raw socket and on the underlay port. */
function fourWays(h: Harness, from = NODE2): Record<string, string> {
  const a = h.port('caliA');
  const t = h.port('tapT');
  const strange = from !== NODE2;
  const onWire = (name: string) => {
    const f = frame(name);
    if (strange) {
      f.set([from >>> 24, (from >>> 16) & 255, (from >>> 8) & 255, from & 255], 26);
      fixIpChecksum(f, 14);
    }
    return f;
  };
  return {
    vxlan: outcome(h, a, () => h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a').subarray(42), addr: from, aport: 50000 })),
    vxlanUnderlay: outcome(h, a, () => h.receive(h.infra.underlay, onWire('vxlan_rv_to_a'))),
    ipip: outcome(h, t, () => h.receive(h.infra.ipip, { bytes: onWire('ipip_ri_to_t').subarray(14), addr: from })),
    ipipUnderlay: outcome(h, t, () => h.receive(h.infra.underlay, onWire('ipip_ri_to_t'))),
  };
}

const ALL = { vxlan: 'delivered', vxlanUnderlay: 'delivered', ipip: 'delivered', ipipUnderlay: 'delivered' };
const UNUSED = 'tunnel_mode_unused';

test('a VXLAN pool and an IPIP pool: both tunnels are decapsulated', () => {
  const h = harness('vxlanMode: Always, ipipMode: Never', 'vxlanMode: Never, ipipMode: Always');
  assert.is(h.pipe.tunnels, Tunnel.VXLAN | Tunnel.IPIP);
  assert.equal(fourWays(h), ALL);
});

test('VXLAN pools only: IPIP from a known node is dropped tunnel_mode_unused (no tunl0 in Calico), on the raw socket and on the underlay port', () => {
  const h = harness('vxlanMode: Always, ipipMode: Never', 'vxlanMode: Always, ipipMode: Never');
  assert.is(h.pipe.tunnels, Tunnel.VXLAN);
  assert.equal(fourWays(h), { vxlan: 'delivered', vxlanUnderlay: 'delivered', ipip: UNUSED, ipipUnderlay: UNUSED });
  assert.is(h.pipe.counters[Reason.TUNNEL_MODE_UNUSED], 2);
});

test('IPIP pools only: VXLAN from a known node is dropped tunnel_mode_unused (no vxlan.calico), on the UDP socket and on the underlay port', () => {
  const h = harness('vxlanMode: Never, ipipMode: Always', 'vxlanMode: Never, ipipMode: Always');
  assert.is(h.pipe.tunnels, Tunnel.IPIP);
  assert.equal(fourWays(h), { vxlan: UNUSED, vxlanUnderlay: UNUSED, ipip: 'delivered', ipipUnderlay: 'delivered' });
});

test('CrossSubnet uses its tunnel too; a disabled pool still counts (as for the MTUs)', () => {
  assert.equal(fourWays(harness('vxlanMode: CrossSubnet, ipipMode: Never', 'vxlanMode: Never, ipipMode: CrossSubnet')), ALL);
  const h = harness('vxlanMode: CrossSubnet, ipipMode: Never', 'vxlanMode: Never, ipipMode: Always, disabled: true');
  assert.is(h.pipe.tunnels, Tunnel.VXLAN | Tunnel.IPIP);
  assert.equal(fourWays(h), ALL);
});

test('no encapsulating pool: every tunnel packet is dropped tunnel_mode_unused, a stranger\'s too (checked before the sender)', () => {
  const h = harness('vxlanMode: Never, ipipMode: Never', 'vxlanMode: Never, ipipMode: Never');
  assert.is(h.pipe.tunnels, 0);
  const all = { vxlan: UNUSED, vxlanUnderlay: UNUSED, ipip: UNUSED, ipipUnderlay: UNUSED };
  assert.equal(fourWays(h), all);
  assert.equal(fourWays(h, parseIpv4('10.99.0.77')), all);
  assert.is(h.pipe.counters[Reason.UNKNOWN_TUNNEL_SOURCE], 0);
});

test('a mode switch (IPIP -> VXLAN): from the model swap on, IPIP still in flight is dropped and VXLAN taken', () => {
  const h = harness('vxlanMode: Never, ipipMode: Always', 'vxlanMode: Never, ipipMode: Always');
  assert.equal(fourWays(h), { vxlan: UNUSED, vxlanUnderlay: UNUSED, ipip: 'delivered', ipipUnderlay: 'delivered' });
  const next = clusterModel('node1', CLUSTER_YAML.replace(IPIP_POOL, 'spec: { cidr: 10.245.0.0/16, blockSize: 26, vxlanMode: Always, ipipMode: Never }'));
  h.pipe.tunnels = tunnelsOf(next); // as Engine.apply swaps it with the model
  assert.equal(fourWays(h), { vxlan: 'delivered', vxlanUnderlay: 'delivered', ipip: UNUSED, ipipUnderlay: UNUSED });
});

test('VXLAN: an inner frame not for this node\'s VTEP MAC (another unicast, broadcast, multicast, another node\'s VTEP) or from it is dropped vxlan_inner_mac, on the socket and the underlay port', () => {
  const h = harness('vxlanMode: Always, ipipMode: Never', 'vxlanMode: Never, ipipMode: Always');
  const a = h.port('caliA');
  assert.is(h.pipe.nh.vtepMac.join(), parseMac(VTEP1_MAC).join());
  const inner = 50; // outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
  const cases: Array<[string, number, string]> = [
    ['another unicast MAC', 0, '02:00:00:00:00:01'],
    ['broadcast', 0, 'ff:ff:ff:ff:ff:ff'],
    ['multicast', 0, '01:00:5e:00:00:01'],
    ['node2\'s VTEP MAC', 0, VTEP2_MAC],
    ['our VTEP MAC as the source', 6, VTEP1_MAC],
  ];
  for (const [what, at, mac] of cases) {
    const f = frame('vxlan_rv_to_a');
    f.set(parseMac(mac), inner + at);
    assert.is(outcome(h, a, () => h.receive(h.infra.vxlan, { bytes: f.subarray(42), addr: NODE2, aport: 50000 })), 'vxlan_inner_mac', `${what} (socket)`);
    assert.is(outcome(h, a, () => h.receive(h.infra.underlay, f)), 'vxlan_inner_mac', `${what} (underlay port)`);
  }
  assert.is(h.pipe.counters[Reason.VXLAN_INNER_MAC], 10);
  // as sent: to VTEP1's MAC from VTEP2's
  const ok = frame('vxlan_rv_to_a');
  assert.is(ok.subarray(inner, inner + 12).join(), [...parseMac(VTEP1_MAC), ...parseMac(VTEP2_MAC)].join(), 'the fixture\'s inner MACs');
  assert.is(outcome(h, a, () => h.receive(h.infra.vxlan, { bytes: ok.subarray(42), addr: NODE2, aport: 50000 })), 'delivered');
});

test.run();
