// VXLAN tunnel addresses reconciled as calico-node's allocateip does (control/tunnel-addrs.ts), on
// the embedded store and on a real etcd (test/helpers/etcd.ts, one for this file): assigned from
// the VXLAN pools that select the node, kept while valid, released (IPAM handle gone, the address
// free again) and cleared from the Node when the family's last VXLAN pool is deleted or turned
// to Never, moved when its pool stops being VXLAN while another is; an address someone else holds
// now is never released.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { KvStore } from '../../src/control/kv/kv';
import { FileKv } from '../../src/control/kv/file-kv';
import { Ipam } from '../../src/control/ipam/ipam';
import { auditIpam } from '../../src/control/ipam/audit';
import { BLOCK_PREFIX, handleKey, IPPOOL_PREFIX, nodeKey } from '../../src/control/ipam/keys';
import { HookedKv } from '../helpers/kv-hook';
import { registerNode, updateNodeSpec } from '../../src/control/node-registration';
import { reconcileTunnelAddrs, tunnelKind } from '../../src/control/tunnel-addrs';
import { etcdForFile } from '../helpers/etcd';
import { poolValue } from './ipam/helpers';

const openEtcd = etcdForFile(test);
const dirs: string[] = [];
process.on('exit', () => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
function fileStore(): FileKv {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'podway-tunnel-')), 'store');
  dirs.push(path.dirname(dir));
  return new FileKv({ dir });
}

const V4 = { name: 'v4-pool', cidr: '10.244.0.0/16' };
const V6 = { name: 'v6-pool', cidr: 'fd00:10:244::/64' };

async function putPool(kv: KvStore, p: { name: string; cidr: string }, spec: Record<string, unknown>): Promise<void> {
  const key = IPPOOL_PREFIX + p.name;
  const cur = await kv.get(key);
  const value = poolValue(p.name, p.cidr, spec);
  if (cur) assert.ok(await kv.update(key, value, cur.modRevision), `update ${p.name}`);
  else assert.ok(await kv.create(key, value), `create ${p.name}`);
}

async function nodeSpec(kv: KvStore, node: string): Promise<Record<string, unknown>> {
  return (JSON.parse((await kv.get(nodeKey(node)))!.value) as { spec: Record<string, unknown> }).spec;
}

