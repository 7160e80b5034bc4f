// Truncated and malformed frames: every validator returns a drop reason, never throws, never
// reads past `len`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../src/packet';
import { checkAll, fixture, loadFixtures } from './helpers';

const D = P.Drop;

test('drop reason names table', () => {
  assert.is(P.DROP_NAMES[D.OK], 'OK');
  assert.is(P.DROP_NAMES[D.BAD_CHECKSUM], 'BAD_CHECKSUM');
  assert.is(P.DROP_NAMES.length, P.DROP_REASON_COUNT);
  assert.ok(P.DROP_NAMES.every((n) => n.length > 0), 'reasons are dense 0..N-1');
});

test('every prefix truncation of every fixture: consistent reasons, no over-read', () => {
  for (const fx of loadFixtures()) {
    const frame = P.fromHex(fx.hex);
    for (let len = 0; len <= frame.length; len++) {
      const mismatch = checkAll(frame, len);
      if (mismatch) assert.unreachable(`${fx.name}: ${mismatch}`);
      if (P.ethType(frame, 0) !== P.ETHERTYPE_IPV4) continue;
      const r = P.validateEthIpv4(frame, 0, len);
      const ipEnd = 14 + P.ipv4TotalLength(frame, 14); // < frame.length when scapy added padding
      assert.is(r, len >= ipEnd ? D.OK : D.TOO_SHORT, `${fx.name} truncated to ${len}`);
    }
  }
});

test('IPv4 header faults give their reason', () => {
  const base = P.fromHex(fixture('udp_dns').hex);
  const ip = 14;
  const mutate = (f: (b: Uint8Array) => void, fixChecksum = true): Uint8Array => {
    const b = base.slice();
    f(b);
    if (fixChecksum) P.ipv4FillChecksum(b, ip);
    return b;
  };
  const cases: Array<[string, Uint8Array, number]> = [
    ['version 6', mutate((b) => (b[ip] = 0x65)), D.BAD_VERSION],
    ['version 0', mutate((b) => (b[ip] = 0x05)), D.BAD_VERSION],
    ['IHL 4', mutate((b) => (b[ip] = 0x44), false), D.BAD_IHL],
    ['IHL 0', mutate((b) => (b[ip] = 0x40), false), D.BAD_IHL],
    ['IHL 15 > total length', mutate((b) => { b[ip] = 0x4f; P.setIpv4TotalLength(b, ip, 40); }, false), D.BAD_IHL],
    ['IHL 15 > frame', mutate((b) => { b[ip] = 0x4f; P.setIpv4TotalLength(b, ip, 60); }, false), D.TOO_SHORT],
    ['IHL 15 > total length 57', mutate((b) => (b[ip] = 0x4f), false), D.BAD_IHL],
    ['total length 19', mutate((b) => P.setIpv4TotalLength(b, ip, 19)), D.BAD_TOTAL_LENGTH],
    ['total length 0', mutate((b) => P.setIpv4TotalLength(b, ip, 0)), D.BAD_TOTAL_LENGTH],
    ['total length beyond frame', mutate((b) => P.setIpv4TotalLength(b, ip, 58)), D.TOO_SHORT],
    ['bad checksum', mutate((b) => (b[ip + 11] ^= 1), false), D.BAD_CHECKSUM],
    ['flipped TTL, stale checksum', mutate((b) => (b[ip + 8] ^= 0x80), false), D.BAD_CHECKSUM],
    ['ethertype ARP', mutate((b) => (b[12] = 0x08, b[13] = 0x06)), D.BAD_ETHERTYPE],
  ];
  for (const [what, frame, reason] of cases) {
    assert.is(P.validateEthIpv4(frame, 0, frame.length), reason, `${what}: ${P.DROP_NAMES[P.validateEthIpv4(frame, 0, frame.length)]}`);
    const mismatch = checkAll(frame, frame.length);
    if (mismatch) assert.unreachable(`${what}: ${mismatch}`);
  }
  // Shorter total length than the frame (Ethernet padding) is fine.
  const padded = mutate((b) => P.setIpv4TotalLength(b, ip, 40));
  assert.is(P.validateEthIpv4(padded, 0, padded.length), D.OK);
});

