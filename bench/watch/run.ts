// Watch to forwarding: the time from a WorkloadEndpoint written to the datastore to the first
// packet for that pod forwarded by a running `podway run` (root: a namespace lab).
//
// One lab node runs `podway run` on etcd (in the lab's fabric namespace, as in the cluster tests)
// or on the embedded store. The node has a source pod and N veth pods whose interfaces and
// addresses exist (IPAM assigned them, as the CNI plugin would) but whose WorkloadEndpoints are
// not written yet. Per pod, one after another: the source pod pings the pod's address every 1 ms
// (`ping -D`, timestamps in µs); after 100 ms without a reply (none can come: podway has no route
// for it) the endpoint is written, through its own store connection, as `podway apply` writes it.
// The sample is the time from just before the write to the first echo reply: the watch, the
// debounce, the model thread, the engine's apply, the pod's ARP and the request and the reply
// through podway. It is an upper bound of "first packet forwarded" by one round trip (~0.1 ms).
// write: until the writer's call returned (the store's commit). podway's "datastore change applied" log line splits it: when the engine had applied the change
// (appliedAt, ms resolution) and, inside that, the model thread and the engine's apply.
//
// Usage: node dist/bench/watch/run.js [--pods 50] [--stores etcd,embedded] [--json]
// (BENCH_VERBOSE=1 prints podway's last apply log lines.)
import { ChildProcess, spawn } from 'node:child_process';
import * as os from 'node:os';
import { Lab, LabKvStore, LabPod } from '../../src/lab/lab';
import { guard, isRoot, teardown } from '../../test/e2e/e2e-kit';
import { benchArgsOrExit } from '../e2e/bench-args';
import { percentile } from '../stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/watch/run.js [--pods N] [--stores etcd,embedded] [--json]', flags: ['--json'], options: ['--pods', '--stores'] };

interface Args { pods: number; stores: string[]; json: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { pods: 50, stores: ['etcd', 'embedded'], json: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    if (k === '--pods') {
      a.pods = Number(argv[++i]);
      if (!Number.isInteger(a.pods) || a.pods < 1 || a.pods > 60) throw new Error('--pods must be 1..60 (one /26 block holds the pods)');
    } else if (k === '--stores') {
      a.stores = (argv[++i] ?? '').split(',').filter(Boolean);
      if (a.stores.length === 0 || a.stores.some((s) => s !== 'etcd' && s !== 'embedded')) throw new Error('--stores takes etcd, embedded or both');
    } else if (k === '--json') a.json = true;
    else throw new Error(`unknown argument ${k} (expected --pods N, --stores etcd,embedded, --json)`);
  }
  return a;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowMs = () => performance.timeOrigin + performance.now();


/** A 1 kHz ping from `from` to `to`; resolves each reply's wall-clock time (ms) via onReply. */
function startPing(from: LabPod, to: string, onReply: (atMs: number) => void): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', from.ns, 'ping', '-D', '-n', '-i', '0.001', '-W', '1', '-w', '10', to], { stdio: ['ignore', 'pipe', 'ignore'] });
  let buf = '';
  p.stdout!.setEncoding('utf8');
  p.stdout!.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(line);
      if (m) onReply(Number(m[1]) * 1000);
    }
  });
  return p;
}

function stop(p: ChildProcess): void {
  if (p.pid && p.exitCode === null && p.signalCode === null) try { process.kill(p.pid, 'SIGKILL'); } catch { /* exited */ }
}

interface StoreResult {
  store: string; pods: number; p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number; over100: number; samples: number[];
  /** The same samples measured from the write's commit (its call returning) instead of its start. */
  afterCommitP50Ms: number; afterCommitP99Ms: number;
  /** From podway's "datastore change applied" log line: when it was logged (after the engine's
   * apply) relative to the write, and the parts it names; p50 and p99 of each. */
  parts: Record<string, { p50: number; p99: number }>;
}

const APPLIED = /datastore change applied: \d+ endpoints \(model thread ([\d.]+) ms, apply ([\d.]+) ms\)/;

/** The time and message of a podway log line (JSON lines, or the older "<ISO time> podway[node] msg"). */
function logLine(line: string): { time: number; msg: string } | null {
  try {
    const o = JSON.parse(line) as { time?: string | number; msg?: string };
    if (typeof o.msg === 'string') return { time: typeof o.time === 'number' ? o.time : Date.parse(String(o.time)), msg: o.msg };
  } catch { /* not JSON */ }
  const m = /^(\S+) podway\[\S+\] (.*)$/.exec(line);
  return m ? { time: Date.parse(m[1]!), msg: m[2]! } : null;
}

