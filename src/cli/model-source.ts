/**
 * The main thread's handle on the model worker (model-worker.ts): starts it, waits for the first
 * model (or the error that stops `podway run` before it touches anything), then hands every later
 * message to the caller. The thread can run before the datastore is opened (spawn, then begin):
 * on the cached model its BGP speaker runs on the cache's settings meanwhile.
 *
 * Once the first model came, the thread is supervised: one that dies (an exception nothing caught
 * in an etcd client's stream handler, say) is said to the caller at once ({type:'thread-down'},
 * not in sync: forwarding goes on with the last good model) and a new one is started after a
 * backoff (1 s doubling up to 30 s; back to 1 s once a thread ran a minute after its first model).
 * The new thread lists the datastore again and its first model comes as any model does (the
 * engine applies the difference); its model numbers are mapped after the dead one's, so
 * modelApplied answers reach the thread that made the model (a dead thread's are dropped).
 *
 * A thread that hangs (a loop that never ends, an Atomics.wait, a call that never returns) is
 * found by a heartbeat over the same port: asked every 5 s, a thread that has not answered for
 * 20 s (`--model-thread-hang-after`, asked every quarter of it when shorter; a shorter one only
 * once the thread first answered, its start-up keeping 20 s) is terminated and handled as one that
 * died (Felix's calculation graph reports its liveness
 * every 10 s and is not live after 20 s). The main thread never waits on it: the asks and the
 * judgement run on timers. One that keeps dying (3 times with none running a minute after its
 * first model in between, within 10 minutes) is said to be failing (status, the log, /readyz: not
 * ready until a new one has run a minute, so readiness does not flap with each new thread); it is
 * restarted all the same, at most every 30 s, as runit restarts Felix and the kubelet a
 * crash-looping calico-node, never giving up: the main thread forwards on meanwhile.
 */
import type { TunnelMtuSettings } from '../control/felix-mtu';
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { Backoff } from '../util/backoff';
import { stableAfterWords } from './format';
import type { NodeDataplaneModel } from '../control';
import type { NodeStatus } from '../control/bgp/agent';
import type { BgpInputs } from '../control/bgp/cached-inputs';
import type { LearnedRoute } from '../control/route-calc';
import type { UnenforcedPolicies } from '../control/policy-kinds';

/** BGP in the model thread (`podway run --bgp`). */
export interface ModelSourceBgp {
  readonly bgp?: boolean;
  readonly bgpSecretsDir?: string;
  /** CALICO_ROUTER_ID (`--router-id`): `hash` or a dotted quad, for the BGP plan. */
  readonly routerId?: string;
  /** The learned routes of an earlier run (the model cache's): held, stale, from the first model on
   * until each peer has sent its table again (BgpAgent.holdStale). */
  readonly heldLearned?: readonly LearnedRoute[];
  /** The first thread's speaker starts a graceful restart (the OPENs' R and F bits, until each
   * peer's first session is up): only when the forwarding state of an earlier run is still there,
   * its model cache written in this boot of the machine (run.ts). A thread started again after one
   * died always does: this process forwarded all along. */
  readonly forwardingKept?: boolean;
  /** Felix's tunnel MTUs from podway run's environment (FELIX_VXLANMTU...: felix-mtu.ts), for
   * the model (over the FelixConfigurations). */
  readonly tunnelMtuEnv?: TunnelMtuSettings;
  /** The BGP agent's log lines (sessions up and down, skipped peers). */
  readonly onLog?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** The datastore's warnings (an endpoint left out, an address claimed twice), each when it appears. */
  readonly onWarning?: (message: string) => void;
  /** The network policies stored (podway enforces none), when first known and on each change. */
  readonly onPolicies?: (policies: UnenforcedPolicies) => void;
  /** Ends a wait for the first model (the thread is terminated, start rejects). */
  readonly signal?: AbortSignal;
  /** A thread started again after one died: the learned routes the model in force holds, held
   * stale in the new speaker (as heldLearned at start) until each peer has sent its table again. */
  readonly heldLearnedNow?: () => readonly LearnedRoute[] | undefined;
  /** The heartbeat's timeout (`--model-thread-hang-after`; default MODEL_THREAD_HEARTBEAT.timeoutMs),
   * asked every quarter of it, at most every MODEL_THREAD_HEARTBEAT.everyMs. A shorter one applies
   * once the thread first answered: until then (its start-up) the default's. */
  readonly hangAfterMs?: number;
  /** How long a thread must run after its first model to count as stable
   * (`--model-thread-stable-after`; default MODEL_THREAD_STABLE_MS): the backoff starts again from
   * its first wait, and a failing model thread is no longer failing (ready again). */
  readonly stableAfterMs?: number;
}

