// LPM benchmark: our Poptrie FIB against DIR-24-8 and a binary trie, each table in a process of its own.
//   node dist/bench/lpm/run.js [--quick] [--json] [--only calico-node,asn-ipv4,generated-1M,asn-ipv6]
// See bench/lpm/README.md for the design and the figures.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { spawnSync } from 'node:child_process';
import { NO_ROUTE } from '../../src/lpm/constants';
import { Fib4 } from '../../src/lpm/fib4';
import { Fib6 } from '../../src/lpm/fib6';
import { RouteChange4, RouteTable4 } from '../../src/lpm/route-table4';
import { RouteChange6, RouteTable6 } from '../../src/lpm/route-table6';
import { mask32 } from '../../src/lpm/cidr';
import { BinaryTrie, Dir248, Dir248x16, buildDir248, buildTrie4, buildTrie6 } from './baselines';
import { NEXT_HOPS, Rng, Route4, Route6, calico4, generated4, loadAsn4, loadAsn6 } from './tables';
import { benchArgsOrExit } from '../e2e/bench-args';
import { median } from '../stats';

const BENCH_ARGS = { usage: 'usage: node dist/bench/lpm/run.js [--quick] [--json] [--only calico-node,asn-ipv4,generated-1M,asn-ipv6]', flags: ['--quick', '--json', '--child', '--quiet'], options: ['--only'] };

const QUICK = process.argv.includes('--quick');
const JSON_OUT = process.argv.includes('--json');
const KEY_BITS = QUICK ? 16 : 20; // keys per mix: 64 Ki (quick) or 1 Mi
const N = 1 << KEY_BITS;
const MASK = N - 1;
const REPS = QUICK ? 3 : 7; // best of REPS passes over the keys
const CHILD = process.argv.includes('--child');
const QUIET = process.argv.includes('--quiet');
// Children (one per table, see main) print rows as JSON on stdout and their log on stderr.
const log = (s: string) => { if (CHILD) { if (!QUIET) console.error(s); } else if (!JSON_OUT) console.log(s); };

function now(): number {
  return performance.now();
}

/** Runs fn REPS times and returns the best (least disturbed) time in ms. */
function best(fn: () => number): number {
  let min = Infinity;
  for (let r = 0; r < REPS; r++) {
    const t0 = now();
    sink ^= fn();
    min = Math.min(min, now() - t0);
  }
  return min;
}
let sink = 0;

/**
 * Like best() for two contenders, their passes interleaved (a, b, a, b, ...), so load that comes
 * and goes on a shared machine hits both alike and their ratio is fair. Returns [best a, best b].
 */
function bestPair(fa: () => number, fb: () => number): [number, number] {
  let ma = Infinity;
  let mb = Infinity;
  for (let r = 0; r < REPS; r++) {
    let t0 = now();
    sink ^= fa();
    ma = Math.min(ma, now() - t0);
    t0 = now();
    sink ^= fb();
    mb = Math.min(mb, now() - t0);
  }
  return [ma, mb];
}

