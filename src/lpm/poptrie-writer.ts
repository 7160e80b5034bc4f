// Builds Poptrie subtrees (see poptrie-layout.ts) from a sorted list of prefixes of one direct
// chunk, appending nodes and leaves to growable typed arrays.
//
// Between full rebuilds an incremental update never overwrites what the current FIB references:
// rebuilt subtrees go to memory that is either past the used part (append) or, with `recycle`,
// a block released by an earlier batch (a one-batch grace period, see grace.ts). So a FIB
// published earlier, which shares the same arrays, keeps returning its old answers (the one
// before the current one until the next batch, with recycling; every one, without). Released
// blocks are counted as garbage, which the owner reclaims with a full rebuild once it grows large.

import { FLAT_BITS, FLAT_FLAG, NODE_SHIFT, NODE_WORDS, RUN_FLAG, RUN_SHIFT, STRIDE, runWords } from './poptrie-layout';
import { GracePool } from './grace';
import { popcount32 } from './popcount';

/** Prefixes of one chunk, sorted by address then length (so a covering prefix comes first). */
export class ChunkPrefixes {
  count = 0;
  /** `wordsPerKey` words per prefix: the full address, most significant word first. */
  words: Int32Array;
  lens: Uint8Array;
  nhs: Uint16Array;

  constructor(readonly wordsPerKey: number, capacity = 1024) {
    this.words = new Int32Array(capacity * wordsPerKey);
    this.lens = new Uint8Array(capacity);
    this.nhs = new Uint16Array(capacity);
  }

  reset(capacity: number): void {
    this.count = 0;
    if (capacity > this.lens.length) {
      let c = this.lens.length;
      while (c < capacity) c *= 2;
      this.words = new Int32Array(c * this.wordsPerKey);
      this.lens = new Uint8Array(c);
      this.nhs = new Uint16Array(c);
    }
  }

  /** The 6-bit slot index of prefix i at bit offset b (bits past the key read as zero). */
  slotAt(i: number, b: number): number {
    const W = this.wordsPerKey;
    const wi = b >>> 5;
    return wi < W ? slotOf(this.words, i * W + wi, b & 31, wi + 1 < W) : 0;
  }
}

const MAX_LEVELS = 24;
/** Leaf runs a childless node holds in its own record in inline mode (words 4..5 = 4 Uint16). */
const INLINE_LEAVES = 4;

export class PoptrieWriter {
  nodes: Int32Array;
  leaves: Uint16Array;
  nodeCount = 0;
  leafCount = 0;
  /** Nodes and leaves no longer reachable from the newest dir (released, not yet reused). */
  garbageNodes = 0;
  garbageLeaves = 0;
  /**
   * With `recycle`: released node blocks by size (class = node count, 1..64) and, in inline mode,
   * leaf runs by size (class = quads of 4 leaves, 1..16), reused from the next batch on.
   */
  private nodePool: GracePool;
  private leafPool: GracePool;
  /** Flat chunks (IPv4 small-table mode): blocks of 2^FLAT_BITS leaves, see buildFlat(). */
  flat: Uint16Array = new Uint16Array(0);
  flatCount = 0;
  garbageFlat = 0;
  /** Flat blocks replaced by a batch, reused from the next one on (RouteTable4's recycleDirs). */
  flatPool = new GracePool(false);
  /** Run records (IPv4 leaf-only chunk roots, see poptrie-layout.ts); counts are in words. */
  runs: Int32Array = new Int32Array(0);
  runWordCount = 0;
  /** The same buffer as `runs`, for writing the records' Uint16 leaves. */
  private runs16: Uint16Array = new Uint16Array(0);
  garbageRunWords = 0;

  // Per-level scratch, so the recursion allocates nothing.
  private readonly slotNh: Int32Array[] = [];
  private readonly grpStart: Int32Array[] = [];
  private readonly grpEnd: Int32Array[] = [];
  private readonly runBuf = new Int32Array(64);
  /** The list buildNode() reads (public for the IPv6 subtree patcher, poptrie-patch6.ts). */
  p!: ChunkPrefixes;

