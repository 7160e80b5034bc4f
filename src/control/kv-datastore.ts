// A Datastore over a KvStore holding Calico's etcd v3 layout (etcd, or the embedded FileKv): the
// v3 resources under /calico/resources/v3/projectcalico.org/ and the block affinities under
// /calico/ipam/v2/host/ and the blocks' borrowed addresses under /calico/ipam/v2/assignment/,
// listed, then watched from the list's revision + 1.
//
// Unlike the YAML file, a cluster datastore is written by many hands at once, so one bad value must
// not take the node's routing down: a value that is not JSON or fails its schema is skipped with
// one error naming the key and the field, and the rest of the state is used. Cross-resource
// surprises (an endpoint on an unknown node, overlapping pools...) are warnings; only two local
// endpoints that cannot both be served (same host interface, or same address, on one node) make
// the later-created one skipped.
//
// Watch events are applied as they come; the first change after a quiet spell is emitted at once,
// later ones per burst (debounced, and at least every maxDelayMs during a long one). When the store goes away the last snapshot stays in
// force (one 'datastore unreachable' error); the KvStore's watch resumes by itself when it is back,
// or asks for a resync (compacted meanwhile), which re-lists with backoff and watches again.
import { Datastore, DatastoreEvents } from './datastore';
import { IpNet, ipv6CidrProblem, netsOverlap, parseNet } from './ipam/net';
import { cidrContainsAddr, cidrsOverlap, formatIPv4, IPv4Cidr, parseIPv4, parseIPv4Cidr, parseIPv4WithPrefix } from './ipv4';
import { KvEntry, KvEvent, KvStore, KvUnavailableError, KvWatch } from './kv/kv';
import { BlockAffinity, IPPool, Node, WorkloadEndpoint } from './resources';
import type { ClusterSnapshot, IpamBlockBorrowed, IpamBlockHost } from './snapshot';
import { Backoff } from '../util/backoff';
import { AllocationBlock } from './ipam/block';
import { BLOCK_PREFIX, parseBlockKey } from './ipam/keys';
import { ENFORCING_KINDS, type PolicyRef } from './policy-kinds';
import { selectorIssues } from './selector-fields';
import type { FelixConfiguration } from './calico-kind-schemas';
import { BGPConfiguration, BGPFilter, BGPPeer, blockAffinityFromKv, HOST_AFFINITY_PREFIX, parseResourceKey, RESOURCES_PREFIX, validateResource } from './calico-kinds';
import { abortableSleep } from '../util/abortable-sleep';

/** The prefixes a KvDatastore lists and watches. */
// The blocks are read for the node each is routed to (its own affinity field, as Felix reads it)
// and their borrowed addresses (allocations used by another node than the block's), which Felix
// routes as /32s to the node using them.
export const KV_DATASTORE_PREFIXES = [RESOURCES_PREFIX, HOST_AFFINITY_PREFIX, BLOCK_PREFIX] as const;

export interface KvDatastoreOptions {
  /** Quiet time after the last event before a snapshot is emitted (default 30 ms); the first
   * change after this much quiet is emitted at once. */
  readonly debounceMs?: number;
  /** Longest a snapshot waits during a steady stream of events (default 250 ms). */
  readonly maxDelayMs?: number;
  /** start() gives up after this long without reaching the store (default: never, as calico-node). */
  readonly startTimeoutMs?: number;
  /** First retry delay (default 1000 ms), doubled per attempt up to retryMaxMs (default 10 s). */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** Close the KvStore when the datastore is closed (default false: the caller owns it). */
  readonly ownsStore?: boolean;
  /**
   * A watch's connection dropped (not "not etcd") is said, and counted as not in sync, only when
   * the watch has not resumed within this long (default 0: at once). With several etcd members a
   * member killed, stopped or removed drops the watch on it, which resumes on another at once:
   * that is logged as one info line, not as the datastore unreachable (open-datastore.ts sets it).
   */
  readonly watchDropGraceMs?: number;
}

/** Informational lines (resyncs, reconnection) for logs; errors go to onError. */
export type DatastoreStatusListener = (line: string) => void;
/** The store was replaced under us (KvWatchHandlers.onResync's `replaced`): the line to log, once per replacement. */
export type StoreReplacedListener = (reason: string) => void;

