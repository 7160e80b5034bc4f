/**
 * A dual-stack cluster with no hand-written IPv6 addresses (root, network namespaces), on the
 * embedded store and on etcd: the datastore holds only the IPv4 and IPv6 pools (VXLAN) and the
 * pods' WorkloadEndpoints, with the pods' addresses from IPAM. Each `podway run` registers its own
 * Node: spec.bgp.ipv6Address found on its underlay (first-found global IPv6, as Calico's IP6
 * autodetection), spec.ipv6VXLANTunnelAddr from IPAM (handle vxlan-v6-tunnel-addr-<node>, type
 * vxlanV6TunnelAddress) and spec.vxlanTunnelMACAddrV6; route calculation uses them, and IPv6
 * pods ping each other across nodes over VXLAN-over-IPv6.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import type { KvStore } from '../../src/control/kv/kv';
import { Ipam } from '../../src/control/ipam';
import { deriveVtepMac } from '../../src/control/mac';
import { guard, teardown, isRoot, until, logTail, routes } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'tap-1', type: 'tap' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];

interface StoredNode { spec: { bgp: { ipv4Address: string; ipv6Address?: string }; ipv6VXLANTunnelAddr?: string; vxlanTunnelMACAddrV6?: string } }

async function checkCluster(lab: Lab, kv: KvStore): Promise<void> {
  for (const n of lab.nodes) {
    const e = await kv.get(`/calico/resources/v3/projectcalico.org/nodes/${n.name}`);
    assert.ok(e, `Node ${n.name} registered`);
    const node = JSON.parse(e!.value) as StoredNode;
    assert.is(node.spec.bgp.ipv6Address, `${n.ip6}/64`, `${n.name}: the underlay's global IPv6 address`);
    assert.is(node.spec.ipv6VXLANTunnelAddr, n.block6!.split('/')[0], `${n.name}: IPv6 VTEP = first free address of its own /122 (${n.block6})`);
    assert.is(node.spec.vxlanTunnelMACAddrV6, deriveVtepMac(n.name, 6));
    const handle = await kv.get(`/calico/ipam/v2/handle/vxlan-v6-tunnel-addr-${n.name}`);
    assert.is(handle?.value, `{"block":{"${n.block6}":1},"deleted":false}`);
    assert.ok(n.log.some((l) => /IPv6 VXLAN tunnel address .* assigned \(handle vxlan-v6-tunnel-addr-/.test(l)), n.log.join(' | '));
  }
  assert.equal((await new Ipam(kv).check()).map((p) => p.message), [], 'IPAM consistent');
  for (const [from, to] of [['node1', 'node2'], ['node2', 'node1']]) {
    const block6 = lab.node(to).block6!;
    assert.ok(await until(async () => (await routes(lab.node(from))).some((r) => r.cidr === block6 && r.kind === 'vxlan'), 15_000), `${from} routes ${block6} over IPv6 VXLAN`);
  }
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'tap-1']]) {
    const to = lab.pod(b).ip6!;
    assert.ok(await until(() => lab.ping(a, to, 1).received === 1, 10_000, 100), `${a} -> ${b} (${to}) reachable`);
    const p = lab.ping(a, to, 4);
    assert.is(p.loss, 0, `${a} -> ${b}: ${JSON.stringify(p)}`);
    assert.is(p.ttl, 62, `${a} -> ${b}: hop limit 64 - 2`);
  }
  // IPv4 still there beside it.
  const p4 = lab.ping('web-1', lab.pod('web-2').ip, 2, 56, ['-W', '3']);
  assert.is(p4.loss, 0);
}

async function withDualStackLab(store: 'embedded' | 'etcd', fn: (lab: Lab, kv: KvStore) => Promise<void>): Promise<void> {
  if (!isRoot()) throw new Error('cluster tests need root (network namespaces)');
  const lab = guard(new Lab(SPEC, { dualStack: true, podOffloads: false }));
  let opened: LabKvStore | null = null;
  try {
    lab.build();
    opened = await lab.openKvStore(store, 'podway-kv6-');
    const kv = opened.kv;
    await lab.useKvDatastore(kv, opened.spec);
    assert.is((await kv.list('/calico/resources/v3/projectcalico.org/nodes/')).entries.length, 0, 'no Node written by hand');
    for (const n of lab.nodes) await lab.startPodway(n.name, 20_000);
    await fn(lab, kv);
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    await teardown(lab);
    await opened?.close();
  }
}

test('embedded store: podways register their IPv6 address and IPv6 VTEP themselves; IPv6 pods ping across nodes', async () => {
  await withDualStackLab('embedded', checkCluster);
});

test('etcd: the same with two podways on a real etcd', async () => {
  await withDualStackLab('etcd', checkCluster);
});

test.run();
