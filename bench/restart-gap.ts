// What a restart of `podway run` costs the pods (root; bench/README.md, "The gap of a restart"): a
// lab of two nodes on one etcd (VXLAN pool, one veth pod each), podway on both; the pods ping each
// other every 10 ms while node1's podway gets a signal (SIGTERM, a graceful stop: `systemctl
// restart`, an upgrade; or SIGKILL, a crash) and is started again the moment the old process has
// exited (as systemd's restart does). Per restart: how long the old process took to exit after the
// signal (`stop`), when the new one logged `forwarding` (from the signal), the longest run of
// lost echoes each way, as the time between the requests before and after it (`gap`), and how much
// of it came before the old process had exited (`lost before the exit`: the stop's share; the rest
// is the new start's, which varies by seconds from one start to the next on a loaded machine). With
// --compare DIR node1 is started with each build in turn (alternating which goes first), so both
// see the same load; node2 runs this build throughout. A row is the build that was stopped (the
// process that got the signal: the one the step before started); `next` the build started.
//
// Beside the pings, a UDP stream web-1 -> web-2 at 1,000 packets a second (test/e2e/udp-stream.ts,
// each datagram numbered) counted at the receiver: per restart `udp gap` (the longest time between
// two arrivals), `udp lost` (the numbers missing below the last that arrived), `resume` (the first
// arrival after the gap, in ms since the new process started: line it up with its `start-up:`
// phases) and `stall after` (the longest time between arrivals after the gap, until 3 s after the
// new process's `forwarding`: the forwarding thread held once it forwards, frames delayed). With
// --cpu-prof DIR each new process runs with `node --cpu-prof --cpu-prof-dir DIR` (every thread
// writes a profile at its exit; bench/restart-profile.ts reads them), and its log kept there as
// log-PID.txt.
//
//
// Also per restart: the new process's CPU ms (every thread) at each phase (its `start-up:` lines'
// cpuMs: what the start cost, which the load stretches less than the ms since its start), and web-1's
// ARP entry for its gateway 169.254.1.1 (podway answers it) through the restart (`ip monitor
// neigh` in web-1: does the pod's kernel give the gateway up while podway is away, and how soon is
// it answered once podway is back).
//
// Usage: node dist/bench/restart-gap.js [--runs 3] [--signals TERM,KILL] [--compare DIR] [--cpu-prof DIR]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, sleep } from '../src/lab/lab';
import { controlRequest } from '../src/dataplane/control-client';
import { machineInfo } from './machine';
import { benchArgsOrExit, compareCheckout, intOption, type BenchArgs } from './e2e/bench-args';
import { median } from './stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/restart-gap.js [--runs N] [--signals TERM,KILL] [--compare OTHER_CHECKOUT] [--cpu-prof DIR]', flags: [], options: ['--runs', '--signals', '--compare', '--cpu-prof'] };
const ROOT = path.resolve(__dirname, '..', '..');
const PING_INTERVAL_S = 0.01;
const STREAM = path.join(ROOT, 'dist', 'test', 'e2e', 'udp-stream.js');
const UDP_RATE = 1000;
const UDP_PORT = 5299;

/** stopMs: the old process's exit after the signal; forwardingMs: the new one's `forwarding` line
 * after the signal; gapMs: the longest loss web-1 -> web-2 (gapBackMs the other way); lostBeforeExitMs:
 * the part of it before the old process exited (what the stop costs; the rest is the start's). */
interface Row { build: string; next: string; signal: string; stopMs: number; forwardingMs: number | null; gapMs: number; gapBackMs: number; lostBeforeExitMs: number; load: number; stopped: string | null; phases: Record<string, number>; cpu: Record<string, number>; apply: Record<string, number>; udp: UdpFigures | null; arp: string }

/** The UDP stream's figures for one restart (see the head of this file); ms. */
export interface UdpFigures { gapMs: number; lost: number; received: number; resumeMs: number | null; stallAfterMs: number }

