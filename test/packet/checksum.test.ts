// RFC 1071 / RFC 1624 checksums, in-place header rewrites, and the VXLAN source-port hash.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../src/packet';
import { fixture, prng } from './helpers';

function randomHeader(rnd: () => number, b: Uint8Array, off: number): void {
  const ihl = 5 + ((rnd() * 11) | 0);
  for (let i = 0; i < ihl * 4; i++) b[off + i] = (rnd() * 256) | 0;
  b[off] = 0x40 | ihl;
  if (rnd() < 0.1) b[off + 8] = 1 + ((rnd() * 2) | 0); // TTLs near the wrap
  if (rnd() < 0.05) b.fill(0xff, off + 1, off + ihl * 4); // sums near 0xffff
  P.ipv4FillChecksum(b, off);
}

test('RFC 1624 section 4 example: eqn. 3 gives 0x0000 where eqn. 2 gave 0xffff', () => {
  assert.is(P.csumReplace16(0xdd2f, 0x5555, 0x3285), 0x0000);
});

test('incremental updates equal full recomputation (200k random headers)', () => {
  const rnd = prng(1624);
  const b = new Uint8Array(128);
  const off = 8;
  for (let n = 0; n < 200_000; n++) {
    randomHeader(rnd, b, off);
    assert.ok(P.ipv4ChecksumOk(b, off));
    switch (n % 4) {
      case 0: {
        const ttl = P.ipv4Ttl(b, off);
        assert.is(P.ipv4DecrementTtl(b, off), (ttl - 1) & 0xff);
        break;
      }
      case 1:
        P.ipv4SetSrcIncremental(b, off, (rnd() * 4294967296) >>> 0);
        break;
      case 2:
        P.ipv4SetDstIncremental(b, off, rnd() < 0.1 ? 0 : (rnd() * 4294967296) >>> 0);
        break;
      default: {
        // Any 16-bit word but version/IHL (it sets how many words are summed) and the checksum.
        let w = 1 + ((rnd() * (P.ipv4HeaderLength(b, off) / 2 - 1)) | 0);
        if (w === 5) w = 4;
        const old = (b[off + 2 * w] << 8) | b[off + 2 * w + 1];
        const nu = rnd() < 0.1 ? 0 : (rnd() * 65536) | 0;
        P.setIpv4Checksum(b, off, P.csumReplace16(P.ipv4Checksum(b, off), old, nu));
        b[off + 2 * w] = nu >>> 8;
        b[off + 2 * w + 1] = nu;
      }
    }
    const incremental = P.ipv4Checksum(b, off);
    const full = P.ipv4ComputeChecksum(b, off);
    if (incremental !== full) assert.unreachable(`case ${n}: incremental ${incremental.toString(16)} != full ${full.toString(16)} for ${P.toHex(b, off, P.ipv4HeaderLength(b, off))}`);
  }
});

test('TTL decrement on a real frame keeps it valid', () => {
  const b = P.fromHex(fixture('icmp_echo_request').hex);
  for (let ttl = 64; ttl > 0; ttl--) {
    assert.is(P.ipv4DecrementTtl(b, 14), ttl - 1);
    assert.is(P.validateEthIpv4(b, 0, b.length), P.Drop.OK);
  }
});

test('encapVxlan outer checksum equals a full recomputation for any length and id', () => {
  const rnd = prng(7348);
  const pool = new Uint8Array(P.SLOT_SIZE);
  for (let n = 0; n < 20_000; n++) {
    const tpl = P.buildVxlanTemplate({
      outerDstMac: P.parseMac('02:00:00:00:00:02'),
      outerSrcMac: P.parseMac('02:00:00:00:00:01'),
      srcIp: (rnd() * 4294967296) >>> 0,
      dstIp: (rnd() * 4294967296) >>> 0,
      vni: (rnd() * 0x1000000) | 0,
      ttl: (rnd() * 256) | 0,
      tos: (rnd() * 256) | 0,
      dontFragment: rnd() < 0.5,
      innerDstMac: P.parseMac('66:00:00:00:00:02'),
      innerSrcMac: P.parseMac('66:00:00:00:00:01'),
    });
    const len = 14 + ((rnd() * (P.MAX_FRAME_LEN - 64)) | 0);
    const o = P.encapVxlan(pool, P.HEADROOM, len, tpl, 32768 + ((rnd() * 28231) | 0), (rnd() * 65536) | 0);
    const ip = o + 14;
    assert.is(P.ipv4TotalLength(pool, ip), len + 36);
    assert.is(P.udpLength(pool, ip + 20), len + 16);
    if (P.ipv4Checksum(pool, ip) !== P.ipv4ComputeChecksum(pool, ip)) assert.unreachable(`case ${n}: outer checksum`);
  }
});

