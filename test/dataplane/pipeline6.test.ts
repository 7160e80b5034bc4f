// The IPv6 half of the pipeline on MemoryIO ports: the gateway's NDP answers, pod-to-pod
// forwarding through the IPv6 FIB, hop limit and ICMPv6 errors, the source check, and bad input
// dropped and counted. Expected frames are scapy's (test/fixtures/scapy-frames6.json).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason, Event, Reason6, Event6 } from '../../src/dataplane/counters';
import { Drop, parseIpv6Bytes, toHex } from '../../src/packet';
import { TraceSession, parseTraceFilter, describeFilter } from '../../src/dataplane/trace';
import { onlyFrame, nothingSent, assertBytes, u16, frame, takeAll, NODE1_MAC } from './helpers';
import { parseMac } from './helpers6-extra';
import { Role } from '../../src/dataplane/pipeline';
import { makeHarness6, frame6, dualStackYaml, RV6, NODE2_6, NODE2_MAC6 } from './helpers6';
import { fixture6, icmpv6Sum, fixIcmpv6Checksum } from '../packet/helpers6';
import { routeHits } from '../../src/dataplane/engine';
import { applyModel6 } from '../../src/dataplane/engine6';

test('the model: IPv6 /128s per pod, our /122 blackholed, node2\'s block over IPv6 VXLAN (MTU 1430)', () => {
  const h = makeHarness6();
  const v6 = h.model.v6;
  const byCidr = new Map(v6.routes.map((r) => [r.cidr, r]));
  assert.is(byCidr.get('fd00:10:244::1/128')?.kind, 'local');
  assert.is(byCidr.get('fd00:10:244::1/128')?.endpoint, 'caliA');
  assert.is(byCidr.get('fd00:10:244::/122')?.kind, 'blackhole');
  const remote = byCidr.get('fd00:10:244::40/122');
  assert.is(remote?.kind, 'vxlan');
  assert.is(remote?.nodeIp6, NODE2_6);
  assert.is(remote?.vtepIp6, 'fd00:10:244::40');
  assert.is(remote?.mtu, 1430);
  assert.is(v6.ip6, 'fd99::1');
  assert.is(v6.vtepMac6.slice(0, 3), '66:');
  assert.is(h.pipe.v6.podMtu, 1430);
});

test('a TAP pod\'s NS for the gateway (multicast, with SLLA; a NUD probe) is answered with ee:ee:ee:ee:ee:ee on the same port, once', () => {
  const h = makeHarness6();
  const t = h.port('tapT');
  h.receive(t, frame6('v6_ns_gw'));
  assertBytes(onlyFrame(h, t, 'NA').bytes, frame6('v6_na_gw'), 'NA');
  h.receive(t, frame6('v6_ns_gw_nud'));
  assertBytes(onlyFrame(h, t, 'NA (NUD)').bytes, frame6('v6_na_gw_nud'), 'NA to the NUD probe');
  assert.is(h.pipe.counters[Event6.NDP_REPLIED], 2);
});

test('a veth pod\'s NS for the gateway is left to the node\'s kernel (the host end\'s own link-local address: it answers), not answered a second time', () => {
  const h = makeHarness6();
  const a = h.port('caliA');
  h.receive(a, frame6('v6_ns_gw'), frame6('v6_ns_gw_nud'));
  nothingSent(h, 'NS from a veth pod');
  assert.is(h.pipe.counters[Event6.NDP_REPLIED], 0);
  assert.is(h.pipe.counters[Event.TO_HOST], 2, 'counted to_host');
  // its router solicitation is still answered here (the kernel sends no RA)
  h.receive(a, frame6('v6_rs'));
  assertBytes(onlyFrame(h, a, 'RA').bytes, frame6('v6_ra'), 'RA');
});

test('RS is answered with an RA carrying the pod MTU; from :: to all-nodes', () => {
  const h = makeHarness6();
  const a = h.port('caliA');
  h.receive(a, frame6('v6_rs'));
  assertBytes(onlyFrame(h, a, 'RA').bytes, frame6('v6_ra'), 'RA');
  h.receive(a, frame6('v6_rs_unspec'));
  assertBytes(onlyFrame(h, a, 'RA to all-nodes').bytes, frame6('v6_ra_unspec'), 'RA (unspecified source)');
});

