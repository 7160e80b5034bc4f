/**
 * A node's own tunnel address works as on a Calico node (root, network namespaces): two podways on
 * a real etcd, each registering its Node with the tunnel addresses IPAM gives it (the IPv4 and
 * IPv6 VXLAN ones, then, after the pools turn to IPIP, the IPIP one, spec.bgp.ipv4IPIPTunnelAddr).
 * podway puts the node's tunnel addresses on podway0 (/32, /128) and routes the pools there with
 * the address as the source, as Calico's routes through `vxlan.calico` / `tunl0` have it; so
 * (a) a pod on the other node pings the address and node1's kernel answers (decapsulated, handed
 * into podway0), (b) node1's own traffic to a pod on node2 leaves with the address as its source
 * (the pod's TCP listener prints the peer), (c) node1's own pods (veth and TAP) ping it. Each in
 * VXLAN (IPv4 and IPv6) and in IPIP (IPv4), and podway0's addresses and routes follow the switch.
 * Before, the address was on no interface: a ping to it was dropped `blackhole`, and the node's
 * traffic left with its underlay address.
 *
 * One lab for the file (built in before, removed in after and on any exit: guard()).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, LabKvStore, LabNodeSpec, run } from '../../src/lab/lab';
import type { KvStore } from '../../src/control/kv/kv';
import { guard, teardown, isRoot, until, logTail, pingIn, tcpTransferFromNs } from './e2e-kit';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }, { name: 'tap-1', type: 'tap' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;

interface Tunnels { vxlan: string | null; vxlan6: string | null; ipip: string | null }

async function tunnelsOf(kv: KvStore, node: string): Promise<Tunnels> {
  const e = await kv.get(`/calico/resources/v3/projectcalico.org/nodes/${node}`);
  const spec = (JSON.parse(e!.value) as { spec: { ipv4VXLANTunnelAddr?: string; ipv6VXLANTunnelAddr?: string; bgp?: { ipv4IPIPTunnelAddr?: string } } }).spec;
  return { vxlan: spec.ipv4VXLANTunnelAddr ?? null, vxlan6: spec.ipv6VXLANTunnelAddr ?? null, ipip: spec.bgp?.ipv4IPIPTunnelAddr ?? null };
}

/** podway0's addresses in a node's namespace ("A/len", sorted). */
function hostPortAddrs(ns: string): string[] {
  const links = JSON.parse(run('ip', ['-j', '-n', ns, 'addr', 'show', 'dev', 'podway0'])) as { addr_info?: { local: string; prefixlen: number; scope: string }[] }[];
  return (links[0]?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`).sort();
}

/** The kernel's route for a pool in a node's namespace (`ip -j route show CIDR`). */
function poolRoute(ns: string, cidr: string): { dev?: string; prefsrc?: string } | undefined {
  const fam = cidr.includes(':') ? '-6' : '-4';
  return (JSON.parse(run('ip', ['-j', fam, '-n', ns, 'route', 'show', cidr])) as { dst: string; dev?: string; prefsrc?: string }[])[0];
}

function pingsFrom(ns: string, to: string): Promise<boolean> {
  return until(async () => (await pingIn(ns, to, 1, 0.2, ['-W', '2']).done).received === 1, 20_000, 200);
}

/** (a), (b), (c) for one address of node1 (`addr`) and the pod on node2 at `podIp`. */
async function checkAddress(addr: string, podIp: string, localPods: string[], port: number): Promise<void> {
  const n1 = lab!.node('node1');
  // (a) a pod on node2 pings node1's tunnel address: node1's kernel answers
  assert.ok(await pingsFrom(lab!.pod('web-2').ns, addr), `web-2 (node2) -> node1's tunnel address ${addr}: no reply`);
  const p = await pingIn(lab!.pod('web-2').ns, addr, 5, 0.05, ['-W', '3']).done;
  assert.is(p.loss, 0, `web-2 -> ${addr}: ${p.out}`);
  // (c) node1's own pods ping it
  for (const pod of localPods) {
    assert.ok(await pingsFrom(lab!.pod(pod).ns, addr), `${pod} (node1) -> its node's tunnel address ${addr}: no reply`);
  }
  // (b) node1 itself reaches the pod on node2, and the pod sees the tunnel address as the source
  assert.ok(await pingsFrom(n1.ns, podIp), `node1 -> web-2 (${podIp}): no reply`);
  const t = await tcpTransferFromNs({ name: 'node1', ns: n1.ns }, { name: 'web-2', ns: lab!.pod('web-2').ns, ip: podIp }, 200_000, port);
  assert.is(t.received.sha256, t.sent.sha256, 'the bytes arrived whole');
  const peer = t.received.peer.slice(0, t.received.peer.lastIndexOf(':')).replace(/^::ffff:/, '');
  assert.is(peer, addr, `web-2 saw node1's connection from ${t.received.peer}, not from its tunnel address`);
}

test.before(async () => {
  if (!isRoot()) throw new Error('tunnel-address tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true, podOffloads: false }));
  lab.build();
  store = await lab.openKvStore('etcd', 'podway-tunaddr-');
  await lab.useKvDatastore(store.kv, store.spec);
  for (const n of lab.nodes) await lab.startPodway(n.name, 20_000);
});

test.after(async () => {
  if (lab) {
    if (!ok) console.log(logTail(lab, 25));
    await teardown(lab);
  }
  await store?.close();
});

test('VXLAN: the IPv4 and IPv6 VTEP addresses are on podway0, the pools are routed from them, and they answer pods here and on the other node', async () => {
  const kv = store!.kv;
  const n1 = lab!.node('node1');
  const t = await tunnelsOf(kv, 'node1');
  assert.ok(t.vxlan && t.vxlan6, `node1's VXLAN tunnel addresses: ${JSON.stringify(t)}`);
  assert.is(t.ipip, null);
  const want = [`${t.vxlan}/32`, `${t.vxlan6}/128`].sort();
  assert.ok(await until(async () => JSON.stringify(hostPortAddrs(n1.ns)) === JSON.stringify(want), 20_000, 200), `podway0 has ${JSON.stringify(hostPortAddrs(n1.ns))}, not ${JSON.stringify(want)}`);
  assert.equal(poolRoute(n1.ns, '10.244.0.0/16'), { ...poolRoute(n1.ns, '10.244.0.0/16'), dev: 'podway0', prefsrc: t.vxlan! });
  assert.equal(poolRoute(n1.ns, 'fd00:10:244::/64'), { ...poolRoute(n1.ns, 'fd00:10:244::/64'), dev: 'podway0', prefsrc: t.vxlan6! });
  await checkAddress(t.vxlan!, lab!.pod('web-2').ip, ['web-1', 'tap-1'], 5301);
  await checkAddress(t.vxlan6!, lab!.pod('web-2').ip6!, ['web-1', 'tap-1'], 5302);
});

test('IPIP: the pools turn IPIP; the VXLAN addresses leave podway0, the IPIP address IPAM gives comes, and it answers as the VTEP did', async () => {
  const kv = store!.kv;
  const n1 = lab!.node('node1');
  await lab!.applyMode('ipip');
  let t: Tunnels = { vxlan: null, vxlan6: null, ipip: null };
  const settled = await until(async () => {
    t = await tunnelsOf(kv, 'node1');
    return t.ipip !== null && t.vxlan === null && t.vxlan6 === null;
  }, 30_000, 250);
  assert.ok(settled, `node1's tunnel addresses after the switch to IPIP: ${JSON.stringify(t)}`);
  const handle = await kv.get('/calico/ipam/v2/handle/ipip-tunnel-addr-node1');
  assert.ok(handle, 'IPAM holds it under handle ipip-tunnel-addr-node1');
  const want = [`${t.ipip}/32`];
  assert.ok(await until(async () => JSON.stringify(hostPortAddrs(n1.ns)) === JSON.stringify(want), 20_000, 200), `podway0 has ${JSON.stringify(hostPortAddrs(n1.ns))}, not ${JSON.stringify(want)}`);
  assert.ok(await until(async () => poolRoute(n1.ns, '10.244.0.0/16')?.prefsrc === t.ipip, 20_000, 200), `pool route: ${JSON.stringify(poolRoute(n1.ns, '10.244.0.0/16'))}`);
  // the IPv6 pool is unencapsulated now: no IPv6 tunnel address, the kernel picks the source
  assert.is(poolRoute(n1.ns, 'fd00:10:244::/64')?.prefsrc, undefined);
  await checkAddress(t.ipip!, lab!.pod('web-2').ip, ['web-1', 'tap-1'], 5303);
  // an ICMP error node1 routes back through IPIP comes from its IPIP address (tunl0's, on Calico):
  // web-2's TTL 2 reaches node1 at 1
  const ttl = await pingIn(lab!.pod('web-2').ns, lab!.pod('web-1').ip, 1, 0.2, ['-t', '2', '-W', '3']).done;
  assert.match(ttl.out, new RegExp(`From ${t.ipip!.replace(/\./g, '\\.')} .*Time to live exceeded`), ttl.out);
  ok = true;
});

test.run();