/** The model thread as `podway status` says it (modelThread) and the metrics count it. */
export interface ModelThreadStatus {
  /** running: a thread follows the datastore; starting: a new one is listing it (after one died);
   * down: none runs, a new one starts at nextStartAt. */
  state: 'running' | 'starting' | 'down';
  /** New threads started after one died. */
  restarts: number;
  /** Threads terminated because they stopped answering the heartbeat (among the deaths). */
  hangs: number;
  /** The last thread that died: when, and what killed it. */
  lastExit: { at: string; error: string } | null;
  nextStartAt: string | null;
  /** The thread keeps dying: `deaths` times since `since` (within MODEL_THREAD_FAILING.windowMs),
   * none running a minute after its first model in between; null otherwise, and again once a
   * thread ran that minute. It is restarted all the same (at most every 30 s). */
  failing: { deaths: number; since: string } | null;
  /** How long a new thread must run after its first model to end `failing` (seconds;
   * `--model-thread-stable-after`, default 60). */
  stableAfterS: number;
}

/** A new model thread after one died: the first wait, doubled per death up to the last. */
export const MODEL_THREAD_RESTART = { first: 1000, max: 30_000 } as const;
/** A thread that ran this long after its first model starts the backoff again from the first wait
 * (and ends `failing`); `--model-thread-stable-after` sets another. */
export const MODEL_THREAD_STABLE_MS = 60_000;
/** The heartbeat: the thread in force is asked every `everyMs`; one that has not answered for
 * `timeoutMs` is terminated (a thread busy with a large snapshot answers between two; an `ip`
 * call in it is bounded to 10 s). One that does not end within `endMs` of being terminated (stuck
 * in a native call) is left behind and a new one started all the same. */
export const MODEL_THREAD_HEARTBEAT = { everyMs: 5000, timeoutMs: 20_000, endMs: 10_000 } as const;
/** The thread is failing after this many deaths within windowMs with none stable in between. */
export const MODEL_THREAD_FAILING = { deaths: 3, windowMs: 10 * 60_000 } as const;

/**
 * Asks a thread every `everyMs` (post) and calls `hung` once an ask has gone `timeoutMs` without
 * its answer (answered). Judged on this thread's timers only: an answer already queued is read
 * first (the judgement waits for the next poll of the event loop), and a tick that comes late (this
 * thread itself was busy or the machine stalled for twice the period) asks afresh instead of
 * judging, so a slow main thread never takes the model thread for hung.
 */
class Heartbeat {
  private readonly timer: NodeJS.Timeout;
  /** When the ask not answered yet was posted (null: answered). */
  private asked: number | null = null;
  private id = 0;
  private lastTick = Date.now();
  private stopped = false;
  /** The thread answered an ask: its start-up (loading its modules, seconds of CPU on a loaded
   * machine) is behind it, and timeoutMs judges it from then on (startTimeoutMs before). */
  private everAnswered = false;

  constructor(private readonly post: (id: number) => void, private readonly hung: (silentMs: number) => void, private readonly everyMs: number, private readonly timeoutMs: number, private readonly startTimeoutMs: number) {
    this.timer = setInterval(() => this.tick(), everyMs);
    this.timer.unref();
  }

