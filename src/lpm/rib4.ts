// IPv4 RIB: the mutable source of truth for the IPv4 routes (prefix -> next-hop index).
//
// Routes are indexed the way the FIB compiler consumes them: prefixes of at least CHUNK_BITS4
// bits are kept per /18 chunk (the FIB's direct-pointing unit) in a *sorted* run of an arena
// (two typed arrays: 18-bit in-chunk keys and next hops), so rebuilding one chunk reads one
// already sorted run, with no sorting and no allocation. A run grows by moving to the end of the
// arena with twice the capacity; the arena is compacted when more than half of it is abandoned
// runs. Shorter prefixes, which span several chunks, live in one Map per length.
//
// bulkLoad() builds the arena from a route list in one pass: an LSD radix sort (three 12-bit
// digits, stable, so for duplicate prefixes the last one wins exactly as with insert()).

import { Cidr4, formatCidr4, mask32, parseCidr4 } from './cidr';
import { MAX_NEXT_HOP, NO_ROUTE, checkNextHop } from './constants';

export const CHUNK_BITS4 = 18;
const CHUNKS = 1 << CHUNK_BITS4;
const LOW_BITS = 32 - CHUNK_BITS4; // address bits inside a chunk

export interface Route4 {
  addr: number;
  len: number;
  nh: number;
}

/** Throws unless (addr, len) is a valid IPv4 prefix with no host bits set. */
export function checkPrefix4(addr: number, len: number): void {
  if (!Number.isInteger(len) || len < 0 || len > 32) {
    throw new Error(`invalid IPv4 prefix length ${len} (address ${addr}): out of range 0..32`);
  }
  if (!Number.isInteger(addr) || addr < 0 || addr > 0xffffffff) {
    throw new Error(`invalid IPv4 address ${addr}/${len}: not an unsigned 32-bit integer`);
  }
  if ((addr & ~mask32(len)) !== 0) {
    throw new Error(`invalid IPv4 prefix ${formatCidr4(addr, len)}: host bits are set`);
  }
}

/** Validates a next hop, formatting the prefix only when it is invalid. */
export function checkNextHop4(nh: number, addr: number, len: number): void {
  if (!(nh >= 0 && nh <= MAX_NEXT_HOP && (nh | 0) === nh)) checkNextHop(nh, formatCidr4(addr, len));
}

/**
 * Key of a prefix of at least CHUNK_BITS4 bits inside its chunk: address bits then length, so
 * keys sort by address and then length (a covering prefix before the ones nested in it).
 */
export function chunkKey(addr: number, len: number): number {
  return ((addr & ((1 << LOW_BITS) - 1)) << 4) | (len - CHUNK_BITS4);
}

function shortKey(addr: number, len: number): number {
  return len === 0 ? 0 : addr >>> (32 - len);
}

export class Rib4 {
  /** Prefixes shorter than CHUNK_BITS4, one map per length: (addr >>> (32 - len)) -> nh. */
  private readonly short: Map<number, number>[] = [];
  private shortCount = 0;
  /** Per chunk: start, length and capacity of its sorted run in the arena. */
  readonly runOff = new Int32Array(CHUNKS);
  readonly runLen = new Int32Array(CHUNKS);
  private readonly runCap = new Int32Array(CHUNKS);
  /** Arena: in-chunk keys (see chunkKey) and next hops; runs are sorted by key. */
  keys = new Int32Array(1024);
  nhs = new Uint16Array(1024);
  private used = 0;
  private abandoned = 0;
  private longCount = 0;

  constructor() {
    for (let len = 0; len < CHUNK_BITS4; len++) this.short.push(new Map());
  }

  get size(): number {
    return this.shortCount + this.longCount;
  }

