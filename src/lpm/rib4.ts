// IPv4 RIB: the mutable source of truth for the IPv4 routes (prefix -> next-hop index).
//
// Routes are indexed the way the FIB compiler consumes them: prefixes of at least CHUNK_BITS4
// bits are bucketed by their /18 chunk (the FIB's direct-pointing unit), so rebuilding one chunk
// only reads that chunk's bucket; shorter prefixes, which span several chunks, live in one map
// per length. Keys are small integers so that Map lookups stay on the fast Smi path.

import { Cidr4, formatCidr4, mask32, parseCidr4 } from './cidr';
import { NO_ROUTE, checkNextHop } from './constants';

export const CHUNK_BITS4 = 18;
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

/** Key of a prefix of at least CHUNK_BITS4 bits inside its chunk: address bits then length. */
function chunkKey(addr: number, len: number): number {
  return ((addr & ((1 << LOW_BITS) - 1)) << 4) | (len - CHUNK_BITS4);
}

function shortKey(addr: number, len: number): number {
  return len === 0 ? 0 : addr >>> (32 - len);
}

export class Rib4 {
  /** Prefixes shorter than CHUNK_BITS4, one map per length: (addr >>> (32 - len)) -> nh. */
  private readonly short: Map<number, number>[] = [];
  /** Chunk index (addr >>> 14) -> (chunkKey -> nh) for prefixes of CHUNK_BITS4..32 bits. */
  readonly chunks = new Map<number, Map<number, number>>();
  private count = 0;

  constructor() {
    for (let len = 0; len < CHUNK_BITS4; len++) this.short.push(new Map());
  }

  get size(): number {
    return this.count;
  }

  /** Adds or replaces a route; returns the previous next hop, or NO_ROUTE if it was new. */
  insert(addr: number, len: number, nh: number): number {
    checkPrefix4(addr, len);
    checkNextHop(nh, formatCidr4(addr, len));
    const m = this.mapFor(addr, len, true)!;
    const k = len < CHUNK_BITS4 ? shortKey(addr, len) : chunkKey(addr, len);
    const prev = m.get(k);
    m.set(k, nh);
    if (prev === undefined) this.count++;
    return prev === undefined ? NO_ROUTE : prev;
  }

  /** Removes a route; returns whether it existed. */
  delete(addr: number, len: number): boolean {
    checkPrefix4(addr, len);
    const m = this.mapFor(addr, len, false);
    if (!m) return false;
    const k = len < CHUNK_BITS4 ? shortKey(addr, len) : chunkKey(addr, len);
    if (!m.delete(k)) return false;
    this.count--;
    if (len >= CHUNK_BITS4 && m.size === 0) this.chunks.delete(addr >>> LOW_BITS);
    return true;
  }

  /** Exact-match get: the next hop of exactly this prefix, or undefined. */
  get(addr: number, len: number): number | undefined {
    checkPrefix4(addr, len);
    const m = this.mapFor(addr, len, false);
    return m?.get(len < CHUNK_BITS4 ? shortKey(addr, len) : chunkKey(addr, len));
  }

  insertCidr(cidr: string, nh: number): number {
    const c: Cidr4 = parseCidr4(cidr);
    return this.insert(c.addr, c.len, nh);
  }

  deleteCidr(cidr: string): boolean {
    const c = parseCidr4(cidr);
    return this.delete(c.addr, c.len);
  }

  /** All routes, in no particular order. */
  *entries(): IterableIterator<Route4> {
    for (let len = 0; len < CHUNK_BITS4; len++) {
      for (const [k, nh] of this.short[len]) yield { addr: len === 0 ? 0 : (k * 2 ** (32 - len)), len, nh };
    }
    for (const [chunk, m] of this.chunks) {
      for (const [k, nh] of m) {
        yield { addr: (chunk * 2 ** LOW_BITS) + (k >>> 4), len: (k & 15) + CHUNK_BITS4, nh };
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

  /** Calls fn(firstChunk, chunkCount, nh) for every short prefix, shortest length first. */
  forEachShort(fn: (firstChunk: number, chunkCount: number, nh: number) => void): void {
    for (let len = 0; len < CHUNK_BITS4; len++) {
      const span = 1 << (CHUNK_BITS4 - len);
      for (const [k, nh] of this.short[len]) fn(len === 0 ? 0 : k * span, span, nh);
    }
  }

  private mapFor(addr: number, len: number, create: boolean): Map<number, number> | undefined {
    if (len < CHUNK_BITS4) return this.short[len];
    const chunk = addr >>> LOW_BITS;
    let m = this.chunks.get(chunk);
    if (!m && create) {
      m = new Map();
      this.chunks.set(chunk, m);
    }
    return m;
  }
}