  answered(id: number): void {
    if (id === this.id) {
      this.asked = null;
      this.everAnswered = true;
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = Date.now();
    const late = now - this.lastTick > 2 * this.everyMs;
    this.lastTick = now;
    if (late || this.asked === null) return this.ask(now);
    if (now - this.asked < (this.everAnswered ? this.timeoutMs : this.startTimeoutMs)) return;
    setImmediate(() => {
      if (this.stopped || this.asked === null) return;
      this.stop();
      this.hung(Date.now() - this.asked);
    });
  }

  private ask(now: number): void {
    this.asked = now;
    this.post(++this.id);
  }
}

/** The first model: gen is the model thread's number for it, answered with modelApplied. */
export interface FirstModel { source: ModelSource; first: NodeDataplaneModel; gen?: number; bgpInputs?: BgpInputs }

export type ModelMessage =
  /** cause: a datastore change or the learned BGP routes; bgp: what the change did to the speaker. */
  | { type: 'model'; model: NodeDataplaneModel; ms: number; cause?: 'datastore' | 'bgp'; bgp?: string; gen?: number; felixOnlyOf?: number; bgpInputs?: BgpInputs; inSync?: boolean }
  | { type: 'unchanged'; ms: number; cause?: 'datastore' | 'bgp'; bgp?: string; bgpInputs?: BgpInputs; inSync?: boolean }
  | { type: 'rejected'; message: string }
  | { type: 'error'; message: string; inSync?: boolean }
  | { type: 'status'; message: string; inSync?: boolean }
  /** The datastore was replaced (another etcd cluster, its revision went back): re-listed, register again. */
  | { type: 'store-replaced'; message: string; inSync?: boolean }
  | { type: 'fatal'; message: string }
  /** The thread died after the first model (supervised: a new one starts at restartAt); stack:
   * what killed it, for the log; failing: it keeps dying (ModelThreadStatus.failing, in words). */
  | { type: 'thread-down'; message: string; stack?: string; failing?: string; inSync: false; restartAt: string }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'warning'; message: string };

/** What the thread posts to its parent (ModelMessage, and these to this handle alone). */
type WorkerPost =
  | ModelMessage
  | { type: 'bgp-status'; id: number; status: NodeStatus }
  /** The answer to a heartbeat's {type:'ping', id}. */
  | { type: 'pong'; id: number }
  /** The network policies the datastore holds (none enforced: policy-kinds.ts): to onPolicies. */
  | { type: 'policies'; policies: UnenforcedPolicies }
  /** An exception nothing caught, or a rejection nothing handled, in the thread: posted just
   * before it ends (model-worker.ts). */
  | { type: 'crash'; message: string; stack?: string };

/** The failing state in words (status, the log, /readyz). */
function failingText(f: { deaths: number; since: number }, stableMs: number): string {
  const stable = stableAfterWords(stableMs);
  return `failing: the model thread died ${f.deaths} times since ${new Date(f.since).toISOString()}, none running ${stable} in between (restarted at most every ${MODEL_THREAD_RESTART.max / 1000} s, never given up; not ready until a new one has run ${stable})`;
}

export class ModelSource {
  private listener: (m: ModelMessage) => void = () => {};
  private nextId = 0;
  private readonly pendingStatus = new Map<number, (s: NodeStatus | null) => void>();
  /** A begin() waiting for the first model; null once it came (or none asked). */
  private waiting: { resolve: (f: FirstModel) => void; reject: (e: Error) => void; say: (m: string) => void } | null = null;
  private started = false;
  private exited = false;
  private exitListener: (code: number) => void = () => {};
  /** The thread in force (a new one after one died). */
  private worker: Worker;
  /** The thread in force has ended (a new one not started yet). */
  private workerGone = false;
  /** close() or terminate() was asked: a thread that ends is not replaced. */
  private closing = false;
  /** What killed the thread in force, as it said ({type:'crash'}) or its 'error' event gave it. */
  private death: { message: string; stack?: string } | null = null;
  private readonly backoff = new Backoff(MODEL_THREAD_RESTART);
  private restarts = 0;
  private hangs = 0;
  /** When the threads died since the last one that ran a minute after its first model (failing). */
  private deaths: number[] = [];
  /** The thread in force's heartbeat (stopped once it ended or close() was asked). */
  private heartbeat: Heartbeat | null = null;
  private lastExit: { at: string; error: string } | null = null;
  private restartTimer: NodeJS.Timeout | undefined;
  private nextStartAt: number | null = null;
  /** A thread started after one died has not posted its first model yet. */
  private restarting = false;
  /** When the thread in force posted its first model (Date.now()). */
  private firstModelAt = 0;
  /** Model numbers: the thread in force's gen g is genBase + g here (its first is genBase + 1). */
  private genBase = 0;
  private lastGen = 0;
  /** A thread that ran this long after its first model is stable (MODEL_THREAD_STABLE_MS by default). */
  private readonly stableMs: number;

