// IPv6 memory reuse (RouteTable6 with recycleDirs, the default): node blocks and leaf runs a batch
// replaces are reused from the next batch on. Checked here: no two records or leaf runs reachable
// from a FIB share memory, the FIB always equals a fresh build, the FIB published just before
// keeps its answers, and steady churn stops growing the arrays (no compaction needed), while
// snapshots (recycleDirs: false) keep growing; an allocation ledger checks that every block is
// released exactly once, when it stops being reachable, and that nothing leaks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mask32 } from '../../src/lpm/cidr';
import { Fib6, L2_SIZE6 } from '../../src/lpm/fib6';
import { NODE_SHIFT } from '../../src/lpm/poptrie-layout';
import { popcount32 } from '../../src/lpm/popcount';
import { RouteChange6, RouteTable6 } from '../../src/lpm/route-table6';
import { PoptrieWriter } from '../../src/lpm/poptrie-writer';
import { R6, Rng } from './helpers';

/** A route under one of a few /16s, lengths spread like an Internet table (/29../64 mostly). */
function randomRoute(rng: Rng): R6 {
  const lens = [29, 32, 32, 36, 40, 44, 46, 47, 48, 48, 48, 56, 64, 24 + rng.int(80)];
  const len = lens[rng.int(lens.length)];
  const w = [(0x2a000000 | (rng.int(4) << 16) | (rng.u32() & 0xffff)) >>> 0, rng.u32(), rng.u32(), rng.u32()];
  return { w: w.map((x, i) => (x & mask32(len - 32 * i)) >>> 0), len, nh: rng.int(1000) };
}

const keyOf = (r: R6): string => `${r.w}/${r.len}`;

/**
 * Walks everything a FIB reaches: each chunk's second-level block, each node block (a subtree
 * root is a block of one), each node record, and each leaf run kept outside its node's record.
 */
function walkFib6(f: Fib6, v: {
  l2Block?(e: number): void; nodeBlock?(first: number, count: number): void;
  record?(node: number): void; leafRun?(base: number, runs: number): void;
}): void {
  const n = f.nodes;
  const visit = (node: number): void => {
    v.record?.(node);
    const o = node << NODE_SHIFT;
    const runs = popcount32(n[o + 2]) + popcount32(n[o + 3]);
    const base = n[o + 6] + 1;
    if (runs > 0 && base !== 2 * (o + 4)) v.leafRun?.(base, runs);
    const kids = popcount32(n[o]) + popcount32(n[o + 1]);
    if (kids === 0) return;
    v.nodeBlock?.(n[o + 4] + 1, kids);
    for (let k = 0; k < kids; k++) visit(n[o + 4] + 1 + k);
  };
  for (let c = 0; c < f.dir.length; c++) {
    const e = f.dir[c];
    if (e < 0) continue;
    v.l2Block?.(e);
    for (let i = e; i < e + L2_SIZE6; i++) {
      if (f.l2[i] < 0) continue;
      v.nodeBlock?.(f.l2[i], 1);
      visit(f.l2[i]);
    }
  }
}

/**
 * Marks the memory every reachable node record and out-of-record leaf run occupies (in Uint16
 * units of the shared buffer) and fails on the first overlap. Returns the records reached.
 */
function checkDisjoint(f: Fib6, what: string): number {
  const used = new Uint8Array(f.nodes.length * 2);
  const claim = (from: number, count: number, kind: string): void => {
    for (let i = from; i < from + count; i++) {
      if (used[i]) assert.unreachable(`${what}: ${kind} at ${from} overlaps memory already reachable`);
      used[i] = 1;
    }
  };
  let records = 0;
  const blocks = new Set<number>();
  walkFib6(f, {
    l2Block(e) {
      if (blocks.has(e)) assert.unreachable(`${what}: two chunks share second-level block ${e}`);
      blocks.add(e);
    },
    record(node) {
      records++;
      claim(2 * (node << NODE_SHIFT), 16, 'node record');
    },
    leafRun(base, runs) {
      claim(base, runs, 'leaf run');
    },
  });
  return records;
}

