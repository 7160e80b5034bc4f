/**
 * End-to-end forwarding (root): one three-node lab cluster (src/lab/lab.ts) with podway running on
 * every node, shared by the tests of this file. It is built by the first test and removed by the
 * last one, and also by a process 'exit' / signal handler, so namespaces never outlive a failing
 * run. Every wait and every child process is bounded; traffic only flows between addresses inside
 * the lab's namespaces.
 *
 *   node1 10.99.0.1: web-1 10.244.0.2 (veth), tap-1 10.244.0.3 (tap)
 *   node2 10.99.0.2: web-2 10.244.0.66 (veth), tap-2 10.244.0.67 (tap)
 *   node3 10.98.0.3 (behind a router): web-3 10.244.0.130 (veth), tun-3 10.244.0.131 (tun)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, renameSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, Mode, LabNode, parsePing, PingResult, caliName, run, pingArgs } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import {
  Bg, children, killChildren, execBounded, sleep, py, pyJson, PY_START_MS, PY_TCP_SERVER, PY_TCP_CLIENT, PY_UDP_RECV, PY_UDP_SEND,
  PY_RAW, eth, arp, icmpEcho, calicoVtepMac, startCapture, tsharkFields, reasons, delta, replyTtls,
} from './tools';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PODWAY = path.join(ROOT, 'bin', 'podway.js');
const GW_MAC = 'ee:ee:ee:ee:ee:ee';

let lab: Lab | null = null;
/** Namespaces this file makes besides the lab's own. */
const extraNs: string[] = [];
let cleaned = false;

function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  killChildren();
  if (lab) lab.destroy();
  for (const ns of extraNs) run('ip', ['netns', 'del', ns], { allowFail: true });
  extraNs.length = 0;
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    cleanup();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

// However the tests end, the suite's after-hook removes the lab (uvu runs it in a finally); the
// exit handler covers a crash. Without it a failed teardown test would leave podway children
// keeping this process (and the namespaces) alive.
test.after(() => cleanup());

// Per-test durations on stderr (PODWAY_E2E_TIMES=1), to keep the file's runtime in view.
let t0 = 0;
test.before.each(() => {
  t0 = Date.now();
});
test.after.each((ctx) => {
  if (process.env.PODWAY_E2E_TIMES) process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(1)}s ${(ctx as { __test__: string }).__test__}\n`);
});

function L(): Lab {
  if (!lab) throw new Error('the lab was not built (first test failed)');
  return lab;
}

function sameSubnet(a: LabNode, b: LabNode): boolean {
  return a.ip.split('.').slice(0, 3).join('.') === b.ip.split('.').slice(0, 3).join('.');
}

function expectedKind(mode: Mode, a: LabNode, b: LabNode): string {
  if (mode === 'direct') return 'direct';
  if (mode === 'crosssubnet') return sameSubnet(a, b) ? 'direct' : 'vxlan';
  if (mode === 'ipip-crosssubnet') return sameSubnet(a, b) ? 'direct' : 'ipip';
  return mode;
}

interface RouteRow { cidr: string; kind: string; nextHopMac: string; via: string }

/** Switch the pool's mode and wait (bounded) until every podway routes every remote block the
 * new way, with same-subnet direct next hops already resolved (so no first-packet loss). */
async function useMode(mode: Mode): Promise<void> {
  const l = L();
  l.setMode(mode);
  await l.waitApplied((routes, n) => l.nodes.every((m) => {
    if (m === n) return true;
    const r = (routes as RouteRow[]).find((x) => x.cidr === m.block);
    if (!r || r.kind !== expectedKind(mode, n, m)) return false;
    return r.kind !== 'direct' || !sameSubnet(n, m) || r.nextHopMac !== '';
  }), 10_000);
}

interface Ping { out: string; r: PingResult; ttls: number[] }

/** `count` pings (Lab's pingArgs: every reply awaited); ttls of the replies to requests 1..count.
 * A test that expects no reply and counts the drops passes `{ awaitReplies: false }`, so exactly
 * `count` requests are sent. */
async function ping(from: string, to: string, count = 4, extra: string[] = [], opts: { awaitReplies?: boolean } = {}): Promise<Ping> {
  const p = L().pod(from);
  const res = await execBounded('ip', ['netns', 'exec', p.ns, 'ping', ...pingArgs(count, extra, opts), to], 5000 + count * 1500);
  const out = res.stdout + res.stderr;
  return { out, r: parsePing(out, count), ttls: replyTtls(out, count) };
}

function node(name: string): LabNode {
  return L().node(name);
}

function ipOf(pod: string): string {
  return L().pod(pod).ip;
}

async function podwaysAlive(): Promise<void> {
  for (const n of L().nodes) {
    assert.ok(n.proc && n.proc.exitCode === null, `podway on ${n.name} is not running: ${n.log.slice(-5).join(' | ')}`);
    await controlRequest(n.control, { cmd: 'status' }, 5000);
  }
}

/** Wait (bounded) for a log line of a node matching re, counting only lines after `from`. */
async function waitLog(n: LabNode, re: RegExp, from: number, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const hit = n.log.slice(from).find((l) => re.test(l));
    if (hit) return hit;
    if (Date.now() > end) throw new Error(`no log line matching ${re} on ${n.name} within ${timeoutMs} ms; tail: ${n.log.slice(-5).join(' | ')}`);
    await sleep(50);
  }
}

/** Write a resource file in place of the lab's (atomically, as Lab.setMode does). */
function writeResources(text: string): void {
  const l = L();
  writeFileSync(l.file + '.e2e', text);
  renameSync(l.file + '.e2e', l.file);
}

const ENCAP: Mode[] = ['vxlan', 'ipip', 'crosssubnet'];
const MODES: Mode[] = ['vxlan', 'ipip', 'direct', 'crosssubnet'];

// ---- the cluster -----------------------------------------------------------------------------

test('lab: build the 3-node cluster and start podway on every node', async () => {
  assert.is(process.getuid?.(), 0, 'these tests need root (network namespaces)');
  lab = new Lab(Lab.defaultSpec());
  lab.build();
  for (const n of lab.nodes) await lab.startPodway(n.name);
  for (const n of lab.nodes) {
    const st = (await controlRequest(n.control, { cmd: 'status' })) as { node: string; nodeIp: string; endpoints: number; vtep: { mac: string }; knownNodes: string[] };
    assert.is(st.node, n.name);
    assert.is(st.nodeIp, n.ip);
    assert.is(st.endpoints, n.pods.length, `${n.name} attached ${st.endpoints} of ${n.pods.length} pods: ${n.log.slice(-5).join(' | ')}`);
    assert.is(st.vtep.mac, calicoVtepMac(n.name), `${n.name} VTEP MAC is Calico's default (0x66 + sha1(nodename)[0:5])`);
    assert.equal(st.knownNodes.slice().sort(), lab.nodes.map((m) => m.ip).sort());
  }
});

