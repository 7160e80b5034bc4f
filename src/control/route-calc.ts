// From a cluster snapshot to one node's dataplane model, computed the way Felix computes it
// (felix/calc/l3_route_resolver.go for which CIDR goes to which node, felix/dataplane/linux/
// route_mgr.go + vxlan_mgr.go for how each is reached, felix/routetable for conflict resolution).
//
// Pure: the same snapshot and node name always give the same model, so the dataplane can keep
// the previous model and apply diffModels(previous, next) as one batch.
//
// Choices, following Felix:
// - Which block goes to which node is Felix's: the block's own `affinity` field (a cluster
//   datastore's ipamBlockHosts), whatever the state of the node's affinity key, so a block is
//   routed to its claimer from the claim's block write on (a YAML file: its confirmed
//   BlockAffinities; routed-blocks.ts).
// - Disabled pools still route their existing blocks with their encapsulation, and still count
//   towards "encapsulation enabled" for MTUs: Felix's route resolver and encapsulation calculator
//   do not look at `disabled`, which only stops IPAM from handing out new addresses.
// - The tunnel MTUs are Felix's (felix-mtu.ts, shared with the CNI plugin): FelixConfiguration
//   vxlanMTU / ipipMTU / vxlanMTUV6 (or podway run's FELIX_* of them), else the underlay's less the
//   overhead; the pod MTU the smallest of the tunnels in use. A tunnel route's MTU is its tunnel's,
//   at most what the underlay takes once encapsulated (podway does not fragment the outer packet).
// - IPv6 pools, blocks and addresses are modelled by route-calc6.ts (model.v6).
// - A remote route is withheld (listed in `withheld`, not in `routes`) while the remote node's IP
//   is unknown, or, for a VXLAN tunnel route, while its VTEP IP (or our own) is unknown.
//   Same-subnet (CrossSubnet) routes need only the node IP, as in Felix's route_mgr.
// - Blackholes are not made for /32 blocks (Felix's routeIsLocalBlock): such a block is a single
//   workload or tunnel address and a blackhole would fight its own /32 route.
// - BGP mode (`options.bgp`, `podway run --bgp`): as with Calico's BIRD backend, routes to other
//   nodes' blocks and borrowed /32s of IPIP and unencapsulated pools come from BGP, not from the
//   datastore; VXLAN pools stay the datastore's (BIRD never programs them). Learned routes are the
//   class BGP, after every other class, so a learned copy of our own block never beats its
//   blackhole. See addLearned() for how each learned prefix is reached.
import { cidrContainsAddr, cidrContainsCidr, IPv4Cidr, makeIPv4Cidr, parseIPv4, parseIPv4Cidr, parseIPv4WithPrefix } from './ipv4';
import { deriveVtepMac } from './mac';
import type { InterfaceType, IPPool } from './resources';
import type { ClusterSnapshot } from './snapshot';
import { routedBlocks } from './routed-blocks';
import { computeNodeModel6, type NodeModel6 } from './route-calc6';
import { Selector, type Labels } from './ipam/selector';
import { podMtuOf, resolveTunnelMtus, TUNNEL_OVERHEAD, tunnelMtus, tunnelsInUse, type TunnelMtuSettings } from './felix-mtu';

/**
 * Felix's route classes (felix/routetable RouteClass, same numbers). When two routes have the same
 * CIDR the lower class wins; among equals the newest (later in the snapshot) wins.
 */
export const RouteClass = {
  LocalWorkload: 0,
  VXLANSameSubnet: 3,
  VXLANTunnel: 4,
  IPIPSameSubnet: 5,
  IPIPTunnel: 6,
  NoEncap: 7,
  IPAMBlockDrop: 8,
  /** Learned from a BGP peer (podway's own class: BIRD's routes in Calico's kernel table). */
  BGP: 9,
} as const;
export type RouteClass = (typeof RouteClass)[keyof typeof RouteClass];

/** Bytes each encapsulation adds to an IPv4 packet (outer IP 20; VXLAN adds UDP 8 + VXLAN 8 + Ethernet 14). */
export const ENCAP_OVERHEAD = { vxlan: TUNNEL_OVERHEAD.vxlan, ipip: TUNNEL_OVERHEAD.ipip } as const;
export const DEFAULT_UNDERLAY_MTU = 1500;

/**
 * How a packet for the CIDR leaves this node:
 * - local: to a workload on this node, through `endpoint`;
 * - blackhole: unallocated address of one of our blocks, drop (ICMP unreachable);
 * - vxlan: encapsulate to `vtepMac`/`vtepIp` inside UDP to `nodeIp`;
 * - ipip: encapsulate in IP protocol 4 to `nodeIp`;
 * - direct: send unchanged via the underlay NIC, at L2 to `nodeIp` when it is on our subnet, else
 *   to the underlay's gateway towards it (dataplane/nexthops.ts directGateway);
 * - host: one of this node's own tunnel addresses (VXLAN, IPIP), a local address of the node's
 *   kernel as on Calico's `vxlan.calico` / `tunl0`: handed to the node's stack (podway0).
 */
export type RouteKind = 'local' | 'blackhole' | 'vxlan' | 'ipip' | 'direct' | 'host';

