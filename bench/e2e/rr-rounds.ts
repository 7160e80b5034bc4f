/**
 * Request/response at 100/s through podway node1 (node2 a kernel vxlan.calico node), in the
 * rr-latency lab of run.ts, with several podway setups ALTERNATED round by round (podway restarted
 * for each), so a loaded machine's drift falls on every setup alike. Per run it shows what the
 * one-shot rr-latency rows cannot: which forwarding worker took the requests (on pod A's veth) and
 * which the replies (on the underlay), and how often podway's forwarding threads slept per round
 * trip (voluntary context switches of the threads that switched at least once per four round
 * trips, so not libuv's thread pool, / replies: about 1 when the thread that forwarded
 * the request is still runnable when the reply comes, 2 when each leg wakes a thread).
 *
 *   node dist/bench/e2e/rr-rounds.js [--rounds 4] [--seconds 3] [--protos tcp,udp]
 *        [--setup "--workers 1"] [--setup "--workers 2"] [--setup "--workers 2 --worker-steer fanout"]
 *
 * Run it under the machine-wide bench lock (bench/README.md). Each run: a 2 s closed-loop warm-up
 * on its own connection (16 outstanding), then `pktgen rr-client` at 100/s on a new one.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, sleep } from '../../src/lab/lab';
import { configureKernelNode } from '../../src/lab/kernel';
import { benchArgsOrExit } from './bench-args';
import { controlRequest } from '../../src/dataplane/control-server';
import { median } from '../stats';

const PKTGEN = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'pktgen');

interface Rr { received: number; p50us: number; p99us: number }
interface Row { setup: string; proto: string; p50us: number; p99us: number; received: number; sleepsPerRt: number; requests: string; replies: string; load: number }

const ARGS = {
  usage: `usage: node dist/bench/e2e/rr-rounds.js [--rounds 4] [--seconds 3] [--protos tcp,udp] [--setup "PODWAY ARGS"]...
Needs root; run it under the machine's bench lock (flock /tmp/pw-bench.lock ...).`,
  flags: [],
  options: ['--rounds', '--seconds', '--protos'],
  repeated: ['--setup'],
};

/** Voluntary context switches per thread of a process. */
function switches(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'));
      if (m) out.set(t, Number(m[1]));
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

/** Frames received per port row of `podway counters` (`name [wN]` with several workers). */
async function received(control: string): Promise<Map<string, number>> {
  const c = (await controlRequest(control, { cmd: 'counters' })) as { ports?: { port: string; rx: number }[] };
  return new Map((c.ports ?? []).map((p) => [p.port, Number(p.rx)]));
}

/** Which worker(s) received most of `n` frames on ports whose name starts with `prefix`. */
function takers(before: Map<string, number>, after: Map<string, number>, prefix: string, n: number): string {
  const w: string[] = [];
  for (const [port, rx] of after) {
    if (!port.startsWith(prefix) || rx - (before.get(port) ?? 0) < n / 4) continue;
    w.push(/\[(w\d+)\]/.exec(port)?.[1] ?? 'w0');
  }
  return w.join('+') || '-';
}

async function rr(lab: Lab, proto: string, rate: number, seconds: number, port: number, window = 1): Promise<Rr> {
  const a = lab.pod('pod-a');
  const b = lab.pod('pod-b');
  const server = spawn('ip', ['netns', 'exec', b.ns, PKTGEN, 'rr-server', proto, String(port), String(seconds + 5)], { stdio: 'ignore' });
  try {
    await sleep(300);
    const out = await new Promise<string>((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', a.ns, PKTGEN, 'rr-client', proto, b.ip, String(port), '64', String(rate), String(seconds), String(window)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let o = '';
      const timer = setTimeout(() => c.kill('SIGKILL'), (seconds + 10) * 1000);
      c.stdout.on('data', (d) => { o += d; });
      c.on('exit', (code) => { clearTimeout(timer); if (code === 0) resolve(o); else reject(new Error(`rr-client exited ${code}`)); });
    });
    return JSON.parse(out) as Rr;
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const args = benchArgsOrExit(process.argv.slice(2), ARGS);
  const rounds = Number(args.opt('--rounds') ?? 4);
  const seconds = Number(args.opt('--seconds') ?? 3);
  const protos = (args.opt('--protos') ?? 'tcp,udp').split(',');
  const setups = args.all('--setup');
  if (setups.length === 0) setups.push('--workers 1', '--workers 2', '--workers 2 --worker-steer fanout');
  const lab = new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'pod-a', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'pod-b', type: 'veth' }] },
  ], { underlay: 'p2p' });
  const rows: Row[] = [];
  let port = 7000;
  try {
    lab.build();
    lab.setMode('vxlan');
    configureKernelNode(lab, lab.nodes[1], 'vxlan');
    const n1 = lab.nodes[0];
    for (let r = 0; r < rounds; r++) {
      for (const setup of setups) {
        await lab.startPodway('node1', 15_000, setup.split(/\s+/).filter(Boolean));
        try {
          for (let k = 0; k < 10 && !lab.ping('pod-a', lab.pod('pod-b').ip, 1).received; k++) await sleep(200);
          const pid = n1.proc!.pid!;
          for (const proto of protos) {
            await rr(lab, proto, 0, 2, port++, 16); // warm-up
            const c0 = await received(n1.control);
            const s0 = switches(pid);
            const m = await rr(lab, proto, 100, seconds, port++);
            const s1 = switches(pid);
            const c1 = await received(n1.control);
            // forwarding threads only: those that slept at least once per four round trips (libuv's
            // thread pool wakes some 8 times a second on its own and would count otherwise)
            let sleeps = 0;
            for (const [t, v] of s1) if (s0.has(t) && v - s0.get(t)! >= m.received / 4) sleeps += v - s0.get(t)!;
            const row: Row = {
              setup, proto, p50us: m.p50us, p99us: m.p99us, received: m.received,
              sleepsPerRt: m.received ? +(sleeps / m.received).toFixed(2) : 0,
              requests: takers(c0, c1, lab.pod('pod-a').ifname, m.received), replies: takers(c0, c1, 'underlay(', m.received),
              load: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
            };
            rows.push(row);
            console.log(`round ${r} ${setup} ${proto}: p50 ${row.p50us} µs, p99 ${row.p99us} µs, requests on ${row.requests}, replies on ${row.replies}, ${row.sleepsPerRt} sleeps per round trip (load ${row.load})`);
          }
        } finally {
          await lab.stopPodway('node1');
        }
      }
    }
  } finally {
    for (const n of lab.nodes) await lab.stopPodway(n.name);
    lab.destroy();
  }
  console.log('\n| setup | proto | runs | p50 median (min-max) µs | sleeps per round trip, median | runs with requests and replies on one worker |');
  console.log('|---|---|---|---|---|---|');
  for (const setup of setups) {
    for (const proto of [...new Set(protos)]) {
      const rs = rows.filter((x) => x.setup === setup && x.proto === proto);
      const p = rs.map((x) => x.p50us);
      console.log(`| ${setup} | ${proto} | ${rs.length} | ${median(p)} (${Math.min(...p)}-${Math.max(...p)}) | ${median(rs.map((x) => x.sleepsPerRt))} | ${rs.filter((x) => x.requests === x.replies && !x.requests.includes('+')).length} of ${rs.length} |`);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
