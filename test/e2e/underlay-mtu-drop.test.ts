/**
 * The underlay's MTU lowered under a running TCP stream between pods (root, network namespaces;
 * two podway nodes on the lab's fabric bridge, VXLAN, veth pods).
 *
 * From an SRE's failure review: with both nodes' eth0 (and the fabric's side) lowered from 1500 to
 * 1400 mid-stream, podway noticed the new MTU only at its next 5 s check; until then the kernel
 * refused the bigger VXLAN frames (EMSGSIZE), counted `tx_rejected` and nothing else: no ICMP
 * fragmentation needed to the pod, so its TCP retransmitted into the refusals and stalled 3.2 s
 * (retransmission timeouts, backing off). Now podway reads the MTU again when `ip monitor` says the
 * link changed (or when the kernel refuses a frame as too big), and answers the pod's packets with
 * fragmentation needed at the new path MTU (1350), refused ones included: the pod's TCP lowers its
 * segment size at once. Asserted on counters: the sender's retransmission timeouts (its netns's
 * TcpExt TCPTimeouts) stay 0, the pods got fragmentation needed (frag_needed), the stream arrives
 * intact; the change is logged once; `podway status` shows the MTUs in force.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, isRoot, until, nsExec, logTail, logMessage, tcpTransfer, watchRunQueue } from './e2e-kit';
import { tcpExt, underlayMtu, streamRunning, closeLab, longestStarve, TCP_RTO_MIN_MS } from './underlay-mtu-kit';

let lab: Lab | null = null;
let ok = false;

type Counters = { reasons: Record<string, number>; events?: Record<string, number> };
async function counters(node: string): Promise<Record<string, number>> {
  const c = (await controlRequest(lab!.node(node).control, { cmd: 'counters' }, 5000)) as Counters;
  return { ...c.reasons, ...(c.events ?? {}) };
}

test.before(async () => {
  if (!isRoot()) throw new Error('underlay MTU end-to-end tests need root (network namespaces)');
  lab = guard(new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'src-1', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'dst-2', type: 'veth' }] },
  ]));
  lab.build();
  await lab.startPodway('node1');
  await lab.startPodway('node2');
  assert.ok(await until(() => lab!.ping('src-1', lab!.pod('dst-2').ip, 1, 56, ['-W', '2']).received === 1, 30_000, 200), `src-1 reaches dst-2: ${logTail(lab)}`);
});

test.after(() => closeLab(lab, ok));

test('the underlay MTU lowered 1500 -> 1400 mid-stream: the pod gets fragmentation needed (1350) at once, its TCP never times out, the stream arrives intact; logged once; status shows the MTU in force', async () => {
  const src = lab!.pod('src-1');
  const n1 = lab!.node('node1');
  const before = await counters('node1');
  const rto0 = tcpExt(src.ns, 'TCPTimeouts');
  const log0 = n1.log.length;
  const bytes = 96 << 20;
  const threads = watchRunQueue(lab!, 20, true); // every podway thread: a worker may carry the stream
  const transfer = tcpTransfer(lab!, 'src-1', 'dst-2', bytes, 5311);
  // mid-stream: once the stream runs (a few thousand segments sent)
  assert.ok(await streamRunning(src.ns), 'the stream started');
  underlayMtu(lab!, 1400);
  const t = await transfer;
  const starve = longestStarve(threads.stop(), 2 * TCP_RTO_MIN_MS);
  assert.is(t.received.bytes, bytes, 'every byte arrived');
  assert.is(t.received.sha256, t.sent.sha256, 'the stream intact');
  const after = await counters('node1');
  const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  const rto = tcpExt(src.ns, 'TCPTimeouts') - rto0;
  const detail = `frag_needed +${d('frag_needed')}, tx_rejected +${d('tx_rejected')}, too_big_answered +${d('too_big_answered')}, sender RTOs +${rto}, ${t.ms} ms; a podway thread waited up to ${Math.round(starve)} ms for a CPU within ${2 * TCP_RTO_MIN_MS} ms`;
  console.log(`  ${detail}`);
  assert.ok(d('frag_needed') > 0, `the pod was told the path MTU (frag_needed): ${detail}`);
  // No RTO, unless the host kept a podway thread off the CPUs for TCP's least RTO (the stream's
  // ACKs held that long by the load, not by a path MTU the pod was not told of: that bug's 3.2 s
  // stall, backing off from 200 ms, is 4 timeouts: seen at load 40)
  assert.ok(rto === 0 || (rto <= 2 && starve >= TCP_RTO_MIN_MS), `the sender's TCP never waited out a retransmission timeout: ${detail}`);
  // the pod's path MTU is the new one
  assert.match(nsExec(src.ns, ['ip', 'route', 'get', lab!.pod('dst-2').ip]), /mtu 1350/);
  // said once
  const said = n1.log.slice(log0).map(logMessage).filter((m) => /underlay eth0 mtu 1500 -> 1400/.test(m));
  assert.is(said.length, 1, said.join(' | '));
  const st = (await controlRequest(n1.control, { cmd: 'status' }, 5000)) as { mtu: { vxlan: number }; mtuEffective: { underlay: number; vxlan: number } | null };
  assert.is(st.mtu.vxlan, 1450, 'the configured VXLAN MTU');
  assert.equal(st.mtuEffective && { underlay: st.mtuEffective.underlay, vxlan: st.mtuEffective.vxlan }, { underlay: 1400, vxlan: 1350 }, 'the one in force');
  ok = true;
});

test.run();
