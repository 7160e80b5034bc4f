// `podway delete node|ippool` with what hangs off them, as calicoctl (libcalico-go's clientv3 in
// etcd mode) does, on an embedded store and on a real etcd: a Node's endpoints, their addresses,
// its tunnel address (one borrowed from another node's block included), its block affinities (empty
// blocks deleted), its BGPPeers and node.NAME configurations go with it, and nothing of the other
// node's; an IPPool is disabled, its block affinities released (empty blocks deleted, blocks with
// addresses kept affinity-less until they are released), then deleted, another pool untouched.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { KvStore } from '../../src/control/kv/kv';
import { formatIp, parseNet } from '../../src/control/ipam/net';
import { Ipam } from '../../src/control/ipam/ipam';
import { AllocationBlock } from '../../src/control/ipam/block';
import { BLOCK_PREFIX, HOST_AFFINITY_PREFIX, parseAffinityKey, parseBlockKey } from '../../src/control/ipam/keys';
import { deleteNode } from '../../src/control/resource-delete';
import { HookedKv } from '../helpers/kv-hook';
import { registerNode, updateNodeSpec } from '../../src/control/node-registration';
import { reconcileTunnelAddrs, tunnelKind } from '../../src/control/tunnel-addrs';
import { applyResource, getResource } from '../../src/control/v3-store';
import { kindInfo } from '../../src/control/calico-kinds';
import { podway, ok, tempDir, Target, embeddedTarget, etcdTarget, stopEtcd } from './cli-kit';
import { datastoreIdentity, defaultModelCachePath, nodeIdentityOf, writeModelCache } from '../../src/cli/model-cache';
import { parseDatastoreSpec } from '../../src/control/kv/spec';
import { clusterModel } from '../dataplane/helpers';

const RES = '/calico/resources/v3/projectcalico.org/';

function pool(name: string, cidr: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec: { cidr, blockSize: 26, vxlanMode: 'Always', ...extra } };
}

async function wep(kv: KvStore, node: string, pod: string, ip: string): Promise<void> {
  await applyResource(kv, {
    apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint',
    metadata: { name: `${node.replace(/-/g, '--')}-k8s-${pod.replace(/-/g, '--')}-eth0`, namespace: 'default' }, // Calico's name: a '-' in a field doubled
    spec: { orchestrator: 'k8s', node, pod, endpoint: 'eth0', containerID: `c-${pod}`, ipNetworks: [`${ip}/32`], profiles: ['kns.default'], interfaceName: `cali${pod}` },
  });
}

/** Affinities as "node cidr". */
async function affinities(kv: KvStore): Promise<string[]> {
  return (await kv.list(HOST_AFFINITY_PREFIX)).entries.map((e) => parseAffinityKey(e.key)).filter((a) => a !== null).map((a) => `${a!.node} ${a!.cidr.text}`).sort();
}

/** Blocks as cidr -> { affinity, in use }. */
async function blocks(kv: KvStore): Promise<Map<string, { affinity: string | null; inUse: number }>> {
  const out = new Map<string, { affinity: string | null; inUse: number }>();
  for (const e of (await kv.list('/calico/ipam/v2/assignment/')).entries) {
    const b = AllocationBlock.decode(e.value, parseBlockKey(e.key) ?? undefined);
    out.set(parseBlockKey(e.key)!.text, { affinity: b.affinity, inUse: b.numInUse() });
  }
  return out;
}

