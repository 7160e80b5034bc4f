// The compiled, immutable IPv6 lookup table: the same Poptrie layout as IPv4 (poptrie-layout.ts)
// with direct pointing on the top 16 bits and 6-bit strides at bit offsets 16, 22, 28, ... 124.
// A /32 resolves after 3 nodes and a /48 after 6; the key is read from four uint32 words so no
// BigInt or array is needed per lookup.

import { NODE_SHIFT } from './poptrie-layout';

export class Fib6 {
  constructor(
    /** 2^16 entries: leaf (negative, LEAF_FLAG | nh) or node index. */
    readonly dir: Int32Array,
    readonly nodes: Int32Array,
    readonly leaves: Uint16Array,
  ) {}

  /** Longest-prefix match of the address w0:w1:w2:w3 (words unsigned or int32). */
  lookup(w0: number, w1: number, w2: number, w3: number): number {
    const e = this.dir[w0 >>> 16];
    if (e < 0) return e & 0xffff;
    const nodes = this.nodes;
    let o = e << NODE_SHIFT;
    for (let b = 16; ; b += 6) {
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
    return this.dir.byteLength + this.nodes.byteLength + this.leaves.byteLength;
  }
}

function pop(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
