// IP address management with Calico's block/affinity algorithm (libcalico-go lib/ipam), over
// podway's KvStore, reading and writing exactly Calico's keys and values — so podway and Calico
// tools can share one datastore.
//
// Each node owns ("is affine to") blocks carved from IP pools; it assigns from its own blocks,
// claims a new block when they are full (pending affinity → create block → confirmed affinity),
// and, unless strict_affinity is set, borrows single addresses from other nodes' blocks when it
// cannot claim more. A handle (one per pod, "k8s-pod-network.<containerID>") counts its addresses
// per block so they can be released together. All writes are compare-and-swap on the key's
// modRevision and retried (Calico's datastoreRetries = 100) when another writer got there first;
// the handle is incremented before the block write and decremented if that write fails, so a
// crash can leave a handle over-counted but never an address without a handle. Unlike Calico, the
// block write is also conditional on the handle still being as incremented (one transaction), so
// a handle deleted as empty while an assignment stalled before its block write cannot lose them.
import { KvEntry, KvStore } from '../kv/kv';
import { AllocationAttribute, AllocationBlock, inCooldown, ReleaseCooldown, sanitizeHandle } from './block';
import {
  affinityKey, BLOCK_PREFIX, blockKey, blockPrefix, checkSegment, handleKey,
  IPAM_CONFIG_KEY, IPAM_PREFIX, IPPOOL_PREFIX, nodeAffinityPrefix, nodeKey, parseAffinityKey, parseBlockKey, parseHandleKey,
} from './keys';
import { IpNet, IpVersion, makeNet, netContains, netContainsNet, netSize, netsOverlap, parseIp, parseNet } from './net';
import {
  AffinityState, decodeAffinity, decodeHandle, decodeIpamConfig, decodeNodeLabels, decodePool, DEFAULT_IPAM_CONFIG,
  DEFAULT_MAX_BLOCKS_PER_HOST, encodeAffinity, encodeHandle, HandleBlocks, IpamConfig, PoolInfo,
} from './records';
import { readReservations, Reservations } from './reservations';
import { Labels } from './selector';
import { podwayCommand } from '../../util/invocation';

/** Calico's datastoreRetries: how often a compare-and-swap loop retries after a conflict. */
export const DATASTORE_RETRIES = 100;

export interface IpamOptions {
  /** Clock for block sequence numbers and affinity claim times. */
  readonly now?: () => Date;
  /**
   * Where a node starts looking for a free block in a pool. 'spread' (default, like Calico's
   * hostname-seeded random start) puts different nodes at different places, so they rarely race
   * for one block; 'sequential' takes the lowest free block first (predictable, for tests).
   */
  readonly blockSearch?: 'spread' | 'sequential';
  readonly retries?: number;
  /**
   * Where a stored IPPool IPAM cannot read is reported (it is skipped, once per pool and
   * instance). Default: a "podway: warning: ..." line on stderr.
   */
  readonly warn?: (message: string) => void;
}

/** A stored IPPool IPAM skips: it failed its schema (e.g. `ipipMode: always` written by another tool). */
export interface SkippedPool {
  readonly key: string;
  /** Why, naming the key and the field. */
  readonly message: string;
  /** Its spec.cidr when that at least parses: no address inside it is handed out through another pool. */
  readonly cidr: IpNet | null;
  /** Its spec.disabled as stored (absent: false); null when the value or the field cannot be read. */
  readonly disabled: boolean | null;
}

export interface AutoAssignRequest {
  readonly node: string;
  readonly count: number;
  /** Usually "k8s-pod-network.<containerID>"; null assigns without a handle (then only releaseIps frees it). */
  readonly handleId: string | null;
  /** Stored as the allocation's "secondary" attributes (node, pod, namespace, timestamp, ...). */
  readonly attrs?: Readonly<Record<string, string>>;
  /** Pool names or CIDRs to use instead of all enabled pools whose nodeSelector matches. */
  readonly pools?: readonly string[];
  /**
   * The labels of the requesting pod's namespace, which an unnamed request's pools'
   * namespaceSelector must match (libcalico-go's SelectsNamespace). Absent: no namespace, {} (as
   * libcalico-go evaluates it without one: `all()` matches, `has(x)` does not).
   */
  readonly namespaceLabels?: Labels;
  /** IP version to assign (Calico's Num4/Num6 of AutoAssignArgs, one per call); default 4. */
  readonly version?: IpVersion;
  /**
   * What the addresses are for (Calico's IntendedUse): only pools whose allowedUses hold it are
   * used. Default Workload (pod addresses); tunnel addresses ask for Tunnel.
   */
  readonly use?: AssignUse;
}

/** The uses podway assigns addresses for (LoadBalancer pools are never assigned from). */
export type AssignUse = 'Workload' | 'Tunnel';

export interface AutoAssignResult {
  /** Assigned addresses (possibly fewer than asked; then `errors` says why). */
  readonly ips: string[];
  readonly errors?: string[];
  /** Set when no enabled pool of the version selects the node and allows the use (nothing to assign from, not a shortage). */
  readonly noPool?: true;
  /**
   * Set when the pools are full: no free block left to claim, and borrowing single addresses from
   * other nodes' blocks was tried and found none. Waiting will not help until addresses are released.
   */
  readonly exhausted?: true;
}

export interface AssignIpRequest {
  readonly ip: string;
  readonly handleId: string | null;
  readonly attrs?: Readonly<Record<string, string>>;
  readonly node: string;
  /** When given, the address's pool must allow this use (as Calico's AssignIP with IntendedUse). */
  readonly use?: AssignUse;
}

export interface ReleaseResult {
  readonly released: string[];
  /** Addresses that were not assigned (already free, or in no block). */
  readonly notAllocated: string[];
}

export interface NodeBlock {
  readonly cidr: string;
  readonly state: AffinityState | '';
  /** False when the affinity exists but its block does not (a claim in progress or a leftover). */
  readonly exists: boolean;
  readonly size: number;
  readonly inUse: number;
  readonly free: number;
}

export type IpamProblemKind =
  | 'address-without-handle' // allocated with a handle that has no handle key
  | 'handle-count-mismatch' // handle's count for a block differs from the addresses it holds there
  | 'handle-missing-block' // handle references a block that does not exist
  | 'affinity-mismatch' // affinity key and block's affinity field disagree
  | 'pending-affinity' // an affinity not confirmed (a claim in progress or abandoned)
  | 'empty-non-affine-block' // a block with no affinity and no addresses (should have been deleted)
  | 'block-outside-pools' // a block in no IP pool
  | 'bad-block' // a block value that is malformed or internally inconsistent
  | 'bad-value'; // an affinity or handle value that cannot be read

export interface IpamProblem {
  readonly kind: IpamProblemKind;
  /** The datastore key at fault. */
  readonly key: string;
  readonly message: string;
  readonly block?: string;
  readonly node?: string;
  readonly handle?: string;
  readonly ips?: readonly string[];
}

export interface BlockUsage {
  readonly cidr: string;
  /** "host:<node>", or null for a block no node owns. */
  readonly affinity: string | null;
  readonly size: number;
  readonly inUse: number;
  readonly free: number;
  /** Addresses in use by another node than the block's owner (borrowed). */
  readonly borrowed: number;
}

export interface PoolUsage {
  /** Pool name; "orphaned allocation blocks" (as calicoctl says) for blocks in no pool. */
  readonly name: string;
  readonly cidr: string;
  /**
   * spec.disabled. For a pool IPAM skips, as stored (absent: false, as Calico defaults it), and
   * null when that cannot be told (the value unreadable, or spec.disabled not a boolean): a pool
   * skipped for another reason is no enabled pool because its stored field says false.
   */
  readonly disabled: boolean | null;
  /** A stored pool IPAM skips (it cannot read it): why, naming the key and field. Its blocks are
   * its own, not orphaned. */
  readonly skipped?: string;
  /** Addresses in the pool (a bigint text for IPv6-sized pools is not needed yet; number). */
  readonly size: number;
  readonly inUse: number;
  readonly free: number;
  readonly blocks: BlockUsage[];
}

/** What route calculation needs from IPAM. */
export interface RouteInputs {
  readonly affinities: { readonly node: string; readonly cidr: string; readonly state: AffinityState | '' }[];
  /** Addresses used by a node other than the block's owner: each needs a /32 route to `node`. */
  readonly borrowed: { readonly ip: string; readonly node: string; readonly block: string; readonly blockNode: string }[];
}

class CasConflict extends Error {}
class BlockClaimConflict extends Error {}
class StaleAffinity extends Error {}

type Located = { entry: KvEntry; block: AllocationBlock };

/**
 * A short random pause after a lost compare-and-swap in the claim path. Claiming is not
 * lock-free: a claimant that re-marks an affinity pending makes every other claimant's next write
 * fail, and a claimant that loses retries at once, so equal competitors can keep undoing each
 * other (seen: 2 processes x 20 concurrent claims on FileKv rewrote one affinity 3,000+ times
 * without a block ever being confirmed). etcd's round trips spread the claimants by chance; this
 * spreads them on purpose (up to 1, 2, 4 ... 32 ms, growing with the attempt).
 */
