/**
 * A two-node cluster on the embedded datastore (root, network namespaces): the pool and the pods'
 * WorkloadEndpoints are written in Calico's etcd v3 layout, IPAM holds the pods' addresses, and
 * each `podway run --datastore embedded:DIR` registers its own Node (address by first-found, a
 * VXLAN tunnel address from IPAM), marks the datastore ready, and forwards from what it reads.
 * A change written while they run (the pool to IPIP) is applied through the watch.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Lab, LabNodeSpec } from '../../src/lab/lab';
import { FileKv } from '../../src/control/kv/file-kv';
import { Ipam } from '../../src/control/ipam';
import { deriveVtepMac } from '../../src/control/mac';
import { guard, teardown, isRoot, kindOf, until, logTail } from './e2e-kit';

const TWO: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'tap-1', type: 'tap' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }, { name: 'tap-2', type: 'tap' }] },
];

/**
 * A two-node lab on a fresh embedded datastore holding its pool (in `mode`) and WorkloadEndpoints,
 * the pods' addresses assigned through IPAM as a CNI ADD would (Lab.useKvDatastore); both podways
 * started on it. Always torn down.
 */
async function withKvLab(mode: 'vxlan' | 'ipip', fn: (lab: Lab, kv: FileKv) => Promise<void>): Promise<void> {
  if (!isRoot()) throw new Error('cluster tests need root (network namespaces)');
  const lab = guard(new Lab(TWO));
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-kv-'));
  const kv = new FileKv({ dir });
  try {
    lab.build();
    lab.setMode(mode);
    await lab.useKvDatastore(kv, `embedded:${dir}`);
    for (const n of lab.nodes) await lab.startPodway(n.name, 20_000);
    await fn(lab, kv);
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    await teardown(lab);
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('two podways on the embedded datastore register themselves, get VTEP addresses from IPAM and forward; a pool change applies live', async () => {
  await withKvLab('vxlan', async (lab, kv) => {
    const ipam = new Ipam(kv);

    // registered by podway itself: first-found address and a tunnel address inside its own block
    for (const n of lab.nodes) {
      const e = await kv.get(`/calico/resources/v3/projectcalico.org/nodes/${n.name}`);
      assert.ok(e, `Node ${n.name} registered`);
      const node = JSON.parse(e!.value) as { kind: string; metadata: { uid?: string }; spec: { bgp: { ipv4Address: string }; ipv4VXLANTunnelAddr?: string; vxlanTunnelMACAddr?: string } };
      assert.is(node.spec.vxlanTunnelMACAddr, deriveVtepMac(n.name), 'the VTEP MAC Felix derives');
      assert.is(node.kind, 'Node');
      assert.ok(node.metadata.uid, 'uid set on create');
      assert.is(node.spec.bgp.ipv4Address, `${n.ip}/${n.prefix}`);
      const vtep = node.spec.ipv4VXLANTunnelAddr!;
      assert.ok(vtep, `${n.name} has a VXLAN tunnel address`);
      const base = Number(n.block.split('.')[3].split('/')[0]);
      const last = Number(vtep.split('.')[3]);
      assert.ok(vtep.startsWith('10.244.0.') && last >= base && last < base + 64, `${n.name} VTEP ${vtep} inside its block ${n.block}`);
      assert.ok(n.log.some((l) => /VXLAN tunnel address .* assigned/.test(l)), n.log.join(' | '));
    }
    const ready = await kv.get('/calico/resources/v3/projectcalico.org/clusterinformations/default');
    assert.ok(ready && (JSON.parse(ready.value) as { spec: { datastoreReady: boolean } }).spec.datastoreReady, 'datastore marked ready');
    assert.equal((await ipam.check()).length, 0, 'IPAM consistent');

    const n2block = lab.node('node2').block;
    assert.ok(await until(async () => (await kindOf(lab.node('node1'), n2block)) === 'vxlan', 10_000), `node1 routes ${n2block} over vxlan`);
    for (const [a, b] of [['web-1', 'web-2'], ['tap-2', 'tap-1'], ['web-2', 'tap-1']]) {
      const p = lab.ping(a, lab.pod(b).ip, 4, 56, ['-W', '3']);
      assert.is(p.loss, 0, `${a} -> ${b}: ${JSON.stringify(p)}`);
      assert.is(p.ttl, 62);
    }

    // a change through the datastore while both run: the pool to IPIP
    await lab.applyMode('ipip');
    assert.ok(await until(async () => (await kindOf(lab.node('node1'), n2block)) === 'ipip', 10_000), `node1 routes ${n2block} over ipip after the edit`);
    const p = lab.ping('web-1', lab.pod('web-2').ip, 4, 56, ['-W', '3']);
    assert.is(p.loss, 0, `web-1 -> web-2 over ipip: ${JSON.stringify(p)}`);
  });
});

test('nodes that joined on an IPIP pool get VXLAN tunnel addresses when the pool turns to VXLAN, forward over it, and release them when it turns back', async () => {
  await withKvLab('ipip', async (lab, kv) => {
    const vtepOf = async (node: string) => {
      const e = await kv.get(`/calico/resources/v3/projectcalico.org/nodes/${node}`);
      return e ? (JSON.parse(e.value) as { spec: { ipv4VXLANTunnelAddr?: string } }).spec.ipv4VXLANTunnelAddr : undefined;
    };
    for (const n of lab.nodes) assert.is(await vtepOf(n.name), undefined, `${n.name} has no tunnel address while no pool uses VXLAN`);
    const n2block = lab.node('node2').block;
    assert.ok(await until(async () => (await kindOf(lab.node('node1'), n2block)) === 'ipip', 10_000));

    await lab.applyMode('vxlan');
    for (const n of lab.nodes) assert.ok(await until(async () => (await vtepOf(n.name)) !== undefined, 15_000), `${n.name} got a tunnel address: ${n.log.slice(-5).join(' | ')}`);
    assert.ok(await until(async () => (await kindOf(lab.node('node1'), n2block)) === 'vxlan', 15_000), `node1 routes ${n2block} over vxlan`);
    // The reply needs the way back too: node2 learns node1's tunnel address on its own schedule.
    const n1block = lab.node('node1').block;
    assert.ok(await until(async () => (await kindOf(lab.node('node2'), n1block)) === 'vxlan', 15_000), `node2 routes ${n1block} over vxlan`);
    const p = lab.ping('web-1', lab.pod('web-2').ip, 4, 56, ['-W', '3']);
    assert.is(p.loss, 0, `web-1 -> web-2 over vxlan: ${JSON.stringify(p)}`);
    assert.equal((await new Ipam(kv).check()).length, 0, 'IPAM consistent');

    // Back to IPIP: no pool uses VXLAN, so each running podway releases its tunnel address (IPAM
    // handle gone, the address free) and clears it from its Node, as calico-node does
    const held = new Map<string, string>();
    for (const n of lab.nodes) held.set(n.name, (await vtepOf(n.name))!);
    await lab.applyMode('ipip');
    for (const n of lab.nodes) assert.ok(await until(async () => (await vtepOf(n.name)) === undefined, 15_000), `${n.name} cleared its tunnel address: ${n.log.slice(-5).join(' | ')}`);
    const ipam = new Ipam(kv);
    for (const n of lab.nodes) {
      assert.is(await kv.get(`/calico/ipam/v2/handle/vxlan-tunnel-addr-${n.name}`), null, `${n.name}: handle released`);
      assert.is(await ipam.allocationOf(held.get(n.name)!), null, `${n.name}: ${held.get(n.name)} free again`);
      // podway says so once its datastore writes are done, through the log's pipe: waited for
      assert.ok(await until(() => n.log.some((l) => /IPv4 VXLAN tunnel address .* released/.test(l)), 10_000), `${n.name} logs the release: ${n.log.slice(-5).join(' | ')}`);
    }
    assert.ok(await until(async () => (await kindOf(lab.node('node1'), n2block)) === 'ipip', 15_000), `node1 routes ${n2block} over ipip again`);
    assert.is(lab.ping('web-1', lab.pod('web-2').ip, 4, 56, ['-W', '3']).loss, 0, 'web-1 -> web-2 over ipip again');
    assert.equal((await ipam.check()).length, 0, 'IPAM consistent after the release');
  });
});

test.run();
