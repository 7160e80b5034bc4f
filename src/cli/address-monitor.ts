/**
 * `podway run` keeps autodetecting the node's address, as calico-node's monitor-addresses does
 * (node/pkg/lifecycle/startup: AUTODETECT_POLL_INTERVAL, default 60 s): every interval it looks at
 * the node's addresses (first-found, host.ts readNodeAddresses) and, when the address it
 * autodetected changed, writes the new one to this node's Node (spec.bgp.ipv4Address, and
 * ipv6Address when IPv6 was autodetected; the tunnel addresses stay). The model thread sees the
 * Node change like any other, and the engine follows the new address (engine.ts followIp4);
 * other nodes follow it through the same Node.
 *
 * Which addresses are followed (decideAddressChange):
 * - given with --ip/--ip6 (or IP/IP6 set to an address): never, as Calico never changes a manually
 *   set address; the engine warns when it leaves the node (checkNodeAddress).
 * - --ip autodetect (IP=autodetect; --ip6/IP6 autodetect): first-found, whenever it differs from
 *   the registered address (Calico's IP=autodetect).
 * - unset: the start keeps the Node's own address when it has one (else first-found); a running
 *   podway replaces it with first-found only once it is no longer on the node. An IPv6 address
 *   found while the Node has none (added to a running node) is registered, as a restart would. An address still
 *   held is kept even if first-found would now pick another (no flapping between two addresses;
 *   an operator's choice written to the Node stays).
 * Nothing is concluded from a look that failed (`ip` failing), and no address found keeps the
 * registered one (Calico: "keeping existing value").
 *
 * When a registered address is seen gone from the node (whatever its source), addressLeft is told
 * once, before any write: connections made from that address (the model thread's etcd watch) are
 * dead, and nothing would say so before a keepalive times out; meanwhile this node would not see
 * its own Node change (run.ts makes the model thread reconnect, and this thread's etcd stores: a
 * call of a look waiting on such a connection is given up and made again over a new one). The
 * addresses are looked at on every tick, also while a look is still under way (waiting for the
 * datastore): a look's read or write sent just before the address left would otherwise hold the
 * news back until its deadline. The connections made then may
 * find no way out (the new address not up yet, or none while the old one comes back), and gRPC
 * only tries again after its backoff (capped at 5 s, etcd-kv.ts): so while a registered address
 * is gone, every look that finds a new address on the node (not link-local) tells addressAppeared
 * once, and run.ts makes new connections again (from it, at once).
 *
 * The stored Node naming an address no interface here holds (another process wrote it) is written
 * back (repairStoredAddress) by compare-and-swap on the foreign address read, and a Node
 * overwritten again and again after the repair backs the repair off instead of flapping (see
 * CONTEST_OVERWRITES).
 */
import { canonicalIpv6 } from '../packet/ipv6';
import type { NodeAddresses } from '../dataplane/host';
import type { NodeAddressChange } from './join';

/** Calico's DEFAULT_MONITOR_IP_POLL_INTERVAL. */
export const DEFAULT_AUTODETECT_POLL_MS = 60_000;

/** Where an address family's address comes from: see the file comment. */
export type AddressSource = 'manual' | 'autodetect' | 'default' | 'none';

/** --ip / IP as given: an address is manual, "autodetect" follows first-found, unset the default. */
export function addressSource(flag: string | undefined): AddressSource {
  if (flag === undefined) return 'default';
  if (flag === 'autodetect') return 'autodetect';
  if (flag === 'none') return 'none';
  return 'manual';
}

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A Go duration as Calico's AUTODETECT_POLL_INTERVAL takes it ("60s", "1m30s", "500ms", "0"),
 * in milliseconds; a bare number is seconds. Throws naming `what` on anything else.
 */
export function parseDuration(text: string, what: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let ms = 0;
  let at = 0;
  for (let m = re.exec(t); m !== null; m = re.exec(t)) {
    ms += Number(m[1]) * UNITS[m[2]];
    at = re.lastIndex;
  }
  if (t === '' || at !== t.length) throw new Error(`${what} ${JSON.stringify(text)}: expected a duration like 60s, 1m30s or 500ms (0 turns re-detection off)`);
  return ms;
}

/** The Node's addresses as the model holds them ("10.0.0.1/24", "fd00::1/64" or null; ipv4 null on
 * an IPv6-only node, IP=none). */
export interface RegisteredAddresses { ipv4: string | null; ipv6: string | null }

function sameCidr(a: string, b: string, v6: boolean): boolean {
  if (!v6) return a === b;
  const [x, px] = a.split('/');
  const [y, py] = b.split('/');
  return px === py && canonicalIpv6(x) === canonicalIpv6(y);
}

