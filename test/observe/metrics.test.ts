// The metrics collectors on a real pipeline over MemoryIO (no root): frames go through the
// forwarding pipeline, its typed-array counters are snapshotted as a scrape does, and the text
// exposition is parsed by a Prometheus text-format parser and checked against the traffic sent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PodwayMetrics } from '../../src/observe/metrics';
import { DataplaneCollector } from '../../src/observe/dataplane-metrics';
import { NodeMetrics } from '../../src/observe/node-metrics';
import { Health } from '../../src/observe/health';
import { mergeSnapshots, pipelineSnapshot, type DataplaneSnapshot } from '../../src/observe/snapshot';
import { makeHarness, frame, clusterModel, type Harness } from '../dataplane/helpers';
import { dualStackYaml } from '../dataplane/helpers6';
import { parseMetrics, valueOf, family } from './prom-text';

function snapshotOf(h: Harness): DataplaneSnapshot {
  const ports = Object.entries(h.infra).map(([kind, port]) => ({ port, kind, workload: '' }));
  for (const ep of h.model.endpoints) ports.push({ port: h.port(ep.interfaceName), kind: ep.interfaceType, workload: ep.key });
  return pipelineSnapshot(h.pipe, h.io, ports);
}

test('port, drop-reason and batch counters read from the pipeline match the frames sent, across two workers', async () => {
  // Two engines ("workers") forward different amounts; the scrape adds them up.
  const w0 = makeHarness();
  const w1 = makeHarness();
  const ok = frame('a_to_b');
  const spoof = frame('a_spoof');
  for (let k = 0; k < 30; k++) w0.receive(w0.port('caliA'), ok);
  w0.receive(w0.port('caliA'), ...Array.from({ length: 10 }, () => ok)); // one batch of 10
  for (let k = 0; k < 5; k++) w1.receive(w1.port('caliA'), ok);
  w1.receive(w1.port('caliA'), spoof, spoof, spoof);
  let takes = 0;
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(new DataplaneCollector(async () => {
    takes++;
    return mergeSnapshots([snapshotOf(w0), snapshotOf(w1)]);
  }));
  const m = parseMetrics(await metrics.scrape());
  assert.is(takes, 1);

  assert.is(family(m, 'podway_port_rx_packets_total').type, 'COUNTER');
  assert.is(valueOf(m, 'podway_port_rx_packets_total', { port: 'caliA' }), 30 + 10 + 5 + 3);
  assert.is(valueOf(m, 'podway_port_rx_bytes_total', { port: 'caliA' }), (45 * ok.length) + 3 * spoof.length);
  assert.is(valueOf(m, 'podway_port_tx_packets_total', { port: 'caliB' }), 45);
  assert.is(valueOf(m, 'podway_port_tx_bytes_total', { port: 'caliB' }), 45 * ok.length, 'forwarded frames keep their length');
  assert.is(valueOf(m, 'podway_port_dropped_packets_total', { port: 'caliA' }), 3);
  const caliA = family(m, 'podway_port_rx_packets_total').metrics.find((s) => s.labels?.port === 'caliA')!;
  assert.is(caliA.labels!.kind, 'veth');
  assert.match(caliA.labels!.workload, /caliA|node1/, 'a pod port names its workload');
  assert.is(valueOf(m, 'podway_dropped_packets_total', { reason: 'source_check' }), 3);
  assert.is(valueOf(m, 'podway_dropped_bytes_total', { reason: 'source_check' }), 3 * spoof.length);
  assert.is(valueOf(m, 'podway_dropped_packets_total', { reason: 'no_route' }), 0, 'every reason is exported, zero or not');
  assert.is(valueOf(m, 'podway_dropped_packets_total', { reason: 'multicast6' }), 0, 'IPv6 reasons are drops too');
  assert.is(valueOf(m, 'podway_events_total', { event: 'ndp_replied' }), 0);
  assert.not.ok(family(m, 'podway_events_total').metrics.some((s) => s.labels?.event === 'multicast6'), 'a drop reason is not an event');
  assert.not.ok(family(m, 'podway_dropped_packets_total').metrics.some((s) => s.labels?.reason === 'to_host' || s.labels?.reason === 'ok'), 'an event is not a drop');

  // receive batches: 30 + 5 of one frame, one of 10 (bucket le=16), one of 3 (le=4)
  const rx = family(m, 'podway_rx_batch_size');
  assert.is(rx.type, 'HISTOGRAM');
  const h = rx.metrics[0];
  assert.is(Number(h.count), 37);
  assert.is(Number(h.sum), 48);
  assert.is(Number(h.buckets!['1']), 35);
  assert.is(Number(h.buckets!['4']), 36);
  assert.is(Number(h.buckets!['16']), 37);
  // sends: one call per output port per batch (the spoofed batch sent nothing)
  assert.is(Number(family(m, 'podway_tx_batch_size').metrics[0].count), 36);

  // endpoints: pods of node1 in the harness's model, under podway's and Felix's names
  const pods = w0.model.endpoints.length;
  assert.is(valueOf(m, 'podway_active_local_endpoints'), pods);
  assert.is(valueOf(m, 'felix_active_local_endpoints'), pods);

  // a later scrape sees later traffic (read at scrape time, nothing cached)
  w0.receive(w0.port('caliA'), ok);
  const again = parseMetrics(await metrics.scrape());
  assert.is(valueOf(again, 'podway_port_rx_packets_total', { port: 'caliA' }), 49);
  assert.is(takes, 2);
});