type Item =
  | { readonly kind: 'IPPool'; readonly resource: IPPool }
  | { readonly kind: 'Node'; readonly resource: Node }
  | { readonly kind: 'WorkloadEndpoint'; readonly resource: WorkloadEndpoint }
  | { readonly kind: 'BlockAffinity'; readonly resource: BlockAffinity }
  | { readonly kind: 'BGPConfiguration'; readonly resource: BGPConfiguration }
  | { readonly kind: 'BGPPeer'; readonly resource: BGPPeer }
  | { readonly kind: 'BGPFilter'; readonly resource: BGPFilter }
  | { readonly kind: 'FelixConfiguration'; readonly resource: FelixConfiguration }
  | { readonly kind: 'IPAMBlock'; readonly resource: IpamBlockBorrowed }
  /** A network policy object (policy-kinds.ts): named from its key, never parsed further. */
  | { readonly kind: 'Policy'; readonly resource: PolicyRef };

/** One key as last seen: its revisions and what it parsed to (null: skipped or not modelled). */
interface Slot {
  readonly modRevision: number;
  readonly createRevision: number;
  readonly value: string;
  readonly item: Item | null;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class KvDatastore extends DatastoreEvents implements Datastore {
  private readonly debounceMs: number;
  /** When the last snapshot was built (Date.now()), and whether the pending timer is a leading one. */
  private lastEmitAt = -Infinity;
  private leading = false;
  private readonly maxDelayMs: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly statusListeners = new Set<DatastoreStatusListener>();
  private readonly replacedListeners = new Set<StoreReplacedListener>();
  /** Re-listing every prefix after the store was replaced: another watch saying so is the same news. */
  private relistingReplaced = false;
  /** Every key under the watched prefixes that the model reads, by prefix. */
  private readonly slots = new Map<string, Map<string, Slot>>();
  private readonly watches = new Map<string, KvWatch>();
  /** Per prefix, bumped by every re-list: an older re-list still running (a compaction resync
   * when the store was replaced) drops its result instead of overwriting the newer one's. */
  private readonly generations = new Map<string, number>();
  private readonly abort = new AbortController();
  private snapshot: ClusterSnapshot | undefined;
  private started = false;
  private down = false;
  /** A watch's drop not said yet (watchDown): its words and the grace's timer. */
  private pendingDown: { readonly detail: string; readonly timer: NodeJS.Timeout } | undefined;
  /** What the last "down" said (markDown): undefined, or the endpoint is not etcd. */
  private downKind: 'not-etcd' | undefined;
  private dirtySince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly resyncs = new Set<Promise<void>>();

  constructor(readonly kv: KvStore, private readonly options: KvDatastoreOptions = {}) {
    super();
    this.debounceMs = options.debounceMs ?? 30;
    this.maxDelayMs = options.maxDelayMs ?? 250;
    this.retryInitialMs = options.retryInitialMs ?? 1000;
    this.retryMaxMs = options.retryMaxMs ?? 10_000;
    for (const p of KV_DATASTORE_PREFIXES) this.slots.set(p, new Map());
  }

  /** Reachable and not re-listing after a lost watch: what this node forwards on is current. */
  get inSync(): boolean {
    return !this.down && this.resyncs.size === 0;
  }

  get source(): string {
    return this.kv.description;
  }

  async start(): Promise<ClusterSnapshot> {
    if (this.started || this.closed) throw new Error(`${this.source}: datastore already started or closed`);
    this.started = true;
    const deadline = this.options.startTimeoutMs === undefined ? Infinity : Date.now() + this.options.startTimeoutMs;
    const lists = new Map<string, number>();
    try {
      for (const prefix of KV_DATASTORE_PREFIXES) {
        lists.set(prefix, (await this.listWithRetry(prefix, deadline, true))!);
      }
    } catch (e) {
      await this.close();
      throw e;
    }
    const snapshot = this.buildSnapshot();
    this.snapshot = snapshot;
    this.emitSnapshot(snapshot);
    for (const [prefix, revision] of lists) this.watchFrom(prefix, revision + 1);
    return snapshot;
  }

  current(): ClusterSnapshot | undefined {
    return this.snapshot;
  }

  /**
   * The store was replaced (another etcd cluster, or its revision went back): told once per
   * replacement, when every prefix is being listed again; the caller registers its node again.
   */
  onStoreReplaced(listener: StoreReplacedListener): () => void {
    this.replacedListeners.add(listener);
    return () => this.replacedListeners.delete(listener);
  }

  /** Resyncs and reconnections, for logs. */
  onStatus(listener: DatastoreStatusListener): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /**
   * New connections to the store (KvStore.reconnect), said in the log with `reason`; the watches
   * go on from where they were. Nothing for a store without connections.
   */
  reconnect(reason: string): void {
    if (this.closed || !this.kv.reconnect) return;
    this.emitStatus(`${this.source}: new connections (${reason}); watches go on from the last revision received`);
    this.kv.reconnect();
  }

  async close(): Promise<void> {
    this.clearPendingDown();
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const watches = [...this.watches.values()];
    this.watches.clear();
    await Promise.all(watches.map((w) => w.close().catch(() => undefined)));
    await Promise.all([...this.resyncs]);
    if (this.options.ownsStore) await this.kv.close();
  }

  // ---- listing ------------------------------------------------------------------------------

  /**
   * Lists `prefix` into its slots, retrying an unreachable store with backoff until `deadline`.
   * Returns the list's revision. Other errors are thrown, unless `retryAll` (a re-list while
   * running: any error is retried with the same backoff, or that prefix would never be watched
   * again while the node looked in sync; each new error text is said once).
   */
  private async listWithRetry(prefix: string, deadline: number, reportEach: boolean, current: () => boolean = () => true, retryAll = false): Promise<number | null> {
    const backoff = new Backoff({ first: this.retryInitialMs, max: this.retryMaxMs });
    /** The last error of another kind said (retryAll): the same one again is not said again. */
    let said = '';
    let failed = 0;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new Error(`${this.source}: datastore closed`);
      if (!current()) return null;
      try {
        const list = await this.kv.list(prefix);
        if (this.closed) throw new Error(`${this.source}: datastore closed`);
        if (!current()) return null;
        this.replaceSlots(prefix, list.entries);
        if (this.down) this.markUp(`listed ${prefix} at revision ${list.revision}`);
        else if (failed > 0) this.emitStatus(`${this.source}: resync of ${prefix}: listed at revision ${list.revision} after ${failed} failed attempt${failed > 1 ? 's' : ''}`);
        return list.revision;
      } catch (e) {
        if (this.closed) throw e;
        if (!(e instanceof KvUnavailableError)) {
          if (!retryAll) throw e;
          failed++;
          const wait = backoff.next();
          const text = errorText(e);
          if (text !== said) this.emitError(new Error(`${this.source}: resync of ${prefix} failed (attempt ${attempt}, retrying in ${wait / 1000} s, backing off to every ${this.retryMaxMs / 1000} s; ${prefix} is not followed meanwhile): ${text}`));
          said = text;
          await abortableSleep(wait, this.abort.signal);
          continue;
        }
        failed++;
        const wait = backoff.next();
        if (Date.now() + wait > deadline) {
          throw new Error(`datastore unreachable: gave up after ${attempt} attempts (start timeout ${this.options.startTimeoutMs} ms): ${e.message}`);
        }
        // At start every attempt is logged (nothing else shows we are alive); while running, one
        // 'unreachable' per outage.
        if (reportEach || !this.down) {
          this.emitError(new Error(`datastore unreachable (attempt ${attempt}, retrying in ${wait / 1000} s): ${e.message}`));
        }
        this.down = true;
        await abortableSleep(wait, this.abort.signal);
      }
    }
  }

