/**
 * A running node's liveness key on etcd: `/calico/podway/v1/live/<node>`, attached to an etcd lease
 * of LIVE_TTL_S seconds that the running `podway run` keeps alive (NodeLiveness, in the thread of
 * its Node address store: cli/address-store-worker.ts) and revokes at a clean stop (the key goes
 * with it). Its value says who runs the node (LiveRecord: host name, machine id, the node's
 * addresses, pid, start time).
 *
 * Why: `podway run --node N` started by mistake on another host used to rewrite N's Node address
 * to its own before it found out (it only warned "two hosts share one node name"); every node then
 * sent N's pods' traffic to the wrong host until the real N wrote its address back, and under
 * systemd the mistaken run did it again at every restart. calico-node refuses a Node whose address
 * another Node has ("node name already in use"-like checks of checkConflictingNodes), but nothing
 * in Calico tells a live node from a stale Node of the same name: the lease does.
 *
 * At start (the registration's first join, before anything is written: cli/join.ts) the key is
 * claimed (claimNode): read (awaitNodeFree), then written attached to a new lease in one etcd
 * transaction that holds only while the key is still as read (absent: created only if absent), so
 * of two hosts started at the same moment exactly one writes it, and the other reads it again.
 * Absent, expired, or written by this host (same host name and machine id, or its node address is
 * held by an interface here: a restart, a kill -9 and a start again), the start claims it and goes
 * on. Written by another host, its lease is watched: a podway still running renews it (every
 * LIVE_TTL_S / 3 s) and the start is refused (NodeLiveElsewhereError: `podway run` exits 2, the
 * systemd unit's no-restart status) without touching the Node; a lease nobody renews (that podway
 * stopped uncleanly, its host gone or re-addressed: a real move) expires within its TTL, and the
 * start waits for that and goes on, saying so. An etcd that does not answer is the registration's
 * usual wait (the claim is part of it). The claimed lease is renewed by whoever claimed it
 * (ClaimKeeper, in the registration's thread) from the claim until the running podway's holder
 * (NodeLiveness, adopting it at once) has renewed it itself, and revoked if the start ends
 * before (a signal while starting, a failed start). A registration after the datastore was
 * replaced claims it again the same way, and is refused while another host holds it. At podway's
 * exit the holder is told first (NodeLiveness stopAsked: a flag in shared memory), then the
 * leases are revoked: a revoke the holder sees is then never taken for an expiry to make good
 * with a new lease and key (which outlived podway, up to the TTL, before).
 *
 * The embedded and file: datastores are one machine's: there is no other host to tell apart, and
 * two runs of one node on that machine are refused by the run lock (cli/run-lock.ts).
 */
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import type { KvLeaseClaims, KvLeaseReads, KvLeases, KvStore } from './kv/kv';
import { addressSpelling } from '../packet/ipv6';
import { abortableSleep } from '../util/abortable-sleep';

export const LIVE_PREFIX = '/calico/podway/v1/live/';
/** The lease's TTL: a stopped podway's key is gone within this many seconds. */
export const LIVE_TTL_S = 15;

export function liveKey(node: string): string {
  return `${LIVE_PREFIX}${node}`;
}

/** The liveness key's value. */
export interface LiveRecord {
  /** os.hostname() of the host running the node. */
  readonly host: string;
  /** /etc/machine-id (null when there is none). */
  readonly machineId: string | null;
  /** The node's addresses it registered ("10.77.0.1/24", an IPv6 one). */
  readonly addresses: readonly string[];
  readonly pid: number;
  /** When that podway run started (ISO 8601). */
  readonly started: string;
}

/** This host as a LiveRecord names it. */
export interface ThisHost {
  readonly host: string;
  readonly machineId: string | null;
}

let machineIdRead: string | null | undefined;
export function thisHost(): ThisHost {
  if (machineIdRead === undefined) {
    machineIdRead = null;
    for (const f of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
      try {
        machineIdRead = readFileSync(f, 'utf8').trim() || null;
        if (machineIdRead) break;
      } catch {
        // not there: the next, or none
      }
    }
  }
  return { host: os.hostname(), machineId: machineIdRead };
}

