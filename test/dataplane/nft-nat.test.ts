/**
 * natOutgoing's nftables program (nft-nat.ts) without root: the port range podway picks and
 * checks, the table it writes, the live set update and the counters it reads back. The kernel
 * side runs in test/e2e/nat.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NatSpec, natTableProgram, natSetsProgram, natTableProgram6, natSetsProgram6, defaultNatPortRange, parseNatPortRange, parseCounters, NftNat } from '../../src/dataplane/nft-nat';

const SPEC: NatSpec = {
  hostPort: 'podway0', hostPortIndex: 7, natPools: ['10.244.0.0/16'], pools: ['10.244.0.0/16', '10.250.0.0/16'], nodes: ['10.99.0.1', '10.99.0.2'],
  portRange: [61000, 65535], udpTimeout: { unreplied: 30, replied: 120 }, maxFlows: 65536,
  pods: ['cali1234', 'cali5678'], kernelTransitDrop: true,
};

test('the NAT port range stays off the ephemeral ports and the VXLAN port', () => {
  assert.equal(defaultNatPortRange([32768, 60999], 4789), [61000, 65535]);
  assert.equal(defaultNatPortRange([20000, 65000], 4789), [4790, 19999], 'the larger gap when the upper one is small');
  assert.throws(() => defaultNatPortRange([1024, 65535], 4789), /no ports for natOutgoing .* give --nat-port-range/);
  assert.equal(defaultNatPortRange([10000, 65535], 4789), [4790, 9999]);
  assert.equal(parseNatPortRange('20000-30000', [32768, 60999], 4789), [20000, 30000]);
  assert.throws(() => parseNatPortRange('4000-5000', [32768, 60999], 4789), /--nat-port-range: 4000-5000 holds the VXLAN port 4789/);
  assert.throws(() => parseNatPortRange('30000-40000', [32768, 60999], 4789), /overlaps the kernel's ephemeral ports 32768-60999/);
  assert.throws(() => parseNatPortRange('65000-70000', [32768, 60999], 4789), /--nat-port-range: "65000-70000": HIGH 70000 is above 65535 \(LOW-HIGH within 1024-65535\)/);
  assert.throws(() => parseNatPortRange('1000-2000', [32768, 60999], 4789), /--nat-port-range: "1000-2000": LOW 1000 is below 1024 /);
  assert.throws(() => parseNatPortRange('3000-2000', [32768, 60999], 4789), /--nat-port-range: "3000-2000": LOW 3000 is above HIGH 2000 /);
  assert.throws(() => parseNatPortRange('5-1', [32768, 60999], 4789), /"5-1": LOW 5 is below 1024 .*; LOW 5 is above HIGH 1 /);
  assert.throws(() => parseNatPortRange('abc', [32768, 60999], 4789), /--nat-port-range: "abc" is not LOW-HIGH \(two port numbers/);
});

test('the table: idempotent create, masquerade fully-random for NAT pools to outside pools and nodes, replies into the host port', () => {
  const p = natTableProgram(SPEC);
  assert.ok(p.startsWith('add table ip podway\ndelete table ip podway\ntable ip podway {'), 'replaces a leftover table in one transaction');
  assert.match(p, 'set natpools { type ipv4_addr; flags interval; auto-merge; elements = { 10.244.0.0/16 } }');
  assert.match(p, 'elements = { 10.244.0.0/16, 10.250.0.0/16 }');
  assert.match(p, 'ip saddr @natpools ip daddr != @pools ip daddr != @nodes meta l4proto { tcp, udp } counter name "nat_flows" masquerade to :61000-65535 fully-random');
  assert.match(p, 'ct direction reply ct status snat ip daddr @pools counter name "nat_in" dup to ip daddr device "podway0" drop');
  assert.match(p, 'policy = { unreplied: 30, replied: 120 }');
  assert.match(p, 'ip saddr @natpools ip daddr != @pools ip daddr != @nodes ct status ! confirmed ct count over 65536 counter name "nat_refused" drop');
  // no NAT pool: the sets are empty, the rules stay (a pool can turn natOutgoing on live)
  const none = natTableProgram({ ...SPEC, natPools: [] });
  assert.match(none, 'set natpools { type ipv4_addr; flags interval; auto-merge; }');
});

test('the kernel transit drop: pod frames not for the node dropped before conntrack, off on request', () => {
  const p = natTableProgram(SPEC);
  assert.match(p, 'set pods { type ifname; elements = { "cali1234", "cali5678" } }');
  assert.match(p, 'type filter hook prerouting priority raw; policy accept;\n    iifname @pods fib daddr type != { local, broadcast, multicast } counter name "pod_transit" drop');
  // a name that could leave its quotes never reaches nft
  assert.match(natTableProgram({ ...SPEC, pods: ['cali1', 'x" } drop', 'a'.repeat(16)] }), 'set pods { type ifname; elements = { "cali1" } }');
  const off = natTableProgram({ ...SPEC, kernelTransitDrop: false });
  assert.not.match(off, 'pod_ingress');
  assert.not.match(off, 'fib daddr');
  assert.match(natTableProgram({ ...SPEC, pods: [] }), 'set pods { type ifname; }');
});

test('a live update replaces the sets only', () => {
  assert.is(natSetsProgram({ ...SPEC, natPools: [] }), [
    'flush set ip podway pools', 'add element ip podway pools { 10.244.0.0/16, 10.250.0.0/16 }',
    'flush set ip podway natpools',
    'flush set ip podway nodes', 'add element ip podway nodes { 10.99.0.1, 10.99.0.2 }',
    'flush set ip podway pods', 'add element ip podway pods { "cali1234", "cali5678" }', '',
  ].join('\n'));
});

const SPEC6: NatSpec = {
  ...SPEC, natPools: ['fd00:10:244::/64'], pools: ['fd00:10:244::/64', 'fd00:11::/64'], nodes: ['fd99::1', 'fd99::2'], pods: [], kernelTransitDrop: false,
};

test('the IPv6 table: its own table ip6 podway with the same masquerade, port range, timeouts, bound and dup into the host port', () => {
  const p = natTableProgram6(SPEC6);
  assert.ok(p.startsWith('add table ip6 podway\ndelete table ip6 podway\ntable ip6 podway {'), 'replaces a leftover table in one transaction');
  assert.match(p, 'set natpools { type ipv6_addr; flags interval; auto-merge; elements = { fd00:10:244::/64 } }');
  assert.match(p, 'set pools { type ipv6_addr; flags interval; auto-merge; elements = { fd00:10:244::/64, fd00:11::/64 } }');
  assert.match(p, 'set nodes { type ipv6_addr; elements = { fd99::1, fd99::2 } }');
  assert.match(p, 'ip6 saddr @natpools ip6 daddr != @pools ip6 daddr != @nodes meta l4proto { tcp, udp } counter name "nat_flows" masquerade to :61000-65535 fully-random');
  assert.match(p, 'ip6 saddr @natpools ip6 daddr != @pools ip6 daddr != @nodes counter name "nat_flows" masquerade fully-random');
  assert.match(p, 'ip6 saddr @natpools ip6 daddr != @pools ip6 daddr != @nodes ct status ! confirmed ct count over 65536 counter name "nat_refused" drop');
  assert.match(p, 'protocol udp; l3proto ip6;\n    policy = { unreplied: 30, replied: 120 }');
  assert.match(p, 'ct direction reply ct status snat ip6 daddr @pools counter name "nat_in" dup to ip6 daddr device "podway0" drop');
  assert.match(p, 'icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } ct state invalid counter name "icmp_unmatched"');
  assert.not.match(p, 'pod_ingress');
  assert.not.match(p, ' ip saddr');
  // the IPv4 table is not changed by the IPv6 one
  assert.not.match(natTableProgram(SPEC), 'ip6');
});

test('a live update of the IPv6 table replaces its sets only', () => {
  assert.is(natSetsProgram6({ ...SPEC6, natPools: [] }), [
    'flush set ip6 podway pools', 'add element ip6 podway pools { fd00:10:244::/64, fd00:11::/64 }',
    'flush set ip6 podway natpools',
    'flush set ip6 podway nodes', 'add element ip6 podway nodes { fd99::1, fd99::2 }',
    'flush set ip6 podway pods', '',
  ].join('\n'));
});

test('the IPv6 kernel transit drop: pod frames not for the node dropped at priority raw, link-local and multicast (NDP, MLD) never; without an IPv6 natOutgoing pool no NAT chains (no IPv6 conntrack)', () => {
  const t = { ...SPEC6, natPools: [], pods: ['cali1234', 'cali5678'], kernelTransitDrop: true };
  const p = natTableProgram6(t);
  assert.match(p, 'set pods { type ifname; elements = { "cali1234", "cali5678" } }');
  assert.match(p, 'chain pod_ingress {\n    type filter hook prerouting priority raw; policy accept;\n    iifname @pods ip6 daddr != { fe80::/10, ff00::/8 } fib daddr type != { local, anycast } counter name "pod_transit" drop');
  assert.match(p, 'counter pod_transit { }');
  // the transit drop alone: nothing that makes the kernel track or translate IPv6
  assert.not.match(p, ' ct ');
  assert.not.match(p, 'masquerade');
  assert.not.match(p, 'nat_flows');
  // NAT chains: with an IPv6 natOutgoing pool, or kept on by the caller after one
  assert.match(natTableProgram6({ ...t, natPools: ['fd00:10:244::/64'] }), 'masquerade fully-random');
  const kept = natTableProgram6({ ...t, natChains: true });
  assert.match(kept, 'masquerade fully-random');
  assert.match(kept, 'chain pod_ingress');
  assert.not.match(natTableProgram6({ ...t, natChains: false, natPools: ['fd00:10:244::/64'] }), 'masquerade');
  // off on request
  assert.not.match(natTableProgram6({ ...t, kernelTransitDrop: false }), 'pod_ingress');
  assert.match(natSetsProgram6(t), 'flush set ip6 podway pods\nadd element ip6 podway pods { "cali1234", "cali5678" }\n');
});

test('counters are read from nft -j', () => {
  const json = JSON.stringify({ nftables: [
    { metainfo: { version: '1.0.6' } },
    { counter: { family: 'ip', name: 'nat_flows', table: 'podway', handle: 1, packets: 12, bytes: 900 } },
    { counter: { family: 'ip', name: 'nat_out', table: 'podway', handle: 2, packets: 40, bytes: 4000 } },
    { counter: { family: 'ip', name: 'nat_in', table: 'podway', handle: 3, packets: 38, bytes: 3800 } },
    { counter: { family: 'ip', name: 'nat_refused', table: 'podway', handle: 4, packets: 2, bytes: 120 } },
    { counter: { family: 'ip', name: 'pod_transit', table: 'podway', handle: 5, packets: 77, bytes: 7700 } },
  ] });
  assert.equal(parseCounters(json), { flows: 12, outPackets: 40, outBytes: 4000, inPackets: 38, inBytes: 3800, refused: 2, icmpUnmatched: 0, podTransit: 77 });
});

test('nft missing: a clear error naming the package', () => {
  const nat = new NftNat(() => {}, 'nft-not-installed-here');
  assert.throws(() => nat.start(SPEC), /natOutgoing needs nftables: the nft command was not found \(install the nftables package/);
  assert.is(nat.active, false);
});

test.run();
