/**
 * podman at scale on podway's CNI (root, network namespaces, Debian's podman 4.3 with its CNI
 * backend: test/cni/podman-kit.ts; the plugin installed by `podway cni install` as docs/cni.md
 * says). Two podway nodes on the embedded datastore (VXLAN pool), a podman host on each; 16
 * busybox containers started with `podman run -d` in 2 batches of 8 run at once (4 on each
 * node), each named uniquely. Every container pings one on the other node (pairs across the nodes,
 * both ways), then all are removed by name (`podman rm`, 8 at once), and nothing may be left:
 * no cali veth and no route of a pod address or veth in either node's kernel, no route of a pod
 * address or endpoint in either podway, no WorkloadEndpoint, IPAM handle or address (Ipam.check and
 * `podway ipam check` clean), no container lock file (`<ipam_lock_file's dir>/containers`, the
 * /run/podway/containers of a default install), no container namespace. Cleanup by name also
 * when it fails (then PodmanHost.destroy removes what is left). No timed assertions: how long
 * the batches take is printed, not checked (figures go in bench/README.md).
 */
// test-resources: podman
// (podman makes libcni's cache directories /var/lib/cni/results when missing, and this file
// removes those it made once empty: another podman file at the same time could lose them.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LabNode, LabNodeSpec } from '../../src/lab/lab';
import { Ipam } from '../../src/control/ipam';
import { HANDLE_PREFIX } from '../../src/control/ipam/keys';
import { controlRequest } from '../../src/dataplane/control-server';
import { atCleanup, guard, teardown, isRoot, until, logTail, routes } from './e2e-kit';
import { forgetCniCacheDirs, missingCniCacheDirs, PodmanHost, podmanMissing, podwayIn, startPodmanNodes, type PodmanNodes } from '../cni/podman-kit';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PODWAY = path.join(ROOT, 'bin', 'podway.js');
const WEP_PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';
const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [] },
  { name: 'node2', subnet: 'a', pods: [] },
];
// 16 in 2 batches of 8: still concurrent CNI ADDs/DELs on each node and IPAM across a batch, at
// about half the time of the 30-in-3x10 this was (265 s at load ~22 against the runner's 600 s per file).
const CONTAINERS = 16;
const BATCH = 8;

interface Container { host: PodmanHost; node: LabNode; name: string; id: string; ip: string }


async function endpointsOf(n: LabNode): Promise<{ interface: string; state: string }[]> {
  return (await controlRequest(n.control, { cmd: 'endpoints' }, 5000)) as { interface: string; state: string }[];
}

/** `ip -o LINK/ROUTE ...` lines in a node's namespace. */
function ipLines(n: LabNode, args: string[]): string[] {
  return execFileSync('ip', ['-n', n.ns, ...args], { encoding: 'utf8', timeout: 10_000 }).split('\n').filter((l) => l.trim() !== '');
}

/** Runs `fn` on every item, at most `width` at once; the results in order. */
async function inBatches<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

