/**
 * The last-known-good model of `podway run`, kept on local disk so that a podway (re)started
 * forwards on the state it last knew instead of nothing: with Calico the kernel keeps felix's
 * routes while felix restarts; with podway the dataplane is the process, so it has to bring its
 * state back itself (docs/failures.md, "Datastore away"). A cache written in this boot of the machine is
 * applied at once at start, while the datastore is asked (the kernel's routes Calico keeps last as
 * long); one of an earlier boot only when the datastore is unreachable.
 *
 * One JSON file, written atomically (a temporary file in the same directory, fsync, rename): a
 * crash mid-write leaves the previous cache, never half of one. It says which node and which
 * datastore it belongs to, the Node it was computed for and the boot it was written in, and
 * carries a format version and a SHA-256 of all of it: a cache of another node or cluster, of
 * another format version (an older podway's included: it lacks fields this one checks), damaged
 * or of the wrong shape (every field of the model is type-checked: a wrong type is named, never
 * thrown into the engine) is refused with the reason, never used. Writes are rate-bounded (ModelCacheWriter): at most one per interval, the newest applied
 * model winning, so frequent datastore changes cost one JSON encoding per interval at most.
 */
import { makeDirs } from '../util/make-dirs';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { NodeDataplaneModel } from '../control';
import type { DatastoreSpec } from '../control/kv/spec';
import type { KvEntry } from '../control/kv/kv';
import { checkBgpInputs, type BgpInputs } from '../control/bgp/cached-inputs';
import { checkModel } from '../dataplane/model-check';
import { replaceFile } from '../util/replace-file';
import { requireTrustedDir, requireTrustedDirSync } from '../util/trusted-dir';

/** What the file says it is; a different value is not a podway model cache. */
export const MODEL_CACHE_FORMAT = 'podway-model-cache';
/** Bumped when the file's shape changes: 2 added the BGP settings (`bgp`), 3 the boot it was
 * written in (`bootId`) and later the Node it was written for (`nodeIdentity`), 4 makes the
 * Node required and the checksum cover every field. This version is read, and version 3 (the
 * podway before it: an upgrade's first start, MODEL_CACHE_OLDER_VERSION); 1 and 2 lack the boot and
 * the Node and a newer one may mean something else: refused, saying which, and the start waits for
 * the datastore as without a cache. An optional field added inside the BGP settings (BgpInputs'
 * learnedExport, nodeConfigs) is no change of shape: a cache without it reads as before (its plan
 * lacks only what the field adds until the datastore answers), and an older podway reading one
 * with it passes the field over, as it had no use for it. */
export const MODEL_CACHE_VERSION = 4;
/** The older format still read: a version 3 cache (the podway before format 4) is used as a version
 * 4 one, its Node judged at the datastore's first answer: by the identity it records when it has one
 * (written after b60dda9), else by when the datastore's Node was created (notCachedNode: a Node
 * created after the cached model was applied is another Node). Only its model's and BGP settings'
 * texts are under its checksum (the boot, the time and the Node are not, as that podway wrote it). */
export const MODEL_CACHE_OLDER_VERSION = 3;
/** The kernel's identity of this boot of the machine (a random UUID made at boot; the same in
 * every network namespace). */
export const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';
/** Where `podway run` keeps it by default (local disk: it outlives a restart and a reboot). */
export const DEFAULT_MODEL_CACHE_DIR = '/var/lib/podway';
/** At most one write per this many ms (the newest model applied is written when it is up). */
export const MODEL_CACHE_WRITE_INTERVAL_MS = 10_000;

export function defaultModelCachePath(node: string): string {
  return path.join(DEFAULT_MODEL_CACHE_DIR, `${node}.model.json`);
}

let thisBoot: string | null | undefined;
/** This boot's id (BOOT_ID_FILE, read once), or null when it cannot be read (a cache is then
 * never taken for this boot's). */
export function currentBootId(): string | null {
  if (thisBoot !== undefined) return thisBoot;
  try {
    thisBoot = readFileSync(BOOT_ID_FILE, 'utf8').trim() || null;
  } catch {
    thisBoot = null;
  }
  return thisBoot;
}

