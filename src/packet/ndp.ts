// Neighbor Discovery (RFC 4861): validation of Router/Neighbor Solicitations and Advertisements
// with their options, and the in-place replies podway makes as the pods' router (the answer to a
// pod's NS for its gateway fe80::ecee:eeff:feee:eeee, and an RA to a pod's RS), as Calico's host
// does with proxy NDP and the link-local address of the cali veth.
//
// Message bodies after the 4-byte ICMPv6 header:
//   RS (133): reserved(4)                                                         options
//   RA (134): cur hop limit(1) flags(1) router lifetime(2) reachable(4) retrans(4) options
//   NS (135): reserved(4) target(16)                                              options
//   NA (136): flags R|S|O (1) reserved(3) target(16)                              options
// Options: type(1) length(1, in 8-byte units, never 0) value.

import { set16, set32 } from './bytes';
import { Drop, DropReason } from './drop';
import { copyMac } from './ethernet';
import { ETH_HLEN } from './layout';
import { IPPROTO_ICMPV6, IPV6_DST, IPV6_HEADER_LEN, IPV6_SRC, writeIpv6Fixed } from './ipv6';
import {
  ICMPV6_NEIGHBOR_ADVERT,
  ICMPV6_NEIGHBOR_SOLICIT,
  ICMPV6_REDIRECT,
  ICMPV6_ROUTER_ADVERT,
  ICMPV6_ROUTER_SOLICIT,
  icmpv6FillChecksum,
} from './icmpv6';

export const NDP_OPT_SOURCE_LLADDR = 1;
export const NDP_OPT_TARGET_LLADDR = 2;
export const NDP_OPT_PREFIX_INFO = 3;
export const NDP_OPT_REDIRECTED = 4;
export const NDP_OPT_MTU = 5;

export const NA_FLAG_ROUTER = 0x80;
export const NA_FLAG_SOLICITED = 0x40;
export const NA_FLAG_OVERRIDE = 0x20;

/** NDP messages are sent with hop limit 255 and accepted only with it (RFC 4861 section 6.1, 7.1). */
export const NDP_HOP_LIMIT = 255;
/** Router lifetime podway advertises (RFC 4861 AdvDefaultLifetime default: 3 * MaxRtrAdvInterval). */
export const RA_ROUTER_LIFETIME = 1800;

/** Offset of the options from the ICMPv6 header, per NDP type (-1: not an NDP type podway parses). */
export function ndpOptionsStart(type: number): number {
  if (type === ICMPV6_ROUTER_SOLICIT) return 8;
  if (type === ICMPV6_ROUTER_ADVERT) return 16;
  if (type === ICMPV6_NEIGHBOR_SOLICIT || type === ICMPV6_NEIGHBOR_ADVERT) return 24;
  if (type === ICMPV6_REDIRECT) return 40;
  return -1;
}

export function isNdpType(type: number): boolean {
  return type >= ICMPV6_ROUTER_SOLICIT && type <= ICMPV6_REDIRECT;
}

/**
 * RFC 4861 validity checks (sections 6.1.1, 6.1.2, 7.1.1, 7.1.2, 8.1) of the NDP message at `icmp`
 * (`len` bytes; its checksum already verified) in the IPv6 packet at `ip`: hop limit 255, code 0,
 * long enough, every option with a non-zero length inside the message, link-layer options holding one
 * station's address (not a group one), targets not multicast, no
 * source link-layer option from the unspecified address, RAs from link-local sources, a solicited
 * NA not sent to a multicast group. BAD_NDP otherwise.
 */
