/**
 * natOutgoing end to end (root, network namespaces): two podway nodes with ten pods (veth, tap,
 * tun) in a natOutgoing pool, and an "outside" namespace behind the fabric router (203.0.113.10,
 * outside every pool). Pods reach it over TCP, UDP and ICMP with their node's address; 1,000
 * concurrent flows; ICMP errors come back translated (traceroute); an idle UDP flow expires on
 * podway's own ct timeout; pool-to-pool traffic keeps the pod's address, pod-to-node TCP and ping
 * leave with the node's (Felix's natOutgoingExclusions IPPoolsOnly; IPPoolsAndHostIPs after the
 * restart keeps the pod's), node-to-pod connections are answered with the pod's address; the flag
 * flips live; a crashed run's table is replaced at the next start; a stop leaves it, `podway cleanup`
 * removes it.
 * One lab for the whole file (built in `before`, removed in `after`, and by guard() on any exit).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, ChildProcess, execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Lab, LabNodeSpec, run } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { native, FramePool } from '../../src/dataplane/native';
import { parseIpv4 } from '../../src/packet/ipv4';
import { guard, teardown, isRoot, until, logTail, sleep, track, tcpTransferTo, spawnCollected, podwayCleanup } from './e2e-kit';
import { NFT_COUNTERS_MAX_AGE_MS } from '../../src/observe/nft-cache';

const PEER = path.join(__dirname, 'nat-peer.js');
const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const UDP_TIMEOUT_S = 3;

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [...['a', 'b', 'c', 'd'].map((x) => ({ name: `n1-${x}`, type: 'veth' as const })), { name: 'n1-tap', type: 'tap' }] },
  { name: 'node2', subnet: 'a', pods: [...['a', 'b', 'c', 'd'].map((x) => ({ name: `n2-${x}`, type: 'veth' as const })), { name: 'n2-tun', type: 'tun' }] },
];

let lab: Lab;
let outside: { ns: string; ip: string };
/** Every IPv4 source address the outside's interface received (tcpdump), until the flag flips. */
let dump: ChildProcess | null = null;
let dumpOut = '';

function nodeIps(): Set<string> {
  return new Set(lab.nodes.map((n) => n.ip));
}

