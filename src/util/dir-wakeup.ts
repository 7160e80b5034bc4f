// A directory watch that ends a lock waiter's sleep early: FileLock (link(2) tokens), the CNI's
// flock(2) lock and its concurrency slots all wait by polling with a timer and wake at once when
// the file they wait on changes (the lock released, the ticket ahead removed, a slot freed).
import { FSWatcher, watch } from 'node:fs';

/**
 * Resolves next() when the watched name in the directory changes (the lock released, the ticket
 * ahead removed) or after `ms`, whichever comes first. The watcher does not keep the process alive.
 */
export class Wakeup {
  private watcher: FSWatcher | null = null;
  private pending: (() => void) | null = null;
  private changed = false;
  private wanted: (name: string) => boolean = () => false;

  constructor(dir: string) {
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, name) => { if (name === null || this.wanted(name)) this.fire(); });
      this.watcher.on('error', () => this.close());
    } catch {
      this.watcher = null; // no inotify: the timer alone paces the waits
    }
  }

  private fire(): void {
    this.changed = true;
    const p = this.pending;
    this.pending = null;
    p?.();
  }

  /** Only changes to this file name, or to names it accepts (in the watched directory), wake next(). */
  watchFor(name: string | ((name: string) => boolean)): void {
    this.wanted = typeof name === 'string' ? (n) => n === name : name;
  }

  /** Ends the current (or next) wait at once. */
  wakeNow(): void {
    this.fire();
  }

  next(ms: number): Promise<void> {
    if (this.changed) {
      this.changed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pending = null; resolve(); }, ms);
      this.pending = () => { clearTimeout(timer); this.changed = false; resolve(); };
    });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    this.pending?.();
  }
}
