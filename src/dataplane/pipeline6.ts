/**
 * The IPv6 half of the forwarding pipeline. Pipeline hands it IPv6 frames from pods (and, from
 * tunnels and the underlay, IPv6 inner packets); it answers the pods' Neighbor and Router
 * Solicitations for the gateway fe80::ecee:eeff:feee:eeee with ee:ee:ee:ee:ee:ee (what Calico's
 * host does through the cali veth's link-local address and proxy NDP), checks sources, looks the
 * destination up in the IPv6 FIB (src/lpm/fib6.ts), decrements the hop limit, answers with
 * ICMPv6 time exceeded / packet too big, and delivers or encapsulates in place.
 *
 * Same hot-path rules as pipeline.ts: no allocation per packet, addresses compared as bytes in
 * place, the FIB read with four 32-bit words. It shares the Pipeline's frame pool, counters, pod
 * MACs and ports; verdicts are the Pipeline's (a port, DROP or HOST).
 */
import { Drop } from '../packet/drop';
import { ETH_HLEN } from '../packet/layout';
import { formatMac } from '../packet/ethernet';
import { IPPROTO_ICMPV6, IPPROTO_TCP6, IPPROTO_UDP6, IPV6_HEADER_LEN, formatIpv6, ipv6WalkExtHeaders, validateIpv6 } from '../packet/ipv6';
import { IPPROTO_IPIP } from '../packet/ipv4';
import {
  ICMPV6_DEST_UNREACH, ICMPV6_HOP_LIMIT_EXCEEDED, ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT, ICMPV6_NO_ROUTE, ICMPV6_PACKET_TOO_BIG, ICMPV6_ROUTER_SOLICIT,
  ICMPV6_TIME_EXCEEDED, buildIcmpv6ErrorInPlace, mayReplyWithIcmpv6Error, validateIcmpv6,
} from '../packet/icmpv6';
import { NDP_OPT_TARGET_LLADDR, answerNeighborSolicitInPlace, answerRouterSolicitInPlace, isNdpType, linkLocalFromMac, ndpFindOption, validateNdp } from '../packet/ndp';
import { decapVxlan6Packet, encapVxlan6 } from '../packet/vxlan6';
import { vxlanInnerMacOk } from '../packet/vxlan';
import { ECN_DECAP_DROP, ecnDecapText, ecnDecapsulateIpv6, ipv6EcnAt } from '../packet/ecn';
import { jhash3, vxlanSourcePort, VXLAN_SRC_PORT_MIN, VXLAN_SRC_PORT_MAX } from '../packet/flowhash';
import { NO_ROUTE } from '../lpm/constants';
import { isMartianDst6, isMartianSrc6 } from '../packet/martian';
import { DescFlag, SLOT_SHIFT } from './frame-pool';
import { NhKind, NH_KIND_NAMES, MAC_KNOWN, MAC_FAILED } from './nexthops';
import type { NextHops6 } from './nexthops6';
import { Reason, Event, Reason6, Event6 } from './counters';
import type { Pipeline } from './pipeline';
import { COUNTER_NAMES } from './counters';
import { traceMatches6 } from './trace';
import { FAMILY_V6 } from './neighbor-queue';
import { HostPortSources, Prefixes6 } from './nat';
import { LocalSet6 } from './local-addrs';

// The Pipeline's verdicts (pipeline.ts): a port number >= 0, or these.
const DROP = -1;
const HOST = -2;
/** Roles of pipeline.ts read here (Role.POD_TUN, Role.HOST_TUN). */
const ROLE_POD_TUN = 2;
const ROLE_HOST_TUN = 7;
/** pipeline.ts Tunnel.VXLAN6: some IPv6 pool uses VXLAN (Pipeline.tunnels). */
const TUNNEL_VXLAN6 = 4;
/** IPv6 addresses per pod port for the source check (Calico gives one per family; room for two). */
export const MAX_POD_IPS6 = 2;

const GATEWAY_MAC6 = new Uint8Array([0xee, 0xee, 0xee, 0xee, 0xee, 0xee]);
/** Calico's IPv6 pod gateway, fe80::ecee:eeff:feee:eeee: the EUI-64 link-local of ee:ee:ee:ee:ee:ee. */
export const GATEWAY_IP6 = linkLocalFromMac(GATEWAY_MAC6);

export class Pipeline6 {
  private readonly b: Uint8Array;
  /** Each pod port's IPv6 addresses (16 bytes each, MAX_POD_IPS6 per port). */
  readonly podIps6: Uint8Array;
  readonly podIp6Count: Uint8Array;
  /** The IPv6 next hops and FIB; null until a model with IPv6 is applied (IPv6 is then dropped as NO_ROUTE). */
  nh: NextHops6 | null = null;
  /** This node's underlay IPv6 address (source of ICMPv6 errors and IPv6 tunnels), when it has one. */
  readonly nodeIp6 = new Uint8Array(16);
  hasNodeIp6 = false;
  /** The node's IPv6 VXLAN tunnel address while an IPv6 pool uses VXLAN (`vxlan-v6.calico`'s on a
   * Calico node): the source of ICMPv6 errors routed back through an IPv6 VXLAN tunnel. */
  readonly vxlanTunnelIp6 = new Uint8Array(16);
  hasVxlanTunnelIp6 = false;
  /** The MTU podway advertises to pods in its RAs. */
  podMtu = 1500;
  /** Results of the extension-header walk of the packet in hand (ipv6WalkExtHeaders). */
  private readonly walk = new Int32Array(4);
  private flowSeed = (Math.random() * 0xffffffff) >>> 0;
  /** The VXLAN source port range, as the IPv4 pipeline's (Pipeline.setVxlanSourcePorts). */
  sportMin = VXLAN_SRC_PORT_MIN;
  sportMax = VXLAN_SRC_PORT_MAX;
  /** Called for a next hop whose underlay neighbour (16 bytes at b[off]) is not resolved (the
   * engine sends an NS), with the batch's clock (Pipeline.batchNow: one clock read per batch). */
  onUnresolved6: (b: Uint8Array, off: number, now: number) => void = () => {};
  /** The pending-queue key of the underlay neighbour at b[off..+16] (Neighbors6's id; -1: the
   * full neighbour table refused it, counted `neighbor_table_full`; 0: not a neighbour the engine
   * wants, counted `neighbor_unresolved`; neither is held). */
  neighborId: (b: Uint8Array, off: number) => number = () => 0;
  /** Called for a valid Neighbor Advertisement on the underlay: target at b[targetOff], its MAC at b[macOff]. */
  onNeighbor6: (b: Uint8Array, targetOff: number, macOff: number) => void = () => {};
  /** Underlay IPv6 addresses of the cluster's nodes (16 bytes each): IPv6 VXLAN is accepted only from them. */
  knownNodes6 = new Uint8Array(0);
  /** The IPv6 raw socket (tx6): pod packets for another node's own IPv6 address leave through the
   * node's routing, as IPv4's pod egress leaves through tx4 (-1: none, they get no route). */
  tx6Port = -1;
  /** The IPv6 pools: a pod's packet for a pool address without a route is dropped, never handed
   * to the kernel (whose pool routes lead back into podway0). */
  readonly pools6 = new Prefixes6();
  /** The node's own IPv6 addresses (the kernel's local table, martian ones left out:
   * local-addrs.ts), set by the engine and kept current. */
  readonly local6 = new LocalSet6();
  /** IPv6 pools with natOutgoing: their egress outside the pools is masqueraded by the kernel
   * (table ip6 podway, nft-nat.ts); counted and traced here. */
  readonly natSources6 = new Prefixes6();
  /** The largest packet tx6 may take: the underlay's MTU (the engine sets it with each model). The
   * kernel refuses a raw IPv6 packet bigger than its output device's MTU (EMSGSIZE, counted on
   * tx6 and lost), so a bigger one is answered here with Packet Too Big, as a route would. */
  tx6Mtu = 1500;
  /**
   * The IPv6 host ports' pod ends (IPv4's Pipeline.hostPortSources): a pod's TCP or UDP packet
   * from one of them goes to the node's kernel (tx6), whatever its destination, so the kernel's
   * conntrack reverses the DNAT of table ip6 podway's hostport_dnat chain (nft-nat.ts); so does
   * every packet with a Fragment header from a pod that has any host port (the kernel reassembles
   * them). A typed table (nat.ts HostPortSources): the look-up allocates nothing. The
   * kernel's own copy of a veth pod's frame is dropped by that table (hostport_copy). Set by the
   * engine with each model (engine6.ts).
   */
  readonly hostPortSources = new HostPortSources(16);

