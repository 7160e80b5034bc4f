/**
 * Felix's tunnel MTU settings honoured (src/control/felix-mtu.ts; root, network namespaces): two
 * podway nodes on one subnet, VXLAN, veth pods, an embedded datastore written as calicoctl would.
 * - FelixConfiguration default vxlanMTU 1400, set while podway runs: the model's MTUs (status,
 *   routes) follow on both nodes, said in the log ("applied live"); a pod's DF echo of 1400 bytes
 *   crosses, one of 1401 is answered with fragmentation needed, mtu 1400 (1401 crossed before);
 * - vxlanMTU 1480, more than the 1500 underlay takes once encapsulated: applied (status), warned in
 *   the log and status, and podway forwards at most 1450 (a bigger DF packet answered with mtu 1450,
 *   not encapsulated into a frame the underlay refuses);
 * - deleted: auto again (1450);
 * - node2 turned into a kernel node (src/lab/kernel.ts, the lab's Felix-programmed baseline): its
 *   vxlan.calico gets the MTU Felix would give it (auto 1450; the resource file's vxlanMTU; the
 *   datastore's 1400 given as the option), and its kernel answers a 1401-byte DF echo with mtu 1400.
 * Without the change the setting is only reported: the 1401-byte echo crosses and status says 1450.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore } from '../../src/lab/lab';
import { applyResource } from '../../src/control/v3-store';
import { kindInfo, resourceKey } from '../../src/control/calico-kinds';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logMessage, logTail, nsExec, until } from './e2e-kit';
import { configureKernelNode, labFelixMtus } from '../../src/lab/kernel';
import { getResource } from '../../src/control/v3-store';
import { resolveTunnelMtus } from '../../src/control/felix-mtu';

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;

interface Status { mtu?: { underlay: number; vxlan: number; ipip: number; pod: number } | null; felix?: { settings: { field: string; value: string; source: string }[]; mtuWarnings?: string[] } }
const status = async (node: string): Promise<Status> => (await controlRequest(lab!.node(node).control, { cmd: 'status' }, 5000)) as Status;
const put = (spec: Record<string, unknown>) => applyResource(store!.kv, { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec });

/** One DF echo of `total` bytes (IPv4 + ICMP headers included) from web-1 to web-2, the pod's route cache flushed first: ping's output. */
function dfPing(total: number): string {
  const web1 = lab!.pod('web-1');
  return nsExec(web1.ns, ['sh', '-c', `ip route flush cache; ping -n -c1 -W2 -M do -s ${total - 28} ${lab!.pod('web-2').ip} 2>&1; true`]);
}
const passes = (out: string) => /1 received/.test(out);

/** Waits until both nodes' model says vxlan `mtu`. */
async function modelMtu(mtu: number): Promise<void> {
  let last: unknown = null;
  const done = await until(async () => {
    const s = await Promise.all([status('node1'), status('node2')]);
    last = s.map((x) => x.mtu);
    return s.every((x) => x.mtu?.vxlan === mtu);
  }, 20_000, 100);
  assert.ok(done, `both models at vxlan ${mtu}: ${JSON.stringify(last)}`);
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ], { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('embedded', `podway-felixmtu-${process.pid}-`);
  await lab.useKvDatastore(store.kv, store.spec);
  await lab.startPodway('node1');
  await lab.startPodway('node2');
  // the pods' own MTU above every path here: what they may send is podway's to answer
  for (const p of ['web-1', 'web-2']) nsExec(lab.pod(p).ns, ['ip', 'link', 'set', 'eth0', 'mtu', '1500']);
  assert.ok(await until(() => lab!.ping('web-1', lab!.pod('web-2').ip, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'web-1 reaches web-2');
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 40));
  await teardown(lab);
  await store?.close();
});

test('auto: 1450 (1500 - 50); a DF echo of 1450 bytes crosses, 1451 is answered with mtu 1450', async () => {
  await modelMtu(1450);
  assert.ok(passes(dfPing(1450)), dfPing(1450));
  assert.ok(await until(() => passes(dfPing(1401)), 10_000, 200), 'a 1401-byte DF echo crosses');
  assert.match(dfPing(1451), /mtu = 1450/);
});

