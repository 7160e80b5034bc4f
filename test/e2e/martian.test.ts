/**
 * Hostile veth pods and the node's own kernel (review C, H1/H2/M1), below the loopback tests:
 * the kernel receives every frame a veth pod sends, not only podway. The pod guard (table inet
 * podway, nft-nat.ts guardTableProgram) drops, before the kernel takes them: VXLAN and IPIP from a
 * pod (a forged outer source of another node would otherwise reach podway's tunnel sockets and be
 * delivered to another pod), and any source that is not the pod's own (a forged source reached
 * node services). Both are shown delivered with the guard table removed, then dropped and counted
 * with it; honest pod -> node traffic passes. With --endpoint-to-host drop a pod's new
 * connections to the node are dropped and counted, while the node's own connections to the pod
 * still get their replies. The guard's sets after start: a pod whose WorkloadEndpoint comes after
 * podway started is guarded, a deleted one's (interface, address) elements go, and a pod made
 * again under the same interface name with another address has that address only.
 *
 * A pod must not reach services the node binds to loopback (root, network namespaces). The pod's
 * own stack keeps 127.0.0.1 to itself, but a pod can write any frame on its interface: a UDP
 * packet from its address to 127.0.0.1, sent to the gateway MAC with AF_PACKET. Handed to the
 * node's routing (tx4, a raw socket), the node's kernel would deliver it to a socket bound to
 * 127.0.0.1 there. podway drops it (counted martian_dst) and answers ICMP host unreachable; a
 * receiver bound to the node's 127.0.0.1 sees nothing. The same for IPv6 and ::1 (tx6).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, routes, logTail, until } from './e2e-kit';
import { parseIpv6Bytes } from '../../src/packet';
import { deriveVtepMac } from '../../src/control/mac';
import { Bg, PY_RAW, PY_START_MS, PY_UDP_RECV, pyJson, py, eth, ipBytes } from './tools';
import { run } from '../../src/lab/lab';
import { Netns, waitQdiscActive } from '../helpers/netns';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { writeFileSync, renameSync } from 'node:fs';
import { NFT_COUNTERS_MAX_AGE_MS } from '../../src/observe/nft-cache';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

const SPEC = [
  // web-3: no WorkloadEndpoint when podway starts (added, deleted and made again by the guard's update test)
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }, { name: 'web-2', type: 'veth' as const }, { name: 'tap-1', type: 'tap' as const }, { name: 'tun-1', type: 'tun' as const }, { name: 'web-3', type: 'veth' as const }] },
  // never started: a known node (its address is in the datastore) whose address a pod forges
  { name: 'node2', subnet: 'a' as const, pods: [] },
];
const PORT = 47_123;
/** Another address of node1 (on its lo, as NodeLocal DNSCache's 169.254.20.10 on a dummy): a pod's
 * packets for it reach the node through podway's raw sockets (tx4, tx6), looped back on lo. */
const OTHER4 = '169.254.20.10';
const OTHER6 = 'fd00:20::10';
/** Addresses added to node1's lo after podway started: learned from the kernel's local table,
 * read again when `ip monitor` tells of the change (local-watch.ts). */
const LATE4 = '169.254.20.11';
const LATE6 = 'fd00:20::11';

let lab: Lab | null = null;
let ok = false;

async function counters(): Promise<Record<string, number>> {
  return ((await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> }).reasons;
}

function csum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** An IPv4 UDP packet (UDP checksum 0: none) with `payload`, TTL 64. */
function udp4(src: string, dst: string, sport: number, dport: number, payload: Buffer): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(28 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  ipBytes(src).copy(ip, 12);
  ipBytes(dst).copy(ip, 16);
  ip.writeUInt16BE(csum(ip), 10);
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([ip, u, payload]);
}

/** An IPv6 UDP packet (checksum computed: IPv6 requires it), hop limit 64. */
function udp6(src: string, dst: string, sport: number, dport: number, payload: Buffer): Buffer {
  const len = 8 + payload.length;
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(len, 4);
  ip[6] = 17;
  ip[7] = 64;
  Buffer.from(parseIpv6Bytes(src)).copy(ip, 8);
  Buffer.from(parseIpv6Bytes(dst)).copy(ip, 24);
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(len, 4);
  const pseudo = Buffer.alloc(40);
  ip.copy(pseudo, 0, 8, 40);
  pseudo.writeUInt32BE(len, 32);
  pseudo[39] = 17;
  const sum = csum(Buffer.concat([pseudo, u, payload, Buffer.alloc(payload.length & 1)]));
  u.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
  return Buffer.concat([ip, u, payload]);
}

