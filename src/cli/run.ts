/**
 * `podway run`: the per-node dataplane process. Loads the datastore, computes this node's model,
 * applies it to the engine, re-applies on every valid change (a bad change keeps the last good
 * state forwarding), serves the control socket, and stops cleanly on SIGINT/SIGTERM.
 */
import { FileDatastore, computeNodeModel, ClusterSnapshot, NodeDataplaneModel } from '../control';
import { Engine } from '../dataplane/engine';
import { findUnderlay, readKernelRoutes, readKernelRoutesSync, underlayNextHops, KernelRoute4 } from '../dataplane/host';
import { performance } from 'node:perf_hooks';
import { startControlServer, defaultControlPath } from '../dataplane/control-server';
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';

export interface RunOptions {
  node: string;
  datastore: string;
  control?: string;
  batch?: number;
  ringVersion?: 2 | 3;
  qdiscBypass?: boolean;
  /** Forwarding workers (1 = the main thread alone). */
  workers?: number;
}

export function log(node: string, msg: string): void {
  process.stderr.write(`${new Date().toISOString()} podway[${node}] ${msg}\n`);
}

export function parseDatastore(spec: string): { kind: 'file'; path: string } {
  if (spec.startsWith('file:')) return { kind: 'file', path: spec.slice(5) };
  if (spec.startsWith('etcd')) throw new Error(`datastore "${spec}": etcd is not supported yet; use file:PATH`);
  throw new Error(`datastore "${spec}": expected file:PATH`);
}

/** The underlay MTU by node IP, read once per address (an `ip` call must not run per edit). */
const underlayMtu = new Map<number, number>();

function modelFor(snap: ClusterSnapshot, node: string): NodeDataplaneModel {
  const first = computeNodeModel(snap, node);
  // The underlay's real MTU decides the tunnel MTUs (1450 VXLAN, 1480 IPIP over 1500).
  let mtu = underlayMtu.get(first.node.ip);
  if (mtu === undefined) {
    mtu = findUnderlay(first.node.ip).mtu;
    underlayMtu.set(first.node.ip, mtu);
  }
  return mtu === first.mtu.underlay ? first : computeNodeModel(snap, node, { underlayMtu: mtu });
}

/**
 * What an apply depends on, for "nothing changed": the model (Sets as sorted arrays, so equal
 * models compare equal) and the underlay next hop towards each node. Not the whole kernel table:
 * podway's own routes (pools, pods) change it without changing any next hop.
 */
function modelKey(model: NodeDataplaneModel, routes: readonly KernelRoute4[]): string {
  const gateways = [...underlayNextHops(routes, model.node.knownNodeIps)];
  return JSON.stringify([model, gateways], (_k, v) => (v instanceof Set ? [...v].sort() : v));
}

