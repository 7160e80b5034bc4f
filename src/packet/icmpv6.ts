// ICMPv6 (RFC 4443): checksum over the IPv6 pseudo-header, validation, and the in-place error
// builder (time exceeded, packet too big, destination unreachable).
//
//  | type | code | checksum | 4 bytes (MTU, pointer, echo id+seq, NDP flags) | body ...

import { get16, set16, set32 } from './bytes';
import { finish16, fold16, sum16 } from './checksum';
import { Drop, DropReason } from './drop';
import { copyMac } from './ethernet';
import { ETH_HLEN } from './layout';
import { IPPROTO_ICMPV6, IPV6_DST, IPV6_HEADER_LEN, IPV6_SRC, ipv6PseudoHeaderSum, writeIpv6Fixed } from './ipv6';

export const ICMPV6_HEADER_LEN = 8;

export const ICMPV6_DEST_UNREACH = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_PARAM_PROBLEM = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_ROUTER_SOLICIT = 133;
export const ICMPV6_ROUTER_ADVERT = 134;
export const ICMPV6_NEIGHBOR_SOLICIT = 135;
export const ICMPV6_NEIGHBOR_ADVERT = 136;
export const ICMPV6_REDIRECT = 137;

// Destination unreachable codes.
export const ICMPV6_NO_ROUTE = 0;
export const ICMPV6_ADMIN_PROHIBITED = 1;
export const ICMPV6_ADDR_UNREACH = 3;
// Time exceeded codes.
export const ICMPV6_HOP_LIMIT_EXCEEDED = 0;

/** IPv6 minimum link MTU: an ICMPv6 error must fit in it (RFC 4443 section 2.4 (c)). */
export const IPV6_MIN_MTU = 1280;
/** Bytes prepended in front of the offending IPv6 header by buildIcmpv6ErrorInPlace (IPv6 + ICMPv6). */
export const ICMPV6_ERROR_PREPEND = IPV6_HEADER_LEN + ICMPV6_HEADER_LEN; // 48

/** Error messages have types 0-127 (RFC 4443 section 2.1). */
export function icmpv6IsError(type: number): boolean {
  return type < 128;
}

/** Checksum field value for the `len`-byte ICMPv6 message at `icmp` inside the IPv6 packet at `ip`
 * (field taken as zero). */
export function icmpv6ComputeChecksum(b: Uint8Array, ip: number, icmp: number, len: number): number {
  const s = sum16(b, icmp, len, ipv6PseudoHeaderSum(b, ip, IPPROTO_ICMPV6, len)) - get16(b, icmp + 2);
  return finish16(s);
}

export function icmpv6FillChecksum(b: Uint8Array, ip: number, icmp: number, len: number): void {
  set16(b, icmp + 2, 0);
  set16(b, icmp + 2, finish16(sum16(b, icmp, len, ipv6PseudoHeaderSum(b, ip, IPPROTO_ICMPV6, len))));
}

/** The `len`-byte ICMPv6 message at `icmp` (upper layer of the IPv6 packet at `ip`): size and checksum. */
export function validateIcmpv6(b: Uint8Array, ip: number, icmp: number, len: number): DropReason {
  if (len < ICMPV6_HEADER_LEN) return Drop.TOO_SHORT;
  if (fold16(sum16(b, icmp, len, ipv6PseudoHeaderSum(b, ip, IPPROTO_ICMPV6, len))) !== 0xffff) return Drop.BAD_L4_CHECKSUM;
  return Drop.OK;
}

/**
 * Turns the Ethernet frame at `off` (IPv6 at off + 14, validated) into an ICMPv6 error about
 * itself, in place, and returns the new frame offset (off - 48); 48 bytes of headroom needed.
 * Result: Ethernet with MACs swapped, IPv6 from `src` (16 bytes at srcBuf[srcOff]) to the
 * offender's source, hop limit `hopLimit`, ICMPv6 `type`/`code`/`word` (the MTU for packet too
 * big, the pointer for parameter problem), then as much of the offending packet as fits in 1280
 * bytes (RFC 4443 section 2.4 (c)); those bytes are already in place. New frame length =
 * 14 + 40 + ipv6PayloadLength(b, newOff + 14). Callers check mayReplyWithIcmpv6Error first.
 */
export function buildIcmpv6ErrorInPlace(
  b: Uint8Array,
  off: number,
  type: number,
  code: number,
  word: number,
  srcBuf: Uint8Array,
  srcOff: number,
  hopLimit: number,
): number {
  const ip = off + ETH_HLEN;
  const whole = IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]);
  const max = IPV6_MIN_MTU - ICMPV6_ERROR_PREPEND;
  const quote = whole < max ? whole : max;
  const n = off - ICMPV6_ERROR_PREPEND;
  // Ethernet first: it reads the original MACs, which the new IPv6 header then overwrites.
  copyMac(b, n, b, off + 6);
  copyMac(b, n + 6, b, off);
  b[n + 12] = 0x86;
  b[n + 13] = 0xdd;
  const nip = n + ETH_HLEN;
  const icmp = nip + IPV6_HEADER_LEN;
  const len = ICMPV6_HEADER_LEN + quote;
  writeIpv6Fixed(b, nip, 0, 0, len, IPPROTO_ICMPV6, hopLimit);
  for (let k = 0; k < 16; k++) {
    b[nip + IPV6_DST + k] = b[ip + IPV6_SRC + k];
    b[nip + IPV6_SRC + k] = srcBuf[srcOff + k];
  }
  b[icmp] = type;
  b[icmp + 1] = code;
  set32(b, icmp + 4, word);
  icmpv6FillChecksum(b, nip, icmp, len);
  return n;
}

/**
 * RFC 4443 section 2.4 (e): whether the IPv6 packet at `ip` may be answered with an ICMPv6
 * error. Not for ICMPv6 errors or redirects (`upper`/`l4` from ipv6WalkExtHeaders; pass -1 when
 * the chain was not walkable), multicast destinations (packet too big excepted; podway does not
 * route multicast anyway), or unspecified/multicast/loopback sources.
 */
export function mayReplyWithIcmpv6Error(b: Uint8Array, ip: number, upper: number, l4: number): boolean {
  const s = ip + IPV6_SRC;
  if (b[s] === 0xff) return false;
  let zero = true;
  for (let k = 0; k < 15; k++) if (b[s + k] !== 0) zero = false;
  if (zero && (b[s + 15] === 0 || b[s + 15] === 1)) return false;
  if (b[ip + IPV6_DST] === 0xff) return false;
  if (upper === IPPROTO_ICMPV6) {
    if (l4 < 0) return false;
    const end = ip + IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]);
    if (l4 >= end) return false;
    const t = b[l4];
    if (t < 128 || t === ICMPV6_REDIRECT) return false;
  }
  return true;
}

export interface Icmpv6Repr {
  type: number;
  code: number;
  checksum: number;
  /** The 4 bytes after the checksum as a uint32. */
  word: number;
}

export function parseIcmpv6Repr(b: Uint8Array, off: number): Icmpv6Repr {
  return { type: b[off], code: b[off + 1], checksum: get16(b, off + 2), word: ((b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7]) >>> 0 };
}
