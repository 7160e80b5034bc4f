/**
 * The forwarding pipeline: a batch of frames received from one port flows through small stages
 * (ingress parse and checks, route lookup, rewrite or encapsulation in place) and leaves grouped by
 * output port, one send call per output port per batch.
 *
 * Hot-path rules: no allocation per packet (frames are offsets into the pool, headers are written
 * in place, templates are prebuilt per next hop), one JS call per batch in each direction,
 * incremental checksums. Tracing costs one boolean test per packet while off; capture one test per
 * batch.
 */
// Hot path: import from the modules themselves, not the packet/ index (whose `export *` re-exports
// are getters on every call).
import { Drop } from '../packet/drop';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, formatMac } from '../packet/ethernet';
import { ETH_HLEN } from '../packet/layout';
import { ARP_REQUEST, ARP_REPLY, arpReplyInPlace, validateArp } from '../packet/arp';
import { ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_HOST_UNREACH, ICMP_PARAMETER_PROBLEM, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED, buildIcmpErrorInPlace, mayReplyWithIcmpError } from '../packet/icmp';
import { ipv4DecrementTtl, ipv4FillChecksum, ipv4OptionsPointer, validateIpv4, formatIpv4, IPPROTO_ICMP, IPPROTO_IPIP, IPPROTO_UDP } from '../packet/ipv4';
import { encapVxlan, decapVxlanPacket, vxlanInnerLength, vxlanInnerMacOk, VXLAN_PORT } from '../packet/vxlan';
import { decapIpipPacket, encapIpip } from '../packet/ipip';
import { ipv4FragmentCount, ipv4MakeFirstFragment, ipv4WriteFragment } from '../packet/fragment';
import { ECN_DECAP_DROP, ecnDecapText, ecnDecapsulateIpv4, ipv4EcnAt } from '../packet/ecn';
import { innerFlowHash, vxlanSourcePort, VXLAN_SRC_PORT_MIN, VXLAN_SRC_PORT_MAX } from '../packet/flowhash';
import { NO_ROUTE } from '../lpm/constants';
import { isMartianDst4, isGroupDst4, isMartianSrc4 } from '../packet/martian';
import { FramePool, DescFlag, SLOT_SHIFT, SLOT_SIZE, HEADROOM } from './frame-pool';
import type { PacketIO } from './io';
import { NextHops, NhKind, NatExit, NH_KIND_NAMES, CALICO_VNI, MAC_KNOWN, MAC_FAILED } from './nexthops';
import { Reason, Event, COUNTER_COUNT, PortCounter, PORT_COUNTERS, BATCH_HIST_SIZE, BATCH_SUM, batchBucket } from './counters';
import { TraceSession, TraceRecord, traceMatches, traceMatchesArp } from './trace';
import { Pipeline6, MAX_POD_IPS6 } from './pipeline6';
import { NatSources, HostPortSources } from './nat';
import { CaptureTap, CapturePorts, Link, HELD_VERDICT } from './capture';
import type { NeighborQueue } from './neighbor-queue';
import { FAMILY_V4, FAMILY_POD } from './neighbor-queue';
import { IcmpRateLimiter } from './icmp-ratelimit';
import { LocalSet4 } from './local-addrs';

/** What a port is to the pipeline. */
export const Role = {
  NONE: 0,
  /** A pod's L2 interface: veth host end (AF_PACKET) or TAP. */
  POD_L2: 1,
  /** A pod's TUN device: IP packets, no Ethernet, no ARP. */
  POD_TUN: 2,
  /** UDP socket on the node IP, the VXLAN port (4789, or Felix's vxlanPort): VXLAN payloads from other nodes. */
  VXLAN_RX: 3,
  /** Raw socket for protocol 4: IPIP packets from other nodes. */
  IPIP_RX: 4,
  /** AF_PACKET on the underlay NIC: unencapsulated pod traffic and ARP. */
  UNDERLAY: 5,
  /** Raw IPPROTO_RAW socket: sends IPv4 packets through the kernel's routing (outer VXLAN/IPIP
   * packets while the underlay neighbour is unresolved, and pod egress outside the pools). */
  TX4: 6,
  /** The host port: a TUN device (podway0) joining the node's own stack to the pod network. The
   * kernel routes the pools into it (node -> pods), and podway hands it pod traffic for the node. */
  HOST_TUN: 7,
  /** UDP socket on the node's IPv6 address, the VXLAN port: VXLAN over IPv6 the kernel reassembled
   * from outer fragments (unfragmented VXLAN over IPv6 arrives on the underlay port). */
  VXLAN6_RX: 8,
  /** Raw IPv6 IPPROTO_RAW socket (transmit only): pod packets for another node's own IPv6 address,
   * through the kernel's routing (pipeline6 noRouteFromPod). */
  TX6: 9,
} as const;

export const MAX_PORTS = 1024;
/**
 * Pool descriptors (each with its slot) a pipeline keeps for the fragments it makes beyond each
 * packet's first (Pipeline.fragArea): a packet without DF bigger than its next hop's MTU is cut
 * as the kernel's ip_do_fragment cuts it (packet/fragment.ts), its first fragment in its own
 * frame, the others here. 64: 64 packets of up to 1,906 bytes through a 1,450-byte route (two
 * fragments each) per batch before the area is sent early (spillFragments), and the 40 fragments
 * of one such packet at IPv4's minimum MTU of 68.
 */
export const FRAG_DESCS = 64;
/** How long after podway's ARP request to a pod its reply counts as the answer (ms). */
export const POD_ARP_ANSWER_MS = 10_000;

/** The tunnels a node decapsulates (Pipeline.tunnels): bits, one per tunnel device Calico makes. */
export const Tunnel = {
  /** VXLAN over IPv4 (Calico's vxlan.calico): an IPv4 pool with vxlanMode Always or CrossSubnet. */
  VXLAN: 1,
  /** IPIP (tunl0): an IPv4 pool with ipipMode Always or CrossSubnet. */
  IPIP: 2,
  /** VXLAN over IPv6 (vxlan-v6.calico): an IPv6 pool with vxlanMode Always or CrossSubnet. */
  VXLAN6: 4,
} as const;

/** The Tunnel bits of a model: each mode some pool of its family uses (disabled pools count, as
 * for the MTUs: route-calc.ts). */
export function tunnelsOf(m: { readonly encap: { readonly vxlan: boolean; readonly ipip: boolean }; readonly v6: { readonly vxlan: boolean } }): number {
  return (m.encap.vxlan ? Tunnel.VXLAN : 0) | (m.encap.ipip ? Tunnel.IPIP : 0) | (m.v6.vxlan ? Tunnel.VXLAN6 : 0);
}
export const GATEWAY_IP = 0xa9fe0101; // 169.254.1.1
export const GATEWAY_MAC = new Uint8Array([0xee, 0xee, 0xee, 0xee, 0xee, 0xee]);
const DROP = -1;
/** Not a drop and not forwarded by us: the host kernel, which also received the frame, handles it. */
const HOST = -2;
/** Copied into the pending queue of an unresolved underlay neighbour (neighbor-queue.ts): sent
 * from there when the neighbour answers (releaseHeld), or dropped and counted. */
const HELD = HELD_VERDICT;

export interface NodeAddressing {
  /** The node's IPv4 address; meaningless when !hasNodeIp (an IPv6-only node: no 0.0.0.0 sentinel). */
  nodeIp: number;
  hasNodeIp: boolean;
  underlayMac: Uint8Array;
  knownNodes: ReadonlySet<number>;
  /** The node's VXLAN tunnel address while a pool uses VXLAN (Node spec.ipv4VXLANTunnelAddr,
   * `vxlan.calico`'s address on a Calico node): the source of ICMP errors routed back through a
   * VXLAN tunnel. Absent or 0: none. */
  vxlanTunnelIp?: number;
  /** The node's IPIP tunnel address while a pool uses IPIP (spec.bgp.ipv4IPIPTunnelAddr, `tunl0`'s
   * address on a Calico node): the source of ICMP errors routed back through IPIP. Absent or 0: none. */
  ipipTunnelIp?: number;
}

export class Pipeline implements CapturePorts {
  readonly b: Uint8Array;
  readonly counters = new Float64Array(COUNTER_COUNT);
  /** Bytes of the frames dropped, by reason (added once per dropped frame; frames answered with
   * ICMP are not dropped). */
  readonly counterBytes = new Float64Array(COUNTER_COUNT);
  /** Frames per receive batch and per send call (counters.ts BATCH_*), read by the metrics. */
  readonly rxBatches = new Float64Array(BATCH_HIST_SIZE);
  readonly txBatches = new Float64Array(BATCH_HIST_SIZE);
  readonly portCounters = new Float64Array(MAX_PORTS * PORT_COUNTERS);
  readonly role = new Uint8Array(MAX_PORTS);
  /** When podway last asked each pod port for its MAC by ARP (holdForPod, Engine.askPodMac), in
   * batchNow()'s clock; 0 once answered. An ARP reply for the gateway within POD_ARP_ANSWER_MS of it
   * is the answer (arp_learned), any other is unsolicited (arp_reply_unsolicited). */
  readonly podArpAskedAt = new Float64Array(MAX_PORTS);
  readonly portName: string[] = new Array(MAX_PORTS).fill('');
  /** Pod MAC per port (6 bytes each), learned from its frames or given by the endpoint. */
  readonly podMac = new Uint8Array(MAX_PORTS * 6);
  readonly podMacKnown = new Uint8Array(MAX_PORTS);
  /** 1 while a port's MAC is the endpoint's stated one (spec.mac) and no frame from the pod has
   * confirmed it: the pod's next frame's source MAC replaces it when they differ (a veth made again
   * under the same WorkloadEndpoint has a new pod MAC while spec.mac keeps the old one). */
  readonly podMacCheck = new Uint8Array(MAX_PORTS);
  /** A local pod port's MTU (a veth's host end, which the CNI sets to the pod's; a TAP/TUN pod's
   * device in its namespace), set by the engine; 0: not known, not checked. Packets for the pod bigger than it are answered as a
   * route's MTU answers them (frag needed / packet too big, too_big_no_df), as the kernel's
   * forwarding checks its output device's MTU. */
  readonly portMtu = new Uint16Array(MAX_PORTS);
  /** Addresses each pod port may send from (source check), up to 4 per port. */
  readonly podIps = new Uint32Array(MAX_PORTS * 4);
  readonly podIpCount = new Uint8Array(MAX_PORTS);
  /** 1 for veth host ends: the node kernel receives the pod's frames too (traffic to the node's own
   * addresses is left to it). TAP/TUN pods reach only podway. */
  readonly hostSees = new Uint8Array(MAX_PORTS);
  /** The node's own IPv4 addresses, its main one's included (the kernel's local table, martian
   * ones left out: local-addrs.ts), set by the engine and kept current. */
  readonly local4 = new LocalSet4();
  private readonly out: Int32Array;
  private readonly outPorts = new Int32Array(MAX_PORTS);
  private readonly outMark = new Uint8Array(MAX_PORTS);
  private nOut = 0;
  nh!: NextHops;
  addr: NodeAddressing = { nodeIp: 0, hasNodeIp: false, underlayMac: new Uint8Array(6), knownNodes: new Set() };
  tx4Port = -1;
  /** The largest packet tx4 may take: the underlay's MTU (the engine sets it with each model). The
   * kernel refuses a raw IP_HDRINCL packet bigger than its output device's MTU (EMSGSIZE, DF or
   * not: it never fragments one), so a bigger one is answered or dropped here, as a route's MTU is. */
  tx4Mtu = 1500;
  underlayPort = -1;
  hostPort = -1;
  /** The tunnels this node decapsulates (Tunnel bits: tunnelsOf the model, set with it). A VXLAN
   * or IPIP packet of another mode is dropped `tunnel_mode_unused`: Calico makes the tunnel device
   * only for a mode some pool uses, and without it the kernel does not decapsulate. */
  tunnels = 0;
  /** The IP pools (address, mask): pod egress to anything outside them goes to the kernel. */
  poolAddr = new Uint32Array(0);
  poolMask = new Uint32Array(0);
  /** Pools with natOutgoing: their egress is masqueraded by the kernel (counted and traced here). */
  readonly natSources = new NatSources();
  /**
   * Host ports (CNI portMappings, Kubernetes hostPort; docs/cni.md, "Host ports"): the pods' ends of
   * them, (pod address, protocol, container port). A pod's TCP or UDP packet from one of them goes
   * to the node's kernel (tx4), whatever its destination, so the kernel's conntrack reverses the
   * DNAT of table ip podway's hostport_dnat chain (nft-nat.ts); so does every IPv4 fragment of a pod
   * that has any host port (the kernel reassembles them: a later fragment has no port to look at).
   * The kernel's own copy of a veth pod's frame is dropped by that table (hostport_copy). A typed
   * table (nat.ts HostPortSources): the look-up allocates nothing. Set by the engine with each model.
   */
  readonly hostPortSources = new HostPortSources(4);
  /** Felix's natOutgoingExclusions: true for IPPoolsOnly (the default), where a natOutgoing pod's
   * egress to another node's address is handed to the kernel to be masqueraded like any outside
   * destination (table ip podway masquerades the connections the pod opens there: nft-nat.ts
   * natSelectors); false for IPPoolsAndHostIPs, where node addresses keep the pod's address. */
  natToNodes = true;
  /** Felix's allowVXLANPacketsFromWorkloads / allowIPIPPacketsFromWorkloads (default false): a pod's
   * own UDP to the VXLAN port (4789 unless vxlanPort says otherwise) / IP-in-IP is dropped `encap_from_pod` unless allowed (IPv6 too). */
  allowVxlanFromPods = false;
  /** Felix's vxlanPort and vxlanVNI in force: the UDP destination port and VNI this node's VXLAN
   * is sent with and recognised by (the engine sets them once, before its ports open; a change
   * takes effect at podway run's next start). */
  vxlanPort = VXLAN_PORT;
  vni = CALICO_VNI;
  allowIpipFromPods = false;
  /** Reverse-path filtering of what is decapsulated from VXLAN and IPIP, as the node's kernel does
   * it on vxlan.calico and tunl0: the larger of net.ipv4.conf.all and .default rp_filter (Felix sets
   * rp_filter on cali interfaces only; a tunnel device takes `default` when made), read by the
   * engine (rp-filter.ts). 1 (strict): an inner source whose route back does not leave through the
   * same tunnel is dropped `reverse_path`; 0 (off) and 2 (loose, assuming the node routes what no
   * pod route holds): nothing more than `martian_src` and `own_source`. */
  rpFilter = 0;
  private ipId = 1;
  /** The fragment area (FRAG_DESCS descriptors from fragFirst, setFragArea; -1: none, a packet
   * that would need it is dropped too_big_no_df as before). In a batch, fragUsed of them hold
   * fragments: descriptor i's packet's others are [fragAt[i], fragAt[i] + fragN[i]) of the area,
   * each with its verdict in fragOut (flush sends them right after i, to their ports). */
  private fragFirst = -1;
  private fragUsed = 0;
  private readonly fragOut = new Int32Array(FRAG_DESCS);
  private readonly fragOwner = new Int32Array(FRAG_DESCS);
  private readonly fragN: Uint8Array;
  private readonly fragAt: Uint8Array;
  /** Port counters (offset) of the port whose batch is being processed. */
  private batchPc = 0;
  private flowSeed = (Math.random() * 0xffffffff) >>> 0;
  /** The VXLAN source port range (setVxlanSourcePorts): [min, max) as Linux's vxlan hashes into it. */
  private sportMin = VXLAN_SRC_PORT_MIN;
  private sportMax = VXLAN_SRC_PORT_MAX;
  /** Set while `podway trace` runs. */
  trace: TraceSession | null = null;
  /** Set while `podway capture` runs (tested once per batch). */
  capture: CaptureTap | null = null;
  /** The reason of the last drop, noted per dropped frame in `reasons` for capture (every path
   * that returns DROP sets it, pipeline6's too). */
  lastDrop = 0;
  private readonly reasons: Uint16Array;
  /** Per descriptor of the batch, the port a held frame waits to go out of (capture's route stage). */
  readonly heldTo: Int32Array;
  /** The trace record of the packet in hand (also written by pipeline6.ts). */
  tr: TraceRecord | null = null;
  /** Packets for an underlay neighbour still being resolved wait here (the engine's, with pool
   * descriptors of its own); null: they are dropped as `neighbor_unresolved`. */
  held: NeighborQueue | null = null;
  /** The super-frame being processed, as received (trace). */
  private superRxLen = 0;
  private superRxBytes = 0;
  /**
   * Called for next hops whose underlay neighbour `ip` has no MAC (the engine sends an ARP
   * request, rate-limited), with the batch's clock (`batchNow`). Returns whether the neighbour
   * table tracks `ip`: false when its size bound refused it, so no answer will ever come and a
   * direct route's packet is dropped at once (`neighbor_table_full`) instead of held.
   */
  onUnresolved: (ip: number, now: number) => boolean = () => true;
  /** Called when an ARP reply on the underlay resolves a neighbour. */
  onNeighbor: (ip: number, b: Uint8Array, macOff: number) => void = () => {};
  /** A packet for local L2 pod `port` whose MAC is not known (no MAC in its endpoint, and it has
   * sent nothing): the engine sends the pod an ARP request for its IPv4 address `ip`
   * (rate-limited), whose answer teaches the MAC (learnPodMac) and releases what waits for it. */
  onPodMacUnknown: (port: number, ip: number, now: number) => void = () => {};
  /** A packet for local pod `port` is bigger than its portMtu: the engine may read the device's MTU
   * again now (portMtu is polled every few seconds, so a raised MTU could still read as the old
   * one) before the packet is answered as too big (recheckPortMtu), with the batch's clock
   * (batchNow: no clock read per packet in a flood of packets too big). */
  onPortMtuExceeded: (port: number, now: number) => void = () => {};
  /** The same for a pod with IPv6 addresses only: `b[off..off+16]` is its first (v6.podIps6); the
   * engine sends it a Neighbor Solicitation from the gateway's link-local address, whose answer
   * (a Neighbor Advertisement) teaches the MAC as the ARP answer does. */
  onPodMacUnknown6: (port: number, b: Uint8Array, off: number, now: number) => void = () => {};
  /** A pod's MAC learned from its first frame (the engine shares a TAP pod's with the other
   * workers, which transmit to it but never read it). */
  onPodMac: (port: number, b: Uint8Array, macOff: number) => void = () => {};
  /** Called for an ARP request, or a gratuitous ARP (sender = target, `gratuitous`), on the underlay:
   * a neighbour naming its MAC without being asked (a changed MAC is taken, neighbors.ts onAnnounce). */
  onNeighborAnnounce: (ip: number, b: Uint8Array, macOff: number, gratuitous: boolean) => void = () => {};

