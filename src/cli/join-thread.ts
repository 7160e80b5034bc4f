/**
 * `podway run`'s registrations (join.ts joinCluster: the Node, its tunnel addresses, the ready
 * mark), each in a thread of its own (join-worker.ts), so that nothing of one runs on the
 * forwarding thread: after a restart on the model cache the registration begins the moment podway
 * forwards, and on that thread it held the pods' traffic for seconds (loading the etcd client and
 * the schemas, running `ip addr show` synchronously; bench/README.md, "The gap of a restart").
 * Here the forwarding thread only starts the thread and takes its messages.
 *
 * The same contract as joinCluster: resolves once registered, waits out an unreachable store
 * (saying so through `say`), rejects with the registration's error (its message; the class is
 * not kept, except a refusal because the node runs on another host: NodeRunningElsewhereError),
 * or with the signal's reason once aborted.
 */
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import type { DatastoreSpec } from '../control/kv/spec';
import type { JoinOptions, LiveClaimHandle } from './join';
import type { JoinWorkerData, JoinWorkerMessage } from './join-worker';
import { UsageError } from './usage-error';

/**
 * The start refused: the node runs on another host (control/node-live.ts NodeLiveElsewhereError,
 * from the registration's thread). A UsageError so that `podway run` exits 2, which the systemd
 * unit does not restart on (RestartPreventExitStatus=2): a restart would be refused again.
 */
export class NodeRunningElsewhereError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'NodeRunningElsewhereError';
  }
}

/** After an abort, how long the thread may go on (an etcd call under way) before it is terminated. */
const ABORT_GRACE_MS = 5000;

export function joinInThread(spec: DatastoreSpec, opts: JoinOptions, say: (m: string) => void): Promise<void> {
  if (spec.kind === 'file') return Promise.resolve();
  if (opts.signal?.aborted) return Promise.reject(opts.signal.reason instanceof Error ? opts.signal.reason : new Error('stopped'));
  const data: JoinWorkerData = { spec, node: opts.node, ...(opts.ip !== undefined ? { ip: opts.ip } : {}), ...(opts.ip6 !== undefined ? { ip6: opts.ip6 } : {}), ...(opts.atStart ? { atStart: true } : {}), ...(opts.live ? { live: opts.live } : {}) };
  const worker = new Worker(path.resolve(__dirname, 'join-worker.js'), { workerData: data });
  let exited = false;
  const threadEnded = new Promise<void>((resolve) => worker.once('exit', () => {
    exited = true;
    resolve();
  }));
  /** The handle of the liveness lease the thread claimed, and renews until released or revoked (join-worker.ts). */
  const claimHandle = (lease: string): LiveClaimHandle => ({
    lease,
    ended: threadEnded,
    release: () => {
      if (!exited) worker.postMessage({ type: 'live-release', lease });
    },
    revoke: () => new Promise<void>((resolve) => {
      if (exited) return resolve();
      const done = () => {
        worker.off('message', answer);
        worker.off('exit', done);
        resolve();
      };
      const answer = (m: JoinWorkerMessage) => {
        if (m.type === 'live-revoked') done();
      };
      worker.on('message', answer);
      worker.once('exit', done);
      worker.postMessage({ type: 'live-revoke', lease });
    }),
  });
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const settle = (e?: Error) => {
      if (settled) return;
      settled = true;
      // A thread still keeping a claimed lease alive (until handed over or revoked) does not hold
      // the process: podway run's exit ends it (the lease then expires within its TTL).
      worker.unref();
      clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (e) reject(e);
      else resolve();
    };
    function onAbort() {
      worker.postMessage({ type: 'abort' });
      killTimer = setTimeout(() => {
        void worker.terminate();
        settle(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('stopped'));
      }, ABORT_GRACE_MS);
      killTimer.unref();
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: JoinWorkerMessage) => {
      switch (m.type) {
        case 'say':
          return say(m.message);
        case 'warn':
          return (opts.warn ?? say)(m.message);
        case 'fence-warning':
          return (opts.warn ?? say)(m.message);
        case 'ipam':
          return opts.onIpam?.(m.event);
        case 'node-read':
          return opts.onNodeRead?.(m.entry);
        case 'node-registered':
          return opts.onNodeRegistered?.(m.entry);
        case 'cluster-guid':
          return opts.onClusterGuid?.(m.guid);
        case 'locked':
          return opts.onDatastoreLocked?.(m.locked);
        case 'live-claimed':
          return opts.onLiveClaimed?.(m.lease, claimHandle(m.lease));
        case 'live-revoked':
          return; // the handle's answer
        case 'done':
          addFences(m.fences);
          return settle();
        case 'failed': {
          const e = m.liveElsewhere ? new NodeRunningElsewhereError(m.message) : new Error(m.message);
          if (m.stack) e.stack = m.stack;
          return settle(e);
        }
      }
    });
    worker.on('error', (e) => settle(new Error(`the registration thread failed: ${e.message}`)));
    worker.on('exit', (code) => settle(new Error(`the registration thread exited (code ${code}) before it registered node ${opts.node}`)));
  });
}

/** The registration thread's etcd create fences, added to this thread's (podway status, /metrics). */
function addFences(fences: readonly { store: string; written: number; moved: number; unwritten: number }[]): void {
  if (fences.length === 0) return;
  const { threadFenceCounters } = require('../control/kv/etcd-fence') as typeof import('../control/kv/etcd-fence');
  for (const f of fences) {
    const c = threadFenceCounters(f.store);
    c.written += f.written;
    c.moved += f.moved;
    c.unwritten += f.unwritten;
  }
}