// ---- 1. ping in every mode ---------------------------------------------------------------------

for (const mode of MODES) {
  test(`${mode}: pings cross-node (ttl 62) and same-node (ttl 63), 0% loss`, async () => {
    await useMode(mode);
    const paths: [string, string, number][] = [
      ['web-1', 'tap-1', 63], ['tap-2', 'web-2', 63], ['tun-3', 'web-3', 63],
      ['web-1', 'web-2', 62], ['tap-1', 'tap-2', 62], ['web-2', 'tap-1', 62],
    ];
    if (ENCAP.includes(mode)) paths.push(['web-1', 'web-3', 62], ['tap-1', 'tun-3', 62], ['tun-3', 'tap-2', 62]);
    for (const [a, b, ttl] of paths) {
      const p = await ping(a, ipOf(b), 4);
      assert.is(p.r.loss, 0, `${mode} ${a} -> ${b}: ${p.r.loss}% loss\n${p.out}`);
      assert.is(p.ttls.length, 4, `${mode} ${a} -> ${b}: replies\n${p.out}`);
      assert.ok(p.ttls.every((t) => t === ttl), `${mode} ${a} -> ${b}: ttl ${p.ttls.join(',')}, expected ${ttl}`);
    }
  });
}

// ---- 2. bulk TCP and MTU-sized UDP in every mode ------------------------------------------------

const MB4 = 4 << 20;

async function tcpTransfer(from: string, to: string, port: number): Promise<void> {
  const src = L().pod(from);
  const dst = L().pod(to);
  const mtu = Lab.podMtu(L().mode);
  // bounds for a loaded host (load 25), each ended at once by what it waits for: the server's
  // accept and reads 30 s (the client's python start comes first), the client 60 s
  const [c, a] = py(dst.ns, PY_TCP_SERVER, [dst.ip, port, 30]);
  const server = new Bg(c, a);
  try {
    await server.waitFor('listening', PY_START_MS);
    const cl = await pyJson<{ bytes: number; sha256: string; serverSha256: string; mss: number; local: string }>(src.ns, PY_TCP_CLIENT, [dst.ip, port, MB4, 30], 60_000);
    const code = await server.finish(15_000);
    assert.is(code, 0, `server in ${to}: ${server.stderr.slice(-300)}`);
    const sv = JSON.parse(server.stdout.trim().split('\n').pop()!) as { bytes: number; sha256: string; peer: string };
    const what = `${L().mode} tcp ${from} -> ${to}`;
    assert.is(sv.bytes, MB4, `${what}: server got ${sv.bytes} bytes`);
    assert.is(sv.sha256, cl.sha256, `${what}: sha256 differs`);
    assert.is(cl.serverSha256, cl.sha256, `${what}: the server's answer`);
    assert.is(sv.peer, src.ip, `${what}: seen from ${sv.peer}`);
    // MSS from the pod MTU: segments fill it (TCP_MAXSEG leaves out 12 bytes of timestamps).
    assert.ok(cl.mss === mtu - 40 || cl.mss === mtu - 52, `${what}: mss ${cl.mss} for pod mtu ${mtu}`);
  } finally {
    await server.finish(100);
  }
}

