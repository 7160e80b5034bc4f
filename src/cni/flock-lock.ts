// A host-wide mutex on flock(2), for the CNI plugin's IPAM lock (ipam-lock.ts). The kernel holds
// the lock for the open file, so it is released when its holder exits or dies (SIGKILL, the OOM
// killer), whatever PID namespace the holder ran in: nothing has to judge whether a PID is alive.
// Node has no flock: the small addon podway_flock.node (native/flock.c) makes the one
// non-blocking call.
//
//   lock file   `path`, never removed; its holder writes "<pid> <pid namespace>" into it (only
//               for error messages: the kernel, not the text, says whether it is held)
//   tickets     `path.q.<monotonic ns>.<pid>.<random>`, one per waiter, each flocked by its
//               waiter for as long as it waits (made under `path.t.<pid>.<random>` and renamed,
//               so a ticket is never seen before it is locked)
//
// Why not a blocking flock: it would hold a thread until the lock comes, and only a signal ends
// it; the wait here has a deadline and an AbortSignal (podway run stopping). So waiting is ours:
//
// Order: first come, first served. A newcomer takes the lock at once only when no ticket is
// queued; otherwise it queues a ticket (CLOCK_MONOTONIC is one clock for the host, so tickets sort
// in arrival order) and only the oldest ticket tries the lock. A waiter sleeps until the file it
// waits for changes (fs.watch, inotify): the first waiter the lock file (a holder touches it as it
// unlocks), the others the ticket just ahead of theirs (removed when that waiter got the lock or
// gave up). A holder or waiter that died sends no event: a 10 ms timer re-checks, and a ticket
// nobody holds any longer (flockTry on it succeeds) is removed by the waiter behind it. So a handoff
// costs one wake-up, a crashed holder's lock is taken within ~10 ms, and a waiter waits for the
// waiters ahead of it and their holds, not for luck. (Strict order suits the IPAM lock, held for
// a whole IPAM operation; FileLock's newcomer-first rule is for short read-then-write holds.)
import { closeSync, fstatSync, ftruncateSync, futimesSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, statSync, unlinkSync, writeSync, constants as C } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Wakeup } from '../util/dir-wakeup';

export interface FlockAddon {
  flockTry(fd: number, mode: 'ex' | 'sh' | 'un'): boolean;
}

let addon: FlockAddon | null = null;

/** The addon's flockTry (native/flock.c), loaded on first use. */
function flockAddon(): FlockAddon {
  return loadFlockAddon();
}

/** Loads the addon now (or throws naming it): `cni install` checks the plugin will find it. */
export function loadFlockAddon(): FlockAddon {
  if (addon) return addon;
  // dist/src/cni/flock-lock.js -> the repository is three levels up; src/cni (ts-node) two.
  const candidates = [resolve(__dirname, '..', '..', '..', 'build', 'Release', 'podway_flock.node'), resolve(__dirname, '..', '..', 'build', 'Release', 'podway_flock.node')];
  let lastErr: unknown;
  for (const c of candidates) {
    try {
      const a = require(c) as Partial<FlockAddon>;
      if (typeof a.flockTry !== 'function') throw new Error(`${c} has no flockTry`);
      return (addon = a as FlockAddon);
    } catch (e) {
      lastErr = e;
    }
  }
  throw new Error(`podway's flock addon (build/Release/podway_flock.node) not built (run \`npm run build:native\`): ${(lastErr as Error)?.message}`);
}

/** This process's PID namespace ("pid:[4026531836]"), '?' when it cannot be read. */
export function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '?';
  }
}

export class FlockTimeoutError extends Error {
  readonly code = 'FLOCK_TIMEOUT';
}

export class FlockAbortedError extends Error {
  readonly code = 'FLOCK_ABORTED';
}

// (libuv opens every file O_CLOEXEC.)
const OPEN_FLAGS = C.O_RDWR | C.O_CREAT | C.O_NOFOLLOW;
const POLL_MS = 10;
/** A `.t.` file nobody holds, older than this, was left by a waiter killed while making its ticket. */
const STALE_TEMP_MS = 10_000;

