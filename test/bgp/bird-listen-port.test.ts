// BGPConfiguration listenPort against BIRD as a Calico node (calico-node's BIRD listens there, `listen
// bgp port P`): a BGPPeer whose peerIP (no port) is that node's address with its AS is dialled on the
// cluster's listenPort, as confd gives BIRD (`nodesWithIPPortAndAS`, then the node's listen port),
// not on 179. The BIRD address is the smaller string, so podway is the side that dials.
// And a BGPConfiguration node.NAME's listenPort (confd's node-specific listen_port): that node alone
// listens there, and BIRD as another Calico node (its mesh protocol `neighbor ... port P`) peers
// with it there; changed or deleted, the node moves to the new port at once.
import { test } from 'uvu';
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { BgpAgent } from '../../src/control/bgp/agent';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import type { LearnedRoute } from '../../src/control/route-calc';
import { loopbackNet, startBird, waitFor } from './bird';
import { freePort } from '../helpers/etcd';
import { affinity, node, pool, snapshotOf } from '../control/fixtures';

const API = 'projectcalico.org/v3';

test('a peerIP BGPPeer naming a Calico node (its AS, no port) is dialled on the cluster\'s listenPort, where that node\'s BIRD listens', async () => {
  const ip = loopbackNet();
  // "127.a.b.40" < "127.a.b.5" as strings: BIRD (node3) is passive, podway (node1) dials.
  const [us, them] = [ip(5), ip(40)];
  const port = await freePort(us);
  const bird = await startBird(`
router id ${them};
log stderr all;
protocol device {}
protocol static s4 { ipv4; route 10.244.9.0/26 unreachable; }
protocol bgp Node_${us.replace(/\./g, '_')} {
  local ${them} port ${port} as 64512; neighbor ${us} port ${port} as 64512; strict bind; passive on;
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 { import all; export where proto = "s4"; };
}
`);
  let learned: readonly LearnedRoute[] = [];
  const logs: string[] = [];
  const agent = new BgpAgent({
    node: 'node1',
    createSpeaker: (o) => new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: (_l, m) => logs.push(m) }),
    log: (m) => logs.push(m),
    onLearned: (routes) => (learned = routes),
  });
  try {
    agent.update(snapshotOf(
      { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { nodeToNodeMeshEnabled: false, listenPort: port, bindMode: 'NodeIP' } },
      node('node1', `${us}/8`), node('node3', `${them}/8`),
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'one-way' }, spec: { node: 'node1', peerIP: them, asNumber: 64512 } },
    ));
    const peer = () => agent.status().peers[0];
    assert.equal([peer()?.address, peer()?.type], [them, 'node specific']);
    await waitFor('Established with BIRD on the listenPort, its route learned', () => peer()?.bgpState === 'Established' && learned.length === 1, 15_000).catch((e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(peer())}\n${logs.join('\n')}`);
    });
    assert.equal(learned.map((r) => [r.prefix, r.peer]), [['10.244.9.0/26', them]]);
  } finally {
    await agent.stop({ graceful: false });
    await bird.stop();
  }
});

/** Whether something accepts TCP connections at host:port (a speaker's listener). */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (v: boolean) => { s.destroy(); resolve(v); };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(2000, () => done(false));
  });
}

test('BGPConfiguration node.NAME listenPort: that node alone listens there and BIRD, as another Calico node, peers with it there; a change moves it at once, a delete back to default\'s', async () => {
  const ip = loopbackNet();
  // As strings n1 < n2 < n3: n1 is the passive side of both its mesh sessions (the others dial
  // it), n2 of its session with BIRD (n3).
  const [n1, n2, n3] = [ip(10), ip(20), ip(30)];
  const taken = new Set<number>();
  const fresh = async (host: string): Promise<number> => {
    for (let i = 0; i < 20; i++) {
      const port = await freePort(host);
      if (!taken.has(port)) return taken.add(port), port;
    }
    throw new Error('no distinct free port');
  };
  const p0 = await fresh(n2); // default's listenPort: node2's
  const p1 = await fresh(n1); // node.node1's
  const p2 = await fresh(n1); // node.node1's, changed
  // BIRD (node3) listens where nobody dials it (a port of its own, not p0): every session with it
  // is one BIRD opened, to the port confd gives it for that node.
  const birdPort = await fresh(n3);
  const birdConf = (node1Port: number) => `
router id ${n3};
log stderr all;
protocol device {}
protocol static s4 { ipv4; route 10.244.3.0/26 unreachable; }
${[['Mesh_n1', n1, node1Port], ['Mesh_n2', n2, p0]].map(([name, addr, port]) => `protocol bgp ${name} {
  local ${n3} port ${birdPort} as 64512; neighbor ${addr} port ${port} as 64512; strict bind;
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 { import all; export where proto = "s4"; };
}`).join('\n')}
`;
  const bird = await startBird(birdConf(p1));
  const logs: string[] = [];
  const agents = ['node1', 'node2'].map((name) => new BgpAgent({
    node: name,
    createSpeaker: (o) => new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: (_l, m) => logs.push(`${name}: ${m}`) }),
    log: (m) => logs.push(`${name}: ${m}`),
    onLearned: () => undefined,
  }));
  const [a1, a2] = agents as [BgpAgent, BgpAgent];
  const docs = (node1Port: number | null) => snapshotOf(
    pool('p', '10.244.0.0/16'),
    { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: p0, bindMode: 'NodeIP' } },
    ...(node1Port === null ? [] : [{ apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'node.node1' }, spec: { listenPort: node1Port } }]),
    node('node1', `${n1}/8`), node('node2', `${n2}/8`), node('node3', `${n3}/8`),
    affinity('node1', '10.244.1.0/26'), affinity('node2', '10.244.2.0/26'),
  );
  const up = (a: BgpAgent, addr: string) => a.status().peers.find((p) => p.address === addr)?.bgpState === 'Established';
  const says = async () => `\n${JSON.stringify(a1.status().peers)}\n${JSON.stringify(a2.status().peers)}\n${await bird.birdc('show', 'protocols')}\n${logs.slice(-40).join('\n')}\n${bird.log().slice(-3000)}`;
  const allUp = async (what: string) => waitFor(what, async () => up(a1, n3) && up(a2, n3) && up(a1, n2) && up(a2, n1)
    && /Established/.test(await bird.protocol('Mesh_n1')) && /Established/.test(await bird.protocol('Mesh_n2')), 30_000).catch(async (e) => {
    throw new Error(`${(e as Error).message}${await says()}`);
  });
  try {
    for (const a of agents) a.update(docs(p1));
    assert.equal([a1.status().peers.find((p) => p.address === n3)?.type, a2.status().peers.find((p) => p.address === n1)?.type], ['node-to-node mesh', 'node-to-node mesh']);
    await allUp('node1 on node.node1\'s port, node2 on default\'s: BIRD and node2 peer with node1 there');
    assert.equal([await accepts(n1, p1), await accepts(n1, p0), await accepts(n2, p0), await accepts(n2, p1)], [true, false, true, false], 'node1 listens on its own port only, node2 on default\'s');
    await waitFor('BIRD has node1\'s block from node1, node2\'s from node2', async () => (await bird.routes('Mesh_n1')).includes('10.244.1.0/26') && (await bird.routes('Mesh_n2')).includes('10.244.2.0/26'));

    // node.node1 changed: node1 listens on p2 at once, node2 dials it there; BIRD, given the
    // new port as confd would, peers there.
    writeFileSync(join(bird.dir, 'bird.conf'), birdConf(p2));
    await bird.birdc('configure');
    for (const a of agents) a.update(docs(p2));
    await allUp('everyone peers with node1 on its new port');
    assert.equal([await accepts(n1, p2), await accepts(n1, p1)], [true, false], 'the old port is closed');

    // node.node1 deleted: node1 back on default's port (BIRD not told: its session stays down).
    for (const a of agents) a.update(docs(null));
    await waitFor('node1 on default\'s port', async () => (await accepts(n1, p0)) && !(await accepts(n1, p2)), 15_000);
    await waitFor('node2 peers with node1 there', () => up(a2, n1) && up(a1, n2), 20_000).catch(async (e) => { throw new Error(`${(e as Error).message}${await says()}`); });
  } finally {
    await Promise.all(agents.map((a) => a.stop({ graceful: false })));
    await bird.stop();
  }
});

test.run();
