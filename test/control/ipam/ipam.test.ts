// IPAM behaviour against a real (in-memory) KvStore: affine blocks, claiming, limits, borrowing,
// strict affinity, pool selection, release, check() and show().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AllocationBlock } from '../../../src/control/ipam/block';
import { Ipam } from '../../../src/control/ipam/ipam';
import { affinityKey, blockKey, handleKey, IPAM_CONFIG_KEY, IPPOOL_PREFIX } from '../../../src/control/ipam/keys';
import { parseNet } from '../../../src/control/ipam/net';
import { assertClean, handleCountsFromStore, poolValue, setup } from './helpers';
import { MemKv } from './mem-kv';
import { blockAffinityFromKv } from '../../../src/control/calico-kinds';
import { podwayCommand } from '../../../src/util/invocation';

const net = (t: string) => parseNet(t)!;
const attrs = (node: string, pod = 'p') => ({ node, pod, namespace: 'ns' });
const blockOf = (kv: MemKv, cidr: string): AllocationBlock => AllocationBlock.decode(kv.peek(blockKey(net(cidr)))!);
const seq = (kv: MemKv) => new Ipam(kv, { blockSearch: 'sequential' });

test('assigns from the node\'s affine block before claiming another', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.244.0.0/16' }], nodes: ['node1'] });
  const ipam = seq(kv);
  const got: string[] = [];
  for (let i = 0; i < 3; i++) got.push(...(await ipam.autoAssign({ node: 'node1', count: 1, handleId: `h${i}`, attrs: attrs('node1') })).ips);
  assert.equal(got, ['10.244.0.0', '10.244.0.1', '10.244.0.2']);
  assert.equal(await ipam.blocksOf('node1'), [{ cidr: '10.244.0.0/26', state: 'confirmed', exists: true, size: 64, inUse: 3, free: 61 }]);
  assert.equal(kv.keys('/calico/ipam/v2/assignment/'), [blockKey(net('10.244.0.0/26'))]);
  await assertClean(ipam, 'after three assignments');
});

test('claims a new block when the affine ones are full (pending → confirmed), blockSize honoured', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.245.0.0/24', spec: { blockSize: 28 } }], nodes: ['node1'] });
  const ipam = seq(kv);
  const r = await ipam.autoAssign({ node: 'node1', count: 17, handleId: 'h', attrs: attrs('node1') });
  assert.is(r.ips.length, 17);
  assert.is(r.errors, undefined);
  assert.equal(kv.keys('/calico/ipam/v2/assignment/'), [blockKey(net('10.245.0.0/28')), blockKey(net('10.245.0.16/28'))]);
  assert.equal((await ipam.blocksOf('node1')).map((b) => [b.cidr, b.state, b.size, b.inUse]), [['10.245.0.0/28', 'confirmed', 16, 16], ['10.245.0.16/28', 'confirmed', 16, 1]]);
  assert.is(kv.peek(handleKey('h')), '{"block":{"10.245.0.0/28":16,"10.245.0.16/28":1},"deleted":false}');
  assert.is(blockOf(kv, '10.245.0.0/28').attributes!.length, 1, 'one attribute shared by the 16 allocations of one handle');
  await assertClean(ipam, 'after claiming two /28s');
});

test('the default search spreads nodes over the pool; each node keeps to its own blocks', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.244.0.0/16' }], nodes: ['node1', 'node2'] });
  const ipam = new Ipam(kv);
  const a = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'a', attrs: attrs('node1') });
  const b = await ipam.autoAssign({ node: 'node2', count: 1, handleId: 'b', attrs: attrs('node2') });
  const ba = (await ipam.blocksOf('node1'))[0].cidr;
  const bb = (await ipam.blocksOf('node2'))[0].cidr;
  assert.is.not(ba, bb);
  assert.ok(net(ba).base === (BigInt(a.ips[0].split('.').reduce((n, o) => n * 256 + Number(o), 0)) >> 6n) << 6n);
  assert.ok(b.ips[0] !== a.ips[0]);
  await assertClean(ipam, 'two nodes');
});

