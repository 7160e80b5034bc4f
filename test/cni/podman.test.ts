/**
 * A real container runtime calls podway's CNI plugin (root, network namespaces, Debian's podman
 * 4.3 with its CNI backend; see podman-kit.ts). A two-node lab (podway run on both, VXLAN pool)
 * on the embedded datastore and on a real etcd; on each node a podman "host" with the plugin
 * installed by `podway cni install` into that host's own directories. Busybox containers:
 *   - get an address from their node's affine block, a /32 with Calico's routes and the pool's
 *     MTU, and a WorkloadEndpoint that the node's podway attaches;
 *   - ping each other across the nodes and move 10 MiB over TCP (busybox nc; the receiver's
 *     sha256 of what arrived, sent back over the same connection, equals the sender's);
 *   - `podman rm` releases the address and removes the endpoint and the veth; `podway ipam check`
 *     is clean and podway forgets the endpoint.
 */
// test-resources: podman
// (podman makes libcni's cache directories /var/lib/cni/results when missing, and this file
// removes those it made once empty: another podman file at the same time could lose them.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LabNode, LabNodeSpec } from '../../src/lab/lab';
import type { KvStore } from '../../src/control/kv/kv';
import { Ipam } from '../../src/control/ipam';
import { HANDLE_PREFIX, nodeAffinityPrefix, parseAffinityKey } from '../../src/control/ipam/keys';
import { formatIp, netContains, parseIp } from '../../src/control/ipam/net';
import { controlRequest } from '../../src/dataplane/control-server';
import { atCleanup, guard, teardown, isRoot, until, logTail } from '../e2e/e2e-kit';
import { forgetCniCacheDirs, missingCniCacheDirs, PodmanHost, podmanMissing, podwayIn, startPodmanNodes, type PodmanNodes } from './podman-kit';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PODWAY = path.join(ROOT, 'bin', 'podway.js');
const WEP_PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';
const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [] },
  { name: 'node2', subnet: 'a', pods: [] },
];
const BYTES = 10 * 1024 * 1024;

interface Container { host: PodmanHost; node: LabNode; name: string; id: string; ip: string }


/** Every endpoint podway knows, attached or waiting for its interface (`state`). */
async function endpointsOf(n: LabNode): Promise<{ interface: string; state: string }[]> {
  return (await controlRequest(n.control, { cmd: 'endpoints' }, 5000)) as { interface: string; state: string }[];
}

/** Whether `ip` lies in a block affine to `node`. */
async function inNodeBlock(kv: KvStore, node: string, ip: string): Promise<boolean> {
  const addr = parseIp(ip)!.value;
  const blocks = (await kv.list(nodeAffinityPrefix(node, 4))).entries.map((e) => parseAffinityKey(e.key)!.cidr);
  return blocks.some((b) => netContains(b, addr));
}

/**
 * On one node's podman: a tun and a tap pod (networks podway-tun and podway-tap installed beside
 * podway) and a veth pod with `--ip` (podman passes CNI_ARGS IP=). Each gets its address (the tun
 * pod used to fail, `Error: invalid MAC address`: its result had no mac; the --ip one got another
 * address), which podman inspect reports, reaches `peer` on the other node through both podways,
 * and `podman rm` releases it.
 */
