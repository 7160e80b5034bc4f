/**
 * A pod removed while etcd is down (src/cni/pending-del.ts, src/cli/pending-del-replay.ts), with
 * the plugin run as a runtime runs it (harness.ts) and a real etcd inside the node's namespace
 * (stopped by PID and started again on the same data dir):
 * - DEL with etcd down succeeds, removes the pod's interface and its host veth, says on stderr
 *   that the release was deferred, and leaves one spool file per attachment (a second DEL of the
 *   same container keeps one);
 * - `podway ipam check` lists the deferred releases;
 * - an ADD of the same container ID once etcd is back replays its own entry first, and keeps its
 *   new address and endpoint;
 * - `podway run` started once etcd is back replays the rest: the allocation released, the
 *   endpoint deleted, the spool empty; a pod re-created under the same name (k8s endpoint names
 *   carry the pod name) keeps its endpoint and addresses; status counts the replays;
 * - a DEL that cannot take the IPAM lock within its bound is deferred the same way;
 * - with podway running through a second outage, the DELs deferred meanwhile are replayed once
 *   etcd answers again.
 * Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CniHarness, RunningPodway } from './harness';
import { Ipam } from '../../src/control/ipam';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { FlockLock } from '../../src/cni/flock-lock';
import { flockFileOf } from '../../src/cni/ipam-lock';
import { applyResource } from '../../src/control/v3-store';
import { registerNode } from '../../src/control/node-registration';
import { controlRequest } from '../../src/dataplane/control-server';
import { hostVethName, workloadEndpointName } from '../../src/cni/names';
import { pendingFileName } from '../../src/cni/pending-del';
import { LabEtcd, ETCD_BINARY } from '../../src/lab/etcd';
import { isRoot, sh, sleep } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const PODWAY_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;
const WEPS = '/calico/resources/v3/projectcalico.org/workloadendpoints/';

const METRICS_PORT = 9391;

/** podway run's /metrics, fetched inside the node's namespace. */
function metricsText(ns: string): string {
  return sh('ip', ['netns', 'exec', ns, 'curl', '-sf', '--max-time', '5', `http://127.0.0.1:${METRICS_PORT}/metrics`]);
}

/** One unlabelled series' value in the Prometheus text (NaN when absent). */
function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}