async function udpAtMtu(from: string, to: string, port: number): Promise<void> {
  const src = L().pod(from);
  const dst = L().pod(to);
  const mtu = Lab.podMtu(L().mode);
  const size = mtu - 28;
  const count = 20;
  // the receiver ends when all `count` came, at the latest 30 s after it listens (the sender's
  // python start, 2-5 s at load 20, is inside that window: it was 8 s)
  const [c, a] = py(dst.ns, PY_UDP_RECV, [dst.ip, port, count, 30]);
  const rx = new Bg(c, a);
  try {
    await rx.waitFor('listening', PY_START_MS);
    const tx = await pyJson<{ sent: number; errors: string[]; oneMore: string }>(src.ns, PY_UDP_SEND, [dst.ip, port, size, count], 30_000);
    await rx.finish(35_000);
    const what = `${L().mode} udp ${from} -> ${to} (${size} bytes, DF)`;
    assert.equal(tx.errors, [], `${what}: send errors`);
    assert.is(tx.sent, count);
    assert.is(tx.oneMore, 'Message too long', `${what}: one byte more should not fit the pod MTU ${mtu}`);
    const r = JSON.parse(rx.stdout.trim().split('\n').pop()!) as { received: number[]; bad: number; sizes: number[] };
    assert.is(r.bad, 0, `${what}: corrupted datagrams`);
    assert.equal(r.sizes, [size], `${what}: sizes`);
    assert.is(r.received.length, count, `${what}: ${r.received.length}/${count} arrived`);
  } finally {
    await rx.finish(100);
  }
}

let portSeq = 5000;
for (const mode of MODES) {
  test(`${mode}: 4 MB TCP transfers match by sha256; DF UDP datagrams filling the pod MTU arrive intact`, async () => {
    await useMode(mode);
    await tcpTransfer('web-1', 'web-2', portSeq++);
    await tcpTransfer('tap-2', 'tap-1', portSeq++);
    if (ENCAP.includes(mode)) {
      await tcpTransfer('tun-3', 'web-1', portSeq++);
      await tcpTransfer('web-2', 'tun-3', portSeq++);
    }
    await udpAtMtu('web-1', 'web-2', portSeq++);
    await udpAtMtu('tap-2', 'tap-1', portSeq++);
    if (ENCAP.includes(mode)) await udpAtMtu('web-1', 'tun-3', portSeq++);
  });
}

// ---- 3. on the wire ----------------------------------------------------------------------------

test('ipip on the wire: outer 10.99.0.1 -> 10.99.0.2 proto 4 around the unchanged pod packet; outer DSCP 0, the inner ECN field', async () => {
  await useMode('ipip');
  const n2 = node('node2');
  const file = path.join(L().dir, 'ipip.pcap');
  const cap = await startCapture(n2.ns, 'eth0', file, 'ip proto 4', 6);
  // DSCP EF (46) and ECT(1): Calico's tunl0 (tos 0, not inherit) carries the ECN field out, not the DSCP
  const p = await ping('web-1', ipOf('web-2'), 3, ['-Q', '0xb9']);
  assert.is(p.r.loss, 0, p.out);
  const code = await cap.finish(5000);
  assert.is(code, 0, `tcpdump: ${cap.stderr}`);
  const rows = await tsharkFields(file, ['ip.proto', 'ip.src', 'ip.dst', 'ip.ttl', 'icmp.type', 'ip.dsfield']);
  const req = rows.filter((r) => r[4][0] === '8');
  const rep = rows.filter((r) => r[4][0] === '0');
  assert.is(req.length, 3, `echo requests on node2's wire: ${JSON.stringify(rows)}`);
  assert.is(rep.length, 3, `echo replies on node2's wire: ${JSON.stringify(rows)}`);
  for (const r of req) {
    assert.equal(r[0], ['4', '1'], 'outer proto 4, inner ICMP');
    assert.equal(r[1], ['10.99.0.1', '10.244.0.2']);
    assert.equal(r[2], ['10.99.0.2', '10.244.0.66']);
    assert.equal(r[3], ['63', '63'], 'inner ttl decremented once by node1; the outer inherits it, as tunl0 (ttl inherit)');
    assert.equal(r[5].map(Number), [0x01, 0xb9], 'outer tos: DSCP 0, ECT(1) from the inner header; inner tos as the pod sent it');
  }
  for (const r of rep) {
    assert.equal(r[0], ['4', '1']);
    assert.equal(r[1], ['10.99.0.2', '10.244.0.66']);
    assert.equal(r[2], ['10.99.0.1', '10.244.0.2']);
    const [outer, inner] = r[5].map(Number);
    assert.is(outer, inner & 3, `reply: outer tos ${outer} is the inner (${inner}) ECN field alone`);
  }
});

