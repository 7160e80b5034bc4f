/**
 * podway's nft counters (natOutgoing's tables, the pod guard's, the tunnel table's) read through
 * one cache, shared by `podway counters` and /metrics: one nft run (dataplane/nft-counters.ts
 * readNftCounters) covers every table wanted, at most one run every NFT_COUNTERS_MAX_AGE_MS
 * however many requests and scrapes come (nft takes 0.3-1.1 s per run on a loaded node), and
 * requests that meet a run under way share it. The run is a child process: the main thread (which
 * forwards too) never waits for it. No prom-client here: `podway counters` reads through it
 * without --metrics-port.
 *
 * A read says which tables it could not read and why (nft missing, the table deleted); the others
 * are served. What a failure means is the reader's: `podway counters` shows the part missing,
 * the metrics keep their last figures (a counter falling to 0 would look like a reset).
 */
import { readNftCounters, tableKey, type NamedCounts, type NftCounterRead, type NftTable } from '../dataplane/nft-counters';

/** nft-backed counters in `podway counters` and /metrics come from an nft run started at most
 * this long before (README.md "Troubleshooting", docs/observability.md). */
export const NFT_COUNTERS_MAX_AGE_MS = 2000;

export interface NftCacheOptions {
  /** Default NFT_COUNTERS_MAX_AGE_MS. */
  maxAgeMs?: number;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
  /** The reader (default readNftCounters: one `nft -j list counters`). */
  read?: (tables: readonly NftTable[]) => Promise<NftCounterRead>;
}

/** A read as served: its tables' counters, the tables missing with why, and when its nft run
 * started (the cache's clock). */
export interface NftCounterSnapshot extends NftCounterRead {
  at: number;
}

export class NftCounterCache {
  private last: { snap: NftCounterSnapshot; keys: string } | null = null;
  private pending: { read: Promise<NftCounterSnapshot>; keys: string } | null = null;
  /** nft runs started (for `podway status`-style checks and the tests). */
  reads = 0;
  readonly maxAgeMs: number;
  private readonly now: () => number;
  private readonly read: (tables: readonly NftTable[]) => Promise<NftCounterRead>;

  /** `wanted`: the tables to read now (the ones podway holds at the moment). */
  constructor(private readonly wanted: () => readonly NftTable[], o: NftCacheOptions = {}) {
    this.maxAgeMs = o.maxAgeMs ?? NFT_COUNTERS_MAX_AGE_MS;
    this.now = o.now ?? (() => performance.now());
    this.read = o.read ?? ((tables) => readNftCounters(tables));
  }

  /**
   * The counters of the tables wanted now: the last read when its run started at most maxAgeMs
   * ago and covered the same tables, else a new run (the one under way for the same tables, if
   * any). Never rejects: a reader that throws makes every table missing.
   */
  get(): Promise<NftCounterSnapshot> {
    const tables = this.wanted();
    const keys = tables.map(tableKey).sort().join(',');
    const now = this.now();
    if (this.last && this.last.keys === keys && now - this.last.snap.at <= this.maxAgeMs) return Promise.resolve(this.last.snap);
    if (this.pending && this.pending.keys === keys) return this.pending.read;
    this.reads++;
    const read = Promise.resolve()
      .then(() => this.read(tables))
      .catch((e: unknown): NftCounterRead => ({ tables: new Map(), missing: new Map(tables.map((t) => [tableKey(t), `read failed: ${(e as Error)?.message ?? e}`])) }))
      .then((r) => {
        const snap: NftCounterSnapshot = { ...r, at: now };
        if (!this.last || this.last.snap.at <= now) this.last = { snap, keys };
        return snap;
      })
      .finally(() => {
        if (this.pending?.read === read) this.pending = null;
      });
    this.pending = { read, keys };
    return read;
  }

  /** `table`'s counters through get(), or null (not wanted now, or not read: see get()'s missing). */
  async table(table: NftTable): Promise<NamedCounts | null> {
    return (await this.get()).tables.get(tableKey(table)) ?? null;
  }

  /** Milliseconds since `snap`'s nft run started. */
  ageMs(snap: NftCounterSnapshot): number {
    return Math.max(0, this.now() - snap.at);
  }
}
