// podway as an RFC 4456 route reflector for real BIRD 2 routers: two clients and one non-client.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import { encodeAnnounce, parsePrefix } from '../../src/control/bgp/wire';
import { Bird, birdBgpConfig, loopbackNet, randomPort, startBird, waitFor } from './bird';
import { RawPeer } from './raw-peer';

const AS = 64512;
const CLUSTER = '10.0.0.1';

test('route reflector: client routes reach every peer with ORIGINATOR_ID and CLUSTER_LIST; non-client routes reach clients only', async () => {
  const ip = loopbackNet();
  const ourPort = randomPort();
  const birds: Bird[] = [];
  const rr = new BgpSpeaker({ localAs: AS, routerId: ip(2), listenAddress: ip(2), listenPort: ourPort, clusterId: CLUSTER, connectRetrySeconds: 1, log: () => undefined });
  try {
    // Clients at ip(3) and ip(4), non-clients at ip(5) and ip(6), each originating one /24.
    const hosts = [3, 4, 5, 6];
    const ports = new Map<number, number>();
    for (const h of hosts) {
      const port = ourPort + h;
      ports.set(h, port);
      birds.push(await startBird(birdBgpConfig({
        address: ip(h), port, as: AS, statics: [`10.${h}.0.0/24`],
        neighbors: [{ name: 'reflector', address: ip(2), port: ourPort, as: AS }],
      })));
    }
    rr.setPeers(hosts.map(h => ({ address: ip(h), asNumber: AS, port: ports.get(h), localAddress: ip(2), routeReflectorClient: h <= 4 })));
    rr.setExports([{ prefix: '10.244.0.0/26' }]);
    await rr.start();
    await waitFor('all Established', () => rr.status().every(s => s.state === 'Established'));
    await waitFor('all four learned', () => rr.learned().length === 4);
    const [c3, c4, n5, n6] = birds;
    const expectRoutes = async (b: Bird, want: string[]) => waitFor(`${want.join(' ')} at ${b.dir}`, async () => (await b.routes('reflector')).join() === want.join());
    // Client 3: our route, the other client's, both non-clients'.
    await expectRoutes(c3, ['10.244.0.0/26', '10.4.0.0/24', '10.5.0.0/24', '10.6.0.0/24']);
    await expectRoutes(c4, ['10.244.0.0/26', '10.3.0.0/24', '10.5.0.0/24', '10.6.0.0/24']);
    // Non-clients: our route and the clients' routes, not the other non-client's.
    await expectRoutes(n5, ['10.244.0.0/26', '10.3.0.0/24', '10.4.0.0/24']);
    await expectRoutes(n6, ['10.244.0.0/26', '10.3.0.0/24', '10.4.0.0/24']);
    const reflected = await c4.birdc('show', 'route', 'all', '10.3.0.0/24');
    assert.match(reflected, new RegExp(`BGP\\.originator_id: ${ip(3).replace(/\./g, '\\.')}`));
    assert.match(reflected, /BGP\.cluster_list: 10\.0\.0\.1/);
    assert.match(reflected, new RegExp(`BGP\\.next_hop: ${ip(3).replace(/\./g, '\\.')}`), 'next hop unchanged when reflecting');
    const own = await c4.birdc('show', 'route', 'all', '10.244.0.0/26');
    assert.not.match(own, /originator_id/, 'our own route is not reflected');

    // A client going away withdraws its route everywhere.
    await c3.kill();
    await waitFor('10.3 withdrawn from client 4', async () => !(await c4.routes('reflector')).includes('10.3.0.0/24'));
    await waitFor('10.3 withdrawn from non-client 5', async () => !(await n5.routes('reflector')).includes('10.3.0.0/24'));
    await c3.start();
    await expectRoutes(n6, ['10.244.0.0/26', '10.3.0.0/24', '10.4.0.0/24']);
  } finally {
    await rr.stop();
    for (const b of birds) await b.stop();
  }
});

test('route reflector loop detection: our cluster id in CLUSTER_LIST or our id as ORIGINATOR_ID is not accepted', async () => {
  const ip = loopbackNet();
  const port = randomPort();
  const rr = new BgpSpeaker({ localAs: AS, routerId: ip(2), listenAddress: ip(2), listenPort: port, clusterId: CLUSTER, connectRetrySeconds: 1, log: () => undefined });
  let raw: RawPeer | undefined;
  try {
    rr.setPeers([{ address: ip(5), asNumber: AS, passive: true, routeReflectorClient: true }]);
    await rr.start();
    raw = await RawPeer.connect(ip(2), port, ip(5));
    await raw.establish(AS, ip(5));
    await waitFor('Established', () => rr.status()[0].state === 'Established');
    const ctx = { fourOctetAs: true, ebgp: false };
    const base = { origin: 0, asPath: [], nextHop: ip(5), localPref: 100 };
    raw.send(encodeAnnounce([parsePrefix('10.1.0.0/24')], { ...base, clusterList: ['9.9.9.9', CLUSTER] }, ctx)[0]);
    raw.send(encodeAnnounce([parsePrefix('10.2.0.0/24')], { ...base, originatorId: ip(2) }, ctx)[0]);
    raw.send(encodeAnnounce([parsePrefix('10.3.0.0/24')], { ...base, clusterList: ['9.9.9.9'], originatorId: '9.9.9.8' }, ctx)[0]);
    await waitFor('three received', () => rr.status()[0].prefixesReceived === 3);
    assert.is(rr.status()[0].prefixesAccepted, 1);
    assert.equal(rr.learned().map(r => [r.prefix, r.originatorId, r.clusterList]), [['10.3.0.0/24', '9.9.9.8', ['9.9.9.9']]]);
  } finally {
    raw?.close();
    await rr.stop();
  }
});

test.run();