  private replaceSlots(prefix: string, entries: readonly KvEntry[]): void {
    const old = this.slots.get(prefix)!;
    const next = new Map<string, Slot>();
    for (const entry of entries) {
      const prev = old.get(entry.key);
      // Unchanged keys keep their parse (and a bad value is not reported again after a resync).
      // The value is compared as well: in a replaced store (wiped, another cluster) revisions
      // start again, so the same key can have the same modRevision and another value.
      const same = prev && prev.modRevision === entry.modRevision && prev.createRevision === entry.createRevision && prev.value === entry.value;
      next.set(entry.key, same ? prev : this.parse(entry));
    }
    this.slots.set(prefix, next);
  }

  /** Parses one value; a bad one is reported once (naming key and field) and skipped. */
  private parse(entry: KvEntry): Slot {
    const slot = (item: Item | null): Slot => ({ modRevision: entry.modRevision, createRevision: entry.createRevision, value: entry.value, item });
    if (entry.key.startsWith(HOST_AFFINITY_PREFIX)) {
      // Other IPAM host keys (none today) are not affinities: only .../ipvN/block/CIDR is.
      if (!/\/ipv[46]\/block\/[^/]+$/.test(entry.key)) return slot(null);
      try {
        return slot({ kind: 'BlockAffinity', resource: blockAffinityFromKv(entry.key, entry.value) });
      } catch (e) {
        this.emitError(new Error(`${entry.key}: ${errorText(e)} (skipped)`));
        return slot(null);
      }
    }
    if (entry.key.startsWith(BLOCK_PREFIX)) return slot(this.parseBlock(entry));
    const id = parseResourceKey(entry.key);
    // Policies are named from the key alone: podway does not act on them, it only says they exist.
    if (id && ENFORCING_KINDS.has(id.info.kind)) return slot({ kind: 'Policy', resource: { kind: id.info.kind, name: id.name, ...(id.namespace !== undefined ? { namespace: id.namespace } : {}) } });
    if (!id || !['IPPool', 'Node', 'WorkloadEndpoint', 'BGPConfiguration', 'BGPPeer', 'BGPFilter', 'FelixConfiguration'].includes(id.info.kind)) return slot(null);
    let raw: unknown;
    try {
      raw = JSON.parse(entry.value);
    } catch (e) {
      this.emitError(new Error(`${entry.key}: not valid JSON (${errorText(e)}) (skipped)`));
      return slot(null);
    }
    const result = validateResource(raw);
    if (!result.ok) {
      const text = result.issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
      this.emitError(new Error(`${entry.key}: ${text} (skipped)`));
      return slot(null);
    }
    if (result.info !== id.info) {
      this.emitError(new Error(`${entry.key}: kind: ${result.info.kind} stored under ${id.info.plural}/ (skipped)`));
      return slot(null);
    }
    const meta = (result.value as { metadata: { name: string; namespace?: string } }).metadata;
    if (meta.name !== id.name || (id.namespace !== undefined && meta.namespace !== id.namespace)) {
      const where = id.namespace !== undefined ? `${id.namespace}/${id.name}` : id.name;
      this.emitError(new Error(`${entry.key}: metadata.name: ${id.namespace !== undefined ? `${meta.namespace}/` : ''}${meta.name} does not match the key (${where}) (skipped)`));
      return slot(null);
    }
    return slot({ kind: id.info.kind, resource: result.value } as Item);
  }

