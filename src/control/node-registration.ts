// What calico-node does at startup against the datastore, for podway run: register this node's
// Node resource (its address, VXLAN tunnel address and VTEP MAC), keeping whatever others set on
// it (labels, spec.bgp.asNumber, orchRefs...), and mark the datastore ready
// (ClusterInformation "default", spec.datastoreReady: true). Both are compare-and-swap loops on
// the key's modRevision, so they compose with calicoctl, IPAM and other nodes writing meanwhile.
import { randomBytes, randomUUID } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { formatIPv4, parseIPv4, parseIPv4WithPrefix, parseIPv6Cidr } from './ipv4';
import { isMacText, normalizeMac } from './mac';
import { KvEntry, KvStore } from './kv/kv';
import { CLUSTER_INFORMATION_KEY } from './kv/cluster-guid';
import { kindInfo, kindPrefix, resourceKey } from './calico-kinds';
import { canonicalIpv6 } from '../packet/ipv6';
import { CALICO_API_VERSION, validateNodeName } from './resource-names';
import { calicoTimestamp, JsonObject, objectForStorage } from './v3-store';

const CAS_ATTEMPTS = 20;

export interface NodeRegistration {
  readonly name: string;
  /** The node's address with its subnet, as Calico stores it: "10.0.0.1/24". Unset on an
   * IPv6-only node (calico-node's IP=none): no spec.bgp.ipv4Address is written (a stored one is
   * kept, as calico-node keeps it); it then needs ipv6Address. */
  readonly ipv4Address?: string;
  /** The VXLAN tunnel (VTEP) address, e.g. from IPAM handle vxlan-tunnel-addr-<node>. */
  readonly vxlanTunnelAddr?: string;
  /** The VTEP MAC; unset leaves Felix's derived MAC (see mac.ts deriveVtepMac). */
  readonly vtepMac?: string;
  /** The node's IPv6 address with its subnet (spec.bgp.ipv6Address): "fd00:99::1/64". */
  readonly ipv6Address?: string;
  /** The IPv6 VTEP address (spec.ipv6VXLANTunnelAddr), IPAM handle vxlan-v6-tunnel-addr-<node>. */
  readonly vxlanTunnelAddrV6?: string;
  /** The IPv6 VTEP MAC (spec.vxlanTunnelMACAddrV6). */
  readonly vtepMacV6?: string;
  /** Labels to set (merged over the labels already there). */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * Keep the stored spec.bgp.ipv4Address / ipv6Address when the Node has one (ipv4Address and
   * ipv6Address then only fill a missing one): a registration that took the Node's own address
   * must not write back an older copy of it over an address changed meanwhile (`podway run`'s
   * address monitor, calicoctl), as the compare-and-swap retry would otherwise do.
   * Per family ({ 4: true }): only the families whose address was taken from the Node (one given
   * on the command line is written as given).
   */
  readonly keepStoredAddresses?: boolean | { readonly 4?: boolean; readonly 6?: boolean };
}

/** Whether `reg` keeps the stored address of this family (keepStoredAddresses). */
function keepsStored(reg: NodeRegistration, family: 4 | 6): boolean {
  const k = reg.keepStoredAddresses;
  return k === true || (typeof k === 'object' && k[family] === true);
}

export type RegistrationAction = 'created' | 'updated' | 'unchanged';

export interface RegistrationResult {
  readonly action: RegistrationAction;
  readonly key: string;
  /** The entry as it is now (its modRevision is the Node's resourceVersion). */
  readonly entry: KvEntry;
  /**
   * The stored Node's addresses this registration replaced by another address (a new prefix
   * length alone is not one): calico-node warns of these, as they are also what a second host
   * started under the same node name does. Empty when the Node was created.
   */
  readonly addressChanges: readonly AddressChange[];
}

export interface AddressChange {
  readonly family: 4 | 6;
  /** As they were and are stored ("10.0.0.1/24"). */
  readonly from: string;
  readonly to: string;
}

export interface NodeAddressConflict {
  readonly family: 4 | 6;
  /** The address both would have, without its prefix. */
  readonly address: string;
  /** The other Node already registered with it. */
  readonly node: string;
}

