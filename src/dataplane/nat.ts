/**
 * The pipeline's view of natOutgoing: which pod sources the kernel will masquerade when podway hands
 * their egress to it (see nft-nat.ts, which does the translation). The pipeline only counts and
 * traces those packets; one short loop over the NAT pools per egress packet, typed arrays.
 */
import { mask32, mask6Word } from '../lpm/cidr';

/** Felix's natOutgoingExclusions values (FelixConfiguration spec.natOutgoingExclusions). */
export const NAT_OUTGOING_EXCLUSIONS = ['IPPoolsOnly', 'IPPoolsAndHostIPs'] as const;
export type NatOutgoingExclusions = (typeof NAT_OUTGOING_EXCLUSIONS)[number];

/** Parse --nat-outgoing-exclusions (or FELIX_NATOUTGOINGEXCLUSIONS, `where` names which): Felix's
 * two values, case-insensitive as Felix's enum settings; unset: IPPoolsOnly, Felix's default. */
export function parseNatOutgoingExclusions(text: string | undefined, where: string): NatOutgoingExclusions {
  if (text === undefined || text.trim() === '') return 'IPPoolsOnly';
  const v = NAT_OUTGOING_EXCLUSIONS.find((x) => x.toLowerCase() === text.trim().toLowerCase());
  if (!v) throw new Error(`${where}: ${JSON.stringify(text)} is not IPPoolsOnly or IPPoolsAndHostIPs (Felix's natOutgoingExclusions)`);
  return v;
}

export class NatSources {
  private addr = new Uint32Array(0);
  private mask = new Uint32Array(0);

  /** Pools with natOutgoing: true (address, prefix length). */
  set(pools: readonly { addr: number; prefixLen: number }[]): void {
    this.addr = Uint32Array.from(pools, (p) => p.addr >>> 0);
    this.mask = Uint32Array.from(pools, (p) => mask32(p.prefixLen));
  }

  has(src: number): boolean {
    for (let k = 0; k < this.addr.length; k++) if (((src & this.mask[k]) >>> 0) === this.addr[k]) return true;
    return false;
  }
}

/**
 * A set of IPv6 prefixes matched against 16 address bytes in a frame (IPv6 pools, natOutgoing
 * pools): four 32-bit words and masks per prefix, one short loop, no allocation per packet.
 */
export class Prefixes6 {
  private w = new Uint32Array(0);
  private m = new Uint32Array(0);

  /** The prefixes as four network words and a length each. */
  set(prefixes: readonly { w: readonly [number, number, number, number]; prefixLen: number }[]): void {
    const w = new Uint32Array(prefixes.length * 4);
    const m = new Uint32Array(prefixes.length * 4);
    prefixes.forEach((p, k) => {
      for (let j = 0; j < 4; j++) {
        const mask = mask6Word(p.prefixLen, j);
        m[k * 4 + j] = mask;
        w[k * 4 + j] = (p.w[j] & mask) >>> 0;
      }
    });
    this.w = w;
    this.m = m;
  }

  get size(): number {
    return this.w.length >>> 2;
  }

  /** Does the address at b[off..+16] fall in one of the prefixes? */
  has(b: Uint8Array, off: number): boolean {
    const w = this.w;
    const m = this.m;
    for (let k = 0; k < w.length; k += 4) {
      let j = 0;
      for (; j < 4; j++) {
        const o = off + 4 * j;
        const a = ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
        if (((a & m[k + j]) >>> 0) !== w[k + j]) break;
      }
      if (j === 4) return true;
    }
    return false;
  }
}

/**
 * The pods' ends of the host ports (Pipeline.hostPortSources, IPv4; Pipeline6.hostPortSources,
 * IPv6): each pod address that has host ports, with its (protocol, container port) pairs. An
 * open-addressing table of the addresses (hashed on the address, an IPv6 one folded to a word by
 * XOR of its four, then its four words compared), each pointing at its few pairs in a typed
 * array. The look-ups read the address from the packet and compare 32-bit integers in typed arrays
 * only: they allocate nothing (no number is boxed, no Set or Map is consulted per packet). Set
 * between batches.
 */
export class HostPortSources {
  /** Bytes of an address: 4 (IPv4) or 16 (IPv6). */
  private readonly width: number;
  /** The table: an address's index + 1, 0 for an empty slot; its length a power of two. */
  private slots = new Int32Array(2);
  private mask = 1;
  private shift = 31;
  /** Per address: its word (the hash key), its words (IPv6: four), its first pair in `pairs` (first[k + 1] ends it). */
  private words = new Int32Array(0);
  private addrWords = new Int32Array(0);
  private first = new Int32Array(1);
  /** (protocol << 16) | container port, grouped by address. */
  private pairs = new Int32Array(0);

