/**
 * The underlay neighbour table: the MACs of the underlay next hops podway writes outer Ethernet
 * headers for (remote nodes on our subnet, else gateways), with ageing, a size bound and
 * re-resolution, modelled on the kernel's neighbour states (include/uapi/linux/neighbour.h):
 *
 *   INCOMPLETE  wanted, no MAC yet: ARP requests are broadcast every `retransMs`, at most `probes`
 *               of them, then FAILED.
 *   REACHABLE   a reply confirmed the MAC less than `reachableMs` ago (the kernel's
 *               base_reachable_time, 30 s).
 *   STALE       confirmed longer ago: the MAC is still used for forwarding while it is re-probed
 *               (unicast to the cached MAC, the last probe broadcast); a reply makes it REACHABLE
 *               again, `probes` unanswered probes make it FAILED and withdraw the MAC. The kernel
 *               keeps STALE entries unprobed until traffic uses them (DELAY, then PROBE); podway's
 *               entries are exactly the next hops that carry its traffic, so waiting for traffic
 *               would only delay the check, and this STALE is the kernel's PROBE.
 *   FAILED      no MAC; retried (as INCOMPLETE) after a hold-down, so a dead neighbour costs one
 *               burst of requests per hold-down, not one per packet. The hold-down backs off:
 *               `holdDownMs` after the first failed round, doubled after each further one, at most
 *               `maxHoldDownMs`; an answer resets it. `tick` reports every entry that enters FAILED
 *               (`changed`, `mac: null`): the engine marks the next hops through it failed, and the
 *               pipeline drops their packets with the counter `neighbor_failed` until an answer
 *               arrives (a dead peer's traffic is counted, not sent into the void or to the kernel).
 *
 * The table keys entries by a number: the IPv4 address for ARP, a small id per address for IPv6
 * (engine6.ts Neighbors6, which sends Neighbor Solicitations from the same states); `format` names
 * a key for `entries`.
 *
 * Only addresses podway needs are tracked (`want`, set from the next hops on every model apply).
 * ARP for any other sender is counted and never stored, like the kernel's arp_accept=0: a hostile
 * host on the underlay cannot grow the table by inventing senders. The table never sets timers and
 * never reads the clock on its own for the per-reply and per-packet calls: the engine passes `now`
 * and calls `tick(now)` once a second, which keeps tests deterministic and the engine in charge of
 * sending frames.
 *
 * Per-packet and per-reply calls (`request`, `onReply`, `onAnnounce`, `mac`) do not allocate:
 * entries are created only by `want` and are looked up by a signed 32-bit key, a V8 small integer;
 * an unsigned address above 2^31 would be a heap number, boxed on every Map lookup.
 */
import { copyMac, formatMac, macEquals } from '../packet/ethernet';
import { formatIpv4 } from '../packet/ipv4';

export const NeighborState = {
  INCOMPLETE: 1,
  REACHABLE: 2,
  STALE: 3,
  FAILED: 4,
} as const;
export type NeighborStateValue = (typeof NeighborState)[keyof typeof NeighborState];

export const NEIGHBOR_STATE_NAMES = ['', 'incomplete', 'reachable', 'stale', 'failed'] as const;
export type NeighborStateName = Exclude<(typeof NEIGHBOR_STATE_NAMES)[number], ''>;

/** The timings a node can set (`podway run --neighbor-*`), for ARP and NDP alike. */
export type NeighborTimings = Pick<NeighborTableOptions, 'reachableMs' | 'retransMs' | 'probes' | 'holdDownMs' | 'maxHoldDownMs'>;

