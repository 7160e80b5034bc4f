/**
 * The IPv6 part of Engine.apply: each pod port's IPv6 addresses (source check), the IPv6 next
 * hops and FIB, this node's IPv6 address and the pods' MTU, handed to the Pipeline's IPv6 half
 * together (between two batches, like the IPv4 swap).
 */
import type { NodeDataplaneModel } from '../control/route-calc';
import { ip6Bytes } from '../control/route-calc6';
import { buildNextHops6, learnNeighbor6, NextHops6 } from './nexthops6';
import { formatIpv6 } from '../packet/ipv6';
import { formatMac } from '../packet/ethernet';
import type { Pipeline } from './pipeline';
import { NhKind, NH_KIND_NAMES } from './nexthops';
import { writeNeighborSolicit } from '../packet/ndp';

export interface Apply6Context {
  /** The port of a local endpoint's interface, or -1 while it is not attached. */
  portOf(interfaceName: string): number;
  /** A resolved underlay IPv6 neighbour's MAC. */
  neighbor6(ip6: string): Uint8Array | undefined;
}

export function applyModel6(pipe: Pipeline, model: NodeDataplaneModel, ctx: Apply6Context): NextHops6 {
  const m = model.v6;
  const v6 = pipe.v6;
  const byIf = new Map(m.endpoints.map((e) => [e.interfaceName, e.ips6] as const));
  for (const ep of model.endpoints) {
    const port = ctx.portOf(ep.interfaceName);
    if (port >= 0) v6.setPortAddrs(port, (byIf.get(ep.interfaceName) ?? []).map(ip6Bytes));
  }
  const nh = buildNextHops6(m, { portOf: ctx.portOf, neighbor6: ctx.neighbor6 }, v6.nh ?? undefined);
  v6.nh = nh;
  if (m.ip6 !== null) v6.nodeIp6.set(ip6Bytes(m.ip6));
  v6.hasNodeIp6 = m.ip6 !== null;
  const known = new Uint8Array(m.knownNodeIps6.length * 16);
  m.knownNodeIps6.forEach((ip, k) => known.set(ip6Bytes(ip), k * 16));
  v6.knownNodes6 = known;
  v6.podMtu = Math.min(model.mtu.pod, m.vxlan ? m.vxlanMtu : Infinity);
  return nh;
}

/** How often one underlay IPv6 neighbour is solicited while unresolved. */
const SOLICIT_INTERVAL_MS = 1000;
/** Most underlay IPv6 neighbours kept (cluster nodes; refusals are logged). */
const MAX_NEIGHBORS6 = 4096;

/**
 * Underlay IPv6 neighbours (the remote nodes' addresses), resolved with podway's own Neighbor
 * Solicitations: only addresses a next hop wants are learned (an unsolicited NA for anything
 * else is ignored), a changed MAC is taken at once. Unlike the IPv4 table (neighbors.ts) entries
 * are not re-probed yet.
 */
export class Neighbors6 {
  private readonly macs = new Map<string, Uint8Array>();
  private readonly asked = new Map<string, number>();

  constructor(
    private readonly pipe: Pipeline,
    /** Sends one frame written by `write` (returning its length) on the underlay port. */
    private readonly sendUnderlay: (write: (b: Uint8Array, f: number) => number) => void,
    private readonly underlayMac: () => Uint8Array | null,
    private readonly log: (m: string) => void,
  ) {}

  neighbor6(ip6: string): Uint8Array | undefined {
    return this.macs.get(ip6);
  }

  /** An unresolved next hop's address (16 bytes at b[off]): solicit it, at most once a second. */
  request(b: Uint8Array, off: number, now = Date.now()): void {
    const v6 = this.pipe.v6;
    const mac = this.underlayMac();
    if (!v6.hasNodeIp6 || mac === null) return;
    const key = formatIpv6(b, off);
    const last = this.asked.get(key);
    if (last !== undefined && now - last < SOLICIT_INTERVAL_MS) return;
    if (last === undefined && this.asked.size >= MAX_NEIGHBORS6) return;
    this.asked.set(key, now);
    const target = b.slice(off, off + 16);
    this.sendUnderlay((pb, f) => writeNeighborSolicit(pb, f, mac, v6.nodeIp6, 0, target, 0));
  }

  /** Solicit every IPv6 tunnel/direct next hop's neighbour not resolved yet (after a model apply). */
  solicitMissing(nh: NextHops6): void {
    for (let k = 0; k < nh.count; k++) {
      if ((nh.kind[k] === NhKind.VXLAN || nh.kind[k] === NhKind.DIRECT) && nh.macKnown[k] === 0) this.request(nh.ip6, k * 16);
    }
  }

  /** A valid NA on the underlay: learned when we asked for its target. */
  onAdvert(b: Uint8Array, targetOff: number, macOff: number): void {
    const key = formatIpv6(b, targetOff);
    if (!this.asked.has(key)) return;
    const old = this.macs.get(key);
    let same = old !== undefined;
    if (old) for (let k = 0; k < 6; k++) if (old[k] !== b[macOff + k]) same = false;
    if (same) return;
    this.macs.set(key, b.slice(macOff, macOff + 6));
    const nh = this.pipe.v6.nh;
    if (nh && learnNeighbor6(nh, b, targetOff, b, macOff) > 0) this.log(`IPv6 neighbour ${key} is ${formatMac(b, macOff)}`);
  }
}

/** `podway routes` rows for the IPv6 table (same columns as IPv4's). */
export function routeRows6(nh: NextHops6 | null): { cidr: string; kind: string; node: string; via: string; vtepMac: string; mtu: number; nextHopMac: string; pool: string }[] {
  if (!nh) return [];
  return nh.routes.map((r, i) => ({
    cidr: r.cidr,
    kind: NH_KIND_NAMES[nh.kind[i]],
    node: r.node,
    via: r.nodeIp6 ?? r.endpoint ?? '',
    vtepMac: r.vtepMac ?? '',
    mtu: r.mtu,
    nextHopMac: nh.macKnown[i] ? formatMac(nh.mac, i * 6) : '',
    pool: r.pool ?? '',
  }));
}
