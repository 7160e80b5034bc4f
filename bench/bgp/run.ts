// `npm run bench:bgp`: the BGP speaker's UPDATE processing rate against BIRD 2 (updates.ts) and
// convergence of a 3-node `podway run --bgp` mesh (convergence.ts, root: a namespace lab).
//
// Usage: node dist/bench/bgp/run.js [--prefixes 100000] [--rounds 3] [--writes 20]
//          [--only updates,convergence] [--json]
import * as os from 'node:os';
import { runUpdateBench, UpdateSample } from './updates';
import { benchArgsOrExit } from '../e2e/bench-args';
import { median, percentile } from '../stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/bgp/run.js [--prefixes N] [--rounds N] [--writes N] [--only updates,convergence] [--json]', flags: ['--json'], options: ['--prefixes', '--rounds', '--writes', '--only'] };

interface Args { prefixes: number; rounds: number; writes: number; only: string[]; json: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { prefixes: 100_000, rounds: 5, writes: 20, only: ['updates', 'convergence'], json: false };
  const int = (k: string, v: string | undefined, lo: number, hi: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`${k} must be an integer ${lo}..${hi}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    if (k === '--prefixes') a.prefixes = int(k, argv[++i], 1, 500_000);
    else if (k === '--rounds') a.rounds = int(k, argv[++i], 1, 20);
    else if (k === '--writes') a.writes = int(k, argv[++i], 1, 200);
    else if (k === '--only') {
      a.only = (argv[++i] ?? '').split(',').filter(Boolean);
      if (a.only.length === 0 || a.only.some(s => s !== 'updates' && s !== 'convergence')) throw new Error('--only takes updates, convergence or both');
    } else if (k === '--json') a.json = true;
    else throw new Error(`unknown argument ${k} (expected --prefixes N, --rounds N, --writes N, --only updates,convergence, --json)`);
  }
  return a;
}


async function main(): Promise<void> {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  const args = parseArgs(process.argv.slice(2));
  const log = (s: string) => process.stderr.write(`bench:bgp ${s}\n`);
  const loadavgStart = os.loadavg().map(x => Number(x.toFixed(2)));
  const out: Record<string, unknown> = { args };
  if (args.only.includes('updates')) {
    const samples: UpdateSample[] = await runUpdateBench({ prefixes: args.prefixes, rounds: args.rounds, log });
    const of = (r: string, f: (s: UpdateSample) => number | undefined) => samples.filter(s => s.receiver === r).map(f).filter((x): x is number => x !== undefined);
    const podLast = median(of('podway', s => s.establishedToLastMs));
    const podInst = median(of('podway', s => s.establishedToInstalledMs));
    const birdLast = median(of('bird', s => s.establishedToLastMs));
    const rate = (ms: number) => Math.round(args.prefixes / (ms / 1000));
    const podCpu = median(of('podway', s => s.receiverCpuMs));
    const birdCpu = median(of('bird', s => s.receiverCpuMs));
    const updates = {
      prefixes: args.prefixes,
      receiverCpuMs: { podway: Math.round(podCpu), bird: Math.round(birdCpu), podwayOverBird: Number((podCpu / birdCpu).toFixed(2)) },
      senderCpuMs: { towardPodway: Math.round(median(of('podway', s => s.senderCpuMs))), towardBird: Math.round(median(of('bird', s => s.senderCpuMs))) },
      podway: { lastPrefixMs: Math.round(podLast), installedMs: Math.round(podInst), prefixesPerSecond: rate(podLast), installedPerSecond: rate(podInst) },
      bird: { lastPrefixMs: Math.round(birdLast), prefixesPerSecond: rate(birdLast) },
      podwayOverBird: Number((rate(podLast) / rate(birdLast)).toFixed(2)),
      samples: samples.map(s => ({ ...s, receiverCpuMs: Math.round(s.receiverCpuMs), senderCpuMs: Math.round(s.senderCpuMs), establishedToLastMs: Math.round(s.establishedToLastMs), establishedToInstalledMs: s.establishedToInstalledMs === undefined ? undefined : Math.round(s.establishedToInstalledMs) })),
    };
    out.updates = updates;
    if (!args.json) {
      console.log(`\n### UPDATE processing: ${args.prefixes} prefixes from a BIRD sender, iBGP on loopback (median of ${args.rounds}, after a warm-up round of each)\n`);
      console.log('| receiver | Established → last prefix | prefixes/s | Established → in learned() | prefixes/s |');
      console.log('| --- | ---: | ---: | ---: | ---: |');
      console.log(`| podway | ${updates.podway.lastPrefixMs} ms | ${updates.podway.prefixesPerSecond} | ${updates.podway.installedMs} ms | ${updates.podway.installedPerSecond} |`);
      console.log(`| BIRD 2 | ${updates.bird.lastPrefixMs} ms | ${updates.bird.prefixesPerSecond} | | |`);
      console.log(`\npodway / BIRD (prefixes per second to the last prefix): ${updates.podwayOverBird}`);
      console.log(`receiver CPU time (median): podway ${updates.receiverCpuMs.podway} ms, BIRD ${updates.receiverCpuMs.bird} ms (podway / BIRD ${updates.receiverCpuMs.podwayOverBird}); the sending BIRD's: ${updates.senderCpuMs.towardPodway} ms toward podway, ${updates.senderCpuMs.towardBird} ms toward BIRD`);
    }
  }
  if (args.only.includes('convergence')) {
    const { runConvergenceBench } = await import('./convergence');
    const results = [];
    for (const topology of ['mesh', 'reflector'] as const) results.push(await runConvergenceBench({ writes: args.writes, topology, log }));
    out.convergence = results;
    if (!args.json) {
      console.log(`\n### Convergence: affinity written → route installed on every other node (3 nodes, ${args.writes} writes)\n`);
      console.log('| topology | p50 | p99 | max |\n| --- | ---: | ---: | ---: |');
      for (const c of results) console.log(`| ${c.topology === 'mesh' ? 'full mesh' : 'node1 route reflector, writes on its clients'} | ${c.p50Ms.toFixed(0)} ms | ${c.p99Ms.toFixed(0)} ms | ${c.maxMs.toFixed(0)} ms |`);
    }
  }
  const machine = { cpus: os.cpus()[0]?.model, nproc: os.availableParallelism(), kernel: os.release(), node: process.version, loadavgStart, loadavgEnd: os.loadavg().map(x => Number(x.toFixed(2))) };
  out.machine = machine;
  if (!args.json) console.log(`\n${machine.cpus}, ${machine.nproc} CPUs, Linux ${machine.kernel}, Node ${machine.node}; load average ${loadavgStart.join(' ')} at the start, ${machine.loadavgEnd.join(' ')} at the end`);
  console.log(JSON.stringify(out));
}

main().catch(e => {
  console.error(`bench:bgp: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
