// The speaker's FSM and RIB against itself and against a hand-driven peer on loopback: the
// podway<->podway mesh with collision detection, OPEN errors, hold timer expiry, RFC 7606
// treat-as-withdraw on a live session, prefix limits, a fuzzer, and config diffs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker, BgpSpeakerOptions } from '../../src/control/bgp/speaker';
import { encodeAnnounce, encodeNotification, encodeOpen, KEEPALIVE, MsgType, parsePrefix, HEADER_LEN, encodeWithdraw } from '../../src/control/bgp/wire';
import { loopbackNet, randomPort, waitFor } from './bird';
import { seededInts } from '../helpers/prng';
import { RawPeer } from './raw-peer';
import { createServer } from 'node:net';

const quiet = () => undefined;
const speakers: BgpSpeaker[] = [];
const peers: RawPeer[] = [];

function speaker(opts: BgpSpeakerOptions): BgpSpeaker {
  const s = new BgpSpeaker({ connectRetrySeconds: 1, log: quiet, ...opts });
  speakers.push(s);
  return s;
}

async function cleanup(): Promise<void> {
  for (const p of peers.splice(0)) p.close();
  await Promise.all(speakers.splice(0).map(s => s.stop()));
}

const state = (s: BgpSpeaker, addr?: string) => (addr ? s.status().find(p => p.address === addr) : s.status()[0])!;

test('two podway speakers, both dialling: collision leaves one session; IPv4 and IPv6 routes both ways', async () => {
  const ip = loopbackNet();
  const [pa, pb] = [randomPort(), randomPort()];
  const a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: pa });
  const b = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: pb });
  try {
    a.setPeers([{ address: ip(3), asNumber: 64512, port: pb, localAddress: ip(2) }]);
    b.setPeers([{ address: ip(2), asNumber: 64512, port: pa, localAddress: ip(3) }]);
    a.setExports([{ prefix: '10.244.1.0/26' }, { prefix: 'fd00:10:244:1::/122', nextHop: 'fd00::2' }]);
    b.setExports([{ prefix: '10.244.2.0/26', communities: ['64512:100'] }]);
    await Promise.all([a.start(), b.start()]);
    await waitFor('both Established', () => state(a).state === 'Established' && state(b).state === 'Established');
    await waitFor('routes at b', () => b.learned().length === 2);
    await waitFor('routes at a', () => a.learned().length === 1);
    const atB = Object.fromEntries(b.learned().map(r => [r.prefix, r]));
    assert.is(atB['10.244.1.0/26'].nextHop, ip(2));
    assert.is(atB['10.244.1.0/26'].peer, ip(2));
    assert.is(atB['fd00:10:244:1::/122'].nextHop, 'fd00::2');
    assert.equal(a.learned()[0], {
      prefix: '10.244.2.0/26', nextHop: ip(3), peer: ip(3), asPath: [], localPref: 100, med: undefined,
      communities: ['64512:100'], originatorId: undefined, clusterList: undefined,
    });
    // Still exactly one session each way after collision handling settled.
    await new Promise(r => setTimeout(r, 1500));
    assert.is(state(a).state, 'Established');
    assert.is(state(b).state, 'Established');

    a.setExports([{ prefix: 'fd00:10:244:1::/122', nextHop: 'fd00::2' }]);
    await waitFor('IPv4 withdrawal at b', () => b.learned().length === 1 && b.learned()[0].prefix === 'fd00:10:244:1::/122');
    a.setExports([]);
    await waitFor('IPv6 withdrawal at b', () => b.learned().length === 0);

    // Stopping one side with a NOTIFICATION: the other sees it and drops its routes.
    await a.stop();
    await waitFor('b notices', () => /Received: Cease: administrative shutdown/.test(state(b).info) && a.learned().length === 0 && b.learned().length === 0);
  } finally {
    await cleanup();
  }
});

