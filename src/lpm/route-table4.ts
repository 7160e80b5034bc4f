// RouteTable4: an IPv4 RIB plus the FIB compiled from it, updated in batches.
//
// applyBatch() applies the changes to the RIB, then rebuilds only the /18 chunks they touch:
// a prefix of 18+ bits touches one chunk; a shorter one changes the inherited next hop of every
// chunk it spans. The new FIB gets a copy of the 1 MiB dir and shares the node/leaf arrays, to
// which the rebuilt subtrees are appended (see poptrie-writer.ts), so the FIB that packets are
// using right now is never modified: the caller swaps `fib` between packet batches. Once the
// replaced subtrees (garbage) outweigh the live ones, the batch does a full rebuild instead,
// which also compacts the arrays.

import { formatCidr4, parseCidr4 } from './cidr';
import { NO_ROUTE, checkNextHop } from './constants';
import { Fib4 } from './fib4';
import { dirLeaf } from './poptrie-layout';
import { ChunkPrefixes, PoptrieWriter } from './poptrie-writer';
import { CHUNK_BITS4, Rib4, Route4, checkPrefix4 } from './rib4';

const CHUNKS = 1 << CHUNK_BITS4;
const LOW_BITS = 32 - CHUNK_BITS4;

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
  private readonly scratch = new ChunkPrefixes(1);
  private keyScratch = new Float64Array(1024);
  private readonly touched = new Uint8Array(CHUNKS);
  private touchedList = new Int32Array(1024);
  private current: Fib4;
  /** Number of full rebuilds done, for tests and the benchmark. */
  fullRebuilds = 0;

  constructor(routes?: Iterable<Route4>) {
    if (routes) for (const r of routes) this.rib.insert(r.addr, r.len, r.nh);
    this.current = this.rebuild();
  }

  /** The FIB to use for lookups; replaced (never mutated) by applyBatch(). */
  get fib(): Fib4 {
    return this.current;
  }

  /** Longest-prefix match through the current FIB. */
  lookup(ip: number): number {
    return this.current.lookup(ip);
  }

  /**
   * Applies a batch of changes (in order) and returns the new FIB, which `fib` now returns.
   * The batch is validated first: if any change is invalid it throws and nothing is applied.
   */
  applyBatch(changes: Iterable<RouteChange4>): Fib4 {
    const batch = Array.isArray(changes) ? (changes as RouteChange4[]) : [...changes];
    for (const ch of batch) {
      if (ch.op !== 'set' && ch.op !== 'delete') {
        throw new Error(`invalid route change op ${JSON.stringify((ch as { op: unknown }).op)}`);
      }
      checkPrefix4(ch.addr, ch.len);
      if (ch.op === 'set') checkNextHop(ch.nh, formatCidr4(ch.addr, ch.len));
    }
    let nTouched = 0;
    let full = false;
    const touch = (c: number) => {
      if (this.touched[c]) return;
      this.touched[c] = 1;
      if (nTouched === this.touchedList.length) {
        const grown = new Int32Array(nTouched * 2);
        grown.set(this.touchedList);
        this.touchedList = grown;
      }
      this.touchedList[nTouched++] = c;
    };
    for (const ch of batch) {
      if (ch.op === 'set') this.rib.insert(ch.addr, ch.len, ch.nh);
      else this.rib.delete(ch.addr, ch.len);
      if (full) continue;
      if (ch.len >= CHUNK_BITS4) {
        touch(ch.addr >>> LOW_BITS);
      } else if (ch.len < 6) {
        full = true; // spans 4096+ chunks: cheaper to rebuild everything
      } else {
        // A short prefix changes the inherited next hop of every chunk it spans.
        const span = 1 << (CHUNK_BITS4 - ch.len);
        const first = ch.addr >>> LOW_BITS;
        for (let c = first; c < first + span; c++) touch(c);
      }
    }
    if (!full) {
      for (let i = 0; i < nTouched; i++) {
        const c = this.touchedList[i];
        this.inherited[c] = this.rib.shortCover(c);
      }
    }
    const w = this.writer;
    if (full || w.garbageNodes * 2 > w.nodeCount || w.garbageLeaves * 2 > w.leafCount) {
      for (let i = 0; i < nTouched; i++) this.touched[this.touchedList[i]] = 0;
      this.current = this.compileAll();
      return this.current;
    }
    const dir = this.current.dir.slice();
    for (let i = 0; i < nTouched; i++) {
      const c = this.touchedList[i];
      this.touched[c] = 0;
      if (dir[c] >= 0) w.discardSubtree(dir[c]);
      dir[c] = this.compileChunk(c);
    }
    this.current = new Fib4(dir, w.nodes, w.leaves);
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

  private compileAll(): Fib4 {
    this.fullRebuilds++;
    // Size the arrays from the RIB: about one node per 10 chunk-bucketed routes, 2 leaves per route.
    const n = this.rib.size;
    this.writer = new PoptrieWriter(1024 + (n >>> 2), 4096 + n * 2);
    const inh = this.inherited;
    inh.fill(NO_ROUTE);
    this.rib.forEachShort((first, span, nh) => inh.fill(nh, first, first + span));
    const dir = new Int32Array(CHUNKS);
    for (let c = 0; c < CHUNKS; c++) dir[c] = dirLeaf(inh[c]);
    for (const c of this.rib.chunks.keys()) dir[c] = this.compileChunk(c);
    const w = this.writer;
    // Trim to the used size plus 1/8 headroom for incremental updates.
    w.nodes = w.nodes.slice(0, w.nodeCount * 8 + ((w.nodeCount >>> 3) + 16) * 8);
    w.leaves = w.leaves.slice(0, w.leafCount + (w.leafCount >>> 3) + 64);
    return new Fib4(dir, w.nodes, w.leaves);
  }

  /** Returns the dir entry for chunk `c`: a leaf, or the root of a freshly built subtree. */
  private compileChunk(c: number): number {
    const bucket = this.rib.chunks.get(c);
    const inherited = this.inherited[c];
    if (!bucket) return dirLeaf(inherited);
    const n = bucket.size;
    if (this.keyScratch.length < n) this.keyScratch = new Float64Array(Math.max(n, this.keyScratch.length * 2));
    const keys = this.keyScratch.subarray(0, n);
    let i = 0;
    // key (18 bits: address bits, then length) * 2^16 + nh sorts by address then length.
    for (const [k, nh] of bucket) keys[i++] = k * 65536 + nh;
    keys.sort();
    // A lone /18 covers the whole chunk: no subtree needed.
    if (n === 1 && Math.floor(keys[0] / 65536) === 0) return dirLeaf(keys[0] % 65536);
    const p = this.scratch;
    p.reset(n);
    const base = c << LOW_BITS;
    for (i = 0; i < n; i++) {
      const kv = keys[i];
      const k = Math.floor(kv / 65536);
      p.words[i] = base | (k >>> 4);
      p.lens[i] = (k & 15) + CHUNK_BITS4;
      p.nhs[i] = kv - k * 65536;
    }
    p.count = n;
    return this.writer.buildChunk(p, CHUNK_BITS4, inherited);
  }
}
