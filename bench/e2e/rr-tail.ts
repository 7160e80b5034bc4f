/**
 * Where a round trip's tail comes from at a fixed load: request/response through podway node1
 * (node2 a kernel vxlan.calico node) in the rr-latency lab, open loop at a given rate, podway setups
 * ALTERNATED round by round (podway restarted for each). Per run, next to p50/p99/p99.9/max, what
 * the one-shot rr-latency rows do not show: the two pods' TCP recovery counters (`nstat` in each
 * pod's namespace: retransmits, loss probes, out-of-order queueing, SACK recoveries) and podway's
 * drops (`podway counters`: drop reasons, per port kernel ring drops, refused or dropped sends).
 * A TCP request lost once holds every later request of the connection behind it until the sender
 * recovers (a loss probe or a fast retransmit, milliseconds), where a lost UDP request is just one
 * sample fewer: so drops show in TCP's tail and not in UDP's.
 *
 *   node dist/bench/e2e/rr-tail.js [--rounds 3] [--seconds 4] [--protos tcp,udp] [--rate half|N[,half|N...]] [--slow-us 1000] [--perf-sched] [--legs]
 *        [--setup "--workers 1"] [--setup "--workers 1 --no-gro"] [--setup kernel] ...
 *
 * `--perf-sched`: `perf sched record -a` for up to 2 s of each measured run: where pod B's server
 * was woken (the waker's CPU or the other) and what woke podway's threads.
 * `--legs`: tcpdump on pod A's and pod B's eth0 during each measured run, and each request's round
 * trip cut into pod A's part, the request leg (node1, node2), pod B's part and the reply leg
 * (bench/e2e/rr-legs.ts): medians, the slowest 1%'s mean per leg, and how many frames carried more
 * than one request or reply. The captures cost CPU on this 2-vCPU machine: compare setups within
 * one `--legs` run, not against a run without it. With `--perf-sched` as well: how much of the
 * request and reply legs' time fell while node1's forwarding thread waited for a CPU, slept or ran.
 * `--setup kernel` makes node1 a kernel vxlan.calico node as well (the rr-latency baseline).
 *
 * `--rate half` (the default) is half of the closed-loop maximum (16 outstanding) measured in the
 * 2 s warm-up of the same run, as the rr-latency rows do. Run it under the machine-wide bench lock.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, sleep } from '../../src/lab/lab';
import { configureKernelNode, resetNode } from '../../src/lab/kernel';
import { benchArgsOrExit } from './bench-args';
import { controlRequest } from '../../src/dataplane/control-server';
import { legTimes, legsInWaits, legsSummary, pcapFirstSecond, readPcap, realtimeMinusMonotonicNs, threadStates } from './rr-legs';

const PKTGEN = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'pktgen');

interface Rr { sent: number; received: number; rate: number; p50us: number; p99us: number; p999us: number; maxus: number; p99sentus: number; sched?: string; wakes?: string; legs?: string }

/** The TCP counters that say a connection recovered from a loss or a reordering. */
const TCP_KEYS = ['TcpRetransSegs', 'TcpExtTCPLossProbes', 'TcpExtTCPLossProbeRecovery', 'TcpExtTCPSackRecovery', 'TcpExtTCPTimeouts',
  'TcpExtTCPOFOQueue', 'TcpExtTCPDSACKRecv', 'TcpExtTCPDSACKOldSent', 'TcpExtDelayedACKs', 'TcpExtTCPFastRetrans', 'TcpExtTCPSpuriousRtxHostQueues',
  'TcpExtTCPRcvCoalesce', 'TcpExtTCPBacklogCoalesce', 'TcpExtTCPAutoCorking', 'TcpExtTCPACKSkippedSeq', 'UdpRcvbufErrors', 'UdpInErrors'];

const ARGS = {
  usage: `usage: node dist/bench/e2e/rr-tail.js [--rounds 3] [--seconds 4] [--protos tcp,udp] [--rate half|N[,half|N...]]
         [--slow-us 1000] [--perf-sched] [--legs] [--setup "PODWAY ARGS"|kernel]...
Needs root; run it under the machine's bench lock (flock /tmp/pw-bench.lock ...).`,
  flags: ['--perf-sched', '--legs'],
  options: ['--rounds', '--seconds', '--protos', '--rate', '--slow-us'],
  repeated: ['--setup'],
};

