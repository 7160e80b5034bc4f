/**
 * Forwarding stall on a model apply: how long a datastore edit that touches ONE pod stops podway
 * from forwarding when N veth pods (default 1000) exist on the node.
 *
 * Topology (network namespaces, one random tag on every name):
 *   node  - podway runs here; eth0 10.99.0.1/24 is the underlay (a veth to `peer`, 10.99.0.2),
 *           plus the host ends (cali…) of N+1 veth pods
 *   pods  - the pod ends of N-1 of them (they only need to exist)
 *   a, b  - pods A and B: /32 address, default via 169.254.1.1, as Calico wires a pod
 * The extra veth (#N+1) exists from the start but is in the resource file only after an "add" edit.
 *
 * Traffic: UDP from pod A to pod B at a fixed rate (bench/stall/peer.ts), each datagram carrying a
 * sequence number and its send time; pod B records every arrival. Only ever between A and B.
 *
 * Edit kinds: add (endpoint #N+1 in, then out), label (pod #3's label), pool (natOutgoing toggled
 * on a second IPPool, disabled and empty: the NAT table's sets change, nothing podway forwards does).
 *
 * Procedure: start podway (startup = spawn until the first model is applied), start the stream,
 * take a baseline window with no edit, then for each edit kind do `--edits` edits (written as
 * tmp + rename, as an editor or a datastore sync would), each followed by `podway status` polls
 * until modelsApplied moves. Per edit it reports the longest gap between consecutive arrivals
 * around the edit, the datagrams lost, the worst one-way latency, and the apply time (from the
 * rename to the status answer that shows the new model, and to podway's own "applied model" log).
 *
 *   npm run bench:stall [-- --pods 1000] [-- --pps 2000] [-- --edits 3] [-- --kinds add,label,pool]
 *                       [-- --baseline-seconds 5] [-- --podway PATH/bin/podway.js]
 *                       [-- --podway-args "--workers 2"] [-- --json]
 *                       [-- --startup-timeout 1200] [-- --apply-timeout 1200]
 */