export interface Route {
  /** Canonical CIDR text, e.g. "10.244.1.0/26" or "10.244.0.7/32". */
  readonly cidr: string;
  /** Network address as uint32. */
  readonly addr: number;
  readonly prefixLen: number;
  readonly kind: RouteKind;
  readonly class: RouteClass;
  /** Host-side interface name of the local endpoint (kind 'local'), else null. */
  readonly endpoint: string | null;
  /** The node the destination lives on (this node for 'local' and 'blackhole'). */
  readonly node: string;
  /** Underlay next hop (remote node IP) for vxlan/ipip/direct, else null. */
  readonly nodeIp: number | null;
  /** Remote VTEP IP and MAC for kind 'vxlan', else null. */
  readonly vtepIp: number | null;
  readonly vtepMac: string | null;
  /** Name of the IPPool containing the CIDR, if any. */
  readonly pool: string | null;
  /** Largest IP packet that fits this path; bigger DF packets get ICMP frag-needed with this MTU. */
  readonly mtu: number;
}

export interface WithheldRoute {
  readonly cidr: string;
  readonly node: string;
  readonly reason: string;
}

export interface LocalEndpoint {
  /** "namespace/name" of the WorkloadEndpoint. */
  readonly key: string;
  readonly interfaceName: string;
  readonly interfaceType: InterfaceType;
  /** tap/tun: the namespace path holding the device (podway extension), else null. */
  readonly interfaceNetns: string | null;
  /** IPv4 addresses as uint32, in file order. */
  readonly ips: readonly number[];
  /** The same addresses as "/32" CIDR text. */
  readonly cidrs: readonly string[];
  /** The pod's MAC (lower case) when the endpoint declares it. */
  readonly mac: string | null;
  /** Its IPv4 host ports (spec.ports entries with a hostPort, TCP or UDP; docs/cni.md, "Host
   * ports"), in spec order. Absent: none. */
  readonly hostPorts?: readonly HostPortMapping[];
}

/** One host port of a pod: the node's `hostPort` (on `hostIp`, or on every address of the node when
 * null) forwarded to the pod's `podIp`:`port`, as Calico's WorkloadEndpoint spec.ports records it.
 * Addresses as uint32 for IPv4 (LocalEndpoint), canonical text for IPv6 (route-calc6 LocalEndpoint6). */
export interface HostPortMapping<A = number> {
  readonly protocol: 'tcp' | 'udp';
  readonly hostIp: A | null;
  readonly hostPort: number;
  readonly podIp: A;
  readonly port: number;
}

/** What hostPortsOf needs of an address family: is a hostIP text of it, its address (null: not
 * one), and is that address the unspecified one (every address of the node). */
export interface HostPortFamily<A> {
  readonly v6: boolean;
  parse(text: string): A | null;
  any(a: A): boolean;
}

export const HOST_PORTS_V4: HostPortFamily<number> = { v6: false, parse: parseIPv4, any: (a) => a === 0 };

/** `hostPorts` for a LocalEndpoint (LocalEndpoint6): only when it has some (a model without host
 * ports is as before). */
export function hostPortsField<A>(ports: Parameters<typeof hostPortsOf>[0], ips: readonly A[], family: HostPortFamily<A>): { hostPorts?: HostPortMapping<A>[] } {
  const h = hostPortsOf(ports, ips, family);
  return h.length ? { hostPorts: h } : {};
}

/** The host ports of one family of an endpoint whose addresses of that family are `ips`: each
 * spec.ports entry with a hostPort, TCP or UDP (SCTP and others are recorded, not forwarded), to the
 * endpoint's first address of the family; one whose hostIP is of the other family is not one of
 * this family's (none: both families, as the portmap plugin does). */
export function hostPortsOf<A>(ports: readonly { protocol?: string | number; port: number; hostPort?: number; hostIP?: string }[] | undefined, ips: readonly A[], family: HostPortFamily<A>): HostPortMapping<A>[] {
  if (!ports || ips.length === 0) return [];
  const out: HostPortMapping<A>[] = [];
  for (const p of ports) {
    if (!p.hostPort) continue;
    const proto = typeof p.protocol === 'number' ? (p.protocol === 6 ? 'tcp' : p.protocol === 17 ? 'udp' : null) : (p.protocol ?? 'tcp').toLowerCase();
    if (proto !== 'tcp' && proto !== 'udp') continue;
    let hostIp: A | null = null;
    if (p.hostIP) {
      if (p.hostIP.includes(':') !== family.v6) continue;
      const a = family.parse(p.hostIP);
      if (a === null) continue;
      if (!family.any(a)) hostIp = a;
    }
    out.push({ protocol: proto, hostIp, hostPort: p.hostPort, podIp: ips[0], port: p.port });
  }
  return out;
}

export interface LocalNodeIdentity {
  readonly name: string;
  /** Our underlay IP (from spec.bgp.ipv4Address); null on an IPv6-only node (calico-node's IP=none:
   * no IPv4 address registered), whose model has no IPv4 routes, endpoints' IPv4 addresses or pools. */
  readonly ip: number | null;
  /** Our underlay subnet (the CIDR of spec.bgp.ipv4Address; /32 when no prefix was given); null with `ip`. */
  readonly subnet: IPv4Cidr | null;
  readonly vtepIp: number | null;
  readonly vtepMac: string;
  /** Our IPIP tunnel address (Node spec.bgp.ipv4IPIPTunnelAddr; Calico's `tunl0` address), null when
   * none. */
  readonly ipipTunnelIp: number | null;
  /** Underlay IPs of every node in the cluster (us included): tunnel traffic is accepted only from these. */
  readonly knownNodeIps: ReadonlySet<number>;
}

