/**
 * The node's own packets to pods, sized for the path (review Q, HIGH 1; root, network namespaces;
 * two podway nodes, dual stack, VXLAN then IPIP).
 *
 * Under podway the node routes every pool into podway0 (a TUN). Before, those routes had no MTU, so
 * the node sized its packets for podway0 (1500) and podway's answer to a too-big DF one (ICMP
 * fragmentation needed) came from the node's own address into podway0, which the kernel dropped as
 * a martian: `ping -M do -s 1472 <remote pod>` printed nothing and lost every packet. Now the pool
 * routes carry the path's MTU (the kernel refuses a bigger DF send at once, EMSGSIZE, as behind
 * Calico's vxlan.calico/tunl0; a mode switch and an underlay MTU change follow), and podway's errors into podway0 come from the packet's
 * destination, which the kernel takes and caches (a route without the MTU, a TAP pod with a smaller
 * one). The node's TTL 1 probe to a remote pod is answered by the other node.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { Lab } from '../../src/lab/lab';
import { guard, teardown, isRoot, until, nsExec, logTail } from './e2e-kit';

let lab: Lab | null = null;
let ok = false;

/** `args` in namespace `ns`, at most 20 s: exit status and stdout + stderr. */
function inNs(ns: string, args: string[]): { code: number | null; out: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** One DF echo of `size` payload bytes from the node (IPv6 when `to` is). */
function dfPing(ns: string, to: string, size: number, extra: string[] = []): { code: number | null; out: string } {
  return inNs(ns, ['ping', ...(to.includes(':') ? ['-6'] : []), '-n', '-c', '1', '-W', '3', '-M', 'do', '-s', String(size), ...extra, to]);
}

// A connected DF UDP socket sends `size` bytes; prints "sent" or "errno N", then the socket's path MTU.
const DF_UDP = `
import socket, sys
dst, size = sys.argv[1], int(sys.argv[2])
v6 = ':' in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6: s.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO
else: s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
s.connect((dst, 33434))
try:
    s.send(b'x' * size); print('sent')
except OSError as e:
    print('errno', e.errno)
print('mtu', s.getsockopt(socket.IPPROTO_IPV6, 24) if v6 else s.getsockopt(socket.IPPROTO_IP, 14))  # IPV6_MTU, IP_MTU
`;

function dfUdp(ns: string, to: string, size: number): string {
  return inNs(ns, ['python3', '-c', DF_UDP, to, String(size)]).out.trim();
}

/** The MTU on the node's route for `cidr` into podway0 (0: none). */
function routeMtu(ns: string, cidr: string): number {
  const rows = JSON.parse(nsExec(ns, ['ip', '-j', cidr.includes(':') ? '-6' : '-4', 'route', 'show', 'dev', 'podway0'])) as { dst: string; metrics?: { mtu?: number }[] }[];
  const r = rows.find((x) => x.dst === cidr);
  if (!r) return -1;
  return r.metrics?.find((m) => m.mtu !== undefined)?.mtu ?? 0;
}

/** Node 2's answer to a TTL 1 probe: the node's packets leave with node 1's tunnel address, so it
 * comes back through the tunnel from node 2's tunnel address (the lab gives node 2 10.244.0.64 for
 * VXLAN and for IPIP), as on Calico's nodes. */
const NODE2_TTL = /From 10\.244\.0\.64 icmp_seq=1 Time to live exceeded/;

const POOL = '10.244.0.0/16';
const POOL6 = 'fd00:10:244::/64';

test.before(async () => {
  if (!isRoot()) throw new Error('host MTU end-to-end tests need root (network namespaces)');
  lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'tap-1', type: 'tap' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
  ], { dualStack: true }));
  lab.build();
  await lab.startPodway('node1');
  await lab.startPodway('node2');
  const n1 = lab.node('node1').ns;
  const web2 = lab.pod('web-2');
  assert.ok(await until(() => inNs(n1, ['ping', '-n', '-c', '1', '-W', '2', web2.ip]).code === 0, 30_000, 200), `node1 reaches web-2: ${logTail(lab)}`);
  assert.ok(await until(() => inNs(n1, ['ping', '-6', '-n', '-c', '1', '-W', '2', web2.ip6!]).code === 0, 30_000, 200), 'node1 reaches web-2 over IPv6');
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('VXLAN: the pool routes into podway0 carry 1450 (IPv6 1430); a bigger DF ping or UDP send from the node fails at once with that MTU, one that fits is answered', async () => {
  const n1 = lab!.node('node1').ns;
  const web2 = lab!.pod('web-2');
  assert.ok(await until(() => routeMtu(n1, POOL) === 1450 && routeMtu(n1, POOL6) === 1430, 30_000, 200), `routes: ${nsExec(n1, ['ip', 'route'])}${nsExec(n1, ['ip', '-6', 'route'])}`);
  const big = dfPing(n1, web2.ip, 1472);
  assert.match(big.out, /message too long, mtu=1450/, big.out);
  assert.equal(dfUdp(n1, web2.ip, 1423), 'errno 90\nmtu 1450', 'DF UDP: EMSGSIZE, the socket\'s path MTU 1450');
  // (the lab's pods have MTU 1430 in dual-stack VXLAN: IPv6 VXLAN's overhead sets it)
  const fits = dfPing(n1, web2.ip, 1402);
  assert.is(fits.code, 0, fits.out);
  const big6 = dfPing(n1, web2.ip6!, 1383);
  assert.match(big6.out, /message too long, mtu: 1430/, big6.out);
  assert.equal(dfUdp(n1, web2.ip6!, 1383), 'errno 90\nmtu 1430', 'DF UDP over IPv6: EMSGSIZE, path MTU 1430');
  const fits6 = dfPing(n1, web2.ip6!, 1382);
  assert.is(fits6.code, 0, fits6.out);
});

