/**
 * `podman run -p` on a podway network (root, network namespaces, Debian's podman 4.3 with its CNI
 * backend; podman-kit.ts; docs/cni.md, "Host ports"): a two-node lab on etcd, podway run on both,
 * a podman host per node with the plugin installed by `podway cni install`. A busybox container on
 * node1 published with `-p 18080:8080` answers a container on node2 (a pod on another podway node),
 * node2 itself and node1 itself through node1's address; its WorkloadEndpoint in etcd carries
 * spec.ports as Calico's; a second container asking for the same port is refused; `podman rm`
 * takes the port away.
 */
// test-resources: podman
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { Lab, LabNodeSpec } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { atCleanup, guard, teardown, isRoot, until, logTail } from '../e2e/e2e-kit';
import { forgetCniCacheDirs, missingCniCacheDirs, podmanMissing, startPodmanNodes, type PodmanNodes } from './podman-kit';

const WEP_PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';
const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [] },
  { name: 'node2', subnet: 'a', pods: [] },
];

test('podman run -p on a podway node: reached from a pod on another node, from that node and from the node itself; spec.ports in etcd; a taken port refused; podman rm removes it', async () => {
  if (!isRoot()) throw new Error('needs root (network namespaces, podman)');
  const missing = podmanMissing();
  if (missing) throw new Error(missing);
  const lab = guard(new Lab(SPEC));
  const made: PodmanNodes = { hosts: [], opened: null };
  const hosts = made.hosts;
  const cacheDirs = missingCniCacheDirs();
  const forgetDirs = atCleanup(() => forgetCniCacheDirs(cacheDirs));
  const cleanupProblems: string[] = [];
  try {
    const { kv, installed } = await startPodmanNodes(lab, made, { datastore: 'etcd', storePrefix: 'podway-podman-hp-store-' });
    for (const inst of installed) assert.match(inst, 'host ports (`podman run -p`, hostPort; IPv4 and IPv6) are forwarded by podway run itself');
    const [n1, n2] = lab.nodes;
    const [h1, h2] = hosts;

    // the published container on node1: answers "A" on 8080, one connection after another
    const a = `hpa-${lab.tag}`;
    const idA = h1.runContainer(a, 'podway', ['-p', '18080:8080']);
    const ipA = h1.inspect(a).NetworkSettings.Networks.podway.IPAddress as string;
    // (a podman exec running until the container goes)
    void h1.execAsync(a, 'while true; do echo A | nc -l -p 8080; done', 120_000).catch(() => {});
    const wep = JSON.parse((await kv.get(`${WEP_PREFIX}default/${n1.name}-cni-${idA}-eth0`))!.value) as { spec: { ports?: unknown; interfaceName: string } };
    assert.equal(wep.spec.ports, [{ name: '', protocol: 'tcp', port: 8080, hostPort: 18080, hostIP: '' }], 'spec.ports in etcd, as Calico writes it');
    assert.ok(await until(async () => ((await controlRequest(n1.control, { cmd: 'endpoints' }, 5000)) as { interface: string; state: string }[]).some((e) => e.interface === wep.spec.interfaceName && e.state === 'attached'), 15_000), 'attached');

    // a container on node2 (a pod of another podway node) through node1's address
    const b = `hpb-${lab.tag}`;
    h2.runContainer(b, 'podway');
    let got = '';
    const reached = await until(() => {
      got = h2.exec(b, `nc -w 2 ${n1.ip} 18080 2>&1 || echo failed`, 15_000).trim();
      return got === 'A';
    }, 20_000, 300);
    assert.ok(reached, `pod on node2 -> ${n1.ip}:18080: ${got}\n${logTail(lab)}`);
    // node2 itself, and node1 itself (its address and 127.0.0.1)
    // (busybox's server takes one connection at a time, and starts again after it: tried again)
    const fromNs = (ns: string, host: string) => {
      try {
        return execFileSync('ip', ['netns', 'exec', ns, '/bin/busybox', 'nc', '-w', '2', host, '18080'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
      } catch (e) {
        return String((e as Error).message);
      }
    };
    assert.ok(await until(() => fromNs(n2.ns, n1.ip) === 'A', 10_000, 300), 'node2 -> node1:18080');
    assert.ok(await until(() => fromNs(n1.ns, n1.ip) === 'A', 10_000, 300), 'node1 -> its own address:18080');
    assert.ok(await until(() => fromNs(n1.ns, '127.0.0.1') === 'A', 10_000, 300), 'node1 -> 127.0.0.1:18080');
    console.log(`  podman -p 18080:8080 on ${n1.name} (${ipA}): reached from a pod on ${n2.name}, from ${n2.name} and from ${n1.name} (address, 127.0.0.1)`);

    // a second container asking for the port: refused by the plugin (podman 4.3's CNI backend binds nothing itself)
    const c = `hpc-${lab.tag}`;
    const refused = await h1.runContainerAsync(c, 'podway', ['-p', '18080:80']);
    assert.ok(refused.code !== 0, `second -p 18080 refused: ${refused.out}`);
    assert.match(refused.err, new RegExp(`tcp host port \\*:18080 is already taken on node node1 by WorkloadEndpoint default/node1-cni-${idA}-eth0 \\(container ${idA}, ${ipA.replace(/\./g, '\\.')} port 8080\\)`), refused.err);
    console.log(`  a second -p 18080: ${refused.err.trim().split('\n').pop()}`);
    h1.podman(['rm', '-f', '-t', '0', c]);

    // podman rm: the port goes
    h1.podman(['rm', '-f', '-t', '0', a]);
    assert.ok(await until(() => !execFileSync('ip', ['netns', 'exec', n1.ns, 'nft', 'list', 'chain', 'ip', 'podway', 'hostport_dnat'], { encoding: 'utf8' }).includes('18080'), 10_000, 200), 'rule gone with the container');
    assert.is(h2.exec(b, `nc -w 2 ${n1.ip} 18080 2>&1 || echo failed`, 15_000).trim() === 'A', false);
    h2.podman(['rm', '-f', '-t', '0', b]);
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    for (const h of hosts) cleanupProblems.push(...h.destroy());
    await teardown(lab);
    await made.opened?.close();
    forgetDirs();
    forgetCniCacheDirs(cacheDirs);
  }
  assert.equal(cleanupProblems, [], 'podman left nothing behind');
});

test.run();