function cliSuite(target: Target) {
  const test = suite(`podway delete node|ippool on ${target.name}`);
  let spec = '';
  let kv: KvStore;
  test.before.each(async () => {
    ({ spec, kv } = await target.open());
  });
  test.after.each(async () => {
    await kv.close();
  });
  const ds = () => ['--datastore', spec];

  test('delete node: its endpoints, their addresses, its tunnel address (borrowed too), affinities, peers and node configs go; the other node keeps its own', async () => {
    await applyResource(kv, pool('p', '10.60.0.0/24'));
    await registerNode(kv, { name: 'node-a', ipv4Address: '10.99.0.1/24' });
    await registerNode(kv, { name: 'node-b', ipv4Address: '10.99.0.2/24' });
    const ipam = new Ipam(kv);
    // node-b: a pod (its block) and its tunnel address
    const b1 = (await ipam.autoAssign({ node: 'node-b', count: 1, handleId: 'podway.b1', attrs: { node: 'node-b' } })).ips[0]!;
    await wep(kv, 'node-b', 'b1', b1);
    const bTunnel = (await reconcileTunnelAddrs(kv, 'node-b', { assignV6: false })).v4.addr!;
    // node-a: two pods (its own block), and a tunnel address borrowed out of node-b's block
    const a1 = (await ipam.autoAssign({ node: 'node-a', count: 1, handleId: 'podway.a1', attrs: { node: 'node-a' } })).ips[0]!;
    const a2 = (await ipam.autoAssign({ node: 'node-a', count: 1, handleId: 'podway.a2', attrs: { node: 'node-a' } })).ips[0]!;
    await wep(kv, 'node-a', 'a1', a1);
    await wep(kv, 'node-a', 'a2', a2);
    const bBlock = [...(await blocks(kv)).entries()].find(([, v]) => v.affinity === 'host:node-b')![0];
    const borrowed = formatIp(4, parseNet(bBlock)!.base + 50n);
    await ipam.assignIp({ ip: borrowed, handleId: tunnelKind('vxlan').handle('node-a'), attrs: { node: 'node-a', type: 'vxlanTunnelAddress' }, node: 'node-a' });
    await updateNodeSpec(kv, 'node-a', (s) => { s.ipv4VXLANTunnelAddr = borrowed; });
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'a-tor' }, spec: { node: 'node-a', peerIP: '10.99.0.254', asNumber: 64600 } });
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'global' }, spec: { peerIP: '10.99.0.253', asNumber: 64601 } });
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'node.node-a' }, spec: {} });
    const aBlock = [...(await blocks(kv)).entries()].find(([, v]) => v.affinity === 'host:node-a')![0];
    assert.equal(await affinities(kv), [`node-a ${aBlock}`, `node-b ${bBlock}`].sort());

    const r = await podway(['delete', 'node', 'node-a', ...ds()]);
    assert.is(r.code, 0, r.err);
    assert.is(r.out, "Successfully deleted 1 'Node' resource(s)\n");
    assert.match(r.err, 'released 3 address(es)');
    assert.match(r.err, 'deleted 2 WorkloadEndpoint(s)');
    assert.match(r.err, `block(s) (${aBlock}`);
    // it had endpoints: it looked alive, and what becomes of its pods is said
    assert.match(r.err, /warning: node node-a looked alive: it had 2 WorkloadEndpoint\(s\) \([^)]+\)\. Pods still running there keep their addresses, which IPAM now has free/);

    assert.not.ok(await kv.get(`${RES}nodes/node-a`), 'Node gone');
    assert.ok(await kv.get(`${RES}nodes/node-b`));
    const weps = (await kv.list(`${RES}workloadendpoints/`)).entries.map((e) => JSON.parse(e.value).spec.node);
    assert.equal(weps, ['node-b']);
    assert.equal(await affinities(kv), [`node-b ${bBlock}`], 'node-a\'s affinity gone, node-b\'s kept');
    const bs = await blocks(kv);
    assert.not.ok(bs.has(aBlock), 'node-a\'s block, empty now, deleted');
    assert.equal(bs.get(bBlock), { affinity: 'host:node-b', inUse: 2 }, 'node-b\'s block: its pod and its tunnel address, the borrowed one released');
    for (const ip of [a1, a2, borrowed]) assert.is(await ipam.allocationOf(ip), null, `${ip} released`);
    assert.ok(await ipam.allocationOf(b1));
    assert.ok(await ipam.allocationOf(bTunnel));
    const handles = (await kv.list('/calico/ipam/v2/handle/')).entries.map((e) => e.key.split('/').pop()).sort();
    assert.equal(handles, ['podway.b1', tunnelKind('vxlan').handle('node-b')].sort());
    assert.not.ok(await getResource(kv, kindInfo('BGPPeer')!, 'a-tor'));
    assert.ok(await getResource(kv, kindInfo('BGPPeer')!, 'global'));
    assert.not.ok(await getResource(kv, kindInfo('FelixConfiguration')!, 'node.node-a'));
    assert.equal(await ipam.check(), []);

    const again = await podway(['delete', 'node', 'node-a', ...ds()]);
    assert.is.not(again.code, 0);
    assert.match(again.err, 'resource does not exist: Node(node-a)');
    await ok(['delete', 'node', 'node-a', '--skip-not-exists', ...ds()]);
  });

  test('delete node on its own host: its model cache from this datastore removed (said), so a start does not forward on the deleted Node; one of another datastore left; none on an embedded store', async () => {
    const node = `mend23-cache-${process.pid}`;
    const file = defaultModelCachePath(node);
    const id = datastoreIdentity(parseDatastoreSpec(spec, {}));
    try {
      await registerNode(kv, { name: node, ipv4Address: '10.99.0.1/24' });
      const identity = nodeIdentityOf((await kv.get(`${RES}nodes/${node}`))!);
      const appliedAt = new Date();
      const m = clusterModel();
      const model = { ...m, node: { ...m.node, name: node } };
      // another datastore's cache of a node of that name: not this delete's
      await writeModelCache(file, node, 'etcd:http://192.0.2.1:2379', model, appliedAt, identity);
      let r = await podway(['delete', 'node', node, ...ds()]);
      assert.is(r.code, 0, r.err);
      assert.not.match(r.err, 'model cache');
      assert.ok(existsSync(file), 'another datastore\'s cache kept');
      if (id === null) return; // an embedded store: podway run keeps no cache for it
      await registerNode(kv, { name: node, ipv4Address: '10.99.0.1/24' });
      const again = nodeIdentityOf((await kv.get(`${RES}nodes/${node}`))!);
      await writeModelCache(file, node, id, model, appliedAt, again);
      r = await podway(['delete', 'node', node, ...ds()]);
      assert.is(r.code, 0, r.err);
      assert.match(r.err, `removed node ${node}'s model cache ${file} (written for Node ${node} uid ${again.uid}, created at revision ${again.createRevision}, its model applied at ${appliedAt.toISOString()}): a start of ${node} on this host waits for the datastore instead of forwarding on it\n`);
      assert.not.ok(existsSync(file), 'the cache removed');
    } finally {
      rmSync(file, { force: true });
    }
  });

  test('delete node: a stale endpoint\'s or tunnel field\'s address, now held by another node\'s pod, survives and is listed', async () => {
    await applyResource(kv, pool('p', '10.64.0.0/24'));
    await registerNode(kv, { name: 'node-a', ipv4Address: '10.99.0.1/24' });
    await registerNode(kv, { name: 'node-b', ipv4Address: '10.99.0.2/24' });
    const ipam = new Ipam(kv);
    // node-a's pod a1 (CNI-named handle "<network>.<containerID>", no node attribute), and its pod
    // a2 whose address was force-released and then given to node-b's pod b2: a2's endpoint is stale.
    const a1 = (await ipam.autoAssign({ node: 'node-a', count: 1, handleId: 'podway.c-a1', attrs: {} })).ips[0]!;
    await wep(kv, 'node-a', 'a1', a1);
    const a2 = (await ipam.autoAssign({ node: 'node-a', count: 1, handleId: 'podway.c-a2', attrs: { node: 'node-a' } })).ips[0]!;
    await wep(kv, 'node-a', 'a2', a2);
    await ipam.releaseIps([a2]);
    await ipam.assignIp({ ip: a2, handleId: 'podway.c-b2', attrs: { node: 'node-b' }, node: 'node-b' });
    await wep(kv, 'node-b', 'b2', a2);
    // node-a's tunnel field names an address node-b's tunnel handle holds now.
    const bTunnel = (await reconcileTunnelAddrs(kv, 'node-b', { assignV6: false })).v4.addr!;
    await updateNodeSpec(kv, 'node-a', (s) => { s.ipv4VXLANTunnelAddr = bTunnel; });

    const r = await podway(['delete', 'node', 'node-a', ...ds()]);
    assert.is(r.code, 0, r.err);
    assert.match(r.err, 'released 1 address(es)');
    assert.match(r.err, `left 2 address(es) held by others now (${a2} (held by podway.c-b2 on node node-b), ${bTunnel} (tunnel field; held by ${tunnelKind('vxlan').handle('node-b')} on node node-b))`);
    assert.match(r.err, 'deleted 2 WorkloadEndpoint(s)');
    assert.is(await ipam.allocationOf(a1), null);
    assert.is((await ipam.allocationOf(a2))?.handleId, 'podway.c-b2', 'node-b\'s pod keeps its address');
    assert.is((await ipam.allocationOf(bTunnel))?.handleId, tunnelKind('vxlan').handle('node-b'), 'node-b keeps its tunnel address');
    const weps = (await kv.list(`${RES}workloadendpoints/`)).entries.map((e) => JSON.parse(e.value).metadata.name);
    assert.equal(weps, ['node--b-k8s-b2-eth0']);
    assert.equal(await ipam.check(), []);
  });

  test('delete node: an address reassigned between the ownership check and the release is left to its new holder', async () => {
    await applyResource(kv, pool('p', '10.66.0.0/24'));
    await registerNode(kv, { name: 'node-a', ipv4Address: '10.99.0.1/24' });
    await registerNode(kv, { name: 'node-b', ipv4Address: '10.99.0.2/24' });
    const ipam = new Ipam(kv);
    const a1 = (await ipam.autoAssign({ node: 'node-a', count: 1, handleId: 'podway.c-a1', attrs: { node: 'node-a' } })).ips[0]!;
    await wep(kv, 'node-a', 'a1', a1);
    // Just before delete node writes the block that frees a1 (its check having found a1 still
    // node-a's), another process frees a1 and gives it to node-b's pod b1: the write the delete
    // then sends is based on a stale read.
    const hooked = new HookedKv(kv);
    hooked.beforeWrite((op, key) => op !== 'create' && key.startsWith(BLOCK_PREFIX), async () => {
      await ipam.releaseIps([a1]);
      await ipam.assignIp({ ip: a1, handleId: 'podway.c-b1', attrs: { node: 'node-b' }, node: 'node-b' });
    });
    const report = await deleteNode(hooked, 'node-a');
    assert.is(hooked.fired, 1, 'the reassignment ran between check and release');
    assert.is((await ipam.allocationOf(a1))?.handleId, 'podway.c-b1', 'node-b\'s pod keeps the address');
    assert.equal(report.releasedIps, []);
    assert.equal(report.skippedIps, [`${a1} (held by podway.c-b1 on node node-b)`]);
    assert.not.ok(await kv.get(`${RES}nodes/node-a`), 'Node gone');
    assert.equal(await ipam.check(), []);
  });

  test('a delete that fails part way says what it did: node (endpoints deleted, addresses released), pool (left disabled)', async () => {
    await applyResource(kv, pool('p', '10.65.0.0/24'));
    await registerNode(kv, { name: 'node-a', ipv4Address: '10.99.0.1/24' });
    const ipam = new Ipam(kv);
    const a1 = (await ipam.autoAssign({ node: 'node-a', count: 1, handleId: 'podway.c-a1', attrs: { node: 'node-a' } })).ips[0]!;
    await wep(kv, 'node-a', 'a1', a1);
    // A real datastore failure: node-a's affinity to a block whose stored value is not a block.
    const bad = [0, 64, 128, 192].map((o) => `10.65.0.${o}-26`).find((k) => !k.startsWith(`10.65.0.${Number(a1.split('.')[3]) & 192}-`))!;
    assert.ok(await kv.create(`/calico/ipam/v2/host/node-a/ipv4/block/${bad}`, '{"state":"confirmed","deleted":false}'));
    assert.ok(await kv.create(`/calico/ipam/v2/assignment/ipv4/block/${bad}`, 'not a block'));

    const r = await podway(['delete', 'node', 'node-a', ...ds()]);
    assert.is.not(r.code, 0, r.err);
    assert.match(r.err, 'delete Node(node-a) stopped part way: deleted 1 WorkloadEndpoint(s), released 1 address(es), released the affinity of');
    assert.match(r.err, 'Node(node-a) not deleted: ');
    assert.ok(await kv.get(`${RES}nodes/node-a`));
    assert.is(await ipam.allocationOf(a1), null);

    const p = await podway(['delete', 'ippool', 'p', ...ds()]);
    assert.is.not(p.code, 0);
    assert.match(p.err, /delete IPPool\(p\) stopped part way: released the affinity of \d+ block\(s\); IPPool\(p\) left disabled: /);
    assert.is(JSON.parse((await kv.get(`${RES}ippools/p`))!.value).spec.disabled, true);
  });

  test('delete ippool: disabled, its affinities released (empty blocks deleted, used ones kept until released), another pool untouched', async () => {
    await applyResource(kv, pool('gone', '10.61.0.0/24'));
    await applyResource(kv, pool('stays', '10.62.0.0/24'));
    await registerNode(kv, { name: 'node-a', ipv4Address: '10.99.0.1/24' });
    const ipam = new Ipam(kv);
    const used = (await ipam.autoAssign({ node: 'node-a', count: 1, handleId: 'podway.u', attrs: { node: 'node-a' }, pools: ['gone'] })).ips[0]!;
    // A second block of node-a in the pool, empty: an address assigned there, then released.
    const usedBlock = [...(await blocks(kv)).keys()][0]!;
    const poolBase = parseNet('10.61.0.0/24')!.base;
    const other = formatIp(4, poolBase + ((parseNet(usedBlock)!.base - poolBase + 64n) % 256n) + 5n);
    await ipam.assignIp({ ip: other, handleId: 'podway.e', attrs: { node: 'node-a' }, node: 'node-a' });
    await ipam.releaseIps([other]);
    const kept = (await ipam.autoAssign({ node: 'node-a', count: 1, handleId: 'podway.k', attrs: { node: 'node-a' }, pools: ['stays'] })).ips[0]!;
    assert.is((await affinities(kv)).length, 3);

    const file = path.join(tempDir(), 'pool.yaml');
    writeFileSync(file, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: gone\nspec:\n  cidr: 10.61.0.0/24\n');
    const r = await podway(['delete', '-f', file, ...ds()]);
    assert.is(r.code, 0, r.err);
    assert.is(r.out, "Successfully deleted 1 'IPPool' resource(s)\n");
    assert.match(r.err, 'released the affinity of 2 block(s)');
    // The address still in use is counted, with what to do (review E, L2).
    assert.match(r.err, /warning: 1 address\(es\) of the deleted pool are still in use .*podway(\.js)? ipam check.*podway(\.js)? ipam release/);

    assert.not.ok(await kv.get(`${RES}ippools/gone`));
    assert.ok(await kv.get(`${RES}ippools/stays`));
    const affs = await affinities(kv);
    assert.is(affs.length, 1);
    assert.match(affs[0]!, /^node-a 10\.62\.0\./, 'the other pool\'s affinity stays');
    const bs = await blocks(kv);
    assert.equal(bs.get(usedBlock), { affinity: null, inUse: 1 }, 'a block with an address stays, affinity-less');
    assert.is([...bs.keys()].filter((c) => c.startsWith('10.61.')).length, 1, 'the empty block is deleted');
    assert.ok(await ipam.allocationOf(kept));
    // The pod goes: its address released, the block (nobody's, empty) with it.
    assert.equal((await ipam.releaseByHandle('podway.u')).released, [used]);
    assert.is([...(await blocks(kv)).keys()].filter((c) => c.startsWith('10.61.')).length, 0);
  });

  test('delete ippool refuses a stale resourceVersion and leaves the pool enabled with its affinities', async () => {
    await applyResource(kv, pool('p', '10.63.0.0/24'));
    await registerNode(kv, { name: 'node-a', ipv4Address: '10.99.0.1/24' });
    await new Ipam(kv).autoAssign({ node: 'node-a', count: 1, handleId: 'podway.x', attrs: { node: 'node-a' } });
    const rev = (await kv.get(`${RES}ippools/p`))!.modRevision;
    const file = path.join(tempDir(), 'pool.yaml');
    writeFileSync(file, `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\n  resourceVersion: "${rev + 1000}"\nspec:\n  cidr: 10.63.0.0/24\n`);
    const r = await podway(['delete', '-f', file, ...ds()]);
    assert.is.not(r.code, 0);
    assert.match(r.err, 'delete conflict');
    assert.is(JSON.parse((await kv.get(`${RES}ippools/p`))!.value).spec.disabled, undefined, 'still enabled');
    assert.is((await affinities(kv)).length, 1);
  });

  return test;
}

cliSuite(embeddedTarget).run();

const etcdSuite = cliSuite(etcdTarget);
etcdSuite.after(stopEtcd);
etcdSuite.run();
