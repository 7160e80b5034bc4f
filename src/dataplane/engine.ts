/**
 * The engine: one per node. It turns the control plane's model into open ports, a next-hop table
 * and a FIB, wires port readiness to the pipeline, and answers the operator's questions (status,
 * routes, endpoints, counters, trace). Model changes are applied whole, between packet batches.
 */
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { nodeAddressState, readLinkState } from './node-address';
import { performance } from 'node:perf_hooks';
import type { NodeDataplaneModel, LocalEndpoint } from '../control';
import { formatIpv4, parseMac, formatMac } from '../packet';
import { macEquals } from '../packet/ethernet';
import { Drop } from '../packet/drop';
import { FramePool } from './frame-pool';
import { PacketIO, errnoOf, errnoName, RING_FAILED, POD_GSO_MIN, NATIVE_DROP_FIELDS, type PortStats } from './io';
import { nativeIO } from './native';
import { Pipeline, Role, MAX_PORTS, GATEWAY_MAC, GATEWAY_IP, tunnelsOf, FRAG_DESCS } from './pipeline';
import { buildNextHops, type NextHops, learnNeighbor, failNeighbor, NH_KIND_NAMES, NhKind, MAC_KNOWN, MAC_FAILED, CALICO_VNI } from './nexthops';
import { VXLAN_PORT } from '../packet/vxlan';
import { applyModel6, Neighbors6, routeRows6 } from './engine6';
import { underlayNeighbor6 } from './nexthops6';
import type { NextHops6 } from './nexthops6';
import { GATEWAY_IP6 } from './pipeline6';
import { writeNeighborSolicit, writeUnsolicitedAdvert } from '../packet/ndp';
import { writeGatewayAnnounce } from '../packet/arp';
import { ip6Bytes, VXLAN6_OVERHEAD } from '../control/route-calc6';
import { ENCAP_OVERHEAD } from '../control/route-calc';
import { formatIpv6 } from '../packet/ipv6';
import { NeighborTable, NeighborTimings } from './neighbors';
import { NeighborQueue, FAMILY_V4, FAMILY_V6, FAMILY_POD } from './neighbor-queue';
import { NEIGHBOR_QUEUE_PER_NEIGHBOR, NEIGHBOR_QUEUE_TOTAL } from './neighbor-queue-limits';
import { HostProgrammer, HostState, HostLearnedRoute, HostPoolRoute, HostAddress, LEARNED_ROUTE_PROTO, LEARNED_ROUTE_METRIC } from './host-programmer';
import { Spawner, type SpawnFn } from './spawner';
import { BATCH_SUM, COUNTER_NAMES, PortCounter, PORT_COUNTERS, Event, Reason, Reason6 } from './counters';
import { checkModel } from './model-check';
import { installTunnelRx, installedTunnelPort, removeTunnelRx, TUNNEL_TABLE } from './nft-tunnels';
import { podSteerFilter, type Steer } from './steer';
import { type LocalAddresses, keptLocalAddresses, sameLocalAddresses } from './local-addrs';
import { addressKey, netnsInode, orphanPodLine, readPodDevice, readPodPeerAddresses, type OrphanPodAddress, type ScanExec } from './orphan-pods';
import { LocalTableWatch, mainRoute4, mainRoute6 } from './local-watch';
import { KernelRoutes } from './kernel-routes';
import { readLocalPortRange } from './port-range';
import { readTunnelRpFilter } from './rp-filter';
import { findUnderlay, underlayNextHops, readKernelRoutes, readNodeAddresses, readLocalAddresses, type NodeAddresses, readKernelRoutesSync, KernelRoute, underlayNextHops6, quietKernelOn, restoreSysctl, setSysctl, forwardingKey, removeForwardingRecord, type ForwardingRecord, linkUp, underlayFilter, writeArpRequest, interfaceExists, interfaceIndex, interfaceAdminUp, tunAttached, readPodRoutesSync, readLearnedRoutesSync, Underlay, type HostStartReads } from './host';
import { TraceSession, TraceFilter, TraceRecord } from './trace';
import { CaptureTap, CaptureOptions, Link } from './capture';
import { type Log, silentLog } from '../observe/log';
import { addPortCounts, pipelineSnapshot, type DataplaneSnapshot, type PortSample } from '../observe/snapshot';
import type { WaitingEndpoint } from '../observe/stale-endpoints';
import { Backoff } from '../util/backoff';
import { LogLimiter } from '../util/log-limiter';
import { covers6, mask32, networkOf6, parseIp6 } from '../lpm/cidr';
import { podwayCommand } from '../util/invocation';

/** How many interface names of deleted endpoints the engine remembers (orphan sources). */
const ENDPOINT_DELETED_KEPT = 4096;

export interface EngineOptions {
  /** Felix's natOutgoingExclusions: IPPoolsOnly (true, the default: a natOutgoing pod's egress to
   * another node's address goes to the kernel to be masqueraded) or IPPoolsAndHostIPs (false). */
  natToNodes?: boolean;
  /** Felix's allowVXLANPacketsFromWorkloads / allowIPIPPacketsFromWorkloads: a pod's own VXLAN /
   * IP-in-IP packets forwarded instead of dropped `encap_from_pod` (default false, as Felix). */
  allowVxlanFromPods?: boolean;
  allowIpipFromPods?: boolean;
  /** Frames per receive batch (and per send call). */
  batch?: number;
  /** The VXLAN outer UDP source ports (LOW, HIGH as net.ipv4.ip_local_port_range, HIGH unused as
   * by the kernel); podway run reads the node's once and passes it to every forwarding thread.
   * Default: the node's, read at construction (port-range.ts). */
  vxlanSourcePorts?: readonly [number, number];
  /** Felix's vxlanPort and vxlanVNI (podway run resolves them from FELIX_VXLANPORT/FELIX_VXLANVNI and
   * the FelixConfigurations at its start; felix-settings.ts): the UDP destination port and VNI of
   * this node's VXLAN, sent and received, for the engine's life. Default 4789 and 4096 (Calico's). */
  vxlanPort?: number;
  vxlanVni?: number;
  /** Reverse-path filtering of decapsulated IPv4 (Pipeline.rpFilter: 0 off, 1 strict, 2 loose).
   * Default: the node's, read at construction as its tunnel devices would have it (rp-filter.ts). */
  rpFilter?: number;
  /** Set host sysctls/routes (default true; tests of the pipeline alone may turn it off). */
  manageHost?: boolean;
  /** Where the underlay's IPv4 forwarding value from before podway's 0 is kept on disk, per
   * interface (host.ts ForwardingRecord; podway run: beside the control socket). Unset: in memory only. */
  forwardingRecordFile?: (ifname: string) => string;
  /** Where the engine logs (fields name the port, workload, neighbour). */
  log?: Log;
  /** AF_PACKET receive ring: 2 (default: wakes per frame, no 1 ms block timer on the path; request/
   * response RTT p50 5x lower than 3 in bench/e2e) or 3 (block batching: a higher 64-byte flood
   * rate, median 1.2x of 2, at up to 1 ms per hop). */
  ringVersion?: 2 | 3;
  /** Size of the underlay port's receive ring in MiB (default UNDERLAY_RING_MB). It is one ring for
   * every tunnel and direct-routed frame the node receives (pods have a ring each), and it is kernel
   * memory that cannot be swapped out (the socket's pages, mapped): each worker opens its own. */
  underlayRingMb?: number;
  /** Send on the underlay and pod veths with PACKET_QDISC_BYPASS (skips tc on those devices). */
  qdiscBypass?: boolean;
  /** Pod ports: send runs of one TCP flow's segments as one super-frame (native/gro.c; default true). */
  gro?: boolean;
  /** Underlay port: send runs of VXLAN datagrams of one outer flow (and of one TCP flow's segments,
   * direct routing) as one GSO message the kernel segments (native/uso.c; default true). */
  txGso?: boolean;
  /** The underlay port sends through a transmit-only packet socket of its own (native/README.md,
   * "A transmit-only underlay socket"). Default true; `podway run --no-tx-socket`. */
  txSocket?: boolean;
  /** Back-pressure (native/README.md): while the underlay port's transmit backlog holds more than
   * 4,096 frames, the pods (and the host's TUN) whose last batch went to it are not read until it
   * is down to 1,024. Default true; `podway run --no-backpressure`. */
  backpressure?: boolean;
  /** Underlay port: receive a kernel node's VXLAN TCP super-frames (UDP tunnel GSO) as one
   * descriptor and send each to its pod as one GSO message, not cut and merged again
   * (native/rxsuper.h; default true). */
  rxSuper?: boolean;
  /** Pod ports (V2 ring): read super-frames straight into their segments' pool slots (scatter
   * recvmsg; native/README.md; default true). */
  scatterRx?: boolean;
  /** Pod ports (V2 ring): hand a pod's TCP super-frame to the pipeline as ONE descriptor (segment
   * 0 routed for all; the rest kept in C) and cut it only where it leaves: into UDP GSO messages on
   * the underlay, whole to a pod with gro (native/rxsuper.h; default true). */
  podSuper?: boolean;
  /** Underlay port: receive a run of a kernel node's plain VXLAN TCP datagrams (underlay offloads
   * off) as one descriptor, sent to its pod as one GSO message (native/rxsuper.h; default true). */
  rxMerge?: boolean;
  /** How often the AF_PACKET ports' TPACKET_V2 rings are checked for one the kernel wedged (a
   * frame whose vnet header it could not build: native/README.md); two checks in a row must see
   * it before the ring is set up again. Default 1000 ms; 0 turns the check off. */
  ringCheckMs?: number;
  /**
   * This engine is worker `index` of `count` (worker_threads, one engine each). With count > 1 the
   * veth and underlay sockets join a PACKET_FANOUT group per interface and the VXLAN socket uses
   * SO_REUSEPORT, so the kernel spreads flows across workers; IPIP receive and the host port stay
   * with worker 0. TAP/TUN pods are single-queue devices: worker 0 opens and alone reads each (a
   * flow's frames stay in order); the other workers transmit to it through a dup of worker 0's fd
   * (PortOptions.sharedTx) and take the pod's MAC from worker 0 (onPodMac), as they take a veth
   * pod's: its ARP frames (its answer to a worker's request for its MAC) all go to worker 0.
   */
  worker?: { index: number; count: number };
  /**
   * With count > 1, how the veth and underlay sockets split the frames between workers. 'flow'
   * (default): each worker's socket filter takes its share by a symmetric hash of the flow, looked
   * for inside VXLAN and IPIP on the underlay (steer.ts), so a request and its reply are handled
   * by the same worker. 'fanout': one PACKET_FANOUT_HASH group per interface (the kernel's hash of
   * the outer headers: a reply lands on another worker half of the time, which then has to be
   * woken for it; bench/README.md). Kept to measure the difference.
   */
  workerSteer?: 'flow' | 'fanout';
  /**
   * Where the node's tunnel packets are read (TunnelRx). A host-managing engine decides for itself
   * (it installs the nftables table; without nft it keeps the sockets); worker engines (manageHost
   * false) are told what the first engine decided, here and with every model (apply's `tunnels`).
   */
  tunnelRx?: TunnelRx;
  /** Underlay neighbour timings (ARP and NDP alike; neighbors.ts defaults: reachable 30 s,
   * retransmit 1 s, 3 probes, hold-down 10 s doubling up to 60 s); `maxEntries` bounds each
   * table (4,096 by default; tests set it small to see a full table). */
  neighbor?: NeighborTimings & { maxEntries?: number };
  /** Packets held for an underlay neighbour being resolved (neighbor-queue.ts): at most
   * `perNeighbor` per neighbour (3) and `total` frames in all (256), `bytes` per neighbour (212,992, NEIGHBOR_QUEUE_BYTES), in pool slots reserved for them.
   * Either 0: none held, they are dropped as `neighbor_unresolved`. */
  neighborQueue?: { perNeighbor?: number; total?: number; /** bytes held per neighbour (NEIGHBOR_QUEUE_BYTES) */ bytes?: number };
  /** Called when an ARP reply from a wanted underlay neighbour reaches this engine (learned, changed
   * or confirmed): shared with the other workers, whose own probes' answers may land here
   * (PACKET_FANOUT spreads the underlay's frames by hash). `announced`: the MAC came from an
   * announcement (gratuitous ARP, or a request this engine took), which the other workers must take
   * as one too: as a reply it would be held by their lock window while their entry is REACHABLE. */
  onNeighbor?: (ip: number, mac: Uint8Array, announced: boolean) => void;
  /** The same for IPv6 neighbours (NAs), by address text (`announced`: an unsolicited NA with the
   * override flag). */
  onNeighbor6?: (ip6: string, mac: Uint8Array, announced: boolean) => void;
  /** With count > 1, worker 0: a TAP or veth pod's MAC learned from its frames, for the other
   * workers (learnSharedPodMac): worker 0 alone reads a TAP, and takes every non-IP frame of a veth
   * (steer.ts), so a veth pod's ARP answer to another worker's request for its MAC lands here. */
  onPodMac?: (ifname: string, mac: Uint8Array) => void;
  /** With count > 1, worker 0: a TAP/TUN pod's device was (re)opened and listed for the other
   * workers, which attach to it now (sharedOpened) rather than on their next retry. */
  onSharedOpen?: (ifname: string) => void;
  /** The host-managing engine read a changed set of the node's own addresses (local-addrs.ts),
   * for the other workers (setLocalAddresses); each model message carries it too. */
  onLocalAddresses?: (local: LocalAddresses) => void;
  /** The underlay interface's MTU was seen to change (checkUnderlayMtu: the main engine's `ip
   * monitor`, a port's frames refused as too big, the 5 s check), now in force here: for the other
   * forwarding threads, which take it at once (underlayMtuNews) rather than from their own
   * refusals or check. `why`: how it was seen. */
  onUnderlayMtu?: (mtu: number, why: string) => void;
  /** `n` pods' packets the kernel had refused as too big were answered here (answerTooBig), for
   * the main thread's status (tooBigAnswered counts every thread's: addTooBigAnswered). */
  onTooBigAnswered?: (n: number) => void;
  /**
   * A forwarding worker (worker.index > 0) with these set sends no ARP request nor Neighbor
   * Solicitation of its own: the main thread's engine resolves the underlay neighbours for every
   * thread (it has the same next hops, probes them on its own tick, and shares each answer:
   * onNeighbor, learnShared), and this worker asks it for one due now (a packet to an unresolved
   * next hop: resolveShared/resolveShared6 there, which its own table rate-limits). Without them
   * each thread probed every next hop itself: N probes per neighbour, and N identical warnings when
   * one stopped answering (a worker's is logged at debug level now; the main thread's warns).
   */
  onResolve?: (ip: number) => void;
  onResolve6?: (ip6: string) => void;
  /** Called at the end of each neighbour tick (once a second, from the first model on): a forwarding
   * worker sends its counts from here when nobody read them for a while (worker.ts). */
  onTick?: (now: number) => void;
  /** The host-managing engine: the kernel's main table may now route another node's address
   * differently (an IPv4 route covering one added or deleted: a BGP-learned /32 via a ToR, a
   * route added by hand; `ip monitor`, local-watch.ts), or the slow safety re-read is due. The
   * caller reads the routes (readKernelRoutes) and applies the model again if an underlay next hop
   * moved. */
  onUnderlayRoutes?: () => void;
  /** Packet I/O (default: the native addon). */
  io?: PacketIO;
  /** A host-managing engine moved its tunnels outside apply (a refused tunnel table installed on
   * the retry timer: healTunnelTable): the workers must be told (tunnelRx()), as after a model. */
  onTunnelRx?: (rx: TunnelRx) => void;
  /** The pod interfaces holding an address no endpoint names (orphan-pods.ts) changed: new ones
   * found, or gone ones dropped (podway run holds their addresses in IPAM and releases them,
   * cli/orphan-holds.ts). orphanList() gives those still there. */
  onOrphans?: () => void;
  /** The start's scan of the pods' namespaces for orphan addresses (findPodOrphans: `ip` and a
   * shell, started by the spawner's helper when there is one, and a walk of /proc) waits for
   * startOrphanScan() instead of starting within the first apply: podway run starts it once it
   * forwards (bench/README.md, "The gap of a restart": each fork from this thread held it 0.1-0.3 s
   * at load 20, in the seconds the pods' traffic comes back). */
  deferOrphanScan?: boolean;
  /** Runs each look into the pods' namespaces for orphan addresses (the start's scan, a tap/tun
   * pod's device looked for once its endpoint is deleted) with what it judges: podway run's upkeep
   * queue (cli/upkeep.ts), so that no look reads an interface a deferred CNI DEL's replay is
   * removing and judges it after that replay deleted its endpoint. Absent: run at once. */
  orphanLooks?: <T>(look: () => Promise<T>) => Promise<T>;
  /** First pause before a refused tunnel table is tried again (default TABLE_RETRY_MIN_MS), doubling
   * up to TABLE_RETRY_MAX_MS. */
  tableRetryMs?: number;
  /**
   * What happens next when the node's address leaves the node, for checkNodeAddress's warning (the
   * caller knows where the address came from: --ip, which is never changed, as in Calico; first-
   * found, re-detected by cli/address-monitor.ts; a file: datastore's Node). Default: restart.
   */
  addressAdvice?: string;
  /** The same for the node's IPv6 address (--ip6, first-found, the file's Node). Default: restart. */
  addressAdvice6?: string;
}

/**
 * Where the node's tunnel packets are read, as the host-managing engine decided (nft-tunnels.ts).
 * `onUnderlay`: VXLAN and IPIP to the node's IPv4 address arrive on the underlay AF_PACKET port,
 * with the kernel's offload metadata, and the tunnel table drops the kernel's copy (false: on the
 * UDP and raw sockets). `ip6`: the IPv6 address whose VXLAN the table drops (null: none); only
 * then is there an IPv6 VXLAN socket (for the reassembled outer fragments), since without the
 * rule the kernel would hand that socket every datagram the underlay port also takes.
 */
export interface TunnelRx {
  onUnderlay: boolean;
  ip6: string | null;
  /** The IPv4 address the tunnel table, sockets and underlay filter follow (host order; null or
   * absent: the model's). Not the model's while a failed follow-back left the host-managing
   * engine's ports on a rejected model's address (followBack): the workers' ports follow it too,
   * or tunnel packets fanned out to a worker would meet a filter for an address that is gone. */
  ip?: number | null;
}

/** Where tunnels were read before a model, and whether this engine had its table (restoreTunnelRx). */
interface TunnelState {
  owns: boolean;
  onUnderlay: boolean;
  ip6: string | null;
}

/** Host-side failures the engine recovered from (or gave up on), counted for `podway counters`
 * (added up across workers) and `podway status`. */
export interface EngineFailures {
  /** The tunnel table could not be installed or rewritten (nft missing or refusing). */
  tunnelTable: number;
  /** A port whose receive ring could not be set up again (checkRing threw) closed and reopened. */
  ringReopened: number;
  /** Reopening such a port failed (tried again on the next ring check). */
  ringReopenFailed: number;
  /** A model rejected after the infra ports followed its node address: they followed back to the
   * last good model's (apply, followBack). */
  followedBack: number;
  /** Following back failed: the infra ports stay on the rejected model's address (tried again with
   * the next model). */
  followBackFailed: number;
}

interface EndpointPort {
  ep: LocalEndpoint;
  port: number;
  kind: 'veth' | 'tap' | 'tun';
  /** The pod MTU given to a tap/tun device when it was attached (0: a veth, or none given). */
  mtu: number;
}

/** The TUN device joining the node's stack to the pod network. */
export const HOST_PORT_NAME = 'podway0';
/**
 * The MTU of a pool's route into the host port (HostPoolRoute.mtu): what podway forwards the
 * node's own packets to the pool's pods on other nodes with, as the kernel of a Calico node has it
 * from the tunnel device the pool's routes go through (`vxlan.calico` underlay - 50, `tunl0`
 * underlay - 20, `vxlan-v6.calico` underlay - 70; an unencapsulated pool: the underlay's). A
 * CrossSubnet pool gets its encapsulated MTU, the smallest of its paths: a peer on the node's subnet
 * takes the underlay's, and is sent 50 (20) bytes less than it could take; the other way, one
 * route with the underlay's MTU, the node's packets to pods across subnets would be refused by
 * podway (ICMP, a round trip) instead of sized right. The node's own tap/tun pods, whose device
 * MTU may be smaller, answer with ICMP fragmentation needed / Packet Too Big into the host port,
 * which the kernel takes (a PMTU exception for that pod). `linkMtu`: the underlay interface's MTU
 * as last read (Engine.checkUnderlayMtu), when smaller than the model's it lowers every one by the
 * difference, so the node's own packets follow an interface MTU change at once (the model's is
 * read once per node address). null (no `mtu`): an IPv6 MTU below 1280, which no IPv6 route can
 * take.
 */
export function poolRouteMtu(model: NodeDataplaneModel, pool: { readonly cidr: string; readonly encap: 'vxlan' | 'ipip' | 'none' }, linkMtu?: number): number | null {
  // the underlay as it is now, and each tunnel's MTU (Felix's setting or auto) at most what it takes
  // encapsulated: podway does not fragment the outer packet
  const underlay = linkMtu !== undefined && linkMtu >= 68 && linkMtu < model.mtu.underlay ? linkMtu : model.mtu.underlay;
  if (pool.cidr.includes(':')) {
    const mtu = pool.encap === 'vxlan' ? Math.min(model.v6.vxlanMtu, underlay - VXLAN6_OVERHEAD) : underlay;
    return mtu >= 1280 ? mtu : null;
  }
  const mtu = pool.encap === 'vxlan' ? Math.min(model.mtu.vxlan, underlay - ENCAP_OVERHEAD.vxlan) : pool.encap === 'ipip' ? Math.min(model.mtu.ipip, underlay - ENCAP_OVERHEAD.ipip) : underlay;
  return mtu >= 68 ? mtu : null;
}

/**
 * The pool routes into the host port (with their MTU, poolRouteMtu, `linkMtu` passed on), and
 * the node's tunnel addresses on it, as a Calico node has them: the addresses of its 'host'
 * routes (route-calc: its VXLAN address while a pool is VXLAN, its IPIP one while a pool is
 * IPIP, its IPv6 VXLAN one) as /32 and /128 on podway0, and each
 * pool's route with the address of the pool's encapsulation as its source (`src`), as the
 * kernel picks `vxlan.calico`'s or `tunl0`'s address for Calico's routes through them: the node's
 * own traffic to pods on other nodes leaves with it and the replies come back through the tunnel.
 * A CrossSubnet pool keeps the node's address as the source (Calico routes its peers on the same
 * subnet unencapsulated, from the node's address), and so does a pool without encapsulation.
 */
export function hostPoolState(model: NodeDataplaneModel, linkMtu?: number): { pools: HostPoolRoute[]; addrs: HostAddress[] } {
  const own4 = new Set(model.routes.filter((r) => r.kind === 'host').map((r) => r.addr >>> 0));
  const own6 = new Set(model.v6.routes.filter((r) => r.kind === 'host').map((r) => r.cidr.slice(0, -4)));
  const vtep = model.node.vtepIp !== null && own4.has(model.node.vtepIp >>> 0) ? formatIpv4(model.node.vtepIp) : null;
  const ipipIp = model.node.ipipTunnelIp ?? null;
  const ipip = ipipIp !== null && own4.has(ipipIp >>> 0) ? formatIpv4(ipipIp) : null;
  // The IPv6 VTEP address by name, as the IPv4 ones: only while it is one of the node's own (a
  // 'host' route: route-calc6 gives it one while an IPv6 pool is VXLAN), whatever else is.
  const vtep6 = model.v6.vtepIp6 !== null && own6.has(model.v6.vtepIp6) ? model.v6.vtepIp6 : null;
  const pools: HostPoolRoute[] = [];
  for (const p of model.pools) {
    const src = p.crossSubnet ? null : p.encap === 'vxlan' ? vtep : p.encap === 'ipip' ? ipip : null;
    pools.push({ cidr: p.cidr, dev: HOST_PORT_NAME, mtu: poolRouteMtu(model, p, linkMtu), src });
  }
  for (const p of model.v6.pools) pools.push({ cidr: p.cidr, dev: HOST_PORT_NAME, mtu: poolRouteMtu(model, p, linkMtu), src: p.encap === 'vxlan' && !p.crossSubnet ? vtep6 : null });
  const addrs: HostAddress[] = [...own4].map((a) => ({ addr: formatIpv4(a), dev: HOST_PORT_NAME }));
  for (const a of own6) addrs.push({ addr: a, dev: HOST_PORT_NAME });
  return { pools, addrs };
}
/** Engine.addNotes: notes beyond twice the live ones before gone interfaces' are pruned. */
const NOTES_SLACK = 64;
/** How often a running capture hands its records on. */
const CAPTURE_FLUSH_MS = 20;
/** How often the neighbour tables age their entries and re-probe stale ones (one timer for both
 * tables and every entry; shorter when the retransmit interval is). */
const NEIGHBOR_TICK_MS = 1000;
/** A neighbour's MAC changes are logged at most once per this many ms per neighbour (the first at
 * once, then one line per interval with the count not logged): anyone on the underlay can send a
 * gratuitous ARP or an unsolicited NA per frame with alternating MACs, and the kernel logs none. */
export const NEIGHBOR_CHANGE_LOG_MS = 10_000;
/** A pod whose MAC podway waits for is asked (ARP) at most this often. */
const POD_MAC_ASK_MS = 1000;
/** EngineOptions.ringCheckMs default: a wedged V2 ring is set up again within ~2 of these. */
const RING_CHECK_MS = 1000;

/** Shortest interval between two reads of one pod port's MTU for a packet bigger than it. */
const PORT_MTU_RECHECK_MS = 100;
/** A port's MTU as the pipeline checks it: 0 (not checked) unless a sane one. */
const portMtuOf = (mtu: number): number => (Number.isInteger(mtu) && mtu >= 68 && mtu <= 0xffff ? mtu : 0);

/** How often the veth pods whose port reported ENETDOWN are looked at (sysfs flags) until their
 * link is up again; the timer runs only while some are down. */
const LINK_CHECK_MS = 200;
/** A tunnel table nft refused (install or rewrite) is tried again after this pause, doubling up to
 * the max while it keeps being refused (healTunnelTable). */
const TABLE_RETRY_MIN_MS = 1000;
const TABLE_RETRY_MAX_MS = 60_000;
/** A receive port whose recv failed is re-polled after this pause (doubling up to the max). */
const REPOLL_MIN_MS = 100;
/** An endpoint whose interface went away is logged at info (a pod deletion: the CNI DEL removes
 * the veth, then the endpoint); still waiting this long after, without its endpoint deleted, at warn. */
