// The IPv6 half of a node's dataplane model, computed the way Felix computes its IPv6 routes
// (felix/calc/l3_route_resolver.go over the IPv6 pools, blocks and workload /128s; vxlan_mgr.go
// with vxlan-v6.calico for tunnels). Kept apart from route-calc.ts (IPv4) so each stays small;
// computeNodeModel calls it and puts the result in NodeDataplaneModel.v6.
//
// Choices, following Felix:
// - IPv6 VXLAN runs over IPv6 between the nodes' `bgp.ipv6Address`es (vxlan-v6.calico, outer
//   IPv6 + UDP to the VXLAN port, overhead 70), with `ipv6VXLANTunnelAddr` as VTEP and `vxlanTunnelMACAddrV6`
//   or the MAC derived from sha1(nodename + "-v6"). Felix never carries IPv6 pods inside IPv4
//   VXLAN, so neither does podway: a remote IPv6 block of a VXLAN pool is withheld while either
//   node lacks an IPv6 address or VTEP.
// - Unencapsulated pools (and CrossSubnet within the node's IPv6 subnet) route `via <remote node
//   IPv6>` on the underlay, the neighbour found by NDP.
// - Same route classes, tie-breaking, blackholes for our own blocks (not for /128 blocks) and
//   borrowed /128s as for IPv4.
// - BGP mode (`bgp`, `podway run --bgp`): as route-calc.ts does for IPv4 (and calico-node's BIRD
//   for IPv6 does), routes to other nodes' blocks and /128s of unencapsulated IPv6 pools come from
//   the IPv6 routes learned over BGP, not from the datastore; VXLAN pools stay the datastore's. A
//   learned route is `direct` via its (global) next hop; class BGP, so our own block's blackhole
//   wins over a learned copy of it. Inside a pool a next hop off our IPv6 subnet is reached through
//   the kernel's IPv6 gateway towards it (as route-calc.ts for IPv4: BIRD's `gateway recursive`).
//   Learned IPv6 routes outside every pool are forwarded by podway and also go into the node's
//   kernel (`kernel`: appended to the model's kernelRoutes, as route-calc.ts does for IPv4): those
//   with a next hop on our IPv6 subnet only (else withheld).
import { covers6, formatCidr6, networkOf6, parseIp6, mask6Word } from '../lpm/cidr';
import { deriveVtepMac } from './mac';
import type { IPPool } from './resources';
import type { ClusterSnapshot } from './snapshot';
import { routedBlocks } from './routed-blocks';
import { hostPortsField, poolCallsForTunnel, RouteClass, type HostPortFamily, type HostPortMapping, type KernelLearnedRoute, type LearnedRoute, type WithheldRoute } from './route-calc';
import { linkLocalOnly6 } from './bgp/learned-routes';

/** Outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14 (Calico: IPv6 VXLAN MTU = host MTU - 70). */
export const VXLAN6_OVERHEAD = 70;

/** As IPv4's RouteKind ('host': this node's own IPv6 VXLAN tunnel address, `vxlan-v6.calico`'s in Calico). */
export type Route6Kind = 'local' | 'blackhole' | 'vxlan' | 'direct' | 'host';

export interface Route6 {
  /** Canonical CIDR text, e.g. "fd00:10:244::40/122". */
  readonly cidr: string;
  /** The network address as four uint32 words (what Fib6 and RouteTable6 take). */
  readonly w: readonly [number, number, number, number];
  readonly prefixLen: number;
  readonly kind: Route6Kind;
  readonly class: RouteClass;
  /** Host-side interface of the local endpoint (kind 'local'), else null. */
  readonly endpoint: string | null;
  readonly node: string;
  /** The remote node's underlay IPv6 (outer destination for vxlan, next hop for direct), else null. */
  readonly nodeIp6: string | null;
  /** Remote VTEP (kind 'vxlan'), else null. */
  readonly vtepIp6: string | null;
  readonly vtepMac: string | null;
  readonly pool: string | null;
  /** Largest IPv6 packet this path carries; bigger ones get ICMPv6 packet too big with it. */
  readonly mtu: number;
}