test('DEL while etcd is down: local teardown, spooled, replayed by an ADD of the same container and by podway run; a re-created pod of the same name is kept', async () => {
  if (!existsSync(ETCD_BINARY)) throw new Error(`${ETCD_BINARY} missing (scripts/setup.sh installs etcd-server)`);
  const h = new CniHarness();
  let etcd: LabEtcd | null = null;
  let kv: EtcdKv | null = null;
  let podway: RunningPodway | null = null;
  let ok = false;
  try {
    await h.setup();
    h.addUplink(); // podway run's --ip 10.99.0.1/24 lives on the node's eth0
    etcd = await LabEtcd.start({ netns: h.node.name, host: '127.0.0.1' });
    kv = new EtcdKv({ endpoints: [etcd.localEndpoint], timeoutMs: 20_000 });
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'defer-pool' }, spec: { cidr: '10.250.24.0/24', blockSize: 26 } });
    await registerNode(kv, { name: h.nodeName, ipv4Address: '10.99.0.1/24' });
    const datastore = `etcd:${etcd.endpoint}`;
    const extra = { datastore, datastoreTimeoutMs: 1000 };
    const k8s = (pod: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${pod}`;
    const handleOf = (id: string) => kv!.get(`/calico/ipam/v2/handle/podway.${id}`);
    const wepOf = async (pod: string) => {
      const e = await kv!.get(`${WEPS}shop/${workloadEndpointName(h.nodeName, { orchestrator: 'k8s', namespace: 'shop', pod }, 'x', 'eth0')}`);
      return e ? JSON.parse(e.value) : null;
    };

    // a: deleted while etcd is down, replayed by podway run; b1: the same, and its pod name is
    // then used again by b2; c: deleted while down, then ADDed again under the same container ID.
    const podA = h.pod('a');
    const podB1 = h.pod('b1');
    const podC = h.pod('c');
    const [idA, idB1, idB2, idC] = [cid('a'), cid('b1'), cid('b2'), cid('c')];
    const addA = await h.add(podA, idA, { extra, args: k8s('web') });
    await h.add(podB1, idB1, { extra, args: k8s('cart') });
    await h.add(podC, idC, { extra, args: k8s('ledger') });
    assert.is(h.caliLinks().length, 3);
    assert.ok(await handleOf(idA));

    await etcd.kill();
    const delA = await h.call({ command: 'DEL', containerId: idA, netns: podA.path, ifname: 'eth0', extra, args: k8s('web') });
    assert.is(delA.exitCode, 0, `DEL with etcd down succeeds: ${delA.stdout} ${delA.stderr}`);
    assert.is(delA.stdout, '');
    assert.match(delA.stderr, /unreachable.*the release of IPAM handle podway\.c.* is deferred to /);
    const fileA = path.join(h.pendingDelDir, pendingFileName('podway', idA, 'eth0'));
    assert.ok(existsSync(fileA), `spooled: ${readdirSync(h.pendingDelDir).join(' ')}`);
    const entryA = JSON.parse(readFileSync(fileA, 'utf8'));
    assert.is(entryA.containerID, idA);
    assert.is(entryA.handle, `podway.${idA}`);
    assert.is(entryA.datastore, `etcd:${etcd.endpoint}`);
    // the cluster_id the plugin saw at ADD (etcd is down now): a podway run naming the same etcd
    // by another endpoint string still knows the entry as its own
    assert.match(entryA.clusterId, /^[0-9]+$/, JSON.stringify(entryA));
    assert.is(entryA.interfaceName, hostVethName({ orchestrator: 'k8s', namespace: 'shop', pod: 'web' }, idA));
    assert.not.ok(h.caliLinks().includes(entryA.interfaceName), 'the host veth is gone');
    assert.equal(h.ipJson(podA, 'link', 'show').map((l) => l.ifname), ['lo'], 'the pod interface is gone');
    // a second DEL of the same container: success again, still one entry
    const delA2 = await h.call({ command: 'DEL', containerId: idA, netns: podA.path, ifname: 'eth0', extra, args: k8s('web') });
    assert.is(delA2.exitCode, 0, delA2.stdout);
    for (const [pod, id, name] of [[podB1, idB1, 'cart'], [podC, idC, 'ledger']] as const) {
      const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra, args: k8s(name) });
      assert.is(d.exitCode, 0, d.stdout + d.stderr);
    }
    assert.is(readdirSync(h.pendingDelDir).filter((n) => n.endsWith('.json')).length, 3, readdirSync(h.pendingDelDir).join(' '));
    assert.equal(h.caliLinks(), []);

    await etcd.start();
    // The datastore still holds all three (nothing reached it).
    assert.ok(await handleOf(idA));
    assert.ok(await wepOf('web'));
    // ipam check lists them (not as problems)
    const check = sh('ip', ['netns', 'exec', h.node.name, process.execPath, PODWAY_BIN, 'ipam', 'check', '--datastore', datastore, '--cni-pending-del-dir', h.pendingDelDir, '--grace-period', '0']);
    assert.match(check, `handle podway.${idA} and endpoint shop/`);
    assert.match(check, 'Found 3 deferred releases pending for this datastore');
    // Without --cni-pending-del-dir: the dir the installed conflist names (as the plugin finds
    // it), said in the output with the file (review D, LOW 11: the default dir was read, "0").
    const fromConf = sh('ip', ['netns', 'exec', h.node.name, process.execPath, PODWAY_BIN, 'ipam', 'check', '--datastore', datastore, '--cni-conf-dir', h.confDir, '--grace-period', '0']);
    assert.match(fromConf, 'Found 3 deferred releases pending for this datastore');
    assert.match(fromConf, `(${h.pendingDelDir}, from ${path.join(h.confDir, '10-podway.conflist')})`);

    // c ADDed again under the same container ID: its own entry is replayed first
    const podC2 = h.pod('c2');
    const addC2 = await h.add(podC2, idC, { extra, args: k8s('ledger') });
    assert.match(addC2.stderr, 'replayed the DEL deferred at');
    assert.not.ok(existsSync(path.join(h.pendingDelDir, pendingFileName('podway', idC, 'eth0'))));
    const addrC2 = addC2.json.ips[0].address as string;
    // b1's pod name re-created by another container (b2) before the replay
    const podB2 = h.pod('b2');
    const addB2 = await h.add(podB2, idB2, { extra, args: k8s('cart') });
    assert.is((await wepOf('cart')).spec.containerID, idB2);

    // metrics on the node namespace's own loopback (nothing else listens there)
    sh('ip', ['-n', h.node.name, 'link', 'set', 'lo', 'up']);
    podway = h.startPodway(['--model-cache', 'none', '--metrics-port', String(METRICS_PORT), '--metrics-host', '127.0.0.1'], datastore);
    await podway.ready();
    // the spool empty and both replays logged (a replay removes its entry before it lets the lock go and logs)
    const drained = await until(() => readdirSync(h.pendingDelDir).filter((n) => n.endsWith('.json')).length === 0 && podway!.log.filter((l) => l.includes('deferred CNI DEL replayed')).length === 2, 60_000);
    assert.ok(drained, `podway run replayed the spool: ${readdirSync(h.pendingDelDir).join(' ')} | ${podway.log.slice(-5).join(' | ')}`);
    // a: released and deleted
    assert.is(await handleOf(idA), null);
    assert.is(await wepOf('web'), null);
    const ipam = new Ipam(kv);
    assert.is(await ipam.allocationOf(addA.json.ips[0].address.split('/')[0]), null, 'a\'s address is free');
    // b1: released; the endpoint of its name is b2's and stays, with b2's address held
    assert.is(await handleOf(idB1), null);
    const cart = await wepOf('cart');
    assert.ok(cart, 'the re-created pod\'s endpoint stays');
    assert.is(cart.spec.containerID, idB2);
    assert.is((await ipam.allocationOf(addB2.json.ips[0].address.split('/')[0]))?.handleId, `podway.${idB2}`);
    // c: the new attachment is untouched
    assert.is((await wepOf('ledger')).spec.containerID, idC);
    assert.is((await ipam.allocationOf(addrC2.split('/')[0]))?.handleId, `podway.${idC}`);
    assert.equal(await ipam.check(), []);
    assert.ok(podway.log.some((l) => /deferred CNI DEL replayed: container c/.test(l) && l.includes(idA)), podway.log.join('\n'));
    assert.ok(podway.log.some((l) => l.includes(idB1) && /kept shop\//.test(l)), podway.log.join('\n'));
    const st = (await controlRequest(h.control, { cmd: 'status' }, 5000)) as { cniPendingDel: { pending: number; replayed: number; failed: number } };
    assert.is(st.cniPendingDel.pending, 0, JSON.stringify(st.cniPendingDel));
    assert.is(st.cniPendingDel.replayed, 2, JSON.stringify(st.cniPendingDel));
    assert.is(st.cniPendingDel.failed, 0, JSON.stringify(st.cniPendingDel));
    const status = sh('ip', ['netns', 'exec', h.node.name, process.execPath, PODWAY_BIN, 'status', '--control', h.control]);
    assert.match(status, `cni deferred DELs (${h.pendingDelDir}): 0 pending, 2 replayed, 0 failed`);
    // the same counts in `podway counters` and in /metrics
    const cs = (await controlRequest(h.control, { cmd: 'counters' }, 5000)) as { cniPendingDel: { pending: number; replayed: number; failed: number } };
    assert.equal([cs.cniPendingDel.pending, cs.cniPendingDel.replayed, cs.cniPendingDel.failed], [0, 2, 0], JSON.stringify(cs.cniPendingDel));
    const counters = sh('ip', ['netns', 'exec', h.node.name, process.execPath, PODWAY_BIN, 'counters', '--control', h.control]);
    assert.match(counters, `cni deferred DELs (${h.pendingDelDir}): 0 pending, 2 replayed, 0 failed`);
    const m1 = metricsText(h.node.name);
    assert.is(metricValue(m1, 'podway_cni_pending_dels_replayed_total'), 2, m1);
    assert.is(metricValue(m1, 'podway_cni_pending_dels'), 0);
    assert.is(metricValue(m1, 'podway_cni_pending_dels_failed_total'), 0);

    // the IPAM lock not taken within its bound (held here): c's DEL is deferred too
    const holder = new FlockLock(flockFileOf(h.ipamLockFile));
    await holder.acquire(5000);
    try {
      const delC2 = await h.call({ command: 'DEL', containerId: idC, netns: podC2.path, ifname: 'eth0', extra: { ...extra, ipam_lock_timeout_ms: 300 }, args: k8s('ledger') });
      assert.is(delC2.exitCode, 0, delC2.stdout + delC2.stderr);
      assert.match(delC2.stderr, `IPAM lock ${h.ipamLockFile} ("ipam_lock_file" in the network config) not taken`);
    } finally {
      holder.dispose();
    }
    assert.ok(existsSync(path.join(h.pendingDelDir, pendingFileName('podway', idC, 'eth0'))));
    assert.equal(h.ipJson(podC2, 'link', 'show').map((l) => l.ifname), ['lo']);

    // a second outage with podway running: b2 deleted meanwhile; both replayed once etcd answers
    await etcd.kill();
    const delB2 = await h.call({ command: 'DEL', containerId: idB2, netns: podB2.path, ifname: 'eth0', extra, args: k8s('cart') });
    assert.is(delB2.exitCode, 0, delB2.stdout + delB2.stderr);
    assert.ok(existsSync(path.join(h.pendingDelDir, pendingFileName('podway', idB2, 'eth0'))));
    // during the outage, no pass needed: status, counters and /metrics count the spool (it is
    // local), so an alert on podway_cni_pending_dels can fire while etcd is away
    const spooled = readdirSync(h.pendingDelDir).filter((n) => n.endsWith('.json')).length;
    assert.ok(spooled >= 1, readdirSync(h.pendingDelDir).join(' '));
    assert.ok(await until(() => metricValue(metricsText(h.node.name), 'podway_cni_pending_dels') === spooled, 15_000), `/metrics counts ${spooled} during the outage: ${metricsText(h.node.name)}`);
    const during = sh('ip', ['netns', 'exec', h.node.name, process.execPath, PODWAY_BIN, 'status', '--control', h.control]);
    assert.match(during, `cni deferred DELs (${h.pendingDelDir}): ${spooled} pending`);
    const csDuring = (await controlRequest(h.control, { cmd: 'counters' }, 5000)) as { cniPendingDel: { pending: number } };
    assert.is(csDuring.cniPendingDel.pending, spooled);
    await etcd.start();
    // no entry left, none being replayed (a replay renames its entry to .<name>.replaying first)
    const drained2 = await until(() => readdirSync(h.pendingDelDir).filter((n) => n.endsWith('.json') || n.endsWith('.json.replaying')).length === 0, 90_000);
    assert.ok(drained2, `replayed after the outage: ${podway.log.slice(-5).join(' | ')}`);
    assert.is(await handleOf(idB2), null);
    assert.is(await wepOf('cart'), null);
    assert.is(await handleOf(idC), null);
    assert.is(await wepOf('ledger'), null);
    assert.equal(await ipam.check(), []);
    assert.is((await ipam.show()).reduce((n, p) => n + p.inUse, 0), 0, 'every pod address is free');
    // b2's and c's replays counted on top of the first two (attempts that met the outage, if
    // any, in failed)
    assert.ok(await until(() => metricValue(metricsText(h.node.name), 'podway_cni_pending_dels_replayed_total') === 4, 10_000), metricsText(h.node.name));
    assert.is(metricValue(metricsText(h.node.name), 'podway_cni_pending_dels'), 0);
    // a failure met during the outage (if a pass met it) is not shown once a pass replayed all
    const statusOf = () => sh('ip', ['netns', 'exec', h.node.name, process.execPath, PODWAY_BIN, 'status', '--control', h.control]);
    assert.ok(await until(() => !/cni deferred DELs .*last error/.test(statusOf()), 15_000), statusOf());
    ok = true;
    if (process.env.PW_SHOW_LOG) console.log(podway.log.filter((l) => /deferred|replay/i.test(l)).join('\n'));
  } finally {
    if (!ok && podway) console.log(podway.log.slice(-30).join('\n'));
    await podway?.stop();
    await kv?.close().catch(() => undefined);
    await etcd?.stop();
    await h.cleanup();
  }
});

test.run();
