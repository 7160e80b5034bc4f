/**
 * Two IPv6-only nodes on a real etcd (root, network namespaces): the nodes' underlay has no IPv4
 * address, so etcd is reached over IPv6 too (http://[fd99::fe]:2379, the lab fabric's IPv6
 * address). `podway run --ip none` registers each Node in etcd with spec.bgp.ipv6Address only and
 * an IPv6 VXLAN tunnel address from etcd's IPAM (no IPv4 one although the IPv4 pool is VXLAN too),
 * each routes the other's IPv6 block over VXLAN-over-IPv6, and pods ping (hop limit 62) and send
 * 1 MiB of TCP with its content checked: veth to veth, and tap and tun pods (podway's own devices
 * in the pods' namespaces, given the IPv6 pools' MTU, 1430) to each other and to veth pods, both
 * ways. Then the CNI plugin on node1,
 * reaching etcd over IPv6 too: `podway cni install` finds the Node IPv6-only and writes ipam
 * assign_ipv4 "false" / assign_ipv6 "true", ADD gives a pod a /128 alone, which node1 attaches and
 * which pings and takes TCP from node2's pod, and DEL releases it in etcd. Last, etcd killed and
 * node1 restarted meanwhile: it forwards on its cached IPv6-only model, and is ready again on etcd
 * once etcd is back.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNodeSpec, parsePing, pingArgs } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-client';
import { Ipam } from '../../src/control/ipam';
import { addNetns } from '../helpers/netns';
import { guard, teardown, isRoot, until, logTail, routes, tcpTransferTo } from './e2e-kit';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'tap-1', type: 'tap' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }, { name: 'tun-2', type: 'tun' }] },
];

interface StoredNode { spec: { bgp: { ipv4Address?: string; ipv6Address?: string }; ipv4VXLANTunnelAddr?: string; ipv6VXLANTunnelAddr?: string } }
interface Status { nodeIp: string | null; ipv6: { nodeIp: string | null }; withheld: { cidr: string; reason: string }[] }

/** status's readiness: ready, or why not. */
async function readiness(control: string): Promise<{ ready?: boolean; notReady?: string[] }> {
  const st = (await controlRequest(control, { cmd: 'status' }, 5000)) as { ready?: boolean; notReady?: string[] };
  return { ready: st.ready, notReady: st.notReady };
}

/** Pings a -> b's IPv6 address until one answers, then 4 with none lost and hop limit 62 (two routed hops). */
async function pingAcross(lab: Lab, a: string, b: string): Promise<void> {
  const to = lab.pod(b).ip6!;
  assert.ok(await until(() => lab.ping(a, to, 1).received === 1, 20_000, 100), `${a} -> ${b} (${to}) reachable`);
  const p = lab.ping(a, to, 4);
  assert.is(p.loss, 0, `${a} -> ${b}: ${JSON.stringify(p)}`);
  assert.is(p.ttl, 62, `${a} -> ${b}: hop limit 64 - 2`);
}

async function tcpAcross(lab: Lab, a: string, b: string, port: number): Promise<void> {
  const dst = lab.pod(b);
  const t = await tcpTransferTo(lab, a, { name: b, ns: dst.ns, ip: dst.ip6! }, 1 << 20, port);
  assert.is(t.received.bytes, 1 << 20, `${a} -> ${b}: TCP bytes`);
  assert.is(t.received.sha256, t.sent.sha256, `${a} -> ${b}: TCP content`);
}

