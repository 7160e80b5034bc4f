// One ADD of a container at a time (review: hostile, MED 3). The CNI spec forbids overlapping
// calls for one container, but a runtime retrying an ADD after a timeout makes them: each found no
// endpoint yet (earlierAttachment reads it before IPAM), each took an address and made the pod's
// interface anew, and all but the last were left held on the handle until DEL, with the runtime
// told different addresses. Held around the whole ADD, a lock per container ID makes the second
// wait for the first and find its endpoint: the same result for both, one address.
//
// A flock(2) lock (flock-lock.ts, as the IPAM lock's) on `<ipam_lock_file's dir>/containers/
// <container ID>.lock`: the kernel lets it go when its holder dies. DEL removes the file when no
// ADD holds it (a waiter that opened the removed file notices and opens the path again:
// FlockLock.tryTake), so files do not pile up; so does an ADD that failed having made nothing
// (plugin.ts: no earlier attachment, every undo step done), which no DEL may follow; DEL does not wait for the lock (a DEL overlapping
// an ADD is caught by the ADD: plugin.ts, "released while it was wiring the pod").
//
// A pod whose DEL never came (its netns gone with podway down, cleaned up by hand with the
// commands `podway status` prints: observe/stale-endpoints.ts) left its file for good: `podway
// run` sweeps the directory (sweepContainerLocks, from its orphan pass at start and every minute:
// cli/orphan-holds.ts). The file holds nothing but the kernel's lock, so removing one no ADD holds
// is safe whatever its container: an ADD that comes later makes it again. One held is never
// removed (the sweep takes it without waiting first), and the path is only ever unlinked by the
// holder of the file it names, so a racing ADD cannot lose its lock: one that opened the file the
// sweep removed finds, once it has the lock, that the path names no longer that file, and takes
// the path's (FlockLock.tryTake).
import { makeDirsSync } from '../util/make-dirs';
import { existsSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { FlockLock, FlockTimeoutError } from './flock-lock';
import { CniError, CNI_CODES } from './errors';
import { requirePrivateDir } from './ipam-lock';

/** The directory of the per-container locks, beside the IPAM lock file. */
export function containerLockDir(ipamLockFile: string): string {
  return join(dirname(ipamLockFile), 'containers');
}

/** A container's lock file: its ID (already checked: alphanumerics, '_', '.', '-'), hashed when long. */
export function containerLockFile(ipamLockFile: string, containerId: string): string {
  const name = containerId.length <= 128 ? containerId : `sha256-${createHash('sha256').update(containerId).digest('hex')}`;
  return join(containerLockDir(ipamLockFile), `${name}.lock`);
}

export interface ContainerLockOptions {
  readonly ipamLockFile: string;
  readonly timeoutMs: number;
}

/** What fn may ask of the lock it runs under. */
export interface HeldContainerLock {
  /**
   * The lock file goes when fn ends (removed while still held, as DEL removes it): for an ADD
   * that failed having made nothing, so the container holds nothing here and no DEL may come to
   * remove it (review LOW 4: the file was left until a DEL).
   */
  removeFileOnRelease(): void;
}

/** Runs fn holding the container's lock; one not taken within the bound is code 11, naming the file. */
export async function withContainerLock<T>(o: ContainerLockOptions, containerId: string, fn: (held: HeldContainerLock) => Promise<T>): Promise<T> {
  const dir = containerLockDir(o.ipamLockFile);
  const setting = `"ipam_lock_file" in the network config (${o.ipamLockFile})`;
  try {
    makeDirsSync(dir, { mode: 0o700 });
  } catch (e) {
    throw new CniError(CNI_CODES.IO_FAILURE, `container lock directory ${dir} (beside ${setting}): cannot make it: ${(e as Error).message}`);
  }
  requirePrivateDir(dirname(o.ipamLockFile), `IPAM lock ${setting}: its directory`);
  requirePrivateDir(dir, `container lock directory ${dir} (beside ${setting})`);
  const file = containerLockFile(o.ipamLockFile, containerId);
  const lock = new FlockLock(file);
  try {
    try {
      await lock.acquire(o.timeoutMs);
    } catch (e) {
      if (e instanceof FlockTimeoutError) throw new CniError(CNI_CODES.TRY_AGAIN_LATER, `ADD ${containerId}: another ADD of this container is still running (${e.message}; bound: "ipam_lock_timeout_ms")`);
      throw new CniError(CNI_CODES.IO_FAILURE, `container lock ${file}: ${(e as Error).message}`);
    }
    let remove = false;
    try {
      return await fn({ removeFileOnRelease: () => { remove = true; } });
    } finally {
      if (remove) {
        try {
          unlinkSync(file);
        } catch {
          /* gone already: nothing to remove */
        }
      }
    }
  } finally {
    lock.dispose();
  }
}

/**
 * DEL: the container's lock file removed, when it exists and no ADD holds it (taken without
 * waiting, removed while held). Best effort: a file left behind costs a few bytes of tmpfs.
 */
export async function removeContainerLock(ipamLockFile: string, containerId: string): Promise<void> {
  await removeLockFile(containerLockFile(ipamLockFile, containerId));
}

/**
 * Removes `file` when no ADD holds it: taken without waiting (FlockLock checks the path still
 * names the file it locked), unlinked while held. False when held, gone or not removable.
 */
async function removeLockFile(file: string): Promise<boolean> {
  if (!existsSync(file)) return false;
  const lock = new FlockLock(file);
  try {
    await lock.acquire(0);
    unlinkSync(file);
    return true;
  } catch {
    return false; // held by an ADD under way, or gone: left
  } finally {
    lock.dispose();
  }
}

/** sweepContainerLocks's default: a file used (taken or let go) within this long is left for now. */
export const CONTAINER_LOCK_SWEEP_AGE_MS = 60_000;

/**
 * Removes the container lock files beside `ipamLockFile` that no ADD holds and that were last
 * used at least `minAgeMs` ago (a runtime retrying an ADD soon after finds its file; removing it
 * would be as safe). What a DEL that never came left (the pod's netns gone while podway was
 * down). The waiters' tickets (`<file>.q.*`, `.t.*`) are their waiters' (FlockLock). A directory
 * not made yet sweeps nothing. Returns how many were removed.
 */
export async function sweepContainerLocks(ipamLockFile: string, minAgeMs = CONTAINER_LOCK_SWEEP_AGE_MS, now = Date.now()): Promise<number> {
  const dir = containerLockDir(ipamLockFile);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const n of names) {
    if (!n.endsWith('.lock') || n.startsWith('.')) continue;
    const file = join(dir, n);
    try {
      const st = statSync(file);
      if (!st.isFile() || now - st.mtimeMs < minAgeMs) continue;
    } catch {
      continue; // gone meanwhile
    }
    if (await removeLockFile(file)) removed++;
  }
  return removed;
}
