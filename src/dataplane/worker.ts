/**
 * A forwarding worker (worker_threads): its own frame pool, ports and FIB, fed the same model as
 * the main engine. The kernel spreads flows across workers (PACKET_FANOUT, SO_REUSEPORT); see
 * EngineOptions.worker. Messages: {type:'model', model, kernelRoutes, tunnels} (worker-model.ts) | {type:'neighbor', ip, mac, announced} |
 * {type:'neighbor6', ip6, mac, announced} (an answer from an underlay neighbour, shared: see EngineOptions.onNeighbor) |
 * {type:'pod-mac', ifname, mac} (a TAP or veth pod's MAC the main engine learned: EngineOptions.onPodMac) |
 * {type:'shared-open', ifname} (the main engine (re)opened a TAP/TUN pod's device: EngineOptions.onSharedOpen) |
 * {type:'counters', id} | {type:'snapshot', id} (metrics) | {type:'log-level', level} |
 * {type:'felix-options', options} (Felix settings changed live: Engine.setFelixOptions; the model follows) |
 * {type:'rp-filter', value} (the node's rp_filter changed: Engine.setRpFilter) |
 * {type:'underlay-mtu', mtu, why} (the underlay's MTU changed, seen by the main thread: Engine.underlayMtuNews;
 * sent to the main thread too when this one sees it first) | {type:'stop'}; to the main thread also
 * {type:'too-big-answered', n} (refused packets this thread answered: the main thread's status),
 * {type:'last-counts', counters, snapshot} (sent from its process 'exit': a dying thread's counts),
 * {type:'counts', counters?, snapshot?} (sent from its tick: counts nobody read for COUNTS_REFRESH_MS),
 * {type:'resolve', ip} | {type:'resolve6', ip6} (an underlay neighbour to probe now: EngineOptions.onResolve).
 * and the trace/capture sessions of taps.ts.
 */
import type { NeighborTimings } from './neighbors';
import { parentPort, workerData } from 'node:worker_threads';
import { Engine, type EngineOptions } from './engine';
import type { KernelRoute } from './host';
import type { LocalAddresses } from './local-addrs';
import { serveTaps } from './taps';
import { applySchedSlice } from './sched-slice';
import { applyWorkerModel, type WorkerModelMessage } from './worker-model';
import { createLogger, logLinesDropped, type LogLevel } from '../observe/log';

/**
 * The main thread keeps each thread's last known counts (every answer it gets), carried into the
 * sums when the thread dies, and standing in for it when it is late to answer (cli/run.ts). A
 * thread that dies without running JS (out of memory: no 'exit' message) leaves out what it
 * counted since they were last known; to bound that, a thread sends them itself from its tick
 * when they changed and nobody read them for this long. Nothing is read or sent while the thread
 * is idle (its counts unchanged), nor when scrapes read them often enough.
 */
export const COUNTS_REFRESH_MS = 10_000;

interface WorkerInit { index: number; count: number; batch?: number; ringVersion?: 2 | 3; underlayRingMb?: number; qdiscBypass?: boolean; gro?: boolean; txGso?: boolean; txSocket?: boolean; backpressure?: boolean; rxSuper?: boolean; rxMerge?: boolean; scatterRx?: boolean; podSuper?: boolean; neighbor?: NeighborTimings; neighborQueue?: EngineOptions['neighborQueue']; workerSteer?: 'flow' | 'fanout'; schedSliceUs?: number; natToNodes?: boolean; vxlanSourcePorts?: [number, number]; vxlanPort?: number; vxlanVni?: number; allowVxlanFromPods?: boolean; allowIpipFromPods?: boolean; node: string; logLevel?: LogLevel }

