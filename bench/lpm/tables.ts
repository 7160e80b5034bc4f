// Route tables for the LPM benchmark and tests: the real ASN tables from data/asn/ in this repo
// (with generated nesting, since that data set is flattened), a generated 1M-prefix IPv4 table and a
// Calico node table. Everything is seeded, so runs are reproducible.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { mask32, parseCidr4, parseCidr6, parseIp4 } from '../../src/lpm/cidr';

export interface Route4 { addr: number; len: number; nh: number }
export interface Route6 { w: number[]; len: number; nh: number }

/** Deterministic xorshift32 RNG. */
export class Rng {
  constructor(private s: number) {
    if (this.s === 0) this.s = 0x9e3779b9;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x;
    return x >>> 0;
  }
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }
}

/** Repository root, found by walking up from this file (works from src and from dist/). */
export function repoRoot(): string {
  let d = __dirname;
  while (!fs.existsSync(path.join(d, 'package.json'))) {
    const up = path.dirname(d);
    if (up === d) throw new Error(`package.json not found above ${__dirname}`);
    d = up;
  }
  return d;
}

/** Where the ASN tables live: data/asn/ in the repository (see data/asn/README.md). */
export function dataDir(): string {
  return path.join(repoRoot(), 'data', 'asn');
}

/** The IPv4 and IPv6 ASN table files, by name inside dataDir(). */
export const ASN4_FILE = 'asn-ipv4-prefixes.txt.gz';
export const ASN6_FILE = 'asn-ipv6-prefixes.txt.gz';

/** Lines of a gzipped data file (the last one empty, since the files end with a newline). */
export function readLines(file: string): string[] {
  const full = path.join(dataDir(), file);
  if (!fs.existsSync(full)) {
    const rel = path.relative(repoRoot(), full);
    throw new Error(`LPM data file ${rel} is missing (expected at ${full}; it is part of the repository, see data/asn/README.md)`);
  }
  return zlib.gunzipSync(fs.readFileSync(full)).toString('latin1').split('\n');
}

/** Next hop of an ASN route: ASN modulo the number of next hops, as the data README suggests. */
export const NEXT_HOPS = 4096;

export function loadAsn4(): Route4[] {
  const out: Route4[] = [];
  for (const line of readLines(ASN4_FILE)) {
    if (!line) continue;
    const sp = line.indexOf(' ');
    const c = parseCidr4(line.slice(0, sp));
    out.push({ addr: c.addr, len: c.len, nh: Number(line.slice(sp + 1)) % NEXT_HOPS });
  }
  return out;
}

export function loadAsn6(): Route6[] {
  const out: Route6[] = [];
  for (const line of readLines(ASN6_FILE)) {
    if (!line) continue;
    const sp = line.indexOf(' ');
    const c = parseCidr6(line.slice(0, sp));
    out.push({ w: [...c.w], len: c.len, nh: Number(line.slice(sp + 1)) % NEXT_HOPS });
  }
  return out;
}

/** A route list that keeps the first route for each prefix (`key`), in the order added. */
function firstPerPrefix<R>(key: (r: R) => number | string): { out: R[]; add: (r: R) => void } {
  const seen = new Set<number | string>();
  const out: R[] = [];
  const add = (r: R) => {
    const k = key(r);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(r);
    }
  };
  return { out, add };
}

/**
 * Adds nesting to a flattened IPv4 table: `aggregates` covering /8../20 prefixes over random
 * routes and `specifics` /25../32 more-specifics inside random routes. Returns a new array.
 */
export function addNesting4(routes: readonly Route4[], rng: Rng, aggregates: number, specifics: number): Route4[] {
  const { out, add } = firstPerPrefix((r: Route4) => r.addr * 64 + r.len);
  for (const r of routes) add(r);
  for (let i = 0; i < aggregates && routes.length; i++) {
    const r = routes[rng.int(routes.length)];
    const len = 8 + rng.int(Math.max(1, Math.min(20, r.len - 1) - 8 + 1));
    if (len >= r.len) continue;
    add({ addr: (r.addr & mask32(len)) >>> 0, len, nh: rng.int(NEXT_HOPS) });
  }
  for (let i = 0; i < specifics && routes.length; i++) {
    const r = routes[rng.int(routes.length)];
    if (r.len >= 25) continue;
    const len = 25 + rng.int(8);
    const addr = ((r.addr + rng.int(2 ** (32 - r.len))) & mask32(len)) >>> 0;
    add({ addr, len, nh: rng.int(NEXT_HOPS) });
  }
  return out;
}

