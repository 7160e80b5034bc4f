// CNI plugin benchmark (`sudo npm run bench:cni`; see "CNI plugin" in bench/README.md).
//
// On one node namespace with `podway run` forwarding (underlay veth to an uplink namespace), the
// plugin installed by installCni (the shim a runtime executes) and a pool of its own, for the
// embedded store and for a real etcd (in the uplink namespace, reached over the underlay):
//   1. ADD and DEL latency, sequential: --seq pods, one call at a time;
//   2. ADD and DEL latency, 20 in parallel: --rounds rounds of --parallel calls started together;
//   3. ADD's return -> first forwarded packet: --probes pods added one at a time, each pinged
//      right after its ADD returns from a pod already attached (the first echo reply's arrival).
// Latency is the plugin's whole process as the runtime sees it (spawn to exit, node's start-up
// included), timed by bench/cni/driver.ts running inside the node namespace. Afterwards IPAM must
// be consistent (Ipam.check) and hold no address of the bench's network.
//
// Usage: node dist/bench/cni/run.js [--seq 40] [--rounds 3] [--parallel 20] [--probes 20]
//                                   [--only embedded,etcd] [--json]
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { controlRequest } from '../../src/dataplane/control-server';
import { installCni } from '../../src/cni/install';
import type { KvStore } from '../../src/control/kv/kv';
import { FileKv } from '../../src/control/kv/file-kv';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { Ipam } from '../../src/control/ipam';
import { HANDLE_PREFIX } from '../../src/control/ipam/keys';
import { applyResource } from '../../src/control/v3-store';
import { LabEtcd } from '../../src/lab/etcd';
import { machineInfo } from '../machine';
import { BenchNamespaces } from '../namespaces';
import type { DriverCall, DriverJob, DriverResult, DriverSample } from './driver';
import { benchArgsOrExit } from '../e2e/bench-args';

const BENCH_ARGS = { usage: 'usage: node dist/bench/cni/run.js [--seq N] [--rounds N] [--parallel N] [--probes N] [--only embedded,etcd] [--json]', flags: ['--json'], options: ['--seq', '--rounds', '--parallel', '--probes', '--only'] };

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DRIVER = path.join(__dirname, 'driver.js');
const NETWORK = 'podway';
const GOAL_FIRST_PACKET_P99_MS = 200;

interface Args { seq: number; rounds: number; parallel: number; probes: number; only: string[]; json: boolean }

function parseArgs(argv: string[]): Args {
  const args: Args = { seq: 40, rounds: 3, parallel: 20, probes: 20, only: ['embedded', 'etcd'], json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const int = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0 || v > 200) throw new Error(`${a} needs an integer 1..200`);
      return v;
    };
    if (a === '--seq') args.seq = int();
    else if (a === '--rounds') args.rounds = int();
    else if (a === '--parallel') args.parallel = int();
    else if (a === '--probes') args.probes = int();
    else if (a === '--json') args.json = true;
    else if (a === '--only') {
      args.only = (argv[++i] ?? '').split(',').filter(Boolean);
      for (const s of args.only) if (s !== 'embedded' && s !== 'etcd') throw new Error(`--only: unknown store ${JSON.stringify(s)} (embedded, etcd)`);
    } else throw new Error(`unknown argument ${a} (expected --seq N, --rounds N, --parallel N, --probes N, --only embedded,etcd, --json)`);
  }
  return args;
}

/** Nearest-rank percentile. */
function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  readonly store: string;
  readonly scenario: string;
  readonly calls: number;
  readonly failures: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Wall time of each batch of calls (parallel rounds), ms. */
  readonly wallMs?: number[];
  readonly firstFailure?: string;
}

interface FirstPacket { readonly store: string; readonly probes: number; readonly answered: number; readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number }

