/**
 * End-to-end throughput: podway against the Linux kernel (and per-packet userspace forwarders), side
 * by side in the same run, in packets per second and CPU per packet.
 *
 * Topology (network namespaces, src/lab): pod A -> node1 -> underlay veth -> node2 -> pod B.
 * Pods are veth pods with their offloads on (TSO/GSO, checksum offload), as CNIs leave them; the
 * underlay veth between the nodes has tx offloads off, like a wire (see Bench.build).
 * Scenario kinds:
 * - pps (vxlan-encap, vxlan-decap, direct, ipip, podway-both): bench/e2e/pktgen.c in pod A
 *   (AF_PACKET sendmmsg flooder), counted by its sink in pod B.
 * - tcp-bulk: iperf3 pod A -> pod B and B -> A (-R), 1 and 8 streams: Gb/s and CPU per GB.
 *   tcp6-bulk: the same over IPv6 (pod B's IPv6 address, VXLAN over IPv6) in the dual-stack lab.
 * - rr-latency: pktgen rr-client/rr-server (C, one thread each), TCP and UDP 64 B request/response:
 *   the maximum rate (16 outstanding), then p50/p99/p99.9 round trips open loop at 100/s and at half
 *   that maximum. Baselines: the kernel, and the "C floor" (bench/e2e/floorfwd.c doing node1's hop
 *   with the least userspace work: what any userspace forwarder pays here, wake-up included).
 * - idle: `podway run` with 100 veth endpoints and no traffic: the CPU of its whole process tree
 *   (helpers and exited children included: proc-tree.ts) over 10 s, its wake-ups, the machine's idle.
 * - observe (issue 17's goal): vxlan-encap 64 B, 100 flows, one podway run with --metrics-port:
 *   alternately plain (A), scraped every second + `podway capture port 1 -w /dev/null` (matches
 *   nothing: B), plain, scraped + `podway capture port 10000` (pktgen's source ports are 10000 +
 *   seq % flows: 1 packet in 100, C), ... ending with A; each B or C is divided by the mean of
 *   the A runs either side of it. --rounds N (default 5, 3 with --quick) B/C pairs.
 * - nat-udp (pps): natOutgoing, pod A -> an "outside" address (203.0.113.10 on node2's loopback,
 *   outside every pool), 64 B, 1 and 1,000 flows: podway (masquerading in its nftables table)
 *   against the kernel forwarding with the same masquerade rule (Calico's MASQUERADE
 *   --random-fully), and against podway's unNATed egress (what the NAT stage costs).
 * - nat6-udp (pps): the same over IPv6 in the dual-stack lab: pod A -> fd00:203::10 on node2's
 *   loopback, podway's table ip6 podway against the kernel's ip6 masquerade with the same rule
 *   and against podway's unNATed IPv6 egress (78 B: the smallest IPv6 frame pktgen sends).
 * - vxlan6-encap (pps, issue 15's goal): vxlan-encap over IPv6 in a dual-stack lab of its own (its
 *   pods' MTU is 1430, IPv6 VXLAN's overhead, so the IPv4 rows keep the IPv4 lab): pod A sends
 *   IPv6/UDP to pod B's IPv6 address, podway encapsulating against a kernel node1 with Felix's
 *   `vxlan-v6.calico`, node2 a kernel `vxlan-v6.calico` node in both. The smallest IPv6 frame
 *   pktgen sends is 78 B (14 + 40 + 8 + its 16-byte payload): the 64 B row is run and labelled 78.
 *
 * Rounds (--rounds N; default 3, 1 with --quick): every ratio is taken within a round. A pps row's
 * setups are measured interleaved, baseline(s), podway, [compare podway], then again, N times
 * (each setup started before its measurement, outside the measured window); tcp-bulk and
 * rr-latency order them by round (each setup started once per round and all its cases measured
 * before the next setup's). A row reports the median of each setup's figures over the rounds
 * that counted, the median of the per-round ratios and their spread, and every round's raw
 * figures in --json (bench/e2e/rounds.ts; bench/README.md "Rounds").
 *
 *   npm run bench [-- --json] [-- --quick] [-- --only vxlan-encap,vxlan6-encap,tcp-bulk,tcp-bulk-podway,tcp-bulk-ipip,tcp6-bulk,rr-latency,idle]
 *                 [-- --seconds 2] [-- --podway-args "--rx-ring 3 --batch 128"] [-- --flows 1,1024]
 *                 [-- --compare-podway-args "--rx-ring 3"]   (a second podway setup in the same run)
 *                 [-- --compare-podway-args "--metrics-port 9091"]   (metrics scraped every second: what they cost)
 *                 [-- --only idle --compare-root ../before --rounds 3]   (idle: another checkout's build beside this one, alternated)
 *                 [-- --rounds 3]   (every row's setups interleaved N times: medians, per-round ratios' median and min-max; 1 with --quick)
 *                 [-- --only observe [-- --rounds 5]]   (metrics + capture cost: issue 17's goal)
 *                 [-- --cpu-rate 100000]   (also measure every pps setup at this offered rate: CPU per packet at equal load)
 *                 [-- --streams 8] [-- --directions a-b]   (tcp-bulk: only these cases; default 1,8 and a-b,b-a)
 *                 [-- --underlay-offloads]   (leave the underlay veth's tx offloads on: see Bench.build)
 *                 [-- --floor-args "--fifo 1"]   (options for the C floor forwarder: --fifo N, --cpu N, --slack NS, --busy-poll US)
 *
 * --seconds sets every measurement's length; without it pps measurements take 2 s (1 with --quick),
 * tcp-bulk and rr-latency runs and idle 10 s each (idle 3 with --quick).
 */
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { controlRequest } from '../../src/dataplane/control-server';
import { existsSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LabNode, Mode, POOL_CIDR, POOL6_CIDR, run, sleep } from '../../src/lab/lab';
import { configureKernelNode, kernelMasquerade, kernelMasquerade6, resetNode } from '../../src/lab/kernel';
import { deriveVtepMac } from '../../src/control';
import { benchArgsOrExit } from './bench-args';
import { sampleTree, treeUsage, ProcUsage } from './proc-tree';
import { median, medianOrNull, NoRoundCounted, RatioSummary, ratioText, summariseRounds } from './rounds';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PKTGEN = path.join(ROOT, 'build', 'Release', 'pktgen');

const RUN_ARGS = {
  usage: `usage: node dist/bench/e2e/run.js [--json] [--quick] [--only SCENARIO[,SCENARIO...]] [--seconds N]
         [--flows 1,1024] [--podway-args "ARGS"] [--compare-podway-args "ARGS"] [--floor-args "ARGS"]
         [--rounds N] [--cpu-rate PPS] [--streams 1,8] [--directions a-b,b-a] [--underlay-offloads]
         [--compare-root DIR]
  --rounds N   every row's setups measured interleaved N times (baseline, podway, [compare], ...;
               an integer from 1 to 1000; default 3, 1 with --quick): the row reports each setup's
               median, the median of the per-round ratios and their min-max, --json every round.
               observe: N B/C pairs (default 5, 3 with --quick). idle: once per setup, or N
               times alternated when --rounds is given.
  --compare-root DIR   idle: a second podway setup, another built checkout's (DIR/bin/podway.js:
               the code before a change, say), measured in the same lab beside this one's.
Needs root; run it under the machine's bench lock (flock /tmp/pw-bench.lock ...). bench/README.md
describes every scenario and option.`,
  flags: ['--json', '--quick', '--underlay-offloads'],
  options: ['--only', '--seconds', '--flows', '--podway-args', '--compare-podway-args', '--floor-args', '--rounds', '--cpu-rate', '--streams', '--directions', '--compare-root'],
};

type NodeRole = 'podway' | 'kernel' | 'naive-ipip' | 'naive-vxlan' | 'c-floor';
const FLOORFWD = path.join(ROOT, 'build', 'Release', 'floorfwd');
/** args: podway's extra command-line arguments for this setup (default: --podway-args).
 * nat: the pool's natOutgoing (a kernel node1 masquerades as Calico's iptables would); outside:
 * pod A sends to OUTSIDE_IP on node2 instead of pod B. */
interface Setup { label: string; node1: NodeRole; node2: NodeRole; mode: Mode; args?: string[]; nat?: boolean; outside?: boolean;
  /** the checkout whose bin/podway.js runs (idle, --compare-root); default this one */
  root?: string;
  /** pod A sends IPv6/UDP to pod B's IPv6 address (in the dual-stack Bench) */
  ipv6?: boolean }
/** The smallest IPv6/UDP frame pktgen sends: Ethernet 14 + IPv6 40 + UDP 8 + its 16-byte payload. */
const MIN_FRAME6 = 78;
/** An address outside every pool, held by node2's loopback in the nat scenarios (TEST-NET-3). */
const OUTSIDE_IP = '203.0.113.10';
/** The IPv6 outside address on node2's loopback in the dual-stack Bench (nat6-udp), a ULA range used nowhere else. */
const OUTSIDE_IP6 = 'fd00:203::10';
type Kind = 'pps' | 'tcp-bulk' | 'rr-latency' | 'idle' | 'observe';
/** sizes/flows: this scenario's own (instead of the run's). */
interface Scenario { name: string; kind?: Kind; podway: Setup; baselines: Setup[]; sizes?: number[]; flows?: number[] }

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
  {
    name: 'vxlan6-encap',
    podway: { label: 'podway -> kernel (IPv6 VXLAN)', node1: 'podway', node2: 'kernel', mode: 'vxlan', ipv6: true },
    baselines: [{ label: 'kernel vxlan-v6.calico -> kernel', node1: 'kernel', node2: 'kernel', mode: 'vxlan', ipv6: true }],
  },
  {
    name: 'nat-udp',
    podway: { label: 'podway natOutgoing -> outside', node1: 'podway', node2: 'kernel', mode: 'vxlan', nat: true, outside: true },
    baselines: [
      { label: 'kernel MASQUERADE -> outside', node1: 'kernel', node2: 'kernel', mode: 'vxlan', nat: true, outside: true },
      { label: 'podway unNATed -> outside', node1: 'podway', node2: 'kernel', mode: 'vxlan', nat: false, outside: true },
    ],
    sizes: [64],
    flows: [1, 1000],
  },
  // nat-udp over IPv6 in the dual-stack lab: podway's table ip6 podway against the kernel's ip6 masquerade
  {
    name: 'nat6-udp',
    podway: { label: 'podway natOutgoing -> outside (IPv6)', node1: 'podway', node2: 'kernel', mode: 'vxlan', nat: true, outside: true, ipv6: true },
    baselines: [
      { label: 'kernel ip6 MASQUERADE -> outside', node1: 'kernel', node2: 'kernel', mode: 'vxlan', nat: true, outside: true, ipv6: true },
      { label: 'podway unNATed -> outside (IPv6)', node1: 'podway', node2: 'kernel', mode: 'vxlan', nat: false, outside: true, ipv6: true },
    ],
    sizes: [64],
    flows: [1, 1000],
  },
  // What a pod feels: node1 is podway or the kernel, node2 is always a kernel vxlan.calico node.
  {
    name: 'tcp-bulk',
    kind: 'tcp-bulk',
    podway: { label: 'podway -> kernel', node1: 'podway', node2: 'kernel', mode: 'vxlan' },
    baselines: [{ label: 'kernel -> kernel', node1: 'kernel', node2: 'kernel', mode: 'vxlan' }],
  },
  // tcp-bulk between two podway nodes (both get --podway-args); with --underlay-offloads each
  // sends runs of VXLAN datagrams as UDP GSO messages the other receives whole (native/rxsuper.h)
  {
    name: 'tcp-bulk-podway',
    kind: 'tcp-bulk',
    podway: { label: 'podway -> podway', node1: 'podway', node2: 'podway', mode: 'vxlan' },
    baselines: [{ label: 'kernel -> kernel', node1: 'kernel', node2: 'kernel', mode: 'vxlan' }],
  },
  // tcp-bulk between two podway nodes in IPIP mode (no ipip module in this kernel: no kernel
  // baseline), against the same two podways in VXLAN: IPIP's segments leave one datagram each
  // (no GSO type carries IPIP), VXLAN's as UDP GSO messages (bench/README.md, "IPIP tcp-bulk")
  {
    name: 'tcp-bulk-ipip',
    kind: 'tcp-bulk',
    podway: { label: 'podway -> podway (IPIP)', node1: 'podway', node2: 'podway', mode: 'ipip' },
    baselines: [{ label: 'podway -> podway (VXLAN)', node1: 'podway', node2: 'podway', mode: 'vxlan' }],
  },
  // tcp-bulk over IPv6 (VXLAN over IPv6) in the dual-stack lab: pod B's IPv6 address, pod MTU 1430
  {
    name: 'tcp6-bulk',
    kind: 'tcp-bulk',
    podway: { label: 'podway -> kernel (IPv6 VXLAN)', node1: 'podway', node2: 'kernel', mode: 'vxlan', ipv6: true },
    baselines: [{ label: 'kernel vxlan-v6.calico -> kernel', node1: 'kernel', node2: 'kernel', mode: 'vxlan', ipv6: true }],
  },
  {
    name: 'rr-latency',
    kind: 'rr-latency',
    podway: { label: 'podway -> kernel', node1: 'podway', node2: 'kernel', mode: 'vxlan' },
    // the C floor: the least a userspace forwarder does for the same hop (bench/e2e/floorfwd.c)
    baselines: [
      { label: 'kernel -> kernel', node1: 'kernel', node2: 'kernel', mode: 'vxlan' },
      { label: 'C floor -> kernel', node1: 'c-floor', node2: 'kernel', mode: 'vxlan' },
    ],
  },
  // Issue 17's goal: vxlan-encap 64 B pps of one podway serving metrics, scraped every second and
  // capturing (a filter matching nothing, then one matching 1% of the packets), against the same
  // podway with neither, interleaved A B A C A ... (runObserve).
  {
    name: 'observe',
    kind: 'observe',
    podway: { label: 'podway -> kernel', node1: 'podway', node2: 'kernel', mode: 'vxlan' },
    baselines: [],
  },
  {
    name: 'idle',
    kind: 'idle',
    podway: { label: 'podway, 100 veth endpoints', node1: 'podway', node2: 'kernel', mode: 'vxlan' },
    baselines: [],
  },
];

