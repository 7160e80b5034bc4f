/**
 * podway and BIRD 2 together in Calico's BGP model (root, network namespaces, BIRD killed by PID):
 * - BIRD as a second member of the node-to-node mesh, configured as calico-node's BIRD would be
 *   for its node (static blackhole for its block, export of pool routes, kernel programming, the
 *   passive side of the pair): both learn each other's block, and pods behind the two nodes reach
 *   each other unencapsulated (the BIRD node forwards with its kernel, on the routes BIRD put there).
 *   Both nodes sit on one subnet (the fabric's bridge), so pod traffic between them is switched,
 *   not routed: podway withholds a learned block whose next hop is off its subnet. The fabric's
 *   router (BIRD, eBGP with both) learns both blocks and a host behind it reaches both pods.
 * - BIRD as the route reflector of three podway nodes (mesh off, a global BGPPeer to the RR):
 *   every node learns every block through it; the RR killed by PID, the nodes keep its routes
 *   (graceful restart) and pods keep reaching each other; back, it gives them the routes again.
 * - podway restarting under traffic: BIRD as ToR keeps the node's routes (graceful restart), an
 *   outside host's ping to a pod goes on, losing packets only while podway is down.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, run } from '../../src/lab/lab';
import { until, sleep, pingIn } from './e2e-kit';
import {
  inBgpLab, nodesOnOneSubnet, writeResources, bgpPeerYaml, MESH_OFF_YAML, startBgpPodways, kernelRoutesVia, everyBlockRouted,
  assertPodPing, pingFromOutside, routesVia, routesOf, peerState, peersOf, podwayCli, calicoNodeBird, TOR_IP, TOR_AS, OUTSIDE_NET, OUTSIDE_HOST,
} from './bgp-kit';

test('podway and BIRD (as calico-node) in one node-to-node mesh: both learn each other\'s block; pods reach each other unencapsulated; a router learns both blocks', () => inBgpLab(nodesOnOneSubnet(2), async (lab, birds) => {
  const [n1, n2] = [lab.node('node1'), lab.node('node2')];
  // node2 is a kernel-forwarding Calico node: its pod's /32 on the cali interface, proxy ARP
  // for the pod's gateway, forwarding on (what Felix and the CNI plugin set up).
  const web2 = lab.pod('web-2');
  run('ip', ['netns', 'exec', n2.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  run('ip', ['netns', 'exec', n2.ns, 'sysctl', '-qw', `net.ipv4.conf.${web2.ifname}.proxy_arp=1`]);
  run('ip', ['-n', n2.ns, 'route', 'add', `${web2.ip}/32`, 'dev', web2.ifname, 'scope', 'link']);
  // The fabric router (ToR, eBGP) peers with both nodes: with podway through a global BGPPeer,
  // with node2's BIRD through its Global_ protocol, as calico-node's BIRD would have it.
  writeResources(lab, [lab.resources('direct'), bgpPeerYaml('tor', TOR_IP, TOR_AS)]);
  const tor = await birds.tor();
  const bird = await birds.start(n2.ns, 'node2-bird', calicoNodeBird(n2, [n1], [{ ip: TOR_IP, asNumber: TOR_AS }]));

  await startBgpPodways(lab, ['node1']);
  // podway learns node2's block from BIRD, next hop node2, routed unencapsulated.
  const learned = await until(() => routesVia(lab, 'node1', n2.block, 'direct', n2.ip), 40_000, 250);
  assert.ok(learned, `node1 routes ${n2.block} via ${n2.ip}: ${JSON.stringify(peersOf(lab, 'node1'))} ${JSON.stringify(await routesOf(lab, 'node1'))}\n${bird.birdc('show', 'protocols', 'all')}`);
  assert.is(await peerState(lab, 'node1', n2.ip), 'Established');
  // BIRD learns node1's block from podway and puts it in node2's kernel, via node1.
  const inKernel = await until(() => kernelRoutesVia(n2.ns, n1.block, n1.ip), 20_000, 250);
  assert.ok(inKernel, `node2's kernel: ${run('ip', ['-n', n2.ns, 'route'])}\n${bird.birdc('show', 'route', 'all')}`);
  assert.match(bird.birdc('show', 'route', n1.block, 'all'), /BGP.next_hop: 10\.99\.0\.1/);
  // The mesh session as BIRD sees it.
  assert.match(bird.birdc('show', 'protocols', `Mesh_${n1.ip.replace(/\./g, '_')}`), /Established/);

  // Pods across, both ways: node1 forwards with podway, node2 with its kernel; TTL 62 = two
  // forwarding hops and no tunnel (an encapsulating hop would not show in the inner TTL the
  // same way: the routes above are 'direct', the kernel's has no tunnel device).
  await assertPodPing(lab, 'web-1', 'web-2', 5, 62);
  await assertPodPing(lab, 'web-2', 'web-1', 5, 62);

  // The router learns both blocks, each with its owner as next hop (from podway and from BIRD),
  // and a host behind it reaches both pods, no encapsulation, no NAT.
  const torVia = (n: typeof n1) => kernelRoutesVia(lab.fabric, n.block, n.ip);
  assert.ok(await until(() => torVia(n1) && torVia(n2), 30_000, 250), `the router's kernel:\n${run('ip', ['-n', lab.fabric, 'route'])}\n${tor.birdc('show', 'route', 'all')}`);
  assert.ok(await until(() => routesVia(lab, 'node1', OUTSIDE_NET, 'direct', TOR_IP), 20_000, 250), 'node1 routes the outside net to the router');
  assert.ok(await until(() => kernelRoutesVia(n2.ns, OUTSIDE_NET, TOR_IP), 20_000, 250), 'node2\'s BIRD put the outside net in its kernel');
  for (const pod of ['web-1', 'web-2']) {
    const out = pingFromOutside(lab, lab.pod(pod).ip);
    assert.is(out.received, 3, `outside -> ${pod}: ${out.out}`);
  }
}));

/** BIRD as route reflector (cluster id 1.0.0.1) for every lab node, on the fabric's 10.99.0.254. */
function reflectorConf(lab: Lab): string {
  const clients = lab.nodes.map((n) => `
protocol bgp ${n.name} {
  local ${TOR_IP} as 64512;
  neighbor ${n.ip} as 64512;
  direct;
  rr client;
  rr cluster id 1.0.0.1;
  graceful restart on;
  connect retry time 2;
  error wait time 1, 5;
  ipv4 { import all; export all; };
}`).join('\n');
  return `router id ${TOR_IP};
protocol device { scan time 2; }
${clients}
`;
}

