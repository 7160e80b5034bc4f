// Who uses the addresses IPAM holds: calicoctl ipam check's cross-check of the allocations in the
// blocks against the addresses WorkloadEndpoints (spec.ipNetworks) and Nodes (tunnel addresses)
// use. IPAM's own consistency (handles, affinities) is Ipam.check(); this file answers "is this
// allocation used by anyone, and is every used address allocated?".
//
// An allocation is in use when some WorkloadEndpoint lists its address or some Node names it as a
// tunnel address. Without an owner it is leaked — unless its "timestamp" attribute says it is
// younger than the grace period: a CNI ADD allocates before it writes the WorkloadEndpoint, so a
// fresh allocation without an endpoint is usually an ADD in progress, not a leak (Calico's
// kube-controllers wait 15 minutes for the same reason before they release one). An allocation
// with no readable timestamp cannot be dated and is judged at once, as calicoctl judges everything.
//
// Beyond calicoctl, the owner is compared with what the allocation says about itself: an address a
// workload uses that is held for another pod or container (its handle or pod attribute), or that is
// held as a node's tunnel address, is a problem, since releasing the other holder frees an address
// still in use. So is an address two owners use, and a WorkloadEndpoint on a node that no longer
// exists.
import type { KvStore } from '../kv/kv';
import { AllocationAttribute, AllocationBlock, inCooldown, sanitizeHandle } from './block';
import { BLOCK_PREFIX, HANDLE_PREFIX, IPPOOL_PREFIX, NODE_PREFIX, parseBlockKey, parseHandleKey, WORKLOADENDPOINT_PREFIX } from './keys';
import { formatIp, IpNet, netContains, parseIp } from './net';
import { decodePool } from './records';

/** Calico's leak grace period (kube-controllers' IPAM garbage collection waits this long). */
export const DEFAULT_LEAK_GRACE_MS = 15 * 60_000;

/** Calico's handle for the addresses a Windows node reserves in each of its blocks. */
export const WINDOWS_RESERVED_HANDLE = 'windows-reserved-ipam-handle';

/** Node fields that hold an address IPAM gave the node, and the allocation "type" Calico gives it. */
export const NODE_ADDRESS_FIELDS = [
  { path: ['ipv4VXLANTunnelAddr'], name: 'ipv4VXLANTunnelAddr', type: 'vxlanTunnelAddress' },
  { path: ['ipv6VXLANTunnelAddr'], name: 'ipv6VXLANTunnelAddr', type: 'vxlanV6TunnelAddress' },
  { path: ['bgp', 'ipv4IPIPTunnelAddr'], name: 'bgp.ipv4IPIPTunnelAddr', type: 'ipipTunnelAddress' },
  { path: ['wireguard', 'interfaceIPv4Address'], name: 'wireguard.interfaceIPv4Address', type: 'wireguardTunnelAddress' },
  { path: ['wireguard', 'interfaceIPv6Address'], name: 'wireguard.interfaceIPv6Address', type: 'wireguardV6TunnelAddress' },
] as const;
const TUNNEL_TYPES: ReadonlySet<string> = new Set(NODE_ADDRESS_FIELDS.map((f) => f.type));

/** Something that uses an address. */
export interface IpOwner {
  readonly kind: 'workload' | 'node' | 'reserved';
  /** As calicoctl names owners: "Workload(ns/name)", "Node(name)", "Reserved for Windows". */
  readonly name: string;
  /** The workload's node, or the node itself. */
  readonly node: string;
  /** Where the address is named: "ipNetworks", or the Node field. */
  readonly field: string;
  readonly namespace?: string;
  readonly pod?: string;
  readonly containerID?: string;
}

/**
 * 'cooldown': released (by podway or a Calico node) into IPAMConfiguration ipCooldownSeconds
 * (attribute releasedAt), not free yet and nobody's; not judged a leak, as calicoctl's ipam check
 * does not.
 */
export type AllocationState = 'in-use' | 'leaked' | 'recent' | 'cooldown';

/** One allocated address, with what the block says about it and who uses it. */
export interface AuditedAllocation {
  readonly ip: string;
  readonly block: string;
  readonly handle: string | null;
  /** The block's sequence number when this address was assigned (decimal text; null when the block has none). */
  readonly sequenceNumber: string | null;
  /** The allocation's "node" attribute, else the block's host. */
  readonly node: string;
  readonly pod?: string;
  readonly namespace?: string;
  readonly type?: string;
  readonly timestamp?: string;
  readonly attributes: Readonly<Record<string, string>>;
  /** Used by another node than the block's owner. */
  readonly borrowed: boolean;
  readonly inUse: boolean;
  readonly owners: readonly string[];
  readonly state: AllocationState;
  /** False when `node` names no Node (a deleted node: nothing will release this address). */
  readonly nodeExists: boolean;
  /** Age from the timestamp attribute, null when it has none that can be read. */
  readonly ageMs: number | null;
}

