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

/** The key of a host port's pod end in Pipeline.hostPortSources: the pod's IPv4 address (an IPv6
 * one folded to a word: HostPortSources6), the protocol (6 TCP, 17 UDP) and the container port, as
 * one number below 2^49 (exact in a double). */
export function hostPortKey(ip: number, proto: number, port: number): number {
  return (ip >>> 0) * 131072 + (proto === 17 ? 65536 : 0) + (port & 0xffff);
}

/**
 * The pods' ends of the IPv6 host ports (Pipeline6.hostPortSources; the IPv4 ones are a plain set
 * of hostPortKey numbers): hostPortKey of the address folded to a word (its four words XORed), the
 * protocol and the container port, then the whole address compared, as two addresses may fold
 * alike. The look-up allocates nothing; set between batches.
 */
export class HostPortSources6 {
  private keys: ReadonlySet<number> = new Set();
  private addrs = new Uint8Array(0);
  private protoPort = new Uint32Array(0);

  get size(): number {
    return this.protoPort.length;
  }

  set(list: readonly { readonly ip: Uint8Array; readonly proto: number; readonly port: number }[]): void {
    this.addrs = new Uint8Array(list.length * 16);
    this.protoPort = new Uint32Array(list.length);
    list.forEach((e, k) => {
      this.addrs.set(e.ip.subarray(0, 16), k * 16);
      this.protoPort[k] = (e.proto << 16) | (e.port & 0xffff);
    });
    this.keys = new Set(list.map((e) => hostPortKey(fold6(e.ip, 0), e.proto, e.port)));
  }

  /** Is the address at b[off] with this protocol and port one of them? */
  has(b: Uint8Array, off: number, proto: number, port: number): boolean {
    if (!this.keys.has(hostPortKey(fold6(b, off), proto, port))) return false;
    const pp = (proto << 16) | port;
    const a = this.addrs;
    for (let k = 0; k < this.protoPort.length; k++) {
      if (this.protoPort[k] !== pp) continue;
      let j = 0;
      while (j < 16 && a[k * 16 + j] === b[off + j]) j++;
      if (j === 16) return true;
    }
    return false;
  }
}

function fold6(b: Uint8Array, o: number): number {
  let x = 0;
  for (let k = 0; k < 16; k += 4) x ^= (b[o + k] << 24) | (b[o + k + 1] << 16) | (b[o + k + 2] << 8) | b[o + k + 3];
  return x >>> 0;
}
