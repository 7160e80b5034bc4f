// UPDATE (RFC 4271 section 4.3) with the path attributes podway uses, MP_REACH/MP_UNREACH for
// IPv6 (RFC 4760), 4-octet AS paths (RFC 6793) and RFC 7606's revised error handling: a malformed
// attribute makes the UPDATE "treat-as-withdraw" or is discarded, and only errors that leave the
// NLRI unlocatable reset the session (thrown as BgpError).
import { AS_TRANS, Afi, AsSegment, AttrFlag, AttrType, BgpError, ErrCode, MsgType, SAFI_UNICAST, UpdateSub } from './constants';
import { frame } from './framing';
import { addressOctets, addressText, decodeNlri, encodeNlri, parsePrefix, Prefix } from './prefix';

export interface AsPathSegment {
  type: AsSegment;
  asns: number[];
}

export interface MpReach {
  afi: number;
  safi: number;
  /** Global next hop (the link-local one of a 32-octet IPv6 next hop is in `linkLocal`). */
  nextHop: string;
  linkLocal?: string;
  nlri: string[];
}

export interface MpUnreach {
  afi: number;
  safi: number;
  withdrawn: string[];
}

/** An attribute we do not interpret; optional transitive ones are passed on with Partial set. */
export interface RawAttr {
  flags: number;
  type: number;
  value: Buffer;
}

export interface PathAttrs {
  origin?: number;
  asPath?: AsPathSegment[];
  nextHop?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: { asn: number; address: string };
  communities?: number[];
  originatorId?: string;
  clusterList?: string[];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  unknown?: RawAttr[];
}

export interface UpdateMessage {
  type: MsgType.Update;
  withdrawn: string[];
  attrs: PathAttrs;
  nlri: string[];
  /** Set when RFC 7606 says to treat the UPDATE's announcements as withdrawals; says why. */
  treatAsWithdraw?: string;
  /** Attributes dropped under RFC 7606 "attribute discard", with why. */
  discarded: string[];
}

/** What decoding and encoding depend on in the session. */
export interface UpdateContext {
  /** Both sides announced the 4-octet AS capability. */
  fourOctetAs: boolean;
  /** The peer is in another AS (LOCAL_PREF, ORIGINATOR_ID, CLUSTER_LIST are then discarded). */
  ebgp: boolean;
}

const WK = AttrFlag.Transitive; // well-known: optional 0, transitive 1
const OT = AttrFlag.Optional | AttrFlag.Transitive;
const ON = AttrFlag.Optional;
/** Expected Optional/Transitive bits of each attribute we know. */
const EXPECTED_FLAGS: Record<number, number> = {
  [AttrType.Origin]: WK,
  [AttrType.AsPath]: WK,
  [AttrType.NextHop]: WK,
  [AttrType.Med]: ON,
  [AttrType.LocalPref]: WK,
  [AttrType.AtomicAggregate]: WK,
  [AttrType.Aggregator]: OT,
  [AttrType.Communities]: OT,
  [AttrType.OriginatorId]: ON,
  [AttrType.ClusterList]: ON,
  [AttrType.MpReach]: ON,
  [AttrType.MpUnreach]: ON,
  [AttrType.As4Path]: OT,
  [AttrType.As4Aggregator]: OT,
};

const updateError = (sub: number, detail: string) => new BgpError(ErrCode.Update, sub, Buffer.alloc(0), detail);

// ---------------------------------------------------------------------------------------------
// Decoding

/** Outcome of one attribute: fine, its UPDATE is treat-as-withdraw, or it is dropped. */
type Verdict = undefined | { withdraw: string } | { discard: string };

function decodeAsPath(v: Buffer, asSize: 2 | 4): AsPathSegment[] | null {
  const segs: AsPathSegment[] = [];
  let at = 0;
  while (at < v.length) {
    if (at + 2 > v.length) return null;
    const type = v[at];
    const count = v[at + 1];
    if (type < AsSegment.Set || type > AsSegment.ConfedSet || count === 0) return null;
    if (at + 2 + count * asSize > v.length) return null;
    const asns: number[] = [];
    for (let i = 0; i < count; i++) {
      asns.push(asSize === 4 ? v.readUInt32BE(at + 2 + 4 * i) : v.readUInt16BE(at + 2 + 2 * i));
    }
    segs.push({ type, asns });
    at += 2 + count * asSize;
  }
  return segs;
}