test('DAD and solicitations for other addresses are not answered (counted)', () => {
  const h = makeHarness6();
  const a = h.port('caliA');
  h.receive(a, frame6('v6_ns_dad'), frame6('v6_ns_other'), frame6('v6_na_gw'));
  nothingSent(h, 'DAD / other targets / an NA from a pod');
  assert.is(h.pipe.counters[Reason6.NDP_NOT_GATEWAY], 2, 'the two solicitations');
  assert.is(h.pipe.counters[Reason6.NDP_ADVERT_FROM_POD], 1, 'the advertisement has its own reason');

});

test('a Router Advertisement and a Redirect from a pod are dropped as ndp_router_msg_from_pod, not ndp_not_gateway', () => {
  const h = makeHarness6();
  const a = h.port('caliA');
  const ra = frame6('v6_ra_from_router');
  ra.set(frame6('v6_rs').subarray(6, 12), 6); // from pod A's MAC (the RS is pod A's)
  // a Redirect (type 137): pod A's RS header re-used, 40 bytes of target and destination
  const rs = frame6('v6_rs');
  const redirect = new Uint8Array(54 + 40);
  redirect.set(rs.subarray(0, 54));
  redirect[18] = 0; redirect[19] = 40;
  redirect[54] = 137;
  redirect.set(parseIpv6Bytes('fe80::1'), 54 + 8);
  redirect.set(parseIpv6Bytes(RV6), 54 + 24);
  fixIcmpv6Checksum(redirect);
  h.receive(a, ra, redirect);
  nothingSent(h, 'RA and redirect from a pod');
  assert.is(h.pipe.counters[Reason6.NDP_ROUTER_MSG_FROM_POD], 2);
  assert.is(h.pipe.counters[Reason6.NDP_NOT_GATEWAY], 0);
  assert.is(h.pipe.counters[Drop.BAD_NDP], 0, 'both are valid NDP');
});

test('bad NDP (hop limit 64, option length 0 or past the end, DAD with SLLA, multicast target, code, short, checksum) is dropped and counted', () => {
  const h = makeHarness6();
  const a = h.port('caliA');
  const bad = ['v6_ns_hlim64', 'v6_ns_optlen0', 'v6_ns_opt_past_end', 'v6_ns_dad_slla', 'v6_ns_mcast_target', 'v6_ns_code1', 'v6_ns_short'].map((n) => {
    const f = frame6(n);
    if (fixture6(n).build?.fix_icmpv6_checksum) fixIcmpv6Checksum(f);
    return f;
  });
  h.receive(a, ...bad, frame6('v6_ns_bad_csum'));
  nothingSent(h, 'bad NDP');
  assert.is(h.pipe.counters[Drop.BAD_NDP], 7);
  assert.is(h.pipe.counters[Drop.BAD_L4_CHECKSUM], 1);
  assert.is(h.pipe.counters[Event6.NDP_REPLIED], 0);
});

test('pod A -> pod B over IPv6: delivered with B\'s MAC, hop limit 63; and back', () => {
  const h = makeHarness6();
  h.receive(h.port('caliA'), frame6('v6pipe_a_to_b'));
  assertBytes(onlyFrame(h, h.port('caliB'), 'A -> B').bytes, frame6('v6pipe_a_to_b_out'), 'A -> B');
  // A's MAC was learned from its frames: B's reply reaches it.
  h.receive(h.port('caliB'), frame6('v6pipe_b_to_a'));
  const back = onlyFrame(h, h.port('caliA'), 'B -> A').bytes;
  assert.is(toHex(back, 0, 6), '2a5f10000101');
  assert.is(back[14 + 7], 63);
});

test('extension headers are carried through unchanged; long and truncated chains are dropped and counted', () => {
  const h = makeHarness6();
  const a = h.port('caliA');
  h.receive(a, frame6('v6pipe_a_to_b_ext'));
  assertBytes(onlyFrame(h, h.port('caliB'), 'with ext headers').bytes, frame6('v6pipe_a_to_b_ext_out'), 'ext');
  h.receive(a, frame6('v6_ext_too_long'), frame6('v6_ext_truncated'), frame6('v6_ext_cut'), frame6('v6_hbh_not_first'));
  nothingSent(h, 'bad chains');
  assert.is(h.pipe.counters[Drop.EXT_CHAIN_TOO_LONG], 1);
  assert.is(h.pipe.counters[Drop.BAD_EXT_HEADER], 3);
});

