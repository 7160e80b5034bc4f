// RouteTable4: an IPv4 RIB plus the FIB compiled from it, updated in batches.
//
// applyBatch() applies the changes to the RIB, then rebuilds only the /18 chunks they touch:
// a prefix of 18+ bits touches one chunk; a shorter one may change the inherited next hop of the
// chunks it spans, which are recomputed over that span and rebuilt only where it changed. The
// new FIB gets a copy of the 1 MiB dir and shares the node/leaf arrays, to which the rebuilt
// subtrees are appended (see poptrie-writer.ts), so the FIB that packets are using right now is
// never modified: the caller swaps `fib` between packet batches. (By default the dir copy goes
// into the buffer of the FIB before the previous one: a grace period of one batch, see the
// constructor.) Once the replaced subtrees (garbage) outweigh the live ones, the batch does a
// full rebuild instead, which also compacts.
//
// Small tables (at most FLAT_MAX_CHUNKS populated chunks at the last full build, e.g. a Calico
// node: every route inside one /16) compile each populated chunk to a flat block of 2^14 leaves
// instead of a subtree, so every lookup is dir -> leaf (at most 32 KiB per chunk, 2 MiB in all).

import { parseCidr4 } from './cidr';
import { NO_ROUTE } from './constants';
import { Fib4 } from './fib4';
import { DirRecycler, GracePool } from './grace';
import { dirLeaf } from './poptrie-layout';
import { ChunkPrefixes, PoptrieWriter } from './poptrie-writer';
import { CHUNK_BITS4, Rib4, Route4, checkNextHop4, checkPrefix4 } from './rib4';

const CHUNKS = 1 << CHUNK_BITS4;
const LOW_BITS = 32 - CHUNK_BITS4;
/** Tables with at most this many populated chunks use flat blocks (see above). */
export const FLAT_MAX_CHUNKS = 64;
// Garbage allowed beyond "as much as live" before a batch compacts with a full rebuild, so small
// tables do not recompile every other batch (at most 1 MiB of flat blocks, ~1.3 MiB of nodes+leaves).
const FLAT_SLACK = 32;
const NODE_SLACK = 32768;
const LEAF_SLACK = 131072;
const RUN_SLACK = 65536; // words (256 KiB)

export type RouteChange4 =
  | { op: 'set'; addr: number; len: number; nh: number }
  | { op: 'delete'; addr: number; len: number };

/** Convenience constructor of a change from CIDR text: nh given = set, nh omitted = delete. */
export function change4(cidr: string, nh?: number): RouteChange4 {
  const c = parseCidr4(cidr);
  return nh === undefined ? { op: 'delete', addr: c.addr, len: c.len } : { op: 'set', addr: c.addr, len: c.len, nh };
}

export class RouteTable4 {
  readonly rib = new Rib4();
  private writer = new PoptrieWriter();
  /** Per chunk, the next hop inherited from prefixes shorter than 18 bits. */
  private readonly inherited = new Uint16Array(CHUNKS).fill(NO_ROUTE);
  private readonly inhScratch = new Uint16Array(CHUNKS);
  private readonly scratch = new ChunkPrefixes(1);
  private readonly touched = new Uint8Array(CHUNKS);
  private touchedList = new Int32Array(1024);
  private nTouched = 0;
  /** Short prefixes changed by the current batch: (first chunk, length) pairs. */
  private shortList = new Int32Array(64);
  private current: Fib4;
  /** Whether populated chunks compile to flat blocks (decided at each full build). */
  private flatMode = false;
  /** Number of full rebuilds done, for tests and the benchmark. */
  fullRebuilds = 0;

  private readonly flatMax: number;

  private readonly recycle: boolean;
  /** With recycling: where the next batch's dir comes from. */
  private readonly dirs = new DirRecycler(CHUNKS);

