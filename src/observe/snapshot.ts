/**
 * What a forwarding engine's counters look like at one moment, for the metrics: plain numbers
 * copied out of its typed arrays (and the addon's per-port stats) at scrape time, so they cross
 * worker_threads as a message. Engines of several workers merge into one: ports by name, counters
 * by index.
 */
import type { Pipeline } from '../dataplane/pipeline';
import type { PacketIO } from '../dataplane/io';
import { PortCounter, PORT_COUNTERS } from '../dataplane/counters';
import { logLinesDropped } from './log';

export interface PortSample {
  /** The port's name as `podway counters` shows it (a pod's interface, `underlay(eth0)`, ...). */
  name: string;
  /** veth | tap | tun (pods), underlay | vxlan | ipip | host | tx4 */
  kind: string;
  /** The workload a pod port serves ('' for the node's own ports). */
  workload: string;
  rxPackets: number; rxBytes: number; txPackets: number; txBytes: number;
  /** Frames podway dropped that arrived on or were bound for this port. */
  drops: number;
  /** Frames the kernel dropped before podway read them (ring or socket buffer full). */
  kernelDrops: number;
  /** Times the kernel wedged the port's TPACKET_V2 ring and podway set it up again. */
  ringStalls: number;
  /** Frames the kernel refused on send that did not fit the port's backlog. */
  txFull: number;
  /** Times podway held the port back (did not read it) while the underlay's backlog it fed was
   * long, and the seconds it spent so in all (back-pressure, native/README.md). */
  held: number; heldSeconds: number;
  rxErrors: number; txErrors: number;
}

export interface DataplaneSnapshot {
  ports: PortSample[];
  /** By counter index (counters.ts): drop reasons, then events. */
  counters: number[];
  /** Bytes of the frames counted, by the same index. */
  counterBytes: number[];
  /** Batch-size histograms (counters.ts BATCH_*), receive and send. */
  rxBatches: number[];
  txBatches: number[];
  /** Host-side failures the engine counted (Engine.failures: tunnelTable, ringReopened, ...). */
  failures?: Record<string, number>;
  /** Pod interface addresses no endpoint names (the host-managing engine's orphan pods, orphan-pods.ts). */
  orphanPodAddresses?: number;
  /** Underlay neighbours (IPv4 and IPv6) whose probes go unanswered (Engine.unreachableNodes).
   * Every forwarding thread keeps its own table of the same neighbours: merged as the largest. */
  underlayNeighborsFailed?: number;
  /** Log lines the thread's log dropped (observe/log.ts logLinesDropped): a forwarding worker's,
   * sent with its snapshot; the main thread's is added by podway run. Summed. */
  logLinesDropped?: number;
}

/** Adds one port's counts into another's (same port: several workers, or before and after a reopen). */
export function addPortCounts(m: PortSample, p: PortSample): void {
  m.rxPackets += p.rxPackets; m.rxBytes += p.rxBytes; m.txPackets += p.txPackets; m.txBytes += p.txBytes;
  m.drops += p.drops; m.kernelDrops += p.kernelDrops; m.ringStalls += p.ringStalls; m.txFull += p.txFull; m.held += p.held; m.heldSeconds += p.heldSeconds; m.rxErrors += p.rxErrors; m.txErrors += p.txErrors;
}

function addInto(a: number[], b: readonly number[]): void {
  for (let i = 0; i < b.length; i++) a[i] = (a[i] ?? 0) + b[i];
}

/** One snapshot for the node: every worker's counters added up, ports merged by name. */
export function mergeSnapshots(all: readonly DataplaneSnapshot[]): DataplaneSnapshot {
  const out: DataplaneSnapshot = { ports: [], counters: [], counterBytes: [], rxBatches: [], txBatches: [] };
  const byName = new Map<string, PortSample>();
  for (const s of all) {
    addInto(out.counters, s.counters);
    addInto(out.counterBytes, s.counterBytes);
    addInto(out.rxBatches, s.rxBatches);
    addInto(out.txBatches, s.txBatches);
    for (const [k, n] of Object.entries(s.failures ?? {})) (out.failures ??= {})[k] = (out.failures[k] ?? 0) + n;
    if (s.orphanPodAddresses !== undefined) out.orphanPodAddresses = (out.orphanPodAddresses ?? 0) + s.orphanPodAddresses;
    if (s.logLinesDropped !== undefined) out.logLinesDropped = (out.logLinesDropped ?? 0) + s.logLinesDropped;
    if (s.underlayNeighborsFailed !== undefined) out.underlayNeighborsFailed = Math.max(out.underlayNeighborsFailed ?? 0, s.underlayNeighborsFailed);
    for (const p of s.ports) {
      const m = byName.get(p.name);
      if (!m) {
        const copy = { ...p };
        byName.set(p.name, copy);
        out.ports.push(copy);
        continue;
      }
      addPortCounts(m, p);
    }
  }
  return out;
}

/**
 * Copy a pipeline's counters and its ports' I/O stats (packets and bytes as the addon or MemoryIO
 * counts them) out, for the ports listed (with what each is).
 */
export function pipelineSnapshot(pipe: Pipeline, io: PacketIO, ports: readonly { port: number; kind: string; workload: string }[]): DataplaneSnapshot {
  const pcs = pipe.portCounters;
  return {
    ports: ports.map(({ port, kind, workload }) => {
      const pc = port * PORT_COUNTERS;
      const st = io.stats(port);
      return {
        name: pipe.portName[port], kind, workload,
        rxPackets: st.rxPackets, rxBytes: st.rxBytes, txPackets: st.txPackets, txBytes: st.txBytes,
        drops: pcs[pc + PortCounter.DROPS], kernelDrops: st.rxKernelDrops, ringStalls: st.rxRingStalls ?? 0, txFull: st.txDroppedFull, held: st.rxHeld ?? 0, heldSeconds: (st.rxHeldNs ?? 0) / 1e9,
        rxErrors: pcs[pc + PortCounter.RX_ERRORS], txErrors: pcs[pc + PortCounter.TX_ERRORS] + st.txErrors,
      };
    }),
    counters: Array.from(pipe.counters),
    counterBytes: Array.from(pipe.counterBytes),
    rxBatches: Array.from(pipe.rxBatches),
    txBatches: Array.from(pipe.txBatches),
  };
}

/** The node's snapshot with this thread's lost log lines added to the workers' (podway run's main
 * thread: its own log's, which no forwarding worker's snapshot carries). */
export function withLogLinesDropped(s: DataplaneSnapshot): DataplaneSnapshot {
  return { ...s, logLinesDropped: (s.logLinesDropped ?? 0) + logLinesDropped() };
}
