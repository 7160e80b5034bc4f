/**
 * The network policy objects the datastore holds, which podway does not enforce
 * (control/policy-kinds.ts), as a Prometheus gauge by kind: an alert on it catches a cluster whose
 * operators believe policy protects its pods. Read at scrape time.
 */
import type { Registry } from 'prom-client';
import type { UnenforcedPolicies } from '../control/policy-kinds';
import { Collector, Sample, snapshotGauge } from './metrics';

export class PolicyCollector implements Collector {
  /** policies: null until the datastore was read. */
  constructor(private readonly policies: () => UnenforcedPolicies | null) {}

  register(reg: Registry): void {
    snapshotGauge(reg, 'podway_unenforced_network_policies', 'Network policy objects in the datastore (GlobalNetworkPolicy, NetworkPolicy, HostEndpoint), by kind: podway enforces none of them, all pod traffic is allowed (docs/calico-differences.md).', ['kind'], (): Sample[] => {
      const p = this.policies();
      return p ? Object.entries(p.counts).map(([kind, n]) => [{ kind }, n]) : [];
    });
  }
}