export interface NeighborTableOptions {
  /** The clock for `want` and `entries`, which take no `now` (default Date.now). */
  now?: () => number;
  /** How long a reply keeps an entry REACHABLE (the kernel's base_reachable_time, 30 s). */
  reachableMs?: number;
  /** Between two probes of one address (the kernel's retrans_time, 1 s). */
  retransMs?: number;
  /** Unanswered probes before FAILED (the kernel's mcast_probes / ucast_probes, 3). */
  probes?: number;
  /** How long a FAILED entry waits before it is resolved again (10 s), after its first failed round. */
  holdDownMs?: number;
  /** The hold-down doubles with each further failed round up to this (60 s). */
  maxHoldDownMs?: number;
  /** The text of a key for `entries` (default: the key as an IPv4 address). */
  format?: (key: number) => string;
  /**
   * A reply with a different MAC is ignored this long after a REACHABLE entry last changed (the
   * kernel's locktime, 1 s): when two hosts answer one broadcast request (a proxy ARP beside the
   * real owner), the first answer wins instead of the MAC flapping between them on every probe. A
   * STALE entry (being probed) takes a different MAC at once, and so does a gratuitous ARP
   * (`onAnnounce`), as in the kernel.
   */
  lockMs?: number;
  /** Most addresses tracked at once; wanted addresses beyond it are refused and counted. */
  maxEntries?: number;
}

/** What the engine does after a tick. */
export interface NeighborTick {
  /** Addresses to send an ARP request for now (see `unicastTo` for the destination MAC). */
  probe: number[];
  /**
   * MACs the next hops must change: a neighbour whose round of probes went unanswered (STALE or
   * INCOMPLETE to FAILED) is reported with `mac: null`, and its next hops are marked failed (their
   * packets dropped and counted). MACs learned or changed by a reply are reported by
   * `onReply`/`onAnnounce` returning true, at once, not here.
   */
  changed: Array<{ ip: number; mac: Uint8Array | null }>;
}

export interface NeighborWantResult {
  added: number;
  dropped: number;
  /** Wanted addresses not tracked because the table is full. */
  refused: number;
  /** True on the first `want` that refuses after one that did not: log the overflow once. */
  firstRefusal: boolean;
}

/** One entry as `podway status` shows it. */
export interface NeighborEntryView {
  ip: string;
  mac: string | null;
  state: NeighborStateName;
  /** Since the state or MAC last changed. */
  ageMs: number;
  /** Since a reply last confirmed the MAC (null: never). */
  confirmedAgoMs: number | null;
  /** Probes sent in the current INCOMPLETE/STALE round. */
  probes: number;
}

export interface NeighborCounters {
  /** Addresses tracked now / wanted by the last `want` (more than tracked when some were refused). */
  entries: number;
  wanted: number;
  /** A MAC became known (INCOMPLETE/FAILED to REACHABLE/STALE). */
  learned: number;
  /** A reply repeated the known MAC (REACHABLE kept or restored). */
  confirmed: number;
  /** A wanted neighbour answered with a different MAC; the next hops were rewritten. */
  macChanged: number;
  /** A different MAC inside the lock window, ignored. */
  locked: number;
  /** ARP (NA) from a sender (target) podway does not want: ignored, not stored. */
  unsolicited: number;
  /** ARP whose sender MAC cannot be a neighbour's (zero, multicast or broadcast): ignored. */
  invalid: number;
  /** Wanted addresses refused by the bound (counted on every `want` that refuses them). */
  refused: number;
  /** ARP requests the table asked for (ticks and `request`). */
  probes: number;
  /** Rounds of probes that went unanswered (INCOMPLETE or STALE to FAILED). */
  failed: number;
  /** MACs withdrawn from the next hops (STALE to FAILED). */
  withdrawn: number;
  /** Gratuitous ARPs / unsolicited NAs (and requests) that named a new or changed MAC, taken. */
  announced: number;
  /** Entries FAILED now. */
  failedNow: number;
}

const { INCOMPLETE, REACHABLE, STALE, FAILED } = NeighborState;

class Entry {
  /** The last MAC heard; used for forwarding only while `known` (REACHABLE or STALE). */
  readonly mac = new Uint8Array(6);
  known = false;
  state: NeighborStateValue = INCOMPLETE;
  /** Probes sent in the current round. */
  probes = 0;
  /** INCOMPLETE/STALE: the next probe is due; FAILED: the hold-down ends. 0: at once. */
  nextProbeAt = 0;
  /** The last reply that confirmed the MAC (-1: none). */
  confirmedAt = -1;
  /** The last change of state or MAC (the kernel's `updated`, which the lock window counts from). */
  updatedAt: number;
  /** Rounds failed in a row (the hold-down's back-off); 0 after an answer. */
  failStreak = 0;
  /** When the first of those rounds failed (status: "unreachable since"). */
  failedSince = 0;

