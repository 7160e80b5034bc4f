/**
 * The node's liveness key on etcd (control/node-live.ts NodeLiveness, in the Node address store's
 * thread) as metrics, read at scrape time from the last status that thread posted: the renewals
 * that did not keep the key, the writes of its value that failed while its lease was renewed
 * (counted apart: the key is held), and the seconds since a renewal last kept it. A lease is lost (another host
 * may take the node's name over) once that age passes the lease's TTL (15 s): alert on
 * `podway_node_liveness_renewal_age_seconds > 15`, or on the failures rising.
 */
import type { Registry } from 'prom-client';
import type { LivenessStatus } from '../control/node-live';
import { Collector, snapshotCounter, snapshotGauge } from './metrics';

export class LivenessCollector implements Collector {
  /** `status`: null until the key is held (no samples then). */
  constructor(private readonly status: () => LivenessStatus | null) {}

  register(reg: Registry): void {
    snapshotCounter(reg, 'podway_node_liveness_renewals_failed_total', 'Renewals of the node\'s liveness key on etcd (/calico/podway/v1/live/<node>, every 5 s) that did not keep it: etcd failed or did not answer, the lease had expired, or another host held the key.', [], () => {
      const s = this.status();
      return s ? [[{}, s.renewalsFailed]] : [];
    });
    snapshotCounter(reg, 'podway_node_liveness_record_writes_failed_total', 'Writes of the node\'s liveness key\'s value on etcd (its node addresses, when they changed) that failed while its lease was renewed: the key and the node\'s name are held, its value is old until the next renewal writes it. Not counted as renewals failed.', [], () => {
      const s = this.status();
      return s ? [[{}, s.recordWritesFailed]] : [];
    });
    snapshotGauge(reg, 'podway_node_liveness_renewal_age_seconds', 'Seconds since a renewal (or write) last kept the node\'s liveness key on etcd; past its lease\'s TTL (15 s) the lease is lost and another host may start under this node\'s name.', [], () => {
      const s = this.status();
      return s ? [[{}, Math.max(0, (Date.now() - s.lastRenewedAt) / 1000)]] : [];
    });
  }
}
