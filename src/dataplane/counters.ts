/**
 * Drop and event counters of the forwarding engine. Validation drop reasons come from
 * src/packet/drop.ts; the engine's own reasons follow them in one numbering, so one Float64Array
 * indexed by reason holds every counter and the hot path only does `drops[r]++`.
 *
 * A reason added here gets its row in docs/observability.md, "Drop and event reasons" (name, index,
 * drop or event, what it means, the Calico/kernel equivalent): test/docs/reasons.test.ts fails,
 * naming the row to write, until it has one.
 */
import { DROP_NAMES, DROP_REASON_COUNT } from '../packet';

const base = DROP_REASON_COUNT;

/** Why the engine dropped (or diverted) a frame, beyond header validation. */
export const Reason = {
  /** Source address is not one of the sending endpoint's addresses (Calico's anti-spoofing). */
  SOURCE_CHECK: base + 0,
  /** No route covers the destination (and it is not for the host). */
  NO_ROUTE: base + 1,
  /** Destination inside one of this node's blocks but not allocated: Calico's blackhole route. */
  BLACKHOLE: base + 2,
  /** TTL would reach 0: answered with ICMP time exceeded. */
  TTL_EXPIRED: base + 3,
  /** DF packet larger than the path MTU: answered with ICMP fragmentation needed. */
  FRAG_NEEDED: base + 4,
  /** Packet without DF larger than the path MTU that podway cannot fragment (a TCP super-frame,
   * an MTU leaving under 8 data bytes after the header, more than FRAG_DESCS fragments); the
   * others are fragmented (`fragmented`). */
  TOO_BIG_NO_DF: base + 5,
  /** Tunnel packet from an address that is not a known cluster node. */
  UNKNOWN_TUNNEL_SOURCE: base + 6,
  /** Decapsulated packet not for a workload on this node. */
  DECAP_NOT_LOCAL: base + 7,
  /** ARP from a pod that is not a request for the gateway 169.254.1.1 (not answered). */
  ARP_NOT_GATEWAY: base + 8,
  /** Frame type podway does not forward (IPv6, VLAN, ...). */
  UNSUPPORTED_ETHERTYPE: base + 9,
  /** Next hop through an underlay neighbour whose MAC is being resolved (ARP/NDP asked), and the
   * packet could not be held for it: a GSO super-frame, or a pipeline without a pending queue
   * (neighbor-queue.ts), or an IPv6 next hop the engine's neighbour table has not been given yet
   * (a model change under way); a neighbour the table refused to track is `neighbor_table_full`. The
   * engine holds the others (`neighbor_queued`) instead of dropping them. */
  NEIGHBOR_UNRESOLVED: base + 10,
  /** Local destination whose pod MAC is not known yet (it has sent nothing). */
  POD_MAC_UNKNOWN: base + 11,
  /** Frame cut by the kernel or the slot (bigger than the slot). */
  TRUNCATED: base + 12,
  /** Frame not addressed to us at L2 (another host's unicast). */
  NOT_OUR_MAC: base + 13,
  /** Underlay frame not for a pod here (the host kernel handles it). */
  UNDERLAY_NOT_FOR_PODS: base + 14,
  /** Would go out the port it came in on (a routing loop). */
  HAIRPIN: base + 15,
  /** Could not fix up a partial (offloaded) L4 checksum. */
  BAD_PARTIAL_CSUM: base + 16,
  /** The output port refused a whole send call (device gone, bad descriptor): frames lost there. */
  TX_ERROR: base + 17,
  /** Next hop through an underlay neighbour (ARP or NDP) whose probes went unanswered (FAILED):
   * dropped until it answers again (re-probed with back-off, src/dataplane/neighbors.ts). */
  NEIGHBOR_FAILED: base + 28,
  /** Not held for an unresolved neighbour: its share of the pending queue (3 packets) or the
   * whole queue (64 per worker) was full (neighbor-queue.ts). */
  NEIGHBOR_QUEUE_FULL: base + 29,
  /** Held for a neighbour that did not answer: dropped when it turned FAILED, or after the hold
   * limit (its round of probes plus two neighbour ticks; a neighbour no route uses any more is
   * never answered for, and its packets go this way). */
  NEIGHBOR_QUEUE_TIMEOUT: base + 30,
  /** Next hop through an underlay neighbour the neighbour table refused to track (full: 4,096
   * entries per family): nobody asks for its MAC, so its packets (IPv4 direct routes, IPv6 VXLAN
   * and direct routes) are dropped at once instead of held until the hold limit. IPv4 VXLAN/IPIP
   * to such a neighbour go through the kernel's raw socket instead (not counted here). */
  NEIGHBOR_TABLE_FULL: base + 33,
  /** A pod's packet, outside every pool, for an address a node never routes off the box
   * (src/packet/martian.ts: loopback, unspecified, multicast/broadcast, reserved; IPv6 also
   * link-local and IPv4-mapped): not handed to the node's routing (tx4/tx6), which would deliver
   * it to the node's own loopback services. Answered with ICMP/ICMPv6 unreachable (not for
   * multicast or broadcast). */
  MARTIAN_DST: base + 34,
  /** The output port's kernel refused the frame for itself after podway handed it over: at once
   * (EMSGSIZE, ENETUNREACH, ...) or, refused with ENOBUFS every time, after a few retries at the
   * head of the port's transmit backlog (a frame bigger than a pod's own MTU, which its veth
   * drops): dropped so the frames behind it go on (native/README.md). Counted when the engine
   * reads the port's stats (once per neighbour tick, and for `podway counters`). */
  TX_REJECTED: base + 35,
  /** An ICMP/ICMPv6 error podway would have sent (time exceeded, destination unreachable: for
   * ttl_expired, martian_dst, no_route) was not, held back by the rate limits the kernel applies to
   * its own (icmp-ratelimit.ts: 50 at once then 1,000/s per worker, and per destination 6 at once
   * then 1/s for IPv4, 10/s for IPv6): the offending frame is dropped under this reason, and counted
   * under its own too. Fragmentation needed / Packet Too Big are never limited. */
  ICMP_RATELIMITED: base + 39,
  /** The output port's transmit path could not take the frame: the kernel refused it for a full
   * queue and the port's backlog was full too (TXQ_MAX_FRAMES entries, native/README.md; the
   * port's txFull), or (not expected) a super-frame's segment its descriptor no longer held
   * (txSuperLost). Counted as the send returns, in the port's DROPS too. */
  TX_FULL: base + 40,
  /** A tunnel packet (VXLAN over IPv4 or IPv6, IPIP) of a mode no IP pool of its family uses: Calico
   * has no vxlan.calico / vxlan-v6.calico / tunl0 device then, and the node's kernel does not
   * decapsulate it. Checked before the sender (unknown_tunnel_source). Around a pool's mode switch,
   * packets of the old mode still in flight (or sent by nodes that switch later) are dropped so. */
  TUNNEL_MODE_UNUSED: base + 41,
  /** A VXLAN packet (over IPv4 or IPv6) whose inner Ethernet destination is not this node's VTEP MAC
   * (the family's: the Node's vxlanTunnelMACAddr / vxlanTunnelMACAddrV6), broadcast and multicast
   * included, or whose inner source is that MAC: Calico's vxlan.calico takes a frame for another
   * MAC as PACKET_OTHERHOST, which the kernel drops, forwards only frames for its own MAC, and drops
   * its own MAC as a source as a loop (packet/vxlan.ts vxlanInnerMacOk). */
  VXLAN_INNER_MAC: base + 42,
  /** A tunnel packet whose outer header is marked CE (congestion experienced) around an inner
   * packet that is not ECN-capable (Not-ECT): RFC 6040 section 4.2 drops it, as Linux's vxlan and
   * ipip do (their rx_frame_errors), since the congestion signal cannot be passed on. */
  TUNNEL_ECN_NOT_ECT: base + 43,
  /** A pod's own VXLAN (UDP to the VXLAN port: 4789 unless vxlanPort says otherwise) or IP-in-IP (protocol 4) packet, IPv4 or IPv6, to any
   * destination: Felix drops both in every workload's from-chain ("Drop VXLAN/IPinIP encapped
   * packets originating in workloads") unless FelixConfiguration allowVXLANPacketsFromWorkloads /
   * allowIPIPPacketsFromWorkloads (podway: --allow-vxlan-from-pods, --allow-ipip-from-pods, or the
   * same FELIX_ variables). Without it a pod could hand a node a tunnel packet carrying a forged
   * inner source. Only a datagram's first fragment can be told by its port: later ones pass, and
   * the receiver, without the first, never reassembles them. */
  ENCAP_FROM_POD: base + 44,
  /** An IPv4 packet from the underlay (decapsulated from VXLAN or IPIP, or unencapsulated) for a
   * pod or a tunnel address here whose source is this node's own: one of its addresses (the node's,
   * its tunnel addresses, any of its local table) or an address its routes keep here (a local pod's,
   * or an unallocated one of its own blocks). No other node sends one; Calico's kernel drops it in
   * its source validation (fib_validate_source: a local source is a martian source whatever
   * rp_filter says; one routed back through another interface fails strict reverse-path
   * filtering, rp_filter 1). IPv4 only: the kernel validates no IPv6 source so. */
  OWN_SOURCE: base + 45,
  /** A packet from another node (decapsulated from VXLAN or IPIP, IPv4 or IPv6, or unencapsulated
   * from the underlay) whose source no node sends from, which Linux refuses on any input device
   * (src/packet/martian.ts isMartianSrc4 / isMartianSrc6): IPv4 0.0.0.0, 127/8, 224/4 multicast,
   * 255.255.255.255; IPv6 ::, ::1, ff00::/8, fe80::/10. Checked first, before the destination. */
  MARTIAN_SRC: base + 46,
  /** An IPv4 packet decapsulated from VXLAN or IPIP whose source's route back does not leave
   * through that tunnel (a pod of an IPIP pool in VXLAN, an address routed unencapsulated over the
   * underlay, one no pod route holds), while the node's reverse-path filtering on the tunnel device
   * is strict: net.ipv4.conf.{all,default}.rp_filter, whose larger value vxlan.calico and tunl0 have
   * on a Calico node (Felix sets rp_filter on cali interfaces only), read at start (Pipeline.rpFilter). */
  REVERSE_PATH: base + 47,
  /** An 802.1Q or 802.1ad (VLAN-tagged) frame, from a pod or the underlay: podway forwards no VLAN,
   * and a Calico node's kernel drops a tagged frame on a link without a VLAN device for its ID. The
   * kernel takes the tag off before podway reads the frame (into its metadata, TP_STATUS_VLAN_VALID),
   * so the addon drops it as it reads (native/ports.c, the port's rxVlanTagged) and the engine counts
   * it here and in the port's DROPS when it reads the port's stats (once per neighbour tick, and
   * for `podway counters`/metrics). */
  VLAN_TAGGED: base + 48,
  /** A frame with a virtio-net header (a pod's veth, the underlay with offloads) whose offload
   * metadata or headers do not hold together, dropped by the addon as it reads (native/gso.c, the
   * port's rxGsoBad): a TCP gso_size under the pod floor (POD_GSO_MIN: thousands of segments from one
   * frame), lengths that lie, GSO on a fragment, UDP GSO over the kernel's 128 segments, a GSO type
   * that is not the packet's protocol. Partial checksum offsets that lie are bad_partial_csum (the
   * port's rxBadCsum). Counted here and in the port's DROPS when the engine reads the port's stats
   * (as vlan_tagged). */
  GSO_BAD: base + 49,
  /** A well-formed super-frame podway does not segment, dropped by the addon as it reads (the
   * port's rxGsoDropped): IPv6 with extension headers, UFO, a VLAN tag in the frame, a segment
   * larger than a pool slot, a tunnel other than VXLAN or IPIP. Counted as gso_bad is. */
  GSO_UNSUPPORTED: base + 50,
  /** An ARP reply from a pod for the gateway (169.254.1.1) podway did not ask for: none sent to that
   * pod in the last 10 s (POD_ARP_ANSWER_MS), or already answered. Nothing is learned from it beyond
   * what any frame of the pod teaches (its source MAC). The answer to podway's request is the event
   * arp_learned. */
  ARP_REPLY_UNSOLICITED: base + 51,
  /** A TUN/TAP read failed for one packet (EFAULT/EINVAL: how older kernels answer a packet longer
   * than the pool slot; 6.18 cuts it instead, `truncated`): that packet is gone, no descriptor shows
   * it (native/ports.c recv_fd_loop, the port's rxReadFailed). Counted as vlan_tagged is. */
  READ_FAILED: base + 52,
  /** Frames waiting in a port's transmit backlog (the kernel had refused them for a full queue),
   * discarded with it: the port's socket failed (a poll error: its device went away or down), no
   * poll handle could watch it, or the port was closed (its pod deleted, the node stopping). The
   * port's txBacklogDropped, and the backlog a port held when the engine closed it. */
  TX_BACKLOG_DROPPED: base + 53,
  /** VXLAN to the node on the previous run's vxlanPort (vxlanPort changed between two runs; nodes
   * not moved yet still send there), dropped by the node's kernel in podway's tunnel table (its
   * `vxlan_old_port` counter, nft-tunnels.ts), never answered port unreachable, for this run's life.
   * No forwarding thread sees these: the main thread reads the table's counter (observe/nft-cache.ts, at most 2 s old)
   * for `podway counters` and /metrics (observe/tunnel-drops.ts), and adds it to their sums. */
  VXLAN_OLD_PORT: base + 54,
} as const;

