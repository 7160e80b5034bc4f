// The IPv6 second-level direct table (one block of 2^L2_BITS6 entries per chunk holding longer
// prefixes, nodes from bit NODE_START6) and its incremental updates (block copy, slot repaint,
// subtree patching in poptrie-patch6.ts): against the linear scan and a fresh build, with the
// previously published FIB checked unchanged after every batch.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mask32, parseCidr6 } from '../../src/lpm/cidr';
import { NO_ROUTE } from '../../src/lpm/constants';
import { Fib6, NODE_START6 } from '../../src/lpm/fib6';
import { RouteChange6, RouteTable6, change6 } from '../../src/lpm/route-table6';
import { R6, Rng, lookupText6, naive6 } from './helpers';

const r6 = (cidr: string, nh: number): R6 => {
  const c = parseCidr6(cidr);
  return { w: [...c.w], len: c.len, nh };
};

/** Keys inside, at both ends of and just past every route, plus random ones nearby. */
function keysFor(rng: Rng, routes: readonly R6[], n: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    const r = routes[rng.int(routes.length)];
    const pick = rng.int(5);
    if (pick === 3) {
      // One past the end (carry across words).
      const k = r.w.map((x, j) => (x | (0xffffffff & ~mask32(r.len - 32 * j))) >>> 0);
      for (let j = 3; j >= 0; j--) {
        k[j] = (k[j] + 1) >>> 0;
        if (k[j] !== 0) break;
      }
      out.push(k);
    } else {
      out.push(r.w.map((x, j) => (x | ((pick === 0 ? rng.u32() : pick === 1 ? 0 : pick === 2 ? 0xffffffff : rng.u32() & 0xff) & ~mask32(r.len - 32 * j))) >>> 0));
    }
  }
  return out;
}

function answers(f: Fib6, keys: number[][]): number[] {
  return keys.map((k) => f.lookup(k[0], k[1], k[2], k[3]));
}

function checkAll(t: RouteTable6, live: Map<string, R6>, keys: number[][], what: string): void {
  const routes = [...live.values()];
  const fresh = new RouteTable6(routes);
  for (const k of keys) {
    const want = naive6(routes, k);
    const got = t.lookup(k[0], k[1], k[2], k[3]);
    if (got !== want) assert.unreachable(`${what}: lookup(${k.map((x) => x.toString(16))}) = ${got}, linear scan says ${want}`);
    const f = fresh.lookup(k[0], k[1], k[2], k[3]);
    if (f !== want) assert.unreachable(`${what}: fresh build says ${f}, linear scan ${want}`);
  }
}

const key = (r: R6) => `${r.w}/${r.len}`;

test('second level: chunks with and without a block, prefixes around the second-level width', () => {
  assert.is(NODE_START6, 30); // the prefixes below sit around bits 28-33, either side of it
  const routes = [
    r6('2001::/16', 1), // alone in its chunk: a dir leaf, no block
    r6('2400::/12', 2), // shorter than a chunk: inherited by 2400..240f
    r6('2401:1000::/20', 3), r6('2401:1100::/24', 4), r6('2401:1110::/28', 5), r6('2401:1118::/29', 6), r6('2401:111c::/30', 18), r6('2401:111a::/31', 19),
    r6('2401:1110::/32', 7), r6('2401:1110:8000::/33', 8), r6('2401:1110::/48', 9), r6('2401:1110::1/128', 10),
    r6('2401:111f:ffff:ffff::/64', 11), r6('2401:1400::/22', 12), r6('2401:1200::/23', 13),
    r6('2a01::/16', 14), r6('2a01:4::/30', 15), r6('2a01:f0::/28', 16), r6('2a01:ffff::/32', 17),
  ];
  const t = new RouteTable6(routes);
  assert.ok(t.fib.dir[0x2001] < 0, '2001::/16 alone: dir leaf');
  assert.ok(t.fib.dir[0x2401] >= 0, '2401::/16: a second-level block');
  assert.ok(t.fib.dir[0x2402] < 0, '2402::/16: no prefix of its own');
  const live = new Map(routes.map((r) => [key(r), r]));
  checkAll(t, live, keysFor(new Rng(5), routes, 20000), 'static');
  const l = (a: string) => lookupText6(t, a);
  assert.is(l('2401:1110::1'), 10);
  assert.is(l('2401:1110::2'), 9);
  assert.is(l('2401:1110:1::'), 7);
  assert.is(l('2401:1111::'), 5);
  assert.is(l('2401:1118::'), 6);
  assert.is(l('2401:111c::'), 18);
  assert.is(l('2401:111f:ffff::'), 18);
  assert.is(l('2401:111a::'), 19);
  assert.is(l('2401:111b:ffff::'), 19);
  assert.is(l('2401:1119::'), 6);
  assert.is(l('2401:1120::'), 4);
  assert.is(l('2401:1500::'), 12);
  assert.is(l('2401:1300::'), 13);
  assert.is(l('2401:1900::'), 3);
  assert.is(l('2401:2000::'), 2);
  assert.is(l('2405::'), 2);
  assert.is(l('3000::'), NO_ROUTE);
});