/** A UDP receiver on [::1]: prints 'listening', then the sizes of what came within its time. */
const PY_UDP6_RECV = `
import socket, sys, json
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('::1', int(sys.argv[1])))
print('listening', flush=True)
s.settimeout(float(sys.argv[2])); got = []
try:
    d, a = s.recvfrom(65535); got.append(len(d))
except socket.timeout: pass
print(json.dumps({'sizes': got}), flush=True)
`;

test.before(async () => {
  if (!isRoot()) throw new Error('martian destination end-to-end tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true }));
  lab.build();
  const ns = lab.node('node1').ns;
  run('ip', ['-n', ns, 'addr', 'add', `${OTHER4}/32`, 'dev', 'lo']);
  run('ip', ['-n', ns, '-6', 'addr', 'add', `${OTHER6}/128`, 'dev', 'lo', 'nodad']);
  writeEndpoints(['web-1', 'web-2', 'tap-1', 'tun-1']);
});

/** The lab's resource file with only these pods' WorkloadEndpoints (written atomically, as
 * Lab.setMode does: podway's watcher never reads half a file). */
function writeEndpoints(pods: string[]): void {
  const docs = lab!.resources(lab!.mode).split('\n---\n').filter((d) => !/^kind: WorkloadEndpoint$/m.test(d) || pods.some((p) => d.includes(`\n  pod: ${p}\n`)));
  writeFileSync(lab!.file + '.tmp', docs.join('\n---\n') + (docs[docs.length - 1].endsWith('\n') ? '' : '\n'));
  renameSync(lab!.file + '.tmp', lab!.file);
}

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('a pod\'s frame for 127.0.0.1 does not reach a UDP socket bound to the node\'s loopback: martian_dst', async () => {
  const n1 = lab!.node('node1');
  const pod = lab!.pod('web-1');
  await lab!.startPodway('node1');
  assert.ok(await until(async () => (await routes(n1)).some((r) => r.cidr === `${pod.ip}/32`), 10_000), 'web-1 routed');
  // the path's precondition, not the subject: a first echo lost while the freshly started node
  // settles (seen once at load 15 in CI) is retried, as the other e2e tests do
  assert.ok(await until(() => lab!.ping('web-1', n1.ip, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'the pod reaches its node (the path works)');
  // a receiver on the node's loopback: one datagram would end it early; 3 s at most
  const [c, a] = py(n1.ns, PY_UDP_RECV, ['127.0.0.1', PORT, 1, 3]);
  const recv = new Bg(c, a);
  await recv.waitFor('listening', PY_START_MS);
  const c0 = await counters();
  const frames = [1, 2, 3].map((k) => eth('ee:ee:ee:ee:ee:ee', pod.mac!, 0x0800, udp4(pod.ip, '127.0.0.1', 40_000 + k, PORT, Buffer.alloc(64, k))).toString('hex'));
  const sent = await pyJson<{ sent: number }>(pod.ns, PY_RAW, [JSON.stringify({ ifname: pod.podIf, frames })], 10_000);
  assert.is(sent.sent, 3);
  await until(async () => ((await counters()).martian_dst ?? 0) - (c0.martian_dst ?? 0) >= 3, 5000);
  const c1 = await counters();
  assert.is((c1.martian_dst ?? 0) - (c0.martian_dst ?? 0), 3, `the three counted martian_dst: ${JSON.stringify(c1)}`);
  assert.is((c1.egress ?? 0) - (c0.egress ?? 0), 0, 'none handed to the node\'s routing');
  await recv.finish(10_000);
  const r = JSON.parse(recv.stdout.trim().split('\n').pop()!) as { received: number[]; bad: number; sizes: number[] };
  assert.equal(r.sizes, [], 'nothing reached the node\'s loopback socket');
});

test('a pod\'s frame for ::1 does not reach a UDP socket bound to the node\'s [::1]: martian_dst', async () => {
  const n1 = lab!.node('node1');
  const pod = lab!.pod('web-1');
  assert.ok(pod.ip6, 'the pod has an IPv6 address');
  const [c, a] = py(n1.ns, PY_UDP6_RECV, [PORT, 3]);
  const recv = new Bg(c, a);
  await recv.waitFor('listening', PY_START_MS);
  const c0 = await counters();
  const frames = [1, 2, 3].map((k) => eth('ee:ee:ee:ee:ee:ee', pod.mac!, 0x86dd, udp6(pod.ip6!, '::1', 40_000 + k, PORT, Buffer.alloc(64, k))).toString('hex'));
  const sent = await pyJson<{ sent: number }>(pod.ns, PY_RAW, [JSON.stringify({ ifname: pod.podIf, frames })], 10_000);
  assert.is(sent.sent, 3);
  await until(async () => ((await counters()).martian_dst ?? 0) - (c0.martian_dst ?? 0) >= 3, 5000);
  const c1 = await counters();
  assert.is((c1.martian_dst ?? 0) - (c0.martian_dst ?? 0), 3, `the three counted martian_dst: ${JSON.stringify(c1)}`);
  assert.is((c1.egress ?? 0) - (c0.egress ?? 0), 0, 'none handed to the node\'s routing');
  await recv.finish(10_000);
  const r = JSON.parse(recv.stdout.trim().split('\n').pop()!) as { sizes: number[] };
  assert.equal(r.sizes, [], 'nothing reached the node\'s [::1] socket');
});

/** A UDP receiver on every IPv4 and IPv6 address of its namespace: prints 'listening', then the
 * first payload byte (the tag) of each datagram that came (at most 50), once every tag of `stop`
 * came (plus 0.3 s for stragglers) or at the latest after its time. A negative check's stop tag is
 * a marker sent from an honest source after the forged datagrams: when it is in, whatever forged
 * would have arrived has (no full window waited out). */
const PY_UDP_TAGS = `
import socket, sys, json, time, select
port, tmo, stop = int(sys.argv[1]), float(sys.argv[2]), set(json.loads(sys.argv[3]))
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s4.bind(('0.0.0.0', port))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); s6.bind(('::', port))
print('listening', flush=True)
end = time.time() + tmo; tags = []; stopped = False
while time.time() < end and len(tags) < 50:
    r, _, _ = select.select([s4, s6], [], [], max(0.01, end - time.time()))
    for x in r:
        d, a = x.recvfrom(65535); tags.append(d[0] if d else -1)
    if stop and not stopped and stop.issubset(tags):
        stopped = True; end = min(end, time.time() + 0.3)
print(json.dumps({'tags': tags}), flush=True)
`;

/** The marker tag (stop tag of negative checks). */
const MARKER = 250;

/** Start a tag receiver in `ns` on `port` until the `stop` tags came or `secs` passed; finish()
 * gives the tags it got (the marker left out). */
async function tagReceiver(ns: string, port: number, stop: number[], secs = 15): Promise<{ finish(): Promise<number[]> }> {
  const [c, a] = py(ns, PY_UDP_TAGS, [port, secs, JSON.stringify(stop)]);
  const bg = new Bg(c, a);
  await bg.waitFor('listening', PY_START_MS);
  return {
    async finish() {
      await bg.finish((secs + 10) * 1000);
      const tags = (JSON.parse(bg.stdout.trim().split('\n').pop()!) as { tags: number[] }).tags;
      if (stop.includes(MARKER)) assert.ok(tags.includes(MARKER), `the marker from an honest source arrived within ${secs} s: ${JSON.stringify(tags)}`);
      return tags.filter((t) => t !== MARKER);
    },
  };
}

/** The IPv4 header of `payload` (protocol `proto`, checksum set, TTL 64). */
function ip4(src: string, dst: string, proto: number, payload: Buffer): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + payload.length, 2);
  ip[8] = 64;
  ip[9] = proto;
  ipBytes(src).copy(ip, 12);
  ipBytes(dst).copy(ip, 16);
  ip.writeUInt16BE(csum(ip), 10);
  return Buffer.concat([ip, payload]);
}

/** VXLAN (flags I, Calico's VNI 4096) carrying `inner` behind an Ethernet header. */
/** VXLAN (VNI 4096) around `inner`, its Ethernet from node2's VTEP MAC to node1's, as node2
 * writes it (a forger knows both: Felix derives them from the node names); podway drops another
 * inner destination (vxlan_inner_mac). */
function vxlanPayload(inner: Buffer, type: number): Buffer {
  const h = Buffer.from([0x08, 0, 0, 0, 0, 0x10, 0x00, 0]);
  const ver = type === 0x86dd ? 6 : 4;
  return Buffer.concat([h, eth(deriveVtepMac('node1', ver), deriveVtepMac('node2', ver), type, inner)]);
}

interface GuardCounters { podSpoofed?: number; podTunnel?: number; podToHost?: number }
/** The guard's counters as a baseline: read past the counters' cache age (NFT_COUNTERS_MAX_AGE_MS),
 * so a new nft run with every earlier test's packets in it. */
async function guardBaseline(): Promise<GuardCounters> {
  await new Promise((r) => setTimeout(r, NFT_COUNTERS_MAX_AGE_MS + 100));
  return guardCounters();
}
async function guardCounters(): Promise<GuardCounters> {
  return ((await controlRequest(lab!.node('node1').control, { cmd: 'counters' }, 5000)) as { guard?: GuardCounters | null }).guard ?? {};
}
const delta = (a: GuardCounters, b: GuardCounters, k: keyof GuardCounters) => (b[k] ?? 0) - (a[k] ?? 0);

/** Send frames from a pod's interface (AF_PACKET in its namespace). */
async function sendFrames(pod: string, frames: Buffer[]): Promise<void> {
  const p = lab!.pod(pod);
  const r = await pyJson<{ sent: number }>(p.ns, PY_RAW, [JSON.stringify({ ifname: p.podIf, frames: frames.map((f) => f.toString('hex')) })], 10_000);
  assert.is(r.sent, frames.length);
}

/** Send frames from several pods' interfaces, in order, from one python (a python start took 2-3 s
 * at load 15): it enters each pod's namespace (setns) for its AF_PACKET socket. */
const PY_RAW_PODS = `
import socket, sys, json, ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
sent = 0
for a in json.loads(sys.argv[1]):
    fd = os.open('/run/netns/' + a['ns'], os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0: raise OSError(ctypes.get_errno(), 'setns ' + a['ns'])
    os.close(fd)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((a['ifname'], 0))
    for h in a['frames']:
        s.send(bytes.fromhex(h)); sent += 1
    s.close()
print(json.dumps({'sent': sent}))
`;
async function sendFromPods(batches: [string, Buffer[]][]): Promise<void> {
  const arg = batches.map(([name, frames]) => ({ ns: lab!.pod(name).ns, ifname: lab!.pod(name).podIf, frames: frames.map((f) => f.toString('hex')) }));
  const r = await pyJson<{ sent: number }>(arg[0].ns, PY_RAW_PODS, [JSON.stringify(arg)], 10_000);
  assert.is(r.sent, batches.reduce((n, [, f]) => n + f.length, 0));
}

/** The guard table's text, and the table removed / put back (to show what it stops). */
const nftIn = (args: string[]) => run('ip', ['netns', 'exec', lab!.node('node1').ns, 'nft', ...args]);

test('pod guard: a veth pod\'s VXLAN and IPIP with another node\'s address forged as the outer source are dropped before the node\'s kernel (pod_tunnel): the inner packets never reach another pod', async () => {
  const n1 = lab!.node('node1');
  const n2 = lab!.node('node2');
  const web1 = lab!.pod('web-1');
  const web2 = lab!.pod('web-2');
  assert.ok(n1.ip6 && n2.ip6 && web2.ip6, 'dual stack lab');
  const table = nftIn(['list', 'table', 'inet', 'podway']);
  assert.match(table, `"${web1.ifname}" . ${web1.ip}`, `web-1's veth and address in pod_addrs4: ${table}`);
  assert.ok(await until(() => lab!.ping('web-1', web2.ip, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'web-1 reaches web-2 (the path works)');
  const PORT2 = 47_200;
  const inner4 = (tag: number) => udp4('1.2.3.4', web2.ip, 3333, PORT2, Buffer.alloc(32, tag));
  const frames = (base: number) => [
    // VXLAN from "node2" to node1's VXLAN socket, inner 1.2.3.4 -> web-2
    eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x0800, udp4(n2.ip, n1.ip, 40_001, 4789, vxlanPayload(inner4(base + 1), 0x0800))),
    // IPIP from "node2" (proto 4: the IPIP raw socket)
    eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x0800, ip4(n2.ip, n1.ip, 4, inner4(base + 2))),
    // VXLAN over IPv6 from "node2", inner IPv6 -> web-2
    eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x86dd, udp6(n2.ip6!, n1.ip6!, 40_003, 4789, vxlanPayload(udp6('fd00:10:244::42', web2.ip6!, 3333, PORT2, Buffer.alloc(32, base + 3)), 0x86dd))),
  ];
  // Without the guard: the attack works (what the table stops). The table goes back whole after.
  // The lab's pools are VXLAN: IPIP is then refused by podway itself (tunnel_mode_unused, as a
  // Calico node without tunl0), so only the two VXLAN forgeries get through.
  const saved = nftIn(['list', 'table', 'inet', 'podway']);
  nftIn(['delete', 'table', 'inet', 'podway']);
  let open: number[];
  const r0 = await counters();
  try {
    const rx = await tagReceiver(web2.ns, PORT2, [11, 13]);
    await sendFrames('web-1', frames(10));
    open = await rx.finish();
  } finally {
    execFileSync('ip', ['netns', 'exec', n1.ns, 'nft', '-f', '-'], { input: saved, stdio: ['pipe', 'ignore', 'pipe'], timeout: 20_000 });
  }
  assert.equal([...open].sort((a, b) => a - b), [11, 13], `without the guard both forged VXLAN tunnels (IPv4, IPv6) reached web-2 (the attack): ${JSON.stringify(open)}`);
  assert.ok(await until(async () => ((await counters()).tunnel_mode_unused ?? 0) - (r0.tunnel_mode_unused ?? 0) >= 1, 5000), 'the forged IPIP counted tunnel_mode_unused by podway');
  const g0 = await guardBaseline();
  const rx = await tagReceiver(web2.ns, PORT2, [MARKER]);
  // the marker: web-1's own datagram to web-2, after the forged tunnels
  await sendFrames('web-1', [...frames(20), eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x0800, udp4(web1.ip, web2.ip, 40_999, PORT2, Buffer.alloc(32, MARKER)))]);
  const got = await rx.finish();
  assert.equal(got, [], 'with the guard none of the inner packets reached web-2');
  await until(async () => delta(g0, await guardCounters(), 'podTunnel') >= 3, 5000);
  assert.is(delta(g0, await guardCounters(), 'podTunnel'), 3, 'the three tunnel packets counted pod_tunnel');
  assert.match(cli('counters'), /pod guard \(table inet podway\): \d+ frames from veth pods with a source not their own dropped before the node's kernel, [1-9]\d* tunnel packets/);
});

