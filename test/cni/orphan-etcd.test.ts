/**
 * A running node's Node deleted from another node (`podway delete node`) keeps its pods, which
 * keep their addresses in their namespaces while IPAM has released them (the review's case, root,
 * network namespaces, a real etcd, the CNI plugin run as a runtime runs it, harness.ts):
 * - the delete warns that the node looked alive (it had endpoints) and says what becomes of its pods;
 * - the node's running podway notices the endpoints deleted while their veths stay (`orphan pod:`,
 *   source "deleted"), in status and in /metrics;
 * - podway stopped (SIGTERM) and started again finds them again from the pods' own interfaces
 *   (their routes went with the endpoints), warns once and lists them;
 * - the running podway holds their addresses in IPAM as soon as it finds them (before any ADD),
 *   under `podway-orphan.<node>.<veth>`, and releases a hold once its pod is gone;
 * - a new pod's ADD on that node is not given an address an orphan pod holds;
 * - an operator's `ipam release --from-report` of such a hold stands: neither podway run (restarted,
 *   finding the pod again) nor the next ADD holds it again while the pod keeps it; both say so.
 * The other node (node1) is a Node in the same etcd the delete is run "from"; it runs no podway.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { withEtcdNode } from './harness';
import { controlRequest } from '../../src/dataplane/control-server';
import { hostVethName, podDeviceName } from '../../src/cni/names';
import { orphanHandle } from '../../src/control/ipam/orphan-holds';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isRoot, sh } from '../helpers/netns';
import { until } from '../helpers/until';
import { spawnSync } from 'node:child_process';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const PODWAY_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;
const METRICS_PORT = 9391;

interface Orphan { ifname: string; address: string; source?: string }

test('a running node deleted from another: the delete warns, its podway reports the orphan pods (running and after a restart), and a new pod there is not given their addresses', async () => {
  await withEtcdNode({ node: `node2-orphans-${process.pid}`, pool: 'orphans-pool', cidr: '10.244.75.64/26', others: [`node1-orphans-${process.pid}`] }, async (lab) => {
    const { h, etcd, kv, datastore } = lab;
    const extra = { datastore };
    const k8s = (pod: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${pod}`;
    const cli = (...args: string[]) => {
      const r = spawnSync('ip', ['netns', 'exec', h.node.name, process.execPath, PODWAY_BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
      return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
    };
    const status = async () => (await controlRequest(h.control, { cmd: 'status' }, 5000)) as { endpoints: number; orphanPods?: Orphan[] };
    const metric = () => {
      const text = sh('ip', ['netns', 'exec', h.node.name, 'curl', '-sf', '--max-time', '5', `http://127.0.0.1:${METRICS_PORT}/metrics`]);
      const m = /^podway_orphan_pod_addresses (\S+)$/m.exec(text);
      return m ? Number(m[1]) : NaN;
    };
    const start = async () => {
      // --cni-conf-dir: the node's conflist names the IPAM lock podway run holds orphans' addresses under
      lab.podway = h.startPodway(['--model-cache', 'none', '--workers', '1', '--metrics-port', String(METRICS_PORT), '--metrics-host', '127.0.0.1', '--cni-conf-dir', h.confDir], datastore);
      await lab.podway.ready();
    };

    await start();
    const podB = h.pod('b');
    const podC = h.pod('c');
    const [idB, idC] = [cid('b'), cid('c')];
    const addB = await h.add(podB, idB, { extra, args: k8s('web') });
    const addC = await h.add(podC, idC, { extra, args: k8s('cart') });
    const ipB = String(addB.json.ips[0].address).split('/')[0]!;
    const ipC = String(addC.json.ips[0].address).split('/')[0]!;
    const vethB = hostVethName({ orchestrator: 'k8s', namespace: 'shop', pod: 'web' }, idB);
    const vethC = hostVethName({ orchestrator: 'k8s', namespace: 'shop', pod: 'cart' }, idC);
    // and a tap pod: its device (named tap...) lives in its pod's namespace, no host side
    const podT = h.pod('t');
    const idT = cid('t');
    const addT = await h.add(podT, idT, { extra: { ...extra, interfaceType: 'tap' }, args: k8s('tap') });
    const ipT = String(addT.json.ips[0].address).split('/')[0]!;
    const tapT = podDeviceName('tap', { orchestrator: 'k8s', namespace: 'shop', pod: 'tap' }, idT);
    assert.ok(await until(async () => (await status()).endpoints === 3, 15_000), 'the three pods attached');
    assert.equal((await status()).orphanPods, [], 'no orphan before');

    // node2 deleted from "node1" while node2's podway runs (its control socket is not at the
    // default path: the delete cannot ask it)
    const del = cli('delete', 'node', h.nodeName, '--datastore', datastore);
    assert.is(del.code, 0, del.err);
    assert.match(del.err, /deleted 3 WorkloadEndpoint\(s\)/);
    assert.match(del.err, new RegExp(`warning: node ${h.nodeName} looked alive: it had 3 WorkloadEndpoint\\(s\\)`));
    assert.match(del.err, /Pods still running there keep their addresses, which IPAM now has free/);

    // the running podway sees the endpoints go while the veths stay
    const want = [`${vethB} ${ipB}`, `${vethC} ${ipC}`, `${tapT} ${ipT}`].sort();
    const keys = (os: Orphan[] | undefined) => (os ?? []).map((o) => `${o.ifname} ${o.address}`).sort();
    assert.ok(await until(async () => keys((await status()).orphanPods).join() === want.join(), 15_000), `orphans while running: ${JSON.stringify((await status()).orphanPods)} | ${lab.podway!.log.slice(-5).join(' | ')}`);
    assert.ok((await status()).orphanPods!.every((o) => o.source === 'deleted'), JSON.stringify((await status()).orphanPods));
    assert.is(metric(), 3, 'podway_orphan_pod_addresses');
    assert.is(lab.podway!.log.filter((l) => l.includes(`interface ${vethB} holds pod address ${ipB}`)).length, 1, 'warned once');
    // ... and holds their addresses at once, before any ADD on the node: no other node or `ipam assign` is given them
    const handleKey = (veth: string) => `/calico/ipam/v2/handle/${orphanHandle(h.nodeName, veth)}`;
    assert.ok(await until(async () => (await kv!.get(handleKey(vethB))) !== null && (await kv!.get(handleKey(vethC))) !== null && (await kv!.get(handleKey(tapT))) !== null, 30_000), `held by podway run: ${lab.podway!.log.slice(-5).join(' | ')}`);
    assert.ok(await until(() => lab.podway!.log.some((l) => l.includes('orphan pod addresses held in IPAM') && l.includes(`${ipB} (${vethB})`)), 10_000), 'said in its log');
    const assign = cli('ipam', 'assign', '--ip', ipB, '--node', `node1-orphans-${process.pid}`, '--datastore', datastore);
    assert.is.not(assign.code, 0, `ipam assign gave ${ipB}: ${assign.out}${assign.err}`);
    const shownB = cli('ipam', 'show', '--ip', ipB, '--datastore', datastore);
    assert.match(shownB.out, 'held by podway run', shownB.out);

    // stopped and started again: found from the pods' interfaces (the routes are gone)
    await lab.podway!.stop();
    await start();
    assert.ok(await until(async () => keys((await status()).orphanPods).join() === want.join(), 15_000), `orphans after the restart: ${JSON.stringify((await status()).orphanPods)} | ${lab.podway!.log.slice(-5).join(' | ')}`);
    assert.ok((await status()).orphanPods!.every((o) => o.source === 'pod'), JSON.stringify((await status()).orphanPods));
    const warned = lab.podway!.log.filter((l) => l.includes(`interface ${vethB} holds pod address ${ipB} (on its pod's interface`));
    assert.is(warned.length, 1, lab.podway!.log.join('\n'));
    assert.match(warned[0]!, /"level":"warn"/);
    assert.is(metric(), 3);
    const shown = cli('status', '--control', h.control);
    assert.match(shown.out, `orphan pod: interface ${vethB} holds pod address ${ipB}`);

    // ipam check on node2 counts them (the running podway's list), IPAM holding them for it
    const check = cli('ipam', 'check', '--datastore', datastore, '--control', h.control, '--grace-period', '1h');
    assert.is(check.code, 3, check.out + check.err);
    assert.match(check.out, `interface ${vethB} holds pod address ${ipB} (on its pod's interface, in the pod's namespace)`);
    assert.match(check.out, new RegExp(`interface ${vethC} holds pod address ${ipC.replace(/\./g, '\\.')} .*IPAM here holds it for handle ${orphanHandle(h.nodeName, vethC)}, which podway on the node took`), check.out);
    assert.match(check.out, 'Found 3 pod interfaces holding an address no workload endpoint of this datastore names.');

    // a new pod on node2: not B's or C's address
    const podD = h.pod('d');
    const addD = await h.add(podD, cid('d'), { extra, args: k8s('new') });
    const ipD = String(addD.json.ips[0].address).split('/')[0]!;
    assert.not.ok([ipB, ipC].includes(ipD), `the new pod got ${ipD}, which an orphan pod holds (B ${ipB}, C ${ipC})`);
    assert.not.match(addD.stderr, `${ipB} (${vethB})`, 'held already (by podway run): not again');
    assert.ok(await kv.get(handleKey(vethB)), 'B\'s address held under its orphan handle');
    assert.ok(await kv.get(handleKey(vethC)), 'C\'s too');
    // ipam show names the holder
    const show = cli('ipam', 'show', '--ip', ipB, '--datastore', datastore);
    assert.match(show.out, orphanHandle(h.nodeName, vethB), show.out + show.err);

    const check2 = cli('ipam', 'check', '--datastore', datastore, '--control', h.control, '--grace-period', '1h');
    assert.match(check2.out, new RegExp(`interface ${vethB} holds pod address ${ipB.replace(/\./g, '\\.')} .*IPAM here holds it for handle ${orphanHandle(h.nodeName, vethB)}, which podway on the node took so no new pod is given it`), check2.out);

    // B removed (its CNI DEL: the veth goes; its handle is not B's hold): podway run releases the hold, no ADD needed
    const delB = await h.call({ command: 'DEL', containerId: idB, netns: podB.path, ifname: 'eth0', extra, args: k8s('web') });
    assert.is(delB.exitCode, 0, delB.stdout + delB.stderr);
    assert.not.ok(h.caliLinks().includes(vethB));
    assert.ok(await until(async () => keys((await status()).orphanPods).join() === [`${vethC} ${ipC}`, `${tapT} ${ipT}`].sort().join(), 10_000), JSON.stringify((await status()).orphanPods));
    assert.ok(await until(async () => (await kv!.get(handleKey(vethB))) === null, 15_000), `the hold of a gone pod released by podway run: ${lab.podway!.log.slice(-5).join(' | ')}`);
    assert.ok(await kv.get(handleKey(vethC)), 'C still held');
    assert.ok(await kv.get(handleKey(tapT)), 'the tap pod\'s too (the CNI ADD leaves a tap pod\'s hold to podway run)');

    // The operator releases what ipam check calls leaked, C's hold among them: that release stands
    const dir = mkdtempSync(path.join(tmpdir(), `orphans2-${process.pid}-`));
    try {
      const report = path.join(dir, 'report.json');
      const check3 = cli('ipam', 'check', '--datastore', datastore, '--grace-period', '0', '-o', report);
      assert.is(check3.code, 3, check3.out + check3.err);
      assert.match(check3.out, new RegExp(`${ipC.replace(/\./g, '\\.')} leaked: .*${orphanHandle(h.nodeName, vethC)}`), check3.out);
      const rel = cli('ipam', 'release', '--from-report', report, '--datastore', datastore, '--grace-period', '0');
      assert.is(rel.code, 0, rel.out + rel.err);
      assert.match(rel.out + rel.err, `podway on ${h.nodeName} will not hold it again`, rel.out + rel.err);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.is(await kv.get(handleKey(vethC)), null, 'released');
    // podway run started again finds C again (from its pod), and does not hold it again: it says so
    await lab.podway!.stop();
    await start();
    assert.ok(await until(() => lab.podway!.log.some((l) => l.includes('released from IPAM by hand since podway held them') && l.includes(`${ipC} (${vethC})`)), 20_000), `run: ${lab.podway!.log.slice(-8).join(' | ')}`);
    assert.is(await kv.get(handleKey(vethC)), null, 'not held again by podway run');
    // nor by the next ADD on the node (the node's ledger, beside the IPAM lock, says it was released by hand)
    const addE = await h.add(h.pod('e'), cid('e'), { extra, args: k8s('next') });
    assert.not.match(addE.stderr, `${ipC} (${vethC})`, addE.stderr);
    assert.is(await kv.get(handleKey(vethC)), null, 'not held again by the ADD');
  });
});

test.run();
