/**
 * BGP for IPv6 end to end (root, network namespaces): two dual-stack nodes on one subnet, each
 * running `podway run --bgp`, pools unencapsulated. Besides the IPv4 mesh the nodes mesh between
 * their IPv6 addresses (Calico's BIRD for IPv6), announce their IPv6 blocks over it, and route the
 * other node's IPv6 block from what they learned (in BGP mode nothing else tells them: the
 * datastore's IPv6 routes of unencapsulated pools are not used), so IPv6 pods ping across;
 * `podway node status` lists the IPv6 session under "IPv6 BGP status".
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { until } from './e2e-kit';
import { run } from '../../src/lab/lab';
import { inBgpLab, nodesOnOneSubnet, startBgpPodways, podwayCli as podway, routesOf, routesVia, torConf, writeResources, TOR_AS } from './bgp-kit';

/** The ToR's address on subnet a's IPv6 side (the nodes are fd99::1, fd99::2) and a network behind it. */
const TOR6 = 'fd99::fe';
const OUTSIDE6_NET = 'fd00:77::/64';

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
  const tor = await birds.start(lab.fabric, 'tor6', torConf(lab, TOR6, TOR_AS, OUTSIDE6_NET, [], 6));
  await startBgpPodways(lab);
  const [n1, n2] = lab.nodes;
  // The ToR has both IPv6 blocks, each from its own node at least.
  const torHas = () => lab.nodes.every((n) => tor.birdc('show', 'route', 'protocol', n.name).includes(n.block6!.split('/')[0]!));
  assert.ok(await until(torHas, 60_000, 250), `ToR routes: ${tor.birdc('show', 'route')}`);
  assert.match(tor.birdc('show', 'route', 'all', n1!.block6!), new RegExp(`BGP\\.next_hop: ${n1!.ip6}`));
  // The nodes learn the ToR's IPv6 network: direct via the ToR (pod egress).
  const viaTor = (name: string) => routesVia(lab, name, OUTSIDE6_NET, 'direct', TOR6);
  assert.ok(await until(async () => (await viaTor('node1')) && (await viaTor('node2')), 30_000, 250), JSON.stringify((await routesOf(lab, 'node1')).filter((r) => r.cidr.includes(':'))));
  const table = podway(['node', 'status', '--control', n2!.control]);
  assert.match(table, /IPv6 BGP status\n\+-+[^]*\| fd99::fe\s+\| global\s+\| up\s+\|/);
  // Withdrawn at the ToR (MP_UNREACH_NLRI): gone from the nodes.
  tor.birdc('disable', 's6');
  assert.ok(await until(async () => !(await viaTor('node1')) && !(await viaTor('node2')), 30_000, 250), 'the withdrawn IPv6 route is gone');
}, { dualStack: true }));

test.run();
