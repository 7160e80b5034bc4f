// Incremental update of one IPv6 subtree (below a second-level entry, see route-table6.ts) by path
// copying, without rescanning the subtree's prefixes at every level.
//
// The round-2 path copier (PoptrieWriter.rebuildChunk, since removed) repainted a rebuilt node from
// every prefix in its range: at the top of a second-level entry that is ~700 prefixes on average for a changed ASN prefix (the big entries
// take most changes), at every level, for every change. Here a rebuilt node takes the leaf values
// of its untouched slots from the old node (decoded from its leaf bitmap and runs), and finds what
// it must recompute with binary searches in the sorted prefix list: the painted next hop of a slot
// (one exact-match search per prefix length ending in the stride: at most 6) and the range of a
// child's prefixes (two searches). A node therefore costs O(64 + changes * log n), not O(n).
//
// Same contract as a fresh build: the old subtree is only read, the new nodes and leaves go to
// memory the current FIB does not reference (the writer's contract), and every block replaced is
// released exactly (for reuse from the next batch on, with the writer's `recycle`).

import { MASK6, lowerBound6 } from './rib6';
import { NODE_SHIFT, STRIDE } from './poptrie-layout';
import { popcount32 } from './popcount';
import { ChunkPrefixes, PoptrieWriter } from './poptrie-writer';

const LEVELS = 24;

export class SubtreePatcher6 {
  private w!: PoptrieWriter;
  private p!: ChunkPrefixes;
  private chg!: ChunkPrefixes;
  private readonly slots: Int32Array[] = [];
  private readonly gs: Int32Array[] = [];
  private readonly ge: Int32Array[] = [];
  /** Per level: the changes inside the node (indices into chg) and their slot (-1: painted here). */
  private readonly idx: Int32Array[] = [];
  private readonly cs: Int32Array[] = [];
  /** Per level: the node's first address (4 words); per level a scratch address. */
  private readonly base: Int32Array[] = [];
  private readonly tmp = new Int32Array(4);

  constructor() {
    for (let i = 0; i < LEVELS; i++) {
      this.slots.push(new Int32Array(64));
      this.gs.push(new Int32Array(64));
      this.ge.push(new Int32Array(64));
      this.idx.push(new Int32Array(16));
      this.cs.push(new Int32Array(16));
      this.base.push(new Int32Array(4));
    }
  }

  /**
   * Rebuilds the subtree `old`, built for the prefixes p[lo, hi) (all longer than `b`, inside the
   * range starting at address `start`) with inherited next hop `inherited` (unchanged), after the
   * changes in `chg` (prefixes longer than `b` inside the range; p already holds their new state).
   * Returns the new root; the old root (a block of one) is released.
   */
  patch(w: PoptrieWriter, p: ChunkPrefixes, lo: number, hi: number, b: number, start: Int32Array,
    inherited: number, old: number, chg: ChunkPrefixes): number {
    this.w = w;
    this.p = p;
    this.chg = chg;
    const idx = this.ensure(0, chg.count);
    for (let i = 0; i < chg.count; i++) idx[i] = i;
    const a = this.base[0];
    for (let k = 0; k < 4; k++) a[k] = start[k];
    const target = w.allocNodes(1);
    this.node(0, b, lo, hi, inherited, old, target, chg.count);
    w.releaseNodes(old, 1);
    return target;
  }

  private ensure(level: number, n: number): Int32Array {
    if (this.idx[level].length < n) {
      this.idx[level] = new Int32Array(n * 2);
      this.cs[level] = new Int32Array(n * 2);
    }
    return this.idx[level];
  }

