// IPv6 RIB: the mutable source of truth for the IPv6 routes (prefix -> next-hop index).
//
// Indexed the way the FIB compiler consumes it, in sorted typed-array lists (no strings, no
// per-route objects, no sorting at compile time):
// * prefixes shorter than CHUNK_BITS6 (/16, the direct-pointing unit): one Map per length;
// * /16../22 (they end in the first 6-bit stride below the dir): one sorted list per /16 chunk;
// * /23 and longer: one sorted list per /22 "slot" (chunk and first-stride slot), so an update
//   shifts a few hundred entries at most, and the compiler can rebuild only the first-level
//   subtrees (slots) a batch touched (see route-table6.ts).

import { formatCidr6, mask32, parseCidr6 } from './cidr';
import { MAX_NEXT_HOP, NO_ROUTE, checkNextHop } from './constants';

export const CHUNK_BITS6 = 16;
/** Prefixes longer than this are listed per slot (/22); /16 up to this long, per chunk. */
export const SLOT_BITS6 = CHUNK_BITS6 + 6;

export interface Route6 {
  w: readonly number[]; // four unsigned words
  len: number;
  nh: number;
}

/** Per prefix length 0..128, its mask as four int32 words (validation and the patcher's searches). */
export const MASK6 = new Int32Array(4 * 129);
for (let len = 0; len <= 128; len++) for (let k = 0; k < 4; k++) MASK6[4 * len + k] = mask32(len - 32 * k);

export function checkPrefix6(w: readonly number[], len: number): void {
  // (x >>> 0) === x holds exactly for the integers 0..2^32-1. This runs once per change of an
  // update batch, so it stays branch-light and allocation-free.
  if ((len >>> 0) !== len || len > 128) {
    throw new Error(`invalid IPv6 prefix length ${len}: out of range 0..128`);
  }
  if (!w || w.length !== 4 || (w[0] >>> 0) !== w[0] || (w[1] >>> 0) !== w[1] || (w[2] >>> 0) !== w[2] || (w[3] >>> 0) !== w[3]) {
    throw new Error(`invalid IPv6 address [${w}]/${len}: expected four unsigned 32-bit words`);
  }
  const m = 4 * len;
  if (((w[0] & ~MASK6[m]) | (w[1] & ~MASK6[m + 1]) | (w[2] & ~MASK6[m + 2]) | (w[3] & ~MASK6[m + 3])) !== 0) {
    throw new Error(`invalid IPv6 prefix ${formatCidr6(w, len)}: host bits are set`);
  }
}

/** Validates a next hop, formatting the prefix only when it is invalid. */
export function checkNextHop6(nh: number, w: readonly number[], len: number): void {
  if (!(nh >= 0 && nh <= MAX_NEXT_HOP && (nh | 0) === nh)) checkNextHop(nh, formatCidr6(w, len));
}

function shortKey(w0: number, len: number): number {
  return len === 0 ? 0 : w0 >>> (32 - len);
}

/**
 * The order of every sorted IPv6 prefix list (RIB lists, the writer's ChunkPrefixes): the first
 * index in [lo, hi) whose (address w0:w1:w2:w3 compared unsigned, length) is >= the given one.
 * `words` holds 4 words per entry.
 */
export function lowerBound6(words: Int32Array, lens: Uint8Array, lo: number, hi: number,
  w0: number, w1: number, w2: number, w3: number, len: number): number {
  const a0 = w0 >>> 0;
  const a1 = w1 >>> 0;
  const a2 = w2 >>> 0;
  const a3 = w3 >>> 0;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    const o = 4 * m;
    let less: boolean;
    const x0 = words[o] >>> 0;
    if (x0 !== a0) less = x0 < a0;
    else {
      const x1 = words[o + 1] >>> 0;
      if (x1 !== a1) less = x1 < a1;
      else {
        const x2 = words[o + 2] >>> 0;
        if (x2 !== a2) less = x2 < a2;
        else {
          const x3 = words[o + 3] >>> 0;
          less = x3 !== a3 ? x3 < a3 : lens[m] < len;
        }
      }
    }
    if (less) lo = m + 1;
    else hi = m;
  }
  return lo;
}

