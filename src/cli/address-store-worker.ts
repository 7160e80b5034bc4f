/**
 * The address monitor's store of this node's Node (join.ts NodeAddressStore: its reads and its
 * compare-and-swap writes of the Node's addresses) in a thread of its own, for `podway run`
 * (address-store-thread.ts starts it and is the only user). Not on the forwarding thread: its
 * store is an EtcdKv (etcd3, grpc-js, protobufjs), whose loading at the monitor's first look held
 * that thread for seconds on a loaded machine (5.1-7.1 s at load 18; bench/README.md, "The gap of
 * a restart"), and whose calls' encoding and decoding run there at every look.
 *
 * Also the holder of this node's liveness key on etcd (control/node-live.ts NodeLiveness, through
 * the same store: {id, op:'live', record, lease?}: the lease the start claimed it with, adopted),
 * whose value follows the node's addresses ({id, op:'live-addresses', addresses}, and each address
 * written by 'update'), and whose lease is revoked at {op:'close'}. Each renewal's outcome is
 * posted as {liveStatus} (podway status, /metrics).
 *
 * workerData: { spec, node, stop }: stop, a SharedArrayBuffer of one Int32 that podway run sets to 1
 * (address-store-thread.ts stopLiveness) before its exit revokes any liveness lease; read by the
 * holder before each grant and write (a message could come after the revoke's effect: this thread
 * may be busy loading its etcd client when the exit begins). Messages taken: {id, op:'stored'}, {id, op:'update', change,
 * expect?}, {id, op:'live', record}, {op:'reconnect'} (the node's address left or appeared: new
 * connections), {id, op:'close'}; answered with {id, ok:true, value} or {id, ok:false, message};
 * the liveness key's news posted as {log:'info'|'warn', message}.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { NodeAddressStore } from './join';
import type { DatastoreSpec } from '../control/kv/spec';
import type { LiveRecord, LivenessStatus } from '../control/node-live';

export interface AddressStoreWorkerData {
  readonly spec: DatastoreSpec;
  readonly node: string;
  /** One Int32: 1 once podway's exit was asked for (see the file comment). */
  readonly stop: SharedArrayBuffer;
}

export type AddressStoreRequest =
  | { id: number; op: 'stored' }
  | { id: number; op: 'update'; change: Parameters<NodeAddressStore['update']>[0]; expect?: Parameters<NodeAddressStore['update']>[1] }
  | { id: number; op: 'close' }
  | { id: number; op: 'live'; record: LiveRecord; lease?: string | null }
  | { id: number; op: 'live-addresses'; addresses: string[] }
  | { op: 'reconnect' };

export type AddressStoreAnswer = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string } | { log: 'info' | 'warn'; message: string } | { liveStatus: LivenessStatus };

if (parentPort) {
  const port = parentPort;
  const data = workerData as AddressStoreWorkerData;
  const log = (level: 'info' | 'warn') => (message: string) => port.postMessage({ log: level, message } satisfies AddressStoreAnswer);
  const stopCell = new Int32Array(data.stop);
  const store = new NodeAddressStore(data.spec, data.node, { info: log('info'), warn: log('warn') }, (liveStatus) => port.postMessage({ liveStatus } satisfies AddressStoreAnswer), () => Atomics.load(stopCell, 0) === 1);
  port.on('message', (m: AddressStoreRequest) => {
    if (m.op === 'reconnect') {
      if (data.spec.kind === 'etcd') (require('../control/kv/etcd-kv') as typeof import('../control/kv/etcd-kv')).reconnectEtcdStores();
      return;
    }
    const work = m.op === 'stored' ? store.stored() : m.op === 'update' ? store.update(m.change, m.expect) : m.op === 'live' ? Promise.resolve().then(() => store.holdLiveness(m.record, m.lease ?? null))
      : m.op === 'live-addresses' ? store.setLiveAddresses(m.addresses) : store.close();
    work.then(
      (value) => {
        port.postMessage({ id: m.id, ok: true, value } satisfies AddressStoreAnswer);
        if (m.op === 'close') port.close(); // the thread ends once the store's sockets are closed
      },
      (e: unknown) => port.postMessage({ id: m.id, ok: false, message: e instanceof Error ? e.message : String(e) } satisfies AddressStoreAnswer),
    );
  });
}
