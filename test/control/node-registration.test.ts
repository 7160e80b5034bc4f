// registerNode and markDatastoreReady on the embedded store: Calico's Node shape, others' fields
// kept, nothing written when nothing changed, two writers racing both land (CAS), ClusterInformation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FileKv } from '../../src/control/kv/file-kv';
import { CLUSTER_INFORMATION_KEY, markDatastoreReady, NodeAddressConflictError, registerNode } from '../../src/control/node-registration';
import { applyResource } from '../../src/control/v3-store';
import { KvDatastore } from '../../src/control/kv-datastore';

const NODE1 = '/calico/resources/v3/projectcalico.org/nodes/node1';
const dirs: string[] = [];
process.on('exit', () => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
function store(): { kv: FileKv; dir: string } {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'podway-reg-')), 'store');
  dirs.push(path.dirname(dir));
  return { kv: new FileKv({ dir }), dir };
}

test('registerNode creates the Node as Calico stores it, then writes nothing when nothing changed', async () => {
  const { kv } = store();
  try {
    const r = await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', vxlanTunnelAddr: '10.244.0.0', labels: { zone: 'a', 'kubernetes.io/hostname': 'node1' } });
    assert.is(r.action, 'created');
    const fixture = JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'calico-v3', 'node-node1.json'), 'utf8'));
    const stored = JSON.parse(r.entry.value);
    // The fixture has asNumber (set by calicoctl in the CLI test); registration sets no AS.
    delete fixture.spec.bgp.asNumber;
    assert.equal(Object.keys(stored), Object.keys(fixture));
    assert.equal(Object.keys(stored.metadata), Object.keys(fixture.metadata));
    assert.equal(stored.metadata.labels, fixture.metadata.labels);
    assert.equal(stored.spec, fixture.spec);
    assert.match(stored.metadata.uid, /^[0-9a-f-]{36}$/);
    assert.match(stored.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const again = await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', vxlanTunnelAddr: '10.244.0.0', labels: { zone: 'a' } });
    assert.is(again.action, 'unchanged');
    assert.is(again.entry.modRevision, r.entry.modRevision);
  } finally {
    await kv.close();
  }
});

test('registerNode keeps what others set (labels, asNumber, orchRefs, uid) and updates its own fields', async () => {
  const { kv } = store();
  try {
    const first = await applyResource(kv, {
      apiVersion: 'projectcalico.org/v3', kind: 'Node',
      metadata: { name: 'node1', labels: { rack: 'r1' }, annotations: { note: 'x' } },
      spec: { bgp: { ipv4Address: '10.99.0.7/24', asNumber: 64600 }, orchRefs: [{ nodeName: 'node1', orchestrator: 'k8s' }] },
    });
    const r = await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', vxlanTunnelAddr: '10.244.0.0', vtepMac: '66:0A:1B:2C:3D:4E', labels: { zone: 'a' } });
    assert.is(r.action, 'updated');
    const v = JSON.parse(r.entry.value);
    assert.equal(v.metadata.labels, { rack: 'r1', zone: 'a' });
    assert.equal(v.metadata.annotations, { note: 'x' });
    assert.is(v.metadata.uid, (first.resource.object.metadata as { uid: string }).uid);
    assert.equal(v.spec, {
      bgp: { asNumber: 64600, ipv4Address: '10.99.0.1/24' },
      ipv4VXLANTunnelAddr: '10.244.0.0', vxlanTunnelMACAddr: '66:0a:1b:2c:3d:4e',
      orchRefs: [{ nodeName: 'node1', orchestrator: 'k8s' }],
    });
    assert.not.ok('resourceVersion' in v.metadata);
  } finally {
    await kv.close();
  }
});

test('two registrations racing from two processes\' stores both land (compare-and-swap retries)', async () => {
  const { kv, dir } = store();
  const other = new FileKv({ dir });
  try {
    await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24' });
    const results = await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', labels: { [`a${i}`]: 'x' } })),
      ...Array.from({ length: 5 }, (_, i) => registerNode(other, { name: 'node1', ipv4Address: '10.99.0.1/24', labels: { [`b${i}`]: 'y' } })),
    ]);
    assert.ok(results.every((r) => r.action === 'updated'), JSON.stringify(results.map((r) => r.action)));
    const v = JSON.parse((await kv.get(NODE1))!.value);
    assert.equal(Object.keys(v.metadata.labels).sort(), ['a0', 'a1', 'a2', 'a3', 'a4', 'b0', 'b1', 'b2', 'b3', 'b4']);
  } finally {
    await other.close();
    await kv.close();
  }
});

