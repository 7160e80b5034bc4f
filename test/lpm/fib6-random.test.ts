// Property tests of the IPv6 FIB against the linear-scan reference on random nested tables,
// including incremental batches and the immutability of previously published FIBs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mask32 } from '../../src/lpm/cidr';
import { Fib6 } from '../../src/lpm/fib6';
import { RouteChange6, RouteTable6 } from '../../src/lpm/route-table6';
import { R6, Rng, lookupBatch6, naive6 } from './helpers';

function masked(w: number[], len: number): number[] {
  return w.map((x, i) => (x & mask32(len - 32 * i)) >>> 0);
}

/** Nested random table: prefixes of all lengths carved out of a few random seed addresses. */
function randomTable(rng: Rng, n: number): R6[] {
  const seeds = Array.from({ length: 3 }, () => [rng.u32(), rng.u32(), rng.u32(), rng.u32()]);
  const out = new Map<string, R6>();
  while (out.size < n) {
    const len = rng.int(4) === 0 ? rng.int(129) : [0, 16, 32, 48, 64, 127, 128][rng.int(7)] + rng.int(9) - 4;
    if (len < 0 || len > 128) continue;
    const s = seeds[rng.int(seeds.length)];
    const flip = rng.int(128);
    const w = s.slice();
    if (rng.int(2)) w[flip >>> 5] = (w[flip >>> 5] ^ (1 << (31 - (flip & 31)))) >>> 0;
    const p = masked(w, len);
    out.set(`${p}/${len}`, { w: p, len, nh: rng.int(40) });
  }
  return [...out.values()];
}

function probeKeys(rng: Rng, routes: R6[], n: number): number[][] {
  const keys: number[][] = [[0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]];
  for (let i = 0; i < n; i++) {
    const r = routes[rng.int(routes.length)];
    const rand = [rng.u32(), rng.u32(), rng.u32(), rng.u32()];
    const pick = rng.int(4);
    if (pick === 0) keys.push(r.w.slice());
    else if (pick === 1) keys.push(r.w.map((x, k) => (x | (rand[k] & ~mask32(r.len - 32 * k))) >>> 0)); // inside
    else if (pick === 2) keys.push(r.w.map((x, k) => (x | ~mask32(r.len - 32 * k)) >>> 0)); // last address
    else keys.push(rand);
  }
  return keys;
}

function check(t: RouteTable6, routes: R6[], keys: number[][], what: string): void {
  const batch = lookupBatch6(t.fib, keys);
  keys.forEach((k, i) => {
    const want = naive6(routes, k);
    const got = t.fib.lookup(k[0], k[1], k[2], k[3]);
    if (got !== want) assert.unreachable(`${what}: lookup(${k}) = ${got}, want ${want}`);
    if (t.fib.lookup(k[0] | 0, k[1] | 0, k[2] | 0, k[3] | 0) !== want) assert.unreachable(`${what}: int32 words ${k}`);
    if (batch[i] !== want) assert.unreachable(`${what}: lookupBatch at ${i} (${k}) = ${batch[i]}, want ${want}`);
  });
}

test('random nested IPv6 tables match the linear scan', () => {
  for (let seed = 1; seed <= 30; seed++) {
    const rng = new Rng(seed * 31337);
    const routes = randomTable(rng, 1 + rng.int(250));
    check(new RouteTable6(routes), routes, probeKeys(rng, routes, 400), `seed ${seed}`);
  }
});

test('IPv6 incremental batches match and leave old FIBs untouched', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const rng = new Rng(seed * 65537);
    const live = new Map<string, R6>(randomTable(rng, 150).map((r) => [`${r.w}/${r.len}`, r]));
    const t = new RouteTable6(live.values());
    for (let batch = 0; batch < 8; batch++) {
      const before = t.fib;
      const beforeRoutes = [...live.values()];
      const changes: RouteChange6[] = [];
      for (let i = 0; i < 20; i++) {
        if (rng.int(2) && live.size) {
          const r = [...live.values()][rng.int(live.size)];
          changes.push({ op: 'delete', w: r.w, len: r.len });
          live.delete(`${r.w}/${r.len}`);
        } else {
          const r = randomTable(rng, 1)[0];
          changes.push({ op: 'set', w: r.w, len: r.len, nh: r.nh });
          live.set(`${r.w}/${r.len}`, r);
        }
      }
      t.applyBatch(changes);
      const routes = [...live.values()];
      assert.is(t.rib.size, routes.length);
      const keys = probeKeys(rng, routes.concat(beforeRoutes), 300);
      check(t, routes, keys, `seed ${seed} batch ${batch}`);
      for (const k of keys) {
        if (before.lookup(k[0], k[1], k[2], k[3]) !== naive6(beforeRoutes, k)) assert.unreachable(`old FIB changed at ${k}`);
      }
    }
  }
});

