/**
 * What the underlay MTU end-to-end tests (e2e/underlay-mtu-drop, e2e/underlay-mtu-workers) share:
 * the sender's TCP counters, the lab's underlay MTU, and their teardown.
 */
import { Lab } from '../../src/lab/lab';
import { nsExec, teardown, until, logTail } from './e2e-kit';

/** Linux's least retransmission timeout (TCP_RTO_MIN): a sender's RTO needs its ACKs this late. */
export const TCP_RTO_MIN_MS = 200;

/**
 * The most run-queue wait (ms) one podway thread gathered within `spanMs` (samples of e2e-kit's
 * watchRunQueue(lab, 20, true), every thread; over [from, to] when given): a thread kept off the
 * CPUs that long holds the frames it forwards, the ACKs of a TCP stream with them.
 */
export function longestStarve(samples: Map<string, [number, number][]>, spanMs: number, from = -Infinity, to = Infinity): number {
  let most = 0;
  for (const xs of samples.values()) {
    const ys = xs.filter(([t]) => t >= from - spanMs && t <= to + spanMs);
    let a = 0;
    for (let b = 0; b < ys.length; b++) {
      while (ys[b]![0] - ys[a]![0] > spanMs) a++;
      most = Math.max(most, (ys[b]![1] - ys[a]![1]) / 1e6);
    }
  }
  return most;
}

/** A counter of the netns's TcpExt table (/proc/net/netstat). */
export function tcpExt(ns: string, name: string): number {
  const lines = nsExec(ns, ['cat', '/proc/net/netstat']).split('\n').filter((l) => l.startsWith('TcpExt:'));
  const keys = lines[0].split(/\s+/);
  const vals = lines[1].split(/\s+/);
  const k = keys.indexOf(name);
  if (k < 0) throw new Error(`TcpExt ${name} not in /proc/net/netstat`);
  return Number(vals[k]);
}

/** Both nodes' (node1, node2) underlay and the fabric's side of it at `mtu`. */
export function underlayMtu(lab: Lab, mtu: number): void {
  for (const [k, name] of ['node1', 'node2'].entries()) {
    nsExec(lab.node(name).ns, ['ip', 'link', 'set', 'eth0', 'mtu', String(mtu)]);
    nsExec(lab.fabric, ['ip', 'link', 'set', `u${k + 1}`, 'mtu', String(mtu)]);
  }
}

/** Waits (up to 20 s) until the netns's TCP has sent a few thousand more segments: a stream runs. */
export async function streamRunning(ns: string): Promise<boolean> {
  const sent0 = tcpExt(ns, 'TCPOrigDataSent');
  return until(() => tcpExt(ns, 'TCPOrigDataSent') - sent0 > 3000, 20_000, 20);
}

/** The after hook: the nodes' logs when the test failed, the underlay back at 1500, the lab torn down. */
export async function closeLab(lab: Lab | null, ok: boolean): Promise<void> {
  if (!lab) return;
  if (!ok) console.log(logTail(lab, 30));
  try {
    underlayMtu(lab, 1500);
  } finally {
    await teardown(lab);
  }
}
