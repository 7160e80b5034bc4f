/**
 * natOutgoing's table as Prometheus metrics: the counters of `table ip podway` (nft-nat.ts, the
 * same figures `podway counters` shows under `nat`) read once per scrape, and the flow bound, so an
 * operator can alert on `--nat-max-flows` being hit (podway_nat_refused_flows_total rising) or on
 * ICMP errors quoting no known flow. Nothing here runs on the forwarding path: the counters are
 * the kernel's, read through the nft counter cache `podway counters` reads through too
 * (nft-cache.ts: one `nft -j list counters` for every podway table, at most every
 * NFT_COUNTERS_MAX_AGE_MS, scrapes and requests that meet sharing one run). A table not read
 * (nft missing, the table gone) keeps the last figures: a counter falling to 0 would look like a
 * reset to Prometheus.
 *
 * Why no "flows in use" gauge: the kernel keeps the number of NATed flows only inside the output
 * chain's `ct count` (not readable); counting them would mean dumping conntrack on every scrape.
 * podway_nat_flows_total counts flows as they start (their first packet masqueraded).
 *
 * IPv6 pools' table (`table ip6 podway`) gets the same series under podway_nat6_* (a second
 * collector with that prefix), so the IPv4 series keep their names and values.
 */
import type { Registry } from 'prom-client';
import type { NatCounters } from '../dataplane/nft-nat';
import { Collector, Sample, snapshotCounter, snapshotGauge } from './metrics';

export { NFT_COUNTERS_MAX_AGE_MS } from './nft-cache';

export interface NatSource {
  /** The table's counters (through the cache), or null while there is none or it was not read
   * (nft missing, podway stopping). */
  counters(): Promise<NatCounters | null>;
  /** The flow bound (`--nat-max-flows`), or null while there is no table (read as 0). */
  maxFlows(): number | null;
}

export class NatCollector implements Collector {
  /** The counters last read (null until a table was read: the series then read 0). */
  last: NatCounters | null = null;

  /** `ipv6`: the IPv6 table's collector (podway_nat6_* series, help texts saying IPv6). */
  constructor(private readonly source: NatSource, private readonly ipv6 = false) {}

  async refresh(): Promise<void> {
    this.last = (await this.source.counters()) ?? this.last;
  }

  register(reg: Registry): void {
    const p = this.ipv6 ? 'podway_nat6' : 'podway_nat';
    // "IPv6: " before each help text (it read "IPv6 New natOutgoing flows ...", "IPv6 Packets ...")
    const v = this.ipv6 ? 'IPv6: ' : '';
    const one = (pick: (c: NatCounters) => number) => (): Sample[] => [[{}, this.last ? pick(this.last) : 0]];
    snapshotCounter(reg, `${p}_flows_total`, `${v}natOutgoing flows masqueraded to the node's address (each counted at its first packet).`, [], one((c) => c.flows));
    snapshotCounter(reg, `${p}_out_packets_total`, `${v}Packets of natOutgoing flows sent with the node's address.`, [], one((c) => c.outPackets));
    snapshotCounter(reg, `${p}_out_bytes_total`, `${v}Bytes of natOutgoing flows sent with the node's address.`, [], one((c) => c.outBytes));
    snapshotCounter(reg, `${p}_in_packets_total`, `${v}Replies to natOutgoing flows translated back and handed to their pods.`, [], one((c) => c.inPackets));
    snapshotCounter(reg, `${p}_in_bytes_total`, `${v}Bytes of the replies to natOutgoing flows handed to their pods.`, [], one((c) => c.inBytes));
    snapshotCounter(reg, `${p}_refused_flows_total`, `${v}New natOutgoing flows refused (dropped) because --nat-max-flows flows were already in use.`, [], one((c) => c.refused));
    snapshotCounter(reg, `${p}_icmp_unmatched_total`, `${v}ICMP errors that reached the node quoting no known flow (not translated; the node's stack ignores them).`, [], one((c) => c.icmpUnmatched));
    snapshotGauge(reg, `${p}_max_flows`, `${v}natOutgoing flows allowed at once (--nat-max-flows); a new one beyond is refused.`, [], () => {
      return [[{}, this.source.maxFlows() ?? 0]];
    });
  }
}

/**
 * The pod guard's table (`table inet podway`, nft-nat.ts guardTableProgram) as metrics, read the
 * same way (the nft counter cache, at most NFT_COUNTERS_MAX_AGE_MS old; a table not read keeps the
 * last figures): what veth pods sent the node's kernel that it must not take.
 */
export class PodGuardCollector implements Collector {
  last: NatCounters | null = null;

  constructor(private readonly counters: () => Promise<NatCounters | null>) {}

  async refresh(): Promise<void> {
    this.last = (await this.counters()) ?? this.last;
  }

  register(reg: Registry): void {
    const one = (pick: (c: NatCounters) => number | undefined) => (): Sample[] => [[{}, (this.last ? pick(this.last) : 0) ?? 0]];
    snapshotCounter(reg, 'podway_pod_guard_spoofed_total', 'Frames from veth pods whose source is not the pod\'s own address, dropped before the node\'s kernel took them (podway\'s own copy counts source_check).', [], one((c) => c.podSpoofed));
    snapshotCounter(reg, 'podway_pod_guard_tunnel_total', 'Tunnel packets (VXLAN to the VXLAN port, 4789 unless vxlanPort says otherwise; IPIP) from veth pods, dropped before the node\'s kernel took them.', [], one((c) => c.podTunnel));
    snapshotCounter(reg, 'podway_pod_guard_to_host_total', 'New connections from pods (veth, TAP, TUN) to the node\'s own addresses dropped (--endpoint-to-host drop).', [], one((c) => c.podToHost));
  }
}