test('maxBlocksPerHost reached with full blocks: refuses (does not borrow), as libcalico-go does, strict or not', async () => {
  for (const strict of [false, true]) {
    const kv = new MemKv();
    await setup(kv, {
      pools: [{ name: 'p', cidr: '10.246.0.0/28', spec: { blockSize: 30 } }], nodes: ['node1', 'node2'],
      config: { strict_affinity: strict, auto_allocate_blocks: true, maxBlocksPerHost: 1 },
    });
    const ipam = seq(kv);
    assert.equal((await ipam.autoAssign({ node: 'node2', count: 1, handleId: 'n2', attrs: attrs('node2') })).ips, ['10.246.0.0']);
    assert.equal((await ipam.autoAssign({ node: 'node1', count: 4, handleId: 'n1a', attrs: attrs('node1') })).ips, ['10.246.0.4', '10.246.0.5', '10.246.0.6', '10.246.0.7']);
    // node1 owns its one allowed block, full; node2's block has 3 free and two blocks are unclaimed:
    // still nothing for node1 (Calico's ErrBlockLimit).
    const r = await ipam.autoAssign({ node: 'node1', count: 2, handleId: 'n1b', attrs: attrs('node1') });
    assert.equal(r, { ips: [], errors: ['pools [10.246.0.0/28]: node node1 has reached maxBlocksPerHost=1 blocks and they are full (a node at its block limit does not borrow)'] }, `strict=${strict}`);
    assert.is((await ipam.blocksOf('node1')).length, 1, 'no second block claimed');
    assert.equal((await ipam.routeInputs()).borrowed, [], 'nothing borrowed');
    assert.is(kv.peek(handleKey('n1b')), undefined, 'no handle left for a failed assignment');
    // Part of a request can be met before the limit stops it.
    await ipam.releaseIps(['10.246.0.7']);
    const part = await ipam.autoAssign({ node: 'node1', count: 3, handleId: 'n1c', attrs: attrs('node1') });
    assert.equal(part.ips, ['10.246.0.7']);
    assert.match(part.errors![0], /maxBlocksPerHost=1 /);
    await assertClean(ipam, `after refusing (strict=${strict})`);
  }
});

test('no free block left in the pools: borrows from another node\'s block unless strict_affinity', async () => {
  const kv = new MemKv();
  await setup(kv, {
    pools: [{ name: 'p', cidr: '10.246.0.0/29', spec: { blockSize: 30 } }], nodes: ['node1', 'node2', 'node3'],
  });
  const ipam = seq(kv);
  await ipam.autoAssign({ node: 'node2', count: 1, handleId: 'n2', attrs: attrs('node2') });
  await ipam.autoAssign({ node: 'node3', count: 1, handleId: 'n3', attrs: attrs('node3') });
  // node1 may claim blocks (limit 20) but both blocks of the pool are taken: it borrows.
  const r = await ipam.autoAssign({ node: 'node1', count: 2, handleId: 'n1', attrs: attrs('node1') });
  assert.equal(r, { ips: ['10.246.0.1', '10.246.0.2'] });
  assert.is((await ipam.blocksOf('node1')).length, 0);
  assert.equal((await ipam.routeInputs()).borrowed, [
    { ip: '10.246.0.1', node: 'node1', block: '10.246.0.0/30', blockNode: 'node2' },
    { ip: '10.246.0.2', node: 'node1', block: '10.246.0.0/30', blockNode: 'node2' },
  ]);
  const show = await ipam.show();
  assert.equal(show[0].blocks.find((b) => b.cidr === '10.246.0.0/30'), { cidr: '10.246.0.0/30', affinity: 'host:node2', size: 4, inUse: 3, free: 1, borrowed: 2 });
  await assertClean(ipam, 'after borrowing');
});

test('auto_allocate_blocks false: no new block and no borrowing, a clear error', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.246.0.0/28', spec: { blockSize: 30 } }], nodes: ['node1', 'node2'], config: { auto_allocate_blocks: false } });
  const ipam = seq(kv);
  const r = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h', attrs: attrs('node1') });
  assert.equal(r, { ips: [], errors: ['pools [10.246.0.0/28]: node node1 has no affine block with free addresses and auto_allocate_blocks is false'] });
  assert.equal(kv.keys('/calico/ipam/v2/assignment/'), []);
});

