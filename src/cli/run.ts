/**
 * `podway run`: the per-node dataplane process. A model thread (model-worker.ts) watches the
 * datastore and computes this node's model; the main thread applies it to the engine, re-applies
 * on every change that alters it (a bad change keeps the last good state forwarding), serves the
 * control socket and (with --metrics-port) Prometheus metrics and health, and stops cleanly on
 * SIGINT/SIGTERM. It logs through one pino logger (src/observe/log.ts).
 */
import { UsageError } from './usage-error';
import type { NeighborTimings } from '../dataplane/neighbors';
import { resolveDatastoreSpec } from '../control/open-datastore';
import type { NodeDataplaneModel } from '../control';
import { ModelSource, ModelMessage, type FirstModel, type ModelSourceBgp } from './model-source';
import type { HostPortMapping, LearnedRoute } from '../control/route-calc';
import type { BgpInputs } from '../control/bgp/cached-inputs';
import { ModelCacheWriter, currentBootId, notThisBoot, datastoreIdentity, defaultModelCachePath, readModelCache, notCachedNode, nodeIdentityOf, withdrawnModel, MODEL_CACHE_VERSION, type CachedModel, type ModelCacheWriteStatus } from './model-cache';
import { nodeAddressesOf, readNodeEntry } from './join';
import type { LiveRecord } from '../control/node-live';
import { RunLiveness } from './run-liveness';
import { NodeAddressStoreThread } from './address-store-thread';
import { joinInThread, NodeRunningElsewhereError } from './join-thread';
import type { KvEntry } from '../control/kv/kv';
import { ReRegistration } from './re-register';
import { buildVersion } from './version';
import { TunnelAddressJoin } from './tunnel-join';
import { AddressMonitor, addressSource, DEFAULT_AUTODETECT_POLL_MS } from './address-monitor';
import { Engine, HOST_PORT_NAME, remoteNodeIps, remoteNodeIps6, type EngineOptions } from '../dataplane/engine';
import { MissingWorkerLog, missingWorkers, withLastKnown } from './worker-answers';
import { NftNat, NatSpec, NAT_IPV6, type HostPortRule, POD_GUARD, defaultNatPortRange, ifindexOf, natCountersOf, parseNatPortRange, type NatCounters } from '../dataplane/nft-nat';
import { readLocalPortRange } from '../dataplane/port-range';
import type { NatOutgoingExclusions } from '../dataplane/nat';
import { ageText, guardSummary } from './format';
import { formatIpv4 } from '../packet/ipv4';
import { canonicalIpv6 } from '../packet/ipv6';
import { CniConfCheck, cniIpamLockFiles, DEFAULT_CNI_CONF_DIR } from './cni-conf-check';
import { KernelRoutes } from '../dataplane/kernel-routes';
import { findUnderlay, readHostAtStart, readKernelRoutesSync, underlayNextHops, underlayNextHops6, KernelRoute } from '../dataplane/host';
import { LEARNED_ROUTE_METRIC, LEARNED_ROUTE_PROTO } from '../dataplane/host-programmer';
import { formatIPv4, parseIPv4WithPrefix, parseIPv6Cidr } from '../control/ipv4';
import { tunnelAddressGaps } from '../control/tunnel-gaps';
import { startEarlyControlServer, defaultControlPath, type ControlExtras, type EarlyControlServer } from '../dataplane/control-server';
import { takeRunLock, type RunLock, type RunLockHolder } from './run-lock';
import { Taps } from '../dataplane/taps';
import { workerModelMessage } from '../dataplane/worker-model';
import { createLogger, logLinesDropped, parseLogLevel, type LogLevel } from '../observe/log';
// prom-client's metrics are required with --metrics-port only (~40 ms of start-up without it).
import type { PodwayMetrics } from '../observe/metrics';
import type { NodeMetrics } from '../observe/node-metrics';
import { Health, type EngineReadiness } from '../observe/health';
import { bgpNotReady, bgpOffStatus, speakerNotStartedStatus } from '../control/bgp/readiness';
import { startMetricsServer } from '../observe/http';
import { mergeSnapshots, withLogLinesDropped, type DataplaneSnapshot } from '../observe/snapshot';
import { RetiredCounts } from '../observe/retired-counts';
import { TunnelDrops } from '../observe/tunnel-drops';
import { TUNNEL_NFT_TABLE, tunnelDropsOf } from '../dataplane/nft-tunnels';
import { readNftCounters, tableKey } from '../dataplane/nft-counters';
import { NftCounterCache } from '../observe/nft-cache';
import { Reason } from '../dataplane/counters';
import { applySchedSlice } from '../dataplane/sched-slice';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { WORKERS_AUTO_MAX } from './workers-option';
import { WORKER_DEATHS, WorkerDeaths } from './worker-deaths';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import type { Server } from 'node:http';
import * as path from 'node:path';
import { lstatSync, renameSync } from 'node:fs';
import { oneAtATime } from '../util/one-at-a-time';
import { policyTotal, unenforcedPolicyText, type UnenforcedPolicies } from '../control/policy-kinds';
import type { PendingDelReplayer } from './pending-del-replay';
import { SystemdNotifier } from './sd-notify';
import { DEFAULT_STALE_ENDPOINT_MS, staleEndpoints } from '../observe/stale-endpoints';
import { StartupClock } from './startup-clock';
import { FelixConfigTracker, invalidFieldLine, unhonouredLine, vxlanPendingLine, type FelixChange, type LocalFelix } from './felix-settings';
import { FELIX_MTU_FIELDS, tunnelMtuWarnings, type TunnelMtuSettings } from '../control/felix-mtu';
import { podwayCommand } from '../util/invocation';

export interface RunOptions {
  node: string;
  datastore: string;
  control?: string;
  batch?: number;
  ringVersion?: 2 | 3;
  /** Underlay receive ring, MiB per worker (default the engine's UNDERLAY_RING_MB). */
  underlayRingMb?: number;
  qdiscBypass?: boolean;
  /** Coalesce TCP segments sent to pods into super-frames (default true). */
  gro?: boolean;
  /** Send VXLAN datagram runs on the underlay as UDP GSO messages (transmit GSO, default true). */
  txGso?: boolean;
  /** The underlay sends through a transmit-only packet socket (native/README.md); default true. */
  txSocket?: boolean;
  /** Hold back the ports feeding the underlay while its backlog is long (native/README.md); default true. */
  backpressure?: boolean;
  /** Underlay neighbour (ARP/NDP) timings (`--neighbor-reachable`, `--neighbor-retrans`). */
  neighbor?: NeighborTimings;
  /** Packets held per underlay neighbour while it is resolved (`--neighbor-queue`; 0: none). */
  /** the engine's neighbour queue bounds (per neighbour: packets, bytes; frames in all), given to every worker as they are */
  neighborQueue?: EngineOptions['neighborQueue'];
  rxSuper?: boolean;
  /** Read pod super-frames straight into their segments' pool slots (scatter receive, default true). */
  scatterRx?: boolean;
  podSuper?: boolean;
  rxMerge?: boolean;
  /** Drop pod frames podway forwards before the node's kernel tracks and routes them (default
   * true; nft-nat.ts podIngressChain). */
  kernelTransitDrop?: boolean;
  /** A pod's new connections to the node's own addresses: accepted (default) or dropped (table
   * inet podway, nft-nat.ts guardTableProgram; `--endpoint-to-host`). */
  endpointToHost?: 'accept' | 'drop';
  /** Forwarding workers (1 = the main thread alone). */
  workers?: number;
  /** How frames are split between workers (EngineOptions.workerSteer; default 'flow'). */
  workerSteer?: 'flow' | 'fanout';
  /** workers was chosen by --workers auto (the start-up log says so). */
  workersAuto?: boolean;
  /** Scheduler slice of each forwarding thread in µs (`--sched-slice-us`; sched-slice.ts); unset: untouched. */
  schedSliceUs?: number;
  /** This node's address with its prefix, registered in a writable datastore and never changed;
   * "autodetect": first-found, re-detected; unset: the Node's own, else first-found, re-detected
   * once it leaves the node (address-monitor.ts). */
  ip?: string;
  /** How often an autodetected address is looked for again (ms; 0 = never; default 60 s). */
  autodetectPollMs?: number;
  /** IPv6 address with prefix, "autodetect" or "none" (see JoinOptions.ip6). */
  ip6?: string;
  /** Starting log level (changed at run time by `podway log-level`). */
  logLevel?: LogLevel;
  /** Serve /metrics, /livez and /readyz on this port (off when undefined). */
  metricsPort?: number;
  metricsHost?: string;
  /** natOutgoing: TCP/UDP ports masquerading uses ("LOW-HIGH"; default above the ephemeral range). */
  natPortRange?: string;
  /** natOutgoing: idle timeout of a NATed UDP flow, seconds (default the kernel's 30 unreplied / 120). */
  natUdpTimeout?: number;
  /** natOutgoing: NATed flows at once before new ones are refused (default 65,536). */
  natMaxFlows?: number;
  /** Felix's natOutgoingExclusions (`--nat-outgoing-exclusions`, FELIX_NATOUTGOINGEXCLUSIONS;
   * default IPPoolsOnly, Felix's): whether other nodes' addresses are masqueraded as outside ones. */
  natOutgoingExclusions?: NatOutgoingExclusions;
  /** Felix's allowVXLANPacketsFromWorkloads / allowIPIPPacketsFromWorkloads (`--allow-vxlan-from-pods`,
   * `--allow-ipip-from-pods`, the FELIX_ variables): a pod's own tunnel packets forwarded, not dropped. */
  allowVxlanFromPods?: boolean;
  allowIpipFromPods?: boolean;
  /** Where each of the Felix settings above given to podway run came from ("--log-level",
   * "$FELIX_NATOUTGOINGEXCLUSIONS"): the top layers over the FelixConfigurations node.NAME and
   * default read from the datastore (felix-settings.ts). A setting left undefined above was given
   * neither way: the FelixConfigurations or the built-in default give it. */
  felixFrom?: LocalFelix['from'];
  /** Felix's tunnel MTUs from podway run's environment (FELIX_VXLANMTU, FELIX_VXLANMTUV6,
   * FELIX_IPINIPMTU; control/felix-mtu.ts), over the FelixConfigurations: for the model thread (the
   * model's MTUs) and the settings' status. */
  tunnelMtuEnv?: TunnelMtuSettings;
  /** The FELIX_* tunnel wire variables of podway run's environment (felix-settings.ts FELIX_WIRE_FIELDS). */
  felixWireEnv?: LocalFelix['wireEnv'];
  /** Run the BGP speaker with Calico's peering model (`--bgp`, CALICO_NETWORKING_BACKEND=bird). */
  bgp?: boolean;
  /** Where BGPPeer password secrets are read from (DIR/<secret>/<key>). */
  bgpSecretsDir?: string;
  /** BGP router ID setting (`--router-id`, CALICO_ROUTER_ID): `hash` or a dotted quad; unset: the
   * node's IPv4 address (an IPv6-only node needs it). */
  routerId?: string;
  /** The last-known-good model file (model-cache.ts; default /var/lib/podway/NODE.model.json;
   * 'none': no cache). etcd datastores only. */
  modelCache?: string;
  /** A model cache written in this boot of the machine is applied at once at start, while the
   * datastore is asked (default true; `--no-cache-first`: only when the datastore is unreachable). */
  cacheFirst?: boolean;
  /** Where the CNI plugin spools DELs deferred while etcd was down (replayed here; etcd only;
   * default /var/lib/podway/pending-del). */
  cniPendingDelDir?: string;
  /** The CNI config dir whose podway networks must name this run's datastore (cni-conf-check.ts; default /etc/cni/net.d). */
  cniConfDir?: string;
  /** How often podway run looks again at the orphan pod addresses it holds in IPAM (orphan-holds.ts; --orphan-hold-interval, default 60 s). */
  orphanHoldIntervalMs?: number;
  /** How often that spool is looked at besides start and reconnects (ms; default 60 s). */
  cniPendingDelIntervalMs?: number;
  /** How long a local endpoint waits for its missing interface before status names it (default 5 min). */
  staleEndpointMs?: number;
  /** The model thread not answering its heartbeat this long is terminated as hung (ms; default
   * 20 s, MODEL_THREAD_HEARTBEAT.timeoutMs; `--model-thread-hang-after`). */
  modelThreadHangMs?: number;
  /** A new model thread is stable (backoff from its first wait again; no longer failing, ready)
   * once it ran this long after its first model (ms; default 60 s; `--model-thread-stable-after`). */
  modelThreadStableMs?: number;
}

/** What podway's nftables table should hold for this model. */
function natSpecOf(model: NodeDataplaneModel, portRange: readonly [number, number], udpTimeout: NatSpec['udpTimeout'], maxFlows: number, kernelTransitDrop: boolean, natOutgoingExclusions: NatOutgoingExclusions): NatSpec {
  const nodes = new Set<number>([...(model.node.ip !== null ? [model.node.ip] : []), ...model.node.knownNodeIps]);
  return {
    hostPort: HOST_PORT_NAME,
    hostPortIndex: ifindexOf(HOST_PORT_NAME),
    natPools: model.pools.filter((p) => p.natOutgoing).map((p) => p.cidr),
    pools: model.pools.map((p) => p.cidr),
    nodes: [...nodes].sort((a, b) => a - b).map(formatIpv4),
    portRange,
    udpTimeout,
    maxFlows,
    pods: model.endpoints.filter((e) => e.interfaceType === 'veth').map((e) => e.interfaceName).sort(),
    kernelTransitDrop,
    natOutgoingExclusions,
    hostPorts: hostPortRulesOf(model.endpoints, (e) => e.hostPorts, formatIpv4),
    ...(model.node.ip !== null ? { nodeIp: formatIpv4(model.node.ip) } : {}),
  };
}

/** The host ports of one family for its table (nft-nat.ts HostPortRule): endpoints in key order,
 * so which of two claiming one port wins does not move. */
function hostPortRulesOf<A>(endpoints: NodeDataplaneModel['endpoints'], of: (e: NodeDataplaneModel['endpoints'][number]) => readonly HostPortMapping<A>[] | undefined, text: (a: A) => string): HostPortRule[] {
  return [...endpoints].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).flatMap((e) => (of(e) ?? []).map((h) => ({
    protocol: h.protocol, hostIp: h.hostIp === null ? null : text(h.hostIp), hostPort: h.hostPort, podIp: text(h.podIp), port: h.port,
  })));
}

/** What podway's IPv6 table (table ip6 podway) should hold: the IPv6 pools and nodes, the same
 * ports, timeouts and bound as IPv4's, the veth pods for the IPv6 kernel transit drop (on a node
 * with IPv6 pools), the NAT chains once an IPv6 pool had natOutgoing (`natChains`). */
function natSpecOf6(model: NodeDataplaneModel, portRange: readonly [number, number], udpTimeout: NatSpec['udpTimeout'], maxFlows: number, kernelTransitDrop: boolean, natChains: boolean, natOutgoingExclusions: NatOutgoingExclusions, hostPortChains: boolean): NatSpec {
  // the IPv6 host ports: an endpoint's (route-calc6) by its interface, in the IPv4 endpoints' key order
  const ports6 = new Map(model.v6.endpoints.map((e) => [e.interfaceName, e.hostPorts]));
  return {
    hostPort: HOST_PORT_NAME,
    hostPortIndex: ifindexOf(HOST_PORT_NAME),
    natPools: model.v6.pools.filter((p) => p.natOutgoing).map((p) => p.cidr),
    pools: model.v6.pools.map((p) => p.cidr),
    nodes: [...new Set([...(model.v6.ip6 !== null ? [model.v6.ip6] : []), ...model.v6.knownNodeIps6])].sort(),
    portRange,
    udpTimeout,
    maxFlows,
    pods: model.endpoints.filter((e) => e.interfaceType === 'veth').map((e) => e.interfaceName).sort(),
    kernelTransitDrop: kernelTransitDrop && model.v6.pools.length > 0,
    natChains,
    natOutgoingExclusions,
    hostPortChains,
    hostPorts: hostPortRulesOf(model.endpoints, (e) => ports6.get(e.interfaceName), (a: string) => a),
    ...(model.v6.ip6 !== null ? { nodeIp: model.v6.ip6 } : {}),
  };
}

/** What the pod guard (table inet podway) should hold: every veth pod's interface and its own
 * addresses, every local pod's addresses (veth, TAP, TUN: what podway hands the node's kernel
 * itself), the host port, the VXLAN port (Felix's vxlanPort in force), the endpoint-to-host action. The NAT fields are unused
 * there. */
function guardSpecOf(model: NodeDataplaneModel, endpointToHost: 'accept' | 'drop', vxlanPort: number): NatSpec {
  const veths = model.endpoints.filter((e) => e.interfaceType === 'veth');
  const names = new Set(veths.map((e) => e.interfaceName));
  const pairs4 = veths.flatMap((e) => e.ips.map((ip) => [e.interfaceName, formatIpv4(ip)] as const));
  const pairs6 = model.v6.endpoints.filter((e) => names.has(e.interfaceName)).flatMap((e) => e.ips6.map((ip) => [e.interfaceName, ip] as const));
  const order = (a: readonly [string, string], b: readonly [string, string]) => (a[0] + ' ' + a[1] < b[0] + ' ' + b[1] ? -1 : a[0] + ' ' + a[1] > b[0] + ' ' + b[1] ? 1 : 0);
  // each pair once (a stale and a new endpoint on one veth, an address listed twice): nft refuses
  // an update that deletes one element twice (nft-nat.ts ifaddrs dedupes too)
  const unique = (ps: (readonly [string, string])[]) => [...new Map(ps.map((p) => [p[0] + ' ' + p[1], p] as const)).values()];
  return {
    hostPort: HOST_PORT_NAME, hostPortIndex: 0, natPools: [], pools: [], nodes: [], portRange: [0, 0], udpTimeout: { unreplied: 0, replied: 0 }, maxFlows: 0, kernelTransitDrop: false,
    pods: [...names].sort(),
    podAddrs4: unique(pairs4).sort(order),
    podAddrs6: unique(pairs6).sort(order),
    podIps4: [...new Set(model.endpoints.flatMap((e) => e.ips.map(formatIpv4)))].sort(),
    podIps6: [...new Set(model.v6.endpoints.flatMap((e) => e.ips6))].sort(),
    tunnelPorts: [vxlanPort],
    endpointToHost,
  };
}

/** The pod guard's spec as `podway status` says it (format.ts guardSummary). */
function guardText(s: NatSpec): string {
  return guardSummary({ pods: s.pods.length, podIps4: s.podIps4?.length ?? 0, podIps6: s.podIps6?.length ?? 0, endpointToHost: s.endpointToHost ?? 'accept' });
}

