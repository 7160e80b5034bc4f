import { parseIpv4, formatIpv4 as formatIPv4 } from '../packet/ipv4';
// IPv4 helpers for the control plane. Addresses are uint32 numbers (always normalised with `>>> 0`)
// because that is how the data path holds them; strings only appear at the edges (YAML, logs).
import { isIPv6 } from 'node:net';
import { mask32 } from '../lpm/cidr';

/** An IPv4 CIDR, parsed once. `addr` is the network address (host bits clear). */
export interface IPv4Cidr {
  /** Canonical text form, e.g. "10.244.0.0/26". */
  readonly cidr: string;
  readonly addr: number;
  readonly prefixLen: number;
}

/** Parses "a.b.c.d" into a uint32, or null when it is not a plain dotted quad (no leading zeros). */
export function parseIPv4(text: string): number | null {
  try {
    return parseIpv4(text);
  } catch {
    return null;
  }
}

/** Dotted-quad text of a uint32 address. */
export { formatIpv4 as formatIPv4 } from '../packet/ipv4';

/** The netmask for a prefix length, as a uint32 (prefix 0 gives 0). */
export function prefixMask(prefixLen: number): number {
  return mask32(prefixLen);
}

/** Splits "a.b.c.d/n" into address and prefix length; null when malformed. Host bits may be set. */
export function parseIPv4WithPrefix(text: string): { addr: number; prefixLen: number } | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = parseIPv4(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (addr === null || !/^\d{1,2}$/.test(lenText)) return null;
  const prefixLen = Number(lenText);
  if (prefixLen > 32) return null;
  return { addr, prefixLen };
}

/** Parses a network CIDR; null when malformed or when host bits are set (not canonical). */
export function parseIPv4Cidr(text: string): IPv4Cidr | null {
  const parsed = parseIPv4WithPrefix(text);
  if (!parsed) return null;
  if ((parsed.addr & prefixMask(parsed.prefixLen)) >>> 0 !== parsed.addr) return null;
  return { cidr: text, addr: parsed.addr, prefixLen: parsed.prefixLen };
}

/** Builds the canonical CIDR for an address and prefix length (host bits cleared). */
export function makeIPv4Cidr(addr: number, prefixLen: number): IPv4Cidr {
  const network = (addr & prefixMask(prefixLen)) >>> 0;
  return { cidr: `${formatIPv4(network)}/${prefixLen}`, addr: network, prefixLen };
}

export function cidrContainsAddr(cidr: IPv4Cidr, addr: number): boolean {
  return ((addr & prefixMask(cidr.prefixLen)) >>> 0) === cidr.addr;
}

/** True when `inner` lies entirely inside `outer`. */
export function cidrContainsCidr(outer: IPv4Cidr, inner: IPv4Cidr): boolean {
  return inner.prefixLen >= outer.prefixLen && cidrContainsAddr(outer, inner.addr);
}

export function cidrsOverlap(a: IPv4Cidr, b: IPv4Cidr): boolean {
  return cidrContainsCidr(a, b) || cidrContainsCidr(b, a);
}

/** Parses an IPv6 CIDR loosely (address validity via node:net, prefix 0–128). IPv6 is validated, not routed. */
export function parseIPv6Cidr(text: string): { addr: string; prefixLen: number } | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  if (!isIPv6(addr) || !/^\d{1,3}$/.test(lenText)) return null;
  const prefixLen = Number(lenText);
  return prefixLen <= 128 ? { addr, prefixLen } : null;
}
