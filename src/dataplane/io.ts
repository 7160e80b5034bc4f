/**
 * Packet I/O as the pipeline and engine see it: open ports, receive a batch into the frame pool,
 * send a batch from it, and readiness callbacks. Two implementations: the native addon
 * (`nativeIO()` in native.ts: devices and sockets, root) and `MemoryIO` (memory-io.ts: queues in
 * memory, for tests of the forwarding logic in a plain Node process).
 *
 * Contract (the addon's): recv(port, first, max) writes up to `max` frames into descriptors
 * [first, first+n) at HEADROOM inside their slots and returns n; send(port, first, count) sends the
 * descriptors listed in pool.txList[first .. first+count) and returns how many the port accepted
 * (the rest are counted in its stats); both throw an Error with an errno `code` only for a broken
 * port or bad arguments, never for a single frame.
 */
import { getSystemErrorName } from 'node:util';
import type { FramePool } from './frame-pool';

/** A veth pod's TCP GSO frames with a smaller gso_size are dropped, counted rxGsoBad (PortOptions
 * gsoMin): Linux's TCP_MIN_MSS (native/gso.h says why, and what an honest pod loses). UDP GSO has
 * no floor: with gsoMin set, more than 128 segments (the kernel's UDP_MAX_SEGMENTS) is bad. */
export const POD_GSO_MIN = 88;