function held(seen: NodeAddresses, cidr: string, v6: boolean): boolean {
  const addr = cidr.split('/')[0];
  if (!v6) return seen.all.has(addr);
  const want = canonicalIpv6(addr);
  for (const a of seen.all) if (a.includes(':') && canonicalIpv6(a) === want) return true;
  return false;
}

/** One family's next address: the new one, or null to keep what is registered. */
function next(source: AddressSource, registered: string | null, found: string | undefined, seen: NodeAddresses, v6: boolean): string | null {
  if (source === 'manual' || source === 'none' || found === undefined) return null;
  // None registered: autodetect takes first-found; unset too for IPv6, as the start would (an
  // IPv6 address added to a running node is registered at the next look, not at the next start).
  // An IPv4 address is kept to the start's choice (none at start: an IPv6-only node stays so).
  if (registered === null) return source === 'autodetect' || (v6 && source === 'default') ? found : null;
  if (sameCidr(registered, found, v6)) return null;
  if (source === 'autodetect') return found;
  return held(seen, registered, v6) ? null : found;
}

/**
 * The Node as stored names an address no interface here holds while the model in force has one
 * that is held: another process wrote it (a second `podway run --node N` on another host or in
 * another network namespace, an operator's `apply`). The engine rejects such a model ("no
 * interface holds the node IP"), so without a repair the node stays on its last good state, not
 * ready, and every other node sends its pods' traffic to the foreign address. What to write back,
 * per family: the given address (--ip/--ip6), first-found for autodetect, else the address in
 * force when still held (else first-found). null: nothing to repair.
 */
export function repairStoredAddress(
  stored: RegisteredAddresses,
  inForce: RegisteredAddresses,
  seen: NodeAddresses,
  source: { v4: AddressSource; v6: AddressSource },
  given: { v4?: string; v6?: string } = {},
): NodeAddressChange | null {
  const one = (src: AddressSource, was: string | null, now: string | null, found: string | undefined, want: string | undefined, v6: boolean): string | null => {
    if (was === null || src === 'none' || held(seen, was, v6)) return null;
    const to = src === 'manual' ? want : src === 'autodetect' ? found : now !== null && held(seen, now, v6) ? now : found;
    return to === undefined || sameCidr(to, was, v6) ? null : to;
  };
  const ipv4Address = one(source.v4, stored.ipv4, inForce.ipv4, seen.ipv4, given.v4, false);
  const ipv6Address = one(source.v6, stored.ipv6, inForce.ipv6, seen.ipv6, given.v6, true);
  if (ipv4Address === null && ipv6Address === null) return null;
  return { ...(ipv4Address !== null ? { ipv4Address } : {}), ...(ipv6Address !== null ? { ipv6Address } : {}) };
}

/** What to write to the Node after a look at the node's addresses; null: nothing. */
export function decideAddressChange(registered: RegisteredAddresses, seen: NodeAddresses, source: { v4: AddressSource; v6: AddressSource }): NodeAddressChange | null {
  const ipv4Address = next(source.v4, registered.ipv4, seen.ipv4, seen, false);
  const ipv6Address = next(source.v6, registered.ipv6, seen.ipv6, seen, true);
  if (ipv4Address === null && ipv6Address === null) return null;
  return { ...(ipv4Address !== null ? { ipv4Address } : {}), ...(ipv6Address !== null ? { ipv6Address } : {}) };
}

export interface AddressMonitorOptions {
  intervalMs: number;
  source: { v4: AddressSource; v6: AddressSource };
  /** The node's addresses now (null when they could not be read). */
  read: () => Promise<NodeAddresses | null>;
  /** What this node's Node says now (the model in force); null before the first model. */
  registered: () => RegisteredAddresses | null;
  /**
   * The Node's addresses as stored now (not the model in force, which is the last good one: a
   * foreign address written there is rejected by the engine and never in force); null when it
   * cannot be read (the store unreachable: nothing is concluded). Without it, no repair.
   */
  stored?: () => Promise<RegisteredAddresses | null>;
  /** The addresses given with --ip / --ip6 (source 'manual'): what a repair writes back. */
  given?: { v4?: string; v6?: string };
  /**
   * Write the change to the Node (join.ts NodeAddressStore.update). With `expect` (a repair): only
   * while the stored addresses are still `expect`, in one compare-and-swap; false when they
   * changed meanwhile (nothing written).
   */
  write: (change: NodeAddressChange, expect?: RegisteredAddresses) => Promise<boolean | void>;
  /** The clock of the contest back-off (tests give their own); Date.now by default. */
  now?: () => number;
  /** Registered addresses (without prefix) seen gone from the node: once each time the set changes. */
  addressLeft?: (addresses: string[]) => void;
  /** Addresses new on the node since the last look, while a registered address is (or was, in
   * the look that finds it back) gone after addressLeft; not in the look that told addressLeft. */
  addressAppeared?: (addresses: string[]) => void;
  info: (m: string) => void;
  warn: (m: string) => void;
}