/** The record in a key's value; one that does not parse names no host (treated as another's). */
export function parseLiveRecord(value: string): LiveRecord {
  try {
    const v = JSON.parse(value) as Partial<LiveRecord>;
    return {
      host: typeof v.host === 'string' ? v.host : '(unnamed)',
      machineId: typeof v.machineId === 'string' ? v.machineId : null,
      addresses: Array.isArray(v.addresses) ? v.addresses.filter((a): a is string => typeof a === 'string') : [],
      pid: typeof v.pid === 'number' ? v.pid : 0,
      started: typeof v.started === 'string' ? v.started : '?',
    };
  } catch {
    return { host: '(unreadable value)', machineId: null, addresses: [], pid: 0, started: '?' };
  }
}


/**
 * Whether `rec` was written by this host: the same host name and machine id (both without one:
 * the name alone), or one of its addresses held by an interface here (`held`, IPv6 canonical;
 * null: not known).
 */
export function writtenHere(rec: LiveRecord, me: ThisHost, held: ReadonlySet<string> | null): boolean {
  if (rec.host === me.host && rec.machineId === me.machineId) return true;
  if (held === null) return false;
  return rec.addresses.some((a) => held.has(addressSpelling(a.split('/')[0]!)));
}

/** `podway run` refused at start: the node runs on another host (cli/join.ts makes it exit 2). */
export class NodeLiveElsewhereError extends Error {
  constructor(message: string, readonly record: LiveRecord) {
    super(message);
    this.name = 'NodeLiveElsewhereError';
  }
}

export interface AwaitNodeFreeOptions {
  readonly node: string;
  readonly me: ThisHost;
  /** The addresses held here (start-address.ts addressesHeldHere); null: not known. */
  readonly held: ReadonlySet<string> | null;
  /** Progress (the wait for a lease nobody renews). */
  readonly say: (m: string) => void;
  readonly signal?: AbortSignal;
  /** Between two reads of the lease (1.5 s: etcd counts whole seconds, see awaitNodeFree). */
  readonly sampleMs?: number;
}

function recordText(rec: LiveRecord): string {
  return `host ${rec.host}${rec.addresses.length ? `, node address ${rec.addresses.join(', ')}` : ''}, pid ${rec.pid}, started ${rec.started}`;
}

/** The liveness key as read: its entry and its lease (null: none). */
export type LeasedEntry = Awaited<ReturnType<KvLeaseReads['getLeased']>>;

/**
 * Returns once no other host runs `node` (see the file comment), with the key as it was then
 * (null: absent; else this host's, attached to no lease, or its lease expired); throws
 * NodeLiveElsewhereError when another host runs it, and what the store throws (unreachable: the
 * caller's retry).
 */
export async function awaitNodeFree(kv: KvLeaseReads, opts: AwaitNodeFreeOptions): Promise<LeasedEntry> {
  const key = liveKey(opts.node);
  const sampleMs = opts.sampleMs ?? 1500;
  let prev: { lease: string; ttl: number; at: number } | null = null;
  // Bounded: a lease nobody renews is gone within its TTL (LIVE_TTL_S, or what another version
  // granted: read each time); this many reads is far past any.
  for (let reads = 0; reads < 600; reads++) {
    opts.signal?.throwIfAborted();
    const got = await kv.getLeased(key);
    if (!got) {
      if (prev) opts.say(`node ${opts.node}: the other host's liveness lease expired (its podway is not running): registering here`);
      return null;
    }
    const rec = parseLiveRecord(got.entry.value);
    if (writtenHere(rec, opts.me, opts.held)) return got;
    // Not attached to a lease (written by hand): nothing keeps it, nothing to wait for.
    if (got.lease === null) return got;
    const ttl = await kv.leaseTimeToLive(got.lease);
    if (ttl < 0) return got; // expired: the key goes with it
    // etcd gives whole seconds left, rounded down: a lease nobody renewed has at least one less
    // after 1.2 s or more (sampleMs apart), so the same or more means renewed; read sooner (a
    // shorter sampleMs), only more does.
    const at = performance.now();
    if (prev && (got.lease !== prev.lease || ttl > prev.ttl || (ttl === prev.ttl && at - prev.at >= 1200))) {
      throw new NodeLiveElsewhereError(
        `node ${opts.node} is running on another host: its liveness key ${key} was written by ${recordText(rec)}, and that podway keeps renewing its lease. `
          + `Not registering here (host ${opts.me.host}): the Node is left as it is (two hosts under one node name take each other's pods' traffic). `
          + `If this host is to run as ${opts.node}, stop podway on ${rec.host} first (a clean stop removes the key at once; after an unclean stop its lease expires within ${LIVE_TTL_S} s and a start here waits for that); `
          + `otherwise give this host its own node name (--node or NODENAME)`,
        rec,
      );
    }
    if (!prev) {
      opts.say(`node ${opts.node}: its liveness key ${key} was written by another host (${recordText(rec)}); the other run's liveness lease expires in ${ttl} s unless its podway renews it: waiting to see (a running one renews it within ${Math.ceil(LIVE_TTL_S / 3)} s, and this start is refused)`);
    }
    prev = { lease: got.lease, ttl, at };
    await abortableSleep(sampleMs, opts.signal);
  }
  throw new Error(`node ${opts.node}: its liveness key ${key} neither expired nor was renewed in 600 reads`);
}