function conflictPause(attempt: number): Promise<void> {
  const ms = Math.random() * (1 << Math.min(attempt, 5));
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** FNV-1a of the node name: a stable per-node starting point in a pool. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

const noAttrs = (attrs: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> | null =>
  attrs && Object.keys(attrs).length > 0 ? attrs : null;

export class Ipam {
  private readonly now: () => Date;
  private readonly spread: boolean;
  /** ipCooldownSeconds of the config last read (getConfig); null before the first read. */
  private cooldownSeconds: number | null = null;
  private readonly retries: number;
  /** Per node, the tail of this instance's block claims (see claimSerially). */
  private readonly claims = new Map<string, Promise<void>>();
  private readonly warn: (message: string) => void;
  /** Keys of the skipped pools already warned about (once per instance). */
  private readonly warned = new Set<string>();

  constructor(readonly kv: KvStore, options: IpamOptions = {}) {
    this.now = options.now ?? (() => new Date());
    this.warn = options.warn ?? ((m) => void process.stderr.write(`podway: warning: ${m}\n`));
    this.spread = (options.blockSearch ?? 'spread') === 'spread';
    this.retries = options.retries ?? DATASTORE_RETRIES;
  }

  // ------------------------------------------------------------------------------------------
  // Reading configuration

  /** The IPAM config (Calico's defaults when /calico/ipam/v2/config is absent). */
  async getConfig(): Promise<IpamConfig> {
    const e = await this.kv.get(IPAM_CONFIG_KEY);
    let config: IpamConfig;
    if (!e) config = DEFAULT_IPAM_CONFIG;
    else {
      try {
        config = decodeIpamConfig(e.value);
      } catch (err) {
        throw new Error(`${IPAM_CONFIG_KEY}: ${(err as Error).message}`);
      }
    }
    this.cooldownSeconds = config.ipCooldownSeconds ?? 0;
    return config;
  }

  /**
   * All pools of one IP version (of both when `version` is not given), enabled or not, that IPAM
   * can read; a stored pool that fails its schema is left out with a warning (see readPools).
   */
  async listPools(version?: IpVersion): Promise<PoolInfo[]> {
    return (await this.readPools(version)).pools;
  }

  /**
   * The pools, and the stored ones IPAM skips. One pool another tool wrote with a value podway
   * does not accept (`ipipMode: always`: Calico's validator refuses it too, case-sensitively)
   * must not stop every assignment on every node: it is skipped with a warning naming it and the
   * field, as `podway run` skips it, and nothing inside its CIDR is handed out (see `excluded`).
   */
  async readPools(version?: IpVersion): Promise<{ pools: PoolInfo[]; skipped: SkippedPool[] }> {
    const list = await this.kv.list(IPPOOL_PREFIX);
    const pools: PoolInfo[] = [];
    const skipped: SkippedPool[] = [];
    for (const e of list.entries) {
      try {
        const p = decodePool(e.value, e.key);
        if (version === undefined || p.cidr.version === version) pools.push(p);
      } catch (err) {
        const cidr = storedCidr(e.value);
        if (version !== undefined && cidr !== null && cidr.version !== version) continue;
        const message = `${(err as Error).message}: IPAM skips this pool (no address inside ${cidr?.text ?? 'it'} is assigned)`;
        skipped.push({ key: e.key, message, cidr, disabled: storedDisabled(e.value) });
        if (!this.warned.has(e.key)) {
          this.warned.add(e.key);
          this.warn(message);
        }
      }
    }
    return { pools, skipped };
  }

  private async nodeLabels(node: string): Promise<Labels> {
    const key = nodeKey(node);
    const e = await this.kv.get(key);
    if (!e) throw new Error(`node ${node} does not exist (no ${key}); IPAM needs its labels for the pools' nodeSelectors`);
    return decodeNodeLabels(e.value, key);
  }

  /**
   * Enabled pools that select the node: the requested ones, or every pool whose nodeSelector
   * matches (libcalico-go's determinePools). The caller then keeps those allowing the use.
   */
  private selectingPools(all: PoolInfo[], requested: readonly string[] | undefined, labels: Labels, namespaceLabels: Labels = {}): PoolInfo[] {
    const enabled = all.filter((p) => !p.disabled);
    if (requested && requested.length > 0) {
      // As in Calico, explicitly requested pools are used whatever their nodeSelector says.
      return requested.map((r) => {
        const p = enabled.find((q) => q.name === r || q.cidr.text === r);
        if (!p) throw new Error(`the given pool (${r}) does not exist, or is not enabled`);
        return p;
      });
    }
    // Not named: only Automatic pools (libcalico-go's determinePools skips a Manual pool unless
    // the request names pools: a Manual pool's addresses go only to who asks for that pool).
    // Both selectors must match: the node's labels and the pod's namespace's (Calico v3.31+).
    return enabled.filter((p) => p.assignmentMode === 'Automatic' && p.nodeSelector.matches(labels) && p.namespaceSelector.matches(namespaceLabels));
  }

  /**
   * Block CIDRs of a pool in this node's search order. Bigint throughout: a /64 IPv6 pool of /122
   * blocks has 2^58 of them, so callers stop at the first usable one and never list them all.
   */
  private *blockCidrs(pool: PoolInfo, node: string): Generator<IpNet> {
    const count = this.blockCount(pool);
    const start = this.blockSearchStart(pool, node);
    const step = 1n << BigInt(pool.cidr.bits - pool.blockSize);
    for (let i = 0n; i < count; i++) {
      const index = (start + i) % count;
      yield makeNet(pool.cidr.version, pool.cidr.base + index * step, pool.blockSize);
    }
  }

  private blockCount(pool: PoolInfo): bigint {
    return netSize(pool.cidr) >> BigInt(pool.cidr.bits - pool.blockSize);
  }

  private blockSearchStart(pool: PoolInfo, node: string): bigint {
    return this.spread ? BigInt(nameHash(node)) % this.blockCount(pool) : 0n;
  }

  /** Where a block lies in this node's search order of its pool (the index blockCidrs yields it at). */
  private searchRank(pool: PoolInfo, node: string, cidr: IpNet): bigint {
    const count = this.blockCount(pool);
    const index = (cidr.base - pool.cidr.base) >> BigInt(pool.cidr.bits - pool.blockSize);
    return (index - this.blockSearchStart(pool, node) + count) % count;
  }

  /**
   * A block as IPAM works on it. Addresses released into a cooldown (attribute releasedAt,
   * IPAMConfiguration ipCooldownSeconds: by podway or a Calico node) whose cooldown is over are
   * freed here, as libcalico-go's blockFromBackend garbage-collects every block it reads; written
   * when podway next writes the block. Done only once this Ipam has read the config (getConfig:
   * every assignment and release does), with the last value read; before that they are left
   * cooling as they are.
   */
  private decodeBlock(entry: KvEntry): AllocationBlock {
    const block = AllocationBlock.decode(entry.value, parseBlockKey(entry.key) ?? undefined);
    if (this.cooldownSeconds !== null && block.hasCooldown()) block.garbageCollect(this.cooldownSeconds, this.now());
    return block;
  }

  /**
   * The cooldown a release applies now: ipCooldownSeconds as last read (releases read the config
   * first, as libcalico-go's ReleaseIPs and ReleaseByHandle do), and the release time.
   */
  private releaseCooldown(): ReleaseCooldown {
    return { seconds: this.cooldownSeconds ?? 0, now: this.now() };
  }

  private nowNs(): bigint {
    return BigInt(this.now().getTime()) * 1_000_000n;
  }

  // ------------------------------------------------------------------------------------------
  // Handles

  /** Adds `num` to the handle's count for a block (creating the handle); returns the handle as written. */
  private async incrementHandle(handleId: string, cidr: IpNet, num: number): Promise<KvEntry> {
    const key = handleKey(handleId);
    for (let i = 0; i < this.retries; i++) {
      const e = await this.kv.get(key);
      if (!e) {
        const created = await this.kv.create(key, encodeHandle(new Map([[cidr.text, num]])));
        if (created) return created;
        continue;
      }
      const blocks = decodeHandle(e.value);
      blocks.set(cidr.text, (blocks.get(cidr.text) ?? 0) + num);
      const updated = await this.kv.update(key, encodeHandle(blocks, e.value), e.modRevision);
      if (updated) return updated;
    }
    throw new Error(`handle ${handleId}: max retries hit incrementing (excessive concurrent IPAM requests)`);
  }

  /** Takes `num` off the handle's count for a block; drops the entry at 0 and the key when empty. */
  private async decrementHandle(handleId: string, cidr: IpNet, num: number): Promise<void> {
    const key = handleKey(handleId);
    for (let i = 0; i < this.retries; i++) {
      const e = await this.kv.get(key);
      if (!e) return;
      const blocks = decodeHandle(e.value);
      const current = blocks.get(cidr.text);
      if (current === undefined) return;
      // Calico refuses to go below zero and leaves the handle as it is; clamping removes the entry
      // instead, which is what every caller wants (check() reports the disagreement either way).
      if (current - num > 0) blocks.set(cidr.text, current - num);
      else blocks.delete(cidr.text);
      const ok = blocks.size === 0 ? await this.kv.delete(key, e.modRevision) : (await this.kv.update(key, encodeHandle(blocks, e.value), e.modRevision)) !== null;
      if (ok) return;
    }
    throw new Error(`handle ${handleId}: max retries hit decrementing (excessive concurrent IPAM requests)`);
  }

  // ------------------------------------------------------------------------------------------
  // Affinities and claiming blocks (ipam_block_reader_writer.go)

  /** Creates this node's pending affinity for a block, or returns the existing one (re-marked pending unless confirmed). */
  private async getPendingAffinity(node: string, cidr: IpNet): Promise<KvEntry> {
    const key = affinityKey(node, cidr);
    const created = await this.kv.create(key, encodeAffinity('pending'));
    if (created) return created;
    const existing = await this.kv.get(key);
    if (!existing) throw new CasConflict(key);
    const { state } = decodeAffinity(existing.value);
    if (state === 'confirmed') return existing;
    const updated = await this.kv.update(key, encodeAffinity('pending', existing.value), existing.modRevision);
    if (!updated) throw new CasConflict(key);
    return updated;
  }

  private async confirmAffinity(aff: KvEntry): Promise<void> {
    if (await this.kv.update(aff.key, encodeAffinity('confirmed', aff.value), aff.modRevision)) return;
    // Another process of this node may have confirmed it already; that is as good.
    const now = await this.kv.get(aff.key);
    if (now && decodeAffinity(now.value).state === 'confirmed') return;
    throw new CasConflict(aff.key);
  }

  /** Creates the block for a pending affinity and confirms it; if another node made the block first, withdraws the affinity. */
  private async claimAffineBlock(node: string, cidr: IpNet, pending: KvEntry): Promise<Located> {
    const key = blockKey(cidr);
    const now = this.now();
    const fresh = AllocationBlock.create(cidr, `host:${node}`, this.nowNs(), now);
    const created = await this.kv.create(key, fresh.encode());
    if (created) {
      await this.confirmAffinity(pending);
      return { entry: created, block: fresh };
    }
    const existing = await this.kv.get(key);
    if (!existing) throw new CasConflict(key);
    const block = this.decodeBlock(existing);
    if (block.affinity === `host:${node}`) {
      // Another process on this node claimed it: confirm and share it.
      await this.confirmAffinity(pending);
      return { entry: existing, block };
    }
    await this.kv.delete(pending.key, pending.modRevision);
    throw new BlockClaimConflict(`block ${cidr.text} is owned by ${block.affinity ?? 'nobody'}`);
  }

  /** The block an affinity names, creating it if missing and confirming the affinity if needed. */
  private async getBlockFromAffinity(node: string, cidr: IpNet, aff: KvEntry): Promise<Located> {
    const key = blockKey(cidr);
    const entry = await this.kv.get(key);
    if (!entry) {
      const pending = await this.kv.update(aff.key, encodeAffinity('pending', aff.value), aff.modRevision);
      if (!pending) throw new CasConflict(aff.key);
      return this.claimAffineBlock(node, cidr, pending);
    }
    const block = this.decodeBlock(entry);
    if (block.affinity !== `host:${node}`) {
      await this.kv.delete(aff.key, aff.modRevision);
      throw new StaleAffinity(`affinity ${aff.key} is stale: block is owned by ${block.affinity ?? 'nobody'}`);
    }
    const { state } = decodeAffinity(aff.value);
    if (state !== 'confirmed' && state !== '') {
      // Block is ours but the affinity was left unconfirmed: re-pend, bump the block's revision
      // (invalidating anyone working from an older read), then confirm.
      const pending = await this.kv.update(aff.key, encodeAffinity('pending', aff.value), aff.modRevision);
      if (!pending) throw new CasConflict(aff.key);
      block.sequenceNumber += 1n;
      const bumped = await this.kv.update(key, block.encode(), entry.modRevision);
      if (!bumped) throw new CasConflict(key);
      if (!(await this.kv.update(aff.key, encodeAffinity('confirmed', pending.value), pending.modRevision))) throw new CasConflict(aff.key);
      return { entry: bumped, block };
    }
    return { entry, block };
  }

  /** A block CIDR in the pools that has no block yet, or one of ours with room; null when none. */
  private async findUsableBlock(node: string, pools: PoolInfo[], version: IpVersion, reserved: Reservations, excluded: readonly IpNet[]): Promise<IpNet | null> {
    const existing = new Map<string, AllocationBlock>();
    for (const e of (await this.kv.list(blockPrefix(version))).entries) {
      const cidr = parseBlockKey(e.key);
      if (cidr) existing.set(cidr.text, this.decodeBlock(e));
    }
    for (const pool of pools) {
      if (excluded.some((x) => netContainsNet(x, pool.cidr))) continue; // all of it inside a skipped pool
      for (const cidr of this.blockCidrs(pool, node)) {
        // A block one IPReservation covers whole is never claimed (Calico's MatchesWholeCIDR).
        if (reserved.coversWhole(cidr)) continue;
        if (!outside(excluded, cidr)) continue;
        const b = existing.get(cidr.text);
        if (!b) return cidr;
        if (b.affinity === `host:${node}` && b.numFree(reserved) > 0) return cidr;
      }
    }
    return null;
  }

  /**
   * Releases a node's affinity to a block (releaseBlockAffinity): an empty block is deleted, a
   * non-empty one loses its affinity (its addresses stay until released). With `requireEmpty`,
   * a block in use is left alone. Returns what happened.
   */
  async releaseAffinity(node: string, cidrText: string, { requireEmpty }: { requireEmpty: boolean }): Promise<'released' | 'absent' | 'not-empty' | 'stale'> {
    checkSegment('node name', node);
    const cidr = parseNet(cidrText);
    if (!cidr) throw new Error(`invalid block CIDR ${JSON.stringify(cidrText)}`);
    for (let i = 0; i < this.retries; i++) {
      const aff = await this.kv.get(affinityKey(node, cidr));
      if (!aff) return 'absent';
      const be = await this.kv.get(blockKey(cidr));
      if (!be) {
        if (await this.kv.delete(aff.key, aff.modRevision)) return 'released';
        continue;
      }
      const block = this.decodeBlock(be);
      if (block.affinity !== null && block.affinity !== `host:${node}`) {
        await this.kv.delete(aff.key, aff.modRevision);
        return 'stale';
      }
      if (requireEmpty && !block.empty()) return 'not-empty';
      const marked = await this.kv.update(aff.key, encodeAffinity('pendingDeletion', aff.value), aff.modRevision);
      if (!marked) continue;
      let ok: boolean;
      if (block.empty()) ok = await this.kv.delete(be.key, be.modRevision);
      else {
        block.affinity = null;
        block.affinityClaimTime = null;
        block.sequenceNumber += 1n;
        ok = (await this.kv.update(be.key, block.encode(), be.modRevision)) !== null;
      }
      if (!ok) continue;
      await this.kv.delete(aff.key, marked.modRevision);
      return 'released';
    }
    throw new Error(`release affinity ${node} ${cidr.text}: max retries hit (excessive concurrent IPAM requests)`);
  }

  // ------------------------------------------------------------------------------------------
  // Assignment

  /**
   * Writes up to `num` addresses of one block for a handle: handle first, then the block by CAS,
   * guarded on the handle still being at the revision our increment wrote. Throws CasConflict
   * (handle already undone) when the block changed since it was read, or the handle did: an
   * `ipam release --from-report` that judged the handle empty (this write not yet made, however
   * long it stalled) and deleted it then fails this write, and the retry counts the addresses in a
   * new handle, instead of writing addresses whose handle is gone.
   */
  private async assignFromBlock(at: Located, num: number, handleId: string | null, attrs: Readonly<Record<string, string>> | null, reserved: Reservations): Promise<string[]> {
    const { block, entry } = at;
    const ordinals = block.autoAssign(num, handleId, attrs, reserved);
    if (ordinals.length === 0) return [];
    if (!(await this.writeAssigned(entry, block, handleId, ordinals))) throw new CasConflict(entry.key);
    return ordinals.map((o) => block.ordinalToIp(o));
  }

  /**
   * Writes `block`, in which `ordinals` were just assigned to `handleId`, over `entry` (autoAssign's
   * assignFromBlock and assignIp): the handle's count raised first, then the block by CAS guarded
   * on the handle at the revision that increment wrote. True when the block holds them (written,
   * or a write that threw found applied by settleAmbiguousWrite); false when the CAS failed (the
   * count taken back); a write that threw and was not applied, or could not be settled, throws.
   */
  private async writeAssigned(entry: KvEntry, block: AllocationBlock, handleId: string | null, ordinals: readonly number[]): Promise<boolean> {
    const handle = handleId !== null ? await this.incrementHandle(handleId, block.cidr, ordinals.length) : null;
    block.sequenceNumber += 1n;
    let written: KvEntry | null;
    try {
      written = await this.kv.update(entry.key, block.encode(), entry.modRevision, handle ? [{ key: handle.key, modRevision: handle.modRevision }] : []);
    } catch (e) {
      // Possibly applied: settled, never by lowering the count blindly.
      if (handle !== null && handleId !== null && (await this.settleAmbiguousWrite(entry.key, handle, handleId, block.cidr, ordinals))) return true;
      throw e;
    }
    if (written) return true;
    if (handleId !== null) await this.decrementHandle(handleId, block.cidr, ordinals.length);
    return false;
  }

  /**
   * After a block write guarded on `handle` THREW (not a compare that failed: an error that does
   * not say whether etcd applied it, e.g. "Connection dropped", a deadline, a reconnect; etcd-kv.ts
   * says such a write may have been applied): finds out whether it was. The handle is first
   * rewritten unchanged, which moves its revision, so the write, if still in flight, can no longer
   * apply (its guard fails); then the block is read again. Our ordinals in it, held by our handle:
   * the write was applied, true (the handle's count is right). Not in it: the count is taken back,
   * false. Any step failing (etcd still away): the handle is left as it is, counting addresses
   * that may be in the block, and `e` goes on; releaseByHandle (the DEL of this container) frees
   * them if they are; if they are not, the handle is left counting nothing, which `ipam check`
   * reports (handles with no matching IPs) and `ipam release --from-report` removes, an entry
   * harmless to every pod. Lowering the count here instead (as
   * libcalico-go does on any error) deleted a handle whose addresses the block holds: DEL found no
   * handle and the addresses stayed taken for good.
   */
  private async settleAmbiguousWrite(blockKeyText: string, handle: KvEntry, handleId: string, cidr: IpNet, ordinals: readonly number[]): Promise<boolean> {
    try {
      // Null when someone changed it since our increment (an `ipam release --from-report`): our
      // guard fails from then on all the same, and the block says whether the write passed first.
      await this.kv.update(handle.key, handle.value, handle.modRevision);
      const now = await this.kv.get(blockKeyText);
      const block = now ? this.decodeBlock(now) : null;
      const applied = block !== null && ordinals.every((o) => block.attributeOf(o)?.handleId === handleId);
      if (!applied) await this.decrementHandle(handleId, cidr, ordinals.length);
      return applied;
    } catch {
      return false;
    }
  }

  /** assignFromBlock with re-reads of the block on conflicts. Returns [] when the block is full or gone. */
  private async assignWithRetries(first: Located, num: number, handleId: string | null, attrs: Readonly<Record<string, string>> | null, reserved: Reservations, mayUse: (b: AllocationBlock) => boolean): Promise<string[]> {
    let at: Located | null = first;
    for (let i = 0; i < this.retries && at; i++) {
      if (!mayUse(at.block)) return [];
      try {
        return await this.assignFromBlock(at, num, handleId, attrs, reserved);
      } catch (e) {
        if (!(e instanceof CasConflict)) throw e;
        const entry = await this.kv.get(at.entry.key);
        at = entry ? { entry, block: this.decodeBlock(entry) } : null;
      }
    }
    return [];
  }

  /**
   * Assigns `count` addresses to a node (Calico's AutoAssign for one IP version): from the node's
   * blocks, then by claiming new blocks (up to maxBlocksPerHost; at the limit it stops), then —
   * when the pools have no free block and strict_affinity is off — by borrowing from other nodes' blocks. Returns what it got and, when short, why.
   */
  async autoAssign(req: AutoAssignRequest): Promise<AutoAssignResult> {
    const node = checkSegment('node name', req.node);
    if (req.handleId !== null) checkSegment('handle ID', req.handleId);
    if (!Number.isInteger(req.count) || req.count < 0) throw new Error(`count must be a non-negative integer, got ${req.count}`);
    const version = req.version ?? 4;
    if (version !== 4 && version !== 6) throw new Error(`version must be 4 or 6, got ${String(version)}`);
    const attrs = noAttrs(req.attrs);
    const handleId = req.handleId === null ? null : sanitizeHandle(req.handleId);
    const use = req.use ?? 'Workload';
    if (use !== 'Workload' && use !== 'Tunnel') throw new Error(`use must be Workload or Tunnel, got ${String(use)}`);
    // The IPReservations are read once for the whole call, as Calico's autoAssign reads them.
    const [config, read, labels, reserved] = await Promise.all([this.getConfig(), this.readPools(version), this.nodeLabels(node), readReservations(this.kv, version)]);
    const allPools = read.pools;
    // Blocks inside a skipped pool's CIDR are no other pool's free space, even where pools overlap.
    const excluded = read.skipped.map((s) => s.cidr).filter((c): c is IpNet => c !== null);
    const selecting = this.selectingPools(allPools, req.pools, labels, req.namespaceLabels);
    // Only pools whose allowedUses hold the use, requested ones included (libcalico-go's
    // prepareAffinityBlocksForHost through filterPoolsByUse): a [Tunnel] pool gives no pod address.
    const pools = selecting.filter((p) => p.allowedUses.includes(use));
    const poolList = `[${pools.map((p) => p.cidr.text).join(', ')}]`;
    if (selecting.length === 0) {
      const enabled = allPools.filter((p) => !p.disabled).map((p) => `${p.name} (${p.cidr.text}, ${p.assignmentMode === 'Manual' ? 'assignmentMode Manual: used only when named, ' : ''}${p.selectorError ?? `nodeSelector ${JSON.stringify(p.nodeSelector.text)}${p.namespaceSelector.text !== '' && p.namespaceSelector.text !== 'all()' ? `, namespaceSelector ${JSON.stringify(p.namespaceSelector.text)} (namespace labels ${JSON.stringify(req.namespaceLabels ?? {})})` : ''}`})`);
      return { ips: [], noPool: true, errors: [`no enabled IPv${version} pool selects node ${node}${allPools.some((p) => p.namespaceSelector.text !== '' && p.namespaceSelector.text !== 'all()') ? ' and its namespace' : ''}; enabled pools: ${enabled.length ? enabled.join(', ') : `none (create one: an IPPool applied with \`${podwayCommand()} apply -f pool.yaml\`, as in the README's Quick start)`}`] };
    }
    if (pools.length === 0) {
      const others = selecting.map((p) => `${p.name} (${p.cidr.text}, allowedUses [${p.allowedUses.join(', ')}])`);
      return { ips: [], noPool: true, errors: [`no enabled IPv${version} pool for node ${node} allows use ${use}; pools selecting it: ${others.join(', ')}`] };
    }
    if (req.count === 0) return { ips: [] };

    // This node's affinities: those in the chosen pools are used; empty ones in enabled pools that no
    // longer select the node are given back (Calico's prepareAffinityBlocksForHost).
    const affine: IpNet[] = [];
    for (const e of (await this.kv.list(nodeAffinityPrefix(node, version))).entries) {
      const parsed = parseAffinityKey(e.key);
      if (!parsed) continue;
      if (pools.some((p) => netContainsNet(p.cidr, parsed.cidr))) { if (outside(excluded, parsed.cidr)) affine.push(parsed.cidr); }
      else if (!req.pools?.length) {
        const owner = allPools.find((p) => !p.disabled && netContainsNet(p.cidr, parsed.cidr));
        if (owner && owner.selectorError === undefined && !owner.nodeSelector.matches(labels)) await this.releaseAffinity(node, parsed.cidr.text, { requireEmpty: true });
      }
    }
    let owned = affine.length;
    const maxBlocks = config.maxBlocksPerHost > 0 ? config.maxBlocksPerHost : DEFAULT_MAX_BLOCKS_PER_HOST;
    const ips: string[] = [];
    const errors: string[] = [];
    const ours = (b: AllocationBlock): boolean => b.affinity === `host:${node}`;
    // As libcalico-go's autoAssign: a node at maxBlocksPerHost whose blocks are full gets an error
    // (ErrBlockLimit) and does NOT borrow, strict_affinity or not; so does a node that may not
    // claim blocks (auto_allocate_blocks false). Only when the pools have no free block left does
    // a node borrow single addresses from other nodes' blocks, and then only without strict_affinity.
    let refused = false;

    // Bounded: each pass either assigns, uses up an affine block, or claims/finds a block.
    for (let pass = 0; ips.length < req.count && pass < req.count + 4 * this.retries; pass++) {
      const found = await this.claimSerially(node, () => this.findOrClaimBlock(node, affine, pools, owned < maxBlocks, config, version, reserved, excluded));
      if (found === 'limit') {
        refused = true;
        errors.push(`pools ${poolList}: node ${node} has reached maxBlocksPerHost=${maxBlocks} blocks and they are full (a node at its block limit does not borrow)${reservedNote(pools, reserved)}`);
        break;
      }
      if (found === 'no-free-blocks') {
        if (config.strictAffinity) errors.push(`pools ${poolList}: no free blocks left for node ${node} and strict_affinity is set${reservedNote(pools, reserved)}`);
        break;
      }
      if (found === 'no-auto') {
        refused = true;
        errors.push(`pools ${poolList}: node ${node} has no affine block with free addresses and auto_allocate_blocks is false`);
        break;
      }
      if (found.newlyClaimed) owned++;
      ips.push(...(await this.assignWithRetries(found.at, req.count - ips.length, handleId, attrs, reserved, ours)));
    }

    let borrowed = false;
    if (ips.length < req.count && !refused && !config.strictAffinity) {
      borrowed = true;
      ips.push(...(await this.borrow(node, pools, req.count - ips.length, handleId, attrs, version, reserved, excluded)));
    }
    if (ips.length < req.count && errors.length === 0) {
      if (borrowed) {
        // Every block claimed and nothing to borrow: the pools are full. Said with their sizes.
        const usage = await this.poolUsage(pools, version, excluded);
        errors.push(`IP pool${pools.length === 1 ? '' : 's'} ${usage} exhausted: all in use; no free block left to claim for node ${node}, borrowing from other nodes' blocks tried (assigned ${ips.length} of ${req.count})${reservedNote(pools, reserved)}`);
        return { ips, errors, exhausted: true };
      }
      errors.push(`no free addresses in pools ${poolList} for node ${node}: assigned ${ips.length} of ${req.count}${reservedNote(pools, reserved)}`);
    }
    return errors.length > 0 ? { ips, errors } : { ips };
  }

  /** "NAME (CIDR): N addresses, M allocated, ..." for the exhaustion message. */
  private async poolUsage(pools: PoolInfo[], version: IpVersion, excluded: readonly IpNet[]): Promise<string> {
    const blocks = (await this.kv.list(blockPrefix(version))).entries;
    return pools.map((p) => {
      let used = 0;
      for (const e of blocks) {
        const cidr = parseBlockKey(e.key);
        if (cidr && netContainsNet(p.cidr, cidr) && outside(excluded, cidr)) used += this.decodeBlock(e).numInUse();
      }
      return `${p.name} (${p.cidr.text}: ${netSize(p.cidr).toString()} addresses, ${used} allocated)`;
    }).join(', ');
  }

  /**
   * Runs `fn` after this instance's earlier block lookups/claims for `node` have settled. Many
   * concurrent requests of one node in one process (a podway serving CNI ADDs, a burst of pods)
   * would otherwise all claim the same new block at once and undo each other's pending affinity;
   * one at a time, the first claims and the rest find the block confirmed. Within one instance
   * only: the CNI plugin makes an Ipam per call, so concurrent ADDs in separate processes are
   * spread by conflictPause alone (Calico's CNI takes a host-wide file lock for this; podway's
   * does not yet).
   */
  private claimSerially<T>(node: string, fn: () => Promise<T>): Promise<T> {
    const before = this.claims.get(node) ?? Promise.resolve();
    const run = before.then(fn);
    const tail = run.then(() => undefined, () => undefined);
    this.claims.set(node, tail);
    void tail.then(() => { if (this.claims.get(node) === tail) this.claims.delete(node); });
    return run;
  }

  private async findOrClaimBlock(node: string, affine: IpNet[], pools: PoolInfo[], allowNewClaim: boolean, config: IpamConfig, version: IpVersion, reserved: Reservations, excluded: readonly IpNet[]): Promise<{ at: Located; newlyClaimed: boolean } | 'limit' | 'no-free-blocks' | 'no-auto'> {
    while (affine.length > 0) {
      const cidr = affine.shift()!;
      if (reserved.coversWhole(cidr)) continue; // entirely reserved: not even read

      for (let i = 0; i < this.retries; i++) {
        const aff = await this.kv.get(affinityKey(node, cidr));
        if (!aff) break;
        let at: Located;
        try {
          at = await this.getBlockFromAffinity(node, cidr, aff);
        } catch (e) {
          if (e instanceof CasConflict) { await conflictPause(i); continue; }
          if (e instanceof StaleAffinity || e instanceof BlockClaimConflict) break;
          throw e;
        }
        if (at.block.numFree(reserved) > 0) {
          // Come back to this block next time if it still has room after this assignment.
          affine.unshift(cidr);
          return { at, newlyClaimed: false };
        }
        break;
      }
    }
    if (!allowNewClaim) return 'limit';
    if (!config.autoAllocateBlocks) return 'no-auto';
    for (let outer = 0; outer < this.retries; outer++) {
      const subnet = await this.findUsableBlock(node, pools, version, reserved, excluded);
      if (!subnet) return 'no-free-blocks';
      for (let inner = 0; inner < this.retries; inner++) {
        let at: Located;
        try {
          const pending = await this.getPendingAffinity(node, subnet);
          at = await this.getBlockFromAffinity(node, subnet, pending);
        } catch (e) {
          if (e instanceof CasConflict) { await conflictPause(inner); continue; }
          if (e instanceof BlockClaimConflict || e instanceof StaleAffinity) break;
          throw e;
        }
        // Filled by another process of this node meanwhile, or (a block the reservations hold back
        // only in pieces that add up to all of it) nothing assignable: findUsableBlock passes it over next.
        if (at.block.numFree(reserved) === 0) break;
        return { at, newlyClaimed: true };
      }
    }
    throw new Error(`node ${node}: max retries hit claiming a block (excessive concurrent IPAM requests)`);
  }

  /**
   * Takes free addresses from any existing block in the pools (the non-affine fallback), in this
   * node's block search order. Walks the blocks that exist, not the pool's block space (2^58
   * blocks in a /64 IPv6 pool).
   */
  private async borrow(node: string, pools: PoolInfo[], num: number, handleId: string | null, attrs: Readonly<Record<string, string>> | null, version: IpVersion, reserved: Reservations, excluded: readonly IpNet[]): Promise<string[]> {
    const got: string[] = [];
    const existing: { cidr: IpNet; entry: KvEntry }[] = [];
    for (const e of (await this.kv.list(blockPrefix(version))).entries) {
      const cidr = parseBlockKey(e.key);
      if (cidr) existing.push({ cidr, entry: e });
    }
    for (const pool of pools) {
      const inPool = existing
        .filter(({ cidr }) => cidr.prefixLen === pool.blockSize && netContainsNet(pool.cidr, cidr) && outside(excluded, cidr))
        .map((b) => ({ ...b, rank: this.searchRank(pool, node, b.cidr) }))
        .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0));
      for (const { cidr, entry } of inPool) {
        if (got.length >= num) return got;
        if (reserved.coversWhole(cidr)) continue;
        const block = this.decodeBlock(entry);
        if (block.numFree(reserved) === 0) continue;
        got.push(...(await this.assignWithRetries({ entry, block }, num - got.length, handleId, attrs, reserved, () => true)));
      }
    }
    return got;
  }

  /**
   * Assigns one given address to a node (Calico's AssignIP), claiming its block if nobody has.
   * What it checks is what libcalico-go's ipamClient.AssignIP checks, no more: the address must be
   * in an enabled pool (blockReaderWriter.getPoolForIP over poolAccessor.GetEnabledPools, whose
   * filterIPPool skips disabled pools), free in its block, and in a block affine to this node when
   * strict_affinity is set (allocationBlock.assign), and, when the caller names a use (its
   * IntendedUse), in a pool whose allowedUses hold it. It does not look at the pool's nodeSelector
   * (only autoAssign's prepareAffinityBlocksForHost does) nor at IPReservations (only autoAssign
   * and EnsureBlock call getReservedIPs: reservations keep addresses from automatic assignment,
   * as Calico's IPReservation reference says), so a given address in a reserved range or in a pool
   * selecting other nodes is assigned, on purpose, as Calico assigns it.
   */
  async assignIp(req: AssignIpRequest): Promise<void> {
    const node = checkSegment('node name', req.node);
    if (req.handleId !== null) checkSegment('handle ID', req.handleId);
    const handleId = req.handleId === null ? null : sanitizeHandle(req.handleId);
    const parsed = parseIp(req.ip);
    if (!parsed) throw new Error(`invalid IP address ${JSON.stringify(req.ip)}`);
    const read = await this.readPools(parsed.version);
    const skippedPool = read.skipped.find((s) => s.cidr !== null && netContains(s.cidr, parsed.value));
    if (skippedPool) throw new Error(`${req.ip} is inside a pool IPAM skips: ${skippedPool.message}`);
    const pools = read.pools;
    const pool = pools.find((p) => !p.disabled && netContains(p.cidr, parsed.value));
    if (!pool) {
      // Calico says only "not in a configured pool"; the disabled pool that holds it is named here.
      const off = pools.find((p) => p.disabled && netContains(p.cidr, parsed.value));
      throw new Error(`${req.ip} is not in an enabled IP pool${off ? ` (it is in IP pool ${off.name}, ${off.cidr.text}, which is disabled)` : ''}`);
    }
    // libcalico-go's AssignIP: the pool must allow the caller's IntendedUse, when it names one.
    if (req.use !== undefined && !pool.allowedUses.includes(req.use)) {
      throw new Error(`${req.ip} is in IP pool ${pool.name}, which is not allowed for use ${req.use} (allowedUses [${pool.allowedUses.join(', ')}])`);
    }
    const config = await this.getConfig();
    const cidr = makeNet(parsed.version, parsed.value, pool.blockSize);
    const attrs = noAttrs(req.attrs);
    for (let i = 0; i < this.retries; i++) {
      let at: Located;
      const entry = await this.kv.get(blockKey(cidr));
      if (entry) at = { entry, block: this.decodeBlock(entry) };
      else {
        try {
          at = await this.claimSerially(node, async () => this.claimAffineBlock(node, cidr, await this.getPendingAffinity(node, cidr)));
        } catch (e) {
          if (e instanceof CasConflict || e instanceof BlockClaimConflict) { await conflictPause(i); continue; }
          throw e;
        }
      }
      const { block } = at;
      if (config.strictAffinity && block.affinity !== `host:${node}`) {
        throw new Error(`cannot assign ${req.ip} to node ${node}: block ${cidr.text} is affine to ${block.affinity ?? 'no node'} and strict_affinity is set`);
      }
      const ordinal = block.ipToOrdinal(req.ip)!;
      block.assign(ordinal, handleId, attrs);
      if (await this.writeAssigned(at.entry, block, handleId, [ordinal])) return;
    }
    throw new Error(`assign ${req.ip}: max retries hit (excessive concurrent IPAM requests)`);
  }

  // ------------------------------------------------------------------------------------------
  // Release

  /** Writes a block after a release: deleted when empty and nobody's, else updated. False on conflict. */
  private async writeReleased(entry: KvEntry, block: AllocationBlock): Promise<boolean> {
    if (block.empty() && block.affinity === null) return this.kv.delete(entry.key, entry.modRevision);
    block.sequenceNumber += 1n;
    return (await this.kv.update(entry.key, block.encode(), entry.modRevision)) !== null;
  }

  /**
   * Releases every address of a handle and then the handle. `found` is false when the handle did
   * not exist. As Calico's ReleaseByHandle, a handle counting addresses that no block holds for it
   * is left with those counts; `dropHandle` deletes it whatever the blocks say, once they hold
   * nothing for it (read again after the release): for a caller that owns the handle's
   * assignments, so that none can be between the handle's increment and its block's write (the
   * CNI DEL under the host's IPAM lock, for its container's handle). An ADD killed (SIGKILL)
   * between those two writes leaves such a handle: Calico's release never removes it, and `ipam
   * check` counted it ("counts 1 address ... block holds none") until released by hand.
   * `dropped` lists the counts deleted so ("<block> <n>").
   */
  async releaseByHandle(handleIdIn: string, opts: { dropHandle?: boolean } = {}): Promise<{ found: boolean; released: string[]; dropped: string[] }> {
    const handleId = sanitizeHandle(checkSegment('handle ID', handleIdIn));
    const key = handleKey(handleId);
    let he = await this.kv.get(key);
    if (!he) return { found: false, released: [], dropped: [] };
    await this.getConfig(); // ipCooldownSeconds, as libcalico-go's ReleaseByHandle reads it
    const released = await this.releaseHandleBlocks(handleId, he);
    const dropped: string[] = [];
    if (opts.dropHandle) {
      for (let i = 0; ; i++) {
        he = await this.kv.get(key);
        if (!he) break;
        if (i >= this.retries) throw new Error(`release handle ${handleId}: max retries hit deleting it`);
        // Another assignment of it got in since: released as well, then looked at again.
        const more = await this.releaseHandleBlocks(handleId, he);
        released.push(...more);
        if (more.length > 0) continue;
        if (await this.kv.delete(key, he.modRevision)) {
          for (const [cidr, n] of decodeHandle(he.value)) dropped.push(`${cidr} ${n}`);
          break;
        }
      }
    }
    return { found: true, released, dropped };
  }

  /** releaseByHandle's release in each block the handle `he` names (the addresses released). */
  private async releaseHandleBlocks(handleId: string, he: KvEntry): Promise<string[]> {
    const released: string[] = [];
    for (const cidrText of decodeHandle(he.value).keys()) {
      const cidr = parseNet(cidrText);
      if (!cidr) continue;
      let freed: string[] | null = null;
      for (let i = 0; i < this.retries && freed === null; i++) {
        const entry = await this.kv.get(blockKey(cidr));
        if (!entry) { freed = []; break; }
        const block = this.decodeBlock(entry);
        const ordinals = block.releaseByHandle(handleId, this.releaseCooldown());
        if (ordinals.length === 0) { freed = []; break; }
        if (await this.writeReleased(entry, block)) freed = ordinals.map((o) => block.ordinalToIp(o));
      }
      if (freed === null) throw new Error(`release handle ${handleId}: max retries hit on block ${cidr.text}`);
      // Like Calico, take off only what was released: a concurrent assignment for this handle
      // increments before writing its block, and must not lose its count here.
      if (freed.length > 0) await this.decrementHandle(handleId, cidr, freed.length);
      released.push(...freed);
    }
    return released;
  }

  /**
   * Who holds an address: its handle and attributes (Calico's GetAssignmentAttributes), or null
   * when it is not assigned (free, or in no block).
   */
  async allocationOf(ip: string): Promise<AllocationAttribute | null> {
    const parsed = parseIp(ip);
    if (!parsed) throw new Error(`invalid IP address ${JSON.stringify(ip)}`);
    const pool = (await this.listPools(parsed.version)).find((p) => netContains(p.cidr, parsed.value));
    let cidr: IpNet | null = pool ? makeNet(parsed.version, parsed.value, pool.blockSize) : null;
    if (!cidr) {
      // Not in any pool (a deleted pool): its block, if one is left, by scanning.
      const blocks = (await this.kv.list(BLOCK_PREFIX)).entries.map((e) => parseBlockKey(e.key)).filter((c): c is IpNet => c !== null);
      cidr = blocks.find((c) => c.version === parsed.version && netContains(c, parsed.value)) ?? null;
    }
    if (!cidr) return null;
    const entry = await this.kv.get(blockKey(cidr));
    if (!entry) return null;
    const block = this.decodeBlock(entry);
    const o = block.ipToOrdinal(ip);
    return o === null ? null : block.attributeOf(o);
  }

  /** Releases the given addresses, whoever holds them, and decrements their handles. */
  async releaseIps(ips: readonly string[]): Promise<ReleaseResult> {
    const pools = await this.listPools();
    await this.getConfig(); // ipCooldownSeconds, as libcalico-go's ReleaseIPs reads it
    let blockList: IpNet[] | null = null;
    const byBlock = new Map<string, { cidr: IpNet; ips: string[] }>();
    const notAllocated: string[] = [];
    for (const ip of ips) {
      const parsed = parseIp(ip);
      if (!parsed) throw new Error(`invalid IP address ${JSON.stringify(ip)}`);
      const pool = pools.find((p) => p.cidr.version === parsed.version && netContains(p.cidr, parsed.value));
      let cidr: IpNet | null = pool ? makeNet(parsed.version, parsed.value, pool.blockSize) : null;
      if (!cidr) {
        // Not in any pool (deleted pool): find its block by scanning, as Calico does.
        blockList ??= (await this.kv.list(BLOCK_PREFIX)).entries.map((e) => parseBlockKey(e.key)).filter((c): c is IpNet => c !== null);
        cidr = blockList.find((c) => c.version === parsed.version && netContains(c, parsed.value)) ?? null;
      }
      if (!cidr) { notAllocated.push(ip); continue; }
      const group = byBlock.get(cidr.text) ?? { cidr, ips: [] };
      group.ips.push(ip);
      byBlock.set(cidr.text, group);
    }
    const released: string[] = [];
    for (const { cidr, ips: wanted } of byBlock.values()) {
      let done = false;
      for (let i = 0; i < this.retries && !done; i++) {
        const entry = await this.kv.get(blockKey(cidr));
        if (!entry) { notAllocated.push(...wanted); done = true; break; }
        const block = this.decodeBlock(entry);
        const result = block.release(wanted.map((ip) => block.ipToOrdinal(ip)!), this.releaseCooldown());
        if (result.released.length === 0) { notAllocated.push(...wanted); done = true; break; }
        if (!(await this.writeReleased(entry, block))) continue;
        done = true;
        released.push(...result.released.map((o) => block.ordinalToIp(o)));
        notAllocated.push(...result.notAllocated.map((o) => block.ordinalToIp(o)));
        for (const [h, n] of result.countByHandle) await this.decrementHandle(h, cidr, n);
      }
      if (!done) throw new Error(`release in block ${cidr.text}: max retries hit (excessive concurrent IPAM requests)`);
    }
    return { released, notAllocated };
  }

  /**
   * Releases one address only if it is still the allocation a check or report saw: the same
   * handle and the same per-address sequence number (Calico's ReleaseOptions{Handle,
   * SequenceNumber}) and, when `attributes` is given, the same attributes (the pod, node and
   * timestamp it was assigned with: what tells two allocations apart in a block written without
   * per-address sequence numbers). An address released and assigned again since has a new
   * sequence number (and timestamp), so a stale check cannot free it. The comparison and the
   * release are one compare-and-swap on the block (releaseIfHeld).
   */
  async releaseIfUnchanged(
    ip: string,
    expect: { handle: string | null; sequenceNumber: string | null; attributes?: Readonly<Record<string, string>> },
  ): Promise<{ outcome: 'released' | 'not-allocated' | 'changed'; reason?: string }> {
    const r = await this.releaseIfHeld(ip, (attr, seq) => {
      const h = attr?.handleId;
      const handle = h === null || h === undefined ? null : sanitizeHandle(h);
      if (handle !== expect.handle) return `held by handle ${handle ?? '<none>'} now, not ${expect.handle ?? '<none>'}`;
      if (seq !== expect.sequenceNumber) return `assigned again since (sequence number ${seq ?? '<none>'}, was ${expect.sequenceNumber ?? '<none>'})`;
      if (expect.attributes !== undefined && !sameAttributes(attr?.secondary ?? {}, expect.attributes)) {
        return `its attributes changed (${formatAttrMap(attr?.secondary ?? {})}, were ${formatAttrMap(expect.attributes)})`;
      }
      return null;
    });
    return r.outcome === 'changed' ? { outcome: r.outcome, reason: r.reason } : { outcome: r.outcome };
  }

  /**
   * Releases one address only while `keep` finds nothing against its current holder: `keep` gets
   * the allocation's attribute and sequence number as read, and returns why the address must stay
   * (then nothing is written), or null. The read that `keep` judged and the release are one
   * compare-and-swap on the block's revision: if anyone wrote the block in between (a release and
   * reassignment of this very address included), the block is read again and judged again, so a
   * holder that changed after the check is never freed. On 'released' `ip` is the address in
   * canonical form; on 'changed' `holder` is the allocation as it stood.
   */
  async releaseIfHeld(ip: string, keep: (attr: AllocationAttribute | null, sequenceNumber: string | null) => string | null): Promise<{ outcome: 'released' | 'not-allocated' | 'changed'; reason?: string; holder?: AllocationAttribute | null; ip?: string }> {
    const parsed = parseIp(ip);
    if (!parsed) throw new Error(`invalid IP address ${JSON.stringify(ip)}`);
    const pool = (await this.listPools(parsed.version)).find((p) => netContains(p.cidr, parsed.value));
    let cidr: IpNet | null = pool ? makeNet(parsed.version, parsed.value, pool.blockSize) : null;
    if (!cidr || !(await this.kv.get(blockKey(cidr)))) {
      const blocks = (await this.kv.list(BLOCK_PREFIX)).entries.map((e) => parseBlockKey(e.key)).filter((c): c is IpNet => c !== null);
      cidr = blocks.find((c) => c.version === parsed.version && netContains(c, parsed.value)) ?? null;
    }
    if (!cidr) return { outcome: 'not-allocated' };
    await this.getConfig(); // ipCooldownSeconds, as libcalico-go's ReleaseIPs reads it
    for (let i = 0; i < this.retries; i++) {
      const entry = await this.kv.get(blockKey(cidr));
      if (!entry) return { outcome: 'not-allocated' };
      const block = this.decodeBlock(entry);
      const o = block.ipToOrdinal(ip);
      // An address in its release cooldown (releasedAt) is released already.
      if (o === null || block.allocations[o] === null || inCooldown(block.attributeOf(o))) return { outcome: 'not-allocated' };
      const attr = block.attributeOf(o);
      const seq = block.sequenceNumberForAllocation?.get(String(o));
      const reason = keep(attr, seq === undefined ? null : seq.toString());
      if (reason !== null) return { outcome: 'changed', reason, holder: attr };
      const result = block.release([o], this.releaseCooldown());
      if (!(await this.writeReleased(entry, block))) continue;
      for (const [hh, n] of result.countByHandle) await this.decrementHandle(hh, cidr, n);
      return { outcome: 'released', ip: block.ordinalToIp(o) };
    }
    throw new Error(`release ${ip}: max retries hit on block ${cidr.text} (excessive concurrent IPAM requests)`);
  }

  // ------------------------------------------------------------------------------------------
  // Inspection

  /** The blocks a node has affinity to (IPv4 ones, then IPv6), with their usage. */
  async blocksOf(nodeIn: string): Promise<NodeBlock[]> {
    const node = checkSegment('node name', nodeIn);
    const out: NodeBlock[] = [];
    const affinities = [...(await this.kv.list(nodeAffinityPrefix(node, 4))).entries, ...(await this.kv.list(nodeAffinityPrefix(node, 6))).entries];
    for (const e of affinities) {
      const parsed = parseAffinityKey(e.key);
      if (!parsed) continue;
      const be = await this.kv.get(blockKey(parsed.cidr));
      const block = be ? this.decodeBlock(be) : null;
      const size = Number(netSize(parsed.cidr));
      out.push({
        cidr: parsed.cidr.text, state: decodeAffinity(e.value).state, exists: block !== null, size,
        inUse: block?.numInUse() ?? 0, free: block ? block.numFree() : size,
      });
    }
    return out;
  }

  /** Every IPAM key, read at one revision, decoded. */
  private async readAll(): Promise<{ blocks: Map<string, { key: string; block: AllocationBlock | null; error?: string }>; affinities: { key: string; node: string; cidr: IpNet; state: AffinityState | '' | null }[]; handles: Map<string, { key: string; blocks: HandleBlocks | null }> }> {
    const list = await this.kv.list(IPAM_PREFIX);
    const blocks = new Map<string, { key: string; block: AllocationBlock | null; error?: string }>();
    const affinities: { key: string; node: string; cidr: IpNet; state: AffinityState | '' | null }[] = [];
    const handles = new Map<string, { key: string; blocks: HandleBlocks | null }>();
    for (const e of list.entries) {
      const bc = parseBlockKey(e.key);
      if (bc) {
        try { blocks.set(bc.text, { key: e.key, block: this.decodeBlock(e) }); } catch (err) { blocks.set(bc.text, { key: e.key, block: null, error: (err as Error).message }); }
        continue;
      }
      const aff = parseAffinityKey(e.key);
      if (aff) {
        let state: AffinityState | '' | null = null;
        try { state = decodeAffinity(e.value).state; } catch { state = null; }
        affinities.push({ key: e.key, node: aff.node, cidr: aff.cidr, state });
        continue;
      }
      const h = parseHandleKey(e.key);
      if (h !== null) {
        let hb: HandleBlocks | null = null;
        try { hb = decodeHandle(e.value); } catch { hb = null; }
        handles.set(h, { key: e.key, blocks: hb });
      }
    }
    return { blocks, affinities, handles };
  }

  /**
   * Consistency check of the IPAM data (calicoctl ipam check's questions): addresses whose handle
   * is missing or miscounted, handles pointing at missing blocks, affinity keys and block affinity
   * fields that disagree, unconfirmed affinities, empty blocks nobody owns, blocks outside pools,
   * malformed blocks.
   */
  async check(): Promise<IpamProblem[]> {
    const { blocks, affinities, handles } = await this.readAll();
    const read = await this.readPools();
    // A skipped pool's blocks are in a pool still (one IPAM cannot read, warned about).
    const pools: { cidr: IpNet }[] = [...read.pools, ...read.skipped.filter((s) => s.cidr !== null).map((s) => ({ cidr: s.cidr! }))];
    const problems: IpamProblem[] = [];
    // Per block, per handle: the addresses held.
    const held = new Map<string, Map<string, string[]>>();
    for (const [cidrText, { key, block, error }] of blocks) {
      if (!block) { problems.push({ kind: 'bad-block', key, block: cidrText, message: `block ${cidrText} cannot be read: ${error}` }); continue; }
      const internal = blockInconsistencies(block);
      if (internal.length > 0) problems.push({ kind: 'bad-block', key, block: cidrText, message: `block ${cidrText}: ${internal.join('; ')}` });
      if (!pools.some((p) => netContainsNet(p.cidr, block.cidr))) problems.push({ kind: 'block-outside-pools', key, block: cidrText, message: `block ${cidrText} is in no IP pool` });
      if (block.affinity === null && block.numInUse() === 0) problems.push({ kind: 'empty-non-affine-block', key, block: cidrText, message: `block ${cidrText} has no affinity and no addresses in use; it should have been deleted` });
      const perHandle = new Map<string, string[]>();
      const noHandle: string[] = [];
      block.allocations.forEach((_, o) => {
        const attr = block.attributeOf(o);
        if (block.allocations[o] === null) return;
        const h = attr?.handleId;
        if (h === null || h === undefined) { noHandle.push(block.ordinalToIp(o)); return; }
        const id = sanitizeHandle(h);
        perHandle.set(id, [...(perHandle.get(id) ?? []), block.ordinalToIp(o)]);
      });
      held.set(cidrText, perHandle);
      for (const [h, addrs] of perHandle) {
        const handle = handles.get(h);
        if (!handle) {
          problems.push({ kind: 'address-without-handle', key, block: cidrText, handle: h, ips: addrs, message: `${addrs.length} address(es) in block ${cidrText} held by handle ${h}, which has no handle key (leaked): ${addrs.join(', ')}` });
        } else if (handle.blocks && handle.blocks.get(cidrText) !== addrs.length) {
          problems.push({ kind: 'handle-count-mismatch', key: handle.key, block: cidrText, handle: h, ips: addrs, message: `handle ${h} counts ${handle.blocks.get(cidrText) ?? 0} address(es) in block ${cidrText} but the block holds ${addrs.length}` });
        }
      }
      // An owner of a non-empty block with affinity "host:N" must have the affinity key too.
      const host = block.host();
      if (host !== '' && !affinities.some((a) => a.node === host && a.cidr.text === cidrText)) {
        problems.push({ kind: 'affinity-mismatch', key, block: cidrText, node: host, message: `block ${cidrText} says affinity host:${host} but ${affinityKey(host, block.cidr)} does not exist` });
      }
    }
    for (const [h, { key, blocks: hb }] of handles) {
      if (!hb) { problems.push({ kind: 'bad-value', key, handle: h, message: `handle ${h} cannot be read` }); continue; }
      for (const [cidrText, n] of hb) {
        if (!blocks.has(cidrText)) {
          problems.push({ kind: 'handle-missing-block', key, block: cidrText, handle: h, message: `handle ${h} counts ${n} address(es) in block ${cidrText}, which does not exist` });
        } else if (!(held.get(cidrText)?.has(h))) {
          problems.push({ kind: 'handle-count-mismatch', key, block: cidrText, handle: h, message: `handle ${h} counts ${n} address(es) in block ${cidrText} but the block holds none` });
        }
      }
    }
    for (const a of affinities) {
      if (a.state === null) { problems.push({ kind: 'bad-value', key: a.key, node: a.node, block: a.cidr.text, message: `affinity ${a.key} cannot be read` }); continue; }
      if (a.state !== 'confirmed' && a.state !== '') {
        problems.push({ kind: 'pending-affinity', key: a.key, node: a.node, block: a.cidr.text, message: `affinity of node ${a.node} to ${a.cidr.text} is ${a.state}` });
        continue;
      }
      const b = blocks.get(a.cidr.text)?.block;
      if (b === undefined) problems.push({ kind: 'affinity-mismatch', key: a.key, node: a.node, block: a.cidr.text, message: `node ${a.node} has a confirmed affinity to ${a.cidr.text} but the block does not exist` });
      else if (b !== null && b.affinity !== `host:${a.node}`) problems.push({ kind: 'affinity-mismatch', key: a.key, node: a.node, block: a.cidr.text, message: `node ${a.node} has an affinity to ${a.cidr.text} but the block's affinity is ${b.affinity ?? 'null'}` });
    }
    return problems;
  }

  /** Per-pool and per-block usage, for a calicoctl-shaped `ipam show` (and `--show-blocks`). */
  async show(): Promise<PoolUsage[]> {
    const read = await this.readPools();
    const { blocks } = await this.readAll();
    // The pools IPAM reads, then those it skips (their CIDR known): a skipped pool's blocks are
    // still in a pool, shown under it rather than as orphaned. A block goes to the narrowest pool
    // holding it (Calico refuses overlapping pools; another tool may have written them).
    const usage: { name: string; cidr: IpNet; disabled: boolean | null; skipped?: string; blocks: BlockUsage[] }[] = [
      ...read.pools.map((p) => ({ name: p.name, cidr: p.cidr, disabled: p.disabled, blocks: [] as BlockUsage[] })),
      ...read.skipped.flatMap((s) => (s.cidr === null ? [] : [{ name: s.key.slice(IPPOOL_PREFIX.length), cidr: s.cidr, disabled: s.disabled, skipped: s.message, blocks: [] as BlockUsage[] }])),
    ];
    const orphans: BlockUsage[] = [];
    for (const [cidrText, { block }] of [...blocks].sort((a, b) => (a[1].block?.cidr.base ?? 0n) < (b[1].block?.cidr.base ?? 0n) ? -1 : 1)) {
      if (!block) continue;
      const host = block.host();
      let borrowed = 0;
      block.allocations.forEach((a, o) => { if (a !== null && (block.attributeOf(o)?.secondary?.node ?? '') !== host) borrowed++; });
      const row: BlockUsage = { cidr: cidrText, affinity: block.affinity, size: block.size, inUse: block.numInUse(), free: block.numFree(), borrowed };
      let owner: (typeof usage)[number] | undefined;
      for (const u of usage) if (netContainsNet(u.cidr, block.cidr) && (!owner || u.cidr.prefixLen > owner.cidr.prefixLen)) owner = u;
      (owner ? owner.blocks : orphans).push(row);
    }
    const out: PoolUsage[] = usage.map(({ name, cidr, disabled, skipped, blocks: rows }) => {
      const size = Number(netSize(cidr));
      const inUse = rows.reduce((n, r) => n + r.inUse, 0);
      return { name, cidr: cidr.text, disabled, ...(skipped !== undefined ? { skipped } : {}), size, inUse, free: size - inUse, blocks: rows };
    });
    if (orphans.length > 0) {
      const inUse = orphans.reduce((n, r) => n + r.inUse, 0);
      const size = orphans.reduce((n, r) => n + r.size, 0);
      out.push({ name: 'orphaned allocation blocks', cidr: '0.0.0.0/0', disabled: false, size, inUse, free: size - inUse, blocks: orphans });
    }
    return out;
  }

  /** Affinities and borrowed addresses, for route calculation. */
  async routeInputs(): Promise<RouteInputs> {
    const { blocks, affinities } = await this.readAll();
    const borrowed: { ip: string; node: string; block: string; blockNode: string }[] = [];
    for (const [cidrText, { block }] of blocks) {
      if (!block) continue;
      const host = block.host();
      block.allocations.forEach((a, o) => {
        if (a === null) return;
        const user = block.attributeOf(o)?.secondary?.node ?? '';
        // Calico's NonAffineAllocations: in use by a node that is not the block's owner.
        if (user !== '' && user !== host) borrowed.push({ ip: block.ordinalToIp(o), node: user, block: cidrText, blockNode: host });
      });
    }
    return {
      affinities: affinities.filter((a) => a.state !== null).map((a) => ({ node: a.node, cidr: a.cidr.text, state: a.state as AffinityState | '' })),
      borrowed,
    };
  }
}

/** Internal consistency of one block: every ordinal exactly once in allocations xor unallocated, attribute indexes valid and used. */
/**
 * Why a short assignment may be short because of IPReservations: the pools one reservation covers
 * whole, else the reservations that overlap the pools; '' when none touch them.
 */
function reservedNote(pools: readonly PoolInfo[], reserved: Reservations): string {
  if (reserved.empty) return '';
  const whole = pools.filter((p) => reserved.coversWhole(p.cidr));
  if (whole.length === pools.length) {
    const names = [...new Set(pools.flatMap((p) => reserved.list.filter((r) => netContainsNet(r.cidr, p.cidr)).map((r) => r.name)))];
    return `; every address of ${pools.length === 1 ? 'the pool is' : 'these pools is'} reserved (IPReservation ${names.join(', ')})`;
  }
  const names = [...new Set(pools.flatMap((p) => reserved.overlapping(p.cidr).map((r) => r.name)))];
  if (names.length === 0) return '';
  const wholeText = whole.length > 0 ? `; all of ${whole.map((p) => `${p.name} (${p.cidr.text})`).join(', ')} is reserved` : '';
  return `${wholeText}; IPReservation ${names.join(', ')} hold${names.length === 1 ? 's' : ''} back addresses in these pools`;
}

export function blockInconsistencies(block: AllocationBlock): string[] {
  const out: string[] = [];
  const attrs = block.attributes ?? [];
  const free = block.unallocated ?? [];
  const freeSet = new Set<number>();
  for (const o of free) {
    if (freeSet.has(o)) out.push(`ordinal ${o} is listed twice in unallocated`);
    freeSet.add(o);
  }
  const used = new Set<number>();
  block.allocations.forEach((a, o) => {
    if (a === null && !freeSet.has(o)) out.push(`ordinal ${o} (${block.ordinalToIp(o)}) is neither allocated nor in unallocated`);
    if (a !== null && freeSet.has(o)) out.push(`ordinal ${o} (${block.ordinalToIp(o)}) is allocated and also in unallocated`);
    if (a !== null && a >= attrs.length) out.push(`ordinal ${o} points at attribute ${a}, past the ${attrs.length} attributes`);
    if (a !== null) used.add(a);
  });
  attrs.forEach((_, i) => { if (!used.has(i)) out.push(`attribute ${i} is used by no allocation`); });
  return out;
}


/** Same keys and values (an absent attribute map counts as empty, as the audit reports it). */
function sameAttributes(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}

const formatAttrMap = (m: Readonly<Record<string, string>>): string =>
  Object.keys(m).length === 0 ? 'none' : Object.keys(m).sort().map((k) => `${k}=${m[k]}`).join(' ');

/** True when `cidr` overlaps none of the excluded (skipped pools') CIDRs. */
function outside(excluded: readonly IpNet[], cidr: IpNet): boolean {
  return !excluded.some((x) => x.version === cidr.version && netsOverlap(x, cidr));
}

/** spec.cidr of a stored pool value, when it parses (for a pool that fails its schema otherwise). */
/** A stored pool's spec.disabled: absent is false (Calico's default); null when not a boolean or unreadable. */
function storedDisabled(text: string): boolean | null {
  try {
    const v = JSON.parse(text) as { spec?: { disabled?: unknown } };
    if (v === null || typeof v !== 'object' || v.spec === null || typeof v.spec !== 'object') return null;
    const d = v.spec.disabled;
    return d === undefined ? false : typeof d === 'boolean' ? d : null;
  } catch {
    return null;
  }
}

function storedCidr(text: string): IpNet | null {
  try {
    const v = JSON.parse(text) as { spec?: { cidr?: unknown } };
    return typeof v?.spec?.cidr === 'string' ? parseNet(v.spec.cidr) : null;
  } catch {
    return null;
  }
}
