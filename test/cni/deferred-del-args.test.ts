/**
 * A DEL whose CNI_ARGS lost the pod's name (a malformed K8S_POD_NAME part) while etcd is down
 * (src/cni/pending-del.ts byRecord, hostIfindex; src/cli/pending-del-replay.ts): k8s names the host
 * veth, the tap altname and the WorkloadEndpoint after the pod, so the DEL can neither prove the
 * pod's interface its own nor name its endpoint; with etcd up it reads the pod's name from the
 * endpoint ADD wrote (cni-args.test.ts), with etcd down it cannot. The deferred entry says so, and
 * the replay by `podway run` once etcd is back removes what ADD wrote: the k8s endpoint (found by
 * its record), the address, the host veth the DEL left (still the peer of the pod end it saw) and a
 * tap device carrying the endpoint's altname, when it is the device the DEL left (its index, in that
 * very namespace: a pod re-created at the same namespace path keeps its new one; an entry of an
 * older podway without that record leaves the device and says so). podway's look into the pods'
 * namespaces for orphan addresses never takes a replayed pod's address for an orphan's (the look
 * and the replay take turns: src/cli/upkeep.ts). A real etcd in the node's namespace, stopped by PID
 * and started again on its data dir. Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { withEtcdNode } from './harness';
import { Ipam } from '../../src/control/ipam';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { hostVethName, podDeviceName, workloadEndpointName } from '../../src/cni/names';
import { netnsIdentity, pendingFileName } from '../../src/cni/pending-del';
import { isRoot, sh } from '../helpers/netns';
import { until } from '../helpers/until';
import { loadedModuleReports, REPORT_MODULES } from '../helpers/module-report';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string): string => `c${n}${process.pid}${Math.random().toString(16).slice(2, 8)}`;
const WEPS = '/calico/resources/v3/projectcalico.org/workloadendpoints/';
const ETCD_CLIENT = ['etcd3', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs'];

test('DEL with K8S_POD_NAME malformed while etcd is down: the replay deletes the k8s endpoint, releases the address, removes the host veth and the tap device ADD made', async () => {
  await withEtcdNode({ pool: 'defer-args-pool', cidr: '10.250.26.0/24' }, async (lab) => {
    const { h, etcd, kv, datastore } = lab;
    const extra = { datastore, datastoreTimeoutMs: 1000 };
    const tapExtra = { ...extra, interfaceType: 'tap' };
    const good = (pod: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${pod}`;
    // the runtime's CNI_ARGS at DEL with the pod's name part malformed: passed over, the pod unnamed
    const bad = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME';
    const wepKey = (pod: string, id: string) => `${WEPS}shop/${workloadEndpointName(h.nodeName, { orchestrator: 'k8s', namespace: 'shop', pod }, id, 'eth0')}`;

    const podV = h.pod('argsv');
    const podT = h.pod('argst');
    // R: its namespace re-created at the same path (a runtime reusing named namespaces) with a
    // device of the same altname (the same pod name) before the replay; O: its entry written by an
    // older podway (no podDevice). Neither device may be removed by the replay.
    const podR = h.pod('argsr');
    const podO = h.pod('argso');
    const [idV, idT, idR, idO] = [cid('v'), cid('t'), cid('r'), cid('o')];
    const addV = await h.add(podV, idV, { extra, args: good('web') });
    const addT = await h.add(podT, idT, { extra: tapExtra, args: good('tapweb') });
    const addR = await h.add(podR, idR, { extra: tapExtra, args: good('tapre') });
    const addO = await h.add(podO, idO, { extra: tapExtra, args: good('tapold') });
    const vethV = hostVethName({ orchestrator: 'k8s', namespace: 'shop', pod: 'web' }, idV);
    const tapT = podDeviceName('tap', { orchestrator: 'k8s', namespace: 'shop', pod: 'tapweb' }, idT);
    const tapR = podDeviceName('tap', { orchestrator: 'k8s', namespace: 'shop', pod: 'tapre' }, idR);
    const tapO = podDeviceName('tap', { orchestrator: 'k8s', namespace: 'shop', pod: 'tapold' }, idO);
    assert.equal(h.caliLinks(), [vethV]);
    assert.ok(await kv.get(wepKey('web', idV)));
    assert.ok(await kv.get(wepKey('tapweb', idT)));

    await etcd.kill();
    for (const [pod, id, x] of [[podV, idV, extra], [podT, idT, tapExtra], [podR, idR, tapExtra], [podO, idO, tapExtra]] as const) {
      const d = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', extra: x, args: bad });
      assert.is(d.exitCode, 0, `DEL with etcd down succeeds: ${d.stdout} ${d.stderr}`);
      assert.match(d.stderr, `DEL ${id}: CNI_ARGS: "K8S_POD_NAME" is not KEY=VALUE`);
      assert.match(d.stderr, 'could not be read to tell who it is');
      assert.match(d.stderr, 'is deferred to');
    }
    // What the DEL could not prove this container's is left: the veth (both ends), the tap device.
    assert.equal(h.caliLinks(), [vethV], 'the host veth is left by the DEL');
    assert.ok(h.ipJson(podT, 'link', 'show').some((l) => l.ifname === 'eth0' && (l.altnames ?? []).includes(tapT)), 'the tap device is left by the DEL');
    const entryV = JSON.parse(readFileSync(path.join(h.pendingDelDir, pendingFileName('podway', idV, 'eth0')), 'utf8'));
    assert.is(entryV.byRecord, true, JSON.stringify(entryV));
    const hostIndex = (h.ipJson(h.node, 'link', 'show', 'dev', vethV)[0] as { ifindex: number }).ifindex;
    assert.is(entryV.hostIfindex, hostIndex, 'the entry records the left pod end\'s peer');
    assert.equal(entryV.endpoints.map((e: { name: string }) => e.name), [workloadEndpointName(h.nodeName, { orchestrator: 'cni', namespace: 'default', pod: idV }, idV, 'eth0')], 'only the plain-CNI name is known');
    const entryT = JSON.parse(readFileSync(path.join(h.pendingDelDir, pendingFileName('podway', idT, 'eth0')), 'utf8'));
    assert.is(entryT.byRecord, true);
    const tapIndex = (h.ipJson(podT, 'link', 'show', 'dev', 'eth0')[0] as { ifindex: number }).ifindex;
    assert.equal(entryT.podDevice, { ifindex: tapIndex, ...netnsIdentity(podT.path) }, 'the entry records the tap device it left and its namespace');
    // R's pod re-created at the same namespace path: a new namespace there, a tap device of the same altname
    const rIdentity = netnsIdentity(podR.path);
    const rIndex = (h.ipJson(podR, 'link', 'show', 'dev', 'eth0')[0] as { ifindex: number }).ifindex;
    sh('ip', ['netns', 'del', podR.name]);
    sh('ip', ['netns', 'add', podR.name]);
    sh('ip', ['-n', podR.name, 'tuntap', 'add', 'dev', 'eth0', 'mode', 'tap']);
    sh('ip', ['-n', podR.name, 'link', 'property', 'add', 'dev', 'eth0', 'altname', tapR]);
    assert.not.equal(netnsIdentity(podR.path), rIdentity, 'another namespace at that path (the inode may be the same)');
    assert.is((h.ipJson(podR, 'link', 'show', 'dev', 'eth0')[0] as { ifindex: number }).ifindex, rIndex, 'the new device has the old one\'s index (a fresh namespace numbers alike)');
    // O's entry as an older podway wrote it: no podDevice
    const fileO = path.join(h.pendingDelDir, pendingFileName('podway', idO, 'eth0'));
    const entryO = JSON.parse(readFileSync(fileO, 'utf8'));
    assert.ok(entryO.podDevice, JSON.stringify(entryO));
    delete entryO.podDevice;
    writeFileSync(fileO, JSON.stringify(entryO, null, 2) + '\n');

    await etcd.start();
    // (each thread's modules reported at its exit: the replay's store on the forwarding thread is the light client)
    lab.podway = h.startPodway(['--model-cache', 'none'], datastore, { NODE_OPTIONS: REPORT_MODULES });
    await lab.podway.ready();
    const drained = await until(() => readdirSync(h.pendingDelDir).filter((n) => n.endsWith('.json') || n.endsWith('.json.replaying')).length === 0
      && lab.podway!.log.filter((l) => l.includes('deferred CNI DEL replayed')).length === 4, 60_000);
    assert.ok(drained, `podway run replayed the spool: ${readdirSync(h.pendingDelDir).join(' ')} | ${lab.podway.log.slice(-5).join(' | ')}`);
    // the datastore: the k8s endpoints gone, the handles and addresses free
    assert.is(await kv.get(wepKey('web', idV)), null, 'the k8s endpoint ADD wrote is deleted');
    assert.is(await kv.get(wepKey('tapweb', idT)), null, 'the tap pod\'s k8s endpoint is deleted');
    assert.is(await kv.get(wepKey('tapre', idR)), null);
    assert.is(await kv.get(wepKey('tapold', idO)), null);
    assert.is(await kv.get(`/calico/ipam/v2/handle/podway.${idV}`), null);
    assert.is(await kv.get(`/calico/ipam/v2/handle/podway.${idT}`), null);
    const ipam = new Ipam(kv);
    for (const id of [idR, idO]) assert.is(await kv.get(`/calico/ipam/v2/handle/podway.${id}`), null);
    // R's and O's devices are still there: podway's orphan scan may hold their addresses (released once the device goes), not their old handles
    for (const a of [addR, addO]) {
      const held = await ipam.allocationOf(a.json.ips[0].address.split('/')[0]);
      assert.ok(held === null || (held.handleId ?? '').startsWith('podway-orphan.'), JSON.stringify(held));
    }
    // Free at once, and never taken for an orphan's: podway's looks into the pods' namespaces and
    // the replay's entries take turns (src/cli/upkeep.ts); a look reading T's device as the replay
    // removed it took T's address for an orphan's and held it (seen at load 31, before).
    for (const a of [addV, addT]) {
      const ip = a.json.ips[0].address.split('/')[0];
      assert.is(await ipam.allocationOf(ip), null, `${ip} released`);
    }
    assert.equal(await ipam.check(), []);
    // the host: the veth and the tap device gone
    assert.ok(await until(() => h.caliLinks().length === 0, 10_000), `host veth removed: ${h.caliLinks().join(' ')}`);
    assert.equal(h.ipJson(podV, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(h.ipJson(podT, 'link', 'show').map((l) => l.ifname), ['lo']);
    // the re-created pod's device and the one an old entry names are left, and the log says why
    assert.ok(h.ipJson(podR, 'link', 'show').some((l) => l.ifname === 'eth0' && (l.altnames ?? []).includes(tapR)), 'the re-created pod keeps its device');
    assert.ok(h.ipJson(podO, 'link', 'show').some((l) => l.ifname === 'eth0' && (l.altnames ?? []).includes(tapO)), 'an entry without podDevice leaves the device');
    const said = lab.podway.log.filter((l) => /deferred/.test(l)).join('\n');
    assert.ok(lab.podway.log.some((l) => l.includes(idR) && l.includes(`tap device ${tapR} (eth0 in ${podR.path}) left: not the device the DEL saw (another namespace at that path`)), said);
    assert.ok(lab.podway.log.some((l) => l.includes(idO) && l.includes(`tap device ${tapO} (eth0 in ${podO.path}) left: the entry does not record which device the DEL saw`)), said);
    assert.ok(lab.podway.log.some((l) => l.includes(idV) && l.includes(`interface(s) left by the DEL removed: ${vethV}`)), lab.podway.log.filter((l) => /deferred/.test(l)).join('\n'));
    // (checked once podway's start look is done: a hold would come after it)
    assert.ok(await until(() => lab.podway!.log.some((l) => l.includes('pods\' interfaces looked into for addresses no endpoint names')), 30_000), 'podway\'s start look is done');
    const orphanLines = lab.podway.log.filter((l) => /holds pod address|orphan pod addresses held/.test(l) && (l.includes(vethV) || l.includes(tapT)));
    assert.equal(orphanLines, [], 'V\'s and T\'s interfaces are never taken for an orphan\'s');
    // The replay (and the holds) went through the run's one upkeep store, the light client: the
    // forwarding thread loaded no etcd3 (its replay opened an EtcdKv each pass before).
    await lab.podway.stop();
    const mainReports = () => loadedModuleReports(lab.podway!.log.join('\n')).filter((r) => r.includes('src/dataplane/engine.js') && r.includes('src/cli/run.js'));
    // (its stderr may be read after its exit)
    assert.ok(await until(() => mainReports().length > 0, 5_000), 'the main thread reported its modules');
    const main = mainReports();
    assert.is(main.length, 1, 'one report of the main thread');
    assert.equal(main[0]!.filter((m) => ETCD_CLIENT.includes(m)), [], 'the forwarding thread loaded no etcd3 client');
    assert.ok(main[0]!.includes('src/cli/upkeep.js') && main[0]!.includes('src/control/kv/etcd-lite.js'), 'the upkeep\'s store is the light client');
  });
});

test.run();
