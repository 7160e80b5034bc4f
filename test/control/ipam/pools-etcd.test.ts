// How IPAM reads IP pools, against a real etcd (test/helpers/etcd.ts starts one on loopback for
// this file and stops it by PID): spec.allowedUses decides which pools give pod (Workload) and
// tunnel (Tunnel) addresses, as libcalico-go's filterPoolsByUse does; a stored pool IPAM cannot
// read (another tool's `ipipMode: always`) is skipped with a warning, not fatal, and nothing inside
// it is handed out. spec.assignmentMode Manual keeps a pool for requests that name it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { KvStore } from '../../../src/control/kv/kv';
import { Ipam } from '../../../src/control/ipam/ipam';
import { AllocationBlock } from '../../../src/control/ipam/block';
import { blockKey, IPPOOL_PREFIX } from '../../../src/control/ipam/keys';
import { netContains, parseIp, parseNet } from '../../../src/control/ipam/net';
import { reconcileTunnelAddrs } from '../../../src/control/tunnel-addrs';
import { etcdForFile } from '../../helpers/etcd';
import { poolValue, setup } from './helpers';

const open = etcdForFile(test);

/** Every key of the previous test gone: each test starts from an empty datastore. */
async function emptied(): Promise<KvStore> {
  const kv = open();
  for (const e of (await kv.list('/calico/')).entries) await kv.delete(e.key, e.modRevision);
  return kv;
}

const inNet = (ip: string, cidr: string): boolean => {
  const a = parseIp(ip);
  const n = parseNet(cidr);
  return a !== null && n !== null && netContains(n, a.value);
};

test('allowedUses: pod addresses only from Workload pools, tunnel addresses only from Tunnel pools', async () => {
  const kv = await emptied();
  await setup(kv, {
    pools: [
      { name: 'tunnels', cidr: '10.251.0.0/24', spec: { allowedUses: ['Tunnel'] } },
      { name: 'pods', cidr: '10.252.0.0/24', spec: { allowedUses: ['Workload'] } },
    ],
    nodes: ['node1'],
  });
  const ipam = new Ipam(kv, { blockSearch: 'sequential' });
  // Default use (what the CNI ADD and `ipam assign` ask for) is Workload.
  const pods = await ipam.autoAssign({ node: 'node1', count: 5, handleId: 'h-pods', attrs: { node: 'node1' } });
  assert.is(pods.errors, undefined);
  assert.is(pods.ips.length, 5);
  for (const ip of pods.ips) assert.ok(inNet(ip, '10.252.0.0/24'), `${ip} is a pod address from the Workload pool`);
  const tunnel = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h-tun', attrs: { node: 'node1' }, use: 'Tunnel' });
  assert.is(tunnel.ips.length, 1);
  assert.ok(inNet(tunnel.ips[0]!, '10.251.0.0/24'), `${tunnel.ips[0]} is a tunnel address from the Tunnel pool`);

  // The Workload pool disabled: the Tunnel-only pool still gives no pod address, asked for or not.
  const podsKey = IPPOOL_PREFIX + 'pods';
  const cur = (await kv.get(podsKey))!;
  assert.ok(await kv.update(podsKey, poolValue('pods', '10.252.0.0/24', { allowedUses: ['Workload'], disabled: true }), cur.modRevision));
  const none = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h-none', attrs: { node: 'node1' } });
  assert.equal(none.ips, []);
  assert.is(none.noPool, true);
  assert.match(none.errors!.join('; '), 'no enabled IPv4 pool for node node1 allows use Workload; pools selecting it: tunnels (10.251.0.0/24, allowedUses [Tunnel])');
  const named = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h-none', attrs: { node: 'node1' }, pools: ['tunnels'] });
  assert.equal(named.ips, []);
  assert.is(named.noPool, true);
  // A given address in the Tunnel pool is refused for a pod, taken for a tunnel.
  try {
    await ipam.assignIp({ ip: '10.251.0.9', handleId: 'h-ip', node: 'node1', use: 'Workload' });
    assert.unreachable('10.251.0.9 is in a Tunnel-only pool');
  } catch (e) {
    assert.match((e as Error).message, '10.251.0.9 is in IP pool tunnels, which is not allowed for use Workload (allowedUses [Tunnel])');
  }
  await ipam.assignIp({ ip: '10.251.0.9', handleId: 'h-ip', node: 'node1', use: 'Tunnel' });
  assert.ok(await ipam.allocationOf('10.251.0.9'));

  // A pool without allowedUses allows both (Calico's default [Workload, Tunnel]).
  await setup(kv, { pools: [{ name: 'both', cidr: '10.253.0.0/24' }] });
  const both = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h-both', attrs: { node: 'node1' } });
  assert.ok(inNet(both.ips[0]!, '10.253.0.0/24'), `${both.ips[0]} from the default pool`);
  const bothTunnel = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h-both-t', attrs: { node: 'node1' }, use: 'Tunnel', pools: ['both'] });
  assert.ok(inNet(bothTunnel.ips[0]!, '10.253.0.0/24'), `${bothTunnel.ips[0]} tunnel address from the default pool`);
});