test('bindMode NodeIP: an IPv6 listener that cannot open holds only the IPv6 sessions; IPv4 runs, the IPv6 listener is retried alone', async () => {
  const ip = loopbackNet();
  const [pa, pb, pc] = [randomPort(), randomPort(), randomPort()];
  // ::1 port pa taken by someone else (as a BIRD6 still running, or an address in DAD, would refuse the bind).
  // It drops what connects (c dialling a), so its close() ends at once.
  const squatter = createServer(socket => socket.destroy());
  await new Promise<void>((resolve, reject) => { squatter.once('error', reject); squatter.listen({ port: pa, host: '::1' }, () => resolve()); });
  const logs: string[] = [];
  const a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenAddress6: '::1', listenPort: pa, listenRetryMs: { first: 200, max: 400 }, log: (_l, m) => { logs.push(m); } });
  const b = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: pb });
  const c = speaker({ localAs: 64512, routerId: ip(4), listenAddress: '::1', listenPort: pc });
  try {
    a.setPeers([
      { address: ip(3), asNumber: 64512, port: pb, localAddress: ip(2), families: ['ipv4'] },
      { address: '::1', asNumber: 64512, port: pc, localAddress: '::1', families: ['ipv6'] },
    ]);
    b.setPeers([{ address: ip(2), asNumber: 64512, port: pa, localAddress: ip(3), families: ['ipv4'] }]);
    c.setPeers([{ address: '::1', asNumber: 64512, port: pa, localAddress: '::1', families: ['ipv6'] }]);
    await Promise.all([a.start(), b.start(), c.start()]);
    await waitFor('IPv4 session Established with the IPv6 listener down', () => state(a, ip(3)).state === 'Established' && state(b).state === 'Established');
    assert.is(a.listenerErrors().length, 1);
    assert.match(a.listenerErrors()[0], /IPv6 listener on ::1 port \d+ cannot open: .*EADDRINUSE.*IPv6 sessions wait for it/);
    assert.ok(logs.some(l => /IPv6 listener on ::1/.test(l)), 'warned');
    assert.is(state(a, '::1').state, 'Idle', 'the IPv6 session waits for its listener');
    // Retried alone, with backoff: still down while the port is taken, the IPv4 session untouched.
    await new Promise(r => setTimeout(r, 1000));
    assert.is(a.listenerErrors().length, 1);
    assert.is(state(a, '::1').state, 'Idle');
    await new Promise<void>(resolve => squatter.close(() => resolve()));
    await waitFor('IPv6 listener open and its session Established', () => a.listenerErrors().length === 0 && state(a, '::1').state === 'Established' && state(c).state === 'Established');
    assert.is(state(a, ip(3)).state, 'Established');
  } finally {
    squatter.close();
    await cleanup();
  }
});

test('a peer removed that never came up: ipv4RibsComplete turns true and listeners hear it (a routes event)', async () => {
  const ip = loopbackNet();
  const a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: randomPort() });
  try {
    a.setPeers([{ address: ip(9), asNumber: 64512, port: randomPort(), localAddress: ip(2) }]);
    assert.is(a.ipv4RibsComplete(), false, 'a configured peer with no session');
    let heard = 0;
    a.on('routes', () => { heard++; });
    a.setPeers([]);
    await waitFor('a routes event', () => heard > 0);
    assert.is(a.ipv4RibsComplete(), true);
  } finally {
    await cleanup();
  }
});

test('graceful restart helper: a peer that restarts keeps its routes with us until End-of-RIB or its restart time; ipv4RibsComplete follows its End-of-RIB', async () => {
  const ip = loopbackNet();
  const [pa, pb] = [randomPort(), randomPort()];
  const makeA = (gr: number) => {
    const a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: pa, gracefulRestartSeconds: gr });
    a.setPeers([{ address: ip(3), asNumber: 64512, port: pb, localAddress: ip(2) }]);
    return a;
  };
  const b = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: pb });
  try {
    b.setPeers([{ address: ip(2), asNumber: 64512, passive: true }]);
    await b.start();
    assert.is(b.ipv4RibsComplete(), false, 'its peer is not Established');
    const a1 = makeA(30);
    a1.setExports([{ prefix: '10.244.1.0/26' }, { prefix: '10.244.1.64/26' }]);
    await a1.start();
    await waitFor('learned', () => b.learned().length === 2);
    await waitFor('the whole table in (End-of-RIB)', () => b.ipv4RibsComplete());
    await a1.stop({ graceful: true });
    await waitFor('b sees the session go', () => state(b).state !== 'Established');
    assert.is(b.ipv4RibsComplete(), false, 'the peer is restarting');
    await new Promise(r => setTimeout(r, 1000));
    assert.is(b.learned().length, 2, 'routes kept while the peer restarts');

    // Back with one export: the other is stale and goes with End-of-RIB.
    const a2 = makeA(2);
    a2.setExports([{ prefix: '10.244.1.64/26' }]);
    await a2.start();
    await waitFor('re-established', () => state(b).state === 'Established');
    await waitFor('stale route gone after End-of-RIB', () => b.learned().map(r => r.prefix).join() === '10.244.1.64/26');
    assert.is(b.ipv4RibsComplete(), true, 'its End-of-RIB came in again');

    // Gone for good: dropped once its restart time (2 s) is over.
    await a2.stop({ graceful: true });
    await waitFor('b sees the session go', () => state(b).state !== 'Established');
    assert.is(b.learned().length, 1);
    await waitFor('dropped after the restart time', () => b.learned().length === 0, 6000);
  } finally {
    await cleanup();
  }
});