test('UDP / TCP / ICMP / ARP faults', () => {
  const udp = P.fromHex(fixture('udp_dns').hex);
  const u = 34;
  const ipPayload = udp.length - 34;
  const set = (b: Uint8Array, o: number, v: number) => P.setUdpLength(b, o, v);
  let b = udp.slice();
  set(b, u, 7);
  assert.is(P.validateUdp(b, u, ipPayload), D.BAD_UDP_LENGTH);
  set(b, u, ipPayload + 1);
  assert.is(P.validateUdp(b, u, ipPayload), D.BAD_UDP_LENGTH);
  assert.is(P.validateUdp(b, u, 7), D.TOO_SHORT);
  b = udp.slice();
  b[u + 10] ^= 0xff;
  assert.not.ok(P.udpChecksumOk(b, 14, u), 'corrupted payload fails the UDP checksum');
  P.setUdpChecksum(b, u, 0);
  assert.ok(P.udpChecksumOk(b, 14, u), 'checksum 0 = none over IPv4');

  const tcp = P.fromHex(fixture('tcp_syn').hex);
  const t = tcp.slice();
  t[34 + 12] = 0x40; // data offset 4 words
  assert.is(P.validateTcp(t, 34, 40), D.BAD_TCP_OFFSET);
  t[34 + 12] = 0xf0; // 60 bytes > segment
  assert.is(P.validateTcp(t, 34, 40), D.BAD_TCP_OFFSET);
  assert.is(P.validateTcp(tcp, 34, 19), D.TOO_SHORT);

  const icmp = P.fromHex(fixture('icmp_echo_request').hex);
  icmp[34 + 20] ^= 1;
  assert.is(P.validateIcmp(icmp, 34, 64), D.BAD_L4_CHECKSUM);
  assert.is(P.validateIcmp(icmp, 34, 7), D.TOO_SHORT);

  const arp = P.fromHex(fixture('arp_request').hex);
  for (const [i, v] of [[15, 6], [16, 0x86], [18, 8], [19, 16], [21, 9]] as const) {
    const a = arp.slice();
    a[i] = v;
    assert.is(P.validateArp(a, 14, 28), D.BAD_ARP, `ARP byte ${i - 14} = ${v}`);
  }
  assert.is(P.validateArp(arp, 14, 27), D.TOO_SHORT);
});

test('tunnel faults: flags, fragments, checksums, lengths', () => {
  const vx = P.fromHex(fixture('vxlan').hex);
  const dec = (b: Uint8Array) => P.decapVxlan(b, 0, b.length, 4096, P.VXLAN_PORT);
  let b = vx.slice();
  b[42] = 0x00; // I flag cleared
  assert.is(dec(b), -D.BAD_VXLAN_FLAGS);
  b = vx.slice();
  b[42] = 0x88; // reserved bit set as well: ignored on receipt (RFC 7348)
  assert.ok(dec(b) > 0);
  b = vx.slice();
  P.setIpv4FlagsFragment(b, 14, P.IPV4_FLAG_MF, 0);
  P.ipv4FillChecksum(b, 14);
  assert.is(dec(b), -D.FRAGMENT);
  b = vx.slice();
  P.setUdpLength(b, 34, 29); // cannot hold VXLAN + inner Ethernet
  assert.is(dec(b), -D.TOO_SHORT);
  const vxc = P.fromHex(fixture('vxlan_udp_checksum').hex);
  vxc[120] ^= 0x40;
  assert.is(dec(vxc), -D.BAD_L4_CHECKSUM);

  const ipip = P.fromHex(fixture('ipip').hex);
  b = ipip.slice();
  b[34 + 8] ^= 1; // inner TTL without fixing the inner checksum
  assert.is(P.decapIpip(b, 0, b.length), -D.BAD_CHECKSUM);
  b = ipip.slice();
  P.setIpv4TotalLength(b, 14, 20 + 19); // inner datagram cut short by the outer length
  P.ipv4FillChecksum(b, 14);
  assert.is(P.decapIpip(b, 0, b.length), -D.TOO_SHORT);
  const frag = P.fromHex(fixture('ipv4_fragment_later').hex);
  assert.ok(P.ipv4IsFragment(frag, 14));
  assert.not.ok(P.mayReplyWithIcmpError(frag, 14), 'never an ICMP error about a non-first fragment');
});

test.run();
