// Deleting a Node or an IPPool with what hangs off it, as libcalico-go's clientv3 does in etcd mode
// (calicoctl delete): a bare key delete would leave the node's blocks, affinities, tunnel addresses
// and endpoints behind (every other node then warns "affine to unknown node" and keeps routing its
// blocks to it), or a deleted pool's affinities (its nodes keep blackholing its blocks).
//
// Node (nodes.Delete): its WorkloadEndpoints are deleted, their IPs and its tunnel addresses released
// (an endpoint's IP only while its allocation is still that endpoint's or this node's, judged and freed in one
// compare-and-swap on its block so a reassignment in between is never freed; tunnel ones
// only through the node's tunnel handles; a stale one held by someone else is reported, not freed),
// its block affinities released (RemoveIPAMHost: an empty block is
// deleted, one still holding addresses loses its affinity and keeps them until they are released),
// its BGPPeers and its per-node FelixConfiguration/BGPConfiguration (node.NAME) deleted, then the
// Node. Like calicoctl it does not ask whether the node is still running: a running `podway run`
// does not register it again (at start only, as calico/node): it goes not ready until restarted
// (the CLI warns when the node's control socket answers here).
//
// IPPool (ipPools.Delete): disabled first (nothing is assigned from it any more), then every block
// affinity inside its CIDR released (ReleasePoolAffinities: empty blocks deleted, blocks with
// allocations left affinity-less until those are released), then the pool deleted.
import type { KvStore } from './kv/kv';
import { kindInfo } from './calico-kinds';
import { Ipam } from './ipam';
import { BLOCK_PREFIX, HOST_AFFINITY_PREFIX, nodeAffinityPrefix, parseAffinityKey, parseBlockKey } from './ipam/keys';
import { AllocationBlock } from './ipam/block';
import { netContainsNet, parseIp, parseNet } from './ipam/net';
import { TUNNEL_KINDS, tunnelKind } from './tunnel-addrs';
import {
  deleteResource, describeIdentity, getResource, Identity, JsonObject, listResources, ResourceError, StoredResource,
} from './v3-store';

const WEP = kindInfo('WorkloadEndpoint')!;
const BGP_PEER = kindInfo('BGPPeer')!;
const FELIX_CONFIG = kindInfo('FelixConfiguration')!;
const BGP_CONFIG = kindInfo('BGPConfiguration')!;

/** What a node or pool delete did besides deleting the resource. */
export interface DeleteReport {
  readonly deleted: StoredResource;
  /** Addresses given back to IPAM (endpoints' and tunnel addresses). */
  readonly releasedIps: readonly string[];
  /** WorkloadEndpoints deleted, as namespace/name. */
  readonly endpoints: readonly string[];
  /** Block CIDRs whose affinity was released. */
  readonly blocks: readonly string[];
  /** Other resources deleted with it (BGPPeer(x), FelixConfiguration(node.x), ...). */
  readonly others: readonly string[];
  /** Addresses a WorkloadEndpoint or tunnel field named but someone else holds now, left alone, as "ip (held by ...)". */
  readonly skippedIps: readonly string[];
  /** An IPPool's delete: addresses its blocks still hold (pods' and others'), left allocated. */
  readonly inUseIps?: number;
}

const spec = (o: JsonObject): JsonObject => (o.spec ?? {}) as JsonObject;
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

function notFound(id: Identity): ResourceError {
  return new ResourceError('not-found', `resource does not exist: ${describeIdentity(id)}`);
}

function checkRevision(id: Identity, current: StoredResource, wanted: number | undefined): void {
  if (wanted !== undefined && wanted !== current.entry.modRevision) {
    throw new ResourceError('conflict', `delete conflict: ${describeIdentity(id)} has resourceVersion ${current.entry.modRevision}, not ${wanted}`);
  }
}

/** Deletes `id`, missing being fine (the clean-up of a node deletes what may never have existed). */
async function deleteIfPresent(kv: KvStore, id: Identity): Promise<boolean> {
  try {
    await deleteResource(kv, id);
    return true;
  } catch (e) {
    if (e instanceof ResourceError && e.reason === 'not-found') return false;
    throw e;
  }
}

/** The tunnel addresses a Node names (VXLAN both families, IPIP, WireGuard), as nodes.Delete collects them. */
function tunnelAddresses(node: JsonObject): string[] {
  const s = spec(node);
  const bgp = (s.bgp ?? {}) as JsonObject;
  const wg = (s.wireguard ?? {}) as JsonObject;
  return [s.ipv4VXLANTunnelAddr, s.ipv6VXLANTunnelAddr, bgp.ipv4IPIPTunnelAddr, wg.interfaceIPv4Address, wg.interfaceIPv6Address]
    .map(str).filter((a): a is string => a !== null).map((a) => a.split('/')[0]).filter((a) => parseIp(a) !== null);
}