/**
 * Registering would give this Node an address another Node already has. calico-node refuses to
 * start then (checkConflictingNodes: "Calico node 'x' is already using the IPv4 address"): every
 * node would send both Nodes' pod traffic to one host. Nothing was written.
 */
export class NodeAddressConflictError extends Error {
  constructor(readonly node: string, readonly conflicts: readonly NodeAddressConflict[]) {
    super(`node ${node}: ${conflicts.map((c) => `Node ${c.node} is already using the IPv${c.family} address ${c.address}`).join('; ')}; `
      + `two Nodes on one address take each other's pod traffic, so ${node} is not registered with it`);
    this.name = 'NodeAddressConflictError';
  }
}

/** A stored resource value as an object; a value that is not one is an error naming `where`. */
function storedObject(value: string, where: string): JsonObject {
  try {
    const parsed = JSON.parse(value) as unknown;
    if (!isMapping(parsed)) throw new Error('not a JSON object');
    return parsed;
  } catch (e) {
    throw new Error(`${where} holds a value podway cannot read (${(e as Error).message}); fix or delete it`);
  }
}

function isMapping(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkRegistration(reg: NodeRegistration): void {
  validateNodeName(reg.name, 'node name');
  if (reg.ipv4Address === undefined && reg.ipv6Address === undefined) {
    throw new Error(`registerNode ${reg.name}: neither an IPv4 nor an IPv6 address (a node needs one of them)`);
  }
  if (reg.ipv4Address !== undefined && !parseIPv4WithPrefix(reg.ipv4Address)) throw new Error(`registerNode ${reg.name}: ipv4Address must be an address with its prefix length, like 10.0.0.1/24; got ${JSON.stringify(reg.ipv4Address)}`);
  if (reg.vxlanTunnelAddr !== undefined && parseIPv4(reg.vxlanTunnelAddr) === null) {
    throw new Error(`registerNode ${reg.name}: vxlanTunnelAddr must be an IPv4 address; got ${JSON.stringify(reg.vxlanTunnelAddr)}`);
  }
  if (reg.ipv6Address !== undefined && !parseIPv6Cidr(reg.ipv6Address)) {
    throw new Error(`registerNode ${reg.name}: ipv6Address must be an IPv6 address with its prefix length, like fd00:99::1/64; got ${JSON.stringify(reg.ipv6Address)}`);
  }
  if (reg.vxlanTunnelAddrV6 !== undefined && !isIPv6(reg.vxlanTunnelAddrV6)) {
    throw new Error(`registerNode ${reg.name}: vxlanTunnelAddrV6 must be an IPv6 address; got ${JSON.stringify(reg.vxlanTunnelAddrV6)}`);
  }
  if (reg.vtepMacV6 !== undefined && !isMacText(reg.vtepMacV6)) {
    throw new Error(`registerNode ${reg.name}: vtepMacV6 must be a MAC like 66:0a:1b:2c:3d:4e; got ${JSON.stringify(reg.vtepMacV6)}`);
  }
  if (reg.vtepMac !== undefined && !isMacText(reg.vtepMac)) {
    throw new Error(`registerNode ${reg.name}: vtepMac must be a MAC like 66:0a:1b:2c:3d:4e; got ${JSON.stringify(reg.vtepMac)}`);
  }
}

/** The address part of "addr/prefix" in one spelling per address (IPv6 canonical); null if unreadable. */
function addressKey(cidr: unknown, family: 4 | 6): string | null {
  if (typeof cidr !== 'string') return null;
  if (family === 4) {
    const addr = parseIPv4WithPrefix(cidr)?.addr ?? parseIPv4(cidr);
    return addr === null ? null : formatIPv4(addr);
  }
  const addr = cidr.split('/')[0]!;
  if (!isIPv6(addr)) return null;
  try {
    return canonicalIpv6(addr);
  } catch {
    return null;
  }
}

/** spec.bgp.ipv4Address / ipv6Address of a stored Node object (absent ones undefined). */
function bgpAddresses(node: JsonObject): { 4?: unknown; 6?: unknown } {
  const spec = isMapping(node.spec) ? node.spec : {};
  const bgp = isMapping(spec.bgp) ? spec.bgp : {};
  return { 4: bgp.ipv4Address, 6: bgp.ipv6Address };
}

/**
 * Other Nodes that already have one of `addresses` (checked as calico-node's
 * checkConflictingNodes does: the address, not its prefix; IPv4 and IPv6). A Node whose value
 * cannot be read is skipped: the model thread reports it.
 */
export async function nodeAddressConflicts(kv: KvStore, name: string, addresses: { 4?: string; 6?: string }): Promise<NodeAddressConflict[]> {
  const info = kindInfo('Node')!;
  const prefix = kindPrefix(info);
  const want = ([4, 6] as const).map((f) => ({ family: f, key: addressKey(addresses[f], f) })).filter((w) => w.key !== null);
  if (want.length === 0) return [];
  const conflicts: NodeAddressConflict[] = [];
  for (const e of (await kv.list(prefix)).entries) {
    const other = e.key.slice(prefix.length);
    if (other === name || other.includes('/')) continue;
    let theirs: { 4?: unknown; 6?: unknown };
    try {
      theirs = bgpAddresses(storedObject(e.value, e.key));
    } catch {
      continue;
    }
    for (const w of want) {
      if (addressKey(theirs[w.family], w.family) === w.key) conflicts.push({ family: w.family, address: w.key!, node: other });
    }
  }
  return conflicts;
}

/** The Node object with this node's fields set over `existing` (whose other fields are kept). */
function mergedNode(existing: JsonObject, reg: NodeRegistration): JsonObject {
  const meta: JsonObject = { ...(isMapping(existing.metadata) ? existing.metadata : {}), name: reg.name };
  if (reg.labels && Object.keys(reg.labels).length > 0) {
    meta.labels = { ...(isMapping(meta.labels) ? meta.labels : {}), ...reg.labels };
  }
  const spec: JsonObject = { ...(isMapping(existing.spec) ? existing.spec : {}) };
  const bgp: JsonObject = { ...(isMapping(spec.bgp) ? spec.bgp : {}) };
  const stored = (k: 'ipv4Address' | 'ipv6Address') => keepsStored(reg, k === 'ipv4Address' ? 4 : 6) && typeof bgp[k] === 'string' && bgp[k] !== '';
  if (reg.ipv4Address !== undefined && !stored('ipv4Address')) bgp.ipv4Address = reg.ipv4Address;
  if (reg.ipv6Address !== undefined && !stored('ipv6Address')) bgp.ipv6Address = reg.ipv6Address;
  spec.bgp = bgp;
  if (reg.vxlanTunnelAddr !== undefined) spec.ipv4VXLANTunnelAddr = reg.vxlanTunnelAddr;
  if (reg.vtepMac !== undefined) spec.vxlanTunnelMACAddr = normalizeMac(reg.vtepMac);
  if (reg.vxlanTunnelAddrV6 !== undefined) spec.ipv6VXLANTunnelAddr = reg.vxlanTunnelAddrV6;
  if (reg.vtepMacV6 !== undefined) spec.vxlanTunnelMACAddrV6 = normalizeMac(reg.vtepMacV6);
  return { ...existing, kind: 'Node', apiVersion: CALICO_API_VERSION, metadata: meta, spec };
}

/**
 * Creates or updates (compare-and-swap) /calico/resources/v3/projectcalico.org/nodes/<name> with
 * this node's address, tunnel address and VTEP MAC, keeping the fields others set. Writes nothing
 * when the stored Node already says all of it. When the Node is new or its address changes, other
 * Nodes are checked first, as calico-node does at start: one already on the address is a
 * NodeAddressConflictError and nothing is written (an unchanged address is not checked again, so
 * a node restarting is never refused for a conflict someone else made).
 */
export async function registerNode(kv: KvStore, reg: NodeRegistration, now: () => Date = () => new Date()): Promise<RegistrationResult> {
  checkRegistration(reg);
  const info = kindInfo('Node')!;
  const key = resourceKey(info, reg.name);
  const id = { info, name: reg.name };
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const current = await kv.get(key);
    const existing = current ? storedObject(current.value, `registerNode ${reg.name}: ${key}`) : {};
    const stored = bgpAddresses(existing);
    // What will be written: keepStoredAddresses leaves a stored address as it is.
    const kept = (f: 4 | 6) => keepsStored(reg, f) && typeof stored[f] === 'string' && stored[f] !== '';
    const given = { 4: kept(4) ? (stored[4] as string) : reg.ipv4Address, 6: kept(6) ? (stored[6] as string) : reg.ipv6Address };
    // calico-node checks for conflicts when an address changed (a new Node's included).
    const changed = ([4, 6] as const).filter((f) => given[f] !== undefined && given[f] !== stored[f]);
    if (changed.length > 0) {
      const conflicts = await nodeAddressConflicts(kv, reg.name, Object.fromEntries(changed.map((f) => [f, given[f]])));
      if (conflicts.length > 0) throw new NodeAddressConflictError(reg.name, conflicts);
    }
    if (!current) {
      const value = objectForStorage(mergedNode({}, reg), id, randomUUID(), calicoTimestamp(now()));
      const entry = await kv.create(key, JSON.stringify(value));
      if (entry) return { action: 'created', key, entry, addressChanges: [] };
      continue; // created meanwhile (another podway, calicoctl): merge into theirs
    }
    const addressChanges: AddressChange[] = changed
      .filter((f) => typeof stored[f] === 'string' && addressKey(stored[f], f) !== addressKey(given[f], f))
      .map((f) => ({ family: f, from: stored[f] as string, to: given[f]! }));
    const oldMeta = isMapping(existing.metadata) ? existing.metadata : {};
    const uid = typeof oldMeta.uid === 'string' && oldMeta.uid ? oldMeta.uid : randomUUID();
    const created = typeof oldMeta.creationTimestamp === 'string' ? oldMeta.creationTimestamp : calicoTimestamp(now());
    const value = JSON.stringify(objectForStorage(mergedNode(existing, reg), id, uid, created));
    if (value === current.value) return { action: 'unchanged', key, entry: current, addressChanges: [] };
    const entry = await kv.update(key, value, current.modRevision);
    if (entry) return { action: 'updated', key, entry, addressChanges };
  }
  throw new Error(`registerNode ${reg.name}: ${key} kept changing under us (${CAS_ATTEMPTS} attempts)`);
}