  private constructor(private readonly spec: string, private readonly node: string, private readonly bgp: ModelSourceBgp, heldLearned: readonly LearnedRoute[] | undefined) {
    this.stableMs = bgp.stableAfterMs ?? MODEL_THREAD_STABLE_MS;
    this.worker = this.spawnWorker(heldLearned, bgp.forwardingKept === true);
  }

  private spawnWorker(heldLearned: readonly LearnedRoute[] | undefined, forwardingKept: boolean): Worker {
    const bgp = this.bgp;
    const hangAfterMs = bgp.hangAfterMs ?? MODEL_THREAD_HEARTBEAT.timeoutMs;
    const worker = new Worker(path.resolve(__dirname, 'model-worker.js'), { workerData: { spec: this.spec, node: this.node, bgp: bgp.bgp, bgpSecretsDir: bgp.bgpSecretsDir, routerId: bgp.routerId, heldLearned, forwardingKept, tunnelMtuEnv: bgp.tunnelMtuEnv } });
    this.workerGone = false;
    this.death = null;
    /** This thread's end was handled (its 'exit', or given up waiting for it after a terminate). */
    let ended = false;
    const heartbeat = new Heartbeat(
      (id) => worker.postMessage({ type: 'ping', id }),
      (silentMs) => {
        if (worker !== this.worker || ended || this.closing) return;
        this.hangs++;
        this.death = { message: `hung: no answer to the heartbeat for ${Math.round(silentMs / 1000)} s, a loop that does not end or a call that does not return; terminated` };
        void worker.terminate();
        // A thread stuck in a native call may not end: left behind, a new one all the same.
        setTimeout(() => {
          if (ended || worker !== this.worker) return;
          this.death = { message: `${this.death?.message ?? 'hung'}, and it did not end within ${MODEL_THREAD_HEARTBEAT.endMs / 1000} s: left behind` };
          gone(-1);
        }, MODEL_THREAD_HEARTBEAT.endMs).unref();
      },
      Math.min(MODEL_THREAD_HEARTBEAT.everyMs, Math.floor(hangAfterMs / 4)),
      hangAfterMs,
      Math.max(hangAfterMs, MODEL_THREAD_HEARTBEAT.timeoutMs),
    );
    this.heartbeat?.stop();
    this.heartbeat = heartbeat;
    const gone = (code: number): void => {
      ended = true;
      heartbeat.stop();
      this.workerGone = true;
      for (const [id, resolve] of this.pendingStatus) {
        this.pendingStatus.delete(id);
        resolve(null);
      }
      if (this.started && !this.closing) return this.supervise(code);
      this.exited = true;
      this.waiting?.reject(new Error(`model worker exited (${code}) before the first model${this.death ? `: ${this.death.message}` : ''}`));
      this.waiting = null;
      this.exitListener(code);
    };
    worker.on('message', (m: WorkerPost) => {
      if (worker !== this.worker || ended) return;
      if (m.type === 'pong') return heartbeat.answered(m.id);
      if (m.type === 'bgp-status') {
        this.pendingStatus.get(m.id)?.(m.status);
        this.pendingStatus.delete(m.id);
        return;
      }
      if (m.type === 'crash') {
        this.death = { message: m.message, ...(m.stack ? { stack: m.stack } : {}) };
        return;
      }
      if (m.type === 'log') return bgp.onLog?.(m.level, m.message);
      if (m.type === 'warning') return bgp.onWarning?.(m.message);
      if (m.type === 'policies') return bgp.onPolicies?.(m.policies);
      if (m.type === 'model' && m.gen !== undefined) {
        this.lastGen = this.genBase + m.gen;
        m = { ...m, gen: this.lastGen, ...(m.felixOnlyOf !== undefined ? { felixOnlyOf: this.genBase + m.felixOnlyOf } : {}) };
      }
      if (this.started) return this.fromStarted(m);
      const w = this.waiting;
      if (!w) return;
      if (m.type === 'model') {
        this.started = true;
        this.firstModelAt = Date.now();
        this.waiting = null;
        w.resolve({ source: this, first: m.model, ...(m.gen !== undefined ? { gen: m.gen } : {}), ...(m.bgpInputs ? { bgpInputs: m.bgpInputs } : {}) });
      } else if (m.type === 'error' || m.type === 'status' || m.type === 'store-replaced') {
        w.say(`datastore: ${m.message}${m.type === 'error' ? ' (waiting for it)' : ''}`);
      } else if (m.type === 'fatal' || m.type === 'rejected') {
        this.waiting = null;
        w.reject(new Error(m.message));
      }
    });
    worker.on('error', (e) => {
      if (worker !== this.worker || ended) return;
      this.death ??= { message: e.message, ...(e.stack ? { stack: e.stack } : {}) };
      if (this.waiting) this.waiting.reject(e);
      this.waiting = null;
    });
    worker.once('exit', (code) => {
      if (worker !== this.worker || ended) return;
      gone(code);
    });
    return worker;
  }

