// `podway run`'s side of deferred CNI DELs (src/cni/pending-del.ts): the entries the plugin
// spooled while etcd was unreachable, or while the datastore (etcd or embedded) was locked, are
// replayed once this node's datastore answers and is not locked: at start, when the datastore
// answers again after being away, and every minute. A pass handles at most
// MAX_PER_PASS entries, each under the plugin's host-wide IPAM lock (so an ADD of the same
// container ID is not interleaved), and stops at the first "unreachable" (the next trigger tries
// again), or at the first IPAM lock not taken in time (the holder will not be gone for the next
// entry either). Only entries for this podway's datastore are replayed: the same etcd cluster_id,
// or for entries without one an etcd endpoint in common, or the same embedded directory
// (pending-del.ts entryDatastore); others
// are reported once. In podway run each entry takes its turn in the run's upkeep queue (upkeep.ts:
// never beside an orphan-hold pass or the engine's look into the pods' namespaces), and the passes
// use the run's one upkeep store (the light etcd client: no etcd3 on the forwarding thread).
// stop() aborts a lock wait under way and is waited for at most STOP_WAIT_MS by `podway run` (an
// etcd call under way is bounded by KV_TIMEOUT_MS).
//
// The counts status() gives (pending, ignored) are read from the spool directory, which is local:
// by each pass before it asks the datastore (so a pass that finds the datastore away still counts
// what waits), and by status() itself when the last count is older than RECOUNT_MS and no pass is
// under way, so `podway status`, `counters` and /metrics see an entry the plugin spools during an
// outage within seconds, not at the first pass after the datastore is back (an alert on
// podway_cni_pending_dels above 0 has to fire during the outage). A pass reads the entries and
// judges which are this datastore's with the cluster_id last seen (this replayer's, else the
// spool's .cluster-id cache). status() runs on podway run's main (forwarding) thread, so it reads
// the directory's names only, never a file: an entry the last pass judged another datastore's (or
// unreadable) counts as ignored, any other name (one spooled since) as pending. A spool that is not
// a private directory is not read at all, neither by status() nor by a pass: it counts nothing and
// its refusal is lastError. lastError is the last failure (with its time, lastErrorAt) and is cleared
// by a pass that reaches the datastore and replays every entry it tries (or finds the spool empty).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';
import type { DatastoreSpec } from '../control/kv/spec';
import { KvUnavailableError } from '../control/kv/kv';
import { storePerPass, type RunUpkeep, type UpkeepStore } from './upkeep';
import { CLUSTER_INFORMATION_KEY, DATASTORE_LOCKED_TEXT, datastoreLockedIn } from '../control/kv/cluster-guid';
import { claimEntry, datastoreKey, entryDatastore, entryEndpoints, lastClusterId, netnsIdentity, PendingDel, putBack, readPending, Released, releaseInStore, removePendingFile, SpooledEntry } from '../cni/pending-del';
import type { ScanExec } from '../dataplane/orphan-pods';
import { IpamLockAbortedError, IpamLockTimeoutError, requirePrivateDir, withIpamLock } from '../cni/ipam-lock';
import { DEFAULT_PENDING_DEL_DIR } from '../cni/config';

export const DEFAULT_REPLAY_INTERVAL_MS = 60_000;
const MAX_PER_PASS = 100;
const KV_TIMEOUT_MS = 5_000;
const LOCK_TIMEOUT_MS = 20_000;
/** How long stop() waits for an entry under way (then the process exits; the entry is replayed next time). */
export const STOP_WAIT_MS = 5_000;
/** status() counts the spool again when its last count is older than this (reading it is local). */
export const RECOUNT_MS = 2_000;

export interface PendingDelStatus {
  readonly dir: string;
  /** Entries for this datastore still waiting in the spool (counted at most RECOUNT_MS ago, also
   * while the datastore is away). */
  readonly pending: number;
  readonly replayed: number;
  readonly failed: number;
  /** Entries for another datastore, or unreadable: left alone. */
  readonly ignored: number;
  /** The last failure (the datastore away, an entry's replay failed, the spool refused); cleared
   * by a pass that reached the datastore and failed nowhere. */
  readonly lastError: string | null;
  /** When lastError happened (ISO time), null with it. */
  readonly lastErrorAt: string | null;
  readonly lastPassAt: string | null;
}