test('pod guard: forged sources to a node listener are dropped before the node\'s kernel (IPv4 and IPv6: a veth pod\'s by the guard, pod_spoofed; a TAP or TUN pod\'s by podway\'s source check, source_check); the pods\' own addresses reach it once each (a veth pod\'s for the node\'s other addresses, also ones added after the start, through the kernel alone; TAP and TUN pods through podway0, and through podway\'s raw sockets and lo for the node\'s other addresses)', async () => {
  const n1 = lab!.node('node1');
  // addresses added to node1 now: podway learns them from the kernel's local table, read again
  // on ip monitor's notice (which status says it runs)
  const st0 = (await controlRequest(n1.control, { cmd: 'status' }, 5000)) as { localLearned?: string | null };
  assert.match(st0.localLearned ?? '', /^ip monitor \(change notices; read again every 60 s\)$/, 'node1 learns its addresses from ip monitor');
  const addedAt = Date.now();
  run('ip', ['-n', n1.ns, 'addr', 'add', `${LATE4}/32`, 'dev', 'lo']);
  run('ip', ['-n', n1.ns, '-6', 'addr', 'add', `${LATE6}/128`, 'dev', 'lo', 'nodad']);
  const n2 = lab!.node('node2');
  const web1 = lab!.pod('web-1');
  const web2 = lab!.pod('web-2');
  const tap = lab!.pod('tap-1');
  const tun = lab!.pod('tun-1');
  const PORT3 = 47_300;
  const to4 = (src: string, tag: number) => eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x0800, udp4(src, n1.ip, 40_000 + tag, PORT3, Buffer.alloc(16, tag)));
  const to6 = (src: string, tag: number) => eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x86dd, udp6(src, n1.ip6!, 40_000 + tag, PORT3, Buffer.alloc(16, tag)));
  const forged = [to4(n2.ip, 1), to4(web2.ip, 2), to4('10.99.0.254', 3), to6(n2.ip6!, 4), to6(web2.ip6!, 5)];
  // TAP/TUN: to node1's address, its IPv6 address and its other addresses
  const forgedBy = (name: string, base: number) => [podUdp(name, n2.ip, n1.ip, PORT3, base + 1), podUdp(name, web2.ip, OTHER4, PORT3, base + 2), podUdp(name, web2.ip6!, n1.ip6!, PORT3, base + 3), podUdp(name, n2.ip6!, OTHER6, PORT3, base + 4)];
  const c0 = await counters();
  const g0 = await guardBaseline();
  // web-1's own datagrams to node1's other addresses (102-105): the kernel takes them from the
  // veth; podway's copy through lo was a second delivery
  const toOther = ([[OTHER4, 102], [OTHER6, 103], [LATE4, 104], [LATE6, 105]] as const).map(([d, tag]) => (d.includes(':')
    ? eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x86dd, udp6(web1.ip6!, d, 40_000 + tag, PORT3, Buffer.alloc(16, tag)))
    : eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x0800, udp4(web1.ip, d, 40_000 + tag, PORT3, Buffer.alloc(16, tag)))));
  const honest = [100, 101, 102, 103, 104, 105, 11, 12, 13, 14, 15, 16, 17, 18];
  // bounded (a missed notice: the safety re-read every 60 s would still come, later than this)
  const learned = await until(async () => {
    const st = (await controlRequest(n1.control, { cmd: 'status' }, 5000)) as { localAddresses?: { v4: string[]; v6: string[] } };
    return (st.localAddresses?.v4 ?? []).includes(LATE4) && (st.localAddresses?.v6 ?? []).includes(LATE6);
  }, 20_000, 250);
  assert.ok(learned, `node1's addresses added after the start are learned within 20 s: ${cli('status')}`);
  console.log(`  node1's addresses added to lo: in podway status after ${Date.now() - addedAt} ms (status polled every 250 ms)`);
  const rx = await tagReceiver(n1.ns, PORT3, honest);
  await sendFromPods([
    ['web-1', [...forged, to4(web1.ip, 100), to6(web1.ip6!, 101), ...toOther]],
    [tap.name, [...forgedBy(tap.name, 30), ...toNode(tap.name, PORT3, 10)]],
    [tun.name, [...forgedBy(tun.name, 40), ...toNode(tun.name, PORT3, 14)]],
  ]);
  const got = await rx.finish();
  assert.equal([...got].sort((a, b) => a - b), [...honest].sort((a, b) => a - b), `only the pods' own sources reached node1's listener, each once: ${JSON.stringify(got)}`);
  await until(async () => delta(g0, await guardCounters(), 'podSpoofed') >= 5, 5000);
  assert.is(delta(g0, await guardCounters(), 'podSpoofed'), 5, 'web-1\'s five forged sources counted pod_spoofed (the TAP/TUN pods\' never reached the kernel)');
  // at least: the TUN pod's own kernel writes link-local-sourced MLD reports and router
  // solicitations on its device for a while after podway opened it, counted source_check too
  assert.ok(await until(async () => ((await counters()).source_check ?? 0) - (c0.source_check ?? 0) >= 8, 5000), 'the TAP and TUN pods\' eight forged sources counted source_check by podway');
  // NDP and pod -> node over both families still work (link-local sources to link-local/multicast)
  run('ip', ['-n', web1.ns, '-6', 'neigh', 'flush', 'dev', web1.podIf]);
  assert.ok(await until(() => lab!.ping('web-1', n1.ip6!, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'web-1 -> node1 over IPv6 after its neighbours were flushed');
  assert.is(lab!.ping('web-1', n1.ip, 2, 56, ['-W', '3']).received, 2, 'web-1 -> node1 over IPv4');
});