export interface ClaimNodeOptions extends AwaitNodeFreeOptions {
  /** The value written (this run). */
  readonly record: LiveRecord;
  /** A lease this start claimed the key with already (an earlier attempt of the registration). */
  readonly lease?: string | null;
  readonly ttl?: number;
}

/**
 * The start's claim of `node` (see the file comment): once no other host runs it (awaitNodeFree:
 * refused, NodeLiveElsewhereError, or waited out), the key is written attached to a new lease of
 * `ttl` s in one transaction that holds only while the key is as read; another start that wrote it
 * first (two hosts started at the same moment) makes this one read it again, and be refused while
 * that start's podway renews its lease. Returns the lease (kept alive by the caller: NodeLiveness);
 * a lease granted here and not used is revoked. Throws what the store throws (the caller retries,
 * with `lease`: a write that was applied though its answer was lost is found as this start's).
 */
export async function claimNode(kv: KvLeaseClaims, opts: ClaimNodeOptions): Promise<string> {
  const key = liveKey(opts.node);
  let lease: string | null = opts.lease ?? null;
  let claimed = false;
  try {
    // Bounded: each round lost is another start's write, read and judged in the next.
    for (let round = 0; round < 10; round++) {
      const free = await awaitNodeFree(kv, opts);
      if (free && lease !== null && free.lease === lease) return ((claimed = true), lease);
      if (lease !== null && (await kv.leaseTimeToLive(lease)) <= 0) lease = null; // an earlier attempt's, gone
      lease ??= await kv.grantLease(opts.ttl ?? LIVE_TTL_S);
      if (await kv.putLeasedIf(key, JSON.stringify(opts.record), lease, free?.entry.modRevision ?? 0)) return ((claimed = true), lease);
      opts.say(`node ${opts.node}: its liveness key ${key} was written by another start while this one claimed it: reading it again`);
    }
    throw new Error(`node ${opts.node}: its liveness key ${key} was written by others in each of 10 tries to claim it`);
  } finally {
    if (!claimed && lease !== null && lease !== opts.lease) await kv.revokeLease(lease).catch(() => undefined);
  }
}

/** The key's value not written though its lease was renewed (NodeLiveness counts it apart). */
class RecordWriteError extends Error {}

/** What ClaimKeeper renews a lease with (both etcd clients: the registration's is the light one). */
export interface KvLeaseKeepAlive {
  keepAliveLease(id: string): Promise<number>;
  revokeLease(id: string): Promise<void>;
}