test('two IPv6-only nodes on etcd (reached over IPv6): Nodes without IPv4, IPv6 VXLAN routes, veth/tap/tun pods ping and TCP across', async () => {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  const lab = guard(new Lab(SPEC, { ipv6Only: true, podOffloads: false }));
  let opened: LabKvStore | null = null;
  let podNs: string | null = null;
  let dropPodNs = (): void => undefined;
  try {
    lab.build();
    opened = await lab.openKvStore('etcd', 'podway-v6only-etcd-');
    assert.is(opened.spec, 'etcd:http://[fd99::fe]:2379', 'the nodes reach etcd over IPv6');
    const kv = opened.kv;
    await lab.useKvDatastore(kv, opened.spec);
    assert.is((await kv.list('/calico/resources/v3/projectcalico.org/nodes/')).entries.length, 0, 'no Node written by hand');
    // podway sets its tap/tun devices' MTU from the model: on an IPv6-only node the IPv6 pools'
    // alone (VXLAN over IPv6: 1500 - 70), not the IPv4 VXLAN pool's 1450.
    for (const p of ['tap-1', 'tun-2']) execFileSync('ip', ['-n', lab.pod(p).ns, 'link', 'set', lab.pod(p).podIf, 'mtu', '1500']);
    for (const n of lab.nodes) await lab.startPodway(n.name, 30_000, ['--ip', 'none']);
    const mtuOf = (p: string) => (JSON.parse(execFileSync('ip', ['-j', '-n', lab.pod(p).ns, 'link', 'show', lab.pod(p).podIf], { encoding: 'utf8' })) as { mtu: number }[])[0].mtu;
    for (const p of ['tap-1', 'tun-2']) assert.ok(await until(() => mtuOf(p) === 1430, 30_000), `${p}: MTU ${mtuOf(p)}, expected 1430`);

    for (const n of lab.nodes) {
      const e = await kv.get(`/calico/resources/v3/projectcalico.org/nodes/${n.name}`);
      assert.ok(e, `${n.name} registered in etcd`);
      const node = JSON.parse(e!.value) as StoredNode;
      assert.is(node.spec.bgp.ipv4Address, undefined, `${n.name}: no IPv4 address registered`);
      assert.is(node.spec.bgp.ipv6Address, `${n.ip6}/64`, `${n.name}: first-found IPv6`);
      assert.is(node.spec.ipv4VXLANTunnelAddr, undefined, `${n.name}: no IPv4 VTEP (the IPv4 VXLAN pool is not for it)`);
      assert.is(node.spec.ipv6VXLANTunnelAddr, n.block6!.split('/')[0], `${n.name}: IPv6 VTEP from etcd's IPAM`);
      const st = (await controlRequest(n.control, { cmd: 'status' }, 5000)) as Status;
      assert.is(st.nodeIp, null);
      assert.is(st.ipv6.nodeIp, n.ip6);
      assert.match(st.withheld.find((x) => x.cidr === '10.244.0.0/16')?.reason ?? JSON.stringify(st.withheld), 'this node has no IPv4 address');
      // Ready (READY=1 under systemd, /readyz 200): it never was, wanting IPv4 VXLAN and IPIP sockets an IPv6-only node does not open.
      assert.ok(await until(async () => (await readiness(n.control)).ready === true, 30_000), `${n.name} ready: ${JSON.stringify(await readiness(n.control))}`);
    }
    assert.equal((await new Ipam(kv).check()).map((p) => p.message), [], 'IPAM consistent');
    for (const [from, to] of [['node1', 'node2'], ['node2', 'node1']]) {
      const block6 = lab.node(to).block6!;
      assert.ok(await until(async () => (await routes(lab.node(from))).some((r) => r.cidr === block6 && r.kind === 'vxlan'), 30_000), `${from} routes ${block6} over IPv6 VXLAN`);
    }

    // veth pods across
    await pingAcross(lab, 'web-1', 'web-2');
    await pingAcross(lab, 'web-2', 'web-1');
    await tcpAcross(lab, 'web-1', 'web-2', 5321);
    // tap and tun pods: to each other and to veth pods, both ways
    for (const [a, b] of [['tap-1', 'tun-2'], ['tun-2', 'tap-1'], ['tap-1', 'web-2'], ['web-2', 'tap-1'], ['tun-2', 'web-1'], ['web-1', 'tun-2']]) await pingAcross(lab, a, b);
    await tcpAcross(lab, 'tap-1', 'tun-2', 5322);
    await tcpAcross(lab, 'tun-2', 'tap-1', 5323);
    await tcpAcross(lab, 'web-2', 'tap-1', 5324);
    await tcpAcross(lab, 'tun-2', 'web-1', 5325);

    // The CNI plugin on node1, reaching etcd over IPv6 as podway run does: `cni install` finds the
    // Node IPv6-only and asks for IPv6 only; ADD gives a pod a /128 of node1's block, which podway
    // attaches and forwards; DEL gives the address back.
    const n1 = lab.node('node1');
    const cniDir = path.join(lab.dir, 'cni');
    const inst = spawnSync('ip', ['netns', 'exec', n1.ns, process.execPath, BIN, 'cni', 'install', '--bin-dir', path.join(cniDir, 'bin'), '--conf-dir', path.join(cniDir, 'net.d'),
      '--datastore', opened.spec, '--node', 'node1', '--control', n1.control, '--ipam-lock-file', path.join(cniDir, 'ipam.lock'), '--pending-del-dir', path.join(cniDir, 'pending-del')], { encoding: 'utf8', timeout: 60_000 });
    assert.is(inst.status, 0, inst.stdout + inst.stderr);
    assert.match(inst.stdout, 'node node1 is IPv6-only (its Node has no spec.bgp.ipv4Address)');
    const conflist = JSON.parse(readFileSync(path.join(cniDir, 'net.d', '10-podway.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    assert.equal(conflist.plugins[0].ipam, { type: 'podway', assign_ipv4: 'false', assign_ipv6: 'true' });
    const config = JSON.stringify({ cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] });
    podNs = `pw-cnipod-${lab.tag}`;
    dropPodNs = addNetns(podNs);
    const cni = (command: string) => spawnSync('ip', ['netns', 'exec', n1.ns, path.join(cniDir, 'bin', 'podway')], {
      input: config, encoding: 'utf8', timeout: 90_000,
      env: { CNI_COMMAND: command, CNI_CONTAINERID: `c${lab.tag}`, CNI_NETNS: `/run/netns/${podNs}`, CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=cni-1', CNI_PATH: path.join(cniDir, 'bin') },
    });
    const add = cni('ADD');
    assert.is(add.status, 0, add.stdout + add.stderr);
    const ips = (JSON.parse(add.stdout) as { ips: { address: string }[] }).ips.map((i) => i.address);
    assert.is(ips.length, 1, `IPv6 only: ${ips.join(', ')}`);
    const podIp = ips[0].split('/')[0];
    assert.match(`${podIp}/128`, /^fd00:10:244::[0-9a-f]*\/128$/);
    assert.ok(await until(async () => ((await controlRequest(n1.control, { cmd: 'endpoints' }, 5000)) as { state: string; ips?: string[] }[]).filter((e) => e.state === 'attached').length === 3, 30_000), 'node1 attached the CNI pod');
    const out = execFileSync('ip', ['netns', 'exec', podNs, 'ping', ...pingArgs(4), lab.pod('web-2').ip6!], { encoding: 'utf8', timeout: 30_000 });
    const p = parsePing(out, 4);
    assert.is(p.loss, 0, `cni-1 -> web-2: ${out}`);
    assert.is(p.ttl, 62);
    const t = await tcpTransferTo(lab, 'web-2', { name: 'cni-1', ns: podNs, ip: podIp }, 1 << 20, 5326);
    assert.is(t.received.sha256, t.sent.sha256, 'web-2 -> cni-1: TCP content');
    const del = cni('DEL');
    assert.is(del.status, 0, del.stdout + del.stderr);
    assert.is(await new Ipam(kv).allocationOf(podIp), null, 'DEL released the address in etcd');

    // etcd down (killed by PID) and node1 restarted meanwhile: it forwards at once on the IPv6-only
    // model it cached (no IPv4 address in it), and follows etcd again once it is back.
    const etcd = await lab.startEtcd();
    assert.is(await lab.stopPodway('node1'), 0);
    await etcd.kill();
    await lab.startPodway('node1', 30_000, ['--ip', 'none']);
    const st1 = (await controlRequest(n1.control, { cmd: 'status' }, 5000)) as Status & { ready?: boolean; cachedModel?: unknown };
    assert.ok(st1.cachedModel, `node1 runs on its cached model: ${JSON.stringify(st1)}`);
    assert.is(st1.nodeIp, null);
    assert.is(st1.ipv6.nodeIp, n1.ip6);
    await pingAcross(lab, 'web-1', 'web-2');
    await pingAcross(lab, 'tun-2', 'tap-1');
    await etcd.start();
    assert.ok(await until(async () => (await readiness(n1.control)).ready === true, 60_000), `node1 ready again on etcd: ${JSON.stringify(await readiness(n1.control))}`);
    await pingAcross(lab, 'tap-1', 'web-2');
  } catch (e) {
    console.log(logTail(lab, 25));
    throw e;
  } finally {
    dropPodNs();
    await teardown(lab);
    await opened?.close();
  }
});

test.run();
