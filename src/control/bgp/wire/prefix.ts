// Addresses and NLRI prefixes as BGP carries them: (length, the prefix's significant octets).
// Text is the API's form ("10.244.1.0/26", "fd00::/64"); octets are the wire's.
import { isIPv4, isIPv6 } from 'node:net';
import { formatIp4, formatIp6, parseIp4, parseIp6 } from '../../../lpm/cidr';
import { Afi, BgpError, ErrCode, UpdateSub } from './constants';

/** The 4 or 16 octets of an IPv4 or IPv6 address in text; throws on anything else. */
export function addressOctets(text: string): Buffer {
  if (isIPv4(text)) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(parseIp4(text));
    return b;
  }
  if (isIPv6(text)) {
    const b = Buffer.alloc(16);
    parseIp6(text).forEach((w, i) => b.writeUInt32BE(w >>> 0, 4 * i));
    return b;
  }
  throw new Error(`invalid IP address "${text}"`);
}

/** Text of 4 or 16 address octets. */
export function addressText(b: Uint8Array): string {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (v.length === 4) return formatIp4(v.readUInt32BE(0));
  if (v.length === 16) return formatIp6(v.readUInt32BE(0), v.readUInt32BE(4), v.readUInt32BE(8), v.readUInt32BE(12));
  throw new Error(`an IP address has 4 or 16 octets, not ${v.length}`);
}

export function afiOfAddress(text: string): Afi {
  return isIPv6(text) ? Afi.Ipv6 : Afi.Ipv4;
}

/** A parsed prefix: family, length and the address octets with host bits cleared. */
export interface Prefix {
  readonly afi: Afi;
  readonly len: number;
  readonly octets: Buffer;
  /** Canonical text, e.g. "10.244.1.0/26". */
  readonly text: string;
}

/** Parses "addr/len" (host bits are cleared, so the text returned is canonical). */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const octets = addressOctets(addr);
  const max = octets.length * 8;
  const lenText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) throw new Error(`invalid prefix "${text}": bad length "${lenText}"`);
  const len = Number(lenText);
  clearHostBits(octets, len);
  return { afi: octets.length === 4 ? Afi.Ipv4 : Afi.Ipv6, len, octets, text: `${addressText(octets)}/${len}` };
}

function clearHostBits(octets: Buffer, len: number): void {
  for (let i = 0; i < octets.length; i++) {
    const keep = Math.max(0, Math.min(8, len - 8 * i));
    octets[i] &= (0xff00 >> keep) & 0xff;
  }
}

/** Octets of one NLRI entry: the length octet and ceil(len/8) prefix octets. */
export function encodeNlri(p: Prefix): Buffer {
  const n = (p.len + 7) >> 3;
  const out = Buffer.alloc(1 + n);
  out[0] = p.len;
  p.octets.copy(out, 1, 0, n);
  return out;
}

/**
 * Decodes a run of NLRI entries of one family. A length over the family's maximum or an entry
 * that overruns the field cannot be skipped reliably, so RFC 7606 section 5.3 says session reset:
 * we throw UPDATE error / invalid network field.
 */
export function decodeNlri(afi: Afi, b: Buffer): string[] {
  const size = afi === Afi.Ipv6 ? 16 : 4;
  const out: string[] = [];
  let at = 0;
  while (at < b.length) {
    const len = b[at];
    const n = (len + 7) >> 3;
    if (len > size * 8) throw new BgpError(ErrCode.Update, UpdateSub.InvalidNetwork, Buffer.alloc(0), `prefix length ${len} in NLRI`);
    if (at + 1 + n > b.length) throw new BgpError(ErrCode.Update, UpdateSub.InvalidNetwork, Buffer.alloc(0), 'NLRI entry overruns its field');
    if (size === 4) {
      // The common case, a full table of them: text straight from the octets, no buffer.
      const o = [0, 0, 0, 0];
      for (let i = 0; i < n; i++) o[i] = b[at + 1 + i];
      if (len & 7) o[n - 1] &= (0xff00 >> (len & 7)) & 0xff;
      out.push(`${o[0]}.${o[1]}.${o[2]}.${o[3]}/${len}`);
      at += 1 + n;
      continue;
    }
    const octets = Buffer.alloc(size);
    b.copy(octets, 0, at + 1, at + 1 + n);
    clearHostBits(octets, len);
    out.push(`${addressText(octets)}/${len}`);
    at += 1 + n;
  }
  return out;
}

/** Whether `inner` lies inside (or equals) `outer` (both of one family). */
export function prefixWithin(outer: Prefix, inner: Prefix): boolean {
  if (inner.len < outer.len || inner.octets.length !== outer.octets.length) return false;
  const whole = outer.len >> 3;
  for (let i = 0; i < whole; i++) if (inner.octets[i] !== outer.octets[i]) return false;
  const rest = outer.len & 7;
  return rest === 0 || ((inner.octets[whole]! ^ outer.octets[whole]!) & (0xff << (8 - rest)) & 0xff) === 0;
}
