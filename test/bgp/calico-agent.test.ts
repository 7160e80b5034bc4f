// The BGP agent of `podway run --bgp` (src/control/bgp/agent.ts) with real speakers over loopback
// (127.0.0.1 and 127.0.0.2, a free port, no root): two nodes of one snapshot mesh, learn each
// other's exports, report them once settled, follow a datastore change, and show in node status.
// Also `podway node status`'s table against calicoctl's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:net';
import { BgpAgent } from '../../src/control/bgp/agent';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import type { LearnedRoute } from '../../src/control/route-calc';
import { boxTable, formatNodeStatus, formatSince } from '../../src/cli/node-status';
import { bgpNotReady } from '../../src/control/bgp/readiness';
import { Health } from '../../src/observe/health';
import { connect } from 'node:net';
import { PodwayMetrics } from '../../src/observe/metrics';
import { BgpCollector } from '../../src/observe/bgp-metrics';
import { parseMetrics, valueOf } from '../observe/prom-text';
import { affinity, node, pool, snapshotOf } from '../control/fixtures';
import { until } from '../helpers/until';

const API = 'projectcalico.org/v3';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}


test('two agents mesh over loopback, learn each other\'s blocks, follow a new block, and report status', async () => {
  const port = await freePort();
  const config = { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: port, bindMode: 'NodeIP' } };
  const docs = [pool('p', '10.244.0.0/16'), config, node('node1', '127.0.0.1/8'), node('node2', '127.0.0.2/8'), affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.64/26')];
  const learned = new Map<string, readonly LearnedRoute[]>();
  const logs: string[] = [];
  const agents = ['node1', 'node2'].map((name) => new BgpAgent({
    node: name,
    createSpeaker: (o) => new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: (_l, m) => logs.push(`${name}: ${m}`) }),
    log: (m) => logs.push(`${name}: ${m}`),
    onLearned: (routes) => learned.set(name, routes),
  }));
  try {
    for (const a of agents) a.update(snapshotOf(...docs));
    const ok = await until(() => learned.get('node1')?.[0]?.prefix === '10.244.0.64/26' && learned.get('node2')?.[0]?.prefix === '10.244.0.0/26', 15_000);
    assert.ok(ok, `learned: ${JSON.stringify([...learned])}\n${logs.join('\n')}`);
    assert.equal(learned.get('node1'), [{ prefix: '10.244.0.64/26', nextHop: '127.0.0.2', peer: '127.0.0.2' }]);

    const st = agents[0]!.status();
    assert.equal([st.enabled, st.asNumber, st.routerId, st.exported, st.learned], [true, 64512, '127.0.0.1', 1, 1]);
    assert.equal(st.peers.map((p) => [p.address, p.type, p.state, p.info, p.bgpState]), [['127.0.0.2', 'node-to-node mesh', 'up', 'Established', 'Established']]);
    assert.ok(st.peers[0]!.updatesIn >= 1 && st.peers[0]!.prefixesAccepted === 1, JSON.stringify(st.peers[0]));

    // node2 gets a second block: node1 learns it without any session being reset.
    const since = st.peers[0]!.since;
    // What each update did to the speaker (the log line of a datastore change): node2 exports one
    // more prefix, node1's plan is the same.
    assert.equal(agents.map((a) => a.update(snapshotOf(...docs, affinity('node2', '10.244.1.0/26')))), ['', 'exports 1 -> 2 prefixes']);
    assert.ok(await until(() => learned.get('node1')?.length === 2, 10_000), JSON.stringify(learned.get('node1')));
    assert.is(agents[0]!.status().peers[0]!.since, since, 'the session stayed up');
  } finally {
    await Promise.all(agents.map((a) => a.stop({ graceful: false })));
  }
});