  /**
   * `routes` are bulk-loaded (duplicates: the last one wins). Options:
   * - `flatMaxChunks` overrides FLAT_MAX_CHUNKS (0 disables flat blocks; tests force either layout);
   * - `recycleDirs` (default true): a batch writes its new dir into the buffer of the FIB published
   *   two batches ago, and flat blocks replaced by one batch are reused by the next, instead of
   *   fresh memory: V8 frees an ArrayBuffer only at a GC, so back-to-back batches would each
   *   page-fault a new 1 MiB dir (~3.3 ms on this VM). The contract is a grace period of one batch,
   *   like RCU: a FIB stays unchanged until the batch after the one that replaced it, which is
   *   what a reader that swaps `fib` between packet batches needs. Pass false for snapshots that
   *   never change however long they are kept (each batch then allocates a fresh dir).
   */
  constructor(routes?: Iterable<Route4>, opts?: { flatMaxChunks?: number; recycleDirs?: boolean }) {
    this.flatMax = opts?.flatMaxChunks ?? FLAT_MAX_CHUNKS;
    this.recycle = opts?.recycleDirs ?? true;
    if (routes) this.rib.bulkLoad(routes);
    this.current = this.compileAll();
  }

  /** The FIB to use for lookups; replaced by applyBatch() (see recycleDirs for how long an old one lasts). */
  get fib(): Fib4 {
    return this.current;
  }

  /** Whether the current FIB uses flat blocks (small-table mode). */
  get flat(): boolean {
    return this.flatMode;
  }

  /** Longest-prefix match through the current FIB. */
  lookup(ip: number): number {
    return this.current.lookup(ip);
  }

  /**
   * Applies a batch of changes (in order) and returns the new FIB, which `fib` now returns.
   * The batch is validated first: if any change is invalid it throws and nothing is applied.
   * A change the RIB already holds (the same next hop again, a delete of an absent route) is
   * skipped, so after editing `rib` directly call rebuild(), not applyBatch with the same change.
   */
  applyBatch(changes: Iterable<RouteChange4>): Fib4 {
    const batch = Array.isArray(changes) ? (changes as RouteChange4[]) : [...changes];
    for (let i = 0; i < batch.length; i++) {
      const ch = batch[i];
      if (ch.op !== 'set' && ch.op !== 'delete') {
        throw new Error(`invalid route change op ${JSON.stringify((ch as { op: unknown }).op)}`);
      }
      checkPrefix4(ch.addr, ch.len);
      if (ch.op === 'set') checkNextHop4(ch.nh, ch.addr, ch.len);
    }
    this.nTouched = 0;
    let nShort = 0;
    const rib = this.rib;
    for (let i = 0; i < batch.length; i++) {
      const ch = batch[i];
      // A change the RIB already had (same next hop, or a delete of an absent route) changes no
      // lookup: skip its rebuild work.
      const changed = ch.op === 'set' ? rib.insert(ch.addr, ch.len, ch.nh) !== ch.nh : rib.delete(ch.addr, ch.len);
      if (!changed) continue;
      if (ch.len >= CHUNK_BITS4) {
        this.touch(ch.addr >>> LOW_BITS);
      } else {
        if (2 * nShort + 2 > this.shortList.length) {
          const grown = new Int32Array(this.shortList.length * 2);
          grown.set(this.shortList);
          this.shortList = grown;
        }
        this.shortList[2 * nShort] = ch.len === 0 ? 0 : (ch.addr >>> LOW_BITS);
        this.shortList[2 * nShort + 1] = ch.len;
        nShort++;
      }
    }
    const w = this.writer;
    if (w.garbageNodes > Math.max(w.nodeCount - w.garbageNodes, NODE_SLACK) ||
        w.garbageLeaves > Math.max(w.leafCount - w.garbageLeaves, LEAF_SLACK) ||
        w.garbageFlat > Math.max(w.flatCount - w.garbageFlat, FLAT_SLACK) ||
        w.garbageRunWords > Math.max(w.runWordCount - w.garbageRunWords, RUN_SLACK)) {
      for (let i = 0; i < this.nTouched; i++) this.touched[this.touchedList[i]] = 0;
      this.current = this.compileAll();
      return this.current;
    }
    const dir = this.recycle ? this.dirs.next(this.current.dir) : this.current.dir.slice();
    w.flatPool.startBatch();
    // A short prefix changes the inherited next hop of (some of) the chunks it spans: recompute it
    // over the span; chunks without long prefixes just get the new leaf, the others are rebuilt.
    const inh = this.inherited;
    const fresh = this.inhScratch;
    for (let i = 0; i < nShort; i++) {
      const first = this.shortList[2 * i];
      const len = this.shortList[2 * i + 1];
      rib.fillCover(first, len, fresh);
      const end = first + (1 << (CHUNK_BITS4 - len));
      const runLen = rib.runLen;
      for (let c = first; c < end; c++) {
        if (fresh[c] === inh[c]) continue;
        inh[c] = fresh[c];
        if (runLen[c] === 0 && dir[c] < 0) dir[c] = dirLeaf(fresh[c]);
        else this.touch(c);
      }
    }
    const nTouched = this.nTouched;
    const list = this.touchedList;
    for (let i = 0; i < nTouched; i++) {
      const c = list[i];
      this.touched[c] = 0;
      w.discardEntry(dir[c]);
      dir[c] = this.compileChunk(c);
    }
    this.current = new Fib4(dir, w.nodes, w.leaves, w.flat, w.runs);
    return this.current;
  }