  constructor(readonly ip: number, now: number) {
    this.updatedAt = now;
  }
}

export class NeighborTable {
  private readonly clock: () => number;
  private readonly reachableMs: number;
  private readonly retransMs: number;
  private readonly maxProbes: number;
  private readonly holdDownMs: number;
  private readonly maxHoldDownMs: number;
  private readonly lockMs: number;
  private readonly format: (key: number) => string;
  readonly maxEntries: number;
  /** Keyed by `ip | 0` (see the file comment). */
  private readonly byIp = new Map<number, Entry>();
  private wantedCount = 0;
  /** The last `want` refused something (to report only the first refusal of an overflow). */
  private overflowing = false;
  private readonly c = {
    learned: 0, confirmed: 0, macChanged: 0, locked: 0, unsolicited: 0, invalid: 0,
    refused: 0, probes: 0, failed: 0, withdrawn: 0, announced: 0,
  };

  constructor(opts: NeighborTableOptions = {}) {
    this.clock = opts.now ?? Date.now;
    this.reachableMs = opts.reachableMs ?? 30_000;
    this.retransMs = opts.retransMs ?? 1_000;
    this.maxProbes = Math.max(1, opts.probes ?? 3);
    this.holdDownMs = opts.holdDownMs ?? 10_000;
    this.maxHoldDownMs = Math.max(this.holdDownMs, opts.maxHoldDownMs ?? 60_000);
    this.format = opts.format ?? formatIpv4;
    this.lockMs = opts.lockMs ?? 1_000;
    this.maxEntries = opts.maxEntries ?? 4096;
  }

  get size(): number {
    return this.byIp.size;
  }

  /**
   * The addresses podway needs (the gateways of the current next hops); called on every model
   * apply. Entries no longer wanted are dropped (their next hops are gone with the old model);
   * new ones start INCOMPLETE with a probe due at once. 0.0.0.0 is never a neighbour and is skipped.
   */
  want(ips: Iterable<number>): NeighborWantResult {
    const wanted = new Set<number>();
    for (const ip of ips) if (ip >>> 0 !== 0) wanted.add(ip | 0);
    let dropped = 0;
    for (const key of this.byIp.keys()) {
      if (!wanted.has(key)) {
        this.byIp.delete(key);
        dropped++;
      }
    }
    let added = 0;
    let refused = 0;
    const now = this.clock();
    for (const key of wanted) {
      if (this.byIp.has(key)) continue;
      if (this.byIp.size >= this.maxEntries) {
        refused++;
        continue;
      }
      this.byIp.set(key, new Entry(key >>> 0, now));
      added++;
    }
    this.wantedCount = wanted.size;
    this.c.refused += refused;
    const firstRefusal = refused > 0 && !this.overflowing;
    this.overflowing = refused > 0;
    return { added, dropped, refused, firstRefusal };
  }

  /** True when the table keeps an entry for `ip` (wanted, and not refused by the size bound): only
   * such a neighbour is ever asked for, so only its packets are worth holding. No allocation. */
  tracks(ip: number): boolean {
    return this.byIp.has(ip | 0);
  }

  /** The MAC to forward to, or undefined. A view owned by the table, updated in place: copy it to keep it. */
  mac(ip: number): Uint8Array | undefined {
    const e = this.byIp.get(ip | 0);
    return e !== undefined && e.known ? e.mac : undefined;
  }

  /**
   * The pipeline met a next hop through `ip` without a MAC: true if an ARP request should be sent
   * now. At most one per `retransMs` per address, `probes` per round, then none until the
   * hold-down ends; never for addresses not wanted. Called per packet: no allocation. Read the
   * clock once per batch and pass that: Date.now() itself returns a heap number, so calling it per
   * packet allocates (measured: ~30 scavenges per 2M calls, none with a `now` read beforehand).
   */
  request(ip: number, now: number): boolean {
    const e = this.byIp.get(ip | 0);
    if (e === undefined || now < e.nextProbeAt) return false;
    // A round whose probes are all sent is failed by the next tick (which reports it), not here.
    if (e.state === INCOMPLETE && e.probes >= this.maxProbes) return false;
    if (e.state === INCOMPLETE || e.state === FAILED) return this.stepUnresolved(e, now);
    // REACHABLE and STALE have a MAC; their probes come from tick().
    return false;
  }

