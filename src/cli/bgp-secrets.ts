// BGPPeer passwords (spec.password.secretKeyRef) without Kubernetes: `podway run --bgp-secrets DIR`
// reads the key `key` of secret `name` from DIR/name/key, the layout of a Kubernetes secret mounted
// as a volume (one file per key). A trailing newline (from `echo`) is not part of the password.
// The secrets a plan reads are watched (watchSecrets): a rotated password is used within moments,
// not at the next datastore change.
import { readdirSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import * as path from 'node:path';

const PART = /^[A-Za-z0-9._-]+$/;

/** The secret's value, or undefined when it is not there (or the names could leave DIR). */
export function secretFromDir(dir: string, name: string, key: string): string | undefined {
  if (!PART.test(name) || !PART.test(key) || name.startsWith('.') || key.startsWith('.')) return undefined;
  try {
    return readFileSync(path.join(dir, name, key), 'utf8').replace(/\r?\n$/, '');
  } catch {
    return undefined;
  }
}

/** How often the secrets in use are read again whatever the watches said (ms): fs.watch can miss
 * an event (a directory replaced under its watch, a filesystem without inotify). */
export const SECRETS_POLL_MS = 10_000;
/** Secret directories watched at most (beyond them the poll alone notices a change). */
const MAX_WATCHES = 64;

export interface SecretsWatchOptions {
  /** The secrets the BGP plan in force reads (BgpAgent.secretsInUse). */
  readonly secretsInUse: () => readonly { name: string; key: string }[];
  /** Something under DIR may have changed, or the poll came round: read the secrets again
   * (BgpAgent.recheckSecrets), which does nothing when they hold what they held. */
  readonly onCheck: () => void;
  readonly pollMs?: number;
  /** Quiet time after a watch event before onCheck (a tmp write then mv is two events). */
  readonly settleMs?: number;
}

/**
 * Watches `--bgp-secrets DIR` for rotated passwords: fs.watch on DIR (a secret directory made or
 * replaced) and on each secret directory DIR/<secret> (a key file written, or replaced by a
 * rename, as `mv tmp key` and a Kubernetes secret volume's `..data` swap do), plus a poll every
 * `pollMs` as the fallback. Every secret directory under DIR is watched (64 at most), so a plan
 * made after a check finds the watch of its secret open. A watch that cannot open (the directory not there yet) is tried again
 * at each check. close() ends the watches and the poll.
 */
export function watchSecrets(dir: string, opts: SecretsWatchOptions): { close(): void } {
  const watches = new Map<string, FSWatcher>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const open = (at: string): void => {
    if (watches.has(at)) return;
    try {
      const w = watch(at, { persistent: false }, () => soon());
      w.on('error', () => {
        // gone (the directory removed): closed, opened again by a later check once it is back
        w.close();
        if (watches.get(at) === w) watches.delete(at);
        soon();
      });
      watches.set(at, w);
    } catch {
      // not there yet: the poll and the next check try again
    }
  };
  const sync = (): void => {
    // The secrets in use, and whatever else is a secret directory under DIR (one that a plan made
    // after this sync reads is watched already), MAX_WATCHES at most: the poll covers the rest.
    const names = new Set(opts.secretsInUse().map((s) => s.name));
    try {
      for (const e of readdirSync(dir, { withFileTypes: true })) if (names.size < MAX_WATCHES && (e.isDirectory() || e.isSymbolicLink())) names.add(e.name);
    } catch {
      // DIR not there (yet): its own watch fails too; the poll reads the secrets meanwhile
    }
    const want = new Set([dir, ...[...names].filter((n) => PART.test(n) && !n.startsWith('.')).map((n) => path.join(dir, n))]);
    for (const [at, w] of watches) if (!want.has(at)) { w.close(); watches.delete(at); }
    for (const at of want) open(at);
  };
  const check = (): void => {
    if (closed) return;
    opts.onCheck();
    sync();
  };
  const soon = (): void => {
    if (closed || timer) return;
    timer = setTimeout(() => { timer = undefined; check(); }, opts.settleMs ?? 100);
    timer.unref?.();
  };
  const poll = setInterval(check, opts.pollMs ?? SECRETS_POLL_MS);
  poll.unref?.();
  sync();
  return {
    close(): void {
      closed = true;
      clearInterval(poll);
      if (timer) clearTimeout(timer);
      for (const w of watches.values()) w.close();
      watches.clear();
    },
  };
}