test('jhash3 matches a reference transcription of lookup3 (Linux jhash_3words)', () => {
  // Values from an independent Python transcription of include/linux/jhash.h.
  assert.is(P.jhash3(0, 0, 0, 0), 0x1b68e557);
  assert.is(P.jhash3(1, 2, 3, 4), 0x8103143f);
  assert.is(P.jhash3(0xc0a80a0c, (0xc0a80a0b ^ 6) >>> 0, 0x0050a8ca, 0x12345678), 0x122ac781);
  assert.is(P.jhash3(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff), 0xc343af0b);
});

test('vxlanSourcePort equals the u64 multiply-shift done with BigInt', () => {
  const rnd = prng(32768);
  const ref = (hash: number, min: number, max: number): number => {
    const h = BigInt((hash ^ (hash << 16)) >>> 0);
    return Number((h * BigInt(max - min)) >> 32n) + min;
  };
  const edge = [0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffeffff, 0xffff0000, 0xffffffff];
  for (const h of edge) assert.is(P.vxlanSourcePort(h), ref(h, 32768, 60999), `hash ${h}`);
  for (let n = 0; n < 200_000; n++) {
    const h = (rnd() * 4294967296) >>> 0;
    const p = P.vxlanSourcePort(h);
    if (p !== ref(h, 32768, 60999) || p < 32768 || p >= 60999) assert.unreachable(`hash ${h}: ${p}`);
    const min = (rnd() * 30000) | 0;
    const max = min + 1 + ((rnd() * 35000) | 0);
    if (P.vxlanSourcePort(h, min, max) !== ref(h, min, max)) assert.unreachable(`hash ${h} range ${min}-${max}`);
  }
});

test('innerFlowHash: symmetric per flow, port-sensitive, never 0, ignores TTL', () => {
  const b = P.fromHex(fixture('tcp_syn').hex);
  const h = P.innerFlowHash(b, 0, b.length, 42);
  assert.is.not(h, 0);
  const rev = b.slice();
  rev.set(b.subarray(30, 34), 26); // swap addresses
  rev.set(b.subarray(26, 30), 30);
  rev.set(b.subarray(36, 38), 34); // swap ports
  rev.set(b.subarray(34, 36), 36);
  assert.is(P.innerFlowHash(rev, 0, rev.length, 42), h);
  const otherPort = b.slice();
  otherPort[35] ^= 1;
  assert.is.not(P.innerFlowHash(otherPort, 0, b.length, 42), h);
  const ttl = b.slice();
  ttl[22] = 1;
  assert.is(P.innerFlowHash(ttl, 0, b.length, 42), h);
  assert.is.not(P.innerFlowHash(b, 0, b.length, 43), h, 'seeded');
  const arp = P.fromHex(fixture('arp_request').hex);
  assert.is.not(P.innerFlowHash(arp, 0, arp.length, 42), 0);
});

test('layout: headroom covers every prepend, frames stay even-aligned', () => {
  assert.is(P.SLOT_SIZE, 2048);
  assert.is(P.HEADROOM, 128);
  assert.is(P.VXLAN_OVERHEAD, 50);
  assert.ok(P.HEADROOM >= P.VXLAN_OVERHEAD && P.HEADROOM >= P.ICMP_ERROR_PREPEND + P.ETH_HLEN);
  assert.is(P.slotFrameOffset(3), 3 * 2048 + 128);
  assert.is(P.headroomOf(P.slotFrameOffset(3) - 50), 78);
});

test('MAC helpers', () => {
  const m = P.parseMac('EE:ee:ee:ee:ee:ee');
  assert.is(P.formatMac(m), 'ee:ee:ee:ee:ee:ee');
  assert.throws(() => P.parseMac('ee:ee:ee:ee:ee'));
  assert.throws(() => P.parseIpv4('1.2.3.256'));
  const b = new Uint8Array(20);
  P.copyMac(b, 3, m, 0);
  assert.ok(P.macEquals(b, 3, m, 0));
  assert.not.ok(P.macEquals(b, 2, m, 0));
  assert.ok(P.isBroadcastMac(P.parseMac('ff:ff:ff:ff:ff:ff'), 0));
  assert.ok(P.isMulticastMac(P.parseMac('01:00:5e:00:00:01'), 0));
  assert.not.ok(P.isMulticastMac(m, 0));
  const e = P.fromHex(fixture('udp_dns').hex);
  const src = P.formatMac(e, 6);
  P.swapEthMacs(e, 0);
  assert.is(P.formatMac(e, 0), src);
  assert.is(P.parseIpv4('255.255.255.255'), 0xffffffff);
  assert.is(P.formatIpv4(0xc0a80a0b), '192.168.10.11');
});

test.run();
