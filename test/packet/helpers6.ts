// The IPv6 fixtures (test/fixtures/scapy-frames6.json, made by scripts/gen-fixtures6.py).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromHex } from '../../src/packet';
import type { Fixture } from './helpers';

let cache: Fixture[] | null = null;

export function loadFixtures6(): Fixture[] {
  // Compiled to dist/test/packet; the JSON stays in the source tree.
  const file = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'scapy-frames6.json');
  cache ??= JSON.parse(fs.readFileSync(file, 'utf8')).fixtures as Fixture[];
  return cache;
}

export function fixture6(name: string): Fixture {
  const f = loadFixtures6().find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name} in scapy-frames6.json`);
  return f;
}

/** A fixture's bytes (a fresh copy). */
export function bytes6(name: string): Uint8Array {
  return fromHex(fixture6(name).hex);
}

/** The fields scapy reported for the first layer named `layer`. */
export function layer6(name: string, layer: string): Record<string, any> {
  const l = fixture6(name).layers.find((x) => x.layer === layer);
  if (!l) throw new Error(`fixture ${name} has no ${layer} layer`);
  return l.fields;
}

/** RFC 1071 checksum of an ICMPv6 message with the IPv6 pseudo-header, written from scratch here
 * (independent of src/packet), over the IPv6 packet at `ip` whose upper layer starts at `l4`. */
export function icmpv6Sum(b: Uint8Array, ip: number, l4: number, len: number): number {
  let s = 58 + len;
  for (let k = 8; k < 40; k += 2) s += b[ip + k] * 256 + b[ip + k + 1];
  for (let k = 0; k + 1 < len; k += 2) s += b[l4 + k] * 256 + b[l4 + k + 1];
  if (len % 2 === 1) s += b[l4 + len - 1] * 256;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** Recomputes the ICMPv6 checksum of a frame whose message starts at byte 54 (no extension headers). */
export function fixIcmpv6Checksum(f: Uint8Array): void {
  const len = f[18] * 256 + f[19];
  f[56] = 0;
  f[57] = 0;
  const c = 0xffff - icmpv6Sum(f, 14, 54, len);
  f[56] = c >> 8;
  f[57] = c & 255;
}
