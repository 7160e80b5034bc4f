// Deferred CNI DELs in /metrics (no root): the collector reads the replayer's status at each
// scrape (pending and ignored as gauges, replayed and failed as counters), read back by a
// Prometheus text-format parser. A real replayer against etcd feeding /metrics runs in
// test/cni/deferred-del.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PodwayMetrics } from '../../src/observe/metrics';
import { PendingDelCollector } from '../../src/observe/pending-del-metrics';
import type { PendingDelStatus } from '../../src/cli/pending-del-replay';
import { parseMetrics, valueOf, family } from './prom-text';

test('pending, replayed, failed, ignored: read from the replayer\'s status at each scrape', async () => {
  let st: PendingDelStatus = { dir: '/spool', pending: 3, replayed: 0, failed: 1, ignored: 0, lastError: 'x', lastErrorAt: null, lastPassAt: null };
  const metrics = new PodwayMetrics({ processMetrics: false });
  metrics.add(new PendingDelCollector(() => st));
  const m = parseMetrics(await metrics.scrape());
  assert.is(family(m, 'podway_cni_pending_dels').type, 'GAUGE');
  assert.is(family(m, 'podway_cni_pending_dels_replayed_total').type, 'COUNTER');
  assert.is(family(m, 'podway_cni_pending_dels_failed_total').type, 'COUNTER');
  assert.is(family(m, 'podway_cni_pending_dels_ignored').type, 'GAUGE');
  for (const name of ['podway_cni_pending_dels', 'podway_cni_pending_dels_replayed_total', 'podway_cni_pending_dels_failed_total', 'podway_cni_pending_dels_ignored']) assert.ok(family(m, name).help.length > 20, `${name} has HELP text`);
  assert.is(valueOf(m, 'podway_cni_pending_dels'), 3);
  assert.is(valueOf(m, 'podway_cni_pending_dels_replayed_total'), 0);
  assert.is(valueOf(m, 'podway_cni_pending_dels_failed_total'), 1);
  st = { ...st, pending: 0, replayed: 3, failed: 1, ignored: 2 };
  const m2 = parseMetrics(await metrics.scrape());
  assert.is(valueOf(m2, 'podway_cni_pending_dels'), 0);
  assert.is(valueOf(m2, 'podway_cni_pending_dels_replayed_total'), 3);
  assert.is(valueOf(m2, 'podway_cni_pending_dels_ignored'), 2);
});

test.run();
