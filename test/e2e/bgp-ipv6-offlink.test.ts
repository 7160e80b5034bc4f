/**
 * BGP for IPv6 across a router (root, network namespaces, BIRD 2): node1 runs `podway run --bgp`
 * on fd99::/64; node2 is a kernel-forwarding Calico node on another IPv6 subnet (fd98::/64, behind
 * the fabric router: Lab routed6) whose BIRD is configured as calico-node's for IPv6 (confd's
 * template: the mesh session with `multihop` and `gateway recursive`, a static blackhole for its
 * block, a kernel protocol). BIRD announces node2's IPv6 block with next hop fd98::2, off node1's
 * IPv6 subnet: podway routes it unencapsulated through the kernel's IPv6 gateway towards fd98::2
 * (the router fd99::fe), as it does for IPv4 and as BIRD's `gateway recursive` does (route-calc6:
 * it used to be withheld, "not on fd99::/64"). The router routes each block to its node (a BGP
 * fabric's part, static here). Pods on both nodes ping each other over IPv6; `podway routes` shows
 * the gateway, `podway trace` names it; when BIRD withdraws the block podway drops the route.
 *
 *   node1 10.99.0.1 fd99::1/64 (podway --bgp): web-1       router fd99::fe | fd98::fe
 *   node2 10.98.0.2 fd98::2/64 (BIRD, kernel forwarding): web-2
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run, type LabNode } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-client';
import { until } from './e2e-kit';
import { inBgpLab, startBgpPodways, routesOf, peerState, type BirdProcess } from './bgp-kit';

const SPEC = [
  { name: 'node1', subnet: 'a' as const, pods: [{ name: 'web-1', type: 'veth' as const }] },
  { name: 'node2', subnet: 'b' as const, pods: [{ name: 'web-2', type: 'veth' as const }] },
];
const POOL6 = 'fd00:10:244::/64';

interface Row { cidr: string; kind: string; node: string; via: string; gateway?: string; nextHopMac: string }

/** node2's BIRD for IPv6 as calico-node's confd renders it (bird6.cfg.template) for the mesh with
 * node1, on stock BIRD 2: node2 is the passive side (node1's address is the greater string). */
function node2Bird(n1: LabNode, n2: LabNode): string {
  return `router id ${n2.ip};
protocol device { scan time 2; }
protocol direct { ipv6; interface -"cali*", "*"; }
protocol kernel {
  learn;
  persist;
  scan time 2;
  ipv6 { import all; export where source ~ [ RTS_STATIC, RTS_BGP ]; };
  graceful restart;
  merge paths on;
}
protocol static s6 { ipv6; route ${n2.block6} blackhole; }
# confd's calico_aggr: the confirmed block itself, nothing more specific in it (the pod's /128 the
# kernel protocol learns), then the pool.
filter calico_export_to_bgp_peers {
  if ( net = ${n2.block6} ) then { accept; }
  if ( net ~ ${n2.block6} ) then { reject; }
  if ( net ~ ${POOL6} ) then { accept; }
  reject;
}
protocol bgp Mesh_${n1.ip6!.replace(/:/g, '_')} {
  description "Connection to BGP peer";
  local ${n2.ip6} as 64512;
  neighbor ${n1.ip6} as 64512;
  source address ${n2.ip6};
  graceful restart;
  connect delay time 2;
  connect retry time 1;
  error wait time 1, 5;
  ttl security off;
  multihop;
  passive on;
  ipv6 { gateway recursive; import all; export filter calico_export_to_bgp_peers; };
}
`;
}

const rowFor = async (lab: Parameters<typeof routesOf>[0], cidr: string) => ((await routesOf(lab, 'node1')) as Row[]).find((r) => r.cidr === cidr);

