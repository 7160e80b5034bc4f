// A cross-process mutex on a local directory, for FileKv's writers (a CNI plugin process and the
// running `podway run`). Node has no flock(2), so the lock is a file that exists while held:
//
//   acquire: link(<our token file>, lock)   (atomic; EEXIST while someone else holds it)
//   release: unlink(lock)
//
// Each FileLock first writes a token file `lock.<pid>.<random>` holding "<pid> <starttime> <name>",
// so the lock appears atomically WITH its holder's identity (an O_EXCL create followed by a write
// would leave an empty lock if the creator died in between). A holder is dead when /proc/<pid>
// is gone, is a zombie, or started at another time (its PID was reused); its lock is then broken
// under a second lock (`lock.break`) so that two waiters cannot both break it and one of them
// remove the lock the other has just taken. (A breaker dying inside that few-syscall window
// leaves `lock.break`; it is broken the same way, which is racy only if two waiters do it in the
// same instant: accepted.) All writers must share one PID namespace (one host), which holds for
// a CNI plugin and the podway it talks to.
//
// Fairness, as Go's sync.Mutex does it: a newcomer takes a free lock at once (a process that
// reads, then writes under compare-and-swap, needs its write to follow its read quickly: a
// strict queue made 8 IPAM clients of one block fail every CAS and livelock), unless the first
// waiter is starving. A waiter that finds the lock taken queues a ticket
// `lock.q.<monotonic ns>.<pid>.<random>` (CLOCK_MONOTONIC is one clock for the whole host, so
// tickets sort in arrival order); only the oldest live ticket tries link(), the others sleep until
// the ticket ahead of theirs goes away. The first waiter sleeps until the lock is released
// (inotify through fs.watch wakes it at once; a 10 ms timer is the fallback), and once it has
// been first for `starveMs` it leaves `lock.starving`, which sends newcomers to the queue until
// it has the lock. So a waiter waits at most about (waiters ahead + 1) × (starveMs + one hold).
// The randomised backoff this replaces let newcomers win again and again while an old waiter
// slept: with 8 processes, p99 waits of 0.2-2.6 s against a p50 of 0.05 ms (bench/kv/lock.ts).
// A dead waiter's ticket is removed by the one behind it, a dead starving marker by a newcomer.
import { FSWatcher, readFileSync, unlinkSync, watch } from 'node:fs';
import { link, readFile, readdir, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

function procStartTime(pid: number | 'self'): { start: string; zombie: boolean } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is the first,
    // starttime the 20th.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { start: rest[19], zombie: rest[0] === 'Z' || rest[0] === 'X' };
  } catch {
    return null;
  }
}

const selfStart = procStartTime('self')?.start ?? '0';
const liveTokens = new Set<string>();
process.on('exit', () => {
  for (const t of liveTokens) try { unlinkSync(t); } catch { /* already gone */ }
});

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

export class FileLockTimeoutError extends Error {
  readonly code = 'KV_LOCK_TIMEOUT';
}

export class FileLock {
  private readonly tokenPath: string;
  private readonly breakPath: string;
  private tokenContent: string;
  private tokenReady = false;
  private held = false;

  private readonly starvingPath: string;
  private starving = false;

  constructor(
    readonly path: string,
    private readonly timeoutMs: number,
    /** How long the first waiter lets newcomers take the lock before it makes them queue. */
    private readonly starveMs = 4,
  ) {
    const tag = randomBytes(6).toString('hex');
    this.tokenPath = `${path}.${process.pid}.${tag}`;
    this.breakPath = `${path}.break`;
    this.starvingPath = `${path}.starving`;
    this.tokenContent = `${process.pid} ${selfStart} ${basename(this.tokenPath)}\n`;
  }