  /** A block's borrowed addresses; null (nothing to route) when it has none or is not a block. */
  private parseBlock(entry: KvEntry): Item | null {
    const cidr = parseBlockKey(entry.key);
    if (!cidr) return null;
    try {
      const block = AllocationBlock.decode(entry.value, cidr);
      if (block.deleted) return null;
      // The block's own host (Felix routes the block to it, whatever its affinity key's state)
      // and its non-affine allocations (each routed to the node it names).
      const allocations = block.nonAffineAllocations();
      const host = block.host();
      if (allocations.length === 0 && host === '') return null;
      return { kind: 'IPAMBlock', resource: { cidr: cidr.text, host: host === '' ? null : host, allocations } };
    } catch (e) {
      this.emitError(new Error(`${entry.key}: ${errorText(e)} (skipped)`));
      return null;
    }
  }

  // ---- watching -----------------------------------------------------------------------------

  private watchFrom(prefix: string, fromRevision: number): void {
    if (this.closed) return;
    // A watch still open on this prefix is closed, not dropped: it would stay open unseen.
    const old = this.watches.get(prefix);
    if (old) {
      this.watches.delete(prefix);
      void old.close().catch(() => undefined);
    }
    const watch = this.kv.watch(prefix, fromRevision, {
      onEvents: (events) => {
        if (this.watches.get(prefix) !== watch || this.closed) return;
        try {
          this.applyEvents(prefix, events);
        } catch (e) {
          this.emitError(new Error(`${this.source}: ${errorText(e)}`));
        }
      },
      onResync: (reason, replaced) => {
        if (this.watches.get(prefix) !== watch || this.closed) return;
        this.watches.delete(prefix);
        if (replaced) this.storeReplaced(prefix, reason);
        else this.resync(prefix, reason);
      },
      onStatus: (status, detail, kind) => {
        if (this.watches.get(prefix) !== watch || this.closed) return;
        if (status === 'down') this.watchDown(detail, kind);
        else if (this.pendingDown) {
          const dropped = this.pendingDown.detail;
          this.clearPendingDown();
          this.emitStatus(`a watch's connection dropped (${dropped}) and it resumed on another etcd member within ${(this.options.watchDropGraceMs ?? 0) / 1000} s (a member stopped, restarted or removed?): ${detail}`);
        } else if (this.down) this.markUp(detail);
      },
    });
    this.watches.set(prefix, watch);
  }

