// Ethernet II header (IEEE 802.3 with ethertype): dst MAC (6), src MAC (6), ethertype (2).
// MACs on the hot path are never materialised: they are compared and copied as 6 bytes in place.

import { get16, set16 } from './bytes';
import { Drop, DropReason } from './drop';

export const ETH_HEADER_LEN = 14;
export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;

export function ethType(b: Uint8Array, off: number): number {
  return get16(b, off + ETH_TYPE);
}
export function setEthType(b: Uint8Array, off: number, type: number): void {
  set16(b, off + ETH_TYPE, type);
}

/** TOO_SHORT unless `len` covers the 14-byte header. */
export function validateEthernet(_b: Uint8Array, _off: number, len: number): DropReason {
  return len < ETH_HEADER_LEN ? Drop.TOO_SHORT : Drop.OK;
}

/** Copies the 6-byte MAC at src[srcOff] to dst[dstOff]. */
export function copyMac(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number): void {
  dst[dstOff] = src[srcOff];
  dst[dstOff + 1] = src[srcOff + 1];
  dst[dstOff + 2] = src[srcOff + 2];
  dst[dstOff + 3] = src[srcOff + 3];
  dst[dstOff + 4] = src[srcOff + 4];
  dst[dstOff + 5] = src[srcOff + 5];
}

export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  return (
    a[aOff] === b[bOff] &&
    a[aOff + 1] === b[bOff + 1] &&
    a[aOff + 2] === b[bOff + 2] &&
    a[aOff + 3] === b[bOff + 3] &&
    a[aOff + 4] === b[bOff + 4] &&
    a[aOff + 5] === b[bOff + 5]
  );
}

/** Group bit (I/G, least significant bit of the first octet): multicast or broadcast. */
export function isMulticastMac(b: Uint8Array, off: number): boolean {
  return (b[off] & 1) !== 0;
}

export function isBroadcastMac(b: Uint8Array, off: number): boolean {
  return (b[off] & b[off + 1] & b[off + 2] & b[off + 3] & b[off + 4] & b[off + 5]) === 0xff;
}

/** Writes a whole Ethernet header; MACs are 6 bytes at dstMac[dstMacOff] / srcMac[srcMacOff]. */
export function writeEthernet(
  b: Uint8Array,
  off: number,
  dstMac: Uint8Array,
  dstMacOff: number,
  srcMac: Uint8Array,
  srcMacOff: number,
  type: number,
): void {
  copyMac(b, off + ETH_DST, dstMac, dstMacOff);
  copyMac(b, off + ETH_SRC, srcMac, srcMacOff);
  set16(b, off + ETH_TYPE, type);
}

/** Swaps dst and src MAC in place (for replies sent back out of the receiving port). */
export function swapEthMacs(b: Uint8Array, off: number): void {
  for (let i = 0; i < 6; i++) {
    const t = b[off + i];
    b[off + i] = b[off + 6 + i];
    b[off + 6 + i] = t;
  }
}

// ---- off the hot path -------------------------------------------------------------------------

/** "aa:bb:cc:dd:ee:ff" for the 6 bytes at `off`. */
export function formatMac(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[off + i].toString(16).padStart(2, '0');
  return s;
}

/** Parses "aa:bb:cc:dd:ee:ff" (or '-' separated) into a new 6-byte array; throws on bad input. */
export function parseMac(s: string): Uint8Array {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`bad MAC address: ${s}`);
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

export interface EthernetRepr {
  dst: string;
  src: string;
  ethertype: number;
}

export function parseEthernetRepr(b: Uint8Array, off: number): EthernetRepr {
  return { dst: formatMac(b, off + ETH_DST), src: formatMac(b, off + ETH_SRC), ethertype: ethType(b, off) };
}

export function emitEthernet(b: Uint8Array, off: number, r: EthernetRepr): number {
  writeEthernet(b, off, parseMac(r.dst), 0, parseMac(r.src), 0, r.ethertype);
  return ETH_HEADER_LEN;
}