// One loop per structure, so every call site stays monomorphic.
function indepFib4(f: Fib4, k: Int32Array): number { let a = 0; for (let i = 0; i < k.length; i++) a += f.lookup(k[i]); return a; }
function depFib4(f: Fib4, k: Int32Array): number { let r = 0; for (let i = 0; i < k.length; i++) r = f.lookup(k[(i + r) & MASK]); return r; }
function indepDir(f: Dir248, k: Int32Array): number { let a = 0; for (let i = 0; i < k.length; i++) a += f.lookup(k[i]); return a; }
function depDir(f: Dir248, k: Int32Array): number { let r = 0; for (let i = 0; i < k.length; i++) r = f.lookup(k[(i + r) & MASK]); return r; }
function indepTrie4(f: BinaryTrie, k: Int32Array): number { let a = 0; for (let i = 0; i < k.length; i++) a += f.lookup4(k[i]); return a; }
function depTrie4(f: BinaryTrie, k: Int32Array): number { let r = 0; for (let i = 0; i < k.length; i++) r = f.lookup4(k[(i + r) & MASK]); return r; }
function indepFib6(f: Fib6, k: Int32Array): number { let a = 0; for (let i = 0; i < k.length; i += 4) a += f.lookup(k[i], k[i + 1], k[i + 2], k[i + 3]); return a; }
function depFib6(f: Fib6, k: Int32Array): number {
  let r = 0;
  for (let i = 0; i < N; i++) { const j = ((i + r) & MASK) << 2; r = f.lookup(k[j], k[j + 1], k[j + 2], k[j + 3]); }
  return r;
}
/** Fib6.lookupBatch over the whole key array in batches of BATCH keys (a dataplane's packet vector). */
const BATCH = 256;
function batchFib6(f: Fib6, k: Int32Array, out: Uint16Array): number {
  let a = 0;
  for (let i = 0; i < k.length; i += 4 * BATCH) {
    const n = Math.min(BATCH, (k.length - i) >>> 2);
    f.lookupBatch(k.subarray(i, i + 4 * n), out, n);
    a += out[0];
  }
  return a;
}
function indepTrie6(f: BinaryTrie, k: Int32Array): number { let a = 0; for (let i = 0; i < k.length; i += 4) a += f.lookup6(k[i], k[i + 1], k[i + 2], k[i + 3]); return a; }
function depTrie6(f: BinaryTrie, k: Int32Array): number {
  let r = 0;
  for (let i = 0; i < N; i++) { const j = ((i + r) & MASK) << 2; r = f.lookup6(k[j], k[j + 1], k[j + 2], k[j + 3]); }
  return r;
}

const mlps = (ms: number) => N / ms / 1000;
const depNs = (ms: number) => (ms * 1e6) / N;

interface Row {
  table: string; mix: string; mlps: number; depNs: number; bytes: number; buildMs: number; compileMs: number;
  /** Cold phase (each table's batches 4-18, see UpdateBench), as in round 4. */
  update1kMs: number; update1kMeanMs: number; fullRebuilds: number;
  update1kSnapshotMs: number; update1kSnapshotMeanMs: number; fullRebuildsSnapshot: number;
  /** Warm phase (each table's batches 34-48). */
  update1kWarmMs: number; update1kWarmMeanMs: number; fullRebuildsWarm: number;
  update1kSnapshotWarmMs: number; update1kSnapshotWarmMeanMs: number; fullRebuildsSnapshotWarm: number;
  dir248Mlps: number | null; dir248DepNs: number | null; dir248Bytes: number | null;
  /** IPv6: Fib6.lookupBatch in batches of BATCH keys, measured interleaved with `mlps` (null for IPv4). */
  batchMlps: number | null;
  trieMlps: number; trieDepNs: number; trieBytes: number; routes: number;
}
const rows: Row[] = [];

function keyMixes4(rng: Rng, routes: readonly Route4[]): [string, Int32Array][] {
  const uniform = new Int32Array(N);
  for (let i = 0; i < N; i++) uniform[i] = rng.u32() | 0;
  const inPrefix = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const r = routes[rng.int(routes.length)];
    inPrefix[i] = (r.addr + rng.int(2 ** (32 - r.len))) | 0;
  }
  const hot = new Int32Array(N);
  for (let i = 0; i < N; i++) hot[i] = inPrefix[rng.int(4096)];
  return [['uniform', uniform], ['in-prefix', inPrefix], ['hot-4096', hot]];
}

export function keyMixes6(rng: Rng, routes: readonly Route6[]): [string, Int32Array][] {
  const uniform = new Int32Array(4 * N);
  // Uniform over 2000::/3 (global unicast), where all routes are; all of ::/0 would hit nothing.
  for (let i = 0; i < 4 * N; i++) uniform[i] = i % 4 === 0 ? ((rng.u32() & 0x1fffffff) | 0x20000000) : rng.u32() | 0;
  const inPrefix = new Int32Array(4 * N);
  for (let i = 0; i < N; i++) {
    const r = routes[rng.int(routes.length)];
    for (let k = 0; k < 4; k++) inPrefix[4 * i + k] = r.w[k] | (rng.u32() & ~mask32(r.len - 32 * k));
  }
  const hot = new Int32Array(4 * N);
  for (let i = 0; i < N; i++) { const j = rng.int(4096); hot.set(inPrefix.subarray(4 * j, 4 * j + 4), 4 * i); }
  return [['uniform', uniform], ['in-prefix', inPrefix], ['hot-4096', hot]];
}

