/**
 * IPv6 dual-stack end to end (root, network namespaces): two podway nodes, pods with an IPv6 /128
 * beside their IPv4 address and `default via fe80::ecee:eeff:feee:eeee`. Pods resolve the gateway
 * with NDP (a veth pod's answered by the node's kernel, a TAP pod's by podway), ping each other both ways over VXLAN-over-IPv6 and unencapsulated
 * IPv6, move 4 MB of TCP with the content checked, and a kernel TCP sender whose pod MTU is too
 * big for the IPv6 VXLAN path learns the path MTU from podway's ICMPv6 packet too big.
 *
 * The veth pods keep the kernel's defaults (TSO/GSO on): their IPv6 TCP super-frames are segmented
 * by podway (native/gso.c), and TCP towards the veth pods is coalesced again into GSO_TCPV6
 * super-frames (native/gro.c; on the underlay in direct mode too), which the TCP tests check in the
 * port counters. Pods with offloads off
 * are covered by test/e2e/ipv6-interop.test.ts and cluster-ipv6.test.ts.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, run } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, routes, tcpTransferTo, logTail, until } from './e2e-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }, { name: 'tap-1', type: 'tap' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }, { name: 'tun-2', type: 'tun' as const }] },
];

let lab: Lab | null = null;
let ok = false;

function ip6Of(pod: string): string {
  const ip = lab!.pod(pod).ip6;
  if (!ip) throw new Error(`${pod} has no IPv6 address`);
  return ip;
}

async function reachable(from: string, to: string, timeoutMs = 10_000): Promise<boolean> {
  return until(() => lab!.ping(from, ip6Of(to), 1).received === 1, timeoutMs, 100);
}

async function kind6(node: string, cidr: string): Promise<string | undefined> {
  return (await routes(lab!.node(node))).find((r) => r.cidr === cidr)?.kind;
}

test.before(async () => {
  if (!isRoot()) throw new Error('IPv6 end-to-end tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true }));
  lab.build();
  // one forwarding thread: counters are read by port name (no [wN] tags)
  await lab.startPodway('node1', undefined, ['--workers', '1']);
  await lab.startPodway('node2', undefined, ['--workers', '1']);
  const n2block6 = lab.node('node2').block6!;
  assert.ok(await until(async () => (await kind6('node1', n2block6)) === 'vxlan', 10_000), `node1 has no IPv6 VXLAN route to ${n2block6}`);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('podway routes lists the IPv6 table: local /128s, the own /122 blackholed, the remote /122 over VXLAN (MTU 1430)', async () => {
  const r = await routes(lab!.node('node1'));
  const by = new Map(r.map((x) => [x.cidr, x]));
  assert.is(by.get(`${ip6Of('web-1')}/128`)?.kind, 'local');
  assert.is(by.get(lab!.node('node1').block6!)?.kind, 'blackhole');
  const remote = by.get(lab!.node('node2').block6!) as unknown as { kind: string; via: string; mtu: number };
  assert.is(remote.kind, 'vxlan');
  assert.is(remote.via, lab!.node('node2').ip6);
  assert.is(remote.mtu, 1430);
});

test('podway endpoints lists both families of each pod', async () => {
  const eps = (await controlRequest(lab!.node('node1').control, { cmd: 'endpoints' })) as { interface: string; networks: string[] }[];
  const web1 = lab!.pod('web-1');
  const row = eps.find((e) => e.interface === web1.ifname);
  assert.equal(row?.networks, [`${web1.ip}/32`, `${web1.ip6}/128`]);
});

test('podway status shows the IPv6 side: the node\'s address and VTEP, its IPv6 routes, pod MTU 1430, the other node', () => {
  const n1 = lab!.node('node1');
  const out = execFileSync(process.execPath, [path.join(__dirname, '..', '..', '..', 'bin', 'podway.js'), 'status', '--control', n1.control], { encoding: 'utf8', timeout: 20_000 });
  const line = out.split('\n').find((l) => l.startsWith('ipv6: '));
  assert.ok(line, out);
  assert.match(line!, `ipv6: node ${n1.ip6}; vtep ${n1.vtep6} `);
  assert.match(line!, /; [1-9]\d* routes; mtu: pod 1430, vxlan 1430; known nodes: /);
  assert.match(line!, lab!.node('node2').ip6!);
});

test('VXLAN over IPv6: ping6 both ways between veth, tap and tun pods on two nodes, hop limit 62', async () => {
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1'], ['tap-1', 'web-2'], ['tun-2', 'tap-1'], ['web-1', 'tun-2']]) {
    assert.ok(await reachable(a, b), `${a} -> ${b} reachable over IPv6`);
    const p = lab!.ping(a, ip6Of(b), 5);
    assert.is(p.loss, 0, `${a} -> ${b}: loss`);
    assert.is(p.ttl, 62, `${a} -> ${b}: hop limit seen`);
  }
  // Same node, IPv6: one hop.
  assert.ok(await reachable('web-1', 'tap-1'));
  assert.is(lab!.ping('web-1', ip6Of('tap-1'), 3).ttl, 63);
});

test('the pod resolved its gateway through podway\'s NA: ee:ee:ee:ee:ee:ee, router', () => {
  const n = JSON.parse(run('ip', ['-j', '-n', lab!.pod('tap-1').ns, '-6', 'neigh', 'show', 'fe80::ecee:eeff:feee:eeee']));
  assert.ok(n.length === 1, 'one neighbour entry');
  assert.is(n[0].lladdr, 'ee:ee:ee:ee:ee:ee');
  assert.ok(n[0].router === null || n[0].router === true || String(JSON.stringify(n[0])).includes('router'), 'router flag');
});

interface PortRow { port: string; txGroFrames?: number; txGroSegments?: number; txGsoFrames?: number; txGsoSegments?: number; txGsoRejected?: number; rxGsoFrames?: number; rxGsoSegments?: number; rxGsoDropped?: number; rxGsoBad?: number; rxSuperFrames?: number }
/** Super-frames podway took from a pod: cut on receive (rxGsoFrames) or handed on whole to be cut
 * on send (rxSuperFrames, native/rxsuper.c); which one depends on the batch, both are segmentation. */
