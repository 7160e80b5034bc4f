// TCP-MD5 (RFC 2385) sessions with a real BIRD 2: keyed in both dial directions, and a wrong key
// that the kernel never lets through. A mismatch (a password on one side only, or two different
// ones) is named in the peer's info and logged once, from the kernel's TCP-MD5 drop counters.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import { birdBgpConfig, loopbackNet, randomPort, startBird, waitFor } from './bird';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { BgpAgent } from '../../src/control/bgp/agent';
import { secretFromDir, watchSecrets } from '../../src/cli/bgp-secrets';
import { affinity, node, pool, snapshotOf } from '../control/fixtures';

const AS = 64512;

async function session(opts: { birdKey: string; ourKey: string; birdPassive: boolean; ourPassive?: boolean; log?: (msg: string) => void }) {
  const ip = loopbackNet();
  const birdPort = randomPort();
  const ourPort = birdPort + 1;
  const bird = await startBird(birdBgpConfig({
    address: ip(3), port: birdPort, as: AS, statics: ['10.99.0.0/24'],
    neighbors: [{ name: 'podway', address: ip(2), port: ourPort, as: AS, extra: `${opts.birdKey ? `password "${opts.birdKey}";` : ''} ${opts.birdPassive ? 'passive on;' : ''}` }],
  }));
  const speaker = new BgpSpeaker({ localAs: AS, routerId: ip(2), listenAddress: ip(2), listenPort: ourPort, connectRetrySeconds: 1, log: (_l, m) => opts.log?.(m) });
  const setKey = (key: string) => speaker.setPeers([{ address: ip(3), asNumber: AS, port: birdPort, localAddress: ip(2), ...(key ? { password: key } : {}), passive: opts.ourPassive ?? !opts.birdPassive }]);
  setKey(opts.ourKey);
  speaker.setExports([{ prefix: '10.244.7.0/26' }]);
  return { bird, speaker, setKey };
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
    // Our signed SYNs reach BIRD's keyed listener with the wrong signature: TCPMD5Failure (BIRD
    // shares our namespace here, as a ToR's kernel would count it in its own).
    await waitFor('the hint', () => /TCP-MD5 mismatch suspected: the kernel dropped \d+ segments? with a wrong MD5 signature \(TCPMD5Failure\)/.test(speaker.status()[0].info));
  } finally {
    await speaker.stop();
    await bird.stop();
  }
});

// The review's case: BIRD has a password, podway none (and the reverse). Both sides dial; each
// side's SYNs are dropped by the other's kernel, no error ever reaches either, and the session
// hangs in Connect/Active: the drop counters say why, in info and once in the log.
for (const [birdKey, ourKey, counter, what] of [
  ['s3cret-key', '', 'TCPMD5Unexpected', 'with an unexpected MD5 signature'],
  ['', 's3cret-key', 'TCPMD5NotFound', 'without the MD5 signature our password expects'],
] as const) {
  test(`TCP-MD5 password on ${birdKey ? 'BIRD\'s' : 'our'} side only: info and the log name the mismatch (${counter})`, async () => {
    const lines: string[] = [];
    const { bird, speaker } = await session({ birdKey, ourKey, birdPassive: false, ourPassive: false, log: (m) => lines.push(m) });
    try {
      await speaker.start();
      const hint = new RegExp(`TCP-MD5 mismatch suspected: the kernel dropped \\d+ segments? ${what} \\(${counter}\\)`);
      const info = await waitFor(`the hint in info (${counter})`, () => { const i = speaker.status()[0].info; return hint.test(i) ? i : null; });
      const st = speaker.status()[0];
      assert.ok(['Connect', 'Active'].includes(st.state), JSON.stringify(st));
      assert.ok(info.startsWith(`${st.state}`), info);
      const logged = () => lines.filter((l) => hint.test(l));
      assert.is(logged().length, 1, lines.join('\n'));
      assert.match(logged()[0]!, new RegExp(`session not established: .*; this side has ${ourKey ? 'a' : 'no'} password for the peer`));
      // More attempts, more drops: still logged once.
      await new Promise((r) => setTimeout(r, 3000));
      assert.is(logged().length, 1, lines.join('\n'));
      assert.is(speaker.status()[0].messagesIn, 0);
    } finally {
      await speaker.stop();
      await bird.stop();
    }
  });
}

