/**
 * natOutgoing's nftables program (nft-nat.ts) without root: the port range podway picks and
 * checks, the table it writes, the live set update and the counters it reads back. The kernel
 * side runs in test/e2e/nat.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NatSpec, natTableProgram, natSetsProgram, natTableProgram6, natSetsProgram6, guardTableProgram, guardSetsProgram, defaultNatPortRange, parseNatPortRange, natCountersOf, NftNat } from '../../src/dataplane/nft-nat';
import { parseNftCounters } from '../../src/dataplane/nft-counters';
import { parseNatOutgoingExclusions } from '../../src/dataplane/nat';
import { parseEndpointToHost } from '../../src/cli/main';

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

test('the table: idempotent create, masquerade fully-random for NAT pools to outside pools (other nodes: connections the pod opens), replies into the host port', () => {
  const p = natTableProgram(SPEC);
  assert.ok(p.startsWith('add table ip podway\ndelete table ip podway\ntable ip podway {'), 'replaces a leftover table in one transaction');
  assert.match(p, 'set natpools { type ipv4_addr; flags interval; auto-merge; elements = { 10.244.0.0/16 } }');
  assert.match(p, 'elements = { 10.244.0.0/16, 10.250.0.0/16 }');
  const from = 'ip saddr @natpools ip daddr != @pools oifname != "lo"';
  // Felix's default (natOutgoingExclusions IPPoolsOnly): outside every pool, and another node's
  // address for a TCP SYN or an echo request the pod sends (never a reply to the node's own flow)
  const postrouting = 'type nat hook postrouting priority srcnat; policy accept;\n' +
    `    ${from} ip daddr != @nodes jump masq\n` +
    `    ${from} ip daddr @nodes tcp flags & (syn | ack) == syn jump masq\n` +
    `    ${from} ip daddr @nodes icmp type echo-request jump masq\n  }`;
  assert.match(p, postrouting);
  assert.match(p, 'chain masq {\n    meta l4proto { tcp, udp } counter name "nat_flows" masquerade to :61000-65535 fully-random\n    counter name "nat_flows" masquerade fully-random\n  }');
  assert.match(p, 'ct direction reply ct status snat ip daddr @pools counter name "nat_in" dup to ip daddr device "podway0" drop');
  assert.match(p, 'policy = { unreplied: 30, replied: 120 }');
  // one bound whichever selector: the three jump to one ct count
  assert.match(p, `type filter hook output priority mangle; policy accept;\n    ${from} ip daddr != @nodes jump nat_new\n    ${from} ip daddr @nodes tcp flags & (syn | ack) == syn jump nat_new\n    ${from} ip daddr @nodes icmp type echo-request jump nat_new\n  }`);
  assert.match(p, 'chain nat_new {\n    ct status ! confirmed ct count over 65536 counter name "nat_refused" drop');
  assert.is(p.split('ct count').length, 2, 'one ct count');
  assert.is(natTableProgram({ ...SPEC, natOutgoingExclusions: 'IPPoolsOnly' }), p, 'IPPoolsOnly is the default');
  // IPPoolsAndHostIPs: node addresses are never masqueraded
  const hosts = natTableProgram({ ...SPEC, natOutgoingExclusions: 'IPPoolsAndHostIPs' });
  assert.match(hosts, `type nat hook postrouting priority srcnat; policy accept;\n    ${from} ip daddr != @nodes jump masq\n  }`);
  assert.not.match(hosts, 'ip daddr @nodes');
  // no NAT pool: the sets are empty, the rules stay (a pool can turn natOutgoing on live)
  const none = natTableProgram({ ...SPEC, natPools: [] });
  assert.match(none, 'set natpools { type ipv4_addr; flags interval; auto-merge; }');
});

test('--nat-outgoing-exclusions / FELIX_NATOUTGOINGEXCLUSIONS: Felix\'s two values, IPPoolsOnly unset', () => {
  assert.is(parseNatOutgoingExclusions(undefined, 'x'), 'IPPoolsOnly');
  assert.is(parseNatOutgoingExclusions('', 'x'), 'IPPoolsOnly');
  assert.is(parseNatOutgoingExclusions('IPPoolsAndHostIPs', 'x'), 'IPPoolsAndHostIPs');
  assert.is(parseNatOutgoingExclusions(' ippoolsonly ', 'x'), 'IPPoolsOnly');
  assert.throws(() => parseNatOutgoingExclusions('HostIPs', 'run: $FELIX_NATOUTGOINGEXCLUSIONS'), /run: \$FELIX_NATOUTGOINGEXCLUSIONS: "HostIPs" is not IPPoolsOnly or IPPoolsAndHostIPs/);
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
  const from = 'ip6 saddr @natpools ip6 daddr != @pools oifname != "lo"';
  assert.match(p, `${from} ip6 daddr != @nodes jump masq\n    ${from} ip6 daddr @nodes tcp flags & (syn | ack) == syn jump masq\n    ${from} ip6 daddr @nodes icmpv6 type echo-request jump masq\n`);
  assert.match(p, `${from} ip6 daddr != @nodes jump nat_new\n    ${from} ip6 daddr @nodes tcp flags & (syn | ack) == syn jump nat_new\n    ${from} ip6 daddr @nodes icmpv6 type echo-request jump nat_new\n`);
  assert.match(p, 'meta l4proto { tcp, udp } counter name "nat_flows" masquerade to :61000-65535 fully-random\n    counter name "nat_flows" masquerade fully-random');
  assert.match(p, 'ct status ! confirmed ct count over 65536 counter name "nat_refused" drop');
  assert.not.match(natTableProgram6({ ...SPEC6, natOutgoingExclusions: 'IPPoolsAndHostIPs' }), 'ip6 daddr @nodes');
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

test('host ports: copied into podway0 before conntrack, translated in OUTPUT, hairpin and 127.0.0.1 given the node\'s address; the first claim of a port wins; a live update rewrites the chains only when they change', () => {
  const hp: NatSpec = { ...SPEC, nodeIp: '10.99.0.1', hostPorts: [
    { protocol: 'tcp', hostIp: null, hostPort: 18080, podIp: '10.244.0.5', port: 8080 },
    { protocol: 'udp', hostIp: '10.99.0.5', hostPort: 18081, podIp: '10.244.0.5', port: 8081 },
    // taken already (every address): left out
    { protocol: 'tcp', hostIp: '10.99.0.5', hostPort: 18080, podIp: '10.244.0.6', port: 80 },
    // not an address: left out
    { protocol: 'tcp', hostIp: 'x; flush ruleset', hostPort: 18082, podIp: '10.244.0.6', port: 80 },
  ] };
  const p = natTableProgram(hp);
  assert.match(p, 'type filter hook prerouting priority raw - 1; policy accept;\n    iifname @pods ip daddr 127.0.0.0/8 counter name "hostport_localnet" drop\n    iifname "podway0" ip daddr 127.0.0.0/8 counter name "hostport_localnet" drop\n    iifname @pods ip saddr . meta l4proto . th sport @hostport_srcs counter name "hostport_copy" drop\n    iifname @pods ip saddr @hostport_pods icmp type { destination-unreachable, time-exceeded, parameter-problem } counter name "hostport_copy" drop');
  assert.match(p, 'set hostport_pods { type ipv4_addr; elements = { 10.244.0.5 } }');
  assert.match(p, 'iifname != "lo" fib daddr type local meta l4proto tcp th dport 18080 counter name "hostport_in" dup to ip daddr device "podway0" drop');
  assert.match(p, 'iifname != "lo" ip daddr 10.99.0.5 meta l4proto udp th dport 18081 counter name "hostport_in" dup to ip daddr device "podway0" drop');
  assert.match(p, 'type nat hook output priority -100; policy accept;\n    fib daddr type local meta l4proto tcp th dport 18080 counter name "hostport_dnat" dnat to 10.244.0.5:8080\n    ip daddr 10.99.0.5 meta l4proto udp th dport 18081 counter name "hostport_dnat" dnat to 10.244.0.5:8081\n  }');
  assert.match(p, 'ct status dnat ip saddr 127.0.0.0/8 snat to 10.99.0.1\n    ct status dnat ip saddr 10.244.0.5 ip daddr 10.244.0.5 snat to 10.99.0.1\n    oifname "podway0" ip saddr 127.0.0.0/8 counter name "hostport_localnet" drop\n  }');
  assert.match(p, 'set hostport_srcs { type ipv4_addr . inet_proto . inet_service; elements = { 10.244.0.5 . tcp . 8080, 10.244.0.5 . udp . 8081 } }');
  assert.not.match(p, '10.244.0.6');
  assert.not.match(p, 'flush ruleset');
  // without host ports: the chains are there, empty but for the 127.0.0.0/8 drops
  assert.match(natTableProgram(SPEC), 'chain hostport_dnat {\n    type nat hook output priority -100; policy accept;\n  }');
  assert.match(natTableProgram(SPEC), 'type nat hook postrouting priority srcnat - 1; policy accept;\n    oifname "podway0" ip saddr 127.0.0.0/8 counter name "hostport_localnet" drop\n  }');
  // live: unchanged host ports rewrite nothing; a pod gone flushes its rules
  assert.is(natSetsProgram({ ...hp, pods: ['cali1234'] }, hp), 'delete element ip podway pods { "cali5678" }\n');
  const gone = natSetsProgram({ ...hp, hostPorts: [] }, hp);
  assert.match(gone, 'delete element ip podway hostport_srcs { 10.244.0.5 . tcp . 8080, 10.244.0.5 . udp . 8081 }');
  assert.match(gone, 'delete element ip podway hostport_pods { 10.244.0.5 }');
  assert.match(gone, 'flush chain ip podway hostport_dnat\nflush chain ip podway hostport_snat\n');
  const added = natSetsProgram(hp, SPEC);
  assert.match(added, 'add rule ip podway hostport_dnat fib daddr type local meta l4proto tcp th dport 18080 counter name "hostport_dnat" dnat to 10.244.0.5:8080');
});

test('IPv6 host ports: the same chains in table ip6 podway (the copy routed through the pod\'s address), held from hostPortChains on; an IPv4 rule is not taken', () => {
  const hp: NatSpec = { ...SPEC, pools: ['fd00:10:244::/64'], natPools: [], nodes: ['fd99::1'], nodeIp: 'fd99::1', hostPortChains: true, hostPorts: [
    { protocol: 'tcp', hostIp: null, hostPort: 18080, podIp: 'fd00:10:244::5', port: 8080 },
    { protocol: 'udp', hostIp: 'fd99::5', hostPort: 18081, podIp: 'fd00:10:244::5', port: 8081 },
    { protocol: 'tcp', hostIp: null, hostPort: 18082, podIp: '10.244.0.5', port: 80 },
  ] };
  const p = natTableProgram6(hp);
  assert.match(p, 'set hostport_srcs { type ipv6_addr . inet_proto . inet_service; elements = { fd00:10:244::5 . tcp . 8080, fd00:10:244::5 . udp . 8081 } }');
  assert.match(p, 'type filter hook prerouting priority raw - 1; policy accept;\n    iifname @pods ip6 saddr . meta l4proto . th sport @hostport_srcs counter name "hostport_copy" drop\n    iifname @pods ip6 saddr @hostport_pods icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } counter name "hostport_copy" drop\n    iifname != "lo" fib daddr type local meta l4proto tcp th dport 18080 counter name "hostport_in" dup to fd00:10:244::5 device "podway0" drop');
  assert.match(p, 'ip6 daddr fd99::5 meta l4proto udp th dport 18081 counter name "hostport_dnat" dnat to [fd00:10:244::5]:8081');
  assert.match(p, 'ct status dnat ip6 saddr ::1 snat to fd99::1\n    ct status dnat ip6 saddr fd00:10:244::5 ip6 daddr fd00:10:244::5 snat to fd99::1\n  }');
  assert.not.match(p, '10.244.0.5');
  assert.not.match(p, '127.0.0.0/8');
  // without hostPortChains: no chains, and a live update writes none (the flag is a whole-table change)
  assert.not.match(natTableProgram6({ ...hp, hostPortChains: false }), 'hostport');
  assert.not.match(natSetsProgram6({ ...hp, hostPortChains: false }, null), 'hostport');
  assert.match(natSetsProgram6({ ...hp, hostPorts: [] }, hp), 'flush chain ip6 podway hostport_dnat\n');
});

test('counters are read from nft -j (the table\'s named counters: nft-counters.ts)', () => {
  const json = JSON.stringify({ nftables: [
    { metainfo: { version: '1.0.6' } },
    { counter: { family: 'ip', name: 'nat_flows', table: 'podway', handle: 1, packets: 12, bytes: 900 } },
    { counter: { family: 'ip', name: 'nat_out', table: 'podway', handle: 2, packets: 40, bytes: 4000 } },
    { counter: { family: 'ip', name: 'nat_in', table: 'podway', handle: 3, packets: 38, bytes: 3800 } },
    { counter: { family: 'ip', name: 'nat_refused', table: 'podway', handle: 4, packets: 2, bytes: 120 } },
    { counter: { family: 'ip', name: 'pod_transit', table: 'podway', handle: 5, packets: 77, bytes: 7700 } },
  ] });
  assert.equal(natCountersOf(parseNftCounters(json).get('ip podway')!), { flows: 12, outPackets: 40, outBytes: 4000, inPackets: 38, inBytes: 3800, refused: 2, icmpUnmatched: 0, podTransit: 77 });
});

test('a live update with the table\'s current spec: only what changed; one pod more or less is one element added or deleted', () => {
  assert.is(natSetsProgram(SPEC, SPEC), '', 'nothing changed: nothing to run');
  assert.is(natSetsProgram({ ...SPEC, pods: ['cali1234', 'cali9999'] }, SPEC), [
    'delete element ip podway pods { "cali5678" }', 'add element ip podway pods { "cali9999" }', '',
  ].join('\n'));
  // an interval set (auto-merge may have joined elements) is refilled when it changed
  assert.is(natSetsProgram6({ ...SPEC6, pools: ['fd00:10:244::/64'] }, SPEC6), ['flush set ip6 podway pools', 'add element ip6 podway pools { fd00:10:244::/64 }', ''].join('\n'));
});

const GUARD: NatSpec = {
  ...SPEC, natPools: [], pools: [], nodes: [], pods: ['cali1', 'cali2'],
  podAddrs4: [['cali1', '10.244.0.2'], ['cali2', '10.244.0.3']], podAddrs6: [['cali1', 'fd00:10:244::2']], tunnelPorts: [4789], endpointToHost: 'accept',
  // cali1, cali2 and a TAP pod (10.244.0.9)
  podIps4: ['10.244.0.2', '10.244.0.3', '10.244.0.9'], podIps6: ['fd00:10:244::2', 'fd00:10:244::9'],
};

test('the pod guard (table inet podway): tunnels from pods and sources not the pod\'s own dropped before the kernel; link-local IPv6 only on the link; endpoint-to-host drop after conntrack', () => {
  const p = guardTableProgram(GUARD);
  assert.ok(p.startsWith('add table inet podway\ndelete table inet podway\ntable inet podway {'), 'replaces a leftover table in one transaction');
  assert.match(p, 'set pod_addrs4 { type ifname . ipv4_addr; elements = { "cali1" . 10.244.0.2, "cali2" . 10.244.0.3 } }');
  assert.match(p, 'set pod_addrs6 { type ifname . ipv6_addr; elements = { "cali1" . fd00:10:244::2 } }');
  assert.match(p, 'type filter hook prerouting priority raw + 1; policy accept;\n    iifname @pods udp dport { 4789 } counter name "pod_tunnel" drop\n    iifname @pods meta l4proto 4 counter name "pod_tunnel" drop');
  assert.match(p, 'iifname @pods iifname . ip saddr != @pod_addrs4 counter name "pod_spoofed" drop');
  assert.match(p, 'iifname @pods ip6 saddr != { ::, fe80::/10 } iifname . ip6 saddr != @pod_addrs6 counter name "pod_spoofed" drop');
  assert.match(p, 'iifname @pods ip6 saddr { ::, fe80::/10 } ip6 daddr != { fe80::/10, ff00::/8 } counter name "pod_spoofed" drop');
  assert.not.match(p, 'pod_input', 'accept: no input chain, no conntrack');
  assert.not.match(p, 'ct ');
  const drop = guardTableProgram({ ...GUARD, endpointToHost: 'drop' });
  // veth pods on their veths; TAP/TUN pods through the host port (podway0); any pod's packet for
  // another of the node's addresses through podway's raw sockets, looped back on lo (its original
  // source: natOutgoing may have masqueraded it)
  assert.match(drop, 'type filter hook input priority filter; policy accept;\n    iifname @pods jump pod_to_host\n    iifname "podway0" jump pod_to_host\n    iifname "lo" ct original ip saddr @pod_ips4 jump pod_to_host\n    iifname "lo" ct original ip6 saddr @pod_ips6 jump pod_to_host\n  }');
  assert.match(drop, 'chain pod_to_host {\n    ct state established,related accept\n    icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept\n    counter name "pod_to_host" drop\n  }');
  assert.match(drop, 'set pod_ips4 { type ipv4_addr; elements = { 10.244.0.2, 10.244.0.3, 10.244.0.9 } }');
  assert.match(drop, 'set pod_ips6 { type ipv6_addr; elements = { fd00:10:244::2, fd00:10:244::9 } }');
  // an address of the other family or not plain address text never reaches the set
  assert.match(guardTableProgram({ ...GUARD, podIps4: ['10.0.0.1', 'fd00::1', '10.0.0.2 } drop'], podIps6: ['10.0.0.1'] }), 'set pod_ips4 { type ipv4_addr; elements = { 10.0.0.1 } }\n  set pod_ips6 { type ipv6_addr; }');
  // names and addresses that could leave their place never reach nft
  assert.match(guardTableProgram({ ...GUARD, podAddrs4: [['x" } drop', '10.0.0.1'], ['cali1', '10.0.0.1 } drop']] }), 'set pod_addrs4 { type ifname . ipv4_addr; }');
  // an endpoint that comes: its interface and addresses added, nothing else touched
  const more: NatSpec = { ...GUARD, pods: ['cali1', 'cali2', 'cali3'], podAddrs4: [...GUARD.podAddrs4!, ['cali3', '10.244.0.4']], podAddrs6: [...GUARD.podAddrs6!, ['cali3', 'fd00:10:244::4']], podIps4: [...GUARD.podIps4!, '10.244.0.4'], podIps6: [...GUARD.podIps6!, 'fd00:10:244::4'] };
  assert.is(guardSetsProgram(more, GUARD), [
    'add element inet podway pods { "cali3" }', 'add element inet podway pod_addrs4 { "cali3" . 10.244.0.4 }', 'add element inet podway pod_addrs6 { "cali3" . fd00:10:244::4 }',
    'add element inet podway pod_ips4 { 10.244.0.4 }', 'add element inet podway pod_ips6 { fd00:10:244::4 }', '',
  ].join('\n'));
  assert.is(guardSetsProgram(GUARD, more), [
    'delete element inet podway pods { "cali3" }', 'delete element inet podway pod_addrs4 { "cali3" . 10.244.0.4 }', 'delete element inet podway pod_addrs6 { "cali3" . fd00:10:244::4 }',
    'delete element inet podway pod_ips4 { 10.244.0.4 }', 'delete element inet podway pod_ips6 { fd00:10:244::4 }', '',
  ].join('\n'));
  // a TAP/TUN pod that comes: only its addresses (it has no veth)
  assert.is(guardSetsProgram({ ...GUARD, podIps4: [...GUARD.podIps4!, '10.244.0.10'] }, GUARD), 'add element inet podway pod_ips4 { 10.244.0.10 }\n');
  // a pair (or interface) listed twice (a stale and a new endpoint on one veth): each element once,
  // in the table and in an update's delete (nft refuses `delete element { x, x }`)
  const twice: NatSpec = { ...more, pods: [...more.pods, 'cali3'], podAddrs4: [...more.podAddrs4!, ['cali3', '10.244.0.4']], podAddrs6: [...more.podAddrs6!, ['cali3', 'fd00:10:244::4']], podIps4: [...more.podIps4!, '10.244.0.4'] };
  assert.match(guardTableProgram(twice), 'set pod_addrs4 { type ifname . ipv4_addr; elements = { "cali1" . 10.244.0.2, "cali2" . 10.244.0.3, "cali3" . 10.244.0.4 } }');
  assert.match(guardTableProgram(twice), 'set pods { type ifname; elements = { "cali1", "cali2", "cali3" } }');
  assert.is(guardSetsProgram(GUARD, twice), [
    'delete element inet podway pods { "cali3" }', 'delete element inet podway pod_addrs4 { "cali3" . 10.244.0.4 }', 'delete element inet podway pod_addrs6 { "cali3" . fd00:10:244::4 }',
    'delete element inet podway pod_ips4 { 10.244.0.4 }', 'delete element inet podway pod_ips6 { fd00:10:244::4 }', '',
  ].join('\n'));
  assert.is(guardSetsProgram(twice, more), '', 'the same set once listed twice: nothing to do');
  const json = JSON.stringify({ nftables: [
    { counter: { family: 'inet', name: 'pod_spoofed', table: 'podway', handle: 1, packets: 5, bytes: 300 } },
    { counter: { family: 'inet', name: 'pod_tunnel', table: 'podway', handle: 2, packets: 3, bytes: 400 } },
    { counter: { family: 'inet', name: 'pod_to_host', table: 'podway', handle: 3, packets: 2, bytes: 100 } },
  ] });
  const c = natCountersOf(parseNftCounters(json).get('inet podway')!);
  assert.equal([c.podSpoofed, c.podTunnel, c.podToHost], [5, 3, 2]);
});

test('--endpoint-to-host / FELIX_DEFAULTENDPOINTTOHOSTACTION: accept by default, Felix\'s words, a clear error otherwise', () => {
  assert.is(parseEndpointToHost(undefined, undefined), 'accept');
  assert.is(parseEndpointToHost('drop', 'ACCEPT'), 'drop', 'the flag wins');
  assert.is(parseEndpointToHost(undefined, 'DROP'), 'drop');
  assert.is(parseEndpointToHost(undefined, 'Return'), 'accept');
  assert.throws(() => parseEndpointToHost('deny', undefined), /--endpoint-to-host: "deny" is not accept or drop/);
  assert.throws(() => parseEndpointToHost(undefined, 'block'), /\$FELIX_DEFAULTENDPOINTTOHOSTACTION: "block" is not accept or drop \(Felix's Accept, Return or Drop\)/);
});

test('nft missing: a clear error naming the package', () => {
  const nat = new NftNat(() => {}, 'nft-not-installed-here');
  assert.throws(() => nat.start(SPEC), /natOutgoing needs nftables: the nft command was not found \(install the nftables package/);
  assert.is(nat.active, false);
});

test.run();
