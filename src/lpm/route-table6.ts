// RouteTable6: an IPv6 RIB plus the FIB compiled from it, updated in batches. Same scheme as
// RouteTable4 (see route-table4.ts): rebuilt parts are appended to the shared arrays, the 256 KiB
// dir is copied, and the published FIB is never mutated. IPv6 chunks are big (2a01::/16 holds
// 14k prefixes of the ASN table), so a touched chunk is not rebuilt whole: only its root node is,
// plus the first-level subtrees (/22 slots) the batch made dirty; the others are reused. A slot is
// dirty when a prefix of /23 or longer in it changed, or a /16../22 prefix covering it changed; a
// change of the chunk's inherited next hop (a prefix shorter than /16) rebuilds the whole chunk.

import { parseCidr6 } from './cidr';
import { NO_ROUTE } from './constants';
import { Fib6 } from './fib6';
import { dirLeaf } from './poptrie-layout';
import { ChunkPrefixes, PoptrieWriter } from './poptrie-writer';
import { CHUNK_BITS6, PrefixList6, Rib6, Route6, SLOT_BITS6, checkNextHop6, checkPrefix6 } from './rib6';

const CHUNKS = 1 << CHUNK_BITS6;
// Garbage allowed beyond "as much as live" before a batch compacts with a full rebuild.
const NODE_SLACK = 32768;
const LEAF_SLACK = 131072;

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
  private readonly scratch = new ChunkPrefixes(4);
  private readonly touched = new Uint8Array(CHUNKS);
  /** Per touched chunk: dirty slots (64-bit mask as two words) and whether it needs a full rebuild. */
  private readonly dirtyLo = new Int32Array(CHUNKS);
  private readonly dirtyHi = new Int32Array(CHUNKS);
  private readonly dirtyAll = new Uint8Array(CHUNKS);
  private touchedList: number[] = [];
  /** Per touched chunk, the batch indices of its changes of /16 or longer. */
  private readonly chunkChanges = new Map<number, number[]>();
  private readonly changes = new ChunkPrefixes(4, 64);
  private readonly views: ChunkPrefixes[] = Array.from({ length: 65 }, () => new ChunkPrefixes(4, 1));
  private current: Fib6;
  fullRebuilds = 0;

  private readonly recycle: boolean;
  private spareDir: Int32Array | null = null;
  private prevDir: Int32Array | null = null;

  /** `recycleDirs`: as for RouteTable4 (a FIB stays unchanged for one more batch only). */
  constructor(routes?: Iterable<Route6>, opts?: { recycleDirs?: boolean }) {
    this.recycle = opts?.recycleDirs ?? false;
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
    for (let i = 0; i < batch.length; i++) {
      const ch = batch[i];
      if (ch.op !== 'set' && ch.op !== 'delete') {
        throw new Error(`invalid route change op ${JSON.stringify((ch as { op: unknown }).op)}`);
      }
      checkPrefix6(ch.w, ch.len);
      if (ch.op === 'set') checkNextHop6(ch.nh, ch.w, ch.len);
    }
    const list = this.touchedList;
    list.length = 0;
    for (let i = 0; i < batch.length; i++) {
      const ch = batch[i];
      if (ch.op === 'set') this.rib.insert(ch.w, ch.len, ch.nh);
      else this.rib.delete(ch.w, ch.len);
      const len = ch.len;
      const w0 = ch.w[0];
      if (len >= CHUNK_BITS6) {
        const c = w0 >>> (32 - CHUNK_BITS6);
        this.markSlots(c, (w0 >>> (32 - SLOT_BITS6)) & 63, len > SLOT_BITS6 ? 1 : 1 << (SLOT_BITS6 - len));
        const l = this.chunkChanges.get(c);
        if (l) l.push(i);
        else this.chunkChanges.set(c, [i]);
      } else {
        // A short prefix may change the inherited next hop of the chunks it spans.
        const span = 1 << (CHUNK_BITS6 - len);
        const first = len === 0 ? 0 : (w0 >>> (32 - CHUNK_BITS6));
        for (let c = first; c < first + span; c++) {
          const nh = this.rib.shortCover(c);
          if (nh !== this.inherited[c]) {
            this.inherited[c] = nh;
            this.markSlots(c, 0, 64);
            this.dirtyAll[c] = 1;
          }
        }
      }
    }
    const w = this.writer;
    if (w.garbageNodes > Math.max(w.nodeCount - w.garbageNodes, NODE_SLACK) ||
        w.garbageLeaves > Math.max(w.leafCount - w.garbageLeaves, LEAF_SLACK)) {
      for (const c of list) this.clearMarks(c);
      this.chunkChanges.clear();
      this.current = this.compileAll();
      return this.current;
    }
    let dir: Int32Array;
    if (this.recycle) {
      dir = this.spareDir ?? new Int32Array(CHUNKS);
      dir.set(this.current.dir);
      this.spareDir = this.prevDir;
      this.prevDir = this.current.dir;
    } else {
      dir = this.current.dir.slice();
    }
    for (const c of list) {
      const old = dir[c];
      if (old < 0 || this.dirtyAll[c] || this.rib.chunkCount[c] === 0) {
        w.discardEntry(old);
        dir[c] = this.compileChunk(c);
      } else {
        dir[c] = this.recompileChunk(c, old, batch);
      }
      this.clearMarks(c);
    }
    this.chunkChanges.clear();
    this.current = new Fib6(dir, w.nodes, w.leaves);
    return this.current;
  }

  /**
   * Recompiles the whole FIB from the RIB (compacting away garbage) and makes it current. Use it
   * after editing `rib` directly, e.g. for a bulk initial load.
   */
  rebuild(): Fib6 {
    this.current = this.compileAll();
    return this.current;
  }

  /** Marks `count` slots of chunk c dirty, starting at slot `first` (count 64: all). */
  private markSlots(c: number, first: number, count: number): void {
    if (!this.touched[c]) {
      this.touched[c] = 1;
      this.touchedList.push(c);
    }
    if (count >= 64) {
      this.dirtyLo[c] = -1;
      this.dirtyHi[c] = -1;
      return;
    }
    for (let s = first; s < first + count; s++) {
      if (s < 32) this.dirtyLo[c] |= 1 << s;
      else this.dirtyHi[c] |= 1 << (s - 32);
    }
  }

  private clearMarks(c: number): void {
    this.touched[c] = 0;
    this.dirtyLo[c] = 0;
    this.dirtyHi[c] = 0;
    this.dirtyAll[c] = 0;
  }

  private compileAll(): Fib6 {
    this.fullRebuilds++;
    const n = this.rib.size;
    this.writer = new PoptrieWriter(1024 + n, 4096 + n * 4);
    const inh = this.inherited;
    inh.fill(NO_ROUTE);
    this.rib.forEachShort((first, span, nh) => inh.fill(nh, first, first + span));
    const dir = new Int32Array(CHUNKS);
    const counts = this.rib.chunkCount;
    for (let c = 0; c < CHUNKS; c++) dir[c] = counts[c] ? this.compileChunk(c) : dirLeaf(inh[c]);
    const w = this.writer;
    w.nodes = w.nodes.slice(0, w.nodeCount * 8 + ((w.nodeCount >>> 3) + 16) * 8);
    w.leaves = w.leaves.slice(0, w.leafCount + (w.leafCount >>> 3) + 64);
    return new Fib6(dir, w.nodes, w.leaves);
  }

  /** Fills the scratch list with the chunk's /16../22 prefixes, then those of the selected slots. */
  private gather(c: number, dirtyLo: number, dirtyHi: number): ChunkPrefixes {
    const rib = this.rib;
    const root = rib.roots.get(c);
    let total = root ? root.n : 0;
    const lists = this.slotLists as (PrefixList6 | undefined)[];
    for (let s = 0; s < 64; s++) {
      const sel = s < 32 ? (dirtyLo >>> s) & 1 : (dirtyHi >>> (s - 32)) & 1;
      const l = sel ? rib.slots.get((c << 6) | s) : undefined;
      lists[s] = l;
      if (l) total += l.n;
    }
    const p = this.scratch;
    p.reset(total);
    let k = 0;
    const append = (l: PrefixList6) => {
      p.words.set(l.words.subarray(0, 4 * l.n), 4 * k);
      p.lens.set(l.lens.subarray(0, l.n), k);
      p.nhs.set(l.nhs.subarray(0, l.n), k);
      k += l.n;
    };
    if (root) append(root);
    for (let s = 0; s < 64; s++) if (lists[s]) append(lists[s]!);
    p.count = k;
    return p;
  }

  private readonly slotLists: (PrefixList6 | ChunkPrefixes | undefined)[] = new Array(64);

  private compileChunk(c: number): number {
    const inherited = this.inherited[c];
    if (this.rib.chunkCount[c] === 0) return dirLeaf(inherited);
    const p = this.gather(c, -1, -1);
    if (p.count === 1 && p.lens[0] === CHUNK_BITS6) return dirLeaf(p.nhs[0]);
    return this.writer.buildChunk(p, CHUNK_BITS6, inherited);
  }

  /** Rebuilds chunk c's subtree along the paths to the batch's changes in it, reusing the rest. */
  private recompileChunk(c: number, oldRoot: number, batch: RouteChange6[]): number {
    const rib = this.rib;
    const chg = this.changes;
    const ids = this.chunkChanges.get(c) ?? [];
    chg.reset(ids.length);
    for (let j = 0; j < ids.length; j++) {
      const ch = batch[ids[j]];
      chg.words[4 * j] = ch.w[0];
      chg.words[4 * j + 1] = ch.w[1];
      chg.words[4 * j + 2] = ch.w[2];
      chg.words[4 * j + 3] = ch.w[3];
      chg.lens[j] = ch.len;
    }
    chg.count = ids.length;
    const view = (v: ChunkPrefixes, l: PrefixList6 | undefined): ChunkPrefixes | undefined => {
      if (!l) return undefined;
      v.words = l.words;
      v.lens = l.lens;
      v.nhs = l.nhs;
      v.count = l.n;
      return v;
    };
    const lists = this.slotLists as (ChunkPrefixes | undefined)[];
    const dLo = this.dirtyLo[c];
    const dHi = this.dirtyHi[c];
    for (let s = 0; s < 64; s++) {
      const d = s < 32 ? (dLo >>> s) & 1 : (dHi >>> (s - 32)) & 1;
      lists[s] = d ? view(this.views[s], rib.slots.get((c << 6) | s)) : undefined;
    }
    const root = view(this.views[64], rib.roots.get(c)) ?? this.emptyList;
    return this.writer.rebuildChunk(root, CHUNK_BITS6, this.inherited[c], oldRoot, 0, 0, lists, chg);
  }

  private readonly emptyList = new ChunkPrefixes(4, 1);
}