test('BIRD as route reflector for three podway nodes: all learn all blocks; the reflector killed and back: routes kept, then relearned', () => inBgpLab(nodesOnOneSubnet(3), async (lab, birds) => {
  writeResources(lab, [lab.resources('direct'), MESH_OFF_YAML, bgpPeerYaml('reflector', TOR_IP, 64512)]);
  const rr = await birds.start(lab.fabric, 'rr', reflectorConf(lab));
  await startBgpPodways(lab);
  const allLearned = () => everyBlockRouted(lab, 'direct');
  assert.ok(await until(allLearned, 40_000, 250), `every node routes the other blocks via their owners\n${rr.birdc('show', 'route', 'all')}`);
  for (const n of lab.nodes) {
    assert.equal(peersOf(lab, n.name).map((p) => [p.address, p.bgpState]), [[TOR_IP, 'Established']], `${n.name}: only the reflector, no mesh`);
  }
  await assertPodPing(lab, 'web-1', 'web-3', 3);

  // The reflector dies without a word: the nodes keep its routes for its restart time.
  await rr.kill();
  assert.ok(await until(async () => (await Promise.all(lab.nodes.map((n) => peerState(lab, n.name, TOR_IP)))).every((s) => s !== 'Established'), 10_000, 250), 'sessions down');
  await sleep(2000);
  assert.ok(await allLearned(), 'routes kept while the reflector restarts');
  assert.is(lab.ping('web-2', lab.pod('web-1').ip, 3).loss, 0, 'pods still reach each other');
  // node status says the session is trying to come up (BIRD's name: Active, not Idle) and that
  // the reflector's routes are held for its restart.
  const held = peersOf(lab, 'node1').find((p) => p.address === TOR_IP)!;
  assert.ok(['Active', 'Connect', 'OpenSent'].includes(held.bgpState), JSON.stringify(held));
  assert.match(held.info, /graceful restart: keeping 2 routes until /);
  const table = podwayCli(['node', 'status', '--control', lab.node('node1').control]);
  assert.match(table, /\| start +\| .*graceful restart: keeping 2 routes/);

  await rr.restart();
  assert.ok(await until(async () => (await Promise.all(lab.nodes.map((n) => peerState(lab, n.name, TOR_IP)))).every((s) => s === 'Established'), 30_000, 250), 'sessions back');
  // Relearned: the reflector has every block from its owner again, and after the End-of-RIBs
  // (stale routes replaced or dropped) every node still routes every other block.
  const rrHasAll = () => lab.nodes.every((n) => new RegExp(`${n.block.replace(/[./]/g, '\\$&')}\\s+unicast \\[${n.name} `).test(rr.birdc('show', 'route', n.block)));
  assert.ok(await until(rrHasAll, 20_000, 250), rr.birdc('show', 'route', 'all'));
  await sleep(3000);
  assert.ok(await allLearned(), 'every node routes every other block after the reflector came back');
  await assertPodPing(lab, 'web-3', 'web-2', 3);
}));