  /**
   * Inline leaves (IPv6): `leaves` is a Uint16 view of the nodes' own buffer, leaf runs are
   * allocated in node-sized units there, and a node without children keeps up to INLINE_LEAVES
   * runs in its child-base words [4..5], which a childless node never reads. Two thirds of the
   * ASN IPv6 table's in-prefix keys end in such a node, so their last load hits the node's own
   * cache line instead of missing in a separate leaf array. The lookup code is unchanged.
   */
  readonly inline: boolean;
  private unitNext = 0;
  private unitFree = 0;

  constructor(nodeCapacity = 1024, leafCapacity = 4096, runWordCapacity = 0, inline = false, recycle = false) {
    this.inline = inline;
    this.nodePool = new GracePool(recycle, 65);
    this.leafPool = new GracePool(recycle && inline, 17);
    this.nodes = new Int32Array(Math.max(1, nodeCapacity + (inline ? (leafCapacity + 15) >>> 4 : 0)) * NODE_WORDS);
    this.leaves = inline ? new Uint16Array(this.nodes.buffer) : new Uint16Array(Math.max(1, leafCapacity));
    this.runs = new Int32Array(runWordCapacity);
    this.runs16 = new Uint16Array(this.runs.buffer);
    for (let i = 0; i < MAX_LEVELS; i++) {
      this.slotNh.push(new Int32Array(64));
      this.grpStart.push(new Int32Array(64));
      this.grpEnd.push(new Int32Array(64));
    }
  }

  /**
   * Builds the subtree for a chunk whose prefixes (all at least `b` bits long, inside the chunk)
   * are in `p`, with `inherited` the next hop of the longest prefix shorter than `b` covering
   * the chunk. Returns the root node index. `lo`/`hi` select a sub-range of `p` (IPv6 builds one
   * subtree per second-level entry straight from a RIB list).
   */
  buildChunk(p: ChunkPrefixes, b: number, inherited: number, lo = 0, hi = p.count): number {
    this.p = p;
    const root = this.allocNodes(1);
    this.buildNode(0, b, lo, hi, inherited, root);
    return root;
  }

  /**
   * IPv4: builds a chunk like buildChunk() and returns its dir entry: the root node index, or, when
   * the root has no children, a run record (RUN_FLAG | unit), which saves a dependent load per
   * lookup. The root and its leaves are then taken back: they were the last things allocated and
   * nothing published points at them yet (IPv4 does not recycle, so they were appended).
   */
  buildChunkEntry(p: ChunkPrefixes, b: number, inherited: number): number {
    const root = this.buildChunk(p, b, inherited);
    const n = this.nodes;
    const o = root << NODE_SHIFT;
    if (n[o] !== 0 || n[o + 1] !== 0) return root;
    const leafLo = n[o + 2];
    const leafHi = n[o + 3];
    const lowRuns = popcount32(leafLo);
    const k = lowRuns + popcount32(leafHi);
    const first = n[o + 6] + 1;
    const at = this.allocRunWords(runWords(k));
    const r = this.runs;
    r[at] = leafLo;
    r[at + 1] = leafHi;
    r[at + 2] = lowRuns;
    const r16 = this.runs16;
    const leaves = this.leaves;
    for (let i = 0, d = 2 * at + 6; i < k; i++) r16[d + i] = leaves[first + i];
    this.nodeCount = root;
    this.leafCount = first;
    return RUN_FLAG | (at >>> RUN_SHIFT);
  }

  private allocRunWords(words: number): number {
    const at = this.runWordCount;
    if (at + words > this.runs.length) {
      const grown = new Int32Array(Math.max(at + words, this.runs.length * 2, 1024));
      grown.set(this.runs.subarray(0, at));
      this.runs = grown;
      this.runs16 = new Uint16Array(grown.buffer);
    }
    this.runWordCount = at + words;
    return at;
  }

