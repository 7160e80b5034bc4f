// Property tests of the IPv4 FIB against the linear-scan reference on random nested tables,
// including incremental batches and the immutability of previously published FIBs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mask32 } from '../../src/lpm/cidr';
import { RouteChange4, RouteTable4 } from '../../src/lpm/route-table4';
import { R4, Rng, naive4 } from './helpers';

/** Random table with deep nesting: prefixes grow out of a few random "clusters". */
function randomTable(rng: Rng, n: number): R4[] {
  const seeds = Array.from({ length: 4 }, () => rng.u32());
  const out = new Map<string, R4>();
  while (out.size < n) {
    const len = rng.int(33);
    const base = rng.int(3) === 0 ? rng.u32() : seeds[rng.int(seeds.length)] ^ (rng.u32() & (rng.int(2) ? 0xff : 0xffff));
    const addr = (base & mask32(len)) >>> 0;
    out.set(`${addr}/${len}`, { addr, len, nh: rng.int(50) });
  }
  return [...out.values()];
}

/** Keys near the table's prefixes (their edges and insides) plus uniform random ones. */
function probeKeys(rng: Rng, routes: R4[], n: number): number[] {
  const keys: number[] = [0, 0xffffffff];
  for (let i = 0; i < n; i++) {
    const r = routes[rng.int(routes.length)];
    const span = 2 ** (32 - r.len);
    const pick = rng.int(4);
    keys.push(pick === 0 ? r.addr : pick === 1 ? r.addr + span - 1 : pick === 2 ? (r.addr + rng.int(span)) >>> 0 : rng.u32());
    if (pick === 1 && r.addr + span <= 0xffffffff) keys.push(r.addr + span);
  }
  return keys;
}

function check(t: RouteTable4, routes: R4[], keys: number[], what: string): void {
  const fib = t.fib;
  for (const k of keys) {
    const want = naive4(routes, k);
    const got = fib.lookup(k);
    if (got !== want) assert.unreachable(`${what}: lookup(${k >>> 0}) = ${got}, want ${want}`);
    if (fib.lookup(k | 0) !== want) assert.unreachable(`${what}: int32 key ${k | 0}`);
  }
}

test('random nested tables match the linear scan', () => {
  for (let seed = 1; seed <= 30; seed++) {
    const rng = new Rng(seed * 7919);
    const routes = randomTable(rng, 1 + rng.int(300));
    const t = new RouteTable4(routes);
    check(t, routes, probeKeys(rng, routes, 400), `seed ${seed}`);
  }
});

test('incremental batches match a fresh rebuild and leave old FIBs untouched', () => {
  for (let seed = 1; seed <= 15; seed++) {
    const rng = new Rng(seed * 104729);
    let routes = randomTable(rng, 200);
    const t = new RouteTable4(routes);
    for (let batch = 0; batch < 8; batch++) {
      const before = t.fib;
      const beforeRoutes = routes.slice();
      const changes: RouteChange4[] = [];
      const live = new Map(routes.map((r) => [`${r.addr}/${r.len}`, r]));
      for (let i = 0; i < 20; i++) {
        if (rng.int(2) && live.size) {
          const r = [...live.values()][rng.int(live.size)];
          changes.push({ op: 'delete', addr: r.addr, len: r.len });
          live.delete(`${r.addr}/${r.len}`);
        } else {
          const r = randomTable(rng, 1)[0];
          changes.push({ op: 'set', addr: r.addr, len: r.len, nh: r.nh });
          live.set(`${r.addr}/${r.len}`, r);
        }
      }
      t.applyBatch(changes);
      routes = [...live.values()];
      assert.is(t.rib.size, routes.length);
      const keys = probeKeys(rng, routes.concat(beforeRoutes), 300);
      check(t, routes, keys, `seed ${seed} batch ${batch}`);
      for (const k of keys) {
        if (before.lookup(k) !== naive4(beforeRoutes, k)) assert.unreachable(`old FIB changed at ${k}`);
      }
    }
  }
});

test.run();
