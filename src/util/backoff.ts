/**
 * The delay state of a retry that doubles: the first wait after a reset is `first` ms, each
 * further one twice the last, never more than `max`. reset() (after a success, or when what was
 * retried is replaced) starts again from `first`. No jitter: each user retries one local thing
 * (a speaker's listener, an nft table, a join, a datastore list), not many clients against one
 * server, so nothing is spread out by it, and the waits stay what the logs and docs say.
 *
 * A leaf module (it imports nothing) so that src/control, src/dataplane and src/cli can all use
 * it: src/control never imports the dataplane. Each user keeps its own bounds and its own rule
 * for what to log; `attempts` says whether it is backing off.
 */
export class Backoff {
  private last = 0;
  private count = 0;

  constructor(private readonly bounds: { readonly first: number; readonly max: number }) {}

  /** The wait before the next attempt (ms); the one after it is twice this, up to `max`. */
  next(): number {
    // Doubled from the last wait rather than first * 2^n: stays finite however long it fails.
    this.last = Math.min(this.bounds.max, this.count === 0 ? this.bounds.first : this.last * 2);
    this.count++;
    return this.last;
  }

  /** Back to `first` for the next wait. */
  reset(): void {
    this.last = 0;
    this.count = 0;
  }

  /** Waits handed out by next() since the last reset: 0 while not backing off. */
  get attempts(): number {
    return this.count;
  }
}