test('passive peer: dials once at start, then only the other side dials; peer changes are diffed', async () => {
  const ip = loopbackNet();
  const [pa, pb] = [randomPort(), randomPort()];
  const lines: string[] = [];
  const a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: pa, log: (_l, m) => lines.push(m) });
  const b = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: pb });
  const connects: number[] = [];
  a.on('peer', (st: { state: string }) => { if (st.state === 'Connect') connects.push(Date.now()); });
  try {
    a.setPeers([{ address: ip(3), asNumber: 64512, port: pb, localAddress: ip(2), passive: true }]);
    b.setPeers([{ address: ip(2), asNumber: 64512, port: pa, localAddress: ip(3) }]);
    b.setExports([{ prefix: '10.0.0.0/8' }]);
    await a.start();
    // Its one dial at start is refused (b is not listening yet): then it waits, and says nothing.
    await waitFor('the start dial refused', () => state(a).state === 'Active');
    await new Promise((r) => setTimeout(r, 2500)); // two connect-retry times (1 s here)
    assert.is(connects.length, 1, 'dialled once, not again at the connect retry');
    assert.is(state(a).state, 'Active');
    assert.not.ok(lines.some((l) => /not established/.test(l)), lines.join('\n'));
    await b.start();
    await waitFor('Established', () => state(a).state === 'Established');
    await waitFor('route', () => a.learned().length === 1);
    const before = state(b).since;
    // The same config again changes nothing; a changed one restarts the session (Cease 6).
    b.setPeers([{ address: ip(2), asNumber: 64512, port: pa, localAddress: ip(3) }]);
    assert.is(state(b).since, before);
    b.setPeers([{ address: ip(2), asNumber: 64512, port: pa, localAddress: ip(3), holdTimeSeconds: 30 }]);
    await waitFor('a sees the config-change Cease', () => /Received: Cease: other configuration change/.test(state(a).lastError));
    await waitFor('re-established', () => state(a).state === 'Established' && state(b).state === 'Established');
    await waitFor('route back', () => a.learned().length === 1);
    // Removing the peer: Cease 3, routes gone.
    b.setPeers([]);
    assert.equal(b.status(), []);
    await waitFor('a sees de-configuration', () => /peer de-configured/.test(state(a).info) && a.learned().length === 0);
  } finally {
    await cleanup();
  }
});

test('passive peer started after the other side: its dial at start brings the session up without waiting for the peer\'s connect retry', async () => {
  const ip = loopbackNet();
  const [pa, pb] = [randomPort(), randomPort()];
  // b dials every 60 s only: a session up within seconds is a's dial.
  const b = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: pb, connectRetrySeconds: 60 });
  const a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: pa });
  try {
    b.setPeers([{ address: ip(2), asNumber: 64512, port: pa, localAddress: ip(3) }]);
    b.setExports([{ prefix: '10.0.0.0/8' }]);
    await b.start();
    await waitFor('b refused (a not listening)', () => /refused/.test(state(b).info));
    a.setPeers([{ address: ip(3), asNumber: 64512, port: pb, localAddress: ip(2), passive: true }]);
    await a.start();
    await waitFor('Established by a\'s dial', () => state(a).state === 'Established' && a.learned().length === 1, 20_000);
  } finally {
    await cleanup();
  }
});

