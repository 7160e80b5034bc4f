/**
 * The IPv6 next-hop table: what the IPv6 FIB's next-hop index means, built from model.v6 into
 * typed arrays (as nexthops.ts does for IPv4) and swapped whole with its FIB between batches.
 */
import type { NodeModel6, Route6 } from '../control/route-calc6';
import { ip6Bytes } from '../control/route-calc6';
import { RouteTable6 } from '../lpm/route-table6';
import type { Fib6 } from '../lpm/fib6';
import type { RouteChange6 } from '../lpm/route-table6';
import { NO_ROUTE } from '../lpm/constants';
import { covers6, networkOf6, parseIp6, type Cidr6 } from '../lpm/cidr';
import { parseMac } from '../packet/ethernet';
import { buildVxlan6Template } from '../packet/vxlan6';
import { VXLAN_PORT } from '../packet/vxlan';
import { NhKind, CALICO_VNI, MAC_KNOWN, MAC_FAILED } from './nexthops';

export interface NextHops6 {
  readonly count: number;
  readonly kind: Uint8Array;
  /** LOCAL: the endpoint's port (-1 while its interface is missing). */
  readonly port: Int32Array;
  readonly mtu: Uint16Array;
  /** VXLAN/DIRECT: the remote node's underlay IPv6 (16 bytes per next hop). */
  readonly ip6: Uint8Array;
  /** VXLAN/DIRECT: the underlay neighbour the frame goes to (16 bytes per next hop): the remote
   * node when it is on our link, else the gateway towards it (VXLAN: the kernel's IPv6 route to the
   * node; DIRECT: the node on our IPv6 subnet, else the kernel's route to it, directGateway6). */
  readonly gw6: Uint8Array;
  /** That neighbour's MAC on the underlay once NDP resolved it (6 bytes per next hop). */
  readonly mac: Uint8Array;
  /** MAC_UNRESOLVED, MAC_KNOWN or MAC_FAILED (nexthops.ts). */
  readonly macKnown: Uint8Array;
  /** VXLAN: outer Ethernet (MACs left for sendOuter) + IPv6 + UDP + VXLAN + inner Ethernet template. */
  readonly tpl: Uint8Array[];
  /** Packets routed through each next hop (`podway top`'s busiest routes), kept across models by CIDR. */
  readonly hits: Float64Array;
  readonly routes: readonly Route6[];
  readonly fib: Fib6;
  readonly table: RouteTable6;
  /** CIDR text -> next hop installed in `table`, for the next model's diff. */
  readonly installed: ReadonlyMap<string, number>;
  /** This node's IPv6 VTEP MAC (the model's vtepMac6): the inner destination IPv6 VXLAN to it carries. */
  readonly vtepMac: Uint8Array;
  /** The VNI and UDP destination port the VXLAN templates carry (Felix's vxlanVNI, vxlanPort). */
  readonly vni: number;
  readonly vxlanPort: number;
}

export interface NextHop6Context {
  portOf(interfaceName: string): number;
  /** A resolved underlay IPv6 neighbour's MAC, by address text. */
  neighbor6(ip6: string): Uint8Array | undefined;
  /** True while that neighbour is FAILED (no MAC, its probes unanswered). */
  neighborFailed6?(ip6: string): boolean;
  /** The underlay next hop towards a remote node's IPv6 address (canonical text): the gateway of
   * the kernel's best IPv6 route to it, or the address itself (on-link; the default). */
  nextHop6?(nodeIp6: string): string;
  /** Felix's vxlanVNI and vxlanPort in force (default CALICO_VNI, VXLAN_PORT). */
  vni?: number;
  vxlanPort?: number;
}

const KIND_OF: Record<Route6['kind'], number> = { local: NhKind.LOCAL, blackhole: NhKind.BLACKHOLE, vxlan: NhKind.VXLAN, direct: NhKind.DIRECT, host: NhKind.HOST };

