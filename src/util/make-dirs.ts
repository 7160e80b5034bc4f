/**
 * `mkdir -p` without Node's endless loop. Node 20's `fs.mkdir(path, { recursive: true })` (sync and
 * async) retries for ever, at full CPU and deaf to SIGTERM's handler, where mkdir answers ENOENT
 * although the parent exists: `node -e "fs.mkdirSync('/proc/x/y', { recursive: true })"` never
 * returns (procfs, and other file systems that refuse a create with ENOENT). Every state directory
 * podway makes from an operator-given path (the model cache, the IPAM and container locks, the
 * CNI spool, the control socket's directory, an embedded store) goes through makeDirs: the
 * existing ancestor is found, then each missing component made with a plain mkdir, once, so a
 * refusal is an error naming the directory and the setting (`what`), not a hang.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import * as path from 'node:path';

/** More components than any path podway is given (PATH_MAX 4096 / 2): the walk up is bounded. */
const MAX_MISSING = 2048;

export interface MakeDirsOptions {
  /** The directories' mode (under the umask), as mkdir's. */
  mode?: number;
  /** What the path is, for the error: `--model-cache /x/y.json`, `"ipam_lock_file" (...)`. */
  what?: string;
}

/** An error making a directory, with the errno code of the failed call kept. */
export class MakeDirsError extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
    this.name = 'MakeDirsError';
  }
}

function fail(dir: string, failed: string, e: unknown, what: string | undefined): MakeDirsError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOENT' ? `${err.code}: the file system refuses to make it there` : err.code ? `${err.code}: ${err.message.replace(/^\w+: /, '').replace(/, \w+ '.*'$/, '')}` : err.message;
  const where = failed === dir ? dir : `${failed} (of ${dir})`;
  return new MakeDirsError(`${what ? `${what}: ` : ''}cannot make the directory ${where}: ${why}`, err.code);
}

/** The missing directories from the outermost, and the deepest existing one (null: a non-directory is in the way). */
function missingOf(dir: string, exists: (p: string) => 'dir' | 'other' | 'none'): { missing: string[]; blocked: string | null } {
  const missing: string[] = [];
  let cur = dir;
  for (let n = 0; n <= MAX_MISSING; n++) {
    const kind = exists(cur);
    if (kind === 'dir') return { missing, blocked: null };
    if (kind === 'other') return { missing, blocked: cur };
    missing.unshift(cur);
    const up = path.dirname(cur);
    if (up === cur) return { missing, blocked: null };
    cur = up;
  }
  throw new Error(`${dir}: more than ${MAX_MISSING} missing directories`);
}

const kindSync = (p: string): 'dir' | 'other' | 'none' => {
  try {
    return statSync(p).isDirectory() ? 'dir' : 'other';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'none';
    throw e;
  }
};

/**
 * Makes `dir` and its missing parents (mkdir -p), each once; returns the first directory made
 * (undefined: it existed), as mkdirSync's recursive form does. Throws a MakeDirsError naming the
 * directory and `what` when one cannot be made (ENOENT under /proc, EACCES, EROFS, ENOTDIR).
 */
export function makeDirsSync(dir: string, opts: MakeDirsOptions = {}): string | undefined {
  const abs = path.resolve(dir);
  let found: { missing: string[]; blocked: string | null };
  try {
    found = missingOf(abs, kindSync);
  } catch (e) {
    throw fail(abs, abs, e, opts.what);
  }
  if (found.blocked !== null) throw fail(abs, found.blocked, Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }), opts.what);
  for (const d of found.missing) {
    try {
      mkdirSync(d, { mode: opts.mode });
    } catch (e) {
      // made meanwhile by another process (two CNI calls at once): fine if it is a directory
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && kindSync(d) === 'dir') continue;
      throw fail(abs, d, e, opts.what);
    }
  }
  return found.missing[0];
}

/** makeDirsSync's asynchronous form (the file work off the calling thread's time). */
export async function makeDirs(dir: string, opts: MakeDirsOptions = {}): Promise<string | undefined> {
  const abs = path.resolve(dir);
  // the walk up, with the async stat: a few calls, each bounded by the file system
  const kinds = new Map<string, 'dir' | 'other' | 'none'>();
  let cur = abs;
  try {
    for (let n = 0; n <= MAX_MISSING; n++) {
      let kind: 'dir' | 'other' | 'none';
      try {
        kind = (await stat(cur)).isDirectory() ? 'dir' : 'other';
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        kind = 'none';
      }
      kinds.set(cur, kind);
      if (kind !== 'none' || path.dirname(cur) === cur) break;
      cur = path.dirname(cur);
    }
  } catch (e) {
    throw fail(abs, cur, e, opts.what);
  }
  const found = missingOf(abs, (p) => kinds.get(p) ?? 'none');
  if (found.blocked !== null) throw fail(abs, found.blocked, Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }), opts.what);
  for (const d of found.missing) {
    try {
      await mkdir(d, { mode: opts.mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && kindSync(d) === 'dir') continue;
      throw fail(abs, d, e, opts.what);
    }
  }
  return found.missing[0];
}