  /**
   * Recompiles the whole FIB from the RIB (compacting away garbage) and makes it current. Use it
   * after editing `rib` directly, e.g. for a bulk initial load.
   */
  rebuild(): Fib4 {
    this.current = this.compileAll();
    return this.current;
  }

  private touch(c: number): void {
    if (this.touched[c]) return;
    this.touched[c] = 1;
    if (this.nTouched === this.touchedList.length) {
      const grown = new Int32Array(this.nTouched * 2);
      grown.set(this.touchedList);
      this.touchedList = grown;
    }
    this.touchedList[this.nTouched++] = c;
  }

  private compileAll(): Fib4 {
    this.fullRebuilds++;
    const rib = this.rib;
    let populated = 0;
    for (let c = 0; c < CHUNKS && populated <= this.flatMax; c++) if (rib.runLen[c]) populated++;
    this.flatMode = this.flatMax > 0 && populated <= this.flatMax;
    // Size the arrays from the RIB so a full build never grows one by doubling (a copy into fresh
    // memory): at most one node per 4 routes, 2 leaves per route, 1.5 run-record words per route
    // (measured: the ASN table 0.89, the generated 1M table 1.39). Untouched capacity costs no
    // memory until written; trim() cuts it down afterwards.
    const n = rib.size;
    this.writer = this.flatMode ? new PoptrieWriter(16, 64) : new PoptrieWriter(1024 + (n >>> 2), 4096 + n * 2, 1024 + n + (n >>> 1));
    this.writer.flatPool = new GracePool(this.recycle);
    const inh = this.inherited;
    inh.fill(NO_ROUTE);
    rib.forEachShort((first, span, nh) => inh.fill(nh, first, first + span));
    const dir = new Int32Array(CHUNKS);
    for (let c = 0; c < CHUNKS; c++) dir[c] = rib.runLen[c] ? this.compileChunk(c) : dirLeaf(inh[c]);
    const w = this.writer;
    w.trim();
    return new Fib4(dir, w.nodes, w.leaves, w.flat, w.runs);
  }

  /** Returns the dir entry for chunk `c`: a leaf, a flat block, a run record or the root of a fresh subtree. */
  private compileChunk(c: number): number {
    const rib = this.rib;
    const n = rib.runLen[c];
    const inherited = this.inherited[c];
    if (n === 0) return dirLeaf(inherited);
    const off = rib.runOff[c];
    const keys = rib.keys;
    const nhs = rib.nhs;
    // A lone /18 covers the whole chunk: no subtree needed.
    if (n === 1 && keys[off] === 0) return dirLeaf(nhs[off]);
    const p = this.scratch;
    p.reset(n);
    const base = c << LOW_BITS;
    const words = p.words;
    const lens = p.lens;
    const pn = p.nhs;
    for (let i = 0; i < n; i++) {
      const k = keys[off + i];
      words[i] = base | (k >>> 4);
      lens[i] = (k & 15) + CHUNK_BITS4;
      pn[i] = nhs[off + i];
    }
    p.count = n;
    const w = this.writer;
    if (this.flatMode && w.flatCount - w.garbageFlat < this.flatMax) return w.buildFlat(p, inherited);
    return w.buildChunkEntry(p, CHUNK_BITS4, inherited);
  }
}
