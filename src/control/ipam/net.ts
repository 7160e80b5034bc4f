// Addresses and CIDRs for IPAM. Values are bigints so that IPv4 and IPv6 (/122 blocks in
// /64-sized pools) share one code path; everything above this file talks in `IpNet` and
// ordinals, never in 32-bit numbers.
import { formatIpv6, parseIpv6Bytes } from '../../packet/ipv6';
import { formatIPv4, parseIPv4 } from '../ipv4';

export type IpVersion = 4 | 6;

/** A network: canonical text ("10.244.1.0/26"), first address and prefix length. */
export interface IpNet {
  readonly version: IpVersion;
  readonly text: string;
  readonly base: bigint;
  readonly prefixLen: number;
  /** 32 or 128. */
  readonly bits: number;
}

export function addressBits(version: IpVersion): number {
  return version === 4 ? 32 : 128;
}

/** Parses an address (dotted IPv4, or IPv6 full or `::`-compressed); null when it is not one. */
export function parseIp(text: string): { version: IpVersion; value: bigint } | null {
  const v4 = parseIPv4(text);
  if (v4 !== null) return { version: 4, value: BigInt(v4) };
  if (!text.includes(':')) return null;
  let bytes: Uint8Array;
  try {
    bytes = parseIpv6Bytes(text);
  } catch {
    return null;
  }
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return { version: 6, value };
}

/** Canonical text: dotted IPv4, or RFC 5952 IPv6 (what Go's net.IP.String writes for it). */
export function formatIp(version: IpVersion, value: bigint): string {
  if (version === 4) return formatIPv4(Number(value));
  const bytes = new Uint8Array(16);
  let v = value;
  for (let i = 15; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return formatIpv6(bytes);
}

/** Parses a canonical network CIDR (host bits clear); null otherwise. */
export function parseNet(text: string): IpNet | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (!addr || !/^\d{1,3}$/.test(lenText)) return null;
  const prefixLen = Number(lenText);
  const bits = addressBits(addr.version);
  if (prefixLen > bits) return null;
  const net = makeNet(addr.version, addr.value, prefixLen);
  return net.base === addr.value ? net : null;
}

/**
 * A CIDR whose host bits may be set, or a bare address (then /32 or /128), as libcalico-go's
 * ParseCIDROrIP reads IPReservation.spec.reservedCIDRs: the network it names (host bits
 * cleared); null when it is neither.
 */
export function parseCidrOrIp(text: string): IpNet | null {
  const slash = text.indexOf('/');
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!addr) return null;
  const bits = addressBits(addr.version);
  if (slash < 0) return makeNet(addr.version, addr.value, bits);
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) return null;
  return makeNet(addr.version, addr.value, Number(lenText));
}

/** The network of `prefixLen` that holds `value`. */
export function makeNet(version: IpVersion, value: bigint, prefixLen: number): IpNet {
  const bits = addressBits(version);
  const hostBits = BigInt(bits - prefixLen);
  const base = (value >> hostBits) << hostBits;
  return { version, base, prefixLen, bits, text: `${formatIp(version, base)}/${prefixLen}` };
}

/** Number of addresses in a network. */
export function netSize(net: IpNet): bigint {
  return 1n << BigInt(net.bits - net.prefixLen);
}

export function netContains(net: IpNet, value: bigint): boolean {
  return value >= net.base && value < net.base + netSize(net);
}

export function netContainsNet(outer: IpNet, inner: IpNet): boolean {
  return inner.version === outer.version && inner.prefixLen >= outer.prefixLen && netContains(outer, inner.base);
}

/** True when the networks share an address (one holds the other); never across IP versions. */
export function netsOverlap(a: IpNet, b: IpNet): boolean {
  return netContainsNet(a, b) || netContainsNet(b, a);
}

/** How Calico writes a CIDR inside a key: the one '/' becomes '-'. */
export function netKeyPart(net: IpNet): string {
  return net.text.replace('/', '-');
}

/** The inverse of netKeyPart; null when the text is not a canonical CIDR. */
export function netFromKeyPart(part: string): IpNet | null {
  return parseNet(part.replace('-', '/'));
}

/**
 * Why an IPv6 pool CIDR is not as Calico stores it (host bits set, or not RFC 5952 text); null
 * when it is, or when it is not an IPv6 CIDR at all (the schema says that). Keys, routes and
 * overlap checks compare the canonical text, so apply/create and a YAML datastore refuse it; a
 * pool already in etcd (an older podway wrote it) is loaded with a warning.
 */
export function ipv6CidrProblem(text: string): string | null {
  const slash = text.indexOf('/');
  if (!text.includes(':') || slash < 0) return null;
  const addr = parseIp(text.slice(0, slash));
  if (!addr || addr.version !== 6 || !/^\d{1,3}$/.test(text.slice(slash + 1)) || Number(text.slice(slash + 1)) > 128) return null;
  const net = parseNet(text);
  if (!net) return `${JSON.stringify(text)} has host bits set`;
  return net.text === text ? null : `${JSON.stringify(text)} is not in canonical form: write ${JSON.stringify(net.text)}`;
}