/**
 * The lease a start claimed a node's liveness key with (claimNode), kept alive by whoever claimed
 * it (podway run's registration thread, cli/join-worker.ts) from the moment of the claim until the
 * running podway's holder (NodeLiveness, in the Node address store's thread, which first loads
 * its etcd client: seconds on a loaded machine, and nothing bounds them) has renewed it itself
 * (release(): handed over, the lease kept), or the start ended (revoke(): the key goes with it).
 * Before, nothing renewed the claimed lease until that thread had loaded: past the lease's TTL
 * the key expired, and another host could take the node's name while this one ran. Renewed every
 * TTL / 3 s; a renewal that fails is said (once per reason) and tried again at the next.
 */
export class ClaimKeeper {
  private lease: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<void> | null = null;
  /** The revokes under way (revoke()): settled() waits for them too. */
  private readonly revoking = new Set<Promise<unknown>>();
  private lastProblem = '';
  /** Renewals done (kept the lease) and failed, for the tests and the log. */
  renewed = 0;
  failed = 0;

  constructor(
    private readonly kv: KvLeaseKeepAlive,
    private readonly node: string,
    private readonly warn: (m: string) => void,
    private readonly ttl = LIVE_TTL_S,
    /** The kept lease found gone (etcd let it expire, or it was revoked): released here, nothing more to keep. */
    private readonly onGone: (lease: string) => void = () => {},
  ) {}

  /** Keep `lease` alive from now on (a later claim of the same start: that lease instead). */
  keep(lease: string): void {
    this.lease = lease;
    this.timer ??= setInterval(() => void this.renew(), Math.max(1000, (this.ttl * 1000) / 3));
  }

  /** The lease kept now (null: none, or released). */
  leaseId(): string | null {
    return this.lease;
  }

  /** One renewal now (also called by tests). */
  renew(): Promise<void> {
    const id = this.lease;
    if (id === null || this.current) return this.current ?? Promise.resolve();
    const p = this.kv.keepAliveLease(id).then((left) => {
      if (this.lease !== id) return; // released or revoked meanwhile: not news
      if (left > 0) {
        this.renewed++;
        this.lastProblem = '';
        return;
      }
      // Gone for good (etcd wiped or restored, or no renewal got through for its TTL): the
      // holder writes the key on a new lease, never on this one, so no hand-over would come.
      // Nothing more to keep: released, and whoever keeps this keeper ends it (onGone).
      this.failed++;
      this.problem(`node ${this.node}: the liveness lease ${id} it claimed its key with is gone (etcd let it expire, or it was revoked): renewed no more; the running podway writes the key again on a new one`);
      this.release();
      this.onGone(id);
    }, (e: unknown) => {
      if (this.lease !== id) return; // released or revoked meanwhile (its client closing): not news
      this.failed++;
      this.problem(`node ${this.node}: the liveness lease ${id} it claimed its key with not renewed: ${(e as Error)?.message ?? String(e)}; tried again in ${Math.round(this.ttl / 3)} s`);
    }).finally(() => {
      this.current = null;
    });
    this.current = p;
    return p;
  }

  /** Handed over (the holder renewed the lease): no more renewals here, the lease kept. */
  release(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.lease = null;
  }

  /**
   * Resolves once no renewal and no revoke is under way (its client may be closed then). A second
   * revoke() (nothing left to revoke: it ends at once) used to let its caller close the client
   * under the first one's revoke, which then never answered: the lease was left to its TTL, and
   * the registration's thread, waiting for that revoke, was terminated 5 s after the abort.
   */
  async settled(): Promise<void> {
    await this.current?.catch(() => undefined);
    while (this.revoking.size > 0) await Promise.all([...this.revoking]);
  }

  /** The start ended without a holder to hand it to: no more renewals, the lease revoked (its key deleted with it). */
  async revoke(): Promise<void> {
    const id = this.lease;
    this.release();
    const p = (async () => {
      await this.current?.catch(() => undefined);
      if (id !== null) await this.kv.revokeLease(id);
    })();
    const settled = p.catch(() => undefined);
    this.revoking.add(settled);
    void settled.then(() => this.revoking.delete(settled));
    return p;
  }

  private problem(m: string): void {
    if (m === this.lastProblem) return;
    this.lastProblem = m;
    this.warn(m);
  }
}

