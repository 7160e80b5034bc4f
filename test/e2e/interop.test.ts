/**
 * Interop with the Linux kernel's own Calico dataplane (root, network namespaces).
 *
 * node1 runs podway. node2 runs NO podway: its namespace is programmed the way Felix programs a
 * VXLAN node (per Calico's documented felix/ behaviour): a `vxlan.calico` device (VNI 4096,
 * port 4789, learning off, MAC 0x66+sha1(nodename)[0:5], VTEP IP /32, MTU 1450), for node1 a
 * permanent neighbour VTEP-IP -> VTEP-MAC, a permanent FDB entry VTEP-MAC -> node IP and the
 * route `<block> via <VTEP IP> dev vxlan.calico onlink`; for its own pods the kernel routes
 * `<podIP>/32 dev caliX scope link`, a permanent neighbour podIP -> pod MAC, proxy_arp=1 and
 * proxy_delay=0 on the cali interfaces, forwarding on, and a blackhole for its block.
 *
 * node2's pods are veth only: the kernel cannot serve a TAP/TUN pod (there is nothing holding the
 * device's other end). node1 keeps a TAP pod, served by podway.
 *
 * IPIP interop is not tested: this kernel has no `ipip` module (no tunl0 / `ip link add type
 * ipip`), so node2 could not terminate IP-in-IP. podway's IPIP path is covered podway-to-podway in
 * the other end-to-end tests.
 *
 * The one Lab (one podway, one kernel node) is shared by the tests of this file and removed at the
 * end, and also on any exit or signal (guard()).
 */
import { configureKernelNode } from '../../src/lab/kernel';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { Lab, LabNode, run } from '../../src/lab/lab';
import { deriveVtepMac } from '../../src/control';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, kindOf, routes, tcpTransfer, tcpTransferFromNs, pingIn, logTail, until } from './e2e-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }, { name: 'tap-1', type: 'tap' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }, { name: 'web-2b', type: 'veth' as const }] },
];

let lab: Lab | null = null;
let ok = false;


test.before(async () => {
  if (!isRoot()) throw new Error('interop tests need root (network namespaces)');
  try {
    execFileSync('ip', ['link', 'add', 'pwprobe0', 'type', 'ipip'], { stdio: 'ignore' });
    execFileSync('ip', ['link', 'del', 'pwprobe0'], { stdio: 'ignore' });
    console.log('note: this kernel can make ipip devices; an IPIP interop test could be added');
  } catch {
    /* expected here: no ipip module */
  }
  lab = guard(new Lab(SPEC));
  lab.build(); // writes the resource file with node1 and node2 (Node with VTEP, BlockAffinity, WEPs)
  // node2 programmed as Felix does for VXLAN (no podway there): src/lab/kernel.ts
  configureKernelNode(lab, lab.node('node2'), 'vxlan');
  await lab.startPodway('node1', undefined, ['--workers', '1']); // one thread: counters read by port name
  const n2block = lab.node('node2').block;
  const up = await until(async () => (await kindOf(lab!.node('node1'), n2block)) === 'vxlan', 10_000);
  assert.ok(up, `node1 has no vxlan route to ${n2block}`);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('node1 routes node2 block over VXLAN to the kernel VTEP', async () => {
  const n1 = lab!.node('node1');
  const n2 = lab!.node('node2');
  const r = (await routes(n1)).find((x) => x.cidr === n2.block)!;
  assert.is(r.kind, 'vxlan');
  assert.is(r.via, n2.ip);
  assert.is((r as unknown as { vtepMac: string }).vtepMac, deriveVtepMac('node2'));
  // the kernel device really has that MAC
  const link = JSON.parse(run('ip', ['-j', '-n', n2.ns, 'link', 'show', 'vxlan.calico']))[0];
  assert.is(link.address, deriveVtepMac('node2'));
  assert.is(link.mtu, 1450);
});

const PAIRS: [string, string][] = [
  ['web-1', 'web-2'],
  ['web-2', 'web-1'],
  ['tap-1', 'web-2b'],
  ['web-2b', 'tap-1'],
];

for (const [a, b] of PAIRS) {
  test(`ping ${a} -> ${b}: 0% loss, TTL 62`, () => {
    const r = lab!.ping(a, lab!.pod(b).ip, 5, 56, ['-W', '3']); // loss, not latency, is under test
    assert.is(r.loss, 0, `${a} -> ${b}: ${JSON.stringify(r)}`);
    assert.is(r.ttl, 62, `${a} -> ${b}: two forwarding hops (podway, kernel)`);
  });
}

test('large pings at the pod MTU (1450) both ways', () => {
  // 1450 - 20 (IP) - 8 (ICMP) = 1422 bytes of payload, DF set: must fit the tunnel exactly.
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1'], ['tap-1', 'web-2b']]) {
    const r = lab!.ping(a, lab!.pod(b).ip, 3, 1422, ['-M', 'do', '-W', '3']);
    assert.is(r.loss, 0, `${a} -> ${b} at 1450 bytes: ${JSON.stringify(r)}`);
  }
});

const MB = 1 << 20;
for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1'], ['tap-1', 'web-2b'], ['web-2b', 'tap-1']] as [string, string][]) {
  test(`TCP ${a} -> ${b}: 4 MiB, sha256 equal on both sides`, async () => {
    const t = await tcpTransfer(lab!, a, b, 4 * MB);
    assert.is(t.received.bytes, 4 * MB);
    assert.is(t.received.sha256, t.sent.sha256);
  });
}

