// The tunnel addresses of a node, reconciled as calico-node's allocateip does
// (node/pkg/allocateip: reconcileTunnelAddrs, ensureHostTunnelAddress, removeHostTunnelAddr):
// the VXLAN (VTEP) addresses for IPv4 (Node spec.ipv4VXLANTunnelAddr, IPAM handle
// vxlan-tunnel-addr-<node>) and IPv6 (spec.ipv6VXLANTunnelAddr, handle vxlan-v6-tunnel-addr-<node>),
// and the IPIP one (spec.bgp.ipv4IPIPTunnelAddr, handle ipip-tunnel-addr-<node>, attribute type
// ipipTunnelAddress; IPv4 only, as IPIP is), each on its own:
// - the pools that call for one: vxlanMode (ipipMode for IPIP) Always or CrossSubnet, of the
//   family, selecting the node, allowing tunnel addresses (allowedUses empty or holding
//   "Tunnel"), not being deleted;
// - none of them: the address is released (by handle; an address the handle does not hold is
//   released only when it is ours, i.e. without owner, or with our handle) and the field cleared;
// - some: an address of ours inside one of them is kept, also when that pool is disabled; one
//   outside them (its pool no longer VXLAN, say) is released and a new one assigned from the
//   enabled ones; a missing address is assigned from the enabled ones (none enabled: none).
// Where podway departs from allocateip: allocateip looks at enabled pools only, so disabling the
// pool releases the node's address (projectcalico/node#1057, kept as intended there). But a
// disabled pool only stops new assignments: its blocks and pods stay and are still routed (Felix
// and podway's route-calc route disabled pools' blocks), and other nodes reach this node's blocks
// in it only through its VTEP address. Releasing it would cut them off while the node looks fine,
// and `podway run` used to keep it live (its trigger counts disabled pools, as Felix does) and drop
// it only on a restart. Keeping it makes both agree and cuts no traffic; deleting the pool (or
// turning it to Never) still releases it. The IPIP address follows the same rules (it is what the
// node's own traffic to pods on other nodes leaves with, as from Calico's tunl0).
// The VTEP MAC fields are left alone, as Calico's allocateip leaves them.
import type { KvStore } from './kv/kv';
import { Ipam } from './ipam';
import { IPPOOL_PREFIX, nodeKey } from './ipam/keys';
import { decodeNodeLabels, decodePool } from './ipam/records';
import { netContains, parseIp, type IpNet } from './ipam/net';
import { updateNodeSpec } from './node-registration';
import { deriveVtepMac } from './mac';

export type TunnelVersion = 4 | 6;
/** One tunnel address of a node: the VXLAN ones of each family, and IPIP's (IPv4). */
export type TunnelKind = 'vxlan' | 'vxlan-v6' | 'ipip';

/** Everything about one kind of tunnel address, in one place (tunnelKind). */
export interface TunnelKindInfo {
  /** The address family (the tunnel runs over the node's address of the same family). */
  readonly version: TunnelVersion;
  /** The pool field that calls for this address. */
  readonly mode: 'vxlanMode' | 'ipipMode';
  /** The encapsulation, as messages name it ("no VXLAN pool of IPv6"). */
  readonly encap: 'VXLAN' | 'IPIP';
  /** The IPAM allocation attribute "type" Calico gives it (ipam.AttributeTypeVXLAN, AttributeTypeVXLANV6,
   * AttributeTypeIPIP). */
  readonly attr: string;
  /** How messages name it. */
  readonly label: string;
  /** Where the Node keeps it: the field under spec, and under spec.bgp for IPIP (as Calico). */
  readonly key: 'ipv4VXLANTunnelAddr' | 'ipv6VXLANTunnelAddr' | 'ipv4IPIPTunnelAddr';
  readonly underBgp: boolean;
  /** The VTEP MAC field a VXLAN address comes with (none for IPIP). */
  readonly macField: 'vxlanTunnelMACAddr' | 'vxlanTunnelMACAddrV6' | null;
  /** The IPAM handle of the node's address of this kind (Calico's `vxlan-tunnel-addr-<node>`, ...). */
  handle(node: string): string;
}

function makeKind(version: TunnelVersion, encap: 'VXLAN' | 'IPIP', key: TunnelKindInfo['key'], handlePrefix: string, attr: string, macField: TunnelKindInfo['macField']): TunnelKindInfo {
  const underBgp = encap === 'IPIP';
  return {
    version, mode: encap === 'VXLAN' ? 'vxlanMode' : 'ipipMode', encap, attr,
    label: encap === 'VXLAN' ? `IPv${version} VXLAN` : 'IPIP',
    key, underBgp, macField,
    handle: (n) => `${handlePrefix}${n}`,
  };
}

