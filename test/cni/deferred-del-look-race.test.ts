/**
 * podway run's look into the pods' namespaces for orphan addresses (dataplane/engine.ts
 * findPodOrphans, at start) and its replay of deferred CNI DELs (cli/pending-del-replay.ts, from its
 * first model on) take turns (cli/upkeep.ts). Before, they ran side by side: a look that read a tap
 * pod's device as the replay removed it, then judged what it read after the replay deleted the
 * pod's endpoint, took the pod's address for an orphan's, warned of it and held it in IPAM
 * (podway-orphan.<node>.<device>) for as long as the pod's namespace stayed. Many tap pods' DELs
 * deferred while etcd is down (CNI_ARGS lost the pod's name, so the replay removes each device), and
 * many namespaces to read after the pods', make the replay remove devices the look has read before
 * it judges them. A real etcd in the node's namespace, killed by PID and started
 * again; real namespaces and tap devices. Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { withEtcdNode } from './harness';
import { Ipam } from '../../src/control/ipam';
import { podDeviceName } from '../../src/cni/names';
import { isRoot } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

/** Tap pods whose DEL is deferred: enough for the replay to last through the start's look. */
const PODS = 14;
/**
 * Empty namespaces named after the pods' (the look reads /run/netns in name order: the pods'
 * first, then these): the look's read of them lasts while the replay removes devices it has read,
 * as on a node with many namespaces.
 */
const FILLERS = 60;

test('the start\'s look for orphan addresses and the replay of deferred DELs take turns: no replayed pod\'s address is taken for an orphan\'s', async () => {
  await withEtcdNode({ pool: 'look-race-pool', cidr: '10.250.28.0/24' }, async (lab) => {
    const { h, etcd, kv, datastore } = lab;
    const extra = { datastore, datastoreTimeoutMs: 1000, interfaceType: 'tap' };
    const tag = `${process.pid}${Math.random().toString(16).slice(2, 6)}`;
    const pods = Array.from({ length: PODS }, (_, i) => ({ ns: h.pod(`lr${i}`), id: `clr${i}x${tag}`, name: `lookpod${i}` }));
    for (let i = 0; i < FILLERS; i++) h.addNs(`zz${i}`);
    const ips: string[] = [];
    for (const p of pods) ips.push((await h.add(p.ns, p.id, { extra, args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${p.name}` })).json.ips[0].address.split('/')[0]);
    const devices = pods.map((p) => podDeviceName('tap', { orchestrator: 'k8s', namespace: 'shop', pod: p.name }, p.id));

    await etcd.kill();
    for (const p of pods) {
      const d = await h.call({ command: 'DEL', containerId: p.id, netns: p.ns.path, ifname: 'eth0', extra, args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME' });
      assert.is(d.exitCode, 0, `DEL with etcd down succeeds: ${d.stdout} ${d.stderr}`);
      assert.match(d.stderr, 'is deferred to');
    }
    await etcd.start();
    lab.podway = h.startPodway(['--model-cache', 'none'], datastore);
    await lab.podway.ready();
    const drained = await until(() => readdirSync(h.pendingDelDir).filter((n) => n.endsWith('.json') || n.endsWith('.json.replaying')).length === 0
      && lab.podway!.log.filter((l) => l.includes('deferred CNI DEL replayed')).length === PODS, 90_000);
    assert.ok(drained, `podway run replayed the spool: ${readdirSync(h.pendingDelDir).join(' ')} | ${lab.podway.log.slice(-5).join(' | ')}`);
    assert.ok(await until(() => lab.podway!.log.some((l) => l.includes('pods\' interfaces looked into for addresses no endpoint names')), 30_000), 'podway\'s start look is done');
    // every device removed by the replay, every address free, none ever taken for an orphan's
    for (const p of pods) assert.equal(h.ipJson(p.ns, 'link', 'show').map((l) => l.ifname), ['lo'], `${p.name}'s device removed`);
    const said = lab.podway.log.filter((l) => /holds pod address|orphan pod addresses held/.test(l) && devices.some((d) => l.includes(d)));
    assert.equal(said, [], 'no replayed pod\'s device is taken for an orphan\'s');
    const ipam = new Ipam(kv);
    const held: string[] = [];
    for (const ip of ips) {
      const a = await ipam.allocationOf(ip);
      if (a !== null) held.push(`${ip}: ${a.handleId}`);
    }
    assert.equal(held, [], 'every replayed pod\'s address is free');
  });
});

test.run();
