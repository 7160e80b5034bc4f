// The start's host reads (src/dataplane/host.ts readHostAtStart): how long each call holds the
// thread that makes it (`podway run`'s main thread, which forwards once the first model is applied),
// how long until every answer is in, and the CPU this process spent on it. Each spawn returns only
// once its child has exec'd, so at load the call holds the thread for as long as its children wait
// for a CPU (bench/README.md, "The gap of a restart"). Reads only: nothing on the host changes.
//
// With --compare DIR the same is measured with that checkout's build (its dist/), the two calls
// alternating, in this one process (this build's podway modules loaded, as in `podway run`).
//
// Usage: node dist/bench/start-reads.js [--runs 20] [--compare OTHER_CHECKOUT]
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchArgsOrExit, compareCheckout, intOption } from './e2e/bench-args';
import { machineInfo } from './machine';
import { median } from './stats';
import { LEARNED_ROUTE_METRIC, LEARNED_ROUTE_PROTO } from '../src/dataplane/host-programmer';

const BENCH_ARGS = { usage: 'usage: node dist/bench/start-reads.js [--runs N] [--compare OTHER_CHECKOUT]', flags: [], options: ['--runs', '--compare'] };
const HOST = path.join('dist', 'src', 'dataplane', 'host.js');

type Read = (proto: string, metric: number) => Promise<unknown>;
interface Sample { heldMs: number; wallMs: number; cpuMs: number }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function once(read: Read): Promise<Sample> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const p = read(LEARNED_ROUTE_PROTO, LEARNED_ROUTE_METRIC);
  const heldMs = performance.now() - t0;
  await p;
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { heldMs, wallMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

const fmt = (xs: number[]) => `${Math.round(median(xs))} (${Math.round(Math.min(...xs))}-${Math.round(Math.max(...xs))})`;

async function main(): Promise<void> {
  const args = benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  const runs = intOption(args, '--runs', 20, 1, 1000);
  const other = compareCheckout(args, HOST);
  // as `podway run` has them loaded when it reads the host
  require('../src/cli/run');
  const ROOT = path.resolve(__dirname, '..', '..');
  const builds: [string, Read][] = [['this', (require(path.join(ROOT, HOST)) as { readHostAtStart: Read }).readHostAtStart]];
  if (other) builds.push(['compare', (require(path.join(other, HOST)) as { readHostAtStart: Read }).readHostAtStart]);
  const before = machineInfo();
  const samples = new Map<string, Sample[]>(builds.map(([b]) => [b, []]));
  for (const [, read] of builds) await once(read); // warm: the first spawn of a process costs more
  for (let i = 0; i < runs; i++) {
    for (const [label, read] of i % 2 ? [...builds].reverse() : builds) {
      samples.get(label)!.push(await once(read));
      await sleep(100);
    }
  }
  const after = machineInfo();
  console.log(`${before.date}, ${before.cpu}, ${before.nproc} vCPUs, kernel ${before.kernel}, Node ${before.node}; load ${before.loadavg.join(' ')} before, ${after.loadavg.join(' ')} after; ${runs} calls a build, alternating`);
  console.log('\n| build | thread held ms | all answers in ms | CPU of this process ms |\n|---|---:|---:|---:|');
  for (const [label] of builds) {
    const s = samples.get(label)!;
    console.log(`| ${label} | ${fmt(s.map((x) => x.heldMs))} | ${fmt(s.map((x) => x.wallMs))} | ${fmt(s.map((x) => x.cpuMs))} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
