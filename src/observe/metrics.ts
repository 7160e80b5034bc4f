/**
 * podway's Prometheus registry (prom-client). Every part of podway that has numbers to show adds
 * a collector here; `podway run --metrics-port` serves them (http.ts).
 *
 * Adding metrics (e.g. BGP sessions later):
 *
 *   metrics.add({
 *     register(reg) {                          // once: create prom-client metrics on `reg`
 *       snapshotGauge(reg, 'podway_bgp_sessions', 'BGP sessions by state.', ['state'], () => bgp.sessionsByState());
 *       // or plain prom-client metrics you update on events (never per packet):
 *       this.flaps = new Counter({ name: 'podway_bgp_session_flaps_total', help: '...', registers: [reg] });
 *     },
 *     async refresh() { ... },                  // optional: once per scrape, before any collect
 *   });
 *
 * Rules: names in Prometheus conventions (`podway_..._total` for counters, units in the name:
 * `_seconds`, `_bytes`); a Felix metric that means the same is registered under Felix's name too
 * (`alias`), so Calico dashboards work. Counters of the forwarding path stay in their typed arrays
 * and are read in `collect` at scrape time: nothing on the forwarding path calls prom-client.
 * Every metric has its row in docs/observability.md, "Metrics table" (type, labels, meaning):
 * test/docs/metrics.test.ts scrapes a real `podway run` and names a missing or stale row.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';

export interface Collector {
  /** Create this collector's metrics on the registry (called once, by add()). */
  register(reg: Registry): void;
  /** Fetch what collect callbacks read (e.g. the workers' counters), once per scrape. */
  refresh?(): Promise<void>;
}

/** Label values and the value for one sample. */
export type Sample = [labels: Record<string, string>, value: number];

export class PodwayMetrics {
  readonly registry = new Registry();
  private readonly collectors: Collector[] = [];
  private refreshing: Promise<void> | null = null;

  constructor(opts: { processMetrics?: boolean } = {}) {
    // process_cpu_seconds_total, process_resident_memory_bytes, nodejs_eventloop_lag_seconds, ...
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  add(c: Collector): void {
    c.register(this.registry);
    this.collectors.push(c);
  }

  /**
   * The text exposition. Scrapes that overlap share one refresh (many concurrent scrapes cost one
   * round of worker messages), and a collector whose refresh fails keeps its last values.
   */
  async scrape(): Promise<string> {
    this.refreshing ??= Promise.all(this.collectors.map((c) => c.refresh?.().catch(() => undefined)))
      .then(() => undefined)
      .finally(() => (this.refreshing = null));
    await this.refreshing;
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A counter whose values are read at scrape time (from typed arrays, a snapshot, ...). */
export function snapshotCounter(reg: Registry, name: string, help: string, labelNames: readonly string[], read: () => Sample[]): Counter {
  return new Counter({
    name, help, labelNames, registers: [reg],
    collect(this: Counter) {
      this.reset();
      for (const [labels, v] of read()) this.inc(labels, v);
    },
  });
}

/** A gauge whose values are read at scrape time. */
export function snapshotGauge(reg: Registry, name: string, help: string, labelNames: readonly string[], read: () => Sample[]): Gauge {
  return new Gauge({
    name, help, labelNames, registers: [reg],
    collect(this: Gauge) {
      this.reset();
      for (const [labels, v] of read()) this.set(labels, v);
    },
  });
}

/**
 * A histogram kept elsewhere as per-bucket counts (not cumulative) and a sum, read at scrape
 * time. prom-client's Histogram only learns through observe(), which the forwarding path must not
 * call; the registry accepts any object with prom-client's get() shape.
 */
export function snapshotHistogram(reg: Registry, name: string, help: string, bounds: readonly number[], read: () => { buckets: readonly number[]; sum: number }): void {
  const metric = {
    name, help, type: 'histogram', aggregator: 'sum',
    get: async () => {
      const { buckets, sum } = read();
      const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
      let cum = 0;
      bounds.forEach((le, k) => {
        cum += buckets[k] ?? 0;
        values.push({ value: cum, labels: { le }, metricName: `${name}_bucket` });
      });
      values.push({ value: cum, labels: { le: '+Inf' }, metricName: `${name}_bucket` });
      values.push({ value: sum, labels: {}, metricName: `${name}_sum` });
      values.push({ value: cum, labels: {}, metricName: `${name}_count` });
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
    reset: () => {},
  };
  reg.registerMetric(metric as unknown as Metric);
}
