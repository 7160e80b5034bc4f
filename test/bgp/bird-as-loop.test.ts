// The AS-loop check against BIRD's: the same UPDATEs (paths holding our AS 0, 1 and 2 times) sent
// by a hand-driven iBGP peer to a real BIRD 2 and to our speaker, with BIRD's `allow local as`
// unset and `allow local as 1` (what Calico's confd writes for BGPPeer numAllowedLocalASNumbers: 1)
// and the speaker's allowLocalAs the same: both accept exactly the same prefixes.
// And which sessions of Calico's plan get the allowance (src/control/bgp/peering.ts): a BGPPeer's
// numAllowedLocalASNumbers reaches the session its peerIP makes, not one its peerSelector makes
// (confd's nodeAsBGPPeers carries no NumAllowLocalAS), through the BGP agent of `podway run --bgp`
// against BIRD as a selected Calico node and as an outside peer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import { encodeAnnounce, parsePrefix } from '../../src/control/bgp/wire';
import { birdBgpConfig, loopbackNet, randomPort, startBird, waitFor } from './bird';
import { RawPeer } from './raw-peer';
import { BgpAgent } from '../../src/control/bgp/agent';
import type { LearnedRoute } from '../../src/control/route-calc';
import { freePort } from '../helpers/etcd';
import { node, snapshotOf } from '../control/fixtures';

const AS = 64512;
// Our AS in the AS_PATH 0, 1 and 2 times; the second octet of the prefix is per peer (each
// BIRD protocol's routes are then its table's only ones for their prefixes).
const PATHS: [number, number[]][] = [
  [1, [65001, 65002]],
  [2, [65001, AS, 65002]],
  [3, [AS, 65001, AS]],
];

function announceAll(raw: RawPeer, nextHop: string, second: number): void {
  for (const [third, asns] of PATHS) {
    raw.send(encodeAnnounce([parsePrefix(`10.${second}.${third}.0/24`)], { origin: 0, asPath: [{ type: 2, asns }], nextHop, localPref: 100 }, { fourOctetAs: true, ebgp: false })[0]);
  }
}

test('iBGP AS loop: podway accepts what BIRD accepts, with allow local as unset and 1', async () => {
  const ip = loopbackNet();
  const birdPort = randomPort();
  const ourPort = birdPort + 1;
  // Peers at ip(5) (no allowance) and ip(6) (allow 1); they never listen, BIRD and we wait for them.
  const bird = await startBird(birdBgpConfig({
    address: ip(3), port: birdPort, as: AS, statics: [],
    neighbors: [
      { name: 'raw0', address: ip(5), port: ourPort + 1, as: AS, extra: 'passive on;' },
      { name: 'raw1', address: ip(6), port: ourPort + 1, as: AS, extra: 'passive on; allow local as 1;' },
    ],
  }));
  const speaker = new BgpSpeaker({ localAs: AS, routerId: ip(2), listenAddress: ip(2), listenPort: ourPort, connectRetrySeconds: 1, log: () => undefined });
  const raws: RawPeer[] = [];
  try {
    speaker.setPeers([
      { address: ip(5), asNumber: AS, passive: true },
      { address: ip(6), asNumber: AS, passive: true, allowLocalAs: 1 },
    ]);
    await speaker.start();
    for (const [host, port, from] of [[ip(3), birdPort, ip(5)], [ip(3), birdPort, ip(6)], [ip(2), ourPort, ip(5)], [ip(2), ourPort, ip(6)]] as const) {
      const raw = await RawPeer.connect(host, port, from);
      raws.push(raw);
      await raw.establish(AS, from === ip(5) ? '192.0.2.5' : '192.0.2.6');
      announceAll(raw, from, from === ip(5) ? 50 : 60);
    }
    const birdSays = async (proto: string) => (await bird.routes(proto));
    await waitFor('BIRD has imported what it accepts', async () => (await birdSays('raw0')).length >= 1 && (await birdSays('raw1')).length >= 2);
    await waitFor('our speaker has received all', () => speaker.status().every(p => p.prefixesReceived === PATHS.length));
    // BIRD handles the UPDATEs in order: the last one is in by now if it was accepted at all.
    await new Promise(r => setTimeout(r, 1000));
    const ours = (peer: string) => speaker.learned().filter(r => r.peer === peer).map(r => r.prefix).sort();
    const b0 = await birdSays('raw0');
    const b1 = await birdSays('raw1');
    assert.equal(b0, ['10.50.1.0/24'], 'BIRD: no allowance, any occurrence of its AS rejects');
    assert.equal(b1, ['10.60.1.0/24', '10.60.2.0/24'], 'BIRD: allow local as 1 admits one occurrence, not two');
    assert.equal(ours(ip(5)), b0, 'podway as BIRD, no allowance');
    assert.equal(ours(ip(6)), b1, 'podway as BIRD, allowLocalAs 1');
    const st = Object.fromEntries(speaker.status().map(p => [p.address, p]));
    assert.equal([st[ip(5)]!.prefixesAccepted, st[ip(6)]!.prefixesAccepted], [1, 2]);
  } finally {
    for (const r of raws) r.close();
    await speaker.stop();
    await bird.stop();
  }
});