/** 1,000 changes like BGP churn: half withdrawals of existing routes, half new more-specifics. */
export function churn4(rng: Rng, routes: readonly Route4[]): RouteChange4[] {
  const out: RouteChange4[] = [];
  for (let i = 0; i < 1000; i++) {
    const r = routes[rng.int(routes.length)];
    if (i & 1) { out.push({ op: 'delete', addr: r.addr, len: r.len }); continue; }
    const len = Math.min(32, Math.max(r.len, 18 + rng.int(11)));
    out.push({ op: 'set', addr: ((r.addr + rng.int(2 ** (32 - r.len))) & mask32(len)) >>> 0, len, nh: rng.int(NEXT_HOPS) });
  }
  return out;
}

export function churn6(rng: Rng, routes: readonly Route6[]): RouteChange6[] {
  const out: RouteChange6[] = [];
  for (let i = 0; i < 1000; i++) {
    const r = routes[rng.int(routes.length)];
    if (i & 1) { out.push({ op: 'delete', w: r.w, len: r.len }); continue; }
    const len = Math.min(128, r.len + rng.int(16));
    const w = r.w.map((x, k) => ((x | (rng.u32() & ~mask32(r.len - 32 * k))) & mask32(len - 32 * k)) >>> 0);
    out.push({ op: 'set', w, len, nh: rng.int(NEXT_HOPS) });
  }
  return out;
}


const UPDATE_BATCHES = 15;
const UPDATE_WARMUP = 3;
const UPDATE_SETTLE = 15;

/** Median ms, mean ms (full rebuilds included) and full rebuilds of a run of timed batches. */
type UpdateFigures = [number, number, number];

interface Updatable<C> { applyBatch(b: C): unknown; fullRebuilds: number }

/**
 * The update benchmark: the same 1,000-change batches applied to each table built from the same
 * routes (the default, recycling, and snapshots), in two timed phases:
 * - cold(): per table, UPDATE_WARMUP untimed batches (the very first ran interpreted code, 10-38
 *   ms), then UPDATE_BATCHES timed ones. This is the protocol of round 4, figures
 *   comparable with its; it still measures the JIT settling: `node --trace-opt --trace-deopt`
 *   on the IPv6 table shows functions of the update path completing optimization up to batch
 *   ~8, and rare paths (a short prefix, a compaction, a new array shape in a batch) deoptimizing
 *   applyBatch, updateChunk or checkPrefix6 as late as batches 11-23, each costing 2-4 batches
 *   at about 2x until reoptimized.
 * - warm(): per table, UPDATE_SETTLE more untimed batches, then UPDATE_BATCHES timed ones: what a
 *   dataplane that has been running for a while pays per batch.
 * The caller measures lookups between the two, on the table as round 4 did (after the cold
 * phase). The batches are generated before any is applied, and the tables run one after the
 * other, so neither the generator's garbage nor the other table's updates land in a timed batch
 * (alternating the tables per batch, as round 3 did, made each evict the other's cache lines: in
 * a dataplane the lookups between two batches read the same table).
 */
class UpdateBench<C> {
  private readonly batches: C[];

  constructor(make: () => C, private readonly tables: Updatable<C>[]) {
    this.batches = Array.from({ length: UPDATE_WARMUP + 2 * UPDATE_BATCHES + UPDATE_SETTLE }, make);
  }

  cold(): UpdateFigures[] {
    return this.tables.map((t) => {
      this.untimed(t, 0, UPDATE_WARMUP);
      return this.timed(t, UPDATE_WARMUP);
    });
  }

  warm(): UpdateFigures[] {
    const from = UPDATE_WARMUP + UPDATE_BATCHES;
    return this.tables.map((t) => {
      this.untimed(t, from, from + UPDATE_SETTLE);
      return this.timed(t, from + UPDATE_SETTLE);
    });
  }

  private untimed(t: Updatable<C>, from: number, to: number): void {
    for (let i = from; i < to; i++) t.applyBatch(this.batches[i]);
  }

