/**
 * The kernel's main IPv4 table as podway run keeps it for the underlay next hops (host.ts
 * underlayNextHops): the last table read, and what happens when `ip` cannot read it (no `ip`, out
 * of processes or memory, killed, its output not understood). An empty table in its place would
 * take every other node as on-link: tunnel packets for nodes behind a router sent to their own
 * address on the underlay, unanswered ARP, lost.
 *
 * So a failed read is an error, logged (at its first failure and when its reason changes, then
 * once it reads again), the last good table is kept, and the read is tried again on a timer (1 s,
 * doubling up to 30 s) until it succeeds; `podway status` (kernelRoutes) and /metrics
 * (podway_kernel_routes_unreadable, podway_kernel_route_read_failures_total) show it. Before the
 * first good read there is no table to keep: every node is on-link until one is read, said so.
 */
import type { KernelRoute } from './host';
import { Backoff } from '../util/backoff';

export interface KernelRoutesStatus {
  /** Routes in the table in use (the last good read). */
  readonly routes: number;
  /** When the table in use was read (null: none read yet). */
  readonly readAt: string | null;
  /** Failed reads since the start. */
  readonly failures: number;
  /** While reads fail: since when, the last error, how many in a row, and the next try. */
  readonly failing: { readonly since: string; readonly error: string; readonly attempts: number; readonly nextTryAt: string | null } | null;
}

export interface KernelRoutesHooks {
  readonly error: (message: string) => void;
  readonly info: (message: string) => void;
  /** A retry is due: read again through the caller's apply loop (which calls refresh()). */
  readonly retry: () => void;
}

export const KERNEL_ROUTES_RETRY_FIRST_MS = 1000;
export const KERNEL_ROUTES_RETRY_MAX_MS = 30_000;

export class KernelRoutes {
  private table: KernelRoute[] = [];
  private readAt: Date | null = null;
  private failures = 0;
  private failing: { since: Date; error: string; attempts: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private nextTryAt: Date | null = null;
  private stopped = false;
  private readonly wait: Backoff;

  constructor(
    private readonly read: () => Promise<KernelRoute[]>,
    private readonly hooks: KernelRoutesHooks,
    private readonly retry = { firstMs: KERNEL_ROUTES_RETRY_FIRST_MS, maxMs: KERNEL_ROUTES_RETRY_MAX_MS },
  ) {
    this.wait = new Backoff({ first: retry.firstMs, max: retry.maxMs });
  }

  /** The table in use: the last good read ([] before the first). */
  current(): KernelRoute[] {
    return this.table;
  }

  /** Reads the table; never throws: on a failure the last good table, the failure said and retried. */
  async refresh(): Promise<KernelRoute[]> {
    try {
      this.accept(await this.read());
    } catch (e) {
      this.fail(e as Error);
    }
    return this.table;
  }

  /** A table read elsewhere (the start's reads): now the one in use. */
  accept(routes: KernelRoute[]): void {
    this.table = routes;
    this.readAt = new Date();
    if (this.failing) {
      const was = this.failing;
      this.failing = null;
      this.hooks.info(`kernel routes read again (${routes.length} routes) after ${was.attempts} failed read${was.attempts === 1 ? '' : 's'} since ${was.since.toISOString()}: underlay next hops follow the kernel's table again`);
    }
    this.wait.reset();
    this.clearTimer();
  }

  /** A read that failed (here or elsewhere): said, counted, tried again. */
  fail(e: Error): void {
    this.failures++;
    const error = e.message;
    const first = this.failing === null;
    const changed = !first && this.failing!.error !== error;
    this.failing = first ? { since: new Date(), error, attempts: 1 } : { ...this.failing!, error, attempts: this.failing!.attempts + 1 };
    const delay = this.wait.next();
    if (first || changed) {
      const kept = this.readAt
        ? `keeping the table read at ${this.readAt.toISOString()} (${this.table.length} routes)`
        : 'no table read yet: every other node is taken as on-link until one is';
      this.hooks.error(`kernel routes unreadable: ${error}; ${kept}; trying again in ${delay / 1000} s (then doubling up to ${this.retry.maxMs / 1000} s)`);
    }
    this.schedule(delay);
  }

  status(): KernelRoutesStatus {
    const f = this.failing;
    return {
      routes: this.table.length,
      readAt: this.readAt?.toISOString() ?? null,
      failures: this.failures,
      failing: f ? { since: f.since.toISOString(), error: f.error, attempts: f.attempts, nextTryAt: this.nextTryAt?.toISOString() ?? null } : null,
    };
  }

  stop(): void {
    this.stopped = true;
    this.clearTimer();
  }

  private schedule(ms: number): void {
    if (this.stopped || this.timer) return;
    this.nextTryAt = new Date(Date.now() + ms);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.nextTryAt = null;
      if (!this.stopped) this.hooks.retry();
    }, ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.nextTryAt = null;
  }
}
