// podway's IPAM values against Calico's, field by field and byte for byte. The expected values
// are hand-written fixtures (fixtures/README.md says how each was derived from libcalico-go's
// structs); podway produces its values by running the real Ipam against an in-memory store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AllocationBlock } from '../../../src/control/ipam/block';
import { GoJsonValue, parseGoJson } from '../../../src/control/ipam/gojson';
import { Ipam } from '../../../src/control/ipam/ipam';
import { affinityKey, blockKey, handleKey, IPAM_CONFIG_KEY } from '../../../src/control/ipam/keys';
import { parseNet } from '../../../src/control/ipam/net';
import { decodeIpamConfig, decodeNodeLabels, decodePool, encodeAffinity, encodeHandle } from '../../../src/control/ipam/records';
import { FIXED_NOW, fixture, setup } from './helpers';
import { MemKv } from './mem-kv';

const net = (t: string) => parseNet(t)!;

/** Compares two JSON documents field by field (top level), then byte for byte. */
function assertSameValue(actual: string | undefined, expected: string, what: string): void {
  assert.ok(actual !== undefined, `${what}: key missing`);
  const a = parseGoJson(actual!) as Record<string, GoJsonValue>;
  const e = parseGoJson(expected) as Record<string, GoJsonValue>;
  assert.equal(Object.keys(a), Object.keys(e), `${what}: field names and order`);
  for (const k of Object.keys(e)) assert.equal(a[k], e[k], `${what}: field ${k}`);
  assert.is(actual, expected, `${what}: bytes`);
}

const attrs = (pod: string) => ({ node: 'node1', pod, namespace: 'ns', timestamp: '2024-05-01 12:00:00.123456789 +0000 UTC' });

test('block fixtures decode and re-encode to the same bytes', () => {
  for (const name of ['block-new-26.json', 'block-28-assigned.json', 'block-28-released-handle.json', 'block-28-released-ip.json', 'block-borrowed.json']) {
    const text = fixture(name);
    assert.is(AllocationBlock.decode(text).encode(), text, name);
  }
});

test('decoded block fields: sequence numbers past 2^53 exact, nil vs empty kept', () => {
  const b = AllocationBlock.decode(fixture('block-28-assigned.json'), net('10.244.1.0/28'));
  assert.is(b.sequenceNumber, 1714564800000000002n);
  assert.is(b.sequenceNumberForAllocation!.get('2'), 1714564800000000001n);
  assert.is(b.host(), 'node1');
  assert.is(b.numFree(), 13);
  assert.is(b.numInUse(), 3);
  assert.equal(b.attributeOf(2)?.handleId, 'k8s-pod-network.def');
  const fresh = AllocationBlock.decode(fixture('block-new-26.json'));
  assert.is(fresh.attributes, null);
  assert.equal(fresh.sequenceNumberForAllocation, new Map());
  const borrowed = AllocationBlock.decode(fixture('block-borrowed.json'));
  assert.is(borrowed.affinity, null);
  assert.equal(borrowed.attributes, [{ handleId: 'xyz', secondary: null, alternate: null }]);
  assert.throws(() => AllocationBlock.decode(fixture('block-28-assigned.json'), net('10.244.2.0/28')), /differs from the key/);
});

test('sequenceNumberForAllocation keys sorted as Go sorts map keys ("10" before "2")', () => {
  const b = AllocationBlock.create(net('10.244.3.0/28'), 'host:n', 5n, null);
  b.assign(10, 'h', null);
  b.assign(2, 'h', null);
  // Hand-written: what json.Marshal gives for this block (no claim time: omitempty).
  assert.is(b.encode(), '{"cidr":"10.244.3.0/28","affinity":"host:n","allocations":[null,null,0,null,null,null,null,null,null,null,0,null,null,null,null,null],"unallocated":[0,1,3,4,5,6,7,8,9,11,12,13,14,15],"attributes":[{"handle_id":"h"}],"sequenceNumber":5,"sequenceNumberForAllocation":{"10":5,"2":5},"deleted":false}');
});