test('numAllowedLocalASNumbers as calico-node applies it: on a peerIP BGPPeer\'s session, not on a peerSelector one (BIRD as the selected node refused its route with our AS)', async () => {
  const ip = loopbackNet();
  const API = 'projectcalico.org/v3';
  // podway node1 (AS 65001) at ip(2); BIRD (AS 65002) is node2 at ip(3), selected by a
  // peerSelector, and an outside peer at ip(4) named by peerIP; both allow 1 local AS.
  const nodePort = await freePort(ip(2));
  const torPort = await freePort(ip(4));
  const birdConf = `
router id ${ip(3)};
log stderr all;
protocol device {}
protocol static s4 { ipv4; route 10.71.1.0/24 unreachable; route 10.71.2.0/24 unreachable; route 10.72.1.0/24 unreachable; route 10.72.2.0/24 unreachable; }
# x.x.2.0/24 leaves with node1's AS 65001 in its path (a route that went through another AS 65001 rack)
filter out71 { if net !~ [ 10.71.0.0/16+ ] then reject; if net = 10.71.2.0/24 then bgp_path.prepend(65001); accept; }
filter out72 { if net !~ [ 10.72.0.0/16+ ] then reject; if net = 10.72.2.0/24 then bgp_path.prepend(65001); accept; }
protocol bgp node1sel {
  local ${ip(3)} port ${nodePort} as 65002; neighbor ${ip(2)} port ${nodePort} as 65001; strict bind; multihop;
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 { import all; export filter out71; };
}
protocol bgp node1tor {
  local ${ip(4)} port ${torPort} as 65002; neighbor ${ip(2)} as 65001; strict bind; multihop; passive on;
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 { import all; export filter out72; };
}
`;
  const bird = await startBird(birdConf);
  const docs = [
    { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { nodeToNodeMeshEnabled: false, listenPort: nodePort, bindMode: 'NodeIP' } },
    { ...node('node1', `${ip(2)}/8`, undefined, { bgp: { ipv4Address: `${ip(2)}/8`, asNumber: 65001 } }), metadata: { name: 'node1', labels: { rack: 'a' } } },
    { ...node('node2', `${ip(3)}/8`, undefined, { bgp: { ipv4Address: `${ip(3)}/8`, asNumber: 65002 } }), metadata: { name: 'node2', labels: { rack: 'b' } } },
    { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'to-rack-b' }, spec: { node: 'node1', peerSelector: "rack == 'b'", numAllowedLocalASNumbers: 1 } },
    { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { node: 'node1', peerIP: `${ip(4)}:${torPort}`, asNumber: 65002, numAllowedLocalASNumbers: 1 } },
  ];
  let learned: readonly LearnedRoute[] = [];
  const logs: string[] = [];
  const agent = new BgpAgent({
    node: 'node1',
    createSpeaker: (o) => new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: (_l, m) => logs.push(m) }),
    log: (m) => logs.push(m),
    onLearned: (routes) => (learned = routes),
  });
  try {
    agent.update(snapshotOf(...docs));
    const peers = () => Object.fromEntries(agent.status().peers.map((p) => [p.address, p]));
    await waitFor(`both sessions up, both of BIRD's routes received on each: ${logs.join('\n')}\n${bird.log()}`, () => {
      const p = peers();
      return p[ip(3)]?.bgpState === 'Established' && p[ip(4)]?.bgpState === 'Established' && p[ip(3)]!.prefixesReceived === 2 && p[ip(4)]!.prefixesReceived === 2;
    }, 20_000);
    await waitFor('the accepted routes in learned()', () => learned.length >= 3);
    const from = (peer: string) => learned.filter((r) => r.peer === peer).map((r) => r.prefix).sort();
    assert.equal(from(ip(4)), ['10.72.1.0/24', '10.72.2.0/24'], 'peerIP session: allow local as 1, the route with AS 65001 once in');
    assert.equal(from(ip(3)), ['10.71.1.0/24'], 'peerSelector session: no allowance (confd writes none there), the route with AS 65001 refused');
    assert.equal([peers()[ip(3)]!.prefixesAccepted, peers()[ip(4)]!.prefixesAccepted], [1, 2]);
    assert.ok(agent.status().warnings?.some((w) => w.startsWith('BGPPeer to-rack-b: spec.numAllowedLocalASNumbers 1 is not applied to the sessions a peerSelector makes')), JSON.stringify(agent.status().warnings));
  } finally {
    await agent.stop({ graceful: false });
    await bird.stop();
  }
});

test.run();