/** One node namespace with podway running on `store`, the plugin installed, and pod namespaces made on demand. */
class BenchNode {
  readonly tag = Math.random().toString(16).slice(2, 8);
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'podway-bench-cni-'));
  readonly node = `bench-cni-${this.tag}`;
  readonly nodeNs = `pw-bcni-node-${this.tag}`;
  readonly upNs = `pw-bcni-up-${this.tag}`;
  private readonly namespaces = new BenchNamespaces();
  private podway: ChildProcess | null = null;
  private etcd: LabEtcd | null = null;
  kv: KvStore | null = null;
  private podCount = 0;
  /** podway's control socket. */
  control = '';
  readonly log: string[] = [];
  config!: Record<string, unknown>;
  plugin!: string;
  binDir = path.join(this.dir, 'bin');

  constructor(readonly store: 'embedded' | 'etcd') {}

  async start(): Promise<void> {
    this.namespaces.uplink(this.nodeNs, this.upNs);
    sh('ip', ['-n', this.nodeNs, 'route', 'add', 'default', 'via', '10.99.0.254']);
    let spec: string;
    if (this.store === 'etcd') {
      this.etcd = await LabEtcd.start({ netns: this.upNs, host: '10.99.0.254' });
      this.kv = new EtcdKv({ endpoints: [this.etcd.localEndpoint], timeoutMs: 5000 });
      spec = `etcd:${this.etcd.endpoint}`;
    } else {
      const storeDir = path.join(this.dir, 'store');
      this.kv = new FileKv({ dir: storeDir });
      spec = `embedded:${storeDir}`;
    }
    // /20 in /26 blocks: room for every pod of the largest batch, and then some.
    await applyResource(this.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `bench-${this.tag}` }, spec: { cidr: '10.250.0.0/20', blockSize: 26, vxlanMode: 'Never', ipipMode: 'Never' } });
    const control = path.join(this.dir, 'podway.sock');
    this.podway = spawn('ip', ['netns', 'exec', this.nodeNs, process.execPath, path.join(ROOT, 'bin', 'podway.js'), 'run', '--node', this.node, '--datastore', spec, '--ip', '10.99.0.1/24', '--control', control, '--model-cache', path.join(this.dir, 'model.json'), '--cni-pending-del-dir', path.join(this.dir, 'pending-del')], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.podway.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.log.push(...d.split('\n').filter(Boolean));
      if (this.log.length > 200) this.log.splice(0, this.log.length - 200);
    });
    const end = Date.now() + 30_000;
    for (;;) {
      if (this.podway.exitCode !== null) throw new Error(`podway run exited (${this.podway.exitCode}): ${this.log.slice(-5).join(' | ')}`);
      if (existsSync(control)) {
        try {
          await controlRequest(control, { cmd: 'status' }, 1000);
          break;
        } catch {
          /* not yet */
        }
      }
      if (Date.now() > end) throw new Error(`podway run did not come up in 30 s: ${this.log.slice(-5).join(' | ')}`);
      await sleep(100);
    }
    this.control = control;
    const done = installCni({ binDir: this.binDir, confDir: path.join(this.dir, 'net.d'), datastore: spec, node: this.node, name: NETWORK, env: {},
      // the bench's own IPAM lock and DEL spool, not the machine's
      ipamLockFile: path.join(this.dir, 'run', 'ipam.lock'), pendingDelDir: path.join(this.dir, 'pending-del') });
    const conflist = JSON.parse(readFileSync(done.conflist, 'utf8')) as { name: string; plugins: Record<string, unknown>[] };
    this.plugin = done.plugin;
    this.config = { cniVersion: '1.0.0', name: conflist.name, ...conflist.plugins[0] };
  }

  /** `n` fresh pod namespaces (made before any timing: the runtime makes them before ADD). */
  pods(n: number): { id: string; netns: string }[] {
    return Array.from({ length: n }, () => {
      const k = this.podCount++;
      const ns = this.namespaces.add(`pw-bcni-p${k}-${this.tag}`);
      return { id: `bench${this.tag}${String(k).padStart(4, '0')}`, netns: `/run/netns/${ns}` };
    });
  }

  /** Drops pod namespaces (after their DEL). */
  dropPods(pods: { netns: string }[]): void {
    for (const p of pods) this.namespaces.drop(path.basename(p.netns));
  }

  /** Runs the driver in the node namespace. */
  drive(calls: DriverCall[], concurrency: number, probe?: DriverJob['probe']): Promise<DriverResult> {
    const job: DriverJob = { plugin: this.plugin, cniPath: this.binDir, config: this.config, calls, concurrency, probe };
    return new Promise((resolve, reject) => {
      const p = spawn('ip', ['netns', 'exec', this.nodeNs, process.execPath, DRIVER], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      p.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const timer = setTimeout(() => p.kill('SIGKILL'), 600_000);
      p.on('close', (code) => {
        clearTimeout(timer);
        if (code !== 0) reject(new Error(`driver exited ${code}: ${err.trim()}`));
        else resolve(JSON.parse(out) as DriverResult);
      });
      p.stdin!.end(JSON.stringify(job));
    });
  }

  async endpoints(): Promise<{ interface: string }[]> {
    return (await controlRequest(this.control, { cmd: 'endpoints' }, 5000)) as { interface: string }[];
  }

  async stop(): Promise<void> {
    const p = this.podway;
    this.podway = null;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]))) p.kill('SIGKILL');
    }
    await this.kv?.close().catch(() => undefined);
    await this.etcd?.stop().catch(() => undefined);
    this.namespaces.removeAll();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const call = (command: 'ADD' | 'DEL', p: { id: string; netns: string }): DriverCall => ({ command, containerId: p.id, netns: p.netns, ifname: 'eth0' });

