/**
 * `podway trace`: the life of the next N real packets that match a filter. The hot path pays one
 * boolean test per packet while no trace is running; a matching packet gets a record to which every
 * stage appends what it saw and decided.
 */
import { formatIpv4, parseIpv4, formatIpv6, parseIpv6Bytes } from '../packet';

/**
 * One conjunction of the filter's words (every field given must match), plus, on the filter as
 * parsed, the other conjunctions it is or'ed with: `host A and icmp or port 53` is the term
 * {host A, proto 1} with `or: [{port 53}]`. Parentheses are expanded into such terms when parsed
 * (`(icmp or icmp6) and host A` is two), so matching is a few terms of plain field compares.
 */
export interface TraceFilter {
  /** Either address (src or dst) */
  host?: number;
  src?: number;
  dst?: number;
  /** IP protocol number */
  proto?: number;
  /** Either L4 port */
  port?: number;
  /** IPv6 addresses (canonical text): either, source, destination. A term naming an IPv6
   * address matches IPv6 packets only, one naming an IPv4 address IPv4 only. */
  host6?: string;
  src6?: string;
  dst6?: string;
  /** The other terms (none of them with `or` of its own): the filter matches a packet when this
   * term or any of these does. */
  or?: TraceFilter[];
}

/** The filter's terms, the first one included. */
export function filterTerms(f: TraceFilter): TraceFilter[] {
  if (f.or === undefined || f.or.length === 0) return [f];
  const { or, ...first } = f;
  return [first, ...or];
}

/** At most this many terms once parentheses are expanded (`(a or b) and (c or d)` is 4). */
const MAX_TERMS = 32;
/** Parentheses nested deeper than this are refused (the parser recurses once per level). */
const MAX_DEPTH = 32;

export interface TraceRecord {
  at: string;
  ingress: string;
  stages: string[];
}

const PROTOS: Record<string, number> = { icmp: 1, ipip: 4, tcp: 6, udp: 17, icmp6: 58, icmpv6: 58 };

/**
 * Parse a tcpdump-like filter: words such as `host 10.0.0.1 and icmp`, `src X`, `dst X`, `port 80`,
 * joined by `and` (or nothing) and `or`, `and` binding tighter (as tcpdump), with parentheses.
 * `command` (trace or capture, which share the words) starts each error message.
 */
export function parseTraceFilter(words: unknown, command: 'trace' | 'capture' = 'trace'): TraceFilter {
  try {
    return parseFilterWords(words, `${command} filter`);
  } catch (e) {
    const m = (e as Error).message;
    throw new Error(m.startsWith(`${command} filter:`) ? m : `${command} filter: ${m}`);
  }
}

function parseFilterWords(words: unknown, what: string): TraceFilter {
  // the control socket's request is anyone's JSON: a list of strings, or a clear error
  if (!Array.isArray(words) || !words.every((x) => typeof x === 'string')) throw new Error(`${what}: not a list of words (strings)`);
  const w = words.flatMap((x) => x.replace(/[()]/g, ' $& ').split(/\s+/)).filter((x) => x !== '');
  if (w.length === 0) return {};
  let i = 0;
  let depth = 0;
  // expr := conj ('or' conj)* ; conj := factor (['and'] factor)* ; factor := '(' expr ')' | word [value]
  const expr = (): TraceFilter[] => {
    let terms = conj();
    while (i < w.length && w[i].toLowerCase() === 'or') {
      i++;
      terms = [...terms, ...conj()];
      if (terms.length > MAX_TERMS) throw new Error(`${what}: more than ${MAX_TERMS} alternatives once the parentheses are expanded`);
    }
    return terms;
  };
  const conj = (): TraceFilter[] => {
    let terms: TraceFilter[] | null = null;
    for (;;) {
      const k = i < w.length ? w[i].toLowerCase() : null;
      if (k === null || k === ')' || k === 'or') {
        if (terms === null) throw new Error(k === null && i === 0 ? `${what}: empty` : `${what}: ${k === null ? 'the end' : `"${w[i]}"`} where a filter word was expected${i > 0 ? ` (after "${w[i - 1]}")` : ''}`);
        return terms;
      }
      if (k === 'and') {
        if (terms === null) throw new Error(`${what}: "and" needs a filter word before it`);
        i++;
        const n = i < w.length ? w[i].toLowerCase() : null;
        if (n === null || n === ')' || n === 'or' || n === 'and') throw new Error(`${what}: "and" needs a filter word after it`);
        continue;
      }
      const f = factor();
      if (terms === null) terms = f;
      else {
        // and: every term of one side with every term of the other (a later word wins for a field
        // given on both sides, as within one conjunction)
        const both: TraceFilter[] = [];
        for (const a of terms) for (const b of f) both.push({ ...a, ...b });
        if (both.length > MAX_TERMS) throw new Error(`${what}: more than ${MAX_TERMS} alternatives once the parentheses are expanded`);
        terms = both;
      }
    }
  };
  const factor = (): TraceFilter[] => {
    if (w[i] === '(') {
      const open = i++;
      if (++depth > MAX_DEPTH) throw new Error(`${what}: parentheses nested deeper than ${MAX_DEPTH}`);
      const terms = expr();
      depth--;
      if (i >= w.length || w[i] !== ')') throw new Error(`${what}: "(" at word ${open + 1} is not closed`);
      i++;
      return terms;
    }
    const f: TraceFilter = {};
    i = primitive(w, i, f, what);
    return [f];
  };
  const terms = expr();
  if (i < w.length) throw new Error(w[i] === ')' ? `${what}: ")" without its "("` : `${what}: unexpected "${w[i]}"`);
  const [first, ...rest] = terms;
  return rest.length > 0 ? { ...first, or: rest } : first;
}

