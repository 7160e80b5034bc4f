// The compiled, immutable IPv6 lookup table: direct pointing on the top 16 bits, then, for every
// /16 chunk that holds longer prefixes, a second-level direct table of 2^L2_BITS6 entries over the
// next L2_BITS6 bits, then Poptrie nodes (poptrie-layout.ts) with 6-bit strides from bit
// NODE_START6 on. Why the second level: in-prefix keys of the ASN table visited 4.8 nodes on
// average when nodes started at bit 16; a direct entry costs one load where a node costs a
// bitmap load, a popcount and a base load, and /16../NODE_START6 prefixes (and the first levels
// above every longer one) now resolve in it. The key is read from four uint32 words so no BigInt
// or array is needed per lookup.

import { NODE_SHIFT } from './poptrie-layout';

/** Width of the per-chunk second-level table (see bench/lpm/README.md for the choice). */
export const L2_BITS6 = 14;
export const L2_SIZE6 = 1 << L2_BITS6;
/** Bit offset of the first node stride (16 + L2_BITS6). */
export const NODE_START6 = 16 + L2_BITS6;

// The same values as module-local constants for the lookup code: the batch lookup measured as
// fast with these as with literals, and 1.1-1.2x slower reading the `exports.X` properties that
// tsc emits for exported constants.
const L2_SHIFT = 16 - L2_BITS6;
const L2_MASK = L2_SIZE6 - 1;
const FIRST = NODE_START6;
const SECOND = NODE_START6 + 6;
const SHIFT = NODE_SHIFT;

export class Fib6 {
  constructor(
    /** 2^16 entries: leaf (negative, LEAF_FLAG | nh) or the offset of the chunk's block in `l2`. */
    readonly dir: Int32Array,
    /** Second-level blocks of L2_SIZE6 entries: leaf (negative) or node index. */
    readonly l2: Int32Array,
    readonly nodes: Int32Array,
    readonly leaves: Uint16Array,
    /** Entries of `l2` in use when this FIB was published (the rest is reserved, untouched). */
    private readonly l2Used = l2.length,
  ) {}

  /** Longest-prefix match of the address w0:w1:w2:w3 (words unsigned or int32). */
  lookup(w0: number, w1: number, w2: number, w3: number): number {
    const f = secondLevel(this.dir, this.l2, w0);
    if (f < 0) return f & 0xffff;
    return walk(this.nodes, this.leaves, f << SHIFT, FIRST, w0, w1, w2, w3);
  }

