/**
 * Drops the node's kernel makes for podway in the tunnel table (`table inet podway_tunnels`,
 * dataplane/nft-tunnels.ts), shown where operators look for drops: the reason `vxlan_old_port` in
 * `podway counters` and in podway_dropped_packets_total / podway_dropped_bytes_total. VXLAN still
 * arriving on the previous run's vxlanPort (nodes not moved yet) is dropped there by the kernel,
 * before podway sees it, so no forwarding thread counts it: the main thread reads the table's
 * counter (`nft -j list counters`, at most every NFT_COUNTERS_MAX_AGE_MS, reads that meet share one,
 * as the NAT counters: nft-cache.ts) and adds it to the forwarding threads' sums.
 *
 * The engine installs the table again, whole, when the node's address changes (its counters start
 * from 0 then): a read below the last one is taken as such a restart, and the figure shown goes on
 * from the last one read (what arrived between that read and the reinstall is not counted), so the
 * Prometheus counter never goes down within a run.
 */
import type { NftCount } from '../dataplane/nft-tunnels';
import { CachedCounters, type NftCacheOptions } from './nft-cache';

export class TunnelDrops {
  private readonly cache: CachedCounters<{ vxlanOldPort: NftCount }>;
  /** Counts of the table copies replaced (their last read), and the last read of the one in place. */
  private base: NftCount = { packets: 0, bytes: 0 };
  private seen: NftCount = { packets: 0, bytes: 0 };

  constructor(read: () => Promise<{ vxlanOldPort: NftCount } | null>, o: NftCacheOptions = {}) {
    this.cache = new CachedCounters(read, o);
  }

  /** Read the table again unless the last read is recent enough; never rejects. */
  async refresh(): Promise<void> {
    await this.cache.refresh();
    const now = this.cache.last?.vxlanOldPort;
    if (!now) return;
    if (now.packets < this.seen.packets) this.base = { packets: this.base.packets + this.seen.packets, bytes: this.base.bytes + this.seen.bytes };
    this.seen = { packets: now.packets, bytes: now.bytes };
  }

  /** VXLAN on the previous run's port dropped by the kernel during this run (as of the last refresh). */
  get vxlanOldPort(): NftCount {
    return { packets: this.base.packets + this.seen.packets, bytes: this.base.bytes + this.seen.bytes };
  }
}