  private timed(t: Updatable<C>, from: number): UpdateFigures {
    const full0 = t.fullRebuilds;
    const times: number[] = [];
    for (let i = from; i < from + UPDATE_BATCHES; i++) {
      const u0 = now();
      t.applyBatch(this.batches[i]);
      times.push(now() - u0);
    }
    return [median(times), times.reduce((x, y) => x + y, 0) / times.length, t.fullRebuilds - full0];
  }
}

/** Logs the update figures of the default table and the snapshot table; returns their Row fields. */
function updateFields(compileMs: number, [cold, snapCold]: UpdateFigures[], [warm, snapWarm]: UpdateFigures[]) {
  const fig = ([med, mean, full]: UpdateFigures) => `median ${med.toFixed(2)} ms, mean ${mean.toFixed(2)} ms (${full} full rebuilds)`;
  const last = UPDATE_WARMUP + 2 * UPDATE_BATCHES + UPDATE_SETTLE;
  log(`  1k updates, batches ${UPDATE_WARMUP + 1}-${UPDATE_WARMUP + UPDATE_BATCHES} (cold): ${fig(cold)}; ` +
    `batches ${last - UPDATE_BATCHES + 1}-${last} (warm): ${fig(warm)}; a full compile takes ${(compileMs / warm[0]).toFixed(1)}x the warm median`);
  log(`  1k updates, snapshots (recycleDirs: false): cold ${fig(snapCold)}; warm ${fig(snapWarm)}`);
  return {
    update1kMs: cold[0], update1kMeanMs: cold[1], fullRebuilds: cold[2],
    update1kSnapshotMs: snapCold[0], update1kSnapshotMeanMs: snapCold[1], fullRebuildsSnapshot: snapCold[2],
    update1kWarmMs: warm[0], update1kWarmMeanMs: warm[1], fullRebuildsWarm: warm[2],
    update1kSnapshotWarmMs: snapWarm[0], update1kSnapshotWarmMeanMs: snapWarm[1], fullRebuildsSnapshotWarm: snapWarm[2],
  };
}

function bench4(name: string, routes: Route4[], rng: Rng): void {
  // "build" = from a route list to a FIB: new RouteTable4(routes) (bulk RIB load + compile).
  // The first one also warms up the JIT; the second is the figure.
  const t0 = now();
  new RouteTable4(routes);
  const coldMs = now() - t0;
  const t1 = now();
  const table = new RouteTable4(routes);
  const buildMs = now() - t1;
  const t2 = now();
  table.rebuild();
  const compileMs = now() - t2;
  const fib = table.fib;
  const d0 = now();
  const dir = buildDir248(routes);
  const dirBuildMs = now() - d0;
  const trie = buildTrie4(routes);
  log(`\n${name}: ${routes.length} routes; build from list ${buildMs.toFixed(0)} ms (first ${coldMs.toFixed(0)} ms), ` +
    `compile only ${compileMs.toFixed(0)} ms; DIR-24-8 build ${dirBuildMs.toFixed(0)} ms (${dir instanceof Dir248x16 ? '16' : '32'}-bit entries)` +
    `${table.flat ? '; flat blocks' : ''}`);
  const mixes = keyMixes4(rng, routes);
  // Answers must agree (DIR-24-8's 16-bit form says 0x7fff for no route).
  for (const [mix, keys] of mixes) {
    for (let i = 0; i < Math.min(N, 50000); i++) {
      const want = trie.lookup4(keys[i]);
      let d = dir.lookup(keys[i]);
      if (dir instanceof Dir248x16 && d === 0x7fff) d = NO_ROUTE;
      if (fib.lookup(keys[i]) !== want || d !== want) throw new Error(`${name}/${mix}: disagreement at ${keys[i] >>> 0}`);
    }
  }
  // 1,000-change batches, applied to the live table.
  const snap = new RouteTable4(routes, { recycleDirs: false });
  const upd = new UpdateBench(() => churn4(rng, routes), [table, snap]);
  const cold = upd.cold();
  table.rebuild(); // measure lookups on a freshly compiled FIB of the original routes + the cold phase's churn
  const live = table.fib;
  const bytes = live.bytes;
  const lookups = mixes.map(([mix, keys]) => {
    // Ours and DIR-24-8 interleaved (bestPair), so the ratio is fair on a shared machine.
    const [ind, indDir] = bestPair(() => indepFib4(live, keys), () => indepDir(dir, keys));
    const [dep, depDir248] = bestPair(() => depFib4(live, keys), () => depDir(dir, keys));
    return {
      table: name, mix, routes: routes.length, mlps: mlps(ind), depNs: depNs(dep), bytes, buildMs, compileMs,
      dir248Mlps: mlps(indDir), dir248DepNs: depNs(depDir248), dir248Bytes: dir.bytes, batchMlps: null,
      trieMlps: mlps(best(() => indepTrie4(trie, keys))), trieDepNs: depNs(best(() => depTrie4(trie, keys))), trieBytes: trie.bytes,
    };
  });
  addRows(lookups, updateFields(compileMs, cold, upd.warm()));
}