  constructor(private readonly p: Pipeline, maxPorts: number) {
    this.b = p.b;
    this.podIps6 = new Uint8Array(maxPorts * MAX_POD_IPS6 * 16);
    this.podIp6Count = new Uint8Array(maxPorts);
  }

  /** The port's IPv6 addresses (16-byte arrays), replacing what it had. */
  setPortAddrs(port: number, ips: readonly Uint8Array[]): void {
    const n = Math.min(ips.length, MAX_POD_IPS6);
    this.podIp6Count[port] = n;
    this.podIps6.fill(0, port * MAX_POD_IPS6 * 16, (port + 1) * MAX_POD_IPS6 * 16);
    for (let k = 0; k < n; k++) this.podIps6.set(ips[k].subarray(0, 16), (port * MAX_POD_IPS6 + k) * 16);
  }

  clearPort(port: number): void {
    this.podIp6Count[port] = 0;
  }

  /** The local pod port whose IPv6 addresses hold the address at b[off] (-1: none). Between
   * batches only (Pipeline.answerRefused): a walk over the ports. */
  podPortOf(b: Uint8Array, off: number): number {
    const n = this.podIp6Count.length;
    for (let p = 0; p < n; p++) {
      for (let k = 0; k < this.podIp6Count[p]; k++) {
        const a = (p * MAX_POD_IPS6 + k) * 16;
        let same = true;
        for (let j = 0; j < 16; j++) if (this.podIps6[a + j] !== b[off + j]) { same = false; break; }
        if (same) return p;
      }
    }
    return -1;
  }

  // ---- ingress ---------------------------------------------------------------------------------

