/**
 * The datastore side of `podway run`, in its own thread: it watches the datastore, parses and
 * validates every change and computes this node's model, so none of that (hundreds of ms for a
 * file of 1,000 endpoints) ever runs on the forwarding thread. The main thread receives only
 * finished models, or word that the model did not change.
 *
 * workerData: { spec, node } (spec as `podway run --datastore`). Messages posted:
 *   {type:'model', model, ms}      a new model (the first one too)
 *   {type:'unchanged', ms}         a valid change that leaves this node's model as it is
 *   {type:'rejected', message}     a valid snapshot this node cannot use (e.g. its Node is gone)
 *   {type:'error', message}        an invalid edit, a read error, the store unreachable (the last
 *                                  good state stays; before the first model: still trying)
 *   {type:'status', message}       the datastore is reachable again, or re-listing (for the log)
 *   {type:'fatal', message}        the datastore could not be used at start
 * 'error' and 'status' from etcd or the embedded store carry inSync: whether the store is reachable
 * and not re-listing (readiness; a file datastore is always in sync).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { openDatastore, computeNodeModel, ClusterSnapshot, NodeDataplaneModel, KvDatastore } from '../control';
import { findUnderlay } from '../dataplane/host';

interface ModelWorkerInit { spec: string; node: string }

/** A model's identity for "nothing changed" (Sets as sorted arrays, so equal models compare equal). */
export function modelKey(model: NodeDataplaneModel): string {
  return JSON.stringify(model, (_k, v) => (v instanceof Set ? [...v].sort() : v));
}

if (parentPort) {
  const port = parentPort;
  const init = workerData as ModelWorkerInit;
  // file:PATH (the YAML file), etcd:URL[,URL] or embedded:DIR (Calico's etcd v3 layout)
  const store = openDatastore(init.spec);
  /** The underlay MTU by node IP, read once per address (it decides the tunnel MTUs). */
  const underlayMtu = new Map<number, number>();
  let lastKey = '';

  const modelFor = (snap: ClusterSnapshot): NodeDataplaneModel => {
    const first = computeNodeModel(snap, init.node);
    let mtu = underlayMtu.get(first.node.ip);
    if (mtu === undefined) {
      mtu = findUnderlay(first.node.ip).mtu;
      underlayMtu.set(first.node.ip, mtu);
    }
    return mtu === first.mtu.underlay ? first : computeNodeModel(snap, init.node, { underlayMtu: mtu });
  };

  const publish = (snap: ClusterSnapshot, t0: number): void => {
    const model = modelFor(snap);
    const key = modelKey(model);
    const ms = Math.round((performance.now() - t0) * 10) / 10;
    if (key === lastKey) {
      port.postMessage({ type: 'unchanged', ms });
      return;
    }
    lastKey = key;
    port.postMessage({ type: 'model', model, ms });
  };

  const inSync = (): boolean | undefined => (store instanceof KvDatastore ? store.inSync : undefined);
  store.onError((e) => port.postMessage({ type: 'error', message: e.message, inSync: inSync() }));
  // Informational lines of a KV datastore: reachable again, resyncing after a compaction.
  if (store instanceof KvDatastore) store.onStatus((line) => port.postMessage({ type: 'status', message: line, inSync: inSync() }));
  const onChange = (snap: ClusterSnapshot): void => {
    const t0 = performance.now();
    try {
      publish(snap, t0);
    } catch (e) {
      port.postMessage({ type: 'rejected', message: (e as Error).message });
    }
  };
  port.on('message', (m: { type: string }) => {
    if (m.type === 'stop') void store.close().then(() => port.close());
  });
  // The first snapshot: a model this node cannot compute is fatal at start (not later).
  const t0 = performance.now();
  store.start().then(
    (snap) => {
      try {
        publish(snap, t0);
      } catch (e) {
        port.postMessage({ type: 'fatal', message: (e as Error).message });
        return;
      }
      // Changes from here on (a reload only runs after the watch's debounce, so none is missed).
      store.onSnapshot(onChange);
    },
    (e) => port.postMessage({ type: 'fatal', message: (e as Error).message }),
  );
}