if (parentPort) {
  const port = parentPort;
  const init = workerData as WorkerInit;
  const log = createLogger({ level: init.logLevel, base: { node: init.node, worker: init.index } });
  if (init.schedSliceUs !== undefined) {
    const r = applySchedSlice(init.schedSliceUs);
    if ('error' in r) log.warn(`--sched-slice-us: not set on forwarding worker ${init.index}: ${r.error}`);
    else log.debug(`forwarding thread scheduler slice ${r.sliceUs} µs`, { sliceUs: r.sliceUs });
  }
  const engine = new Engine({
    batch: init.batch,
    ringVersion: init.ringVersion,
    underlayRingMb: init.underlayRingMb,
    qdiscBypass: init.qdiscBypass,
    gro: init.gro,
    txGso: init.txGso,
    txSocket: init.txSocket,
    backpressure: init.backpressure,
    scatterRx: init.scatterRx,
    podSuper: init.podSuper,
    neighbor: init.neighbor,
    neighborQueue: init.neighborQueue,
    rxSuper: init.rxSuper,
    rxMerge: init.rxMerge,
    manageHost: false,
    worker: { index: init.index, count: init.count },
    workerSteer: init.workerSteer,
    natToNodes: init.natToNodes,
    allowVxlanFromPods: init.allowVxlanFromPods,
    allowIpipFromPods: init.allowIpipFromPods,
    // the main thread's read of net.ipv4.ip_local_port_range (run.ts)
    vxlanSourcePorts: init.vxlanSourcePorts,
    vxlanPort: init.vxlanPort,
    vxlanVni: init.vxlanVni,
    log,
    onNeighbor: (ip, mac, announced) => port.postMessage({ type: 'neighbor', ip, mac: [...mac], announced }),
    onNeighbor6: (ip6, mac, announced) => port.postMessage({ type: 'neighbor6', ip6, mac: [...mac], announced }),
    // seen here first (this thread's frames refused as too big, its 5 s check): the main thread
    // reads it and tells the others; not sent back for news the main thread brought
    onUnderlayMtu: (_mtu, why) => { if (!mtuFromMain) port.postMessage({ type: 'underlay-mtu', why }); },
    // for the main thread's status (tooBigAnswered: every thread's)
    onTooBigAnswered: (n) => port.postMessage({ type: 'too-big-answered', n }),
    onTick: (now) => refreshCounts(now),
    // the main thread resolves the underlay neighbours for every thread: asked, not probed here
    onResolve: (ip) => port.postMessage({ type: 'resolve', ip }),
    onResolve6: (ip6) => port.postMessage({ type: 'resolve6', ip6 }),
  });
  // When each kind of count last went to the main thread, and the activity mark then (-1: never).
  const sent = { counters: { at: Date.now(), mark: -1 }, snapshot: { at: Date.now(), mark: -1 } };
  const counted = (kind: keyof typeof sent, now = Date.now()) => {
    sent[kind].at = now;
    sent[kind].mark = engine.activityMark();
  };
  const snapshotNow = () => ({ ...engine.metricsSnapshot(), logLinesDropped: logLinesDropped() });
  function refreshCounts(now: number): void {
    const stale = (kind: keyof typeof sent) => now - sent[kind].at >= COUNTS_REFRESH_MS && engine.activityMark() !== sent[kind].mark;
    const c = stale('counters');
    const s = stale('snapshot');
    if (!c && !s) return;
    port.postMessage({ type: 'counts', ...(c ? { counters: engine.counters() } : {}), ...(s ? { snapshot: snapshotNow() } : {}) });
    if (c) counted('counters', now);
    if (s) counted('snapshot', now);
  }
  let mtuFromMain = false;
  // As the thread ends (an exception nothing caught, process.exit(), a stop), its counts go to the
  // main thread, which carries a dead thread's into every sum (observe/retired-counts.ts). Not
  // run when the isolate runs out of memory: the main thread's last read (10 s at most) stands.
  process.once('exit', () => {
    try {
      port.postMessage({ type: 'last-counts', counters: engine.counters(), snapshot: snapshotNow() });
    } catch {
      // the port closed (a stop), or the engine cannot be read: the last read stands
    }
  });
  const taps = serveTaps(engine, (m, transfer) => port.postMessage(m, transfer));
  port.on('message', (msg: { type: string; model?: never; kernelRoutes?: KernelRoute[]; ip?: number; ip6?: string; ifname?: string; mac?: number[]; announced?: boolean; id?: number; level?: LogLevel; why?: string; local?: LocalAddresses; options?: Parameters<Engine['setFelixOptions']>[0]; value?: number }) => {
    try {
      if (taps(msg)) return;
      if (msg.type === 'model') applyWorkerModel(engine, msg as unknown as WorkerModelMessage);
      else if (msg.type === 'neighbor') engine.learnShared(msg.ip!, Uint8Array.from(msg.mac!), msg.announced === true);
      else if (msg.type === 'neighbor6') engine.learnShared6(msg.ip6!, Uint8Array.from(msg.mac!), msg.announced === true);
      else if (msg.type === 'pod-mac') engine.learnSharedPodMac(msg.ifname!, Uint8Array.from(msg.mac!));
      else if (msg.type === 'shared-open') engine.sharedOpened(msg.ifname!);
      else if (msg.type === 'local-addresses') engine.setLocalAddresses(msg.local!);
      else if (msg.type === 'counters') {
        port.postMessage({ type: 'counters', id: msg.id, counters: engine.counters() });
        counted('counters');
      } else if (msg.type === 'snapshot') {
        port.postMessage({ type: 'snapshot', id: msg.id, snapshot: snapshotNow(), readiness: engine.readiness() });
        counted('snapshot');
      }
      else if (msg.type === 'log-level') log.level = msg.level!;
      else if (msg.type === 'felix-options') engine.setFelixOptions(msg.options!);
      else if (msg.type === 'rp-filter') engine.setRpFilter(msg.value!);
      else if (msg.type === 'underlay-mtu') {
        mtuFromMain = true;
        try {
          engine.underlayMtuNews(`the main thread: ${msg.why}`);
        } finally {
          mtuFromMain = false;
        }
      }
      else if (msg.type === 'stop') {
        engine.stop();
        port.close();
      }
    } catch (e) {
      port.postMessage({ type: 'error', message: (e as Error).message });
    }
  });
}
