// Calico's BGP peering model, computed from the datastore the way calico-node's confd renders
// BIRD's configuration (confd/etc/calico/confd/templates/bird.cfg.template and its Go helpers):
//
// - AS: the Node's spec.bgp.asNumber, else BGPConfiguration `default` asNumber, else 64512.
// - Router ID and source address: the node's IPv4 address.
// - Node-to-node mesh (BGPConfiguration nodeToNodeMeshEnabled, default on): one session to every
//   other node that has an IPv4 address, named Mesh_<ip with '_'>. Only one side connects: the
//   node whose address is the smaller *string* (Calico compares them as text) is active, the other
//   passive, so a restart never races a second connection from the far side. Every node listens
//   on its listen port: BGPConfiguration `node.<its name>`'s listenPort, else `default`'s, else
//   179; sessions to another Calico node (mesh, peerSelector, reverse, a portless peerIP naming
//   it) dial that node's port.
// - BGPConfiguration `node.NAME` (confd's updateBGPConfigCache): of its fields calico-node reads
//   listenPort, logSeverityScreen and prefixAdvertisements (with its communities) for node NAME,
//   over `default`'s; every other field (asNumber, nodeToNodeMeshEnabled, bindMode, ...) only
//   from `default`. podway applies listenPort (and from `default` asNumber,
//   nodeToNodeMeshEnabled, bindMode); logSeverityScreen and prefixAdvertisements from neither.
// - Route reflectors: a node with spec.bgp.routeReflectorClusterID skips the mesh, and mesh nodes
//   do not mesh with it (its sessions come from BGPPeers). A reflector treats peers in the
//   session's AS (a peerIP BGPPeer's localASNumber, else the node's: confd's effective AS) outside
//   its cluster (confd: rr_cluster_id differs from ours) as `rr client`, with its cluster ID.
// - BGPPeers: `node` (that node only) or `nodeSelector` (nodes whose labels match) make a peer
//   "node specific"; neither makes it "global" (every node). `peerIP`[:port] + `asNumber` names
//   one peer; `peerSelector` names the Calico nodes it selects (their address and AS), and between
//   two Calico nodes the same string rule as the mesh picks the passive side.
// - Reverse peerings (confd's second pass over the BGPPeers): the nodes a BGPPeer names (its
//   peerSelector's, or the node whose address and AS are its peerIP and asNumber) peer back with
//   the nodes it is for (node, nodeSelector, or every node), node specific, after every other
//   session: so one BGPPeer from all nodes to the route reflectors peers both ways.
// - IPv6 (Calico's bird6.cfg.template, BIRD for IPv6 beside BIRD for IPv4): when this node has
//   spec.bgp.ipv6Address, the same mesh and BGPPeer rules run again over IPv6: a mesh session to
//   every other node that has an IPv6 address (Mesh_fd00__2), from our IPv6 address, passive by the
//   same string rule on the IPv6 texts; BGPPeers with an IPv6 peerIP ("fd00::1", "[fd00::1]:1179");
//   peerSelector nodes' IPv6 addresses too. IPv4 sessions carry IPv4 unicast only and IPv6 sessions
//   IPv6 unicast only (`families`), as the two BIRDs do.
// - Router ID (4 octets, even in MP-BGP): calico-node's CALICO_ROUTER_ID when set (`routerId`: an
//   IPv4-shaped ID, or `hash`: hashToIPv4 of the node name, confd's template function), else the
//   node's IPv4 address. An IPv6-only node (no IPv4 address) needs CALICO_ROUTER_ID; it then has
//   IPv6 sessions only. Without either there is no plan (confd renders no BIRD config then).
// - Our own address is never a peer; an address reached by two rules keeps the first (mesh, then
//   BGPPeers in datastore order) and the others are reported.
//
// Pure: the same snapshot gives the same plan, so `podway run --bgp` can compare plans by value.
import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { formatIPv4, parseIPv4, parseIPv4WithPrefix } from '../ipv4';
import { addressOctets, addressText } from './wire/prefix';
import type { Node } from '../resources';
import type { BGPConfiguration, BGPPeer } from '../calico-kinds';
import { goDurationSeconds } from '../go-duration';
import { asNumberFromString } from '../as-number';
import { compileFilter, unappliedBgpFilterFields, type BgpPeerFilter } from './filters';
import type { ClusterSnapshot } from '../snapshot';
import { Selector } from '../ipam/selector';
import type { BgpExport, BgpLearnedExportPolicy, BgpPeerConfig, BgpSpeakerOptions } from './speaker';
import { computeExports, computeLearnedExportPolicy } from './exports';

export const DEFAULT_AS_NUMBER = 64512;
/** Calico's BIRD graceful-restart time (bird.cfg.template `graceful restart time 120`). */
export const GRACEFUL_RESTART_SECONDS = 120;

/** The peer types `calicoctl node status` prints. */
export type PeerType = 'node-to-node mesh' | 'global' | 'node specific';

export interface CalicoPeer extends BgpPeerConfig {
  readonly type: PeerType;
  /** BIRD's protocol name in Calico's config: Mesh_10_0_0_2, Node_10_0_0_9, Global_10_0_0_1. */
  readonly name: string;
  /** What asked for the session: "mesh", or "BGPPeer <name>". */
  readonly source: string;
}

