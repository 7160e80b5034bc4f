/**
 * The next-hop table: what the FIB's next-hop index means. Built from the control plane's model
 * into typed arrays (plus prebuilt VXLAN header templates), swapped whole with its FIB between
 * packet batches, so a batch never sees a FIB and a next-hop table from different models.
 */
import type { NodeDataplaneModel, Route } from '../control';
import { RouteTable4, Fib4, NO_ROUTE } from '../lpm';
import type { RouteChange4 } from '../lpm';
import { buildVxlanTemplate, parseMac } from '../packet';
import { VXLAN_PORT } from '../packet/vxlan';
import { mask32 } from '../lpm/cidr';

export const NhKind = {
  LOCAL: 1,
  BLACKHOLE: 2,
  VXLAN: 3,
  IPIP: 4,
  DIRECT: 5,
  /** One of the node's own tunnel addresses: to the node's kernel (route-calc's 'host'). */
  HOST: 6,
} as const;

export const NH_KIND_NAMES = ['', 'local', 'blackhole', 'vxlan', 'ipip', 'direct', 'host'];

/** Calico's VXLAN network identifier. */
export const CALICO_VNI = 4096;

export interface NextHops {
  readonly count: number;
  readonly kind: Uint8Array;
  /** LOCAL: the native port id of the endpoint's interface (-1 while the interface is missing). */
  readonly port: Int32Array;
  /** VXLAN/IPIP/DIRECT: the remote node's underlay IP. */
  readonly ip: Uint32Array;
  /** Largest IP packet this path carries. */
  readonly mtu: Uint16Array;
  /** VXLAN/IPIP/DIRECT: the underlay neighbour the frame goes to: the remote node when it is on
   * our link, else the gateway towards it (tunnels: the kernel's route to the node; DIRECT: the
   * node on our subnet, else the kernel's route to it, directGateway). */
  readonly gw: Uint32Array;
  /** That neighbour's MAC (6 bytes per next hop) once ARP resolved it. With it, tunnel packets get
   * their outer Ethernet header from us and leave through the underlay AF_PACKET socket; without
   * it (or for a DIRECT next hop, not at all) they go through the kernel's raw IPv4 socket. */
  readonly mac: Uint8Array;
  /** MAC_UNRESOLVED, MAC_KNOWN or MAC_FAILED (the neighbour stopped answering: packets dropped, counted). */
  readonly macKnown: Uint8Array;
  /** VXLAN: outer IPv4/UDP/VXLAN + inner MAC template (see encapVxlan). */
  readonly tpl: Uint8Array[];
  /** Packets routed through each next hop (for `podway top`); carried over to the next model's
   * table by prefix. */
  readonly hits: Float64Array;
  /** The route each next hop was made for (for `podway routes` and trace). */
  readonly routes: readonly Route[];
  /** natOutgoing's view of each next hop (NatExit.*): whether it leads out of the pod network, so
   * that pod egress through it from a natOutgoing pool goes to the kernel to be masqueraded. */
  readonly natExit: Uint8Array;
  readonly fib: Fib4;
  readonly table: RouteTable4;
  /** What `table` holds: prefix key (addr * 64 + len) -> next hop, for the next model's diff. */
  readonly installed: ReadonlyMap<number, number>;
  /** This node's VTEP MAC (the model's node.vtepMac): the inner destination VXLAN to it carries,
   * and the inner source of the VXLAN it sends. */
  readonly vtepMac: Uint8Array;
  /** The VNI and UDP destination port the VXLAN templates carry (Felix's vxlanVNI, vxlanPort). */
  readonly vni: number;
  readonly vxlanPort: number;
}

/**
 * `natExit` values. Calico masquerades traffic from a natOutgoing pool to any destination outside
 * every pool (its cali-nat-outgoing rule matches addresses, not routes), so a route outside the
 * pools that podway forwards itself (a DIRECT route learned over BGP: a ToR's default route or any
 * outside prefix) must take NATed egress to the kernel as the no-route case does. Compiled once
 * per model so the packet path tests one byte, and scans the pools only for routes that hold some.
 */
export const NatExit = {
  /** Not a way out: local, blackhole, tunnel, or a route inside a pool (another pool's block). */
  NONE: 0,
  /** A DIRECT route that overlaps no pool and holds no node address: every destination is outside. */
  OUT: 1,
  /** A DIRECT route outside any one pool that holds a pool or a node address (a default route):
   * the destination is checked per packet (pools, this node, and with natOutgoingExclusions
   * IPPoolsAndHostIPs the other nodes: never masqueraded). */
  CHECK: 2,
} as const;

/** The natExit of a DIRECT route (addr/len) given the pools and the node addresses. */
export function natExitOf(addr: number, len: number, pools: readonly { addr: number; prefixLen: number }[], nodes: Iterable<number>): number {
  const mask = mask32;
  let check = false;
  for (const p of pools) {
    const l = Math.min(len, p.prefixLen);
    if (((addr & mask(l)) >>> 0) !== ((p.addr & mask(l)) >>> 0)) continue; // disjoint
    if (p.prefixLen <= len) return NatExit.NONE; // inside the pool
    check = true; // holds the pool
  }
  for (const n of nodes) if (((n & mask(len)) >>> 0) === ((addr & mask(len)) >>> 0)) check = true;
  return check ? NatExit.CHECK : NatExit.OUT;
}

