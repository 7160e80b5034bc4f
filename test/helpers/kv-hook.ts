// A KvStore wrapper for race tests: forwards everything to a real store (FileKv or EtcdKv) and,
// once, runs `hook` just before the first write whose key `when` accepts. The hook writes through
// the real store, so it lands between what the code under test read and what it writes: exactly
// the interleaving a second process would produce, made certain instead of lucky.
import type { KvEntry, KvGuard, KvList, KvStore, KvWatch, KvWatchHandlers } from '../../src/control/kv/kv';

export type WriteOp = 'create' | 'update' | 'delete';

export class HookedKv implements KvStore {
  readonly description: string;
  /** How often the hook ran (0 or 1): a test asserts the race it meant really happened. */
  fired = 0;
  private hook: { when: (op: WriteOp, key: string) => boolean; run: () => Promise<void> } | null = null;

  constructor(private readonly inner: KvStore) {
    this.description = `hooked ${inner.description}`;
  }

  /** Runs `run` once, before the first write `when` accepts (and before that write is sent). */
  beforeWrite(when: (op: WriteOp, key: string) => boolean, run: () => Promise<void>): void {
    this.hook = { when, run };
  }

  private async maybeRun(op: WriteOp, key: string): Promise<void> {
    const h = this.hook;
    if (!h || !h.when(op, key)) return;
    this.hook = null;
    this.fired++;
    await h.run();
  }

  get(key: string): Promise<KvEntry | null> { return this.inner.get(key); }
  list(prefix: string): Promise<KvList> { return this.inner.list(prefix); }
  watch(prefix: string, from: number, h: KvWatchHandlers): KvWatch { return this.inner.watch(prefix, from, h); }
  close(): Promise<void> { return this.inner.close(); }

  async create(key: string, value: string): Promise<KvEntry | null> {
    await this.maybeRun('create', key);
    return this.inner.create(key, value);
  }

  async update(key: string, value: string, modRevision: number, guards?: readonly KvGuard[]): Promise<KvEntry | null> {
    await this.maybeRun('update', key);
    return this.inner.update(key, value, modRevision, guards);
  }

  async delete(key: string, modRevision?: number): Promise<boolean> {
    await this.maybeRun('delete', key);
    return this.inner.delete(key, modRevision);
  }
}