export interface ReplayLog {
  info(m: string): void;
  warn(m: string): void;
}

export class PendingDelReplayer {
  private readonly key: string;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly told = new Set<string>();
  /** The last failure said per entry file. */
  private readonly lastSaid = new Map<string, string>();
  private counts = { pending: 0, replayed: 0, failed: 0, ignored: 0 };
  private lastError: string | null = null;
  private lastErrorAt: Date | null = null;
  private lastPassAt: Date | null = null;
  /** When the spool was last counted (Date.now()). */
  private countedAt = 0;
  /** Entry file names (basename) the last pass judged not this datastore's, or unreadable. */
  private othersSeen = new Set<string>();
  /** The cluster_id this datastore last answered with (null: not yet, this run). */
  private cluster: string | null = null;

  private readonly dir: string;

  constructor(
    dir: string | undefined,
    spec: Exclude<DatastoreSpec, { kind: 'file' }>,
    private readonly log: ReplayLog,
    private readonly intervalMs = DEFAULT_REPLAY_INTERVAL_MS,
    private readonly lockTimeoutMs = LOCK_TIMEOUT_MS,
    /** How `ip` is run (podway run: its engine's spawner helper, not a fork of itself); undefined: execFile from here. */
    private readonly exec: () => ScanExec | undefined = () => undefined,
    /**
     * podway run's upkeep (upkeep.ts): its one store, and its queue, in which each entry is
     * replayed (never beside an orphan-hold pass or the engine's look into the pods' namespaces).
     * Absent: a store of this replayer's own each pass (the etcd3 client: it takes the unix:
     * endpoints tests give), entries replayed as they come.
     */
    upkeep?: RunUpkeep,
  ) {
    this.dir = dir ?? DEFAULT_PENDING_DEL_DIR;
    this.key = datastoreKey(spec);
    this.store = upkeep?.store ?? storePerPass(spec, 'run', KV_TIMEOUT_MS);
    this.serial = upkeep?.serial ?? ((task) => task());
  }

  private readonly store: UpkeepStore;
  private readonly serial: RunUpkeep['serial'];

  /** A first pass now, then one every intervalMs. */
  start(): void {
    this.kick('start');
    if (this.timer) return;
    this.timer = setInterval(() => this.kick('periodic'), this.intervalMs);
    this.timer.unref();
  }