/** Deletes a Node and releases what it held (see the top of this file). */
export async function deleteNode(kv: KvStore, name: string, resourceVersion?: number): Promise<DeleteReport> {
  const id: Identity = { info: kindInfo('Node')!, name };
  const node = await getResource(kv, id.info, name);
  if (!node) throw notFound(id);
  checkRevision(id, node, resourceVersion);
  const ipam = new Ipam(kv);

  const weps = (await listResources(kv, WEP)).items.filter((r) => spec(r.object).node === name);
  const endpoints: string[] = [];
  const released = new Set<string>();
  const skipped: string[] = [];
  const blocks: string[] = [];
  const others: string[] = [];
  try {
    // The endpoints go first: an error later then leaves addresses held that no endpoint names
    // (`ipam check` finds them), never an endpoint naming an address IPAM has given away.
    for (const w of weps) {
      const meta = (w.object.metadata ?? {}) as JsonObject;
      if (await deleteIfPresent(kv, { info: WEP, name: String(meta.name), namespace: String(meta.namespace) })) endpoints.push(`${meta.namespace}/${meta.name}`);
    }
    // An endpoint's address only while it is still the endpoint's: its handle ends in
    // ".<containerID>" (the CNI's "<network>.<containerID>") or its node attribute is this node. A
    // stale endpoint (after `ipam release --force`, or an earlier failed delete) may name an address
    // IPAM has since given to a pod on another node; freeing that would break the live pod.
    for (const w of weps) {
      const s = spec(w.object);
      const container = str(s.containerID);
      for (const n of (s.ipNetworks ?? []) as unknown[]) {
        const ip = typeof n === 'string' ? n.split('/')[0]! : '';
        if (!parseIp(ip) || released.has(ip)) continue;
        // The ownership check and the release are one compare-and-swap on the block: an address
        // released and reassigned after the check (a CNI ADD on another node) fails the write, is
        // judged again on the new read, and is left to its new holder.
        const r = await ipam.releaseIfHeld(ip, (attr) => {
          const ours = (container !== null && attr?.handleId?.endsWith(`.${container}`) === true) || attr?.secondary?.node === name;
          return ours ? null : 'held by someone else';
        });
        if (r.outcome === 'released') released.add(r.ip!);
        else if (r.outcome === 'changed') skipped.push(`${ip} (held by ${r.holder?.handleId ?? 'no handle'}${r.holder?.secondary?.node ? ` on node ${r.holder.secondary.node}` : ''})`);
      }
    }
    // Tunnel addresses only through the node's tunnel handles (that also frees one the Node no longer
    // names, after a failed reconcile); a tunnel field naming an address held otherwise is stale.
    for (const k of TUNNEL_KINDS) for (const a of (await ipam.releaseByHandle(tunnelKind(k).handle(name))).released) released.add(a);
    for (const a of tunnelAddresses(node.object)) {
      if (released.has(a)) continue;
      const attr = await ipam.allocationOf(a);
      if (attr) skipped.push(`${a} (tunnel field; held by ${attr.handleId ?? 'no handle'}${attr.secondary?.node ? ` on node ${attr.secondary.node}` : ''})`);
    }

    // RemoveIPAMHost: every affinity of the node, empty or not.
    for (const v of [4, 6] as const) {
      for (const e of (await kv.list(nodeAffinityPrefix(name, v))).entries) {
        const parsed = parseAffinityKey(e.key);
        if (!parsed) continue;
        const r = await ipam.releaseAffinity(name, parsed.cidr.text, { requireEmpty: false });
        if (r === 'released' || r === 'stale') blocks.push(parsed.cidr.text);
      }
    }
    // Anything else left under the node's IPAM host key (an affinity value that did not parse).
    for (const e of (await kv.list(`${HOST_AFFINITY_PREFIX}${name}/`)).entries) await kv.delete(e.key, e.modRevision);

    for (const p of (await listResources(kv, BGP_PEER)).items) {
      if (spec(p.object).node !== name) continue;
      const pid: Identity = { info: BGP_PEER, name: String(((p.object.metadata ?? {}) as JsonObject).name) };
      if (await deleteIfPresent(kv, pid)) others.push(describeIdentity(pid));
    }
    for (const info of [FELIX_CONFIG, BGP_CONFIG]) {
      const cid: Identity = { info, name: `node.${name}` };
      if (await deleteIfPresent(kv, cid)) others.push(describeIdentity(cid));
    }

    const deleted = await deleteResource(kv, id, resourceVersion ?? node.entry.modRevision).catch(async (e) => {
      // The running node rewrote its Node meanwhile (its status, say): delete what is there now.
      if (resourceVersion === undefined && e instanceof ResourceError && e.reason === 'conflict') return deleteResource(kv, id);
      throw e;
    });
    return { deleted, releasedIps: [...released], endpoints, blocks, others, skippedIps: skipped };
  } catch (e) {
    const done = [
      `deleted ${endpoints.length} WorkloadEndpoint(s)`, `released ${released.size} address(es)`,
      `released the affinity of ${blocks.length} block(s)`, ...(others.length > 0 ? [`deleted ${others.join(', ')}`] : []),
    ];
    throw partial(`delete ${describeIdentity(id)} stopped part way: ${done.join(', ')}; ${describeIdentity(id)} not deleted`, e);
  }
}