async function measure(store: 'etcd' | 'embedded', args: Args): Promise<StoreResult> {
  const specs = [{ name: 'src', type: 'veth' as const }, ...Array.from({ length: args.pods }, (_, i) => ({ name: `w${i}`, type: 'veth' as const }))];
  const lab = guard(new Lab([{ name: 'node1', subnet: 'a', pods: specs }]));
  let opened: LabKvStore | null = null;
  try {
    lab.build();
    opened = await lab.openKvStore(store, 'podway-watchbench-');
    const { kv, spec } = opened;
    const late = specs.slice(1).map((p) => p.name);
    await lab.useKvDatastore(kv, spec, { withoutEndpoints: late });
    await lab.startPodway('node1', 30_000);
    const src = lab.pod('src');
    const samples: number[] = [];
    const afterCommit: number[] = []; // from the writer's commit returning: the part podway owns
    const parts: Record<string, number[]> = { write: [], appliedAt: [], modelThread: [], apply: [] };
    const log = lab.node('node1').log;
    for (const name of late) {
      const target = lab.pod(name);
      let first: number | null = null;
      let early = false;
      let written = false;
      let seen: () => void = () => undefined;
      const replied = new Promise<void>((r) => { seen = r; });
      const ping = startPing(src, target.ip, (at) => {
        if (!written) { early = true; return; }
        if (first === null) { first = at; seen(); }
      });
      try {
        await sleep(100);
        if (early) throw new Error(`${name} answered before its endpoint was written`);
        written = true;
        const mark = log.length;
        const t0 = nowMs();
        await lab.addEndpoint(name);
        const committed = nowMs();
        parts.write.push(committed - t0); // the store's commit (etcd: raft + fsync), as the writer sees it
        const ok = await Promise.race([replied.then(() => true), sleep(5000).then(() => false)]);
        if (!ok) throw new Error(`${store}: no reply from ${name} (${target.ip}) within 5 s of writing its endpoint; podway log: ${lab.node('node1').log.slice(-5).join(' | ')}`);
        samples.push(first! - t0);
        afterCommit.push(Math.max(0, first! - committed));
        for (const l of log.slice(mark)) {
          const line = logLine(l);
          const m = line && APPLIED.exec(line.msg);
          if (!line || !m) continue;
          parts.appliedAt.push(line.time - t0);
          parts.modelThread.push(Number(m[1]));
          parts.apply.push(Number(m[2]));
          break;
        }
      } finally {
        stop(ping);
      }
    }
    if (process.env.BENCH_VERBOSE) for (const l of log.filter((x) => /applied/.test(x)).slice(-8)) console.error(`  ${l}`);
    const summary = Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, { p50: percentile(v, 50), p99: percentile(v, 99) }]));
    return { store, pods: samples.length, p50Ms: percentile(samples, 50), p90Ms: percentile(samples, 90), over100: samples.filter((x) => x > 100).length, p99Ms: percentile(samples, 99), maxMs: Math.max(...samples), afterCommitP50Ms: percentile(afterCommit, 50), afterCommitP99Ms: percentile(afterCommit, 99), samples, parts: summary };
  } finally {
    await teardown(lab);
    await opened?.close();
  }
}

async function main(): Promise<void> {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  if (!isRoot()) throw new Error('bench/watch needs root (network namespaces)');
  const args = parseArgs(process.argv.slice(2));
  const loadStart = os.loadavg();
  const results: StoreResult[] = [];
  for (const store of args.stores as ('etcd' | 'embedded')[]) {
    const r = await measure(store, args);
    results.push(r);
    if (!args.json) {
      console.error(`${store}: endpoint written -> first reply through podway: p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms (${r.pods} pods)`);
      console.error(`  parts (p50/p99 ms): ${Object.entries(r.parts).map(([k, v]) => `${k} ${v.p50.toFixed(1)}/${v.p99.toFixed(1)}`).join(', ')}`);
    }
  }
  const machine = { nproc: os.availableParallelism(), kernel: os.release(), node: process.version, loadavgStart: loadStart.map((x) => Number(x.toFixed(2))), loadavgEnd: os.loadavg().map((x) => Number(x.toFixed(2))) };
  if (!args.json) {
    console.log('\n| store | pods | p50 | p90 | p99 | max | over 100 ms | goal p99 <= 100 ms | from commit p50 / p99 |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---|---:|');
    for (const r of results) console.log(`| ${r.store} | ${r.pods} | ${r.p50Ms.toFixed(1)} ms | ${r.p90Ms.toFixed(1)} ms | ${r.p99Ms.toFixed(1)} ms | ${r.maxMs.toFixed(1)} ms | ${r.over100} | ${r.p99Ms <= 100 ? 'met' : 'missed'} | ${r.afterCommitP50Ms.toFixed(1)} / ${r.afterCommitP99Ms.toFixed(1)} ms |`);
    console.log(`\nload average ${machine.loadavgStart.join(' ')} at the start, ${machine.loadavgEnd.join(' ')} at the end (${machine.nproc} CPUs)`);
  }
  console.log(JSON.stringify({ args, results: results.map(({ samples, ...r }) => ({ ...r, samples: samples.map((s) => Number(s.toFixed(2))) })), machine }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