  /** A message of the thread in force once the first model came. */
  private fromStarted(m: ModelMessage): void {
    if (this.restarting) {
      if (m.type === 'fatal') {
        // The new thread's datastore start failed (the model this node cannot compute, say): it is
        // ended, and another one tried after the backoff.
        this.death = { message: `its datastore start failed: ${m.message}` };
        void this.worker.terminate();
        return;
      }
      // Not in sync until its first model came (a "reachable again" while it lists says in sync).
      if ('inSync' in m && m.inSync) {
        const { inSync: _, ...rest } = m;
        m = rest as ModelMessage;
      }
      if (m.type === 'model') {
        this.restarting = false;
        this.firstModelAt = Date.now();
        this.listener({ type: 'status', message: `the model thread started again (restart ${this.restarts}) listed the datastore: its model replaces the last good one (the difference applied)` });
      }
    }
    this.listener(m);
  }

  /** The thread in force died after the first model: said, and a new one started after the backoff. */
  private supervise(code: number): void {
    const now = Date.now();
    // One that ran a while after its first model is not "dying at once every time".
    if (!this.restarting && this.firstModelAt > 0 && now - this.firstModelAt >= this.stableMs) {
      this.backoff.reset();
      this.deaths = [];
    }
    this.deaths = [...this.deaths.filter((t) => now - t < MODEL_THREAD_FAILING.windowMs), now];
    const wait = this.backoff.next();
    const why = this.death?.message ?? `it exited with code ${code}`;
    const stack = this.death?.stack;
    this.lastExit = { at: new Date(now).toISOString(), error: why };
    this.nextStartAt = now + wait;
    const during = this.restarting ? `restart ${this.restarts}, before its first model: ` : '';
    const failing = this.failing(now);
    this.listener({
      type: 'thread-down',
      message: `the model thread died (${during}${why}): not following the datastore, forwarding on the last good model; a new thread in ${wait / 1000} s (restart ${this.restarts + 1}${this.backoff.attempts > 1 ? `, backing off: ${this.backoff.attempts} deaths in a row, at most every ${MODEL_THREAD_RESTART.max / 1000} s` : ''})`,
      ...(stack ? { stack } : {}),
      ...(failing ? { failing: failingText(failing, this.stableMs) } : {}),
      inSync: false,
      restartAt: new Date(this.nextStartAt).toISOString(),
    });
    this.restartTimer = setTimeout(() => this.restart(), wait);
  }

  private restart(): void {
    this.restartTimer = undefined;
    if (this.closing) return;
    this.nextStartAt = null;
    this.restarts++;
    // The new thread's model numbers follow the dead one's: an answer for a dead thread's model is dropped.
    this.genBase = this.lastGen;
    this.restarting = true;
    // Its speaker restarts gracefully (R and F): this process forwarded all along.
    this.worker = this.spawnWorker(this.bgp.heldLearnedNow?.(), true);
    this.listener({ type: 'status', message: `the model thread started again (restart ${this.restarts}): listing the datastore`, inSync: false });
    this.worker.postMessage({ type: 'start' });
  }