test('graceful restart flags in OPEN: a restart sets R and F until the first session is up, then R clear and F set; a first start clears both', async () => {
  const ip = loopbackNet();
  for (const restarted of [true, false]) {
    const pa = randomPort();
    const a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: pa, restarted });
    const peers: RawPeer[] = [];
    try {
      // passive (the raw peer dials); its one dial at start finds nobody listening
      a.setPeers([{ address: ip(3), asNumber: 64512, port: randomPort(), localAddress: ip(2), passive: true }]);
      await a.start();
      const openOf = async () => {
        const p = await RawPeer.connect(ip(2), pa, ip(3));
        peers.push(p);
        const open = await p.next(MsgType.Open);
        return { p, gr: open.caps.gracefulRestart! };
      };
      const first = await openOf();
      assert.is(first.gr.restarting, restarted, `R in the first OPEN (restarted ${restarted})`);
      assert.equal(first.gr.families.map((f) => f.forwarding), [restarted, restarted], 'F in the first OPEN');
      first.p.send(encodeOpen(64512, 90, ip(3), { multiprotocol: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }], routeRefresh: true, fourOctetAs: 64512, unknown: [] }));
      await first.p.next(MsgType.Keepalive);
      first.p.send(KEEPALIVE);
      await waitFor('Established', () => state(a).state === 'Established');
      first.p.socket.destroy();
      await waitFor('down', () => state(a).state !== 'Established');
      const again = await openOf();
      assert.is(again.gr.restarting, false, 'R clear once a session was up');
      assert.equal(again.gr.families.map((f) => f.forwarding), [true, true], 'F set: this process forwarded all along');
    } finally {
      for (const p of peers) p.socket.destroy();
      await cleanup();
    }
  }
});

test('FSM transitions as peer events: Connect -> Active on refusal and retry, then OpenSent -> OpenConfirm -> Established', async () => {
  const ip = loopbackNet();
  const [pa, pb] = [randomPort(), randomPort()];
  const a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: 0 });
  const states: string[] = [];
  a.on('peer', st => { if (states[states.length - 1] !== st.state) states.push(st.state); });
  try {
    a.setPeers([{ address: ip(3), asNumber: 64512, port: pb, localAddress: ip(2) }]);
    assert.is(state(a).state, 'Idle'); // not started yet (Idle means stopped)
    await a.start();
    await waitFor('refused', () => state(a).info === 'Active (last: Connect: connection refused)');
    assert.is(state(a).state, 'Active');
    await waitFor('retried', () => states.filter(x => x === 'Connect').length >= 2, 5000);
    // Now the peer appears (passive, so only our retries can bring the session up).
    const b = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: pb });
    b.setPeers([{ address: ip(2), asNumber: 64512, port: pa, passive: true }]);
    await b.start();
    await waitFor('Established', () => state(a).state === 'Established');
    const tail = states.slice(states.lastIndexOf('Connect'));
    assert.equal(tail, ['Connect', 'OpenSent', 'OpenConfirm', 'Established']);
    await b.stop();
    await waitFor('down after the peer stops', () => state(a).state !== 'Established');
    assert.match(state(a).lastError, /Received: Cease: administrative shutdown/);
  } finally {
    await cleanup();
  }
});

/** A speaker at ip(2) waiting for a hand-driven peer at ip(5) (AS 65005, eBGP). */
async function withRawPeer(opts: { maxPrefixes?: number; hold?: number; log?: BgpSpeakerOptions['log']; asNumber?: number; allowLocalAs?: number } = {}) {
  const ip = loopbackNet();
  const port = randomPort();
  const asNumber = opts.asNumber ?? 65005;
  const s = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: port, ...(opts.log ? { log: opts.log } : {}) });
  s.setPeers([{ address: ip(5), asNumber, passive: true, maxPrefixes: opts.maxPrefixes, holdTimeSeconds: opts.hold, ...(opts.allowLocalAs ? { allowLocalAs: opts.allowLocalAs } : {}) }]);
  s.setExports([{ prefix: '10.244.9.0/26' }]);
  await s.start();
  const raw = await RawPeer.connect(ip(2), port, ip(5), { fourOctetAs: true, ebgp: asNumber !== 64512 });
  peers.push(raw);
  return { s, raw, ip, port };
}

test('OPEN with the wrong AS gets NOTIFICATION OPEN error / bad peer AS', async () => {
  try {
    const { s, raw } = await withRawPeer();
    await raw.establish(65099, '192.0.2.5').catch(() => undefined);
    const n = await raw.next(MsgType.Notification);
    assert.equal([n.code, n.subcode], [2, 2]);
    assert.ok(await raw.waitClosed());
    assert.match(state(s).info, /Sent: OPEN message error: bad peer AS/);
  } finally {
    await cleanup();
  }
});