test('vxlan on the wire: vni 4096, udp checksum 0, VTEP MACs, flow-hashed source ports per direction', async () => {
  await useMode('vxlan');
  const n2 = node('node2');
  const file = path.join(L().dir, 'vxlan.pcap');
  const cap = await startCapture(n2.ns, 'eth0', file, 'udp port 4789', 8);
  const p = await ping('web-1', ipOf('web-2'), 4);
  assert.is(p.r.loss, 0, p.out);
  const code = await cap.finish(5000);
  assert.is(code, 0, `tcpdump: ${cap.stderr}`);
  const rows = await tsharkFields(file, ['ip.src', 'ip.dst', 'udp.srcport', 'udp.dstport', 'udp.checksum', 'vxlan.vni', 'eth.src', 'eth.dst', 'icmp.type', 'udp.length']);
  const req = rows.filter((r) => r[8][0] === '8');
  const rep = rows.filter((r) => r[8][0] === '0');
  assert.is(req.length, 4, `requests: ${JSON.stringify(rows)}`);
  assert.is(rep.length, 4, `replies: ${JSON.stringify(rows)}`);
  const vtep1 = calicoVtepMac('node1');
  const vtep2 = calicoVtepMac('node2');
  const check = (r: string[][], from: LabNode, to: LabNode, inner: [string, string], macs: [string, string]) => {
    assert.equal(r[0], [from.ip, inner[0]]);
    assert.equal(r[1], [to.ip, inner[1]]);
    assert.is(r[3][0], '4789');
    assert.is(r[4][0], '0x0000', 'outer UDP checksum is 0');
    assert.equal(r[5], ['4096']);
    assert.is(r[6][1], macs[0], 'inner source MAC: the sending VTEP');
    assert.is(r[7][1], macs[1], 'inner destination MAC: the receiving VTEP');
    assert.is(Number(r[9][0]), 8 + 8 + 14 + 84, 'udp length: vxlan + inner frame');
    const sport = Number(r[2][0]);
    assert.ok(sport >= 32768 && sport <= 60999, `source port ${sport} outside 32768..60999`);
    return sport;
  };
  const reqPorts = new Set(req.map((r) => check(r, node('node1'), n2, ['10.244.0.2', '10.244.0.66'], [vtep1, vtep2])));
  const repPorts = new Set(rep.map((r) => check(r, n2, node('node1'), ['10.244.0.66', '10.244.0.2'], [vtep2, vtep1])));
  assert.is(reqPorts.size, 1, `one flow, one source port: ${[...reqPorts]}`);
  assert.is(repPorts.size, 1, `one flow, one source port: ${[...repPorts]}`);
  assert.not.equal([...reqPorts], [...repPorts], 'the two directions use different source ports');
});

// ---- 4. behaviours -----------------------------------------------------------------------------

async function sendFrames(pod: string, frames: Buffer[], listenMs = 0): Promise<{ sent: number; arpReplies: { spa: string; sha: string; tpa: string }[] }> {
  const p = L().pod(pod);
  return pyJson(p.ns, PY_RAW, [JSON.stringify({ ifname: p.podIf, frames: frames.map((f) => f.toString('hex')), listenMs })], 10_000);
}

function arpRequest(pod: string, target: string): Buffer {
  const p = L().pod(pod);
  return eth('ff:ff:ff:ff:ff:ff', p.mac!, 0x0806, arp(1, p.mac!, p.ip, target));
}

test('arp: pods resolve 169.254.1.1 to ee:ee:ee:ee:ee:ee (veth and tap), podway answers it', async () => {
  await useMode('vxlan');
  const n1 = node('node1');
  for (const name of ['web-1', 'tap-1']) {
    const p = L().pod(name);
    run('ip', ['-n', p.ns, 'neigh', 'flush', 'dev', p.podIf]);
    const before = await reasons(n1);
    const r = await ping(name, ipOf('web-2'), 2);
    assert.is(r.r.loss, 0, r.out);
    const neigh = run('ip', ['-n', p.ns, 'neigh', 'show', '169.254.1.1', 'dev', p.podIf]);
    assert.match(neigh, `lladdr ${GW_MAC}`, `${name}: ${neigh}`);
    assert.ok(delta(before, await reasons(n1), 'arp_replied') >= 1, `${name}: the ARP after the flush was answered by podway`);
    const raw = await sendFrames(name, [arpRequest(name, '169.254.1.1')], 500);
    assert.equal(raw.arpReplies, [{ spa: '169.254.1.1', sha: GW_MAC, tpa: p.ip }], `${name}: one reply to a crafted request`);
  }
});