import { spawn, ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, renameSync, readFileSync, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { caliName, run, sleep } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { parseClusterYaml } from '../../src/control';
import { RECORD_BYTES } from './peer';
import { benchArgsOrExit } from '../e2e/bench-args';

const BENCH_ARGS = { usage: `usage: node dist/bench/stall/run.js [--pods 1000] [--pps 2000] [--edits 3] [--kinds add,label,pool] [--baseline-seconds 5]
         [--podway PATH] [--podway-args "ARGS"] [--startup-timeout S] [--apply-timeout S] [--json]
Needs root; run it under the machine's bench lock (flock /tmp/pw-bench.lock ...).`, flags: ['--json'], options: ['--pods', '--pps', '--edits', '--kinds', '--baseline-seconds', '--podway', '--podway-args', '--startup-timeout', '--apply-timeout'] };

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PEER_JS = path.join(__dirname, 'peer.js');
const NODE = 'node1';
const NODE_IP = '10.99.0.1';
const PEER_IP = '10.99.0.2';
const UDP_PORT = 9000;
/** Addresses per /26 block used for pods (.1 to .62; .0 of the first block is the VTEP). */
const PER_BLOCK = 62;
/** Upper bound of the whole run's stream; the sender and receiver are killed long before. */
const STREAM_MAX_SECONDS = 900;

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
/** Wall clock minus monotonic clock, to place podway's ISO log timestamps on the stream's clock. */
const WALL_OFFSET = Date.now() - nowMs();

interface Options {
  pods: number;
  pps: number;
  edits: number;
  kinds: EditKind[];
  baselineSeconds: number;
  podway: string;
  podwayArgs: string[];
  json: boolean;
  /** Longest wait for the first apply, and for one edit's apply: before the fix, podway needs
   * minutes for either at 1000 pods. An edit that runs out of time is reported as a lower bound. */
  startupTimeoutMs: number;
  applyTimeoutMs: number;
}

type EditKind = 'add' | 'label' | 'pool';

function parseArgs(argv: string[]): Options {
  const val = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const num = (name: string, dflt: number): number => {
    const v = val(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: expected a positive number, got "${v}"`);
    return n;
  };
  const kinds = (val('--kinds') ?? 'add,label').split(',').filter(Boolean) as EditKind[];
  for (const k of kinds) if (k !== 'add' && k !== 'label' && k !== 'pool') throw new Error(`--kinds: "${k}" is not add, label or pool`);
  const o: Options = {
    pods: Math.floor(num('--pods', 1000)),
    pps: num('--pps', 2000),
    edits: Math.floor(num('--edits', 3)),
    kinds,
    baselineSeconds: num('--baseline-seconds', 5),
    podway: path.resolve(val('--podway') ?? path.join(ROOT, 'bin', 'podway.js')),
    podwayArgs: (val('--podway-args') ?? '').split(' ').filter(Boolean),
    json: argv.includes('--json'),
    startupTimeoutMs: num('--startup-timeout', 1200) * 1000,
    applyTimeoutMs: num('--apply-timeout', 1200) * 1000,
  };
  if (o.pods < 3) throw new Error('--pods: at least 3 (pods A and B, and one to edit)');
  if (!existsSync(o.podway)) throw new Error(`--podway: ${o.podway} does not exist`);
  return o;
}

interface Pod {
  index: number;
  ifname: string;
  /** namespace of the pod end, and its name there */
  ns: string;
  podIf: string;
  ip: string;
  mac: string;
}

function hex2(n: number): string {
  return (n & 255).toString(16).padStart(2, '0');
}

/** Pod i's address: block i/62 (a /26 of 10.244.0.0/16), host .1 to .62 in it. */
function podIp(i: number): string {
  const addr = ((10 << 24) | (244 << 16)) + 64 * Math.floor(i / PER_BLOCK) + 1 + (i % PER_BLOCK);
  return [addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join('.');
}

function blockCidr(k: number): string {
  const addr = ((10 << 24) | (244 << 16)) + 64 * k;
  return `${[addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join('.')}/26`;
}

class StallLab {
  readonly tag = randomBytes(3).toString('hex');
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'podway-stall-'));
  readonly file = path.join(this.dir, 'cluster.yaml');
  readonly control = path.join(this.dir, `${NODE}.sock`);
  readonly recordFile = path.join(this.dir, 'arrivals.bin');
  readonly nsNode = `pw-st-${this.tag}-node`;
  readonly nsPeer = `pw-st-${this.tag}-peer`;
  readonly nsPods = `pw-st-${this.tag}-pods`;
  readonly nsA = `pw-st-${this.tag}-a`;
  readonly nsB = `pw-st-${this.tag}-b`;
  private readonly namespaces: string[] = [];
  /** N+1 pods: 0 is A, 1 is B, N is the one an "add" edit brings into the file. */
  readonly pods: Pod[] = [];
  readonly procs: ChildProcess[] = [];
  podway: ChildProcess | null = null;
  readonly log: { t: number; line: string }[] = [];

  constructor(readonly n: number) {}

  private addNs(name: string): void {
    run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  }

  build(): void {
    for (const ns of [this.nsNode, this.nsPeer, this.nsPods, this.nsA, this.nsB]) this.addNs(ns);
    // The underlay, as the lab's p2p topology: the node IP sits on eth0 of the node namespace.
    run('ip', ['link', 'add', 'eth0', 'netns', this.nsNode, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.nsPeer]);
    for (const [ns, ip, gw] of [[this.nsNode, NODE_IP, PEER_IP], [this.nsPeer, PEER_IP, NODE_IP]]) {
      run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      run('ip', ['-n', ns, 'route', 'add', 'default', 'via', gw]);
    }
    const nodeBatch: string[] = [];
    const podsBatch: string[] = [];
    for (let i = 0; i <= this.n; i++) {
      const ns = i === 0 ? this.nsA : i === 1 ? this.nsB : this.nsPods;
      const podIf = i <= 1 ? 'eth0' : `p${i}`;
      const pod: Pod = {
        index: i, ifname: caliName('default', `stall-${i}-${this.tag}`), ns, podIf, ip: podIp(i),
        mac: `02:57:00:${hex2(i >> 16)}:${hex2(i >> 8)}:${hex2(i)}`,
      };
      this.pods.push(pod);
      // Host end ee:ee:ee:ee:ee:ee as Calico sets it; the pod end gets the MAC the endpoint names.
      nodeBatch.push(`link add ${pod.ifname} address ee:ee:ee:ee:ee:ee type veth peer name ${podIf} address ${pod.mac} netns ${ns}`);
      nodeBatch.push(`link set ${pod.ifname} up`);
      if (i > 1) podsBatch.push(`link set ${podIf} up`);
    }
    const t0 = nowMs();
    writeFileSync(path.join(this.dir, 'node.batch'), nodeBatch.join('\n') + '\n');
    writeFileSync(path.join(this.dir, 'pods.batch'), podsBatch.join('\n') + '\n');
    run('ip', ['-n', this.nsNode, '-batch', path.join(this.dir, 'node.batch')], { timeoutMs: 300_000 });
    run('ip', ['-n', this.nsPods, '-batch', path.join(this.dir, 'pods.batch')], { timeoutMs: 300_000 });
    progress(`created ${this.n + 1} veth pairs in ${((nowMs() - t0) / 1000).toFixed(1)} s`);
    // Pods A and B wired as src/lab/lab.ts wires a veth pod.
    for (const pod of this.pods.slice(0, 2)) {
      run('ip', ['-n', pod.ns, 'addr', 'add', `${pod.ip}/32`, 'dev', pod.podIf]);
      run('ip', ['-n', pod.ns, 'link', 'set', pod.podIf, 'up']);
      run('ip', ['-n', pod.ns, 'route', 'add', '169.254.1.1', 'dev', pod.podIf, 'scope', 'link']);
      run('ip', ['-n', pod.ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', pod.podIf]);
      run('ip', ['netns', 'exec', pod.ns, 'ethtool', '-K', pod.podIf, 'tx', 'off', 'tso', 'off', 'gso', 'off'], { allowFail: true });
    }
  }

  /** The resource file: pool, node, affine blocks, and endpoints 0..n-1 (plus #n when `extra`). */
  resources(extra: boolean, label: string, spareNat = false): string {
    const count = extra ? this.n + 1 : this.n;
    const blocks = Math.ceil((this.n + 1) / PER_BLOCK);
    const docs: string[] = [
      `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 10.244.0.0/16
  blockSize: 26
  ipipMode: Never
  vxlanMode: Always
  natOutgoing: false`,
      // A pool no pod uses, disabled: the "pool" edit toggles its natOutgoing (what changes is the
      // NAT table's sets; no route, endpoint or next hop).
      `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: bench-spare-pool
spec:
  cidr: 10.250.0.0/16
  blockSize: 26
  ipipMode: Never
  vxlanMode: Always
  disabled: true
  natOutgoing: ${spareNat}`,
      `apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: ${NODE}
spec:
  bgp:
    ipv4Address: ${NODE_IP}/24
  ipv4VXLANTunnelAddr: 10.244.0.0`,
    ];
    for (let k = 0; k < blocks; k++) {
      docs.push(`apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata:
  name: ${NODE}-${blockCidr(k).replace(/[./]/g, '-')}
spec:
  node: ${NODE}
  cidr: ${blockCidr(k)}
  state: confirmed`);
    }
    for (let i = 0; i < count; i++) {
      const p = this.pods[i];
      // The label edit changes pod #2's labels only (metadata podway does not route by).
      const labels = i === 2 ? `\n  labels:\n    bench-edit: "${label}"` : '';
      docs.push(`apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: ${NODE}-k8s-stall--${i}-eth0
  namespace: default${labels}
spec:
  node: ${NODE}
  orchestrator: k8s
  pod: stall-${i}
  endpoint: eth0
  interfaceName: ${p.ifname}
  ipNetworks:
    - ${p.ip}/32
  mac: "${p.mac}"`);
    }
    return docs.join('\n---\n') + '\n';
  }

  /** Write the file as an editor or a sync tool does: a temp file renamed over it. Returns the rename time. */
  write(text: string): number {
    parseClusterYaml(text, 'bench'); // a file podway would reject would measure nothing
    writeFileSync(this.file + '.tmp', text);
    const t = nowMs();
    renameSync(this.file + '.tmp', this.file);
    return t;
  }

  startPodway(bin: string, extra: string[]): number {
    const t = nowMs();
    const p = spawn('ip', ['netns', 'exec', this.nsNode, process.execPath, bin, 'run', '--node', NODE, '--datastore', `file:${this.file}`, '--control', this.control, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.podway = p;
    this.procs.push(p);
    let rest = '';
    p.stderr!.setEncoding('utf8');
    p.stderr!.on('data', (d: string) => {
      const now = nowMs();
      const lines = (rest + d).split('\n');
      rest = lines.pop()!;
      for (const line of lines) if (line) this.log.push({ t: now, line });
      if (this.log.length > 5000) this.log.splice(0, this.log.length - 5000);
    });
    return t;
  }

  /** Monotonic times of podway's "applied model" log lines (from their own timestamps). */
  appliedTimes(): number[] {
    const out: number[] = [];
    for (const { line } of this.log) if (/^\S+ podway\[[^\]]*\] applied model/.test(line)) out.push(logTime(line)!);
    return out;
  }

  async status(timeoutMs = 120_000): Promise<{ modelsApplied: number; endpoints: number }> {
    return (await controlRequest(this.control, { cmd: 'status' }, timeoutMs)) as { modelsApplied: number; endpoints: number };
  }

  /**
   * Poll status until modelsApplied exceeds `after`, or (for an edit written at `since`) podway
   * logs that the edit leaves its model unchanged (a podway that skips such applies says so
   * instead of applying); null when `timeoutMs` passes first.
   */
  async waitApplied(after: number, timeoutMs: number, since = Infinity): Promise<Processed | null> {
    const start = nowMs();
    const end = start + timeoutMs;
    // A heartbeat on stderr while podway is busy: before the fix an apply takes minutes at 1000 pods.
    const beat = setInterval(() => progress(`  still waiting for model #${after + 1}: ${((nowMs() - start) / 1000).toFixed(0)} s`), 30_000);
    try {
      return await this.pollApplied(after, end, since);
    } finally {
      clearInterval(beat);
    }
  }

  private async pollApplied(after: number, end: number, since: number): Promise<Processed | null> {
    for (let k = 0; nowMs() < end && k < 100_000; k++) {
      if (this.podway?.exitCode !== null) throw new Error(`podway exited (${this.podway?.exitCode}): ${this.tail()}`);
      const rejected = this.log.find((l) => /update rejected|datastore:/.test(l.line));
      if (rejected) throw new Error(`podway refused the edit: ${rejected.line}`);
      const unchanged = this.log.find((l) => l.t >= since && /model is unchanged/.test(l.line));
      if (unchanged) return { t: unchanged.t, endpoints: -1, unchanged: true, logT: logTime(unchanged.line) };
      if (existsSync(this.control)) {
        try {
          const st = await this.status(Math.max(1000, end - nowMs()));
          if (st.modelsApplied > after) return { t: nowMs(), endpoints: st.endpoints, unchanged: false, logT: null };
        } catch {
          /* the socket is not listening yet */
        }
      }
      await sleep(20);
    }
    return null;
  }

  tail(): string {
    return this.log.slice(-5).map((l) => l.line).join(' | ');
  }

  /** Start pod B's receiver, wait (bounded) until it is bound, then pod A's sender. */
  async startStream(pps: number): Promise<void> {
    const a = this.pods[0];
    const b = this.pods[1];
    const receiver = spawn('ip', ['netns', 'exec', b.ns, process.execPath, PEER_JS, 'recv', b.ip, String(UDP_PORT), this.recordFile, String(STREAM_MAX_SECONDS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.procs.push(receiver);
    let out = '';
    receiver.stdout!.setEncoding('utf8');
    receiver.stdout!.on('data', (d: string) => { out += d; });
    for (let k = 0; k < 200 && !out.includes('ready'); k++) {
      if (receiver.exitCode !== null) throw new Error(`the receiver in pod B exited (${receiver.exitCode})`);
      await sleep(50);
    }
    if (!out.includes('ready')) throw new Error('the receiver in pod B did not bind within 10 s');
    const sender = spawn('ip', ['netns', 'exec', a.ns, process.execPath, PEER_JS, 'send', b.ip, String(UDP_PORT), String(pps), String(STREAM_MAX_SECONDS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.procs.push(sender);
  }

  records(): Arrivals {
    const buf = existsSync(this.recordFile) ? readFileSync(this.recordFile) : Buffer.alloc(0);
    const n = Math.floor(buf.length / RECORD_BYTES);
    const a: Arrivals = { n, seq: new Uint32Array(n), sent: new Float64Array(n), arrived: new Float64Array(n) };
    for (let i = 0; i < n; i++) {
      const o = i * RECORD_BYTES;
      a.seq[i] = buf.readUInt32LE(o);
      a.sent[i] = buf.readDoubleLE(o + 4);
      a.arrived[i] = buf.readDoubleLE(o + 12);
    }
    return a;
  }

  /** Frames the kernel dropped at pod A's receive ring in podway (ring full: podway not reading).
   * Asked outside the measured windows: answering walks every port on podway's forwarding thread. */
  async ringDropsA(): Promise<number> {
    const c = (await controlRequest(this.control, { cmd: 'counters' }, 60_000)) as { ports: { port: string; kernelDrops: number }[] };
    return c.ports.find((p) => p.port === this.pods[0].ifname)?.kernelDrops ?? 0;
  }

  /** Kernel UDP counters of pod B (to tell receiver-socket drops from forwarding drops). */
  udpCounters(): { inDatagrams: number; rcvbufErrors: number } {
    const snmp = run('ip', ['netns', 'exec', this.nsB, 'cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Udp:'));
    const keys = snmp[0].split(/\s+/);
    const vals = snmp[1].split(/\s+/).map(Number);
    return { inDatagrams: vals[keys.indexOf('InDatagrams')], rcvbufErrors: vals[keys.indexOf('RcvbufErrors')] };
  }

  /** Cost of one `ip` process as podway runs them (execFileSync from node, in the node namespace),
   * from a small node process: what the per-pod route + neighbour commands cost without podway's
   * own size (its rings and heap) in the fork. */
  ipExecCostMs(count: number): number {
    const a = this.pods[0];
    const script = `const {execFileSync}=require('child_process');const t=process.hrtime.bigint();
for(let i=0;i<${count};i++){execFileSync('ip',['route','replace','${a.ip}/32','dev','${a.ifname}','scope','link'],{stdio:['ignore','ignore','pipe']});
execFileSync('ip',['neigh','replace','${a.ip}','lladdr','${a.mac}','dev','${a.ifname}','nud','permanent'],{stdio:['ignore','ignore','pipe']});}
process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6/${2 * count}));`;
    return Number(run('ip', ['netns', 'exec', this.nsNode, process.execPath, '-e', script], { timeoutMs: 120_000 }));
  }

  async destroy(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    const end = nowMs() + 5000;
    for (const p of this.procs) {
      while (p.exitCode === null && p.signalCode === null && nowMs() < end) await sleep(50);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    this.destroySync();
  }

  destroySync(): void {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const ns of this.namespaces.reverse()) run('ip', ['netns', 'del', ns], { allowFail: true });
    this.namespaces.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A log line's own timestamp on the monotonic clock (null when the line has none). */
function logTime(line: string): number | null {
  // podway logs JSON lines ({"time":"2026-...Z",...}) when stderr is not a terminal.
  let time: unknown;
  try {
    time = (JSON.parse(line) as { time?: unknown }).time;
  } catch {
    time = line.split(' ', 1)[0];
  }
  const t = typeof time === 'string' ? Date.parse(time) : NaN;
  return Number.isFinite(t) ? t - WALL_OFFSET : null;
}

/** podway took up an edit: applied it (status moved) or reported it leaves the model unchanged. */
interface Processed {
  /** when the bench saw it (status answer, or the log line's arrival) */
  t: number;
  endpoints: number;
  unchanged: boolean;
  /** the "unchanged" log line's own timestamp */
  logT: number | null;
}

interface Arrivals { n: number; seq: Uint32Array; sent: Float64Array; arrived: Float64Array }

interface WindowStats {
  received: number;
  /** longest time between consecutive arrivals (ms), and when it began relative to `ref` */
  maxGapMs: number;
  gapStartMs: number;
  lost: number;
  maxLatencyMs: number;
}

/** Arrivals between t0 and t1 (monotonic ms). The arrival just before t0 counts as a gap start. */
function windowStats(a: Arrivals, t0: number, t1: number, ref: number): WindowStats {
  let prev = -1;
  let maxGap = 0;
  let gapStart = 0;
  let received = 0;
  let maxLat = 0;
  let minSeq = Infinity;
  let maxSeq = -1;
  const seen = new Set<number>();
  for (let i = 0; i < a.n; i++) {
    const t = a.arrived[i];
    if (t > t1) break;
    if (t < t0) { prev = t; continue; }
    received++;
    if (prev >= 0 && t - prev > maxGap) { maxGap = t - prev; gapStart = prev - ref; }
    prev = t;
  }
  // Loss by send time: every sequence number sent inside the window that never arrived (by the
  // time of analysis, which is after the window: late arrivals count as delivered).
  for (let i = 0; i < a.n; i++) {
    if (a.sent[i] < t0 || a.sent[i] > t1) continue;
    seen.add(a.seq[i]);
    if (a.seq[i] < minSeq) minSeq = a.seq[i];
    if (a.seq[i] > maxSeq) maxSeq = a.seq[i];
    const lat = a.arrived[i] - a.sent[i];
    if (lat > maxLat) maxLat = lat;
  }
  const lost = maxSeq >= 0 ? maxSeq - minSeq + 1 - seen.size : 0;
  return { received, maxGapMs: maxGap, gapStartMs: gapStart, lost, maxLatencyMs: maxLat };
}

interface EditResult extends WindowStats {
  kind: EditKind;
  n: number;
  what: string;
  /** rename -> the status answer showing the new model (or podway's "model is unchanged" line) */
  applyMs: number;
  /** podway had not applied the edit within --apply-timeout: applyMs and maxGapMs are lower bounds */
  timedOut: boolean;
  /** rename -> podway's "applied model" (or "unchanged") log line, by its own timestamp (ms) */
  applyLogMs: number | null;
  endpoints: number;
  rcvbufErrors: number;
  /** drops at pod A's AF_PACKET ring in podway during the edit (a full ring while podway is busy) */
  ringDrops: number;
}

function progress(m: string): void {
  process.stderr.write(`bench:stall: ${m}\n`);
}

function machineInfo() {
  let cpu = 'unknown';
  try {
    cpu = /Model name:\s*(.*)/.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1]?.trim() ?? cpu;
  } catch {
    cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? cpu;
  }
  return { cpu, nproc: os.cpus().length, kernel: os.release(), node: process.version, date: new Date().toISOString(), loadavg: os.loadavg().map((x) => +x.toFixed(2)) };
}

function gitCommitOf(bin: string): string | null {
  try {
    return execFileSync('git', ['-C', path.dirname(bin), 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

const f1 = (x: number) => x.toFixed(1);

async function main(): Promise<void> {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  const o = parseArgs(process.argv.slice(2));
  if (process.getuid && process.getuid() !== 0) throw new Error('the stall benchmark needs root (network namespaces)');
  const lab = new StallLab(o.pods);
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    lab.destroySync();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const tBench = nowMs();
  const loadStart = os.loadavg();
  try {
    lab.build();
    const ipCost = lab.ipExecCostMs(50);
    progress(`one ip process from a small node process: ${ipCost.toFixed(2)} ms`);
    const base = lab.resources(false, 'one');
    lab.write(base);

    // Startup: spawn until the first model is applied (the control socket answers only after it).
    const tSpawn = lab.startPodway(o.podway, o.podwayArgs);
    const up = await lab.waitApplied(0, o.startupTimeoutMs);
    if (!up) throw new Error(`podway did not apply its first model within ${o.startupTimeoutMs / 1000} s: ${lab.tail()}`);
    const startupMs = up.t - tSpawn;
    const firstLog = lab.appliedTimes()[0];
    progress(`podway up: ${up.endpoints} endpoints, first model applied ${f1(startupMs)} ms after spawn`);
    if (up.endpoints !== o.pods) throw new Error(`podway attached ${up.endpoints} endpoints, expected ${o.pods}: ${lab.tail()}`);

    // The stream, and wait (bounded) until it arrives.
    const tStream = nowMs();
    await lab.startStream(o.pps);
    let firstArrival = 0;
    for (let k = 0; k < 300 && !firstArrival; k++) {
      await sleep(50);
      const a = lab.records();
      if (a.n > 0) firstArrival = a.arrived[0];
    }
    if (!firstArrival) throw new Error(`no datagram from pod A reached pod B within 15 s: ${lab.tail()}`);
    progress(`stream arriving ${f1(firstArrival - tStream)} ms after the sender started`);
    await sleep(1000);

    // Baseline: the same window statistics with nothing changing.
    const tb0 = nowMs();
    await sleep(o.baselineSeconds * 1000);
    const tb1 = nowMs();
    await sleep(500); // let in-flight datagrams land before judging loss
    const baseline = windowStats(lab.records(), tb0, tb1, tb0);
    progress(`baseline ${o.baselineSeconds} s: max gap ${f1(baseline.maxGapMs)} ms, lost ${baseline.lost}`);

    const edits: EditResult[] = [];
    // Each edit starts from the file the previous one left, so every edit changes exactly one pod:
    // add brings endpoint #N+1 in, then out, then in...; label flips pod #3's label.
    const state = { extra: false, label: 'one', spareNat: false };
    edits: for (const kind of o.kinds) {
      for (let e = 0; e < o.edits; e++) {
        let what: string;
        if (kind === 'add') {
          state.extra = !state.extra;
          what = `${state.extra ? 'add' : 'remove'} endpoint #${o.pods + 1}`;
        } else if (kind === 'pool') {
          state.spareNat = !state.spareNat;
          what = `natOutgoing ${state.spareNat} on a disabled, empty pool`;
        } else {
          const from = state.label;
          state.label = from === 'one' ? 'two' : 'one';
          what = `relabel endpoint #3 (${from}->${state.label})`;
        }
        const text = lab.resources(state.extra, state.label, state.spareNat);
        const before = (await lab.status()).modelsApplied;
        const logsBefore = lab.appliedTimes().length;
        const udp0 = lab.udpCounters();
        const ring0 = await lab.ringDropsA();
        await sleep(1000); // a quiet second before each edit
        const tWrite = lab.write(text);
        const done = await lab.waitApplied(before, o.applyTimeoutMs, tWrite);
        if (!done) {
          // Still applying: report what is known as lower bounds (the gap is still open; loss
          // cannot be counted, and asking podway for its counters would wait for the apply).
          const tNow = nowMs();
          const a = lab.records();
          const w = windowStats(a, tWrite - 200, tNow, tWrite);
          const lastArrival = a.n > 0 ? a.arrived[a.n - 1] : tWrite;
          const r: EditResult = {
            kind, n: e + 1, what, ...w, timedOut: true, applyMs: tNow - tWrite, applyLogMs: null, endpoints: -1,
            maxGapMs: Math.max(w.maxGapMs, tNow - lastArrival), gapStartMs: w.maxGapMs > tNow - lastArrival ? w.gapStartMs : lastArrival - tWrite,
            rcvbufErrors: lab.udpCounters().rcvbufErrors - udp0.rcvbufErrors, ringDrops: -1,
          };
          edits.push(r);
          progress(`${what}: not applied after ${f1(r.applyMs / 1000)} s (--apply-timeout); no gap closed since +${f1(r.gapStartMs)} ms; stopping the edits`);
          break edits;
        }
        await sleep(1500); // the queued burst drains, late datagrams land
        const logs = lab.appliedTimes();
        const udp1 = lab.udpCounters();
        const ring1 = await lab.ringDropsA();
        const w = windowStats(lab.records(), tWrite - 200, done.t + 1000, tWrite);
        const r: EditResult = {
          kind, n: e + 1, what: done.unchanged ? `${what}: podway: model unchanged, not applied` : what, ...w, timedOut: false, applyMs: done.t - tWrite,
          applyLogMs: done.logT !== null ? done.logT - tWrite : logs.length > logsBefore ? logs[logs.length - 1] - tWrite : null,
          endpoints: done.endpoints, rcvbufErrors: udp1.rcvbufErrors - udp0.rcvbufErrors, ringDrops: ring1 - ring0,
        };
        edits.push(r);
        progress(`${what}: apply ${f1(r.applyMs)} ms, max gap ${f1(r.maxGapMs)} ms (from +${f1(r.gapStartMs)} ms), lost ${r.lost} (ring ${r.ringDrops}), worst latency ${f1(r.maxLatencyMs)} ms`);
      }
    }

    const info = machineInfo();
    const commit = gitCommitOf(o.podway);
    const maxOf = (k: EditKind, f: (r: EditResult) => number) => Math.max(...edits.filter((r) => r.kind === k).map(f));
    const kinds = o.kinds.filter((k) => edits.some((r) => r.kind === k));
    const summary = {
      bench: 'stall', pods: o.pods, pps: o.pps, podway: o.podway, commit, podwayArgs: o.podwayArgs.join(' '),
      startupMs: +f1(startupMs), startupLogMs: firstLog !== undefined ? +f1(firstLog - tSpawn) : null,
      ipExecMs: +ipCost.toFixed(2),
      baseline: { seconds: o.baselineSeconds, maxGapMs: +f1(baseline.maxGapMs), lost: baseline.lost, maxLatencyMs: +f1(baseline.maxLatencyMs), received: baseline.received },
      edits: edits.map((r) => ({ kind: r.kind, what: r.what, timedOut: r.timedOut, applyMs: +f1(r.applyMs), applyLogMs: r.applyLogMs === null ? null : +f1(r.applyLogMs), maxGapMs: +f1(r.maxGapMs), gapStartMs: +f1(r.gapStartMs), lost: r.timedOut ? null : r.lost, ringDrops: r.timedOut ? null : r.ringDrops, rcvbufErrors: r.rcvbufErrors, maxLatencyMs: +f1(r.maxLatencyMs) })),
      max: Object.fromEntries(kinds.map((k) => [k, { timedOut: edits.some((r) => r.kind === k && r.timedOut), applyMs: +f1(maxOf(k, (r) => r.applyMs)), maxGapMs: +f1(maxOf(k, (r) => r.maxGapMs)), lost: maxOf(k, (r) => r.lost) }])),
      benchSeconds: +((nowMs() - tBench) / 1000).toFixed(1), loadavgStart: loadStart.map((x) => +x.toFixed(2)),
      machine: info,
    };
    if (!o.json) {
      console.log(`\nmachine: ${info.cpu}, ${info.nproc} cores, kernel ${info.kernel}, Node ${info.node}, ${info.date}, load average ${info.loadavg.join(' ')} (at the end; ${loadStart.map((x) => x.toFixed(2)).join(' ')} at the start)`);
      console.log(`podway: ${o.podway}${commit ? ` (commit ${commit})` : ''}${o.podwayArgs.length ? ` ${o.podwayArgs.join(' ')}` : ''}; ${o.pods} veth pods; stream ${o.pps} pps pod A -> pod B (same node)`);
      console.log(`startup (spawn -> first model applied): ${f1(startupMs)} ms; one ip process from a small node process: ${ipCost.toFixed(2)} ms\n`);
      console.log('| window | apply ms (status) | apply ms (podway log) | longest gap ms | gap began (ms after write) | lost | of which A ring drops | B rcvbuf drops | worst latency ms |');
      console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
      console.log(`| baseline ${o.baselineSeconds} s, no edit | - | - | ${f1(baseline.maxGapMs)} | - | ${baseline.lost} | - | - | ${f1(baseline.maxLatencyMs)} |`);
      const ge = (r: EditResult) => (r.timedOut ? '≥ ' : '');
      for (const r of edits) console.log(`| ${r.what}${r.timedOut ? ' (not applied yet: stopped)' : ''} | ${ge(r)}${f1(r.applyMs)} | ${r.applyLogMs === null ? '?' : f1(r.applyLogMs)} | ${ge(r)}${f1(r.maxGapMs)} | ${f1(r.gapStartMs)} | ${r.timedOut ? '?' : r.lost} | ${r.timedOut ? '?' : r.ringDrops} | ${r.rcvbufErrors} | ${ge(r)}${f1(r.maxLatencyMs)} |`);
      for (const k of kinds) {
        const open = edits.some((r) => r.kind === k && r.timedOut) ? '≥ ' : '';
        console.log(`| **max, ${k}** | ${open}${f1(maxOf(k, (r) => r.applyMs))} | | ${open}${f1(maxOf(k, (r) => r.maxGapMs))} | | ${open ? '?' : maxOf(k, (r) => r.lost)} | | | |`);
      }
      console.log('');
    }
    process.stdout.write(JSON.stringify(summary) + '\n');
  } finally {
    if (!interrupted) await lab.destroy();
  }
}

main().catch((e) => {
  process.stderr.write(`bench:stall: ${(e as Error).message}\n`);
  process.exit(1);
});