export interface LocalEndpoint6 {
  readonly interfaceName: string;
  /** The endpoint's IPv6 addresses (canonical text, no prefix), in file order. */
  readonly ips6: readonly string[];
  /** Its IPv6 host ports (route-calc.ts hostPortsOf: spec.ports entries with a hostPort and no
   * hostIP or an IPv6 one, to its first IPv6 address; docs/cni.md, "Host ports"). Absent: none. */
  readonly hostPorts?: readonly HostPortMapping<string>[];
}

export interface PoolModel6 {
  readonly name: string;
  readonly cidr: string;
  readonly blockSize: number;
  readonly encap: 'vxlan' | 'none';
  readonly crossSubnet: boolean;
  readonly natOutgoing: boolean;
  /** As PoolModel's (absent in a model cached by an older podway): enabling the pool is a new
   * model, so a node with no IPv6 VXLAN address (its pools were all disabled) is joined for again. */
  readonly disabled?: boolean;
  /** As PoolModel's: the pool calls for an IPv6 VXLAN address on this node (absent: true). */
  readonly tunnelAddr?: boolean;
}

export interface NodeModel6 {
  /** Our underlay IPv6 (spec.bgp.ipv6Address), the source of IPv6 tunnels and ICMPv6 errors. */
  readonly ip6: string | null;
  /** Its subnet (CIDR text; /128 when no prefix was given), for CrossSubnet. */
  readonly subnet6: string | null;
  readonly vtepIp6: string | null;
  /** Our IPv6 VTEP MAC (inner source MAC of IPv6 VXLAN). */
  readonly vtepMac6: string;
  /** Underlay IPv6 of every node (us included), sorted: IPv6 VXLAN is accepted only from these. */
  readonly knownNodeIps6: readonly string[];
  readonly endpoints: readonly LocalEndpoint6[];
  /** One winning route per CIDR, sorted by address then prefix length. */
  readonly routes: readonly Route6[];
  readonly withheld: readonly WithheldRoute[];
  readonly pools: readonly PoolModel6[];
  /** The IPv6 VXLAN tunnel's MTU (Felix's vxlanMTUV6, else underlay - 70; its routes take at most
   * underlay - 70) and whether an IPv6 pool enables VXLAN. */
  readonly vxlanMtu: number;
  readonly vxlan: boolean;
}

interface Cidr6 {
  readonly cidr: string;
  readonly w: readonly [number, number, number, number];
  readonly prefixLen: number;
}

/** CIDR text (host bits allowed, cleared) -> canonical network; null when it is not IPv6. */
function cidr6(text: string): Cidr6 | null {
  const n = networkOf6(text);
  return n === null ? null : { cidr: formatCidr6(n.w, n.len), w: n.w, prefixLen: n.len };
}

/** IPv6 host ports' addresses: canonical text (route-calc.ts hostPortsOf). */
const HOST_PORTS_V6: HostPortFamily<string> = { v6: true, parse: (t) => cidr6(`${t}/128`)?.cidr.slice(0, -4) ?? null, any: (a) => a === '::' };

/** "fd99::1/64" or "fd99::1" -> the address (canonical) and its subnet. */
function addressWithSubnet(text: string | undefined): { ip: string; subnet: Cidr6 } | null {
  if (text === undefined) return null;
  const withLen = text.includes('/') ? text : `${text}/128`;
  const host = cidr6(`${withLen.split('/')[0]}/128`);
  const subnet = cidr6(withLen);
  if (!host || !subnet) return null;
  return { ip: host.cidr.slice(0, -4), subnet };
}

function canonicalIp6(text: string | undefined): string | null {
  if (text === undefined) return null;
  const c = cidr6(`${text}/128`);
  return c ? c.cidr.slice(0, -4) : null;
}

function contains(outer: Cidr6, inner: Cidr6): boolean {
  return covers6({ w: outer.w, len: outer.prefixLen }, inner.w, inner.prefixLen);
}

