// The second-round paths: bulk loading (radix-sorted arena) against one-by-one inserts, flat
// blocks against the Poptrie layout, and FIBs after many incremental batches (appended subtrees,
// flat blocks, IPv6 path copying) against a fresh build of the same RIB, over many keys.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mask32 } from '../../src/lpm/cidr';
import { NO_ROUTE } from '../../src/lpm/constants';
import { Fib4 } from '../../src/lpm/fib4';
import { Fib6 } from '../../src/lpm/fib6';
import { Rib4 } from '../../src/lpm/rib4';
import { RouteChange4, RouteTable4 } from '../../src/lpm/route-table4';
import { RouteChange6, RouteTable6 } from '../../src/lpm/route-table6';
import { R4, R6, Rng, addNesting6, loadAsn6, naive4 } from './helpers';

/** Random IPv4 routes clustered in a few /12s (so chunks hold many nested prefixes), with duplicates. */
function routes4(rng: Rng, n: number, clusters: number): R4[] {
  const seeds = Array.from({ length: clusters }, () => rng.u32() & 0xfff00000);
  const out: R4[] = [];
  for (let i = 0; i < n; i++) {
    const len = rng.int(5) === 0 ? rng.int(33) : 16 + rng.int(17);
    const base = rng.int(8) === 0 ? rng.u32() : (seeds[rng.int(clusters)] | (rng.u32() & 0xfffff)) >>> 0;
    out.push({ addr: (base & mask32(len)) >>> 0, len, nh: rng.int(1000) });
    if (rng.int(20) === 0) out.push({ addr: out[rng.int(out.length)].addr, len: out[out.length - 1].len, nh: rng.int(1000) });
  }
  // Fix host bits of the duplicated ones.
  return out.map((r) => ({ addr: (r.addr & mask32(r.len)) >>> 0, len: r.len, nh: r.nh }));
}

function keys4(rng: Rng, routes: readonly R4[], n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const r = routes[rng.int(routes.length)];
    const span = 2 ** (32 - r.len);
    const pick = rng.int(5);
    out[i] = pick === 0 ? rng.u32() : pick === 1 ? r.addr : pick === 2 ? r.addr + span - 1 : pick === 3 ? (r.addr + span) % 2 ** 32 : r.addr + rng.int(span);
  }
  return out;
}

function sameAnswers4(a: Fib4, b: Fib4, keys: Uint32Array, what: string): void {
  for (const k of keys) {
    const x = a.lookup(k);
    const y = b.lookup(k);
    if (x !== y) assert.unreachable(`${what}: lookup(${k}) = ${x}, fresh build says ${y}`);
  }
}

function ribList(rib: Rib4): string[] {
  return [...rib.entries()].map((r) => `${r.addr}/${r.len}=${r.nh}`).sort();
}

test('IPv4 bulk load equals one-by-one inserts (duplicates: last wins)', () => {
  for (let seed = 1; seed <= 8; seed++) {
    const rng = new Rng(seed * 31337);
    const routes = routes4(rng, 500 + rng.int(20000), 1 + rng.int(6));
    const bulk = new Rib4();
    bulk.bulkLoad(routes);
    const one = new Rib4();
    for (const r of routes) one.insert(r.addr, r.len, r.nh);
    assert.is(bulk.size, one.size);
    assert.equal(ribList(bulk), ribList(one));
    // And the bulk-loaded RIB keeps working incrementally.
    for (let i = 0; i < 2000; i++) {
      const r = routes[rng.int(routes.length)];
      if (i & 1) {
        assert.is(bulk.delete(r.addr, r.len), one.delete(r.addr, r.len));
      } else {
        const len = Math.min(32, r.len + rng.int(4));
        const addr = ((r.addr + rng.int(2 ** (32 - r.len))) & mask32(len)) >>> 0;
        assert.is(bulk.insert(addr, len, i), one.insert(addr, len, i));
      }
    }
    assert.equal(ribList(bulk), ribList(one));
  }
});

