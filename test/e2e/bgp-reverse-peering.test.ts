/**
 * Calico's reverse peerings end to end (root, network namespaces): three podway nodes on one
 * subnet, the mesh off, and only one-directional BGPPeers, as Calico users write them.
 *
 * 1. Calico's route-reflector setup: node3 is a reflector (label route-reflector=true,
 *    routeReflectorClusterID) and one BGPPeer `{nodeSelector: all(), peerSelector:
 *    route-reflector == 'true'}`. node3 peers back with node1 and node2 (confd's reverse pass)
 *    and reflects: node1 and node2 learn each other's block through it, with the owner as next
 *    hop, and every pod pings every other.
 * 2. A BGPPeer `{node: node1, peerIP: <node3's address>, asNumber: 64512}` alone: node3 peers
 *    back with node1 and their pods ping.
 * Without the reverse pass node3 refused the connections ("refused connection from unconfigured").
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Lab } from '../../src/lab/lab';
import { until } from './e2e-kit';
import { inBgpLab, nodesOnOneSubnet, writeResources, startBgpPodways, everyBlockRouted, assertPodPing, peersNow, routesOf, MESH_OFF_YAML } from './bgp-kit';

/** The lab's resources with node3 as a route reflector of cluster 224.0.0.1 (labelled). */
function withReflector(lab: Lab): string {
  const text = lab.resources('direct');
  const marked = text.replace(/kind: Node\nmetadata:\n  name: node3\nspec:\n  bgp:\n/, 'kind: Node\nmetadata:\n  name: node3\n  labels:\n    route-reflector: "true"\nspec:\n  bgp:\n    routeReflectorClusterID: 224.0.0.1\n');
  assert.is.not(marked, text, 'node3\'s Node document found');
  return marked;
}

const PEER_WITH_RRS = `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-with-rrs
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
`;

test('a reflector peers back with the nodes a one-way BGPPeer selects, and reflects; a peerIP naming a node is peered back', () => inBgpLab(nodesOnOneSubnet(3), async (lab) => {
  const [n1, n2, n3] = lab.nodes;
  writeResources(lab, [withReflector(lab), MESH_OFF_YAML, PEER_WITH_RRS]);
  await startBgpPodways(lab);

  const routed = await until(() => everyBlockRouted(lab, 'direct'), 60_000, 250);
  assert.ok(routed, `every node routes the other blocks, owner as next hop: ${JSON.stringify(await routesOf(lab, 'node1'))}\nnode3 peers: ${JSON.stringify(await peersNow(lab, 'node3'))}`);
  const rrPeers = await peersNow(lab, 'node3');
  assert.equal(rrPeers.map((p) => [p.address, p.type, p.bgpState]), [[n1!.ip, 'node specific', 'Established'], [n2!.ip, 'node specific', 'Established']]);
  assert.equal((await peersNow(lab, 'node1')).map((p) => [p.address, p.type, p.bgpState]), [[n3!.ip, 'node specific', 'Established']], 'node1 has no session to node2: node2\'s block came reflected');
  for (const [from, to] of [['web-1', 'web-2'], ['web-2', 'web-3'], ['web-3', 'web-1']] as const) await assertPodPing(lab, from, to, 3);

  // The peerIP form, one direction only: node1 -> node3's address with node3's AS.
  writeResources(lab, [lab.resources('direct'), MESH_OFF_YAML, `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: node1-to-node3
spec:
  node: node1
  peerIP: ${n3!.ip}
  asNumber: 64512
`]);
  const back = async () => {
    const at3 = await peersNow(lab, 'node3');
    return at3.length === 1 && at3[0]!.address === n1!.ip && at3[0]!.bgpState === 'Established'
      && (await routesOf(lab, 'node1')).some((r) => r.cidr === n3!.block && r.kind === 'direct' && r.via === n3!.ip);
  };
  assert.ok(await until(back, 60_000, 250), `node3 peers back with node1 only: ${JSON.stringify(await peersNow(lab, 'node3'))}; node1: ${JSON.stringify(await peersNow(lab, 'node1'))}`);
  assert.equal((await peersNow(lab, 'node2')).length, 0, 'node2 is named by no BGPPeer');
  await assertPodPing(lab, 'web-1', 'web-3', 3);
}));

test.run();
