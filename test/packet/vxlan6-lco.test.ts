// encapVxlan6's outer UDP checksum via Local Checksum Offload (lcoFrameSum) equals the checksum
// summed over the whole datagram, byte for byte, over random inner frames; frames LCO cannot
// handle take the full sum and are still right.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../src/packet';
import { prng } from './helpers';

const TPL = P.buildVxlan6Template({
  srcIp: P.parseIpv6Bytes('fd00:10::1'),
  dstIp: P.parseIpv6Bytes('fd00:10::2'),
  vni: 4096,
  innerDstMac: new Uint8Array([0x66, 0x1, 0x2, 0x3, 0x4, 0x5]),
  innerSrcMac: new Uint8Array([0x66, 0x9, 0x8, 0x7, 0x6, 0x5]),
});
const OFF = 128; // the inner frame's start: headroom for the 56 outer bytes

/** Unfolded RFC 1071 sum written here from scratch (independent of src/packet). */
function refSum(b: Uint8Array, off: number, len: number, s: number): number {
  for (let k = 0; k + 1 < len; k += 2) s += b[off + k] * 256 + b[off + k + 1];
  if (len % 2 === 1) s += b[off + len - 1] * 256;
  return s;
}
function refFold(s: number): number {
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** The outer UDP checksum of the datagram at `o` (outer IPv6 header), summed over every byte. */
function fullOuterChecksum(b: Uint8Array, o: number): number {
  const ulen = b[o + 44] * 256 + b[o + 45];
  let s = refSum(b, o + 8, 32, 17 + ulen);
  s = refSum(b, o + 40, 6, s); // the UDP header without its checksum field
  s = refSum(b, o + 48, ulen - 8, s);
  const c = 0xffff - refFold(s);
  return c === 0 ? 0xffff : c;
}

interface Built { len: number; l4: number; l4len: number; at: number; lco: boolean }

/**
 * A random inner Ethernet frame at OFF: IPv4 (options, DF) or IPv6, TCP/UDP/ICMP(v6) with a
 * valid L4 checksum, payloads of any length (odd too); sometimes a checksum that is 0xffff (a
 * computed zero) or 0 (TCP/ICMP: valid but refused by LCO).
 */
function buildInner(rnd: () => number, b: Uint8Array): Built {
  const v6 = rnd() < 0.5;
  const kind = (rnd() * 3) | 0;
  const proto = kind === 0 ? 6 : kind === 1 ? 17 : v6 ? 58 : 1;
  const at = proto === 6 ? 16 : proto === 17 ? 6 : 2;
  const hdr = proto === 6 ? 20 + 4 * ((rnd() * 11) | 0) : proto === 17 ? 8 : 8;
  const payload = rnd() < 0.3 ? (rnd() * 8) | 0 : (rnd() * 1380) | 0;
  const l4len = hdr + payload;
  for (let k = 0; k < 14; k++) b[OFF + k] = (rnd() * 256) | 0;
  const ip = OFF + 14;
  let l4: number;
  if (v6) {
    b[OFF + 12] = 0x86; b[OFF + 13] = 0xdd;
    for (let k = 0; k < 40; k++) b[ip + k] = (rnd() * 256) | 0;
    b[ip] = 0x60 | (b[ip] & 0x0f);
    b[ip + 4] = l4len >> 8; b[ip + 5] = l4len & 255;
    b[ip + 6] = proto;
    l4 = ip + 40;
  } else {
    b[OFF + 12] = 0x08; b[OFF + 13] = 0x00;
    const ihl = 5 + ((rnd() * 11) | 0);
    for (let k = 0; k < ihl * 4; k++) b[ip + k] = (rnd() * 256) | 0;
    const total = ihl * 4 + l4len;
    b[ip] = 0x40 | ihl;
    b[ip + 2] = total >> 8; b[ip + 3] = total & 255;
    b[ip + 6] = rnd() < 0.5 ? 0x40 : 0; b[ip + 7] = 0; // DF or nothing: not a fragment
    b[ip + 9] = proto;
    P.ipv4FillChecksum(b, ip);
    l4 = ip + ihl * 4;
  }
  for (let k = 0; k < l4len; k++) b[l4 + k] = (rnd() * 256) | 0;
  if (rnd() < 0.05) b.fill(0xff, l4, l4 + l4len); // sums near 0xffff
  const pseudo = (): number => {
    if (proto === 1) return 0;
    if (v6) return refSum(b, ip + 8, 32, proto + l4len);
    return refSum(b, ip + 12, 8, proto + l4len);
  };
  b[l4 + at] = 0; b[l4 + at + 1] = 0;
  let f = refFold(refSum(b, l4, l4len, pseudo()));
  const forceZero = rnd() < 0.15 && l4len >= at + 4;
  if (forceZero && f !== 0xffff) {
    // Add 0xffff - f (one's complement) to the word after the checksum field: the sum becomes
    // -0, so the computed checksum is 0.
    const w = l4 + at + 2;
    const nw = refFold(b[w] * 256 + b[w + 1] + 0xffff - f);
    b[w] = nw >> 8; b[w + 1] = nw & 255;
    f = refFold(refSum(b, l4, l4len, pseudo()));
    assert.is(f, 0xffff);
  }
  let c = 0xffff - f;
  let lco = true;
  if (c === 0) {
    // UDP sends a computed zero as ffff; TCP and ICMP may carry either 0 or ffff (both -0).
    if (proto === 17 || rnd() < 0.5) c = 0xffff;
    else lco = false;
  }
  b[l4 + at] = c >> 8; b[l4 + at + 1] = c & 255;
  assert.is(refFold(refSum(b, l4, l4len, pseudo())), 0xffff, 'the inner checksum is valid');
  return { len: l4 - OFF + l4len, l4, l4len, at, lco };
}

/** Encapsulates and checks the outer checksum against the full sum and decapsulation. */
function encapAndCheck(b: Uint8Array, len: number, srcPort: number, what: string): void {
  const o = P.encapVxlan6(b, OFF, len, TPL, srcPort);
  assert.is(o, OFF - 56);
  const got = b[o + 46] * 256 + b[o + 47];
  assert.is(got, fullOuterChecksum(b, o), `${what}: outer checksum`);
  assert.is(P.decapVxlan6Packet(b, o, len + 56, 4096), OFF, `${what}: decap accepts it`);
}

test('LCO outer checksum equals the full sum over 100k random inner frames (v4/v6, TCP/UDP/ICMP)', () => {
  const rnd = prng(0x1c0);
  const b = new Uint8Array(OFF + 14 + 60 + 1500);
  let lcoTaken = 0;
  let ffff = 0;
  let odd = 0;
  for (let n = 0; n < 100_000; n++) {
    const f = buildInner(rnd, b);
    const c = b[f.l4 + f.at] * 256 + b[f.l4 + f.at + 1];
    if (c === 0xffff) ffff++;
    if (f.l4len % 2 === 1) odd++;
    const lco = P.lcoFrameSum(b, OFF, f.len);
    assert.is(lco >= 0, f.lco, `frame ${n}: LCO applies`);
    if (lco >= 0) {
      lcoTaken++;
      assert.is(refFold(lco) % 0xffff, refFold(refSum(b, OFF, f.len, 0)) % 0xffff, `frame ${n}: frame sum`);
    }
    encapAndCheck(b, f.len, (rnd() * 65536) | 0, `frame ${n}`);
  }
  assert.ok(lcoTaken > 90_000, `LCO taken ${lcoTaken}`);
  assert.ok(ffff > 1000, `inner checksums 0xffff: ${ffff}`);
  assert.ok(odd > 30_000, `odd segments: ${odd}`);
});

test('frames LCO refuses take the full sum: fragments, extension headers, no UDP checksum, padding, other protocols', () => {
  const rnd = prng(6936);
  const b = new Uint8Array(OFF + 14 + 60 + 1500);
  const cases: Array<[string, (f: Built) => number]> = [
    ['IPv4 more fragments', (f) => { if (b[OFF + 12] !== 0x08) return -1; b[OFF + 14 + 6] |= 0x20; return f.len; }],
    ['IPv4 fragment offset', (f) => { if (b[OFF + 12] !== 0x08) return -1; b[OFF + 14 + 7] = 0x10; return f.len; }],
    ['IPv6 hop-by-hop header first', (f) => { if (b[OFF + 12] !== 0x86) return -1; b[OFF + 14 + 6] = 0; return f.len; }],
    ['UDP without checksum', (f) => { if (f.at !== 6) return -1; b[f.l4 + 6] = 0; b[f.l4 + 7] = 0; return f.len; }],
    ['Ethernet padding after the IP packet', (f) => { b[OFF + f.len] = 0xab; b[OFF + f.len + 1] = 0xcd; return f.len + 2 + (f.len & 1); }],
    ['another protocol (GRE)', (f) => { if (b[OFF + 12] === 0x08) { b[OFF + 14 + 9] = 47; P.ipv4FillChecksum(b, OFF + 14); } else b[OFF + 14 + 6] = 47; return f.len; }],
    ['a VLAN tag in place of the ethertype', (f) => { b[OFF + 12] = 0x81; b[OFF + 13] = 0x00; return f.len; }],
    ['a segment too short for its checksum field', (f) => {
      if (f.at !== 16 || b[OFF + 12] !== 0x86) return -1;
      b[OFF + 14 + 4] = 0; b[OFF + 14 + 5] = 10; return 14 + 40 + 10;
    }],
  ];
  for (const [what, mutate] of cases) {
    let tried = 0;
    for (let n = 0; n < 4000 && tried < 300; n++) {
      const f = buildInner(rnd, b);
      const len = mutate(f);
      if (len < 0) continue;
      tried++;
      assert.is(P.lcoFrameSum(b, OFF, len), -1, `${what}: refused`);
      encapAndCheck(b, len, 4789 + n, what);
    }
    assert.ok(tried >= 100, `${what}: ${tried} frames`);
  }
});

test.run();