test('a restart\'s held routes (holdStale): in learned() at once, a prefix the peer brings again replaces its held one, the rest goes at the peer\'s End-of-RIB; a peer that never comes back: at the end of the hold', async () => {
  const port = await freePort();
  const config = { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: port, bindMode: 'NodeIP' } };
  const docs = [pool('p', '10.244.0.0/16'), config, node('node1', '127.0.0.1/8'), node('node2', '127.0.0.2/8'), node('node3', '127.0.0.3/8'), affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.64/26')];
  const learned = new Map<string, { routes: readonly LearnedRoute[]; complete: boolean }[]>();
  const logs: string[] = [];
  const mk = (name: string) => new BgpAgent({
    node: name,
    createSpeaker: (o) => new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: (_l, m) => logs.push(`${name}: ${m}`) }),
    log: (m) => logs.push(`${name}: ${m}`),
    onLearned: (routes, complete) => learned.set(name, [...(learned.get(name) ?? []), { routes, complete }]),
  });
  const node1 = mk('node1');
  const agents = [node1];
  const last = () => learned.get('node1')?.at(-1);
  try {
    // node1 restarts: its last run had node2's block (brought again), a block node2 no longer has,
    // and node3's block (node3 never comes up here: held until the hold ends).
    // (sorted by prefix text, as learned() gives them)
    const held = [
      { prefix: '10.244.0.128/26', nextHop: '127.0.0.2', peer: '127.0.0.2' },
      { prefix: '10.244.0.64/26', nextHop: '127.0.0.2', peer: '127.0.0.2' },
      { prefix: '10.244.1.0/26', nextHop: '127.0.0.3', peer: '127.0.0.3' },
    ];
    node1.holdStale(held, 6000);
    assert.equal(node1.learned(), held, 'the held routes are in use before any session');
    node1.update(snapshotOf(...docs));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(node1.learned(), held, 'kept while node2 is not up');
    agents.push(mk('node2'));
    agents[1]!.update(snapshotOf(...docs));
    assert.ok(await until(() => /127\.0\.0\.2 sent its table again/.test(logs.join('\n')), 15_000), logs.join('\n'));
    assert.ok(await until(() => last()?.routes.length === 2, 5000), JSON.stringify(learned.get('node1')));
    // node2's block fresh, the block it no longer has gone, node3's still held; not complete while one is held
    assert.equal(last()!.routes, [held[1], held[2]]);
    assert.is(last()!.complete, false);
    assert.match(logs.join('\n'), /1 of them not brought again and dropped: 10\.244\.0\.128\/26/);
    // never a list without node2's block on the way (it was held until brought again)
    assert.ok(learned.get('node1')!.every((l) => l.routes.some((r) => r.prefix === '10.244.0.64/26')), JSON.stringify(learned.get('node1')));
    // node3 never comes: its route goes when the hold ends
    assert.ok(await until(() => last()?.routes.length === 1, 15_000), JSON.stringify(last()));
    assert.equal(last()!.routes, [held[1]]);
    assert.match(logs.join('\n'), /hold over: dropping 1 learned route\(s\) of the earlier run that no peer brought again: 10\.244\.1\.0\/26 from 127\.0\.0\.3/);
  } finally {
    await Promise.all(agents.map((a) => a.stop({ graceful: false })));
  }
});

test('update() says what a datastore change did to the speaker: a BGPPeer added, its AS changed (session reset), removed; the speaker restarted', async () => {
  const port = await freePort();
  const config = { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: port, bindMode: 'NodeIP', nodeToNodeMeshEnabled: false } };
  const peer = (as: number) => ({ apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: '127.0.0.9', asNumber: as } });
  const docs = [pool('p', '10.244.0.0/16'), config, node('node1', '127.0.0.1/8'), affinity('node1', '10.244.0.0/26')];
  const agent = new BgpAgent({
    node: 'node1',
    createSpeaker: (o) => new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: () => undefined }),
    log: () => undefined,
    onLearned: () => undefined,
  });
  try {
    assert.is(agent.update(snapshotOf(...docs)), '', 'the first plan (the speaker starts, said by its own line)');
    assert.is(agent.update(snapshotOf(...docs, peer(65000))), 'peer 127.0.0.9 added');
    assert.is(agent.update(snapshotOf(...docs, peer(65001))), 'peer 127.0.0.9 changed (session reset)');
    assert.is(agent.update(snapshotOf(...docs, peer(65001))), '');
    assert.is(agent.update(snapshotOf(...docs)), 'peer 127.0.0.9 removed');
    assert.is(agent.update(snapshotOf(...docs.slice(0, 2), node('node1', '127.0.0.3/8'), docs[3]!)), 'speaker settings changed (speaker restarted)');
  } finally {
    await agent.stop({ graceful: false });
  }
});