/** `macKnown` values (one byte per next hop, IPv4 and IPv6 alike). */
/** Not resolved yet (ARP/NDP asked): DIRECT and IPv6 VXLAN packets are held for the neighbour's
 * answer (neighbor-queue.ts), IPv4 tunnels take the kernel's path. */
export const MAC_UNRESOLVED = 0;
export const MAC_KNOWN = 1;
/** The neighbour's probes went unanswered (neighbors.ts FAILED): dropped as `neighbor_failed`
 * until it answers again. */
export const MAC_FAILED = 2;

export interface NextHopContext {
  /** Native port id of each local endpoint's interface, by interface name. */
  portOf(interfaceName: string): number;
  /** A resolved underlay neighbour MAC (6 bytes) or undefined. */
  neighbor(ip: number): Uint8Array | undefined;
  /** True while that neighbour is FAILED (no MAC and its last round of probes unanswered). */
  neighborFailed?(ip: number): boolean;
  /** The underlay next hop towards a remote node IP (tunnels' outer destination, and a DIRECT
   * next hop off our subnet): the gateway of the kernel's best route to it, or the address itself. */
  nextHop(nodeIp: number): number;
  /** Felix's natOutgoingExclusions IPPoolsOnly (default true): other nodes' addresses are
   * masqueraded as outside ones, so only this node's own address makes a route CHECK; false
   * (IPPoolsAndHostIPs): every node's address does. */
  natToNodes?: boolean;
  /** Felix's vxlanVNI and vxlanPort in force (default CALICO_VNI, VXLAN_PORT): what VXLAN is sent with. */
  vni?: number;
  vxlanPort?: number;
}

const KIND_OF: Record<Route['kind'], number> = {
  local: NhKind.LOCAL,
  blackhole: NhKind.BLACKHOLE,
  vxlan: NhKind.VXLAN,
  ipip: NhKind.IPIP,
  direct: NhKind.DIRECT,
  host: NhKind.HOST,
};

/**
 * One next hop per route: Calico node tables are small (about a thousand routes).
 *
 * With `table` (the engine's long-lived one), the FIB is brought to the new routes by one
 * incremental batch of the differences instead of being compiled from nothing: a fresh
 * RouteTable4 allocates and fills its 1 MiB dir (3-50 ms), which would stall forwarding on every
 * model apply. Route indices (= next-hop ids) may shift between models; the batch rewrites every
 * prefix whose id changed, and the new FIB is swapped in together with the new next hops.
 */
export function buildNextHops(model: NodeDataplaneModel, ctx: NextHopContext, prev?: NextHops): NextHops {
  const routes = model.routes;
  const n = routes.length;
  if (n > NO_ROUTE) throw new Error(`too many routes (${n}) for 16-bit next hops`);
  const kind = new Uint8Array(n);
  const port = new Int32Array(n).fill(-1);
  const ip = new Uint32Array(n);
  const gw = new Uint32Array(n);
  const mtu = new Uint16Array(n);
  const mac = new Uint8Array(n * 6);
  const macKnown = new Uint8Array(n);
  const natExit = new Uint8Array(n);
  // the node addresses natOutgoing leaves alone (Pipeline.natEgress): this node's own, and with
  // IPPoolsAndHostIPs every node's
  const natNodes: readonly number[] = ctx.natToNodes === false ? [...model.node.knownNodeIps, ...(model.node.ip !== null ? [model.node.ip] : [])] : model.node.ip !== null ? [model.node.ip] : [];
  const tpl: Uint8Array[] = new Array(n);
  const empty = new Uint8Array(0);
  const localVtepMac = parseMac(model.node.vtepMac);
  const vni = ctx.vni ?? CALICO_VNI;
  const vxlanPort = ctx.vxlanPort ?? VXLAN_PORT;
  const ports = routes.map((r) => (r.kind === 'local' && r.endpoint ? ctx.portOf(r.endpoint) : -1));
  // A local endpoint whose interface is not attached is left out of the FIB, so its address falls
  // back to the block's blackhole (as in Calico, where the /32 route only exists with the interface).
  const installed = new Map<number, number>();
  routes.forEach((r, i) => {
    if (!(r.kind === 'local' && ports[i] < 0)) installed.set(prefixKey(r.addr >>> 0, r.prefixLen), i);
  });
  let table: RouteTable4;
  if (prev) {
    table = prev.table;
    syncTable(table, prev.installed, installed);
  } else {
    table = new RouteTable4([...installed].map(([k, nh]) => ({ addr: Math.floor(k / 64), len: k % 64, nh })));
  }
  for (let i = 0; i < n; i++) {
    const r = routes[i];
    kind[i] = KIND_OF[r.kind];
    mtu[i] = Math.min(r.mtu, 0xffff);
    tpl[i] = empty;
    port[i] = ports[i];
    if (r.nodeIp !== null) ip[i] = r.nodeIp >>> 0;
    if (r.kind === 'direct') natExit[i] = natExitOf(r.addr >>> 0, r.prefixLen, model.pools, natNodes);
    if (r.kind === 'vxlan' && r.nodeIp !== null && r.vtepMac) {
      tpl[i] = buildVxlanTemplate({
        srcIp: model.node.ip ?? 0, // IPv4 routes (VXLAN ones too) exist only with an IPv4 node address
        dstIp: r.nodeIp,
        vni,
        dstPort: vxlanPort,
        ttl: 64,
        innerDstMac: parseMac(r.vtepMac),
        innerSrcMac: localVtepMac,
      });
    }
    if (r.nodeIp !== null && (r.kind === 'direct' || r.kind === 'vxlan' || r.kind === 'ipip')) {
      // Tunnels follow the underlay (the kernel's route to the node's address). An unencapsulated
      // route to a node on our subnet goes to the node itself (Felix's `via <node IP>`); to one off
      // our subnet (a pool with no encapsulation across a router, a learned next hop off the link)
      // it goes to the underlay next hop towards the node's address, as a tunnel's outer packet
      // does: BIRD's `gateway recursive`, or without it the kernel's own route (a default route),
      // either way the fabric routes the pod address. See directGateway.
      gw[i] = (r.kind === 'direct' ? directGateway(r.nodeIp, model.node.subnet, ctx) : ctx.nextHop(r.nodeIp)) >>> 0;
      const m = ctx.neighbor(gw[i]);
      if (m) {
        mac.set(m, i * 6);
        macKnown[i] = MAC_KNOWN;
      } else if (ctx.neighborFailed?.(gw[i])) {
        macKnown[i] = MAC_FAILED;
      }
    }
  }
  const hits = new Float64Array(n);
  if (prev) {
    const was = new Map<string, number>();
    prev.routes.forEach((r, i) => was.set(r.cidr, prev.hits[i]));
    routes.forEach((r, i) => (hits[i] = was.get(r.cidr) ?? 0));
  }
  return { count: n, kind, port, ip, gw, mtu, mac, macKnown, tpl, hits, routes, natExit, fib: table.fib, table, installed, vtepMac: localVtepMac, vni, vxlanPort };
}

