/**
 * The forwarding counters as Prometheus metrics: per port (packets, bytes, drops, kernel drops,
 * errors), per drop reason (packets and bytes), events, batch sizes, active endpoints. Each scrape
 * takes one snapshot of every worker's typed arrays (refresh) and the collect callbacks read that:
 * the forwarding path keeps doing `counters[r]++` and never calls prom-client.
 */
import type { Registry } from 'prom-client';
import { COUNTER_NAMES, COUNTER_COUNT, BATCH_BUCKETS, BATCH_SUM, Event, Event6 } from '../dataplane/counters';
import type { DataplaneSnapshot, PortSample } from './snapshot';
import type { EngineFailures } from '../dataplane/engine';
import { Collector, Sample, snapshotCounter, snapshotGauge, snapshotHistogram } from './metrics';

const BATCH_BOUNDS = Array.from({ length: BATCH_BUCKETS }, (_, k) => 2 ** k);
/** Counter indices that are events (frames answered or handed on), and the drop reasons (the rest but 0). */
const EVENTS: readonly number[] = [...Object.values(Event), ...Object.values(Event6)].sort((a, b) => a - b);
const DROPS: readonly number[] = Array.from({ length: COUNTER_COUNT }, (_, r) => r).filter((r) => r > 0 && !EVENTS.includes(r));

/** Engine.failures keys and their metric label. */
const FAILURE_KINDS: readonly (readonly [keyof EngineFailures, string])[] = [['tunnelTable', 'tunnel_table'], ['ringReopened', 'ring_reopened'], ['ringReopenFailed', 'ring_reopen_failed'], ['followedBack', 'followed_back'], ['followBackFailed', 'follow_back_failed']];

export const EMPTY_SNAPSHOT: DataplaneSnapshot = { ports: [], counters: [], counterBytes: [], rxBatches: [], txBatches: [] };

export class DataplaneCollector implements Collector {
  /** The last snapshot taken (the collect callbacks read it). */
  snapshot: DataplaneSnapshot = EMPTY_SNAPSHOT;

  /** `take` returns the node's snapshot: every worker's, merged (mergeSnapshots). */
  constructor(private readonly take: () => Promise<DataplaneSnapshot>) {}

  async refresh(): Promise<void> {
    this.snapshot = await this.take();
  }

