// ICMPv4 (RFC 792): header view, validation, and in-place builders for echo replies and errors.
//
//  | type | code | checksum | rest of header (4 bytes: echo id+seq, next-hop MTU, ...) | data

import { get16, get32, set16, set32 } from './bytes';
import { checksum, csumReplace16, fold16, sum16 } from './checksum';
import { Drop, DropReason } from './drop';
import { copyMac } from './ethernet';
import { ETH_HLEN } from './layout';
import { IPPROTO_ICMP, IPV4_HEADER_LEN, writeIpv4Header } from './ipv4';

export const ICMP_HEADER_LEN = 8;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETER_PROBLEM = 12;

// Destination unreachable codes (RFC 792, RFC 1191, RFC 1812).
export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROTO_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
export const ICMP_ADMIN_PROHIBITED = 13;
// Time exceeded codes.
export const ICMP_TTL_EXCEEDED = 0;
export const ICMP_REASSEMBLY_EXCEEDED = 1;

/** Bytes prepended in front of the offending IP header by buildIcmpErrorInPlace (IPv4 + ICMP). */
export const ICMP_ERROR_PREPEND = IPV4_HEADER_LEN + ICMP_HEADER_LEN; // 28

export function icmpType(b: Uint8Array, off: number): number {
  return b[off];
}
export function icmpCode(b: Uint8Array, off: number): number {
  return b[off + 1];
}
export function icmpChecksum(b: Uint8Array, off: number): number {
  return get16(b, off + 2);
}
/** Echo request/reply identifier. */
export function icmpEchoId(b: Uint8Array, off: number): number {
  return get16(b, off + 4);
}
/** Echo request/reply sequence number. */
export function icmpEchoSeq(b: Uint8Array, off: number): number {
  return get16(b, off + 6);
}
/** Next-hop MTU of a "fragmentation needed" message (RFC 1191 section 4: low 16 bits of word 2). */
export function icmpNextHopMtu(b: Uint8Array, off: number): number {
  return get16(b, off + 6);
}
/** The 4 "rest of header" bytes as a uint32. */
export function icmpRestOfHeader(b: Uint8Array, off: number): number {
  return get32(b, off + 4);
}
/** True for the error types that must never trigger another ICMP error (RFC 1812 4.3.2.7). */
export function icmpIsError(type: number): boolean {
  return type === ICMP_DEST_UNREACH || type === 4 /* source quench */ || type === ICMP_REDIRECT || type === ICMP_TIME_EXCEEDED || type === ICMP_PARAMETER_PROBLEM;
}

/** `len` = ICMP message length (IP payload). Checks size and the checksum over the whole message. */
export function validateIcmp(b: Uint8Array, off: number, len: number): DropReason {
  if (len < ICMP_HEADER_LEN) return Drop.TOO_SHORT;
  if (fold16(sum16(b, off, len, 0)) !== 0xffff) return Drop.BAD_L4_CHECKSUM;
  return Drop.OK;
}

/** Computes and stores the checksum of a `len`-byte ICMP message. */
export function icmpFillChecksum(b: Uint8Array, off: number, len: number): void {
  set16(b, off + 2, 0);
  set16(b, off + 2, checksum(b, off, len));
}

/**
 * RFC 1812 4.3.2.7: whether the validated IPv4 datagram at `ipOff` may be answered with an ICMP
 * error. Not for ICMP errors, non-first fragments, or unspecified/loopback/multicast/broadcast
 * sources (we cannot tell directed broadcasts here; the routing layer filters those).
 */
export function mayReplyWithIcmpError(b: Uint8Array, ipOff: number): boolean {
  if ((get16(b, ipOff + 6) & 0x1fff) !== 0) return false;
  const src0 = b[ipOff + 12];
  if (src0 === 0 || src0 === 127 || src0 >= 224) return false;
  if (b[ipOff + 9] === IPPROTO_ICMP) {
    const hlen = (b[ipOff] & 0x0f) << 2;
    if (get16(b, ipOff + 2) < hlen + 1) return false;
    if (icmpIsError(b[ipOff + hlen])) return false;
  }
  return true;
}

