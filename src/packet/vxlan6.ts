// VXLAN over IPv6 (RFC 7348 with an IPv6 outer header, as Linux's vxlan-v6.calico sends it):
// per-route template and in-place encapsulation, and validating decapsulation.
//
// The outer UDP checksum is always filled in: over IPv6 a zero UDP checksum is allowed for
// tunnels only where the receiver opts in (RFC 6935/6936; Linux's udp6zerocsumrx, off by default
// and not set by Felix), so a kernel vxlan-v6.calico drops VXLAN with checksum 0. Like Linux's
// Local Checksum Offload it reuses the inner L4 checksum when there is one (lcoFrameSum), so a
// 1400-byte frame costs a sum over its ~130 header bytes instead of the whole datagram.

import { copyMac } from './ethernet';
import { fold16, lcoFrameSum, sum16 } from './checksum';
import { Drop } from './drop';
import { IPPROTO_UDP6, IPV6_HEADER_LEN, writeIpv6Fixed } from './ipv6';
import { UDP_HLEN, VXLAN_HLEN, ETH_HLEN } from './layout';
import { VXLAN_FLAG_I, VXLAN_PORT, writeVxlanHeader } from './vxlan';
import { ecnEncapsulate, innerEcnOfFrame } from './ecn';

/** Outer IPv6 + UDP + VXLAN in front of the inner Ethernet frame (56); with the outer Ethernet, 70. */
export const VXLAN6_OUTER_LEN = IPV6_HEADER_LEN + UDP_HLEN + VXLAN_HLEN;

export interface Vxlan6TemplateSpec {
  /** 16-byte outer addresses. */
  srcIp: Uint8Array;
  dstIp: Uint8Array;
  vni: number;
  hopLimit?: number;
  dstPort?: number;
  innerDstMac: Uint8Array;
  innerSrcMac: Uint8Array;
}

/**
 * [IPv6 40][UDP 8][VXLAN 8][inner dst MAC][inner src MAC]: payload length, UDP source port,
 * length and checksum are zero and filled per packet by encapVxlan6.
 */
export function buildVxlan6Template(spec: Vxlan6TemplateSpec): Uint8Array {
  const t = new Uint8Array(VXLAN6_OUTER_LEN + 12);
  writeIpv6Fixed(t, 0, 0, 0, 0, IPPROTO_UDP6, spec.hopLimit ?? 64);
  t.set(spec.srcIp.subarray(0, 16), 8);
  t.set(spec.dstIp.subarray(0, 16), 24);
  const port = spec.dstPort ?? VXLAN_PORT;
  t[42] = port >>> 8;
  t[43] = port & 0xff;
  writeVxlanHeader(t, 48, spec.vni);
  copyMac(t, 56, spec.innerDstMac, 0);
  copyMac(t, 62, spec.innerSrcMac, 0);
  return t;
}

/**
 * Encapsulates the inner Ethernet frame at [off, off+len) in place behind the template's outer
 * IPv6/UDP/VXLAN (its last 12 bytes rewrite the inner MACs). Returns the new start (off - 56);
 * new length len + 56. Fills payload and UDP lengths, the source port and the UDP checksum over
 * the pseudo-header and the whole datagram (the inner frame's part via LCO where its own L4
 * checksum allows: that checksum must be complete, not an offload's partial one). The outer
 * traffic class's ECN field comes from the inner packet's (RFC 6040: ecnEncapsulate, CE ->
 * ECT(0)), the rest of it is the template's (0).
 */
export function encapVxlan6(b: Uint8Array, off: number, len: number, tpl: Uint8Array, srcPort: number): number {
  const o = off - VXLAN6_OUTER_LEN;
  b.set(tpl, o);
  b[o + 1] = (b[o + 1] & 0xcf) | (ecnEncapsulate(innerEcnOfFrame(b, off)) << 4);
  const ulen = len + UDP_HLEN + VXLAN_HLEN;
  b[o + 4] = ulen >>> 8;
  b[o + 5] = ulen;
  const udp = o + IPV6_HEADER_LEN;
  b[udp] = srcPort >>> 8;
  b[udp + 1] = srcPort;
  b[udp + 4] = ulen >>> 8;
  b[udp + 5] = ulen;
  b[udp + 6] = 0;
  b[udp + 7] = 0;
  let s = sum16(b, o + 8, 32, IPPROTO_UDP6 + ulen);
  s = sum16(b, udp, UDP_HLEN + VXLAN_HLEN, s);
  const inner = lcoFrameSum(b, off, len);
  s = inner >= 0 ? s + inner : sum16(b, off, len, s);
  let c = ~fold16(s) & 0xffff;
  if (c === 0) c = 0xffff; // RFC 8200 8.1: a computed zero is sent as ffff
  b[udp + 6] = c >>> 8;
  b[udp + 7] = c;
  return o;
}

/**
 * The VXLAN payload of a UDP datagram received over IPv6 on an L2 port: `ip` is the outer IPv6
 * header (validated, next header UDP, no extension headers), `len` bytes from it. Returns the
 * inner Ethernet offset or -reason: UDP to the VXLAN port, length, checksum (mandatory over IPv6:
 * zero is refused, as by Linux without udp6zerocsumrx), I flag, VNI.
 */
export function decapVxlan6Packet(b: Uint8Array, ip: number, len: number, expectedVni: number, port = VXLAN_PORT): number {
  const plen = (b[ip + 4] << 8) | b[ip + 5];
  if (b[ip + 6] !== IPPROTO_UDP6) return -Drop.BAD_PROTOCOL;
  if (plen < UDP_HLEN + VXLAN_HLEN + ETH_HLEN || IPV6_HEADER_LEN + plen > len) return -Drop.TOO_SHORT;
  const udp = ip + IPV6_HEADER_LEN;
  const ulen = (b[udp + 4] << 8) | b[udp + 5];
  if (ulen !== plen) return -Drop.BAD_UDP_LENGTH;
  if (((b[udp + 2] << 8) | b[udp + 3]) !== port) return -Drop.NOT_VXLAN;
  if (((b[udp + 6] << 8) | b[udp + 7]) === 0) return -Drop.BAD_L4_CHECKSUM;
  if (fold16(sum16(b, udp, ulen, sum16(b, ip + 8, 32, IPPROTO_UDP6 + ulen))) !== 0xffff) return -Drop.BAD_L4_CHECKSUM;
  const vx = udp + UDP_HLEN;
  if ((b[vx] & VXLAN_FLAG_I) === 0) return -Drop.BAD_VXLAN_FLAGS;
  if (expectedVni >= 0 && ((b[vx + 4] << 16) | (b[vx + 5] << 8) | b[vx + 6]) !== expectedVni) return -Drop.BAD_VNI;
  return vx + VXLAN_HLEN;
}