/**
 * Two writers of one Node (a second `podway run --node N` elsewhere) would each write their own
 * address back whenever they see the other's, and each write makes the other's engine reject its
 * model and look at once: a flapping Node, at store speed. So the repair keeps count: the stored
 * Node found foreign again (or changed under the repair's compare-and-swap) after this monitor
 * repaired it is one overwrite; CONTEST_OVERWRITES of them within CONTEST_WINDOW_LOOKS intervals
 * and it stops repairing for a back-off (CONTEST_BACKOFF_LOOKS intervals, doubled at each contest
 * up to CONTEST_BACKOFF_MAX_LOOKS), saying so once per back-off. A window without overwrites
 * forgets the contest.
 */
export const CONTEST_OVERWRITES = 3;
export const CONTEST_WINDOW_LOOKS = 10;
export const CONTEST_BACKOFF_LOOKS = 4;
export const CONTEST_BACKOFF_MAX_LOOKS = 64;

/** The periodic look (start/stop); one look at a time, a slow write never stacks up. */
export class AddressMonitor {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  /** After stop(): no look starts, and one under way writes nothing once its read returns. */
  private stopped = false;
  /** The look under way (stop() waits for it). */
  private current: Promise<void> | null = null;
  /** The last thing said about a failed write or a missing address (said once, not every look). */
  private lastProblem = '';
  /** The registered addresses last seen gone ('' while none), so addressLeft is told once. */
  private lastLeft = '';
  /** The node's addresses at the last look (null before the first). */
  private lastAll: ReadonlySet<string> | null = null;
  /** addressLeft was told and no look has found every registered address held since. */
  private awaitingAddress = false;
  /** The registered addresses at the last look ("ipv4 ipv6"). */
  private lastRegistered = '';
  /** A look at the addresses only (followOnly) is under way. */
  private following = false;
  /** Reads of the node's addresses begun, and the newest one followed (an older one ending later is not). */
  private reads = 0;
  private followed = 0;
  /** lookSoon() was asked during a look: another one right after it. */
  private again = false;
  /** When this monitor last wrote a repair (null: none, or the contest forgotten). */
  private repairedAt: number | null = null;
  /** A repair of ours was written and not seen overwritten yet. */
  private repairStanding = false;
  /** When the stored Node was seen overwritten after a repair of ours, within the window. */
  private overwrites: number[] = [];
  /** No repair written before this time (a contest's back-off); 0: none. */
  private backoffUntil = 0;
  /** Back-offs entered since the contest began (the next one is twice as long). */
  private backoffs = 0;
  /** Looks and Node updates written, for tests and status; repairs not written in a back-off. */
  looks = 0;
  updates = 0;
  repairsHeldBack = 0;

  constructor(private readonly opts: AddressMonitorOptions) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  start(): void {
    if (this.timer || this.stopped || this.opts.intervalMs <= 0) return;
    this.timer = setInterval(() => void (this.busy ? this.followOnly() : this.look()), this.opts.intervalMs);
    this.timer.unref();
  }

