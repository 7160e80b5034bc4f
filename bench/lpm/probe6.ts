// Quick IPv6 probe (not part of the README figures unless said so): ASN IPv6 table only.
//   node dist/bench/lpm/probe6.js [passes]
// Build time, memory, lookups (in-prefix, hot-4096, uniform: best of `passes` over 2^20 keys, on a
// fresh build after the update batches, like run.ts) and 1k-update batches (median and mean of 15,
// default (recycling) and snapshots (recycleDirs: false)), with the same key mixes and churn as run.ts.
import { Fib6 } from '../../src/lpm/fib6';
import { RouteTable6 } from '../../src/lpm/route-table6';
import { Rng, loadAsn6 } from './tables';
import { churn6, keyMixes6 } from './run';

const PASSES = Number(process.argv[2] ?? 9);
const BATCHES = 15;
let sink = 0;

function indep(f: Fib6, k: Int32Array): number {
  let a = 0;
  for (let i = 0; i < k.length; i += 4) a += f.lookup(k[i], k[i + 1], k[i + 2], k[i + 3]);
  return a;
}

function updates(t: RouteTable6, rng: Rng, routes: ReturnType<typeof loadAsn6>): string {
  const ms: number[] = [];
  const full0 = t.fullRebuilds;
  for (let b = 0; b < BATCHES; b++) {
    const ch = churn6(rng, routes);
    const t0 = performance.now();
    t.applyBatch(ch);
    ms.push(performance.now() - t0);
  }
  const s = ms.slice().sort((x, y) => x - y);
  const mean = ms.reduce((x, y) => x + y, 0) / ms.length;
  return `median ${s[s.length >> 1].toFixed(2)} mean ${mean.toFixed(2)} ms (${t.fullRebuilds - full0} full) [${ms.map((x) => x.toFixed(1)).join(' ')}]`;
}

const routes = loadAsn6();
let t0 = performance.now();
new RouteTable6(routes);
const cold = performance.now() - t0;
t0 = performance.now();
const table = new RouteTable6(routes);
const build = performance.now() - t0;
console.log(`build ${build.toFixed(0)} ms (first ${cold.toFixed(0)}), ${(table.fib.bytes / 1048576).toFixed(2)} MiB`);
const rng = new Rng(4);
const mixes = keyMixes6(rng, routes);
// The first table also warms the JIT up: run.ts, which runs each table after its own warm-up batches, is the fairer comparison.
console.log(`updates default (recycling): ${updates(table, rng, routes)}`);
const rt = new RouteTable6(routes, { recycleDirs: false });
console.log(`updates snapshots:           ${updates(rt, rng, routes)}`);
table.rebuild();
const fib = table.fib;
console.log(`after churn + rebuild: ${(fib.bytes / 1048576).toFixed(2)} MiB`);
const out: string[] = [];
for (const [mix, keys] of mixes) {
  let bestMs = Infinity;
  for (let p = 0; p < PASSES; p++) {
    const a = performance.now();
    sink ^= indep(fib, keys);
    bestMs = Math.min(bestMs, performance.now() - a);
  }
  out.push(`${mix} ${((keys.length / 4) / bestMs / 1000).toFixed(1)} M/s`);
}
console.log(out.join(', '));
if (sink === 0.5) console.log(sink);