const VANISHED_QUIET_MS = 30_000;
/** How often the node's address is looked for on its interfaces (checkNodeAddress). */
const NODE_ADDR_CHECK_MS = 5000;
/** How often the host-managing engine reads the kernel's local table (the node's own addresses,
 * local-addrs.ts; two `ip` processes through the spawner, never waited on) while no `ip monitor`
 * runs (local-watch.ts: it could not be started, or exited and waits to be started again). */
export const LOCAL_ADDR_CHECK_MS = 5000;
/** While the monitor runs, a change is read when the kernel announces it; this slow re-read only
 * covers a missed notice. */
export const LOCAL_ADDR_SAFETY_MS = 60_000;
/** The kernel routes towards other nodes are looked at again this often even without a change
 * notice (onUnderlayRoutes: a missed notice, or no `ip monitor` running). */
export const UNDERLAY_ROUTES_SAFETY_MS = 60_000;
const REPOLL_MAX_MS = 10_000;

/**
 * Receive ring blocks for a pod's veth: 1 MiB (TPACKET_V2, 512 frames) or 1 MiB (V3) instead of
 * the underlay's 16 MiB (UNDERLAY_RING_MB). A node has hundreds of pods and each ring is locked
 * memory (4 MiB x 1,000 pods was 4 GiB). 256 frames were too few: bench/e2e's bulk TCP dropped pod ACK bursts on them.
 */
function podRingBlocks(ringVersion: 2 | 3): number {
  return ringVersion === 2 ? 16 : 4;
}

/** At most one log line a minute per raw port about packets the kernel refused (checkRawRefusals). */
const RAW_REFUSED_LOG_MS = 60_000;

/** How long learned kernel routes left by an earlier run are kept while no route is learned yet
 * (BGP's graceful restart time, as our peers keep ours: 120 s). */
const LEARNED_HOLD_MS = 120_000;

/** Default underlay receive ring, MiB (see underlayRingBlocks). It takes the whole node's tunnel
 * receive: 4 MiB (2,048 V2 frames, ~6 ms at 4 Gb/s) overflowed whenever the forwarding thread was
 * off the CPU for a few ms, and 8 bulk TCP streams into a pod lost ~100k frames per 4 s; 16 MiB
 * lost a few hundred (bench/README.md). Cost: 16 MiB of unswappable kernel memory per worker. */
export const UNDERLAY_RING_MB = 16;
/** Back-pressure on the underlay's transmit backlog (frames; native/README.md): over HOLD_HIGH the
 * ports feeding it are held back until it is down to HOLD_LOW. 4,096 frames of 1,500 bytes are
 * ~10 ms at 5 Gb/s (the backlog's 16,384 were ~40 ms); what one batch of a pod adds past the mark
 * stays well under the backlog's 16,384. */
export const HOLD_HIGH = 4096;
export const HOLD_LOW = 1024;

/** Ring blocks for an underlay ring of `mb` MiB: native/ports.c's blocks are 64 KiB (V2) or 256 KiB (V3). */
export function underlayRingBlocks(ringVersion: 2 | 3, mb: number): number {
  if (!Number.isInteger(mb) || mb < 1 || mb > 1024) throw new Error(`underlay ring size ${mb} MiB: expected an integer 1..1024`);
  return ringVersion === 2 ? mb * 16 : mb * 4;
}

/** Same addresses and MAC: nothing to change on the port or in the host's routes. */
function sameEndpointAddressing(a: LocalEndpoint, b: LocalEndpoint): boolean {
  return a.mac === b.mac && a.ips.length === b.ips.length && a.ips.every((ip, k) => ip === b.ips[k]);
}

/** One route's packets so far (`podway counters`' routes, `podway top`'s BUSIEST ROUTES). */
export interface RouteHit { cidr: string; kind: string; node: string; packets: number }

/** Packets routed per route so far in an IPv4 and an IPv6 next-hop table (routes that carried
 * none are left out). */
export function routeHits(nh4: NextHops | null, nh6: NextHops6 | null): RouteHit[] {
  const out: RouteHit[] = [];
  for (const nh of [nh4, nh6]) {
    if (!nh) continue;
    for (let i = 0; i < nh.count; i++) {
      if (nh.hits[i] > 0) out.push({ cidr: nh.routes[i].cidr, kind: NH_KIND_NAMES[nh.kind[i]], node: nh.routes[i].node, packets: nh.hits[i] });
    }
  }
  return out;
}

/** The drop reason each of the addon's own drops (io.ts NATIVE_DROP_FIELDS) is counted under. */
const NATIVE_DROP_REASON: Record<(typeof NATIVE_DROP_FIELDS)[number], number> = {
  rxVlanTagged: Reason.VLAN_TAGGED,
  rxGsoBad: Reason.GSO_BAD,
  rxGsoDropped: Reason.GSO_UNSUPPORTED,
  rxBadCsum: Reason.BAD_PARTIAL_CSUM,
  rxShort: Drop.TOO_SHORT,
  rxReadFailed: Reason.READ_FAILED,
  txBacklogDropped: Reason.TX_BACKLOG_DROPPED,
};

export class Engine {
  readonly io: PacketIO;
  readonly pool: FramePool;
  readonly pipe: Pipeline;
  private readonly batch: number;
  private readonly log: Log;
  private readonly manageHost: boolean;
  private readonly forwardingRecordFile: ((ifname: string) => string) | null;
  private readonly ringVersion: 2 | 3;
  private readonly underlayRingBlocks: number;
  private readonly qdiscBypass: boolean;
  private readonly gro: boolean;
  private readonly txGso: boolean;
  private readonly txSocket: boolean;
  /** Underlay txHoldHigh/txHoldLow, pod ports' holdRx (empty: no back-pressure). */
  private readonly holdTx: { txHoldHigh?: number; txHoldLow?: number };
  private readonly holdRx: { holdRx?: boolean };
  private readonly rxSuper: boolean;
  private readonly scatterRx: boolean;
  private readonly podSuper: boolean;
  private readonly rxMerge: boolean;
  private readonly workerSteer: 'flow' | 'fanout';
  /** natOutgoingExclusions IPPoolsOnly (Felix's default): other nodes' addresses are outside ones (setFelixOptions). */
  private natToNodes: boolean;
  /** Tunnels arrive on the underlay port (TunnelRx.onUnderlay); set by openInfra (workers: told). */
  tunnelsOnUnderlay: boolean;
  /** The IPv6 address the tunnel table drops VXLAN for (TunnelRx.ip6): the IPv6 VXLAN socket is
   * opened on the node's IPv6 address only when it is this one. */
  private tunnelTable6: string | null;
  readonly failures: EngineFailures = { tunnelTable: 0, ringReopened: 0, ringReopenFailed: 0, followedBack: 0, followBackFailed: 0 };
  /** This engine installed the tunnel table (and removes it). */
  private ownsTunnelTable = false;
  /** The underlay port's filter disagrees with tunnelsOnUnderlay (a rejected model's table could
   * not be put back: restoreTunnelRx): the next apply reopens the port. */
  private underlayFilterStale = false;
  private readonly worker: { index: number; count: number };
  private readonly shareNeighbor: (ip: number, mac: Uint8Array, announced: boolean) => void;
  private readonly onTunnelRx: (rx: TunnelRx) => void;
  private readonly onOrphans: () => void;
  private readonly onLocalAddresses: (local: LocalAddresses) => void;
  private readonly onUnderlayMtu: (mtu: number, why: string) => void;
  private readonly onTooBigAnswered: (n: number) => void;
  private readonly onTick: ((now: number) => void) | undefined;
  /** Set on a forwarding worker whose underlay neighbours the main thread resolves (EngineOptions.onResolve). */
  private readonly resolveVia: ((ip: number) => void) | null;
  private readonly onUnderlayRoutes: () => void;
  /** When onUnderlayRoutes was last called (the safety re-read: UNDERLAY_ROUTES_SAFETY_MS). */
  private underlayRoutesAt = 0;
  private tableTimer: NodeJS.Timeout | null = null;
  /** The refused tunnel table's retry wait: tableRetryMs, doubling up to TABLE_RETRY_MAX_MS; reset once it is in place. */
  private readonly tableRetry: Backoff;
  /** The last refusal the retry logged (one line per distinct reason). */
  private tableRetryWhy: string | null = null;
  private model: NodeDataplaneModel | null = null;
  /**
   * The addresses the infra ports (VXLAN/IPIP sockets, underlay filter, tunnel table) follow now.
   * Usually the model's: a model rejected after its new address was followed (a later step of
   * apply threw) has them follow back (followBack). Not when that failed too (the old address
   * gone): the ports are then on the new address while the old model stays, and the retry must
   * find them there, not follow again (a second VXLAN socket on the address would fail with
   * EADDRINUSE with one worker). null: no infra open.
   */
  private infraAt: { ip: number | null; ip6: string | null } | null = null;
  private underlay: Underlay | null = null;
  private infra = { tx4: -1, tx6: -1, vxlan: -1, vxlan6: -1, ipip: -1, underlay: -1, host: -1 };
  /** Programs the node's routes, neighbours and MTUs by diff, in a child `ip` (never blocking). */
  private readonly host: HostProgrammer | null;
  /** tx4's tx errors when last reported, and when (see checkRawRefusals). */
  private tx4Refused = { reported: 0, at: 0 };
  /** The same for tx6 (pods' IPv6 to other nodes' addresses). */
  private tx6Refused = { reported: 0, at: 0 };
  /** Learned kernel routes adopted at start, by prefix, each kept until BGP brings that prefix
   * again or the hold ends (see hostState). */
  private readonly learnedHeld = new Map<string, HostLearnedRoute>();
  private learnedHeldUntil = 0;
  /** Runs commands (`ip`) in a small helper process instead of forking this one. */
  private readonly spawner: Spawner | null;
  private readonly endpoints = new Map<string, EndpointPort>();
  /** Endpoints whose interface could not be opened yet (pod not wired yet): retried on a timer. */
  /** Endpoints whose interface could not be attached, by interface name; `since`: when first found so (ms). */
  private readonly pending = new Map<string, { ep: LocalEndpoint; error: string; since: number }>();
  /**
   * Per-port totals of endpoints whose port was closed under them (interface gone, ring reopened)
   * while they stay in the model, by interface name. metricsSnapshot reports them for the
   * withheld endpoint and adds them to its new port's counts once it is back, so the Prometheus
   * series keeps its last values and then goes on from them: a series vanishing and coming back
   * at 0 under the same labels reads as a counter reset. Dropped with the endpoint.
   */
  private readonly carried = new Map<string, PortSample>();
  /**
   * The same for infra ports replaced by a port of the same name (the underlay reopened for a new
   * filter or a wedged ring), by port name: added to the new port's counts in metricsSnapshot.
   * Emptied when the infra is closed (a new interface names its ports anew).
   */
  private readonly carriedInfra = new Map<string, PortSample>();
  private retryTimer: NodeJS.Timeout | null = null;
  /** Underlay neighbours (remote nodes, gateways) with kernel-like ageing and a bound. */
  private readonly neighbors: NeighborTable;
  private readonly neighborTickMs: number;
  private readonly neighbors6: Neighbors6;
  private neighborTimer: NodeJS.Timeout | null = null;
  private readonly ringCheckMs: number;
  private ringTimer: NodeJS.Timeout | null = null;
  private readonly arpSlot: number;
  private started = Date.now();
  /** MTU given to pod interfaces podway attaches (the model's pod MTU). */
  private podMtu = 0;
  /** What podway changed on the host (status().hostChanges, logged at start). A pod veth's
   * sysctls are noted at each attach (quietKernelOn) and forgotten once the veth is gone
   * (liveNotes): at status, and also once the notes doubled since the last pruning (addNotes), so
   * a node whose pods come and go for weeks with nobody asking status holds about twice its live
   * pods' notes, not two for every pod veth it ever attached (the soak, bench/soak/churn.ts). */
  readonly notes: string[] = [];
  /** Notes kept by the last pruning (liveNotes). */
  private notesKept = 0;
  private readonly addressAdvice: string;
  private readonly addressAdvice6: string;
  applied = 0;
  /** How long the last model apply took (ms), for the metrics. */
  lastApplyMs = 0;

  constructor(opts: EngineOptions = {}) {
    this.io = opts.io ?? nativeIO();
    this.batch = Math.min(opts.batch ?? 256, this.io.MAX_BATCH);
    this.log = opts.log ?? silentLog;
    this.manageHost = opts.manageHost ?? true;
    this.forwardingRecordFile = opts.forwardingRecordFile ?? null;
    this.ringVersion = opts.ringVersion ?? 2;
    this.underlayRingBlocks = underlayRingBlocks(this.ringVersion, opts.underlayRingMb ?? UNDERLAY_RING_MB);
    this.qdiscBypass = opts.qdiscBypass ?? false;
    this.gro = opts.gro ?? true;
    this.txGso = opts.txGso ?? true;
    this.txSocket = opts.txSocket ?? true;
    const bp = opts.backpressure ?? true;
    this.holdTx = bp ? { txHoldHigh: HOLD_HIGH, txHoldLow: HOLD_LOW } : {};
    this.holdRx = bp ? { holdRx: true } : {};
    this.rxSuper = opts.rxSuper ?? true;
    this.scatterRx = opts.scatterRx ?? true;
    this.podSuper = opts.podSuper ?? true;
    this.rxMerge = opts.rxMerge ?? true;
    this.workerSteer = opts.workerSteer ?? 'flow';
    this.natToNodes = opts.natToNodes ?? true;
    this.ringCheckMs = opts.ringCheckMs ?? RING_CHECK_MS;
    this.tunnelsOnUnderlay = opts.tunnelRx?.onUnderlay ?? false;
    this.tunnelTable6 = opts.tunnelRx?.ip6 ?? null;
    this.worker = opts.worker ?? { index: 0, count: 1 };
    this.addressAdvice = opts.addressAdvice ?? 'restart podway to register the new address';
    this.addressAdvice6 = opts.addressAdvice6 ?? 'restart podway to register the new address';
    this.shareNeighbor = opts.onNeighbor ?? (() => {});
    this.onTunnelRx = opts.onTunnelRx ?? (() => {});
    this.onOrphans = opts.onOrphans ?? (() => {});
    this.deferOrphanScan = opts.deferOrphanScan ?? false;
    this.orphanLooks = opts.orphanLooks ?? ((look) => look());
    this.onLocalAddresses = opts.onLocalAddresses ?? (() => {});
    this.onUnderlayMtu = opts.onUnderlayMtu ?? (() => {});
    this.onTooBigAnswered = opts.onTooBigAnswered ?? (() => {});
    this.onTick = opts.onTick;
    this.resolveVia = (opts.worker?.index ?? 0) > 0 && opts.onResolve ? opts.onResolve : null;
    // No caller to read the routes: the engine's own table is read again (ownKernelRoutes).
    this.onUnderlayRoutes = opts.onUnderlayRoutes ?? (() => this.refreshOwnRoutes());
    this.tableRetry = new Backoff({ first: opts.tableRetryMs ?? TABLE_RETRY_MIN_MS, max: TABLE_RETRY_MAX_MS });
    this.onSharedOpen = opts.onSharedOpen ?? (() => {});
    // Descriptors [0, batch) carry received batches; one more for frames podway originates (ARP);
    // from batch + 8 on, the packets held for unresolved underlay neighbours (neighbor-queue.ts);
    const perNeighbor = Math.max(0, opts.neighborQueue?.perNeighbor ?? NEIGHBOR_QUEUE_PER_NEIGHBOR);
    const held = perNeighbor > 0 ? Math.max(0, opts.neighborQueue?.total ?? NEIGHBOR_QUEUE_TOTAL) : 0;
    // after them, FRAG_DESCS for the fragments the pipeline makes (Pipeline.setFragArea)
    this.pool = new FramePool(this.batch + 8 + held + FRAG_DESCS);
    this.io.setPool(this.pool);
    this.arpSlot = this.batch;
    this.pipe = new Pipeline(this.pool, this.batch, this.io);
    this.pipe.setFragArea(this.batch + 8 + held);
    const sports = opts.vxlanSourcePorts ?? readLocalPortRange();
    this.pipe.setVxlanSourcePorts(sports[0], sports[1]);
    this.pipe.vxlanPort = opts.vxlanPort ?? VXLAN_PORT;
    this.pipe.vni = opts.vxlanVni ?? CALICO_VNI;
    // the addon's C paths (receive merge, USO, a super-frame's cut) take the port from here on
    this.io.setVxlanPort?.(this.pipe.vxlanPort);
    this.pipe.rpFilter = opts.rpFilter ?? readTunnelRpFilter();
    this.rpFilterGiven = opts.rpFilter !== undefined;
    this.pipe.natToNodes = this.natToNodes;
    this.pipe.allowVxlanFromPods = opts.allowVxlanFromPods ?? false;
    this.pipe.allowIpipFromPods = opts.allowIpipFromPods ?? false;
    this.pipe.onPortError = (p, op, e) => this.portError(p, op, e);
    this.pipe.onUnresolved = (ip, now) => this.resolve(ip, now);
    this.pipe.onNeighbor = (ip, b, off) => this.learn(ip, b, off);
    this.pipe.onPodMacUnknown = (port, ip, now) => this.askPodMac(port, ip, now);
    this.pipe.onPodMacUnknown6 = (port, b, off, now) => this.askPodMac6(port, b, off, now);
    this.pipe.onPortMtuExceeded = (port, now) => this.recheckPortMtu(port, now);
    const onPodMac = opts.onPodMac;
    if (onPodMac && this.worker.count > 1) {
      this.pipe.onPodMac = (port, b, off) => {
        if (this.pipe.role[port] === Role.POD_L2) onPodMac(this.pipe.portName[port], b.slice(off, off + 6));
      };
    }
    this.pipe.onNeighborAnnounce = (ip, b, off, g) => this.announced(ip, b, off, g);
    this.neighbors = new NeighborTable(opts.neighbor);
    this.neighborTickMs = Math.max(10, Math.min(NEIGHBOR_TICK_MS, opts.neighbor?.retransMs ?? NEIGHBOR_TICK_MS));
    if (held > 0) {
      // A neighbour's frames go when it answers, or when it fails (3 probes, retransMs apart);
      // the tick bound is a safety net two ticks past that round.
      const roundMs = Math.max(1, opts.neighbor?.probes ?? 3) * (opts.neighbor?.retransMs ?? 1000);
      this.pipe.held = new NeighborQueue(this.pool, this.batch + 8, held, perNeighbor, Math.ceil(roundMs / this.neighborTickMs) + 2, opts.neighborQueue?.bytes);
      // a super-frame waits whole, cut into its segments by the addon (MemoryIO has none)
      this.pipe.held.superCut = this.io.superCut;
    }
    // (a worker whose neighbours the main thread resolves: its 'stopped answering' at debug, the main thread's warns)
    const delegated6 = (opts.worker?.index ?? 0) > 0 && opts.onResolve6 ? opts.onResolve6 : null;
    this.neighbors6 = new Neighbors6(this.pipe, (write) => this.sendControlFrame(this.infra.underlay, write), () => this.underlay?.mac ?? null, (m, level) => (level === 'warn' ? (delegated6 ? this.log.debug(m, { component: 'neighbors6' }) : this.log.warn(m, { component: 'neighbors6' })) : this.log.info(m, { component: 'neighbors6' })), opts.neighbor, opts.onNeighbor6, (ip6, line) => this.logNeighborChange(ip6, line, () => ({ component: 'neighbors6', neighbor: ip6 })));
    this.neighbors6.delegate = delegated6;
    this.pipe.v6.onUnresolved6 = (b, off, now) => this.neighbors6.request(b, off, now);
    this.pipe.v6.onNeighbor6 = (b, t, m) => this.neighbors6.onAdvert(b, t, m);
    this.pipe.v6.neighborId = (b, off) => this.neighbors6.idAt(b, off);
    // The spawner's helper process is forked here, before any packet ring is mapped: later
    // commands fork it, not this (by then large) process.
    this.spawner = this.manageHost && this.primary ? new Spawner((m) => this.log.warn(m, { component: 'spawner' })) : null;
    this.host = this.spawner ? new HostProgrammer({ log: (m) => this.log.warn(`host: ${m}`, { component: 'host' }), spawn: this.spawner.spawn }) : null;
  }

  /** Commands through the spawner's helper, when there is one (else undefined: started from here;
   * also podway's nft counter reads: run.ts). */
  spawnerExec(): ScanExec | undefined {
    const sp = this.spawner;
    return sp ? (f, a, t) => sp.exec(f, a, t) : undefined;
  }

  /** The spawner helper's spawn (host-managing engine), for other commands run while podway
   * forwards (the nftables tables' updates: NftNat.useSpawner); null without one. */
  get spawnFn(): SpawnFn | null {
    return this.spawner?.spawn ?? null;
  }

  /** Read the kernel's main IPv4 table without blocking (through the spawner when there is one). */
  readKernelRoutes(): Promise<KernelRoute[]> {
    const sp = this.spawner;
    return readKernelRoutes(sp ? (f, a, t) => sp.exec(f, a, t) : undefined);
  }

  /**
   * The table when no caller gives one (podway run gives its KernelRoutes' table with every
   * model, and each worker the one run gave): a KernelRoutes of the engine's own, the same
   * mechanism. Read at the first apply; a failed read keeps the last good table (none before the
   * first: every node on-link, said so), is said and read again with backoff; a kernel route change
   * towards another node (underlayRoutesChanged, when no caller takes onUnderlayRoutes) reads it
   * again; and a table that moves an underlay next hop applies the model again.
   */
  private ownKernelRoutes(): readonly KernelRoute[] {
    if (this.ownRoutes === null) {
      const table = new KernelRoutes(() => this.readKernelRoutes(), {
        error: (m) => this.log.error(m, { component: 'host' }),
        info: (m) => this.log.info(m, { component: 'host' }),
        retry: () => this.refreshOwnRoutes(),
      });
      this.ownRoutes = table;
      try {
        table.accept(readKernelRoutesSync());
      } catch (e) {
        table.fail(e as Error);
      }
    }
    return this.ownRoutes.current();
  }

  /** The engine's own table read again (without blocking); the model applied again if a next hop moved. */
  private refreshOwnRoutes(): void {
    const table = this.ownRoutes;
    if (table === null || this.stopped) return;
    void table.refresh().then((routes) => {
      const model = this.model;
      // a caller's table since (apply's kernelRoutes): the engine's own is no longer used
      if (this.stopped || model === null || this.ownRoutes !== table) return;
      if (gatewaysKey(underlayNextHops(routes, remoteNodeIps(model)), underlayNextHops6(routes, remoteNodeIps6(model))) === this.ownGateways) return;
      try {
        this.apply(model);
      } catch (e) {
        this.log.error(`kernel routes read again: the model could not be applied again: ${(e as Error).message}`, { component: 'host' });
      }
    });
  }

  /** The node's addresses and first-found's picks, without blocking (address-monitor.ts). */
  readNodeAddresses(): Promise<NodeAddresses | null> {
    const sp = this.spawner;
    return readNodeAddresses(sp ? (f, a, t) => sp.exec(f, a, t) : undefined);
  }

  /** The kernel's main table as the caller last gave it (for underlay next hops towards remote nodes). */
  private kernelRoutes: readonly KernelRoute[] | null = null;
  /** The engine's own table while no caller gave one (ownKernelRoutes), and the next hops it gave. */
  private ownRoutes: KernelRoutes | null = null;
  private ownGateways = '';

  /** What the first apply reads from the host, read before it came (useStartReads). */
  private startReads: HostStartReads | null = null;

  /** The node's own addresses in the pipeline's sets now (local-addrs.ts). */
  private local: LocalAddresses = { v4: [], v6: [] };
  /** When the local table was last read (0: never), and whether a read is under way. */
  private localReadAt = 0;
  private localReading = false;
  /** A change was announced while a read was under way: read again once it ends. */
  private localAgain = false;
  /** The host-managing engine's `ip monitor` (local-watch.ts), started with the first model. */
  private localWatch: LocalTableWatch | null = null;

  /**
   * The node's own addresses (the kernel's local table) the pipeline leaves a veth pod's packets
   * for to the kernel (pipeline.ts noRouteFromPod). A family given as null keeps what it has.
   * Returns whether anything changed. A worker gets them from the host-managing engine.
   */
  setLocalAddresses(local: { v4: string[] | null; v6: string[] | null }): boolean {
    const next: LocalAddresses = { v4: local.v4 ?? this.local.v4, v6: local.v6 ?? this.local.v6 };
    if (sameLocalAddresses(next, this.local)) return false;
    this.pipe.local4.set(next.v4);
    this.pipe.v6.local6.set(next.v6);
    this.local = next;
    return true;
  }

  /** The node's own addresses as the pipeline holds them (for the workers' model messages). */
  localAddresses(): LocalAddresses {
    return this.local;
  }

  /**
   * Read the kernel's local table again (host-managing engine, through the spawner, not waited
   * on): a changed set goes into the pipeline, to the workers (onLocalAddresses) and into the log.
   */
  private readLocal(now: number): void {
    const sp = this.spawner;
    if (sp === null || this.stopped) return;
    if (this.localReading) {
      this.localAgain = true;
      return;
    }
    this.localReading = true;
    this.localAgain = false;
    this.localReadAt = now;
    const again = () => {
      this.localReading = false;
      if (this.localAgain && !this.stopped) this.readLocal(Date.now());
    };
    void readLocalAddresses((f, a, t) => sp.exec(f, a, t)).then((got) => {
      again();
      if (this.stopped) return;
      const was = this.local;
      if (!this.setLocalAddresses(got)) return;
      const added = [...this.local.v4.filter((x) => !was.v4.includes(x)), ...this.local.v6.filter((x) => !was.v6.includes(x))];
      const gone = [...was.v4.filter((x) => !this.local.v4.includes(x)), ...was.v6.filter((x) => !this.local.v6.includes(x))];
      const list = (xs: string[]) => (xs.length > 8 ? `${xs.slice(0, 8).join(', ')} and ${xs.length - 8} more` : xs.join(', '));
      this.log.info(`node's own addresses (local table): ${this.local.v4.length} IPv4, ${this.local.v6.length} IPv6${added.length ? `; new: ${list(added)}` : ''}${gone.length ? `; gone: ${list(gone)}` : ''}`, { component: 'host' });
      this.onLocalAddresses(this.local);
    }, again);
  }

