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
// included), timed by bench/cni/driver.ts running inside the node namespace, with each process's
// CPU seconds (its children's included) and maximum RSS from GNU time. Afterwards IPAM must be
// consistent (Ipam.check) and hold no address of the bench's network.
// --compare DIR runs a second build's plugin (a checkout with its dist/ and build/, e.g. a copy of
// main's) beside this one on the same node and store: sequential calls alternate between the two,
// parallel rounds take turns (which goes first alternates), so both see the same load. This
// build's plugin runs through the shim `cni install` writes (from its start-up snapshot,
// cni/snapshot.ts); --compare's through a shim running its dist/src/cni/main.js, without one (as
// every build before the snapshot ran).
// --rounds 1 --parallel 30 is the storm of bench/README "A storm on one node".
// --bridge also runs the reference bridge plugin (containernetworking-plugins, as podman's own
// default network: bridge + host-local IPAM, from /usr/lib/cni) on the same node, the same
// sequential calls and parallel rounds, after podway's on the first store: its rows are "bridge".
//
// Usage: node dist/bench/cni/run.js [--seq 40] [--rounds 3] [--parallel 20] [--probes 20]
//                                   [--only embedded,etcd] [--compare DIR] [--bridge] [--json]
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { controlRequest } from '../../src/dataplane/control-server';
import { installCni, shimText } from '../../src/cni/install';
import type { KvStore } from '../../src/control/kv/kv';
import { FileKv } from '../../src/control/kv/file-kv';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { Ipam } from '../../src/control/ipam';
import { HANDLE_PREFIX } from '../../src/control/ipam/keys';
import { applyResource } from '../../src/control/v3-store';
import { LabEtcd } from '../../src/lab/etcd';
import { machineInfo } from '../machine';
import { BenchNamespaces } from '../namespaces';
import { TIME_BINARY } from './driver';
import type { DriverCall, DriverJob, DriverResult, DriverSample } from './driver';
import { benchArgsOrExit } from '../e2e/bench-args';

const BENCH_ARGS = { usage: 'usage: node dist/bench/cni/run.js [--seq N] [--rounds N] [--parallel N] [--probes N] [--only embedded,etcd] [--compare OTHER_CHECKOUT] [--bridge] [--json]', flags: ['--json', '--bridge'], options: ['--seq', '--rounds', '--parallel', '--probes', '--only', '--compare'] };

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DRIVER = path.join(__dirname, 'driver.js');
const NETWORK = 'podway';
const GOAL_FIRST_PACKET_P99_MS = 200;

interface Args { seq: number; rounds: number; parallel: number; probes: number; only: string[]; json: boolean; compare?: string; bridge: boolean }

/** The reference plugins (Debian's containernetworking-plugins), for --bridge. */
const REFERENCE_CNI_DIR = '/usr/lib/cni';