const KINDS: Readonly<Record<TunnelKind, TunnelKindInfo>> = {
  vxlan: makeKind(4, 'VXLAN', 'ipv4VXLANTunnelAddr', 'vxlan-tunnel-addr-', 'vxlanTunnelAddress', 'vxlanTunnelMACAddr'),
  'vxlan-v6': makeKind(6, 'VXLAN', 'ipv6VXLANTunnelAddr', 'vxlan-v6-tunnel-addr-', 'vxlanV6TunnelAddress', 'vxlanTunnelMACAddrV6'),
  ipip: makeKind(4, 'IPIP', 'ipv4IPIPTunnelAddr', 'ipip-tunnel-addr-', 'ipipTunnelAddress', null),
};

/** Every kind, in the order they are reconciled. */
export const TUNNEL_KINDS: readonly TunnelKind[] = ['vxlan', 'vxlan-v6', 'ipip'];

/** The one accessor of the table: a kind's family, pool field, IPAM handle and attribute, Node field. */
export function tunnelKind(kind: TunnelKind): TunnelKindInfo {
  return KINDS[kind];
}

export interface TunnelOutcome {
  /** The Node's address after the reconcile (null: none). */
  readonly addr: string | null;
  /** What changed: an address assigned (possibly replacing one), released, or nothing. */
  readonly action: 'kept' | 'assigned' | 'released' | 'none';
  /** Addresses given back to IPAM. */
  readonly released: readonly string[];
}

export interface TunnelReconcileOptions {
  /** Whether an IPv6 address may be assigned (podway gives one only to a node with an IPv6 address). */
  readonly assignV6: boolean;
  /** Whether an IPv4 address may be assigned (default true; false for a node registered without an
   * IPv4 address, IP=none: the IPv4 tunnel would have no underlay address to run over). */
  readonly assignV4?: boolean;
}

interface PoolJson { metadata?: { deletionTimestamp?: string }; spec?: { vxlanMode?: string; ipipMode?: string } }

/**
 * CIDRs of the pools that call for a tunnel address of `kind` on this node: `keep`, in which an
 * address of ours stays (disabled pools included), and `assign`, the enabled ones a new address
 * comes from.
 */
async function tunnelPoolCidrs(kv: KvStore, node: string, kind: TunnelKind): Promise<{ keep: IpNet[]; assign: IpNet[] }> {
  const { version, mode } = KINDS[kind];
  const nodeEntry = await kv.get(nodeKey(node));
  if (!nodeEntry) throw new Error(`node ${node} does not exist: register it first`);
  // The Node's labels and the pools are decoded (with the zod schemas, resources.ts: ~400 ms to
  // load on a busy node) only for pools whose stored vxlanMode / ipipMode calls for a tunnel
  // address: on a cluster without VXLAN or IPIP pools `podway run`'s registration loads no schemas (bench/README.md,
  // "Start-up time").
  let labels: ReturnType<typeof decodeNodeLabels> | undefined;
  const keep: IpNet[] = [];
  const assign: IpNet[] = [];
  for (const e of (await kv.list(IPPOOL_PREFIX)).entries) {
    let raw: PoolJson;
    try {
      raw = JSON.parse(e.value) as PoolJson;
    } catch {
      continue; // not JSON: decodePool refuses it too
    }
    if (raw?.metadata?.deletionTimestamp) continue;
    if (raw?.spec?.[mode] !== 'Always' && raw?.spec?.[mode] !== 'CrossSubnet') continue;
    // A pool that fails its schema (another tool's `ipipMode: always`) is skipped, not fatal: no
    // tunnel address comes from it (IPAM skips it too) and `podway run` warns about it.
    let pool: ReturnType<typeof decodePool>;
    try {
      pool = decodePool(e.value, e.key);
    } catch {
      continue;
    }
    if (pool.cidr.version !== version) continue;
    if (!pool.allowedUses.includes('Tunnel')) continue;
    // a stored selector that cannot be parsed: an address of ours there stays, none is taken there
    if (pool.selectorError !== undefined) {
      keep.push(pool.cidr);
      continue;
    }
    if (!pool.nodeSelector.matches(labels ??= decodeNodeLabels(nodeEntry.value, nodeEntry.key))) continue;
    keep.push(pool.cidr);
    if (!pool.disabled) assign.push(pool.cidr);
  }
  return { keep, assign };
}

