// An in-memory KvStore with etcd's semantics (one store-wide revision, create/mod revisions per key,
// compare-and-swap on modRevision, watch from a revision), for tests that run IPAM for real without
// a backend. Every operation first yields to the event loop (setImmediate), so concurrent clients
// interleave between their reads and writes as they would against a real store.
import type { KvEntry, KvEvent, KvGuard, KvList, KvStore, KvWatch, KvWatchHandlers } from '../../../src/control/kv/kv';

interface Watcher {
  prefix: string;
  handlers: KvWatchHandlers;
  closed: boolean;
}

export class MemKv implements KvStore {
  readonly description = 'memory';
  private readonly data = new Map<string, KvEntry>();
  private revision = 0;
  /** Every event with its revision, for watches that start in the past. */
  private readonly history: { revision: number; event: KvEvent }[] = [];
  private readonly watchers = new Set<Watcher>();
  private closed = false;
  /** Counts of operations, for tests that want to see the traffic. */
  readonly ops = { get: 0, list: 0, create: 0, update: 0, delete: 0, conflicts: 0 };

  private async tick(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.closed) throw new Error('MemKv is closed');
  }

  private emit(event: KvEvent): void {
    this.history.push({ revision: this.revision, event });
    for (const w of this.watchers) {
      const key = event.type === 'put' ? event.entry.key : event.key;
      if (!w.closed && key.startsWith(w.prefix)) w.handlers.onEvents([event]);
    }
  }

  /** The current store revision. */
  get currentRevision(): number {
    return this.revision;
  }

  async get(key: string): Promise<KvEntry | null> {
    await this.tick();
    this.ops.get++;
    return this.data.get(key) ?? null;
  }

  async list(prefix: string): Promise<KvList> {
    await this.tick();
    this.ops.list++;
    const entries = [...this.data.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { entries, revision: this.revision };
  }

  async create(key: string, value: string): Promise<KvEntry | null> {
    await this.tick();
    this.ops.create++;
    if (this.data.has(key)) { this.ops.conflicts++; return null; }
    this.revision++;
    const entry: KvEntry = { key, value, createRevision: this.revision, modRevision: this.revision };
    this.data.set(key, entry);
    this.emit({ type: 'put', entry });
    return entry;
  }

  async update(key: string, value: string, modRevision: number, guards: readonly KvGuard[] = []): Promise<KvEntry | null> {
    await this.tick();
    this.ops.update++;
    const cur = this.data.get(key);
    if (!cur || cur.modRevision !== modRevision) { this.ops.conflicts++; return null; }
    if (guards.some((g) => this.data.get(g.key)?.modRevision !== g.modRevision)) { this.ops.conflicts++; return null; }
    this.revision++;
    const entry: KvEntry = { key, value, createRevision: cur.createRevision, modRevision: this.revision };
    this.data.set(key, entry);
    this.emit({ type: 'put', entry });
    return entry;
  }

  async delete(key: string, modRevision?: number): Promise<boolean> {
    await this.tick();
    this.ops.delete++;
    const cur = this.data.get(key);
    if (!cur || (modRevision !== undefined && cur.modRevision !== modRevision)) { this.ops.conflicts++; return false; }
    this.revision++;
    this.data.delete(key);
    this.emit({ type: 'delete', key, modRevision: this.revision });
    return true;
  }

  watch(prefix: string, fromRevision: number, handlers: KvWatchHandlers): KvWatch {
    const w: Watcher = { prefix, handlers, closed: false };
    // Replay what happened since fromRevision, then stream live events.
    const past = this.history.filter((h) => h.revision >= fromRevision).map((h) => h.event)
      .filter((e) => (e.type === 'put' ? e.entry.key : e.key).startsWith(prefix));
    if (past.length > 0) handlers.onEvents(past);
    this.watchers.add(w);
    return {
      close: async () => {
        w.closed = true;
        this.watchers.delete(w);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watchers.clear();
  }

  /** Writes a key directly (test setup), bypassing CAS. */
  put(key: string, value: string): KvEntry {
    this.revision++;
    const cur = this.data.get(key);
    const entry: KvEntry = { key, value, createRevision: cur?.createRevision ?? this.revision, modRevision: this.revision };
    this.data.set(key, entry);
    this.emit({ type: 'put', entry });
    return entry;
  }

  /** Reads a key directly (assertions). */
  peek(key: string): string | undefined {
    return this.data.get(key)?.value;
  }

  keys(prefix = ''): string[] {
    return [...this.data.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}
