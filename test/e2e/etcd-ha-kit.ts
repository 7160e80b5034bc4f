/**
 * A real three-member etcd cluster inside a lab's fabric namespace, for the tests of podway on an
 * etcd cluster: each member listens for clients on the fabric's bridge address (10.99.0.254) at a
 * port of its own (2379, 2389, 2399; peers 2380, 2390, 2400), where the lab's nodes reach it, and
 * on a unix socket in its own directory, where this process (in the root namespace) reaches it.
 * Members are killed, stopped and continued by PID; stop() kills every one and removes the data.
 * openEtcdHaLab: a lab on such a cluster, with this process's client of it (what
 * e2e/etcd-cluster-faults and e2e/etcd-quorum-conns both start from); memberConns: a node's
 * connections to each member.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ETCD_BINARY, healthOver, requireEtcdBinary } from '../../src/lab/etcd';
import { stopProcess } from '../helpers/etcd';
import { atCleanup } from '../helpers/cleanup';
import { Lab, LabNode, LabNodeSpec } from '../../src/lab/lab';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { guard, teardown } from './e2e-kit';

const HOST = '10.99.0.254';
const SOCKET = 'etcd.sock:0';

interface Member { name: string; dir: string; clientPort: number; peerPort: number; proc: ChildProcess | null; output: string; paused: boolean }

/** A JSON request to etcd's gRPC gateway over a member's unix socket; null when it does not answer. */
export function gateway(socketPath: string, api: string, body: object = {}, timeoutMs = 2000): Promise<any | null> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: api, method: 'POST', timeout: timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => { try { resolve(JSON.parse(text)); } catch { resolve(null); } });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end(JSON.stringify(body));
  });
}

