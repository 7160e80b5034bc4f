// Reading and writing Calico v3 resources in a KvStore the way libcalico-go's clientv3 + etcdv3
// backend do, so that calicoctl and calico-node reading the same etcd see what they would have
// written themselves:
//   - the value is the whole object as JSON, keys in Go's struct order: kind, apiVersion, metadata
//     (name, namespace, uid, creationTimestamp, labels, annotations...), spec;
//   - resourceVersion is not stored: it is the key's modRevision, filled in when read;
//   - create is create-if-absent and sets metadata.uid (a UUID) and metadata.creationTimestamp
//     (RFC 3339, seconds); update and delete compare the modRevision (compare-and-swap);
//   - IPPool defaults are filled in as clientv3 does (ipipMode/vxlanMode Never, blockSize 26 or
//     122, nodeSelector all(), allowedUses [Workload, Tunnel], assignmentMode Automatic as v3.30+;
//     false booleans omitted, as Go's omitempty does), and a WorkloadEndpoint gets the projectcalico.org/namespace and
//     projectcalico.org/orchestrator labels clientv3 adds before storing.
import { asNumberInput } from './as-number';
import { randomUUID } from 'node:crypto';
import { ipv6CidrProblem, netsOverlap, parseNet } from './ipam/net';
import { KvBatchWrite, KvEntry, KvStore } from './kv/kv';
import {
  blockAffinityFromKv, kindInfo, KindInfo, kindPrefix, parseResourceKey, resourceKey, validateResource,
} from './calico-kinds';
import { CALICO_API_VERSION } from './resource-names';
import { assignOrValidateWepName, mayBeOnNode } from './wep-name';

export type JsonObject = Record<string, unknown>;

/** IPAMConfiguration's reads and writes (two keys: ipam-configuration.ts), required when that kind is named. */
const ipamConfiguration = () => require('./ipam-configuration') as typeof import('./ipam-configuration');

/** A resource as read from the store: `object` carries metadata.resourceVersion = modRevision. */
export interface StoredResource {
  readonly key: string;
  readonly entry: KvEntry;
  readonly object: JsonObject;
}

export type ResourceErrorReason = 'exists' | 'not-found' | 'conflict' | 'invalid';

/** A write refused for a reason calicoctl also names (exists, does not exist, conflict). */
export class ResourceError extends Error {
  constructor(readonly reason: ResourceErrorReason, message: string) {
    super(message);
    this.name = 'ResourceError';
  }
}

/** How many compare-and-swap rounds a write tries when someone else keeps writing the same key. */
const CAS_ATTEMPTS = 20;

const METADATA_ORDER = [
  'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields',
];
const IPPOOL_SPEC_ORDER = [
  'cidr', 'vxlanMode', 'ipipMode', 'natOutgoing', 'disabled', 'disableBGPExport', 'blockSize', 'nodeSelector', 'namespaceSelector',
  'allowedUses', 'assignmentMode',
];
/** Go struct field order of the specs podway writes most (fields podway does not know go last). */
const SPEC_ORDER: Record<string, readonly string[]> = {
  Node: ['bgp', 'ipv4VXLANTunnelAddr', 'ipv6VXLANTunnelAddr', 'vxlanTunnelMACAddr', 'vxlanTunnelMACAddrV6', 'orchRefs', 'wireguard', 'addresses'],
  WorkloadEndpoint: [
    'orchestrator', 'workload', 'node', 'containerID', 'pod', 'endpoint', 'serviceAccountName', 'ipNetworks', 'ipv4NAT', 'ipv6NAT',
    'profiles', 'interfaceName', 'mac', 'ports', 'allowSpoofedSourcePrefixes', 'qosControls',
  ],
  ClusterInformation: ['clusterGUID', 'clusterType', 'calicoVersion', 'datastoreReady', 'variant'],
  IPAMConfiguration: ['strictAffinity', 'maxBlocksPerHost', 'autoAllocateBlocks', 'kubeVirtVMAddressPersistence', 'ipCooldownSeconds'],
};
const NODE_BGP_ORDER = ['asNumber', 'ipv4Address', 'ipv6Address', 'ipv4IPIPTunnelAddr', 'routeReflectorClusterID'];