/** What the apply loop is told when a kernel route towards another node changed (onUnderlayRoutes). */
const KERNEL_ROUTE_CHANGE = 'kernel route change';

/** The underlay next hop towards each node (and each unencapsulated route's next hop off our
 * subnet: a learned one need not be a node's), as a key: a change re-applies the model. */
function gatewaysKey(model: NodeDataplaneModel, routes: readonly KernelRoute[]): string {
  return JSON.stringify([
    [...underlayNextHops(routes, new Set([...model.node.knownNodeIps, ...remoteNodeIps(model)]))],
    // IPv6 likewise (nexthops6.ts: IPv6 VXLAN and direct routes off the IPv6 subnet)
    [...underlayNextHops6(routes, new Set([...model.v6.knownNodeIps6, ...remoteNodeIps6(model)]))],
  ]);
}

type Counters = ReturnType<Engine['counters']>;
interface WorkerState { snapshot: DataplaneSnapshot; readiness: EngineReadiness }
/** How long a start with a model cache waits for the datastore before it forwards on the cache
 * (less when the datastore says it is unreachable first). */
const CACHE_WAIT_MS = 5000;
/** On the cached model: a datastore that refused this node's start is asked again after this. */
const START_RETRY_MS = 10_000;
/** Host reads made while the datastore was awaited (readHostAtStart) serve the first apply when
 * at most this old; older ones (a datastore that kept podway waiting) are read again then. */
const START_READS_MAX_AGE_MS = 10_000;
/** How often the node's rp_filter is read again (Engine.rereadRpFilter). */
const RP_FILTER_CHECK_MS = 2000;
const RP_FILTER_WORDS: Record<number, string> = { 0: 'off (rp_filter 0)', 1: 'strict (rp_filter 1: a source must route back through the tunnel it came in on)', 2: 'loose (rp_filter 2)' };
/** How long the main thread waits for a worker's answer (counters, snapshot); a late thread's
 * last known counts stand in for it in the sums (worker-answers.ts withLastKnown). */
const WORKER_ANSWER_MS = 2000;

/**
 * --ip / --ip6 (or Calico's IP / IP6) as given, checked before the Node is registered with them:
 * an address no interface here holds used to be written to the Node (where every other node
 * reads it) before the underlay lookup refused it.
 */
function checkNodeAddresses(ip: string | undefined, ip6: string | undefined): void {
  // IP=none: the node's IPv6 address is all it has (unset IP6 takes the Node's or first-found);
  // both none is refused before (main.ts) and here for a caller of runNode.
  if (ip === 'none' && ip6 === 'none') throw new UsageError('--ip none and --ip6 none (IP / IP6): a node needs an IPv4 or an IPv6 address');
  if (ip !== undefined && ip !== 'autodetect' && ip !== 'none') {
    const cidr = parseIPv4WithPrefix(ip);
    if (!cidr) throw new UsageError(`--ip (or IP) ${JSON.stringify(ip)}: expected the node's IPv4 address with its prefix length, like 10.0.0.1/24`);
    try {
      findUnderlay(cidr.addr);
    } catch (e) {
      throw new Error(`--ip (or IP) ${ip}: ${(e as Error).message} (nothing was registered)`);
    }
  }
  if (ip6 !== undefined && ip6 !== 'none' && ip6 !== 'autodetect' && !parseIPv6Cidr(ip6)) {
    throw new UsageError(`--ip6 (or IP6) ${JSON.stringify(ip6)}: expected an IPv6 address with its prefix length like fd00:99::1/64, "autodetect" or "none"`);
  }
}

/**
 * --ip / --ip6 with a `file:` datastore: the file is read-only and its Node (spec.bgp.ipv4Address,
 * ipv6Address) is this node's address, the one every other node reads there too. A flag that
 * agrees with it changes nothing; one that does not is refused naming it (it used to be ignored
 * without a word, the node running on the file's address).
 */
export function checkFileNodeAddresses(model: NodeDataplaneModel, file: string, ip: string | undefined, ip6: string | undefined): void {
  const node = model.node;
  const fileIp = ipv4Text(model) ?? 'none';
  const why = `a file: datastore is read-only and this node's address is its Node's in ${file}; edit the file, or leave the flag out`;
  if (ip === 'none' && node.ip !== null) throw new Error(`--ip (or IP) none, but node ${node.name}'s spec.bgp.ipv4Address is ${fileIp}: ${why}`);
  if (ip !== undefined && ip !== 'autodetect' && ip !== 'none') {
    const cidr = parseIPv4WithPrefix(ip);
    if (!cidr || cidr.addr !== node.ip || cidr.prefixLen !== node.subnet?.prefixLen) {
      throw new Error(`--ip (or IP) ${ip} is not node ${node.name}'s spec.bgp.ipv4Address ${fileIp}: ${why}`);
    }
  }
  if (ip6 !== undefined && ip6 !== 'autodetect') {
    const file6 = model.v6.ip6 !== null ? `${model.v6.ip6}${model.v6.subnet6 ? '/' + model.v6.subnet6.split('/')[1] : ''}` : 'none';
    const given = ip6 === 'none' ? null : parseIPv6Cidr(ip6);
    const same = ip6 === 'none'
      ? model.v6.ip6 === null
      : given !== null && model.v6.ip6 !== null && canonicalIpv6(given.addr) === canonicalIpv6(model.v6.ip6) && (model.v6.subnet6 === null || model.v6.subnet6.endsWith(`/${given.prefixLen}`));
    if (!same) throw new Error(`--ip6 (or IP6) ${ip6} is not node ${node.name}'s spec.bgp.ipv6Address (${file6}): ${why}`);
  }
}

/** The model's IPv4 node address as its Node holds it ("10.0.0.1/24"); null on an IPv6-only node. */
function ipv4Text(model: NodeDataplaneModel): string | null {
  return model.node.ip === null || model.node.subnet === null ? null : `${formatIPv4(model.node.ip)}/${model.node.subnet.prefixLen}`;
}

/** The model's IPv6 node address with its prefix length ("fd00::1/64"; /128 when the Node gives
 * none); null when the node has no IPv6 address. */
function ipv6Text(model: NodeDataplaneModel): string | null {
  return model.v6.ip6 === null ? null : `${model.v6.ip6}/${model.v6.subnet6?.split('/')[1] ?? '128'}`;
}

