// ARP for Ethernet/IPv4 (RFC 826): the 28-byte packet after the Ethernet header.
//
//  htype(2)=1 ptype(2)=0x0800 hlen(1)=6 plen(1)=4 op(2) sha(6) spa(4) tha(6) tpa(4)

import { get16, get32, set16, set32 } from './bytes';
import { Drop, DropReason } from './drop';
import { copyMac, formatMac } from './ethernet';
import { ETH_HLEN } from './layout';
import { formatIpv4 } from './ipv4';

export const ARP_LEN = 28;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const ARP_SHA = 8;
export const ARP_SPA = 14;
export const ARP_THA = 18;
export const ARP_TPA = 24;

export function arpHardwareType(b: Uint8Array, off: number): number {
  return get16(b, off);
}
export function arpProtocolType(b: Uint8Array, off: number): number {
  return get16(b, off + 2);
}
export function arpOp(b: Uint8Array, off: number): number {
  return get16(b, off + 6);
}
/** Sender IPv4 address; the sender MAC is the 6 bytes at off + ARP_SHA. */
export function arpSpa(b: Uint8Array, off: number): number {
  return get32(b, off + ARP_SPA);
}
/** Target IPv4 address; the target MAC is the 6 bytes at off + ARP_THA. */
export function arpTpa(b: Uint8Array, off: number): number {
  return get32(b, off + ARP_TPA);
}

/**
 * ARP at `off` with `len` bytes: Ethernet/IPv4 only, request or reply, from one station (a sender
 * MAC with the group bit set is refused: RFC 1812 3.3.2, a router must not believe an ARP claiming a
 * broadcast or multicast link-layer address; learning one would flood the node's frames).
 */
export function validateArp(b: Uint8Array, off: number, len: number): DropReason {
  if (len < ARP_LEN) return Drop.TOO_SHORT;
  if (get16(b, off) !== 1 || get16(b, off + 2) !== 0x0800 || b[off + 4] !== 6 || b[off + 5] !== 4) return Drop.BAD_ARP;
  const op = get16(b, off + 6);
  if (op !== ARP_REQUEST && op !== ARP_REPLY) return Drop.BAD_ARP;
  if ((b[off + ARP_SHA] & 1) !== 0) return Drop.BAD_ARP;
  return Drop.OK;
}

/**
 * Turns a validated ARP request (Ethernet frame at `off`) into the reply in place, answering that
 * the requested address (tpa) is at `mac` (6 bytes at mac[macOff]). This is how the node answers
 * a pod's ARP for its gateway 169.254.1.1 with ee:ee:ee:ee:ee:ee (proxy ARP, RFC 1027). Returns
 * the reply's frame length (42; any padding of the request beyond it is left to the caller).
 */
export function arpReplyInPlace(b: Uint8Array, off: number, mac: Uint8Array, macOff: number): number {
  const a = off + ETH_HLEN;
  const requestedIp = get32(b, a + ARP_TPA);
  // Ethernet: back to the requester, from us.
  copyMac(b, off, b, a + ARP_SHA);
  copyMac(b, off + 6, mac, macOff);
  set16(b, a + 6, ARP_REPLY);
  // Target := original sender; sender := us / the requested address.
  copyMac(b, a + ARP_THA, b, a + ARP_SHA);
  set32(b, a + ARP_TPA, get32(b, a + ARP_SPA));
  copyMac(b, a + ARP_SHA, mac, macOff);
  set32(b, a + ARP_SPA, requestedIp);
  return ETH_HLEN + ARP_LEN;
}

/** Bytes of the frame writeGatewayAnnounce writes: an ARP packet padded to Ethernet's 60-byte minimum. */
export const ARP_ANNOUNCE_FRAME_LEN = 60;

/**
 * Writes at `f` an unsolicited ARP reply telling a pod where its gateway is: "`ip` is at `mac`"
 * (6 bytes at mac[macOff]; the gateway 169.254.1.1 at ee:ee:ee:ee:ee:ee), to the pod's address
 * `podIp`. Sent to the pod's MAC (6 bytes at podMac[podMacOff]; also the target MAC) when `podMac`
 * is given, else broadcast with a zero target MAC. Linux takes a reply for an address it already has
 * an entry for (any state: FAILED, INCOMPLETE, STALE, PROBE) without asking: REACHABLE when sent to
 * its own MAC, STALE when broadcast; with arp_accept off (the default) it creates no entry from it,
 * so a pod that never asked is left alone. Padded with zeros; returns ARP_ANNOUNCE_FRAME_LEN.
 */
export function writeGatewayAnnounce(
  b: Uint8Array, f: number, mac: Uint8Array, macOff: number, ip: number, podMac: Uint8Array | null, podMacOff: number, podIp: number,
): number {
  if (podMac !== null) copyMac(b, f, podMac, podMacOff);
  else b.fill(0xff, f, f + 6);
  copyMac(b, f + 6, mac, macOff);
  set16(b, f + 12, 0x0806);
  const a = f + ETH_HLEN;
  set16(b, a, 1);
  set16(b, a + 2, 0x0800);
  b[a + 4] = 6;
  b[a + 5] = 4;
  set16(b, a + 6, ARP_REPLY);
  copyMac(b, a + ARP_SHA, mac, macOff);
  set32(b, a + ARP_SPA, ip);
  if (podMac !== null) copyMac(b, a + ARP_THA, podMac, podMacOff);
  else b.fill(0, a + ARP_THA, a + ARP_THA + 6);
  set32(b, a + ARP_TPA, podIp);
  b.fill(0, a + ARP_LEN, f + ARP_ANNOUNCE_FRAME_LEN);
  return ARP_ANNOUNCE_FRAME_LEN;
}

export interface ArpRepr {
  op: number;
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
}

export function parseArpRepr(b: Uint8Array, off: number): ArpRepr {
  return {
    op: arpOp(b, off),
    sha: formatMac(b, off + ARP_SHA),
    spa: formatIpv4(arpSpa(b, off)),
    tha: formatMac(b, off + ARP_THA),
    tpa: formatIpv4(arpTpa(b, off)),
  };
}