test('IPv4 bulk load validates before changing anything', () => {
  const rib = new Rib4();
  assert.throws(() => rib.bulkLoad([{ addr: 0x0a000000, len: 8, nh: 1 }, { addr: 0x0a000001, len: 24, nh: 1 }]), /host bits/);
  assert.throws(() => rib.bulkLoad([{ addr: 0x0a000000, len: 24, nh: NO_ROUTE }]), /next hop 65535/);
  assert.is(rib.size, 0);
});

test('IPv4 flat blocks and Poptrie nodes give the same answers as the linear scan', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const rng = new Rng(seed * 7777);
    const routes = [...new Map(routes4(rng, 50 + rng.int(400), 1 + rng.int(2)).map((r) => [`${r.addr}/${r.len}`, r])).values()];
    const flat = new RouteTable4(routes, { flatMaxChunks: 1 << 18 });
    const nodes = new RouteTable4(routes, { flatMaxChunks: 0 });
    assert.ok(flat.flat && !nodes.flat);
    for (const k of keys4(rng, routes, 3000)) {
      const want = naive4(routes, k);
      if (flat.lookup(k) !== want || nodes.lookup(k) !== want) assert.unreachable(`seed ${seed}: lookup(${k}) want ${want}`);
    }
  }
});

test('IPv4 after many batches equals a fresh build of the same RIB (both layouts, with and without recycled dirs; previous FIB unchanged)', () => {
  for (const [flatMaxChunks, recycleDirs] of [[0, false], [1 << 18, false], [0, true], [1 << 18, true]] as const) {
    for (let seed = 1; seed <= 3; seed++) {
      const rng = new Rng(seed * 4242 + flatMaxChunks + (recycleDirs ? 1 : 0));
      const routes = routes4(rng, 3000, 2);
      const t = new RouteTable4(routes, { flatMaxChunks, recycleDirs });
      const live = new Map(routes.map((r) => [`${r.addr}/${r.len}`, r]));
      for (let b = 0; b < 25; b++) {
        const before = t.fib;
        const probe = keys4(rng, [...live.values()], 2000);
        const beforeAnswers = Array.from(probe, (k) => before.lookup(k));
        const changes: RouteChange4[] = [];
        for (let i = 0; i < 60; i++) {
          const r = [...live.values()][rng.int(live.size)];
          if (rng.int(2)) {
            changes.push({ op: 'delete', addr: r.addr, len: r.len });
            live.delete(`${r.addr}/${r.len}`);
          } else {
            const len = rng.int(10) === 0 ? rng.int(18) : Math.min(32, r.len + rng.int(6));
            const addr = ((r.addr + rng.int(2 ** (32 - r.len))) & mask32(len)) >>> 0;
            const nr = { addr, len, nh: rng.int(1000) };
            changes.push({ op: 'set', ...nr });
            live.set(`${addr}/${len}`, nr);
          }
        }
        t.applyBatch(changes);
        assert.is(t.rib.size, live.size);
        const fresh = new RouteTable4([...t.rib.entries()], { flatMaxChunks });
        sameAnswers4(t.fib, fresh.fib, keys4(rng, [...live.values()], 4000), `flatMax ${flatMaxChunks} seed ${seed} batch ${b}`);
        const after = Array.from(probe, (k) => before.lookup(k));
        assert.equal(after, beforeAnswers, 'a published FIB must not change');
      }
      assert.ok(t.fullRebuilds >= 1);
    }
  }
});

function key6(rng: Rng, r: R6): number[] {
  const pick = rng.int(4);
  if (pick === 0) return [rng.u32(), rng.u32(), rng.u32(), rng.u32()];
  return r.w.map((x, i) => (x | ((pick === 1 ? rng.u32() : pick === 2 ? 0xffffffff : 0) & ~mask32(r.len - 32 * i))) >>> 0);
}

