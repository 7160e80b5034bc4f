// Flow hash for the outer UDP source port of VXLAN, the way Linux picks it (udp_flow_src_port in
// include/net/udp.h): hash the inner flow, then map the hash into the ephemeral port range so
// that ECMP / RSS on the underlay spread tunnelled flows (RFC 7348 section 5, "Source Port").

import { get32 } from './bytes';
import { IPPROTO_TCP, IPPROTO_UDP } from './ipv4';
import { ETHERTYPE_IPV4 } from './ethernet';

/** The kernel's default net.ipv4.ip_local_port_range; podway uses the node's own (dataplane/
 * port-range.ts, Pipeline.setVxlanSourcePorts), these where it has none. */
export const VXLAN_SRC_PORT_MIN = 32768;
export const VXLAN_SRC_PORT_MAX = 60999;

function rol32(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Bob Jenkins' lookup3 hash of three 32-bit words (Linux jhash_3words). Returns a uint32. */
export function jhash3(a: number, b: number, c: number, initval: number): number {
  const iv = (initval + 0xdeadbeef + (3 << 2)) | 0;
  a = (a + iv) | 0;
  b = (b + iv) | 0;
  c = (c + iv) | 0;
  // __jhash_final
  c ^= b; c = (c - rol32(b, 14)) | 0;
  a ^= c; a = (a - rol32(c, 11)) | 0;
  b ^= a; b = (b - rol32(a, 25)) | 0;
  c ^= b; c = (c - rol32(b, 16)) | 0;
  a ^= c; a = (a - rol32(c, 4)) | 0;
  b ^= a; b = (b - rol32(a, 14)) | 0;
  c ^= b; c = (c - rol32(b, 24)) | 0;
  return c >>> 0;
}

/**
 * Hash of the inner flow of the Ethernet frame at [off, off+len). IPv4: addresses, protocol and,
 * for unfragmented TCP/UDP, the ports; addresses and ports are ordered first so both directions
 * of a flow hash alike (as Linux's flow dissector does). Other frames: the two MACs and the
 * ethertype (Linux's fallback). Reads nothing past off+len. Never returns 0 (Linux reserves 0).
 */
export function innerFlowHash(b: Uint8Array, off: number, len: number, seed: number): number {
  let h: number;
  const type = len >= 14 ? (b[off + 12] << 8) | b[off + 13] : 0;
  if (type === ETHERTYPE_IPV4 && len >= 34) {
    const ip = off + 14;
    let src = get32(b, ip + 12);
    let dst = get32(b, ip + 16);
    const proto = b[ip + 9];
    const hl = (b[ip] & 0x0f) << 2;
    let ports = 0;
    if (
      (proto === IPPROTO_TCP || proto === IPPROTO_UDP) &&
      (((b[ip + 6] << 8) | b[ip + 7]) & 0x3fff) === 0 &&
      hl >= 20 &&
      14 + hl + 4 <= len
    ) {
      const sp = (b[ip + hl] << 8) | b[ip + hl + 1];
      const dp = (b[ip + hl + 2] << 8) | b[ip + hl + 3];
      ports = sp < dp ? ((sp << 16) | dp) >>> 0 : ((dp << 16) | sp) >>> 0;
    }
    if (dst < src) {
      const t = src;
      src = dst;
      dst = t;
    }
    h = jhash3(dst, (src ^ proto) >>> 0, ports, seed);
  } else if (len >= 12) {
    h = jhash3(get32(b, off), get32(b, off + 4), get32(b, off + 8), (seed ^ type) >>> 0);
  } else {
    h = 0;
  }
  return h === 0 ? 1 : h;
}

/**
 * Maps a flow hash to a source port in [min, max) exactly like Linux (min, max: the sysctl's LOW
 * and HIGH, so HIGH itself is never used, as by the kernel; min = max gives min):
 *   hash ^= hash << 16;  port = ((u64)hash * (max - min) >> 32) + min
 * (the xor folds the well-mixed low half into the high half, which is what the multiply keeps).
 * hash < 2^32 and max - min < 2^16, so the product is < 2^48 and exact in a double; dividing
 * by 2^32 is exact too, so Math.floor gives the same result as the u64 shift without BigInt.
 */
export function vxlanSourcePort(hash: number, min = VXLAN_SRC_PORT_MIN, max = VXLAN_SRC_PORT_MAX): number {
  const h = (hash ^ (hash << 16)) >>> 0;
  return Math.floor((h * (max - min)) / 4294967296) + min;
}
