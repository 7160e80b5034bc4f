// Which learned routes podway passes on, as Calico's BIRD export filter decides
// (calico_export_to_bgp_peers): two podway nodes (BgpAgents on one snapshot, meshed over loopback)
// and real BIRD 2 routers as ToRs of other ASes; only routes inside the IP pools travel on, so a
// node is never a transit between its peers. Also podway as route reflector for BIRD clients.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpAgent } from '../../src/control/bgp/agent';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import { Bird, birdBgpConfig, loopbackNet, randomPort, startBird, waitFor } from './bird';
import { affinity, node, pool, snapshotOf } from '../control/fixtures';

const API = 'projectcalico.org/v3';
const AS = 64512;
type Obj = Record<string, unknown>;
const bgpPeer = (name: string, spec: Obj): Obj => ({ apiVersion: API, kind: 'BGPPeer', metadata: { name }, spec });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Agents for `names`, each keeping its speaker in `speakers` (to read what it learned from whom). */
function agents(names: string[], speakers: Map<string, BgpSpeaker>, logs: string[]): BgpAgent[] {
  return names.map((name) => new BgpAgent({
    node: name,
    createSpeaker: (o) => {
      const s = new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: (_l, m) => logs.push(`${name}: ${m}`) });
      speakers.set(name, s);
      return s;
    },
    log: (m) => logs.push(`${name}: ${m}`),
    onLearned: () => undefined,
  }));
}

/** The prefixes `speaker` learned from `peer`, sorted. */
const learnedFrom = (speaker: BgpSpeaker | undefined, peer: string): string => (speaker?.learned() ?? []).filter((r) => r.peer === peer).map((r) => r.prefix).sort().join(' ');

test('learned routes outside the IP pools are never passed on (no ToR default route over the mesh, no transit between ToRs); pool routes are, as Calico\'s BIRD does', async () => {
  const ip = loopbackNet();
  const [node1, node2, torA, torB] = [ip(1), ip(2), ip(10), ip(11)];
  const meshPort = randomPort();
  const portA = meshPort + 1;
  const portB = meshPort + 2;
  const birds: Bird[] = [];
  const speakers = new Map<string, BgpSpeaker>();
  const logs: string[] = [];
  const [a1, a2] = agents(['node1', 'node2'], speakers, logs);
  const docs = (exportQ: boolean): Obj[] => [
    pool('p', '10.244.0.0/16'),
    pool('q', '10.245.0.0/16', { disableBGPExport: !exportQ }),
    { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: meshPort, bindMode: 'NodeIP' } },
    node('node1', `${node1}/8`), node('node2', `${node2}/8`),
    affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.64/26'),
    // ToR A (AS 65001) peers with node2 only, ToR B (AS 65002) with both nodes.
    bgpPeer('tor-a', { node: 'node2', peerIP: `${torA}:${portA}`, asNumber: 65001 }),
    bgpPeer('tor-b', { peerIP: `${torB}:${portB}`, asNumber: 65002 }),
  ];
  try {
    // ToR A announces a default route and a network of its own (outside every pool), another
    // rack's block (inside pool p: Calico passes it on), a block of pool q (disableBGPExport),
    // and a piece of node2's own block (covered by the block node2 announces: calico_aggr).
    birds.push(await startBird(birdBgpConfig({
      address: torA, port: portA, as: 65001,
      statics: ['0.0.0.0/0', '198.51.100.0/24', '10.244.200.0/26', '10.245.0.0/26', '10.244.0.96/28'],
      neighbors: [{ name: 'node2', address: node2, port: meshPort, as: AS }],
    })));
    birds.push(await startBird(birdBgpConfig({
      address: torB, port: portB, as: 65002, statics: ['203.0.113.0/24'],
      neighbors: [{ name: 'node1', address: node1, port: meshPort, as: AS }, { name: 'node2', address: node2, port: meshPort, as: AS }],
    })));
    const [birdA, birdB] = birds;
    for (const a of [a1!, a2!]) a.update(snapshotOf(...docs(false)));
    const s1 = () => speakers.get('node1');
    const s2 = () => speakers.get('node2');
    const tableOf = async (b: Bird, protocol: string) => (await b.routes(protocol)).join(' ');
    const says = () => `\nnode1 learned ${JSON.stringify(s1()?.learned())}\nnode2 learned ${JSON.stringify(s2()?.learned())}\n${logs.join('\n')}`;

    // node2 learned all five from ToR A, and 203.0.113.0/24 from ToR B.
    await waitFor(`node2 learns ToR A's routes${says()}`, () => learnedFrom(s2(), torA) === '0.0.0.0/0 10.244.0.96/28 10.244.200.0/26 10.245.0.0/26 198.51.100.0/24');
    await waitFor('node2 learns ToR B\'s route', () => learnedFrom(s2(), torB) === '203.0.113.0/24');
    // Over the mesh node1 hears from node2 only node2's block and the other rack's block.
    const fromNode2 = '10.244.0.64/26 10.244.200.0/26';
    await waitFor(`node1 learns the pool routes from node2${says()}`, () => learnedFrom(s1(), node2) === fromNode2, 20_000);
    // ToR B hears both nodes' blocks and the other rack's block, from each node: no default route,
    // no ToR A network, no pool q block, no piece of node2's block (each could only come through
    // a podway node).
    const poolRoutes = '10.244.0.0/26 10.244.0.64/26 10.244.200.0/26';
    await waitFor(`ToR B has the pool routes from node1${says()}`, async () => (await tableOf(birdB!, 'node1')) === poolRoutes, 20_000);
    await waitFor('ToR B has the pool routes from node2', async () => (await tableOf(birdB!, 'node2')) === poolRoutes, 20_000);
    // ToR A hears both blocks from node2 and nothing of ToR B's.
    await waitFor(`ToR A has both blocks from node2${says()}`, async () => (await tableOf(birdA!, 'node2')) === '10.244.0.0/26 10.244.0.64/26', 20_000);
    // Still so after a while (nothing arrives late).
    await sleep(1500);
    assert.is(learnedFrom(s1(), node2), fromNode2, says());
    assert.is(await tableOf(birdB!, 'node1'), poolRoutes);
    assert.is(await tableOf(birdB!, 'node2'), poolRoutes);
    assert.is(await tableOf(birdA!, 'node2'), '10.244.0.0/26 10.244.0.64/26');
    const mesh = a1!.status().peers.find((p) => p.address === node2)!;
    assert.is(mesh.prefixesReceived, 2, JSON.stringify(mesh));

    // Pool q's disableBGPExport lifted: its block travels on at once, sessions kept; set again: withdrawn.
    const since = mesh.since;
    assert.match(a2!.update(snapshotOf(...docs(true))), /IP pools of the learned-route export filter changed/);
    a1!.update(snapshotOf(...docs(true)));
    await waitFor('node1 learns the pool q block', () => learnedFrom(s1(), node2) === '10.244.0.64/26 10.244.200.0/26 10.245.0.0/26');
    await waitFor('ToR B has the pool q block', async () => (await tableOf(birdB!, 'node2')).includes('10.245.0.0/26'));
    assert.is(a1!.status().peers.find((p) => p.address === node2)!.since, since, 'the mesh session stayed up');
    for (const a of [a1!, a2!]) a.update(snapshotOf(...docs(false)));
    await waitFor('the pool q block withdrawn from node1', () => learnedFrom(s1(), node2) === fromNode2);
    await waitFor('and from ToR B', async () => (await tableOf(birdB!, 'node2')) === poolRoutes);
  } finally {
    await Promise.all([a1!, a2!].map((a) => a.stop({ graceful: false })));
    for (const b of birds) await b.stop();
  }
});

