// `podway counters` against a running `podway run` (`npm run bench:counters`, root; see "podway
// counters at load" in bench/README.md). A two-node lab (veth pods in a natOutgoing VXLAN pool, an
// outside namespace), so each node holds podway's nft tables: `ip podway` (natOutgoing), `inet
// podway` (the pod guard) and `inet podway_tunnels`. Each sample is a fresh `podway counters`
// process (what an operator runs), timed from spawn to exit, at least NFT_COUNTERS_MAX_AGE_MS
// after the node's last request (its cached nft figures too old: a new nft run); then the control
// request alone (controlRequest from this process: the node's side of it) right after it (warm:
// within the cache's age) and again after the age (cold). Per round also the nft runs alone in
// node1's namespace: one `nft -j list counters` against three `... table F T` side by side.
//
// With --compare DIR node2 runs another build's `podway run` (a checkout with its dist/ and build/,
// e.g. a copy of the build before a change) and its CLI asks it; node1 runs this checkout's. Each
// round asks both, alternating which goes first, so both see the same load. Two phases: idle, then
// with --load N busy processes (a bounded spin each, started and stopped by PID here). Prints the
// medians per phase and build, and the machine with its load before and after each phase.
//
// Usage: node dist/bench/counters.js [--runs 20] [--load 2] [--compare DIR] [--json]
import { execFile, spawn, ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Lab } from '../src/lab/lab';
import { guard, teardown } from '../test/e2e/e2e-kit';
import { controlRequest } from '../src/dataplane/control-server';
import { NFT_COUNTERS_MAX_AGE_MS } from '../src/observe/nft-cache';
import { benchArgsOrExit, compareCheckout, intOption, type BenchArgs } from './e2e/bench-args';
import { machineInfo, type MachineInfo } from './machine';
import { median } from './stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/counters.js [--runs N] [--load N] [--compare OTHER_CHECKOUT] [--json]', flags: ['--json'], options: ['--runs', '--load', '--compare'] };
const ROOT = path.resolve(__dirname, '..', '..');

interface Args { runs: number; load: number; json: boolean; compare?: string }

function parseArgs(args: BenchArgs): Args {
  return { runs: intOption(args, '--runs', 20, 1, 200), load: intOption(args, '--load', 2, 0, 16), json: args.has('--json'), compare: compareCheckout(args, path.join('bin', 'podway.js')) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A `podway counters` process of `root`'s build against `control`: its wall milliseconds (throws on a failure). */
function cliCounters(root: string, control: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [path.join(root, 'bin', 'podway.js'), 'counters', '--control', control], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(performance.now() - t0);
      else reject(new Error(`podway counters (${root}): exit ${code}: ${err.trim()}`));
    });
  });
}

async function requestMs(control: string): Promise<number> {
  const t0 = performance.now();
  await controlRequest(control, { cmd: 'counters' }, 30_000);
  return performance.now() - t0;
}

/** `n` busy processes, each spinning at most `seconds` (bounded even if this one dies). */
function startLoad(n: number, seconds: number): ChildProcess[] {
  const code = `const end = Date.now() + ${seconds * 1000}; let x = 0; while (Date.now() < end) x++;`;
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', code], { stdio: 'ignore' }));
}

function stopLoad(ps: ChildProcess[]): void {
  for (const p of ps) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

interface Phase {
  phase: string; before: MachineInfo; after: MachineInfo;
  builds: Record<string, { cliMs: number; warmMs: number; coldMs: number; cli: number[]; warm: number[]; cold: number[] }>;
  nft: { oneMs: number; perTableMs: number; one: number[]; perTable: number[] };
}

/** A cold request comes this long after the node's last one: its nft figures are older than the cache keeps them. */
const COLD_GAP_MS = NFT_COUNTERS_MAX_AGE_MS + 100;

/** `nft -j list counters [table F T]` in `ns`, to its exit (throws on a failure). */
function nftRun(ns: string, table: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'counters', ...table], { timeout: 30_000 }, (err) => (err ? reject(err) : resolve()));
  });
}