function churn(rng: Rng, live: Map<string, R6>, n: number): RouteChange6[] {
  const out: RouteChange6[] = [];
  const vals = [...live.values()];
  for (let i = 0; i < n; i++) {
    if (i & 1) {
      const r = vals[rng.int(vals.length)];
      if (!live.delete(keyOf(r))) continue;
      out.push({ op: 'delete', w: r.w, len: r.len });
    } else {
      const r = randomRoute(rng);
      live.set(keyOf(r), r);
      out.push({ op: 'set', ...r });
    }
  }
  return out;
}

function run(recycleDirs: boolean): { first: number; last: number; fullRebuilds: number } {
  const rng = new Rng(recycleDirs ? 61 : 62);
  const live = new Map<string, R6>();
  while (live.size < 20000) { const r = randomRoute(rng); live.set(keyOf(r), r); }
  const t = new RouteTable6(live.values(), { recycleDirs });
  const full0 = t.fullRebuilds;
  let first = 0;
  for (let b = 0; b < 24; b++) {
    const before = t.fib;
    const probe = Array.from({ length: 2000 }, () => randomRoute(rng).w);
    const beforeAns = probe.map((k) => before.lookup(k[0], k[1], k[2], k[3]));
    t.applyBatch(churn(rng, live, 600));
    if (b === 2) first = t.memory.nodes;
    const what = `recycleDirs ${recycleDirs}, batch ${b}`;
    const reached = checkDisjoint(t.fib, what);
    const m = t.memory;
    assert.ok(reached <= m.nodes - m.garbageNodes, `${what}: ${reached} records reachable, only ${m.nodes - m.garbageNodes} counted live`);
    // Second-level blocks: live = those the dir reaches; with recycling each updated chunk keeps a twin.
    const blocks = new Set([...t.fib.dir].filter((e) => e >= 0)).size;
    assert.is(t.liveL2Blocks, blocks, `${what}: live second-level blocks`);
    assert.is(m.l2Blocks, blocks + m.twinL2 + m.garbageL2, `${what}: blocks = live + twins + garbage`);
    assert.ok(recycleDirs ? m.twinL2 > 0 && m.twinL2 <= blocks : m.twinL2 === 0, `${what}: ${m.twinL2} twins`);
    if (b % 6 === 5) {
      const fresh = new RouteTable6(live.values()).fib;
      const keys = [...live.values()].slice(0, 3000).map((r) => r.w.map((x, i) => (x | (rng.u32() & ~mask32(r.len - 32 * i))) >>> 0));
      for (const k of keys.concat(probe)) {
        const x = t.fib.lookup(k[0], k[1], k[2], k[3]);
        const y = fresh.lookup(k[0], k[1], k[2], k[3]);
        if (x !== y) assert.unreachable(`${what}: lookup(${k}) = ${x}, a fresh build says ${y}`);
      }
    }
    const after = probe.map((k) => before.lookup(k[0], k[1], k[2], k[3]));
    assert.equal(after, beforeAns, `${what}: the previous FIB changed`);
  }
  return { first, last: t.memory.nodes, fullRebuilds: t.fullRebuilds - full0 };
}

test('IPv6 recycling: reachable memory never overlaps, answers equal a fresh build, steady churn stops growing the arrays', () => {
  const rec = run(true);
  assert.is(rec.fullRebuilds, 0, 'recycling needed no compaction');
  assert.ok(rec.last <= rec.first * 1.1, `node records allocated grew from ${rec.first} to ${rec.last} under steady churn`);
  // The same churn without reuse keeps appending (the check above is not vacuous).
  const snap = run(false);
  assert.ok(snap.fullRebuilds > 0 || snap.last > snap.first * 1.3, `snapshots: ${snap.first} -> ${snap.last} records, ${snap.fullRebuilds} compactions`);
});

