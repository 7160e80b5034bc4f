/**
 * `podway run`: the per-node dataplane process. A model thread (model-worker.ts) watches the
 * datastore and computes this node's model; the main thread applies it to the engine, re-applies
 * on every change that alters it (a bad change keeps the last good state forwarding), serves the
 * control socket, and stops cleanly on SIGINT/SIGTERM.
 */
import { resolveDatastoreSpec } from '../control';
import type { NodeDataplaneModel } from '../control';
import { ModelSource, ModelMessage } from './model-source';
import { joinCluster } from './join';
import { Engine, HOST_PORT_NAME } from '../dataplane/engine';
import { NftNat, NatSpec, defaultNatPortRange, ephemeralPorts, ifindexOf, parseNatPortRange } from '../dataplane/nft-nat';
import { VXLAN_PORT } from '../packet/vxlan';
import { formatIpv4 } from '../packet/ipv4';
import { readKernelRoutesSync, underlayNextHops, KernelRoute4 } from '../dataplane/host';
import { startControlServer, defaultControlPath } from '../dataplane/control-server';
import { Taps } from '../dataplane/taps';
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
  /** This node's address with its prefix, registered in a writable datastore (else first-found). */
  ip?: string;
  /** natOutgoing: TCP/UDP ports masquerading uses ("LOW-HIGH"; default above the ephemeral range). */
  natPortRange?: string;
  /** natOutgoing: idle timeout of a NATed UDP flow, seconds (default the kernel's 30 unreplied / 120). */
  natUdpTimeout?: number;
  /** natOutgoing: NATed flows at once before new ones are refused (default 65,536). */
  natMaxFlows?: number;
}

/** What podway's nftables table should hold for this model. */
function natSpecOf(model: NodeDataplaneModel, portRange: readonly [number, number], udpTimeout: NatSpec['udpTimeout'], maxFlows: number): NatSpec {
  const nodes = new Set<number>([model.node.ip, ...model.node.knownNodeIps]);
  return {
    hostPort: HOST_PORT_NAME,
    hostPortIndex: ifindexOf(HOST_PORT_NAME),
    natPools: model.pools.filter((p) => p.natOutgoing).map((p) => p.cidr),
    pools: model.pools.map((p) => p.cidr),
    nodes: [...nodes].sort((a, b) => a - b).map(formatIpv4),
    portRange,
    udpTimeout,
    maxFlows,
  };
}

export function log(node: string, msg: string): void {
  process.stderr.write(`${new Date().toISOString()} podway[${node}] ${msg}\n`);
}


/** The underlay next hop towards each node, as a key: a change re-applies the model. */
function gatewaysKey(model: NodeDataplaneModel, routes: readonly KernelRoute4[]): string {
  return JSON.stringify([...underlayNextHops(routes, model.node.knownNodeIps)]);
}

