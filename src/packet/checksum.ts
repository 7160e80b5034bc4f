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