  /** Called once per kind of I/O error on a port (send refused as a whole, receive failed), for
   * the log; the error is counted on the port either way. */
  onPortError: (port: number, op: 'send' | 'recv', e: Error) => void = () => {};

  /** The IPv6 half (pipeline6.ts): IPv6 frames are handed to it. */
  readonly v6: Pipeline6;

  constructor(readonly pool: FramePool, readonly batch: number, readonly io: PacketIO) {
    this.b = pool.bytes;
    this.out = new Int32Array(batch);
    this.v6 = new Pipeline6(this, MAX_PORTS);
    this.reasons = new Uint16Array(batch);
    this.heldTo = new Int32Array(batch);
    this.fragN = new Uint8Array(batch);
    this.fragAt = new Uint8Array(batch);
  }

  /** The FRAG_DESCS pool descriptors from `first` on (with their own slots, used by nothing
   * else) take the fragments this pipeline makes (FRAG_DESCS). Without: no fragmentation. */
  setFragArea(first: number): void {
    if (!(Number.isInteger(first) && first >= this.batch && first + FRAG_DESCS <= this.pool.descriptors && first + FRAG_DESCS <= this.pool.slots)) throw new RangeError(`fragment area: descriptors ${first}..${first + FRAG_DESCS} are not in the pool (${this.pool.descriptors}) past the batch (${this.batch})`);
    this.fragFirst = first;
  }

  get nodeIp(): number {
    return this.addr.nodeIp;
  }

  /** For capture: a super-frame's payload behind segment 0's (the addon's; none with MemoryIO). */
  get superRest(): PacketIO['superRest'] {
    return this.io.superRest;
  }

  /** How a port's frames are laid out, for capture. */
  linkOf(port: number): number {
    const r = this.role[port];
    if (r === Role.POD_L2 || r === Role.UNDERLAY) return Link.ETHERNET;
    if (r === Role.VXLAN_RX || r === Role.VXLAN6_RX) return Link.VXLAN;
    return Link.IP;
  }

  /** The underlay port, for capture (VXLAN over IPv6 is decapsulated from its frames). */
  isUnderlay(port: number): boolean {
    return this.role[port] === Role.UNDERLAY;
  }