/** Not drops: frames handed to the host kernel or answered by podway itself. */
export const Event = {
  TO_HOST: base + 18,
  ARP_REPLIED: base + 19,
  ICMP_SENT: base + 20,
  ARP_LEARNED: base + 21,
  /** Pod traffic to outside the pools, handed to the node's routing, that is not egress_nat: from a
   * pool without natOutgoing, or to another node's address (of which, with Felix's IPPoolsOnly, the
   * NAT table masquerades the connections a natOutgoing pod opens: its nat_out counter counts those). */
  EGRESS: base + 22,
  /** A tunnelled TCP/UDP packet whose checksum field held its pseudo-header sum, completed: a
   * partial (offloaded) checksum from a same-host kernel node, or one right checksum in about
   * 65,536 that happens to match (completing it leaves it as it was). */
  CSUM_COMPLETED: base + 23,
  /** Pod egress from a natOutgoing pool to an address outside every pool and every node: handed to
   * the node's routing, where podway's nftables table masquerades it (nft-nat.ts), every packet.
   * To another node's address (Felix's IPPoolsOnly) the table masquerades only the connections the
   * pod opens (TCP, pings: their every packet), a UDP datagram or a reply to a connection the node
   * opened keeping the pod's address; a packet alone does not say which, so those are counted
   * `egress`. The table's own counters say what it translated. */
  EGRESS_NAT: base + 27,
  /** Held for an underlay neighbour being resolved (neighbor-queue.ts): sent when it answers
   * (`neighbor_queue_sent`), else dropped (`neighbor_queue_timeout`). */
  NEIGHBOR_QUEUED: base + 31,
  /** Held packets sent once their neighbour answered, with its MAC. */
  NEIGHBOR_QUEUE_SENT: base + 32,
  /** Unsolicited announcements of the gateway sent to the pods when podway starts (Engine.announceGateway):
   * an ARP reply "169.254.1.1 is at ee:ee:ee:ee:ee:ee" to each pod with an IPv4 address, a Neighbor
   * Advertisement for fe80::ecee:eeff:feee:eeee to each with an IPv6 one, so an entry the pod gave
   * up on while podway was stopped (FAILED) works again without its next request. */
  GATEWAY_ANNOUNCED: base + 55,
  /** Pods' packets the kernel refused as too big (EMSGSIZE: the underlay's MTU was lowered under
   * podway) routed again from their pod once the MTU was read again (Pipeline.answerRefused): each
   * also counted as it went then, `frag_needed` (answered) or `too_big_no_df`. */
  TOO_BIG_ANSWERED: base + 56,
  /** Packets for a host port of the node (CNI portMappings, Kubernetes hostPort), copied into
   * podway0 by table ip podway's hostport_raw chain, handed back to the node's kernel through tx4,
   * where its hostport_dnat chain translates them to the pod (docs/cni.md, "Host ports"). */
  HOST_PORT_IN: base + 57,
  /** A pod's packets from the container port of one of its host ports, and every IP fragment of a
   * pod that has a host port (the kernel reassembles them), handed to the node's kernel through tx4
   * or tx6 (whatever the destination), whose conntrack gives replies the host port back. */
  HOST_PORT_REPLY: base + 58,
  /** IPv4 packets without DF bigger than their next hop's MTU, cut into fragments as the kernel's
   * forwarding cuts them (Pipeline.fragmentRouted, packet/fragment.ts): each counted once here,
   * its fragments in `fragments_out`. One that cannot be cut is dropped `too_big_no_df`. */
  FRAGMENTED: base + 59,
  /** The fragments made of the `fragmented` packets (the first included): what left instead of them. */
  FRAGMENTS_OUT: base + 60,
} as const;