interface Node6Info {
  readonly ip6: string | null;
  readonly subnet6: Cidr6 | null;
  readonly vtepIp6: string | null;
  readonly vtepMac6: string;
}

function node6InfoOf(node: ClusterSnapshot['nodes'][number]): Node6Info {
  const a = addressWithSubnet(node.spec.bgp?.ipv6Address);
  return {
    ip6: a?.ip ?? null,
    subnet6: a?.subnet ?? null,
    vtepIp6: canonicalIp6(node.spec.ipv6VXLANTunnelAddr),
    vtepMac6: (node.spec.vxlanTunnelMACAddrV6 ?? deriveVtepMac(node.metadata.name, 6)).toLowerCase(),
  };
}

function pool6Of(pool: IPPool, cidr: Cidr6, labels: Readonly<Record<string, string>>): PoolModel6 {
  const encap = pool.spec.vxlanMode !== 'Never' ? 'vxlan' : 'none';
  return {
    name: pool.metadata.name,
    cidr: cidr.cidr,
    blockSize: pool.spec.blockSize,
    encap,
    crossSubnet: encap === 'vxlan' && pool.spec.vxlanMode === 'CrossSubnet',
    natOutgoing: pool.spec.natOutgoing,
    disabled: pool.spec.disabled,
    tunnelAddr: encap === 'vxlan' && poolCallsForTunnel(pool, labels),
  };
}

/** `c` without addr's prefix of length `toLen` (default 128: the single address `addr`) inside
 * it: one prefix per bit from c's length to toLen, the sibling of addr's own prefix at that
 * length (as route-calc.ts cidrsAround for IPv4). */
export function cidrsAround6(c: Cidr6, addr: readonly number[], toLen = 128): Cidr6[] {
  const out: Cidr6[] = [];
  for (let len = c.prefixLen + 1; len <= toLen; len++) {
    const bit = len - 1;
    const w = [0, 1, 2, 3].map((i) => (addr[i]! & mask6Word(len, i)) >>> 0) as [number, number, number, number];
    w[bit >> 5] = (w[bit >> 5]! ^ (1 << (31 - (bit & 31)))) >>> 0;
    out.push({ cidr: formatCidr6(w, len), w, prefixLen: len });
  }
  return out;
}

/**
 * `nodeName`'s IPv6 model. Never throws for missing IPv6 data: a node without IPv6 has no IPv6
 * routes. `bgp`: the routes learned over BGP (BGP mode; only the IPv6 ones are used here);
 * `kernel`: where the learned IPv6 routes the node's kernel needs are appended (NodeDataplaneModel's
 * kernelRoutes).
 */