/** A sorted list of prefixes (by address, then length): 4 words, length and next hop each. */
export class PrefixList6 {
  n = 0;
  words: Int32Array;
  lens: Uint8Array;
  nhs: Uint16Array;

  constructor(cap = 4) {
    this.words = new Int32Array(cap * 4);
    this.lens = new Uint8Array(cap);
    this.nhs = new Uint16Array(cap);
  }

  // The address is passed as four words (unsigned or int32), not an array: callers hold it in
  // whatever they have (a route's array, a batch's typed array), and one array type seen here
  // keeps these functions monomorphic.

  /** First index whose (address, length) is >= (w0:w1:w2:w3, len). */
  search(w0: number, w1: number, w2: number, w3: number, len: number): number {
    return lowerBound6(this.words, this.lens, 0, this.n, w0, w1, w2, w3, len);
  }

  private equalAt(i: number, w0: number, w1: number, w2: number, w3: number, len: number): boolean {
    const o = i * 4;
    const W = this.words;
    return i < this.n && this.lens[i] === len && W[o] === (w0 | 0) && W[o + 1] === (w1 | 0) &&
      W[o + 2] === (w2 | 0) && W[o + 3] === (w3 | 0);
  }

  get(w0: number, w1: number, w2: number, w3: number, len: number): number | undefined {
    const i = this.search(w0, w1, w2, w3, len);
    return this.equalAt(i, w0, w1, w2, w3, len) ? this.nhs[i] : undefined;
  }

  /** Inserts or replaces; returns the previous next hop or NO_ROUTE. */
  set(w0: number, w1: number, w2: number, w3: number, len: number, nh: number): number {
    const i = this.search(w0, w1, w2, w3, len);
    if (this.equalAt(i, w0, w1, w2, w3, len)) {
      const prev = this.nhs[i];
      this.nhs[i] = nh;
      return prev;
    }
    const n = this.n;
    if (n === this.lens.length) {
      const cap = n * 2;
      const words = new Int32Array(cap * 4);
      words.set(this.words);
      const lens = new Uint8Array(cap);
      lens.set(this.lens);
      const nhs = new Uint16Array(cap);
      nhs.set(this.nhs);
      this.words = words;
      this.lens = lens;
      this.nhs = nhs;
    }
    this.words.copyWithin(4 * i + 4, 4 * i, 4 * n);
    this.lens.copyWithin(i + 1, i, n);
    this.nhs.copyWithin(i + 1, i, n);
    const o = 4 * i;
    this.words[o] = w0;
    this.words[o + 1] = w1;
    this.words[o + 2] = w2;
    this.words[o + 3] = w3;
    this.lens[i] = len;
    this.nhs[i] = nh;
    this.n = n + 1;
    return NO_ROUTE;
  }

  delete(w0: number, w1: number, w2: number, w3: number, len: number): boolean {
    const i = this.search(w0, w1, w2, w3, len);
    if (!this.equalAt(i, w0, w1, w2, w3, len)) return false;
    const n = this.n;
    this.words.copyWithin(4 * i, 4 * i + 4, 4 * n);
    this.lens.copyWithin(i, i + 1, n);
    this.nhs.copyWithin(i, i + 1, n);
    this.n = n - 1;
    return true;
  }
}

export class Rib6 {
  private readonly short: Map<number, number>[] = [];
  private shortCount = 0;
  /** Chunk (w0 >>> 16) -> its /16../22 prefixes. */
  readonly roots = new Map<number, PrefixList6>();
  /** Slot (w0 >>> 10) -> its /23../128 prefixes. */
  readonly slots = new Map<number, PrefixList6>();
  /** Per chunk, the number of prefixes of CHUNK_BITS6 bits or more in it. */
  readonly chunkCount = new Int32Array(1 << CHUNK_BITS6);
  private longCount = 0;

  constructor() {
    for (let len = 0; len < CHUNK_BITS6; len++) this.short.push(new Map());
  }

  get size(): number {
    return this.shortCount + this.longCount;
  }

  /** Adds or replaces a route; returns the previous next hop, or NO_ROUTE if it was new. */
  insert(w: readonly number[], len: number, nh: number): number {
    checkPrefix6(w, len);
    checkNextHop6(nh, w, len);
    return this.put(w[0], w[1], w[2], w[3], len, nh);
  }

