/**
 * The main thread's handle on the model worker (model-worker.ts): starts it, waits for the first
 * model (or the error that stops `podway run` before it touches anything), then hands every later
 * message to the caller.
 */
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import type { NodeDataplaneModel } from '../control';
import type { NodeStatus } from '../control/bgp/agent';

/** BGP in the model thread (`podway run --bgp`). */
export interface ModelSourceBgp {
  readonly bgp?: boolean;
  readonly bgpSecretsDir?: string;
  /** The BGP agent's log lines (sessions up and down, skipped peers). */
  readonly onLog?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** The datastore's warnings (an endpoint left out, an address claimed twice), each when it appears. */
  readonly onWarning?: (message: string) => void;
  /** Ends a wait for the first model (the thread is terminated, start rejects). */
  readonly signal?: AbortSignal;
}

export type ModelMessage =
  /** cause: a datastore change or the learned BGP routes; bgp: what the change did to the speaker. */
  | { type: 'model'; model: NodeDataplaneModel; ms: number; cause?: 'datastore' | 'bgp'; bgp?: string; gen?: number }
  | { type: 'unchanged'; ms: number; cause?: 'datastore' | 'bgp'; bgp?: string }
  | { type: 'rejected'; message: string }
  | { type: 'error'; message: string; inSync?: boolean }
  | { type: 'status'; message: string; inSync?: boolean }
  /** The datastore was replaced (another etcd cluster, its revision went back): re-listed, register again. */
  | { type: 'store-replaced'; message: string; inSync?: boolean }
  | { type: 'fatal'; message: string }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'warning'; message: string };

export class ModelSource {
  private listener: (m: ModelMessage) => void = () => {};
  private nextId = 0;
  private readonly pendingStatus = new Map<number, (s: NodeStatus | null) => void>();

  private constructor(private readonly worker: Worker) {}

  /**
   * Start watching the datastore `spec` for `node`; resolves with the first model, rejects with a
   * clear error. Errors before the first model that the datastore retries on (etcd not reachable
   * yet) go to `say` and the wait goes on, as calico-node waits for its datastore.
   */
  static start(spec: string, node: string, say: (m: string) => void = () => {}, bgp: ModelSourceBgp = {}): Promise<{ source: ModelSource; first: NodeDataplaneModel }> {
    const worker = new Worker(path.resolve(__dirname, 'model-worker.js'), { workerData: { spec, node, bgp: bgp.bgp, bgpSecretsDir: bgp.bgpSecretsDir } });
    const source = new ModelSource(worker);
    return new Promise((resolve, reject) => {
      let started = false;
      const abort = () => {
        if (started) return;
        void worker.terminate();
        reject(new Error('stopped before the datastore answered'));
      };
      if (bgp.signal?.aborted) abort();
      bgp.signal?.addEventListener('abort', abort, { once: true });
      worker.on('message', (m: ModelMessage | { type: 'bgp-status'; id: number; status: NodeStatus }) => {
        if (m.type === 'bgp-status') {
          source.pendingStatus.get(m.id)?.(m.status);
          source.pendingStatus.delete(m.id);
          return;
        }
        if (m.type === 'log') return bgp.onLog?.(m.level, m.message);
        if (m.type === 'warning') return bgp.onWarning?.(m.message);
        if (started) return source.listener(m);
        if (m.type === 'model') {
          started = true;
          bgp.signal?.removeEventListener('abort', abort);
          resolve({ source, first: m.model });
        } else if (m.type === 'error' || m.type === 'status' || m.type === 'store-replaced') {
          say(`datastore: ${m.message}${m.type === 'error' ? ' (waiting for it)' : ''}`);
        } else if (m.type === 'fatal' || m.type === 'rejected') {
          void worker.terminate();
          reject(new Error(m.message));
        }
      });
      worker.once('error', (e) => {
        if (!started) reject(e);
        else source.listener({ type: 'error', message: `model worker failed: ${e.message}` });
      });
      worker.once('exit', (code) => {
        if (!started) reject(new Error(`model worker exited (${code}) before the first model`));
      });
    });
  }

  /** The BGP sessions as the model thread sees them (null: no answer within 2 s). */
  bgpStatus(): Promise<NodeStatus | null> {
    return new Promise((resolve) => {
      const id = ++this.nextId;
      this.pendingStatus.set(id, resolve);
      this.worker.postMessage({ type: 'bgp-status', id });
      setTimeout(() => {
        if (this.pendingStatus.delete(id)) resolve(null);
      }, 2000).unref();
    });
  }

  /** The engine applied model `gen` (ok) or refused it: the model thread's BGP speaker follows
   * only applied models (model-worker.ts onApplied). */
  modelApplied(gen: number, ok: boolean, message?: string): void {
    this.worker.postMessage({ type: 'applied', gen, ok, ...(message ? { message } : {}) });
  }

  /** New connections to the datastore (a KV store's), e.g. once the node address they came from left. */
  reconnectDatastore(reason: string): void {
    this.worker.postMessage({ type: 'reconnect', reason });
  }

  onMessage(fn: (m: ModelMessage) => void): void {
    this.listener = fn;
  }

  /** Stop watching (bounded: the thread is terminated after 2 s). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => void this.worker.terminate(), 2000);
      timer.unref();
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.worker.postMessage({ type: 'stop' });
    });
  }
}
