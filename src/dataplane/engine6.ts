/**
 * The IPv6 part of Engine.apply: each pod port's IPv6 addresses (source check), the IPv6 next
 * hops and FIB, this node's IPv6 address and the pods' MTU, handed to the Pipeline's IPv6 half
 * together (between two batches, like the IPv4 swap).
 */
import type { NodeDataplaneModel } from '../control/route-calc';
import { ip6Bytes } from '../control/route-calc6';
import { buildNextHops6, learnNeighbor6, failNeighbor6, NextHops6 } from './nexthops6';
import { NeighborTable, NeighborTableOptions, NeighborWantResult } from './neighbors';
import { formatIpv6 } from '../packet/ipv6';
import { parseIp6 } from '../lpm/cidr';
import { formatMac, macEquals } from '../packet/ethernet';
import type { Pipeline } from './pipeline';
import { NH_KIND_NAMES, NhKind, MAC_KNOWN, MAC_FAILED } from './nexthops';
import { writeNeighborSolicit } from '../packet/ndp';
import { FAMILY_V6 } from './neighbor-queue';

export interface Apply6Context {
  /** The port of a local endpoint's interface, or -1 while it is not attached. */
  portOf(interfaceName: string): number;
  /** A resolved underlay IPv6 neighbour's MAC. */
  neighbor6(ip6: string): Uint8Array | undefined;
  /** True while that neighbour is FAILED. */
  neighborFailed6?(ip6: string): boolean;
  /** The underlay next hop towards a node's IPv6 address (host.ts underlayNextHops6). */
  nextHop6?(nodeIp6: string): string;
}

export function applyModel6(pipe: Pipeline, model: NodeDataplaneModel, ctx: Apply6Context): NextHops6 {
  const m = model.v6;
  const v6 = pipe.v6;
  const byIf = new Map(m.endpoints.map((e) => [e.interfaceName, e.ips6] as const));
  for (const ep of model.endpoints) {
    const port = ctx.portOf(ep.interfaceName);
    if (port >= 0) v6.setPortAddrs(port, (byIf.get(ep.interfaceName) ?? []).map(ip6Bytes));
  }
  const nh = buildNextHops6(m, { portOf: ctx.portOf, neighbor6: ctx.neighbor6, neighborFailed6: ctx.neighborFailed6, nextHop6: ctx.nextHop6, vni: pipe.vni, vxlanPort: pipe.vxlanPort }, v6.nh ?? undefined);
  v6.nh = nh;
  if (m.ip6 !== null) v6.nodeIp6.set(ip6Bytes(m.ip6));
  v6.hasNodeIp6 = m.ip6 !== null;
  // the source of ICMPv6 errors back through an IPv6 VXLAN tunnel (Pipeline6.icmpErrorRouted)
  v6.hasVxlanTunnelIp6 = m.vxlan && m.vtepIp6 !== null;
  if (m.vxlan && m.vtepIp6 !== null) v6.vxlanTunnelIp6.set(ip6Bytes(m.vtepIp6));
  const known = new Uint8Array(m.knownNodeIps6.length * 16);
  m.knownNodeIps6.forEach((ip, k) => known.set(ip6Bytes(ip), k * 16));
  v6.knownNodes6 = known;
  v6.podMtu = Math.min(model.mtu.pod, m.vxlan ? m.vxlanMtu : Infinity);
  const prefixes = (pools: typeof m.pools) => pools.map((p) => {
    const [addr, len] = p.cidr.split('/');
    return { w: parseIp6(addr), prefixLen: Number(len) };
  });
  v6.pools6.set(prefixes(m.pools));
  v6.natSources6.set(prefixes(m.pools.filter((p) => p.natOutgoing)));
  // IPv6 host ports: their pods' ends, whose packets go to the node's kernel (docs/cni.md, "Host ports")
  v6.hostPortSources.set(m.endpoints.flatMap((e) => (e.hostPorts ?? []).map((h) => ({ ip: ip6Bytes(h.podIp), proto: h.protocol === 'udp' ? 17 : 6, port: h.port }))));
  return nh;
}

/** Most underlay IPv6 neighbours kept (cluster nodes; refusals are logged). */
const MAX_NEIGHBORS6 = 4096;