test('the TCP-MD5 hint goes once the passwords match and the session is up', async () => {
  const lines: string[] = [];
  const { bird, speaker, setKey } = await session({ birdKey: 's3cret-key', ourKey: '', birdPassive: false, ourPassive: false, log: (m) => lines.push(m) });
  try {
    await speaker.start();
    await waitFor('the hint', () => /TCPMD5Unexpected/.test(speaker.status()[0].info));
    setKey('s3cret-key');
    await waitFor('Established', () => speaker.status()[0].state === 'Established', 30_000);
    assert.is(speaker.status()[0].info, 'Established');
  } finally {
    await speaker.stop();
    await bird.stop();
  }
});

// The review's rotation: the BGPPeer's password is a secret under --bgp-secrets; BIRD gets a new
// key and the file is replaced (tmp + mv). The agent, told by watchSecrets (a watch on the secret's
// directory; the 10 s poll is set far beyond this test here), reads it again and re-plans at once:
// no datastore change is needed for the session to come up.
test('a rotated password under --bgp-secrets is read again at once (watchSecrets): the session comes up with the new key', async () => {
  const ip = loopbackNet();
  const birdPort = randomPort();
  const ourPort = birdPort + 1;
  const dir = mkdtempSync(path.join(tmpdir(), `podway-bgpfix26-${process.pid}-`));
  const lines: string[] = [];
  const bird = await startBird(birdBgpConfig({
    address: ip(3), port: birdPort, as: AS, statics: ['10.99.0.0/24'],
    neighbors: [{ name: 'podway', address: ip(2), port: ourPort, as: AS, extra: 'password "new-key"; passive on;' }],
  }));
  const API = 'projectcalico.org/v3';
  const snap = snapshotOf(
    pool('p', '10.244.0.0/16'), node('node1', `${ip(2)}/8`), affinity('node1', '10.244.7.0/26'),
    { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: ourPort, bindMode: 'NodeIP', nodeToNodeMeshEnabled: false } },
    { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: `${ip(3)}:${birdPort}`, asNumber: AS, password: { secretKeyRef: { name: 'bgp-pw', key: 'password' } } } },
  );
  mkdirSync(path.join(dir, 'bgp-pw'));
  writeFileSync(path.join(dir, 'bgp-pw', 'password'), 'old-key\n');
  const agent = new BgpAgent({
    node: 'node1',
    createSpeaker: (o) => new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: (_l, m) => lines.push(m) }),
    resolveSecret: (name, key) => secretFromDir(dir, name, key),
    log: (m) => lines.push(m),
    onLearned: () => {},
  });
  const watch = watchSecrets(dir, { secretsInUse: () => agent.secretsInUse(), onCheck: () => { const said = agent.recheckSecrets(); if (said) lines.push(said); }, pollMs: 600_000 });
  try {
    agent.update(snap);
    assert.equal(agent.secretsInUse(), [{ name: 'bgp-pw', key: 'password' }]);
    assert.is(agent.recheckSecrets(), '', 'nothing changed: no new plan');
    await new Promise((r) => setTimeout(r, 3000));
    assert.is.not(agent.status().peers[0]!.bgpState, 'Established', 'the old key cannot establish');
    writeFileSync(path.join(dir, 'bgp-pw', '.password.tmp'), 'new-key\n');
    renameSync(path.join(dir, 'bgp-pw', '.password.tmp'), path.join(dir, 'bgp-pw', 'password'));
    await waitFor('Established with the new key', () => agent.status().peers[0]!.bgpState === 'Established', 30_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(agent.status().peers)}\n${lines.join('\n')}\n${await bird.protocol('podway')}`);
    });
    assert.ok(lines.includes(`secret bgp-pw/password changed: peer ${ip(3)} changed (session reset)`), lines.join('\n'));
    assert.not.ok(lines.some((l) => l.includes('new-key') || l.includes('old-key')), 'no password in the log');
  } finally {
    watch.close();
    await agent.stop({ graceful: false });
    await bird.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