/** Opens (creating) a regular file of ours, mode 0600: flock needs only an open, so others must not open it. */
export function openPrivate(path: string, flags = OPEN_FLAGS): number {
  const fd = openSync(path, flags, 0o600);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    if (st.uid !== process.getuid?.()) throw new Error(`${path} is owned by uid ${st.uid}, not this process's ${process.getuid?.()}`);
    if ((st.mode & 0o077) !== 0) throw new Error(`${path} is open to group or others (mode ${(st.mode & 0o777).toString(8)}): anyone who can open it can hold the lock`);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

export class FlockLock {
  private fd = -1;
  private held = false;

  constructor(readonly path: string) {}

  /**
   * Takes the lock within `timeoutMs` (FlockTimeoutError naming the holder), or until `signal`
   * aborts the wait (FlockAbortedError).
   */
  async acquire(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw new FlockAbortedError(`${this.path}: wait aborted`);
    if (this.held) throw new Error(`${this.path}: already held by this instance`);
    flockAddon();
    if (this.queue().length === 0 && this.tryTake()) return;

    const deadline = Date.now() + timeoutMs;
    const ticket = this.makeTicket();
    const wake = new Wakeup(dirname(this.path));
    const onAbort = () => wake.wakeNow();
    signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (signal?.aborted) throw new FlockAbortedError(`${this.path}: wait aborted`);
        const queue = this.queue();
        const mine = queue.indexOf(basename(ticket.path));
        if (mine <= 0) {
          // First in line (or our ticket removed by hand: then we are as good as first).
          wake.watchFor(basename(this.path));
          if (this.tryTake()) return;
        } else {
          const ahead = queue[mine - 1]!;
          wake.watchFor(ahead);
          // A waiter ahead of us that died left its ticket, unlocked: removed, so the queue moves.
          if (removeIfUnheld(join(dirname(this.path), ahead))) continue;
        }
        if (Date.now() >= deadline) {
          throw new FlockTimeoutError(`timed out after ${timeoutMs} ms waiting for the lock ${this.path} (held by ${this.holder()}, ${queue.length} waiting)`);
        }
        await wake.next(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      wake.close();
      // Removed before it is unlocked: a ticket is never seen unlocked while its waiter lives.
      try { unlinkSync(ticket.path); } catch { /* removed by hand */ }
      closeSync(ticket.fd);
    }
  }

  /** Unlocks, touching the file so that the first waiter's inotify wakes it. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    flockAddon().flockTry(this.fd, 'un');
    try {
      const now = new Date();
      futimesSync(this.fd, now, now);
    } catch { /* only a wake-up */ }
  }

  /** Releases (if held) and closes the file. */
  dispose(): void {
    this.release();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /**
   * One non-blocking attempt. The lock is the file's: one removed by hand (and made again by the
   * next comer) while we waited on it is let go and the path opened again, so that two holders of
   * two files never both believe they hold the lock.
   */
  private tryTake(): boolean {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.fd < 0) this.fd = openPrivate(this.path);
      if (!flockAddon().flockTry(this.fd, 'ex')) return false;
      let same = false;
      try {
        const a = fstatSync(this.fd);
        const b = statSync(this.path);
        same = a.ino === b.ino && a.dev === b.dev;
      } catch { /* removed: not the lock any more */ }
      if (same) {
        this.took();
        return true;
      }
      closeSync(this.fd); // drops the lock on the orphaned file
      this.fd = -1;
    }
    return false;
  }

  private took(): void {
    this.held = true;
    const text = `${process.pid} ${pidNamespace()}\n`;
    try {
      ftruncateSync(this.fd, 0);
      writeSync(this.fd, text, 0);
    } catch { /* only for messages */ }
  }

  /** Who holds the lock, as its holder wrote it. */
  private holder(): string {
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8').trim();
    } catch { /* gone */ }
    const [pid, ns] = text.split(' ');
    if (!pid) return 'a process that has not written its PID yet';
    const mine = pidNamespace();
    return ns && ns !== mine ? `pid ${pid} of PID namespace ${ns} (this process is in ${mine})` : `pid ${pid}`;
  }

  /** Queued tickets, oldest first (file names); stale temporary tickets are removed on the way. */
  private queue(): string[] {
    const base = basename(this.path);
    const dir = dirname(this.path);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return [];
    }
    const q = `${base}.q.`;
    const t = `${base}.t.`;
    const out: string[] = [];
    for (const n of names) {
      if (n.startsWith(q)) out.push(n);
      else if (n.startsWith(t)) removeIfUnheld(join(dir, n), STALE_TEMP_MS);
    }
    return out.sort();
  }

  /** Our ticket, locked before it appears under its queue name. */
  private makeTicket(): { path: string; fd: number } {
    const rand = randomBytes(4).toString('hex');
    const temp = `${this.path}.t.${process.pid}.${rand}`;
    const path = `${this.path}.q.${process.hrtime.bigint().toString().padStart(20, '0')}.${process.pid}.${rand}`;
    const fd = openPrivate(temp, C.O_RDWR | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW);
    try {
      if (!flockAddon().flockTry(fd, 'ex')) throw new Error(`${temp}: locked by another process as it was made`);
      renameSync(temp, path);
    } catch (e) {
      try { unlinkSync(temp); } catch { /* not made */ }
      closeSync(fd);
      throw e;
    }
    return { path, fd };
  }
}

/**
 * Removes `file` when no process holds a lock on it (its waiter died; `minAgeMs`: and it is at
 * least that old). True when removed.
 */
function removeIfUnheld(file: string, minAgeMs = 0): boolean {
  let fd: number;
  try {
    fd = openSync(file, C.O_RDONLY | C.O_NOFOLLOW);
  } catch {
    return false; // gone already: the caller reads the queue again anyway
  }
  try {
    if (minAgeMs > 0 && Date.now() - fstatSync(fd).ctimeMs < minAgeMs) return false;
    if (!flockAddon().flockTry(fd, 'sh')) return false;
    unlinkSync(file);
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}