  /** Whether an `ip monitor` line is about a main-table IPv4 route covering another node's address,
   * or an unencapsulated route's next hop off our subnet (the underlay next hop towards it may
   * have moved). */
  private routeCoversNode(line: string): boolean {
    if (this.model === null) return false;
    const dst6 = mainRoute6(line);
    if (dst6 !== null) {
      // IPv6: the nodes' IPv6 addresses, and the IPv6 tunnels' and off-subnet direct next hops
      for (const ip of this.model.v6.knownNodeIps6) if (ip !== this.model.v6.ip6 && covers6(dst6, parseIp6(ip))) return true;
      for (const ip of remoteNodeIps6(this.model)) if (covers6(dst6, parseIp6(ip))) return true;
      return false;
    }
    const dst = mainRoute4(line);
    if (dst === null) return false;
    const mask = dst.len === 0 ? 0 : (0xffffffff << (32 - dst.len)) >>> 0;
    const net = (dst.addr & mask) >>> 0;
    for (const ip of this.model.node.knownNodeIps) if (((ip & mask) >>> 0) === net && ip !== this.model.node.ip) return true;
    for (const ip of remoteNodeIps(this.model)) if (((ip & mask) >>> 0) === net) return true;
    return false;
  }

  private underlayRoutesChanged(): void {
    if (this.stopped || this.model === null) return;
    this.underlayRoutesAt = Date.now();
    this.onUnderlayRoutes();
  }

  /** podway began to stop (SIGINT/SIGTERM; forwarding goes on until stop()): what ends with a
   * signal to the whole process group (the spawner helper's `ip monitor`) is not warned about. */
  stopping(): void {
    this.localWatch?.stopping();
  }

  /** Start the `ip monitor` that tells the local table's changes (host-managing engine, once). */
  private watchLocal(): void {
    const sp = this.spawner;
    if (sp === null || this.localWatch !== null || this.stopped) return;
    this.localWatch = new LocalTableWatch({
      spawn: sp.spawn,
      onChange: () => this.readLocal(Date.now()),
      routeConcerns: (line) => this.routeCoversNode(line),
      onRouteChange: () => this.underlayRoutesChanged(),
      // the underlay's MTU changed: read it now, not at the next 5 s check
      onLink: (l) => {
        const ul = this.underlay;
        if (this.stopped || !ul || l.deleted || l.name !== ul.name || l.mtu === ul.mtu) return;
        this.checkUnderlayMtu(Date.now(), 'ip monitor');
        // and the frames the kernel refused meanwhile are answered now, not at the next tick
        this.checkRejected();
      },
      log: (level, m) => (level === 'warn' ? this.log.warn(m, { component: 'host' }) : this.log.info(m, { component: 'host' })),
    });
    this.localWatch.start();
  }


  /**
   * Felix's settings that change live (a FelixConfiguration changed: cli/felix-settings.ts): the
   * pipeline's drop of pods' own tunnel packets at once; natOutgoingExclusions with the next
   * apply (the caller applies the model again: the next hops' NAT flags are computed there).
   */
  /** rp_filter given in the options (not the node's, never read again). */
  private rpFilterGiven = false;
  /** The last change of the node's rp_filter seen while running (status). */
  private rpFilterChange: { at: string; was: number } | null = null;

  /**
   * The node's rp_filter (net.ipv4.conf all/default) read again, as at start: a new value is in
   * force in this pipeline at once and returned with the old one (the caller tells the other
   * forwarding threads: setRpFilter); null when it did not change (or was given in the options).
   * An unreadable value throws, naming the file: the value in force stays.
   */
  rereadRpFilter(dir?: string): { was: number; now: number } | null {
    if (this.rpFilterGiven) return null;
    const now = readTunnelRpFilter(dir);
    const was = this.pipe.rpFilter;
    if (now === was) return null;
    this.setRpFilter(now);
    this.rpFilterChange = { at: new Date().toISOString(), was };
    return { was, now };
  }

  /** Reverse-path filtering of decapsulated IPv4 from now on (0 off, 1 strict, 2 loose). */
  setRpFilter(v: number): void {
    this.pipe.rpFilter = v;
  }

  setFelixOptions(o: { natToNodes?: boolean; allowVxlanFromPods?: boolean; allowIpipFromPods?: boolean }): void {
    if (o.natToNodes !== undefined) this.natToNodes = this.pipe.natToNodes = o.natToNodes;
    if (o.allowVxlanFromPods !== undefined) this.pipe.allowVxlanFromPods = o.allowVxlanFromPods;
    if (o.allowIpipFromPods !== undefined) this.pipe.allowIpipFromPods = o.allowIpipFromPods;
  }
  /**
   * The first apply takes the underlay's interfaces, the pod routes and learned routes an earlier
   * run left from `reads` (readHostAtStart, read while the datastore was awaited) instead of
   * reading them then, one `ip` after the other. Only the first apply, and only once.
   */
  useStartReads(reads: HostStartReads): void {
    if (this.model === null) this.startReads = reads;
  }

  /**
   * Apply a model: open/close ports for changed endpoints, rebuild next hops and FIB, swap.
   * `kernelRoutes`, read by the caller without blocking (readKernelRoutes), says which remote
   * nodes are on-link and which go through a gateway; without it the last table read is used.
   * `tunnels` (worker engines, manageHost false): where the host-managing engine reads tunnels now
   * (its tunnelRx() after applying the same model); a change reopens the ports it concerns.
   */
  apply(model: NodeDataplaneModel, kernelRoutes?: readonly KernelRoute[], tunnels?: TunnelRx): void {
    // After stop() nothing is opened again (a late model would keep the process alive).
    if (this.stopped) throw new Error('engine stopped');
    // Refused here, before any port moves, rather than halfway (model-check.ts).
    checkModel(model);
    if (kernelRoutes) {
      this.kernelRoutes = kernelRoutes;
      this.ownRoutes?.stop();
      this.ownRoutes = null;
    }
    const t0 = performance.now();
    const first = this.model === null;
    const reads = first ? this.startReads : null;
    this.startReads = null;
    // The node's own addresses: as read while the datastore was awaited, else read now (not waited on).
    if (reads) {
      this.setLocalAddresses(reads.local);
      this.localReadAt = Date.now();
    } else if (first) this.readLocal(Date.now());
    if (first) this.watchLocal();
    // What a rejected model puts back (restoreTunnelRx): a worker told the same tunnels again
    // must see them as moved, or its ports would never follow.
    const before = this.tunnelState();
    // A host-managing engine decides this itself (openInfra, followIp6).
    let tunnelsMoved = this.underlayFilterStale;
    if (tunnels && !this.manageHost && (tunnels.onUnderlay !== this.tunnelsOnUnderlay || tunnels.ip6 !== this.tunnelTable6)) {
      this.tunnelsOnUnderlay = tunnels.onUnderlay;
      this.tunnelTable6 = tunnels.ip6;
      tunnelsMoved = true;
    }
    // A worker's ports follow the IPv4 address the host-managing engine's are at (TunnelRx.ip):
    // the model's, except after a failed follow-back there.
    const infraModel = !this.manageHost && tunnels?.ip != null && tunnels.ip !== model.node.ip ? { ...model, node: { ...model.node, ip: tunnels.ip } } : model;
    const infraBefore = this.infraAt;
    let t1 = 0;
    let t2 = 0;
    let tInfra = t0;
    let nh: NextHops;
    try {
      // Against the addresses the ports follow (infraAt), not the last model's: see infraAt.
      if (first || !this.infraAt) this.openInfra(infraModel, reads?.links ?? undefined);
      else if (this.infraAt.ip !== infraModel.node.ip) this.followIp4(infraModel, before);
      // IPv6-only (no IPv4 address): the IPv6 address is what the underlay and sockets follow.
      else if (infraModel.node.ip === null && this.infraAt.ip6 !== model.v6.ip6) this.followIp4(infraModel, before);
      else if (this.infraAt.ip6 !== model.v6.ip6 || tunnelsMoved) this.followIp6(infraModel, before, tunnelsMoved);
      tInfra = performance.now();
      // Like Calico, a changed pool mode gives the new MTU to interfaces attached from now on;
      // running pods keep theirs.
      this.podMtu = model.mtu.pod;
      this.syncEndpoints(model);
      t1 = performance.now();
      const table = this.kernelRoutes ?? this.ownKernelRoutes();
      const gateways = underlayNextHops(table, remoteNodeIps(model));
      // IPv6 likewise: VXLAN's outer packets and unencapsulated routes off the IPv6 subnet
      const gateways6 = underlayNextHops6(table, remoteNodeIps6(model));
      const nextHop6 = (ip: string) => gateways6.get(ip) ?? ip;
      if (this.kernelRoutes === null) this.ownGateways = gatewaysKey(gateways, gateways6);
      t2 = performance.now();
      nh = buildNextHops(model, {
        portOf: (ifname) => this.endpoints.get(ifname)?.port ?? -1,
        neighbor: (ip) => this.neighbors.mac(ip),
        neighborFailed: (ip) => this.neighbors.failed(ip),
        nextHop: (ip) => gateways.get(ip) ?? ip,
        natToNodes: this.natToNodes,
        vni: this.pipe.vni,
        vxlanPort: this.pipe.vxlanPort,
      }, this.pipe.nh);
      const known = new Set<number>(model.node.knownNodeIps);
      // The swap: JS runs one batch at a time, so the next batch sees the new table and FIB together.
      this.pipe.nh = nh;
      // 0 on an IPv6-only node: no ARP or IPv4 reaches the pipeline there (underlayFilter).
      // The VXLAN tunnel address while a pool uses VXLAN (Calico's vxlan.calico exists only then):
      // the source of ICMP errors routed back through a VXLAN tunnel, as the kernel picks it;
      const vxlanTunnelIp = model.encap.vxlan && model.node.vtepIp !== null ? model.node.vtepIp >>> 0 : 0;
      // likewise the IPIP one while a pool uses IPIP (tunl0's address); absent from an older cached model
      const ipipTunnelIp = model.encap.ipip && (model.node.ipipTunnelIp ?? null) !== null ? model.node.ipipTunnelIp! >>> 0 : 0;
      this.pipe.addr = { nodeIp: model.node.ip ?? 0, hasNodeIp: model.node.ip !== null, underlayMac: this.underlay!.mac, knownNodes: known, vxlanTunnelIp, ipipTunnelIp };
      // Tunnels of a mode no pool uses are dropped from this batch on (tunnel_mode_unused).
      this.pipe.tunnels = tunnelsOf(model);
      this.pipe.poolAddr = Uint32Array.from(model.pools, (p) => p.addr >>> 0);
      this.pipe.poolMask = Uint32Array.from(model.pools, (p) => mask32(p.prefixLen));
      // the IPv6 underlay neighbours: each node on our link, else the gateway towards it (nexthops6.ts)
      const subnet6 = networkOf6(model.v6.subnet6);
      const w6 = this.neighbors6.want([...new Set(model.v6.routes.map((r) => underlayNeighbor6(r, subnet6, { nextHop6 })).filter((x): x is string => x !== null))]);
      if (w6.firstRefusal) this.log.warn(`IPv6 neighbour table full: ${w6.refused} underlay next hops left unresolved`, { refused: w6.refused });
      // tx6 takes up to the underlay's MTU (the kernel refuses more: Packet Too Big instead);
      // tx4 likewise (fragmentation needed, or a counted drop without DF). Followed between
      // models when the interface's MTU changes (checkUnderlayMtu).
      this.setTxMtu(model.mtu.underlay, this.underlay!.mtu);
      applyModel6(this.pipe, model, { portOf: (ifname) => this.endpoints.get(ifname)?.port ?? -1, neighbor6: (ip) => this.neighbors6.neighbor6(ip), neighborFailed6: (ip) => this.neighbors6.failed6(ip), nextHop6 });
      // the tunnel and direct routes likewise, when the interface's MTU is below the model's
      this.boundRouteMtus(model.mtu.underlay, this.underlay!.mtu);
    } catch (e) {
      this.followBack(e as Error, infraBefore);
      throw e;
    }
    // Solicit the IPv6 underlay neighbours of the IPv6 tunnels and direct routes now, not on the first packet.
    this.neighbors6.solicitMissing();
    this.pipe.natSources.set(model.pools.filter((p) => p.natOutgoing));
    // host ports: their pods' ends, whose packets go to the node's kernel (docs/cni.md, "Host ports")
    this.pipe.hostPortSources.set(model.endpoints.flatMap((e) => (e.hostPorts ?? []).map((h) => ({ ip: ip4Bytes(h.podIp), proto: h.protocol === 'udp' ? 17 : 6, port: h.port }))));
    const prevModel = this.model;
    this.model = model;
    this.applied++;
    // the pods' ports are open and forward from here: tell them where their gateway is
    if (first) this.announceGateway(model);
    const gws = new Set<number>();
    for (let i = 0; i < nh.count; i++) if (nh.gw[i] !== 0) gws.add(nh.gw[i]);
    const w = this.neighbors.want(gws);
    if (w.firstRefusal) this.log.warn(`neighbour table full (${this.neighbors.maxEntries} entries): ${w.refused} underlay next hops left unresolved (their VXLAN/IPIP traffic goes through the kernel; direct routes' packets are dropped, neighbor_table_full)`, { refused: w.refused });
    const now = Date.now();
    for (const gw of gws) if (!this.neighbors.mac(gw)) this.resolve(gw, now);
    if (!this.neighborTimer) {
      this.neighborTimer = setInterval(() => {
        this.ageNeighbors();
        this.checkRawRefusals();
        this.checkRejected();
        this.onTick?.(Date.now());
      }, this.neighborTickMs);
      this.neighborTimer.unref();
    }
    if (!this.ringTimer && this.ringCheckMs > 0 && this.io.checkRing) {
      this.ringTimer = setInterval(() => this.checkRings(), this.ringCheckMs);
      this.ringTimer.unref();
    }
    const t3 = performance.now();
    if (first && this.host) this.adoptLeftovers(model, reads);
    else if (prevModel && this.host) this.endpointsGone(prevModel, model);
    this.watchTunnelTable();
    this.programHost();
    this.prepareSparePort();
    this.lastApplyMs = performance.now() - t0;
    const routes6 = model.v6.routes.length;
    const withheld = model.withheld.length + model.v6.withheld.length;
    // where the time went: the underlay and tunnel sockets (at the first apply, or an address
    // followed), the endpoints' ports, the underlay gateways, the host (leftovers adopted at the
    // first apply, routes handed to the host programmer)
    const parts = `${tInfra - t0 >= 0.05 ? `infra ${(tInfra - t0).toFixed(1)}, ` : ''}endpoints ${(t1 - tInfra).toFixed(1)}, gw ${(t2 - t1).toFixed(1)}, host ${(performance.now() - t3).toFixed(1)}`;
    this.log.info(`applied model: ${model.routes.length + routes6} routes${routes6 ? ` (${routes6} IPv6)` : ''}, ${this.endpoints.size} endpoints, ${withheld} withheld (${this.lastApplyMs.toFixed(1)} ms; ${parts})`, { routes: model.routes.length + routes6, routes6, endpoints: this.endpoints.size, withheld, ms: Math.round(this.lastApplyMs * 10) / 10 });
  }

  /**
   * A model was rejected (`why`) after the infra ports may have followed its addresses (a step of
   * apply after followIp4/followIp6/openInfra threw; what a datastore object can carry is refused
   * before, model-check.ts): they follow back to the last good model's, so the engine is wholly on
   * it (sockets, underlay filter and tunnel table where its encapsulation and ARP say the node is)
   * and tunnelRx() is where it was, as the workers were told. Counted (failures.followedBack);
   * when that fails too (the old address is gone from the node), the ports stay where they are,
   * counted (followBackFailed), and the next model's apply starts from there (infraAt).
   * A worker follows back to where its ports were before (`was`: where the host-managing engine
   * last told it, TunnelRx.ip), which is not the last good model's address after a failed
   * follow-back there.
   */
  private followBack(why: Error, was: { ip: number | null; ip6: string | null } | null): void {
    const good = this.model;
    const last = good && !this.manageHost && was && was.ip !== good.node.ip ? { ...good, node: { ...good.node, ip: was.ip } } : good;
    const at = this.infraAt;
    // No infra open (a move to another interface failed with the old ports closed, followIp4):
    // not rolled back either; the next model opens them.
    if (!last || !at || (at.ip === last.node.ip && at.ip6 === last.v6.ip6)) return;
    const from = addrsText(at.ip, at.ip6);
    const to = addrsText(last.node.ip, last.v6.ip6);
    const state = this.tunnelState();
    try {
      if (at.ip !== last.node.ip || (at.ip === null && at.ip6 !== last.v6.ip6)) this.followIp4(last, state);
      else this.followIp6(last, state);
      this.failures.followedBack++;
      this.log.warn(`model rejected after the tunnel sockets, underlay filter and tunnel table followed its node address (${why.message}): followed back ${from} -> ${to}, the last good model's`, { component: 'host' });
    } catch (e) {
      this.failures.followBackFailed++;
      this.log.error(`model rejected after the tunnel sockets, underlay filter and tunnel table followed its node address (${why.message}), and they could not follow back to ${to} (${(e as Error).message}): ${this.infraAt ? `they stay on ${from}` : 'no node port is open'} while the model in force names ${to}, until the next model`, { component: 'host' });
    }
  }

  /** `links`: `ip -j addr show` read already (the first apply's start reads). */
  private openInfra(model: NodeDataplaneModel, links?: string): void {
    this.closeInfra();
    let ul: Underlay;
    try {
      ul = findUnderlay(model.node.ip, model.v6.ip6, links);
    } catch (e) {
      // The start's `ip addr` was read up to START_READS_MAX_AGE_MS before (while the datastore was
      // awaited): an address that came since (DHCP at boot, found by autodetection at registration)
      // is not in it. Read again before giving up.
      if (links === undefined) throw e;
      ul = findUnderlay(model.node.ip, model.v6.ip6);
    }
    this.underlay = ul;
    if (this.manageHost) {
      // a move to another interface: the one left forwards as before podway came (its ports are closed)
      for (const name of [...this.forwardingWas.keys()]) if (name !== ul.name) this.restoreForwardingOf(name);
      this.notes.push(...quietKernelOn(ul.name, false, this.forwardingWas, this.forwardingRecord(ul.name)));
    }
    const nodeIp = model.node.ip;
    if (this.manageHost) {
      const why = this.installTunnelTable(ul.name, fmt4(nodeIp), model.v6.ip6);
      this.ownsTunnelTable = why === null;
      this.tunnelsOnUnderlay = why === null;
      this.tunnelTable6 = why === null ? model.v6.ip6 : null;
      if (why === null) this.noteTunnelTable(this.tunnelTableNote(ul.name, nodeIp, model.v6.ip6));
      else {
        this.failures.tunnelTable++;
        this.log.warn(`tunnels received on the UDP/raw sockets, without the kernel's offload metadata (a veth underlay with offloads on can stall TCP from kernel nodes): nft: ${why}`, { component: 'host' });
      }
    }
    // With tunnels on the underlay port the sockets are still read: the table leaves outer IPv4
    // fragments to the kernel (the underlay filter skips them too), which reassembles them and
    // hands the whole datagram to these sockets (nft-tunnels.ts).
    const sockBuf = 4 << 20;
    try {
      this.infra.tx4 = this.io.openRaw({ proto: 255, sndbuf: 4 << 20 });
      this.pipe.setPort(this.infra.tx4, Role.TX4, 'tx4(raw)');
      this.infra.tx6 = this.openTx6();
      // IPv6-only node: no IPv4 address to receive VXLAN or IPIP on (no such sockets).
      if (nodeIp !== null) {
        this.infra.vxlan = this.io.openUdp({ addr: nodeIp, port: this.pipe.vxlanPort, rcvbuf: sockBuf, reuseport: this.worker.count > 1 });
        this.pipe.setPort(this.infra.vxlan, Role.VXLAN_RX, `vxlan(${formatIpv4(nodeIp)}:${this.pipe.vxlanPort})`);
      }
      this.infra.vxlan6 = this.openVxlan6(model.v6.ip6);
      // A raw socket gets a copy of every packet (no fanout), and the TUN is single-queue: worker 0.
      if (this.primary) {
        if (nodeIp !== null) {
          this.infra.ipip = this.io.openRaw({ proto: 4, addr: nodeIp, rcvbuf: sockBuf });
          this.pipe.setPort(this.infra.ipip, Role.IPIP_RX, 'ipip(proto 4)');
        }
        // The host port: the node's own stack reaches pods through it (pool routes point at it), and
        // tap/tun pods reach the node through it. Not persistent: it goes away with the process.
        this.infra.host = this.io.openTun(HOST_PORT_NAME, { ...this.holdRx });
        this.pipe.setPort(this.infra.host, Role.HOST_TUN, `host(${HOST_PORT_NAME})`);
        if (this.manageHost) {
          this.notes.push(...quietKernelOn(HOST_PORT_NAME, false));
          // host ports from the node's 127.0.0.1 to a TAP/TUN pod: translated to the pod, the
          // packet leaves into podway0 with its loopback source (table ip podway's hostport_snat
          // gives it the node's address after the routing), which the kernel's routing allows
          // only with route_localnet, as the plugin sets it on a veth pod's host veth; table ip
          // podway drops anything else from 127.0.0.0/8 into podway0, and 127.0.0.0/8 out of it
          // (docs/cni.md, "Host ports"). podway0 is new each start: nothing to set back.
          try {
            const localnet = setSysctl(`net.ipv4.conf.${HOST_PORT_NAME}.route_localnet`, '1');
            if (localnet) this.notes.push(localnet);
          } catch (e) {
            this.log.warn(`${(e as Error).message}: the node's connections from 127.0.0.1 to a TAP or TUN pod's host ports will fail`, { component: 'host' });
          }
          linkUp(HOST_PORT_NAME);
        }
      }
      this.infra.underlay = this.openUnderlay(ul, model);
      this.pipe.setPort(this.infra.underlay, Role.UNDERLAY, `underlay(${ul.name})`);
    } catch (e) {
      this.closeInfra();
      const code = errnoOf(e);
      if (code === 'EADDRINUSE') throw new Error(`UDP ${nodeIp === null ? `[${model.v6.ip6}]` : formatIpv4(nodeIp)}:${this.pipe.vxlanPort} is busy: is a kernel vxlan device or another podway using it on this node? (${(e as Error).message})`);
      throw e;
    }
    this.pipe.tx4Port = this.infra.tx4;
    this.pipe.v6.tx6Port = this.infra.tx6;
    this.pipe.underlayPort = this.infra.underlay;
    this.pipe.hostPort = this.infra.host;
    for (const p of [this.infra.vxlan, this.infra.vxlan6, this.infra.ipip, this.infra.underlay, this.infra.host]) if (p >= 0) this.watch(p);
    this.infraAt = { ip: nodeIp, ip6: model.v6.ip6 };
  }

  /**
   * The IPv6 VXLAN socket on the node's IPv6 address (-1 without one). Whole VXLAN-over-IPv6
   * datagrams arrive on the underlay port (pipeline6); the nft table leaves outer IPv6 fragments to
   * the kernel, which reassembles them and hands the datagram here (nft-tunnels.ts). Only with the
   * table: without it the kernel would hand this socket every datagram the underlay port also
   * takes (each delivered twice), so there is no socket then and IPv6 outer fragments are lost;
   * the same when the table names another address (a rewrite for a new address failed: followIp6).
   */
  private openVxlan6(ip6: string | null): number {
    if (ip6 === null || !this.tunnelsOnUnderlay || this.tunnelTable6 !== ip6) return -1;
    try {
      const p = this.io.openUdp({ addr6: ip6Bytes(ip6), port: this.pipe.vxlanPort, rcvbuf: 4 << 20, reuseport: this.worker.count > 1 });
      this.pipe.setPort(p, Role.VXLAN6_RX, `vxlan6([${ip6}]:${this.pipe.vxlanPort})`);
      return p;
    } catch (e) {
      this.log.warn(`no IPv6 VXLAN socket on [${ip6}]:${this.pipe.vxlanPort} (${(e as Error).message}): fragmented VXLAN over IPv6 is lost`, { component: 'host' });
      return -1;
    }
  }

  /**
   * The IPv6 raw socket pods' IPv6 packets for other nodes' addresses and outside the pools leave by (tx6). A node whose
   * kernel has no IPv6 cannot open it: said once, and those packets get ICMPv6 unreachable
   * (no_route) as before, while everything else runs.
   */
  private openTx6(): number {
    try {
      const p = this.io.openRaw({ ipv6: true, sndbuf: 4 << 20 });
      this.pipe.setPort(p, Role.TX6, 'tx6(raw)');
      return p;
    } catch (e) {
      this.log.warn(`no IPv6 raw socket (${(e as Error).message}): pods' IPv6 packets for other nodes' addresses and outside the pools get no route`, { component: 'host' });
      return -1;
    }
  }

  /** The underlay packet port; its filter takes IPv6 only while the node has an IPv6 address. */
  private openUnderlay(ul: Underlay, model: NodeDataplaneModel): number {
    const p = this.io.openPacket(ul.name, { ring: true, ringVersion: this.ringVersion, ringBlocks: this.underlayRingBlocks, qdiscBypass: this.qdiscBypass, bpf: underlayFilter(model.node.ip, { ipv6: model.v6.ip6 !== null, tunnels: this.tunnelsOnUnderlay, vxlanPort: this.pipe.vxlanPort, steer: this.steer() }), sndbuf: 4 << 20, txGso: this.txGso, txSocket: this.txSocket, rxSuper: this.rxSuper, rxMerge: this.rxMerge, fanoutGroup: this.fanout(ul.name), ...this.holdTx });
    this.underlayFilterStale = false;
    return p;
  }

  private tunnelState(): TunnelState {
    return { owns: this.ownsTunnelTable, onUnderlay: this.tunnelsOnUnderlay, ip6: this.tunnelTable6 };
  }