function isMapping(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A copy of `obj` with the keys in `order` first (in that order), then the others as they were. */
function ordered(obj: JsonObject, order: readonly string[]): JsonObject {
  const out: JsonObject = {};
  for (const k of order) if (obj[k] !== undefined) out[k] = obj[k];
  for (const [k, v] of Object.entries(obj)) if (!(k in out) && v !== undefined) out[k] = v;
  return out;
}

function sortedMap(obj: JsonObject): JsonObject {
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** metav1.Time's JSON form: RFC 3339 in UTC, whole seconds. */
export function calicoTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface Identity {
  readonly info: KindInfo;
  readonly name: string;
  readonly namespace?: string;
}

/** "IPPool(default-pool)", "WorkloadEndpoint(ns/name)": how calicoctl names a resource in errors. */
export function describeIdentity(id: Identity): string {
  return `${id.info.kind}(${id.namespace ? `${id.namespace}/` : ''}${id.name})`;
}

/** Kind, name and namespace of a valid resource object (the namespace defaulted for namespaced kinds). */
export function identityOf(obj: JsonObject, defaultNamespace = 'default'): Identity {
  const info = kindInfo(String(obj.kind));
  if (!info) throw new Error(`unknown kind ${JSON.stringify(obj.kind)}`);
  const meta = isMapping(obj.metadata) ? obj.metadata : {};
  const name = String(meta.name ?? '');
  if (!info.namespaced) return { info, name };
  const ns = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : defaultNamespace;
  return { info, name, namespace: ns };
}

/**
 * An IPv6 pool CIDR in the text Calico stores (clientv3's validateAndSetDefaults: `cidr.String()`,
 * RFC 5952: "FD00:10:244:0::/64" is stored as "fd00:10:244::/64"); any other text as given (host
 * bits set are refused by checkPool, as there: "not strictly masked").
 */
export function canonicalPoolCidr(text: string): string {
  if (!text.includes(':')) return text;
  const net = parseNet(text);
  return net ? net.text : text;
}

function poolSpecForStorage(spec: JsonObject): JsonObject {
  const out: JsonObject = { ...spec };
  if (typeof out.cidr === 'string') out.cidr = canonicalPoolCidr(out.cidr);
  const v6 = String(spec.cidr ?? '').includes(':');
  if (!out.ipipMode) out.ipipMode = 'Never';
  if (!out.vxlanMode) out.vxlanMode = 'Never';
  if (!out.blockSize) out.blockSize = v6 ? 122 : 26;
  if (!out.nodeSelector) out.nodeSelector = 'all()';
  if (!Array.isArray(out.allowedUses) || out.allowedUses.length === 0) out.allowedUses = ['Workload', 'Tunnel'];
  // clientv3 (v3.30+) validateAndSetDefaults: a nil assignmentMode is stored as Automatic, on
  // create and update alike.
  if (out.assignmentMode === undefined || out.assignmentMode === null) out.assignmentMode = 'Automatic';
  for (const flag of ['natOutgoing', 'disabled', 'disableBGPExport']) if (out[flag] === false) delete out[flag];
  return ordered(out, IPPOOL_SPEC_ORDER);
}

/**
 * The object as Calico stores it: Go's field order, no resourceVersion/selfLink, the given uid and
 * creation time, the kind's defaults and storage labels.
 */
export function objectForStorage(obj: JsonObject, id: Identity, uid: string, creationTimestamp: string): JsonObject {
  const meta: JsonObject = { ...(isMapping(obj.metadata) ? obj.metadata : {}) };
  delete meta.resourceVersion;
  delete meta.selfLink;
  meta.name = id.name;
  if (id.namespace !== undefined) meta.namespace = id.namespace;
  else delete meta.namespace;
  meta.uid = uid;
  meta.creationTimestamp = creationTimestamp;
  let spec = isMapping(obj.spec) ? obj.spec : {};
  if (id.info.kind === 'IPPool') spec = poolSpecForStorage(spec);
  // IPReservationSpec.ReservedCIDRs is omitempty: an empty list is not stored
  if (id.info.kind === 'IPReservation' && Array.isArray(spec.reservedCIDRs) && spec.reservedCIDRs.length === 0) {
    spec = { ...spec };
    delete spec.reservedCIDRs;
  }
  // an AS number given as "64512" or asdot "1.10" is stored as the number, as Calico stores it
  if ((id.info.kind === 'BGPPeer' || id.info.kind === 'BGPConfiguration') && typeof spec.asNumber === 'string') spec = { ...spec, asNumber: asNumberInput(spec.asNumber) as number };
  if (id.info.kind === 'BGPPeer' && typeof spec.localASNumber === 'string') spec = { ...spec, localASNumber: asNumberInput(spec.localASNumber) as number };
  if (id.info.kind === 'Node' && isMapping(spec.bgp) && typeof spec.bgp.asNumber === 'string') spec = { ...spec, bgp: { ...spec.bgp, asNumber: asNumberInput(spec.bgp.asNumber) as number } };
  const specOrder = SPEC_ORDER[id.info.kind];
  if (specOrder) spec = ordered(spec, specOrder);
  if (id.info.kind === 'Node' && isMapping(spec.bgp)) spec = { ...spec, bgp: ordered(spec.bgp, NODE_BGP_ORDER) };
  if (id.info.kind === 'WorkloadEndpoint') {
    const labels: JsonObject = { ...(isMapping(meta.labels) ? meta.labels : {}) };
    labels['projectcalico.org/namespace'] = id.namespace;
    labels['projectcalico.org/orchestrator'] = typeof spec.orchestrator === 'string' ? spec.orchestrator : '';
    if (typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== '') {
      labels['projectcalico.org/serviceaccount'] = spec.serviceAccountName;
    }
    meta.labels = labels;
  }
  // Go marshals maps with sorted keys.
  if (isMapping(meta.labels)) meta.labels = sortedMap(meta.labels);
  if (isMapping(meta.annotations)) meta.annotations = sortedMap(meta.annotations);
  const rest: JsonObject = { ...obj };
  delete rest.kind;
  delete rest.apiVersion;
  delete rest.metadata;
  delete rest.spec;
  return { kind: id.info.kind, apiVersion: CALICO_API_VERSION, metadata: ordered(meta, METADATA_ORDER), spec, ...rest };
}

/** A stored value read back: the object with metadata.resourceVersion set to the entry's modRevision. */
export function objectFromEntry(entry: KvEntry): JsonObject {
  const obj = JSON.parse(entry.value) as unknown;
  if (!isMapping(obj)) throw new Error(`${entry.key}: value is not a JSON object`);
  const meta = { ...(isMapping(obj.metadata) ? obj.metadata : {}), resourceVersion: String(entry.modRevision) };
  return { ...obj, metadata: ordered(meta, METADATA_ORDER) };
}

function stored(entry: KvEntry): StoredResource {
  return { key: entry.key, entry, object: objectFromEntry(entry) };
}

export async function getResource(kv: KvStore, info: KindInfo, name: string, namespace?: string): Promise<StoredResource | null> {
  if (info.kind === 'IPAMConfiguration') return ipamConfiguration().getIpamConfiguration(kv, name);
  if (info.kind === 'BlockAffinity') {
    const list = await listResources(kv, info);
    return list.items.find((r) => (r.object.metadata as JsonObject).name === name) ?? null;
  }
  const entry = await kv.get(resourceKey(info, name, namespace));
  return entry ? stored(entry) : null;
}

export interface ResourceList {
  readonly items: readonly StoredResource[];
  /** The store revision the list was read at (calicoctl's list resourceVersion). */
  readonly revision: number;
  /** Values that could not be read (not JSON, or an affinity key of the wrong shape). */
  readonly problems: readonly string[];
}

/**
 * The WorkloadEndpoints of one node (spec.node), in key order: the kind's keys listed, and only
 * those whose name or text can be the node's (wep-name.ts mayBeOnNode) parsed; a cluster's
 * other endpoints cost a string compare each, not a JSON parse. Values that cannot be read are
 * `problems`, as listResources says them.
 */
export async function listNodeWorkloadEndpoints(kv: KvStore, node: string): Promise<ResourceList> {
  const info = kindInfo('WorkloadEndpoint')!;
  const list = await kv.list(kindPrefix(info));
  const items: StoredResource[] = [];
  const problems: string[] = [];
  for (const entry of list.entries) {
    if (!mayBeOnNode(entry.key, entry.value, node)) continue;
    const parsed = parseResourceKey(entry.key);
    if (!parsed || parsed.info !== info) continue;
    try {
      const item = stored(entry);
      if (item.object.kind !== undefined && item.object.kind !== info.kind) {
        problems.push(`${entry.key}: kind: ${String(item.object.kind)} stored under ${info.plural}/`);
        continue;
      }
      if (isMapping(item.object.spec) && item.object.spec.node === node) items.push(item);
    } catch (e) {
      problems.push(`${entry.key}: ${(e as Error).message}`);
    }
  }
  return { items, revision: list.revision, problems };
}

/** Every resource of a kind (in one namespace when given), in key order. */
export async function listResources(kv: KvStore, info: KindInfo, namespace?: string): Promise<ResourceList> {
  if (info.kind === 'IPAMConfiguration') {
    // one resource, "default" (both its keys read at one revision where the store can)
    const m = ipamConfiguration();
    const entries = await m.readIpamConfigurationEntries(kv);
    const one = m.ipamConfigurationFrom(entries);
    return { items: one ? [one] : [], revision: Math.max(one?.entry.modRevision ?? 0, (await kv.list(kindPrefix(info))).revision), problems: [] };
  }
  const list = await kv.list(kindPrefix(info, namespace));
  const items: StoredResource[] = [];
  const problems: string[] = [];
  for (const entry of list.entries) {
    try {
      if (info.kind === 'BlockAffinity') {
        const affinity = blockAffinityFromKv(entry.key, entry.value);
        const object: JsonObject = {
          ...affinity,
          metadata: { name: affinity.metadata.name, resourceVersion: String(entry.modRevision) },
          spec: { ...affinity.spec, deleted: affinity.spec.deleted ?? 'false' },
        };
        items.push({ key: entry.key, entry, object });
        continue;
      }
      const parsed = parseResourceKey(entry.key);
      if (!parsed || parsed.info !== info) continue; // e.g. a deeper key of another shape
      const item = stored(entry);
      // Another kind stored under this kind's prefix (a Node at ippools/NAME): not one of these,
      // skipped and said as podway run's model skips it (kv-datastore.ts), not listed as an
      // IPPool with an empty CIDR.
      const kind = item.object.kind;
      if (typeof kind === 'string' && kind !== info.kind) {
        problems.push(`${entry.key}: kind: ${kind} stored under ${info.plural}/`);
        continue;
      }
      items.push(item);
    } catch (e) {
      problems.push(`${entry.key}: ${(e as Error).message}`);
    }
  }
  return { items, revision: list.revision, problems };
}

/**
 * Calico refuses a new pool that overlaps another, and a change of an existing pool's CIDR or
 * block size (the pool's blocks in IPAM are cut to the old size: a new size would leave them
 * misread; libcalico-go refuses it too). As libcalico-go's ipPools.validateAndSetDefaults, the
 * overlap check is for a create only (`old == nil`): a replace keeps the CIDR, so it brings no new
 * overlap, and pools that overlap already (two creates that raced, another writer) can still be
 * changed, disabled and deleted.
 */
async function checkPool(kv: KvStore, obj: JsonObject, id: Identity, existing: JsonObject | null): Promise<void> {
  const cidrText = canonicalPoolCidr(String((obj.spec as JsonObject).cidr));
  // the same network in another spelling is no change (libcalico-go's cidrChangeOK)
  if (existing && isMapping(existing.spec) && canonicalPoolCidr(String(existing.spec.cidr)) !== cidrText) {
    throw new ResourceError('invalid', `${describeIdentity(id)}: spec.cidr cannot be changed (${existing.spec.cidr} -> ${cidrText}); create a new pool instead`);
  }
  if (existing && isMapping(existing.spec)) {
    const defaultSize = cidrText.includes(':') ? 122 : 26;
    const was = existing.spec.blockSize ?? defaultSize;
    const now = (obj.spec as JsonObject).blockSize ?? defaultSize;
    if (was !== now) {
      throw new ResourceError('invalid', `${describeIdentity(id)}: spec.blockSize cannot be changed (${was} -> ${now}); create a new pool instead`);
    }
  }
  const problem = ipv6CidrProblem(cidrText);
  if (problem) throw new ResourceError('invalid', `${describeIdentity(id)}: spec.cidr: ${problem}`);
  const cidr = parseNet(cidrText);
  if (!cidr) return;
  if (existing && isMapping(existing.spec) && canonicalPoolCidr(String(existing.spec.cidr)) === cidrText) return;
  const pools = await listResources(kv, id.info);
  for (const pool of pools.items) {
    const other = pool.object;
    if ((other.metadata as JsonObject).name === id.name || !isMapping(other.spec)) continue;
    const otherCidr = parseNet(String(other.spec.cidr));
    if (otherCidr && netsOverlap(cidr, otherCidr)) {
      throw new ResourceError('invalid', `${describeIdentity(id)}: spec.cidr ${cidrText} overlaps IPPool(${(other.metadata as JsonObject).name}) ${other.spec.cidr}`);
    }
  }
}

function validated(given: JsonObject, defaultNamespace?: string): Identity {
  let obj = given;
  if (obj.kind === 'WorkloadEndpoint') {
    // Calico's clients compute a WorkloadEndpoint's name from its spec, or check the one given.
    const named = assignOrValidateWepName(obj);
    if (!('object' in named)) throw new ResourceError('invalid', `${named.path}: ${named.message}`);
    obj = named.object;
  }
  const result = validateResource(obj);
  if (!result.ok) {
    const { path, message } = result.issues[0]!;
    throw new ResourceError('invalid', `${path ? `${path}: ` : ''}${message}`);
  }
  const id = identityOf(obj, defaultNamespace);
  if (!id.info.writable) {
    throw new ResourceError('invalid', `${id.info.kind} is IPAM state (/calico/ipam/v2/host/...), written by IPAM when it claims a block, not a resource to apply, create or replace`);
  }
  return id;
}

export interface WriteOptions {
  /** Namespace for namespaced resources that do not name one (default "default"). */
  readonly namespace?: string;
  /** Clock for creationTimestamp (tests). */
  readonly now?: () => Date;
}

export function requestedRevision(obj: JsonObject): number | undefined {
  const rv = isMapping(obj.metadata) ? obj.metadata.resourceVersion : undefined;
  if (rv === undefined || rv === null || rv === '') return undefined;
  const n = Number(rv);
  if (!Number.isInteger(n) || n < 1) throw new ResourceError('invalid', `metadata.resourceVersion: expected a revision number, got ${JSON.stringify(rv)}`);
  return n;
}

/** Creates the resource; ResourceError('exists') when it is already there. */
export async function createResource(kv: KvStore, obj: JsonObject, options: WriteOptions = {}): Promise<StoredResource> {
  const id = validated(obj, options.namespace);
  if (id.info.kind === 'IPAMConfiguration') return (await ipamConfiguration().writeIpamConfiguration(kv, 'create', obj, options.now)).resource;
  if (id.info.kind === 'IPPool') await checkPool(kv, obj, id, null);
  const key = resourceKey(id.info, id.name, id.namespace);
  const value = objectForStorage(obj, id, randomUUID(), calicoTimestamp((options.now ?? (() => new Date()))()));
  const entry = await kv.create(key, JSON.stringify(value));
  if (!entry) throw new ResourceError('exists', `resource already exists: ${describeIdentity(id)}`);
  return stored(entry);
}

/**
 * Replaces an existing resource, keeping its uid and creationTimestamp. With metadata.resourceVersion
 * the write succeeds only if the stored revision is still that one (ResourceError 'conflict');
 * without it the current revision is used. ResourceError('not-found') when absent.
 */
export async function replaceResource(kv: KvStore, obj: JsonObject, options: WriteOptions = {}): Promise<StoredResource> {
  const id = validated(obj, options.namespace);
  if (id.info.kind === 'IPAMConfiguration') return (await ipamConfiguration().writeIpamConfiguration(kv, 'replace', obj, options.now)).resource;
  const key = resourceKey(id.info, id.name, id.namespace);
  const wanted = requestedRevision(obj);
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const current = await kv.get(key);
    if (!current) throw new ResourceError('not-found', `resource does not exist: ${describeIdentity(id)}`);
    const written = await updateFrom(kv, obj, id, current, wanted);
    if (written) return written;
  }
  throw new ResourceError('conflict', `update conflict: ${describeIdentity(id)} kept changing (${CAS_ATTEMPTS} attempts)`);
}

async function updateFrom(kv: KvStore, obj: JsonObject, id: Identity, current: KvEntry, wanted: number | undefined): Promise<StoredResource | null> {
  if (wanted !== undefined && wanted !== current.modRevision) {
    throw new ResourceError('conflict', `update conflict: ${describeIdentity(id)} has resourceVersion ${current.modRevision}, not ${wanted} (someone changed it; get it again)`);
  }
  if (id.info.kind === 'IPPool') {
    let old: JsonObject;
    try {
      old = objectFromEntry(current);
    } catch {
      old = {}; // an unreadable stored value is replaced whole
    }
    await checkPool(kv, obj, id, old);
  }
  const entry = await kv.update(current.key, updatedValue(obj, id, current), current.modRevision);
  if (!entry && wanted !== undefined) {
    throw new ResourceError('conflict', `update conflict: ${describeIdentity(id)} changed while being replaced (resourceVersion ${wanted})`);
  }
  return entry ? stored(entry) : null;
}

export type ApplyAction = 'created' | 'replaced';

/** Creates the resource, or replaces it when it exists (calicoctl apply). */
export async function applyResource(kv: KvStore, obj: JsonObject, options: WriteOptions = {}): Promise<{ action: ApplyAction; resource: StoredResource }> {
  const id = validated(obj, options.namespace);
  if (id.info.kind === 'IPAMConfiguration') return ipamConfiguration().writeIpamConfiguration(kv, 'apply', obj, options.now);
  const key = resourceKey(id.info, id.name, id.namespace);
  const wanted = requestedRevision(obj);
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const current = await kv.get(key);
    if (!current) {
      try {
        return { action: 'created', resource: await createResource(kv, obj, options) };
      } catch (e) {
        if (e instanceof ResourceError && e.reason === 'exists') continue; // created meanwhile: update it
        throw e;
      }
    }
    const written = await updateFrom(kv, obj, id, current, wanted);
    if (written) return { action: 'replaced', resource: written };
  }
  throw new ResourceError('conflict', `update conflict: ${describeIdentity(id)} kept changing (${CAS_ATTEMPTS} attempts)`);
}

