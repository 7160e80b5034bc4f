/**
 * The main thread's handle on the model worker (model-worker.ts): starts it, waits for the first
 * model (or the error that stops `podway run` before it touches anything), then hands every later
 * message to the caller. The thread can run before the datastore is opened (spawn, then begin):
 * on the cached model its BGP speaker runs on the cache's settings meanwhile.
 */
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import type { NodeDataplaneModel } from '../control';
import type { NodeStatus } from '../control/bgp/agent';
import type { BgpInputs } from '../control/bgp/cached-inputs';
import type { LearnedRoute } from '../control/route-calc';

/** BGP in the model thread (`podway run --bgp`). */
export interface ModelSourceBgp {
  readonly bgp?: boolean;
  readonly bgpSecretsDir?: string;
  /** CALICO_ROUTER_ID (`--router-id`): `hash` or a dotted quad, for the BGP plan. */
  readonly routerId?: string;
  /** The learned routes of an earlier run (the model cache's): held, stale, from the first model on
   * until each peer has sent its table again (BgpAgent.holdStale); their presence also says this
   * start is a restart (graceful restart's R bit). */
  readonly heldLearned?: readonly LearnedRoute[];
  /** The BGP agent's log lines (sessions up and down, skipped peers). */
  readonly onLog?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** The datastore's warnings (an endpoint left out, an address claimed twice), each when it appears. */
  readonly onWarning?: (message: string) => void;
  /** Ends a wait for the first model (the thread is terminated, start rejects). */
  readonly signal?: AbortSignal;
}

/** The first model: gen is the model thread's number for it, answered with modelApplied. */
export interface FirstModel { source: ModelSource; first: NodeDataplaneModel; gen?: number; bgpInputs?: BgpInputs }

export type ModelMessage =
  /** cause: a datastore change or the learned BGP routes; bgp: what the change did to the speaker. */
  | { type: 'model'; model: NodeDataplaneModel; ms: number; cause?: 'datastore' | 'bgp'; bgp?: string; gen?: number; bgpInputs?: BgpInputs }
  | { type: 'unchanged'; ms: number; cause?: 'datastore' | 'bgp'; bgp?: string; bgpInputs?: BgpInputs }
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
  /** A begin() waiting for the first model; null once it came (or none asked). */
  private waiting: { resolve: (f: FirstModel) => void; reject: (e: Error) => void; say: (m: string) => void } | null = null;
  private started = false;
  private exited = false;
  private exitListener: (code: number) => void = () => {};

  private constructor(private readonly worker: Worker, private readonly bgp: ModelSourceBgp) {
    worker.on('message', (m: ModelMessage | { type: 'bgp-status'; id: number; status: NodeStatus }) => {
      if (m.type === 'bgp-status') {
        this.pendingStatus.get(m.id)?.(m.status);
        this.pendingStatus.delete(m.id);
        return;
      }
      if (m.type === 'log') return bgp.onLog?.(m.level, m.message);
      if (m.type === 'warning') return bgp.onWarning?.(m.message);
      if (this.started) return this.listener(m);
      const w = this.waiting;
      if (!w) return;
      if (m.type === 'model') {
        this.started = true;
        this.waiting = null;
        w.resolve({ source: this, first: m.model, ...(m.gen !== undefined ? { gen: m.gen } : {}), ...(m.bgpInputs ? { bgpInputs: m.bgpInputs } : {}) });
      } else if (m.type === 'error' || m.type === 'status' || m.type === 'store-replaced') {
        w.say(`datastore: ${m.message}${m.type === 'error' ? ' (waiting for it)' : ''}`);
      } else if (m.type === 'fatal' || m.type === 'rejected') {
        this.waiting = null;
        w.reject(new Error(m.message));
      }
    });
    worker.once('error', (e) => {
      if (this.waiting) this.waiting.reject(e);
      else if (this.started) this.listener({ type: 'error', message: `model worker failed: ${e.message}` });
      this.waiting = null;
    });
    worker.once('exit', (code) => {
      this.exited = true;
      this.waiting?.reject(new Error(`model worker exited (${code}) before the first model`));
      this.waiting = null;
      this.exitListener(code);
    });
  }

  /** The model thread, its datastore not opened yet (begin opens it). */
  static spawn(spec: string, node: string, bgp: ModelSourceBgp = {}): ModelSource {
    const worker = new Worker(path.resolve(__dirname, 'model-worker.js'), { workerData: { spec, node, bgp: bgp.bgp, bgpSecretsDir: bgp.bgpSecretsDir, routerId: bgp.routerId, heldLearned: bgp.heldLearned } });
    return new ModelSource(worker, bgp);
  }

  /**
   * Start watching the datastore `spec` for `node`; resolves with the first model, rejects with a
   * clear error (the thread is terminated). Errors before the first model that the datastore
   * retries on (etcd not reachable yet) go to `say` and the wait goes on, as calico-node waits for
   * its datastore.
   */
  static async start(spec: string, node: string, say: (m: string) => void = () => {}, bgp: ModelSourceBgp = {}): Promise<FirstModel> {
    const source = ModelSource.spawn(spec, node, bgp);
    try {
      return await source.begin(say, bgp.signal);
    } catch (e) {
      void source.worker.terminate();
      throw e;
    }
  }

  /**
   * Opens the datastore in the thread: resolves with its first model, rejects with the error that
   * stopped it (the datastore is closed in the thread, which keeps running: begin may be called
   * again). `signal` ends the wait (rejects; the thread stays until close()).
   */
  begin(say: (m: string) => void = () => {}, signal?: AbortSignal): Promise<FirstModel> {
    if (this.started) return Promise.reject(new Error('the datastore was started already'));
    if (this.exited) return Promise.reject(new Error('the model worker exited'));
    return new Promise((resolve, reject) => {
      const abort = () => {
        if (!this.waiting) return;
        this.waiting = null;
        reject(new Error('stopped before the datastore answered'));
      };
      this.waiting = {
        resolve: (f) => { signal?.removeEventListener('abort', abort); resolve(f); },
        reject: (e) => { signal?.removeEventListener('abort', abort); reject(e); },
        say,
      };
      if (signal?.aborted) return abort();
      signal?.addEventListener('abort', abort, { once: true });
      this.worker.postMessage({ type: 'start' });
    });
  }

  /** With --bgp on the cached model: the speaker runs on the cache's BGP settings until a datastore
   * model is applied (model-worker.ts useCachedBgp). */
  useCachedBgp(inputs: BgpInputs, appliedAt: Date, file: string): void {
    this.worker.postMessage({ type: 'cached-bgp', inputs, appliedAt: appliedAt.toISOString(), file });
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

  /** The thread ended (stopped, or died). */
  get hasExited(): boolean {
    return this.exited;
  }

  /** Called once the thread ended, whatever ended it (close() too). */
  onExit(fn: (code: number) => void): void {
    this.exitListener = fn;
  }

  onMessage(fn: (m: ModelMessage) => void): void {
    this.listener = fn;
  }

  /** Ends the thread at once (a start that failed: nothing to stop gracefully). */
  terminate(): void {
    void this.worker.terminate();
  }

  /** Stop watching (bounded: the thread is terminated after 2 s). */
  close(): Promise<void> {
    if (this.exited) return Promise.resolve();
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
