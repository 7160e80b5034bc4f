// IPAMConfiguration (projectcalico.org/v3, one resource named "default") kept as one thing with
// the IPAM configuration IPAM reads, as Calico's Kubernetes datastore keeps it (libcalico-go
// backend/k8s/resources/ipam_config_v1.go: the v3 resource and model.IPAMConfigKey are one CRD).
//
// On etcd libcalico-go keeps them apart: clientv3's IPAMConfiguration() writes the v3 resource at
// /calico/resources/v3/projectcalico.org/ipamconfigurations/default (model/resource.go registers
// the kind with plural "ipamconfigurations"; the value is the whole object, as every v3 resource:
// {"kind":"IPAMConfiguration","apiVersion":"projectcalico.org/v3","metadata":{name, uid,
// creationTimestamp},"spec":{"strictAffinity":B,"maxBlocksPerHost":N (omitempty),
// "autoAllocateBlocks":B,"kubeVirtVMAddressPersistence"?,"ipCooldownSeconds"?}}), while its IPAM
// (GetIPAMConfig/SetIPAMConfig, `calicoctl ipam configure`) reads and writes model.IPAMConfigKey,
// /calico/ipam/v2/config ({"strict_affinity","auto_allocate_blocks","maxBlocksPerHost",
// "kubeVirtVMAddressPersistence","ipCooldownSeconds"}, all omitempty). A `calicoctl apply` of the
// kind on etcd therefore changes nothing IPAM does.
//
// podway writes both: the v3 key in Calico's shape (calicoctl get on the same etcd shows it) and
// /calico/ipam/v2/config (what podway's IPAM and Calico's read), in one transaction where the store
// takes one; `podway ipam configure` updates the v3 resource too when it exists. What `get` shows
// is the v3 resource's metadata with the spec IPAM uses: /calico/ipam/v2/config's values, or
// IPAM's defaults when that key is absent. It exists when either key does.
import { randomUUID } from 'node:crypto';
import { IPAM_CONFIG_KEY } from './ipam/keys';
import { decodeIpamConfig, type IpamConfig } from './ipam/records';
import type { KvBatchWrite, KvEntry, KvStore } from './kv/kv';
import { kindInfo, resourceKey } from './calico-kinds';
import { CALICO_API_VERSION } from './resource-names';
import {
  calicoTimestamp, describeIdentity, Identity, JsonObject, objectForStorage, objectFromEntry, requestedRevision, ResourceError, StoredResource,
} from './v3-store';

export const IPAM_CONFIGURATION_NAME = 'default';

const CAS_ATTEMPTS = 20;

const isMapping = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The identity of IPAMConfiguration default. */
function identity(): Identity {
  return { info: kindInfo('IPAMConfiguration')!, name: IPAM_CONFIGURATION_NAME };
}

/** Where libcalico-go's clientv3 keeps the v3 resource on etcd. */
export function ipamConfigurationKey(): string {
  return resourceKey(identity().info, IPAM_CONFIGURATION_NAME);
}

/** The spec fields both keys hold, in the v2 value's Go order (model.IPAMConfig): the v3 name, the v2 name, the type. */
const FIELDS = [
  { v3: 'strictAffinity', v2: 'strict_affinity', kind: 'bool' },
  { v3: 'autoAllocateBlocks', v2: 'auto_allocate_blocks', kind: 'bool' },
  { v3: 'maxBlocksPerHost', v2: 'maxBlocksPerHost', kind: 'int' },
  { v3: 'kubeVirtVMAddressPersistence', v2: 'kubeVirtVMAddressPersistence', kind: 'string' },
  { v3: 'ipCooldownSeconds', v2: 'ipCooldownSeconds', kind: 'int' },
] as const;
const V3_FIELDS: ReadonlySet<string> = new Set(FIELDS.map((f) => f.v3));
const V2_FIELDS: ReadonlySet<string> = new Set(FIELDS.map((f) => f.v2));

/** Both keys as read (null: absent). */
export interface IpamConfigurationEntries {
  readonly v3: KvEntry | null;
  readonly v2: KvEntry | null;
}

/** The two keys, read at one revision where the store can (getMany). */
export async function readIpamConfigurationEntries(kv: KvStore): Promise<IpamConfigurationEntries> {
  const keys = [ipamConfigurationKey(), IPAM_CONFIG_KEY];
  const [v3, v2] = kv.getMany && (kv.maxBatch ?? 0) >= 2 ? await kv.getMany(keys) : await Promise.all(keys.map((k) => kv.get(k)));
  return { v3: v3 ?? null, v2: v2 ?? null };
}