  /** The entry an ARP sender `ip` with the MAC at b[macOff..+6] may update: undefined (and
   * counted) when the address is not wanted or the MAC cannot be a neighbour's. */
  private wantedSender(ip: number, b: Uint8Array, macOff: number) {
    const e = this.byIp.get(ip | 0);
    if (e === undefined) {
      this.c.unsolicited++;
      return undefined;
    }
    if (!isNeighborMac(b, macOff)) {
      this.c.invalid++;
      return undefined;
    }
    return e;
  }

  /**
   * An ARP reply from `ip` with its MAC at b[macOff..+6]. Returns true when the next hops through
   * `ip` must be given this MAC (learned, or changed); false when it only confirmed the known MAC
   * or was ignored. No allocation.
   */
  onReply(ip: number, b: Uint8Array, macOff: number, now: number): boolean {
    const e = this.wantedSender(ip, b, macOff);
    if (e === undefined) return false;
    if (e.known) {
      if (macEquals(e.mac, 0, b, macOff)) {
        if (e.state !== REACHABLE) e.updatedAt = now;
        this.confirm(e, now);
        this.c.confirmed++;
        return false;
      }
      // Only a REACHABLE entry is locked (the kernel's neigh_update keeps the MAC of a connected
      // entry without override): a STALE one is being probed, and the answer to its broadcast
      // probe is how a MAC that changed silently is found.
      if (e.state === REACHABLE && now - e.updatedAt < this.lockMs) {
        this.c.locked++;
        return false;
      }
      this.c.macChanged++;
    } else {
      this.c.learned++;
      e.known = true;
    }
    copyMac(e.mac, 0, b, macOff);
    e.updatedAt = now;
    this.confirm(e, now);
    return true;
  }

  /**
   * A gratuitous ARP (unsolicited NA with the override flag), or a request, whose sender is `ip`
   * with its MAC at b[macOff..+6]. It names a MAC but does not prove the owner answers us, so a new
   * or different MAC is taken at once (a migrated VM or a rebuilt node announces itself this way)
   * as STALE, and probed at the next tick. An ordinary request (`gratuitous` false: a neighbour
   * asking for someone) is held by the lock window like a reply, as in the kernel's arp_process;
   * an announcement is not. Returns true when the next hops must be given this MAC. No allocation.
   */
  onAnnounce(ip: number, b: Uint8Array, macOff: number, now: number, gratuitous = true): boolean {
    const e = this.wantedSender(ip, b, macOff);
    if (e === undefined) return false;
    if (e.known && macEquals(e.mac, 0, b, macOff)) return false;
    if (e.known && !gratuitous && e.state === REACHABLE && now - e.updatedAt < this.lockMs) {
      this.c.locked++;
      return false;
    }
    this.c.announced++;
    if (e.known) this.c.macChanged++;
    else this.c.learned++;
    copyMac(e.mac, 0, b, macOff);
    e.known = true;
    e.state = STALE;
    e.probes = 0;
    e.nextProbeAt = now;
    e.updatedAt = now;
    return true;
  }

  /**
   * Where to send the probe `tick` just asked for: the cached MAC while a STALE entry is being
   * re-checked (unicast, as the kernel's ucast_probes: no broadcast to every host on the underlay
   * every `reachableMs` per neighbour), undefined for broadcast. The last probe of a round is
   * broadcast, so a neighbour whose MAC changed without announcing it is found before the entry fails.
   */
  unicastTo(ip: number): Uint8Array | undefined {
    const e = this.byIp.get(ip | 0);
    return e !== undefined && e.state === STALE && e.known && e.probes < this.maxProbes ? e.mac : undefined;
  }

  /** True while `ip`'s entry is FAILED or in the round after a failure, with no MAC: its
   * next hops drop (and count) their packets. */
  failed(ip: number): boolean {
    const e = this.byIp.get(ip | 0);
    return e !== undefined && !e.known && e.failStreak > 0;
  }

