// RouteTable6: an IPv6 RIB plus the FIB compiled from it, updated in batches. Same scheme as
// RouteTable4 (see route-table4.ts): touched /16 chunks are rebuilt into fresh subtrees appended
// to the shared arrays, the 256 KiB dir is copied, and the published FIB is never mutated.

import { formatCidr6, parseCidr6 } from './cidr';
import { NO_ROUTE, checkNextHop } from './constants';
import { Fib6 } from './fib6';
import { dirLeaf } from './poptrie-layout';
import { ChunkPrefixes, PoptrieWriter } from './poptrie-writer';
import { CHUNK_BITS6, Rib6, Route6, checkPrefix6 } from './rib6';

const CHUNKS = 1 << CHUNK_BITS6;

export type RouteChange6 =
  | { op: 'set'; w: readonly number[]; len: number; nh: number }
  | { op: 'delete'; w: readonly number[]; len: number };

/** Convenience constructor of a change from CIDR text: nh given = set, nh omitted = delete. */
export function change6(cidr: string, nh?: number): RouteChange6 {
  const c = parseCidr6(cidr);
  return nh === undefined ? { op: 'delete', w: c.w, len: c.len } : { op: 'set', w: c.w, len: c.len, nh };
}

function compareRoutes(a: Route6, b: Route6): number {
  for (let i = 0; i < 4; i++) if (a.w[i] !== b.w[i]) return a.w[i] - b.w[i];
  return a.len - b.len;
}

export class RouteTable6 {
  readonly rib = new Rib6();
  private writer = new PoptrieWriter();
  private readonly inherited = new Uint16Array(CHUNKS).fill(NO_ROUTE);
  private readonly scratch = new ChunkPrefixes(4);
  private readonly touched = new Uint8Array(CHUNKS);
  private touchedList: number[] = [];
  private current: Fib6;
  fullRebuilds = 0;

  constructor(routes?: Iterable<Route6>) {
    if (routes) for (const r of routes) this.rib.insert(r.w, r.len, r.nh);
    this.current = this.compileAll();
  }

  get fib(): Fib6 {
    return this.current;
  }

  lookup(w0: number, w1: number, w2: number, w3: number): number {
    return this.current.lookup(w0, w1, w2, w3);
  }

  /** Like RouteTable4.applyBatch: validated first (all or nothing), then touched chunks rebuilt. */
  applyBatch(changes: Iterable<RouteChange6>): Fib6 {
    const batch = Array.isArray(changes) ? (changes as RouteChange6[]) : [...changes];
    for (const ch of batch) {
      if (ch.op !== 'set' && ch.op !== 'delete') {
        throw new Error(`invalid route change op ${JSON.stringify((ch as { op: unknown }).op)}`);
      }
      checkPrefix6(ch.w, ch.len);
      if (ch.op === 'set') checkNextHop(ch.nh, formatCidr6(ch.w, ch.len));
    }
    const list = this.touchedList;
    list.length = 0;
    let full = false;
    const touch = (c: number) => {
      if (!this.touched[c]) {
        this.touched[c] = 1;
        list.push(c);
      }
    };
    for (const ch of batch) {
      if (ch.op === 'set') this.rib.insert(ch.w, ch.len, ch.nh);
      else this.rib.delete(ch.w, ch.len);
      if (full) continue;
      if (ch.len >= CHUNK_BITS6) {
        touch(ch.w[0] >>> (32 - CHUNK_BITS6));
      } else if (ch.len < 4) {
        full = true;
      } else {
        const span = 1 << (CHUNK_BITS6 - ch.len);
        const first = ch.w[0] >>> (32 - CHUNK_BITS6);
        for (let c = first; c < first + span; c++) touch(c);
      }
    }
    if (!full) for (const c of list) this.inherited[c] = this.rib.shortCover(c);
    const w = this.writer;
    if (full || w.garbageNodes * 2 > w.nodeCount || w.garbageLeaves * 2 > w.leafCount) {
      for (const c of list) this.touched[c] = 0;
      this.current = this.compileAll();
      return this.current;
    }
    const dir = this.current.dir.slice();
    for (const c of list) {
      this.touched[c] = 0;
      if (dir[c] >= 0) w.discardSubtree(dir[c]);
      dir[c] = this.compileChunk(c);
    }
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

  private compileAll(): Fib6 {
    this.fullRebuilds++;
    const n = this.rib.size;
    this.writer = new PoptrieWriter(1024 + n, 4096 + n * 4);
    const inh = this.inherited;
    inh.fill(NO_ROUTE);
    this.rib.forEachShort((first, span, nh) => inh.fill(nh, first, first + span));
    const dir = new Int32Array(CHUNKS);
    for (let c = 0; c < CHUNKS; c++) dir[c] = dirLeaf(inh[c]);
    for (const c of this.rib.chunks.keys()) dir[c] = this.compileChunk(c);
    const w = this.writer;
    w.nodes = w.nodes.slice(0, w.nodeCount * 8 + ((w.nodeCount >>> 3) + 16) * 8);
    w.leaves = w.leaves.slice(0, w.leafCount + (w.leafCount >>> 3) + 64);
    return new Fib6(dir, w.nodes, w.leaves);
  }

  private compileChunk(c: number): number {
    const bucket = this.rib.chunks.get(c);
    const inherited = this.inherited[c];
    if (!bucket) return dirLeaf(inherited);
    const routes = [...bucket.values()].sort(compareRoutes);
    if (routes.length === 1 && routes[0].len === CHUNK_BITS6) return dirLeaf(routes[0].nh);
    const p = this.scratch;
    p.reset(routes.length);
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i];
      p.words[i * 4] = r.w[0];
      p.words[i * 4 + 1] = r.w[1];
      p.words[i * 4 + 2] = r.w[2];
      p.words[i * 4 + 3] = r.w[3];
      p.lens[i] = r.len;
      p.nhs[i] = r.nh;
    }
    p.count = routes.length;
    return this.writer.buildChunk(p, CHUNK_BITS6, inherited);
  }
}