  /**
   * Builds a flat block for a chunk (IPv4, FLAT_BITS address bits below the dir): one leaf per
   * address, painted from the sorted prefixes (a covering prefix sorts before the ones nested in
   * it, so the most specific one is painted last). Returns the dir entry (FLAT_FLAG | block).
   */
  buildFlat(p: ChunkPrefixes, inherited: number): number {
    let block = this.flatPool.take();
    if (block >= 0) {
      this.garbageFlat--;
    } else {
      block = this.flatCount++;
      const need = this.flatCount << FLAT_BITS;
      if (need > this.flat.length) {
        const grown = new Uint16Array(Math.max(need, this.flat.length * 2));
        grown.set(this.flat.subarray(0, block << FLAT_BITS));
        this.flat = grown;
      }
    }
    const base = block << FLAT_BITS;
    const f = this.flat;
    f.fill(inherited, base, base + (1 << FLAT_BITS));
    const words = p.words;
    for (let i = 0; i < p.count; i++) {
      const from = base + (words[i] & ((1 << FLAT_BITS) - 1));
      f.fill(p.nhs[i], from, from + 2 ** (32 - p.lens[i]));
    }
    return FLAT_FLAG | block;
  }

  /** Counts the subtree or flat block a dir entry points to as garbage (it is being replaced). */
  discardEntry(e: number): void {
    if (e < 0) return;
    if (e >= FLAT_FLAG) {
      this.garbageFlat++;
      this.flatPool.retire(e & 0xffff);
    } else if (e >= RUN_FLAG) {
      const at = (e - RUN_FLAG) << RUN_SHIFT;
      this.garbageRunWords += runWords(popcount32(this.runs[at]) + popcount32(this.runs[at + 1]));
    } else {
      this.discardRoot(e);
    }
  }

  /** A new batch starts: blocks released by the previous one may be reused (with `recycle`). */
  startBatch(): void {
    this.nodePool.startBatch();
    this.leafPool.startBatch();
  }

  /** After a full build: trims the arrays to the used size plus 1/8 headroom for incremental updates. */
  trim(): void {
    this.nodes = this.nodes.slice(0, this.nodeCount * NODE_WORDS + ((this.nodeCount >>> 3) + 16) * NODE_WORDS);
    if (this.inline) this.leaves = new Uint16Array(this.nodes.buffer);
    else this.leaves = this.leaves.slice(0, this.leafCount + (this.leafCount >>> 3) + 64);
    this.runs = this.runs.slice(0, this.runWordCount + (this.runWordCount >>> 3) + 256);
    this.runs16 = new Uint16Array(this.runs.buffer);
  }

  /**
   * Releases what the node at `node` owns (it is being replaced): its leaves, its child block and
   * everything below. Not its own record, which belongs to its parent's child block (released
   * with it) or, for a subtree root, is a block of its own (discardRoot).
   */
  releaseContents(node: number): void {
    const n = this.nodes;
    const o = node << NODE_SHIFT;
    this.releaseLeaves(node);
    const kids = popcount32(n[o]) + popcount32(n[o + 1]);
    if (kids === 0) return;
    const first = n[o + 4] + 1;
    for (let k = 0; k < kids; k++) this.releaseContents(first + k);
    this.releaseNodes(first, kids);
  }

  /** Releases a subtree root (allocated alone, as buildChunk and the IPv6 patcher do) and its contents. */
  discardRoot(node: number): void {
    this.releaseContents(node);
    this.releaseNodes(node, 1);
  }

  /** The block of `k` nodes at `first` (one allocNodes(k)) is no longer referenced by the FIB being built. */
  releaseNodes(first: number, k: number): void {
    this.garbageNodes += k;
    this.nodePool.retire(first, k);
  }

