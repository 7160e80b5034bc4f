/**
 * Bounds counted in time the event loop got to run, not in wall-clock time.
 *
 * A wall-clock deadline read after the loop was blocked (a long synchronous step, a machine short
 * of CPU: 2 vCPUs at load 15-20 blocked podway's start for seconds) reads as a timeout although
 * the peer answered long before: the timer is due, and the timers phase runs before the poll phase
 * that would have delivered the answer. So a connection to a healthy etcd read as "unreachable ...
 * no connection within 5000 ms" while etcd answered every other client at once.
 *
 * Here each wait counts at most what it asked for plus LOOP_SLACK_MS, however long the loop was
 * actually held; and the bound is declared spent only after a poll phase has run (setImmediate),
 * so an answer that arrived while the loop was held is seen first. A peer that really does not
 * answer still fails after the bound (plus the time the loop was held).
 */
import { monoNow } from './mono-clock';

/** What a wait may overrun and still count whole (timer granularity, ordinary scheduling). */
export const LOOP_SLACK_MS = 50;
/** A LoopTimer's steps: a hold longer than this counts as this plus LOOP_SLACK_MS. */
export const LOOP_TICK_MS = 250;

/** Time spent waiting, counted as the loop got to run (see the module comment). */
export class LoopBudget {
  private spent = 0;

  constructor(readonly ms: number) {}

  /** ms of the bound left (0 or less: spent). */
  left(): number {
    return this.ms - this.spent;
  }

  /** Waits for `wait` (which asked for `askedMs`), counting at most askedMs + LOOP_SLACK_MS. */
  async wait(askedMs: number, wait: Promise<unknown>): Promise<void> {
    const t0 = monoNow();
    await wait;
    this.spent += Math.min(Math.max(0, monoNow() - t0), Math.max(0, askedMs) + LOOP_SLACK_MS);
  }
}

/** Resolves after the poll phase now due has run: I/O that arrived meanwhile has been delivered. */
export function afterPoll(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/**
 * Calls `fn` once the loop has had `ms` to run (counted as LoopBudget counts, in steps of
 * LOOP_TICK_MS), after a poll phase. `cancel()` stops it. Unref'd: it does not keep the process alive.
 */
export function loopTimer(ms: number, fn: () => void): { cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  let cancelled = false;
  let left = ms;
  const step = (): void => {
    const asked = Math.max(1, Math.min(LOOP_TICK_MS, left));
    const t0 = monoNow();
    timer = setTimeout(() => {
      left -= Math.min(Math.max(0, monoNow() - t0), asked + LOOP_SLACK_MS);
      if (left > 0) return step();
      immediate = setImmediate(() => {
        if (!cancelled) fn();
      });
      immediate.unref();
    }, asked);
    timer.unref();
  };
  step();
  return {
    cancel: () => {
      cancelled = true;
      clearTimeout(timer);
      if (immediate) clearImmediate(immediate);
    },
  };
}
