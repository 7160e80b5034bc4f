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
import { readFileSync, unlinkSync } from 'node:fs';
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

  constructor(
    readonly path: string,
    private readonly timeoutMs: number,
  ) {
    const tag = randomBytes(6).toString('hex');
    this.tokenPath = `${path}.${process.pid}.${tag}`;
    this.breakPath = `${path}.break`;
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
    let holder = '';
    for (let attempt = 0; ; attempt++) {
      try {
        await link(this.tokenPath, this.path);
        this.held = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      holder = await readFile(this.path, 'utf8').catch(() => '');
      if (holder !== '' && isDead(holder)) {
        await this.breakStale(holder);
        continue;
      }
      if (Date.now() >= deadline) {
        throw new FileLockTimeoutError(
          `timed out after ${this.timeoutMs} ms waiting for the lock ${this.path} (held by pid ${holder.split(' ')[0] || '?'})`,
        );
      }
      // Short, jittered, growing waits: writers hold the lock for well under a millisecond.
      await sleep(Math.random() * Math.min(1 + attempt, 20));
    }
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