  /** Releases the leaf run of the node at `node` (not inline leaves: they are part of its record). */
  releaseLeaves(node: number): void {
    const n = this.nodes;
    const o = node << NODE_SHIFT;
    const runs = popcount32(n[o + 2]) + popcount32(n[o + 3]);
    if (runs === 0) return;
    if (!this.inline) {
      this.garbageLeaves += runs;
      return;
    }
    const base = n[o + 6] + 1;
    if (base === 2 * (o + 4)) return;
    const quads = (runs + 3) >>> 2;
    this.garbageLeaves += 4 * quads;
    this.leafPool.retire(base, quads);
  }

  /**
   * Copies `count` node records from `from` to `to` (unchanged nodes moving to a new child block),
   * moving the leaf bases of inline leaves with them: the old records may be reused.
   */
  copyNodes(to: number, from: number, count: number): void {
    const n = this.nodes;
    if (count <= 2) {
      // A plain loop: copyWithin's call overhead is ~2x the copy of one 32-byte record.
      for (let d = to << NODE_SHIFT, f = from << NODE_SHIFT, e = f + (count << NODE_SHIFT); f < e; d++, f++) n[d] = n[f];
    } else {
      n.copyWithin(to << NODE_SHIFT, from << NODE_SHIFT, (from + count) << NODE_SHIFT);
    }
    if (!this.inline) return;
    const d = (to - from) << (NODE_SHIFT + 1); // in Uint16 leaves
    for (let i = 0; i < count; i++) {
      const o = (to + i) << NODE_SHIFT;
      if (n[o + 6] + 1 === 2 * (((from + i) << NODE_SHIFT) + 4)) {
        n[o + 6] += d;
        n[o + 7] += d;
      }
    }
  }

  allocNodes(k: number): number {
    const free = this.nodePool.take(k);
    if (free >= 0) {
      this.garbageNodes -= k;
      return free;
    }
    const at = this.nodeCount;
    const need = (at + k) * NODE_WORDS;
    if (need > this.nodes.length) {
      const grown = new Int32Array(Math.max(need, this.nodes.length * 2));
      grown.set(this.nodes.subarray(0, at * NODE_WORDS));
      this.nodes = grown;
      if (this.inline) this.leaves = new Uint16Array(grown.buffer);
    }
    this.nodeCount = at + k;
    return at;
  }

  private allocLeaves(k: number): number {
    if (this.inline) {
      // In quads of 4 leaves (the reuse unit), packed into node-sized units (16 Uint16 leaves
      // each), a unit's rest used by the next runs.
      const quads = (k + 3) >>> 2;
      const free = this.leafPool.take(quads);
      if (free >= 0) {
        this.garbageLeaves -= 4 * quads;
        return free;
      }
      const size = 4 * quads;
      this.leafCount += size;
      if (size > this.unitFree) {
        const units = (size + 15) >>> 4;
        this.unitNext = this.allocNodes(units) << 4;
        this.unitFree = units << 4;
      }
      const at = this.unitNext;
      this.unitNext += size;
      this.unitFree -= size;
      return at;
    }
    const at = this.leafCount;
    if (at + k > this.leaves.length) {
      const grown = new Uint16Array(Math.max(at + k, this.leaves.length * 2));
      grown.set(this.leaves.subarray(0, at));
      this.leaves = grown;
    }
    this.leafCount = at + k;
    return at;
  }

