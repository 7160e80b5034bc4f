/**
 * A tap/tun pod's orphan hold is released once its device is gone from its pod's namespace, the
 * namespace kept (root, network namespaces, a real etcd, the CNI plugin run as a runtime runs it,
 * harness.ts; podway run's own IPAM holds, cli/orphan-holds.ts):
 * - the node deleted from another (`podway delete node`: its endpoints deleted, their addresses
 *   released) while two tap pods run on: podway run lists both as orphans and holds their
 *   addresses under `podway-orphan.<node>.<tap...>`;
 * - one pod's device deleted in its namespace (as a CNI DEL whose endpoint was already gone, or by
 *   hand; the namespace kept, a sandbox reused): its hold is released by the next hold pass, it
 *   leaves the orphan list, and IPAM gives its address again (`ipam assign --ip`);
 * - the other pod's device kept: its hold and its listing stay, pass after pass.
 * Before the fix a tap/tun orphan was kept while its namespace existed, so the first hold stayed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { withEtcdNode } from './harness';
import { controlRequest } from '../../src/dataplane/control-server';
import { podDeviceName } from '../../src/cni/names';
import { orphanHandle } from '../../src/control/ipam/orphan-holds';
import { isRoot, sleep } from '../helpers/netns';
import { until } from '../helpers/until';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const PODWAY_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;

interface Orphan { ifname: string; address: string; source?: string }

test('a tap pod\'s device deleted while its namespace stays: its orphan hold is released and the address given again; a kept device keeps its hold', async () => {
  const other = `node-taphold-other-${process.pid}`;
  await withEtcdNode({ node: `node-taphold-${process.pid}`, pool: 'taphold-pool', cidr: '10.244.76.0/26', others: [other] }, async (lab) => {
    const { h, etcd, kv, datastore } = lab;
    const extra = { datastore, interfaceType: 'tap' };
    const k8s = (pod: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${pod}`;
    const cli = (...args: string[]) => {
      const r = spawnSync('ip', ['netns', 'exec', h.node.name, process.execPath, PODWAY_BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
      return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
    };
    const status = async () => (await controlRequest(h.control, { cmd: 'status' }, 5000)) as { endpoints: number; orphanPods?: Orphan[] };
    const keys = (os: Orphan[] | undefined) => (os ?? []).map((o) => `${o.ifname} ${o.address}`).sort();
    const handleKey = (dev: string) => `/calico/ipam/v2/handle/${orphanHandle(h.nodeName, dev)}`;

    // a hold pass every second (the default is a minute)
    lab.podway = h.startPodway(['--model-cache', 'none', '--workers', '1', '--cni-conf-dir', h.confDir, '--orphan-hold-interval', '1s'], datastore);
    await lab.podway.ready();
    const podA = h.pod('ta');
    const podB = h.pod('tb');
    const [idA, idB] = [cid('a'), cid('b')];
    const addA = await h.add(podA, idA, { extra, args: k8s('tap-a') });
    const addB = await h.add(podB, idB, { extra, args: k8s('tap-b') });
    const ipA = String(addA.json.ips[0].address).split('/')[0]!;
    const ipB = String(addB.json.ips[0].address).split('/')[0]!;
    const tapA = podDeviceName('tap', { orchestrator: 'k8s', namespace: 'shop', pod: 'tap-a' }, idA);
    const tapB = podDeviceName('tap', { orchestrator: 'k8s', namespace: 'shop', pod: 'tap-b' }, idB);
    assert.ok(await until(async () => (await status()).endpoints === 2, 15_000), 'the two tap pods attached');
    assert.equal((await status()).orphanPods, [], 'no orphan before');

    // the node deleted from "another node" while its podway runs (its endpoints deleted, their
    // addresses released in IPAM), the tap devices kept: orphans, held by podway run
    const del = cli('delete', 'node', h.nodeName, '--datastore', datastore);
    assert.is(del.code, 0, del.err);
    assert.match(del.err, /deleted 2 WorkloadEndpoint\(s\)/);
    const both = [`${tapA} ${ipA}`, `${tapB} ${ipB}`].sort();
    assert.ok(await until(async () => keys((await status()).orphanPods).join() === both.join(), 15_000), `orphans: ${JSON.stringify((await status()).orphanPods)} | ${lab.podway.log.slice(-5).join(' | ')}`);
    assert.ok(await until(async () => (await kv!.get(handleKey(tapA))) !== null && (await kv!.get(handleKey(tapB))) !== null, 15_000), `held: ${lab.podway.log.slice(-5).join(' | ')}`);
    const taken = cli('ipam', 'assign', '--ip', ipA, '--node', other, '--datastore', datastore);
    assert.is.not(taken.code, 0, `ipam assign gave ${ipA} while its tap pod holds it: ${taken.out}${taken.err}`);

    // A's device deleted in its namespace (by its podway altname), the namespace kept
    h.ipJson(podA, 'link', 'show', 'dev', tapA); // there (throws otherwise)
    podA.ip('link', 'del', 'dev', tapA);
    assert.ok(existsSync(podA.path), 'A\'s namespace stays');
    assert.ok(await until(async () => (await kv!.get(handleKey(tapA))) === null, 15_000), `A's hold released once its device is gone: ${lab.podway.log.slice(-8).join(' | ')}`);
    // said once the pass is done (after the release, the ledger and the IPAM lock), on its stderr
    assert.ok(await until(() => lab.podway!.log.some((l) => l.includes('orphan pod address holds released') && l.includes(orphanHandle(h.nodeName, tapA))), 5000), lab.podway.log.slice(-8).join(' | '));
    assert.equal(keys((await status()).orphanPods), [`${tapB} ${ipB}`], 'A no longer listed, B still');
    // A's address can be given again
    const again = cli('ipam', 'assign', '--ip', ipA, '--node', other, '--datastore', datastore);
    assert.is(again.code, 0, `ipam assign --ip ${ipA}: ${again.out}${again.err}`);

    // B's device kept: held through several more passes (1 s apart), and listed
    await sleep(3500);
    assert.ok(await kv.get(handleKey(tapB)), 'B\'s hold stays while its device does');
    assert.equal(keys((await status()).orphanPods), [`${tapB} ${ipB}`]);
    const takenB = cli('ipam', 'assign', '--ip', ipB, '--node', other, '--datastore', datastore);
    assert.is.not(takenB.code, 0, `ipam assign gave ${ipB} while its tap pod holds it: ${takenB.out}${takenB.err}`);
  });
});

test.run();