function parseArgs(argv: string[]): Args {
  const args: Args = { seq: 40, rounds: 3, parallel: 20, probes: 20, only: ['embedded', 'etcd'], json: false, bridge: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    // --rounds 0 and --probes 0 leave those parts out.
    const int = (min = 1) => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < min || v > 200) throw new Error(`${a} needs an integer ${min}..200`);
      return v;
    };
    if (a === '--seq') args.seq = int();
    else if (a === '--rounds') args.rounds = int(0);
    else if (a === '--parallel') args.parallel = int();
    else if (a === '--probes') args.probes = int(0);
    else if (a === '--compare') {
      args.compare = path.resolve(argv[++i] ?? '');
      if (!existsSync(path.join(args.compare, 'dist', 'src', 'cni', 'main.js'))) throw new Error(`--compare ${argv[i]}: no dist/src/cni/main.js there (build it first)`);
    }
    else if (a === '--json') args.json = true;
    else if (a === '--bridge') args.bridge = true;
    else if (a === '--only') {
      args.only = (argv[++i] ?? '').split(',').filter(Boolean);
      for (const s of args.only) if (s !== 'embedded' && s !== 'etcd') throw new Error(`--only: unknown store ${JSON.stringify(s)} (embedded, etcd)`);
    } else throw new Error(`unknown argument ${a} (expected --seq N, --rounds N, --parallel N, --probes N, --only embedded,etcd, --compare DIR, --bridge, --json)`);
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
  /** 'this' (this checkout's plugin) or 'compare' (--compare's). */
  readonly build: string;
  readonly scenario: string;
  readonly calls: number;
  readonly failures: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Wall time of each batch of calls (parallel rounds), ms. */
  readonly wallMs?: number[];
  /** CPU seconds per call (the plugin and its children): median and largest. */
  readonly cpuP50S: number;
  readonly cpuMaxS: number;
  /** Maximum resident set per call, MB: median and largest. */
  readonly rssP50Mb: number;
  readonly rssMaxMb: number;
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
  /** The plugins to run: this build's, and --compare's. */
  builds: { name: string; plugin: string }[] = [];

  constructor(readonly store: 'embedded' | 'etcd', private readonly compare?: string) {}

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
    this.builds = [{ name: 'this', plugin: this.plugin }];
    if (this.compare) {
      // The other build's plugin, as `cni install` from that checkout would write it, beside ours.
      const other = path.join(this.binDir, 'podway-compare');
      writeFileSync(other, shimText(process.execPath, path.join(this.compare, 'dist', 'src', 'cni', 'main.js')), { mode: 0o755 });
      this.builds.push({ name: 'compare', plugin: other });
    }
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

  /**
   * The reference bridge plugin's job (--bridge): a bridge of its own in the node namespace, the
   * gateway on it, host-local IPAM on a /20 of its own with its data in the bench's directory.
   */
  bridgeJob(): Pick<DriverJob, 'plugin' | 'cniPath' | 'config'> {
    return {
      plugin: path.join(REFERENCE_CNI_DIR, 'bridge'),
      cniPath: REFERENCE_CNI_DIR,
      config: { cniVersion: '1.0.0', name: 'bench-bridge', type: 'bridge', bridge: `pwbr${this.tag}`, isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.251.0.0/20' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(this.dir, 'host-local') } },
    };
  }

  /** Runs the driver in the node namespace (`as`: another plugin's job, --bridge). */
  drive(calls: DriverCall[], concurrency: number, probe?: DriverJob['probe'], as?: Pick<DriverJob, 'plugin' | 'cniPath' | 'config'>): Promise<DriverResult> {
    const job: DriverJob = { plugin: this.plugin, cniPath: this.binDir, config: this.config, ...as, calls, concurrency, probe, measure: true };
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

const call = (command: 'ADD' | 'DEL', p: { id: string; netns: string }, plugin?: string): DriverCall => ({ command, containerId: p.id, netns: p.netns, ifname: 'eth0', plugin });

function row(store: string, build: string, scenario: string, samples: DriverSample[], wallMs?: number[]): Row {
  const okSamples = samples.filter((s) => s.exitCode === 0);
  const ok = okSamples.map((s) => s.ms);
  const cpu = okSamples.flatMap((s) => (s.cpuS === undefined ? [] : [s.cpuS]));
  const rss = okSamples.flatMap((s) => (s.maxRssKb === undefined ? [] : [s.maxRssKb / 1024]));
  const failed = samples.filter((s) => s.exitCode !== 0);
  return {
    store, build, scenario, calls: samples.length, failures: failed.length,
    p50Ms: percentile(ok, 50), p99Ms: percentile(ok, 99), maxMs: ok.length ? Math.max(...ok) : NaN,
    wallMs, firstFailure: failed[0]?.failure,
    cpuP50S: percentile(cpu, 50), cpuMaxS: cpu.length ? Math.max(...cpu) : NaN,
    rssP50Mb: percentile(rss, 50), rssMaxMb: rss.length ? Math.max(...rss) : NaN,
  };
}

async function benchStore(store: 'embedded' | 'etcd', args: Args, log: (s: string) => void, bridge = false): Promise<{ rows: Row[]; firstPacket: FirstPacket | null; problems: string[] }> {
  const n = new BenchNode(store, args.compare);
  const rows: Row[] = [];
  try {
    await n.start();
    const builds = n.builds;
    log(`[${store}] podway running on ${n.node}; sequential ${args.seq} ADD + DEL${builds.length > 1 ? ' per build, alternating' : ''}`);

    // Sequential: the builds' calls alternate (which goes first alternates too), ADDs then DELs.
    const seqPods = builds.map(() => n.pods(args.seq));
    const order = (i: number) => (i % 2 === 0 ? builds.map((_, b) => b) : builds.map((_, b) => builds.length - 1 - b));
    const interleaved = (command: 'ADD' | 'DEL') => Array.from({ length: args.seq }, (_, i) => order(i).map((b) => call(command, seqPods[b]![i]!, builds[b]!.plugin))).flat();
    const seqAdd = await n.drive(interleaved('ADD'), 1);
    const seqDel = await n.drive(interleaved('DEL'), 1);
    seqPods.forEach((p) => n.dropPods(p));
    const ofBuild = (samples: DriverSample[], b: number) => samples.filter((s) => seqPods[b]!.some((p) => p.id === s.containerId));
    builds.forEach((bd, b) => rows.push(row(store, bd.name, 'ADD, sequential', ofBuild(seqAdd.samples, b)), row(store, bd.name, 'DEL, sequential', ofBuild(seqDel.samples, b))));

    if (args.rounds > 0) log(`[${store}] ${args.rounds} rounds of ${args.parallel} ADDs, then ${args.parallel} DELs, in parallel${builds.length > 1 ? ', each build in turn' : ''}`);
    const par = builds.map(() => ({ add: [] as DriverSample[], del: [] as DriverSample[], addWalls: [] as number[], delWalls: [] as number[] }));
    for (let r = 0; r < args.rounds; r++) {
      for (const b of order(r)) {
        const pods = n.pods(args.parallel);
        const a = await n.drive(pods.map((p) => call('ADD', p, builds[b]!.plugin)), args.parallel);
        const ips = new Set(a.samples.filter((s) => s.ip).map((s) => s.ip));
        if (ips.size !== a.samples.filter((s) => s.exitCode === 0).length) throw new Error(`[${store}] parallel ADDs handed out duplicate addresses`);
        const d = await n.drive(pods.map((p) => call('DEL', p, builds[b]!.plugin)), args.parallel);
        n.dropPods(pods);
        par[b]!.add.push(...a.samples);
        par[b]!.del.push(...d.samples);
        par[b]!.addWalls.push(Math.round(a.wallMs));
        par[b]!.delWalls.push(Math.round(d.wallMs));
      }
    }
    if (args.rounds > 0) builds.forEach((bd, b) => rows.push(row(store, bd.name, `ADD, ${args.parallel} in parallel`, par[b]!.add, par[b]!.addWalls), row(store, bd.name, `DEL, ${args.parallel} in parallel`, par[b]!.del, par[b]!.delWalls)));
    if (bridge) {
      // The reference bridge plugin (no datastore: its rows are the same whatever the store), the
      // same calls on the same node, after podway's.
      log(`[${store}] bridge (${REFERENCE_CNI_DIR}/bridge, host-local): sequential ${args.seq} ADD + DEL${args.rounds > 0 ? `, ${args.rounds} rounds of ${args.parallel} in parallel` : ''}`);
      const job = n.bridgeJob();
      const pods = n.pods(args.seq);
      const add = await n.drive(pods.map((p) => call('ADD', p, job.plugin)), 1, undefined, job);
      const del = await n.drive(pods.map((p) => call('DEL', p, job.plugin)), 1, undefined, job);
      n.dropPods(pods);
      rows.push(row('-', 'bridge', 'ADD, sequential', add.samples), row('-', 'bridge', 'DEL, sequential', del.samples));
      const pa: DriverSample[] = [];
      const pd: DriverSample[] = [];
      const aw: number[] = [];
      const dw: number[] = [];
      for (let r = 0; r < args.rounds; r++) {
        const ps = n.pods(args.parallel);
        const a = await n.drive(ps.map((p) => call('ADD', p, job.plugin)), args.parallel, undefined, job);
        const d = await n.drive(ps.map((p) => call('DEL', p, job.plugin)), args.parallel, undefined, job);
        n.dropPods(ps);
        pa.push(...a.samples);
        pd.push(...d.samples);
        aw.push(Math.round(a.wallMs));
        dw.push(Math.round(d.wallMs));
      }
      if (args.rounds > 0) rows.push(row('-', 'bridge', `ADD, ${args.parallel} in parallel`, pa, aw), row('-', 'bridge', `DEL, ${args.parallel} in parallel`, pd, dw));
    }
    const consistency = async () => {
      const problems = (await new Ipam(n.kv!).check()).map((p) => `${store}: IPAM ${JSON.stringify(p)}`);
      const left = (await n.kv!.list(HANDLE_PREFIX)).entries.map((e) => e.key.slice(HANDLE_PREFIX.length)).filter((h) => h.startsWith(`${NETWORK}.`));
      if (left.length) problems.push(`${store}: ${left.length} handles of the bench's network left after DEL: ${left.slice(0, 3).join(', ')}`);
      return problems;
    };
    if (args.probes === 0) return { rows, firstPacket: null, problems: await consistency() };

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

    return { rows, firstPacket, problems: await consistency() };
  } catch (e) {
    process.stderr.write(`podway log (${store}):\n${n.log.slice(-10).join('\n')}\n`);
    throw e;
  } finally {
    await n.stop();
  }
}

const fmt = (ms: number) => (Number.isNaN(ms) ? '-' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1));
const fmtS = (s: number) => (Number.isNaN(s) ? '-' : s.toFixed(2));

async function main(): Promise<void> {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('bench:cni needs root (network namespaces, veths)');
  if (!existsSync(DRIVER)) throw new Error(`${DRIVER} is missing: run npm run build:ts first`);
  if (args.bridge && !existsSync(path.join(REFERENCE_CNI_DIR, 'bridge'))) throw new Error(`--bridge: ${REFERENCE_CNI_DIR}/bridge is missing (Debian's containernetworking-plugins, which podman depends on)`);
  if (!existsSync(TIME_BINARY)) throw new Error(`${TIME_BINARY} (GNU time, each call's CPU and RSS) is missing: bash scripts/setup.sh installs it`);
  const machine = machineInfo();
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const rows: Row[] = [];
  const firstPackets: FirstPacket[] = [];
  const problems: string[] = [];
  const t0 = Date.now();
  for (const store of args.only as ('embedded' | 'etcd')[]) {
    const r = await benchStore(store, args, log, args.bridge && store === args.only[0]);
    rows.push(...r.rows);
    if (r.firstPacket) firstPackets.push(r.firstPacket);
    problems.push(...r.problems);
  }
  const loadEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  const seconds = Math.round((Date.now() - t0) / 1000);
  if (args.json) {
    process.stdout.write(JSON.stringify({ machine, loadavgEnd: loadEnd, seconds, args, rows, firstPackets, goal: { firstPacketP99Ms: GOAL_FIRST_PACKET_P99_MS }, problems }) + '\n');
  } else {
    const out: string[] = [];
    out.push(`Machine: ${machine.cpu}, ${machine.nproc} vCPUs, kernel ${machine.kernel}, Node ${machine.node}, ${machine.date}; load average ${machine.loadavg.join(' ')} at the start, ${loadEnd.join(' ')} at the end; ${seconds} s.`);
    if (args.compare) out.push('', `Builds: this = ${ROOT}, compare = ${args.compare}.`);
    out.push('', 'Plugin process as the runtime sees it (spawn to exit), ms; its CPU seconds (with its children) and max RSS:', '');
    out.push('| store | build | calls | n | failed | p50 ms | p99 ms | max ms | CPU-s p50 | CPU-s max | RSS MB p50 | wall per batch |', '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const r of rows) out.push(`| ${r.store} | ${r.build} | ${r.scenario} | ${r.calls} | ${r.failures} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${fmt(r.maxMs)} | ${fmtS(r.cpuP50S)} | ${fmtS(r.cpuMaxS)} | ${Number.isNaN(r.rssP50Mb) ? '-' : r.rssP50Mb.toFixed(0)} | ${r.wallMs ? r.wallMs.join(', ') : ''} |`);
    if (firstPackets.length > 0) out.push('', `ADD's return -> first forwarded packet (first echo reply from the new pod, this build), ms; goal p99 <= ${GOAL_FIRST_PACKET_P99_MS}:`, '');
    if (firstPackets.length > 0) out.push('| store | pods | answered | p50 | p99 | max | goal |', '|---|---:|---:|---:|---:|---:|---|');
    for (const f of firstPackets) out.push(`| ${f.store} | ${f.probes} | ${f.answered} | ${fmt(f.p50Ms)} | ${fmt(f.p99Ms)} | ${fmt(f.maxMs)} | ${f.answered === f.probes && f.p99Ms <= GOAL_FIRST_PACKET_P99_MS ? 'met' : 'NOT met'} |`);
    for (const r of rows) if (r.firstFailure) out.push('', `first failure (${r.store}, ${r.build}, ${r.scenario}): ${r.firstFailure}`);
    out.push('', problems.length ? `Problems after the runs:\n${problems.join('\n')}` : 'After the runs: IPAM consistent, no address of the bench network held.');
    process.stdout.write(out.join('\n') + '\n');
  }
  if (problems.length || rows.some((r) => r.failures > 0)) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`bench:cni: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
