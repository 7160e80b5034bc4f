/**
 * A Node's address overwritten by another process while its podway runs (root, network
 * namespaces, a real etcd in the lab's fabric namespace). Two podways on `etcd:`; node1 with its
 * address unset (the Node's own, first-found at start), node2 with `--ip` given; both with the
 * default 60 s address re-detection. An address no interface on the node holds is written into
 * each one's Node in etcd (as a second `podway run --node NAME` on another host did in the
 * operator review): the engine rejects that model ("no interface holds the node IP"), and the
 * node must write its own address back (first-found / the address in force for node1, the given
 * one for node2) promptly (the rejected model asks for a look; not the next 60 s tick), with a
 * warning naming the foreign address; every node routes to the right address again, pods talk,
 * both are ready, no restart.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { updateNodeSpec } from '../../src/control/node-registration';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, routes, until, waitLog } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
/** Held by no interface of the lab (the other host's address). */
const FOREIGN = { node1: '10.99.0.77', node2: '10.99.0.78' } as const;
/** Well below the 60 s re-detection tick: the repair comes from the rejected model. */
const REPAIR_WAIT_MS = 40_000;

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;

async function storedIp(name: string): Promise<string | undefined> {
  const e = await store!.kv.get(`/calico/resources/v3/projectcalico.org/nodes/${name}`);
  return e ? (JSON.parse(e.value) as { spec: { bgp?: { ipv4Address?: string } } }).spec.bgp?.ipv4Address : undefined;
}

const ping = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip, 1, 56, ['-W', '1']).received === 1;
const bothWays = () => ping('web-1', 'web-2') && ping('web-2', 'web-1');
const ready = async (name: string) => ((await controlRequest(lab!.node(name).control, { cmd: 'status' }, 5000)) as { ready?: boolean }).ready === true;
const viaFromOther = async (name: 'node1' | 'node2') => {
  const other = lab!.node(name === 'node1' ? 'node2' : 'node1');
  return (await routes(other)).find((r) => r.cidr === lab!.node(name).block)?.via;
};

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', 'podway-ip-overwritten-');
  await lab.useKvDatastore(store.kv, store.spec);
  await lab.startPodway('node1', 20_000);
  await lab.startPodway('node2', 20_000, ['--ip', `${lab.node('node2').ip}/24`]);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab);
  await store?.close();
});

test('at start: pods talk, both ready', async () => {
  assert.ok(await until(bothWays, 15_000, 100), 'pods talk');
  for (const n of ['node1', 'node2']) assert.ok(await until(() => ready(n), 15_000, 200), `${n} ready`);
});

for (const name of ['node1', 'node2'] as const) {
  test(`${name}'s Node address overwritten with one it does not hold (${FOREIGN[name]}): ${name} writes its own back, warning; routes and pods follow`, async () => {
    const n = lab!.node(name);
    const own = `${n.ip}/24`;
    assert.is(await storedIp(name), own);
    const mark = n.log.length;
    const written = await updateNodeSpec(store!.kv, name, (s) => {
      s.bgp = { ...((s.bgp ?? {}) as object), ipv4Address: `${FOREIGN[name]}/24` };
    });
    assert.ok(written, 'the foreign address written');
    assert.ok(await waitLog(n, new RegExp(`no interface holds the node IP ${FOREIGN[name].replace(/\./g, '\\.')}`), mark, 20_000), `${name} rejects the model: ${n.log.slice(mark).join(' | ')}`);
    assert.ok(await until(async () => (await storedIp(name)) === own, REPAIR_WAIT_MS, 200), `${name}'s Node has its own address again (${await storedIp(name)}): ${n.log.slice(mark).join(' | ')}`);
    assert.ok(await waitLog(n, new RegExp(`stored address ${FOREIGN[name].replace(/\./g, '\\.')} is not held by any interface here.*writing this node's address back \\(IPv4 ${FOREIGN[name].replace(/\./g, '\\.')}/24 -> ${own.replace(/\./g, '\\.')}\\)`), mark, 5000),
      `${name} warns naming the foreign address: ${n.log.slice(mark).join(' | ')}`);
    assert.ok(await until(async () => (await viaFromOther(name)) === n.ip, 20_000, 200), `the other node routes ${name}'s block to ${n.ip}: ${await viaFromOther(name)}`);
    assert.ok(await until(bothWays, 20_000, 200), 'pods talk again');
    assert.ok(await until(() => ready(name), 20_000, 200), `${name} ready again`);
    assert.is(n.proc?.exitCode, null, `${name}'s podway ran all along`);
  });
}

test('done', () => {
  ok = true;
});

test.run();
