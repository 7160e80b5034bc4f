// RouteTable6: an IPv6 RIB plus the FIB compiled from it, updated in batches. Same scheme as
// RouteTable4 (see route-table4.ts): rebuilt parts are appended to the shared arrays, the 256 KiB
// dir is copied, and the published FIB is never mutated. Layout: dir (16 bits) -> per populated
// chunk a second-level block of L2_SIZE6 entries (fib6.ts) -> Poptrie subtrees from NODE_START6.
// IPv6 chunks are big (2a01::/16 holds 24k prefixes of the ASN table), so a touched chunk is not
// rebuilt whole: its block is copied (with recycleDirs, into its twin, see `twin`), the /22 slots
// holding a changed prefix of NODE_START6 bits or less are repainted (entries whose covering next
// hop changed get their subtree rebuilt), and each entry holding a longer change gets its
// subtree path-copied (poptrie-patch6.ts); every other entry keeps its subtree. A change of
// the chunk's inherited next hop (a prefix shorter than /16) rebuilds the whole chunk.

import { parseCidr6 } from './cidr';
import { NO_ROUTE } from './constants';
import { DirRecycler, GracePool } from './grace';
import { Fib6, L2_BITS6, L2_SIZE6, NODE_START6 } from './fib6';
import { LEAF_FLAG, dirLeaf } from './poptrie-layout';
import { SubtreePatcher6 } from './poptrie-patch6';
import { ChunkPrefixes, PoptrieWriter } from './poptrie-writer';
import { CHUNK_BITS6, PrefixList6, Rib6, Route6, SLOT_BITS6, checkNextHop6, checkPrefix6 } from './rib6';

const CHUNKS = 1 << CHUNK_BITS6;
// Garbage allowed beyond "as much as live" before a batch compacts with a full rebuild.
const NODE_SLACK = 32768;
const LEAF_SLACK = 131072;
// Second-level blocks: 16 MiB of them (256 blocks of 64 KiB). Without recycleDirs every batch
// leaves ~60 replaced blocks (one per touched chunk); with 4 MiB (64 blocks) the blocks, not the
// nodes, forced a compaction every 2-3 batches (5 full rebuilds in 15 batches, median 24 ms).
// The array is allocated for it up front, but pages not yet written cost nothing.
const L2_SLACK = (16 << 20) / (4 * L2_SIZE6);
/** Second-level entries per /22 slot (the RIB lists /23+ prefixes per slot). */
const SLOT_ENTRIES = 1 << (L2_BITS6 - (SLOT_BITS6 - CHUNK_BITS6));
/** Address span of one second-level entry in the first word. */
const ENTRY_SPAN = 2 ** (32 - NODE_START6);
/** Multiplier of the second-level entry in a deep change's key (see deepKeys). */
const ENTRY_KEY = 2 ** 32;
/** Multiplier of the chunk and entry (NODE_START6 bits) in a change's sort key (see order); keys stay below 2^53. */
const ORDER_KEY = 2 ** (53 - NODE_START6);
/** Largest batch applied incrementally (the batch index must fit below ORDER_KEY). */
const MAX_SORTED = ORDER_KEY;

export type RouteChange6 =
  | { op: 'set'; w: readonly number[]; len: number; nh: number }
  | { op: 'delete'; w: readonly number[]; len: number };

/** Convenience constructor of a change from CIDR text: nh given = set, nh omitted = delete. */
export function change6(cidr: string, nh?: number): RouteChange6 {
  const c = parseCidr6(cidr);
  return nh === undefined ? { op: 'delete', w: c.w, len: c.len } : { op: 'set', w: c.w, len: c.len, nh };
}

