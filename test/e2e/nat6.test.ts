/**
 * IPv6 egress outside the pools and natOutgoing on an IPv6 pool, end to end (root, network
 * namespaces): a dual-stack lab of two podway nodes (two forwarding threads each; veth, tap and tun
 * pods), and an "outside"
 * namespace with fd00:203::10 behind the fabric router, reached over IPv6 through each node's
 * default route (Lab.addOutside). With natOutgoing on the IPv6 pool, pods reach it over ICMPv6,
 * TCP and UDP with their node's IPv6 address (table ip6 podway: the kernel's masquerade, ports from
 * podway's range), ICMPv6 errors come back translated (traceroute) and those quoting no known flow
 * are counted (icmpUnmatched), not translated; traffic to a pod of the pool keeps the pod's
 * address, a TCP connection to another node leaves with the node's (Felix's natOutgoingExclusions
 * IPPoolsOnly), node2's own connections to a pod are answered with the pod's address; with the flag off (live) the outside sees and answers the
 * pod's own address; a crashed run's table is removed at the next start when the flag is off; the
 * table stays at stop and `podway cleanup` removes it. One lab for the whole file (built in `before`, removed
 * in `after`, and by guard() on any exit).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, ChildProcess, execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Lab, LabNodeSpec, OUTSIDE6, POOL6_CIDR, run } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, until, logTail, sleep, track, tcpTransferTo, spawnCollected, podwayCleanup } from './e2e-kit';
import { native, FramePool } from '../../src/dataplane/native';
import { parseIpv6Bytes } from '../../src/packet';
import { icmpv6Sum } from '../packet/helpers6';
import { NFT_COUNTERS_MAX_AGE_MS } from '../../src/observe/nft-cache';

const PEER = path.join(__dirname, 'nat-peer.js');
const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'n1-a', type: 'veth' }, { name: 'n1-b', type: 'veth' }, { name: 'n1-tap', type: 'tap' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'n2-a', type: 'veth' }, { name: 'n2-tun', type: 'tun' }] },
];

let lab: Lab;
let outside: { ns: string; ip6: string };
/** Every IPv6 source address the outside's interface received (tcpdump), until the flag flips. */
let dump: ChildProcess | null = null;
let dumpOut = '';

function inNs(ns: string, args: string[], allowFail = false): string {
  return run('ip', ['netns', 'exec', ns, ...args], { allowFail, timeoutMs: 30_000 });
}

function ip6(pod: string): string {
  const a = lab.pod(pod).ip6;
  if (!a) throw new Error(`${pod} has no IPv6 address`);
  return a;
}

function node6(name: string): string {
  return lab.node(name).ip6!;
}

