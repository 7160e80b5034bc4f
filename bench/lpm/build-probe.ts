// Quick probe of build and update times (not part of the README figures):
//   node dist/bench/lpm/build-probe.js
import { RouteTable4 } from '../../src/lpm/route-table4';
import { RouteTable6 } from '../../src/lpm/route-table6';
import { Rng, generated4, loadAsn4, loadAsn6, calico4 } from './tables';
import { churn4, churn6 } from './run';

function t4(name: string, routes: ReturnType<typeof generated4>, rng: Rng): void {
  let t0 = performance.now();
  let t = new RouteTable4(routes);
  const first = performance.now() - t0;
  t0 = performance.now();
  t = new RouteTable4(routes);
  const second = performance.now() - t0;
  const upd: number[] = [];
  for (let b = 0; b < 7; b++) {
    const ch = churn4(rng, routes);
    const u0 = performance.now();
    t.applyBatch(ch);
    upd.push(performance.now() - u0);
  }
  console.log(`${name}: new RouteTable4(list) ${first.toFixed(0)} / ${second.toFixed(0)} ms; updates ${upd.map((x) => x.toFixed(1)).join(' ')}; full rebuilds ${t.fullRebuilds}`);
}
t4('calico', calico4(new Rng(11)), new Rng(1));
t4('asn4', loadAsn4(), new Rng(2));
t4('gen1M', generated4(1_000_000, new Rng(3)), new Rng(3));
const r6 = loadAsn6();
let t0 = performance.now();
const t6 = new RouteTable6(r6);
console.log(`asn6 build ${(performance.now() - t0).toFixed(0)} ms`);
const rng = new Rng(4);
const upd: number[] = [];
for (let b = 0; b < 5; b++) { const ch = churn6(rng, r6); const u0 = performance.now(); t6.applyBatch(ch); upd.push(performance.now() - u0); }
console.log(`asn6 updates ${upd.map((x) => x.toFixed(1)).join(' ')}`);
