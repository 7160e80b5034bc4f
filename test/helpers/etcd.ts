// Starts a real etcd (Debian's etcd-server, /usr/bin/etcd) for one test file: loopback only, free
// ports, a temporary data dir; stopped by PID and its dir removed when the test stops it or, at
// the latest, when the test process exits.
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'uvu';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { ETCD_BINARY, requireEtcdBinary, singleMemberArgs } from '../../src/lab/etcd';

export { ETCD_BINARY };

const HEALTHY_WITHIN_MS = 20_000;

export interface EtcdServer {
  readonly endpoint: string;
  readonly clientPort: number;
  readonly dataDir: string;
  /** PID of the running etcd (changes across restart). */
  pid(): number;
  /**
   * SIGSTOPs etcd and waits until every thread of it is stopped: kill(2) returns before that, and
   * on a busy host a call sent right after it was still answered (a "stopped" etcd answering).
   */
  pause(): Promise<void>;
  /** SIGCONTs etcd. */
  resume(): void;
  /** SIGKILLs etcd and waits for it to exit (the data dir stays). */
  kill(): Promise<void>;
  /** Starts etcd again on the same data dir and ports, and waits until it answers. */
  start(): Promise<void>;
  /** Kills etcd and removes its data dir. */
  stop(): Promise<void>;
}

