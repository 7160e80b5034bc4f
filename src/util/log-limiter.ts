/**
 * Bounds a log line something outside podway can cause once per frame or message: a neighbour on
 * the underlay announcing a new MAC per gratuitous ARP, a BGP peer sending malformed UPDATEs by the
 * thousand. Per key (a neighbour's address, a reason), the first line is logged; the ones after it
 * within `intervalMs` are only counted; the next line logged carries that count (`admit` returns
 * it). With `summary`, a key whose lines stopped being logged gets one line at the end of its
 * interval (a timer, unref'd) saying how many were not logged, so a flood leaves one line per
 * interval and its last state is not lost when it stops. The counters the callers keep count
 * every event; this only decides what is written.
 *
 * At most `maxKeys` keys are remembered (the oldest forgotten first), so a flood of distinct keys
 * costs bounded memory; a forgotten key's next line is logged as a first one.
 *
 * A leaf module (it imports nothing).
 */
export interface LogLimiterOptions<K> {
  /** At most one line per key per this many ms. */
  intervalMs: number;
  /** Keys remembered (default 256). */
  maxKeys?: number;
  /** Called at the end of an interval in which lines of `key` were not logged, with their count. */
  summary?: (key: K, notLogged: number) => void;
  now?: () => number;
}

interface KeyState {
  loggedAt: number;
  notLogged: number;
}

export class LogLimiter<K> {
  readonly intervalMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private readonly seen = new Map<K, KeyState>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(private readonly opts: LogLimiterOptions<K>) {
    this.intervalMs = opts.intervalMs;
    this.maxKeys = opts.maxKeys ?? 256;
    this.now = opts.now ?? Date.now;
  }

  /** -1: do not log this one (counted); otherwise log it, mentioning the returned number of lines
   * of this key not logged since its last one (0: none). */
  admit(key: K): number {
    const now = this.now();
    const last = this.seen.get(key);
    if (last && now - last.loggedAt < this.intervalMs) {
      last.notLogged++;
      if (this.opts.summary && this.timer === undefined && !this.stopped) this.arm(last.loggedAt + this.intervalMs - now);
      return -1;
    }
    if (last) {
      const n = last.notLogged;
      last.loggedAt = now;
      last.notLogged = 0;
      return n;
    }
    if (this.seen.size >= this.maxKeys) this.seen.delete(this.seen.keys().next().value as K);
    this.seen.set(key, { loggedAt: now, notLogged: 0 });
    return 0;
  }

  /** Summaries due now are written (the timer's work; tests call it with their own clock). */
  flush(): void {
    this.timer = undefined;
    const summary = this.opts.summary;
    if (!summary || this.stopped) return;
    const now = this.now();
    let next = Infinity;
    for (const [key, st] of this.seen) {
      if (st.notLogged === 0) continue;
      const due = st.loggedAt + this.intervalMs;
      if (due > now) {
        next = Math.min(next, due);
        continue;
      }
      const n = st.notLogged;
      // The summary counts as the key's line: the next one within the interval is counted again.
      st.loggedAt = now;
      st.notLogged = 0;
      summary(key, n);
    }
    if (next !== Infinity) this.arm(next - now);
  }

  /** No more summaries (the owner stops); the pending timer is cleared. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.flush(), Math.max(0, ms));
    this.timer.unref?.();
  }
}
