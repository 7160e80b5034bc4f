// Whether this node's blocks are reachable from the other nodes: a block in a VXLAN pool is routed
// by every other node to this node's VTEP address (Node spec.ipv4VXLANTunnelAddr /
// ipv6VXLANTunnelAddr), and they withhold that route while the Node names none ("VTEP IP
// unknown"). A node holding such blocks without the address forwards its own traffic but its pods
// cannot be reached: that is worth saying in `podway status` and /readyz rather than "ready".
// It happens when the address could not be assigned (the pool full, the datastore refusing) or no
// enabled VXLAN pool is left to assign one from (tunnel-addrs.ts keeps one in a disabled pool, but
// cannot make a new one there). The same holds for a node with IPv6 blocks and no IPv6 address.
import type { NodeDataplaneModel } from './route-calc';

/** One line per IP family whose VXLAN blocks on this node lack a tunnel address ([] when none). */
export function tunnelAddressGaps(m: NodeDataplaneModel): string[] {
  const gaps: string[] = [];
  const vxlan4 = new Set(m.pools.filter((p) => p.encap === 'vxlan').map((p) => p.name));
  // This node's blocks are its blackhole routes (Felix makes one per affine block).
  const blocks4 = m.routes.filter((r) => r.kind === 'blackhole' && r.pool !== null && vxlan4.has(r.pool)).map((r) => r.cidr);
  if (blocks4.length > 0 && m.node.vtepIp === null) {
    gaps.push(`VXLAN block(s) ${blocks4.join(', ')} but no IPv4 VXLAN tunnel address (Node spec.ipv4VXLANTunnelAddr): other nodes cannot reach its pods (an enabled VXLAN pool selecting the node gives it one)`);
  }
  // Without an IPv6 address of its own (spec.bgp.ipv6Address: `--ip6 none`, or none found) the
  // other nodes withhold every IPv6 block of the node ("node IPv6 address unknown"), whatever the
  // encapsulation. Said only when there are other nodes: alone, its pods reach each other.
  const ownBlocks6 = m.v6.routes.filter((r) => r.kind === 'blackhole').map((r) => r.cidr);
  if (ownBlocks6.length > 0 && m.v6.ip6 === null && m.node.knownNodeIps.size > 1) {
    gaps.push(`IPv6 block(s) ${ownBlocks6.join(', ')} but no IPv6 address of its own (Node spec.bgp.ipv6Address; \`--ip6\`): other nodes cannot reach its pods' IPv6 addresses (give the node an IPv6 address: one found on its interfaces is registered within --autodetect-poll-interval, 60 s by default, unless --ip6 names an address or none, which is read at the next start; or keep IPv6 pools off it with a nodeSelector)`);
  }
  const vxlan6 = new Set(m.v6.pools.filter((p) => p.encap === 'vxlan').map((p) => p.name));
  const blocks6 = m.v6.routes.filter((r) => r.kind === 'blackhole' && r.pool !== null && vxlan6.has(r.pool)).map((r) => r.cidr);
  if (blocks6.length > 0 && m.v6.ip6 !== null && m.v6.vtepIp6 === null) {
    gaps.push(`IPv6 VXLAN block(s) ${blocks6.join(', ')} but no IPv6 VXLAN tunnel address (Node spec.ipv6VXLANTunnelAddr): other nodes cannot reach its pods (an enabled IPv6 VXLAN pool selecting the node gives it one)`);
  }
  return gaps;
}