test('graceful-restart peer: a bare TCP connection from its address leaves the session up; a new connection with a valid OPEN is its restart (routes kept, stale)', async () => {
  const logs: string[] = [];
  try {
    const { s, raw, ip, port } = await withRawPeer({ log: (_l, m) => logs.push(m) });
    await raw.establish(65005, '192.0.2.5', 90, 60);
    await waitFor('Established', () => state(s).state === 'Established');
    const ctx = { fourOctetAs: true, ebgp: true };
    raw.send(encodeAnnounce([parsePrefix('198.51.100.0/24')], { origin: 0, asPath: [{ type: 2, asns: [65005] }], nextHop: ip(5) }, ctx)[0]);
    await waitFor('learned', () => s.learned().length === 1);
    // Connect and close, twice; then one that stays open and idle.
    for (let i = 0; i < 2; i++) {
      const bare = await RawPeer.connect(ip(2), port, ip(5));
      peers.push(bare);
      await bare.next(MsgType.Open); // accepted: the speaker sent its OPEN on it
      bare.close();
    }
    const idle = await RawPeer.connect(ip(2), port, ip(5), ctx);
    peers.push(idle);
    await idle.next(MsgType.Open);
    await new Promise(r => setTimeout(r, 500));
    assert.is(state(s).state, 'Established');
    assert.not.ok(raw.closed, 'the established connection is kept');
    assert.is(s.learned().length, 1);
    assert.not.ok(logs.some(m => /session down/.test(m)), logs.join('\n'));
    // The peer really restarted: a valid OPEN on the new connection replaces the old session.
    idle.send(encodeOpen(65005, 90, '192.0.2.5', { multiprotocol: [{ afi: 1, safi: 1 }], routeRefresh: true, fourOctetAs: 65005, gracefulRestart: { restarting: true, time: 60, families: [{ afi: 1, safi: 1, forwarding: true }] }, unknown: [] }));
    await idle.next(MsgType.Keepalive);
    idle.send(KEEPALIVE);
    assert.ok(await raw.waitClosed(), 'the old connection is closed');
    await waitFor('Established again', () => state(s).state === 'Established');
    assert.ok(logs.some(m => /session down: peer restarted \(new connection with an OPEN\)/.test(m)), logs.join('\n'));
    assert.is(s.learned().length, 1, 'its routes kept (stale) until its End-of-RIB');
  } finally {
    await cleanup();
  }
});

test('graceful-restart peer gone with no routes: the log says none are kept', async () => {
  const logs: string[] = [];
  try {
    const { s, raw } = await withRawPeer({ log: (_l, m) => logs.push(m) });
    await raw.establish(65005, '192.0.2.5', 90, 60);
    await waitFor('Established', () => state(s).state === 'Established');
    raw.close();
    await waitFor('restart logged', () => logs.some(m => /peer restarting/.test(m)));
    const line = logs.find(m => /peer restarting/.test(m))!;
    assert.match(line, /peer restarting \(graceful restart, up to 60 s\); it had no routes of those families, none kept/);
    assert.not.match(line, /keeping 0 routes/);
  } finally {
    await cleanup();
  }
});

test('at most one incoming connection waiting for an OPEN per peer: a newer one replaces the older (Cease / connection rejected)', async () => {
  try {
    const { s, raw, ip, port } = await withRawPeer();
    await raw.next(MsgType.Open);
    const idle: RawPeer[] = [raw];
    for (let i = 0; i < 20; i++) {
      const c = await RawPeer.connect(ip(2), port, ip(5), { fourOctetAs: true, ebgp: true });
      peers.push(c);
      await c.next(MsgType.Open);
      idle.push(c);
    }
    const last = idle.pop()!;
    for (const c of idle) {
      assert.ok(await c.waitClosed(), 'an older idle connection is closed');
      const n = await c.next(MsgType.Notification);
      assert.equal([n.code, n.subcode], [6, 5]);
    }
    assert.not.ok(last.closed);
    // The newest one is the peer's: it comes up.
    last.send(encodeOpen(65005, 90, '192.0.2.5', { multiprotocol: [{ afi: 1, safi: 1 }], routeRefresh: true, fourOctetAs: 65005, unknown: [] }));
    await last.next(MsgType.Keepalive);
    last.send(KEEPALIVE);
    await waitFor('Established', () => state(s).state === 'Established');
  } finally {
    await cleanup();
  }
});