test('a stored pool that fails its schema is skipped with a warning; its addresses are never handed out', async () => {
  const kv = await emptied();
  await setup(kv, {
    pools: [
      { name: 'outer', cidr: '10.70.0.0/24', spec: { vxlanMode: 'Always' } },
      // Written by another tool: Calico's validator refuses the lower case too; IPAM must go on.
      { name: 'calico-new', cidr: '10.70.0.0/25', spec: { ipipMode: 'always', blockSize: 26 } },
    ],
    nodes: ['node1'],
  });
  const warnings: string[] = [];
  const ipam = new Ipam(kv, { blockSearch: 'sequential', warn: (m) => warnings.push(m) });
  assert.equal((await ipam.listPools()).map((p) => p.name), ['outer']);
  // Sequential search starts at 10.70.0.0/26, inside the skipped pool: it is not outer's free space.
  const got = await ipam.autoAssign({ node: 'node1', count: 3, handleId: 'h1', attrs: { node: 'node1' } });
  assert.is(got.errors, undefined);
  assert.is(got.ips.length, 3);
  for (const ip of got.ips) assert.ok(inNet(ip, '10.70.0.128/25'), `${ip} is outside the skipped pool 10.70.0.0/25`);
  assert.is(warnings.length, 1, `one warning per pool and instance: ${warnings.join(' | ')}`);
  assert.match(warnings[0]!, '/calico/resources/v3/projectcalico.org/ippools/calico-new: spec.ipipMode: ');
  assert.match(warnings[0]!, 'IPAM skips this pool (no address inside 10.70.0.0/25 is assigned)');
  try {
    await ipam.assignIp({ ip: '10.70.0.5', handleId: 'h2', node: 'node1' });
    assert.unreachable('10.70.0.5 is in the skipped pool');
  } catch (e) {
    assert.match((e as Error).message, '10.70.0.5 is inside a pool IPAM skips: /calico/resources/v3/projectcalico.org/ippools/calico-new: spec.ipipMode');
  }
  // show and check read on; the skipped pool's CIDR is still a pool's, not "outside pools".
  assert.equal((await ipam.show()).map((u) => u.name), ['outer', 'calico-new']);
  assert.equal((await ipam.check()).filter((p) => p.kind === 'block-outside-pools'), []);
  // The tunnel address path reads on as well (from the readable VXLAN pool).
  const t = await reconcileTunnelAddrs(kv, 'node1', { assignV6: false });
  assert.is(t.v4.action, 'assigned');
  assert.ok(inNet(t.v4.addr!, '10.70.0.128/25'), `tunnel address ${t.v4.addr} outside the skipped pool`);
});