test('pool exhausted: strict reports no free blocks; non-strict borrows the rest, then reports the shortfall', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.247.0.0/30', spec: { blockSize: 30 } }], nodes: ['node1', 'node2'] });
  const ipam = seq(kv);
  await ipam.autoAssign({ node: 'node2', count: 1, handleId: 'n2', attrs: attrs('node2') });
  const borrowed = await ipam.autoAssign({ node: 'node1', count: 5, handleId: 'n1', attrs: attrs('node1') });
  assert.equal(borrowed.ips, ['10.247.0.1', '10.247.0.2', '10.247.0.3']);
  assert.equal(borrowed.errors, ["IP pool p (10.247.0.0/30: 4 addresses, 4 allocated) exhausted: all in use; no free block left to claim for node node1, borrowing from other nodes' blocks tried (assigned 3 of 5)"]);
  assert.is(borrowed.exhausted, true);
  kv.put(IPAM_CONFIG_KEY, '{"strict_affinity":true,"auto_allocate_blocks":true}');
  await ipam.releaseIps(['10.247.0.3']);
  const strict = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'n1x', attrs: attrs('node1') });
  assert.equal(strict, { ips: [], errors: ['pools [10.247.0.0/30]: no free blocks left for node node1 and strict_affinity is set'] });
  await assertClean(ipam, 'exhausted pool');
});

