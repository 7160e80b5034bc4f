// Start-up time of podway's processes (`sudo npm run bench:startup`; see "Start-up time" in
// bench/README.md). Every scenario is a fresh process, timed from spawn to the moment that counts:
//   help         `podway --help`, to exit
//   status       `podway status` with no podway running (exit 1, "not running"), to exit
//   get          `podway get ippools` on an embedded store (a datastore command), to exit
//   cni-version  the CNI plugin's VERSION (the compiled plugin, as the shim runs it), to exit
//   cni-add      the plugin's ADD of a pod on the embedded store, to exit (root: namespaces)
//   cni-del      the plugin's DEL of that pod, to exit
//   run-socket   `podway run` on the embedded store until its control socket answers `status`
//                (the early, "starting" answer) (root)
//   run-ready    the same run until a plain `status` answers: the engine runs, forwarding
// The scenarios take turns, round after round, so a change in the machine's load spreads over all.
// Prints a markdown table of median (min-max) ms per scenario and the machine; --json for one object.
//
// --compare DIR times a second build (a checkout with its bin/, dist/ and build/, e.g. a copy of the
// build before a change) in the same rounds, each scenario on both builds one after the other: a
// before/after figure only means something measured this way, under the same load.
//
// Usage: node dist/bench/startup.js [--runs 5] [--only help,status,...] [--compare DIR] [--json]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { controlRequest } from '../src/dataplane/control-client';
import { installCni } from '../src/cni/install';
import { FileKv } from '../src/control/kv/file-kv';
import { applyResource } from '../src/control/v3-store';
import { registerNode } from '../src/control/node-registration';
import { machineInfo } from './machine';
import { BenchNamespaces } from './namespaces';
import { benchArgsOrExit, compareCheckout, intOption, type BenchArgs } from './e2e/bench-args';
import { median } from './stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/startup.js [--runs N] [--only SCENARIO[,SCENARIO...]] [--compare OTHER_CHECKOUT] [--json]', flags: ['--json'], options: ['--runs', '--compare', '--only'] };

const ROOT = path.resolve(__dirname, '..', '..');

/** A build to time: its podway CLI and its compiled CNI plugin. */
interface Build { readonly label: string; readonly bin: string; readonly plugin: string }
const buildAt = (label: string, root: string): Build => ({ label, bin: path.join(root, 'bin', 'podway.js'), plugin: path.join(root, 'dist', 'src', 'cni', 'main.js') });
const SCENARIOS = ['help', 'status', 'get', 'cni-version', 'cni-add', 'cni-del', 'run-socket', 'run-ready'] as const;
type Scenario = (typeof SCENARIOS)[number];
const NEEDS_ROOT: ReadonlySet<Scenario> = new Set(['cni-add', 'cni-del', 'run-socket', 'run-ready']);

interface Args { runs: number; only: Scenario[]; json: boolean; compare?: string }