test('IPv6 recycling: a subtree whose slot list empties is released (add/delete cycles stay bounded)', () => {
  // 2a00:400:1:2:3::/80 is alone in its /22 slot list: its delete drops the list.
  const t = new RouteTable6([{ w: [0x2a000000, 0, 0, 0], len: 16, nh: 1 }, { w: [0x2a000000, 0, 0, 0], len: 32, nh: 2 }]);
  const w = [0x2a000400, 0x00010002, 0x00030000, 0];
  let after2 = 0;
  for (let i = 0; i < 300; i++) {
    t.applyBatch([{ op: 'set', w, len: 80, nh: 3 }]);
    assert.is(t.fib.lookup(w[0], w[1], w[2], 5), 3);
    t.applyBatch([{ op: 'delete', w, len: 80 }]);
    assert.is(t.fib.lookup(w[0], w[1], w[2], 5), 1);
    if (i === 1) after2 = t.memory.nodes;
  }
  const m = t.memory;
  checkDisjoint(t.fib, 'after the cycles');
  assert.ok(m.nodes <= after2 + 16, `node records allocated grew from ${after2} to ${m.nodes} over 300 add/delete cycles`);
});

/**
 * An allocation ledger over PoptrieWriter (prototype wrappers, removed by `stop`): every node
 * block and leaf run allocated, with its size, and whether it has been released since. check()
 * then requires, after a batch: each block and leaf run reachable from the FIB is allocated, not
 * released, and of its allocated size; each allocated, unreleased one is reachable (no leak); the
 * writer's node garbage counter equals the released node blocks' sizes.
 */
function ledger(): { check(t: RouteTable6, what: string): void; stop(): void } {
  type Entry = { size: number; live: boolean; page?: boolean };
  const P = PoptrieWriter.prototype as unknown as Record<string, (...a: number[]) => number>;
  const saved = { allocNodes: P.allocNodes, allocLeaves: P.allocLeaves, releaseNodes: P.releaseNodes, releaseLeaves: P.releaseLeaves };
  const books = new WeakMap<object, { nodes: Map<number, Entry>; leaves: Map<number, Entry>; inLeaves: boolean; errors: string[] }>();
  const book = (w: object) => {
    let b = books.get(w);
    if (!b) books.set(w, (b = { nodes: new Map(), leaves: new Map(), inLeaves: false, errors: [] }));
    return b;
  };
  P.allocNodes = function (this: object, k: number): number {
    const b = book(this);
    const at = saved.allocNodes.call(this, k);
    if (b.nodes.get(at)?.live) b.errors.push(`allocNodes(${k}) returned block ${at}, still in use`);
    b.nodes.set(at, { size: k, live: true, page: b.inLeaves });
    return at;
  };
  P.allocLeaves = function (this: PoptrieWriter, k: number): number {
    const b = book(this);
    b.inLeaves = true;
    const at = saved.allocLeaves.call(this, k);
    b.inLeaves = false;
    if (k > 0) {
      if (b.leaves.get(at)?.live) b.errors.push(`allocLeaves(${k}) returned run ${at}, still in use`);
      b.leaves.set(at, { size: (k + 3) >>> 2, live: true });
    }
    return at;
  };
  P.releaseNodes = function (this: object, first: number, k: number): number {
    const e = book(this).nodes.get(first);
    if (!e || e.page || !e.live || e.size !== k) book(this).errors.push(`releaseNodes(${first}, ${k}) of ${e ? `a ${e.live ? '' : 'released '}block of ${e.size}` : 'no block'}`);
    else e.live = false;
    return saved.releaseNodes.call(this, first, k);
  };
  P.releaseLeaves = function (this: PoptrieWriter, node: number): number {
    const n = this.nodes;
    const o = node << NODE_SHIFT;
    const base = n[o + 6] + 1;
    if (popcount32(n[o + 2]) + popcount32(n[o + 3]) > 0 && base !== 2 * (o + 4)) {
      const e = book(this).leaves.get(base);
      if (!e || !e.live) book(this).errors.push(`releaseLeaves(${node}) of ${e ? 'a released' : 'no'} run ${base}`);
      else e.live = false;
    }
    return saved.releaseLeaves.call(this, node);
  };
  return {
    check(t: RouteTable6, what: string): void {
      const w = (t as unknown as { writer: PoptrieWriter }).writer;
      const b = book(w);
      const errors = b.errors.splice(0);
      const blocks = new Map<number, number>();
      const runs = new Map<number, number>();
      walkFib6(t.fib, {
        nodeBlock: (first, count) => blocks.set(first, count),
        leafRun: (base, leafRuns) => runs.set(base, (leafRuns + 3) >>> 2),
      });
      for (const [kind, reach, books2] of [['node block', blocks, b.nodes], ['leaf run', runs, b.leaves]] as const) {
        for (const [at, size] of reach) {
          const e = books2.get(at);
          if (!e || !e.live || e.size !== size) errors.push(`reachable ${kind} ${at} (${size}) is ${e ? `${e.live ? 'in use' : 'released'} with size ${e.size}` : 'not allocated'}`);
        }
        for (const [at, e] of books2) if (e.live && !e.page && !reach.has(at)) errors.push(`leak: ${kind} ${at} (${e.size}) in use but unreachable`);
      }
      let released = 0;
      for (const e of b.nodes.values()) if (!e.live) released += e.size;
      if (released !== w.garbageNodes) errors.push(`garbageNodes ${w.garbageNodes}, released blocks hold ${released}`);
      if (errors.length) assert.unreachable(`${what}: ${errors.slice(0, 4).join('; ')}`);
    },
    stop(): void {
      Object.assign(P, saved);
    },
  };
}

