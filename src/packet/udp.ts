// UDP header (RFC 768): src port, dst port, length (header + data), checksum.

import { get16, set16 } from './bytes';
import { fold16, ipv4PseudoHeaderSum, sum16 } from './checksum';
import { Drop, DropReason } from './drop';
import { IPPROTO_UDP } from './ipv4';

export const UDP_HEADER_LEN = 8;

export function udpSrcPort(b: Uint8Array, off: number): number {
  return get16(b, off);
}
export function udpDstPort(b: Uint8Array, off: number): number {
  return get16(b, off + 2);
}
export function udpLength(b: Uint8Array, off: number): number {
  return get16(b, off + 4);
}
export function udpChecksum(b: Uint8Array, off: number): number {
  return get16(b, off + 6);
}
export function setUdpSrcPort(b: Uint8Array, off: number, v: number): void {
  set16(b, off, v);
}
export function setUdpDstPort(b: Uint8Array, off: number, v: number): void {
  set16(b, off + 2, v);
}
export function setUdpLength(b: Uint8Array, off: number, v: number): void {
  set16(b, off + 4, v);
}
export function setUdpChecksum(b: Uint8Array, off: number, v: number): void {
  set16(b, off + 6, v);
}

/** `len` = bytes available for the datagram (the IP payload length). On OK, 8 <= udpLength <= len. */
export function validateUdp(b: Uint8Array, off: number, len: number): DropReason {
  if (len < UDP_HEADER_LEN) return Drop.TOO_SHORT;
  const ulen = get16(b, off + 4);
  if (ulen < UDP_HEADER_LEN || ulen > len) return Drop.BAD_UDP_LENGTH;
  return Drop.OK;
}

/**
 * Checksum over the IPv4 pseudo-header and the datagram (length from the UDP header, which must be
 * validated). A computed 0 is sent as 0xffff, since 0 means "no checksum" over IPv4 (RFC 768).
 */
export function udpComputeChecksum(b: Uint8Array, ipOff: number, udpOff: number): number {
  const ulen = get16(b, udpOff + 4);
  const s = sum16(b, udpOff, ulen, ipv4PseudoHeaderSum(b, ipOff, IPPROTO_UDP, ulen)) - get16(b, udpOff + 6);
  const c = ~fold16(s) & 0xffff;
  return c === 0 ? 0xffff : c;
}

export function udpFillChecksum(b: Uint8Array, ipOff: number, udpOff: number): void {
  set16(b, udpOff + 6, udpComputeChecksum(b, ipOff, udpOff));
}

/** True if the checksum is 0 (not computed by the sender, allowed over IPv4) or verifies. */
export function udpChecksumOk(b: Uint8Array, ipOff: number, udpOff: number): boolean {
  if (get16(b, udpOff + 6) === 0) return true;
  const ulen = get16(b, udpOff + 4);
  return fold16(sum16(b, udpOff, ulen, ipv4PseudoHeaderSum(b, ipOff, IPPROTO_UDP, ulen))) === 0xffff;
}

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  length: number;
  checksum: number;
}

export function parseUdpRepr(b: Uint8Array, off: number): UdpRepr {
  return { srcPort: udpSrcPort(b, off), dstPort: udpDstPort(b, off), length: udpLength(b, off), checksum: udpChecksum(b, off) };
}

/** Writes the header with checksum 0; call udpFillChecksum once the payload is in place. */
export function writeUdpHeader(b: Uint8Array, off: number, srcPort: number, dstPort: number, length: number): void {
  set16(b, off, srcPort);
  set16(b, off + 2, dstPort);
  set16(b, off + 4, length);
  set16(b, off + 6, 0);
}
