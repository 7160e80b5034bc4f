// What the BGP plan of a node needs from a snapshot, small enough for `podway run`'s model cache
// (src/cli/model-cache.ts), so that a node restarted while its etcd is away runs its speaker on the
// settings it last had (as calico-node's BIRD keeps its last config): the BGPConfiguration
// `default` and the per-node ones (`node.NAME`: the nodes' listen ports), the BGPPeers that may
// apply to it, every Node's BGP part (mesh peers, peerSelector, route reflectors), the prefixes it
// exported and which learned routes it passed on.
// Fields added here since the model cache's format 3 (learnedExport, nodeConfigs) are optional:
// a cache without them (an older podway's, format 3 or 4) is read as before, its plan missing
// only what they add, until the datastore answers; no format change (model-cache.ts). Passwords are kept as the BGPPeer holds them:
// secret references (spec.password.secretKeyRef), never a secret's value; the value is read from
// `--bgp-secrets DIR` when the plan is made (and again when it changes there: watchSecrets), as
// with the datastore's settings.
import type { ClusterSnapshot } from '../snapshot';
import type { Node } from '../resources';
import type { BGPConfiguration, BGPFilter, BGPPeer } from '../calico-kinds';
import type { BgpExport, BgpLearnedExportPolicy } from './speaker';
import { computeExports, computeLearnedExportPolicy } from './exports';
import { NODE_BGP_CONFIG_PREFIX, splitPeerIp } from './peering';
import { parsePrefix } from './wire';

export interface BgpInputs {
  /** Every Node: name, labels and spec.bgp only. */
  readonly nodes: readonly { readonly name: string; readonly labels?: Readonly<Record<string, string>>; readonly bgp?: Readonly<Record<string, unknown>> }[];
  /** The BGPConfiguration `default`, if any (its spec). */
  readonly config: Readonly<Record<string, unknown>> | null;
  /** The BGPConfigurations `node.NAME` of the Nodes here (name and spec; absent when there are
   * none): this node's listen port and the ports the other nodes are dialled on. Absent in a
   * cache written by a podway before it (it read `default` only): every node's port is then
   * `default`'s until the datastore answers, as that podway had it. */
  readonly nodeConfigs?: readonly { readonly name: string; readonly spec: Readonly<Record<string, unknown>> }[];
  /** BGPPeers that are global, may select this node, or name it by its address (it peers back):
   * name and the spec fields the plan reads. */
  readonly peers: readonly { readonly name: string; readonly spec: Readonly<Record<string, unknown>> }[];
  /** The BGPFilters those BGPPeers name (name and spec). Absent when there are none, and in a
   * cache written by a podway before it (which applied none). */
  readonly filters?: readonly { readonly name: string; readonly spec: Readonly<Record<string, unknown>> }[];
  /** The prefixes the node exported (computeExports). */
  readonly exports: readonly BgpExport[];
  /** Which learned routes it passed on (computeLearnedExportPolicy). Absent in a cache written by
   * a podway before it: the plan then has no pools, and no learned route is passed on until the
   * datastore answers (never a route leak). */
  readonly learnedExport?: BgpLearnedExportPolicy;
}

/** Every BGPPeer field the plan reads (peering.ts: the sessions' settings, and the fields it
 * notes as not applied). */
const PEER_FIELDS = ['node', 'nodeSelector', 'peerIP', 'asNumber', 'peerSelector', 'keepOriginalNextHop', 'numAllowedLocalASNumbers',
  'keepaliveTime', 'maxRestartTime', 'sourceAddress', 'nextHopMode', 'reversePeering', 'filters', 'ttlSecurity', 'localASNumber'] as const;

/** `node`'s BGP inputs in `snap` (only what computeBgpPlan reads; secret references, no values). */
export function bgpInputsOf(snap: ClusterSnapshot, node: string): BgpInputs {
  const config = (snap.bgpConfigurations ?? []).find((c) => c.metadata.name === 'default');
  // Another node's node-specific BGPPeer matters here only when it may name this node, so this
  // node peers back (peering.ts's reverse peerings): its peerIP is this node's address, or it has
  // a peerSelector (judged by computeBgpPlan over the nodes' labels kept below).
  const self = snap.nodes.find((n) => n.metadata.name === node)?.spec.bgp;
  const own = new Set([self?.ipv4Address, self?.ipv6Address].map((a) => (a === undefined ? null : splitPeerIp(a.split('/')[0]!)?.address)).filter((a): a is string => !!a));
  const namesUs = (peerIP: string | undefined): boolean => peerIP !== undefined && own.has(splitPeerIp(peerIP)?.address ?? '');
  const peers = (snap.bgpPeers ?? []).filter((p) => !p.spec.node || p.spec.node === node || namesUs(p.spec.peerIP) || !!p.spec.peerSelector).map((p) => {
    const spec: Record<string, unknown> = {};
    for (const f of PEER_FIELDS) if (p.spec[f] !== undefined) spec[f] = p.spec[f];
    const ref = p.spec.password?.secretKeyRef;
    if (ref) spec.password = { secretKeyRef: { name: ref.name, key: ref.key } };
    return { name: p.metadata.name, spec };
  });
  // The BGPFilters the kept BGPPeers name.
  const named = new Set(peers.flatMap((p) => (Array.isArray(p.spec.filters) ? (p.spec.filters as unknown[]).map(String) : [])));
  const filters = (snap.bgpFilters ?? []).filter((f) => named.has(f.metadata.name)).map((f) => ({ name: f.metadata.name, spec: { ...f.spec } as Record<string, unknown> }));
  // The per-node BGPConfigurations of the Nodes here (of a node not here, none is read).
  const names = new Set(snap.nodes.map((n) => `${NODE_BGP_CONFIG_PREFIX}${n.metadata.name}`));
  const nodeConfigs = (snap.bgpConfigurations ?? []).filter((c) => names.has(c.metadata.name)).map((c) => ({ name: c.metadata.name, spec: { ...c.spec } }));
  return {
    nodes: snap.nodes.map((n) => ({ name: n.metadata.name, ...(n.metadata.labels ? { labels: n.metadata.labels } : {}), ...(n.spec.bgp ? { bgp: { ...n.spec.bgp } } : {}) })),
    config: config ? { ...config.spec } : null,
    ...(nodeConfigs.length ? { nodeConfigs } : {}),
    peers,
    ...(filters.length ? { filters } : {}),
    exports: computeExports(snap, node),
    learnedExport: computeLearnedExportPolicy(snap, node),
  };
}

