// IPv6 IPAM against a real etcd (test/helpers/etcd.ts starts one on loopback for this file and
// stops it by PID): clients with their own connections allocate from a /64 of /122 blocks at once,
// then release half; and two nodes forced to race for one IPv6 block.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ipam } from '../../../src/control/ipam/ipam';
import { affinityKey, blockKey } from '../../../src/control/ipam/keys';
import { parseIp, parseNet } from '../../../src/control/ipam/net';
import { etcdForFile } from '../../helpers/etcd';
import { assertClean, BlockCreateBarrier, setup } from './helpers';
import { allocateMany, prepareScenario, releaseEven, SCENARIO_POOL6, verifyScenario } from './scenario';

const CLIENTS = 6;
const NODES = 3;
const PER_CLIENT = 100;

const open = etcdForFile(test);

test(`etcd IPv6: ${CLIENTS} clients with their own connections on ${NODES} nodes: distinct, consistent, half released`, async () => {
  const admin = open();
  await prepareScenario(admin, NODES, SCENARIO_POOL6);
  const clients = Array.from({ length: CLIENTS }, open);
  const t0 = Date.now();
  const perClient = await Promise.all(clients.map((kv, c) => allocateMany(kv, c, NODES, PER_CLIENT, 6)));
  const allocMs = Date.now() - t0;
  assert.ok(perClient.flat().every((ip) => parseIp(ip)?.version === 6));
  await verifyScenario(admin, perClient, NODES, 'etcd IPv6 after allocation');
  const keys = (await admin.list('/calico/ipam/v2/assignment/')).entries.map((e) => e.key);
  assert.ok(keys.length > 0 && keys.every((k) => k.startsWith('/calico/ipam/v2/assignment/ipv6/block/fd00:10:244:') && k.endsWith('-122')), keys.join(' '));
  const released = await Promise.all(clients.map((kv, c) => releaseEven(kv, c, PER_CLIENT)));
  const remaining = perClient.map((ips, c) => ips.filter((ip) => !released[c].includes(ip)));
  await verifyScenario(admin, remaining, NODES, 'etcd IPv6 after releasing half');
  console.log(`  etcd IPv6, ${CLIENTS} clients: ${CLIENTS * PER_CLIENT} assignments in ${allocMs} ms`);
});

test('etcd IPv6: two nodes forced to race for one block end with one block each, no pending affinity', async () => {
  const admin = open();
  await setup(admin, { pools: [{ name: 'race6', cidr: 'fd00:60::/121' }], nodes: ['race-a', 'race-b'] });
  const barrier = new BlockCreateBarrier(open(), 2, 10_000);
  const [a, b] = await Promise.all(['race-a', 'race-b'].map((node) => new Ipam(barrier, { blockSearch: 'sequential' }).autoAssign({ node, count: 1, handleId: `h6-${node}`, attrs: { node }, pools: ['race6'], version: 6 })));
  const first = parseNet('fd00:60::/122')!;
  const second = parseNet('fd00:60::40/122')!;
  assert.equal(barrier.arrived, [blockKey(first), blockKey(first)]);
  const owners: (string | null)[] = [];
  for (const cidr of [first, second]) {
    const v = await admin.get(blockKey(cidr));
    owners.push(v ? (JSON.parse(v.value) as { affinity: string }).affinity : null);
  }
  assert.equal(owners.slice().sort(), ['host:race-a', 'host:race-b']);
  for (const node of ['race-a', 'race-b']) {
    const mine = owners[0] === `host:${node}` ? first : second;
    const other = mine === first ? second : first;
    assert.is((await admin.get(affinityKey(node, mine)))?.value, '{"state":"confirmed","deleted":false}');
    assert.is(await admin.get(affinityKey(node, other)), null);
  }
  assert.equal([a.ips, b.ips].map((x) => x.length), [1, 1]);
  assert.equal([...a.ips, ...b.ips].sort(), ['fd00:60::', 'fd00:60::40']);
  await assertClean(new Ipam(admin), 'etcd IPv6 after race');
});

test.run();