test('source check: a foreign address and a link-local source are dropped and counted', () => {
  const h = makeHarness6();
  h.receive(h.port('caliA'), frame6('v6pipe_a_spoof'), frame6('v6pipe_a_ll_src'));
  nothingSent(h, 'spoofed');
  assert.is(h.pipe.counters[Reason.SOURCE_CHECK], 2);
  // Pod B may not send from A's address either.
  const f = frame6('v6pipe_a_to_b');
  f.set(parseIpv6Bytes('fd00:10:244::2'), 14 + 24);
  f.set([0x2a, 0x5f, 0x10, 0, 1, 2], 6);
  h.receive(h.port('caliB'), f);
  nothingSent(h, 'B as A');
  assert.is(h.pipe.counters[Reason.SOURCE_CHECK], 3);
});

test('an unallocated address of our block is blackholed', () => {
  const h = makeHarness6();
  h.receive(h.port('caliA'), frame6('v6pipe_a_to_hole'));
  nothingSent(h, 'hole');
  assert.is(h.pipe.counters[Reason.BLACKHOLE], 1);
});

test('hop limit 1: ICMPv6 time exceeded from the node\'s IPv6 address, as scapy builds it', () => {
  const h = makeHarness6();
  const a = h.port('caliA');
  h.receive(a, frame6('v6pipe_a_hlim1'));
  assertBytes(onlyFrame(h, a, 'time exceeded').bytes, frame6('v6pipe_a_hlim1_err'), 'time exceeded');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
  // No error about an error: the time-exceeded message itself with hop limit 1 is only counted.
  const err = frame6('v6pipe_a_hlim1_err');
  err.set([0xee, 0xee, 0xee, 0xee, 0xee, 0xee], 0);
  err.set([0x2a, 0x5f, 0x10, 0, 1, 1], 6);
  err.set(parseIpv6Bytes('fd00:10:244::1'), 14 + 8);
  err.set(parseIpv6Bytes('fd00:10:244::2'), 14 + 24);
  err[14 + 7] = 1;
  h.receive(a, err);
  nothingSent(h, 'error about an error');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 2);
});

test('packet too big: a 1448-byte packet for node2 gets ICMPv6 type 2 with MTU 1430, quote cut to 1280', () => {
  const h = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  const a = h.port('caliA');
  const big = frame6('v6_big');
  big.set(parseIpv6Bytes(RV6), 14 + 24);
  h.receive(a, big);
  const out = onlyFrame(h, a, 'packet too big').bytes;
  assert.is(out.length, 14 + 1280);
  assert.is(out[14 + 40], 2);
  assert.is(u16(out, 14 + 44) * 65536 + u16(out, 14 + 46), 1430);
  assert.is(icmpv6Sum(out, 14, 54, 1240), 0xffff, 'ICMPv6 checksum');
  assertBytes(out.subarray(62), big.subarray(14, 14 + 1232), 'quote');
  assert.is(toHex(out, 14 + 8, 16), toHex(parseIpv6Bytes('fd99::1')), 'from the node');
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
});

test('to node2 over IPv6 VXLAN with its neighbour unresolved, without a pending queue (the engine has one: neighbor-queue tests): dropped, counted, resolution asked', () => {
  const h = makeHarness6();
  const asked: string[] = [];
  h.pipe.v6.onUnresolved6 = (b, off) => asked.push(toHex(b, off, 16));
  // node2 is tracked by the neighbour table (an id), as the engine's Neighbors6 would have it
  h.pipe.v6.neighborId = () => 1;
  const f = frame6('v6pipe_a_to_b');
  f.set(parseIpv6Bytes(RV6), 14 + 24);
  h.receive(h.port('caliA'), f);
  nothingSent(h, 'unresolved');
  assert.is(h.pipe.counters[Reason.NEIGHBOR_UNRESOLVED], 1);
  assert.equal(asked, [toHex(parseIpv6Bytes(NODE2_6))]);
});