function nstat(ns: string): Record<string, number> {
  const j = JSON.parse(execFileSync('ip', ['netns', 'exec', ns, 'nstat', '-asz', '--json'], { encoding: 'utf8' })) as { kernel: Record<string, number> };
  return j.kernel;
}

function nstatDelta(a: Record<string, number>, b: Record<string, number>): string {
  return TCP_KEYS.filter((k) => (b[k] ?? 0) - (a[k] ?? 0) !== 0).map((k) => `${k.replace(/^TcpExt/, '')} ${(b[k] ?? 0) - (a[k] ?? 0)}`).join(', ') || '-';
}

type Counters = { reasons: Record<string, number>; ports: Record<string, number | string>[] };

/** podway's drops and the batches it ran: what changed between two `counters` answers. */
function podwayDelta(a: Counters, b: Counters): string {
  const out: string[] = [];
  for (const [r, v] of Object.entries(b.reasons)) if (v - (a.reasons[r] ?? 0)) out.push(`${r} ${v - (a.reasons[r] ?? 0)}`);
  for (const p of b.ports) {
    const q = a.ports.find((x) => x.port === p.port) ?? {};
    const d = (k: string) => Number(p[k] ?? 0) - Number(q[k] ?? 0);
    const parts = ['drops', 'kernelDrops', 'txFull', 'txErrors', 'sendRefused', 'rxErrors', 'txBacklog', 'rxRingStalls', 'txGroFrames', 'txGroSegments', 'rxMergeFrames', 'rxMergeSegments']
      .filter((k) => d(k)).map((k) => `${k} ${d(k)}`);
    const rx = d('rx');
    const calls = d('rxCalls');
    if (rx) parts.unshift(`rx ${rx} in ${calls} calls`);
    if (parts.length) out.push(`${p.port}: ${parts.join(', ')}`);
  }
  return out.join('; ');
}

/**
 * The tail's episodes from a PKTGEN_RR_TRACE file: runs of requests (by send time, gaps under
 * 1 ms joined) whose round trip took over `slowUs`. Many short ones are a per-packet cost; a few
 * long ones, every request behind them slow, are a stall (of a thread, or of a TCP connection
 * waiting to recover).
 */
function episodes(file: string, slowUs: number): string {
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  type Ep = { start: number; end: number; n: number; worst: number };
  const eps: Ep[] = [];
  let slow = 0;
  for (const l of lines) {
    const [t, lat] = l.split(' ').map(Number);
    if (lat / 1000 <= slowUs) continue;
    slow++;
    const last = eps[eps.length - 1];
    if (last && t - last.end < 1e6) { last.end = t; last.n++; last.worst = Math.max(last.worst, lat); }
    else eps.push({ start: t, end: t, n: 1, worst: lat });
  }
  const top = [...eps].sort((x, y) => y.n - x.n).slice(0, 6).sort((x, y) => x.start - y.start);
  return `${slow} of ${lines.length} over ${slowUs} µs in ${eps.length} episodes; largest: ` +
    top.map((e) => `at ${(e.start / 1e6).toFixed(1)} ms ${e.n} slow over ${((e.end - e.start) / 1e3).toFixed(0)} µs, worst ${(e.worst / 1e3).toFixed(0)} µs`).join('; ');
}

/** run time, run-queue wait (ns) and time slices of every thread of a process (/proc/PID/task/TID/schedstat). */
function schedstat(pid: number | undefined): Map<string, [number, number, number]> {
  const out = new Map<string, [number, number, number]>();
  if (!pid) return out;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        const comm = readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim();
        const v = readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').trim().split(' ').map(Number) as [number, number, number];
        out.set(`${comm}(${t})`, v);
      } catch {
        /* the thread ended */
      }
    }
  } catch {
    /* the process ended */
  }
  return out;
}

/** The busy threads' CPU and run-queue wait between two schedstat reads, in ms and µs per slice. */
function schedDelta(label: string, a: Map<string, [number, number, number]>, b: Map<string, [number, number, number]>): string {
  const parts: string[] = [];
  for (const [t, v] of b) {
    const u = a.get(t);
    if (!u) continue;
    const run = (v[0] - u[0]) / 1e6;
    const wait = (v[1] - u[1]) / 1e6;
    const slices = v[2] - u[2];
    if (run < 20) continue;
    parts.push(`${label} ${t} ran ${run.toFixed(0)} ms, waited ${wait.toFixed(0)} ms for a CPU over ${slices} slices (${slices ? ((wait * 1000) / slices).toFixed(1) : 0} µs each)`);
  }
  return parts.join('; ');
}

