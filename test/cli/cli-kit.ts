/**
 * What the CLI tests share: running `bin/podway.js` with a clean environment, temp dirs removed at
 * exit, and the two writable datastores every command is tested on (a fresh embedded store, and a
 * real etcd emptied for each test).
 */
import * as assert from 'uvu/assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { FileKv } from '../../src/control/kv/file-kv';
import { KvStore } from '../../src/control/kv/kv';
import { EtcdServer, startEtcd } from '../helpers/etcd';
import { within, START_WAIT_MIN_MS } from '../../src/lab/lab';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'podway.js');

export interface Run { code: number; out: string; err: string }

/**
 * The environment variables podway reads (src/: every `env.NAME` / `process.env.NAME`; the test
 * cli/cli-kit-env checks that this covers them all). podway() keeps them from the runner's own
 * environment, so a test's outcome (an exact message, an exit code) does not depend on, say, a
 * NODENAME or LOG_LEVEL set where the suite runs.
 */
export const PODWAY_ENV = /^(PODWAY_|ETCD_|FELIX_|CALICO_|CNI_|WATCHDOG_|(DATASTORE_TYPE|NODENAME|LOG_LEVEL|IP|IP6|CLUSTER_TYPE|AUTODETECT_POLL_INTERVAL|NOTIFY_SOCKET)$)/;

/** Runs the CLI with a clean environment (none of PODWAY_ENV from the caller) plus `env`. */
export function podway(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<Run> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !PODWAY_ENV.test(k)) clean[k] = v;
  }
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...clean, ...env }, timeout: 30_000, ...(cwd !== undefined ? { cwd } : {}) }, (error, stdout, stderr) => {
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

// ---- the same commands in this process ------------------------------------------------------------

let inProcessBusy = false;

/**
 * Runs the CLI as bin/podway.js does (main(argv); a thrown error printed as "podway: <message>"
 * with exit status 1; otherwise process.exitCode), but in this process: no Node start-up and
 * module loading per command (~0.3 s of CPU each). Same clean environment as podway(); stdout and
 * stderr are captured while the command runs. A command that leaves something keeping the event
 * loop alive (a socket, a timer) would hang the real CLI: that fails here too, naming what is left.
 * The suites keep real spawns (podway/ok) for the command paths whose process behaviour matters.
 */
export async function podwayInProcess(args: string[], env: Record<string, string> = {}): Promise<Run> {
  if (inProcessBusy) throw new Error('podwayInProcess: one command at a time (it captures process.stdout)');
  inProcessBusy = true;
  const { main } = await import('../../src/cli/main');
  const savedEnv = { ...process.env };
  for (const k of Object.keys(process.env)) if (/^(PODWAY_|ETCD_|CALICO_|DATASTORE_TYPE$)/.test(k)) delete process.env[k];
  Object.assign(process.env, env);
  const savedExitCode = process.exitCode;
  process.exitCode = undefined;
  const before = process.getActiveResourcesInfo().length;
  let out = '';
  let err = '';
  const { stdout, stderr } = process;
  const outWrite = stdout.write;
  const errWrite = stderr.write;
  const capture = (add: (s: string) => void) => ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    add(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    cb?.();
    return true;
  }) as typeof stdout.write;
  stdout.write = capture((s) => (out += s));
  stderr.write = capture((s) => (err += s));
  let code: number;
  try {
    try {
      await main([process.execPath, BIN, ...args]);
      code = Number(process.exitCode ?? 0);
    } catch (e) {
      err += `podway: ${e instanceof Error && e.message ? e.message : String(e)}\n`;
      code = 1;
    }
  } finally {
    stdout.write = outWrite;
    stderr.write = errWrite;
    process.exitCode = savedExitCode;
    for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
    Object.assign(process.env, savedEnv);
    inProcessBusy = false;
  }
  // What the command opened must be gone (closing sockets may take a moment: bounded wait).
  const end = Date.now() + 3000;
  while (process.getActiveResourcesInfo().length > before && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  const left = process.getActiveResourcesInfo();
  assert.ok(left.length <= before, `podway ${args.join(' ')} left ${left.length - before} resource(s) keeping a process alive: ${left.join(', ')}`);
  return { code, out, err };
}

/** podwayInProcess, asserting exit 0; returns its stdout. */
export async function okInProcess(args: string[], env?: Record<string, string>): Promise<string> {
  const r = await podwayInProcess(args, env);
  assert.is(r.code, 0, `podway ${args.join(' ')} exited ${r.code}: ${r.err}${r.out}`);
  return r.out;
}

/** A `podway run` a CLI test started in a network namespace. */
export interface NetnsRun {
  readonly child: ChildProcess;
  /** Its stderr so far. */
  log(): string;
  /** SIGTERM, then SIGKILL if it has not exited within 10 s. */
  stop(): Promise<void>;
}

/**
 * `podway run ARGS` in network namespace `ns` (`ip netns exec`: the child is podway), returned once
 * `podway status --control SOCK` says it runs (bounded by START_WAIT_MIN_MS, as Lab.startPodway's;
 * status also answers while it starts, so the answer must say it runs). Throws with its log when it
 * exits or does not come up; it is stopped then.
 */
export async function runInNetns(ns: string, sock: string, args: string[]): Promise<NetnsRun> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, 'run', '--control', sock, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const run: NetnsRun = {
    child,
    log: () => log,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await within(exited, 10_000, null);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
  const end = Date.now() + START_WAIT_MIN_MS;
  while (Date.now() < end && child.exitCode === null) {
    if (existsSync(sock) && /^podway is running/.test((await podway(['status', '--control', sock])).out)) return run;
    await new Promise((r) => setTimeout(r, 200));
  }
  await run.stop();
  throw new Error(`podway run did not come up: ${log}`);
}