  private node(level: number, b: number, lo: number, hi: number, inherited: number, old: number, target: number, nChg: number): void {
    const w = this.w;
    const p = this.p;
    const chg = this.chg;
    const end = b + STRIDE;
    const idx = this.idx[level];
    const cs = this.cs[level];
    // fd: slots painted by a change (rebuilt from scratch: their inherited value may differ);
    // rd: slots holding a deeper change (patched recursively).
    let fdLo = 0;
    let fdHi = 0;
    let rdLo = 0;
    let rdHi = 0;
    for (let j = 0; j < nChg; j++) {
      const i = idx[j];
      const s = chg.slotAt(i, b);
      const len = chg.lens[i];
      if (len <= end) {
        cs[j] = -1;
        for (let t = s; t < s + (1 << (end - len)); t++) {
          if (t < 32) fdLo |= 1 << t;
          else fdHi |= 1 << (t - 32);
        }
      } else {
        cs[j] = s;
        if (s < 32) rdLo |= 1 << s;
        else rdHi |= 1 << (s - 32);
      }
    }
    rdLo &= ~fdLo;
    rdHi &= ~fdHi;
    if ((fdLo | fdHi) === 0 && this.fast(level, b, lo, hi, inherited, old, target, nChg, rdLo, rdHi)) return;
    // The old node: leaf values of its leaf slots (runs decoded), -1 for its child slots.
    const on = w.nodes;
    const oo = old << NODE_SHIFT;
    const oldVecLo = on[oo];
    const oldVecHi = on[oo + 1];
    const oldLeafLo = on[oo + 2];
    const oldLeafHi = on[oo + 3];
    const oldFirst = on[oo + 4] + 1;
    const leafBase = on[oo + 6] + 1;
    const leaves = w.leaves;
    const slots = this.slots[level];
    let run = -1;
    for (let s = 0; s < 64; s++) {
      const child = s < 32 ? (oldVecLo >>> s) & 1 : (oldVecHi >>> (s - 32)) & 1;
      const starts = s < 32 ? (oldLeafLo >>> s) & 1 : (oldLeafHi >>> (s - 32)) & 1;
      if (starts) run++;
      slots[s] = child ? -1 : leaves[leafBase + run];
    }
    // Dirty slots: recompute the painted value where it may have changed or is unknown, and the
    // range of their longer prefixes (whether they still have / now have a child).
    const gs = this.gs[level];
    const ge = this.ge[level];
    let vecLo = oldVecLo & ~(fdLo | rdLo);
    let vecHi = oldVecHi & ~(fdHi | rdHi);
    const dLo = fdLo | rdLo;
    const dHi = fdHi | rdHi;
    const nb = this.base[level];
    // Slots painted by a change: whole aligned blocks at a time (one cover search and one scan).
    for (let s = 0; s < 64;) {
      if (!(s < 32 ? (fdLo >>> s) & 1 : (fdHi >>> (s - 32)) & 1)) { s++; continue; }
      let k = 0;
      while (k < 6 && (s & ((2 << k) - 1)) === 0 && allSet(fdLo, fdHi, s, 2 << k)) k++;
      this.paintBlock(level, b, lo, hi, s, k, inherited);
      s += 1 << k;
    }
    for (let h = 0; h < 2; h++) {
      for (let v = h ? dHi : dLo; v !== 0; v &= v - 1) {
        const bit = 31 - Math.clz32(v & -v);
        const s = bit + 32 * h;
        if ((((h ? fdHi : fdLo) >>> bit) & 1) === 0) {
          if (slots[s] < 0) slots[s] = this.cover(nb, b, s, lo, hi, inherited);
          this.slotRange(level, b, lo, hi, s);
        }
        if (gs[s] < ge[s]) {
          if (h) vecHi |= 1 << bit;
          else vecLo |= 1 << bit;
        }
      }
    }
    // Released: the old node's leaves, its child block (below, once read) and what old children
    // neither copied nor patched own. (Its own record is released by the caller's block.)
    w.releaseLeaves(old);
    let r = 0;
    for (let h = 0; h < 2; h++) {
      const keep = (h ? vecHi & ~fdHi : vecLo & ~fdLo);
      for (let v = h ? oldVecHi : oldVecLo; v !== 0; v &= v - 1, r++) {
        if (((keep >>> (31 - Math.clz32(v & -v))) & 1) === 0) w.releaseContents(oldFirst + r);
      }
    }
    const oldKids = r;
    const childBase = w.writeNode(target, vecLo, vecHi, slots);
    // Children in slot order (old rank r, new index k). Runs of children kept as they are get
    // one copy each.
    let k = childBase;
    r = 0;
    let runFrom = 0;
    let runTo = 0;
    let runLen = 0;
    for (let h = 0; h < 2; h++) {
      const had = h ? oldVecHi : oldVecLo;
      const has = h ? vecHi : vecLo;
      const fd = h ? fdHi : fdLo;
      const rd = h ? rdHi : rdLo;
      for (let v = had | has; v !== 0; v &= v - 1) {
        const bit = 31 - Math.clz32(v & -v);
        const s = bit + 32 * h;
        const oldChild = (had >>> bit) & 1;
        if ((has >>> bit) & 1) {
          if (oldChild && !((fd | rd) >>> bit & 1)) {
            if (runLen > 0 && runFrom + runLen === oldFirst + r && runTo + runLen === k) {
              runLen++;
            } else {
              if (runLen > 0) w.copyNodes(runTo, runFrom, runLen);
              runFrom = oldFirst + r;
              runTo = k;
              runLen = 1;
            }
          } else if (oldChild && !((fd >>> bit) & 1)) {
            this.descend(level, b, s, nChg, oldFirst + r, k);
          } else {
            w.p = p;
            w.buildNode(level + 1, end, gs[s], ge[s], slots[s], k);
          }
          k++;
        }
        if (oldChild) r++;
      }
    }
    if (runLen > 0) w.copyNodes(runTo, runFrom, runLen);
    if (oldKids > 0) w.releaseNodes(oldFirst, oldKids);
  }

