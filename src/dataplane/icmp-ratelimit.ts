/**
 * Rate limits on the ICMP/ICMPv6 errors podway sends (time exceeded, destination unreachable), as
 * the node's kernel limits its own (net/ipv4/icmp.c, net/ipv6/icmp.c; Linux 6.18's behaviour):
 *
 * - a global token bucket: `net.ipv4.icmp_msgs_per_sec` (1000) refilled, at most
 *   `net.ipv4.icmp_msgs_burst` (50) held, shared by IPv4 and IPv6. As the kernel's: an error may
 *   go while credit is above 0; at 0 the bucket refills only once 20 ms have passed since its last
 *   refill (with what that time earned, at most one second's worth); a sent error takes 0, 1 or 2
 *   credits at random (1 on average), so a prober cannot count the credit exactly (the kernel's
 *   answer to the SAD DNS side channel).
 * - per destination (the error's, i.e. the offending packet's source): the inetpeer bucket, which
 *   earns one token per ms up to 6 times `ratelimit`, and an error costs `ratelimit` tokens: a
 *   burst of 6, then one per `ratelimit` ms. IPv4 `net.ipv4.icmp_ratelimit` 1000 ms; IPv6
 *   `net.ipv6.icmp.ratelimit` 100 ms (Linux 6.18 and the stable kernels since February 2026; before,
 *   1000 ms divided by 2 per 32 bits of prefix the route back was shorter than /128). 0 turns the
 *   per-destination limit off, as the sysctl does.
 *
 * Only the types the kernel limits by default are limited (`icmp_ratemask` 0x1818, ICMPv6
 * `ratemask` 0-1,3-127): IPv4 destination unreachable except fragmentation needed, and time
 * exceeded; ICMPv6 every error but Packet Too Big. PMTU discovery is never limited. The caller
 * decides (limited4/limited6).
 *
 * Per worker: each forwarding thread has its own pipeline, so its own buckets (the kernel's global
 * one is per network namespace): N workers may send N times the global rate. Bounded memory: the
 * per-destination buckets live in a fixed direct-mapped table per family (TABLE_SIZE slots, keyed
 * by a seeded hash of the address); a destination that lands on a slot another holds takes it over
 * with a full bucket (many sources can each get their burst; the global bucket still bounds the
 * total). No allocation per packet: typed arrays and numbers only.
 */

export interface IcmpRateLimits {
  /** Global refill, errors per second (`net.ipv4.icmp_msgs_per_sec`); 0: no global limit. */
  msgsPerSec: number;
  /** Global bucket size (`net.ipv4.icmp_msgs_burst`). */
  msgsBurst: number;
  /** IPv4 per-destination interval in ms (`net.ipv4.icmp_ratelimit`); 0: no per-destination limit. */
  ratelimit4Ms: number;
  /** IPv6 per-destination interval in ms (`net.ipv6.icmp.ratelimit`); 0: no per-destination limit. */
  ratelimit6Ms: number;
}

export const DEFAULT_ICMP_LIMITS: Readonly<IcmpRateLimits> = { msgsPerSec: 1000, msgsBurst: 50, ratelimit4Ms: 1000, ratelimit6Ms: 100 };

/** The inetpeer bucket holds 6 errors' worth of tokens (XRLIM_BURST_FACTOR). */
export const PER_DEST_BURST = 6;
/** Slots of each family's per-destination table (a power of 2). */
export const TABLE_SIZE = 1024;

export class IcmpRateLimiter {
  private limits: IcmpRateLimits = { ...DEFAULT_ICMP_LIMITS };
  /** Global credit: 0 and never refilled at first, so the first error refills a full second's
   * worth (capped at the burst), as the kernel's first does. */
  private credit = 0;
  /** When the global bucket last refilled (ms); -Infinity: never. */
  private stamp = -Infinity;
  private rnd: number;
  private readonly hashSeed: number;
  // per-destination tables: IPv4 key = the address; IPv6 key = its four 32-bit words
  private readonly used4 = new Uint8Array(TABLE_SIZE);
  private readonly key4 = new Int32Array(TABLE_SIZE);
  private readonly tokens4 = new Float64Array(TABLE_SIZE);
  private readonly last4 = new Float64Array(TABLE_SIZE);
  private readonly used6 = new Uint8Array(TABLE_SIZE);
  private readonly key6 = new Int32Array(TABLE_SIZE * 4);
  private readonly tokens6 = new Float64Array(TABLE_SIZE);
  private readonly last6 = new Float64Array(TABLE_SIZE);
  /** Errors refused by the global bucket, and by a destination's (for tests and the log). */
  refusedGlobal = 0;
  refusedDest = 0;

