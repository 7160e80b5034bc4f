/**
 * A veth pod's DEL without CNI_NETNS (allowed by the spec) while etcd is down, its namespace still
 * there (src/cni/plugin.ts leftHostVeths, pending-del.ts hostVeths; src/cli/pending-del-replay.ts):
 * the DEL cannot prove the host veth this container's (it does not see the pod end), so it leaves
 * it, and records the host veths that may be the pod's with their index: the one CNI_ARGS names
 * (k8s: after the pod), or every pod veth when CNI_ARGS lost the pod's name (a malformed
 * K8S_POD_NAME part). The replay by `podway run` once etcd is back removes the veth the endpoint
 * it deletes names while it still has that index (before: no index was recorded, and the veth,
 * both ends, stayed for good); one a pod re-created under the same name made meanwhile (another
 * index) is left. A real etcd in the node's namespace, killed by PID and started again on its data
 * dir; real namespaces and veths. Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { withEtcdNode } from './harness';
import { Ipam } from '../../src/control/ipam';
import { hostVethName, workloadEndpointName } from '../../src/cni/names';
import { pendingFileName } from '../../src/cni/pending-del';
import { isRoot, sh } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string): string => `c${n}${process.pid}${Math.random().toString(16).slice(2, 8)}`;
const WEPS = '/calico/resources/v3/projectcalico.org/workloadendpoints/';

test('DEL without CNI_NETNS while etcd is down: the replay removes the k8s host veth left (CNI_ARGS naming the pod, or having lost its name), not one re-made since', async () => {
  await withEtcdNode({ pool: 'nonetns-pool', cidr: '10.250.27.0/24' }, async (lab) => {
    const { h, etcd, kv, datastore } = lab;
    const extra = { datastore, datastoreTimeoutMs: 1000 };
    const good = (pod: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${pod}`;
    const lost = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME';
    const k8s = (pod: string) => ({ orchestrator: 'k8s' as const, namespace: 'shop', pod });
    const wepKey = (pod: string, id: string) => `${WEPS}shop/${workloadEndpointName(h.nodeName, k8s(pod), id, 'eth0')}`;

    // N: CNI_ARGS lost the pod's name; K: CNI_ARGS names the pod; M: the name lost, and its veth
    // re-made under the same name (a pod re-created) before the replay.
    const [podN, podK, podM] = [h.pod('nonetn'), h.pod('nonetk'), h.pod('nonetm')];
    const [idN, idK, idM] = [cid('n'), cid('k'), cid('m')];
    const adds = [await h.add(podN, idN, { extra, args: good('wn') }), await h.add(podK, idK, { extra, args: good('wk') }), await h.add(podM, idM, { extra, args: good('wm') })];
    const [vethN, vethK, vethM] = [hostVethName(k8s('wn'), idN), hostVethName(k8s('wk'), idK), hostVethName(k8s('wm'), idM)];
    assert.equal(h.caliLinks().sort(), [vethN, vethK, vethM].sort());
    const index = (name: string) => (h.ipJson(h.node, 'link', 'show', 'dev', name)[0] as { ifindex: number }).ifindex;
    const before = { [vethN]: index(vethN), [vethK]: index(vethK), [vethM]: index(vethM) };

    await etcd.kill();
    for (const [id, args] of [[idN, lost], [idK, good('wk')], [idM, lost]] as const) {
      const d = await h.call({ command: 'DEL', containerId: id, ifname: 'eth0', extra, args });
      assert.is(d.exitCode, 0, `DEL with etcd down succeeds: ${d.stdout} ${d.stderr}`);
      assert.match(d.stderr, 'is deferred to');
    }
    // Nothing the DELs could not prove theirs went: the three veths (both ends) are there.
    assert.equal(h.caliLinks().sort(), [vethN, vethK, vethM].sort(), 'the DELs leave the host veths');
    const entry = (id: string) => JSON.parse(readFileSync(path.join(h.pendingDelDir, pendingFileName('podway', id, 'eth0')), 'utf8'));
    const eN = entry(idN);
    const eK = entry(idK);
    assert.is(eN.byRecord, true, JSON.stringify(eN));
    assert.equal(eN.hostVeths, before, 'the name lost: every pod veth there, with its index');
    assert.equal(eK.hostVeths, { [vethK]: before[vethK] }, 'the veth CNI_ARGS names, with its index');
    assert.is(eK.hostIfindex, undefined);
    // M's pod re-created meanwhile: a new veth of the same name (another index), its pod end in the same namespace
    sh('ip', ['-n', h.node.name, 'link', 'del', 'dev', vethM]);
    sh('ip', ['-n', h.node.name, 'link', 'add', vethM, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podM.name]);
    assert.not.equal(index(vethM), before[vethM], 'the re-made veth has another index');

    await etcd.start();
    lab.podway = h.startPodway(['--model-cache', 'none'], datastore);
    await lab.podway.ready();
    const drained = await until(() => readdirSync(h.pendingDelDir).filter((n) => n.endsWith('.json') || n.endsWith('.json.replaying')).length === 0
      && lab.podway!.log.filter((l) => l.includes('deferred CNI DEL replayed')).length === 3, 60_000);
    assert.ok(drained, `podway run replayed the spool: ${readdirSync(h.pendingDelDir).join(' ')} | ${lab.podway.log.slice(-5).join(' | ')}`);
    for (const [pod, id] of [['wn', idN], ['wk', idK], ['wm', idM]] as const) {
      assert.is(await kv.get(wepKey(pod, id)), null, `${pod}'s endpoint deleted`);
      assert.is(await kv.get(`/calico/ipam/v2/handle/podway.${id}`), null, `${pod}'s handle released`);
    }
    const ipam = new Ipam(kv);
    const ipOf = (i: number) => adds[i]!.json.ips[0].address.split('/')[0];
    for (const i of [0, 1]) assert.is(await ipam.allocationOf(ipOf(i)), null, 'the address is free (not held as an orphan\'s)');
    // (M's endpoint deleted with a veth of its name still there: podway may hold its address as an orphan's a while)
    const heldM = await ipam.allocationOf(ipOf(2));
    assert.ok(heldM === null || (heldM.handleId ?? '').startsWith('podway-orphan.'), JSON.stringify(heldM));
    assert.equal(await ipam.check(), []);
    // N's and K's veths removed by the replay (both ends); M's re-made one left
    assert.equal(h.caliLinks(), [vethM], 'the replay removed the veths the DELs left, not the re-made one');
    assert.equal(h.ipJson(podN, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(h.ipJson(podK, 'link', 'show').map((l) => l.ifname), ['lo']);
    assert.equal(h.ipJson(podM, 'link', 'show').map((l) => l.ifname).sort(), ['eth0', 'lo']);
    for (const [id, veth] of [[idN, vethN], [idK, vethK]] as const) {
      assert.ok(lab.podway.log.some((l) => l.includes(id) && l.includes(`interface(s) left by the DEL removed: ${veth}`)), lab.podway.log.filter((l) => /deferred/.test(l)).join('\n'));
    }
    assert.ok(lab.podway.log.some((l) => l.includes(idM) && l.includes('deferred CNI DEL replayed') && !l.includes('interface(s) left')), lab.podway.log.filter((l) => /deferred/.test(l)).join('\n'));
  });
});

test.run();
