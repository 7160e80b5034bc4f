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
// same instant: accepted.)
//
// A PID means something only in its own PID namespace: `podway run` in a pod without hostPID
// sharing this directory through a hostPath (calico-node's layout) would find every plugin
// process's PID "gone" and break a live lock. So a token also names its holder's PID namespace
// (the inode /proc/self/ns/pid links to), and a holder in another namespace is never judged dead
// by its PID: its lock is waited for (and a wait that times out says which namespace holds it).
// Tokens without the field (older podway) are taken as this namespace's.
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
import { closeSync, existsSync, linkSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, unlinkSync, writeSync, constants as C } from 'node:fs';
import { link, open, readFile, readdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Wakeup } from '../../util/dir-wakeup';

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

/**
 * This process's start time (/proc/self/stat), read on first use, not when the module loads: the
 * CNI plugin's start-up snapshot (cni/snapshot-entry.ts) loads this module in another process,
 * whose start time every token would otherwise carry (and be taken for a dead holder's).
 */
let selfStartRead: string | null = null;
const selfStart = (): string => (selfStartRead ??= procStartTime('self')?.start ?? '0');

/** This process's PID namespace ("pid:[4026531836]"); '' when it cannot be read. */
function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}
/**
 * This process's PID namespace, read on first use (not when the module loads: the CNI plugin's
 * start-up snapshot, cni/snapshot-entry.ts, loads it in another process, `podway cni install`).
 */
let selfPidNsRead: string | null = null;
const selfPidNs = (): string => (selfPidNsRead ??= pidNamespace());
/** A crashed waiter of another PID namespace cannot be told dead: its ticket is dropped when this old. */
const FOREIGN_TICKET_MAX_AGE_NS = 10n * 60n * 1_000_000_000n;
const liveTokens = new Set<string>();
process.on('exit', () => {
  for (const t of liveTokens) try { unlinkSync(t); } catch { /* already gone */ }
});

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

// O_EXCL: a symlink planted at the name is not followed, and a file that exists is not ours.
const CREATE_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

/**
 * Creates `file` holding `content` (mode 0644 less the umask, as writeFile made it). A write that
 * fails (ENOSPC on a full disk: the create needs no data block, the write does) removes the file
 * it created: an empty token would be left for good (a sweep cannot judge a token that names no
 * holder), one per failed call.
 */
export function writeNewFileSync(file: string, content: string): void {
  const fd = openSync(file, CREATE_FLAGS, 0o644);
  try {
    const buf = Buffer.from(content);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
  } catch (e) {
    try { unlinkSync(file); } catch { /* gone */ }
    throw e;
  } finally {
    closeSync(fd);
  }
}

/** writeNewFileSync through the thread pool. */
export async function writeNewFile(file: string, content: string): Promise<void> {
  const fh = await open(file, CREATE_FLAGS, 0o644);
  try {
    await fh.writeFile(content);
  } catch (e) {
    await unlink(file).catch(() => undefined);
    throw e;
  } finally {
    await fh.close();
  }
}

/** A token file left empty (by an older podway whose write failed, or a writer killed between its create and its write) is swept this old. */
export const EMPTY_TOKEN_SWEEP_MS = 10_000;

export class FileLockTimeoutError extends Error {
  readonly code = 'KV_LOCK_TIMEOUT';
}

/** acquire() given up because its AbortSignal fired (a stopping podway run). */
export class FileLockAbortedError extends Error {
  readonly code = 'KV_LOCK_ABORTED';
}

export interface FileLockOptions {
  /** How long the first waiter lets newcomers take the lock before it makes them queue (ms). */
  readonly starveMs?: number;
  /**
   * A word written as the token's fifth field (after the PID namespace; older readers take the
   * first four), so that `deadIf` of other holders can recognise tokens of the same kind.
   */
  readonly mark?: string;
  /**
   * Tokens (of the lock, a ticket, the starving or break marker) this says are dead are taken as
   * such besides the PID test: for a caller that knows their holder cannot be alive (the CNI
   * plugin's IPAM lock takes this lock only while holding a kernel lock, so another holder of
   * its mark is a crashed one, whatever its PID namespace). Never asked about our own token.
   */
  readonly deadIf?: (token: string) => boolean;
}

export class FileLock {
  private readonly tokenPath: string;
  private readonly breakPath: string;
  private tokenContent: string;
  private tokenReady = false;
  private held = false;

  private readonly starvingPath: string;
  private starving = false;

