/**
 * A real etcd (Debian's etcd-server, /usr/bin/etcd) inside a lab's network namespace, for the
 * demo and the cluster tests: the nodes reach it on the namespace's address (the lab's fabric
 * bridge, 10.99.0.254), and this process, which stays in the root namespace, reaches it through a
 * unix socket in the etcd's own directory (a file: namespaces do not hide it). Its data lives in a
 * temporary directory; kill() and start() keep it (a crash and a restart), stop() removes it.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export const ETCD_BINARY = '/usr/bin/etcd';

/** A clear error, with the setup step, when Debian's etcd is not installed. */
export function requireEtcdBinary(): void {
  if (!existsSync(ETCD_BINARY)) {
    throw new Error(`${ETCD_BINARY} is missing: run \`bash scripts/setup.sh\` (as root), which installs Debian's etcd-server`);
  }
}

/**
 * etcd's arguments for a one-member cluster `name` storing in `dataDir`: clients served on
 * `listenClients` and told `client`, the member's peer URL `peer`; warnings only, zap logger.
 * (The lab's etcd and the test helper's loopback etcd both start this way.)
 */
export function singleMemberArgs(name: string, dataDir: string, listenClients: string, client: string, peer: string): string[] {
  return [
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', listenClients,
    '--advertise-client-urls', client,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `${name}=${peer}`,
    '--log-level', 'warn',
    '--logger', 'zap',
  ];
}
const HEALTHY_WITHIN_MS = 20_000;

/** A host as a URL spells it: an IPv6 address in brackets (http://[fd99::fe]:2379). */
const urlHost = (host: string): string => (host.includes(':') ? `[${host}]` : host);
/** etcd wants HOST:PORT in a unix listen URL and names the socket file after it, in its cwd. */
const SOCKET_NAME = 'etcd.sock:0';

export interface LabEtcdOptions {
  /** Network namespace etcd runs in. */
  readonly netns: string;
  /** An address of that namespace to listen on, for clients (port 2379) and its peer port (2380); IPv6 too. */
  readonly host: string;
  readonly clientPort?: number;
  readonly peerPort?: number;
}

const running = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

/** Asks etcd's /health over its unix socket: true when it answers healthy, false otherwise (within about 1 s). */
export function healthOver(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/health', timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(/"health":\s*"true"/.test(body)));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

export class LabEtcd {
  /** What the nodes use: http://HOST:PORT inside the namespace. */
  readonly endpoint: string;
  /** What this process uses (EtcdKv accepts it as an endpoint): unix:PATH. */
  readonly localEndpoint: string;
  readonly dataDir: string;
  private readonly dir: string;
  private readonly socketPath: string;
  private proc: ChildProcess | undefined;
  private output = '';

  private constructor(private readonly opts: LabEtcdOptions) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'podway-lab-etcd-'));
    dirs.add(this.dir);
    this.dataDir = path.join(this.dir, 'data');
    this.socketPath = path.join(this.dir, SOCKET_NAME);
    this.endpoint = `http://${urlHost(opts.host)}:${opts.clientPort ?? 2379}`;
    this.localEndpoint = `unix:${this.socketPath}`;
  }

  /** Starts etcd in `netns` and waits until it answers; a clear error if etcd is not installed. */
  static async start(opts: LabEtcdOptions): Promise<LabEtcd> {
    requireEtcdBinary();
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => {
        for (const p of running) if (p.pid) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
      });
    }
    const etcd = new LabEtcd(opts);
    mkdirSync(etcd.dataDir, { mode: 0o700 });
    try {
      await etcd.start();
    } catch (e) {
      await etcd.stop();
      throw e;
    }
    return etcd;
  }

  /** PID of the running etcd (`ip netns exec` execs it, so it is etcd's own); 0 when not running. */
  pid(): number {
    return this.alive() ? this.proc!.pid! : 0;
  }

  alive(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The last lines etcd printed (warnings and errors). */
  log(): string {
    return this.output;
  }

  /** Starts etcd (again) on its data dir and waits until it is healthy. */
  async start(): Promise<void> {
    if (this.alive()) return;
    const { netns, host } = this.opts;
    const client = this.endpoint;
    const peer = `http://${urlHost(host)}:${this.opts.peerPort ?? 2380}`;
    const name = 'podway-lab';
    // A SIGKILLed etcd leaves its socket file behind, and etcd will not bind over it.
    rmSync(this.socketPath, { force: true });
    this.output = '';
    const p = spawn('ip', [
      'netns', 'exec', netns, ETCD_BINARY, ...singleMemberArgs(name, this.dataDir, `${client},unix://${SOCKET_NAME}`, client, peer),
    ], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => { this.output = (this.output + b.toString()).slice(-4000); };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    running.add(p);
    p.once('exit', () => running.delete(p));
    this.proc = p;
    const deadline = Date.now() + HEALTHY_WITHIN_MS;
    for (;;) {
      if (p.exitCode !== null || p.signalCode !== null) {
        throw new Error(`etcd exited (${p.exitCode ?? p.signalCode}) before it was healthy:\n${this.output}`);
      }
      if (existsSync(this.socketPath) && (await healthOver(this.socketPath))) return;
      if (Date.now() > deadline) throw new Error(`etcd at ${client} (netns ${netns}) not healthy within ${HEALTHY_WITHIN_MS} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGKILLs etcd by PID and waits for it to exit (the data dir stays). */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || !this.alive()) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    process.kill(p.pid!, 'SIGKILL');
    await exited;
  }

  /** For synchronous cleanup (Lab.destroy, exit): SIGKILL by PID without waiting, remove the directory. */
  destroySync(): void {
    if (this.alive()) try { process.kill(this.proc!.pid!, 'SIGKILL'); } catch { /* gone */ }
    rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }

  /** Kills etcd and removes its directory (data and socket). */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }
}