/** One filter word (and its value) at w[i] into `f`; returns the index after it. */
function primitive(w: string[], i: number, f: TraceFilter, what: string): number {
  const k = w[i].toLowerCase();
  const next = () => {
    if (i + 1 >= w.length || w[i + 1] === '(' || w[i + 1] === ')') throw new Error(`${what}: "${k}" needs a value`);
    return w[++i];
  };
  // digits and dots: an IPv4 address (parseIpv4 names what is wrong with it); anything else (a
  // name, a typo) is neither family: said so, as an IPv6 address is taken too (no name looked up)
  const addr = (s: string) => {
    if (/^[0-9.]+$/.test(s)) return parseIpv4(s);
    throw new Error(`invalid address "${s}": expected an IPv4 or IPv6 address (names are not looked up)`);
  };
  const addr6 = (s: string) => formatIpv6(parseIpv6Bytes(s)); // throws "invalid IPv6 address ..."
  if ((k === 'host' || k === 'src' || k === 'dst') && i + 1 < w.length && w[i + 1].includes(':')) {
    const a = addr6(next());
    if (k === 'host') f.host6 = a;
    else if (k === 'src') f.src6 = a;
    else f.dst6 = a;
  } else if (k === 'host') f.host = addr(next());
  else if (k === 'src') f.src = addr(next());
  else if (k === 'dst') f.dst = addr(next());
  else if (k === 'port') {
    const p = Number(next());
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Error(`${what}: bad port "${w[i]}" (a number 0..65535)`);
    f.port = p;
  } else if (k === 'proto') {
    const v = next();
    f.proto = PROTOS[v] ?? (/^\d+$/.test(v) ? Number(v) : NaN);
    if (!(f.proto >= 0 && f.proto <= 255)) throw new Error(`${what}: unknown protocol "${v}" (icmp, icmp6, tcp, udp, ipip or a number 0..255)`);
  } else if (k in PROTOS) f.proto = PROTOS[k];
  else if (/^\d+\.\d+\.\d+\.\d+$/.test(k)) f.host = addr(k);
  else if (k.includes(':')) f.host6 = addr6(k);
  else throw new Error(`${what}: unknown word "${w[i]}" (use host/src/dst ADDR, icmp/icmp6/tcp/udp/ipip, proto N, port N, joined by and/or, with parentheses)`);
  return i + 1;
}

export function describeFilter(f: TraceFilter): string {
  const terms = filterTerms(f);
  if (terms.length === 1) return describeTerm(f) || 'all IPv4 and IPv6';
  return terms.map((t) => describeTerm(t) || 'all IPv4 and IPv6').join(' or ');
}

function describeTerm(f: TraceFilter): string {
  const parts: string[] = [];
  if (f.host !== undefined) parts.push(`host ${formatIpv4(f.host)}`);
  if (f.src !== undefined) parts.push(`src ${formatIpv4(f.src)}`);
  if (f.dst !== undefined) parts.push(`dst ${formatIpv4(f.dst)}`);
  if (f.host6 !== undefined) parts.push(`host ${f.host6}`);
  if (f.src6 !== undefined) parts.push(`src ${f.src6}`);
  if (f.dst6 !== undefined) parts.push(`dst ${f.dst6}`);
  if (f.proto !== undefined) parts.push(`proto ${f.proto}`);
  if (f.port !== undefined) parts.push(`port ${f.port}`);
  return parts.join(' and ');
}

