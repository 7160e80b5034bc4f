// Opens the KvStore a parsed spec names (the file: kind is the read-only YAML datastore, which
// src/control/file-datastore.ts opens; it is not a KvStore), and decides, here only, which etcd
// client a process gets (see KvUse).
//
// Each store's module is required when a spec names it: an etcd client costs every process that
// loads it start-up time (etcd3, @grpc/grpc-js and protobufjs parsing etcd's .proto files at load:
// ~0.3 CPU-s; etcd-lite.ts far less), and only an etcd: spec needs one (see "Start-up time" in
// bench/README.md).
import type { KvStore } from './kv';
import type { DatastoreSpec } from './spec';

/**
 * What a store is opened for, which decides its etcd client:
 * - 'command': calls made by a process that then exits: the CLI's datastore commands (apply,
 *   create, replace, delete, get, ipam ...), `cni install`, the CNI plugin; and one-shot calls of
 *   `podway run`: each registration (join.ts joinCluster, in a thread of its own), the read of
 *   its Node at a start on the model cache (readNodeEntry), and the store its forwarding thread
 *   keeps for the deferred DEL replay and the orphan address holds (cli/upkeep.ts: etcd3 is not
 *   loaded on that thread). etcd's KV calls straight
 *   over node:http2 (EtcdLiteKv, etcd-lite.ts), with EtcdKv's deadlines, failover, TLS and error
 *   words: loading etcd3 (grpc-js, protobufjs) cost such a process ~0.3 CPU-s and ~20 MB before
 *   its first call. Such a store cannot watch() and has no reconnect().
 * - 'run': `podway run`'s stores and anything that watches or lives long (its datastore's watches,
 *   its address monitor, which reconnectEtcdStores makes again when the node's address leaves):
 *   the etcd3 client (EtcdKv, etcd-kv.ts).
 * The embedded store (FileKv) is the same for both.
 */
export type KvUse = 'command' | 'run';

export interface OpenKvOptions {
  readonly use: KvUse;
  /** Per-call deadline (etcd calls, embedded lock waits), ms. */
  readonly timeoutMs?: number;
  /** etcd: the bound on making a connection, ms (default timeoutMs; the CNI plugin's is CNI_CONNECT_TIMEOUT_MS). */
  readonly connectTimeoutMs?: number;
  /** false: the store is never watched (the embedded store then keeps no event history in memory,
   * and refuses watch(): FileKvOptions.watchHistory 0). For a long-lived store that only reads and
   * writes: podway run's address-store thread, its upkeep store. */
  readonly watches?: false;
}

export function openKvStore(spec: Exclude<DatastoreSpec, { kind: 'file' }>, options: OpenKvOptions): KvStore {
  if (spec.kind === 'etcd') {
    const etcd = { endpoints: spec.endpoints, tls: spec.tls, timeoutMs: options.timeoutMs, connectTimeoutMs: options.connectTimeoutMs };
    if (options.use === 'command') {
      const { EtcdLiteKv } = require('./etcd-lite') as typeof import('./etcd-lite');
      return new EtcdLiteKv(etcd);
    }
    const { EtcdKv } = require('./etcd-kv') as typeof import('./etcd-kv');
    return new EtcdKv(etcd);
  }
  const { FileKv } = require('./file-kv') as typeof import('./file-kv');
  return new FileKv({ dir: spec.dir, lockTimeoutMs: options.timeoutMs, ...(options.watches === false ? { watchHistory: 0 } : {}) });
}
