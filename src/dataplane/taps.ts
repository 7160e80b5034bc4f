/**
 * Trace and capture across every forwarding thread: the main engine and the workers of
 * `podway run --workers N` (worker.ts). The main thread starts the same session in each, collects
 * what they find (trace records, capture chunks) and ends them all together: when enough was
 * found, on timeout, or when the client goes away.
 *
 * Worker messages: to a worker {type:'trace-start'|'trace-stop'|'capture-start'|'capture-stop', id,
 * ...}; from a worker {type:'trace-record', id, record}, {type:'trace-armed', id} (its engine
 * traces from now on), {type:'capture-started', id} (its engine captures from now on) and
 * {type:'capture-chunk', id, chunk, lost, end}.
 */
import type { Engine } from './engine';
import type { TraceFilter, TraceRecord } from './trace';
import type { CaptureOptions } from './capture';

export interface WorkerLink {
  post(msg: object, transfer?: ArrayBuffer[]): void;
}

export interface CaptureSink {
  chunk(records: Uint8Array): void;
  /** Records the engines lost (their buffer was full). */
  lost(n: number): void;
  /** Every engine finished. */
  end(): void;
}

/** How long stop() waits for the workers' last chunks. */
const WORKER_END_WAIT_MS = 1000;
/** How long a capture waits for the workers to say they capture before it counts as started
 * anyway (a worker that died must not hold the answer). */
const WORKER_START_WAIT_MS = 2000;

/** A capture in every thread: `ready` once each of them captures, `stop` ends it everywhere. */
export interface CaptureSession {
  ready: Promise<void>;
  stop: () => void;
}

export class Taps {
  private seq = 0;
  private readonly traces = new Map<number, (r: TraceRecord, worker: number) => void>();
  /** Per trace: called as each worker reports its trace open ('trace-armed'). */
  private readonly armed = new Map<number, (worker: number) => void>();
  private readonly captures = new Map<number, (chunk: Uint8Array | null, lost: number, end: boolean) => void>();
  private readonly captureStarts = new Map<number, (worker: number) => void>();
  private capturing = false;

  constructor(private readonly engine: Engine, private readonly workers: () => readonly WorkerLink[] = () => []) {}

  /** A message from worker `index` (1-based like its name): true when it was one of ours. */
  handle(index: number, m: { type: string; id?: number; record?: TraceRecord; chunk?: Uint8Array; lost?: number; end?: boolean }): boolean {
    if (m.type === 'trace-record') {
      this.traces.get(m.id!)?.(m.record!, index);
      return true;
    }
    if (m.type === 'capture-started') {
      this.captureStarts.get(m.id!)?.(index);
      return true;
    }
    if (m.type === 'trace-armed') {
      this.armed.get(m.id!)?.(index);
      return true;
    }
    if (m.type === 'capture-chunk') {
      this.captures.get(m.id!)?.(m.chunk ?? null, m.lost ?? 0, !!m.end);
      return true;
    }
    return false;
  }

