// One IPAM allocation block, in exactly the JSON Calico's libcalico-go writes for
// model.AllocationBlock (fields in struct order, Go's nil-vs-empty distinctions kept):
//   {"cidr","affinity","affinity_claim_time"?,"allocations","unallocated","attributes",
//    "sequenceNumber","sequenceNumberForAllocation","deleted","hostAffinity"?}
// `allocations[ordinal]` is null for a free address, else an index into `attributes`;
// `unallocated` lists free ordinals in the order they will be handed out (a released ordinal goes to
// its end, so an address is not reused at once).
import { compareGoStrings, goJsonText, goString, goStringMap, GoJsonValue, parseGoJson } from './gojson';
import { formatIp, IpNet, netSize, parseIp, parseNet } from './net';
import { NO_RESERVATIONS, Reservations } from './reservations';

/**
 * model.AllocationAttribute: the handle and the owner's attributes ("secondary"), as libcalico-go
 * spells them: {"handle_id"?,"secondary"?,"alternateOwnerAttrs"?,"releasedAt"?}, all omitempty.
 */
export interface AllocationAttribute {
  readonly handleId: string | null;
  readonly secondary: Readonly<Record<string, string>> | null;
  /**
   * AlternateOwnerAttrs (json "alternateOwnerAttrs", Calico v3.32+): a live migration's other
   * owner; kept when read, never set by podway.
   */
  readonly alternate: Readonly<Record<string, string>> | null;
  /**
   * ReleasedAt (json "releasedAt", metav1.Time, Calico with IPAMConfiguration ipCooldownSeconds):
   * an attribute that holds released addresses in their cooldown. Such an address is neither free
   * nor anybody's: it goes back to `unallocated` once the cooldown is over (garbageCollect).
   */
  readonly releasedAt?: string | null;
  /**
   * In memory only, never written: the exact time (ms) of a release this process just made, as
   * Go's metav1.Time keeps it until marshalled (whole seconds in JSON). The garbage collection in
   * the same operation compares it, so with a cooldown of 0 the address is freed at once.
   */
  readonly releasedAtMs?: number;
  /** Fields of the stored attribute podway does not know (a later Calico's), as read: written back after the others. */
  readonly extra?: ReadonlyArray<readonly [string, GoJsonValue]>;
}

/**
 * The release cooldown a release applies (IPAMConfiguration ipCooldownSeconds, read from
 * /calico/ipam/v2/config; 0 when not set) and the time of the release.
 */
export interface ReleaseCooldown {
  readonly seconds: number;
  readonly now: Date;
}

/** Whether an attribute marks addresses in their release cooldown (Calico's ReleasedAt != nil). */
export function inCooldown(a: AllocationAttribute | null | undefined): boolean {
  return a !== null && a !== undefined && a.releasedAt !== null && a.releasedAt !== undefined;
}

/** Calico's handle-in-attribute cleanup: text after a '\r' is debris from an old migration bug. */
export function sanitizeHandle(handleId: string): string {
  return handleId.split('\r')[0];
}

const sameMap = (a: Readonly<Record<string, string>> | null, b: Readonly<Record<string, string>> | null): boolean => {
  // Go's reflect.DeepEqual: a nil map differs from an empty one.
  if (a === null || b === null) return a === b;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
};

export class BlockDecodeError extends Error {}

export class AllocationBlock {
  constructor(
    readonly cidr: IpNet,
    /** "host:<node>" (or "virtual:<name>"), null for a block nobody owns. */
    public affinity: string | null,
    /** RFC 3339 UTC seconds, as metav1.Time marshals; null = omitted. */
    public affinityClaimTime: string | null,
    readonly allocations: (number | null)[],
    /** null mirrors a Go nil slice (written as JSON null). */
    public unallocated: number[] | null,
    public attributes: AllocationAttribute[] | null,
    public sequenceNumber: bigint,
    public sequenceNumberForAllocation: Map<string, bigint> | null,
    public deleted: boolean,
    /**
     * Fields of the stored value podway does not use (Calico's strictAffinity, ones a
     * later Calico adds), as read: written back after the others, so a podway write does not drop
     * what Calico wrote.
     */
    readonly extra: ReadonlyArray<readonly [string, GoJsonValue]> = [],
  ) {}

