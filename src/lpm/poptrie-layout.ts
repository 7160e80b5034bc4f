// Memory layout shared by the IPv4 and IPv6 compiled tables (a Poptrie, Asai & Ohara, SIGCOMM 2015).
//
// `dir` (Int32Array) is indexed by the top DIRECT_BITS of the key ("direct pointing"). An entry
// is either a leaf, negative: LEAF_FLAG | next hop, or a node index >= 0.
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

/** A dir entry that resolves the whole chunk to `nh`. */
export function dirLeaf(nh: number): number {
  return LEAF_FLAG | nh;
}
