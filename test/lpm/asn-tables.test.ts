// The real ASN tables (data/asn/ in this repo): first the files themselves (counts, format, no
// host bits, the documented length mix, known prefix->ASN lines), then the tables with generated
// nesting, checked on sampled keys against a per-length hash-map reference (a linear scan over
// 600k routes per key would take hours), then 1,000-change incremental batches checked the same way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mask32, parseCidr4, parseCidr6 } from '../../src/lpm/cidr';
import { RouteChange4, RouteTable4 } from '../../src/lpm/route-table4';
import { RouteChange6, RouteTable6 } from '../../src/lpm/route-table6';
import {
  ASN4_FILE, ASN6_FILE, HashRef4, HashRef6, NEXT_HOPS, R4, R6, Rng, addNesting4, addNesting6, dataDir, loadAsn4, loadAsn6,
  lookupBatch6, readLines, repoRoot,
} from './helpers';

const KEYS = 200_000;

function keys4(rng: Rng, routes: readonly R4[], n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const r = routes[rng.int(routes.length)];
    const pick = rng.int(4);
    out[i] = pick === 0 ? rng.u32() : pick === 1 ? r.addr : pick === 2 ? r.addr + 2 ** (32 - r.len) - 1 : r.addr + rng.int(2 ** (32 - r.len));
  }
  return out;
}

function check4(t: RouteTable4, ref: HashRef4, keys: Uint32Array, what: string): void {
  const fib = t.fib;
  for (const k of keys) {
    const want = ref.lookup(k);
    const got = fib.lookup(k);
    if (got !== want) assert.unreachable(`${what}: lookup(${k}) = ${got}, want ${want}`);
  }
}

/** The data lines of a table file: it must end with one newline and hold no blank or CR lines. */
function dataLines(file: string): string[] {
  const lines = readLines(file);
  assert.is(lines[lines.length - 1], '', `${file} must end with a newline`);
  lines.pop();
  return lines;
}

/** Checks an ASN field: a decimal AS number in 1..2^32-1, written without leading zeros. */
function checkAsn(text: string, line: string): number {
  const asn = Number(text);
  if (!/^[1-9]\d*$/.test(text) || asn > 0xffffffff) assert.unreachable(`bad ASN in "${line}"`);
  return asn;
}

/** Fraction of lines per prefix length, for the documented mix. */
function share(byLen: number[], total: number, from: number, to = from): number {
  let n = 0;
  for (let l = from; l <= to; l++) n += byLen[l];
  return n / total;
}

test('the ASN tables are read from data/asn/ inside the repository', () => {
  assert.is(dataDir(), path.join(repoRoot(), 'data', 'asn'));
  for (const f of [ASN4_FILE, ASN6_FILE]) assert.ok(fs.statSync(path.join(dataDir(), f)).size > 500_000, `${f} present`);
  assert.ok(fs.existsSync(path.join(dataDir(), 'README.md')), 'data/asn/README.md (source and licence) present');
});

