/**
 * End-to-end throughput: podway against the Linux kernel (and per-packet userspace forwarders), side
 * by side in the same run, in packets per second and CPU per packet.
 *
 * Topology (network namespaces, src/lab): pod A -> node1 -> underlay veth -> node2 -> pod B.
 * Traffic: bench/e2e/pktgen.c in pod A (AF_PACKET sendmmsg flooder), counted by its sink in pod B.
 *
 *   npm run bench [-- --json] [-- --quick] [-- --only vxlan-encap,ipip] [-- --seconds 2]
 *                 [-- --podway-args "--rx-ring 3 --batch 128"] [-- --flows 1,1024]
 */
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LabNode, Mode, run, sleep } from '../../src/lab/lab';
import { configureKernelNode, resetNode } from '../../src/lab/kernel';
import { deriveVtepMac } from '../../src/control';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PKTGEN = path.join(ROOT, 'build', 'Release', 'pktgen');

type NodeRole = 'podway' | 'kernel' | 'naive-ipip' | 'naive-vxlan';
interface Setup { label: string; node1: NodeRole; node2: NodeRole; mode: Mode }
interface Scenario { name: string; podway: Setup; baselines: Setup[] }

const SCENARIOS: Scenario[] = [
  {
    name: 'vxlan-encap',
    podway: { label: 'podway -> kernel', node1: 'podway', node2: 'kernel', mode: 'vxlan' },
    baselines: [{ label: 'kernel -> kernel', node1: 'kernel', node2: 'kernel', mode: 'vxlan' }],
  },
  {
    name: 'vxlan-decap',
    podway: { label: 'kernel -> podway', node1: 'kernel', node2: 'podway', mode: 'vxlan' },
    baselines: [{ label: 'kernel -> kernel', node1: 'kernel', node2: 'kernel', mode: 'vxlan' }],
  },
  {
    name: 'direct',
    podway: { label: 'podway -> kernel', node1: 'podway', node2: 'kernel', mode: 'direct' },
    baselines: [{ label: 'kernel -> kernel', node1: 'kernel', node2: 'kernel', mode: 'direct' }],
  },
  {
    name: 'ipip',
    podway: { label: 'podway -> podway', node1: 'podway', node2: 'podway', mode: 'ipip' },
    baselines: [
      { label: 'raw-socket per-packet -> podway', node1: 'naive-ipip', node2: 'podway', mode: 'ipip' },
      { label: 'dgram VXLAN per-packet -> podway', node1: 'naive-vxlan', node2: 'podway', mode: 'ipip' },
    ],
  },
  {
    name: 'podway-both',
    podway: { label: 'podway -> podway', node1: 'podway', node2: 'podway', mode: 'vxlan' },
    baselines: [{ label: 'kernel -> kernel', node1: 'kernel', node2: 'kernel', mode: 'vxlan' }],
  },
];

interface Measurement {
  sent: number;
  received: number;
  seconds: number;
  pps: number;
  gbps: number;
  p50us: number;
  p99us: number;
  /** CPU seconds of the podway (or naive forwarder) processes */
  procCpu: number;
  /** CPU seconds of the whole machine (all cores, non-idle) */
  machineCpu: number;
}

function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = line[3] + line[4];
  const total = line.reduce((a, b) => a + b, 0);
  return (total - idle) / 100; // USER_HZ
}

function procCpuSeconds(pids: number[]): number {
  let t = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      t += (Number(rest[11]) + Number(rest[12])) / 100;
    } catch {
      /* gone */
    }
  }
  return t;
}

class Bench {
  readonly lab = new Lab([
    { name: 'node1', subnet: 'a', pods: [{ name: 'pod-a', type: 'veth' }] },
    { name: 'node2', subnet: 'a', pods: [{ name: 'pod-b', type: 'veth' }] },
  ], { underlay: 'p2p' });
  private naive: ChildProcess | null = null;
  constructor(readonly podwayArgs: string[] = []) {}
  private current = '';