test('tun pod: IPv6 from U reaches A with Ethernet; A -> U leaves without Ethernet', () => {
  const h = makeHarness6();
  const u = h.port('tunU');
  const a = h.port('caliA');
  const f = frame6('v6pipe_a_to_b').subarray(14).slice();
  f.set(parseIpv6Bytes('fd00:10:244::4'), 8);
  f.set(parseIpv6Bytes('fd00:10:244::1'), 24);
  h.receive(a, frame6('v6_ns_gw')); // A's MAC is declared anyway; its NS is the node kernel's to answer
  nothingSent(h, 'NS from veth pod A');
  h.receive(u, f);
  const toA = onlyFrame(h, a, 'U -> A').bytes;
  assert.is(toHex(toA, 12, 2), '86dd');
  assert.is(toA[14 + 7], 63);
  const back = frame6('v6pipe_a_to_b');
  back.set(parseIpv6Bytes('fd00:10:244::4'), 14 + 24);
  h.receive(a, back);
  const toU = onlyFrame(h, u, 'A -> U').bytes;
  assert.is(toU[0] >> 4, 6);
  assert.is(toU.length, back.length - 14);
});

/** Pod A's echo request as a bare IPv6 packet (no Ethernet) from `src` to `dst`. */
function ip6Packet(src: string, dst: string): Uint8Array {
  const f = frame6('v6pipe_a_to_b').subarray(14).slice();
  f.set(parseIpv6Bytes(src), 8);
  f.set(parseIpv6Bytes(dst), 24);
  return f;
}

test('the node\'s IPv6 into the host port (podway0): to a tun pod with the hop limit untouched, to a remote pod over IPv6 VXLAN; no route, multicast and a bad packet dropped and counted', () => {
  const h = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  const host = h.infra.host;
  const toU = ip6Packet('fd99::1', 'fd00:10:244::4');
  h.receive(host, toU.slice());
  const atU = onlyFrame(h, h.port('tunU'), 'node -> U').bytes;
  assertBytes(atU, toU, 'delivered as sent: the node originated it (no hop limit decrement)');
  h.receive(host, ip6Packet('fd99::1', RV6));
  const out = onlyFrame(h, h.infra.underlay, 'node -> remote pod').bytes;
  assert.is(u16(out, 12), 0x86dd);
  assert.is(toHex(out, 14 + 24, 16), toHex(parseIpv6Bytes(NODE2_6), 0, 16), 'VXLAN over IPv6 to node2');
  h.receive(host, ip6Packet('fd99::1', '2001:db8::1'));
  h.receive(host, ip6Packet('fd99::1', 'ff02::16'));
  h.receive(host, ip6Packet('fd99::1', 'fd00:10:244::4').subarray(0, 30).slice());
  nothingSent(h, 'no route, multicast, runt');
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 1);
  assert.is(h.pipe.counters[Reason6.MULTICAST6], 1);
});

test('a pod\'s IPv6 to its node: a veth pod\'s left to the kernel, a tun pod\'s into the host port; to another node\'s address out of tx6 (hop limit - 1, egress); outside the pools out of tx6 too', () => {
  const h = makeHarness6();
  const tx6 = h.io.openRaw({ ipv6: true });
  h.pipe.setPort(tx6, Role.TX6, 'tx6(raw)');
  h.pipe.v6.tx6Port = tx6;
  (h.infra as Record<string, number>).tx6 = tx6; // looked at by onlyFrame/nothingSent
  const a = h.port('caliA');
  const toNode = frame6('v6pipe_a_to_b');
  toNode.set(parseIpv6Bytes('fd99::1'), 14 + 24);
  h.receive(a, toNode);
  nothingSent(h, 'the kernel has the veth pod\'s frame');
  assert.is(h.pipe.counters[Event.TO_HOST], 1);
  const fromU = ip6Packet('fd00:10:244::4', 'fd99::1');
  h.receive(h.port('tunU'), fromU.slice());
  assertBytes(onlyFrame(h, h.infra.host, 'U -> node').bytes, fromU, 'into podway0 as the pod sent it');
  assert.is(h.pipe.counters[Event.TO_HOST], 2);
  const toNode2 = frame6('v6pipe_a_to_b');
  toNode2.set(parseIpv6Bytes(NODE2_6), 14 + 24);
  h.receive(a, toNode2);
  const out = onlyFrame(h, tx6, 'A -> node2').bytes;
  assertBytes(out.subarray(24, 40), parseIpv6Bytes(NODE2_6), 'to node2\'s address');
  assert.is(out[7], toNode2[14 + 7] - 1, 'hop limit decremented');
  assert.is(out.length, toNode2.length - 14);
  assert.is(h.pipe.counters[Event.EGRESS], 1);
  const elsewhere = frame6('v6pipe_a_to_b');
  elsewhere.set(parseIpv6Bytes('2001:db8::1'), 14 + 24);
  h.receive(a, elsewhere);
  const egress = onlyFrame(h, tx6, 'A -> outside').bytes;
  assertBytes(egress.subarray(8, 24), elsewhere.subarray(14 + 8, 14 + 24), 'the pod\'s own source: the pool has no natOutgoing');
  assertBytes(egress.subarray(24, 40), parseIpv6Bytes('2001:db8::1'), 'to the outside address');
  assert.is(egress[7], elsewhere[14 + 7] - 1, 'hop limit decremented');
  assert.is(h.pipe.counters[Event.EGRESS], 2);
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 0);
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 0);
});