test('a BIRD node on another IPv6 subnet: its learned block (next hop off the subnet) goes through the gateway; pods ping both ways; withdrawn with BIRD', () => inBgpLab(SPEC, async (lab, birds) => {
  const [n1, n2] = [lab.node('node1'), lab.node('node2')];
  const web2 = lab.pod('web-2');
  // node2 forwards with its kernel, as Felix and the CNI plugin set it up: forwarding on, the pod's
  // /128 on its cali interface (whose link-local address, from ee:ee:ee:ee:ee:ee, is the pods' gateway).
  run('ip', ['netns', 'exec', n2.ns, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
  run('ip', ['-n', n2.ns, '-6', 'route', 'add', `${web2.ip6}/128`, 'dev', web2.ifname]);
  // The fabric routes each IPv6 block to its node.
  for (const n of lab.nodes) run('ip', ['-n', lab.fabric, '-6', 'route', 'add', n.block6!, 'via', n.ip6!]);
  const bird: BirdProcess = await birds.start(n2.ns, 'node2-bird', node2Bird(n1, n2));
  await startBgpPodways(lab, ['node1']);

  // The IPv6 mesh session across the router, and node2's block learned with next hop fd98::2.
  assert.ok(await until(async () => (await peerState(lab, 'node1', n2.ip6!)) === 'Established', 60_000, 250), `IPv6 session: ${bird.birdc('show', 'protocols', 'all')}`);
  const viaGateway = async () => {
    const r = await rowFor(lab, n2.block6!);
    return r !== undefined && r.kind === 'direct' && r.node === 'node2' && r.via === n2.ip6 && r.gateway === 'fd99::fe';
  };
  const status = async () => (await controlRequest(n1.control, { cmd: 'status' }, 5000)) as { withheld: { cidr: string; reason: string }[]; unreachableNodes: unknown[] };
  assert.ok(await until(viaGateway, 30_000, 250), `node1 routes ${n2.block6} via ${n2.ip6}, gateway fd99::fe: ${JSON.stringify(await rowFor(lab, n2.block6!))}; withheld ${JSON.stringify((await status()).withheld)}`);
  assert.equal((await status()).withheld.filter((w) => w.cidr.includes(':')), [], 'no IPv6 route withheld');
  // BIRD has node1's block from podway, next hop fd99::1 resolved through node2's default route.
  assert.ok(await until(() => /via fd98::fe/.test(bird.birdc('show', 'route', 'all', n1.block6!)), 20_000, 250), bird.birdc('show', 'route', 'all'));
  assert.match(bird.birdc('show', 'route', 'all', n1.block6!), /BGP\.next_hop: fd99::1\b/);

  // Pods across, both ways: the hop limit says node1, the router and node2 forwarded (no tunnel).
  for (const [from, to] of [['web-1', 'web-2'], ['web-2', 'web-1']] as const) {
    const dst = lab.pod(to).ip6!;
    assert.ok(await until(() => lab.ping(from, dst, 1).received === 1, 15_000, 200), `${from} -> ${to} (${dst}) reachable`);
    const p = lab.ping(from, dst, 4);
    assert.is(p.received, 4, `${from} -> ${to}: ${JSON.stringify(p)}`);
    assert.is(p.ttl, 61, `${from} -> ${to}: reply hop limit`);
  }
  // The frames went to the router's MAC, and nothing was solicited in vain.
  const row = (await rowFor(lab, n2.block6!))!;
  const routerMac = (JSON.parse(run('ip', ['-n', lab.fabric, '-j', 'link', 'show', 'dev', 'br0'])) as { address: string }[])[0]!.address;
  assert.is(row.nextHopMac, routerMac);
  assert.equal((await status()).unreachableNodes, []);
  const c = (await controlRequest(n1.control, { cmd: 'counters' }, 5000)) as { reasons: Record<string, number> };
  assert.is(c.reasons.neighbor_failed ?? 0, 0, JSON.stringify(c.reasons));

  // `podway trace` of one packet names the learned route and the gateway.
  let armed = false;
  const dst = web2.ip6!;
  const trace = controlRequest(n1.control, { cmd: 'trace', filter: ['dst', dst, 'and', 'icmp6'], count: 1, timeoutMs: 15_000, armed: true }, 20_000, () => (armed = true)) as Promise<{ records: { stages: string[] }[] }>;
  assert.ok(await until(() => armed, 10_000, 50), 'trace armed');
  assert.is(lab.ping('web-1', dst, 1).received, 1);
  const stages = (await trace).records[0]!.stages.join('\n');
  assert.match(stages, `${n2.block6} direct via ${n2.ip6} (node node2)`, stages);
  assert.match(stages, `direct: to ${n2.ip6} (gateway fd99::fe) via the underlay`, stages);

  // BIRD withdraws the block: podway drops the route (the pod is then unrouted: no route in the pool).
  bird.birdc('disable', 's6');
  assert.ok(await until(async () => (await rowFor(lab, n2.block6!)) === undefined, 20_000, 250), `withdrawn: ${JSON.stringify(await rowFor(lab, n2.block6!))}`);
  assert.is(lab.ping('web-1', dst, 2).received, 0, 'no route to web-2 once withdrawn');
  assert.is(await peerState(lab, 'node1', n2.ip6!), 'Established', 'the session stays up');
  // ... and announced again, routed again.
  bird.birdc('enable', 's6');
  assert.ok(await until(viaGateway, 20_000, 250), `announced again: ${JSON.stringify(await rowFor(lab, n2.block6!))}`);
  assert.ok(await until(() => lab.ping('web-1', dst, 1).received === 1, 15_000, 200), 'web-1 -> web-2 again');
}, { dualStack: true, routed6: true }));

test.run();