test(`podman at scale: ${CONTAINERS} containers on two podway nodes, started ${BATCH} at a time, each reaches a pod on the other node; removed, nothing is left`, async () => {
  if (!isRoot()) throw new Error('the podman tests need root (network namespaces, podman)');
  const missing = podmanMissing();
  if (missing) throw new Error(missing);
  const lab = guard(new Lab(SPEC));
  const made: PodmanNodes = { hosts: [], opened: null };
  const hosts = made.hosts;
  const cleanupProblems: string[] = [];
  const cacheDirs = missingCniCacheDirs();
  const forgetDirs = atCleanup(() => forgetCniCacheDirs(cacheDirs));
  // every name this test gives, removed by name in finally whatever happened
  const names: { host: PodmanHost; name: string }[] = [];
  try {
    const { kv, spec } = await startPodmanNodes(lab, made, { datastore: 'embedded', storePrefix: 'podway-podman-scale-store-', hostPrefix: 'scale-', installTimeoutMs: 60_000 });

    // Container k on node k % 2: each batch of BATCH holds BATCH/2 on each node, pairs (2j, 2j+1) across them.
    const planned = Array.from({ length: CONTAINERS }, (_, k) => ({ k, host: hosts[k % 2], node: lab.nodes[k % 2], name: `scale-${process.pid}-${lab.tag}-${k}` }));
    for (const p of planned) names.push({ host: p.host, name: p.name });
    const containers: Container[] = [];
    const t0 = Date.now();
    const batchMs: number[] = [];
    for (let b = 0; b < CONTAINERS; b += BATCH) {
      const tb = Date.now();
      const batch = planned.slice(b, b + BATCH);
      const runs = await Promise.all(batch.map((p) => p.host.runContainerAsync(p.name, 'podway')));
      batchMs.push(Date.now() - tb);
      runs.forEach((r, i) => assert.is(r.code, 0, `podman run ${batch[i].name}: ${r.err}${r.out}`));
      for (const [i, p] of batch.entries()) {
        const info = p.host.inspect(p.name);
        const ip = info.NetworkSettings.Networks.podway.IPAddress as string;
        assert.ok(ip, `${p.name} has an address: ${JSON.stringify(info.NetworkSettings.Networks)}`);
        containers.push({ host: p.host, node: p.node, name: p.name, id: runs[i].out.trim(), ip });
      }
      // each pod of the batch attached by its node's podway
      for (const n of lab.nodes) {
        const want = containers.filter((c) => c.node === n).length;
        assert.ok(await until(async () => (await endpointsOf(n)).filter((e) => e.state === 'attached').length === want, 30_000), `podway on ${n.name} attached its ${want} pods: ${JSON.stringify(await endpointsOf(n))}`);
      }
      // every pod of the batch pings its pair on the other node (retried while a route is new)
      const pings = await Promise.all(containers.slice(b, b + BATCH).map(async (c, i) => {
        const peer = containers[b + (i ^ 1)];
        let out = '';
        const ok = await until(async () => {
          const r = await c.host.execAsync(c.name, `ping -c 2 -i 0.2 -W 2 ${peer.ip} 2>&1 || true`, 20_000);
          out = r.out + r.err;
          return /2 packets transmitted, 2 packets received/.test(out);
        }, 30_000, 500);
        return { c, peer, ok, out };
      }));
      for (const p of pings) assert.ok(p.ok, `${p.c.name} (${p.c.ip}, ${p.c.node.name}) -> ${p.peer.name} (${p.peer.ip}, ${p.peer.node.name}): ${p.out}\n${logTail(lab, 10)}`);
    }
    const startMs = Date.now() - t0;
    assert.is(new Set(containers.map((c) => c.ip)).size, CONTAINERS, 'distinct addresses');
    assert.is((await kv.list(WEP_PREFIX)).entries.length, CONTAINERS, 'an endpoint each');

    // podman rm by name, BATCH at once
    const tr = Date.now();
    const rms = await inBatches(containers, BATCH, (c) => c.host.podmanAsync(['rm', '-f', '-t', '0', c.name], 120_000));
    const rmMs = Date.now() - tr;
    rms.forEach((r, i) => assert.is(r.code, 0, `podman rm ${containers[i].name}: ${r.err}`));
    console.log(`  ${CONTAINERS} containers: podman run -d in batches of ${BATCH}: ${batchMs.join(', ')} ms per batch (${startMs} ms with the pings); podman rm ${BATCH} at once: ${rmMs} ms`);

    // nothing left: the datastore
    assert.equal((await kv.list(WEP_PREFIX)).entries.map((e) => e.key), [], 'no WorkloadEndpoints left');
    assert.equal((await kv.list(`${HANDLE_PREFIX}podway.`)).entries.map((e) => e.key), [], 'no IPAM handle of the podway network left');
    const ipam = new Ipam(kv);
    for (const c of containers) assert.is(await ipam.allocationOf(c.ip), null, `${c.name}'s ${c.ip} released`);
    assert.equal(await ipam.check(), []);
    const check = podwayIn(lab.nodes[0], ['ipam', 'check', '--datastore', spec], 60_000);
    assert.is(check.code, 0, check.out);
    assert.match(check.out, 'found 0 problems', check.out);
    // the nodes: veths, kernel routes, podway's routes and endpoints
    const podIps = new Set(containers.map((c) => c.ip));
    for (const n of lab.nodes) {
      assert.equal(ipLines(n, ['-o', 'link', 'show']).filter((l) => /: cali/.test(l)), [], `no cali veth left on ${n.name}`);
      const kernel = ipLines(n, ['route', 'show', 'table', 'all']).filter((l) => /\bcali/.test(l) || [...podIps].some((ip) => new RegExp(`(^|\\s)${ip.replace(/\./g, '\\.')}(/32)?\\s`).test(l)));
      assert.equal(kernel, [], `no kernel route of a pod or its veth on ${n.name}`);
      assert.ok(await until(async () => (await endpointsOf(n)).length === 0, 15_000), `podway on ${n.name} dropped every endpoint: ${JSON.stringify(await endpointsOf(n))}`);
      assert.ok(await until(async () => !(await routes(n)).some((r) => r.cidr.endsWith('/32') && podIps.has(r.cidr.split('/')[0])), 15_000), `podway on ${n.name} routes no pod address: ${JSON.stringify((await routes(n)).filter((r) => r.cidr.endsWith('/32') && podIps.has(r.cidr.split('/')[0])))}`);
    }
    // the hosts: container locks, namespaces, libcni's cached results
    for (const h of hosts) {
      const locks = path.join(h.dir, 'run', 'containers');
      assert.equal(existsSync(locks) ? readdirSync(locks) : [], [], `no container lock file left in ${locks}`);
      assert.equal(h.leftSandboxes(), [], 'no container namespace left');
    }
    for (const c of containers) assert.not.ok(existsSync(`/var/lib/cni/results/podway-${c.id}-eth0`), `no cached CNI result of ${c.name} left`);
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    // by name first (every one this test gave, whether it ran or not), then whatever is left
    await inBatches(names, BATCH, (x) => x.host.podmanAsync(['rm', '-f', '-t', '0', '--ignore', x.name], 120_000));
    for (const h of hosts) cleanupProblems.push(...h.destroy());
    await teardown(lab);
    await made.opened?.close();
    forgetDirs();
    forgetCniCacheDirs(cacheDirs);
  }
  assert.equal(cleanupProblems, [], 'podman left nothing behind');
});

test.run();