export class RouteTable6 {
  readonly rib = new Rib6();
  private writer = new PoptrieWriter();
  private readonly inherited = new Uint16Array(CHUNKS).fill(NO_ROUTE);
  private readonly touched = new Uint8Array(CHUNKS);
  /** Per touched chunk: /22 slots holding a changed prefix of NODE_START6 bits or less (two words). */
  private readonly paintLo = new Int32Array(CHUNKS);
  private readonly paintHi = new Int32Array(CHUNKS);
  /** Per touched chunk: its inherited next hop changed, rebuild it whole. */
  private readonly dirtyAll = new Uint8Array(CHUNKS);
  private touchedList: number[] = [];
  /** The batch's changes of CHUNK_BITS6 bits or more as sort keys (w0 >>> (32 - NODE_START6)) * ORDER_KEY + index. */
  private order = new Float64Array(1024);
  /**
   * The chunk being compiled: its changes longer than NODE_START6 as second-level entry *
   * ENTRY_KEY + batch index, in that order.
   */
  private deepKeys = new Float64Array(64);
  /** The batch's addresses, four words per change (see applyBatch). */
  private bw = new Int32Array(4096);
  private readonly changes = new ChunkPrefixes(4, 64);
  /** A RIB list seen as ChunkPrefixes (the writer reads words/lens/nhs/count only). */
  private readonly view = new ChunkPrefixes(4, 1);
  /**
   * Per chunk with a second-level block: every entry's painted next hop (the longest prefix of
   * NODE_START6 bits or less covering it, else the chunk's inherited one). An entry holding a
   * subtree stores a node index, not this value, and the subtree needs it as its inherited next
   * hop when it is rebuilt. Writer-side state: always that of the newest FIB.
   */
  private covers = new Map<number, Uint16Array>();
  private readonly paint = new Uint16Array(SLOT_ENTRIES);
  private readonly done = new Uint8Array(L2_SIZE6);
  private readonly doneList: number[] = [];
  private readonly patcher = new SubtreePatcher6();
  private readonly start = new Int32Array(4);
  private current: Fib6;
  fullRebuilds = 0;

  /** Second-level blocks (L2_SIZE6 entries each), append-only like the writer's nodes. */
  private l2 = new Int32Array(L2_SIZE6);
  private l2Blocks = 0;
  /** Blocks no longer referenced by the newest dir (twins not counted: they are kept). */
  garbageL2 = 0;
  /** Chunks holding a twin block (see `twin`). */
  private twinBlocks = 0;
  /**
   * Second-level blocks a batch released (whole-chunk rebuilds, dropped twins, and with snapshots
   * every replaced block), reused from the next batch on (recycleDirs).
   */
  private l2Pool = new GracePool(false);
  /**
   * With recycleDirs, each chunk's blocks are double-buffered: a batch that updates chunk c
   * writes into `twin[c]`, the block the current one replaced, instead of copying the current
   * block (64 KiB) into a fresh one. The twin lacks exactly the entries the last update wrote
   * (`stale[c]`), so those are copied over first. The grace period is what makes this safe:
   * the twin belongs to a FIB at least two batches old. -1: no twin (copy into a new block).
   */
  private readonly twin = new Int32Array(CHUNKS).fill(-1);
  private readonly stale = new Map<number, number[]>();

  private readonly recycle: boolean;
  private readonly dirs = new DirRecycler(CHUNKS);

  /**
   * `recycleDirs` (default true): as for RouteTable4, a grace period of one batch (a FIB stays
   * unchanged until the batch after the one that replaced it); here it also lets a batch reuse
   * the second-level blocks the previous batch replaced. false: snapshots that never change.
   */
  constructor(routes?: Iterable<Route6>, opts?: { recycleDirs?: boolean }) {
    this.recycle = opts?.recycleDirs ?? true;
    if (routes) for (const r of routes) this.rib.insert(r.w, r.len, r.nh);
    this.current = this.compileAll();
  }

  get fib(): Fib6 {
    return this.current;
  }

  lookup(w0: number, w1: number, w2: number, w3: number): number {
    return this.current.lookup(w0, w1, w2, w3);
  }