/** A JSON object value, or an error naming the key. */
function parseObject(entry: KvEntry): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(entry.value === '' ? '{}' : entry.value);
  } catch (e) {
    throw new Error(`${entry.key}: not valid JSON (${(e as Error).message})`);
  }
  if (!isMapping(v)) throw new Error(`${entry.key}: not a JSON object`);
  return v;
}

/**
 * The v3 spec of IPAM's configuration: /calico/ipam/v2/config's values (an absent field is false
 * or 0, as Go reads it), or IPAM's defaults when the key is absent (libcalico-go's GetIPAMConfig:
 * strictAffinity false, autoAllocateBlocks true, maxBlocksPerHost 0, which means 20).
 */
function specOfV2(v2: KvEntry | null): JsonObject {
  if (v2 === null) return normalSpec({ strictAffinity: false, autoAllocateBlocks: true });
  const v = parseObject(v2);
  // The fields IPAM reads, read by IPAM's own reader (records.ts decodeIpamConfig: an absent one is
  // Go's zero value, so an absent auto_allocate_blocks is false, not normalSpec's v3 default):
  // what get shows and what the allocator uses cannot differ (they did: fa0057f).
  let ipam: IpamConfig;
  try {
    ipam = decodeIpamConfig(v2.value === '' ? '{}' : v2.value);
  } catch (e) {
    throw new Error(`${v2.key}: ${(e as Error).message}`);
  }
  const spec: JsonObject = { strictAffinity: ipam.strictAffinity, autoAllocateBlocks: ipam.autoAllocateBlocks, maxBlocksPerHost: ipam.maxBlocksPerHost };
  for (const f of FIELDS) {
    if (f.v3 in spec) continue;
    const x = v[f.v2];
    if (x === undefined || x === null) continue;
    const ok = f.kind === 'int' ? Number.isInteger(x) && (x as number) >= 0 : typeof x === 'string';
    if (!ok) throw new Error(`${v2.key}: ${f.v2}: expected ${f.kind === 'int' ? 'a non-negative integer' : 'a string'}, got ${JSON.stringify(x)}`);
    spec[f.v3] = x;
  }
  return normalSpec(spec);
}

/**
 * A spec as Calico stores it: Go's field order, strictAffinity and autoAllocateBlocks always there
 * (no omitempty), maxBlocksPerHost and ipCooldownSeconds only when not 0. An absent
 * autoAllocateBlocks is true (the default Calico's API gives it), an absent strictAffinity false.
 * Fields of neither key are kept after them (a newer Calico's).
 */
export function normalSpec(spec: JsonObject): JsonObject {
  const out: JsonObject = {
    strictAffinity: spec.strictAffinity === true,
    ...(typeof spec.maxBlocksPerHost === 'number' && spec.maxBlocksPerHost !== 0 ? { maxBlocksPerHost: spec.maxBlocksPerHost } : {}),
    autoAllocateBlocks: spec.autoAllocateBlocks !== false,
    ...(typeof spec.kubeVirtVMAddressPersistence === 'string' ? { kubeVirtVMAddressPersistence: spec.kubeVirtVMAddressPersistence } : {}),
    ...(typeof spec.ipCooldownSeconds === 'number' && spec.ipCooldownSeconds !== 0 ? { ipCooldownSeconds: spec.ipCooldownSeconds } : {}),
  };
  for (const [k, v] of Object.entries(spec)) if (!V3_FIELDS.has(k) && v !== undefined) out[k] = v;
  return out;
}

/** /calico/ipam/v2/config's value for `spec`: the five fields from it (omitempty), others the old value held kept. */
function v2ValueFor(spec: JsonObject, old: KvEntry | null): string {
  let kept: JsonObject = {};
  if (old !== null) {
    try {
      kept = parseObject(old);
    } catch {
      kept = {}; // an unreadable value is replaced whole
    }
  }
  const out: JsonObject = {};
  for (const f of FIELDS) {
    const x = spec[f.v3];
    if (x === undefined || x === null || x === false || x === 0 || x === '') continue;
    out[f.v2] = x;
  }
  for (const [k, v] of Object.entries(kept)) if (!V2_FIELDS.has(k)) out[k] = v;
  return JSON.stringify(out);
}

