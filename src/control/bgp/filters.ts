// Calico's BGPFilter (projectcalico.org/v3) on podway's sessions, as calico-node's confd turns it
// into BIRD filter functions (confd/pkg/resource/template/template_funcs.go BGPFilterBIRDFuncs,
// filterStatement; confd/pkg/backends/calico/bgp_processor.go buildImportFilter and
// buildExportFilter; checked 2026-12-07 against projectcalico/calico):
//
// - Each BGPFilter gives four BIRD functions (import and export, IPv4 and IPv6), each its rules in
//   order: `if (<conditions, AND-ed>) then { accept; }` (or reject). The first rule that matches
//   ends the whole filter with its action; a function whose rules all miss returns, and the next
//   step runs.
// - A peer's `import filter` calls the import function of every BGPFilter its BGPPeer names, in the
//   order of spec.filters (a name with no BGPFilter behind it is left out), then `accept`: a route
//   no rule matched is imported as without filters. Its `export filter` calls the export functions
//   the same way, then calico_export_to_bgp_peers (the node's blocks, routes inside the pools) and
//   `reject`: a route no rule matched goes out, or not, as without filters; an Accept sends a
//   route calico_export_to_bgp_peers would not (a learned default route, say), a Reject withholds
//   one it would (one of the node's own blocks).
// - Conditions: `cidr` + `matchOperator` (`net = CIDR`, `!=`, `~` In: inside or equal, `!~`
//   NotIn); with `prefixLength` the CIDR is BIRD's prefix set `[ CIDR{min,max} ]` (min the larger
//   of the CIDR's length and prefixLength.min, max the smaller of 32/128 and prefixLength.max):
//   In matches a route inside CIDR whose length is in min..max. Equal and NotEqual against a
//   prefix set are a runtime error in calico-node's BIRD (1.6: "Can't compare values of
//   incompatible types"), which rejects the route: evaluated here as 'error' and rejected too.
//   `source: RemotePeers` (`source ~ [ RTS_BGP ]`): routes learned over BGP (every imported
//   route; on export, not the node's own blocks). `interface` (`ifname ~ "eth*"`, BIRD's shell-like
//   pattern: `*` any run, `?` one character): the interface the route leaves by; a learned route's
//   is the node's interface on the next hop's subnet; the node's own blocks and addresses have
//   none here (a block is a blackhole in BIRD too; calico-node's borrowed /32s leave by a cali*
//   interface, which podway's pods do not have), so an `interface` rule never matches them. `peerType` (newer Calico): eBGP or iBGP, the
//   peer's AS against the session's own (localASNumber when set). `asPathPrefix`: the AS_PATH
//   begins with these AS numbers. `communities`: the route carries that standard community.
//   A large community (`a:b:c`) and `priority` (krt_metric) are not evaluated: a rule with them
//   never matches here (`podway apply` and the plan say so); `operations` are not done (the route
//   is accepted as it is).
import { Afi } from './wire';
import { parsePrefix, prefixWithin as within, type Prefix } from './wire/prefix';

export type FilterAction = 'accept' | 'reject';

/** One rule, compiled (canonical CIDR, prefix-length range as BIRD gets it). */
export interface BgpFilterRule {
  readonly action: FilterAction;
  /** The CIDR condition; absent: none. `range` when prefixLength was given (a prefix set). */
  readonly cidr?: { readonly prefix: string; readonly op: 'Equal' | 'NotEqual' | 'In' | 'NotIn'; readonly range?: readonly [number, number] };
  readonly remotePeers?: boolean;
  readonly iface?: string;
  readonly peerType?: 'eBGP' | 'iBGP';
  readonly asPathPrefix?: readonly number[];
  /** A standard community as a 32-bit number. */
  readonly community?: number;
  /** Conditions podway does not evaluate (the rule never matches). */
  readonly unsupported?: readonly string[];
}

/** One BGPFilter as a peer uses it: its name and rules per direction and family. */
export interface BgpPeerFilter {
  readonly name: string;
  readonly import4: readonly BgpFilterRule[];
  readonly import6: readonly BgpFilterRule[];
  readonly export4: readonly BgpFilterRule[];
  readonly export6: readonly BgpFilterRule[];
}

