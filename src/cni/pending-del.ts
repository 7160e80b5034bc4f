// Deferred DELs: what a DEL could not remove from etcd because etcd was unreachable, or from a
// datastore locked by `calicoctl datastore migrate lock` (etcd or the embedded store: a lifted
// lock is what the replay waits for then).
//
// podman (and libcni's other users) do not retry a failed DEL: the container is gone for them, so
// the pod's WorkloadEndpoint and its IPAM addresses would stay in etcd for good, counted as used.
// A DEL that finds etcd unreachable therefore still removes everything local (the pod's
// interface, the host veth), writes one file per attachment here, and succeeds; `podway run` on
// the node replays the file once etcd answers (at its start, when its datastore answers again,
// and every minute), and an ADD of the same container ID replays it first (its handle is the
// same: a later replay would release the new pod's addresses). Replays hold the host-wide IPAM
// lock (ipam-lock.ts) for the whole entry, so an ADD and a replay of the same container never
// interleave.
//
// A replay does what DEL would have done: release the container's IPAM handle (handles are per
// network and container ID, so no other pod's), and delete each candidate WorkloadEndpoint only
// while it still names this container ID, by compare-and-swap on the revision read: a pod
// re-created under the same name (k8s endpoint names carry the pod name, not the container) is
// someone else's and stays.
//
// Which datastore an entry is for: etcd's cluster_id when the plugin had seen it (DEL defers
// because etcd does not answer, so the entry records the cluster_id the plugin last saw for that
// datastore string, cached in this directory at every ADD and DEL that reached it), else the
// endpoint list. Endpoint strings alone mismatch too easily (localhost vs 127.0.0.1, a member
// added): two lists that share an endpoint (after normalising) are taken as one datastore. The
// embedded store is named by its directory (resolved to an absolute path).
//
// File name: <network>+<containerID>+<ifname>.json. '+' is in neither a network name nor a
// container ID, so two attachments never share a file.
import { makeDirsSync } from '../util/make-dirs';
import { INTERFACE_NETNS_ANNOTATION, storedInterfaceType } from '../control/wep-interface';
import { closeSync, constants as fsc, fstatSync, linkSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { handleId, NETWORK_ANNOTATION, PodIdentity, workloadEndpointName } from './names';
import { replaceFileSync } from '../util/replace-file';
import { ownUid, requirePrivateDir } from './ipam-lock';
import type { KvStore } from '../control/kv/kv';
import type { DatastoreSpec } from '../control/kv/spec';
import { handleKey } from '../control/ipam/keys';
import { kindInfo } from '../control/calico-kinds';
import { deleteResource, getResource, JsonObject, listResources, ResourceError } from '../control/v3-store';

export const PENDING_DEL_FORMAT = 'podway-pending-del/v1';

const WEP = kindInfo('WorkloadEndpoint')!;

export interface EndpointRef {
  readonly name: string;
  readonly namespace: string;
}

export interface PendingDel {
  readonly format: typeof PENDING_DEL_FORMAT;
  readonly network: string;
  readonly containerID: string;
  readonly ifname: string;
  readonly node: string;
  /** The IPAM handle to release; null with a delegated IPAM plugin (its DEL already ran). */
  readonly handle: string | null;
  /** The WorkloadEndpoints DEL would delete (while they still name containerID). */
  readonly endpoints: readonly EndpointRef[];
  /** The host-side interface as DEL derived it (informational: it went with the pod's end). */
  readonly interfaceName: string | null;
  /** Which datastore this is for (datastoreKey): a podway run on another one leaves it. */
  readonly datastore: string;
  /** etcd's cluster_id as the plugin last saw it for `datastore` (null: never seen; older entries lack it). */
  readonly clusterId?: string | null;
  /** The IPAM lock the plugin used: replays take the same one. */
  readonly ipamLockFile: string;
  readonly deferredAt: string;
  /** Why the DEL could not reach the datastore. */
  readonly reason: string;
  /**
   * The DEL's CNI_ARGS had a part passed over (a malformed K8S_POD_NAME, say) and the pod's
   * endpoint could not be read to tell who the pod is: `endpoints` holds the plain-CNI name only,
   * so the replay also deletes the endpoint ADD wrote for this attachment, found by its record
   * (this container ID and ifname, on this node, of this network: recordedPod). Absent: false.
   */
  readonly byRecord?: boolean;
  /**
   * A veth whose pod end DEL found in CNI_NETNS but could not prove this container's (with the
   * pod's name lost, the host veth's name is not known): the index (in the node's namespace) of
   * that end's peer. The replay removes the host veth an endpoint it deleted names when it still
   * has this index (then it is that very pod end's peer). Absent or null: none left.
   */
  readonly hostIfindex?: number | null;
  /**
   * Host veths a veth pod's DEL left without looking for the pod end (no CNI_NETNS, or one not
   * there), by name, with their index (in the node's namespace) at the DEL: the one CNI_ARGS names,
   * or every pod veth there when CNI_ARGS lost the pod's name (plugin.ts leftHostVeths). The replay
   * removes the host veth an endpoint it deleted names when it is listed here and still has that
   * index (the veth that was there at the DEL, not one a pod re-created since under the same name
   * made). Absent or null: none recorded.
   */
  readonly hostVeths?: Readonly<Record<string, number>> | null;
  /**
   * A tap/tun device DEL found in CNI_NETNS but could not prove this container's (the pod's name
   * lost, its altname is not known): its index and the identity of that namespace (netnsIdentity:
   * the nsfs inode and its change time; the inode alone is reused by a namespace made after this
   * one is gone). The replay removes a device in the namespace the endpoint names only when it
   * carries the endpoint's altname, has this index and the namespace is this very one: a pod
   * re-created at the same namespace path (the same name, so the same altname) keeps its device.
   * Absent or null (none seen, or an entry of an older podway): a tap/tun device is left.
   */
  readonly podDevice?: PodDeviceRef | null;
}

export interface PodDeviceRef {
  readonly ifindex: number;
  readonly netnsIno: number;
  /** The nsfs inode's ctime in nanoseconds, as a decimal string (beyond a double's precision). */
  readonly netnsCtimeNs: string;
}

/** Which network namespace `path` is (it is followed): the nsfs inode and that inode's ctime. */
export function netnsIdentity(path: string): { netnsIno: number; netnsCtimeNs: string } {
  const st = statSync(path, { bigint: true });
  return { netnsIno: Number(st.ino), netnsCtimeNs: st.ctimeNs.toString() };
}

/** The datastore as an entry names it: etcd's endpoints in order, so a reordered list matches. */
export function datastoreKey(spec: DatastoreSpec): string {
  if (spec.kind === 'etcd') return `etcd:${[...spec.endpoints].map((e) => e.replace(/\/+$/, '')).sort().join(',')}`;
  // the embedded store's directory as a path (`/var/lib/podway/` is `/var/lib/podway`)
  return spec.kind === 'embedded' ? `embedded:${resolve(spec.dir)}` : `file:${spec.path}`;
}

export function pendingFileName(network: string, containerID: string, ifname: string): string {
  return `${network}+${containerID}+${ifname}.json`;
}

const SPOOL_SETTING = '"pending_del_dir"';

/** The spool directory, made private if missing; one others may write to is refused. */
export function openSpoolDir(dir: string): void {
  makeDirsSync(dir, { mode: 0o700, what: SPOOL_SETTING });
  requirePrivateDir(dir, SPOOL_SETTING);
}

/** Writes the entry (replacing one of the same attachment): on disk, whole, before DEL answers. */
export function writePending(dir: string, entry: PendingDel): string {
  openSpoolDir(dir);
  const file = join(dir, pendingFileName(entry.network, entry.containerID, entry.ifname));
  replaceFileSync(file, JSON.stringify(entry, null, 2) + '\n', { mode: 0o600 });
  return file;
}

export interface SpooledEntry {
  readonly file: string;
  /** The file's text as read (a replay re-reads it under the lock and goes on only if unchanged). */
  readonly text: string;
  readonly entry: PendingDel | null;
  /** Why the file is not a usable entry (entry null). */
  readonly error?: string;
}

/** The most host veths an entry names (a node's pods; an entry stays within MAX_ENTRY_BYTES). */
export const MAX_HOST_VETHS = 1000;

function parseEntry(text: string): PendingDel {
  const e = JSON.parse(text) as PendingDel;
  if (e?.format !== PENDING_DEL_FORMAT) throw new Error(`not a ${PENDING_DEL_FORMAT} entry`);
  for (const k of ['network', 'containerID', 'ifname', 'datastore', 'ipamLockFile'] as const) {
    if (typeof e[k] !== 'string' || e[k] === '') throw new Error(`field ${k} missing`);
  }
  if (e.clusterId !== undefined && e.clusterId !== null && typeof e.clusterId !== 'string') throw new Error('field clusterId is not a string or null');
  // The handle is not taken from the file: it is the network's and container's (a forged or
  // corrupt entry cannot name someone else's handle).
  if (e.handle !== null && typeof e.handle !== 'string') throw new Error('field handle is not a string or null');
  if (e.handle !== null && e.handle !== handleId(e.network, e.containerID)) throw new Error(`field handle ${JSON.stringify(e.handle)} is not network ${e.network}'s handle of container ${e.containerID} (${handleId(e.network, e.containerID)})`);
  if (!Array.isArray(e.endpoints) || e.endpoints.some((r) => typeof r?.name !== 'string' || typeof r?.namespace !== 'string')) throw new Error('field endpoints is not a list of {name, namespace}');
  if (e.byRecord !== undefined && typeof e.byRecord !== 'boolean') throw new Error('field byRecord is not a boolean');
  if (e.hostIfindex !== undefined && e.hostIfindex !== null && !(Number.isInteger(e.hostIfindex) && e.hostIfindex > 0)) throw new Error('field hostIfindex is not a positive integer or null');
  const v = e.hostVeths;
  if (v !== undefined && v !== null && !(typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length <= MAX_HOST_VETHS && Object.entries(v).every(([n, i]) => /^[^\s/:]{1,15}$/.test(n) && Number.isInteger(i) && i > 0))) throw new Error(`field hostVeths is not {NAME: ifindex} (at most ${MAX_HOST_VETHS}) or null`);
  const d = e.podDevice;
  if (d !== undefined && d !== null && !(typeof d === 'object' && Number.isInteger(d.ifindex) && d.ifindex > 0 && Number.isInteger(d.netnsIno) && d.netnsIno > 0 && typeof d.netnsCtimeNs === 'string' && /^\d+$/.test(d.netnsCtimeNs))) throw new Error('field podDevice is not {ifindex, netnsIno, netnsCtimeNs} or null');
  return { ...e, handle: e.handle === null ? null : handleId(e.network, e.containerID) };
}

/**
 * The entries in the spool (a missing directory holds none), oldest first (by the file's
 * modification time, then name); only those whose name starts with `prefix` when given.
 */
/** An entry is a few hundred bytes: a larger file is not one (and is not read). */
const MAX_ENTRY_BYTES = 64 * 1024;

/**
 * A spool file's text (an entry, one taken aside for replay, the cluster_id cache). Opened without
 * following a symlink (ELOOP: the link itself is refused) and without blocking (a FIFO there would
 * hang the caller: podway run reads the spool on its forwarding thread), then checked on the open
 * descriptor (fstat), so what is checked is what is read: anything but a regular file owned by this
 * process's user, of at most MAX_ENTRY_BYTES, is refused with an error naming the file and what
 * it is. ENOENT is thrown as is (callers treat a file gone as replayed meanwhile).
 */
export function readSpoolFile(file: string): string {
  const fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${file}: not a regular file`);
    const uid = ownUid();
    if (st.uid !== uid) throw new Error(`${file}: owned by uid ${st.uid}, not by this process's user (uid ${uid}): not read`);
    if (st.size > MAX_ENTRY_BYTES) throw new Error(`${file}: ${st.size} bytes, more than an entry's ${MAX_ENTRY_BYTES}`);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

export function readPending(dir: string, prefix = ''): SpooledEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: SpooledEntry[] = [];
  const mtime = (name: string): number => { try { return statSync(join(dir, name)).mtimeMs; } catch { return 0; } };
  const wanted = names.filter((name) => !name.startsWith('.') && name.endsWith('.json') && name.startsWith(prefix));
  const times = new Map(wanted.map((n) => [n, mtime(n)]));
  wanted.sort((a, b) => times.get(a)! - times.get(b)! || (a < b ? -1 : a > b ? 1 : 0));
  for (const name of wanted) {
    const file = join(dir, name);
    let text: string;
    try {
      text = readSpoolFile(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // replayed meanwhile
      out.push({ file, text: '', entry: null, error: (e as Error).message });
      continue;
    }
    try {
      out.push({ file, text, entry: parseEntry(text) });
    } catch (e) {
      out.push({ file, text, entry: null, error: (e as Error).message });
    }
  }
  return out;
}

/** Entries of one container on one network (any interface). */
export function pendingOfContainer(dir: string, network: string, containerID: string): SpooledEntry[] {
  return readPending(dir, `${network}+${containerID}+`).filter((s) => s.entry?.network === network && s.entry?.containerID === containerID);
}

// ---------------------------------------------------------------------------------------------
// Which datastore

/** An endpoint as compared: scheme and host lower-case, localhost as 127.0.0.1, no trailing slash. */
function normalEndpoint(e: string): string {
  return e.trim().replace(/\/+$/, '').toLowerCase().replace(/^(https?:\/\/)localhost(?=[:/]|$)/, '$1127.0.0.1').replace(/^(https?:\/\/)\[::1\](?=[:/]|$)/, '$1127.0.0.1');
}

function endpointsOf(key: string): Set<string> | null {
  if (!key.startsWith('etcd:')) return null;
  return new Set(key.slice(5).split(',').filter((e) => e !== '').map(normalEndpoint));
}

/**
 * Whether an entry is for the datastore `key` (cluster_id `clusterId` when known): 'same' by
 * cluster_id, or without one by an equal key or an etcd endpoint both lists hold; 'other' when
 * both cluster_ids are known and differ; 'unknown' otherwise.
 */
export function entryDatastore(entry: PendingDel, key: string, clusterId: string | null): 'same' | 'other' | 'unknown' {
  if (entry.clusterId && clusterId) return entry.clusterId === clusterId ? 'same' : 'other';
  if (entry.datastore === key) return 'same';
  const a = endpointsOf(entry.datastore);
  const b = endpointsOf(key);
  if (a && b && [...a].some((e) => b.has(e))) return 'same';
  return 'unknown';
}

function clusterCacheFile(dir: string, key: string): string {
  return join(dir, `.cluster-id.${createHash('sha256').update(key).digest('hex').slice(0, 16)}`);
}

/** The cluster_id last seen for the datastore `key` (rememberClusterId), or null. */
export function lastClusterId(dir: string, key: string): string | null {
  try {
    const c = JSON.parse(readSpoolFile(clusterCacheFile(dir, key))) as { datastore?: unknown; clusterId?: unknown };
    return c.datastore === key && typeof c.clusterId === 'string' && c.clusterId !== '' ? c.clusterId : null;
  } catch {
    return null;
  }
}

/** Records the cluster_id the datastore `key` answered with (written only when it changed). */
export function rememberClusterId(dir: string, key: string, clusterId: string): void {
  if (lastClusterId(dir, key) === clusterId) return;
  openSpoolDir(dir);
  const file = clusterCacheFile(dir, key);
  replaceFileSync(file, JSON.stringify({ datastore: key, clusterId }) + '\n', { mode: 0o600 });
}

/**
 * Entries of one container a replay has taken (claimEntry) and not finished: an ADD must wait for
 * that replay (take its lock) rather than find the old endpoint and addresses still there.
 */
export function replayingOfContainer(dir: string, network: string, containerID: string): { file: string; ipamLockFile: string | null }[] {
  const prefix = `.${network}+${containerID}+`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: { file: string; ipamLockFile: string | null }[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.json.replaying')) continue;
    const file = join(dir, name);
    let lock: string | null = null;
    try {
      lock = parseEntry(readSpoolFile(file)).ipamLockFile;
    } catch { /* finished meanwhile, or unreadable: the plugin's own lock is still taken */ }
    out.push({ file, ipamLockFile: lock });
  }
  return out;
}

/** Removes a file if it is there. */
export function removePendingFile(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * Takes an entry for replay (under the IPAM lock): the file is renamed aside first, so nothing
 * written under its name meanwhile (a new DEL of the same attachment) is deleted afterwards by
 * name. null when the file no longer holds what was read (replayed or rewritten since): then it
 * is left as it is.
 */
export function claimEntry(s: SpooledEntry): string | null {
  const aside = join(dirname(s.file), `.${basename(s.file)}.replaying`);
  try {
    renameSync(s.file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let text = '';
  try {
    text = readSpoolFile(aside);
  } catch { /* gone, or no longer a regular file of ours: treated as changed */ }
  if (text === s.text) return aside;
  putBack(aside, s.file);
  return null;
}

/** An entry taken by claimEntry and not replayed goes back (unless a newer one took its name). */
export function putBack(aside: string, file: string): void {
  try {
    linkSync(aside, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST' && (e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  removePendingFile(aside);
}

/** Whether the file still holds `text` (not replayed or rewritten since it was read). */
export function unchanged(s: SpooledEntry): boolean {
  try {
    return readSpoolFile(s.file) === s.text;
  } catch {
    return false;
  }
}

/** One attachment as a record names it: the network, container ID, interface and node of a DEL. */
export interface AttachmentRef {
  readonly network: string;
  readonly containerID: string;
  readonly ifname: string;
  readonly node: string;
}

/**
 * The k8s pod whose endpoint ADD wrote for this attachment, from that endpoint (this container ID
 * and ifname, on this node, of this network or without a network annotation, orchestrator k8s,
 * and named as ADD names that pod's endpoint: anything else is no record of the plugin's); null
 * when there is none. What DEL goes by when CNI_ARGS lost the pod's name (K8S_POD_NAME malformed).
 * Lists every endpoint (the pod's namespace is what is not known).
 */
export async function recordedPod(kv: KvStore, a: AttachmentRef): Promise<{ id: PodIdentity; ref: EndpointRef } | null> {
  for (const r of (await listResources(kv, WEP)).items) {
    const meta = (r.object.metadata ?? {}) as JsonObject;
    const spec = (r.object.spec ?? {}) as JsonObject;
    const net = ((meta.annotations ?? {}) as Record<string, string>)[NETWORK_ANNOTATION];
    if (spec.containerID !== a.containerID || spec.endpoint !== a.ifname || spec.node !== a.node) continue;
    if ((net !== undefined && net !== a.network) || spec.orchestrator !== 'k8s') continue;
    if (typeof spec.pod !== 'string' || spec.pod === '' || typeof meta.namespace !== 'string' || meta.namespace === '') continue;
    const id: PodIdentity = { orchestrator: 'k8s', namespace: meta.namespace, pod: spec.pod };
    if (meta.name !== workloadEndpointName(a.node, id, a.containerID, a.ifname)) continue;
    return { id, ref: { name: meta.name, namespace: meta.namespace } };
  }
  return null;
}

/** The endpoints a replay of `e` deletes: its list, and with byRecord the one ADD wrote (recordedPod). */
export async function entryEndpoints(kv: KvStore, e: PendingDel): Promise<EndpointRef[]> {
  const out = [...e.endpoints];
  if (!e.byRecord) return out;
  const rec = await recordedPod(kv, e);
  if (rec && !out.some((r) => r.name === rec.ref.name && r.namespace === rec.ref.namespace)) out.push(rec.ref);
  return out;
}

export interface Released {
  /** Endpoints deleted, with their spec and interface type (DEL removes a host veth they name). */
  readonly deleted: { readonly ref: EndpointRef; readonly spec: JsonObject; readonly interfaceType: string; readonly interfaceNetns: string | null }[];
  /** Endpoints left because another container holds them now ("namespace/name"). */
  readonly kept: string[];
}

/**
 * What DEL does in the datastore, and what a replay does: each candidate endpoint deleted while it
 * still names this container (compare-and-swap on its revision), then the handle released, then
 * the endpoints looked at once more. Endpoint first, as Calico's plugin does (CmdDelK8s deletes the
 * WorkloadEndpoint, cleans the namespace, then releases IPAM): a DEL killed in between leaves an
 * address allocated to a handle nobody's endpoint names (`ipam check` reports it leaked, nothing
 * routes it), not an endpoint naming a free address the next pod gets (a duplicate). The second
 * look keeps what the old order (release first) gave an ADD of the same container overlapping this
 * DEL (the CNI spec forbids it; plugin.ts's guard): an endpoint that ADD wrote after the first look
 * is deleted here, or the ADD finds its handle gone and undoes itself.
 * IPAM (its blocks' code) is loaded only when the handle is there: a DEL of a container that holds
 * no address (a repeated DEL, one after a failed ADD, a delegated IPAM's) reads one key instead.
 * The handle is one the plugin made ("<network>.<containerID>", both checked: no '/' or CR), so
 * its key is IPAM's for it. `beforeDelete` is called with each endpoint about to be deleted (this
 * container's), before it is.
 */
export async function releaseInStore(kv: KvStore, handle: string | null, endpoints: readonly EndpointRef[], containerID: string, beforeDelete?: (d: Released['deleted'][number]) => Promise<void>): Promise<Released> {
  const deleted: Released['deleted'] = [];
  const kept = new Set<string>();
  const deleteEndpoints = async () => {
    for (const ref of endpoints) {
      const found = await getResource(kv, WEP, ref.name, ref.namespace);
      if (!found) continue;
      const spec = (found.object.spec ?? {}) as JsonObject;
      // A newer sandbox of the same pod owns it now: leave it (and its veth, which has the same name).
      if (typeof spec.containerID === 'string' && spec.containerID !== '' && spec.containerID !== containerID) {
        kept.add(`${ref.namespace}/${ref.name}`);
        continue;
      }
      const netns = ((((found.object.metadata ?? {}) as JsonObject).annotations ?? {}) as Record<string, unknown>)[INTERFACE_NETNS_ANNOTATION];
      const d = { ref, spec, interfaceType: storedInterfaceType(found.object), interfaceNetns: typeof netns === 'string' ? netns : null };
      // (podway run's replay removes the interfaces a DEL left first: deleted after them, the
      // endpoint is not missing while its interface still holds the address, an orphan to hold.)
      if (beforeDelete) await beforeDelete(d);
      try {
        await deleteResource(kv, { info: WEP, name: ref.name, namespace: ref.namespace }, found.entry.modRevision);
        deleted.push(d);
      } catch (e) {
        if (!(e instanceof ResourceError && e.reason === 'not-found')) throw e;
      }
    }
  };
  await deleteEndpoints();
  if (handle !== null && (await kv.get(handleKey(handle))) !== null) {
    const { Ipam } = require('../control/ipam/ipam') as typeof import('../control/ipam/ipam');
    // By its ID whatever the blocks say (every caller holds the IPAM lock, so no ADD of this
    // container is between the handle's write and its block's): a handle an ADD killed between
    // them left, counting an address no block holds, goes too.
    const r = await new Ipam(kv).releaseByHandle(handle, { dropHandle: true });
    if (r.dropped.length > 0 && r.released.length === 0) process.stderr.write(`podway: ${containerID}: IPAM handle ${handle} counted addresses no block holds for it (${r.dropped.join(', ')}: an ADD killed between the handle's write and its block's); handle deleted\n`);
    await deleteEndpoints();
  }
  return { deleted, kept: [...kept] };
}