/**
 * Where the server was woken, from `perf sched timehist -w` of the run: per wake-up of a thread of
 * `serverPid`, was it then run on the CPU of the thread that woke it (the waker's softirq ran the
 * request in: the server preempts it there) or on the other one (an idle vCPU woken: an IPI, and the
 * forwarder goes to sleep before the reply comes). Also the wake-ups of podway's threads, by waker.
 */
function wakePlaces(file: string, serverPid: number | undefined, podwayPid: number | undefined): string {
  let out: string;
  try {
    out = execFileSync('perf', ['sched', 'timehist', '-w', '-i', file], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (e) {
    return `perf sched timehist failed: ${(e as Error).message.split('\n')[0]}`;
  }
  const podwayTids = new Set<number>();
  if (podwayPid) try { for (const t of readdirSync(`/proc/${podwayPid}/task`)) podwayTids.add(Number(t)); } catch { /* ended */ }
  const pending = new Map<number, { cpu: number; waker: string }>(); // wakee tid -> where its waker ran
  let same = 0;
  let other = 0;
  const podwayWakers = new Map<string, number>();
  let podwayWakeups = 0;
  const perTid = new Map<number, number>();
  const re = /^\s*[\d.]+\s+\[(\d+)\]\s+(\S+?)\[(\d+)(?:\/(\d+))?\]\s+(.*)$/;
  for (const line of out.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const cpu = Number(m[1]);
    const tid = Number(m[3]);
    const rest = m[5];
    const aw = /awakened:\s+(\S+?)\[(\d+)(?:\/(\d+))?\]/.exec(rest);
    if (aw) {
      const wakee = Number(aw[2]);
      const wakeePid = aw[3] ? Number(aw[3]) : wakee;
      const waker = `${m[2]}${podwayTids.has(tid) ? '(podway)' : ''}`;
      if (wakeePid === serverPid || wakee === serverPid) pending.set(wakee, { cpu, waker });
      if (podwayTids.has(wakee)) { podwayWakeups++; podwayWakers.set(waker, (podwayWakers.get(waker) ?? 0) + 1); perTid.set(wakee, (perTid.get(wakee) ?? 0) + 1); }
      continue;
    }
    // a line without "awakened" is the end of a thread's run on `cpu`
    const p = pending.get(tid);
    if (p) { if (p.cpu === cpu) same++; else other++; pending.delete(tid); }
  }
  const top = [...podwayWakers].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([w, n]) => `${w} ${n}`).join(', ');
  return `server woken ${same + other} times: ran on the waker's CPU ${same}, on the other ${other}; podway's threads woken ${podwayWakeups} times (${[...perTid].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([t, n]) => `tid ${t}: ${n}`).join(', ')}), by ${top}`;
}

/** tcpdump on a pod's eth0 for one port, nanosecond stamps, headers only; resolves once it listens. */
async function capture(ns: string, proto: string, port: number, file: string): Promise<{ proc: ReturnType<typeof spawn>; stderr: () => string }> {
  const proc = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', 'eth0', '-n', '-s', '128', '-B', '16384', '--time-stamp-precision=nano', '-w', file, proto, 'port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d) => { err += d; });
  for (let k = 0; k < 50 && !err.includes('listening on') && proc.exitCode === null; k++) await sleep(50);
  if (!err.includes('listening on')) { proc.kill('SIGKILL'); throw new Error(`tcpdump in ${ns}: ${err.trim() || 'did not start'}`); }
  return { proc, stderr: () => err };
}

async function stopCapture(c: { proc: ReturnType<typeof spawn>; stderr: () => string }): Promise<string> {
  if (c.proc.exitCode === null) {
    c.proc.kill('SIGINT');
    await Promise.race([new Promise((r) => c.proc.once('exit', r)), sleep(3000)]);
    if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
  }
  const n = (what: string) => new RegExp(`(\\d+) packets? ${what}`).exec(c.stderr())?.[1] ?? '?';
  return `${n('captured')} of ${n('received by filter')} captured, ${n('dropped by kernel')} dropped`;
}