  /**
   * The next `count` packets matching `filter` in any thread, or what came within `timeoutMs`.
   * `onArmed` is called once every thread matches packets against the filter (workers open their
   * trace between two batches, and say so), so a caller can tell when to send what it traces.
   */
  async trace(filter: TraceFilter, count: number, timeoutMs: number, onArmed?: () => void, signal?: AbortSignal): Promise<TraceRecord[]> {
    const workers = this.workers();
    const wanted = Math.max(1, Math.min(count, 100));
    const t = this.engine.openTrace(filter, wanted); // refuses a second trace
    const id = ++this.seq;
    const records: TraceRecord[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const add = (r: TraceRecord, worker: number) => {
      if (records.length >= wanted) return;
      records.push(workers.length > 0 ? { ...r, ingress: `${r.ingress} [w${worker}]` } : r);
      if (records.length >= wanted) done();
    };
    this.traces.set(id, add);
    t.onRecord = (r) => add(r, 0);
    // As a capture's start: armed once every worker said so, or anyway after WORKER_START_WAIT_MS
    // (a worker that died must not hold the line back).
    let armTimer: NodeJS.Timeout | undefined;
    if (onArmed && workers.length === 0) onArmed();
    else if (onArmed) {
      const waiting = new Set(workers.map((_, k) => k + 1)); // handle()'s worker index: 1-based
      const armed = () => {
        clearTimeout(armTimer);
        this.armed.delete(id);
        onArmed();
      };
      armTimer = setTimeout(armed, WORKER_START_WAIT_MS);
      armTimer.unref();
      this.armed.set(id, (worker) => {
        waiting.delete(worker);
        if (waiting.size === 0) armed();
      });
    }
    for (const w of workers) w.post({ type: 'trace-start', id, filter, count: wanted });
    const timer = setTimeout(done, timeoutMs);
    // the client went away (Ctrl-C): the trace ends now, not at its timeout, so the next can start
    if (signal?.aborted) done();
    signal?.addEventListener('abort', () => done(), { once: true });
    try {
      await finished;
    } finally {
      clearTimeout(timer);
      clearTimeout(armTimer);
      this.engine.closeTrace(t);
      for (const w of workers) w.post({ type: 'trace-stop', id });
      this.traces.delete(id);
      this.armed.delete(id);
    }
    return records.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  }

  /**
   * Capture in every thread into `sink`; the whole capture ends after `opts.count` records (counted
   * here across threads) or when stop() is called. One capture at a time. The main engine
   * captures at once, a worker once it has read its message: `ready` tells when every thread
   * captures (what `podway capture` reports as "capturing"), or when WORKER_START_WAIT_MS passed.
   */
  capture(opts: CaptureOptions, sink: CaptureSink, countRecords: (chunk: Uint8Array) => number): CaptureSession {
    if (this.capturing) throw new Error('a capture is already running');
    const workers = this.workers();
    this.capturing = true;
    const id = ++this.seq;
    let open = 1 + workers.length;
    let taken = 0;
    let stopped = false;
    let finished = false;
    let endTimer: NodeJS.Timeout | null = null;
    const finish = () => {
      if (finished) return;
      finished = true;
      if (endTimer) clearTimeout(endTimer);
      this.captures.delete(id);
      this.capturing = false;
      sink.end();
    };
    const onChunk = (chunk: Uint8Array | null, lost: number, end: boolean) => {
      if (finished) return;
      if (lost > 0) sink.lost(lost);
      if (chunk && chunk.length > 0 && taken < opts.count) {
        taken += countRecords(chunk);
        sink.chunk(chunk);
      }
      if (taken >= opts.count) stop();
      if (end && --open === 0) finish();
    };
    const stopMain = this.engine.startCapture(opts, onChunk);
    this.captures.set(id, onChunk);
    const ready = new Promise<void>((resolve) => {
      if (workers.length === 0) return resolve();
      const waiting = new Set(workers.map((_, k) => k + 1)); // handle()'s worker index: 1-based
      const started = () => {
        clearTimeout(timer);
        this.captureStarts.delete(id);
        resolve();
      };
      const timer = setTimeout(started, WORKER_START_WAIT_MS);
      timer.unref();
      this.captureStarts.set(id, (worker) => {
        waiting.delete(worker);
        if (waiting.size === 0) started();
      });
    });
    for (const w of workers) w.post({ type: 'capture-start', id, opts });
    const stop = () => {
      if (stopped) return;
      stopped = true;
      stopMain();
      for (const w of workers) w.post({ type: 'capture-stop', id });
      // A worker that does not answer (it died) must not keep the capture open.
      if (!finished) {
        endTimer = setTimeout(finish, WORKER_END_WAIT_MS);
        endTimer.unref();
      }
    };
    return { ready, stop };
  }
}

/** The worker side: runs the sessions the main thread asks for on this worker's engine. */
export function serveTaps(engine: Engine, post: (msg: object, transfer?: ArrayBuffer[]) => void): (m: { type: string; id?: number; filter?: TraceFilter; count?: number; opts?: CaptureOptions }) => boolean {
  const traces = new Map<number, ReturnType<Engine['openTrace']>>();
  const captures = new Map<number, () => void>();
  return (m) => {
    switch (m.type) {
      case 'trace-start': {
        const t = engine.openTrace(m.filter!, m.count!);
        t.onRecord = (record) => post({ type: 'trace-record', id: m.id, record });
        traces.set(m.id!, t);
        post({ type: 'trace-armed', id: m.id });
        return true;
      }
      case 'trace-stop': {
        const t = traces.get(m.id!);
        if (t) engine.closeTrace(t);
        traces.delete(m.id!);
        return true;
      }
      case 'capture-start': {
        const id = m.id!;
        const stop = engine.startCapture(m.opts!, (chunk, lost, end) => {
          if (end) captures.delete(id);
          post({ type: 'capture-chunk', id, chunk, lost, end }, chunk ? [chunk.buffer as ArrayBuffer] : []);
        });
        captures.set(id, stop);
        post({ type: 'capture-started', id });
        return true;
      }
      case 'capture-stop':
        captures.get(m.id!)?.();
        return true;
    }
    return false;
  };
}