/**
 * The underlay neighbour of an unencapsulated (DIRECT) next hop `nodeIp`: the address itself when
 * it is on our subnet (`subnet`, the node's spec.bgp.ipv4Address prefix, by which CrossSubnet
 * decides too), else the kernel's underlay next hop towards it (ctx.nextHop: the gateway, or the
 * address itself when the kernel has it on a link). Never ARP for an address that is not on the
 * link: it goes unanswered (the packets lost as neighbor_failed, a false `underlay neighbour
 * unreachable` in podway status).
 */
export function directGateway(nodeIp: number, subnet: { addr: number; prefixLen: number } | null, ctx: Pick<NextHopContext, 'nextHop'>): number {
  if (subnet !== null && ((nodeIp & mask32(subnet.prefixLen)) >>> 0) === subnet.addr >>> 0) return nodeIp >>> 0;
  return ctx.nextHop(nodeIp) >>> 0;
}

function prefixKey(addr: number, len: number): number {
  return addr * 64 + len;
}

/** Bring `table` from what it holds (`was`) to `want` with one batch: sets for new or renumbered
 * prefixes, deletes for the ones gone. */
function syncTable(table: RouteTable4, was: ReadonlyMap<number, number>, want: ReadonlyMap<number, number>): void {
  const changes: RouteChange4[] = [];
  for (const [k, nh] of want) if (was.get(k) !== nh) changes.push({ op: 'set', addr: Math.floor(k / 64), len: k % 64, nh });
  for (const k of was.keys()) if (!want.has(k)) changes.push({ op: 'delete', addr: Math.floor(k / 64), len: k % 64 });
  if (changes.length > 0) table.applyBatch(changes);
}

/** A neighbour that stopped answering: every next hop through it is marked failed (its packets are
 * dropped and counted as `neighbor_failed`, and keep asking the table, which re-probes with back-off). */
export function failNeighbor(nh: NextHops, ip: number): number {
  let changed = 0;
  for (let i = 0; i < nh.count; i++) {
    const k = nh.kind[i];
    if ((k === NhKind.DIRECT || k === NhKind.VXLAN || k === NhKind.IPIP) && nh.gw[i] === ip >>> 0 && nh.macKnown[i] !== MAC_FAILED) {
      nh.macKnown[i] = MAC_FAILED;
      changed++;
    }
  }
  return changed;
}

/** Record a resolved underlay neighbour in every next hop that goes through it. */
export function learnNeighbor(nh: NextHops, ip: number, b: Uint8Array, macOff: number): number {
  let changed = 0;
  for (let i = 0; i < nh.count; i++) {
    const k = nh.kind[i];
    if ((k === NhKind.DIRECT || k === NhKind.VXLAN || k === NhKind.IPIP) && nh.gw[i] === ip) {
      for (let k = 0; k < 6; k++) nh.mac[i * 6 + k] = b[macOff + k];
      nh.macKnown[i] = MAC_KNOWN;
      changed++;
    }
  }
  return changed;
}
