// The compiled, immutable IPv4 lookup table (a Poptrie; layout in poptrie-layout.ts).
//
// Direct pointing on the top 18 bits (1 MiB) means the dominant /19../24 routes of an Internet
// table resolve in the chunk's root stride. A root without children (92% of the ASN table's
// in-prefix keys land in one) is a run record: dir -> record, two dependent loads, the leaf sitting
// next to its bitmap. Other roots are nodes: dir -> node -> leaf, and /25../30 take one more node,
// /31../32 two more. Small tables (few populated chunks, e.g. a Calico node) use
// flat blocks instead: dir -> one Uint16 leaf per address of the chunk, two dependent loads.
// Everything is int32 so V8 keeps the lookup in registers.

import { FLAT_FLAG, NODE_SHIFT, RUN_FLAG, RUN_SHIFT } from './poptrie-layout';

const NO_FLAT = new Uint16Array(0);
const NO_RUNS = new Int32Array(0);

export class Fib4 {
  constructor(
    /** 2^18 entries: leaf (negative, LEAF_FLAG | nh), FLAT_FLAG | flat block, or node index. */
    readonly dir: Int32Array,
    readonly nodes: Int32Array,
    readonly leaves: Uint16Array,
    /** Flat blocks (small tables only): 2^14 leaves per chunk whose dir entry is FLAT_FLAG | block. */
    readonly flat: Uint16Array = NO_FLAT,
    /** Run records (leaf-only chunk roots) whose dir entry is RUN_FLAG | unit; see poptrie-layout.ts. */
    readonly runs: Int32Array = NO_RUNS,
  ) {
    this.runs16 = new Uint16Array(runs.buffer, runs.byteOffset, runs.length * 2);
  }

  /** The same buffer as `runs`, for the records' Uint16 leaves. */
  private readonly runs16: Uint16Array;

  /** Longest-prefix match of an IPv4 address (unsigned or int32); returns the next hop or NO_ROUTE. */
  lookup(ip: number): number {
    const e = this.dir[ip >>> 14];
    if (e < 0) return e & 0xffff;
    // Kept small so V8 inlines it into the caller's loop; the node walk is its own function.
    if (e < RUN_FLAG) return this.walk(e, ip);
    if (e >= FLAT_FLAG) return this.flat[((e & 0xffff) << 14) | (ip & 0x3fff)];
    // Run record: bits 18..23 pick the slot; rank its run among the record's leaves.
    const o = (e - RUN_FLAG) << RUN_SHIFT;
    const s = (ip >>> 8) & 63;
    const h = s >>> 5;
    const r = this.runs;
    return this.runs16[2 * o + 5 + (r[o + 2] & -h) + pop(r[o + h] & ((2 << (s & 31)) - 1))];
  }

  private walk(e: number, ip: number): number {
    const nodes = this.nodes;
    // Level 1: bits 18..23.
    let o = e << NODE_SHIFT;
    let s = (ip >>> 8) & 63;
    let h = s >>> 5;
    let b = s & 31;
    let vec = nodes[o + h];
    if (((vec >>> b) & 1) === 0) return this.leaves[nodes[o + 6 + h] + pop(nodes[o + 2 + h] & ((2 << b) - 1))];
    o = (nodes[o + 4 + h] + pop(vec & ((2 << b) - 1))) << NODE_SHIFT;
    // Level 2: bits 24..29.
    s = (ip >>> 2) & 63;
    h = s >>> 5;
    b = s & 31;
    vec = nodes[o + h];
    if (((vec >>> b) & 1) === 0) return this.leaves[nodes[o + 6 + h] + pop(nodes[o + 2 + h] & ((2 << b) - 1))];
    o = (nodes[o + 4 + h] + pop(vec & ((2 << b) - 1))) << NODE_SHIFT;
    // Level 3: bits 30..31, padded with four zero bits (always a leaf: nothing is longer than /32).
    s = (ip << 4) & 63;
    h = s >>> 5;
    b = s & 31;
    return this.leaves[nodes[o + 6 + h] + pop(nodes[o + 2 + h] & ((2 << b) - 1))];
  }

  /** Bytes held by the table's typed arrays (including spare capacity kept for updates). */
  get bytes(): number {
    return this.dir.byteLength + this.nodes.byteLength + this.leaves.byteLength + this.flat.byteLength + this.runs.byteLength;
  }
}

// Local copy of popcount32 so the lookup's call target is a module-local function V8 inlines.
function pop(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
