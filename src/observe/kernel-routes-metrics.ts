/**
 * The kernel's main IPv4 table as podway run reads it for the underlay next hops
 * (src/dataplane/kernel-routes.ts) as Prometheus metrics: whether reads fail now (the last good
 * table in use meanwhile), how many failed since the start, and the routes in the table in use.
 * Read from its status at scrape time.
 */
import type { Registry } from 'prom-client';
import type { KernelRoutesStatus } from '../dataplane/kernel-routes';
import { Collector, Sample, snapshotCounter, snapshotGauge } from './metrics';

export class KernelRoutesCollector implements Collector {
  constructor(private readonly status: () => KernelRoutesStatus) {}

  register(reg: Registry): void {
    const one = (pick: (s: KernelRoutesStatus) => number) => (): Sample[] => [[{}, pick(this.status())]];
    snapshotGauge(reg, 'podway_kernel_routes_unreadable', '1 while the kernel\'s main IPv4 table cannot be read (`ip route` fails): the underlay next hops follow the last table read (none before the first: every node on-link), read again with backoff.', [], one((s) => (s.failing ? 1 : 0)));
    snapshotCounter(reg, 'podway_kernel_route_read_failures_total', 'Reads of the kernel\'s main IPv4 table that failed since the start.', [], one((s) => s.failures));
    snapshotGauge(reg, 'podway_kernel_routes', 'Routes in the kernel table the underlay next hops are chosen from (the last good read).', [], one((s) => s.routes));
  }
}