  /** A pass now (or right after the one under way). */
  kick(why: string): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass(why)
      .catch((e) => this.log.warn(`deferred CNI DELs in ${this.dir}: ${(e as Error).message}`))
      .finally(() => {
        this.running = null;
        if (this.again && !this.stopped) {
          this.again = false;
          this.kick(why);
        }
      });
  }

  /**
   * Stops the timer and a lock wait under way; resolves once a pass under way ended, or after
   * STOP_WAIT_MS (an etcd call still under way: what it did not finish is replayed next time).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.abort.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise<void>((r) => { timer = setTimeout(r, STOP_WAIT_MS); timer.unref(); })]);
    clearTimeout(timer);
  }

  /** Resolves once no pass is under way (tests, stop). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  status(): PendingDelStatus {
    // A pass under way keeps its own count (it decrements as it replays).
    if (!this.running && Date.now() - this.countedAt >= RECOUNT_MS) this.countNames();
    return { dir: this.dir, ...this.counts, lastError: this.lastError, lastErrorAt: this.lastErrorAt?.toISOString() ?? null, lastPassAt: this.lastPassAt?.toISOString() ?? null };
  }

  private failedWith(message: string): void {
    this.lastError = message;
    this.lastErrorAt = new Date();
  }

  /** Which of `all` are this datastore's, judged by `cluster` (null: by endpoint only). */
  private split(all: SpooledEntry[], cluster: string | null): { mine: SpooledEntry[]; others: SpooledEntry[] } {
    const mine: SpooledEntry[] = [];
    const others: SpooledEntry[] = [];
    for (const s of all) (s.entry && entryDatastore(s.entry, this.key, cluster) === 'same' ? mine : others).push(s);
    return { mine, others };
  }

  /** pending and ignored from the spool alone (no datastore): the cluster_id last seen decides. */
  private countLocal(all: SpooledEntry[]): void {
    const { mine, others } = this.split(all, this.cluster ?? lastClusterId(this.dir, this.key));
    this.setCounts(mine.length, others);
  }

  private setCounts(pending: number, others: SpooledEntry[]): void {
    this.counts.pending = pending;
    this.counts.ignored = others.length;
    this.othersSeen = new Set(others.map((s) => basename(s.file)));
    this.countedAt = Date.now();
  }

  /**
   * status()'s count, on the main thread: the spool's names only (readdir; no file is opened, so a
   * FIFO or a large file there cannot stall forwarding), judged by what the last pass learned.
   * A spool that is not a private directory is not read: nothing counted, its refusal is lastError.
   */
  private countNames(): void {
    this.countedAt = Date.now();
    if (!existsSync(this.dir)) {
      this.counts.pending = this.counts.ignored = 0;
      return;
    }
    let names: string[];
    try {
      requirePrivateDir(this.dir, '--cni-pending-del-dir');
      names = readdirSync(this.dir);
    } catch (err) {
      this.counts.pending = this.counts.ignored = 0;
      if (this.lastError !== (err as Error).message) this.failedWith((err as Error).message);
      return;
    }
    let pending = 0;
    let ignored = 0;
    for (const n of names) {
      if (n.startsWith('.') || !n.endsWith('.json')) continue;
      if (this.othersSeen.has(n)) ignored++;
      else pending++;
    }
    this.counts.pending = pending;
    this.counts.ignored = ignored;
  }

  private async pass(why: string): Promise<void> {
    if (!existsSync(this.dir)) {
      this.counts.pending = 0;
      this.counts.ignored = 0;
      this.countedAt = Date.now();
      return;
    }
    // A spool others may write to could hold forged entries: nothing in it is replayed.
    try {
      requirePrivateDir(this.dir, '--cni-pending-del-dir');
    } catch (err) {
      this.failedWith((err as Error).message);
      if (this.lastSaid.get('dir') !== this.lastError) this.log.warn(`deferred CNI DELs not replayed: ${this.lastError}`);
      this.lastSaid.set('dir', this.lastError!);
      // not read (its files could be forged, or FIFOs that would hang this thread): counts nothing
      this.counts.pending = this.counts.ignored = 0;
      this.countedAt = Date.now();
      return;
    }
    this.lastSaid.delete('dir');
    const all = readPending(this.dir);
    this.lastPassAt = new Date();
    // Counted before the datastore is asked: an unreachable one leaves this count in status.
    this.countLocal(all);
    if (all.length === 0) {
      // nothing waits: an earlier failure is over
      this.lastError = this.lastErrorAt = null;
      return;
    }
    const kv = this.store.get();
    try {
      // Which cluster this podway's datastore is (an unreachable one: the next trigger tries again).
      // The same read says whether the datastore is locked (`calicoctl datastore migrate lock`):
      // nothing is replayed into a locked store (the plugin refuses ADD and DEL then, as Calico's does).
      try {
        const ci = await kv.get(CLUSTER_INFORMATION_KEY);
        if (ci && datastoreLockedIn(ci.value)) throw new Error(`datastore ${this.key} is locked (${DATASTORE_LOCKED_TEXT})`);
      } catch (err) {
        this.failedWith((err as Error).message);
        if (this.lastSaid.get('') !== this.lastError) this.log.warn(`deferred CNI DELs in ${this.dir} wait: ${this.lastError} (tried again on each pass)`);
        this.lastSaid.set('', this.lastError!);
        return;
      }
      this.lastSaid.delete('');
      const cluster = kv.clusterIdSeen?.() ?? null;
      if (cluster !== null) this.cluster = cluster;
      const { mine, others } = this.split(all, cluster);
      for (const s of others) {
        if (this.told.has(s.file)) continue;
        this.told.add(s.file);
        this.log.warn(s.entry ? `deferred CNI DEL ${s.file} is for datastore ${s.entry.datastore}${s.entry.clusterId ? ` (cluster_id ${s.entry.clusterId})` : ''}, not this podway's ${this.key}${cluster ? ` (cluster_id ${cluster})` : ''}: left for the podway of that datastore` : `deferred CNI DEL ${s.file} is unreadable (${s.error}): left as it is`);
      }
      this.setCounts(mine.length, others);
      let failed = false;
      if (mine.length === 0) {
        this.lastError = this.lastErrorAt = null;
        return;
      }
      this.log.info(`${mine.length} deferred CNI DEL(s) in ${this.dir} (${why}): replaying${mine.length > MAX_PER_PASS ? ` the first ${MAX_PER_PASS}` : ''}`);
      for (const s of mine.slice(0, MAX_PER_PASS)) {
        if (this.stopped) break;
        const e = s.entry!;
        // Interfaces the DEL left that its endpoints name, removed by the replay (removeLeftInterface).
        const removed: string[] = [];
        try {
          // In podway run's upkeep queue, then under the entry's IPAM lock (that order: upkeep.ts).
          const done = await this.serial(() => withIpamLock({ file: e.ipamLockFile, timeoutMs: this.lockTimeoutMs, setting: `"ipamLockFile" of ${s.file}` }, async () => {
            // An ADD of the same container (or a DEL that reached the datastore) took it meanwhile.
            const aside = claimEntry(s);
            if (aside === null) return null;
            try {
              const r = await releaseInStore(kv, e.handle, await entryEndpoints(kv, e), e.containerID, async (d) => {
                removed.push(...(await removeLeftInterface(e, d, this.exec(), (m) => this.log.warn(`deferred CNI DEL of container ${e.containerID}: ${m}`))));
              });
              removePendingFile(aside);
              return r;
            } catch (err) {
              putBack(aside, s.file);
              throw err;
            }
          }, this.abort.signal));
          this.lastSaid.delete(s.file);
          this.counts.pending--;
          if (!done) continue;
          this.counts.replayed++;
          const kept = done.kept.length ? `; kept ${done.kept.join(', ')} (another container's now)` : '';
          this.log.info(`deferred CNI DEL replayed: container ${e.containerID} (network ${e.network}, ${e.ifname}, deferred at ${e.deferredAt}): ${e.handle ? `IPAM handle ${e.handle} released, ` : ''}${done.deleted.length} WorkloadEndpoint(s) deleted${removed.length ? `, interface(s) left by the DEL removed: ${removed.join(', ')}` : ''}${kept}`);
        } catch (err) {
          if (err instanceof IpamLockAbortedError) break; // stopping
          this.counts.failed++;
          failed = true;
          this.failedWith(`${s.file}: ${(err as Error).message}`);
          // Said again only when the reason changes: an entry that keeps failing is retried every pass.
          const said = this.lastSaid.get(s.file);
          if (said !== (err as Error).message) this.log.warn(`deferred CNI DEL ${s.file} not replayed: ${(err as Error).message} (tried again on each pass; said again only if the reason changes)`);
          this.lastSaid.set(s.file, (err as Error).message);
          // The datastore went away again, or the lock's holder keeps it: the rest waits for the
          // next pass (100 entries each waiting out the lock bound would hold a pass for half an hour).
          if (err instanceof KvUnavailableError || err instanceof IpamLockTimeoutError) break;
        }
      }
      // Every entry tried was replayed: the last failure is over (entries beyond MAX_PER_PASS, or
      // left by a stop, are tried on the next pass and set it again if they fail).
      if (!failed && !this.stopped) this.lastError = this.lastErrorAt = null;
    } finally {
      await this.store.release(kv);
    }
  }
}

