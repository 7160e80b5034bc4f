/**
 * Replacing a file whole, so that a reader (or the next start after a crash) finds the old
 * content or the new one, never a part: the data is written to a temporary file beside it,
 * fsynced, renamed over it, then the directory is fsynced (the rename survives a crash only once
 * it is). The temporary is a dot-file of this process (`.NAME.PID.tmp` in the same directory:
 * directory readers that skip dot-names, as the CNI spool does, skip it), and a write that fails
 * before the rename (a full disk, say) removes it. The file's mode is `mode` (as open(2) takes
 * it: the umask applies; default 0o666) when the temporary is created.
 *
 * replaceFileSync for synchronous callers (the CNI plugin, `cni install`), replaceFile for the
 * others (the file and the fsyncs off the calling thread).
 *
 * A leaf module (it imports only node:fs and node:path).
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface ReplaceFileOptions {
  /** Mode of the new file (before the umask); default 0o666. */
  readonly mode?: number;
}

/** The temporary file `file` is written to first: `.NAME.PID.tmp` beside it. */
export function replaceTempName(file: string): string {
  return join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
}

/** Replaces `file` with `data` whole (see the module comment); throws what the write met. */
export function replaceFileSync(file: string, data: string | Uint8Array, opts: ReplaceFileOptions = {}): void {
  const tmp = replaceTempName(file);
  try {
    const fd = openSync(tmp, 'w', opts.mode ?? 0o666);
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
  const tmp = replaceTempName(file);
  try {
    const fh = await open(tmp, 'w', opts.mode ?? 0o666);
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