/**
 * Underlay IPv6 neighbours (the remote nodes' addresses), resolved with podway's own Neighbor
 * Solicitations through the same states as IPv4's ARP (neighbors.ts NeighborTable: INCOMPLETE,
 * REACHABLE, STALE re-probed by unicast NS to the cached MAC then one multicast NS to the
 * solicited-node address, FAILED with back-off). Only addresses a next hop wants are tracked: an
 * NA for any other target is counted (`unsolicited`) and ignored. A solicited NA is a reply
 * (lock window); an unsolicited NA with the override flag (a node announcing a new MAC, e.g.
 * `ndisc_notify`) is taken at once as STALE and verified; one without the override flag changes
 * nothing (RFC 4861 7.2.5).
 *
 * The table keys entries by a small id per address: the per-packet lookups (`request` for a next
 * hop without a MAC, `onAdvert`) find the id from the 16 bytes in the frame through an
 * open-addressing index rebuilt by `want`, without allocating.
 */
export class Neighbors6 {
  readonly table: NeighborTable;
  private readonly idOf = new Map<string, number>();
  private readonly addrOf = new Map<number, Uint8Array>();
  private readonly textOf = new Map<number, string>();
  /** Open addressing: hash(address) & mask -> id (0: empty); at most half full. */
  private slots = new Int32Array(16);
  private nextId = 1;

  constructor(
    private readonly pipe: Pipeline,
    /** Sends one frame written by `write` (returning its length) on the underlay port. */
    private readonly sendUnderlay: (write: (b: Uint8Array, f: number) => number) => void,
    private readonly underlayMac: () => Uint8Array | null,
    private readonly log: (m: string, level?: 'info' | 'warn') => void,
    opts: NeighborTableOptions = {},
    /** An NA the table took (learned, changed or confirmed), for the other workers (learnShared);
     * `announced`: an unsolicited override NA, which they must take as an announcement too. */
    private readonly share?: (ip6: string, mac: Uint8Array, announced: boolean) => void,
    /** A neighbour's new MAC (an NA can be sent per frame by anyone on the underlay): the engine
     * rate-limits these per neighbour; `line` is built only when written. Default: `log`. */
    private readonly logChange: (ip6: string, line: () => string) => void = (_ip6, line) => this.log(line()),
  ) {
    this.table = new NeighborTable({ maxEntries: MAX_NEIGHBORS6, ...opts, format: (id) => this.textOf.get(id) ?? `#${id}` });
  }

  /** The addresses the IPv6 next hops go through (on every model apply): new ones start INCOMPLETE,
   * gone ones are dropped, the others keep their state. */
  want(addrs: Iterable<string>): NeighborWantResult {
    const wanted = new Set<string>();
    for (const a of addrs) wanted.add(formatIpv6(ip6Bytes(a), 0));
    for (const [text, id] of this.idOf) {
      if (wanted.has(text)) continue;
      this.idOf.delete(text);
      this.addrOf.delete(id);
      this.textOf.delete(id);
    }
    for (const text of wanted) {
      if (this.idOf.has(text)) continue;
      const id = this.nextId++;
      this.idOf.set(text, id);
      this.addrOf.set(id, ip6Bytes(text));
      this.textOf.set(id, text);
    }
    let size = 16;
    while (size < this.idOf.size * 2) size *= 2;
    const slots = new Int32Array(size);
    for (const [id, a] of this.addrOf) {
      let h = hash16(a, 0) & (size - 1);
      while (slots[h] !== 0) h = (h + 1) & (size - 1);
      slots[h] = id;
    }
    this.slots = slots;
    return this.table.want(this.idOf.values());
  }

  /** The id of the address at b[off..+16], 0 if not wanted. No allocation. */
  private find(b: Uint8Array, off: number): number {
    const slots = this.slots;
    const mask = slots.length - 1;
    let h = hash16(b, off) & mask;
    for (;;) {
      const id = slots[h];
      if (id === 0) return 0;
      const a = this.addrOf.get(id)!;
      let same = true;
      for (let k = 0; k < 16; k++) if (a[k] !== b[off + k]) { same = false; break; }
      if (same) return id;
      h = (h + 1) & mask;
    }
  }

  /** The id of a wanted address at b[off..+16] the table tracks: the pending queue's key. 0: not
   * wanted (a next hop of a model the table has not been given yet); -1: wanted but refused by the
   * table's size bound, so never solicited. No allocation. */
  idAt(b: Uint8Array, off: number): number {
    const id = this.find(b, off);
    if (id === 0) return 0;
    return this.table.tracks(id) ? id : -1;
  }