  constructor(seed = (Math.random() * 0x100000000) >>> 0) {
    this.rnd = seed | 1;
    this.hashSeed = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) | 0;
  }

  get config(): Readonly<IcmpRateLimits> {
    return this.limits;
  }

  /** New limits (checked by the caller: integers >= 0); the buckets start over, full. */
  configure(l: Partial<IcmpRateLimits>): void {
    this.limits = { ...this.limits, ...l };
    this.credit = 0;
    this.stamp = -Infinity;
    this.used4.fill(0);
    this.used6.fill(0);
  }

  /** May an IPv4 error for `dst` (the offending packet's source) go at `now` (ms)? */
  allow4(dst: number, now: number): boolean {
    if (!this.globalAllow(now)) {
      this.refusedGlobal++;
      return false;
    }
    const tmo = this.limits.ratelimit4Ms;
    if (tmo > 0) {
      const s = this.slot(dst | 0, 0, 0, 0);
      if (this.used4[s] === 0 || this.key4[s] !== (dst | 0)) {
        this.used4[s] = 1;
        this.key4[s] = dst | 0;
        this.tokens4[s] = PER_DEST_BURST * tmo;
        this.last4[s] = now;
      }
      if (!this.peerAllow(this.tokens4, this.last4, s, tmo, now)) {
        this.refusedDest++;
        return false;
      }
    }
    this.consume();
    return true;
  }

  /** The same for an IPv6 error to the address at b[off..off+16]. */
  allow6(b: Uint8Array, off: number, now: number): boolean {
    if (!this.globalAllow(now)) {
      this.refusedGlobal++;
      return false;
    }
    const tmo = this.limits.ratelimit6Ms;
    if (tmo > 0) {
      const w0 = (b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
      const w1 = (b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7];
      const w2 = (b[off + 8] << 24) | (b[off + 9] << 16) | (b[off + 10] << 8) | b[off + 11];
      const w3 = (b[off + 12] << 24) | (b[off + 13] << 16) | (b[off + 14] << 8) | b[off + 15];
      const s = this.slot(w0, w1, w2, w3);
      const k = this.key6;
      const o = s * 4;
      if (this.used6[s] === 0 || k[o] !== w0 || k[o + 1] !== w1 || k[o + 2] !== w2 || k[o + 3] !== w3) {
        this.used6[s] = 1;
        k[o] = w0; k[o + 1] = w1; k[o + 2] = w2; k[o + 3] = w3;
        this.tokens6[s] = PER_DEST_BURST * tmo;
        this.last6[s] = now;
      }
      if (!this.peerAllow(this.tokens6, this.last6, s, tmo, now)) {
        this.refusedDest++;
        return false;
      }
    }
    this.consume();
    return true;
  }

  /** icmp_global_allow: credit left, or a refill at least 20 ms after the last one. */
  private globalAllow(now: number): boolean {
    const l = this.limits;
    if (l.msgsPerSec === 0) return true;
    if (this.credit > 0) return true;
    if (now < this.stamp) this.stamp = now; // the clock went back: count from now
    const delta = Math.min(now - this.stamp, 1000);
    if (delta < 20) return false;
    const incr = Math.floor((l.msgsPerSec * delta) / 1000);
    if (incr === 0) return false;
    this.stamp = now;
    this.credit = Math.min(this.credit + incr, l.msgsBurst);
    return true;
  }

  /** icmp_global_consume: 0, 1 or 2 credits (the credit may go below 0). */
  private consume(): void {
    if (this.limits.msgsPerSec === 0) return;
    let x = this.rnd;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rnd = x;
    this.credit -= (x >>> 0) % 3;
  }

  /** inet_peer_xrlim_allow: tokens earned since last (1 per ms, at most 6 x tmo); an error costs tmo. */
  private peerAllow(tokens: Float64Array, last: Float64Array, s: number, tmo: number, now: number): boolean {
    let t = tokens[s];
    const el = now - last[s];
    if (el > 0) t += el;
    last[s] = now;
    if (t > PER_DEST_BURST * tmo) t = PER_DEST_BURST * tmo;
    let ok = false;
    if (t >= tmo) {
      t -= tmo;
      ok = true;
    }
    tokens[s] = t;
    return ok;
  }

  private slot(w0: number, w1: number, w2: number, w3: number): number {
    let h = this.hashSeed ^ w0;
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d) ^ w1;
    h = Math.imul(h ^ (h >>> 15), 0x846ca68b) ^ w2;
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d) ^ w3;
    h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
    return (h ^ (h >>> 16)) & (TABLE_SIZE - 1);
  }
}
