/**
 * A datastore locked by `calicoctl datastore migrate lock` (ClusterInformation default
 * datastoreReady: false), with the plugin run as a runtime runs it (harness.ts):
 * - etcd (a real one in the node's namespace): ADD and DEL are refused with Calico's code 999 and
 *   a message naming the lock and `calicoctl datastore migrate unlock`; ADD makes nothing; DEL
 *   removes the pod's interface and spools the release, which podway run's replayer leaves while
 *   locked and replays once unlocked; STATUS says it cannot serve ADD;
 * - the embedded store holding a locked ClusterInformation refuses ADD and DEL the same way, and
 *   its DEL spools too: `podway run` on that store leaves the entry while locked and replays it
 *   once unlocked;
 * - a config with etcd_discovery_srv or etcd_authority but no etcd_endpoints is refused (code 7,
 *   naming the key and the conflist) instead of using the default datastore.
 * Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { CniHarness, RunningPodway } from './harness';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import type { KvStore } from '../../src/control/kv/kv';
import { applyResource } from '../../src/control/v3-store';
import { Ipam } from '../../src/control/ipam';
import { controlRequest } from '../../src/dataplane/control-server';
import { CLUSTER_INFORMATION_KEY, markDatastoreReady, registerNode } from '../../src/control/node-registration';
import { pendingFileName } from '../../src/cni/pending-del';
import { PendingDelReplayer } from '../../src/cli/pending-del-replay';
import { LabEtcd, ETCD_BINARY } from '../../src/lab/etcd';
import { isRoot, sleep } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');


const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;

/** Sets ClusterInformation default's datastoreReady as `calicoctl datastore migrate lock/unlock` does. */
async function setReady(kv: KvStore, ready: boolean): Promise<void> {
  const e = (await kv.get(CLUSTER_INFORMATION_KEY))!;
  const obj = JSON.parse(e.value);
  obj.spec.datastoreReady = ready;
  assert.ok(await kv.update(CLUSTER_INFORMATION_KEY, JSON.stringify(obj), e.modRevision));
}

