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
 *
 * The liveness lease claimed here is kept alive here (control/node-live.ts ClaimKeeper, on a light
 * client of its own) from the claim on, also once the registration ended, until podway run says
 * {type:'live-release', lease} (its holder renewed it: handed over) or {type:'live-revoke'} (the
 * start ended: revoked, answered {type:'live-revoked'}); the thread ends after that.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { joinCluster } from './join';
import { ClaimKeeper, NodeLiveElsewhereError, type KvLeaseKeepAlive, type LiveRecord } from '../control/node-live';
import { openKvStore } from '../control/kv/open';
import type { KvStore } from '../control/kv/kv';
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
  | { type: 'live-revoked' }
  | { type: 'done'; fences: { store: string; written: number; moved: number; unwritten: number }[] }
  | { type: 'failed'; message: string; stack?: string; liveElsewhere?: boolean };

if (parentPort) {
  const port = parentPort;
  const data = workerData as JoinWorkerData;
  const post = (m: JoinWorkerMessage) => port.postMessage(m);
  const abort = new AbortController();
  // The claimed liveness lease's renewals (see the file comment); the registration ended or not.
  let keeper: { renewals: ClaimKeeper; kv: KvStore } | null = null;
  let ended = false;
  const keeperDone = () => {
    const k = keeper;
    keeper = null;
    // A renewal under way is answered before its client is closed (else it fails: a warning
    // about a lease handed over).
    void k?.renewals.settled().then(() => k.kv.close()).catch(() => undefined);
    if (ended) port.close();
  };
  const keep = (lease: string) => {
    if (!keeper) {
      const kv = openKvStore(data.spec, { use: 'command' });
      const k: { renewals: ClaimKeeper; kv: KvStore } = {
        // The lease found gone (etcd wiped or restored, or not renewed for its TTL): the holder
        // writes the key on a new lease and never hands this one over; nothing more to keep here.
        renewals: new ClaimKeeper(kv as KvStore & KvLeaseKeepAlive, data.node, (message) => post({ type: 'warn', message }), undefined, () => {
          if (keeper === k) keeperDone();
        }),
        kv,
      };
      keeper = k;
    }
    keeper.renewals.keep(lease);
  };
  /** podway run stopping (abort): a lease claimed here and not handed over is revoked. */
  let stopping = false;
  /** The revokes under way: the registration's end is said once they answered. */
  let revoking: Promise<void> = Promise.resolve();
  const revokeKept = (): Promise<void> => {
    const k = keeper;
    const p = (k ? k.renewals.revoke() : Promise.resolve())
      .catch((e: Error) => post({ type: 'warn', message: `node ${data.node}: its liveness lease not revoked: ${e.message} (it expires within its TTL)` }))
      .finally(() => {
        if (keeper === k) keeperDone();
      });
    revoking = Promise.all([revoking, p]).then(() => undefined);
    return p;
  };
  port.on('message', (m: { type?: string; lease?: string }) => {
    if (m.type === 'abort') {
      // The stop (a signal while starting, a failed start, podway's stop): the registration
      // aborted at once (an unreachable etcd's waits end), and the key this thread claimed, not
      // handed over (podway run may not have heard of it yet), revoked meanwhile; the
      // registration's end is said once the revoke answered (end below).
      stopping = true;
      abort.abort(new Error('stopped'));
      void revokeKept();
    } else if (m.type === 'live-release') {
      // handed over: only the lease kept now (a later claim of this registration is kept on)
      if (keeper && keeper.renewals.leaseId() === m.lease) {
        keeper.renewals.release();
        keeperDone();
      }
    } else if (m.type === 'live-revoke') {
      void revokeKept().finally(() => post({ type: 'live-revoked' }));
    }
  });
  const fences = data.spec.kind === 'etcd' ? (require('../control/kv/etcd-fence') as typeof import('../control/kv/etcd-fence')) : null;
  fences?.reportUnwrittenFences((message) => post({ type: 'fence-warning', message }));
  const end = async (m: JoinWorkerMessage) => {
    // A stop's revoke under way answered first: podway run takes this end as the claim undone.
    await revoking;
    post(m);
    ended = true;
    // nothing more to take (once a lease claimed here is handed over or revoked): the thread ends
    // once the store's sockets are closed
    if (!keeper) port.close();
  };
  joinCluster(data.spec, {
    node: data.node,
    ip: data.ip,
    ip6: data.ip6,
    atStart: data.atStart,
    ...(data.live ? {
      live: data.live,
      onLiveClaimed: (lease: string) => {
        keep(lease); // renewed from now on, here
        post({ type: 'live-claimed', lease });
        if (stopping) void revokeKept(); // claimed as the stop came: not kept
      },
    } : {}),
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
