// BGPConfiguration listenPort against BIRD as a Calico node (calico-node's BIRD listens there, `listen
// bgp port P`): a BGPPeer whose peerIP (no port) is that node's address with its AS is dialled on the
// cluster's listenPort, as confd gives BIRD (`nodesWithIPPortAndAS`, then the node's listen port),
// not on 179. The BIRD address is the smaller string, so podway is the side that dials.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpAgent } from '../../src/control/bgp/agent';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import type { LearnedRoute } from '../../src/control/route-calc';
import { loopbackNet, startBird, waitFor } from './bird';
import { freePort } from '../helpers/etcd';
import { node, snapshotOf } from '../control/fixtures';

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

test.run();
