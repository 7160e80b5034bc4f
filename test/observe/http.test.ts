// The metrics port over real HTTP on loopback: /metrics parses, /readyz is 503 with the reasons
// until ready and 200 after, /livez answers, unknown paths 404, a port in use is a clear error at
// start, and many concurrent scrapes all get the same complete answer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PodwayMetrics, snapshotCounter } from '../../src/observe/metrics';
import { Health } from '../../src/observe/health';
import { startMetricsServer } from '../../src/observe/http';
import { createLogger } from '../../src/observe/log';
import { parseMetrics, valueOf } from './prom-text';

const log = createLogger({ level: 'silent', human: false, write: () => {} });

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

test('/metrics, /livez, /readyz (503 then 200), 404; a busy port is refused clearly', async () => {
  const metrics = new PodwayMetrics({ processMetrics: false });
  const health = new Health();
  let n = 0;
  metrics.add({ register: (reg) => void snapshotCounter(reg, 'podway_test_reads_total', 'Reads.', [], () => [[{}, ++n]]) });
  const server = await startMetricsServer({ port: 0, host: '127.0.0.1', metrics, health, log });
  const port = (server.address() as AddressInfo).port;
  try {
    const m = await get(port, '/metrics');
    assert.is(m.status, 200);
    assert.match(m.type, /text\/plain/);
    assert.is(valueOf(parseMetrics(m.body), 'podway_test_reads_total'), 1);
    assert.equal(await get(port, '/livez'), { status: 200, type: 'text/plain; charset=utf-8', body: 'ok\n' });
    let r = await get(port, '/readyz');
    assert.is(r.status, 503);
    const why = JSON.parse(r.body) as { ready: boolean; reasons: string[] };
    assert.is(why.ready, false);
    assert.ok(why.reasons.some((x) => /datastore/.test(x)), r.body);
    // on a model cache: the datastore line says how old it is
    const appliedAt = new Date(Date.now() - 125_000);
    health.setCachedModel(() => ({ appliedAt, age: '2 min 5 s' }));
    health.setDatastore(false, 'running on the cached model: datastore unreachable');
    r = await get(port, '/readyz');
    assert.is(r.status, 503);
    assert.ok((JSON.parse(r.body) as { reasons: string[] }).reasons.some((x) => /^datastore: running on the cached model: datastore unreachable \(for \d+ s, since \S+Z\); the cached model/.test(x) && x.endsWith(`; the cached model (from ${appliedAt.toISOString()}) is 2 min 5 s old`)), r.body);
    health.setCachedModel(() => null);
    health.setDatastore(true);
    health.setEngines(async () => [{ problems: [], waiting: [] }]);
    r = await get(port, '/readyz');
    assert.is(r.status, 200, r.body);
    assert.is(JSON.parse(r.body).ready, true);
    assert.is((await get(port, '/nothing')).status, 404);

    // many concurrent scrapes: all complete, all parse
    const all = await Promise.all(Array.from({ length: 50 }, () => get(port, '/metrics')));
    for (const a of all) {
      assert.is(a.status, 200);
      assert.ok(valueOf(parseMetrics(a.body), 'podway_test_reads_total') >= 2);
    }

    try {
      await startMetricsServer({ port, host: '127.0.0.1', metrics, health, log });
      assert.unreachable('a second server on a busy port must fail');
    } catch (e) {
      assert.match((e as Error).message, `metrics port 127.0.0.1:${port} is already in use`);
    }
    try {
      await startMetricsServer({ port: 0, host: '192.0.2.77', metrics, health, log });
      assert.unreachable('an address this machine does not have must fail');
    } catch (e) {
      assert.match((e as Error).message, 'metrics address 192.0.2.77:0: not an address of this node');
    }
  } finally {
    server.close();
  }
});

test.run();