test('second level: scripted batches (block created and dropped, covering deletes, repaints); every earlier FIB unchanged', () => {
  const rng = new Rng(77);
  const live = new Map<string, R6>();
  const t = new RouteTable6(undefined, { recycleDirs: false }); // snapshots: every earlier FIB must hold
  const held: { fib: Fib6; keys: number[][]; ans: number[] }[] = [];
  const all: R6[] = [];
  const apply = (what: string, changes: RouteChange6[]) => {
    t.applyBatch(changes);
    for (const ch of changes) {
      const r = { w: [...ch.w], len: ch.len, nh: ch.op === 'set' ? ch.nh : 0 };
      all.push(r);
      if (ch.op === 'set') live.set(key(r), r);
      else live.delete(key(r));
    }
    const keys = keysFor(rng, all, 4000);
    checkAll(t, live, keys, what);
    for (const h of held) assert.equal(answers(h.fib, h.keys), h.ans, `${what}: an earlier FIB changed`);
    held.push({ fib: t.fib, keys, ans: answers(t.fib, keys) });
  };
  // A chunk gets its first long prefix (block created), then more in one entry and its neighbours.
  apply('create block', [change6('2a02:1230::/48', 1)]);
  apply('deep in one entry', [change6('2a02:1230:1::/48', 2), change6('2a02:1230:1:1::/64', 3), change6('2a02:1231::/32', 4),
    change6('2a02:123f:ffff::/48', 5), change6('2a02:1240::/44', 6)]);
  // Covering prefixes at and above the second-level width, painted under existing subtrees.
  apply('covering /20, /28, /30 (second level) and /31 (first node)', [change6('2a02:1230::/28', 7), change6('2a02:1000::/20', 8),
    change6('2a02:1234::/30', 15), change6('2a02:1236::/31', 16)]);
  apply('/16 and /22 covering', [change6('2a02::/16', 9), change6('2a02:1000::/22', 10), change6('2a02:1230::/29', 11)]);
  apply('change a cover next hop', [change6('2a02:1000::/22', 12), change6('2a02:1230::/28', 13)]);
  // Deletes of covering prefixes: the subtrees below must inherit the next shorter one.
  apply('delete covers', [change6('2a02:1230::/28'), change6('2a02:1000::/22'), change6('2a02:1234::/30'), change6('2a02:1236::/31')]);
  apply('delete the last long prefix of an entry', [change6('2a02:1231::/32'), change6('2a02:1240::/44')]);
  apply('shorter than a chunk', [change6('2a00::/8', 14)]);
  apply('delete /16 and /8', [change6('2a02::/16'), change6('2a00::/8')]);
  // Drop everything in the chunk: back to a dir leaf (block dropped).
  apply('drop block', [...live.values()].map((r) => ({ op: 'delete', w: r.w, len: r.len } as RouteChange6)));
  assert.ok(t.fib.dir[0x2a02] < 0);
  apply('recreate with a /29 and a /16', [change6('2a02:1238::/29', 15), change6('2a02::/16', 16), change6('2a02:1238::/64', 17)]);
});