/** `setup` with podway's arguments in its label when they are not the default ones. */
function withArgs(s: Setup, args: string[] | undefined): Setup {
  if (!args) return s;
  return { ...s, args, label: s.label.replace('podway', `podway (${args.join(' ') || 'defaults'})`) };
}

interface Measurement {
  sent: number;
  /** unique frames sent within the measured window that arrived by the sender's last send stamp
   * + 20 ms (pktgen sink): pps is this over the sender's seconds */
  received: number;
  /** frames of this sender that arrived later (a forwarder's backlog drained after sending ended),
   * repeated sequence numbers, and frames of an earlier sender: none of them in received */
  late: number; dup: number; stale: number;
  seconds: number;
  pps: number;
  gbps: number;
  p50us: number;
  p99us: number;
  /** CPU seconds of the podway (or naive forwarder) processes */
  procCpu: number;
  /** CPU seconds of the whole machine (all cores, non-idle) */
  machineCpu: number;
  /** CPU seconds of the path alone: pktgen's sender (its system time: the kernel work its sends
   * run in its context, node1's receive and in the kernel baseline the whole path; its user time
   * is the generator's own loop, the same per frame for every setup, and spins under a rate
   * limit) and sink (user + system), the forwarder processes, and the ksoftirqd threads (softirq
   * work deferred out of those contexts). Unlike machineCpu, other work on a shared machine is
   * not in it. */
  pathCpu: number;
  /** its parts, CPU seconds: pktgen send (system time), pktgen sink, ksoftirqd threads */
  senderCpu: number; sinkCpu: number; softirqdCpu: number;
  /** podway's own ports over the measurement (node1's podway: its pod and underlay ports), or
   * undefined for a setup without one: frames per receive and send call, µs per sendmmsg */
  ports?: string;
  /** NET_RX softirq runs over the sender's seconds, machine-wide (/proc/softirqs): the kernel's
   * path runs one per frame pktgen sends; a veth underlay adds one per podway send message */
  netRx: number;
}

/** NET_RX softirq runs so far, all CPUs (/proc/softirqs): how many times the receive softirq ran,
 * machine-wide (other work on the machine counts too). */
function netRxSoftirqs(): number {
  const line = readFileSync('/proc/softirqs', 'utf8').split('\n').find((l) => l.trim().startsWith('NET_RX:'));
  return line ? line.trim().split(/\s+/).slice(1).reduce((a, v) => a + Number(v), 0) : 0;
}

function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = line[3] + line[4];
  const total = line.reduce((a, b) => a + b, 0);
  return (total - idle) / 100; // USER_HZ
}

/** Seconds of CPU time per /proc/stat column (user nice system idle iowait irq softirq steal). */
function machineColumns(): number[] {
  return readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map((v) => Number(v) / 100);
}

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Where a pps measurement's path CPU went, µs per delivered packet. */
function cpuParts(m: Measurement): string {
  const us = (x: number) => (m.received ? ((x * 1e6) / m.received).toFixed(2) : '-');
  // the sender's work per frame it sent: frames a forwarder's full ring dropped cost it too, so
  // per delivered packet it grows with the loss whatever the per-frame cost
  const perSent = m.sent ? ((m.senderCpu * 1e6) / m.sent).toFixed(2) : '-';
  return `µs/pkt: sender ${us(m.senderCpu)} (${perSent} per frame sent), forwarder ${us(m.procCpu)}, sink ${us(m.sinkCpu)}, ksoftirqd ${us(m.softirqdCpu)}, machine ${us(m.machineCpu)}; sent ${m.sent}, received ${m.received} in ${m.seconds.toFixed(2)} s, late ${m.late}, dup ${m.dup}, loss ${m.sent ? (100 * (1 - m.received / m.sent)).toFixed(1) : '-'}%; NET_RX softirq runs (machine-wide) ${m.netRx}: ${m.sent ? (m.netRx / m.sent).toFixed(3) : '-'} per frame sent, ${m.received ? ((m.netRx - m.sent) / m.received).toFixed(3) : '-'} more per frame received`;
}

/**
 * Per podway port with traffic over a measurement: frames per receive call (rx/rxCalls), frames
 * per send call (tx/txCalls), sendmmsg calls and µs per call (what the call's kernel work costs,
 * node2's receive included on a veth underlay), transmit GSO messages and their datagrams.
 */
function portDeltas(a: Record<string, unknown>[], b: Record<string, unknown>[]): string {
  const by = new Map(a.map((p) => [String(p.port), p]));
  const parts: string[] = [];
  for (const q of b) {
    const p = by.get(String(q.port));
    if (!p) continue;
    const d = (k: string) => Number(q[k] ?? 0) - Number(p[k] ?? 0);
    const rx = d('rx'), tx = d('tx');
    if (rx + tx < 1000) continue;
    const per = (x: number, n: number) => (n > 0 ? (x / n).toFixed(1) : '-');
    parts.push(`${String(q.port)}: rx ${rx} in ${d('rxCalls')} calls (${per(rx, d('rxCalls'))}/call), tx ${tx} in ${d('txCalls')} calls (${per(tx, d('txCalls'))}/call), ` +
      `${d('txSyscalls')} sendmmsg (${per(d('txSyscallNs') / 1000, d('txSyscalls'))} µs each), js ${per(d('jsNs') / 1000, d('jsSamples'))} µs/batch, gso ${d('txGsoFrames')} msgs of ${d('txGsoSegments')}, kernelDrops ${d('kernelDrops')}`);
  }
  return parts.join('; ');
}

/** The pids of the ksoftirqd threads. */
function ksoftirqdPids(): number[] {
  const pids: number[] = [];
  for (let cpu = 0; cpu < os.cpus().length; cpu++) {
    try {
      pids.push(Number(execFileSync('pgrep', ['-x', `ksoftirqd/${cpu}`], { encoding: 'utf8' }).trim().split('\n')[0]));
    } catch {
      /* none */
    }
  }
  return pids.filter((p) => p > 0);
}

function procCpuSeconds(pids: number[]): number {
  const [u, s] = procUserSys(pids);
  return u + s;
}

/** User and system CPU seconds of these processes (/proc/PID/stat utime, stime). */
function procUserSys(pids: number[]): [number, number] {
  let u = 0;
  let s = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      u += Number(rest[11]) / 100;
      s += Number(rest[12]) / 100;
    } catch {
      /* gone */
    }
  }
  return [u, s];
}

class Bench {
  readonly lab: Lab;
  private naive: ChildProcess | null = null;
  /** Scrapers of podways that serve metrics (--metrics-port in their args): one GET a second. */
  private scrapers: ChildProcess[] = [];
  /** dualStack: the IPv6 scenarios' lab (pods and nodes with IPv6 too, pod MTU 1430 in vxlan). */
  /** floorArgs: options for bench/e2e/floorfwd.c (--floor-args: --fifo N, --cpu N, ...) */
  constructor(readonly podwayArgs: string[] = [], dualStack = false, readonly floorArgs: string[] = []) {
    this.lab = new Lab([
      { name: 'node1', subnet: 'a', pods: [{ name: 'pod-a', type: 'veth' }] },
      { name: 'node2', subnet: 'a', pods: [{ name: 'pod-b', type: 'veth' }] },
    ], { underlay: 'p2p', dualStack });
  }
  private current = '';

  async configure(s: Setup): Promise<void> {
    const key = JSON.stringify(s);
    if (key === this.current) return;
    const lab = this.lab;
    for (const n of lab.nodes) {
      const running = !!n.proc && n.proc.exitCode === null;
      // a podway SIGKILLed after 20 s leaves its nft tables (resetNode removes them) and maybe
      // more: the next setup's figures would not be the setup's own
      if ((await lab.stopPodway(n.name)) === null && running) throw new Error(`podway on ${n.name} did not stop within 20 s of SIGTERM (SIGKILLed): setup ${s.label} not measured`);
    }
    await this.stopNaive();
    this.stopScrapers();
    for (const n of lab.nodes) resetNode(lab, n);
    lab.natOutgoing = !!s.nat;
    lab.natOutgoing6 = !!s.nat && !!s.ipv6;
    lab.setMode(s.mode);
    const roles: [LabNode, NodeRole][] = [[lab.nodes[0], s.node1], [lab.nodes[1], s.node2]];
    for (const [n, role] of roles) {
      if (role === 'kernel') {
        configureKernelNode(lab, n, s.mode === 'direct' ? 'direct' : 'vxlan');
        if (s.nat && n === lab.nodes[0]) kernelMasquerade(lab, n, POOL_CIDR);
        if (s.nat && s.ipv6 && n === lab.nodes[0]) kernelMasquerade6(lab, n, POOL6_CIDR);
      }
      else if (role === 'podway') {
        const args = s.args ?? this.podwayArgs;
        await lab.startPodway(n.name, 15_000, args);
        const port = args.indexOf('--metrics-port');
        if (port >= 0) this.startScraper(n, Number(args[port + 1]));
      }
      else if (role === 'c-floor') this.startFloor(n);
      else this.startNaive(n, role === 'naive-ipip' ? 'ipip' : 'vxlan');
    }
    this.current = key;
    const podB = lab.pod('pod-b');
    if (s.ipv6 && !podB.ip6) throw new Error(`setup ${s.label}: IPv6 needs the dual-stack lab`);
    const outsideIp = s.ipv6 ? OUTSIDE_IP6 : OUTSIDE_IP;
    this.dst = s.outside ? { ns: lab.nodes[1].ns, ip: outsideIp } : { ns: podB.ns, ip: s.ipv6 ? podB.ip6! : podB.ip };
    this.ipv6 = !!s.ipv6;
    // The per-packet forwarders carry one direction only (pod A -> pod B), so a ping cannot
    // check them; their rows show what arrives.
    if (s.node1.startsWith('naive')) {
      await sleep(500);
      return;
    }
    // warm up: ARP for 169.254.1.1 and the underlay neighbours
    for (let k = 0; k < 10; k++) {
      const r = lab.ping('pod-a', s.outside ? (s.ipv6 ? podB.ip6! : podB.ip) : this.dst.ip, 1);
      // a NATed ping comes back only through the masquerade, so it checks that path too
      if (r.received === 1 && (!s.outside || lab.ping('pod-a', outsideIp, 1).received === 1)) return;
      await sleep(200);
    }
    throw new Error(`setup ${s.label} (${s.mode}): pod-a cannot reach ${s.outside ? 'pod-b or ' + outsideIp : `pod-b (${this.dst.ip})`}`);
  }