function inside(addr: string, cidrs: readonly IpNet[]): boolean {
  const p = parseIp(addr);
  return p !== null && cidrs.some((c) => c.version === p.version && netContains(c, p.value));
}

/** The Node's address of `kind` (Calico keeps IPIP's under spec.bgp). */
function readField(spec: Record<string, unknown> | undefined, kind: TunnelKind): unknown {
  const { key, underBgp } = KINDS[kind];
  if (underBgp) {
    const bgp = spec?.bgp;
    return bgp !== null && typeof bgp === 'object' ? (bgp as Record<string, unknown>)[key] : undefined;
  }
  return spec?.[key];
}

async function currentAddr(kv: KvStore, node: string, kind: TunnelKind): Promise<string | null> {
  const e = await kv.get(nodeKey(node));
  const spec = e ? (JSON.parse(e.value) as { spec?: Record<string, unknown> }).spec : undefined;
  const v = readField(spec, kind);
  return typeof v === 'string' && v !== '' ? v : null;
}

/** removeHostTunnelAddr: release the handle's addresses, and the Node's address when it is ours. */
async function release(ipam: Ipam, node: string, kind: TunnelKind, addr: string | null): Promise<string[]> {
  const handle = KINDS[kind].handle(node);
  const r = await ipam.releaseByHandle(handle);
  if (r.found || addr === null) return r.released;
  // No such handle: the Node's address may predate handles (no owner at all) or have lost its
  // handle record (our handle in the block); anything else belongs to someone else now.
  // Judged and released in one compare-and-swap on the block: an address released and given to a
  // pod after a separate check would otherwise be freed under that pod.
  const freed = await ipam.releaseIfHeld(addr, (holder) =>
    holder && ((holder.handleId === null && !holder.secondary) || holder.handleId === handle) ? null : 'held by someone else');
  return freed.outcome === 'released' ? [freed.ip!] : [];
}

/** Writes one kind's field (null clears it; a VXLAN address also sets a missing VTEP MAC). The
 * IPIP address is spec.bgp.ipv4IPIPTunnelAddr, as calico-node writes it (spec.bgp made if absent,
 * the other bgp fields kept). */
async function writeField(kv: KvStore, node: string, kind: TunnelKind, write: string | null): Promise<void> {
  const { key, underBgp, macField, version } = KINDS[kind];
  const written = await updateNodeSpec(kv, node, (spec) => {
    if (underBgp) {
      const bgp = spec.bgp !== null && typeof spec.bgp === 'object' && !Array.isArray(spec.bgp) ? { ...(spec.bgp as Record<string, unknown>) } : {};
      if (write === null) delete bgp[key];
      else bgp[key] = write;
      if (write !== null || spec.bgp !== undefined) spec.bgp = bgp as typeof spec.bgp;
      return;
    }
    spec[key] = write ?? undefined;
    if (write !== null && macField !== null && typeof spec[macField] !== 'string') spec[macField] = deriveVtepMac(node, version);
  });
  if (!written) throw new Error(`node ${node} disappeared while its tunnel addresses were reconciled`);
}

/**
 * One family: returns the outcome and the field value to write (undefined: leave the Node as is).
 * When it fails after giving the Node's address back to IPAM, it clears the Node's field before
 * rethrowing: IPAM may hand that address to a pod, and the Node must not keep naming it as a VTEP.
 */
async function reconcileOne(kv: KvStore, ipam: Ipam, node: string, kind: TunnelKind, mayAssign: boolean): Promise<{ outcome: TunnelOutcome; write?: string | null }> {
  const addr = await currentAddr(kv, node, kind);
  const state = { releasedNodeAddr: false };
  try {
    return await reconcileDecide(kv, ipam, node, kind, mayAssign, addr, state);
  } catch (err) {
    if (state.releasedNodeAddr) {
      // best effort: the original failure is the one to report; a Node that is gone needs no clearing
      await writeField(kv, node, kind, null).catch(() => undefined);
    }
    throw err;
  }
}