export async function runNode(opts: RunOptions): Promise<void> {
  if (process.getuid && process.getuid() !== 0) throw new Error('podway run needs root (raw sockets, AF_PACKET, TAP devices)');
  const log = createLogger({ level: opts.logLevel, base: { node: opts.node } });
  // One line per start-up phase, ms since the process started (startup-clock.ts).
  const clock = new StartupClock((m, f) => log.info(m, f));
  clock.mark('modules loaded');
  // Felix's settings: the flags and environment given, then the FelixConfigurations node.NAME and
  // default as the models bring them (from the datastore, or the model cache), then the defaults.
  const felixValues: LocalFelix['values'] = {};
  if (opts.logLevel !== undefined) felixValues.logLevel = opts.logLevel;
  if (opts.natOutgoingExclusions !== undefined) felixValues.natOutgoingExclusions = opts.natOutgoingExclusions;
  if (opts.endpointToHost !== undefined) felixValues.endpointToHost = opts.endpointToHost;
  if (opts.allowVxlanFromPods !== undefined) felixValues.allowVxlanFromPods = opts.allowVxlanFromPods;
  if (opts.allowIpipFromPods !== undefined) felixValues.allowIpipFromPods = opts.allowIpipFromPods;
  if (opts.tunnelMtuEnv?.vxlan !== undefined) felixValues.vxlanMtu = opts.tunnelMtuEnv.vxlan;
  if (opts.tunnelMtuEnv?.vxlan6 !== undefined) felixValues.vxlanMtuV6 = opts.tunnelMtuEnv.vxlan6;
  if (opts.tunnelMtuEnv?.ipip !== undefined) felixValues.ipipMtu = opts.tunnelMtuEnv.ipip;
  const felix = new FelixConfigTracker({ values: felixValues, from: opts.felixFrom ?? {}, wireEnv: opts.felixWireEnv }, opts.node);
  const felixLog = log.child({ component: 'felix-config' });
  // The CNI plugin reads the FelixConfigurations for the pod MTU, not podway run's environment
  for (const m of FELIX_MTU_FIELDS) {
    const v = opts.tunnelMtuEnv?.[m.tunnel];
    if (v) felixLog.warn(`$${m.env} ${v} applies to this node's tunnel routes and TAP/TUN pods; the CNI plugin does not read podway run's environment, so veth pods get their MTU from the FelixConfigurations (${m.field}) and the pools: set ${m.field} in FelixConfiguration default or node.${opts.node} (or "mtu" in the CNI config) for them to get it too`);
  }
  /** A model's FelixConfigurations resolved again: what is new said (invalid fields, start-only
   * fields given), the changes returned for the caller to apply. */
  const resolveFelixOf = (model: NodeDataplaneModel, origin: 'datastore' | 'model cache'): FelixChange[] => {
    const { changes, newInvalid, newNotApplied, newUnhonoured, newVxlanPending } = felix.update(model.felix, origin);
    // an error, as a wire value not in force (the log level Error still says it)
    for (const p of newVxlanPending) felixLog.error(vxlanPendingLine(p), { field: p.field });
    for (const u of newUnhonoured) felixLog.error(unhonouredLine(u), { resource: u.resource.startsWith('$') ? u.resource : `FelixConfiguration ${u.resource}`, field: u.field });
    for (const i of newInvalid) felixLog.error(invalidFieldLine(i, felix), { resource: `FelixConfiguration ${i.resource}`, field: i.field });
    for (const n of newNotApplied) felixLog.warn(`FelixConfiguration ${n}: not applied: podway takes its metrics settings from --metrics-port, --metrics-host or FELIX_PROMETHEUSMETRICSENABLED, ...PORT and ...HOST at start only (its metrics server answers /readyz before the datastore is read)`);
    return changes;
  };
  // A spec that does not parse stops us here, with the reason; '' means the default (see main.ts).
  const spec = resolveDatastoreSpec(opts.datastore || undefined);
  // The kernel's ephemeral ports (net.ipv4.ip_local_port_range), read once here for every
  // forwarding thread's VXLAN source ports and for natOutgoing's range: a file that does not hold
  // a range stops the start, naming it, before anything is touched (docs/networking.md, "The VXLAN source port").
  const ephemeral = readLocalPortRange();
  // natOutgoing's port range is checked before anything is touched too; against the VXLAN port
  // here when $FELIX_VXLANPORT gives it (no FelixConfiguration overrides it: felix-settings.ts; the
  // tracker has resolved it already, from the environment or the built-in default), else once the
  // datastore was read (vxlanPort, below: a refusal then exits after undoing the start).
  const localVxlan = felix.vxlanNow();
  const envVxlanPort = localVxlan.source.vxlanPort.startsWith('$') ? localVxlan.wire.vxlanPort : undefined;
  let natPorts: ReturnType<typeof defaultNatPortRange>;
  try {
    natPorts = opts.natPortRange ? parseNatPortRange(opts.natPortRange, ephemeral, envVxlanPort, localVxlan.source.vxlanPort) : defaultNatPortRange(ephemeral, localVxlan.wire.vxlanPort);
  } catch (e) {
    // A bad --nat-port-range: exit 2. Without the flag the failure is the host's
    // net.ipv4.ip_local_port_range leaving no NAT ports, not a usage error: exit 1, the same message.
    if (opts.natPortRange) throw new UsageError((e as Error).message);
    throw e;
  }
  // The TLS files read and checked before anything is touched (the errors EtcdKv gives), without
  // loading an etcd client: this thread loads none (the registration runs in a thread of its own
  // with the light client, join-thread.ts; the model thread loads etcd3; bench/README.md, "Start-up time").
  // A TLS file that is there but unreadable or not PEM: a configuration error (exit 2), so that the
  // systemd unit's RestartPreventExitStatus=2 stops there instead of restarting every 2 s with it.
  // One not there yet (ENOENT) stays 1: at boot another unit may write it a moment later, and a unit
  // stopped for good by that would leave the node without a dataplane until someone came.
  try {
    if (spec.kind === 'etcd') (require('../control/kv/etcd-common') as typeof import('../control/kv/etcd-common')).readEtcdTls(spec.tls);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw e;
    throw new UsageError(`run: ${(e as Error).message}`);
  }
  const specText = spec.kind === 'file' ? `file:${spec.path}` : spec.kind === 'embedded' ? `embedded:${spec.dir}` : `etcd:${spec.endpoints.join(',')}`;
  const dsLog = log.child({ datastore: specText });
  // The etcd create fences (etcd-fence.ts) of this thread's creates (registration, tunnel-address
  // IPAM): counted per store for status and /metrics; a create left without its fence is a warning,
  // said once per fence key.
  const fences = spec.kind === 'etcd' ? { lib: require('../control/kv/etcd-fence') as typeof import('../control/kv/etcd-fence'), store: (require('../control/kv/etcd-common') as typeof import('../control/kv/etcd-common')).etcdDescription(spec.endpoints) } : null;
  fences?.lib.threadFenceCounters(fences.store);
  fences?.lib.reportUnwrittenFences((m) => dsLog.warn(m));
  const cniConfDir = opts.cniConfDir ?? DEFAULT_CNI_CONF_DIR;
  const cniConfCheck = new CniConfCheck(cniConfDir, opts.node, spec);
  const cniConf = () => cniConfCheck.mismatches();
  const sysfsWrong = (require('../dataplane/sysfs-netns') as typeof import('../dataplane/sysfs-netns')).sysfsNetnsMismatch();
  if (sysfsWrong) log.warn(sysfsWrong);
  const count = Math.max(1, opts.workers ?? 1);
  const health = new Health();
  // Under systemd (Type=notify): READY=1 when first ready, STATUS= lines, STOPPING=1, the watchdog
  // (sd-notify.ts). Taken from the environment before any thread or process starts.
  const notifier = SystemdNotifier.fromEnv(process.env, { info: (m) => log.info(m), warn: (m) => log.warn(m) });
  /** Set once the first model is applied and the workers run (the "forwarding:" line). */
  let forwarding = false;
  let current: NodeDataplaneModel | null = null;
  /** Set while forwarding on the cached model (model-cache.ts): no model of the datastore applied
   * since the start. */
  let onCache: CachedModel | null = null;
  /** The cached model was applied at once (same boot), not because the datastore was unreachable. */
  let cacheFirst = false;
  let engine: Engine | null = null;
  /** New model threads started after one died (the metric; serve() reads its ModelSource). */
  let modelThreadRestarts = (): number => 0;
  /** The model cache writer's word (model-cache.ts ModelCacheWriter.status), once there is one. */
  let modelCacheWrites = (): ModelCacheWriteStatus | null => null;
  /** Model threads terminated because they stopped answering (the metric). */
  let modelThreadHangs = (): number => 0;
  /** The model thread keeps dying (model-source.ts ModelThreadStatus.failing; the metric). */
  let modelThreadFailing = (): boolean => false;
  const workers: Worker[] = [];
  /**
   * Each forwarding thread's last known counts (worker k+1 at k): its last answer to a question
   * (a scrape, `podway counters`) or the counts it sends itself from its tick when nobody read
   * them for a while (dataplane/worker.ts), or as it dies. They stand in for a thread that is
   * late to answer (the sums never dip), and are carried into every sum when it dies
   * (observe/retired-counts.ts). Emptied when it dies (carried from then on).
   */
  const lastCountersOf: (Counters | null)[] = [];
  const lastSnapshotOf: (DataplaneSnapshot | null)[] = [];
  /** Forwarding threads that died, their restarts, and when to give up (worker-deaths.ts). */
  const workerDeaths = new WorkerDeaths();
  /** The counts of the threads that died, carried into every sum (observe/retired-counts.ts). */
  const retired = new RetiredCounts();
  /** Set when forwarding threads died too often: podway stops and exits 1. */
  let giveUpWhy: string | null = null;
  let stopForWorkers: ((why: string) => void) | null = null;
  /** Set when the forwarding threads are ended on purpose (a stop, a failed start): none started again. */
  let workersEnding = false;
  const giveUp = (why: string) => {
    giveUpWhy ??= why;
    stopForWorkers?.(why);
  };

  // Questions to the workers (counters, snapshots): one id per question, answered or given up on.
  let nextId = 0;
  const pending = new Map<number, { worker: number; answer: (answer: unknown) => void; none: () => void }>();
  const askWorkers = <T>(type: 'counters' | 'snapshot', pick: (m: Record<string, unknown>) => T): Promise<(T | null)[]> =>
    Promise.all(workers.map((w, k) => new Promise<T | null>((resolve) => {
      // a thread that died, its new one not started yet: nothing to wait for (its reason: downReason)
      if (workerDeaths.downReason(k + 1) !== null) return resolve(null);
      const id = ++nextId;
      pending.set(id, { worker: k + 1, answer: (m) => resolve(pick(m as Record<string, unknown>)), none: () => resolve(null) });
      w.postMessage({ type, id });
      setTimeout(() => { if (pending.delete(id)) resolve(null); }, WORKER_ANSWER_MS).unref();
    })));
  // A worker's part missing from a sum is said (the answer names it; a warning at most once a minute).
  const missingLog = new MissingWorkerLog((m) => log.warn(m), WORKER_ANSWER_MS);
  // Scrapes and readiness probes that overlap share one round of questions.
  let asking: Promise<(WorkerState | null)[]> | null = null;
  const workerStates = () => (asking ??= askWorkers('snapshot', (m) => ({ snapshot: m.snapshot, readiness: m.readiness }) as WorkerState).finally(() => (asking = null)));

  // Metrics and health first: a port in use stops us before anything else, and /readyz answers
  // (503, with the reason) while podway waits for its datastore.
  let httpServer: Server | null = null;
  let nodeMetrics: NodeMetrics | null = null;
  /** The registry (null without --metrics-port): more collectors (BGP, ...) join with metrics?.add(). */
  let metrics: PodwayMetrics | null = null;
  // podway's nft counters for `podway counters` and /metrics, through one cache: one nft run (a
  // child process) for every table podway holds now, at most every NFT_COUNTERS_MAX_AGE_MS, shared
  // by the requests and scrapes that meet it (observe/nft-cache.ts). natOutgoing's and the pod
  // guard's tables once they exist (natTables, set with them below); the tunnel table only when it
  // has the vxlan_old_port rule (a previous run on another vxlanPort). No table: no nft run.
  let natTables: NftNat[] = [];
  const nftCounters = new NftCounterCache(() => [
    ...natTables.filter((t) => t.active).map((t) => t.table),
    ...(engine?.previousVxlanPort != null ? [TUNNEL_NFT_TABLE] : []),
  ], { read: (tables) => readNftCounters(tables, { exec: engine?.spawnerExec() }) });
  const natCountersRead = (t: NftNat) => async (): Promise<NatCounters | null> => {
    const c = await nftCounters.table(t.table);
    return c ? natCountersOf(c) : null;
  };
  // The tunnel table's drops (VXLAN on the previous run's port: vxlan_old_port), made by the node's kernel.
  const tunnelDrops = new TunnelDrops(async () => {
    if (engine?.previousVxlanPort == null) return null;
    const c = await nftCounters.table(TUNNEL_NFT_TABLE);
    return c ? tunnelDropsOf(c) : null;
  });
  if (opts.metricsPort !== undefined) {
    const { PodwayMetrics } = require('../observe/metrics') as typeof import('../observe/metrics');
    const { NodeMetrics } = require('../observe/node-metrics') as typeof import('../observe/node-metrics');
    const { DataplaneCollector } = require('../observe/dataplane-metrics') as typeof import('../observe/dataplane-metrics');
    metrics = new PodwayMetrics();
    // what runs: podway_build_info{version,commit} 1 (version.ts)
    const { Gauge } = require('prom-client') as typeof import('prom-client');
    metrics.add({ register: (reg) => { const v = buildVersion(); new Gauge({ name: 'podway_build_info', help: 'Always 1: the podway that runs, its version (package.json\'s) and the git commit it was built from ("" when not built from a checkout).', labelNames: ['version', 'commit'], registers: [reg] }).set({ version: v.version, commit: v.commit ?? '' }, 1); } });
    nodeMetrics = new NodeMetrics({ model: () => current, ready: () => health.last?.ready ?? false, datastoreInSync: () => health.datastoreInSync, datastoreLastSync: () => health.datastoreLastSync(), workers: () => count, modelThreadRestarts: () => modelThreadRestarts(), modelThreadHangs: () => modelThreadHangs(), modelThreadFailing: () => modelThreadFailing(), cachedModel: () => onCache?.appliedAt ?? null, waitingEndpoints: () => engine?.waitingEndpoints() ?? [], modelCacheWrites: () => modelCacheWrites(), workerRestarts: () => workerDeaths.restarts, workerDeaths: () => workerDeaths.status(count).deathsInWindow });
    metrics.add(health);
    metrics.add(nodeMetrics);
    metrics.add(new DataplaneCollector(async () => {
      // the main thread's lost log lines are counted before the engine exists too
      if (!engine) return withLogLinesDropped(mergeSnapshots([]));
      const main = engine.metricsSnapshot();
      const { answers: snaps, late } = withLastKnown((await workerStates()).map((o) => o?.snapshot ?? null), lastSnapshotOf);
      missingLog.note('metrics', missingWorkers(snaps), late);
      const merged = retired.addToSnapshot(mergeSnapshots([main, ...snaps.filter((o): o is DataplaneSnapshot => o !== null)]));
      await tunnelDrops.refresh();
      const old = tunnelDrops.vxlanOldPort;
      merged.counters[Reason.VXLAN_OLD_PORT] = (merged.counters[Reason.VXLAN_OLD_PORT] ?? 0) + old.packets;
      merged.counterBytes[Reason.VXLAN_OLD_PORT] = (merged.counterBytes[Reason.VXLAN_OLD_PORT] ?? 0) + old.bytes;
      return withLogLinesDropped(merged);
    }));
    httpServer = await startMetricsServer({ port: opts.metricsPort, host: opts.metricsHost, metrics, health, log: log.child({ component: 'metrics' }) });
    log.info(`metrics on ${opts.metricsHost ?? '*'}:${opts.metricsPort} (/metrics, /livez, /readyz)`, { metricsPort: opts.metricsPort });
  }
  let lock: RunLock | null = null;
  // Ctrl-C (or SIGTERM) before forwarding starts, e.g. while waiting for an unreachable datastore:
  // said in the log, then the exit the signal would have given (it used to end without a word).
  const startSignals = new Map<NodeJS.Signals, () => void>();
  /** What such a signal undoes before the exit (serve sets it): the node's liveness key claimed
   * at start revoked, so that the key is gone at once, not left to expire within 15 s. */
  let beforeStartSignalExit: () => Promise<unknown> = () => Promise.resolve();
  /**
   * The SIGTERM or SIGINT that came while starting (null: none). From then on the exit is the
   * signal's (128 + its number), and only its handler exits: the start, aborted by it, fails
   * ("stopped before the datastore answered") and undoes what it made, and that path, which used
   * to exit 1 from main.ts whenever it ended before the handler did, waits for the handler's exit
   * instead (startPathEnded). One exit, with one status, whichever ends first.
   */
  let startSignal: { sig: NodeJS.Signals; code: number } | null = null;
  /** The start's own path ended (failed and undone) after a start signal: its handler exits now. */
  let startPathEnded = (): void => {};
  const startPathDone = new Promise<void>((r) => (startPathEnded = r));
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const h = () => {
      if (startSignal) {
        // a second signal (the other one: each is taken once): at once, with the first's status
        log.warn(`${sig} while stopping after ${startSignal.sig}: exiting at once`);
        process.exit(startSignal.code);
      }
      startSignal = { sig, code };
      log.warn(`${sig} while starting: stopping (nothing was forwarding yet)`);
      notifier?.stopping(`${sig} while starting: stopping`);
      control?.server.close(); // removes the socket file: status says "not running" again
      // bounded: an etcd that does not answer leaves the key to expire (another signal ends it at once)
      const undone = Promise.race([beforeStartSignalExit().catch(() => undefined), new Promise((r) => setTimeout(r, START_SIGNAL_UNDO_MS))]);
      // Then the start's own end (aborted, it fails and undoes what it made: undoFailedStart,
      // bounded), for at most START_SIGNAL_EXIT_MS: a start waiting on nothing the abort reaches
      // does not hold the exit.
      void undone.then(() => Promise.race([startPathDone, new Promise((r) => setTimeout(r, START_SIGNAL_EXIT_MS))])).finally(() => process.exit(code));
    };
    startSignals.set(sig, h);
    process.on(sig, h);
  }
  /** The stop handlers (serve) take over from here. */
  const endStartSignals = () => { for (const [sig, h] of startSignals) process.off(sig, h); };
  // SIGHUP (the SSH terminal of a `podway run ... &` closed, or a "reload" by habit) ended podway
  // at once, without a word and without its stop (Node's default action). podway has nothing to
  // reload: it applies datastore changes live. So it is said and ignored, from here to the exit;
  // the spawner helper ignores it too, and the commands it runs (`ip monitor`) are out of the
  // process group a shell's hang-up reaches (spawner-child.ts).
  onHangup(log);
  // The terminal gone, a write to stdout or stderr fails (EIO): podway's log lines are dropped
  // (observe/log.ts fdLines), and so is anything else written there (a Node warning), instead of
  // an unhandled 'error' event ending podway.
  for (const s of [process.stdout, process.stderr]) s.on('error', () => undefined);
  const sock = opts.control ?? defaultControlPath(opts.node);
  // Who holds the run lock, as a second `podway run` here is told (its VXLAN port once taken)
  const lockHolder: RunLockHolder = { node: opts.node, pid: process.pid, control: sock };
  /** What podway does before it forwards, for `podway status` on the early control socket. */
  let phase = 'waiting for the datastore';
  // Seconds since the process started (not since the socket or the engine came up).
  const uptimeSeconds = () => Math.round(process.uptime());
  let control: EarlyControlServer | null = null;
  /** What the start made so far that a failed start undoes (newest first): threads, timers, the
   * engine with its host state, the nftables tables (startMade). The run lock, the control socket
   * and the metrics server go in the finally below, after these. */
  const made: StartStep[] = [];
  const startMade = (what: string, undo: () => unknown): void => void made.push({ what, undo });
  try {
    // Before the datastore (Node registration) and the host: a second podway here changes nothing.
    lock = await takeRunLock(lockHolder);
    if (spec.kind !== 'file') checkNodeAddresses(opts.ip, opts.ip6);
    // The control socket before the datastore wait (which may last): `podway status` says what
    // podway is waiting for instead of "not running"; a podway already serving this path refuses
    // us here, before any port or host setting is touched.
    // A control socket left behind: the previous run did not stop (SIGTERM removes it) but was
    // killed or crashed. Said once, once this run holds the socket (a live podway's refuses us).
    const leftBehind = (() => {
      try {
        return lstatSync(sock).isSocket();
      } catch {
        return false;
      }
    })();
    control = startEarlyControlServer(sock, async () => {
      const r = await health.report();
      return { node: opts.node, pid: process.pid, version: buildVersion(), uptimeSeconds: uptimeSeconds(), starting: phase, datastore: health.datastoreReasonSince() || null, datastoreNotInSyncSince: r.datastoreNotInSyncSince, datastoreSource: specText, ready: false, notReady: r.reasons, cniConfMismatch: cniConf(), logLevel: log.level, logLinesDropped: logLinesDropped(), metricsPort: opts.metricsPort ?? null, felix: felix.status() };
    });
    await new Promise<void>((resolve, reject) => {
      control!.server.once('listening', resolve);
      control!.server.once('error', (e) => reject(new Error(`control socket ${sock}: ${e.message}`)));
    });
    clock.mark('control socket');
    // The installed CNI config sending this node's pods to another datastore: said once, here
    // (before the datastore wait; with etcd on both sides once their endpoints said which cluster
    // they serve, at most CLUSTER_ID_TIMEOUT_MS later), and in status while it lasts.
    void cniConfCheck.askClusterIds().then((found) => {
      for (const c of found) log.warn(c.message, { component: 'cni', file: c.file, field: c.field, cniDatastore: c.datastore });
    });
    if (leftBehind) log.warn(`the previous podway run on this node ended uncleanly (killed or crashed): its control socket ${sock} was left behind; this run takes over what it left (pod routes, learned routes, nftables tables)`);
    // READY=1 with the same report /readyz answers from, looked at every second.
    notifier?.start(async () => {
      const r = await health.report();
      if (!forwarding) return { ready: false, status: `starting: ${phase}${health.datastoreReason ? ` (${health.datastoreReasonSince()})` : ''}` };
      const more = r.reasons.length > 1 ? ` (and ${r.reasons.length - 1} more: ${podwayCommand()} status)` : '';
      return r.ready ? { ready: true, status: `ready: forwarding, ${current?.endpoints.length ?? 0} endpoints, ${current?.routes.length ?? 0} routes` } : { ready: false, status: `forwarding, not ready: ${r.reasons[0]}${more}` };
    });
    await serve(control);
  } catch (e) {
    // An error after the start began (a usage error found once the datastore was read, nft
    // refusing a table, the engine refusing the first model): what the start made is undone, as
    // a stop does, bounded (undoFailedStart), before the error goes up to main.ts, which exits
    // with its code (2 for a usage error, 1 otherwise) whatever is left running. After a signal
    // while starting (the start aborted by it) it is the signal's stop, said as such, and the
    // signal's handler exits (below).
    const sig = startSignal as { sig: NodeJS.Signals } | null;
    if (sig) await undoFailedStart(made, new Error(`${sig.sig} while starting (${(e as Error).message})`), { error: (m, f) => log.warn(m, f), warn: (m, f) => log.warn(m, f) });
    else await undoFailedStart(made, e as Error, log);
    throw e;
  } finally {
    clock.done();
    notifier?.close();
    // The signals' handlers stay while one of them owns the exit (a second signal exits at once).
    const signalled = startSignal as { sig: NodeJS.Signals } | null;
    if (!signalled) endStartSignals(); // also when the start failed: the error, not "SIGINT while starting", is the news
    if (control?.server.listening) control.server.close();
    lock?.close();
    httpServer?.close();
    httpServer?.closeAllConnections();
    if (signalled) {
      // A signal while starting owns the exit, with its status: this path's end (its error, which
      // main.ts would exit 1 with) waits for it.
      startPathEnded();
      await new Promise<never>(() => {});
    }
  }

  async function serve(control: EarlyControlServer): Promise<void> {
    // What the first apply reads from the host (`ip`: the interfaces, the main table, the pod
    // routes and learned routes a previous run left), read now, concurrently and without blocking,
    // while the node registers and the first model is computed (host.ts readHostAtStart). Reads
    // only: nothing on the host changes before the first model is applied, as before.
    const hostReads = readHostAtStart(LEARNED_ROUTE_PROTO, LEARNED_ROUTE_METRIC);
    const say = (m: string) => dsLog.info(m);
    const onIpam = (event: string) => nodeMetrics?.ipamEvent(event);
    const bgpLog = log.child({ component: 'bgp' });
    // The last-known-good model on local disk (model-cache.ts; etcd only: the other datastores are
    // local files that do not go away with the network).
    const cacheId = datastoreIdentity(spec);
    const cacheFile = opts.modelCache === 'none' || cacheId === null ? null : opts.modelCache ?? defaultModelCachePath(opts.node);
    const cacheWriter = cacheFile && cacheId ? new ModelCacheWriter(cacheFile, opts.node, cacheId, { info: (m) => log.info(m), warn: (m) => log.warn(m) }) : null;
    if (cacheWriter) modelCacheWrites = () => cacheWriter.status();
    const cachedReason = (why: string) => `running on the cached model from ${onCache!.appliedAt.toISOString()}: ${cacheFirst ? 'applied at start (same boot), the datastore\'s model not yet' : 'datastore unreachable'}${why ? ` (${why})` : ''}`;
    /** Not in sync, saying why; on the cache, the reason says so first (status, /readyz). */
    const datastoreDown = (why: string) => health.setDatastore(false, onCache ? cachedReason(why) : why);
    // While on the cache, /readyz's datastore line says how old the cached model is (as status).
    health.setCachedModel(() => (onCache ? { appliedAt: onCache.appliedAt, age: ageText((Date.now() - onCache.appliedAt.getTime()) / 1000) } : null));
    let saidUnreachable: () => void = () => {};
    const unreachable = new Promise<null>((r) => (saidUnreachable = () => r(null)));
    // Stops a start still under way in the background (registration retries, the model thread),
    // and on stop every registration (again after a store replacement, tunnel-address joins): their
    // retry loops would otherwise keep the process alive while the datastore is unreachable.
    const abortStart = new AbortController();
    // Every registration (joinCluster) here, one at a time: two tunnel-address reconciles at once
    // can release the address the other just assigned and wrote to the Node (tunnel-addrs.ts).
    const joinSerial = oneAtATime();
    // DELs the CNI plugin deferred while etcd was unreachable, or while the datastore (etcd or
    // embedded) was locked (pending-del-replay.ts): replayed once the datastore answers unlocked,
    // again when it answers after being away, and every minute. Loaded for the datastores the
    // plugin writes to (the IPAM and the v3 store come with it): not for a read-only file:.
    // It, the orphan address holds and the engine's looks into the pods' namespaces share one
    // store (the light etcd client: no etcd3 on this thread) and one queue (upkeep.ts).
    const upkeep = spec.kind !== 'file' ? (require('./upkeep') as typeof import('./upkeep')).runUpkeep(spec, UPKEEP_KV_TIMEOUT_MS) : null;
    const replayer: PendingDelReplayer | null = spec.kind !== 'file'
      ? new (require('./pending-del-replay') as typeof import('./pending-del-replay')).PendingDelReplayer(opts.cniPendingDelDir, spec, { info: (m) => dsLog.info(m), warn: (m) => dsLog.warn(m) }, opts.cniPendingDelIntervalMs, undefined, () => engine?.spawnerExec(), upkeep ?? undefined)
      : null;
    // (made first, undone last: after the replay and the holds stopped)
    if (upkeep) startMade('the upkeep\'s datastore store', () => upkeep.store.close());
    if (replayer) startMade('the deferred DEL replay', () => replayer.stop());
    if (cacheWriter) startMade('the model cache writer', () => cacheWriter.stop());
    if (metrics && replayer) {
      const { PendingDelCollector } = require('../observe/pending-del-metrics') as typeof import('../observe/pending-del-metrics');
      metrics.add(new PendingDelCollector(() => replayer.status()));
    }
    // Network policy stored but not enforced (control/policy-kinds.ts): said when first known and
    // on each change, in status and /metrics. null until the datastore was read.
    let policies: UnenforcedPolicies | null = null;
    const policyLog = dsLog.child({ component: 'policy' });
    const onPolicies = (p: UnenforcedPolicies): void => {
      const before = policies === null ? 0 : policyTotal(policies);
      policies = p;
      const text = unenforcedPolicyText(p);
      if (text) policyLog.warn(text, { policies: p.counts });
      else if (before > 0) policyLog.info('no network policy in the datastore any more');
    };
    if (metrics) metrics.add(new (require('../observe/policy-metrics') as typeof import('../observe/policy-metrics')).PolicyCollector(() => policies));
    if (metrics && fences) {
      const { FenceCollector } = require('../observe/fence-metrics') as typeof import('../observe/fence-metrics');
      metrics.add(new FenceCollector(fences.store));
    }
    let replayInSync = false;
    // On etcd or the embedded store, register this node first (as calico-node does), then start
    // the model thread: parsing, validation and the model run in their own thread from the start
    // (the forwarding thread only ever receives finished models). A datastore that cannot be used
    // stops us here; on the cached model, this goes on in the background until it answers.
    /** The model thread: spawned when the datastore is started, or before on the cached model with
     * --bgp (its speaker runs on the cache's BGP settings until the datastore answers). */
    let thread: ModelSource | null = null;
    const bgpOptions: ModelSourceBgp & { heldLearned?: readonly LearnedRoute[]; forwardingKept?: boolean } = { bgp: opts.bgp, bgpSecretsDir: opts.bgpSecretsDir, ...(opts.routerId !== undefined ? { routerId: opts.routerId } : {}), heldLearnedNow: () => (opts.bgp ? current?.bgpLearned : undefined), onLog: (level: 'info' | 'warn' | 'error', m: string) => (level === 'error' ? bgpLog.error(m) : level === 'warn' ? bgpLog.warn(m) : bgpLog.info(m)), onWarning: (m: string) => dsLog.warn(m), onPolicies, ...(opts.tunnelMtuEnv ? { tunnelMtuEnv: opts.tunnelMtuEnv } : {}), ...(opts.modelThreadHangMs !== undefined ? { hangAfterMs: opts.modelThreadHangMs } : {}), ...(opts.modelThreadStableMs !== undefined ? { stableAfterMs: opts.modelThreadStableMs } : {}) };
    /** The cached model is in force in the engine: only then does the speaker start on the cache's
     * BGP settings (as a datastore model's settings follow it once applied). */
    let cacheApplied = false;
    /** On the cached model with --bgp: the speaker runs on the cache's BGP settings; else why not.
     * (Declared before the first start: it spawns the model thread, startCachedSpeaker reads this.) */
    let cacheBgp = false;
    let cacheNoBgp = '';
    /** Why the cache's announcements were withdrawn (it is not this node's state: onNodeVerdict);
     * null while they stand. A speaker started again on the cache's settings exports nothing then. */
    let cacheBgpWithdrawn = null as string | null;
    let lastSpawn = 0;
    let respawnTimer: NodeJS.Timeout | undefined;
    /** With --bgp on the cached model, once it is applied: the speaker on the cache's settings. */
    const startCachedSpeaker = () => {
      if (thread && cacheBgp && cacheApplied && onCache?.bgp && !source) thread.useCachedBgp(onCache.bgp, onCache.appliedAt, cacheFile!, cacheBgpWithdrawn ?? undefined);
    };
    /** A model thread. One that dies while podway runs on the cached model (the datastore's
     * first model not in force yet) is replaced, not kept: a dead one fails every later start of
     * the datastore, and with it went the speaker on the cache's settings, started again in the
     * new one. At most one new thread per START_RETRY_MS (one that dies at once does not spin). */
    const spawnThread = (): ModelSource => {
      // One started again on the applied cached model: this process forwards (F holds).
      const t = ModelSource.spawn(opts.datastore, opts.node, cacheApplied ? { ...bgpOptions, forwardingKept: true } : bgpOptions);
      lastSpawn = Date.now();
      t.onExit((code) => {
        // stopping, a failed start (both abort it) or the datastore's thread (not on the cache)
        if (abortStart.signal.aborted || thread !== t || source || !onCache) return;
        thread = null;
        const speaker = cacheBgp && cacheApplied;
        const wait = Math.max(0, lastSpawn + START_RETRY_MS - Date.now());
        dsLog.error(`the model thread exited (code ${code}) while forwarding on the cached model: ${speaker ? `a new one in ${Math.ceil(wait / 1000)} s, its BGP speaker again on the model cache's settings` : 'a new one at the next try of the datastore'}`);
        if (!speaker) return; // the next start of the datastore spawns it
        respawnTimer = setTimeout(() => {
          if (abortStart.signal.aborted || thread || source) return;
          thread = spawnThread();
          startCachedSpeaker();
        }, wait);
        respawnTimer.unref();
      });
      return t;
    };
    // The datastore's clusterGUID as the last registration found or made it (podway status).
    let clusterGuid: string | null = null;
    const onClusterGuid = (guid: string | null): void => { clusterGuid = guid; };
    // ClusterInformation default's datastoreReady: false (`calicoctl datastore migrate lock`) as the
    // last registration read it, and when (podway status): Calico's Felix and CNI plugin wait while
    // it is locked, so an operator sees why the cluster may not change.
    let datastoreLocked: { checkedAt: string } | null = null;
    // A file: datastore's edit refused (invalid YAML, a field): forwarding goes on with the last good
    // state, readiness unchanged; status says so until a good edit (or the same error's since stays).
    let datastoreRejected: { since: string; error: string } | null = null;
    const onDatastoreLocked = (locked: boolean): void => { datastoreLocked = locked ? { checkedAt: new Date().toISOString() } : null; };
    /** The Node the model cache was written for against the datastore's (model-cache.ts
     * notCachedNode), judged on the first answer (the light read at start, or a registration's read):
     * undefined until then, null when it is the same Node (or the cache does not say), else why not. */
    let nodeVerdict = undefined as string | null | undefined;
    /** Called when the verdict comes (set once the cache may be in force: it withdraws it). */
    let onNodeVerdict = (): void => {};
    const onNodeRead = (existing: KvEntry | null): void => {
      if (nodeVerdict !== undefined || usable === null) return;
      nodeVerdict = notCachedNode(opts.node, usable, existing);
      onNodeVerdict();
    };
    // The Node registered (found or made): the cache records it with the models written after.
    /** The node's addresses as last registered (its liveness key names them: control/node-live.ts). */
    let registeredAddresses: string[] = [];
    // The address monitor's reads and writes of this node's Node go through one store of its own,
    // opened at its first call and closed once it stopped (join.ts NodeAddressStore), not one per
    // look (in a thread of its own, address-store-thread.ts: its EtcdKv, etcd3, is not loaded, and
    // its calls not encoded, on the forwarding thread). The same thread holds this node's liveness
    // key on etcd (control/node-live.ts) from the moment the start claimed it (the registration's
    // thread, before it wrote the Node), also with re-detection off: created for every writable
    // datastore (started at its first call). A failed start revokes the lease (its close).
    const nodeAddresses = spec.kind === 'file' ? null : new NodeAddressStoreThread(spec, opts.node, log);
    if (nodeAddresses) startMade('the Node address store', () => nodeAddresses.close());
    /** This run's liveness record (etcd only), claimed at start; its addresses follow the registrations. */
    const liveRecord: LiveRecord | undefined = spec.kind === 'etcd'
      ? { ...(require('../control/node-live') as typeof import('../control/node-live')).thisHost(), addresses: [], pid: process.pid, started: new Date(Date.now() - process.uptime() * 1000).toISOString() }
      : undefined;
    /** The liveness key's claims and holder, and the exit's order over them (run-liveness.ts); etcd only. */
    const live = liveRecord && nodeAddresses ? new RunLiveness(opts.node, nodeAddresses, liveRecord, () => registeredAddresses, dsLog) : null;
    // Every exit aborts the start (a stop, a signal while starting, a failed start's undo): the
    // holder's stop flag is set first (this listener is the signal's first), before the
    // registration's thread hears of it and revokes what it claimed, so that no revoke of this
    // run is taken by the holder for an expiry to make good with a new lease.
    if (live) abortStart.signal.addEventListener('abort', () => live.exitAsked(), { once: true });
    const onLiveClaimed = live?.onLiveClaimed;
    /** The claimed leases not handed over yet, revoked (a start that ends: failed, stopped). */
    const revokeLiveClaims = (): Promise<unknown> => live?.revokeClaims() ?? Promise.resolve();
    // A failed start, or a signal while starting, removes the key it claimed at once (the
    // registration's thread revokes a lease not handed over, the holder's close its own).
    startMade('the liveness key claimed', revokeLiveClaims);
    /** The start's registration while it runs (its thread may have claimed the key before this thread heard of it). */
    let startJoin: Promise<void> | null = null;
    // A signal while starting: the holder stopped first (RunLiveness.exitAsked), the start's
    // registration aborted (its thread revokes a key it claimed first), the leases this thread
    // heard of revoked through a light client of its own and by their threads, the holder closed
    // (its lease revoked). None heard of: the registration's thread revokes what it claimed.
    beforeStartSignalExit = () => {
      live?.exitAsked();
      abortStart.abort();
      const now = live && spec.kind === 'etcd' ? live.exitNow(spec) : null;
      return Promise.all([now?.done, now && now.leases.length > 0 ? undefined : startJoin?.catch(() => undefined), nodeAddresses?.close()]);
    };
    const onNodeRegistered = (entry: KvEntry): void => {
      registeredAddresses = nodeAddressesOf(entry);
      live?.addressesChanged();
      cacheWriter?.node(nodeIdentityOf(entry));
    };
    const joinHooks = { onClusterGuid, onDatastoreLocked, onNodeRead, onNodeRegistered };
    if (metrics && live && nodeAddresses) metrics.add(new (require('../observe/liveness-metrics') as typeof import('../observe/liveness-metrics')).LivenessCollector(() => nodeAddresses.liveStatus()));
    /** The model thread, spawned if there is none (a dead one replaced). */
    const ensureThread = (): ModelSource => {
      if (thread?.hasExited) thread = null;
      if (!thread) {
        thread = spawnThread();
        startCachedSpeaker(); // a thread that died on the cache: its speaker again (after the apply)
      }
      return thread;
    };
    const startDatastore = async (): Promise<FirstModel> => {
      datastoreDown(`joining ${specText}`);
      // The model thread is spawned before the registration: it loads its modules (the etcd client
      // among them, model-worker.ts) while the registration's thread (join-thread.ts) registers the
      // node; it opens the datastore only once asked (begin), after the registration, as
      // calico-node does. Neither runs on this thread, which forwards meanwhile on a restart on the cache.
      const early = ensureThread();
      try {
        await (startJoin = joinSerial(() => joinInThread(spec, { node: opts.node, ...joinHooks, ip: opts.ip, ip6: opts.ip6, onIpam, atStart: true, ...(liveRecord && onLiveClaimed ? { live: liveRecord, onLiveClaimed } : {}), warn: (m) => dsLog.warn(m), signal: abortStart.signal }, (m) => {
          if (/unreachable|too slow/.test(m)) {
            datastoreDown(m);
            dsLog.warn(m);
            saidUnreachable();
          } else say(m);
        })));
      } catch (e) {
        // A failed start stops podway: the thread spawned for it goes too (on the cached model it
        // stays, as after a failed begin below).
        if (!onCache && thread === early) {
          thread = null;
          early.terminate();
        }
        throw e;
      }
      clock.mark('registered');
      datastoreDown('waiting for the first snapshot');
      if (abortStart.signal.aborted) throw new Error('stopped before the datastore answered');
      const t = ensureThread();
      let started: FirstModel;
      try {
        started = await t.begin((m) => {
          dsLog.warn(m);
          datastoreDown(m.replace(/^datastore: /, ''));
          if (/waiting for it|unreachable|too slow/.test(m)) saidUnreachable();
        }, abortStart.signal);
      } catch (e) {
        // On the cached model the thread stays (its speaker may run on the cache's settings) and is
        // asked again; at start podway stops.
        if (!onCache && thread === t) {
          thread = null;
          t.terminate();
        }
        throw e;
      }
      if (spec.kind === 'file') {
        try {
          checkFileNodeAddresses(started.first, spec.path, opts.ip, opts.ip6);
        } catch (e) {
          await started.source.close();
          throw e;
        }
      }
      return started;
    };
    // Read before the model thread starts: with --bgp its first model holds the learned routes the
    // cache has (a restart), each until its peer has sent its table again.
    const cached = cacheFile && cacheId ? readModelCache(cacheFile, opts.node, cacheId) : 'none';
    /** The cache read, when it can be used at all. */
    const usable = cached !== 'none' && !('refused' in cached) ? cached : null;
    if (opts.bgp && cached !== 'none' && !('refused' in cached)) {
      bgpOptions.heldLearned = cached.model.bgpLearned ?? [];
      // The speaker claims a graceful restart (R and F in its OPENs: forwarding state preserved,
      // RFC 4724) only on a cache of this boot: after a reboot the pods, their routes and this
      // process's forwarding are gone, and F would have the peers go on forwarding to this node on
      // the routes they kept of the earlier boot. Clear, they drop those at once, as on a first start.
      const other = notThisBoot(cached.bootId);
      bgpOptions.forwardingKept = other === null;
      if (other !== null) bgpLog.info(`model cache ${cacheFile}: ${other}: the speaker does not claim a graceful restart (R and F clear in its OPENs: the peers drop the routes they kept of this node at once)`);
    }
    /** Why `c` is not applied at once at start (null: it is): turned off, not of this boot, or
     * not this node's addresses as they are now (given otherwise, or held by no interface here:
     * the engine would refuse it, and that refusal stops a start). */
    const cacheFirstRefusal = async (c: CachedModel): Promise<string | null> => {
      const now = cacheFirstRefusalNow(c);
      if (now !== null) return now;
      // The interfaces as read for the first apply (read now, not again then).
      const links = await hostReads.then((r) => r.links, () => null);
      if (links !== null) {
        try {
          findUnderlay(c.model.node.ip, c.model.v6.ip6, links);
        } catch (e) {
          return `its node address: ${(e as Error).message}`;
        }
      }
      return null;
    };
    /** cacheFirstRefusal's part that needs no host read. */
    function cacheFirstRefusalNow(c: CachedModel): string | null {
      if (opts.cacheFirst === false) return '--no-cache-first';
      const other = notThisBoot(c.bootId);
      if (other !== null) return c.bootId !== null && currentBootId() !== null ? `${other}: after a reboot pods are made again and their blocks may have moved` : other;
      const m = c.model;
      const given4 = opts.ip === 'none' ? null : opts.ip !== undefined && opts.ip !== 'autodetect' ? parseIPv4WithPrefix(opts.ip)?.addr ?? null : undefined;
      if (given4 !== undefined && given4 !== m.node.ip) return `its node address ${ipv4Text(m) ?? 'none'} is not --ip (or IP) ${opts.ip}`;
      const p6 = opts.ip6 !== undefined && opts.ip6 !== 'autodetect' && opts.ip6 !== 'none' ? parseIPv6Cidr(opts.ip6) : null;
      const given6 = opts.ip6 === 'none' ? null : p6 ? canonicalIpv6(p6.addr) : undefined;
      const cached6 = (() => {
        try {
          return m.v6.ip6 === null ? null : canonicalIpv6(m.v6.ip6);
        } catch {
          return m.v6.ip6; // not an address: the engine refuses it (model-check.ts), said there
        }
      })();
      if (given6 !== undefined && given6 !== cached6) return `its node address ${ipv6Text(m) ?? 'none'} is not --ip6 (or IP6) ${opts.ip6}`;
      return null;
    }
    // A cache that will be applied at once (as far as can be told before the host is read): the
    // datastore's start (the registration's thread and the model thread, each loading its etcd
    // client and the schemas) waits until podway forwards on it. On 2 busy vCPUs their
    // loading took the CPU the start needs, and forwarding needs neither (bench/README.md, "The gap
    // of a restart"). Meanwhile the Node the cache was written for is compared with the
    // datastore's in one read through the light client (join.ts readNodeEntry), while the host is
    // read: answered by then, a cache of another Node (deleted and registered again under this
    // name) is not applied; answered later, the registration's own read does it (onNodeRead).
    const deferDatastore = usable !== null && cacheFirstRefusalNow(usable) === null;
    if (deferDatastore && spec.kind === 'etcd') {
      readNodeEntry(spec, opts.node).then(onNodeRead, (e: Error) => dsLog.info(`the Node the model cache was written for not compared yet: ${e.message} (the registration compares it)`));
    }
    let starting = null as Promise<FirstModel> | null;
    /** The datastore's start, once (handled below: at once, or once forwarding on the cache). */
    const startDatastoreOnce = (): Promise<FirstModel> => {
      if (starting === null) {
        starting = startDatastore();
        starting.catch(() => undefined);
      }
      return starting;
    };
    if (!deferDatastore) startDatastoreOnce();
    let source: ModelSource | null = null;
    // A failed start: no registration retried, no new thread, every model thread ended (one
    // spawned for the datastore's start, or a start that answered after all).
    startMade('the model thread', async () => {
      abortStart.abort();
      clearTimeout(respawnTimer);
      await Promise.all([(thread as ModelSource | null)?.close(), (source as ModelSource | null)?.close(), starting?.then((s) => s.source.close(), () => undefined)]);
    });
    modelThreadRestarts = () => source?.threadStatus().restarts ?? 0;
    modelThreadHangs = () => source?.threadStatus().hangs ?? 0;
    modelThreadFailing = () => (source?.failingReason() ?? '') !== '';
    // A model thread that keeps dying (model-source.ts): not ready until a new one ran a minute
    // (--model-thread-stable-after),
    // even while one follows the datastore between two deaths.
    health.setModelThread(() => source?.failingReason() ?? '');
    let first: NodeDataplaneModel;
    /** The first model's number in the model thread and its BGP settings (start without the cache). */
    let firstGen: number | undefined;
    let firstInputs: BgpInputs | undefined;
    if (cached !== 'none' && 'refused' in cached) log.warn(`model cache ${cacheFile} ignored: ${cached.refused}; the start waits for the datastore as without a cache`);
    // An upgrade's first start reads the older podway's format 3 (model-cache.ts
    // MODEL_CACHE_OLDER_VERSION): used as format 4, its Node judged at the first answer.
    if (usable !== null && usable.version !== MODEL_CACHE_VERSION) log.info(`model cache ${cacheFile}: format ${usable.version}, written by an older podway: used as this one's; ${usable.nodeIdentity === null ? 'it does not say its Node: the datastore\'s Node is taken for it only if created before its model was applied' : 'its Node compared'} at the datastore's first answer (rewritten as format ${MODEL_CACHE_VERSION} with the next model)`);
    const notFirst = usable === null ? null : await cacheFirstRefusal(usable);
    /** Not this node's state (its Node deleted and registered again), known before the cache is
     * applied: never used, the datastore first as without a cache (it answered: it said so). */
    const notThisNode = async (why: string): Promise<FirstModel> => {
      log.warn(`model cache ${cacheFile} not used: ${why}; the datastore's model first`);
      return startDatastoreOnce();
    };
    /** The first model: the datastore's (its FirstModel), or the cache's (`usable`, applied first). */
    const firstModel = async (): Promise<FirstModel | CachedModel> => {
      if (usable === null) return startDatastoreOnce();
      if (nodeVerdict) return notThisNode(nodeVerdict);
      // Written in this boot of the machine: applied at once, while the datastore is asked (its
      // first model replaces it, as any change): the pods' traffic goes on through a restart, as
      // the kernel's routes carry Calico's through felix's. Otherwise (another boot: pods are
      // recreated after a reboot and IPAM may have moved blocks; --no-cache-first) the datastore
      // first, the cache only when it says it is unreachable or does not answer within
      // CACHE_WAIT_MS (a blackholed etcd says nothing).
      if (notFirst !== null && opts.cacheFirst !== false) log.info(`model cache ${cacheFile} not applied at start: ${notFirst}; the datastore first (the cache if it does not answer)`);
      const answered = notFirst === null ? null : await Promise.race([startDatastoreOnce(), unreachable, new Promise<null>((r) => setTimeout(() => r(null), CACHE_WAIT_MS).unref())]);
      if (answered) return answered;
      if (nodeVerdict) return notThisNode(nodeVerdict);
      return usable;
    };
    const chosen = await firstModel();
    if ('source' in chosen) ({ source, first, gen: firstGen, bgpInputs: firstInputs } = chosen);
    else {
      const cached = chosen;
      onCache = cached;
      cacheFirst = notFirst === null;
      first = cached.model;
      datastoreDown(health.datastoreReason);
      if (cacheFirst) log.info(`start-up: forwarding on the cached model from ${cached.appliedAt.toISOString()} (same boot) while the datastore answers (${cacheFile}: ${first.endpoints.length} endpoints, ${first.routes.length} routes); not ready until its model is applied`, { cachedModel: cached.appliedAt.toISOString(), cacheFirst: true });
      else log.warn(`datastore ${specText} unreachable: forwarding on the cached model from ${cached.appliedAt.toISOString()} (${cacheFile}: ${first.endpoints.length} endpoints, ${first.routes.length} routes) until it answers; registration waits for it too`, { cachedModel: cached.appliedAt.toISOString() });
      // With --bgp the speaker starts on the cache's BGP settings once the cached model is
      // applied (the peers, a ToR, keep this node's routes only for their graceful-restart
      // time), in the model thread that then takes the datastore's settings: the same sessions
      // go on (docs/failures.md, "Datastore away"). Not before: a cached model the engine refuses would
      // have announced this node's blocks.
      // (On a restart on the cache its thread is spawned once podway forwards, with the datastore's start.)
      if (opts.bgp && cached.bgp) {
        if (!thread && starting !== null) thread = spawnThread();
        cacheBgp = true;
      } else if (opts.bgp) {
        cacheNoBgp = `the model cache has no BGP settings: ${cached.noBgp ?? 'none'}`;
        bgpLog.warn(`${cacheNoBgp}; the BGP speaker starts once the datastore answers`);
      }
    }
    // On a cached model without BGP settings the speaker starts once the datastore answers: the
    // answer says so, rather than "the model thread did not answer" (docs/failures.md, "Datastore away": the
    // peers keep this node's routes only for their graceful-restart time).
    const speakerWaits = () => `it starts once the datastore answers (podway forwards on the cached model from ${onCache?.appliedAt.toISOString() ?? '?'}; ${cacheNoBgp ? `${cacheNoBgp}; ` : ''}the peers keep this node's routes only for their graceful-restart time)`;
    /** The speaker's thread once it runs: the datastore's, or on the cache's settings. */
    const speakerThread = () => (source ?? (cacheBgp ? thread : null));
    const bgpStatus = () => (speakerThread()?.bgpStatus() ?? Promise.resolve(opts.bgp ? speakerNotStartedStatus(opts.node, speakerWaits()) : bgpOffStatus(opts.node)));
    if (source) health.setDatastore(true);
    // With --bgp, ready only while the speaker runs and every session is Established (calico-node's
    // -bird-ready): a node whose peers are down does not receive or announce routes.
    if (opts.bgp) {
      // A model thread busy with a large snapshot may miss the 2 s answer: its last answer stands
      // for 30 s, so readiness does not flap on one slow reply.
      let lastBgp: { status: NonNullable<Awaited<ReturnType<typeof bgpStatus>>>; at: number } | null = null;
      health.setBgp(async () => {
        if (!speakerThread()) return [`the BGP speaker is not running: ${speakerWaits()}`];
        const s = await bgpStatus();
        if (s !== null) lastBgp = { status: s, at: Date.now() };
        const known = s ?? (lastBgp !== null && Date.now() - lastBgp.at < 30_000 ? lastBgp.status : null);
        return known === null ? ['the model thread did not answer'] : bgpNotReady(known);
      });
      if (metrics) {
        const { BgpCollector } = require('../observe/bgp-metrics') as typeof import('../observe/bgp-metrics');
        metrics.add(new BgpCollector(bgpStatus));
      }
    }
    if (source) say(`datastore ${specText}`);
    clock.mark('first model', source ? `the datastore's, ${first.endpoints.length} endpoints` : `the model cache's, ${first.endpoints.length} endpoints`);
    if (source) replayer?.start();
    phase = 'setting up the dataplane';
    current = first;
    const udpTimeout = opts.natUdpTimeout !== undefined ? { unreplied: opts.natUdpTimeout, replied: opts.natUdpTimeout } : { unreplied: 30, replied: 120 };
    const natLog = log.child({ component: 'nat' });
    const nat = new NftNat((m) => natLog.info(m));
    const nat6 = new NftNat((m) => natLog.info(m), 'nft', {}, NAT_IPV6);
    const guard = new NftNat((m) => natLog.info(m), 'nft', {}, POD_GUARD);
    natTables = [nat, nat6, guard];
    // The first model's FelixConfigurations (the datastore's, or the model cache's) before anything
    // is set up: the tables, the engine and the workers start on them.
    for (const c of resolveFelixOf(first, onCache ? 'model cache' : 'datastore')) felixLog.info(`${c.field} ${c.now} (from ${c.source})`);
    if (felix.settings.logLevel !== log.level) log.level = felix.settings.logLevel;
    // Felix's vxlanPort and vxlanVNI: taken now, for this run (the sockets, filters, tables and
    // every thread start on them); a later change is said to take effect at the next start
    const vxlanWire = felix.vxlanAtStart();
    lockHolder.vxlanPort = vxlanWire.vxlanPort;
    lock?.say(lockHolder); // a second run here is told the port too
    const wireSource = (field: string) => felix.status().settings.find((s) => s.field === field)?.source;
    const vxlanPortSource = wireSource('vxlanPort');
    felixLog.info(`VXLAN: UDP port ${vxlanWire.vxlanPort} (${vxlanPortSource}), VNI ${vxlanWire.vxlanVNI} (${wireSource('vxlanVNI')}); a change takes effect at the next podway run start`, { vxlanPort: vxlanWire.vxlanPort, vxlanVNI: vxlanWire.vxlanVNI });
    if (natPorts[0] <= vxlanWire.vxlanPort && vxlanWire.vxlanPort <= natPorts[1]) {
      // natOutgoing's ports must not take the VXLAN port's replies (the default range was made
      // without 4789 before the datastore was read; a given one is checked here only)
      if (opts.natPortRange) throw new UsageError(`--nat-port-range: ${opts.natPortRange} holds the VXLAN port ${vxlanWire.vxlanPort} (vxlanPort from ${vxlanPortSource})`);
      natPorts = defaultNatPortRange(ephemeral, vxlanWire.vxlanPort);
      if (natPorts[0] <= vxlanWire.vxlanPort && vxlanWire.vxlanPort <= natPorts[1]) throw new Error(`vxlanPort ${vxlanWire.vxlanPort} is inside natOutgoing's port range ${natPorts[0]}-${natPorts[1]}: give --nat-port-range LOW-HIGH without it`);
    }
    let endpointToHost = felix.settings.endpointToHost;
    let natExclusions = felix.settings.natOutgoingExclusions;
    let natToNodes = natExclusions === 'IPPoolsOnly';
    if (metrics) {
      const { NatCollector, PodGuardCollector } = require('../observe/nat-metrics') as typeof import('../observe/nat-metrics');
      metrics.add(new NatCollector({ counters: natCountersRead(nat), maxFlows: () => (nat.active ? opts.natMaxFlows ?? 65536 : null) }));
      metrics.add(new NatCollector({ counters: natCountersRead(nat6), maxFlows: () => (nat6.active ? opts.natMaxFlows ?? 65536 : null) }, true));
      metrics.add(new PodGuardCollector(natCountersRead(guard)));
    }
    // The table exists while podway runs (a pool may turn natOutgoing on live); without nft it is an
    // error only once a pool asks for natOutgoing.
    let leftover6Checked = false;
    let nat6Chains = false;
    /** table ip6 podway's host port chains: from the first IPv6 host port on (kept, as nat6Chains). */
    let hostPort6Chains = false;
    /** `nft list tables` as read while the datastore was awaited (readHostAtStart), for the first
     * model's look for a leftover table ip6 podway; null: look with nft then, as before. */
    let startNftTables: string | null = null;
    let natSynced = false;
    const syncNat = (model: NodeDataplaneModel) => {
      // The pod guard first: from the first model on, a veth pod cannot reach the node's tunnel
      // sockets nor its services with a forged source (review C, H1/H2).
      const wantGuard = guardSpecOf(model, endpointToHost, vxlanWire.vxlanPort);
      const want = natSpecOf(model, natPorts, udpTimeout, opts.natMaxFlows ?? 65536, opts.kernelTransitDrop !== false, natExclusions);
      nat6Chains ||= model.v6.pools.some((p) => p.natOutgoing);
      hostPort6Chains ||= model.v6.endpoints.some((e) => e.hostPorts !== undefined);
      const want6 = natSpecOf6(model, natPorts, udpTimeout, opts.natMaxFlows ?? 65536, opts.kernelTransitDrop !== false, nat6Chains, natExclusions, hostPort6Chains);
      // The first model: the tables go in with one nft run (one transaction), not one run each; one
      // nft refuses makes all of them be made on their own below, as before, saying which and why.
      const together = !natSynced && !guard.active && !guard.starting && !nat.active && !nat6.active
        && NftNat.startTogether([[guard, wantGuard], [nat, want], ...(want6.natChains || want6.kernelTransitDrop || want6.hostPortChains ? [[nat6, want6] as const] : [])]);
      natSynced = true;
      if (together) natLog.info(`pod guard: table inet podway created: ${guardText(wantGuard)}`);
      else if (guard.active || guard.starting) guard.update(wantGuard);
      else if (endpointToHost === 'drop') {
        // asked to drop pods' connections to the node: not running open instead (throws)
        guard.start(wantGuard);
        natLog.info(`pod guard: table inet podway created: ${guardText(wantGuard)}`);
      } else if (guard.startOrRetry(wantGuard)) {
        natLog.info(`pod guard: table inet podway created: ${guardText(wantGuard)}`);
      } else {
        natLog.warn(`pod guard: ${guard.lastError}: veth pods can send the node's kernel forged sources and tunnel packets (tried again on a timer, 1 s doubling up to 60 s, with the newest model, until it goes in)`);
      }
      if (together) natLog.info(`nat: table ip podway created; ${want.natPools.length ? 'natOutgoing from ' + want.natPools.join(', ') : 'no pool has natOutgoing'}, ports ${natPorts[0]}-${natPorts[1]}`);
      else if (nat.active) nat.update(want);
      else {
        try {
          nat.start(want);
          natLog.info(`nat: table ip podway created; ${want.natPools.length ? 'natOutgoing from ' + want.natPools.join(', ') : 'no pool has natOutgoing'}, ports ${natPorts[0]}-${natPorts[1]}`);
        } catch (e) {
          if (want.natPools.length) throw e;
          nat.lastError = (e as Error).message;
          natLog.warn(`nat: ${nat.lastError} (no pool has natOutgoing now)`);
        }
      }
      // The IPv6 table from the first IPv6 pool (the kernel transit drop) or, with
      // --no-kernel-transit-drop, from the first IPv6 pool with natOutgoing on; then kept and
      // updated like IPv4's until the stop. Its NAT chains come with the first IPv6 pool with
      // natOutgoing (a node without one never loads the kernel's IPv6 NAT nor conntrack) and stay.
      if (nat6.active && !together) return nat6.update(want6);
      if (!nat6.active && !want6.natChains && !want6.kernelTransitDrop && !want6.hostPortChains) {
        // once, at the first model: a crashed run's table would go on masquerading
        if (!leftover6Checked && nat6.removeLeftoverListed(startNftTables)) natLog.info('nat: removed the table ip6 podway a previous run left (no IPv6 pool has natOutgoing)');
        leftover6Checked = true;
        return;
      }
      if (!nat6.active) {
        try {
          nat6.start(want6);
        } catch (e) {
          if (want6.natChains) throw e;
          // the transit drop (and IPv6 host ports) alone: a kernel or nft refusing it costs forwarding nothing
          nat6.lastError = (e as Error).message;
          natLog.warn(`nat: ${nat6.lastError} (table ip6 podway for the IPv6 kernel transit drop${want6.hostPortChains ? ' and IPv6 host ports, which do not work without it' : ''}; no IPv6 pool has natOutgoing now)`);
          return;
        }
      }
      natLog.info(`nat: table ip6 podway created; ${want6.natChains ? 'natOutgoing from ' + want6.natPools.join(', ') + ', ports ' + natPorts[0] + '-' + natPorts[1] : 'no IPv6 pool has natOutgoing'}${want6.kernelTransitDrop ? '; IPv6 kernel transit drop' : ''}${want6.hostPortChains ? '; IPv6 host ports' : ''}`);
    };
    const pollMs = opts.autodetectPollMs ?? DEFAULT_AUTODETECT_POLL_MS;
    const source4 = addressSource(opts.ip);
    const addressAdvice = spec.kind === 'file'
      ? `it is its Node's spec.bgp.ipv4Address in ${spec.path} (a file: datastore, which podway never writes): edit it there to the new address, the dataplane follows`
      : source4 === 'manual'
        ? 'it was given with --ip (or IP), which podway never changes (as Calico): restart podway with the new --ip, or without it to autodetect'
        : pollMs === 0
          ? 're-detection is off (--autodetect-poll-interval 0): restart podway to register the new address'
          : `it was autodetected: podway looks again every ${pollMs / 1000} s and registers the new address in its Node; the dataplane follows`;
    const source6Early = addressSource(opts.ip6);
    const addressAdvice6 = spec.kind === 'file'
      ? `it is its Node's spec.bgp.ipv6Address in ${spec.path} (a file: datastore, which podway never writes): edit it there (or add the address back), the dataplane follows`
      : source6Early === 'manual'
        ? 'it was given with --ip6 (or IP6), which podway never changes (as Calico): add it back, or restart podway with the new --ip6, or without it to autodetect'
        : pollMs === 0
          ? 're-detection is off (--autodetect-poll-interval 0): add it back, or restart podway to register the new address'
          : `podway looks again every ${pollMs / 1000} s and registers a new IPv6 address found on the node in its Node (with none found, the Node keeps this one): add it back, or add the new one`;
    if (opts.schedSliceUs !== undefined) {
      const r = applySchedSlice(opts.schedSliceUs);
      if ('error' in r) log.warn(`--sched-slice-us: not set on the main forwarding thread: ${r.error}`);
      else log.info(`forwarding thread scheduler slice ${r.sliceUs} µs`, { worker: 0, sliceUs: r.sliceUs });
    }
    /** An underlay neighbour's MAC learned (the engine's onNeighbor/onNeighbor6): the start's wait
     * for them (startNeighborWait) looks again at once. */
    let neighborNews: () => void = () => {};
    // The engine's onUnderlayRoutes, once the apply loop (applyLatest) is there: a notice before it is
    // not lost, the first apply reads the kernel routes itself.
    let onUnderlayRoutes: () => void = () => {};
    // Orphan pod addresses (a pod interface holding an address no endpoint names) held in IPAM as
    // soon as the engine finds them (orphan-holds.ts): on the datastores with IPAM, not a file:.
    let orphanHolder: import('./orphan-holds').OrphanHolder | null = null;
    const eng = new Engine({
      addressAdvice, addressAdvice6,
      batch: opts.batch, ringVersion: opts.ringVersion, underlayRingMb: opts.underlayRingMb, qdiscBypass: opts.qdiscBypass, gro: opts.gro, txGso: opts.txGso, txSocket: opts.txSocket, backpressure: opts.backpressure, rxSuper: opts.rxSuper, rxMerge: opts.rxMerge, scatterRx: opts.scatterRx, podSuper: opts.podSuper, neighbor: opts.neighbor, neighborQueue: opts.neighborQueue, log,
      worker: { index: 0, count }, workerSteer: opts.workerSteer,
      natToNodes, allowVxlanFromPods: felix.settings.allowVxlanFromPods, allowIpipFromPods: felix.settings.allowIpipFromPods,
      vxlanPort: vxlanWire.vxlanPort, vxlanVni: vxlanWire.vxlanVNI,
      // the kernel's ephemeral ports (read once above, for natOutgoing's range too) for VXLAN's
      // outer source ports, on this thread and every worker, not read again by each
      vxlanSourcePorts: ephemeral,
      // the underlay's forwarding value from before podway, beside the control socket
      // (/run/podway: gone at reboot, as the value the kernel holds)
      forwardingRecordFile: (ifname) => path.join(path.dirname(sock), `${opts.node}.${ifname}.forwarding`),
      onNeighbor: (ip, mac, announced) => { for (const w of workers) w.postMessage({ type: 'neighbor', ip, mac: [...mac], announced }); neighborNews(); },
      onNeighbor6: (ip6, mac, announced) => { for (const w of workers) w.postMessage({ type: 'neighbor6', ip6, mac: [...mac], announced }); neighborNews(); },
      // a refused tunnel table installed on the retry timer: the workers' ports follow with the model
      onTunnelRx: (rx) => { if (current && JSON.stringify(rx) !== toldTunnels) broadcastModel(current); },
      // a TAP pod is read here alone, and a veth pod's ARP comes here: the other workers learn its MAC from us
      onPodMac: (ifname, mac) => { for (const w of workers) w.postMessage({ type: 'pod-mac', ifname, mac: [...mac] }); },
      onSharedOpen: (ifname) => { for (const w of workers) w.postMessage({ type: 'shared-open', ifname }); },
      // the node's own addresses changed (local-addrs.ts): every forwarding thread leaves them to the kernel
      onLocalAddresses: (local) => { for (const w of workers) w.postMessage({ type: 'local-addresses', local }); },
      // the underlay's MTU changed (`ip monitor`, refusals, the 5 s check): every forwarding thread
      // bounds its routes by it and answers its refused frames now, not from its own refusals
      onUnderlayMtu: (mtu, why) => { for (const w of workers) w.postMessage({ type: 'underlay-mtu', mtu, why }); },
      // a kernel route towards another node came or went (a BGP-learned /32 via a ToR once the
      // host programmer wrote it, one added by hand): set once the apply loop below exists
      onUnderlayRoutes: () => onUnderlayRoutes(),
      onOrphans: () => orphanHolder?.kick(),
      // its looks for them one at a time with the deferred DEL replay's entries (upkeep.ts)
      ...(upkeep ? { orphanLooks: upkeep.serial } : {}),
      // the start's orphan scan once podway forwards (below): its forks hold this thread
      deferOrphanScan: true,
    });
    engine = eng;
    // The tables' live updates and counters run their nft through the engine's spawner helper:
    // a fork of this process would hold the forwarding thread (NftNat.useSpawner).
    for (const t of [nat, nat6, guard]) t.useSpawner(eng.spawnFn);
    // A failed start from here: the workers ended, the engine stopped (its pod routes, the host
    // port, the tunnel table), the nftables tables deleted, then the underlay's forwarding set back
    // once nothing of podway forwards (transit-drop tables gone, workers ended).
    startMade('the engine, its workers and the nftables tables', async () => {
      workersEnding = true; // not started again
      const workersGone = Promise.all(workers.map((w) => w.terminate().catch(() => undefined)));
      eng.stop({ restoreForwarding: false });
      await nat.stop();
      await nat6.stop();
      await guard.stop();
      await workersGone;
      eng.restoreForwarding();
    });
    if (spec.kind !== 'file') {
      const { OrphanHolder } = require('./orphan-holds') as typeof import('./orphan-holds');
      const { DEFAULT_IPAM_LOCK_FILE } = require('../cni/config') as typeof import('../cni/config');
      const locks = cniIpamLockFiles(cniConfDir, opts.node, DEFAULT_IPAM_LOCK_FILE);
      orphanHolder = new OrphanHolder(opts.node, spec, locks, { list: () => eng.orphanList(), scanComplete: () => eng.orphanScanComplete(), checkDevices: () => eng.checkPodDevices() }, { info: (m) => dsLog.info(m), warn: (m) => dsLog.warn(m) }, opts.orphanHoldIntervalMs, upkeep ?? undefined);
      orphanHolder.start();
      const holder = orphanHolder;
      startMade('the orphan address holds', () => holder.stop());
    }
    const broadcast = (msg: object) => { for (const w of workers) w.postMessage(msg); };
    // Where the workers were last told tunnels are read (worker-model.ts): a rejected model may
    // still have moved the main engine's (applyLatest).
    let toldTunnels = JSON.stringify(eng.tunnelRx());
    const broadcastModel = (model: NodeDataplaneModel) => {
      const msg = workerModelMessage(eng, model, kernelRoutes);
      toldTunnels = JSON.stringify(msg.tunnels);
      broadcast(msg);
    };
    health.setEngines(async () => {
      const others = await workerStates();
      return [eng.readiness(), ...others.map((o, k) => o?.readiness ?? { problems: [workerDeaths.downReason(k + 1) ?? `worker ${k + 1} does not answer`], waiting: [] })];
    });
    // Forwarding threads that die are started again; too many deaths and podway stops (exit 1).
    const workerRestartTimers = new Set<NodeJS.Timeout>();
    /** Set once podway stops: no model applied after, no forwarding thread started again. */
    let stopping = false;
    startMade('the forwarding threads\' restarts', () => { for (const t of workerRestartTimers) clearTimeout(t); });
    // (No timer here reads the threads' counts: each thread sends its own from its tick when they
    // changed and nobody read them for 10 s: dataplane/worker.ts COUNTS_REFRESH_MS.)
    // A worker late to answer: its last known counts (mergeCounters names it: lateWorkers); null
    // for one that never answered (missingWorkers)
    const workerCounters = () => askWorkers<Counters>('counters', (m) => m.counters as Counters).then((all) => {
      const { answers, late } = withLastKnown(all, lastCountersOf);
      missingLog.note('counters', missingWorkers(answers), late);
      return answers;
    });
    // Trace and capture run in every forwarding thread.
    const taps = new Taps(eng, () => workers.map((w) => ({ post: (m: object, transfer?: ArrayBuffer[]) => w.postMessage(m, transfer) })));
    const server = control.server;
    // The kernel's main table for the underlay next hops (kernel-routes.ts): a failed read keeps
    // the last good table, is said and tried again through the apply loop (onUnderlayRoutes).
    const routeTable = new KernelRoutes(() => eng.readKernelRoutes(), {
      error: (m) => log.error(m, { component: 'host' }),
      info: (m) => log.info(m, { component: 'host' }),
      retry: () => (current ? onUnderlayRoutes() : void routeTable.refresh()),
    });
    // (prom-client only with --metrics-port: loaded here, as the other collectors)
    if (metrics) metrics.add(new (require('../observe/kernel-routes-metrics') as typeof import('../observe/kernel-routes-metrics')).KernelRoutesCollector(() => routeTable.status()));
    const extras = {
      retired: (merged: Counters) => void retired.addToCounters(merged),
      nat,
      nat6,
      guard,
      taps,
      bgpStatus,
      cniPendingDel: replayer ? () => replayer.status() : undefined,
      kernelDrops: async () => {
        await tunnelDrops.refresh();
        return { vxlan_old_port: tunnelDrops.vxlanOldPort.packets };
      },
      // the tables' counters: a table podway holds but could not read is null, named in nftNotRead with why
      nftCounters: async () => {
        const snap = await nftCounters.get();
        const of = (t: NftNat) => {
          const c = snap.tables.get(tableKey(t.table));
          return c ? natCountersOf(c) : null;
        };
        return { nat: of(nat), nat6: of(nat6), guard: of(guard), nftAgeMs: Math.round(nftCounters.ageMs(snap)), ...(snap.missing.size ? { nftNotRead: Object.fromEntries(snap.missing) } : {}) };
      },
      status: async () => {
        const r = await health.report();
        // first: applied at once at start (same boot), not for an unreachable datastore
        // On the cache: which, how old (what was applied last is forwarded on, whatever its age),
        // and whether its Node was compared with the datastore's yet (model-cache.ts notSameNode:
        // while the datastore does not answer nothing can tell a deleted Node's cache).
        const cachedModel = onCache ? {
          file: cacheFile,
          appliedAt: onCache.appliedAt.toISOString(),
          ageSeconds: Math.max(0, Math.floor((Date.now() - onCache.appliedAt.getTime()) / 1000)),
          first: cacheFirst,
          nodeCheck: nodeVerdict === undefined ? 'not compared yet' : nodeVerdict === null ? 'same Node' : 'withdrawn',
          ...(nodeVerdict ? { notThisNode: nodeVerdict } : {}),
        } : null;
        // endpoints whose interface has been missing for long: named with the cleanup (not done here)
        const staleEps = staleEndpoints(eng.waitingEndpoints(), Date.now(), opts.staleEndpointMs ?? DEFAULT_STALE_ENDPOINT_MS);
        return { version: buildVersion(), uptimeSeconds: uptimeSeconds(), ready: r.ready, notReady: r.reasons, readiness: r.checks, datastoreNotInSyncSince: r.datastoreNotInSyncSince, datastoreLastSync: r.datastoreLastSync, modelCache: modelCacheWrites(), waiting: r.waiting, staleEndpoints: staleEps, cachedModel, cniPendingDel: replayer?.status() ?? null, modelThread: source?.threadStatus() ?? null, reRegistrationFailing: registration?.status() ?? null, logLevel: log.level, logLinesDropped: (withLogLinesDropped(mergeSnapshots(withLastKnown((await workerStates()).map((w) => w?.snapshot ?? null), lastSnapshotOf).answers.flatMap((s) => (s ? [s] : [])))).logLinesDropped ?? 0) + retired.logLinesDropped, metricsPort: opts.metricsPort ?? null, datastoreSource: specText, clusterGuid, datastoreLocked, datastoreRejected, etcdFences: fences?.lib.fenceTotals() ?? null, nodeLiveness: nodeAddresses?.liveStatus() ?? null, cniConfMismatch: cniConf(), felix: felix.status(), kernelRoutes: routeTable.status(), unenforcedPolicies: policies, forwardingThreads: count > 1 ? workerDeaths.status(count) : null };
      },
      commands: {
        'log-level': (req) => {
          if (req.level !== undefined) {
            const level = parseLogLevel(String(req.level), 'log-level');
            const was = log.level;
            log.level = level;
            broadcast({ type: 'log-level', level });
            log.warn(`log level ${was} -> ${level}`, { level, was });
          }
          return { level: log.level };
        },
      },
    } satisfies ControlExtras;
    let kernelRoutes: KernelRoute[] = [];
    let lastGateways = '';
    const applyTimed = (model: NodeDataplaneModel, routes: KernelRoute[]) => {
      const t0 = performance.now();
      eng.apply(model, routes);
      nodeMetrics?.applied((performance.now() - t0) / 1000);
      health.setTunnelGaps(tunnelAddressGaps(model));
      // a tunnel MTU set above what the underlay takes: applied, warned once while it lasts
      const inUse = { vxlan: model.encap.vxlan, ipip: model.encap.ipip, vxlan6: model.v6.vxlan };
      for (const w of felix.setMtuWarnings(tunnelMtuWarnings(model.mtu.underlay, { vxlan: model.mtu.vxlan, ipip: model.mtu.ipip, vxlan6: model.v6.vxlanMtu }, inUse, model.node.ip === null))) felixLog.warn(w);
    };
    // The engine refused the cached model itself (not nft missing, not a worker failing): only then
    // is the cache set aside.
    let cachedRefused = false;
    /** The first apply used the kernel routes read while the datastore was awaited (read again after). */
    let startRoutesReused = false;
    try {
      const model = first;
      // Synchronously at start: the control socket answers for the engine only once the first
      // model is in force (until then `status` says podway is starting).
      const reads = await hostReads;
      const readsAge = performance.now() - reads.at;
      startRoutesReused = readsAge <= START_READS_MAX_AGE_MS;
      if (startRoutesReused) {
        if (reads.kernelRoutes instanceof Error) routeTable.fail(reads.kernelRoutes);
        else routeTable.accept(reads.kernelRoutes);
        kernelRoutes = routeTable.current();
        startNftTables = reads.nftTables;
        eng.useStartReads(reads);
      } else {
        try {
          routeTable.accept(readKernelRoutesSync());
        } catch (e) {
          routeTable.fail(e as Error);
        }
        kernelRoutes = routeTable.current();
      }
      clock.mark('host prepared', `the engine made; the host read ${readsAge <= START_READS_MAX_AGE_MS ? `${Math.round(readsAge)} ms before, while the datastore was awaited` : 'again (the reads made while the datastore was awaited were too old)'}`);
      try {
        applyTimed(model, kernelRoutes);
      } catch (e) {
        cachedRefused = onCache !== null;
        throw e;
      }
      // The model thread's speaker follows the first model once it is applied (model-worker.ts);
      // on the cache, the cache's BGP settings.
      if (source && firstGen !== undefined) source.modelApplied(firstGen, true);
      cacheApplied = onCache !== null;
      startCachedSpeaker();
      if (source) cacheWriter?.applied(model, new Date(), firstInputs);
      lastGateways = gatewaysKey(model, kernelRoutes);
      clock.mark('model applied');
      // After the host port exists: the table's reply rule names it.
      syncNat(model);
      clock.mark('nat tables');
      control.attach(eng, workerCounters, extras);
      // Workers 1..count-1 after the main engine: it set up the host and holds the first sockets.
      // A worker that ends while podway runs is started again (its ports, its share of the flows)
      // after a wait; too many deaths and podway exits 1 (worker-deaths.ts).
      const startWorker = (index: number, restart: boolean) => {
        const w = new Worker(path.resolve(__dirname, '..', 'dataplane', 'worker.js'), {
          // the Felix settings and the log level in force now (a new thread after a death)
          workerData: { index, count, node: opts.node, batch: opts.batch, ringVersion: opts.ringVersion, underlayRingMb: opts.underlayRingMb, qdiscBypass: opts.qdiscBypass, gro: opts.gro, txGso: opts.txGso, txSocket: opts.txSocket, backpressure: opts.backpressure, rxSuper: opts.rxSuper, rxMerge: opts.rxMerge, scatterRx: opts.scatterRx, podSuper: opts.podSuper, neighbor: opts.neighbor, neighborQueue: opts.neighborQueue, workerSteer: opts.workerSteer, schedSliceUs: opts.schedSliceUs, natToNodes, vxlanSourcePorts: ephemeral, vxlanPort: vxlanWire.vxlanPort, vxlanVni: vxlanWire.vxlanVNI, allowVxlanFromPods: felix.settings.allowVxlanFromPods, allowIpipFromPods: felix.settings.allowIpipFromPods, logLevel: log.level },
        });
        // Its last known counts (an answer to a scrape or `podway counters`, those it sends from
        // its tick when unread for 10 s, or from its 'exit' as it dies): standing in for it while
        // it is late to answer, carried into the sums when it dies. A new thread starts unknown.
        lastCountersOf[index - 1] = null;
        lastSnapshotOf[index - 1] = null;
        w.on('message', (m: { type: string; id?: number; ip?: number; ip6?: string; mac?: number[]; announced?: boolean; message?: string; why?: string; n?: number; counters?: Counters; snapshot?: DataplaneSnapshot }) => {
          if (taps.handle(index, m)) return;
          if (workers[index - 1] === w) {
            if (m.counters) lastCountersOf[index - 1] = m.counters;
            if (m.snapshot) lastSnapshotOf[index - 1] = m.snapshot;
          }
          if (m.type === 'neighbor') {
            eng.learnShared(m.ip!, Uint8Array.from(m.mac!), m.announced === true);
            for (const o of workers) if (o !== w) o.postMessage(m);
          } else if (m.type === 'neighbor6') {
            eng.learnShared6(m.ip6!, Uint8Array.from(m.mac!), m.announced === true);
            for (const o of workers) if (o !== w) o.postMessage(m);
          } else if (m.type === 'underlay-mtu') {
            // a worker saw it first (its frames refused as too big): read here, and if it changed
            // here too, every worker is told (onUnderlayMtu above)
            eng.underlayMtuNews(`worker ${index}: ${m.why}`);
          } else if (m.type === 'resolve') {
            // its packets wait for an underlay neighbour: this thread probes it (one resolver for all),
            // or, known here already (shared before this worker started), tells it at once
            const mac = eng.resolveShared(m.ip!);
            if (mac) w.postMessage({ type: 'neighbor', ip: m.ip, mac: [...mac], announced: false });
          } else if (m.type === 'resolve6') {
            const mac = eng.resolveShared6(m.ip6!);
            if (mac) w.postMessage({ type: 'neighbor6', ip6: m.ip6, mac: [...mac], announced: false });
          } else if (m.type === 'too-big-answered') {
            eng.addTooBigAnswered(m.n!);
          } else if (m.type === 'last-counts' || m.type === 'counts') {
            // (kept above: the thread is ending, or its tick sent them unasked)
          } else if (m.type === 'counters' || m.type === 'snapshot') {
            pending.get(m.id!)?.answer(m);
            pending.delete(m.id!);
          } else if (m.type === 'error') log.error(`worker ${index}: ${m.message}`, { worker: index });
        });
        // The uncaught exception (or ERR_WORKER_OUT_OF_MEMORY) comes here before 'exit'.
        let failure = '';
        w.on('error', (e) => {
          failure = `${(e as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'out of memory' : 'uncaught exception'}: ${e.message}`;
          log.error(`worker ${index} failed: ${e.message}`, { worker: index, stack: e.stack });
        });
        w.on('exit', (code) => {
          if (workersEnding || stopping || workers[index - 1] !== w) return; // a stop ends them all
          const why = failure || `exited with code ${code}`;
          // what it counted stays in every sum: the new thread's counts are added to it
          retired.retire(index, lastCountersOf[index - 1], lastSnapshotOf[index - 1]);
          lastCountersOf[index - 1] = null;
          lastSnapshotOf[index - 1] = null;
          // its questions unanswered: nobody waits for them (readiness names it at once)
          for (const [id, q] of pending) {
            if (q.worker !== index) continue;
            pending.delete(id);
            q.none();
          }
          const verdict = workerDeaths.died(index, why);
          if (verdict.action === 'give-up') {
            log.error(verdict.message, { worker: index, deaths: verdict.deathsInWindow });
            giveUp(verdict.message);
            return;
          }
          log.error(`worker ${index} died (${why}): its share of the flows is not forwarded until a new thread starts in ${verdict.waitMs} ms (death ${verdict.deathsInWindow} within ${WORKER_DEATHS.windowMs / 1000} s; at ${WORKER_DEATHS.max} podway exits 1)`, { worker: index, deaths: verdict.deathsInWindow, waitMs: verdict.waitMs });
          const t = setTimeout(() => {
            workerRestartTimers.delete(t);
            if (workersEnding || stopping) return;
            startWorker(index, true);
            workerDeaths.restarted(index);
            log.warn(`worker ${index} started again (restart ${workerDeaths.restarts}): it opens its ports with the model in force`, { worker: index, restarts: workerDeaths.restarts });
          }, verdict.waitMs);
          workerRestartTimers.add(t);
        });
        // where tunnels are read comes with every model (worker-model.ts), this first one included
        w.postMessage(workerModelMessage(eng, current ?? model, kernelRoutes));
        // TAP and veth pods' MACs learned before this worker existed
        for (const m of eng.podMacs()) w.postMessage({ type: 'pod-mac', ...m });
        // (rp_filter and the underlay's MTU: a new engine reads them itself)
        if (restart) {
          workers[index - 1] = w;
        } else {
          toldTunnels = JSON.stringify(eng.tunnelRx());
          workers.push(w);
        }
      };
      for (let index = 1; index < count; index++) startWorker(index, false);
      if (count > 1 || opts.workersAuto) log.info(`${count} forwarding worker${count > 1 ? 's' : ''}${opts.workersAuto ? ` (--workers auto: ${availableParallelism()} CPUs, at most ${WORKERS_AUTO_MAX})` : ''}`, { workers: count });
    } catch (e) {
      // The engine, the workers, the tables and the model threads are undone with the rest of the
      // start (startMade steps, runNode's catch).
      // A cached model this host cannot take (its address gone, say) would stop every restart the
      // same way: it is set aside, and the next start waits for the datastore as without a cache.
      if (cachedRefused && cacheFile) {
        const aside = `${cacheFile}.bad`;
        try {
          renameSync(cacheFile, aside);
          log.error(`the cached model could not be applied (${(e as Error).message}): ${cacheFile} moved to ${aside}; the next start waits for the datastore`);
        } catch (re) {
          log.error(`the cached model could not be applied (${(e as Error).message}), nor ${cacheFile} be moved aside: ${(re as Error).message}`);
        }
      }
      throw e;
    }
    for (const n of eng.notes) log.info(`host: set ${n}`, { component: 'host' });
    // The node's rp_filter (net.ipv4.conf all/default, which podway's decapsulation follows as a
    // Calico node's tunnel devices would: rp-filter.ts) read again every RP_FILTER_CHECK_MS (two
    // small /proc reads): a change is in force on every forwarding thread at once and said; an
    // unreadable value is said once, the value in force kept.
    let rpFilterError = '';
    const rpFilterTimer = setInterval(() => {
      let change: ReturnType<Engine['rereadRpFilter']>;
      try {
        change = eng.rereadRpFilter();
      } catch (e) {
        const m = (e as Error).message;
        if (m !== rpFilterError) log.error(`rp_filter: ${m}: rp_filter ${eng.pipe.rpFilter} kept for decapsulated packets`, { component: 'host' });
        rpFilterError = m;
        return;
      }
      rpFilterError = '';
      if (!change) return;
      broadcast({ type: 'rp-filter', value: change.now });
      log.warn(`rp_filter ${change.was} -> ${change.now} (net.ipv4.conf.all/default.rp_filter changed, the larger of the two taken): decapsulated IPv4 filtered ${RP_FILTER_WORDS[change.now] ?? '?'} from now on`, { component: 'host', rpFilter: change.now, was: change.was });
    }, RP_FILTER_CHECK_MS);
    rpFilterTimer.unref();
    startMade('the kernel route and rp_filter reads', () => {
      routeTable.stop();
      clearInterval(rpFilterTimer);
    });
    // Models are applied one at a time, the newest winning, whole between two batches; then the
    // kernel's routes are read asynchronously (no `ip` call blocks the forwarding thread) and the
    // model is applied again only if a node's underlay next hop moved.
    // `what`: what brought it, for the log ("datastore change", "BGP routes changed", what a
    // datastore change did to the speaker), merged when models coalesce.
    /** gen: the model thread's number for the model, answered once applied or refused (its BGP
     * speaker follows only models the engine applied). */
    /** felixOnlyOf: the model thread's word that this model differs from model felixOnlyOf in its
     * FelixConfigurations alone (model-worker.ts forwardingKey). */
    let latest: { model: NodeDataplaneModel | null; ms: number; what: string[]; gen?: number; felixOnlyOf?: number; bgpInputs?: BgpInputs } | null = null;
    /** The model thread's number of the model in force in the engine (undefined: the cache's, or
     * one withdrawn from it): a model that differs from it in its FelixConfigurations alone has its
     * settings applied, not the whole model again (applySettingsOnly). */
    let appliedGen: number | undefined = source ? firstGen : undefined;
    /** On the cached model, from `forwarding` until the datastore's model is applied: the event
     * loop's delay, whose max is how long the forwarding thread was held meanwhile. */
    let startHolds: IntervalHistogram | null = null;
    let applying = false;
    // The tunnel addresses (VXLAN, IPIP) reconciled again when a model says they are stale (tunnel-join.ts).
    // The registered address, not a new first-found: following it is the address monitor's.
    const tunnelJoin = spec.kind === 'file' ? null : new TunnelAddressJoin(
      () => joinSerial(() => joinInThread(spec, { node: opts.node, ...joinHooks, ip: opts.ip === 'autodetect' ? undefined : opts.ip, ip6: opts.ip6 === 'autodetect' ? undefined : opts.ip6, onIpam, signal: abortStart.signal }, say)),
      (e) => {
        if (stopping) return; // aborted by the stop
        nodeMetrics?.ipamEvent('tunnel_address_failed');
        dsLog.error(`cannot reconcile the tunnel addresses: ${e.message}`);
      },
    );
    /** `what`: what brought the model (the log line's head, then what it did to BGP). */
    /** A model's FelixConfigurations in force before it is applied: the settings that changed are
     * set on every forwarding thread (the pod guard and NAT tables follow with syncNat, the next
     * hops with the apply), each change said. */
    const applyFelix = (model: NodeDataplaneModel): FelixChange[] => {
      const changes = resolveFelixOf(model, source && model !== onCache?.model ? 'datastore' : 'model cache');
      if (changes.length === 0) return changes;
      const s = felix.settings;
      // the level first: its change is said at the new level (silent when that is above warn)
      if (s.logLevel !== log.level) {
        log.level = s.logLevel;
        broadcast({ type: 'log-level', level: s.logLevel });
      }
      for (const c of changes) felixLog.warn(`${c.field} ${c.was} -> ${c.now} (from ${c.source}): applied live`, { field: c.field });
      endpointToHost = s.endpointToHost;
      natExclusions = s.natOutgoingExclusions;
      natToNodes = natExclusions === 'IPPoolsOnly';
      const options = { natToNodes, allowVxlanFromPods: s.allowVxlanFromPods, allowIpipFromPods: s.allowIpipFromPods };
      eng.setFelixOptions(options);
      broadcast({ type: 'felix-options', options });
      return changes;
    };
    const applyModel = (model: NodeDataplaneModel, why: string, what: readonly string[] = ['datastore change'], bgpInputs?: BgpInputs) => {
      const t0 = performance.now();
      applyFelix(model);
      applyTimed(model, kernelRoutes);
      current = model;
      // The datastore's first model in force: only now is the cache left (in sync, status no longer
      // names it); one the engine refuses leaves the node forwarding on the cache, not ready. (The
      // cached model itself applied again, its next hops moved, leaves nothing.)
      if (source && onCache && model !== onCache.model) {
        const was = onCache;
        onCache = null;
        health.setDatastore(true);
        // How long the forwarding thread was held at most since it said it forwards (event loop
        // delay, sampled every 10 ms): the datastore's start must not hold it (bench/README.md,
        // "The gap of a restart").
        const held = startHolds === null ? null : Math.round(startHolds.max / 1e6);
        startHolds?.disable();
        startHolds = null;
        dsLog.info(`datastore ${specText} answers: its model replaces the cached one from ${was.appliedAt.toISOString()}${held === null ? '' : `; the forwarding thread held at most ${held} ms since forwarding`}`, held === null ? {} : { heldMaxMs: held });
      }
      const [head = 'datastore change', ...rest] = what;
      const size = head === 'BGP route change' ? `${model.routes.length} routes` : `${model.endpoints.length} endpoints`;
      dsLog.info(`${head} applied: ${size} (${why}, apply ${(performance.now() - t0).toFixed(1)} ms)${rest.length ? `; ${rest.join('; ')}` : ''}`);
      try {
        syncNat(model);
      } catch (e) {
        natLog.error(`nat: ${(e as Error).message}: this node's pods leave unNATed until it is fixed`);
      }
      // On the cached model the datastore is away: the tunnel addresses are reconciled (the start's
      // registration) once it answers.
      if (!stopping && source) tunnelJoin?.applied(model);
      // Only the datastore's models: the cached one is on disk already. With them (in the same
      // write, never the old model with the new settings) the BGP settings of their snapshot (the
      // speaker follows it now).
      if (source) cacheWriter?.applied(model, new Date(), bgpInputs);
      lastGateways = gatewaysKey(model, kernelRoutes);
      broadcastModel(model);
    };
    /** A model whose FelixConfigurations alone differ from the one in force: its settings applied
     * (applyFelix; the pod guard and NAT tables with syncNat), the engine's model left as it is; it
     * is in force from now on (the model cache writes it, with its FelixConfigurations). A change
     * of natOutgoingExclusions applies the model whole (the next hops' NAT flags are computed with
     * it: Engine.setFelixOptions). */
    const applySettingsOnly = (model: NodeDataplaneModel, why: string, what: readonly string[], bgpInputs?: BgpInputs) => {
      const t0 = performance.now();
      if (applyFelix(model).some((c) => c.key === 'natOutgoingExclusions')) return applyModel(model, `${why}; natOutgoingExclusions changed: the next hops' NAT flags follow with the model`, what, bgpInputs);
      current = model;
      const [head = 'datastore change', ...rest] = what;
      dsLog.info(`${head} applied: FelixConfiguration settings only, the forwarding model unchanged (${why}, apply ${(performance.now() - t0).toFixed(1)} ms)${rest.length ? `; ${rest.join('; ')}` : ''}`);
      try {
        syncNat(model);
      } catch (e) {
        natLog.error(`nat: ${(e as Error).message}: this node's pods leave unNATed until it is fixed`);
      }
      if (source) cacheWriter?.applied(model, new Date(), bgpInputs);
    };
    const applyLatest = async () => {
      if (applying || stopping) return;
      applying = true;
      try {
        while (latest) {
          const { model: changed, ms, what, gen, felixOnlyOf, bgpInputs } = latest;
          latest = null;
          /** The model thread has not been told about model gen yet. */
          let answer = changed !== null && gen !== undefined;
          try {
            const model = changed ?? current!;
            // A changed model goes in at once on the kernel routes already read: a new pod or a
            // new node needs no new underlay route, and reading them (an `ip` process) took 5-85
            // ms of the 100 ms watch-to-forwarding budget (bench/watch). They are read right
            // after, and a next hop that moved applies the model again.
            const said = what.length ? what.join('; ') : 'datastore change';
            // Its FelixConfigurations alone changed from the model in force: the settings applied,
            // the model not again (nor the kernel routes read, unless they changed too).
            const settingsOnly = changed !== null && felixOnlyOf !== undefined && felixOnlyOf === appliedGen && current !== null && !onCache;
            if (settingsOnly) applySettingsOnly(model, `model thread ${ms} ms`, what, bgpInputs);
            else if (changed) applyModel(model, `model thread ${ms} ms`, what, bgpInputs);
            if (changed) appliedGen = gen;
            if (answer) source?.modelApplied(gen!, true);
            answer = false;
            if (settingsOnly && !what.includes(KERNEL_ROUTE_CHANGE)) continue;
            const tRoutes = performance.now();
            kernelRoutes = await routeTable.refresh(); // the last good table when the read fails (said, retried)
            if (stopping) return;
            if (gatewaysKey(model, kernelRoutes) === lastGateways) {
              // A BGP route change that leaves the model as it was is not news (a peer's route
              // that loses to a better one), nor a kernel route change that moved no underlay next
              // hop; a datastore change is, with what it did to BGP.
              if (!changed && !what.every((w) => w === 'BGP route change' || w === KERNEL_ROUTE_CHANGE)) dsLog.info(`${said}: this node's forwarding model is unchanged (${ms} ms in the model thread)`, { ms });
              continue;
            }
            applyModel(model, `kernel routes read in ${(performance.now() - tRoutes).toFixed(1)} ms`, ['underlay next hops changed']);
          } catch (e) {
            nodeMetrics?.applyFailed();
            log.error(`update rejected, keeping the last good state: ${(e as Error).message}`);
            if (answer) source?.modelApplied(gen!, false, (e as Error).message);
            if (onCache) health.setDatastore(false, `the datastore's model was refused (${(e as Error).message}): forwarding on the cached model from ${onCache.appliedAt.toISOString()}`);
            // The main engine may have moved its tunnels before the model was rejected (a table it
            // could not put back, a step failing after the new address was followed): the workers
            // get where it reads them now with the last good model, or they would read tunnel
            // packets twice or never.
            if (current && JSON.stringify(eng.tunnelRx()) !== toldTunnels) broadcastModel(current);
          }
        }
      } finally {
        applying = false;
      }
    };
    // A kernel route towards another node came or went (engine.ts onUnderlayRoutes; also its slow
    // safety re-read): the routes are read again through the apply loop, after any model on its way
    // (the loop's read right after an apply can precede the host programmer's writing of a learned
    // route: this one follows it), and the model applied again if an underlay next hop moved. The
    // kernel resolves a next hop per packet; podway's tunnel MACs follow its routes this way.
    onUnderlayRoutes = () => {
      if (stopping || !current) return;
      const what = [...new Set([...(latest?.what ?? []), KERNEL_ROUTE_CHANGE])];
      latest = latest ? { ...latest, what } : { model: null, ms: 0, what };
      void applyLatest();
    };
    // The datastore was replaced under us (etcd wiped or rebuilt at the same URL, restored from a
    // snapshot): our Node, tunnel addresses and the ready mark may be gone or old. The start-up
    // registration again, with the addresses in force (the new store's Node, if any, may hold an
    // older one); one at a time, again once more if another replacement came meanwhile. It waits
    // (with backoff) while the store is unreachable, as at start.
    // Failures other than an unreachable store (which joinCluster waits out) are tried again with
    // backoff (re-register.ts).
    const registration = spec.kind === 'file' ? null : new ReRegistration(opts.node, () => {
      const inForce = current;
      const ip = opts.ip ?? (inForce ? ipv4Text(inForce) ?? 'none' : undefined);
      const ip6 = opts.ip6 ?? (inForce ? ipv6Text(inForce) ?? 'none' : undefined);
      // On etcd the node's liveness key is claimed again before the Node is written (join.ts):
      // absent in a wiped etcd; refused (tried again with backoff, the Node left as it is) while
      // another host's podway holds it there.
      const claim = liveRecord && onLiveClaimed ? { live: { ...liveRecord, addresses: registeredAddresses }, onLiveClaimed } : {};
      return joinSerial(() => joinInThread(spec, { node: opts.node, ...joinHooks, ip, ip6, onIpam, ...claim, warn: (w) => dsLog.warn(w), signal: abortStart.signal }, say));
    }, { info: (m) => dsLog.info(m), error: (m) => dsLog.error(m) });
    const reRegister = (why: string): void => {
      if (!stopping) registration?.request(why);
    };
    // The model thread's word on sync; on the cache (the datastore's model not applied yet, or
    // refused) never "in sync": applyModel says so once one of its models is in force.
    const storeSync = (inSync: boolean, why: string) => {
      if (!onCache) health.setDatastore(inSync, why);
      else if (!inSync) datastoreDown(why);
    };
    const onModelMessage = (m: ModelMessage) => {
      if (stopping) return;
      handleModelMessage(m);
      // The datastore answers again after being away: deferred CNI DELs can be replayed now.
      const inSync = health.datastoreInSync;
      if (inSync && !replayInSync) replayer?.kick('the datastore answers again');
      replayInSync = inSync;
    };
    const handleModelMessage = (m: ModelMessage) => {
      nodeMetrics?.datastoreEvent(m.type);
      if (spec.kind === 'file') {
        if (m.type === 'error' && !m.message.startsWith('bgp: ')) datastoreRejected = { since: datastoreRejected?.since ?? new Date().toISOString(), error: m.message };
        else if ((m.type === 'model' || m.type === 'unchanged') && m.cause !== 'bgp') datastoreRejected = null;
      }
      if (m.type === 'model' || m.type === 'unchanged') {
        nodeMetrics?.computed(m.ms / 1000);
        // On the cache until one of the datastore's models is applied (applyModel says in sync then).
        // A snapshot made while another prefix is still re-listed (inSync false) leaves the reason.
        if (!onCache && m.inSync !== false) health.setDatastore(true);
        // A newer "unchanged" never hides an older pending model.
        const what = [m.cause === 'bgp' ? 'BGP route change' : 'datastore change', ...(m.bgp ? [`bgp: ${m.bgp}`] : [])];
        const merged = [...new Set([...(latest?.what ?? []), ...what])];
        latest = m.type === 'model' ? { model: m.model, ms: m.ms, what: merged, gen: m.gen, felixOnlyOf: m.felixOnlyOf, bgpInputs: m.bgpInputs ?? latest?.bgpInputs } : { model: latest?.model ?? null, ms: m.ms, what: merged, gen: latest?.gen, felixOnlyOf: latest?.felixOnlyOf, bgpInputs: latest?.bgpInputs };
        // BGP settings that changed alone (a BGPPeer added): with the model on its way, else written
        // with the model in force (on the cache: none of the datastore's is, nothing is written).
        if (m.type === 'unchanged' && m.bgpInputs) {
          if (latest.model) latest.bgpInputs = m.bgpInputs;
          else if (source && !onCache) cacheWriter?.bgp(m.bgpInputs);
        }
        void applyLatest();
      } else if (m.type === 'rejected') {
        dsLog.error(`update rejected, keeping the last good state: ${m.message}`);
        // Not ready while the datastore's state is one this node cannot use (its Node deleted, say):
        // it forwards on the last good state, but status and /readyz say why instead of "ready".
        health.setDatastore(false, `${m.message} (forwarding on the last good state)`);
        // A Node address the node does not hold (another process wrote it): the monitor looks at
        // the stored Node now and writes this node's address back, not at its next tick.
        if (/no interface holds the node IP/.test(m.message)) monitor?.lookSoon();
      }
      else if (m.type === 'store-replaced') {
        if (m.inSync !== undefined) storeSync(m.inSync, m.message);
        dsLog.warn(`datastore: ${m.message}`);
        reRegister(m.message);
      }
      else if (m.type === 'thread-down') {
        // The model thread died (model-source.ts starts a new one): not in sync until its first model.
        // One that keeps dying is also not ready by itself (health.setModelThread), and said so.
        datastoreDown(m.message);
        dsLog.error(`datastore: ${m.message}${m.failing ? `; ${m.failing}` : ''}`, m.stack ? { stack: m.stack } : {});
      }
      else {
        if ('inSync' in m && m.inSync !== undefined) storeSync(m.inSync, m.message);
        if (m.type === 'status') dsLog.info(`datastore: ${m.message}`);
        else dsLog.warn(`datastore: ${m.message}${/keeping the last/.test(m.message) ? '' : ' (keeping the last good state)'}`);
      }
    };
    if (source) source.onMessage(onModelMessage);
    // calico-node's monitor-addresses: an autodetected address is looked for again and a changed
    // one written to the Node; the model thread brings it back here (engine.ts followIp4).
    const source6 = addressSource(opts.ip6);
    // Also with addresses given (--ip/--ip6): the Node as stored is looked at too, and an address
    // another process wrote there that no interface here holds is written back (repairStoredAddress).
    // (nodeAddresses: the monitor's store of the Node and the liveness key's holder, made above)
    /** Once registered: the liveness key held until the stop (etcd only), if the start's claim did not already. */
    const holdLiveness = () => live?.hold();
    const monitor = nodeAddresses === null || pollMs === 0 ? null : new AddressMonitor({
      intervalMs: pollMs,
      source: { v4: source4, v6: source6 },
      read: () => eng.readNodeAddresses(),
      registered: () => {
        if (!current) return null;
        return { ipv4: ipv4Text(current), ipv6: ipv6Text(current) };
      },
      stored: () => nodeAddresses.stored(),
      given: { v4: source4 === 'manual' ? opts.ip : undefined, v6: source6 === 'manual' ? opts.ip6 : undefined },
      write: (change, expect) => nodeAddresses.update(change, expect),
      // the model thread's etcd connections came from that address: dead, and its watch with them;
      // so are this thread's (the monitor's own read or write of the Node waiting on one, a
      // registration under way): their calls are given up and go on over new ones (etcd-kv.ts)
      addressLeft: (gone) => {
        nodeAddresses.reconnect();
        upkeep?.store.reconnect();
        reconnectEtcdStoresOf(spec);
        source?.reconnectDatastore(`node address ${gone.join(', ')} left the node`);
      },
      // those new connections may have found no way out and wait in gRPC's backoff: again, at once
      addressAppeared: (added) => {
        nodeAddresses.reconnect();
        upkeep?.store.reconnect();
        reconnectEtcdStoresOf(spec);
        source?.reconnectDatastore(`node address ${added.join(', ')} appeared`);
      },
      info: (m) => dsLog.info(m),
      warn: (m) => dsLog.warn(m),
    });
    // On the cached model, once the datastore answers: its Node is written through the datastore.
    if (source) {
      monitor?.start();
      holdLiveness();
    }
    if (monitor) dsLog.info(`node address autodetection: looked at again every ${pollMs / 1000} s (IPv4 ${source4 === 'manual' ? 'given, kept' : source4 === 'autodetect' ? 'first-found' : 'the Node\'s, replaced by first-found once it leaves the node'}; IPv6 ${source6 === 'autodetect' ? 'first-found' : source6 === 'default' ? 'the Node\'s, replaced by first-found once it leaves the node' : 'kept'}; a stored Node address no interface here holds is written back)`);
    // On the cached model: the datastore's start goes on in the background (registration retried
    // with backoff, then the model thread); once it answers its model replaces the cached one, as
    // any change does, and what waited for it (tunnel addresses, the address monitor) starts.
    let retryStart: NodeJS.Timeout | undefined;
    /** The start on the cached model refused: the node runs on another host (podway exits 2 once stopped). */
    let refusedOnCache: NodeRunningElsewhereError | null = null;
    /** Stops podway as a signal does (set once the stop is known: below). */
    let stopRefused = (): void => {};
    startMade('the address monitor and the registrations', async () => {
      stopping = true; // no model applied, no tunnel-address join started from here
      clearTimeout(retryStart);
      tunnelJoin?.stop();
      registration?.stop();
      await (monitor?.stop() ?? Promise.resolve()).then(() => nodeAddresses?.close()).catch(() => undefined);
    });
    const whenStarted = (p: Promise<FirstModel>) => p.then(({ source: s, first: f, gen: g, bgpInputs: b }) => {
      if (stopping) return void s.close();
      // onCache is left once this first model is applied (applyModel), not before: refused, the
      // node stays not ready on the cache, saying why.
      source = s;
      health.setDatastore(false, `on the cached model from ${onCache!.appliedAt.toISOString()}: applying the datastore's first model`);
      s.onMessage(onModelMessage);
      latest = { model: f, ms: 0, what: ['datastore answered'], gen: g, bgpInputs: b };
      void applyLatest();
      monitor?.start();
      holdLiveness();
      replayer?.start();
    }, (e: Error) => {
      if (stopping) return;
      // The node runs on another host (its liveness key, control/node-live.ts): refused as a start
      // without a cache is, exit 2 (the unit does not restart it): this host forwarding on its
      // cache of that node would take the pods' traffic of two hosts under one node name, and a
      // retry is refused the same way as long as that podway runs.
      if (e instanceof NodeRunningElsewhereError) {
        dsLog.error(`${e.message}. This host forwarded on its model cache from ${onCache!.appliedAt.toISOString()} meanwhile (not ready, its Node not written): stopping, exit 2`);
        refusedOnCache = e;
        stopRefused();
        return;
      }
      // The datastore answered but refused this node (its Node taken, say): the cached model keeps
      // forwarding, not ready, and the start is tried again.
      dsLog.error(`datastore: ${e.message}; forwarding on the cached model, trying again in ${START_RETRY_MS / 1000} s`);
      datastoreDown(e.message);
      retryStart = setTimeout(() => {
        starting = startDatastore();
        whenStarted(starting);
      }, START_RETRY_MS);
    });
    // The Node the cache was written for is not the datastore's (deleted and registered again
    // under this name: its blocks, tunnel addresses and endpoints are another's now), found once
    // the cache was in force (the datastore answered after the host was read): its endpoints,
    // routes and tunnel addresses are withdrawn until the datastore's model is applied, and a
    // speaker on the cache's BGP settings withdraws every prefix it announced from the cache in the
    // sessions it has (model-worker.ts useCachedBgp): the peers drop them at once, and the
    // datastore's settings take over in the same speaker when its model is applied, as on any
    // cache. (It used to be stopped gracefully: the peers kept the old Node's blocks as
    // graceful-restart helpers until a new speaker's End-of-RIB, and every session was reset.)
    let withdrawn = false;
    onNodeVerdict = () => {
      if (!nodeVerdict || withdrawn || stopping || !onCache || source || !current) return;
      withdrawn = true;
      const why = nodeVerdict;
      dsLog.warn(`model cache ${cacheFile}: ${why}: not this node's state: its endpoints, routes and tunnel addresses withdrawn until the datastore's model is applied`);
      datastoreDown(`the model cache is not this node's state (${why}): withdrawn, waiting for the datastore's model`);
      if (cacheBgp) {
        cacheBgpWithdrawn = why;
        startCachedSpeaker();
      }
      try {
        appliedGen = undefined;
        applyModel(withdrawnModel(current), 'its Node is not the cache\'s', ['model cache withdrawn']);
      } catch (e) {
        nodeMetrics?.applyFailed();
        log.error(`the cached model could not be withdrawn: ${(e as Error).message}`);
      }
    };
    onNodeVerdict(); // a verdict that came between the cache's choice and its apply
    // The first apply's kernel routes were read up to START_READS_MAX_AGE_MS before it: read again
    // now (asynchronously: the start is not held), and the model applied again if an underlay
    // next hop moved meanwhile (the default route changed), as after any model (applyLatest).
    // A model on its way (latest, applying) reads them itself after its apply.
    if (startRoutesReused) {
      void routeTable.refresh().then((routes) => {
        if (stopping || latest || applying || !current) return;
        kernelRoutes = routes;
        if (gatewaysKey(current, routes) === lastGateways) return;
        try {
          applyModel(current, 'kernel routes read again after the start', ['underlay next hops changed']);
        } catch (e) {
          nodeMetrics?.applyFailed();
          log.error(`update rejected, keeping the last good state: ${(e as Error).message}`);
        }
      });
    }
    // A SIGTERM or SIGINT came while starting and the start got here all the same (nothing it
    // waited on was aborted by it): it ends as a failed start (what it made undone), with the
    // signal's exit status (startSignal below).
    if (startSignal) throw new Error(`${startSignal.sig} while starting`);
    forwarding = true;
    const stopped = new Promise<void>((resolve) => {
      let stopBegun = false;
      const stop = (sig: string) => {
        if (stopBegun) return;
        stopBegun = true;
        const signalAt = Date.now();
        log.info(`${sig}: stopping (forwarding on until the datastore work has ended)`);
        notifier?.stopping(`${sig}: stopping`);
        stopping = true; // a model still on its way is not applied after this
        eng.stopping(); // a signal to the whole group ends the spawner helper's ip monitor too: no news
        abortStart.abort(); // a start still waiting for the datastore (on the cached model)
        clearTimeout(retryStart);
        routeTable.stop();
        clearInterval(rpFilterTimer);
        clearTimeout(respawnTimer);
        // First what needs no forwarding to stop: the engine and the workers forward on meanwhile
        // (on the last model applied), so a restart loses packets only from the moment they stop
        // (below) until the next start forwards, as after a crash (docs/failures.md, "Restarts and failures").
        const cacheWritten = cacheWriter?.stop() ?? Promise.resolve(); // the newest model applied, for the next start
        tunnelJoin?.stop();
        // A look under way writes nothing more once stopped; one already writing is waited for.
        // Its store closed after it (a look under way still uses it).
        const monitorStopped = Promise.all([revokeLiveClaims().catch(() => undefined), (monitor?.stop() ?? Promise.resolve()).then(() => nodeAddresses?.close()).catch(() => undefined)]);
        // A replay's lock wait is aborted; an etcd call under way is waited for at most 5 s, as the others.
        const replayStopped = Promise.race([Promise.all([replayer?.stop(), orphanHolder?.stop()]), new Promise((r) => setTimeout(r, 5000).unref())])
          .then(() => upkeep?.store.close());
        server.close();
        // The nftables tables stay (the next start replaces them in one transaction, as after a
        // crash; `podway cleanup` removes them): an update's nft still running is waited for, so
        // none commits after this run ended.
        const natStopped = Promise.all([nat, nat6, guard].map((t) => t.stop({ waitMs: 5000, keepTable: true }))).catch(() => undefined);
        // a tunnel-address join in flight still writes the Node and IPAM through the datastore:
        // the datastore closes once it ended (bounded: a hung datastore call must not hold the exit)
        const joinEnded = tunnelJoin ? Promise.race([tunnelJoin.idle(), new Promise((r) => setTimeout(r, 5000).unref())]) : Promise.resolve();
        registration?.stop();
        // A liveness key it claimed meanwhile is revoked once it ended (onLiveClaimed).
        const registered = (registration ? Promise.race([registration.idle(), new Promise((r) => setTimeout(r, 5000).unref())]) : Promise.resolve())
          .then(() => live?.lateRevoked());
        void Promise.all([monitorStopped, replayStopped, natStopped, joinEnded, cacheWritten, registered])
          .then(() => (thread as ModelSource | null)?.close())
          .then(() => {
            // Forwarding ends here, the last thing before the exit.
            const endAt = Date.now();
            workersEnding = true;
            broadcast({ type: 'stop' });
            eng.stop({ restoreForwarding: false, keepTunnelTable: true });
            const workersExited = workers.map((w) => new Promise((r) => { if (w.threadId < 0) r(null); w.once('exit', r); setTimeout(() => void w.terminate(), 2000).unref(); }));
            // The underlay's forwarding set back once podway forwards nothing more: before, a
            // packet could be forwarded by the kernel and by a worker still running twice.
            return Promise.all(workersExited).then(() => {
              eng.restoreForwarding();
              log.info(`stopped: forwarded until ${endAt - signalAt} ms after the ${sig}, then ${Date.now() - endAt} ms to end the forwarding threads; the nftables tables, pod routes and neighbours stay for the next start (\`${podwayCommand()} cleanup\` removes podway's tables once it is stopped for good)`);
            });
          })
          .then(resolve);
      };
      endStartSignals();
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      stopRefused = () => stop('the start refused (the node runs on another host)');
      stopForWorkers = (why) => stop(why);
      if (giveUpWhy) stop(giveUpWhy);
    });
    // `forwarding` is said once frames can leave to the other nodes: the MACs of the underlay next
    // hops the model needs are known (the first apply sent their ARP requests and NDP
    // solicitations; the answers are read while this waits, the thread free), or, after
    // START_NEIGHBOR_WAIT_MS, naming those still unanswered (their frames wait in the neighbour
    // queue, and the requests go on). Only then does the datastore's start of a restart on the
    // cache begin (docs/failures.md, "Where a start's time goes").
    const neighborWait = await startNeighborWait(eng, START_NEIGHBOR_WAIT_MS, () => stopping, (f) => (neighborNews = f));
    if (!stopping) {
      const st = eng.status();
      log.info(`forwarding: node ${st.nodeIp ?? `${st.ipv6?.nodeIp} (IPv6 only)`} on ${st.underlay?.name}, ${st.routes} routes, ${st.endpoints} endpoints, control ${sock}; ${neighborWait.text}`, { nodeIp: st.nodeIp, underlay: st.underlay?.name, control: sock, underlayNeighbors: neighborWait.total, unresolvedNeighbors: neighborWait.unresolved });
      clock.mark('forwarding', neighborWait.text);
      // The start's scan of the pods' namespaces for orphan addresses (three processes, started by
      // the spawner's helper: forked from this thread they held it 0.1-0.3 s each at load 20; and a
      // walk of /proc) once the first batches are through: ORPHAN_SCAN_AFTER_MS after forwarding,
      // not inside the first apply (bench/README.md, "The gap of a restart"). It only feeds status
      // and the IPAM holds (orphan-holds.ts).
      setTimeout(() => eng.startOrphanScan(), ORPHAN_SCAN_AFTER_MS).unref();
      // On the cached model: the datastore's start goes on in the background; on a restart on the
      // cache (deferDatastore) it begins only now, podway forwarding. Its heavy parts (the etcd
      // clients, the schemas, `ip` runs) are the registration's and the model thread's, each in a
      // thread of its own: this one only starts them (join-thread.ts, model-source.ts).
      if (!source) {
        startHolds = monitorEventLoopDelay({ resolution: 10 });
        startHolds.enable();
        whenStarted(startDatastoreOnce());
      }
    }
    await stopped;
    startHolds?.disable();
    const refused = refusedOnCache as NodeRunningElsewhereError | null;
    if (refused) {
      // as a refused start without a cache ends (main.ts): the reason on stderr, exit 2
      process.stderr.write(`podway: ${refused.message}\n`);
      process.exitCode = 2;
    }
    if (giveUpWhy) {
      // a forwarding thread kept dying (worker-deaths.ts): the supervisor starts podway afresh
      process.stderr.write(`podway: ${giveUpWhy}\n`);
      process.exitCode = 1;
    }
  }
}