  private applyEvents(prefix: string, events: readonly KvEvent[]): void {
    const slots = this.slots.get(prefix)!;
    let changed = false;
    for (const ev of events) {
      if (ev.type === 'put') {
        const slot = this.parse(ev.entry);
        const prev = slots.get(ev.entry.key);
        slots.set(ev.entry.key, slot);
        // Most block writes (an address assigned or released in its own node's block) change no
        // borrowed address: they must not cost a snapshot (nor delay the endpoint write after them).
        if (slot.item?.kind === 'IPAMBlock' && prev?.item?.kind === 'IPAMBlock' && JSON.stringify(slot.item.resource) === JSON.stringify(prev.item.resource)) continue;
        if (slot.item || prev?.item) changed = true;
      } else {
        const prev = slots.get(ev.key);
        slots.delete(ev.key);
        if (prev?.item) changed = true;
      }
    }
    if (changed) this.scheduleSnapshot();
  }

  /** Lists `prefix` again (retrying while unreachable) and watches it from there. */
  private async relist(prefix: string): Promise<void> {
    const generation = (this.generations.get(prefix) ?? 0) + 1;
    this.generations.set(prefix, generation);
    let revision: number | null;
    try {
      // Every error retried (etcd's "too many requests", an endpoint answering UNIMPLEMENTED): the
      // prefix stays not followed, and the datastore not in sync (resyncs), until a list succeeds.
      revision = await this.listWithRetry(prefix, Infinity, false, () => this.generations.get(prefix) === generation, true);
    } catch (e) {
      // closed meanwhile (nothing else ends the retries)
      if (!this.closed) this.emitError(new Error(`${this.source}: resync of ${prefix} failed: ${errorText(e)}`));
      return;
    }
    if (revision === null) return; // a newer re-list of this prefix took over
    // While the replaced store is re-listed the snapshot waits for every prefix (storeReplaced).
    this.scheduleSnapshot(true);
    this.watchFrom(prefix, revision + 1);
  }

  private resync(prefix: string, reason: string): void {
    const run = this.relist(prefix);
    this.resyncs.add(run);
    void run.finally(() => this.resyncs.delete(run));
    // After the resync is recorded, so the line's listeners see inSync false.
    this.emitStatus(`${this.source}: watch of ${prefix} must resync (${reason}): listing again`);
  }

  /**
   * Every prefix is listed again (the other watches point into the old store's history as well,
   * and a quiet prefix's watch may not notice for long), and the listeners told once.
   */
  private storeReplaced(prefix: string, reason: string): void {
    if (this.relistingReplaced) {
      // Already listing everything again (the old watches were closed and say nothing more): this
      // is a watch made from a list of the new store, which changed again: its prefix once more.
      this.resync(prefix, reason);
      return;
    }
    this.relistingReplaced = true;
    // A snapshot now would mix the prefixes listed from the new store with the old store's: none
    // until every prefix is back (scheduleSnapshot holds them), then one.
    this.cancelSnapshot();
    const watches = [...this.watches.values()];
    this.watches.clear();
    for (const w of watches) void w.close().catch(() => undefined);
    const runs: Promise<void>[] = [];
    for (const prefix of KV_DATASTORE_PREFIXES) runs.push(this.relist(prefix));
    const all = Promise.all(runs).then(() => undefined);
    this.resyncs.add(all);
    void all.finally(() => {
      this.resyncs.delete(all);
      this.relistingReplaced = false;
      this.scheduleSnapshot(true);
    });
    // After the resyncs are recorded, so the listeners see inSync false. Without a listener (that
    // registers the node again) it is a status line.
    const line = `${reason}: re-listing${this.replacedListeners.size > 0 ? ' and re-registering' : ''}`;
    if (this.replacedListeners.size === 0) this.emitStatus(line);
    for (const l of this.replacedListeners) l(line);
  }