test('VXLAN: a pool route without its MTU (an older podway, a hand): podway\'s fragmentation needed / Packet Too Big reaches the node, which caches the path MTU', async () => {
  const n1 = lab!.node('node1').ns;
  const web2 = lab!.pod('web-2');
  nsExec(n1, ['ip', 'route', 'replace', POOL, 'dev', 'podway0', 'scope', 'link']);
  nsExec(n1, ['ip', '-6', 'route', 'replace', POOL6, 'dev', 'podway0']);
  try {
    const big = dfPing(n1, web2.ip, 1472);
    assert.match(big.out, new RegExp(`From ${web2.ip.replace(/\./g, '\\.')} icmp_seq=1 Frag needed and DF set \\(mtu = 1450\\)`), big.out);
    assert.match(nsExec(n1, ['ip', 'route', 'get', web2.ip]), /cache expires \d+sec mtu 1450/);
    assert.equal(dfUdp(n1, web2.ip, 1423), 'errno 90\nmtu 1450', 'the next DF send knows it');
    const big6 = dfPing(n1, web2.ip6!, 1452);
    assert.match(big6.out, /Packet too big: mtu=1430/, big6.out);
    assert.match(nsExec(n1, ['ip', '-6', 'route', 'get', web2.ip6!]), /expires \d+sec mtu 1430/);
  } finally {
    // as podway wrote them (it does not look at the kernel's routes again until they change)
    nsExec(n1, ['ip', 'route', 'replace', POOL, 'dev', 'podway0', 'scope', 'link', 'mtu', '1450']);
    nsExec(n1, ['ip', '-6', 'route', 'replace', POOL6, 'dev', 'podway0', 'mtu', '1430']);
  }
});

test('a TAP pod of the node with a smaller MTU than its pool\'s route: fragmentation needed / Packet Too Big from the pod, cached by the node', async () => {
  const n1 = lab!.node('node1').ns;
  const tap = lab!.pod('tap-1');
  nsExec(tap.ns, ['ip', 'link', 'set', tap.podIf, 'mtu', '1400']);
  try {
    // podway reads its pods' MTUs every few seconds
    let last = '';
    const said = await until(() => /Frag needed and DF set \(mtu = 1400\)/.test((last = dfPing(n1, tap.ip, 1420).out)), 30_000, 500);
    assert.ok(said, last);
    assert.match(last, new RegExp(`From ${tap.ip.replace(/\./g, '\\.')} `), last);
    assert.match(nsExec(n1, ['ip', 'route', 'get', tap.ip]), /cache expires \d+sec mtu 1400/);
    const big6 = dfPing(n1, tap.ip6!, 1370);
    assert.match(big6.out, /Packet too big: mtu=1400/, big6.out);
    assert.match(nsExec(n1, ['ip', '-6', 'route', 'get', tap.ip6!]), /expires \d+sec mtu 1400/);
  } finally {
    nsExec(tap.ns, ['ip', 'link', 'set', tap.podIf, 'mtu', '1430']);
  }
});