function parseArgs(args: BenchArgs): Args {
  let only: Scenario[] = [...SCENARIOS];
  const o = args.opt('--only');
  if (o !== undefined) {
    const names = o.split(',').filter(Boolean);
    for (const n of names) if (!(SCENARIOS as readonly string[]).includes(n)) throw new Error(`--only: unknown scenario ${JSON.stringify(n)} (${SCENARIOS.join(', ')})`);
    only = names as Scenario[];
  }
  return { runs: intOption(args, '--runs', 5, 1, 100), only, json: args.has('--json'), compare: compareCheckout(args, path.join('bin', 'podway.js')) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint()) / 1e6;

/** Spawns cmd and resolves with spawn-to-exit ms and the exit code; a run over 60 s is killed. */
function timed(cmd: string, argv: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<{ ms: number; code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(cmd, argv, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ms: now() - t0, code, out, err });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** A node namespace with an underlay veth (10.99.0.1/24), an embedded store with a pool and this node, and the plugin installed. */
class StartupLab {
  readonly tag = Math.random().toString(16).slice(2, 8);
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'podway-bench-startup-'));
  readonly node = `bench-startup-${this.tag}`;
  readonly nodeNs = `pw-bsu-node-${this.tag}`;
  readonly upNs = `pw-bsu-up-${this.tag}`;
  readonly storeDir = path.join(this.dir, 'store');
  readonly control = path.join(this.dir, 'podway.sock');
  private readonly namespaces = new BenchNamespaces();
  private pods = 0;
  config!: Record<string, unknown>;


  async start(withNamespaces: boolean): Promise<void> {
    const kv = new FileKv({ dir: this.storeDir });
    try {
      await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `bench-${this.tag}` }, spec: { cidr: '10.250.0.0/22', blockSize: 26, vxlanMode: 'Never', ipipMode: 'Never' } });
      await registerNode(kv, { name: this.node, ipv4Address: '10.99.0.1/24' });
    } finally {
      await kv.close();
    }
    if (!withNamespaces) return;
    this.namespaces.uplink(this.nodeNs, this.upNs);
    const done = installCni({ binDir: path.join(this.dir, 'bin'), confDir: path.join(this.dir, 'net.d'), datastore: `embedded:${this.storeDir}`, node: this.node, name: 'podway', control: this.control, env: {} });
    const list = JSON.parse(readFileSync(done.conflist, 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    this.config = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
  }

  /** A new pod namespace (made before timing, as a runtime does). */
  pod(): { ns: string; id: string } {
    const n = ++this.pods;
    return { ns: this.namespaces.add(`pw-bsu-pod${n}-${this.tag}`), id: `bench-startup-${this.tag}-${n}` };
  }

  /** The plugin as a runtime runs it: inside the node namespace, CNI_* only, the config on stdin. */
  cni(b: Build, command: string, pod?: { ns: string; id: string }) {
    const env: NodeJS.ProcessEnv = { CNI_COMMAND: command, CNI_PATH: path.join(this.dir, 'bin'), PATH: process.env.PATH };
    if (pod) Object.assign(env, { CNI_CONTAINERID: pod.id, CNI_NETNS: `/run/netns/${pod.ns}`, CNI_IFNAME: 'eth0' });
    return timed('ip', ['netns', 'exec', this.nodeNs, process.execPath, b.plugin], { env, stdin: JSON.stringify(this.config) });
  }

  /** `podway run` from spawn until its control socket answers (starting) and until it runs (ready); then SIGTERM. */
  async run(b: Build): Promise<{ socket: number; ready: number }> {
    const t0 = now();
    const p = spawn('ip', ['netns', 'exec', this.nodeNs, process.execPath, b.bin, 'run', '--node', this.node, '--datastore', `embedded:${this.storeDir}`, '--ip', '10.99.0.1/24', '--control', this.control], { stdio: ['ignore', 'ignore', 'pipe'] });
    const log: string[] = [];
    p.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(...d.split('\n').filter(Boolean).slice(-5)));
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    const ask = (req: object) => existsSync(this.control) ? controlRequest(this.control, req, 1000).then(() => true, () => false) : Promise.resolve(false);
    try {
      const until = async (req: object): Promise<number> => {
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          if (p.exitCode !== null) throw new Error(`podway run exited (${p.exitCode}): ${log.slice(-5).join(' | ')}`);
          if (await ask(req)) return now() - t0;
          await sleep(5);
        }
        throw new Error(`podway run did not answer ${JSON.stringify(req)} within 30 s: ${log.slice(-5).join(' | ')}`);
      };
      const socket = await until({ cmd: 'status', starting: true });
      const ready = await until({ cmd: 'status' });
      return { socket, ready };
    } finally {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGTERM');
        if (!(await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]))) p.kill('SIGKILL');
        await exited;
      }
    }
  }

  cleanup(): void {
    this.namespaces.removeAll();
    rmSync(this.dir, { recursive: true, force: true });
  }
}


