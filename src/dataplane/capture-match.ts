/**
 * The capture filter compiled once, when a capture starts, into a JavaScript function specialised
 * for one filter and one port layout: a loop over the batch whose per-frame work is the header
 * checks of that layout and byte compares against the filter's constants. Interpreting the filter
 * per frame (reading which fields it names, calling a matcher per frame) cost about as much as the
 * compare itself; the compiled loop has neither.
 *
 * The generated source holds only numbers that were validated here (integers in range), never text
 * from the filter, so a filter cannot inject code.
 */
import { ETH_HLEN } from '../packet/layout';
import { SLOT_SHIFT } from './frame-pool';
import { traceMatchesArp, traceMatches6, filterTerms, TraceFilter } from './trace';
import { ipv6WalkExtHeaders } from '../packet/ipv6';
import { Drop } from '../packet/drop';
import { VXLAN_PORT } from '../packet/vxlan';

/** Layouts, as capture.ts's Link (kept numeric here to avoid an import cycle). */
const ETHERNET = 0;
const VXLAN = 2;
/** Underlay Ethernet frames at the decap stage, matched on the inner packet (capture.ts's
 * Link.VXLAN6_UNDERLAY): VXLAN over IPv6 (inner Ethernet after 14 + 40 + 8 + 8 bytes of outer
 * headers), and IPv4 VXLAN and IPIP as on any Ethernet port. */
const VXLAN6_UNDERLAY = 3;
const VXLAN6_INNER = 14 + 40 + 8 + 8;

/**
 * Match frames 0..n-1 of a batch: writes the indices of matching frames to `list` and where their
 * (inner) IPv4 header starts (-1: not IPv4) to `ipAt`; returns how many matched.
 */
export type BatchMatcher = (
  b: Uint8Array, slot: Uint32Array, off: Uint16Array, lens: Uint16Array, n: number, list: Uint16Array, ipAt: Int32Array,
) => number;

function checked(v: number | undefined, max: number, what: string): number {
  if (v === undefined) return -1;
  if (!Number.isInteger(v) || v < 0 || v > max) throw new Error(`capture filter: ${what} ${v} out of range 0..${max}`);
  return v;
}

/** `b[at]===x0 && b[at+1]===x1 ...`: an IPv4 address compared byte by byte (the first differing
 * byte ends it). */
function addrEquals(at: string, a: number): string {
  return `(b[${at}+0]===${a >>> 24}&&b[${at}+1]===${(a >>> 16) & 255}&&b[${at}+2]===${(a >>> 8) & 255}&&b[${at}+3]===${a & 255})`;
}

/** One term's tests on the IPv4 header at `ip` (generated source; numbers validated here only). */
function compileTerm(f: TraceFilter, link: number): { ipTest: string; all: boolean; arpPossible: boolean } {
  const host = checked(f.host, 0xffffffff, 'address');
  const src = checked(f.src, 0xffffffff, 'address');
  const dst = checked(f.dst, 0xffffffff, 'address');
  const proto = checked(f.proto, 255, 'protocol');
  const port = checked(f.port, 65535, 'port');
  // A filter naming an IPv6 address matches IPv6 packets only (trace's rule).
  const v6addr = f.host6 !== undefined || f.src6 !== undefined || f.dst6 !== undefined;
  const all = host < 0 && src < 0 && dst < 0 && proto < 0 && port < 0 && !v6addr;
  // The term's tests on the IPv4 header at ip, cheapest and most selective first.
  const tests: string[] = [];
  if (port >= 0) {
    tests.push(proto >= 0 ? `b[ip+9]===${proto}` : `(b[ip+9]===6||b[ip+9]===17)`);
    if (proto >= 0 && proto !== 6 && proto !== 17) tests.push('false');
    tests.push(`(l4=ip+((b[ip]&15)<<2))+4<=f+len`);
    tests.push(`((((b[l4]<<8)|b[l4+1])===${port})||(((b[l4+2]<<8)|b[l4+3])===${port}))`);
  } else if (proto >= 0) tests.push(`b[ip+9]===${proto}`);
  if (v6addr) tests.push('false');
  if (host >= 0) tests.push(`(${addrEquals('ip+12', host)}||${addrEquals('ip+16', host)})`);
  if (src >= 0) tests.push(addrEquals('ip+12', src));
  if (dst >= 0) tests.push(addrEquals('ip+16', dst));
  const ipTest = tests.length ? tests.join('&&') : 'true';

  // ARP (Ethernet ports) can match a term without a protocol or port
  return { ipTest, all, arpPossible: link === ETHERNET && proto < 0 && port < 0 };
}

