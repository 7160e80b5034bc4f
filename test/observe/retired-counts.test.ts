/**
 * A dead forwarding thread's counts carried into the sums (src/observe/retired-counts.ts), through
 * the real summing code: mergeSnapshots (/metrics) and mergeCounters (`podway counters`). Every
 * count the node reports stays at or above what it reported before the death, the new thread's
 * counts are added on top, gauges are not carried, and a port or route gone is forgotten. Without
 * the carry (the sums as they were) the first case's sums drop: asserted below as the "before" line.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mergeSnapshots, type DataplaneSnapshot, type PortSample } from '../../src/observe/snapshot';
import { mergeCounters } from '../../src/dataplane/control-server';
import { RetiredCounts, type ThreadCounters } from '../../src/observe/retired-counts';

type Counters = Parameters<typeof mergeCounters>[0];

function port(name: string, n: number): PortSample {
  return { name, kind: 'veth', workload: 'ns/wep', rxPackets: n, rxBytes: 100 * n, txPackets: 2 * n, txBytes: 200 * n, drops: 1, kernelDrops: 0, ringStalls: 0, txFull: 0, held: 0, heldSeconds: 0, rxErrors: 0, txErrors: 0 };
}

function snap(n: number, ports: string[] = ['cali1', 'underlay(eth0)']): DataplaneSnapshot {
  return {
    ports: ports.map((p) => port(p, n)), counters: [0, n, 2 * n], counterBytes: [0, 60 * n, 120 * n], rxBatches: [n, 1], txBatches: [n],
    failures: { ringReopened: 1 }, orphanPodAddresses: 2, underlayNeighborsFailed: 1, logLinesDropped: 3,
  };
}

function counters(n: number, ports: string[] = ['cali1', 'underlay(eth0)']): Counters {
  return {
    reasons: { no_route: n, ttl_expired: 1 },
    ports: ports.map((p) => ({ port: p, rx: n, tx: 2 * n, rxBytes: 100 * n, drops: 1, heldNow: 1, txBacklog: 7, holding: 2, lastError: 'x' })),
    routes: [{ cidr: '10.244.1.0/26', kind: 'remote', node: 'node2', packets: n }],
    failures: { ringReopened: 1 } as Counters['failures'],
  } as unknown as Counters;
}

/** Every number of `after` at or above the same one of `before` (by path), gauges left out. */
function monotonic(before: unknown, after: unknown, path = ''): string[] {
  if (typeof before === 'number') return typeof after === 'number' && after >= before ? [] : [`${path}: ${before} -> ${String(after)}`];
  if (before && typeof before === 'object') {
    return Object.entries(before).flatMap(([k, v]) => monotonic(v, (after as Record<string, unknown> | undefined)?.[k], `${path}.${k}`));
  }
  return [];
}

const GAUGES = /orphanPodAddresses|underlayNeighborsFailed|heldNow|txBacklog|holding/;

test('metrics: the sums stay monotonic across a death; the new thread counts on top; gauges not carried', () => {
  const r = new RetiredCounts();
  const main0 = snap(100);
  const w1 = snap(40);
  const before = r.addToSnapshot(mergeSnapshots([main0, w1]));
  // worker 1 dies, its last counts w1; a new worker 1 (zero) ...
  r.retire(1, null, w1);
  const main1 = snap(110);
  const plain = mergeSnapshots([main1, snap(0)]);
  assert.ok(monotonic(before, plain).filter((d) => !GAUGES.test(d)).length > 0, 'without the carry the sums drop');
  const during = r.addToSnapshot(mergeSnapshots([main1]));
  assert.equal(monotonic(before, during).filter((d) => !GAUGES.test(d)), [], 'while the new thread is awaited');
  const after = r.addToSnapshot(mergeSnapshots([main1, snap(5)]));
  assert.equal(monotonic(before, after).filter((d) => !GAUGES.test(d)), []);
  assert.is(after.counters[1], 110 + 40 + 5);
  assert.is(after.counterBytes[2], 120 * (110 + 40 + 5));
  assert.is(after.ports.find((p) => p.name === 'cali1')!.rxPackets, 155);
  assert.is(after.rxBatches[0], 155);
  assert.is(after.failures!.ringReopened, 3);
  assert.is(after.logLinesDropped, 9);
  // gauges: the live threads' only
  assert.is(after.orphanPodAddresses, 4);
  assert.is(after.underlayNeighborsFailed, 1);
  // a second death of the new thread: both dead threads' counts carried
  r.retire(1, null, snap(5));
  const again = r.addToSnapshot(mergeSnapshots([snap(120)]));
  assert.is(again.counters[1], 120 + 40 + 5);
  assert.is(r.threads, 2);
});

test('metrics: a carried port no live thread has any more is forgotten', () => {
  const r = new RetiredCounts();
  r.retire(1, null, snap(40, ['cali1', 'cali2']));
  const now = r.addToSnapshot(mergeSnapshots([snap(1, ['cali1'])]));
  assert.equal(now.ports.map((p) => p.name), ['cali1']);
  assert.is(now.ports[0].rxPackets, 41);
  // cali2 comes back (a new pod, same interface name): it starts from its own counts
  const later = r.addToSnapshot(mergeSnapshots([snap(1, ['cali1', 'cali2'])]));
  assert.is(later.ports.find((p) => p.name === 'cali2')!.rxPackets, 1);
});

test('podway counters: sums and the thread\'s port rows monotonic across a death; gauges and gone routes not carried', () => {
  const r = new RetiredCounts();
  const w1 = counters(40);
  const before = r.addToCounters(mergeCounters(counters(100), [w1]));
  r.retire(1, w1 as ThreadCounters, null);
  // while it is awaited: no answer from worker 1 (null), the sums still hold its counts
  const during = r.addToCounters(mergeCounters(counters(110), [null]));
  assert.equal(during.missingWorkers, [1]);
  assert.is(during.reasons.no_route, 150);
  assert.is(during.routes[0].packets, 150);
  assert.is(during.failures.ringReopened, 2);
  const after = r.addToCounters(mergeCounters(counters(110), [counters(5)]));
  const drops = monotonic(before, after).filter((d) => !GAUGES.test(d));
  assert.equal(drops, []);
  const row = after.ports.find((p) => p.port === 'cali1 [w1]')!;
  assert.is(row.rx, 45);
  assert.is(row.rxBytes, 4500);
  // gauges are the new thread's own; a string is not added
  assert.is(row.heldNow, 1);
  assert.is(row.txBacklog, 7);
  assert.is(row.lastError, 'x');
  // the main thread's rows are its own
  assert.is(after.ports.find((p) => p.port === 'cali1 [w0]')!.rx, 110);
  // a route gone is forgotten
  const gone = counters(1);
  gone.routes = [];
  const goneW1 = counters(1);
  goneW1.routes = [];
  const noRoute = r.addToCounters(mergeCounters(gone, [goneW1]));
  assert.equal(noRoute.routes, []);
});

test('nothing retired: the sums untouched', () => {
  const r = new RetiredCounts();
  const m = mergeSnapshots([snap(3), snap(4)]);
  assert.equal(r.addToSnapshot(structuredClone(m)), m);
  const c = mergeCounters(counters(3), [counters(4)]);
  assert.equal(r.addToCounters(structuredClone(c)), c);
});

test.run();