function inNs(ns: string, args: string[], allowFail = false): string {
  return run('ip', ['netns', 'exec', ns, ...args], { allowFail, timeoutMs: 30_000 });
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

/** The nat part of a running node's status (what `podway status -o json` prints). */
async function natStatus(node: string): Promise<{ natPools: string[]; updates: number }> {
  return ((await controlRequest(lab.node(node).control, { cmd: 'status' }, 5000)) as { nat: { natPools: string[]; updates: number } }).nat;
}

/** `podway status` of a running node, as text. */
function podwayStatusText(node: string): string {
  return execFileSync(process.execPath, [BIN, 'status', '--control', lab.node(node).control], { encoding: 'utf8', timeout: 20_000 });
}

function kill(p: ChildProcess | null): void {
  if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

function portRange(): [number, number] {
  const [lo, hi] = run('cat', ['/proc/sys/net/ipv4/ip_local_port_range']).trim().split(/\s+/).map(Number);
  return 65535 - hi >= 1024 ? [hi + 1, 65535] : [4790, lo - 1];
}

function splitPeer(p: string): { ip: string; port: number } {
  const i = p.lastIndexOf(':');
  return { ip: p.slice(0, i).replace(/^::ffff:/, ''), port: Number(p.slice(i + 1)) };
}

/** The node's conntrack entries (the kernel's own table, read in the node's namespace). */
function conntrack(node: string): string[] {
  return inNs(lab.node(node).ns, ['cat', '/proc/net/nf_conntrack']).split('\n').filter(Boolean);
}

test.before(async () => {
  if (!isRoot()) throw new Error('nat tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
  outside = lab.addOutside();
  lab.natOutgoing = true;
  lab.setMode('vxlan');
  dump = track(spawn('ip', ['netns', 'exec', outside.ns, 'tcpdump', '-n', '-l', '-i', 'eth0', '-c', '200000', 'ip'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  dump.stdout!.setEncoding('utf8');
  dump.stdout!.on('data', (d: string) => (dumpOut += d));
  let dumpErr = '';
  dump.stderr!.setEncoding('utf8');
  dump.stderr!.on('data', (d: string) => (dumpErr += d));
  for (const n of lab.nodes) await lab.startPodway(n.name, 20_000, ['--nat-udp-timeout', String(UDP_TIMEOUT_S)]);
  // tcpdump says so once its capture is open
  assert.ok(await until(() => /listening on eth0/.test(dumpErr), 10_000), `tcpdump on the outside did not start: ${dumpErr}`);
});

test.after(async () => {
  kill(dump);
  if (lab) await teardown(lab);
});

// podway's tables: `ip podway` (natOutgoing), `inet podway_tunnels` (the kernel's copy of tunnel
// packets dropped: nft-tunnels.ts) and `inet podway` (the pod guard: nft-nat.ts guardTableProgram).
// Nothing else is touched.
const PODWAY_TABLES = ['table inet podway', 'table inet podway_tunnels', 'table ip podway']; // sorted
const tablesIn = (ns: string) => inNs(ns, ['nft', 'list', 'tables']).trim().split('\n').filter((l) => l).sort();

test('podway creates its own table ip podway with the natOutgoing pool, nothing else', async () => {
  for (const n of lab.nodes) {
    assert.equal(tablesIn(n.ns), PODWAY_TABLES, `${n.name}: only podway's tables`);
    const set = inNs(n.ns, ['nft', 'list', 'set', 'ip', 'podway', 'natpools']);
    assert.match(set, '10.244.0.0/16');
    const st = (await controlRequest(n.control, { cmd: 'status' }, 5000)) as { nat: { table: string; natPools: string[]; portRange: string; natOutgoingExclusions: string } };
    assert.equal(st.nat.table, 'ip podway');
    assert.equal(st.nat.natPools, ['10.244.0.0/16']);
    assert.equal(st.nat.portRange, portRange().join('-'));
    assert.is(st.nat.natOutgoingExclusions, 'IPPoolsOnly', 'Felix\'s default');
    assert.match(podwayStatusText(n.name), `nat: table ip podway; natOutgoing from 10.244.0.0/16; natOutgoingExclusions IPPoolsOnly (`);
  }
});

test('ping from veth, tap and tun pods to the outside, traced as natOutgoing', async () => {
  const trace = controlRequest(lab.node('node1').control, { cmd: 'trace', filter: ['dst', outside.ip, 'and', 'icmp'], count: 1, timeoutMs: 10_000 }, 15_000) as Promise<{ records: { stages: string[] }[] }>;
  await sleep(200);
  for (const pod of ['n1-a', 'n1-tap', 'n2-tun', 'n2-b']) {
    const r = lab.ping(pod, outside.ip, 3, 56, ['-W', '3']);
    assert.is(r.received, 3, `${pod} -> outside: ${JSON.stringify(r)}\n${logTail(lab)}`);
  }
  const t = await trace;
  assert.ok(t.records[0].stages.some((s) => s.includes('natOutgoing: masqueraded')), t.records[0].stages.join('\n'));
  const c = (await controlRequest(lab.node('node1').control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number>; nat: { flows: number; outPackets: number; inPackets: number } };
  assert.ok(c.reasons.egress_nat >= 6, JSON.stringify(c.reasons));
  assert.ok(c.nat.outPackets >= 6 && c.nat.inPackets >= 6 && c.nat.flows >= 2, JSON.stringify(c.nat));
});

test('TCP 10 MB from a pod to the outside, content checked; the outside sees the node address from the NAT range', async () => {
  const [lo, hi] = portRange();
  for (const [pod, node, port] of [['n1-a', 'node1', 7001], ['n2-tun', 'node2', 7002]] as const) {
    const t = await tcpTransferTo(lab, pod, { name: 'outside', ns: outside.ns, ip: outside.ip }, 10 * 1024 * 1024, port);
    assert.is(t.received.bytes, 10 * 1024 * 1024);
    assert.is(t.received.sha256, t.sent.sha256);
    const peer = splitPeer(t.received.peer);
    assert.is(peer.ip, lab.node(node).ip, `${pod}: the outside saw ${t.received.peer}`);
    assert.ok(peer.port >= lo && peer.port <= hi && peer.port !== 4789, `source port ${peer.port} outside ${lo}-${hi}`);
  }
});

test('UDP from a tap pod to the outside and back, with the node address', async () => {
  const srv = await server(outside.ns, 'udp-echo', outside.ip, 7003);
  try {
    const r = await peerJson(lab.pod('n1-tap').ns, ['udp-ask', outside.ip, '7003', '0', '3000'], 3000);
    assert.is(r.answered, true, JSON.stringify(r));
    const peers = srv.peers().map(splitPeer);
    assert.ok(peers.length >= 1 && peers.every((p) => p.ip === lab.node('node1').ip), JSON.stringify(peers));
  } finally {
    kill(srv.proc);
  }
});

test('traceroute from a pod: the router\'s time exceeded and the outside\'s port unreachable come back translated', async () => {
  const out = inNs(lab.pod('n2-c').ns, ['traceroute', '-n', '-q', '1', '-w', '2', '-m', '5', outside.ip], true);
  const hops = [...out.matchAll(/^\s*(\d+)\s+(\S+)/gm)].map((m) => m[2]);
  // 1: podway itself (ttl expired on node2), 2: the fabric router, 3: the outside (port unreachable)
  assert.equal(hops, [lab.node('node2').ip, '10.99.0.254', outside.ip], out);
});

test('1,000 concurrent TCP flows from 10 pods: every echo comes back, 1,000 distinct node address:port pairs', async () => {
  const srv = await server(outside.ns, 'tcp-echo', outside.ip, 7004);
  try {
    const pods = lab.nodes.flatMap((n) => n.pods);
    assert.is(pods.length, 10);
    const results = await Promise.all(pods.map((p) => peerJson(p.ns, ['tcp-flows', outside.ip, '7004', '100', '20000'], 20_000)));
    for (let k = 0; k < pods.length; k++) assert.equal([results[k].ok, results[k].failed], [100, 0], `${pods[k].name}: ${JSON.stringify(results[k])}`);
    const peers = srv.peers();
    assert.is(peers.length, 1000);
    assert.is(new Set(peers).size, 1000, 'every flow its own address:port');
    const ips = nodeIps();
    assert.ok(peers.every((p) => ips.has(splitPeer(p).ip)), 'only node addresses');
  } finally {
    kill(srv.proc);
  }
});

test('an idle UDP flow expires on podway\'s ct timeout (3 s, table ip podway) and its port is reused', async () => {
  const srv = await server(outside.ns, 'udp-echo', outside.ip, 7005);
  try {
    const pod = lab.pod('n1-b');
    const entry = () => conntrack('node1').find((l) => l.includes(`src=${pod.ip}`) && l.includes('sport=40404 ') && l.includes('dport=7005 '));
    const r1 = await peerJson(pod.ns, ['udp-ask', outside.ip, '7005', '40404', '3000'], 3000);
    assert.is(r1.answered, true);
    const e = entry();
    assert.ok(e, 'conntrack entry of the flow');
    const ttl = Number(e!.split(/\s+/)[4]);
    assert.ok(ttl <= UDP_TIMEOUT_S, `entry's timeout ${ttl} s is podway's ${UDP_TIMEOUT_S} s, not the kernel's 30/120: ${e}`);
    const t0 = Date.now();
    assert.ok(await until(() => entry() === undefined, 15_000, 250), 'entry gone');
    assert.ok(Date.now() - t0 <= (UDP_TIMEOUT_S + 3) * 1000);
    const r2 = await peerJson(pod.ns, ['udp-ask', outside.ip, '7005', '40404', '3000'], 3000);
    assert.is(r2.answered, true, 'the same pod port talks again after expiry');
    assert.ok(entry(), 'a new entry');
  } finally {
    kill(srv.proc);
  }
});

/** IPv4 header + ICMP time exceeded quoting a UDP datagram src:sport -> dst:dport, from `from` to `to`. */
function forgedTimeExceeded(b: Uint8Array, o: number, from: string, to: string, src: string, sport: number, dst: string, dport: number): number {
  const put16 = (at: number, v: number) => { b[at] = (v >>> 8) & 255; b[at + 1] = v & 255; };
  const put32 = (at: number, v: number) => { put16(at, v >>> 16); put16(at + 2, v & 0xffff); };
  const sum = (at: number, len: number) => {
    let s2 = 0;
    for (let k = 0; k < len; k += 2) s2 += (b[at + k] << 8) | b[at + k + 1];
    while (s2 > 0xffff) s2 = (s2 & 0xffff) + (s2 >>> 16);
    return ~s2 & 0xffff;
  };
  const ipHdr = (at: number, total: number, proto: number, s: string, d: string) => {
    b.fill(0, at, at + 20);
    b[at] = 0x45; put16(at + 2, total); b[at + 8] = 64; b[at + 9] = proto;
    put32(at + 12, parseIpv4(s)); put32(at + 16, parseIpv4(d));
    put16(at + 10, sum(at, 20));
  };
  const total = 20 + 8 + 28;
  ipHdr(o, total, 1, from, to);
  const icmp = o + 20;
  b.fill(0, icmp, icmp + 8);
  b[icmp] = 11;
  ipHdr(icmp + 8, 36, 17, src, dst);
  put16(icmp + 28, sport); put16(icmp + 30, dport); put16(icmp + 32, 16); put16(icmp + 34, 0);
  put16(icmp + 2, sum(icmp, 36));
  return total;
}

test('ICMP errors quoting no known flow are not translated, and counted', async () => {
  const n1 = lab.node('node1');
  // past the counters' cache age: a new nft run, with every earlier test's packets in the baseline
  await sleep(NFT_COUNTERS_MAX_AGE_MS + 100);
  const before = ((await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as { nat: { icmpUnmatched: number; inPackets: number } }).nat;
  const pool = new FramePool(8);
  const raw = native.openRaw({ netns: `/run/netns/${outside.ns}`, proto: 255 });
  try {
    for (let i = 0; i < 5; i++) {
      const o = pool.start(i);
      pool.len[i] = forgedTimeExceeded(pool.bytes, o, outside.ip, n1.ip, n1.ip, 61999 - i, outside.ip, 9999);
      pool.addr[i] = parseIpv4(n1.ip);
      pool.txList[i] = i;
    }
    assert.is(native.send(raw, 0, 5), 5);
  } finally {
    native.close(raw);
  }
  let after = before;
  assert.ok(await until(async () => {
    after = ((await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as { nat: typeof before }).nat;
    return after.icmpUnmatched >= before.icmpUnmatched + 5;
  }, 5000), `counted: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  assert.is(after.inPackets, before.inPackets, 'nothing taken back to a pod');
});

test('pool to pool keeps the pod address; to another node a TCP connection and a ping leave with the node\'s address (Felix\'s IPPoolsOnly), UDP with the pod\'s', async () => {
  const a = lab.pod('n1-c');
  const t = await tcpTransferTo(lab, 'n1-c', { name: 'n2-d', ns: lab.pod('n2-d').ns, ip: lab.pod('n2-d').ip }, 200_000, 7006);
  assert.is(t.received.sha256, t.sent.sha256);
  assert.is(splitPeer(t.received.peer).ip, a.ip);
  const n1 = lab.node('node1');
  const n2 = lab.node('node2');
  // the pod's TCP connection to node2's host: masqueraded, a port from the NAT range
  const [lo, hi] = portRange();
  const u = await tcpTransferTo(lab, 'n1-c', { name: 'node2', ns: n2.ns, ip: n2.ip }, 200_000, 7007);
  assert.is(u.received.sha256, u.sent.sha256);
  const peer = splitPeer(u.received.peer);
  assert.is(peer.ip, n1.ip, `node2 saw ${u.received.peer}`);
  assert.ok(peer.port >= lo && peer.port <= hi, `source port ${peer.port} in ${lo}-${hi}`);
  // a ping to node2: masqueraded too (conntrack: the reply tuple is addressed to node1)
  assert.is(lab.ping('n1-c', n2.ip, 2, 56, ['-W', '3']).received, 2);
  assert.ok(conntrack('node1').some((l) => l.includes(`src=${a.ip} dst=${n2.ip} type=8`) && l.includes(`src=${n2.ip} dst=${n1.ip} type=0`)), 'the echo masqueraded');
  // UDP to node2: the pod's address (a pod's reply to node2's own UDP flow looks the same to the
  // kernel), so counted egress, not egress_nat (which counts what the table masquerades)
  const srv = await server(n2.ns, 'udp-echo', n2.ip, 7010);
  try {
    const counters = async () => ((await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> }).reasons;
    const before = await counters();
    const r = await peerJson(a.ns, ['udp-ask', n2.ip, '7010', '0', '3000'], 3000);
    assert.is(r.answered, true, JSON.stringify(r));
    assert.ok(srv.peers().length >= 1 && srv.peers().every((p) => splitPeer(p).ip === a.ip), `node2 saw ${srv.peers()}`);
    const after = await counters();
    assert.is(after.egress_nat ?? 0, before.egress_nat ?? 0, `nothing counted egress_nat: ${JSON.stringify(after)}`);
    assert.ok((after.egress ?? 0) >= (before.egress ?? 0) + srv.peers().length, `counted egress: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  } finally {
    kill(srv.proc);
  }
});

test('node2\'s own connections to a natOutgoing pod on node1: answered with the pod\'s address (TCP, UDP, ping), never masqueraded', async () => {
  const a = lab.pod('n1-c');
  const n2 = lab.node('node2');
  const tcp = await server(a.ns, 'tcp-echo', a.ip, 7011);
  const udp = await server(a.ns, 'udp-echo', a.ip, 7012);
  try {
    // a masqueraded SYN-ACK (another address, another port) would never complete the connection
    const r = await peerJson(n2.ns, ['tcp-flows', a.ip, '7011', '3', '5000'], 5000);
    assert.equal([r.ok, r.failed], [3, 0], JSON.stringify(r));
    const u = await peerJson(n2.ns, ['udp-ask', a.ip, '7012', '0', '3000'], 3000);
    assert.is(u.answered, true, JSON.stringify(u));
    assert.is(splitPeer(u.from as string).ip, a.ip, `the answer came from ${u.from}`);
    assert.is(splitPeer(u.from as string).port, 7012);
    const senders = new Set([...tcp.peers(), ...udp.peers()].map((p) => splitPeer(p).ip));
    // node2's own packets to a pod on another node leave from its VXLAN tunnel address (the lab's
    // pool is VXLAN), as a Calico node's through vxlan.calico: not masqueraded to node1's address
    assert.equal([...senders], [n2.vtep], 'the pod saw node2\'s tunnel address');
    const ping = inNs(n2.ns, ['ping', '-c', '2', '-i', '0.2', '-W', '3', a.ip], true);
    assert.match(ping, / 2 received/, `node2 pings the pod: ${ping}`);
  } finally {
    kill(tcp.proc);
    kill(udp.proc);
  }
});

/** A counter of the node's /proc/net/snmp (e.g. "Ip" "InAddrErrors"). */
function snmp(ns: string, group: string, field: string): number {
  const lines = inNs(ns, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith(`${group}: `));
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1).map(Number);
  return values[names.indexOf(field)];
}

test('the kernel transit drop: pod frames podway forwards stop before conntrack and routing; pod to node still reaches the kernel', async () => {
  const n1 = lab.node('node1');
  const a = lab.pod('n1-a');
  const set = inNs(n1.ns, ['nft', 'list', 'set', 'ip', 'podway', 'pods']);
  for (const pod of ['n1-a', 'n1-b', 'n1-c', 'n1-d']) assert.match(set, `"${lab.pod(pod).ifname}"`, `${pod}'s veth in the set: ${set}`);
  assert.not.match(set, lab.pod('n1-tap').ifname, 'a tap pod is not seen by the kernel: not in the set');
  const before = (await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as { nat: { podTransit: number } };
  const errs = snmp(n1.ns, 'Ip', 'InAddrErrors');
  // to a remote pod (forwarded by podway) and to a local one: both dropped by the chain
  for (const dst of ['n2-b', 'n1-b']) {
    const r = lab.ping('n1-a', lab.pod(dst).ip, 3, 56, ['-W', '3']);
    assert.is(r.received, 3, `n1-a -> ${dst}: ${JSON.stringify(r)}\n${logTail(lab)}`);
  }
  // to its own node: the kernel answers (the chain lets the node's own addresses through)
  const r = lab.ping('n1-a', n1.ip, 3, 56, ['-W', '3']);
  assert.is(r.received, 3, `n1-a -> node1: ${JSON.stringify(r)}`);
  // (the nft counters in `podway counters` are up to NFT_COUNTERS_MAX_AGE_MS old: asked again until then)
  let after = before;
  assert.ok(await until(async () => {
    after = (await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as { nat: { podTransit: number } };
    return after.nat.podTransit - before.nat.podTransit >= 6;
  }, 10_000), `pod_transit counted the 6 forwarded echo requests: ${JSON.stringify([before.nat, after.nat])}`);
  // Without the chain, each forwarded frame ended in the kernel's route lookup (forwarding=0 on
  // the veth) and was counted there.
  assert.is(snmp(n1.ns, 'Ip', 'InAddrErrors') - errs, 0, 'the kernel never routed (and dropped) a forwarded frame');
  assert.ok(!conntrack('node1').some((l) => l.includes(`src=${a.ip} dst=${lab.pod('n2-b').ip}`)), 'no conntrack entry for the forwarded flow');
});

test('the outside saw nothing but node addresses', async () => {
  await sleep(500);
  const srcs = new Set([...dumpOut.matchAll(/ IP (\d+\.\d+\.\d+\.\d+)(?:\.\d+)? > /g)].map((m) => m[1]));
  srcs.delete(outside.ip);
  srcs.delete('203.0.113.1'); // the router, about its own link
  assert.ok(srcs.size >= 1);
  const ips = nodeIps();
  assert.ok([...srcs].every((s) => ips.has(s)), `sources seen: ${[...srcs].join(', ')}`);
  kill(dump);
});

test('natOutgoing flips live: off leaves with the pod address, on again with the node address', async () => {
  const srv = await server(outside.ns, 'udp-echo', outside.ip, 7008);
  const natpools = () => inNs(lab.node('node1').ns, ['nft', 'list', 'set', 'ip', 'podway', 'natpools']);
  try {
    const pod = lab.pod('n1-d');
    lab.natOutgoing = false;
    lab.setMode('vxlan');
    assert.ok(await until(() => !natpools().includes('10.244.0.0/16'), 10_000), 'set emptied');
    // podway status reports what the table now holds, not the start spec.
    assert.ok(await until(async () => (await natStatus('node1')).natPools.length === 0, 10_000), `status after the flag went off: ${JSON.stringify(await natStatus('node1'))}`);
    const st = await natStatus('node1');
    assert.ok(st.updates >= 1, JSON.stringify(st));
    assert.match(podwayStatusText('node1'), /natOutgoing from no pool/);
    const off = await peerJson(pod.ns, ['udp-ask', outside.ip, '7008', '0', '1500'], 1500);
    assert.is(off.answered, false, 'no route back to a pod address from the outside');
    assert.ok(srv.peers().map(splitPeer).some((p) => p.ip === pod.ip), `the outside saw the pod address: ${srv.peers()}`);
    lab.natOutgoing = true;
    lab.setMode('vxlan');
    assert.ok(await until(() => natpools().includes('10.244.0.0/16'), 10_000), 'set filled');
    assert.ok(await until(async () => (await natStatus('node1')).natPools.includes('10.244.0.0/16'), 10_000), `status after the flag went on: ${JSON.stringify(await natStatus('node1'))}`);
    const on = await peerJson(pod.ns, ['udp-ask', outside.ip, '7008', '0', '3000'], 3000);
    assert.is(on.answered, true);
    assert.is(splitPeer(srv.peers().pop()!).ip, lab.node('node1').ip);
  } finally {
    kill(srv.proc);
  }
});

test('a crashed run\'s table is replaced at the next start; --nat-max-flows refuses and counts; the tables stay at stop, podway cleanup removes them', async () => {
  const n = lab.node('node2');
  n.proc!.kill('SIGKILL');
  await until(() => n.proc!.exitCode !== null || n.proc!.signalCode !== null, 5000);
  n.proc = null;
  assert.equal(tablesIn(n.ns), PODWAY_TABLES, 'left behind by the crash');
  // restarted with Felix's other natOutgoingExclusions, from Felix's variable
  await lab.startPodway('node2', 20_000, ['--nat-udp-timeout', String(UDP_TIMEOUT_S), '--nat-max-flows', '40'], { FELIX_NATOUTGOINGEXCLUSIONS: 'IPPoolsAndHostIPs' });
  assert.equal(tablesIn(n.ns), PODWAY_TABLES);
  assert.match(inNs(n.ns, ['nft', 'list', 'table', 'ip', 'podway']), 'ct count over 40');
  // IPPoolsAndHostIPs: a pod's connection to another node keeps the pod's address
  assert.not.match(inNs(n.ns, ['nft', 'list', 'chain', 'ip', 'podway', 'postrouting']), 'daddr @nodes');
  assert.match(podwayStatusText('node2'), 'natOutgoingExclusions IPPoolsAndHostIPs (to other nodes: the pod\'s address)');
  const toNode1 = await tcpTransferTo(lab, 'n2-c', { name: 'node1', ns: lab.node('node1').ns, ip: lab.node('node1').ip }, 100_000, 7013);
  assert.is(toNode1.received.sha256, toNode1.sent.sha256);
  assert.is(splitPeer(toNode1.received.peer).ip, lab.pod('n2-c').ip, 'IPPoolsAndHostIPs: node1 saw the pod');
  assert.is(lab.ping('n2-a', outside.ip, 3, 56, ['-W', '3']).received, 3, 'NAT works after the restart');
  // The table is bounded: with 40 flows held, the next ones are refused and counted.
  const srv = await server(outside.ns, 'tcp-echo', outside.ip, 7009);
  try {
    const r = await peerJson(lab.pod('n2-b').ns, ['tcp-flows', outside.ip, '7009', '50', '4000'], 4000);
    assert.ok((r.ok as number) <= 40 && (r.ok as number) >= 30, `at most the limit answered: ${JSON.stringify(r)}`);
    assert.ok((r.failed as number) >= 10, JSON.stringify(r));
    const c = (await controlRequest(n.control, { cmd: 'counters' }, 5000)) as { nat: { refused: number } };
    assert.ok(c.nat.refused >= 10, `refusals counted: ${JSON.stringify(c.nat)}`);
  } finally {
    kill(srv.proc);
  }
  assert.is(await lab.stopPodway('node2', 20_000), 0); // (bounded: exits by itself, not by SIGKILL, on a loaded host too)
  // As a crash leaves them: the next start replaces them in one transaction (docs/failures.md, "Restarts and failures").
  assert.equal(tablesIn(n.ns), PODWAY_TABLES, 'left at stop for the next start');
  const out = podwayCleanup(n);
  for (const t of PODWAY_TABLES) assert.match(out, `removed nftables ${t}`);
  assert.is(inNs(n.ns, ['nft', 'list', 'tables']).trim(), '', 'removed by podway cleanup');
  assert.match(podwayCleanup(n), /^nothing of podway's was left here$/m, 'a second cleanup finds nothing');
});

test.run();
