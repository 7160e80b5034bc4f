// IPv4 header (RFC 791) view over bytes at an offset, plus an off-path Repr.
//
//  0       4       8              16      19                      31
//  |version|  IHL  |  DSCP  |ECN |         total length            |
//  |        identification        |flags|    fragment offset        |
//  |     TTL       |   protocol    |         header checksum        |
//  |                       source address                           |
//  |                    destination address                         |
//  |                  options (IHL > 5) ...                         |

import { get16, get32, set16, set32 } from './bytes';
import { csumReplace16, csumReplace32, fold16, sum16 } from './checksum';
import { Drop, DropReason } from './drop';

export const IPV4_HEADER_LEN = 20;
export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Flags (top 3 bits of the 16-bit word at +6). */
export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
const FRAG_OFFSET_MASK = 0x1fff;

export function ipv4Version(b: Uint8Array, off: number): number {
  return b[off] >>> 4;
}
/** IHL in 32-bit words (5..15). */
export function ipv4Ihl(b: Uint8Array, off: number): number {
  return b[off] & 0x0f;
}
/** Header length in bytes including options (IHL * 4). */
export function ipv4HeaderLength(b: Uint8Array, off: number): number {
  return (b[off] & 0x0f) << 2;
}
/** The whole TOS byte (DSCP << 2 | ECN). */
export function ipv4Tos(b: Uint8Array, off: number): number {
  return b[off + 1];
}
export function ipv4Dscp(b: Uint8Array, off: number): number {
  return b[off + 1] >>> 2;
}
export function ipv4Ecn(b: Uint8Array, off: number): number {
  return b[off + 1] & 3;
}
export function ipv4TotalLength(b: Uint8Array, off: number): number {
  return get16(b, off + 2);
}
export function ipv4Id(b: Uint8Array, off: number): number {
  return get16(b, off + 4);
}
/** The 3 flag bits as a number: bit 1 = DF, bit 0 = MF (scapy's `flags` value). */
export function ipv4Flags(b: Uint8Array, off: number): number {
  return b[off + 6] >>> 5;
}
export function ipv4DontFragment(b: Uint8Array, off: number): boolean {
  return (b[off + 6] & 0x40) !== 0;
}
export function ipv4MoreFragments(b: Uint8Array, off: number): boolean {
  return (b[off + 6] & 0x20) !== 0;
}
/** Fragment offset in 8-octet units (multiply by 8 for bytes). */
export function ipv4FragmentOffset(b: Uint8Array, off: number): number {
  return get16(b, off + 6) & FRAG_OFFSET_MASK;
}
/** True for any fragment: MF set or non-zero offset (RFC 791). */
export function ipv4IsFragment(b: Uint8Array, off: number): boolean {
  return (get16(b, off + 6) & (IPV4_FLAG_MF | FRAG_OFFSET_MASK)) !== 0;
}
export function ipv4Ttl(b: Uint8Array, off: number): number {
  return b[off + 8];
}
export function ipv4Protocol(b: Uint8Array, off: number): number {
  return b[off + 9];
}
export function ipv4Checksum(b: Uint8Array, off: number): number {
  return get16(b, off + 10);
}
export function ipv4Src(b: Uint8Array, off: number): number {
  return get32(b, off + 12);
}
export function ipv4Dst(b: Uint8Array, off: number): number {
  return get32(b, off + 16);
}

