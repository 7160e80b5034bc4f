// IPv6 header (RFC 8200) view over bytes at an offset, the bounded extension-header walk, the
// pseudo-header sum, and off-path text helpers.
//
//  0       4               12                              31
//  |version| traffic class |           flow label           |
//  |        payload length          | next header | hop limit|
//  |                source address (16 bytes)                 |
//  |             destination address (16 bytes)               |
//
// Addresses on the hot path are never materialised: they are compared and copied as four 32-bit
// words (get32) in place, the same words Fib6.lookup takes.

import { isIPv6 } from 'node:net';
import { get16, get32, set16 } from './bytes';
import { Drop, DropReason } from './drop';

export const IPV6_HEADER_LEN = 40;
export const IPV6_SRC = 8;
export const IPV6_DST = 24;

// Next header values (IANA protocol numbers).
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_TCP6 = 6;
export const IPPROTO_UDP6 = 17;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;
export const IPPROTO_MOBILITY = 135;
export const IPPROTO_HIP = 139;
export const IPPROTO_SHIM6 = 140;

/**
 * Most extension headers walked before the packet is dropped (EXT_CHAIN_TOO_LONG). RFC 8200
 * section 4.1 recommends at most one of each kind (two Destination Options), so a legitimate
 * chain has 7 at most; a longer one is an attack on walkers like this one (RFC 7112, RFC 9098).
 */
export const IPV6_MAX_EXT_HEADERS = 8;

export function ipv6Version(b: Uint8Array, off: number): number {
  return b[off] >>> 4;
}
export function ipv6TrafficClass(b: Uint8Array, off: number): number {
  return ((b[off] & 0x0f) << 4) | (b[off + 1] >>> 4);
}
export function ipv6FlowLabel(b: Uint8Array, off: number): number {
  return ((b[off + 1] & 0x0f) << 16) | (b[off + 2] << 8) | b[off + 3];
}
/** Bytes after the 40-byte fixed header (extension headers included). */
export function ipv6PayloadLength(b: Uint8Array, off: number): number {
  return get16(b, off + 4);
}
export function setIpv6PayloadLength(b: Uint8Array, off: number, v: number): void {
  set16(b, off + 4, v);
}
export function ipv6NextHeader(b: Uint8Array, off: number): number {
  return b[off + 6];
}
export function ipv6HopLimit(b: Uint8Array, off: number): number {
  return b[off + 7];
}
/** Word w (0..3) of the source address as uint32. */
export function ipv6SrcWord(b: Uint8Array, off: number, w: number): number {
  return get32(b, off + IPV6_SRC + 4 * w);
}
/** Word w (0..3) of the destination address as uint32. */
export function ipv6DstWord(b: Uint8Array, off: number, w: number): number {
  return get32(b, off + IPV6_DST + 4 * w);
}

/** Writes version 6, traffic class, flow label, payload length, next header, hop limit (addresses untouched). */
export function writeIpv6Fixed(b: Uint8Array, off: number, tc: number, flow: number, payloadLen: number, nextHeader: number, hopLimit: number): void {
  b[off] = 0x60 | ((tc >>> 4) & 0x0f);
  b[off + 1] = ((tc & 0x0f) << 4) | ((flow >>> 16) & 0x0f);
  b[off + 2] = flow >>> 8;
  b[off + 3] = flow;
  set16(b, off + 4, payloadLen);
  b[off + 6] = nextHeader;
  b[off + 7] = hopLimit;
}

/**
 * The fixed header at `off` with `len` bytes available: version 6 and a payload length that fits.
 * Bytes beyond 40 + payload length (Ethernet padding) are allowed and ignored, as by the kernel.
 */
export function validateIpv6(b: Uint8Array, off: number, len: number): DropReason {
  if (len < IPV6_HEADER_LEN) return Drop.TOO_SHORT;
  if (b[off] >>> 4 !== 6) return Drop.BAD_VERSION;
  // Payload length 0 with a Hop-by-Hop header is a jumbogram (RFC 2675): not on a 1500-byte link.
  if (IPV6_HEADER_LEN + get16(b, off + 4) > len) return Drop.BAD_TOTAL_LENGTH;
  return Drop.OK;
}

