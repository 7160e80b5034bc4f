// The plugin's host-wide concurrency limit: at most K plugin processes do their heavy work (loading
// the etcd client and zod, talking to the datastore, IPAM) at once; the others wait, asleep, for a
// slot. Each plugin process costs ~0.7-0.95 CPU-s to start; a storm of 30 ADDs on a 2-vCPU node
// started all 30 at once and each took 2-3 minutes (past kubelet's 2), the IPAM lock's holder
// starved by the 29 others (docs/cni.md, "Concurrency limit").
//
//   slot files  `<ipam_lock_file>.slot.<i>`, i = 0..K-1, never removed; a process holds slot i
//               while it holds flock(2) LOCK_EX on that file (native/flock.c), i.e. until it exits:
//               the kernel frees it then, also on SIGKILL. The holder writes its PID into it (for
//               messages only).
//
// Taken at the very start of the plugin's main (main.ts), before plugin.ts and what it loads are
// required: a waiting process has only Node itself loaded. A waiter tries every slot without
// blocking, then sleeps until a slot file changes (fs.watch: a holder unlocks and touches its slot
// as it exits) or 100 ms pass (a holder killed by SIGKILL sends no event), and tries again. No
// order among waiters: whoever tries first after a slot is freed gets it.
//
// Never a reason to fail: a limiter that cannot work (no addon, a directory it may not use) or a
// wait past its bound lets the process go on without a slot, with a warning on stderr.
import { makeDirsSync } from '../util/make-dirs';
import { closeSync, futimesSync, writeSync, ftruncateSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname } from 'node:path';
import { loadFlockAddon, openPrivate } from './flock-lock';
import { requirePrivateDir } from './ipam-lock';
import { validConcurrencyLimit } from './config';
import { Wakeup } from '../util/dir-wakeup';

/**
 * Set in a slot holder's environment, so that a plugin it runs (a delegated IPAM plugin, which may
 * be podway again) does not wait for a slot its parent holds.
 */
export const SLOT_ENV = 'PODWAY_CNI_SLOT';

/** The default limit: the host's CPUs, at least 2 (one holds the IPAM lock while another starts). */
export function defaultConcurrencyLimit(): number {
  return Math.max(2, availableParallelism());
}

export function slotFileOf(ipamLockFile: string, i: number): string {
  return `${ipamLockFile}.slot.${i}`;
}

export interface SlotOptions {
  /** The IPAM lock file (ipam_lock_file): the slots live beside it. */
  readonly ipamLockFile: string;
  /** K; 0: no limit. */
  readonly limit: number;
  /** How long to wait for a slot before going on without one, ms. */
  readonly timeoutMs: number;
  /** Test hook: the re-check period while waiting (default 100 ms). */
  readonly pollMs?: number;
}

export interface SlotResult {
  /** The slot held until exit; null: none (no limit, or went on without). */
  readonly slot: number | null;
  readonly waitedMs: number;
  /** Why the process goes on without a slot, for stderr; null when it has one or there is no limit. */
  readonly warning: string | null;
}

const POLL_MS = 100;

/**
 * Takes one of `limit` slots, waiting up to `timeoutMs`; the slot stays held until the process
 * exits. Never throws: a failure is a warning and no slot.
 */
export async function takeSlot(o: SlotOptions): Promise<SlotResult> {
  const started = Date.now();
  if (o.limit <= 0) return { slot: null, waitedMs: 0, warning: null };
  const fds: number[] = [];
  let wake: Wakeup | null = null;
  let kept = -1;
  try {
    const flock = loadFlockAddon();
    const dir = dirname(o.ipamLockFile);
    makeDirsSync(dir, { mode: 0o755, what: `concurrency_limit's slots beside ${o.ipamLockFile}` });
    requirePrivateDir(dir, `concurrency_limit's slots beside ${o.ipamLockFile}`);
    for (let i = 0; i < o.limit; i++) fds.push(openPrivate(slotFileOf(o.ipamLockFile, i)));
    const prefix = `${basename(o.ipamLockFile)}.slot.`;
    wake = new Wakeup(dir);
    wake.watchFor((name) => name.startsWith(prefix));
    const deadline = started + o.timeoutMs;
    // Start at a slot of our own choosing, so that a crowd does not try slot 0 first every time.
    const first = process.pid % o.limit;
    for (;;) {
      for (let k = 0; k < o.limit; k++) {
        const i = (first + k) % o.limit;
        if (flock.flockTry(fds[i]!, 'ex')) {
          kept = i;
          break;
        }
      }
      if (kept >= 0) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        return { slot: null, waitedMs: Date.now() - started, warning: `podway CNI plugin: no concurrency slot of ${o.limit} (${slotFileOf(o.ipamLockFile, 0)}..) free after ${o.timeoutMs} ms; going on without one` };
      }
      await wake.next(Math.min(o.pollMs ?? POLL_MS, left));
    }
    const fd = fds[kept]!;
    try {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
    } catch { /* only for messages */ }
    // Freed by the kernel at exit anyway; unlocking and touching it first wakes the waiters at once.
    process.once('exit', () => {
      try {
        flock.flockTry(fd, 'un');
        const now = new Date();
        futimesSync(fd, now, now);
      } catch { /* the kernel frees it */ }
    });
    return { slot: kept, waitedMs: Date.now() - started, warning: null };
  } catch (e) {
    return { slot: null, waitedMs: Date.now() - started, warning: `podway CNI plugin: concurrency limit not applied (${(e as Error).message}); going on without a slot` };
  } finally {
    wake?.close();
    fds.forEach((fd, i) => { if (i !== kept) closeSync(fd); });
  }
}

/**
 * The limiter's settings from the config's JSON value (config.ts parseStdin), read before the
 * config parser (and what it loads) is: anything unreadable falls back to the default here, and
 * the parser reports it.
 */
export function slotOptionsOf(config: unknown, defaults: { ipamLockFile: string; timeoutMs: number }): SlotOptions {
  // Not an object (not JSON at all: undefined): the defaults, and the parser says what is wrong.
  const raw: Record<string, unknown> = config !== null && typeof config === 'object' && !Array.isArray(config) ? (config as Record<string, unknown>) : {};
  const f = raw.ipam_lock_file;
  const t = raw.ipam_lock_timeout_ms;
  const l = raw.concurrency_limit;
  return {
    ipamLockFile: typeof f === 'string' && f.startsWith('/') && !f.endsWith('/') ? f : defaults.ipamLockFile,
    timeoutMs: typeof t === 'number' && Number.isInteger(t) && t >= 100 && t <= 600_000 ? t : defaults.timeoutMs,
    limit: validConcurrencyLimit(l) ? l : defaultConcurrencyLimit(),
  };
}