  neighbor6(ip6: string): Uint8Array | undefined {
    const id = this.idOf.get(ip6);
    return id === undefined ? undefined : this.table.mac(id);
  }

  /** True while that neighbour is FAILED (its next hops drop and count their packets). */
  failed6(ip6: string): boolean {
    const id = this.idOf.get(ip6);
    return id !== undefined && this.table.failed(id);
  }

  /** The neighbours `failed6` is true for, with when their first unanswered round ended (ms epoch). */
  failedEntries6(): Array<{ ip6: string; since: number }> {
    return this.table.failedEntries().map((f) => ({ ip6: this.textOf.get(f.key) ?? `#${f.key}`, since: f.since }));
  }

  /**
   * Set on a forwarding worker whose underlay neighbours the main thread resolves
   * (EngineOptions.onResolve6): a solicitation due here is asked of it (by address) instead of sent,
   * and the tick's probes are left to its own tick (same entries; answers are shared).
   */
  delegate: ((ip6: string) => void) | null = null;

  /** An unresolved (or failed) next hop's address, 16 bytes at b[off]: solicit it when the table
   * says a probe is due (at most one per retransmit interval, none during a hold-down). */
  request(b: Uint8Array, off: number, now: number): void {
    const id = this.find(b, off);
    if (id !== 0 && this.table.request(id, now)) this.solicitDue(id);
  }

  /** The same by the address's text (a forwarding worker's ask: Engine.resolveShared6); an address
   * no next hop wants is ignored. */
  requestText(ip6: string, now = Date.now()): void {
    const id = this.idOf.get(ip6);
    if (id !== undefined && this.table.mac(id) === undefined && this.table.request(id, now)) this.solicitDue(id);
  }

  /** Solicit every wanted neighbour without a MAC now (after a model apply), not on the first packet. */
  solicitMissing(now = Date.now()): void {
    for (const id of this.addrOf.keys()) if (this.table.mac(id) === undefined && this.table.request(id, now)) this.solicitDue(id);
  }

  /** A probe the table said is due for `id`: sent, or asked of the main thread (delegate). */
  private solicitDue(id: number): void {
    if (this.delegate) this.delegate(this.textOf.get(id)!);
    else this.solicit(id, undefined);
  }

  /** Age the entries (engine's neighbour timer): send the probes due, mark the next hops of
   * neighbours that stopped answering failed. */
  tick(now: number): void {
    const t = this.table.tick(now);
    if (!this.delegate) for (const id of t.probe) this.solicit(id, this.table.unicastTo(id));
    const nh = this.pipe.v6.nh;
    for (const c of t.changed) {
      if (c.mac === null && this.pipe.held) this.pipe.dropHeld(FAMILY_V6, c.ip);
      const a = this.addrOf.get(c.ip);
      if (c.mac === null && a !== undefined && nh && failNeighbor6(nh, a, 0) > 0) this.log(`IPv6 neighbour ${this.textOf.get(c.ip)} stopped answering: its next hops drop their packets (neighbor_failed) until it answers`, 'warn');
    }
  }

  /** An NA another worker received for `ip6` (PACKET_FANOUT may hand the answers to our probes
   * to another worker): taken as a reply, or as an announcement when it was one (`announced`: a
   * reply would be held by the lock window while this table's entry is REACHABLE, and this worker's
   * flows would keep the old MAC until the entry went stale). */
  learnShared(ip6: string, mac: Uint8Array, announced = false, now = Date.now()): void {
    const id = this.idOf.get(ip6);
    if (id === undefined) return;
    if (announced ? this.table.onAnnounce(id, mac, 0, now) : this.table.onReply(id, mac, 0, now)) {
      const nh = this.pipe.v6.nh;
      if (nh && learnNeighbor6(nh, this.addrOf.get(id)!, 0, mac, 0) > 0) this.logChange(ip6, () => `IPv6 neighbour ${ip6} is ${formatMac(mac, 0)}`);
    }
    this.releaseHeld(id);
  }