  async configure(s: Setup): Promise<void> {
    const key = JSON.stringify(s);
    if (key === this.current) return;
    const lab = this.lab;
    for (const n of lab.nodes) await lab.stopPodway(n.name);
    await this.stopNaive();
    for (const n of lab.nodes) resetNode(lab, n);
    lab.setMode(s.mode);
    const roles: [LabNode, NodeRole][] = [[lab.nodes[0], s.node1], [lab.nodes[1], s.node2]];
    for (const [n, role] of roles) {
      if (role === 'kernel') configureKernelNode(lab, n, s.mode === 'direct' ? 'direct' : 'vxlan');
      else if (role === 'podway') await lab.startPodway(n.name, 15_000, this.podwayArgs);
      else this.startNaive(n, role === 'naive-ipip' ? 'ipip' : 'vxlan');
    }
    this.current = key;
    // The per-packet forwarders carry one direction only (pod A -> pod B), so a ping cannot
    // check them; their rows show what arrives.
    if (s.node1.startsWith('naive')) {
      await sleep(500);
      return;
    }
    // warm up: ARP for 169.254.1.1 and the underlay neighbours
    for (let k = 0; k < 10; k++) {
      const r = lab.ping('pod-a', lab.pod('pod-b').ip, 1);
      if (r.received === 1) return;
      await sleep(200);
    }
    throw new Error(`setup ${s.label} (${s.mode}): pod-a cannot reach pod-b`);
  }