for (const recycleDirs of [false, true]) {
  test(`second level fuzz: dense random prefixes in a few entries (recycleDirs ${recycleDirs})`, () => {
    for (let seed = 1; seed <= 120; seed++) {
      const rng = new Rng(seed * 7919);
      // A few /26 neighbourhoods so prefixes pile up in the same entries and slots.
      const hoods = Array.from({ length: 1 + rng.int(3) }, () => (0x2a030000 | (rng.u32() & 0xffc0)) >>> 0);
      const rnd = (): R6 => {
        const r = rng.int(10);
        const len = r === 0 ? 8 + rng.int(8) : r === 1 ? 16 + rng.int(13) : r < 4 ? 29 + rng.int(20) : r < 9 ? 44 + rng.int(24) : 68 + rng.int(61);
        const w = [(hoods[rng.int(hoods.length)] | (rng.u32() & 0x3f)) >>> 0, rng.u32() & (rng.int(2) ? 0xffff0000 : 0xffffffff), rng.u32(), rng.u32()];
        return { w: w.map((x, i) => (x & mask32(len - 32 * i)) >>> 0), len, nh: rng.int(50) };
      };
      const live = new Map<string, R6>();
      for (let i = 0; i < 1 + rng.int(80); i++) { const r = rnd(); live.set(key(r), r); }
      const t = new RouteTable6(live.values(), { recycleDirs });
      for (let b = 0; b < 4; b++) {
        const before = t.fib;
        const probe = keysFor(rng, [...live.values()], 200);
        const beforeAns = answers(before, probe);
        const changes: RouteChange6[] = [];
        for (let i = 0; i < 1 + rng.int(12); i++) {
          const vals = [...live.values()];
          if (vals.length && rng.int(3) === 0) {
            const r = vals[rng.int(vals.length)];
            changes.push({ op: 'delete', w: r.w, len: r.len });
            live.delete(key(r));
          } else {
            const r = rnd();
            changes.push({ op: 'set', ...r });
            live.set(key(r), r);
          }
        }
        t.applyBatch(changes);
        const routes = [...live.values()];
        if (routes.length) checkAll(t, live, keysFor(rng, routes.concat(changes.map((c) => ({ w: [...c.w], len: c.len, nh: 0 }))), 300), `seed ${seed} batch ${b}`);
        assert.equal(answers(before, probe), beforeAns, `seed ${seed} batch ${b}: the previous FIB changed`);
      }
    }
  });
}

test('inline leaves: a childless node keeps its few leaf runs in its own record, others in the shared buffer', () => {
  // The node for bits 28..33 holds 2a01:4::/32 and has a child (the /40s end one stride deeper);
  // that child (bits 34..39) is childless with 4 runs: /32, /40, /40, /32 again.
  const routes = [r6('2a01::/16', 1), r6('2a01:4::/32', 2), r6('2a01:4:2000::/40', 5), r6('2a01:4:2100::/40', 6)];
  const fib = new RouteTable6(routes).fib;
  assert.ok(fib.leaves.buffer === fib.nodes.buffer, 'leaves share the nodes buffer');
  let inline = 0;
  let outside = 0;
  const used = fib.nodes.length >> 3;
  for (let i = 0; i < used; i++) {
    const o = i << 3;
    if (fib.nodes[o + 2] === 0 && fib.nodes[o + 3] === 0) continue; // unused or no leaves
    if (fib.nodes[o + 6] + 1 === 2 * (o + 4)) {
      inline++;
      assert.is(fib.nodes[o] | fib.nodes[o + 1], 0, 'only childless nodes inline their leaves');
    } else outside++;
  }
  assert.ok(inline > 0, 'some node holds its leaves inline');
  assert.ok(outside > 0, 'the node with children keeps its leaves outside');
  const l = (a: string) => lookupText6(fib, a);
  assert.is(l('2a01:4:2000::1'), 5);
  assert.is(l('2a01:4:21ff::1'), 6);
  assert.is(l('2a01:4:2200::1'), 2);
  assert.is(l('2a01:4:1fff::1'), 2);
  assert.is(l('2a01:5::1'), 1);
});

test.run();
