// The real ASN tables (../shared/data) with generated nesting, checked on sampled keys against a
// per-length hash-map reference (a linear scan over 600k routes per key would take hours), then
// 1,000-change incremental batches checked the same way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mask32 } from '../../src/lpm/cidr';
import { RouteChange4, RouteTable4 } from '../../src/lpm/route-table4';
import { RouteChange6, RouteTable6 } from '../../src/lpm/route-table6';
import { HashRef4, HashRef6, R4, R6, Rng, addNesting4, addNesting6, dataDir, loadAsn4, loadAsn6, lookupBatch6 } from './helpers';

const KEYS = 200_000;

function keys4(rng: Rng, routes: readonly R4[], n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const r = routes[rng.int(routes.length)];
    const pick = rng.int(4);
    out[i] = pick === 0 ? rng.u32() : pick === 1 ? r.addr : pick === 2 ? r.addr + 2 ** (32 - r.len) - 1 : r.addr + rng.int(2 ** (32 - r.len));
  }
  return out;
}

function check4(t: RouteTable4, ref: HashRef4, keys: Uint32Array, what: string): void {
  const fib = t.fib;
  for (const k of keys) {
    const want = ref.lookup(k);
    const got = fib.lookup(k);
    if (got !== want) assert.unreachable(`${what}: lookup(${k}) = ${got}, want ${want}`);
  }
}

test(`data is found under ${dataDir()}`, () => {
  assert.ok(dataDir().endsWith('shared/data'));
});

test('ASN IPv4 with nesting: 200k sampled keys, then 3 batches of 1,000 changes', () => {
  const rng = new Rng(2024);
  const asn = loadAsn4();
  assert.is(asn.length, 564_580);
  const routes = addNesting4(asn, rng, 20_000, 50_000);
  const ref = new HashRef4();
  for (const r of routes) ref.set(r);
  const t = new RouteTable4(routes);
  assert.is(t.rib.size, routes.length);
  check4(t, ref, keys4(rng, routes, KEYS), 'full build');
  for (let b = 0; b < 3; b++) {
    const changes: RouteChange4[] = [];
    const touched: R4[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = routes[rng.int(routes.length)];
      if (rng.int(2)) {
        changes.push({ op: 'delete', addr: r.addr, len: r.len });
        ref.delete(r.addr, r.len);
      } else {
        const len = rng.int(8) === 0 ? 8 + rng.int(10) : 18 + rng.int(15);
        const addr = ((r.addr + rng.int(2 ** (32 - r.len))) & mask32(len)) >>> 0;
        const nh = rng.int(4096);
        changes.push({ op: 'set', addr, len, nh });
        ref.set({ addr, len, nh });
      }
      touched.push(r);
    }
    const old = t.fib;
    const oldAnswers = keys4(new Rng(7), touched, 2000).map((k) => old.lookup(k));
    t.applyBatch(changes);
    check4(t, ref, keys4(rng, touched, 20_000), `batch ${b} (touched)`);
    check4(t, ref, keys4(rng, routes, 20_000), `batch ${b} (anywhere)`);
    assert.equal(keys4(new Rng(7), touched, 2000).map((k) => old.lookup(k)), oldAnswers, 'old FIB must not change');
  }
});

test('ASN IPv6 with nesting: 200k sampled keys, then a batch of 1,000 changes', () => {
  const rng = new Rng(6);
  const asn = loadAsn6();
  assert.is(asn.length, 167_903);
  const routes = addNesting6(asn, rng, 10_000, 20_000);
  const ref = new HashRef6();
  for (const r of routes) ref.set(r);
  const t = new RouteTable6(routes);
  const keys = (n: number, from: readonly R6[]) => Array.from({ length: n }, () => {
    const r = from[rng.int(from.length)];
    const pick = rng.int(3);
    const rand = [rng.u32(), rng.u32(), rng.u32(), rng.u32()];
    if (pick === 0) return rand;
    return r.w.map((x, i) => (x | ((pick === 1 ? rand[i] : 0xffffffff) & ~mask32(r.len - 32 * i))) >>> 0);
  });
  const check = (ks: number[][], what: string) => {
    const batch = lookupBatch6(t.fib, ks);
    ks.forEach((k, i) => {
      const want = ref.lookup(k);
      const got = t.fib.lookup(k[0], k[1], k[2], k[3]);
      if (got !== want) assert.unreachable(`${what}: lookup(${k}) = ${got}, want ${want}`);
      if (batch[i] !== want) assert.unreachable(`${what}: lookupBatch at ${i} (${k}) = ${batch[i]}, want ${want}`);
    });
  };
  check(keys(KEYS / 2, routes), 'full build');
  const changes: RouteChange6[] = [];
  const touched: R6[] = [];
  for (let i = 0; i < 1000; i++) {
    const r = routes[rng.int(routes.length)];
    const len = Math.min(128, r.len + rng.int(20));
    const w = r.w.map((x, k) => ((x | (rng.u32() & ~mask32(r.len - 32 * k))) & mask32(len - 32 * k)) >>> 0);
    const nh = rng.int(4096);
    changes.push({ op: 'set', w, len, nh });
    ref.set({ w, len, nh });
    touched.push({ w, len, nh });
  }
  t.applyBatch(changes);
  check(keys(20_000, touched), 'after batch');
});

test.run();