export async function runNode(opts: RunOptions): Promise<void> {
  if (process.getuid && process.getuid() !== 0) throw new Error('podway run needs root (raw sockets, AF_PACKET, TAP devices)');
  // A spec that does not parse stops us here, with the reason; '' means the default (see main.ts).
  const spec = resolveDatastoreSpec(opts.datastore || undefined);
  const specText = spec.kind === 'file' ? `file:${spec.path}` : spec.kind === 'embedded' ? `embedded:${spec.dir}` : `etcd:${spec.endpoints.join(',')}`;
  const say = (m: string) => log(opts.node, m);
  // On etcd or the embedded store, register this node first (as calico-node does).
  await joinCluster(spec, { node: opts.node, ip: opts.ip }, say);
  // Parsing, validation and the model run in their own thread from the start: the forwarding
  // thread only ever receives finished models. A datastore that cannot be used stops us here.
  const { source, first } = await ModelSource.start(opts.datastore, opts.node, say);
  say(`datastore ${specText}`);
  let current: NodeDataplaneModel = first;
  // natOutgoing's port range and timeouts are checked before anything is touched.
  const ephemeral = ephemeralPorts();
  const natPorts = opts.natPortRange ? parseNatPortRange(opts.natPortRange, ephemeral, VXLAN_PORT) : defaultNatPortRange(ephemeral, VXLAN_PORT);
  const udpTimeout = opts.natUdpTimeout !== undefined ? { unreplied: opts.natUdpTimeout, replied: opts.natUdpTimeout } : { unreplied: 30, replied: 120 };
  const nat = new NftNat(say);
  // The table exists while podway runs (a pool may turn natOutgoing on live); without nft it is an
  // error only once a pool asks for natOutgoing.
  const syncNat = (model: NodeDataplaneModel) => {
    const want = natSpecOf(model, natPorts, udpTimeout, opts.natMaxFlows ?? 65536);
    if (nat.active) return nat.update(want);
    try {
      nat.start(want);
      say(`nat: table ip podway created; ${want.natPools.length ? 'natOutgoing from ' + want.natPools.join(', ') : 'no pool has natOutgoing'}, ports ${natPorts[0]}-${natPorts[1]}`);
    } catch (e) {
      if (want.natPools.length) throw e;
      nat.lastError = (e as Error).message;
      say(`nat: ${nat.lastError} (no pool has natOutgoing now)`);
    }
  };
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
  // Trace and capture run in every forwarding thread.
  const taps = new Taps(engine, () => workers.map((w) => ({ post: (m: object, transfer?: ArrayBuffer[]) => w.postMessage(m, transfer) })));
  const server = startControlServer(engine, sock, workerCounters, { nat, taps });
  let kernelRoutes: KernelRoute4[] = [];
  let lastGateways = '';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', (e) => reject(new Error(`control socket ${sock}: ${e.message}`)));
    });
    const model = first;
    // Synchronously at start: the control socket must not answer before the first model is in force.
    kernelRoutes = readKernelRoutesSync();
    engine.apply(model, kernelRoutes);
    lastGateways = gatewaysKey(model, kernelRoutes);
    // After the host port exists: the table's reply rule names it.
    syncNat(model);
    // Workers 1..count-1 after the main engine: it set up the host and holds the first sockets.
    for (let index = 1; index < count; index++) {
      const w = new Worker(path.resolve(__dirname, '..', 'dataplane', 'worker.js'), {
        workerData: { index, count, node: opts.node, batch: opts.batch, ringVersion: opts.ringVersion, qdiscBypass: opts.qdiscBypass },
      });
      w.on('message', (m: { type: string; ip?: number; mac?: number[]; message?: string }) => {
        if (taps.handle(index, m)) return;
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
    await source.close();
    engine.stop();
    nat.stop();
    throw e;
  }
  for (const n of engine.notes) say(`host: set ${n}`);
  // Models are applied one at a time, the newest winning: the kernel's routes are read
  // asynchronously (no `ip` call blocks the forwarding thread), then the model is applied whole
  // between two batches. An unchanged model is applied again only if a node's underlay next hop
  // moved.
  let latest: { model: NodeDataplaneModel | null; ms: number } | null = null;
  let applying = false;
  let stopping = false;
  // A pool turned to VXLAN after this node registered: it needs a tunnel address now (calico-node
  // keeps reconciling it too). The join is idempotent: it only assigns what is missing.
  let joining = false;
  const ensureTunnelAddress = () => {
    if (joining || stopping || spec.kind === 'file') return;
    joining = true;
    joinCluster(spec, { node: opts.node, ip: opts.ip }, say)
      .catch((e) => say(`cannot assign a VXLAN tunnel address: ${(e as Error).message}`))
      .finally(() => (joining = false));
  };
  const applyLatest = async () => {
    if (applying || stopping) return;
    applying = true;
    try {
      while (latest) {
        const { model: changed, ms } = latest;
        latest = null;
        try {
          kernelRoutes = await engine.readKernelRoutes();
          if (stopping) return;
          const model = changed ?? current;
          const gw = gatewaysKey(model, kernelRoutes);
          if (!changed && gw === lastGateways) {
            say(`datastore change: this node's model is unchanged (${ms} ms in the model thread)`);
            continue;
          }
          engine.apply(model, kernelRoutes);
          current = model;
          try {
            syncNat(model);
          } catch (e) {
            say(`nat: ${(e as Error).message}: this node's pods leave unNATed until it is fixed`);
          }
          if (model.encap.vxlan && model.node.vtepIp === null) ensureTunnelAddress();
          lastGateways = gw;
          broadcast({ type: 'model', model, kernelRoutes });
        } catch (e) {
          say(`update rejected, keeping the last good state: ${(e as Error).message}`);
        }
      }
    } finally {
      applying = false;
    }
  };
  source.onMessage((m: ModelMessage) => {
    if (stopping) return;
    if (m.type === 'model' || m.type === 'unchanged') {
      // A newer "unchanged" never hides an older pending model.
      latest = m.type === 'model' ? { model: m.model, ms: m.ms } : { model: latest?.model ?? null, ms: m.ms };
      void applyLatest();
    } else if (m.type === 'rejected') say(`update rejected, keeping the last good state: ${m.message}`);
    else if (m.type === 'status') say(`datastore: ${m.message}`);
    else say(`datastore: ${m.message}${/keeping the last/.test(m.message) ? '' : ' (keeping the last good state)'}`);
  });
  const st = engine.status();
  say(`forwarding: node ${st.nodeIp} on ${st.underlay?.name}, ${st.routes} routes, ${st.endpoints} endpoints, control ${sock}`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      say(`${sig}: stopping`);
      stopping = true; // a model still on its way is not applied after this
      server.close();
      broadcast({ type: 'stop' });
      engine.stop();
      nat.stop();
      void Promise.all(workers.map((w) => new Promise((r) => { w.once('exit', r); setTimeout(() => void w.terminate(), 2000).unref(); })))
        .then(() => source.close())
        .then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
