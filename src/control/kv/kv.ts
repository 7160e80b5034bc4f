/**
 * A writable key-value datastore, as Calico uses etcd v3: string keys in one ordered space
 * (`/calico/resources/v3/...`, `/calico/ipam/v2/...`), JSON values, and one store-wide revision
 * that every write advances. Each entry carries the revision that created it and the one that last
 * modified it; writers compare-and-swap on the latter, which is how Calico's IPAM keeps two nodes
 * from claiming one block and two pods from getting one address.
 *
 * Two implementations: etcd v3 (etcd-kv.ts, for clusters) and an embedded store on local files
 * (file-kv.ts, the single-machine default: several processes may write at once; a write is whole
 * or absent after a crash).
 */

export interface KvEntry {
  readonly key: string;
  readonly value: string;
  /** Store revision of the write that created the key (etcd CreateRevision). */
  readonly createRevision: number;
  /** Store revision of the last write to the key (etcd ModRevision; Calico's resourceVersion). */
  readonly modRevision: number;
}

export interface KvList {
  readonly entries: readonly KvEntry[];
  /** The store revision the list was read at: watch from revision + 1 to miss nothing. */
  readonly revision: number;
}

export type KvEvent =
  | { readonly type: 'put'; readonly entry: KvEntry }
  | { readonly type: 'delete'; readonly key: string; readonly modRevision: number };

/**
 * A condition on another key for a write: its modRevision is still `modRevision` (so it exists).
 * The guard key is compared, not written; the write and every comparison are one transaction.
 */
export interface KvGuard {
  readonly key: string;
  readonly modRevision: number;
}

/**
 * One write of a batch (KvStore.writeBatch): `key` created if absent (modRevision 0), or replaced
 * while its modRevision is still `modRevision`.
 */
export interface KvBatchWrite {
  readonly key: string;
  readonly value: string;
  /** 0: create (the key must be absent); otherwise the modRevision the key must still have. */
  readonly modRevision: number;
}

/** The arguments every writeBatch refuses (more than the store's `max`, a key twice), as a
 * RangeError; false for an empty batch (nothing to write: the store returns [] at once). */
export function checkBatch(writes: readonly KvBatchWrite[], max: number): boolean {
  if (writes.length === 0) return false;
  if (writes.length > max) throw new RangeError(`writeBatch: ${writes.length} writes, at most ${max}`);
  if (new Set(writes.map((w) => w.key)).size !== writes.length) throw new RangeError('writeBatch: a key written twice');
  return true;
}

export interface KvWatch {
  /** Stop watching; no callback runs after the returned promise resolves. */
  close(): Promise<void>;
}

export interface KvWatchHandlers {
  /** Events in revision order, each exactly once. */
  onEvents(events: readonly KvEvent[]): void;
  /**
   * The watch could not continue from where it was (the store compacted past it, or it was
   * unreachable long enough that events may be lost): the caller must re-list and watch again
   * from the new list's revision. The watch is closed when this is called.
   * `replaced`: the store itself is another one now (another etcd cluster, or its revision went
   * back: wiped, rebuilt, restored from a snapshot): what this node wrote there (its Node) may be
   * gone too, and every other watch on the store is as stale as this one.
   */
  onResync(reason: string, replaced?: boolean): void;
  /**
   * The store became unreachable or reachable again (for logs and health). 'down' may come again
   * while down when what answers changed (`kind` 'not-etcd': an endpoint answers, but is not etcd).
   */
  onStatus?(status: 'up' | 'down', detail: string, kind?: 'not-etcd'): void;
}

export interface KvStore {
  /** A short description for logs, e.g. `etcd http://127.0.0.1:2379` or `embedded /var/lib/podway`. */
  readonly description: string;
  get(key: string): Promise<KvEntry | null>;
  /** Every key starting with `prefix`, in key order. */
  list(prefix: string): Promise<KvList>;
  /** Create `key` only if it does not exist; null when it does (someone else won). */
  create(key: string, value: string): Promise<KvEntry | null>;
  /**
   * Replace `key` only if its modRevision is still `modRevision` and every guard holds (each
   * guard key still at its modRevision); null on a conflict, if gone, or if a guard failed. IPAM
   * guards a block write on the handle it counted the addresses in, so a handle deleted meanwhile
   * fails the block write instead of leaving addresses with no handle.
   */
  update(key: string, value: string, modRevision: number, guards?: readonly KvGuard[]): Promise<KvEntry | null>;
  /** Delete `key` (only if its modRevision is still `modRevision`, when given); false when the
   * comparison failed or the key was absent. */
  delete(key: string, modRevision?: number): Promise<boolean>;
  /**
   * Optional (stores that can write many keys in one transaction: the embedded store, the CLI's
   * etcd client): the most writes one writeBatch (and keys one getMany) may take.
   */
  readonly maxBatch?: number;
  /** Optional (with maxBatch): the entries of `keys` (null: absent), read at one revision. */
  getMany?(keys: readonly string[]): Promise<(KvEntry | null)[]>;
  /**
   * Optional (with maxBatch): `writes` (distinct keys, at most maxBatch) as one transaction: every
   * condition holds and all are written, or none is (null). Watchers see each write as its own
   * event, in the order given (etcd: all at the transaction's revision; the embedded store: one
   * revision each). Returns each write's modRevision. Taking a batch, like any write, can fail
   * with KvUnavailableError (then whether it was applied may be unknown, as for one write).
   */
  writeBatch?(writes: readonly KvBatchWrite[]): Promise<number[] | null>;
  /** Watch keys under `prefix` from `fromRevision` (inclusive). */
  watch(prefix: string, fromRevision: number, handlers: KvWatchHandlers): KvWatch;
  /**
   * Drop the connections to the store and make new ones, e.g. when the node address they were
   * made from has left the node: such a connection is dead, but nothing says so until a
   * keepalive times out, and a watch on it misses every change meanwhile. Watches go on from
   * the last revision they delivered (nothing missed, nothing repeated), without onStatus('down').
   * Stores without connections (the embedded one) leave it out.
   */
  reconnect?(): void;
  /** Which cluster answered the last get or list (etcd's cluster_id); stores without one leave it out. */
  clusterIdSeen?(): string | null;
  close(): Promise<void>;
}

