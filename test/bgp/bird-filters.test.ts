// BGPPeer filters (BGPFilter), ttlSecurity and localASNumber on podway's sessions, against BIRD 2:
// an export rule keeps one of the node's blocks from BIRD, an import rule keeps one of BIRD's
// routes out of podway, and an edit of the BGPFilter re-judges both on the live session (what is
// now rejected withdrawn, what is now accepted sent; the session stays up); ttlSecurity against
// BIRD's `ttl security on; multihop 1` both ways (our dial and BIRD's), and GTSM refusing a peer
// whose packets come with a lower TTL; localASNumber as the AS BIRD sees (OPEN and AS_PATH); an
// export Accept passing on a learned default route podway would otherwise keep to itself; a
// route reflector's peer in its session's localASNumber is an rr client (reflection both ways).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpAgent } from '../../src/control/bgp/agent';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import type { LearnedRoute } from '../../src/control/route-calc';
import { loopbackNet, startBird, torBirdConfig, waitFor, type Bird } from './bird';
import { freePort } from '../helpers/etcd';
import { node, pool, snapshotOf } from '../control/fixtures';

const API = 'projectcalico.org/v3';
const noMesh = { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { nodeToNodeMeshEnabled: false } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function agentFor(nodeName: string, logs: string[], onLearned: (l: readonly LearnedRoute[]) => void = () => {}): BgpAgent {
  return new BgpAgent({
    node: nodeName,
    createSpeaker: (o) => new BgpSpeaker({ ...o, listenPort: 0, connectRetrySeconds: 1, log: (_l, m) => logs.push(m) }),
    log: (m) => logs.push(m),
    onLearned: (l) => onLearned(l),
    exports: [{ prefix: '10.244.7.0/26' }, { prefix: '10.244.8.0/26' }],
  });
}

const bgpFilter = (spec: Record<string, unknown>) => ({ apiVersion: API, kind: 'BGPFilter', metadata: { name: 'edge' }, spec });

test('filters: an export rule keeps a block from BIRD, an import rule keeps a BIRD route out; edited live, both are judged again without a session reset', async () => {
  const ip = loopbackNet();
  const [us, them] = [ip(5), ip(40)];
  const port = await freePort(them);
  const bird = await startBird(torBirdConfig({ address: them, port, as: 65000, neighbor: us, neighborAs: 64512, statics: ['10.88.1.0/24', '10.88.2.0/24'] }));
  const logs: string[] = [];
  let learned: readonly LearnedRoute[] = [];
  const agent = agentFor('node1', logs, (l) => { learned = l; });
  const plan = (filter: Record<string, unknown>) => snapshotOf(noMesh, node('node1', `${us}/8`), bgpFilter(filter),
    { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: `${them}:${port}`, asNumber: 65000, filters: ['edge'] } });
  const learnedPrefixes = () => learned.map((r) => r.prefix).sort();
  const says = async () => `\n${JSON.stringify(agent.status().peers)}\n${JSON.stringify(learned)}\n${await bird.birdc('show', 'route')}\n${logs.join('\n')}\n${bird.log()}`;
  try {
    agent.update(plan({
      exportV4: [{ cidr: '10.244.8.0/26', matchOperator: 'Equal', action: 'Reject' }],
      importV4: [{ cidr: '10.88.0.0/16', matchOperator: 'In', prefixLength: { min: 24, max: 24 }, action: 'Accept' }, { cidr: '10.88.2.0/24', matchOperator: 'Equal', action: 'Reject' }],
    }));
    const peer = () => agent.status().peers[0]!;
    // Our two blocks go in one UPDATE, BIRD's two statics too: when one is there, so would the other be.
    await waitFor('Established, 10.244.7.0/26 at BIRD, BIRD\'s table in', async () => peer().bgpState === 'Established' && (await bird.routes('tor')).includes('10.244.7.0/26') && peer().prefixesReceived === 2, 15_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    assert.equal(await bird.routes('tor'), ['10.244.7.0/26'], 'the export rule kept 10.244.8.0/26 from BIRD');
    // the first rule (Accept, /24 in 10.88/16) comes first: both accepted
    await waitFor('both of BIRD\'s routes learned', () => learnedPrefixes().length === 2, 10_000).catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    assert.equal(learnedPrefixes(), ['10.88.1.0/24', '10.88.2.0/24']);
    const since = peer().since;

    // Edited: now 10.244.7.0/26 is rejected on export and 10.244.8.0/26 goes (no rule matches it:
    // the default), and 10.88.2.0/24 is rejected on import (the Accept rule is gone).
    const said = agent.update(plan({
      exportV4: [{ cidr: '10.244.7.0/26', matchOperator: 'Equal', action: 'Reject' }],
      importV4: [{ cidr: '10.88.2.0/24', matchOperator: 'Equal', action: 'Reject' }],
    }));
    assert.match(said, /BGPFilters of peer .* changed \(routes judged again, session kept\)/);
    await waitFor('BIRD has 10.244.8.0/26 and no longer 10.244.7.0/26', async () => JSON.stringify(await bird.routes('tor')) === JSON.stringify(['10.244.8.0/26']), 10_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    await waitFor('10.88.2.0/24 no longer learned', () => JSON.stringify(learnedPrefixes()) === JSON.stringify(['10.88.1.0/24']), 10_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    assert.is(peer().prefixesReceived, 2, 'the rejected route is still held (it can be accepted again without asking BIRD)');
    assert.is(peer().prefixesAccepted, 1);
    assert.is(peer().bgpState, 'Established');
    assert.is(peer().since, since, 'the session was not reset');

    // The filter deleted (the BGPPeer still names it: left out, said): everything as without it.
    const gone = snapshotOf(noMesh, node('node1', `${us}/8`),
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: `${them}:${port}`, asNumber: 65000, filters: ['edge'] } });
    agent.update(gone);
    assert.match(agent.status().warnings?.join('\n') ?? '', /BGPFilter "edge" does not exist/);
    await waitFor('both blocks at BIRD, both routes learned', async () => JSON.stringify(await bird.routes('tor')) === JSON.stringify(['10.244.7.0/26', '10.244.8.0/26']) && learnedPrefixes().length === 2, 10_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    assert.is(peer().since, since, 'still the same session');
  } finally {
    await agent.stop({ graceful: false });
    await bird.stop();
  }
});

test('ttlSecurity: GTSM with BIRD\'s `ttl security on; multihop 1` (our dial and BIRD\'s); without it on our side, or on BIRD\'s, no session', async () => {
  const ip = loopbackNet();
  const them = ip(40);
  const [withGtsm, withoutGtsm, toPlainBird, listening] = [ip(5), ip(6), ip(7), ip(8)];
  const port = await freePort(them);
  const listenPort = await freePort(listening);
  // BIRD: GTSM toward .5, .6 and .8 (it dials .8), none toward .7 (its packets with TTL 64).
  const bird = await startBird(`
router id ${them};
log stderr all;
protocol device {}
protocol static s4 { ipv4; route 10.88.1.0/24 unreachable; }
template bgp tpl {
  local ${them} port ${port} as 65000; strict bind;
  connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 { import all; export where proto = "s4"; };
}
protocol bgp gtsm from tpl { neighbor ${withGtsm} as 64512; passive on; ttl security on; multihop 1; }
protocol bgp nogtsm from tpl { neighbor ${withoutGtsm} as 64512; passive on; ttl security on; multihop 1; }
protocol bgp plain from tpl { neighbor ${toPlainBird} as 64512; passive on; multihop; }
protocol bgp dialer from tpl { neighbor ${listening} port ${listenPort} as 64512; ttl security on; multihop 1; }
`);
  const logs: string[] = [];
  const agents = [withGtsm, withoutGtsm, toPlainBird].map((addr, i) => ({ addr, agent: agentFor(`node${i + 1}`, logs) }));
  const speaker = new BgpSpeaker({ localAs: 64512, routerId: listening, listenAddress: listening, listenPort, connectRetrySeconds: 1, log: (_l, m) => logs.push(m) });
  const says = async () => `\n${JSON.stringify(agents.map((a) => a.agent.status().peers))}\n${JSON.stringify(speaker.status())}\n${await bird.birdc('show', 'protocols')}\n${logs.join('\n')}\n${bird.log()}`;
  try {
    agents.forEach(({ addr, agent }, i) => agent.update(snapshotOf(noMesh, node(`node${i + 1}`, `${addr}/8`),
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: `${them}:${port}`, asNumber: 65000, ...(addr !== withoutGtsm ? { ttlSecurity: 1 } : {}) } })));
    speaker.setPeers([{ address: them, asNumber: 65000, passive: true, ttlSecurity: 1, localAddress: listening }]);
    speaker.setExports([{ prefix: '10.244.9.0/26' }]);
    await speaker.start();
    await waitFor('GTSM both sides: Established (our dial), routes both ways', async () => agents[0]!.agent.status().peers[0]?.bgpState === 'Established' && (await bird.routes('gtsm')).includes('10.244.7.0/26'), 15_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    await waitFor('GTSM both sides: Established (BIRD dialled our listener)', async () => speaker.status()[0]?.state === 'Established' && (await bird.routes('dialer')).includes('10.244.9.0/26') && speaker.learned().length === 1, 15_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    const stateOf = (i: number) => agents[i]!.agent.status().peers[0]?.bgpState;
    // nogtsm: BIRD's packets (TTL 255) reach node2, node2's (TTL 64) are dropped by the IP_MINTTL
    // BIRD sets on the connection it accepted (an OPEN that came before it did may slip through,
    // as between two BIRDs; node2 may then count itself Established on BIRD's KEEPALIVE alone).
    await waitFor('node2 hears BIRD', () => ['OpenConfirm', 'Established'].includes(stateOf(1) ?? ''), 15_000).catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    // plain: node3's OPEN (TTL 255) reaches BIRD, whose answer (TTL 64) node3's GTSM drops.
    await waitFor('BIRD has node3\'s OPEN', async () => /BGP state:\s+OpenConfirm/.test(await bird.protocol('plain')), 15_000).catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    // Neither comes up while the kernel drops those packets (BIRD retransmits, its hold time is
    // minutes): a window of three more seconds.
    await sleep(3000);
    assert.not.match(await bird.protocol('nogtsm'), /BGP state:\s+Established/, `without ttlSecurity on our side BIRD must drop our packets${await says()}`);
    assert.equal(await bird.routes('nogtsm'), [], 'none of node2\'s routes at BIRD');
    assert.not.match(await bird.protocol('plain'), /BGP state:\s+Established/);
    assert.is(stateOf(2), 'OpenSent', `node3 never hears BIRD's OPEN${await says()}`);
  } finally {
    await Promise.all(agents.map(({ agent }) => agent.stop({ graceful: false })));
    await speaker.stop();
    await bird.stop();
  }
});

test('filters: an export Accept (source RemotePeers) passes on a learned route podway would not (a ToR\'s default route to a second ToR); without it, not', async () => {
  const ip = loopbackNet();
  const [us, torA, torB] = [ip(5), ip(40), ip(50)];
  const [portA, portB] = [await freePort(torA), await freePort(torB)];
  const tor = (me: string, port: number, as: number, exp: string) => torBirdConfig({ address: me, port, as, neighbor: us, neighborAs: 64512, protocol: 'node1', statics: ['0.0.0.0/0'], export: exp });
  const a = await startBird(tor(torA, portA, 65001, 'where proto = "s4"'));
  const b = await startBird(tor(torB, portB, 65002, 'none')).catch(async (e) => {
    await a.stop();
    throw e;
  });
  const logs: string[] = [];
  const agent = agentFor('node1', logs);
  const plan = (filters: string[]) => snapshotOf(noMesh, node('node1', `${us}/8`),
    bgpFilter({ exportV4: [{ cidr: '0.0.0.0/0', matchOperator: 'Equal', source: 'RemotePeers', action: 'Accept' }] }),
    { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor-a' }, spec: { peerIP: `${torA}:${portA}`, asNumber: 65001 } },
    { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor-b' }, spec: { peerIP: `${torB}:${portB}`, asNumber: 65002, filters } });
  const says = async () => `\n${JSON.stringify(agent.status().peers)}\n${await b.birdc('show', 'route', 'all')}\n${logs.join('\n')}`;
  try {
    agent.update(plan([]));
    const peers = () => agent.status().peers;
    // B has our blocks (sent with whatever else goes to it) once A's default is learned here.
    await waitFor('both up, A\'s default learned, our blocks at B', async () => peers().every((p) => p.bgpState === 'Established') && peers()[0]!.prefixesAccepted === 1 && (await b.routes('node1')).includes('10.244.8.0/26'), 15_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    assert.equal(await b.routes('node1'), ['10.244.7.0/26', '10.244.8.0/26'], 'no filter: the default route is not passed on (outside every pool)');
    agent.update(plan(['edge']));
    await waitFor('the default route at B', async () => (await b.routes('node1')).includes('0.0.0.0/0'), 10_000).catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    assert.match(await b.birdc('show', 'route', 'all', '0.0.0.0/0'), /BGP\.as_path: 64512 65001\n/);
  } finally {
    await agent.stop({ graceful: false });
    await Promise.all([a.stop(), b.stop()]);
  }
});

test('localASNumber: the session speaks as that AS (BIRD configured for it Establishes, our route reaches it with that AS in its path)', async () => {
  const ip = loopbackNet();
  const [us, them] = [ip(5), ip(40)];
  const port = await freePort(them);
  const bird: Bird = await startBird(torBirdConfig({ address: them, port, as: 65000, neighbor: us, neighborAs: 65010, statics: ['10.88.1.0/24'] }));
  const logs: string[] = [];
  let learned: readonly LearnedRoute[] = [];
  const agent = agentFor('node1', logs, (l) => { learned = l; });
  const says = async () => `\n${JSON.stringify(agent.status().peers)}\n${await bird.birdc('show', 'route', 'all')}\n${logs.join('\n')}\n${bird.log()}`;
  try {
    agent.update(snapshotOf(noMesh, node('node1', `${us}/8`),
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: `${them}:${port}`, asNumber: 65000, localASNumber: 65010 } }));
    assert.is(agent.status().asNumber, 64512, 'the node keeps its own AS');
    await waitFor('Established as AS 65010, our block at BIRD, BIRD\'s route here', async () => agent.status().peers[0]?.bgpState === 'Established' && (await bird.routes('tor')).includes('10.244.7.0/26') && learned.length === 1, 15_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    assert.match(await bird.birdc('show', 'route', 'all', '10.244.7.0/26'), /BGP\.as_path: 65010\n/, 'the AS_PATH holds the session\'s AS only');
    assert.equal(learned.map((r) => r.prefix), ['10.88.1.0/24']);
  } finally {
    await agent.stop({ graceful: false });
    await bird.stop();
  }
});

test('localASNumber on a route reflector: a peer in the session\'s AS is an rr client (confd\'s effective AS): a non-client\'s route reflected to it, its route to the non-client', async () => {
  const ip = loopbackNet();
  // A: iBGP in the session's AS 65010 (BGPPeer localASNumber). C: a second reflector of our cluster
  // (a Node with our routeReflectorClusterID), iBGP in the node's AS: a non-client.
  const [us, c, a] = [ip(5), ip(30), ip(40)];
  const [portA, portC] = [await freePort(a), await freePort(c)];
  const birdAt = (address: string, port: number, as: number, statics: string[]) => startBird(torBirdConfig({ address, port, as, neighbor: us, neighborAs: as, protocol: 'node1', statics }));
  const birdA = await birdAt(a, portA, 65010, ['10.88.1.0/24']);
  const birdC = await birdAt(c, portC, 64512, ['10.88.3.0/24']).catch(async (e) => {
    await birdA.stop();
    throw e;
  });
  const logs: string[] = [];
  const agent = agentFor('node1', logs);
  const cluster = '224.0.0.1';
  const says = async () => `\n${JSON.stringify(agent.status().peers)}\n${await birdA.birdc('show', 'route', 'all')}\n${await birdC.birdc('show', 'route', 'all')}\n${logs.join('\n')}`;
  try {
    agent.update(snapshotOf(noMesh, pool('routes', '10.88.0.0/16'),
      node('node1', `${us}/8`, undefined, { bgp: { ipv4Address: `${us}/8`, routeReflectorClusterID: cluster } }),
      node('rr2', `${c}/8`, undefined, { bgp: { ipv4Address: `${c}/8`, routeReflectorClusterID: cluster } }),
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor-a' }, spec: { node: 'node1', peerIP: `${a}:${portA}`, asNumber: 65010, localASNumber: 65010 } },
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'rr2' }, spec: { node: 'node1', peerIP: `${c}:${portC}`, asNumber: 64512 } }));
    const peers = () => agent.status().peers;
    await waitFor('both Established, both routes learned', () => peers().length === 2 && peers().every((p) => p.bgpState === 'Established' && p.prefixesAccepted === 1), 15_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    // Reflected both ways only when A is a client (C is not: our cluster).
    await waitFor('A\'s route at C and C\'s at A', async () => (await birdC.routes('node1')).includes('10.88.1.0/24') && (await birdA.routes('node1')).includes('10.88.3.0/24'), 10_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    const atC = await birdC.birdc('show', 'route', 'all', '10.88.1.0/24');
    assert.match(atC, new RegExp(`BGP\\.originator_id: ${a.replace(/\./g, '\\.')}`));
    assert.match(atC, /BGP\.cluster_list: 224\.0\.0\.1/);
    assert.match(atC, /BGP\.as_path: \n/, 'iBGP on both sessions: no AS added');
  } finally {
    await agent.stop({ graceful: false });
    await Promise.all([birdA.stop(), birdC.stop()]);
  }
});

test.run();
