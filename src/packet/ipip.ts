// IP-in-IP (RFC 2003): a 20-byte outer IPv4 header, protocol 4, in front of the inner datagram.

import { get16 } from './bytes';
import { Drop } from './drop';
import { ETHERTYPE_IPV4 } from './ethernet';
import { IPPROTO_IPIP, IPV4_FLAG_DF, ipv4IsFragment, validateIpv4, writeIpv4Header } from './ipv4';
import { ETH_HLEN, IPIP_OVERHEAD } from './layout';
import { ecnEncapsulate } from './ecn';

/**
 * Prepends the outer header in place in front of the inner IPv4 datagram at [off, off+len) and
 * returns the outer header's offset (off - 20); the new datagram length is len + 20.
 * The outer TOS is Calico's tunl0's: DSCP 0 and the ECN field as RFC 6040 says (ecnEncapsulate:
 * the inner one, CE -> ECT(0)). Felix makes tunl0 without a `tos` (`ip tunnel add tunl0 mode
 * ipip`, or the fallback device the ipip module creates: tos 0, not `inherit`), and Linux's
 * ip_tunnel_xmit copies the inner TOS only for `tos inherit` (bit 0 set); ip_tunnel_ecn_encap then
 * puts the inner ECN field into the tunnel's tos 0. The inner DSCP is not copied (RFC 2003 section
 * 3.1 allows either), so a pod cannot pick the underlay's queue. DF is copied from the inner header
 * (the fallback device's frag_off is 0: DF comes from the inner packet, as ip_tunnel_xmit does).
 * Any Ethernet header that was in front of the inner datagram is overwritten: write the new one at
 * the returned offset - 14.
 */
export function encapIpip(b: Uint8Array, off: number, len: number, srcIp: number, dstIp: number, ttl: number, id: number): number {
  const o = off - IPIP_OVERHEAD;
  writeIpv4Header(b, o, ecnEncapsulate(b[off + 1]), len + IPIP_OVERHEAD, id, get16(b, off + 6) & IPV4_FLAG_DF, ttl, IPPROTO_IPIP, srcIp, dstIp);
  return o;
}

/**
 * Validates an IPIP datagram with the outer IPv4 header at `ipOff` (`len` bytes available) and
 * returns the inner IPv4 header's offset, or -reason. Both headers are validated (checksums
 * included); outer fragments are dropped since we do not reassemble. Inner length:
 * ipv4TotalLength(b, innerOff) (guaranteed to fit inside the outer datagram).
 */
export function decapIpipPacket(b: Uint8Array, ipOff: number, len: number): number {
  const r = validateIpv4(b, ipOff, len);
  if (r !== Drop.OK) return -r;
  if (ipv4IsFragment(b, ipOff)) return -Drop.FRAGMENT;
  if (b[ipOff + 9] !== IPPROTO_IPIP) return -Drop.BAD_PROTOCOL;
  const hl = (b[ipOff] & 0x0f) << 2;
  const inner = ipOff + hl;
  const ri = validateIpv4(b, inner, get16(b, ipOff + 2) - hl);
  if (ri !== Drop.OK) return -ri;
  return inner;
}

/** decapIpipPacket for a frame with outer Ethernet at `off`. */
export function decapIpip(b: Uint8Array, off: number, len: number): number {
  if (len < ETH_HLEN) return -Drop.TOO_SHORT;
  if (((b[off + 12] << 8) | b[off + 13]) !== ETHERTYPE_IPV4) return -Drop.BAD_ETHERTYPE;
  return decapIpipPacket(b, off + ETH_HLEN, len - ETH_HLEN);
}