/** IPv6 (pipeline6.ts), numbered after the IPv4 ones so those keep their numbers. */
export const Reason6 = {
  /** A Neighbor Solicitation from a pod podway does not answer: one for another address than the
   * gateway's (DAD for its own, another pod's). */
  NDP_NOT_GATEWAY: base + 24,
  /** IPv6 multicast from a pod (MLD reports, ...): podway routes no multicast. */
  MULTICAST6: base + 25,
  /** A Neighbor Advertisement from a pod (its answer to podway's solicitation for its MAC, or an
   * unsolicited one): its source MAC is learned as from any frame of the pod, nothing else is
   * taken from it (no neighbour, route or gateway state changes). */
  NDP_ADVERT_FROM_POD: base + 36,
  /** A Router Advertisement or a Redirect from a pod: the pod acting as a router is not listened
   * to (podway is the pods' only router; nothing is learned from it). */
  NDP_ROUTER_MSG_FROM_POD: base + 37,
  /** IPv6 handed to the node's routing (tx6: pods' IPv6 to other nodes' addresses and outside the
   * pools) that the node's kernel refused while the node's IPv6 address was missing from its
   * underlay link (that link up): its IPv6 routes went with it (a link set down and up flushes
   * IPv6 addresses). What would otherwise be tx6's `tx_rejected` (counted and shown to a drop-stage
   * capture the same way, Engine.checkRejected). */
  NO_NODE_ADDRESS6: base + 38,
} as const;
export const Event6 = {
  /** Neighbor/Router Solicitations from pods answered for the gateway (NA, RA). */
  NDP_REPLIED: base + 26,
} as const;

