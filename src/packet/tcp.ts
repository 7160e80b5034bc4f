// TCP header (RFC 9293) accessors: enough for flow hashing, validation and checksums.

import { get16, get32, set16 } from './bytes';
import { fold16, ipv4PseudoHeaderSum, sum16 } from './checksum';
import { Drop, DropReason } from './drop';
import { IPPROTO_TCP } from './ipv4';

export const TCP_MIN_HEADER_LEN = 20;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export function tcpSrcPort(b: Uint8Array, off: number): number {
  return get16(b, off);
}
export function tcpDstPort(b: Uint8Array, off: number): number {
  return get16(b, off + 2);
}
export function tcpSeq(b: Uint8Array, off: number): number {
  return get32(b, off + 4);
}
export function tcpAck(b: Uint8Array, off: number): number {
  return get32(b, off + 8);
}
/** Header length in bytes (data offset * 4). */
export function tcpHeaderLength(b: Uint8Array, off: number): number {
  return (b[off + 12] >>> 4) << 2;
}
/** The 8 classic flag bits (TCP_* constants). */
export function tcpFlags(b: Uint8Array, off: number): number {
  return b[off + 13];
}
export function tcpWindow(b: Uint8Array, off: number): number {
  return get16(b, off + 14);
}
export function tcpChecksum(b: Uint8Array, off: number): number {
  return get16(b, off + 16);
}
export function tcpUrgentPointer(b: Uint8Array, off: number): number {
  return get16(b, off + 18);
}

/** `len` = segment length (IP payload). On OK, 20 <= header length <= len. */
export function validateTcp(b: Uint8Array, off: number, len: number): DropReason {
  if (len < TCP_MIN_HEADER_LEN) return Drop.TOO_SHORT;
  const hlen = (b[off + 12] >>> 4) << 2;
  if (hlen < TCP_MIN_HEADER_LEN || hlen > len) return Drop.BAD_TCP_OFFSET;
  return Drop.OK;
}

/** Checksum of a `len`-byte segment with the IPv4 pseudo-header, as if the field were zero. */
export function tcpComputeChecksum(b: Uint8Array, ipOff: number, tcpOff: number, len: number): number {
  const s = sum16(b, tcpOff, len, ipv4PseudoHeaderSum(b, ipOff, IPPROTO_TCP, len)) - get16(b, tcpOff + 16);
  return ~fold16(s) & 0xffff;
}

export function tcpFillChecksum(b: Uint8Array, ipOff: number, tcpOff: number, len: number): void {
  set16(b, tcpOff + 16, tcpComputeChecksum(b, ipOff, tcpOff, len));
}

export function tcpChecksumOk(b: Uint8Array, ipOff: number, tcpOff: number, len: number): boolean {
  return fold16(sum16(b, tcpOff, len, ipv4PseudoHeaderSum(b, ipOff, IPPROTO_TCP, len))) === 0xffff;
}

export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  headerLength: number;
  flags: number;
  window: number;
  checksum: number;
  urgentPointer: number;
}

export function parseTcpRepr(b: Uint8Array, off: number): TcpRepr {
  return {
    srcPort: tcpSrcPort(b, off),
    dstPort: tcpDstPort(b, off),
    seq: tcpSeq(b, off),
    ack: tcpAck(b, off),
    headerLength: tcpHeaderLength(b, off),
    flags: tcpFlags(b, off),
    window: tcpWindow(b, off),
    checksum: tcpChecksum(b, off),
    urgentPointer: tcpUrgentPointer(b, off),
  };
}