export function computeNodeModel6(snapshot: ClusterSnapshot, nodeName: string, underlayMtu: number, podMtu: number, bgp?: { readonly learned: readonly LearnedRoute[] }, kernel?: KernelLearnedRoute[], tunnelMtu?: number): NodeModel6 {
  const labels = snapshot.nodes.find((n) => n.metadata.name === nodeName)?.metadata.labels ?? {};
  const pools: (PoolModel6 & { c: Cidr6 })[] = [];
  for (const pool of snapshot.ipPools) {
    if (!pool.spec.cidr.includes(':')) continue;
    const c = cidr6(pool.spec.cidr);
    if (c) pools.push({ ...pool6Of(pool, c, labels), c });
  }
  const poolContaining = (c: Cidr6) => pools.find((p) => contains(p.c, c));

  const nodes = new Map<string, Node6Info>();
  for (const node of snapshot.nodes) nodes.set(node.metadata.name, node6InfoOf(node));
  const self = nodes.get(nodeName) ?? { ip6: null, subnet6: null, vtepIp6: null, vtepMac6: deriveVtepMac(nodeName, 6) };
  // the tunnel's MTU (Felix's vxlanMTUV6, else underlay - 70: route-calc.ts), and what its routes
  // forward: at most what the underlay takes encapsulated
  const vxlanMtu = tunnelMtu ?? underlayMtu - VXLAN6_OVERHEAD;
  const vxlanPathMtu = Math.min(vxlanMtu, underlayMtu - VXLAN6_OVERHEAD);
  const vxlan = pools.some((p) => p.encap === 'vxlan');
  const localMtu = Math.min(podMtu, vxlan ? vxlanMtu : Infinity);

  const candidates = new Map<string, Route6[]>();
  const add = (r: Route6) => {
    const list = candidates.get(r.cidr);
    if (list) list.push(r);
    else candidates.set(r.cidr, [r]);
  };
  const withheld: WithheldRoute[] = [];

  const endpoints: LocalEndpoint6[] = [];
  for (const wep of snapshot.workloadEndpoints) {
    if (wep.spec.node !== nodeName) continue;
    const ips6: string[] = [];
    for (const net of wep.spec.ipNetworks) {
      if (!net.includes(':')) continue;
      const c = cidr6(net);
      if (!c || c.prefixLen !== 128) continue;
      ips6.push(c.cidr.slice(0, -4));
      add({
        cidr: c.cidr, w: c.w, prefixLen: 128, kind: 'local', class: RouteClass.LocalWorkload, endpoint: wep.spec.interfaceName,
        node: nodeName, nodeIp6: null, vtepIp6: null, vtepMac: null, pool: poolContaining(c)?.name ?? null, mtu: localMtu,
      });
    }
    if (ips6.length > 0) endpoints.push({ interfaceName: wep.spec.interfaceName, ips6, ...hostPortsField(wep.spec.ports, ips6, HOST_PORTS_V6) });
  }

  const addRemote = (c: Cidr6, remoteName: string, pool: PoolModel6 | undefined) => {
    const remote = nodes.get(remoteName);
    const withhold = (reason: string) => withheld.push({ cidr: c.cidr, node: remoteName, reason });
    if (!remote) return withhold('node unknown');
    if (remote.ip6 === null) return withhold('node IPv6 address unknown');
    const base = { cidr: c.cidr, w: c.w, prefixLen: c.prefixLen, endpoint: null, node: remoteName, nodeIp6: remote.ip6, pool: pool?.name ?? null };
    const direct = { ...base, kind: 'direct' as const, vtepIp6: null, vtepMac: null, mtu: underlayMtu };
    if (pool?.encap === 'vxlan') {
      const remoteAddr = cidr6(`${remote.ip6}/128`)!;
      if (pool.crossSubnet && self.subnet6 !== null && contains(self.subnet6, remoteAddr)) return add({ ...direct, class: RouteClass.VXLANSameSubnet });
      if (self.ip6 === null) return withhold('local IPv6 address unknown');
      if (remote.vtepIp6 === null) return withhold('IPv6 VTEP unknown');
      if (self.vtepIp6 === null) return withhold('local IPv6 VTEP unknown');
      return add({ ...base, kind: 'vxlan', class: RouteClass.VXLANTunnel, vtepIp6: remote.vtepIp6, vtepMac: remote.vtepMac6, mtu: vxlanPathMtu });
    }
    return add({ ...direct, class: RouteClass.NoEncap });
  };

  // In BGP mode other nodes' routes of unencapsulated pools are BGP's, not the datastore's.
  const fromDatastore = (pool: PoolModel6 | undefined): boolean => !bgp || pool?.encap === 'vxlan';

  // Blocks, by the node each is routed to (routedBlocks: Felix's view on a cluster datastore).
  const confirmed: { c: Cidr6; node: string }[] = [];
  for (const block of routedBlocks(snapshot)) {
    if (!block.cidr.includes(':')) continue;
    const c = cidr6(block.cidr);
    if (!c) continue;
    confirmed.push({ c, node: block.node });
    const pool = poolContaining(c);
    if (block.node === nodeName) {
      if (c.prefixLen < 128) {
        add({
          cidr: c.cidr, w: c.w, prefixLen: c.prefixLen, kind: 'blackhole', class: RouteClass.IPAMBlockDrop, endpoint: null, node: nodeName,
          nodeIp6: null, vtepIp6: null, vtepMac: null, pool: pool?.name ?? null, mtu: localMtu,
        });
      }
    } else if (fromDatastore(pool)) {
      addRemote(c, block.node, pool);
    }
  }

  /** "CIDR node" of the /128s routed to another node's address, so an endpoint and its block allocation make one route. */
  const borrowedTo = new Set<string>();
  for (const wep of snapshot.workloadEndpoints) {
    if (wep.spec.node === nodeName) continue;
    for (const net of wep.spec.ipNetworks) {
      if (!net.includes(':')) continue;
      const c = cidr6(net);
      if (!c || c.prefixLen !== 128) continue;
      if (confirmed.some((b) => b.node === wep.spec.node && contains(b.c, c))) continue;
      borrowedTo.add(`${c.cidr} ${wep.spec.node}`);
      const pool = poolContaining(c);
      if (fromDatastore(pool)) addRemote(c, wep.spec.node, pool);
    }
  }
  // IPv6 addresses borrowed from IPAM blocks (Felix's NonAffineAllocations), as route-calc.ts does
  // for IPv4: an address with no endpoint (an IPv6 VTEP borrowed from another node's block) is
  // routed to the node its allocation names too.
  for (const block of snapshot.ipamBlocks ?? []) {
    for (const alloc of block.allocations) {
      if (alloc.node === '' || alloc.node === nodeName || !alloc.ip.includes(':')) continue;
      const c = cidr6(`${alloc.ip}/128`);
      if (!c || borrowedTo.has(`${c.cidr} ${alloc.node}`)) continue;
      if (confirmed.some((b) => b.node === alloc.node && contains(b.c, c))) continue;
      borrowedTo.add(`${c.cidr} ${alloc.node}`);
      const pool = poolContaining(c);
      if (fromDatastore(pool)) addRemote(c, alloc.node, pool);
    }
  }

  // Routes learned over BGP (IPv6 prefixes with an IPv6 next hop):
  // - inside a VXLAN pool: ignored (the datastore routes those);
  // - inside an unencapsulated pool: direct to the next hop; one off our IPv6 subnet is reached
  //   through the kernel's IPv6 next hop towards it (BIRD's `gateway recursive`);
  // - outside every pool: direct to the next hop, which must be on our IPv6 subnet (these routes
  //   go into the kernel too, on-link), else withheld;
  // - a next hop that is our own address (our routes reflected back) is ignored; a learned prefix
  //   that holds our own subnet (as long or shorter) is installed around the subnet, so the
  //   connected subnet wins as in the kernel; a longer one holding our own address around that
  //   address, so a pod still reaches its node.
  if (bgp) {
    const nodeByIp6 = new Map<string, string>();
    for (const [name, info] of nodes) if (info.ip6 !== null && !nodeByIp6.has(info.ip6)) nodeByIp6.set(info.ip6, name);
    const selfAddr = self.ip6 === null ? null : cidr6(`${self.ip6}/128`);
    for (const learned of bgp.learned) {
      if (!learned.prefix.includes(':')) continue;
      const c = cidr6(learned.prefix);
      const nextHop = canonicalIp6(learned.nextHop);
      const hop = nextHop === null ? null : cidr6(`${nextHop}/128`);
      if (!c || nextHop === null || hop === null || nextHop === self.ip6) continue;
      const pool = poolContaining(c);
      if (pool?.encap === 'vxlan') continue;
      const via = nodeByIp6.get(nextHop) ?? nextHop;
      if (linkLocalOnly6(learned.prefix, nextHop)) {
        withheld.push({ cidr: c.cidr, node: via, reason: `learned from ${learned.peer} with only a link-local next hop (${nextHop}): it needs an interface, which podway's routes do not name` });
        continue;
      }
      if (self.subnet6 === null) {
        withheld.push({ cidr: c.cidr, node: via, reason: `learned from ${learned.peer} with next hop ${nextHop}: this node has no IPv6 address (no spec.bgp.ipv6Address)` });
        continue;
      }
      const onLink = self.subnet6.prefixLen < 128 && contains(self.subnet6, hop);
      if (!onLink && pool === undefined) {
        withheld.push({ cidr: c.cidr, node: via, reason: `learned from ${learned.peer} with next hop ${nextHop}, not on ${self.subnet6.cidr} (a route outside the pools goes into the node's kernel too, which takes an on-link next hop only)` });
        continue;
      }
      // Inside an unencapsulated pool, a next hop off our IPv6 subnet (another node's IPv6 address
      // across a router, as the node-to-node mesh announces its blocks) is resolved recursively, as
      // BIRD's `gateway recursive` does: the dataplane sends to the kernel's IPv6 next hop towards
      // it (nexthops6.ts directGateway6), and the fabric routes the pod addresses.
      // Outside every pool (a ToR's ::/0, an outside network), on-link: the node's kernel gets it
      // too, for the host's own traffic and natOutgoing egress (the whole prefix: the kernel's
      // local table keeps our own address local).
      if (pool === undefined) kernel?.push({ cidr: c.cidr, via: nextHop, peer: learned.peer });
      // Never over our connected subnet (a prefix as long or shorter that holds it is cut around
      // it: the kernel prefers the connected route), nor our own address (out of a longer one).
      const subnet = self.subnet6;
      const parts = c.prefixLen <= subnet.prefixLen && contains(c, subnet)
        ? cidrsAround6(c, subnet.w, subnet.prefixLen)
        : selfAddr !== null && contains(c, selfAddr) ? cidrsAround6(c, selfAddr.w) : [c];
      for (const part of parts) {
        add({
          cidr: part.cidr, w: part.w, prefixLen: part.prefixLen, kind: 'direct', class: RouteClass.BGP, endpoint: null, node: via,
          nodeIp6: nextHop, vtepIp6: null, vtepMac: null, pool: pool?.name ?? null, mtu: underlayMtu,
        });
      }
    }
  }

  // Our own IPv6 VXLAN tunnel address while an IPv6 pool is VXLAN (Calico's `vxlan-v6.calico`
  // holds it then): a local address of the node's kernel, reached through the host port.
  if (vxlan && self.vtepIp6 !== null) {
    const c = cidr6(`${self.vtepIp6}/128`);
    if (c) {
      add({
        cidr: c.cidr, w: c.w, prefixLen: 128, kind: 'host', class: RouteClass.LocalWorkload, endpoint: null,
        node: nodeName, nodeIp6: null, vtepIp6: null, vtepMac: null, pool: poolContaining(c)?.name ?? null, mtu: underlayMtu,
      });
    }
  }

  const routes: Route6[] = [];
  for (const list of candidates.values()) {
    let best = list[0]!;
    for (const r of list) if (r.class <= best.class) best = r;
    routes.push(best);
  }
  routes.sort((a, b) => a.w[0] - b.w[0] || a.w[1] - b.w[1] || a.w[2] - b.w[2] || a.w[3] - b.w[3] || a.prefixLen - b.prefixLen);

  const knownNodeIps6 = [...nodes.values()].map((n) => n.ip6).filter((x): x is string => x !== null).sort();
  return {
    ip6: self.ip6,
    subnet6: self.subnet6?.cidr ?? null,
    vtepIp6: self.vtepIp6,
    vtepMac6: self.vtepMac6,
    knownNodeIps6,
    endpoints,
    routes,
    withheld,
    pools: pools.map(({ c: _c, ...p }) => p),
    vxlanMtu,
    vxlan,
  };
}

/** The 16 bytes of an address text (for the dataplane's typed arrays). */
export function ip6Bytes(text: string): Uint8Array {
  const w = parseIp6(text);
  const out = new Uint8Array(16);
  for (let i = 0; i < 4; i++) {
    out[4 * i] = w[i] >>> 24;
    out[4 * i + 1] = w[i] >>> 16;
    out[4 * i + 2] = w[i] >>> 8;
    out[4 * i + 3] = w[i];
  }
  return out;
}
