/**
 * etcd wiped under running podways (root, network namespaces): two podways on `etcd:` (etcd
 * started by the lab in the fabric namespace); etcd is stopped (by PID), its data dir moved aside,
 * and a fresh etcd started at the same URL. The resumed watches are accepted by the new etcd as
 * watches of future revisions, silently: podway must see that the store went back (its revision
 * is below the one last delivered; a fresh one-member etcd with the same name and URLs has the
 * same cluster_id), say so, list everything again and register its node again (Node with its
 * addresses, VXLAN tunnel addresses, the datastore-ready mark), as at start:
 * - both Nodes are in the new etcd (new Nodes: another uid), with their underlay addresses and
 *   tunnel addresses; ClusterInformation says the datastore is ready;
 * - what is written to the new store reaches the model: the pool and pods written again (as the
 *   operator and the CNI would) make the pods talk again, with no podway restart;
 * - both podways say `ready`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, until, waitLog } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const nodeKey = (n: string) => `/calico/resources/v3/projectcalico.org/nodes/${n}`;

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;

interface StoredNode {
  metadata: { uid?: string };
  spec: { bgp?: { ipv4Address?: string }; ipv4VXLANTunnelAddr?: string };
}

/** A Node as etcd holds it now (null: none, or etcd not answering). */
async function storedNode(name: string): Promise<StoredNode | null> {
  const e = await store!.kv.get(nodeKey(name)).catch(() => null);
  return e ? (JSON.parse(e.value) as StoredNode) : null;
}

const ping = (from: string, to: string) => lab!.ping(from, lab!.pod(to).ip, 1, 56, ['-W', '1']).received === 1;
const bothWays = () => ping('web-1', 'web-2') && ping('web-2', 'web-1');
const ready = async (name: string) => ((await controlRequest(lab!.node(name).control, { cmd: 'status' }, 5000)) as { ready?: boolean }).ready === true;
/** The clusterGUID `podway status` shows, and the one etcd holds now. */
const statusGuid = async (name: string) => ((await controlRequest(lab!.node(name).control, { cmd: 'status' }, 5000)) as { clusterGuid?: string | null }).clusterGuid;
const storedGuid = async () => {
  const info = await store!.kv.get('/calico/resources/v3/projectcalico.org/clusterinformations/default').catch(() => null);
  return info ? (JSON.parse(info.value) as { spec: { clusterGUID?: string } }).spec.clusterGUID : undefined;
};
let guidBefore: string | undefined;
const PODWAY_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const statusText = (name: string) => execFileSync(process.execPath, [PODWAY_BIN, 'status', '--control', lab!.node(name).control], { encoding: 'utf8', timeout: 30_000 });

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', 'podway-etcd-wiped-');
  await lab.useKvDatastore(store.kv, store.spec);
  await lab.startPodway('node1', 20_000);
  await lab.startPodway('node2', 20_000);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab); // etcd too (killed by PID, its data removed)
  await store?.close();
});

const before = new Map<string, StoredNode>();

test('at start: both Nodes registered, pods talk, both ready', async () => {
  for (const n of ['node1', 'node2']) {
    const s = await storedNode(n);
    assert.ok(s?.metadata.uid && s.spec.ipv4VXLANTunnelAddr, `${n} registered with a tunnel address: ${JSON.stringify(s)}`);
    before.set(n, s!);
  }
  assert.ok(await until(bothWays, 15_000, 100), 'pods talk');
  for (const n of ['node1', 'node2']) assert.ok(await until(() => ready(n), 15_000, 200), `${n} ready`);
  guidBefore = await storedGuid();
  assert.match(guidBefore ?? '', /^[0-9a-f]{32}$/, 'one clusterGUID');
  for (const n of ['node1', 'node2']) assert.is(await statusGuid(n), guidBefore, `${n}'s status shows the datastore's clusterGUID`);
});

test('etcd wiped (a fresh data dir at the same URL): both podways see it, list again and register again; pods talk again once the pool and pods are written again', async () => {
  const etcd = await lab!.startEtcd(); // the lab's etcd (already running)
  // More writes than the fresh store will have made when the podways come back to it.
  for (let i = 0; i < 30; i++) await store!.kv.create(`/podway-test/filler-${i}`, 'x');
  const marks = new Map(['node1', 'node2'].map((n) => [n, lab!.node(n).log.length]));
  await etcd.kill();
  renameSync(etcd.dataDir, `${etcd.dataDir}-old`); // in the lab's etcd dir: removed at teardown
  mkdirSync(etcd.dataDir, { mode: 0o700 });
  await etcd.start();

  for (const name of ['node1', 'node2']) {
    const n = lab!.node(name);
    assert.ok(await waitLog(n, /etcd at \S+ (went back to revision \d+ \(we had seen revision \d+\)|is a different cluster .*): re-listing and re-registering/, marks.get(name)!, 30_000),
      `${name} says the store went back: ${n.log.slice(marks.get(name)!).join(' | ')}`);
  }
  for (const name of ['node1', 'node2']) {
    assert.ok(await until(async () => (await storedNode(name)) !== null, 30_000, 200), `${name}'s Node registered again in the new etcd: ${lab!.node(name).log.slice(marks.get(name)!).join(' | ')}`);
    const s = (await storedNode(name))!;
    assert.is.not(s.metadata.uid, before.get(name)!.metadata.uid, 'a new Node');
    assert.is(s.spec.bgp?.ipv4Address, `${lab!.node(name).ip}/24`, 'with the node\'s underlay address');
  }
  // The last step of a registration (after the Node and tunnel addresses).
  const markedReady = async () => {
    const info = await store!.kv.get('/calico/resources/v3/projectcalico.org/clusterinformations/default').catch(() => null);
    return !!info && (JSON.parse(info.value) as { spec: { datastoreReady: boolean } }).spec.datastoreReady;
  };
  assert.ok(await until(markedReady, 30_000, 200), 'datastore marked ready again');
  for (const name of ['node1', 'node2']) {
    assert.ok(await waitLog(lab!.node(name), new RegExp(`node ${name} registered again after: etcd at`), marks.get(name)!, 30_000), `${name} says it registered again`);
  }

  // The operator writes the pool again, the CNI its pods: the podways' models follow the new store.
  await lab!.useKvDatastore(store!.kv, store!.spec);
  for (const name of ['node1', 'node2']) {
    assert.ok(await until(async () => !!(await storedNode(name))?.spec.ipv4VXLANTunnelAddr, 30_000, 200), `${name} gets a tunnel address from the new pool: ${JSON.stringify(await storedNode(name))}`);
  }
  assert.ok(await until(bothWays, 30_000, 200), `pods talk again: ${lab!.node('node1').log.slice(-8).join(' | ')}`);
  for (const n of ['node1', 'node2']) assert.ok(await until(() => ready(n), 20_000, 200), `${n} ready`);
  for (const n of ['node1', 'node2']) assert.is(lab!.node(n).proc?.exitCode, null, `${n}'s podway ran all along`);
  // the new store's ClusterInformation, made by the first registration again: another GUID, shown
  const guidAfter = await storedGuid();
  assert.match(guidAfter ?? '', /^[0-9a-f]{32}$/);
  assert.is.not(guidAfter, guidBefore);
  for (const n of ['node1', 'node2']) assert.is(await statusGuid(n), guidAfter, `${n}'s status shows the new clusterGUID`);
  assert.match(statusText('node1'), new RegExp(`^datastore etcd:\\S+ \\(clusterGUID ${guidAfter!.slice(0, 8)}\\)$`, 'm'));
  ok = true;
});

test.run();