  /**
   * insert() without validation, for a caller that validated the route (a whole batch first),
   * the address as four words.
   */
  put(w0: number, w1: number, w2: number, w3: number, len: number, nh: number): number {
    if (len < CHUNK_BITS6) {
      const m = this.short[len];
      const k = shortKey(w0, len);
      const prev = m.get(k);
      m.set(k, nh);
      if (prev === undefined) this.shortCount++;
      return prev === undefined ? NO_ROUTE : prev;
    }
    const list = this.listFor(w0, len, true)!;
    const prev = list.set(w0, w1, w2, w3, len, nh);
    if (prev === NO_ROUTE) {
      this.longCount++;
      this.chunkCount[w0 >>> (32 - CHUNK_BITS6)]++;
    }
    return prev;
  }

  delete(w: readonly number[], len: number): boolean {
    checkPrefix6(w, len);
    return this.remove(w[0], w[1], w[2], w[3], len);
  }

  /** delete() without validation, for a caller that validated the prefix (four words). */
  remove(w0: number, w1: number, w2: number, w3: number, len: number): boolean {
    if (len < CHUNK_BITS6) {
      const ok = this.short[len].delete(shortKey(w0, len));
      if (ok) this.shortCount--;
      return ok;
    }
    const list = this.listFor(w0, len, false);
    if (!list || !list.delete(w0, w1, w2, w3, len)) return false;
    this.longCount--;
    this.chunkCount[w0 >>> (32 - CHUNK_BITS6)]--;
    if (list.n === 0) {
      if (len <= SLOT_BITS6) this.roots.delete(w0 >>> (32 - CHUNK_BITS6));
      else this.slots.delete(w0 >>> (32 - SLOT_BITS6));
    }
    return true;
  }

  get(w: readonly number[], len: number): number | undefined {
    checkPrefix6(w, len);
    if (len < CHUNK_BITS6) return this.short[len].get(shortKey(w[0], len));
    return this.listFor(w[0], len, false)?.get(w[0], w[1], w[2], w[3], len);
  }

  insertCidr(cidr: string, nh: number): number {
    const c = parseCidr6(cidr);
    return this.insert(c.w, c.len, nh);
  }

  deleteCidr(cidr: string): boolean {
    const c = parseCidr6(cidr);
    return this.delete(c.w, c.len);
  }

  /** All routes, in no particular order. */
  *entries(): IterableIterator<Route6> {
    for (let len = 0; len < CHUNK_BITS6; len++) {
      for (const [k, nh] of this.short[len]) yield { w: [len === 0 ? 0 : k * 2 ** (32 - len), 0, 0, 0], len, nh };
    }
    for (const lists of [this.roots, this.slots]) {
      for (const l of lists.values()) {
        for (let i = 0; i < l.n; i++) {
          const o = 4 * i;
          yield { w: [l.words[o] >>> 0, l.words[o + 1] >>> 0, l.words[o + 2] >>> 0, l.words[o + 3] >>> 0], len: l.lens[i], nh: l.nhs[i] };
        }
      }
    }
  }

  /** Next hop of the longest prefix shorter than CHUNK_BITS6 covering `chunk` (or NO_ROUTE). */
  shortCover(chunk: number): number {
    for (let len = CHUNK_BITS6 - 1; len >= 0; len--) {
      const m = this.short[len];
      if (m.size === 0) continue;
      const nh = m.get(len === 0 ? 0 : chunk >>> (CHUNK_BITS6 - len));
      if (nh !== undefined) return nh;
    }
    return NO_ROUTE;
  }

  forEachShort(fn: (firstChunk: number, chunkCount: number, nh: number) => void): void {
    for (let len = 0; len < CHUNK_BITS6; len++) {
      const span = 1 << (CHUNK_BITS6 - len);
      for (const [k, nh] of this.short[len]) fn(len === 0 ? 0 : k * span, span, nh);
    }
  }

  private listFor(w0: number, len: number, create: boolean): PrefixList6 | undefined {
    const map = len <= SLOT_BITS6 ? this.roots : this.slots;
    const key = w0 >>> (32 - (len <= SLOT_BITS6 ? CHUNK_BITS6 : SLOT_BITS6));
    let l = map.get(key);
    if (!l && create) map.set(key, (l = new PrefixList6()));
    return l;
  }
}