/**
 * The inputs checked as read from a file: the shape computeBgpPlan relies on, or an Error naming
 * the field (`bgp.nodes[3].name`).
 */
export function checkBgpInputs(v: unknown): BgpInputs {
  const fail = (what: string): never => { throw new Error(`the BGP settings are malformed (bgp.${what})`); };
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObj(v)) fail('not an object');
  const o = v as Record<string, unknown>;
  if (!Array.isArray(o.nodes)) fail('nodes');
  (o.nodes as unknown[]).forEach((n, i) => {
    if (!isObj(n) || typeof n.name !== 'string') fail(`nodes[${i}].name`);
    const node = n as Record<string, unknown>;
    if (node.labels !== undefined && !isObj(node.labels)) fail(`nodes[${i}].labels`);
    if (node.bgp !== undefined && !isObj(node.bgp)) fail(`nodes[${i}].bgp`);
  });
  if (o.config !== null && !isObj(o.config)) fail('config');
  if (o.nodeConfigs !== undefined) {
    if (!Array.isArray(o.nodeConfigs)) fail('nodeConfigs');
    (o.nodeConfigs as unknown[]).forEach((c, i) => {
      if (!isObj(c) || typeof c.name !== 'string' || !c.name.startsWith(NODE_BGP_CONFIG_PREFIX) || !isObj(c.spec)) fail(`nodeConfigs[${i}]`);
    });
  }
  if (!Array.isArray(o.peers)) fail('peers');
  (o.peers as unknown[]).forEach((p, i) => { if (!isObj(p) || typeof p.name !== 'string' || !isObj(p.spec)) fail(`peers[${i}]`); });
  if (o.filters !== undefined) {
    if (!Array.isArray(o.filters)) fail('filters');
    (o.filters as unknown[]).forEach((f, i) => { if (!isObj(f) || typeof f.name !== 'string' || !isObj(f.spec)) fail(`filters[${i}]`); });
  }
  if (!Array.isArray(o.exports)) fail('exports');
  (o.exports as unknown[]).forEach((e, i) => { if (!isObj(e) || typeof e.prefix !== 'string') fail(`exports[${i}].prefix`); });
  if (o.learnedExport !== undefined) {
    const cidrOk = (c: unknown): boolean => {
      try {
        return typeof c === 'string' && parsePrefix(c).text === c;
      } catch {
        return false;
      }
    };
    const le = o.learnedExport;
    if (!isObj(le) || !Array.isArray(le.pools)) fail('learnedExport.pools');
    const { pools, blocks } = le as { pools: unknown[]; blocks: unknown };
    pools.forEach((p, i) => { if (!isObj(p) || !cidrOk(p.cidr) || typeof p.exported !== 'boolean') fail(`learnedExport.pools[${i}]`); });
    if (!Array.isArray(blocks)) fail('learnedExport.blocks');
    (blocks as unknown[]).forEach((b, i) => { if (!cidrOk(b)) fail(`learnedExport.blocks[${i}]`); });
  }
  return v as BgpInputs;
}

/** A snapshot holding only the inputs (for computeBgpPlan, with the exports given as they are). */
export function snapshotOfBgpInputs(inputs: BgpInputs, source: string): ClusterSnapshot {
  const meta = { apiVersion: 'projectcalico.org/v3' as const };
  return {
    source,
    ipPools: [],
    blockAffinities: [],
    workloadEndpoints: [],
    warnings: [],
    nodes: inputs.nodes.map((n) => ({ ...meta, kind: 'Node', metadata: { name: n.name, ...(n.labels ? { labels: n.labels } : {}) }, spec: { ...(n.bgp ? { bgp: n.bgp } : {}) } }) as unknown as Node),
    bgpConfigurations: [
      ...(inputs.config ? [{ name: 'default', spec: inputs.config }] : []),
      ...(inputs.nodeConfigs ?? []),
    ].map((c) => ({ ...meta, kind: 'BGPConfiguration', metadata: { name: c.name }, spec: c.spec }) as unknown as BGPConfiguration),
    bgpPeers: inputs.peers.map((p) => ({ ...meta, kind: 'BGPPeer', metadata: { name: p.name }, spec: p.spec }) as unknown as BGPPeer),
    bgpFilters: (inputs.filters ?? []).map((f) => ({ ...meta, kind: 'BGPFilter', metadata: { name: f.name }, spec: f.spec }) as unknown as BGPFilter),
  };
}