export type PoolEncap = 'vxlan' | 'ipip' | 'none';

export interface PoolModel {
  readonly name: string;
  readonly cidr: string;
  readonly addr: number;
  readonly prefixLen: number;
  readonly blockSize: number;
  readonly encap: PoolEncap;
  readonly crossSubnet: boolean;
  readonly natOutgoing: boolean;
  readonly disabled: boolean;
  /**
   * The pool calls for a tunnel address of its encapsulation (VXLAN or IPIP) on this node, by the
   * tunnel join's rules (tunnel-addrs.ts, as calico-node's allocateip): its nodeSelector selects
   * this node's labels and its allowedUses allow Tunnel; disabled pools included (an address there
   * is kept), and a selector that cannot be parsed (an address there is kept, none assigned).
   * False for an unencapsulated pool. In the model so that a nodeSelector edit or a change of the
   * node's labels is a new model, which `podway run` joins for again (cli/tunnel-join.ts).
   * Absent in a model cached by an older podway (taken as true).
   */
  readonly tunnelAddr?: boolean;
}

/**
 * Whether `pool` calls for a tunnel address on a node with `labels` (PoolModel.tunnelAddr),
 * leaving its encapsulation to the caller.
 */
export function poolCallsForTunnel(pool: IPPool, labels: Labels): boolean {
  const uses = pool.spec.allowedUses;
  if (uses && uses.length > 0 && !uses.includes('Tunnel')) return false;
  let selector: Selector;
  try {
    selector = new Selector(pool.spec.nodeSelector);
  } catch {
    return true; // the join keeps an address of ours there (and takes none)
  }
  return selector.matches(labels);
}

export interface MtuModel {
  readonly underlay: number;
  /** The tunnels' MTUs (Calico's vxlan.calico and tunl0 device MTU): Felix's vxlanMTU / ipipMTU
   * when set, else the underlay's less the overhead (felix-mtu.ts). A route through one takes at
   * most the underlay's MTU less the overhead too. */
  readonly vxlan: number;
  readonly ipip: number;
  /** MTU for pod interfaces: the smallest of the tunnels in use, IPv6 VXLAN's too (underlay when none). */
  readonly pod: number;
}

export interface NodeDataplaneModel {
  readonly node: LocalNodeIdentity;
  readonly endpoints: readonly LocalEndpoint[];
  /** One winning route per CIDR, sorted by address then prefix length. */
  readonly routes: readonly Route[];
  readonly withheld: readonly WithheldRoute[];
  /** IPv4 pools, for natOutgoing (masquerade traffic from a NAT pool to outside all pools). */
  readonly pools: readonly PoolModel[];
  readonly mtu: MtuModel;
  /** Whether any pool enables each encapsulation (the tunnel devices exist only then in Calico). */
  readonly encap: { readonly vxlan: boolean; readonly ipip: boolean };
  /** The IPv6 half (route-calc6.ts): endpoints' /128s, IPv6 blocks and routes. */
  readonly v6: NodeModel6;
  /**
   * Learned routes the node's kernel needs (absent without BGP): every best learned prefix
   * outside all pools (a ToR's default route, an outside network) with an on-link next hop, IPv4
   * and IPv6 (route-calc6.ts: a global next hop on our IPv6 subnet). podway forwards pods' traffic
   * there itself, but natOutgoing egress is handed to the kernel to be masqueraded and routed;
   * calico-node's BIRD (and BIRD for IPv6) puts these into the main table (`protocol kernel`),
   * and so does podway (dataplane/host-programmer.ts). Pool prefixes stay podway's own.
   */
  readonly kernelRoutes?: readonly KernelLearnedRoute[];
  /**
   * With BGP: every configured peer's session is Established and has sent its End-of-RIB (each
   * family it carries), so
   * kernelRoutes is every peer's whole table: a learned route an earlier run left in the kernel
   * (adopted at start) that is not in it now is gone for good (as RFC 4724's restarting speaker
   * deletes its stale routes then), not held any longer.
   */
  readonly kernelRoutesComplete?: boolean;
  /**
   * With BGP (set by the model thread, not here): the learned routes this model was computed from.
   * Not forwarding state (left out of the model's comparison key); it rides along into the model
   * cache, so a restart holds them until the peers have sent their tables again.
   */
  readonly bgpLearned?: readonly LearnedRoute[];
  /**
   * This node's FelixConfiguration specs as stored (set by the model thread, absent when neither
   * exists): `default` and `node.<this node>`, each null when absent. Not forwarding state, but in
   * the model's comparison key: a change of one is a new model, whose settings `podway run`
   * applies (cli/felix-settings.ts).
   */
  readonly felix?: FelixLayers;
}

/** The two FelixConfiguration layers of one node (their specs, unparsed; null: no such resource). */
export interface FelixLayers {
  readonly default: Readonly<Record<string, unknown>> | null;
  readonly node: Readonly<Record<string, unknown>> | null;
}

/** This node's two FelixConfiguration specs in a snapshot (the model thread puts them on the model). */
export function felixLayersOf(snap: ClusterSnapshot, node: string): FelixLayers {
  const of = (name: string) => {
    const r = snap.felixConfigurations?.find((c) => c.metadata.name === name);
    return r ? { ...(r.spec as Record<string, unknown>) } : null;
  };
  return { default: of('default'), node: of(`node.${node}`) };
}