/** True for the next-header values the walk steps over (their length is in their second byte). */
export function isIpv6ExtHeader(nh: number): boolean {
  return (
    nh === IPPROTO_HOPOPTS || nh === IPPROTO_ROUTING || nh === IPPROTO_FRAGMENT || nh === IPPROTO_DSTOPTS ||
    nh === IPPROTO_AH || nh === IPPROTO_MOBILITY || nh === IPPROTO_HIP || nh === IPPROTO_SHIM6
  );
}

/**
 * Walks the extension-header chain of the validated IPv6 packet at `ip` (payload length taken
 * from its header) and stores the upper-layer protocol in out[0] and its offset in out[1]; out[2]
 * gets 1 when a Fragment header was crossed (a non-first fragment's out[1] points at data, not
 * at an upper-layer header: callers must not parse it, see out[3]), out[3] the fragment offset in
 * 8-byte units (0 when none). At most IPV6_MAX_EXT_HEADERS headers are walked (EXT_CHAIN_TOO_LONG);
 * a header that runs past the payload is BAD_EXT_HEADER. ESP (whose length is not readable) and
 * No Next Header end the walk like an upper-layer protocol.
 */
export function ipv6WalkExtHeaders(b: Uint8Array, ip: number, out: Int32Array): DropReason {
  const end = ip + IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]);
  let nh = b[ip + 6];
  let at = ip + IPV6_HEADER_LEN;
  out[2] = 0;
  out[3] = 0;
  for (let n = 0; isIpv6ExtHeader(nh); n++) {
    if (n === IPV6_MAX_EXT_HEADERS) return Drop.EXT_CHAIN_TOO_LONG;
    if (at + 8 > end) return Drop.BAD_EXT_HEADER;
    let hl: number;
    if (nh === IPPROTO_FRAGMENT) {
      hl = 8;
      out[2] = 1;
      out[3] = ((b[at + 2] << 8) | b[at + 3]) >>> 3;
    } else if (nh === IPPROTO_AH) {
      hl = (b[at + 1] + 2) << 2; // RFC 4302: in 4-byte units minus 2
    } else {
      hl = (b[at + 1] + 1) << 3; // RFC 8200: in 8-byte units, not counting the first 8
    }
    // Hop-by-Hop is allowed only right after the fixed header (RFC 8200 section 4.3).
    if (nh === IPPROTO_HOPOPTS && n !== 0) return Drop.BAD_EXT_HEADER;
    if (at + hl > end) return Drop.BAD_EXT_HEADER;
    nh = b[at];
    at += hl;
  }
  out[0] = nh;
  out[1] = at;
  return Drop.OK;
}

/** Unfolded sum of the IPv6 pseudo-header (RFC 8200 section 8.1): src, dst, upper-layer length, next header. */
export function ipv6PseudoHeaderSum(b: Uint8Array, ip: number, protocol: number, l4Len: number): number {
  let s = protocol + (l4Len >>> 16) + (l4Len & 0xffff);
  for (let k = ip + IPV6_SRC; k < ip + IPV6_DST + 16; k += 2) s += (b[k] << 8) | b[k + 1];
  return s;
}

// ---- address classes (first bytes of an address at `a`) ---------------------------------------

export function ipv6IsMulticast(b: Uint8Array, a: number): boolean {
  return b[a] === 0xff;
}
/** fe80::/10 */
export function ipv6IsLinkLocal(b: Uint8Array, a: number): boolean {
  return b[a] === 0xfe && (b[a + 1] & 0xc0) === 0x80;
}
/** :: */
export function ipv6IsUnspecified(b: Uint8Array, a: number): boolean {
  for (let k = 0; k < 16; k++) if (b[a + k] !== 0) return false;
  return true;
}
/** ::1 */
export function ipv6IsLoopback(b: Uint8Array, a: number): boolean {
  for (let k = 0; k < 15; k++) if (b[a + k] !== 0) return false;
  return b[a + 15] === 1;
}
/** ff02::1:ffXX:XXXX, the solicited-node group of an address (RFC 4291 section 2.7.1). */
export function ipv6IsSolicitedNodeOf(b: Uint8Array, group: number, target: number): boolean {
  const prefix = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];
  for (let k = 0; k < 13; k++) if (b[group + k] !== prefix[k]) return false;
  return b[group + 13] === b[target + 13] && b[group + 14] === b[target + 14] && b[group + 15] === b[target + 15];
}