test('node status: calicoctl\'s table (centred headers, left-aligned cells), the empty and disabled cases', () => {
  assert.is(boxTable(['PEER ADDRESS', 'PEER TYPE', 'STATE', 'SINCE', 'INFO'], [['172.17.8.102', 'node-to-node mesh', 'up', '23:30:04', 'Established']]), [
    '+--------------+-------------------+-------+----------+-------------+',
    '| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |',
    '+--------------+-------------------+-------+----------+-------------+',
    '| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |',
    '+--------------+-------------------+-------+----------+-------------+',
    '',
  ].join('\n'));
  const now = new Date(2026, 11, 4, 20, 0, 0);
  assert.is(formatSince(new Date(2026, 11, 4, 9, 5, 7).toISOString(), now), '09:05:07');
  assert.is(formatSince(new Date(2026, 10, 30, 9, 5, 7).toISOString(), now), '2026-11-30');
  const base = { enabled: true, node: 'n', asNumber: 64512, routerId: '10.0.0.1', exported: 0, learned: 0 };
  assert.is(formatNodeStatus({ ...base, peers: [] }, now), 'podway process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n\nIPv6 BGP status\nNo IPv6 peers found.\n\n');
  assert.match(formatNodeStatus({ ...base, enabled: false, peers: [] }, now), /BGP is not enabled on this node/);
  // IPv6 sessions go to the IPv6 table, as calicoctl prints BIRD for IPv6's.
  const peer = (address: string, info: string) => ({
    address, type: 'node-to-node mesh' as const, name: 'Mesh', asNumber: 64512, state: 'up' as const, since: new Date(2026, 11, 4, 9, 5, 7).toISOString(), info, bgpState: 'Established' as const,
    messagesIn: 0, messagesOut: 0, updatesIn: 0, updatesOut: 0, prefixesReceived: 0, prefixesAccepted: 0, staleRoutes: 0,
  });
  assert.is(formatNodeStatus({ ...base, peers: [peer('10.0.0.2', 'Established'), peer('fd00::2', 'Established')] }, now), [
    'podway process is running.', '', 'IPv4 BGP status',
    '+--------------+-------------------+-------+----------+-------------+',
    '| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |',
    '+--------------+-------------------+-------+----------+-------------+',
    '| 10.0.0.2     | node-to-node mesh | up    | 09:05:07 | Established |',
    '+--------------+-------------------+-------+----------+-------------+',
    '', 'IPv6 BGP status',
    '+--------------+-------------------+-------+----------+-------------+',
    '| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |',
    '+--------------+-------------------+-------+----------+-------------+',
    '| fd00::2      | node-to-node mesh | up    | 09:05:07 | Established |',
    '+--------------+-------------------+-------+----------+-------------+',
    '', '',
  ].join('\n'));
  assert.match(formatNodeStatus({ ...base, peers: [], speakerError: 'listen EADDRINUSE: address already in use 127.0.0.1:179' }, now),
    /^podway process is running\.\n\nThe BGP speaker is not running: listen EADDRINUSE: address already in use 127\.0\.0\.1:179 \(podway tries again\)\.\n\nIPv4 BGP status/);
});

