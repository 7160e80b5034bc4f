// ICMP errors the pipeline sends back to a pod (TTL expired, fragmentation needed), byte for byte
// against scapy's (pipe_* fixtures), and the drops that must not produce one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reason, Event } from '../../src/dataplane/counters';
import { Link } from '../../src/dataplane/capture';
import { NhKind } from '../../src/dataplane/nexthops';
import { innerFlowHash, vxlanSourcePort } from '../../src/packet';
import { makeHarness, frame, build, onlyFrame, nothingSent, assertBytes, adopt, ipHeaderChecksum, onesSum, u16, fixIpChecksum, NODE2, NODE2_MAC } from './helpers';

const RESOLVED = { neighbors: { '10.99.0.2': NODE2_MAC } };

/** Compare an ICMP error (IPv4 at `ip`) with the expected fixture; podway picks only the IPv4 id. */
function checkIcmpError(out: Uint8Array, name: string, ip: number): void {
  const b = build(name);
  assert.equal(b.adopt, ['id']);
  const expected = frame(name).subarray(14 - ip);
  assertBytes(out, adopt(expected, out, [[ip + 4, 2]], [ip]), name);
  assert.is(u16(out, ip + 10), ipHeaderChecksum(out, ip), `${name}: header checksum`);
  // The ICMP checksum verifies over the whole message (header + quote), computed from scratch.
  const total = u16(out, ip + 2);
  assert.is(onesSum(out, ip + 20, total - 20), 0xffff, `${name}: icmp checksum`);
}

test('TTL 1 from a veth pod: ICMP time exceeded from the node IP back to the pod, quoting header + 8 bytes', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  h.receive(a, frame('a_ttl1'));
  const out = onlyFrame(h, a, 'time exceeded').bytes;
  checkIcmpError(out, 'a_ttl1_icmp', 14);
  assert.is(out[34], 11);
  assert.is(out[35], 0);
  // The quote is the offending header as received (TTL 1) and the first 8 bytes of its payload.
  assertBytes(out.subarray(42), frame('a_ttl1').subarray(14, 14 + 28), 'quote');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
});

test('TTL 1 from a tun pod: the ICMP error goes back without Ethernet', () => {
  const h = makeHarness(RESOLVED);
  const u = h.port('tunU');
  h.receive(u, frame('u_ttl1').subarray(14));
  assert.is(build('u_ttl1_icmp').l3, true);
  checkIcmpError(onlyFrame(h, u, 'time exceeded (tun)').bytes, 'u_ttl1_icmp', 0);
});

test('TTL 1 on a local delivery expires too; TTL 2 is delivered with TTL 1', () => {
  const h = makeHarness();
  const a = h.port('caliA');
  const f = frame('a_to_b');
  f[22] = 1;
  f[24] = 0; f[25] = 0;
  const c = ipHeaderChecksum(f, 14);
  f[24] = c >> 8; f[25] = c & 255;
  h.receive(a, f);
  const out = onlyFrame(h, a, 'expired locally').bytes;
  assert.is(out[34], 11);
  assert.is(u16(out, 14 + 10), ipHeaderChecksum(out, 14));
  f[22] = 2;
  const c2 = ipHeaderChecksum(f, 14);
  f[24] = c2 >> 8; f[25] = c2 & 255;
  h.receive(a, f);
  const ok = onlyFrame(h, h.port('caliB'), 'ttl 2').bytes;
  assert.is(ok[22], 1);
  assert.is(u16(ok, 24), ipHeaderChecksum(ok, 14));
});

test('no ICMP error about an ICMP error: expired, counted, nothing sent', () => {
  const h = makeHarness(RESOLVED);
  h.receive(h.port('caliA'), frame('a_ttl1_icmperr'));
  nothingSent(h, 'icmp error about an icmp error');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 0);
});

test('MTU: a DF packet over the VXLAN path MTU gets fragmentation needed with next-hop MTU 1450', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  h.receive(a, frame('a_big_df'));
  const out = onlyFrame(h, a, 'frag needed').bytes;
  checkIcmpError(out, 'a_big_df_icmp', 14);
  assert.is(out[34], 3);
  assert.is(out[35], 4);
  assert.is(u16(out, 40), 1450, 'next-hop MTU');
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
});

/** takeRejected's record of one refused frame: [u16 original length][u16 bytes][bytes], little-endian. */
function rejectedRecord(f: Uint8Array): Uint8Array {
  const r = new Uint8Array(4 + f.length);
  r[0] = f.length & 255; r[1] = f.length >> 8; r[2] = f.length & 255; r[3] = f.length >> 8;
  r.set(f, 4);
  return r;
}