export function validateNdp(b: Uint8Array, ip: number, icmp: number, len: number): DropReason {
  const type = b[icmp];
  const optStart = ndpOptionsStart(type);
  if (optStart < 0) return Drop.BAD_NDP;
  if (b[ip + 7] !== NDP_HOP_LIMIT) return Drop.BAD_NDP;
  if (b[icmp + 1] !== 0) return Drop.BAD_NDP;
  if (len < optStart) return Drop.BAD_NDP;
  let unspecifiedSrc = true;
  for (let k = 0; k < 16; k++) if (b[ip + IPV6_SRC + k] !== 0) unspecifiedSrc = false;
  let hasSlla = false;
  for (let o = icmp + optStart, end = icmp + len; o < end; ) {
    if (o + 2 > end) return Drop.BAD_NDP;
    const olen = b[o + 1] << 3;
    if (olen === 0 || o + olen > end) return Drop.BAD_NDP;
    if (b[o] === NDP_OPT_SOURCE_LLADDR || b[o] === NDP_OPT_TARGET_LLADDR) {
      // A neighbour's link-layer address is one station's: a group address (broadcast, multicast:
      // the I/G bit) would make podway's answer a flood on the pod's link.
      if (olen < 8 || (b[o + 2] & 1) !== 0) return Drop.BAD_NDP;
    }
    if (b[o] === NDP_OPT_SOURCE_LLADDR) hasSlla = true;
    o += olen;
  }
  switch (type) {
    case ICMPV6_ROUTER_SOLICIT:
      if (unspecifiedSrc && hasSlla) return Drop.BAD_NDP;
      break;
    case ICMPV6_ROUTER_ADVERT:
      if (!(b[ip + IPV6_SRC] === 0xfe && (b[ip + IPV6_SRC + 1] & 0xc0) === 0x80)) return Drop.BAD_NDP;
      break;
    case ICMPV6_NEIGHBOR_SOLICIT:
      if (b[icmp + 8] === 0xff) return Drop.BAD_NDP;
      if (unspecifiedSrc) {
        if (hasSlla) return Drop.BAD_NDP;
        // DAD: sent to the target's solicited-node group (ff02::1:ffXX:XXXX).
        if (b[ip + IPV6_DST] !== 0xff || b[ip + IPV6_DST + 1] !== 0x02) return Drop.BAD_NDP;
      }
      break;
    case ICMPV6_NEIGHBOR_ADVERT:
      if (b[icmp + 8] === 0xff) return Drop.BAD_NDP;
      if ((b[icmp + 4] & NA_FLAG_SOLICITED) !== 0 && b[ip + IPV6_DST] === 0xff) return Drop.BAD_NDP;
      break;
    case ICMPV6_REDIRECT:
      break;
  }
  return Drop.OK;
}

/** Offset of the first option of `optType` in the validated NDP message at `icmp` (`len` bytes), or -1. */
export function ndpFindOption(b: Uint8Array, icmp: number, len: number, optType: number): number {
  const start = ndpOptionsStart(b[icmp]);
  if (start < 0) return -1;
  for (let o = icmp + start, end = icmp + len; o + 2 <= end; ) {
    const olen = b[o + 1] << 3;
    if (olen === 0) return -1;
    if (b[o] === optType) return o;
    o += olen;
  }
  return -1;
}

// Scratch for the replies below: the requester's address and MAC, read before they are overwritten.
const peerIp = new Uint8Array(16);
const peerMac = new Uint8Array(6);

/** The IPv6 destination (ff02::1 when the solicitation came from ::) and Ethernet destination of a
 * reply to the solicitation in the frame at `off`, into peerIp/peerMac. Returns whether the
 * requester's source was unspecified. */
function readRequester(b: Uint8Array, off: number, icmp: number, len: number): boolean {
  const ip = off + ETH_HLEN;
  let unspecified = true;
  for (let k = 0; k < 16; k++) {
    peerIp[k] = b[ip + IPV6_SRC + k];
    if (peerIp[k] !== 0) unspecified = false;
  }
  if (unspecified) {
    // All-nodes, and its MAC 33:33:00:00:00:01 (RFC 2464 section 7).
    peerIp.fill(0);
    peerIp[0] = 0xff;
    peerIp[1] = 0x02;
    peerIp[15] = 1;
    peerMac[0] = 0x33; peerMac[1] = 0x33; peerMac[2] = 0; peerMac[3] = 0; peerMac[4] = 0; peerMac[5] = 1;
    return true;
  }
  const slla = ndpFindOption(b, icmp, len, NDP_OPT_SOURCE_LLADDR);
  copyMac(peerMac, 0, b, slla >= 0 ? slla + 2 : off + 6);
  return false;
}

/** The Ethernet and IPv6 headers of an NA or RA reply at `off` (both carry 32 bytes of ICMPv6):
 * to peerMac/peerIp (set by readRequester), from `mac` and the address at src[srcOff], hop limit
 * 255. src may be `b` itself when its 16 bytes lie past the IPv6 header (the NS target). */
function writeReplyHeaders(b: Uint8Array, off: number, mac: Uint8Array, macOff: number, src: Uint8Array, srcOff: number): void {
  const ip = off + ETH_HLEN;
  copyMac(b, off, peerMac, 0);
  copyMac(b, off + 6, mac, macOff);
  b[off + 12] = 0x86;
  b[off + 13] = 0xdd;
  writeIpv6Fixed(b, ip, 0, 0, 32, IPPROTO_ICMPV6, NDP_HOP_LIMIT);
  for (let k = 0; k < 16; k++) {
    b[ip + IPV6_SRC + k] = src[srcOff + k];
    b[ip + IPV6_DST + k] = peerIp[k];
  }
}

/** Bytes of the NA that answerNeighborSolicitInPlace writes (Ethernet + IPv6 + NA + TLLA option). */
export const NA_FRAME_LEN = ETH_HLEN + IPV6_HEADER_LEN + 24 + 8; // 86