/**
 * Changes fields of an existing Node's spec by compare-and-swap (`change` edits a copy of the spec;
 * fields set to undefined are removed, as Calico's omitempty drops an emptied one). Returns the
 * entry as it is now, or null when the Node does not exist.
 */
export async function updateNodeSpec(kv: KvStore, name: string, change: (spec: JsonObject) => void): Promise<KvEntry | null> {
  validateNodeName(name, 'node name');
  const info = kindInfo('Node')!;
  const key = resourceKey(info, name);
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const current = await kv.get(key);
    if (!current) return null;
    const existing = storedObject(current.value, `node ${name}: ${key}`);
    const spec: JsonObject = { ...(isMapping(existing.spec) ? existing.spec : {}) };
    change(spec);
    for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k];
    const meta = isMapping(existing.metadata) ? existing.metadata : {};
    const uid = typeof meta.uid === 'string' && meta.uid ? meta.uid : randomUUID();
    const created = typeof meta.creationTimestamp === 'string' ? meta.creationTimestamp : calicoTimestamp(new Date());
    const value = JSON.stringify(objectForStorage({ ...existing, spec }, { info, name }, uid, created));
    if (value === current.value) return current;
    const entry = await kv.update(key, value, current.modRevision);
    if (entry) return entry;
  }
  throw new Error(`node ${name}: ${key} kept changing under us (${CAS_ATTEMPTS} attempts)`);
}