  /**
   * The outer UDP source ports of VXLAN (IPv4 and IPv6): the node's net.ipv4.ip_local_port_range
   * LOW and HIGH (port-range.ts), hashed into [lo, hi) as Linux's vxlan does (flowhash.ts).
   */
  setVxlanSourcePorts(lo: number, hi: number): void {
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && lo <= hi && hi <= 65535)) throw new RangeError(`VXLAN source ports: ${lo}-${hi} is not a port range`);
    this.sportMin = lo;
    this.sportMax = hi;
    this.v6.sportMin = lo;
    this.v6.sportMax = hi;
  }

  setPort(id: number, role: number, name: string, ips: readonly number[] = [], mac?: Uint8Array, hostSees = false): void {
    this.role[id] = role;
    this.hostSees[id] = hostSees ? 1 : 0;
    this.portName[id] = name;
    this.podMacKnown[id] = 0;
    this.portMtu[id] = 0;
    this.updatePort(id, ips, mac);
    this.portCounters.fill(0, id * PORT_COUNTERS, (id + 1) * PORT_COUNTERS);
  }

  /**
   * New addresses (and a MAC the endpoint now states) for a port already in use: its role, name,
   * counters and the MAC it learned from the pod's own frames stay.
   */
  updatePort(id: number, ips: readonly number[], mac?: Uint8Array): void {
    this.podIpCount[id] = Math.min(ips.length, 4);
    for (let k = 0; k < 4; k++) this.podIps[id * 4 + k] = k < ips.length ? ips[k] >>> 0 : 0;
    if (mac) {
      this.podMac.set(mac, id * 6);
      this.podMacKnown[id] = 1;
      this.podMacCheck[id] = 1;
      this.releaseToPod(id);
    }
  }

  clearPort(id: number): void {
    // packets waiting for this pod's MAC go with it (the port number may be reused)
    if (this.held !== null && this.held.size > 0) this.held.take(FAMILY_POD, id, this.heldDropped);
    this.role[id] = Role.NONE;
    this.portName[id] = '';
    this.podIpCount[id] = 0;
    this.podMacKnown[id] = 0;
    this.podArpAskedAt[id] = 0;
    this.podMacCheck[id] = 0;
    this.v6.clearPort(id);
  }

  /** Drain one port: receive batches until it is empty (bounded, so one busy port cannot starve
   * the others), process each batch, send. Returns frames received. */
  drain(port: number, maxBatches = 16): number {
    let total = 0;
    for (let round = 0; round < maxBatches; round++) {
      const n = this.io.recv(port, 0, this.batch);
      if (n === 0) break;
      total += n;
      this.processBatch(port, n);
      if (n < this.batch) break;
    }
    return total;
  }

  /** The rest of a wake-up whose first batch (`n` frames in descriptors [0, n)) the I/O layer
   * already received (poll with recvMax = batch): process it, then drain as drain() does. */
  drainReceived(port: number, n: number, maxBatches = 16): number {
    if (n === 0) return 0;
    this.processBatch(port, n);
    if (n < this.batch) return n;
    return n + this.drain(port, maxBatches - 1);
  }

  /** The clock of the batch in hand (Date.now(), ms), read on first use by `batchNow`; -1: not
   * read yet. The neighbour code needs the time per unresolved packet, and Date.now() returns a
   * heap number: one read per batch, not per packet. */
  private clockAt = -1;

  /** Where batchNow reads the time (ms) when set (tests); null: Date.now(). */
  clock: (() => number) | null = null;

  /** The batch's clock: read once per batch, on first use (most batches never need it). */
  batchNow(): number {
    if (this.clockAt < 0) this.clockAt = this.clock !== null ? this.clock() : Date.now();
    return this.clockAt;
  }

  /** The kernel's rate limits on the ICMP/ICMPv6 errors podway sends (icmp-ratelimit.ts), this
   * worker's: IPv4's and IPv6's share the global bucket, as in the kernel. */
  readonly icmpLimit = new IcmpRateLimiter();

  /** The port the batch in hand came from (a trace's ingress when the packet is read past its
   * outer headers: a tunnel's inner packet, an underlay frame). */
  rxPort = -1;

  processBatch(port: number, n: number): void {
    this.clockAt = -1;
    this.rxPort = port;
    // Capture is tested once per batch here and once after; a drop notes its reason for it on the
    // drop path only.
    const cap = this.capture;
    if (cap !== null) cap.before(this.pool, n, port, this);
    const role = this.role[port];
    const pc = port * PORT_COUNTERS;
    this.batchPc = pc;
    this.rxBatches[batchBucket(n)]++;
    this.rxBatches[BATCH_SUM] += n;
    const out = this.out;
    const flags = this.pool.flags;
    let bytes = 0;
    // segments beyond one per descriptor: a DescFlag.SUPER descriptor stands for segs[i] of them,
    // and every counter counts what it stands for
    let extra = 0;
    for (let i = 0; i < n; i++) {
      const fl = flags[i];
      bytes += this.pool.len[i];
      if ((fl & DescFlag.SUPER) !== 0) {
        extra += this.pool.segs[i] - 1;
        bytes += this.pool.more[i];
        this.superRxLen = this.pool.len[i];
        this.superRxBytes = this.pool.len[i] + this.pool.more[i];
      }
      let o: number;
      if ((fl & DescFlag.TRUNCATED) !== 0) o = this.drop(Reason.TRUNCATED);
      else if (role === Role.POD_L2) o = this.fromPodL2(i, port);
      else if (role === Role.POD_TUN) o = this.fromPodTun(i, port);
      else if (role === Role.VXLAN_RX) o = this.fromVxlan(i);
      else if (role === Role.IPIP_RX) o = this.fromIpip(i);
      else if (role === Role.VXLAN6_RX) o = this.v6.fromVxlanSocket(i);
      else if (role === Role.UNDERLAY) o = this.fromUnderlay(i);
      else if (role === Role.HOST_TUN) o = this.fromHost(i, port);
      else o = this.dropCounted(0);
      if (this.tr !== null) {
        if ((fl & DescFlag.SUPER) !== 0) this.traceSuper(i);
        this.finishTrace(o);
      }
      if (o >= 0) this.markOut(o);
      else if (o === DROP) {
        this.portCounters[pc + PortCounter.DROPS]++;
        this.counterBytes[this.lastDrop] += this.pool.len[i];
        this.reasons[i] = this.lastDrop;
        if ((flags[i] & DescFlag.SUPER) !== 0) this.dropRest(i, pc); // (not when an ICMP error took it: superToOne)
      }
      out[i] = o;
    }
    this.portCounters[pc + PortCounter.RX] += n + extra;
    this.portCounters[pc + PortCounter.RX_BYTES] += bytes;
    if (cap !== null) cap.after(this.pool, n, port, out, this.reasons, DROP, this);
    this.flush(n);
  }

  /**
   * Copies of frames the kernel refused as too big (EMSGSIZE) after podway handed them over, as
   * takeRejected keeps them (records `[u16 original length][u16 bytes][bytes]`, `k` bytes) from a
   * port whose frames are laid out as `link` (Link.ETHERNET: the underlay's; Link.IP: tx4/tx6's).
   * Each whole one bigger than `mtu` (the device's MTU, read again since) that carries a local
   * pod's packet (a VXLAN or IPIP packet's inner one, or the packet itself) goes back through the
   * pipeline as the pod sent it (its TTL / hop limit as it came), now that the routes know the
   * MTU: a DF one (every IPv6 one) is answered with ICMP fragmentation needed / Packet Too Big
   * with the path's MTU (counted frag_needed, as any too-big packet), one without DF is dropped
   * too_big_no_df; so the pod's TCP learns the path MTU at once, not after its retransmissions
   * into the refusals time out. Not counted as received again. Called by the engine between
   * batches (its tick): descriptors [0, n) are free then, as for a receive. Returns how many went
   * back.
   */
  answerRefused(recs: Uint8Array, k: number, link: number, mtu: number): number {
    const b = this.b;
    const pool = this.pool;
    let n = 0;
    let at = 0;
    while (at + 4 <= k && n < this.batch && n < this.refusedIn.length) {
      const orig = recs[at] | (recs[at + 1] << 8);
      const len = recs[at + 2] | (recs[at + 3] << 8);
      const r = at + 4;
      at = r + len;
      if (at > k || orig !== len) continue; // (cut to the copy's 2 KiB: not answered)
      const l3 = link === Link.ETHERNET ? r + ETH_HLEN : r;
      if (link === Link.ETHERNET && len < ETH_HLEN) continue;
      if (r + len - l3 <= mtu) continue; // not too big for the device now: refused for something else
      const inner = refusedInner(recs, l3, r + len, this.vxlanPort);
      if (inner < 0) continue;
      const v6 = recs[inner] >> 4 === 6;
      const ilen = v6 ? IPV6_HLEN + ((recs[inner + 4] << 8) | recs[inner + 5]) : (recs[inner + 2] << 8) | recs[inner + 3];
      if (ilen < 20 || inner + ilen > r + len) continue;
      const port = v6 ? this.v6.podPortOf(recs, inner + 8) : this.podPortOf4(recs, inner + 12);
      if (port < 0) continue;
      const role = this.role[port];
      if (role !== Role.POD_L2 && role !== Role.POD_TUN) continue;
      const eth = role === Role.POD_L2 ? ETH_HLEN : 0;
      if (eth !== 0 && this.podMacKnown[port] === 0) continue;
      if (HEADROOM + eth + ilen > SLOT_SIZE) continue;
      pool.off[n] = HEADROOM;
      pool.flags[n] = 0;
      pool.len[n] = eth + ilen;
      pool.port[n] = port;
      const f = (pool.slot[n] << SLOT_SHIFT) + HEADROOM;
      if (eth !== 0) {
        for (let q = 0; q < 6; q++) { b[f + q] = GATEWAY_MAC[q]; b[f + 6 + q] = this.podMac[port * 6 + q]; }
        b[f + 12] = v6 ? ETHERTYPE_IPV6 >> 8 : ETHERTYPE_IPV4 >> 8;
        b[f + 13] = v6 ? ETHERTYPE_IPV6 & 0xff : ETHERTYPE_IPV4 & 0xff;
      }
      b.set(recs.subarray(inner, inner + ilen), f + eth);
      // as the pod sent it: forwarding took one off its TTL / hop limit (the header checksum follows)
      const ip = f + eth;
      if (v6) { if (b[ip + 7] < 255) b[ip + 7]++; }
      else if (b[ip + 8] < 255) { b[ip + 8]++; ipv4FillChecksum(b, ip); }
      this.refusedIn[n] = port;
      n++;
    }
    if (n === 0) return 0;
    this.clockAt = -1;
    const out = this.out;
    const cap = this.capture;
    this.capture = null; // (capture saw them refused, tx_rejected; the answer is counted below)
    try {
      for (let i = 0; i < n; i++) {
        const port = this.refusedIn[i];
        this.rxPort = port;
        this.batchPc = port * PORT_COUNTERS;
        const o = this.role[port] === Role.POD_L2 ? this.fromPodL2(i, port) : this.fromPodTun(i, port);
        if (this.tr !== null) this.finishTrace(o);
        if (o >= 0) this.markOut(o);
        else if (o === DROP) {
          this.portCounters[this.batchPc + PortCounter.DROPS]++;
          this.counterBytes[this.lastDrop] += pool.len[i];
          this.reasons[i] = this.lastDrop;
        }
        out[i] = o;
      }
      this.flush(n);
    } finally {
      this.capture = cap;
    }
    this.counters[Event.TOO_BIG_ANSWERED] += n;
    return n;
  }

  /** answerRefused's ports, per descriptor. */
  private readonly refusedIn = new Int32Array(64);

  /** The local pod port whose IPv4 addresses hold the address at b[off] (-1: none). Between
   * batches only (answerRefused): a walk over the ports. */
  private podPortOf4(b: Uint8Array, off: number): number {
    const a = ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
    for (let p = 0; p < MAX_PORTS; p++) {
      const r = this.role[p];
      if (r !== Role.POD_L2 && r !== Role.POD_TUN) continue;
      for (let q = 0; q < this.podIpCount[p]; q++) if (this.podIps[p * 4 + q] === a) return p;
    }
    return -1;
  }

  // ---- ingress stages ------------------------------------------------------------------------

  private fromPodL2(i: number, port: number): number {
    const b = this.b;
    const f = this.pool.start(i);
    const len = this.pool.len[i];
    if (len < ETH_HLEN) return this.drop(Drop.TOO_SHORT);
    const type = (b[f + 12] << 8) | b[f + 13];
    const taught = this.podMacKnown[port] === 0;
    if (taught) this.learnPodMac(port, f + 6);
    else if (this.podMacCheck[port] !== 0) this.checkPodMac(port, f + 6);
    if (type === ETHERTYPE_ARP) return this.podArp(i, port, f, len, taught);
    if (type === ETHERTYPE_IPV6) return this.v6.fromPodL2(i, port, f, len);
    if (type !== ETHERTYPE_IPV4) return this.drop(Reason.UNSUPPORTED_ETHERTYPE);
    // IPv4 from a pod must be sent to the gateway MAC (it resolved 169.254.1.1 through us).
    if (!this.isGatewayMac(f)) return this.drop(Reason.NOT_OUR_MAC);
    return this.fromPodIp(i, port, f + ETH_HLEN, len - ETH_HLEN);
  }

  private fromPodTun(i: number, port: number): number {
    const f = this.pool.start(i);
    if ((this.b[f] >> 4) === 6) return this.v6.fromPodTun(i, port, f, this.pool.len[i]);
    if ((this.b[f] >> 4) !== 4) return this.drop(Reason.UNSUPPORTED_ETHERTYPE);
    return this.fromPodIp(i, port, f, this.pool.len[i]);
  }

  private fromPodIp(i: number, port: number, ip: number, len: number): number {
    const b = this.b;
    const v = validateIpv4(b, ip, len);
    // bad options: answered (badOptions) after the source check, as the kernel checks options
    // after Calico's RPF check and the route lookup
    if (v !== Drop.OK && v !== Drop.BAD_IP_OPTIONS) return this.drop(v);
    if (this.trace !== null) this.startTrace(ip, port);
    // Source check: only the endpoint's own addresses may leave its interface.
    const src = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
    const base = port * 4;
    const cnt = this.podIpCount[port];
    let ok = false;
    for (let k = 0; k < cnt; k++) if (this.podIps[base + k] === src) ok = true;
    if (!ok) return this.drop(Reason.SOURCE_CHECK);
    if (this.tr !== null) this.tr.stages.push(`source check: ${formatIpv4(src)} belongs to ${this.portName[port]}: pass`);
    if (this.isEncapFromPod(ip, len)) return this.drop(Reason.ENCAP_FROM_POD);
    if (v === Drop.BAD_IP_OPTIONS) return this.badOptions(i, port, ip);
    if ((this.pool.flags[i] & DescFlag.CSUM_PARTIAL) !== 0 && !this.completeL4Checksum(ip)) return this.drop(Reason.BAD_PARTIAL_CSUM);
    if (this.hostPortSources.size !== 0 && this.fromHostPortSource(ip)) return this.hostPortReply(i, port, ip);
    return this.forward(i, port, ip, true, false);
  }

  /** Does the pod's IPv4 packet at `ip` go to the node's kernel for a host port (hostPortSources)?
   * TCP or UDP from one of its host ports' container ports; or any fragment (more fragments set or
   * an offset) from a pod that has a host port: the kernel must have all of a datagram's fragments
   * to reassemble it (conntrack), and only the first carries the ports; or an ICMP error
   * (unreachable, time exceeded, parameter problem) from such a pod: it may be about a packet the
   * kernel translated to the pod (a closed UDP port's port unreachable), and only the kernel's
   * conntrack gives its outer source and its inner packet the host port back (table ip podway
   * drops the kernel's own copy of a veth pod's such error: hostport_copy). */
  private fromHostPortSource(ip: number): boolean {
    const b = this.b;
    if (((b[ip + 6] & 0x3f) | b[ip + 7]) !== 0) return this.hostPortSources.hasAddr(b, ip + 12);
    const proto = b[ip + 9];
    if (proto === IPPROTO_ICMP) {
      const t = b[ip + ((b[ip] & 0x0f) << 2)];
      return (t === 3 || t === 11 || t === 12) && this.hostPortSources.hasAddr(b, ip + 12);
    }
    if (proto !== 6 && proto !== IPPROTO_UDP) return false;
    const l4 = ip + ((b[ip] & 0x0f) << 2);
    return this.hostPortSources.has(b, ip + 12, proto, (b[l4] << 8) | b[l4 + 1]);
  }

  /**
   * A pod's packet from one of its host ports (fromHostPortSource): to the node's kernel through
   * tx4, routed there like any packet the node sends, so conntrack takes it as the reply of a
   * connection its hostport_dnat chain translated and gives it the node's address and host port
   * back (or as a packet of a connection it does not know, sent on unchanged: the node's routing
   * hands a pool destination back into podway0). TTL and MTU as for other egress through tx4.
   */
  private hostPortReply(i: number, inPort: number, ip: number): number {
    const b = this.b;
    const total = (b[ip + 2] << 8) | b[ip + 3];
    const dst = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
    if (this.tx4Port < 0) return this.drop(Reason.NO_ROUTE);
    if (isMartianDst4(dst)) return this.martian(i, inPort, ip, dst);
    if (b[ip + 8] <= 1) {
      this.counters[Reason.TTL_EXPIRED]++;
      return this.icmpError(i, inPort, ip, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED, 0);
    }
    if (total > this.tx4Mtu) return this.tooBigForTx4(i, inPort, ip, total, dst, true, Event.HOST_PORT_REPLY);
    ipv4DecrementTtl(b, ip);
    this.setFrame(i, ip, total);
    this.pool.addr[i] = dst;
    if (this.tr !== null) this.tr.stages.push(`from a host port's container port: to the node's kernel (tx4), whose conntrack gives it the host port back (table ip podway, hostport_dnat)`);
    return this.count(Event.HOST_PORT_REPLY, this.tx4Port);
  }

  /** A pod's IPv4 packet that is itself a tunnel packet (IP-in-IP, or UDP to the VXLAN port in a
   * first fragment or whole datagram) and not allowed (Felix's drop rules for workloads). */
  private isEncapFromPod(ip: number, len: number): boolean {
    const b = this.b;
    const proto = b[ip + 9];
    if (proto === IPPROTO_IPIP) return !this.allowIpipFromPods;
    if (proto !== IPPROTO_UDP || this.allowVxlanFromPods || (((b[ip + 6] & 0x1f) | b[ip + 7]) !== 0)) return false;
    const udp = ip + ((b[ip] & 0x0f) << 2);
    return udp + 4 <= ip + len && ((b[udp + 2] << 8) | b[udp + 3]) === this.vxlanPort;
  }

  /** From the node's own stack (podway0): the node talking to a pod here or on another node. */
  private fromHost(i: number, port: number): number {
    const f = this.pool.start(i);
    if ((this.b[f] >> 4) === 6) return this.v6.fromHost(i, port, f, this.pool.len[i]);
    if ((this.b[f] >> 4) !== 4) return this.drop(Reason.UNSUPPORTED_ETHERTYPE);
    const v = validateIpv4(this.b, f, this.pool.len[i]);
    if (v !== Drop.OK) return this.drop(v);
    if (this.trace !== null) this.startTrace(f, port);
    // For the node itself, out of podway0: only a host port's packet, copied here by table ip
    // podway's hostport_raw chain (the kernel never routes its own addresses into podway0).
    const dst = ((this.b[f + 16] << 24) | (this.b[f + 17] << 16) | (this.b[f + 18] << 8) | this.b[f + 19]) >>> 0;
    // (looked at only while the node has host ports: the node's own traffic to pods pays nothing)
    if (this.hostPortSources.size !== 0 && ((dst === this.addr.nodeIp && this.addr.hasNodeIp) || this.local4.has(dst))) return this.hostPortIn(i, f, dst);
    // The kernel originated it: no TTL decrement; ICMP errors (frag needed) go back to the host.
    return this.forward(i, port, f, true, true);
  }

  /**
   * A packet for a host port of the node (from the underlay, a pod, any interface but lo), which
   * table ip podway's hostport_raw chain copied into podway0 (its TTL already lowered by that
   * copy) and dropped before the kernel's conntrack: sent back to the kernel through tx4, as a
   * packet the node sends, so it crosses the OUTPUT hook, where hostport_dnat translates it to the
   * pod, and the conntrack entry is confirmed on its way out (the node's forwarding is off: a
   * translated packet received on the underlay would be dropped by its routing, unconfirmed).
   */
  private hostPortIn(i: number, ip: number, dst: number): number {
    if (this.tx4Port < 0) return this.drop(Reason.NO_ROUTE);
    this.setFrame(i, ip, (this.b[ip + 2] << 8) | this.b[ip + 3]);
    this.pool.addr[i] = dst;
    if (this.tr !== null) this.tr.stages.push(`${formatIpv4(dst)}: an address of this node, out of podway0: a host port's packet (table ip podway, hostport_raw): to the node's kernel (tx4), translated there to the pod (hostport_dnat)`);
    return this.count(Event.HOST_PORT_IN, this.tx4Port);
  }

  private fromVxlan(i: number): number {
    const b = this.b;
    const f = this.pool.start(i);
    const len = this.pool.len[i];
    const peer = this.pool.addr[i];
    // A drop before the inner frame is looked at is still traced, by its inner IPv4 header.
    if (this.trace !== null) this.traceVxlanPayload(f, len, peer);
    if ((this.tunnels & Tunnel.VXLAN) === 0) return this.drop(Reason.TUNNEL_MODE_UNUSED);
    if (!this.addr.knownNodes.has(peer)) return this.drop(Reason.UNKNOWN_TUNNEL_SOURCE);
    if (len < 8 + ETH_HLEN) return this.drop(Drop.TOO_SHORT);
    if ((b[f] & 0x08) === 0) return this.drop(Drop.BAD_VXLAN_FLAGS);
    if (((b[f + 4] << 16) | (b[f + 5] << 8) | b[f + 6]) !== this.vni) return this.drop(Drop.BAD_VNI);
    const ecn = (this.pool.flags[i] & DescFlag.ECN_MASK) >>> DescFlag.ECN_SHIFT;
    return this.vxlanInner(i, f + 8, len - 8, peer, true, ecn);
  }

  /** The inner Ethernet frame of a VXLAN packet (`len` bytes at `eth`) from node `peer`.
   * `viaSocket`: it came through the UDP socket, without the kernel's checksum metadata.
   * `outerEcn`: the outer IPv4 header's ECN field (RFC 6040 decapsulation). */
  private vxlanInner(i: number, eth: number, len: number, peer: number, viaSocket: boolean, outerEcn: number): number {
    const b = this.b;
    if (!vxlanInnerMacOk(b, eth, this.nh.vtepMac)) return this.drop(Reason.VXLAN_INNER_MAC);
    if (((b[eth + 12] << 8) | b[eth + 13]) !== ETHERTYPE_IPV4) return this.drop(Reason.UNSUPPORTED_ETHERTYPE);
    const ip = eth + ETH_HLEN;
    const v = validateIpv4(b, ip, len - ETH_HLEN);
    if (v === Drop.BAD_IP_OPTIONS) return this.badOptions(i, -1, ip);
    if (v !== Drop.OK) return this.drop(v);
    if (this.trace !== null) {
      // (the socket path opened the record already, before the outer checks)
      if (this.tr === null) this.startTrace(ip, -1);
      if (this.tr !== null) this.tr.stages.push(`vxlan decap: from node ${formatIpv4(peer)} (known), vni ${this.vni}, inner ${formatMac(b, eth + 6)} -> ${formatMac(b, eth)}${viaSocket ? '' : ' (underlay port)'}`);
    }
    if (outerEcn !== 0 && !this.ecnDecap(ip, outerEcn)) return this.drop(Reason.TUNNEL_ECN_NOT_ECT);
    return this.deliverDecapsulated(i, ip, viaSocket, NhKind.VXLAN);
  }

  private fromIpip(i: number): number {
    const b = this.b;
    const f = this.pool.start(i);
    const peer = this.pool.addr[i];
    if ((this.tunnels & Tunnel.IPIP) === 0) return this.traceOuterDrop(f, 'ipip', Reason.TUNNEL_MODE_UNUSED);
    if (!this.addr.knownNodes.has(peer)) return this.traceOuterDrop(f, 'ipip', Reason.UNKNOWN_TUNNEL_SOURCE);
    const inner = decapIpipPacket(b, f, this.pool.len[i]);
    if (inner === -Drop.BAD_IP_OPTIONS) return this.badIpipOptions(i, f, this.pool.len[i]);
    if (inner < 0) return this.traceOuterDrop(f, 'ipip', -inner);
    if (this.trace !== null) {
      this.startTrace(inner, -1);
      if (this.tr !== null) this.tr.stages.push(`ipip decap: outer ${formatIpv4(peer)} -> ${formatIpv4(this.addr.nodeIp)} proto 4 (known node)`);
    }
    if ((b[f + 1] & 3) !== 0 && !this.ecnDecap(inner, b[f + 1] & 3)) return this.drop(Reason.TUNNEL_ECN_NOT_ECT);
    return this.deliverDecapsulated(i, inner, true, NhKind.IPIP);
  }

  private fromUnderlay(i: number): number {
    const b = this.b;
    const f = this.pool.start(i);
    const len = this.pool.len[i];
    if (len < ETH_HLEN) return this.drop(Drop.TOO_SHORT);
    const type = (b[f + 12] << 8) | b[f + 13];
    if (type === ETHERTYPE_ARP) {
      const v = validateArp(b, f + ETH_HLEN, len - ETH_HLEN);
      // Malformed ARP teaches the table nothing; counted (the kernel's copy is the kernel's to judge).
      if (v !== Drop.OK) return this.count(v, HOST);
      {
        const op = (b[f + 20] << 8) | b[f + 21];
        const spa = ((b[f + 28] << 24) | (b[f + 29] << 16) | (b[f + 30] << 8) | b[f + 31]) >>> 0;
        const tpa = ((b[f + 38] << 24) | (b[f + 39] << 16) | (b[f + 40] << 8) | b[f + 41]) >>> 0;
        if (op === ARP_REPLY && spa !== tpa) this.onNeighbor(spa, b, f + 22);
        else if (op === ARP_REPLY || op === ARP_REQUEST) this.onNeighborAnnounce(spa, b, f + 22, spa === tpa);
        // Who has the node's address, while the node's kernel no longer holds it (removed by hand
        // or by DHCP; its local table, local4, kept current by the engine): podway still sends
        // from it until the Node is updated, so it answers, with the underlay's MAC, as the
        // kernel did. Without it the other nodes' entries for it failed once stale (30 s) and
        // only an ARP request of this node's taught them again (docs/failures.md, "The node's
        // address changed"). A gratuitous one (sender = target) is not answered.
        if (op === ARP_REQUEST && tpa === this.addr.nodeIp && this.addr.hasNodeIp && spa !== tpa && this.underlayPort >= 0 && !this.local4.has(tpa)) {
          const n = arpReplyInPlace(b, f, this.addr.underlayMac, 0);
          this.setFrame(i, f, n);
          this.counters[Event.ARP_REPLIED]++;
          return this.underlayPort;
        }
      }
      return HOST;
    }
    if (type === ETHERTYPE_IPV6) return this.v6.fromUnderlay(i, f, len);
    if (type !== ETHERTYPE_IPV4) return HOST;
    const u = this.addr.underlayMac;
    for (let k = 0; k < 6; k++) if (b[f + k] !== u[k]) return HOST;
    const ip = f + ETH_HLEN;
    // IPv4 to the node itself is here only for its tunnels (the underlay filter's `tunnels`).
    if (len >= ETH_HLEN + 20 && (((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0) === this.addr.nodeIp && this.addr.hasNodeIp) return this.fromUnderlayTunnel(i, ip, len - ETH_HLEN);
    const v = validateIpv4(b, ip, len - ETH_HLEN);
    if (v !== Drop.OK) return this.drop(v);
    const dst = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
    // Traced from here (a valid header), before any verdict: a drop below is part of the record.
    if (this.trace !== null) {
      this.startTrace(ip, -1);
      if (this.tr !== null) this.tr.stages.push(`underlay: unencapsulated from ${formatMac(b, f + 6)}`);
    }
    const nh = this.nh.fib.lookup(dst);
    // An unallocated address of this node's own block: Calico's blackhole route drops it here.
    if (nh !== NO_ROUTE && this.nh.kind[nh] === NhKind.BLACKHOLE) {
      if (this.tr !== null) this.tr.stages.push(`lookup ${formatIpv4(dst)}: ${this.describeNh(nh)}`);
      return this.drop(Reason.BLACKHOLE);
    }
    if (nh === NO_ROUTE || this.nh.kind[nh] !== NhKind.LOCAL) {
      // One of the node's own tunnel addresses, unencapsulated (a CrossSubnet peer on our subnet):
      // the kernel has its own copy of the frame and the address (podway0), as a Calico node has it.
      if (nh !== NO_ROUTE && this.nh.kind[nh] === NhKind.HOST) {
        this.nh.hits[nh]++;
        if (this.tr !== null) this.tr.stages.push(`lookup ${formatIpv4(dst)}: ${this.describeNh(nh)}: this node's tunnel address: the node's kernel has the frame`);
        return this.count(Event.TO_HOST, HOST);
      }
      if (this.tr !== null) this.tr.stages.push(`lookup ${formatIpv4(dst)}: ${nh === NO_ROUTE ? 'no route' : this.describeNh(nh)}: not for a local pod (underlay_not_for_pods)`);
      return this.count(Reason.UNDERLAY_NOT_FOR_PODS, HOST);
    }
    // Only now, for a local pod: what is not for one is the kernel's to judge (its own copy).
    const src = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
    if (isMartianSrc4(src)) return this.martianSource(src);
    // the underlay device's own rp_filter is not modelled: no reverse-path check beyond own sources
    const bad = this.badSource(src, 0, 0);
    if (bad !== 0) return this.drop(bad);
    return this.route(i, -1, ip, false, false, dst, nh);
  }

  /**
   * A VXLAN or IPIP packet to the node IP taken from the underlay port (the engine does so when the
   * kernel's own copy is dropped by podway's nftables table: engine.ts, nft-tunnels.ts). Unlike
   * the tunnel sockets, this port hands over the kernel's offload metadata: a partial inner
   * checksum was completed and a tunnel super-frame segmented in C (native/gso.c), so there is
   * nothing to guess here.
   */
  private fromUnderlayTunnel(i: number, ip: number, len: number): number {
    const b = this.b;
    const peer = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
    const proto = b[ip + 9];
    if (proto === IPPROTO_IPIP) {
      if ((this.tunnels & Tunnel.IPIP) === 0) return this.traceOuterDrop(ip, 'ipip (underlay port)', Reason.TUNNEL_MODE_UNUSED);
      if (!this.addr.knownNodes.has(peer)) return this.traceOuterDrop(ip, 'ipip (underlay port)', Reason.UNKNOWN_TUNNEL_SOURCE);
      const inner = decapIpipPacket(b, ip, len);
      if (inner === -Drop.BAD_IP_OPTIONS) return this.badIpipOptions(i, ip, len);
      if (inner < 0) return this.traceOuterDrop(ip, 'ipip (underlay port)', -inner);
      if (this.trace !== null) {
        this.startTrace(inner, -1);
        if (this.tr !== null) this.tr.stages.push(`ipip decap: outer ${formatIpv4(peer)} -> ${formatIpv4(this.addr.nodeIp)} proto 4 (known node, underlay port)`);
      }
      if ((b[ip + 1] & 3) !== 0 && !this.ecnDecap(inner, b[ip + 1] & 3)) return this.drop(Reason.TUNNEL_ECN_NOT_ECT);
      return this.deliverDecapsulated(i, inner, false, NhKind.IPIP);
    }
    // Anything else for the node (a filter without `tunnels`, a test harness) is the kernel's.
    const udp = ip + ((b[ip] & 15) << 2);
    if (proto !== IPPROTO_UDP || len < udp - ip + 8 || ((b[udp + 2] << 8) | b[udp + 3]) !== this.vxlanPort) return this.count(Reason.UNDERLAY_NOT_FOR_PODS, HOST);
    if ((this.tunnels & Tunnel.VXLAN) === 0) return this.traceOuterDrop(ip, 'vxlan (underlay port)', Reason.TUNNEL_MODE_UNUSED);
    if (!this.addr.knownNodes.has(peer)) return this.traceOuterDrop(ip, 'vxlan (underlay port)', Reason.UNKNOWN_TUNNEL_SOURCE);
    // The outer UDP checksum is not summed here (the UDP socket's kernel did it in C): what it
    // covers beyond the inner packet's own checksums is the VXLAN header, checked field by field,
    // and the inner MACs, which the route rewrites. Summing it in JS would cost a pass over every
    // packet (with transmit GSO a podway sender's VXLAN carries the kernel's checksum).
    const eth = decapVxlanPacket(b, ip, len, this.vni, this.vxlanPort, false);
    // the outer header's options (the kernel's copy was dropped before its option check): answered to the node
    if (eth === -Drop.BAD_IP_OPTIONS) return this.badOptions(i, -1, ip);
    if (eth < 0) return this.traceOuterDrop(ip, 'vxlan (underlay port)', -eth);
    return this.vxlanInner(i, eth, vxlanInnerLength(b, eth), peer, false, b[ip + 1] & 3);
  }

  /**
   * RFC 6040 decapsulation of the inner IPv4 header at `ip` (validated) under an outer ECN field
   * `outerEcn` (not 0): outer CE marks an ECN-capable inner packet CE, outer ECT(1) turns an
   * inner ECT(0) into ECT(1), the inner checksum updated incrementally (src/packet/ecn.ts, as
   * Linux's INET_ECN_decapsulate). False: outer CE over a Not-ECT inner packet, to be dropped.
   * On a super-frame (DescFlag.SUPER) this is segment 0's header, which the addon copies into
   * every segment's (native/README.md): each of them came with the same outer header.
   */
  private ecnDecap(ip: number, outerEcn: number): boolean {
    const before = ipv4EcnAt(this.b, ip);
    const r = ecnDecapsulateIpv4(this.b, ip, outerEcn);
    if (this.tr !== null) this.tr.stages.push(ecnDecapText(outerEcn, before, ipv4EcnAt(this.b, ip), r));
    return r !== ECN_DECAP_DROP;
  }

  // ---- routing -------------------------------------------------------------------------------

  /**
   * A packet decapsulated from a tunnel (`via`: NhKind.VXLAN or NhKind.IPIP, the device a Calico node
   * would have it come in on): only local workloads and this node's tunnel addresses are valid
   * destinations. In the kernel's order (ip_route_input_slow): a martian source first, then the
   * destination (a blackholed one `blackhole`, one not here `decap_not_local`), then the source's
   * validation (fib_validate_source: `own_source`, `reverse_path`), before the TTL check. One FIB
   * lookup for the destination and at most one for the source; no allocation. `viaSocket`: it came
   * through a tunnel socket, which does not say whether its checksum is partial.
   */
  private deliverDecapsulated(i: number, ip: number, viaSocket: boolean, via: number): number {
    const b = this.b;
    const src = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
    if (isMartianSrc4(src)) return this.martianSource(src);
    const dst = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
    const nh = this.nh.fib.lookup(dst);
    const kind = nh === NO_ROUTE ? 0 : this.nh.kind[nh];
    // An unallocated address of this node's own block: Calico's blackhole route drops it here.
    if (kind === NhKind.BLACKHOLE) return this.drop(Reason.BLACKHOLE);
    // a local pod, or this node's tunnel address (another node's pod or a kernel node talking to it)
    if (kind !== NhKind.LOCAL && kind !== NhKind.HOST) return this.drop(Reason.DECAP_NOT_LOCAL);
    const bad = this.badSource(src, via, this.rpFilter);
    if (bad !== 0) return this.drop(bad);
    if (viaSocket) this.completeTunnelledChecksum(ip);
    if (kind === NhKind.HOST) return this.toOwnTunnelAddress(i, -1, ip, nh);
    return this.route(i, -1, ip, false, false, dst, nh);
  }

  /** A martian source (isMartianSrc4) from another node: dropped, traced. */
  private martianSource(src: number): number {
    if (this.tr !== null) this.tr.stages.push(`source ${formatIpv4(src)}: a martian source (no node sends from it; the kernel refuses it on any device)`);
    return this.drop(Reason.MARTIAN_SRC);
  }

  /**
   * The source validation of an IPv4 packet from another node (not a martian source), for a pod or
   * a tunnel address here: 0 when it passes, else the reason to drop it. `own_source`: one of this
   * node's own addresses (the node's, its tunnel addresses, any of its local table), which Linux
   * refuses whatever rp_filter says (accept_local 0), or an address its routes keep here (a local
   * pod's, this node's tunnel address, an unallocated one of its own blocks): no other node sends
   * from one (the kernel refuses a pod's with strict rp_filter, a blackholed one with strict or
   * loose; podway with every setting, docs/calico-differences.md). `reverse_path`: with `rp` 1
   * (strict), a source whose route back is not through `via` (the arrival device: NhKind.VXLAN or
   * NhKind.IPIP; 0: no check), as the kernel finds a route back through another device (an IPIP
   * pool's pod in VXLAN, an unencapsulated route, none of podway's: the node's main table). A
   * compare, a binary search and one FIB lookup; traced.
   */
  private badSource(src: number, via: number, rp: number): number {
    const a = this.addr;
    let nh = NO_ROUTE;
    let kind = 0;
    let own = (src === a.nodeIp && a.hasNodeIp) || (src !== 0 && (src === a.vxlanTunnelIp || src === a.ipipTunnelIp)) || this.local4.has(src);
    if (!own) {
      nh = this.nh.fib.lookup(src);
      if (nh !== NO_ROUTE) {
        kind = this.nh.kind[nh];
        own = kind === NhKind.LOCAL || kind === NhKind.HOST || kind === NhKind.BLACKHOLE;
      }
    }
    if (own) {
      if (this.tr !== null) this.tr.stages.push(`source ${formatIpv4(src)}: ${nh !== NO_ROUTE ? `${this.nh.routes[nh].cidr} ${NH_KIND_NAMES[kind]}, this node's own` : 'an address of this node'}: no other node sends from it (the kernel's source validation drops it)`);
      return Reason.OWN_SOURCE;
    }
    if (rp === 1 && via !== 0 && kind !== via) {
      if (this.tr !== null) this.tr.stages.push(`source ${formatIpv4(src)}: route back ${nh !== NO_ROUTE ? `${this.nh.routes[nh].cidr} ${NH_KIND_NAMES[kind]}` : 'not a pod route (the node\'s own table)'}, not through the ${NH_KIND_NAMES[via]} tunnel it came in on: strict reverse-path filtering (rp_filter 1) drops it`);
      return Reason.REVERSE_PATH;
    }
    return 0;
  }

  /**
   * A kernel node on the same host (a veth underlay: containers as nodes, kind-style) sends its
   * pods' TCP/UDP with the inner checksum left to offload: the field holds only the folded
   * pseudo-header sum, and our UDP/raw tunnel sockets hand it over as it is (no NIC computed it).
   * The pod would drop every such segment. A field equal to the pseudo-header sum is completed;
   * on a packet whose checksum was already right, completing it writes the same value back (see
   * completeL4Checksum), so a real checksum is never changed. Costs a 12-byte sum per packet, and
   * the full sum only when the field matches.
   */
  private completeTunnelledChecksum(ip: number): void {
    const b = this.b;
    const proto = b[ip + 9];
    if (proto !== 6 && proto !== 17) return;
    if (((b[ip + 6] & 0x3f) | b[ip + 7]) !== 0) return; // a fragment: no partial checksum there
    const hl = (b[ip] & 15) << 2;
    const l4len = ((b[ip + 2] << 8) | b[ip + 3]) - hl;
    const at = ip + hl + (proto === 6 ? 16 : 6);
    if (l4len < (proto === 6 ? 20 : 8)) return;
    let s = ((b[ip + 12] << 8) | b[ip + 13]) + ((b[ip + 14] << 8) | b[ip + 15]) + ((b[ip + 16] << 8) | b[ip + 17]) + ((b[ip + 18] << 8) | b[ip + 19]) + proto + l4len;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    if (((b[at] << 8) | b[at + 1]) === s) {
      this.completeL4Checksum(ip);
      this.counters[Event.CSUM_COMPLETED]++;
    }
  }

  /** Look the destination up once, then route. */
  private forward(i: number, inPort: number, ip: number, fromPod: boolean, originated: boolean): number {
    const b = this.b;
    const dst = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
    return this.route(i, inPort, ip, fromPod, originated, dst, this.nh.fib.lookup(dst));
  }

  /**
   * Route the IPv4 packet at `ip` (descriptor i). fromPod: it entered through port `inPort` (a pod's
   * or the host's), so ICMP errors go back there. originated: the node itself sent it (no TTL
   * decrement). `nh` is the FIB's answer for `dst`, looked up once by the caller. Leaves the frame
   * ready to send and returns the output port.
   */
  private route(i: number, inPort: number, ip: number, fromPod: boolean, originated: boolean, dst: number, nh: number): number {
    const b = this.b;
    const nhs = this.nh;
    const tr = this.tr;
    if (nh === NO_ROUTE) {
      if (fromPod && !originated) return this.noRouteFromPod(i, inPort, ip, dst);
      if (tr !== null) tr.stages.push(`lookup ${formatIpv4(dst)}: no route`);
      return this.drop(Reason.NO_ROUTE);
    }
    const kind = nhs.kind[nh];
    nhs.hits[nh]++;
    if (tr !== null) tr.stages.push(`lookup ${formatIpv4(dst)}: ${nhs.routes[nh].cidr} ${NH_KIND_NAMES[kind]}${nhs.routes[nh].node ? ' (node ' + nhs.routes[nh].node + ')' : ''}${kind === NhKind.DIRECT ? directViaText(nhs, nh) : ''}`);
    if (kind === NhKind.BLACKHOLE) return this.drop(Reason.BLACKHOLE);
    if (kind === NhKind.HOST) return this.toOwnTunnelAddress(i, inPort, ip, -1);
    const total = (b[ip + 2] << 8) | b[ip + 3];
    // TTL: forwarding decrements it (the kernel does so on each node, so a pod two nodes away sees 62).
    // A packet the node itself sent (through the host port) is not forwarded by this hop, so its
    // TTL is neither checked nor decremented here, as in the kernel's own output path.
    if (!originated && b[ip + 8] <= 1) {
      this.counters[Reason.TTL_EXPIRED]++;
      if (tr !== null) tr.stages.push(`ttl ${b[ip + 8]}: expired`);
      if (fromPod) return this.icmpError(i, inPort, ip, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED, 0);
      return this.icmpErrorRouted(i, ip, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED, 0);
    }
    // the path MTU: the route's, or a local pod's port's (0: not known)
    let mtu = kind !== NhKind.LOCAL ? nhs.mtu[nh] : nhs.port[nh] >= 0 ? this.portMtu[nhs.port[nh]] : 0;
    if (mtu !== 0 && total > mtu && kind === NhKind.LOCAL) mtu = this.recheckPortMtu(nhs.port[nh]);
    if (mtu !== 0 && total > mtu) {
      if ((b[ip + 6] & 0x40) !== 0) {
        this.counters[Reason.FRAG_NEEDED]++;
        if (tr !== null) tr.stages.push(`mtu: ${total} > ${mtu} with DF: ICMP fragmentation needed`);
        if (fromPod) return this.icmpError(i, inPort, ip, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu);
        // from another node (a tunnel, the underlay) or the host: routed back to its sender
        if (!originated) return this.icmpErrorRouted(i, ip, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu);
        return this.dropCounted(Reason.FRAG_NEEDED);
      }
      return this.fragmentRouted(i, inPort, ip, fromPod, originated, dst, nh, kind, total, mtu);
    }
    // A packet podway originates (an ICMP error) leaves with its TTL; forwarded ones lose one.
    if (!originated) {
      const ttl = ipv4DecrementTtl(b, ip);
      if (tr !== null) tr.stages.push(`ttl ${ttl + 1} -> ${ttl}, header checksum updated incrementally`);
    }
    return this.output(i, inPort, ip, fromPod, originated, dst, nh, kind, total);
  }

  /**
   * A packet without DF bigger than its route's `mtu` (route()): cut into fragments as the kernel's
   * forwarding cuts it at its output device (ip_forward decrements the TTL, ip_finish_output's
   * ip_fragment cuts at the device's MTU: for a tunnel route the tunnel device's, so each fragment
   * is encapsulated whole and the receiving node forwards them to the pod, whose kernel
   * reassembles them), each fragment then sent as route() sends a packet (output). The first stays
   * in descriptor i (its verdict is returned), the others go into the fragment area (their
   * verdicts in fragOut, sent right after i by flush). Dropped `too_big_no_df` when it cannot be
   * cut (cutFragments). Off the fast path: taken only by a packet too big for its route.
   */
  private fragmentRouted(i: number, inPort: number, ip: number, fromPod: boolean, originated: boolean, dst: number, nh: number, kind: number, total: number, mtu: number): number {
    const b = this.b;
    const nhs = this.nh;
    // what decides the packet as a whole, before it is cut (output() would decide each fragment)
    if (kind === NhKind.LOCAL) {
      const p = nhs.port[nh];
      if (p < 0) return this.drop(Reason.NO_ROUTE);
      if (p === inPort) return this.drop(Reason.HAIRPIN);
    } else if (kind === NhKind.DIRECT && fromPod && !originated) {
      if (isMartianDst4(dst)) return this.martian(i, inPort, ip, dst);
      // natOutgoing egress over this route goes to the kernel (tx4): cut for the underlay's MTU too
      if (nhs.natExit[nh] !== NatExit.NONE && this.natEgress(ip, dst, nhs.natExit[nh]) && this.tx4Mtu < mtu) mtu = this.tx4Mtu;
    }
    if (!originated) ipv4DecrementTtl(b, ip);
    const count = this.cutFragments(i, ip, mtu, total);
    if (count < 0) return this.drop(Reason.TOO_BIG_NO_DF);
    const base = this.fragAt[i]; // (after the cut: it may have sent the area first)
    const tr = this.tr;
    if (tr !== null) tr.stages.push(`mtu: ${total} > ${mtu} without DF: fragmented into ${count} (${(b[ip + 2] << 8) | b[ip + 3]} bytes first${originated ? '' : ', ttl decremented first'}); the first follows, the others go the same way`);
    const o = this.output(i, inPort, ip, fromPod, originated, dst, nh, kind, (b[ip + 2] << 8) | b[ip + 3]);
    const lastDrop = this.lastDrop;
    this.tr = null;
    for (let q = base; q < base + count - 1; q++) {
      const d = this.fragFirst + q;
      const fip = this.pool.start(d);
      this.fragVerdict(q, this.output(d, inPort, fip, fromPod, originated, dst, nh, kind, this.pool.len[d]));
    }
    this.tr = tr;
    this.lastDrop = lastDrop;
    return o;
  }

  /**
   * Cut the IPv4 packet at `ip` (descriptor i, `total` bytes, no DF) for `mtu` (packet/fragment.ts):
   * fragments 2..count into the fragment area from fragUsed on (each an IP packet at HEADROOM +
   * ETH_HLEN of its slot, as a pod's frame is received, so that output() can prepend Ethernet or an
   * encapsulation), then descriptor i's own packet cut to the first fragment (its frame's start
   * unchanged). Counted `fragmented` once and `fragments_out` per fragment. Returns the count, or -1
   * when it cannot be cut (the caller drops it too_big_no_df): no fragment area, a super-frame
   * (it stands for several packets), an MTU that leaves fewer than 8 data bytes after the header,
   * or more fragments than the area holds. When the area has no room left in this batch, what it
   * holds is sent first (spillFragments).
   */
  private cutFragments(i: number, ip: number, mtu: number, total: number): number {
    const pool = this.pool;
    const b = this.b;
    if (this.fragFirst < 0 || (pool.flags[i] & DescFlag.SUPER) !== 0 || i >= this.batch) return -1;
    const count = ipv4FragmentCount(b, ip, mtu);
    if (count < 2 || count - 1 > FRAG_DESCS || total !== ((b[ip + 2] << 8) | b[ip + 3])) return -1;
    if (this.fragUsed + count - 1 > FRAG_DESCS) this.spillFragments();
    const base = this.fragUsed;
    for (let k = 1; k < count; k++) {
      const q = base + k - 1;
      const d = this.fragFirst + q;
      const at = (pool.slot[d] << SLOT_SHIFT) + HEADROOM + ETH_HLEN;
      pool.len[d] = ipv4WriteFragment(b, ip, mtu, k, at);
      pool.off[d] = HEADROOM + ETH_HLEN;
      pool.flags[d] = 0;
      pool.addr[d] = 0;
      pool.aport[d] = 0;
      pool.segs[d] = 1;
      pool.more[d] = 0;
      this.fragOut[q] = DROP;
      this.fragOwner[q] = i;
    }
    ipv4MakeFirstFragment(b, ip, mtu);
    this.fragUsed = base + count - 1;
    this.fragN[i] = count - 1;
    this.fragAt[i] = base;
    this.counters[Event.FRAGMENTED]++;
    this.counters[Event.FRAGMENTS_OUT] += count;
    return count;
  }

  /** Fragment-area entry q's verdict (a port, DROP, HELD), counted as processBatch counts a
   * descriptor's: a drop in the batch port's DROPS and its reason's bytes. */
  private fragVerdict(q: number, o: number): void {
    this.fragOut[q] = o;
    if (o >= 0) this.markOut(o);
    else if (o === DROP) {
      this.portCounters[this.batchPc + PortCounter.DROPS]++;
      this.counterBytes[this.lastDrop] += this.pool.len[this.fragFirst + q];
    }
  }

  /**
   * The fragment area is full in the middle of a batch: the fragments it holds are sent now, one
   * send call per port (area order), and it starts again empty. The first fragments stay in their
   * descriptors and leave with the batch (after these: a receiver reassembles in any order).
   */
  private spillFragments(): void {
    const used = this.fragUsed;
    if (used === 0) return;
    const tx = this.pool.txList;
    // (txList past the batch's own: the batch's sends list from 0 and happen later, in flush)
    const at = this.batch;
    for (let q = 0; q < used; q++) {
      const p = this.fragOut[q];
      if (p < 0) continue;
      let k = 0;
      for (let r = q; r < used; r++) {
        if (this.fragOut[r] !== p) continue;
        tx[at + k++] = this.fragFirst + r;
        if (r !== q) this.fragOut[r] = DROP; // (sent here: not again)
      }
      this.fragOut[q] = DROP;
      this.sendList(p, at, k);
    }
    for (let q = 0; q < used; q++) this.fragN[this.fragOwner[q]] = 0;
    this.fragUsed = 0;
  }

  /**
   * Send descriptor i's packet (`total` bytes at `ip`, its TTL handled) to next hop `nh` of
   * `kind`: route()'s last step, and each fragment's (fragmentRouted). Returns the port (or DROP,
   * HELD).
   */
  private output(i: number, inPort: number, ip: number, fromPod: boolean, originated: boolean, dst: number, nh: number, kind: number, total: number): number {
    const b = this.b;
    const nhs = this.nh;
    const tr = this.tr;
    const eth = ip - ETH_HLEN;
    switch (kind) {
      case NhKind.LOCAL: {
        const p = nhs.port[nh];
        if (p < 0) return this.drop(Reason.NO_ROUTE);
        if (p === inPort) return this.drop(Reason.HAIRPIN);
        if (this.role[p] === Role.POD_TUN) {
          this.setFrame(i, ip, total);
        } else {
          if (this.podMacKnown[p] === 0) {
            b[eth + 12] = 0x08; b[eth + 13] = 0x00;
            return this.holdForPod(i, inPort, p, eth, total + ETH_HLEN);
          }
          const m = p * 6;
          for (let k = 0; k < 6; k++) { b[eth + k] = this.podMac[m + k]; b[eth + 6 + k] = GATEWAY_MAC[k]; }
          b[eth + 12] = 0x08; b[eth + 13] = 0x00;
          this.setFrame(i, eth, total + ETH_HLEN);
        }
        if (tr !== null) tr.stages.push(`deliver to ${this.portName[p]} (${this.role[p] === Role.POD_TUN ? 'tun' : 'dst ' + formatMac(this.podMac, p * 6)})`);
        return p;
      }
      case NhKind.VXLAN: {
        b[eth + 12] = 0x08; b[eth + 13] = 0x00;
        const sport = vxlanSourcePort(innerFlowHash(b, eth, total + ETH_HLEN, this.flowSeed), this.sportMin, this.sportMax);
        const id = this.outerId(i);
        const start = encapVxlan(b, eth, total + ETH_HLEN, nhs.tpl[nh], sport, id);
        if (tr !== null) tr.stages.push(`vxlan encap: outer ${formatIpv4(this.addr.nodeIp)}:${sport} -> ${formatIpv4(nhs.ip[nh])}:${this.vxlanPort} udp csum 0, vni ${this.vni}, inner ${formatMac(b, eth + 6)} -> ${formatMac(b, eth)}, ${total + 50} bytes on the wire`);
        return this.sendOuter(i, nh, start, total + ETH_HLEN + 36);
      }
      case NhKind.IPIP: {
        // Outer TTL: the inner one as forwarded, as Calico's tunl0 (ttl 0 = inherit: ip_tunnel_xmit
        // copies the inner header's); VXLAN's device has its own 64.
        const ttl = b[ip + 8];
        const start = encapIpip(b, ip, total, this.addr.nodeIp, nhs.ip[nh], ttl, this.outerId(i));
        if (tr !== null) tr.stages.push(`ipip encap: outer ${formatIpv4(this.addr.nodeIp)} -> ${formatIpv4(nhs.ip[nh])} proto 4 ttl ${ttl} (the inner's)`);
        return this.sendOuter(i, nh, start, total + 20);
      }
      case NhKind.DIRECT: {
        // A learned route holding a martian destination (a default route holds 127/8): the node
        // never routes one off the box, so neither does podway for a pod, NATed or not (the next
        // hop, a ToR, would be handed a pod's packet for its own loopback).
        if (fromPod && !originated && isMartianDst4(dst)) return this.martian(i, inPort, ip, dst);
        // A route out of the pod network (learned over BGP): natOutgoing egress is the kernel's to
        // masquerade, whatever the route, as in Calico (the no-route case does the same).
        if (nhs.natExit[nh] !== NatExit.NONE && fromPod && !originated && this.natEgress(ip, dst, nhs.natExit[nh])) return this.toKernelNat(i, inPort, ip, dst, total);
        const u = this.addr.underlayMac;
        if (nhs.macKnown[nh] !== MAC_KNOWN) {
          // The underlay neighbour: the node on our subnet, else the gateway towards it (nexthops.ts
          // directGateway). One the full table refused is never asked for: holding its packets
          // would only delay their loss to the hold limit.
          if (!this.onUnresolved(nhs.gw[nh], this.batchNow())) return this.drop(Reason.NEIGHBOR_TABLE_FULL);
          if (nhs.macKnown[nh] === MAC_FAILED) return this.drop(Reason.NEIGHBOR_FAILED);
          // Held ready to send but for the destination MAC, which the neighbour's answer gives.
          for (let k = 0; k < 6; k++) { b[eth + k] = 0; b[eth + 6 + k] = u[k]; }
          b[eth + 12] = 0x08; b[eth + 13] = 0x00;
          this.setFrame(i, eth, total + ETH_HLEN);
          return this.hold(i, inPort, FAMILY_V4, nhs.gw[nh]);
        }
        const m = nh * 6;
        for (let k = 0; k < 6; k++) { b[eth + k] = nhs.mac[m + k]; b[eth + 6 + k] = u[k]; }
        b[eth + 12] = 0x08; b[eth + 13] = 0x00;
        this.setFrame(i, eth, total + ETH_HLEN);
        if (tr !== null) tr.stages.push(`direct: to ${formatMac(nhs.mac, m)} (node ${formatIpv4(nhs.ip[nh])}${nhs.gw[nh] !== nhs.ip[nh] ? `, gateway ${formatIpv4(nhs.gw[nh])}` : ''}) via the underlay`);
        return this.underlayPort;
      }
    }
    return this.drop(Reason.NO_ROUTE);
  }

  /**
   * An outer IPv4 packet at `start`: with the underlay neighbour's MAC known, prepend Ethernet and
   * send it on the underlay AF_PACKET socket (no kernel routing or neighbour lookup per packet);
   * otherwise hand it to the kernel's raw socket and ask ARP for the neighbour.
   */
  private sendOuter(i: number, nh: number, start: number, len: number): number {
    const nhs = this.nh;
    if (nhs.macKnown[nh] !== MAC_KNOWN) {
      // Not held either way: a neighbour the table refused is left to the kernel's own ARP.
      this.onUnresolved(nhs.gw[nh], this.batchNow());
      // A neighbour that stopped answering: the kernel would fail to resolve it too; count the loss.
      if (nhs.macKnown[nh] === MAC_FAILED) return this.drop(Reason.NEIGHBOR_FAILED);
      this.setFrame(i, start, len);
      this.pool.addr[i] = nhs.ip[nh];
      if (this.tr !== null) this.tr.stages.push(`underlay neighbour ${formatIpv4(nhs.gw[nh])} unresolved: through the kernel (raw socket)`);
      return this.tx4Port;
    }
    const b = this.b;
    const e = start - ETH_HLEN;
    const m = nh * 6;
    const u = this.addr.underlayMac;
    for (let k = 0; k < 6; k++) { b[e + k] = nhs.mac[m + k]; b[e + 6 + k] = u[k]; }
    b[e + 12] = 0x08; b[e + 13] = 0x00;
    this.setFrame(i, e, len + ETH_HLEN);
    if (this.tr !== null) this.tr.stages.push(`outer ethernet ${formatMac(u, 0)} -> ${formatMac(nhs.mac, m)} (${formatIpv4(nhs.gw[nh])}), out the underlay`);
    return this.underlayPort;
  }

  /**
   * A packet for one of this node's own tunnel addresses (a 'host' route: Calico's `vxlan.calico` /
   * `tunl0` address, which podway puts on podway0): the node's kernel answers it, as for the
   * node's main address (counted to_host). A veth pod's frame already reached the kernel, so
   * podway sends nothing; a TAP/TUN pod's, or one decapsulated from another node (`inPort` -1),
   * goes into the host port as it is (a local delivery: no TTL decrement; a worker without the host
   * port hands it to the node's stack through tx4). One the node's own stack
   * sent into the host port would only come back to it: dropped (hairpin). `nh`: the route, when
   * the caller has not counted its hit yet (-1: route() did).
   */
  private toOwnTunnelAddress(i: number, inPort: number, ip: number, nh: number): number {
    const tr = this.tr;
    if (nh >= 0) {
      this.nh.hits[nh]++;
      if (tr !== null) tr.stages.push(`lookup ${formatIpv4(((this.b[ip + 16] << 24) | (this.b[ip + 17] << 16) | (this.b[ip + 18] << 8) | this.b[ip + 19]) >>> 0)}: ${this.describeNh(nh)}`);
    }
    if (inPort >= 0 && this.hostSees[inPort] === 1) {
      if (tr !== null) tr.stages.push(`this node's tunnel address: the node's kernel has the frame`);
      return this.count(Event.TO_HOST, HOST);
    }
    if (inPort >= 0 && this.role[inPort] === Role.HOST_TUN) return this.drop(Reason.HAIRPIN);
    this.setFrame(i, ip, (this.b[ip + 2] << 8) | this.b[ip + 3]);
    if (this.hostPort >= 0) {
      if (tr !== null) tr.stages.push(`this node's tunnel address: into the host port`);
      return this.count(Event.TO_HOST, this.hostPort);
    }
    // A worker without the host port (it is worker 0's): the node's routing delivers a raw packet
    // for its own address locally.
    if (this.tx4Port < 0) return this.drop(Reason.NO_ROUTE);
    this.pool.addr[i] = ((this.b[ip + 16] << 24) | (this.b[ip + 17] << 16) | (this.b[ip + 18] << 8) | this.b[ip + 19]) >>> 0;
    if (tr !== null) tr.stages.push(`this node's tunnel address: to the node's stack (tx4)`);
    return this.count(Event.TO_HOST, this.tx4Port);
  }

  /**
   * A pod's packet for something that is not a pod: the node itself goes to the node's stack (a
   * veth pod's frame already reached it; a tap/tun pod's goes through the host port); anything
   * outside the pools leaves through the kernel's routing, unencapsulated, masqueraded there when
   * its pool has natOutgoing (nft-nat.ts). Pool addresses without a route are dropped: never loop them back.
   */
  private noRouteFromPod(i: number, inPort: number, ip: number, dst: number): number {
    const tr = this.tr;
    const total = (this.b[ip + 2] << 8) | this.b[ip + 3];
    if (dst === this.addr.nodeIp && this.addr.hasNodeIp) {
      if (this.hostSees[inPort] === 1) {
        if (tr !== null) tr.stages.push(`lookup ${formatIpv4(dst)}: this node's address: the node's kernel has the frame`);
        return this.count(Event.TO_HOST, HOST);
      }
      if (this.hostPort < 0) return this.drop(Reason.NO_ROUTE);
      this.setFrame(i, ip, total);
      if (tr !== null) tr.stages.push(`lookup ${formatIpv4(dst)}: this node's address: into the host port`);
      return this.count(Event.TO_HOST, this.hostPort);
    }
    // Another address of the node (its local table: lo, a second NIC, a bridge; local-addrs.ts):
    // the kernel delivers a veth pod's frame itself, so podway's copy through tx4 would be a
    // second delivery. A TAP or TUN pod's reaches the node only through tx4, below.
    if (this.hostSees[inPort] === 1 && this.local4.has(dst)) {
      if (tr !== null) tr.stages.push(`lookup ${formatIpv4(dst)}: an address of this node (its local table): the node's kernel has the frame`);
      return this.count(Event.TO_HOST, HOST);
    }
    for (let k = 0; k < this.poolAddr.length; k++) {
      if (((dst & this.poolMask[k]) >>> 0) === this.poolAddr[k]) {
        if (tr !== null) tr.stages.push(`lookup ${formatIpv4(dst)}: in a pool but no route`);
        return this.drop(Reason.NO_ROUTE);
      }
    }
    if (this.tx4Port < 0 || this.role[inPort] === Role.HOST_TUN) return this.drop(Reason.NO_ROUTE);
    if (isMartianDst4(dst)) return this.martian(i, inPort, ip, dst);
    if (this.b[ip + 8] <= 1) {
      this.counters[Reason.TTL_EXPIRED]++;
      return this.icmpError(i, inPort, ip, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED, 0);
    }
    const b = this.b;
    const node = this.addr.knownNodes.has(dst);
    const nat = dst !== 0 && (this.natToNodes || !node) && this.natSources.has(((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0);
    if (total > this.tx4Mtu) return this.tooBigForTx4(i, inPort, ip, total, dst, true, nat && !node ? Event.EGRESS_NAT : Event.EGRESS);
    ipv4DecrementTtl(b, ip);
    this.setFrame(i, ip, total);
    this.pool.addr[i] = dst;
    if (tr !== null) tr.stages.push(`lookup ${formatIpv4(dst)}: ${node ? 'another node\'s address' : 'outside the pools'}: through the node's routing (${nat ? (node ? 'natOutgoing: a TCP connection or ping the pod opens is masqueraded to the node\'s address by the kernel, table ip podway' : 'natOutgoing: masqueraded to the node\'s address by the kernel, table ip podway') : 'no NAT'})`);
    // egress_nat: what the table masquerades, every packet of it; to another node's address only
    // the flows the pod opens are (which a packet alone does not tell): egress
    return this.count(nat && !node ? Event.EGRESS_NAT : Event.EGRESS, this.tx4Port);
  }

  /**
   * A pod's packet for an address a node never routes off the box (loopback, 0/8, multicast,
   * broadcast, reserved: src/packet/martian.ts), about to be handed to the node's routing (tx4),
   * which would deliver it to the node's own loopback services, or to a learned direct route's
   * next hop: dropped, counted martian_dst, and answered with ICMP host unreachable unless it went
   * to a group address.
   */
  private martian(i: number, inPort: number, ip: number, dst: number): number {
    if (this.tr !== null) this.tr.stages.push(`lookup ${formatIpv4(dst)}: never routed off the box (martian destination): not handed to the node's routing`);
    this.counters[Reason.MARTIAN_DST]++;
    if (isGroupDst4(dst) || !mayReplyWithIcmpError(this.b, ip)) return this.dropCounted(Reason.MARTIAN_DST);
    return this.icmpError(i, inPort, ip, ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, 0);
  }

  /**
   * Does pod egress at `ip` to `dst`, over a route out of the pod network (natExit OUT or CHECK),
   * get masqueraded? Calico's rule: the source in a natOutgoing pool, the destination in no pool;
   * with natOutgoingExclusions IPPoolsAndHostIPs (natToNodes false) not a node's address either
   * (nft-nat.ts natSelectors). This node's own address never. The pools and nodes are looked at
   * only for a CHECK route (one holding some of them, e.g. a default route).
   */
  private natEgress(ip: number, dst: number, exit: number): boolean {
    const b = this.b;
    if (this.tx4Port < 0 || !this.natSources.has(((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0)) return false;
    if (exit === NatExit.OUT) return true;
    if ((dst === this.addr.nodeIp && this.addr.hasNodeIp) || (!this.natToNodes && this.addr.knownNodes.has(dst))) return false;
    for (let k = 0; k < this.poolAddr.length; k++) if (((dst & this.poolMask[k]) >>> 0) === this.poolAddr[k]) return false;
    return true;
  }

  /** NATed egress over a learned route: to the kernel's raw socket (routed by the node, OUTPUT and
   * POSTROUTING, where table ip podway masquerades it). TTL and MTU were handled by route(). */
  private toKernelNat(i: number, inPort: number, ip: number, dst: number, total: number): number {
    // (a martian destination never gets here: route()'s DIRECT case dropped it)
    // The route's MTU passed it; the underlay's (the device the kernel checks) may be smaller.
    // Another node's address (IPPoolsOnly; a learned route may hold one): the table masquerades
    // only the flows the pod opens, so it is counted egress, as in the no-route case.
    const node = this.addr.knownNodes.has(dst);
    if (total > this.tx4Mtu) return this.tooBigForTx4(i, inPort, ip, total, dst, false, node ? Event.EGRESS : Event.EGRESS_NAT);
    this.setFrame(i, ip, total);
    this.pool.addr[i] = dst;
    if (this.tr !== null) this.tr.stages.push(node ? 'natOutgoing: another node\'s address, through the node\'s routing: a TCP connection or ping the pod opens is masqueraded to the node\'s address by the kernel, table ip podway' : 'natOutgoing: through the node\'s routing, masqueraded to the node\'s address by the kernel, table ip podway');
    return this.count(node ? Event.EGRESS : Event.EGRESS_NAT, this.tx4Port);
  }

  /**
   * A pod's packet for tx4 (to `dst`) bigger than the underlay's MTU, which the kernel would refuse
   * (a raw IP_HDRINCL send is never fragmented): with DF, ICMP fragmentation needed with that MTU
   * (counted frag_needed); without DF, cut into fragments for that MTU as the kernel's forwarding
   * would (cutFragments; `decTtl`: its TTL is lowered first, as forwarding does), each handed to tx4
   * and counted `ev` as the whole packet would be; one that cannot be cut is dropped too_big_no_df.
   */
  private tooBigForTx4(i: number, inPort: number, ip: number, total: number, dst: number, decTtl: boolean, ev: number): number {
    const tr = this.tr;
    if ((this.b[ip + 6] & 0x40) === 0) {
      if (decTtl) ipv4DecrementTtl(this.b, ip);
      const count = this.cutFragments(i, ip, this.tx4Mtu, total);
      if (count < 0) {
        if (tr !== null) tr.stages.push(`mtu: ${total} > underlay mtu ${this.tx4Mtu} (tx4) without DF: cannot be fragmented`);
        return this.drop(Reason.TOO_BIG_NO_DF);
      }
      const base = this.fragAt[i];
      if (tr !== null) tr.stages.push(`mtu: ${total} > underlay mtu ${this.tx4Mtu} (tx4) without DF: fragmented into ${count}, each to the node's routing (tx4)`);
      const pool = this.pool;
      this.setFrame(i, ip, (this.b[ip + 2] << 8) | this.b[ip + 3]);
      pool.addr[i] = dst;
      for (let q = base; q < base + count - 1; q++) {
        pool.addr[this.fragFirst + q] = dst;
        this.fragVerdict(q, this.tx4Port);
      }
      this.counters[ev] += count;
      return this.tx4Port;
    }
    this.counters[Reason.FRAG_NEEDED]++;
    if (tr !== null) tr.stages.push(`mtu: ${total} > underlay mtu ${this.tx4Mtu} (tx4) with DF: ICMP fragmentation needed`);
    return this.icmpError(i, inPort, ip, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, this.tx4Mtu);
  }

  // ---- replies podway makes itself -------------------------------------------------------------

  private podArp(i: number, port: number, f: number, len: number, taught: boolean): number {
    const b = this.b;
    const a = f + ETH_HLEN;
    const v = validateArp(b, a, len - ETH_HLEN);
    if (v !== Drop.OK) return this.drop(v);
    const op = (b[a + 6] << 8) | b[a + 7];
    const tpa = ((b[a + 24] << 24) | (b[a + 25] << 16) | (b[a + 26] << 8) | b[a + 27]) >>> 0;
    // The pod's answer to the request podway sent it for its MAC (holdForPod): learned already
    // (fromPodL2), nothing to send. It taught this thread the pod's MAC (with --workers, another
    // thread's request may be answered here) or answers this thread's recent request; any other
    // reply for the gateway nobody asked for: dropped, counted.
    if (op === ARP_REPLY && tpa === GATEWAY_IP) {
      const asked = this.podArpAskedAt[port];
      if (!taught && (asked === 0 || this.batchNow() - asked > POD_ARP_ANSWER_MS)) return this.drop(Reason.ARP_REPLY_UNSOLICITED);
      this.podArpAskedAt[port] = 0;
      return this.count(Event.ARP_LEARNED, HOST);
    }
    if (op !== ARP_REQUEST || tpa !== GATEWAY_IP) return this.drop(Reason.ARP_NOT_GATEWAY);
    const spa = ((b[a + 14] << 24) | (b[a + 15] << 16) | (b[a + 16] << 8) | b[a + 17]) >>> 0;
    // Calico's host answers the gateway with its own (ee:..) MAC through proxy ARP; we answer directly.
    const n = arpReplyInPlace(b, f, GATEWAY_MAC, 0);
    this.setFrame(i, f, n);
    this.counters[Event.ARP_REPLIED]++;
    if (this.trace !== null && traceMatchesArp(this.trace.filter, spa, tpa)) {
      const r: TraceRecord = { at: new Date().toISOString(), ingress: this.portName[port], stages: [`arp who-has 169.254.1.1 from ${formatMac(b, f)}: replied ee:ee:ee:ee:ee:ee`] };
      this.trace.add(r);
      if (this.trace.full) this.trace = null;
    }
    return port;
  }

  /**
   * An IPv4 packet (header at `ip`) whose options the kernel's ip_options_compile refuses
   * (Drop.BAD_IP_OPTIONS): counted bad_ip_options and answered as the kernel answers it, with ICMP
   * parameter problem whose pointer is the byte at fault (ipv4OptionsPointer), rate-limited as the
   * other errors: back to the pod on `inPort`, or (inPort -1: decapsulated, or a tunnel's outer
   * header) routed back to its sender. A veth pod's is not answered here: the node's kernel has the
   * frame too and answers it itself (forwarding off on the veth does not stop its option check).
   * A CIPSO option: dropped, no answer (the kernel's neither).
   */
  private badOptions(i: number, inPort: number, ip: number): number {
    this.counters[Drop.BAD_IP_OPTIONS]++;
    const ptr = ipv4OptionsPointer(this.b, ip);
    if (ptr < 0 || (inPort >= 0 && this.hostSees[inPort] === 1)) {
      if (this.tr !== null) this.tr.stages.push(ptr < 0 ? 'ip options: cipso: dropped, not answered (as the kernel)' : 'ip options refused: the node\'s kernel has the frame and answers it');
      return this.dropCounted(Drop.BAD_IP_OPTIONS);
    }
    if (this.tr !== null) this.tr.stages.push(`ip options refused at byte ${ptr}: icmp parameter problem`);
    if (inPort >= 0) return this.icmpError(i, inPort, ip, ICMP_PARAMETER_PROBLEM, 0, (ptr << 24) >>> 0);
    return this.icmpErrorRouted(i, ip, ICMP_PARAMETER_PROBLEM, 0, (ptr << 24) >>> 0);
  }

  /**
   * An IPIP packet (outer header at `outer`, `len` bytes) decapIpipPacket refused for its options:
   * the outer header's (the sending node's: answered to it) or the inner packet's (its pod's).
   */
  private badIpipOptions(i: number, outer: number, len: number): number {
    if (validateIpv4(this.b, outer, len) === Drop.BAD_IP_OPTIONS) return this.badOptions(i, -1, outer);
    return this.badOptions(i, -1, outer + ((this.b[outer] & 15) << 2));
  }

  /**
   * Turn the packet into an ICMP error from this node back to its sender (who is on inPort). Into
   * the host port (the node's own packet: a DF packet too big for a TAP/TUN pod here or for a path
   * whose MTU the node's route did not have) the error comes from the packet's destination, not
   * from the node's address: the node's kernel drops a packet from one of its own addresses
   * arriving on podway0 as a martian (accept_local=0), so PMTU discovery never heard of it. The
   * destination is an address the node routes into podway0 (a pool's), so the kernel takes it,
   * strict reverse-path filtering included, and is never local (the kernel delivered it if it were).
   */
  private icmpError(i: number, inPort: number, ip: number, type: number, code: number, rest: number): number {
    const b = this.b;
    // (the reason the caller counted segment 0 in)
    const why = errorReason(type, code);
    if (!mayReplyWithIcmpError(b, ip)) return this.dropCounted(why);
    if (!this.icmpAllowed(ip, type, code)) return this.drop(Reason.ICMP_RATELIMITED);
    // `podway capture --stage drop` shows the packet as it came (its copy), not the error it becomes
    const cap = this.capture;
    if (cap !== null) cap.noteError(i, why);
    this.superToOne(i, why);
    const r = this.role[inPort];
    const from = r === Role.HOST_TUN ? this.errorSourceToHost(ip) : this.addr.nodeIp;
    const n = buildIcmpErrorInPlace(b, ip - ETH_HLEN, type, code, rest, from, 64, this.nextId());
    const total = (b[n + ETH_HLEN + 2] << 8) | b[n + ETH_HLEN + 3];
    if (r === Role.POD_TUN || r === Role.HOST_TUN) this.setFrame(i, n + ETH_HLEN, total);
    else {
      for (let k = 0; k < 6; k++) b[n + 6 + k] = GATEWAY_MAC[k];
      this.setFrame(i, n, total + ETH_HLEN);
    }
    this.counters[Event.ICMP_SENT]++;
    if (this.tr !== null) this.tr.stages.push(`icmp type ${type} code ${code}${restText(type, rest)} from ${formatIpv4(from)} back to ${this.portName[inPort]}`);
    return inPort;
  }

  /** The source of an ICMP error about the node's own packet at `ip` (see icmpError): its
   * destination; the node's address (as before) if that could be no packet's source. */
  private errorSourceToHost(ip: number): number {
    const b = this.b;
    const dst = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
    return isMartianDst4(dst) ? this.addr.nodeIp : dst;
  }

  /**
   * May the ICMP error (type, code) about the IPv4 packet at `ip` go, under the kernel's rate
   * limits (icmp-ratelimit.ts)? Fragmentation needed always may (the kernel never limits PMTU
   * discovery); the others are limited globally and per destination (the packet's source). The
   * caller drops the packet as `icmp_ratelimited` when not.
   */
  private icmpAllowed(ip: number, type: number, code: number): boolean {
    if (type === ICMP_DEST_UNREACH && code === ICMP_FRAG_NEEDED) return true;
    const b = this.b;
    const src = (b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15];
    return this.icmpLimit.allow4(src, this.batchNow());
  }

  /**
   * An ICMP error for a packet that came through a tunnel or the underlay: its sender is on another
   * node, so the error is routed like any packet (back through the tunnel), as the node's kernel
   * would send it. It is built in place in front of the offending packet. Its source is the one
   * the node's kernel picks for the way back: through a VXLAN (IPIP) tunnel the node's VXLAN (IPIP)
   * tunnel address (Calico's routes through `vxlan.calico`, `tunl0` take that device's address),
   * else (direct, the node's routing, a tunnel without an address of the node's) the node's address.
   */
  private icmpErrorRouted(i: number, ip: number, type: number, code: number, rest: number): number {
    const b = this.b;
    const why = errorReason(type, code);
    if (!mayReplyWithIcmpError(b, ip)) return this.dropCounted(why);
    // A sender the kernel takes for a martian source and answers nothing (beside 0/8, 127/8 and
    // multicast, refused above): this node's own addresses (its local table). The error would go
    // through tx4 back into the node itself.
    const sender = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
    if ((sender === this.addr.nodeIp && this.addr.hasNodeIp) || this.local4.has(sender)) {
      if (this.tr !== null) this.tr.stages.push(`${formatIpv4(sender)} is an address of this node (a martian source): no icmp error`);
      return this.dropCounted(why);
    }
    if (!this.icmpAllowed(ip, type, code)) return this.drop(Reason.ICMP_RATELIMITED);
    const cap = this.capture;
    if (cap !== null) cap.noteError(i, why);
    this.superToOne(i, why);
    // the way back to the sender decides the source, so it is looked up first
    const dst = sender;
    const nh = this.nh.fib.lookup(dst);
    const kind = nh !== NO_ROUTE ? this.nh.kind[nh] : -1;
    const from = kind === NhKind.VXLAN && this.addr.vxlanTunnelIp ? this.addr.vxlanTunnelIp : kind === NhKind.IPIP && this.addr.ipipTunnelIp ? this.addr.ipipTunnelIp : this.addr.nodeIp;
    const n = buildIcmpErrorInPlace(b, ip - ETH_HLEN, type, code, rest, from, 64, this.nextId());
    const eip = n + ETH_HLEN;
    if (nh === NO_ROUTE) {
      // A sender neither pod nor node (a ToR, a client outside the cluster in direct/BGP mode, a
      // traceroute from the fabric): the node's routing has the way back, as for Calico's kernel.
      if (this.tx4Port < 0) return this.drop(Reason.NO_ROUTE);
      this.setFrame(i, eip, (b[eip + 2] << 8) | b[eip + 3]);
      this.pool.addr[i] = dst;
      this.counters[Event.ICMP_SENT]++;
      if (this.tr !== null) this.tr.stages.push(`icmp type ${type} code ${code}${restText(type, rest)} from ${formatIpv4(from)}: to ${formatIpv4(dst)} through the node's routing (tx4)`);
      return this.tx4Port;
    }
    if (this.tr !== null) this.tr.stages.push(`icmp type ${type} code ${code}${restText(type, rest)} from ${formatIpv4(from)}: routed back to the sender`);
    const out = this.route(i, -1, eip, false, true, dst, nh);
    // counted once it goes (or waits for its neighbour), not when a route drops it
    if (out !== DROP) this.counters[Event.ICMP_SENT]++;
    return out;
  }

  /**
   * The pod's kernel left the L4 checksum to "hardware" (veth offload): the field holds the folded
   * pseudo-header sum, so the final checksum is the complement of the sum over the L4 bytes.
   */
  private completeL4Checksum(ip: number): boolean {
    const b = this.b;
    const proto = b[ip + 9];
    const hl = (b[ip] & 15) << 2;
    const total = (b[ip + 2] << 8) | b[ip + 3];
    const l4 = ip + hl;
    const l4len = total - hl;
    const at = proto === 6 ? 16 : proto === 17 ? 6 : -1;
    if (at < 0 || l4len < at + 2) return false;
    let s = 0;
    for (let k = 0; k + 1 < l4len; k += 2) s += (b[l4 + k] << 8) | b[l4 + k + 1];
    if ((l4len & 1) !== 0) s += b[l4 + l4len - 1] << 8;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    let c = ~s & 0xffff;
    if (c === 0 && proto === 17) c = 0xffff;
    b[l4 + at] = c >>> 8;
    b[l4 + at + 1] = c & 255;
    return true;
  }

  // ---- packets held for an unresolved underlay neighbour ------------------------------------------

  /**
   * Descriptor i's frame, ready for the underlay but for its destination MAC, waits for the
   * neighbour (family, key) in the pending queue (copied: descriptor i is free at the next
   * receive). Dropped instead when the queue is full (`neighbor_queue_full`), or when it cannot be
   * held (no queue: `neighbor_unresolved`). A super-frame waits whole, as its segments
   * (holdPacket). Also used by pipeline6.ts.
   */
  hold(i: number, inPort: number, family: number, key: number): number {
    const q = this.held;
    if (q === null) return this.drop(Reason.NEIGHBOR_UNRESOLVED);
    if (!this.holdPacket(q, i, family, key, inPort, Reason.NEIGHBOR_UNRESOLVED)) return this.drop(Reason.NEIGHBOR_QUEUE_FULL);
    if (i < this.heldTo.length) this.heldTo[i] = this.underlayPort;
    if (this.tr !== null) this.tr.stages.push('underlay neighbour unresolved: held until it answers (neighbor_queued)');
    return HELD;
  }

  /**
   * A packet for local L2 pod `p` whose MAC is unknown (the Ethernet frame of `len` bytes at
   * `eth`, its EtherType written): the pod is asked for its MAC (an ARP request, through the
   * engine) and the frame waits in the pending queue keyed by the port, as the kernel holds a
   * packet on an INCOMPLETE neighbour of a pod's veth. Dropped (`pod_mac_unknown`) when it cannot
   * wait: no queue, or a pod without an address to ask for (IPv4 by ARP, else IPv6 by a Neighbor
   * Solicitation); a super-frame waits whole (holdPacket); the queue's bounds as for underlay
   * neighbours (`neighbor_queue_full`). Also used by pipeline6.ts.
   */
  holdForPod(i: number, inPort: number, p: number, eth: number, len: number): number {
    const b = this.b;
    for (let k = 0; k < 6; k++) { b[eth + k] = 0; b[eth + 6 + k] = GATEWAY_MAC[k]; }
    this.setFrame(i, eth, len);
    let asked = true;
    if (this.podIpCount[p] > 0) {
      this.podArpAskedAt[p] = this.batchNow();
      this.onPodMacUnknown(p, this.podIps[p * 4], this.batchNow());
    }
    else if (this.v6.podIp6Count[p] > 0) this.onPodMacUnknown6(p, this.v6.podIps6, p * MAX_POD_IPS6 * 16, this.batchNow());
    else asked = false;
    const q = this.held;
    if (q === null || !asked) return this.drop(Reason.POD_MAC_UNKNOWN);
    if (!this.holdPacket(q, i, FAMILY_POD, p, inPort, Reason.POD_MAC_UNKNOWN)) return this.drop(Reason.NEIGHBOR_QUEUE_FULL);
    if (i < this.heldTo.length) this.heldTo[i] = p;
    if (this.tr !== null) this.tr.stages.push(`pod ${this.portName[p]}'s MAC unknown: asked (arp), held until it answers (neighbor_queued)`);
    return HELD;
  }

  /**
   * Hold descriptor i's packet in the queue: a plain frame in one place; a super-frame whole, cut
   * into its segments (one place each, as the send side would cut them: they leave as they would
   * have without the wait) within the neighbour's byte budget. False when there is no room (the
   * caller drops it `neighbor_queue_full`: every segment of a super-frame, dropRest). Only when a
   * super-frame cannot be cut (no longer live: never after a receive), or could never fit whole
   * and its neighbour holds nothing yet, segment 0 waits alone and the others are dropped for
   * `unheld` (superToOne), as before.
   */
  private holdPacket(q: NeighborQueue, i: number, family: number, key: number, inPort: number, unheld: number): boolean {
    const pool = this.pool;
    if ((pool.flags[i] & DescFlag.SUPER) !== 0) {
      const segs = pool.segs[i];
      const r = q.holdSuper(i, family, key, inPort, segs, pool.len[i] + pool.more[i]);
      if (r === 0) return false;
      if (r > 0) {
        this.counters[Event.NEIGHBOR_QUEUED] += segs;
        if (this.tr !== null) this.tr.stages.push(`super-frame held whole: ${segs} segments, ${pool.len[i] + pool.more[i]} bytes`);
        return true;
      }
      this.superToOne(i, unheld);
    }
    if (!q.hold(i, family, key, inPort)) return false;
    this.counters[Event.NEIGHBOR_QUEUED]++;
    return true;
  }

  /** Pod port p's MAC is known now: the frames held for it leave on its port in one send call,
   * oldest first, from the gateway MAC. Returns how many. */
  releaseToPod(p: number): number {
    const q = this.held;
    if (q === null || q.size === 0 || this.podMacKnown[p] === 0) return 0;
    const k = q.release(FAMILY_POD, p, this.podMac, p * 6, q.first, GATEWAY_MAC);
    if (k === 0) return 0;
    this.counters[Event.NEIGHBOR_QUEUE_SENT] += k;
    const cap = this.capture;
    if (cap !== null) for (let j = 0; j < k; j++) cap.outOfBatch(this.pool, this.pool.txList[q.first + j], this.portName[p], 0);
    this.sendList(p, q.first, k);
    return k;
  }

  /**
   * The neighbour (family, key) answered with the MAC at mac[macOff]: its held frames get it and
   * leave on the underlay port in one send call, oldest first, counted like any batch's. Returns
   * how many. Called by the engine (between batches, or from inside one when the answer is in it:
   * the held frames then leave before the batch's own, as they came first).
   */
  releaseHeld(family: number, key: number, mac: Uint8Array, macOff: number): number {
    const q = this.held;
    if (q === null || q.size === 0 || this.underlayPort < 0) return 0;
    const k = q.release(family, key, mac, macOff, q.first, this.addr.underlayMac);
    if (k === 0) return 0;
    this.counters[Event.NEIGHBOR_QUEUE_SENT] += k;
    // Their transmit, for `podway capture` at tx (they left no trace at the batch they came in).
    const cap = this.capture;
    if (cap !== null) for (let j = 0; j < k; j++) cap.outOfBatch(this.pool, this.pool.txList[q.first + j], this.portName[this.underlayPort], 0);
    this.sendList(this.underlayPort, q.first, k);
    return k;
  }

  /** The neighbour (family, key) failed: its held frames are dropped (`neighbor_queue_timeout`). */
  dropHeld(family: number, key: number): number {
    const q = this.held;
    if (q === null || q.size === 0) return 0;
    return q.take(family, key, this.heldDropped);
  }

  /** One neighbour tick: frames held too long are dropped (`neighbor_queue_timeout`). */
  ageHeld(): number {
    return this.held === null ? 0 : this.held.age(this.heldDropped);
  }

  private readonly heldDropped = (d: number, inPort: number): void => {
    const cap = this.capture;
    // For `podway capture` at drop, under the port the packet came in on (the underlay when it
    // came through a tunnel or the underlay itself), as the frame was to be sent.
    if (cap !== null) cap.outOfBatch(this.pool, d, this.portName[inPort >= 0 && inPort < MAX_PORTS ? inPort : Math.max(0, this.underlayPort)], Reason.NEIGHBOR_QUEUE_TIMEOUT);
    this.counters[Reason.NEIGHBOR_QUEUE_TIMEOUT]++;
    this.counterBytes[Reason.NEIGHBOR_QUEUE_TIMEOUT] += this.pool.len[d];
    if (inPort >= 0 && inPort < MAX_PORTS) this.portCounters[inPort * PORT_COUNTERS + PortCounter.DROPS]++;
  };

  // ---- helpers ---------------------------------------------------------------------------------

  private setFrame(i: number, start: number, len: number): void {
    const pool = this.pool;
    // A super-frame's other segments change by as much as segment 0 does (a decapsulation).
    if ((pool.flags[i] & DescFlag.SUPER) !== 0) pool.more[i] += (pool.segs[i] - 1) * (len - pool.len[i]);
    pool.off[i] = start - (pool.slot[i] << SLOT_SHIFT);
    pool.len[i] = len;
  }

  /** A dropped super-frame's other segments: dropped for the same reason (segment 0 is counted). */
  private dropRest(i: number, pc: number): void {
    const rest = this.pool.segs[i] - 1;
    this.portCounters[pc + PortCounter.DROPS] += rest;
    this.counters[this.lastDrop] += rest;
    this.counterBytes[this.lastDrop] += this.pool.more[i];
  }

  /** Bytes descriptor d stands for: its frame, and a super-frame's other segments. */
  private frameBytes(d: number): number {
    return (this.pool.flags[d] & DescFlag.SUPER) !== 0 ? this.pool.len[d] + this.pool.more[d] : this.pool.len[d];
  }

  private isGatewayMac(f: number): boolean {
    const b = this.b;
    return b[f] === 0xee && b[f + 1] === 0xee && b[f + 2] === 0xee && b[f + 3] === 0xee && b[f + 4] === 0xee && b[f + 5] === 0xee;
  }

  /** A local pod port's MTU after the engine had the chance to read it again (onPortMtuExceeded):
   * only for a packet bigger than the one known, so never on the common path. */
  recheckPortMtu(port: number): number {
    this.onPortMtuExceeded(port, this.batchNow());
    return this.portMtu[port];
  }

  /** The pod's first frame on a port whose MAC was stated (podMacCheck): its source MAC wins. */
  private checkPodMac(port: number, macOff: number): void {
    this.podMacCheck[port] = 0;
    const b = this.b;
    const m = port * 6;
    for (let k = 0; k < 6; k++) {
      if (this.podMac[m + k] !== b[macOff + k]) {
        this.learnPodMac(port, macOff);
        return;
      }
    }
  }

  private learnPodMac(port: number, macOff: number): void {
    for (let k = 0; k < 6; k++) this.podMac[port * 6 + k] = this.b[macOff + k];
    this.podMacKnown[port] = 1;
    this.onPodMac(port, this.b, macOff);
    this.releaseToPod(port);
  }

  private nextId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  /** The outer IPv4 id of descriptor i's tunnel header: a super-frame's packets are cut with id + k
   * (native/rxsuper.h), so the ids after it start past its last one (RFC 6864: no id repeats within
   * a flow while its packets may be in flight; the outer header has no DF). */
  private outerId(i: number): number {
    const id = this.nextId();
    if ((this.pool.flags[i] & DescFlag.SUPER) !== 0) this.ipId = (this.ipId + this.pool.segs[i] - 1) & 0xffff;
    return id;
  }

  /**
   * Descriptor i, a super-frame, becomes ONE packet: an ICMP error built in it answers segment 0.
   * It is no longer a super-frame (send, setFrame and the addon count it as one packet) and its
   * other segments are dropped for `reason`, as a dropped super-frame's are (dropRest); the
   * sender's stack retransmits them. Nothing for a plain descriptor. Also used by pipeline6.ts.
   */
  superToOne(i: number, reason: number): void {
    const pool = this.pool;
    if ((pool.flags[i] & DescFlag.SUPER) === 0) return;
    const rest = pool.segs[i] - 1;
    this.portCounters[this.batchPc + PortCounter.DROPS] += rest;
    this.counters[reason] += rest;
    this.counterBytes[reason] += pool.more[i];
    pool.flags[i] &= ~DescFlag.SUPER;
  }

  private drop(reason: number): number {
    this.counters[reason]++;
    this.lastDrop = reason;
    if (this.tr !== null) this.tr.stages.push(`drop: ${reasonName(reason)}`);
    return DROP;
  }

  /** A drop whose reason the caller already counted (TTL expired, fragmentation needed). */
  private dropCounted(reason: number): number {
    this.lastDrop = reason;
    if (this.tr !== null) this.tr.stages.push(`drop: ${reasonName(reason)}`);
    return DROP;
  }

  private count(ev: number, verdict: number): number {
    this.counters[ev]++;
    return verdict;
  }

  private markOut(p: number): void {
    if (this.outMark[p] === 0) {
      this.outMark[p] = 1;
      this.outPorts[this.nOut++] = p;
    }
  }

  /** Group the batch by output port: one send call per port. */
  private flush(n: number): void {
    if (this.fragUsed !== 0) {
      this.flushFragmented(n);
      return;
    }
    const out = this.out;
    const tx = this.pool.txList;
    for (let j = 0; j < this.nOut; j++) {
      const p = this.outPorts[j];
      this.outMark[p] = 0;
      let k = 0;
      for (let i = 0; i < n; i++) if (out[i] === p) tx[k++] = i;
      this.sendList(p, 0, k);
    }
    this.nOut = 0;
  }

  /**
   * flush() for a batch in which packets were fragmented (fragUsed): per port, the batch's
   * descriptors in order, each fragmented one's other fragments right after it (those for that
   * port), so a flow's packets keep their order; a send call per port, split at the I/O layer's
   * MAX_BATCH (a batch and its fragments can hold more). The fragment area is empty after.
   */
  private flushFragmented(n: number): void {
    const out = this.out;
    const tx = this.pool.txList;
    const fragOut = this.fragOut;
    const first = this.fragFirst;
    const max = this.io.MAX_BATCH;
    for (let j = 0; j < this.nOut; j++) {
      const p = this.outPorts[j];
      this.outMark[p] = 0;
      let k = 0;
      for (let i = 0; i < n; i++) {
        if (out[i] === p) tx[k++] = i;
        const c = this.fragN[i];
        if (c === 0) continue;
        const at = this.fragAt[i];
        for (let q = at; q < at + c; q++) if (fragOut[q] === p) tx[k++] = first + q;
      }
      for (let s = 0; s < k; s += max) this.sendList(p, s, Math.min(max, k - s));
    }
    this.nOut = 0;
    for (let q = 0; q < this.fragUsed; q++) this.fragN[this.fragOwner[q]] = 0;
    this.fragUsed = 0;
  }

  /** Send the k descriptors listed at pool.txList[first..] on port p (one send call), and count it. */
  private sendList(p: number, first: number, k: number): void {
    const tx = this.pool.txList;
    const pc = p * PORT_COUNTERS;
    this.txBatches[batchBucket(k)]++;
    this.txBatches[BATCH_SUM] += k;
    // the segments these k descriptors stand for (send counts segments)
    let segs = k;
    for (let q = 0; q < k; q++) if ((this.pool.flags[tx[first + q]] & DescFlag.SUPER) !== 0) segs += this.pool.segs[tx[first + q]] - 1;
    let sent: number;
    let failed = false;
    try {
      sent = this.io.send(p, first, k);
    } catch (e) {
      failed = true;
      // A port that refuses the whole call (a device gone, a bad descriptor) costs this batch's
      // frames for that port only: counted there, and the other ports' frames still go out.
      sent = 0;
      this.portCounters[pc + PortCounter.TX_ERRORS]++;
      this.counters[Reason.TX_ERROR] += segs;
      for (let q = 0; q < k; q++) this.counterBytes[Reason.TX_ERROR] += this.frameBytes(tx[first + q]);
      this.onPortError(p, 'send', e as Error);
    }
    this.portCounters[pc + PortCounter.TX] += sent;
    // bytes of the descriptors whose segments were all taken (send takes a prefix of the list)
    let bytes = 0;
    for (let j = 0, taken = 0; j < k; j++) {
      const d = tx[first + j];
      taken += (this.pool.flags[d] & DescFlag.SUPER) !== 0 ? this.pool.segs[d] : 1;
      if (taken > sent) break;
      bytes += this.frameBytes(d);
    }
    this.portCounters[pc + PortCounter.TX_BYTES] += bytes;
    if (sent >= segs) return;
    this.portCounters[pc + PortCounter.DROPS] += segs - sent;
    if (failed) return; // counted tx_error above
    // the kernel refused them and the port's backlog had no room (native/README.md): tx_full
    this.counters[Reason.TX_FULL] += segs - sent;
    let all = 0;
    for (let j = 0; j < k; j++) all += this.frameBytes(tx[first + j]);
    this.counterBytes[Reason.TX_FULL] += all - bytes;
    // `podway capture --stage drop`: the frames not taken, as they were handed to the send, under
    // port p (a capture's one test here, on this drop path only)
    const cap = this.capture;
    if (cap === null) return;
    const link = this.linkOf(p);
    for (let j = 0, taken = 0; j < k; j++) {
      const d = tx[first + j];
      taken += (this.pool.flags[d] & DescFlag.SUPER) !== 0 ? this.pool.segs[d] : 1;
      if (taken > sent) cap.txDropped(this.pool, d, this.portName[p], link, this.addr.nodeIp, Reason.TX_FULL);
    }
  }

  /**
   * Drops `reason` a tunnel packet whose outer IPv4 header is at `ip`, dropped before its inner
   * packet was decapsulated: traced by that outer header (when a trace is on and it matches).
   */
  private traceOuterDrop(ip: number, what: string, reason: number): number {
    if (this.trace !== null) {
      this.startTrace(ip, -1);
      const b = this.b;
      const src = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
      if (this.tr !== null) this.tr.stages.push(`${what}: outer ${formatIpv4(src)} -> ${formatIpv4(this.addr.nodeIp)} (${this.addr.knownNodes.has(src) ? 'known node' : 'not a known node'})`);
    }
    return this.drop(reason);
  }

  /**
   * Opens a trace record for a VXLAN payload from the socket (VXLAN header at `f`) by its inner
   * IPv4 header, when there is one to read, so that the outer checks' drops are traced too.
   */
  private traceVxlanPayload(f: number, len: number, peer: number): void {
    const b = this.b;
    const eth = f + 8;
    if (len < 8 + ETH_HLEN + 20 || ((b[eth + 12] << 8) | b[eth + 13]) !== ETHERTYPE_IPV4) return;
    this.startTrace(eth + ETH_HLEN, -1);
    if (this.tr !== null) this.tr.stages.push(`vxlan from ${formatIpv4(peer)} (${this.addr.knownNodes.has(peer) ? 'known node' : 'not a known node'}), vni ${(b[f + 4] << 16) | (b[f + 5] << 8) | b[f + 6]}`);
  }

  /** A next hop as trace records name it (trace only: builds a string). */
  private describeNh(nh: number): string {
    const r = this.nh.routes[nh];
    return `${r.cidr} ${NH_KIND_NAMES[this.nh.kind[nh]]}${r.node ? ' (node ' + r.node + ')' : ''}`;
  }

  /** A trace record's ingress: the port, as counters and capture name it (`underlay(eth0)`,
   * `vxlan(10.99.0.1:4789)`, a pod's interface); -1: the port of the batch in hand. */
  ingressName(port: number): string {
    const p = port >= 0 ? port : this.rxPort;
    return p >= 0 && this.portName[p] ? this.portName[p] : 'unknown';
  }

  private startTrace(ip: number, port: number): void {
    const t = this.trace!;
    if (!traceMatches(t.filter, this.b, ip)) return;
    const b = this.b;
    const total = (b[ip + 2] << 8) | b[ip + 3];
    this.tr = {
      at: new Date().toISOString(),
      ingress: this.ingressName(port),
      stages: [`ipv4 ${formatIpv4(((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0)} -> ${formatIpv4(((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0)} proto ${b[ip + 9]} len ${total} ttl ${b[ip + 8]} id ${(b[ip + 4] << 8) | b[ip + 5]}: valid (version, ihl, length, checksum)`],
    };
  }

  /** A traced super-frame (read before it was decided, or its segment 0 as it is now): what the
   * one descriptor stood for, second in the record (after the packet's first line). */
  private traceSuper(i: number): void {
    const segs = this.pool.segs[i];
    this.tr!.stages.splice(1, 0, `tcp super-frame: ${segs} segments, ${this.superRxBytes} bytes as received (segment 0 ${this.superRxLen}; the line above is segment 0's), handed on as one descriptor: every step below is taken once for all ${segs}, and it is cut into them where it is sent`);
  }

  private finishTrace(o: number): void {
    const tr = this.tr!;
    this.tr = null;
    if (o >= 0) tr.stages.push(`queued to port ${this.portName[o]}`);
    else if (o === HOST) tr.stages.push('handed to the host kernel');
    const t = this.trace;
    if (t === null) return;
    t.add(tr);
    if (t.full) this.trace = null;
  }
}

/** The drop reason an ICMP error's offending packet was counted under (icmpError, icmpErrorRouted). */
function errorReason(type: number, code: number): number {
  if (type === ICMP_TIME_EXCEEDED) return Reason.TTL_EXPIRED;
  if (type === ICMP_PARAMETER_PROBLEM) return Drop.BAD_IP_OPTIONS;
  return code === ICMP_FRAG_NEEDED ? Reason.FRAG_NEEDED : Reason.MARTIAN_DST;
}

/** An ICMP error's second word, for trace (only when tracing). */
function restText(type: number, rest: number): string {
  if (type === ICMP_PARAMETER_PROBLEM) return ` pointer ${rest >>> 24}`;
  return rest !== 0 ? ` mtu ${rest}` : '';
}

import { COUNTER_NAMES } from './counters';
function reasonName(r: number): string {
  return COUNTER_NAMES[r] ?? String(r);
}

/** A DIRECT next hop's ` via NODE`, with ` (gateway GW)` when it is off our subnet and goes through
 * the underlay's gateway (nexthops.ts directGateway); trace and `podway routes` only. */
export function directViaText(nhs: NextHops, nh: number): string {
  return ` via ${formatIpv4(nhs.ip[nh])}${nhs.gw[nh] !== nhs.ip[nh] ? ` (gateway ${formatIpv4(nhs.gw[nh])})` : ''}`;
}

/** The IPv6 header's length (answerRefused). */
const IPV6_HLEN = 40;

/**
 * Where a refused frame's pod packet starts (answerRefused): the IP packet at `l3` (an outer
 * header podway wrote, or the packet itself when it went unencapsulated or to the node's routing),
 * past a VXLAN (UDP to `vxlanPort`, IPv4 or IPv6 outer) or IPIP encapsulation; -1 when it is not
 * an IP packet.
 */
function refusedInner(b: Uint8Array, l3: number, end: number, vxlanPort: number): number {
  const ver = b[l3] >> 4;
  let proto: number;
  let l4: number;
  if (ver === 4) {
    if (l3 + 20 > end) return -1;
    proto = b[l3 + 9];
    l4 = l3 + ((b[l3] & 15) << 2);
  } else if (ver === 6) {
    if (l3 + IPV6_HLEN > end) return -1;
    proto = b[l3 + 6];
    l4 = l3 + IPV6_HLEN;
  } else return -1;
  if (proto === IPPROTO_IPIP && ver === 4) return l4 + 20 <= end && b[l4] >> 4 === 4 ? l4 : -1;
  if (proto === IPPROTO_UDP && l4 + 8 + 8 + ETH_HLEN + 20 <= end && ((b[l4 + 2] << 8) | b[l4 + 3]) === vxlanPort) {
    const e = l4 + 16;
    const type = (b[e + 12] << 8) | b[e + 13];
    if (type !== ETHERTYPE_IPV4 && type !== ETHERTYPE_IPV6) return -1;
    return e + ETH_HLEN;
  }
  return l3;
}