/**
 * Turns a validated Neighbor Solicitation (Ethernet frame at `off`, ICMPv6 at `icmp`, `len` bytes)
 * into the Neighbor Advertisement for its target, in place: the target is at `mac` (6 bytes at
 * mac[macOff]); flags Router (when `router`), Solicited (unless the NS came from ::, then the NA
 * goes to all-nodes) and Override; a target link-layer option. Sent to the NS's source link-layer
 * option (or the frame's source MAC), from `mac`, with the target as IPv6 source, hop limit 255.
 * Returns the frame length (NA_FRAME_LEN); the slot must hold that much from `off`.
 */
export function answerNeighborSolicitInPlace(b: Uint8Array, off: number, icmp: number, len: number, mac: Uint8Array, macOff: number, router: boolean): number {
  const ip = off + ETH_HLEN;
  const fromUnspecified = readRequester(b, off, icmp, len);
  const na = ip + IPV6_HEADER_LEN;
  writeReplyHeaders(b, off, mac, macOff, b, na + 8); // the target answers for itself
  b[na] = ICMPV6_NEIGHBOR_ADVERT;
  b[na + 1] = 0;
  b[na + 4] = (router ? NA_FLAG_ROUTER : 0) | (fromUnspecified ? 0 : NA_FLAG_SOLICITED) | NA_FLAG_OVERRIDE;
  b[na + 5] = 0; b[na + 6] = 0; b[na + 7] = 0;
  b[na + 24] = NDP_OPT_TARGET_LLADDR;
  b[na + 25] = 1;
  copyMac(b, na + 26, mac, macOff);
  icmpv6FillChecksum(b, ip, na, 32);
  return NA_FRAME_LEN;
}

/**
 * Writes at `f` an unsolicited Neighbor Advertisement (RFC 4861 section 7.2.6) for the address at
 * target[targetOff], at `mac` (6 bytes at mac[macOff]): from that address, to all-nodes ff02::1,
 * flags Router (when `router`) and Override, not Solicited, a target link-layer option, hop limit
 * 255. The Ethernet destination is the pod's MAC (6 bytes at to[toOff]) when `to` is given, else
 * all-nodes' 33:33:00:00:00:01. Linux updates an entry it has for the target (INCOMPLETE, or STALE
 * with another MAC) to STALE with `mac` (Override), leaves a FAILED one as it is (ndisc_recv_na
 * ignores an advertisement for a FAILED entry: seen on 6.18, unlike an ARP reply), and creates none
 * (accept_untracked_na off, the default). Returns NA_FRAME_LEN.
 */
export function writeUnsolicitedAdvert(
  b: Uint8Array, f: number, mac: Uint8Array, macOff: number, target: Uint8Array, targetOff: number, to: Uint8Array | null, toOff: number, router: boolean,
): number {
  if (to !== null) copyMac(b, f, to, toOff);
  else { b[f] = 0x33; b[f + 1] = 0x33; b[f + 2] = 0; b[f + 3] = 0; b[f + 4] = 0; b[f + 5] = 1; }
  copyMac(b, f + 6, mac, macOff);
  b[f + 12] = 0x86;
  b[f + 13] = 0xdd;
  const ip = f + ETH_HLEN;
  writeIpv6Fixed(b, ip, 0, 0, 32, IPPROTO_ICMPV6, NDP_HOP_LIMIT);
  const d = ip + IPV6_DST;
  for (let k = 0; k < 16; k++) b[ip + IPV6_SRC + k] = target[targetOff + k];
  b.fill(0, d, d + 16);
  b[d] = 0xff; b[d + 1] = 0x02; b[d + 15] = 1;
  const na = ip + IPV6_HEADER_LEN;
  b[na] = ICMPV6_NEIGHBOR_ADVERT;
  b[na + 1] = 0;
  b[na + 4] = (router ? NA_FLAG_ROUTER : 0) | NA_FLAG_OVERRIDE;
  b[na + 5] = 0; b[na + 6] = 0; b[na + 7] = 0;
  for (let k = 0; k < 16; k++) b[na + 8 + k] = target[targetOff + k];
  b[na + 24] = NDP_OPT_TARGET_LLADDR;
  b[na + 25] = 1;
  copyMac(b, na + 26, mac, macOff);
  icmpv6FillChecksum(b, ip, na, 32);
  return NA_FRAME_LEN;
}

/** Bytes of the RA that answerRouterSolicitInPlace writes (Ethernet + IPv6 + RA + SLLA + MTU options). */
export const RA_FRAME_LEN = ETH_HLEN + IPV6_HEADER_LEN + 16 + 8 + 8; // 86

/**
 * Turns a validated Router Solicitation (Ethernet frame at `off`) into a Router Advertisement in
 * place: from the router's link-local address (16 bytes at src[srcOff]) and `mac`, to the RS's
 * source (all-nodes when it came from ::), cur hop limit 64, no M/O flags, router lifetime
 * RA_ROUTER_LIFETIME, no prefix (pods get their /128 from IPAM, not SLAAC), a source link-layer
 * option and an MTU option with `mtu`. Returns RA_FRAME_LEN.
 */