/** Compares 16 bytes at b[a] with 16 bytes at c[d]. */
export function ipv6Equals(b: Uint8Array, a: number, c: Uint8Array, d: number): boolean {
  for (let k = 0; k < 16; k++) if (b[a + k] !== c[d + k]) return false;
  return true;
}

// ---- off the hot path -------------------------------------------------------------------------

/** The 16 bytes of an IPv6 address text (full or `::`-compressed); throws naming the text. */
export function parseIpv6Bytes(text: string): Uint8Array {
  const bad = (why: string): never => {
    throw new Error(`invalid IPv6 address "${text}": ${why}`);
  };
  const dbl = text.indexOf('::');
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) bad('"::" appears more than once');
  const groups = (s: string): number[] => {
    if (s === '') return [];
    return s.split(':').map((p) => {
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) bad(`group "${p}" is not 1-4 hex digits`);
      return parseInt(p, 16);
    });
  };
  let g: number[];
  if (dbl >= 0) {
    const head = groups(text.slice(0, dbl));
    const tail = groups(text.slice(dbl + 2));
    if (head.length + tail.length > 7) bad('too many groups around "::"');
    g = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    g = groups(text);
    if (g.length !== 8) bad(`expected 8 groups, found ${g.length}`);
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = g[i] >>> 8;
    out[2 * i + 1] = g[i] & 0xff;
  }
  return out;
}

/**
 * An IPv6 address text in its one RFC 5952 spelling (fd00:0::1 and FD00::1 are fd00::1), to
 * compare addresses or write them as IPAM and the endpoints do. A dotted IPv4 tail
 * (::ffff:10.0.0.1) is taken as its two groups (::ffff:a00:1). Throws on anything else invalid.
 */
export function canonicalIpv6(text: string): string {
  const m = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (m) {
    const o = m.slice(2).map(Number);
    if (o.some((x, i) => x > 255 || String(x) !== m[i + 2])) throw new Error(`invalid IPv6 address "${text}": bad IPv4 tail`);
    text = `${m[1]}${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  return formatIpv6(parseIpv6Bytes(text));
}

/** An address text to compare: IPv6 in its RFC 5952 spelling (an invalid one lower-cased), anything
 * else (IPv4) as given. Never throws. */
export function addressSpelling(addr: string): string {
  if (!isIPv6(addr)) return addr;
  try {
    return canonicalIpv6(addr);
  } catch {
    return addr.toLowerCase();
  }
}

/** RFC 5952 text of the 16 bytes at `off`. */
export function formatIpv6(b: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[off + 2 * i] << 8) | b[off + 2 * i + 1]);
  return formatIpv6Groups(g);
}

/**
 * RFC 5952 text of eight 16-bit groups: lower case, leading zeros dropped, the longest run (>= 2)
 * of zero groups as "::". Shared with lpm/cidr's word-based formatIp6 so both print alike.
 */
export function formatIpv6Groups(g: readonly number[]): string {
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: readonly number[]) => a.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

export interface Ipv6Repr {
  version: number;
  trafficClass: number;
  flowLabel: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  src: string;
  dst: string;
}

export function parseIpv6Repr(b: Uint8Array, off: number): Ipv6Repr {
  return {
    version: ipv6Version(b, off),
    trafficClass: ipv6TrafficClass(b, off),
    flowLabel: ipv6FlowLabel(b, off),
    payloadLength: ipv6PayloadLength(b, off),
    nextHeader: ipv6NextHeader(b, off),
    hopLimit: ipv6HopLimit(b, off),
    src: formatIpv6(b, off + IPV6_SRC),
    dst: formatIpv6(b, off + IPV6_DST),
  };
}

/** Writes the fixed header from a Repr (payload must follow); returns 40. */
export function emitIpv6(b: Uint8Array, off: number, r: Ipv6Repr): number {
  writeIpv6Fixed(b, off, r.trafficClass, r.flowLabel, r.payloadLength, r.nextHeader, r.hopLimit);
  b.set(parseIpv6Bytes(r.src), off + IPV6_SRC);
  b.set(parseIpv6Bytes(r.dst), off + IPV6_DST);
  return IPV6_HEADER_LEN;
}