/** A nat-peer server in `ns`; resolves once it is ready. Its "peer" lines are collected. */
async function server(ns: string, mode: 'udp-echo' | 'tcp-echo', ip: string, port: number, seconds = 60): Promise<{ proc: ChildProcess; peers: () => string[] }> {
  const proc = track(spawn('ip', ['netns', 'exec', ns, process.execPath, PEER, mode, ip, String(port), String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (d: string) => (out += d));
  if (!(await until(() => out.includes('ready') || proc.exitCode !== null, 10_000))) throw new Error(`${mode} in ${ns} did not start`);
  if (!out.includes('ready')) throw new Error(`${mode} in ${ns} exited`);
  return { proc, peers: () => [...out.matchAll(/^peer (\S+)$/gm)].map((m) => m[1]) };
}

async function peerJson(ns: string, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  const peer = spawnCollected('ip', ['netns', 'exec', ns, process.execPath, PEER, ...args], timeoutMs + 5000);
  const code = await peer.done;
  const line = peer.out().split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`nat-peer ${args[0]} (${code}): ${peer.err().trim() || peer.out().trim()}`);
  return JSON.parse(line);
}

interface Nat6Status { table: string | null; natPools: string[]; portRange: string; updates: number }
async function nat6Status(node: string): Promise<Nat6Status> {
  return ((await controlRequest(lab.node(node).control, { cmd: 'status' }, 5000)) as { nat6: Nat6Status }).nat6;
}

interface Counters { reasons: Record<string, number>; ports: { name: string; txErrors?: number }[]; nat6: { flows: number; outPackets: number; inPackets: number; icmpUnmatched: number } | null }
async function counters(node: string): Promise<Counters> {
  return (await controlRequest(lab.node(node).control, { cmd: 'counters' }, 5000)) as Counters;
}

function cli(cmd: string, node: string): string {
  return execFileSync(process.execPath, [BIN, cmd, '--control', lab.node(node).control], { encoding: 'utf8', timeout: 20_000 });
}

function kill(p: ChildProcess | null): void {
  if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

function portRange(): [number, number] {
  const [lo, hi] = run('cat', ['/proc/sys/net/ipv4/ip_local_port_range']).trim().split(/\s+/).map(Number);
  return 65535 - hi >= 1024 ? [hi + 1, 65535] : [4790, lo - 1];
}

/** "fd99::1:61234" (or "[...]" free) -> address and port. */
function splitPeer(p: string): { ip: string; port: number } {
  const i = p.lastIndexOf(':');
  return { ip: p.slice(0, i), port: Number(p.slice(i + 1)) };
}

const tablesIn = (ns: string) => inNs(ns, ['nft', 'list', 'tables']).trim().split('\n').filter((l) => l).sort();
const natpools6 = (node: string) => inNs(lab.node(node).ns, ['nft', 'list', 'set', 'ip6', 'podway', 'natpools']);

test.before(async () => {
  if (!isRoot()) throw new Error('IPv6 nat tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true }));
  lab.build();
  const o = lab.addOutside();
  outside = { ns: o.ns, ip6: o.ip6! };
  lab.natOutgoing6 = true;
  lab.setMode('vxlan');
  dump = track(spawn('ip', ['netns', 'exec', outside.ns, 'tcpdump', '-n', '-l', '-i', 'eth0', '-c', '200000', 'ip6'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  dump.stdout!.setEncoding('utf8');
  dump.stdout!.on('data', (d: string) => (dumpOut += d));
  let dumpErr = '';
  dump.stderr!.setEncoding('utf8');
  dump.stderr!.on('data', (d: string) => (dumpErr += d));
  for (const n of lab.nodes) await lab.startPodway(n.name, 20_000, ['--workers', '2']);
  assert.ok(await until(() => /listening on eth0/.test(dumpErr), 10_000), `tcpdump on the outside did not start: ${dumpErr}`);
});

test.after(async () => {
  kill(dump);
  if (lab) await teardown(lab);
});

test('table ip6 podway beside table ip podway, with the IPv6 natOutgoing pool, the pools and the nodes; status shows it', async () => {
  assert.is(OUTSIDE6, outside.ip6);
  for (const n of lab.nodes) {
    const tables = tablesIn(n.ns);
    assert.ok(tables.includes('table ip6 podway') && tables.includes('table ip podway'), `${n.name}: ${tables.join(', ')}`);
    assert.match(natpools6(n.name), POOL6_CIDR);
    const nodes = inNs(n.ns, ['nft', 'list', 'set', 'ip6', 'podway', 'nodes']);
    assert.ok(nodes.includes(node6('node1')) && nodes.includes(node6('node2')), nodes);
    const st = await nat6Status(n.name);
    assert.is(st.table, 'ip6 podway');
    assert.equal(st.natPools, [POOL6_CIDR]);
    assert.is(st.portRange, portRange().join('-'));
    assert.match(cli('status', n.name), `nat6: table ip6 podway; natOutgoing from ${POOL6_CIDR}; natOutgoingExclusions IPPoolsOnly (to other nodes: the TCP connections and pings a pod opens are masqueraded); ports ${portRange().join('-')}`);
  }
});

test('ping6 from veth, tap and tun pods to the outside, traced as natOutgoing (table ip6 podway) and counted', async () => {
  const trace = controlRequest(lab.node('node1').control, { cmd: 'trace', filter: ['dst', outside.ip6, 'and', 'icmp6'], count: 1, timeoutMs: 10_000 }, 15_000) as Promise<{ records: { stages: string[] }[] }>;
  await sleep(200);
  for (const pod of ['n1-a', 'n1-tap', 'n2-tun', 'n2-a']) {
    const r = lab.ping(pod, outside.ip6, 3, 56, ['-W', '3']);
    assert.is(r.received, 3, `${pod} -> outside: ${JSON.stringify(r)}\n${logTail(lab)}`);
  }
  const t = await trace;
  assert.ok(t.records[0].stages.some((s) => s.includes('natOutgoing: masqueraded to the node\'s address by the kernel, table ip6 podway')), t.records[0].stages.join('\n'));
  const c = await counters('node1');
  assert.ok(c.reasons.egress_nat >= 6, JSON.stringify(c.reasons));
  assert.ok(c.nat6 !== null && c.nat6.outPackets >= 6 && c.nat6.inPackets >= 6 && c.nat6.flows >= 2, JSON.stringify(c.nat6));
  assert.match(cli('counters', 'node1'), /nat6 \(table ip6 podway\): \d+ flows masqueraded, \d+ packets out, \d+ replies back to pods/);
});

test('TCP 2 MB from a veth and a tun pod to the outside, content checked; the outside sees the node\'s IPv6 address and a port from the NAT range', async () => {
  const [lo, hi] = portRange();
  for (const [pod, node, port] of [['n1-a', 'node1', 7101], ['n2-tun', 'node2', 7102]] as const) {
    const t = await tcpTransferTo(lab, pod, { name: 'outside', ns: outside.ns, ip: outside.ip6 }, 2 * 1024 * 1024, port);
    assert.is(t.received.bytes, 2 * 1024 * 1024);
    assert.is(t.received.sha256, t.sent.sha256);
    const peer = splitPeer(t.received.peer);
    assert.is(peer.ip, node6(node), `${pod}: the outside saw ${t.received.peer}`);
    assert.ok(peer.port >= lo && peer.port <= hi, `source port ${peer.port} outside ${lo}-${hi}`);
  }
});

test('UDP from a tap pod to the outside and back, with the node\'s IPv6 address', async () => {
  const srv = await server(outside.ns, 'udp-echo', outside.ip6, 7103);
  try {
    const r = await peerJson(lab.pod('n1-tap').ns, ['udp-ask', outside.ip6, '7103', '0', '3000'], 3000);
    assert.is(r.answered, true, JSON.stringify(r));
    const peers = srv.peers().map(splitPeer);
    assert.ok(peers.length >= 1 && peers.every((p) => p.ip === node6('node1')), JSON.stringify(peers));
  } finally {
    kill(srv.proc);
  }
});

test('traceroute6 from a pod: podway\'s and the router\'s time exceeded and the outside\'s port unreachable come back translated', async () => {
  const out = inNs(lab.pod('n2-a').ns, ['traceroute', '-6', '-n', '-q', '1', '-w', '2', '-m', '5', outside.ip6], true);
  const hops = [...out.matchAll(/^\s*(\d+)\s+(\S+)/gm)].map((m) => m[2]);
  // 1: podway itself (hop limit expired on node2), 2: the fabric router, 3: the outside (port unreachable)
  assert.equal(hops, [node6('node2'), 'fd99::fe', outside.ip6], out);
});

/** IPv6 + ICMPv6 time exceeded quoting a UDP datagram src:sport -> dst:dport, from `from` to `to`. */
function forgedTimeExceeded6(b: Uint8Array, o: number, from: string, to: string, src: string, sport: number, dst: string, dport: number): number {
  const put16 = (at: number, v: number) => { b[at] = (v >>> 8) & 255; b[at + 1] = v & 255; };
  const ipHdr = (at: number, payload: number, next: number, s: string, d: string) => {
    b.fill(0, at, at + 40);
    b[at] = 0x60; put16(at + 4, payload); b[at + 6] = next; b[at + 7] = 64;
    b.set(parseIpv6Bytes(s), at + 8); b.set(parseIpv6Bytes(d), at + 24);
  };
  const len = 8 + 40 + 8;
  ipHdr(o, len, 58, from, to);
  const icmp = o + 40;
  b.fill(0, icmp, icmp + 8);
  b[icmp] = 3; // time exceeded, code 0
  ipHdr(icmp + 8, 8, 17, src, dst);
  put16(icmp + 48, sport); put16(icmp + 50, dport); put16(icmp + 52, 8); put16(icmp + 54, 0);
  put16(icmp + 2, 0xffff - icmpv6Sum(b, o, icmp, len));
  return 40 + len;
}

test('ICMPv6 errors quoting no known flow are not translated, and counted', async () => {
  const n1 = lab.node('node1');
  const read = async () => (await counters('node1')).nat6!;
  // nft-backed counters are served from a cache up to NFT_COUNTERS_MAX_AGE_MS old: a baseline read
  // past that age is a new nft run, so the earlier tests' traffic is all in it
  await new Promise((r) => setTimeout(r, NFT_COUNTERS_MAX_AGE_MS + 100));
  const before = await read();
  const pool = new FramePool(8);
  const raw = native.openRaw({ netns: `/run/netns/${outside.ns}`, ipv6: true });
  try {
    for (let i = 0; i < 5; i++) {
      const o = pool.start(i);
      pool.len[i] = forgedTimeExceeded6(pool.bytes, o, outside.ip6, node6('node1'), node6('node1'), 61999 - i, outside.ip6, 9999);
      pool.txList[i] = i;
    }
    assert.is(native.send(raw, 0, 5), 5);
  } finally {
    native.close(raw);
  }
  let after = before;
  assert.ok(await until(async () => (after = await read()).icmpUnmatched >= before.icmpUnmatched + 5, 5000), `counted: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  assert.is(after.inPackets, before.inPackets, 'nothing taken back to a pod');
  assert.ok(n1.proc, 'node1 still runs');
});

test('to a pod of the pool: the pod\'s own address; a TCP connection to another node\'s IPv6 address: the node\'s (Felix\'s IPPoolsOnly)', async () => {
  const toPod = await server(lab.pod('n2-a').ns, 'tcp-echo', ip6('n2-a'), 7104);
  const toNode = await server(lab.node('node2').ns, 'tcp-echo', node6('node2'), 7105);
  try {
    const r1 = await peerJson(lab.pod('n1-a').ns, ['tcp-flows', ip6('n2-a'), '7104', '2', '5000'], 5000);
    assert.equal([r1.ok, r1.failed], [2, 0], JSON.stringify(r1));
    assert.ok(toPod.peers().length === 2 && toPod.peers().every((p) => splitPeer(p).ip === ip6('n1-a')), `pod saw ${toPod.peers()}`);
    const r2 = await peerJson(lab.pod('n1-b').ns, ['tcp-flows', node6('node2'), '7105', '2', '5000'], 5000);
    assert.equal([r2.ok, r2.failed], [2, 0], JSON.stringify(r2));
    assert.ok(toNode.peers().length === 2 && toNode.peers().every((p) => splitPeer(p).ip === node6('node1')), `node2 saw ${toNode.peers()}`);
  } finally {
    kill(toPod.proc);
    kill(toNode.proc);
  }
});

test('node2\'s own TCP and UDP to an IPv6 pod on node1: answered with the pod\'s address, never masqueraded', async () => {
  const tcp = await server(lab.pod('n1-a').ns, 'tcp-echo', ip6('n1-a'), 7107);
  const udp = await server(lab.pod('n1-a').ns, 'udp-echo', ip6('n1-a'), 7108);
  try {
    const ns2 = lab.node('node2').ns;
    const r = await peerJson(ns2, ['tcp-flows', ip6('n1-a'), '7107', '2', '5000'], 5000);
    assert.equal([r.ok, r.failed], [2, 0], JSON.stringify(r));
    const u = await peerJson(ns2, ['udp-ask', ip6('n1-a'), '7108', '0', '3000'], 3000);
    assert.is(u.answered, true, JSON.stringify(u));
    assert.is(splitPeer(u.from as string).ip, ip6('n1-a'), `the answer came from ${u.from}`);
  } finally {
    kill(tcp.proc);
    kill(udp.proc);
  }
});

test('the outside saw nothing but node addresses', async () => {
  await sleep(500);
  const srcs = new Set([...dumpOut.matchAll(/ IP6 ([0-9a-f:]+)(?:\.\d+)? > /g)].map((m) => m[1]));
  for (const s of [...srcs]) if (s === outside.ip6 || s === 'fd00:203::1' || s.startsWith('fe80:')) srcs.delete(s);
  assert.ok(srcs.size >= 1, dumpOut.slice(0, 2000));
  const ips = new Set([node6('node1'), node6('node2')]);
  assert.ok([...srcs].every((s) => ips.has(s)), `sources seen: ${[...srcs].join(', ')}`);
  kill(dump);
});

test('natOutgoing off on the IPv6 pool (live): the pod\'s own address leaves and is answered; on again: the node\'s', async () => {
  const srv = await server(outside.ns, 'udp-echo', outside.ip6, 7106);
  try {
    const pod = lab.pod('n1-b');
    lab.natOutgoing6 = false;
    lab.setMode('vxlan');
    assert.ok(await until(() => !natpools6('node1').includes(POOL6_CIDR), 10_000), 'set emptied');
    assert.ok(await until(async () => (await nat6Status('node1')).natPools.length === 0, 10_000), `status: ${JSON.stringify(await nat6Status('node1'))}`);
    assert.match(cli('status', 'node1'), /nat6: table ip6 podway; natOutgoing from no pool/);
    const before = await counters('node1');
    // The fabric routes the pods' blocks to their nodes: the reply comes back on the underlay to the pod's address.
    const off = await peerJson(pod.ns, ['udp-ask', outside.ip6, '7106', '0', '3000'], 3000);
    assert.is(off.answered, true, JSON.stringify(off));
    assert.is(splitPeer(srv.peers().pop()!).ip, ip6('n1-b'), `the outside saw the pod address: ${srv.peers()}`);
    const p = lab.ping('n1-tap', outside.ip6, 3, 56, ['-W', '3']);
    assert.is(p.received, 3, `n1-tap -> outside, unNATed: ${JSON.stringify(p)}`);
    const after = await counters('node1');
    // (a reason not counted yet is absent from the answer: 0)
    assert.ok((after.reasons.egress ?? 0) - (before.reasons.egress ?? 0) >= 4, `egress counted: ${before.reasons.egress} -> ${after.reasons.egress}`);
    assert.is(after.reasons.egress_nat ?? 0, before.reasons.egress_nat ?? 0, 'nothing counted as NAT');
    lab.natOutgoing6 = true;
    lab.setMode('vxlan');
    assert.ok(await until(() => natpools6('node1').includes(POOL6_CIDR), 10_000), 'set filled');
    const on = await peerJson(pod.ns, ['udp-ask', outside.ip6, '7106', '0', '3000'], 3000);
    assert.is(on.answered, true, JSON.stringify(on));
    assert.is(splitPeer(srv.peers().pop()!).ip, node6('node1'));
  } finally {
    kill(srv.proc);
  }
});

test('a crashed run\'s table ip6 podway is removed at the next start when no IPv6 pool has natOutgoing any more (and no transit drop asks for it: --no-kernel-transit-drop)', async () => {
  const n = lab.node('node1');
  n.proc!.kill('SIGKILL');
  await until(() => n.proc!.exitCode !== null || n.proc!.signalCode !== null, 5000);
  n.proc = null;
  assert.ok(tablesIn(n.ns).includes('table ip6 podway'), 'left behind by the crash');
  lab.natOutgoing6 = false;
  lab.setMode('vxlan');
  try {
    // with the IPv6 transit drop on (the default) the table would be replaced by one holding that
    // chain only (test/e2e/host-ipv6.test.ts)
    await lab.startPodway('node1', 20_000, ['--workers', '1', '--no-kernel-transit-drop']);
    assert.ok(await until(() => !tablesIn(n.ns).includes('table ip6 podway'), 10_000), `removed: ${tablesIn(n.ns).join(', ')}`);
    assert.ok(tablesIn(n.ns).includes('table ip podway'), 'the IPv4 table is podway\'s as before');
    assert.is((await nat6Status('node1')).table, null);
    const p = lab.ping('n1-a', outside.ip6, 3, 56, ['-W', '3']);
    assert.is(p.received, 3, `unNATed egress after the restart: ${JSON.stringify(p)}`);
  } finally {
    lab.natOutgoing6 = true;
    lab.setMode('vxlan');
  }
  assert.ok(await until(() => tablesIn(n.ns).includes('table ip6 podway'), 10_000), 'created live once the pool asks again');
  assert.is(lab.ping('n1-a', outside.ip6, 3, 56, ['-W', '3']).received, 3, 'NATed again');
});

test('the IPv6 table stays at stop, with the IPv4 one; podway cleanup removes both', async () => {
  const n = lab.node('node2');
  const before = tablesIn(n.ns);
  assert.ok(before.includes('table ip6 podway'));
  assert.is(await lab.stopPodway('node2', 20_000), 0);
  assert.equal(tablesIn(n.ns), before, 'left at stop for the next start, as a crash leaves them');
  assert.match(podwayCleanup(n), /removed nftables table ip6 podway/);
  assert.is(inNs(n.ns, ['nft', 'list', 'tables']).trim(), '', 'removed by podway cleanup');
});

test.run();