  /** A watch down: said at once, or after the grace (watchDropGraceMs) unless it resumed meanwhile. */
  private watchDown(detail: string, kind?: 'not-etcd'): void {
    const grace = this.options.watchDropGraceMs ?? 0;
    if (grace <= 0 || kind !== undefined || this.down) {
      this.clearPendingDown();
      this.markDown(detail, kind);
      return;
    }
    if (this.pendingDown) return; // the first words stand, as markDown's
    const timer = setTimeout(() => {
      const d = this.pendingDown?.detail;
      this.pendingDown = undefined;
      if (d !== undefined && !this.closed) this.markDown(d);
    }, grace);
    timer.unref();
    this.pendingDown = { detail, timer };
  }

  private clearPendingDown(): void {
    if (this.pendingDown) clearTimeout(this.pendingDown.timer);
    this.pendingDown = undefined;
  }

  /**
   * Said once per outage, and again when what answers changed (a watch's `kind`: the endpoint
   * answers but is not etcd, or no longer): the status and /readyz then say that, not the words
   * of the outage's first moment.
   */
  private markDown(detail: string, kind?: 'not-etcd'): void {
    if (this.down && this.downKind === kind) return;
    this.down = true;
    this.downKind = kind;
    // an https:// etcd given as http:// is etcd, answering in TLS (etcd-failover.ts notEtcdText)
    const what = kind !== 'not-etcd' ? 'datastore unreachable' : / speaks TLS, not plain HTTP\/2/.test(detail) ? 'datastore speaks TLS at an http:// endpoint' : 'datastore answers but is not etcd';
    this.emitError(new Error(`${what}: ${detail} (keeping the last snapshot)`));
  }

  private markUp(detail: string): void {
    this.down = false;
    this.emitStatus(`datastore reachable again: ${detail}`);
  }

  // ---- snapshots ----------------------------------------------------------------------------

  private cancelSnapshot(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.leading = false;
    this.dirtySince = undefined;
  }

