// The compiled, immutable IPv6 lookup table: the same Poptrie layout as IPv4 (poptrie-layout.ts)
// with direct pointing on the top 16 bits and 6-bit strides at bit offsets 16, 22, 28, ... 124.
// A /32 resolves after 3 nodes and a /48 after 6; the key is read from four uint32 words so no
// BigInt or array is needed per lookup.

import { LEAF_FLAG, NODE_SHIFT } from './poptrie-layout';

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
    // Unrolled: every level's 6 key bits come from a constant shift (levels at bit 16, 22, ...
    // 124; the ones at 28, 94 and 124 straddle two words or the padding).
    let o = e << NODE_SHIFT;
    if ((o = this.step(o, (w0 >>> 10) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w0 >>> 4) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, ((w0 << 2) | (w1 >>> 30)) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w1 >>> 24) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w1 >>> 18) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w1 >>> 12) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w1 >>> 6) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, w1 & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, w2 >>> 26)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w2 >>> 20) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w2 >>> 14) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w2 >>> 8) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w2 >>> 2) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, ((w2 << 4) | (w3 >>> 28)) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w3 >>> 22) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w3 >>> 16) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w3 >>> 10) & 63)) < 0) return o & 0xffff;
    if ((o = this.step(o, (w3 >>> 4) & 63)) < 0) return o & 0xffff;
    return this.step(o, (w3 << 2) & 63) & 0xffff; // bits 124..127 + 2 padding bits: always a leaf
  }

  /** One level: the leaf (negative, LEAF_FLAG | nh) or the next node's word offset. */
  private step(o: number, s: number): number {
    const nodes = this.nodes;
    const h = s >>> 5;
    const m = (2 << (s & 31)) - 1;
    const vec = nodes[o + h];
    if (((vec >>> (s & 31)) & 1) === 0) return LEAF_FLAG | this.leaves[nodes[o + 6 + h] + pop(nodes[o + 2 + h] & m)];
    return (nodes[o + 4 + h] + pop(vec & m)) << NODE_SHIFT;
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
