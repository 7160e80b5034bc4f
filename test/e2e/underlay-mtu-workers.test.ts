/**
 * The underlay's MTU lowered under a TCP stream that a second forwarding thread carries (`podway
 * run --workers 2`; root, network namespaces, two podway nodes on the lab's fabric bridge, VXLAN,
 * veth pods).
 *
 * The main thread learns a lowered underlay MTU at once from its `ip monitor` (e2e/underlay-mtu-drop);
 * the other forwarding threads learned it only from their own frames refused as too big (read at
 * their next neighbour tick, up to 1 s) or their 5 s check, and meanwhile the kernel refused their
 * bigger VXLAN frames with no word to the pod. Now the main thread tells every thread when it sees
 * the MTU change (Engine.onUnderlayMtu -> underlayMtuNews), and a thread that sees it first tells
 * the main thread, which tells the others. The stream's flow is steered to worker 1 on purpose (its
 * source port picked with steerIndex) and asserted to be carried there; the pod learns the new path
 * MTU (1350) within a bound, its TCP never waits out a retransmission timeout, the stream arrives
 * intact; the change is logged once, by the main thread, seen from `ip monitor`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, isRoot, until, nsExec, logTail, logMessage, tcpTransfer, watchRunQueue, sourcePortFor } from './e2e-kit';
import { tcpExt, underlayMtu, streamRunning, closeLab, longestStarve, TCP_RTO_MIN_MS } from './underlay-mtu-kit';

let lab: Lab | null = null;
let ok = false;
const DPORT = 5312;

type Counters = { reasons: Record<string, number>; events?: Record<string, number>; ports: { port: string; rx: number; tx: number }[] };
async function counters(node: string): Promise<Counters> {
  return (await controlRequest(lab!.node(node).control, { cmd: 'counters' }, 5000)) as Counters;
}
const flat = (c: Counters): Record<string, number> => ({ ...c.reasons, ...(c.events ?? {}) });

test.before(async () => {
  if (!isRoot()) throw new Error('underlay MTU end-to-end tests need root (network namespaces)');
  lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'src-w', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'dst-w', type: 'veth' }] },
  ]));
  lab.build();
  await lab.startPodway('node1', 15_000, ['--workers', '2']);
  await lab.startPodway('node2', 15_000, ['--workers', '2']);
  assert.ok(lab.node('node1').log.some((l) => /2 forwarding workers/.test(l)), 'node1 runs two forwarding threads');
  assert.ok(await until(() => lab!.ping('src-w', lab!.pod('dst-w').ip, 1, 56, ['-W', '2']).received === 1, 30_000, 200), `src-w reaches dst-w: ${logTail(lab)}`);
});

test.after(() => closeLab(lab, ok));

test('--workers 2: the underlay MTU lowered 1500 -> 1400 under a stream worker 1 carries: the pod learns 1350 at once, its TCP never times out, the stream arrives intact; logged once by the main thread', async () => {
  const src = lab!.pod('src-w');
  const dst = lab!.pod('dst-w');
  const n1 = lab!.node('node1');
  const sport = sourcePortFor('tcp', src.ip, dst.ip, DPORT, 1);
  const before = await counters('node1');
  const rto0 = tcpExt(src.ns, 'TCPTimeouts');
  const log0 = n1.log.length;
  const bytes = 96 << 20;
  const threads = watchRunQueue(lab!, 20, true); // every podway thread: a worker may carry the stream
  const transfer = tcpTransfer(lab!, 'src-w', 'dst-w', bytes, DPORT, sport);
  // mid-stream: once the stream runs (a few thousand segments sent)
  assert.ok(await streamRunning(src.ns), 'the stream started');
  underlayMtu(lab!, 1400);
  const t0 = Date.now();
  // the pod's path MTU to its peer, learned from a fragmentation needed podway sends it
  const learned = await until(() => /mtu 1350/.test(nsExec(src.ns, ['ip', 'route', 'get', dst.ip])), 5000, 10);
  const learnedMs = Date.now() - t0;
  const t = await transfer;
  const samples = threads.stop();
  const starve = longestStarve(samples, 2 * TCP_RTO_MIN_MS);
  // what the threads waited for a CPU between the change and the pod's learning it (test's polls aside)
  const waitedToLearn = longestStarve(samples, learnedMs, t0, t0 + learnedMs);
  assert.is(t.received.bytes, bytes, 'every byte arrived');
  assert.is(t.received.sha256, t.sent.sha256, 'the stream intact');
  const after = await counters('node1');
  const d = (k: string) => (flat(after)[k] ?? 0) - (flat(before)[k] ?? 0);
  const rto = tcpExt(src.ns, 'TCPTimeouts') - rto0;
  const rx = (w: number) => (after.ports.find((p) => p.port === `${src.ifname} [w${w}]`)?.rx ?? 0) - (before.ports.find((p) => p.port === `${src.ifname} [w${w}]`)?.rx ?? 0);
  const detail = `source port ${sport}, pod's veth rx w0 +${rx(0)} w1 +${rx(1)}, frag_needed +${d('frag_needed')}, tx_rejected +${d('tx_rejected')}, too_big_answered +${d('too_big_answered')}, sender RTOs +${rto}, path MTU learned after ${learnedMs} ms (a podway thread waited ${Math.round(waitedToLearn)} ms for a CPU meanwhile), ${t.ms} ms; a podway thread waited up to ${Math.round(starve)} ms for a CPU within ${2 * TCP_RTO_MIN_MS} ms`;
  console.log(`  ${detail}`);
  // the stream was worker 1's (the flow steered there): what this test is about
  assert.ok(rx(1) > 10_000 && rx(0) < rx(1) / 10, `worker 1 carried the stream: ${detail}`);
  assert.ok(learned, `the pod learned the path MTU 1350: ${detail}`);
  // worker 1 had it from the main thread (ip monitor): not at its next tick (up to 1 s) from the
  // kernel's refusals, nor its 5 s check; longer only by what a podway thread waited for a CPU
  assert.ok(learnedMs < 500 + waitedToLearn, `the pod learned the path MTU within 500 ms of the change: ${detail}`);
  assert.ok(d('frag_needed') > 0, `the pod was told the path MTU (frag_needed): ${detail}`);
  // No RTO, unless the host kept a podway thread off the CPUs for TCP's least RTO (the stream's
  // ACKs held that long by the load, not by a path MTU the pod was not told of: that bug's 3.2 s
  // stall, backing off from 200 ms, is 4 timeouts: 1 RTO at load 40,
  // the MTU learned 122 ms after the change)
  assert.ok(rto === 0 || (rto <= 2 && starve >= TCP_RTO_MIN_MS), `the sender's TCP never waited out a retransmission timeout: ${detail}`);
  // said once, by the main thread, from its ip monitor
  const said = n1.log.slice(log0).map(logMessage).filter((m) => /underlay eth0 mtu 1500 -> 1400/.test(m));
  assert.is(said.length, 1, said.join(' | '));
  assert.match(said[0], /seen from ip monitor/);
  const st = (await controlRequest(n1.control, { cmd: 'status' }, 5000)) as { mtuEffective: { underlay: number; vxlan: number } | null; tooBigAnswered: number };
  assert.equal(st.mtuEffective && { underlay: st.mtuEffective.underlay, vxlan: st.mtuEffective.vxlan }, { underlay: 1400, vxlan: 1350 }, 'the one in force');
  // status counts the refused packets every thread answered (worker 1's told to the main thread),
  // as the counters' too_big_answered sums them
  assert.is(st.tooBigAnswered, flat(after).too_big_answered ?? 0, `status tooBigAnswered, every thread's: ${detail}`);
  ok = true;
});

test.run();