export interface PortOptions {
  /** Open the device or socket inside this network namespace (e.g. /run/netns/NAME). */
  netns?: string;
  /** TAP/TUN: IFF_MULTI_QUEUE (one fd per queue, for several workers). */
  multiQueue?: boolean;
  /** TAP/TUN: keep the device after the fd closes (TUNSETPERSIST). */
  persist?: boolean;
  /** TAP/TUN: attach to an existing device only; a missing one fails with ENODEV instead of being
   * made by TUNSETIFF (a pod's device is the CNI's to make). */
  existing?: boolean;
  /** TAP/TUN: list this port's fd for the process's other threads (sharedTx); it leaves the list
   * when the port closes. */
  share?: boolean;
  /** TAP/TUN: open nothing: transmit through a dup of the fd another thread opened with `share`
   * (same name and netns). Fails with ENOENT until that thread has it open. Never polled: the
   * owning thread alone reads the device. */
  sharedTx?: boolean;
  /** AF_PACKET: receive through a PACKET_MMAP ring (default true) rather than recvmmsg. */
  ring?: boolean;
  /** AF_PACKET ring: TPACKET_V2 (default: wakes per frame, no added latency) or TPACKET_V3
   * (blocks of frames, woken when a block fills or after 1 ms). */
  ringVersion?: 2 | 3;
  ringBlocks?: number;
  ringBlockSize?: number;
  /** AF_PACKET: PACKET_FANOUT_HASH group id (spreads flows across sockets/workers). */
  fanoutGroup?: number;
  /** AF_PACKET: PACKET_IGNORE_OUTGOING (default true): never read back frames we or the host sent. */
  ignoreOutgoing?: boolean;
  /** AF_PACKET: PACKET_QDISC_BYPASS: transmit straight to the driver, skipping the qdisc (and tc). */
  qdiscBypass?: boolean;
  /** AF_PACKET: PACKET_VNET_HDR (default true). Frames are received whole with their offload
   * metadata: a TSO/GSO super-frame from a pod's veth (offloads on, as CNIs leave them) or a GRO'd
   * one from a NIC is cut into wire-size segments in C, and a partial L4 checksum is completed in C
   * (the descriptor never says CSUM_PARTIAL then). Frames sent get a zero vnet header in front. See
   * native/README.md. false: frames over a slot arrive cut (TRUNCATED) and partial checksums are
   * left to JS. */
  vnetHdr?: boolean;
  /** AF_PACKET with vnetHdr: software GRO on send (native/gro.c). Consecutive in-order TCP/IPv4 or
   * TCP/IPv6 segments of one flow in a batch go out as one super-frame with a virtio_net_hdr (TCPV4
   * or TCPV6, gso_size, partial checksum), as the kernel's GRO hands them to a pod. For pod ports. */
  gro?: boolean;
  /** AF_PACKET with vnetHdr: a received TCP GSO frame whose gso_size is below this many bytes,
   * or (when set) a UDP GSO frame of more than 128 segments, is dropped, counted rxGsoBad
   * (native/gso.h: a pod's gso_size of 1 is one segment per byte). For pod ports (POD_GSO_MIN);
   * default 0, any size (the underlay: GRO merges small segments). */
  gsoMin?: number;
  /** AF_PACKET with vnetHdr: transmit GSO (native/uso.c, gro.c). Consecutive VXLAN datagrams of one
   * outer flow in a batch go out as one UDP GSO message (UDP_L4), and in-order TCP segments of one
   * flow as one TCPV4 (TCPV6) message; the kernel carries each as one skb and segments it at the device
   * (in software when the device cannot). For the underlay port. */
  txGso?: boolean;
  /** AF_PACKET: send through a second packet socket of the port's own, bound to the device with
   * protocol 0 (it receives nothing). The kernel then finds no waiter to wake each time it frees
   * a sent skb (the receiving socket is in the event loop's epoll set); the backlog's writability
   * is watched on it. For the underlay port. */
  txSocket?: boolean;
  /** AF_PACKET with vnetHdr and a V2 ring: a VXLAN TCP super-frame (UDP tunnel GSO from a kernel
   * node) is received as ONE descriptor (DescFlag.SUPER: segment 0, the rest kept in C until the
   * port's next recv) and sent to a pod with gro as one GSO message (native/rxsuper.h). For the
   * underlay port. */
  rxSuper?: boolean;
  /** AF_PACKET V2 ring with vnetHdr: read a super-frame's copy from the socket queue straight into
   * the pool slots of its segments (scatter recvmsg, one copy of the payload; native/README.md).
   * false: read it whole into a buffer and copy each segment from there. Default true. */
  scatterRx?: boolean;
  /** AF_PACKET with vnetHdr and a V2 ring: a pod's TCP super-frame (data with ACK, PSH allowed) is
   * received as ONE DescFlag.SUPER descriptor like rxSuper's, and cut where it is sent (native/rxsuper.h).
   * For pod ports; it replaces scatterRx for TCP super-frames. */
  rxSuperTcp?: boolean;
  /** AF_PACKET with vnetHdr and a V2 ring: a run of consecutive plain VXLAN datagrams of one inner
   * TCP flow (a kernel node's stream over an underlay without offloads) is received as ONE
   * DescFlag.SUPER descriptor, the way rxSuper hands a super-frame on (native/rxsuper.h). */
  rxMerge?: boolean;
  /** Back-pressure (native/README.md): while this port's transmit backlog holds more than
   * txHoldHigh frames (1..16,384; 0, the default: never), the ports feeding it (opened with
   * holdRx, whose last batch sent to it) are not read until it is down to txHoldLow (default a
   * quarter of txHoldHigh). For the underlay port. */
  txHoldHigh?: number;
  txHoldLow?: number;
  /** May be held back (not read) while the port its last batch sent to has a backlog over that
   * port's txHoldHigh. For pod ports and the host's TUN. */
  holdRx?: boolean;
  /** AF_PACKET: classic BPF program, 8 bytes per instruction (struct sock_filter). */
  bpf?: Uint8Array;
  /** UDP/raw: local IPv4 address as uint32 (0 = any). */
  addr?: number;
  /** UDP: an IPv6 socket bound to this address (16 bytes; IPV6_V6ONLY, IPV6_FREEBIND). Receive
   * writes each sender's IPv6 address into the 16 bytes before its frame (native/README.md). */
  addr6?: Uint8Array;
  /** UDP: local port (0 = ephemeral). */
  port?: number;
  /** raw: IP protocol number (4 for IPIP). */
  proto?: number;
  /** raw: an IPv6 IPPROTO_RAW socket instead (transmit only: each packet goes to the destination
   * in its own header, routed by the node; proto and addr are not used). */
  ipv6?: boolean;
  rcvbuf?: number;
  sndbuf?: number;
  reuseport?: boolean;
}