function addRows(lookups: Omit<Row, keyof ReturnType<typeof updateFields>>[], updates: ReturnType<typeof updateFields>): void {
  for (const l of lookups) {
    const row: Row = { ...l, ...updates };
    rows.push(row);
    if (JSON_OUT) console.log(JSON.stringify(row));
  }
}

function bench6(name: string, routes: Route6[], rng: Rng): void {
  const t0 = now();
  new RouteTable6(routes);
  const coldMs = now() - t0;
  const t1 = now();
  const table = new RouteTable6(routes);
  const buildMs = now() - t1;
  const t2 = now();
  table.rebuild();
  const compileMs = now() - t2;
  const trie = buildTrie6(routes);
  log(`\n${name}: ${routes.length} routes; build from list ${buildMs.toFixed(0)} ms (first ${coldMs.toFixed(0)} ms), compile only ${compileMs.toFixed(0)} ms`);
  const mixes = keyMixes6(rng, routes);
  const fib = table.fib;
  const out = new Uint16Array(N);
  for (const [mix, k] of mixes) agree6(fib, k, out, (j) => trie.lookup6(k[j], k[j + 1], k[j + 2], k[j + 3]), `${name}/${mix}`);
  const snap = new RouteTable6(routes, { recycleDirs: false });
  const upd = new UpdateBench(() => churn6(rng, routes), [table, snap]);
  const cold = upd.cold();
  table.rebuild();
  const live = table.fib;
  const bytes = live.bytes;
  const lookups = mixes.map(([mix, keys]) => {
    // The timed FIB (the routes plus the cold phase's churn): its two lookup paths agree.
    agree6(live, keys, out, (j) => live.lookup(keys[j], keys[j + 1], keys[j + 2], keys[j + 3]), `${name}/${mix} after churn`);
    // Per-key lookup() and lookupBatch interleaved (bestPair), so their ratio is fair on a shared machine.
    const [ind, batch] = bestPair(() => indepFib6(live, keys), () => batchFib6(live, keys, out));
    return {
      table: name, mix, routes: routes.length, mlps: mlps(ind), depNs: depNs(best(() => depFib6(live, keys))), bytes, buildMs, compileMs,
      dir248Mlps: null, dir248DepNs: null, dir248Bytes: null, batchMlps: mlps(batch),
      trieMlps: mlps(best(() => indepTrie6(trie, keys))), trieDepNs: depNs(best(() => depTrie6(trie, keys))), trieBytes: trie.bytes,
    };
  });
  addRows(lookups, updateFields(compileMs, cold, upd.warm()));
}

/** Throws unless lookup() and lookupBatch both give `want(4 * i)` for the first 50,000 keys. */
function agree6(f: Fib6, k: Int32Array, out: Uint16Array, want: (j: number) => number, what: string): void {
  const n = Math.min(N, 50000);
  f.lookupBatch(k.subarray(0, 4 * n), out, n);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    const w = want(j);
    if (f.lookup(k[j], k[j + 1], k[j + 2], k[j + 3]) !== w || out[i] !== w) throw new Error(`${what}: disagreement at key ${i}`);
  }
}

function machine(): string {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1];
  } catch { /* not Linux */ }
  return `${cpu}, ${os.cpus().length} cores, ${os.type()} ${os.release()}, Node ${process.version}`;
}