/** What the holder's renewals did (podway status, /metrics: the address store thread posts it). */
export interface LivenessStatus {
  readonly node: string;
  /** The lease held now; null: none (lost, or not written yet). */
  readonly lease: string | null;
  /** Renewals that did not keep the key (etcd failed or did not answer, the lease was gone, the key held by another host). */
  readonly renewalsFailed: number;
  /**
   * Writes of the key's value that failed while its lease was renewed (a changed record: the
   * node's addresses; etcd refused the put): the key is kept, its value is old, written again at
   * the next renewal. Not renewal failures: the lease, and the node's name, are held.
   */
  readonly recordWritesFailed: number;
  /** The lease the last renewal that kept the key renewed (null: none yet): the start's claim is handed over once it is the claimed one. */
  readonly renewedLease: string | null;
  /** When a renewal (or write) last kept the key (ms since the epoch). */
  readonly lastRenewedAt: number;
  /** Since when the lease is lost (ms since the epoch; etcd said it expired, or no renewal for a TTL); null while held. */
  readonly lostSince: number | null;
  /** The key's holder when another host holds it (its record as text); else null. */
  readonly heldElsewhere: string | null;
  /** The lease's TTL (s). */
  readonly ttl: number;
}

/**
 * The running podway's liveness key (see the file comment): the lease the start claimed it with
 * adopted (`lease`: renewed, the record written once with the node's registered addresses), or
 * granted and written by start(); renewed every TTL / 3 s, its value written again when the
 * node's addresses change (setAddresses, same lease), granted and written again when the lease was
 * lost (etcd away longer than the TTL: no exit, the key comes back once etcd answers), revoked by
 * stop(). A key another host holds with a live lease (it took the node over while this one's
 * lease was lost) is not overwritten (the write is one transaction on the key as read): said, and
 * looked at again at the next renewal. Each renewal's outcome is in status() (`onStatus`). Once
 * stopped or podway's exit asked for (`stopAsked`), nothing is granted or written again: a lease
 * found gone then is the exit's revoke, and a new lease granted or a key written meanwhile is
 * revoked.
 */
export class NodeLiveness {
  private lease: string | null;
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<void> | null = null;
  private stopped = false;
  private written = 0;
  private lastProblem = '';
  /** The record differs from the key's value (an adopted claim, new addresses): written at the next renewal. */
  private dirty: boolean;
  private renewalsFailed = 0;
  private recordWritesFailed = 0;
  private renewedLease: string | null = null;
  private lastRenewedAt = Date.now();
  private lostSince: number | null = null;
  private heldElsewhere: string | null = null;

  constructor(
    private readonly kv: KvStore & KvLeases,
    private readonly node: string,
    private record: LiveRecord,
    private readonly log: { info(m: string): void; warn(m: string): void },
    private readonly ttl = LIVE_TTL_S,
    /** The lease the start claimed the key with (claimNode), adopted; null: granted here. */
    lease: string | null = null,
    private readonly onStatus: (s: LivenessStatus) => void = () => {},
    /**
     * podway's exit asked for (read at each step, from another thread: address-store-thread.ts
     * stopLiveness, a flag in shared memory set before the exit revokes anything): nothing granted
     * or written from then on. The exit's revoke of the lease would otherwise read as an expiry,
     * and the key be written again on a new lease that outlived podway (until its TTL).
     */
    private readonly stopAsked: () => boolean = () => false,
  ) {
    this.lease = lease;
    this.dirty = lease !== null;
  }

  /** stop() called, or podway's exit asked for (stopAsked): no more grants or writes. */
  private halted(): boolean {
    return this.stopped || this.stopAsked();
  }

  /**
   * A lease another claim of the key wrote it with (a start tried again claims it anew): renewed
   * from now on instead of the one held (revoked: nothing is attached to it any more).
   */
  adopt(lease: string): Promise<void> {
    if (lease === this.lease || this.halted()) return Promise.resolve();
    return (this.current ?? Promise.resolve()).then(async () => {
      if (this.halted()) return; // the exit revokes the claims and this holder's lease
      const old = this.lease;
      this.lease = lease;
      // The key is written again on the new lease: a renewal that ended just before may have put it
      // back on the old one (a changed record's write), and revoking that deletes it.
      this.dirty = true;
      if (old !== null) await this.kv.revokeLease(old).catch(() => undefined);
      await this.tick();
    });
  }

