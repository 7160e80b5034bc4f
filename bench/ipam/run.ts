// IPAM and datastore benchmark (`npm run bench:ipam`; see the section in bench/README.md).
//
// 1. Assignment rate: addresses assigned per second by 1 and by 8 concurrent clients, each client
//    a child process with its own store connection (bench/ipam/client.ts), doing pod churn
//    (assign one address per pod handle, release the oldest once `--window` pods are held), on the
//    embedded store and on a local etcd. Eight clients run as eight nodes (the cluster case: each
//    node in its own blocks) and as one node (eight pods started at once on one node: they contend
//    for the same block's compare-and-swap), the last also with the calls of the node taking turns
//    under a host lock, as Calico's CNI plugin does. p50/p99 per assign and per release call. After each
//    run Ipam.check() must find the data consistent.
// 2. Watch to snapshot: the time from a WorkloadEndpoint written to the store (the write's start)
//    to a KvDatastore watching that store emitting a snapshot that contains it, with the debounce
//    `podway run` uses (30 ms) and with none. This is the datastore half of "a new pod forwarded
//    within 100 ms"; applying the model to the dataplane is measured by bench/stall.
//
// Usage: node dist/bench/ipam/run.js [--seconds 4] [--window 64] [--writes 200] [--stores embedded,etcd]
//        [--only rate,watch] [--json]
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { Ipam } from '../../src/control/ipam';
import { machineInfo } from '../machine';
import { KvDatastore } from '../../src/control/kv-datastore';
import { EtcdKv } from '../../src/control/kv/etcd-kv';
import { FileKv } from '../../src/control/kv/file-kv';
import { KvStore } from '../../src/control/kv/kv';
import { createResource } from '../../src/control/v3-store';
import { startEtcd } from '../../test/helpers/etcd';
import type { ClientConfig, ClientResult } from './client';
import { benchArgsOrExit } from '../e2e/bench-args';
import { percentile } from '../stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/ipam/run.js [--seconds N] [--window N] [--writes N] [--stores embedded,etcd] [--only rate,watch] [--json]', flags: ['--json'], options: ['--seconds', '--window', '--writes', '--stores', '--only'] };

interface Args { seconds: number; window: number; writes: number; json: boolean; stores: string[]; parts: string[] }

function parseArgs(argv: string[]): Args {
  const args: Args = { seconds: 4, window: 64, writes: 200, json: false, stores: ['embedded', 'etcd'], parts: ['rate', 'watch'] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--seconds') args.seconds = num();
    else if (a === '--window') args.window = Math.floor(num());
    else if (a === '--writes') args.writes = Math.floor(num());
    else if (a === '--json') args.json = true;
    else if (a === '--stores' || a === '--only') {
      const allowed = a === '--stores' ? ['embedded', 'etcd'] : ['rate', 'watch'];
      const list = (argv[++i] ?? '').split(',').filter(Boolean);
      if (list.length === 0 || list.some((x) => !allowed.includes(x))) throw new Error(`${a} takes a comma-separated subset of ${allowed.join(',')}`);
      if (a === '--stores') args.stores = list; else args.parts = list;
    } else throw new Error(`unknown argument ${a} (expected --seconds N, --window N, --writes N, --stores embedded,etcd, --only rate,watch, --json)`);
  }
  return args;
}

/** Nearest-rank percentile of unsorted samples. */

const POOL = { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'bench-pool' }, spec: { cidr: '10.0.0.0/16', blockSize: 26 } };
const nodeName = (i: number) => `bench-node-${i}`;

/** The pool and `nodes` nodes, written as `podway apply` writes them. */
async function seed(kv: KvStore, nodes: number): Promise<void> {
  await createResource(kv, POOL);
  for (let i = 0; i < nodes; i++) {
    await createResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: nodeName(i) }, spec: { bgp: { ipv4Address: `10.99.0.${i + 1}/24` } } });
  }
}

interface StoreUnderTest {
  readonly name: string;
  /** A fresh, empty store: the spec clients connect with and a KvStore for setup. */
  fresh(): Promise<{ spec: string; kv: KvStore; done(): Promise<void> }>;
  /** Another connection to a store `fresh` made (a watcher's own, as another process would have). */
  reopen(spec: string): Promise<KvStore>;
}

interface RateResult {
  readonly store: string;
  readonly clients: number;
  readonly nodes: number;
  readonly seconds: number;
  readonly assigns: number;
  readonly assignsPerSecond: number;
  readonly assignP50Ms: number;
  readonly assignP99Ms: number;
  readonly releases: number;
  readonly releaseP50Ms: number;
  readonly releaseP99Ms: number;
  readonly failures: number;
  readonly firstFailure?: string;
  readonly checkProblems: number;
  /** The clients of a node took turns (a host lock around each call, as Calico's CNI plugin does). */
  readonly hostLock: boolean;
}