function row(store: string, scenario: string, samples: DriverSample[], wallMs?: number[]): Row {
  const ok = samples.filter((s) => s.exitCode === 0).map((s) => s.ms);
  const failed = samples.filter((s) => s.exitCode !== 0);
  return {
    store, scenario, calls: samples.length, failures: failed.length,
    p50Ms: percentile(ok, 50), p99Ms: percentile(ok, 99), maxMs: ok.length ? Math.max(...ok) : NaN,
    wallMs, firstFailure: failed[0]?.failure,
  };
}

async function benchStore(store: 'embedded' | 'etcd', args: Args, log: (s: string) => void): Promise<{ rows: Row[]; firstPacket: FirstPacket; problems: string[] }> {
  const n = new BenchNode(store);
  const rows: Row[] = [];
  try {
    await n.start();
    log(`[${store}] podway running on ${n.node}; sequential ${args.seq} ADD + DEL`);

    const seqPods = n.pods(args.seq);
    const seqAdd = await n.drive(seqPods.map((p) => call('ADD', p)), 1);
    const seqDel = await n.drive(seqPods.map((p) => call('DEL', p)), 1);
    n.dropPods(seqPods);
    rows.push(row(store, 'ADD, sequential', seqAdd.samples), row(store, 'DEL, sequential', seqDel.samples));

    log(`[${store}] ${args.rounds} rounds of ${args.parallel} ADDs, then ${args.parallel} DELs, in parallel`);
    const parAdd: DriverSample[] = [];
    const parDel: DriverSample[] = [];
    const addWalls: number[] = [];
    const delWalls: number[] = [];
    for (let r = 0; r < args.rounds; r++) {
      const pods = n.pods(args.parallel);
      const a = await n.drive(pods.map((p) => call('ADD', p)), args.parallel);
      const ips = new Set(a.samples.filter((s) => s.ip).map((s) => s.ip));
      if (ips.size !== a.samples.filter((s) => s.exitCode === 0).length) throw new Error(`[${store}] parallel ADDs handed out duplicate addresses`);
      const d = await n.drive(pods.map((p) => call('DEL', p)), args.parallel);
      n.dropPods(pods);
      parAdd.push(...a.samples);
      parDel.push(...d.samples);
      addWalls.push(Math.round(a.wallMs));
      delWalls.push(Math.round(d.wallMs));
    }
    rows.push(row(store, `ADD, ${args.parallel} in parallel`, parAdd, addWalls), row(store, `DEL, ${args.parallel} in parallel`, parDel, delWalls));

    log(`[${store}] ADD -> first forwarded packet, ${args.probes} pods`);
    const [prober] = n.pods(1);
    const pa = await n.drive([call('ADD', prober)], 1);
    if (pa.samples[0].exitCode !== 0) throw new Error(`[${store}] prober ADD failed: ${pa.samples[0].failure}`);
    const hostIf = async () => (await n.endpoints()).length > 0;
    const end = Date.now() + 15_000;
    while (!(await hostIf()) && Date.now() < end) await sleep(50);
    // One unmeasured probe: the prober's own first packets resolve its gateway (proxy ARP).
    const warm = n.pods(1);
    await n.drive(warm.map((p) => call('ADD', p)), 1, { fromNetns: prober.netns, timeoutS: 10 });
    const probePods = n.pods(args.probes);
    const probed = await n.drive(probePods.map((p) => call('ADD', p)), 1, { fromNetns: prober.netns, timeoutS: 5 });
    const all = [prober, ...warm, ...probePods];
    await n.drive(all.map((p) => call('DEL', p)), 1);
    n.dropPods(all);
    const fp = probed.samples.map((s) => s.firstPacketMs).filter((x): x is number => typeof x === 'number');
    const firstPacket: FirstPacket = { store, probes: probed.samples.length, answered: fp.length, p50Ms: percentile(fp, 50), p99Ms: percentile(fp, 99), maxMs: fp.length ? Math.max(...fp) : NaN };

    const problems = (await new Ipam(n.kv!).check()).map((p) => `${store}: IPAM ${JSON.stringify(p)}`);
    const left = (await n.kv!.list(HANDLE_PREFIX)).entries.map((e) => e.key.slice(HANDLE_PREFIX.length)).filter((h) => h.startsWith(`${NETWORK}.`));
    if (left.length) problems.push(`${store}: ${left.length} handles of the bench's network left after DEL: ${left.slice(0, 3).join(', ')}`);
    return { rows, firstPacket, problems };
  } catch (e) {
    process.stderr.write(`podway log (${store}):\n${n.log.slice(-10).join('\n')}\n`);
    throw e;
  } finally {
    await n.stop();
  }
}