/** Compile the filter for frames of one layout (capture.ts's Link). */
export function compileBatchMatcher(f: TraceFilter, link: number, vxlanPort: number = VXLAN_PORT): BatchMatcher {
  // Each term (filterTerms: the filter's or'ed conjunctions) compiles to its own tests; the
  // frame matches when one term's do (IPv6 and ARP: the shared rules in trace.ts, or included).
  const terms = filterTerms(f).map((t) => compileTerm(t, link));
  const all = terms.some((t) => t.all);
  const ipTest = terms.length === 1 ? terms[0].ipTest : terms.map((t) => `(${t.ipTest})`).join('||');
  const arpPossible = terms.some((t) => t.arpPossible);

  // Where the IPv4 header a filter looks at starts (the inner one for tunnel traffic), or -1.
  let findIp: string;
  if (link === ETHERNET || link === VXLAN6_UNDERLAY) {
    // A tunnel packet (the underlay port takes the node's IPv4 VXLAN and IPIP): the inner header.
    // (VXLAN over IPv6 carries IPv6 only, pipeline6's rule: found by m6 below.)
    const E = ETH_HLEN;
    findIp = `ip=(len>=${E + 20}&&b[f+12]===8&&b[f+13]===0&&(b[f+${E}]>>4)===4)?f+${E}:-1;` +
      `if(ip>=0){const hl=(b[ip]&15)<<2;` +
      `if(b[ip+9]===4){if(len>=${E}+hl+20&&(b[ip+hl]>>4)===4)ip+=hl;}` +
      `else if(b[ip+9]===17&&len>=${E + 8 + 8 + E + 20}+hl&&b[ip+hl+2]===${vxlanPort >> 8}&&b[ip+hl+3]===${vxlanPort & 255}&&b[ip+hl+${16 + 12}]===8&&b[ip+hl+${16 + 13}]===0&&(b[ip+hl+${16 + E}]>>4)===4)ip+=hl+${16 + E};}`;
  } else if (link === VXLAN) {
    const e = 8;
    findIp = `ip=(len>=${e + ETH_HLEN + 20}&&b[f+${e + 12}]===8&&b[f+${e + 13}]===0&&(b[f+${e + ETH_HLEN}]>>4)===4)?f+${e + ETH_HLEN}:-1;`;
  } else {
    // Bare IPv4; IP-in-IP: the inner packet.
    findIp = `ip=-1;if(len>=20&&(b[f]>>4)===4){ip=f;if(b[f+9]===4){const hl=(b[f]&15)<<2;if(len>=hl+20&&(b[f+hl]>>4)===4)ip=f+hl;}}`;
  }

  // Not IPv4: everything matches an empty filter; ARP on Ethernet ports is matched by address
  // (rare frames: the shared rule in trace.ts decides).
  const otherTest = all ? 'true' : arpPossible
    ? `m6(b,f,len)||len>=${ETH_HLEN + 28}&&b[f+12]===8&&b[f+13]===6&&arp(((b[f+${ETH_HLEN + 14}]<<24)|(b[f+${ETH_HLEN + 15}]<<16)|(b[f+${ETH_HLEN + 16}]<<8)|b[f+${ETH_HLEN + 17}])>>>0,((b[f+${ETH_HLEN + 24}]<<24)|(b[f+${ETH_HLEN + 25}]<<16)|(b[f+${ETH_HLEN + 26}]<<8)|b[f+${ETH_HLEN + 27}])>>>0)`
    : 'm6(b,f,len)';

  const body = `
"use strict";
return function matchBatch(b, slot, off, lens, n, list, ipAt) {
  let k = 0, ip = -1, l4 = 0;
  for (let i = 0; i < n; i++) {
    const f = (slot[i] << ${SLOT_SHIFT}) + off[i];
    const len = lens[i];
    ${findIp}
    if (ip >= 0 ? (${ipTest}) : (${otherTest})) { list[k] = i; ipAt[k] = ip; k++; }
  }
  return k;
};`;
  const arp = (spa: number, tpa: number): boolean => traceMatchesArp(f, spa, tpa);
  const walk = new Int32Array(4);
  const m6 = (b: Uint8Array, fr: number, len: number): boolean => {
    const ip6 = innerIp6(b, fr, len, link);
    if (ip6 < 0) return false;
    if (ipv6WalkExtHeaders(b, ip6, walk) !== Drop.OK) return traceMatches6(f, b, ip6, -1, -1);
    return traceMatches6(f, b, ip6, walk[0], walk[2] === 0 ? walk[1] : -1);
  };
  return new Function('arp', 'm6', body)(arp, m6) as BatchMatcher;
}

/**
 * Where the IPv6 header of a frame of this layout starts (Ethernet, VXLAN payload, bare IP), -1
 * when it has none or its payload length runs past the frame (nothing past the frame is read).
 */
function innerIp6(b: Uint8Array, fr: number, len: number, link: number): number {
  let ip: number;
  if (link === ETHERNET) {
    if (len < ETH_HLEN + 40 || b[fr + 12] !== 0x86 || b[fr + 13] !== 0xdd) return -1;
    ip = fr + ETH_HLEN;
  } else if (link === VXLAN) {
    if (len < 8 + ETH_HLEN + 40 || b[fr + 8 + 12] !== 0x86 || b[fr + 8 + 13] !== 0xdd) return -1;
    ip = fr + 8 + ETH_HLEN;
  } else if (link === VXLAN6_UNDERLAY) {
    const e = VXLAN6_INNER;
    if (len < e + ETH_HLEN + 40 || b[fr + 12] !== 0x86 || b[fr + 13] !== 0xdd || b[fr + 20] !== 17 || b[fr + e + 12] !== 0x86 || b[fr + e + 13] !== 0xdd) return -1;
    ip = fr + e + ETH_HLEN;
  } else {
    if (len < 40) return -1;
    ip = fr;
  }
  if (b[ip] >> 4 !== 6 || ip + 40 + ((b[ip + 4] << 8) | b[ip + 5]) > fr + len) return -1;
  return ip;
}