export { CLUSTER_INFORMATION_KEY };

export interface DatastoreReadyOptions {
  /**
   * Calico's CLUSTER_TYPE (e.g. "k8s,bgp"): spec.clusterType when the ClusterInformation is
   * created, and merged into an existing one as libcalico-go's ensureClusterInformation merges it
   * (the comma-separated types not there yet appended in order).
   */
  readonly clusterType?: string;
  readonly now?: () => Date;
}

/**
 * Initialises ClusterInformation "default" as calico-node's EnsureInitialized does: created when
 * absent (a new clusterGUID of 32 hex digits, clusterType, datastoreReady true); else a missing
 * clusterGUID filled, clusterType merged and an absent datastoreReady set to true, by
 * compare-and-swap, its other fields kept. spec.calicoVersion is never written: podway is not a
 * Calico release, and calicoctl refuses to work (version mismatch) against a cluster whose
 * calicoVersion differs from its own; one calico-node wrote is left as it is.
 * A datastoreReady set to false (`calicoctl datastore migrate lock`) is left false, as Calico
 * leaves it: `locked` is true then, and the caller waits rather than unlock the datastore.
 * A clusterGUID once written is never changed: it names the datastore, and the etcd watch takes
 * another GUID after a reconnection for another store (kv/cluster-guid.ts, kv/etcd-kv.ts); nodes
 * racing to create or fill it end with the one that won the compare-and-swap.
 */