test('a pod\'s IPv6 to another address of its node (its local table): a veth pod\'s left to the kernel (to_host), a tun pod\'s out of tx6; ::1 and link-local stay martian_dst; a changed set is followed', () => {
  const h = makeHarness6();
  const tx6 = h.io.openRaw({ ipv6: true });
  h.pipe.setPort(tx6, Role.TX6, 'tx6(raw)');
  h.pipe.v6.tx6Port = tx6;
  (h.infra as Record<string, number>).tx6 = tx6;
  const a = h.port('caliA');
  const to = (dst: string) => {
    const f = frame6('v6pipe_a_to_b');
    f.set(parseIpv6Bytes(dst), 14 + 24);
    return f;
  };
  h.receive(a, to('fd00:20::10'));
  onlyFrame(h, tx6, 'before the set holds it: through tx6');
  h.pipe.v6.local6.set(['::1', 'fd99::1', 'fd00:20::10', 'fe80::1', 'fd00:30::/64']);
  h.receive(a, to('fd00:20::10'));
  h.receive(a, to('fd00:30::42'));
  nothingSent(h, 'the kernel has the veth pod\'s frames');
  assert.is(h.pipe.counters[Event.TO_HOST], 2);
  const fromU = ip6Packet('fd00:10:244::4', 'fd00:20::10');
  h.receive(h.port('tunU'), fromU.slice());
  onlyFrame(h, tx6, 'tun pod U -> fd00:20::10: through tx6, its one delivery');
  assert.is(h.pipe.counters[Event.TO_HOST], 2);
  h.receive(a, to('::1'));
  assert.is(h.pipe.counters[Reason.MARTIAN_DST], 1, '::1 stays martian_dst');
  takeAll(h);
  h.pipe.v6.local6.set(['fd99::1']);
  h.receive(a, to('fd00:20::10'));
  onlyFrame(h, tx6, 'gone from the node: through tx6 again');
  assert.is(h.pipe.counters[Event.TO_HOST], 2);
});

/** The dual-stack harness with a tx6 raw port, its IPv6 pool's natOutgoing as given. */
function withTx6(natOutgoing: boolean) {
  const yaml = dualStackYaml().replace('spec: { cidr: "fd00:10:244::/64", vxlanMode: Always, ipipMode: Never }', `spec: { cidr: "fd00:10:244::/64", vxlanMode: Always, ipipMode: Never, natOutgoing: ${natOutgoing} }`);
  const h = makeHarness6({ yaml });
  const tx6 = h.io.openRaw({ ipv6: true });
  h.pipe.setPort(tx6, Role.TX6, 'tx6(raw)');
  h.pipe.v6.tx6Port = tx6;
  (h.infra as Record<string, number>).tx6 = tx6;
  return { h, tx6 };
}

function podTo(dst: string, hopLimit = 64): Uint8Array {
  const f = frame6('v6pipe_a_to_b');
  f.set(parseIpv6Bytes(dst), 14 + 24);
  f[14 + 7] = hopLimit;
  return f;
}