test('node1\'s VTEP address is a local address as on a Calico node: the kernel node pings it, and node1 reaches a pod behind the kernel node from it', async () => {
  const n1 = lab!.node('node1');
  const n2 = lab!.node('node2');
  const web2 = lab!.pod('web-2');
  const onHostPort = () => (JSON.parse(run('ip', ['-j', '-n', n1.ns, 'addr', 'show', 'dev', 'podway0']))[0]?.addr_info ?? []).some((a: { local: string; prefixlen: number }) => a.local === n1.vtep && a.prefixlen === 32);
  assert.ok(await until(onHostPort, 10_000), `podway0 holds node1's VTEP address ${n1.vtep}/32`);
  // from node2's own stack (its source: vxlan.calico's address), through the kernel's VXLAN
  const p = await pingIn(n2.ns, n1.vtep, 5, 0.05, ['-W', '3']).done;
  assert.is(p.loss, 0, `kernel node2 -> node1's VTEP ${n1.vtep}: ${p.out}`);
  const q = await pingIn(n1.ns, web2.ip, 5, 0.05, ['-W', '3']).done;
  assert.is(q.loss, 0, `node1 -> web-2 (behind the kernel node): ${q.out}`);
  // the pod sees node1's VTEP address as the source: its reply goes back through vxlan.calico
  const t = await tcpTransferFromNs({ name: 'node1', ns: n1.ns }, { name: 'web-2', ns: web2.ns, ip: web2.ip }, MB, 5311);
  assert.is(t.received.sha256, t.sent.sha256);
  assert.is(t.received.peer.split(':')[0], n1.vtep, `web-2 saw ${t.received.peer}`);
});

test('the traffic really crossed the kernel VXLAN device; podway dropped nothing it should forward', async () => {
  const n2 = lab!.node('node2');
  const st = JSON.parse(run('ip', ['-s', '-j', '-n', n2.ns, 'link', 'show', 'vxlan.calico']))[0].stats64;
  // Bytes, not packets: the pods' offloads are on, so the kernel's VXLAN device counts a TSO
  // super-frame as one packet. Each direction carried at least one 4 MiB transfer.
  assert.ok(st.rx.bytes > 4 * MB && st.tx.bytes > 4 * MB, `vxlan.calico stats ${JSON.stringify(st)}`);
  const c = (await controlRequest(lab!.node('node1').control, { cmd: 'counters' })) as { reasons: Record<string, number>; ports: { port: string; txGsoFrames?: number; txGsoSegments?: number; txGsoRejected?: number }[] };
  // podway's VXLAN went out as UDP GSO sends (transmit GSO, on by default): the kernel segmented
  // them and node2's kernel vxlan took the datagrams (with their filled outer UDP checksum)
  const ul = c.ports.find((p) => p.port.startsWith('underlay('));
  assert.ok((ul?.txGsoFrames ?? 0) > 0 && (ul?.txGsoRejected ?? 0) === 0, `node1 underlay ${JSON.stringify(ul)}`);
  // Allowed: the pods' own IPv6 link traffic (their link-local DAD, MLD reports and the gateway's
  // NS/RS, which podway answers or counts; this lab has no IPv6 addresses) and podway's own
  // ARP/ICMP work. Anything else (unknown tunnel source, not our MAC, bad VXLAN, checksum...) is a bug.
  // csum_completed: a tunnelled packet whose checksum field equals its pseudo-header sum (about 1
  // in 65,536 right checksums do; completing one leaves it as it was).
  const allowed = new Set(['unsupported_ethertype', 'arp_replied', 'gateway_announced', 'arp_learned', 'icmp_sent', 'to_host', 'csum_completed', 'ndp_replied', 'ndp_not_gateway', 'ndp_advert_from_pod', 'multicast6']);
  const bad = Object.entries(c.reasons).filter(([k]) => !allowed.has(k));
  assert.equal(bad, [], JSON.stringify(c.reasons));
});

test('with --no-tx-gso: node1 sends every VXLAN datagram on its own; TCP both ways still sha256 equal', async () => {
  await lab!.stopPodway('node1');
  await lab!.startPodway('node1', undefined, ['--no-tx-gso', '--workers', '1']);
  const n2block = lab!.node('node2').block;
  assert.ok(await until(async () => (await kindOf(lab!.node('node1'), n2block)) === 'vxlan', 10_000), 'vxlan route back');
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1']]) {
    const t = await tcpTransfer(lab!, a, b, 4 * MB);
    assert.is(t.received.bytes, 4 * MB);
    assert.is(t.received.sha256, t.sent.sha256);
  }
  const c = (await controlRequest(lab!.node('node1').control, { cmd: 'counters' })) as { ports: { port: string; tx: number; txGsoFrames?: number }[] };
  const ul = c.ports.find((p) => p.port.startsWith('underlay('));
  assert.ok(ul && ul.tx > 0 && (ul.txGsoFrames ?? 0) === 0, `node1 underlay ${JSON.stringify(ul)}`);
  ok = true;
});