export class LabEtcdCluster {
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'podway-etcd-ha-'));
  private readonly members: Member[];
  private readonly token = `podway-ha-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  private readonly undo: () => void;

  constructor(private readonly netns: string, size = 3) {
    this.members = Array.from({ length: size }, (_, i) => ({
      name: `m${i}`, dir: path.join(this.dir, `m${i}`), clientPort: 2379 + 10 * i, peerPort: 2380 + 10 * i, proc: null, output: '', paused: false,
    }));
    this.undo = atCleanup(() => this.destroySync());
  }

  /** The URL the nodes reach member i at. */
  endpoint(i: number): string { return `http://${HOST}:${this.members[i]!.clientPort}`; }
  get endpoints(): string[] { return this.members.map((_, i) => this.endpoint(i)); }
  /** What this process uses for member i (EtcdKv takes unix:PATH). */
  localEndpoint(i: number): string { return `unix:${this.socket(i)}`; }
  get localEndpoints(): string[] { return this.members.map((_, i) => this.localEndpoint(i)); }
  private socket(i: number): string { return path.join(this.members[i]!.dir, SOCKET); }
  pid(i: number): number { const p = this.members[i]!.proc; return p && p.exitCode === null && p.signalCode === null ? p.pid! : 0; }
  log(i: number): string { return this.members[i]!.output; }

  /** Starts every member and waits until each is healthy (a leader elected). */
  async start(): Promise<void> {
    requireEtcdBinary();
    for (let i = 0; i < this.members.length; i++) {
      mkdirSync(this.members[i]!.dir, { mode: 0o700 });
      this.launch(i, 'new');
    }
    for (let i = 0; i < this.members.length; i++) await this.healthy(i, 30_000);
  }

  private launch(i: number, state: 'new' | 'existing'): void {
    const m = this.members[i]!;
    const peer = (x: Member) => `http://${HOST}:${x.peerPort}`;
    const initial = this.members.map((x) => `${x.name}=${peer(x)}`).join(',');
    rmSync(this.socket(i), { force: true }); // a SIGKILLed etcd leaves it behind
    m.output = '';
    const p = spawn('ip', ['netns', 'exec', this.netns, ETCD_BINARY,
      '--name', m.name, '--data-dir', path.join(m.dir, 'data'),
      '--listen-client-urls', `${this.endpoint(i)},unix://${SOCKET}`, '--advertise-client-urls', this.endpoint(i),
      '--listen-peer-urls', peer(m), '--initial-advertise-peer-urls', peer(m),
      '--initial-cluster', initial, '--initial-cluster-token', this.token, '--initial-cluster-state', state,
      '--log-level', 'warn', '--logger', 'zap',
    ], { cwd: m.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => { m.output = (m.output + b.toString()).slice(-4000); };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    m.proc = p;
  }

  /** Waits (bounded) until member i answers /health true over its socket. */
  async healthy(i: number, timeoutMs = 20_000): Promise<void> {
    const m = this.members[i]!;
    const end = Date.now() + timeoutMs;
    for (;;) {
      const p = m.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) throw new Error(`etcd member ${m.name} exited (${p?.exitCode ?? p?.signalCode}):\n${m.output}`);
      if (existsSync(this.socket(i)) && (await healthOver(this.socket(i)))) return;
      if (Date.now() > end) throw new Error(`etcd member ${m.name} not healthy within ${timeoutMs} ms:\n${m.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The index of the leader, asked of the members that answer; -1 when none knows one. */
  async leader(): Promise<number> {
    const ids: (string | null)[] = [];
    let leaderId = '';
    for (let i = 0; i < this.members.length; i++) {
      const s = this.pid(i) && !this.members[i]!.paused ? await gateway(this.socket(i), '/v3/maintenance/status') : null;
      ids.push(s?.header?.member_id ?? null);
      if (s?.leader && s.leader !== '0') leaderId ||= s.leader;
    }
    return leaderId ? ids.indexOf(leaderId) : -1;
  }

  /** Member i's ID (as the member list gives it), asked of member `via`. */
  async memberId(i: number, via: number): Promise<string> {
    const list = await gateway(this.socket(via), '/v3/cluster/member/list');
    const m = (list?.members ?? []).find((x: { name?: string }) => x.name === this.members[i]!.name);
    if (!m) throw new Error(`member ${this.members[i]!.name} not in the member list of m${via}: ${JSON.stringify(list)}`);
    return m.ID as string;
  }

  /** `etcdctl member remove` of member i, asked of member `via`; resolves once i exited (it stops itself). */
  async removeMember(i: number, via: number): Promise<void> {
    const id = await this.memberId(i, via);
    // etcd refuses a removal that leaves fewer members connected than a quorum ("unhealthy
    // cluster") while a member that was just continued or restarted is not connected again yet.
    const end = Date.now() + 15_000;
    for (;;) {
      const r = await gateway(this.socket(via), '/v3/cluster/member/remove', { ID: id }, 5000);
      if (r && !r.error) break;
      if (Date.now() > end || !/unhealthy cluster/.test(r?.error ?? '')) throw new Error(`member remove ${this.members[i]!.name}: ${JSON.stringify(r)}`);
      await new Promise((res) => setTimeout(res, 500));
    }
    const p = this.members[i]!.proc!;
    if (p.exitCode === null && p.signalCode === null) {
      const exited = await Promise.race([new Promise<boolean>((r) => p.once('exit', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000))]);
      if (!exited) throw new Error(`member ${this.members[i]!.name} removed but still running 15 s later:\n${this.members[i]!.output}`);
    }
  }

  /** SIGKILLs member i by PID and waits for it to exit (its data dir stays). */
  async kill(i: number): Promise<void> {
    const p = this.members[i]!.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    if (this.members[i]!.paused) this.resume(i);
    process.kill(p.pid!, 'SIGKILL');
    await exited;
  }

  /** Starts member i again on its data dir and waits until it is healthy. */
  async restart(i: number, timeoutMs = 20_000): Promise<void> {
    if (this.pid(i)) return;
    this.launch(i, 'existing');
    await this.healthy(i, timeoutMs);
  }

  /** SIGSTOP member i and wait until all its threads are stopped. */
  async pause(i: number): Promise<void> {
    this.members[i]!.paused = true;
    await stopProcess(this.pid(i));
  }

  resume(i: number): void {
    const m = this.members[i]!;
    if (!m.paused) return;
    m.paused = false;
    try { process.kill(m.proc!.pid!, 'SIGCONT'); } catch { /* gone */ }
  }

  /** Kills every member by PID (continued first) and removes the data; safe to call twice. */
  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i);
    rmSync(this.dir, { recursive: true, force: true });
    this.undo();
  }

  private destroySync(): void {
    for (const m of this.members) {
      const p = m.proc;
      if (p && p.exitCode === null && p.signalCode === null) try { process.kill(p.pid!, 'SIGKILL'); } catch { /* gone */ }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A lab on a three-member etcd cluster (openEtcdHaLab). */
export interface EtcdHaLab {
  readonly lab: Lab;
  readonly cluster: LabEtcdCluster;
  /** This process's client of the cluster (the members' sockets), the lab's datastore writer. */
  readonly kv: EtcdKv;
  /** Stops every podway and destroys the lab, then closes the client and stops the members (by PID). */
  close(): Promise<void>;
}

/**
 * A lab of `spec` (guarded: gone at exit whatever happens), a three-member cluster in its fabric,
 * healthy, and the lab's datastore on it (useKvDatastore, spec "etcd:" + the members' fabric URLs)
 * through a client of this process. No podway started. A failed open undoes what it made.
 */
export async function openEtcdHaLab(spec: LabNodeSpec[]): Promise<EtcdHaLab> {
  const lab = guard(new Lab(spec));
  let cluster: LabEtcdCluster | null = null;
  let kv: EtcdKv | null = null;
  const close = async (): Promise<void> => {
    await teardown(lab);
    await kv?.close().catch(() => undefined);
    await cluster?.stop();
  };
  try {
    lab.build();
    cluster = new LabEtcdCluster(lab.fabric);
    await cluster.start();
    kv = new EtcdKv({ endpoints: cluster.localEndpoints, timeoutMs: 5000 });
    await lab.useKvDatastore(kv, `etcd:${cluster.endpoints.join(',')}`);
    return { lab, cluster, kv, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The client port of a member's URL (http://10.99.0.254:PORT). */
export function memberPort(url: string): string {
  return url.split(':')[2]!;
}

/**
 * Established TCP connections from node n's namespace to each member, by member port: its
 * podway's (nothing else in that namespace connects to the members).
 */
export function memberConns(n: LabNode): Record<string, number> {
  const by: Record<string, number> = {};
  for (const l of execFileSync('ip', ['netns', 'exec', n.ns, 'ss', '-tnH', 'state', 'established'], { encoding: 'utf8' }).split('\n')) {
    const m = /10\.99\.0\.254:(\d+)/.exec(l); // HOST
    if (m) by[m[1]!] = (by[m[1]!] ?? 0) + 1;
  }
  return by;
}