  /** An IPv6 frame from a pod's L2 port (veth or tap); `f` is the Ethernet header. */
  fromPodL2(i: number, port: number, f: number, len: number): number {
    const b = this.b;
    const ip = f + ETH_HLEN;
    const v = validateIpv6(b, ip, len - ETH_HLEN);
    if (v !== Drop.OK) return this.drop(v);
    const w = ipv6WalkExtHeaders(b, ip, this.walk);
    if (w !== Drop.OK) return this.drop(w);
    const end = ip + IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]);
    // Neighbor Discovery is link traffic: answered here when it is for the gateway, never forwarded.
    if (this.walk[0] === IPPROTO_ICMPV6 && this.walk[2] === 0 && this.walk[1] < end && isNdpType(b[this.walk[1]])) {
      return this.podNdp(i, port, f, ip, this.walk[1], end - this.walk[1]);
    }
    // Anything else must be routed, i.e. sent to the gateway's MAC (multicast such as MLD reports is not).
    if (!(b[f] === 0xee && b[f + 1] === 0xee && b[f + 2] === 0xee && b[f + 3] === 0xee && b[f + 4] === 0xee && b[f + 5] === 0xee)) {
      return this.drop((b[f] & 1) !== 0 ? Reason6.MULTICAST6 : Reason.NOT_OUR_MAC);
    }
    return this.fromPodIp(i, port, ip);
  }

  /**
   * An IPv6 packet the node's own stack sent into the host port (podway0): its routes for the IPv6
   * pools point there (host-programmer.ts), so this is the node reaching a tap/tun pod, a pod on
   * another node, or answering one. Originated by the node: the hop limit is neither checked nor
   * decremented (as IPv4's fromHost); ICMPv6 errors (packet too big) go back into the host port.
   */
  fromHost(i: number, port: number, ip: number, len: number): number {
    const v = validateIpv6(this.b, ip, len);
    if (v !== Drop.OK) return this.drop(v);
    const w = ipv6WalkExtHeaders(this.b, ip, this.walk);
    if (w !== Drop.OK) return this.drop(w);
    // The kernel's own link traffic on the TUN (MLD reports, router solicitations) is not routed.
    if (this.b[ip + 24] === 0xff) return this.drop(Reason6.MULTICAST6);
    if (this.p.trace !== null) this.startTrace(ip, port);
    // For the node itself, out of podway0: only a host port's packet, copied here by table ip6
    // podway's hostport_raw chain (looked at only while the node has IPv6 host ports), as IPv4's.
    if (this.hostPortSources.size !== 0 && ((this.hasNodeIp6 && this.isNodeIp6(ip + 24)) || this.local6.has(this.b, ip + 24))) return this.hostPortIn(i, ip);
    return this.route(i, port, ip, true, true);
  }

  /**
   * A packet for an IPv6 host port of the node, copied into podway0 by table ip6 podway's
   * hostport_raw chain: back to the kernel through tx6, as a packet the node sends, so
   * hostport_dnat translates it to the pod in OUTPUT (IPv4's Pipeline.hostPortIn, which says why).
   */
  private hostPortIn(i: number, ip: number): number {
    if (this.tx6Port < 0) return this.drop(Reason.NO_ROUTE);
    this.setFrame(i, ip, IPV6_HEADER_LEN + ((this.b[ip + 4] << 8) | this.b[ip + 5]));
    if (this.p.tr !== null) this.p.tr.stages.push(`${formatIpv6(this.b, ip + 24)}: an address of this node, out of podway0: a host port's packet (table ip6 podway, hostport_raw): to the node's kernel (tx6), translated there to the pod (hostport_dnat)`);
    return this.count(Event.HOST_PORT_IN, this.tx6Port);
  }

  /** Does the pod's IPv6 packet at `ip` (walked) go to the node's kernel for a host port
   * (hostPortSources)? TCP or UDP from one of its host ports' container ports; or any fragment (a
   * Fragment header crossed) from a pod that has a host port: the kernel must have all of a
   * datagram's fragments to reassemble it (conntrack), and only the first carries the ports; or an
   * ICMPv6 error (types 1-4) from such a pod, which may be about a packet the kernel translated to
   * it (IPv4's Pipeline.fromHostPortSource). */
  private fromHostPortSource(ip: number): boolean {
    const w = this.walk;
    const b = this.b;
    if (w[2] !== 0) return this.hostPortSources.hasAddr(b, ip + 8);
    const proto = w[0];
    if (proto === IPPROTO_ICMPV6) {
      if (w[1] >= ip + IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5])) return false;
      const t = b[w[1]];
      return t >= 1 && t <= 4 && this.hostPortSources.hasAddr(b, ip + 8);
    }
    if (proto !== IPPROTO_TCP6 && proto !== IPPROTO_UDP6) return false;
    if (w[1] + 2 > ip + IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5])) return false;
    return this.hostPortSources.has(b, ip + 8, proto, (b[w[1]] << 8) | b[w[1] + 1]);
  }

  /**
   * A pod's packet from one of its IPv6 host ports (fromHostPortSource): to the node's kernel
   * through tx6, whose conntrack gives it the node's address and host port back (IPv4's
   * Pipeline.hostPortReply). Hop limit and MTU as for other egress through tx6 (noRouteFromPod).
   */
  private hostPortReply(i: number, inPort: number, ip: number): number {
    const b = this.b;
    if (this.tx6Port < 0) return this.drop(Reason.NO_ROUTE);
    if (isMartianDst6(b, ip + 24)) return this.icmpError(i, inPort, ip, ICMPV6_DEST_UNREACH, ICMPV6_NO_ROUTE, 0, Reason.MARTIAN_DST);
    if (b[ip + 7] <= 1) return this.icmpError(i, inPort, ip, ICMPV6_TIME_EXCEEDED, ICMPV6_HOP_LIMIT_EXCEEDED, 0, Reason.TTL_EXPIRED);
    const total = IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]);
    if (total > this.tx6Mtu) return this.icmpError(i, inPort, ip, ICMPV6_PACKET_TOO_BIG, 0, this.tx6Mtu, Reason.FRAG_NEEDED);
    b[ip + 7]--;
    this.setFrame(i, ip, total);
    if (this.p.tr !== null) this.p.tr.stages.push(`from a host port's container port: to the node's kernel (tx6), whose conntrack gives it the host port back (table ip6 podway, hostport_dnat)`);
    return this.count(Event.HOST_PORT_REPLY, this.tx6Port);
  }

  /** An IPv6 packet from a pod's TUN device (no Ethernet, no NDP). */
  fromPodTun(i: number, port: number, ip: number, len: number): number {
    const v = validateIpv6(this.b, ip, len);
    if (v !== Drop.OK) return this.drop(v);
    const w = ipv6WalkExtHeaders(this.b, ip, this.walk);
    if (w !== Drop.OK) return this.drop(w);
    return this.fromPodIp(i, port, ip);
  }

  private fromPodIp(i: number, port: number, ip: number): number {
    const b = this.b;
    if (this.p.trace !== null) this.startTrace(ip, port);
    // The gateway's link-local address is the veth host end's own (the kernel gives it
    // fe80::ecee:eeff:feee:eeee from ee:ee:ee:ee:ee:ee): the kernel already has a veth pod's frame
    // and answers it (an echo, from the pod's global or link-local address), so podway sends
    // nothing, no unreachable (before: martian_dst or source_check). One compare for other traffic.
    if (b[ip + 24] === 0xfe && this.p.hostSees[port] === 1 && this.isGateway6(ip + 24)) {
      if (this.p.tr !== null) this.p.tr.stages.push(`${formatIpv6(b, ip + 24)}: the gateway's link-local address, the veth host end's: the node's kernel has the frame`);
      return this.count(Event.TO_HOST, HOST);
    }
    // Source check: only the endpoint's own IPv6 addresses may leave its interface (its
    // link-local address is for the link only and fails here too).
    const cnt = this.podIp6Count[port];
    let ok = false;
    for (let k = 0; k < cnt && !ok; k++) {
      const a = (port * MAX_POD_IPS6 + k) * 16;
      let same = true;
      for (let j = 0; j < 16; j++) if (this.podIps6[a + j] !== b[ip + 8 + j]) { same = false; break; }
      ok = same;
    }
    if (!ok) return this.drop(Reason.SOURCE_CHECK);
    if (this.p.tr !== null) this.p.tr.stages.push(`source check: ${formatIpv6(b, ip + 8)} belongs to ${this.p.portName[port]}: pass`);
    if (b[ip + 24] === 0xff) return this.drop(Reason6.MULTICAST6);
    if (this.isEncapFromPod(ip)) return this.drop(Reason.ENCAP_FROM_POD);
    if ((this.p.pool.flags[i] & DescFlag.CSUM_PARTIAL) !== 0 && !this.completeL4Checksum(ip)) return this.drop(Reason.BAD_PARTIAL_CSUM);
    if (this.hostPortSources.size !== 0 && this.fromHostPortSource(ip)) return this.hostPortReply(i, port, ip);
    return this.route(i, port, ip, true);
  }

  /** A pod's IPv6 packet (walked) carrying IP-in-IP (next header 4) or UDP to the VXLAN port (whole, or
   * its first fragment), not allowed: as Felix's ip6tables rules for workloads (pipeline.ts's IPv4 twin). */
  private isEncapFromPod(ip: number): boolean {
    const w = this.walk;
    if (w[0] === IPPROTO_IPIP) return !this.p.allowIpipFromPods;
    if (w[0] !== IPPROTO_UDP6 || this.p.allowVxlanFromPods || (w[2] !== 0 && w[3] !== 0)) return false;
    const b = this.b;
    const end = ip + IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]);
    return w[1] + 4 <= end && ((b[w[1] + 2] << 8) | b[w[1] + 3]) === this.p.vxlanPort;
  }

  /**
   * An IPv6 packet decapsulated from a tunnel or received unencapsulated on the underlay: only
   * local workloads are valid destinations (validated and walked by the caller via validateInner).
   * `outerEcn`: a decapsulated packet's outer ECN field (RFC 6040, src/packet/ecn.ts: outer CE
   * marks an ECN-capable inner packet CE, outer ECT(1) turns inner ECT(0) into ECT(1), outer CE
   * over a Not-ECT inner packet is dropped), 0 for unencapsulated traffic. `peer`: for VXLAN, the
   * offset in the buffer of the sending node's IPv6 address (the outer source), -1 otherwise;
   * `viaSocket`: the datagram came through the VXLAN socket (for the trace's decap line, as IPv4's).
   */
  fromNetwork(i: number, ip: number, len: number, outerEcn = 0, peer = -1, viaSocket = false): number {
    const b = this.b;
    const v = validateIpv6(b, ip, len);
    if (v !== Drop.OK) return this.drop(v);
    const w = ipv6WalkExtHeaders(b, ip, this.walk);
    if (w !== Drop.OK) return this.drop(w);
    if (this.p.trace !== null) {
      this.startTrace(ip, -1);
      const tr = this.p.tr;
      if (tr !== null) {
        const eth = ip - ETH_HLEN;
        tr.stages.push(peer >= 0
          ? `vxlan decap: from node ${formatIpv6(b, peer)} (known), vni ${this.p.vni}, inner ${formatMac(b, eth + 6)} -> ${formatMac(b, eth)}${viaSocket ? '' : ' (underlay port)'}`
          : `underlay: unencapsulated from ${formatMac(b, eth + 6)}`);
      }
    }
    if (outerEcn !== 0) {
      const before = ipv6EcnAt(b, ip);
      const r = ecnDecapsulateIpv6(b, ip, outerEcn);
      if (this.p.tr !== null) this.p.tr.stages.push(ecnDecapText(outerEcn, before, ipv6EcnAt(b, ip), r));
      if (r === ECN_DECAP_DROP) return this.drop(Reason.TUNNEL_ECN_NOT_ECT);
    }
    // A source no node sends from (::, ::1, multicast, link-local: isMartianSrc6), which Linux drops
    // before forwarding (ip6_rcv_core, ip6_forward); the kernel has no IPv6 reverse-path filter.
    if (isMartianSrc6(b, ip + 8)) {
      if (this.p.tr !== null) this.p.tr.stages.push(`source ${formatIpv6(b, ip + 8)}: a martian source (no node sends from it; the kernel never forwards it)`);
      return this.drop(Reason.MARTIAN_SRC);
    }
    const nhs = this.nh;
    if (nhs === null) return this.drop(Reason.NO_ROUTE);
    const nh = nhs.fib.lookup(word(b, ip + 24), word(b, ip + 28), word(b, ip + 32), word(b, ip + 36));
    if (nh !== NO_ROUTE && nhs.kind[nh] === NhKind.BLACKHOLE) return this.drop(Reason.BLACKHOLE);
    if (nh === NO_ROUTE || nhs.kind[nh] !== NhKind.LOCAL) {
      // this node's IPv6 tunnel address (the underlay's unencapsulated ones stay the kernel's: fromUnderlay)
      if (nh !== NO_ROUTE && nhs.kind[nh] === NhKind.HOST) return this.route(i, -1, ip, false);
      return this.drop(Reason.DECAP_NOT_LOCAL);
    }
    return this.route(i, -1, ip, false);
  }

  /**
   * An IPv6 frame on the underlay NIC: an NA answering our resolution (learned; the kernel gets
   * it too), IPv6 VXLAN from a known node to our address (decapsulated), or unencapsulated
   * traffic for a local pod; anything else is the node's own and left to the kernel.
   */
  fromUnderlay(i: number, f: number, len: number): number {
    const b = this.b;
    const ip = f + ETH_HLEN;
    if (validateIpv6(b, ip, len - ETH_HLEN) !== Drop.OK) return HOST;
    const nhdr = b[ip + 6];
    const end = ip + IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]);
    // A solicitation for the node's address while the node's kernel no longer holds it (removed by
    // hand or by a router's RA going away; local6, the kernel's local table, kept current by the
    // engine and told to the workers): podway still sends from it until the Node is updated, so it
    // answers, with the underlay's MAC, as the kernel did (the IPv4 path answers ARP so: pipeline.ts
    // fromUnderlay). Without it the other nodes' entries for it failed once stale and their
    // traffic to this node's pods was lost. Answered only: for exactly that target, a valid NDP
    // message (checksum, hop limit 255: validateNdp), to the target's solicited-node group or to
    // the target itself, sent to this NIC's MAC or to a multicast one, and not a duplicate address
    // detection (from ::: a host taking the address up is let have it, as a gratuitous ARP is not
    // answered). Anything else is the kernel's, as before.
    if (nhdr === IPPROTO_ICMPV6 && end - ip >= IPV6_HEADER_LEN + 24 && b[ip + IPV6_HEADER_LEN] === ICMPV6_NEIGHBOR_SOLICIT && this.hasNodeIp6
      && this.p.underlayPort >= 0 && this.isNodeIp6(ip + IPV6_HEADER_LEN + 8) && !this.local6.has(b, ip + IPV6_HEADER_LEN + 8)) {
      return this.nodeSolicit(i, f, ip, end);
    }
    if (nhdr === IPPROTO_ICMPV6 && end - ip >= IPV6_HEADER_LEN + 32 && b[ip + IPV6_HEADER_LEN] === ICMPV6_NEIGHBOR_ADVERT) {
      const icmp = ip + IPV6_HEADER_LEN;
      if (validateIcmpv6(b, ip, icmp, end - icmp) !== Drop.OK || validateNdp(b, ip, icmp, end - icmp) !== Drop.OK) return this.count(Drop.BAD_NDP, HOST);
      const tlla = ndpFindOption(b, icmp, end - icmp, NDP_OPT_TARGET_LLADDR);
      this.onNeighbor6(b, icmp + 8, tlla >= 0 ? tlla + 2 : f + 6);
      return HOST;
    }
    const u = this.p.addr.underlayMac;
    for (let k = 0; k < 6; k++) if (b[f + k] !== u[k]) return HOST;
    if (nhdr === IPPROTO_UDP6 && this.hasNodeIp6 && this.isNodeIp6(ip + 24) && end - ip >= IPV6_HEADER_LEN + 8 && ((b[ip + 42] << 8) | b[ip + 43]) === this.p.vxlanPort) {
      if ((this.p.tunnels & TUNNEL_VXLAN6) === 0) return this.traceOuterDrop(ip, Reason.TUNNEL_MODE_UNUSED);
      if (!this.isKnownNode6(ip + 8)) return this.traceOuterDrop(ip, Reason.UNKNOWN_TUNNEL_SOURCE);
      const inner = decapVxlan6Packet(b, ip, len - ETH_HLEN, this.p.vni, this.p.vxlanPort);
      if (inner < 0) return this.traceOuterDrop(ip, -inner);
      if (this.nh !== null && !vxlanInnerMacOk(b, inner, this.nh.vtepMac)) return this.traceOuterDrop(ip, Reason.VXLAN_INNER_MAC);
      if (((b[inner + 12] << 8) | b[inner + 13]) !== 0x86dd) return this.traceOuterDrop(ip, Reason.UNSUPPORTED_ETHERTYPE);
      return this.fromNetwork(i, inner + ETH_HLEN, end - inner - ETH_HLEN, (b[ip + 1] >>> 4) & 3, ip + 8);
    }
    const nhs = this.nh;
    if (nhs === null) return HOST;
    const nh = nhs.fib.lookup(word(b, ip + 24), word(b, ip + 28), word(b, ip + 32), word(b, ip + 36));
    if (nh !== NO_ROUTE && nhs.kind[nh] === NhKind.HOST) {
      // this node's IPv6 tunnel address, unencapsulated: the kernel has its own copy and the address
      nhs.hits[nh]++;
      return this.count(Event.TO_HOST, HOST);
    }
    if (nh === NO_ROUTE || (nhs.kind[nh] !== NhKind.LOCAL && nhs.kind[nh] !== NhKind.BLACKHOLE)) return HOST;
    return this.fromNetwork(i, ip, len - ETH_HLEN);
  }

  /**
   * A VXLAN datagram (VXLAN header first) from the IPv6 VXLAN socket: one the kernel reassembled
   * from outer IPv6 fragments (nft-tunnels.ts leaves fragments to it; whole datagrams arrive on
   * the underlay port). The addon writes the sender's IPv6 address into the 16 bytes before the
   * frame (native/README.md). The kernel checked the outer UDP checksum.
   */
  fromVxlanSocket(i: number): number {
    const b = this.b;
    const f = this.p.pool.start(i);
    const len = this.p.pool.len[i];
    if ((this.p.tunnels & TUNNEL_VXLAN6) === 0) return this.drop(Reason.TUNNEL_MODE_UNUSED);
    if (!this.hasNodeIp6 || !this.isKnownNode6(f - 16)) return this.drop(Reason.UNKNOWN_TUNNEL_SOURCE);
    if (len < 8 + ETH_HLEN + IPV6_HEADER_LEN) return this.drop(Drop.TOO_SHORT);
    if ((b[f] & 0x08) === 0) return this.drop(Drop.BAD_VXLAN_FLAGS);
    if (((b[f + 4] << 16) | (b[f + 5] << 8) | b[f + 6]) !== this.p.vni) return this.drop(Drop.BAD_VNI);
    const inner = f + 8;
    if (this.nh !== null && !vxlanInnerMacOk(b, inner, this.nh.vtepMac)) return this.drop(Reason.VXLAN_INNER_MAC);
    if (((b[inner + 12] << 8) | b[inner + 13]) !== 0x86dd) return this.drop(Reason.UNSUPPORTED_ETHERTYPE);
    return this.fromNetwork(i, inner + ETH_HLEN, len - 8 - ETH_HLEN, (this.p.pool.flags[i] & DescFlag.ECN_MASK) >>> DescFlag.ECN_SHIFT, f - 16, true);
  }

  private isKnownNode6(a: number): boolean {
    const k6 = this.knownNodes6;
    const b = this.b;
    for (let o = 0; o < k6.length; o += 16) {
      let same = true;
      for (let j = 0; j < 16; j++) if (k6[o + j] !== b[a + j]) { same = false; break; }
      if (same) return true;
    }
    return false;
  }

  // ---- routing ---------------------------------------------------------------------------------

  /** `originated`: the node's own stack sent it through the host port (fromHost): no hop limit
   * check or decrement, and nothing without a route is sent back to the node. */
  private route(i: number, inPort: number, ip: number, fromPod: boolean, originated = false): number {
    const b = this.b;
    const nhs = this.nh;
    if (nhs === null) return this.drop(Reason.NO_ROUTE);
    const nh = nhs.fib.lookup(word(b, ip + 24), word(b, ip + 28), word(b, ip + 32), word(b, ip + 36));
    if (nh === NO_ROUTE) {
      if (fromPod && !originated) return this.noRouteFromPod(i, inPort, ip);
      if (this.p.tr !== null) this.p.tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: no route`);
      return this.drop(Reason.NO_ROUTE);
    }
    const kind = nhs.kind[nh];
    nhs.hits[nh]++;
    const tr = this.p.tr;
    if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: ${describeNextHop6(nhs, nh)}${nhs.routes[nh].node ? ' (node ' + nhs.routes[nh].node + ')' : ''}`);
    if (kind === NhKind.BLACKHOLE) return this.drop(Reason.BLACKHOLE);
    if (kind === NhKind.HOST) return this.toOwnTunnelAddress(i, inPort, ip);
    const total = IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]);
    // Hop limit: forwarding decrements it (RFC 8200 section 3); at 1 it is time exceeded. A packet
    // the node itself sent is not forwarded by this hop (the kernel's output path).
    if (!originated && b[ip + 7] <= 1) {
      if (fromPod) return this.icmpError(i, inPort, ip, ICMPV6_TIME_EXCEEDED, ICMPV6_HOP_LIMIT_EXCEEDED, 0, Reason.TTL_EXPIRED);
      // from another node (a tunnel, the underlay) or the host: routed back to its sender
      return this.icmpErrorRouted(i, ip, ICMPV6_TIME_EXCEEDED, ICMPV6_HOP_LIMIT_EXCEEDED, 0, Reason.TTL_EXPIRED);
    }
    // IPv6 routers never fragment: too big is always "packet too big" with the path MTU (the
    // route's, or a local pod's port's; 0: not known).
    let mtu = kind !== NhKind.LOCAL ? nhs.mtu[nh] : nhs.port[nh] >= 0 ? this.p.portMtu[nhs.port[nh]] : 0;
    if (mtu !== 0 && total > mtu && kind === NhKind.LOCAL) mtu = this.p.recheckPortMtu(nhs.port[nh]);
    if (mtu !== 0 && total > mtu) {
      if (fromPod) return this.icmpError(i, inPort, ip, ICMPV6_PACKET_TOO_BIG, 0, mtu, Reason.FRAG_NEEDED);
      if (!originated) return this.icmpErrorRouted(i, ip, ICMPV6_PACKET_TOO_BIG, 0, mtu, Reason.FRAG_NEEDED);
      return this.drop(Reason.FRAG_NEEDED);
    }
    if (!originated) {
      b[ip + 7]--;
      if (tr !== null) tr.stages.push(`hop limit ${b[ip + 7] + 1} -> ${b[ip + 7]}`);
    }
    const eth = ip - ETH_HLEN;
    switch (kind) {
      case NhKind.LOCAL: {
        const p = nhs.port[nh];
        if (p < 0) return this.drop(Reason.NO_ROUTE);
        if (p === inPort) return this.drop(Reason.HAIRPIN);
        if (tr !== null) tr.stages.push(`deliver to ${this.p.portName[p]}`);
        if (this.p.role[p] === ROLE_POD_TUN) {
          this.setFrame(i, ip, total);
          return p;
        }
        if (this.p.podMacKnown[p] === 0) {
          // held for the pod's answer to an ARP request, as IPv4 is (pipeline.ts holdForPod)
          b[eth + 12] = 0x86; b[eth + 13] = 0xdd;
          return this.p.holdForPod(i, inPort, p, eth, total + ETH_HLEN);
        }
        const m = p * 6;
        for (let k = 0; k < 6; k++) { b[eth + k] = this.p.podMac[m + k]; b[eth + 6 + k] = 0xee; }
        b[eth + 12] = 0x86; b[eth + 13] = 0xdd;
        this.setFrame(i, eth, total + ETH_HLEN);
        return p;
      }
      case NhKind.VXLAN: {
        const known = nhs.macKnown[nh];
        if (known !== MAC_KNOWN) {
          this.onUnresolved6(nhs.gw6, nh * 16, this.p.batchNow());
          if (known === MAC_FAILED) return this.drop(Reason.NEIGHBOR_FAILED);
        }
        b[eth + 12] = 0x86; b[eth + 13] = 0xdd;
        const sport = vxlanSourcePort(this.flowHash(ip), this.sportMin, this.sportMax);
        const start = encapVxlan6(b, eth, total + ETH_HLEN, nhs.tpl[nh], sport);
        if (tr !== null) tr.stages.push(`vxlan over ipv6: outer -> [${nhs.routes[nh].nodeIp6}]:${this.p.vxlanPort}${gatewayText6(nhs, nh)} from port ${sport}, udp checksum computed, vni ${this.p.vni}, inner dst ${nhs.routes[nh].vtepMac}`);
        const out = this.toUnderlay(i, nh, start, total + ETH_HLEN + 56);
        // encapsulated and framed: held for the neighbour's MAC (written over the zeros toUnderlay left)
        return known === MAC_KNOWN ? out : this.holdFor(i, inPort, nh);
      }
      case NhKind.DIRECT: {
        const known = nhs.macKnown[nh];
        if (known !== MAC_KNOWN) {
          this.onUnresolved6(nhs.gw6, nh * 16, this.p.batchNow());
          if (known === MAC_FAILED) return this.drop(Reason.NEIGHBOR_FAILED);
        }
        if (tr !== null) tr.stages.push(`direct: to ${nhs.routes[nh].nodeIp6}${gatewayText6(nhs, nh)} via the underlay`);
        const out = this.toUnderlay(i, nh, ip, total);
        return known === MAC_KNOWN ? out : this.holdFor(i, inPort, nh);
      }
    }
    return this.drop(Reason.NO_ROUTE);
  }

  /**
   * A packet for this node's own IPv6 tunnel address (a 'host' route; Calico's `vxlan-v6.calico`
   * address, on podway0 here): the node's kernel answers it, counted to_host as for the node's
   * address. A veth pod's frame already reached the kernel; a TAP/TUN pod's or a decapsulated one
   * (`inPort` -1) goes into the host port; the node's own, sent into the host port, is dropped
   * (hairpin: it would only come back).
   */
  private toOwnTunnelAddress(i: number, inPort: number, ip: number): number {
    const b = this.b;
    const tr = this.p.tr;
    if (inPort >= 0 && this.p.hostSees[inPort] === 1) {
      if (tr !== null) tr.stages.push(`this node's tunnel address: the node's kernel has the frame`);
      return this.count(Event.TO_HOST, HOST);
    }
    const host = this.p.hostPort;
    if (inPort >= 0 && inPort === host) return this.drop(Reason.HAIRPIN);
    // a worker without the host port (worker 0's): the node's routing delivers it locally (tx6)
    const out = host >= 0 ? host : this.tx6Port;
    if (out < 0) return this.drop(Reason.NO_ROUTE);
    this.setFrame(i, ip, IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]));
    if (tr !== null) tr.stages.push(`this node's tunnel address: ${out === host ? 'into the host port' : "to the node's stack (tx6)"}`);
    return this.count(Event.TO_HOST, out);
  }

  /**
   * A pod's packet for no pod route, as IPv4's noRouteFromPod: this node's own IPv6 address goes to
   * the node's stack (a veth pod's frame already reached it; a tap/tun pod's goes into the host
   * port); a pool address without a route is dropped (no_route); anything else, another node's own
   * IPv6 address or an address outside every pool, leaves through the node's routing (tx6,
   * unencapsulated), masqueraded to the node's address by the kernel when its pool has natOutgoing
   * (to another node's address: a connection the pod opens, and only with natOutgoingExclusions
   * IPPoolsOnly; table ip6 podway, nft-nat.ts natSelectors). Replies come back to the
   * pod's address (another node's through its pool route and its podway; the outside's on the
   * underlay, or translated back and copied into podway0 by the NAT table). Without the raw socket
   * it is ICMPv6 unreachable, no_route.
   */
  private noRouteFromPod(i: number, inPort: number, ip: number): number {
    const b = this.b;
    const tr = this.p.tr;
    if (this.hasNodeIp6 && this.isNodeIp6(ip + 24)) {
      if (this.p.hostSees[inPort] === 1) {
        if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: this node's address: the node's kernel has the frame`);
        return this.count(Event.TO_HOST, HOST);
      }
      const host = this.p.hostPort;
      if (host < 0 || host === inPort) return this.drop(Reason.NO_ROUTE);
      this.setFrame(i, ip, IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]));
      if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: this node's address: into the host port`);
      return this.count(Event.TO_HOST, host);
    }
    // another address of the node: a veth pod's frame is the kernel's to deliver (pipeline.ts)
    if (this.p.hostSees[inPort] === 1 && this.local6.has(b, ip + 24)) {
      if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: an address of this node (its local table): the node's kernel has the frame`);
      return this.count(Event.TO_HOST, HOST);
    }
    if (this.pools6.has(b, ip + 24)) {
      if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: in a pool but no route`);
      return this.drop(Reason.NO_ROUTE);
    }
    if (this.tx6Port >= 0) {
      // Loopback, unspecified, link-local, IPv4-mapped: the node's routing would keep it (::1 to
      // the node's loopback services), never send it off the box (src/packet/martian.ts).
      if (isMartianDst6(b, ip + 24)) {
        if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: never routed off the box (martian destination): not handed to the node's routing`);
        return this.icmpError(i, inPort, ip, ICMPV6_DEST_UNREACH, ICMPV6_NO_ROUTE, 0, Reason.MARTIAN_DST);
      }
      if (b[ip + 7] <= 1) return this.icmpError(i, inPort, ip, ICMPV6_TIME_EXCEEDED, ICMPV6_HOP_LIMIT_EXCEEDED, 0, Reason.TTL_EXPIRED);
      const total = IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]);
      // IPv6 is never fragmented on the way: too big for the underlay is Packet Too Big to the pod
      // (counted frag_needed), not a send the kernel refuses (it checks the output device's MTU;
      // the underlay's stands for it, the device of the node's routes to nodes and, usually, out).
      if (total > this.tx6Mtu) {
        if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: through the node's routing (tx6), ${total} bytes > underlay mtu ${this.tx6Mtu}`);
        return this.icmpError(i, inPort, ip, ICMPV6_PACKET_TOO_BIG, 0, this.tx6Mtu, Reason.FRAG_NEEDED);
      }
      b[ip + 7]--;
      this.setFrame(i, ip, total);
      const nat = this.natSources6.has(b, ip + 8);
      if (this.isKnownNode6(ip + 24)) {
        // natOutgoingExclusions IPPoolsOnly (natToNodes): masqueraded as outside, the connections the
        // pod opens (table ip6 podway, nft-nat.ts natSelectors); IPPoolsAndHostIPs: the pod's address
        const natNode = nat && this.p.natToNodes;
        if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: another node's address: through the node's routing (tx6, ${natNode ? 'natOutgoing: a TCP connection or ping the pod opens is masqueraded to the node\'s address by the kernel, table ip6 podway' : 'no NAT'})`);
        // egress, not egress_nat: which of these the table masquerades a packet alone does not tell
        return this.count(Event.EGRESS, this.tx6Port);
      }
      if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: outside the pools: through the node's routing (tx6, ${nat ? 'natOutgoing: masqueraded to the node\'s address by the kernel, table ip6 podway' : 'no NAT'})`);
      return this.count(nat ? Event.EGRESS_NAT : Event.EGRESS, this.tx6Port);
    }
    if (tr !== null) tr.stages.push(`lookup ${formatIpv6(b, ip + 24)}: no route`);
    return this.icmpError(i, inPort, ip, ICMPV6_DEST_UNREACH, ICMPV6_NO_ROUTE, 0, Reason.NO_ROUTE);
  }

  /** Prepends the underlay Ethernet header (to the neighbour's MAC, zeros while it is unresolved;
   * from our NIC) to the IPv6 packet at `start`. */
  private toUnderlay(i: number, nh: number, start: number, len: number): number {
    const b = this.b;
    const nhs = this.nh!;
    const e = start - ETH_HLEN;
    const u = this.p.addr.underlayMac;
    const m = nhs.macKnown[nh] === MAC_KNOWN ? nh * 6 : -1;
    for (let k = 0; k < 6; k++) { b[e + k] = m < 0 ? 0 : nhs.mac[m + k]; b[e + 6 + k] = u[k]; }
    b[e + 12] = 0x86; b[e + 13] = 0xdd;
    this.setFrame(i, e, len + ETH_HLEN);
    return this.p.underlayPort;
  }

  /**
   * Next hop nh's underlay neighbour is being resolved: the frame (descriptor i, ready but for
   * its destination MAC) is held for it (pipeline.ts hold), keyed by the neighbour's id in the
   * engine's Neighbors6 (`neighborId`), or dropped as `neighbor_table_full` when the table does
   * not track it (its size bound refused it: nobody asks for its MAC, so holding would only delay
   * the loss), or as `neighbor_unresolved` when the engine does not want it at all (a next hop of
   * a model its neighbour table has not been given yet).
   */
  private holdFor(i: number, inPort: number, nh: number): number {
    // the underlay neighbour: the node on our link, else the gateway towards it (nexthops6.ts gw6)
    const id = this.neighborId(this.nh!.gw6, nh * 16);
    if (id < 0) return this.drop(Reason.NEIGHBOR_TABLE_FULL);
    // not (yet) a neighbour the engine wants: nobody asks for it, so it cannot be held
    if (id === 0) return this.drop(Reason.NEIGHBOR_UNRESOLVED);
    return this.p.hold(i, inPort, FAMILY_V6, id);
  }

  // ---- what podway answers itself ---------------------------------------------------------------

  /** fromUnderlay's answer to a solicitation for the node's address its kernel no longer holds (see there). */
  private nodeSolicit(i: number, f: number, ip: number, end: number): number {
    const b = this.b;
    const icmp = ip + IPV6_HEADER_LEN;
    if (validateIcmpv6(b, ip, icmp, end - icmp) !== Drop.OK || validateNdp(b, ip, icmp, end - icmp) !== Drop.OK) return this.count(Drop.BAD_NDP, HOST);
    // DAD (from ::) is not answered
    let unspecified = true;
    for (let k = 8; k < 24; k++) if (b[ip + k] !== 0) { unspecified = false; break; }
    if (unspecified) return HOST;
    // to the target itself, or to its solicited-node group ff02::1:ffXX:XXXX
    let toTarget = true;
    for (let k = 0; k < 16; k++) if (b[ip + 24 + k] !== b[icmp + 8 + k]) { toTarget = false; break; }
    if (!toTarget) {
      if (b[ip + 24] !== 0xff || b[ip + 25] !== 0x02 || b[ip + 35] !== 1 || b[ip + 36] !== 0xff) return HOST;
      for (let k = 26; k < 35; k++) if (b[ip + k] !== 0) return HOST;
      if (b[ip + 37] !== b[icmp + 21] || b[ip + 38] !== b[icmp + 22] || b[ip + 39] !== b[icmp + 23]) return HOST;
    }
    // sent to this NIC, or to a multicast MAC (another host's unicast copy, seen promiscuously, is not ours)
    const u = this.p.addr.underlayMac;
    if ((b[f] & 1) === 0) for (let k = 0; k < 6; k++) if (b[f + k] !== u[k]) return HOST;
    if (this.p.trace !== null) this.traceNdp(this.p.underlayPort, ip, `ndp neighbor solicitation for ${formatIpv6(b, icmp + 8)} (the node's address, no longer the kernel's) from ${formatIpv6(b, ip + 8)}: answered with the underlay's MAC`);
    this.setFrame(i, f, answerNeighborSolicitInPlace(b, f, icmp, end - icmp, u, 0, false));
    return this.count(Event6.NDP_REPLIED, this.p.underlayPort);
  }

  private podNdp(i: number, port: number, f: number, ip: number, icmp: number, len: number): number {
    const b = this.b;
    const c = validateIcmpv6(b, ip, icmp, len);
    if (c !== Drop.OK) return this.drop(c);
    const v = validateNdp(b, ip, icmp, len);
    if (v !== Drop.OK) return this.drop(v);
    const type = b[icmp];
    if (type === ICMPV6_NEIGHBOR_SOLICIT) {
      let gw = true;
      for (let k = 0; k < 16; k++) if (b[icmp + 8 + k] !== GATEWAY_IP6[k]) { gw = false; break; }
      if (!gw) return this.drop(Reason6.NDP_NOT_GATEWAY);
      // A veth pod's: the gateway's address is the host end's own link-local (the kernel makes it
      // from ee:ee:ee:ee:ee:ee), so the node's kernel, which has the frame too, answers it, as on a
      // Calico node (flagged router: podway sets the host end's IPv6 forwarding=1, as Felix does,
      // host.ts quietKernelOn). Answering here too sent the pod two advertisements for each
      // solicitation. A TAP pod's reaches podway alone: answered here.
      if (this.p.hostSees[port] === 1) {
        if (this.p.trace !== null) this.traceNdp(port, ip, `ndp neighbor solicitation for ${formatIpv6(GATEWAY_IP6)} from ${formatIpv6(b, ip + 8)}: the veth host end's own address: the node's kernel answers it`);
        return this.count(Event.TO_HOST, HOST);
      }
      if (this.p.trace !== null) this.traceNdp(port, ip, `ndp neighbor solicitation for ${formatIpv6(GATEWAY_IP6)} from ${formatIpv6(b, ip + 8)}: answered ee:ee:ee:ee:ee:ee (router)`);
      this.setFrame(i, f, answerNeighborSolicitInPlace(b, f, icmp, len, GATEWAY_MAC6, 0, true));
      return this.count(Event6.NDP_REPLIED, port);
    }
    if (type === ICMPV6_ROUTER_SOLICIT) {
      if (this.p.trace !== null) this.traceNdp(port, ip, `ndp router solicitation from ${formatIpv6(b, ip + 8)}: answered with an RA (mtu ${this.podMtu})`);
      this.setFrame(i, f, answerRouterSolicitInPlace(b, f, icmp, len, GATEWAY_IP6, 0, GATEWAY_MAC6, 0, this.podMtu));
      return this.count(Event6.NDP_REPLIED, port);
    }
    // Advertisements, RAs and redirects from a pod are not ours to act on (validateNdp passed
    // types 133-137 only: RS and NS are answered above).
    return this.drop(type === ICMPV6_NEIGHBOR_ADVERT ? Reason6.NDP_ADVERT_FROM_POD : Reason6.NDP_ROUTER_MSG_FROM_POD);
  }

  /**
   * Turns the packet into an ICMPv6 error back to the pod on `inPort` (counted under `reason`),
   * from this node's IPv6 address (or the gateway's link-local address when the node has none).
   * Into the host port (the node's own packet: Packet Too Big) it comes from the packet's
   * destination, as IPv4's (Pipeline.icmpError): an address the node routes into podway0, never
   * its own, which a reverse-path check on podway0 (nftables `fib saddr . iif`, firewalld's IPv6
   * rpfilter) would refuse as the source of a packet arriving there.
   */
  private icmpError(i: number, inPort: number, ip: number, type: number, code: number, word32: number, reason: number): number {
    const b = this.b;
    const r = this.p.role[inPort];
    const toHost = r === ROLE_HOST_TUN && !isMartianDst6(b, ip + 24);
    if (this.p.tr !== null) this.p.tr.stages.push(`${COUNTER_NAMES[reason]}: icmpv6 type ${type} code ${code}${type === ICMPV6_PACKET_TOO_BIG ? ' mtu ' + word32 : ''}${toHost ? ` from ${formatIpv6(b, ip + 24)}` : ''} back to ${this.p.portName[inPort]}`);
    // (the destination is read where it is: the error's header is written in front of the packet)
    const n = toHost ? this.errorInPlace(i, ip, type, code, word32, reason, true, b, ip + 24) : this.errorInPlace(i, ip, type, code, word32, reason, true);
    if (n < 0) return DROP;
    const total = IPV6_HEADER_LEN + ((b[n + ETH_HLEN + 4] << 8) | b[n + ETH_HLEN + 5]);
    if (r === ROLE_POD_TUN || r === ROLE_HOST_TUN) this.setFrame(i, n + ETH_HLEN, total);
    else {
      for (let k = 0; k < 6; k++) b[n + 6 + k] = 0xee;
      this.setFrame(i, n, total + ETH_HLEN);
    }
    return this.count(Event.ICMP_SENT, inPort);
  }

  /**
   * What both ICMPv6 errors do before they are sent: count `reason`; when the packet may not be
   * answered (an ICMPv6 error itself, a multicast source...; or `may` false) leave it dropped
   * (-1), and when the rate limits hold the error back (not Packet Too Big) dropped as
   * `icmp_ratelimited` (-1); otherwise note it for capture's drop stage as it came, keep segment 0
   * of a super-frame and build the error in place over it, from the node's IPv6 address (the
   * gateway's when the node has none) unless `src` (at srcOff) says otherwise. Returns where the
   * error's Ethernet header starts.
   */
  private errorInPlace(i: number, ip: number, type: number, code: number, word32: number, reason: number, may: boolean, src: Uint8Array | null = null, srcOff = 0): number {
    const b = this.b;
    this.p.counters[reason]++;
    const l4 = this.walk[2] === 0 ? this.walk[1] : -1;
    if (!may || !mayReplyWithIcmpv6Error(b, ip, this.walk[0], l4)) {
      this.p.lastDrop = reason; // counted above
      return -1;
    }
    // the kernel's rate limits (icmp-ratelimit.ts), on every error but Packet Too Big, per
    // destination (the packet's source) and globally
    if (type !== ICMPV6_PACKET_TOO_BIG && !this.p.icmpLimit.allow6(b, ip + 8, this.p.batchNow())) {
      this.p.counters[Reason.ICMP_RATELIMITED]++;
      this.p.lastDrop = Reason.ICMP_RATELIMITED;
      if (this.p.tr !== null) this.p.tr.stages.push('drop: icmp_ratelimited');
      return -1;
    }
    const cap = this.p.capture;
    if (cap !== null) cap.noteError(i, reason);
    this.p.superToOne(i, reason);
    if (src !== null) return buildIcmpv6ErrorInPlace(b, ip - ETH_HLEN, type, code, word32, src, srcOff, 64);
    return buildIcmpv6ErrorInPlace(b, ip - ETH_HLEN, type, code, word32, this.hasNodeIp6 ? this.nodeIp6 : GATEWAY_IP6, 0, 64);
  }

  /**
   * An ICMPv6 error for a packet that came from another node (a tunnel, the underlay) or the host
   * (counted under `reason`): its sender is elsewhere, so the error is built in place from this
   * node's IPv6 address and routed like any packet, as the node's kernel would send it (IPv4:
   * Pipeline.icmpErrorRouted); to a sender without a pod or node route, through the node's routing
   * (tx6). No node IPv6 address, or no way back: dropped, counted (icmp_sent counts only errors
   * that go or wait for their neighbour). Back through an IPv6 VXLAN tunnel its source is the
   * node's IPv6 VXLAN tunnel address (`vxlan-v6.calico`'s on a Calico node), as IPv4's.
   */
  private icmpErrorRouted(i: number, ip: number, type: number, code: number, word32: number, reason: number): number {
    const b = this.b;
    const nhs = this.nh;
    // the way back to the sender (the packet's source) decides the error's source
    const back = nhs === null ? NO_ROUTE : nhs.fib.lookup(word(b, ip + 8), word(b, ip + 12), word(b, ip + 16), word(b, ip + 20));
    const viaTunnel = back !== NO_ROUTE && nhs!.kind[back] === NhKind.VXLAN && this.hasVxlanTunnelIp6;
    // Never to a martian sender (link-local, IPv4-mapped, loopback), which tx6 has no way to:
    // counted under its reason only, not built (before: built, then dropped no_route too).
    const may = this.hasNodeIp6 && !isMartianDst6(b, ip + 8);
    const n = viaTunnel ? this.errorInPlace(i, ip, type, code, word32, reason, may, this.vxlanTunnelIp6, 0) : this.errorInPlace(i, ip, type, code, word32, reason, may);
    if (n < 0) return DROP;
    const eip = n + ETH_HLEN;
    const what = `${COUNTER_NAMES[reason]}: icmpv6 type ${type} code ${code}${type === ICMPV6_PACKET_TOO_BIG ? ' mtu ' + word32 : ''} from ${formatIpv6(b, eip + 8)}`;
    if (nhs !== null && back === NO_ROUTE) {
      // A sender neither pod nor node (a ToR, a client outside the cluster in direct/BGP mode, a
      // traceroute from the fabric): the node's routing has the way back, as for Calico's kernel
      // (IPv4: Pipeline.icmpErrorRouted). (A martian sender got none: `may` above.)
      if (this.tx6Port < 0) return this.drop(Reason.NO_ROUTE);
      this.setFrame(i, eip, IPV6_HEADER_LEN + ((b[eip + 4] << 8) | b[eip + 5]));
      this.p.counters[Event.ICMP_SENT]++;
      if (this.p.tr !== null) this.p.tr.stages.push(`${what}: to ${formatIpv6(b, eip + 24)} through the node's routing (tx6)`);
      return this.tx6Port;
    }
    if (this.p.tr !== null) this.p.tr.stages.push(`${what}: routed back to the sender`);
    const out = this.route(i, -1, eip, false, true);
    // counted once it goes (or waits for its neighbour), not when a route drops it
    if (out !== DROP) this.p.counters[Event.ICMP_SENT]++;
    return out;
  }

  /** The pod left its TCP/UDP checksum to offload: the field holds the pseudo-header sum. */
  private completeL4Checksum(ip: number): boolean {
    const b = this.b;
    const proto = this.walk[0];
    if (this.walk[2] !== 0) return false;
    const at = proto === IPPROTO_TCP6 ? 16 : proto === IPPROTO_UDP6 ? 6 : -1;
    const l4 = this.walk[1];
    const l4len = ip + IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5]) - l4;
    if (at < 0 || l4len < at + 2) return false;
    let s = 0;
    for (let k = 0; k + 1 < l4len; k += 2) s += (b[l4 + k] << 8) | b[l4 + k + 1];
    if ((l4len & 1) !== 0) s += b[l4 + l4len - 1] << 8;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    let c = ~s & 0xffff;
    if (c === 0 && proto === IPPROTO_UDP6) c = 0xffff;
    b[l4 + at] = c >>> 8;
    b[l4 + at + 1] = c & 255;
    return true;
  }

  // ---- helpers -----------------------------------------------------------------------------------

  /** Inner flow hash for the outer UDP source port: addresses folded to a word each (ordered, so
   * both directions agree), the upper protocol and, for TCP/UDP, the ports. */
  private flowHash(ip: number): number {
    const b = this.b;
    let s = (word(b, ip + 8) ^ word(b, ip + 12) ^ word(b, ip + 16) ^ word(b, ip + 20)) >>> 0;
    let d = (word(b, ip + 24) ^ word(b, ip + 28) ^ word(b, ip + 32) ^ word(b, ip + 36)) >>> 0;
    if (d < s) { const t = s; s = d; d = t; }
    const proto = this.walk[0];
    let ports = 0;
    if ((proto === IPPROTO_TCP6 || proto === IPPROTO_UDP6) && this.walk[2] === 0) {
      const l4 = this.walk[1];
      const sp = (b[l4] << 8) | b[l4 + 1];
      const dp = (b[l4 + 2] << 8) | b[l4 + 3];
      ports = sp < dp ? ((sp << 16) | dp) >>> 0 : ((dp << 16) | sp) >>> 0;
    }
    const h = jhash3(d, (s ^ proto) >>> 0, ports, this.flowSeed);
    return h === 0 ? 1 : h;
  }

  private isGateway6(a: number): boolean {
    for (let k = 0; k < 16; k++) if (this.b[a + k] !== GATEWAY_IP6[k]) return false;
    return true;
  }

  private isNodeIp6(a: number): boolean {
    for (let k = 0; k < 16; k++) if (this.b[a + k] !== this.nodeIp6[k]) return false;
    return true;
  }

  private setFrame(i: number, start: number, len: number): void {
    const pool = this.p.pool;
    // A super-frame's other segments change by as much as segment 0 does (pipeline.ts setFrame).
    if ((pool.flags[i] & DescFlag.SUPER) !== 0) pool.more[i] += (pool.segs[i] - 1) * (len - pool.len[i]);
    pool.off[i] = start - (pool.slot[i] << SLOT_SHIFT);
    pool.len[i] = len;
  }

  private drop(reason: number): number {
    this.p.counters[reason]++;
    this.p.lastDrop = reason;
    if (this.p.tr !== null) this.p.tr.stages.push(`drop: ${COUNTER_NAMES[reason] ?? reason}`);
    return DROP;
  }

  /**
   * Drops `reason` an IPv6 VXLAN packet from the underlay whose outer IPv6 header is at `ip`,
   * dropped before decapsulation: traced by that outer header (when a trace is on and matches).
   */
  private traceOuterDrop(ip: number, reason: number): number {
    if (this.p.trace !== null && ipv6WalkExtHeaders(this.b, ip, this.walk) === Drop.OK) {
      this.startTrace(ip, -1);
      if (this.p.tr !== null) this.p.tr.stages.push(`vxlan (underlay port): outer ${formatIpv6(this.b, ip + 8)} (${this.isKnownNode6(ip + 8) ? 'known node' : 'not a known node'})`);
    }
    return this.drop(reason);
  }

  /** Opens the trace record of the IPv6 packet at `ip` (walked) when it matches the filter. */
  private startTrace(ip: number, port: number): void {
    const b = this.b;
    const w = this.walk;
    if (!traceMatches6(this.p.trace!.filter, b, ip, w[0], w[2] === 0 ? w[1] : -1)) return;
    const ext = w[1] - ip - IPV6_HEADER_LEN;
    this.p.tr = {
      at: new Date().toISOString(),
      ingress: this.p.ingressName(port),
      stages: [`ipv6 ${formatIpv6(b, ip + 8)} -> ${formatIpv6(b, ip + 24)} next header ${w[0]} len ${IPV6_HEADER_LEN + ((b[ip + 4] << 8) | b[ip + 5])} hop limit ${b[ip + 7]}: valid (version, length${ext > 0 ? `, ${ext} bytes of extension headers` : ''})`],
    };
  }

  /** A trace record for an NDP message answered for the gateway, as ARP gets one. */
  private traceNdp(port: number, ip: number, what: string): void {
    const t = this.p.trace;
    if (t === null || !traceMatches6(t.filter, this.b, ip, IPPROTO_ICMPV6, -1)) return;
    t.add({ at: new Date().toISOString(), ingress: this.p.portName[port], stages: [what] });
    if (t.full) this.p.trace = null;
  }

  private count(ev: number, verdict: number): number {
    this.p.counters[ev]++;
    return verdict;
  }
}

function word(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** For `podway routes` and trace: a next hop's description. */
export function describeNextHop6(nhs: NextHops6, nh: number): string {
  const r = nhs.routes[nh];
  const via = r.nodeIp6 ? ` via ${r.nodeIp6}` : '';
  return `${r.cidr} ${NH_KIND_NAMES[nhs.kind[nh]]}${via}${r.kind === 'vxlan' ? ` vni ${nhs.vni}` : ''}`;
}


/** ` (gateway GW)` when next hop nh's underlay neighbour is not the node itself (a node off our
 * link: nexthops6.ts gw6), else ''; trace only. */
export function gatewayText6(nhs: NextHops6, nh: number): string {
  const gw = formatIpv6(nhs.gw6, nh * 16);
  return gw === formatIpv6(nhs.ip6, nh * 16) ? '' : ` (gateway ${gw})`;
}