  /** A new block as newBlock() + claimAffineBlock make it: all free, in order, no attributes. */
  static create(cidr: IpNet, affinity: string | null, nowNs: bigint, claimTime: Date | null): AllocationBlock {
    const size = Number(netSize(cidr));
    return new AllocationBlock(
      cidr, affinity, claimTime ? formatClaimTime(claimTime) : null,
      new Array<number | null>(size).fill(null), Array.from({ length: size }, (_, i) => i), null,
      nowNs, new Map(), false,
    );
  }

  get size(): number {
    return this.allocations.length;
  }

  /** The node of a "host:" affinity; '' otherwise. */
  host(): string {
    return this.affinity !== null && this.affinity.startsWith('host:') ? this.affinity.slice(5) : '';
  }

  /**
   * Free addresses (NumFreeAddresses): with reservations, those no reservation holds back; 0 for
   * a block one reservation covers whole.
   */
  numFree(reserved: Reservations = NO_RESERVATIONS): number {
    const free = this.unallocated ?? [];
    if (reserved.empty) return free.length;
    if (reserved.coversWhole(this.cidr)) return 0;
    if (reserved.overlapping(this.cidr).length === 0) return free.length;
    let n = 0;
    for (const ordinal of free) if (!reserved.matches(this.cidr.version, this.cidr.base + BigInt(ordinal))) n++;
    return n;
  }

  numInUse(): number {
    let n = 0;
    for (const a of this.allocations) if (a !== null) n++;
    return n;
  }

  /** No address in use (Calico's empty(); Windows-reserved handles count as free there too). */
  empty(): boolean {
    const attrs = this.attributes ?? [];
    return this.allocations.every((a) => a === null || (attrs[a]?.handleId ?? '').toLowerCase() === 'windows-reserved-ipam-handle');
  }

  ordinalToIp(ordinal: number): string {
    return formatIp(this.cidr.version, this.cidr.base + BigInt(ordinal));
  }

  /** The ordinal of `ip` in this block, or null when it lies outside. */
  ipToOrdinal(ip: string): number | null {
    const parsed = parseIp(ip);
    if (!parsed || parsed.version !== this.cidr.version) return null;
    const ord = parsed.value - this.cidr.base;
    return ord >= 0n && ord < BigInt(this.size) ? Number(ord) : null;
  }

  /**
   * Allocated addresses used by a node other than the block's affinity host (Calico's
   * NonAffineAllocations): the node is the allocation's `node` attribute ('' when none); every
   * allocation of a block with no host: affinity is listed. Dangling attribute indexes are skipped.
   */
  nonAffineAllocations(): { ip: string; node: string }[] {
    const host = this.host();
    const out: { ip: string; node: string }[] = [];
    this.allocations.forEach((a, o) => {
      if (a === null) return;
      const attr = this.attributeOf(o);
      if (!attr) return;
      const node = attr.secondary?.node ?? '';
      if (host !== '' && node === host) return;
      out.push({ ip: this.ordinalToIp(o), node });
    });
    return out;
  }

  /** The attribute an allocated ordinal points at (null when free or dangling). */
  attributeOf(ordinal: number): AllocationAttribute | null {
    const idx = this.allocations[ordinal];
    return idx === null || idx === undefined ? null : (this.attributes ?? [])[idx] ?? null;
  }

  /** findOrAddAttribute: identical (handle, secondary) pairs share one entry. */
  private findOrAddAttribute(handleId: string | null, secondary: Readonly<Record<string, string>> | null): number {
    const attrs = this.attributes ?? [];
    // A cooldown attribute (releasedAt) or one with fields podway does not know is never shared:
    // the new address would take on its meaning.
    const found = attrs.findIndex((a) => a.handleId === handleId && sameMap(a.secondary, secondary) && a.alternate === null && !inCooldown(a) && (a.extra?.length ?? 0) === 0);
    if (found >= 0) return found;
    this.attributes = [...attrs, { handleId, secondary: secondary ? { ...secondary } : null, alternate: null }];
    return this.attributes.length - 1;
  }

  private setSequenceForOrdinal(ordinal: number): void {
    if (this.sequenceNumberForAllocation === null) this.sequenceNumberForAllocation = new Map();
    this.sequenceNumberForAllocation.set(String(ordinal), this.sequenceNumber);
  }