export type WriteVerb = 'apply' | 'create' | 'replace';

/**
 * The identity and key of a resource to write with others in one batch (planBatchWrite), or null
 * when it must be written alone: an IPPool (its checks read the other pools, which the writes
 * before it in a file may change). Throws the ResourceError its write would (validated()).
 */
export function batchTarget(verb: WriteVerb, obj: JsonObject, options: WriteOptions = {}): { id: Identity; key: string } | null {
  const id = validated(obj, options.namespace);
  // an IPPool reads the other pools; an IPAMConfiguration is two keys (ipam-configuration.ts)
  if (id.info.kind === 'IPPool' || id.info.kind === 'IPAMConfiguration') return null;
  // apply and replace read the revision asked for before anything else, as they do alone
  if (verb !== 'create') requestedRevision(obj);
  return { id, key: resourceKey(id.info, id.name, id.namespace) };
}

/**
 * What createResource, replaceResource or applyResource would write for `obj` (batchTarget's
 * `id` and `key`) when the key's entry is `current` (null: absent), as one write of a batch: the
 * same value (a new uid and creation time for a create, the stored ones kept for a replace) and
 * the same condition (absent, or still at current's revision), or the ResourceError that write
 * would fail with (exists, not found, a resourceVersion that is not current's).
 */