const podSuperFrames = (r: PortRow | undefined): number => (r?.rxGsoFrames ?? 0) + (r?.rxSuperFrames ?? 0);

async function portRows(node: string): Promise<PortRow[]> {
  return ((await controlRequest(lab!.node(node).control, { cmd: 'counters' })) as { ports: PortRow[] }).ports;
}
async function podRow(pod: string): Promise<PortRow | undefined> {
  return (await portRows(lab!.pod(pod).node)).find((r) => r.port === lab!.pod(pod).ifname);
}
async function underlayRow(node: string): Promise<PortRow | undefined> {
  return (await portRows(node)).find((r) => r.port.startsWith('underlay('));
}

test('TCP over IPv6 VXLAN: 4 MB with the content checked, both directions; the veth pod\'s IPv6 super-frames segmented, and coalesced again (GRO) towards the receiving veth pod', async () => {
  const before = podSuperFrames(await podRow('web-1'));
  const groBefore = (await podRow('web-2'))?.txGroFrames ?? 0;
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'tap-1']]) {
    const dst = lab!.pod(b);
    const t = await tcpTransferTo(lab!, a, { name: b, ns: dst.ns, ip: ip6Of(b) }, 4 << 20, 5301);
    assert.is(t.received.bytes, 4 << 20, `${a} -> ${b}: bytes`);
    assert.is(t.received.sha256, t.sent.sha256, `${a} -> ${b}: content`);
    assert.ok(t.received.peer.startsWith(ip6Of(a)), `${a} -> ${b}: seen from ${t.received.peer}`);
  }
  const row = await podRow('web-1');
  assert.ok(podSuperFrames(row) > before, `web-1 (offloads on) sent IPv6 TCP super-frames that podway segmented: ${JSON.stringify(row)}`);
  assert.is(row?.rxGsoDropped ?? 0, 0, 'none dropped');
  assert.is(row?.rxGsoBad ?? 0, 0, 'none malformed');
  // web-2 received the 4 MB (content checked above) partly as GSO_TCPV6 super-frames podway built
  const to = await podRow('web-2');
  console.log(`  web-2's veth: ${(to?.txGroFrames ?? 0) - groBefore} IPv6 TCP super-frames (${to?.txGroSegments ?? 0} segments in all)`);
  assert.ok((to?.txGroFrames ?? 0) > groBefore, `podway coalesced IPv6 TCP segments into super-frames towards web-2: ${JSON.stringify(to)}`);
  assert.is(to?.txGsoRejected ?? 0, 0, 'the kernel took every super-frame');
});

