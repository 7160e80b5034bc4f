// `podway run`'s side of orphan pod addresses (docs/ipam.md, "Addresses a pod on the node still
// holds"): what its engine finds (a pod interface holding an address no WorkloadEndpoint names:
// dataplane/orphan-pods.ts, at start and while it runs) is held in IPAM at once, under the
// host-wide IPAM lock the node's CNI plugin takes (the `ipam_lock_file` of this node's podway
// networks in --cni-conf-dir) and under the plugin's handle `podway-orphan.<node>.<interface>`
// (control/ipam/orphan-holds.ts), so that between its discovery and the next CNI ADD on the node
// no other node (borrowing from the block when strict affinity is off) and no `podway ipam assign`
// is given it. Holds of this node whose interface is gone are released by the same passes: one
// when the engine finds new orphans, one at start, and one every interval while this node holds any.
//
// Each pass also removes the per-container lock files the CNI's ADDs left (cni/container-lock.ts,
// sweepContainerLocks): those of pods whose DEL never came stayed for good.
//
// In podway run each pass takes its turn in the run's upkeep queue and uses its one store (upkeep.ts).
//
// The engine is not imported: run hands this module the engine's list (orphanList) and whether
// its start scan is done, so the layers stay apart (dataplane finds, control holds, cli wires).
import { existsSync } from 'node:fs';
import type { DatastoreSpec } from '../control/kv/spec';
import { storePerPass, type RunUpkeep, type UpkeepStore } from './upkeep';
import { Ipam } from '../control/ipam';
import { holdOrphans, orphanLedgerFile, POD_DEVICE_NAME, type FoundOrphan } from '../control/ipam/orphan-holds';
import { IpamLockAbortedError, withIpamLock } from '../cni/ipam-lock';
import { sweepContainerLocks } from '../cni/container-lock';
import { Backoff } from '../util/backoff';

export const DEFAULT_ORPHAN_HOLD_INTERVAL_MS = 60_000;
const KV_TIMEOUT_MS = 5_000;
const LOCK_TIMEOUT_MS = 20_000;

export interface OrphanHoldSource {
  /** The orphans the engine knows and that are still there. */
  list(): readonly FoundOrphan[];
  /** Whether the engine's start scan of the pods' namespaces is done and read every pod (before it, a tap/tun pod's hold is not judged gone). */
  scanComplete(): boolean;
  /**
   * Looks for each tap/tun orphan's device in its pod's namespace, drops those gone from the list
   * (list() keeps them while the namespace stays) and gives their names (engine.ts
   * checkPodDevices). Called at the start of each pass, in the pass's turn of the upkeep queue.
   */
  checkDevices?(): Promise<readonly string[]>;
}

export interface OrphanHoldLog {
  info(m: string): void;
  warn(m: string): void;
}

export interface OrphanHoldStatus {
  readonly held: number;
  readonly lastError: string | null;
}