/** A learned prefix for the node's kernel: `cidr` via `via` (IPv4, or canonical IPv6, text),
 * learned from `peer`. */
export interface KernelLearnedRoute {
  readonly cidr: string;
  readonly via: string;
  readonly peer: string;
}

/** One best route learned over BGP (see bgp/learned-routes.ts), in the speaker's text form. */
export interface LearnedRoute {
  readonly prefix: string;
  readonly nextHop: string;
  /** The peer it was learned from. */
  readonly peer: string;
}

export interface RouteCalcOptions {
  /** MTU of the underlay NIC (default 1500). */
  readonly underlayMtu?: number;
  /** Felix's tunnel MTU settings from podway run's environment (FELIX_VXLANMTU...), over the
   * snapshot's FelixConfigurations (felix-mtu.ts resolveTunnelMtus). */
  readonly tunnelMtuEnv?: TunnelMtuSettings;
  /** BGP mode: routes of IPIP and unencapsulated pools come from these learned routes. */
  /** `complete`: every BGP peer's routes are all here (End-of-RIB from each, each family; NodeModel's
   * kernelRoutesComplete). */
  readonly bgp?: { readonly learned: readonly LearnedRoute[]; readonly complete?: boolean };
}

interface NodeInfo {
  readonly ip: number | null;
  readonly subnet: IPv4Cidr | null;
  readonly vtepIp: number | null;
  readonly vtepMac: string;
  readonly ipipTunnelIp: number | null;
}

function nodeInfoOf(node: ClusterSnapshot['nodes'][number]): NodeInfo {
  const addrText = node.spec.bgp?.ipv4Address;
  let ip: number | null = null;
  let subnet: IPv4Cidr | null = null;
  if (addrText !== undefined) {
    const withPrefix = parseIPv4WithPrefix(addrText) ?? (parseIPv4(addrText) !== null ? { addr: parseIPv4(addrText)!, prefixLen: 32 } : null);
    if (withPrefix) {
      ip = withPrefix.addr;
      subnet = makeIPv4Cidr(withPrefix.addr, withPrefix.prefixLen);
    }
  }
  const vtepText = node.spec.ipv4VXLANTunnelAddr;
  const ipipText = node.spec.bgp?.ipv4IPIPTunnelAddr;
  return {
    ip,
    subnet,
    vtepIp: vtepText !== undefined ? parseIPv4(vtepText) : null,
    vtepMac: node.spec.vxlanTunnelMACAddr ?? deriveVtepMac(node.metadata.name),
    ipipTunnelIp: ipipText !== undefined ? parseIPv4(ipipText) : null,
  };
}

function poolModelOf(pool: IPPool, cidr: IPv4Cidr, labels: Labels): PoolModel {
  // Felix: vxlanMode != Never -> VXLAN pool; else ipipMode != Never -> IPIP; else no encapsulation.
  const encap: PoolEncap = pool.spec.vxlanMode !== 'Never' ? 'vxlan' : pool.spec.ipipMode !== 'Never' ? 'ipip' : 'none';
  const mode = encap === 'vxlan' ? pool.spec.vxlanMode : pool.spec.ipipMode;
  return {
    name: pool.metadata.name,
    cidr: cidr.cidr,
    addr: cidr.addr,
    prefixLen: cidr.prefixLen,
    blockSize: pool.spec.blockSize,
    encap,
    crossSubnet: encap !== 'none' && mode === 'CrossSubnet',
    natOutgoing: pool.spec.natOutgoing,
    disabled: pool.spec.disabled,
    tunnelAddr: encap !== 'none' && poolCallsForTunnel(pool, labels),
  };
}

/**
 * Computes `nodeName`'s dataplane model. Throws when the node is not in the snapshot or has
 * neither an IPv4 nor an IPv6 address. An IPv6-only node (no spec.bgp.ipv4Address: calico-node's
 * IP=none) gets the IPv6 half only: without an IPv4 address there is no subnet to judge
 * CrossSubnet by and no source address for IPv4 tunnels, so its IPv4 half is empty (no IPv4
 * routes, pools or endpoint addresses) and each IPv4 pool is listed in `withheld` with the reason,
 * as Calico's Felix programs no IPv4 routes on such a node.
 */