  /** measure() sends IPv6 (pod A's and pod B's IPv6 addresses; the sink listens on IPv6). */
  private ipv6 = false;

  /** Where measure() sends: pod B, or the outside address on node2 (Setup.outside). */
  private dst = { ns: '', ip: '' };

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
    this.naive = track(spawn('ip', ['netns', 'exec', n.ns, process.execPath, js, mode, other.ip, deriveVtepMac(n.name), deriveVtepMac(other.name)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /**
   * node1's hop done by bench/e2e/floorfwd.c (VXLAN, towards the other node's kernel vxlan.calico):
   * the least work a userspace forwarder can do for it, podway's way (V2 ring with a vnet header
   * on the pod's veth, AF_PACKET on the underlay, a UDP socket for VXLAN back). The kernel is kept
   * from forwarding or proxy-ARPing for the pod, as podway keeps it.
   */
  private startFloor(n: LabNode): void {
    const lab = this.lab;
    const other = lab.nodes.find((x) => x !== n)!;
    const pod = n.pods[0];
    run('ip', ['netns', 'exec', n.ns, 'sysctl', '-qw', `net.ipv4.conf.${pod.ifname}.forwarding=0`, `net.ipv4.conf.${pod.ifname}.proxy_arp=0`]);
    const peerMac = run('ip', ['netns', 'exec', other.ns, 'cat', '/sys/class/net/eth0/address']).trim();
    this.naive = track(spawn('ip', ['netns', 'exec', n.ns, FLOORFWD, pod.ifname, pod.mac!, 'eth0', n.ip, other.ip, peerMac, deriveVtepMac(n.name), deriveVtepMac(other.name), ...this.floorArgs], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** Scrape the node's podway every second for as long as this setup runs (the issue's goal:
   * forwarding with metrics scraped every second >= 0.98x of the same without). */
  startScraper(n: LabNode, port: number): ChildProcess {
    // stdout: its one line at exit (scrapes done and failed)
    const p = track(spawn('ip', ['netns', 'exec', n.ns, process.execPath, path.join(__dirname, 'scraper.js'), `http://127.0.0.1:${port}/metrics`, '1000'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    this.scrapers.push(p);
    return p;
  }

  stopScrapers(): void {
    for (const p of this.scrapers) if (p.exitCode === null) p.kill('SIGTERM');
    this.scrapers = [];
  }

  /** `podway capture FILTER -w /dev/null` against node1's podway, resolved once the dataplane
   * captures (the client says "capturing"). */
  async startCapture(filter: string[]): Promise<ChildProcess> {
    const bin = path.join(ROOT, 'bin', 'podway.js');
    const p = track(spawn(process.execPath, [bin, 'capture', '--control', this.lab.nodes[0].control, ...filter, '-w', '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    p.stderr!.setEncoding('utf8');
    p.stderr!.on('data', (d: string) => (err += d));
    (p as ChildProcess & { errText: () => string }).errText = () => err;
    const end = Date.now() + 10_000;
    while (Date.now() < end && !/capturing/.test(err) && p.exitCode === null) await sleep(50);
    if (!/capturing/.test(err) || p.exitCode !== null) {
      if (p.exitCode === null) p.kill('SIGKILL');
      throw new Error(`podway capture ${filter.join(' ')} did not start: ${err.trim().slice(-300)}`);
    }
    return p;
  }

  /** End a capture as Ctrl-C does; returns the packets it wrote and lost (its last line). */
  async stopCapture(p: ChildProcess): Promise<{ written: number; lost: number }> {
    p.kill('SIGINT');
    await Promise.race([new Promise((r) => p.once('exit', r)), sleep(10_000)]);
    if (p.exitCode === null) p.kill('SIGKILL');
    const err = (p as ChildProcess & { errText: () => string }).errText();
    const m = /(\d+) packets captured(?:, (\d+) lost)?/.exec(err);
    if (!m) throw new Error(`podway capture: no summary at exit: ${err.trim().slice(-300)}`);
    return { written: Number(m[1]), lost: Number(m[2] ?? 0) };
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

  forwarderPids(): number[] {
    const pids: number[] = [];
    for (const n of this.lab.nodes) if (n.proc?.pid) pids.push(n.proc.pid);
    if (this.naive?.pid) pids.push(this.naive.pid);
    return pids;
  }

  async measure(size: number, flows: number, pps: number, seconds: number): Promise<Measurement> {
    const a = this.lab.pod('pod-a');
    const b = this.dst;
    const sink = track(spawn('ip', ['netns', 'exec', b.ns, PKTGEN, 'sink', '9001', String(seconds + 1.5), ...(this.ipv6 ? ['6'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let sinkOut = '';
    let sinkErr = '';
    sink.stdout!.on('data', (d) => (sinkOut += d));
    sink.stderr!.on('data', (d) => (sinkErr += d));
    // the sink counts only frames sent after it started: it must be bound before the sender starts
    try {
      await waitListening(b.ns, 'udp', 9001);
    } catch (e) {
      if (sink.exitCode === null) sink.kill('SIGKILL');
      throw new Error(`pktgen sink: ${(e as Error).message}: ${sinkErr.trim().slice(-300)}`);
    }
    const ports0 = await this.podwayPorts();
    const pids = this.forwarderPids();
    const soft = ksoftirqdPids();
    const us0 = procUserSys(pids);
    const rx0 = netRxSoftirqs();
    const cpu0 = procCpuSeconds(pids);
    const soft0 = procCpuSeconds(soft);
    const m0 = machineBusySeconds();
    const sendOut = execFileSync('ip', ['netns', 'exec', a.ns, PKTGEN, 'send', 'eth0', a.mac!, 'ee:ee:ee:ee:ee:ee', this.ipv6 ? a.ip6! : a.ip, b.ip, String(size), String(flows), String(pps), String(seconds)], { encoding: 'utf8', timeout: (seconds + 10) * 1000 });
    const cpu1 = procCpuSeconds(pids);
    const us1 = procUserSys(pids);
    const rx1 = netRxSoftirqs();
    const soft1 = procCpuSeconds(soft);
    const m1 = machineBusySeconds();
    await Promise.race([new Promise((r) => sink.once('exit', r)), sleep((seconds + 5) * 1000)]);
    if (sink.exitCode === null) sink.kill('SIGKILL');
    const ports1 = await this.podwayPorts();
    const s = JSON.parse(sendOut) as { sent: number; seconds: number; cpu: number; sys: number };
    if (!sinkOut.trim()) throw new Error(`pktgen sink printed no result (exit ${sink.exitCode}): ${sinkErr.trim().slice(-300)}`);
    const r = JSON.parse(sinkOut) as { received: number; late: number; dup: number; stale: number; p50us: number; p99us: number; cpu: number };
    // a path that duplicates frames, or a stray sender, must not pass for throughput
    if (r.received > s.sent) throw new Error(`the sink counted ${r.received} frames of ${s.sent} sent (dup ${r.dup}, stale ${r.stale})`);
    const dpps = r.received / s.seconds;
    return {
      sent: s.sent, received: r.received, late: r.late, dup: r.dup, stale: r.stale, seconds: s.seconds, pps: dpps, gbps: (dpps * size * 8) / 1e9,
      p50us: r.p50us, p99us: r.p99us, procCpu: cpu1 - cpu0, machineCpu: m1 - m0,
      pathCpu: s.sys + r.cpu + (cpu1 - cpu0) + (soft1 - soft0),
      senderCpu: s.sys, sinkCpu: r.cpu, softirqdCpu: soft1 - soft0,
      netRx: rx1 - rx0,
      ports: ports0 && ports1 && r.received
        ? `forwarder user ${((us1[0] - us0[0]) * 1e6 / r.received).toFixed(2)} / system ${((us1[1] - us0[1]) * 1e6 / r.received).toFixed(2)} µs/pkt; ${portDeltas(ports0, ports1)}`
        : undefined,
    };
  }

  /** Node1's podway's per-port counters (engine counters()), or null without a podway there. */
  async podwayPorts(): Promise<Record<string, unknown>[] | null> {
    const n = this.lab.nodes[0];
    if (!n.proc) return null;
    try {
      const c = (await controlRequest(n.control, { cmd: 'counters' })) as { ports?: Record<string, unknown>[] };
      return c.ports ?? null;
    } catch {
      return null;
    }
  }

  /**
   * The delivered rate of the highest step (from a few steps below the unbounded delivered rate)
   * with < 0.1% loss. A step counts only when pktgen really sent >= 98% of the offered rate for
   * the seconds (its token bucket falls behind on a loaded machine): otherwise it is void, and
   * said so in `void`. The figure is the step's delivered rate, not the offered one.
   */
  async lossFreeRate(size: number, flows: number, maxPps: number, seconds: number, steps: number[]): Promise<{ pps: number; offered: number; void: string[] }> {
    const voided: string[] = [];
    for (const f of steps) {
      const rate = Math.max(1000, Math.floor(maxPps * f));
      const m = await this.measure(size, flows, rate, seconds);
      if (m.sent < 0.98 * rate * seconds) {
        voided.push(`${rate} pps offered: pktgen sent only ${m.sent} of ${Math.round(rate * seconds)}`);
        continue;
      }
      if ((m.sent - m.received) / m.sent < 0.001) return { pps: Math.round(m.pps), offered: rate, void: voided };
    }
    return { pps: 0, offered: 0, void: voided };
  }

  private nextPort = 5301;

  /** Podway's port counters summed over its ports (kernel drops, GSO segmentation), or null. */
  async podwayPortTotals(): Promise<Record<string, number> | null> {
    const n = this.lab.nodes[0];
    if (!n.proc) return null;
    const c = (await controlRequest(n.control, { cmd: 'counters' })) as { ports?: Record<string, unknown>[] };
    const t: Record<string, number> = { kernelDrops: 0, rxGsoFrames: 0, rxGsoSegments: 0, rxGsoBad: 0, rxGsoDropped: 0, rxScatterFrames: 0, txGroFrames: 0, txGroSegments: 0, txGsoFrames: 0, txGsoSegments: 0, txGsoRejected: 0, rxSuperFrames: 0, rxSuperSegments: 0, txSuperFrames: 0, rxMergeFrames: 0, rxMergeSegments: 0, txSuperCut: 0, txSuperLost: 0, txFull: 0, held: 0, heldMs: 0, rxWaitNs: 0, rxWaitSamples: 0, jsNs: 0, jsSamples: 0, txSyscallNs: 0, txSyscalls: 0 };
    for (const p of c.ports ?? []) for (const k of Object.keys(t)) t[k] += Number(p[k] ?? 0);
    return t;
  }

  /**
   * iperf3 pod A -> pod B (reverse: pod B sends, -R) with `streams` parallel streams.
   * CPU: the podway process's own time, and the machine's non-idle time (/proc/stat) minus what
   * iperf3 reports for its two ends (getrusage: cpu_utilization_percent host_total/remote_total):
   * the forwarding and the pods' kernel stacks, for the kernel node and podway alike.
   */
  async tcpBulk(streams: number, reverse: boolean, seconds: number): Promise<TcpMeasurement> {
    const a = this.lab.pod('pod-a');
    const b = this.lab.pod('pod-b');
    const port = this.nextPort++;
    if (!commandExists('iperf3')) throw new Error('iperf3 not found (not on PATH): bash scripts/setup.sh installs it');
    const server = track(spawn('ip', ['netns', 'exec', b.ns, 'iperf3', '-s', '-1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] }));
    try {
      await waitListening(b.ns, 'tcp', port);
      const before = await this.podwayPortTotals();
      const pids = this.forwarderPids();
      const cpu0 = procCpuSeconds(pids);
      const m0 = machineColumns();
      const out = await runAsync('ip', ['netns', 'exec', a.ns, 'iperf3', '-c', this.ipv6 ? b.ip6! : b.ip, '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J', ...(reverse ? ['-R'] : [])], (seconds + 20) * 1000);
      const cpu1 = procCpuSeconds(pids);
      const m1 = machineColumns();
      const after = await this.podwayPortTotals();
      const r = JSON.parse(out) as { error?: string; end: { sum_received: { bits_per_second: number; bytes: number; seconds: number }; sum_sent: { retransmits?: number }; cpu_utilization_percent: { host_total: number; remote_total: number } } };
      if (r.error) throw new Error(`iperf3: ${r.error}`);
      const e = r.end;
      const busy = (c: number[]) => c.reduce((x, y) => x + y, 0) - c[3] - c[4];
      const iperfCpu = ((e.cpu_utilization_percent.host_total + e.cpu_utilization_percent.remote_total) / 100) * e.sum_received.seconds;
      const counters: Record<string, number> = {};
      if (before && after) for (const k of Object.keys(after)) counters[k] = after[k] - before[k];
      return {
        gbps: e.sum_received.bits_per_second / 1e9, bytes: e.sum_received.bytes, seconds: e.sum_received.seconds,
        retransmits: e.sum_sent.retransmits ?? 0, procCpu: cpu1 - cpu0, machineCpu: busy(m1) - busy(m0),
        softirqCpu: m1[6] - m0[6], iperfCpu, counters,
      };
    } finally {
      if (server.exitCode === null) server.kill('SIGKILL');
    }
  }

  /** One request/response run: pktgen rr-server in pod B, rr-client in pod A. rate 0: closed loop. */
  async rr(proto: 'tcp' | 'udp', rate: number, seconds: number, window = 1): Promise<RrMeasurement> {
    const a = this.lab.pod('pod-a');
    const b = this.lab.pod('pod-b');
    const port = this.nextPort++;
    const server = track(spawn('ip', ['netns', 'exec', b.ns, PKTGEN, 'rr-server', proto, String(port), String(seconds + 5)], { stdio: ['ignore', 'ignore', 'pipe'] }));
    try {
      await waitListening(b.ns, proto, port);
      const before = await this.podwayPortTotals();
      const out = await runAsync('ip', ['netns', 'exec', a.ns, PKTGEN, 'rr-client', proto, b.ip, String(port), '64', String(rate), String(seconds), String(window)], (seconds + 10) * 1000);
      const m = JSON.parse(out) as RrMeasurement;
      const after = await this.podwayPortTotals();
      if (before && after) {
        // podway's own timing, averaged per batch (native/README.md): where a traversal's time goes
        const avg = (ns: string, n: string) => { const c = after[n] - before[n]; return c > 0 ? +((after[ns] - before[ns]) / c / 1000).toFixed(1) : 0; };
        m.podwayUs = { rxWait: avg('rxWaitNs', 'rxWaitSamples'), js: avg('jsNs', 'jsSamples'), sendmmsg: avg('txSyscallNs', 'txSyscalls') };
      }
      return m;
    } finally {
      if (server.exitCode === null) server.kill('SIGKILL');
    }
  }

  /**
   * Build the lab. Its underlay veths stand for wires (tx offloads off: see Lab's
   * underlayOffloads); `--underlay-offloads` turns them back on to show what a veth underlay does.
   */
  build(underlayOffloads = false): void {
    this.lab.build();
    // the nat scenarios' outside: an address on node2 outside every pool, reached by node1's default route
    run('ip', ['netns', 'exec', this.lab.nodes[1].ns, 'ip', 'addr', 'add', `${OUTSIDE_IP}/32`, 'dev', 'lo']);
    if (this.lab.dualStack) {
      // nat6-udp's outside: an IPv6 address on node2, reached by node1's IPv6 default route
      const [n1, n2] = this.lab.nodes;
      run('ip', ['netns', 'exec', n2.ns, 'ip', '-6', 'addr', 'add', `${OUTSIDE_IP6}/128`, 'dev', 'lo']);
      run('ip', ['netns', 'exec', n1.ns, 'ip', '-6', 'route', 'add', 'default', 'via', n2.ip6!, 'dev', 'eth0']);
    }
    if (underlayOffloads) for (const n of this.lab.nodes) run('ip', ['netns', 'exec', n.ns, 'ethtool', '-K', 'eth0', 'tx', 'on']);
  }

  /** Everything this Bench started stopped by PID (the forwarders, scrapers, podways: SIGTERM
   * first so podway removes its nft tables, SIGKILL after 5 s), then the lab removed. */
  async destroy(): Promise<void> {
    this.stopScrapers();
    await this.stopNaive();
    for (const n of this.lab.nodes) if (n.proc) await this.lab.stopPodway(n.name, 5000);
    this.lab.destroy();
  }
}

/** Every helper process started (sinks, servers, clients, captures, forwarders, scrapers) until it
 * exits: a signal's cleanup stops the ones still running by PID. */
const live = new Set<ChildProcess>();
function track(p: ChildProcess): ChildProcess {
  live.add(p);
  p.once('exit', () => live.delete(p));
  return p;
}
/** measureIdle's lab while it runs (a signal's cleanup removes it too). */
const idleLabs = new Set<Lab>();
function killLive(): void {
  for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  live.clear();
}

interface TcpMeasurement {
  gbps: number; bytes: number; seconds: number; retransmits: number;
  /** CPU seconds: podway's process; the machine's non-idle time; its softirq part; iperf3's ends */
  procCpu: number; machineCpu: number; softirqCpu: number; iperfCpu: number;
  /** podway's port counters over the run (kernelDrops, rxGsoFrames, ...), empty for the kernel */
  counters: Record<string, number>;
}

interface RrMeasurement { sent: number; received: number; seconds: number; rate: number; p50us: number; p99us: number; p999us: number; maxus: number;
  /** p99 over the requests sent, one without a reply slower than any (-1: over 1% had none) */
  p99sentus: number;
  /** podway's average per batch in µs: ring wait (kernel stamp -> recv), recv end -> send, sendmmsg */
  podwayUs?: { rxWait: number; js: number; sendmmsg: number };
}

function commandExists(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Wait (bounded: 10 s) until a server in namespace `ns` has bound `port`: a loaded machine starts it late. */
async function waitListening(ns: string, proto: 'tcp' | 'udp', port: number): Promise<void> {
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    const out = run('ip', ['netns', 'exec', ns, 'ss', '-Hn', proto === 'tcp' ? '-lt' : '-lu', 'sport', '=', `:${port}`], { allowFail: true });
    if (out.trim()) return;
    await sleep(50);
  }
  throw new Error(`no ${proto} server on port ${port} in ${ns} after 10 s`);
}

/** Run a command without blocking the event loop (podway's stderr pipes keep draining). */
function runAsync(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (err += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code) => {
      clearTimeout(timer);
      // iperf3 -J reports its errors in the JSON (exit 1): let the caller read them
      if (code === 0 || out.trim().startsWith('{')) resolve(out);
      else reject(new Error(`${cmd} ${args.slice(3).join(' ')}: exit ${code}: ${err.trim().slice(-300)}`));
    });
  });
}

interface Row {
  scenario: string; size: number; flows: number; setup: string; baseline: string;
  pps: number; baselinePps: number; ratio: number; gbps: number;
  /** per delivered packet; null when nothing was delivered */
  cpuUsPerPkt: number | null; baselineCpuUsPerPkt: number | null; podwayCpuUsPerPkt: number | null;
  /** the path's own CPU (Measurement.pathCpu) per delivered packet */
  pathCpuUsPerPkt: number | null; baselinePathCpuUsPerPkt: number | null;
  /** the delivered rate of the highest offered step with < 0.1% loss that pktgen really sent
   * (lossFreeRate), the offered rate of that step, and the steps void because it did not */
  lossFreePps: number; lossFreeOffered: number; lossFreeVoid: string[]; p50us: number; p99us: number;
  /** each side's sender frames, frames counted (Measurement.received), loss % of sent, late and
   * duplicate frames (not counted), the sender's seconds */
  sent: number; received: number; lossPct: number | null; late: number; dup: number; seconds: number;
  baselineSent: number; baselineReceived: number; baselineLossPct: number | null; baselineLate: number; baselineDup: number; baselineSeconds: number;
  /** the per-round ratios' min and max, the rounds that counted, and every round (RoundRecord):
   * pps, baselinePps and the other figures are medians over the counted rounds, ratio the
   * median of their ratios */
  ratioMin: number; ratioMax: number; roundsCounted: number; rounds: RoundRecord[];
}

/** One round of a row as --json shows it: each side's raw figures (or why it has none), the
 * round's ratio, and whether it counted (bench/e2e/rounds.ts). */
interface RoundRecord {
  round: number; counted: boolean; ratio: number | null; why?: string;
  podway: Record<string, unknown>; baseline: Record<string, unknown>;
}

/** A setup's measurement in one round, or why it failed; load: the 1-minute load average then. */
type Got<T> = { m: T; load: number } | { error: string; load: number };
const gotError = <T>(g: Got<T>): string | undefined => ('error' in g ? g.error : undefined);
const load1 = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

/** A row's rounds: the ratio of fig(podway) over fig(baseline) per round, summarised (rounds.ts). */
function summarise<T>(p: Got<T>[], b: Got<T>[], fig: (m: T) => number): RatioSummary {
  return summariseRounds(p.map((pg, i) => {
    const bg = b[i];
    const errs = [gotError(pg) && `podway: ${gotError(pg)}`, gotError(bg) && `baseline: ${gotError(bg)}`].filter(Boolean);
    return { podway: 'm' in pg ? fig(pg.m) : null, baseline: 'm' in bg ? fig(bg.m) : null, ...(errs.length ? { error: errs.join('; ') } : {}) };
  }));
}

/**
 * summarise() for one row, or null when no round of it counted: then the reason goes to stderr
 * and into `errors` (the run fails) and the row is left out, never reported as 0.
 */
function summariseRow<T>(what: string, errors: string[], p: Got<T>[], b: Got<T>[], fig: (m: T) => number): RatioSummary | null {
  try {
    return summarise(p, b, fig);
  } catch (e) {
    if (!(e instanceof NoRoundCounted)) throw e;
    process.stderr.write(`bench: ${what}: ${e.message}\n`);
    errors.push(`${what}: ${e.message}`);
    return null;
  }
}

/** The measurements of the counted rounds, podway's and the baseline's. */
function countedOf<T>(s: RatioSummary, p: Got<T>[], b: Got<T>[]): { pm: T[]; bm: T[] } {
  const idx = s.perRound.flatMap((r, i) => (r.counted ? [i] : []));
  return { pm: idx.map((i) => (p[i] as { m: T }).m), bm: idx.map((i) => (b[i] as { m: T }).m) };
}

/** The median of fig over ms, rounded to 2 decimals; null when no value is a number. */
const med2 = <T>(ms: T[], fig: (m: T) => number | null): number | null => { const v = medianOrNull(ms.map(fig)); return v === null ? null : r2(v); };
/** The median of a count (rounded to an integer: an even number of rounds averages two). */
const medInt = <T>(ms: T[], fig: (m: T) => number): number => Math.round(median(ms.map(fig)));

/** The median of p99-over-sent figures, where -1 (over 1% lost) is slower than any: -1 when a
 * middle value is. */
function medSent(xs: number[]): number {
  const v = xs.map((x) => (x < 0 ? Infinity : x));
  const m = median(v);
  return Number.isFinite(m) ? r2(m) : -1;
}

/** Every round of a row (RoundRecord), with raw(m) the figures shown for a measurement. */
function roundRecords<T>(s: RatioSummary, p: Got<T>[], b: Got<T>[], raw: (m: T) => Record<string, unknown>): RoundRecord[] {
  const side = (g: Got<T>) => ('m' in g ? { ...raw(g.m), load: g.load } : { error: g.error, load: g.load });
  return s.perRound.map((r, i) => ({
    round: i + 1, counted: r.counted, ratio: r.ratio === null ? null : +r.ratio.toFixed(3), ...(r.why ? { why: r.why } : {}),
    podway: side(p[i]), baseline: side(b[i]),
  }));
}

const lossPct = (m: Measurement) => (m.sent ? r2(100 * (1 - m.received / m.sent)) : null);
const perPkt = (cpu: number, m: Measurement) => (m.received ? r2((cpu * 1e6) / m.received) : null);
const dash = (x: number | null) => (x === null ? '-' : String(x));

/** tcp-bulk rows: size is null (a byte stream), flows the iperf3 streams. CPU in seconds per GB. */
interface TcpRow {
  scenario: string; size: null; flows: number; direction: string; setup: string; baseline: string;
  gbps: number; baselineGbps: number; ratio: number; retransmits: number; baselineRetransmits: number;
  /** machine non-idle CPU minus iperf3's, per GB delivered */
  cpuSecPerGB: number; baselineCpuSecPerGB: number;
  /** podway's process alone */
  podwayCpuSecPerGB: number;
  softirqSecPerGB: number; baselineSoftirqSecPerGB: number;
  /** podway's port counters, the median of each over the counted rounds */
  counters: Record<string, number>;
  /** as Row's: the figures are medians over the counted rounds */
  ratioMin: number; ratioMax: number; roundsCounted: number; rounds: RoundRecord[];
}

/** rr-latency rows: size 64 B requests, flows 1 (one connection / socket pair). */
interface RrRow {
  scenario: string; size: number; flows: number; proto: string; load: string; setup: string; baseline: string;
  rate: number; baselineRate: number; maxRate: number; baselineMaxRate: number;
  p50us: number; p99us: number; p999us: number; baselineP50us: number; baselineP99us: number; baselineP999us: number;
  /** podway p50 minus the kernel's; podway p99 over the kernel's */
  p50DeltaUs: number; p99Ratio: number; samples: number; baselineSamples: number;
  /**
   * Requests without a reply (sent - received). The percentiles are over the replies only: a UDP
   * request dropped (the server socket's buffer holds about 166-256 of these datagrams) is not a
   * late sample, so a stall longer than that buffer lifts TCP's tail but only UDP's loss.
   */
  lost: number; baselineLost: number;
  /** p99 over requests sent, a lost one counted as slower than any reply (-1: over 1% lost) */
  p99SentUs: number; baselineP99SentUs: number;
  /** podway's own timing per batch over this measurement (RrMeasurement.podwayUs) */
  podwayUs?: { rxWait: number; js: number; sendmmsg: number };
  /** the p99 ratio's min and max over the rounds, as Row's (the figures are medians over the
   * counted rounds, p50DeltaUs the median of the rounds' differences) */
  ratioMin: number; ratioMax: number; roundsCounted: number; rounds: RoundRecord[];
}

/** observe rows: a treatment's pps over the plain podway's, per interleaved pair and summarised. */
interface ObserveRow {
  scenario: 'observe'; size: number; flows: number; setup: string; baseline: string;
  pps: number; baselinePps: number; ratio: number; ratioMin: number; ratioMax: number; ratios: number[];
  goal: number; met: boolean; captured: number; lost: number; sent: number; scrapes: string;
  /** podway process CPU µs per forwarded packet (median), the plain runs' beside it, and
   * plain / treatment per pair (median, min, max): the capacity ratio, which a loaded machine's
   * scheduling disturbs less than pps. */
  cpuUsPerPkt: number; baselineCpuUsPerPkt: number; cpuRatio: number; cpuRatioMin: number; cpuRatioMax: number;
}

/** How long the idle scenario waits after its 100 endpoints are open before it measures. */
const IDLE_SETTLE_MS = 45_000;

/** idle rows: CPU of `podway run`'s whole process tree over the window (bench/e2e/proc-tree.ts). */
interface IdleRow {
  scenario: string; size: null; flows: null; setup: string; baseline: null; endpoints: number; seconds: number;
  /** the tree: podway, its helper processes (spawner, ip monitor), their children, reaped ones too */
  cpuSeconds: number; percentOfCore: number;
  /** processes in the tree at the start or the end of the window, and of them exited in it */
  processes: number; exited: number;
  /** voluntary context switches of the tree's threads (each a sleep ended by a wake-up), per second */
  wakeupsPerSecond: number;
  /** podway's own process (all its threads, the children it reaped excluded), % of a core */
  podwayPercentOfCore: number;
  /** podway's main thread (the forwarding thread, its timers): ms on a CPU in the window
   * (schedstat; null without it), and that as % of a core */
  mainThreadMs: number | null; mainThreadPercentOfCore: number | null;
  /** the whole machine over the window: idle % of all its CPUs, and busy CPUs (others' work included) */
  machineIdlePct: number; machineBusyCores: number;
  loadavgStart: string; loadavgEnd: string;
  perProcess: ProcUsage[];
}

function machineInfo() {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown';
  return { cpu, cores: os.cpus().length, kernel: os.release(), node: process.version, date: new Date().toISOString(), loadavg: loadAverage() };
}

const r2 = (x: number) => +x.toFixed(2);

/**
 * `podway run` idle with 100 veth endpoints (a lab of its own: node1 with 100 pods): CPU seconds of
 * its whole process tree over `seconds`, after every endpoint is open: podway (all threads), every
 * descendant (the spawner, the `ip monitor` under it, any `ip`/`nft` they run) and the descendants
 * that exited in the window (through their parents' cutime + cstime), from /proc (proc-tree.ts);
 * the wake-ups of its threads; the machine's idle time beside it.
 */
async function measureIdle(setups: Setup[], seconds: number, podwayArgs: string[], say: (m: string) => void, rounds = 1): Promise<IdleRow[]> {
  const pods = Array.from({ length: 100 }, (_, k) => ({ name: `idle-${k}`, type: 'veth' as const }));
  const lab = new Lab([{ name: 'node1', subnet: 'a', pods }, { name: 'node2', subnet: 'a', pods: [] }], { underlay: 'p2p' });
  const rows: IdleRow[] = [];
  idleLabs.add(lab);
  try {
    lab.build();
    for (const setup of Array.from({ length: rounds }, () => setups).flat()) {
      // a row says which podway it measured (--podway-args too, as --compare-podway-args does)
      const s = !setup.args && podwayArgs.length ? withArgs(setup, podwayArgs) : setup;
      await lab.startPodway('node1', 60_000, s.args ?? podwayArgs, {}, s.root);
      try {
        const n = lab.node('node1');
        const end = Date.now() + 30_000;
        for (;;) {
          const eps = (await controlRequest(n.control, { cmd: 'endpoints' })) as unknown[];
          if (eps.length >= 100) break;
          if (Date.now() > end) throw new Error(`idle: podway opened ${eps.length} of 100 endpoints in 30 s`);
          await sleep(200);
        }
        // an idle node is measured, not its start: host programming, first ARP, the scan of the
        // pods' namespaces for orphan addresses (2 s after forwarding, cli/run.ts
        // ORPHAN_SCAN_AFTER_MS; a shell and an `ip` per pod namespace: 0.2 CPU s with 100 pods,
        // which a 2 s settle put inside the window: 7.5% of a core over 4 s on 2026-12-07), and
        // V8's optimizing compiles of the timers' functions on its platform threads, which end
        // about 45 s after the start (--trace-opt; podway's CPU 0.9% of a core 10-20 s after the
        // start, 0.4-0.5% from 20 s to 120 s, 2026-12-07 at load 18)
        await sleep(IDLE_SETTLE_MS);
        // `ip netns exec` execs podway: the pid is podway's
        const pid = n.proc!.pid!;
        const loadavgStart = loadAverage();
        const m0 = machineColumns();
        const a = sampleTree(pid);
        await sleep(seconds * 1000);
        const b = sampleTree(pid, a);
        const m1 = machineColumns();
        const u = treeUsage(a, b);
        const took = u.seconds;
        const total = m1.reduce((x, v) => x + v, 0) - m0.reduce((x, v) => x + v, 0);
        const idle = m1[3] + m1[4] - m0[3] - m0[4];
        const own = u.perProcess.find((p) => p.pid === pid)?.ownSeconds ?? 0;
        const main = u.perProcess.find((p) => p.pid === pid)?.tasks.find((t) => t.tid === pid);
        const mainMs = main ? main.runMs ?? main.cpuSeconds * 1000 : null;
        const row: IdleRow = {
          scenario: 'idle', size: null, flows: null, setup: s.label, baseline: null, endpoints: 100, seconds: r2(took),
          cpuSeconds: r2(u.cpuSeconds), percentOfCore: r2((u.cpuSeconds / took) * 100), processes: u.processes, exited: u.exited,
          wakeupsPerSecond: r2(u.wakeups / took), podwayPercentOfCore: r2((own / took) * 100),
          mainThreadMs: mainMs === null ? null : r2(mainMs), mainThreadPercentOfCore: mainMs === null ? null : r2((mainMs / 1000 / took) * 100),
          machineIdlePct: r2(total > 0 ? (idle / total) * 100 : 0), machineBusyCores: r2((total - idle) / took),
          loadavgStart, loadavgEnd: loadAverage(), perProcess: u.perProcess,
        };
        rows.push(row);
        say(`idle: ${s.label}: tree ${row.cpuSeconds} CPU s in ${row.seconds} s (${row.percentOfCore}% of a core), processes: ${row.processes}, ${row.wakeupsPerSecond} wake-ups/s; main thread ${row.mainThreadMs} ms (${row.mainThreadPercentOfCore}% of a core)`);
      } finally {
        await lab.stopPodway('node1');
      }
    }
  } finally {
    idleLabs.delete(lab);
    lab.destroy();
  }
  return rows;
}

async function main() {
  const parsed = benchArgsOrExit(process.argv.slice(2), RUN_ARGS);
  const opt = parsed.opt;
  const json = parsed.has('--json');
  const quick = parsed.has('--quick');
  const only = opt('--only')?.split(',') ?? null;
  const unknown = only?.filter((n) => !SCENARIOS.some((sc) => sc.name === n)) ?? [];
  if (unknown.length) {
    process.stderr.write(`--only: no scenario ${unknown.map((n) => JSON.stringify(n)).join(', ')}; scenarios: ${SCENARIOS.map((sc) => sc.name).join(', ')}\n`);
    process.exit(2);
  }
  // numbers checked here: a NaN or 0 would reach pktgen, and pps would divide by about nothing
  const num = (name: string, min: number, max: number, integer: boolean): number | null => {
    const v = opt(name);
    if (v === undefined) return null;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      process.stderr.write(`${name} ${JSON.stringify(v)}: ${integer ? 'an integer' : 'a number'} from ${min} to ${max}\n${RUN_ARGS.usage}\n`);
      process.exit(2);
    }
    return n;
  };
  const secondsArg = num('--seconds', 0.1, 600, false);
  // --rounds N: every row's setups interleaved N times (bench/e2e/rounds.ts); observe's B/C pairs
  const roundsArg = num('--rounds', 1, 1000, true);
  const rounds = roundsArg ?? (quick ? 1 : 3);
  const observeRounds = roundsArg ?? (quick ? 3 : 5);
  // --cpu-rate N: every pps setup (podway and baseline) is also measured at N pps offered, the
  // same load for all, for CPU per packet compared at equal rates (an unbounded flood compares
  // different rates and counts frames lost in a full ring against the sender)
  const cpuRate = num('--cpu-rate', 1000, 100_000_000, false) ?? 0;
  const seconds = secondsArg ?? (quick ? 1 : 2);
  const longSeconds = secondsArg ?? (quick ? 3 : 10);
  const sizes = quick ? [64] : [64, 1400];
  const flowsList = opt('--flows')?.split(',').map(Number) ?? (quick ? [1] : [1, 1024]);
  if (flowsList.some((f) => !Number.isInteger(f) || f < 1 || f > 65535)) {
    process.stderr.write(`--flows ${JSON.stringify(opt('--flows'))}: integers from 1 to 65535, comma-separated\n`);
    process.exit(2);
  }
  if (process.getuid && process.getuid() !== 0) throw new Error('the e2e benchmark needs root (network namespaces)');
  const podwayArgs = opt('--podway-args')?.split(' ').filter(Boolean) ?? [];
  const compareArgs = opt('--compare-podway-args')?.split(' ').filter(Boolean);
  const compareRoot = opt('--compare-root');
  if (compareRoot !== undefined && !existsSync(path.join(compareRoot, 'bin', 'podway.js'))) {
    process.stderr.write(`--compare-root ${JSON.stringify(compareRoot)}: no bin/podway.js there (a built checkout)\n`);
    process.exit(2);
  }
  const info = machineInfo();
  const floorArgs = opt('--floor-args')?.split(' ').filter(Boolean) ?? [];
  const bench = new Bench(podwayArgs, false, floorArgs);
  // the IPv6 scenarios' dual-stack lab, built when one of them runs (its pods' MTU differs)
  const dual: { bench: Bench | null } = { bench: null };
  const benchFor = (sc: Scenario): Bench => {
    if (!sc.podway.ipv6) return bench;
    if (!dual.bench) {
      dual.bench = new Bench(podwayArgs, true);
      dual.bench.build(parsed.has('--underlay-offloads'));
    }
    return dual.bench;
  };
  // Ctrl-C, a kill (timeout, CI) or a hang-up: every helper process stopped by PID, podway stopped
  // (SIGTERM: it removes its nft tables; SIGKILL after 5 s), the namespaces removed
  let exiting = false;
  const onSignal = (sig: NodeJS.Signals, code: number) => {
    if (exiting) return;
    exiting = true;
    process.stderr.write(`bench: ${sig}: cleaning up\n`);
    killLive();
    for (const l of idleLabs) l.destroy();
    const hard = setTimeout(() => { bench.lab.destroy(); dual.bench?.lab.destroy(); process.exit(code); }, 15_000);
    void (async () => {
      try {
        await bench.destroy();
        await dual.bench?.destroy();
      } catch (e) {
        process.stderr.write(`bench: cleanup: ${(e as Error).message}\n`);
        bench.lab.destroy();
        dual.bench?.lab.destroy();
      }
      clearTimeout(hard);
      killLive();
      process.exit(code);
    })();
  };
  process.once('SIGINT', () => onSignal('SIGINT', 130));
  process.once('SIGTERM', () => onSignal('SIGTERM', 143));
  process.once('SIGHUP', () => onSignal('SIGHUP', 129));
  process.once('exit', killLive);
  const rows: Row[] = [];
  const tcpRows: TcpRow[] = [];
  const rrRows: RrRow[] = [];
  const idleRows: IdleRow[] = [];
  const observeRows: ObserveRow[] = [];
  // tcp-bulk: which stream counts and directions (a profile wants one case run long)
  const tcpStreams = opt('--streams')?.split(',').map(Number) ?? [1, 8];
  const tcpDirections = opt('--directions')?.split(',') ?? ['a-b', 'b-a'];
  const atRate: { scenario: string; size: number; flows: number; setup: string; m: Measurement }[] = [];
  const errors: string[] = [];
  const say = (m: string) => { if (!json) process.stderr.write(m + '\n'); };
  try {
    bench.build(parsed.has('--underlay-offloads'));
    for (const sc of SCENARIOS) {
      if (only ? !only.includes(sc.name) : sc.kind !== undefined && sc.kind !== 'pps') continue;
      // the podway setup as asked (--podway-args), and the --compare-podway-args one beside it
      const podways = [sc.podway, ...(compareArgs ? [withArgs(sc.podway, compareArgs)] : [])];
      try {
        if (sc.kind === 'tcp-bulk') await runTcp(sc, podways);
        else if (sc.kind === 'rr-latency') await runRr(sc, podways);
        else if (sc.kind === 'observe') await runObserve(sc);
        else if (sc.kind === 'idle') {
          // --compare-root: another checkout's podway beside this one's (before a change, say)
          const other = compareRoot === undefined ? [] : [{ ...sc.podway, root: path.resolve(compareRoot), label: `podway at ${path.resolve(compareRoot)}` }];
          idleRows.push(...(await measureIdle([...other, ...podways], longSeconds, podwayArgs, say, roundsArg ?? 1)));
        }
        else await runPps(sc, podways);
      } catch (e) {
        // a signal's cleanup killed its processes: not a failure of the scenario
        if (exiting) break;
        // one broken setup must not throw away the other scenarios' figures
        process.stderr.write(`bench: ${sc.name}: ${(e as Error).message}\n`);
        errors.push(`${sc.name}: ${(e as Error).message}`);
      }
    }
  } finally {
    await bench.destroy();
    await dual.bench?.destroy();
  }

  async function measureAtRate(bench: Bench, scenario: string, setup: string, size: number, flows: number): Promise<void> {
    const m = await bench.measure(size, flows, cpuRate, seconds);
    atRate.push({ scenario, size, flows, setup, m });
    say(`${scenario} ${setup} ${size}B ${flows} flows at ${cpuRate} pps offered: ${Math.round(m.pps)} pps delivered; ${cpuParts(m)}`);
  }

  /** Setup s configured and measure() run, or the error that stopped either (a signal's cleanup
   * rethrown): one round of one setup. */
  async function tryRound<T>(bench: Bench, s: Setup, measure: () => Promise<T>): Promise<Got<T>> {
    try {
      await bench.configure(s);
      const m = await measure();
      return { m, load: load1() };
    } catch (e) {
      if (exiting) throw e;
      return { error: (e as Error).message, load: load1() };
    }
  }

  /**
   * Per point (size x flows), `rounds` rounds of: every baseline, then every podway setup, each
   * started (outside the measured window) and flooded once. After the rounds, each podway setup's
   * loss-free rate (its steps from the median flood rate) and latency at half of it, and with
   * --cpu-rate each setup at that rate, once per setup. Rows: rounds.ts's summary per podway
   * setup x baseline.
   */
  async function runPps(sc: Scenario, podways: Setup[]): Promise<void> {
    const bench = benchFor(sc);
    // IPv6 frames are at least MIN_FRAME6: the 64 B size becomes 78, and its rows say 78
    const scSizes = [...new Set((sc.sizes ?? sizes).map((sz) => (sc.podway.ipv6 ? Math.max(sz, MIN_FRAME6) : sz)))];
    const setups = [...sc.baselines, ...podways];
    for (const size of scSizes) {
      for (const flows of sc.flows ?? flowsList) {
        const got = new Map<string, Got<Measurement>[]>(setups.map((s) => [s.label, []]));
        for (let r = 0; r < rounds; r++) {
          for (const s of setups) {
            const g = await tryRound(bench, s, () => bench.measure(size, flows, 0, seconds));
            got.get(s.label)!.push(g);
            const at = `${sc.name} ${s.label} ${size}B ${flows} flows, round ${r + 1} of ${rounds} (load ${g.load})`;
            say('m' in g ? `${at}: ${Math.round(g.m.pps)} pps; ${cpuParts(g.m)}${g.m.ports ? `; ports: ${g.m.ports}` : ''}` : `${at}: failed: ${g.error}`);
          }
        }
        // the extras, the setup still running first (configure keeps it)
        const extras = new Map<string, { lossFree: { pps: number; offered: number; void: string[] }; lat: Measurement }>();
        for (const s of [...setups].reverse()) {
          const isPodway = podways.includes(s);
          const floods = got.get(s.label)!.flatMap((g) => ('m' in g ? [g.m.pps] : []));
          if (!cpuRate && (!isPodway || !floods.length)) continue;
          await bench.configure(s);
          if (isPodway && floods.length) {
            const maxPps = median(floods);
            const lossFree = await bench.lossFreeRate(size, flows, maxPps, seconds, quick ? [0.9, 0.5] : [1.0, 0.7, 0.4]);
            const lat = await bench.measure(size, flows, Math.max(1000, Math.floor((lossFree.pps || maxPps * 0.3) / 2)), seconds);
            extras.set(s.label, { lossFree, lat });
            say(`${sc.name} ${s.label} ${size}B ${flows} flows: loss-free ${lossFree.pps} pps delivered (${lossFree.offered} offered; steps from the median flood, ${Math.round(maxPps)} pps)${lossFree.void.length ? `; void steps: ${lossFree.void.join('; ')}` : ''}`);
          }
          if (cpuRate > 0) await measureAtRate(bench, sc.name, s.label, size, flows);
        }
        for (const base of sc.baselines) {
          for (const pw of podways) {
            const p = got.get(pw.label)!;
            const b = got.get(base.label)!;
            const sum = summariseRow(`${sc.name} ${size} B ${flows} flows, ${pw.label} against ${base.label}`, errors, p, b, (m) => m.pps);
            if (!sum) continue;
            const { pm, bm } = countedOf(sum, p, b);
            const x = extras.get(pw.label)!;
            const raw = (m: Measurement) => ({
              pps: Math.round(m.pps), sent: m.sent, received: m.received, late: m.late, dup: m.dup, stale: m.stale, seconds: r2(m.seconds),
              cpuUsPerPkt: perPkt(m.machineCpu, m), pathCpuUsPerPkt: perPkt(m.pathCpu, m), procCpuUsPerPkt: perPkt(m.procCpu, m),
            });
            rows.push({
              scenario: sc.name, size, flows, setup: pw.label, baseline: base.label,
              pps: Math.round(sum.podway), baselinePps: Math.round(sum.baseline), ratio: r2(sum.ratio),
              ratioMin: r2(sum.ratioMin), ratioMax: r2(sum.ratioMax), roundsCounted: sum.counted,
              gbps: +((sum.podway * size * 8) / 1e9).toFixed(3),
              cpuUsPerPkt: med2(pm, (m) => perPkt(m.machineCpu, m)),
              baselineCpuUsPerPkt: med2(bm, (m) => perPkt(m.machineCpu, m)),
              podwayCpuUsPerPkt: med2(pm, (m) => perPkt(m.procCpu, m)),
              pathCpuUsPerPkt: med2(pm, (m) => perPkt(m.pathCpu, m)),
              baselinePathCpuUsPerPkt: med2(bm, (m) => perPkt(m.pathCpu, m)),
              lossFreePps: x.lossFree.pps, lossFreeOffered: x.lossFree.offered, lossFreeVoid: x.lossFree.void, p50us: x.lat.p50us, p99us: x.lat.p99us,
              sent: medInt(pm, (m) => m.sent), received: medInt(pm, (m) => m.received), lossPct: med2(pm, lossPct), late: medInt(pm, (m) => m.late), dup: medInt(pm, (m) => m.dup), seconds: r2(median(pm.map((m) => m.seconds))),
              baselineSent: medInt(bm, (m) => m.sent), baselineReceived: medInt(bm, (m) => m.received), baselineLossPct: med2(bm, lossPct), baselineLate: medInt(bm, (m) => m.late), baselineDup: medInt(bm, (m) => m.dup), baselineSeconds: r2(median(bm.map((m) => m.seconds))),
              rounds: roundRecords(sum, p, b, raw),
            });
          }
        }
      }
    }
  }

  /**
   * Issue 17's goal on the real path: one podway run serving metrics; A = nobody scrapes, no
   * capture; B = scraped every second + a capture matching nothing; C = scraped + a capture
   * matching 1% (pktgen flow 10000 of 100). Sequence A B A C A B A C ... A: every B and C sits
   * between two A runs, and its ratio is over their mean, so slow drift of the shared machine's
   * load cancels; the spread of the per-pair ratios shows what the load did not.
   */
  async function runObserve(sc: Scenario): Promise<void> {
    const metricsPort = 9091;
    const args = [...podwayArgs, '--metrics-port', String(metricsPort)];
    const setup = withArgs(sc.podway, args);
    await bench.configure(setup);
    const node = bench.lab.nodes[0];
    const size = 64;
    const flows = 100;
    const treatments = [
      { key: 'nothing', filter: ['udp', 'and', 'port', '1'], goal: 0.98, what: 'metrics scraped 1/s + capture "udp and port 1" (matches nothing)' },
      { key: 'one-percent', filter: ['udp', 'and', 'port', '10000'], goal: 0.9, what: 'metrics scraped 1/s + capture "udp and port 10000" (1 flow of 100: 1% of packets)' },
    ];
    const plain = async () => {
      bench.stopScrapers();
      const m = await bench.measure(size, flows, 0, seconds);
      say(`observe plain: ${Math.round(m.pps)} pps`);
      return m;
    };
    type Acc = { ratios: number[]; pps: number[]; base: number[]; cpu: number[]; baseCpu: number[]; cpuRatios: number[]; captured: number; lost: number; sent: number; scrapes: string[] };
    const acc = new Map(treatments.map((t) => [t.key, { ratios: [], pps: [], base: [], cpu: [], baseCpu: [], cpuRatios: [], captured: 0, lost: 0, sent: 0, scrapes: [] } as Acc]));
    const usPerPkt = (m: Measurement) => (m.received ? (m.procCpu * 1e6) / m.received : Infinity);
    let before = await plain();
    for (let r = 0; r < observeRounds; r++) {
      for (const t of treatments) {
        bench.stopScrapers();
        const scraper = bench.startScraper(node, metricsPort);
        let scrapes = '';
        scraper.stdout?.on('data', (d) => (scrapes += d));
        const cap = await bench.startCapture(t.filter);
        let m: Measurement;
        let got: { written: number; lost: number };
        try {
          m = await bench.measure(size, flows, 0, seconds);
        } finally {
          got = await bench.stopCapture(cap);
          bench.stopScrapers();
          await Promise.race([new Promise((res) => scraper.once('exit', res)), sleep(3000)]);
        }
        const after = await plain();
        const base = (before.pps + after.pps) / 2;
        const a = acc.get(t.key)!;
        a.ratios.push(base ? m.pps / base : 0);
        a.pps.push(m.pps);
        a.base.push(base);
        const baseCpu = (usPerPkt(before) + usPerPkt(after)) / 2;
        a.cpu.push(usPerPkt(m));
        a.baseCpu.push(baseCpu);
        a.cpuRatios.push(baseCpu / usPerPkt(m));
        a.captured += got.written;
        a.lost += got.lost;
        a.sent += m.sent;
        a.scrapes.push(scrapes.trim());
        say(`observe ${t.key} round ${r + 1}: ${Math.round(m.pps)} pps, ${(m.pps / base).toFixed(3)}x of the plain runs either side (${Math.round(before.pps)}, ${Math.round(after.pps)}); podway CPU ${usPerPkt(m).toFixed(2)} µs/pkt, plain ${baseCpu.toFixed(2)} (${(baseCpu / usPerPkt(m)).toFixed(3)}x); captured ${got.written}, lost ${got.lost}; ${scrapes.trim()}`);
        before = after;
      }
    }
    const r3 = (x: number) => +x.toFixed(3);
    for (const t of treatments) {
      const a = acc.get(t.key)!;
      const ratio = median(a.ratios);
      observeRows.push({
        scenario: 'observe', size, flows, setup: `${setup.label}, ${t.what}`, baseline: `the same podway, not scraped, no capture (interleaved)`,
        pps: Math.round(median(a.pps)), baselinePps: Math.round(median(a.base)), ratio: r3(ratio), ratioMin: r3(Math.min(...a.ratios)), ratioMax: r3(Math.max(...a.ratios)),
        ratios: a.ratios.map(r3), goal: t.goal, met: ratio >= t.goal, captured: a.captured, lost: a.lost, sent: a.sent, scrapes: a.scrapes.join('; '),
        cpuUsPerPkt: r3(median(a.cpu)), baselineCpuUsPerPkt: r3(median(a.baseCpu)), cpuRatio: r3(median(a.cpuRatios)), cpuRatioMin: r3(Math.min(...a.cpuRatios)), cpuRatioMax: r3(Math.max(...a.cpuRatios)),
      });
    }
  }

  /** Ordered by round: each round starts every baseline, then every podway setup, once, and runs
   * all its cases (streams x directions) before the next setup's. */
  async function runTcp(sc: Scenario, podways: Setup[]): Promise<void> {
    const bench = benchFor(sc);
    const cases = tcpStreams.flatMap((streams) => tcpDirections.map((d) => ({ streams, reverse: d === 'b-a' })));
    const setups = [...sc.baselines, ...podways];
    const key = (s: Setup, c: { streams: number; reverse: boolean }) => `${s.label}/${c.streams}/${c.reverse}`;
    const res = new Map<string, Got<TcpMeasurement>[]>();
    for (let r = 0; r < rounds; r++) {
      for (const setup of setups) {
        const started = await tryRound(bench, setup, async () => true);
        for (const c of cases) {
          const g: Got<TcpMeasurement> = 'error' in started ? started : await tryRound(bench, setup, () => bench.tcpBulk(c.streams, c.reverse, longSeconds));
          res.set(key(setup, c), [...(res.get(key(setup, c)) ?? []), g]);
          const at = `${sc.name} ${setup.label} ${c.reverse ? 'B -> A' : 'A -> B'} ${c.streams} streams, round ${r + 1} of ${rounds} (load ${g.load})`;
          say('m' in g ? `${at}: ${g.m.gbps.toFixed(2)} Gb/s, ${g.m.retransmits} retransmits${Object.keys(g.m.counters).length ? ' ' + JSON.stringify(g.m.counters) : ''}` : `${at}: failed: ${g.error}`);
        }
      }
    }
    const perGB = (cpu: number, m: TcpMeasurement) => (m.bytes ? r2(cpu / (m.bytes / 1e9)) : 0);
    const fwdCpu = (m: TcpMeasurement) => m.machineCpu - m.iperfCpu;
    for (const base of sc.baselines) {
      for (const pw of podways) {
        for (const c of cases) {
          const p = res.get(key(pw, c))!;
          const b = res.get(key(base, c))!;
          const what = `${sc.name} ${c.reverse ? 'B -> A' : 'A -> B'} ${c.streams} streams, ${pw.label} against ${base.label}`;
          const sum = summariseRow(what, errors, p, b, (m) => m.gbps);
          if (!sum) continue;
          const { pm, bm } = countedOf(sum, p, b);
          const counters: Record<string, number> = {};
          for (const k of new Set(pm.flatMap((m) => Object.keys(m.counters)))) counters[k] = Math.round(median(pm.map((m) => m.counters[k] ?? 0)));
          const raw = (m: TcpMeasurement) => ({ gbps: r2(m.gbps), retransmits: m.retransmits, cpuSecPerGB: perGB(fwdCpu(m), m), procCpuSecPerGB: perGB(m.procCpu, m), softirqSecPerGB: perGB(m.softirqCpu, m) });
          tcpRows.push({
            scenario: sc.name, size: null, flows: c.streams, direction: c.reverse ? 'B -> A' : 'A -> B', setup: pw.label, baseline: base.label,
            gbps: r2(sum.podway), baselineGbps: r2(sum.baseline), ratio: r2(sum.ratio),
            ratioMin: r2(sum.ratioMin), ratioMax: r2(sum.ratioMax), roundsCounted: sum.counted,
            retransmits: medInt(pm, (m) => m.retransmits), baselineRetransmits: medInt(bm, (m) => m.retransmits),
            cpuSecPerGB: med2(pm, (m) => perGB(fwdCpu(m), m))!, baselineCpuSecPerGB: med2(bm, (m) => perGB(fwdCpu(m), m))!, podwayCpuSecPerGB: med2(pm, (m) => perGB(m.procCpu, m))!,
            softirqSecPerGB: med2(pm, (m) => perGB(m.softirqCpu, m))!, baselineSoftirqSecPerGB: med2(bm, (m) => perGB(m.softirqCpu, m))!, counters,
            rounds: roundRecords(sum, p, b, raw),
          });
        }
      }
    }
  }

  /** Ordered by round as runTcp: each round starts every baseline (kernel, C floor), then every
   * podway setup, once, and runs TCP then UDP (maximum, 100/s, half of that round's maximum). */
  async function runRr(sc: Scenario, podways: Setup[]): Promise<void> {
    type Res = { max: RrMeasurement; low: RrMeasurement; half: RrMeasurement };
    const setups = [...sc.baselines, ...podways];
    const res = new Map<string, Got<Res>[]>();
    for (let r = 0; r < rounds; r++) {
      for (const setup of setups) {
        const started = await tryRound(bench, setup, async () => true);
        for (const proto of ['tcp', 'udp'] as const) {
          const g: Got<Res> = 'error' in started ? started : await tryRound(bench, setup, async () => {
            // the maximum: 16 requests outstanding, as fast as replies come back
            const max = await bench.rr(proto, 0, Math.min(longSeconds, 3), 16);
            const low = await bench.rr(proto, 100, longSeconds);
            const half = await bench.rr(proto, Math.max(100, Math.floor(max.rate / 2)), longSeconds);
            return { max, low, half };
          });
          res.set(`${setup.label}/${proto}`, [...(res.get(`${setup.label}/${proto}`) ?? []), g]);
          const at = `${sc.name} ${setup.label} ${proto}, round ${r + 1} of ${rounds} (load ${g.load})`;
          if ('error' in g) { say(`${at}: failed: ${g.error}`); continue; }
          const { max, low, half } = g.m;
          say(`${at}: max ${max.rate}/s; 100/s p50/p99/p99.9 ${low.p50us}/${low.p99us}/${low.p999us} µs${low.podwayUs ? ` (podway per batch: ring wait ${low.podwayUs.rxWait} µs, recv->send ${low.podwayUs.js} µs, sendmmsg ${low.podwayUs.sendmmsg} µs)` : ''}; ${half.rate}/s ${half.p50us}/${half.p99us}/${half.p999us} µs`);
        }
      }
    }
    for (const base of sc.baselines) {
      for (const pw of podways) {
        for (const proto of ['tcp', 'udp'] as const) {
          for (const load of ['low', 'half'] as const) {
            // this load's runs, with the round's maximum beside them
            const pick = (gs: Got<Res>[]): Got<{ r: RrMeasurement; max: number }>[] => gs.map((g) => ('m' in g ? { m: { r: g.m[load], max: g.m.max.rate }, load: g.load } : g));
            const p = pick(res.get(`${pw.label}/${proto}`)!);
            const b = pick(res.get(`${base.label}/${proto}`)!);
            const what = `${sc.name} ${proto} ${load === 'low' ? '100/s' : 'half of max'}, ${pw.label} against ${base.label}`;
            const sum = summariseRow(what, errors, p, b, (m) => m.r.p99us);
            if (!sum) continue;
            const { pm, bm } = countedOf(sum, p, b);
            const rate = (x: { r: RrMeasurement }) => x.r.received / x.r.seconds;
            const podwayUs = pm.every((x) => x.r.podwayUs)
              ? { rxWait: med2(pm, (x) => x.r.podwayUs!.rxWait)!, js: med2(pm, (x) => x.r.podwayUs!.js)!, sendmmsg: med2(pm, (x) => x.r.podwayUs!.sendmmsg)! }
              : null;
            const raw = (x: { r: RrMeasurement; max: number }) => ({ rate: Math.round(rate(x)), maxRate: x.max, p50us: x.r.p50us, p99us: x.r.p99us, p999us: x.r.p999us, sent: x.r.sent, received: x.r.received, p99SentUs: x.r.p99sentus, ...(x.r.podwayUs ? { podwayUs: x.r.podwayUs } : {}) });
            rrRows.push({
              scenario: sc.name, size: 64, flows: 1, proto, load: load === 'low' ? '100/s' : 'half of max', setup: pw.label, baseline: base.label,
              rate: medInt(pm, rate), baselineRate: medInt(bm, rate), maxRate: medInt(pm, (x) => x.max), baselineMaxRate: medInt(bm, (x) => x.max),
              p50us: med2(pm, (x) => x.r.p50us)!, p99us: med2(pm, (x) => x.r.p99us)!, p999us: med2(pm, (x) => x.r.p999us)!,
              baselineP50us: med2(bm, (x) => x.r.p50us)!, baselineP99us: med2(bm, (x) => x.r.p99us)!, baselineP999us: med2(bm, (x) => x.r.p999us)!,
              // the median of the rounds' differences, as the p99 ratio is the median of theirs
              p50DeltaUs: +median(pm.map((x, i) => x.r.p50us - bm[i].r.p50us)).toFixed(1), p99Ratio: r2(sum.ratio),
              ratioMin: r2(sum.ratioMin), ratioMax: r2(sum.ratioMax), roundsCounted: sum.counted,
              samples: medInt(pm, (x) => x.r.received), baselineSamples: medInt(bm, (x) => x.r.received),
              lost: medInt(pm, (x) => x.r.sent - x.r.received), baselineLost: medInt(bm, (x) => x.r.sent - x.r.received),
              p99SentUs: medSent(pm.map((x) => x.r.p99sentus)), baselineP99SentUs: medSent(bm.map((x) => x.r.p99sentus)), ...(podwayUs ? { podwayUs } : {}),
              rounds: roundRecords(sum, p, b, raw),
            });
          }
        }
      }
    }
  }

  // interrupted: the signal handler ends the process once its cleanup is done
  if (exiting) return;
  const loadavgEnd = loadAverage();
  if (json) {
    for (const r of rows) {
      const { scenario, size, flows, pps, baselinePps, ratio, cpuUsPerPkt, baselineCpuUsPerPkt } = r;
      process.stdout.write(JSON.stringify({ scenario, size, flows, pps, baselinePps, ratio: Number.isFinite(ratio) ? ratio : null, cpuUsPerPkt, baselineCpuUsPerPkt, baseline: r.baseline, lossFreePps: r.lossFreePps, lossFreeOffered: r.lossFreeOffered, lossFreeVoid: r.lossFreeVoid, p50us: r.p50us, p99us: r.p99us, podwayCpuUsPerPkt: r.podwayCpuUsPerPkt, pathCpuUsPerPkt: r.pathCpuUsPerPkt, baselinePathCpuUsPerPkt: r.baselinePathCpuUsPerPkt,
        sent: r.sent, received: r.received, lossPct: r.lossPct, late: r.late, dup: r.dup, seconds: r.seconds,
        baselineSent: r.baselineSent, baselineReceived: r.baselineReceived, baselineLossPct: r.baselineLossPct, baselineLate: r.baselineLate, baselineDup: r.baselineDup, baselineSeconds: r.baselineSeconds,
        setup: r.setup, ratioMin: r.ratioMin, ratioMax: r.ratioMax, roundsCounted: r.roundsCounted, rounds: r.rounds, machine: { ...info, loadavgEnd } }) + '\n');
    }
    for (const r of [...tcpRows, ...rrRows, ...idleRows, ...observeRows]) {
      const ratio = 'ratio' in r ? r.ratio : 'p99Ratio' in r ? r.p99Ratio : null;
      process.stdout.write(JSON.stringify({ ...r, ratio: ratio !== null && Number.isFinite(ratio) ? ratio : null, machine: { ...info, loadavgEnd } }) + '\n');
    }
    if (errors.length) process.exitCode = 1;
    return;
  }
  console.log(`\nmachine: ${info.cpu}, ${info.cores} cores, kernel ${info.kernel}, Node ${info.node}, ${info.date}; load average at start ${info.loadavg}, at end ${loadavgEnd}; pps ${seconds}s, tcp/rr ${longSeconds}s per measurement; ${rounds} round${rounds === 1 ? '' : 's'} per pps, tcp-bulk and rr-latency row (figures: medians over the rounds that counted; ratio: the median of the per-round ratios, their min-max in brackets)\n`);
  if (rows.length) {
    console.log('| scenario | size | flows | podway setup | baseline | podway pps | baseline pps | ratio (min-max of the rounds) | Gb/s | loss % podway / baseline | late podway / baseline (not counted) | loss-free pps (<0.1%, delivered) | p50/p99 µs at half that | machine CPU µs/pkt podway / baseline | path CPU µs/pkt podway / baseline | podway process µs/pkt |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) {
      console.log(`| ${r.scenario} | ${r.size} | ${r.flows} | ${r.setup} | ${r.baseline} | ${r.pps} | ${r.baselinePps} | ${ratioText({ ...r, counted: r.roundsCounted, rounds: r.rounds.length })} | ${r.gbps} | ${dash(r.lossPct)} / ${dash(r.baselineLossPct)} | ${r.late} / ${r.baselineLate} | ${r.lossFreePps || (r.lossFreeVoid.length ? 'void' : 0)} | ${r.p50us}/${r.p99us} | ${dash(r.cpuUsPerPkt)} / ${dash(r.baselineCpuUsPerPkt)} | ${dash(r.pathCpuUsPerPkt)} / ${dash(r.baselinePathCpuUsPerPkt)} | ${dash(r.podwayCpuUsPerPkt)} |`);
    }
    console.log('\nThe kernel baseline forwards in the generator\'s softirq: its whole path runs on the sender\'s core, while podway runs on the other vCPU (bench/README.md).\n');
  }
  if (atRate.length) {
    console.log(`CPU per delivered packet at ${cpuRate} pps offered (path: pktgen sender's system time + sink + forwarder + ksoftirqd; µs):\n`);
    console.log('| scenario | size | flows | setup | delivered pps | loss | path µs/pkt | sender (system) µs/frame sent | forwarder µs/pkt | sink µs/pkt | machine µs/pkt |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const { scenario, size, flows, setup, m } of atRate) {
      const us = (x: number) => dash(perPkt(x, m));
      console.log(`| ${scenario} | ${size} | ${flows} | ${setup} | ${Math.round(m.pps)} | ${m.sent ? (100 * (1 - m.received / m.sent)).toFixed(2) : '-'}% | ${us(m.pathCpu)} | ${m.sent ? r2((m.senderCpu * 1e6) / m.sent) : 0} | ${us(m.procCpu)} | ${us(m.sinkCpu)} | ${us(m.machineCpu)} |`);
    }
    console.log('');
  }
  if (tcpRows.length) {
    console.log('| tcp-bulk | streams | podway setup | baseline | podway Gb/s | baseline Gb/s | ratio (min-max of the rounds) | retransmits podway / baseline | CPU s/GB (machine - iperf3) podway / baseline | podway process s/GB | softirq s/GB podway / baseline | podway port counters |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of tcpRows) {
      const ctr = Object.entries(r.counters).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ');
      console.log(`| ${r.direction} | ${r.flows} | ${r.setup} | ${r.baseline} | ${r.gbps} | ${r.baselineGbps} | ${ratioText({ ...r, counted: r.roundsCounted, rounds: r.rounds.length })} | ${r.retransmits} / ${r.baselineRetransmits} | ${r.cpuSecPerGB} / ${r.baselineCpuSecPerGB} | ${r.podwayCpuSecPerGB} | ${r.softirqSecPerGB} / ${r.baselineSoftirqSecPerGB} | ${ctr} |`);
    }
    console.log('');
  }
  if (rrRows.length) {
    console.log('| rr-latency | load | podway setup | baseline | rate podway / baseline (max) | podway p50/p99/p99.9 µs | baseline p50/p99/p99.9 µs | p50 podway - baseline (median of the rounds) | p99 ratio (min-max of the rounds) | samples | lost (no reply) | p99 over sent, lost = slowest (-1: >1% lost) |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of rrRows) {
      console.log(`| ${r.proto} 64 B | ${r.load} | ${r.setup} | ${r.baseline} | ${r.rate} (${r.maxRate}) / ${r.baselineRate} (${r.baselineMaxRate}) | ${r.p50us}/${r.p99us}/${r.p999us} | ${r.baselineP50us}/${r.baselineP99us}/${r.baselineP999us} | ${r.p50DeltaUs >= 0 ? '+' : ''}${r.p50DeltaUs} µs | ${ratioText({ ratio: r.p99Ratio, ratioMin: r.ratioMin, ratioMax: r.ratioMax, counted: r.roundsCounted, rounds: r.rounds.length })} | ${r.samples} / ${r.baselineSamples} | ${r.lost} / ${r.baselineLost} | ${r.p99SentUs} / ${r.baselineP99SentUs} |`);
    }
    console.log('');
  }
  if (idleRows.length) {
    console.log('| idle | endpoints | seconds | CPU s, whole tree | % of a core | processes | wake-ups/s | podway process alone, % of a core | main thread ms (% of a core) | machine idle % | load average start -> end |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of idleRows) console.log(`| ${r.setup} | ${r.endpoints} | ${r.seconds} | ${r.cpuSeconds} | ${r.percentOfCore}% | processes: ${r.processes} (${r.exited} exited in the window) | ${r.wakeupsPerSecond} | ${r.podwayPercentOfCore}% | ${r.mainThreadMs ?? '-'} (${r.mainThreadPercentOfCore ?? '-'}%) | ${r.machineIdlePct}% | ${r.loadavgStart} -> ${r.loadavgEnd} |`);
    // per process: its CPU (own threads + children reaped in the window), its busiest threads
    console.log('\n| idle setup | pid | process | life | CPU s (own + reaped) | threads | wake-ups | busiest threads: ms on CPU (schedstat), wake-ups |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of idleRows) {
      for (const p of r.perProcess) {
        const busy = p.tasks.slice(0, 4).map((t) => `${t.tid === p.pid ? 'main' : `${t.comm} ${t.tid}`} ${t.runMs ?? t.cpuSeconds * 1000} ms, ${t.wakeups}`).join('; ');
        console.log(`| ${r.setup} | ${p.pid} | ${p.cmd || p.comm} | ${p.life} | ${p.cpuSeconds} (${p.ownSeconds} + ${p.reapedSeconds}) | ${p.threads} | ${p.wakeups} | ${busy} |`);
      }
    }
  }
  if (observeRows.length) {
    console.log('\n| observe | size | flows | setup | pps (median) | plain pps (median) | pps ratio (median of pairs) | min..max | goal | met (pps) | podway µs/pkt / plain | CPU ratio (plain / this) min..max | captured / lost | packets sent |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of observeRows) console.log(`| ${r.scenario} | ${r.size} | ${r.flows} | ${r.setup} | ${r.pps} | ${r.baselinePps} | ${r.ratio}x | ${r.ratioMin}..${r.ratioMax} | ${r.goal}x | ${r.met ? 'yes' : 'no'} | ${r.cpuUsPerPkt} / ${r.baselineCpuUsPerPkt} | ${r.cpuRatio}x ${r.cpuRatioMin}..${r.cpuRatioMax} | ${r.captured} / ${r.lost} | ${r.sent} |`);
  }
  for (const e of errors) console.log(`\nscenario failed: ${e}`);
  if (errors.length) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exit(1);
});
