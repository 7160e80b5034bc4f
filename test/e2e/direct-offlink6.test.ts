/**
 * IPv6 across a router (root, network namespaces): node2's IPv6 address is on another IPv6 subnet
 * than node1's and node3's, behind the fabric router (Lab routed6). An unencapsulated IPv6 pool,
 * then IPv6 VXLAN: podway sends a pod's IPv6 packet (or its VXLAN outer packet) for node2 to the
 * kernel's IPv6 next hop towards node2's address (the router), as Calico's node would, and node2
 * likewise back, instead of soliciting an address that is not on its link (nexthops6.ts gw6,
 * directGateway6; host.ts underlayNextHops6).
 *
 *   node1 10.99.0.1 fd99::1/64 (subnet a): web-1, tap-1      node3 10.99.0.3 fd99::3/64: web-3
 *   node2 10.98.0.2 fd98::2/64 (subnet b, behind the router fd98::fe / fd99::fe): web-2
 *
 * It used to solicit fd98::2 on node1's link (and node2 fd99::1 on its own), never answered:
 * both directions dropped as neighbor_failed, and a false "underlay neighbour unreachable".
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, run, type LabNode } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-client';
import { guard, teardown, isRoot, logTail, until } from './e2e-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }, { name: 'tap-1', type: 'tap' as const }] },
  { name: 'node2', subnet: 'b' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
  { name: 'node3', subnet: 'a' as const, pods: [{ name: 'web-3', type: 'veth' as const }] },
];

interface Row { cidr: string; kind: string; node: string; via: string; gateway?: string; nextHopMac: string }

let lab: Lab | null = null;
let ok = false;

const rows = async (n: LabNode) => (await controlRequest(n.control, { cmd: 'routes' }, 5000)) as Row[];
const macOf = (ns: string, ifname: string) => (JSON.parse(run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', ifname])) as { address: string }[])[0]!.address;

test.before(async () => {
  if (!isRoot()) throw new Error('the IPv6 off-subnet test needs root (network namespaces)');
  lab = guard(new Lab(SPEC, { dualStack: true, routed6: true }));
  lab.build();
  lab.setMode('direct');
  // The fabric routes every pod block to its node (both families), as a BGP fabric would.
  for (const n of lab.nodes) {
    run('ip', ['-n', lab.fabric, 'route', 'add', n.block, 'via', n.ip]);
    run('ip', ['-n', lab.fabric, '-6', 'route', 'add', n.block6!, 'via', n.ip6!]);
  }
  for (const n of lab.nodes) await lab.startPodway(n.name);
  const l = lab;
  await l.waitApplied((routes, n) => l.nodes.every((m) => m === n || routes.some((r) => r.cidr === m.block6 && r.kind === 'direct')), 20_000);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 40));
  await teardown(lab);
});

/** [from, to, hop limit of the reply]: across the router three hops (two nodes and the router). */
const PATHS: [string, string, number][] = [
  ['web-1', 'web-2', 61], ['web-2', 'web-1', 61], ['tap-1', 'web-2', 61], ['web-2', 'tap-1', 61],
  ['web-2', 'web-3', 61], ['web-3', 'web-2', 61], ['web-1', 'web-3', 62],
];

function pingAll(what: string, hops: boolean): void {
  const l = lab!;
  for (const [a, b, ttl] of PATHS) {
    const r = l.ping(a, l.pod(b).ip6!, 4);
    assert.is(r.received, 4, `${what}: ${a} -> ${b} (${l.pod(b).ip6}): ${JSON.stringify(r)}`);
    if (hops) assert.is(r.ttl, ttl, `${what}: ${a} -> ${b}: reply hop limit`);
  }
}

/** No neighbour unreachable, none dropped as neighbor_failed, no node across the router solicited. */
async function noFalseAlarm(what: string): Promise<void> {
  const l = lab!;
  for (const n of l.nodes) {
    const st = (await controlRequest(n.control, { cmd: 'status' }, 5000)) as { unreachableNodes: unknown[] };
    assert.equal(st.unreachableNodes, [], `${what}, ${n.name}: ${JSON.stringify(st.unreachableNodes)}`);
    const c = (await controlRequest(n.control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> };
    assert.is(c.reasons.neighbor_failed ?? 0, 0, `${what}, ${n.name}: ${JSON.stringify(c.reasons)}`);
  }
}

/** node1's and node2's IPv6 rows for the other's block: `kind`, via the node, gateway the router. */
async function gatewayRows(kind: string): Promise<void> {
  const l = lab!;
  const [n1, n2, n3] = ['node1', 'node2', 'node3'].map((n) => l.node(n));
  const r1 = await rows(n1);
  const to2 = r1.find((r) => r.cidr === n2.block6)!;
  assert.equal([to2.kind, to2.via, to2.gateway, to2.nextHopMac], [kind, n2.ip6, 'fd99::fe', macOf(l.fabric, 'br0')], JSON.stringify(to2));
  const to3 = r1.find((r) => r.cidr === n3.block6)!;
  assert.equal([to3.kind, to3.via, to3.gateway], [kind, n3.ip6, undefined], JSON.stringify(to3));
  const r2 = await rows(n2);
  for (const m of [n1, n3]) {
    const r = r2.find((x) => x.cidr === m.block6)!;
    assert.equal([r.kind, r.via, r.gateway, r.nextHopMac], [kind, m.ip6, 'fd98::fe', macOf(l.fabric, 'u2')], JSON.stringify(r));
  }
}

test('unencapsulated IPv6: pods ping both ways across the router, to the router\'s MAC; no false alarm', async () => {
  pingAll('direct', true);
  await gatewayRows('direct');
  await noFalseAlarm('direct');
  ok = true;
});

test('`podway trace` of an IPv6 packet names the gateway', async () => {
  ok = false;
  const l = lab!;
  const n1 = l.node('node1');
  const dst = l.pod('web-2').ip6!;
  let armed = false;
  const trace = controlRequest(n1.control, { cmd: 'trace', filter: ['dst', dst, 'and', 'icmp6'], count: 1, timeoutMs: 15_000, armed: true }, 20_000, () => (armed = true)) as Promise<{ records: { stages: string[] }[] }>;
  assert.ok(await until(() => armed, 10_000, 50), 'trace armed');
  assert.is(l.ping('web-1', dst, 1).received, 1);
  const stages = (await trace).records[0]!.stages.join('\n');
  assert.match(stages, `direct: to ${l.node('node2').ip6} (gateway fd99::fe) via the underlay`, stages);
  ok = true;
});

test('IPv6 VXLAN: the outer packets go to the router too, both ways', async () => {
  ok = false;
  const l = lab!;
  l.setMode('vxlan');
  const n1 = l.node('node1');
  const n2 = l.node('node2');
  const vx = async (n: LabNode, m: LabNode) => (await rows(n)).some((r) => r.cidr === m.block6 && r.kind === 'vxlan');
  assert.ok(await until(async () => (await vx(n1, n2)) && (await vx(n2, n1)) && (await vx(l.node('node3'), n2)), 20_000, 100), JSON.stringify(await rows(n1)));
  pingAll('vxlan', false);
  await gatewayRows('vxlan');
  await noFalseAlarm('vxlan');
  ok = true;
});

test.run();