export interface BgpPlan {
  readonly node: string;
  readonly speaker: BgpSpeakerOptions;
  readonly peers: readonly CalicoPeer[];
  readonly exports: readonly BgpExport[];
  /** Which learned routes are passed on to peers (only those inside the IP pools). */
  readonly learnedExport: BgpLearnedExportPolicy;
  /** Things skipped and why (a bad selector, an unresolvable password, a duplicate peer), for logs. */
  readonly warnings: readonly string[];
}

export interface BgpPlanOptions {
  /**
   * The value of a BGPPeer password's secretKeyRef (Kubernetes secret `name`, key `key`); undefined
   * when unknown. Without it, a peer that wants a password is left out (never peered without one).
   */
  readonly resolveSecret?: (name: string, key: string) => string | undefined;
  /** The prefixes to export as given, instead of computed from the snapshot (the model cache's:
   * its snapshot holds no pools or blocks). */
  readonly exports?: readonly BgpExport[];
  /** The learned-route export policy as given (the model cache's), instead of from the snapshot. */
  readonly learnedExport?: BgpLearnedExportPolicy;
  /** calico-node's CALICO_ROUTER_ID (`podway run --router-id`): a dotted quad, or `hash`
   * (routerIdOf); unset: the node's IPv4 address. */
  readonly routerId?: string;
}

/**
 * The session settings a BGPPeer gives every session it makes (forward and reverse), as confd's
 * setPeerConfigFieldsFromV3Resource and getNextHopMode give BIRD: `keepaliveTime` (`keepalive
 * time`), `maxRestartTime` (`graceful restart time`, the restart time announced to the peer), both
 * rounded to seconds; `sourceAddress: None` (no `source address`: the session is not bound to the
 * node's address); `nextHopMode` (Self: `next hop self`; Keep: `next hop keep`; Auto: neither, and
 * `keepOriginalNextHop` ignored), else `keepOriginalNextHop` (`next hop keep` toward eBGP peers,
 * the only ones where it changes anything: over iBGP a learned next hop is kept anyway);
 * `ttlSecurity` (`ttl security on; multihop N`).
 * A cached plan input (cached-inputs.ts) is unchecked JSON: a value of the wrong shape is ignored.
 */
function bgpPeerSessionSettings(spec: BGPPeer['spec']): { settings: Partial<BgpPeerConfig>; unbound: boolean } {
  const settings: { -readonly [K in keyof BgpPeerConfig]?: BgpPeerConfig[K] } = {};
  const raw = spec as Record<string, unknown>;
  const keepalive = typeof raw.keepaliveTime === 'string' ? goDurationSeconds(raw.keepaliveTime) : null;
  if (keepalive !== null && keepalive > 0) settings.keepaliveSeconds = keepalive;
  const restart = typeof raw.maxRestartTime === 'string' ? goDurationSeconds(raw.maxRestartTime) : null;
  if (restart !== null) settings.gracefulRestartSeconds = restart;
  const mode = raw.nextHopMode;
  if (mode === 'Self') settings.nextHopSelf = true;
  else if (mode === 'Keep') settings.keepOriginalNextHop = true;
  else if (mode !== 'Auto' && spec.keepOriginalNextHop) settings.keepOriginalNextHop = true;
  // ttlSecurity N > 0: BIRD's `ttl security on; multihop N` (GTSM, RFC 5082), on every session
  // the BGPPeer makes (confd: peerIP sessions and nodeAsBGPPeers alike); 0 or unset: off.
  const ttl = raw.ttlSecurity;
  if (typeof ttl === 'number' && Number.isInteger(ttl) && ttl > 0 && ttl <= 255) settings.ttlSecurity = ttl;
  return { settings, unbound: raw.sourceAddress === 'None' };
}

/**
 * What of a BGPPeer podway does not apply as written (each with what calico-node's BIRD does),
 * for `podway apply`'s notes and `podway run`'s log; [] when it applies all of it. `filters`,
 * `ttlSecurity` and `localASNumber` are applied where confd applies them: `localASNumber` on a
 * peerIP BGPPeer's session only (confd's nodeAsBGPPeers, which makes the peerSelector sessions and
 * the reverse peerings, carries no LocalASNum).
 */