test('registerNode writes the IPv6 fields Calico uses (bgp.ipv6Address, ipv6VXLANTunnelAddr, vxlanTunnelMACAddrV6) and keeps them', async () => {
  const { kv } = store();
  try {
    const r = await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::1/64', vxlanTunnelAddrV6: 'fd00:10:244::', vtepMacV6: '66:AA:BB:CC:DD:EE' });
    const spec = JSON.parse(r.entry.value).spec;
    assert.equal(spec.bgp, { ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::1/64' });
    assert.is(spec.ipv6VXLANTunnelAddr, 'fd00:10:244::');
    assert.is(spec.vxlanTunnelMACAddrV6, '66:aa:bb:cc:dd:ee');
    // A later registration that does not name them (IPv4 only) leaves them as they are.
    const again = await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24' });
    assert.is(again.action, 'unchanged');
    for (const [bad, field] of [[{ ipv6Address: 'fd99::1' }, 'ipv6Address'], [{ ipv6Address: '10.0.0.1/24' }, 'ipv6Address'], [{ vxlanTunnelAddrV6: '10.244.0.1' }, 'vxlanTunnelAddrV6'], [{ vtepMacV6: 'nope' }, 'vtepMacV6']] as const) {
      try {
        await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', ...bad });
        assert.unreachable(`${field} accepted`);
      } catch (e) {
        assert.match((e as Error).message, new RegExp(`registerNode node1: ${field} must be`));
      }
    }
  } finally {
    await kv.close();
  }
});

test('registerNode refuses bad input before writing', async () => {
  const { kv } = store();
  try {
    for (const [reg, re] of [
      [{ name: 'node1', ipv4Address: '10.99.0.1' }, /ipv4Address must be an address with its prefix length/],
      [{ name: 'Node_1', ipv4Address: '10.99.0.1/24' }, /invalid node name/],
      [{ name: 'node1', ipv4Address: '10.99.0.1/24', vxlanTunnelAddr: '10.244.0' }, /vxlanTunnelAddr must be an IPv4 address/],
      [{ name: 'node1', ipv4Address: '10.99.0.1/24', vtepMac: 'zz' }, /vtepMac must be a MAC/],
    ] as const) {
      const err = await registerNode(kv, reg).then(() => null, (e: Error) => e);
      assert.ok(err && re.test(err.message), String(err));
    }
    assert.equal((await kv.list('/calico/')).entries, []);
  } finally {
    await kv.close();
  }
});

test('markDatastoreReady as EnsureInitialized: created with a clusterGUID; an absent datastoreReady set true, clusterType merged; a locked (false) datastore left locked; calicoVersion never written', async () => {
  const { kv } = store();
  try {
    const created = await markDatastoreReady(kv, { clusterType: 'k8s,bgp' });
    assert.is(created.action, 'created');
    assert.is(created.locked, false);
    const v = JSON.parse(created.entry.value);
    assert.equal(Object.keys(v), ['kind', 'apiVersion', 'metadata', 'spec']);
    assert.is(v.kind, 'ClusterInformation');
    assert.is(v.metadata.name, 'default');
    assert.match(v.spec.clusterGUID, /^[0-9a-f]{32}$/);
    assert.equal(Object.keys(v.spec), ['clusterGUID', 'clusterType', 'datastoreReady']);
    assert.is(v.spec.clusterType, 'k8s,bgp');
    assert.is(v.spec.datastoreReady, true);
    assert.is((await markDatastoreReady(kv)).action, 'unchanged');
    assert.is((await markDatastoreReady(kv, { clusterType: 'bgp,k8s' })).action, 'unchanged', 'types already there');

    // `calicoctl datastore migrate lock`: datastoreReady false stays false (Calico leaves it so)
    let cur = (await kv.get(CLUSTER_INFORMATION_KEY))!;
    const locked = { ...v, spec: { ...v.spec, calicoVersion: 'v3.28.0', datastoreReady: false } };
    await kv.update(CLUSTER_INFORMATION_KEY, JSON.stringify(locked), cur.modRevision);
    const stays = await markDatastoreReady(kv);
    assert.is(stays.action, 'unchanged');
    assert.is(stays.locked, true);
    assert.is(JSON.parse((await kv.get(CLUSTER_INFORMATION_KEY))!.value).spec.datastoreReady, false);
    const merged = await markDatastoreReady(kv, { clusterType: 'k8s,bgp,typha,' });
    assert.is(merged.action, 'updated');
    assert.is(merged.locked, true);
    assert.equal(JSON.parse(merged.entry.value).spec, { clusterGUID: v.spec.clusterGUID, clusterType: 'k8s,bgp,typha', calicoVersion: 'v3.28.0', datastoreReady: false });

    // no datastoreReady at all: set true, the rest kept (calicoVersion as calico-node wrote it)
    cur = (await kv.get(CLUSTER_INFORMATION_KEY))!;
    const { datastoreReady: _drop, ...noReady } = JSON.parse(cur.value).spec;
    await kv.update(CLUSTER_INFORMATION_KEY, JSON.stringify({ ...v, spec: noReady }), cur.modRevision);
    const updated = await markDatastoreReady(kv);
    assert.is(updated.action, 'updated');
    assert.is(updated.locked, false);
    const u = JSON.parse(updated.entry.value);
    assert.equal(u.spec, { clusterGUID: v.spec.clusterGUID, clusterType: 'k8s,bgp,typha', calicoVersion: 'v3.28.0', datastoreReady: true });
    assert.is(u.metadata.uid, v.metadata.uid);
  } finally {
    await kv.close();
  }
});

test('a KvDatastore sees the node podway registered', async () => {
  const { kv } = store();
  const ds = new KvDatastore(kv);
  try {
    await ds.start();
    await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', vxlanTunnelAddr: '10.244.0.0' });
    const deadline = Date.now() + 20_000; // (5 s before: a watch event on a loaded host, bounded)
    while (!(ds.current()?.nodes.length) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const nodes = ds.current()!.nodes;
    assert.is(nodes.length, 1);
    assert.is(nodes[0]!.spec.bgp?.ipv4Address, '10.99.0.1/24');
    assert.is(nodes[0]!.spec.ipv4VXLANTunnelAddr, '10.244.0.0');
  } finally {
    await ds.close();
    await kv.close();
  }
});

test('registerNode keepStoredAddresses: an address the Node has is kept (changed meanwhile), a missing one filled', async () => {
  const { kv } = store();
  try {
    await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24' });
    // the address monitor moved it after a join read the Node: the join's older copy is not written back
    await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.11/24', ipv6Address: 'fd99::1/64' });
    const r = await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::5/64', vxlanTunnelAddr: '10.244.0.0', keepStoredAddresses: true });
    const spec = JSON.parse(r.entry.value).spec;
    assert.equal(spec.bgp, { ipv4Address: '10.99.0.11/24', ipv6Address: 'fd99::1/64' });
    assert.is(spec.ipv4VXLANTunnelAddr, '10.244.0.0', 'the other fields are written');
    await registerNode(kv, { name: 'node2', ipv4Address: '10.99.0.2/24', ipv6Address: 'fd99::2/64', keepStoredAddresses: true });
    assert.equal(JSON.parse((await kv.get('/calico/resources/v3/projectcalico.org/nodes/node2'))!.value).spec.bgp, { ipv4Address: '10.99.0.2/24', ipv6Address: 'fd99::2/64' }, 'a new Node gets them');
  } finally {
    await kv.close();
  }
});

test('registerNode keepStoredAddresses per family: the family taken from the Node is kept (changed meanwhile), the given one written', async () => {
  const { kv } = store();
  try {
    await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.11/24', ipv6Address: 'fd99::11/64' });
    // IPv4 from the Node (a join's older copy), IPv6 given: the Node's IPv4 stays, IPv6 as given
    let r = await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::5/64', keepStoredAddresses: { 4: true } });
    assert.equal(JSON.parse(r.entry.value).spec.bgp, { ipv4Address: '10.99.0.11/24', ipv6Address: 'fd99::5/64' });
    // IPv4 given, IPv6 from the Node: the other way round
    r = await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.12/24', ipv6Address: 'fd99::1/64', keepStoredAddresses: { 6: true } });
    assert.equal(JSON.parse(r.entry.value).spec.bgp, { ipv4Address: '10.99.0.12/24', ipv6Address: 'fd99::5/64' });
    // IPv6 none (not registered) and IPv4 from the Node: nothing written back
    r = await registerNode(kv, { name: 'node1', ipv4Address: '10.99.0.1/24', keepStoredAddresses: { 4: true, 6: true } });
    assert.is(r.action, 'unchanged');
    assert.equal(JSON.parse(r.entry.value).spec.bgp, { ipv4Address: '10.99.0.12/24', ipv6Address: 'fd99::5/64' });
  } finally {
    await kv.close();
  }
});

test('registerNode refuses another Node\'s IPv4 or IPv6 address (calico-node\'s checkConflictingNodes), naming it, nothing written', async () => {
  const { kv } = store();
  try {
    await registerNode(kv, { name: 'node1', ipv4Address: '10.98.0.1/24', ipv6Address: 'fd00:98::1/64' });
    const before = (await kv.list('/calico/')).revision;
    // The address, not its prefix; IPv6 in another spelling is the same address.
    for (const [reg, family, address] of [
      [{ name: 'node5', ipv4Address: '10.98.0.1/16' }, 4, '10.98.0.1'],
      [{ name: 'node5', ipv4Address: '10.98.0.5/24', ipv6Address: 'FD00:98:0::1/64' }, 6, 'fd00:98::1'],
    ] as const) {
      const err = await registerNode(kv, reg).then(() => null, (e: Error) => e);
      assert.instance(err, NodeAddressConflictError);
      assert.equal((err as NodeAddressConflictError).conflicts, [{ family, address, node: 'node1' }]);
      assert.match(err!.message, `node node5: Node node1 is already using the IPv${family} address ${address}`);
    }
    assert.is(await kv.get('/calico/resources/v3/projectcalico.org/nodes/node5'), null);
    assert.is((await kv.list('/calico/')).revision, before);
    // An existing Node moving onto node1's address is refused too.
    await registerNode(kv, { name: 'node5', ipv4Address: '10.98.0.5/24' });
    const err = await registerNode(kv, { name: 'node5', ipv4Address: '10.98.0.1/24' }).then(() => null, (e: Error) => e);
    assert.instance(err, NodeAddressConflictError);
    assert.is(JSON.parse((await kv.get('/calico/resources/v3/projectcalico.org/nodes/node5'))!.value).spec.bgp.ipv4Address, '10.98.0.5/24');
  } finally {
    await kv.close();
  }
});

test('registerNode checks only a changed address: a conflict others made does not stop a node re-registering its own', async () => {
  const { kv } = store();
  try {
    await registerNode(kv, { name: 'node1', ipv4Address: '10.98.0.1/24' });
    // Written by hand (calicoctl), not through registerNode.
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'node9' }, spec: { bgp: { ipv4Address: '10.98.0.1/24' } } });
    const r = await registerNode(kv, { name: 'node1', ipv4Address: '10.98.0.1/24', labels: { zone: 'a' } });
    assert.is(r.action, 'updated');
    assert.equal(r.addressChanges, []);
  } finally {
    await kv.close();
  }
});

test('registerNode reports an existing Node\'s address it changed (old and new), not a new prefix alone', async () => {
  const { kv } = store();
  try {
    const created = await registerNode(kv, { name: 'node1', ipv4Address: '10.98.0.1/24', ipv6Address: 'fd00:98::1/64' });
    assert.equal(created.addressChanges, []);
    const moved = await registerNode(kv, { name: 'node1', ipv4Address: '10.98.0.3/24', ipv6Address: 'fd00:98::3/64' });
    assert.equal(moved.addressChanges, [{ family: 4, from: '10.98.0.1/24', to: '10.98.0.3/24' }, { family: 6, from: 'fd00:98::1/64', to: 'fd00:98::3/64' }]);
    const prefix = await registerNode(kv, { name: 'node1', ipv4Address: '10.98.0.3/16' });
    assert.is(prefix.action, 'updated');
    assert.equal(prefix.addressChanges, []);
  } finally {
    await kv.close();
  }
});

test.run();