const fmt = (ms: number) => (Number.isNaN(ms) ? '-' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

async function main(): Promise<void> {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('bench:cni needs root (network namespaces, veths)');
  if (!existsSync(DRIVER)) throw new Error(`${DRIVER} is missing: run npm run build:ts first`);
  const machine = machineInfo();
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const rows: Row[] = [];
  const firstPackets: FirstPacket[] = [];
  const problems: string[] = [];
  const t0 = Date.now();
  for (const store of args.only as ('embedded' | 'etcd')[]) {
    const r = await benchStore(store, args, log);
    rows.push(...r.rows);
    firstPackets.push(r.firstPacket);
    problems.push(...r.problems);
  }
  const loadEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  const seconds = Math.round((Date.now() - t0) / 1000);
  if (args.json) {
    process.stdout.write(JSON.stringify({ machine, loadavgEnd: loadEnd, seconds, args, rows, firstPackets, goal: { firstPacketP99Ms: GOAL_FIRST_PACKET_P99_MS }, problems }) + '\n');
  } else {
    const out: string[] = [];
    out.push(`Machine: ${machine.cpu}, ${machine.nproc} vCPUs, kernel ${machine.kernel}, Node ${machine.node}, ${machine.date}; load average ${machine.loadavg.join(' ')} at the start, ${loadEnd.join(' ')} at the end; ${seconds} s.`);
    out.push('', 'Plugin process as the runtime sees it (spawn to exit), ms:', '');
    out.push('| store | calls | n | failed | p50 | p99 | max | wall per batch |', '|---|---|---:|---:|---:|---:|---:|---|');
    for (const r of rows) out.push(`| ${r.store} | ${r.scenario} | ${r.calls} | ${r.failures} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${fmt(r.maxMs)} | ${r.wallMs ? r.wallMs.join(', ') : ''} |`);
    out.push('', `ADD's return -> first forwarded packet (first echo reply from the new pod), ms; goal p99 <= ${GOAL_FIRST_PACKET_P99_MS}:`, '');
    out.push('| store | pods | answered | p50 | p99 | max | goal |', '|---|---:|---:|---:|---:|---:|---|');
    for (const f of firstPackets) out.push(`| ${f.store} | ${f.probes} | ${f.answered} | ${fmt(f.p50Ms)} | ${fmt(f.p99Ms)} | ${fmt(f.maxMs)} | ${f.answered === f.probes && f.p99Ms <= GOAL_FIRST_PACKET_P99_MS ? 'met' : 'NOT met'} |`);
    for (const r of rows) if (r.firstFailure) out.push('', `first failure (${r.store}, ${r.scenario}): ${r.firstFailure}`);
    out.push('', problems.length ? `Problems after the runs:\n${problems.join('\n')}` : 'After the runs: IPAM consistent, no address of the bench network held.');
    process.stdout.write(out.join('\n') + '\n');
  }
  if (problems.length || rows.some((r) => r.failures > 0)) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`bench:cni: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