  /**
   * A model is rejected after its tunnel table went in (or out) because its port could not be
   * opened: the old ports stay, so the table and the flags go back to what they were, or tunnels
   * to the old address would be dropped by a table naming the new one and read by nobody (or read
   * twice). `tableChanged`: this attempt installed or removed a table. A table nft will not put
   * back leaves none: tunnels on the sockets, the underlay port reopened by the next apply.
   * Workers only put their flags back (the host-managing engine tells them again).
   */
  private restoreTunnelRx(before: TunnelState, tableChanged: boolean, ul: string, nodeIp: number | null): void {
    if (this.manageHost && tableChanged) {
      if (before.owns) {
        const why = this.installTunnelTable(ul, fmt4(nodeIp), before.ip6);
        if (why !== null) {
          this.failures.tunnelTable++;
          removeTunnelRx();
          this.ownsTunnelTable = false;
          this.tunnelsOnUnderlay = false;
          this.tunnelTable6 = null;
          this.noteTunnelTable(null);
          this.underlayFilterStale = true;
          this.log.warn(`could not put nftables table inet ${TUNNEL_TABLE} back for ${nodeIp === null ? before.ip6 : formatIpv4(nodeIp)} (${why}): tunnels received on the UDP/raw sockets; the underlay port is reopened with the next model`, { component: 'host' });
          return;
        }
        this.noteTunnelTable(this.tunnelTableNote(ul, nodeIp, before.ip6));
      } else if (this.ownsTunnelTable) {
        removeTunnelRx();
        this.noteTunnelTable(null);
      }
    }
    this.ownsTunnelTable = before.owns;
    this.tunnelsOnUnderlay = before.onUnderlay;
    this.tunnelTable6 = before.ip6;
  }

  /**
   * The host note on the tunnel table (status().hostChanges) says what is in force: a new one
   * replaces the one before (the node's IPv6 address appearing, a changed address, a retry), and
   * `null` takes it away (the table gone, tunnels read on the sockets). Before, each change added
   * a line, so `podway status` showed the table for the old addresses beside the new one.
   */
  private noteTunnelTable(text: string | null): void {
    const prefix = `nftables table inet ${TUNNEL_TABLE}:`;
    for (let k = this.notes.length - 1; k >= 0; k--) if (this.notes[k].startsWith(prefix)) this.notes.splice(k, 1);
    if (text !== null) this.notes.push(text);
  }

  private tunnelTableNote(ul: string, nodeIp: number | null, ip6: string | null): string {
    const to = nodeIp === null ? `VXLAN to ${ip6}` : `VXLAN and IPIP to ${formatIpv4(nodeIp)}${ip6 ? ` and VXLAN to ${ip6}` : ''}`;
    return `nftables table inet ${TUNNEL_TABLE}: ${to} received on ${ul}'s packet socket (offload metadata), the kernel's copy dropped; outer fragments reassembled by the kernel, read from the sockets`;
  }

  /**
   * The node's IPv4 address changed (its Node's bgp.ipv4Address: re-detected by `podway run`,
   * cli/address-monitor.ts, or edited): what names it follows without a restart. On the same
   * underlay interface: the tunnel table is installed again for the new address (one nft
   * transaction, so there is no moment without it; the IPv6 rules with the model's IPv6 address),
   * the VXLAN UDP socket and the IPIP raw socket are bound to it, and the underlay port is reopened
   * with a filter for it (each new port open before the old one closes: a failure keeps the old
   * ones and rejects the model, "keeping the last good state"; when nft refuses the rewrite the
   * table is removed, as it would drop nothing any more, and tunnels are read on the sockets, as
   * without nft: failures.tunnelTable). The encapsulation source, ARP's
   * sender address and ICMP errors read the pipeline's nodeIp, swapped by apply with the rest of
   * the model; the host port, the pods' ports and the host's routes stay as they are. The address
   * on another interface: everything is opened again there (openInfra), as at start. That move is
   * not rolled back: openInfra closes the old ports first (the host TUN cannot be opened twice
   * under its name, and the old address is gone anyway), so when a new port cannot be opened the
   * model is rejected with no node port open (readiness lists them; the pods' ports stay), and
   * infraAt is null, so the next model applied opens them again (as a first apply does).
   * A model rejected after this succeeded (a later step of apply threw) has the ports follow back
   * to the old address (followBack); if they cannot, they stay on the new one (infraAt) with the
   * old model in force, and its retry finds them there and follows nothing.
   */
  private followIp4(model: NodeDataplaneModel, before: TunnelState): void {
    const was = this.infraAt!.ip;
    const change = was !== null && model.node.ip !== null
      ? `node address ${formatIpv4(was)} -> ${formatIpv4(model.node.ip)}`
      : `node address ${addrsText(was, this.infraAt!.ip6)} -> ${addrsText(model.node.ip, model.v6.ip6)}`;
    // Throws (the model is rejected, nothing changed) when no interface holds the new address.
    const ul = findUnderlay(model.node.ip, model.v6.ip6);
    // To or from IPv6-only (no IPv4 address), or a new IPv6 address on an IPv6-only node: the
    // sockets to keep differ, everything is opened again, as for a move to another interface.
    if (was === null || model.node.ip === null) {
      this.log.warn(`${change} on ${ul.name}: underlay, tunnel sockets and host port opened again`, { component: 'host', interface: ul.name });
      this.openInfra(model);
      this.nodeAddressMissing = null;
      this.addressProblemSaid = null;
      this.addrCheckedAt = 0;
      return;
    }
    if (!this.underlay || ul.name !== this.underlay.name) {
      // not rolled back on failure: see above
      this.log.warn(`${change} on ${ul.name} (was ${this.underlay?.name ?? 'none'}): underlay, tunnel sockets and host port opened again there`, { component: 'host', interface: ul.name });
      this.openInfra(model);
      return;
    }
    const nodeIp = model.node.ip;
    const sockBuf = 4 << 20;
    let vxlan = -1;
    let ipip = -1;
    try {
      vxlan = this.io.openUdp({ addr: nodeIp, port: this.pipe.vxlanPort, rcvbuf: sockBuf, reuseport: this.worker.count > 1 });
      if (this.infra.ipip >= 0) ipip = this.io.openRaw({ proto: 4, addr: nodeIp, rcvbuf: sockBuf });
    } catch (e) {
      if (vxlan >= 0) this.io.close(vxlan);
      this.restoreTunnelRx(before, false, ul.name, was);
      throw new Error(`${change}: ${(e as Error).message}`);
    }
    // The table before the underlay port: the port's filter takes tunnels only while the table
    // drops the kernel's copy of them (else each would be read twice: port and socket).
    // Tried again on every new address, as at start (a table refused before may install now).
    // If the port then cannot be opened, the table goes back (restoreTunnelRx).
    let tableChanged = false;
    if (this.manageHost) {
      const why = this.installTunnelTable(ul.name, formatIpv4(nodeIp), model.v6.ip6);
      tableChanged = why === null || this.ownsTunnelTable;
      if (why === null) {
        this.ownsTunnelTable = true;
        this.tunnelsOnUnderlay = true;
        this.tunnelTable6 = model.v6.ip6;
      } else {
        // A table for the old address would drop nothing now: gone, tunnels read on the sockets.
        this.failures.tunnelTable++;
        if (this.ownsTunnelTable) removeTunnelRx();
        this.ownsTunnelTable = false;
        this.tunnelsOnUnderlay = false;
        this.tunnelTable6 = null;
        this.noteTunnelTable(null);
        this.log.warn(`${change}: could not install nftables table inet ${TUNNEL_TABLE} for it (${why}): tunnels received on the UDP/raw sockets, without the kernel's offload metadata`, { component: 'host' });
      }
    }
    let underlay = -1;
    try {
      if (this.infra.underlay >= 0) underlay = this.openUnderlay(ul, model);
    } catch (e) {
      for (const p of [vxlan, ipip]) if (p >= 0) this.io.close(p);
      this.restoreTunnelRx(before, tableChanged, ul.name, was);
      throw new Error(`${change}: ${(e as Error).message}`);
    }
    if (this.manageHost && this.ownsTunnelTable) this.noteTunnelTable(this.tunnelTableNote(ul.name, nodeIp, model.v6.ip6));
    this.underlay = ul;
    const swap = (k: 'vxlan' | 'ipip' | 'underlay', p: number, role: (typeof Role)[keyof typeof Role], name: string) => {
      if (p < 0) return;
      const old = this.infra[k];
      this.infra[k] = p;
      if (old >= 0 && this.pipe.portName[old] === name) this.carryInfra(old, k);
      this.pipe.setPort(p, role, name);
      this.watch(p);
      if (old >= 0) this.forgetPort(old);
    };
    swap('vxlan', vxlan, Role.VXLAN_RX, `vxlan(${formatIpv4(nodeIp)}:${this.pipe.vxlanPort})`);
    swap('ipip', ipip, Role.IPIP_RX, 'ipip(proto 4)');
    swap('underlay', underlay, Role.UNDERLAY, `underlay(${ul.name})`);
    this.pipe.underlayPort = this.infra.underlay;
    // The IPv6 VXLAN socket goes with the table's IPv6 address (openVxlan6), which was rewritten.
    if (this.infra.vxlan6 >= 0) this.forgetPort(this.infra.vxlan6);
    this.infra.vxlan6 = this.openVxlan6(model.v6.ip6);
    if (this.infra.vxlan6 >= 0) this.watch(this.infra.vxlan6);
    this.infraAt = { ip: nodeIp, ip6: model.v6.ip6 };
    // The warning about the old address (checkNodeAddress) is answered: look again at once.
    this.nodeAddressMissing = null;
    this.addressProblemSaid = null;
    this.addrCheckedAt = 0;
    this.log.info(`${change}: tunnel sockets, underlay port filter${this.ownsTunnelTable ? ` and nftables table inet ${TUNNEL_TABLE}` : ''} follow it on ${ul.name}`, { component: 'host', interface: ul.name });
  }

  /**
   * The node's IPv6 address changed, appeared or went away (its Node's bgp.ipv6Address) while its
   * IPv4 address stayed (a changed IPv4 address: followIp4, which handles both): the tunnel table's
   * IPv6 rule is rewritten for the new address (one nft transaction replacing the table, so the
   * IPv4 rules never lapse), and when IPv6 appears or goes the underlay port is reopened with a
   * filter that takes (or no longer takes) IPv6, the new port before the old one closes. When nft
   * refuses the rewrite, the old table stays (its IPv4 rules hold) and the new address gets no
   * IPv6 VXLAN socket: its VXLAN is read from the underlay port only, once (a socket would get the
   * kernel's copy too), and its outer fragments are lost (counted in failures.tunnelTable).
   * Without a table (refused before) it is tried again, as for a new IPv4 address.
   * A worker engine comes here also when it is told the tunnels moved (`tunnelsMoved`): the
   * underlay port's filter and the IPv6 VXLAN socket follow the host-managing engine's decision.
   */
  private followIp6(model: NodeDataplaneModel, before: TunnelState, tunnelsMoved = false): void {
    const ul = this.underlay;
    if (!ul) return;
    const was = this.infraAt!.ip6;
    let tableChanged = false;
    if (this.manageHost && this.ownsTunnelTable && was !== model.v6.ip6) {
      const why = this.installTunnelTable(ul.name, fmt4(model.node.ip), model.v6.ip6);
      if (why === null) {
        tableChanged = true;
        this.tunnelTable6 = model.v6.ip6;
        this.noteTunnelTable(this.tunnelTableNote(ul.name, model.node.ip, model.v6.ip6));
        this.log.info(`node IPv6 address ${was ?? 'none'} -> ${model.v6.ip6 ?? 'none'}: nftables table inet ${TUNNEL_TABLE} follows it`, { component: 'host' });
      } else {
        this.failures.tunnelTable++;
        const v6 = model.v6.ip6 === null ? '' : `; VXLAN to ${model.v6.ip6} is read from the underlay port only, without an IPv6 VXLAN socket (outer fragments are lost)`;
        this.log.warn(`node IPv6 address ${was ?? 'none'} -> ${model.v6.ip6 ?? 'none'}: could not rewrite nftables table inet ${TUNNEL_TABLE} (it still names ${this.tunnelTable6 ?? 'no IPv6 address'}): ${why}${v6}`, { component: 'host' });
      }
    } else if (this.manageHost && was !== model.v6.ip6) {
      // No table (nft refused it before): tried again on a new address, as followIp4 does; once in
      // place, the underlay port's filter must take the tunnels too (reopened below).
      const why = this.installTunnelTable(ul.name, fmt4(model.node.ip), model.v6.ip6);
      if (why === null) {
        tableChanged = true;
        this.ownsTunnelTable = true;
        this.tunnelsOnUnderlay = true;
        this.tunnelTable6 = model.v6.ip6;
        tunnelsMoved = true;
        this.noteTunnelTable(this.tunnelTableNote(ul.name, model.node.ip, model.v6.ip6));
        this.log.info(`node IPv6 address ${was ?? 'none'} -> ${model.v6.ip6 ?? 'none'}: nftables table inet ${TUNNEL_TABLE} installed, tunnels now received on the underlay port`, { component: 'host' });
      } else {
        this.failures.tunnelTable++;
        this.log.warn(`node IPv6 address ${was ?? 'none'} -> ${model.v6.ip6 ?? 'none'}: still no nftables table inet ${TUNNEL_TABLE} (${why}): tunnels received on the UDP/raw sockets`, { component: 'host' });
      }
    }
    // The underlay port first: when it cannot be opened the model is rejected with the old ports,
    // table and flags (restoreTunnelRx), and a retry finds the change to make again.
    if (((was === null) !== (model.v6.ip6 === null) || tunnelsMoved) && this.infra.underlay >= 0) {
      try {
        this.reopenUnderlay(model);
      } catch (e) {
        this.restoreTunnelRx(before, tableChanged, ul.name, model.node.ip);
        throw e;
      }
    }
    if (this.infra.vxlan6 >= 0) this.forgetPort(this.infra.vxlan6);
    this.infra.vxlan6 = this.openVxlan6(model.v6.ip6);
    if (this.infra.vxlan6 >= 0) this.watch(this.infra.vxlan6);
    this.infraAt = { ip: this.infraAt!.ip, ip6: model.v6.ip6 };
  }

  /** Open the underlay port again (a new filter, or a ring that could not be set up again): the new
   * port before the old one closes, so the kernel never has neither. */
  private reopenUnderlay(model: NodeDataplaneModel): void {
    const ul = this.underlay!;
    const old = this.infra.underlay;
    const p = this.openUnderlay(ul, model);
    this.carryInfra(old, 'underlay');
    this.infra.underlay = p;
    this.pipe.setPort(p, Role.UNDERLAY, `underlay(${ul.name})`);
    this.pipe.underlayPort = p;
    this.watch(p);
    this.forgetPort(old);
  }

  /** The tunnel table is not what the addresses the ports follow call for: none (nft refused it),
   * one naming another IPv6 address (a refused rewrite), or an underlay filter that disagrees. */
  private tunnelTableWrong(): boolean {
    const at = this.infraAt;
    return at !== null && (!this.ownsTunnelTable || this.tunnelTable6 !== at.ip6 || this.underlayFilterStale);
  }

  /** After a model: a refused table is tried again on a timer (healTunnelTable), not only with the
   * next address change; a table in place stops it. */
  private watchTunnelTable(): void {
    if (!this.manageHost || this.stopped) return;
    if (!this.tunnelTableWrong()) {
      if (this.tableTimer) clearTimeout(this.tableTimer);
      this.tableTimer = null;
      this.tableRetry.reset();
      this.tableRetryWhy = null;
      return;
    }
    if (this.tableTimer) return;
    this.tableTimer = setTimeout(() => this.healTunnelTable(), this.tableRetry.next());
    this.tableTimer.unref();
  }

  /**
   * The retry timer fired: install the table for the addresses the ports follow (one nft
   * transaction, as followIp4 does). Once in, tunnels are read on the underlay port: its filter
   * takes them (the port reopened, the new one before the old one closes; if that fails the table
   * goes again, as it would drop what nothing reads), the IPv6 VXLAN socket opens on the address
   * the table now names, and the workers are told (onTunnelRx). Each refusal counts in
   * failures.tunnelTable; a missing nft is not tried again (installing it needs a restart anyway).
   */
  private healTunnelTable(): void {
    this.tableTimer = null;
    const model = this.model;
    const at = this.infraAt;
    const ul = this.underlay;
    if (this.stopped || !this.manageHost || !model || !at || !ul || !this.tunnelTableWrong()) return this.watchTunnelTable();
    // a model rejected after its new address was followed: its retry (apply) installs the table
    if (at.ip !== model.node.ip || at.ip6 !== model.v6.ip6) return this.watchTunnelTable();
    const why = this.installTunnelTable(ul.name, fmt4(at.ip), at.ip6);
    if (why !== null) {
      this.failures.tunnelTable++;
      const missing = /not found/.test(why);
      if (why !== this.tableRetryWhy) {
        this.tableRetryWhy = why;
        this.log.warn(`nftables table inet ${TUNNEL_TABLE} still not in place (${why}): ${missing ? 'not tried again' : `tried again, backing off up to ${TABLE_RETRY_MAX_MS / 1000} s`}`, { component: 'host' });
      }
      if (!missing) this.watchTunnelTable();
      return;
    }
    const wasOwned = this.ownsTunnelTable;
    this.ownsTunnelTable = true;
    this.tunnelTable6 = at.ip6;
    if (!this.tunnelsOnUnderlay || this.underlayFilterStale) {
      this.tunnelsOnUnderlay = true;
      if (this.infra.underlay >= 0) {
        try {
          this.reopenUnderlay(model);
        } catch (e) {
          if (!wasOwned) removeTunnelRx();
          this.ownsTunnelTable = false;
          this.tunnelsOnUnderlay = false;
          this.tunnelTable6 = null;
          this.noteTunnelTable(null);
          this.failures.tunnelTable++;
          this.log.warn(`nftables table inet ${TUNNEL_TABLE} installed, but the underlay port could not be reopened to take the tunnels (${(e as Error).message}): table removed again, tried again later`, { component: 'host' });
          return this.watchTunnelTable();
        }
      }
    }
    if (this.infra.vxlan6 >= 0) this.forgetPort(this.infra.vxlan6);
    this.infra.vxlan6 = this.openVxlan6(at.ip6);
    if (this.infra.vxlan6 >= 0) this.watch(this.infra.vxlan6);
    this.noteTunnelTable(this.tunnelTableNote(ul.name, at.ip, at.ip6));
    this.log.info(`nftables table inet ${TUNNEL_TABLE} installed on a retry: tunnels to ${at.ip === null ? at.ip6 : `${formatIpv4(at.ip)}${at.ip6 ? ` and ${at.ip6}` : ''}`} received on the underlay port`, { component: 'host' });
    this.watchTunnelTable();
    this.onTunnelRx(this.tunnelRx());
  }

  /** The VXLAN port the tunnel table a previous run left matched, when another (vxlanPort changed
   * between the runs): read once, before this engine's first install; null: none, or the same. */
  private vxlanOldPort: number | null | undefined = undefined;

  /** The previous run's VXLAN port the tunnel table drops (and counts: vxlan_old_port), or null:
   * none (then the table has no such rule, and nothing to read). */
  get previousVxlanPort(): number | null {
    return this.vxlanOldPort ?? null;
  }

  /** Install the tunnel table (nft-tunnels.ts) for this run's VXLAN port, and the previous run's
   * port (dropped, counted vxlan_old_port) when it differed. */
  private installTunnelTable(ul: string, nodeIp: string | null, ip6: string | null): string | null {
    if (this.vxlanOldPort === undefined) {
      const was = installedTunnelPort();
      this.vxlanOldPort = was !== null && was !== this.pipe.vxlanPort ? was : null;
      if (this.vxlanOldPort !== null) this.log.warn(`vxlanPort changed since the last run (${this.vxlanOldPort} -> ${this.pipe.vxlanPort}): VXLAN still arriving on ${this.vxlanOldPort} (nodes not moved yet) is dropped by the kernel, counted vxlan_old_port (${podwayCommand()} counters, podway_dropped_packets_total; nft list counter inet ${TUNNEL_TABLE} vxlan_old_port), until podway run stops`, { component: 'host' });
    }
    return installTunnelRx(ul, nodeIp, this.pipe.vxlanPort, ip6, 'nft', this.vxlanOldPort);
  }

  /** Where this engine reads tunnels now: what worker engines are told (apply's `tunnels`). */
  tunnelRx(): TunnelRx {
    return { onUnderlay: this.tunnelsOnUnderlay, ip6: this.tunnelTable6, ip: this.infraAt?.ip ?? null };
  }

  /** Keep an infra port's counts before it is replaced by one of the same name (carriedInfra). */
  private carryInfra(old: number, kind: string): void {
    const [last] = pipelineSnapshot(this.pipe, this.io, [{ port: old, kind, workload: '' }]).ports;
    const before = this.carriedInfra.get(last.name);
    if (before) addPortCounts(last, before);
    this.carriedInfra.set(last.name, last);
  }

  private closeInfra(): void {
    this.infraAt = null;
    // The pipeline must not send to port numbers closed here: the addon hands them out again (a
    // pod's port could get the old tx6 number after a failed reopen).
    this.pipe.tx4Port = this.pipe.v6.tx6Port = this.pipe.underlayPort = this.pipe.hostPort = -1;
    this.carriedInfra.clear();
    if (this.ownsTunnelTable) removeTunnelRx();
    this.ownsTunnelTable = false;
    for (const k of ['tx4', 'tx6', 'vxlan', 'vxlan6', 'ipip', 'underlay', 'host'] as const) {
      const p = this.infra[k];
      if (p >= 0) {
        this.forgetPort(p);
        this.infra[k] = -1;
      }
    }
  }

  /** PACKET_FANOUT group for an interface when several workers share it by fanout (0 = none). */
  private fanout(ifname: string): number {
    if (this.worker.count <= 1 || this.workerSteer !== 'fanout') return 0;
    const idx = Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8'));
    return (idx % 0xfffe) + 1; // distinct per interface (a group binds to one device)
  }

  /** This worker's share of the flows for the socket filters (steer.ts); undefined: all of them. */
  private steer(): Steer | undefined {
    return this.worker.count > 1 && this.workerSteer === 'flow' ? this.worker : undefined;
  }

  private get primary(): boolean {
    return this.worker.index === 0;
  }

  private watch(port: number): void {
    // The I/O layer receives the first batch before it calls us (recvMax): one JS call per wake-up.
    this.io.poll(port, (p, n) => {
      if (n < 0) {
        // a poll error (the socket's pending error, e.g. ENETDOWN for a device that is down, or a
        // failed fd) or the receive's own, as -errno
        const code = errnoName(n);
        this.portError(p, 'recv', Object.assign(new Error(`${code}: receive on ${this.pipe.portName[p]} failed`), { code }));
        return;
      }
      // a port polled again after a receive error receives again: its next error is logged
      // and paused from the shortest pause again (one map lookup, only while some port failed)
      if (n > 0 && this.repollDelay.size > 0 && this.repollDelay.has(p)) this.recovered(p);
      try {
        this.pipe.drainReceived(p, n);
      } catch (e) {
        // Only this port's receive failed (sends are handled per output port in the pipeline):
        // count it and pause this port's polling; it is polled again after a growing pause, and a
        // port whose endpoint went away is closed by the next model apply anyway.
        this.portError(p, 'recv', e as Error);
      }
    }, this.pipe.batch);
  }

  /** Ports whose receive failed, with the timer that polls them again. */
  private readonly repoll = new Map<number, NodeJS.Timeout>();
  /** The pause per port that failed: REPOLL_MIN_MS, doubled on each failure, up to REPOLL_MAX_MS. */
  private readonly repollDelay = new Map<number, Backoff>();
  /** One log line per port and kind of error, not one per failure. */
  private readonly loggedErrors = new Map<number, string>();

  /**
   * A veth pod's port reports ENETDOWN and its interface is still the one attached: the device is
   * down (attached before `ip link set up`, or set down since). The kernel removed its node routes
   * and neighbours when it went down, so the host programmer forgets them: it adds them again,
   * retrying while the device is down, and at once when the link is up again (checkLinks: a pod
   * that sends nothing would otherwise wait for the programmer's retry, up to 10 s) or the port
   * receives again (recovered), whichever comes first.
   */
  private linkDown(p: number, e: Error): void {
    if (errnoOf(e) !== 'ENETDOWN') return;
    for (const [name, cur] of this.endpoints) {
      if (cur.port !== p || cur.kind !== 'veth') continue;
      this.downLinks.add(name);
      this.host?.forgetInterface(name);
    }
    if (this.downLinks.size > 0 && !this.linkTimer && !this.stopped) {
      this.linkTimer = setInterval(() => this.checkLinks(), LINK_CHECK_MS);
      this.linkTimer.unref();
    }
  }

  private linkTimer: NodeJS.Timeout | null = null;

  /**
   * The down veth pods whose link is up again (IFF_UP): their routes and neighbours are programmed
   * again now, and their port is polled again now instead of after its repoll pause (which grows
   * to 10 s while the device stays down). One sysfs read per down link per tick; the timer stops
   * when none is down.
   */
  private checkLinks(): void {
    for (const name of [...this.downLinks]) {
      const cur = this.endpoints.get(name);
      if (!cur) {
        this.downLinks.delete(name);
        continue;
      }
      if (!interfaceAdminUp(name)) continue;
      this.downLinks.delete(name);
      this.host?.forgetInterface(name);
      const p = cur.port;
      const timer = this.repoll.get(p);
      if (timer !== undefined) {
        clearTimeout(timer);
        this.repoll.delete(p);
        if (this.pipe.role[p] !== Role.NONE) this.watch(p);
      }
      this.log.info(`endpoint ${cur.ep.key}: interface ${name} is up again: its node route and neighbour programmed again`, { workload: cur.ep.key, interface: name });
    }
    if (this.downLinks.size === 0 && this.linkTimer) {
      clearInterval(this.linkTimer);
      this.linkTimer = null;
    }
  }

  /** Endpoints whose interface went away under their port (vanished), and when: see VANISHED_QUIET_MS. */
  private readonly vanishedAt = new Map<string, number>();

  /** Veth pods whose port reported ENETDOWN and has not received since. */
  private readonly downLinks = new Set<string>();

  private recovered(p: number): void {
    // Frames read while the port's link is down (a packet socket still reads what the node itself
    // sends through a down device) are no recovery: "receives again" waits for the link.
    const dev = p === this.infra.underlay ? this.underlay?.name : [...this.endpoints].find(([, e]) => e.port === p && e.kind === 'veth')?.[0];
    if (dev !== undefined && readLinkState(dev)?.running === false) return;
    this.repollDelay.delete(p);
    const name = this.pipe.portName[p];
    if (this.downLinks.delete(name)) this.host?.forgetInterface(name);
    if (!this.loggedErrors.get(p)?.startsWith('recv ')) return;
    this.loggedErrors.delete(p);
    this.log.info(`port ${this.pipe.portName[p]}: receives again`, { port: this.pipe.portName[p] });
  }