/**
 * Why a cache was not written in this boot of the machine, in words; null when it was (its boot id
 * is this boot's). Its model's forwarding state (the pods, their veths and routes, the blocks
 * announced) outlives a restart of podway but not a reboot.
 */
export function notThisBoot(bootId: string | null, boot: string | null = currentBootId()): string | null {
  if (bootId === null) return 'it does not say which boot of the machine it was written in (the podway that wrote it could not read its boot id)';
  if (boot === null) return `this boot's id cannot be read (${BOOT_ID_FILE})`;
  if (bootId !== boot) return `it was written in another boot of the machine (boot id ${bootId}, this one ${boot})`;
  return null;
}

/**
 * The datastore a cache belongs to, from what `podway run` is given (it has to be known while
 * the datastore does not answer): the etcd endpoints, sorted. Another cluster on other endpoints
 * gets another identity; null for datastores that are local files (no cache: they do not go away
 * with a network).
 */
export function datastoreIdentity(spec: DatastoreSpec): string | null {
  return spec.kind === 'etcd' ? `etcd:${[...spec.endpoints].map((e) => e.replace(/\/+$/, '')).sort().join(',')}` : null;
}

/**
 * Which Node resource a model was computed for: its metadata.uid (a UUID set when the Node is
 * created and kept by every update, podway's and libcalico-go's) and the store revision that
 * created its key. A Node deleted and registered again under the same name (`podway delete node`,
 * then a start) has another of both: its blocks, tunnel addresses and endpoints are not the old
 * one's, so a cache of the old one is not this node's state.
 */
export interface NodeIdentity {
  /** metadata.uid; null when the stored Node has none. */
  readonly uid: string | null;
  readonly createRevision: number;
}

/** The identity of a stored Node (its key's entry). */
export function nodeIdentityOf(entry: KvEntry): NodeIdentity {
  let uid: string | null = null;
  try {
    const meta = (JSON.parse(entry.value) as { metadata?: { uid?: unknown } }).metadata;
    if (typeof meta?.uid === 'string' && meta.uid !== '') uid = meta.uid;
  } catch {
    // not JSON: the registration refuses it, said there; no uid here
  }
  return { uid, createRevision: entry.createRevision };
}

/** The identity as the log says it. */
export function nodeIdentityText(n: NodeIdentity): string {
  return `uid ${n.uid ?? '(none)'}, created at revision ${n.createRevision}`;
}

/**
 * Why a cache recorded for Node `cached` is not the state of the Node the datastore holds now
 * (`stored`: its key's entry, null when there is none); null when it is the same Node.
 */
export function notSameNode(node: string, cached: NodeIdentity, stored: KvEntry | null): string | null {
  if (stored === null) return `its Node ${node} (${nodeIdentityText(cached)}) is not in the datastore any more (deleted)`;
  const now = nodeIdentityOf(stored);
  if (now.createRevision !== cached.createRevision || (cached.uid !== null && now.uid !== cached.uid)) {
    return `its Node ${node} (${nodeIdentityText(cached)}) is not the datastore's Node ${node} (${nodeIdentityText(now)}): deleted and registered again`;
  }
  return null;
}

/** The time a stored Node says it was created (metadata.creationTimestamp: RFC 3339, whole
 * seconds as Calico writes it); null when it has none or not a time. */
function nodeCreatedAt(entry: KvEntry): Date | null {
  try {
    const ts = (JSON.parse(entry.value) as { metadata?: { creationTimestamp?: unknown } }).metadata?.creationTimestamp;
    if (typeof ts !== 'string' || !/^\d{4}-\d\d-\d\dT/.test(ts)) return null;
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? null : d;
  } catch {
    return null;
  }
}

/**
 * Why cache `c` is not the state of the Node the datastore holds now (`stored`, null: none); null
 * when it is. A cache that records its Node: notSameNode. One of format 3 without it (the podway
 * before b60dda9 wrote none): its model was computed from the Node named so at the time it was
 * applied, and a Node is created once and lives until deleted, so the datastore's Node is that one
 * if it was created before then, another (deleted and registered again since) if after. Calico's
 * creationTimestamp has whole seconds: a Node created less than a second before the apply cannot
 * be told from one created after it, and is taken for another (the datastore's model first). The
 * times are two clocks' when another host created the Node (calicoctl, kubelet): a clock behind
 * this host's by more than the time between the apply and the new Node's creation would pass a new
 * Node for the old (docs/running.md, "Upgrading"); podway's registration uses this host's.
 */