test('hold timer: a silent peer gets NOTIFICATION 4 after the negotiated hold time', async () => {
  try {
    const { s, raw } = await withRawPeer({ hold: 3 });
    await raw.establish(65005, '192.0.2.5', 3);
    await waitFor('Established', () => state(s).state === 'Established');
    // The speaker sent our export (eBGP: AS prepended, next hop self) and End-of-RIB.
    const u = await raw.next(MsgType.Update);
    assert.equal(u.nlri, ['10.244.9.0/26']);
    assert.equal(u.attrs.asPath, [{ type: 2, asns: [64512] }]);
    const n = await raw.next(MsgType.Notification, 8000);
    assert.equal([n.code, n.subcode], [4, 0]);
    assert.match(state(s).info, /Hold timer expired/);
    assert.is(raw.undecodable.length, 0);
  } finally {
    await cleanup();
  }
});

test('RFC 7606 on a live session: malformed attribute withdraws the route, session stays up', async () => {
  const logs: string[] = [];
  try {
    const { s, raw, ip } = await withRawPeer({ log: (_l, m) => logs.push(m) });
    await raw.establish(65005, '192.0.2.5');
    await waitFor('Established', () => state(s).state === 'Established');
    const ctx = { fourOctetAs: true, ebgp: true };
    raw.send(encodeAnnounce([parsePrefix('198.51.100.0/24')], { origin: 0, asPath: [{ type: 2, asns: [65005] }], nextHop: ip(5) }, ctx)[0]);
    await waitFor('learned', () => s.learned().length === 1);
    // Same prefix again with a 3-octet COMMUNITIES: treat-as-withdraw.
    const [good] = encodeAnnounce([parsePrefix('198.51.100.0/24')], { origin: 0, asPath: [{ type: 2, asns: [65005] }], nextHop: ip(5), communities: [1] }, ctx);
    const bad = Buffer.from(good);
    const at = bad.indexOf(Buffer.from([0xc0, 8, 4]));
    bad[at + 2] = 3; // value length 3: the last octet becomes the next attribute's header -> overrun too
    raw.send(bad);
    await waitFor('withdrawn', () => s.learned().length === 0);
    assert.is(state(s).state, 'Established');
    assert.is(state(s).updatesTreatedAsWithdraw, 1);
    // The same again and again: every one counted, one log line per reason per minute.
    for (let i = 0; i < 20; i++) raw.send(bad);
    await waitFor('counted', () => state(s).updatesTreatedAsWithdraw === 21);
    const lines = logs.filter(m => /treated as withdraw/.test(m));
    assert.is(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /logged at most once per 60 s per reason/);
    // AS loop (our AS in the path from an eBGP peer): received, not accepted.
    raw.send(encodeAnnounce([parsePrefix('198.51.101.0/24')], { origin: 0, asPath: [{ type: 2, asns: [65005, 64512] }], nextHop: ip(5) }, ctx)[0]);
    await waitFor('received', () => state(s).prefixesReceived === 1);
    assert.is(state(s).prefixesAccepted, 0);
    assert.is(s.learned().length, 0);
    raw.send(encodeWithdraw([parsePrefix('198.51.101.0/24')])[0]);
    await waitFor('gone', () => state(s).prefixesReceived === 0);
  } finally {
    await cleanup();
  }
});

test('AS loop on iBGP as on eBGP (BIRD): our AS in the AS_PATH rejects the route, counted as received not accepted, one log line; allowLocalAs N lets N occurrences in', async () => {
  const announce = (raw: RawPeer, prefix: string, asns: number[], nextHop: string, ebgp: boolean) =>
    raw.send(encodeAnnounce([parsePrefix(prefix)], { origin: 0, asPath: [{ type: 2, asns }], nextHop, localPref: ebgp ? undefined : 100 }, { fourOctetAs: true, ebgp })[0]);
  const logs: string[] = [];
  try {
    // iBGP (the peer is in our AS 64512), as the hostile review's ToR: the path went out of our AS and came back.
    const { s, raw, ip } = await withRawPeer({ asNumber: 64512, log: (_l, m) => logs.push(m) });
    await raw.establish(64512, '192.0.2.5');
    await waitFor('Established', () => state(s).state === 'Established');
    assert.is(state(s).type, 'internal');
    announce(raw, '10.59.0.0/16', [65001, 64512, 65002], ip(5), false);
    for (let i = 0; i < 5; i++) announce(raw, `10.60.${i}.0/24`, [64512], ip(5), false);
    announce(raw, '10.61.0.0/16', [65001, 65002], ip(5), false);
    await waitFor('received', () => state(s).prefixesReceived === 7);
    assert.is(state(s).prefixesAccepted, 1);
    assert.equal(s.learned().map(r => r.prefix), ['10.61.0.0/16']);
    const lines = logs.filter(m => /rejected as a loop/.test(m));
    assert.is(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /AS_PATH holds our AS 64512 1 time \(allowed: 0, BGPPeer numAllowedLocalASNumbers\)/);
    // The looped route withdrawn: gone from the counts too.
    raw.send(encodeWithdraw([parsePrefix('10.59.0.0/16')])[0]);
    await waitFor('withdrawn', () => state(s).prefixesReceived === 6);
  } finally {
    await cleanup();
  }
  try {
    // allowLocalAs 1 (numAllowedLocalASNumbers: 1): one occurrence accepted, two rejected; on eBGP too.
    for (const asNumber of [64512, 65005]) {
      const ebgp = asNumber !== 64512;
      const { s, raw, ip } = await withRawPeer({ asNumber, allowLocalAs: 1 });
      await raw.establish(asNumber, '192.0.2.5');
      await waitFor('Established', () => state(s).state === 'Established');
      const first = ebgp ? [65005] : [];
      announce(raw, '10.59.0.0/16', [...first, 65001, 64512, 65002], ip(5), ebgp);
      announce(raw, '10.62.0.0/16', [...first, 64512, 65001, 64512], ip(5), ebgp);
      await waitFor('received', () => state(s).prefixesReceived === 2);
      assert.is(state(s).prefixesAccepted, 1, `AS ${asNumber}`);
      assert.equal(s.learned().map(r => r.prefix), ['10.59.0.0/16'], `AS ${asNumber}`);
      await cleanup();
    }
  } finally {
    await cleanup();
  }
});