  private portError(p: number, op: 'send' | 'recv', e: Error): void {
    // A pod's interface deleted under its port (every `podman rm`: the CNI DEL removes the veth
    // before its endpoint's deletion reaches podway) fails the receive with ENETDOWN: that is
    // said once, by vanished(), not as a failed receive.
    if (op === 'recv' && !this.repoll.has(p) && this.vanished(p)) {
      this.pipe.portCounters[p * PORT_COUNTERS + PortCounter.RX_ERRORS]++;
      return;
    }
    const key = `${op} ${errnoOf(e) ?? e.message}`;
    if (this.loggedErrors.get(p) !== key) {
      this.loggedErrors.set(p, key);
      this.log.warn(`port ${this.pipe.portName[p]}: ${op} failed: ${e.message}${op === 'recv' ? '; polling it again shortly' : '; frames for it are counted as dropped'}`, { port: this.pipe.portName[p], op, errno: errnoOf(e) });
    }
    if (op === 'send') return;
    this.pipe.portCounters[p * PORT_COUNTERS + PortCounter.RX_ERRORS]++;
    if (this.repoll.has(p)) return;
    this.linkDown(p, e);
    this.io.unpoll(p);
    let backoff = this.repollDelay.get(p);
    if (!backoff) this.repollDelay.set(p, (backoff = new Backoff({ first: REPOLL_MIN_MS, max: REPOLL_MAX_MS })));
    const delay = backoff.next();
    const timer = setTimeout(() => {
      this.repoll.delete(p);
      if (this.pipe.role[p] !== Role.NONE) this.watch(p);
    }, delay);
    timer.unref();
    this.repoll.set(p, timer);
  }

  /**
   * A veth pod whose interface is gone (deleted, or deleted and made again under the same name: a
   * packet socket stays bound to the old ifindex and never receives again, so polling it again
   * cannot help): close its port and re-apply the model on a later turn, which withholds its routes
   * and retries the attach every second like a pod not wired yet (syncEndpoints), so the pod
   * forwards again as soon as its interface is back. The kernel dropped the interface's routes
   * and neighbours with it: the host programmer adds them again on attach.
   */
  private vanished(p: number): boolean {
    for (const [name, cur] of this.endpoints) {
      if (cur.port !== p) continue;
      // A tap/tun device lives in the pod's namespace; its fd says whether it is still attached
      // to a device (the kernel detaches it when the device is deleted: fdinfo's iff is empty).
      const now = cur.kind === 'veth' ? interfaceIndex(name) : tunAttached(this.io.info(p).fd) ? this.io.info(p).ifindex : null;
      if (now === this.io.info(p).ifindex) return false;
      // info, not warn: a deleted pod's veth goes before its endpoint (the CNI DEL's order), so
      // this is every pod deletion's first sign; an endpoint still waiting after VANISHED_QUIET_MS
      // is warned of then (retryPending).
      this.log.info(`endpoint ${cur.ep.key}: interface ${name} ${now === null ? 'went away' : `was replaced (ifindex ${now})`}; its routes are withheld until it is attached again (or its endpoint deleted, as a pod deletion does next)`, { workload: cur.ep.key, interface: name });
      this.vanishedAt.set(name, Date.now());
      this.detachEndpoint(name, p);
      this.host?.forgetInterface(name);
      return true;
    }
    return false;
  }

  /** Close an endpoint's port and forget it; a re-apply on a later turn attaches it again. */
  private detachEndpoint(name: string, p: number): void {
    const cur = this.endpoints.get(name);
    this.checkRejectedPort(p); // its last refusals, into the DROPS carried below
    this.checkNativeDropsPort(p, true); // and its last native drops, the backlog the close discards
    if (cur) {
      const [last] = pipelineSnapshot(this.pipe, this.io, [{ port: p, kind: cur.kind, workload: cur.ep.key }]).ports;
      const before = this.carried.get(name);
      if (before) addPortCounts(last, before);
      this.carried.set(name, last);
    }
    this.forgetPort(p);
    this.endpoints.delete(name);
    setImmediate(() => {
      if (this.stopped || !this.model) return;
      // off the caller's stack, so nothing above catches a throw here: it would end the process
      try {
        this.apply(this.model);
      } catch (e) {
        this.log.error(`re-applying the model after ${name} was detached failed: ${(e as Error).message}`, { interface: name });
      }
    });
  }

  /** A port is closed: forget its error state (its id will be reused by another port). */
  private forgetPort(p: number): void {
    clearTimeout(this.repoll.get(p));
    this.repoll.delete(p);
    this.repollDelay.delete(p);
    this.loggedErrors.delete(p);
    this.downLinks.delete(this.pipe.portName[p]);
    // its refusals since the last tick are counted; the id's next port starts from 0
    this.checkRejectedPort(p);
    this.rejectedSeen[p] = 0;
    // its last native drops; and the frames its backlog holds now, which the close discards
    this.checkNativeDropsPort(p, true);
    this.nativeSeen.fill(0, p * NATIVE_DROP_FIELDS.length, (p + 1) * NATIVE_DROP_FIELDS.length);
    this.io.close(p);
    this.backlogTaken[p] = 0;
    this.pipe.clearPort(p);
    // the slot's next pod is asked for its MAC at once, not a second after this one was
    this.podMacAskedAt[p] = 0;
  }

  /** Interfaces of the model's endpoints attached at least once (openEndpoint: a re-attach asks a
   * pod with a stated MAC for its own: askReattached). */
  private readonly attachedBefore = new Set<string>();

  private openEndpoint(ep: LocalEndpoint, model: NodeDataplaneModel): EndpointPort {
    const kind = ep.interfaceType;
    const mac = ep.mac ? parseMac(ep.mac) : undefined;
    let port: number;
    const netns = ep.interfaceNetns ?? undefined;
    if (kind === 'veth') {
      if (!interfaceExists(ep.interfaceName)) throw Object.assign(new Error(`interface ${ep.interfaceName} of workload ${ep.key} does not exist`), { code: 'ENODEV' });
      if (this.manageHost) this.addNotes(quietKernelOn(ep.interfaceName, true));
      const steer = this.steer();
      port = this.io.openPacket(ep.interfaceName, { ...this.podPortOptions(), fanoutGroup: this.fanout(ep.interfaceName), ...(steer ? { bpf: podSteerFilter(steer) } : {}) });
      this.prepareSparePort();
    } else {
      // single-queue: worker 0 opens and reads it, the others transmit through its fd
      const shared = this.worker.count === 1 ? {} : this.primary ? { share: true } : { sharedTx: true };
      port = kind === 'tap' ? this.io.openTap(ep.interfaceName, { netns, existing: true, ...shared, ...this.holdRx }) : this.io.openTun(ep.interfaceName, { netns, existing: true, ...shared, ...this.holdRx });
    }
    const txOnly = kind !== 'veth' && this.worker.count > 1 && !this.primary;
    // a MAC worker 0 learned before this worker opened the port (a TAP's, or a veth's: learnSharedPodMac)
    const shared = kind !== 'tun' && this.worker.count > 1 && !this.primary ? this.sharedPodMacs.get(ep.interfaceName) : undefined;
    if (kind !== 'veth' && this.worker.count > 1 && this.primary) setImmediate(() => this.onSharedOpen(ep.interfaceName));
    this.pipe.setPort(port, kind === 'tun' ? Role.POD_TUN : Role.POD_L2, ep.interfaceName, ep.ips, mac ?? shared, kind === 'veth');
    // its MTU is read with every port's once the model's endpoints are open (syncEndpoints)
    this.portMtusUnread = true;
    if (!txOnly) this.watch(port);
    // A stated MAC (spec.mac) may be stale when the pod's interface was made again under the same
    // endpoint (not rewritten): re-attached, the pod is asked at once, and its answer's source MAC
    // replaces it if it differs (Pipeline.podMacCheck), not only once the pod sends of itself.
    const again = this.attachedBefore.has(ep.interfaceName);
    this.attachedBefore.add(ep.interfaceName);
    if (again && mac && kind !== 'tun' && !txOnly) this.askReattached(port, ep, model);
    // A tap/tun device is the pod's own interface, so podway gives it the pod MTU as a CNI would
    // (programmed with the host state). A veth's host end keeps its MTU: podway must receive
    // oversize DF packets to answer them with ICMP fragmentation needed (a smaller host-end MTU
    // would make the veth drop them silently).
    return { ep, port, kind, mtu: kind === 'veth' ? 0 : this.podMtu };
  }

  private podPortOptions() {
    return { ring: true, ringVersion: this.ringVersion, ringBlocks: podRingBlocks(this.ringVersion), qdiscBypass: this.qdiscBypass, gro: this.gro, scatterRx: this.scatterRx, rxSuperTcp: this.podSuper, gsoMin: POD_GSO_MIN, ignoreOutgoing: true, ...this.holdRx };
  }

  /**
   * Keep a veth pod's port prepared ahead: setting up a receive ring waits for an RCU grace period
   * in the kernel (8-15 ms under load, bench/watch), which a new pod would otherwise spend on the
   * forwarding thread before its first packet. The addon prepares it on a libuv worker thread; the
   * next openPacket with these options only binds it. One worker only: the addon's spares are not
   * shared between threads' fanout groups.
   */
  private prepareSparePort(): void {
    if (this.worker.count === 1 && !this.stopped) this.io.preparePacket?.(this.podPortOptions());
  }

  /** An endpoint's addresses for a log line (IPv4, then the IPv6 ones of the same interface): this
   * one endpoint's, not endpointAddresses' map of every endpoint. */
  private addressesOf(ep: NodeDataplaneModel['endpoints'][number], model: NodeDataplaneModel): string {
    const v6 = model.v6.endpoints.find((e) => e.interfaceName === ep.interfaceName)?.ips6 ?? [];
    return addressTexts(ep.ips, v6).join(', ') || 'no address';
  }

  /** The first model's endpoints were synced: later attaches are logged one by one. */
  private endpointsSynced = false;

  private syncEndpoints(model: NodeDataplaneModel): void {
    const want = new Map(model.endpoints.map((e) => [e.interfaceName, e]));
    for (const [name, cur] of this.endpoints) {
      const next = want.get(name);
      if (!next || next.interfaceType !== cur.kind || next.interfaceNetns !== cur.ep.interfaceNetns) {
        // a pod deleted (its endpoint gone) is named, as its attach was
        if (!next) this.log.info(`endpoint ${cur.ep.key}: deleted; interface ${name} detached`, { workload: cur.ep.key, interface: name });
        this.forgetPort(cur.port);
        this.endpoints.delete(name);
        this.sharedPodMacs.delete(name);
      }
    }
    for (const [name, ep] of want) {
      const cur = this.endpoints.get(name);
      if (cur) {
        // Same interface: refresh addresses (and a MAC the endpoint states) in place. What the
        // port learned (the pod's MAC) and its counters stay: a model that does not change this
        // pod must not interrupt its traffic.
        const changed = !sameEndpointAddressing(cur.ep, ep);
        cur.ep = ep;
        if (changed) this.pipe.updatePort(cur.port, ep.ips, ep.mac ? parseMac(ep.mac) : undefined);
        continue;
      }
      try {
        this.endpoints.set(name, this.openEndpoint(ep, model));
        // each pod added later is named (the first model's endpoints: the applied-model line counts them)
        if (this.endpointsSynced) this.log.info(`endpoint ${ep.key}: attached ${name} (${this.addressesOf(ep, model)})`, { workload: ep.key, interface: name });
        this.pending.delete(name);
      } catch (e) {
        // A missing pod interface is not fatal: its route is withheld (no next hop port) and the
        // attach is retried every second until the interface appears.
        const error = (e as Error).message;
        const was = this.pending.get(name);
        // Its interface just went away (vanished): most likely its pod is being deleted, whose
        // endpoint deletion follows; warned of only if it is still waiting after VANISHED_QUIET_MS.
        // (the went-away line said it at info: this one at debug, not a fault nor a promise)
        const level = this.vanishedAt.has(name) ? 'debug' : 'warn';
        if (was?.error !== error) this.log[level](`endpoint ${ep.key}: cannot attach ${name}: ${error}; retrying`, { workload: ep.key, interface: name });
        // the same endpoint waiting on: since its first failure (status names long waits)
        this.pending.set(name, { ep, error, since: was && was.ep.key === ep.key ? was.since : Date.now() });
      }
    }
    // before the first packet for a pod attached now (a retried attach comes through here too)
    if (this.portMtusUnread) this.readPortMtus();
    this.endpointsSynced = true;
    for (const [name, { ep }] of [...this.pending]) {
      if (want.has(name)) continue;
      this.pending.delete(name);
      this.log.info(`endpoint ${ep.key}: deleted (interface ${name} was already gone)`, { workload: ep.key, interface: name });
    }
    for (const name of [...this.attachedBefore]) if (!want.has(name)) this.attachedBefore.delete(name);
    for (const name of [...this.vanishedAt.keys()]) if (!this.pending.has(name)) this.vanishedAt.delete(name);
    // A pod gone from the model takes its series with it; one whose port kind changed starts new ones.
    for (const [name, c] of this.carried) if (want.get(name)?.interfaceType !== c.kind) this.carried.delete(name);
    if (this.pending.size > 0 && !this.retryTimer) {
      this.retryTimer = setInterval(() => this.retryPending(), 1000);
      this.retryTimer.unref();
    } else if (this.pending.size === 0 && this.retryTimer) {
      clearInterval(this.retryTimer);
      this.retryTimer = null;
    }
  }

  private retryPending(): void {
    if (!this.model) return;
    let attached = 0;
    const now = Date.now();
    for (const [name, { ep, error }] of this.pending) {
      const gone = this.vanishedAt.get(name);
      if (gone !== undefined && now - gone >= VANISHED_QUIET_MS) {
        this.vanishedAt.delete(name);
        this.log.warn(`endpoint ${ep.key}: interface ${name} still missing ${Math.round((now - gone) / 1000)} s after it went away, and the endpoint was not deleted: ${error}; retrying (podway status names it after --endpoint-missing-after)`, { workload: ep.key, interface: name });
      }
      if (!this.canOpen(ep)) continue;
      try {
        this.endpoints.set(name, this.openEndpoint(ep, this.model));
        this.pending.delete(name);
        attached++;
        this.log.info(`endpoint ${ep.key}: attached ${name} (${this.addressesOf(ep, this.model)})`, { workload: ep.key, interface: name });
      } catch {
        /* still missing */
      }
    }
    // Rebuild next hops so the newly attached interfaces get their routes.
    if (attached > 0) this.apply(this.model);
  }

  /** Cheap check before a retry: a veth must exist here; tap/tun devices are looked up by open. */
  private canOpen(ep: LocalEndpoint): boolean {
    return ep.interfaceType !== 'veth' || interfaceExists(ep.interfaceName);
  }

  /**
   * What the node's kernel should hold for us: a /32 and /128 route and permanent neighbour per
   * attached veth pod address (the node reaches its pods through the kernel, as with Felix), both
   * families' pools through the host port (veth pods' /32s and /128s stay more specific), the
   * node's tunnel addresses on the host port (hostPoolState), and tap/tun MTUs. The programmer diffs it
   * against what it already programmed and runs only the changes, off the forwarding thread.
   */
  private hostState(model: NodeDataplaneModel): HostState {
    const eps = [...this.endpoints.values()];
    const ips6 = new Map(model.v6.endpoints.map((e) => [e.interfaceName, e.ips6] as const));
    const dev = this.underlay?.name ?? null;
    const learned: HostLearnedRoute[] = dev === null ? [] : (model.kernelRoutes ?? []).map((r) => ({ cidr: r.cidr, via: r.via, dev }));
    // After a restart, each learned route left in the kernel stays until a session brings that
    // prefix again, at most LEARNED_HOLD_MS (as BIRD's kernel protocol with graceful restart keeps
    // them). Per route: a slow peer's prefix is not dropped because a quicker peer's came first.
    // Learned again, it leaves the hold for good (a later withdrawal removes it at once); one no
    // peer brings again goes when the hold ends, or as soon as every peer's session is up and has
    // said End-of-RIB (kernelRoutesComplete: nobody will bring it).
    if (this.learnedHeld.size > 0) {
      // Every peer's whole table is here (each said End-of-RIB): what it lacks is gone for good.
      if (Date.now() >= this.learnedHeldUntil || model.kernelRoutesComplete === true) this.learnedHeld.clear();
      for (const l of learned) this.learnedHeld.delete(l.cidr);
      learned.push(...this.learnedHeld.values());
    }
    return {
      learned,
      pods: eps.filter((e) => e.kind === 'veth').map((e) => ({ ifname: e.ep.interfaceName, ips: e.ep.ips, ips6: ips6.get(e.ep.interfaceName) ?? [], mac: e.ep.mac })),
      // Both families' pools into the host port: the node reaches tap/tun and remote pods through podway.
      ...hostPoolState(model, this.underlay?.mtu),
      mtus: eps.filter((e) => e.mtu > 0).map((e) => ({ ifname: e.ep.interfaceName, netns: e.ep.interfaceNetns ?? null, mtu: e.mtu })),
    };
  }

  /**
   * Packets handed to the node's kernel through a raw port (tx4: pod egress, NATed egress, counted
   * as `egress`/`egress_nat` when handed over; tx6: the same for IPv6, other nodes' addresses included) that the
   * kernel then refused (no route: ENETUNREACH; too big: EMSGSIZE) are only that port's tx errors;
   * say so in the log, at most once a minute per port while it goes on.
   */
  private checkRawRefusals(): void {
    this.tx4Refused = this.reportRefusals(this.infra.tx4, this.tx4Refused, (fresh, last, why) =>
      `tx4(raw): the node's kernel refused ${fresh} packet(s) podway handed it (pod egress, natOutgoing), last ${last}${why}; they are lost (tx4(raw)'s txErrors and lastError in \`${podwayCommand()} counters\`, podway_port_errors_total{direction="tx"} in /metrics)`,
    ' (no route on the node: with --bgp, check that the learned route is in the kernel, `ip route show proto bird`)');
    this.tx6Refused = this.reportRefusals(this.infra.tx6, this.tx6Refused, (fresh, last, why) =>
      `tx6(raw): the node's kernel refused ${fresh} packet(s) podway handed it (pods' IPv6 to other nodes and outside the pools, natOutgoing), last ${last}${why}; they are lost (drop reason tx_rejected, no_node_address6 while the node's IPv6 address is missing; tx6(raw)'s txErrors and lastError in \`${podwayCommand()} counters\`)`,
    ' (no IPv6 route on the node to that address, `ip -6 route get ADDR`)');
  }

  /** Per port, the addon's txRejected already counted as `tx_rejected` drops. */
  private readonly rejectedSeen = new Float64Array(MAX_PORTS);
  /** takeRejected's records (allocated on the first rejection). */
  private rejectedBuf: Uint8Array | null = null;

  /**
   * Frames a port's kernel refused for themselves after podway handed them over (the addon drops
   * them: rejected at once, or refused with ENOBUFS at the head of the backlog past its bounded
   * retries; native/README.md): counted as drops (`tx_rejected`, the port's DROPS), and shown to
   * `podway capture --stage drop` under that port. Read once per neighbour tick and for `podway
   * counters`/metrics, never per batch.
   */
  checkRejected(): void {
    this.checkNativeDrops();
    const all = this.io.txRejectedAll;
    if (all) {
      // one call for every port's count: only a port whose count moved costs more
      const now = (this.rejectedNow ??= new Float64Array(MAX_PORTS));
      now.set(this.rejectedSeen);
      all.call(this.io, now);
      for (const p of Object.values(this.infra)) if (p >= 0 && now[p] !== this.rejectedSeen[p]) this.checkRejectedPort(p, now[p]);
      for (const e of this.endpoints.values()) if (now[e.port] !== this.rejectedSeen[e.port]) this.checkRejectedPort(e.port, now[e.port]);
      return;
    }
    for (const p of [...Object.values(this.infra), ...[...this.endpoints.values()].map((e) => e.port)]) this.checkRejectedPort(p);
  }

  private rejectedNow: Float64Array | null = null;

  /** Drops the addon makes as it reads a port (no descriptor reaches JS), by the port stat that
   * counts them and the reason they are counted under, in nativeDropsAll's order (io.ts
   * NATIVE_DROP_FIELDS). */
  private static readonly NATIVE_DROPS: readonly (readonly [keyof PortStats, number])[] = NATIVE_DROP_FIELDS.map((f) => [f, NATIVE_DROP_REASON[f]] as const);
  /** Per port and NATIVE_DROPS entry (port * NATIVE_DROPS.length + k), the count already taken
   * into the reasons and DROPS. */
  private readonly nativeSeen = new Float64Array(MAX_PORTS * NATIVE_DROP_FIELDS.length);
  /** nativeDropsAll's answer (allocated on the first read). */
  private nativeNow: Float64Array | null = null;

  /**
   * The addon's own drops (NATIVE_DROPS) since the last read, counted under their reasons and in
   * the port's DROPS: once per neighbour tick and for counters/metrics. Every port's in one addon
   * call into a typed array (nativeDropsAll: no object, no syscall per port; a port whose counts
   * did not move costs a comparison each), else a stats() call per port.
   */
  private checkNativeDrops(): void {
    const all = this.io.nativeDropsAll;
    if (!all) {
      for (const p of Object.values(this.infra)) this.checkNativeDropsPort(p);
      for (const e of this.endpoints.values()) this.checkNativeDropsPort(e.port);
      return;
    }
    const now = (this.nativeNow ??= new Float64Array(MAX_PORTS * NATIVE_DROP_FIELDS.length));
    // a slot the addon leaves untouched (a port closed since) reads as its last count: no change
    now.set(this.nativeSeen);
    all.call(this.io, now);
    for (const p of Object.values(this.infra)) if (p >= 0) this.takeNativeDrops(p, now);
    for (const e of this.endpoints.values()) this.takeNativeDrops(e.port, now);
  }

  /** Port p's native drop counts in `counts` (nativeDropsAll's layout) taken in where they moved. */
  private takeNativeDrops(p: number, counts: Float64Array): void {
    const n = NATIVE_DROP_FIELDS.length;
    const at = p * n;
    for (let k = 0; k < n; k++) {
      const c = counts[at + k];
      const seen = this.nativeSeen[at + k];
      if (c === seen) continue;
      this.nativeSeen[at + k] = c;
      if (c < seen) continue; // (not expected: zeroed when a port closes)
      this.pipe.counters[Engine.NATIVE_DROPS[k][1]] += c - seen;
      this.pipe.portCounters[p * PORT_COUNTERS + PortCounter.DROPS] += c - seen;
    }
  }

  /** checkNativeDropsPort's stats() counts in nativeDropsAll's layout (only port p's slots used). */
  private nativeOne: Float64Array | null = null;

  /** Per port: its backlog was counted tx_backlog_dropped as it is being closed (once). */
  private readonly backlogTaken = new Uint8Array(MAX_PORTS);

  /** checkNativeDrops for one port; `closing`: it is about to be closed, so the frames its backlog
   * holds now (which the close discards) are counted too, once. */
  private checkNativeDropsPort(p: number, closing = false): void {
    if (p < 0) return;
    let st: PortStats;
    try {
      st = this.io.stats(p);
    } catch {
      return;
    }
    const left = closing && !this.backlogTaken[p] ? (st.txBacklog ?? 0) : 0;
    if (closing) this.backlogTaken[p] = 1;
    if (left > 0) {
      this.pipe.counters[Reason.TX_BACKLOG_DROPPED] += left;
      this.pipe.portCounters[p * PORT_COUNTERS + PortCounter.DROPS] += left;
    }
    const counts = (this.nativeOne ??= new Float64Array(MAX_PORTS * NATIVE_DROP_FIELDS.length));
    for (let k = 0; k < NATIVE_DROP_FIELDS.length; k++) counts[p * NATIVE_DROP_FIELDS.length + k] = (st[NATIVE_DROP_FIELDS[k]] as number | undefined) ?? 0;
    this.takeNativeDrops(p, counts);
  }

  /** checkRejected for one port (also when it is closed, before its id is reused); `count`: its
   * txRejected when already read. */
  private checkRejectedPort(p: number, count?: number): void {
    const take = this.io.takeRejected;
    if (p < 0) return;
    let n: number;
    if (count !== undefined) n = count;
    else {
      try {
        n = this.io.stats(p).txRejected ?? 0;
      } catch {
        return;
      }
    }
    const seen = this.rejectedSeen[p];
    if (n === seen) return;
    this.rejectedSeen[p] = n;
    if (n < seen) return; // (not expected: the entry is zeroed when a port closes)
    const fresh = n - seen;
    // tx6's refusals while the node's IPv6 address is missing have their own reason
    const reason = p === this.infra.tx6 && this.nodeAddress6Missing() ? Reason6.NO_NODE_ADDRESS6 : Reason.TX_REJECTED;
    this.pipe.counters[reason] += fresh;
    this.pipe.portCounters[p * PORT_COUNTERS + PortCounter.DROPS] += fresh;
    if (!take) return;
    const buf = this.rejectedBuf ??= new Uint8Array(1 << 15);
    const k = take(p, buf);
    let at = 0;
    while (at + 4 <= k) { // bytes of the copies kept (the last few; each frame's original length)
      this.pipe.counterBytes[reason] += buf[at] | (buf[at + 1] << 8);
      at += 4 + (buf[at + 2] | (buf[at + 3] << 8));
    }
    const cap = this.pipe.capture;
    if (cap !== null && k > 0) cap.rejected(buf, k, this.pipe.portName[p], this.pipe.linkOf(p), reason);
    if (k > 0) this.answerTooBig(p, buf, k);
  }

  /** Per port, the addon's txTooBig already seen (answerTooBig). */
  private readonly tooBigSeen = new Float64Array(MAX_PORTS);

  /**
   * The underlay port or tx4/tx6 had frames refused as too big (EMSGSIZE, the port's txTooBig; `buf`
   * holds takeRejected's copies, `k` bytes): the underlay's MTU was lowered under podway. Its MTU
   * is read again now (checkUnderlayMtu: the routes are bounded by it from here, logged once), not
   * at the next 5 s check, and the pods' packets among the copies are routed again from their pod
   * (Pipeline.answerRefused), so a DF one is answered with fragmentation needed / Packet Too Big
   * at the new path MTU and the pod's TCP adapts at once (counted frag_needed and
   * too_big_answered). Runs from checkRejected (the neighbour tick, or a counters read), only for
   * a port whose refusals moved: one stats call then.
   */
  private answerTooBig(p: number, buf: Uint8Array, k: number): void {
    const ul = this.underlay;
    const link = p === this.infra.underlay ? Link.ETHERNET : p === this.infra.tx4 || p === this.infra.tx6 ? Link.IP : -1;
    if (link < 0 || !ul || !this.model) return;
    let big: number;
    try {
      big = this.io.stats(p).txTooBig ?? 0;
    } catch {
      return;
    }
    const fresh = big - this.tooBigSeen[p];
    this.tooBigSeen[p] = big;
    if (fresh <= 0) return;
    this.checkUnderlayMtu(Date.now(), `${this.pipe.portName[p]} refused ${fresh} frame(s) as too big`);
    const n = this.pipe.answerRefused(buf, k, link, ul.mtu);
    if (n > 0) {
      this.tooBigAnswered += n;
      this.onTooBigAnswered(n);
    }
  }