test('disabled pools are skipped; no usable pool is a clear error', async () => {
  const kv = new MemKv();
  await setup(kv, {
    pools: [{ name: 'off', cidr: '10.1.0.0/16', spec: { disabled: true } }, { name: 'on', cidr: '10.2.0.0/16' }],
    nodes: ['node1'],
  });
  const ipam = seq(kv);
  assert.equal((await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h', attrs: attrs('node1') })).ips, ['10.2.0.0']);
  const on = await kv.get(IPPOOL_PREFIX + 'on');
  await kv.update(IPPOOL_PREFIX + 'on', poolValue('on', '10.2.0.0/16', { disabled: true }), on!.modRevision);
  assert.equal(await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h2', attrs: attrs('node1') }), { ips: [], noPool: true, errors: [`no enabled IPv4 pool selects node node1; enabled pools: none (create one: an IPPool applied with \`${podwayCommand()} apply -f pool.yaml\`, as in the README's Quick start)`] });
  try {
    await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h3', pools: ['off'] });
    assert.unreachable('disabled pool requested');
  } catch (e) {
    assert.match((e as Error).message, 'the given pool (off) does not exist, or is not enabled');
  }
});

test('nodeSelector honoured; requested pools override it', async () => {
  const kv = new MemKv();
  await setup(kv, {
    pools: [{ name: 'a', cidr: '10.10.0.0/16', spec: { nodeSelector: 'zone == "a"' } }, { name: 'b', cidr: '10.20.0.0/16', spec: { nodeSelector: 'zone in {"b","c"} && !has(gpu)' } }],
    nodes: [{ name: 'n1', labels: { zone: 'a' } }, { name: 'n2', labels: { zone: 'c' } }, { name: 'n3', labels: { zone: 'b', gpu: 'yes' } }],
  });
  const ipam = seq(kv);
  assert.equal((await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'x1' })).ips, ['10.10.0.0']);
  assert.equal((await ipam.autoAssign({ node: 'n2', count: 1, handleId: 'x2' })).ips, ['10.20.0.0']);
  const none = await ipam.autoAssign({ node: 'n3', count: 1, handleId: 'x3' });
  assert.equal(none.ips, []);
  assert.match(none.errors![0], 'no enabled IPv4 pool selects node n3; enabled pools: a (10.10.0.0/16, nodeSelector "zone == \\"a\\""), b (10.20.0.0/16');
  assert.equal((await ipam.autoAssign({ node: 'n3', count: 1, handleId: 'x4', pools: ['10.10.0.0/16'] })).ips, ['10.10.0.64']);
  try {
    await ipam.autoAssign({ node: 'ghost', count: 1, handleId: 'x5' });
    assert.unreachable('unknown node');
  } catch (e) {
    assert.match((e as Error).message, 'node ghost does not exist (no /calico/resources/v3/projectcalico.org/nodes/ghost)');
  }
});

test('an empty affine block in a pool that no longer selects the node is given back', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'a', cidr: '10.10.0.0/16', spec: { nodeSelector: 'zone == "a"' } }, { name: 'b', cidr: '10.20.0.0/16' }], nodes: [{ name: 'n1', labels: { zone: 'a' } }] });
  const ipam = seq(kv);
  const r = await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'x' });
  assert.equal(r.ips, ['10.10.0.0']);
  await ipam.releaseByHandle('x');
  const pa = await kv.get(IPPOOL_PREFIX + 'a');
  await kv.update(IPPOOL_PREFIX + 'a', poolValue('a', '10.10.0.0/16', { nodeSelector: 'zone == "z"' }), pa!.modRevision);
  assert.equal((await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'y' })).ips, ['10.20.0.0']);
  assert.is(kv.peek(affinityKey('n1', net('10.10.0.0/26'))), undefined);
  assert.is(kv.peek(blockKey(net('10.10.0.0/26'))), undefined, 'empty block deleted');
  await assertClean(ipam, 'after giving back');
});

test('release by handle and by address; handle decremented then deleted', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.3.0.0/24', spec: { blockSize: 30 } }], nodes: ['node1'] });
  const ipam = seq(kv);
  const r = await ipam.autoAssign({ node: 'node1', count: 6, handleId: 'h', attrs: attrs('node1') });
  assert.equal(r.ips, ['10.3.0.0', '10.3.0.1', '10.3.0.2', '10.3.0.3', '10.3.0.4', '10.3.0.5']);
  assert.is(kv.peek(handleKey('h')), '{"block":{"10.3.0.0/30":4,"10.3.0.4/30":2},"deleted":false}');
  assert.equal(await ipam.releaseIps(['10.3.0.1', '10.3.0.5', '10.3.0.200', '10.9.9.9']), { released: ['10.3.0.1', '10.3.0.5'], notAllocated: ['10.9.9.9', '10.3.0.200'] });
  assert.is(kv.peek(handleKey('h')), '{"block":{"10.3.0.0/30":3,"10.3.0.4/30":1},"deleted":false}');
  assert.equal(blockOf(kv, '10.3.0.0/30').unallocated, [1]);
  await assertClean(ipam, 'after releasing two');
  assert.equal(await ipam.releaseByHandle('h'), { found: true, released: ['10.3.0.0', '10.3.0.2', '10.3.0.3', '10.3.0.4'], dropped: [] });
  assert.is(kv.peek(handleKey('h')), undefined);
  assert.equal(await ipam.releaseByHandle('h'), { found: false, released: [], dropped: [] });
  // Affine blocks stay (empty) for the node's next pods.
  assert.equal((await ipam.blocksOf('node1')).map((b) => [b.cidr, b.inUse]), [['10.3.0.0/30', 0], ['10.3.0.4/30', 0]]);
  assert.equal(blockOf(kv, '10.3.0.0/30').unallocated, [1, 0, 2, 3], 'released ordinals go to the end');
  await assertClean(ipam, 'after release by handle');
});

test('an empty block with no affinity is deleted on release (by handle and by address)', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.4.0.0/24', spec: { blockSize: 30 } }], nodes: ['node1'] });
  const ipam = seq(kv);
  await ipam.autoAssign({ node: 'node1', count: 2, handleId: 'a', attrs: attrs('node1') });
  await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'b', attrs: attrs('node1') });
  // The node gives up the block while it is in use: the block keeps its addresses, loses its affinity.
  assert.is(await ipam.releaseAffinity('node1', '10.4.0.0/30', { requireEmpty: true }), 'not-empty');
  assert.is(await ipam.releaseAffinity('node1', '10.4.0.0/30', { requireEmpty: false }), 'released');
  assert.is(blockOf(kv, '10.4.0.0/30').affinity, null);
  assert.is(kv.peek(affinityKey('node1', net('10.4.0.0/30'))), undefined);
  await assertClean(ipam, 'non-affine block in use');
  await ipam.releaseByHandle('a');
  assert.ok(kv.peek(blockKey(net('10.4.0.0/30'))), 'still holds b');
  await ipam.releaseIps(['10.4.0.2']);
  assert.is(kv.peek(blockKey(net('10.4.0.0/30'))), undefined, 'deleted once empty');
  assert.equal(kv.keys('/calico/ipam/v2/'), []);
});

test('assignIp: a given address, claiming its block; conflicts and strict affinity refused', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.5.0.0/24' }], nodes: ['node1', 'node2'] });
  const ipam = seq(kv);
  await ipam.assignIp({ ip: '10.5.0.70', handleId: 'tunnel-node1', attrs: { node: 'node1', type: 'vxlanTunnelAddress' }, node: 'node1' });
  assert.equal(await ipam.blocksOf('node1'), [{ cidr: '10.5.0.64/26', state: 'confirmed', exists: true, size: 64, inUse: 1, free: 63 }]);
  assert.equal(blockOf(kv, '10.5.0.64/26').unallocated!.slice(0, 8), [0, 1, 2, 3, 4, 5, 7, 8]);
  try {
    await ipam.assignIp({ ip: '10.5.0.70', handleId: 'other', node: 'node1' });
    assert.unreachable('double assignment');
  } catch (e) {
    assert.match((e as Error).message, 'address 10.5.0.70 is already assigned in block 10.5.0.64/26');
  }
  assert.is(kv.peek(handleKey('other')), undefined);
  // Non-strict: node2 may take an address in node1's block.
  await ipam.assignIp({ ip: '10.5.0.71', handleId: 'n2', attrs: { node: 'node2' }, node: 'node2' });
  kv.put(IPAM_CONFIG_KEY, '{"strict_affinity":true,"auto_allocate_blocks":true}');
  try {
    await ipam.assignIp({ ip: '10.5.0.72', handleId: 'n2b', node: 'node2' });
    assert.unreachable('strict');
  } catch (e) {
    assert.match((e as Error).message, 'cannot assign 10.5.0.72 to node node2: block 10.5.0.64/26 is affine to host:node1 and strict_affinity is set');
  }
  try {
    await ipam.assignIp({ ip: '10.6.0.1', handleId: 'x', node: 'node1' });
    assert.unreachable('outside pools');
  } catch (e) {
    assert.match((e as Error).message, '10.6.0.1 is not in an enabled IP pool');
  }
  await assertClean(ipam, 'after assignIp');
});

test('a pending affinity left behind (crash between affinity and block) is completed on next use', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.7.0.0/24' }], nodes: ['node1'] });
  kv.put(affinityKey('node1', net('10.7.0.128/26')), '{"state":"pending","deleted":false}');
  const ipam = seq(kv);
  assert.equal((await ipam.check()).map((p) => p.kind), ['pending-affinity']);
  assert.equal((await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h' })).ips, ['10.7.0.128']);
  assert.is(kv.peek(affinityKey('node1', net('10.7.0.128/26'))), '{"state":"confirmed","deleted":false}');
  await assertClean(ipam, 'after completing the claim');
});

test('an affinity stored with an empty value (before affinities had values) is confirmed, as libcalico-go reads it', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.7.0.0/24' }], nodes: ['node1'] });
  const cidr = net('10.7.0.64/26');
  kv.put(blockKey(cidr), AllocationBlock.create(cidr, 'host:node1', 1n, null).encode());
  kv.put(affinityKey('node1', cidr), '');
  const ipam = seq(kv);
  await assertClean(ipam, 'an empty affinity value');
  assert.equal((await ipam.routeInputs()).affinities, [{ node: 'node1', cidr: '10.7.0.64/26', state: '' }]);
  // The node's own block is used first, and the affinity is left as it is.
  assert.equal((await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h' })).ips, ['10.7.0.64']);
  assert.is(kv.peek(affinityKey('node1', cidr)), '');
  assert.equal(blockAffinityFromKv(affinityKey('node1', cidr), '').spec, { node: 'node1', cidr: '10.7.0.64/26', state: 'confirmed', deleted: 'false' });
});

test('check() finds planted leaks and orphans', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.8.0.0/24', spec: { blockSize: 28 } }], nodes: ['node1', 'node2'] });
  const ipam = seq(kv);
  await ipam.autoAssign({ node: 'node1', count: 2, handleId: 'leaked', attrs: attrs('node1') });
  await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'miscounted', attrs: attrs('node1') });
  await ipam.autoAssign({ node: 'node2', count: 1, handleId: 'fine', attrs: attrs('node2') });
  await assertClean(ipam, 'before planting');
  // 1. an address whose handle key is gone
  await kv.delete(handleKey('leaked'));
  // 2. a handle whose count disagrees
  kv.put(handleKey('miscounted'), '{"block":{"10.8.0.0/28":5},"deleted":false}');
  // 3. a handle pointing at a block that does not exist
  kv.put(handleKey('ghost'), '{"block":{"10.8.0.240/28":1},"deleted":false}');
  // 4. node2 claims node1's block by affinity key alone
  kv.put(affinityKey('node2', net('10.8.0.0/28')), '{"state":"confirmed","deleted":false}');
  // 5. an empty block with no affinity
  kv.put(blockKey(net('10.8.0.32/28')), AllocationBlock.create(net('10.8.0.32/28'), null, 1n, null).encode());
  // 6. a corrupt block: a free ordinal listed twice
  const corrupt = blockOf(kv, '10.8.0.16/28');
  corrupt.unallocated!.push(5);
  kv.put(blockKey(net('10.8.0.16/28')), corrupt.encode());
  // 7. a block outside every pool, affine to a node without the affinity key
  kv.put(blockKey(net('10.9.0.0/28')), AllocationBlock.create(net('10.9.0.0/28'), 'host:node3', 1n, null).encode());
  const problems = await ipam.check();
  const summary = problems.map((p) => `${p.kind} ${p.key}`).sort();
  assert.equal(summary, [
    'address-without-handle /calico/ipam/v2/assignment/ipv4/block/10.8.0.0-28',
    'affinity-mismatch /calico/ipam/v2/assignment/ipv4/block/10.9.0.0-28',
    'affinity-mismatch /calico/ipam/v2/host/node2/ipv4/block/10.8.0.0-28',
    'bad-block /calico/ipam/v2/assignment/ipv4/block/10.8.0.16-28',
    'block-outside-pools /calico/ipam/v2/assignment/ipv4/block/10.9.0.0-28',
    'empty-non-affine-block /calico/ipam/v2/assignment/ipv4/block/10.8.0.32-28',
    'handle-count-mismatch /calico/ipam/v2/handle/miscounted',
    'handle-missing-block /calico/ipam/v2/handle/ghost',
  ]);
  const leak = problems.find((p) => p.kind === 'address-without-handle')!;
  assert.equal(leak.ips, ['10.8.0.0', '10.8.0.1']);
  assert.is(leak.handle, 'leaked');
  assert.match(problems.find((p) => p.kind === 'handle-count-mismatch')!.message, 'handle miscounted counts 5 address(es) in block 10.8.0.0/28 but the block holds 1');
  assert.match(problems.find((p) => p.kind === 'bad-block')!.message, 'block 10.8.0.16/28: ordinal 5 is listed twice in unallocated');
});

test('show(): per pool and per block totals, orphaned blocks last', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.9.0.0/24', spec: { blockSize: 28 } }, { name: 'q', cidr: '10.10.0.0/24', spec: { disabled: true } }], nodes: ['node1'] });
  const ipam = seq(kv);
  await ipam.autoAssign({ node: 'node1', count: 20, handleId: 'h', attrs: attrs('node1') });
  kv.put(blockKey(net('10.99.0.0/30')), AllocationBlock.create(net('10.99.0.0/30'), null, 1n, null).encode());
  assert.equal(await ipam.show(), [
    { name: 'p', cidr: '10.9.0.0/24', disabled: false, size: 256, inUse: 20, free: 236, blocks: [
      { cidr: '10.9.0.0/28', affinity: 'host:node1', size: 16, inUse: 16, free: 0, borrowed: 0 },
      { cidr: '10.9.0.16/28', affinity: 'host:node1', size: 16, inUse: 4, free: 12, borrowed: 0 },
    ] },
    { name: 'q', cidr: '10.10.0.0/24', disabled: true, size: 256, inUse: 0, free: 256, blocks: [] },
    { name: 'orphaned allocation blocks', cidr: '0.0.0.0/0', disabled: false, size: 4, inUse: 0, free: 4, blocks: [
      { cidr: '10.99.0.0/30', affinity: null, size: 4, inUse: 0, free: 4, borrowed: 0 },
    ] },
  ]);
});

test('bad input refused before touching the store', async () => {
  const kv = new MemKv();
  const ipam = seq(kv);
  for (const [req, msg] of [
    [{ node: 'a/b', count: 1, handleId: 'h' }, /invalid node name "a\/b"/],
    [{ node: 'n', count: 1, handleId: 'x/y' }, /invalid handle ID "x\/y"/],
    [{ node: 'n', count: -1, handleId: 'h' }, /count must be a non-negative integer/],
  ] as const) {
    try {
      await ipam.autoAssign(req);
      assert.unreachable('accepted');
    } catch (e) {
      assert.match((e as Error).message, msg);
    }
  }
  assert.is(kv.currentRevision, 0);
});

test('counts kept by handles equal the addresses in blocks (helper self-check)', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.11.0.0/24', spec: { blockSize: 29 } }], nodes: ['node1'] });
  const ipam = seq(kv);
  for (let i = 0; i < 5; i++) await ipam.autoAssign({ node: 'node1', count: 3, handleId: `h${i}` });
  const { fromHandles, fromBlocks } = await handleCountsFromStore(kv);
  assert.equal(fromHandles, fromBlocks);
  assert.is([...fromBlocks.values()].reduce((a, b) => a + b, 0), 15);
});

test.run();
