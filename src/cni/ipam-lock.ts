// The host-wide IPAM lock (Calico's ipam_lock_file, /var/run/calico/ipam.lock there). A runtime
// runs one plugin process per ADD and DEL, so the IPAM's in-process serialisation
// (claimSerially) never sees two of them: concurrent ADDs on one host met only in etcd, as
// compare-and-swap failures retried after a random pause, each retry a round trip. Holding one
// lock file around the IPAM work makes them take turns instead. It also orders a deferred DEL's
// replay (pending-del.ts, by `podway run` or a later ADD of the same container) against an ADD
// reusing that container's handle.
//
// The lock is flock(2) on `<ipam_lock_file>.flock` (flock-lock.ts): the kernel releases it when
// its holder exits or is killed, in whatever PID namespace it ran, so a crashed plugin never
// leaves the host's ADDs waiting. Waiters are served in arrival order; waiting is bounded
// (ipam_lock_timeout_ms, where Calico's flock waits for ever) and the error names the file and
// the config field.
//
// Plugins before this one locked `<ipam_lock_file>` itself by link(2) (FileLock,
// src/control/kv/file-lock.ts), whose holder's death could not be seen from another PID
// namespace. While a host upgrades, old and new plugins (and an old podway run replaying deferred
// DELs) run side by side, so the holder of the kernel lock also takes that link(2) lock, with
// tokens marked "flock": an old process waits for it by its old rules, and a new one honours a
// live old token. A "flock" token of our PID namespace is judged by its holder's PID (a live one
// holds the kernel lock on a file since removed: ipam.lock.flock deleted under it, and breaking its
// link(2) lock would make two IPAM writers); one of another PID namespace, whose PID means nothing
// here, is stale at once (its holder would hold the kernel lock we now hold), and so is an old token of another PID namespace
// whose lock is older than any IPAM operation lasts (LEGACY_FOREIGN_MAX_MS), left by an old
// plugin that crashed before the upgrade.
//
// A full disk (ENOSPC, EDQUOT): the kernel lock needs no data block (its file, made once, and its
// tickets are created empty; the holder's "<pid> <ns>" is written best-effort), but the link(2)
// lock's token needs one. Its write failing, the token is removed and that step left out: the
// kernel lock alone orders every podway holder, and only an older podway (mid-upgrade, on a full
// disk) is not kept out. Said once on stderr (the plugin's log) per lock file and process, again
// after a write went through. Before, every ADD and DEL of the host failed (code 5) until space was
// freed, and each left its empty token behind.
import { makeDirsSync } from '../util/make-dirs';
import { lstatSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { FileLock, FileLockAbortedError, FileLockTimeoutError, sweepDeadTokens } from '../control/kv/file-lock';
import { FlockAbortedError, FlockLock, FlockTimeoutError, pidNamespace } from './flock-lock';
import { AsyncLocalStorage } from 'node:async_hooks';
import { CniError, CNI_CODES } from './errors';

/** The lock was not taken within its bound (code 11). */
export class IpamLockTimeoutError extends CniError {}

/** The wait for the lock was given up through its AbortSignal (podway run stopping). */
export class IpamLockAbortedError extends CniError {}

/**
 * The lock could not be had for a local reason (its directory or its file cannot be made or
 * opened: a read-only disk, a failing one), not for another holder (code 5). A full disk is not
 * one: the kernel lock needs no free space (below).
 */
export class IpamLockIoError extends CniError {}

/** This process's effective uid (the owner its private directories and files must have). */
export function ownUid(): number {
  return process.geteuid ? process.geteuid() : 0;
}

/**
 * A directory anyone but this process's user may write to would let them plant or remove lock
 * and spool files (a forged deferred DEL releases someone else's handle): one owned by another
 * user (who may chmod it and write at will, whatever its mode now) or writable by group or others
 * is refused, naming the setting and the path.
 */
export function requirePrivateDir(dir: string, setting: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    throw new CniError(CNI_CODES.IO_FAILURE, `${setting}: ${dir}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new CniError(CNI_CODES.INVALID_CONFIG, `${setting}: ${dir} is not a directory (a symlink is not followed)`);
  const uid = ownUid();
  if (st.uid !== uid) {
    throw new CniError(CNI_CODES.INVALID_CONFIG, `${setting}: ${dir} is owned by uid ${st.uid}, not by this process's user (uid ${uid}): refused, its owner could forge or remove its files; chown it to uid ${uid} or use another directory`);
  }
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

/** The file the kernel lock is on: beside `ipam_lock_file`, which older plugins lock by link(2). */
export function flockFileOf(ipamLockFile: string): string {
  return `${ipamLockFile}.flock`;
}

/** The mark on link(2) tokens taken under the kernel lock. */
export const LEGACY_TOKEN_MARK = 'flock';

/** An older plugin's link(2) lock of another PID namespace held this long was left by a crash. */
export const LEGACY_FOREIGN_MAX_MS = 10 * 60 * 1000;

/**
 * A marked token file of another PID namespace this old is swept (its waiter was killed): longer
 * than the longest wait (ipam_lock_timeout_ms at most 10 min) and hold.
 */
const LEGACY_TOKEN_SWEEP_MS = 3 * LEGACY_FOREIGN_MAX_MS;

/**
 * Which link(2) tokens are stale to a holder of the kernel lock (see the top of this file);
 * `foreignMaxMs` is for tests.
 */
export function legacyDeadIf(lockFile: string, foreignMaxMs = LEGACY_FOREIGN_MAX_MS): (token: string) => boolean {
  const ours = pidNamespace();
  return (token) => {
    const f = token.trim().split(' ');
    // ours (marked or not): FileLock's PID test decides. A marked token of our namespace whose
    // holder lives is a live holder of an older kernel-lock file (ipam.lock.flock removed under
    // it): breaking its link(2) lock would make two IPAM writers.
    if (!f[3] || f[3] === ours) return false;
    if (f[4] === LEGACY_TOKEN_MARK) return true;
    try {
      // link(2) set the lock's ctime (its inode is the holder's token file).
      return Date.now() - statSync(lockFile).ctimeMs > foreignMaxMs && readFileSync(lockFile, 'utf8') === token;
    } catch {
      return false;
    }
  };
}

/** Lock files whose token could not be written, said so (once each) on stderr. */
const tokenUnwritableSaid = new Set<string>();

/**
 * The link(2) lock's token written now (true), or false when it could not be (said once): the
 * lock is then the kernel's alone.
 */
function prepareLegacy(o: IpamLockOptions, legacy: FileLock): boolean {
  try {
    legacy.prepareSync();
    tokenUnwritableSaid.delete(o.file);
    return true;
  } catch (e) {
    sayTokenUnwritable(o, e);
    return false;
  }
}

function sayTokenUnwritable(o: IpamLockOptions, e: unknown): void {
  if (tokenUnwritableSaid.has(o.file)) return;
  tokenUnwritableSaid.add(o.file);
  process.stderr.write(`podway: IPAM lock ${o.file} (${o.setting}): its token for podway versions before the kernel lock cannot be written (${(e as Error).message}); going on with the kernel lock (${flockFileOf(o.file)}) alone, which needs no free space: only a podway older than that lock (mid-upgrade) is not kept out. Free space in ${dirname(o.file)}\n`);
}

/** A write refused for want of space (the disk, or the user's quota, is full). */
function noSpace(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * The IPAM lock files the current async call chain holds (withIpamLock's fn and what it awaits).
 * A nested withIpamLock of one of them runs fn at once: flock(2) on a second open of the file
 * would make the process wait for itself until the bound (a CNI ADD with host ports holds the
 * lock from its host-port check to its endpoint's write, around its IPAM: plugin.ts). Only the
 * chain that took the lock inherits it; another request of the same process waits as before.
 * Made at first use, not at load: the CNI plugin's start-up snapshot (cni/snapshot.ts) loads this
 * module, and Node 20 cannot keep an AsyncLocalStorage in a snapshot (the build fails).
 */
let heldLocksStore: AsyncLocalStorage<ReadonlySet<string>> | null = null;
const heldLocks = (): AsyncLocalStorage<ReadonlySet<string>> => (heldLocksStore ??= new AsyncLocalStorage());

/**
 * Runs fn holding the lock; a lock not taken within the bound is a CniError (code 11), a wait
 * ended by `signal` an IpamLockAbortedError. Re-entrant within one async call chain (heldLocks).
 */
export async function withIpamLock<T>(o: IpamLockOptions, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const held = heldLocks().getStore();
  if (held?.has(o.file)) return fn();
  try {
    // /run is a tmpfs: the directory is gone after a reboot.
    makeDirsSync(dirname(o.file), { mode: 0o755 });
  } catch (e) {
    throw new IpamLockIoError(CNI_CODES.IO_FAILURE, `IPAM lock ${o.file} (${o.setting}): cannot make its directory: ${(e as Error).message}`);
  }
  requirePrivateDir(dirname(o.file), `IPAM lock ${o.file} (${o.setting}): its directory`);
  // Tokens of link(2) waiters killed by SIGKILL would pile up: one readdir (and a stat per token) each call.
  sweepDeadTokens(o.file, { mark: LEGACY_TOKEN_MARK, foreignMaxMs: LEGACY_TOKEN_SWEEP_MS });
  const started = Date.now();
  const lock = new FlockLock(flockFileOf(o.file));
  // The link(2) lock's token is written before the wait, so that inside the critical section
  // taking it is one link(2) (no thread-pool round trip; 10 processes at once made those, done
  // under the lock, the larger part of each handoff).
  const legacy = new FileLock(o.file, o.timeoutMs, { mark: LEGACY_TOKEN_MARK, deadIf: legacyDeadIf(o.file) });
  const withLegacy = prepareLegacy(o, legacy);
  try {
    try {
      await lock.acquire(o.timeoutMs, signal);
    } catch (e) {
      if (e instanceof FlockAbortedError) throw new IpamLockAbortedError(CNI_CODES.TRY_AGAIN_LATER, `IPAM lock ${o.file} (${o.setting}): wait given up (stopping)`);
      if (e instanceof FlockTimeoutError) {
        throw new IpamLockTimeoutError(CNI_CODES.TRY_AGAIN_LATER, `IPAM lock ${o.file} (${o.setting}) not taken: ${e.message}; another plugin process (or podway run replaying a deferred DEL) holds it`);
      }
      throw new IpamLockIoError(CNI_CODES.IO_FAILURE, `IPAM lock ${o.file} (${o.setting}): ${(e as Error).message}`);
    }
    try {
      if (withLegacy) {
        try {
          if (!legacy.tryAcquireSync()) await legacy.acquire(signal, Math.max(0, o.timeoutMs - (Date.now() - started)));
        } catch (e) {
          if (e instanceof FileLockAbortedError) throw new IpamLockAbortedError(CNI_CODES.TRY_AGAIN_LATER, `IPAM lock ${o.file} (${o.setting}): wait given up (stopping)`);
          if (e instanceof FileLockTimeoutError) {
            throw new IpamLockTimeoutError(CNI_CODES.TRY_AGAIN_LATER, `IPAM lock ${o.file} (${o.setting}) not taken: ${e.message}; a podway plugin or podway run older than the kernel lock (${flockFileOf(o.file)}) holds this link(2) lock`);
          }
          // The disk filled between the token's write and a ticket's (or the token's rewrite):
          // as when the token could not be written at all.
          if (noSpace(e)) sayTokenUnwritable(o, e);
          else throw new IpamLockIoError(CNI_CODES.IO_FAILURE, `IPAM lock ${o.file} (${o.setting}): ${(e as Error).message}`);
        }
      }
      return await heldLocks().run(new Set([...(held ?? []), o.file]), fn);
    } finally {
      try { legacy.disposeSync(); } catch { /* removed by hand */ }
    }
  } finally {
    try { legacy.disposeSync(); } catch { /* not held: only our token */ }
    lock.dispose();
  }
}