async function rr(lab: Lab, proto: string, rate: number, seconds: number, port: number, window = 1, trace?: string, perfFile?: string, legs?: string): Promise<Rr> {
  const a = lab.pod('pod-a');
  const b = lab.pod('pod-b');
  const server = spawn('ip', ['netns', 'exec', b.ns, PKTGEN, 'rr-server', proto, String(port), String(seconds + 5)], { stdio: 'ignore' });
  const caps: { proc: ReturnType<typeof spawn>; stderr: () => string }[] = [];
  let waits: ReturnType<typeof threadStates> | undefined;
  try {
    if (legs && trace) {
      caps.push(await capture(a.ns, proto, port, `${legs}-a.pcap`));
      caps.push(await capture(b.ns, proto, port, `${legs}-b.pcap`));
    }
    await sleep(300);
    const podwayPid = lab.nodes[0].proc?.pid;
    const s0 = [schedstat(podwayPid), schedstat(server.pid)];
    let perf: ReturnType<typeof spawn> | undefined;
    const out = await new Promise<string>((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', a.ns, PKTGEN, 'rr-client', proto, b.ip, String(port), '64', String(rate), String(seconds), String(window)], { stdio: ['ignore', 'pipe', 'pipe'], env: trace ? { ...process.env, PKTGEN_RR_TRACE: trace } : process.env });
      let o = '';
      const timer = setTimeout(() => c.kill('SIGKILL'), (seconds + 10) * 1000);
      c.stdout.on('data', (d) => { o += d; });
      // the client's own threads, read just before it exits (it sleeps 0.2 s draining at the end)
      let c0 = new Map<string, [number, number, number]>();
      let c1 = c0;
      setTimeout(() => { c0 = schedstat(c.pid); }, 100);
      if (perfFile) setTimeout(() => { perf = spawn('perf', ['sched', 'record', '-k', 'CLOCK_MONOTONIC', '-a', '-o', perfFile, '--', 'sleep', String(Math.max(0.5, Math.min(2, seconds - 1)))], { stdio: 'ignore' }); }, 300);
      const late = setTimeout(() => { c1 = schedstat(c.pid); }, seconds * 1000);
      c.on('exit', (code) => { clearTimeout(timer); clearTimeout(late); if (code === 0) resolve(o + '\n' + schedDelta('client', c0, c1)); else reject(new Error(`rr-client exited ${code}`)); });
    });
    const s1 = [schedstat(podwayPid), schedstat(server.pid)];
    const [json, clientSched] = out.trim().split('\n');
    const m = JSON.parse(json) as Rr;
    m.sched = [schedDelta('podway', s0[0], s1[0]), schedDelta('server', s0[1], s1[1]), clientSched].filter(Boolean).join('; ');
    if (perf && perfFile) {
      const p = perf;
      if (p.exitCode === null) await new Promise((r) => p.once('exit', r));
      m.wakes = wakePlaces(perfFile, server.pid, podwayPid);
      if (legs && podwayPid) {
        try {
          const script = execFileSync('perf', ['script', '-i', perfFile, '-F', 'time,event,trace'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
          waits = threadStates(script, podwayPid);
        } catch (e) {
          m.wakes += `; perf script failed: ${(e as Error).message.split('\n')[0]}`;
        }
      }
      rmSync(perfFile, { force: true });
    }
    if (legs && trace && caps.length === 2) {
      // tcpdump reads its ring a block at a time, a block handed over when full or after pcap's 1 s
      // timeout: stopped sooner, it loses the run's last frames ("received by filter" > "captured")
      await sleep(1500);
      const drops = [await stopCapture(caps[0]), await stopCapture(caps[1])];
      const fa = `${legs}-a.pcap`, fb = `${legs}-b.pcap`;
      const base = Math.min(pcapFirstSecond(fa), pcapFirstSecond(fb));
      const t = legTimes(readPcap(fa, base), readPcap(fb, base), proto as 'tcp' | 'udp', a.ip, m.sent, 64);
      m.legs = `${legsSummary(readFileSync(trace, 'utf8'), t)} (tcpdump in pod A / pod B: ${drops.join(' / ')})`;
      if (waits) m.legs += `\n  legs in the forwarder's waits: ${legsInWaits(readFileSync(trace, 'utf8'), t, waits, base, realtimeMinusMonotonicNs())}`;
      rmSync(fa, { force: true });
      rmSync(fb, { force: true });
    }
    return m;
  } finally {
    for (const c of caps) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const args = benchArgsOrExit(process.argv.slice(2), ARGS);
  const rounds = Number(args.opt('--rounds') ?? 3);
  const seconds = Number(args.opt('--seconds') ?? 4);
  const protos = (args.opt('--protos') ?? 'tcp,udp').split(',');
  const rateArg = args.opt('--rate') ?? 'half';
  const slowUs = Number(args.opt('--slow-us') ?? 1000);
  const perfSched = args.has('--perf-sched');
  const withLegs = args.has('--legs');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'rr-tail-'));
  const setups = args.all('--setup');
  if (setups.length === 0) setups.push('--workers 1');
  const lab = new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'pod-a', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'pod-b', type: 'veth' }] },
  ], { underlay: 'p2p' });
  let port = 7000;
  try {
    lab.build();
    lab.setMode('vxlan');
    configureKernelNode(lab, lab.nodes[1], 'vxlan');
    const n1 = lab.nodes[0];
    for (let r = 0; r < rounds; r++) {
      for (const setup of setups) {
        // `kernel`: node1 a kernel vxlan.calico node too (the baseline), no podway
        const kernel = setup === 'kernel';
        resetNode(lab, n1);
        lab.setMode('vxlan');
        if (kernel) configureKernelNode(lab, n1, 'vxlan');
        else await lab.startPodway('node1', 15_000, setup.split(/\s+/).filter(Boolean));
        const counters = async (): Promise<Counters> => (kernel ? { reasons: {}, ports: [] } : ((await controlRequest(n1.control, { cmd: 'counters' })) as Counters));
        try {
          for (let k = 0; k < 10 && !lab.ping('pod-a', lab.pod('pod-b').ip, 1).received; k++) await sleep(200);
          for (const proto of protos) {
            const w0 = await counters();
            const warm = await rr(lab, proto, 0, 2, port++, 16);
            const w1 = await counters();
            // requests per frame podway took from pod A at the maximum: a TCP sender with 16
            // requests outstanding packs several into one segment, so its maximum counts requests, not frames
            const podRx = (c: Counters) => c.ports.filter((p) => String(p.port).startsWith(lab.pod('pod-a').ifname)).reduce((s, p) => s + Number(p.rx), 0);
            const perFrame = kernel ? NaN : warm.sent / Math.max(1, podRx(w1) - podRx(w0));
            for (const rateOne of rateArg.split(',')) {
              const rate = rateOne === 'half' ? Math.max(100, Math.floor(warm.rate / 2)) : Number(rateOne);
              const c0 = await counters();
              const a0 = nstat(lab.pod('pod-a').ns);
              const b0 = nstat(lab.pod('pod-b').ns);
              const trace = path.join(tmp, `trace-${port}`);
              const m = await rr(lab, proto, rate, seconds, port++, 1, trace, perfSched ? path.join(tmp, `perf-${port}`) : undefined, withLegs ? path.join(tmp, `legs-${port}`) : undefined);
              const framesAtRate = podRx(await counters()) - podRx(c0);
              const a1 = nstat(lab.pod('pod-a').ns);
              const b1 = nstat(lab.pod('pod-b').ns);
              const c1 = await counters();
              const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
              console.log(`round ${r} [${setup}] ${proto} max ${warm.rate}/s (${perFrame.toFixed(2)} requests per frame from pod A), at ${rate}/s: sent ${m.sent} received ${m.received} in ${framesAtRate} frames from pod A, p50/p99/p99.9/max ${m.p50us}/${m.p99us}/${m.p999us}/${m.maxus} µs, p99 over sent (lost = slowest) ${m.p99sentus} µs (load ${load})`);
              console.log(`  pod A: ${nstatDelta(a0, a1)}`);
              console.log(`  pod B: ${nstatDelta(b0, b1)}`);
              console.log(`  podway: ${podwayDelta(c0, c1)}`);
              console.log(`  tail: ${episodes(trace, slowUs)}`);
              console.log(`  sched: ${m.sched}`);
              if (m.wakes) console.log(`  wake-ups: ${m.wakes}`);
              if (m.legs) console.log(`  legs: ${m.legs}`);
              rmSync(trace, { force: true });
            }
          }
        } finally {
          if (!kernel) await lab.stopPodway('node1');
        }
      }
    }
  } finally {
    for (const n of lab.nodes) await lab.stopPodway(n.name);
    lab.destroy();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