const IP_TIMEOUT_MS = 10_000;

function run(exec: ScanExec | undefined, file: string, args: string[]): Promise<{ ok: boolean; stdout: string; why: string }> {
  if (exec) {
    return exec(file, args, IP_TIMEOUT_MS).then(
      (r) => ({ ok: r.code === 0 && !r.error, stdout: r.stdout, why: (r.error ?? r.stderr ?? `exit ${r.code}`).toString().trim() }),
      (err: unknown) => ({ ok: false, stdout: '', why: (err as Error).message }),
    );
  }
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: IP_TIMEOUT_MS }, (err, stdout, stderr) => resolve({ ok: !err, stdout: stdout ?? '', why: (stderr || err?.message || '').trim() }));
  });
}

/** `ip -j link show dev NAME` (in `netns` when given): the link's ifindex and altnames; null when there is none. */
async function showLink(exec: ScanExec | undefined, netns: string | null, name: string): Promise<{ ifindex: number; altnames: string[] } | null> {
  const args = ['-j', 'link', 'show', 'dev', name];
  const r = netns === null ? await run(exec, 'ip', args) : await run(exec, 'nsenter', [`--net=${netns}`, 'ip', ...args]);
  if (!r.ok) {
    if (/does not exist|Cannot find device|No such file/.test(r.why)) return null;
    throw new Error(`${netns === null ? '' : `nsenter --net=${netns} `}ip ${args.join(' ')}: ${r.why}`);
  }
  const [l] = JSON.parse(r.stdout || '[]') as { ifindex?: number; altnames?: string[] }[];
  return l && typeof l.ifindex === 'number' ? { ifindex: l.ifindex, altnames: l.altnames ?? [] } : null;
}

