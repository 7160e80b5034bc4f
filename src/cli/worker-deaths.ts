/**
 * What `podway run --workers N` does when a forwarding thread (dataplane/worker.ts, threads 1..N-1;
 * thread 0 is the main thread, whose death is the process's) ends while podway runs: an exception
 * nothing catches there, its isolate out of memory, a process.exit() in it.
 *
 * A new thread with the same index is started after a short wait (WORKER_RESTART: 0.2 s, doubling
 * per death in the window, at most 3.2 s): it opens the same ports with the same share of the flows
 * (steer.ts: a worker's share is fixed by its index and the count), so the flows the dead one
 * carried resume. The dead thread's ports, rings and fds were closed with its isolate (the addon's
 * instance data finalizer, native/addon.c addon_finalize) before its 'exit' event.
 *
 * A thread that keeps dying is not restarted for ever: WORKER_DEATHS.max deaths (of any forwarding
 * thread) within WORKER_DEATHS.windowMs and podway run stops and exits 1, saying so, for its
 * supervisor (systemd's Restart=always, the kubelet) to start it afresh, as Felix exits on a fatal
 * dataplane error and runit or the kubelet restarts it. Not at the first death: a new thread is
 * back in well under a second with only its share of the flows lost meanwhile, where a process
 * restart stops every thread's flows for the whole start (docs/failures.md, "A forwarding thread
 * dies").
 */

/** The wait before a new thread: `first` after a death, doubled per death in the window, at most `max`. */
export const WORKER_RESTART = { first: 200, max: 3200 } as const;
/** This many deaths within windowMs: podway run gives up (exits 1). */
export const WORKER_DEATHS = { max: 5, windowMs: 60_000 } as const;

export type WorkerDeathVerdict =
  | { action: 'restart'; waitMs: number; deathsInWindow: number }
  | { action: 'give-up'; deathsInWindow: number; message: string };

export interface WorkerDeathRecord { worker: number; at: string; error: string }

export class WorkerDeaths {
  private times: number[] = [];
  private restartCount = 0;
  private last: WorkerDeathRecord | null = null;
  /** Threads down now, with when their new one starts. */
  private readonly down = new Map<number, { restartAt: number; error: string }>();

  constructor(
    private readonly policy: { max: number; windowMs: number } = WORKER_DEATHS,
    private readonly restart: { first: number; max: number } = WORKER_RESTART,
  ) {}

  /** Thread `worker` ended (`error`: why, as said). What to do. */
  died(worker: number, error: string, now = Date.now()): WorkerDeathVerdict {
    this.times = this.times.filter((t) => now - t < this.policy.windowMs);
    this.times.push(now);
    this.last = { worker, at: new Date(now).toISOString(), error };
    const n = this.times.length;
    if (n >= this.policy.max) {
      this.down.set(worker, { restartAt: Number.NaN, error });
      return {
        action: 'give-up',
        deathsInWindow: n,
        message: `forwarding threads died ${n} times within ${this.policy.windowMs / 1000} s (the last: worker ${worker}: ${error}): giving up, exiting 1 for the supervisor to start podway afresh`,
      };
    }
    const waitMs = Math.min(this.restart.max, this.restart.first * 2 ** (n - 1));
    this.down.set(worker, { restartAt: now + waitMs, error });
    return { action: 'restart', waitMs, deathsInWindow: n };
  }

  /** A new thread `worker` was started. */
  restarted(worker: number): void {
    this.down.delete(worker);
    this.restartCount++;
  }

  /** Why thread `worker` does not answer, when it is down (for readiness). */
  downReason(worker: number): string | null {
    const d = this.down.get(worker);
    if (!d) return null;
    return Number.isNaN(d.restartAt) ? `worker ${worker} died (${d.error}); giving up` : `worker ${worker} died (${d.error}); a new one at ${new Date(d.restartAt).toISOString()}`;
  }

  get restarts(): number { return this.restartCount; }

  /** `podway status`'s `forwardingThreads` (JSON). */
  status(count: number, now = Date.now()): { count: number; restarts: number; deathsInWindow: number; windowS: number; giveUpAt: number; lastDeath: WorkerDeathRecord | null; down: { worker: number; restartAt: string | null }[] } {
    return {
      count,
      restarts: this.restartCount,
      deathsInWindow: this.times.filter((t) => now - t < this.policy.windowMs).length,
      windowS: this.policy.windowMs / 1000,
      giveUpAt: this.policy.max,
      lastDeath: this.last,
      down: [...this.down].map(([worker, d]) => ({ worker, restartAt: Number.isNaN(d.restartAt) ? null : new Date(d.restartAt).toISOString() })),
    };
  }
}