  /** No more looks; resolves once a look under way is done (a write already sent is waited for,
   * one not yet sent is not made): nothing writes the Node after `podway run` stopped. */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return this.current?.catch(() => {}) ?? Promise.resolve();
  }

  /**
   * A look now, not at the next tick (the engine rejected a model naming an address the node does
   * not hold): after the one under way if there is one.
   */
  lookSoon(): void {
    if (this.stopped) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    void this.look();
  }

  /** One look (also called directly by tests); resolves when any write is done. */
  look(): Promise<void> {
    if (this.busy || this.stopped) return Promise.resolve();
    this.busy = true;
    // the timer does `void this.look()`: a throw from registered(), read() or the address
    // comparison (a malformed address) must be said, not become an unhandled rejection that ends podway
    const p = this.lookOnce().catch((e: unknown) => {
      if (!this.stopped) this.problem(`node address look failed: ${(e as Error)?.message ?? String(e)}; tried again in ${this.opts.intervalMs / 1000} s`);
    }).finally(() => {
      this.busy = false;
      this.current = null;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.look();
      }
    });
    this.current = p;
    return p;
  }

  /**
   * A tick while a look is under way (its datastore call waiting, say): the addresses are looked
   * at all the same, for addressLeft / addressAppeared only. A call waiting on a connection made
   * from an address that has just left the node would otherwise hold back the news until its
   * deadline (5 s), and with it the new connections (run.ts) that end that very wait.
   */
  private async followOnly(): Promise<void> {
    if (this.following || this.stopped) return;
    this.following = true;
    try {
      const registered = this.opts.registered();
      const read = ++this.reads;
      const seen = registered && (await this.opts.read());
      if (!registered || !seen || this.stopped) return;
      this.follow(registered, seen, read);
    } catch {
      // a look that fails says so itself (the one under way, or the next)
    } finally {
      this.following = false;
    }
  }

  /** Registered addresses gone from the node, new ones on it: addressLeft / addressAppeared (see the options). */
  private follow(registered: RegisteredAddresses, seen: NodeAddresses, read: number): void {
    if (read < this.followed) return;
    this.followed = read;
    const left = [registered.ipv4, registered.ipv6].filter((c): c is string => c !== null && !held(seen, c, c.includes(':'))).map((c) => c.split('/')[0]);
    const before = this.lastAll;
    this.lastAll = seen.all;
    const appeared = before === null ? [] : [...seen.all].filter((a) => !before.has(a) && !/^fe80:/i.test(a));
    let told = false;
    if (left.join(',') !== this.lastLeft) {
      this.lastLeft = left.join(',');
      if (left.length > 0) {
        this.opts.addressLeft?.(left);
        this.awaitingAddress = told = true;
      }
    }
    // Nothing gone any more: told only when the gone address came back (the Node unchanged), not
    // when the model caught up with a new address (its connections were made after it appeared).
    const regKey = `${registered.ipv4} ${registered.ipv6}`;
    const sameNode = regKey === this.lastRegistered;
    this.lastRegistered = regKey;
    if (this.awaitingAddress && !told && appeared.length > 0 && (left.length > 0 || sameNode)) this.opts.addressAppeared?.(appeared);
    if (left.length === 0) this.awaitingAddress = false;
  }

  private async lookOnce(): Promise<void> {
    this.looks++;
    const registered = this.opts.registered();
    const read = ++this.reads;
    const seen = registered && (await this.opts.read());
    // stopped while reading: the process is going, the Node is left as it is
    if (!registered || !seen || this.stopped) return;
    this.follow(registered, seen, read);
    const change = decideAddressChange(registered, seen, this.opts.source);
    if (!change) {
      if (await this.repairStored(registered, seen)) return;
      this.forgetContest();
      // Nothing to move to (Calico: "keeping existing value"), said once per family and state;
      // IPv6 as IPv4 (a link set down and up flushes its IPv6 addresses).
      const src = this.opts.source;
      const none = [
        src.v4 !== 'manual' && src.v4 !== 'none' && registered.ipv4 !== null && seen.ipv4 === undefined && !held(seen, registered.ipv4, false) && `no IPv4 address found on the node's interfaces: keeping ${registered.ipv4} in the Node`,
        src.v6 !== 'manual' && src.v6 !== 'none' && registered.ipv6 !== null && seen.ipv6 === undefined && !held(seen, registered.ipv6, true) && `no IPv6 address found on the node's interfaces: keeping ${registered.ipv6} in the Node`,
      ].filter((m): m is string => typeof m === 'string');
      if (none.length > 0) this.problem(none.join('; '));
      else this.lastProblem = '';
      return;
    }
    const what = [
      change.ipv4Address && `${registered.ipv4 ?? 'none'} -> ${change.ipv4Address}`,
      change.ipv6Address && `${registered.ipv6 ?? 'none'} -> ${change.ipv6Address}`,
    ].filter(Boolean).join(', ');
    try {
      await this.opts.write(change);
      this.updates++;
      this.lastProblem = '';
      this.opts.info(`node address autodetected again (first-found): ${what}; Node updated${this.stopped ? '' : ', the dataplane follows'}`);
    } catch (e) {
      if (!this.stopped) this.problem(`node address autodetected again (first-found): ${what}, but the Node could not be updated: ${(e as Error).message}; tried again in ${this.opts.intervalMs / 1000} s`);
    }
  }

  /** The stored Node names an address not held here: written back (see repairStoredAddress). Whether it looked into it (a repair was due). */
  private async repairStored(inForce: RegisteredAddresses, seen: NodeAddresses): Promise<boolean> {
    const stored = this.opts.stored ? await this.opts.stored().catch(() => null) : null;
    if (!stored || this.stopped) return false;
    const repair = repairStoredAddress(stored, inForce, seen, this.opts.source, this.opts.given);
    if (!repair) return false;
    const what = [
      repair.ipv4Address && `IPv4 ${stored.ipv4} -> ${repair.ipv4Address}`,
      repair.ipv6Address && `IPv6 ${stored.ipv6} -> ${repair.ipv6Address}`,
    ].filter(Boolean).join(', ');
    const foreign = [repair.ipv4Address && stored.ipv4, repair.ipv6Address && stored.ipv6].filter(Boolean).map((c) => (c as string).split('/')[0]).join(', ');
    // Foreign again after a repair of ours: someone wrote it since.
    if (this.repairStanding) this.overwritten(foreign);
    if (this.now() < this.backoffUntil) {
      this.repairsHeldBack++;
      return true;
    }
    this.opts.warn(`the Node's stored address ${foreign} is not held by any interface here (another process wrote it: a second podway run under this node's name on another host or network namespace?): writing this node's address back (${what})`);
    try {
      // Only over the foreign address judged here: a Node changed since (by its other writer, or
      // back to ours) is left as it is, never overwritten blind.
      const written = await this.opts.write(repair, stored);
      if (written === false) {
        // Changed back to this node's own address meanwhile (by a join, or this node's other
        // writer): nothing to repair, and no overwrite by another process to count.
        const after = this.opts.stored ? await this.opts.stored().catch(() => null) : null;
        if (after && !repairStoredAddress(after, inForce, seen, this.opts.source, this.opts.given)) {
          this.opts.info(`the Node's stored address changed back to this node's own while it was being repaired (${what}): nothing to write`);
          return true;
        }
        this.opts.info(`the Node's stored address changed again while it was being repaired (${what}): not written; looked at again at the next look`);
        this.repairedAt = this.now();
        this.overwritten(foreign);
        return true;
      }
      this.updates++;
      this.repairedAt = this.now();
      this.repairStanding = true;
      this.lastProblem = '';
      this.opts.info(`Node address repaired (${what}); the dataplane follows`);
    } catch (e) {
      if (!this.stopped) this.problem(`the Node's address could not be repaired (${what}): ${(e as Error).message}; tried again in ${this.opts.intervalMs / 1000} s`);
    }
    return true;
  }

  /** The stored Node was overwritten with `foreign` after a repair of ours: counted; a contest backs off. */
  private overwritten(foreign: string): void {
    this.repairStanding = false;
    const now = this.now();
    const window = CONTEST_WINDOW_LOOKS * this.opts.intervalMs;
    this.overwrites = this.overwrites.filter((t) => now - t < window);
    this.overwrites.push(now);
    // After a back-off, the first overwrite of the repair tried then is enough: still contested.
    if (this.overwrites.length < (this.backoffs > 0 ? 1 : CONTEST_OVERWRITES)) return;
    const looks = Math.min(CONTEST_BACKOFF_LOOKS * 2 ** this.backoffs, CONTEST_BACKOFF_MAX_LOOKS);
    this.backoffs++;
    this.backoffUntil = now + looks * this.opts.intervalMs;
    this.overwrites = [];
    const times = this.backoffs > 1 ? 'again after the last back-off' : `${CONTEST_OVERWRITES} times within ${window / 1000} s`;
    this.opts.warn(`another process appears to be writing this node's Node: its address was set to ${foreign} ${times} after this podway wrote its own back (a second podway run under this node's name on another host or network namespace?); not repairing it for ${looks * this.opts.intervalMs / 1000} s so the two do not flap (this node stays on its last good state, not ready, meanwhile): stop the other process or give one of them another node name`);
  }

  /** The stored Node is fine: a contest with no overwrite for a whole window is over. */
  private forgetContest(): void {
    if (this.repairedAt === null) return;
    const now = this.now();
    const window = CONTEST_WINDOW_LOOKS * this.opts.intervalMs;
    const last = Math.max(this.repairedAt, ...this.overwrites, this.backoffUntil);
    if (now - last < window) return;
    if (this.backoffs > 0) this.opts.info(`the Node's address was not overwritten for ${window / 1000} s: the other writer seems gone, repairs resume at once again`);
    this.repairedAt = null;
    this.repairStanding = false;
    this.overwrites = [];
    this.backoffs = 0;
    this.backoffUntil = 0;
  }

  private problem(m: string): void {
    if (m === this.lastProblem) return;
    this.lastProblem = m;
    this.opts.warn(m);
  }
}