export const COUNTER_COUNT = base + 61;

export const COUNTER_NAMES: readonly string[] = (() => {
  const names = DROP_NAMES.slice();
  for (const [k, v] of Object.entries(Reason)) names[v] = k;
  for (const [k, v] of Object.entries(Event)) names[v] = k;
  for (const [k, v] of Object.entries(Reason6)) names[v] = k;
  for (const [k, v] of Object.entries(Event6)) names[v] = k;
  return names.map((n) => n.toLowerCase());
})();

/** Index of the first IPv4 event counter (the IPv6 drop reasons, Reason6, come after the events). */
export const FIRST_EVENT = Event.TO_HOST;

/** Per-port counters kept by JS (the addon keeps syscall-level ones). */
export const PortCounter = {
  RX: 0,
  RX_BYTES: 1,
  TX: 2,
  TX_BYTES: 3,
  DROPS: 4,
  /** Send calls the port refused as a whole (its frames are in DROPS). */
  TX_ERRORS: 5,
  /** Receive calls that failed (the port is re-polled after a pause). */
  RX_ERRORS: 6,
} as const;
export const PORT_COUNTERS = 7;

/**
 * Batch-size histograms (frames per receive batch, per send call): bucket k counts batches of
 * 2^(k-1) < n <= 2^k frames (bucket 0: one frame), up to 1024; the slot after the buckets holds
 * the sum of n. One increment per batch, read at scrape time.
 */
export const BATCH_BUCKETS = 11;
export const BATCH_HIST_SIZE = BATCH_BUCKETS + 1;
export const BATCH_SUM = BATCH_BUCKETS;
/** The bucket of a batch of n >= 1 frames: ceil(log2 n). */
export function batchBucket(n: number): number {
  return n <= 1 ? 0 : Math.min(BATCH_BUCKETS - 1, 32 - Math.clz32(n - 1));
}
