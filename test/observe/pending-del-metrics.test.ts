// Deferred CNI DELs in /metrics (no root): the collector reads the replayer's status at each
// scrape (pending and ignored as gauges, replayed and failed as counters), read back by a
// Prometheus text-format parser; and a real replayer's pass over a spool whose entry is for
// another datastore shows up as ignored, without touching any datastore.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PodwayMetrics } from '../../src/observe/metrics';
import { PendingDelCollector } from '../../src/observe/pending-del-metrics';
import { PendingDelReplayer, PendingDelStatus } from '../../src/cli/pending-del-replay';
import { writePending, PENDING_DEL_FORMAT } from '../../src/cni/pending-del';
import { parseMetrics, valueOf, family } from './prom-text';

test('pending, replayed, failed, ignored: read from the replayer\'s status at each scrape', async () => {
  let st: PendingDelStatus = { dir: '/spool', pending: 3, replayed: 0, failed: 1, ignored: 0, lastError: 'x', lastPassAt: null };
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

test('a real replayer: an entry for another datastore is ignored, nothing pending, nothing replayed', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pw-pending-del-metrics-'));
  const replayer = new PendingDelReplayer(dir, { kind: 'etcd', endpoints: ['http://127.0.0.1:1'] }, { info: () => {}, warn: () => {} }, 3_600_000);
  try {
    writePending(dir, {
      format: PENDING_DEL_FORMAT, network: 'podway', containerID: 'cother', ifname: 'eth0', node: 'node1', handle: 'podway.cother',
      endpoints: [], interfaceName: null, datastore: 'etcd:http://192.0.2.1:2379', ipamLockFile: path.join(dir, 'lock'),
      deferredAt: new Date().toISOString(), reason: 'test',
    });
    const metrics = new PodwayMetrics({ processMetrics: false });
    metrics.add(new PendingDelCollector(() => replayer.status()));
    replayer.start();
    await replayer.idle();
    const m = parseMetrics(await metrics.scrape());
    assert.is(valueOf(m, 'podway_cni_pending_dels_ignored'), 1, JSON.stringify(replayer.status()));
    assert.is(valueOf(m, 'podway_cni_pending_dels'), 0);
    assert.is(valueOf(m, 'podway_cni_pending_dels_replayed_total'), 0);
  } finally {
    await replayer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