/** One next hop per route; the FIB is brought to the new routes by one batch of differences. */
export function buildNextHops6(model: NodeModel6, ctx: NextHop6Context, prev?: NextHops6): NextHops6 {
  const routes = model.routes;
  const n = routes.length;
  if (n > NO_ROUTE) throw new Error(`too many IPv6 routes (${n}) for 16-bit next hops`);
  const kind = new Uint8Array(n);
  const port = new Int32Array(n).fill(-1);
  const mtu = new Uint16Array(n);
  const ip6 = new Uint8Array(n * 16);
  const gw6 = new Uint8Array(n * 16);
  const subnet = networkOf6(model.subnet6);
  const mac = new Uint8Array(n * 6);
  const macKnown = new Uint8Array(n);
  const tpl: Uint8Array[] = new Array(n);
  const empty = new Uint8Array(0);
  const ports = routes.map((r) => (r.kind === 'local' && r.endpoint ? ctx.portOf(r.endpoint) : -1));
  // A local endpoint without its interface falls back to the block's blackhole, as for IPv4.
  const installed = new Map<string, number>();
  routes.forEach((r, i) => {
    if (!(r.kind === 'local' && ports[i] < 0)) installed.set(r.cidr, i);
  });
  let table: RouteTable6;
  if (prev) {
    table = prev.table;
    const changes: RouteChange6[] = [];
    const byCidr = new Map(routes.map((r) => [r.cidr, r] as const));
    const prevByCidr = new Map(prev.routes.map((r) => [r.cidr, r] as const));
    for (const [c, nh] of installed) if (prev.installed.get(c) !== nh) changes.push({ op: 'set', w: byCidr.get(c)!.w, len: byCidr.get(c)!.prefixLen, nh });
    for (const c of prev.installed.keys()) if (!installed.has(c)) changes.push({ op: 'delete', w: prevByCidr.get(c)!.w, len: prevByCidr.get(c)!.prefixLen });
    if (changes.length > 0) table.applyBatch(changes);
  } else {
    table = new RouteTable6([...installed].map(([c, nh]) => {
      const r = routes[nh];
      return { w: r.w, len: r.prefixLen, nh };
    }));
  }
  const localVtepMac = parseMac(model.vtepMac6);
  const vni = ctx.vni ?? CALICO_VNI;
  const vxlanPort = ctx.vxlanPort ?? VXLAN_PORT;
  for (let i = 0; i < n; i++) {
    const r = routes[i];
    kind[i] = KIND_OF[r.kind];
    mtu[i] = Math.min(r.mtu, 0xffff);
    port[i] = ports[i];
    tpl[i] = empty;
    if (r.nodeIp6 !== null) {
      ip6.set(ip6Bytes(r.nodeIp6), i * 16);
      // The frame's neighbour: VXLAN follows the kernel's IPv6 route to the node; an unencapsulated
      // route goes to the node on our IPv6 subnet, else to the same gateway (directGateway6).
      const gw = underlayNeighbor6(r, subnet, ctx) ?? r.nodeIp6;
      gw6.set(ip6Bytes(gw), i * 16);
      const m = ctx.neighbor6(gw);
      if (m) {
        mac.set(m, i * 6);
        macKnown[i] = MAC_KNOWN;
      } else if (ctx.neighborFailed6?.(gw)) {
        macKnown[i] = MAC_FAILED;
      }
    }
    if (r.kind === 'vxlan' && r.nodeIp6 !== null && r.vtepMac !== null && model.ip6 !== null) {
      tpl[i] = buildVxlan6Template({ srcIp: ip6Bytes(model.ip6), dstIp: ip6Bytes(r.nodeIp6), vni, dstPort: vxlanPort, hopLimit: 64, innerDstMac: parseMac(r.vtepMac), innerSrcMac: localVtepMac });
    }
  }
  const hits = new Float64Array(n);
  if (prev) {
    const was = new Map<string, number>();
    prev.routes.forEach((r, i) => was.set(r.cidr, prev.hits[i]));
    routes.forEach((r, i) => (hits[i] = was.get(r.cidr) ?? 0));
  }
  return { count: n, kind, port, mtu, ip6, gw6, mac, macKnown, tpl, hits, routes, fib: table.fib, table, installed, vtepMac: localVtepMac, vni, vxlanPort };
}

/**
 * The underlay neighbour of an unencapsulated (DIRECT) IPv6 next hop `nodeIp6`, as directGateway
 * (nexthops.ts) for IPv4: the address itself when it is on our IPv6 subnet (the node's
 * spec.bgp.ipv6Address prefix, by which CrossSubnet decides too), else the kernel's underlay next
 * hop towards it (ctx.nextHop6: the gateway, or the address itself when the kernel has it on a
 * link). Never solicit an address that is not on the link: no answer comes (the packets lost as
 * neighbor_failed, a false `underlay neighbour unreachable`).
 */
export function directGateway6(nodeIp6: string, subnet: Cidr6 | null, ctx: Pick<NextHop6Context, 'nextHop6'>): string {
  if (subnet !== null && covers6(subnet, parseIp6(nodeIp6))) return nodeIp6;
  return ctx.nextHop6?.(nodeIp6) ?? nodeIp6;
}

/** The underlay neighbour a route's frames go to (null: a route with none, not VXLAN/DIRECT):
 * VXLAN follows the kernel's IPv6 route to the node; DIRECT is directGateway6. */
export function underlayNeighbor6(r: Pick<Route6, 'kind' | 'nodeIp6'>, subnet: Cidr6 | null, ctx: Pick<NextHop6Context, 'nextHop6'>): string | null {
  if (r.nodeIp6 === null) return null;
  if (r.kind === 'direct') return directGateway6(r.nodeIp6, subnet, ctx);
  if (r.kind === 'vxlan') return ctx.nextHop6?.(r.nodeIp6) ?? r.nodeIp6;
  return null;
}

/** Record a resolved underlay IPv6 neighbour (16 bytes at b[ipOff]) in every next hop through it
 * (the node itself, or the gateway towards it: gw6). */
export function learnNeighbor6(nh: NextHops6, b: Uint8Array, ipOff: number, macB: Uint8Array, macOff: number): number {
  let changed = 0;
  for (let i = 0; i < nh.count; i++) {
    const k = nh.kind[i];
    if (k !== NhKind.VXLAN && k !== NhKind.DIRECT) continue;
    let same = true;
    for (let j = 0; j < 16; j++) if (nh.gw6[i * 16 + j] !== b[ipOff + j]) { same = false; break; }
    if (!same) continue;
    for (let j = 0; j < 6; j++) nh.mac[i * 6 + j] = macB[macOff + j];
    nh.macKnown[i] = MAC_KNOWN;
    changed++;
  }
  return changed;
}

/** A neighbour (16 bytes at b[ipOff]) that stopped answering: its next hops are marked failed. */
export function failNeighbor6(nh: NextHops6, b: Uint8Array, ipOff: number): number {
  let changed = 0;
  for (let i = 0; i < nh.count; i++) {
    const k = nh.kind[i];
    if ((k !== NhKind.VXLAN && k !== NhKind.DIRECT) || nh.macKnown[i] === MAC_FAILED) continue;
    let same = true;
    for (let j = 0; j < 16; j++) if (nh.gw6[i * 16 + j] !== b[ipOff + j]) { same = false; break; }
    if (!same) continue;
    nh.macKnown[i] = MAC_FAILED;
    changed++;
  }
  return changed;
}
