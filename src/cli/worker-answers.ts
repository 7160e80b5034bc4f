/**
 * Forwarding workers (podway run --workers N) that did not answer the main thread in time: their
 * part is left out of what is summed (counters, metrics), so it is said, in the answer (counters'
 * missingWorkers) and in a log warning. The warning comes at most once a minute per kind of
 * question, the times in between counted into the next one: a wedged worker scraped every 15 s
 * must not flood the log.
 */

/** The workers (1-based, worker k+1 at index k) whose answer is null: not given in time. */
export function missingWorkers(answers: readonly unknown[]): number[] {
  const out: number[] = [];
  answers.forEach((a, k) => {
    if (a === null) out.push(k + 1);
  });
  return out;
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

  /** `what` (e.g. "counters") was summed without the `missing` workers' part. */
  note(what: string, missing: readonly number[]): void {
    if (missing.length === 0) return;
    const t = this.now();
    const l = this.last.get(what);
    if (l && t - l.at < this.intervalMs) {
      l.since++;
      return;
    }
    const more = l && l.since > 0 ? ` (and ${l.since} more time${l.since > 1 ? 's' : ''} since the last warning)` : '';
    this.last.set(what, { at: t, since: 0 });
    this.warn(`worker${missing.length > 1 ? 's' : ''} ${missing.join(', ')} did not answer within ${this.answerMs / 1000} s: left out of the ${what}${more}`);
  }
}