  private scheduleSnapshot(now = false): void {
    // Held while the replaced store is re-listed: storeReplaced schedules one when it is done.
    if (this.closed || this.relistingReplaced) return;
    const t = Date.now();
    // A snapshot already on its way at once is built when it fires, so it includes this change.
    if (this.timer && this.leading) return;
    // A change after a quiet spell (no snapshot for debounceMs) goes out at once, on the next
    // macrotask so that the events of one watch response make one snapshot: a new pod is not
    // held back by the debounce (it cost 30 ms of the 100 ms watch-to-forwarding budget,
    // bench/watch). Changes that follow within debounceMs are gathered until debounceMs of quiet
    // (at most maxDelayMs), as a burst or a re-list needs.
    const leading = now || (this.timer === undefined && t - this.lastEmitAt >= this.debounceMs);
    this.dirtySince ??= t;
    if (this.timer) clearTimeout(this.timer);
    const wait = leading ? 0 : Math.max(0, Math.min(this.debounceMs, this.dirtySince + this.maxDelayMs - t));
    this.leading = leading;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.leading = false;
      this.dirtySince = undefined;
      this.lastEmitAt = Date.now();
      if (this.closed) return;
      try {
        const snapshot = this.buildSnapshot();
        this.snapshot = snapshot;
        this.emitSnapshot(snapshot);
      } catch (e) {
        this.emitError(new Error(`${this.source}: could not build a snapshot: ${errorText(e)}`));
      }
    }, wait);
  }

  /** The snapshot of the slots: resources oldest-written first (later = newer, as in a file). */
  private buildSnapshot(): ClusterSnapshot {
    const all: { slot: Slot; key: string }[] = [];
    for (const slots of this.slots.values()) for (const [key, slot] of slots) if (slot.item) all.push({ slot, key });
    all.sort((a, b) => a.slot.modRevision - b.slot.modRevision || (a.key < b.key ? -1 : 1));
    const ipPools: IPPool[] = [];
    const nodes: Node[] = [];
    const blockAffinities: BlockAffinity[] = [];
    const bgpConfigurations: BGPConfiguration[] = [];
    const bgpPeers: BGPPeer[] = [];
    const bgpFilters: BGPFilter[] = [];
    const felixConfigurations: FelixConfiguration[] = [];
    const ipamBlocks: IpamBlockBorrowed[] = [];
    const ipamBlockHosts: IpamBlockHost[] = [];
    const policies: PolicyRef[] = [];
    const weps: { wep: WorkloadEndpoint; createRevision: number }[] = [];
    for (const { slot } of all) {
      const item = slot.item!;
      if (item.kind === 'IPPool') ipPools.push(item.resource);
      else if (item.kind === 'Node') nodes.push(item.resource);
      else if (item.kind === 'BlockAffinity') {
        // Pending and pendingDeletion are IPAM's claims in progress: only confirmed ones are
        // listed (BGP exports them); the routes follow the blocks' own affinity (ipamBlockHosts).
        if (item.resource.spec.state === 'confirmed' && item.resource.spec.deleted !== 'true' && item.resource.spec.deleted !== true) {
          blockAffinities.push(item.resource);
        }
      } else if (item.kind === 'BGPConfiguration') bgpConfigurations.push(item.resource);
      else if (item.kind === 'BGPPeer') bgpPeers.push(item.resource);
      else if (item.kind === 'BGPFilter') bgpFilters.push(item.resource);
      else if (item.kind === 'FelixConfiguration') felixConfigurations.push(item.resource);
      else if (item.kind === 'IPAMBlock') {
        if (item.resource.allocations.length > 0) ipamBlocks.push(item.resource);
        if (item.resource.host !== null) ipamBlockHosts.push({ cidr: item.resource.cidr, node: item.resource.host });
      }
      else if (item.kind === 'Policy') policies.push(item.resource);
      else weps.push({ wep: item.resource, createRevision: slot.createRevision });
    }
    const warnings: string[] = [];
    const workloadEndpoints = checkSnapshot(this.source, ipPools, nodes, blockAffinities, weps, warnings);
    return { source: this.source, ipPools, nodes, blockAffinities, workloadEndpoints, bgpConfigurations, bgpPeers, bgpFilters, felixConfigurations, ipamBlocks, ipamBlockHosts, policies, warnings };
  }



  private emitStatus(line: string): void {
    if (this.closed) return;
    for (const listener of [...this.statusListeners]) {
      try {
        listener(line);
      } catch {
        // as above
      }
    }
  }
}

/**
 * Cross-resource checks on live cluster state, where transient inconsistency is normal: warnings,
 * except that of two endpoints on one node with the same host interface or address the one
 * created later is left out (the dataplane could not tell which one a packet is for).
 * Returns the endpoints to use, in the order given.
 */
