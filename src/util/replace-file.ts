/**
 * Replacing a file whole, so that a reader (or the next start after a crash) finds the old
 * content or the new one, never a part: the data is written to a temporary file beside it,
 * fsynced, renamed over it, then the directory is fsynced (the rename survives a crash only once
 * it is). The temporary is a dot-file of this process (`.NAME.PID.RANDOM.tmp` in the same
 * directory: directory readers that skip dot-names, as the CNI spool does, skip it), and a write
 * that fails before the rename (a full disk, say) removes it. The file's mode is `mode` (as
 * open(2) takes it: the umask applies; default 0o666) when the temporary is created.
 *
 * The temporary is created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW) under a random name, another
 * random name tried when one exists (TEMP_TRIES in all): whatever is at that name already (a
 * symlink planted by another user who can guess the name, pointing at a file this process may
 * write as root) is never opened, followed, written or removed. Before this, `.NAME.PID.tmp`
 * was opened with 'w': a symlink planted there made a root podway overwrite its target, and the
 * symlink then took the file's place. (The directory must still be one only root or this user
 * can write: see util/trusted-dir.ts; an exclusive create keeps a foreign symlink from being
 * followed, not a foreign user from replacing the file after us.)
 *
 * replaceFileSync for synchronous callers (the CNI plugin, `cni install`), replaceFile for the
 * others (the file and the fsyncs off the calling thread).
 *
 * A leaf module (it imports only node:fs and node:path).
 */
import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export interface ReplaceFileOptions {
  /** Mode of the new file (before the umask); default 0o666. */
  readonly mode?: number;
  /** The names to try for the temporary, one per try (tests: a name with something planted at
   * it); default replaceTempName's random ones. */
  readonly tempName?: (file: string, attempt: number) => string;
}

/** Random temporary names tried before giving up (each one taken: EEXIST). */
export const TEMP_TRIES = 8;

/** How the temporary is opened: created here or not at all, a symlink at its name never followed. */
const TEMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW; // libuv adds O_CLOEXEC

/** A temporary file `file` may be written to first: `.NAME.PID.RANDOM.tmp` beside it (RANDOM: 12
 * hex digits, another each call). */
export function replaceTempName(file: string): string {
  return join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

function tempTaken(file: string, e: unknown, attempt: number): boolean {
  if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return false;
  if (attempt + 1 < TEMP_TRIES) return true;
  (e as Error).message = `${(e as Error).message}: ${TEMP_TRIES} random temporary names beside ${file} were all taken (something else creates files in that directory)`;
  return false;
}

/** Creates the temporary exclusively (see the module comment): its name and descriptor. */
function createTempSync(file: string, opts: ReplaceFileOptions): { tmp: string; fd: number } {
  const name = opts.tempName ?? replaceTempName;
  for (let attempt = 0; ; attempt++) {
    const tmp = name(file, attempt);
    try {
      return { tmp, fd: openSync(tmp, TEMP_FLAGS, opts.mode ?? 0o666) };
    } catch (e) {
      if (!tempTaken(file, e, attempt)) throw e;
    }
  }
}

async function createTemp(file: string, opts: ReplaceFileOptions): Promise<{ tmp: string; fh: FileHandle }> {
  const name = opts.tempName ?? replaceTempName;
  for (let attempt = 0; ; attempt++) {
    const tmp = name(file, attempt);
    try {
      return { tmp, fh: await open(tmp, TEMP_FLAGS, opts.mode ?? 0o666) };
    } catch (e) {
      if (!tempTaken(file, e, attempt)) throw e;
    }
  }
}

/** Replaces `file` with `data` whole (see the module comment); throws what the write met. */
export function replaceFileSync(file: string, data: string | Uint8Array, opts: ReplaceFileOptions = {}): void {
  // Not created: nothing of ours to remove (what is at a taken name is someone else's).
  const { tmp, fd } = createTempSync(file, opts);
  try {
    try {
      writeAllSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* not made, or not removable: the write's error is the one to tell */ }
    throw e;
  }
  const dfd = openSync(dirname(file), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

function writeAllSync(fd: number, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
}

/** replaceFileSync with the file work done off the calling thread. */
export async function replaceFile(file: string, data: string | Uint8Array, opts: ReplaceFileOptions = {}): Promise<void> {
  const { tmp, fh } = await createTemp(file, opts);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined); // as replaceFileSync
    throw e;
  }
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
