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
 * datastore it belongs to and carries a format version and a SHA-256 of the model's text: a cache
 * of another node or cluster, of another format, or damaged is refused with the reason, never
 * used. Writes are rate-bounded (ModelCacheWriter): at most one per interval, the newest applied
 * model winning, so frequent datastore changes cost one JSON encoding per interval at most.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import type { NodeDataplaneModel } from '../control';
import type { DatastoreSpec } from '../control/kv/spec';
import type { KvEntry } from '../control/kv/kv';
import { checkBgpInputs, type BgpInputs } from '../control/bgp/cached-inputs';
import { replaceFile } from '../util/replace-file';

/** What the file says it is; a different value is not a podway model cache. */
export const MODEL_CACHE_FORMAT = 'podway-model-cache';
/** Bumped when the file's shape changes: 2 added the BGP settings (`bgp`), 3 the boot it was
 * written in (`bootId`). Versions 1 and 2 are still read (their model is the same; 1 has no BGP
 * settings, so the speaker waits for the datastore; neither says its boot, so neither is applied
 * before the datastore is asked); any other version is refused, not misread. */
export const MODEL_CACHE_VERSION = 3;
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
  if (bootId === null) return 'it does not say which boot of the machine it was written in (written by an older podway)';
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
 * (`stored`: its key's entry, null when there is none); null when it is the same Node. A cache
 * that records no Node (written by an older podway) is not judged: null.
 */
export function notSameNode(node: string, cached: NodeIdentity | null, stored: KvEntry | null): string | null {
  if (cached === null) return null;
  if (stored === null) return `its Node ${node} (${nodeIdentityText(cached)}) is not in the datastore any more (deleted)`;
  const now = nodeIdentityOf(stored);
  if (now.createRevision !== cached.createRevision || (cached.uid !== null && now.uid !== cached.uid)) {
    return `its Node ${node} (${nodeIdentityText(cached)}) is not the datastore's Node ${node} (${nodeIdentityText(now)}): deleted and registered again`;
  }
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
  /** Of `model` (version 1), of `model`, a newline and `bgp` (version 2). */
  sha256: string;
  /** The model as encodeModel's text (hashed as it stands). */
  model: string;
  /** Version 2: the BGP settings in force (BgpInputs as JSON text; null without --bgp). */
  bgp?: string | null;
  /** Version 3: the boot of the machine it was written in (BOOT_ID_FILE; null when unreadable). */
  bootId?: string | null;
  /** Version 3, since podway records it: the Node the model is of (NodeIdentity; null when the
   * registration had not said it). Absent in caches of older podways, which read version 3 all the
   * same (an unknown field); like bootId, not covered by sha256: a damaged one refuses the cache
   * as another Node's, never takes it for this one's. */
  nodeIdentity?: NodeIdentity | null;
}

export interface CachedModel {
  readonly model: NodeDataplaneModel;
  /** When this model was applied by the podway that wrote it. */
  readonly appliedAt: Date;
  /** The BGP settings in force with it (`podway run --bgp`); null when the cache has none, `noBgp`
   * saying why (written without --bgp, or by a podway of format version 1). */
  readonly bgp: BgpInputs | null;
  readonly noBgp?: string;
  /** The boot of the machine it was written in; null when it does not say (format version 1 or 2,
   * or written where the boot id could not be read). */
  readonly bootId: string | null;
  /** The Node it was computed for; null when the cache does not say (an older podway wrote it). */
  readonly nodeIdentity: NodeIdentity | null;
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

/** The parts the engine needs first, checked so that a wrong shape is refused here, named. */
function checkShape(m: NodeDataplaneModel, node: string): void {
  const fail = (what: string) => { throw new Error(`the model is malformed (${what})`); };
  if (typeof m !== 'object' || m === null) fail('not an object');
  if (typeof m.node !== 'object' || m.node === null || m.node.name !== node) fail(`its node is not ${node}`);
  if ((typeof m.node.ip !== 'number' && m.node.ip !== null) || !(m.node.knownNodeIps instanceof Set)) fail('node address');
  for (const k of ['endpoints', 'routes', 'withheld', 'pools'] as const) if (!Array.isArray(m[k])) fail(k);
  if (typeof m.mtu !== 'object' || typeof m.encap !== 'object' || typeof m.v6 !== 'object' || m.v6 === null) fail('mtu, encap or v6');
  // An IPv6-only node's model (no IPv4 address) has its IPv6 one.
  if (m.node.ip === null && typeof m.v6.ip6 !== 'string') fail('node address');
}

/**
 * The cache at `file` for `node` on `datastore`: the model, or why it cannot be used ("none" when
 * there is no file: a first start, nothing to say).
 */
export function readModelCache(file: string, node: string, datastore: string): CachedModel | { refused: string } | 'none' {
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
      return { refused: `not JSON (${(e as Error).message}): damaged` };
    }
    if (typeof c !== 'object' || c === null || c.format !== MODEL_CACHE_FORMAT) return { refused: 'not a podway model cache' };
    if (c.version !== MODEL_CACHE_VERSION && c.version !== 1 && c.version !== 2) return { refused: `format version ${String(c.version)}, this podway reads 1 to ${MODEL_CACHE_VERSION}` };
    if (c.node !== node) return { refused: `it is node ${String(c.node)}'s, not ${node}'s` };
    if (c.datastore !== datastore) return { refused: `it is from datastore ${String(c.datastore)}, not ${datastore}` };
    if (typeof c.model !== 'string') return { refused: 'its checksum does not match: damaged' };
    if (c.version !== 1 && c.bgp !== null && typeof c.bgp !== 'string') return { refused: 'its checksum does not match: damaged' };
    const bgpText = c.version === 1 ? null : (c.bgp as string | null);
    if (sha256(hashed(c.model, c.version === 1 ? undefined : bgpText)) !== c.sha256) return { refused: 'its checksum does not match: damaged' };
    const appliedAt = new Date(c.appliedAt);
    if (Number.isNaN(appliedAt.getTime())) return { refused: 'no valid appliedAt time' };
    const bootId = c.version >= 3 ? c.bootId ?? null : null;
    if (bootId !== null && (typeof bootId !== 'string' || bootId === '')) return { refused: 'its bootId is not a boot id' };
    const ni = c.version >= 3 ? c.nodeIdentity ?? null : null;
    if (ni !== null && (typeof ni !== 'object' || (ni.uid !== null && (typeof ni.uid !== 'string' || ni.uid === '')) || !Number.isSafeInteger(ni.createRevision) || ni.createRevision <= 0)) {
      return { refused: 'its nodeIdentity is not a Node identity (uid, createRevision)' };
    }
    const nodeIdentity = ni === null ? null : { uid: ni.uid, createRevision: ni.createRevision };
    const model = decodeModel(c.model);
    checkShape(model, node);
    if (c.version === 1) return { model, appliedAt, bgp: null, noBgp: 'it is of format version 1, which holds no BGP settings', bootId, nodeIdentity };
    if (bgpText === null) return { model, appliedAt, bgp: null, noBgp: 'it was written without --bgp', bootId, nodeIdentity };
    let bgp: BgpInputs;
    try {
      bgp = checkBgpInputs(JSON.parse(bgpText));
    } catch (e) {
      return { refused: e instanceof SyntaxError ? `the BGP settings are not JSON (${e.message})` : (e as Error).message };
    }
    return { model, appliedAt, bgp, bootId, nodeIdentity };
  } catch (e) {
    return { refused: (e as Error).message };
  }
}