  constructor(width: 4 | 16) {
    this.width = width;
  }

  /** How many (address, protocol, port) entries: 0 when the node has no host ports. */
  get size(): number {
    return this.pairs.length;
  }

  /** What the table was last set from (set's key): a model apply with the same host ports (every
   * apply: set is called with each model) keeps the table as it is. */
  private from = '';

  /** Set from the node's host ports; returns false (nothing rebuilt) when they are what the table
   * holds already, in any order. */
  set(list: readonly { readonly ip: Uint8Array; readonly proto: number; readonly port: number }[]): boolean {
    const w = this.width;
    const byAddr = new Map<string, { ip: Uint8Array; pairs: Set<number> }>();
    for (const e of list) {
      const ip = e.ip.subarray(0, w);
      const k = ip.join('.');
      let a = byAddr.get(k);
      if (a === undefined) byAddr.set(k, (a = { ip, pairs: new Set() }));
      a.pairs.add(((e.proto & 0xff) << 16) | (e.port & 0xffff));
    }
    const from = [...byAddr].map(([k, a]) => `${k} ${[...a.pairs].sort((x, y) => x - y).join(',')}`).sort().join(';');
    if (from === this.from) return false;
    this.from = from;
    const n = byAddr.size;
    let bits = 1;
    while (1 << bits < n * 2) bits++;
    this.slots = new Int32Array(1 << bits);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
    this.words = new Int32Array(n);
    this.addrWords = new Int32Array(n * (w / 4));
    this.first = new Int32Array(n + 1);
    const pairs: number[] = [];
    let k = 0;
    for (const a of byAddr.values()) {
      for (let j = 0; j < w; j += 4) this.addrWords[k * (w / 4) + j / 4] = (a.ip[j] << 24) | (a.ip[j + 1] << 16) | (a.ip[j + 2] << 8) | a.ip[j + 3];
      const word = this.wordOf(a.ip, 0);
      this.words[k] = word;
      this.first[k] = pairs.length;
      pairs.push(...a.pairs);
      let s = Math.imul(word, -1640531535) >>> this.shift;
      while (this.slots[s] !== 0) s = (s + 1) & this.mask;
      this.slots[s] = k + 1;
      k++;
    }
    this.first[n] = pairs.length;
    this.pairs = Int32Array.from(pairs);
    return true;
  }

  /** Has the pod address at b[off] any host port (its fragments go to the node's kernel)? */
  hasAddr(b: Uint8Array, off: number): boolean {
    return this.find(b, off) >= 0;
  }

  /** Is the address at b[off] with this protocol and container port one of them? */
  has(b: Uint8Array, off: number, proto: number, port: number): boolean {
    const k = this.find(b, off);
    if (k < 0) return false;
    const pp = (proto << 16) | port;
    const end = this.first[k + 1];
    for (let j = this.first[k]; j < end; j++) if (this.pairs[j] === pp) return true;
    return false;
  }

  /** The index of the address at b[off], or -1. */
  private find(b: Uint8Array, off: number): number {
    const w0 = (b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
    if (this.width === 4) return this.probe(w0, w0, 0, 0, 0);
    const w1 = (b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7];
    const w2 = (b[off + 8] << 24) | (b[off + 9] << 16) | (b[off + 10] << 8) | b[off + 11];
    const w3 = (b[off + 12] << 24) | (b[off + 13] << 16) | (b[off + 14] << 8) | b[off + 15];
    return this.probe(w0 ^ w1 ^ w2 ^ w3, w0, w1, w2, w3);
  }

  /** The index of the address with this word (hash key) and these words (IPv4: w0 alone), or -1. */
  private probe(word: number, w0: number, w1: number, w2: number, w3: number): number {
    const a = this.addrWords;
    const six = this.width === 16;
    let s = Math.imul(word, -1640531535) >>> this.shift;
    for (let probes = 0; probes <= this.mask; probes++) {
      const k = this.slots[s] - 1;
      if (k < 0) return -1;
      if (this.words[k] === word) {
        if (!six) return k;
        const o = k * 4;
        if (a[o] === w0 && a[o + 1] === w1 && a[o + 2] === w2 && a[o + 3] === w3) return k;
      }
      s = (s + 1) & this.mask;
    }
    return -1;
  }

  /** The address at b[o] as a signed 32-bit word: IPv4's own, IPv6's four XORed. */
  private wordOf(b: Uint8Array, o: number): number {
    let x = (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
    if (this.width === 16) for (let k = 4; k < 16; k += 4) x ^= (b[o + k] << 24) | (b[o + k + 1] << 16) | (b[o + k + 2] << 8) | b[o + k + 3];
    return x;
  }
}
