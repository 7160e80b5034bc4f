// The concurrency scenario and the two-node block race against a real etcd (test/helpers/etcd.ts
// starts one on loopback for this file and stops it by PID): 8 clients, each with its own EtcdKv
// connection, on 4 node names.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ipam } from '../../../src/control/ipam/ipam';
import { affinityKey, blockKey } from '../../../src/control/ipam/keys';
import { parseNet } from '../../../src/control/ipam/net';
import { etcdForFile } from '../../helpers/etcd';
import { assertClean, BlockCreateBarrier, setup } from './helpers';
import { allocateMany, prepareScenario, releaseEven, verifyScenario } from './scenario';

const CLIENTS = 8;
const NODES = 4;
const PER_CLIENT = 200;

const open = etcdForFile(test);

test(`etcd: ${CLIENTS} clients with their own connections on ${NODES} nodes: distinct, consistent, half released`, async () => {
  const admin = open();
  await prepareScenario(admin, NODES);
  const clients = Array.from({ length: CLIENTS }, open);
  const t0 = Date.now();
  const perClient = await Promise.all(clients.map((kv, c) => allocateMany(kv, c, NODES, PER_CLIENT)));
  const allocMs = Date.now() - t0;
  await verifyScenario(admin, perClient, NODES, 'etcd after allocation');
  const released = await Promise.all(clients.map((kv, c) => releaseEven(kv, c, PER_CLIENT)));
  const remaining = perClient.map((ips, c) => ips.filter((ip) => !released[c].includes(ip)));
  await verifyScenario(admin, remaining, NODES, 'etcd after releasing half');
  console.log(`  etcd, ${CLIENTS} clients: ${CLIENTS * PER_CLIENT} assignments in ${allocMs} ms`);
});

test('etcd: two nodes forced to race for one block end with one block each, no pending affinity', async () => {
  const admin = open();
  await setup(admin, { pools: [{ name: 'race', cidr: '10.60.0.0/25' }], nodes: ['race-a', 'race-b'] });
  // Both look at 10.60.0.0/26 first (sequential search); the barrier holds their block creates
  // until both have written a pending affinity, so they collide in etcd for certain. (The
  // scenario's pool is in the same etcd, so the request names this pool.)
  const barrier = new BlockCreateBarrier(open(), 2, 10_000);
  const [a, b] = await Promise.all(['race-a', 'race-b'].map((node) => new Ipam(barrier, { blockSearch: 'sequential' }).autoAssign({ node, count: 1, handleId: `h-${node}`, attrs: { node }, pools: ['race'] })));
  assert.equal(barrier.arrived, [blockKey(parseNet('10.60.0.0/26')!), blockKey(parseNet('10.60.0.0/26')!)]);
  const owners = [];
  for (const cidr of ['10.60.0.0/26', '10.60.0.64/26']) {
    const v = await admin.get(blockKey(parseNet(cidr)!));
    owners.push(v ? (JSON.parse(v.value) as { affinity: string }).affinity : null);
  }
  assert.equal(owners.slice().sort(), ['host:race-a', 'host:race-b']);
  for (const node of ['race-a', 'race-b']) {
    const mine = owners[0] === `host:${node}` ? '10.60.0.0/26' : '10.60.0.64/26';
    const other = mine === '10.60.0.0/26' ? '10.60.0.64/26' : '10.60.0.0/26';
    assert.is((await admin.get(affinityKey(node, parseNet(mine)!)))?.value, '{"state":"confirmed","deleted":false}');
    assert.is(await admin.get(affinityKey(node, parseNet(other)!)), null);
  }
  assert.equal([a.ips.length, b.ips.length], [1, 1]);
  const problems = (await new Ipam(admin).check()).filter((p) => p.block?.startsWith('10.60.'));
  assert.equal(problems, []);
  await assertClean(new Ipam(admin), 'etcd after race');
});

test.run();