export type AuditProblemKind =
  | 'leaked' // allocated, nobody uses it, older than the grace period
  | 'not-allocated' // used by a workload or node, inside an active pool, not allocated
  | 'multiple-owners' // two workloads/nodes use one address
  | 'owner-mismatch' // used by one owner, held (handle/attributes) for another
  | 'endpoint-on-missing-node' // a WorkloadEndpoint whose spec.node names no Node
  | 'bad-owner'; // a WorkloadEndpoint or Node whose address cannot be read

export interface AuditProblem {
  readonly kind: AuditProblemKind;
  readonly message: string;
  readonly ip?: string;
  readonly owners?: readonly string[];
}

export interface IpamAudit {
  readonly allocations: AuditedAllocation[];
  readonly nodeIps: number;
  readonly workloadIps: number;
  /** Distinct addresses workloads and nodes use. */
  readonly inUseIps: number;
  /**
   * Handle keys no allocation refers to (calicoctl's "handles with no matching IPs"), with the
   * revision seen, so a later delete can be made conditional on nobody having used them since.
   */
  readonly leakedHandles: { readonly id: string; readonly key: string; readonly modRevision: number }[];
  /** Used addresses in no enabled pool: not IPAM's (host-local, static), reported, not problems. */
  readonly outsidePools: { readonly ip: string; readonly owners: readonly string[] }[];
  readonly problems: AuditProblem[];
  readonly gracePeriodMs: number;
}

export interface AuditOptions {
  readonly now?: Date;
  readonly gracePeriodMs?: number;
}

/** An address in canonical text (strips a /len), or null. */
function normaliseIp(text: string): string | null {
  const slash = text.indexOf('/');
  const p = parseIp(slash < 0 ? text : text.slice(0, slash));
  return p ? formatIp(p.version, p.value) : null;
}

/** Milliseconds since the epoch of an allocation timestamp: RFC 3339 (podway's CNI) or Go's Time.String() (Calico's). */
export function parseAllocationTimestamp(text: string): number | null {
  // "2024-05-01 10:20:30.123456789 +0000 UTC m=+1.5"
  const go = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d+))? ([+-])(\d\d)(\d\d)\b/.exec(text);
  if (go) {
    const frac = (go[3] ?? '').slice(0, 3).padEnd(3, '0');
    const t = Date.parse(`${go[1]}T${go[2]}.${frac}${go[4]}${go[5]}:${go[6]}`);
    return Number.isNaN(t) ? null : t;
  }
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(text)) return null;
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}

/** Go-style durations as the CLI takes them: "15m", "1h30m", "90s", "0". */
export function parseDuration(text: string, flag = '--grace-period'): number {
  if (text === '0') return 0;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) { total += Number(m[1]) * unit[m[2]!]!; at = re.lastIndex; }
  if (text === '' || at !== text.length) throw new Error(`${flag}: invalid duration ${JSON.stringify(text)}: use e.g. 15m, 1h30m, 90s or 0`);
  return total;
}

/** "15m0s"-like text of a duration, for messages. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

interface OwnerIndex {
  readonly byIp: Map<string, IpOwner[]>;
  readonly nodes: Set<string>;
  readonly nodeIps: number;
  readonly workloadIps: number;
  readonly problems: AuditProblem[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Every address Nodes and WorkloadEndpoints use, read from their v3 keys. */
