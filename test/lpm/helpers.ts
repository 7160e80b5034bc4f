// Shared helpers for the LPM tests: a seeded RNG, naive reference matchers and the data loader.
import { mask32, parseIp6 } from '../../src/lpm/cidr';
import { NO_ROUTE } from '../../src/lpm/constants';

/** Small deterministic RNG (xorshift32) so failures are reproducible. */
export { Rng } from '../../bench/lpm/tables';
export interface R4 { addr: number; len: number; nh: number }
export interface R6 { w: number[]; len: number; nh: number }

/** Looks up an IPv6 address given as text in a RouteTable6 or Fib6 (for readable assertions). */
export function lookupText6(t: { lookup(w0: number, w1: number, w2: number, w3: number): number }, a: string): number {
  const w = parseIp6(a);
  return t.lookup(w[0], w[1], w[2], w[3]);
}

/**
 * Looks every key up with Fib6.lookupBatch (keys as int32 words, one call) and returns the
 * answers in key order, for comparing the batch path with lookup() and the references.
 */
export function lookupBatch6(fib: { lookupBatch(keys: Int32Array, out: Uint16Array, count?: number): void }, keys: readonly (readonly number[])[]): Uint16Array {
  const words = new Int32Array(4 * keys.length);
  keys.forEach((k, i) => words.set(k, 4 * i));
  const out = new Uint16Array(keys.length);
  fib.lookupBatch(words, out);
  return out;
}

/** The obviously-correct reference: scan every route, keep the longest match. */
export function naive4(routes: readonly R4[], ip: number): number {
  let best = -1;
  let nh = NO_ROUTE;
  for (const r of routes) {
    if (r.len > best && ((ip ^ r.addr) & mask32(r.len)) === 0) {
      best = r.len;
      nh = r.nh;
    }
  }
  return nh;
}

export function matches6(r: { w: readonly number[]; len: number }, k: readonly number[]): boolean {
  for (let i = 0; i < 4; i++) if (((k[i] ^ r.w[i]) & mask32(r.len - 32 * i)) !== 0) return false;
  return true;
}

export function naive6(routes: readonly R6[], k: readonly number[]): number {
  let best = -1;
  let nh = NO_ROUTE;
  for (const r of routes) if (r.len > best && matches6(r, k)) { best = r.len; nh = r.nh; }
  return nh;
}

/** Reference for big tables: one hash map per prefix length, probed longest first. */
export class HashRef4 {
  private readonly byLen: Map<number, number>[] = Array.from({ length: 33 }, () => new Map());
  private lens: number[] = [];
  set(r: R4): void { this.byLen[r.len].set(r.addr, r.nh); this.refresh(); }
  delete(addr: number, len: number): void { this.byLen[len].delete(addr); this.refresh(); }
  private refresh(): void { this.lens = []; for (let l = 32; l >= 0; l--) if (this.byLen[l].size) this.lens.push(l); }
  lookup(ip: number): number {
    for (const l of this.lens) {
      const nh = this.byLen[l].get((ip & mask32(l)) >>> 0);
      if (nh !== undefined) return nh;
    }
    return NO_ROUTE;
  }
}

export class HashRef6 {
  private readonly byLen: Map<string, number>[] = Array.from({ length: 129 }, () => new Map());
  private lens: number[] = [];
  private key(k: readonly number[], len: number): string {
    return [0, 1, 2, 3].map((i) => ((k[i] & mask32(len - 32 * i)) >>> 0).toString(16)).join(':');
  }
  set(r: R6): void { this.byLen[r.len].set(this.key(r.w, r.len), r.nh); this.refresh(); }
  private refresh(): void { this.lens = []; for (let l = 128; l >= 0; l--) if (this.byLen[l].size) this.lens.push(l); }
  lookup(k: readonly number[]): number {
    for (const l of this.lens) {
      const nh = this.byLen[l].get(this.key(k, l));
      if (nh !== undefined) return nh;
    }
    return NO_ROUTE;
  }
}

export { repoRoot, dataDir, readLines, ASN4_FILE, ASN6_FILE, NEXT_HOPS, loadAsn4, loadAsn6, addNesting4, addNesting6 } from '../../bench/lpm/tables';