function checkSnapshot(
  source: string,
  pools: readonly IPPool[],
  nodes: readonly Node[],
  affinities: readonly BlockAffinity[],
  weps: readonly { wep: WorkloadEndpoint; createRevision: number }[],
  warnings: string[],
): WorkloadEndpoint[] {
  const warn = (text: string) => warnings.push(`${source}: ${text}`);
  const pools4: { name: string; cidr: IPv4Cidr }[] = [];
  const seen: { name: string; net: IpNet }[] = [];
  for (const pool of pools) {
    const problem = ipv6CidrProblem(pool.spec.cidr);
    if (problem) warn(`IPPool ${pool.metadata.name}: spec.cidr ${problem} (routed as its network)`);
    // stored by another tool (apply refuses it): loaded, and IPAM gives the pool to no node
    for (const i of selectorIssues({ kind: 'IPPool', spec: pool.spec })) warn(`IPPool ${pool.metadata.name}: ${i.path}: ${i.message} (IPAM selects no node for it)`);
    const net = parseNet(pool.spec.cidr);
    if (!net) continue;
    const clash = seen.find((p) => netsOverlap(p.net, net));
    if (clash) warn(`IPPool ${pool.metadata.name} (${pool.spec.cidr}) overlaps IPPool ${clash.name} (${clash.net.text})`);
    seen.push({ name: pool.metadata.name, net });
    const cidr = parseIPv4Cidr(pool.spec.cidr);
    if (cidr) pools4.push({ name: pool.metadata.name, cidr });
  }
  const nodeNames = new Set(nodes.map((n) => n.metadata.name));
  const nodeIps = new Map<number, string>();
  const vteps = new Map<number, string>();
  for (const node of nodes) {
    const text = node.spec.bgp?.ipv4Address;
    const addr = text === undefined ? null : parseIPv4(text) ?? parseIPv4WithPrefix(text)?.addr ?? null;
    if (addr !== null) {
      const owner = nodeIps.get(addr);
      if (owner !== undefined) warn(`Node ${node.metadata.name} has the address ${formatIPv4(addr)} of Node ${owner}`);
      else nodeIps.set(addr, node.metadata.name);
    }
    const vtep = node.spec.ipv4VXLANTunnelAddr === undefined ? null : parseIPv4(node.spec.ipv4VXLANTunnelAddr);
    if (vtep !== null) {
      const owner = vteps.get(vtep);
      if (owner !== undefined) warn(`Node ${node.metadata.name} has the VXLAN tunnel address ${formatIPv4(vtep)} of Node ${owner}`);
      else vteps.set(vtep, node.metadata.name);
    }
  }
  const blocks: { cidr: IPv4Cidr; node: string }[] = [];
  for (const affinity of affinities) {
    const { node, cidr: cidrText } = affinity.spec;
    if (!nodeNames.has(node)) warn(`block ${cidrText} is affine to unknown node ${node}`);
    const cidr = parseIPv4Cidr(cidrText);
    if (!cidr) continue;
    if (!pools4.some((p) => cidrsOverlap(p.cidr, cidr))) warn(`block ${cidrText} of node ${node} is outside every IPPool`);
    const clash = blocks.find((b) => cidrsOverlap(b.cidr, cidr));
    if (clash) warn(`block ${cidrText} is confirmed for node ${node} and for node ${clash.node}`);
    blocks.push({ cidr, node });
  }
  // Which endpoint keeps a contested interface or address: the one created first.
  const byAge = [...weps].sort((a, b) => a.createRevision - b.createRevision);
  const ifaceOwner = new Map<string, string>();
  const ipOwner = new Map<string, string>();
  const dropped = new Set<WorkloadEndpoint>();
  for (const { wep } of byAge) {
    const name = `${wep.metadata.namespace}/${wep.metadata.name}`;
    const { node, interfaceName, ipNetworks } = wep.spec;
    if (!nodeNames.has(node)) warn(`WorkloadEndpoint ${name} is on unknown node ${node}`);
    const ifaceKey = `${node}\u0000${interfaceName}`;
    const ifaceClash = ifaceOwner.get(ifaceKey);
    if (ifaceClash !== undefined) {
      warn(`WorkloadEndpoint ${name} left out: interface ${interfaceName} on node ${node} belongs to WorkloadEndpoint ${ifaceClash}`);
      dropped.add(wep);
      continue;
    }
    const ipClash = ipNetworks.map((n) => ({ n, owner: ipOwner.get(`${node}\u0000${n.toLowerCase()}`) })).find((c) => c.owner !== undefined);
    if (ipClash) {
      warn(`WorkloadEndpoint ${name} left out: ${ipClash.n} on node ${node} belongs to WorkloadEndpoint ${ipClash.owner}`);
      dropped.add(wep);
      continue;
    }
    ifaceOwner.set(ifaceKey, name);
    for (const net of ipNetworks) {
      ipOwner.set(`${node}\u0000${net.toLowerCase()}`, name);
      const v4 = net.includes(':') ? null : parseIPv4WithPrefix(net);
      if (v4 && !pools4.some((p) => cidrContainsAddr(p.cidr, v4.addr))) warn(`WorkloadEndpoint ${name}: ${net} is outside every IPPool`);
    }
  }
  return weps.filter((w) => !dropped.has(w.wep)).map((w) => w.wep);
}