export function computeNodeModel(snapshot: ClusterSnapshot, nodeName: string, options: RouteCalcOptions = {}): NodeDataplaneModel {
  const underlay = options.underlayMtu ?? DEFAULT_UNDERLAY_MTU;

  const labels = snapshot.nodes.find((n) => n.metadata.name === nodeName)?.metadata.labels ?? {};
  const pools: PoolModel[] = [];
  for (const pool of snapshot.ipPools) {
    const cidr = parseIPv4Cidr(pool.spec.cidr);
    if (cidr) pools.push(poolModelOf(pool, cidr, labels));
  }
  const poolContaining = (cidr: IPv4Cidr): PoolModel | undefined =>
    pools.find((p) => cidrContainsCidr({ cidr: p.cidr, addr: p.addr, prefixLen: p.prefixLen }, cidr));

  const nodes = new Map<string, NodeInfo>();
  for (const node of snapshot.nodes) nodes.set(node.metadata.name, nodeInfoOf(node));
  const self = nodes.get(nodeName);
  if (!self) throw new Error(`node ${JSON.stringify(nodeName)} is not in ${snapshot.source}`);
  if (self.ip === null || self.subnet === null) return ipv6OnlyModel(snapshot, nodeName, self, pools, underlay, options);
  const localSubnet = self.subnet;

  const encap = { vxlan: pools.some((p) => p.encap === 'vxlan'), ipip: pools.some((p) => p.encap === 'ipip') };
  const tunnels = tunnelMtus(underlay, resolveTunnelMtus(felixLayersOf(snapshot, nodeName), options.tunnelMtuEnv));
  const mtu: MtuModel = {
    underlay,
    vxlan: tunnels.vxlan,
    ipip: tunnels.ipip,
    pod: podMtuOf(underlay, tunnels, tunnelsInUse(snapshot.ipPools.map((p) => p.spec))),
  };
  // what a tunnel route forwards: its tunnel's MTU, at most what the underlay takes encapsulated
  const vxlanMtu = Math.min(tunnels.vxlan, underlay - ENCAP_OVERHEAD.vxlan);
  const ipipMtu = Math.min(tunnels.ipip, underlay - ENCAP_OVERHEAD.ipip);

  // Every candidate route, per CIDR, in the order found (later = newer for tie-breaking).
  const candidates = new Map<string, Route[]>();
  const addCandidate = (route: Route) => {
    const list = candidates.get(route.cidr);
    if (list) list.push(route);
    else candidates.set(route.cidr, [route]);
  };
  const withheld: WithheldRoute[] = [];
  const kernelRoutes: KernelLearnedRoute[] = [];

  // Local endpoints and their /32s.
  const endpoints: LocalEndpoint[] = [];
  for (const wep of snapshot.workloadEndpoints) {
    if (wep.spec.node !== nodeName) continue;
    const ips: number[] = [];
    const cidrs: string[] = [];
    for (const net of wep.spec.ipNetworks) {
      const parsed = net.includes(':') ? null : parseIPv4WithPrefix(net);
      if (!parsed) continue;
      const cidr = makeIPv4Cidr(parsed.addr, 32);
      ips.push(cidr.addr);
      cidrs.push(cidr.cidr);
      addCandidate({
        ...cidrFields(cidr), kind: 'local', class: RouteClass.LocalWorkload, endpoint: wep.spec.interfaceName,
        node: nodeName, nodeIp: null, vtepIp: null, vtepMac: null, pool: poolContaining(cidr)?.name ?? null, mtu: mtu.pod,
      });
    }
    endpoints.push({
      key: `${wep.metadata.namespace}/${wep.metadata.name}`,
      interfaceName: wep.spec.interfaceName,
      interfaceType: wep.spec.interfaceType,
      interfaceNetns: wep.spec.interfaceNetns ?? null,
      ips,
      cidrs,
      mac: wep.spec.mac ?? null,
      ...hostPortsField(wep.spec.ports, ips, HOST_PORTS_V4),
    });
  }

  // A route to something that lives on another node, reached the way its pool says.
  const addRemote = (cidr: IPv4Cidr, remoteName: string, pool: PoolModel | undefined) => {
    const remote = nodes.get(remoteName);
    const withhold = (reason: string) => withheld.push({ cidr: cidr.cidr, node: remoteName, reason });
    if (!remote) return withhold('node unknown');
    if (remote.ip === null) return withhold('node IP unknown');
    const poolEncap = pool?.encap ?? 'none';
    const sameSubnet = (pool?.crossSubnet ?? false) && cidrContainsAddr(localSubnet, remote.ip);
    const base = { ...cidrFields(cidr), endpoint: null, node: remoteName, nodeIp: remote.ip, pool: pool?.name ?? null };
    const direct = { ...base, kind: 'direct' as const, vtepIp: null, vtepMac: null, mtu: underlay };
    if (poolEncap === 'vxlan') {
      if (sameSubnet) return addCandidate({ ...direct, class: RouteClass.VXLANSameSubnet });
      if (remote.vtepIp === null) return withhold('VTEP IP unknown');
      if (self.vtepIp === null) return withhold('local VTEP IP unknown');
      return addCandidate({ ...base, kind: 'vxlan', class: RouteClass.VXLANTunnel, vtepIp: remote.vtepIp, vtepMac: remote.vtepMac, mtu: vxlanMtu });
    }
    if (poolEncap === 'ipip') {
      if (sameSubnet) return addCandidate({ ...direct, class: RouteClass.IPIPSameSubnet });
      return addCandidate({ ...base, kind: 'ipip', class: RouteClass.IPIPTunnel, vtepIp: null, vtepMac: null, mtu: ipipMtu });
    }
    return addCandidate({ ...direct, class: RouteClass.NoEncap });
  };

  // In BGP mode other nodes' IPIP and unencapsulated routes are BGP's, not the datastore's.
  const fromDatastore = (pool: PoolModel | undefined): boolean => !options.bgp || pool?.encap === 'vxlan';

  // Blocks: ours become blackholes, other nodes' are routed to them.
  const confirmedBlocks: { cidr: IPv4Cidr; node: string }[] = [];
  for (const block of routedBlocks(snapshot)) {
    const cidr = parseIPv4Cidr(block.cidr);
    if (!cidr) continue;
    confirmedBlocks.push({ cidr, node: block.node });
    const pool = poolContaining(cidr);
    if (block.node === nodeName) {
      if (cidr.prefixLen < 32) {
        addCandidate({
          ...cidrFields(cidr), kind: 'blackhole', class: RouteClass.IPAMBlockDrop, endpoint: null, node: nodeName,
          nodeIp: null, vtepIp: null, vtepMac: null, pool: pool?.name ?? null, mtu: mtu.pod,
        });
      }
    } else if (fromDatastore(pool)) {
      addRemote(cidr, block.node, pool);
    }
  }

  /** "CIDR node" of the borrowed /32s added, so an endpoint and its block allocation make one route. */
  const borrowedTo = new Set<string>();
  // Borrowed addresses: a remote workload whose IP is not inside a block affine to its own node
  // (e.g. borrowed from another node's block, or from a block nobody holds) gets a /32 to its node.
  for (const wep of snapshot.workloadEndpoints) {
    if (wep.spec.node === nodeName) continue;
    for (const net of wep.spec.ipNetworks) {
      const parsed = net.includes(':') ? null : parseIPv4WithPrefix(net);
      if (!parsed) continue;
      const inOwnBlock = confirmedBlocks.some((b) => b.node === wep.spec.node && cidrContainsAddr(b.cidr, parsed.addr));
      if (inOwnBlock) continue;
      const cidr = makeIPv4Cidr(parsed.addr, 32);
      const pool = poolContaining(cidr);
      borrowedTo.add(`${cidr.cidr} ${wep.spec.node}`);
      if (fromDatastore(pool)) addRemote(cidr, wep.spec.node, pool);
    }
  }

  // Borrowed addresses from the IPAM blocks (Felix's L3 route resolver: the block's
  // NonAffineAllocations, each to the node its allocation names), so an address with no endpoint
  // (a VXLAN tunnel address borrowed from another node's block, an `ipam assign`) is routed too.
  // Ours need no route here (our own endpoints are local routes); one naming no node cannot be
  // routed. IPv6 blocks are route-calc6's.
  for (const block of snapshot.ipamBlocks ?? []) {
    for (const alloc of block.allocations) {
      if (alloc.node === '' || alloc.node === nodeName || alloc.ip.includes(':')) continue;
      const addr = parseIPv4(alloc.ip);
      if (addr === null) continue;
      const cidr = makeIPv4Cidr(addr, 32);
      if (borrowedTo.has(`${cidr.cidr} ${alloc.node}`)) continue;
      borrowedTo.add(`${cidr.cidr} ${alloc.node}`);
      const pool = poolContaining(cidr);
      if (fromDatastore(pool)) addRemote(cidr, alloc.node, pool);
    }
  }

  // Routes learned over BGP:
  // - inside a VXLAN pool: ignored (the datastore routes those, as Felix does with BIRD);
  // - inside an IPIP pool: IPIP to the next hop, or unencapsulated when the pool is CrossSubnet
  //   and the next hop is on our subnet;
  // - inside an unencapsulated pool: unencapsulated to the next hop; one off our subnet is
  //   reached through the underlay's gateway towards it (BIRD's `gateway recursive`);
  // - outside every pool (a ToR's default route: pod egress): unencapsulated to the next hop,
  //   which must be on our subnet (these routes go into the kernel too, on-link);
  // - a next hop that is our own address (our routes reflected back) is ignored. A learned prefix
  //   that holds our own subnet (as long or shorter: a ToR's default, its announcement of our
  //   /24) is installed around the subnet, so the connected subnet wins as in the kernel (a pod
  //   reaches its node and its neighbours on the link directly); a longer one inside our subnet
  //   is installed around our own address, so a pod still reaches its node.
  if (options.bgp) {
    const nodeByIp = new Map<number, string>();
    for (const [name, info] of nodes) if (info.ip !== null && !nodeByIp.has(info.ip)) nodeByIp.set(info.ip, name);
    for (const learned of options.bgp.learned) {
      const cidr = parseIPv4Cidr(learned.prefix);
      const nextHop = parseIPv4(learned.nextHop);
      if (!cidr || nextHop === null || nextHop === self.ip) continue;
      const pool = poolContaining(cidr);
      if (pool?.encap === 'vxlan') continue;
      const via = nodeByIp.get(nextHop) ?? learned.nextHop;
      const onLink = cidrContainsAddr(localSubnet, nextHop);
      const base = { endpoint: null, node: via, nodeIp: nextHop, vtepIp: null, vtepMac: null, pool: pool?.name ?? null, class: RouteClass.BGP };
      if (pool?.encap === 'ipip' && !(pool.crossSubnet && onLink)) {
        addCandidate({ ...cidrFields(cidr), ...base, kind: 'ipip', mtu: ipipMtu });
        continue;
      }
      if (!onLink && pool === undefined) {
        withheld.push({ cidr: cidr.cidr, node: via, reason: `learned from ${learned.peer} with next hop ${learned.nextHop}, not on ${localSubnet.cidr} (a route outside the pools goes into the node's kernel too, which takes an on-link next hop only)` });
        continue;
      }
      // Inside an unencapsulated pool, a next hop off our subnet (another node's address across a
      // router: the node-to-node mesh announces each node's blocks with the node's own address) is
      // resolved recursively, as BIRD's `gateway recursive` does: the dataplane sends to the
      // underlay next hop towards it (nexthops.ts directGateway), and the fabric routes the pod address.
      // The whole prefix, not the parts around our subnet: in the kernel the connected route
      // (metric 0) beats the learned one (metric 32) and the local table keeps our own address.
      if (pool === undefined) kernelRoutes.push({ cidr: cidr.cidr, via: learned.nextHop, peer: learned.peer });
      for (const part of learnedParts(cidr, localSubnet, self.ip)) {
        addCandidate({ ...cidrFields(part), ...base, kind: 'direct', mtu: underlay });
      }
    }
  }

  // Our own tunnel addresses, each while its encapsulation is in use (Felix makes `vxlan.calico`
  // only with a VXLAN pool, `tunl0` with an IPIP one, and the address lives on that device): a
  // local address of the node's kernel, reached through the host port. A /32, so it wins over our
  // block's blackhole, and over another node's block when the address was borrowed from it.
  const own = new Set<number>();
  if (encap.vxlan && self.vtepIp !== null) own.add(self.vtepIp);
  if (encap.ipip && self.ipipTunnelIp !== null) own.add(self.ipipTunnelIp);
  for (const a of own) {
    const cidr = makeIPv4Cidr(a, 32);
    addCandidate({
      ...cidrFields(cidr), kind: 'host', class: RouteClass.LocalWorkload, endpoint: null, node: nodeName,
      nodeIp: null, vtepIp: null, vtepMac: null, pool: poolContaining(cidr)?.name ?? null, mtu: underlay,
    });
  }

  const routes: Route[] = [];
  for (const list of candidates.values()) {
    let best = list[0]!;
    for (const route of list) if (route.class <= best.class) best = route; // `<=`: newest wins ties
    routes.push(best);
  }
  routes.sort(compareRoutes);

  const knownNodeIps = new Set<number>();
  for (const info of nodes.values()) if (info.ip !== null) knownNodeIps.add(info.ip);

  return {
    node: { name: nodeName, ip: self.ip, subnet: localSubnet, vtepIp: self.vtepIp, vtepMac: self.vtepMac, ipipTunnelIp: self.ipipTunnelIp, knownNodeIps },
    endpoints,
    routes,
    withheld,
    pools,
    mtu,
    encap,
    v6: computeNodeModel6(snapshot, nodeName, underlay, mtu.pod, options.bgp, kernelRoutes, tunnels.vxlan6),
    ...(options.bgp ? { kernelRoutes, kernelRoutesComplete: options.bgp.complete === true } : {}),
  };
}