/** Path length as RFC 4271 counts it: an AS_SET counts 1, confederation segments 0. */
export function asPathLength(segs: AsPathSegment[]): number {
  let n = 0;
  for (const s of segs) n += s.type === AsSegment.Sequence ? s.asns.length : s.type === AsSegment.Set ? 1 : 0;
  return n;
}

/** RFC 6793 section 4.2.3: rebuild the 4-octet path from AS_PATH (with AS_TRANS) and AS4_PATH. */
function mergeAs4Path(asPath: AsPathSegment[], as4: AsPathSegment[]): AsPathSegment[] {
  const keep = asPathLength(asPath) - asPathLength(as4);
  if (keep < 0) return asPath;
  const out: AsPathSegment[] = [];
  let left = keep;
  for (const s of asPath) {
    if (left <= 0) break;
    if (s.type === AsSegment.Sequence) {
      const take = s.asns.slice(0, left);
      out.push({ type: s.type, asns: take });
      left -= take.length;
    } else if (s.type === AsSegment.Set) {
      out.push(s);
      left -= 1;
    }
  }
  return [...out, ...as4];
}

/** IPv4 or IPv6 unicast: the only families podway offers, and so the only ones it reads. */
function carriedFamily(afi: number, safi: number): boolean {
  return (afi === Afi.Ipv4 || afi === Afi.Ipv6) && safi === SAFI_UNICAST;
}

function decodeMpReach(v: Buffer): MpReach {
  if (v.length < 5) throw updateError(UpdateSub.OptionalAttr, 'MP_REACH_NLRI shorter than 5 octets');
  const afi = v.readUInt16BE(0);
  const safi = v[2];
  const nhLen = v[3];
  if (4 + nhLen + 1 > v.length) throw updateError(UpdateSub.OptionalAttr, 'MP_REACH_NLRI next hop overruns');
  const nh = v.subarray(4, 4 + nhLen);
  // Octet after the next hop is Reserved (was SNPA count); NLRI follows.
  const nlriField = v.subarray(4 + nhLen + 1);
  // A family other than IPv4 / IPv6 unicast (never offered: a VPN's SAFI 128, say): its next hop
  // and NLRI have other formats, not read; the attribute is ignored (decodeAttr counts it).
  if (!carriedFamily(afi, safi)) return { afi, safi, nextHop: '', nlri: [] };
  let nextHop = '';
  let linkLocal: string | undefined;
  if (afi === Afi.Ipv6 && (nhLen === 16 || nhLen === 32)) {
    nextHop = addressText(nh.subarray(0, 16));
    if (nhLen === 32) linkLocal = addressText(nh.subarray(16, 32));
  } else if (afi === Afi.Ipv4 && nhLen === 4) {
    nextHop = addressText(nh);
  } else if (afi === Afi.Ipv6 && nhLen === 4) {
    nextHop = addressText(nh); // RFC 8950-style IPv4 next hop for IPv6 NLRI: we read it, the route keeps it
  } else if (nhLen !== 0 || safi === SAFI_UNICAST) {
    throw updateError(UpdateSub.OptionalAttr, `MP_REACH_NLRI next hop of ${nhLen} octets for AFI ${afi}`);
  }
  return { afi, safi, nextHop, linkLocal, nlri: decodeNlri(afi, nlriField) };
}

/** Why an MP_REACH_NLRI next hop cannot be used ('' when it can): unspecified (with no link-local
 * one beside it, RFC 2545) or multicast. A link-local one is well formed: the route calculation
 * leaves it out (it needs an interface). */
function badMpNextHop(mp: MpReach): string {
  const nh = mp.nextHop;
  if (!nh.includes(':')) {
    const first = Number(nh.split('.')[0]);
    return nh === '0.0.0.0' || first >= 224 ? `${nh} is not a unicast address` : '';
  }
  if (nh === '::' && !mp.linkLocal) return ':: (unspecified)';
  if (/^ff/i.test(nh)) return `${nh} is multicast`;
  return '';
}

function decodeMpUnreach(v: Buffer): MpUnreach {
  if (v.length < 3) throw updateError(UpdateSub.OptionalAttr, 'MP_UNREACH_NLRI shorter than 3 octets');
  const afi = v.readUInt16BE(0);
  const safi = v[2];
  if (!carriedFamily(afi, safi)) return { afi, safi, withdrawn: [] };
  return { afi, safi, withdrawn: decodeNlri(afi, v.subarray(3)) };
}

/**
 * Decodes an UPDATE body. Throws BgpError for the errors that reset the session; everything RFC
 * 7606 handles more gently comes back in `treatAsWithdraw` / `discarded`.
 */