  /**
   * Longest-prefix match of `count` addresses, four words each from `keys[4 * i]`, into `out[i]`:
   * the same answers as lookup(), for a batch of independent keys (a vector of packets).
   *
   * Why a batch: a key's walk ends at a depth the branch predictor cannot guess (ASN in-prefix
   * keys: 0 to 17 nodes, 95% 1-5), so with lookup() in a loop nearly every key costs a
   * misprediction, and the CPU throws away the next key's loads it had started: each key's chain
   * of cache misses then runs alone. Here the walk is software-pipelined over three keys: while
   * key i is walked, key i+1's first node and key i+2's dir and second-level entries are loaded,
   * and those loads come before key i's branches, so they survive a misprediction and overlap
   * its misses. Figures (bench/lpm/README.md, round 5): ASN in-prefix keys 1.38-1.45x lookup()
   * in a loop; keys that end in dir (uniform) 0.66-0.69x, still above 100 M/s.
   */
  lookupBatch(keys: Int32Array, out: Uint16Array, count = keys.length >>> 2): void {
    if (!(Number.isInteger(count) && count >= 0 && 4 * count <= keys.length && count <= out.length)) {
      throw new RangeError(`lookupBatch: count ${count} does not fit ${keys.length} key words and ${out.length} results`);
    }
    if (count === 0) return;
    const dir = this.dir;
    const l2 = this.l2;
    const nodes = this.nodes;
    const leaves = this.leaves;
    const last = 4 * (count - 1);
    // Key i (walked this iteration): words 0-1, second-level entry (a leaf if negative), first
    // node's offset, stride and child vector for the stride.
    let w0 = keys[0];
    let w1 = keys[1];
    let f = secondLevel(dir, l2, w0);
    let s = firstStride(w0, w1);
    let o = f << SHIFT;
    let vec = f < 0 ? 0 : nodes[o + (s >>> 5)];
    // Key i+1: words 0-1 and second-level entry. (Past the end, the last key stands in.)
    let y = last < 4 ? last : 4;
    let y0 = keys[y];
    let y1 = keys[y + 1];
    let fy = secondLevel(dir, l2, y0);
    for (let i = 0, j = 0; j <= last; i++, j += 4) {
      // Key i+2: dir and second-level entries.
      const x = j + 8 < last ? j + 8 : last;
      const x0 = keys[x];
      const x1 = keys[x + 1];
      const fx = secondLevel(dir, l2, x0);
      // Key i+1: first node.
      const sy = firstStride(y0, y1);
      const oy = fy << SHIFT;
      const vy = fy < 0 ? 0 : nodes[oy + (sy >>> 5)];
      // Key i: a leaf in dir or second level, a leaf in the first node, or a deeper walk.
      if (f < 0) {
        out[i] = f & 0xffff;
      } else {
        const h = s >>> 5;
        const m = (2 << (s & 31)) - 1;
        out[i] = ((vec >>> (s & 31)) & 1) === 0
          ? leaves[nodes[o + 6 + h] + pop(nodes[o + 2 + h] & m)]
          : walk(nodes, leaves, (nodes[o + 4 + h] + pop(vec & m)) << SHIFT, SECOND, w0, w1, keys[j + 2], keys[j + 3]);
      }
      w0 = y0;
      w1 = y1;
      f = fy;
      s = sy;
      o = oy;
      vec = vy;
      y0 = x0;
      y1 = x1;
      fy = fx;
    }
  }

  get bytes(): number {
    // Leaves share the nodes' buffer when the writer inlines them (route-table6 always does).
    const leaves = this.leaves.buffer === this.nodes.buffer ? 0 : this.leaves.byteLength;
    return this.dir.byteLength + 4 * this.l2Used + this.nodes.byteLength + leaves;
  }
}

/**
 * The node walk from the node at word offset `o`, whose stride starts at key bit `b` (a module
 * function with the arrays passed in: measured faster in the batch loop than a method).
 */
function walk(nodes: Int32Array, leaves: Uint16Array, o: number, b: number, w0: number, w1: number, w2: number, w3: number): number {
  for (; ; b += 6) {
    // The 6 key bits at offset b, possibly straddling two words (past w3 reads as zero).
    const wi = b >>> 5;
    const sh = b & 31;
    const a = wi === 0 ? w0 : wi === 1 ? w1 : wi === 2 ? w2 : w3;
    let s: number;
    if (sh <= 26) {
      s = (a >>> (26 - sh)) & 63;
    } else {
      const next = wi === 0 ? w1 : wi === 1 ? w2 : wi === 2 ? w3 : 0;
      s = ((a << (sh - 26)) | (next >>> (58 - sh))) & 63;
    }
    const h = s >>> 5;
    const m = (2 << (s & 31)) - 1;
    const vec = nodes[o + h];
    if (((vec >>> (s & 31)) & 1) === 0) return leaves[nodes[o + 6 + h] + pop(nodes[o + 2 + h] & m)];
    o = (nodes[o + 4 + h] + pop(vec & m)) << SHIFT;
  }
}

/** The second-level entry of a key (a dir leaf passes through: both are negative). */
function secondLevel(dir: Int32Array, l2: Int32Array, w0: number): number {
  const e = dir[w0 >>> 16];
  return e < 0 ? e : l2[e + ((w0 >>> L2_SHIFT) & L2_MASK)];
}

/** The first node stride: key bits NODE_START6..+5, which straddle words 0 and 1. */
function firstStride(w0: number, w1: number): number {
  return ((w0 << (FIRST - 26)) | (w1 >>> (58 - FIRST))) & 63;
}
if (NODE_START6 <= 26 || NODE_START6 > 32) throw new Error('fib6: firstStride() assumes the first node stride straddles words 0 and 1');

function pop(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