async function reconcileDecide(kv: KvStore, ipam: Ipam, node: string, kind: TunnelKind, mayAssign: boolean, addr: string | null, state: { releasedNodeAddr: boolean }): Promise<{ outcome: TunnelOutcome; write?: string | null }> {
  const { keep, assign } = await tunnelPoolCidrs(kv, node, kind);
  const { version, label, attr: type } = KINDS[kind];
  const handle = KINDS[kind].handle(node);
  if (keep.length === 0) {
    state.releasedNodeAddr = addr !== null; // set before the call: a release may fail half-way
    const released = await release(ipam, node, kind, addr);
    if (addr === null && released.length === 0) return { outcome: { addr: null, action: 'none', released } };
    return { outcome: { addr: null, action: 'released', released }, write: addr === null ? undefined : null };
  }
  if (!mayAssign) return { outcome: { addr, action: addr ? 'kept' : 'none', released: [] } };
  let released: string[] = [];
  if (addr !== null) {
    const holder = await ipam.allocationOf(addr);
    const ours = holder?.secondary?.type === type && holder.secondary?.node === node;
    if (ours && inside(addr, keep)) return { outcome: { addr, action: 'kept', released: [] } };
    if (ours || holder === null) {
      state.releasedNodeAddr = true;
      released = (await ipam.releaseByHandle(handle)).released; // wrong pool, or not assigned
    } else if (holder.handleId === null && !holder.secondary) {
      // an address from before handles: take it again with our handle, as Calico corrects it
      state.releasedNodeAddr = true;
      // Only while still that handle-less allocation (one CAS with the check, as in release()).
      const r = await ipam.releaseIfHeld(addr, (h) => (h && h.handleId === null && !h.secondary ? null : 'held by someone else'));
      try {
        if (r.outcome === 'released' && inside(addr, keep)) {
          await ipam.assignIp({ ip: addr, handleId: handle, attrs: { node, type, timestamp: new Date().toISOString() }, node, use: 'Tunnel' });
          return { outcome: { addr, action: 'kept', released: [] } };
        }
      } catch {
        // taken meanwhile: a new one below
      }
    }
    // else: someone else's address now (a workload's): leave it, assign our own
  } else {
    // defensively: an allocation the Node lost track of
    released = (await ipam.releaseByHandle(handle)).released;
  }
  if (assign.length === 0) {
    // Only disabled pools of the kind: nothing to assign from. The node has no tunnel address until one
    // is enabled (`podway status` says so while the node has blocks that need one).
    return { outcome: { addr: null, action: addr !== null || released.length > 0 ? 'released' : 'none', released }, write: addr === null ? undefined : null };
  }
  const r = await ipam.autoAssign({ node, count: 1, handleId: handle, attrs: { node, type, timestamp: new Date().toISOString() }, version, pools: assign.map((c) => c.text), use: 'Tunnel' });
  if (r.ips.length === 0) throw new Error(`node ${node}: no ${label} tunnel address: ${(r.errors ?? []).join('; ')}`);
  return { outcome: { addr: r.ips[0], action: 'assigned', released }, write: r.ips[0] };
}

/**
 * Reconciles the tunnel addresses of a registered node (IPv4 VXLAN, IPv6 VXLAN, then IPIP) and
 * writes each field that changed as soon as it is decided (an assigned VXLAN address also sets the
 * VTEP MAC Felix derives, when the Node has none). Idempotent: run at start and whenever pools or
 * the node change.
 */
export async function reconcileTunnelAddrs(kv: KvStore, node: string, opts: TunnelReconcileOptions): Promise<{ v4: TunnelOutcome; v6: TunnelOutcome; ipip: TunnelOutcome }> {
  // podway run, the caller, logs a stored pool it cannot read (its datastore skips it too); IPAM's
  // own stderr line would only repeat it outside the log.
  const ipam = new Ipam(kv, { warn: () => undefined });
  // each one is written as soon as it is decided: an IPv6 failure must not lose the IPv4 result
  const v4 = await reconcileOne(kv, ipam, node, 'vxlan', opts.assignV4 !== false);
  if (v4.write !== undefined) await writeField(kv, node, 'vxlan', v4.write);
  const v6 = await reconcileOne(kv, ipam, node, 'vxlan-v6', opts.assignV6);
  if (v6.write !== undefined) await writeField(kv, node, 'vxlan-v6', v6.write);
  // IPIP runs over IPv4: none for a node without an IPv4 address, as for the IPv4 VTEP
  const ipip = await reconcileOne(kv, ipam, node, 'ipip', opts.assignV4 !== false);
  if (ipip.write !== undefined) await writeField(kv, node, 'ipip', ipip.write);
  return { v4: v4.outcome, v6: v6.outcome, ipip: ipip.outcome };
}