/**
 * What DEL with the datastore up removes through the endpoint ADD wrote, and a deferred DEL could
 * not (its pod's interface not provably this container's: CNI_ARGS lost the pod's name), for one
 * endpoint the replay is about to delete (this container's): a veth's host end it names when that
 * is still the interface the DEL left (the entry's hostIfindex: the peer of the pod end the DEL
 * found; or, the DEL not looking for a pod end, the index the veth of that name had then:
 * hostVeths); a
 * tap/tun device in the namespace the endpoint names when it carries the endpoint's
 * altname and is the device the DEL saw (the entry's podDevice: its index, and that namespace). Best effort: what cannot be removed is said through `warn` (the
 * datastore part goes on). The interfaces removed, by name.
 */
export async function removeLeftInterface(e: PendingDel, d: Released['deleted'][number], exec: ScanExec | undefined, warn: (m: string) => void): Promise<string[]> {
  const { spec, interfaceType, interfaceNetns } = d;
  const name = spec.interfaceName;
  if (typeof name !== 'string' || name === '') return [];
  try {
    if (interfaceType === 'veth') {
      // The index the DEL saw this veth at: its pod end's peer (hostIfindex), or, the DEL not
      // looking for a pod end, the veth of this name there then (hostVeths).
      const atDel = [e.hostIfindex, e.hostVeths && Object.prototype.hasOwnProperty.call(e.hostVeths, name) ? e.hostVeths[name] : null].filter((i): i is number => typeof i === 'number');
      if (atDel.length === 0) return [];
      const l = await showLink(exec, null, name);
      if (!l || !atDel.includes(l.ifindex)) return []; // gone with its pod end, or another veth of that name now
      const r = await run(exec, 'ip', ['link', 'del', 'dev', name]);
      if (r.ok) return [name];
      if (!/does not exist|Cannot find device/.test(r.why)) warn(`host veth ${name}: ip link del: ${r.why}`);
    } else if (interfaceNetns !== null && typeof spec.endpoint === 'string' && existsSync(interfaceNetns)) {
      const l = await showLink(exec, interfaceNetns, spec.endpoint);
      if (!l || !l.altnames.includes(name)) return [];
      // The altname comes from the pod's name: a pod re-created at the same namespace path (a
      // runtime reusing named namespaces) carries it too. Only the device the DEL saw goes: its
      // index, in the very namespace it was in (an inode alone is reused by a later namespace).
      const dev = e.podDevice;
      const where = `${interfaceType} device ${name} (${spec.endpoint} in ${interfaceNetns})`;
      if (!dev) {
        warn(`${where} left: the entry does not record which device the DEL saw (its index and namespace; an entry of an older podway, or none seen), so it cannot be told from a re-created pod's`);
        return [];
      }
      const ns = netnsIdentity(interfaceNetns);
      if (ns.netnsIno !== dev.netnsIno || ns.netnsCtimeNs !== dev.netnsCtimeNs || l.ifindex !== dev.ifindex) {
        warn(`${where} left: not the device the DEL saw (${ns.netnsIno !== dev.netnsIno || ns.netnsCtimeNs !== dev.netnsCtimeNs ? 'another namespace at that path' : `index ${l.ifindex}, not ${dev.ifindex}`}: a re-created pod's)`);
        return [];
      }
      const r = await run(exec, 'nsenter', [`--net=${interfaceNetns}`, 'ip', 'link', 'del', 'dev', spec.endpoint]);
      if (r.ok) return [`${name} (${spec.endpoint} in ${interfaceNetns})`];
      if (!/does not exist|Cannot find device/.test(r.why)) warn(`${interfaceType} device ${name} in ${interfaceNetns}: ip link del: ${r.why}`);
    }
  } catch (err) {
    warn(`${interfaceType} ${name}: ${(err as Error).message}`);
  }
  return [];
}