test('podway restarts under traffic: the BIRD ToR keeps its routes (graceful restart), an outside ping to a pod loses packets only while podway is down', () => inBgpLab(nodesOnOneSubnet(2), async (lab, birds) => {
  writeResources(lab, [lab.resources('direct'), bgpPeerYaml('tor', TOR_IP, TOR_AS)]);
  const tor = await birds.tor();
  await startBgpPodways(lab);
  const n2 = lab.node('node2');
  const torHasBlock = () => kernelRoutesVia(lab.fabric, n2.block, n2.ip);
  assert.ok(await until(torHasBlock, 30_000, 250), `the ToR's kernel has ${n2.block}: ${tor.birdc('show', 'route', 'all')}`);
  assert.ok(await until(() => routesVia(lab, 'node2', OUTSIDE_NET, 'direct', TOR_IP), 20_000, 250), 'node2 routes the outside net to the ToR');
  assert.is(await peerState(lab, 'node2', TOR_IP), 'Established');

  const interval = 0.05;
  // Up to 3,000 requests (150 s): the stream is ended (SIGINT) once it has covered the restart
  // window and 40 requests after it. Where the window lies is read from ping's own output, not
  // from the wall clock: -O prints "no answer yet for icmp_seq=N" for a request still unanswered
  // when the next goes, so the highest icmp_seq printed is at most one behind the requests sent.
  // (Requests numbered from wall-clock times assumed ping started on time and kept its pace: on a
  // loaded host it starts late and slips, and requests of the window fell before the bound.)
  const ping = pingIn(lab.fabric, lab.pod('web-2').ip, 3000, interval, ['-I', OUTSIDE_HOST, '-O']);
  const seqs = (re: RegExp) => [...ping.out().matchAll(re)].map((m) => Number(m[1]));
  const highest = (re: RegExp) => seqs(re).reduce((a, b) => Math.max(a, b), 0);
  const answeredUpTo = () => highest(/icmp_seq=(\d+) ttl=/g);
  assert.ok(await until(() => answeredUpTo() >= 20, 30_000, 50), `the stream flows before the restart: ${ping.out().slice(-300)}`);
  // every request up to this one went and was answered before the stop began
  const beforeStop = answeredUpTo();
  await lab.stopPodway('node2');
  // While podway is down: the ToR still has the block from node2's session (stale, kept for the
  // restart time) and in its kernel.
  await sleep(1000);
  const whileDown = tor.birdc('show', 'route', n2.block, 'all');
  assert.match(whileDown, /\[node2 /, `kept from node2 while it restarts:\n${whileDown}`);
  assert.ok(torHasBlock(), 'still in the ToR kernel');
  await startBgpPodways(lab, ['node2']);
  assert.ok(await until(async () => (await peerState(lab, 'node2', TOR_IP)) === 'Established', 60_000, 250), 'session back');
  // podway back and its session up, plus 2 s to settle: every request from here on is answered
  await sleep(2000);
  const fromSeq = highest(/icmp_seq=(\d+)/g) + 2;
  const end = fromSeq + 40;
  const answered = (seq: number) => new RegExp(`icmp_seq=${seq} ttl=`).test(ping.out());
  const reachedEnd = await until(() => answered(end) || ping.proc.exitCode !== null || ping.proc.signalCode !== null, 60_000, 100);
  ping.proc.kill('SIGINT');
  const r = await ping.done;
  assert.ok(reachedEnd && r.sent >= end, `the stream reached request ${end}: ${r.out.slice(-300)}`);
  const lost = r.lost.filter((s) => s <= end);
  const outside = lost.filter((s) => s <= beforeStop || s >= fromSeq);
  assert.equal(outside, [], `lost outside the restart window (${beforeStop}, ${fromSeq}): ${JSON.stringify(lost)}`);
  assert.ok(lost.length > 0, 'the pod is unreachable while podway is down (the window is real)');
  assert.ok(r.replied.has(end), 'the stream continues to its end');
}));

test.run();