/** A port nobody listens on now: bind port 0 on loopback, read it, release it. */
/** A TCP port nothing listens on at `host` now (the kernel's pick for port 0; '::1' for IPv6 loopback). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const running = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const p of running) if (p.pid) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** SIGSTOP, then wait (bounded) until every thread of `pid` is in the stopped state (T). */
export async function stopProcess(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const deadline = Date.now() + 10_000;
  for (;;) {
    let running: string[] = [];
    try {
      running = readdirSync(`/proc/${pid}/task`).filter((t) => {
        try {
          return !/^[tT]$/.test(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[0]!);
        } catch {
          return false; // a thread that exited meanwhile
        }
      });
    } catch (e) {
      throw new Error(`process ${pid} gone while stopping it: ${(e as Error).message}`);
    }
    if (running.length === 0) return;
    if (Date.now() > deadline) throw new Error(`process ${pid}: threads ${running.join(', ')} not stopped 10 s after SIGSTOP`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Another process listens on the port given to this etcd. */
class PortTaken extends Error {}

/**
 * Waits until the etcd member `name` answers healthy at `endpoint`. The name is checked (etcd's
 * JSON gateway, member list): two test files starting etcds at once can be handed the same free
 * port, and then one etcd fails to bind it while the other answers there; without the check the
 * first file's tests talked to the second file's etcd (and a SIGSTOP of "its" etcd, already gone,
 * stopped nothing).
 */
async function healthy(endpoint: string, name: string, deadline: number, proc: ChildProcess, log: () => string): Promise<void> {
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`etcd exited (${proc.exitCode ?? proc.signalCode}) before it was healthy:\n${log()}`);
    }
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') {
        const list = await fetch(`${endpoint}/v3/cluster/member/list`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
        const members = ((await list.json()) as { members?: { name?: string; clientURLs?: string[] }[] }).members ?? [];
        if (members.some((m) => m.name === name && (m.clientURLs ?? []).includes(endpoint))) return;
        throw new PortTaken(`another etcd (${members.map((m) => m.name).join(', ')}) answers at ${endpoint}, not ${name}:\n${log()}`);
      }
    } catch (e) {
      if (e instanceof PortTaken) throw e;
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`etcd at ${endpoint} not healthy within ${HEALTHY_WITHIN_MS} ms:\n${log()}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

/** `extraArgs`: more etcd flags (e.g. a small --max-request-bytes). */
export async function startEtcd(extraArgs: readonly string[] = []): Promise<EtcdServer> {
  requireEtcdBinary();
  const dataDir = mkdtempSync(join(tmpdir(), 'podway-etcd-'));
  dirs.add(dataDir);
  let proc: ChildProcess | undefined;
  let output = '';
  let clientPort = 0;
  let peerPort = 0;
  // Unique: healthy() tells this etcd from another file's by it (kept across restarts).
  const name = `podway-test-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;

  const launch = async (): Promise<void> => {
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    output = '';
    const p = spawn(ETCD_BINARY, [...singleMemberArgs(name, dataDir, client, client, peer), ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => { output = (output + b.toString()).slice(-4000); };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    running.add(p);
    p.once('exit', () => running.delete(p));
    proc = p;
    await healthy(client, name, Date.now() + HEALTHY_WITHIN_MS, p, () => output);
  };

  const kill = async (): Promise<void> => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>(resolve => p.once('exit', () => resolve()));
    process.kill(p.pid!, 'SIGKILL');
    await exited;
  };

  // Ports can be taken between freePort() and etcd's bind: retry with new ones a few times.
  for (let attempt = 1; ; attempt++) {
    clientPort = await freePort();
    peerPort = await freePort();
    try {
      await launch();
      break;
    } catch (e) {
      await kill();
      if (attempt >= 3 || !(e instanceof PortTaken || /address already in use/.test(output))) {
        rmSync(dataDir, { recursive: true, force: true });
        dirs.delete(dataDir);
        throw e;
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  return {
    endpoint: `http://127.0.0.1:${clientPort}`,
    clientPort,
    dataDir,
    pid: () => proc!.pid!,
    pause: () => stopProcess(proc!.pid!),
    resume: () => { process.kill(proc!.pid!, 'SIGCONT'); },
    kill,
    start: launch,
    async stop() {
      await kill();
      rmSync(dataDir, { recursive: true, force: true });
      dirs.delete(dataDir);
    },
  };
}

/**
 * One etcd for a whole uvu test file: started before its first test, stopped after its last, with
 * every client `open()` handed out closed first. Returns `open`: a new EtcdKv connection of its own.
 */
export function etcdForFile(suite: Test): () => EtcdKv {
  let etcd: EtcdServer | null = null;
  const stores: EtcdKv[] = [];
  suite.before(async () => {
    etcd = await startEtcd();
  });
  suite.after(async () => {
    for (const s of stores) await s.close().catch(() => {});
    await etcd?.stop();
  });
  return () => {
    const kv = new EtcdKv({ endpoints: [etcd!.endpoint], timeoutMs: 20_000 });
    stores.push(kv);
    return kv;
  };
}

export interface EtcdCluster {
  /** Client URLs, member 0 first. */
  readonly endpoints: readonly string[];
  /** PID of member i. */
  pid(i: number): number;
  /** SIGKILLs member i (by PID) and waits for it to exit. */
  kill(i: number): Promise<void>;
  /**
   * SIGSTOPs member i (by PID) and waits until every thread of it is stopped (stopProcess): its
   * connections stay open, nothing is answered. stop() continues it (SIGCONT) before killing; a
   * test continues it itself with resume() in its `finally`.
   */
  pause(i: number): Promise<void>;
  /** SIGCONTs member i after pause(). */
  resume(i: number): void;
  /** The index of the member that is the leader now (etcd's maintenance status, asked of each). */
  leader(): Promise<number>;
  /** Kills every member and removes their data dirs. */
  stop(): Promise<void>;
}

/**
 * A real `size`-member etcd cluster on loopback (free ports, a data dir each, warnings only),
 * healthy (a leader elected) when it resolves; members stopped by PID. `extraArgs`: more flags for every member.
 */
export async function startEtcdCluster(size = 3, extraArgs: readonly string[] = []): Promise<EtcdCluster> {
  // Ports can be taken between freePort() and the members' binds: new ones, a few times.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdClusterOnce(size, extraArgs);
    } catch (e) {
      if (attempt >= 3 || !(e instanceof PortTaken || /address already in use/.test((e as Error).message))) throw e;
    }
  }
}

async function startEtcdClusterOnce(size: number, extraArgs: readonly string[]): Promise<EtcdCluster> {
  requireEtcdBinary();
  const clients: number[] = [];
  const peers: number[] = [];
  for (let i = 0; i < size; i++) clients.push(await freePort());
  for (let i = 0; i < size; i++) peers.push(await freePort());
  const url = (p: number) => `http://127.0.0.1:${p}`;
  const names = peers.map((_, i) => `m${i}-${process.pid}-${Math.random().toString(16).slice(2, 8)}`);
  const initial = peers.map((p, i) => `${names[i]}=${url(p)}`).join(',');
  const procs: ChildProcess[] = [];
  const memberDirs: string[] = [];
  const logs = procs.map(() => '');
  const kill = async (i: number): Promise<void> => {
    const p = procs[i];
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>(resolve => p.once('exit', () => resolve()));
    process.kill(p.pid!, 'SIGKILL');
    await exited;
  };
  const stop = async (): Promise<void> => {
    for (let i = 0; i < procs.length; i++) await kill(i);
    for (const d of memberDirs) {
      rmSync(d, { recursive: true, force: true });
      dirs.delete(d);
    }
  };
  try {
    for (let i = 0; i < size; i++) {
      const dir = mkdtempSync(join(tmpdir(), `podway-etcd-m${i}-`));
      dirs.add(dir);
      memberDirs.push(dir);
      const p = spawn(ETCD_BINARY, [
        '--name', names[i]!, '--data-dir', dir,
        '--listen-client-urls', url(clients[i]!), '--advertise-client-urls', url(clients[i]!),
        '--listen-peer-urls', url(peers[i]!), '--initial-advertise-peer-urls', url(peers[i]!),
        '--initial-cluster', initial, '--initial-cluster-token', `podway-test-${process.pid}-${clients[0]}`, '--initial-cluster-state', 'new',
        '--log-level', 'warn', '--logger', 'zap', ...extraArgs,
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      logs[i] = '';
      const keep = (b: Buffer) => { logs[i] = (logs[i] + b.toString()).slice(-3000); };
      p.stdout!.on('data', keep);
      p.stderr!.on('data', keep);
      running.add(p);
      p.once('exit', () => running.delete(p));
      procs.push(p);
    }
    const deadline = Date.now() + 2 * HEALTHY_WITHIN_MS;
    for (let i = 0; i < size; i++) await healthy(url(clients[i]!), names[i]!, deadline, procs[i]!, () => logs[i] ?? '');
  } catch (e) {
    await stop();
    throw e;
  }
  const paused = new Set<number>();
  const resume = (i: number): void => {
    if (!paused.delete(i)) return;
    try { process.kill(procs[i]!.pid!, 'SIGCONT'); } catch { /* gone */ }
  };
  const pause = (i: number): Promise<void> => {
    paused.add(i);
    return stopProcess(procs[i]!.pid!);
  };
  const leader = async (): Promise<number> => {
    const ids: string[] = [];
    let leaderId = '';
    for (const c of clients) {
      const res = await fetch(`${url(c)}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as { header: { member_id: string }; leader: string };
      ids.push(body.header.member_id);
      leaderId ||= body.leader;
    }
    const i = ids.indexOf(leaderId);
    if (i < 0) throw new Error(`no member is the leader (${leaderId}) of ${ids.join(', ')}`);
    return i;
  };
  return {
    endpoints: clients.map(url),
    pid: (i) => procs[i]!.pid!,
    kill,
    pause,
    resume,
    leader,
    stop: async () => {
      for (const i of [...paused]) resume(i);
      await stop();
    },
  };
}
