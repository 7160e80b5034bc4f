// IPv6 RIB: the mutable source of truth for the IPv6 routes (prefix -> next-hop index).
//
// Like Rib4, prefixes of at least CHUNK_BITS6 bits are bucketed by their direct chunk (the top
// 16 bits) so the FIB compiler can rebuild one chunk from one bucket; shorter prefixes live in
// one map per length. A 128-bit prefix is four unsigned 32-bit words, most significant first.

import { formatCidr6, mask32, parseCidr6 } from './cidr';
import { NO_ROUTE, checkNextHop } from './constants';

export const CHUNK_BITS6 = 16;

export interface Route6 {
  w: readonly number[]; // four unsigned words
  len: number;
  nh: number;
}

export function checkPrefix6(w: readonly number[], len: number): void {
  if (!Number.isInteger(len) || len < 0 || len > 128) {
    throw new Error(`invalid IPv6 prefix length ${len}: out of range 0..128`);
  }
  if (!w || w.length !== 4 || w.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffffffff)) {
    throw new Error(`invalid IPv6 address [${w}]/${len}: expected four unsigned 32-bit words`);
  }
  for (let i = 0; i < 4; i++) {
    if ((w[i] & ~mask32(len - 32 * i)) !== 0) {
      throw new Error(`invalid IPv6 prefix ${formatCidr6(w, len)}: host bits are set`);
    }
  }
}

function keyOf(w: readonly number[], len: number): string {
  return `${w[0]},${w[1]},${w[2]},${w[3]}/${len}`;
}

function shortKey(w0: number, len: number): number {
  return len === 0 ? 0 : w0 >>> (32 - len);
}

export class Rib6 {
  private readonly short: Map<number, number>[] = [];
  /** Chunk index (w0 >>> 16) -> (text key -> route) for prefixes of CHUNK_BITS6..128 bits. */
  readonly chunks = new Map<number, Map<string, Route6>>();
  private count = 0;

  constructor() {
    for (let len = 0; len < CHUNK_BITS6; len++) this.short.push(new Map());
  }

  get size(): number {
    return this.count;
  }

  /** Adds or replaces a route; returns the previous next hop, or NO_ROUTE if it was new. */
  insert(w: readonly number[], len: number, nh: number): number {
    checkPrefix6(w, len);
    checkNextHop(nh, formatCidr6(w, len));
    let prev: number | undefined;
    if (len < CHUNK_BITS6) {
      const m = this.short[len];
      const k = shortKey(w[0], len);
      prev = m.get(k);
      m.set(k, nh);
    } else {
      const chunk = w[0] >>> (32 - CHUNK_BITS6);
      let m = this.chunks.get(chunk);
      if (!m) this.chunks.set(chunk, (m = new Map()));
      const k = keyOf(w, len);
      prev = m.get(k)?.nh;
      m.set(k, { w: [w[0], w[1], w[2], w[3]], len, nh });
    }
    if (prev === undefined) this.count++;
    return prev === undefined ? NO_ROUTE : prev;
  }

  delete(w: readonly number[], len: number): boolean {
    checkPrefix6(w, len);
    let ok: boolean;
    if (len < CHUNK_BITS6) {
      ok = this.short[len].delete(shortKey(w[0], len));
    } else {
      const chunk = w[0] >>> (32 - CHUNK_BITS6);
      const m = this.chunks.get(chunk);
      ok = !!m && m.delete(keyOf(w, len));
      if (ok && m!.size === 0) this.chunks.delete(chunk);
    }
    if (ok) this.count--;
    return ok;
  }

  get(w: readonly number[], len: number): number | undefined {
    checkPrefix6(w, len);
    if (len < CHUNK_BITS6) return this.short[len].get(shortKey(w[0], len));
    return this.chunks.get(w[0] >>> (32 - CHUNK_BITS6))?.get(keyOf(w, len))?.nh;
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
    for (const m of this.chunks.values()) for (const r of m.values()) yield { w: r.w.slice(), len: r.len, nh: r.nh };
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
}