  /** The node's addresses changed: the key's value says so (same lease), at once. */
  setAddresses(addresses: readonly string[]): Promise<void> {
    if (addresses.length === this.record.addresses.length && addresses.every((a, k) => a === this.record.addresses[k])) return Promise.resolve();
    this.record = { ...this.record, addresses: [...addresses] };
    this.dirty = true;
    return (this.current ?? Promise.resolve()).then(() => this.tick());
  }

  status(): LivenessStatus {
    // No renewal for a whole TTL: etcd has let the lease expire, whatever it said last.
    const lostSince = this.lostSince ?? (Date.now() - this.lastRenewedAt > this.ttl * 1000 ? this.lastRenewedAt + this.ttl * 1000 : null);
    return { node: this.node, lease: this.lease, renewalsFailed: this.renewalsFailed, recordWritesFailed: this.recordWritesFailed, renewedLease: this.renewedLease, lastRenewedAt: this.lastRenewedAt, lostSince, heldElsewhere: this.heldElsewhere, ttl: this.ttl };
  }

  start(): void {
    if (this.timer || this.halted()) return;
    this.timer = setInterval(() => void this.tick(), Math.max(1000, (this.ttl * 1000) / 3));
    void this.tick();
  }

  /** The lease this run holds now (null: none, or lost). */
  leaseId(): string | null {
    return this.lease;
  }

  /** One renewal, or a new lease and key (also called by tests). */
  tick(): Promise<void> {
    if (this.current || this.halted()) return this.current ?? Promise.resolve();
    const p = this.renew().then((kept) => {
      if (kept) this.kept();
      else if (!this.halted()) this.renewalsFailed++;
    }, (e: unknown) => {
      if (this.halted()) return;
      if (e instanceof RecordWriteError) {
        // The lease was renewed (the key and the node's name held): only its value is old.
        this.kept();
        this.recordWritesFailed++;
        this.problem(`node ${this.node}: liveness key ${liveKey(this.node)} renewed, but its new value (node address ${this.record.addresses.join(', ') || 'none'}) not written: ${e.message}; written again at the next renewal, in ${Math.round(this.ttl / 3)} s`);
        return;
      }
      this.renewalsFailed++;
      this.problem(`node ${this.node}: liveness key ${liveKey(this.node)} not renewed: ${(e as Error)?.message ?? String(e)}; tried again in ${Math.round(this.ttl / 3)} s`);
    }).finally(() => {
      this.current = null;
      if (!this.stopped) this.onStatus(this.status());
    });
    this.current = p;
    return p;
  }

  /** A renewal kept the key (on this.lease). */
  private kept(): void {
    this.lastRenewedAt = Date.now();
    this.renewedLease = this.lease;
    this.lostSince = null;
    this.heldElsewhere = null;
  }