test('ipam show: the blocks of a skipped pool are listed under it, not as orphaned (only those in no pool are)', async () => {
  const kv = await emptied();
  await setup(kv, {
    pools: [
      { name: 'ok', cidr: '10.71.0.0/24', spec: { vxlanMode: 'Always', blockSize: 26 } },
      { name: 'odd', cidr: '10.72.0.0/24', spec: { ipipMode: 'always', blockSize: 26 } },
      { name: 'odd-off', cidr: '10.73.0.0/24', spec: { ipipMode: 'always', blockSize: 26, disabled: true } },
      { name: 'odd-flag', cidr: '10.74.0.0/24', spec: { blockSize: 26, disabled: 'yes' } },
    ],
    nodes: ['node1'],
  });
  const ipam = new Ipam(kv, { blockSearch: 'sequential', warn: () => {} });
  await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h1', attrs: { node: 'node1' } });
  // A block another tool's IPAM made in its pool, and one in no pool at all.
  for (const cidr of ['10.72.0.64/26', '10.99.0.0/30']) {
    const n = parseNet(cidr)!;
    assert.ok(await kv.create(blockKey(n), AllocationBlock.create(n, null, 1n, null).encode()));
  }
  const show = await ipam.show();
  assert.equal(show.map((u) => [u.name, u.cidr, u.inUse, u.blocks.map((b) => b.cidr)]), [
    ['ok', '10.71.0.0/24', 1, ['10.71.0.0/26']],
    ['odd', '10.72.0.0/24', 0, ['10.72.0.64/26']],
    ['odd-flag', '10.74.0.0/24', 0, []],
    ['odd-off', '10.73.0.0/24', 0, []],
    ['orphaned allocation blocks', '0.0.0.0/0', 0, ['10.99.0.0/30']],
  ]);
  assert.match(show[1]!.skipped ?? '', '/calico/resources/v3/projectcalico.org/ippools/odd: spec.ipipMode: ');
  assert.is(show[0]!.skipped, undefined);
  // disabled as stored for a pool skipped for another reason (absent: false, as Calico reads it);
  // unknown (null) when spec.disabled itself is what cannot be read, not "false"
  assert.equal(show.map((u) => [u.name, u.disabled]), [['ok', false], ['odd', false], ['odd-flag', null], ['odd-off', true], ['orphaned allocation blocks', false]]);
  assert.match(show[2]!.skipped ?? '', 'ippools/odd-flag: spec.disabled');
});