async function main(): Promise<void> {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  const args = parseArgs(benchArgsOrExit(process.argv.slice(2), BENCH_ARGS));
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const only = args.only.filter((s) => {
    if (NEEDS_ROOT.has(s) && !root) process.stderr.write(`${s}: skipped (needs root)\n`);
    return !NEEDS_ROOT.has(s) || root;
  });
  const builds = [buildAt('this', ROOT), ...(args.compare ? [buildAt('compare', args.compare)] : [])];
  const lab = new StartupLab();
  const samples = new Map<string, number[]>();
  const key = (s: Scenario, b: Build) => `${s}\0${b.label}`;
  for (const s of only) for (const b of builds) samples.set(key(s, b), []);
  const before = machineInfo();
  try {
    await lab.start(only.some((s) => NEEDS_ROOT.has(s)));
    const none = path.join(lab.dir, 'none.sock');
    const expect = (what: string, r: { ms: number; code: number | null; out: string; err: string }, code = 0) => {
      if (r.code !== code) throw new Error(`${what}: exit ${r.code} (expected ${code}): ${r.out}${r.err}`);
      return r.ms;
    };
    for (let round = 0; round < args.runs; round++) {
      for (const s of only) {
        // Alternate which build goes first, so neither always follows the other.
        for (const b of round % 2 ? [...builds].reverse() : builds) {
          const add = (scenario: Scenario, ms: number) => samples.get(key(scenario, b))?.push(ms);
          if (s === 'help') add(s, expect(s, await timed(process.execPath, [b.bin, '--help'])));
          else if (s === 'status') add(s, expect(s, await timed(process.execPath, [b.bin, 'status', '--control', none]), 1));
          else if (s === 'get') add(s, expect(s, await timed(process.execPath, [b.bin, 'get', 'ippools', '--datastore', `embedded:${lab.storeDir}`])));
          else if (s === 'cni-version') add(s, expect(s, await timed(process.execPath, [b.plugin], { env: { CNI_COMMAND: 'VERSION', PATH: process.env.PATH }, stdin: '{"cniVersion":"1.1.0"}' })));
          else if (s === 'cni-add' || (s === 'cni-del' && !only.includes('cni-add'))) {
            // ADD then DEL of one pod: both scenarios come from the same pair of calls.
            const pod = lab.pod();
            add('cni-add', expect('cni-add', await lab.cni(b, 'ADD', pod)));
            add('cni-del', expect('cni-del', await lab.cni(b, 'DEL', pod)));
          } else if (s === 'run-socket' || (s === 'run-ready' && !only.includes('run-socket'))) {
            const r = await lab.run(b);
            add('run-socket', r.socket);
            add('run-ready', r.ready);
          }
        }
      }
    }
  } finally {
    lab.cleanup();
  }
  const after = machineInfo();
  const rows = only.flatMap((s) => builds.map((b) => {
    const xs = samples.get(key(s, b))!;
    return { scenario: s, build: b.label, n: xs.length, medianMs: Number(median(xs).toFixed(1)), minMs: Number(Math.min(...xs).toFixed(1)), maxMs: Number(Math.max(...xs).toFixed(1)) };
  }));
  if (args.json) {
    process.stdout.write(JSON.stringify({ machine: before, loadAfter: after.loadavg, runs: args.runs, compare: args.compare ?? null, rows }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`${before.date}, ${before.cpu}, ${before.nproc} vCPUs, kernel ${before.kernel}, Node ${before.node}; load ${before.loadavg.join(' ')} before, ${after.loadavg.join(' ')} after\n\n`);
  process.stdout.write('| scenario | build | n | median ms | min-max ms |\n|---|---|---:|---:|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.scenario} | ${r.build} | ${r.n} | ${r.medianMs} | ${r.minMs}-${r.maxMs} |\n`);
}

main().catch((e) => {
  process.stderr.write(`bench startup: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