/** Why an IPv4 pool gives an IPv6-only node nothing (`podway routes` lists it withheld). */
export const NO_IPV4_REASON = 'this node has no IPv4 address (no spec.bgp.ipv4Address: IP=none): IPv4 pools are not used here';

/**
 * The model of a node with no IPv4 address: the IPv6 half as on any node, an empty IPv4 half. Each
 * IPv4 pool (IPIP ones too: IPIP is IPv4-only) is listed in `withheld` with the reason, and so are
 * this node's endpoints' IPv4 addresses (a pod given one here is not reachable on it) and other
 * nodes' IPv4 blocks are not routed. Throws when the node has no IPv6 address either.
 */
function ipv6OnlyModel(snapshot: ClusterSnapshot, nodeName: string, self: NodeInfo, pools: readonly PoolModel[], underlay: number, options: RouteCalcOptions): NodeDataplaneModel {
  const kernelRoutes: KernelLearnedRoute[] = [];
  const tunnels = tunnelMtus(underlay, resolveTunnelMtus(felixLayersOf(snapshot, nodeName), options.tunnelMtuEnv));
  const pod = podMtuOf(underlay, tunnels, tunnelsInUse(snapshot.ipPools.map((p) => p.spec)), true);
  const v6 = computeNodeModel6(snapshot, nodeName, underlay, pod, options.bgp, kernelRoutes, tunnels.vxlan6);
  if (v6.ip6 === null) {
    throw new Error(`node ${JSON.stringify(nodeName)} has neither spec.bgp.ipv4Address nor spec.bgp.ipv6Address in ${snapshot.source}`);
  }
  const withheld: WithheldRoute[] = pools.map((p) => ({
    cidr: p.cidr,
    node: nodeName,
    reason: p.encap === 'ipip' ? `${NO_IPV4_REASON} (IPIP is IPv4 only)` : NO_IPV4_REASON,
  }));
  const endpoints: LocalEndpoint[] = [];
  for (const wep of snapshot.workloadEndpoints) {
    if (wep.spec.node !== nodeName) continue;
    for (const net of wep.spec.ipNetworks) {
      const parsed = net.includes(':') ? null : parseIPv4WithPrefix(net);
      if (parsed) withheld.push({ cidr: makeIPv4Cidr(parsed.addr, 32).cidr, node: nodeName, reason: `endpoint ${wep.metadata.namespace}/${wep.metadata.name}: ${NO_IPV4_REASON}` });
    }
    endpoints.push({
      key: `${wep.metadata.namespace}/${wep.metadata.name}`,
      interfaceName: wep.spec.interfaceName,
      interfaceType: wep.spec.interfaceType,
      interfaceNetns: wep.spec.interfaceNetns ?? null,
      ips: [],
      cidrs: [],
      mac: wep.spec.mac ?? null,
    });
  }
  return {
    // No IPv4 tunnel is accepted here: no IPv4 address to receive one on.
    node: { name: nodeName, ip: null, subnet: null, vtepIp: null, vtepMac: self.vtepMac, ipipTunnelIp: null, knownNodeIps: new Set() },
    endpoints,
    routes: [],
    withheld,
    pools: [],
    // The pods' MTU from the IPv6 pools alone (IPv6 VXLAN's tunnel MTU: underlay - 70 unless set).
    mtu: { underlay, vxlan: tunnels.vxlan, ipip: tunnels.ipip, pod },
    encap: { vxlan: false, ipip: false },
    v6,
    ...(options.bgp ? { kernelRoutes, kernelRoutesComplete: options.bgp.complete === true } : {}),
  };
}

