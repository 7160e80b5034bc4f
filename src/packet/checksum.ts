// Internet checksum (RFC 1071) and incremental update (RFC 1624).
//
// Sums are kept as plain (unfolded) non-negative integers: 16-bit words added up stay well below
// 2^32 for anything that fits in a 64 KiB IP datagram, so we fold only once at the end.

import { get16 } from './bytes';

/** Adds the 16-bit big-endian words of `len` bytes at `off` to `initial` (an odd trailing byte
 * is padded with a zero byte, RFC 1071 section 4.1). Returns the unfolded sum. */
export function sum16(b: Uint8Array, off: number, len: number, initial: number): number {
  let s = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if ((len & 1) !== 0) s += b[end] << 8;
  return s;
}

/** Folds an unfolded sum (< 2^32) into 16 bits with end-around carry. */
export function fold16(s: number): number {
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}

/** The checksum field value for an unfolded sum: one's complement of the folded sum. */
export function finish16(s: number): number {
  return ~fold16(s) & 0xffff;
}

/** Full checksum of `len` bytes (checksum field must be zero, or subtract it from the sum). */
export function checksum(b: Uint8Array, off: number, len: number): number {
  return finish16(sum16(b, off, len, 0));
}

/**
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit word m changed to m'.
 * Unlike eqn. 2 of RFC 1141 this never produces 0xffff (-0), so the result equals what a full
 * recomputation gives for any header that is not all zeros.
 */
export function csumReplace16(check: number, oldWord: number, newWord: number): number {
  let s = (~check & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** RFC 1624 eqn. 3 for a 32-bit field (e.g. an IPv4 address) changed from `oldValue` to `newValue`. */
export function csumReplace32(check: number, oldValue: number, newValue: number): number {
  let s =
    (~check & 0xffff) +
    (~(oldValue >>> 16) & 0xffff) +
    (~oldValue & 0xffff) +
    (newValue >>> 16) +
    (newValue & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Unfolded sum of the IPv4 pseudo-header (RFC 768 / RFC 793): src, dst, zero+protocol, L4 length.
 * Reads src/dst straight from the IPv4 header at `ipOff`. */
export function ipv4PseudoHeaderSum(b: Uint8Array, ipOff: number, protocol: number, l4Len: number): number {
  return get16(b, ipOff + 12) + get16(b, ipOff + 14) + get16(b, ipOff + 16) + get16(b, ipOff + 18) + protocol + l4Len;
}

/**
 * Local Checksum Offload (Linux's lco_csum, Documentation/networking/checksum-offloads.rst): an
 * unfolded sum congruent (mod 0xffff) to sum16 over the whole Ethernet frame at [eth, eth+len),
 * found without reading its L4 payload, or -1 where that is not possible.
 *
 * A valid L4 checksum makes pseudo-header + segment sum to -0, so the segment alone sums to
 * ~pseudo: the frame's sum is then its Ethernet and IP headers plus ~fold(pseudo). IPv4 ICMP has
 * no pseudo-header; its valid message sums to -0 on its own (adds 0). The segment starts at an
 * even offset (IP headers are even-length), so the word alignment matches the full sum's.
 *
 * Taken only for inner IPv4 TCP/UDP/ICMP (not a fragment) and inner IPv6 TCP/UDP/ICMPv6 directly
 * after the fixed header, with a nonzero checksum field, the IP length filling the frame exactly
 * (no Ethernet padding) and the segment long enough to hold that field. The checksum is trusted
 * as the sender's: a wrong inner checksum yields a wrong outer one, so the receiver drops the
 * tunnel packet rather than the inner stack dropping the inner one (dropped either way).
 * Offloaded (partial) checksums must be completed before this is called.
 */
export function lcoFrameSum(b: Uint8Array, eth: number, len: number): number {
  if (len < 14 + 20) return -1;
  const type = (b[eth + 12] << 8) | b[eth + 13];
  const ip = eth + 14;
  let pseudo: number;
  let l4: number;
  let proto: number;
  if (type === 0x0800) {
    const ihl = (b[ip] & 0x0f) << 2;
    const total = (b[ip + 2] << 8) | b[ip + 3];
    if (b[ip] >>> 4 !== 4 || ihl < 20 || total < ihl || 14 + total !== len) return -1;
    if ((((b[ip + 6] << 8) | b[ip + 7]) & 0x3fff) !== 0) return -1; // MF or a fragment offset
    proto = b[ip + 9];
    l4 = ip + ihl;
    const l4len = total - ihl;
    pseudo = proto === 1 ? 0 : ipv4PseudoHeaderSum(b, ip, proto, l4len);
    if (!lcoChecksumPresent(b, l4, l4len, proto, proto === 1)) return -1;
  } else if (type === 0x86dd) {
    if (len < 14 + 40 || b[ip] >>> 4 !== 6) return -1;
    const plen = (b[ip + 4] << 8) | b[ip + 5];
    if (14 + 40 + plen !== len) return -1; // also refuses jumbograms (payload length 0)
    proto = b[ip + 6];
    l4 = ip + 40;
    pseudo = sum16(b, ip + 8, 32, proto + plen);
    if (!lcoChecksumPresent(b, l4, plen, proto, proto === 58)) return -1;
  } else {
    return -1;
  }
  return sum16(b, eth, l4 - eth, ~fold16(pseudo) & 0xffff);
}

/** The segment's protocol is one LCO handles (TCP, UDP, or ICMP/ICMPv6 when `icmp`), it holds its
 * checksum field, and that field is nonzero (zero: UDP without a checksum, or not filled in). */
function lcoChecksumPresent(b: Uint8Array, l4: number, l4len: number, proto: number, icmp: boolean): boolean {
  const at = proto === 6 ? 16 : proto === 17 ? 6 : icmp ? 2 : -1;
  if (at < 0 || l4len < at + 2) return false;
  return (b[l4 + at] | b[l4 + at + 1]) !== 0;
}