test('lookupBatch: any count, in place of lookup(), and a clear error when the arrays are short', () => {
  const rng = new Rng(99);
  const routes = randomTable(rng, 200);
  const fib = new RouteTable6(routes).fib;
  const keys = probeKeys(rng, routes, 64);
  const words = new Int32Array(4 * keys.length);
  keys.forEach((k, i) => words.set(k, 4 * i));
  const want = keys.map((k) => naive6(routes, k));
  // Every prefix of the key list, so the first and last keys of a batch (the pipeline's edges) are covered.
  for (let n = 0; n <= keys.length; n++) {
    const out = new Uint16Array(keys.length + 1).fill(0xbeef);
    fib.lookupBatch(words, out, n);
    assert.equal([...out.subarray(0, n)], want.slice(0, n), `count ${n}`);
    assert.ok(out.subarray(n).every((x) => x === 0xbeef), `count ${n}: nothing written past the batch`);
  }
  const out = new Uint16Array(keys.length);
  fib.lookupBatch(words, out);
  assert.equal([...out], want, 'count defaults to keys.length / 4');
  assert.throws(() => fib.lookupBatch(words, new Uint16Array(3), 4), /count 4 does not fit .* 3 results/);
  assert.throws(() => fib.lookupBatch(words, out, keys.length + 1), /does not fit/);
  assert.throws(() => fib.lookupBatch(words, out, -1), /does not fit/);
  assert.throws(() => fib.lookupBatch(words, out, 1.5), /does not fit/);
});

/**
 * `a` behind a Proxy that throws on any element access at or past `limit` (or negative): an
 * out-of-range typed-array read gives undefined, which a lookup would silently turn into 0.
 */
function fenced<T extends Int32Array | Uint16Array>(a: T, limit: number, what: string): T {
  const check = (k: string | symbol) => {
    if (typeof k === 'string' && /^-?\d+$/.test(k) && (+k < 0 || +k >= limit)) throw new Error(`${what}[${k}] accessed (limit ${limit})`);
  };
  return new Proxy(a, {
    get(t, k) { check(k); return Reflect.get(t, k); },
    set(t, k, v) { check(k); return Reflect.set(t, k, v); },
  });
}

test('lookupBatch touches no key or result past count and no table entry out of range', () => {
  const rng = new Rng(4242);
  // Walks ending in dir, in the second level, in the first node and deeper; an empty chunk.
  const routes = randomTable(rng, 150).concat([{ w: [0x20010db8, 0, 0, 0], len: 32, nh: 7 }, { w: [0, 0, 0, 0], len: 1, nh: 3 }]);
  const f = new RouteTable6(routes).fib;
  const g = new Fib6(fenced(f.dir, f.dir.length, 'dir'), fenced(f.l2, f.l2.length, 'l2'), fenced(f.nodes, f.nodes.length, 'nodes'),
    fenced(f.leaves, f.leaves.length, 'leaves'));
  const keys = probeKeys(rng, routes, 40);
  const words = new Int32Array(4 * keys.length);
  keys.forEach((k, i) => words.set(k, 4 * i));
  const want = keys.map((k) => naive6(routes, k));
  for (let n = 0; n <= keys.length; n++) {
    const out = new Uint16Array(n);
    g.lookupBatch(fenced(words, 4 * n, 'keys'), fenced(out, n, 'out'), n);
    assert.equal([...out], want.slice(0, n), `count ${n}`);
  }
});

test.run();