test('hop limit 1 from the underlay from an outside sender (no pod or node route back): time exceeded through the node\'s routing (tx6), counted icmp_sent once, not dropped no_route', () => {
  const { h, tx6 } = withTx6(false);
  const f = frame6('v6pipe_a_to_b'); // to pod A (fd00:10:244::1)...
  f.set(parseMac(NODE1_MAC), 0); // ...on node1's underlay NIC, unencapsulated (direct/BGP mode)
  f.set([0x02, 0, 0x5e, 0, 0, 0x09], 6);
  f.set(parseIpv6Bytes('fd00:10:244::1'), 14 + 24);
  f.set(parseIpv6Bytes('2001:db8::9'), 14 + 8); // a ToR or a client outside the cluster
  f[14 + 7] = 1;
  fixIcmpv6Checksum(f);
  h.receive(h.infra.underlay, f);
  const out = onlyFrame(h, tx6, 'time exceeded via tx6').bytes;
  assert.is(out[0] >> 4, 6, 'a bare IPv6 packet for the raw socket');
  assert.is(out[6], 58, 'ICMPv6');
  assertBytes(out.subarray(8, 24), parseIpv6Bytes('fd99::1'), 'from the node\'s IPv6 address');
  assertBytes(out.subarray(24, 40), parseIpv6Bytes('2001:db8::9'), 'to the sender');
  assert.equal([out[40], out[41]], [3, 0], 'time exceeded, hop limit');
  assert.is(out.length, 40 + u16(out, 4));
  assert.is(icmpv6Sum(out, 0, 40, u16(out, 4)), 0xffff, 'ICMPv6 checksum');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 0, 'not built and then dropped');
  // without the raw socket there is no way back: a counted drop, not a sent error
  h.pipe.v6.tx6Port = -1;
  h.receive(h.infra.underlay, f);
  nothingSent(h, 'no tx6');
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 1);
});

test('hop limit 1 from the underlay from a martian sender (link-local, IPv4-mapped, loopback): no time exceeded (tx6 has no way there); link-local and loopback dropped martian_src before the hop limit, as the kernel never forwards them; IPv4-mapped (which it forwards) counted ttl_expired only, not built and dropped no_route', () => {
  const { h } = withTx6(false);
  const senders = ['fe80::9', '::ffff:c000:209', '::1'];
  for (const src of senders) {
    const f = frame6('v6pipe_a_to_b');
    f.set(parseMac(NODE1_MAC), 0);
    f.set([0x02, 0, 0x5e, 0, 0, 0x09], 6);
    f.set(parseIpv6Bytes('fd00:10:244::1'), 14 + 24);
    f.set(parseIpv6Bytes(src), 14 + 8);
    f[14 + 7] = 1;
    fixIcmpv6Checksum(f);
    h.receive(h.infra.underlay, f);
    nothingSent(h, src);
  }
  assert.is(h.pipe.counters[Reason.MARTIAN_SRC], 2, 'fe80::9 and ::1');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1, '::ffff:c000:209');
  assert.is(h.pipe.counters[Event.ICMP_SENT], 0);
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 0, 'not built and then dropped no_route');
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 0);
});