test('underlay MTU lowered under podway: a pod\'s VXLAN frame the kernel refused as too big (EMSGSIZE) is routed again from the pod once the routes know 1350: fragmentation needed quoting the packet as the pod sent it (its TTL); without DF fragmented for 1350; a copy that fits the device is not answered', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  const sentFrame = frame('a_max_df');
  h.receive(a, sentFrame);
  const refused = onlyFrame(h, h.infra.underlay, '1450 DF out').bytes.slice();
  assert.is(refused.length, 1514, 'the frame the kernel refuses on a 1400-byte underlay');
  // a copy that fits the device's MTU was refused for something else: not answered
  assert.is(h.pipe.answerRefused(rejectedRecord(refused), refused.length + 4, Link.ETHERNET, 1500), 0);
  nothingSent(h, 'fits the device');
  // the engine read the MTU again (1400) and bounded the VXLAN routes by it (boundRouteMtus)
  const nh = h.pipe.nh!;
  for (let i = 0; i < nh.count; i++) if (nh.kind[i] === NhKind.VXLAN) nh.mtu[i] = 1350;
  assert.is(h.pipe.answerRefused(rejectedRecord(refused), refused.length + 4, Link.ETHERNET, 1400), 1);
  const out = onlyFrame(h, a, 'frag needed for the refused frame').bytes;
  assert.is(out[34], 3);
  assert.is(out[35], 4);
  assert.is(u16(out, 40), 1350, 'the new path MTU');
  assert.is(u16(out, 14 + 10), ipHeaderChecksum(out, 14), 'header checksum');
  assert.is(onesSum(out, 34, u16(out, 16) - 20), 0xffff, 'icmp checksum');
  assertBytes(out.subarray(42, 42 + 28), sentFrame.subarray(14, 14 + 28), 'the quote: the packet as the pod sent it (TTL and checksum restored)');
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
  assert.is(h.pipe.counters[Event.TOO_BIG_ANSWERED], 1);
  // without DF: cut into fragments for the new path MTU, as the kernel's forwarding would
  const nodf = refused.slice();
  const inner = 14 + 20 + 8 + 8 + 14;
  nodf[inner + 6] &= ~0x40;
  fixIpChecksum(nodf, inner);
  assert.is(h.pipe.answerRefused(rejectedRecord(nodf), nodf.length + 4, Link.ETHERNET, 1400), 1);
  const frags = h.io.take(h.infra.underlay);
  // inner: 20 + 1328 bytes (1350 - 20 rounded down to 8), MF; then the other 102 at offset 1328 / 8
  assert.equal(frags.map((f) => [u16(f.bytes, 16), u16(f.bytes, 64 + 2), u16(f.bytes, 64 + 6)]), [[1398, 1348, 0x2000], [172, 122, 166]], 'two VXLAN datagrams');
  nothingSent(h, 'no DF: the fragments only');
  assert.is(h.pipe.counters[Reason.TOO_BIG_NO_DF], 0);
  assert.is(h.pipe.counters[Event.FRAGMENTED], 1);
  // a copy cut short (a super-frame's first 2 KiB) or of no local pod: not answered
  const cut = rejectedRecord(refused);
  cut[0] = 0; cut[1] = 0x10;
  assert.is(h.pipe.answerRefused(cut, cut.length, Link.ETHERNET, 1400), 0);
  const other = refused.slice();
  other[inner + 15] ^= 0x55;
  fixIpChecksum(other, inner);
  assert.is(h.pipe.answerRefused(rejectedRecord(other), other.length + 4, Link.ETHERNET, 1400), 0);
  nothingSent(h, 'cut or not a local pod\'s');
});

