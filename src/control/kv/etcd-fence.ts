// The fence of a create, shared by both etcd clients (EtcdKv, EtcdLiteKv): a second condition in
// the create's transaction that a copy of it left on a member can no longer meet once the call
// has ended. Loads neither etcd3 nor gRPC.
//
// The race it closes (etcd-failover.ts, failover()): a create's condition (Version(key) == 0)
// holds again once the key is deleted, and etcd checks it when it applies the transaction. A
// create hedged to a second member (the first one had not answered: stopped, frozen) leaves its
// first copy unread in that member's socket; when the member runs again it takes it as a fresh
// call, and if the caller (told that the create succeeded on the other member) deleted the key
// meanwhile, it creates it again. Cancelling the copy (cancelOvertaken) narrows that to a race
// etcd decides when the member runs again; the fence closes it.
//
// The design. Each create's transaction also compares a fence key, one of FENCE_KEYS keys under
// FENCE_PREFIX (podway's own prefix, keys.ts: nothing of Calico's reads there) chosen by a hash of
// the key created: `ModRevision(fence) < R + 1`, R being a store revision the client saw before
// it sent the call (the header of its last answer, or of a read of the fence key when it has
// none). A create that left a copy on a member (an attempt other than the answer that may have
// reached etcd: failover()'s hedge) writes the fence key through the members that answer before
// the call returns: that write's revision is above every revision the call could have carried (the
// store's revision only grows, and the create was applied after R), so the copy, whenever its
// member applies it, finds the fence moved past its R and changes nothing, however long the member
// stood still. A create that left no copy (the common case: its first member answered) is one
// round trip, as before, and writes nothing else.
//
// Why not the other designs weighed:
//  - a fence key per call (named by a random call id, compared Version == 0 and written when the
//    call ends) must live as long as a copy may still be applied, and nothing bounds that (a VM
//    frozen for an hour applies its copy an hour later): a lease short enough to keep the keys
//    from piling up reopens the race for any member stopped longer than the lease. The fence
//    keys here are FENCE_KEYS keys, forever, and a fence never expires: a mod revision never goes
//    back.
//  - a comparison on the created key itself cannot tell a late copy: a deleted key compares as an
//    absent one (version, create and mod revision 0), whatever happened to it before.
//  - one fence key for every create: a fence written after a hedge makes every other client's
//    next create fail once on it (its R is older) and go again; FENCE_KEYS keys by the key's hash
//    make that 1 in FENCE_KEYS. Hedges are rare (a member that took a call and gave no answer for
//    a quarter of its deadline), so fence writes are too.
//
// What it costs: the comparison and, when the transaction fails, a read of the fence key in it
// (to tell "the key exists" from "the fence moved": then the create is sent again with the newer
// revision, at most CREATE_FENCE_ROUNDS times); a read of the fence key before a store's first
// create when it has answered nothing yet; a write of the fence key after a create that left a copy.
//
// Limits: a fence key deleted by hand, or a store replaced under the client (wiped, restored from
// an older snapshot: its revisions start again below the ones seen), gives a copy still lying in a
// member its chance again; a fence whose write failed (etcd gone right after the create answered)
// leaves that copy the race it had before (counted: FenceCounters.unwritten, and said once per
// fence key through reportUnwrittenFences: podway run's log). Whether a fence
// ever stopped a copy cannot be seen from here: the copy fails inside etcd when its member runs
// again, and its answer goes to a stream the client cancelled (or a connection it closed).
import { Attempt, FailoverRules } from './etcd-failover';
import { PODWAY_PREFIX } from './keys';
import { KvUnavailableError } from './kv';

/** Where the fence keys are: podway's own prefix, outside /calico/ (which Calico and calicoctl read). */
export const FENCE_PREFIX = `${PODWAY_PREFIX}create-fence/`;
/** How many fence keys there are (FENCE_PREFIX + two hex digits). */
export const FENCE_KEYS = 64;
/** How many times a create whose fence moved under it (another call's) is sent again. */
export const CREATE_FENCE_ROUNDS = 4;

