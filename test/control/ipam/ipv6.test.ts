// IPv6 IPAM against an in-memory KvStore: Calico's keys and values for IPv6 blocks (/122 default),
// affinities and handles; claiming, borrowing, release, assignIp, show(); IPv4 and IPv6 kept apart
// in a dual-stack datastore; and the concurrency scenario over a /64 pool.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AllocationBlock } from '../../../src/control/ipam/block';
import { Ipam } from '../../../src/control/ipam/ipam';
import { affinityKey, blockKey, handleKey, parseAffinityKey, parseBlockKey } from '../../../src/control/ipam/keys';
import { formatIp, parseIp, parseNet } from '../../../src/control/ipam/net';
import { assertClean, setup } from './helpers';
import { MemKv } from './mem-kv';
import { allocateMany, prepareScenario, releaseEven, SCENARIO_POOL6, verifyScenario } from './scenario';

const net = (t: string) => parseNet(t)!;
async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected a rejection matching ${re}`);
}
const seq = (kv: MemKv) => new Ipam(kv, { blockSearch: 'sequential' });
const V6 = { name: 'default-ipv6-ippool', cidr: 'fd00:10:244::/64' };
const V4 = { name: 'default-ipv4-ippool', cidr: '10.244.0.0/16' };

test('IPv6 addresses and CIDRs: parsed, canonical (RFC 5952, as Go prints them), and Calico\'s key shapes', () => {
  assert.equal(parseIp('fd00:10:244:0:0:0:0:1'), { version: 6, value: 0xfd00_0010_0244_0000_0000_0000_0000_0001n });
  assert.is(formatIp(6, 0xfd00_0010_0244_0000_0000_0000_0000_0040n), 'fd00:10:244::40');
  assert.is(formatIp(6, 0n), '::');
  assert.is(formatIp(6, 0x2001_0db8_0000_0001_0000_0000_0000_0001n), '2001:db8:0:1::1', 'longest zero run compressed, a lone zero group not');
  assert.is(parseIp('fd00::1::2'), null);
  assert.is(parseIp('fd00:xyz::1'), null);
  assert.is(parseNet('fd00:10:244::1/122'), null, 'host bits set');
  assert.is(net('FD00:10:244:0::/64').text, 'fd00:10:244::/64');
  assert.is(net('fd00:10:244::40/122').bits, 128);
  assert.is(blockKey(net('fd00:10:244::40/122')), '/calico/ipam/v2/assignment/ipv6/block/fd00:10:244::40-122');
  assert.is(affinityKey('node1', net('fd00:10:244::40/122')), '/calico/ipam/v2/host/node1/ipv6/block/fd00:10:244::40-122');
  assert.is(parseBlockKey('/calico/ipam/v2/assignment/ipv6/block/fd00:10:244::40-122')!.text, 'fd00:10:244::40/122');
  assert.equal(parseAffinityKey('/calico/ipam/v2/host/n/ipv6/block/fd00:10:244::-122')!.cidr.text, 'fd00:10:244::/122');
});

test('dual-stack datastore: IPv6 requests use the IPv6 pool and keys, IPv4 requests the IPv4 ones', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [V4, V6], nodes: ['node1'] });
  const ipam = seq(kv);
  const a4 = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.c1', attrs: { node: 'node1' } });
  const a6 = await ipam.autoAssign({ node: 'node1', count: 3, handleId: 'k8s-pod-network.c1', attrs: { node: 'node1' }, version: 6 });
  assert.equal(a4, { ips: ['10.244.0.0'] });
  assert.equal(a6, { ips: ['fd00:10:244::', 'fd00:10:244::1', 'fd00:10:244::2'] });
  assert.equal(kv.keys('/calico/ipam/v2/assignment/'), [blockKey(net('10.244.0.0/26')), '/calico/ipam/v2/assignment/ipv6/block/fd00:10:244::-122']);
  assert.equal(kv.keys('/calico/ipam/v2/host/'), ['/calico/ipam/v2/host/node1/ipv4/block/10.244.0.0-26', '/calico/ipam/v2/host/node1/ipv6/block/fd00:10:244::-122']);
  assert.is(kv.peek(handleKey('k8s-pod-network.c1')), '{"block":{"10.244.0.0/26":1,"fd00:10:244::/122":3},"deleted":false}');
  const block = AllocationBlock.decode(kv.peek(blockKey(net('fd00:10:244::/122')))!);
  assert.is(block.cidr.text, 'fd00:10:244::/122');
  assert.is(block.size, 64, 'the default IPv6 blockSize is 122: 64 addresses');
  assert.is(block.affinity, 'host:node1');
  assert.ok(kv.peek(blockKey(net('fd00:10:244::/122')))!.startsWith('{"cidr":"fd00:10:244::/122","affinity":"host:node1"'));
  assert.equal((await ipam.blocksOf('node1')).map((b) => [b.cidr, b.size, b.inUse]), [['10.244.0.0/26', 64, 1], ['fd00:10:244::/122', 64, 3]]);
  const show = await ipam.show();
  const pool6 = show.find((p) => p.cidr === 'fd00:10:244::/64')!;
  assert.is(pool6.size, 2 ** 64);
  assert.is(pool6.inUse, 3);
  assert.equal(pool6.blocks.map((b) => [b.cidr, b.inUse, b.free]), [['fd00:10:244::/122', 3, 61]]);
  assert.is(show.find((p) => p.cidr === '10.244.0.0/16')!.inUse, 1);
  await assertClean(ipam, 'dual stack');
  // One handle frees both families.
  const r = await ipam.releaseByHandle('k8s-pod-network.c1');
  assert.equal(r.released.sort(), ['10.244.0.0', 'fd00:10:244::', 'fd00:10:244::1', 'fd00:10:244::2']);
  assert.is(kv.peek(handleKey('k8s-pod-network.c1')), undefined);
  await assertClean(ipam, 'after release');
});

test('no IPv6 pool: an IPv6 request says so; an IPv4-only request ignores IPv6 pools', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [V4], nodes: ['node1'] });
  const r = await seq(kv).autoAssign({ node: 'node1', count: 1, handleId: 'h', version: 6 });
  assert.equal(r.ips, []);
  assert.match(r.errors![0], /no enabled IPv6 pool selects node node1/);
  const kv2 = new MemKv();
  await setup(kv2, { pools: [V6], nodes: ['node1'] });
  const r4 = await seq(kv2).autoAssign({ node: 'node1', count: 1, handleId: 'h' });
  assert.match(r4.errors![0], /no enabled IPv4 pool/);
});

test('a full IPv6 block makes the node claim the next one; blockSize honoured', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p6', cidr: 'fd00:20::/120', spec: { blockSize: 124 } }], nodes: ['node1'] });
  const ipam = seq(kv);
  const r = await ipam.autoAssign({ node: 'node1', count: 17, handleId: 'h', version: 6, attrs: { node: 'node1' } });
  assert.is(r.ips.length, 17);
  assert.is(r.ips[16], 'fd00:20::10');
  assert.equal((await ipam.blocksOf('node1')).map((b) => [b.cidr, b.state, b.size, b.inUse]), [['fd00:20::/124', 'confirmed', 16, 16], ['fd00:20::10/124', 'confirmed', 16, 1]]);
  assert.is(kv.peek(handleKey('h')), '{"block":{"fd00:20::/124":16,"fd00:20::10/124":1},"deleted":false}');
  await assertClean(ipam, 'two /124s');
});

test('the default (spread) search puts nodes at different /122s of a /64, inside the pool', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [V6], nodes: ['node1', 'node2', 'node3'] });
  const ipam = new Ipam(kv);
  const blocks: string[] = [];
  for (const node of ['node1', 'node2', 'node3']) {
    const r = await ipam.autoAssign({ node, count: 1, handleId: `h-${node}`, attrs: { node }, version: 6 });
    assert.is(r.ips.length, 1);
    const b = (await ipam.blocksOf(node))[0];
    assert.is(net(b.cidr).prefixLen, 122);
    assert.ok(net('fd00:10:244::/64').base <= net(b.cidr).base && net(b.cidr).base < net('fd00:10:244:1::/64').base, `${b.cidr} in the pool`);
    assert.is(r.ips[0], b.cidr.split('/')[0], 'first address of its block');
    blocks.push(b.cidr);
  }
  assert.is(new Set(blocks).size, 3);
  await assertClean(ipam, 'spread');
});

test('borrowing: when the IPv6 pool has no free block, another node borrows single addresses; routeInputs lists them', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'tiny6', cidr: 'fd00:30::/122' }], nodes: ['node1', 'node2'] });
  const ipam = seq(kv);
  assert.equal((await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'a', attrs: { node: 'node1' }, version: 6 })).ips, ['fd00:30::']);
  const b = await ipam.autoAssign({ node: 'node2', count: 2, handleId: 'b', attrs: { node: 'node2' }, version: 6 });
  assert.equal(b, { ips: ['fd00:30::1', 'fd00:30::2'] });
  assert.equal((await ipam.routeInputs()).borrowed, [
    { ip: 'fd00:30::1', node: 'node2', block: 'fd00:30::/122', blockNode: 'node1' },
    { ip: 'fd00:30::2', node: 'node2', block: 'fd00:30::/122', blockNode: 'node1' },
  ]);
  assert.equal(await ipam.blocksOf('node2'), []);
  await assertClean(ipam, 'borrowed');
  // strict_affinity: no borrowing.
  await kv.create('/calico/ipam/v2/config', '{"strict_affinity":true,"auto_allocate_blocks":true}');
  const c = await ipam.autoAssign({ node: 'node2', count: 1, handleId: 'c', attrs: { node: 'node2' }, version: 6 });
  assert.equal(c.ips, []);
  assert.match(c.errors![0], /strict_affinity/);
});

test('assignIp and releaseIps take IPv6 text in any spelling and answer in canonical form', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [V4, V6], nodes: ['node1'] });
  const ipam = seq(kv);
  await ipam.assignIp({ ip: 'fd00:10:244:0:0:0:0:85', handleId: 'fixed', attrs: { node: 'node1' }, node: 'node1' });
  assert.equal((await ipam.blocksOf('node1')).map((b) => [b.cidr, b.inUse]), [['fd00:10:244::80/122', 1]]);
  await rejects(ipam.assignIp({ ip: 'fd00:10:244::85', handleId: 'again', node: 'node1' }), /already assigned/);
  await rejects(ipam.assignIp({ ip: 'fd00:99::1', handleId: 'x', node: 'node1' }), /not in an enabled IP pool/);
  await rejects(ipam.assignIp({ ip: 'fd00:::1', handleId: 'x', node: 'node1' }), /invalid IP address/);
  const r = await ipam.releaseIps(['FD00:10:244::85', 'fd00:10:244::86']);
  assert.equal(r, { released: ['fd00:10:244::85'], notAllocated: ['fd00:10:244::86'] });
  assert.is(kv.peek(handleKey('fixed')), undefined, 'handle count went to zero');
  await assertClean(ipam, 'after release');
});

test(`IPv6 concurrency: 6 clients on 3 nodes, 60 addresses each from a /64: distinct, consistent; half released`, async () => {
  const kv = new MemKv();
  await prepareScenario(kv, 3, SCENARIO_POOL6);
  const perClient = await Promise.all(Array.from({ length: 6 }, (_, c) => allocateMany(kv, c, 3, 60, 6)));
  assert.ok(perClient.flat().every((ip) => parseIp(ip)?.version === 6));
  assert.ok(kv.ops.conflicts > 0, 'the clients really did collide on compare-and-swap');
  await verifyScenario(kv, perClient, 3, 'IPv6 after allocation');
  const released = await Promise.all(Array.from({ length: 6 }, (_, c) => releaseEven(kv, c, 60)));
  const remaining = perClient.map((ips, c) => ips.filter((ip) => !released[c].includes(ip)));
  await verifyScenario(kv, remaining, 3, 'IPv6 after releasing half');
});

test.run();
