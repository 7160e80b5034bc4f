/**
 * Forwarding workers (podway run --workers N) that did not answer the main thread in time (2 s: a
 * thread held by a long batch, a slow apply, a loaded machine). A late thread's last known answer
 * (its counts when it last answered: every answer is kept) stands in for it in what is summed
 * (counters, metrics): leaving it out made the sum dip by all it had counted, which Prometheus'
 * rate() reads as a counter reset of the whole node, a spike when it answered again. Its counts
 * only grow, so the stand-in is at most what it reports next: the sums never go down. Only a
 * thread that never answered yet (nothing known) is left out. Either is said, in the answer
 * (counters' lateWorkers, missingWorkers) and in a log warning. The warning comes at most once a
 * minute per kind of question, the times in between counted into the next one: a wedged worker
 * scraped every 15 s must not flood the log.
 */

/** The workers (1-based, worker k+1 at index k) whose answer is null: not given in time. */
export function missingWorkers(answers: readonly unknown[]): number[] {
  const out: number[] = [];
  answers.forEach((a, k) => {
    if (a === null) out.push(k + 1);
  });
  return out;
}

/**
 * `answers` (null: not given in time) with each late thread's last known answer (`last[k]`, null
 * or undefined: none) in its place, marked `late`; `late` lists those threads (1-based).
 */
export function withLastKnown<T extends object>(answers: readonly (T | null)[], last: readonly (T | null | undefined)[]): { answers: ((T & { late?: true }) | null)[]; late: number[] } {
  const late: number[] = [];
  const out = answers.map((a, k) => {
    if (a !== null) return a;
    const known = last[k];
    if (!known) return null;
    late.push(k + 1);
    return { ...known, late: true as const };
  });
  return { answers: out, late };
}

export class MissingWorkerLog {
  private readonly last = new Map<string, { at: number; since: number }>();

  constructor(
    private readonly warn: (m: string) => void,
    /** How long the main thread waits for an answer (for the message). */
    private readonly answerMs: number,
    private readonly intervalMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** `what` (e.g. "counters") was summed without the `missing` workers' part, and with the `late`
   * workers' last known counts. */
  note(what: string, missing: readonly number[], late: readonly number[] = []): void {
    if (missing.length === 0 && late.length === 0) return;
    const t = this.now();
    const l = this.last.get(what);
    if (l && t - l.at < this.intervalMs) {
      l.since++;
      return;
    }
    const more = l && l.since > 0 ? ` (and ${l.since} more time${l.since > 1 ? 's' : ''} since the last warning)` : '';
    this.last.set(what, { at: t, since: 0 });
    const all = [...late, ...missing].sort((a, b) => a - b);
    const whose = late.length > 1 ? 'their' : 'its';
    const parts = late.length === 0 ? [`left out of the ${what}`]
      : missing.length === 0 ? [`counted in the ${what} by ${whose} last answer`]
        : [`worker${late.length > 1 ? 's' : ''} ${late.join(', ')} counted in the ${what} by ${whose} last answer`, `worker${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (never answered yet) left out`];
    this.warn(`worker${all.length > 1 ? 's' : ''} ${all.join(', ')} did not answer within ${this.answerMs / 1000} s: ${parts.join('; ')}${more}`);
  }
}