test('IPv4 ASN table: 564,580 well-formed prefixes, no host bits, the documented length mix, known lines', () => {
  const lines = dataLines(ASN4_FILE);
  assert.is(lines.length, 564_580);
  const byLen = new Array<number>(33).fill(0);
  const keys = new Float64Array(lines.length); // addr * 64 + len, to sort for the overlap check
  const line4 = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\/(\d{1,2}) (\d+)$/;
  lines.forEach((line, i) => {
    const m = line4.exec(line);
    if (!m) return assert.unreachable(`line ${i + 1} is not "a.b.c.d/len ASN": ${JSON.stringify(line)}`);
    const c = parseCidr4(`${m[1]}/${m[2]}`); // throws on host bits or a bad address
    if (((c.addr & mask32(c.len)) >>> 0) !== c.addr) assert.unreachable(`host bits set in line ${i + 1}: ${line}`);
    checkAsn(m[3], line);
    byLen[c.len]++;
    keys[i] = c.addr * 64 + c.len;
  });
  // The mix data/asn/README.md states (to a tenth of a percent).
  const mix: [number, number, number][] = [[24, 24, 0.387], [23, 23, 0.184], [22, 22, 0.184], [21, 21, 0.082], [20, 20, 0.059], [25, 32, 0.008]];
  for (const [from, to, want] of mix) {
    const got = share(byLen, lines.length, from, to);
    assert.ok(Math.abs(got - want) < 0.0006, `/${from}..${to}: ${(100 * got).toFixed(2)}%, want about ${(100 * want).toFixed(1)}%`);
  }
  assert.is(byLen.findIndex((n) => n > 0), 8, 'shortest prefix is a /8');
  // Flattened: sorted by address, no prefix overlaps the one before it, except the single prefix
  // the source lists for two ASNs (215.0.0.0/16, AS721 and AS749).
  keys.sort();
  const overlaps: string[] = [];
  let end = -1;
  for (const k of keys) {
    const addr = Math.floor(k / 64);
    const len = k % 64;
    if (addr <= end) overlaps.push(`${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}/${len}`);
    end = Math.max(end, addr + 2 ** (32 - len) - 1);
  }
  assert.equal(overlaps, ['215.0.0.0/16']);
  // Known lines (prefix -> origin AS), and loadAsn4() turns each into its route with nh = ASN % NEXT_HOPS.
  const samples: [string, number][] = [
    ['1.0.0.0/24', 13335], ['1.1.1.0/24', 13335], ['8.8.8.0/24', 15169], ['9.9.9.0/24', 19281],
    ['17.0.0.0/9', 714], ['223.255.254.0/24', 55415],
  ];
  const routes = loadAsn4();
  assert.is(routes.length, lines.length);
  for (const [prefix, asn] of samples) {
    const i = lines.indexOf(`${prefix} ${asn}`);
    assert.ok(i >= 0, `line "${prefix} ${asn}" in ${ASN4_FILE}`);
    const c = parseCidr4(prefix);
    assert.equal(routes[i], { addr: c.addr, len: c.len, nh: asn % NEXT_HOPS }, `loadAsn4() entry for ${prefix}`);
  }
});

test('IPv6 ASN table: 167,903 well-formed prefixes, no host bits, no overlaps, known lines', () => {
  const lines = dataLines(ASN6_FILE);
  assert.is(lines.length, 167_903);
  const byLen = new Array<number>(129).fill(0);
  const spans: [bigint, bigint][] = [];
  const line6 = /^((?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4})\/(\d{1,3}) (\d+)$/; // 8 groups, no "::"
  lines.forEach((line, i) => {
    const m = line6.exec(line);
    if (!m) return assert.unreachable(`line ${i + 1} is not "x:x:x:x:x:x:x:x/len ASN": ${JSON.stringify(line)}`);
    const c = parseCidr6(`${m[1]}/${m[2]}`); // throws on host bits or a bad address
    for (let k = 0; k < 4; k++) {
      if (((c.w[k] & mask32(c.len - 32 * k)) >>> 0) !== c.w[k]) assert.unreachable(`host bits set in line ${i + 1}: ${line}`);
    }
    checkAsn(m[3], line);
    byLen[c.len]++;
    const start = c.w.reduce((acc, x) => (acc << 32n) | BigInt(x), 0n);
    spans.push([start, start + (1n << BigInt(128 - c.len)) - 1n]);
  });
  const mix: [number, number][] = [[48, 0.246], [32, 0.169], [29, 0.062]];
  for (const [len, want] of mix) {
    const got = share(byLen, lines.length, len);
    assert.ok(Math.abs(got - want) < 0.0006, `/${len}: ${(100 * got).toFixed(2)}%, want about ${(100 * want).toFixed(1)}%`);
  }
  assert.is(byLen.findIndex((n) => n > 0), 16, 'shortest prefix is a /16');
  spans.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] <= spans[i - 1][1]) assert.unreachable(`IPv6 prefixes overlap at ${spans[i][0].toString(16)}`);
  }
  const samples: [string, number][] = [
    ['2001:0:0:0:0:0:0:0/32', 6939], ['2001:4860:0:0:0:0:0:0/34', 15169], ['2606:4700:0:0:0:0:0:0/47', 13335],
    ['2c0f:fff0:0:0:0:0:0:0/32', 37125],
  ];
  const routes = loadAsn6();
  assert.is(routes.length, lines.length);
  for (const [prefix, asn] of samples) {
    const i = lines.indexOf(`${prefix} ${asn}`);
    assert.ok(i >= 0, `line "${prefix} ${asn}" in ${ASN6_FILE}`);
    const c = parseCidr6(prefix);
    assert.equal(routes[i], { w: [...c.w], len: c.len, nh: asn % NEXT_HOPS }, `loadAsn6() entry for ${prefix}`);
  }
});