  /**
   * Takes up to `num` ordinals from the front of `unallocated` for one handle. Does not check
   * affinity; the caller decides whether this node may use the block. Returns the ordinals taken.
   */
  autoAssign(num: number, handleId: string | null, secondary: Readonly<Record<string, string>> | null, reserved: Reservations = NO_RESERVATIONS): number[] {
    const free = this.unallocated ?? [];
    const want = Math.max(0, num);
    // Reserved ordinals are passed over and stay in `unallocated` in their place, as Calico's
    // autoAssign keeps them (MatchesIP); only the reservations touching this block are asked.
    const touching = reserved.empty ? NO_RESERVATIONS : new Reservations(reserved.overlapping(this.cidr));
    const take: number[] = [];
    const kept: number[] = [];
    let i = 0;
    for (; i < free.length && take.length < want; i++) {
      const ordinal = free[i]!;
      if (!touching.empty && touching.matches(this.cidr.version, this.cidr.base + BigInt(ordinal))) kept.push(ordinal);
      else take.push(ordinal);
    }
    if (take.length === 0) return [];
    const attrIdx = this.findOrAddAttribute(handleId, secondary);
    for (const ordinal of take) {
      this.allocations[ordinal] = attrIdx;
      this.setSequenceForOrdinal(ordinal);
    }
    this.unallocated = [...kept, ...free.slice(i)];
    return take;
  }

  /** Assigns one given ordinal; throws when it is already in use. */
  assign(ordinal: number, handleId: string | null, secondary: Readonly<Record<string, string>> | null): void {
    if (ordinal < 0 || ordinal >= this.size) throw new Error(`ordinal ${ordinal} outside block ${this.cidr.text}`);
    // Calico sets the sequence number before the in-use check; harmless either way, kept in order.
    this.setSequenceForOrdinal(ordinal);
    if (this.allocations[ordinal] !== null) throw new Error(`address ${this.ordinalToIp(ordinal)} is already assigned in block ${this.cidr.text}`);
    this.allocations[ordinal] = this.findOrAddAttribute(handleId, secondary);
    const free = this.unallocated ?? [];
    const at = free.indexOf(ordinal);
    if (at >= 0) this.unallocated = [...free.slice(0, at), ...free.slice(at + 1)];
  }

  /** Drops the given attribute indexes and renumbers the allocations that point past them. */
  private deleteAttributes(drop: ReadonlySet<number>): void {
    const attrs = this.attributes ?? [];
    const newIndex: (number | null)[] = [];
    const kept: AllocationAttribute[] = [];
    attrs.forEach((a, i) => {
      if (drop.has(i)) newIndex.push(null);
      else { newIndex.push(kept.length); kept.push(a); }
    });
    this.attributes = kept;
    for (let o = 0; o < this.allocations.length; o++) {
      const a = this.allocations[o];
      if (a !== null) this.allocations[o] = newIndex[a] ?? null;
    }
  }

  /**
   * Releases the given ordinals as libcalico-go's release() does (master, 2026-06+): each released
   * ordinal is pointed at one new attribute holding only `releasedAt` (the release time), its
   * sequence entry set anew, and garbageCollect(cooldown) then frees those whose cooldown is over
   * (with 0 seconds: these at once, to the end of `unallocated` in ordinal order). Ones already
   * free or cooling are returned in `notAllocated`; `countByHandle` says how many were released
   * per (sanitized) handle, for the handle decrements. When `expectHandle` is given, an address
   * held by another handle makes the whole call throw and changes nothing.
   */
  release(ordinals: readonly number[], cooldown: ReleaseCooldown, expectHandle?: string): { released: number[]; notAllocated: number[]; countByHandle: Map<string, number> } {
    const unique = [...new Set(ordinals)];
    const released: number[] = [];
    const notAllocated: number[] = [];
    const countByHandle = new Map<string, number>();
    for (const o of unique) {
      const idx = this.allocations[o];
      // An address in its release cooldown is not allocated (Calico's release skips it so).
      if (idx === null || idx === undefined || inCooldown(this.attributes?.[idx])) { notAllocated.push(o); continue; }
      const h = this.attributes?.[idx]?.handleId;
      const handle = h === null || h === undefined ? '' : sanitizeHandle(h);
      if (expectHandle !== undefined && expectHandle !== '' && handle !== expectHandle) {
        throw new Error(`address ${this.ordinalToIp(o)} is held by handle ${JSON.stringify(handle)}, not ${JSON.stringify(expectHandle)}`);
      }
      released.push(o);
      if (handle !== '') countByHandle.set(handle, (countByHandle.get(handle) ?? 0) + 1);
    }
    if (released.length === 0) return { released, notAllocated, countByHandle };
    const cooling = this.addCooldownAttribute(cooldown.now);
    for (const o of released) {
      this.allocations[o] = cooling;
      this.setSequenceForOrdinal(o);
    }
    this.garbageCollect(cooldown.seconds, cooldown.now);
    return { released, notAllocated, countByHandle };
  }