export function planBatchWrite(verb: WriteVerb, obj: JsonObject, id: Identity, key: string, current: KvEntry | null, options: WriteOptions = {}): KvBatchWrite {
  if (current === null || verb === 'create') {
    if (current !== null) throw new ResourceError('exists', `resource already exists: ${describeIdentity(id)}`);
    if (verb === 'replace') throw new ResourceError('not-found', `resource does not exist: ${describeIdentity(id)}`);
    const value = objectForStorage(obj, id, randomUUID(), calicoTimestamp((options.now ?? (() => new Date()))()));
    return { key, value: JSON.stringify(value), modRevision: 0 };
  }
  const wanted = requestedRevision(obj);
  if (wanted !== undefined && wanted !== current.modRevision) {
    throw new ResourceError('conflict', `update conflict: ${describeIdentity(id)} has resourceVersion ${current.modRevision}, not ${wanted} (someone changed it; get it again)`);
  }
  return { key, value: updatedValue(obj, id, current), modRevision: current.modRevision };
}

/** The stored value replacing `current` with `obj`: its uid and creation time kept. */
function updatedValue(obj: JsonObject, id: Identity, current: KvEntry): string {
  let old: JsonObject;
  try {
    old = objectFromEntry(current);
  } catch {
    old = {}; // an unreadable stored value is replaced whole
  }
  const oldMeta = isMapping(old.metadata) ? old.metadata : {};
  const uid = typeof oldMeta.uid === 'string' && oldMeta.uid ? oldMeta.uid : randomUUID();
  const created = typeof oldMeta.creationTimestamp === 'string' ? oldMeta.creationTimestamp : calicoTimestamp(new Date());
  return JSON.stringify(objectForStorage(obj, id, uid, created));
}

/** Deletes a resource (only at `resourceVersion` when given); returns what was deleted. */
export async function deleteResource(kv: KvStore, id: Identity, resourceVersion?: number): Promise<StoredResource> {
  if (!id.info.writable) throw new ResourceError('invalid', `${id.info.kind} is IPAM state; release it through IPAM, not delete`);
  if (id.info.kind === 'IPAMConfiguration') return ipamConfiguration().deleteIpamConfiguration(kv, id.name, resourceVersion);
  const key = resourceKey(id.info, id.name, id.namespace);
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const current = await kv.get(key);
    if (!current) throw new ResourceError('not-found', `resource does not exist: ${describeIdentity(id)}`);
    if (resourceVersion !== undefined && resourceVersion !== current.modRevision) {
      throw new ResourceError('conflict', `delete conflict: ${describeIdentity(id)} has resourceVersion ${current.modRevision}, not ${resourceVersion}`);
    }
    if (await kv.delete(key, current.modRevision)) return stored(current);
  }
  throw new ResourceError('conflict', `delete conflict: ${describeIdentity(id)} kept changing (${CAS_ATTEMPTS} attempts)`);
}