test('maxPrefixes: a flooding peer is cut off with Cease / maximum prefixes', async () => {
  try {
    const { s, raw, ip } = await withRawPeer({ maxPrefixes: 1000 });
    await raw.establish(65005, '192.0.2.5');
    await waitFor('Established', () => state(s).state === 'Established');
    const flood = Array.from({ length: 5000 }, (_, i) => parsePrefix(`100.${i >> 8}.${i & 255}.0/24`));
    for (const m of encodeAnnounce(flood, { origin: 0, asPath: [{ type: 2, asns: [65005] }], nextHop: ip(5) }, { fourOctetAs: true, ebgp: true })) raw.send(m);
    const n = await raw.next(MsgType.Notification);
    assert.equal([n.code, n.subcode], [6, 1]);
    await waitFor('routes dropped', () => s.learned().length === 0 && state(s).state !== 'Established');
  } finally {
    await cleanup();
  }
});

test('a full table in many UPDATEs: all learned, few coalesced routes events, announced on to an iBGP peer', async () => {
  try {
    const { s, raw, ip } = await withRawPeer();
    const port2 = randomPort();
    const other = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: port2 });
    other.setPeers([{ address: ip(2), asNumber: 64512, passive: true }]);
    await other.start();
    s.setPeers([{ address: ip(5), asNumber: 65005, passive: true }, { address: ip(3), asNumber: 64512, port: port2, localAddress: ip(2) }]);
    await raw.establish(65005, '192.0.2.5');
    await waitFor('both Established', () => s.status().every(x => x.state === 'Established'));
    let events = 0;
    s.on('routes', () => events++);
    const N = 20000;
    const msgs: Buffer[] = [];
    for (let k = 0; k < N; k += 100) {
      const chunk = Array.from({ length: 100 }, (_, i) => parsePrefix(`${20 + ((k + i) >> 16)}.${((k + i) >> 8) & 255}.${(k + i) & 255}.0/24`));
      msgs.push(...encodeAnnounce(chunk, { origin: 0, asPath: [{ type: 2, asns: [65005, 1000 + k / 100] }], nextHop: ip(5) }, { fourOctetAs: true, ebgp: true }));
    }
    for (const m of msgs) raw.send(m);
    await waitFor('all learned', () => state(s, ip(5)).prefixesAccepted === N, 60000);
    // ... plus s's own export (10.244.9.0/26).
    await waitFor('all passed on', () => state(other).prefixesAccepted === N + 1, 60000);
    await waitFor('last routes event', () => events > 0 && s.learned().length === N);
    assert.ok(events < msgs.length / 2, `${events} routes events for ${msgs.length} UPDATEs`);
    const r = other.learned().find(x => x.prefix === '20.0.5.0/24')!;
    assert.equal([r.asPath, r.nextHop, r.localPref], [[65005, 1000], ip(5), 100], 'eBGP route to iBGP: path and next hop unchanged');
  } finally {
    await cleanup();
  }
});