  private readonly starveMs: number;
  private readonly deadIf: ((token: string) => boolean) | undefined;

  constructor(
    readonly path: string,
    private readonly timeoutMs: number,
    options: FileLockOptions = {},
  ) {
    this.starveMs = options.starveMs ?? 4;
    this.deadIf = options.deadIf;
    const tag = randomBytes(6).toString('hex');
    this.tokenPath = `${path}.${process.pid}.${tag}`;
    this.breakPath = `${path}.break`;
    this.starvingPath = `${path}.starving`;
    // The PID namespace after the first three fields (older readers take those only), the mark
    // after it (a namespace that cannot be read is written as '-' then: foreign to every reader).
    const ns = selfPidNs() || (options.mark ? '-' : '');
    this.tokenContent = `${process.pid} ${selfStart()} ${basename(this.tokenPath)}${ns ? ` ${ns}` : ''}${options.mark ? ` ${options.mark}` : ''}\n`;
  }

  /** isDead, or named dead by the caller's deadIf (never our own token). */
  private dead(token: string): boolean {
    if (token === this.tokenContent) return false;
    return isDead(token) || (this.deadIf?.(token) ?? false);
  }

  /**
   * Writes our token now (synchronously), so that taking the lock later is one link(2): for a
   * caller that takes this lock inside another critical section (the CNI plugin's IPAM lock).
   */
  prepareSync(): void {
    if (this.tokenReady) return;
    writeNewFileSync(this.tokenPath, this.tokenContent);
    liveTokens.add(this.tokenPath);
    this.tokenReady = true;
  }

