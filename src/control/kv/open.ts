// Opens the KvStore a parsed spec names (the file: kind is the read-only YAML datastore, which
// src/control/file-datastore.ts opens; it is not a KvStore).
//
// Each store's module is required when a spec names it: the etcd client (etcd3, @grpc/grpc-js and
// protobufjs parsing etcd's .proto files at load) costs every process that imports it ~100-200 ms
// of start-up, and only an etcd: spec needs it (see "Start-up time" in bench/README.md).
import type { KvStore } from './kv';
import type { DatastoreSpec } from './spec';

export function openKvStore(
  spec: Exclude<DatastoreSpec, { kind: 'file' }>,
  options: { timeoutMs?: number } = {},
): KvStore {
  if (spec.kind === 'etcd') {
    const { EtcdKv } = require('./etcd-kv') as typeof import('./etcd-kv');
    return new EtcdKv({ endpoints: spec.endpoints, tls: spec.tls, timeoutMs: options.timeoutMs });
  }
  const { FileKv } = require('./file-kv') as typeof import('./file-kv');
  return new FileKv({ dir: spec.dir, lockTimeoutMs: options.timeoutMs });
}