/** Something a start made, and how a failed start undoes it. */
interface StartStep { readonly what: string; readonly undo: () => unknown }

/** How long a failed start's clean-up may take before podway exits anyway (undoFailedStart): a
 * stop's own bounds are 5 s for an nft or datastore call under way, 2 s for a thread. */
export const FAILED_START_UNDO_MS = 8000;

/** A SIGTERM or SIGINT while starting: how long its revoke of the claimed liveness lease may take before the exit. */
export const START_SIGNAL_UNDO_MS = 3000;

/** After that, how long the signal's exit waits for the aborted start to end and undo what it made (its undo is bounded by FAILED_START_UNDO_MS). */
export const START_SIGNAL_EXIT_MS = FAILED_START_UNDO_MS + 2000;

/**
 * A start failed: its steps undone newest first (the engine and its tables before the threads
 * that fed it), each awaited; one that throws is said and the next goes on. Bounded by `ms`: past
 * it the step still under way is named in the log and podway exits anyway (the caller throws).
 */
export async function undoFailedStart(steps: StartStep[], error: Error, log: { error(m: string, f?: Record<string, unknown>): void; warn(m: string, f?: Record<string, unknown>): void }, ms = FAILED_START_UNDO_MS): Promise<boolean> {
  if (steps.length === 0) return true;
  log.error(`start failed: ${error.message}; undoing what the start made (${steps.map((s) => s.what).reverse().join(', ')})`);
  let at = '';
  const all = (async () => {
    while (steps.length > 0) {
      const step = steps.pop()!;
      at = step.what;
      try {
        await step.undo();
      } catch (e) {
        log.warn(`start failed: undoing ${step.what}: ${(e as Error).message}`);
      }
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  // not unref'd: a step waiting on nothing that holds the process must not end it before the bound
  const done = await Promise.race([all.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  if (!done) log.error(`start failed: its clean-up did not end within ${ms / 1000} s (still undoing ${at}${steps.length ? `; not undone: ${steps.map((s) => s.what).reverse().join(', ')}` : ''}): exiting anyway`);
  return done;
}

/** The first SIGHUP is said; later ones at most once a minute, with how many came meanwhile. */
const HANGUP_LOG_EVERY_MS = 60_000;

/**
 * Keeps SIGHUP from ending `podway run`: said in the log (at most once a minute, see above) and
 * otherwise ignored. Felix has no SIGHUP handler (Go's default: it exits with 129, and its
 * supervisor starts it again, the way it takes any config change); podway applies every datastore
 * change live, so a restart would only cost the pods their traffic for the stop and start. Stop
 * with SIGTERM (or SIGINT).
 */
export function onHangup(log: { warn(msg: string, fields?: Record<string, unknown>): void }): () => void {
  let count = 0;
  let unsaid = 0;
  let saidAt = -Infinity;
  const h = () => {
    count++;
    const now = Date.now();
    if (now - saidAt < HANGUP_LOG_EVERY_MS) {
      unsaid++;
      return;
    }
    const more = unsaid > 0 ? ` (${unsaid} more since the last said)` : '';
    saidAt = now;
    unsaid = 0;
    log.warn(`SIGHUP ignored${more}: podway applies datastore changes live, there is nothing to reload; it forwards on. Stop it with SIGTERM (systemctl stop, kill PID) or SIGINT`, { signal: 'SIGHUP', hangups: count });
  };
  process.on('SIGHUP', h);
  return () => process.off('SIGHUP', h);
}

/** How long after `forwarding` the start's orphan scan begins (engine deferOrphanScan). */
const ORPHAN_SCAN_AFTER_MS = 2000;
/** The per-call bound of the upkeep's store (the deferred DEL replay's and the orphan holds' etcd calls). */
const UPKEEP_KV_TIMEOUT_MS = 5_000;

/** How long the start waits for the underlay neighbours' answers before it says it forwards (one
 * ARP retransmission time: a neighbour that is up answers the first request). */
const START_NEIGHBOR_WAIT_MS = 1000;

/** Waits (the event loop free, so the answers are read) until every underlay next hop's MAC is
 * known, at most `maxMs`, or until `stopped()`: looked at again on each MAC learned (`onNews`
 * sets the engine's hook) and every 50 ms; says how it went for the `forwarding` line. */
async function startNeighborWait(eng: Engine, maxMs: number, stopped: () => boolean, onNews: (f: () => void) => void): Promise<{ total: number; unresolved: string[]; text: string }> {
  const t0 = performance.now();
  let n = eng.unresolvedNeighbors();
  try {
    while (n.unresolved.length > 0 && !stopped() && performance.now() - t0 < maxMs) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, Math.min(50, maxMs - (performance.now() - t0))));
        onNews(() => {
          clearTimeout(t);
          r();
        });
      });
      n = eng.unresolvedNeighbors();
    }
  } finally {
    onNews(() => {});
  }
  const waited = Math.round(performance.now() - t0);
  const text = n.total === 0
    ? 'no underlay neighbour to resolve'
    : n.unresolved.length === 0
      ? `underlay neighbours known: ${n.total} of ${n.total}${waited > 0 ? ` (answered within ${waited} ms)` : ''}`
      : `underlay neighbours known: ${n.total - n.unresolved.length} of ${n.total}; not answering yet after ${waited} ms: ${n.unresolved.join(', ')} (asked again every second; frames to them wait in the neighbour queue)`;
  return { total: n.total, unresolved: n.unresolved, text };
}

/** This thread's etcd connections made again (etcd-kv.ts reconnectEtcdStores), if it has any: the
 * etcd client is not loaded here for that (the address monitor's store is in a thread of its own;
 * the upkeep's store is the light client, made again by its own reconnect, upkeep.ts; a file: or
 * embedded store never loads it: startup-modules). */
function reconnectEtcdStoresOf(spec: { kind: string }): void {
  if (spec.kind !== 'etcd') return;
  const loaded = require.cache[require.resolve('../control/kv/etcd-kv')];
  if (loaded) (loaded.exports as typeof import('../control/kv/etcd-kv')).reconnectEtcdStores();
}
