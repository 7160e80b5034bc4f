// Run records: an IPv4 chunk whose root stride has no children (every prefix /18../24) is stored
// as a compact record instead of a node plus leaves (poptrie-layout.ts). These tests check that
// such chunks really take that form, answer like the linear scan in both bitmap halves, and turn
// into a node and back as /25+ routes come and go, with the previous FIB unchanged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NO_ROUTE } from '../../src/lpm/constants';
import { Fib4 } from '../../src/lpm/fib4';
import { FLAT_FLAG, RUN_FLAG } from '../../src/lpm/poptrie-layout';
import { RouteTable4, change4 } from '../../src/lpm/route-table4';
import { R4, Rng, naive4 } from './helpers';

const kind = (fib: Fib4, ip: number): string => {
  const e = fib.dir[ip >>> 14];
  return e < 0 ? 'leaf' : e >= FLAT_FLAG ? 'flat' : e >= RUN_FLAG ? 'run' : 'node';
};

/** Every /24 of the chunk at `base` (first, middle and last address) against the linear scan. */
function checkChunk(fib: Fib4, routes: readonly R4[], base: number, what: string): void {
  for (let s = 0; s < 64; s++) {
    for (const off of [0, 77, 255]) {
      const ip = (base + s * 256 + off) >>> 0;
      const want = naive4(routes, ip);
      const got = fib.lookup(ip);
      if (got !== want) assert.unreachable(`${what}: lookup(${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}) = ${got}, want ${want}`);
    }
  }
}

// Flat blocks are off: these small tables would otherwise use them.
const POPTRIE = { flatMaxChunks: 0 };

test('leaf-only chunks are run records, from 1 run to 64 runs, both bitmap halves', () => {
  const base = 0x0a400000; // 10.64.0.0/18
  const cases: [string, R4[]][] = [
    ['one /19 under a /8', [{ addr: 0x0a000000, len: 8, nh: 1 }, { addr: base, len: 19, nh: 2 }]],
    ['the upper half only', [{ addr: base + 32 * 256, len: 19, nh: 3 }]],
    ['64 distinct /24s', Array.from({ length: 64 }, (_, s) => ({ addr: base + s * 256, len: 24, nh: 100 + s }))],
    ['alternating /24s with gaps', Array.from({ length: 32 }, (_, i) => ({ addr: base + 2 * i * 256, len: 24, nh: i % 3 }))],
    ['nested /20 /22 /24', [{ addr: base, len: 20, nh: 7 }, { addr: base + 4 * 256, len: 22, nh: 8 }, { addr: base + 5 * 256, len: 24, nh: 9 },
      { addr: base + 40 * 256, len: 21, nh: 10 }, { addr: base + 63 * 256, len: 24, nh: 11 }]],
  ];
  for (const [what, routes] of cases) {
    const t = new RouteTable4(routes, POPTRIE);
    assert.is(kind(t.fib, base), 'run', what);
    checkChunk(t.fib, routes, base, what);
    // The neighbouring chunks hold no long prefix: plain dir leaves.
    assert.is(kind(t.fib, base + (1 << 14)), 'leaf', what);
  }
});

test('a /25 turns a run record into a node and back; the previous FIB keeps its answers', () => {
  const base = 0xc0a84000; // 192.168.64.0/18
  const routes: R4[] = [{ addr: 0, len: 0, nh: 9 }];
  for (let s = 0; s < 64; s += 3) routes.push({ addr: base + s * 256, len: 24, nh: s });
  const t = new RouteTable4(routes, POPTRIE);
  const first = t.fib;
  assert.is(kind(first, base), 'run');
  const longer = [...routes, { addr: base + 33 * 256 + 128, len: 25, nh: 500 }];
  const second = t.applyBatch([change4('192.168.97.128/25', 500)]);
  assert.is(kind(second, base), 'node');
  checkChunk(second, longer, base, 'with the /25');
  checkChunk(first, routes, base, 'the FIB before the /25');
  const third = t.applyBatch([change4('192.168.97.128/25')]);
  assert.is(kind(third, base), 'run');
  checkChunk(third, routes, base, 'after deleting the /25');
  checkChunk(second, longer, base, 'the FIB with the /25, after the delete');
  // A shorter prefix changing the inherited next hop rebuilds the record with the new default.
  const fourth = t.applyBatch([change4('192.168.0.0/16', 42)]);
  assert.is(kind(fourth, base), 'run');
  checkChunk(fourth, [...routes, { addr: 0xc0a80000, len: 16, nh: 42 }], base, 'under a new /16');
  assert.is(fourth.lookup(base + 1 * 256), 42);
  assert.is(third.lookup(base + 1 * 256), 9);
});

test('many batches of /19../24 churn: records become garbage and compaction reclaims them', () => {
  const rng = new Rng(4242);
  const live = new Map<string, R4>();
  const put = (r: R4) => live.set(`${r.addr}/${r.len}`, r);
  for (let i = 0; i < 3000; i++) {
    const len = 19 + rng.int(6);
    const addr = ((0x64000000 | (rng.u32() & 0x00ffffff)) >>> (32 - len)) << (32 - len) >>> 0; // inside 100.0.0.0/8
    put({ addr, len, nh: rng.int(50) });
  }
  const t = new RouteTable4([...live.values()], POPTRIE);
  const full0 = t.fullRebuilds;
  let prev = t.fib;
  let prevRoutes = [...live.values()];
  for (let b = 0; b < 40; b++) {
    const batch = [];
    const all = [...live.values()];
    for (let i = 0; i < 400; i++) {
      if (i & 1) {
        const r = all[rng.int(all.length)];
        live.delete(`${r.addr}/${r.len}`);
        batch.push({ op: 'delete' as const, addr: r.addr, len: r.len });
      } else {
        const len = 19 + rng.int(6);
        const addr = ((0x64000000 | (rng.u32() & 0x00ffffff)) >>> (32 - len)) << (32 - len) >>> 0;
        const r = { addr, len, nh: rng.int(50) };
        put(r);
        batch.push({ op: 'set' as const, ...r });
      }
    }
    const next = t.applyBatch(batch);
    const routes = [...live.values()];
    for (let i = 0; i < 300; i++) {
      const ip = (0x64000000 | (rng.u32() & 0x00ffffff)) >>> 0;
      const want = naive4(routes, ip);
      if (next.lookup(ip) !== want) assert.unreachable(`batch ${b}: lookup(${ip}) = ${next.lookup(ip)}, want ${want}`);
      const before = naive4(prevRoutes, ip);
      if (prev.lookup(ip) !== before) assert.unreachable(`batch ${b}: the previous FIB changed at ${ip}`);
    }
    prev = next;
    prevRoutes = routes;
  }
  // 40 x 400 changes over ~1,000 record chunks: replaced records exceed the slack, so at least one
  // batch compacted with a full rebuild; every chunk still a record or a leaf (nothing longer than /24).
  assert.ok(t.fullRebuilds > full0, 'expected a compaction');
  for (let c = 0x64000000 >>> 14; c < 0x65000000 >>> 14; c++) {
    const k = kind(t.fib, c << 14);
    if (k !== 'run' && k !== 'leaf') assert.unreachable(`chunk ${c} is a ${k}`);
  }
  assert.is(t.fib.lookup(0x01020304), NO_ROUTE);
});

test.run();