/**
 * etcd's leases, as far as podway uses them: the liveness key of a running node
 * (control/node-live.ts), attached to a lease its podway keeps alive. Only etcd stores have them
 * (EtcdKv all of it; EtcdLiteKv, a short-lived process's client, the reads a start makes).
 * Lease IDs are etcd's int64 as decimal text.
 */
export interface KvLeaseReads {
  /** `key`'s entry and the lease it is attached to (null: none), or null when the key is absent. */
  getLeased(key: string): Promise<{ entry: KvEntry; lease: string | null } | null>;
  /** The seconds the lease has left (etcd's LeaseTimeToLive); -1 when it expired (or never was). */
  leaseTimeToLive(id: string): Promise<number>;
}

/** What a start's claim of a liveness key needs (both etcd clients: node-live.ts claimNode). */
export interface KvLeaseClaims extends KvLeaseReads {
  /** A new lease of `ttlSeconds`; its ID. */
  grantLease(ttlSeconds: number): Promise<string>;
  /** Revokes the lease: every key attached to it is deleted. A lease already gone is no error. */
  revokeLease(id: string): Promise<void>;
  /**
   * Writes `key` attached to the lease only if its modRevision is still `modRevision` (0: the key
   * is absent), in one transaction: false (nothing written) when another write came first.
   */
  putLeasedIf(key: string, value: string, lease: string, modRevision: number): Promise<boolean>;
}

export interface KvLeases extends KvLeaseClaims {
  /** Renews the lease; its TTL after that, 0 when it is gone (expired, revoked). */
  keepAliveLease(id: string): Promise<number>;
  /** Writes `key` attached to the lease (deleted with it). */
  putLeased(key: string, value: string, lease: string): Promise<void>;
}

export function hasLeaseReads(kv: KvStore): kv is KvStore & KvLeaseReads {
  const k = kv as Partial<KvLeaseReads>;
  return typeof k.getLeased === 'function' && typeof k.leaseTimeToLive === 'function';
}

export function hasLeaseClaims(kv: KvStore): kv is KvStore & KvLeaseClaims {
  const k = kv as Partial<KvLeaseClaims>;
  return hasLeaseReads(kv) && typeof k.grantLease === 'function' && typeof k.revokeLease === 'function' && typeof k.putLeasedIf === 'function';
}

export function hasLeases(kv: KvStore): kv is KvStore & KvLeases {
  const k = kv as Partial<KvLeases>;
  return hasLeaseClaims(kv) && typeof k.keepAliveLease === 'function' && typeof k.putLeased === 'function';
}

/**
 * Thrown when the store cannot be reached (callers retry with backoff). When the call failed to
 * connect nothing was written; when a write timed out after being sent it may have been applied,
 * so a retrying writer re-reads first (a repeated create then returns null for its own write).
 */
export class KvUnavailableError extends Error {
  readonly code = 'KV_UNAVAILABLE';
  /**
   * The call was given up because the store made new connections under it (reconnect()): a
   * write may have been applied; an attempt made now goes over the new connections.
   */
  reconnected = false;
}

/**
 * The store was connected but a call had no answer within its deadline: etcd busy, or this host
 * too short of CPU to read the answer in time (a storm of CNI plugin processes). Not an outage: a
 * caller that would treat "unreachable" as "down" (the CNI DEL's deferral) fails instead, and the
 * call is made again later. A KvUnavailableError for everything else (retries, backoff).
 */
export class KvSlowError extends KvUnavailableError {}

/**
 * The store answered in a way that says the configuration is wrong, not that it is away (the
 * subclasses below). It is a KvUnavailableError for the long-lived callers, which keep their
 * state and try again (a server fixed meanwhile is found), but the short-lived ones (CLI, CNI)
 * fail with it rather than treating it as an outage, and `podway run` stops at start with it.
 */
export class KvConfigError extends KvUnavailableError {}

/**
 * The store's TLS handshake failed for a reason of configuration, not reachability: etcd refused
 * our client certificate (bad certificate, unknown CA, none given), or its server certificate is
 * not one our CA file accepts, or the endpoint does not speak TLS. The message names the settings.
 */
export class KvTlsRejectedError extends KvConfigError {}

/**
 * An endpoint answered etcd's gRPC API with HTTP 404: an HTTP/2 server that is not etcd's client
 * URL (another service at that port). Only when no other endpoint answered the call.
 */
export class KvNotEtcdError extends KvConfigError {}