// Plain setters: they do NOT touch the checksum (use the *Incremental variants or ipv4FillChecksum).
export function setIpv4Tos(b: Uint8Array, off: number, tos: number): void {
  b[off + 1] = tos;
}
export function setIpv4TotalLength(b: Uint8Array, off: number, v: number): void {
  set16(b, off + 2, v);
}
export function setIpv4Id(b: Uint8Array, off: number, v: number): void {
  set16(b, off + 4, v);
}
/** Writes flags (DF/MF bits as in IPV4_FLAG_*) and fragment offset (8-octet units) together. */
export function setIpv4FlagsFragment(b: Uint8Array, off: number, flags: number, fragOffset: number): void {
  set16(b, off + 6, (flags & 0xe000) | (fragOffset & FRAG_OFFSET_MASK));
}
export function setIpv4Ttl(b: Uint8Array, off: number, v: number): void {
  b[off + 8] = v;
}
export function setIpv4Protocol(b: Uint8Array, off: number, v: number): void {
  b[off + 9] = v;
}
export function setIpv4Checksum(b: Uint8Array, off: number, v: number): void {
  set16(b, off + 10, v);
}
export function setIpv4Src(b: Uint8Array, off: number, ip: number): void {
  set32(b, off + 12, ip);
}
export function setIpv4Dst(b: Uint8Array, off: number, ip: number): void {
  set32(b, off + 16, ip);
}

/** Header checksum computed over IHL*4 bytes as if the checksum field were zero. */
export function ipv4ComputeChecksum(b: Uint8Array, off: number): number {
  const s = sum16(b, off, (b[off] & 0x0f) << 2, 0) - get16(b, off + 10);
  return ~fold16(s) & 0xffff;
}

/** Computes and stores the header checksum. */
export function ipv4FillChecksum(b: Uint8Array, off: number): void {
  set16(b, off + 10, 0);
  set16(b, off + 10, ~fold16(sum16(b, off, (b[off] & 0x0f) << 2, 0)) & 0xffff);
}

/** RFC 1071: the sum over the header including the checksum folds to 0xffff. Caller guarantees
 * IHL*4 bytes are readable (validateIpv4 does). */
export function ipv4ChecksumOk(b: Uint8Array, off: number): boolean {
  return fold16(sum16(b, off, (b[off] & 0x0f) << 2, 0)) === 0xffff;
}

/**
 * Decrements TTL and patches the checksum incrementally; returns the new TTL. The caller drops
 * (and sends ICMP time exceeded) when the TTL before forwarding is <= 1 (RFC 1812 5.3.1).
 * TTL is the high byte of its 16-bit word, so the word drops by 0x0100 and by RFC 1624 the
 * checksum rises by 0x0100 in one's complement arithmetic (the same trick as Linux
 * ip_decrease_ttl). Mapping 0xffff to 0 keeps it identical to a full recomputation.
 */
export function ipv4DecrementTtl(b: Uint8Array, off: number): number {
  const old = b[off + 8];
  if (old === 0) {
    // Wraps to 255: the word grows by 0xff00 instead of shrinking by 0x0100; take the general path.
    const word = get16(b, off + 8);
    b[off + 8] = 0xff;
    set16(b, off + 10, csumReplace16(get16(b, off + 10), word, word | 0xff00));
    return 0xff;
  }
  const ttl = old - 1;
  b[off + 8] = ttl;
  let c = ((b[off + 10] << 8) | b[off + 11]) + 0x0100;
  c = c >= 0xffff ? (c + 1) & 0xffff : c;
  b[off + 10] = c >>> 8;
  b[off + 11] = c;
  return ttl;
}

/** Rewrites the source address and patches the header checksum (RFC 1624). L4 checksums that
 * cover the pseudo-header are not touched. */
export function ipv4SetSrcIncremental(b: Uint8Array, off: number, ip: number): void {
  set16(b, off + 10, csumReplace32(get16(b, off + 10), get32(b, off + 12), ip));
  set32(b, off + 12, ip);
}

/** Rewrites the destination address and patches the header checksum (RFC 1624). */
export function ipv4SetDstIncremental(b: Uint8Array, off: number, ip: number): void {
  set16(b, off + 10, csumReplace32(get16(b, off + 10), get32(b, off + 16), ip));
  set32(b, off + 16, ip);
}

/**
 * Validates an IPv4 header at `off` with `len` bytes available (never reads past off+len).
 * Order follows Linux ip_rcv_core: length, version, IHL, total length, then checksum. On OK,
 * IHL*4 <= total length <= len, so every accessor and the payload [off+IHL*4, off+total) are safe.
 * Fragments are accepted here; callers that need whole datagrams check ipv4IsFragment.
 */