  /** Packets held for neighbour `id` leave now if the table has its MAC (the table's: an NA it
   * refused releases nothing). */
  private releaseHeld(id: number): void {
    const q = this.pipe.held;
    if (q == null || q.size === 0) return;
    const m = this.table.mac(id);
    if (m !== undefined) this.pipe.releaseHeld(FAMILY_V6, id, m, 0);
  }

  /** Send a Neighbor Solicitation for `id`: to its solicited-node multicast group, or unicast to
   * the cached MAC `to` (re-probing a known neighbour). */
  private solicit(id: number, to: Uint8Array | undefined): void {
    const v6 = this.pipe.v6;
    const mac = this.underlayMac();
    const target = this.addrOf.get(id);
    if (!v6.hasNodeIp6 || mac === null || target === undefined) return;
    this.sendUnderlay((pb, f) => writeNeighborSolicit(pb, f, mac, v6.nodeIp6, 0, target, 0, to));
  }

  /** A valid NA on the underlay (validated by pipeline6): target at b[targetOff], the flags byte
   * 4 bytes before it, the MAC at b[macOff]. */
  onAdvert(b: Uint8Array, targetOff: number, macOff: number, now = Date.now()): void {
    const id = this.find(b, targetOff);
    const flags = b[targetOff - 4];
    let changed: boolean;
    const solicited = (flags & NA_FLAG_SOLICITED) !== 0;
    if (solicited) changed = this.table.onReply(id, b, macOff, now);
    else if ((flags & NA_FLAG_OVERRIDE) !== 0) changed = this.table.onAnnounce(id, b, macOff, now);
    else return;
    if (this.share !== undefined && id !== 0) {
      const m = this.table.mac(id);
      if (m !== undefined && macEquals(m, 0, b, macOff)) this.share(this.textOf.get(id)!, b.slice(macOff, macOff + 6), !solicited);
    }
    if (changed) {
      const nh = this.pipe.v6.nh;
      if (nh && learnNeighbor6(nh, b, targetOff, b, macOff) > 0 && id !== 0) {
        const ip6 = this.textOf.get(id)!;
        this.logChange(ip6, () => `IPv6 neighbour ${ip6} is ${formatMac(b, macOff)}`);
      }
    }
    if (id !== 0) this.releaseHeld(id);
  }
}

/** NA flags (RFC 4861 4.4), in the byte after the ICMPv6 checksum. */
const NA_FLAG_SOLICITED = 0x40;
const NA_FLAG_OVERRIDE = 0x20;

/** FNV-1a over 16 bytes: the Neighbors6 index's hash (int arithmetic, no allocation). */
function hash16(b: Uint8Array, off: number): number {
  let h = 0x811c9dc5 | 0;
  for (let k = 0; k < 16; k++) h = Math.imul(h ^ b[off + k], 0x01000193);
  return h & 0x7fffffff;
}

/** `podway routes` rows for the IPv6 table (same columns as IPv4's). */
export function routeRows6(nh: NextHops6 | null, withheld: (endpoint: string | null) => string): { cidr: string; kind: string; withheld?: string; node: string; via: string; gateway?: string; vtepMac: string; mtu: number; nextHopMac: string; pool: string }[] {
  if (!nh) return [];
  // a local /128 without a port is not in the FIB (engine.ts routes(): shown withheld)
  return nh.routes.map((r, i) => ({
    cidr: r.cidr,
    kind: nh.kind[i] === NhKind.LOCAL && nh.port[i] < 0 ? 'withheld' : NH_KIND_NAMES[nh.kind[i]],
    ...(nh.kind[i] === NhKind.LOCAL && nh.port[i] < 0 ? { withheld: withheld(r.endpoint) } : {}),
    node: r.node,
    via: r.nodeIp6 ?? r.endpoint ?? '',
    // the underlay neighbour when it is not `via` itself: the gateway towards a node off the link
    ...(r.nodeIp6 !== null && (nh.kind[i] === NhKind.VXLAN || nh.kind[i] === NhKind.DIRECT) && formatIpv6(nh.gw6, i * 16) !== r.nodeIp6 ? { gateway: formatIpv6(nh.gw6, i * 16) } : {}),
    vtepMac: r.vtepMac ?? '',
    mtu: r.mtu,
    nextHopMac: nh.macKnown[i] === MAC_KNOWN ? formatMac(nh.mac, i * 6) : nh.macKnown[i] === MAC_FAILED ? 'failed' : '',
    pool: r.pool ?? '',
  }));
}
