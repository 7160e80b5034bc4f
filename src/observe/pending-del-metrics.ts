/**
 * Deferred CNI DELs (src/cli/pending-del-replay.ts) as Prometheus metrics: the entries the plugin
 * spooled while etcd was unreachable (or the datastore locked) that still wait, those replayed and
 * those whose replay failed, the figures `podway status` shows under cniPendingDel (and `podway counters` too). Read from the
 * replayer's status at scrape time; nothing here touches the spool.
 *
 * replayed and failed only grow while podway runs (counters: a failing entry is tried again on
 * each pass and counted each time); pending and ignored are counted from the spool directory
 * (gauges; the replayer counts it again when its count is older than a few seconds, also while the
 * datastore is away).
 */
import type { Registry } from 'prom-client';
import type { PendingDelStatus } from '../cli/pending-del-replay';
import { Collector, Sample, snapshotCounter, snapshotGauge } from './metrics';

export class PendingDelCollector implements Collector {
  /** `status`: the replayer's (PendingDelReplayer.status). */
  constructor(private readonly status: () => PendingDelStatus) {}

  register(reg: Registry): void {
    const one = (pick: (s: PendingDelStatus) => number) => (): Sample[] => [[{}, pick(this.status())]];
    snapshotGauge(reg, 'podway_cni_pending_dels', 'Deferred CNI DELs for this datastore still waiting in the spool (counted from the spool at most a few seconds ago, also while the datastore is away).', [], one((s) => s.pending));
    snapshotCounter(reg, 'podway_cni_pending_dels_replayed_total', 'Deferred CNI DELs replayed against the datastore (IPAM released, WorkloadEndpoints deleted).', [], one((s) => s.replayed));
    snapshotCounter(reg, 'podway_cni_pending_dels_failed_total', 'Deferred CNI DEL replays that failed (each attempt; the entry stays and is tried again on the next pass).', [], one((s) => s.failed));
    snapshotGauge(reg, 'podway_cni_pending_dels_ignored', 'Spooled CNI DELs left alone: for another datastore, or unreadable (counted from the spool at most a few seconds ago).', [], one((s) => s.ignored));
  }
}