  /** Like RouteTable4.applyBatch: validated first (all or nothing), then touched parts rebuilt. */
  applyBatch(changes: Iterable<RouteChange6>): Fib6 {
    const batch = Array.isArray(changes) ? (changes as RouteChange6[]) : [...changes];
    const n = batch.length;
    for (let i = 0; i < n; i++) {
      const ch = batch[i];
      if (ch.op !== 'set' && ch.op !== 'delete') {
        throw new Error(`invalid route change op ${JSON.stringify((ch as { op: unknown }).op)}`);
      }
      checkPrefix6(ch.w, ch.len);
      if (ch.op === 'set') checkNextHop6(ch.nh, ch.w, ch.len);
    }
    if (n > MAX_SORTED) {
      // Too many changes for the sort keys below: apply them in order and rebuild whole.
      for (const ch of batch) {
        if (ch.op === 'set') this.rib.insert(ch.w, ch.len, ch.nh);
        else this.rib.delete(ch.w, ch.len);
      }
      return this.rebuild();
    }
    // The addresses once into a typed array: every later pass reads them from there (cache
    // friendly, and one array type for the RIB and the patcher whatever arrays the batch holds).
    if (4 * n > this.bw.length) this.bw = new Int32Array(Math.max(4 * n, 2 * this.bw.length));
    const bw = this.bw;
    for (let i = 0; i < n; i++) {
      const w = batch[i].w;
      bw[4 * i] = w[0];
      bw[4 * i + 1] = w[1];
      bw[4 * i + 2] = w[2];
      bw[4 * i + 3] = w[3];
    }
    const list = this.touchedList;
    list.length = 0;
    // Prefixes shorter than a chunk first: they change the inherited next hop of whole chunks.
    // The others are applied chunk by chunk, right before the chunk is recompiled, so the RIB
    // lists they edit are still in cache when the subtree patcher searches them. Sorting by
    // (second-level entry, batch index) keeps the batch order among changes of one prefix.
    if (n > this.order.length) this.order = new Float64Array(Math.max(n, 2 * this.order.length));
    const order = this.order;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const ch = batch[i];
      const len = ch.len;
      if (len >= CHUNK_BITS6) {
        order[m++] = (bw[4 * i] >>> (32 - NODE_START6)) * ORDER_KEY + i;
        continue;
      }
      if (!this.applyToRib(ch, i)) continue;
      const span = 1 << (CHUNK_BITS6 - len);
      const first = len === 0 ? 0 : (bw[4 * i] >>> (32 - CHUNK_BITS6));
      for (let c = first; c < first + span; c++) {
        const nh = this.rib.shortCover(c);
        if (nh !== this.inherited[c]) {
          this.inherited[c] = nh;
          this.touch(c);
          this.dirtyAll[c] = 1;
        }
      }
    }
    if (m > 1) order.subarray(0, m).sort();
    const w = this.writer;
    if (w.garbageNodes > Math.max(w.nodeCount - w.garbageNodes, NODE_SLACK) ||
        w.garbageLeaves > Math.max(w.leafCount - w.garbageLeaves, LEAF_SLACK) ||
        this.garbageL2 > Math.max(this.l2Blocks - this.garbageL2, L2_SLACK)) {
      for (let g = 0; g < m; g++) {
        const i = order[g] % ORDER_KEY;
        this.applyToRib(batch[i], i);
      }
      for (const c of list) this.clearMarks(c);
      return this.rebuild();
    }
    const dir = this.recycle ? this.dirs.next(this.current.dir) : this.current.dir.slice();
    // Blocks the previous batch replaced are referenced only by FIBs older than the current one.
    this.l2Pool.startBatch();
    w.startBatch();
    if (m > this.deepKeys.length) this.deepKeys = new Float64Array(Math.max(m, 2 * this.deepKeys.length));
    const deep = this.deepKeys;
    for (let g = 0; g < m;) {
      const c = Math.floor(order[g] / ORDER_KEY) >>> L2_BITS6;
      let nDeep = 0;
      for (; g < m; g++) {
        const key = order[g];
        const ce = Math.floor(key / ORDER_KEY); // chunk and entry
        if (ce >>> L2_BITS6 !== c) break;
        const i = key - ce * ORDER_KEY;
        const ch = batch[i];
        if (!this.applyToRib(ch, i)) continue;
        this.touch(c);
        if (ch.len <= NODE_START6) {
          // Repaint every /22 slot the prefix covers (one, unless it is /16../21).
          const first = (bw[4 * i] >>> (32 - SLOT_BITS6)) & 63;
          const count = ch.len >= SLOT_BITS6 ? 1 : 1 << (SLOT_BITS6 - ch.len);
          for (let s = first; s < first + count; s++) {
            if (s < 32) this.paintLo[c] |= 1 << s;
            else this.paintHi[c] |= 1 << (s - 32);
          }
        } else {
          deep[nDeep++] = (ce & (L2_SIZE6 - 1)) * ENTRY_KEY + i;
        }
      }
      if (this.touched[c]) this.compileTouched(dir, c, batch, nDeep);
    }
    // Chunks only a short prefix touched.
    for (const c of list) if (this.touched[c]) this.compileTouched(dir, c, batch, 0);
    this.current = new Fib6(dir, this.l2, w.nodes, w.leaves, this.l2Blocks * L2_SIZE6);
    return this.current;
  }

  /**
   * Applies change i of the batch (its address in this.bw) to the RIB. Returns false when the
   * RIB already had it (same next hop again, or a delete of an absent route): it changes no
   * lookup, so it needs no rebuild work.
   */
  private applyToRib(ch: RouteChange6, i: number): boolean {
    const W = this.bw;
    const o = 4 * i;
    return ch.op === 'set'
      ? this.rib.put(W[o], W[o + 1], W[o + 2], W[o + 3], ch.len, ch.nh) !== ch.nh
      : this.rib.remove(W[o], W[o + 1], W[o + 2], W[o + 3], ch.len);
  }

  /** Recompiles touched chunk c into `dir`: whole, or by updating its block (nDeep deep changes in deepKeys). */
  private compileTouched(dir: Int32Array, c: number, batch: RouteChange6[], nDeep: number): void {
    const old = dir[c];
    if (old < 0 || this.dirtyAll[c] || this.rib.chunkCount[c] === 0) {
      this.discardChunk(old);
      this.dropTwin(c);
      dir[c] = this.compileChunk(c);
    } else {
      dir[c] = this.updateChunk(c, old, batch, nDeep);
    }
    this.clearMarks(c);
  }

  /**
   * Recompiles the whole FIB from the RIB (compacting away garbage) and makes it current. Use it
   * after editing `rib` directly, e.g. for a bulk initial load.
   */
  rebuild(): Fib6 {
    this.current = this.compileAll();
    return this.current;
  }

  /** Second-level blocks in use by the newest FIB (twins not counted). */
  get liveL2Blocks(): number {
    return this.l2Blocks - this.garbageL2 - this.twinBlocks;
  }

  /**
   * Allocation counters since the last full build: node records allocated (leaf pages included)
   * and released (garbage, not yet reused); the same for leaves (in the shared buffer) and
   * second-level blocks, plus the twin blocks kept (neither in use by the newest FIB nor garbage).
   */
  get memory(): { nodes: number; garbageNodes: number; leaves: number; garbageLeaves: number; l2Blocks: number; garbageL2: number; twinL2: number } {
    const w = this.writer;
    return {
      nodes: w.nodeCount, garbageNodes: w.garbageNodes, leaves: w.leafCount, garbageLeaves: w.garbageLeaves,
      l2Blocks: this.l2Blocks, garbageL2: this.garbageL2, twinL2: this.twinBlocks,
    };
  }

  private touch(c: number): void {
    if (!this.touched[c]) {
      this.touched[c] = 1;
      this.touchedList.push(c);
    }
  }

  private clearMarks(c: number): void {
    this.touched[c] = 0;
    this.paintLo[c] = 0;
    this.paintHi[c] = 0;
    this.dirtyAll[c] = 0;
  }

  private compileAll(): Fib6 {
    this.fullRebuilds++;
    const n = this.rib.size;
    this.writer = new PoptrieWriter(1024 + n, 4096 + n * 4, 0, true, this.recycle);
    const counts = this.rib.chunkCount;
    let populated = 0;
    for (let c = 0; c < CHUNKS; c++) if (counts[c]) populated++;
    // Room for every block the batches until the next compaction can hold: current blocks and
    // their twins, plus garbage up to max(both, L2_SLACK), so the array does not grow by doubling
    // in a batch while the number of chunks with a block stays near `populated` (a grown array is
    // fresh memory, copied whole: ~3 ms per MiB of page faults on this VM). Pages not yet
    // written cost nothing, and Fib6.bytes counts the blocks in use only.
    this.l2 = new Int32Array((4 * populated + L2_SLACK + 4) * L2_SIZE6);
    this.l2Blocks = 0;
    this.garbageL2 = 0;
    this.l2Pool = new GracePool(this.recycle);
    this.twin.fill(-1);
    this.twinBlocks = 0;
    this.stale.clear();
    this.covers = new Map();
    const inh = this.inherited;
    inh.fill(NO_ROUTE);
    this.rib.forEachShort((first, span, nh) => inh.fill(nh, first, first + span));
    const dir = new Int32Array(CHUNKS);
    for (let c = 0; c < CHUNKS; c++) dir[c] = counts[c] ? this.compileChunk(c) : dirLeaf(inh[c]);
    const w = this.writer;
    w.trim();
    return new Fib6(dir, this.l2, w.nodes, w.leaves, this.l2Blocks * L2_SIZE6);
  }

  private allocBlock(): number {
    const free = this.l2Pool.take();
    if (free >= 0) {
      this.garbageL2--;
      return free;
    }
    const at = this.l2Blocks * L2_SIZE6;
    if (at + L2_SIZE6 > this.l2.length) {
      const grown = new Int32Array(Math.max(at + L2_SIZE6, this.l2.length * 2));
      grown.set(this.l2.subarray(0, at));
      this.l2 = grown;
    }
    this.l2Blocks++;
    return at;
  }

  private releaseBlock(base: number): void {
    this.garbageL2++;
    this.l2Pool.retire(base);
  }

  /** Counts a dir entry's block and its subtrees as garbage (the chunk is rebuilt whole). */
  private discardChunk(e: number): void {
    if (e < 0) return;
    const l2 = this.l2;
    for (let i = e; i < e + L2_SIZE6; i++) if (l2[i] >= 0) this.writer.discardRoot(l2[i]);
    this.releaseBlock(e);
  }

  /** Chunk c is rebuilt whole or loses its block: its twin goes back to the pool. */
  private dropTwin(c: number): void {
    if (this.twin[c] < 0) return;
    this.releaseBlock(this.twin[c]);
    this.twin[c] = -1;
    this.twinBlocks--;
  }

  private viewOf(l: PrefixList6): ChunkPrefixes {
    const v = this.view;
    v.words = l.words;
    v.lens = l.lens;
    v.nhs = l.nhs;
    v.count = l.n;
    return v;
  }

  /** Compiles chunk c from the RIB into a new block; returns its dir entry. */
  private compileChunk(c: number): number {
    const inh = this.inherited[c];
    const rib = this.rib;
    if (rib.chunkCount[c] === 0) return dirLeaf(inh);
    const root = rib.roots.get(c);
    if (rib.chunkCount[c] === 1 && root && root.lens[0] === CHUNK_BITS6) return dirLeaf(root.nhs[0]);
    const base = this.allocBlock();
    let cover = this.covers.get(c);
    if (!cover) this.covers.set(c, (cover = new Uint16Array(L2_SIZE6)));
    cover.fill(inh);
    // /16../22 first: every /23+ prefix is more specific than any of them.
    if (root) paintShort(root, cover, 0);
    const l2 = this.l2;
    for (let s = 0; s < 64; s++) {
      const l = rib.slots.get((c << 6) | s);
      const e0 = s * SLOT_ENTRIES;
      if (l) paintShort(l, cover, 0);
      for (let e = e0; e < e0 + SLOT_ENTRIES; e++) l2[base + e] = LEAF_FLAG | cover[e];
      if (!l) continue;
      // Prefixes longer than NODE_START6, grouped per entry (contiguous: the list is sorted).
      const lens = l.lens;
      const words = l.words;
      for (let i = 0; i < l.n;) {
        if (lens[i] <= NODE_START6) { i++; continue; }
        const e = (words[4 * i] >>> (32 - NODE_START6)) & (L2_SIZE6 - 1);
        let j = i + 1;
        while (j < l.n && ((words[4 * j] >>> (32 - NODE_START6)) & (L2_SIZE6 - 1)) === e) j++;
        l2[base + e] = this.writer.buildChunk(this.viewOf(l), NODE_START6, cover[e], i, j);
        i = j;
      }
    }
    return base;
  }

  /**
   * Makes a copy of chunk c's block (at `oldBase`): its twin brought up to date, or a new block
   * copied whole; then rebuilds only what the batch's changes in it touch. Returns the new
   * block's dir entry.
   */
  private updateChunk(c: number, oldBase: number, batch: RouteChange6[], nDeep: number): number {
    let stale = this.stale.get(c);
    if (!stale) this.stale.set(c, (stale = []));
    let base = this.twin[c];
    if (base >= 0) {
      const l2 = this.l2;
      for (let k = 0; k < stale.length; k++) l2[base + stale[k]] = l2[oldBase + stale[k]];
    } else {
      base = this.allocBlock();
      this.l2.copyWithin(base, oldBase, oldBase + L2_SIZE6); // after allocBlock, which may grow l2
    }
    if (this.recycle) {
      if (this.twin[c] < 0) this.twinBlocks++;
      this.twin[c] = oldBase; // the next update of c writes into it
    } else {
      this.releaseBlock(oldBase);
    }
    // From here on: the entries written, i.e. those the twin (oldBase) lacks.
    stale.length = 0;
    const l2 = this.l2;
    const rib = this.rib;
    const cover = this.covers.get(c)!;
    const w = this.writer;
    const done = this.done;
    const doneList = this.doneList;
    // 1. Slots with a changed prefix of NODE_START6 bits or less: recompute every entry's painted
    // next hop; an entry whose value changed gets a leaf, or its subtree rebuilt (it inherits it).
    const pLo = this.paintLo[c];
    const pHi = this.paintHi[c];
    if (pLo | pHi) {
      const root = rib.roots.get(c);
      const paint = this.paint;
      for (let s = 0; s < 64; s++) {
        if (!(s < 32 ? (pLo >>> s) & 1 : (pHi >>> (s - 32)) & 1)) continue;
        const l = rib.slots.get((c << 6) | s);
        const e0 = s * SLOT_ENTRIES;
        paint.fill(root ? rootCover(root, s, this.inherited[c]) : this.inherited[c]);
        if (l) paintShort(l, paint, e0);
        for (let k = 0; k < SLOT_ENTRIES; k++) {
          const e = e0 + k;
          const nv = paint[k];
          if (nv === cover[e]) continue;
          cover[e] = nv;
          const old = l2[base + e];
          if (old >= 0) {
            w.discardRoot(old);
            l2[base + e] = this.freshEntry(l, c, e, nv);
            done[e] = 1;
            doneList.push(e);
          } else {
            l2[base + e] = LEAF_FLAG | nv;
          }
          stale.push(e);
        }
      }
    }
    // 2. Entries holding longer changes: path-copy their subtrees (or build / drop them).
    if (nDeep > 0) {
      const n = nDeep;
      const keys = this.deepKeys;
      const bw = this.bw;
      const entryOf = (j: number): number => Math.floor(keys[j] / ENTRY_KEY);
      const chg = this.changes;
      for (let g = 0; g < n;) {
        const e = entryOf(g);
        let h = g + 1;
        while (h < n && entryOf(h) === e) h++;
        if (!done[e]) {
          const old = l2[base + e];
          const l = rib.slots.get((c << 6) | (e >>> (L2_BITS6 - 6)));
          if (old < 0 || !l) {
            // No subtree yet, or its slot list went away with its last prefix (then the old
            // subtree is released: leaking it here grew the arrays under steady churn).
            if (old >= 0) w.discardRoot(old);
            l2[base + e] = this.freshEntry(l, c, e, cover[e]);
            stale.push(e);
          } else {
            const lo = entryStart(l, c, e);
            const hi = lowerBound(l, entryAddr(c, e) + ENTRY_SPAN);
            if (lo === hi) {
              w.discardRoot(old);
              l2[base + e] = LEAF_FLAG | cover[e];
              stale.push(e);
            } else {
              chg.reset(h - g);
              for (let j = g; j < h; j++) {
                const i = keys[j] % ENTRY_KEY;
                const o = 4 * (j - g);
                chg.words[o] = bw[4 * i];
                chg.words[o + 1] = bw[4 * i + 1];
                chg.words[o + 2] = bw[4 * i + 2];
                chg.words[o + 3] = bw[4 * i + 3];
                chg.lens[j - g] = batch[i].len;
              }
              chg.count = h - g;
              const start = this.start;
              start[0] = entryAddr(c, e) | 0;
              l2[base + e] = this.patcher.patch(w, this.viewOf(l), lo, hi, NODE_START6, start, cover[e], old, chg);
              stale.push(e);
            }
          }
        }
        g = h;
      }
    }
    for (const e of doneList) done[e] = 0;
    doneList.length = 0;
    return base;
  }

  /** Entry e of chunk c built from scratch: a leaf, or a subtree of its longer prefixes in list l. */
  private freshEntry(l: PrefixList6 | undefined, c: number, e: number, inherited: number): number {
    if (!l) return LEAF_FLAG | inherited;
    const lo = entryStart(l, c, e);
    const hi = lowerBound(l, entryAddr(c, e) + ENTRY_SPAN);
    if (lo === hi) return LEAF_FLAG | inherited;
    return this.writer.buildChunk(this.viewOf(l), NODE_START6, inherited, lo, hi);
  }
}

