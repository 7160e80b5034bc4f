/**
 * What a podman user does on a podway network, beyond run and rm (podman.test.ts): one node
 * (dual-stack, embedded store), podman 4.3 with its CNI backend (podman-kit.ts), podway's network
 * installed by `podway cni install`, and a bridge network named `podman` (the reference bridge
 * plugin, as podman's own default network) beside it:
 *   - `--ip`, `--ip6` and `--mac-address` give the pod exactly those;
 *   - `podman kill -s KILL`: the container's end runs its CNI DEL (address, endpoint, veth gone);
 *   - `--restart=always`: its process killed, podman restarts it on the same address, attached;
 *   - `podman pod create --network podway` and two containers in it: one address, one endpoint;
 *   - `--network podway,podman` (the bridge dual-stack) starts: podman attaches the two in no fixed
 *     order, and when `podman` came first its default route failed podway's ADD ("RTNETLINK
 *     answers: File exists"); `podman network connect podway` on a bridge container (podway
 *     second for certain): podway's pools are reached over podway's interface (IPv4 and IPv6),
 *     the rest over the bridge; `podman network disconnect
 *     podman` leaves podway's default; connect again works;
 *   - a reboot-like loss of every container's process and namespace (PodmanHost.simulateReboot),
 *     with podway running, then with podway restarted: `podman start --all` re-attaches them on
 *     the same addresses;
 *   - 8 containers started at once, then `podman rm -af` with the pod running: everything
 *     released (no endpoint, no handle, no cali veth, `ipam check` clean).
 */
// test-resources: podman
// (podman makes libcni's cache directories /var/lib/cni/results when missing, and the pod's pause
// image build makes containers/image's /var/lib/containers/cache: this file removes those it made.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNode } from '../../src/lab/lab';
import { Ipam } from '../../src/control/ipam';
import { HANDLE_PREFIX } from '../../src/control/ipam/keys';
import { controlRequest } from '../../src/dataplane/control-server';
import { atCleanup, guard, teardown, isRoot, until, logTail } from '../e2e/e2e-kit';
import { forgetCniCacheDirs, missingCniCacheDirs, PodmanHost, podmanMissing, podwayIn } from './podman-kit';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PODWAY = path.join(ROOT, 'bin', 'podway.js');
const WEP_PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';
/** Where containers/image keeps its blob-info cache for root (written by the pod's pause image build). */
const CONTAINERS_DIR = '/var/lib/containers';

async function endpointsOf(n: LabNode): Promise<{ interface: string; state: string; workload?: string }[]> {
  return (await controlRequest(n.control, { cmd: 'endpoints' }, 5000)) as { interface: string; state: string }[];
}


test.before(() => {
  if (!isRoot()) throw new Error('the podman tests need root (network namespaces, podman)');
});