async function tunTapAndStaticIp(kv: KvStore, spec: string, node: LabNode, host: PodmanHost, peer: Container): Promise<void> {
  for (const type of ['tun', 'tap']) {
    const inst = podwayIn(node, ['cni', 'install', '--bin-dir', host.binDir, '--conf-dir', host.confDir, '--datastore', spec, '--node', node.name, '--control', node.control,
      '--ipam-lock-file', path.join(host.dir, 'run', 'ipam.lock'), '--pending-del-dir', path.join(host.dir, 'pending-del'), '--name', `podway-${type}`, '--priority', '20', '--interface-type', type]);
    assert.is(inst.code, 0, inst.out);
  }
  // A free address of the node's block (addresses are handed out from its start).
  const block = (await kv.list(nodeAffinityPrefix(node.name, 4))).entries.map((e) => parseAffinityKey(e.key)!.cidr)[0];
  const wanted = formatIp(4, block.base + 58n);
  const pods = [
    { network: 'podway-tun', type: 'tun', more: [] as string[] },
    { network: 'podway-tap', type: 'tap', more: [] as string[] },
    { network: 'podway', type: 'veth', more: ['--ip', wanted] },
  ];
  for (const p of pods) {
    const name = `${p.type}${p.more.length ? '-ip' : ''}-${node.name}-${process.pid}`;
    const id = host.runContainer(name, p.network, p.more);
    const ip = host.inspect(name).NetworkSettings.Networks[p.network].IPAddress as string;
    if (p.more.length) assert.is(ip, wanted, `podman run --ip ${wanted}: podman inspect says ${ip}`);
    const held = await new Ipam(kv).allocationOf(ip);
    assert.is(held?.handleId, `${p.network}.${id}`, `${name}'s ${ip} is held by its IPAM handle`);
    assert.is(held?.secondary?.node, node.name);
    const addr = host.exec(name, 'ip -o -4 addr show dev eth0; ip route');
    assert.match(addr, `inet ${ip}/32`, addr);
    assert.match(addr, p.type === 'tun' ? /default dev eth0/ : /default via 169\.254\.1\.1 dev eth0/, addr);
    const wep = JSON.parse((await kv.get(`${WEP_PREFIX}default/${node.name}-cni-${id}-eth0`))!.value) as { metadata: { annotations?: Record<string, string> }; spec: { interfaceName: string; ipNetworks: string[] } };
    assert.equal(wep.spec.ipNetworks, [`${ip}/32`]);
    assert.is(wep.metadata.annotations?.['cni.podway.io/interface-type'] ?? 'veth', p.type);
    assert.ok(await until(async () => (await endpointsOf(node)).some((e) => e.interface === wep.spec.interfaceName && e.state === 'attached'), 15_000), `podway on ${node.name} attached ${name}'s ${wep.spec.interfaceName}`);
    let ping = '';
    const reached = await until(() => {
      ping = host.exec(name, `ping -c 1 -W 1 ${peer.ip} >/dev/null 2>&1 && ping -c 3 -i 0.2 -W 2 ${peer.ip} 2>&1 || echo unreachable`, 15_000);
      return /3 packets transmitted, 3 packets received/.test(ping);
    }, 20_000, 200);
    assert.ok(reached, `${name} (${p.type}, ${ip}) -> ${peer.name} (${peer.ip}): ${ping}`);
    host.podman(['rm', '-f', '-t', '0', name]);
    assert.is(await kv.get(`${HANDLE_PREFIX}${p.network}.${id}`), null, `${name}: handle released by podman rm`);
    assert.is(await new Ipam(kv).allocationOf(ip), null, `${name}: ${ip} released`);
    assert.is(await kv.get(`${WEP_PREFIX}default/${node.name}-cni-${id}-eth0`), null, `${name}: endpoint removed`);
    console.log(`  [embedded] ${p.type}${p.more.length ? ' --ip' : ''} pod ${ip} on ${node.name} -> ${peer.ip}: 3/3 pings; podman rm released it`);
  }
}