test('overlapping scrapes share one snapshot; a failing snapshot keeps the last values', async () => {
  const w = makeHarness();
  w.receive(w.port('caliA'), frame('a_to_b'));
  let takes = 0;
  let fail = false;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(new DataplaneCollector(async () => {
    takes++;
    await gate;
    if (fail) throw new Error('worker gone');
    return snapshotOf(w);
  }));
  const scrapes = Array.from({ length: 20 }, () => metrics.scrape());
  release();
  const texts = await Promise.all(scrapes);
  assert.is(takes, 1, '20 concurrent scrapes, one round of snapshots');
  for (const t of texts) assert.is(valueOf(parseMetrics(t), 'podway_port_rx_packets_total', { port: 'caliA' }), 1);
  fail = true;
  const after = parseMetrics(await metrics.scrape());
  assert.is(valueOf(after, 'podway_port_rx_packets_total', { port: 'caliA' }), 1);
});

test('node metrics: routes by kind and class, cluster size, apply time under Felix names, readiness', async () => {
  const model = clusterModel();
  const health = new Health();
  let cached: Date | null = new Date('2026-01-02T03:04:05Z');
  // endpoints waiting for their interface: one missing for 10 min, one for 1 min, one another error
  const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
  let waiting = [
    { workload: 'default/gone', interface: 'caliG', networks: ['10.244.0.9/32'], error: 'interface caliG of workload default/gone does not exist', since: ago(600_000), missing: true },
    { workload: 'default/new', interface: 'caliN', networks: ['10.244.0.8/32'], error: 'interface caliN of workload default/new does not exist', since: ago(60_000), missing: true },
    { workload: 'default/odd', interface: 'caliO', networks: [], error: 'EPERM', since: ago(900_000), missing: false },
  ];
  const nm = new NodeMetrics({ model: () => model, ready: () => health.last?.ready ?? false, datastoreInSync: () => health.datastoreInSync, workers: () => 2, cachedModel: () => cached, waitingEndpoints: () => waiting });
  const metrics = new PodwayMetrics();
  metrics.add(health);
  metrics.add(nm);
  nm.applied(0.004);
  nm.applied(0.002);
  nm.applyFailed();
  nm.computed(0.01);
  nm.datastoreEvent('model');
  nm.ipamEvent('tunnel_address_assigned');
  let m = parseMetrics(await metrics.scrape());
  const byKind = (kind: string) => model.routes.filter((r) => r.kind === kind).length;
  assert.ok(byKind('vxlan') > 0 && byKind('local') > 0);
  assert.is(valueOf(m, 'podway_routes', { kind: 'vxlan', class: 'VXLANTunnel' }), byKind('vxlan'));
  assert.is(valueOf(m, 'podway_routes', { kind: 'local', class: 'LocalWorkload', family: 'ipv4' }), byKind('local'));
  assert.is(valueOf(m, 'podway_routes', { kind: 'blackhole', class: 'IPAMBlockDrop' }), byKind('blackhole'));
  assert.is(valueOf(m, 'felix_cluster_num_hosts'), model.node.knownNodeIps.size);
  assert.is(valueOf(m, 'podway_model_applies_total'), 2);
  assert.is(family(m, 'felix_int_dataplane_apply_time_seconds').type, 'SUMMARY');
  assert.is(Number(family(m, 'felix_int_dataplane_apply_time_seconds').metrics[0].count), 2);
  assert.is(Number(family(m, 'podway_model_apply_duration_seconds').metrics[0].count), 2);
  assert.ok(Math.abs(Number(family(m, 'podway_model_apply_duration_seconds').metrics[0].sum) - 0.006) < 1e-9);
  assert.is(valueOf(m, 'felix_int_dataplane_failures'), 1);
  assert.is(valueOf(m, 'podway_model_apply_failures_total'), 1);
  assert.is(Number(family(m, 'felix_calc_graph_update_time_seconds').metrics[0].count), 1);
  assert.is(valueOf(m, 'podway_datastore_events_total', { event: 'model' }), 1);
  assert.is(valueOf(m, 'podway_datastore_events_total', { event: 'error' }), 0);
  assert.is(valueOf(m, 'podway_ipam_events_total', { event: 'tunnel_address_assigned' }), 1);
  assert.is(valueOf(m, 'podway_forwarding_workers'), 2);
  assert.is(valueOf(m, 'podway_endpoints_interface_missing'), 2);
  const oldest = valueOf(m, 'podway_endpoint_interface_missing_oldest_seconds');
  assert.ok(oldest >= 600 && oldest < 660, String(oldest));
  // forwarding on the cached model (podway run started while etcd was away), then on the datastore's
  assert.is(valueOf(m, 'podway_model_from_cache'), 1);
  assert.is(valueOf(m, 'podway_cached_model_applied_timestamp_seconds'), Date.parse('2026-01-02T03:04:05Z') / 1000);
  cached = null;
  waiting = [];
  m = parseMetrics(await metrics.scrape());
  assert.is(valueOf(m, 'podway_endpoints_interface_missing'), 0);
  assert.is(valueOf(m, 'podway_endpoint_interface_missing_oldest_seconds'), 0);
  assert.is(valueOf(m, 'podway_model_from_cache'), 0);
  assert.is(valueOf(m, 'podway_cached_model_applied_timestamp_seconds'), 0);
  assert.ok(m.has('process_cpu_seconds_total'), 'process metrics are there');
  assert.ok(m.has('nodejs_eventloop_lag_seconds'));
  // not ready: nothing applied, datastore not in sync; then ready
  assert.is(valueOf(m, 'podway_ready'), 0);
  assert.is(valueOf(m, 'podway_datastore_in_sync'), 0);
  health.setDatastore(true);
  health.setEngines(async () => [{ problems: [], waiting: [] }]);
  m = parseMetrics(await metrics.scrape());
  assert.is(valueOf(m, 'podway_ready'), 1);
  assert.is(valueOf(m, 'podway_datastore_in_sync'), 1);
});