function cidrFields(cidr: IPv4Cidr): { cidr: string; addr: number; prefixLen: number } {
  return { cidr: cidr.cidr, addr: cidr.addr, prefixLen: cidr.prefixLen };
}

/** `cidr` without addr's prefix of length `toLen` (default 32: the single address `addr`): one
 * prefix per bit from cidr's length to toLen, the sibling of addr's own prefix at that length
 * (0.0.0.0/0 around 10.0.0.1 is 32 prefixes, around 10.0.0.0/24 is 24). */
export function cidrsAround(cidr: IPv4Cidr, addr: number, toLen = 32): IPv4Cidr[] {
  const out: IPv4Cidr[] = [];
  for (let len = cidr.prefixLen + 1; len <= toLen; len++) out.push(makeIPv4Cidr((addr ^ (1 << (32 - len))) >>> 0, len));
  return out;
}

/** The parts of a learned on-link prefix podway installs: all of it, but never our connected
 * subnet (a prefix as long or shorter that holds it is cut around it: the kernel prefers the
 * connected route) nor our own address (cut out of a longer prefix inside the subnet). */
export function learnedParts(cidr: IPv4Cidr, subnet: IPv4Cidr, selfIp: number): IPv4Cidr[] {
  if (cidr.prefixLen <= subnet.prefixLen && cidrContainsAddr(cidr, subnet.addr)) return cidrsAround(cidr, subnet.addr, subnet.prefixLen);
  return cidrContainsAddr(cidr, selfIp) ? cidrsAround(cidr, selfIp) : [cidr];
}