  /** addCooldownAttribute: a new attribute holding only the release time; returns its index. */
  private addCooldownAttribute(now: Date): number {
    const attrs = this.attributes ?? [];
    this.attributes = [...attrs, { handleId: null, secondary: null, alternate: null, releasedAt: formatClaimTime(now), releasedAtMs: now.getTime() }];
    return this.attributes.length - 1;
  }

  /** Ordinals held by a handle, in ordinal order. */
  ordinalsOfHandle(handleId: string): number[] {
    const attrs = this.attributes ?? [];
    const out: number[] = [];
    this.allocations.forEach((a, o) => {
      if (a !== null && attrs[a]?.handleId !== null && attrs[a]?.handleId !== undefined && sanitizeHandle(attrs[a].handleId!) === handleId) out.push(o);
    });
    return out;
  }

  /**
   * Releases every address of a handle as libcalico-go's releaseByHandle does (master, 2026-06+):
   * its ordinals are pointed at one new attribute holding only `releasedAt` (their sequence entries
   * left as they are, as there), then garbageCollect(cooldown) frees those whose cooldown is over
   * (with 0 seconds: these at once, in ordinal order, their sequence entries cleared) and drops
   * the handle's attributes, now unused. Returns the ordinals released.
   */
  releaseByHandle(handleId: string, cooldown: ReleaseCooldown): number[] {
    const attrs = this.attributes ?? [];
    const mine = new Set<number>();
    attrs.forEach((a, i) => { if (a.handleId !== null && sanitizeHandle(a.handleId) === handleId) mine.add(i); });
    if (mine.size === 0) return [];
    const ordinals: number[] = [];
    this.allocations.forEach((a, o) => { if (a !== null && mine.has(a)) ordinals.push(o); });
    if (ordinals.length === 0) return [];
    const cooling = this.addCooldownAttribute(cooldown.now);
    for (const o of ordinals) this.allocations[o] = cooling;
    this.garbageCollect(cooldown.seconds, cooldown.now);
    return ordinals;
  }

  /** Whether some address of the block is in its release cooldown (an attribute with releasedAt). */
  hasCooldown(): boolean {
    return (this.attributes ?? []).some(inCooldown);
  }

  /**
   * libcalico-go's garbageCollect (run on every block its IPAM reads, and by every release): an
   * address whose cooldown attribute's releasedAt lies more than `cooldownSeconds` before `now`
   * goes back to the end of `unallocated` (its sequence entry cleared), and attributes no
   * allocation points at any more are dropped. A negative `cooldownSeconds` frees every cooling
   * address. Returns whether the block changed. podway runs it on a block it reads only when the
   * block holds a cooldown attribute (see Ipam), and after each release.
   */
  garbageCollect(cooldownSeconds: number, now: Date): boolean {
    const attrs = this.attributes ?? [];
    const before = now.getTime() - cooldownSeconds * 1000;
    let changed = false;
    const used = new Set<number>();
    const free = this.unallocated ?? [];
    for (let o = 0; o < this.allocations.length; o++) {
      const idx = this.allocations[o];
      if (idx === null) continue;
      const released = attrs[idx]?.releasedAt;
      let dealloc = released !== null && released !== undefined;
      if (dealloc && cooldownSeconds >= 0) {
        const exact = attrs[idx]!.releasedAtMs;
        const t = exact ?? Date.parse(released!);
        // metav1.Time.Before: strictly earlier. A release made in this very operation counts as
        // earlier than `now` too: Go's clock has moved on (nanoseconds) by the time its garbage
        // collection reads it, so a cooldown of 0 frees it at once. An unreadable time is left
        // cooling (Calico could not have read the block at all).
        dealloc = Number.isFinite(t) && (t < before || (exact !== undefined && t <= before));
      }
      if (dealloc) {
        this.allocations[o] = null;
        free.push(o);
        this.sequenceNumberForAllocation?.delete(String(o));
        changed = true;
      } else used.add(idx);
    }
    if (changed) this.unallocated = free;
    const drop = new Set<number>();
    attrs.forEach((_, i) => { if (!used.has(i)) drop.add(i); });
    if (drop.size > 0) {
      this.deleteAttributes(drop);
      changed = true;
    }
    return changed;
  }