export async function readOwners(kv: KvStore): Promise<OwnerIndex> {
  const byIp = new Map<string, IpOwner[]>();
  const nodes = new Set<string>();
  const problems: AuditProblem[] = [];
  let nodeIps = 0;
  let workloadIps = 0;
  const add = (ip: string, owner: IpOwner) => byIp.set(ip, [...(byIp.get(ip) ?? []), owner]);
  const parse = (key: string, value: string): Json | null => {
    try {
      const v = JSON.parse(value) as unknown;
      if (isObject(v)) return v;
    } catch { /* reported below */ }
    problems.push({ kind: 'bad-owner', message: `${key} is not a JSON object; the addresses it uses cannot be checked` });
    return null;
  };

  for (const e of (await kv.list(NODE_PREFIX)).entries) {
    const name = e.key.slice(NODE_PREFIX.length);
    if (name === '' || name.includes('/')) continue;
    nodes.add(name);
    const spec = parse(e.key, e.value)?.spec;
    if (!isObject(spec)) continue;
    for (const f of NODE_ADDRESS_FIELDS) {
      let v: unknown = spec;
      for (const p of f.path) v = isObject(v) ? v[p] : undefined;
      const text = str(v);
      if (text === undefined) continue;
      const ip = normaliseIp(text);
      if (!ip) { problems.push({ kind: 'bad-owner', message: `Node(${name}) spec.${f.name} ${JSON.stringify(text)} is not an address` }); continue; }
      add(ip, { kind: 'node', name: `Node(${name})`, node: name, field: f.name });
      nodeIps++;
    }
  }

  for (const e of (await kv.list(WORKLOADENDPOINT_PREFIX)).entries) {
    const parts = e.key.slice(WORKLOADENDPOINT_PREFIX.length).split('/');
    if (parts.length !== 2 || !parts[0] || !parts[1]) continue;
    const [namespace, wepName] = parts as [string, string];
    const spec = parse(e.key, e.value)?.spec;
    if (!isObject(spec)) continue;
    const name = `Workload(${namespace}/${wepName})`;
    const node = str(spec.node) ?? '';
    const nets = Array.isArray(spec.ipNetworks) ? spec.ipNetworks : [];
    for (const n of nets) {
      const ip = typeof n === 'string' ? normaliseIp(n) : null;
      if (!ip) { problems.push({ kind: 'bad-owner', message: `${name} spec.ipNetworks holds ${JSON.stringify(n)}, which is not an address` }); continue; }
      add(ip, { kind: 'workload', name, node, field: 'ipNetworks', namespace, pod: str(spec.pod), containerID: str(spec.containerID) });
      workloadIps++;
    }
  }
  for (const owners of byIp.values()) {
    for (const o of owners) {
      if (o.kind === 'workload' && !nodes.has(o.node)) {
        problems.push({ kind: 'endpoint-on-missing-node', message: `${o.name} is on node ${JSON.stringify(o.node)}, which does not exist (a deleted node's endpoint: the address stays held while it is listed)`, owners: [o.name] });
      }
    }
  }
  return { byIp, nodes, nodeIps, workloadIps, problems: dedupe(problems) };
}

function dedupe(problems: AuditProblem[]): AuditProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => (seen.has(p.message) ? false : (seen.add(p.message), true)));
}

/**
 * Why an owner does not match what the allocation says of itself (null when it matches, or when
 * one side does not say): another pod or container holds it, or it is held as something else.
 */
export function ownerMismatch(owner: IpOwner, attr: AllocationAttribute | null): string | null {
  const sec = attr?.secondary ?? {};
  const handle = attr?.handleId ? sanitizeHandle(attr.handleId) : null;
  const type = sec.type;
  if (owner.kind === 'node') {
    const want = NODE_ADDRESS_FIELDS.find((f) => f.name === owner.field)?.type;
    if (sec.pod !== undefined) return `held for pod ${sec.namespace ?? ''}/${sec.pod}`;
    if (type !== undefined && want !== undefined && type !== want) return `held as ${type}, used as ${owner.field}`;
    if (sec.node !== undefined && sec.node !== owner.node) return `held for node ${sec.node}`;
    return null;
  }
  if (owner.kind !== 'workload') return null;
  if (type !== undefined && TUNNEL_TYPES.has(type)) return `held as ${type} of node ${sec.node ?? '?'}`;
  if (sec.pod !== undefined && owner.pod !== undefined && (sec.pod !== owner.pod || (sec.namespace ?? owner.namespace) !== owner.namespace)) {
    return `held for pod ${sec.namespace ?? ''}/${sec.pod}`;
  }
  // Handles are "<network>.<containerID>": another container's handle frees this address on its DEL.
  if (handle !== null && owner.containerID !== undefined && handle.includes('.') && !handle.endsWith(`.${owner.containerID}`)) {
    return `held by handle ${handle}, not this endpoint's container ${owner.containerID}`;
  }
  return null;
}