  /** The model thread now: running, starting again, or down until nextStartAt. */
  threadStatus(): ModelThreadStatus {
    const failing = this.failing(Date.now());
    return {
      state: this.workerGone ? 'down' : this.restarting ? 'starting' : 'running',
      restarts: this.restarts,
      hangs: this.hangs,
      lastExit: this.lastExit,
      nextStartAt: this.nextStartAt === null ? null : new Date(this.nextStartAt).toISOString(),
      failing: failing ? { deaths: failing.deaths, since: new Date(failing.since).toISOString() } : null,
      stableAfterS: this.stableMs / 1000,
    };
  }

  /** Why the node is not ready for the model thread alone ('' when it is not failing): a thread
   * that came back after dying again and again is not trusted until it ran a minute. */
  failingReason(): string {
    const f = this.failing(Date.now());
    return f ? `${failingText(f, this.stableMs)}${this.lastExit ? `; last died at ${this.lastExit.at}: ${this.lastExit.error}` : ''}` : '';
  }

  /** Failing at `now`: MODEL_THREAD_FAILING.deaths deaths within its window, none of the threads
   * since having run stableMs after its first model. */
  private failing(now: number): { deaths: number; since: number } | null {
    const recent = this.deaths.filter((t) => now - t < MODEL_THREAD_FAILING.windowMs);
    if (recent.length < MODEL_THREAD_FAILING.deaths) return null;
    const stableNow = !this.workerGone && !this.restarting && this.firstModelAt > recent[recent.length - 1] && now - this.firstModelAt >= this.stableMs;
    return stableNow ? null : { deaths: recent.length, since: recent[0] };
  }

  /** The model thread, its datastore not opened yet (begin opens it). */
  static spawn(spec: string, node: string, bgp: ModelSourceBgp = {}): ModelSource {
    return new ModelSource(spec, node, bgp, bgp.heldLearned);
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
      source.terminate();
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
   * model is applied (model-worker.ts useCachedBgp). `withdrawn` (why): the cache is not this
   * node's state: the same sessions, every prefix announced from it withdrawn, nothing exported. */
  useCachedBgp(inputs: BgpInputs, appliedAt: Date, file: string, withdrawn?: string): void {
    this.worker.postMessage({ type: 'cached-bgp', inputs, appliedAt: appliedAt.toISOString(), file, ...(withdrawn !== undefined ? { withdrawn } : {}) });
  }

  /** The BGP sessions as the model thread sees them (null: no answer within 2 s). */
  bgpStatus(): Promise<NodeStatus | null> {
    if (this.workerGone) return Promise.resolve(null); // no thread runs (a new one on its way)
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
    // A model of a thread that died: the thread in force never made it.
    if (gen <= this.genBase || this.workerGone) return;
    this.worker.postMessage({ type: 'applied', gen: gen - this.genBase, ok, ...(message ? { message } : {}) });
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
    this.closing = true;
    this.heartbeat?.stop();
    clearTimeout(this.restartTimer);
    void this.worker.terminate();
  }

  /** Stop watching (bounded: the thread is terminated after 2 s, and given up on after that
   * terminate's MODEL_THREAD_HEARTBEAT.endMs: one stuck in a native call never ends). */
  close(): Promise<void> {
    this.closing = true;
    this.heartbeat?.stop();
    clearTimeout(this.restartTimer);
    if (this.exited) return Promise.resolve();
    if (this.workerGone) {
      // died, its replacement not started: nothing runs
      this.exited = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const giveUp = setTimeout(resolve, 2000 + MODEL_THREAD_HEARTBEAT.endMs);
      const timer = setTimeout(() => void this.worker.terminate(), 2000);
      timer.unref();
      giveUp.unref();
      this.worker.once('exit', () => {
        clearTimeout(timer);
        clearTimeout(giveUp);
        resolve();
      });
      this.worker.postMessage({ type: 'stop' });
    });
  }
}