  /** node1 hands the pod's packets for node2's block to a per-packet userspace forwarder. */
  private startNaive(n: LabNode, mode: 'ipip' | 'vxlan'): void {
    const lab = this.lab;
    const other = lab.nodes.find((x) => x !== n)!;
    const pod = n.pods[0];
    const ns = (args: string[]) => run('ip', ['netns', 'exec', n.ns, ...args]);
    ns(['sysctl', '-qw', 'net.ipv4.ip_forward=1', `net.ipv4.conf.${pod.ifname}.proxy_arp=1`, `net.ipv4.neigh.${pod.ifname}.proxy_delay=0`]);
    ns(['ip', 'route', 'replace', `${pod.ip}/32`, 'dev', pod.ifname, 'scope', 'link']);
    ns(['ip', 'route', 'replace', 'local', other.block, 'dev', 'lo', 'table', '100']);
    ns(['ip', 'rule', 'add', 'iif', pod.ifname, 'lookup', '100', 'pref', '100']);
    const js = path.join(ROOT, 'dist', 'bench', 'e2e', 'naive-forwarder.js');
    this.naive = spawn('ip', ['netns', 'exec', n.ns, process.execPath, js, mode, other.ip, deriveVtepMac(n.name), deriveVtepMac(other.name)], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  private async stopNaive(): Promise<void> {
    const p = this.naive;
    if (!p) return;
    this.naive = null;
    p.kill('SIGTERM');
    await Promise.race([new Promise((r) => p.once('exit', r)), sleep(3000)]);
    const n = this.lab.nodes[0];
    run('ip', ['netns', 'exec', n.ns, 'ip', 'rule', 'del', 'pref', '100'], { allowFail: true });
    run('ip', ['netns', 'exec', n.ns, 'ip', 'route', 'flush', 'table', '100'], { allowFail: true });
  }

  private forwarderPids(): number[] {
    const pids: number[] = [];
    for (const n of this.lab.nodes) if (n.proc?.pid) pids.push(n.proc.pid);
    if (this.naive?.pid) pids.push(this.naive.pid);
    return pids;
  }

  async measure(size: number, flows: number, pps: number, seconds: number): Promise<Measurement> {
    const a = this.lab.pod('pod-a');
    const b = this.lab.pod('pod-b');
    const sink = spawn('ip', ['netns', 'exec', b.ns, PKTGEN, 'sink', '9001', String(seconds + 1.5)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let sinkOut = '';
    sink.stdout!.on('data', (d) => (sinkOut += d));
    await sleep(300);
    const pids = this.forwarderPids();
    const cpu0 = procCpuSeconds(pids);
    const m0 = machineBusySeconds();
    const sendOut = execFileSync('ip', ['netns', 'exec', a.ns, PKTGEN, 'send', 'eth0', a.mac!, 'ee:ee:ee:ee:ee:ee', a.ip, b.ip, String(size), String(flows), String(pps), String(seconds)], { encoding: 'utf8', timeout: (seconds + 10) * 1000 });
    const cpu1 = procCpuSeconds(pids);
    const m1 = machineBusySeconds();
    await Promise.race([new Promise((r) => sink.once('exit', r)), sleep((seconds + 5) * 1000)]);
    if (sink.exitCode === null) sink.kill('SIGKILL');
    const s = JSON.parse(sendOut) as { sent: number; seconds: number };
    const r = JSON.parse(sinkOut.trim() || '{"received":0,"p50us":-1,"p99us":-1}') as { received: number; p50us: number; p99us: number };
    const dpps = r.received / s.seconds;
    return {
      sent: s.sent, received: r.received, seconds: s.seconds, pps: dpps, gbps: (dpps * size * 8) / 1e9,
      p50us: r.p50us, p99us: r.p99us, procCpu: cpu1 - cpu0, machineCpu: m1 - m0,
    };
  }

  /** The highest offered rate (from a few steps below the unbounded delivered rate) with < 0.1% loss. */
  async lossFreeRate(size: number, flows: number, maxPps: number, seconds: number, steps: number[]): Promise<number> {
    for (const f of steps) {
      const rate = Math.max(1000, Math.floor(maxPps * f));
      const m = await this.measure(size, flows, rate, seconds);
      if (m.sent > 0 && (m.sent - m.received) / m.sent < 0.001) return rate;
    }
    return 0;
  }

  async destroy(): Promise<void> {
    await this.stopNaive();
    this.lab.destroy();
  }
}

interface Row {
  scenario: string; size: number; flows: number; setup: string; baseline: string;
  pps: number; baselinePps: number; ratio: number; gbps: number;
  cpuUsPerPkt: number; baselineCpuUsPerPkt: number; podwayCpuUsPerPkt: number;
  lossFreePps: number; p50us: number; p99us: number;
}

function machineInfo() {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown';
  return { cpu, cores: os.cpus().length, kernel: os.release(), node: process.version, date: new Date().toISOString() };
}

async function main() {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const quick = args.includes('--quick');
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : null;
  const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : quick ? 1 : 2;
  const sizes = quick ? [64] : [64, 1400];
  const flowsList = args.includes('--flows') ? args[args.indexOf('--flows') + 1].split(',').map(Number) : quick ? [1] : [1, 1024];
  if (process.getuid && process.getuid() !== 0) throw new Error('the e2e benchmark needs root (network namespaces)');
  const podwayArgs = args.includes('--podway-args') ? args[args.indexOf('--podway-args') + 1].split(' ').filter(Boolean) : [];
  const bench = new Bench(podwayArgs);
  const onExit = () => bench.lab.destroy();
  process.once('SIGINT', () => { onExit(); process.exit(130); });
  const rows: Row[] = [];
  const errors: string[] = [];
  try {
    bench.lab.build();
    for (const sc of SCENARIOS) {
      if (only && !only.includes(sc.name)) continue;
      try {
        await runScenario(sc);
      } catch (e) {
        // one broken setup must not throw away the other scenarios' figures
        process.stderr.write(`bench: ${sc.name}: ${(e as Error).message}\n`);
        errors.push(`${sc.name}: ${(e as Error).message}`);
      }
    }
  } finally {
    await bench.destroy();
  }
  async function runScenario(sc: Scenario): Promise<void> {
      const podwayRes: Record<string, Measurement & { lossFree: number; lat: Measurement }> = {};
      await bench.configure(sc.podway);
      for (const size of sizes) {
        for (const flows of flowsList) {
          const m = await bench.measure(size, flows, 0, seconds);
          const lossFree = await bench.lossFreeRate(size, flows, m.pps, seconds, quick ? [0.9, 0.5] : [1.0, 0.7, 0.4]);
          const lat = await bench.measure(size, flows, Math.max(1000, Math.floor((lossFree || m.pps * 0.3) / 2)), seconds);
          podwayRes[`${size}/${flows}`] = { ...m, lossFree, lat };
          if (!json) process.stderr.write(`${sc.name} ${sc.podway.label} ${size}B ${flows} flows: ${Math.round(m.pps)} pps\n`);
        }
      }
      for (const base of sc.baselines) {
        await bench.configure(base);
        for (const size of sizes) {
          for (const flows of flowsList) {
            const bm = await bench.measure(size, flows, 0, seconds);
            const p = podwayRes[`${size}/${flows}`];
            if (!json) process.stderr.write(`${sc.name} ${base.label} ${size}B ${flows} flows: ${Math.round(bm.pps)} pps\n`);
            rows.push({
              scenario: sc.name, size, flows, setup: sc.podway.label, baseline: base.label,
              pps: Math.round(p.pps), baselinePps: Math.round(bm.pps), ratio: bm.pps ? +(p.pps / bm.pps).toFixed(2) : Infinity,
              gbps: +p.gbps.toFixed(3),
              cpuUsPerPkt: p.received ? +((p.machineCpu * 1e6) / p.received).toFixed(2) : 0,
              baselineCpuUsPerPkt: bm.received ? +((bm.machineCpu * 1e6) / bm.received).toFixed(2) : 0,
              podwayCpuUsPerPkt: p.received ? +((p.procCpu * 1e6) / p.received).toFixed(2) : 0,
              lossFreePps: p.lossFree, p50us: p.lat.p50us, p99us: p.lat.p99us,
            });
          }
        }
      }
  }
  const info = machineInfo();
  if (json) {
    for (const r of rows) {
      const { scenario, size, flows, pps, baselinePps, ratio, cpuUsPerPkt, baselineCpuUsPerPkt } = r;
      process.stdout.write(JSON.stringify({ scenario, size, flows, pps, baselinePps, ratio: Number.isFinite(ratio) ? ratio : null, cpuUsPerPkt, baselineCpuUsPerPkt, baseline: r.baseline, lossFreePps: r.lossFreePps, p50us: r.p50us, p99us: r.p99us, podwayCpuUsPerPkt: r.podwayCpuUsPerPkt, machine: info }) + '\n');
    }
    return;
  }
  console.log(`\nmachine: ${info.cpu}, ${info.cores} cores, kernel ${info.kernel}, Node ${info.node}, ${info.date}; ${seconds}s per measurement\n`);
  console.log('| scenario | size | flows | podway setup | baseline | podway pps | baseline pps | ratio | Gb/s | loss-free pps (<0.1%) | p50/p99 µs at half that | machine CPU µs/pkt podway / baseline | podway process µs/pkt |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.scenario} | ${r.size} | ${r.flows} | ${r.setup} | ${r.baseline} | ${r.pps} | ${r.baselinePps} | ${Number.isFinite(r.ratio) ? r.ratio + 'x' : 'baseline delivered 0'} | ${r.gbps} | ${r.lossFreePps} | ${r.p50us}/${r.p99us} | ${r.cpuUsPerPkt} / ${r.baselineCpuUsPerPkt} | ${r.podwayCpuUsPerPkt} |`);
  }
  for (const e of errors) console.log(`\nscenario failed: ${e}`);
  if (errors.length) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exit(1);
});
