// TCP-MD5 (RFC 2385) sessions with a real BIRD 2: keyed in both dial directions, and a wrong key
// that the kernel never lets through.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import { birdBgpConfig, loopbackNet, randomPort, startBird, waitFor } from './bird';

const AS = 64512;

async function session(opts: { birdKey: string; ourKey: string; birdPassive: boolean }) {
  const ip = loopbackNet();
  const birdPort = randomPort();
  const ourPort = birdPort + 1;
  const bird = await startBird(birdBgpConfig({
    address: ip(3), port: birdPort, as: AS, statics: ['10.99.0.0/24'],
    neighbors: [{ name: 'podway', address: ip(2), port: ourPort, as: AS, extra: `password "${opts.birdKey}"; ${opts.birdPassive ? 'passive on;' : ''}` }],
  }));
  const speaker = new BgpSpeaker({ localAs: AS, routerId: ip(2), listenAddress: ip(2), listenPort: ourPort, connectRetrySeconds: 1, log: () => undefined });
  speaker.setPeers([{ address: ip(3), asNumber: AS, port: birdPort, localAddress: ip(2), password: opts.ourKey, passive: !opts.birdPassive }]);
  speaker.setExports([{ prefix: '10.244.7.0/26' }]);
  return { bird, speaker };
}

for (const birdPassive of [true, false]) {
  test(`TCP-MD5 with BIRD, ${birdPassive ? 'we dial (keyed socket)' : 'BIRD dials (keyed listener)'}: Established, routes both ways`, async () => {
    const { bird, speaker } = await session({ birdKey: 's3cret-key', ourKey: 's3cret-key', birdPassive });
    try {
      await speaker.start();
      await waitFor('Established', () => speaker.status()[0].state === 'Established');
      await waitFor('BIRD route learned', () => speaker.learned().length === 1);
      await waitFor('our route in BIRD', async () => (await bird.routes('podway')).join() === '10.244.7.0/26');
    } finally {
      await speaker.stop();
      await bird.stop();
    }
  });
}

test('TCP-MD5 with the wrong key: no session in either direction', async () => {
  const { bird, speaker } = await session({ birdKey: 'one-key', ourKey: 'another-key', birdPassive: true });
  try {
    await speaker.start();
    await new Promise(r => setTimeout(r, 4000));
    assert.is.not(speaker.status()[0].state, 'Established');
    assert.is(speaker.status()[0].messagesIn, 0, 'not one BGP message got through');
    assert.not.match(await bird.protocol('podway'), /Established/);
  } finally {
    await speaker.stop();
    await bird.stop();
  }
});

test.run();