test('strings escaped as Go escapes them', () => {
  const b = AllocationBlock.create(net('10.244.3.0/30'), 'host:n', 1n, null);
  b.assign(0, 'h', { pod: 'a<b>&"c"\\\n\u2028' });
  assert.match(b.encode(), '"secondary":{"pod":"a\\u003cb\\u003e\\u0026\\"c\\"\\\\\\n\\u2028"}');
  assert.equal(AllocationBlock.decode(b.encode()).attributeOf(0)?.secondary, { pod: 'a<b>&"c"\\\n\u2028' });
});

test('Ipam writes Calico-shaped block, affinity and handle values through assign and release', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.244.1.0/24', spec: { blockSize: 28 } }], nodes: ['node1'] });
  const ipam = new Ipam(kv, { now: () => FIXED_NOW, blockSearch: 'sequential' });
  // Record every value the block key takes, to see the freshly created one too.
  const blockValues: string[] = [];
  const affinityValues: string[] = [];
  const bk = blockKey(net('10.244.1.0/28'));
  const ak = affinityKey('node1', net('10.244.1.0/28'));
  kv.watch('/calico/ipam/', 0, {
    onEvents: (evs) => {
      for (const ev of evs) if (ev.type === 'put' && ev.entry.key === bk) blockValues.push(ev.entry.value);
      for (const ev of evs) if (ev.type === 'put' && ev.entry.key === ak) affinityValues.push(ev.entry.value);
    },
    onResync: () => assert.unreachable('no resync'),
  });

  const r1 = await ipam.autoAssign({ node: 'node1', count: 2, handleId: 'k8s-pod-network.abc', attrs: attrs('p') });
  assert.equal(r1, { ips: ['10.244.1.0', '10.244.1.1'] });
  // As Calico: created pending, re-marked pending by getBlockFromAffinity (no block yet), then
  // confirmed once the block exists.
  assert.equal(affinityValues, [fixture('affinity-pending.json'), fixture('affinity-pending.json'), fixture('affinity-confirmed.json')], 'pending, then confirmed');
  assertSameValue(kv.peek(handleKey('k8s-pod-network.abc')), fixture('handle-abc.json'), 'handle abc');
  const r2 = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'k8s-pod-network.def', attrs: attrs('q') });
  assert.equal(r2, { ips: ['10.244.1.2'] });
  assertSameValue(kv.peek(bk), fixture('block-28-assigned.json'), 'block after two assignments');
  assertSameValue(kv.peek(ak), fixture('affinity-confirmed.json'), 'affinity');
  // The block as created (before its first assignment) has the fresh-block shape.
  const created = parseGoJson(blockValues[0]) as Record<string, GoJsonValue>;
  assert.equal(created.attributes, null);
  assert.equal(created.sequenceNumberForAllocation, {});
  assert.is(created.sequenceNumber, 1714564800000000000n);

  assert.equal(await ipam.releaseByHandle('k8s-pod-network.abc'), { found: true, released: ['10.244.1.0', '10.244.1.1'], dropped: [] });
  assertSameValue(kv.peek(bk), fixture('block-28-released-handle.json'), 'block after releaseByHandle');
  assert.is(kv.peek(handleKey('k8s-pod-network.abc')), undefined, 'handle abc deleted');

  assert.equal(await ipam.releaseIps(['10.244.1.2']), { released: ['10.244.1.2'], notAllocated: [] });
  assertSameValue(kv.peek(bk), fixture('block-28-released-ip.json'), 'block after releaseIps');
  assert.is(kv.peek(handleKey('k8s-pod-network.def')), undefined, 'handle def deleted');
  assertSameValue(kv.peek(ak), fixture('affinity-confirmed.json'), 'affinity kept');
});

