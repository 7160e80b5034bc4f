/**
 * nft counters read at most every NFT_COUNTERS_MAX_AGE_MS (nft takes 0.3-1.1 s per read on a loaded
 * node): the NAT and pod guard tables' (nat-metrics.ts) and the tunnel table's (tunnel-drops.ts).
 * No prom-client here: `podway counters` reads through it without --metrics-port.
 */
import type { NatCounters } from '../dataplane/nft-nat';

/** The nft counters in /metrics are at most this old (docs/observability.md). */
export const NFT_COUNTERS_MAX_AGE_MS = 5000;

export interface NftCacheOptions {
  /** Default NFT_COUNTERS_MAX_AGE_MS. */
  maxAgeMs?: number;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
}

/** One nft read at most every maxAgeMs; concurrent refreshes share the read under way. A read
 * that fails (null: nft busy, the table gone at stop) keeps the last figures: a counter that fell
 * to 0 would look like a reset to Prometheus. */
export class CachedCounters<T = NatCounters> {
  last: T | null = null;
  private readAt = -Infinity;
  private pending: Promise<void> | null = null;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(private readonly read: () => Promise<T | null>, o: NftCacheOptions = {}) {
    this.maxAgeMs = o.maxAgeMs ?? NFT_COUNTERS_MAX_AGE_MS;
    this.now = o.now ?? (() => performance.now());
  }

  refresh(): Promise<void> {
    if (this.pending) return this.pending;
    if (this.now() - this.readAt < this.maxAgeMs) return Promise.resolve();
    this.pending = this.read()
      .then((c) => {
        this.last = c ?? this.last;
      }, () => undefined)
      .finally(() => {
        this.readAt = this.now();
        this.pending = null;
      });
    return this.pending;
  }
}

