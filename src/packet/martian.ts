// Destinations a node never routes off the box. A pod's packet to one of them must not be handed to
// the node's routing through podway's raw sockets (tx4/tx6): the kernel would deliver it locally,
// so a pod could reach services bound to the node's loopback (127.0.0.1, ::1). The lists follow
// what Linux forwarding refuses (ip_route_input's martian destinations, ip6_forward/ipv6_rcv) and
// RFC 1812 5.3.7 / RFC 4291 2.5.5.2.

/**
 * 0.0.0.0/8 (this network), 127.0.0.0/8 (loopback), 224.0.0.0/4 (multicast) and 240.0.0.0/4
 * (reserved, with the limited broadcast 255.255.255.255). Link-local 169.254.0.0/16 is not one:
 * Linux forwards it, and pods reach the node's 169.254 services through it on purpose (NodeLocal
 * DNSCache's 169.254.20.10, a cloud's metadata service 169.254.169.254), as with Calico.
 */
export function isMartianDst4(dst: number): boolean {
  const a = dst >>> 24;
  return a === 0 || a === 127 || a >= 224;
}

/** Multicast, reserved or broadcast (224/4 and up): never answered with an ICMP error (RFC 1812 4.3.2.7). */
export function isGroupDst4(dst: number): boolean {
  return (dst >>> 24) >= 224;
}

/**
 * The IPv6 address at b[off..off+16]: :: (unspecified), ::1 (loopback), ::ffff:0:0/96 (IPv4-mapped,
 * never on the wire), fe80::/10 (link-local: no router forwards it) or ff00::/8 (multicast; the
 * pipeline drops pods' multicast before routing, counted multicast6).
 */
export function isMartianDst6(b: Uint8Array, off: number): boolean {
  const a = b[off];
  if (a === 0xff) return true;
  if (a === 0xfe) return (b[off + 1] & 0xc0) === 0x80;
  if (a !== 0) return false;
  for (let k = 1; k < 10; k++) if (b[off + k] !== 0) return false;
  if (b[off + 10] === 0xff && b[off + 11] === 0xff) return true;
  if ((b[off + 10] | b[off + 11] | b[off + 12] | b[off + 13] | b[off + 14]) !== 0) return false;
  return b[off + 15] <= 1;
}

/**
 * An IPv4 source Linux refuses on any input device whatever its rp_filter (ip_route_input_slow's
 * martian sources, checked on Linux 6.18 against a vxlan device): 0.0.0.0 itself (the rest of 0/8 is
 * ordinary unicast since Linux 5.3), 127.0.0.0/8 (route_localnet off, as Felix leaves the tunnel
 * devices; 127.0.0.1 is lo's own either way), 224.0.0.0/4 (multicast) and 255.255.255.255.
 * 240.0.0.0/4 is not one: Linux routes it as unicast, so only strict reverse-path filtering refuses
 * it (no route back through the device it came in on).
 */
export function isMartianSrc4(src: number): boolean {
  const a = src >>> 24;
  return src === 0 || a === 127 || (a >= 224 && a < 240) || src === 0xffffffff;
}

/**
 * The IPv6 address at b[off..off+16] as a source Linux never forwards (Linux 6.18, checked against a
 * vxlan device): :: (unspecified), ::1 (ip6_rcv_core), ff00::/8 (multicast: ip6_rcv_core) and
 * fe80::/10 (link-local: ip6_forward). An IPv4-mapped source (::ffff:0:0/96) is forwarded: not one.
 */
export function isMartianSrc6(b: Uint8Array, off: number): boolean {
  const a = b[off];
  if (a === 0xff) return true;
  if (a === 0xfe) return (b[off + 1] & 0xc0) === 0x80;
  if (a !== 0) return false;
  for (let k = 1; k < 15; k++) if (b[off + k] !== 0) return false;
  return b[off + 15] <= 1;
}
