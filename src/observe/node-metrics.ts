/**
 * The control side of `podway run` as metrics: model applies (time, failures), the model thread's
 * compute time, datastore and IPAM events, routes by kind and Felix route class, cluster size,
 * readiness. These change on control events (never per packet), so they are plain prom-client
 * metrics updated where the event happens, plus gauges read from the current model at scrape time.
 */
import { Counter, Histogram, Summary, type Registry } from 'prom-client';
import type { NodeDataplaneModel } from '../control';
import { RouteClass } from '../control/route-calc';
import { Collector, Sample, snapshotCounter, snapshotGauge } from './metrics';
import { oldestMissingSeconds, type WaitingEndpoint } from './stale-endpoints';

const CLASS_NAMES = new Map<number, string>(Object.entries(RouteClass).map(([k, v]) => [v, k]));
/** Model applies take from well under a millisecond (no-op) to seconds (thousands of pods). */
const APPLY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface NodeState {
  model(): NodeDataplaneModel | null;
  ready(): boolean;
  datastoreInSync(): boolean;
  /** The last moment the node's view of the datastore was known current (now while in sync; null: never). */
  datastoreLastSync?(): Date | null;
  workers(): number;
  /** When the cached model podway forwards on was applied (null: on the datastore's model). */
  cachedModel?(): Date | null;
  /** Local endpoints waiting for their interface (the main engine's), since when. */
  waitingEndpoints?(): readonly WaitingEndpoint[];
  /** New model threads started after one died (cli/model-source.ts). */
  modelThreadRestarts?(): number;
  /** Model threads terminated because they stopped answering the heartbeat. */
  modelThreadHangs?(): number;
  /** The model cache's writes (cli/model-cache.ts; null: no cache). */
  modelCacheWrites?(): { failures: number; failing: unknown } | null;
  /** The model thread keeps dying (not ready until a new one ran a minute). */
  modelThreadFailing?(): boolean;
  /** New forwarding threads started after one died (cli/worker-deaths.ts). */
  workerRestarts?(): number;
  /** Forwarding threads' deaths within the give-up window (cli/worker-deaths.ts). */
  workerDeaths?(): number;
}

export class NodeMetrics implements Collector {
  private applySeconds!: Histogram;
  private felixApply!: Summary;
  private computeSeconds!: Histogram;
  private felixCalc!: Summary;
  private applies!: Counter;
  private failures!: Counter;
  private felixFailures!: Counter;
  private datastoreEvents!: Counter;
  private ipamEvents!: Counter;

  constructor(private readonly state: NodeState) {}

