/**
 * Calico's BGP networking end to end (root, network namespaces, BIRD 2): three nodes on one subnet
 * in the unencapsulated mode, each running `podway run --bgp`, and nothing else telling a node
 * where the other nodes' blocks are (in BGP mode the route calculation takes them from BGP only).
 * The nodes mesh (one side of each pair passive), learn each other's blocks and pods ping across;
 * with the pool switched to IPIP the same learned blocks go through IPIP to their next hop.
 * BIRD in the fabric namespace plays the top-of-rack router: a global BGPPeer (eBGP, AS 65000)
 * with every node; it learns the pod blocks (`birdc show route`), installs them in its kernel so a
 * host outside the cluster pings a pod with no encapsulation and no NAT, and announces a prefix of
 * its own that the nodes use for pod egress.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, run } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { until } from './e2e-kit';
import {
  inBgpLab, nodesOnOneSubnet, writeResources as writeDocs, bgpPeerYaml, startBgpPodways, everyBlockRouted, assertPodPing, pingFromOutside,
  podwayCli as podway, routesOf as labRoutesOf, routesVia, peersNow, TOR_IP, TOR_AS, OUTSIDE_NET, OUTSIDE_HOST,
} from './bgp-kit';

/**
 * The lab's resources plus the ToR as a global BGPPeer, written atomically. Every node also passes
 * on the blocks it learned from its mesh peers, keeping their owner as next hop (on the subnet
 * shared with the ToR, as BIRD does), so the ToR sends straight to the node that holds the pod
 * rather than through another node.
 */
function writeResources(lab: Lab, mode: 'direct' | 'ipip' = 'direct'): void {
  writeDocs(lab, [lab.resources(mode), bgpPeerYaml('tor', TOR_IP, TOR_AS)]);
}