export function validateIpv4(b: Uint8Array, off: number, len: number): DropReason {
  if (len < IPV4_HEADER_LEN) return Drop.TOO_SHORT;
  const vihl = b[off];
  if (vihl >>> 4 !== 4) return Drop.BAD_VERSION;
  const hlen = (vihl & 0x0f) << 2;
  if (hlen < IPV4_HEADER_LEN) return Drop.BAD_IHL;
  const total = (b[off + 2] << 8) | b[off + 3];
  if (total < IPV4_HEADER_LEN) return Drop.BAD_TOTAL_LENGTH;
  if (hlen > total) return Drop.BAD_IHL;
  if (total > len) return Drop.TOO_SHORT;
  // Option-less headers (nearly all traffic) get an unrolled sum; bounds are already checked.
  const s =
    hlen === IPV4_HEADER_LEN
      ? ((vihl << 8) | b[off + 1]) + total + ((b[off + 4] << 8) | b[off + 5]) + ((b[off + 6] << 8) | b[off + 7]) +
        ((b[off + 8] << 8) | b[off + 9]) + ((b[off + 10] << 8) | b[off + 11]) + ((b[off + 12] << 8) | b[off + 13]) +
        ((b[off + 14] << 8) | b[off + 15]) + ((b[off + 16] << 8) | b[off + 17]) + ((b[off + 18] << 8) | b[off + 19])
      : sum16(b, off, hlen, 0);
  if (fold16(s) !== 0xffff) return Drop.BAD_CHECKSUM;
  // Options (IHL > 5, rare): a malformed list is dropped (Drop.BAD_IP_OPTIONS), a source route
  // too (Drop.SOURCE_ROUTE). The option-less fast path pays the one compare above.
  if (hlen !== IPV4_HEADER_LEN) return checkIpv4Options(b, off + IPV4_HEADER_LEN, off + hlen);
  return Drop.OK;
}

/** IPv4 option types (RFC 791, 1108, 2113, draft CIPSO): end of list, no-op, record route,
 * timestamp, loose and strict source route, router alert, commercial security (CIPSO). */
const OPT_EOL = 0;
const OPT_NOP = 1;
const OPT_RR = 0x07;
const OPT_TS = 0x44;
const OPT_LSRR = 0x83;
const OPT_SSRR = 0x89;
const OPT_RA = 0x94;
const OPT_CIPSO = 0x86;

/** walkIpv4Options's answers other than a byte's offset. */
const WALK_OK = -1;
const WALK_SOURCE_ROUTE = -2;
/** Refused without an answer (CIPSO). */
const WALK_SILENT = -3;

/**
 * Walks the option list [o, end) as Linux's __ip_options_compile does for a received packet, and
 * returns where it stops: the offset in `b` of the byte it points at when it refuses the list
 * (its pp_ptr, what ICMP parameter problem points at), WALK_SILENT for a CIPSO option (refused
 * without a DOI configured, and the kernel answers nothing), WALK_SOURCE_ROUTE for a well-formed
 * list with a source route, else WALK_OK. EOL (0) ends the list (what follows is padding), NOP (1)
 * is one byte; any other option needs a length byte, at least 2 and within the list (else: the
 * option's type byte). Source routes: length >= 3 (else the length byte), pointer >= 4 (else the
 * pointer), one only (else the second's type). Record route: one only, length >= 3, pointer >= 4
 * and, while it has room (pointer <= length), room for an address (pointer + 3 <= length; else the
 * pointer). Timestamp: one only, length >= 4, pointer >= 5; with room, room for its entry (4
 * bytes, 8 with addresses: flags 1 and 3; other flags pass, as on receive); full, an overflow
 * count below 15 unless flags 3 (else the flags byte). Router alert: length >= 4. Other options
 * (security, stream id, unknown types) pass, as the kernel forwards them. Checked against the
 * kernel (6.18): the same pointers for the same lists.
 */
