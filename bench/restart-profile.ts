// Where the forwarding thread's time goes in a restart (root not needed): reads the profiles that
// `node dist/bench/restart-gap.js --cpu-prof DIR` left (each new podway process's threads write
// CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile at their exit; the bench writes
// phases-<pid>.json with the process's `start-up:` phases and the UDP stream's figures), and prints
// per process, for the main thread (the forwarding thread with the default --workers 1): the CPU
// time in each start-up phase and in the window after `forwarding` (--after MS, default 2000), and
// the functions (self time) and scripts that took most of that window.
//
// The profile's clock is the process's own (its first sample is close to the process's start,
// which is performance.now()'s origin, the clock of the `start-up:` lines): a sample's time is its
// offset from the profile's startTime, so the windows are right to the profiler's start (a few ms).
//
// Usage: node dist/bench/restart-profile.js --dir DIR [--after 2000] [--top 15]
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { benchArgsOrExit, intOption } from './e2e/bench-args';

interface ProfNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

const PHASES = ['modules loaded', 'control socket', 'first model', 'host prepared', 'model applied', 'nat tables', 'forwarding'];

/** Self time (ms) by key over the samples whose time (ms since the profile's start) is in [from, to). */
export function selfTime(prof: Profile, from: number, to: number, key: (n: ProfNode) => string): Map<string, number> {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const out = new Map<string, number>();
  let t = 0;
  for (let k = 0; k < prof.samples.length; k++) {
    t += prof.timeDeltas[k]! / 1000;
    // a sample stands for the time until the next one
    const dt = k + 1 < prof.timeDeltas.length ? prof.timeDeltas[k + 1]! / 1000 : 0;
    if (t < from || t >= to) continue;
    const n = byId.get(prof.samples[k]!)!;
    const kk = key(n);
    out.set(kk, (out.get(kk) ?? 0) + dt);
  }
  return out;
}

const IDLE = new Set(['(idle)']);
const fn = (n: ProfNode) => `${n.callFrame.functionName || '(anonymous)'} ${shortUrl(n.callFrame.url)}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
const script = (n: ProfNode) => (n.callFrame.url ? shortUrl(n.callFrame.url) : n.callFrame.functionName);
function shortUrl(u: string): string {
  const m = /(?:node_modules\/(?:@[^/]+\/)?[^/]+|dist\/[^/]+)\/.*$/.exec(u);
  return m ? m[0] : u.replace(/^file:\/\//, '');
}
const busy = (m: Map<string, number>) => [...m].filter(([k]) => !IDLE.has(k)).reduce((a, [, v]) => a + v, 0);

function main(): void {
  const args = benchArgsOrExit(process.argv.slice(2), { usage: 'usage: node dist/bench/restart-profile.js --dir DIR [--after MS] [--top N]', flags: [], options: ['--dir', '--after', '--top'] });
  const dir = args.opt('--dir');
  if (!dir) throw new Error('give --dir: the --cpu-prof DIR of bench/restart-gap');
  const after = intOption(args, '--after', 2000, 100, 60_000);
  const top = intOption(args, '--top', 15, 1, 100);
  const files = readdirSync(dir);
  for (const pf of files.filter((f) => /^phases-\d+\.json$/.test(f)).sort()) {
    const info = JSON.parse(readFileSync(path.join(dir, pf), 'utf8')) as { pid: number; phases: Record<string, number>; udp: unknown; load: number };
    const main0 = files.find((f) => new RegExp(`^CPU\\.\\d+\\.\\d+\\.${info.pid}\\.0\\.\\d+\\.cpuprofile$`).test(f));
    if (!main0 || info.phases.forwarding === undefined) continue;
    const prof = JSON.parse(readFileSync(path.join(dir, main0), 'utf8')) as Profile;
    const f = info.phases.forwarding;
    process.stdout.write(`\n## pid ${info.pid} (load ${info.load}): udp ${JSON.stringify(info.udp)}; thread held max ${info.phases.held ?? '-'} ms\n`);
    let prev = 0;
    const parts: string[] = [];
    for (const ph of PHASES) {
      const at = info.phases[ph];
      if (at === undefined) continue;
      parts.push(`${ph} ${prev}-${at} ms: busy ${busy(selfTime(prof, prev, at, script)).toFixed(0)}`);
      prev = at;
    }
    process.stdout.write(`main thread CPU by phase (ms, profiled from process start): ${parts.join('; ')}\n`);
    for (const [label, from, to] of [[`after forwarding (${f}-${f + after} ms)`, f, f + after]] as [string, number, number][]) {
      const fns = selfTime(prof, from, to, fn);
      process.stdout.write(`${label}: busy ${busy(fns).toFixed(0)} ms of ${to - from}\n`);
      for (const [k, v] of [...selfTime(prof, from, to, script)].filter(([k]) => !IDLE.has(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  script ${v.toFixed(1).padStart(7)} ms  ${k}\n`);
      for (const [k, v] of [...fns].filter(([k]) => !IDLE.has(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  self   ${v.toFixed(1).padStart(7)} ms  ${k}\n`);
    }
  }
}

if (require.main === module) main();