test('three podways mesh over BGP, route each other\'s blocks unencapsulated, and a BIRD ToR learns the blocks', () => inBgpLab(nodesOnOneSubnet(3), async (lab, birds) => {
  writeResources(lab);
  // The ToR, with the outside host behind it (an address on the fabric namespace's loopback).
  const birdc = (await birds.tor()).birdc;

  await startBgpPodways(lab);

  // Every node learns the two other blocks from its mesh peers and routes them unencapsulated.
  const routesOf = (name: string) => labRoutesOf(lab, name);
  const converged = await until(() => everyBlockRouted(lab, 'direct'), 60_000, 250);
  assert.ok(converged, `every node routes the other blocks over BGP: ${JSON.stringify(await routesOf('node1'))}`);

  for (const [from, to] of [['web-1', 'web-2'], ['web-2', 'web-3'], ['web-3', 'web-1']] as const) {
    await assertPodPing(lab, from, to, 3, 62, 'two forwarding hops, as with the kernel');
  }

  // calicoctl node status shape, asked from the running process.
  const n1 = lab.node('node1');
  const table = podway(['node', 'status', '--control', n1.control]);
  assert.match(table, /^podway process is running\.\n\nIPv4 BGP status\n\+-+\+/);
  assert.match(table, /\| PEER ADDRESS \|\s+PEER TYPE\s+\| STATE \|\s+SINCE\s+\|\s+INFO\s+\|/);
  assert.match(table, /\| 10\.99\.0\.2\s+\| node-to-node mesh \| up\s+\| \d\d:\d\d:\d\d \| Established \|/);
  assert.match(table, /\| 10\.99\.0\.3\s+\| node-to-node mesh \| up\s+\| \d\d:\d\d:\d\d \| Established \|/);
  assert.match(table, /\| 10\.99\.0\.254\s+\| global\s+\| up\s+\| \d\d:\d\d:\d\d \| Established \|/);
  assert.match(table, /IPv6 BGP status\nNo IPv6 peers found\./);
  const json = JSON.parse(podway(['node', 'status', '--control', n1.control, '-o', 'json'])) as { enabled: boolean; asNumber: number; peers: { address: string; type: string; bgpState: string; prefixesAccepted: number }[] };
  assert.is(json.enabled, true);
  assert.is(json.asNumber, 64512);
  assert.equal(json.peers.map((p) => [p.address, p.type, p.bgpState]), [
    ['10.99.0.2', 'node-to-node mesh', 'Established'], ['10.99.0.3', 'node-to-node mesh', 'Established'], [TOR_IP, 'global', 'Established'],
  ]);
  // One side of each mesh pair is passive: node1 has the smallest address string, so it waited for both.
  const counters = (await controlRequest(n1.control, { cmd: 'counters' })) as { bgpPeers: { peer: string; updatesIn: number; prefixesAccepted: number }[] };
  const mesh2 = counters.bgpPeers.find((p) => p.peer === '10.99.0.2')!;
  assert.ok(mesh2.updatesIn >= 1 && mesh2.prefixesAccepted >= 1, JSON.stringify(counters.bgpPeers));
  assert.match(podway(['counters', '--control', n1.control]), /PEER\s+TYPE\s+STATE\s+MESSAGESIN/);

  // The ToR learned every block, from every node, with the owner as next hop.
  const viaOwner = (n: (typeof lab.nodes)[number]) => {
    const out = birdc('show', 'route', n.block, 'all');
    const vias = [...out.matchAll(/via (\d+\.\d+\.\d+\.\d+) on br0/g)].map((m) => m[1]);
    return vias.length === lab.nodes.length && vias.every((v) => v === n.ip);
  };
  const learned = await until(() => lab.nodes.every(viaOwner), 20_000, 250);
  assert.ok(learned, `birdc show route:\n${birdc('show', 'route')}`);
  // An outside host (behind the ToR, not a node) reaches a pod: no encapsulation, no NAT.
  const outside = pingFromOutside(lab, lab.pod('web-2').ip);
  assert.is(outside.received, 3, outside.out);

  // The ToR's own prefix is learned by the nodes and used for pod egress, direct to the ToR.
  const egress = await until(() => routesVia(lab, 'node1', OUTSIDE_NET, 'direct', TOR_IP), 15_000, 250);
  assert.ok(egress, `node1 routes ${OUTSIDE_NET} to the ToR: ${JSON.stringify(await routesOf('node1'))}`);
  const out = lab.ping('web-1', OUTSIDE_HOST, 3);
  assert.is(out.loss, 0, `web-1 -> ${OUTSIDE_HOST}: ${JSON.stringify(out)}`);

  // The pool to IPIP: the blocks learned over BGP are now reached through IPIP to their next hop.
  // The pods' MTU as the CNI would set it, and one atomic write of the resources (the ToR's
  // BGPPeer stays in every version the nodes see).
  const podMtu = (mtu: number) => { for (const n of lab.nodes) for (const p of n.pods) run('ip', ['-n', p.ns, 'link', 'set', p.podIf, 'mtu', String(mtu)]); };
  podMtu(1480);
  writeResources(lab, 'ipip');
  const tunnelled = await until(() => everyBlockRouted(lab, 'ipip'), 15_000, 250);
  assert.ok(tunnelled, `IPIP routes from BGP: ${JSON.stringify(await routesOf('node1'))}`);
  const overIpip = lab.ping('web-1', lab.pod('web-2').ip, 3);
  assert.is(overIpip.loss, 0, `web-1 -> web-2 over IPIP: ${JSON.stringify(overIpip)}`);
  writeResources(lab, 'direct');
  podMtu(1500);

  // A node that restarts: its peers keep its routes (graceful restart) and its pod stays reachable.
  await lab.stopPodway('node3');
  await startBgpPodways(lab, ['node3']);
  assert.ok((await routesOf('node1')).some((r) => r.cidr === lab.node('node3').block && r.kind === 'direct'), 'node1 kept node3\'s block');
  const again = await until(async () => (await routesOf('node3')).filter((r) => r.kind === 'direct' && r.cidr.endsWith('/26')).length === 2, 30_000, 250);
  assert.ok(again, `node3 learned the other blocks again: ${JSON.stringify(await routesOf('node3'))}`);
  await assertPodPing(lab, 'web-1', 'web-3', 3);
  // node1's session to node3 is Established again and stays so for longer than the connect-retry
  // time (5 s) armed when the old session went down (it used to flip back to Active then).
  // (asked over the control socket: the same answer `node status -o json` printed above)
  const stateOf = async (name: string, peer: string) => (await peersNow(lab, name)).find((p) => p.address === peer);
  const n3 = lab.node('node3').ip;
  assert.ok(await until(async () => (await stateOf('node1', n3))?.bgpState === 'Established', 20_000, 250), `node1 -> node3 Established: ${JSON.stringify(await stateOf('node1', n3))}`);
  for (let i = 0; i < 14; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const s1 = await stateOf('node1', n3);
    assert.is(s1?.bgpState, 'Established', `node1 -> node3 after the restart (${i * 0.5} s): ${JSON.stringify(s1)}`);
    assert.is((await stateOf('node3', n1.ip))?.bgpState, 'Established', 'node3 -> node1');
  }
}));

test.run();