test('readiness: every reason is reported, per worker, and pods waiting for their interface do not count', async () => {
  const health = new Health();
  let r = await health.report();
  assert.is(r.ready, false);
  assert.equal(r.checks, { modelApplied: false, portsAttached: false, datastoreInSync: false });
  assert.ok(r.reasons.some((x) => /no model applied/.test(x)), r.reasons.join('; '));
  assert.ok(r.reasons.some((x) => /^datastore: waiting for the first/.test(x)), r.reasons.join('; '));
  health.setDatastore(false, 'datastore unreachable: connect ECONNREFUSED');
  health.setEngines(async () => [{ problems: [], waiting: ['default/web: interface caliX does not exist'] }, { problems: ['port underlay(eth0): receive failing (recv ENETDOWN)'], waiting: [] }]);
  r = await health.report();
  assert.is(r.ready, false);
  assert.equal(r.checks, { modelApplied: true, portsAttached: false, datastoreInSync: false });
  assert.ok(r.reasons.includes('worker 1: port underlay(eth0): receive failing (recv ENETDOWN)'), r.reasons.join('; '));
  assert.ok(r.reasons.some((x) => /^datastore: datastore unreachable: connect ECONNREFUSED \(for \d+ s, since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$/.test(x)), r.reasons.join('; '));
  assert.equal(r.waiting, ['default/web: interface caliX does not exist']);
  health.setDatastore(true);
  health.setEngines(async () => [{ problems: [], waiting: ['default/web: interface caliX does not exist'] }]);
  r = await health.report();
  assert.is(r.ready, true, r.reasons.join('; '));
  assert.equal(r.reasons, []);
});

test('datastore out of sync: the reason says for how long and since when; the last sync time as a gauge', async () => {
  const health = new Health();
  const nm = new NodeMetrics({ model: () => null, ready: () => false, datastoreInSync: () => health.datastoreInSync, datastoreLastSync: () => health.datastoreLastSync(), workers: () => 1 });
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(health);
  metrics.add(nm);
  // never in sync yet: 0, and the wait counts from the start
  let m = parseMetrics(await metrics.scrape());
  assert.is(valueOf(m, 'podway_datastore_last_sync_timestamp_seconds'), 0);
  assert.ok(health.datastoreNotInSyncSince !== null);
  health.setDatastore(true);
  let r = await health.report();
  assert.is(r.datastoreNotInSyncSince, null);
  // in sync: the scrape's time
  const before = Math.floor(Date.now() / 1000);
  m = parseMetrics(await metrics.scrape());
  const inSync = valueOf(m, 'podway_datastore_last_sync_timestamp_seconds');
  assert.ok(inSync >= before && inSync <= Date.now() / 1000 + 1, `${inSync} vs ${before}`);
  // lost: since then, whatever the following reason lines say
  const lost = Date.now();
  health.setDatastore(false, 'datastore unreachable: etcd http://127.0.0.1:2379: Connection dropped (keeping the last snapshot)');
  const since = health.datastoreNotInSyncSince!;
  assert.ok(since.getTime() >= lost && since.getTime() <= Date.now());
  health.setDatastore(false, 'datastore unreachable (attempt 3, retrying in 4 s): Connection dropped');
  assert.is(health.datastoreNotInSyncSince, since, 'a later reason keeps the start of the outage');
  const iso = since.toISOString().replace(/\.\d{3}Z$/, 'Z');
  assert.is(health.datastoreReasonSince(since.getTime() + 252_000), `datastore unreachable (attempt 3, retrying in 4 s): Connection dropped (for 4 min 12 s, since ${iso})`);
  r = await health.report();
  assert.is(r.datastoreNotInSyncSince, iso);
  assert.is(r.datastoreLastSync, iso);
  assert.ok(r.reasons.some((x) => x.startsWith(`datastore: datastore unreachable (attempt 3, retrying in 4 s): Connection dropped (for `) && x.endsWith(`, since ${iso})`)), r.reasons.join('; '));
  // the gauge stays at the moment sync was lost, however late the scrape
  m = parseMetrics(await metrics.scrape());
  assert.is(valueOf(m, 'podway_datastore_last_sync_timestamp_seconds'), since.getTime() / 1000);
  // back: no "since", the gauge follows the clock again
  health.setDatastore(true);
  r = await health.report();
  assert.is(r.datastoreNotInSyncSince, null);
  assert.is(health.datastoreReasonSince(), '');
  m = parseMetrics(await metrics.scrape());
  assert.ok(valueOf(m, 'podway_datastore_last_sync_timestamp_seconds') >= since.getTime() / 1000);
});

test('node metrics: podway_routes counts the IPv6 routes too, labelled by family', async () => {
  const model = clusterModel('node1', dualStackYaml());
  assert.ok(model.v6.routes.length > 0 && model.v6.routes.some((r) => r.kind === 'local') && model.v6.routes.some((r) => r.kind === 'vxlan'));
  const nm = new NodeMetrics({ model: () => model, ready: () => true, datastoreInSync: () => true, workers: () => 1 });
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(nm);
  const m = parseMetrics(await metrics.scrape());
  const samples = family(m, 'podway_routes').metrics;
  const sum = (fam: string) => samples.filter((s) => s.labels?.family === fam).reduce((a, s) => a + Number(s.value), 0);
  assert.is(sum('ipv4'), model.routes.length);
  assert.is(sum('ipv6'), model.v6.routes.length);
  assert.is(samples.reduce((a, s) => a + Number(s.value), 0), model.routes.length + model.v6.routes.length, 'the total is both families');
  for (const kind of ['local', 'vxlan', 'blackhole'] as const) {
    assert.is(valueOf(m, 'podway_routes', { kind, family: 'ipv6' }), model.v6.routes.filter((r) => r.kind === kind).length, `ipv6 ${kind}`);
  }
});

test.run();