/** A datagram from pod `name` (as it would write it on its TAP or TUN device: Ethernet to the
 * gateway's MAC, or the bare IP packet) from `src` to `dst`:`port`, 16 bytes of `tag`. */
function podUdp(name: string, src: string, dst: string, port: number, tag: number): Buffer {
  const p = lab!.pod(name);
  const ip = dst.includes(':') ? udp6(src, dst, 40_000 + tag, port, Buffer.alloc(16, tag)) : udp4(src, dst, 40_000 + tag, port, Buffer.alloc(16, tag));
  return p.type === 'tun' ? ip : eth('ee:ee:ee:ee:ee:ee', p.mac!, dst.includes(':') ? 0x86dd : 0x0800, ip);
}

/** Datagrams from pod `name`'s own addresses to node1's address, its IPv6 address and its other
 * addresses (OTHER4, OTHER6): tags base + 1 .. base + 4. */
function toNode(name: string, port: number, base: number): Buffer[] {
  const p = lab!.pod(name);
  const n1 = lab!.node('node1');
  return [[p.ip, n1.ip], [p.ip6!, n1.ip6!], [p.ip, OTHER4], [p.ip6!, OTHER6]].map(([s, d], k) => podUdp(name, s, d, port, base + k + 1));
}

test('pod guard after start: a pod added is guarded (its forged sources dropped, pod_spoofed), a deleted pod\'s elements go, a pod made again under the same interface name with another address gets that address only', async () => {
  const n1 = lab!.node('node1');
  const web1 = lab!.pod('web-1');
  const web3 = lab!.pod('web-3');
  const PORT5 = 47_500;
  const table = () => nftIn(['list', 'table', 'inet', 'podway']);
  // web-3's (interface, address) elements in pod_addrs4/6, and whether its interface is in pods
  const pairs = (t: string) => [...t.matchAll(new RegExp(`"${web3.ifname}" \\. ([0-9a-f.:]+)`, 'g'))].map((m) => m[1]).sort();
  const inPods = (t: string) => new RegExp(`set pods \\{[^}]*"${web3.ifname}"`).test(t);
  const settled = async (want: string[]): Promise<string> => {
    let t = '';
    const done = await until(() => {
      t = table();
      return JSON.stringify(pairs(t)) === JSON.stringify([...want].sort()) && inPods(t) === want.length > 0;
    }, 20_000, 100);
    assert.ok(done, `web-3's elements should be ${JSON.stringify(want)}: ${t}`);
    return t;
  };
  const to4 = (src: string, tag: number) => eth('ee:ee:ee:ee:ee:ee', web3.mac!, 0x0800, udp4(src, n1.ip, 40_000 + tag, PORT5, Buffer.alloc(16, tag)));
  const to6 = (src: string, tag: number) => eth('ee:ee:ee:ee:ee:ee', web3.mac!, 0x86dd, udp6(src, n1.ip6!, 40_000 + tag, PORT5, Buffer.alloc(16, tag)));
  // not an endpoint when podway started: nothing of it in the table
  await settled([]);
  // added after start: guarded
  writeEndpoints(['web-1', 'web-2', 'tap-1', 'tun-1', 'web-3']);
  await settled([web3.ip, web3.ip6!]);
  let g0 = await guardCounters();
  let rx = await tagReceiver(n1.ns, PORT5, [100, 101]);
  await sendFrames('web-3', [to4(web1.ip, 1), to6(web1.ip6!, 2), to4(web3.ip, 100), to6(web3.ip6!, 101)]);
  assert.equal([...await rx.finish()].sort((a, b) => a - b), [100, 101], 'only web-3\'s own sources reached node1\'s listener');
  await until(async () => delta(g0, await guardCounters(), 'podSpoofed') >= 2, 5000);
  assert.is(delta(g0, await guardCounters(), 'podSpoofed'), 2, 'web-1\'s addresses forged by web-3 counted pod_spoofed');
  // deleted: its elements go, the other pods' stay
  writeEndpoints(['web-1', 'web-2', 'tap-1', 'tun-1']);
  const t = await settled([]);
  assert.match(t, `"${web1.ifname}" . ${web1.ip}`, 'web-1 still guarded');
  // made again under the same interface name, with another IPv4 address and no IPv6 one
  const old = { ip: web3.ip, ip6: web3.ip6! };
  run('ip', ['-n', n1.ns, 'link', 'del', web3.ifname]);
  run('ip', ['link', 'add', web3.ifname, 'netns', n1.ns, 'type', 'veth', 'peer', 'name', web3.podIf, 'netns', web3.ns]);
  run('ip', ['-n', n1.ns, 'link', 'set', web3.ifname, 'address', 'ee:ee:ee:ee:ee:ee']);
  run('ip', ['-n', n1.ns, 'link', 'set', web3.ifname, 'up']);
  web3.ip = web3.ip.replace(/\.(\d+)$/, (_, d: string) => `.${Number(d) + 16}`);
  web3.ip6 = null;
  run('ip', ['-n', web3.ns, 'addr', 'add', `${web3.ip}/32`, 'dev', web3.podIf]);
  run('ip', ['-n', web3.ns, 'link', 'set', web3.podIf, 'up']);
  // Both ends able to transmit before web-3's frames below are sent: a fresh link drops them
  // silently until the kernel's linkwatch work replaces its noop qdisc, late on a loaded host.
  waitQdiscActive(new Netns(web3.ns), web3.podIf);
  waitQdiscActive(new Netns(n1.ns), web3.ifname);
  run('ip', ['-n', web3.ns, 'route', 'add', '169.254.1.1', 'dev', web3.podIf, 'scope', 'link']);
  run('ip', ['-n', web3.ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', web3.podIf]);
  web3.mac = JSON.parse(run('ip', ['-j', '-n', web3.ns, 'link', 'show', web3.podIf]))[0].address;
  writeEndpoints(['web-1', 'web-2', 'tap-1', 'tun-1', 'web-3']);
  await settled([web3.ip]);
  g0 = await guardCounters();
  rx = await tagReceiver(n1.ns, PORT5, [102]);
  await sendFrames('web-3', [to4(old.ip, 3), to6(old.ip6, 4), to4(web3.ip, 102)]);
  assert.equal(await rx.finish(), [102], 'the new address reaches node1\'s listener, the old ones do not');
  await until(async () => delta(g0, await guardCounters(), 'podSpoofed') >= 2, 5000);
  assert.is(delta(g0, await guardCounters(), 'podSpoofed'), 2, 'its old IPv4 and IPv6 addresses counted pod_spoofed');
  assert.ok(await until(() => lab!.ping('web-3', n1.ip, 1, 56, ['-W', '2']).received === 1, 20_000, 200), 'web-3 (made again) reaches node1');
});

test('--endpoint-to-host drop: a pod\'s new connections to the node are dropped (pod_to_host); the node\'s own connections to the pod get their replies', async () => {
  const n1 = lab!.node('node1');
  const web1 = lab!.pod('web-1');
  assert.is(await lab!.stopPodway('node1', 20_000), 0);
  await lab!.startPodway('node1', 20_000, ['--endpoint-to-host', 'drop']);
  const status = cli('status');
  assert.match(status, new RegExp(`node's own addresses \\(local table[^\n]*${OTHER4.replace(/\./g, '\\.')}`), 'status names node1\'s address on lo');
  // web-3 made again with an IPv4 address only: 5 IPv4 (web-1..3, tap-1, tun-1) and 4 IPv6
  assert.match(status, /pod guard: table inet podway; 3 veth pods \(forged sources and tunnel packets dropped\); endpoint-to-host drop: new connections to the node from every local pod, veth, TAP and TUN \(5 IPv4 and 4 IPv6 pod addresses\)/);
  // the node pings its pods: the replies are of a connection the node opened
  assert.ok(await until(() => pingFrom(n1.ns, web1.ip) && pingFrom(n1.ns, web1.ip6!), 20_000, 200), 'node1 -> web-1 (IPv4 and IPv6, the pod resolving its gateway by NDP)');
  // and its TAP and TUN pods: replies through podway0; from node1's other addresses, replies
  // through podway's raw sockets and lo
  for (const name of ['tap-1', 'tun-1']) {
    const p = lab!.pod(name);
    assert.ok(pingFrom(n1.ns, p.ip) && pingFrom(n1.ns, p.ip6!), `node1 -> ${name} (IPv4 and IPv6)`);
    assert.ok(pingFrom(n1.ns, p.ip, OTHER4) && pingFrom(n1.ns, p.ip6!, OTHER6), `node1 -> ${name} from ${OTHER4} and ${OTHER6}`);
  }
  const PORT4 = 47_400;
  const g0 = await guardBaseline();
  const rx = await tagReceiver(n1.ns, PORT4, [MARKER]);
  await sendFromPods([['web-1', [
    eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x0800, udp4(web1.ip, n1.ip, 40_001, PORT4, Buffer.alloc(16, 7))),
    eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x86dd, udp6(web1.ip6!, n1.ip6!, 40_002, PORT4, Buffer.alloc(16, 8))),
    // node1's other addresses: the kernel takes the veth's frame (podway leaves it to the kernel:
    // no copy through its raw sockets and lo)
    eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x0800, udp4(web1.ip, OTHER4, 40_003, PORT4, Buffer.alloc(16, 9))),
    eth('ee:ee:ee:ee:ee:ee', web1.mac!, 0x86dd, udp6(web1.ip6!, OTHER6, 40_004, PORT4, Buffer.alloc(16, 10))),
  ]], ['tap-1', toNode('tap-1', PORT4, 20)], ['tun-1', toNode('tun-1', PORT4, 30)]]);
  // the marker: from node1 itself (not a pod), after the pods' datagrams
  run('ip', ['netns', 'exec', n1.ns, 'python3', '-c', `import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(bytes([${MARKER}]) * 16, ('${n1.ip}', ${PORT4}))`]);
  assert.equal(await rx.finish(), [], 'nothing reached node1\'s listener, from the veth, TAP or TUN pod, on any of node1\'s addresses');
  // web-1, tap-1, tun-1: 4 each, each once
  await until(async () => delta(g0, await guardCounters(), 'podToHost') >= 12, 5000);
  assert.is(delta(g0, await guardCounters(), 'podToHost'), 12, 'all counted pod_to_host, once each');
  assert.is(lab!.ping('web-1', n1.ip, 2, 56, ['-W', '2']).received, 0, 'web-1 -> node1 ping: dropped too');
  ok = true;
});

function pingFrom(ns: string, ip: string, from?: string): boolean {
  try {
    run('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '2', ...(from ? ['-I', from] : []), ip]);
    return true;
  } catch {
    return false;
  }
}

function cli(cmd: string): string {
  return execFileSync(process.execPath, [BIN, cmd, '--control', lab!.node('node1').control], { encoding: 'utf8', timeout: 20_000 });
}

test.run();