test('arp: requests for other addresses are not answered (arp_not_gateway); malformed ARP is counted and forwarding goes on', async () => {
  await useMode('vxlan');
  const n1 = node('node1');
  const before = await reasons(n1);
  for (const name of ['web-1', 'tap-1']) {
    const r = await sendFrames(name, [arpRequest(name, ipOf('web-2')), arpRequest(name, ipOf(name === 'web-1' ? 'tap-1' : 'web-1'))], 600);
    assert.equal(r.arpReplies, [], `${name}: ARP for a pod address must not be answered`);
  }
  const mid = await reasons(n1);
  assert.is(delta(before, mid, 'arp_not_gateway'), 4, JSON.stringify(mid));
  for (const name of ['web-1', 'tap-1']) {
    const p = L().pod(name);
    const full = arp(1, p.mac!, p.ip, '169.254.1.1');
    const truncated = eth('ff:ff:ff:ff:ff:ff', p.mac!, 0x0806, full.subarray(0, 10));
    const badHtype = eth('ff:ff:ff:ff:ff:ff', p.mac!, 0x0806, arp(1, p.mac!, p.ip, '169.254.1.1', 7));
    const badOp = eth('ff:ff:ff:ff:ff:ff', p.mac!, 0x0806, arp(9, p.mac!, p.ip, '169.254.1.1'));
    const r = await sendFrames(name, [truncated, badHtype, badOp], 300);
    assert.equal(r.arpReplies, [], `${name}: malformed ARP must not be answered`);
  }
  const after = await reasons(n1);
  assert.is(delta(mid, after, 'too_short'), 2, `truncated ARP: ${JSON.stringify(after)}`);
  assert.is(delta(mid, after, 'bad_arp'), 4, `bad htype / op: ${JSON.stringify(after)}`);
  await podwaysAlive();
  for (const [a, b] of [['web-1', 'web-2'], ['tap-1', 'tap-2']]) {
    const p = await ping(a, ipOf(b), 3);
    assert.is(p.r.loss, 0, `${a} -> ${b} after malformed ARP:\n${p.out}`);
  }
});

test('source check: a spoofed source from a pod is dropped and counted, a genuine one passes', async () => {
  await useMode('vxlan');
  const n1 = node('node1');
  const web1 = L().pod('web-1');
  const web2 = L().pod('web-2');
  const tap1 = L().pod('tap-1');
  const file = path.join(L().dir, 'spoof.pcap');
  // web-2 sees the first echo request that reaches it: the spoofed one is sent first, on the same path.
  const cap = await startCapture(web2.ns, 'eth0', file, 'icmp[icmptype] == icmp-echo', 1);
  const before = await reasons(n1);
  const spoof = eth(GW_MAC, web1.mac!, 0x0800, icmpEcho('10.244.0.99', web2.ip, 0x5150, 1));
  const spoofTap = eth(GW_MAC, tap1.mac!, 0x0800, icmpEcho(web1.ip, web2.ip, 0x5150, 2));
  const genuine = eth(GW_MAC, web1.mac!, 0x0800, icmpEcho(web1.ip, web2.ip, 0x5150, 3));
  await sendFrames('tap-1', [spoofTap]);
  await sendFrames('web-1', [spoof, genuine]);
  const code = await cap.finish(5000);
  assert.is(code, 0, `web-2 saw no echo request at all: ${cap.stderr}`);
  const rows = await tsharkFields(file, ['ip.src', 'icmp.seq']);
  assert.equal(rows, [[['10.244.0.2'], ['3']]], 'only the genuine request reaches web-2');
  const after = await reasons(n1);
  assert.is(delta(before, after, 'source_check'), 2, `web-1 spoofing 10.244.0.99 and tap-1 spoofing web-1's address: ${JSON.stringify(after)}`);
});

test('blackhole: unallocated addresses in a node\'s own block are dropped there (local, and after decap in vxlan/ipip/direct)', async () => {
  for (const mode of ['vxlan', 'ipip', 'direct'] as Mode[]) {
    await useMode(mode);
    const n1 = node('node1');
    const n2 = node('node2');
    const b1 = await reasons(n1);
    const local = await ping('web-1', '10.244.0.50', 3, [], { awaitReplies: false });
    assert.is(local.r.received, 0, local.out);
    const a1 = await reasons(n1);
    assert.is(delta(b1, a1, 'blackhole'), 3, `${mode}: node1 blackhole for its own block: ${JSON.stringify(a1)}`);
    const b2 = await reasons(n2);
    const remote = await ping('web-1', '10.244.0.100', 3, [], { awaitReplies: false });
    assert.is(remote.r.received, 0, remote.out);
    const a2 = await reasons(n2);
    assert.is(delta(b2, a2, 'blackhole'), 3, `${mode}: node2 blackhole for 10.244.0.100 in its block: ${JSON.stringify(a2)}`);
  }
});