export function notCachedNode(node: string, c: Pick<CachedModel, 'nodeIdentity' | 'appliedAt'>, stored: KvEntry | null): string | null {
  if (c.nodeIdentity !== null) return notSameNode(node, c.nodeIdentity, stored);
  if (stored === null) return `its Node ${node} is not in the datastore any more (deleted)`;
  const created = nodeCreatedAt(stored);
  const applied = c.appliedAt.toISOString();
  if (created === null) return `it is of format 3, which does not say which Node ${node} it was written for, and the datastore's Node ${node} says no creationTimestamp to tell (${nodeIdentityText(nodeIdentityOf(stored))})`;
  if (created.getTime() + 1000 > c.appliedAt.getTime()) return `it is of format 3, which does not say which Node ${node} it was written for, and the datastore's Node ${node} was created at ${created.toISOString().replace(/\.000Z$/, 'Z')}, not before its model was applied (${applied}): deleted and registered again, or too close to tell`;
  return null;
}

/**
 * A cached model with what was this node's own state taken out (its endpoints, its routes, its
 * VXLAN and IPIP tunnel addresses, IPv4 and IPv6), for a cache found to be another Node's after it
 * was applied: forwarding on it would attach the deleted node's endpoints, blackhole its old
 * blocks (another node's now, maybe) and answer on tunnel addresses IPAM may have given away.
 * The node's address, pools, MTUs and the learned routes (the peers', not this node's) stay.
 */
export function withdrawnModel(m: NodeDataplaneModel): NodeDataplaneModel {
  return {
    ...m,
    node: { ...m.node, vtepIp: null, ipipTunnelIp: null },
    endpoints: [],
    routes: [],
    withheld: [],
    v6: { ...m.v6, vtepIp6: null, endpoints: [], routes: [], withheld: [] },
  };
}

interface CacheFile {
  format: string;
  version: number;
  node: string;
  datastore: string;
  /** When the model was applied (ISO 8601). */
  appliedAt: string;
  /** The boot of the machine it was written in (BOOT_ID_FILE; null when unreadable). */
  bootId: string | null;
  /** The Node the model is of (NodeIdentity). */
  nodeIdentity: NodeIdentity;
  /** Of every other field (checksumText). */
  sha256: string;
  /** The model as encodeModel's text. */
  model: string;
  /** The BGP settings in force (BgpInputs as JSON text; null without --bgp). */
  bgp: string | null;
}

export interface CachedModel {
  readonly model: NodeDataplaneModel;
  /** When this model was applied by the podway that wrote it. */
  readonly appliedAt: Date;
  /** The BGP settings in force with it (`podway run --bgp`); null when the cache has none, `noBgp`
   * saying why (written without --bgp). */
  readonly bgp: BgpInputs | null;
  readonly noBgp?: string;
  /** The boot of the machine it was written in; null when the podway that wrote it could not
   * read it. */
  readonly bootId: string | null;
  /** The Node it was computed for; null for a format 3 cache that does not say (notCachedNode). */
  readonly nodeIdentity: NodeIdentity | null;
  /** The format version it was read from (MODEL_CACHE_VERSION, or MODEL_CACHE_OLDER_VERSION). */
  readonly version: number;
}

/** The model as JSON; its Sets (knownNodeIps) become tagged arrays. */
export function encodeModel(model: NodeDataplaneModel): string {
  return JSON.stringify(model, (_k, v: unknown) => {
    if (v instanceof Set) return { $set: [...v] };
    if (v instanceof Map) return { $map: [...v] };
    return v;
  });
}