test('fields of a block podway does not use (Calico\'s strictAffinity, a later field) survive a podway assign and release', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.244.1.0/24', spec: { blockSize: 28 } }], nodes: ['node1'] });
  const ipam = new Ipam(kv, { now: () => FIXED_NOW, blockSearch: 'sequential' });
  const bk = blockKey(net('10.244.1.0/28'));
  const calico = fixture('block-28-assigned.json').replace(/}$/, ',"strictAffinity":false,"futureField":{"b":[1,18446744073709551615],"a":"x"}}');
  kv.put(bk, calico);
  await ipam.assignIp({ ip: '10.244.1.5', handleId: 'h5', attrs: { node: 'node1' }, node: 'node1' });
  const after = parseGoJson(kv.peek(bk)!) as Record<string, GoJsonValue>;
  assert.is(after.strictAffinity, false);
  assert.equal(after.futureField, { b: [1, 18446744073709551615n], a: 'x' });
  assert.ok(kv.peek(bk)!.endsWith(',"strictAffinity":false,"futureField":{"b":[1,18446744073709551615],"a":"x"}}'), kv.peek(bk));
  await ipam.releaseIps(['10.244.1.5']);
  assert.ok(kv.peek(bk)!.endsWith(',"strictAffinity":false,"futureField":{"b":[1,18446744073709551615],"a":"x"}}'), `after release: ${kv.peek(bk)}`);
});

test('a freshly claimed /26 is exactly Calico\'s new block', async () => {
  const kv = new MemKv();
  await setup(kv, { pools: [{ name: 'p', cidr: '10.244.1.0/24' }], nodes: ['node1'] });
  const ipam = new Ipam(kv, { now: () => FIXED_NOW, blockSearch: 'sequential' });
  const bk = blockKey(net('10.244.1.0/26'));
  let first: string | undefined;
  kv.watch(bk, 0, { onEvents: (evs) => { for (const ev of evs) if (ev.type === 'put') first ??= ev.entry.value; }, onResync: () => {} });
  await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h1', attrs: {} });
  assertSameValue(first, fixture('block-new-26.json'), 'new /26 block');
});

test('handle and affinity encoders', () => {
  assert.is(encodeHandle(new Map([['10.244.9.0/28', 3], ['10.244.1.0/28', 1]])), fixture('handle-two-blocks.json'));
  assert.is(encodeAffinity('pending'), fixture('affinity-pending.json'));
  assert.is(encodeAffinity('confirmed'), fixture('affinity-confirmed.json'));
  assert.is(encodeAffinity('pendingDeletion'), '{"state":"pendingDeletion","deleted":false}');
});

test('IPAM config read as Go reads it; absent key gives Calico\'s defaults', async () => {
  assert.equal(decodeIpamConfig(fixture('config-default.json')), { strictAffinity: false, autoAllocateBlocks: true, maxBlocksPerHost: 0 });
  assert.equal(decodeIpamConfig('{"strict_affinity":true,"maxBlocksPerHost":4}'), { strictAffinity: true, autoAllocateBlocks: false, maxBlocksPerHost: 4 });
  const kv = new MemKv();
  const ipam = new Ipam(kv);
  assert.equal(await ipam.getConfig(), { strictAffinity: false, autoAllocateBlocks: true, maxBlocksPerHost: 0 });
  kv.put(IPAM_CONFIG_KEY, '{"strict_affinity":"yes"}');
  try {
    await ipam.getConfig();
    assert.unreachable('bad config accepted');
  } catch (e) {
    assert.match((e as Error).message, /\/calico\/ipam\/v2\/config: IPAM config strict_affinity is not a boolean/);
  }
});

test('v3 IPPool and Node values as Calico stores them', () => {
  const pool = decodePool(fixture('ippool-default.json'), 'k');
  assert.is(pool.name, 'default-ipv4-ippool');
  assert.is(pool.cidr.text, '10.244.0.0/16');
  assert.is(pool.blockSize, 26);
  assert.is(pool.disabled, false);
  assert.is(pool.nodeSelector.text, 'all()');
  assert.equal(decodeNodeLabels(fixture('node-node1.json'), 'k'), { 'kubernetes.io/hostname': 'node1', 'kubernetes.io/os': 'linux', zone: 'a' });
  // a malformed stored selector (apply refuses one): loaded, selecting no node, saying why
  const bad = decodePool('{"metadata":{"name":"x"},"spec":{"cidr":"10.0.0.0/8","nodeSelector":"zone = 1"}}', 'KEY');
  assert.match(bad.selectorError ?? '', /KEY: spec.nodeSelector: .*position 5.*the pool selects no node/);
  assert.is(bad.nodeSelector.matches({ zone: '1' }), false);
  assert.is(bad.nodeSelector.matches({}), false);
  assert.is(pool.selectorError, undefined);
});

test.run();
