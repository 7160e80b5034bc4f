/**
 * A directory podway writes state into (the model cache, an embedded store) must be one that only
 * root or this process's user can change: anyone else able to create or rename files in it could
 * plant a forged file for podway to read back (a forged cached model is forwarded on at the next
 * start) or swap a written file for a symlink. The CNI spool and the lock directories have the
 * same rule (cni/ipam-lock.ts requirePrivateDir, which wants this user only); here root is trusted
 * too, so a non-root tool may read a store root made.
 *
 * The directory is stat(2)ed, a symlink to it followed: what decides who can plant files is the
 * directory itself (its owner and mode), which is what is checked.
 *
 * A leaf module (node:fs only).
 */
import { statSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';

/** The directory cannot be trusted (its owner or mode); the message names it and the fix. */
export class UntrustedDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UntrustedDirError';
  }
}

function ownUid(): number {
  return process.geteuid ? process.geteuid() : 0;
}

/** Why `dir` (whose stat is `st`) cannot be trusted, in words; null when it can. */
export function untrustedDirReason(dir: string, st: Stats): string | null {
  if (!st.isDirectory()) return `${dir} is not a directory`;
  const uid = ownUid();
  if (st.uid !== 0 && st.uid !== uid) {
    return `${dir} is owned by uid ${st.uid}, neither root nor this process's user (uid ${uid}): refused, its owner could plant or replace the files podway keeps there; \`chown ${uid} ${dir}\` (and \`chmod go-w\`) or use another directory`;
  }
  if ((st.mode & 0o022) !== 0) {
    return `${dir} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}): refused, another user could plant or replace the files podway keeps there (a symlink, a forged file); \`chmod go-w ${dir}\` or use another directory`;
  }
  return null;
}

/** Throws an UntrustedDirError (message: `what: reason`) unless `dir` is trusted; its stat's errors as they are. */
export function requireTrustedDirSync(dir: string, what: string): void {
  const why = untrustedDirReason(dir, statSync(dir));
  if (why !== null) throw new UntrustedDirError(`${what}: ${why}`);
}

/** requireTrustedDirSync off the calling thread. */
export async function requireTrustedDir(dir: string, what: string): Promise<void> {
  const why = untrustedDirReason(dir, await stat(dir));
  if (why !== null) throw new UntrustedDirError(`${what}: ${why}`);
}