/** What a rule looks at in a route. */
export interface FilterRoute {
  readonly prefix: Prefix;
  /** Learned over BGP (BIRD's RTS_BGP); false for the node's own blocks and addresses. */
  readonly fromBgp: boolean;
  /** The session is eBGP (the peer's AS differs from the session's own). */
  readonly ebgp: boolean;
  /** The interface the route leaves by ('' or undefined: none). Called only when a rule asks. */
  readonly iface?: () => string | undefined;
  readonly asPath?: readonly number[];
  readonly communities?: readonly number[];
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * The rules of one direction and family of a BGPFilter spec as stored (unchecked JSON: a cached
 * plan input, or a resource read back). A malformed rule (an unknown action, a CIDR that does not
 * parse) is returned in `bad`, with why, and left out.
 */
export function compileRules(raw: unknown, family: 4 | 6, bad: string[], where: string): BgpFilterRule[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    bad.push(`${where}: not a list`);
    return [];
  }
  const out: BgpFilterRule[] = [];
  raw.forEach((r, i) => {
    const at = `${where}[${i}]`;
    if (!isObj(r)) {
      bad.push(`${at}: not a mapping`);
      return;
    }
    if (r.action !== 'Accept' && r.action !== 'Reject') {
      bad.push(`${at}.action: ${JSON.stringify(r.action)} is not Accept or Reject`);
      return;
    }
    const rule: { -readonly [K in keyof BgpFilterRule]: BgpFilterRule[K] } = { action: r.action === 'Accept' ? 'accept' : 'reject' };
    const unsupported: string[] = [];
    if (typeof r.cidr === 'string' && r.cidr !== '') {
      let p: Prefix;
      try {
        p = parsePrefix(r.cidr);
      } catch {
        bad.push(`${at}.cidr: ${JSON.stringify(r.cidr)} is not a CIDR`);
        return;
      }
      if ((p.afi === Afi.Ipv4) !== (family === 4)) {
        bad.push(`${at}.cidr: ${r.cidr} is not an IPv${family} CIDR`);
        return;
      }
      const op = r.matchOperator;
      if (op !== 'Equal' && op !== 'NotEqual' && op !== 'In' && op !== 'NotIn') {
        bad.push(`${at}.matchOperator: ${JSON.stringify(op)} is not Equal, NotEqual, In or NotIn`);
        return;
      }
      let range: [number, number] | undefined;
      if (isObj(r.prefixLength)) {
        const max = family === 4 ? 32 : 128;
        const lo = typeof r.prefixLength.min === 'number' ? Math.max(p.len, r.prefixLength.min) : p.len;
        const hi = typeof r.prefixLength.max === 'number' ? Math.min(max, r.prefixLength.max) : max;
        range = [lo, hi];
      }
      rule.cidr = { prefix: p.text, op, ...(range ? { range } : {}) };
    }
    if (r.source === 'RemotePeers') rule.remotePeers = true;
    if (typeof r.interface === 'string' && r.interface !== '') rule.iface = r.interface;
    if (r.peerType === 'eBGP' || r.peerType === 'iBGP') rule.peerType = r.peerType;
    if (Array.isArray(r.asPathPrefix) && r.asPathPrefix.length) {
      const asns = r.asPathPrefix.map((a) => (typeof a === 'number' ? a : typeof a === 'string' && /^\d+$/.test(a) ? Number(a) : NaN));
      if (asns.some((a) => !Number.isInteger(a))) unsupported.push('asPathPrefix (not plain AS numbers)');
      else rule.asPathPrefix = asns;
    }
    if (isObj(r.communities) && Array.isArray(r.communities.values) && r.communities.values.length) {
      const v = String(r.communities.values[0]);
      const m = /^(\d{1,5}):(\d{1,5})$/.exec(v);
      if (m && Number(m[1]) <= 0xffff && Number(m[2]) <= 0xffff) rule.community = (Number(m[1]) * 65536 + Number(m[2])) >>> 0;
      else unsupported.push(`communities ${v} (a large community)`);
    }
    if (r.priority !== undefined && r.priority !== null) unsupported.push('priority');
    if (unsupported.length) rule.unsupported = unsupported;
    out.push(rule);
  });
  return out;
}

/** A BGPFilter's spec as a peer uses it; `bad` gets what was left out, each naming its field. */
export function compileFilter(name: string, spec: unknown, bad: string[]): BgpPeerFilter {
  const s = isObj(spec) ? spec : {};
  const at = (f: string) => `BGPFilter ${name}: spec.${f}`;
  return {
    name,
    import4: compileRules(s.importV4, 4, bad, at('importV4')),
    import6: compileRules(s.importV6, 6, bad, at('importV6')),
    export4: compileRules(s.exportV4, 4, bad, at('exportV4')),
    export6: compileRules(s.exportV6, 6, bad, at('exportV6')),
  };
}