test('MTU: the same packet without DF is fragmented (fragmented, not too_big_no_df); exactly 1450 bytes with DF goes out in a 1500-byte outer packet', () => {
  const h = makeHarness(RESOLVED);
  h.receive(h.port('caliA'), frame('a_big_nodf'));
  assert.is(h.io.take(h.infra.underlay).length, 2, 'no DF: two fragments, each in its VXLAN datagram');
  nothingSent(h, 'no DF');
  assert.is(h.pipe.counters[Reason.TOO_BIG_NO_DF], 0);
  assert.is(h.pipe.counters[Event.FRAGMENTED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 0);
  h.receive(h.port('caliA'), frame('a_max_df'));
  const out = onlyFrame(h, h.infra.underlay, '1450 DF').bytes;
  assert.is(u16(out, 16), 1500, 'outer total length');
  assert.is(out.length, 1514);
  assert.is(u16(out, 14 + 10), ipHeaderChecksum(out, 14));
  // Inner packet intact behind the 50 bytes of outer headers, TTL 63.
  const inner = frame('a_max_df');
  assertBytes(out.subarray(50 + 14 + 20), inner.subarray(14 + 20), 'inner payload');
  assert.is(out[50 + 22], 63);
});

test('MTU: a big DF packet to a local pod is delivered (no path MTU on local delivery)', () => {
  const h = makeHarness();
  const f = frame('a_big_df');
  f.set([10, 244, 0, 2], 30);
  f[24] = 0; f[25] = 0;
  const c = ipHeaderChecksum(f, 14);
  f[24] = c >> 8; f[25] = c & 255;
  h.receive(h.port('caliA'), f);
  const out = onlyFrame(h, h.port('caliB'), 'big local').bytes;
  assert.is(out.length, 1465);
  assert.is(out[22], 63);
});

test('TTL 1 inside a VXLAN packet: time exceeded from the node IP, routed back to the sender through the tunnel', () => {
  const h = makeHarness(RESOLVED);
  h.receive(h.infra.vxlan, { bytes: frame('vxlan_rv_to_a_ttl1').subarray(42), addr: NODE2 });
  const out = onlyFrame(h, h.infra.underlay, 'time exceeded via vxlan').bytes;
  assert.equal(build('vxlan_rv_to_a_ttl1_icmp').adopt, ['outer_id', 'vxlan_sport', 'inner_id']);
  // podway picks the outer id, the source port and the ICMP error's own id.
  assertBytes(out, adopt(frame('vxlan_rv_to_a_ttl1_icmp'), out, [[18, 2], [34, 2], [68, 2]], [14, 64]), 'icmp error in vxlan');
  assert.is(u16(out, 24), ipHeaderChecksum(out, 14));
  assert.is(u16(out, 74), ipHeaderChecksum(out, 64));
  const seed = (h.pipe as unknown as { flowSeed: number }).flowSeed;
  assert.is(u16(out, 34), vxlanSourcePort(innerFlowHash(out, 50, out.length - 50, seed)));
  assert.is(onesSum(out, 84, out.length - 84), 0xffff, 'icmp checksum');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
});

// The node's own packets (host port) are not forwarded by a router hop: podway does not decrement
// their TTL (pipeline.ts fromHost/route: "originated"), so a TTL it does not decrement cannot expire
// either. With Calico the node reaches a local pod directly (`ping -t 1 <pod>` is answered by the
// pod, traceroute shows the pod as hop 1), and a remote pod's node expires TTL 1 after decap.
test('the node\'s own TTL 1 packet to a local pod is delivered with TTL 1, not expired by podway', () => {
  const h = makeHarness();
  const f = frame('host_to_a').slice(14);
  f[8] = 1;
  fixIpChecksum(f, 0);
  h.receive(h.infra.host, f);
  const out = onlyFrame(h, h.port('caliA'), 'host TTL 1 to A').bytes;
  const expected = frame('host_to_a_out');
  expected[22] = 1;
  fixIpChecksum(expected, 14);
  assertBytes(out, expected, 'delivered unchanged');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 0);
});

test('TTL 1 from the underlay from an outside sender (no pod or node route back): time exceeded through the node\'s routing (tx4), counted icmp_sent once, not dropped no_route', () => {
  const h = makeHarness(RESOLVED);
  const f = frame('underlay_rd_to_u').slice();
  f.set([192, 0, 2, 9], 14 + 12); // a ToR or a client outside the cluster (direct/BGP mode)
  f[14 + 8] = 1;
  fixIpChecksum(f, 14);
  h.receive(h.infra.underlay, f);
  const sent = onlyFrame(h, h.infra.tx4, 'time exceeded via tx4');
  const out = sent.bytes;
  assert.is(out[0] >> 4, 4, 'a bare IPv4 packet for the raw socket');
  assert.is(out[20], 11, 'time exceeded');
  assert.equal([...out.subarray(16, 20)], [192, 0, 2, 9], 'to the sender');
  assert.is(sent.addr, 0xc0000209, 'the raw socket\'s destination');
  assert.is(u16(out, 10), ipHeaderChecksum(out, 0), 'header checksum');
  assert.is(onesSum(out, 20, u16(out, 2) - 20), 0xffff, 'icmp checksum');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 0, 'not built and then dropped');
});