  register(reg: Registry): void {
    const labels = ['port', 'kind', 'workload'];
    const perPort = (name: string, help: string, field: keyof PortSample) =>
      snapshotCounter(reg, name, help, labels, () => this.snapshot.ports.map((p): Sample => [portLabels(p), p[field] as number]));
    perPort('podway_port_rx_packets_total', 'Frames received on a port (TSO/GSO super-frames count as their segments).', 'rxPackets');
    perPort('podway_port_rx_bytes_total', 'Bytes received on a port.', 'rxBytes');
    perPort('podway_port_tx_packets_total', 'Frames sent on a port (accepted by the kernel or queued in its backlog).', 'txPackets');
    perPort('podway_port_tx_bytes_total', 'Bytes sent on a port.', 'txBytes');
    perPort('podway_port_dropped_packets_total', 'Frames podway dropped that arrived on, or were bound for, a port.', 'drops');
    perPort('podway_port_kernel_dropped_packets_total', 'Frames the kernel dropped before podway read them (ring or socket buffer full).', 'kernelDrops');
    perPort('podway_port_rx_ring_stalls_total', 'Times the kernel stopped filling a port\'s TPACKET_V2 receive ring (a frame it could not describe in a vnet header) and podway set the ring up again.', 'ringStalls');
    perPort('podway_port_rx_held_total', 'Times podway held a pod port (or the host\'s) back, not reading it, while the underlay\'s transmit backlog it fed was over its high-water mark (back-pressure).', 'held');
    perPort('podway_port_rx_held_seconds_total', 'Seconds a port spent held back so, in all.', 'heldSeconds');
    perPort('podway_port_tx_full_dropped_packets_total', 'Frames the kernel refused on send that did not fit the port\'s backlog.', 'txFull');
    snapshotCounter(reg, 'podway_port_errors_total', 'Receive or send calls that failed on a port, by direction.', [...labels, 'direction'], () =>
      this.snapshot.ports.flatMap((p): Sample[] => [[{ ...portLabels(p), direction: 'rx' }, p.rxErrors], [{ ...portLabels(p), direction: 'tx' }, p.txErrors]]));

    const byIndex = (label: string, which: readonly number[], arr: () => number[]) => (): Sample[] => {
      const a = arr();
      return which.map((r): Sample => [{ [label]: COUNTER_NAMES[r] }, a[r] ?? 0]);
    };
    snapshotCounter(reg, 'podway_dropped_packets_total', 'Frames dropped, by reason (ttl_expired and frag_needed count the frames answered with ICMP too; icmp_ratelimited counts those whose ICMP error the rate limit held back, also counted under their own reason).', ['reason'], byIndex('reason', DROPS, () => this.snapshot.counters));
    snapshotCounter(reg, 'podway_dropped_bytes_total', 'Bytes of the frames dropped, by reason (frames answered with ICMP are not dropped).', ['reason'], byIndex('reason', DROPS, () => this.snapshot.counterBytes));
    snapshotCounter(reg, 'podway_events_total', 'Frames handed to the host, ARP/NDP answered or learned, ICMP sent, pod egress, checksums completed.', ['event'], byIndex('event', EVENTS, () => this.snapshot.counters));

    // Engine.failures, by kind (every kind exported, zero or not)
    snapshotCounter(reg, 'podway_engine_failures_total', 'Host-side failures the engine recovered from or gave up on: tunnel_table (nft could not install or rewrite the tunnel table), ring_reopened (a port whose receive ring could not be set up again, reopened), ring_reopen_failed (reopening it failed; tried again), followed_back (a model rejected after the tunnel sockets, underlay filter and tunnel table followed its node address: they followed back to the last good model\'s), follow_back_failed (they could not: left on the rejected model\'s address until the next model).', ['kind'], () =>
      FAILURE_KINDS.map(([key, kind]): Sample => [{ kind }, this.snapshot.failures?.[key] ?? 0]));

    const hist = (arr: () => number[]) => () => {
      const a = arr();
      return { buckets: a.slice(0, BATCH_BUCKETS), sum: a[BATCH_SUM] ?? 0 };
    };
    snapshotHistogram(reg, 'podway_rx_batch_size', 'Frames per receive batch (higher: podway is batching to keep up).', BATCH_BOUNDS, hist(() => this.snapshot.rxBatches));
    snapshotHistogram(reg, 'podway_tx_batch_size', 'Frames per send call.', BATCH_BOUNDS, hist(() => this.snapshot.txBatches));

    snapshotCounter(reg, 'podway_log_lines_dropped_total', 'Log lines podway dropped instead of writing them: its stderr was a pipe nobody read (a line waits 5 s at most, then later lines are dropped at once until the pipe takes one again) or was gone (a closed terminal, the reader of a pipe gone). The next line written says how many were lost; `podway status` says the total when not 0.', [], () => [[{}, this.snapshot.logLinesDropped ?? 0]]);
    snapshotGauge(reg, 'podway_orphan_pod_addresses', 'Addresses pod interfaces on this node hold that no workload endpoint of the datastore names (`orphan pod:` in podway status): IPAM may give them to another pod.', [], () => [[{}, this.snapshot.orphanPodAddresses ?? 0]]);
    snapshotGauge(reg, 'podway_underlay_neighbors_failed', 'Underlay neighbours (other nodes on the link, or gateways) whose ARP/NDP probes go unanswered: the pods behind them cannot be reached from this node (`underlay neighbour unreachable` in podway status). /readyz stays 200: the node forwards for the others.', [], () => [[{}, this.snapshot.underlayNeighborsFailed ?? 0]]);
    const endpoints = (): Sample[] => [[{}, new Set(this.snapshot.ports.filter((p) => p.workload !== '').map((p) => p.name)).size]];
    snapshotGauge(reg, 'podway_active_local_endpoints', 'Workload endpoints attached on this node.', [], endpoints);
    snapshotGauge(reg, 'felix_active_local_endpoints', 'Number of active endpoints on this host (Felix\'s name for podway_active_local_endpoints).', [], endpoints);
  }
}

function portLabels(p: PortSample): Record<string, string> {
  return { port: p.name, kind: p.kind, workload: p.workload };
}