  /** Pods' packets answered so (answerTooBig) on this thread, and on the other forwarding
   * threads as they told it (addTooBigAnswered), for status. */
  private tooBigAnswered = 0;

  /** Another forwarding thread answered `n` refused packets (its onTooBigAnswered). */
  addTooBigAnswered(n: number): void {
    if (Number.isInteger(n) && n > 0) this.tooBigAnswered += n;
  }

  /**
   * Whether the node's IPv6 address is missing from its underlay link, that link up (the kernel
   * flushed it: a link set down and up; removed by hand): tx6's refusals are then counted
   * `no_node_address6` instead of `tx_rejected`, since the node's IPv6 routes went with the address.
   * Looked for only when tx6 had refusals (each engine for itself: workers have their own tx6).
   */
  private nodeAddress6Missing(): boolean {
    const ip6 = this.model?.v6.ip6;
    if (!ip6 || !this.underlay) return false;
    const st = nodeAddressState([ip6], this.underlay.name, networkInterfaces(), readLinkState(this.underlay.name));
    return st.missing.length > 0 && !st.linkDown;
  }

  /** One raw port's refusals since `was` reported (see checkRawRefusals); returns the new state. */
  private reportRefusals(port: number, was: { reported: number; at: number }, text: (fresh: number, last: string, why: string) => string, unreachWhy: string): { reported: number; at: number } {
    if (port < 0) return was;
    const st = this.io.stats(port);
    const now = Date.now();
    const reported = st.txErrors < was.reported ? 0 : was.reported; // port reopened
    const fresh = st.txErrors - reported;
    if (fresh <= 0 || now - was.at < RAW_REFUSED_LOG_MS) return { reported, at: was.at };
    const why = st.lastError === 'ENETUNREACH' ? unreachWhy : '';
    this.log.warn(text(fresh, st.lastError ?? 'error unknown', why), { component: 'host', refused: fresh, errno: st.lastError ?? null });
    return { reported: st.txErrors, at: now };
  }

  /**
   * At start: pod routes and neighbours a killed earlier run left on the node are handed to the
   * host programmer as its own, so those of pods removed meanwhile are deleted (a stale /32 would
   * send the node's traffic for that address, maybe another pod's by now, into a dead veth).
   */
  /** Pod interfaces holding an address no endpoint wants (adoptLeftovers, findPodOrphans, endpointsGone; orphan-pods.ts). */
  private orphanPods: OrphanPodAddress[] = [];
  /** "ifname address" of each in orphanPods: each is warned of once. */
  private readonly orphanKeys = new Set<string>();

  /** Adds orphans not known yet, each warned of once (and listed in status while its interface exists). */
  private addOrphans(found: readonly OrphanPodAddress[]): void {
    const fresh: OrphanPodAddress[] = [];
    for (const o of found) {
      const key = `${o.ifname} ${o.address}`;
      if (this.orphanKeys.has(key)) continue;
      this.orphanKeys.add(key);
      this.orphanPods.push(o);
      fresh.push(o);
      this.log.warn(`host: ${orphanPodLine(o)}`, { component: 'host', interface: o.ifname, address: o.address, source: o.source ?? null });
    }
    if (fresh.length > 0) this.onOrphans();
  }

  /** The pod interfaces holding an address no endpoint names that are still there (status's orphanPods). */
  orphanList(): readonly OrphanPodAddress[] {
    return this.liveOrphans();
  }

  /** Whether the start scan of the pods' namespaces (findPodOrphans) is done and read every pod. */
  orphanScanComplete(): boolean {
    return this.orphanScan === 'complete';
  }

  private orphanScan: 'pending' | 'complete' | 'partial' = 'pending';
  /** Interfaces whose endpoint this run saw deleted (endpointsGone), newest last, at most ENDPOINT_DELETED_KEPT. */
  private readonly endpointDeleted = new Set<string>();
  private readonly deferOrphanScan: boolean;
  private readonly orphanLooks: <T>(look: () => Promise<T>) => Promise<T>;
  /** The start's orphan scan is waiting for startOrphanScan() (deferOrphanScan). */
  private orphanScanWaiting = false;

  /** Starts the start's orphan scan if it waits for this (deferOrphanScan; once only). */
  startOrphanScan(): void {
    if (!this.orphanScanWaiting || this.stopped) return;
    this.orphanScanWaiting = false;
    void this.findPodOrphans();
  }

  /** The orphans whose interface still exists and that no endpoint names again (dropped from the list otherwise). */
  private liveOrphans(): OrphanPodAddress[] {
    // asked on every status and metrics scrape: nothing to check, nothing built
    if (this.orphanPods.length === 0) return this.orphanPods;
    const wanted = this.model ? modelAddressKeys(this.model) : new Set<string>();
    const was = this.orphanPods.length;
    this.orphanPods = this.orphanPods.filter((o) => {
      // a tap/tun pod's device is in its pod's namespace: kept while that namespace is; a device
      // deleted from a namespace that stays (a CNI DEL whose endpoint was already gone, by hand, a
      // sandbox reused) is found by checkPodDevices, in the orphan-hold pass, not on each scrape here
      const there = o.netns !== undefined ? netnsInode(o.netns) === o.netnsInode : existsSync(`/sys/class/net/${o.ifname}`);
      const keep = !wanted.has(`${o.ifname} ${o.address}`) && there;
      if (!keep) this.orphanKeys.delete(`${o.ifname} ${o.address}`);
      return keep;
    });
    if (this.orphanPods.length !== was) this.onOrphans();
    return this.orphanPods;
  }

  /**
   * The tap/tun orphans whose device is gone from its pod's namespace while that namespace stays
   * (liveOrphans keeps them by the namespace alone: a stat, cheap enough for every status and
   * metrics scrape) are dropped from the list; returns their device names. One `ip` in each such
   * device's namespace (readPodDevice, through the spawner's helper), so it runs only when the
   * list holds a tap/tun pod, from the orphan-hold pass (cli/orphan-holds.ts), which then releases
   * their holds as it does a gone veth's. It runs in podway run's upkeep queue (that pass's turn),
   * so it does not take a turn of its own (orphanLooks): nothing in the queue waits for the queue.
   * A namespace that could not be read says nothing: its devices are kept.
   */
  async checkPodDevices(): Promise<string[]> {
    const taps = new Map<string, { netns: string; inode: number }>();
    for (const o of this.liveOrphans()) if (o.netns !== undefined && o.netnsInode !== undefined) taps.set(o.ifname, { netns: o.netns, inode: o.netnsInode });
    if (taps.size === 0 || this.stopped) return [];
    const gone = new Set<string>();
    for (const [ifname, { netns, inode }] of taps) {
      let d: Awaited<ReturnType<typeof readPodDevice>>;
      try {
        d = await readPodDevice(netns, ifname, this.spawnerExec());
      } catch (e) {
        this.log.debug(`host: tap/tun pod device ${ifname} not looked for in ${netns}: ${(e as Error).message} (kept; looked at again on the next pass)`, { component: 'host', interface: ifname });
        continue;
      }
      // a namespace gone or replaced meanwhile: liveOrphans drops those (by its inode)
      if (d === null && netnsInode(netns) === inode) gone.add(ifname);
    }
    if (gone.size === 0 || this.stopped) return [];
    const was = this.orphanPods.length;
    this.orphanPods = this.orphanPods.filter((o) => {
      if (o.netns === undefined || !gone.has(o.ifname)) return true;
      this.orphanKeys.delete(`${o.ifname} ${o.address}`);
      return false;
    });
    // no onOrphans(): its caller, the hold pass, acts on the answer (another pass would read again)
    if (this.orphanPods.length !== was) this.log.info(`host: tap/tun pod device(s) gone from their pod's namespace, which stays: ${[...gone].join(', ')}; no longer listed as orphans`, { component: 'host', interfaces: [...gone] });
    return [...gone];
  }

  /**
   * At start, after adoptLeftovers (off the start path: an `ip` per pod namespace): the addresses
   * the pod veths' peers hold in their pods' namespaces that no endpoint of the model names. This
   * finds a pod whose endpoint was deleted while an earlier run ran (that run removed its route),
   * which the routes alone do not show.
   */
  private findPodOrphans(): Promise<void> {
    // read and judged in one piece, in podway run's upkeep queue (orphanLooks)
    return this.orphanLooks(() => this.lookForPodOrphans());
  }

  private async lookForPodOrphans(): Promise<void> {
    if (this.stopped) return;
    let scan: Awaited<ReturnType<typeof readPodPeerAddresses>>;
    try {
      // its `ip`s and shell started by the spawner's helper: a fork of this process, its rings
      // mapped, held the forwarding thread 0.2-0.35 s each at load 20 (bench/README.md)
      scan = await readPodPeerAddresses(new Set(), { devicesOf: this.model?.node.name, exec: this.spawnerExec() });
    } catch (e) {
      this.log.warn(`host: pod interfaces not looked into for addresses no endpoint names: ${(e as Error).message}`, { component: 'host' });
      return;
    }
    if (this.stopped || !this.model) return;
    this.orphanScan = scan.unread.length === 0 ? 'complete' : 'partial';
    if (scan.unread.length > 0) this.log.info(`host: ${scan.unread.length} pod veth(s) not looked into for addresses no endpoint names: ${scan.unread.slice(0, 5).join(', ')}${scan.unread.length > 5 ? ', ...' : ''}`, { component: 'host' });
    const named = new Set(endpointInterfaces(this.model));
    // an interface an endpoint names but not attached yet (its pod being made) is not looked at;
    // one no endpoint names holds no endpoint's address either
    const orphans = scan.found.filter((f) => !named.has(f.ifname));
    // An interface whose endpoint this run saw deleted is that case, found here first (the scan ran
    // between the model that dropped it and its own look, podDeviceGone): said as such.
    this.addOrphans(orphans.map((f) => ({ ...f, source: this.endpointDeleted.has(f.ifname) ? 'deleted' as const : 'pod' as const })));
    this.log.info(`host: the pods' interfaces looked into for addresses no endpoint names: ${scan.found.length} address(es) on pod interfaces, ${orphans.length} no endpoint names`, { component: 'host', podAddresses: scan.found.length, orphanAddresses: orphans.length });
  }

  /**
   * While running: a veth no endpoint names any more (its WorkloadEndpoint deleted: by hand, or
   * with its Node by `podway delete node`) that is still there keeps its pod's addresses, which
   * IPAM has released. (A pod's CNI DEL removes the veth before its endpoint.)
   */
  private endpointsGone(prev: NodeDataplaneModel, next: NodeDataplaneModel): void {
    const still = new Set(endpointInterfaces(next));
    for (const ifname of still) this.endpointDeleted.delete(ifname);
    const gone: OrphanPodAddress[] = [];
    const devices = new Map(prev.endpoints.filter((e) => e.interfaceType !== 'veth' && e.interfaceNetns !== null).map((e) => [e.interfaceName, e.interfaceNetns!]));
    for (const [ifname, addrs] of endpointAddresses(prev)) {
      if (still.has(ifname)) continue;
      this.endpointDeleted.add(ifname);
      // bounded: the oldest names go first (a pod churn's names never come back)
      if (this.endpointDeleted.size > ENDPOINT_DELETED_KEPT) this.endpointDeleted.delete(this.endpointDeleted.values().next().value!);
      const netns = devices.get(ifname);
      if (netns !== undefined) {
        // a tap/tun pod's device, in its pod's namespace: looked for there (off this path)
        void this.podDeviceGone(ifname, netns);
        continue;
      }
      if (!existsSync(`/sys/class/net/${ifname}`)) continue;
      for (const address of addrs) gone.push({ ifname, address, source: 'deleted' });
    }
    if (gone.length > 0) this.addOrphans(gone);
  }

  /** A tap/tun pod's endpoint deleted: its device, still in its pod's namespace, keeps its addresses. */
  private podDeviceGone(ifname: string, netns: string): Promise<void> {
    return this.orphanLooks(async () => {
      if (this.stopped) return;
      const d = await readPodDevice(netns, ifname, this.spawnerExec()).catch(() => null);
      if (!d || this.stopped || !this.model || endpointInterfaces(this.model).includes(ifname)) return;
      this.addOrphans(d.addresses.map((address) => ({ ifname, address, source: 'deleted' as const, netns, netnsInode: d.inode })));
    });
  }

  private adoptLeftovers(model: NodeDataplaneModel, reads: HostStartReads | null): void {
    const found = reads?.podRoutes ?? readPodRoutesSync();
    const addr = (f: { ip?: number; ip6?: string }) => (f.ip !== undefined ? formatIpv4(f.ip) : formatIpv6(ip6Bytes(f.ip6!), 0));
    const wanted = new Set(this.hostState(model).pods.flatMap((p) => [...p.ips.map((ip) => `${p.ifname} ${formatIpv4(ip)}`), ...(p.ips6 ?? []).map((ip6) => `${p.ifname} ${addr({ ip6 })}`)]));
    const stale = found.filter((f) => !wanted.has(`${f.ifname} ${addr(f)}`));
    if (stale.length > 0) this.log.info(`host: removing ${stale.length} pod route(s) no endpoint wants, left by an earlier run: ${stale.slice(0, 5).map((f) => `${addr(f)} dev ${f.ifname}`).join(', ')}${stale.length > 5 ? ', ...' : ''}`, { component: 'host' });
    // The interface is there (the kernel drops a device's routes with it): a pod that keeps an
    // address this datastore does not know of (orphan-pods.ts), said per interface and kept for status.
    this.addOrphans(stale.map((f) => ({ ifname: f.ifname, address: addressKey(addr(f)), source: 'route' as const })));
    // and those whose route is gone too (removed by the run that saw their endpoint deleted)
    if (this.deferOrphanScan) this.orphanScanWaiting = true;
    else void this.findPodOrphans();
    this.host!.adopt(found);
    // Only with BGP (kernelRoutes present): without it, a `proto bird` route is someone else's.
    const learned = model.kernelRoutes === undefined ? [] : reads?.learned ?? readLearnedRoutesSync(LEARNED_ROUTE_PROTO, LEARNED_ROUTE_METRIC);
    if (learned.length > 0) {
      this.log.info(`host: ${learned.length} learned route(s) left by an earlier run (proto ${LEARNED_ROUTE_PROTO} metric ${LEARNED_ROUTE_METRIC}) each kept until BGP brings its prefix again (at most ${LEARNED_HOLD_MS / 1000} s): ${learned.slice(0, 5).map((l) => `${l.cidr} via ${l.via}`).join(', ')}${learned.length > 5 ? ', ...' : ''}`, { component: 'host' });
      this.host!.adoptLearned(learned);
      for (const l of learned) this.learnedHeld.set(l.cidr, l);
      this.learnedHeldUntil = Date.now() + LEARNED_HOLD_MS;
      setTimeout(() => this.programHost(), LEARNED_HOLD_MS + 100).unref();
    }
  }

  private programHost(): void {
    if (this.host && this.model) this.host.sync(this.hostState(this.model));
  }

  /**
   * The kernel wedges a TPACKET_V2 ring for good when it cannot build the vnet header of a frame
   * (6.18: a GSO type virtio_net_hdr_from_skb has no bit for; native/README.md): the port then
   * receives nothing while the kernel counts every frame as dropped. The addon tells such a ring
   * from a quiet or a full one and sets it up again; this only asks it, once a tick per port (one
   * getsockopt), and says so in the log.
   */
  private checkRings(): void {
    if (!this.io.checkRing) return;
    // A worker never reads the TAP/TUN pods it transmits to (worker 0 does), so no receive error
    // tells it the device was deleted: it looks here, and a gone device's port is closed and
    // attached again (a dup of worker 0's new fd) once the pod makes it again, as worker 0's is.
    if (this.worker.count > 1 && !this.primary) {
      for (const cur of [...this.endpoints.values()]) if (cur.kind !== 'veth') this.vanished(cur.port);
    }
    if (this.io.checkRings) {
      // every port in one call (a getsockopt each in C): the tick's cost is no JS per port
      const out = (this.ringOut ??= new Uint32Array(MAX_PORTS));
      const n = this.io.checkRings(2, out);
      for (let i = 0; i < n; i++) {
        const p = out[i] & ~RING_FAILED;
        if ((out[i] & RING_FAILED) === 0) {
          this.ringWedged(p);
          continue;
        }
        try {
          this.io.checkRing(p); // throws the error the port's ring was left with
        } catch (e) {
          this.ringFailed(p, e as Error);
        }
      }
      return;
    }
    const ports = [...Object.values(this.infra), ...[...this.endpoints.values()].map((e) => e.port)];
    for (const p of ports) {
      if (p < 0) continue;
      try {
        if (this.io.checkRing(p)) this.ringWedged(p);
      } catch (e) {
        this.ringFailed(p, e as Error);
      }
    }
  }

  private ringOut: Uint32Array | null = null;

  private ringWedged(p: number): void {
    this.log.warn(`port ${this.pipe.portName[p]}: the kernel stopped filling its receive ring (a frame it could not describe in a vnet header, e.g. an SCTP or UFO super-frame); ring being set up again on a worker thread (rxRingStalls)`, { port: this.pipe.portName[p] });
  }

  /**
   * checkRing threw: setting a wedged ring up again failed, so the port receives nothing for good
   * (io.ts) and polling it again cannot help. A pod's port is closed and attached again by a
   * re-apply, as when its interface goes away; the underlay port is reopened as followIp6 does
   * (the new port before the old one closes). Any other port is only logged.
   */
  private ringFailed(p: number, e: Error): void {
    const name = this.pipe.portName[p];
    this.pipe.portCounters[p * PORT_COUNTERS + PortCounter.RX_ERRORS]++;
    for (const [ifname, cur] of this.endpoints) {
      if (cur.port !== p) continue;
      this.failures.ringReopened++;
      this.log.error(`endpoint ${cur.ep.key}: port ${name}: its receive ring could not be set up again (${e.message}); port closed, interface ${ifname} attached again`, { workload: cur.ep.key, interface: ifname, port: name });
      // the interface is still there, and so are its routes: the host programmer keeps its state
      this.detachEndpoint(ifname, p);
      return;
    }
    if (p === this.infra.underlay && this.underlay && this.model) {
      try {
        this.reopenUnderlay(this.model);
      } catch (e2) {
        this.failures.ringReopenFailed++;
        const key = `ring reopen ${(e2 as Error).message}`;
        if (this.loggedErrors.get(p) !== key) {
          this.loggedErrors.set(p, key);
          this.log.error(`port ${name}: its receive ring could not be set up again (${e.message}), and reopening the underlay port failed: ${(e2 as Error).message}; it receives nothing, tried again on the next check`, { port: name });
        }
        return;
      }
      this.failures.ringReopened++;
      this.log.error(`port ${name}: its receive ring could not be set up again (${e.message}); underlay port reopened`, { port: name });
      return;
    }
    const key = `ring ${e.message}`;
    if (this.loggedErrors.get(p) !== key) {
      this.loggedErrors.set(p, key);
      this.log.error(`port ${name}: its receive ring could not be set up again (${e.message}); it receives nothing, and podway has no way to reopen it: restart podway`, { port: name });
    }
  }

  /** Age the neighbour tables: re-probe stale entries, mark the next hops of silent ones failed. */
  private ageNeighbors(): void {
    const now = Date.now();
    if (this.primary && this.manageHost && now - this.addrCheckedAt >= NODE_ADDR_CHECK_MS) this.checkNodeAddress(now);
    if (now - this.mtuCheckedAt >= NODE_ADDR_CHECK_MS) this.checkUnderlayMtu(now);
    if (this.spawner !== null && now - this.localReadAt >= (this.localWatch?.live ? LOCAL_ADDR_SAFETY_MS : LOCAL_ADDR_CHECK_MS)) this.readLocal(now);
    if (this.spawner !== null && now - this.underlayRoutesAt >= (this.localWatch?.live ? UNDERLAY_ROUTES_SAFETY_MS : LOCAL_ADDR_CHECK_MS)) this.underlayRoutesChanged();
    const t = this.neighbors.tick(now);
    // (a worker whose neighbours the main thread resolves: that thread's tick sends these probes,
    // its table has the same entries and answers are shared; the table here still ages and fails)
    if (!this.resolveVia) for (const ip of t.probe) this.sendArpRequest(ip, this.neighbors.unicastTo(ip));
    for (const c of t.changed) {
      if (c.mac === null) this.pipe.dropHeld(FAMILY_V4, c.ip);
      if (c.mac === null && this.pipe.nh && failNeighbor(this.pipe.nh, c.ip) > 0) {
        const m = `neighbour ${formatIpv4(c.ip)} stopped answering: its next hops drop their packets (neighbor_failed) until it answers`;
        if (this.resolveVia) this.log.debug(m, { neighbor: formatIpv4(c.ip) });
        else this.log.warn(m, { neighbor: formatIpv4(c.ip) });
      }
    }
    this.neighbors6.tick(now);
    this.ageHeld();
  }

  /** The neighbour timer's look at the held packets: any whose neighbour has a MAC by now leave
   * (every path that teaches a MAC releases them at once; this is the safety net), those held past
   * the bound are dropped. */
  private ageHeld(): void {
    const q = this.pipe.held;
    if (q === null || q.size === 0) return;
    for (const { family, key } of q.neighbors()) {
      if (family === FAMILY_POD) {
        this.pipe.releaseToPod(key);
        continue;
      }
      const m = family === FAMILY_V4 ? this.neighbors.mac(key) : this.neighbors6.table.mac(key);
      if (m !== undefined) this.pipe.releaseHeld(family, key, m, 0);
    }
    this.pipe.ageHeld();
  }

  /** Packets held for `ip` leave now if the table has its MAC (the table's, not the frame's that
   * taught it: a reply the table refused releases nothing). */
  private releaseHeld4(ip: number): void {
    const q = this.pipe.held;
    if (q === null || q.size === 0) return;
    const m = this.neighbors.mac(ip);
    if (m !== undefined) this.pipe.releaseHeld(FAMILY_V4, ip, m, 0);
  }

  /** The largest packet tx4/tx6 take: the smaller of the model's underlay MTU and the interface's. */
  private setTxMtu(modelMtu: number, linkMtu: number): void {
    this.pipe.v6.tx6Mtu = Math.min(modelMtu, linkMtu);
    this.pipe.tx4Mtu = this.pipe.v6.tx6Mtu;
  }

  /**
   * The underlay next hops' MTUs (IPv4 VXLAN, IPIP and unencapsulated routes, IPv6 VXLAN and
   * unencapsulated ones) bounded by the underlay interface's MTU while it is below the model's
   * underlay MTU, less each encapsulation's overhead (50, 20, 0; IPv6 VXLAN 70): a packet a route
   * takes must still fit the link once encapsulated, as the kernel's tunnel devices answer with
   * fragmentation needed / Packet Too Big for the path's MTU. The model's route MTUs come from the
   * interface's MTU as read once per node address (model-worker.ts); the interface's is read every
   * few seconds (checkUnderlayMtu), so a lowered MTU is followed at once, as the podway0 routes
   * follow it (poolRouteMtu), and raised again the routes get the model's back. Local, blackhole
   * and host routes keep theirs.
   */
  private boundRouteMtus(modelMtu: number, linkMtu: number): void {
    // the model's routes are bounded by its underlay MTU already (route-calc.ts: a tunnel MTU set
    // above it too); the link's, while lower, bounds them again
    const underlay = linkMtu >= 68 && linkMtu < modelMtu ? linkMtu : modelMtu;
    const bound = (nh: { count: number; kind: Uint8Array; mtu: Uint16Array; routes: readonly { mtu: number }[] } | null, v6: boolean): void => {
      if (nh === null) return;
      for (let i = 0; i < nh.count; i++) {
        const k = nh.kind[i];
        const overhead = k === NhKind.VXLAN ? (v6 ? VXLAN6_OVERHEAD : ENCAP_OVERHEAD.vxlan) : k === NhKind.IPIP ? ENCAP_OVERHEAD.ipip : k === NhKind.DIRECT ? 0 : -1;
        if (overhead < 0) continue;
        const own = Math.min(nh.routes[i].mtu, 0xffff);
        nh.mtu[i] = Math.min(own, Math.max(v6 ? 1280 : 68, underlay - overhead));
      }
    };
    bound(this.pipe.nh ?? null, false);
    bound(this.pipe.v6.nh, true);
  }

  /** When the underlay's MTU was last read (checkUnderlayMtu). */
  private mtuCheckedAt = 0;

  /**
   * The underlay interface's MTU changed (by hand, DHCP, a cloud agent) since it was read: tx4/tx6
   * take the new bound now (the kernel checks a raw packet against its output device's MTU), not
   * at the next model. Read from sysfs every few seconds, on every worker (each has its pipeline).
   */
  private checkUnderlayMtu(now: number, why?: string): void {
    this.mtuCheckedAt = now;
    this.readPortMtus();
    const ul = this.underlay;
    if (!ul || !this.model) return;
    let mtu: number;
    try {
      mtu = Number(readFileSync(`/sys/class/net/${ul.name}/mtu`, 'utf8'));
    } catch {
      return; // gone: the link monitoring says so
    }
    if (!Number.isInteger(mtu) || mtu < 68 || mtu === ul.mtu) return;
    if (this.primary) this.log.info(`underlay ${ul.name} mtu ${ul.mtu} -> ${mtu}${why ? ` (seen from ${why})` : ''}: packets handed to the node's routing are bounded by ${Math.min(this.model.mtu.underlay, mtu)} now, the tunnel routes' by it less their encapsulation${mtu < ul.mtu ? '; a bigger packet from a pod is answered with fragmentation needed / Packet Too Big (frag_needed), those the kernel refused meanwhile too (too_big_answered)' : ''}`, { interface: ul.name, mtu, was: ul.mtu });
    ul.mtu = mtu;
    this.setTxMtu(this.model.mtu.underlay, mtu);
    // so do the pipeline's tunnel and direct routes (boundRouteMtus) and the pool routes' MTUs
    // into podway0 (poolRouteMtu), by the programmer's diff
    this.boundRouteMtus(this.model.mtu.underlay, mtu);
    if (this.primary) this.programHost();
    this.onUnderlayMtu(mtu, why ?? 'its periodic check');
  }