export async function runNode(opts: RunOptions): Promise<void> {
  if (process.getuid && process.getuid() !== 0) throw new Error('podway run needs root (raw sockets, AF_PACKET, TAP devices)');
  const ds = parseDatastore(opts.datastore);
  const store = new FileDatastore(ds.path);
  const snap = await store.start();
  const say = (m: string) => log(opts.node, m);
  const count = Math.max(1, opts.workers ?? 1);
  const workers: Worker[] = [];
  const engine = new Engine({
    batch: opts.batch, ringVersion: opts.ringVersion, qdiscBypass: opts.qdiscBypass, log: say,
    worker: { index: 0, count },
    onNeighbor: (ip, mac) => { for (const w of workers) w.postMessage({ type: 'neighbor', ip, mac: [...mac] }); },
  });
  const broadcast = (msg: object) => { for (const w of workers) w.postMessage(msg); };
  // The control socket first: a podway already serving this node refuses us before we touch
  // any port or host setting.
  const sock = opts.control ?? defaultControlPath(opts.node);
  let nextId = 0;
  const pending = new Map<number, (c: ReturnType<Engine['counters']> | null) => void>();
  const workerCounters = () =>
    Promise.all(workers.map((w) => new Promise<ReturnType<Engine['counters']> | null>((resolve) => {
      const id = ++nextId;
      pending.set(id, resolve);
      w.postMessage({ type: 'counters', id });
      setTimeout(() => { if (pending.delete(id)) resolve(null); }, 2000).unref();
    }))).then((all) => all.filter((c): c is ReturnType<Engine['counters']> => c !== null));
  const server = startControlServer(engine, sock, workerCounters);
  let kernelRoutes: KernelRoute4[] = [];
  let lastKey = '';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', (e) => reject(new Error(`control socket ${sock}: ${e.message}`)));
    });
    const model = modelFor(snap, opts.node);
    // Synchronously at start: the control socket must not answer before the first model is in force.
    kernelRoutes = readKernelRoutesSync();
    engine.apply(model, kernelRoutes);
    lastKey = modelKey(model, kernelRoutes);
    // Workers 1..count-1 after the main engine: it set up the host and holds the first sockets.
    for (let index = 1; index < count; index++) {
      const w = new Worker(path.resolve(__dirname, '..', 'dataplane', 'worker.js'), {
        workerData: { index, count, node: opts.node, batch: opts.batch, ringVersion: opts.ringVersion, qdiscBypass: opts.qdiscBypass },
      });
      w.on('message', (m: { type: string; ip?: number; mac?: number[]; message?: string }) => {
        if (m.type === 'neighbor') {
          engine.learnShared(m.ip!, Uint8Array.from(m.mac!));
          for (const o of workers) if (o !== w) o.postMessage(m);
        } else if (m.type === 'counters') {
          const c = m as unknown as { id: number; counters: ReturnType<Engine['counters']> };
          pending.get(c.id)?.(c.counters);
          pending.delete(c.id);
        } else if (m.type === 'error') say(`worker ${index}: ${m.message}`);
      });
      w.on('error', (e) => say(`worker ${index} failed: ${e.message}`));
      w.postMessage({ type: 'model', model, kernelRoutes });
      workers.push(w);
    }
    if (count > 1) say(`${count} forwarding workers`);
  } catch (e) {
    for (const w of workers) void w.terminate();
    server.close();
    await store.close();
    engine.stop();
    throw e;
  }
  for (const n of engine.notes) say(`host: set ${n}`);
  // Snapshots are applied one at a time, the newest winning: the kernel's routes are read
  // asynchronously (no `ip` call blocks the forwarding thread), then the model is applied whole
  // between two batches. A model identical to the one in force is not applied again.
  let latest: ClusterSnapshot | null = null;
  let applying = false;
  const applyLatest = async () => {
    if (applying) return;
    applying = true;
    try {
      while (latest) {
        const snapshot = latest;
        latest = null;
        try {
          const t0 = performance.now();
          const model = modelFor(snapshot, opts.node);
          kernelRoutes = await readKernelRoutes();
          const key = modelKey(model, kernelRoutes);
          if (key === lastKey) {
            say(`datastore change: this node's model is unchanged (${(performance.now() - t0).toFixed(1)} ms)`);
            continue;
          }
          engine.apply(model, kernelRoutes);
          lastKey = key;
          broadcast({ type: 'model', model, kernelRoutes });
        } catch (e) {
          say(`update rejected, keeping the last good state: ${(e as Error).message}`);
        }
      }
    } finally {
      applying = false;
    }
  };
  store.onSnapshot((s) => {
    latest = s;
    void applyLatest();
  });
  store.onError((e) => say(`datastore: ${e.message} (keeping the last good state)`));
  const st = engine.status();
  say(`forwarding: node ${st.nodeIp} on ${st.underlay?.name}, ${st.routes} routes, ${st.endpoints} endpoints, control ${sock}`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      say(`${sig}: stopping`);
      server.close();
      broadcast({ type: 'stop' });
      engine.stop();
      void Promise.all(workers.map((w) => new Promise((r) => { w.once('exit', r); setTimeout(() => void w.terminate(), 2000).unref(); })))
        .then(() => store.close())
        .then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
