/**
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
import { Bg, PY_RAW, PY_UDP_RECV, pyJson, py, eth, ipBytes } from './tools';

const SPEC = [{ name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] }];
const PORT = 47_123;

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
});

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
  await recv.waitFor('listening', 5000);
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
  await recv.waitFor('listening', 5000);
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
  ok = true;
});

test.run();
