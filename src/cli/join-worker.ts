/**
 * One registration (join.ts joinCluster) in a thread of its own, for `podway run` (join-thread.ts
 * starts it and is the only user): the Node, the tunnel addresses (IPAM), the ready mark.
 *
 * Not on the forwarding thread: what a registration loads and runs there held it for seconds
 * right after a restart began to forward on its model cache (bench/README.md, "The gap of a
 * restart"): the schemas (zod, to read the pools for the tunnel addresses), `ip addr show` run
 * synchronously for first-found, and with EtcdKv the etcd3 client (grpc-js, protobufjs). Here an
 * etcd store is opened with the light client (kv/open.ts 'command': one registration, then
 * closed), and the thread ends with it.
 *
 * workerData: { spec, node, ip?, ip6?, atStart?, live? }. Messages posted: {type:'say'|'warn', message},
 * {type:'ipam', event}, {type:'node-read', entry}, {type:'node-registered', entry},
 * {type:'cluster-guid', guid}, {type:'locked', locked}, {type:'live-claimed', lease} (the node's
 * liveness key claimed at start: control/node-live.ts claimNode), {type:'fence-warning', message} (a
 * create left without its fence, etcd-fence.ts), then {type:'done', fences} or {type:'failed',
 * message, stack?} (fences: this thread's fence counts, added to the main thread's). Message
 * taken: {type:'abort'} (podway run stopping: the wait for an unreachable store ends).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { joinCluster } from './join';
import { NodeLiveElsewhereError, type LiveRecord } from '../control/node-live';
import type { DatastoreSpec } from '../control/kv/spec';
import type { KvEntry } from '../control/kv/kv';

export interface JoinWorkerData {
  readonly spec: Exclude<DatastoreSpec, { kind: 'file' }>;
  readonly node: string;
  readonly ip?: string;
  readonly ip6?: string;
  readonly atStart?: boolean;
  readonly live?: LiveRecord;
}

export type JoinWorkerMessage =
  | { type: 'say' | 'warn' | 'fence-warning'; message: string }
  | { type: 'ipam'; event: string }
  | { type: 'node-read'; entry: KvEntry | null }
  | { type: 'node-registered'; entry: KvEntry }
  | { type: 'cluster-guid'; guid: string | null }
  | { type: 'locked'; locked: boolean }
  | { type: 'live-claimed'; lease: string }
  | { type: 'done'; fences: { store: string; written: number; moved: number; unwritten: number }[] }
  | { type: 'failed'; message: string; stack?: string; liveElsewhere?: boolean };

if (parentPort) {
  const port = parentPort;
  const data = workerData as JoinWorkerData;
  const post = (m: JoinWorkerMessage) => port.postMessage(m);
  const abort = new AbortController();
  port.on('message', (m: { type?: string }) => {
    if (m.type === 'abort') abort.abort(new Error('stopped'));
  });
  const fences = data.spec.kind === 'etcd' ? (require('../control/kv/etcd-fence') as typeof import('../control/kv/etcd-fence')) : null;
  fences?.reportUnwrittenFences((message) => post({ type: 'fence-warning', message }));
  const end = (m: JoinWorkerMessage) => {
    post(m);
    port.close(); // nothing more to take: the thread ends once the store's sockets are closed
  };
  joinCluster(data.spec, {
    node: data.node,
    ip: data.ip,
    ip6: data.ip6,
    atStart: data.atStart,
    ...(data.live ? { live: data.live, onLiveClaimed: (lease: string) => post({ type: 'live-claimed', lease }) } : {}),
    signal: abort.signal,
    onIpam: (event) => post({ type: 'ipam', event }),
    warn: (message) => post({ type: 'warn', message }),
    onNodeRead: (entry) => post({ type: 'node-read', entry }),
    onNodeRegistered: (entry) => post({ type: 'node-registered', entry }),
    onClusterGuid: (guid) => post({ type: 'cluster-guid', guid }),
    onDatastoreLocked: (locked) => post({ type: 'locked', locked }),
  }, (message) => post({ type: 'say', message })).then(
    () => end({ type: 'done', fences: fences?.fenceTotals() ?? [] }),
    (e: unknown) => end({ type: 'failed', message: e instanceof Error ? e.message : String(e), ...(e instanceof Error && e.stack ? { stack: e.stack } : {}), ...(e instanceof NodeLiveElsewhereError ? { liveElsewhere: true } : {}) }),
  );
}
