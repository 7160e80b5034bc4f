// BGPPeer session fields against BIRD 2, as calico-node's BIRD gets them from confd's template:
// keepaliveTime (`keepalive time`), maxRestartTime (`graceful restart time`: the restart time we
// announce, how long BIRD keeps our routes after we go without a NOTIFICATION), sourceAddress
// None (no `source address`: the session is not bound to the node's address) and nextHopMode Self
// (`next hop self`: a route passed on to an iBGP peer carries our address, not its own next hop).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpAgent } from '../../src/control/bgp/agent';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import { loopbackNet, startBird, torBirdConfig, waitFor } from './bird';
import { freePort } from '../helpers/etcd';
import { node, pool, snapshotOf } from '../control/fixtures';

const API = 'projectcalico.org/v3';
const noMesh = { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { nodeToNodeMeshEnabled: false } };

function agentFor(logs: string[]): BgpAgent {
  return new BgpAgent({
    node: 'node1',
    createSpeaker: (o) => new BgpSpeaker({ ...o, listenPort: 0, connectRetrySeconds: 1, log: (_l, m) => logs.push(m) }),
    log: (m) => logs.push(m),
    onLearned: () => {},
    exports: [{ prefix: '10.244.7.0/26' }],
  });
}

test('keepaliveTime: KEEPALIVEs that often; maxRestartTime: the restart time BIRD keeps our routes for after we go', async () => {
  const ip = loopbackNet();
  const [us, them] = [ip(5), ip(40)];
  const port = await freePort(them);
  // BIRD's default hold time (240 s) and ours (90 s): 30 s between our KEEPALIVEs unless told.
  const bird = await startBird(torBirdConfig({ address: them, port, as: 65000, neighbor: us, neighborAs: 64512, extra: 'graceful restart aware;' }));
  const logs: string[] = [];
  const agent = agentFor(logs);
  try {
    agent.update(snapshotOf(noMesh, node('node1', `${us}/8`),
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: `${them}:${port}`, asNumber: 65000, keepaliveTime: '1s', maxRestartTime: '3s' } }));
    const peer = () => agent.status().peers[0];
    await waitFor('Established, our block at BIRD', async () => peer()?.bgpState === 'Established' && (await bird.routes('tor')).includes('10.244.7.0/26'), 15_000).catch((e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(peer())}\n${logs.join('\n')}\n${bird.log()}`);
    });
    // Three more messages (KEEPALIVEs: nothing else is sent now) within 10 s: 1 s apart, not 30.
    const before = peer()!.messagesOut;
    await waitFor('three KEEPALIVEs sent', () => peer()!.messagesOut >= before + 3, 10_000);
    assert.match(await bird.protocol('tor'), /Established/);
    // Gone without a NOTIFICATION (a restart): BIRD keeps our block, stale, for the 3 s we
    // announced (not 120 s), then drops it.
    await agent.stop({ graceful: true });
    await waitFor('BIRD keeps our block, stale, while it waits for us', async () => /Active|Connect|Idle/.test(await bird.protocol('tor')), 10_000);
    assert.ok((await bird.routes('tor')).includes('10.244.7.0/26'), 'kept during the restart time');
    await waitFor('BIRD drops our block when the restart time we announced is over', async () => !(await bird.routes('tor')).includes('10.244.7.0/26'), 20_000);
  } finally {
    await agent.stop({ graceful: false });
    await bird.stop();
  }
});

test('sourceAddress None: the session is not bound to the node\'s address (the kernel picks its source)', async () => {
  const ip = loopbackNet();
  const [us, them] = [ip(5), ip(40)];
  const port = await freePort(them);
  // To a 127/8 address the kernel picks 127.0.0.1 (the loopback route's src), not the node's
  // 127.a.b.5: BIRD knows the session only from there.
  const bird = await startBird(torBirdConfig({ address: them, port, as: 65000, neighbor: '127.0.0.1', neighborAs: 64512 }));
  const logs: string[] = [];
  const agent = agentFor(logs);
  try {
    const tor = (spec: Record<string, unknown>) => snapshotOf(noMesh, node('node1', `${us}/8`),
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: `${them}:${port}`, asNumber: 65000, ...spec } });
    agent.update(tor({ sourceAddress: 'None' }));
    const peer = () => agent.status().peers[0];
    await waitFor('Established from the kernel\'s source address', async () => peer()?.bgpState === 'Established' && (await bird.routes('tor')).includes('10.244.7.0/26'), 15_000).catch((e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(peer())}\n${logs.join('\n')}\n${bird.log()}`);
    });
    assert.match(await bird.protocol('tor'), /Neighbor address:\s+127\.0\.0\.1/);
  } finally {
    await agent.stop({ graceful: false });
    await bird.stop();
  }
});

test('nextHopMode Self: a route learned from an eBGP peer reaches an iBGP BIRD with our address as next hop (Auto: its own, as iBGP keeps it)', async () => {
  const ip = loopbackNet();
  const [us, torA, ibgp] = [ip(5), ip(40), ip(50)];
  const portA = await freePort(torA);
  const portB = await freePort(ibgp);
  // ToR A (AS 65001) announces another rack's block, inside the pool (so podway passes it on),
  // with its own address as next hop; the iBGP BIRD (the node's AS) only listens.
  const tor = await startBird(torBirdConfig({ address: torA, port: portA, as: 65001, neighbor: us, neighborAs: 64512, protocol: 'node1', statics: ['10.244.9.0/26'], import: 'none' }));
  const inner = await startBird(torBirdConfig({ address: ibgp, port: portB, as: 64512, neighbor: us, neighborAs: 64512, protocol: 'node1', multihop: false })).catch(async (e) => {
    await tor.stop(); // the first BIRD is not left running when the second cannot start
    throw e;
  });
  const logs: string[] = [];
  const agent = agentFor(logs);
  const plan = (nextHopMode: string) => snapshotOf(noMesh, pool('p', '10.244.0.0/16'), node('node1', `${us}/8`),
    { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor-a' }, spec: { peerIP: `${torA}:${portA}`, asNumber: 65001 } },
    { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'inner' }, spec: { peerIP: `${ibgp}:${portB}`, asNumber: 64512, nextHopMode } });
  const nextHopAtInner = async () => /BGP\.next_hop: (\S+)/.exec(await inner.birdc('show', 'route', 'all', '10.244.9.0/26'))?.[1];
  const says = async () => `\n${JSON.stringify(agent.status().peers)}\n${await inner.birdc('show', 'route', 'all')}\n${logs.join('\n')}\n${tor.log()}\n${inner.log()}`;
  try {
    agent.update(plan('Self'));
    assert.equal(agent.status().peers.map((p) => [p.address, p.type]), [[torA, 'global'], [ibgp, 'global']]);
    const self = await waitFor('the iBGP BIRD has ToR A\'s block', nextHopAtInner, 20_000).catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    assert.is(self, us, 'next hop self: our address');
    // Auto (confd writes neither `next hop self` nor `keep`): iBGP keeps ToR A's next hop.
    agent.update(plan('Auto'));
    const kept = await waitFor('the iBGP BIRD has it with ToR A\'s next hop', async () => ((await nextHopAtInner()) === torA ? torA : null), 20_000).catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
    assert.is(kept, torA);
    // And Self again: ours again (the session settings follow the BGPPeer).
    agent.update(plan('Self'));
    await waitFor('our address again', async () => (await nextHopAtInner()) === us, 20_000).catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
  } finally {
    await agent.stop({ graceful: false });
    await tor.stop();
    await inner.stop();
  }
});

test.run();
