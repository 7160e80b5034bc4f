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
export const L2_BITS6 = 12;
export const L2_SIZE6 = 1 << L2_BITS6;
/** Bit offset of the first node stride (16 + L2_BITS6). */
export const NODE_START6 = 16 + L2_BITS6;

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
    const e = this.dir[w0 >>> 16];
    if (e < 0) return e & 0xffff;
    const f = this.l2[e + ((w0 >>> (16 - L2_BITS6)) & (L2_SIZE6 - 1))];
    if (f < 0) return f & 0xffff;
    return this.walk(f, w0, w1, w2, w3);
  }

  /** The node walk below the second level (kept out of lookup() so that stays small and inlined). */
  private walk(node: number, w0: number, w1: number, w2: number, w3: number): number {
    const nodes = this.nodes;
    let o = node << NODE_SHIFT;
    for (let b = NODE_START6; ; b += 6) {
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
      if (((vec >>> (s & 31)) & 1) === 0) return this.leaves[nodes[o + 6 + h] + pop(nodes[o + 2 + h] & m)];
      o = (nodes[o + 4 + h] + pop(vec & m)) << NODE_SHIFT;
    }
  }

  get bytes(): number {
    // Leaves share the nodes' buffer when the writer inlines them (route-table6 always does).
    const leaves = this.leaves.buffer === this.nodes.buffer ? 0 : this.leaves.byteLength;
    return this.dir.byteLength + 4 * this.l2Used + this.nodes.byteLength + leaves;
  }
}

function pop(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
