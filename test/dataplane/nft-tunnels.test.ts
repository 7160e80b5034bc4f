// podway's tunnel table (nft-tunnels.ts): the rules it loads, and what it says when nft cannot be
// used (the engine then keeps receiving tunnels on the UDP/raw sockets). No nft run here: the
// table itself is exercised end to end by e2e/offload, e2e/live, e2e/nat and e2e/ipv6-interop.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tunnelRxProgram, installTunnelRx, TUNNEL_TABLE } from '../../src/dataplane/nft-tunnels';

test('the table drops only tunnel packets to the node, arriving on the underlay, before conntrack', () => {
  const p = tunnelRxProgram('eth0', '10.99.0.1', 4789);
  assert.match(p, `add table inet ${TUNNEL_TABLE}\ndelete table inet ${TUNNEL_TABLE}\n`);
  // before netfilter's defragmentation (-400): the rules must see fragments as fragments
  assert.match(p, 'type filter hook prerouting priority -450; policy accept;');
  assert.match(p, 'iifname "eth0" ip daddr 10.99.0.1 ip frag-off & 0x3fff == 0 udp dport 4789 counter name "vxlan" drop');
  assert.match(p, 'iifname "eth0" ip daddr 10.99.0.1 ip frag-off & 0x3fff == 0 ip protocol 4 counter name "ipip" drop');
  // fragments are counted, not dropped: the kernel reassembles them for the tunnel sockets
  assert.match(p, 'ip frag-off & 0x3fff != 0 ip protocol { udp, 4 } counter name "fragments"\n');
  assert.not.match(p, 'ip6 daddr', 'no IPv6 rule without an IPv6 address');
  assert.not.match(p, 'protocol ipip', '"ipip" is protocol 94 in /etc/protocols, not 4');
  const p6 = tunnelRxProgram('ens5', '192.168.1.2', 4789, 'fd99::2');
  // unfragmented IPv6 VXLAN only: fragments go on to the kernel's reassembly and the IPv6 VXLAN socket
  assert.match(p6, 'iifname "ens5" ip6 daddr fd99::2 exthdr frag missing udp dport 4789 counter name "vxlan6" drop');
  assert.match(p6, 'iifname "ens5" ip6 daddr fd99::2 exthdr frag exists counter name "fragments6"\n');
});

test('nft missing or unusable input: a reason, nothing thrown (the engine falls back to the sockets)', () => {
  assert.match(installTunnelRx('eth0', '10.99.0.1', 4789, null, '/nonexistent/nft') ?? '', 'the nft command was not found');
  assert.match(installTunnelRx('eth0"; flush ruleset; "', '10.99.0.1', 4789) ?? '', 'not usable in an nft rule');
  assert.match(installTunnelRx('eth0', '10.99.0.1', 4789, 'fd99::2 drop') ?? '', 'not usable in an nft rule');
});

test.run();
