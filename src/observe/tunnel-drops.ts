/**
 * Drops the node's kernel makes for podway in the tunnel table (`table inet podway_tunnels`,
 * dataplane/nft-tunnels.ts), shown where operators look for drops: the reason `vxlan_old_port` in
 * `podway counters` and in podway_dropped_packets_total / podway_dropped_bytes_total. VXLAN still
 * arriving on the previous run's vxlanPort (nodes not moved yet) is dropped there by the kernel,
 * before podway sees it, so no forwarding thread counts it: the main thread reads the table's
 * counter through the nft counter cache (nft-cache.ts: one nft run for every podway table, at most
 * NFT_COUNTERS_MAX_AGE_MS old, as the NAT counters) and adds it to the forwarding threads' sums.
 *
 * The engine installs the table again, whole, when the node's address changes (its counters start
 * from 0 then): a read below the last one is taken as such a restart, and the figure shown goes on
 * from the last one read (what arrived between that read and the reinstall is not counted), so the
 * Prometheus counter never goes down within a run.
 */
import type { NftCount } from '../dataplane/nft-counters';

export class TunnelDrops {
  /** Counts of the table copies replaced (their last read), and the last read of the one in place. */
  private base: NftCount = { packets: 0, bytes: 0 };
  private seen: NftCount = { packets: 0, bytes: 0 };

  /** `read`: the table's drops through the nft counter cache, null when not read (no such rule,
   * nft failing: the figures stay). */
  constructor(private readonly read: () => Promise<{ vxlanOldPort: NftCount } | null>) {}

  /** Take the table's figures (the cache's, at most NFT_COUNTERS_MAX_AGE_MS old); never rejects. */
  async refresh(): Promise<void> {
    let now: NftCount | undefined;
    try {
      now = (await this.read())?.vxlanOldPort;
    } catch {
      return;
    }
    if (!now) return;
    if (now.packets < this.seen.packets) this.base = { packets: this.base.packets + this.seen.packets, bytes: this.base.bytes + this.seen.bytes };
    this.seen = { packets: now.packets, bytes: now.bytes };
  }

  /** VXLAN on the previous run's port dropped by the kernel during this run (as of the last refresh). */
  get vxlanOldPort(): NftCount {
    return { packets: this.base.packets + this.seen.packets, bytes: this.base.bytes + this.seen.bytes };
  }
}