/** Every allocated address of every block, classified; and every used address IPAM does not hold. */
export async function auditIpam(kv: KvStore, options: AuditOptions = {}): Promise<IpamAudit> {
  const now = (options.now ?? new Date()).getTime();
  const grace = options.gracePeriodMs ?? DEFAULT_LEAK_GRACE_MS;
  const owners = await readOwners(kv);
  const pools = (await kv.list(IPPOOL_PREFIX)).entries.flatMap((e) => {
    try { return [decodePool(e.value, e.key)]; } catch { return []; }
  });
  const active: IpNet[] = pools.filter((p) => !p.disabled).map((p) => p.cidr);
  const problems: AuditProblem[] = [...owners.problems];
  const allocations: AuditedAllocation[] = [];
  const allocated = new Set<string>();
  // Handles are listed before the blocks: a handle is incremented before its block is written, so
  // one listed here with no address in the blocks read after it really had none at its revision.
  const handleEntries = (await kv.list(HANDLE_PREFIX)).entries;

  for (const e of (await kv.list(BLOCK_PREFIX)).entries) {
    const cidr = parseBlockKey(e.key);
    if (!cidr) continue;
    let block: AllocationBlock;
    try { block = AllocationBlock.decode(e.value, cidr); } catch { continue; } // Ipam.check() reports it
    const host = block.host();
    block.allocations.forEach((a, o) => {
      if (a === null) return;
      const ip = block.ordinalToIp(o);
      allocated.add(ip);
      const attr = block.attributeOf(o);
      const sec = attr?.secondary ?? {};
      const handle = attr?.handleId ? sanitizeHandle(attr.handleId) : null;
      const users = [...(owners.byIp.get(ip) ?? [])];
      if (handle === WINDOWS_RESERVED_HANDLE) users.push({ kind: 'reserved', name: 'Reserved for Windows', node: host, field: '' });
      const node = sec.node ?? host;
      const stamp = sec.timestamp !== undefined ? parseAllocationTimestamp(sec.timestamp) : null;
      const ageMs = stamp === null ? null : now - stamp;
      const state: AllocationState = users.length > 0 ? 'in-use' : inCooldown(attr) ? 'cooldown' : ageMs !== null && ageMs < grace ? 'recent' : 'leaked';
      const seq = block.sequenceNumberForAllocation?.get(String(o));
      allocations.push({
        ip, block: cidr.text, handle, sequenceNumber: seq === undefined ? null : seq.toString(), node,
        ...(sec.pod !== undefined ? { pod: sec.pod } : {}), ...(sec.namespace !== undefined ? { namespace: sec.namespace } : {}),
        ...(sec.type !== undefined ? { type: sec.type } : {}), ...(sec.timestamp !== undefined ? { timestamp: sec.timestamp } : {}),
        attributes: { ...sec }, borrowed: node !== host, inUse: users.length > 0, owners: users.map((u) => u.name), state,
        nodeExists: node === '' || owners.nodes.has(node), ageMs,
      });
      const attrText = formatAttrs(attr);
      if (state === 'leaked') {
        const why = node !== '' && !owners.nodes.has(node) ? `; its node ${node} no longer exists` : '';
        problems.push({ kind: 'leaked', ip, message: `${ip} leaked: allocated, used by no workload or node${why}; attrs ${attrText}` });
      }
      for (const u of users) {
        const why = ownerMismatch(u, attr);
        if (why) problems.push({ kind: 'owner-mismatch', ip, owners: [u.name], message: `${ip} in use by ${u.name} but ${why} (releasing that holder frees an address in use); attrs ${attrText}` });
      }
    });
  }

  const outsidePools: { ip: string; owners: string[] }[] = [];
  for (const [ip, users] of owners.byIp) {
    const names = users.map((u) => u.name);
    if (users.length > 1) problems.push({ kind: 'multiple-owners', ip, owners: names, message: `${ip} has multiple owners: ${names.join(', ')}` });
    if (allocated.has(ip)) continue;
    const p = parseIp(ip)!;
    if (!active.some((c) => c.version === p.version && netContains(c, p.value))) { outsidePools.push({ ip, owners: names }); continue; }
    problems.push({ kind: 'not-allocated', ip, owners: names, message: `${ip} in use by ${names.join(', ')} and in an active IP pool but has no IPAM allocation (IPAM may hand it out again)` });
  }
  const usedHandles = new Set(allocations.map((a) => a.handle).filter((h): h is string => h !== null));
  const leakedHandles = handleEntries.flatMap((e) => {
    const id = parseHandleKey(e.key);
    return id !== null && !usedHandles.has(id) ? [{ id, key: e.key, modRevision: e.modRevision }] : [];
  });
  return {
    allocations, leakedHandles, nodeIps: owners.nodeIps, workloadIps: owners.workloadIps, inUseIps: owners.byIp.size,
    outsidePools, problems, gracePeriodMs: grace,
  };
}

/** Who uses one address (Nodes' tunnel addresses and WorkloadEndpoints). */
export async function ownersOf(kv: KvStore, ip: string): Promise<IpOwner[]> {
  const canonical = normaliseIp(ip);
  if (!canonical) throw new Error(`invalid IP address ${JSON.stringify(ip)}`);
  return (await readOwners(kv)).byIp.get(canonical) ?? [];
}

/** calicoctl's formatAttrs: "Main:<handle> Extra:k=v,..." (keys sorted). */
export function formatAttrs(attr: AllocationAttribute | null): string {
  if (!attr) return '<missing>';
  const kvs = (m: Readonly<Record<string, string>> | null) => Object.keys(m ?? {}).sort().map((k) => `${k}=${m![k]}`).join(',');
  let s = `Main:${attr.handleId ?? '<none>'} Extra:${kvs(attr.secondary)}`;
  if (attr.alternate && Object.keys(attr.alternate).length > 0) s += ` Alternate:${kvs(attr.alternate)}`;
  if (inCooldown(attr)) s += ` ReleasedAt:${attr.releasedAt}`;
  return s;
}
