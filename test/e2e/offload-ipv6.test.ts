/**
 * podway <-> podway with VXLAN over an IPv6 underlay whose offloads are on (a kind-style veth
 * underlay, Lab's `underlayOffloads`), the pods' offloads on too: the IPv6 counterpart of
 * offload.test.ts's `underlay offloads on` VXLAN case, which runs over IPv4 only (outer IPv6 is
 * covered at the native level, test/native/rxsuper.test.ts and uso.test.ts).
 *
 * 4 MB of TCP each way between veth pods on two nodes to their IPv6 addresses, content checked
 * (sha256 on both ends, test/e2e/tcp-peer.ts). The sending node sends runs of VXLAN-over-IPv6
 * datagrams as UDP GSO messages (native/uso.c); the underlay veth hands them to the other node
 * whole, and that node's underlay port must merge them into SUPER descriptors (native/rxsuper.h,
 * "A podway peer's GSO messages") that its pod port sends on as GSO messages. The counters must
 * show it on both nodes, so the test fails if this path silently falls back to cutting the
 * messages into datagrams; podway's `vxlan6` table counter shows the tunnel packets were IPv6.
 * Root and network namespaces; the lab is removed in `after`, failed or not.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, routes, tcpTransferTo, logTail, until } from './e2e-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'a' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];
const MB4 = 4 << 20;

let lab: Lab | null = null;
let ok = false;

interface PortRow {
  port: string; rx: number; rxGsoFrames?: number; rxGsoBad?: number; rxGsoDropped?: number; rxMergeFrames?: number; rxMergeSegments?: number;
  txGsoFrames?: number; txGsoSegments?: number; txGsoRejected?: number; txSuperFrames?: number; txSuperCut?: number; txSuperLost?: number;
}
interface Counters { reasons: Record<string, number>; ports: PortRow[] }

async function counters(node: string): Promise<Counters> {
  return (await controlRequest(lab!.node(node).control, { cmd: 'counters' }, 5000)) as Counters;
}
const underlay = (c: Counters) => c.ports.find((p) => p.port.startsWith('underlay('))!;
const pod = (c: Counters, name: string) => c.ports.find((p) => p.port === lab!.pod(name).ifname)!;

/** podway's tunnel table counters on the node (kernel copies of tunnel packets taken and dropped). */
function tunnelCounts(node: string): Record<string, number> {
  const out = execFileSync('ip', ['netns', 'exec', lab!.node(node).ns, 'nft', '-j', 'list', 'counters', 'table', 'inet', 'podway_tunnels'], { encoding: 'utf8' });
  const r: Record<string, number> = {};
  for (const x of (JSON.parse(out) as { nftables: { counter?: { name: string; packets: number } }[] }).nftables) if (x.counter) r[x.counter.name] = x.counter.packets;
  return r;
}

test.before(async () => {
  if (!isRoot()) throw new Error('offload e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true, underlayOffloads: true, podOffloads: true }));
  lab.build();
  // one forwarding thread: counters are read by port name (no [wN] tags)
  await lab.startPodway('node1', undefined, ['--workers', '1']);
  await lab.startPodway('node2', undefined, ['--workers', '1']);
  for (const [from, to] of [['node1', 'node2'], ['node2', 'node1']]) {
    const block6 = lab.node(to).block6!;
    assert.ok(await until(async () => (await routes(lab!.node(from))).find((r) => r.cidr === block6)?.kind === 'vxlan', 10_000), `${from} has no IPv6 VXLAN route to ${block6}`);
  }
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 20));
  await teardown(lab);
});

test('the underlay veths keep their tx offloads, the pods theirs', () => {
  for (const n of ['node1', 'node2']) {
    const f = execFileSync('ip', ['netns', 'exec', lab!.node(n).ns, 'ethtool', '-k', 'eth0'], { encoding: 'utf8' });
    assert.is(/tx-checksumming: (\w+)/.exec(f)?.[1], 'on', `${n}'s underlay`);
  }
  const web1 = lab!.pod('web-1');
  const f = execFileSync('ip', ['netns', 'exec', web1.ns, 'ethtool', '-k', web1.podIf], { encoding: 'utf8' });
  assert.is(/tcp-segmentation-offload: (\w+)/.exec(f)?.[1], 'on', 'web-1');
});