/** The stream's figures from its arrivals ([seq, epoch ms], in arrival order); `procStart` the new
 * process's start (epoch ms) and `forwardingAt` its `forwarding` line (epoch ms), if known. */
export function udpFigures(arrivals: readonly [number, number][], procStart: number | null, forwardingAt: number | null): UdpFigures {
  const seen = new Set<number>();
  let max = -1;
  let gapMs = 0;
  let gapEnd = 0;
  for (let k = 0; k < arrivals.length; k++) {
    const [seq, t] = arrivals[k]!;
    seen.add(seq);
    if (seq > max) max = seq;
    if (k > 0 && t - arrivals[k - 1]![1] > gapMs) {
      gapMs = t - arrivals[k - 1]![1];
      gapEnd = t;
    }
  }
  let stallAfterMs = 0;
  const until = forwardingAt === null ? Infinity : forwardingAt + 3000;
  for (let k = 1; k < arrivals.length; k++) {
    const t = arrivals[k]![1];
    if (t > gapEnd && t <= until) stallAfterMs = Math.max(stallAfterMs, t - arrivals[k - 1]![1]);
  }
  return { gapMs: Math.round(gapMs), lost: max + 1 - seen.size, received: seen.size, resumeMs: procStart === null || gapMs === 0 ? null : Math.round(gapEnd - procStart), stallAfterMs: Math.round(stallAfterMs) };
}

const GATEWAY = '169.254.1.1';

/** web-1's ARP entry for its gateway through a restart, as one line: the state before the signal,
 * then each change `ip -ts monitor neigh` saw, at ms since the new process started (the clock of
 * `resume` and the `start-up:` phases), e.g. `REACHABLE; STALE@-5200 DELAY@-120 PROBE@4800
 * FAILED@7800 INCOMPLETE@7900 REACHABLE@8420`. */
export function gatewayArp(before: string, monitor: string, procStart: number): string {
  const state = (l: string) => / (REACHABLE|STALE|DELAY|PROBE|FAILED|INCOMPLETE|PERMANENT|NOARP|NONE)\s*$/.exec(l)?.[1] ?? '?';
  const out = [before === '' ? 'none' : state(before)];
  const steps: string[] = [];
  for (const l of monitor.split('\n')) {
    const m = /^\[(\d{4}-\d\d-\d\dT[\d:.]+)\] (Deleted )?(\S+) /.exec(l);
    if (!m || m[3] !== GATEWAY) continue;
    // `ip -ts` prints local time without a zone; Date.parse reads such a string as local time too
    steps.push(`${m[2] ? 'deleted ' : ''}${state(l)}@${Math.round(Date.parse(m[1]!.slice(0, 23)) - procStart)}`);
  }
  return `${out[0]}; ${steps.join(' ') || 'no change'}`;
}

/** The phases of a start as the new process logs them (run.ts StartupClock: `start-up: PHASE at N
 * ms`, ms since the process started), and the first apply's parts (engine.ts `applied model: ...
 * (T ms; infra A, endpoints B, gw C, host D)`). */
export function startPhases(log: readonly string[]): { phases: Record<string, number>; cpu: Record<string, number>; apply: Record<string, number> } {
  const phases: Record<string, number> = {};
  // the process's CPU ms at each phase (cpuMs; a build before it does not log it)
  const cpu: Record<string, number> = {};
  let apply: Record<string, number> = {};
  for (const l of log) {
    let j: { msg?: unknown; startupPhase?: unknown; sinceStartMs?: unknown; heldMaxMs?: unknown; cpuMs?: unknown };
    try {
      j = JSON.parse(l) as typeof j;
    } catch {
      continue; // not a log line
    }
    if (typeof j.startupPhase === 'string' && typeof j.sinceStartMs === 'number' && phases[j.startupPhase] === undefined) {
      phases[j.startupPhase] = j.sinceStartMs;
      if (typeof j.cpuMs === 'number') cpu[j.startupPhase] = j.cpuMs;
    }
    // the datastore's model in force on a restart on the cache: the forwarding thread's longest
    // hold since `forwarding` (run.ts; not logged by a build before it)
    if (typeof j.heldMaxMs === 'number' && phases.held === undefined) phases.held = j.heldMaxMs;
    const a = typeof j.msg === 'string' ? /^applied model: .*\(([\d.]+) ms; ([^)]*)\)$/.exec(j.msg) : null;
    if (a && Object.keys(apply).length === 0) {
      apply = { total: Number(a[1]) };
      for (const m of a[2]!.matchAll(/(\w+) ([\d.]+)/g)) apply[m[1]!] = Number(m[2]);
    }
  }
  return { phases, cpu, apply };
}
const PHASES = ['modules loaded', 'control socket', 'registered', 'first model', 'host prepared', 'model applied', 'nat tables', 'forwarding'];

