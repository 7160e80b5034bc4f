// A peer that restarts again and again, against a passive and against an active speaker (where
// both dial and connections collide): after each restart the session must come back Established
// and stay so. Regression: the connect-retry timer armed when the old session went down used to
// fire after the new one was up and set the state back to Active ("connection closed by peer"),
// with no session going down at all.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker, BgpSpeakerOptions, BgpPeerStatus } from '../../src/control/bgp/speaker';
import { loopbackNet, randomPort, waitFor } from './bird';

const RESTARTS = 4;
// Short, so each run's watch (2.5 retry times) and restart pause stay brief; the speaker takes
// fractions of a second (connectRetrySeconds * 1000 ms). The 200 ms pause of the odd runs still
// leaves the new session ~400 ms to come up before the old retry timer would fire under it.
const RETRY_SECONDS = 0.6;
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

function speaker(opts: BgpSpeakerOptions, logs?: string[]): BgpSpeaker {
  return new BgpSpeaker({ connectRetrySeconds: RETRY_SECONDS, log: (_l, m) => logs?.push(m), ...opts });
}

async function restartLoop(stayPassive: boolean, hard: boolean): Promise<void> {
  const ip = loopbackNet();
  const [pa, pb] = [randomPort(), randomPort()];
  const logs: string[] = [];
  // b is node1 (stays up); a is node3 (restarts). With stayPassive b only waits, otherwise both dial.
  const b = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: pb }, logs);
  b.setPeers([{ address: ip(2), asNumber: 64512, port: pa, localAddress: ip(3), passive: stayPassive }]);
  b.setExports([{ prefix: '10.244.3.0/26' }]);
  let a: BgpSpeaker | undefined;
  const status = (s: BgpSpeaker): BgpPeerStatus => s.status()[0];
  try {
    await b.start();
    for (let i = 0; i < RESTARTS; i++) {
      a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: pa, gracefulRestartSeconds: 30 });
      a.setPeers([{ address: ip(3), asNumber: 64512, port: pb, localAddress: ip(2) }]);
      a.setExports([{ prefix: `10.244.${10 + i}.0/26` }]);
      await a.start();
      await waitFor(`run ${i}: both Established`, () => status(a!).state === 'Established' && status(b).state === 'Established');
      await waitFor(`run ${i}: routes both ways`, () => b.learned().some(r => r.prefix === `10.244.${10 + i}.0/26`) && a!.learned().length === 1);
      // Longer than the connect-retry time: nothing may move the state away from Established.
      const downsBefore = logs.filter(l => /session down/.test(l)).length;
      for (let t = 0; t < 10; t++) {
        await sleep((RETRY_SECONDS * 1000 * 2.5) / 10);
        assert.is(status(b).state, 'Established', `run ${i}, ${t}: ${JSON.stringify(status(b))}\n${logs.join('\n')}`);
        assert.is(status(a).state, 'Established', `run ${i}, ${t}: restarted side ${JSON.stringify(status(a))}`);
      }
      assert.is(logs.filter(l => /session down/.test(l)).length, downsBefore, 'no session went down');
      assert.is(b.learned().length, 1, 'only the restarted peer\'s current route (the old one went with End-of-RIB)');
      // Restart: graceful (silent close, as `podway run` on SIGTERM) or a stop with NOTIFICATION.
      await a.stop({ graceful: !hard });
      a = undefined;
      await waitFor(`run ${i}: b sees the session go`, () => status(b).state !== 'Established');
      // Back quickly, inside b's connect-retry time on some runs and after it on others.
      await sleep(i % 2 ? 200 : RETRY_SECONDS * 1000 + 300);
    }
  } finally {
    await a?.stop();
    await b.stop();
  }
}

test('restarting peer against a passive speaker: Established after every restart, and it stays so', async () => {
  await restartLoop(true, false);
});

test('restarting peer against an active speaker (collisions): Established after every restart, and it stays so', async () => {
  await restartLoop(false, false);
});

test('peer stopped with NOTIFICATION and started again, passive and active: stays Established', async () => {
  await restartLoop(true, true);
  await restartLoop(false, true);
});

test.run();