  /**
   * The common case: every change lies below an existing child that keeps children. Then the
   * node's bitmaps and leaves are unchanged, so the new node shares the old leaf run (leaves are
   * never overwritten) and only needs a new child block: the old one copied whole, the changed
   * children patched in place. Returns false (nothing written) when the case does not apply.
   */
  private fast(level: number, b: number, lo: number, hi: number, inherited: number, old: number, target: number,
    nChg: number, rdLo: number, rdHi: number): boolean {
    const w = this.w;
    let on = w.nodes;
    const oo = old << NODE_SHIFT;
    const vecLo = on[oo];
    const vecHi = on[oo + 1];
    if ((rdLo & ~vecLo) !== 0 || (rdHi & ~vecHi) !== 0) return false;
    const slots = this.slots[level];
    const gs = this.gs[level];
    const ge = this.ge[level];
    const nb = this.base[level];
    for (let h = 0; h < 2; h++) {
      for (let v = h ? rdHi : rdLo; v !== 0; v &= v - 1) {
        const s = 31 - Math.clz32(v & -v) + 32 * h;
        this.slotRange(level, b, lo, hi, s);
        if (gs[s] === ge[s]) return false; // the child goes away: the bitmaps change
        slots[s] = this.cover(nb, b, s, lo, hi, inherited);
      }
    }
    const kids = popcount32(vecLo) + popcount32(vecHi);
    const oldFirst = on[oo + 4] + 1;
    const first = w.allocNodes(kids);
    on = w.nodes; // allocNodes may have grown it
    const o = target << NODE_SHIFT;
    w.copyNodes(target, old, 1);
    on[o + 4] = first - 1;
    on[o + 5] = first - 1 + popcount32(vecLo);
    w.copyNodes(first, oldFirst, kids);
    // Released: the old child block (the patched children's contents by the recursion); the
    // leaves stay in use. (The old node's own record is released by the caller's block.)
    w.releaseNodes(oldFirst, kids);
    for (let h = 0; h < 2; h++) {
      for (let v = h ? rdHi : rdLo; v !== 0; v &= v - 1) {
        const bit = 31 - Math.clz32(v & -v);
        const s = bit + 32 * h;
        const rank = (h ? popcount32(vecLo) : 0) + popcount32((h ? vecHi : vecLo) & ((1 << bit) - 1));
        this.descend(level, b, s, nChg, oldFirst + rank, first + rank);
      }
    }
    return true;
  }

  /**
   * Patches the child in slot s of the node at `level` (old record `old`, new record `target`)
   * with the node's changes that lie below that slot; slots/gs/ge[level][s] hold its inherited
   * next hop and prefix range.
   */
  private descend(level: number, b: number, s: number, nChg: number, old: number, target: number): void {
    const idx = this.idx[level];
    const cs = this.cs[level];
    const next = this.ensure(level + 1, nChg);
    let m = 0;
    for (let j = 0; j < nChg; j++) if (cs[j] === s) next[m++] = idx[j];
    slotAddr(this.base[level + 1], this.base[level], b, s);
    this.node(level + 1, b + STRIDE, this.gs[level][s], this.ge[level][s], this.slots[level][s], old, target, m);
  }

  /**
   * For the aligned block of 2^k slots from s0 of the node at `level`: sets slots[s] (the painted
   * next hop) and gs/ge[s] (the range of the slot's longer prefixes) of each, from the RIB list,
   * like cover() and slotRange() per slot but in one pass: the longest prefix covering the whole
   * block (one search per length ending above it), then one scan of the prefixes inside the
   * block, painting those that end in this stride (sorted order: nested ones after) and jumping
   * over each slot's longer ones with one search.
   */
  private paintBlock(level: number, b: number, lo: number, hi: number, s0: number, k: number, inherited: number): void {
    const p = this.p;
    const slots = this.slots[level];
    const gs = this.gs[level];
    const ge = this.ge[level];
    const nb = this.base[level];
    const end = b + STRIDE;
    const s1 = s0 + (1 << k);
    const v = this.cover(nb, b, s0, lo, hi, inherited, end - k);
    for (let s = s0; s < s1; s++) {
      slots[s] = v;
      gs[s] = 0;
      ge[s] = 0;
    }
    const sa = this.tmp;
    slotAddr(sa, nb, b, s0);
    let i = lowerBound(p, lo, hi, sa, end - k + 1);
    while (i < hi) {
      const s = p.slotAt(i, b);
      if (s >= s1) break;
      const len = p.lens[i];
      if (len <= end) {
        slots.fill(p.nhs[i], s, s + (1 << (end - len)));
        i++;
      } else {
        // The first longer prefix of slot s: the slot's own short ones sort before it.
        gs[s] = i;
        if (s < 63) {
          slotAddr(sa, nb, b, s + 1);
          i = lowerBound(p, i, hi, sa, 0);
        } else {
          i = hi;
        }
        ge[s] = i;
      }
    }
  }