/** The longest run of lost echoes in `ping -D` output: from the last request answered before it
 * to the first answered after it (each sent at its reply's time minus its round trip), wall-clock
 * ms; null when none was lost, or nothing was answered after it. */
export function longestGap(out: string): { from: number; to: number } | null {
  const sent = new Map<number, number>();
  for (const m of out.matchAll(/^\[(\d+\.\d+)\] .*icmp_seq=(\d+) .*time=([\d.]+) ms/gm)) sent.set(Number(m[2]), Number(m[1]) * 1000 - Number(m[3]));
  const seqs = [...sent.keys()].sort((a, b) => a - b);
  let best: { from: number; to: number } | null = null;
  for (let k = 1; k < seqs.length; k++) {
    if (seqs[k] === seqs[k - 1] + 1) continue;
    const g = { from: sent.get(seqs[k - 1])!, to: sent.get(seqs[k])! };
    if (!best || g.to - g.from > best.to - best.from) best = g;
  }
  return best;
}

function parseArgs(args: BenchArgs): { runs: number; signals: ('TERM' | 'KILL')[]; compare?: string; cpuProf?: string } {
  const signals = (args.opt('--signals') ?? 'TERM,KILL').split(',').map((s) => s.trim().toUpperCase());
  for (const s of signals) if (s !== 'TERM' && s !== 'KILL') throw new Error(`--signals: ${s} is not TERM or KILL`);
  return { runs: intOption(args, '--runs', 3, 1, 50), signals: signals as ('TERM' | 'KILL')[], compare: compareCheckout(args, path.join('bin', 'podway.js')), cpuProf: args.opt('--cpu-prof') };
}

