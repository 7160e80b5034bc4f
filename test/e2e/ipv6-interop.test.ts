/**
 * IPv6 interop with the Linux kernel's own Calico dataplane (root, network namespaces): node1
 * runs podway, node2 runs NO podway and is programmed as Felix programs a dual-stack VXLAN node
 * (src/lab/kernel.ts: `vxlan-v6.calico` with MAC 0x66 + sha1("node2-v6"), the IPv6 VTEP, a
 * permanent neighbour, FDB entry and `<block6> via <VTEP6> dev vxlan-v6.calico onlink` for node1;
 * proxy_ndp and `/128` routes for its pods). Pods on both ping each other over IPv6 both ways and
 * move TCP with the content checked; then the same unencapsulated.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configureKernelNode } from '../../src/lab/kernel';
import { Lab, run } from '../../src/lab/lab';
import { deriveVtepMac } from '../../src/control';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, routes, tcpTransferTo, logTail, until } from './e2e-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }, { name: 'tap-1', type: 'tap' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];

let lab: Lab | null = null;
let ok = false;

const ip6Of = (pod: string) => lab!.pod(pod).ip6!;
const reachable = (from: string, to: string) => until(() => lab!.ping(from, ip6Of(to), 1).received === 1, 10_000, 100);

test.before(async () => {
  if (!isRoot()) throw new Error('IPv6 interop tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true, podOffloads: false }));
  lab.build();
  configureKernelNode(lab, lab.node('node2'), 'vxlan');
  await lab.startPodway('node1', undefined, ['--workers', '1']); // one thread: counters read by port name
  const b6 = lab.node('node2').block6!;
  assert.ok(await until(async () => (await routes(lab!.node('node1'))).some((r) => r.cidr === b6 && r.kind === 'vxlan'), 10_000), `node1 routes ${b6} over VXLAN`);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab));
  await teardown(lab);
});

test('the kernel node has vxlan-v6.calico with Felix\'s IPv6 VTEP MAC, and podway uses it as the inner destination', async () => {
  const n2 = lab!.node('node2');
  const link = JSON.parse(run('ip', ['-j', '-n', n2.ns, 'link', 'show', 'vxlan-v6.calico']))[0];
  assert.is(link.address, deriveVtepMac('node2', 6));
  // both families' devices get the MTUs Felix gives them (no vxlanMTU/vxlanMTUV6 set: eth0's less the overhead)
  const eth0 = JSON.parse(run('ip', ['-j', '-n', n2.ns, 'link', 'show', 'eth0']))[0].mtu as number;
  assert.is(link.mtu, eth0 - 70, 'vxlan-v6.calico: eth0 less 70');
  assert.is(JSON.parse(run('ip', ['-j', '-n', n2.ns, 'link', 'show', 'vxlan.calico']))[0].mtu, eth0 - 50, 'vxlan.calico: eth0 less 50');
  const r = (await routes(lab!.node('node1'))).find((x) => x.cidr === n2.block6) as unknown as { vtepMac: string; via: string };
  assert.is(r.vtepMac, deriveVtepMac('node2', 6));
  assert.is(r.via, n2.ip6);
});

test('VXLAN over IPv6 with a kernel node: ping6 both ways (hop limit 62), TCP 4 MB both ways, content checked', async () => {
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1'], ['tap-1', 'web-2'], ['web-2', 'tap-1']]) {
    assert.ok(await reachable(a, b), `${a} -> ${b} reachable`);
    const p = lab!.ping(a, ip6Of(b), 5);
    assert.is(p.loss, 0, `${a} -> ${b}: loss`);
    assert.is(p.ttl, 62, `${a} -> ${b}: hop limit`);
  }
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1']]) {
    const dst = lab!.pod(b);
    const t = await tcpTransferTo(lab!, a, { name: b, ns: dst.ns, ip: ip6Of(b) }, 4 << 20, 5311);
    assert.is(t.received.sha256, t.sent.sha256, `${a} -> ${b}: content`);
  }
});

test('unencapsulated IPv6 with a kernel node: ping6 both ways, TCP both ways', async () => {
  lab!.setMode('direct');
  configureKernelNode(lab!, lab!.node('node2'), 'direct');
  const b6 = lab!.node('node2').block6!;
  assert.ok(await until(async () => (await routes(lab!.node('node1'))).some((r) => r.cidr === b6 && r.kind === 'direct'), 10_000), 'node1 switched');
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1']]) {
    assert.ok(await reachable(a, b), `${a} -> ${b} reachable`);
    assert.is(lab!.ping(a, ip6Of(b), 5).loss, 0, `${a} -> ${b}: loss`);
  }
  // both ways: podway's IPv6 TCP runs leave as GSO_TCPV6 sends the kernel node's stack takes,
  // and the kernel node's segments reach web-1 (coalesced by podway when a batch holds a run)
  for (const [a, b, port] of [['web-1', 'web-2', 5312], ['web-2', 'web-1', 5313]] as const) {
    const dst = lab!.pod(b);
    const t = await tcpTransferTo(lab!, a, { name: b, ns: dst.ns, ip: ip6Of(b) }, 2 << 20, port);
    assert.is(t.received.sha256, t.sent.sha256, `${a} -> ${b}: content`);
  }
  const c = (await controlRequest(lab!.node('node1').control, { cmd: 'counters' })) as { ports: { port: string; txGsoFrames?: number; txGsoRejected?: number; txGroFrames?: number }[] };
  const ul = c.ports.find((p) => p.port.startsWith('underlay('));
  console.log(`  node1 underlay: ${ul?.txGsoFrames ?? 0} GSO sends; web-1's veth: ${c.ports.find((p) => p.port === lab!.pod('web-1').ifname)?.txGroFrames ?? 0} super-frames`);
  assert.is(ul?.txGsoRejected ?? 0, 0, 'the kernel took every GSO send');
  ok = true;
});

// A dual-stack kernel node over a veth underlay with its offloads on (kind-style): its
// vxlan-v6.calico and vxlan.calico hand podway UDP-tunnel GSO super-frames (VXLAN over IPv6 with a
// TCPv6 super-frame inside; over IPv4 with TCPv4) and partial inner checksums; podway's underlay
// port hands each TCP super-frame on whole to the pod (native/rxsuper.c) and completes the partial
// checksums (native/gso.c). Its own lab, pods with offloads on.
test('underlay offloads on, pod offloads on: TCP 4 MB each way over IPv6 and IPv4 VXLAN with a kernel node, content checked, tunnel super-frames handed on whole', async () => {
  const l = guard(new Lab(SPEC.map((n) => ({ ...n, pods: n.pods.filter((p) => p.type === 'veth') })), { dualStack: true, underlayOffloads: true }));
  let passed = false;
  try {
    l.build();
    configureKernelNode(l, l.node('node2'), 'vxlan');
    await l.startPodway('node1', undefined, ['--workers', '1']);
    const b6 = l.node('node2').block6!;
    assert.ok(await until(async () => (await routes(l.node('node1'))).some((r) => r.cidr === b6 && r.kind === 'vxlan'), 10_000), `node1 routes ${b6} over VXLAN`);
    let port = 5320;
    for (const family of [6, 4]) {
      for (const [a, b] of [['web-2', 'web-1'], ['web-1', 'web-2']]) {
        const dst = l.pod(b);
        const ip = family === 6 ? dst.ip6! : dst.ip;
        assert.ok(await until(() => l.ping(a, ip, 1).received === 1, 10_000, 100), `${a} -> ${b} (IPv${family}) reachable`);
        const t = await tcpTransferTo(l, a, { name: b, ns: dst.ns, ip }, 4 << 20, port++);
        assert.is(t.received.sha256, t.sent.sha256, `IPv${family} ${a} -> ${b}: content`);
      }
    }
    const c = (await controlRequest(l.node('node1').control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number>; ports: { port: string; rxGsoFrames?: number; rxGsoBad?: number; rxGsoDropped?: number; rxCsumCompleted?: number; rxSuperFrames?: number; txSuperFrames?: number; txSuperLost?: number }[] };
    const ul = c.ports.find((p) => p.port.startsWith('underlay('))!;
    const pod = c.ports.find((p) => p.port.startsWith('cali'))!;
    console.log(`  node1 underlay: tunnel super-frames handed on whole ${ul.rxSuperFrames ?? 0} (sent whole to web-1 ${pod.txSuperFrames ?? 0}), segmented ${ul.rxGsoFrames ?? 0}, partial checksums completed ${ul.rxCsumCompleted ?? 0}; drop reasons ${JSON.stringify(c.reasons)}`);
    assert.ok((ul.rxSuperFrames ?? 0) > 0, 'the kernel node sent tunnel super-frames, yet none was handed on whole');
    assert.is(ul.rxSuperFrames, pod.txSuperFrames, 'every one reached web-1 as one GSO message');
    assert.is(pod.txSuperLost ?? 0, 0, 'segments of a super-frame lost');
    assert.is(ul.rxGsoBad ?? 0, 0, 'offload metadata found inconsistent');
    assert.is(ul.rxGsoDropped ?? 0, 0, 'super-frames not segmented');
    assert.is(c.reasons.truncated ?? 0, 0, 'truncated frames');
    // the kernel's copy of the IPv6 VXLAN was dropped by podway's table, not answered
    const nft = JSON.parse(run('ip', ['netns', 'exec', l.node('node1').ns, 'nft', '-j', 'list', 'counters', 'table', 'inet', 'podway_tunnels'])) as { nftables: { counter?: { name: string; packets: number } }[] };
    const vxlan6 = nft.nftables.find((x) => x.counter?.name === 'vxlan6')?.counter?.packets ?? 0;
    assert.ok(vxlan6 > 10, `IPv6 VXLAN packets dropped in the kernel: ${vxlan6}`);
    passed = true;
  } finally {
    if (!passed) console.log(logTail(l));
    await teardown(l);
  }
});

test.run();