test('podway as route reflector (routeReflectorClusterID) for BIRD clients: reflects pool blocks between them, never a route outside the pools', async () => {
  const ip = loopbackNet();
  const port = randomPort();
  const [rr, c3, c4] = [ip(1), ip(3), ip(4)];
  const birds: Bird[] = [];
  const speakers = new Map<string, BgpSpeaker>();
  const logs: string[] = [];
  const [agent] = agents(['node1'], speakers, logs);
  try {
    // Clients as Calico nodes: each originates its block and (a misconfiguration, or a route its
    // kernel gave it) a network outside the pool.
    for (const h of [3, 4]) {
      birds.push(await startBird(birdBgpConfig({
        address: ip(h), port, as: AS, statics: [`10.244.${h}.0/26`, `10.${h}.0.0/24`],
        neighbors: [{ name: 'reflector', address: rr, port, as: AS }],
      })));
    }
    agent!.update(snapshotOf(
      pool('p', '10.244.0.0/16'),
      { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: port, bindMode: 'NodeIP', nodeToNodeMeshEnabled: false } },
      node('node1', `${rr}/8`, undefined, { bgp: { ipv4Address: `${rr}/8`, routeReflectorClusterID: '1.0.0.1' } }),
      node('node3', `${c3}/8`), node('node4', `${c4}/8`),
      affinity('node1', '10.244.0.0/26'),
      bgpPeer('clients', { peerSelector: 'all()' }),
    ));
    const plan = agent!.status();
    assert.equal(plan.peers.map((p) => p.address).sort(), [c3, c4]);
    const s = () => speakers.get('node1');
    await waitFor(`the reflector learns all four${logs.join('\n')}`, () => s()?.learned().length === 4, 20_000);
    const [b3, b4] = birds;
    await waitFor('client 3 has its peer\'s block and ours, reflected', async () => (await b3!.routes('reflector')).join(' ') === '10.244.0.0/26 10.244.4.0/26', 20_000);
    await waitFor('client 4 likewise', async () => (await b4!.routes('reflector')).join(' ') === '10.244.0.0/26 10.244.3.0/26', 20_000);
    assert.match(await b3!.birdc('show', 'route', 'all', '10.244.4.0/26'), /BGP\.cluster_list: 1\.0\.0\.1/);
    await sleep(1500);
    assert.is((await b3!.routes('reflector')).join(' '), '10.244.0.0/26 10.244.4.0/26', 'no 10.4.0.0/24 reflected');
    assert.is((await b4!.routes('reflector')).join(' '), '10.244.0.0/26 10.244.3.0/26', 'no 10.3.0.0/24 reflected');
  } finally {
    await agent!.stop({ graceful: false });
    for (const b of birds) await b.stop();
  }
});

test.run();