test('ttl: ping -t 1 gets "Time to live exceeded" from the first node (veth, tap, tun, same-node)', async () => {
  await useMode('vxlan');
  const cases: [string, string, string][] = [
    ['web-1', 'web-2', '10.99.0.1'], ['tap-1', 'tap-2', '10.99.0.1'], ['web-1', 'tap-1', '10.99.0.1'], ['tun-3', 'web-1', '10.98.0.3'],
  ];
  for (const [a, b, from] of cases) {
    const n = node(L().pod(a).node);
    const before = await reasons(n);
    const p = await ping(a, ipOf(b), 1, ['-t', '1']);
    assert.match(p.out, new RegExp(`From ${from.replace(/\./g, '\\.')} icmp_seq=1 Time to live exceeded`), `${a} -> ${b}:\n${p.out}`);
    const after = await reasons(n);
    assert.is(delta(before, after, 'ttl_expired'), 1, `${a}: ${JSON.stringify(after)}`);
    assert.is(delta(before, after, 'icmp_sent'), 1);
  }
  // TTL 2 expires on the second node (after decap): node2 counts it and, as its kernel would, sends
  // the error back through the tunnel to the pod on node1, from its VXLAN tunnel address (a Calico
  // node's kernel picks vxlan.calico's address for its route back through it).
  const n2 = node('node2');
  const b2 = await reasons(n2);
  const p = await ping('web-1', ipOf('web-2'), 1, ['-t', '2']);
  assert.is(p.r.received, 0, p.out);
  const vtep2 = L().node('node2').vtep.replace(/\./g, '\\.');
  assert.match(p.out, new RegExp(`From ${vtep2} icmp_seq=1 Time to live exceeded`), `web-1 -> web-2 with ttl 2, from node2's tunnel address:\n${p.out}`);
  const a2 = await reasons(n2);
  assert.is(delta(b2, a2, 'ttl_expired'), 1, 'node2 counts the expiry');
  assert.is(delta(b2, a2, 'icmp_sent'), 1, 'node2 sends the error');
  const ok = await ping('web-1', ipOf('web-2'), 1, ['-t', '3']);
  assert.is(ok.r.received, 1, `ttl 3 is enough for two forwarding hops:\n${ok.out}`);
  assert.equal(ok.ttls, [62]);
});

async function fragNeeded(mode: Mode, tunnelMtu: number): Promise<void> {
  await useMode(mode);
  const cases: [string, string, string][] = [['web-1', 'web-2', '10.99.0.1'], ['tap-1', 'tap-2', '10.99.0.1'], ['tun-3', 'web-1', '10.98.0.3']];
  for (const [a, b, from] of cases) {
    const p = L().pod(a);
    const n = node(p.node);
    run('ip', ['-n', p.ns, 'link', 'set', p.podIf, 'mtu', '1500']);
    try {
      const before = await reasons(n);
      const r = await ping(a, ipOf(b), 2, ['-M', 'do', '-s', '1472'], { awaitReplies: false });
      assert.is(r.r.received, 0, r.out);
      const rx = new RegExp(`From ${from.replace(/\./g, '\\.')} icmp_seq=1 Frag needed and DF set \\(mtu = ${tunnelMtu}\\)`);
      assert.match(r.out, rx, `${mode} ${a} -> ${b}:\n${r.out}`);
      const after = await reasons(n);
      assert.ok(delta(before, after, 'frag_needed') >= 1, `${mode} ${a}: ${JSON.stringify(after)}`);
      // The pod learned the path MTU and uses it.
      const route = run('ip', ['-n', p.ns, 'route', 'get', ipOf(b)]);
      assert.match(route, `mtu ${tunnelMtu}`, route);
      const fits = await ping(a, ipOf(b), 2, ['-M', 'do', '-s', String(tunnelMtu - 28)]);
      assert.is(fits.r.loss, 0, `${mode} ${a}: a packet of the learned MTU passes:\n${fits.out}`);
    } finally {
      run('ip', ['-n', p.ns, 'link', 'set', p.podIf, 'mtu', String(Lab.podMtu(mode))]);
      run('ip', ['-n', p.ns, 'route', 'flush', 'cache']);
    }
  }
}

test('frag needed: vxlan answers DF packets over 1450 with ICMP mtu 1450', async () => {
  await fragNeeded('vxlan', 1450);
});

test('frag needed: ipip answers DF packets over 1480 with ICMP mtu 1480', async () => {
  await fragNeeded('ipip', 1480);
});

// ---- 5. configuration errors ---------------------------------------------------------------------

async function podwayRun(args: string[], ns?: string): Promise<{ code: number | null; stderr: string }> {
  const cmd = ns ? ['ip', ['netns', 'exec', ns, process.execPath, PODWAY, 'run', ...args]] as const : [process.execPath, [PODWAY, 'run', ...args]] as const;
  // A bound on a podway that keeps running instead of refusing, not on its speed: at load ~26 on
  // 2 CPUs a refusing `podway run` had not printed a line after 15 s (a start loads ~140 modules
  // and a model thread), so the earlier 15 s failed with nothing wrong.
  const r = await execBounded(cmd[0], [...cmd[1]], 60_000);
  assert.not.ok(r.timedOut, `podway run ${args.join(' ')} did not exit within 60 s: ${r.stderr}`);
  return { code: r.code, stderr: r.stderr };
}

async function nodePing(nodeName: string, to: string, count = 3): Promise<Ping> {
  const n = node(nodeName);
  const res = await execBounded('ip', ['netns', 'exec', n.ns, 'ping', ...pingArgs(count), to], 5000 + count * 1500);
  const out = res.stdout + res.stderr;
  return { out, r: parsePing(out, count), ttls: replyTtls(out, count) };
}