test('PMTU: a pod with MTU 1500 sending TCP over IPv6 VXLAN (path 1430) gets packet too big and completes', async () => {
  // Both pods think 1500 fits (so the receiver's MSS lets the sender fill 1500-byte packets).
  const sender = lab!.pod('web-1');
  const receiver = lab!.pod('web-2');
  for (const p of [sender, receiver]) run('ip', ['-n', p.ns, 'link', 'set', p.podIf, 'mtu', '1500']);
  const before = ((await controlRequest(lab!.node('node1').control, { cmd: 'counters' })) as { reasons: Record<string, number> }).reasons.frag_needed ?? 0;
  try {
    const t = await tcpTransferTo(lab!, 'web-1', { name: 'web-2', ns: receiver.ns, ip: ip6Of('web-2') }, 2 << 20, 5302);
    assert.is(t.received.sha256, t.sent.sha256, 'content');
    const after = ((await controlRequest(lab!.node('node1').control, { cmd: 'counters' })) as { reasons: Record<string, number> }).reasons.frag_needed ?? 0;
    assert.ok(after > before, `packet too big sent (frag_needed ${before} -> ${after})`);
    const cache = run('ip', ['-n', sender.ns, '-6', 'route', 'get', ip6Of('web-2')]);
    assert.match(cache, /mtu 1430/, `the sender's kernel learned the path MTU: ${cache.trim()}`);
  } finally {
    for (const p of [sender, receiver]) run('ip', ['-n', p.ns, 'link', 'set', p.podIf, 'mtu', '1430']);
  }
});

test('unencapsulated IPv6 (pool vxlanMode Never): NDP on the underlay, ping6 both ways, TCP', async () => {
  lab!.setMode('direct');
  const n2block6 = lab!.node('node2').block6!;
  assert.ok(await until(async () => (await kind6('node1', n2block6)) === 'direct', 10_000), 'node1 switched to direct');
  assert.ok(await until(async () => (await kind6('node2', lab!.node('node1').block6!)) === 'direct', 10_000), 'node2 switched to direct');
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1'], ['tap-1', 'tun-2']]) {
    assert.ok(await reachable(a, b), `${a} -> ${b} reachable`);
    const p = lab!.ping(a, ip6Of(b), 5);
    assert.is(p.loss, 0, `${a} -> ${b}: loss`);
    assert.is(p.ttl, 62, `${a} -> ${b}: hop limit`);
  }
  const dst = lab!.pod('web-2');
  const groBefore = (await podRow('web-2'))?.txGroFrames ?? 0;
  const gsoBefore = (await underlayRow('node1'))?.txGsoFrames ?? 0;
  const t = await tcpTransferTo(lab!, 'web-1', { name: 'web-2', ns: dst.ns, ip: ip6Of('web-2') }, 2 << 20, 5303);
  assert.is(t.received.sha256, t.sent.sha256, 'content');
  // direct IPv6 TCP leaves node1 as GSO_TCPV6 sends on the underlay and reaches web-2 as GRO super-frames
  const ul = await underlayRow('node1');
  const to = await podRow('web-2');
  console.log(`  direct: node1 underlay ${(ul?.txGsoFrames ?? 0) - gsoBefore} GSO sends, web-2's veth ${(to?.txGroFrames ?? 0) - groBefore} super-frames`);
  assert.ok((ul?.txGsoFrames ?? 0) > gsoBefore, `node1 sent IPv6 TCP runs as GSO on the underlay: ${JSON.stringify(ul)}`);
  assert.is(ul?.txGsoRejected ?? 0, 0, 'the kernel took every GSO send');
  assert.ok((to?.txGroFrames ?? 0) > groBefore, `super-frames towards web-2: ${JSON.stringify(to)}`);
  ok = true;
});

test.run();