test('VXLAN over IPv6, underlay offloads on: 4 MB TCP each way between pods\' IPv6 addresses, sha256 equal; each node merges the peer\'s UDP GSO messages whole (SUPER descriptors) and sends them to its pod as GSO messages', async () => {
  for (const [from, to, port] of [['web-1', 'web-2', 5331], ['web-2', 'web-1', 5332]] as const) {
    const rxNode = lab!.pod(to).node, txNode = lab!.pod(from).node;
    const rx0 = await counters(rxNode), tx0 = await counters(txNode), tun0 = tunnelCounts(rxNode);
    const dst = lab!.pod(to);
    const t = await tcpTransferTo(lab!, from, { name: to, ns: dst.ns, ip: dst.ip6! }, MB4, port);
    assert.is(t.sent.bytes, MB4, `${from} -> ${to}: sent`);
    assert.is(t.received.bytes, MB4, `${from} -> ${to}: received`);
    assert.is(t.received.sha256, t.sent.sha256, `${from} -> ${to}: sha256`);
    assert.ok(t.received.peer.startsWith(lab!.pod(from).ip6!), `${from} -> ${to}: over IPv6 (seen from ${t.received.peer})`);
    const rx1 = await counters(rxNode), tx1 = await counters(txNode), tun1 = tunnelCounts(rxNode);
    const d = (a: PortRow, b: PortRow, k: keyof PortRow) => Number(b[k] ?? 0) - Number(a[k] ?? 0);
    const su = underlay(tx0), su1 = underlay(tx1), ru = underlay(rx0), ru1 = underlay(rx1);
    const rp = pod(rx0, to), rp1 = pod(rx1, to);
    const v6 = (tun1.vxlan6 ?? 0) - (tun0.vxlan6 ?? 0), v4 = (tun1.vxlan ?? 0) - (tun0.vxlan ?? 0);
    console.log(`  ${from} -> ${to}: 4 MB in ${t.ms} ms; ${txNode} underlay GSO sends ${d(su, su1, 'txGsoFrames')} (${d(su, su1, 'txGsoSegments')} datagrams); ` +
      `${rxNode} underlay: merged whole ${d(ru, ru1, 'rxMergeFrames')} (${d(ru, ru1, 'rxMergeSegments')} datagrams), cut ${d(ru, ru1, 'rxGsoFrames')}; ` +
      `${to}'s port sent whole ${d(rp, rp1, 'txSuperFrames')}, cut ${d(rp, rp1, 'txSuperCut')}, lost ${d(rp, rp1, 'txSuperLost')}; tunnel table vxlan6 ${v6}, vxlan ${v4}`);
    // the sender's underlay: runs of VXLAN datagrams went out as GSO messages, none refused
    assert.ok(d(su, su1, 'txGsoFrames') > 0, `${txNode}: no GSO send on the underlay`);
    assert.is(d(su, su1, 'txGsoRejected'), 0, `${txNode}: the kernel rejected GSO sends`);
    // they came over IPv6: podway's vxlan6 rule took the kernel's copies (a GSO message counts
    // once; about as many as the GSO sends, half of them leaves room for a veth backlog drop)
    assert.ok(v6 > d(su, su1, 'txGsoFrames') / 2, `${rxNode}: only ${v6} IPv6 VXLAN packets taken from the kernel for ${d(su, su1, 'txGsoFrames')} GSO sends`);
    assert.ok(v4 < v6 / 10, `${rxNode}: ${v4} IPv4 VXLAN packets beside ${v6} IPv6 ones`);
    // the receiver's underlay merged them whole: SUPER descriptors of 2+ datagrams...
    const merged = d(ru, ru1, 'rxMergeFrames'), mergedSegs = d(ru, ru1, 'rxMergeSegments');
    assert.ok(merged > 0, `${rxNode}: the peer's GSO messages over IPv6, yet none became one descriptor`);
    assert.ok(mergedSegs > 2 * merged, `${rxNode}: merged descriptors of 2+ datagrams each (${mergedSegs} in ${merged})`);
    // ...carrying most of the stream (4 MB is ~3,100 datagrams of 1,358 bytes; cut ones carry the rest)
    assert.ok(mergedSegs > 1500, `${rxNode}: only ${mergedSegs} datagrams arrived in merged descriptors`);
    assert.is(d(ru, ru1, 'rxGsoBad'), 0, `${rxNode}: offload metadata podway found inconsistent`);
    assert.is(d(ru, ru1, 'rxGsoDropped'), 0, `${rxNode}: GSO messages podway could not take`);
    // and the pod port sent them on as GSO messages, none of their segments lost
    assert.ok(d(rp, rp1, 'txSuperFrames') > 0, `${rxNode}: no merged message reached ${to} as one GSO message`);
    assert.is(d(rp, rp1, 'txSuperLost'), 0, `${rxNode}: segments of a merged message not sent`);
    const reasons = rx1.reasons;
    assert.is(reasons.truncated ?? 0, 0, `${rxNode}: truncated frames`);
  }
  ok = true;
});

test.run();
