// The speaker against a real BIRD 2 on loopback: sessions, routes both ways, withdrawals, hold
// timer expiry, BIRD restarts, eBGP.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker, BgpPeerStatus } from '../../src/control/bgp/speaker';
import { Bird, loopbackNet, randomPort, startBird, waitFor } from './bird';

interface Setup {
  speaker: BgpSpeaker;
  bird: Bird;
  ip: (h: number) => string;
}

const quiet = () => undefined;

/** BIRD at ip(3) with `statics` and one BGP protocol "podway" toward our speaker at ip(2). */
function birdConfig(ip: (h: number) => string, birdPort: number, ourPort: number, opts: { birdAs: number; ourAs: number; statics: string[]; extra?: string }): string {
  return `
router id ${ip(3)};
log stderr all;
protocol device {}
protocol static s4 {
  ipv4;
${opts.statics.map(p => `  route ${p} unreachable;`).join('\n')}
}
protocol bgp podway {
  local ${ip(3)} port ${birdPort} as ${opts.birdAs};
  neighbor ${ip(2)} port ${ourPort} as ${opts.ourAs};
  strict bind;
  ${opts.birdAs !== opts.ourAs ? 'multihop; # loopback peers are not on a shared subnet' : ''}
  hold time 3;
  keepalive time 1;
  connect retry time 1;
  connect delay time 1;
  error wait time 1, 2;
  ipv4 { import all; export where proto = "s4"; ${opts.extra ?? ''} };
}
`;
}

async function setup(opts: { birdAs: number; ourAs: number; statics: string[]; hold?: number }): Promise<Setup> {
  const ip = loopbackNet();
  const birdPort = randomPort();
  const ourPort = birdPort + 1;
  const bird = await startBird(birdConfig(ip, birdPort, ourPort, opts));
  const speaker = new BgpSpeaker({ localAs: opts.ourAs, routerId: ip(2), listenAddress: ip(2), listenPort: ourPort, connectRetrySeconds: 1, log: quiet });
  speaker.setPeers([{ address: ip(3), asNumber: opts.birdAs, port: birdPort, localAddress: ip(2), holdTimeSeconds: opts.hold ?? 9, description: 'bird' }]);
  return { speaker, bird, ip };
}

const peerState = (s: BgpSpeaker): BgpPeerStatus => s.status()[0];
const established = (s: BgpSpeaker) => peerState(s).state === 'Established';

test('iBGP with BIRD: session, routes both ways, withdrawals both ways', async () => {
  const { speaker, bird } = await setup({ birdAs: 64512, ourAs: 64512, statics: ['10.99.0.0/24', '10.99.1.0/24'] });
  try {
    speaker.setExports([{ prefix: '10.244.1.0/26', communities: ['64512:7'] }, { prefix: '10.244.1.64/26' }]);
    await speaker.start();
    await waitFor('Established', () => established(speaker));
    const learned = await waitFor('BIRD routes in learned()', () => {
      const r = speaker.learned();
      return r.length === 2 ? r : null;
    });
    assert.equal(learned.map(r => r.prefix).sort(), ['10.99.0.0/24', '10.99.1.0/24']);
    assert.is(learned[0].peer, peerState(speaker).address);
    assert.equal(learned[0].asPath, []);
    assert.equal(learned[0].localPref, 100);
    await waitFor('our exports in BIRD', async () => (await bird.routes('podway')).join() === '10.244.1.0/26,10.244.1.64/26');
    const detail = await bird.birdc('show', 'route', 'all', '10.244.1.0/26');
    assert.match(detail, /BGP\.community: \(64512,7\)/);
    assert.match(detail, new RegExp(`BGP\\.next_hop: ${peerState(speaker).address.replace(/\d+$/, '2').replace(/\./g, '\\.')}`));

    // Withdraw from our side.
    speaker.setExports([{ prefix: '10.244.1.0/26' }]);
    await waitFor('withdrawal in BIRD', async () => (await bird.routes('podway')).join() === '10.244.1.0/26');

    // Withdraw from BIRD's side: disable its static protocol.
    const routesEvents: number[] = [];
    speaker.on('routes', r => routesEvents.push(r.length));
    await bird.birdc('disable', 's4');
    await waitFor('BIRD withdrawal in learned()', () => speaker.learned().length === 0);
    assert.ok(routesEvents.includes(0), 'routes event with the empty table');
    const st = peerState(speaker);
    assert.ok(st.updatesIn >= 2 && st.updatesOut >= 2, JSON.stringify(st));
    assert.is(st.prefixesReceived, 0);
    assert.is(st.description, 'bird');
  } finally {
    await speaker.stop();
    await bird.stop();
  }
});

test('eBGP with BIRD: AS prepended, next hop self, BIRD AS in learned paths', async () => {
  const { speaker, bird, ip } = await setup({ birdAs: 65001, ourAs: 4200000001, statics: ['192.0.2.0/24'] });
  try {
    speaker.setExports([{ prefix: '10.244.2.0/26' }]);
    await speaker.start();
    await waitFor('Established', () => established(speaker)).catch(async e => { console.log(peerState(speaker), bird.log(), await bird.protocol('podway')); throw e; });
    const r = await waitFor('learned', () => speaker.learned()[0]);
    assert.is(r.prefix, '192.0.2.0/24');
    assert.equal(r.asPath, [65001]);
    assert.is(r.nextHop, ip(3));
    assert.is(r.localPref, undefined);
    await waitFor('our export in BIRD', async () => (await bird.routes('podway')).length === 1);
    const detail = await bird.birdc('show', 'route', 'all', '10.244.2.0/26');
    assert.match(detail, /BGP\.as_path: 4200000001/);
    assert.match(detail, new RegExp(`BGP\\.next_hop: ${ip(2).replace(/\./g, '\\.')}`));
    assert.is(peerState(speaker).type, 'external');
  } finally {
    await speaker.stop();
    await bird.stop();
  }
});

test('hold timer expires when BIRD is frozen; BIRD restart re-establishes', async () => {
  const { speaker, bird } = await setup({ birdAs: 64512, ourAs: 64512, statics: ['10.99.0.0/24'], hold: 3 });
  try {
    await speaker.start();
    await waitFor('Established', () => established(speaker));
    await waitFor('learned', () => speaker.learned().length === 1);
    bird.signal('SIGSTOP');
    await waitFor('hold timer expiry', () => /Hold timer expired/.test(peerState(speaker).info), 10000);
    assert.is.not(peerState(speaker).state, 'Established');
    assert.is(speaker.learned().length, 0, 'routes of the dead session are gone');
    bird.signal('SIGCONT');
    await waitFor('Established again after thaw', () => established(speaker), 20000);

    await bird.kill();
    await waitFor('session down after kill', () => !established(speaker));
    await waitFor('learned emptied', () => speaker.learned().length === 0);
    await bird.start();
    await waitFor('Established after BIRD restart', () => established(speaker), 20000);
    await waitFor('routes back', () => speaker.learned().length === 1);
  } finally {
    await speaker.stop();
    await bird.stop();
  }
});

test.run();