test('podman user: --ip/--ip6/--mac-address, kill, --restart=always, pods, podway beside a bridge network (connect/disconnect), 8 at once, rm -af with a pod', async () => {
  const missing = podmanMissing() ?? (existsSync('/usr/libexec/podman/catatonit') ? null : '/usr/libexec/podman/catatonit is missing (podman pod create builds its pause image from it): run `bash scripts/setup.sh` as root (catatonit)');
  if (missing) throw new Error(missing);
  const lab = guard(new Lab([{ name: 'node1', subnet: 'a', pods: [] }], { dualStack: true }));
  let host: PodmanHost | null = null;
  let opened: LabKvStore | null = null;
  const cleanupProblems: string[] = [];
  const cacheDirs = missingCniCacheDirs();
  const madeContainersDir = !existsSync(CONTAINERS_DIR);
  const forgetDirs = atCleanup(() => {
    forgetCniCacheDirs(cacheDirs);
    if (madeContainersDir) rmSync(CONTAINERS_DIR, { recursive: true, force: true });
  });
  try {
    lab.build();
    opened = await lab.openKvStore('embedded', 'podway-podman-user-');
    const { kv, spec } = opened;
    await lab.useKvDatastore(kv, spec);
    const node = lab.nodes[0];
    await lab.startPodway(node.name, 30_000);
    const h = (host = new PodmanHost(node.ns, `user-${lab.tag}`));
    const inst = podwayIn(node, ['cni', 'install', '--bin-dir', h.binDir, '--conf-dir', h.confDir, '--datastore', spec, '--node', node.name, '--control', node.control,
      '--ipam-lock-file', path.join(h.dir, 'run', 'ipam.lock'), '--pending-del-dir', path.join(h.dir, 'pending-del')]);
    assert.is(inst.code, 0, inst.out);
    h.addBridgeNetwork('podman', `cni-pu${lab.tag.slice(0, 4)}`, '10.88.0.0/16', '10.88.0.1', { subnet: 'fd88::/64', gateway: 'fd88::1' });
    const ipam = new Ipam(kv);
    const net = (name: string) => h.inspect(name).NetworkSettings.Networks as Record<string, { IPAddress: string; GlobalIPv6Address: string; MacAddress: string }>;
    const attached = async (n: number) => until(async () => (await endpointsOf(node)).filter((e) => e.state === 'attached').length === n, 15_000);

    // --ip, --ip6, --mac-address
    const [ip4, ip6, mac] = ['10.244.0.40', 'fd00:10:244::40', '02:11:22:33:44:55'];
    const c1 = h.runContainer('given', 'podway', ['--ip', ip4, '--ip6', ip6, '--mac-address', mac]);
    assert.equal([net('given').podway.IPAddress, net('given').podway.GlobalIPv6Address, net('given').podway.MacAddress], [ip4, ip6, mac], 'podman inspect');
    const shown = h.exec('given', 'ip -o addr show dev eth0; ip -o link show dev eth0');
    for (const want of [`inet ${ip4}/32`, `inet6 ${ip6}/128`, `link/ether ${mac}`]) assert.match(shown, want, shown);
    assert.is((await ipam.allocationOf(ip6))?.handleId, `podway.${c1}`);

    // podman kill -s KILL: conmon's `podman container cleanup` runs the CNI DEL
    const veths = () => execFileSync('ip', ['-n', node.ns, '-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').filter((l) => /: cali/.test(l));
    h.podman(['kill', '-s', 'KILL', 'given']);
    const released = await until(async () => (await kv.get(`${HANDLE_PREFIX}podway.${c1}`)) === null && veths().length === 0, 20_000, 200);
    assert.ok(released, `podman kill -s KILL: handle podway.${c1} released and veth gone (state ${h.inspect('given').State.Status}, veths ${veths().join(' | ')})`);
    assert.is(await kv.get(`${WEP_PREFIX}default/${node.name}-cni-${c1}-eth0`), null, 'endpoint of the killed container deleted');
    h.podman(['rm', 'given']);

    // --restart=always: the process killed from outside, podman restarts it on the same address
    h.runContainer('always', 'podway', ['--restart=always']);
    const before = h.inspect('always');
    process.kill(before.State.Pid, 'SIGKILL');
    const restarted = await until(() => { const s = h.inspect('always'); return s.RestartCount >= 1 && s.State.Status === 'running'; }, 20_000, 200);
    assert.ok(restarted, `--restart=always restarted after its process was killed: ${JSON.stringify(h.inspect('always').State)}`);
    const always = net('always').podway.IPAddress;
    assert.is(always, before.NetworkSettings.Networks.podway.IPAddress, 'same address after the restart');
    assert.ok(await attached(1), 'podway attached the restarted container');
    assert.match(h.exec('always', `ip -o addr show dev eth0`), `inet ${always}/32`);

    // A pod: its infra container holds the address, its containers share it
    h.podman(['pod', 'create', '--name', 'pod1', '--network', 'podway']);
    h.runContainer('pod1-a', '', ['--pod', 'pod1']);
    h.runContainer('pod1-b', '', ['--pod', 'pod1']);
    const infra = h.podman(['pod', 'inspect', 'pod1', '--format', '{{.InfraContainerID}}']).trim();
    const podIp = h.inspect(infra).NetworkSettings.Networks.podway.IPAddress as string;
    for (const c of ['pod1-a', 'pod1-b']) assert.match(h.exec(c, 'ip -o -4 addr show dev eth0'), `inet ${podIp}/32`, `${c} shares the pod's address`);
    assert.ok(await attached(2), 'podway attached the pod (one endpoint)');
    assert.ok(await kv.get(`${WEP_PREFIX}default/${node.name}-cni-${infra}-eth0`), 'the pod\'s endpoint is its infra container\'s');

    // Beside podman's bridge network. `--network podway,podman`: podman 4.3 attaches the two in
    // no fixed order (a Go map), and whenever `podman` came first podway's ADD failed. Then the
    // order made certain: on the bridge, podway connected at run time (podway's ADD second).
    h.runContainer('both2', 'podway,podman');
    const nets2 = net('both2');
    assert.match(nets2.podman.IPAddress, /^10\.88\./);
    assert.match(h.exec('both2', 'ip -o -4 addr show'), ` ${nets2.podway.IPAddress}/32 `, 'both2 has its podway address');
    h.podman(['rm', '-f', '-t', '0', 'both2']);
    h.runContainer('both', 'podman');
    h.podman(['network', 'connect', 'podway', 'both']);
    const nets = net('both');
    assert.match(nets.podman.IPAddress, /^10\.88\./);
    const routes = h.exec('both', 'ip route');
    const addrLines = h.exec('both', 'ip -o -4 addr show').split('\n');
    const ifOf = (a: string) => /^\d+:\s+(\S+)/.exec(addrLines.find((l) => l.includes(` ${a}/`)) ?? '')?.[1] ?? `(no interface has ${a})`;
    const [podwayIf, bridgeIf] = [ifOf(nets.podway.IPAddress), ifOf(nets.podman.IPAddress)];
    assert.match(routes, new RegExp(`^default via 10\\.88\\.0\\.1 dev ${bridgeIf}\\s*$`, 'm'), `the bridge's default stays the pod's: ${routes}`);
    assert.match(routes, new RegExp(`^10\\.244\\.0\\.0/16 via 169\\.254\\.1\\.1 dev ${podwayIf}`, 'm'), `podway's pool through podway's interface: ${routes}`);
    assert.match(routes, new RegExp(`^default via 169\\.254\\.1\\.1 dev ${podwayIf}\\s+metric 1\\s*$`, 'm'), routes);
    const routes6 = h.exec('both', 'ip -6 route');
    assert.match(routes6, new RegExp(`^default via fd88::1 dev ${bridgeIf}\\s+metric 1024`, 'm'), `IPv6 likewise: ${routes6}`);
    assert.match(routes6, new RegExp(`^fd00:10:244::/64 via fe80::ecee:eeff:feee:eeee dev ${podwayIf}`, 'm'), routes6);
    assert.match(routes6, new RegExp(`^default via fe80::ecee:eeff:feee:eeee dev ${podwayIf}\\s+metric 1025`, 'm'), routes6);
    assert.ok(await attached(3), 'podway attached the container of two networks');
    const ping = (from: string, to: string) => h.exec(from, `ping -c 2 -W 2 ${to} 2>&1 || true`, 20_000);
    let p = ping('both', always);
    assert.match(p, '2 packets received', `over podway to a podway pod: ${p}`);
    assert.match(p, 'ttl=63', `through podway (one hop): ${p}`);
    const always6 = net('always').podway.GlobalIPv6Address;
    p = ping('both', always6);
    assert.match(p, '2 packets received', `IPv6 over podway to a podway pod: ${p}`);
    p = ping('both', '10.88.0.1');
    assert.match(p, '2 packets received', `over the bridge: ${p}`);
    h.podman(['network', 'disconnect', 'podman', 'both']);
    assert.match(h.exec('both', 'ip route'), new RegExp(`^default via 169\\.254\\.1\\.1 dev ${podwayIf}`, 'm'), 'podway\'s default remains once the bridge is disconnected');
    p = ping('both', always);
    assert.match(p, '2 packets received', p);
    h.podman(['network', 'connect', 'podman', 'both']);
    h.podman(['network', 'disconnect', 'podway', 'both']);
    h.podman(['network', 'connect', 'podway', 'both']);
    p = ping('both', always);
    assert.match(p, '2 packets received', `podway connected again at run time: ${p}`);

    // A reboot-like loss of every container's namespace and process, with podway running, then
    // with podway stopped and started again: `podman start --all` re-attaches the containers on
    // their addresses (the ADD of the same container ID, its earlier attachment gone).
    h.podman(['rm', '-f', '-t', '0', 'both']);
    const podwayHandles = async () => (await kv.list(`${HANDLE_PREFIX}podway.`)).entries.length;
    assert.is(await podwayHandles(), 2);
    for (const podwayDown of [false, true]) {
      const what = podwayDown ? 'podway stopped and started again' : 'podway running';
      if (podwayDown) await lab.stopPodway(node.name);
      h.simulateReboot();
      // the kernel frees a namespace (and its veths) a moment after its last reference went
      assert.ok(await until(() => veths().length === 0, 10_000, 100), `${what}: every pod veth went with its namespace: ${veths().join(' | ')}`);
      if (podwayDown) await lab.startPodway(node.name, 30_000);
      const states = h.podman(['ps', '-a', '--format', '{{.Names}} {{.Status}}']);
      assert.not.match(states, /\bUp\b/, `${what}: podman reset its containers: ${states}`);
      h.podman(['start', '--all'], 120_000);
      assert.is(net('always').podway.IPAddress, always, `${what}: same address`);
      assert.is(h.inspect(infra).NetworkSettings.Networks.podway.IPAddress, podIp, `${what}: the pod's same address`);
      assert.ok(await attached(2), `${what}: podway attached both again: ${JSON.stringify(await endpointsOf(node))}`);
      assert.is(await podwayHandles(), 2, `${what}: no address taken twice`);
      p = ping('always', podIp);
      assert.match(p, '2 packets received', `${what}: ${p}`);
      console.log(`  reboot with ${what}: podman start --all re-attached ${always} and the pod's ${podIp}`);
    }

    // 8 at once, then rm -af with the pod running
    const runs = await Promise.all(Array.from({ length: 8 }, (_, k) => h.runContainerAsync(`many-${k}`, 'podway', [], 180_000)));
    for (const [k, r] of runs.entries()) assert.is(r.code, 0, `many-${k}: ${r.err}`);
    const addrs = Array.from({ length: 8 }, (_, k) => net(`many-${k}`).podway.IPAddress);
    assert.is(new Set(addrs).size, 8, `8 distinct addresses: ${addrs.join(' ')}`);
    assert.ok(await attached(10), `podway attached all 10: ${JSON.stringify(await endpointsOf(node))}`);
    h.podman(['rm', '-a', '-f', '-t', '0'], 180_000);
    assert.is(h.podman(['pod', 'ls', '-q']).trim(), '', 'rm -af removed the pod too');
    assert.equal((await kv.list(WEP_PREFIX)).entries.map((e) => e.key), [], 'no WorkloadEndpoints left');
    assert.equal((await kv.list(`${HANDLE_PREFIX}podway.`)).entries.map((e) => e.key), [], 'no podway IPAM handles left');
    assert.equal(veths(), [], 'no cali veth left');
    assert.ok(await until(async () => (await endpointsOf(node)).length === 0, 15_000), 'podway dropped every endpoint');
    assert.equal(await ipam.check(), []);
  } catch (e) {
    console.log(logTail(lab, 20));
    throw e;
  } finally {
    if (host) cleanupProblems.push(...host.destroy());
    await teardown(lab);
    await opened?.close();
    forgetDirs();
    forgetCniCacheDirs(cacheDirs);
    if (madeContainersDir) rmSync(CONTAINERS_DIR, { recursive: true, force: true });
  }
  assert.equal(cleanupProblems, [], 'podman left nothing behind');
});

test.run();