export function decodeModel(text: string): NodeDataplaneModel {
  return JSON.parse(text, (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && keys[0] === '$set' && Array.isArray(o.$set)) return new Set(o.$set);
      if (keys.length === 1 && keys[0] === '$map' && Array.isArray(o.$map)) return new Map(o.$map as [unknown, unknown][]);
    }
    return v;
  }) as NodeDataplaneModel;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * The model's shape, every field the engine or the start reads (NodeDataplaneModel): a model of
 * another shape (another podway's, edited by hand) is refused here naming the first wrong field
 * (`model.routes[3].addr`), never handed to the engine to throw at an odd place. Values are not
 * judged beyond their type (a MAC's or an IPv6 address's text: the engine's checkModel, run after).
 */
function checkShape(m: NodeDataplaneModel, node: string): void {
  let at = 'model';
  const fail = (what: string): never => { throw new Error(`the model is malformed (${at}${what ? `.${what}` : ''})`); };
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const u32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
  const int = (lo: number, hi: number) => (v: unknown) => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  const str = (v: unknown) => typeof v === 'string';
  const bool = (v: unknown) => typeof v === 'boolean';
  const orNull = (f: (v: unknown) => boolean) => (v: unknown) => v === null || f(v);
  const oneOf = (...xs: string[]) => (v: unknown) => typeof v === 'string' && xs.includes(v);
  const arrayOf = (f: (v: unknown) => boolean) => (v: unknown) => Array.isArray(v) && v.every(f);
  type Fields = Record<string, (v: unknown) => boolean>;
  /** `o` at `path` is an object whose listed fields pass (optional ones may be absent). */
  const fields = (o: unknown, path: string, want: Fields, optional: Fields = {}) => {
    at = path;
    if (!obj(o)) return fail('');
    for (const [k, f] of Object.entries(want)) if (!f(o[k])) fail(k);
    for (const [k, f] of Object.entries(optional)) if (o[k] !== undefined && !f(o[k])) fail(k);
  };
  const list = (a: unknown, path: string, each: (o: unknown, path: string) => void) => {
    at = path;
    if (!Array.isArray(a)) fail('');
    (a as unknown[]).forEach((o, i) => each(o, `${path}[${i}]`));
  };
  const mtu = int(0, 0xffff);
  const mac = orNull(str);
  const cidr4 = (v: unknown) => obj(v) && str(v.cidr) && u32(v.addr) && int(0, 32)(v.prefixLen);
  const withheld = (o: unknown, p: string) => fields(o, p, { cidr: str, node: str, reason: str });
  const routeClass = int(0, 255);
  fields(m, 'model', { node: obj, endpoints: Array.isArray, routes: Array.isArray, withheld: Array.isArray, pools: Array.isArray, mtu: obj, encap: obj, v6: obj }, { kernelRoutes: Array.isArray, kernelRoutesComplete: bool, bgpLearned: Array.isArray });
  fields(m.node, 'model.node', { name: (v) => v === node, ip: orNull(u32), subnet: orNull(cidr4), vtepIp: orNull(u32), vtepMac: str, ipipTunnelIp: orNull(u32), knownNodeIps: (v) => v instanceof Set && [...v].every(u32) });
  list(m.endpoints, 'model.endpoints', (o, p) => fields(o, p, { key: str, interfaceName: str, interfaceType: str, interfaceNetns: orNull(str), ips: arrayOf(u32), cidrs: arrayOf(str), mac }));
  list(m.routes, 'model.routes', (o, p) => fields(o, p, { cidr: str, addr: u32, prefixLen: int(0, 32), kind: oneOf('local', 'blackhole', 'vxlan', 'ipip', 'direct', 'host'), class: routeClass, endpoint: orNull(str), node: str, nodeIp: orNull(u32), vtepIp: orNull(u32), vtepMac: mac, pool: orNull(str), mtu }));
  list(m.withheld, 'model.withheld', withheld);
  list(m.pools, 'model.pools', (o, p) => fields(o, p, { name: str, cidr: str, addr: u32, prefixLen: int(0, 32), blockSize: int(0, 32), encap: oneOf('vxlan', 'ipip', 'none'), crossSubnet: bool, natOutgoing: bool, disabled: bool }, { tunnelAddr: bool }));
  fields(m.mtu, 'model.mtu', { underlay: mtu, vxlan: mtu, ipip: mtu, pod: mtu });
  fields(m.encap, 'model.encap', { vxlan: bool, ipip: bool });
  const v6 = m.v6;
  fields(v6, 'model.v6', { ip6: orNull(str), subnet6: orNull(str), vtepIp6: orNull(str), vtepMac6: str, knownNodeIps6: arrayOf(str), endpoints: Array.isArray, routes: Array.isArray, withheld: Array.isArray, pools: Array.isArray, vxlanMtu: mtu, vxlan: bool });
  list(v6.endpoints, 'model.v6.endpoints', (o, p) => fields(o, p, { interfaceName: str, ips6: arrayOf(str) }));
  list(v6.routes, 'model.v6.routes', (o, p) => fields(o, p, { cidr: str, w: (v) => Array.isArray(v) && v.length === 4 && v.every(u32), prefixLen: int(0, 128), kind: oneOf('local', 'blackhole', 'vxlan', 'direct', 'host'), class: routeClass, endpoint: orNull(str), node: str, nodeIp6: orNull(str), vtepIp6: orNull(str), vtepMac: mac, pool: orNull(str), mtu }));
  list(v6.withheld, 'model.v6.withheld', withheld);
  list(v6.pools, 'model.v6.pools', (o, p) => fields(o, p, { name: str, cidr: str, blockSize: int(0, 128), encap: oneOf('vxlan', 'none'), crossSubnet: bool, natOutgoing: bool }, { disabled: bool, tunnelAddr: bool }));
  if (m.kernelRoutes) list(m.kernelRoutes, 'model.kernelRoutes', (o, p) => fields(o, p, { cidr: str, via: str, peer: str }));
  if (m.bgpLearned) list(m.bgpLearned, 'model.bgpLearned', (o, p) => fields(o, p, { prefix: str, nextHop: str, peer: str }));
  at = 'model';
  // An IPv6-only node's model (no IPv4 address) has its IPv6 one.
  if (m.node.ip === null && m.v6.ip6 === null) fail('node.ip');
}

/** The text the checksum covers: every field but the checksum, in a fixed order: the small ones as
 * one JSON line, then the model's and the BGP settings' texts as they stand (JSON text holds no
 * raw newline: the lines cannot run into each other; not escaped again, which would cost the
 * forwarding thread another pass over the model). */
function checksumText(c: Omit<CacheFile, 'sha256'>): string {
  return `${JSON.stringify([c.format, c.version, c.node, c.datastore, c.appliedAt, c.bootId, c.nodeIdentity.uid, c.nodeIdentity.createRevision])}\n${c.model}\n${c.bgp ?? 'null'}`;
}

/**
 * The cache at `file` for `node` on `datastore`: the model, or why it cannot be used ("none" when
 * there is no file: a first start, nothing to say). Never throws: whatever the file holds (cut
 * short, another podway's, fields of the wrong type) is a reason.
 */
export function readModelCache(file: string, node: string, datastore: string): CachedModel | { refused: string } | 'none' {
  // A directory another user can write to may hold a cache they forged: not read (util/trusted-dir.ts).
  try {
    requireTrustedDirSync(path.dirname(file), 'its directory');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return { refused: (e as Error).message };
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'none';
    return { refused: `cannot read it: ${(e as Error).message}` };
  }
  try {
    let c: CacheFile;
    try {
      c = JSON.parse(text) as CacheFile;
    } catch (e) {
      return { refused: `not JSON (${(e as Error).message}): damaged or cut short` };
    }
    if (typeof c !== 'object' || c === null || Array.isArray(c) || c.format !== MODEL_CACHE_FORMAT) return { refused: 'not a podway model cache' };
    if (c.version !== MODEL_CACHE_VERSION && c.version !== MODEL_CACHE_OLDER_VERSION) {
      const v = c.version;
      return { refused: typeof v === 'number' && Number.isInteger(v) && v >= 1 && v < MODEL_CACHE_VERSION
        ? `format version ${v}, written by an older podway: it lacks what this one checks (the boot of the machine and the Node it was written for), and this podway reads formats ${MODEL_CACHE_OLDER_VERSION} and ${MODEL_CACHE_VERSION} only`
        : `format version ${JSON.stringify(v) ?? 'none'}, not this podway's (it reads formats ${MODEL_CACHE_OLDER_VERSION} and ${MODEL_CACHE_VERSION} only)` };
    }
    if (c.node !== node) return { refused: `it is node ${String(c.node)}'s, not ${node}'s` };
    if (c.datastore !== datastore) return { refused: `it is from datastore ${String(c.datastore)}, not ${datastore}` };
    // The fields' types, then the checksum over all of them.
    const field = (name: string, ok: boolean) => { if (!ok) throw new Error(`its ${name} is not of the right type: damaged`); };
    field('sha256', typeof c.sha256 === 'string');
    field('model', typeof c.model === 'string');
    field('bgp', c.bgp === null || typeof c.bgp === 'string');
    field('appliedAt', typeof c.appliedAt === 'string');
    field('bootId', c.bootId === null || (typeof c.bootId === 'string' && c.bootId !== ''));
    const older = c.version === MODEL_CACHE_OLDER_VERSION;
    // Format 3: the Node may be absent (written before b60dda9), judged then by its creation.
    const ni = older && c.nodeIdentity === undefined ? null : c.nodeIdentity as unknown;
    let nodeIdentity: NodeIdentity | null = null;
    if (!older || ni !== null) {
      if (typeof ni !== 'object' || ni === null) return { refused: 'its nodeIdentity is not a Node identity (uid, createRevision)' };
      const { uid, createRevision } = ni as Record<string, unknown>;
      if ((uid !== null && (typeof uid !== 'string' || uid === '')) || !Number.isSafeInteger(createRevision) || (createRevision as number) <= 0) {
        return { refused: 'its nodeIdentity is not a Node identity (uid, createRevision)' };
      }
      nodeIdentity = { uid: uid as string | null, createRevision: createRevision as number };
    }
    // Format 3's checksum: of the model's text, a newline and the BGP settings' (as it wrote it).
    const sum = older ? sha256(`${c.model}\n${c.bgp ?? 'null'}`) : sha256(checksumText(c));
    if (sum !== c.sha256) return { refused: 'its checksum does not match: damaged' };
    const appliedAt = new Date(c.appliedAt);
    if (Number.isNaN(appliedAt.getTime())) return { refused: 'no valid appliedAt time' };
    let model: NodeDataplaneModel;
    try {
      model = decodeModel(c.model);
    } catch (e) {
      return { refused: `its model is not JSON (${(e as Error).message})` };
    }
    checkShape(model, node);
    try {
      checkModel(model);
    } catch (e) {
      return { refused: `the engine would refuse its model (${(e as Error).message})` };
    }
    const base = { model, appliedAt, bootId: c.bootId, nodeIdentity, version: c.version };
    if (c.bgp === null) return { ...base, bgp: null, noBgp: 'it was written without --bgp' };
    let bgp: BgpInputs;
    try {
      bgp = checkBgpInputs(JSON.parse(c.bgp));
    } catch (e) {
      return { refused: e instanceof SyntaxError ? `the BGP settings are not JSON (${e.message})` : (e as Error).message };
    }
    return { ...base, bgp };
  } catch (e) {
    return { refused: (e as Error).message };
  }
}

/** A cache file's fields with the checksum made again over them (tests write caches of a given
 * shape with it: wrong types, another podway's). */
export function withChecksum(c: Record<string, unknown>): Record<string, unknown> {
  return { ...c, sha256: sha256(checksumText(c as unknown as Omit<CacheFile, 'sha256'>)) };
}

function cacheText(node: string, datastore: string, model: NodeDataplaneModel, appliedAt: Date, bgp: BgpInputs | null, bootId: string | null, nodeIdentity: NodeIdentity): string {
  const body: Omit<CacheFile, 'sha256'> = { format: MODEL_CACHE_FORMAT, version: MODEL_CACHE_VERSION, node, datastore, appliedAt: appliedAt.toISOString(), bootId, nodeIdentity: { uid: nodeIdentity.uid, createRevision: nodeIdentity.createRevision }, model: encodeModel(model), bgp: bgp === null ? null : JSON.stringify(bgp) };
  return JSON.stringify({ ...body, sha256: sha256(checksumText(body)) });
}

/**
 * Writes `file` atomically (util/replace-file.ts: a temporary dot-file beside it, fsynced, renamed
 * over it, the directory fsynced; none left by a failed write), in a directory only root or this
 * user can write to (else an UntrustedDirError naming it and the fix: readModelCache refuses
 * such a directory's cache too). Only the JSON
 * encoding runs on the calling thread, the file work (write, fsync, rename) off it: podway run's
 * main thread forwards, and an fsync may take a disk's time. `nodeIdentity`: the Node the model
 * is of; `bootId`: the boot it is written in (this one's by default).
 */
export async function writeModelCache(file: string, node: string, datastore: string, model: NodeDataplaneModel, appliedAt: Date, nodeIdentity: NodeIdentity, bgp: BgpInputs | null = null, bootId: string | null = currentBootId()): Promise<number> {
  const data = cacheText(node, datastore, model, appliedAt, bgp, bootId, nodeIdentity);
  await makeDirs(path.dirname(file), { mode: 0o700, what: `model cache ${file}` });
  // Owned by root or us and writable by nobody else (util/trusted-dir.ts); the temporary is
  // created exclusively (util/replace-file.ts).
  await requireTrustedDir(path.dirname(file), `model cache ${file}: its directory`);
  await replaceFile(file, data, { mode: 0o600 });
  return data.length;
}

/** ModelCacheWriter.status(): `podway status -o json`'s `modelCache`. */
export interface ModelCacheWriteStatus {
  file: string;
  /** The last successful write (ISO time; null: none yet). */
  lastWritten: string | null;
  /** Writes that failed since the start. */
  failures: number;
  /** While the last write failed: since when, how many in a row, the last error. */
  failing: { since: string; attempts: number; error: string } | null;
}

/**
 * Writes the applied models, at most one per `intervalMs`: the first at once, later ones when the
 * interval since the last write is up (the newest applied by then); one write at a time, its file
 * work off the thread (writeModelCache). `stop()` writes a pending one (on stop: a restart
 * finds the newest state) once a write under way ended; nothing is written after it.
 */
export class ModelCacheWriter {
  /** The model to write and the BGP settings in force with it (written together, never one
   * model with another's settings). */
  private pending: { model: NodeDataplaneModel; at: Date; bgp: BgpInputs | null; nodeIdentity: NodeIdentity | null } | null = null;
  /** The last model applied (rewritten when only the BGP settings change). */
  private last: { model: NodeDataplaneModel; at: Date; bgp: BgpInputs | null; nodeIdentity: NodeIdentity | null } | null = null;
  /** The Node the registration last found or made (written with the next model applied; a model
   * applied before any is not written: a cache must say its Node). */
  private nodeIdentity: NodeIdentity | null = null;
  private saidNoNode = false;
  /** The BGP settings in force (null: none, BGP off): written with the next model that comes
   * without its own. */
  private bgpInputs: BgpInputs | null = null;
  private lastWrite = 0;
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  /** Since when writes fail, the last error and how many failed in a row (status). */
  private failingSince: Date | null = null;
  private lastError = '';
  private failuresInRow = 0;
  /** Writes that failed since the start (podway_model_cache_write_failures_total). */
  private failures = 0;
  private lastWritten: Date | null = null;
  private wroteOnce = false;
  private writing: Promise<void> | null = null;
  /** stop() was called: no write starts any more (its own last one aside). */
  private stopped = false;

  constructor(
    private readonly file: string,
    private readonly nodeName: string,
    private readonly datastore: string,
    private readonly log: { info(m: string): void; warn(m: string): void },
    private readonly intervalMs = MODEL_CACHE_WRITE_INTERVAL_MS,
  ) {}

  /** `model` was applied; `bgp`: the BGP settings of its snapshot, written with it (undefined: the
   * settings in force stay, a model applied again with its next hops moved, say). */
  applied(model: NodeDataplaneModel, at = new Date(), bgp?: BgpInputs | null): void {
    if (bgp !== undefined) this.bgpInputs = bgp;
    this.pending = { model, at, bgp: this.bgpInputs, nodeIdentity: this.nodeIdentity };
    this.last = this.pending;
    this.schedule();
  }

  /** The registration found or made this Node (its identity): written with the models applied
   * from now on (the datastore's models after it are computed from that Node). */
  node(identity: NodeIdentity): void {
    this.nodeIdentity = identity;
  }

  /** The BGP settings in force changed alone (a BGPPeer added, say, leaving the model as it was):
   * the last model applied is written again with them. A model with new settings comes with them
   * through applied(), never here first: the last model would be written with its successor's
   * settings. */
  bgp(inputs: BgpInputs | null): void {
    if (JSON.stringify(inputs) === JSON.stringify(this.bgpInputs)) return;
    this.bgpInputs = inputs;
    if (this.last) this.applied(this.last.model, this.last.at, inputs);
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    const wait = this.lastWrite + this.intervalMs - Date.now();
    if (wait <= 0) return this.flush();
    this.timer = setTimeout(() => { this.timer = null; this.flush(); }, wait);
    this.timer.unref();
  }

  /** Writes the pending model now (one write at a time: a write under way takes it when it ends). */
  flush(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (!this.pending || this.writing || this.stopped) return;
    const p = this.pending;
    this.pending = null;
    const node = this.known(p);
    if (node === null) return;
    this.lastWrite = Date.now();
    this.writing = writeModelCache(this.file, this.nodeName, this.datastore, p.model, p.at, node, p.bgp).then((bytes) => this.wrote(bytes), (e: Error) => this.failed(e)).finally(() => {
      this.writing = null;
      // a model applied meanwhile: written when the interval is up, as any other
      if (this.pending) this.schedule();
    });
  }

  /** Ends timers; a pending model is written after a write under way (resolves once it is on disk). */
  async stop(): Promise<void> {
    // Before waiting: the end of a write under way must not start another (a write longer than
    // the interval would), which stop would not wait for and which shares the temporary file.
    this.stopped = true;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    while (this.writing) await this.writing;
    const p = this.pending;
    this.pending = null;
    const node = p ? this.known(p) : null;
    if (!p || node === null) return;
    try {
      this.wrote(await writeModelCache(this.file, this.nodeName, this.datastore, p.model, p.at, node, p.bgp));
    } catch (e) {
      this.failed(e as Error);
    }
  }

  /** The Node `p` is of; null (said once) when no registration has said it yet: not written. */
  private known(p: { nodeIdentity: NodeIdentity | null }): NodeIdentity | null {
    if (p.nodeIdentity === null && !this.saidNoNode) {
      this.saidNoNode = true;
      this.log.warn(`model cache ${this.file}: a model applied before the registration said which Node it is of: not written (a cache must record its Node)`);
    }
    return p.nodeIdentity;
  }

  /** What `podway status` and the metrics say of the writes: `failing` while the last write failed
   * (ENOSPC, a read-only file system), since when, how many in a row, the last error. */
  status(): ModelCacheWriteStatus {
    return {
      file: this.file,
      lastWritten: this.lastWritten?.toISOString() ?? null,
      failures: this.failures,
      failing: this.failing ? { since: this.failingSince!.toISOString(), attempts: this.failuresInRow, error: this.lastError } : null,
    };
  }

  private wrote(bytes: number): void {
    if (this.failing) this.log.info(`model cache ${this.file}: written again`);
    else if (!this.wroteOnce) this.log.info(`model cache ${this.file}: written (${bytes} bytes; at most every ${this.intervalMs / 1000} s)`);
    this.wroteOnce = true;
    this.failing = false;
    this.failingSince = null;
    this.failuresInRow = 0;
    this.lastWritten = new Date();
  }

  private failed(e: Error): void {
    // Said once until it works again: forwarding does not depend on it, a restart during a
    // datastore outage does (status and podway_model_cache_write_failing say so while it lasts).
    if (!this.failing) this.log.warn(`model cache ${this.file}: cannot write it (${e.message}); a restart while the datastore is unreachable would not forward until it is back`);
    if (!this.failing) this.failingSince = new Date();
    this.failing = true;
    this.failuresInRow++;
    this.failures++;
    this.lastError = e.message;
  }
}