  /**
   * Sets gs/ge[level][s] to the range of p[lo, hi) holding the prefixes longer than this stride
   * inside slot s of the node at this.base[level] (stride at bit b): slot s's child's prefixes.
   */
  private slotRange(level: number, b: number, lo: number, hi: number, s: number): void {
    const p = this.p;
    const sa = this.tmp;
    const nb = this.base[level];
    const end = b + STRIDE;
    slotAddr(sa, nb, b, s);
    let g = lowerBound(p, lo, hi, sa, 0);
    // Prefixes ending in this stride inside slot s all start at its first address and sort first.
    while (g < hi && p.lens[g] <= end && sameAddr(p, g, sa)) g++;
    let gEnd = hi;
    if (s < 63) {
      slotAddr(sa, nb, b, s + 1);
      gEnd = lowerBound(p, g, hi, sa, 0);
    }
    this.gs[level][s] = g;
    this.ge[level][s] = gEnd;
  }

  /**
   * The painted next hop of slot s of the node at address `nb`, stride at bit b: the longest
   * prefix of p[lo, hi) ending in this stride (and no longer than maxLen) that covers the slot,
   * else `inherited`.
   */
  private cover(nb: Int32Array, b: number, s: number, lo: number, hi: number, inherited: number, maxLen = b + STRIDE): number {
    const p = this.p;
    const sa = this.tmp;
    slotAddr(sa, nb, b, s);
    const a0 = sa[0];
    const a1 = sa[1];
    const a2 = sa[2];
    const a3 = sa[3];
    // Longest first. (mask(a, len), len) sorts after (mask(a, len - 1), len - 1), so the match
    // (or insertion point) for a length bounds the search for the shorter ones.
    // (The last stride ends past bit 128: no prefix is that long.)
    for (let len = Math.min(maxLen, 128); len > b; len--) {
      const x0 = a0 & MASK6[4 * len];
      const x1 = a1 & MASK6[4 * len + 1];
      const x2 = a2 & MASK6[4 * len + 2];
      const x3 = a3 & MASK6[4 * len + 3];
      const i = lowerBound6(p.words, p.lens, lo, hi, x0, x1, x2, x3, len);
      if (i < hi && p.lens[i] === len) {
        const o = 4 * i;
        const w = p.words;
        if (w[o] === x0 && w[o + 1] === x1 && w[o + 2] === x2 && w[o + 3] === x3) return p.nhs[i];
      }
      hi = i;
    }
    return inherited;
  }
}

/** Whether the `count` bits of the 64-bit mask hi:lo from bit s on are all set (an aligned block). */
function allSet(lo: number, hi: number, s: number, count: number): boolean {
  if (count === 64) return (lo & hi) === -1;
  const m = count === 32 ? -1 : ((1 << count) - 1) << (s & 31);
  return ((s < 32 ? lo : hi) & m) === m;
}

/** out = the address nb with the 6 bits at offset b set to s (nb has zeros there). */
function slotAddr(out: Int32Array, nb: Int32Array, b: number, s: number): void {
  out[0] = nb[0];
  out[1] = nb[1];
  out[2] = nb[2];
  out[3] = nb[3];
  const wi = b >>> 5;
  const sh = b & 31;
  if (sh <= 32 - STRIDE) {
    out[wi] |= s << (32 - STRIDE - sh);
  } else {
    out[wi] |= s >>> (sh - (32 - STRIDE));
    if (wi < 3) out[wi + 1] |= s << (64 - STRIDE - sh);
  }
}

function sameAddr(p: ChunkPrefixes, i: number, a: Int32Array): boolean {
  const o = 4 * i;
  const x = p.words;
  return x[o] === a[0] && x[o + 1] === a[1] && x[o + 2] === a[2] && x[o + 3] === a[3];
}

/** First index in p[lo, hi) whose (address, length) is >= (a, len): the lists' order (rib6.ts). */
function lowerBound(p: ChunkPrefixes, lo: number, hi: number, a: Int32Array, len: number): number {
  return lowerBound6(p.words, p.lens, lo, hi, a[0], a[1], a[2], a[3], len);
}
