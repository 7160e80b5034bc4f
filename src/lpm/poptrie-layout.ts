// Memory layout shared by the IPv4 and IPv6 compiled tables (a Poptrie, Asai & Ohara, SIGCOMM 2015).
//
// `dir` (Int32Array) is indexed by the top DIRECT_BITS of the key ("direct pointing"). An entry
// is either a leaf, negative: LEAF_FLAG | next hop, or a node index in [0, RUN_FLAG) (IPv4 also
// has run records and flat blocks, see below).
//
// A node covers a 6-bit stride, i.e. 64 slots, and is NODE_WORDS int32 words in `nodes`:
//   [0] vecLo  [1] vecHi    bit s set: slot s continues in a child node
//   [2] leafLo [3] leafHi   bit s set: slot s is a leaf slot that starts a new run of equal leaves
//   [4] childLo, [5] childHi  index of the node of the first child, minus 1 (lo half), and for the
//                             hi half the same plus popcount(vecLo), so a lookup in either half
//                             needs a single popcount: child = base[h] + popcount(vec[h] & upto)
//   [6] leafBaseLo, [7] leafBaseHi  same idea for the leaves (Uint16Array `leaves`)
// Children of one node are contiguous in `nodes`, its leaves contiguous in `leaves`, which is what
// makes rank-by-popcount addressing possible. Runs of equal leaves are stored once (leaf
// compression), which is why the table is several times smaller than a multibit trie.
//
// Keys are padded with zero bits up to a multiple of the stride past DIRECT_BITS (IPv4: 18+6+6+6 =
// 36 bits, IPv6: 16+6*19 = 130 bits); a prefix ending inside the padding covers several slots.

export const NODE_WORDS = 8;
export const NODE_SHIFT = 3; // log2(NODE_WORDS)
export const STRIDE = 6;
export const LEAF_FLAG = 0x80000000 | 0; // as int32: negative
/**
 * IPv4 only: a dir entry >= FLAT_FLAG points to a flat block of 2^FLAT_BITS Uint16 leaves, one
 * per address of the /18 chunk (block index in the low 16 bits): two dependent loads, like
 * DIR-24-8. Used for tables with few populated chunks (a Calico node table), see route-table4.ts.
 */
export const FLAT_FLAG = 0x40000000;
export const FLAT_BITS = 14;

/**
 * IPv4 only: a dir entry in [RUN_FLAG, FLAT_FLAG) is a chunk whose root node would have no
 * children (every prefix of the chunk is /19../24, which is most of an Internet table), stored as
 * a compact "run record" in `runs` (Int32Array) instead of a node plus a separate leaf array:
 *   [0] leafLo [1] leafHi   bit s set: slot s starts a new run of equal leaves (as in a node)
 *   [2] popcount(leafLo)     so the hi half needs one popcount too
 *   then the leaves, one Uint16 per run, from Uint16 index 2 * start + 6 of the same buffer.
 * The lookup reads the bitmap and the leaf from the same (or the next) cache line: dir -> record,
 * two dependent misses instead of three (dir -> node -> leaf). Records start on RUN_UNIT-word
 * boundaries (16 bytes); the entry holds the start in units: start word = (e - RUN_FLAG) << RUN_SHIFT.
 */
export const RUN_FLAG = 0x20000000;
export const RUN_SHIFT = 2;
export const RUN_UNIT = 1 << RUN_SHIFT;
/** Words of a run record with k leaves, rounded up to whole units. */
export function runWords(k: number): number {
  return (3 + ((k + 1) >>> 1) + RUN_UNIT - 1) & ~(RUN_UNIT - 1);
}

/** A dir entry that resolves the whole chunk to `nh`. */
export function dirLeaf(nh: number): number {
  return LEAF_FLAG | nh;
}