  /**
   * Another forwarding thread saw the underlay's MTU change (its onUnderlayMtu: the main thread's
   * `ip monitor`, a worker's refusals): read it now (checkUnderlayMtu: the tunnel and direct routes
   * bounded by it from here), and answer the frames this thread's ports had refused as too big
   * meanwhile (checkRejected), not at this thread's next tick (1 s) or check (5 s).
   */
  underlayMtuNews(why: string): void {
    if (this.stopped) return;
    this.checkUnderlayMtu(Date.now(), why);
    this.checkRejected();
  }

  /** A pod port was opened since the pod ports' MTUs were last read (readPortMtus). */
  private portMtusUnread = false;

  /**
   * Every pod port's MTU, for the pipeline's check of packets to that pod (Pipeline.portMtu), as
   * the kernel's forwarding checks its output device's: a veth's host end (the CNI sets it to the
   * pod's), a TAP/TUN pod's own device in the pod's namespace (podway gives it the pod MTU when it
   * attaches it, the pod may change it since). Read after a model's endpoints are opened and every
   * few seconds with the underlay's, all in one addon call (linkMtus: two ioctls per port in C, a
   * TAP/TUN's through a socket made in its namespace). Unreadable: 0, not checked.
   */
  private readPortMtus(): void {
    this.portMtusUnread = false;
    const out = (this.mtuOut ??= new Uint32Array(MAX_PORTS));
    // a slot linkMtus leaves untouched must not pass on a closed port's MTU
    out.fill(0);
    this.io.linkMtus(out);
    for (const e of this.endpoints.values()) this.setPortMtu(e.port, out[e.port]);
  }

  /** When each pod port's MTU was last read alone (recheckPortMtu), ms. */
  private readonly portMtuRecheckedAt = new Float64Array(MAX_PORTS);

  /**
   * A packet for pod `port` is bigger than its known MTU (Pipeline.onPortMtuExceeded): read that
   * port's MTU again before it is answered as too big, at most every PORT_MTU_RECHECK_MS per port,
   * so a pod that raised its MTU (a TAP/TUN pod's own device, a veth's host end) is not told the
   * old one for up to the poll's 5 s, while a flood of packets really too big costs one addon
   * call (two ioctls) per port per interval, not one per packet.
   */
  private recheckPortMtu(port: number, now: number): void {
    if (now - this.portMtuRecheckedAt[port] < PORT_MTU_RECHECK_MS) return;
    this.portMtuRecheckedAt[port] = now;
    let mtu: number;
    try {
      mtu = this.io.linkMtu(port);
    } catch {
      return; // closed meanwhile (its next hops go with the next apply): keep what is known
    }
    this.setPortMtu(port, mtu);
  }

  private setPortMtu(port: number, mtu: number): void {
    this.pipe.portMtu[port] = portMtuOf(mtu);
  }

  private mtuOut: Uint32Array | null = null;

  /** When the node's address was last looked for on its interfaces; the warning given, if any. */
  private addrCheckedAt = 0;
  /** The node's addresses missing from a link that is up (nodeAddressState.addressProblem): only
   * that; the underlay down or gone is underlayDown. */
  nodeAddressMissing: string | null = null;
  /** The underlay down or gone at the last look (nodeAddressState.linkProblem), and since when it
   * has been (the first look that found it so); null while it is up. Not ready when other nodes exist. */
  underlayDown: { reason: string; since: Date } | null = null;
  /** What the last look told the log (nodeAddressState.problem): said again only when it changes. */
  private addressProblemSaid: string | null = null;
  /** The node's addresses last found missing (nodeAddressState.missing). */
  private addressesMissing: string[] = [];

  /**
   * The node's addresses (its Node's IPv4 address, and its IPv6 address when it has one: what the
   * model and the peers use) removed from the node (re-addressed by DHCP or by hand, a link set
   * down and up, which flushes IPv6 addresses): podway goes on answering ARP for the IPv4 address
   * and sending from it, so pod traffic over the tunnels still flows, but the node's own stack no
   * longer has it, and what podway hands to the node's routing for the IPv6 address (pod IPv6
   * egress, tx6's raw socket) finds no route. Say so once, and when it is back. An autodetected
   * address is followed (`podway run` re-detects it and updates its Node; the model brings the new
   * one here, followIp4/followIp6); one given with --ip/--ip6 needs a restart. The underlay down or
   * gone is said as such, and makes the node not ready while other nodes exist (readiness()).
   */
  private checkNodeAddress(now: number): void {
    this.addrCheckedAt = now;
    if (!this.model || !this.underlay) return;
    const ips = [...(this.model.node.ip !== null ? [formatIpv4(this.model.node.ip)] : []), ...(this.model.v6.ip6 ? [this.model.v6.ip6] : [])];
    const st = nodeAddressState(ips, this.underlay.name, networkInterfaces(), readLinkState(this.underlay.name));
    const { problem } = st;
    const wasDown = this.underlayDown !== null;
    const back = this.addressesMissing.filter((ip) => !st.missing.includes(ip));
    this.underlayDown = st.linkProblem === null ? null : { reason: st.linkProblem, since: this.underlayDown?.since ?? new Date(now) };
    this.nodeAddressMissing = st.addressProblem;
    this.addressesMissing = st.missing;
    if (problem === this.addressProblemSaid) return;
    const iface = { interface: this.underlay.name };
    if (back.length > 0) this.log.info(`node address${back.length > 1 ? 'es' : ''} ${back.join(', ')} ${back.length > 1 ? 'are' : 'is'} on this node again${wasDown && !st.linkDown ? ` (link ${this.underlay.name} is up)` : ''}`, iface);
    else if (wasDown && !st.linkDown) this.log.info(`underlay: link ${this.underlay.name} is up again`, iface);
    if (problem !== null) {
      if (st.linkDown) this.log.warn(`${problem}: nothing goes out or comes in on it until it is up`, iface);
      else {
        const v4 = st.missing.filter((ip) => !ip.includes(':'));
        const v6 = st.missing.filter((ip) => ip.includes(':'));
        const says = [
          v4.length && `podway keeps forwarding with ${v4.join(', ')}, but the node's own stack cannot use it; ${this.addressAdvice}`,
          v6.length && `the IPv6 packets podway hands to the node's routing (pods' IPv6 egress, tx6) find no route from ${v6.join(', ')} and are lost (counted no_node_address6 in \`${podwayCommand()} counters\`, tx6(raw) txErrors); ${this.addressAdvice6}`,
        ].filter(Boolean).join('; ');
        this.log.warn(`${problem}: ${says}`, iface);
      }
    }
    this.addressProblemSaid = problem;
  }

  /** Ask ARP for an underlay neighbour (the table rate-limits per address and ignores unwanted ones). */
  /** Ask for `ip`'s MAC when a probe is due; false when the table does not track `ip` (refused
   * by its size bound: no probe will ever be sent, Pipeline.onUnresolved). */
  private resolve(ip: number, now: number): boolean {
    if (this.neighbors.request(ip, now)) {
      if (this.resolveVia) this.resolveVia(ip); // the main thread probes (EngineOptions.onResolve)
      else this.sendArpRequest(ip);
      return true;
    }
    return this.neighbors.tracks(ip);
  }

  /** A forwarding worker has packets for underlay neighbour `ip` and no MAC (EngineOptions.onResolve):
   * probed now if this table says one is due (at most one per retransmit interval, none during a
   * hold-down); an address no next hop of ours wants is ignored. */
  resolveShared(ip: number): Uint8Array | undefined {
    const mac = this.neighbors.mac(ip);
    if (mac === undefined) this.resolve(ip, Date.now());
    // Known here: the asking thread missed the answer (started after it was shared: a restarted
    // worker), so the caller hands it this MAC rather than leaving it to wait for the next probe.
    return mac;
  }

  /** The same for an IPv6 underlay neighbour (EngineOptions.onResolve6). */
  resolveShared6(ip6: string): Uint8Array | undefined {
    const mac = this.neighbors6.neighbor6(ip6);
    if (mac === undefined) this.neighbors6.requestText(ip6);
    return mac;
  }

  /** When each pod port was last asked for its MAC (askPodMac), ms. */
  private readonly podMacAskedAt = new Float64Array(MAX_PORTS);

  /**
   * Local L2 pod `port` has packets waiting for its MAC (pipeline.ts holdForPod): send it an ARP
   * request for its address `ip` from the gateway (169.254.1.1, ee:ee:ee:ee:ee:ee), at most one a
   * second per port. Its reply teaches the MAC (the pipeline learns it from the pod's frame) and
   * releases them; with --workers, a TAP's reply reaches the first thread, which shares the MAC.
   */
  private askPodMac(port: number, ip: number, now: number): void {
    if (this.podMacAsked(port, now)) return;
    this.pipe.podArpAskedAt[port] = now;
    this.sendControlFrame(port, (b, f) => writeArpRequest(b, f, GATEWAY_MAC, GATEWAY_IP, ip));
  }

  /**
   * The same for a pod with IPv6 addresses only: a Neighbor Solicitation for its address at
   * b[off..off+16] from the gateway, fe80::ecee:eeff:feee:eeee / ee:ee:ee:ee:ee:ee (the address
   * podway answers solicitations for), to its solicited-node group. The pod's Neighbor
   * Advertisement teaches the MAC (any frame from the pod does) and releases what waits; it is
   * then dropped, counted ndp_advert_from_pod. Shares the per-port rate limit with askPodMac.
   */
  private askPodMac6(port: number, b6: Uint8Array, off: number, now: number): void {
    if (this.podMacAsked(port, now)) return;
    this.sendControlFrame(port, (b, f) => writeNeighborSolicit(b, f, GATEWAY_MAC, GATEWAY_IP6, 0, b6, off));
  }

  /**
   * A pod port re-attached under the same endpoint with a stated MAC (openEndpoint): ask the pod at
   * once, an ARP request for its first IPv4 address, or for an IPv6-only pod a Neighbor
   * Solicitation for its first IPv6 address (askPodMac6); the answer's source MAC replaces a stale
   * stated one (Pipeline.podMacCheck). One MAC per port serves both families, so a dual-stack pod's
   * ARP answer corrects its IPv6 traffic too.
   */
  private askReattached(port: number, ep: LocalEndpoint, model: NodeDataplaneModel): void {
    const now = Date.now();
    if (ep.ips.length > 0) return this.askPodMac(port, ep.ips[0], now);
    const ip6 = model.v6.endpoints.find((e) => e.interfaceName === ep.interfaceName)?.ips6[0];
    if (ip6 !== undefined) this.askPodMac6(port, ip6Bytes(ip6), 0, now);
  }

  /** Was pod `port` asked for its MAC less than a second ago? If not, it counts as asked now. */
  private podMacAsked(port: number, now: number): boolean {
    if (now - this.podMacAskedAt[port] < POD_MAC_ASK_MS) return true;
    this.podMacAskedAt[port] = now;
    return false;
  }

  /**
   * At start (the first model applied, its pods' ports just opened), tell each L2 pod where its
   * gateway is without waiting for it to ask: an unsolicited ARP reply "169.254.1.1 is at
   * ee:ee:ee:ee:ee:ee" to a pod with an IPv4 address, an unsolicited Neighbor Advertisement for
   * fe80::ecee:eeff:feee:eeee (Router, Override) to a TAP pod with an IPv6 address (a veth pod's is
   * the host end's own address, which the node's kernel answers throughout); to the pod's MAC when
   * known (stated by its endpoint), else broadcast / all-nodes. While podway was stopped (a restart)
   * a pod whose gateway entry went unanswered for ~3 s has it FAILED and asks again only once a
   * second, on its next packet (a TAP pod's entries are flushed when its device loses its carrier
   * as podway closes it, so only those made by its traffic during the gap are there to fail); the
   * pod's kernel updates an existing entry from these (REACHABLE
   * from a unicast ARP reply, STALE otherwise: usable at once either way; an IPv6 entry only when
   * INCOMPLETE or STALE: Linux ignores an NA for a FAILED one, which a TAP pod does not keep
   * through the restart anyway, its entries flushed with the carrier) and creates none (so a
   * pod that never asked gets nothing to keep). Calico's host does not do this. One send per pod
   * (both families' frames in the originated slots), by the first worker only (the others' ports
   * reach the same pods); counted gateway_announced. A pod attached later is new: it has no stale
   * entry, and its first request is answered.
   */
  private announceGateway(model: NodeDataplaneModel): void {
    if (!this.primary || this.endpoints.size === 0) return;
    const v6 = new Set<string>();
    for (const e of model.v6.endpoints) if (e.ips6.length > 0) v6.add(e.interfaceName);
    const pool = this.pool;
    const b = pool.bytes;
    const podMac = this.pipe.podMac;
    let frames = 0;
    let pods = 0;
    for (const [name, cur] of this.endpoints) {
      if (cur.kind === 'tun') continue; // no link layer: no neighbour entry to mend
      const p = cur.port;
      const to = this.pipe.podMacKnown[p] === 1 ? podMac : null;
      let n = 0;
      if (cur.ep.ips.length > 0) {
        const i = this.arpSlot + n;
        pool.len[i] = writeGatewayAnnounce(b, pool.start(i), GATEWAY_MAC, 0, GATEWAY_IP, to, p * 6, cur.ep.ips[0]);
        pool.txList[this.batch + n++] = i;
      }
      // a veth pod's IPv6 gateway is its host end's own link-local address (from ee:ee:ee:ee:ee:ee):
      // the node's kernel answers it through a restart, nothing of it to mend
      if (cur.kind === 'tap' && v6.has(name)) {
        const i = this.arpSlot + n;
        pool.len[i] = writeUnsolicitedAdvert(b, pool.start(i), GATEWAY_MAC, 0, GATEWAY_IP6, 0, to, p * 6, true);
        pool.txList[this.batch + n++] = i;
      }
      if (n === 0) continue;
      try {
        const sent = this.io.send(p, this.batch, n);
        frames += sent;
        if (sent > 0) pods++;
      } catch (e) {
        this.portError(p, 'send', e as Error);
      }
    }
    this.pipe.counters[Event.GATEWAY_ANNOUNCED] += frames;
    if (frames > 0) this.log.info(`gateway announced to ${pods} pod${pods === 1 ? '' : 's'} (${frames} unsolicited ARP replies / neighbor advertisements: entries they gave up on while podway was stopped work again at once)`, { pods, frames });
  }

  /** Send one control frame (ARP, an IPv6 Neighbor Solicitation) built by `write` on `port`, from the ARP slot. */
  private sendControlFrame(port: number, write: (b: Uint8Array, f: number) => number): void {
    if (port < 0) return;
    const i = this.arpSlot;
    this.pool.len[i] = write(this.pool.bytes, this.pool.start(i));
    this.pool.txList[this.batch] = i;
    try {
      this.io.send(port, this.batch, 1);
    } catch (e) {
      this.portError(port, 'send', e as Error);
    }
  }

  /** Send an ARP request for `ip`: broadcast, or unicast to `to` (re-probing a known neighbour). */
  private sendArpRequest(ip: number, to?: Uint8Array): void {
    if (!this.underlay || !this.model) return;
    const mac = this.underlay.mac;
    const nodeIp = this.model.node.ip;
    if (nodeIp === null) return; // IPv6-only: no ARP (no IPv4 next hops either)
    this.sendControlFrame(this.infra.underlay, (b, f) => {
      const n = writeArpRequest(b, f, mac, nodeIp, ip);
      if (to) b.set(to, f);
      return n;
    });
  }

  /** Worker 0 (re)opened a TAP/TUN pod's device: a port of ours on a device since deleted is
   * closed (re-attached by the apply that follows), a pending one is tried again now. */
  sharedOpened(ifname: string): void {
    const cur = this.endpoints.get(ifname);
    if (cur && cur.kind !== 'veth') this.vanished(cur.port);
    else if (this.pending.has(ifname)) this.retryPending();
  }

  private readonly onSharedOpen: (ifname: string) => void;
  /** TAP and veth pods' MACs worker 0 learned (by interface name), for ports this worker opens later. */
  private readonly sharedPodMacs = new Map<string, Uint8Array>();

  /** The TAP and veth pods' MACs this engine knows (learned or given), for a worker started after
   * they were learned (onPodMac told only the workers that existed then). */
  podMacs(): { ifname: string; mac: number[] }[] {
    const out: { ifname: string; mac: number[] }[] = [];
    for (const [name, cur] of this.endpoints) {
      if (cur.kind !== 'tun' && this.pipe.podMacKnown[cur.port]) out.push({ ifname: name, mac: [...this.pipe.podMac.subarray(cur.port * 6, cur.port * 6 + 6)] });
    }
    return out;
  }

  /** A TAP or veth pod's MAC worker 0 learned from the pod's frames (EngineOptions.onPodMac): the
   * frames this worker holds for it leave now (updatePort releases them). */
  learnSharedPodMac(ifname: string, mac: Uint8Array): void {
    this.sharedPodMacs.set(ifname, mac);
    const cur = this.endpoints.get(ifname);
    if (cur && cur.kind !== 'tun') this.pipe.updatePort(cur.port, cur.ep.ips, mac);
  }

  /** MAC changes of underlay neighbours (IPv4 address as a number, IPv6 as text), rate-limited per
   * neighbour (NEIGHBOR_CHANGE_LOG_MS); the counters (`arp_learned`, the tables' `macChanged`,
   * `announced`) count every one. */
  private readonly neighborChangeLog = new LogLimiter<number | string>({
    intervalMs: NEIGHBOR_CHANGE_LOG_MS,
    maxKeys: 1024,
    summary: (key, n) => {
      const mac = typeof key === 'number' ? this.neighbors.mac(key) : this.neighbors6.neighbor6(key);
      const addr = typeof key === 'number' ? formatIpv4(key) : key;
      this.log.info(`${typeof key === 'number' ? 'neighbour' : 'IPv6 neighbour'} ${addr}: ${n} more MAC change${n === 1 ? '' : 's'} not logged in the last ${NEIGHBOR_CHANGE_LOG_MS / 1000} s (now ${mac ? formatMac(mac, 0) : 'unknown'}); logged at most once per ${NEIGHBOR_CHANGE_LOG_MS / 1000} s per neighbour`, typeof key === 'number' ? { neighbor: addr, notLogged: n } : { neighbor: addr, notLogged: n, component: 'neighbors6' });
    },
  });

  /** A neighbour's new MAC, logged through neighborChangeLog: `line` is only built when written. */
  private logNeighborChange(key: number | string, line: string | (() => string), fields: () => Record<string, unknown>): void {
    const n = this.neighborChangeLog.admit(key);
    if (n < 0) return;
    const text = typeof line === 'string' ? line : line();
    this.log.info(n > 0 ? `${text} (${n} more change${n === 1 ? '' : 's'} not logged since the last line)` : text, fields());
  }

  /** A neighbour's answer (or announcement, `announced`) another worker received. Not shared on. */
  learnShared(ip: number, mac: Uint8Array, announced = false): void {
    if (!announced) return this.learn(ip, mac, 0, false);
    if (this.neighbors.onAnnounce(ip, mac, 0, Date.now(), true) && this.pipe.nh && learnNeighbor(this.pipe.nh, ip, mac, 0) > 0) {
      this.pipe.counters[Event.ARP_LEARNED]++;
      this.logNeighborChange(ip, () => `neighbour ${formatIpv4(ip)} announced ${formatMac(mac, 0)} (seen by another worker)`, () => ({ neighbor: formatIpv4(ip), mac: formatMac(mac, 0) }));
    }
    this.releaseHeld4(ip);
  }

  /** An IPv6 neighbour's answer (or announcement) another worker received. */
  learnShared6(ip6: string, mac: Uint8Array, announced = false): void {
    this.neighbors6.learnShared(ip6, mac, announced);
  }

  /** An ARP request or gratuitous ARP on the underlay from a wanted neighbour: a new MAC is taken. */
  private announced(ip: number, b: Uint8Array, off: number, gratuitous: boolean): void {
    if (!this.neighbors.onAnnounce(ip, b, off, Date.now(), gratuitous)) return;
    // A gratuitous ARP is shared as an announcement; a plain request the table took as one, as a
    // reply, so the other workers keep their own lock window for it (the kernel's arp_process).
    this.shareNeighbor(ip, b.slice(off, off + 6), gratuitous);
    if (this.pipe.nh && learnNeighbor(this.pipe.nh, ip, b, off) > 0) {
      this.pipe.counters[Event.ARP_LEARNED]++;
      this.logNeighborChange(ip, () => `neighbour ${formatIpv4(ip)} announced ${formatMac(b, off)}`, () => ({ neighbor: formatIpv4(ip), mac: formatMac(b, off) }));
    }
    this.releaseHeld4(ip);
  }

  /** An ARP reply on the underlay (or one another worker saw): only wanted neighbours are learned. */
  private learn(ip: number, b: Uint8Array, off: number, share = true): void {
    const changed = this.neighbors.onReply(ip, b, off, Date.now());
    // Shared when the table took it (learned, changed or confirmed): the other workers' entries
    // need the confirmations too, or they would fail while the neighbour answers here.
    const m = this.neighbors.mac(ip);
    if (share && m !== undefined && macEquals(m, 0, b, off)) this.shareNeighbor(ip, b.slice(off, off + 6), false);
    // unchanged: unsolicited, locked, or a confirmation
    if (changed && this.pipe.nh && learnNeighbor(this.pipe.nh, ip, b, off) > 0) {
      this.pipe.counters[Event.ARP_LEARNED]++;
      this.logNeighborChange(ip, () => `neighbour ${formatIpv4(ip)} is ${formatMac(b, off)}`, () => ({ neighbor: formatIpv4(ip), mac: formatMac(b, off) }));
    }
    this.releaseHeld4(ip);
  }

  private stopped = false;
  /**
   * The underlay's IPv4 forwarding switch as it was before podway set it to 0 (interface name ->
   * value), per underlay it ran on: set back at stop (restoreForwarding), so the node forwards for
   * its other networks (a podman or docker bridge's replies arriving on the underlay) once podway
   * is gone, and when the node's address moves to another interface. podway0 goes with the process.
   * Kept on disk too (forwardingRecordFile), so a run after a crash sets back the value from before.
   */
  private readonly forwardingWas = new Map<string, string>();

  private forwardingRecord(ifname: string): ForwardingRecord | undefined {
    if (!this.forwardingRecordFile) return undefined;
    return { file: this.forwardingRecordFile(ifname), warn: (m) => this.log.warn(m, { component: 'host', interface: ifname }) };
  }

  private restoreForwardingOf(ifname: string): void {
    const was = this.forwardingWas.get(ifname);
    if (was === undefined) return;
    this.forwardingWas.delete(ifname);
    const note = restoreSysctl(forwardingKey(ifname), '0', was);
    if (note) this.log.info(`set ${note}`, { component: 'host', interface: ifname });
    const rec = this.forwardingRecord(ifname);
    if (rec) removeForwardingRecord(rec);
  }

  /**
   * Sets the underlays' IPv4 forwarding back to what it was before podway (forwardingWas). Not
   * before podway has stopped forwarding: its transit-drop tables deleted and its workers gone, or
   * a packet could be forwarded by both (podway run calls it then; stop() alone when told to).
   */
  restoreForwarding(): void {
    for (const name of [...this.forwardingWas.keys()]) this.restoreForwardingOf(name);
  }

  /**
   * `restoreForwarding` (default true): set the underlay's forwarding back here (false: the caller
   * does, later). `keepTunnelTable` (default false): leave `table inet podway_tunnels` in the kernel
   * (podway run's stop: the next start replaces it in one transaction, as after a crash; `podway
   * cleanup` removes it).
   */
  stop({ restoreForwarding = true, keepTunnelTable = false }: { restoreForwarding?: boolean; keepTunnelTable?: boolean } = {}): void {
    this.stopped = true;
    this.neighborChangeLog.stop();
    this.ownRoutes?.stop();
    if (restoreForwarding) this.restoreForwarding();
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = null;
    if (this.neighborTimer) clearInterval(this.neighborTimer);
    this.neighborTimer = null;
    if (this.ringTimer) clearInterval(this.ringTimer);
    this.ringTimer = null;
    if (this.linkTimer) clearInterval(this.linkTimer);
    this.linkTimer = null;
    if (this.tableTimer) clearTimeout(this.tableTimer);
    this.tableTimer = null;
    this.localWatch?.stop();
    const spawner = this.spawner;
    void (this.host?.stop() ?? Promise.resolve()).then(() => spawner?.close());
    for (const [, ep] of this.endpoints) this.forgetPort(ep.port);
    this.endpoints.clear();
    if (keepTunnelTable) this.ownsTunnelTable = false;
    this.closeInfra();
  }

  // ---- the operator's view -------------------------------------------------------------------

  /**
   * The underlay next hops (IPv4 and IPv6) the model needs (`total`), and those whose MAC is not
   * known yet (resolving, or failed): frames towards them wait in the neighbour queue, or are
   * dropped once it is full.
   * `podway run` waits for these at start before it says it forwards (run.ts).
   */
  unresolvedNeighbors(): { total: number; unresolved: string[] } {
    const all = [...this.neighbors.entries(), ...this.neighbors6.table.entries()];
    return { total: all.length, unresolved: all.filter((e) => e.mac === null).map((e) => e.ip) };
  }

  /**
   * The other nodes behind an underlay neighbour whose probes went unanswered (FAILED, or in the
   * round after one, no answer since): their pods cannot be reached from here. One row per
   * neighbour: the node's address for an on-link node, a gateway (every node behind it) otherwise.
   * `since`: when its first unanswered round ended. The node still forwards for the others, so
   * /readyz does not count this (docs/observability.md).
   */
  unreachableNodes(): Array<{ neighbor: string; nodes: string[]; nodeIps: string[]; since: string }> {
    const out: Array<{ neighbor: string; nodes: string[]; nodeIps: string[]; since: string }> = [];
    const nh = this.pipe.nh;
    for (const f of this.neighbors.failedEntries()) {
      const nodes = new Set<string>();
      const ips = new Set<string>();
      for (let i = 0; nh && i < nh.count; i++) {
        const k = nh.kind[i];
        if ((k === NhKind.DIRECT || k === NhKind.VXLAN || k === NhKind.IPIP) && nh.gw[i] === f.key >>> 0) {
          nodes.add(nh.routes[i].node);
          if (nh.routes[i].nodeIp !== null) ips.add(formatIpv4(nh.routes[i].nodeIp!));
        }
      }
      out.push({ neighbor: formatIpv4(f.key), nodes: [...nodes].sort(), nodeIps: [...ips].sort(), since: new Date(f.since).toISOString() });
    }
    const nh6 = this.pipe.v6.nh;
    for (const f of this.neighbors6.failedEntries6()) {
      // the routes through that neighbour: the node itself, or every node behind a gateway (gw6)
      const nodes = new Set<string>();
      const ips = new Set<string>();
      for (let i = 0; nh6 && i < nh6.count; i++) {
        const k = nh6.kind[i];
        const r = nh6.routes[i];
        if ((k === NhKind.DIRECT || k === NhKind.VXLAN) && r.nodeIp6 !== null && formatIpv6(nh6.gw6, i * 16) === f.ip6) {
          nodes.add(r.node);
          ips.add(r.nodeIp6);
        }
      }
      out.push({ neighbor: f.ip6, nodes: [...nodes].sort(), nodeIps: ips.size > 0 ? [...ips].sort() : [f.ip6], since: new Date(f.since).toISOString() });
    }
    return out;
  }