export function decodeUpdate(body: Buffer, ctx: UpdateContext): UpdateMessage {
  const withdrawnLen = body.readUInt16BE(0);
  if (2 + withdrawnLen + 2 > body.length) throw updateError(UpdateSub.MalformedAttrList, `withdrawn routes length ${withdrawnLen} overruns`);
  const withdrawn = decodeNlri(Afi.Ipv4, body.subarray(2, 2 + withdrawnLen));
  const attrLen = body.readUInt16BE(2 + withdrawnLen);
  const attrStart = 4 + withdrawnLen;
  if (attrStart + attrLen > body.length) throw updateError(UpdateSub.MalformedAttrList, `total path attribute length ${attrLen} overruns`);
  const nlri = decodeNlri(Afi.Ipv4, body.subarray(attrStart + attrLen));
  const msg: UpdateMessage = { type: MsgType.Update, withdrawn, attrs: {}, nlri, discarded: [] };
  const attrs = msg.attrs;
  const withdrawWhy: string[] = [];
  const seen = new Set<number>();
  let as4Path: AsPathSegment[] | undefined;
  const v = body.subarray(attrStart, attrStart + attrLen);
  let at = 0;
  while (at < v.length) {
    // RFC 7606 section 4: a header or value running past the attribute list is treat-as-withdraw;
    // the total length still locates the NLRI.
    if (at + 3 > v.length) { withdrawWhy.push('attribute header overruns the attribute list'); break; }
    const flags = v[at];
    const type = v[at + 1];
    const ext = (flags & AttrFlag.ExtendedLength) !== 0;
    if (ext && at + 4 > v.length) { withdrawWhy.push('attribute header overruns the attribute list'); break; }
    const len = ext ? v.readUInt16BE(at + 2) : v[at + 2];
    const start = at + (ext ? 4 : 3);
    if (start + len > v.length) {
      if (type === AttrType.MpReach || type === AttrType.MpUnreach) throw updateError(UpdateSub.OptionalAttr, `attribute ${type} overruns the attribute list`);
      withdrawWhy.push(`attribute ${type} of length ${len} overruns the attribute list`);
      break;
    }
    const value = v.subarray(start, start + len);
    at = start + len;
    if (seen.has(type)) {
      // RFC 7606 section 3(g): repeated MP attributes reset; any other repeat is discarded.
      if (type === AttrType.MpReach || type === AttrType.MpUnreach) throw updateError(UpdateSub.MalformedAttrList, `attribute ${type} repeated`);
      msg.discarded.push(`repeated attribute ${type}`);
      continue;
    }
    seen.add(type);
    const expected = EXPECTED_FLAGS[type];
    if (expected === undefined) {
      if (!(flags & AttrFlag.Optional)) {
        const data = Buffer.from(v.subarray(start - (ext ? 4 : 3), start + len));
        throw new BgpError(ErrCode.Update, UpdateSub.UnrecognizedWellKnown, data, `unrecognized well-known attribute ${type}`);
      }
      if (flags & AttrFlag.Transitive) (attrs.unknown ??= []).push({ flags, type, value: Buffer.from(value) });
      continue;
    }
    const flagsWrong = (flags & (AttrFlag.Optional | AttrFlag.Transitive)) !== expected;
    if (flagsWrong && (type === AttrType.MpReach || type === AttrType.MpUnreach)) {
      throw updateError(UpdateSub.AttrFlags, `attribute ${type} flags 0x${flags.toString(16)}`);
    }
    const verdict: Verdict = flagsWrong
      ? malformed(type, `attribute ${type} flags 0x${flags.toString(16)}`)
      : decodeAttr(type, value, attrs, ctx, s => { as4Path = s; });
    if (verdict && 'withdraw' in verdict) withdrawWhy.push(verdict.withdraw);
    if (verdict && 'discard' in verdict) msg.discarded.push(verdict.discard);
  }
  if (attrs.asPath && as4Path && !ctx.fourOctetAs) attrs.asPath = mergeAs4Path(attrs.asPath, as4Path);
  const announces = nlri.length > 0 || (attrs.mpReach?.nlri.length ?? 0) > 0;
  if (announces) {
    // RFC 7606 section 3(d): a missing well-known mandatory attribute is treat-as-withdraw.
    if (attrs.origin === undefined) withdrawWhy.push('ORIGIN missing');
    if (attrs.asPath === undefined) withdrawWhy.push('AS_PATH missing');
    if (nlri.length > 0 && attrs.nextHop === undefined) withdrawWhy.push('NEXT_HOP missing');
  }
  if (withdrawWhy.length) msg.treatAsWithdraw = withdrawWhy.join('; ');
  return msg;
}