  register(reg: Registry): void {
    const registers = [reg];
    this.applySeconds = new Histogram({ name: 'podway_model_apply_duration_seconds', help: 'Time to apply a model to the forwarding engine (ports, next hops, FIB swap).', buckets: APPLY_BUCKETS, registers });
    this.felixApply = new Summary({ name: 'felix_int_dataplane_apply_time_seconds', help: 'Time in seconds that it took to apply a dataplane update (Felix\'s name; podway_model_apply_duration_seconds).', percentiles: [0.5, 0.9, 0.99], maxAgeSeconds: 600, ageBuckets: 5, registers });
    this.computeSeconds = new Histogram({ name: 'podway_model_compute_duration_seconds', help: 'Time the model thread took to turn a datastore change into this node\'s model.', buckets: APPLY_BUCKETS, registers });
    this.felixCalc = new Summary({ name: 'felix_calc_graph_update_time_seconds', help: 'Seconds to update the calculation graph for a datastore change (Felix\'s name; podway_model_compute_duration_seconds).', percentiles: [0.5, 0.9, 0.99], maxAgeSeconds: 600, ageBuckets: 5, registers });
    this.applies = new Counter({ name: 'podway_model_applies_total', help: 'Models applied to the forwarding engine.', registers });
    this.failures = new Counter({ name: 'podway_model_apply_failures_total', help: 'Models that could not be applied (the last good state kept forwarding).', registers });
    this.felixFailures = new Counter({ name: 'felix_int_dataplane_failures', help: 'Number of times dataplane updates failed (Felix\'s name; podway_model_apply_failures_total).', registers });
    this.datastoreEvents = new Counter({ name: 'podway_datastore_events_total', help: 'What the datastore watch delivered: model, unchanged, rejected, error, status.', labelNames: ['event'], registers });
    this.ipamEvents = new Counter({ name: 'podway_ipam_events_total', help: 'IPAM operations podway run made (tunnel address assignments and their failures).', labelNames: ['event'], registers });
    for (const event of ['model', 'unchanged', 'rejected', 'error', 'status']) this.datastoreEvents.inc({ event }, 0);

    snapshotGauge(reg, 'podway_routes', 'Routes in this node\'s model, by kind, Felix route class and address family (ipv4, ipv6).', ['kind', 'class', 'family'], () => {
      const counts = new Map<string, Sample>();
      const model = this.state.model();
      const add = (family: string, routes: readonly { kind: string; class: number }[]): void => {
        for (const r of routes) {
          const key = `${family}/${r.kind}/${r.class}`;
          const s = counts.get(key) ?? [{ kind: r.kind, class: CLASS_NAMES.get(r.class) ?? String(r.class), family }, 0];
          s[1]++;
          counts.set(key, s);
        }
      };
      add('ipv4', model?.routes ?? []);
      add('ipv6', model?.v6.routes ?? []);
      return [...counts.values()];
    });
    const hosts = (): Sample[] => [[{}, this.state.model()?.node.knownNodeIps.size ?? 0]];
    snapshotGauge(reg, 'podway_cluster_nodes', 'Nodes with an address in the cluster (this one included).', [], hosts);
    snapshotGauge(reg, 'felix_cluster_num_hosts', 'Total number of Calico hosts in the cluster (Felix\'s name; podway_cluster_nodes).', [], hosts);
    snapshotGauge(reg, 'podway_ready', '1 when the node is ready to forward (see /readyz).', [], () => [[{}, this.state.ready() ? 1 : 0]]);
    snapshotGauge(reg, 'podway_datastore_in_sync', '1 while the datastore is reachable and this node\'s view of it is current.', [], () => [[{}, this.state.datastoreInSync() ? 1 : 0]]);
    snapshotGauge(reg, 'podway_datastore_last_sync_timestamp_seconds', 'The last time this node\'s view of the datastore was known current (Unix seconds): the scrape time while in sync, the moment sync was lost while not (alert on time() minus it); 0 before the first sync.', [], () => [[{}, (this.state.datastoreLastSync?.()?.getTime() ?? 0) / 1000]]);
    snapshotGauge(reg, 'podway_model_from_cache', '1 while forwarding on the cached last-known-good model, no model of the datastore applied since the start: applied at once on a restart in the same boot, or because the datastore has not answered (podway run --model-cache).', [], () => [[{}, this.state.cachedModel?.() ? 1 : 0]]);
    snapshotGauge(reg, 'podway_cached_model_applied_timestamp_seconds', 'When the cached model forwarded on was applied by the podway that wrote it (Unix seconds; 0 when on the datastore\'s model).', [], () => [[{}, (this.state.cachedModel?.()?.getTime() ?? 0) / 1000]]);
    // A pod removed while nothing could run its CNI DEL leaves its endpoint waiting forever
    // (stale-endpoints.ts): alert on the age, not the count (a pod being wired waits a moment).
    snapshotGauge(reg, 'podway_endpoints_interface_missing', 'Local workload endpoints whose interface does not exist (waiting for it; their routes withheld).', [], () => [[{}, (this.state.waitingEndpoints?.() ?? []).filter((w) => w.missing).length]]);
    snapshotGauge(reg, 'podway_endpoint_interface_missing_oldest_seconds', 'How long the oldest local endpoint has waited for its missing interface, as this podway saw it (0: none).', [], () => [[{}, oldestMissingSeconds(this.state.waitingEndpoints?.() ?? [], Date.now())]]);
    snapshotGauge(reg, 'podway_model_cache_write_failing', '1 while the model cache (podway run --model-cache) cannot be written (its last write failed: ENOSPC, a read-only file system): a restart during a datastore outage would not forward until the datastore is back.', [], () => [[{}, this.state.modelCacheWrites?.()?.failing ? 1 : 0]]);
    snapshotCounter(reg, 'podway_model_cache_write_failures_total', 'Model cache writes that failed since the start.', [], () => [[{}, this.state.modelCacheWrites?.()?.failures ?? 0]]);
    snapshotCounter(reg, 'podway_model_thread_restarts_total', 'New model threads (the datastore watch and model computation) started after one died; while none runs podway_datastore_in_sync is 0 and forwarding goes on with the last good model.', [], () => [[{}, this.state.modelThreadRestarts?.() ?? 0]]);
    snapshotCounter(reg, 'podway_model_thread_hangs_total', 'Model threads terminated because they did not answer the heartbeat for 20 s (a loop or a call that never returns); each is also a death (podway_model_thread_restarts_total counts the new threads).', [], () => [[{}, this.state.modelThreadHangs?.() ?? 0]]);
    snapshotGauge(reg, 'podway_model_thread_failing', '1 while the model thread keeps dying (3 deaths, none of the threads in between running a minute after its first model, within 10 minutes): restarted at most every 30 s, the node not ready until a new one has run a minute.', [], () => [[{}, this.state.modelThreadFailing?.() ? 1 : 0]]);
    snapshotCounter(reg, 'podway_worker_restarts_total', 'New forwarding threads (podway run --workers) started after one died (its share of the flows not forwarded meanwhile); the dead thread\'s counts stay in every summed counter.', [], () => [[{}, this.state.workerRestarts?.() ?? 0]]);
    snapshotGauge(reg, 'podway_worker_deaths_recent', 'Forwarding threads that died within the last minute; at 5 podway run exits 1 for its supervisor to restart it.', [], () => [[{}, this.state.workerDeaths?.() ?? 0]]);
    snapshotGauge(reg, 'podway_forwarding_workers', 'Forwarding threads (podway run --workers).', [], () => [[{}, this.state.workers()]]);
  }

  applied(seconds: number): void {
    this.applies.inc();
    this.applySeconds.observe(seconds);
    this.felixApply.observe(seconds);
  }

  applyFailed(): void {
    this.failures.inc();
    this.felixFailures.inc();
  }

  computed(seconds: number): void {
    this.computeSeconds.observe(seconds);
    this.felixCalc.observe(seconds);
  }

  datastoreEvent(event: string): void {
    this.datastoreEvents.inc({ event });
  }

  ipamEvent(event: string): void {
    this.ipamEvents.inc({ event });
  }
}