export class OrphanHolder {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;
  private again = false;
  /** This node's holds after the last pass (-1: not known yet: the first pass looks). */
  private holds = -1;
  private lastError: string | null = null;
  /** The waits before a failed pass is tried again (doubling from 2 s up to the interval). */
  private readonly retries: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly node: string,
    spec: Exclude<DatastoreSpec, { kind: 'file' }>,
    /** The IPAM lock files, sorted (taken in that order); the ledger is beside the first. */
    private readonly lockFiles: readonly string[],
    private readonly source: OrphanHoldSource,
    private readonly log: OrphanHoldLog,
    private readonly intervalMs = DEFAULT_ORPHAN_HOLD_INTERVAL_MS,
    /**
     * podway run's upkeep (upkeep.ts): its one store, and its queue, in which each pass runs (never
     * beside a deferred DEL's replay or the engine's look into the pods' namespaces). Absent: a
     * light store of the pass's own, passes run as they come.
     */
    upkeep?: RunUpkeep,
  ) {
    this.store = upkeep?.store ?? storePerPass(spec, 'command', KV_TIMEOUT_MS);
    this.serial = upkeep?.serial ?? ((task) => task());
    this.retries = new Backoff({ first: Math.min(2000, intervalMs), max: intervalMs });
  }

  private readonly store: UpkeepStore;
  private readonly serial: RunUpkeep['serial'];

  /** A first pass now, then one every interval (each a no-op while nothing is found or held). */
  start(): void {
    this.kick();
    if (this.timer) return;
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
  }

  /** A pass now (or right after the one under way). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.serial(() => (this.stopped ? Promise.resolve() : this.pass()))
      .then(() => {
        this.retries.reset();
      }, (e) => {
        if (e instanceof IpamLockAbortedError || this.stopped) return;
        // A failed pass (etcd slow or away, the IPAM lock held long) is tried again soon, not at
        // the next interval's pass: until held, another node can be given these addresses.
        const wait = this.retries.next();
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.kick(), wait);
        this.retryTimer.unref();
        const m = (e as Error).message;
        if (m !== this.lastError) this.log.warn(`orphan pod addresses not held in IPAM: ${m} (tried again in ${Math.round(wait / 1000)} s, then less often, up to every ${Math.round(this.intervalMs / 1000)} s)`);
        this.lastError = m;
      })
      .finally(() => {
        this.running = null;
        if (this.again && !this.stopped) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves once no pass is under way (tests, stop). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    this.abort.abort();
    await this.running;
  }

  /**
   * The per-container lock files the node's CNI ADDs left beside each IPAM lock file, of
   * containers no ADD holds now and unused for a minute (cni/container-lock.ts
   * sweepContainerLocks): a pod whose DEL never came (its netns gone while podway was down,
   * cleaned up by hand with the commands `podway status` prints) left its file for good. Local
   * files only: no datastore traffic, nothing logged (a file's removal changes nothing an ADD
   * sees: the next ADD of that container makes it again).
   */
  private async sweepLocks(): Promise<void> {
    for (const f of this.lockFiles) {
      try {
        this.locksSwept += await sweepContainerLocks(f);
      } catch {
        /* best effort, as DEL's removal: tried again next pass */
      }
    }
  }

  /** Container lock files removed by the passes so far (tests). */
  locksSwept = 0;

  status(): OrphanHoldStatus {
    return { held: Math.max(0, this.holds), lastError: this.lastError };
  }

  private async pass(): Promise<void> {
    await this.sweepLocks();
    // a tap/tun pod's device deleted from a namespace that stays: only this look finds it (an `ip`
    // in that namespace, only while the list holds a tap/tun pod)
    const devicesGone = new Set(this.source.checkDevices ? await this.source.checkDevices() : []);
    if (this.stopped) return;
    const found = this.source.list();
    // nothing found and nothing held: no datastore traffic
    if (found.length === 0 && this.holds === 0) return;
    const live = new Set(found.map((f) => f.ifname));
    const complete = this.source.scanComplete();
    // A veth's hold goes with its veth (one an endpoint names again: the CNI's next ADD); a tap/tun
    // pod's device is in its pod's namespace, where the engine looks (its list says it is there),
    // and one checkDevices found gone is gone even when the start scan missed a pod (partial).
    const gone = (ifname: string) => !live.has(ifname) && (POD_DEVICE_NAME.test(ifname) ? complete || devicesGone.has(ifname) : !existsSync(`/sys/class/net/${ifname}`));
    const kv = this.store.get();
    try {
      const ipam = new Ipam(kv);
      const under = (i: number): Promise<Awaited<ReturnType<typeof holdOrphans>>> => (i === this.lockFiles.length
        ? holdOrphans(ipam, kv, { node: this.node, found, gone, ledgerFile: orphanLedgerFile(this.lockFiles[0]!), by: 'podway run' })
        : withIpamLock({ file: this.lockFiles[i]!, timeoutMs: LOCK_TIMEOUT_MS, setting: `the "ipam_lock_file" of this node's podway network (--cni-conf-dir)` }, () => under(i + 1), this.abort.signal));
      const r = await under(0);
      this.holds = r.holds;
      this.lastError = null;
      if (r.held.length > 0) this.log.info(`orphan pod addresses held in IPAM so that no pod is given them: ${r.held.join(', ')} (handle podway-orphan.${this.node}.<interface>)`);
      if (r.released.length > 0) this.log.info(`orphan pod address holds released, their interface gone: ${r.released.join(', ')}`);
      if (r.releasedByHand.length > 0) this.log.warn(`orphan pod address(es) released from IPAM by hand since podway held them: ${r.releasedByHand.join(', ')}; not held again while the interface has them (IPAM may give them to another pod: remove that pod)`);
    } finally {
      await this.store.release(kv);
    }
  }
}