test('natOutgoing IPv6 pool: egress outside the pools goes out of tx6 as egress_nat (the kernel masquerades it), traced; other nodes too (IPPoolsOnly: what the pod opens), counted egress, as with IPPoolsAndHostIPs; pools are not NAT', () => {
  const { h, tx6 } = withTx6(true);
  assert.is(h.model.v6.pools[0].natOutgoing, true);
  const a = h.port('caliA');
  const t = new TraceSession(parseTraceFilter(['dst', '2001:db8::7']), 1);
  h.pipe.trace = t;
  h.receive(a, podTo('2001:db8::7'));
  const out = onlyFrame(h, tx6, 'A -> outside').bytes;
  assertBytes(out.subarray(8, 24), parseIpv6Bytes('fd00:10:244::1'), 'handed over with the pod\'s address: the kernel translates it');
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 1);
  assert.is(h.pipe.counters[Event.EGRESS], 0);
  assert.match(t.records[0].stages.join('\n'), /lookup 2001:db8::7: outside the pools: through the node's routing \(tx6, natOutgoing: masqueraded to the node's address by the kernel, table ip6 podway\)/);
  // another node's address: through tx6, NAT with Felix's default natOutgoingExclusions
  // (IPPoolsOnly: the table masquerades the connections the pod opens there, not this datagram),
  // so counted egress: egress_nat counts only what the table masquerades
  h.receive(a, podTo(NODE2_6));
  onlyFrame(h, tx6, 'A -> node2');
  assert.is(h.pipe.counters[Event.EGRESS], 1);
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 1);
  // IPPoolsAndHostIPs: through tx6 with the pod's address (counted egress)
  h.pipe.natToNodes = false;
  h.receive(a, podTo(NODE2_6));
  onlyFrame(h, tx6, 'A -> node2, IPPoolsAndHostIPs');
  assert.is(h.pipe.counters[Event.EGRESS], 2);
  assert.is(h.pipe.counters[Event.EGRESS_NAT], 1);
  // a pool address without a route is dropped, never handed to the kernel (its pool route leads back into podway0)
  h.receive(a, podTo('fd00:10:244::1:5'));
  nothingSent(h, 'pool address without a route');
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 1);
  // hop limit 1: time exceeded back to the pod, nothing out
  h.receive(a, podTo('2001:db8::7', 1));
  const te = onlyFrame(h, a, 'time exceeded').bytes;
  assert.is(te[14 + 40], 3, 'ICMPv6 time exceeded');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1);
});

test('no IPv6 raw socket: a pod\'s packet outside the pools gets ICMPv6 unreachable, no_route', () => {
  const h = makeHarness6();
  const a = h.port('caliA');
  h.receive(a, podTo('2001:db8::1'));
  const icmp = onlyFrame(h, a, 'unreachable').bytes;
  assert.is(icmp[14 + 40], 1, 'ICMPv6 destination unreachable');
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 1);
});

test('tx6: a pod\'s packet for another node\'s address bigger than the underlay MTU gets Packet Too Big with that MTU, counted frag_needed, not handed to the kernel (which would refuse it)', () => {
  const h = makeHarness6();
  const tx6 = h.io.openRaw({ ipv6: true });
  h.pipe.setPort(tx6, Role.TX6, 'tx6(raw)');
  h.pipe.v6.tx6Port = tx6;
  (h.infra as Record<string, number>).tx6 = tx6; // looked at by onlyFrame/nothingSent
  const a = h.port('caliA');
  const big = frame6('v6_big'); // 1448 bytes of IPv6
  big.set(parseIpv6Bytes(NODE2_6), 14 + 24);
  h.pipe.v6.tx6Mtu = 1400;
  h.receive(a, big.slice());
  const out = onlyFrame(h, a, 'packet too big').bytes;
  assert.is(out[14 + 40], 2, 'ICMPv6 packet too big');
  assert.is(u16(out, 14 + 44) * 65536 + u16(out, 14 + 46), 1400, 'the underlay MTU');
  assert.is(icmpv6Sum(out, 14, 54, u16(out, 14 + 4)), 0xffff, 'ICMPv6 checksum');
  assert.is(toHex(out, 14 + 24, 16), toHex(big, 14 + 8, 16), 'back to the pod that sent it');
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
  assert.is(h.pipe.counters[Event.EGRESS], 0);
  // at the MTU exactly it goes
  h.pipe.v6.tx6Mtu = 1448;
  h.receive(a, big.slice());
  assert.is(onlyFrame(h, tx6, 'fits').bytes.length, 1448);
  assert.is(h.pipe.counters[Event.EGRESS], 1);
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
});

test('multicast from a pod (an MLD report) is not routed, counted', () => {
  const h = makeHarness6();
  const f = frame6('v6pipe_a_to_b');
  f.set([0x33, 0x33, 0, 0, 0, 0x16], 0);
  f.set(parseIpv6Bytes('ff02::16'), 14 + 24);
  h.receive(h.port('caliA'), f);
  nothingSent(h, 'multicast');
  assert.is(h.pipe.counters[Reason6.MULTICAST6], 1);
});