/** Packets an iptables rule in `ns` counted (the rule is the chain's only one with `tag` in its comment). */
function counted(ns: string, chain: string, tag: string): number {
  const rows = run('ip', ['netns', 'exec', ns, 'iptables', '-t', 'mangle', '-nvxL', chain]).split('\n').filter((l) => l.includes(tag));
  assert.is(rows.length, 1, `${chain} rule ${tag}`);
  return Number(rows[0].trim().split(/\s+/)[0]);
}

test('ECN (RFC 6040) against the kernel\'s vxlan: podway\'s outer header carries the pod\'s ECT(0) to node2, node2\'s kernel decapsulates it; a CE the underlay puts on node2\'s outer header reaches the pod on node1, and around a Not-ECT packet it is dropped, counted', async () => {
  ok = false;
  const n2 = lab!.node('node2');
  const web1 = lab!.pod('web-1'), web2 = lab!.pod('web-2');
  const ipt = (ns: string, ...args: string[]) => run('ip', ['netns', 'exec', ns, 'iptables', '-t', 'mangle', ...args]);
  const rules: [string, string[]][] = [
    // node2: VXLAN arriving with an outer ECT(0); web-2 and web-1: echo requests arriving ECT(0) / CE
    [n2.ns, ['PREROUTING', '-p', 'udp', '--dport', '4789', '-m', 'ecn', '--ecn-ip-ect', '2', '-m', 'comment', '--comment', 'pw-ect0-in']],
    [web2.ns, ['PREROUTING', '-p', 'icmp', '--icmp-type', 'echo-request', '-m', 'ecn', '--ecn-ip-ect', '2', '-m', 'comment', '--comment', 'pw-ect0-pod']],
    [web1.ns, ['PREROUTING', '-p', 'icmp', '--icmp-type', 'echo-request', '-m', 'ecn', '--ecn-ip-ect', '3', '-m', 'comment', '--comment', 'pw-ce-pod']],
    // node2's underlay "marks congestion": CE on every VXLAN packet node2's kernel sends
    [n2.ns, ['POSTROUTING', '-p', 'udp', '--dport', '4789', '-j', 'TOS', '--set-tos', '0x03/0x03', '-m', 'comment', '--comment', 'pw-mark-ce']],
  ];
  try {
    for (const [ns, r] of rules.slice(0, 3)) ipt(ns, '-A', ...r);
    // web-1 -> web-2 with ECT(0) (ping -Q 2): podway's outer header ECT(0), the kernel's decapsulation keeps it inside
    const a = lab!.ping('web-1', web2.ip, 3, 56, ['-Q', '2', '-W', '3']);
    assert.is(a.loss, 0, JSON.stringify(a));
    assert.ok(counted(n2.ns, 'PREROUTING', 'pw-ect0-in') >= 3, 'node2 received VXLAN with an outer ECT(0)');
    assert.ok(counted(web2.ns, 'PREROUTING', 'pw-ect0-pod') >= 3, 'web-2 received the requests ECT(0)');
    const before = (await controlRequest(lab!.node('node1').control, { cmd: 'counters' })) as { reasons: Record<string, number> };
    ipt(rules[3][0], '-A', ...rules[3][1]);
    // web-2 -> web-1 with ECT(0), the outer header CE on the way: web-1 gets CE inside
    const b = lab!.ping('web-2', web1.ip, 3, 56, ['-Q', '2', '-W', '3']);
    assert.is(b.loss, 0, JSON.stringify(b));
    assert.ok(counted(web1.ns, 'PREROUTING', 'pw-ce-pod') >= 3, 'web-1 received the requests CE');
    // a Not-ECT ping under an outer CE: dropped by podway (RFC 6040), as a kernel node would
    const c = lab!.ping('web-2', web1.ip, 3, 56, ['-W', '2']);
    assert.is(c.loss, 100, JSON.stringify(c));
    const after = (await controlRequest(lab!.node('node1').control, { cmd: 'counters' })) as { reasons: Record<string, number> };
    assert.ok((after.reasons.tunnel_ecn_not_ect ?? 0) - (before.reasons.tunnel_ecn_not_ect ?? 0) >= 3, `tunnel_ecn_not_ect: ${JSON.stringify(after.reasons)}`);
  } finally {
    for (const [ns, r] of rules) run('ip', ['netns', 'exec', ns, 'iptables', '-t', 'mangle', '-D', ...r], { allowFail: true });
  }
  ok = true;
});

test.run();