/** First address word (unsigned) of second-level entry e of chunk c. */
function entryAddr(c: number, e: number): number {
  return (c * 65536) + e * ENTRY_SPAN;
}

/** First index of list l whose first address word (unsigned) is >= x. */
function lowerBound(l: PrefixList6, x: number): number {
  const words = l.words;
  let a = 0;
  let b = l.n;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (words[4 * m] >>> 0 < x) a = m + 1;
    else b = m;
  }
  return a;
}

/**
 * First index of entry e's prefixes longer than NODE_START6 in its slot list: those of
 * NODE_START6 bits or less inside the entry all start at its first address and sort first.
 */
function entryStart(l: PrefixList6, c: number, e: number): number {
  let i = lowerBound(l, entryAddr(c, e));
  while (i < l.n && l.lens[i] <= NODE_START6 && (l.words[4 * i] >>> 0) === entryAddr(c, e)) i++;
  return i;
}

/**
 * Paints the prefixes of NODE_START6 bits or less of a sorted list over `out` (indexed by
 * second-level entry minus `e0`). Sorted order puts a covering prefix before the ones nested in
 * it, so the most specific one is painted last.
 */
function paintShort(l: PrefixList6, out: Uint16Array, e0: number): void {
  const lens = l.lens;
  const words = l.words;
  for (let i = 0; i < l.n; i++) {
    const len = lens[i];
    if (len > NODE_START6) continue;
    const from = ((words[4 * i] >>> (32 - NODE_START6)) & (L2_SIZE6 - 1)) - e0;
    out.fill(l.nhs[i], from, from + (1 << (NODE_START6 - len)));
  }
}

/** Next hop of the longest /16../22 prefix (root list) covering /22 slot s, else `inherited`. */
function rootCover(root: PrefixList6, s: number, inherited: number): number {
  let v = inherited;
  for (let i = 0; i < root.n; i++) {
    const first = (root.words[4 * i] >>> (32 - SLOT_BITS6)) & 63;
    if (s >= first && s < first + (1 << (SLOT_BITS6 - root.lens[i]))) v = root.nhs[i];
  }
  return v;
}