  /** One renewal; whether the key is held (false: held by another host, or stopped meanwhile). */
  private async renew(): Promise<boolean> {
    const key = liveKey(this.node);
    if (this.lease !== null) {
      const left = await this.kv.keepAliveLease(this.lease);
      if (left > 0) {
        this.lastProblem = '';
        if (this.dirty && !this.halted()) {
          this.dirty = false;
          try {
            await this.kv.putLeased(key, JSON.stringify(this.record), this.lease);
          } catch (e) {
            this.dirty = true;
            throw new RecordWriteError((e as Error)?.message ?? String(e));
          }
          this.log.info(`node ${this.node}: liveness key ${key} ${this.written++ === 0 ? 'written' : 'updated'} (node address ${this.record.addresses.join(', ') || 'none'}; lease ${this.lease} of ${this.ttl} s, renewed every ${Math.round(this.ttl / 3)} s while podway runs)`);
        }
        return true;
      }
      // Revoked by podway's exit (its stop flag is set before any revoke of it): not an expiry,
      // nothing granted again.
      if (this.halted()) return false;
      this.lostSince ??= Date.now();
      this.log.warn(`node ${this.node}: its liveness lease ${this.lease} is gone from etcd (expired: etcd did not hear from this podway for ${this.ttl} s; or etcd lost it: restarted with its data wiped or restored from a backup): granting a new one and writing ${key} again`);
      this.lease = null;
    }
    if (this.halted()) return false;
    const got = await this.kv.getLeased(key);
    if (got && got.lease !== null) {
      const rec = parseLiveRecord(got.entry.value);
      if (!writtenHere(rec, this.record, null) && (await this.kv.leaseTimeToLive(got.lease)) > 0) {
        this.lostSince ??= Date.now();
        this.heldElsewhere = recordText(rec);
        this.problem(`node ${this.node}: its liveness key ${key} is held by another host (${recordText(rec)}) with a live lease: not overwritten; another podway runs under this node's name there (stop one of them, or give it another --node)`);
        return false;
      }
    }
    if (this.halted()) return false;
    const id = await this.kv.grantLease(this.ttl);
    // Stopped while it was granted: revoked, nothing written.
    if (this.halted()) {
      await this.kv.revokeLease(id).catch(() => undefined);
      return false;
    }
    let put: boolean;
    try {
      // Only over the key as read: another host's start that claimed it meanwhile keeps it.
      put = await this.kv.putLeasedIf(key, JSON.stringify(this.record), id, got?.entry.modRevision ?? 0);
      // A guarded write is sent again when its connection failed under it (etcd-failover.ts): a
      // copy applied before answers the next 'condition failed'. The key then carries this lease,
      // granted just now to this holder alone: it is ours (as claimNode finds it in its next round).
      if (!put) {
        const now = await this.kv.getLeased(key);
        put = now?.lease === id;
        // Deleted between the read and the write (the lease it was on revoked or expired: an
        // earlier run's stop finishing): nobody holds it, so written once more over "absent".
        if (!put && now === null && !this.halted()) put = await this.kv.putLeasedIf(key, JSON.stringify(this.record), id, 0);
      }
    } catch (e) {
      await this.kv.revokeLease(id).catch(() => undefined);
      throw e;
    }
    if (!put) {
      await this.kv.revokeLease(id).catch(() => undefined);
      throw new Error(`${key} was written by another while this podway wrote it again (read again at the next renewal)`);
    }
    // Stopped while the key was written again: the write undone (the lease revoked, the key with
    // it), the stop waiting for this (bounded: stop's waitMs).
    if (this.halted()) {
      await this.kv.revokeLease(id).catch(() => undefined);
      return false;
    }
    this.lease = id;
    this.dirty = false;
    this.lastProblem = '';
    this.log.info(`node ${this.node}: liveness key ${key} ${this.written++ === 0 ? 'written' : 'written again'} (lease of ${this.ttl} s, renewed every ${Math.round(this.ttl / 3)} s while podway runs)`);
    return true;
  }

  /**
   * No more renewals; the lease revoked (the key deleted with it), within `waitMs`. A grant and
   * write of the key again under way (its lease found gone) is undone by itself (revoked once it
   * answered), waited for within `waitMs`.
   */
  async stop(waitMs = 5000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const late = Symbol('late');
    const bounded = <T>(p: Promise<T>) => Promise.race([p.then(() => undefined, (e: unknown) => e as Error), new Promise<typeof late>((r) => setTimeout(() => r(late), waitMs).unref())]);
    await bounded(this.current ?? Promise.resolve());
    const id = this.lease;
    this.lease = null;
    if (id === null) return;
    const revoked = await bounded(this.kv.revokeLease(id));
    // Not revoked: the key stays until its lease expires, and a start of this node on another host
    // waits that long (said there too). Said here so the operator knows why.
    if (revoked !== undefined) {
      this.log.warn(`node ${this.node}: liveness lease ${id} not revoked at the stop (${revoked === late ? `etcd did not answer within ${waitMs / 1000} s` : (revoked as Error)?.message ?? String(revoked)}): ${liveKey(this.node)} stays until the lease expires, within ${this.ttl} s`);
    }
  }

  private problem(m: string): void {
    if (m === this.lastProblem) return;
    this.lastProblem = m;
    this.log.warn(m);
  }
}
