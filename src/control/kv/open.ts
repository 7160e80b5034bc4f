// Opens the KvStore a parsed spec names (the file: kind is the read-only YAML datastore, which
// src/control/file-datastore.ts opens; it is not a KvStore).
import { EtcdKv } from './etcd-kv';
import { FileKv } from './file-kv';
import { KvStore } from './kv';
import { DatastoreSpec } from './spec';

export function openKvStore(
  spec: Exclude<DatastoreSpec, { kind: 'file' }>,
  options: { timeoutMs?: number } = {},
): KvStore {
  if (spec.kind === 'etcd') return new EtcdKv({ endpoints: spec.endpoints, tls: spec.tls, timeoutMs: options.timeoutMs });
  return new FileKv({ dir: spec.dir, lockTimeoutMs: options.timeoutMs });
}
