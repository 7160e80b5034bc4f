// One `podway run` per network namespace. A node's podway owns what the namespace has one of:
// `podway0`, the nftables tables `ip podway` and `inet podway_tunnels`, the VXLAN UDP port (4789
// unless vxlanPort says otherwise), the Node it registers. A second run (another --control path gets it past the control socket's check) used
// to register the Node again (with its own --ip), replace the running one's NAT table and, when it
// then failed on the busy VXLAN port, delete the running one's tunnel table on its way out.
//
// The lock is flock(2) on `/run/podway/run.<netns inode>.lock`: the file is keyed by the network
// namespace this process runs in (the inode of /proc/self/ns/net, unique among the namespaces that
// exist), so each namespace of a netns-per-node lab has its own, and the kernel releases it with
// the process that holds it (a crash leaves a file nobody holds, taken by the next run). Only root
// (or the user podway runs as) can take it: /run/podway must be owned by root or that user and
// writable by nobody else (util/trusted-dir.ts), the file is made 0600 and must be this user's.
// The holder writes who it is into the file (node, pid, control socket, and once taken its VXLAN
// UDP port), so a refusal names it; the file is read only by whoever may open it.
//
// Before, the lock was the abstract unix socket `@podway-run` of the namespace, which any local
// user could bind first: podway then refused to start (the squatter named by its SO_PEERCRED, its
// answer not read) until that process was stopped. Nobody but root or podway's user can create,
// open or lock a file in /run/podway.
//
// (Keyed by the network namespace, the file is in the mount namespace's /run: two podways in one
// network namespace with different /run directories, e.g. two containers sharing a pod's network,
// are not told apart. `ip netns exec` keeps the host's /run, as podway's labs and tests do.)
//
// The holder removes the file when it lets go; a taker checks, once it holds the lock, that the
// file it locked is still the one at the path (else it was removed meanwhile and is tried again),
// so a release never lets two runs in.
import { closeSync, fstatSync, ftruncateSync, lstatSync, readlinkSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { loadFlockAddon, openPrivate } from '../cni/flock-lock';
import { makeDirsSync } from '../util/make-dirs';
import { untrustedDirReason } from '../util/trusted-dir';

/** Where the run locks are (with the control sockets and the IPAM lock). */
export const RUN_LOCK_DIR = '/run/podway';
/** How often, and how long apart, a refused run reads a holder that has not written itself yet. */
const READ_TRIES = 10;
const READ_PAUSE_MS = 20;
/** Tries when the file is removed between the open and the lock (a holder letting go). */
const TAKE_TRIES = 20;

export interface RunLockHolder {
  readonly node: string;
  readonly pid: number;
  readonly control: string;
  /** The VXLAN UDP port the holder's run holds (Felix's vxlanPort in force), set once it took it:
   * a run still waiting for its datastore holds none yet (RunLock.say writes it). */
  vxlanPort?: number;
}

/** A held run lock: released by close() or the process's end. */
export interface RunLock {
  /** The lock file (for messages and tests). */
  readonly file: string;
  /** Writes `holder` into the file again (after its vxlanPort was set). */
  say(holder: RunLockHolder): void;
  close(): void;
}

/** The holder's VXLAN port as it said it, or undefined when it said none (or nothing usable). */
function portOf(holder: RunLockHolder | null): number | undefined {
  const p = holder?.vxlanPort;
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535 ? p : undefined;
}

/** This process's network namespace as a file-name part: the inode of /proc/self/ns/net. */
export function netnsKey(): string {
  const link = readlinkSync('/proc/self/ns/net'); // "net:[4026531840]"
  const m = /^net:\[(\d+)\]$/.exec(link);
  if (!m) throw new Error(`run lock: /proc/self/ns/net reads ${JSON.stringify(link)}, not net:[INODE]`);
  return m[1];
}

/** The lock file of this process's network namespace in `dir`. */
export function runLockFile(dir = RUN_LOCK_DIR): string {
  return path.join(dir, `run.${netnsKey()}.lock`);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** What the holder wrote (null: nothing readable yet, after a few short waits). */
function readHolder(fd: number): RunLockHolder | null {
  for (let i = 0; i < READ_TRIES; i++) {
    const buf = Buffer.alloc(4096);
    let n = 0;
    try {
      n = readSync(fd, buf, 0, buf.length, 0);
    } catch {
      return null;
    }
    try {
      const h = JSON.parse(buf.subarray(0, n).toString('utf8')) as RunLockHolder;
      if (h && typeof h === 'object' && typeof h.node === 'string') return h;
    } catch {
      /* not written yet, or being rewritten */
    }
    sleepSync(READ_PAUSE_MS);
  }
  return null;
}

function write(fd: number, holder: RunLockHolder): void {
  const text = Buffer.from(JSON.stringify(holder) + '\n');
  ftruncateSync(fd, 0);
  for (let off = 0; off < text.length; ) off += writeSync(fd, text, off, text.length - off, off);
}

/**
 * Takes this network namespace's run lock for `self`, or fails naming the podway that holds it.
 * `dir`: the lock directory (RUN_LOCK_DIR; tests pass another).
 */
export async function takeRunLock(self: RunLockHolder, dir = RUN_LOCK_DIR): Promise<RunLock> {
  const file = runLockFile(dir);
  const where = `podway's run lock ${file}`;
  try {
    makeDirsSync(dir, { mode: 0o755, what: 'run lock' });
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  // Only root or this user may write the directory: nobody else can make, replace or hold the file.
  const why = untrustedDirReason(dir, statSync(dir));
  if (why !== null) throw new Error(`${where}: ${why}`);
  const flock = loadFlockAddon();
  for (let tries = 0; tries < TAKE_TRIES; tries++) {
    let fd: number;
    try {
      fd = openPrivate(file);
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
    let held = false;
    try {
      if (!flock.flockTry(fd, 'ex')) {
        const holder = readHolder(fd);
        const who = holder ? `for node ${holder.node} (pid ${holder.pid}, control ${holder.control})` : '(it does not say which node)';
        const port = portOf(holder);
        throw new Error(`another podway run is running in this network namespace ${who}: one podway per node, it owns podway0, `
          + `the nftables tables and the VXLAN UDP port${port === undefined ? '' : ` ${port}`} here; stop it first (nothing was changed)`);
      }
      // Still the file at the path (not one a holder removed as it let go)?
      const a = fstatSync(fd);
      let b: ReturnType<typeof lstatSync> | null = null;
      try {
        b = lstatSync(file);
      } catch {
        /* removed */
      }
      if (!b || b.ino !== a.ino || b.dev !== a.dev) continue;
      write(fd, self);
      held = true;
      let open = true;
      return {
        file,
        say: (h) => {
          // Only what a refused run is told: a failed write loses nothing else.
          try { if (open) write(fd, h); } catch { /* the earlier text stays */ }
        },
        close: () => {
          if (!open) return;
          open = false;
          // Removed while still held (see the file comment), then let go.
          try { unlinkSync(file); } catch { /* gone already */ }
          closeSync(fd);
        },
      };
    } finally {
      if (!held) closeSync(fd);
    }
  }
  throw new Error(`${where}: removed under this run ${TAKE_TRIES} times in a row as it took it; something else removes files in ${dir}`);
}
