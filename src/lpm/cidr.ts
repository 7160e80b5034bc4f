// Parsing and formatting of IPv4/IPv6 addresses and CIDR prefixes.
//
// IPv4 addresses are unsigned 32-bit numbers (0..2^32-1). IPv6 addresses are four unsigned 32-bit
// words, most significant first, so the lookup path never needs BigInt. Every parse error throws
// an Error whose message quotes the input and says what is wrong.

export interface Cidr4 {
  readonly addr: number; // unsigned, host bits zero
  readonly len: number; // 0..32
}

export interface Cidr6 {
  readonly w: readonly [number, number, number, number]; // unsigned words, host bits zero
  readonly len: number; // 0..128
}

/** Mask with the top `len` bits of a 32-bit word set (len 0..32), as an unsigned number. */
export function mask32(len: number): number {
  return len <= 0 ? 0 : len >= 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
}

// IPv4 text <-> uint32 lives with the other IPv4 helpers (src/packet/ipv4.ts).
export { parseIpv4 as parseIp4, formatIpv4 as formatIp4 } from '../packet/ipv4';
import { parseIpv4 as parseIp4, formatIpv4 as formatIp4 } from '../packet/ipv4';
import { formatIpv6Groups } from '../packet/ipv6';

function splitCidr(text: string, family: string, maxLen: number): [string, number] {
  if (typeof text !== 'string') throw new Error(`invalid ${family} CIDR ${String(text)}: not a string`);
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`invalid ${family} CIDR "${text}": missing "/length"`);
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) {
    throw new Error(`invalid ${family} CIDR "${text}": prefix length "${lenText}" is not a number`);
  }
  const len = Number(lenText);
  if (len > maxLen) {
    throw new Error(`invalid ${family} CIDR "${text}": prefix length ${len} is out of range 0..${maxLen}`);
  }
  return [text.slice(0, slash), len];
}

export function parseCidr4(text: string): Cidr4 {
  const [ip, len] = splitCidr(text, 'IPv4', 32);
  let addr: number;
  try {
    addr = parseIp4(ip);
  } catch (e) {
    throw new Error(`invalid IPv4 CIDR "${text}": ${(e as Error).message}`);
  }
  if ((addr & ~mask32(len)) !== 0) {
    throw new Error(`invalid IPv4 CIDR "${text}": host bits are set (did you mean ${formatIp4((addr & mask32(len)) >>> 0)}/${len}?)`);
  }
  return { addr, len };
}

export function formatCidr4(addr: number, len: number): string {
  return `${formatIp4(addr)}/${len}`;
}

/** Parses an IPv6 address, full or `::`-compressed, optionally with a trailing dotted IPv4 part. */
export function parseIp6(text: string): [number, number, number, number] {
  const bad = (why: string): never => {
    throw new Error(`invalid IPv6 address "${text}": ${why}`);
  };
  if (typeof text !== 'string' || text.length === 0) bad('empty');
  const dbl = text.indexOf('::');
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) bad('"::" appears more than once');
  const groupsOf = (s: string): number[] => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIp4(p);
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        bad(`group "${p}" is not 1-4 hex digits`);
      }
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = groupsOf(text.slice(0, dbl));
    const tail = groupsOf(text.slice(dbl + 2));
    if (head.length + tail.length > 7) bad('too many groups around "::"');
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    groups = groupsOf(text);
    if (groups.length !== 8) bad(`expected 8 groups, found ${groups.length}`);
  }
  return [
    (groups[0] * 65536 + groups[1]),
    (groups[2] * 65536 + groups[3]),
    (groups[4] * 65536 + groups[5]),
    (groups[6] * 65536 + groups[7]),
  ];
}

/** RFC 5952 text of four words (the formatting itself is packet/ipv6's formatIpv6Groups). */
export function formatIp6(w0: number, w1: number, w2: number, w3: number): string {
  return formatIpv6Groups([w0 >>> 16, w0 & 0xffff, w1 >>> 16, w1 & 0xffff, w2 >>> 16, w2 & 0xffff, w3 >>> 16, w3 & 0xffff]);
}

/** Word i (0..3) of the IPv6 netmask for a prefix of `len` bits. */
export function mask6Word(len: number, i: number): number {
  return mask32(len - 32 * i);
}

export function parseCidr6(text: string): Cidr6 {
  const [ip, len] = splitCidr(text, 'IPv6', 128);
  let w: [number, number, number, number];
  try {
    w = parseIp6(ip);
  } catch (e) {
    throw new Error(`invalid IPv6 CIDR "${text}": ${(e as Error).message}`);
  }
  for (let i = 0; i < 4; i++) {
    if ((w[i] & ~mask6Word(len, i)) !== 0) {
      const fixed = w.map((x, k) => (x & mask6Word(len, k)) >>> 0);
      throw new Error(`invalid IPv6 CIDR "${text}": host bits are set (did you mean ${formatIp6(fixed[0], fixed[1], fixed[2], fixed[3])}/${len}?)`);
    }
  }
  return { w, len };
}

export function formatCidr6(w: readonly number[], len: number): string {
  return `${formatIp6(w[0], w[1], w[2], w[3])}/${len}`;
}

/** IPv6 CIDR text with its length, host bits allowed and cleared ("fd99::1/64" -> fd99::/64), for
 * addresses given with their subnet (a Node's spec.bgp.ipv6Address); null when it is not that
 * (none given, no length, not IPv6). parseCidr6 is the strict one, for prefixes written as such. */
export function networkOf6(text: string | null | undefined): Cidr6 | null {
  const m = typeof text === 'string' ? /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(text) : null;
  if (!m || Number(m[2]) > 128) return null;
  const len = Number(m[2]);
  try {
    const a = parseIp6(m[1]!);
    return { w: [0, 1, 2, 3].map((i) => (a[i]! & mask6Word(len, i)) >>> 0) as [number, number, number, number], len };
  } catch {
    return null;
  }
}

/** Whether the prefix of words `w` and length `len` (an address: 128) lies inside `outer` (its
 * host bits, if a caller's words have any, not compared: a destination read off `ip monitor`). */
export function covers6(outer: Cidr6, w: readonly number[], len = 128): boolean {
  if (len < outer.len) return false;
  for (let i = 0; i < 4; i++) {
    const m = mask6Word(outer.len, i);
    if (((w[i]! & m) >>> 0) !== ((outer.w[i] & m) >>> 0)) return false;
  }
  return true;
}