test('ASN IPv4 with nesting: 200k sampled keys, then 3 batches of 1,000 changes', () => {
  const rng = new Rng(2024);
  const asn = loadAsn4();
  assert.is(asn.length, 564_580);
  const routes = addNesting4(asn, rng, 20_000, 50_000);
  const ref = new HashRef4();
  for (const r of routes) ref.set(r);
  const t = new RouteTable4(routes);
  assert.is(t.rib.size, routes.length);
  check4(t, ref, keys4(rng, routes, KEYS), 'full build');
  for (let b = 0; b < 3; b++) {
    const changes: RouteChange4[] = [];
    const touched: R4[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = routes[rng.int(routes.length)];
      if (rng.int(2)) {
        changes.push({ op: 'delete', addr: r.addr, len: r.len });
        ref.delete(r.addr, r.len);
      } else {
        const len = rng.int(8) === 0 ? 8 + rng.int(10) : 18 + rng.int(15);
        const addr = ((r.addr + rng.int(2 ** (32 - r.len))) & mask32(len)) >>> 0;
        const nh = rng.int(4096);
        changes.push({ op: 'set', addr, len, nh });
        ref.set({ addr, len, nh });
      }
      touched.push(r);
    }
    const old = t.fib;
    const oldAnswers = keys4(new Rng(7), touched, 2000).map((k) => old.lookup(k));
    t.applyBatch(changes);
    check4(t, ref, keys4(rng, touched, 20_000), `batch ${b} (touched)`);
    check4(t, ref, keys4(rng, routes, 20_000), `batch ${b} (anywhere)`);
    assert.equal(keys4(new Rng(7), touched, 2000).map((k) => old.lookup(k)), oldAnswers, 'old FIB must not change');
  }
});

test('ASN IPv6 with nesting: 200k sampled keys, then a batch of 1,000 changes', () => {
  const rng = new Rng(6);
  const asn = loadAsn6();
  assert.is(asn.length, 167_903);
  const routes = addNesting6(asn, rng, 10_000, 20_000);
  const ref = new HashRef6();
  for (const r of routes) ref.set(r);
  const t = new RouteTable6(routes);
  const keys = (n: number, from: readonly R6[]) => Array.from({ length: n }, () => {
    const r = from[rng.int(from.length)];
    const pick = rng.int(3);
    const rand = [rng.u32(), rng.u32(), rng.u32(), rng.u32()];
    if (pick === 0) return rand;
    return r.w.map((x, i) => (x | ((pick === 1 ? rand[i] : 0xffffffff) & ~mask32(r.len - 32 * i))) >>> 0);
  });
  const check = (ks: number[][], what: string) => {
    const batch = lookupBatch6(t.fib, ks);
    ks.forEach((k, i) => {
      const want = ref.lookup(k);
      const got = t.fib.lookup(k[0], k[1], k[2], k[3]);
      if (got !== want) assert.unreachable(`${what}: lookup(${k}) = ${got}, want ${want}`);
      if (batch[i] !== want) assert.unreachable(`${what}: lookupBatch at ${i} (${k}) = ${batch[i]}, want ${want}`);
    });
  };
  check(keys(KEYS / 2, routes), 'full build');
  const changes: RouteChange6[] = [];
  const touched: R6[] = [];
  for (let i = 0; i < 1000; i++) {
    const r = routes[rng.int(routes.length)];
    const len = Math.min(128, r.len + rng.int(20));
    const w = r.w.map((x, k) => ((x | (rng.u32() & ~mask32(r.len - 32 * k))) & mask32(len - 32 * k)) >>> 0);
    const nh = rng.int(4096);
    changes.push({ op: 'set', w, len, nh });
    ref.set({ w, len, nh });
    touched.push({ w, len, nh });
  }
  t.applyBatch(changes);
  check(keys(20_000, touched), 'after batch');
});

test.run();