function printTable(): void {
  const f = (x: number | null, d = 1) => (x === null ? '-' : x.toFixed(d));
  const mb = (b: number | null) => (b === null ? '-' : (b / 1048576).toFixed(2));
  console.log('\n| table | mix | M lookups/s | batch M/s | DIR-24-8 M/s | ratio | dep ns | DIR-24-8 dep ns | dep speedup | MiB | DIR-24-8 MiB | mem ratio | trie M/s | trie dep ns | build ms | 1k upd median ms (cold) | mean (cold) | median (warm) | mean (warm) | snapshots: median (cold) | mean (cold) | median (warm) |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const ratio = r.dir248Mlps ? f(r.mlps / r.dir248Mlps, 2) + 'x' : '-';
    const dep = r.dir248DepNs ? f(r.dir248DepNs / r.depNs, 2) + 'x' : '-';
    const mem = r.dir248Bytes ? '1/' + f(r.dir248Bytes / r.bytes, 1) : '-';
    console.log(`| ${r.table} | ${r.mix} | ${f(r.mlps)} | ${f(r.batchMlps)} | ${f(r.dir248Mlps)} | ${ratio} | ${f(r.depNs)} | ${f(r.dir248DepNs)} | ${dep} | ${mb(r.bytes)} | ${mb(r.dir248Bytes)} | ${mem} | ${f(r.trieMlps)} | ${f(r.trieDepNs)} | ${f(r.buildMs, 0)} | ${f(r.update1kMs, 2)} | ${f(r.update1kMeanMs, 2)} | ${f(r.update1kWarmMs, 2)} | ${f(r.update1kWarmMeanMs, 2)} | ${f(r.update1kSnapshotMs, 2)} | ${f(r.update1kSnapshotMeanMs, 2)} | ${f(r.update1kSnapshotWarmMs, 2)} |`);
  }
  console.log(`\n${machine()}; ${N} keys per mix, best of ${REPS}${QUICK ? ' (--quick)' : ''}`);
}

const TABLES = ['calico-node', 'asn-ipv4', 'generated-1M', 'asn-ipv6'];

function runTable(t: string): void {
  if (t === 'calico-node') bench4(t, calico4(new Rng(11)), new Rng(1));
  else if (t === 'asn-ipv4') bench4(t, loadAsn4(), new Rng(2));
  else if (t === 'generated-1M') bench4(t, generated4(1_000_000, new Rng(3)), new Rng(3));
  else if (t === 'asn-ipv6') bench6(t, loadAsn6(), new Rng(4));
  else throw new Error(`unknown table ${t} (tables: ${TABLES.join(', ')})`);
}

function main(): void {
  // --help prints the usage; an unknown option or one missing its value exits 2 (bench-args.ts)
  benchArgsOrExit(process.argv.slice(2), BENCH_ARGS);
  // --only <table>[,<table>...] runs a subset (the seeds stay per table, so figures compare).
  const i = process.argv.indexOf('--only');
  const only = i > 0 ? process.argv[i + 1].split(',') : TABLES;
  if (process.argv.includes('--child')) {
    // One table in this process: human log on stderr, its rows as JSON lines on stdout.
    for (const t of only) runTable(t);
    if (sink === 0.5) console.error(sink); // keep results alive
    return;
  }
  log(`LPM benchmark on ${machine()}`);
  // Each table runs in a process of its own: a table measured after the others ran in a heap
  // holding their garbage (DIR-24-8 of 1M prefixes alone is 136 MiB) and lost up to 2x to GC and
  // cache/TLB pressure (IPv6 in-prefix 8.8-12.1 M/s after the IPv4 tables, 21.0 alone).
  for (const t of only) {
    const args = [__filename, '--child', '--json', '--only', t];
    if (QUICK) args.push('--quick');
    if (JSON_OUT) args.push('--quiet');
    const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`benchmark of ${t} failed (exit ${r.status ?? r.signal})`);
    for (const line of r.stdout.split('\n')) {
      if (!line.trim()) continue;
      if (JSON_OUT) console.log(line);
      rows.push(JSON.parse(line) as Row);
    }
  }
  if (!JSON_OUT) printTable();
}

if (require.main === module) main();