  /** The addresses `failed` is true for, with when their first unanswered round ended (ms epoch
   * of the table's clock), sorted by address: `podway status`'s unreachable nodes, the gauge
   * podway_underlay_neighbors_failed. */
  failedEntries(): Array<{ key: number; since: number }> {
    const out: Array<{ key: number; since: number }> = [];
    for (const e of this.byIp.values()) if (!e.known && e.failStreak > 0) out.push({ key: e.ip, since: e.failedSince });
    return out.sort((a, b) => a.key - b.key);
  }

  /** Age the entries; returns the probes to send and the MACs withdrawn. Called once a second. */
  tick(now: number): NeighborTick {
    const probe: number[] = [];
    const changed: Array<{ ip: number; mac: Uint8Array | null }> = [];
    for (const e of this.byIp.values()) {
      if (e.state === REACHABLE) {
        if (now - e.confirmedAt < this.reachableMs) continue;
        e.state = STALE;
        e.probes = 0;
        e.nextProbeAt = now;
        e.updatedAt = now;
      }
      if (now < e.nextProbeAt) continue;
      if (e.state === STALE) {
        if (e.probes < this.maxProbes) {
          e.probes++;
          e.nextProbeAt = now + this.retransMs;
          this.c.probes++;
          probe.push(e.ip);
        } else {
          this.fail(e, now);
          e.known = false;
          this.c.withdrawn++;
          changed.push({ ip: e.ip, mac: null });
        }
      } else if (e.state === INCOMPLETE && e.probes >= this.maxProbes) {
        this.fail(e, now);
        changed.push({ ip: e.ip, mac: null });
      } else if (this.stepUnresolved(e, now)) {
        probe.push(e.ip);
      }
    }
    return { probe, changed };
  }

  /** For `podway status`, sorted by address. */
  entries(now: number = this.clock()): NeighborEntryView[] {
    return [...this.byIp.values()]
      .sort((a, b) => a.ip - b.ip)
      .map((e) => ({
        ip: this.format(e.ip),
        mac: e.known ? formatMac(e.mac) : null,
        state: NEIGHBOR_STATE_NAMES[e.state] as NeighborStateName,
        ageMs: now - e.updatedAt,
        confirmedAgoMs: e.confirmedAt < 0 ? null : now - e.confirmedAt,
        probes: e.probes,
      }));
  }

  counters(): NeighborCounters {
    let failedNow = 0;
    for (const e of this.byIp.values()) if (e.state === FAILED) failedNow++;
    return { entries: this.byIp.size, wanted: this.wantedCount, ...this.c, failedNow };
  }

  /** INCOMPLETE or FAILED with its time due: true to send a probe now. */
  private stepUnresolved(e: Entry, now: number): boolean {
    if (e.state === FAILED) {
      // The hold-down is over: a new round.
      e.state = INCOMPLETE;
      e.probes = 0;
      e.updatedAt = now;
    }
    if (e.probes >= this.maxProbes) return false;
    e.probes++;
    e.nextProbeAt = now + this.retransMs;
    this.c.probes++;
    return true;
  }

  private fail(e: Entry, now: number): void {
    if (e.failStreak === 0) e.failedSince = now;
    e.state = FAILED;
    e.probes = 0;
    e.nextProbeAt = now + Math.min(this.maxHoldDownMs, this.holdDownMs * 2 ** Math.min(e.failStreak, 16));
    e.failStreak++;
    e.updatedAt = now;
    this.c.failed++;
  }

  private confirm(e: Entry, now: number): void {
    e.state = REACHABLE;
    e.probes = 0;
    e.failStreak = 0;
    e.confirmedAt = now;
    e.nextProbeAt = 0;
  }
}

/** A unicast, non-zero MAC: a reply claiming a multicast or zero address is not a neighbour's. */
function isNeighborMac(b: Uint8Array, off: number): boolean {
  if ((b[off] & 1) !== 0) return false;
  return (b[off] | b[off + 1] | b[off + 2] | b[off + 3] | b[off + 4] | b[off + 5]) !== 0;
}