async function main(): Promise<void> {
  const args = parseArgs(benchArgsOrExit(process.argv.slice(2), BENCH_ARGS));
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  const builds: [string, string][] = [['this', ROOT], ...(args.compare ? [['compare', args.compare] as [string, string]] : [])];
  const rows: Row[] = [];
  const lab = new Lab([1, 2].map((k) => ({ name: `node${k}`, subnet: 'a' as const, pods: [{ name: `web-${k}`, type: 'veth' as const }] })));
  let store: Awaited<ReturnType<Lab['openKvStore']>> | null = null;
  let p: ChildProcess | null = null;
  const pings: ChildProcess[] = [];
  const before = machineInfo();
  if (args.cpuProf) mkdirSync(path.resolve(args.cpuProf), { recursive: true });
  try {
    lab.build();
    store = await lab.openKvStore('etcd', 'podway-bench-restart-gap-');
    await lab.startEtcd();
    await lab.useKvDatastore(store.kv, store.spec);
    for (const n of ['node1', 'node2']) await lab.startPodway(n, 60_000);
    await sleep(3000);
    const n1 = lab.node('node1');
    p = n1.proc;
    let pLog: string[] = n1.log;
    let pBuild = 'this'; // the build of the node1 process running now (the one the next signal stops)
    n1.proc = null;
    const web1 = lab.pod('web-1');
    const web2 = lab.pod('web-2');
    for (let round = 0; round < args.runs; round++) {
      for (const [label, root] of round % 2 ? [...builds].reverse() : builds) {
        for (const signal of args.signals) {
          const outs = ['', ''];
          const ping = (from: string, to: string, k: number) => {
            const c = spawn('ip', ['netns', 'exec', from, 'ping', '-n', '-D', '-i', String(PING_INTERVAL_S), '-W', '1', to], { stdio: ['ignore', 'pipe', 'ignore'] });
            c.stdout!.setEncoding('utf8').on('data', (d: string) => (outs[k] += d));
            pings.push(c);
            return c;
          };
          const there = ping(web1.ns, web2.ip, 0);
          const back = ping(web2.ns, web1.ip, 1);
          // the UDP stream: the receiver first (bounded wait for its `ready`), then the sender, for
          // at most 120 s (stopped once traffic has been back for 3 s)
          let rxOut = '';
          const rx = spawn('ip', ['netns', 'exec', web2.ns, process.execPath, STREAM, 'recv', String(UDP_PORT), '130'], { stdio: ['ignore', 'pipe', 'ignore'] });
          rx.stdout!.setEncoding('utf8').on('data', (d: string) => (rxOut += d));
          pings.push(rx);
          for (const end0 = Date.now() + 30_000; Date.now() < end0 && !rxOut.includes('ready'); ) await sleep(20);
          if (!rxOut.includes('ready')) throw new Error('the UDP receiver in web-2 did not start');
          const tx = spawn('ip', ['netns', 'exec', web1.ns, process.execPath, STREAM, 'send', web2.ip, String(UDP_PORT), String(UDP_RATE), '120'], { stdio: 'ignore' });
          pings.push(tx);
          await sleep(2000);
          // web-1's neighbour entry for its gateway (169.254.1.1, answered by podway itself: the
          // host end's proxy_arp is off) through the restart: its state now, then each change
          const arpStart = execFileSync('ip', ['-n', web1.ns, 'neigh', 'show', GATEWAY], { encoding: 'utf8' }).trim();
          let arpOut = '';
          const arpMon = spawn('ip', ['-n', web1.ns, '-ts', 'monitor', 'neigh'], { stdio: ['ignore', 'pipe', 'ignore'] });
          arpMon.stdout!.setEncoding('utf8').on('data', (d: string) => (arpOut += d));
          pings.push(arpMon);
          const load = machineInfo().loadavg[0];
          const old = p!;
          const t0 = Date.now();
          old.kill(`SIG${signal}`);
          await new Promise<void>((r) => (old.exitCode !== null || old.signalCode !== null ? r() : old.once('exit', () => r())));
          const stopMs = Date.now() - t0;
          await sleep(100); // the last lines of its stderr
          // this build's stop says how long it forwarded after the signal (run.ts)
          const stopped = pLog.map((l) => /"msg":"(stopped: [^"]*?); the nftables/.exec(l)?.[1]).find((x) => x !== undefined) ?? null;
          // node1 again, with this round's build, the moment the old one is gone
          const log: string[] = [];
          const prof = args.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(args.cpuProf)] : [];
          p = spawn('ip', ['netns', 'exec', n1.ns, process.execPath, ...prof, path.join(root, 'bin', 'podway.js'), 'run', '--node', 'node1', '--datastore', lab.datastoreSpec, '--control', n1.control, '--model-cache', lab.modelCachePath('node1')], { stdio: ['ignore', 'ignore', 'pipe'] });
          p.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(...d.split('\n').filter(Boolean)));
          pLog = log;
          const stoppedBuild = pBuild;
          pBuild = label;
          let forwardingMs: number | null = null;
          const end = Date.now() + 60_000;
          while (Date.now() < end && p.exitCode === null) {
            const line = log.find((l) => l.includes('"msg":"forwarding: node'));
            if (line) {
              forwardingMs = Date.parse(String((JSON.parse(line) as { time: string | number }).time)) - t0;
              if (await controlRequest(n1.control, { cmd: 'status' }, 2000).then(() => true, () => false)) break;
            }
            await sleep(50);
          }
          if (forwardingMs === null) throw new Error(`${label}: node1 did not forward within 60 s: ${log.slice(-5).join(' | ')}`);
          // the pings on until traffic has been back for 3 s
          await sleep(3000);
          for (const c of [there, back, arpMon]) c.kill('SIGINT');
          tx.kill('SIGKILL'); // `ip netns exec` execs node: the sender itself
          await Promise.all([there, back, tx].map((c) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())))));
          await sleep(300);
          rx.kill('SIGTERM'); // it reads what is still queued, then prints its arrivals
          await new Promise<void>((r) => (rx.exitCode !== null || rx.signalCode !== null ? r() : rx.once('exit', () => r())));
          const rxLine = rxOut.split('\n').find((l) => l.startsWith('{'));
          const arrivals = rxLine ? (JSON.parse(rxLine) as { arrivals: [number, number][] }).arrivals : null;
          const [g, gb] = outs.map(longestGap);
          if (!g || !gb) throw new Error(`${label} ${signal}: no loss seen, or no answer after it (web-1 -> web-2: ${JSON.stringify(g)}, back: ${JSON.stringify(gb)})`);
          // the datastore's model in force (its line carries how long the thread was held since `forwarding`)
          for (const end2 = Date.now() + 20_000; Date.now() < end2 && !log.some((l) => l.includes('its model replaces the cached one')); ) await sleep(100);
          const exitAt = t0 + stopMs;
          const sp = startPhases(log);
          const forwardingAt = t0 + forwardingMs;
          const procStart = sp.phases.forwarding === undefined ? null : forwardingAt - sp.phases.forwarding;
          const udp = arrivals ? udpFigures(arrivals, procStart, forwardingAt) : null;
          const arp = gatewayArp(arpStart, arpOut, procStart ?? t0);
          const row: Row = { build: stoppedBuild, next: label, signal, stopMs, forwardingMs, gapMs: Math.round(g.to - g.from), gapBackMs: Math.round(gb.to - gb.from), lostBeforeExitMs: Math.max(0, Math.round(exitAt - Math.min(g.from, gb.from))), load, stopped, ...sp, udp, arp };
          rows.push(row);
          if (args.cpuProf) writeFileSync(path.join(path.resolve(args.cpuProf), `phases-${p.pid}.json`), JSON.stringify({ pid: p.pid, phases: row.phases, cpu: row.cpu, udp: row.udp, load }));
          if (args.cpuProf) writeFileSync(path.join(path.resolve(args.cpuProf), `log-${p.pid}.txt`), `${log.join('\n')}\n`);
          process.stderr.write(`${JSON.stringify(row)}\n`);
          await sleep(2000);
        }
      }
    }
  } finally {
    for (const c of pings) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    p?.kill('SIGKILL');
    await lab.stopPodway('node2').catch(() => null);
    lab.destroy();
    await store?.close().catch(() => undefined);
  }
  const after = machineInfo();
  process.stdout.write(`${before.date}, ${before.cpu}, ${before.nproc} vCPUs, kernel ${before.kernel}, Node ${before.node}; load ${before.loadavg.join(' ')} before, ${after.loadavg.join(' ')} after; ${args.runs} rounds\n\n`);
  process.stdout.write('| build | signal | stop ms | lost before the exit ms | forwarding ms | gap web-1 -> web-2 ms | gap back ms | load |\n|---|---|---:|---:|---:|---:|---:|---:|\n');
  for (const [label] of builds) {
    for (const signal of args.signals) {
      const xs = rows.filter((r) => r.build === label && r.signal === signal);
      const med = (f: (r: Row) => number | null) => median(xs.map(f).filter((v): v is number => v !== null)).toFixed(0);
      const range = (f: (r: Row) => number) => `${Math.min(...xs.map(f))}-${Math.max(...xs.map(f))}`;
      process.stdout.write(`| ${label} | ${signal} | ${med((r) => r.stopMs)} (${range((r) => r.stopMs)}) | ${med((r) => r.lostBeforeExitMs)} (${range((r) => r.lostBeforeExitMs)}) | ${med((r) => r.forwardingMs)} | ${med((r) => r.gapMs)} (${range((r) => r.gapMs)}) | ${med((r) => r.gapBackMs)} (${range((r) => r.gapBackMs)}) | ${range((r) => r.load)} |\n`);
    }
  }
  // Where the new start's time went, by the build started (either signal): the longest loss web-1
  // -> web-2 (the start's build is what decides most of it), then ms since its process started,
  // medians; `exec` is from the signal to that process's start (the old one's stop, the spawn); `-`
  // a phase the build did not log at start (registered comes after forwarding on the cache);
  // `thread held max`: the longest the forwarding thread was held from `forwarding` until the
  // datastore's model replaced the cache's (the process's own event-loop delay sample; `-` a build
  // that does not log it).
  process.stdout.write(`\n| build started | gap web-1 -> web-2 ms | exec | ${PHASES.join(' | ')} | first apply: infra, endpoints, host | thread held max |\n|---|---:|---:|${PHASES.map(() => '---:|').join('')}---|---:|\n`);
  for (const [label] of builds) {
    const xs = rows.filter((r) => r.next === label);
    const med = (f: (r: Row) => number | undefined) => {
      const v = xs.map(f).filter((x): x is number => x !== undefined);
      return v.length ? median(v).toFixed(0) : '-';
    };
    const exec = med((r) => (r.forwardingMs !== null && r.phases.forwarding !== undefined ? r.forwardingMs - r.phases.forwarding : undefined));
    const gap = `${med((r) => r.gapMs)} (${Math.min(...xs.map((r) => r.gapMs))}-${Math.max(...xs.map((r) => r.gapMs))})`;
    process.stdout.write(`| ${label} | ${gap} | ${exec} | ${PHASES.map((p) => med((r) => r.phases[p])).join(' | ')} | ${['infra', 'endpoints', 'host'].map((k) => med((r) => r.apply[k])).join(', ')} | ${med((r) => r.phases.held)} |\n`);
  }
  // The UDP stream (1,000 pps web-1 -> web-2), per restart, by the build started: `resume` is the
  // first datagram after the gap in ms since the new process started, beside its `model applied`
  // and `forwarding` phases (same clock).
  // `cpu`: the new process's CPU ms (every thread) at `modules loaded` and at `forwarding` (what
  // the start cost, less stretched by the load than the ms since its start; `-` a build that does not log it).
  process.stdout.write(`\n| build started | signal | load | udp gap ms | udp lost | resume | model applied | forwarding | cpu: modules, forwarding | stall after ms | thread held max |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n`);
  for (const r of rows) {
    const u = r.udp;
    process.stdout.write(`| ${r.next} | ${r.signal} | ${r.load} | ${u?.gapMs ?? '-'} | ${u?.lost ?? '-'} | ${u?.resumeMs ?? '-'} | ${r.phases['model applied'] ?? '-'} | ${r.phases.forwarding ?? '-'} | ${r.cpu['modules loaded'] ?? '-'}, ${r.cpu.forwarding ?? '-'} | ${u?.stallAfterMs ?? '-'} | ${r.phases.held ?? '-'} |\n`);
  }
  // web-1's ARP entry for 169.254.1.1 through each restart (gatewayArp), beside the resume
  process.stdout.write('\n| build started | resume | forwarding | gateway ARP in web-1: before; changes at ms since the new process started |\n|---|---:|---:|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.next} | ${r.udp?.resumeMs ?? '-'} | ${r.phases.forwarding ?? '-'} | ${r.arp} |\n`);
  // CPU medians by the build started
  process.stdout.write(`\n| build started | cpu ms at: ${PHASES.join(' | ')} |\n|---|${PHASES.map(() => '---:|').join('')}\n`);
  for (const [label] of builds) {
    const xs = rows.filter((r) => r.next === label);
    const med = (f: (r: Row) => number | undefined) => {
      const v = xs.map(f).filter((x): x is number => x !== undefined);
      return v.length ? `${median(v).toFixed(0)} (${Math.min(...v)}-${Math.max(...v)})` : '-';
    };
    process.stdout.write(`| ${label} | ${PHASES.map((p) => med((r) => r.cpu[p])).join(' | ')} |\n`);
  }
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`bench restart-gap: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