  /** Adds or replaces a route; returns the previous next hop, or NO_ROUTE if it was new. */
  insert(addr: number, len: number, nh: number): number {
    checkPrefix4(addr, len);
    checkNextHop4(nh, addr, len);
    if (len < CHUNK_BITS4) {
      const m = this.short[len];
      const k = shortKey(addr, len);
      const prev = m.get(k);
      m.set(k, nh);
      if (prev === undefined) this.shortCount++;
      return prev === undefined ? NO_ROUTE : prev;
    }
    const c = addr >>> LOW_BITS;
    const k = chunkKey(addr, len);
    const off = this.runOff[c];
    const n = this.runLen[c];
    const at = this.search(off, n, k);
    if (at < off + n && this.keys[at] === k) {
      const prev = this.nhs[at];
      this.nhs[at] = nh;
      return prev;
    }
    if (n === this.runCap[c]) this.relocate(c, n < 2 ? 4 : n * 2);
    const o = this.runOff[c]; // may have moved
    const pos = o + (at - off);
    this.keys.copyWithin(pos + 1, pos, o + n);
    this.nhs.copyWithin(pos + 1, pos, o + n);
    this.keys[pos] = k;
    this.nhs[pos] = nh;
    this.runLen[c] = n + 1;
    this.longCount++;
    return NO_ROUTE;
  }

  /** Removes a route; returns whether it existed. */
  delete(addr: number, len: number): boolean {
    checkPrefix4(addr, len);
    if (len < CHUNK_BITS4) {
      if (!this.short[len].delete(shortKey(addr, len))) return false;
      this.shortCount--;
      return true;
    }
    const c = addr >>> LOW_BITS;
    const k = chunkKey(addr, len);
    const off = this.runOff[c];
    const n = this.runLen[c];
    const at = this.search(off, n, k);
    if (at === off + n || this.keys[at] !== k) return false;
    this.keys.copyWithin(at, at + 1, off + n);
    this.nhs.copyWithin(at, at + 1, off + n);
    this.runLen[c] = n - 1;
    this.longCount--;
    return true;
  }

  /** Exact-match get: the next hop of exactly this prefix, or undefined. */
  get(addr: number, len: number): number | undefined {
    checkPrefix4(addr, len);
    if (len < CHUNK_BITS4) return this.short[len].get(shortKey(addr, len));
    const c = addr >>> LOW_BITS;
    const k = chunkKey(addr, len);
    const off = this.runOff[c];
    const n = this.runLen[c];
    const at = this.search(off, n, k);
    return at < off + n && this.keys[at] === k ? this.nhs[at] : undefined;
  }

  insertCidr(cidr: string, nh: number): number {
    const c: Cidr4 = parseCidr4(cidr);
    return this.insert(c.addr, c.len, nh);
  }

  deleteCidr(cidr: string): boolean {
    const c = parseCidr4(cidr);
    return this.delete(c.addr, c.len);
  }