/** Forks `clients` clients, starts them together, and gathers their samples. */
async function runClients(spec: string, clients: number, nodes: number, hostLockDir: string | null, args: Args): Promise<{ results: ClientResult[]; seconds: number }> {
  const children = Array.from({ length: clients }, (_, id) => {
    const node = nodeName(id % nodes);
    const config: ClientConfig = { spec, node, clientId: id, window: args.window, hostLock: hostLockDir ? join(hostLockDir, `${node}.ipam.lock`) : undefined };
    return fork(join(__dirname, 'client.js'), [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  });
  try {
    const ready = children.map((c) => new Promise<void>((resolve, reject) => {
      c.once('message', () => resolve());
      c.once('exit', (code) => reject(new Error(`client exited ${code} before it was ready`)));
    }));
    await Promise.all(ready);
    const results = children.map((c) => new Promise<ClientResult>((resolve, reject) => {
      c.on('message', (m: { type: string; result?: ClientResult }) => { if (m.type === 'result') resolve(m.result!); });
      c.once('exit', (code) => reject(new Error(`client exited ${code} without a result`)));
    }));
    const startAt = Date.now();
    const endAt = startAt + args.seconds * 1000;
    for (const c of children) c.send({ type: 'go', endAt });
    const all = await Promise.race([
      Promise.all(results),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('clients did not finish within 60 s of the deadline')), args.seconds * 1000 + 60_000).unref()),
    ]);
    // The last call of each client may end after the deadline: count the time until the last one did.
    return { results: all, seconds: (Date.now() - startAt) / 1000 };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

async function measureRate(store: StoreUnderTest, clients: number, nodes: number, hostLock: boolean, args: Args): Promise<RateResult> {
  const s = await store.fresh();
  const lockDir = hostLock ? mkdtempSync(join(os.tmpdir(), 'podway-ipambench-lock-')) : null;
  try {
    await seed(s.kv, nodes);
    const { results, seconds } = await runClients(s.spec, clients, nodes, lockDir, args);
    const assignMs = results.flatMap((r) => r.assignMs);
    const releaseMs = results.flatMap((r) => r.releaseMs);
    const problems = await new Ipam(s.kv).check();
    for (const p of problems.slice(0, 5)) console.error(`  check: ${p.message}`);
    const failures = results.reduce((n, r) => n + r.failures, 0);
    return {
      store: store.name, clients, nodes, seconds, assigns: assignMs.length, assignsPerSecond: assignMs.length / seconds,
      assignP50Ms: percentile(assignMs, 50), assignP99Ms: percentile(assignMs, 99),
      releases: releaseMs.length, releaseP50Ms: percentile(releaseMs, 50), releaseP99Ms: percentile(releaseMs, 99),
      failures, firstFailure: results.find((r) => r.firstFailure)?.firstFailure, checkProblems: problems.length, hostLock,
    };
  } finally {
    await s.done();
    if (lockDir) rmSync(lockDir, { recursive: true, force: true });
  }
}

interface WatchResult {
  readonly store: string;
  readonly debounceMs: number;
  readonly writes: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/**
 * Writes `writes` WorkloadEndpoints one after another through one KvStore connection while a
 * KvDatastore on another connection watches; per write, the time from just before the write to
 * the first snapshot that lists the endpoint.
 */
async function measureWatch(store: StoreUnderTest, debounceMs: number, args: Args): Promise<WatchResult> {
  const s = await store.fresh();
  const watcherKv = await store.reopen(s.spec);
  const ds = new KvDatastore(watcherKv, { debounceMs, ownsStore: true });
  try {
    await seed(s.kv, 1);
    await ds.start();
    let waiting: { name: string; resolve: () => void } | null = null;
    ds.onSnapshot((snap) => {
      if (waiting && snap.workloadEndpoints.some((w) => w.metadata.name === waiting!.name)) {
        const w = waiting;
        waiting = null;
        w.resolve();
      }
    });
    const samples: number[] = [];
    for (let i = 0; i < args.writes; i++) {
      const pod = `w${i}`;
      const name = `${nodeName(0)}-k8s-${pod}-eth0`;
      const seen = new Promise<void>((resolve, reject) => {
        waiting = { name, resolve };
        setTimeout(() => reject(new Error(`${store.name}: endpoint ${name} not in a snapshot within 10 s`)), 10_000).unref();
      });
      const t0 = process.hrtime.bigint();
      await createResource(s.kv, {
        apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint', metadata: { name, namespace: 'bench' },
        spec: { node: nodeName(0), orchestrator: 'k8s', pod, endpoint: 'eth0', interfaceName: `calibench${i}`, ipNetworks: [`10.0.${i >> 8}.${i & 255}/32`] },
      });
      await seen;
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      // Let the debounce window of this burst close before the next write starts a new one.
      await new Promise((r) => setTimeout(r, 5));
    }
    return { store: store.name, debounceMs, writes: samples.length, p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99), maxMs: Math.max(...samples) };
  } finally {
    await ds.close();
    await s.done();
  }
}

const fmt = (ms: number) => (Number.isNaN(ms) ? '-' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

async function main(): Promise<void> {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  const args = parseArgs(process.argv.slice(2));
  const loadStart = os.loadavg();
  const etcd = await startEtcd();
  const dirs: string[] = [];
  const embedded: StoreUnderTest = {
    name: 'embedded',
    async fresh() {
      const dir = mkdtempSync(join(os.tmpdir(), 'podway-ipambench-'));
      dirs.push(dir);
      const kv = new FileKv({ dir });
      return { spec: `embedded:${dir}`, kv, async done() { await kv.close(); rmSync(dir, { recursive: true, force: true }); } };
    },
    async reopen(spec) { return new FileKv({ dir: spec.slice('embedded:'.length) }); },
  };
  const etcdStore: StoreUnderTest = {
    name: 'etcd',
    async fresh() {
      const kv = new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
      for (const e of (await kv.list('/calico/')).entries) await kv.delete(e.key);
      return { spec: `etcd:${etcd.endpoint}`, kv, async done() { await kv.close(); } };
    },
    async reopen() { return new EtcdKv({ endpoints: [etcd.endpoint], timeoutMs: 10_000 }); },
  };
  const rates: RateResult[] = [];
  const watches: WatchResult[] = [];
  try {
    for (const store of [embedded, etcdStore].filter((st) => args.stores.includes(st.name))) {
      for (const [clients, nodes, hostLock] of args.parts.includes('rate') ? [[1, 1, false], [8, 8, false], [8, 1, false], [8, 1, true]] as const : []) {
        const r = await measureRate(store, clients, nodes, hostLock, args);
        rates.push(r);
        if (!args.json) console.error(`${r.store}: ${clients} client(s) on ${nodes} node(s)${hostLock ? ' with a host lock' : ''}: ${r.assignsPerSecond.toFixed(0)} assigns/s, p50 ${fmt(r.assignP50Ms)} ms, p99 ${fmt(r.assignP99Ms)} ms`);
      }
      for (const debounce of args.parts.includes('watch') ? [30, 0] : []) {
        const w = await measureWatch(store, debounce, args);
        watches.push(w);
        if (!args.json) console.error(`${w.store}: watch to snapshot (debounce ${debounce} ms): p50 ${fmt(w.p50Ms)} ms, p99 ${fmt(w.p99Ms)} ms`);
      }
    }
  } finally {
    await etcd.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  // this report gives the day only
  const machine = { ...machineInfo(), date: new Date().toISOString().slice(0, 10), loadavgStart: loadStart.map((x) => Number(x.toFixed(2))) };
  if (!args.json) {
    console.log(`\nAssignment (pod churn: ${args.window} pods held per client, then each new pod releases the oldest; ${args.seconds} s per row)\n`);
    console.log('| store | clients | nodes | host lock | assigns/s | assign p50 (ms) | assign p99 (ms) | releases | release p50 (ms) | release p99 (ms) | failed | check |');
    console.log('|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const r of rates) {
      console.log(`| ${r.store} | ${r.clients} | ${r.nodes} | ${r.hostLock ? 'yes' : 'no'} | ${r.assignsPerSecond.toFixed(0)} | ${fmt(r.assignP50Ms)} | ${fmt(r.assignP99Ms)} | ${r.releases} | ${fmt(r.releaseP50Ms)} | ${fmt(r.releaseP99Ms)} | ${r.failures}${r.firstFailure ? ` (${r.firstFailure})` : ''} | ${r.checkProblems === 0 ? 'clean' : `${r.checkProblems} problems`} |`);
    }
    console.log(`\nWatch to snapshot (${args.writes} WorkloadEndpoint writes, one at a time)\n`);
    console.log('| store | debounce | p50 | p99 | max |');
    console.log('|---|---:|---:|---:|---:|');
    for (const w of watches) console.log(`| ${w.store} | ${w.debounceMs} ms | ${fmt(w.p50Ms)} ms | ${fmt(w.p99Ms)} ms | ${fmt(w.maxMs)} ms |`);
    console.log(`\nmachine: ${machine.cpu}, ${machine.nproc} cores, kernel ${machine.kernel}, Node ${machine.node}, ${machine.date}, load average ${machine.loadavg.join(' ')} (at the end; ${machine.loadavgStart.join(' ')} at the start)`);
  }
  console.log(JSON.stringify({ args, rates, watches, machine }));
  const bad = rates.filter((r) => r.checkProblems > 0 || r.failures > 0);
  if (bad.length > 0) {
    console.error(`ipam bench: ${bad.length} run(s) with failed assignments or an inconsistent store afterwards`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