test('a speaker whose port is taken: an error, not ready, tried again until it listens; then its session establishes', async () => {
  const port = await freePort();
  // Something else (a BIRD still running) holds node1's BGP port.
  const squatter = createServer((s) => s.destroy());
  await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
  const config = { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { listenPort: port, bindMode: 'NodeIP' } };
  const docs = [pool('p', '10.244.0.0/16'), config, node('node1', '127.0.0.1/8'), node('node2', '127.0.0.2/8'), affinity('node1', '10.244.0.0/26'), affinity('node2', '10.244.0.64/26')];
  const logs: { name: string; level: string; line: string }[] = [];
  const learned = new Map<string, readonly LearnedRoute[]>();
  const agents = ['node1', 'node2'].map((name) => new BgpAgent({
    node: name,
    createSpeaker: (o) => new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: () => undefined }),
    log: (line, level = 'info') => logs.push({ name, level, line }),
    onLearned: (routes) => learned.set(name, routes),
    retryMs: { first: 100, max: 400 },
  }));
  let squatting = true;
  try {
    for (const a of agents) a.update(snapshotOf(...docs));
    assert.ok(await until(() => agents[0]!.status().speakerError != null, 5000), 'node1 reports its speaker failed to start');
    const st = agents[0]!.status();
    assert.match(st.speakerError!, /EADDRINUSE/);
    const errors = logs.filter((l) => l.name === 'node1' && l.level === 'error');
    assert.is(errors.length, 1, `one error line, not one per retry: ${JSON.stringify(logs)}`);
    assert.match(errors[0]!.line, /cannot start the speaker: .*EADDRINUSE/);
    const why = bgpNotReady(st);
    assert.ok(why.some((w) => /the speaker is not running: .*EADDRINUSE/.test(w)), JSON.stringify(why));
    assert.ok(why.some((w) => w === 'BGP not established with 127.0.0.2'), JSON.stringify(why));
    const health = new Health();
    health.setDatastore(true);
    health.setEngines(async () => [{ problems: [], waiting: [] }]);
    health.setBgp(async () => bgpNotReady(agents[0]!.status()));
    const r = await health.report();
    assert.is(r.ready, false);
    assert.ok(r.reasons.includes('bgp: BGP not established with 127.0.0.2'), JSON.stringify(r.reasons));
    const metrics = new PodwayMetrics({ processMetrics: false });
    metrics.add(new BgpCollector(async () => agents[0]!.status()));
    let m = parseMetrics(await metrics.scrape());
    assert.is(valueOf(m, 'podway_bgp_speaker_running'), 0);
    assert.is(valueOf(m, 'podway_bgp_session_established', { peer: '127.0.0.2', type: 'node-to-node mesh' }), 0);
    // Retries keep failing while the port is held; no session meanwhile (not half-peered).
    await new Promise((res) => setTimeout(res, 600));
    assert.is(agents[0]!.status().peers[0]!.bgpState === 'Established', false, 'no session while node1 cannot listen');
    // The port is freed: node1 listens on its own, the mesh establishes, both learn, ready.
    await new Promise<void>((r2) => squatter.close(() => r2()));
    squatting = false;
    assert.ok(await until(() => agents[0]!.status().speakerError == null, 5000), 'the retry started the speaker');
    assert.ok(logs.some((l) => l.name === 'node1' && /speaker up \(after failing to start\)/.test(l.line)), JSON.stringify(logs));
    assert.ok(await until(() => learned.get('node1')?.length === 1 && learned.get('node2')?.length === 1, 15_000), `learned: ${JSON.stringify([...learned])}`);
    assert.equal(bgpNotReady(agents[0]!.status()), []);
    m = parseMetrics(await metrics.scrape());
    assert.is(valueOf(m, 'podway_bgp_speaker_running'), 1);
    assert.is(valueOf(m, 'podway_bgp_session_established', { peer: '127.0.0.2' }), 1);
    assert.is(valueOf(m, 'podway_bgp_session_state', { peer: '127.0.0.2', state: 'Established' }), 1);
    assert.is(valueOf(m, 'podway_bgp_session_state', { peer: '127.0.0.2', state: 'Active' }), 0);
    assert.is(valueOf(m, 'podway_bgp_prefixes_accepted', { peer: '127.0.0.2' }), 1);
    assert.ok(valueOf(m, 'podway_bgp_messages_received_total', { peer: '127.0.0.2' }) >= 2, 'OPEN, KEEPALIVE, UPDATE counted');
    assert.is(valueOf(m, 'podway_bgp_exported_prefixes'), 1);
    assert.is((await health.report()).ready, true);
  } finally {
    if (squatting) squatter.close();
    await Promise.all(agents.map((a) => a.stop({ graceful: false })));
  }
});

test('a connection from an unconfigured address is refused and logged once, then counted', async () => {
  const port = await freePort();
  const lines: string[] = [];
  const sp = new BgpSpeaker({ localAs: 64512, routerId: '127.0.0.1', listenPort: port, listenAddress: '127.0.0.1', log: (_l, m) => lines.push(m) });
  await sp.start();
  try {
    for (let k = 0; k < 3; k++) {
      await new Promise<void>((res) => {
        const c = connect(port, '127.0.0.1');
        c.on('close', () => res());
        c.on('error', () => undefined);
      });
    }
    assert.ok(await until(() => sp.refusedTotal === 3, 3000), `refused ${sp.refusedTotal}`);
    assert.equal(lines.filter((l) => /refused connection from unconfigured 127\.0\.0\.1/.test(l)).length, 1, JSON.stringify(lines));
  } finally {
    await sp.stop();
  }
});

test.run();