/** The same story on any store. */
async function scenario(kv: KvStore, node: string): Promise<void> {
  const ipam = new Ipam(kv);
  await putPool(kv, V4, { vxlanMode: 'Always', ipipMode: 'Never' });
  await putPool(kv, V6, { vxlanMode: 'Always', ipipMode: 'Never' });
  await registerNode(kv, { name: node, ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::1/64' });

  // both assigned, with Calico's handles and attributes, and the VTEP MACs Felix derives
  const a = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.is(a.v4.action, 'assigned');
  assert.is(a.v6.action, 'assigned');
  let spec = await nodeSpec(kv, node);
  assert.is(spec.ipv4VXLANTunnelAddr, a.v4.addr);
  assert.is(spec.ipv6VXLANTunnelAddr, a.v6.addr);
  assert.match(String(spec.vxlanTunnelMACAddr), /^66:/);
  assert.match(String(spec.vxlanTunnelMACAddrV6), /^66:/);
  const sec6 = (await ipam.allocationOf(a.v6.addr!))?.secondary ?? {};
  assert.equal({ node: sec6.node, type: sec6.type }, { node, type: 'vxlanV6TunnelAddress' });
  assert.ok(Math.abs(Date.now() - Date.parse(sec6.timestamp ?? '')) < 600_000, `dated for ipam check's grace period: ${sec6.timestamp}`);
  // Assigned but not yet written to the Node (the gap between the two writes): ipam check leaves
  // it unjudged within the grace period (its timestamp), so release --from-report cannot free it.
  const nodeEntry = (await kv.get(nodeKey(node)))!;
  const unwritten = JSON.parse(nodeEntry.value) as { spec: Record<string, unknown> };
  delete unwritten.spec.ipv6VXLANTunnelAddr;
  assert.ok(await kv.update(nodeKey(node), JSON.stringify(unwritten), nodeEntry.modRevision), 'Node without its IPv6 tunnel address');
  const gap = await auditIpam(kv);
  assert.is(gap.allocations.find((x) => x.ip === a.v6.addr)?.state, 'recent');
  assert.not.ok(gap.problems.some((p) => p.kind === 'leaked'), gap.problems.map((p) => p.message).join('; '));
  const judged = await auditIpam(kv, { gracePeriodMs: 0 });
  assert.is(judged.allocations.find((x) => x.ip === a.v6.addr)?.state, 'leaked', 'undated it would be judged leaked');
  const cur = (await kv.get(nodeKey(node)))!;
  assert.ok(await kv.update(nodeKey(node), nodeEntry.value, cur.modRevision), 'Node restored');
  assert.is((await ipam.allocationOf(a.v4.addr!))?.handleId, tunnelKind('vxlan').handle(node));
  assert.ok(await kv.get(handleKey(tunnelKind('vxlan-v6').handle(node))), 'the IPv6 handle exists');

  // nothing to do: nothing written
  const rev = (await kv.get(nodeKey(node)))!.modRevision;
  const same = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.equal([same.v4.action, same.v6.action], ['kept', 'kept']);
  assert.is((await kv.get(nodeKey(node)))!.modRevision, rev, 'the Node untouched');

  // the IPv6 pool goes away: released, handle gone, field cleared; IPv4 kept
  const pool6 = await kv.get(IPPOOL_PREFIX + V6.name);
  assert.ok(await kv.delete(pool6!.key, pool6!.modRevision));
  const b = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.is(b.v6.action, 'released');
  assert.equal(b.v6.released, [a.v6.addr]);
  assert.is(b.v4.action, 'kept');
  spec = await nodeSpec(kv, node);
  assert.not.ok('ipv6VXLANTunnelAddr' in spec, 'ipv6VXLANTunnelAddr cleared');
  assert.is(spec.ipv4VXLANTunnelAddr, a.v4.addr);
  assert.is(await kv.get(handleKey(tunnelKind('vxlan-v6').handle(node))), null, 'the IPv6 handle released');
  assert.is(await ipam.allocationOf(a.v6.addr!), null, 'the IPv6 address is free');
  // and again: nothing left to release, nothing written
  const b2 = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.equal([b2.v4.action, b2.v6.action], ['kept', 'none']);

  // the IPv4 pool turned to vxlanMode Never: released and cleared too
  await putPool(kv, V4, { vxlanMode: 'Never', ipipMode: 'Never' });
  const c = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.is(c.v4.action, 'released');
  assert.equal(c.v4.released, [a.v4.addr]);
  spec = await nodeSpec(kv, node);
  assert.not.ok('ipv4VXLANTunnelAddr' in spec, 'ipv4VXLANTunnelAddr cleared');
  assert.is(await ipam.allocationOf(a.v4.addr!), null);

  // VXLAN again, but from a second pool only: the Node's address moves there
  await putPool(kv, V4, { vxlanMode: 'Always', ipipMode: 'Never' });
  const d = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.is(d.v4.action, 'assigned');
  await putPool(kv, V4, { vxlanMode: 'Never', ipipMode: 'Never' });
  const other = { name: 'v4-vxlan', cidr: '10.250.0.0/16' };
  await putPool(kv, other, { vxlanMode: 'CrossSubnet', ipipMode: 'Never' });
  const e = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.is(e.v4.action, 'assigned');
  assert.equal(e.v4.released, [d.v4.addr], 'the address in the no longer VXLAN pool given back');
  assert.match(e.v4.addr!, /^10\.250\./);
  assert.is((await nodeSpec(kv, node)).ipv4VXLANTunnelAddr, e.v4.addr);

  // a pool that does not allow tunnel addresses, or does not select the node, does not count
  await putPool(kv, other, { vxlanMode: 'Always', ipipMode: 'Never', allowedUses: ['Workload'] });
  const f = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.is(f.v4.action, 'released');
  await putPool(kv, other, { vxlanMode: 'Always', ipipMode: 'Never', nodeSelector: 'zone == "elsewhere"' });
  assert.is((await reconcileTunnelAddrs(kv, node, { assignV6: true })).v4.action, 'none');

  // the Node names an address a workload holds now (another handle): not released, only cleared
  await putPool(kv, V4, { vxlanMode: 'Never', ipipMode: 'Never' });
  const pod = await ipam.autoAssign({ node, count: 1, handleId: 'k8s-pod-network.abc', attrs: { node, pod: 'p' }, version: 4 });
  await registerNode(kv, { name: node, ipv4Address: '10.99.0.1/24', vxlanTunnelAddr: pod.ips[0] });
  const g = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.is(g.v4.action, 'released');
  assert.equal(g.v4.released, []);
  assert.is((await ipam.allocationOf(pod.ips[0]))?.handleId, 'k8s-pod-network.abc', 'the workload keeps its address');
  assert.not.ok('ipv4VXLANTunnelAddr' in (await nodeSpec(kv, node)));

  // without an IPv6 address no IPv6 VTEP is assigned (podway's rule); one left is still released
  await putPool(kv, V6, { vxlanMode: 'Always', ipipMode: 'Never' });
  assert.is((await reconcileTunnelAddrs(kv, node, { assignV6: false })).v6.action, 'none');
  const h = await reconcileTunnelAddrs(kv, node, { assignV6: true });
  assert.is(h.v6.action, 'assigned');
  await putPool(kv, V6, { vxlanMode: 'Never', ipipMode: 'Never' });
  const i = await reconcileTunnelAddrs(kv, node, { assignV6: false });
  assert.is(i.v6.action, 'released');
  assert.equal(i.v6.released, [h.v6.addr]);
}

test('embedded store: tunnel addresses assigned, kept, released and cleared as calico-node does', async () => {
  const kv = fileStore();
  try {
    await scenario(kv, 'node1');
  } finally {
    await kv.close();
  }
});

test('etcd: the same against a real etcd', async () => {
  await scenario(openEtcd(), 'node1');
});

test('IPIP: assigned while an IPIP pool selects the node (spec.bgp.ipv4IPIPTunnelAddr, handle ipip-tunnel-addr-<node>, type ipipTunnelAddress, as allocateip), released and cleared when the pool turns VXLAN, none without an IPv4 address', async () => {
  const kv = fileStore();
  try {
    const ipam = new Ipam(kv);
    const node = 'node1';
    await putPool(kv, V4, { vxlanMode: 'Never', ipipMode: 'Always' });
    await registerNode(kv, { name: node, ipv4Address: '10.99.0.1/24' });
    const a = await reconcileTunnelAddrs(kv, node, { assignV6: false });
    assert.equal([a.ipip.action, a.v4.action], ['assigned', 'none']);
    let spec = await nodeSpec(kv, node);
    const bgp = spec.bgp as Record<string, unknown>;
    assert.is(bgp.ipv4IPIPTunnelAddr, a.ipip.addr);
    assert.is(bgp.ipv4Address, '10.99.0.1/24', 'the other bgp fields stay');
    assert.is(spec.ipv4VXLANTunnelAddr, undefined);
    const held = await ipam.allocationOf(a.ipip.addr!);
    assert.is(held?.handleId, tunnelKind('ipip').handle(node));
    assert.is(tunnelKind('ipip').handle(node), 'ipip-tunnel-addr-node1');
    assert.equal([held?.secondary?.type, held?.secondary?.node], ['ipipTunnelAddress', node]);
    assert.is((await reconcileTunnelAddrs(kv, node, { assignV6: false })).ipip.action, 'kept');

    // the pool turns VXLAN: the IPIP address goes (IPAM and the Node), a VXLAN one comes
    await putPool(kv, V4, { vxlanMode: 'Always', ipipMode: 'Never' });
    const b = await reconcileTunnelAddrs(kv, node, { assignV6: false });
    assert.equal([b.ipip.action, b.ipip.released, b.v4.action], ['released', [a.ipip.addr], 'assigned']);
    spec = await nodeSpec(kv, node);
    assert.is((spec.bgp as Record<string, unknown>).ipv4IPIPTunnelAddr, undefined);
    assert.is((spec.bgp as Record<string, unknown>).ipv4Address, '10.99.0.1/24');
    assert.is(spec.ipv4VXLANTunnelAddr, b.v4.addr);
    assert.is(await ipam.allocationOf(a.ipip.addr!), null, 'free again');
    assert.is(await kv.get(handleKey(tunnelKind('ipip').handle(node))), null);

    // an IPv6-only node (no IPv4 address) gets none
    await putPool(kv, V4, { vxlanMode: 'Never', ipipMode: 'Always' });
    await registerNode(kv, { name: 'v6only', ipv6Address: 'fd99::9/64' });
    assert.is((await reconcileTunnelAddrs(kv, 'v6only', { assignV6: true, assignV4: false })).ipip.action, 'none');
  } finally {
    await kv.close();
  }
});

test('an unregistered node is an error, nothing assigned', async () => {
  const kv = fileStore();
  try {
    await putPool(kv, V4, { vxlanMode: 'Always', ipipMode: 'Never' });
    await reconcileTunnelAddrs(kv, 'ghost', { assignV6: true }).then(() => assert.unreachable('accepted'), (e: Error) => assert.match(e.message, /node ghost does not exist/));
    assert.is(await kv.get(handleKey(tunnelKind('vxlan').handle('ghost'))), null);
  } finally {
    await kv.close();
  }
});

test('a failing IPv6 step keeps the IPv4 result and clears the released IPv6 address', async () => {
  const kv = fileStore();
  try {
    const ipam = new Ipam(kv);
    const node = 'node1';
    await putPool(kv, V4, { vxlanMode: 'Always', ipipMode: 'Never' });
    await putPool(kv, V6, { vxlanMode: 'Always', ipipMode: 'Never' });
    await registerNode(kv, { name: node, ipv4Address: '10.99.0.1/24', ipv6Address: 'fd99::1/64' });
    const a = await reconcileTunnelAddrs(kv, node, { assignV6: true });
    assert.equal([a.v4.action, a.v6.action], ['assigned', 'assigned']);

    // IPv4 moves to another pool; IPv6 must move to a pool whose only address a workload holds
    await putPool(kv, V4, { vxlanMode: 'Never', ipipMode: 'Never' });
    const v4b = { name: 'v4-b', cidr: '10.250.0.0/16' };
    await putPool(kv, v4b, { vxlanMode: 'Always', ipipMode: 'Never' });
    await putPool(kv, V6, { vxlanMode: 'Never', ipipMode: 'Never' });
    const full = { name: 'v6-full', cidr: 'fd00:30::/128' };
    await putPool(kv, full, { vxlanMode: 'Always', ipipMode: 'Never', blockSize: 128 });
    const pod = await ipam.autoAssign({ node, count: 1, handleId: 'k8s-pod-network.full', attrs: { node, pod: 'p' }, version: 6, pools: [full.cidr] });
    assert.equal(pod.ips, ['fd00:30::'], 'the workload took the only address');

    await reconcileTunnelAddrs(kv, node, { assignV6: true }).then(
      () => assert.unreachable('no IPv6 address to assign, yet it succeeded'),
      (e: Error) => assert.match(e.message, /no IPv6 VXLAN tunnel address/),
    );
    const spec = await nodeSpec(kv, node);
    assert.match(String(spec.ipv4VXLANTunnelAddr), /^10\.250\./, 'the new IPv4 address written before the IPv6 failure');
    assert.is((await ipam.allocationOf(String(spec.ipv4VXLANTunnelAddr)))?.handleId, tunnelKind('vxlan').handle(node));
    assert.is(await ipam.allocationOf(a.v4.addr!), null, 'the old IPv4 address given back');
    assert.is(await ipam.allocationOf(a.v6.addr!), null, 'the old IPv6 address given back');
    assert.not.ok('ipv6VXLANTunnelAddr' in spec, 'the Node does not name the released IPv6 address');
  } finally {
    await kv.close();
  }
});


test('a disabled VXLAN pool keeps the node\'s tunnel address (a restart reconciles the same as live); none is assigned from it; deleting it releases', async () => {
  const kv = fileStore();
  try {
    const node = 'node-dis';
    const ipam = new Ipam(kv);
    await putPool(kv, V4, { vxlanMode: 'Always', ipipMode: 'Never' });
    await registerNode(kv, { name: node, ipv4Address: '10.99.0.1/24' });
    const a = await reconcileTunnelAddrs(kv, node, { assignV6: false });
    assert.is(a.v4.action, 'assigned');
    // The pool disabled (its blocks and pods stay, still routed): a restart's reconcile keeps the
    // address, as a running podway does (its trigger counts disabled pools, as Felix does).
    await putPool(kv, V4, { vxlanMode: 'Always', ipipMode: 'Never', disabled: true });
    const b = await reconcileTunnelAddrs(kv, node, { assignV6: false });
    assert.is(b.v4.action, 'kept');
    assert.is((await nodeSpec(kv, node)).ipv4VXLANTunnelAddr, a.v4.addr);
    assert.is((await ipam.allocationOf(a.v4.addr!))?.handleId, tunnelKind('vxlan').handle(node));
    // A node without one gets none from a disabled pool.
    await registerNode(kv, { name: 'node-new', ipv4Address: '10.99.0.2/24' });
    const n = await reconcileTunnelAddrs(kv, 'node-new', { assignV6: false });
    assert.is(n.v4.action, 'none');
    assert.not.ok('ipv4VXLANTunnelAddr' in (await nodeSpec(kv, 'node-new')));
    // Enabled again: still the same address; then the pool deleted: released and cleared.
    await putPool(kv, V4, { vxlanMode: 'Always', ipipMode: 'Never' });
    assert.is((await reconcileTunnelAddrs(kv, node, { assignV6: false })).v4.addr, a.v4.addr);
    const pool = await kv.get(IPPOOL_PREFIX + V4.name);
    assert.ok(await kv.delete(pool!.key, pool!.modRevision));
    const c = await reconcileTunnelAddrs(kv, node, { assignV6: false });
    assert.is(c.v4.action, 'released');
    assert.equal(c.v4.released, [a.v4.addr]);
    assert.not.ok('ipv4VXLANTunnelAddr' in (await nodeSpec(kv, node)));
  } finally {
    await kv.close();
  }
});
test('a handle-less tunnel address given to a pod between the ownership check and the release stays the pod\'s (embedded and etcd)', async () => {
  for (const kv of [fileStore(), openEtcd()]) {
    try {
      const node = 'node-race';
      const ipam = new Ipam(kv);
      await putPool(kv, V4, { vxlanMode: 'Always', ipipMode: 'Never' });
      await registerNode(kv, { name: node, ipv4Address: '10.99.0.77/24' });
      // An address from before handles (no handle, no attributes) in the Node's field.
      const addr = '10.244.250.7';
      await ipam.assignIp({ ip: addr, handleId: null, node });
      await updateNodeSpec(kv, node, (s) => { s.ipv4VXLANTunnelAddr = addr; });
      // VXLAN off: the reconcile gives the address back, but just before its block write a
      // release and a pod's ADD on another node take it.
      await putPool(kv, V4, { vxlanMode: 'Never', ipipMode: 'Never' });
      const hooked = new HookedKv(kv);
      hooked.beforeWrite((op, key) => op !== 'create' && key.startsWith(BLOCK_PREFIX), async () => {
        await ipam.releaseIps([addr]);
        await ipam.assignIp({ ip: addr, handleId: 'k8s-pod-network.cpod', attrs: { node: 'other' }, node: 'other' });
      });
      const r = await reconcileTunnelAddrs(hooked, node, { assignV6: false });
      assert.is(hooked.fired, 1);
      assert.equal(r.v4.released, []);
      assert.is((await ipam.allocationOf(addr))?.handleId, 'k8s-pod-network.cpod', 'the pod keeps its address');
      assert.not.ok('ipv4VXLANTunnelAddr' in (await nodeSpec(kv, node)), 'the Node names it no more');
    } finally {
      await kv.close();
    }
  }
});

test.run();
