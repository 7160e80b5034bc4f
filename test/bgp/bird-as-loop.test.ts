// The AS-loop check against BIRD's: the same UPDATEs (paths holding our AS 0, 1 and 2 times) sent
// by a hand-driven iBGP peer to a real BIRD 2 and to our speaker, with BIRD's `allow local as`
// unset and `allow local as 1` (what Calico's confd writes for BGPPeer numAllowedLocalASNumbers: 1)
// and the speaker's allowLocalAs the same: both accept exactly the same prefixes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import { encodeAnnounce, parsePrefix } from '../../src/control/bgp/wire';
import { birdBgpConfig, loopbackNet, randomPort, startBird, waitFor } from './bird';
import { RawPeer } from './raw-peer';

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

test.run();