async function scenario(datastore: 'embedded' | 'etcd'): Promise<void> {
  const missing = podmanMissing();
  if (missing) throw new Error(missing);
  const lab = guard(new Lab(SPEC));
  const made: PodmanNodes = { hosts: [], opened: null };
  const hosts = made.hosts;
  const cleanupProblems: string[] = [];
  const cacheDirs = missingCniCacheDirs();
  // also at a signal (the runner's timeout), after the hosts made below are destroyed
  const forgetDirs = atCleanup(() => forgetCniCacheDirs(cacheDirs));
  try {
    // One podman host per node; the plugin and conflist installed the way a user does it.
    const { kv, spec } = await startPodmanNodes(lab, made, { datastore, storePrefix: 'podway-podman-store-' });
    for (const [k, h] of hosts.entries()) {
      const nets = JSON.parse(h.podman(['network', 'ls', '--format', 'json'])) as { name: string }[];
      assert.ok(nets.some((x) => x.name === 'podway'), `podman on ${lab.nodes[k].name} sees the podway network: ${JSON.stringify(nets)}`);
    }

    // A container on each node.
    const containers: Container[] = [];
    for (const [k, n] of lab.nodes.entries()) {
      const name = `c${k + 1}-${lab.tag}`;
      const id = hosts[k].runContainer(name, 'podway');
      const ip = hosts[k].inspect(name).NetworkSettings.Networks.podway.IPAddress as string;
      containers.push({ host: hosts[k], node: n, name, id, ip });
    }
    for (const c of containers) {
      assert.ok(await inNodeBlock(kv, c.node.name, c.ip), `${c.name} got ${c.ip} from a block of ${c.node.name}`);
      const addr = c.host.exec(c.name, 'ip -o -4 addr show dev eth0; ip route; cat /sys/class/net/eth0/mtu');
      assert.match(addr, `inet ${c.ip}/32`, addr);
      assert.match(addr, /default via 169\.254\.1\.1 dev eth0/, addr);
      assert.match(addr, /169\.254\.1\.1 dev eth0 scope link/, addr);
      assert.match(addr, /\n1450\s*$/, `pod MTU from the VXLAN pool: ${addr}`);
      const handle = await kv.get(`${HANDLE_PREFIX}podway.${c.id}`);
      assert.ok(handle, `IPAM handle podway.${c.id}`);
      // podman passes K8S_POD_NAME without K8S_POD_NAMESPACE: a plain CNI endpoint, as Calico names it
      const wep = await kv.get(`${WEP_PREFIX}default/${c.node.name}-cni-${c.id}-eth0`);
      assert.ok(wep, `WorkloadEndpoint default/${c.node.name}-cni-${c.id}-eth0 of ${c.name}`);
      const w = JSON.parse(wep!.value) as { spec: { node: string; ipNetworks: string[]; containerID: string; interfaceName: string } };
      assert.is(w.spec.node, c.node.name);
      assert.equal(w.spec.ipNetworks, [`${c.ip}/32`]);
      assert.is(w.spec.containerID, c.id);
      assert.ok(await until(async () => (await endpointsOf(c.node)).some((e) => e.interface === w.spec.interfaceName && e.state === 'attached'), 15_000), `podway on ${c.node.name} attached ${w.spec.interfaceName}`);
    }

    // Across the nodes: ping both ways (the first packets may race the peer's route), then 10 MiB.
    const [a, b] = containers;
    let ping = '';
    const reached = await until(() => {
      ping = a.host.exec(a.name, `ping -c 1 -W 1 ${b.ip} >/dev/null 2>&1 && ping -c 3 -i 0.2 -W 2 ${b.ip} 2>&1 || echo unreachable`, 15_000);
      return /3 packets transmitted, 3 packets received/.test(ping);
    }, 20_000, 200);
    assert.ok(reached, `${a.name} -> ${b.name} (${b.ip}): ${ping}\n${logTail(lab)}`);
    const back = b.host.exec(b.name, `ping -c 3 -i 0.2 -W 2 ${a.ip} 2>&1 || true`, 15_000);
    assert.match(back, '3 packets transmitted, 3 packets received', back);
    assert.match(back, 'ttl=62', `${b.name} -> ${a.name} crosses both podways (TTL 64 - 2): ${back}`);

    const sent = a.host.exec(a.name, `dd if=/dev/urandom of=/tmp/data bs=1048576 count=${BYTES / 1048576} 2>/dev/null && wc -c < /tmp/data && sha256sum /tmp/data`);
    const [sentBytes, sentSum] = [Number(sent.split('\n')[0].trim()), sent.split('\n')[1].split(/\s+/)[0]];
    assert.is(sentBytes, BYTES);
    // The receiver hashes what arrives and writes the sum back over the same connection.
    const receiver = b.host.execAsync(b.name, 'nc -l -p 5000 -e /bin/sha256sum', 90_000);
    const t0 = Date.now();
    const transfer = a.host.exec(a.name, `i=0; until nc ${b.ip} 5000 < /tmp/data; do i=$((i+1)); [ $i -ge 100 ] && exit 1; sleep 0.1; done`, 90_000);
    const ms = Date.now() - t0;
    const rx = await receiver;
    assert.is(rx.code, 0, `receiver: ${rx.err}`);
    const gotSum = transfer.trim().split(/\s+/)[0];
    assert.is(gotSum, sentSum, `${b.name} received exactly the ${BYTES} bytes ${a.name} sent`);
    console.log(`  [${datastore}] ${a.ip} (${a.node.name}) -> ${b.ip} (${b.node.name}): 10 MiB in ${ms} ms, sha256 equal`);

    if (datastore === 'embedded') await tunTapAndStaticIp(kv, spec, a.node, a.host, b);

    // podman rm: CNI DEL releases the address and removes the endpoint and the veth.
    for (const c of containers) {
      const sandbox = c.host.inspect(c.name).NetworkSettings.SandboxKey as string;
      c.host.podman(['rm', '-f', '-t', '0', c.name]);
      assert.not.ok(existsSync(sandbox), `${c.name}'s namespace ${sandbox} is gone`);
      assert.is(await kv.get(`${HANDLE_PREFIX}podway.${c.id}`), null, `handle podway.${c.id} released`);
      // libcni caches each attachment's result until its DEL succeeds
      assert.not.ok(existsSync(`/var/lib/cni/results/podway-${c.id}-eth0`), `no cached CNI result of ${c.name} left`);
      assert.not.ok(existsSync(`/run/runc/${c.id}`), `runc's state of ${c.name} is gone`);
    }
    assert.equal((await kv.list(WEP_PREFIX)).entries.map((e) => e.key), [], 'no WorkloadEndpoints left');
    for (const n of lab.nodes) {
      const cali = execFileSync('ip', ['-n', n.ns, '-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').filter((l) => /: cali/.test(l));
      assert.equal(cali, [], `no cali veth left on ${n.name}`);
      assert.ok(await until(async () => (await endpointsOf(n)).length === 0, 15_000), `podway on ${n.name} dropped the endpoint`);
    }
    assert.equal(await new Ipam(kv).check(), []);
    const check = podwayIn(lab.nodes[0], ['ipam', 'check', '--datastore', spec]);
    assert.is(check.code, 0, check.out);
    assert.match(check.out, 'found 0 problems', check.out);
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    for (const h of hosts) cleanupProblems.push(...h.destroy());
    await teardown(lab); // podways, etcd, namespaces
    await made.opened?.close();
    forgetDirs();
    forgetCniCacheDirs(cacheDirs);
  }
  // Whatever podman made must already be gone when the test passes (destroy() removed leftovers).
  assert.equal(cleanupProblems, [], 'podman left nothing behind');
}

test.before(() => {
  if (!isRoot()) throw new Error('the podman tests need root (network namespaces, podman)');
});

test('podman (CNI backend) on two podway nodes, embedded datastore: addresses from the node blocks, ping and 10 MiB TCP across nodes; tun and tap pods, --ip; podman rm cleans up', async () => {
  await scenario('embedded');
});

test('podman (CNI backend) on two podway nodes, etcd: the same', async () => {
  await scenario('etcd');
});

test.run();
