// The datastore a spec names (see kv/spec.ts): `file:PATH` is the read-only YAML file, `etcd:` and
// `embedded:` are Calico's etcd v3 layout in a KvStore, read through KvDatastore. This is the
// factory `podway run --datastore SPEC` uses.
//
// Each datastore's module is required when a spec names it: resolveDatastoreSpec is all most
// commands (and `podway run`'s main thread) use from here, and the YAML parser, the schemas and the
// etcd client behind the datastores are start-up time they need not pay (bench/README.md, "Start-up time").
import type { Datastore } from './datastore';
import type { KvDatastoreOptions } from './kv-datastore';
import { openKvStore } from './kv/open';
import { DatastoreEnv, DatastoreSpec, parseDatastoreSpec } from './kv/spec';

export interface OpenDatastoreOptions extends Omit<KvDatastoreOptions, 'ownsStore'> {
  /** Environment for Calico's DATASTORE_TYPE / ETCD_* when no spec is given (default process.env). */
  readonly env?: DatastoreEnv;
  /** Per-call deadline of the KvStore (etcd calls, embedded lock waits), ms. */
  readonly kvTimeoutMs?: number;
}

/** With several etcd endpoints, how long a dropped watch has to resume on another member before it counts as down (KvDatastoreOptions.watchDropGraceMs). */
export const WATCH_DROP_GRACE_MS = 3000;

/** The spec in force: the text given, else $PODWAY_DATASTORE, else Calico's env, else the embedded default. */
export function resolveDatastoreSpec(specText: string | undefined, env: DatastoreEnv = process.env): DatastoreSpec {
  const text = specText !== undefined && specText.trim() !== '' ? specText : env.PODWAY_DATASTORE;
  return parseDatastoreSpec(text, env);
}

/** Opens (does not start) the datastore for a spec; closing it closes the KvStore it opened. */
export function openDatastore(spec: string | DatastoreSpec | undefined, options: OpenDatastoreOptions = {}): Datastore {
  const parsed = typeof spec === 'object' ? spec : resolveDatastoreSpec(spec, options.env ?? process.env);
  if (parsed.kind === 'file') {
    const { FileDatastore } = require('./file-datastore') as typeof import('./file-datastore');
    return new FileDatastore(parsed.path);
  }
  // podway run's model thread: its watches need EtcdKv (kv/open.ts).
  const kv = openKvStore(parsed, { use: 'run', timeoutMs: options.kvTimeoutMs });
  const { KvDatastore } = require('./kv-datastore') as typeof import('./kv-datastore');
  // Several etcd members: a watch dropped by one resumes on another at once (not an outage).
  const watchDropGraceMs = options.watchDropGraceMs ?? (parsed.kind === 'etcd' && parsed.endpoints.length > 1 ? WATCH_DROP_GRACE_MS : 0);
  return new KvDatastore(kv, { ...options, watchDropGraceMs, ownsStore: true });
}
