// Baselines the benchmark runs in the same process as our FIB:
// - DIR-24-8 (Gupta et al. 1998, the DPDK rte_lpm layout): tbl24 with one entry per /24 and
//   256-entry tbl8 groups for longer prefixes. 16-bit entries when next hops and group count fit
//   in 15 bits (the stronger, smaller variant), 32-bit entries otherwise.
// - A naive binary trie, one bit per level, in typed arrays.
import { NO_ROUTE } from '../../src/lpm/constants';
import { Route4, Route6 } from './tables';

/** DIR-24-8 with Uint16 entries: bit 15 set = tbl8 group index, else next hop. */
export class Dir248x16 {
  constructor(readonly tbl24: Uint16Array, readonly tbl8: Uint16Array) {}
  lookup(ip: number): number {
    const e = this.tbl24[ip >>> 8];
    if ((e & 0x8000) === 0) return e;
    return this.tbl8[((e & 0x7fff) << 8) | (ip & 255)];
  }
  get bytes(): number {
    return this.tbl24.byteLength + this.tbl8.byteLength;
  }
}

/** DIR-24-8 with Int32 entries: negative = tbl8 group index, else next hop. */
export class Dir248x32 {
  constructor(readonly tbl24: Int32Array, readonly tbl8: Int32Array) {}
  lookup(ip: number): number {
    const e = this.tbl24[ip >>> 8];
    if (e >= 0) return e;
    return this.tbl8[((e & 0x7fffffff) << 8) | (ip & 255)];
  }
  get bytes(): number {
    return this.tbl24.byteLength + this.tbl8.byteLength;
  }
}

export type Dir248 = Dir248x16 | Dir248x32;

export function buildDir248(routes: readonly Route4[]): Dir248 {
  const sorted = routes.slice().sort((a, b) => a.len - b.len);
  const longGroups = new Set<number>();
  let maxNh = 0;
  for (const r of sorted) {
    if (r.len > 24) longGroups.add(r.addr >>> 8);
    if (r.nh > maxNh) maxNh = r.nh;
  }
  const narrow = longGroups.size < 0x8000 && maxNh < 0x8000;
  const flag = narrow ? 0x8000 : 0x80000000 | 0;
  const tbl24 = narrow ? new Uint16Array(1 << 24) : new Int32Array(1 << 24);
  tbl24.fill(narrow ? 0x7fff : NO_ROUTE); // 0x7fff stands for NO_ROUTE in the narrow form
  const tbl8 = narrow ? new Uint16Array(longGroups.size << 8) : new Int32Array(longGroups.size << 8);
  let groups = 0;
  for (const r of sorted) {
    const nh = narrow && r.nh === NO_ROUTE ? 0x7fff : r.nh;
    if (r.len <= 24) {
      const first = r.addr >>> 8;
      tbl24.fill(nh, first, first + 2 ** (24 - r.len));
      continue;
    }
    const i = r.addr >>> 8;
    let e = tbl24[i];
    if ((e & flag) === 0) {
      tbl8.fill(e, groups << 8, (groups + 1) << 8);
      e = tbl24[i] = flag | groups++;
    }
    const g = (e & ~flag) << 8;
    const from = g | (r.addr & 255);
    tbl8.fill(nh, from, from + 2 ** (32 - r.len));
  }
  // The narrow form answers 0x7fff for "no route"; the benchmark's answer check maps it.
  if (narrow) return new Dir248x16(tbl24 as Uint16Array, tbl8 as Uint16Array);
  return new Dir248x32(tbl24 as Int32Array, tbl8 as Int32Array);
}

/** One bit per level; node 0 is the root; child index 0 means "none". */
export class BinaryTrie {
  left = new Int32Array(1 << 16);
  right = new Int32Array(1 << 16);
  nh = new Int32Array(1 << 16).fill(NO_ROUTE);
  count = 1;

  private child(n: number, bit: number): number {
    const arr = bit ? this.right : this.left;
    if (arr[n]) return arr[n];
    if (this.count === this.left.length) {
      const grow = (a: Int32Array, fill: number) => {
        const g = new Int32Array(a.length * 2).fill(fill);
        g.set(a);
        return g;
      };
      this.left = grow(this.left, 0);
      this.right = grow(this.right, 0);
      this.nh = grow(this.nh, NO_ROUTE);
    }
    const c = this.count++;
    (bit ? this.right : this.left)[n] = c;
    return c;
  }

  insertBits(bitAt: (i: number) => number, len: number, nh: number): void {
    let n = 0;
    for (let i = 0; i < len; i++) n = this.child(n, bitAt(i));
    this.nh[n] = nh;
  }

  lookup4(ip: number): number {
    let n = 0;
    let best = this.nh[0];
    for (let i = 31; i >= 0; i--) {
      n = (ip >>> i) & 1 ? this.right[n] : this.left[n];
      if (n === 0) break;
      if (this.nh[n] !== NO_ROUTE) best = this.nh[n];
    }
    return best;
  }

  lookup6(w0: number, w1: number, w2: number, w3: number): number {
    let n = 0;
    let best = this.nh[0];
    for (let i = 0; i < 128; i++) {
      const w = i < 32 ? w0 : i < 64 ? w1 : i < 96 ? w2 : w3;
      n = (w >>> (31 - (i & 31))) & 1 ? this.right[n] : this.left[n];
      if (n === 0) break;
      if (this.nh[n] !== NO_ROUTE) best = this.nh[n];
    }
    return best;
  }

  get bytes(): number {
    return this.count * 12;
  }
}

export function buildTrie4(routes: readonly Route4[]): BinaryTrie {
  const t = new BinaryTrie();
  for (const r of routes) t.insertBits((i) => (r.addr >>> (31 - i)) & 1, r.len, r.nh);
  return t;
}

export function buildTrie6(routes: readonly Route6[]): BinaryTrie {
  const t = new BinaryTrie();
  for (const r of routes) t.insertBits((i) => (r.w[i >>> 5] >>> (31 - (i & 31))) & 1, r.len, r.nh);
  return t;
}