test('host port: nodes reach local tap/tun pods and remote pods through podway0; pods reach their node and other nodes (no NAT)', async () => {
  for (const mode of ['vxlan', 'ipip'] as Mode[]) {
    await useMode(mode);
    // the node's own stack -> a local tap pod, a local tun pod, and pods on other nodes
    const cases: [string, string][] = [['node1', 'tap-1'], ['node3', 'tun-3'], ['node1', 'web-2'], ['node1', 'tap-2'], ['node2', 'web-1']];
    for (const [n, pod] of cases) {
      const p = await nodePing(n, ipOf(pod));
      assert.is(p.r.loss, 0, `${mode}: ${n} -> ${pod}:\n${p.out}`);
    }
    // tap and tun pods -> their own node (podway hands it to the node's stack), veth pods too (the kernel has the frame)
    for (const [pod, ip] of [['tap-1', node('node1').ip], ['tun-3', node('node3').ip], ['web-1', node('node1').ip]] as const) {
      const p = await ping(pod, ip, 3);
      assert.is(p.r.loss, 0, `${mode}: ${pod} -> its node ${ip}:\n${p.out}`);
    }
    // a pod -> another node's own address: out through the node's routing, the reply comes back
    // through that node's pool route into its podway and the tunnel
    const n1 = node('node1');
    const before = await reasons(n1);
    const p = await ping('web-1', node('node2').ip, 3);
    assert.is(p.r.loss, 0, `${mode}: web-1 -> node2's address:\n${p.out}`);
    assert.ok(delta(before, await reasons(n1), 'egress') >= 3, 'counted as egress on node1');
  }
  // the host port exists on every podway node, with the pool routed into it
  const routes = run('ip', ['-n', node('node1').ns, 'route', 'show', 'dev', 'podway0']);
  assert.match(routes, /10\.244\.0\.0\/16/);
});