/** The text the checksum covers: version 1 the model alone, version 2 the model and the BGP settings. */
function hashed(model: string, bgp: string | null | undefined): string {
  return bgp === undefined ? model : `${model}\n${bgp ?? 'null'}`;
}

function cacheText(node: string, datastore: string, model: NodeDataplaneModel, appliedAt: Date, bgp: BgpInputs | null, bootId: string | null, nodeIdentity: NodeIdentity | null): string {
  const text = encodeModel(model);
  const bgpText = bgp === null ? null : JSON.stringify(bgp);
  const body: CacheFile = { format: MODEL_CACHE_FORMAT, version: MODEL_CACHE_VERSION, node, datastore, appliedAt: appliedAt.toISOString(), bootId, nodeIdentity, sha256: sha256(hashed(text, bgpText)), model: text, bgp: bgpText };
  return JSON.stringify(body);
}

/**
 * Writes `file` atomically (util/replace-file.ts: a temporary dot-file beside it, fsynced, renamed
 * over it, the directory fsynced; none left by a failed write). Only the JSON
 * encoding runs on the calling thread, the file work (write, fsync, rename) off it: podway run's
 * main thread forwards, and an fsync may take a disk's time. `bootId`: the boot it is written in
 * (this one's by default). `nodeIdentity`: the Node the model is of (null: not known).
 */
export async function writeModelCache(file: string, node: string, datastore: string, model: NodeDataplaneModel, appliedAt: Date, bgp: BgpInputs | null = null, bootId: string | null = currentBootId(), nodeIdentity: NodeIdentity | null = null): Promise<number> {
  const data = cacheText(node, datastore, model, appliedAt, bgp, bootId, nodeIdentity);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await replaceFile(file, data, { mode: 0o600 });
  return data.length;
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
  /** The Node the registration last found or made (written with the next model applied). */
  private nodeIdentity: NodeIdentity | null = null;
  /** The BGP settings in force (null: none, BGP off): written with the next model that comes
   * without its own. */
  private bgpInputs: BgpInputs | null = null;
  private lastWrite = 0;
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
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
    this.lastWrite = Date.now();
    this.writing = writeModelCache(this.file, this.nodeName, this.datastore, p.model, p.at, p.bgp, undefined, p.nodeIdentity).then((bytes) => this.wrote(bytes), (e: Error) => this.failed(e)).finally(() => {
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
    if (!p) return;
    try {
      this.wrote(await writeModelCache(this.file, this.nodeName, this.datastore, p.model, p.at, p.bgp, undefined, p.nodeIdentity));
    } catch (e) {
      this.failed(e as Error);
    }
  }

  private wrote(bytes: number): void {
    if (this.failing) this.log.info(`model cache ${this.file}: written again`);
    else if (!this.wroteOnce) this.log.info(`model cache ${this.file}: written (${bytes} bytes; at most every ${this.intervalMs / 1000} s)`);
    this.wroteOnce = true;
    this.failing = false;
  }

  private failed(e: Error): void {
    // Said once until it works again: forwarding does not depend on it, a restart during a
    // datastore outage does.
    if (!this.failing) this.log.warn(`model cache ${this.file}: cannot write it (${e.message}); a restart while the datastore is unreachable would not forward until it is back`);
    this.failing = true;
  }
}