function walkIpv4Options(b: Uint8Array, o: number, end: number): number {
  let seen = 0; // 1: record route, 2: timestamp, 4: source route
  while (o < end) {
    const t = b[o];
    if (t === OPT_EOL) break;
    if (t === OPT_NOP) {
      o++;
      continue;
    }
    if (o + 1 >= end) return o;
    const l = b[o + 1];
    if (l < 2 || o + l > end) return o;
    if (t === OPT_LSRR || t === OPT_SSRR) {
      if (l < 3) return o + 1;
      if (b[o + 2] < 4) return o + 2;
      if ((seen & 4) !== 0) return o;
      seen |= 4;
    } else if (t === OPT_RR) {
      if ((seen & 1) !== 0) return o;
      if (l < 3) return o + 1;
      const ptr = b[o + 2];
      if (ptr < 4 || (ptr <= l && ptr + 3 > l)) return o + 2;
      seen |= 1;
    } else if (t === OPT_TS) {
      if ((seen & 2) !== 0) return o;
      if (l < 4) return o + 1;
      const ptr = b[o + 2];
      const flags = b[o + 3] & 0x0f;
      if (ptr < 5) return o + 2;
      if (ptr <= l) {
        if (ptr + 3 > l) return o + 2;
        if ((flags === 1 || flags === 3) && ptr + 7 > l) return o + 2;
      } else if (flags !== 3 && b[o + 3] >>> 4 === 15) return o + 3;
      seen |= 2;
    } else if (t === OPT_RA) {
      if (l < 4) return o + 1;
    } else if (t === OPT_CIPSO) {
      return WALK_SILENT;
    }
    o += l;
  }
  return (seen & 4) !== 0 ? WALK_SOURCE_ROUTE : WALK_OK;
}

/**
 * Checks the option list [o, end) as Linux's ip_options_compile does for a received packet
 * (walkIpv4Options): a list it refuses is Drop.BAD_IP_OPTIONS (the kernel drops the packet and
 * answers parameter problem, ipv4OptionsPointer; a CIPSO option without an answer); a
 * well-formed list with a loose or strict source route is Drop.SOURCE_ROUTE (the kernel drops it
 * with accept_source_route=0, silently). Other options pass, as the kernel forwards them.
 */
export function checkIpv4Options(b: Uint8Array, o: number, end: number): DropReason {
  const w = walkIpv4Options(b, o, end);
  return w === WALK_OK ? Drop.OK : w === WALK_SOURCE_ROUTE ? Drop.SOURCE_ROUTE : Drop.BAD_IP_OPTIONS;
}

/**
 * For an IPv4 header at `ip` whose options validateIpv4 refused (Drop.BAD_IP_OPTIONS): the pointer
 * of the ICMP parameter problem the kernel answers it with (the offset of the byte at fault from
 * the header's start, ip_options_compile's pp_ptr - iph), or -1 when the kernel answers nothing
 * (CIPSO). Off the hot path: walks the list again.
 */
export function ipv4OptionsPointer(b: Uint8Array, ip: number): number {
  const w = walkIpv4Options(b, ip + IPV4_HEADER_LEN, ip + ((b[ip] & 0x0f) << 2));
  return w >= 0 ? w - ip : -1;
}

/**
 * Writes a 20-byte option-less header with its checksum. `flagsFrag` is the raw 16-bit
 * flags+fragment word (e.g. IPV4_FLAG_DF). The checksum is summed from the field values, without
 * reading back the bytes just written.
 */