/**
 * What podway does not do of a BGPFilter spec (each with the field): for `podway apply`'s notes
 * and the plan's warnings. [] when it applies all of it.
 */
export function unappliedBgpFilterFields(spec: unknown): string[] {
  const s = isObj(spec) ? spec : {};
  const out: string[] = [];
  for (const dir of ['exportV4', 'importV4', 'exportV6', 'importV6']) {
    const rules = s[dir];
    if (!Array.isArray(rules)) continue;
    rules.forEach((r, i) => {
      if (!isObj(r)) return;
      const at = `spec.${dir}[${i}]`;
      if (r.priority !== undefined && r.priority !== null) out.push(`${at}.priority: not evaluated, the rule never matches on podway's sessions (calico-node's BIRD compares krt_metric)`);
      if (isObj(r.communities) && Array.isArray(r.communities.values) && r.communities.values.some((v) => !/^\d{1,5}:\d{1,5}$/.test(String(v)))) {
        out.push(`${at}.communities: a large community is not evaluated, the rule never matches on podway's sessions`);
      }
      if (Array.isArray(r.operations) && r.operations.length) out.push(`${at}.operations: not done, the route is accepted unmodified on podway's sessions`);
      if (isObj(r.prefixLength) && (r.matchOperator === 'Equal' || r.matchOperator === 'NotEqual')) {
        out.push(`${at}: matchOperator ${String(r.matchOperator)} with prefixLength compares a prefix with a prefix set, a runtime error in calico-node's BIRD that rejects every route reaching this rule (podway does the same); use In or NotIn`);
      }
    });
  }
  return out;
}

/** BIRD's shell-like string pattern (`*` any run, `?` one character), as `ifname ~ "eth*"`. */
export function patternMatches(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

const parsed = new Map<string, Prefix>();
function prefixOf(text: string): Prefix {
  let p = parsed.get(text);
  if (!p) {
    p = parsePrefix(text);
    if (parsed.size > 4096) parsed.clear();
    parsed.set(text, p);
  }
  return p;
}

/** One rule's verdict on a route: its action, 'error' (BIRD's runtime error), or null (no match). */
function ruleVerdict(rule: BgpFilterRule, r: FilterRoute): FilterAction | 'error' | null {
  if (rule.unsupported) return null;
  if (rule.peerType && (rule.peerType === 'eBGP') !== r.ebgp) return null;
  if (rule.cidr) {
    const c = rule.cidr;
    const cidr = prefixOf(c.prefix);
    if (c.range) {
      if (c.op === 'Equal' || c.op === 'NotEqual') return 'error';
      const inSet = r.prefix.afi === cidr.afi && within(cidr, r.prefix) && r.prefix.len >= c.range[0] && r.prefix.len <= c.range[1];
      if (inSet !== (c.op === 'In')) return null;
    } else {
      const equal = r.prefix.afi === cidr.afi && r.prefix.len === cidr.len && r.prefix.octets.equals(cidr.octets);
      const inside = r.prefix.afi === cidr.afi && within(cidr, r.prefix);
      const hit = c.op === 'Equal' ? equal : c.op === 'NotEqual' ? !equal : c.op === 'In' ? inside : !inside;
      if (!hit) return null;
    }
  }
  if (rule.remotePeers && !r.fromBgp) return null;
  if (rule.iface !== undefined) {
    const name = r.iface?.();
    if (!name || !patternMatches(rule.iface, name)) return null;
  }
  if (rule.community !== undefined && !(r.communities ?? []).includes(rule.community)) return null;
  if (rule.asPathPrefix) {
    const path = r.asPath ?? [];
    if (path.length < rule.asPathPrefix.length || rule.asPathPrefix.some((a, i) => path[i] !== a)) return null;
  }
  return rule.action;
}

/**
 * The verdict of a peer's BGPFilters on a route in one direction: the first matching rule's action
 * over the filters in order ('error' rejects the route, as BIRD's runtime error does), or null
 * when no rule matched (the default: import accepts, export does what it does without filters).
 */
export function filterVerdict(filters: readonly BgpPeerFilter[] | undefined, dir: 'import' | 'export', r: FilterRoute): FilterAction | 'error' | null {
  if (!filters?.length) return null;
  const v4 = r.prefix.afi === Afi.Ipv4;
  for (const f of filters) {
    const rules = dir === 'import' ? (v4 ? f.import4 : f.import6) : v4 ? f.export4 : f.export6;
    for (const rule of rules) {
      const v = ruleVerdict(rule, r);
      if (v !== null) return v;
    }
  }
  return null;
}