async function main(): Promise<void> {
  const args = parseArgs(benchArgsOrExit(process.argv.slice(2), BENCH_ARGS));
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  const builds: [string, string, string][] = [['this', ROOT, 'node1'], ...(args.compare ? [['compare', args.compare, 'node2'] as [string, string, string]] : [])];
  const lab = guard(new Lab([1, 2].map((k) => ({ name: `node${k}`, subnet: 'a' as const, pods: [{ name: `cnt-${k}a`, type: 'veth' as const }, { name: `cnt-${k}b`, type: 'veth' as const }] }))));
  let load: ChildProcess[] = [];
  const phases: Phase[] = [];
  try {
    lab.build();
    lab.addOutside();
    lab.natOutgoing = true;
    lab.setMode('vxlan');
    await lab.startPodway('node1', 60_000);
    await lab.startPodway('node2', 60_000, [], {}, args.compare ?? ROOT);
    // traffic through NAT, so the counters are not all 0
    lab.ping('cnt-1a', lab.outside!.ip, 3);
    lab.ping('cnt-2a', lab.outside!.ip, 3);
    for (const phase of ['idle', ...(args.load ? [`load ${args.load}`] : [])]) {
      if (phase !== 'idle') {
        load = startLoad(args.load, 600);
        await sleep(3000);
      }
      const before = machineInfo();
      const samples = new Map(builds.map(([label]) => [label, { cli: [] as number[], warm: [] as number[], cold: [] as number[] }]));
      const nftSamples = { one: [] as number[], perTable: [] as number[] };
      // each node's last request: a cold one waits until its nft figures are older than the cache's age
      const lastAt = new Map<string, number>();
      const cold = async (node: string) => {
        await sleep(Math.max(0, (lastAt.get(node) ?? 0) + COLD_GAP_MS - performance.now()));
      };
      for (let round = 0; round < args.runs; round++) {
        const order = round % 2 ? [...builds].reverse() : builds;
        for (const [label, root, node] of order) {
          const control = lab.node(node).control;
          await cold(node);
          samples.get(label)!.cli.push(await cliCounters(root, control));
          samples.get(label)!.warm.push(await requestMs(control));
          lastAt.set(node, performance.now());
        }
        for (const [label, , node] of order) {
          await cold(node);
          samples.get(label)!.cold.push(await requestMs(lab.node(node).control));
          lastAt.set(node, performance.now());
        }
        // the nft runs alone, in node1's namespace: one for every table, or one per table side by side
        const ns = lab.node('node1').ns;
        for (const way of round % 2 ? ['perTable', 'one'] as const : ['one', 'perTable'] as const) {
          const t0 = performance.now();
          if (way === 'one') await nftRun(ns, []);
          else await Promise.all([['ip', 'podway'], ['inet', 'podway'], ['inet', 'podway_tunnels']].map((t) => nftRun(ns, ['table', ...t])));
          nftSamples[way].push(performance.now() - t0);
        }
        process.stderr.write(`${phase}: round ${round + 1}/${args.runs}\n`);
      }
      const after = machineInfo();
      stopLoad(load);
      load = [];
      const out: Phase['builds'] = {};
      for (const [label, s] of samples) out[label] = { cliMs: Math.round(median(s.cli)), warmMs: Math.round(median(s.warm)), coldMs: Math.round(median(s.cold)), cli: s.cli.map(Math.round), warm: s.warm.map(Math.round), cold: s.cold.map(Math.round) };
      phases.push({ phase, before, after, builds: out, nft: { oneMs: Math.round(median(nftSamples.one)), perTableMs: Math.round(median(nftSamples.perTable)), one: nftSamples.one.map(Math.round), perTable: nftSamples.perTable.map(Math.round) } });
    }
  } finally {
    stopLoad(load);
    await teardown(lab);
  }
  if (args.json) {
    process.stdout.write(JSON.stringify({ runs: args.runs, load: args.load, compare: args.compare ?? null, phases }) + '\n');
    return;
  }
  const m = phases[0]!.before;
  process.stdout.write(`machine: ${m.cpu}, ${m.nproc} vCPUs, kernel ${m.kernel}, Node ${m.node}, ${args.runs} rounds\n\n`);
  process.stdout.write('| phase | build | `podway counters` ms | request, cold ms | request, warm ms | load average before -> after |\n|---|---|---:|---:|---:|---|\n');
  for (const p of phases) {
    for (const [label, b] of Object.entries(p.builds)) process.stdout.write(`| ${p.phase} | ${label} | ${b.cliMs} | ${b.coldMs} | ${b.warmMs} | ${p.before.loadavg.join(' ')} -> ${p.after.loadavg.join(' ')} |\n`);
  }
  process.stdout.write('\n| phase | one `nft -j list counters` ms | three `... table F T` side by side ms |\n|---|---:|---:|\n');
  for (const p of phases) process.stdout.write(`| ${p.phase} | ${p.nft.oneMs} | ${p.nft.perTableMs} |\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