test('assignmentMode Manual (Calico v3.30+): a Manual pool gives addresses only when named or asked for by address, both families; tunnel addresses use it as Calico does', async () => {
  const kv = await emptied();
  await setup(kv, {
    pools: [
      { name: 'auto4', cidr: '10.81.0.0/24', spec: { blockSize: 26 } },
      { name: 'manual4', cidr: '10.82.0.0/24', spec: { blockSize: 26, assignmentMode: 'Manual', vxlanMode: 'Always' } },
      { name: 'auto6', cidr: 'fd00:81::/120', spec: { blockSize: 122, assignmentMode: 'Automatic' } },
      { name: 'manual6', cidr: 'fd00:82::/120', spec: { blockSize: 122, assignmentMode: 'Manual' } },
    ],
    nodes: ['node1'],
  });
  const ipam = new Ipam(kv, { blockSearch: 'sequential' });
  assert.equal((await ipam.listPools()).map((p) => `${p.name}:${p.assignmentMode}`).sort(), ['auto4:Automatic', 'auto6:Automatic', 'manual4:Manual', 'manual6:Manual']);
  // Not named: only the Automatic pools, many addresses (several blocks' worth would not change it).
  const v4 = await ipam.autoAssign({ node: 'node1', count: 70, handleId: 'h4', attrs: { node: 'node1' } });
  assert.is(v4.ips.length, 70, (v4.errors ?? []).join('; '));
  for (const ip of v4.ips) assert.ok(inNet(ip, '10.81.0.0/24'), `${ip} from the Automatic pool`);
  const v6 = await ipam.autoAssign({ node: 'node1', count: 3, handleId: 'h6', attrs: { node: 'node1' }, version: 6 });
  for (const ip of v6.ips) assert.ok(inNet(ip, 'fd00:81::/120'), `${ip} from the Automatic IPv6 pool`);
  // Named (by name or CIDR): the Manual pool gives.
  const named4 = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'hm4', attrs: { node: 'node1' }, pools: ['manual4'] });
  assert.ok(inNet(named4.ips[0]!, '10.82.0.0/24'), `${named4.ips[0]} from the named Manual pool`);
  const named6 = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'hm6', attrs: { node: 'node1' }, version: 6, pools: ['fd00:82::/120'] });
  assert.ok(inNet(named6.ips[0]!, 'fd00:82::/120'), `${named6.ips[0]} from the named Manual IPv6 pool`);
  // An address asked for (Calico's AssignIP) is given from a Manual pool.
  await ipam.assignIp({ ip: '10.82.0.200', handleId: 'hip', node: 'node1', use: 'Workload' });
  assert.ok(await ipam.allocationOf('10.82.0.200'));
  // The node now has an affine block in manual4: a request naming no pool still does not use it.
  const again = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h4b', attrs: { node: 'node1' } });
  assert.ok(inNet(again.ips[0]!, '10.81.0.0/24'), `${again.ips[0]} not from the Manual pool's affine block`);
  // Only Manual pools left enabled: no pool for an unnamed request, and the message says why.
  for (const name of ['auto4', 'auto6']) {
    const cur = (await kv.get(IPPOOL_PREFIX + name))!;
    const spec = JSON.parse(cur.value).spec as Record<string, unknown>;
    assert.ok(await kv.update(IPPOOL_PREFIX + name, poolValue(name, String(spec.cidr), { ...spec, disabled: true }), cur.modRevision));
  }
  const none = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'hn', attrs: { node: 'node1' } });
  assert.equal(none.ips, []);
  assert.is(none.noPool, true);
  assert.match(none.errors!.join('; '), 'manual4 (10.82.0.0/24, assignmentMode Manual: used only when named, nodeSelector "all()")');
  const none6 = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'hn', attrs: { node: 'node1' }, version: 6 });
  assert.is(none6.noPool, true);
  // Tunnel addresses: Calico's allocateip names the node's VXLAN pools to AutoAssign, so a Manual
  // VXLAN pool gives the VTEP address (podway's tunnel-addrs.ts the same).
  const t = await reconcileTunnelAddrs(kv, 'node1', { assignV6: false });
  assert.is(t.v4.action, 'assigned');
  assert.ok(inNet(t.v4.addr!, '10.82.0.0/24'), `tunnel address ${t.v4.addr} from the Manual VXLAN pool`);
});

test('assignmentMode: only Automatic or Manual; a stored pool with another value is skipped with a warning', async () => {
  const kv = await emptied();
  await setup(kv, {
    pools: [
      { name: 'good', cidr: '10.83.0.0/24', spec: { blockSize: 26 } },
      { name: 'odd', cidr: '10.84.0.0/24', spec: { blockSize: 26, assignmentMode: 'manual' } },
    ],
    nodes: ['node1'],
  });
  const warnings: string[] = [];
  const ipam = new Ipam(kv, { blockSearch: 'sequential', warn: (m) => warnings.push(m) });
  const got = await ipam.autoAssign({ node: 'node1', count: 1, handleId: 'h', attrs: { node: 'node1' } });
  assert.ok(inNet(got.ips[0]!, '10.83.0.0/24'));
  assert.match(warnings.join('\n'), /ippools\/odd: spec\.assignmentMode/);
});

test.run();