  /** The bytes Calico's json.Marshal(model.AllocationBlock) produces for this block. */
  encode(): string {
    const parts: string[] = [];
    parts.push(`"cidr":${goString(this.cidr.text)}`);
    parts.push(`"affinity":${this.affinity === null ? 'null' : goString(this.affinity)}`);
    if (this.affinityClaimTime !== null) parts.push(`"affinity_claim_time":${goString(this.affinityClaimTime)}`);
    parts.push(`"allocations":[${this.allocations.map((a) => (a === null ? 'null' : String(a))).join(',')}]`);
    parts.push(`"unallocated":${this.unallocated === null ? 'null' : `[${this.unallocated.join(',')}]`}`);
    parts.push(`"attributes":${this.attributes === null ? 'null' : `[${this.attributes.map(encodeAttribute).join(',')}]`}`);
    parts.push(`"sequenceNumber":${this.sequenceNumber.toString()}`);
    const seq = this.sequenceNumberForAllocation;
    parts.push(`"sequenceNumberForAllocation":${seq === null ? 'null' : `{${[...seq.keys()].sort(compareGoStrings).map((k) => `${goString(k)}:${seq.get(k)!.toString()}`).join(',')}}`}`);
    parts.push(`"deleted":${this.deleted}`);
    for (const [k, v] of this.extra) parts.push(`${goString(k)}:${goJsonText(v)}`);
    return `{${parts.join(',')}}`;
  }

  /** Reads a block value; `cidrFromKey` (from the key) must agree with the value's cidr. */
  static decode(text: string, cidrFromKey?: IpNet): AllocationBlock {
    const fail = (why: string): never => { throw new BlockDecodeError(`block ${cidrFromKey?.text ?? '?'}: ${why}`); };
    let v: GoJsonValue;
    try { v = parseGoJson(text); } catch (e) { return fail((e as Error).message); }
    if (!isObject(v)) return fail('value is not a JSON object');
    const cidr = typeof v.cidr === 'string' ? parseNet(v.cidr) : null;
    if (!cidr) return fail(`bad cidr ${JSON.stringify(v.cidr)}`);
    if (cidrFromKey && cidrFromKey.text !== cidr.text) fail(`value cidr ${cidr.text} differs from the key's`);
    const size = Number(netSize(cidr));
    let affinity: string | null = null;
    if (typeof v.affinity === 'string') affinity = v.affinity;
    else if (v.affinity !== null && v.affinity !== undefined) fail('affinity is not a string');
    // The deprecated hostAffinity field means "host:<it>" when affinity is unset (Calico reads it so).
    if (affinity === null && typeof v.hostAffinity === 'string' && v.hostAffinity !== '') affinity = `host:${v.hostAffinity}`;
    const claim = typeof v.affinity_claim_time === 'string' ? v.affinity_claim_time : null;
    if (!Array.isArray(v.allocations) || v.allocations.length !== size) fail(`allocations must be an array of ${size} entries`);
    const allocations = (v.allocations as GoJsonValue[]).map((a, i) => {
      if (a === null) return null;
      if (typeof a !== 'number' || !Number.isInteger(a) || a < 0) return fail(`allocations[${i}] is not null or an attribute index`);
      return a;
    });
    const unallocated = v.unallocated === null || v.unallocated === undefined ? null : Array.isArray(v.unallocated)
      ? v.unallocated.map((o, i) => (typeof o === 'number' && Number.isInteger(o) && o >= 0 && o < size ? o : fail(`unallocated[${i}] is not an ordinal`)))
      : fail('unallocated is not an array');
    const attributes = v.attributes === null || v.attributes === undefined ? null : Array.isArray(v.attributes)
      ? v.attributes.map((a, i) => decodeAttribute(a, `attributes[${i}]`, fail))
      : fail('attributes is not an array');
    let seqNo = 0n;
    if (typeof v.sequenceNumber === 'number' || typeof v.sequenceNumber === 'bigint') seqNo = BigInt(v.sequenceNumber);
    else if (v.sequenceNumber !== undefined) fail('sequenceNumber is not a number');
    let seqFor: Map<string, bigint> | null = null;
    if (isObject(v.sequenceNumberForAllocation)) {
      seqFor = new Map();
      for (const [k, n] of Object.entries(v.sequenceNumberForAllocation)) {
        if (typeof n !== 'number' && typeof n !== 'bigint') fail(`sequenceNumberForAllocation[${k}] is not a number`);
        seqFor.set(k, BigInt(n as number | bigint));
      }
    }
    const extra = Object.entries(v).filter(([k]) => !BLOCK_FIELDS.has(k));
    return new AllocationBlock(cidr, affinity, claim, allocations, unallocated, attributes, seqNo, seqFor, v.deleted === true, extra);
  }
}