  buildNode(level: number, b: number, lo: number, hi: number, inherited: number, target: number): void {
    const p = this.p;
    const slots = this.slotNh[level];
    const gs = this.grpStart[level];
    const ge = this.grpEnd[level];
    slots.fill(inherited);
    gs.fill(-1);
    const end = b + STRIDE;
    let vecLo = 0;
    let vecHi = 0;
    const W = p.wordsPerKey;
    const words = p.words;
    const lens = p.lens;
    const nhs = p.nhs;
    const wi = b >>> 5;
    const sh = b & 31;
    // Paint the prefixes that end in this stride; sorted order puts a covering prefix before the
    // ones nested in it, so the more specific one wins. Longer prefixes are grouped per slot
    // (contiguous, because the list is sorted by address).
    for (let i = lo; i < hi; i++) {
      const len = lens[i];
      let s: number;
      if (W === 1) s = b <= 32 - STRIDE ? (words[i] >>> (32 - STRIDE - b)) & 63 : (words[i] << (b - (32 - STRIDE))) & 63;
      else s = slotOf(words, i * W + wi, sh, wi + 1 < W);
      if (len <= end) {
        if (len === end) slots[s] = nhs[i];
        else slots.fill(nhs[i], s, s + (1 << (end - len)));
      } else {
        if (gs[s] < 0) gs[s] = i;
        ge[s] = i + 1;
        if (s < 32) vecLo |= 1 << s;
        else vecHi |= 1 << (s - 32);
      }
    }
    const childBase = this.writeNode(target, vecLo, vecHi, slots);
    const kids = popcount32(vecLo) + popcount32(vecHi);
    if (!kids) return;
    let k = childBase;
    for (let v = vecLo; v !== 0; v &= v - 1) {
      const s = 31 - Math.clz32(v & -v);
      this.buildNode(level + 1, end, gs[s], ge[s], slots[s], k++);
    }
    for (let v = vecHi; v !== 0; v &= v - 1) {
      const s = 63 - Math.clz32(v & -v);
      this.buildNode(level + 1, end, gs[s], ge[s], slots[s], k++);
    }
  }

  /**
   * Writes node `target`: its child and leaf bitmaps, with leaf compression (one stored leaf per run
   * of equal leaf slots; child slots do not break a run), and allocates its children (returned:
   * the first child's index) and leaves.
   */
  writeNode(target: number, vecLo: number, vecHi: number, slots: ArrayLike<number>): number {
    const run = this.runBuf;
    let leafLo = 0;
    let leafHi = 0;
    let runs = 0;
    let prev = -1;
    for (let s = 0; s < 32; s++) {
      if ((vecLo >>> s) & 1) continue;
      const v = slots[s];
      if (v !== prev) {
        prev = v;
        run[runs++] = v;
        leafLo |= 1 << s;
      }
    }
    for (let s = 32; s < 64; s++) {
      if ((vecHi >>> (s - 32)) & 1) continue;
      const v = slots[s];
      if (v !== prev) {
        prev = v;
        run[runs++] = v;
        leafHi |= 1 << (s - 32);
      }
    }
    const kids = popcount32(vecLo) + popcount32(vecHi);
    const childBase = kids ? this.allocNodes(kids) : 0;
    const o = target << NODE_SHIFT;
    const inl = this.inline && kids === 0 && runs <= INLINE_LEAVES;
    const leafBase = inl ? 2 * (o + 4) : this.allocLeaves(runs);
    const n = this.nodes; // read after the allocations above, which may have grown it
    n[o] = vecLo;
    n[o + 1] = vecHi;
    n[o + 2] = leafLo;
    n[o + 3] = leafHi;
    n[o + 4] = childBase - 1;
    n[o + 5] = childBase - 1 + popcount32(vecLo);
    n[o + 6] = leafBase - 1;
    n[o + 7] = leafBase - 1 + popcount32(leafLo);
    // After the header: inline leaves overwrite the (unused) child bases.
    const leaves = this.leaves;
    for (let r = 0; r < runs; r++) leaves[leafBase + r] = run[r];
    return childBase;
  }

}

/**
 * The 6-bit slot at bit offset `sh` of key word words[at] (continuing into words[at + 1] when
 * `hasNext`; bits past the key read as zero). ChunkPrefixes.slotAt is this for prefix i.
 */
function slotOf(words: Int32Array, at: number, sh: number, hasNext: boolean): number {
  const a = words[at];
  if (sh <= 32 - STRIDE) return (a >>> (32 - STRIDE - sh)) & 63;
  const next = hasNext ? words[at + 1] : 0;
  return ((a << (sh - (32 - STRIDE))) | (next >>> (64 - STRIDE - sh))) & 63;
}