export interface PortStats {
  rxPackets: number; rxBytes: number; rxTruncated: number; rxKernelDrops: number; rxCalls: number;
  txPackets: number; txBytes: number; txRetries: number; txDroppedFull: number; txErrors: number; txCalls: number;
  /** Frames the kernel refused for now that the port queued (in all), and holds right now; they
   * are sent when the port is writable again (native/README.md). */
  txQueued?: number;
  txBacklog?: number;
  /** Times a full backlog was doubled (256 entries at first, up to 16,384; native/README.md). */
  txBacklogGrown?: number;
  /** Frames the kernel refused for themselves and the addon dropped (in txErrors too): rejected at
   * once (EMSGSIZE, ENETUNREACH, ...), or refused with ENOBUFS at the head of the backlog past
   * its bounded retries (txHeadDropped: e.g. bigger than a veth peer's MTU; native/README.md).
   * The engine counts them as drops (`tx_rejected`). */
  txRejected?: number; txHeadDropped?: number;
  /** Of txRejected, the frames refused at once with EMSGSIZE (bigger than the device's MTU: the
   * engine reads the underlay's MTU again and answers the pods' packets among them with ICMP
   * fragmentation needed / Packet Too Big). */
  txTooBig?: number;
  /** The shortest frame dropped so past the retries (0: none, or one that long was sent since):
   * a head frame at least that long refused with ENOBUFS is dropped on its first refusal. */
  txTooBigLen?: number;
  /** AF_PACKET with vnetHdr (native/README.md): super-frames segmented, the segments they made,
   * frames dropped for inconsistent offload metadata, frames dropped as not segmentable here (IPv6
   * GSO, UFO, a segment larger than a slot), partial checksums completed in C. */
  rxGsoFrames?: number; rxGsoSegments?: number; rxGsoBad?: number; rxGsoDropped?: number; rxCsumCompleted?: number;
  /** AF_PACKET V2 ring with scatterRx: super-frames read straight into their segments' slots. */
  rxScatterFrames?: number;
  /** AF_PACKET V2 ring: times the kernel wedged the ring and checkRing set it up again; 1 while
   * that is under way on a worker thread (the port receives nothing meanwhile). */
  rxRingStalls?: number; rxRingRearming?: number;
  /** AF_PACKET: 802.1Q/802.1ad-tagged frames dropped in C (drop reason vlan_tagged). */
  rxVlanTagged?: number;
  /** AF_PACKET with vnetHdr: frames dropped in C whose partial checksum offsets (csum_start,
   * csum_offset) lie outside the frame or, on a GSO frame, do not name its L4 checksum (drop reason
   * bad_partial_csum; not in rxGsoBad); staged messages shorter than their vnet header (too_short). */
  rxBadCsum?: number; rxShort?: number;
  /** TUN/TAP: reads that failed for one packet, EFAULT/EINVAL (in rxTruncated too; drop reason
   * read_failed). */
  rxReadFailed?: number;
  /** Frames the transmit backlog held when it was discarded: the socket failed (a poll error) or no
   * handle could watch it (in txErrors too; drop reason tx_backlog_dropped). */
  txBacklogDropped?: number;
  /** AF_PACKET with gro: super-frames sent, and the frames they carried (in txPackets too). */
  txGroFrames?: number; txGroSegments?: number;
  /** AF_PACKET with txGso: GSO messages sent, the frames they carried (in txPackets too), and
   * merged messages the kernel rejected on their own (their frames then went one by one). */
  txGsoFrames?: number; txGsoSegments?: number; txGsoRejected?: number;
  /** rxSuper (native/rxsuper.h): super-frames received as one descriptor and the segments they
   * carry (in rxPackets too); sent to a pod as one message (in txGroFrames too); cut on send (a
   * port without gro, a backlog); segments not sent because the descriptor no longer held
   * segment 0 of its super-frame. */
  rxSuperFrames?: number; rxSuperSegments?: number;
  /** rxMerge: runs of datagrams received as one descriptor, and the datagrams they carry. */
  rxMergeFrames?: number; rxMergeSegments?: number; txSuperFrames?: number; txSuperCut?: number; txSuperLost?: number;
  /** rxSuperTcp: a pod's super-frames sent in VXLAN as UDP GSO messages built on send. */
  txSuperUso?: number;
  /** Where time goes, one sample per batch: V2 ring kernel receive stamp -> recv (rxWait), end of
   * the thread's last recv -> this port's send (js), inside sendmmsg (txSyscall); ns summed. */
  rxWaitNs?: number; rxWaitSamples?: number; jsNs?: number; jsSamples?: number; txSyscallNs?: number; txSyscalls?: number;
  /** holdRx ports: times the port was held back, and for how long in all (ns, a hold running now
   * included); rxHeldNow 1 while it is held. txHoldHigh ports: times the port gave its holds up
   * because nothing left it for 200 ms (a dead link), and the ports it holds now. */
  rxHeld?: number; rxHeldNs?: number; rxHeldNow?: number; txHoldStalls?: number; txHolding?: number;
  lastError?: string;
}