/** The fence key of a create of `key`: one of FENCE_KEYS, by an FNV-1a hash of its UTF-8 bytes. */
export function fenceKeyOf(key: string): string {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(key, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return FENCE_PREFIX + (h % FENCE_KEYS).toString(16).padStart(2, '0');
}

/**
 * Whether a call's attempts other than the one that answered may have left a copy on a member:
 * more than one attempt went to a member and did not fail as never sent (refused, no connection,
 * "no leader", not etcd).
 */
export function copyLeft(attempts: readonly Attempt[], rules: Pick<FailoverRules, 'neverSent'>): boolean {
  return attempts.filter((a) => a.host !== undefined && !(a.error !== undefined && rules.neverSent(a.error))).length > 1;
}

/** What the fences of one store did (tests, diagnostics). */
export interface FenceCounters {
  /** Fences written: a create left a copy on a member, and a copy applied later changes nothing. */
  written: number;
  /** Creates sent again because the fence moved since the revision they carried (another call's fence). */
  moved: number;
  /** Creates that left a copy whose fence could not be written (its write failed): the race as before. */
  unwritten: number;
}

export function newFenceCounters(): FenceCounters {
  return { written: 0, moved: 0, unwritten: 0 };
}

/**
 * This thread's fence counts, summed over every store it opened, by store ("etcd URL[,URL]"):
 * `podway run` opens a store per registration and per replay pass and closes it after, so a
 * store's own `fences` do not outlive it; `podway status` (etcdFences) and /metrics
 * (podway_etcd_create_fences_total) read these.
 */
const threadFences = new Map<string, FenceCounters>();

/** This thread's fence counts of a store, made (at 0) on first use: what `fenceTotals` lists. */
export function threadFenceCounters(store: string): FenceCounters {
  let c = threadFences.get(store);
  if (!c) threadFences.set(store, (c = newFenceCounters()));
  return c;
}

/** Every store's fence counts in this thread (a copy). */
export function fenceTotals(): { store: string; written: number; moved: number; unwritten: number }[] {
  return [...threadFences].map(([store, c]) => ({ store, ...c }));
}

/** Where an unwritten fence is said (podway run: its log), once per store and fence key. */
let unwrittenSink: ((message: string) => void) | null = null;
const unwrittenSaid = new Set<string>();

/** Says every unwritten fence of this thread through `sink` (once per store and fence key); null: say none. */
export function reportUnwrittenFences(sink: ((message: string) => void) | null): void {
  unwrittenSink = sink;
}

function countFence(counters: FenceCounters, store: string, what: keyof FenceCounters): void {
  counters[what]++;
  const total = threadFenceCounters(store);
  if (total !== counters) total[what]++;
}

/** The warning for a create whose copy is left without its fence (see the module comment). */
export function unwrittenFenceText(store: string, key: string, fence: string, why: string): string {
  return `${store}: the create of ${key} left a copy on a member that did not answer in time, and its fence ${fence} was not written (${why}): ` +
    `if that member applies the copy after ${key} is deleted, ${key} is created again (the race the fence closes stays open for this create; docs/datastores.md, "Several endpoints: failover, deadlines, leaders"). ` +
    `Said once per fence key; every one is counted as unwritten (podway status, podway_etcd_create_fences_total{result="unwritten"})`;
}

/** One create transaction as a client sent it, and what came back. */
export interface CreateRound {
  /** Its condition held: the key was created. */
  readonly succeeded: boolean;
  /** The answer's header revision (the create's revision when it succeeded). */
  readonly revision: number;
  /** The fence key's mod revision (0: absent), read in the transaction when it failed. */
  readonly fenceMod: number;
  /** Whether the call left a copy on a member (copyLeft). */
  readonly copyLeft: boolean;
}

/** How a client sends the calls of a fenced create (each one a call of its own, with its failover). */
export interface FencedCreateOps {
  /** The header revision of the store's last answer, if any. */
  revision(): number | undefined;
  /** A read of the fence key: its answer's header revision. */
  readRevision(fence: string): Promise<number>;
  /** The create's transaction: Version(key) == 0 and ModRevision(fence) < below. */
  round(fence: string, below: number): Promise<CreateRound>;
  /** Writes the fence key: its revision. */
  writeFence(fence: string): Promise<number>;
}

/**
 * A create of `key` with its fence (see the module comment): the created revision, or null when
 * the key exists. `description` (the store's) starts the error when the fence kept moving.
 */
export async function fencedCreate(key: string, ops: FencedCreateOps, counters: FenceCounters, description: string): Promise<number | null> {
  const fence = fenceKeyOf(key);
  let seen = ops.revision() ?? (await ops.readRevision(fence));
  for (let round = 1; ; round++) {
    const res = await ops.round(fence, seen + 1);
    // failed with the fence at or below what we saw: the key's condition failed, it exists
    const result = res.succeeded ? res.revision : res.fenceMod <= seen ? null : undefined;
    if (result !== undefined) {
      if (res.copyLeft) {
        let at = 0;
        let why = '';
        try {
          at = await ops.writeFence(fence);
        } catch (e) {
          // the create's answer stands; only its copy keeps the race it had before
          why = `its write failed: ${(e as Error).message}`;
        }
        // at or below `seen` only on a store whose revisions went back under us (replaced)
        if (at > seen) countFence(counters, description, 'written');
        else {
          countFence(counters, description, 'unwritten');
          const said = `${description}\0${fence}`;
          if (unwrittenSink && !unwrittenSaid.has(said)) {
            unwrittenSaid.add(said);
            unwrittenSink(unwrittenFenceText(description, key, fence, why || `it was written at revision ${at}, not above ${seen}: the store's revisions went back (restored from an older snapshot?)`));
          }
        }
      }
      return result;
    }
    countFence(counters, description, 'moved');
    if (round >= CREATE_FENCE_ROUNDS) {
      throw new KvUnavailableError(`${description} (create ${key}): its fence ${fence} moved under it ${round} times (other calls' creates fenced meanwhile); nothing was created`);
    }
    seen = res.revision;
  }
}