/**
 * The error of a delete that stopped after changing the datastore: what was done, then the cause,
 * so the CLI (which prints the error) says what state it left. A ResourceError keeps its reason.
 */
export function partial(done: string, cause: unknown): Error {
  const msg = `${done}: ${cause instanceof Error ? cause.message : String(cause)}`;
  return cause instanceof ResourceError ? new ResourceError(cause.reason, msg) : new Error(msg);
}

/**
 * Sets spec.disabled on the stored pool as it is, without validating it again: a pool that
 * overlaps another (two creates that raced) or holds a value podway refuses (another tool's
 * `ipipMode: always`) must still be deletable. libcalico-go's ipPools.Delete disables through its
 * Update, which runs no overlap check on an existing pool either.
 */
async function disablePool(kv: KvStore, id: Identity, pool: StoredResource, resourceVersion: number | undefined): Promise<StoredResource> {
  let current = pool;
  for (let attempt = 0; attempt < 20; attempt++) {
    if (spec(current.object).disabled === true) return current;
    let raw: JsonObject;
    try {
      raw = JSON.parse(current.entry.value) as JsonObject;
    } catch {
      return current; // not JSON: nothing to disable, the delete removes it
    }
    const value = JSON.stringify({ ...raw, spec: { ...spec(raw), disabled: true } });
    const written = await kv.update(current.key, value, current.entry.modRevision);
    if (written) return { key: current.key, entry: written, object: { ...current.object, spec: { ...spec(current.object), disabled: true } } };
    const again = await getResource(kv, id.info, id.name);
    if (!again) throw notFound(id);
    checkRevision(id, again, resourceVersion);
    current = again;
  }
  throw new ResourceError('conflict', `delete conflict: ${describeIdentity(id)} kept changing while being disabled`);
}

/** Disables an IPPool, releases the block affinities inside it, then deletes it (see the top). */
export async function deletePool(kv: KvStore, name: string, resourceVersion?: number): Promise<DeleteReport> {
  const id: Identity = { info: kindInfo('IPPool')!, name };
  let pool = await getResource(kv, id.info, name);
  if (!pool) throw notFound(id);
  checkRevision(id, pool, resourceVersion);
  pool = await disablePool(kv, id, pool, resourceVersion);
  const cidr = parseNet(String(spec(pool.object).cidr ?? ''));
  const blocks: string[] = [];
  try {
    if (cidr) {
      const ipam = new Ipam(kv);
      for (const e of (await kv.list(HOST_AFFINITY_PREFIX)).entries) {
        const parsed = parseAffinityKey(e.key);
        if (!parsed || parsed.cidr.version !== cidr.version || !netContainsNet(cidr, parsed.cidr)) continue;
        const r = await ipam.releaseAffinity(parsed.node, parsed.cidr.text, { requireEmpty: false });
        if (r === 'released' || r === 'stale') blocks.push(parsed.cidr.text);
      }
    }
    // The addresses its blocks still hold stay allocated (as libcalico-go leaves them): counted,
    // for the report to say what is left and what to do.
    let inUseIps = 0;
    if (cidr) {
      for (const e of (await kv.list(BLOCK_PREFIX)).entries) {
        const b = parseBlockKey(e.key);
        if (!b || b.version !== cidr.version || !netContainsNet(cidr, b)) continue;
        try { inUseIps += AllocationBlock.decode(e.value, b).numInUse(); } catch { /* a block that does not parse: ipam check reports it */ }
      }
    }
    const deleted = await deleteResource(kv, id, pool.entry.modRevision);
    return { deleted, releasedIps: [], endpoints: [], blocks, others: [], skippedIps: [], inUseIps };
  } catch (e) {
    // Disabled above: nothing is assigned from it until someone sets disabled: false again.
    throw partial(`delete ${describeIdentity(id)} stopped part way: released the affinity of ${blocks.length} block(s); ${describeIdentity(id)} left disabled`, e);
  }
}

/**
 * deleteResource for every kind, with a Node's and an IPPool's clean-up; the report is null for
 * the other kinds.
 */
export async function deleteWithCleanup(kv: KvStore, id: Identity, resourceVersion?: number): Promise<DeleteReport | null> {
  if (id.info.kind === 'Node') return deleteNode(kv, id.name, resourceVersion);
  if (id.info.kind === 'IPPool') return deletePool(kv, id.name, resourceVersion);
  await deleteResource(kv, id, resourceVersion);
  return null;
}