test('vxlanMTU 1400 set while running: applied live on both nodes, a DF echo of 1400 crosses and one of 1401 is answered with mtu 1400', async () => {
  const n1 = lab!.node('node1');
  const mark = n1.log.length;
  await put({ vxlanMTU: 1400 });
  await modelMtu(1400);
  const s = await status('node1');
  assert.equal(s.felix!.settings.find((x) => x.field === 'vxlanMTU'), { field: 'vxlanMTU', value: '1400', source: 'FelixConfiguration default' });
  assert.is(s.mtu!.pod, 1400, 'the pod MTU (new TAP/TUN pods) follows');
  assert.ok(await until(() => n1.log.slice(mark).some((l) => /vxlanMTU 0 \(auto\) -> 1400 \(from FelixConfiguration default\): applied live/.test(logMessage(l))), 10_000, 100), `said: ${n1.log.slice(mark).map(logMessage).join(' | ')}`);
  let out = '';
  assert.ok(await until(() => /mtu = 1400/.test(out = dfPing(1401)), 10_000, 200), `1401 bytes answered with fragmentation needed, mtu 1400: ${out}`);
  assert.ok(passes(out = dfPing(1400)), `1400 bytes cross: ${out}`);
  assert.equal(s.felix!.mtuWarnings ?? [], []);
});

test('vxlanMTU 1480, more than the underlay takes: applied and warned; podway forwards at most 1450', async () => {
  const n1 = lab!.node('node1');
  const mark = n1.log.length;
  await put({ vxlanMTU: 1480 });
  await modelMtu(1480);
  const s = await status('node1');
  assert.is(s.mtu!.pod, 1480, 'pods get 1480, as Felix gives them');
  assert.match((s.felix!.mtuWarnings ?? []).join(' '), 'vxlanMTU 1480 is larger than the underlay takes (1500 - 50 = 1450)');
  assert.ok(await until(() => n1.log.slice(mark).some((l) => /"level":"warn"/.test(l) && /vxlanMTU 1480 is larger than the underlay takes/.test(l)), 10_000, 100), 'warned in the log');
  let out = '';
  assert.ok(await until(() => passes(out = dfPing(1450)), 10_000, 200), `1450 bytes cross: ${out}`);
  assert.match(out = dfPing(1451), /mtu = 1450/, `1451 answered with the underlay's bound: ${out}`);
});

test('deleted: auto again', async () => {
  await store!.kv.delete(resourceKey(kindInfo('FelixConfiguration')!, 'default'));
  await modelMtu(1450);
  assert.equal((await status('node1')).felix!.mtuWarnings ?? [], []);
  assert.ok(await until(() => passes(dfPing(1450)), 10_000, 200), '1450 crosses');
  assert.match(dfPing(1451), /mtu = 1450/);
});

test('a kernel node (src/lab/kernel.ts, as Felix programs it) takes the tunnel MTU Felix would: 1450 with no setting, vxlanMTU 1400 from the datastore gives its vxlan.calico 1400, and its pod\'s 1401-byte DF echo is answered with mtu 1400 by its kernel', async () => {
  const n2 = lab!.node('node2');
  const deviceMtu = () => (JSON.parse(nsExec(n2.ns, ['ip', '-j', 'link', 'show', 'vxlan.calico'])) as { mtu: number }[])[0].mtu;
  await put({ vxlanMTU: 1400 });
  await modelMtu(1400);
  assert.is(await lab!.stopPodway('node2'), 0, 'node2 stopped');
  // no setting in the lab's resource file (this lab's podways read the KV store): auto, 1500 - 50
  configureKernelNode(lab!, n2, 'vxlan');
  assert.is(deviceMtu(), 1450);
  // the resource file's FelixConfiguration (labFelixMtus), node.<name> over default
  lab!.extraResources = ['apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  vxlanMTU: 1300', 'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: node.node2\nspec:\n  vxlanMTU: 1350'];
  try {
    assert.equal(labFelixMtus(lab!, n2), { vxlan: 1350 });
    configureKernelNode(lab!, n2, 'vxlan');
    assert.is(deviceMtu(), 1350);
  } finally {
    lab!.extraResources = [];
  }
  // the KV datastore's FelixConfiguration default, given as the option
  const spec = (await getResource(store!.kv, kindInfo('FelixConfiguration')!, 'default'))!.object.spec as Record<string, unknown>;
  configureKernelNode(lab!, n2, 'vxlan', { mtu: resolveTunnelMtus({ default: spec, node: null }) });
  assert.is(deviceMtu(), 1400);
  // web-2 now behind node2's kernel: 1400 crosses to podway's node1, 1401 is refused by its own kernel
  const web2 = lab!.pod('web-2');
  const ping = (total: number) => nsExec(web2.ns, ['sh', '-c', `ip route flush cache; ping -n -c1 -W2 -M do -s ${total - 28} ${lab!.pod('web-1').ip} 2>&1; true`]);
  let out = '';
  assert.ok(await until(() => passes(out = ping(1400)), 10_000, 200), `1400 bytes cross: ${out}`);
  assert.match(out = ping(1401), /mtu = 1400/, `1401 answered by the kernel node with mtu 1400: ${out}`);
  ok = true;
});

test.run();