export function unappliedBgpPeerFields(spec: unknown): string[] {
  const raw = (spec ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  const local = localAsOf(raw.localASNumber);
  if (local !== undefined && typeof raw.peerSelector === 'string' && raw.peerSelector !== '') {
    out.push(`spec.localASNumber ${local} is not applied to the sessions a peerSelector makes (calico-node's confd applies it to peerIP sessions only): they use the node's AS`);
  }
  return out;
}

/** spec.localASNumber as a number (a string holding one, as Calico's numorstring); undefined when
 * unset, 0 or not an AS number (a cached plan input is unchecked JSON). */
function localAsOf(v: unknown): number | undefined {
  const n = typeof v === 'string' ? asNumberFromString(v.trim()) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 4294967295 ? n : undefined;
}

/** How CALICO_ROUTER_ID is named in errors (the setting and its flag). */
export const ROUTER_ID_SETTING = 'CALICO_ROUTER_ID (podway run --router-id)';

/**
 * confd's hashToIPv4 (calico's confd template functions): the first four bytes of SHA-256 of the
 * node name as a dotted quad, a first byte above 223 (multicast, reserved) lowered by 32.
 */
export function hashRouterId(nodeName: string): string {
  const b = createHash('sha256').update(nodeName, 'utf8').digest();
  return `${b[0]! > 223 ? b[0]! - 32 : b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/**
 * Checks a CALICO_ROUTER_ID value: `hash` or a non-zero dotted quad (BIRD's `router id` takes
 * no other form); returns it, or throws an Error naming `setting`.
 */
export function checkRouterIdSetting(value: string, setting = ROUTER_ID_SETTING): string {
  if (value === 'hash') return value;
  const n = parseIPv4(value);
  if (n === null || n === 0 || !/^\d+\.\d+\.\d+\.\d+$/.test(value)) throw new Error(`${setting} must be "hash" or a router ID in IPv4 form (a non-zero a.b.c.d), got ${JSON.stringify(value)}`);
  return formatIPv4(n);
}

/** The router ID of `nodeName`: the setting (hash or given), else its IPv4 address; null: none. */
export function routerIdOf(nodeName: string, setting: string | undefined, ipv4: string | null): string | null {
  if (setting === 'hash') return hashRouterId(nodeName);
  if (setting !== undefined && setting !== '') return checkRouterIdSetting(setting);
  return ipv4;
}

interface NodeBgp {
  readonly name: string;
  readonly ip: number | null;
  readonly ipText: string | null;
  /** spec.bgp.ipv6Address without its prefix length, canonical ("fd00::2"); null when unset or bad. */
  readonly ip6Text: string | null;
  readonly asNumber: number;
  readonly rrClusterId: string | null;
  readonly labels: Readonly<Record<string, string>>;
}

function nodeBgpOf(node: Node, defaultAs: number): NodeBgp {
  const text = node.spec.bgp?.ipv4Address;
  const ip = text === undefined ? null : parseIPv4(text) ?? parseIPv4WithPrefix(text)?.addr ?? null;
  return {
    name: node.metadata.name,
    ip,
    ipText: ip === null ? null : formatIPv4(ip),
    ip6Text: canonicalIp6(node.spec.bgp?.ipv6Address?.split('/')[0]),
    // AS 0 is reserved (RFC 7607): as unset (computeBgpPlan warns).
    asNumber: node.spec.bgp?.asNumber || defaultAs,
    rrClusterId: node.spec.bgp?.routeReflectorClusterID ?? null,
    labels: node.metadata.labels ?? {},
  };
}

/** BIRD protocol name suffix: the address with '.' (and ':') as '_'. */
function protocolSuffix(ip: string): string {
  return ip.replace(/[.:]/g, '_');
}

/** An IPv6 address text in canonical form ("fd00:0::02" -> "fd00::2"); null when it is not one. */
function canonicalIp6(text: string | undefined): string | null {
  if (text === undefined || !isIPv6(text)) return null;
  return addressText(addressOctets(text));
}

/** BGPPeer.spec.peerIP as address and optional port: "10.0.0.1", "10.0.0.1:1179", "fd00::1",
 * "[fd00::1]:1179" (IPv6 in canonical form); null when it is none of these. */
export function splitPeerIp(text: string): { address: string; port?: number } | null {
  if (parseIPv4(text) !== null) return { address: formatIPv4(parseIPv4(text)!) };
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d{1,5})$/.exec(text);
  if (m && parseIPv4(m[1]!) !== null) return { address: formatIPv4(parseIPv4(m[1]!)!), port: Number(m[2]) };
  const v6 = canonicalIp6(text);
  if (v6 !== null) return { address: v6 };
  const b = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text);
  const bracketed = b ? canonicalIp6(b[1]) : null;
  if (b && bracketed !== null) return { address: bracketed, port: Number(b[2]) };
  return null;
}

/** The BGPConfiguration named `default` (Calico's global one), if any. */
function globalConfig(snapshot: ClusterSnapshot): BGPConfiguration | undefined {
  return (snapshot.bgpConfigurations ?? []).find((c) => c.metadata.name === 'default');
}

/** The prefix of a per-node BGPConfiguration's name: `node.<node name>`, as Calico's. */
export const NODE_BGP_CONFIG_PREFIX = 'node.';

/**
 * The BGPConfiguration fields calico-node's confd takes from `node.NAME` for node NAME, over
 * `default`'s (confd's updateBGPConfigCache, v3.26 to v3.32: prefix advertisements, listen port,
 * log severity; `communities` only names the communities its prefixAdvertisements use). Every
 * other field is read from `default` alone: in `node.NAME` it is stored and ignored.
 */
export const PER_NODE_BGP_CONFIG_FIELDS: readonly string[] = ['listenPort', 'logSeverityScreen', 'prefixAdvertisements', 'communities'];

/** BGPConfigurationSpec's fields in the order of Calico's Go struct (messages name them so). */
const BGP_CONFIG_FIELD_ORDER: readonly string[] = ['logSeverityScreen', 'nodeToNodeMeshEnabled', 'asNumber', 'serviceLoadBalancerIPs',
  'serviceExternalIPs', 'serviceClusterIPs', 'serviceLoadBalancerAggregation', 'communities', 'prefixAdvertisements', 'listenPort', 'nodeMeshPassword',
  'nodeMeshMaxRestartTime', 'bindMode', 'ignoredInterfaces', 'localWorkloadPeeringIPV4', 'localWorkloadPeeringIPV6', 'programClusterRoutes',
  'ipv4NormalRoutePriority', 'ipv6NormalRoutePriority'];

/** The fields of a `node.NAME` BGPConfiguration's spec that Calico reads from `default` only
 * (ignored there, by calico-node as by podway), in Calico's order (others after, by name); [] when
 * none. */
export function defaultOnlyBgpConfigFields(spec: unknown): string[] {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) return [];
  const rank = (f: string) => (BGP_CONFIG_FIELD_ORDER.includes(f) ? BGP_CONFIG_FIELD_ORDER.indexOf(f) : BGP_CONFIG_FIELD_ORDER.length);
  return Object.keys(spec)
    .filter((f) => !PER_NODE_BGP_CONFIG_FIELDS.includes(f) && (spec as Record<string, unknown>)[f] !== undefined && (spec as Record<string, unknown>)[f] !== null)
    .sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** A listenPort as the plan uses it: an integer 1..65535, else none (a cached plan input is
 * unchecked JSON). */
function listenPortValue(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535 ? v : undefined;
}

/**
 * The port each Calico node listens on, as confd keeps it (nodeListenPorts over globalListenPort):
 * its BGPConfiguration `node.<name>`'s listenPort, else `default`'s; undefined: BIRD's 179.
 */
function listenPortsOf(snapshot: ClusterSnapshot, config: BGPConfiguration | undefined): (node: string) => number | undefined {
  const cluster = listenPortValue(config?.spec.listenPort);
  const perNode = new Map<string, number>();
  for (const c of snapshot.bgpConfigurations ?? []) {
    if (!c.metadata.name.startsWith(NODE_BGP_CONFIG_PREFIX)) continue;
    const port = listenPortValue((c.spec as Record<string, unknown> | undefined)?.listenPort);
    if (port !== undefined) perNode.set(c.metadata.name.slice(NODE_BGP_CONFIG_PREFIX.length), port);
  }
  return (node) => perNode.get(node) ?? cluster;
}

/**
 * `nodeName`'s BGP speaker settings, sessions and exports. Throws when the node is not in the
 * snapshot, or has no router ID: neither `options.routerId` (CALICO_ROUTER_ID) nor an IPv4
 * address; or has no address at all (nothing to peer from).
 */
export function computeBgpPlan(snapshot: ClusterSnapshot, nodeName: string, options: BgpPlanOptions = {}): BgpPlan {
  const config = globalConfig(snapshot);
  // AS 0 is reserved (RFC 7607): as unset, with a warning below.
  const defaultAs = config?.spec.asNumber || DEFAULT_AS_NUMBER;
  const meshEnabled = config?.spec.nodeToNodeMeshEnabled ?? true;
  const nodes = snapshot.nodes.map((n) => nodeBgpOf(n, defaultAs));
  const self = nodes.find((n) => n.name === nodeName);
  if (!self) throw new Error(`node ${JSON.stringify(nodeName)} is not in ${snapshot.source}`);
  const selfIp = self.ipText;
  const selfIp6 = self.ip6Text;
  if (selfIp === null && selfIp6 === null) throw new Error(`node ${JSON.stringify(nodeName)} has no spec.bgp.ipv4Address in ${snapshot.source}`);
  const routerId = routerIdOf(nodeName, options.routerId, selfIp);
  if (routerId === null) {
    throw new Error(`node ${JSON.stringify(nodeName)} has no spec.bgp.ipv4Address in ${snapshot.source}, so no BGP router ID: an IPv6-only node needs ${ROUTER_ID_SETTING} set, to "hash" (derived from the node name) or a unique a.b.c.d`);
  }

  const warnings: string[] = [];
  if (config?.spec.asNumber === 0) warnings.push('BGPConfiguration default: spec.asNumber 0 is reserved (RFC 7607); using 64512');
  // This node's own BGPConfiguration: fields Calico reads from `default` only are ignored, said.
  const ownConfigName = `${NODE_BGP_CONFIG_PREFIX}${nodeName}`;
  const ownConfig = (snapshot.bgpConfigurations ?? []).find((c) => c.metadata.name === ownConfigName);
  const defaultOnly = defaultOnlyBgpConfigFields(ownConfig?.spec);
  if (defaultOnly.length) warnings.push(`BGPConfiguration ${ownConfigName}: ${defaultOnly.map((f) => `spec.${f}`).join(', ')} ignored: calico-node reads ${defaultOnly.length === 1 ? 'it' : 'them'} from BGPConfiguration default only (per node: ${PER_NODE_BGP_CONFIG_FIELDS.join(', ')}${defaultOnly.includes('asNumber') ? `; a node's own AS is its Node's spec.bgp.asNumber` : ''})`);
  for (const n of snapshot.nodes) if (n.spec.bgp?.asNumber === 0) warnings.push(`Node ${n.metadata.name}: spec.bgp.asNumber 0 is reserved (RFC 7607); using ${defaultAs}`);
  const peers: CalicoPeer[] = [];
  const taken = new Map<string, string>();
  const nodeByIp = new Map<string, NodeBgp>();
  for (const n of nodes) if (n.ipText !== null && !nodeByIp.has(n.ipText)) nodeByIp.set(n.ipText, n);
  for (const n of nodes) if (n.ip6Text !== null && !nodeByIp.has(n.ip6Text)) nodeByIp.set(n.ip6Text, n);
  for (const n of snapshot.nodes) {
    const v6 = n.spec.bgp?.ipv6Address;
    if (v6 !== undefined && canonicalIp6(v6.split('/')[0]) === null) warnings.push(`Node ${n.metadata.name}: spec.bgp.ipv6Address ${JSON.stringify(v6)} is not an IPv6 address; no IPv6 sessions with it`);
  }
  /** The IPv4 sessions' and the IPv6 sessions' settings: source address and family. */
  const v4 = selfIp === null ? null : { localAddress: selfIp, families: ['ipv4'] as const };
  const v6 = selfIp6 === null ? null : { localAddress: selfIp6, families: ['ipv6'] as const };

  /** `quiet`: a reverse peering (below) gives way to any other session to the address without a
   * warning, as confd's: an explicit forward peering wins over the implicit reverse one. */
  const add = (peer: CalicoPeer, quiet = false): void => {
    if (peer.address === selfIp || peer.address === selfIp6) return; // ourselves (a global peer list naming every node, say)
    const first = taken.get(peer.address);
    if (first !== undefined) {
      if (first !== peer.source && !quiet) warnings.push(`${peer.source}: ${peer.address} is already peered by ${first}; skipped`);
      return;
    }
    taken.set(peer.address, peer.source);
    peers.push(peer);
  };
  // BGPPeer sourceAddress None: the session is not bound to the node's address (confd writes no
  // `source address`); the kernel picks the source of our connection.
  const unbind = (peer: CalicoPeer, unbound: boolean): CalicoPeer => {
    if (!unbound) return peer;
    const { localAddress: _bound, ...rest } = peer;
    return rest;
  };
  // The fields a BGPPeer that makes sessions here uses and podway does not apply: said once per plan.
  const noted = new Set<string>();
  const noteUnapplied = (bgpPeer: BGPPeer): void => {
    if (noted.has(bgpPeer.metadata.name)) return;
    noted.add(bgpPeer.metadata.name);
    for (const f of unappliedBgpPeerFields(bgpPeer.spec)) warnings.push(`BGPPeer ${bgpPeer.metadata.name}: ${f}`);
  };
  // BGPFilters by name, compiled once. A BGPPeer's spec.filters, in order, on every session it
  // makes (confd: peerIP sessions and nodeAsBGPPeers, reverse peerings too; never the mesh); a
  // name with no BGPFilter behind it is left out, as confd leaves out one it cannot read (said).
  const filterByName = new Map<string, { filter: BgpPeerFilter; notes: string[] }>();
  for (const f of snapshot.bgpFilters ?? []) {
    const bad: string[] = [];
    const filter = compileFilter(f.metadata.name, f.spec, bad);
    filterByName.set(f.metadata.name, { filter, notes: [...bad.map((b) => `${b}; rule left out`), ...unappliedBgpFilterFields(f.spec).map((n) => `BGPFilter ${f.metadata.name}: ${n}`)] });
  }
  const filtersNoted = new Set<string>();
  const filtersOf = (bgpPeer: BGPPeer): { filters?: readonly BgpPeerFilter[] } => {
    const names = (bgpPeer.spec as Record<string, unknown>).filters;
    if (!Array.isArray(names) || !names.length) return {};
    const out: BgpPeerFilter[] = [];
    for (const name of names) {
      const f = typeof name === 'string' ? filterByName.get(name) : undefined;
      const key = `${bgpPeer.metadata.name}\0${String(name)}`;
      const first = !filtersNoted.has(key);
      filtersNoted.add(key);
      if (!f) {
        if (first) warnings.push(`BGPPeer ${bgpPeer.metadata.name}: spec.filters: BGPFilter ${JSON.stringify(name)} does not exist; left out (as calico-node's confd does): its routes pass as without it`);
        continue;
      }
      if (!filtersNoted.has(`\0${String(name)}`)) {
        filtersNoted.add(`\0${String(name)}`);
        warnings.push(...f.notes);
      }
      out.push(f.filter);
    }
    return out.length ? { filters: out } : {};
  };
  // A reflector reflects for same-AS peers outside its cluster (confd's template: `rr client`
  // when the AS is ours, we have a cluster ID and the peer's rr_cluster_id differs from it; BIRD
  // refuses `rr client` on eBGP sessions, and reflectors of one cluster peer as equals).
  // The AS compared is the session's: a peerIP BGPPeer's localASNumber when set, else the node's
  // (confd's $effective_node_as_num, Calico v3.31 on: a peer in the session's local AS is iBGP and
  // a client; one in the node's AS under another local AS is eBGP, never a client).
  const rrClientOf = (asNumber: number, peerRr: string | null, sessionAs = self.asNumber): boolean =>
    self.rrClusterId !== null && peerRr !== self.rrClusterId && asNumber === sessionAs;

  // Each Calico node listens on its own port (BGPConfiguration node.<name>, else default), as we
  // do: sessions to it dial there.
  const listenPortOf = listenPortsOf(snapshot, config);
  const nodePort = (n: NodeBgp): { port?: number } => {
    const port = listenPortOf(n.name);
    return port !== undefined ? { port } : {};
  };

  if (meshEnabled && self.rrClusterId === null) {
    for (const other of nodes) {
      if (v4 === null || other.name === nodeName || other.ipText === null || other.rrClusterId !== null) continue;
      add({
        address: other.ipText, asNumber: other.asNumber, passive: other.ipText > v4.localAddress, ...v4, ...nodePort(other),
        type: 'node-to-node mesh', name: `Mesh_${protocolSuffix(other.ipText)}`, source: 'mesh', description: `Mesh_${protocolSuffix(other.ipText)}`,
      });
    }
    // The IPv6 mesh: between nodes that both have an IPv6 address. Passive by the canonical texts,
    // as calico-node: its ip_addr_v6 keys hold the parsed ipv6Address's Go String() (canonical, no
    // prefix length; libcalico-go's BGP node syncer), compared as strings by confd.
    for (const other of nodes) {
      if (v6 === null || other.name === nodeName || other.ip6Text === null || other.rrClusterId !== null) continue;
      add({
        address: other.ip6Text, asNumber: other.asNumber, passive: other.ip6Text > v6.localAddress, ...v6, ...nodePort(other),
        type: 'node-to-node mesh', name: `Mesh_${protocolSuffix(other.ip6Text)}`, source: 'mesh', description: `Mesh_${protocolSuffix(other.ip6Text)}`,
      });
    }
  }

  // Selectors parsed once per BGPPeer field (a bad one is reported once, by the forward pass).
  const selectors = new Map<string, Selector | null>();
  const selectorOf = (source: string, field: 'nodeSelector' | 'peerSelector', text: string, report: boolean): Selector | null => {
    const key = `${source}\0${field}`;
    if (!selectors.has(key)) {
      try {
        selectors.set(key, new Selector(text));
      } catch (e) {
        selectors.set(key, null);
        if (report) warnings.push(`${source}: spec.${field}: ${(e as Error).message}; skipped`);
      }
    }
    return selectors.get(key)!;
  };
  /**
   * The "local" side of confd's reverse peering for `bgpPeer` at node `n`: which of n's families
   * the BGPPeer names n by (its peerSelector selects n: both; its peerIP is n's address with n's
   * AS, spec.asNumber unset or 0 meaning the cluster's, and the port, when given, n's listen port
   * when one is set: that family only); null when it does not name n.
   */
  const reverseFamilies = (bgpPeer: BGPPeer, n: NodeBgp): { v4: boolean; v6: boolean } | null => {
    const spec = bgpPeer.spec;
    const source = `BGPPeer ${bgpPeer.metadata.name}`;
    if (spec.peerSelector !== undefined && spec.peerSelector !== '') {
      const sel = selectorOf(source, 'peerSelector', spec.peerSelector, false);
      return sel && sel.matches(n.labels) ? { v4: true, v6: true } : null;
    }
    const target = spec.peerIP === undefined ? null : splitPeerIp(spec.peerIP);
    if (!target || (target.address !== n.ipText && target.address !== n.ip6Text)) return null;
    if ((spec.asNumber || defaultAs) !== n.asNumber) return null;
    // confd's nodesWithIPPortAndAS: a port given must be the node's listen port (its node.<name>
    // BGPConfiguration's, else default's), when one is set. (confd's check, as written, also
    // wants default's port when both are set and differ, so a BGPPeer naming the node on its own
    // port makes no reverse peering there and the session never comes up; podway takes the port
    // the node listens on.)
    const port = listenPortOf(n.name);
    if (target.port !== undefined && port !== undefined && target.port !== port) return null;
    return target.address.includes(':') ? { v4: false, v6: true } : { v4: true, v6: false };
  };

  for (const bgpPeer of snapshot.bgpPeers ?? []) {
    const spec = bgpPeer.spec;
    const source = `BGPPeer ${bgpPeer.metadata.name}`;
    const selector = (field: 'nodeSelector' | 'peerSelector', text: string): Selector | null => selectorOf(source, field, text, true);
    if (spec.node !== undefined && spec.node !== '') {
      if (spec.node !== nodeName) continue;
    } else if (spec.nodeSelector !== undefined && spec.nodeSelector !== '') {
      const sel = selector('nodeSelector', spec.nodeSelector);
      if (!sel || !sel.matches(self.labels)) continue;
    }
    const type: PeerType = (spec.node ?? '') !== '' || (spec.nodeSelector ?? '') !== '' ? 'node specific' : 'global';
    const prefix = type === 'global' ? 'Global' : 'Node';
    noteUnapplied(bgpPeer);

    let password: string | undefined;
    const ref = spec.password?.secretKeyRef;
    if (ref) {
      password = options.resolveSecret?.(ref.name, ref.key);
      if (password === undefined) {
        warnings.push(`${source}: spec.password: secret ${ref.name}/${ref.key} is not available; peer left out`);
        continue;
      }
    }
    // A cached plan input (cached-inputs.ts) is unchecked JSON: an integer or nothing.
    const n = spec.numAllowedLocalASNumbers as unknown;
    const allowLocalAs = typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : 0;
    // keepOriginalNextHop: on every session the BGPPeer makes (confd's nodeAsBGPPeers sets it for
    // peerSelector ones too since Calico v3.31), effective toward eBGP peers only, as the template
    // writes `next hop keep` only when the peer's AS is not ours (the speaker keeps the next hop on
    // iBGP anyway).
    const { settings, unbound } = bgpPeerSessionSettings(spec);
    const common = {
      type, source,
      ...(password !== undefined ? { password } : {}),
      ...settings,
      ...filtersOf(bgpPeer),
    };

    if (spec.peerSelector !== undefined && spec.peerSelector !== '') {
      const sel = selector('peerSelector', spec.peerSelector);
      if (!sel) continue;
      // confd's nodeAsBGPPeers (the peerSelector sessions, and every reverse peering) never carries
      // NumAllowLocalAS: only a peerIP BGPPeer's session gets `allow local as N`. So a route with
      // our AS in its path is refused on these sessions, as calico-node's BIRD refuses it.
      if (allowLocalAs > 0) warnings.push(`${source}: spec.numAllowedLocalASNumbers ${allowLocalAs} is not applied to the sessions a peerSelector makes (calico-node's confd applies it to peerIP sessions only): routes with AS ${self.asNumber} in their path are refused on them`);
      for (const other of nodes) {
        if (other.name === nodeName || !sel.matches(other.labels)) continue;
        // Its IPv4 address over IPv4, and its IPv6 address over IPv6 when both nodes have one.
        const sessions = [
          { address: other.ipText, family: v4 },
          { address: other.ip6Text, family: v6 },
        ];
        for (const { address, family } of sessions) {
          if (address === null || family === null) continue;
          const name = `${prefix}_${protocolSuffix(address)}`;
          add(unbind({
            ...common, ...family, ...nodePort(other), address, asNumber: other.asNumber, passive: address > family.localAddress, name, description: name,
            ...(rrClientOf(other.asNumber, other.rrClusterId) ? { routeReflectorClient: true } : {}),
          }, unbound));
        }
      }
      continue;
    }
    const target = spec.peerIP === undefined ? null : splitPeerIp(spec.peerIP);
    if (!target) {
      warnings.push(`${source}: spec.peerIP ${JSON.stringify(spec.peerIP)} is not an IP address (optionally with :port); skipped`);
      continue;
    }
    const targetV6 = target.address.includes(':');
    if (targetV6 && v6 === null) {
      warnings.push(`${source}: spec.peerIP ${target.address} is IPv6 and node ${nodeName} has no spec.bgp.ipv6Address to peer from; skipped`);
      continue;
    }
    if (!targetV6 && v4 === null) {
      warnings.push(`${source}: spec.peerIP ${target.address} is IPv4 and node ${nodeName} has no spec.bgp.ipv4Address to peer from; skipped`);
      continue;
    }
    const asNumber = spec.asNumber!;
    if (asNumber === 0) {
      warnings.push(`${source}: spec.asNumber 0 is reserved (RFC 7607) and can never establish; skipped`);
      continue;
    }
    const name = `${prefix}_${protocolSuffix(target.address)}`;
    const peerNode = nodeByIp.get(target.address);
    // Calico's confd writes `allow local as N` for N > 0 only; 0 or unset is BIRD's default.
    const allowLocal = allowLocalAs > 0 ? { allowLocalAs } : {};
    const family = targetV6 ? v6! : v4!;
    // localASNumber: BIRD's `local as N` (the session's own AS: in OPEN, for iBGP or eBGP, the
    // AS_PATH prepend and the loop check), on a peerIP BGPPeer's session only (confd).
    const localAs = localAsOf((spec as Record<string, unknown>).localASNumber);
    // A Calico node named by its address and AS peers back (the reverse pass below, on that
    // node): the same string rule as the mesh then picks the passive side, so one end dials.
    const reversed = peerNode !== undefined && reverseFamilies(bgpPeer, peerNode) !== null;
    add(unbind({
      ...common, ...allowLocal, ...family, address: target.address, asNumber, name, description: name,
      ...(localAs !== undefined && localAs !== self.asNumber ? { localAs } : {}),
      // No port given and the address is a Calico node's with this AS: dial it on its listen port
      // (confd: nodesWithIPPortAndAS, then nodeListenPorts or globalListenPort).
      ...(target.port !== undefined ? { port: target.port } : reversed ? nodePort(peerNode!) : {}),
      ...(reversed ? { passive: target.address > family.localAddress } : {}),
      ...(rrClientOf(asNumber, peerNode?.rrClusterId ?? null, localAs ?? self.asNumber) ? { routeReflectorClient: true } : {}),
    }, unbound));
  }

  // Reverse peerings (confd's second pass over the BGPPeers, "to add in any missing reverse
  // peerings"): a BGPPeer whose peerSelector selects this node, or whose peerIP is this node's
  // address with its AS, makes this node peer back with the nodes the BGPPeer is for (its node,
  // its nodeSelector's nodes, or every node when it has neither). So a BGPPeer from every node to
  // the reflectors (`peerSelector: route-reflector == 'true'`) is enough: each reflector peers
  // with all those nodes, as clients (rrClientOf). Node specific; the BGPPeer's password and
  // keepOriginalNextHop (confd's nodeAsBGPPeers, Calico v3.31 on), never its
  // numAllowedLocalASNumbers; any other session to the same address (mesh, a forward BGPPeer)
  // comes first and wins silently.
  for (const bgpPeer of snapshot.bgpPeers ?? []) {
    const spec = bgpPeer.spec;
    const source = `BGPPeer ${bgpPeer.metadata.name}`;
    // reversePeering Manual: the BGPPeer makes no reverse peering (confd's automaticReversePeering).
    if ((spec as Record<string, unknown>).reversePeering === 'Manual') continue;
    const families = reverseFamilies(bgpPeer, self);
    if (families === null) continue;
    let peerNodes: readonly NodeBgp[];
    if (spec.nodeSelector !== undefined && spec.nodeSelector !== '') {
      const sel = selectorOf(source, 'nodeSelector', spec.nodeSelector, true);
      if (!sel) continue;
      peerNodes = nodes.filter((n) => sel.matches(n.labels));
    } else if (spec.node !== undefined && spec.node !== '') {
      peerNodes = nodes.filter((n) => n.name === spec.node);
    } else {
      peerNodes = nodes;
    }
    peerNodes = peerNodes.filter((n) => n.name !== nodeName);
    if (peerNodes.length === 0) continue;
    let password: string | undefined;
    const ref = spec.password?.secretKeyRef;
    if (ref) {
      password = options.resolveSecret?.(ref.name, ref.key);
      if (password === undefined) {
        warnings.push(`${source}: spec.password: secret ${ref.name}/${ref.key} is not available; reverse peerings left out`);
        continue;
      }
    }
    const reverseSource = `${source} (reverse)`;
    noteUnapplied(bgpPeer);
    const { settings, unbound } = bgpPeerSessionSettings(spec);
    for (const other of peerNodes) {
      const sessions = [
        { address: families.v4 ? other.ipText : null, family: v4 },
        { address: families.v6 ? other.ip6Text : null, family: v6 },
      ];
      for (const { address, family } of sessions) {
        if (address === null || family === null) continue;
        const name = `Node_${protocolSuffix(address)}`;
        add(unbind({
          type: 'node specific', source: reverseSource, ...(password !== undefined ? { password } : {}),
          ...settings, ...filtersOf(bgpPeer),
          ...family, ...nodePort(other), address, asNumber: other.asNumber, passive: address > family.localAddress, name, description: name,
          ...(rrClientOf(other.asNumber, other.rrClusterId) ? { routeReflectorClient: true } : {}),
        }, unbound), true);
      }
    }
  }

  const ownPort = listenPortOf(nodeName);
  const speaker: BgpSpeakerOptions = {
    localAs: self.asNumber,
    routerId,
    gracefulRestartSeconds: GRACEFUL_RESTART_SECONDS,
    ...(self.rrClusterId !== null ? { clusterId: self.rrClusterId } : {}),
    // node.<this node>'s listenPort, else default's (confd's getNodeOrGlobalValue "listen_port").
    ...(ownPort !== undefined ? { listenPort: ownPort } : {}),
    // bindMode NodeIP: the node's addresses (an IPv6-only node's one address is its only listener).
    // From `default` only: confd writes no node's bind_mode (v3.28) or reads default's (later).
    ...(config?.spec.bindMode === 'NodeIP' ? (selfIp !== null ? { listenAddress: selfIp, ...(selfIp6 !== null ? { listenAddress6: selfIp6 } : {}) } : { listenAddress: selfIp6! }) : {}),
  };
  return {
    node: nodeName, speaker, peers,
    exports: options.exports ? [...options.exports] : computeExports(snapshot, nodeName),
    learnedExport: options.learnedExport ?? computeLearnedExportPolicy(snapshot, nodeName),
    warnings,
  };
}

/** Whether two plans need a new speaker (its constructor options differ). */
export function speakerOptionsEqual(a: BgpSpeakerOptions, b: BgpSpeakerOptions): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The type a peer address has in `plan` (for `podway node status`); null when not planned. */
export function peerTypeOf(plan: BgpPlan, address: string): PeerType | null {
  return plan.peers.find((p) => p.address === address)?.type ?? null;
}

