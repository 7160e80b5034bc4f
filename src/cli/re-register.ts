/**
 * `podway run` registering its node again after the datastore was replaced under it (etcd wiped or
 * rebuilt at the same URL, restored from a snapshot: its Node, tunnel addresses and ready mark may
 * be gone or old). One registration at a time, once more when another replacement came meanwhile.
 * joinCluster itself waits (with backoff) while the store is unreachable; any other failure (a Node
 * of another name holding this node's address in the new store, etcd's "too many requests", a
 * write refused) is tried again here with backoff, until it succeeds, a newer replacement asks
 * again, or podway stops. It used to be logged once and never tried again: the node's Node could
 * stay missing, its model rejected and the node not ready, for good.
 */
import { Backoff } from '../util/backoff';

/** The waits between failed registrations: 1 s doubling up to 30 s. */
export const RE_REGISTER_BACKOFF = { first: 1000, max: 30_000 } as const;

/** A registration failing (podway status): since when, the last error, the next try. */
export interface ReRegistrationFailing {
  since: string;
  why: string;
  error: string;
  attempts: number;
  nextAt: string;
}

export class ReRegistration {
  private running: Promise<void> | null = null;
  /** Asked again while one ran: the reason of the newest request. */
  private again: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly backoff: Backoff;
  private failing: ReRegistrationFailing | null = null;

  constructor(
    private readonly node: string,
    /** One registration (joinCluster with the addresses in force); `why`: the replacement. */
    private readonly register: (why: string) => Promise<void>,
    private readonly log: { info(m: string): void; error(m: string): void },
    bounds: { readonly first: number; readonly max: number } = RE_REGISTER_BACKOFF,
  ) {
    this.backoff = new Backoff(bounds);
  }

  /** The datastore was replaced (`why`): register now, or once the registration under way ended. */
  request(why: string): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = why;
      return;
    }
    // A retry waiting for its turn is replaced by this request, made now (a new replacement: the
    // backoff starts again).
    clearTimeout(this.timer);
    this.timer = undefined;
    this.backoff.reset();
    this.run(why);
  }

  private run(why: string): void {
    const attempt = this.backoff.attempts + 1;
    this.running = this.register(why)
      .then(
        () => {
          this.backoff.reset();
          this.failing = null;
          this.log.info(`node ${this.node} registered again after: ${why}${attempt > 1 ? ` (attempt ${attempt})` : ''}`);
        },
        (e: Error) => {
          if (this.stopped) return; // aborted by the stop
          if (this.again !== null) {
            this.log.error(`node ${this.node}: registering again after the datastore was replaced failed: ${e.message}; the datastore was replaced again meanwhile: registering again now`);
            return;
          }
          const wait = this.backoff.next();
          const now = new Date();
          this.failing = { since: this.failing?.since ?? now.toISOString(), why, error: e.message, attempts: attempt, nextAt: new Date(now.getTime() + wait).toISOString() };
          this.log.error(`node ${this.node}: registering again after the datastore was replaced failed (attempt ${attempt}): ${e.message}; trying again in ${wait / 1000} s`);
          this.timer = setTimeout(() => {
            this.timer = undefined;
            if (!this.stopped && !this.running) this.run(why);
          }, wait);
        },
      )
      .finally(() => {
        this.running = null;
        const next = this.again;
        this.again = null;
        if (next !== null && !this.stopped) this.request(next);
      });
  }

  /** The registration keeps failing (null: none failing). */
  status(): ReRegistrationFailing | null {
    return this.failing;
  }

  /** No registration after this (a retry waiting is dropped); the one under way goes on (idle). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Resolves once no registration is under way. */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }
}
