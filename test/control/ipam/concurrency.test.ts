// Concurrent IPAM clients against one in-memory store (every store operation yields to the event
// loop, so the clients interleave between reads and compare-and-swap writes), and a forced race of
// two nodes for one block.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ipam } from '../../../src/control/ipam/ipam';
import { affinityKey } from '../../../src/control/ipam/keys';
import { parseNet } from '../../../src/control/ipam/net';
import { assertClean, BlockCreateBarrier, setup } from './helpers';
import { MemKv } from './mem-kv';
import { allocateMany, prepareScenario, releaseEven, verifyScenario } from './scenario';

const CLIENTS = 8;
const NODES = 4;
const PER_CLIENT = 200;

test(`${CLIENTS} concurrent clients on ${NODES} nodes, ${PER_CLIENT} addresses each: distinct, consistent; then half released`, async () => {
  const kv = new MemKv();
  await prepareScenario(kv, NODES);
  const t0 = Date.now();
  const perClient = await Promise.all(Array.from({ length: CLIENTS }, (_, c) => allocateMany(kv, c, NODES, PER_CLIENT)));
  const allocMs = Date.now() - t0;
  assert.is(perClient.flat().length, CLIENTS * PER_CLIENT);
  assert.ok(kv.ops.conflicts > 0, 'the clients really did collide on compare-and-swap');
  await verifyScenario(kv, perClient, NODES, 'after allocation');
  const released = await Promise.all(Array.from({ length: CLIENTS }, (_, c) => releaseEven(kv, c, PER_CLIENT)));
  assert.is(released.flat().length, CLIENTS * PER_CLIENT / 2);
  const remaining = perClient.map((ips, c) => ips.filter((ip) => !released[c].includes(ip)));
  assert.equal(remaining.map((r) => r.length), Array(CLIENTS).fill(PER_CLIENT / 2));
  await verifyScenario(kv, remaining, NODES, 'after releasing half');
  console.log(`  memory store: ${CLIENTS * PER_CLIENT} assignments in ${allocMs} ms, ${kv.ops.conflicts} CAS conflicts`);
});

test('race: two nodes claim the same free block at once — one owns it, the other gets another, no pending affinity left', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.50.0.0/25' }], nodes: ['node-a', 'node-b'] });
  const barrier = new BlockCreateBarrier(kv, 2, 5000);
  const affinityEvents: string[] = [];
  kv.watch('/calico/ipam/v2/host/', 0, {
    onEvents: (evs) => { for (const e of evs) affinityEvents.push(e.type === 'put' ? `put ${e.entry.key} ${JSON.parse(e.entry.value).state}` : `delete ${e.key}`); },
    onResync: () => assert.unreachable('resync'),
  });
  // 'sequential' makes both nodes pick 10.50.0.0/26 first.
  const [a, b] = await Promise.all(['node-a', 'node-b'].map((node) => new Ipam(barrier, { blockSearch: 'sequential' }).autoAssign({ node, count: 1, handleId: `h-${node}`, attrs: { node } })));
  assert.equal(barrier.arrived, ['/calico/ipam/v2/assignment/ipv4/block/10.50.0.0-26', '/calico/ipam/v2/assignment/ipv4/block/10.50.0.0-26'], 'both tried to create the same block');
  const first = parseNet('10.50.0.0/26')!;
  const second = parseNet('10.50.0.64/26')!;
  const winner = kv.peek(affinityKey('node-a', first)) ? 'node-a' : 'node-b';
  const loser = winner === 'node-a' ? 'node-b' : 'node-a';
  assert.is(kv.peek(affinityKey(winner, first)), '{"state":"confirmed","deleted":false}');
  assert.is(kv.peek(affinityKey(loser, first)), undefined, 'loser withdrew its pending affinity');
  assert.is(kv.peek(affinityKey(loser, second)), '{"state":"confirmed","deleted":false}', 'loser claimed the other block');
  assert.ok(affinityEvents.includes(`put ${affinityKey(loser, first)} pending`), 'loser had written a pending affinity for the contested block');
  assert.ok(affinityEvents.includes(`delete ${affinityKey(loser, first)}`));
  assert.equal(JSON.parse(kv.peek('/calico/ipam/v2/assignment/ipv4/block/10.50.0.0-26')!).affinity, `host:${winner}`);
  const ipOf = { 'node-a': a.ips, 'node-b': b.ips };
  assert.equal(ipOf[winner], ['10.50.0.0']);
  assert.equal(ipOf[loser], ['10.50.0.64']);
  await assertClean(new Ipam(kv), 'after the race');
});

test('two processes of one node racing for a block share it (the second confirms, does not withdraw)', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.51.0.0/25' }], nodes: ['node-a'] });
  const barrier = new BlockCreateBarrier(kv, 2, 5000);
  const results = await Promise.all([0, 1].map((i) => new Ipam(barrier, { blockSearch: 'sequential' }).autoAssign({ node: 'node-a', count: 1, handleId: `h${i}`, attrs: { node: 'node-a' } })));
  assert.is(barrier.arrived.length, 2);
  assert.equal(results.map((r) => r.ips[0]).sort(), ['10.51.0.0', '10.51.0.1']);
  assert.equal(kv.keys('/calico/ipam/v2/host/'), [affinityKey('node-a', parseNet('10.51.0.0/26')!)]);
  await assertClean(new Ipam(kv), 'after the same-node race');
});

test.run();
