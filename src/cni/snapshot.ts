// The CNI plugin's start-up snapshot (snapshot-entry.ts): built by `podway cni install` for the node
// binary the shim runs, kept in the checkout's build/cni-snapshot/ (a build product, as dist/ is),
// named after that binary and the build it holds: `<st_dev>-<inode>-<ctime s>-<size>-<build>.blob`,
// the first four what `stat -Lc %d-%i-%Z-%s` prints (so the shim finds the one for its node with one
// `stat` and no node process), <build> the first 12 hex digits of the sha1 of the real path of the
// plugin's dist/src/cni (checkoutTag: two checkouts sharing one build/ through a link never take
// each other's). A node
// upgraded in place is another file (another inode and ctime): the shim finds no blob of its
// name and runs the plugin as before (dist/src/cni/main.js), until `cni install` runs again.
//
// Built once per node binary and build of the plugin: a blob whose manifest (the files it loaded,
// their sizes and mtimes) matches the files on disk is kept. Before a new blob is put in place, a
// process is started from it (VERSION) and must answer; a blob that cannot be built or does not
// start is not installed, and the shim runs the plugin without it (install says why).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { makeDirsSync } from '../util/make-dirs';

/** Where the checkout keeps its snapshots (dist/src/cni -> the checkout's build/cni-snapshot). */
export const SNAPSHOT_DIR = path.resolve(__dirname, '..', '..', '..', 'build', 'cni-snapshot');
const ENTRY = path.join(__dirname, 'snapshot-entry.js');
export const MANIFEST_ENV = 'PODWAY_CNI_SNAPSHOT_MANIFEST';
const BUILTINS_ENV = 'PODWAY_CNI_SNAPSHOT_BUILTINS';
/** How long building a snapshot may take (a loaded 2-CPU machine: seconds). */
const BUILD_TIMEOUT_MS = 180_000;

/** The node binary's identity as the shim reads it: `stat -Lc %d-%i-%Z-%s NODE`. */
export function nodeIdentity(nodePath: string): string {
  const st = statSync(nodePath, { bigint: true });
  return `${st.dev}-${st.ino}-${st.ctimeNs / 1_000_000_000n}-${st.size}`;
}

/** The build's part of a blob's name: sha1 of the real path of `cniDir` (dist/src/cni), 12 hex digits. */
export function checkoutTag(cniDir = __dirname): string {
  let dir = cniDir;
  try {
    dir = realpathSync(cniDir);
  } catch {
    /* as given */
  }
  return createHash('sha1').update(dir).digest('hex').slice(0, 12);
}

/** The blob the shim looks for, for `nodePath` and this build. */
export function snapshotBlob(nodePath: string, dir = SNAPSHOT_DIR): string {
  return path.join(dir, `${nodeIdentity(nodePath)}-${checkoutTag()}.blob`);
}

export interface Manifest {
  readonly node: string;
  /** [file, size, mtimeMs] of every file the snapshot loaded. */
  readonly files: [string, number, number][];
}

export function readManifest(file: string): Manifest | null {
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    return Array.isArray(m.files) ? m : null;
  } catch {
    return null;
  }
}

/** Whether every file the manifest lists is on disk as it was loaded. */
export function manifestCurrent(m: Manifest): boolean {
  return m.files.every(([file, size, mtimeMs]) => {
    try {
      const st = statSync(file);
      return st.size === size && st.mtimeMs === mtimeMs;
    } catch {
      return false;
    }
  });
}

export interface SnapshotOutcome {
  /** The blob the shim will use for this node (null: none, the plugin runs without). */
  readonly blob: string | null;
  /** Why there is none, for install to say (null when there is one). */
  readonly note: string | null;
}

/** The blob for `nodePath` (made when missing or stale); never throws. */
export function ensurePluginSnapshot(nodePath: string, dir = SNAPSHOT_DIR): SnapshotOutcome {
  let id: string;
  try {
    id = nodeIdentity(nodePath);
  } catch (e) {
    return { blob: null, note: `no start-up snapshot for the plugin: ${nodePath}: ${(e as Error).message}` };
  }
  const tag = checkoutTag();
  const name = `${id}-${tag}`;
  const blob = path.join(dir, `${name}.blob`);
  const manifestFile = path.join(dir, `${name}.json`);
  const m = readManifest(manifestFile);
  if (m && existsSync(blob) && manifestCurrent(m)) return { blob, note: null };
  const tmp = `.${process.pid}.${Math.random().toString(16).slice(2, 10)}`;
  const tmpBlob = path.join(dir, `${name}.blob${tmp}`);
  const tmpManifest = path.join(dir, `${name}.json${tmp}`);
  try {
    makeDirsSync(dir, { what: 'cni install: the plugin\'s snapshot directory' });
    // No NODE_OPTIONS: a flag there would make a snapshot that node refuses without it.
    const env = { ...process.env, NODE_OPTIONS: '', [MANIFEST_ENV]: tmpManifest, [BUILTINS_ENV]: JSON.stringify(builtinModules) };
    execFileSync(nodePath, ['--snapshot-blob', tmpBlob, '--build-snapshot', ENTRY], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: BUILD_TIMEOUT_MS });
    // It must start and answer before the shim uses it.
    const out = execFileSync(nodePath, ['--snapshot-blob', tmpBlob], { env: { PATH: process.env.PATH ?? '', CNI_COMMAND: 'VERSION' }, input: '', encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
    const answer = JSON.parse(out) as { supportedVersions?: unknown };
    if (!Array.isArray(answer.supportedVersions)) throw new Error(`a process started from it answered VERSION with ${JSON.stringify(out.trim())}`);
    renameSync(tmpManifest, manifestFile);
    renameSync(tmpBlob, blob);
  } catch (e) {
    for (const f of [tmpBlob, tmpManifest]) try { unlinkSync(f); } catch { /* not made */ }
    const err = e as Error & { stderr?: Buffer | string };
    const said = err.stderr ? String(err.stderr).trim().split('\n').slice(-3).join(' / ') : '';
    return { blob: null, note: `no start-up snapshot for the plugin (it runs without one, slower to start): ${err.message.split('\n')[0]}${said ? `: ${said}` : ''}` };
  }
  // This build's blobs of other node binaries (a node upgraded since), and blobs named without a
  // build (the first snapshots, 65c0374), are of no use to anyone now.
  try {
    for (const f of readdirSync(dir)) if (new RegExp(`^\\d+-\\d+-\\d+-\\d+(-${tag})?\\.(blob|json)$`).test(f) && !f.startsWith(`${name}.`)) unlinkSync(path.join(dir, f));
  } catch {
    /* left: they take only space */
  }
  return { blob, note: null };
}