test('IPv6 recycling: exact allocation ledger under a dense fuzz (every block released once, nothing leaked)', () => {
  const books = ledger();
  try {
    for (let seed = 1; seed <= 40; seed++) {
      const rng = new Rng(seed * 131);
      // One or two /16s, a few /22 slot lists (that empty now and then) and second-level entries, so
      // changes pile up in the same subtrees; lengths from short (inherited next hops) to /128
      // (the last stride).
      const slots = 1 + rng.int(8);
      const rnd = (): R6 => {
        const r = rng.int(100);
        const len = r < 3 ? rng.int(16) : r < 10 ? 16 + rng.int(13) : r < 20 ? 120 + rng.int(9) : 29 + rng.int(100);
        const w = [(0x2a000000 | (rng.int(2) << 16) | (rng.int(slots) << 10) | (rng.int(3) << 4)) >>> 0,
          rng.int(2) ? (rng.int(4) << 28) >>> 0 : rng.u32(), rng.int(3) ? 0 : rng.u32(), rng.int(2) ? rng.int(4) : rng.u32()];
        return { w: w.map((x, i) => (x & mask32(len - 32 * i)) >>> 0), len, nh: rng.int(6) };
      };
      const live = new Map<string, R6>();
      for (let i = 0; i < 5 + rng.int(60); i++) { const r = rnd(); live.set(keyOf(r), r); }
      // Every third seed without recycling: snapshots release the same blocks, just never reuse them.
      const t = new RouteTable6(live.values(), { recycleDirs: seed % 3 !== 0 });
      for (let b = 0; b < 25; b++) {
        const batch: RouteChange6[] = [];
        for (let i = 0; i < 1 + rng.int(12); i++) {
          const vals = [...live.values()];
          if (rng.int(2) && vals.length) {
            const r = vals[rng.int(vals.length)];
            live.delete(keyOf(r));
            batch.push({ op: 'delete', w: r.w, len: r.len });
          } else {
            const r = rnd();
            live.set(keyOf(r), r);
            batch.push({ op: 'set', ...r });
          }
        }
        t.applyBatch(batch);
        books.check(t, `seed ${seed} batch ${b}`);
      }
    }
  } finally {
    books.stop();
  }
});

test.run();