/**
 * The block fields podway reads and writes itself (encode()). The deprecated hostAffinity is read
 * into affinity and not written back: kept, it would hand a block whose affinity was released
 * back to its old host on the next read.
 */
const BLOCK_FIELDS = new Set(['cidr', 'affinity', 'affinity_claim_time', 'allocations', 'unallocated', 'attributes', 'sequenceNumber', 'sequenceNumberForAllocation', 'deleted', 'hostAffinity']);

function isObject(v: GoJsonValue | undefined): v is { [key: string]: GoJsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeStringMap(v: GoJsonValue | undefined, where: string, fail: (why: string) => never): Record<string, string> | null {
  if (v === null || v === undefined) return null;
  if (!isObject(v)) return fail(`${where} is not an object`);
  const out: Record<string, string> = {};
  for (const [k, s] of Object.entries(v)) {
    if (typeof s !== 'string') fail(`${where}.${k} is not a string`);
    out[k] = s as string;
  }
  return out;
}

/** The attribute fields podway reads and writes itself (encodeAttribute); others are kept as read. */
const ATTRIBUTE_FIELDS = new Set(['handle_id', 'secondary', 'alternateOwnerAttrs', 'releasedAt']);

function decodeAttribute(v: GoJsonValue, where: string, fail: (why: string) => never): AllocationAttribute {
  if (!isObject(v)) return fail(`${where} is not an object`);
  const h = v.handle_id;
  if (h !== null && h !== undefined && typeof h !== 'string') fail(`${where}.handle_id is not a string`);
  const r = v.releasedAt;
  if (r !== null && r !== undefined && typeof r !== 'string') fail(`${where}.releasedAt is not a string`);
  const extra = Object.entries(v).filter(([k]) => !ATTRIBUTE_FIELDS.has(k));
  return {
    handleId: typeof h === 'string' ? h : null,
    secondary: decodeStringMap(v.secondary, `${where}.secondary`, fail),
    alternate: decodeStringMap(v.alternateOwnerAttrs, `${where}.alternateOwnerAttrs`, fail),
    ...(typeof r === 'string' ? { releasedAt: r } : {}),
    ...(extra.length > 0 ? { extra } : {}),
  };
}

/** model.AllocationAttribute: every field omitempty (a nil or empty map is left out), in struct order. */
function encodeAttribute(a: AllocationAttribute): string {
  const parts: string[] = [];
  if (a.handleId !== null) parts.push(`"handle_id":${goString(a.handleId)}`);
  if (a.secondary !== null && Object.keys(a.secondary).length > 0) parts.push(`"secondary":${goStringMap(a.secondary)}`);
  if (a.alternate !== null && Object.keys(a.alternate).length > 0) parts.push(`"alternateOwnerAttrs":${goStringMap(a.alternate)}`);
  if (a.releasedAt !== null && a.releasedAt !== undefined) parts.push(`"releasedAt":${goString(a.releasedAt)}`);
  for (const [k, x] of a.extra ?? []) parts.push(`${goString(k)}:${goJsonText(x)}`);
  return `{${parts.join(',')}}`;
}

/** metav1.Time's JSON: RFC 3339 in UTC with whole seconds ("2024-05-01T12:00:00Z"). */
export function formatClaimTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