  async acquire(): Promise<void> {
    if (this.held) throw new Error(`FileLock ${this.path}: already held by this instance`);
    if (!this.tokenReady) {
      await writeFile(this.tokenPath, this.tokenContent);
      liveTokens.add(this.tokenPath);
      this.tokenReady = true;
    }
    const deadline = Date.now() + this.timeoutMs;
    // Fast path: the lock is free and no waiter is starving.
    if (!(await this.starvingWaiter()) && (await this.tryLink())) return;
    const ticket = `${this.path}.q.${process.hrtime.bigint().toString().padStart(20, '0')}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await writeFile(ticket, this.tokenContent, { flag: 'wx' });
    liveTokens.add(ticket);
    const wake = new Wakeup(dirname(this.path));
    let holder = '';
    let firstSince = 0;
    try {
      for (;;) {
        const queue = await this.queued();
        const mine = queue.indexOf(basename(ticket));
        const first = mine <= 0;
        // Wake only for what can let us on: the lock's release when we are first, else the
        // ticket just ahead of ours going away (so a handoff wakes one waiter, not all of them).
        wake.watchFor(first ? basename(this.path) : queue[mine - 1]!);
        if (first) {
          if (await this.tryLink()) return;
          firstSince ||= Date.now();
          if (!this.starving && Date.now() - firstSince >= this.starveMs) {
            // First in line for a while: newcomers must now queue behind us.
            this.starving = await link(this.tokenPath, this.starvingPath).then(() => true, () => false);
          }
          holder = await readFile(this.path, 'utf8').catch(() => '');
          if (holder !== '' && isDead(holder)) {
            await this.breakStale(holder);
            continue;
          }
        } else {
          // A waiter ahead of us that died would block the queue for good: drop its ticket.
          const headPath = join(dirname(this.path), queue[0]!);
          const content = await readFile(headPath, 'utf8').catch(() => '');
          if (content !== '' && isDead(content)) {
            await unlink(headPath).catch(() => undefined);
            continue;
          }
          holder = await readFile(this.path, 'utf8').catch(() => holder);
        }
        if (Date.now() >= deadline) {
          throw new FileLockTimeoutError(
            `timed out after ${this.timeoutMs} ms waiting for the lock ${this.path} (held by pid ${holder.split(' ')[0] || '?'}, ${queue.length} waiting)`,
          );
        }
        await wake.next(first && !this.starving ? this.starveMs : 10);
      }
    } finally {
      wake.close();
      if (this.starving) {
        this.starving = false;
        await unlink(this.starvingPath).catch(() => undefined);
      }
      liveTokens.delete(ticket);
      await unlink(ticket).catch(() => undefined);
    }
  }

  /**
   * Whether the first waiter has waited long enough that newcomers must queue (the marker it
   * left); a marker whose owner died is removed.
   */
  private async starvingWaiter(): Promise<boolean> {
    const owner = await readFile(this.starvingPath, 'utf8').catch(() => '');
    if (owner === '') return false;
    if (!isDead(owner)) return true;
    await unlink(this.starvingPath).catch(() => undefined);
    return false;
  }

  /** One link(2) attempt; true when we now hold the lock. */
  private async tryLink(): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(this.tokenPath, this.path);
        this.held = true;
        return true;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // Our token went with the directory (the store deleted and made again under us, e.g. an
        // embedded store wiped by hand): write it again once rather than fail every later write.
        if (code === 'ENOENT' && attempt === 0) {
          await writeFile(this.tokenPath, this.tokenContent);
          continue;
        }
        if (code !== 'EEXIST') throw e;
        return false;
      }
    }
  }

  /** Waiting tickets, oldest first (file names). */
  private async queued(): Promise<string[]> {
    const prefix = `${basename(this.path)}.q.`;
    const names = await readdir(dirname(this.path)).catch(() => [] as string[]);
    return names.filter((n) => n.startsWith(prefix)).sort();
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await unlink(this.path);
  }

  /** Removes our token file (the lock itself must not be held). */
  async dispose(): Promise<void> {
    if (this.held) await this.release();
    if (this.tokenReady) {
      this.tokenReady = false;
      liveTokens.delete(this.tokenPath);
      await unlink(this.tokenPath).catch(() => undefined);
    }
  }

  private async breakStale(staleContent: string): Promise<void> {
    try {
      await link(this.tokenPath, this.breakPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const breaker = await readFile(this.breakPath, 'utf8').catch(() => '');
      if (breaker !== '' && isDead(breaker)) {
        const again = await readFile(this.breakPath, 'utf8').catch(() => '');
        if (again === breaker) await unlink(this.breakPath).catch(() => undefined);
      }
      await sleep(Math.random() * 2);
      return;
    }
    try {
      const current = await readFile(this.path, 'utf8').catch(() => '');
      if (current === staleContent) {
        await unlink(this.path).catch(() => undefined);
        await this.removeDeadTokens();
      }
    } finally {
      await unlink(this.breakPath).catch(() => undefined);
    }
  }

  /** Token files of dead processes (left by a crash) are removed when their lock is broken. */
  private async removeDeadTokens(): Promise<void> {
    const dir = dirname(this.path);
    const base = basename(this.path);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const m = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)\\.[0-9a-f]+$`).exec(name);
      if (!m) continue;
      const content = await readFile(join(dir, name), 'utf8').catch(() => '');
      if (content !== '' && isDead(content)) await unlink(join(dir, name)).catch(() => undefined);
    }
  }
}

/** Whether the process named in a token ("<pid> <starttime> ...") no longer runs. */
function isDead(token: string): boolean {
  const [pidText, start] = token.split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return true;
  if (pid === process.pid) return start !== selfStart;
  const info = procStartTime(pid);
  return info === null || info.zombie || info.start !== start;
}

/**
 * Resolves next() when the watched name in the directory changes (the lock released, the ticket
 * ahead removed) or after `ms`, whichever comes first. The watcher does not keep the process alive.
 */
class Wakeup {
  private watcher: FSWatcher | null = null;
  private pending: (() => void) | null = null;
  private changed = false;
  private wanted = '';

  constructor(dir: string) {
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, name) => { if (name === null || name === this.wanted) this.fire(); });
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

  /** Only changes to this file name (in the watched directory) wake next(). */
  watchFor(name: string): void {
    this.wanted = name;
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