  /**
   * One synchronous attempt (no thread-pool round trip): true when we now hold the lock; false
   * when it is held, or a waiter is starving (or was, and died): acquire() then waits as usual.
   */
  tryAcquireSync(): boolean {
    if (this.held) throw new Error(`FileLock ${this.path}: already held by this instance`);
    this.prepareSync();
    let owner = '';
    try {
      owner = readFileSync(this.starvingPath, 'utf8');
    } catch { /* no starving waiter */ }
    if (owner !== '') return false;
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(this.tokenPath, this.path);
        this.held = true;
        return true;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // Our token removed meanwhile (by hand, or as a dead one by deadIf's judgement): written again once.
        if (code === 'ENOENT' && attempt === 0) {
          writeNewFileSync(this.tokenPath, this.tokenContent);
          continue;
        }
        if (code !== 'EEXIST') throw e;
        return false;
      }
    }
  }

  /** dispose() without the thread pool. */
  disposeSync(): void {
    if (this.held) {
      this.held = false;
      unlinkSync(this.path);
    }
    if (this.tokenReady) {
      this.tokenReady = false;
      liveTokens.delete(this.tokenPath);
      try { unlinkSync(this.tokenPath); } catch { /* already gone */ }
    }
  }

  /**
   * Takes the lock; `signal` ends a wait with FileLockAbortedError. `timeoutMs` replaces the
   * constructor's bound for this call.
   */
  async acquire(signal?: AbortSignal, timeoutMs = this.timeoutMs): Promise<void> {
    if (signal?.aborted) throw new FileLockAbortedError(`FileLock ${this.path}: wait aborted`);
    if (this.held) throw new Error(`FileLock ${this.path}: already held by this instance`);
    if (!this.tokenReady) {
      await writeNewFile(this.tokenPath, this.tokenContent);
      liveTokens.add(this.tokenPath);
      this.tokenReady = true;
    }
    const deadline = Date.now() + timeoutMs;
    // Fast path: the lock is free and no waiter is starving.
    if (!(await this.starvingWaiter()) && (await this.tryLink())) return;
    const ticket = `${this.path}.q.${process.hrtime.bigint().toString().padStart(20, '0')}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await writeNewFile(ticket, this.tokenContent);
    liveTokens.add(ticket);
    const wake = new Wakeup(dirname(this.path));
    const onAbort = () => wake.wakeNow();
    signal?.addEventListener('abort', onAbort);
    let holder = '';
    let firstSince = 0;
    try {
      for (;;) {
        if (signal?.aborted) throw new FileLockAbortedError(`FileLock ${this.path}: wait aborted`);
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
          if (holder !== '' && this.dead(holder)) {
            await this.breakStale(holder);
            continue;
          }
        } else {
          // A waiter ahead of us that died would block the queue for good: drop its ticket.
          const headPath = join(dirname(this.path), queue[0]!);
          const content = await readFile(headPath, 'utf8').catch(() => '');
          if (content !== '' && (this.dead(content) || staleForeignTicket(queue[0]!, content))) {
            await unlink(headPath).catch(() => undefined);
            continue;
          }
          holder = await readFile(this.path, 'utf8').catch(() => holder);
        }
        if (Date.now() >= deadline) {
          throw new FileLockTimeoutError(
            `timed out after ${timeoutMs} ms waiting for the lock ${this.path} (held by pid ${holder.split(' ')[0] || '?'}${foreignNs(holder) ? ` of another PID namespace, ${foreignNs(holder)} (this process is in ${selfPidNs()}): it cannot be told dead from here, so its lock is not broken; run both sides with hostPID` : ''}, ${queue.length} waiting)`,
          );
        }
        await wake.next(first && !this.starving ? this.starveMs : 10);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
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
    if (!this.dead(owner)) return true;
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
          await writeNewFile(this.tokenPath, this.tokenContent);
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
      if (breaker !== '' && this.dead(breaker)) {
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
      if (content !== '' && this.dead(content)) await unlink(join(dir, name)).catch(() => undefined);
    }
  }
}

/**
 * Removes the token files (`<lock>.<pid>.<12 hex>`) of FileLocks whose process was killed before
 * it could remove its own (a SIGKILLed waiter leaves one; only breaking a stale lock swept them
 * before): a token of this PID namespace whose process is gone (isDead), or one of another PID
 * namespace carrying `mark` and older than `foreignMaxMs` (its PID cannot be judged here).
 * Unmarked tokens of another namespace are left alone. An empty token (a write that failed on a
 * full disk, by a podway before writeNewFileSync removed it; a writer killed between create and
 * write) is removed once EMPTY_TOKEN_SWEEP_MS old, whatever its PID. Cheap: one readdir, then two
 * stats per token (its own, /proc/<pid>); a token's file is read only when no process of its PID runs here. Never
 * the lock itself, a ticket or a marker (their names differ). Returns how many were removed.
 */
export function sweepDeadTokens(lockPath: string, opts: { mark?: string; foreignMaxMs: number }): number {
  const dir = dirname(lockPath);
  const prefix = `${basename(lockPath)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\.[0-9a-f]{12}$/.exec(name.slice(prefix.length));
    if (!m || Number(m[1]) === process.pid) continue;
    const file = join(dir, name);
    // An empty token names no holder, in any PID namespace: none is ever linked as the lock (a
    // holder links only a written one), and its writer writes within microseconds of the create.
    // One older than that was left by a failed write (a full disk) or a writer killed in between.
    try {
      const st = lstatSync(file);
      if (st.isFile() && st.size === 0 && Date.now() - st.mtimeMs > EMPTY_TOKEN_SWEEP_MS) {
        unlinkSync(file);
        removed++;
        continue;
      }
    } catch {
      continue; // gone meanwhile
    }
    if (existsSync(`/proc/${m[1]}`)) continue;
    try {
      const content = readFileSync(file, 'utf8');
      const dead = foreignNs(content)
        ? opts.mark !== undefined && content.trim().split(' ')[4] === opts.mark && Date.now() - statSync(file).mtimeMs > opts.foreignMaxMs
        : content !== '' && isDead(content);
      if (dead) {
        unlinkSync(file);
        removed++;
      }
    } catch {
      /* gone meanwhile */
    }
  }
  return removed;
}

/** The PID namespace a token names when it is not ours ('' when ours or not named). */
function foreignNs(token: string): string {
  const ns = token.trim().split(' ')[3] ?? '';
  return ns !== '' && selfPidNs() !== '' && ns !== selfPidNs() ? ns : '';
}

/** A ticket of another PID namespace's waiter, queued longer ago than any wait lasts (its owner crashed). */
function staleForeignTicket(name: string, content: string): boolean {
  if (!foreignNs(content)) return false;
  const m = /\.q\.(\d+)\./.exec(name);
  return m !== null && process.hrtime.bigint() - BigInt(m[1]) > FOREIGN_TICKET_MAX_AGE_NS;
}

/**
 * Whether the process named in a token ("<pid> <starttime> <name> [<pid namespace>]") no longer
 * runs. A holder in another PID namespace is never dead by this test: its PID means nothing here.
 */
function isDead(token: string): boolean {
  if (foreignNs(token)) return false;
  const [pidText, start] = token.split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return true;
  if (pid === process.pid) return start !== selfStart();
  const info = procStartTime(pid);
  return info === null || info.zombie || info.start !== start;
}
