/**
 * A Node update this node rejects leaves its BGP speaker alone (root, network namespaces, BIRD 2
 * as the ToR, killed by PID). node1 runs `podway run --bgp` on a file datastore, peered with the
 * ToR. Its Node's ipv4Address is then set to an address no interface of node1 holds (an operator's
 * `podway apply -f`, or a second `podway run --node node1` elsewhere registering its own address):
 * the model thread rejects that snapshot and the dataplane keeps the last good state. The speaker
 * used to take the snapshot first and restart with the rejected address as router ID, sending the
 * ToR an Administrative shutdown (not graceful) that withdrew the node's block. Now: no restart,
 * the router ID stays, the ToR's session keeps its start time and the ToR keeps the block. The
 * good Node written back changes nothing either (it is the plan in force).
 * The log along the way says what happened: the ToR's routes learned are a "BGP route change", a
 * BGPPeer AS change says the session was reset, and the AS mismatch that follows is one warning
 * however often the two sides try again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlRequest } from '../../src/dataplane/control-server';
import { spawn, type ChildProcess } from 'node:child_process';
import { nsExec, until, waitLog } from './e2e-kit';
import { inBgpLab, nodesOnOneSubnet, writeResources, bgpPeerYaml, startBgpPodways, kernelRoutesVia, peerState, TOR_IP, TOR_AS, birdProtocolLine, sameBirdSession } from './bgp-kit';

const BAD_IP = '10.77.0.55';

interface StatusPeer { address: string; bgpState: string; since: string }

test('a rejected Node update (an address no interface holds) leaves the BGP speaker, its router ID and the ToR session alone', () => inBgpLab(nodesOnOneSubnet(1), async (lab, birds) => {
  const n1 = lab.node('node1');
  const good = [lab.resources('direct'), bgpPeerYaml('tor', TOR_IP, TOR_AS)];
  writeResources(lab, good);
  const tor = await birds.tor();
  await startBgpPodways(lab);
  const torHasBlock = () => kernelRoutesVia(lab.fabric, n1.block, n1.ip);
  assert.ok(await until(torHasBlock, 30_000, 250), `the ToR's kernel has ${n1.block}: ${tor.birdc('show', 'route', 'all')}`);
  assert.ok(await until(async () => (await peerState(lab, 'node1', TOR_IP)) === 'Established', 20_000, 250), 'session up');
  // The ToR's outside net learned: a BGP route change, said as one (it used to read "datastore
  // change applied: 1 endpoints").
  assert.ok(await waitLog(n1, /BGP route change applied: \d+ routes/, 0, 20_000), `the route change logged: ${n1.log.join('\n')}`);
  const nodeStatus = async () => (await controlRequest(n1.control, { cmd: 'node-status' }, 5000)) as { routerId: string; peers: StatusPeer[] };
  const torProtocol = () => birdProtocolLine(tor, 'node1');
  const before = await nodeStatus();
  const torBefore = torProtocol();
  assert.is(before.routerId, n1.ip);
  assert.match(torBefore, /Established/);

  const from = n1.log.length;
  const goodNode = `ipv4Address: ${n1.ip}/${n1.prefix}`;
  assert.ok(good[0].includes(goodNode), 'the Node as the lab writes it');
  writeResources(lab, [good[0].replace(goodNode, `ipv4Address: ${BAD_IP}/24`), good[1]]);
  const rejected = await waitLog(n1, /update rejected, keeping the last good state/, from, 20_000);
  assert.ok(rejected, `rejected: ${n1.log.slice(from).join('\n')}`);
  assert.match(rejected!, /no interface holds the node IP 10\.77\.0\.55/);
  // The good Node back: a snapshot read after the rejected one (the model thread takes them in
  // order), so whatever the rejected one did to the speaker has been logged by then.
  const mark = n1.log.length;
  writeResources(lab, good);
  assert.ok(await waitLog(n1, /datastore change/, mark, 20_000), `the good Node back: ${n1.log.slice(mark).join('\n')}`);

  const since = n1.log.slice(from);
  assert.not.ok(since.some((l) => /restarting the speaker|router ID 10\.77\.0\.55|speaker up/.test(l)), `the speaker was left alone:\n${since.join('\n')}`);
  const after = await nodeStatus();
  assert.is(after.routerId, n1.ip, 'router ID unchanged');
  const peer = (s: typeof before) => s.peers.find((p) => p.address === TOR_IP);
  assert.is(peer(after)?.bgpState, 'Established');
  assert.is(peer(after)?.since, peer(before)?.since, 'podway\'s session with the ToR was not reset');
  assert.ok(sameBirdSession(torProtocol(), torBefore), `the ToR's session was not reset:\n${tor.birdc('show', 'protocols', 'all', 'node1')}`);
  assert.ok(torHasBlock(), `the ToR kept ${n1.block}: ${tor.birdc('show', 'route', 'all')}`);

  // The ToR's BGPPeer with another AS: the forwarding model is the same, but the log says the
  // session was reset (it used to say only "this node's model is unchanged"); the ToR's OPEN (AS
  // 65000) is then refused, logged once as a warning however often the ToR tries.
  const asMark = n1.log.length;
  writeResources(lab, [good[0], bgpPeerYaml('tor', TOR_IP, TOR_AS + 1)]);
  const reset = await waitLog(n1, /bgp: peer 10\.99\.0\.254 changed \(session reset\)/, asMark, 20_000);
  assert.ok(reset, `the reset said: ${n1.log.slice(asMark).join('\n')}`);
  assert.match(reset!, /^.*"msg":"datastore change/);
  const refused = await waitLog(n1, /bgp 10\.99\.0\.254: session not established: .*bad peer AS/, asMark, 30_000);
  assert.ok(refused, `the AS mismatch logged: ${n1.log.slice(asMark).join('\n')}`);
  assert.match(refused!, /"level":"warn"/);
  // Both sides try again (BIRD's connect retry 2 s, ours 5 s): two more OPENs sent, still one line.
  const opensOut = async () => ((await nodeStatus()).peers.find((p) => p.address === TOR_IP) as { messagesOut?: number } | undefined)?.messagesOut ?? 0;
  const sent = await opensOut();
  assert.ok(await until(async () => (await opensOut()) >= sent + 2, 30_000, 250), `more attempts: ${tor.birdc('show', 'protocols', 'all', 'node1')}`);
  const lines = n1.log.slice(asMark).filter((l) => /session not established: .*bad peer AS/.test(l));
  assert.is(lines.length, 1, lines.join('\n'));
}));

// The model thread accepts the snapshot but the forwarding engine refuses its model: the Node moves
// to a second address of node1 whose VXLAN port another socket holds (EADDRINUSE). The speaker
// used to follow the snapshot before the engine had answered, restarting with that address as
// router ID; now it follows only a model the engine applied, and keeps its settings.
test('a Node update the forwarding engine refuses (its VXLAN port held) leaves the BGP speaker, its router ID and the ToR session alone', () => inBgpLab(nodesOnOneSubnet(1), async (lab, birds) => {
  const n1 = lab.node('node1');
  const good = [lab.resources('direct'), bgpPeerYaml('tor', TOR_IP, TOR_AS)];
  writeResources(lab, good);
  const tor = await birds.tor();
  await startBgpPodways(lab);
  const torHasBlock = () => kernelRoutesVia(lab.fabric, n1.block, n1.ip);
  assert.ok(await until(torHasBlock, 30_000, 250), `the ToR's kernel has ${n1.block}: ${tor.birdc('show', 'route', 'all')}`);
  assert.ok(await until(async () => (await peerState(lab, 'node1', TOR_IP)) === 'Established', 20_000, 250), 'session up');
  const nodeStatus = async () => (await controlRequest(n1.control, { cmd: 'node-status' }, 5000)) as { routerId: string; peers: StatusPeer[] };
  const torProtocol = () => birdProtocolLine(tor, 'node1');
  const before = await nodeStatus();
  const torBefore = torProtocol();
  assert.is(before.routerId, n1.ip);
  assert.match(torBefore, /Established/);

  const other = `${n1.ip.split('.').slice(0, 3).join('.')}.201`;
  let holder: ChildProcess | null = null;
  nsExec(n1.ns, ['ip', 'addr', 'add', `${other}/${n1.prefix}`, 'dev', 'eth0']);
  try {
    // (no SO_REUSEADDR: podway's bind of the same address and port fails; ends by itself after 5 min)
    holder = spawn('ip', ['netns', 'exec', n1.ns, process.execPath, '-e', `const s = require('node:dgram').createSocket('udp4'); s.bind(4789, '${other}', () => console.log('bound')); setTimeout(() => process.exit(0), 300000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let bound = false;
    holder.stdout!.on('data', (d: Buffer) => { if (/bound/.test(d.toString())) bound = true; });
    assert.ok(await until(() => bound, 10_000, 50), `a socket holds ${other}:4789`);
    const from = n1.log.length;
    const goodNode = `ipv4Address: ${n1.ip}/${n1.prefix}`;
    assert.ok(good[0].includes(goodNode), 'the Node as the lab writes it');
    writeResources(lab, [good[0].replace(goodNode, `ipv4Address: ${other}/${n1.prefix}`), good[1]]);
    const esc = other.replace(/\./g, '\\.');
    assert.ok(await waitLog(n1, new RegExp(`update rejected, keeping the last good state: .*${esc}:4789: Address already in use`), from, 30_000), `the engine refused: ${n1.log.slice(from).join('\n')}`);
    const kept = await waitLog(n1, /rejected by the forwarding engine: .*\(BGP keeps its last settings\)/, from, 20_000);
    assert.ok(kept, `the speaker's side said: ${n1.log.slice(from).join('\n')}`);
    // The good Node back: the model in force, nothing for the engine or the speaker to do.
    const mark = n1.log.length;
    writeResources(lab, good);
    assert.ok(await waitLog(n1, /datastore change/, mark, 20_000), `the good Node back: ${n1.log.slice(mark).join('\n')}`);

    const since = n1.log.slice(from);
    assert.not.ok(since.some((l) => new RegExp(`restarting the speaker|router ID ${esc}|speaker up`).test(l)), `the speaker was left alone:\n${since.join('\n')}`);
    const after = await nodeStatus();
    assert.is(after.routerId, n1.ip, 'router ID unchanged');
    const peer = (s: typeof before) => s.peers.find((p) => p.address === TOR_IP);
    assert.is(peer(after)?.bgpState, 'Established');
    assert.is(peer(after)?.since, peer(before)?.since, 'podway\'s session with the ToR was not reset');
    assert.ok(sameBirdSession(torProtocol(), torBefore), `the ToR's session was not reset:\n${tor.birdc('show', 'protocols', 'all', 'node1')}`);
    assert.ok(torHasBlock(), `the ToR kept ${n1.block}: ${tor.birdc('show', 'route', 'all')}`);
  } finally {
    if (holder) holder.kill('SIGKILL');
    nsExec(n1.ns, ['ip', 'addr', 'del', `${other}/${n1.prefix}`, 'dev', 'eth0']);
  }
}));

test.run();