/**
 * Turns the Ethernet frame at `off` into an ICMP error about itself, in place, and returns the new
 * frame offset (off - 28). The frame must have passed Ethernet + IPv4 validation and have 28 bytes
 * of headroom. The result is: Ethernet (MACs swapped, so it goes back where it came from), IPv4
 * from `srcIp` to the offender's source, ICMP type/code/`rest`, then the offending IP header plus
 * the first 8 bytes of its payload (RFC 792; RFC 1191 puts the next-hop MTU in the low 16 bits of
 * `rest` for code 4). Those quoted bytes are already in place, so nothing of the payload is copied.
 * New frame length = 14 + ipv4TotalLength(b, newOff + 14).
 * TOS follows Linux icmp_send: the offender's TOS bits (mask 0x1e) | precedence 6 (0xc0).
 */
export function buildIcmpErrorInPlace(
  b: Uint8Array,
  off: number,
  type: number,
  code: number,
  rest: number,
  srcIp: number,
  ttl: number,
  id: number,
): number {
  const ip = off + ETH_HLEN;
  const hlen = (b[ip] & 0x0f) << 2;
  const total = (b[ip + 2] << 8) | b[ip + 3];
  const quote = total < hlen + 8 ? total : hlen + 8;
  const origSrc = get32(b, ip + 12);
  const tos = (b[ip + 1] & 0x1e) | 0xc0;
  const n = off - ICMP_ERROR_PREPEND;
  // Ethernet first: it reads the original MACs at [off, off+12) before the IP header below overwrites them.
  copyMac(b, n, b, off + 6);
  copyMac(b, n + 6, b, off);
  b[n + 12] = 0x08;
  b[n + 13] = 0x00;
  const icmp = ip - ICMP_HEADER_LEN;
  writeIpv4Header(b, icmp - IPV4_HEADER_LEN, tos, IPV4_HEADER_LEN + ICMP_HEADER_LEN + quote, id, 0, ttl, IPPROTO_ICMP, srcIp, origSrc);
  b[icmp] = type;
  b[icmp + 1] = code;
  b[icmp + 2] = 0;
  b[icmp + 3] = 0;
  set32(b, icmp + 4, rest);
  set16(b, icmp + 2, checksum(b, icmp, ICMP_HEADER_LEN + quote));
  return n;
}

/**
 * Turns a validated echo request (Ethernet frame at `off`) into the echo reply in place: swaps
 * MACs and addresses, sets type 0 and a fresh TTL. The swaps leave both checksums' sums unchanged;
 * the type and TTL changes are patched with RFC 1624. Frame length is unchanged.
 */
export function icmpEchoReplyInPlace(b: Uint8Array, off: number, ttl: number): void {
  const ip = off + ETH_HLEN;
  for (let i = 0; i < 6; i++) {
    const t = b[off + i];
    b[off + i] = b[off + 6 + i];
    b[off + 6 + i] = t;
  }
  for (let i = 12; i < 16; i++) {
    const t = b[ip + i];
    b[ip + i] = b[ip + i + 4];
    b[ip + i + 4] = t;
  }
  const oldTtlWord = get16(b, ip + 8);
  const newTtlWord = ((ttl & 0xff) << 8) | b[ip + 9];
  b[ip + 8] = ttl;
  set16(b, ip + 10, csumReplace16(get16(b, ip + 10), oldTtlWord, newTtlWord));
  const icmp = ip + ((b[ip] & 0x0f) << 2);
  const oldTypeWord = get16(b, icmp);
  b[icmp] = ICMP_ECHO_REPLY;
  set16(b, icmp + 2, csumReplace16(get16(b, icmp + 2), oldTypeWord, b[icmp + 1]));
}

export interface IcmpRepr {
  type: number;
  code: number;
  checksum: number;
  /** Rest of header as a uint32 (echo: id << 16 | seq; frag needed: next-hop MTU). */
  rest: number;
}

export function parseIcmpRepr(b: Uint8Array, off: number): IcmpRepr {
  return { type: icmpType(b, off), code: icmpCode(b, off), checksum: icmpChecksum(b, off), rest: icmpRestOfHeader(b, off) };
}

/** Writes type/code/rest, then the checksum over the `len`-byte message (payload must be in place). */
export function emitIcmp(b: Uint8Array, off: number, len: number, type: number, code: number, rest: number): void {
  b[off] = type;
  b[off + 1] = code;
  set32(b, off + 4, rest);
  icmpFillChecksum(b, off, len);
}