export interface PortInfo { kind: 'tap' | 'tun' | 'packet' | 'udp' | 'raw'; name: string; fd: number; ifindex: number; boundPort: number; /** 0 = no ring, else the TPACKET version */ ring: number }

/**
 * Readiness callback: one call per readable event of a port. status < 0: the port failed (-errno:
 * a poll error, or with recvMax the receive's own). Without recvMax, status is 0 and the callback
 * receives with recv(); with poll's recvMax, the I/O layer has already received the first batch,
 * as recv(port, 0, recvMax) would, and status is its frame count (0 when nothing was there), so a
 * wake-up costs one JS call instead of two.
 */
export type PollCallback = (port: number, status: number) => void;

/** The stats() counts nativeDropsAll gives per port, in its order (native/addon.c
 * native_drops_all): the drops the addon makes itself as it reads or sends. */
export const NATIVE_DROP_FIELDS = ['rxVlanTagged', 'rxGsoBad', 'rxGsoDropped', 'rxBadCsum', 'rxShort', 'rxReadFailed', 'txBacklogDropped'] as const satisfies readonly (keyof PortStats)[];

/** PacketIO.checkRings: the port's ring could not be set up again. */
export const RING_FAILED = 0x80000000;

export interface PacketIO {
  /** Largest batch one recv/send call moves. */
  readonly MAX_BATCH: number;
  /** Hand the pool to the I/O layer (once per pool, before any recv/send). */
  setPool(pool: FramePool): void;
  openTap(name: string, opts?: PortOptions): number;
  openTun(name: string, opts?: PortOptions): number;
  openPacket(ifname: string, opts?: PortOptions): number;
  /** Prepare an AF_PACKET port (socket and ring, no interface) on another thread, so that a later
   * openPacket with the same options only binds it; true when one was queued (at most 2 are kept). */
  preparePacket?(opts: PortOptions): boolean;
  openUdp(opts: PortOptions): number;
  openRaw(opts: PortOptions): number;
  /** Detach and close a port: when it returns the id is free, nothing more is received or sent on
   * it (a transmit backlog is dropped) and its counters are gone. An AF_PACKET port's fd and ring
   * are released on a worker thread (native/README.md), so the call never waits for the kernel. */
  close(port: number): void;
  recv(port: number, first: number, max: number): number;
  send(port: number, first: number, count: number): number;
  stats(port: number): PortStats;
  /** AF_PACKET with a TPACKET_V2 ring, called on a timer (never per batch): true when `checks`
   * calls in a row (default 2) saw kernel drops rise, nothing received and the ring's next slot
   * empty, the signature of a ring the kernel wedged (native/README.md); the ring is then set up
   * again on a worker thread (counted in rxRingStalls; rxRingRearming until it is back). Throws
   * when a previous attempt failed (the port receives nothing: close it). Other ports: false. */
  checkRing?(port: number, checks?: number): boolean;
  /** checkRing for every open AF_PACKET port in one call (the engine's ring timer: one getsockopt
   * per port in C, nothing per port in JS): out[0..n) gets the ids of the ports found wedged (their
   * ring being set up again) and, with RING_FAILED set, of those whose ring could not be set up
   * again (checkRing on them throws the error). Returns n; stops when out is full. */
  checkRings?(checks: number, out: Uint32Array): number;
  /** out[id] = stats(id).txRejected for every open port id < out.length (others untouched). */
  txRejectedAll?(out: Float64Array): void;
  /** For every open port id with (id + 1) * stride <= out.length: out[id * stride + k] = its
   * stats() count NATIVE_DROP_FIELDS[k] (the drops the addon makes itself as it reads or sends; no
   * getsockopt), others untouched; returns the stride (NATIVE_DROP_FIELDS.length). */
  nativeDropsAll?(out: Float64Array): number;
  /** out[id] = the MTU of the interface an open AF_PACKET port is bound to, or of a TAP/TUN port's
   * device in the namespace it was opened in (0: unknown, e.g. the interface gone), for every such
   * port id < out.length (others untouched). */
  linkMtus(out: Uint32Array): void;
  /** linkMtus for one port: its device's MTU now (0: unknown, or a port on no device). */
  linkMtu(port: number): number;
  info(port: number): PortInfo;
  /** Call `cb` when the port is readable (see PollCallback); recvMax (1..MAX_BATCH, at most the
   * pool's descriptors): receive the first batch before calling it. A second call replaces both. */
  poll(port: number, cb: PollCallback, recvMax?: number): void;
  unpoll(port: number): void;
  /** A super-frame (DescFlag.SUPER) outside the send path (native/rxsuper.h; absent where
   * descriptors never are super-frames, as in MemoryIO). Cut descriptor `desc`'s super-frame (its
   * IP header, or a tunnel's outer one, at `l3`: 14 behind Ethernet, 0 for an IP packet) into the
   * descriptors places[0..segs), each segment as the send side cuts it; returns the segments
   * written, 0 (nothing written) when it is no longer a live super-frame, n is too small or a
   * segment would not fit its slot. The neighbour queue holds a super-frame so. */
  superCut?(desc: number, l3: number, places: Uint32Array, n: number): number;
  /** The VXLAN UDP destination port (Felix's vxlanPort) the addon's C paths take for VXLAN: the
   * receive merge, USO delivery and transmit merge, a tunnel super-frame's cut (native/ports.h
   * pool.vxlan_port; 4789 until called). Once per thread, when the engine starts. Absent in MemoryIO
   * (its ports merge nothing). */
  setVxlanPort?(port: number): void;
  /** The payload of descriptor `desc`'s super-frame behind segment 0's: its first `max` bytes
   * copied to dst[at..]; out[0] the super-frame's TCP flags, out[1] the ones'-complement sum of
   * all of it (as if it began on an even offset). Returns its length, -1 when `desc` is not a live
   * super-frame. `podway capture` records the whole super-frame so. */
  superRest?(desc: number, dst: Uint8Array, at: number, max: number, out: Uint32Array): number;
  /** Copies of the frames counted in txRejected since the last call (the last few, their first
   * 2 KiB), into dst as records [u16 original length LE][u16 bytes LE][bytes]; returns the bytes
   * written. For `podway capture --stage drop`; called now and then, not per batch. */
  takeRejected?(port: number, dst: Uint8Array): number;
}

/** The name of a negative errno as PollCallback passes it (-100 -> ENETDOWN). */
export function errnoName(negErrno: number): string {
  try {
    return getSystemErrorName(negErrno);
  } catch {
    return `errno ${-negErrno}`;
  }
}

/** An errno-carrying error from the I/O layer: `code` is the errno name (EPERM, ENODEV, ...). */
export function errnoOf(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}
