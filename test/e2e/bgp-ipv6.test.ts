/**
 * BGP for IPv6 end to end (root, network namespaces): two dual-stack nodes on one subnet, each
 * running `podway run --bgp`, pools unencapsulated. Besides the IPv4 mesh the nodes mesh between
 * their IPv6 addresses (Calico's BIRD for IPv6), announce their IPv6 blocks over it, and route the
 * other node's IPv6 block from what they learned (in BGP mode nothing else tells them: the
 * datastore's IPv6 routes of unencapsulated pools are not used), so IPv6 pods ping across;
 * `podway node status` lists the IPv6 session under "IPv6 BGP status".
 *
 * The ToR's IPv6 outside network goes into the nodes' kernels too (proto bird, metric 32, via the
 * ToR's global address, as calico-node's BIRD for IPv6 does); the other node's IPv6 block (inside
 * the pool) and an operator's own route never; a route left by a stopped podway is adopted by the
 * next run and removed once every peer (IPv4 and IPv6 sessions) has sent End-of-RIB without it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { until } from './e2e-kit';
import { run } from '../../src/lab/lab';
import { inBgpLab, nodesOnOneSubnet, startBgpPodways, podwayCli as podway, routesOf, routesVia, torConf, writeResources, TOR_AS } from './bgp-kit';

/** The ToR's address on subnet a's IPv6 side (the nodes are fd99::1, fd99::2) and a network behind it. */
const TOR6 = 'fd99::fe';
const OUTSIDE6_NET = 'fd00:77::/64';
/** Also announced by the ToR; node1's operator has a static route there at podway's metric. */
const OPERATOR6_NET = 'fd00:78::/64';

/** `ns`'s kernel IPv6 routes for `cidr` (or all of proto bird), one per line, `pref medium` left out. */
const kernel6 = (ns: string, ...sel: string[]): string => run('ip', ['-n', ns, '-6', 'route', 'show', 'table', 'main', ...sel]).replace(/ pref medium/g, '').trim();

test('two dual-stack podways mesh over IPv6 too and route each other\'s IPv6 block from BGP; IPv6 pods ping across', () => inBgpLab(nodesOnOneSubnet(2), async (lab) => {
  await startBgpPodways(lab);
  const [n1, n2] = lab.nodes;
  // Each routes the other's IPv6 block directly to the other's IPv6 address (learned, class BGP).
  const routed6 = (from: typeof n1, to: typeof n1) => routesVia(lab, from!.name, to!.block6!, 'direct', to!.ip6!);
  const ok = await until(async () => (await routed6(n1, n2)) && (await routed6(n2, n1)), 60_000, 250);
  assert.ok(ok, `IPv6 blocks routed over BGP: ${JSON.stringify((await routesOf(lab, 'node1')).filter((r) => r.cidr.includes(':')))}`);

  const to6 = lab.pod('web-2').ip6!;
  assert.ok(await until(() => lab.ping('web-1', to6, 1).received === 1, 15_000, 200), `web-1 -> web-2 (${to6}) reachable`);
  const p = lab.ping('web-1', to6, 3);
  assert.is(p.loss, 0, JSON.stringify(p));
  assert.is(p.ttl, 62, 'two forwarding hops');

  const table = podway(['node', 'status', '--control', n1!.control]);
  assert.match(table, new RegExp(`IPv4 BGP status\\n\\+-+[^]*\\| ${n2!.ip.replace(/\./g, '\\.')}\\s+\\| node-to-node mesh \\| up`));
  assert.match(table, new RegExp(`IPv6 BGP status\\n\\+-+[^]*\\| ${n2!.ip6!}\\s+\\| node-to-node mesh \\| up\\s+\\| \\d\\d:\\d\\d:\\d\\d \\| Established \\|`));
  // The IPv6 session carried node2's IPv6 block (and nothing of IPv4); the IPv4 one its IPv4 block.
  const json = JSON.parse(podway(['node', 'status', '--control', n1!.control, '-o', 'json'])) as { peers: { address: string; bgpState: string; prefixesAccepted: number }[] };
  assert.equal(json.peers.map((x) => [x.address, x.bgpState, x.prefixesAccepted]), [[n2!.ip, 'Established', 1], [n2!.ip6, 'Established', 1]]);
}, { dualStack: true }));