test('packets per IPv6 route are counted (podway top\'s busiest routes) beside IPv4\'s, and kept through a new model', () => {
  const h = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  for (let k = 0; k < 3; k++) h.receive(h.port('caliA'), frame6('v6pipe_a_to_b'));
  const f = frame6('v6pipe_a_to_b');
  f.set(parseIpv6Bytes(RV6), 14 + 24);
  h.receive(h.port('caliA'), f);
  h.receive(h.port('caliA'), frame('a_to_b'));
  const hits = routeHits(h.pipe.nh, h.pipe.v6.nh);
  const of = (cidr: string) => hits.find((r) => r.cidr === cidr);
  assert.equal(of('fd00:10:244::2/128'), { cidr: 'fd00:10:244::2/128', kind: 'local', node: 'node1', packets: 3 });
  assert.equal(of('fd00:10:244::40/122'), { cidr: 'fd00:10:244::40/122', kind: 'vxlan', node: 'node2', packets: 1 });
  assert.is(of('10.244.0.2/32')?.packets, 1, 'IPv4 beside it');
  assert.not.ok(hits.some((r) => r.packets === 0), 'routes that carried nothing are left out');
  // the next model's next hops carry the counts over by CIDR
  applyModel6(h.pipe, h.model, { portOf: (ifname) => h.ports.get(ifname) ?? -1, neighbor6: () => undefined });
  assert.is(routeHits(h.pipe.nh, h.pipe.v6.nh).find((r) => r.cidr === 'fd00:10:244::2/128')?.packets, 3);
});

test('IPv4 still works beside IPv6 on the same ports', () => {
  const h = makeHarness6();
  // An IPv4 pod-to-pod packet from the IPv4 fixtures (a_to_b) still goes A -> B.
  h.receive(h.port('caliA'), frame('a_to_b'));
  const out = onlyFrame(h, h.port('caliB'), 'IPv4 A -> B').bytes;
  assert.is(u16(out, 12), 0x0800);
});

test('podway trace follows IPv6 packets (filter by IPv6 host): stages from ingress to the queue, drops named', () => {
  const h = makeHarness6();
  const t = new TraceSession(parseTraceFilter(['host', 'fd00:10:244::2']), 2);
  h.pipe.trace = t;
  h.receive(h.port('caliA'), frame6('v6pipe_a_to_b'));
  h.receive(h.port('caliA'), frame6('v6pipe_a_to_hole')); // not matching the filter
  h.receive(h.port('caliA'), frame6('v6pipe_a_hlim1'));
  assert.is(t.records.length, 2);
  const s = t.records[0].stages.join('\n');
  assert.match(s, /^ipv6 fd00:10:244::1 -> fd00:10:244::2 next header 58 len 104 hop limit 64/);
  assert.match(s, /source check: fd00:10:244::1 belongs to caliA: pass/);
  assert.match(s, /lookup fd00:10:244::2: fd00:10:244::2\/128 local/);
  assert.match(s, /hop limit 64 -> 63/);
  assert.match(s, /queued to port caliB/);
  assert.match(t.records[1].stages.join('\n'), /ttl_expired: icmpv6 type 3 code 0 back to caliA\nqueued to port caliA/);
  // An IPv4 filter never matches IPv6, and the other way round.
  const t4 = new TraceSession(parseTraceFilter(['host', '10.244.0.2']), 1);
  h.pipe.trace = t4;
  h.receive(h.port('caliA'), frame6('v6pipe_a_to_b'));
  assert.is(t4.records.length, 0);
  assert.is(describeFilter(parseTraceFilter(['host', 'fd00:10:244:0::2', 'and', 'icmp6'])), 'host fd00:10:244::2 and proto 58');
  assert.throws(() => parseTraceFilter(['host', 'fd00::zz']), /invalid IPv6 address/);
});

test('podway trace records the gateway NS podway answered (a TAP pod\'s) and the one it left to the kernel (a veth pod\'s)', () => {
  const h = makeHarness6();
  const t = new TraceSession(parseTraceFilter(['icmp6']), 2);
  h.pipe.trace = t;
  h.receive(h.port('tapT'), frame6('v6_ns_gw'));
  h.receive(h.port('caliA'), frame6('v6_ns_gw'));
  assert.is(t.records.length, 2);
  assert.match(t.records[0].stages[0], /neighbor solicitation for fe80::ecee:eeff:feee:eeee .*answered ee:ee:ee:ee:ee:ee/);
  assert.match(t.records[1].stages[0], /neighbor solicitation for fe80::ecee:eeff:feee:eeee .*the veth host end's own address: the node's kernel answers it/);
});

test.run();