/** The larger modRevision of the two (either changing raises it: revisions are store-wide). */
function revisionOf(e: IpamConfigurationEntries): number {
  return Math.max(e.v3?.modRevision ?? 0, e.v2?.modRevision ?? 0);
}

/** IPAMConfiguration default as `get` shows it (null when neither key exists); resourceVersion: revisionOf. */
export function ipamConfigurationFrom(e: IpamConfigurationEntries): StoredResource | null {
  if (e.v3 === null && e.v2 === null) return null;
  const base: JsonObject = e.v3 ? objectFromEntry(e.v3) : { kind: 'IPAMConfiguration', apiVersion: CALICO_API_VERSION, metadata: { name: IPAM_CONFIGURATION_NAME } };
  const storedSpec = isMapping(base.spec) ? base.spec : {};
  const others = Object.fromEntries(Object.entries(storedSpec).filter(([k]) => !V3_FIELDS.has(k)));
  const revision = revisionOf(e);
  const meta = { ...(isMapping(base.metadata) ? base.metadata : {}), resourceVersion: String(revision) };
  const object: JsonObject = { ...base, metadata: meta, spec: normalSpec({ ...others, ...specOfV2(e.v2) }) };
  const entry: KvEntry = {
    key: ipamConfigurationKey(), value: JSON.stringify(object),
    createRevision: Math.min(...[e.v3, e.v2].flatMap((x) => (x ? [x.createRevision] : []))), modRevision: revision,
  };
  return { key: entry.key, entry, object };
}

export async function getIpamConfiguration(kv: KvStore, name: string): Promise<StoredResource | null> {
  if (name !== IPAM_CONFIGURATION_NAME) return null;
  return ipamConfigurationFrom(await readIpamConfigurationEntries(kv));
}

/**
 * Writes both keys as one transaction where the store takes one (writeBatch), each only if still
 * as read; else one after the other, each compare-and-swapped (/calico/ipam/v2/config first: what
 * IPAM reads). False when a key changed since `read` (nothing written, or with no transaction
 * possibly the first only: the caller reads again and writes both again).
 */
async function writeBoth(kv: KvStore, read: IpamConfigurationEntries, v3Value: string | null, v2Value: string): Promise<boolean> {
  const writes: KvBatchWrite[] = [{ key: IPAM_CONFIG_KEY, value: v2Value, modRevision: read.v2?.modRevision ?? 0 }];
  if (v3Value !== null) writes.push({ key: ipamConfigurationKey(), value: v3Value, modRevision: read.v3?.modRevision ?? 0 });
  if (kv.writeBatch && (kv.maxBatch ?? 0) >= writes.length) return (await kv.writeBatch(writes)) !== null;
  for (const w of writes) {
    const done = w.modRevision === 0 ? await kv.create(w.key, w.value) : await kv.update(w.key, w.value, w.modRevision);
    if (!done) return false;
  }
  return true;
}

export type IpamConfigurationVerb = 'create' | 'replace' | 'apply';

/**
 * create, replace or apply of IPAMConfiguration default (`obj` validated by its schema). It exists
 * when either key does (create: 'exists'; replace: 'not-found' when neither). The v3 resource keeps
 * its uid and creationTimestamp; a resourceVersion given must be the one `get` shows.
 */
