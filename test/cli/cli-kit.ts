/**
 * What the CLI tests share: running `bin/podway.js` with a clean environment, temp dirs removed at
 * exit, and the two writable datastores every command is tested on (a fresh embedded store, and a
 * real etcd emptied for each test).
 */
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { FileKv } from '../../src/control/kv/file-kv';
import { KvStore } from '../../src/control/kv/kv';
import { EtcdServer, startEtcd } from '../helpers/etcd';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'podway.js');

export interface Run { code: number; out: string; err: string }

/** Runs the CLI with a clean environment (no PODWAY_DATASTORE/ETCD_* from the caller) plus `env`. */
export function podway(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^(PODWAY_|ETCD_|DATASTORE_TYPE$)/.test(k)) clean[k] = v;
  }
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...clean, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, out: stdout, err: stderr });
    });
  });
}

/** Runs the CLI and asserts it exited 0; returns its stdout. */
export async function ok(args: string[], env?: Record<string, string>): Promise<string> {
  const r = await podway(args, env);
  assert.is(r.code, 0, `podway ${args.join(' ')} exited ${r.code}: ${r.err}${r.out}`);
  return r.out;
}

const tempDirs: string[] = [];
process.on('exit', () => { for (const d of tempDirs) rmSync(d, { recursive: true, force: true }); });
export function tempDir(prefix = 'podway-cli-'): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export interface Target {
  readonly name: string;
  /** A fresh, empty datastore: its --datastore spec and a KvStore on it for planting and checking. */
  open(): Promise<{ spec: string; kv: KvStore }>;
}

export const embeddedTarget: Target = {
  name: 'an embedded store',
  async open() {
    const dir = path.join(tempDir(), 'store');
    return { spec: `embedded:${dir}`, kv: new FileKv({ dir }) };
  },
};

let etcd: EtcdServer | undefined;
/** One etcd for the test file, emptied of /calico/ for each test; stopEtcd() when done. */
export const etcdTarget: Target = {
  name: 'etcd',
  async open() {
    etcd ??= await startEtcd();
    const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 3000 });
    for (const e of (await kv.list('/calico/')).entries) await kv.delete(e.key);
    return { spec: `etcd:${etcd.endpoint}`, kv };
  },
};

export async function stopEtcd(): Promise<void> {
  await etcd?.stop();
  etcd = undefined;
}