test('VXLAN: the node\'s TTL 1 / hop limit 1 probe to a pod on node2 is answered by node2', () => {
  const n1 = lab!.node('node1').ns;
  const web2 = lab!.pod('web-2');
  const t = inNs(n1, ['ping', '-n', '-c', '1', '-W', '3', '-t', '1', web2.ip]);
  assert.match(t.out, NODE2_TTL, t.out);
  const t6 = inNs(n1, ['ping', '-6', '-n', '-c', '1', '-W', '3', '-t', '1', web2.ip6!]);
  assert.match(t6.out, /Time exceeded: Hop limit/, t6.out);
});

test('VXLAN: the underlay interface\'s MTU lowered to 1400 while podway runs: the routes follow (1350, IPv6 1330), and back at 1500 (1450, 1430)', async () => {
  const n1 = lab!.node('node1').ns;
  nsExec(n1, ['ip', 'link', 'set', 'eth0', 'mtu', '1400']);
  try {
    assert.ok(await until(() => routeMtu(n1, POOL) === 1350 && routeMtu(n1, POOL6) === 1330, 30_000, 200), `routes: ${nsExec(n1, ['ip', 'route'])}${nsExec(n1, ['ip', '-6', 'route'])}`);
    const big = dfPing(n1, lab!.pod('web-2').ip, 1323);
    assert.match(big.out, /message too long, mtu=1350/, big.out);
  } finally {
    nsExec(n1, ['ip', 'link', 'set', 'eth0', 'mtu', '1500']);
  }
  assert.ok(await until(() => routeMtu(n1, POOL) === 1450 && routeMtu(n1, POOL6) === 1430, 30_000, 200), `routes: ${nsExec(n1, ['ip', 'route'])}`);
});

test('IPIP: the route follows the mode switch (1480; the IPv6 pool, now unencapsulated, 1500); a bigger DF send fails with 1480, a 1480-byte one is answered; a route without it learns 1480; TTL 1 answered', async () => {
  const n1 = lab!.node('node1').ns;
  const web2 = lab!.pod('web-2');
  lab!.setMode('ipip');
  assert.ok(await until(() => routeMtu(n1, POOL) === 1480 && routeMtu(n1, POOL6) === 1500, 30_000, 200), `routes: ${nsExec(n1, ['ip', 'route'])}`);
  let fits = { code: null as number | null, out: '' };
  assert.ok(await until(() => (fits = dfPing(n1, web2.ip, 1452)).code === 0, 30_000, 500), `a 1480-byte DF echo over IPIP: ${fits.out}`);
  const big = dfPing(n1, web2.ip, 1453);
  assert.match(big.out, /message too long, mtu=1480/, big.out);
  assert.equal(dfUdp(n1, web2.ip, 1453), 'errno 90\nmtu 1480');
  nsExec(n1, ['ip', 'route', 'replace', POOL, 'dev', 'podway0', 'scope', 'link']);
  try {
    const learn = dfPing(n1, web2.ip, 1472);
    assert.match(learn.out, /Frag needed and DF set \(mtu = 1480\)/, learn.out);
    assert.match(nsExec(n1, ['ip', 'route', 'get', web2.ip]), /cache expires \d+sec mtu 1480/);
  } finally {
    nsExec(n1, ['ip', 'route', 'replace', POOL, 'dev', 'podway0', 'scope', 'link', 'mtu', '1480']);
  }
  const t = inNs(n1, ['ping', '-n', '-c', '1', '-W', '3', '-t', '1', web2.ip]);
  assert.match(t.out, NODE2_TTL, t.out);
  ok = true;
});

test.run();
