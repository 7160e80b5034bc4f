// `podway run`'s upkeep of the node's pods on its main thread: the deferred CNI DEL replay
// (pending-del-replay.ts), the orphan address holds (orphan-holds.ts) and the engine's looks into
// the pods' namespaces for orphan addresses (dataplane/engine.ts findPodOrphans, podDeviceGone;
// checkPodDevices, a tap/tun orphan's device looked for, runs inside the hold pass's own turn).
//
// One queue (serial): each replayed entry (it removes the interfaces its DEL left, then deletes the
// endpoint and releases the addresses), each orphan-hold pass and each engine look runs alone, in
// the order asked. A look that read a pod's interface while a replay removed it, then judged what
// it read against the model without that pod's endpoint, took the address of a pod just removed
// for an orphan's and held it in IPAM (seen at load 31 in test/cni/deferred-del-args.test.ts): a
// look now runs wholly before such a replay (the endpoint is there: no orphan) or wholly after it
// (the interface is gone: nothing found). Order of locks: this queue first, then the IPAM lock(s)
// (cni/ipam-lock.ts), never the other way; nothing in the queue waits for the queue.
//
// One store (RunStore) for the replay and the holds: opened at the first pass that needs the
// datastore, kept for the run (with etcd one connection, not one each pass and one each purpose),
// made again when the node's address leaves or appears (as the run's other connections), closed at
// stop. With etcd it is the light client (kv/open.ts 'command', etcd-lite.ts): the etcd3 client
// (grpc-js, protobufjs) is not loaded on the forwarding thread, which a replay's pass did before
// (its own EtcdKv each pass). It is not the model thread's or the address store's: those are
// stores of other threads (a KvStore does not cross threads; their calls by message would be a
// protocol of their own for IPAM's transactions), and this one, idle but for the upkeep's passes,
// costs a socket.
import type { KvStore } from '../control/kv/kv';
import type { DatastoreSpec } from '../control/kv/spec';
import { openKvStore } from '../control/kv/open';
import { oneAtATime } from '../util/one-at-a-time';

/** How a pass gets its datastore store and gives it back. */
export interface UpkeepStore {
  /** The store to use now. */
  get(): KvStore;
  /** The pass is done with `kv` (a store of its own is closed then). */
  release(kv: KvStore): Promise<void>;
}

/** A store of its own for each pass, closed after it (a replayer or holder outside podway run: tests). */
export function storePerPass(spec: Exclude<DatastoreSpec, { kind: 'file' }>, use: 'command' | 'run', timeoutMs: number): UpkeepStore {
  return {
    get: () => openKvStore(spec, { use, timeoutMs }),
    release: (kv) => kv.close().catch(() => undefined),
  };
}

/**
 * podway run's one store for its upkeep (see the top). A store being replaced (reconnect) is
 * closed once the passes using it gave it back.
 */
export class RunStore implements UpkeepStore {
  private current: KvStore | null = null;
  private readonly users = new Map<KvStore, number>();
  private readonly replaced = new Set<KvStore>();
  private closed = false;
  /** Stores opened so far (tests: one per run unless reconnected). */
  opened = 0;

  constructor(private readonly spec: Exclude<DatastoreSpec, { kind: 'file' }>, private readonly timeoutMs: number) {}

  get(): KvStore {
    if (this.closed) throw new Error('the upkeep\'s datastore store is closed (podway run stopping)');
    if (!this.current) {
      // never watched, long-lived: the embedded store keeps no event history for it
      this.current = openKvStore(this.spec, { use: 'command', timeoutMs: this.timeoutMs, watches: false });
      this.opened++;
    }
    this.users.set(this.current, (this.users.get(this.current) ?? 0) + 1);
    return this.current;
  }

  async release(kv: KvStore): Promise<void> {
    const n = (this.users.get(kv) ?? 1) - 1;
    if (n > 0) {
      this.users.set(kv, n);
      return;
    }
    this.users.delete(kv);
    if (this.replaced.delete(kv)) await kv.close().catch(() => undefined);
  }

  /** New connections from the next pass on (the node's address left or appeared). */
  reconnect(): void {
    const kv = this.current;
    if (!kv) return;
    this.current = null;
    if (this.users.has(kv)) this.replaced.add(kv);
    else void kv.close().catch(() => undefined);
  }

  /** Closes the store (passes under way were stopped first: a call still under way fails). */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...new Set([...(this.current ? [this.current] : []), ...this.replaced])];
    this.current = null;
    this.replaced.clear();
    await Promise.all(all.map((kv) => kv.close().catch(() => undefined)));
  }
}

/** What the replay and the holds share in podway run: one store, one queue. */
export interface RunUpkeep {
  readonly store: UpkeepStore;
  /** Runs one upkeep task at a time, in the order asked (see the top). */
  readonly serial: <T>(task: () => Promise<T>) => Promise<T>;
}

/** podway run's upkeep: its store (RunStore) and its queue. */
export function runUpkeep(spec: Exclude<DatastoreSpec, { kind: 'file' }>, timeoutMs: number): RunUpkeep & { readonly store: RunStore } {
  return { store: new RunStore(spec, timeoutMs), serial: oneAtATime() };
}