export function answerRouterSolicitInPlace(
  b: Uint8Array, off: number, icmp: number, len: number, src: Uint8Array, srcOff: number, mac: Uint8Array, macOff: number, mtu: number,
): number {
  const ip = off + ETH_HLEN;
  readRequester(b, off, icmp, len);
  const ra = ip + IPV6_HEADER_LEN;
  writeReplyHeaders(b, off, mac, macOff, src, srcOff);
  b[ra] = ICMPV6_ROUTER_ADVERT;
  b[ra + 1] = 0;
  b[ra + 4] = 64;
  b[ra + 5] = 0;
  set16(b, ra + 6, RA_ROUTER_LIFETIME);
  set32(b, ra + 8, 0);
  set32(b, ra + 12, 0);
  b[ra + 16] = NDP_OPT_SOURCE_LLADDR;
  b[ra + 17] = 1;
  copyMac(b, ra + 18, mac, macOff);
  b[ra + 24] = NDP_OPT_MTU;
  b[ra + 25] = 1;
  set16(b, ra + 26, 0);
  set32(b, ra + 28, mtu);
  icmpv6FillChecksum(b, ip, ra, 32);
  return RA_FRAME_LEN;
}

/** The link-local address made from a MAC by modified EUI-64 (RFC 4291 appendix A): for
 * ee:ee:ee:ee:ee:ee, Calico's pod gateway fe80::ecee:eeff:feee:eeee. Off the hot path. */
export function linkLocalFromMac(mac: Uint8Array): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = 0xfe;
  a[1] = 0x80;
  a[8] = mac[0] ^ 0x02;
  a[9] = mac[1];
  a[10] = mac[2];
  a[11] = 0xff;
  a[12] = 0xfe;
  a[13] = mac[3];
  a[14] = mac[4];
  a[15] = mac[5];
  return a;
}

/** Bytes of the solicitation writeNeighborSolicit writes (Ethernet + IPv6 + NS + SLLA option). */
export const NS_FRAME_LEN = ETH_HLEN + IPV6_HEADER_LEN + 24 + 8; // 86

/**
 * Writes a multicast Neighbor Solicitation at `f` (address resolution, RFC 4861 section 7.2.2):
 * from `mac` and the IPv6 address at src[srcOff] to the solicited-node group of the target at
 * target[targetOff] (Ethernet 33:33:ff:XX:XX:XX), hop limit 255, with a source link-layer option.
 * With `unicastTo` (re-probing a known neighbour, RFC 4861 7.3.3 PROBE) it goes to that MAC and to
 * the target address itself instead. Returns NS_FRAME_LEN.
 */
export function writeNeighborSolicit(b: Uint8Array, f: number, mac: Uint8Array, src: Uint8Array, srcOff: number, target: Uint8Array, targetOff: number, unicastTo?: Uint8Array): number {
  b[f] = 0x33; b[f + 1] = 0x33; b[f + 2] = 0xff;
  b[f + 3] = target[targetOff + 13]; b[f + 4] = target[targetOff + 14]; b[f + 5] = target[targetOff + 15];
  if (unicastTo !== undefined) copyMac(b, f, unicastTo, 0);
  copyMac(b, f + 6, mac, 0);
  b[f + 12] = 0x86;
  b[f + 13] = 0xdd;
  const ip = f + ETH_HLEN;
  writeIpv6Fixed(b, ip, 0, 0, 32, IPPROTO_ICMPV6, NDP_HOP_LIMIT);
  for (let k = 0; k < 16; k++) b[ip + IPV6_SRC + k] = src[srcOff + k];
  const d = ip + IPV6_DST;
  b.fill(0, d, d + 16);
  if (unicastTo !== undefined) {
    for (let k = 0; k < 16; k++) b[d + k] = target[targetOff + k];
  } else {
    b[d] = 0xff; b[d + 1] = 0x02; b[d + 11] = 1; b[d + 12] = 0xff;
    b[d + 13] = target[targetOff + 13]; b[d + 14] = target[targetOff + 14]; b[d + 15] = target[targetOff + 15];
  }
  const ns = ip + IPV6_HEADER_LEN;
  b[ns] = ICMPV6_NEIGHBOR_SOLICIT;
  b[ns + 1] = 0;
  b.fill(0, ns + 4, ns + 8);
  for (let k = 0; k < 16; k++) b[ns + 8 + k] = target[targetOff + k];
  b[ns + 24] = NDP_OPT_SOURCE_LLADDR;
  b[ns + 25] = 1;
  copyMac(b, ns + 26, mac, 0);
  icmpv6FillChecksum(b, ip, ns, 32);
  return NS_FRAME_LEN;
}