function mask6(w: readonly number[], len: number): number[] {
  return w.map((x, i) => (x & mask32(len - 32 * i)) >>> 0);
}

/** IPv6 counterpart: covering /16../40 aggregates and /49../128 more-specifics. */
export function addNesting6(routes: readonly Route6[], rng: Rng, aggregates: number, specifics: number): Route6[] {
  const { out, add } = firstPerPrefix((r: Route6) => `${r.w}/${r.len}`);
  for (const r of routes) add(r);
  for (let i = 0; i < aggregates && routes.length; i++) {
    const r = routes[rng.int(routes.length)];
    const len = 16 + rng.int(25);
    if (len >= r.len) continue;
    add({ w: mask6(r.w, len), len, nh: rng.int(NEXT_HOPS) });
  }
  for (let i = 0; i < specifics && routes.length; i++) {
    const r = routes[rng.int(routes.length)];
    const len = Math.max(r.len + 1, 49 + rng.int(80));
    if (len > 128) continue;
    const w = r.w.map((x, k) => (x | (rng.u32() & ~mask32(r.len - 32 * k))) >>> 0);
    add({ w: mask6(w, len), len, nh: rng.int(NEXT_HOPS) });
  }
  return out;
}

/**
 * A generated Internet-like IPv4 table of `n` unique prefixes with nesting: about 60% /24,
 * 25% /19../23, 8% /25../32 inside other routes, the rest /8../18 aggregates.
 */
export function generated4(n: number, rng: Rng): Route4[] {
  const seen = new Set<number>();
  const out: Route4[] = [];
  const add = (addr: number, len: number) => {
    addr = (addr & mask32(len)) >>> 0;
    const k = addr * 64 + len;
    if (seen.has(k)) return;
    seen.add(k);
    out.push({ addr, len, nh: rng.int(NEXT_HOPS) });
  };
  // Addresses cluster in "allocated" /8s (1..223 minus a few) like real tables.
  const base = () => (((1 + rng.int(222)) << 24) | (rng.u32() & 0xffffff)) >>> 0;
  while (out.length < n) {
    const p = rng.int(100);
    if (p < 60) add(base(), 24);
    else if (p < 85) add(base(), 19 + rng.int(5));
    else if (p < 93 && out.length) {
      const r = out[rng.int(out.length)];
      if (r.len < 32) add((r.addr + rng.int(2 ** (32 - r.len))) >>> 0, Math.max(r.len + 1, 25 + rng.int(8)));
    } else add(base(), 8 + rng.int(11));
  }
  return out;
}

/**
 * A Calico node's table: 1,000 remote /26 IPAM blocks (via other nodes), 110 local pod /32s in
 * this node's blocks, 20 borrowed /32s (pods of this node in other nodes' blocks) and a default.
 */
export function calico4(rng: Rng): Route4[] {
  const pool = parseIp4('10.244.0.0'); // a /16 pool: 1,024 /26 blocks
  const out: Route4[] = [{ addr: 0, len: 0, nh: 1 }];
  const blocks: number[] = [];
  for (let b = 0; b < 1024; b++) blocks.push(pool + b * 64);
  const local = blocks.slice(1000, 1002); // this node's two blocks
  blocks.slice(0, 1000).forEach((addr, i) => out.push({ addr, len: 26, nh: 2 + (i % 100) }));
  for (let i = 0; i < 110; i++) out.push({ addr: local[i >> 6] + (i & 63), len: 32, nh: 200 + i });
  for (let i = 0; i < 20; i++) out.push({ addr: blocks[rng.int(1000)] + 1 + rng.int(62), len: 32, nh: 400 + i });
  const seen = new Set<string>();
  return out.filter((r) => !seen.has(`${r.addr}/${r.len}`) && !!seen.add(`${r.addr}/${r.len}`));
}