function podLinks(pod: { ip(...a: string[]): string }): string[] {
  return (JSON.parse(pod.ip('-j', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n !== 'lo');
}

test('etcd locked: ADD and DEL refused as Calico refuses them (999, naming the lock); DEL spools, replayed only once unlocked', async () => {
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const h = new CniHarness();
  let etcd: LabEtcd | null = null;
  let kv: EtcdKv | null = null;
  let replayer: PendingDelReplayer | null = null;
  try {
    await h.setup();
    etcd = await LabEtcd.start({ netns: h.node.name, host: '127.0.0.1' });
    kv = new EtcdKv({ endpoints: [etcd.localEndpoint], timeoutMs: 20_000 });
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'lock-pool' }, spec: { cidr: '10.250.25.0/24', blockSize: 26 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    await markDatastoreReady(kv);
    const extra = { datastore: `etcd:${etcd.endpoint}` };
    const handleOf = (id: string) => kv!.get(`/calico/ipam/v2/handle/podway.${id}`);

    const podA = h.pod('a');
    const idA = cid('a');
    await h.add(podA, idA, { extra });
    assert.ok(await handleOf(idA));

    await setReady(kv, false);
    const podB = h.pod('b');
    const idB = cid('b');
    const addB = await h.call({ command: 'ADD', containerId: idB, netns: podB.path, ifname: 'eth0', extra });
    assert.is(addB.exitCode, 1, addB.stdout);
    assert.is(addB.json.code, 999);
    assert.match(addB.json.msg, /^Calico is currently not ready to process requests: datastore etcd \S+ is locked \(ClusterInformation default has datastoreReady: false/);
    assert.match(addB.json.msg, 'calicoctl datastore migrate unlock');
    assert.equal(podLinks(podB), [], 'ADD made nothing in the pod');
    assert.is(await handleOf(idB), null);

    const st = await h.call({ command: 'STATUS', extra });
    assert.is(st.json?.code, 50, st.stdout);
    assert.match(st.json.msg, /cannot serve ADD: .* is locked/);

    // DEL: the runtime sees Calico's refusal; the pod's interface goes, the release is spooled.
    const delA = await h.call({ command: 'DEL', containerId: idA, netns: podA.path, ifname: 'eth0', extra });
    assert.is(delA.exitCode, 1, delA.stdout);
    assert.is(delA.json.code, 999);
    assert.match(delA.json.msg, /is locked .*calicoctl datastore migrate unlock/);
    assert.match(delA.stderr, /deferred to .*once the datastore is unlocked/);
    const fileA = path.join(h.pendingDelDir, pendingFileName('podway', idA, 'eth0'));
    assert.ok(existsSync(fileA), readdirSync(h.pendingDelDir).join(' '));
    assert.equal(podLinks(podA), []);
    assert.ok(await handleOf(idA), 'nothing released in the locked store');

    // podway run's replayer leaves the entry while locked, replays it once unlocked.
    const said: string[] = [];
    replayer = new PendingDelReplayer(h.pendingDelDir, { kind: 'etcd', endpoints: [etcd.localEndpoint] }, { info: (m) => said.push(m), warn: (m) => said.push(m) }, 3_600_000);
    replayer.kick('test');
    await replayer.idle();
    assert.match(replayer.status().lastError ?? '', /is locked .*calicoctl datastore migrate unlock/);
    assert.ok(existsSync(fileA), said.join(' | '));
    assert.ok(await handleOf(idA));

    await setReady(kv, true);
    replayer.kick('test');
    await replayer.idle();
    assert.not.ok(existsSync(fileA), said.join(' | '));
    assert.is(await handleOf(idA), null);
    assert.is(replayer.status().lastError, null);
    // the runtime's retry of the DEL (kubelet) finds nothing left
    const again = await h.call({ command: 'DEL', containerId: idA, netns: podA.path, ifname: 'eth0', extra });
    assert.is(again.exitCode, 0, again.stdout);
    await h.add(podB, idB, { extra });
  } finally {
    await replayer?.stop();
    await kv?.close().catch(() => undefined);
    await etcd?.stop();
    await h.cleanup();
  }
});

test('embedded store locked: ADD refused (999); DEL refused as on etcd, removes what is local and spools the release, which podway run leaves while locked and replays once unlocked', async () => {
  const h = new CniHarness();
  let podway: RunningPodway | null = null;
  try {
    await h.setup();
    await markDatastoreReady(h.kv);
    const handleOf = (id: string) => h.kv.get(`/calico/ipam/v2/handle/podway.${id}`);
    const podA = h.pod('a');
    const idA = cid('a');
    const addA = await h.add(podA, idA);
    const addrA = (addA.json.ips[0].address as string).split('/')[0];
    assert.ok(await handleOf(idA));

    await setReady(h.kv, false);
    const pod = h.pod('e');
    const r = await h.call({ command: 'ADD', containerId: cid('e'), netns: pod.path, ifname: 'eth0' });
    assert.is(r.exitCode, 1, r.stdout);
    assert.is(r.json.code, 999);
    assert.match(r.json.msg, `datastore embedded ${h.storeDir} is locked`);
    assert.equal(podLinks(pod), []);

    // DEL: Calico's refusal for the runtime; the pod's interface goes, the release is spooled
    // (podman never retries a DEL: without the spool the address would leak).
    const delA = await h.call({ command: 'DEL', containerId: idA, netns: podA.path, ifname: 'eth0' });
    assert.is(delA.exitCode, 1, delA.stdout);
    assert.is(delA.json.code, 999);
    assert.match(delA.json.msg, `datastore embedded ${h.storeDir} is locked`);
    assert.match(delA.stderr, /deferred to .*once the datastore is unlocked/);
    const fileA = path.join(h.pendingDelDir, pendingFileName('podway', idA, 'eth0'));
    assert.ok(existsSync(fileA), readdirSync(h.pendingDelDir).join(' '));
    assert.equal(podLinks(podA), []);
    assert.ok(await handleOf(idA), 'nothing released in the locked store');

    // podway run on that store (its spool directory given as the plugin's) leaves the entry while
    // locked: its first pass, at start, says why.
    h.addUplink(); // the node's address, for podway run
    const status = async () => ((await controlRequest(h.control, { cmd: 'status' }, 5000)) as { cniPendingDel: { pending: number; replayed: number; lastError: string | null } | null }).cniPendingDel;
    podway = h.startPodway(['--model-cache', 'none']);
    await podway.ready();
    assert.ok(await until(async () => /is locked/.test((await status())?.lastError ?? ''), 60_000), `the replay waits for the unlock: ${JSON.stringify(await status())} | ${podway.log.slice(-5).join(' | ')}`);
    assert.is((await status())!.pending, 1);
    assert.ok(existsSync(fileA));
    assert.ok(await handleOf(idA));
    await podway.stop();

    // unlocked: the next podway run's first pass replays it (a running one within a minute)
    await setReady(h.kv, true);
    podway = h.startPodway(['--model-cache', 'none']);
    await podway.ready();
    assert.ok(await until(async () => !existsSync(fileA) && (await status())?.replayed === 1, 60_000), `replayed: ${JSON.stringify(await status())} | ${podway.log.slice(-5).join(' | ')}`);
    assert.is(await handleOf(idA), null, 'the handle released');
    assert.is(await new Ipam(h.kv).allocationOf(addrA), null, 'the address is free');
    assert.equal(await new Ipam(h.kv).check(), []);
    assert.ok(podway.log.some((l) => l.includes('deferred CNI DEL replayed') && l.includes(idA)), podway.log.join('\n'));
    // a retry of the DEL (kubelet) finds nothing left
    const again = await h.call({ command: 'DEL', containerId: idA, netns: podA.path, ifname: 'eth0' });
    assert.is(again.exitCode, 0, again.stdout);
  } finally {
    await podway?.stop();
    await h.cleanup();
  }
});

test('etcd_discovery_srv or etcd_authority without etcd_endpoints: refused naming the key and the conflist, not the default datastore', async () => {
  const h = new CniHarness();
  try {
    await h.setup();
    const conflist = h.conflist.plugins[0].conflist as string;
    const pod = h.pod('d');
    for (const [key, value] of [['etcd_discovery_srv', 'example.test'], ['etcd_authority', '10.0.0.1:2379']]) {
      const r = await h.call({ command: 'ADD', containerId: cid('d'), netns: pod.path, ifname: 'eth0', extra: { datastore: undefined, [key]: value } });
      assert.is(r.exitCode, 1, r.stdout);
      assert.is(r.json.code, 7);
      assert.match(r.json.msg, `(${conflist}): ${key}: "${value}" without "etcd_endpoints"`);
      assert.match(r.json.msg, /would land in embedded \/var\/lib\/podway/);
    }
    assert.equal(podLinks(pod), []);
    // given with a datastore ("datastore" here; "etcd_endpoints" alike) it is only named as not read
    const ok = await h.call({ command: 'ADD', containerId: cid('d'), netns: pod.path, ifname: 'eth0', extra: { etcd_discovery_srv: 'example.test' } });
    assert.is(ok.exitCode, 0, ok.stdout);
    assert.match(ok.stderr, /etcd_discovery_srv: not read/);
  } finally {
    await h.cleanup();
  }
});

test.run();
