// Deferred DELs: what a DEL could not remove from etcd because etcd was unreachable.
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
// File name: <network>+<containerID>+<ifname>.json. '+' is in neither a network name nor a
// container ID, so two attachments never share a file.
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { KvStore } from '../control/kv/kv';
import type { DatastoreSpec } from '../control/kv/spec';
import { Ipam } from '../control/ipam/ipam';
import { kindInfo } from '../control/calico-kinds';
import { deleteResource, getResource, JsonObject, ResourceError } from '../control/v3-store';

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
  /** The IPAM lock the plugin used: replays take the same one. */
  readonly ipamLockFile: string;
  readonly deferredAt: string;
  /** Why the DEL could not reach the datastore. */
  readonly reason: string;
}

/** The datastore as an entry names it: etcd's endpoints in order, so a reordered list matches. */
export function datastoreKey(spec: DatastoreSpec): string {
  if (spec.kind === 'etcd') return `etcd:${[...spec.endpoints].map((e) => e.replace(/\/+$/, '')).sort().join(',')}`;
  return spec.kind === 'embedded' ? `embedded:${spec.dir}` : `file:${spec.path}`;
}

export function pendingFileName(network: string, containerID: string, ifname: string): string {
  return `${network}+${containerID}+${ifname}.json`;
}

/** Writes the entry (replacing one of the same attachment): on disk, whole, before DEL answers. */
export function writePending(dir: string, entry: PendingDel): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, pendingFileName(entry.network, entry.containerID, entry.ifname));
  const tmp = join(dir, `.${pendingFileName(entry.network, entry.containerID, entry.ifname)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(entry, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  // The rename itself survives a crash only once the directory is synced.
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
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

function parseEntry(text: string): PendingDel {
  const e = JSON.parse(text) as PendingDel;
  if (e?.format !== PENDING_DEL_FORMAT) throw new Error(`not a ${PENDING_DEL_FORMAT} entry`);
  for (const k of ['network', 'containerID', 'ifname', 'datastore', 'ipamLockFile'] as const) {
    if (typeof e[k] !== 'string' || e[k] === '') throw new Error(`field ${k} missing`);
  }
  if (e.handle !== null && typeof e.handle !== 'string') throw new Error('field handle is not a string or null');
  if (!Array.isArray(e.endpoints) || e.endpoints.some((r) => typeof r?.name !== 'string' || typeof r?.namespace !== 'string')) throw new Error('field endpoints is not a list of {name, namespace}');
  return e;
}

/**
 * The entries in the spool (a missing directory holds none), oldest file name first; only those
 * whose name starts with `prefix` when given.
 */
export function readPending(dir: string, prefix = ''): SpooledEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: SpooledEntry[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.') || !name.endsWith('.json') || !name.startsWith(prefix)) continue;
    const file = join(dir, name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
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

/** Removes a file if it is there. */
export function removePendingFile(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Whether the file still holds `text` (not replayed or rewritten since it was read). */
export function unchanged(s: SpooledEntry): boolean {
  try {
    return readFileSync(s.file, 'utf8') === s.text;
  } catch {
    return false;
  }
}

export interface Released {
  /** Endpoints deleted, with their spec (DEL removes a host veth they name). */
  readonly deleted: { readonly ref: EndpointRef; readonly spec: JsonObject }[];
  /** Endpoints left because another container holds them now ("namespace/name"). */
  readonly kept: string[];
}

/**
 * What DEL does in the datastore, and what a replay does: the handle released, each candidate
 * endpoint deleted while it still names this container (compare-and-swap on its revision).
 */
export async function releaseInStore(kv: KvStore, handle: string | null, endpoints: readonly EndpointRef[], containerID: string): Promise<Released> {
  if (handle !== null) await new Ipam(kv).releaseByHandle(handle);
  const deleted: { ref: EndpointRef; spec: JsonObject }[] = [];
  const kept: string[] = [];
  for (const ref of endpoints) {
    const found = await getResource(kv, WEP, ref.name, ref.namespace);
    if (!found) continue;
    const spec = (found.object.spec ?? {}) as JsonObject;
    // A newer sandbox of the same pod owns it now: leave it (and its veth, which has the same name).
    if (typeof spec.containerID === 'string' && spec.containerID !== '' && spec.containerID !== containerID) {
      kept.push(`${ref.namespace}/${ref.name}`);
      continue;
    }
    try {
      await deleteResource(kv, { info: WEP, name: ref.name, namespace: ref.namespace }, found.entry.modRevision);
      deleted.push({ ref, spec });
    } catch (e) {
      if (!(e instanceof ResourceError && e.reason === 'not-found')) throw e;
    }
  }
  return { deleted, kept };
}