test('stop() while our dial is still connecting leaves no hold timer behind', async () => {
  const ip = loopbackNet();
  const port = randomPort();
  const { createServer } = await import('node:net');
  const accepted: import('node:net').Socket[] = [];
  const server = createServer(sock => { accepted.push(sock); sock.on('error', () => undefined); });
  await new Promise<void>(r => server.listen(port, ip(3), () => r()));
  try {
    const before = process.getActiveResourcesInfo().filter(x => x === 'Timeout').length;
    for (let i = 0; i < 5; i++) {
      const s = new BgpSpeaker({ localAs: 64512, routerId: ip(2), listenPort: 0, connectRetrySeconds: 1, log: quiet });
      s.setPeers([{ address: ip(3), asNumber: 64512, port, localAddress: ip(2) }]);
      await s.start(); // dials at once; stop in the same tick, before the connect completes
      await s.stop();
    }
    await new Promise(r => setTimeout(r, 300));
    const after = process.getActiveResourcesInfo().filter(x => x === 'Timeout').length;
    assert.ok(after <= before, `${after - before} more timers running: a hold or keepalive timer left behind`);
  } finally {
    for (const a of accepted) a.destroy();
    server.close();
  }
});

test('connections from unconfigured addresses are closed', async () => {
  try {
    const { ip, port } = await withRawPeer();
    const stranger = await RawPeer.connect(ip(2), port, ip(77));
    peers.push(stranger);
    assert.ok(await stranger.waitClosed(3000));
    assert.is(stranger.messages.length, 0);
  } finally {
    await cleanup();
  }
});

test('fuzz on live sessions: mutated messages end in NOTIFICATION or treat-as-withdraw; the process and other sessions live on', async () => {
  const ip = loopbackNet();
  const port = randomPort();
  const s = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: port });
  const other = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: port });
  try {
    s.setPeers([{ address: ip(5), asNumber: 65005, passive: true }, { address: ip(3), asNumber: 64512, port, localAddress: ip(2) }]);
    other.setPeers([{ address: ip(2), asNumber: 64512, passive: true }]);
    other.setExports([{ prefix: '10.1.0.0/16' }]);
    await Promise.all([s.start(), other.start()]);
    await waitFor('mesh up', () => state(s, ip(3)).state === 'Established' && s.learned().length === 1);
    const rand = seededInts(4242);
    const ctx = { fourOctetAs: true, ebgp: true };
    const base = encodeAnnounce([parsePrefix('198.51.100.0/24'), parsePrefix('fd00:1::/64')].slice(0, 1), {
      origin: 0, asPath: [{ type: 2, asns: [65005] }], nextHop: ip(5), communities: [7], med: 1,
    }, ctx)[0];
    let notified = 0;
    let withdrawn = 0;
    for (let i = 0; i < 60; i++) {
      const raw = await RawPeer.connect(ip(2), port, ip(5), ctx);
      peers.push(raw);
      await raw.establish(65005, '192.0.2.5');
      await waitFor('fuzz session up', () => state(s, ip(5)).state === 'Established');
      const before = state(s, ip(5)).updatesTreatedAsWithdraw;
      const msg = Buffer.from(base);
      // Mostly the body (header errors are one case each); sometimes the marker too.
      for (let k = 0; k < 1 + rand(2); k++) msg[HEADER_LEN + rand(msg.length - HEADER_LEN)] = rand(256);
      if (rand(10) === 0) msg[rand(16)] = 0;
      if (rand(6) === 0) msg.writeUInt16BE(HEADER_LEN + rand(msg.length), 16); // a length that lies
      raw.send(msg);
      raw.send(encodeNotification(6, 2)); // then leave, so each case starts clean
      await raw.waitClosed(5000);
      if (raw.messages.some(m => m.type === MsgType.Notification)) notified++;
      if (state(s, ip(5)).updatesTreatedAsWithdraw > before) withdrawn++;
      assert.is(raw.undecodable.length, 0);
      await waitFor('fuzz peer down', () => state(s, ip(5)).state !== 'Established');
    }
    assert.ok(notified > 0, 'some cases got a NOTIFICATION');
    assert.ok(withdrawn > 0 && notified + withdrawn < 60, `${notified} notified, ${withdrawn} withdrawn`);
    assert.is(state(s, ip(3)).state, 'Established', 'the other session stayed up');
    assert.is(s.learned().length, 1);
  } finally {
    await cleanup();
  }
});

test.run();