  status() {
    const m = this.model;
    return {
      node: m?.node.name ?? null,
      // the enabled IPPools of the model's families (0: none, so no pod here gets an address; an
      // IPv6-only node's model holds no IPv4 pool)
      ipPools: m ? m.pools.filter((p) => !p.disabled).length + m.v6.pools.filter((p) => p.disabled !== true).length : null,
      // null on an IPv6-only node (no IPv4 address): its address is ipv6.nodeIp
      nodeIp: m && m.node.ip !== null ? formatIpv4(m.node.ip) : null,
      underlay: this.underlay ? { name: this.underlay.name, mac: this.underlay.macText, mtu: this.underlay.mtu } : null,
      // where VXLAN/IPIP to the node are read: the underlay port (with offload metadata) or the sockets
      tunnelsOn: this.underlay ? this.tunnelsOnText() : null,
      // reverse-path filtering of decapsulated IPv4 (0 off, 1 strict, 2 loose: rp-filter.ts)
      rpFilter: this.pipe.rpFilter,
      // the last change of it read while running (net.ipv4.conf all/default changed): when, from what
      rpFilterChange: this.rpFilterChange,
      failures: { ...this.failures },
      vtep: m ? { ip: m.node.vtepIp !== null ? formatIpv4(m.node.vtepIp) : null, mac: m.node.vtepMac } : null,
      uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
      modelsApplied: this.applied,
      routes: m?.routes.length ?? 0,
      // IPv6: the node's own address and VTEP, its routes, and the other nodes' IPv6 addresses
      ipv6: m ? {
        nodeIp: m.v6.ip6, vtep: { ip: m.v6.vtepIp6, mac: m.v6.vtepMac6 }, routes: m.v6.routes.length,
        podMtu: m.v6.vxlan ? Math.min(m.mtu.pod, m.v6.vxlanMtu) : m.mtu.pod, vxlanMtu: m.v6.vxlanMtu, knownNodes: m.v6.knownNodeIps6,
      } : null,
      withheld: [...(m?.withheld ?? []), ...(m?.v6.withheld ?? []), ...[...this.pending.values()].map(({ ep, error }) => ({ cidr: ep.cidrs.join(','), node: m?.node.name ?? '', reason: `interface ${ep.interfaceName} not attached: ${error}` }))],
      endpoints: this.endpoints.size,
      mtu: m?.mtu ?? null,
      // the MTUs in force when the underlay interface's is below the model's (checkUnderlayMtu,
      // boundRouteMtus: the routes into podway0 and the pipeline's tunnel routes have them), and
      // the pods' packets the kernel refused as too big that were answered since (answerTooBig)
      mtuEffective: m && this.underlay && this.underlay.mtu >= 68 && this.underlay.mtu < m.mtu.underlay ? {
        underlay: this.underlay.mtu,
        modelUnderlay: m.mtu.underlay,
        vxlan: Math.min(m.mtu.vxlan, this.underlay.mtu - ENCAP_OVERHEAD.vxlan),
        ipip: Math.min(m.mtu.ipip, this.underlay.mtu - ENCAP_OVERHEAD.ipip),
        vxlan6: Math.min(m.v6.vxlanMtu, this.underlay.mtu - VXLAN6_OVERHEAD),
      } : null,
      tooBigAnswered: this.tooBigAnswered,
      knownNodes: m ? [...m.node.knownNodeIps].map(formatIpv4) : [],
      // the node's own addresses a veth pod's packets for are left to the kernel (local-addrs.ts):
      // those the pipeline holds, not the loopback and link-local entries it leaves out
      localAddresses: keptLocalAddresses(this.local),
      // pod interfaces holding an address no endpoint of this datastore names, while they exist
      orphanPods: this.liveOrphans(),
      // how the host-managing engine learns them (local-watch.ts); null on a worker
      localLearned: this.localWatch === null ? null : this.localWatch.live ? `ip monitor (change notices; read again every ${LOCAL_ADDR_SAFETY_MS / 1000} s)` : `read every ${LOCAL_ADDR_CHECK_MS / 1000} s (ip monitor not running)`,
      // a node address missing from a link that is up (only that), and the underlay down or gone
      nodeAddressMissing: this.nodeAddressMissing,
      underlayDown: this.underlayDown ? { reason: this.underlayDown.reason, since: this.underlayDown.since.toISOString() } : null,
      hostChanges: this.liveNotes(),
      hostProgramming: this.host ? (({ lastCommands, ...st }) => st)(this.host.status()) : null,
      // underlay neighbours that do not answer, and the nodes behind them (unreachableNodes)
      unreachableNodes: this.unreachableNodes(),
      neighbors: { entries: this.neighbors.entries(), counters: this.neighbors.counters() },
      neighbors6: { entries: this.neighbors6.table.entries(), counters: this.neighbors6.table.counters() },
      // packets held now for unresolved neighbours (this thread's), and the bounds
      neighborQueue: this.pipe.held ? { held: this.pipe.held.size, perNeighbor: this.pipe.held.perNeighbor, perNeighborBytes: this.pipe.held.perNeighborBytes, capacity: this.pipe.held.capacity } : null,
      batch: this.batch,
      // the kernel table the engine reads itself when no caller gives one (ownKernelRoutes);
      // null when one is given (podway run's own shows in its status)
      ownKernelRoutes: this.ownRoutes?.status() ?? null,
    };
  }

  /**
   * status().hostChanges: what podway changed on the host, less the per-interface sysctls of an
   * interface that is gone (a deleted pod veth takes its settings with it; quietKernelOn notes
   * them again when an interface of that name is attached again, if it had to change them).
   */
  private liveNotes(): string[] {
    const live = this.notes.filter((n) => {
      const m = /^net\.ipv[46]\.conf\.([^.=\s]+)\./.exec(n);
      return m === null || m[1] === 'all' || m[1] === 'default' || interfaceExists(m[1].replace(/\//g, '.'));
    });
    // forget the gone ones for good: a new interface of that name starts with the kernel's defaults
    if (live.length !== this.notes.length) this.notes.splice(0, this.notes.length, ...live);
    this.notesKept = live.length;
    return live;
  }

  /** Notes a pod attach made, pruned (liveNotes) once they are twice what the last pruning kept
   * (and NOTES_SLACK more): one stat per note then, amortized over as many attaches. */
  private addNotes(more: readonly string[]): void {
    if (more.length === 0) return;
    this.notes.push(...more);
    if (this.notes.length > 2 * this.notesKept + NOTES_SLACK) this.liveNotes();
  }

  /** status().tunnelsOn: where tunnels to the node are read, per family. */
  private tunnelsOnText(): string {
    const ip6 = this.model?.v6.ip6 ?? null;
    const v4 = this.tunnelsOnUnderlay ? `underlay port (nft table inet ${TUNNEL_TABLE})` : 'sockets';
    // IPv6 VXLAN is always read from the underlay port; the socket (outer fragments) needs the rule
    if (ip6 === null || (this.tunnelsOnUnderlay && this.tunnelTable6 === ip6)) return v4;
    return `${v4}; VXLAN to ${ip6}: underlay port only (no IPv6 VXLAN socket: ${this.tunnelsOnUnderlay ? `the table names ${this.tunnelTable6 ?? 'no IPv6 address'}` : 'no table'})`;
  }

  /** A local route whose interface is not attached is not in the FIB (its address falls to the
   * block's blackhole): `podway routes` says so, with the reason status gives. */
  private withheldLocal(endpoint: string | null): string {
    const p = endpoint !== null ? this.pending.get(endpoint) : undefined;
    return `interface ${endpoint ?? '?'} not attached${p ? `: ${p.error}` : ''}`;
  }

  routes() {
    const nh = this.pipe.nh;
    if (!nh) return [];
    const v4 = nh.routes.map((r, i) => ({
      cidr: r.cidr,
      kind: nh.kind[i] === NhKind.LOCAL && nh.port[i] < 0 ? 'withheld' : NH_KIND_NAMES[nh.kind[i]],
      ...(nh.kind[i] === NhKind.LOCAL && nh.port[i] < 0 ? { withheld: this.withheldLocal(r.endpoint) } : {}),
      node: r.node,
      via: r.nodeIp !== null ? formatIpv4(r.nodeIp) : r.endpoint ?? '',
      // the underlay neighbour when it is not `via` itself: the gateway towards a node off the link
      // (tunnels' outer packets, and unencapsulated routes off our subnet: nexthops.ts directGateway)
      ...(r.nodeIp !== null && nh.gw[i] !== 0 && nh.gw[i] !== r.nodeIp >>> 0 ? { gateway: formatIpv4(nh.gw[i]) } : {}),
      vtepMac: r.vtepMac ?? '',
      mtu: r.mtu,
      nextHopMac: nh.macKnown[i] === MAC_KNOWN ? formatMac(nh.mac, i * 6) : nh.macKnown[i] === MAC_FAILED ? 'failed' : '',
      pool: r.pool ?? '',
    }));
    return [...v4, ...routeRows6(this.pipe.v6.nh, (ifname) => this.withheldLocal(ifname))];
  }

  /** Attached endpoints, then the ones waiting for their interface (their routes withheld). */
  endpointList() {
    const v6 = new Map((this.model?.v6.endpoints ?? []).map((e) => [e.interfaceName, e.ips6.map((ip) => `${ip}/128`)] as const));
    const attached = [...this.endpoints.values()].map(({ ep, port, kind }) => ({
      workload: ep.key,
      interface: ep.interfaceName,
      type: kind,
      networks: [...ep.cidrs, ...(v6.get(ep.interfaceName) ?? [])],
      state: 'attached',
      mac: this.pipe.podMacKnown[port] ? formatMac(this.pipe.podMac, port * 6) : '',
      rx: this.pipe.portCounters[port * PORT_COUNTERS + PortCounter.RX],
      tx: this.pipe.portCounters[port * PORT_COUNTERS + PortCounter.TX],
    }));
    const waiting = [...this.pending.values()].map(({ ep, error, since }) => ({
      workload: ep.key,
      interface: ep.interfaceName,
      type: ep.interfaceType,
      networks: [...ep.cidrs, ...(v6.get(ep.interfaceName) ?? [])],
      state: `waiting: ${waitingReason(error)}`,
      error,
      since: new Date(since).toISOString(),
      mac: ep.mac ?? '',
      rx: 0,
      tx: 0,
    }));
    return [...attached, ...waiting];
  }

  counters() {
    this.checkRejected();
    const c = this.pipe.counters;
    const reasons: Record<string, number> = {};
    for (let r = 1; r < c.length; r++) if (c[r]) reasons[COUNTER_NAMES[r]] = c[r];
    const ports: Record<string, unknown>[] = [];
    const all = [...Object.values(this.infra), ...[...this.endpoints.values()].map((e) => e.port)].filter((p) => p >= 0);
    for (const p of all) {
      const pc = p * PORT_COUNTERS;
      const st = this.io.stats(p);
      ports.push({
        port: this.pipe.portName[p],
        rx: this.pipe.portCounters[pc + PortCounter.RX],
        tx: this.pipe.portCounters[pc + PortCounter.TX],
        rxBytes: this.pipe.portCounters[pc + PortCounter.RX_BYTES],
        txBytes: this.pipe.portCounters[pc + PortCounter.TX_BYTES],
        drops: this.pipe.portCounters[pc + PortCounter.DROPS],
        rxCalls: st.rxCalls,
        txCalls: st.txCalls,
        kernelDrops: st.rxKernelDrops,
        txFull: st.txDroppedFull,
        ...(st.rxHeld ? { held: st.rxHeld, heldMs: Math.round((st.rxHeldNs ?? 0) / 1e6) } : {}),
        ...(st.rxHeldNow ? { heldNow: 1 } : {}),
        ...(st.txHolding ? { holding: st.txHolding } : {}),
        ...(st.txHoldStalls ? { holdStalls: st.txHoldStalls } : {}),
        txErrors: st.txErrors,
        sendRefused: this.pipe.portCounters[pc + PortCounter.TX_ERRORS],
        rxErrors: this.pipe.portCounters[pc + PortCounter.RX_ERRORS],
        txQueued: st.txQueued ?? 0,
        ...(st.rxGsoFrames ? { rxGsoFrames: st.rxGsoFrames, rxGsoSegments: st.rxGsoSegments } : {}),
        ...(st.rxGsoBad || st.rxGsoDropped ? { rxGsoBad: st.rxGsoBad, rxGsoDropped: st.rxGsoDropped } : {}),
        // the addon's other drops (NATIVE_DROPS), when there are any
        ...(st.rxVlanTagged ? { rxVlanTagged: st.rxVlanTagged } : {}),
        ...(st.rxBadCsum ? { rxBadCsum: st.rxBadCsum } : {}),
        ...(st.rxShort ? { rxShort: st.rxShort } : {}),
        ...(st.rxReadFailed ? { rxReadFailed: st.rxReadFailed } : {}),
        ...(st.txBacklogDropped ? { txBacklogDropped: st.txBacklogDropped } : {}),
        ...(st.rxCsumCompleted ? { rxCsumCompleted: st.rxCsumCompleted } : {}),
        ...(st.rxScatterFrames ? { rxScatterFrames: st.rxScatterFrames } : {}),
        ...(st.rxRingStalls ? { rxRingStalls: st.rxRingStalls } : {}),
        rxWaitNs: st.rxWaitNs ?? 0, rxWaitSamples: st.rxWaitSamples ?? 0, jsNs: st.jsNs ?? 0, jsSamples: st.jsSamples ?? 0,
        txSyscallNs: st.txSyscallNs ?? 0, txSyscalls: st.txSyscalls ?? 0,
        ...(st.txGroFrames ? { txGroFrames: st.txGroFrames, txGroSegments: st.txGroSegments } : {}),
        ...(st.txGsoFrames || st.txGsoRejected ? { txGsoFrames: st.txGsoFrames, txGsoSegments: st.txGsoSegments, txGsoRejected: st.txGsoRejected } : {}),
        ...(st.rxSuperFrames || st.rxMergeFrames || st.txSuperFrames || st.txSuperCut || st.txSuperLost || st.txSuperUso ? { rxSuperFrames: st.rxSuperFrames, rxSuperSegments: st.rxSuperSegments, rxMergeFrames: st.rxMergeFrames, rxMergeSegments: st.rxMergeSegments, txSuperFrames: st.txSuperFrames, txSuperCut: st.txSuperCut, txSuperLost: st.txSuperLost, txSuperUso: st.txSuperUso } : {}),
        ...(st.txBacklog ? { txBacklog: st.txBacklog } : {}),
        ...(st.txBacklogGrown ? { txBacklogGrown: st.txBacklogGrown } : {}),
        ...(st.txRejected ? { txRejected: st.txRejected, txHeadDropped: st.txHeadDropped ?? 0 } : {}),
        ...(st.lastError ? { lastError: st.lastError } : {}),
      });
    }
    return { reasons, ports, routes: this.routeHits(), failures: { ...this.failures } };
  }

  /** Packets routed per route so far, IPv4 and IPv6 (routes that carried none are left out). */
  routeHits(): RouteHit[] {
    return routeHits(this.pipe.nh, this.pipe.v6.nh);
  }

  /** Names of the ports open now (a capture describes them up front). */
  portNames(): string[] {
    const all = [...Object.values(this.infra), ...[...this.endpoints.values()].map((e) => e.port)].filter((p) => p >= 0);
    return all.map((p) => this.pipe.portName[p]);
  }

  /** Start recording the next `n` packets matching `filter` (one trace at a time). */
  openTrace(filter: TraceFilter, n: number): TraceSession {
    if (this.pipe.trace) throw new Error('a trace is already running');
    const t = new TraceSession(filter, Math.max(1, Math.min(n, 100)));
    this.pipe.trace = t;
    return t;
  }

  closeTrace(t: TraceSession): void {
    if (this.pipe.trace === t) this.pipe.trace = null;
    t.finish();
  }

  /**
   * A number that changes whenever this thread moved a packet or counted anything (the receive and
   * send batches' packet sums, every drop reason and event): what a worker compares to tell whether
   * its counts changed since it last sent them, without building them (worker.ts).
   */
  activityMark(): number {
    let n = this.pipe.rxBatches[BATCH_SUM] + this.pipe.txBatches[BATCH_SUM];
    const c = this.pipe.counters;
    for (let i = 0; i < c.length; i++) n += c[i]; // (IPv6's pipeline counts into the same array)
    return n;
  }

  /** The counters as plain numbers, read now (metrics scrapes; one call per port, none per packet). */
  metricsSnapshot(): DataplaneSnapshot {
    this.checkRejected();
    const ports = Object.entries(this.infra).filter(([, p]) => p >= 0).map(([kind, port]) => ({ port, kind, workload: '' }));
    for (const e of this.endpoints.values()) ports.push({ port: e.port, kind: e.kind, workload: e.ep.key });
    const snap = pipelineSnapshot(this.pipe, this.io, ports);
    for (const [name, c] of this.carriedInfra) {
      const live = snap.ports.find((x) => x.name === name && x.workload === '');
      if (live) addPortCounts(live, c);
    }
    for (const [name, c] of this.carried) {
      const live = this.endpoints.has(name) ? snap.ports.find((x) => x.name === name) : undefined;
      if (live) addPortCounts(live, c);
      else if (this.pending.has(name)) snap.ports.push({ ...c, workload: this.pending.get(name)!.ep.key });
    }
    return { ...snap, failures: { ...this.failures }, orphanPodAddresses: this.liveOrphans().length, underlayNeighborsFailed: this.neighbors.failedEntries().length + this.neighbors6.failedEntries6().length };
  }

  /** The endpoints waiting for their interface, since when (observe/stale-endpoints.ts). */
  waitingEndpoints(): WaitingEndpoint[] {
    const v6 = new Map((this.model?.v6.endpoints ?? []).map((e) => [e.interfaceName, e.ips6.map((ip) => `${ip}/128`)] as const));
    return [...this.pending.values()].map(({ ep, error, since }) => ({
      workload: ep.key,
      interface: ep.interfaceName,
      networks: [...ep.cidrs, ...(v6.get(ep.interfaceName) ?? [])],
      error,
      since: new Date(since).toISOString(),
      missing: waitingReason(error) === 'interface missing',
    }));
  }

  /**
   * Why this engine is not ready to forward ([] when it is): no model applied yet, a node port
   * (underlay, VXLAN, IPIP, host; VXLAN and IPIP only with an IPv4 node address) not open or
   * failing to receive. Pods whose interface does not
   * exist yet are listed in `waiting`: a pod being wired is normal and does not make the node unready.
   */
  readiness(): { problems: string[]; waiting: string[] } {
    const problems: string[] = [];
    if (!this.model) problems.push('no model applied yet');
    else {
      // An IPv6-only node (no IPv4 address: IP=none) opens no IPv4 VXLAN or IPIP socket (openInfra):
      // not wanted there, or such a node would never be ready (no READY=1 under systemd, /readyz 503).
      const v4: (keyof Engine['infra'])[] = this.model.node.ip !== null ? ['vxlan', 'ipip'] : [];
      const want: (keyof Engine['infra'])[] = this.primary ? ['tx4', ...v4, 'underlay', 'host'] : ['tx4', ...v4.filter((k) => k !== 'ipip'), 'underlay'];
      for (const k of want) {
        const p = this.infra[k];
        if (p < 0) problems.push(`port ${k} is not open`);
        else if (this.repoll.has(p)) problems.push(`port ${this.pipe.portName[p]}: receive failing (${this.loggedErrors.get(p) ?? 'error'})`);
      }
    }
    // The underlay down or gone: nothing crosses to the other nodes. Only while there are others
    // (knownNodeIps holds this node too): a node alone loses only what leaves the cluster, and its
    // pods still reach each other. An address missing from a link that is up is no readiness
    // problem (a warning and nodeAddressMissing): IPv4 still forwards (podway answers ARP for it),
    // and an autodetected address is re-registered within the poll interval. Said as status's
    // `underlay down:` line is, with since when.
    if (this.primary && this.model && this.underlayDown && [...this.model.node.knownNodeIps].some((ip) => ip !== this.model!.node.ip)) {
      problems.push(`underlay down: ${this.underlayDown.reason} (since ${this.underlayDown.since.toISOString()}): this node cannot reach the other nodes`);
    }
    const waiting = [...this.pending.values()].map(({ ep, error }) => `${ep.key}: ${error}`);
    return { problems, waiting };
  }

  /** Record the next `n` packets matching `filter`, or what came within `timeoutMs`. */
  async trace(filter: TraceFilter, n: number, timeoutMs: number): Promise<TraceRecord[]> {
    const t = this.openTrace(filter, n);
    const timer = setTimeout(() => t.finish(), timeoutMs);
    try {
      await t.finished;
    } finally {
      clearTimeout(timer);
      this.closeTrace(t);
    }
    return t.records;
  }

  /**
   * Start a capture (one at a time). Its records go to `onChunk` every few milliseconds, with the
   * records lost since the last call (buffer full); the last call has `end` set, after the capture
   * took `opts.count` records or stop() was called. Returns stop().
   */
  startCapture(opts: CaptureOptions, onChunk: (chunk: Uint8Array | null, lost: number, end: boolean) => void): () => void {
    if (this.pipe.capture) throw new Error('a capture is already running');
    const tap = new CaptureTap(opts, this.batch, this.pipe.vxlanPort);
    this.pipe.capture = tap;
    let reported = 0;
    let ended = false;
    const flush = (end: boolean) => {
      const chunk = tap.take();
      const lost = tap.lost - reported;
      reported = tap.lost;
      if (chunk || lost > 0 || end) onChunk(chunk, lost, end);
    };
    const stop = () => {
      if (ended) return;
      ended = true;
      clearInterval(timer);
      if (this.pipe.capture === tap) this.pipe.capture = null;
      flush(true);
    };
    const timer = setInterval(() => (tap.done ? stop() : flush(false)), CAPTURE_FLUSH_MS);
    timer.unref();
    return stop;
  }
}

/** `podway endpoints`' state of an endpoint whose interface could not be attached. */
function waitingReason(error: string): string {
  return /does not exist|ENODEV|No such device/i.test(error) ? 'interface missing' : error;
}

/** The IPv4 address as nft and logs write it; null (an IPv6-only node) stays null. */
function fmt4(ip: number | null): string | null {
  return ip === null ? null : formatIpv4(ip);
}

/** "10.0.0.1/fd00::1", "10.0.0.1", or "fd00::1" on an IPv6-only node (logs). */
function addrsText(ip: number | null, ip6: string | null): string {
  if (ip === null) return ip6 ?? 'none';
  return `${formatIpv4(ip)}${ip6 ? `/${ip6}` : ''}`;
}

/** Each endpoint's interface and its addresses (both families, canonical text), of a model. */
/** The addresses whose underlay next hop counts: the other nodes tunnel packets go to (VXLAN, IPIP
 * routes), and the next hops of unencapsulated routes off our subnet (nexthops.ts directGateway). */
export function remoteNodeIps(model: NodeDataplaneModel): Set<number> {
  const sub = model.node.subnet;
  const onSubnet = (ip: number) => sub !== null && ((ip & mask32(sub.prefixLen)) >>> 0) === sub.addr >>> 0;
  return new Set(model.routes.filter((r) => r.nodeIp !== null && (r.kind === 'vxlan' || r.kind === 'ipip' || (r.kind === 'direct' && !onSubnet(r.nodeIp)))).map((r) => r.nodeIp!));
}

/** The IPv6 addresses whose underlay next hop counts: the nodes IPv6 VXLAN goes to, and the next
 * hops of unencapsulated IPv6 routes off our IPv6 subnet (nexthops6.ts directGateway6). */
export function remoteNodeIps6(model: NodeDataplaneModel): Set<string> {
  const sub = networkOf6(model.v6.subnet6);
  return new Set(model.v6.routes.filter((r) => r.nodeIp6 !== null && (r.kind === 'vxlan' || (r.kind === 'direct' && (sub === null || !covers6(sub, parseIp6(r.nodeIp6)))))).map((r) => r.nodeIp6!));
}

/** The underlay next hops (both families) as a key: a change applies the model again. */
function gatewaysKey(gateways: Map<number, number>, gateways6: Map<string, string>): string {
  return JSON.stringify([[...gateways], [...gateways6]]);
}

/** Endpoint addresses as text, the one form of the log lines and the orphan keys: IPv4 dotted, then
 * IPv6 as iproute2 prints it (addressKey). */
function addressTexts(ips: readonly number[], ips6: readonly string[]): string[] {
  const out: string[] = [];
  for (const ip of ips) out.push(formatIpv4(ip));
  for (const ip6 of ips6) out.push(addressKey(ip6));
  return out;
}

/** Every endpoint's addresses by interface (the orphan checks). */
function endpointAddresses(model: NodeDataplaneModel): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (ifname: string, a: string[]) => { if (a.length === 0) return; const l = out.get(ifname); if (l) l.push(...a); else out.set(ifname, a); };
  for (const e of model.endpoints) add(e.interfaceName, addressTexts(e.ips, []));
  for (const e of model.v6.endpoints) add(e.interfaceName, addressTexts([], e.ips6));
  return out;
}

function endpointInterfaces(model: NodeDataplaneModel): string[] {
  return [...model.endpoints.map((e) => e.interfaceName), ...model.v6.endpoints.map((e) => e.interfaceName)];
}

/** "ifname address" of every endpoint address of a model. */
function modelAddressKeys(model: NodeDataplaneModel): Set<string> {
  const out = new Set<string>();
  for (const [ifname, addrs] of endpointAddresses(model)) for (const a of addrs) out.add(`${ifname} ${a}`);
  return out;
}

/** An IPv4 address as its four bytes (HostPortSources.set). */
function ip4Bytes(ip: number): Uint8Array {
  return Uint8Array.of(ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff);
}