export async function writeIpamConfiguration(kv: KvStore, verb: IpamConfigurationVerb, obj: JsonObject, now: () => Date = () => new Date()): Promise<{ action: 'created' | 'replaced'; resource: StoredResource }> {
  const id = identity();
  const name = isMapping(obj.metadata) ? obj.metadata.name : undefined;
  // libcalico-go's clientv3 ipamconfig.go validateMetadata, its words
  if (name !== IPAM_CONFIGURATION_NAME) throw new ResourceError('invalid', 'Cannot create an IPAMConfiguration resource with a name other than "default"');
  const wanted = requestedRevision(obj);
  const spec = normalSpec(isMapping(obj.spec) ? obj.spec : {});
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const read = await readIpamConfigurationEntries(kv);
    const exists = read.v3 !== null || read.v2 !== null;
    if (verb === 'create' && exists) throw new ResourceError('exists', `resource already exists: ${describeIdentity(id)}`);
    if (verb === 'replace' && !exists) throw new ResourceError('not-found', `resource does not exist: ${describeIdentity(id)}`);
    if (exists && wanted !== undefined && wanted !== revisionOf(read)) {
      throw new ResourceError('conflict', `update conflict: ${describeIdentity(id)} has resourceVersion ${revisionOf(read)}, not ${wanted} (someone changed it; get it again)`);
    }
    let oldMeta: JsonObject = {};
    if (read.v3) {
      try {
        const old = objectFromEntry(read.v3);
        if (isMapping(old.metadata)) oldMeta = old.metadata;
      } catch {
        /* an unreadable stored value is replaced whole */
      }
    }
    const uid = typeof oldMeta.uid === 'string' && oldMeta.uid ? oldMeta.uid : randomUUID();
    const created = typeof oldMeta.creationTimestamp === 'string' ? oldMeta.creationTimestamp : calicoTimestamp(now());
    const v3Value = JSON.stringify(objectForStorage({ ...obj, spec }, id, uid, created));
    if (await writeBoth(kv, read, v3Value, v2ValueFor(spec, read.v2))) {
      const resource = ipamConfigurationFrom(await readIpamConfigurationEntries(kv));
      if (resource) return { action: exists ? 'replaced' : 'created', resource };
    } else if (wanted !== undefined) {
      throw new ResourceError('conflict', `update conflict: ${describeIdentity(id)} changed while being written (resourceVersion ${wanted})`);
    }
  }
  throw new ResourceError('conflict', `update conflict: ${describeIdentity(id)} kept changing (${CAS_ATTEMPTS} attempts)`);
}

/** Deletes both keys (IPAM then uses its defaults); 'not-found' when neither exists. */
export async function deleteIpamConfiguration(kv: KvStore, name: string, resourceVersion?: number): Promise<StoredResource> {
  const id = { ...identity(), name };
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const read = name === IPAM_CONFIGURATION_NAME ? await readIpamConfigurationEntries(kv) : { v3: null, v2: null };
    const shown = ipamConfigurationFrom(read);
    if (!shown) throw new ResourceError('not-found', `resource does not exist: ${describeIdentity(id)}`);
    if (resourceVersion !== undefined && resourceVersion !== shown.entry.modRevision) {
      throw new ResourceError('conflict', `delete conflict: ${describeIdentity(id)} has resourceVersion ${shown.entry.modRevision}, not ${resourceVersion}`);
    }
    let gone = true;
    for (const e of [read.v2, read.v3]) if (e && !(await kv.delete(e.key, e.modRevision))) gone = false;
    if (gone) return shown;
  }
  throw new ResourceError('conflict', `delete conflict: ${describeIdentity(id)} kept changing (${CAS_ATTEMPTS} attempts)`);
}

/**
 * `podway ipam configure`'s write: /calico/ipam/v2/config with `change` applied to what it holds,
 * and the v3 resource's spec to match when it exists (one transaction where the store takes one).
 * `check` sees the configuration before and after (libcalico-go's SetIPAMConfig refusals); when
 * nothing changes nothing is written, as SetIPAMConfig returns at once then.
 */
export async function configureIpam(kv: KvStore, change: JsonObject, check: (before: JsonObject, after: JsonObject) => void): Promise<void> {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const read = await readIpamConfigurationEntries(kv);
    const before = specOfV2(read.v2);
    const after = normalSpec({ ...before, ...change });
    if (JSON.stringify(before) === JSON.stringify(after)) return;
    check(before, after);
    let v3Value: string | null = null;
    if (read.v3) {
      let old: JsonObject;
      try {
        old = objectFromEntry(read.v3);
      } catch {
        old = { metadata: { name: IPAM_CONFIGURATION_NAME } };
      }
      const oldMeta = isMapping(old.metadata) ? old.metadata : {};
      const oldSpec = isMapping(old.spec) ? old.spec : {};
      const others = Object.fromEntries(Object.entries(oldSpec).filter(([k]) => !V3_FIELDS.has(k)));
      v3Value = JSON.stringify(objectForStorage({ ...old, spec: normalSpec({ ...others, ...after }) }, identity(),
        typeof oldMeta.uid === 'string' && oldMeta.uid ? oldMeta.uid : randomUUID(),
        typeof oldMeta.creationTimestamp === 'string' ? oldMeta.creationTimestamp : calicoTimestamp(new Date())));
    }
    if (await writeBoth(kv, read, v3Value, v2ValueFor(after, read.v2))) return;
  }
  throw new Error(`${IPAM_CONFIG_KEY}: changed by someone else ${CAS_ATTEMPTS} times in a row; try again`);
}