function compareRoutes(a: Route, b: Route): number {
  return a.addr - b.addr || a.prefixLen - b.prefixLen;
}

// ---------------------------------------------------------------------------------------------
// Diffing, so the dataplane can apply a change as one batch.

export interface RouteReplacement {
  readonly from: Route;
  readonly to: Route;
}

export interface ModelDiff {
  /** Routes for CIDRs that had none. */
  readonly add: readonly Route[];
  /** Routes whose CIDR has no route any more. */
  readonly remove: readonly Route[];
  /** CIDRs whose route changed in any field (next hop, kind, class, MTU...). */
  readonly replace: readonly RouteReplacement[];
  readonly endpointsChanged: boolean;
  readonly nodeChanged: boolean;
  readonly mtuChanged: boolean;
  readonly poolsChanged: boolean;
  /** Anything of the IPv6 half (routes, endpoints' addresses, node addresses). */
  readonly v6Changed: boolean;
  /** True when nothing at all changed. */
  readonly empty: boolean;
}

export function routesEqual(a: Route, b: Route): boolean {
  return (
    a.cidr === b.cidr && a.addr === b.addr && a.prefixLen === b.prefixLen && a.kind === b.kind && a.class === b.class &&
    a.endpoint === b.endpoint && a.node === b.node && a.nodeIp === b.nodeIp && a.vtepIp === b.vtepIp &&
    a.vtepMac === b.vtepMac && a.pool === b.pool && a.mtu === b.mtu
  );
}

function nodesEqual(a: LocalNodeIdentity, b: LocalNodeIdentity): boolean {
  if (a.name !== b.name || a.ip !== b.ip || a.subnet?.cidr !== b.subnet?.cidr || a.vtepIp !== b.vtepIp || a.vtepMac !== b.vtepMac || (a.ipipTunnelIp ?? null) !== (b.ipipTunnelIp ?? null)) return false;
  if (a.knownNodeIps.size !== b.knownNodeIps.size) return false;
  for (const ip of a.knownNodeIps) if (!b.knownNodeIps.has(ip)) return false;
  return true;
}

/** What changed from `previous` (null: nothing programmed yet) to `next`. Add/remove/replace are sorted like model routes. */
export function diffModels(previous: NodeDataplaneModel | null, next: NodeDataplaneModel): ModelDiff {
  const oldByCidr = new Map((previous?.routes ?? []).map((r) => [r.cidr, r] as const));
  const newCidrs = new Set(next.routes.map((r) => r.cidr));
  const add: Route[] = [];
  const replace: RouteReplacement[] = [];
  for (const route of next.routes) {
    const old = oldByCidr.get(route.cidr);
    if (!old) add.push(route);
    else if (!routesEqual(old, route)) replace.push({ from: old, to: route });
  }
  const remove = (previous?.routes ?? []).filter((r) => !newCidrs.has(r.cidr));
  const endpointsChanged = !previous || JSON.stringify(previous.endpoints) !== JSON.stringify(next.endpoints);
  const nodeChanged = !previous || !nodesEqual(previous.node, next.node);
  const mtuChanged = !previous || JSON.stringify(previous.mtu) !== JSON.stringify(next.mtu);
  const poolsChanged = !previous || JSON.stringify(previous.pools) !== JSON.stringify(next.pools);
  const v6Changed = !previous || JSON.stringify(previous.v6) !== JSON.stringify(next.v6);
  const empty = add.length === 0 && remove.length === 0 && replace.length === 0 && !endpointsChanged && !nodeChanged && !mtuChanged && !poolsChanged && !v6Changed;
  return { add, remove, replace, endpointsChanged, nodeChanged, mtuChanged, poolsChanged, v6Changed, empty };
}
