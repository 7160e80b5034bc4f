// The host-wide IPAM lock (Calico's ipam_lock_file, /var/run/calico/ipam.lock there). A runtime
// runs one plugin process per ADD and DEL, so the IPAM's in-process serialisation
// (claimSerially) never sees two of them: concurrent ADDs on one host met only in etcd, as
// compare-and-swap failures retried after a random pause, each retry a round trip. Holding one
// lock file around the IPAM work makes them take turns instead. It also orders a deferred DEL's
// replay (pending-del.ts, by `podway run` or a later ADD of the same container) against an ADD
// reusing that container's handle.
//
// FileLock (src/control/kv/file-lock.ts) is the lock: link(2) of a token naming its holder, a
// dead holder's lock broken, waiters queued in arrival order. Unlike Calico's flock, waiting is
// bounded (ipam_lock_timeout_ms), and the error names the file and the config field.
import { lstatSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { FileLock, FileLockAbortedError, FileLockTimeoutError } from '../control/kv/file-lock';
import { CniError, CNI_CODES } from './errors';

/** The lock was not taken within its bound (code 11). */
export class IpamLockTimeoutError extends CniError {}

/** The wait for the lock was given up through its AbortSignal (podway run stopping). */
export class IpamLockAbortedError extends CniError {}

/**
 * A directory anyone but its owner may write to would let them plant or remove lock and spool
 * files (a forged deferred DEL releases someone else's handle): refused, naming the setting.
 */
export function requirePrivateDir(dir: string, setting: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    throw new CniError(CNI_CODES.IO_FAILURE, `${setting}: ${dir}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new CniError(CNI_CODES.INVALID_CONFIG, `${setting}: ${dir} is not a directory (a symlink is not followed)`);
  if ((st.mode & 0o022) !== 0) {
    throw new CniError(CNI_CODES.INVALID_CONFIG, `${setting}: ${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}): refused, another user could forge or remove its files; chmod go-w it`);
  }
}

export interface IpamLockOptions {
  readonly file: string;
  readonly timeoutMs: number;
  /** Names the setting in errors (the plugin: the config field; podway run: its option). */
  readonly setting: string;
}

/**
 * Runs fn holding the lock; a lock not taken within the bound is a CniError (code 11), a wait
 * ended by `signal` an IpamLockAbortedError.
 */
export async function withIpamLock<T>(o: IpamLockOptions, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    // /run is a tmpfs: the directory is gone after a reboot.
    mkdirSync(dirname(o.file), { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new CniError(CNI_CODES.IO_FAILURE, `IPAM lock ${o.file} (${o.setting}): cannot make its directory: ${(e as Error).message}`);
  }
  requirePrivateDir(dirname(o.file), `IPAM lock ${o.file} (${o.setting}): its directory`);
  const lock = new FileLock(o.file, o.timeoutMs);
  try {
    try {
      await lock.acquire(signal);
    } catch (e) {
      if (e instanceof FileLockAbortedError) throw new IpamLockAbortedError(CNI_CODES.TRY_AGAIN_LATER, `IPAM lock ${o.file} (${o.setting}): wait given up (stopping)`);
      if (e instanceof FileLockTimeoutError) {
        throw new IpamLockTimeoutError(CNI_CODES.TRY_AGAIN_LATER, `IPAM lock ${o.file} (${o.setting}) not taken: ${e.message}; another plugin process (or podway run replaying a deferred DEL) holds it`);
      }
      throw new CniError(CNI_CODES.IO_FAILURE, `IPAM lock ${o.file} (${o.setting}): ${(e as Error).message}`);
    }
    return await fn();
  } finally {
    await lock.dispose().catch(() => undefined);
  }
}