/** Does the IPv4 packet at ip match? (Called only while a trace runs.) */
export function traceMatches(f: TraceFilter, b: Uint8Array, ip: number): boolean {
  if (termMatches(f, b, ip)) return true;
  if (f.or !== undefined) for (const t of f.or) if (termMatches(t, b, ip)) return true;
  return false;
}

function termMatches(f: TraceFilter, b: Uint8Array, ip: number): boolean {
  if (f.host6 !== undefined || f.src6 !== undefined || f.dst6 !== undefined) return false;
  const src = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
  const dst = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
  const proto = b[ip + 9];
  if (f.host !== undefined && src !== f.host && dst !== f.host) return false;
  if (f.src !== undefined && src !== f.src) return false;
  if (f.dst !== undefined && dst !== f.dst) return false;
  if (f.proto !== undefined && proto !== f.proto) return false;
  if (f.port !== undefined) {
    if (proto !== 6 && proto !== 17) return false;
    const l4 = ip + ((b[ip] & 15) << 2);
    const sp = (b[l4] << 8) | b[l4 + 1];
    const dp = (b[l4 + 2] << 8) | b[l4 + 3];
    if (sp !== f.port && dp !== f.port) return false;
  }
  return true;
}

/** Does an ARP request (sender address spa asking for tpa) match? An IP protocol or port in the
 * filter never matches ARP; addresses match the sender (src) and the target (dst). */
export function traceMatchesArp(f: TraceFilter, spa: number, tpa: number): boolean {
  if (termMatchesArp(f, spa, tpa)) return true;
  if (f.or !== undefined) for (const t of f.or) if (termMatchesArp(t, spa, tpa)) return true;
  return false;
}

function termMatchesArp(f: TraceFilter, spa: number, tpa: number): boolean {
  if (f.proto !== undefined || f.port !== undefined) return false;
  if (f.host !== undefined && spa !== f.host && tpa !== f.host) return false;
  if (f.src !== undefined && spa !== f.src) return false;
  if (f.dst !== undefined && tpa !== f.dst) return false;
  return true;
}

export class TraceSession {
  readonly records: TraceRecord[] = [];
  private done!: () => void;
  readonly finished: Promise<void>;
  /** Called with each record as it is added (to stream records from a worker thread). */
  onRecord: (r: TraceRecord) => void = () => {};
  constructor(readonly filter: TraceFilter, readonly wanted: number) {
    this.finished = new Promise((r) => (this.done = r));
  }
  get full(): boolean {
    return this.records.length >= this.wanted;
  }
  add(r: TraceRecord): void {
    this.records.push(r);
    this.onRecord(r);
    if (this.full) this.done();
  }
  finish(): void {
    this.done();
  }
}

/** Does the IPv6 packet at ip (upper-layer protocol `upper` at `l4`, -1 when not parseable) match? */
export function traceMatches6(f: TraceFilter, b: Uint8Array, ip: number, upper: number, l4: number): boolean {
  if (termMatches6(f, b, ip, upper, l4)) return true;
  if (f.or !== undefined) for (const t of f.or) if (termMatches6(t, b, ip, upper, l4)) return true;
  return false;
}

function termMatches6(f: TraceFilter, b: Uint8Array, ip: number, upper: number, l4: number): boolean {
  if (f.host !== undefined || f.src !== undefined || f.dst !== undefined) return false;
  if (f.host6 !== undefined || f.src6 !== undefined || f.dst6 !== undefined) {
    const src = formatIpv6(b, ip + 8);
    const dst = formatIpv6(b, ip + 24);
    if (f.host6 !== undefined && src !== f.host6 && dst !== f.host6) return false;
    if (f.src6 !== undefined && src !== f.src6) return false;
    if (f.dst6 !== undefined && dst !== f.dst6) return false;
  }
  if (f.proto !== undefined && upper !== f.proto) return false;
  if (f.port !== undefined) {
    if ((upper !== 6 && upper !== 17) || l4 < 0) return false;
    const sp = (b[l4] << 8) | b[l4 + 1];
    const dp = (b[l4 + 2] << 8) | b[l4 + 3];
    if (sp !== f.port && dp !== f.port) return false;
  }
  return true;
}