export async function markDatastoreReady(kv: KvStore, options: DatastoreReadyOptions = {}): Promise<{ action: RegistrationAction; entry: KvEntry; locked: boolean }> {
  const info = kindInfo('ClusterInformation')!;
  const id = { info, name: 'default' };
  const now = options.now ?? (() => new Date());
  const clusterType = (options.clusterType ?? '').replace(/,+$/, '');
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const current = await kv.get(CLUSTER_INFORMATION_KEY);
    if (!current) {
      const spec: JsonObject = { clusterGUID: randomBytes(16).toString('hex') };
      if (clusterType) spec.clusterType = clusterType;
      spec.datastoreReady = true;
      const obj = { kind: 'ClusterInformation', apiVersion: CALICO_API_VERSION, metadata: { name: 'default' }, spec };
      const entry = await kv.create(CLUSTER_INFORMATION_KEY, JSON.stringify(objectForStorage(obj, id, randomUUID(), calicoTimestamp(now()))));
      if (entry) return { action: 'created', entry, locked: false };
      continue;
    }
    const existing = storedObject(current.value, `markDatastoreReady: ${CLUSTER_INFORMATION_KEY}`);
    const spec: JsonObject = { ...(isMapping(existing.spec) ? existing.spec : {}) };
    let changed = false;
    if (typeof spec.clusterGUID !== 'string' || spec.clusterGUID === '') {
      spec.clusterGUID = randomBytes(16).toString('hex');
      changed = true;
    }
    if (spec.datastoreReady === undefined || spec.datastoreReady === null) {
      spec.datastoreReady = true;
      changed = true;
    }
    if (clusterType) {
      const have = typeof spec.clusterType === 'string' && spec.clusterType !== '' ? spec.clusterType.split(',') : [];
      const add = clusterType.split(',').filter((t) => !have.includes(t));
      if (add.length > 0) {
        spec.clusterType = [...have, ...add].join(',');
        changed = true;
      }
    }
    const locked = spec.datastoreReady === false;
    if (!changed) return { action: 'unchanged', entry: current, locked };
    const meta = isMapping(existing.metadata) ? existing.metadata : {};
    const uid = typeof meta.uid === 'string' && meta.uid ? meta.uid : randomUUID();
    const created = typeof meta.creationTimestamp === 'string' ? meta.creationTimestamp : calicoTimestamp(now());
    const value = objectForStorage({ ...existing, spec }, id, uid, created);
    const entry = await kv.update(CLUSTER_INFORMATION_KEY, JSON.stringify(value), current.modRevision);
    if (entry) return { action: 'updated', entry, locked };
  }
  throw new Error(`markDatastoreReady: ${CLUSTER_INFORMATION_KEY} kept changing under us (${CAS_ATTEMPTS} attempts)`);
}
