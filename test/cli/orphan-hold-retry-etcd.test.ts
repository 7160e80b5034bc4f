// podway run's orphan holds (cli/orphan-holds.ts) on a real etcd that is away at the first pass:
// the failed pass is said once and tried again within seconds (2 s, doubling), not at the next
// interval's pass (an hour here), so the node's orphan pods' addresses are held as soon as etcd
// answers again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { OrphanHolder } from '../../src/cli/orphan-holds';
import { startEtcd } from '../helpers/etcd';
import { until } from '../helpers/until';

test('a pass failed while etcd was away is tried again within seconds once it answers', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), `podway-orphan-retry-${process.pid}-`));
  const etcd = await startEtcd();
  const warned: string[] = [];
  const holder = new OrphanHolder(`orphan-retry-${process.pid}`, { kind: 'etcd', endpoints: [etcd.endpoint] }, [path.join(dir, 'ipam.lock')], { list: () => [], scanComplete: () => true }, { info: () => undefined, warn: (m) => warned.push(m) }, 3_600_000);
  try {
    await etcd.kill();
    holder.start();
    await holder.idle();
    assert.ok(holder.status().lastError, 'the first pass failed (etcd away)');
    assert.is(warned.length, 1, warned.join(' | '));
    assert.match(warned[0]!, /^orphan pod addresses not held in IPAM: .* \(tried again in 2 s, then less often, up to every 3600 s\)$/);
    await etcd.start();
    // Without the retry the next pass is the interval's, an hour on.
    assert.ok(await until(() => holder.status().lastError === null, 30_000), `passed once etcd answered: ${holder.status().lastError} | ${warned.join(' | ')}`);
  } finally {
    await holder.stop();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