test('a BIRD ToR peers with every node over IPv6 (a global BGPPeer with an IPv6 peerIP): it learns the IPv6 blocks, the nodes use and lose its IPv6 route', () => inBgpLab(nodesOnOneSubnet(2), async (lab, birds) => {
  run('ip', ['-n', lab.fabric, '-6', 'addr', 'add', `${TOR6}/64`, 'dev', 'br0', 'nodad']);
  writeResources(lab, [lab.resources('direct'), `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor6
spec:
  peerIP: "${TOR6}"
  asNumber: ${TOR_AS}
`]);
  const [n1, n2] = lab.nodes;
  const operator = `${OPERATOR6_NET} via ${TOR6} dev eth0 proto static metric 32`;
  run('ip', ['-n', n1!.ns, '-6', 'route', 'add', OPERATOR6_NET, 'via', TOR6, 'proto', 'static', 'metric', '32']);
  const tor = await birds.start(lab.fabric, 'tor6', torConf(lab, TOR6, TOR_AS, OUTSIDE6_NET, [OPERATOR6_NET], 6));
  await startBgpPodways(lab);
  // The ToR has both IPv6 blocks, each from its own node at least.
  const torHas = () => lab.nodes.every((n) => tor.birdc('show', 'route', 'protocol', n.name).includes(n.block6!.split('/')[0]!));
  assert.ok(await until(torHas, 60_000, 250), `ToR routes: ${tor.birdc('show', 'route')}`);
  assert.match(tor.birdc('show', 'route', 'all', n1!.block6!), new RegExp(`BGP\\.next_hop: ${n1!.ip6}`));
  // The nodes learn the ToR's IPv6 network: direct via the ToR (pod egress).
  const viaTor = (name: string) => routesVia(lab, name, OUTSIDE6_NET, 'direct', TOR6);
  assert.ok(await until(async () => (await viaTor('node1')) && (await viaTor('node2')), 30_000, 250), JSON.stringify((await routesOf(lab, 'node1')).filter((r) => r.cidr.includes(':'))));
  const table = podway(['node', 'status', '--control', n2!.control]);
  assert.match(table, /IPv6 BGP status\n\+-+[^]*\| fd99::fe\s+\| global\s+\| up\s+\|/);

  // ... and into their kernels: the outside networks alone (not the other node's IPv6 block, in
  // the pool; on node1 not the operator's prefix either, whose route is left as it is).
  const ours = `${OUTSIDE6_NET} via ${TOR6} dev eth0 proto bird metric 32`;
  // (`ip route show proto bird` leaves the protocol it selects on out of its lines.)
  const want = { [n1!.ns]: [OUTSIDE6_NET], [n2!.ns]: [OUTSIDE6_NET, OPERATOR6_NET] };
  const onlyOurs = (ns: string) => kernel6(ns, 'proto', 'bird') === want[ns]!.map((c) => `${c} via ${TOR6} dev eth0 metric 32`).join('\n');
  assert.ok(await until(() => onlyOurs(n1!.ns) && onlyOurs(n2!.ns), 30_000, 200), `node1: ${kernel6(n1!.ns, 'proto', 'bird')} | node2: ${kernel6(n2!.ns, 'proto', 'bird')}`);
  assert.is(kernel6(n1!.ns, OPERATOR6_NET), operator, 'the operator\'s route is left alone');
  assert.ok(await routesVia(lab, 'node1', OPERATOR6_NET, 'direct', TOR6), 'podway forwards over the learned operator prefix itself');
  assert.is(kernel6(n2!.ns, n1!.block6!), '', 'a pool block is podway\'s own, never in the kernel');
  // The host itself uses the learned route (`ip route get` picks it).
  assert.match(run('ip', ['-n', n1!.ns, '-6', 'route', 'get', 'fd00:77::1']), new RegExp(`via ${TOR6} dev eth0 proto bird`));

  // A restart: the route stays while podway is down, the next run adopts it and, as the ToR
  // withdrew it meanwhile, removes it once every session has sent its End-of-RIB (long before the
  // 120 s hold). node2 sees the withdrawal itself (MP_UNREACH_NLRI): gone from its kernel.
  await lab.stopPodway('node1');
  assert.is(kernel6(n1!.ns, OUTSIDE6_NET), ours, 'kept in the kernel while podway is down');
  tor.birdc('disable', 's6');
  assert.ok(await until(async () => !(await viaTor('node2')) && kernel6(n2!.ns, OUTSIDE6_NET) === '', 30_000, 200), `withdrawn: node2's kernel ${kernel6(n2!.ns, OUTSIDE6_NET)}`);
  await lab.startPodway('node1', 20_000, ['--bgp']);
  assert.ok(await until(() => n1!.log.some((l) => l.includes('learned route(s) left by an earlier run') && l.includes(`${OUTSIDE6_NET} via ${TOR6}`)), 10_000, 100), 'the restarted podway adopted the earlier run\'s IPv6 route');
  assert.ok(await until(() => kernel6(n1!.ns, OUTSIDE6_NET) === '', 60_000, 200), `the withdrawn route left node1's kernel after End-of-RIB: ${kernel6(n1!.ns, OUTSIDE6_NET)}`);
  assert.is(kernel6(n1!.ns, OPERATOR6_NET), operator, 'the operator\'s route is still left alone');
}, { dualStack: true }));

test.run();