test('config: a bad resource file is refused naming the file, the document and the field; unknown node; not root', async () => {
  const l = L();
  const scratch = `pw-cfg-${l.tag}`;
  run('ip', ['netns', 'add', scratch]);
  extraNs.push(scratch);
  const sock = path.join(l.dir, 'cfg.sock');
  const bad1 = path.join(l.dir, 'bad-vxlan.yaml');
  writeFileSync(bad1, l.resources('vxlan').replace('vxlanMode: Always', 'vxlanMode: Sometimes'));
  let r = await podwayRun(['--node', 'node1', '--datastore', `file:${bad1}`, '--control', sock], scratch);
  assert.ok(r.code !== 0 && r.code !== null, `exit ${r.code}`);
  assert.match(r.stderr, bad1, r.stderr);
  assert.match(r.stderr, /document 1\b/, r.stderr);
  assert.match(r.stderr, 'vxlanMode', r.stderr);
  assert.match(r.stderr, 'Sometimes', r.stderr);

  // A bad field further down: the 5th document is tap-1's WorkloadEndpoint.
  const bad2 = path.join(l.dir, 'bad-wep.yaml');
  const docs = l.resources('vxlan').split('\n---\n');
  assert.match(docs[4], 'pod: tap-1');
  docs[4] = docs[4].replace('cni.podway.io/interface-type: tap', 'cni.podway.io/interface-type: bond');
  writeFileSync(bad2, docs.join('\n---\n'));
  r = await podwayRun(['--node', 'node1', '--datastore', `file:${bad2}`, '--control', sock], scratch);
  assert.ok(r.code !== 0 && r.code !== null, `exit ${r.code}`);
  assert.match(r.stderr, bad2, r.stderr);
  assert.match(r.stderr, /document 5\b/, r.stderr);
  assert.match(r.stderr, 'cni.podway.io/interface-type', r.stderr);
  assert.match(r.stderr, 'bond', r.stderr);

  r = await podwayRun(['--node', 'node9', '--datastore', `file:${l.file}`, '--control', sock], scratch);
  assert.ok(r.code !== 0 && r.code !== null, `exit ${r.code}`);
  assert.match(r.stderr, /node "?node9"? /, r.stderr);
  assert.match(r.stderr, l.file, r.stderr);

  const missing = path.join(l.dir, 'no-such.yaml');
  r = await podwayRun(['--node', 'node1', '--datastore', `file:${missing}`, '--control', sock], scratch);
  assert.ok(r.code !== 0 && r.code !== null, `exit ${r.code}`);
  assert.match(r.stderr, missing, r.stderr);

  // Not root: run it in a new user namespace, where our uid is unmapped (65534) while the files
  // stay readable wherever the project lives (a checkout under /root is closed to "nobody").
  const args = [process.execPath, PODWAY, 'run', '--node', 'node1', '--datastore', `file:${l.file}`, '--control', sock];
  let nr = await execBounded('unshare', ['--user', '--', ...args], 15_000);
  // A chroot may not create user namespaces: then drop to nobody (needs a checkout it can read).
  if (/unshare failed/.test(nr.stderr)) nr = await execBounded('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...args], 15_000);
  assert.ok(nr.code !== 0 && nr.code !== null, `exit ${nr.code}`);
  assert.match(nr.stderr, /needs root/, nr.stderr);
  assert.not.ok(existsSync(sock), 'no failed run left a control socket');
  run('ip', ['netns', 'del', scratch]);
  extraNs.splice(extraNs.indexOf(scratch), 1);
});

test('config: a missing pod interface is logged, not fatal (at start and on reload); a bad update keeps the last good state', async () => {
  const l = L();
  await useMode('vxlan');
  const n1 = node('node1');
  const ghost = caliName('default', `ghost-${l.tag}`);
  const withGhost = l.resources('vxlan').replace(/\n$/, '') + `
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-ghost-eth0
  namespace: default
spec:
  node: node1
  orchestrator: k8s
  pod: ghost
  interfaceName: ${ghost}
  interfaceType: veth
  ipNetworks:
    - 10.244.0.10/32
`;
  // At start.
  await l.stopPodway('node1');
  writeResources(withGhost);
  let mark = n1.log.length;
  await l.startPodway('node1');
  await waitLog(n1, new RegExp(`cannot attach ${ghost}`), mark, 5000);
  let st = (await controlRequest(n1.control, { cmd: 'status' })) as { endpoints: number };
  assert.is(st.endpoints, 2, 'the two real pods are attached');
  await podwaysAlive();
  let p = await ping('web-1', ipOf('web-2'), 3);
  assert.is(p.r.loss, 0, `forwarding with a missing pod interface:\n${p.out}`);
  const ghostRoutes = ((await controlRequest(n1.control, { cmd: 'routes' })) as RouteRow[]).filter((r) => r.cidr === '10.244.0.10/32');
  assert.is(ghostRoutes.length, 1, 'the missing pod still has its /32 route (and nothing else does)');
  assert.is(ghostRoutes[0].kind, 'withheld', 'listed as withheld: its packets fall to the block\'s blackhole');
  const before = await reasons(n1);
  p = await ping('web-2', '10.244.0.10', 2, [], { awaitReplies: false });
  assert.is(p.r.received, 0, p.out);
  const after = await reasons(n1);
  assert.is(delta(before, after, 'no_route') + delta(before, after, 'blackhole'), 2, `node1 drops traffic for the missing pod: ${JSON.stringify(after)}`);

  // On reload: the file without the ghost (applied: its /32 is gone), then with it again.
  await useMode('vxlan');
  await l.waitApplied((routes, n) => n !== n1 || !routes.some((r) => r.cidr === '10.244.0.10/32'), 10_000);
  mark = n1.log.length;
  writeResources(withGhost);
  await waitLog(n1, new RegExp(`cannot attach ${ghost}`), mark, 10_000);
  await sleep(200);
  await podwaysAlive();
  p = await ping('tap-1', ipOf('tap-2'), 3);
  assert.is(p.r.loss, 0, `forwarding after reload with a missing pod interface:\n${p.out}`);

  // A bad update: every node rejects it and keeps forwarding with the last good state.
  const marks = l.nodes.map((n) => n.log.length);
  writeResources(l.resources('ipip').replace('ipipMode: Always', 'ipipMode: Sometimes'));
  for (const [k, n] of l.nodes.entries()) await waitLog(n, /ipipMode.*Sometimes.*keeping the last good state/, marks[k], 10_000);
  await podwaysAlive();
  const routes = (await controlRequest(n1.control, { cmd: 'routes' })) as RouteRow[];
  assert.is(routes.find((r) => r.cidr === node('node2').block)?.kind, 'vxlan', 'still the last good (vxlan) routes');
  p = await ping('web-1', ipOf('web-3'), 3);
  assert.is(p.r.loss, 0, `forwarding after a rejected update:\n${p.out}`);
  assert.equal(p.ttls, [62, 62, 62]);
  await useMode('vxlan');
  st = (await controlRequest(n1.control, { cmd: 'status' })) as { endpoints: number };
  assert.is(st.endpoints, 2);
});

// ---- teardown ----------------------------------------------------------------------------------

test('lab: podway stops cleanly on SIGTERM, and destroy() leaves no namespace behind', async () => {
  const l = L();
  const codes: Record<string, number | null> = {};
  try {
    for (const n of l.nodes) codes[n.name] = await l.stopPodway(n.name, 20_000); // null: SIGKILLed after 20 s
  } finally {
    cleanup();
  }
  assert.equal(codes, { node1: 0, node2: 0, node3: 0 }, `exit codes on SIGTERM: ${l.nodes.map((n) => n.log.slice(-2).join(' | ')).join(' || ')}`);
  const left = run('ip', ['netns', 'list']).split('\n').filter((x) => x.includes(l.tag));
  assert.equal(left, [], 'namespaces left behind');
  assert.is(children.size, 0, 'child processes left running');
});

test.run();