test('TTL 1 from the underlay from one of this node\'s own addresses (a martian source to the kernel, which answers nothing): no time exceeded through tx4 back into the node; its local table\'s addresses dropped own_source before the TTL check, loopback martian_src', () => {
  const h = makeHarness(RESOLVED);
  h.pipe.local4.set(['10.99.0.1', '172.17.0.1', '127.0.0.0/8']);
  for (const [what, src] of [['the node\'s address', [10, 99, 0, 1]], ['another of its local table', [172, 17, 0, 1]], ['loopback', [127, 0, 0, 1]]] as Array<[string, number[]]>) {
    const f = frame('underlay_rd_to_u').slice();
    f.set(src, 14 + 12);
    f[14 + 8] = 1;
    fixIpChecksum(f, 14);
    h.receive(h.infra.underlay, f);
    nothingSent(h, what);
  }
  assert.is(h.pipe.counters[Reason.OWN_SOURCE], 2, 'the node\'s address and another of its local table');
  assert.is(h.pipe.counters[Reason.MARTIAN_SRC], 1, 'loopback (never in the local set: a martian source)');
  assert.is(h.pipe.counters[Reason.TTL_EXPIRED], 0);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 0);
  assert.is(h.pipe.counters[Reason.NO_ROUTE], 0);
  assert.is(h.pipe.counters[Reason.ICMP_RATELIMITED], 0, 'no rate-limit token spent either');
});

test.run();

test('tx4: a pod\'s DF packet for the node\'s routing bigger than the underlay MTU gets fragmentation needed with that MTU (counted frag_needed), not handed to the kernel that would refuse it; without DF a counted drop; at the MTU it goes', () => {
  const h = makeHarness(RESOLVED);
  const a = h.port('caliA');
  // a_big_df to 8.8.8.8: outside the pools, so through tx4 (the node's routing)
  const df = frame('a_big_df');
  df.set([8, 8, 8, 8], 30);
  fixIpChecksum(df, 14);
  const total = u16(df, 16);
  assert.ok((df[20] & 0x40) !== 0, 'the fixture has DF');
  h.pipe.tx4Mtu = total - 100;
  h.receive(a, df.slice());
  const out = onlyFrame(h, a, 'frag needed (tx4)').bytes;
  assert.is(out[34], 3, 'destination unreachable');
  assert.is(out[35], 4, 'fragmentation needed');
  assert.is(u16(out, 40), total - 100, 'next-hop MTU: the underlay\'s');
  assert.is(u16(out, 14 + 10), ipHeaderChecksum(out, 14), 'header checksum');
  assert.is(onesSum(out, 34, u16(out, 16) - 20), 0xffff, 'icmp checksum');
  assertBytes(out.subarray(30, 34), df.subarray(26, 30), 'back to the pod that sent it');
  assertBytes(out.subarray(42, 42 + 20), df.subarray(14, 34), 'quoting the header as received');
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
  assert.is(h.pipe.counters[Event.EGRESS], 0);
  // without DF: fragmented for the underlay's MTU, the fragments handed to the kernel
  const nodf = df.slice();
  nodf[20] &= ~0x40;
  fixIpChecksum(nodf, 14);
  h.receive(a, nodf);
  const frags = h.io.take(h.infra.tx4);
  assert.is(frags.length, 2, 'no DF over the underlay MTU: two fragments');
  for (const f of frags) assert.ok(f.bytes.length <= total - 100);
  nothingSent(h, 'the fragments only');
  assert.is(h.pipe.counters[Reason.TOO_BIG_NO_DF], 0);
  assert.is(h.pipe.counters[Event.FRAGMENTED], 1);
  assert.is(h.pipe.counters[Event.EGRESS], 2);
  h.pipe.counters[Event.EGRESS] = 0;
  assert.is(h.pipe.counters[Event.ICMP_SENT], 1);
  // at the MTU exactly it goes to the kernel
  h.pipe.tx4Mtu = total;
  h.receive(a, df.slice());
  assert.is(onlyFrame(h, h.infra.tx4, 'fits').bytes.length, total);
  assert.is(h.pipe.counters[Event.EGRESS], 1);
  assert.is(h.pipe.counters[Reason.FRAG_NEEDED], 1);
});