export function writeIpv4Header(
  b: Uint8Array,
  off: number,
  tos: number,
  totalLength: number,
  id: number,
  flagsFrag: number,
  ttl: number,
  protocol: number,
  src: number,
  dst: number,
): void {
  const w0 = 0x4500 | (tos & 0xff);
  const w4 = ((ttl & 0xff) << 8) | (protocol & 0xff);
  const s = w0 + (totalLength & 0xffff) + (id & 0xffff) + (flagsFrag & 0xffff) + w4 + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
  b[off] = 0x45;
  b[off + 1] = tos;
  b[off + 2] = totalLength >>> 8;
  b[off + 3] = totalLength;
  b[off + 4] = id >>> 8;
  b[off + 5] = id;
  b[off + 6] = flagsFrag >>> 8;
  b[off + 7] = flagsFrag;
  b[off + 8] = ttl;
  b[off + 9] = protocol;
  const c = ~fold16(s) & 0xffff;
  b[off + 10] = c >>> 8;
  b[off + 11] = c;
  set32(b, off + 12, src);
  set32(b, off + 16, dst);
}

// ---- off the hot path -------------------------------------------------------------------------

export function formatIpv4(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
}

/** A decimal octet: 0..255 written without leading zeros (which some parsers read as octal). */
const DEC_OCTET = /^(?:0|[1-9]\d{0,2})$/;

/**
 * Parses a dotted quad into a uint32; throws a message naming the input and what is wrong. The one
 * IPv4 text parser of the project (src/lpm and src/control build on it).
 */
export function parseIpv4(text: string): number {
  const parts = typeof text === 'string' ? text.split('.') : [];
  if (parts.length !== 4) throw new Error(`invalid IPv4 address "${text}": expected four dotted octets`);
  let v = 0;
  for (const p of parts) {
    if (!DEC_OCTET.test(p) || Number(p) > 255) {
      throw new Error(`invalid IPv4 address "${text}": octet "${p}" is not a number 0..255`);
    }
    v = v * 256 + Number(p);
  }
  return v >>> 0;
}

export interface Ipv4Repr {
  tos: number;
  totalLength: number;
  id: number;
  /** 3 flag bits: 2 = DF, 1 = MF. */
  flags: number;
  /** In 8-octet units. */
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  src: string;
  dst: string;
  /** Raw option bytes (length a multiple of 4, padded by the emitter otherwise). */
  options: number[];
  /** Only set by parse; emit always computes it. */
  checksum?: number;
}

export function parseIpv4Repr(b: Uint8Array, off: number): Ipv4Repr {
  const hlen = ipv4HeaderLength(b, off);
  return {
    tos: ipv4Tos(b, off),
    totalLength: ipv4TotalLength(b, off),
    id: ipv4Id(b, off),
    flags: ipv4Flags(b, off),
    fragmentOffset: ipv4FragmentOffset(b, off),
    ttl: ipv4Ttl(b, off),
    protocol: ipv4Protocol(b, off),
    src: formatIpv4(ipv4Src(b, off)),
    dst: formatIpv4(ipv4Dst(b, off)),
    options: Array.from(b.subarray(off + IPV4_HEADER_LEN, off + hlen)),
    checksum: ipv4Checksum(b, off),
  };
}

/** Writes the header (options zero-padded to 32 bits) with a computed checksum; returns its length. */
export function emitIpv4(b: Uint8Array, off: number, r: Ipv4Repr): number {
  const optLen = (r.options.length + 3) & ~3;
  const hlen = IPV4_HEADER_LEN + optLen;
  if (hlen > 60) throw new Error('IPv4 options longer than 40 bytes');
  b[off] = 0x40 | (hlen >>> 2);
  b[off + 1] = r.tos;
  set16(b, off + 2, r.totalLength);
  set16(b, off + 4, r.id);
  set16(b, off + 6, ((r.flags & 7) << 13) | (r.fragmentOffset & FRAG_OFFSET_MASK));
  b[off + 8] = r.ttl;
  b[off + 9] = r.protocol;
  setIpv4Src(b, off, parseIpv4(r.src));
  setIpv4Dst(b, off, parseIpv4(r.dst));
  for (let i = 0; i < optLen; i++) b[off + IPV4_HEADER_LEN + i] = i < r.options.length ? r.options[i] : 0;
  ipv4FillChecksum(b, off);
  return hlen;
}