function sameAnswers6(a: Fib6, b: Fib6, keys: number[][], what: string): void {
  for (const k of keys) {
    const x = a.lookup(k[0], k[1], k[2], k[3]);
    const y = b.lookup(k[0], k[1], k[2], k[3]);
    if (x !== y) assert.unreachable(`${what}: lookup(${k}) = ${x}, fresh build says ${y}`);
  }
}

test('IPv6 (ASN table) after many path-copied batches equals a fresh build of the same RIB', () => {
  const rng = new Rng(99);
  const routes = addNesting6(loadAsn6(), rng, 5000, 10000);
  const t = new RouteTable6(routes, { recycleDirs: true });
  const live = routes.slice();
  for (let b = 0; b < 6; b++) {
    const before = t.fib;
    const probe = Array.from({ length: 3000 }, () => key6(rng, live[rng.int(live.length)]));
    const beforeAnswers = probe.map((k) => before.lookup(k[0], k[1], k[2], k[3]));
    const changes: RouteChange6[] = [];
    const touched: R6[] = [];
    for (let i = 0; i < 500; i++) {
      const r = live[rng.int(live.length)];
      touched.push(r);
      if (i % 3 === 0) {
        changes.push({ op: 'delete', w: r.w, len: r.len });
      } else {
        // Mostly more-specifics; sometimes a covering /16../22 or a short prefix.
        const len = rng.int(25) === 0 ? 8 + rng.int(15) : Math.min(128, r.len + rng.int(24));
        const w = r.w.map((x, k) => ((x | (rng.u32() & ~mask32(r.len - 32 * k))) & mask32(len - 32 * k)) >>> 0);
        const nr = { w, len, nh: rng.int(4096) };
        changes.push({ op: 'set', ...nr });
        live.push(nr);
        touched.push(nr);
      }
    }
    t.applyBatch(changes);
    const fresh = new RouteTable6([...t.rib.entries()]);
    assert.is(fresh.rib.size, t.rib.size);
    const keys = Array.from({ length: 20000 }, (_, i) => key6(rng, i & 1 ? touched[rng.int(touched.length)] : live[rng.int(live.length)]));
    sameAnswers6(t.fib, fresh.fib, keys, `batch ${b}`);
    assert.equal(probe.map((k) => before.lookup(k[0], k[1], k[2], k[3])), beforeAnswers, 'a published FIB must not change');
  }
});

test('IPv6 small random batches in one chunk (root, slot and deep changes) equal a fresh build', () => {
  const rnd = (rng: Rng): R6 => {
    const len = 16 + rng.int(60);
    const w = [(0x2a010000 | (rng.u32() & 0xffff)) >>> 0, rng.u32(), rng.u32(), 0].map((x, i) => (x & mask32(len - 32 * i)) >>> 0);
    return { w, len, nh: rng.int(100) };
  };
  for (let seed = 1; seed <= 400; seed++) {
    const rng = new Rng(seed * 13);
    const routes = Array.from({ length: 1 + rng.int(40) }, () => rnd(rng));
    const t = new RouteTable6(routes);
    for (let b = 0; b < 3; b++) {
      const changes: RouteChange6[] = [];
      for (let i = 0; i < 1 + rng.int(6); i++) {
        if (rng.int(3) === 0) {
          const r = routes[rng.int(routes.length)];
          changes.push({ op: 'delete', w: r.w, len: r.len });
        } else {
          const r = rnd(rng);
          routes.push(r);
          changes.push({ op: 'set', ...r });
        }
      }
      t.applyBatch(changes);
      const fresh = new RouteTable6([...t.rib.entries()]);
      const keys = Array.from({ length: 300 }, () => key6(rng, routes[rng.int(routes.length)]));
      sameAnswers6(t.fib, fresh.fib, keys, `seed ${seed} batch ${b}`);
    }
  }
});

test.run();
