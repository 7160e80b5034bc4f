// When `podway run` reconciles the node's VXLAN tunnel addresses again (cli/tunnel-join.ts), on the
// embedded store with the real join (control/tunnel-addrs.ts) and models computed from the store's
// own snapshots (KvDatastore, route-calc): a node whose only VXLAN pool is disabled gets no address,
// and its join must not run again with every model apply; a changed pool set runs it again, and an
// address assigned ends it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FileKv } from '../../src/control/kv/file-kv';
import { KvDatastore } from '../../src/control/kv-datastore';
import { computeNodeModel } from '../../src/control/route-calc';
import { IPPOOL_PREFIX, nodeKey } from '../../src/control/ipam/keys';
import { registerNode } from '../../src/control/node-registration';
import { reconcileTunnelAddrs } from '../../src/control/tunnel-addrs';
import { TunnelAddressJoin, tunnelAddressesStale } from '../../src/cli/tunnel-join';
import type { NodeDataplaneModel } from '../../src/control';
import { poolValue } from '../control/ipam/helpers';

const dirs: string[] = [];
process.on('exit', () => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const POOL = { name: 'vx-pool', cidr: '10.244.0.0/16' };

interface Store {
  kv: FileKv;
  join: TunnelAddressJoin;
  errors: string[];
  /** node1's model from the store's latest snapshot. */
  model: () => NodeDataplaneModel;
  /** node1's Node spec as stored. */
  nodeSpec: () => Promise<Record<string, unknown>>;
}

/**
 * An embedded store in a temporary directory with POOL (VXLAN; `disabled` as asked) and node1
 * registered, its datastore watch started, and the real join for node1 (retry timings `retryMs`);
 * `body` runs with them, then everything is stopped and closed.
 */
async function withStore(disabled: boolean, retryMs: { first: number; max: number } | undefined, body: (s: Store) => Promise<void>): Promise<void> {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'podway-tjoin-')), 'store');
  dirs.push(path.dirname(dir));
  mkdirSync(dir);
  const kv = new FileKv({ dir });
  const ds = new KvDatastore(kv, { debounceMs: 5, maxDelayMs: 50 });
  const errors: string[] = [];
  const join = new TunnelAddressJoin(async () => void (await reconcileTunnelAddrs(kv, 'node1', { assignV6: false })), (e) => errors.push(e.message), retryMs);
  try {
    await kv.create(IPPOOL_PREFIX + POOL.name, poolValue(POOL.name, POOL.cidr, { vxlanMode: 'Always', ipipMode: 'Never', ...(disabled ? { disabled: true } : {}) }));
    await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24' });
    await ds.start();
    await body({
      kv, join, errors,
      model: () => computeNodeModel(ds.current()!, 'node1'),
      nodeSpec: async () => (JSON.parse((await kv.get(nodeKey('node1')))!.value) as { spec: Record<string, unknown> }).spec,
    });
  } finally {
    join.stop();
    await ds.close();
    await kv.close();
  }
}

test('only a disabled VXLAN pool: the join runs once (no address to assign), not again with every apply; enabling the pool joins again and assigns; a failed join is tried again on the next apply', async () => {
  await withStore(true, undefined, async ({ kv, join, errors, model, nodeSpec: node }) => {
    const m1 = model();
    assert.ok(tunnelAddressesStale(m1), 'a VXLAN pool and no tunnel address');
    for (let k = 0; k < 4; k++) {
      join.applied(m1);
      await join.idle();
    }
    assert.equal(errors, []);
    assert.is(join.runs, 1, 'the join ran once for these pools');
    assert.is((await node()).ipv4VXLANTunnelAddr, undefined, 'none from a disabled pool');

    // the pool enabled: a new model (its pools changed) joins again, which assigns
    const cur = (await kv.get(IPPOOL_PREFIX + POOL.name))!;
    assert.ok(await kv.update(IPPOOL_PREFIX + POOL.name, poolValue(POOL.name, POOL.cidr, { vxlanMode: 'Always', ipipMode: 'Never' }), cur.modRevision));
    const deadline = Date.now() + 10_000;
    let m2 = model();
    while (m2.pools[0]?.disabled !== false && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      m2 = model();
    }
    assert.is(m2.pools[0]?.disabled, false, 'the snapshot has the pool enabled');
    join.applied(m2);
    await join.idle();
    assert.is(join.runs, 2);
    const addr = (await node()).ipv4VXLANTunnelAddr;
    assert.match(String(addr), /^10\.244\./, 'assigned from the enabled pool');
    let m3 = m2;
    while (m3.node.vtepIp === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      m3 = model();
    }
    assert.not.ok(tunnelAddressesStale(m3), 'the model has the address');
    join.applied(m3);
    await join.idle();
    assert.is(join.runs, 2, 'nothing stale: no join');
    // The address cleared later (an operator, ipam release): the same inputs as the join that
    // assigned it, but stale again after a fresh model: joined for again.
    join.applied(m2);
    await join.idle();
    assert.is(join.runs, 3, 'stale again after a fresh model: the join runs again');
  });
});

test('a failed join is tried again with the next apply of the same model', async () => {
  await withStore(true, undefined, async ({ kv, join, errors, model }) => {
    const m = model();
    // the Node gone from the store between the model and the join: the join fails
    const n = (await kv.get(nodeKey('node1')))!;
    assert.ok(await kv.delete(nodeKey('node1'), n.modRevision));
    join.applied(m);
    await join.idle();
    assert.is(errors.length, 1);
    assert.match(errors[0], /node node1 does not exist/);
    assert.ok(await kv.create(nodeKey('node1'), n.value));
    join.applied(m);
    await join.idle();
    assert.is(join.runs, 2, 'tried again');
    assert.is(errors.length, 1, 'and it succeeded');
    join.applied(m);
    await join.idle();
    assert.is(join.runs, 2, 'then not again');
  });
});

test('a failed join is tried again on its own after a backoff when no new model comes (a quiet cluster)', async () => {
  await withStore(false, { first: 50, max: 200 }, async ({ kv, join, errors, model, nodeSpec }) => {
    const m = model();
    const n = (await kv.get(nodeKey('node1')))!;
    assert.ok(await kv.delete(nodeKey('node1'), n.modRevision));
    join.applied(m);
    await join.idle();
    assert.is(errors.length, 1, 'the first join failed');
    // two more failures on the timer alone, then the Node is back and the timer's join assigns
    const deadline = Date.now() + 10_000;
    while (join.runs < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(join.runs >= 3, `retried without a new model: ${join.runs} runs`);
    assert.ok(await kv.create(nodeKey('node1'), n.value));
    let addr: unknown;
    while (addr === undefined && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      addr = (await nodeSpec()).ipv4VXLANTunnelAddr;
    }
    assert.match(String(addr), /^10\.244\./, 'the retry assigned the tunnel address');
  });
});

test.run();
