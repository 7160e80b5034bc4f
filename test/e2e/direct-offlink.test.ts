/**
 * An unencapsulated pool (ipipMode and vxlanMode Never) between nodes on different subnets, without
 * BGP (root, network namespaces): the fabric router routes each node's block to the node (Calico's
 * no-overlay design: the fabric knows the pod addresses), and podway sends a pod's packet for a
 * node off its subnet to the underlay next hop towards that node (the gateway its tunnels' outer
 * packets go to), as the kernel's default route would on a Calico node (Felix installs no route for
 * it; with BIRD, `gateway recursive` gives the same next hop).
 *
 *   node1 10.99.0.1/24 (subnet a): web-1, tap-1      node3 10.99.0.3/24 (subnet a): web-3
 *   node2 10.98.0.2/24 (subnet b, behind the router 10.98.0.254): web-2
 *
 * It used to ARP for 10.98.0.2 on node1's link (and node2 for node1's address on its own), never
 * answered: both directions dropped as neighbor_failed, `podway routes` with a failed next hop, and
 * a false "underlay neighbour unreachable" in podway status.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, run, type LabNode } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-client';
import { guard, teardown, isRoot, logTail, until, tcpTransfer } from './e2e-kit';

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
  if (!isRoot()) throw new Error('the off-subnet direct routing test needs root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
  lab.setMode('direct');
  // The fabric routes every pod block to its node, as a BGP fabric (or a static route) would.
  for (const n of lab.nodes) run('ip', ['-n', lab.fabric, 'route', 'add', n.block, 'via', n.ip]);
  for (const n of lab.nodes) await lab.startPodway(n.name);
  const l = lab;
  await l.waitApplied((routes, n) => l.nodes.every((m) => m === n || routes.some((r) => r.cidr === m.block && r.kind === 'direct')), 20_000);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  await teardown(lab);
});

test('pods ping both ways across the router (ttl 61: node, router, node), and on their own subnet', () => {
  const l = lab!;
  // [from, to, ttl]: across the router the reply passes three routers (the two nodes and the fabric)
  const paths: [string, string, number][] = [
    ['web-1', 'web-2', 61], ['web-2', 'web-1', 61], ['tap-1', 'web-2', 61], ['web-2', 'tap-1', 61],
    ['web-2', 'web-3', 61], ['web-3', 'web-2', 61], ['web-1', 'web-3', 62], ['web-3', 'tap-1', 62],
  ];
  for (const [a, b, ttl] of paths) {
    const r = l.ping(a, l.pod(b).ip, 4);
    assert.is(r.received, 4, `${a} -> ${b} (${l.pod(b).ip}): ${JSON.stringify(r)}`);
    assert.is(r.ttl, ttl, `${a} -> ${b}: reply ttl`);
  }
  ok = true;
});

test('`podway routes`: the block of a node off the subnet goes via the node, to the gateway\'s MAC; on-subnet ones to the node itself', async () => {
  ok = false;
  const l = lab!;
  const [n1, n2, n3] = ['node1', 'node2', 'node3'].map((n) => l.node(n));
  const brMac = macOf(l.fabric, 'br0');
  const uMac = macOf(l.fabric, 'u2'); // the router's port on node2's link
  const r1 = await rows(n1);
  const to2 = r1.find((r) => r.cidr === n2.block)!;
  assert.equal([to2.kind, to2.via, to2.gateway, to2.nextHopMac], ['direct', n2.ip, '10.99.0.254', brMac], JSON.stringify(to2));
  const to3 = r1.find((r) => r.cidr === n3.block)!;
  assert.equal([to3.kind, to3.via, to3.gateway, to3.nextHopMac], ['direct', n3.ip, undefined, macOf(n3.ns, 'eth0')], JSON.stringify(to3));
  const r2 = await rows(n2);
  for (const m of [n1, n3]) {
    const r = r2.find((x) => x.cidr === m.block)!;
    assert.equal([r.kind, r.via, r.gateway, r.nextHopMac], ['direct', m.ip, '10.98.0.254', uMac], JSON.stringify(r));
  }
  // the table as the CLI prints it has the gateway column
  const bin = require('node:path').resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
  const out = run(process.execPath, [bin, 'routes', '--control', n1.control]);
  assert.match(out, new RegExp(`${n2.block.replace(/\./g, '\\.')}\\s+direct\\s+node2\\s+${n2.ip.replace(/\./g, '\\.')}\\s+10\\.99\\.0\\.254\\s`), out);
  ok = true;
});

test('no underlay neighbour is taken as unreachable, and nothing was dropped as neighbor_failed', async () => {
  ok = false;
  const l = lab!;
  for (const n of l.nodes) {
    const st = (await controlRequest(n.control, { cmd: 'status' }, 5000)) as { unreachableNodes: unknown[]; neighbors: { entries: { ip: string }[] } };
    assert.equal(st.unreachableNodes, [], `${n.name}: ${JSON.stringify(st.unreachableNodes)}`);
    // never asked for a node across the router
    const asked = st.neighbors.entries.map((e) => e.ip);
    const offLink = l.nodes.filter((m) => m !== n && m.ip.split('.')[1] !== n.ip.split('.')[1]).map((m) => m.ip);
    assert.equal(asked.filter((a) => offLink.includes(a)), [], `${n.name} ARPs only on its link: ${asked.join(', ')}`);
    const c = (await controlRequest(n.control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> };
    assert.is(c.reasons.neighbor_failed ?? 0, 0, `${n.name}: ${JSON.stringify(c.reasons)}`);
  }
  ok = true;
});

test('`podway trace` names the gateway, and a 1 MB TCP transfer crosses the router intact', async () => {
  ok = false;
  const l = lab!;
  const n1 = l.node('node1');
  const dst = l.pod('web-2').ip;
  let armed = false;
  const trace = controlRequest(n1.control, { cmd: 'trace', filter: ['dst', dst, 'and', 'icmp'], count: 1, timeoutMs: 15_000, armed: true }, 20_000, () => (armed = true)) as Promise<{ records: { stages: string[] }[] }>;
  assert.ok(await until(() => armed, 10_000, 50), 'trace armed');
  assert.is(l.ping('web-1', dst, 1).received, 1);
  const t = await trace;
  const stages = t.records[0]!.stages.join('\n');
  assert.match(stages, `direct (node node2) via ${l.node('node2').ip} (gateway 10.99.0.254)`, stages);
  assert.match(stages, /direct: to \S+ \(node 10\.98\.0\.2, gateway 10\.99\.0\.254\) via the underlay/, stages);
  const x = await tcpTransfer(l, 'web-1', 'web-2', 1 << 20, 5301);
  assert.is(x.received.bytes, 1 << 20);
  assert.is(x.received.sha256, x.sent.sha256);
  const y = await tcpTransfer(l, 'web-2', 'tap-1', 1 << 20, 5302);
  assert.is(y.received.sha256, y.sent.sha256);
  ok = true;
});

test('--bgp (the node-to-node mesh across the router): a learned block with an off-subnet next hop goes through the gateway too', async () => {
  ok = false;
  const l = lab!;
  for (const n of l.nodes) assert.is(await l.stopPodway(n.name), 0, `${n.name} stopped`);
  for (const n of l.nodes) await l.startPodway(n.name, undefined, ['--bgp']);
  const [n1, n2] = [l.node('node1'), l.node('node2')];
  // each node's blocks now come from the mesh: node2's announced with next hop 10.98.0.2 (off node1's subnet)
  const learnedVia = async (n: LabNode, m: LabNode, gw: string) => (await rows(n)).some((r) => r.cidr === m.block && r.kind === 'direct' && r.via === m.ip && r.gateway === gw);
  assert.ok(await until(() => learnedVia(n1, n2, '10.99.0.254'), 60_000, 250), `node1 routes node2's block via its gateway: ${JSON.stringify(await rows(n1))}`);
  assert.ok(await until(() => learnedVia(n2, n1, '10.98.0.254'), 60_000, 250), `node2 routes node1's block via its gateway: ${JSON.stringify(await rows(n2))}`);
  const st = (await controlRequest(n1.control, { cmd: 'status' }, 5000)) as { withheld: { cidr: string }[] };
  assert.equal(st.withheld, [], 'nothing withheld');
  for (const [a, b] of [['web-1', 'web-2'], ['web-2', 'web-1'], ['web-2', 'web-3']] as const) {
    const r = l.ping(a, l.pod(b).ip, 4);
    assert.is(r.received, 4, `${a} -> ${b} with --bgp: ${JSON.stringify(r)}`);
    assert.is(r.ttl, 61, `${a} -> ${b}: reply ttl`);
  }
  ok = true;
});

test.run();