/** What RFC 7606 section 7 says to do with a malformed attribute of this type. */
function malformed(type: number, why: string): Verdict {
  switch (type) {
    case AttrType.AtomicAggregate:
    case AttrType.Aggregator:
    case AttrType.As4Aggregator:
    case AttrType.As4Path:
      return { discard: why };
    default:
      return { withdraw: why };
  }
}

function decodeAttr(type: number, v: Buffer, a: PathAttrs, ctx: UpdateContext, setAs4: (s: AsPathSegment[]) => void): Verdict {
  const bad = (why: string) => malformed(type, why);
  switch (type) {
    case AttrType.Origin:
      if (v.length !== 1) return bad(`ORIGIN of length ${v.length}`);
      if (v[0] > 2) return bad(`ORIGIN value ${v[0]}`);
      a.origin = v[0];
      return;
    case AttrType.AsPath: {
      const segs = decodeAsPath(v, ctx.fourOctetAs ? 4 : 2);
      if (!segs) return bad('malformed AS_PATH');
      a.asPath = segs;
      return;
    }
    case AttrType.As4Path: {
      if (ctx.fourOctetAs) return { discard: 'AS4_PATH from a 4-octet AS speaker' };
      const segs = decodeAsPath(v, 4);
      if (!segs) return bad('malformed AS4_PATH');
      setAs4(segs);
      return;
    }
    case AttrType.NextHop:
      if (v.length !== 4) return bad(`NEXT_HOP of length ${v.length}`);
      if (v.readUInt32BE(0) === 0 || v[0] >= 224) return bad(`NEXT_HOP ${addressText(v)}`);
      a.nextHop = addressText(v);
      return;
    case AttrType.Med:
      if (v.length !== 4) return bad(`MULTI_EXIT_DISC of length ${v.length}`);
      a.med = v.readUInt32BE(0);
      return;
    case AttrType.LocalPref:
      if (ctx.ebgp) return { discard: 'LOCAL_PREF from an external peer' };
      if (v.length !== 4) return bad(`LOCAL_PREF of length ${v.length}`);
      a.localPref = v.readUInt32BE(0);
      return;
    case AttrType.AtomicAggregate:
      if (v.length !== 0) return bad(`ATOMIC_AGGREGATE of length ${v.length}`);
      a.atomicAggregate = true;
      return;
    case AttrType.Aggregator: {
      const asSize = ctx.fourOctetAs ? 4 : 2;
      if (v.length !== asSize + 4) return bad(`AGGREGATOR of length ${v.length}`);
      a.aggregator = { asn: asSize === 4 ? v.readUInt32BE(0) : v.readUInt16BE(0), address: addressText(v.subarray(asSize)) };
      return;
    }
    case AttrType.As4Aggregator:
      return; // informational only; we do not originate aggregates
    case AttrType.Communities: {
      if (v.length === 0 || v.length % 4 !== 0) return bad(`COMMUNITIES of length ${v.length}`);
      const c: number[] = [];
      for (let i = 0; i < v.length; i += 4) c.push(v.readUInt32BE(i));
      a.communities = c;
      return;
    }
    case AttrType.OriginatorId:
      if (ctx.ebgp) return { discard: 'ORIGINATOR_ID from an external peer' };
      if (v.length !== 4) return bad(`ORIGINATOR_ID of length ${v.length}`);
      a.originatorId = addressText(v);
      return;
    case AttrType.ClusterList: {
      if (ctx.ebgp) return { discard: 'CLUSTER_LIST from an external peer' };
      if (v.length === 0 || v.length % 4 !== 0) return bad(`CLUSTER_LIST of length ${v.length}`);
      const ids: string[] = [];
      for (let i = 0; i < v.length; i += 4) ids.push(addressText(v.subarray(i, i + 4)));
      a.clusterList = ids;
      return;
    }
    case AttrType.MpReach: {
      // A length that hides the NLRI resets the session (thrown); a next hop that is well formed
      // but unusable makes its NLRI withdrawals (RFC 7606 section 7.11 / 7.3 alike).
      const mp = decodeMpReach(v);
      a.mpReach = mp;
      // RFC 4760 section 6: a family never negotiated is not ours to judge (BIRD and GoBGP
      // ignore it too): ignored, counted as a discarded attribute, the session kept.
      if (!carriedFamily(mp.afi, mp.safi)) return { discard: `MP_REACH_NLRI of AFI ${mp.afi} SAFI ${mp.safi}, a family not negotiated` };
      const why = mp.nlri.length && mp.safi === SAFI_UNICAST ? badMpNextHop(mp) : '';
      return why ? { withdraw: `MP_REACH_NLRI next hop ${why}` } : undefined;
    }
    case AttrType.MpUnreach: {
      const mp = decodeMpUnreach(v);
      a.mpUnreach = mp;
      if (!carriedFamily(mp.afi, mp.safi)) return { discard: `MP_UNREACH_NLRI of AFI ${mp.afi} SAFI ${mp.safi}, a family not negotiated` };
      return;
    }
  }
  return;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** One attribute; `forceExt` uses the 2-octet length even when it would fit in one octet. */
function attr(flags: number, type: number, value: Buffer, forceExt = false): Buffer {
  const ext = forceExt || value.length > 255;
  const head = Buffer.alloc(ext ? 4 : 3);
  head[0] = ext ? flags | AttrFlag.ExtendedLength : flags & ~AttrFlag.ExtendedLength;
  head[1] = type;
  if (ext) head.writeUInt16BE(value.length, 2);
  else head[2] = value.length;
  return Buffer.concat([head, value]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function encodeAsPath(segs: AsPathSegment[], asSize: 2 | 4): Buffer {
  const parts: Buffer[] = [];
  for (const s of segs) {
    // A segment holds at most 255 ASes; split longer ones.
    for (let i = 0; i < s.asns.length; i += 255) {
      const chunk = s.asns.slice(i, i + 255);
      const b = Buffer.alloc(2 + chunk.length * asSize);
      b[0] = s.type;
      b[1] = chunk.length;
      chunk.forEach((asn, k) => {
        if (asSize === 4) b.writeUInt32BE(asn >>> 0, 2 + 4 * k);
        else b.writeUInt16BE(asn > 0xffff ? AS_TRANS : asn, 2 + 2 * k);
      });
      parts.push(b);
    }
  }
  return Buffer.concat(parts);
}

/** The path attributes (everything but MP_REACH/MP_UNREACH) in type order. */
function encodeAttrs(a: PathAttrs, ctx: UpdateContext): Buffer[] {
  const out: Buffer[] = [];
  if (a.origin !== undefined) out.push(attr(WK, AttrType.Origin, Buffer.from([a.origin])));
  if (a.asPath !== undefined) {
    out.push(attr(WK, AttrType.AsPath, encodeAsPath(a.asPath, ctx.fourOctetAs ? 4 : 2)));
  }
  if (a.nextHop !== undefined) out.push(attr(WK, AttrType.NextHop, addressOctets(a.nextHop)));
  if (a.med !== undefined) out.push(attr(ON, AttrType.Med, u32(a.med)));
  if (a.localPref !== undefined && !ctx.ebgp) out.push(attr(WK, AttrType.LocalPref, u32(a.localPref)));
  if (a.atomicAggregate) out.push(attr(WK, AttrType.AtomicAggregate, Buffer.alloc(0)));
  if (a.communities?.length) out.push(attr(OT, AttrType.Communities, Buffer.concat(a.communities.map(u32))));
  if (a.originatorId !== undefined && !ctx.ebgp) out.push(attr(ON, AttrType.OriginatorId, addressOctets(a.originatorId)));
  if (a.clusterList?.length && !ctx.ebgp) out.push(attr(ON, AttrType.ClusterList, Buffer.concat(a.clusterList.map(addressOctets))));
  if (a.asPath !== undefined && !ctx.fourOctetAs && a.asPath.some(s => s.asns.some(n => n > 0xffff))) {
    out.push(attr(OT, AttrType.As4Path, encodeAsPath(a.asPath, 4)));
  }
  for (const u of a.unknown ?? []) out.push(attr(u.flags | AttrFlag.Partial, u.type, u.value));
  return out;
}

function updateBody(withdrawn: Buffer, attrs: Buffer, nlri: Buffer): Buffer {
  const head = Buffer.alloc(2);
  head.writeUInt16BE(withdrawn.length);
  const mid = Buffer.alloc(2);
  mid.writeUInt16BE(attrs.length);
  return Buffer.concat([head, withdrawn, mid, attrs, nlri]);
}

/** Room for NLRI in one message once the header, the two length fields and `fixed` are in. */
const roomFor = (fixed: number) => 4096 - 19 - 4 - fixed;

/** Groups NLRI entries into chunks whose encoded size fits `room` octets. */
function pack(entries: Buffer[], room: number): Buffer[] {
  const out: Buffer[] = [];
  let cur: Buffer[] = [];
  let size = 0;
  for (const e of entries) {
    if (size + e.length > room && cur.length) {
      out.push(Buffer.concat(cur));
      cur = [];
      size = 0;
    }
    cur.push(e);
    size += e.length;
  }
  if (cur.length) out.push(Buffer.concat(cur));
  return out;
}

/**
 * UPDATE messages announcing `prefixes` (all of one family) with `attrs`. IPv4 goes in the NLRI
 * field with NEXT_HOP; IPv6 in MP_REACH_NLRI with `attrs.nextHop` as its next hop. Splits across
 * as many messages as the 4096-octet limit needs.
 */
export function encodeAnnounce(prefixes: Prefix[], attrs: PathAttrs, ctx: UpdateContext): Buffer[] {
  if (!prefixes.length) return [];
  const afi = prefixes[0].afi;
  const entries = prefixes.map(encodeNlri);
  if (afi === Afi.Ipv4) {
    const fixed = Buffer.concat(encodeAttrs(attrs, ctx));
    return pack(entries, roomFor(fixed.length)).map(n => frame(MsgType.Update, updateBody(Buffer.alloc(0), fixed, n)));
  }
  const { nextHop, ...rest } = attrs;
  const others = Buffer.concat(encodeAttrs(rest, ctx));
  const nh = addressOctets(nextHop ?? '::');
  const mpHead = Buffer.alloc(5 + nh.length);
  mpHead.writeUInt16BE(Afi.Ipv6, 0);
  mpHead[2] = SAFI_UNICAST;
  mpHead[3] = nh.length;
  nh.copy(mpHead, 4);
  // MP_REACH always gets the 4-octet extended header here, so its size is known before packing.
  return pack(entries, roomFor(others.length + 4 + mpHead.length)).map(n => {
    const mp = attr(ON, AttrType.MpReach, Buffer.concat([mpHead, n]), true);
    return frame(MsgType.Update, updateBody(Buffer.alloc(0), Buffer.concat([mp, others]), Buffer.alloc(0)));
  });
}

/** UPDATE messages withdrawing `prefixes` (one family); IPv6 goes in MP_UNREACH_NLRI. */
export function encodeWithdraw(prefixes: Prefix[]): Buffer[] {
  if (!prefixes.length) return [];
  const entries = prefixes.map(encodeNlri);
  if (prefixes[0].afi === Afi.Ipv4) {
    return pack(entries, roomFor(0)).map(n => frame(MsgType.Update, updateBody(n, Buffer.alloc(0), Buffer.alloc(0))));
  }
  return pack(entries, roomFor(4 + 3)).map(n => {
    const head = Buffer.from([0, Afi.Ipv6, SAFI_UNICAST]);
    const mp = attr(ON, AttrType.MpUnreach, Buffer.concat([head, n]), true);
    return frame(MsgType.Update, updateBody(Buffer.alloc(0), mp, Buffer.alloc(0)));
  });
}

/** End-of-RIB marker (RFC 4724 section 2): empty UPDATE for IPv4, empty MP_UNREACH for others. */
export function encodeEndOfRib(afi: Afi): Buffer {
  if (afi === Afi.Ipv4) return frame(MsgType.Update, updateBody(Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)));
  const mp = attr(ON, AttrType.MpUnreach, Buffer.from([0, afi, SAFI_UNICAST]));
  return frame(MsgType.Update, updateBody(Buffer.alloc(0), mp, Buffer.alloc(0)));
}

/** The family an UPDATE is End-of-RIB for, or null when it is not one. */
export function endOfRibFamily(m: UpdateMessage): Afi | null {
  if (m.withdrawn.length || m.nlri.length) return null;
  const a = m.attrs;
  const keys = Object.keys(a).filter(k => (a as Record<string, unknown>)[k] !== undefined);
  if (keys.length === 0) return Afi.Ipv4;
  // Another family's End-of-RIB (a VPN's, SAFI 128) is none of ours.
  if (keys.length === 1 && a.mpUnreach && a.mpUnreach.withdrawn.length === 0) return carriedFamily(a.mpUnreach.afi, a.mpUnreach.safi) ? a.mpUnreach.afi as Afi : null;
  return null;
}

export { parsePrefix };