  /**
   * Inserts many routes at once. Into an empty RIB this sorts them in one radix pass and lays the
   * chunk runs out contiguously (no per-route search or shifting); otherwise it inserts one by one.
   * Duplicate prefixes: the last one wins, as with insert(). Validates everything before changing
   * anything.
   */
  bulkLoad(routes: Iterable<Route4>): void {
    const list = Array.isArray(routes) ? (routes as Route4[]) : [...routes];
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
      checkPrefix4(r.addr, r.len);
      checkNextHop4(r.nh, r.addr, r.len);
    }
    if (this.size !== 0) {
      for (let i = 0; i < list.length; i++) this.insert(list[i].addr, list[i].len, list[i].nh);
      return;
    }
    // Long prefixes as (address, lenOff << 16 | nh) pairs, then a stable LSD radix sort on the
    // 36-bit (address << 4 | lenOff) in three 12-bit digits, moving the pairs themselves.
    let n = 0;
    for (let i = 0; i < list.length; i++) if (list[i].len >= CHUNK_BITS4) n++;
    let A = new Int32Array(n);
    let B = new Int32Array(n);
    let j = 0;
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
      if (r.len < CHUNK_BITS4) {
        const m = this.short[r.len];
        const k = shortKey(r.addr, r.len);
        if (!m.has(k)) this.shortCount++;
        m.set(k, r.nh);
        continue;
      }
      A[j] = r.addr | 0;
      B[j++] = ((r.len - CHUNK_BITS4) << 16) | r.nh;
    }
    let A2 = new Int32Array(n);
    let B2 = new Int32Array(n);
    const c0 = new Int32Array(4096);
    const c1 = new Int32Array(4096);
    const c2 = new Int32Array(4096);
    for (let i = 0; i < n; i++) {
      const a = A[i];
      c0[((a & 0xff) << 4) | (B[i] >>> 16)]++;
      c1[(a >>> 8) & 0xfff]++;
      c2[a >>> 20]++;
    }
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    for (let d = 0; d < 4096; d++) {
      const x0 = c0[d]; c0[d] = s0; s0 += x0;
      const x1 = c1[d]; c1[d] = s1; s1 += x1;
      const x2 = c2[d]; c2[d] = s2; s2 += x2;
    }
    for (let i = 0; i < n; i++) {
      const a = A[i];
      const b = B[i];
      const at = c0[((a & 0xff) << 4) | (b >>> 16)]++;
      A2[at] = a;
      B2[at] = b;
    }
    for (let i = 0; i < n; i++) {
      const a = A2[i];
      const at = c1[(a >>> 8) & 0xfff]++;
      A[at] = a;
      B[at] = B2[i];
    }
    for (let i = 0; i < n; i++) {
      const a = A[i];
      const at = c2[a >>> 20]++;
      A2[at] = a;
      B2[at] = B[i];
    }
    A = A2;
    B = B2;
    // Lay the runs out in sorted order; for equal prefixes keep the last (stable sort).
    const keys = new Int32Array(Math.max(1024, n));
    const nhs = new Uint16Array(Math.max(1024, n));
    let w = 0;
    let prevC = -1;
    let prevK = -1;
    for (let i = 0; i < n; i++) {
      const a = A[i];
      const b = B[i];
      const c = a >>> LOW_BITS;
      const k = ((a & ((1 << LOW_BITS) - 1)) << 4) | (b >>> 16);
      if (c === prevC && k === prevK) {
        nhs[w - 1] = b & 0xffff;
        continue;
      }
      if (c !== prevC) {
        if (prevC >= 0) this.runCap[prevC] = this.runLen[prevC] = w - this.runOff[prevC];
        this.runOff[c] = w;
        prevC = c;
      }
      prevK = k;
      keys[w] = k;
      nhs[w++] = b & 0xffff;
    }
    if (prevC >= 0) this.runCap[prevC] = this.runLen[prevC] = w - this.runOff[prevC];
    this.keys = keys;
    this.nhs = nhs;
    this.used = w;
    this.abandoned = 0;
    this.longCount = w;
  }

  /** All routes, in no particular order. */
  *entries(): IterableIterator<Route4> {
    for (let len = 0; len < CHUNK_BITS4; len++) {
      for (const [k, nh] of this.short[len]) yield { addr: len === 0 ? 0 : (k * 2 ** (32 - len)), len, nh };
    }
    for (let c = 0; c < CHUNKS; c++) {
      const off = this.runOff[c];
      for (let i = off; i < off + this.runLen[c]; i++) {
        const k = this.keys[i];
        yield { addr: (c * 2 ** LOW_BITS) + (k >>> 4), len: (k & 15) + CHUNK_BITS4, nh: this.nhs[i] };
      }
    }
  }

  /** Next hop of the longest prefix shorter than CHUNK_BITS4 covering `chunk` (or NO_ROUTE). */
  shortCover(chunk: number): number {
    for (let len = CHUNK_BITS4 - 1; len >= 0; len--) {
      const m = this.short[len];
      if (m.size === 0) continue;
      const nh = m.get(len === 0 ? 0 : chunk >>> (CHUNK_BITS4 - len));
      if (nh !== undefined) return nh;
    }
    return NO_ROUTE;
  }

  /**
   * Writes into out[first .. first + 2^(18 - len)) the next hop each of those chunks inherits
   * from the prefixes shorter than CHUNK_BITS4 (the span of a short prefix of length `len`).
   */
  fillCover(first: number, len: number, out: Uint16Array): void {
    const span = 1 << (CHUNK_BITS4 - len);
    let v = NO_ROUTE;
    for (let l = len - 1; l >= 0; l--) {
      const m = this.short[l];
      if (m.size === 0) continue;
      const nh = m.get(l === 0 ? 0 : first >>> (CHUNK_BITS4 - l));
      if (nh !== undefined) { v = nh; break; }
    }
    out.fill(v, first, first + span);
    // Then paint the prefixes of length len..17 inside the span, shortest first.
    for (let l = len; l < CHUNK_BITS4; l++) {
      const m = this.short[l];
      if (m.size === 0) continue;
      const sh = CHUNK_BITS4 - l;
      const k0 = l === 0 ? 0 : first >>> sh;
      const cnt = 1 << (l - len);
      if (m.size < cnt) {
        for (const [k, nh] of m) if (k >= k0 && k < k0 + cnt) out.fill(nh, k << sh, (k + 1) << sh);
      } else {
        for (let k = k0; k < k0 + cnt; k++) {
          const nh = m.get(k);
          if (nh !== undefined) out.fill(nh, k << sh, (k + 1) << sh);
        }
      }
    }
  }

  /** Calls fn(firstChunk, chunkCount, nh) for every short prefix, shortest length first. */
  forEachShort(fn: (firstChunk: number, chunkCount: number, nh: number) => void): void {
    for (let len = 0; len < CHUNK_BITS4; len++) {
      const span = 1 << (CHUNK_BITS4 - len);
      for (const [k, nh] of this.short[len]) fn(len === 0 ? 0 : k * span, span, nh);
    }
  }

  /** First index in [off, off + n) whose key is >= k. */
  private search(off: number, n: number, k: number): number {
    let a = off;
    let b = off + n;
    const keys = this.keys;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (keys[m] < k) a = m + 1;
      else b = m;
    }
    return a;
  }

  /** Moves chunk c's run to the end of the arena with capacity `cap` (compacting if worthwhile). */
  private relocate(c: number, cap: number): void {
    const n = this.runLen[c];
    if (this.abandoned > 4096 && this.abandoned * 2 > this.used) this.compact();
    if (this.used + cap > this.keys.length) {
      const size = Math.max(this.used + cap, this.keys.length * 2);
      const keys = new Int32Array(size);
      keys.set(this.keys.subarray(0, this.used));
      const nhs = new Uint16Array(size);
      nhs.set(this.nhs.subarray(0, this.used));
      this.keys = keys;
      this.nhs = nhs;
    }
    const from = this.runOff[c];
    this.keys.copyWithin(this.used, from, from + n);
    this.nhs.copyWithin(this.used, from, from + n);
    this.abandoned += this.runCap[c];
    this.runOff[c] = this.used;
    this.runCap[c] = cap;
    this.used += cap;
  }

  /** Rewrites the arena with every run at its length plus a little slack. */
  private compact(): void {
    let total = 0;
    for (let c = 0; c < CHUNKS; c++) if (this.runLen[c]) total += this.runLen[c] + 2;
    const keys = new Int32Array(Math.max(1024, total * 2));
    const nhs = new Uint16Array(keys.length);
    let w = 0;
    for (let c = 0; c < CHUNKS; c++) {
      const n = this.runLen[c];
      if (!n) {
        this.runOff[c] = 0;
        this.runCap[c] = 0;
        continue;
      }
      const off = this.runOff[c];
      keys.set(this.keys.subarray(off, off + n), w);
      nhs.set(this.nhs.subarray(off, off + n), w);
      this.runOff[c] = w;
      this.runCap[c] = n + 2;
      w += n + 2;
    }
    this.keys = keys;
    this.nhs = nhs;
    this.used = w;
    this.abandoned = 0;
  }
}
