/**
 * `podway capture`: copies of the frames that match a filter, taken at one stage of the pipeline,
 * written as compact records into a bounded buffer that the engine hands out in chunks (to the
 * control socket, or from a worker thread to the main one). The client turns the records into
 * pcapng (pcapng.ts).
 *
 * Cost: while no capture runs the pipeline pays one test per batch. While one runs, every frame
 * of a batch is matched against the filter (compiled once per capture into a loop of byte
 * compares, capture-match.ts) and only matching frames are copied. A full buffer never waits:
 * the record is counted as lost.
 *
 * Every record is an Ethernet frame (one link type for the whole file, which tcpdump needs): frames
 * from IP-only ports (TUN devices, the raw sockets) get a 14-byte pseudo Ethernet header with zero
 * addresses, and VXLAN payloads from the UDP socket get the outer IPv4/UDP headers they arrived in.
 *
 * The decap stage records the inner Ethernet frame of tunnel traffic that passed decapsulation:
 * IPv4 VXLAN (the UDP socket's payloads), IP-in-IP (the inner IPv4 packet), and VXLAN over IPv6,
 * which arrives on the underlay port as whole Ethernet frames (outer IPv6/UDP/VXLAN, inner IPv6);
 * the filter looks at the inner packet there as everywhere at this stage.
 *
 * A TCP super-frame handed on whole (DescFlag.SUPER: one descriptor for up to 64 KiB, segment 0 in
 * the pool, the rest in the receiving port's buffer, native/rxsuper.h) is recorded as one packet,
 * as tcpdump shows a GSO super-packet on a device with offloads on: segment 0's headers with the
 * lengths of the whole (every IPv4 total length, IPv6 payload length and VXLAN UDP length; 0 where
 * it is past 65,535, as for a BIG TCP packet), the super-frame's FIN/PSH, the whole payload (read
 * from the port's buffer by the addon, `superRest`), a valid inner TCP checksum (updated from
 * segment 0's) and IPv4 header checksums; an outer VXLAN UDP checksum over IPv4 is 0, over IPv6 it
 * is segment 0's (not recomputed: on a GSO device tcpdump shows a partial one there too). The
 * snaplen (`snaplen`, 262,144 by default as tcpdump's) cuts what is copied, so a capture with a
 * small snaplen copies only the headers of a super-frame. Frames the neighbour queue held and sends
 * later are recorded at tx one per segment, as they leave.
 */
import { ETH_HLEN, SLOT_SIZE } from '../packet/layout';
import { TraceFilter } from './trace';
import { compileBatchMatcher, BatchMatcher } from './capture-match';
import { VXLAN_PORT } from '../packet/vxlan';
import { COUNTER_NAMES } from './counters';
import { DROP_REASON_COUNT } from '../packet/drop';
import type { FramePool } from './frame-pool';
import { DescFlag } from './frame-pool';

export const Stage = { RX: 0, DECAP: 1, ROUTE: 2, TX: 3, DROP: 4 } as const;
export const STAGE_NAMES = ['rx', 'decap', 'route', 'tx', 'drop'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

export function parseStage(s: string | undefined): number {
  const k = STAGE_NAMES.indexOf((s ?? 'rx') as StageName);
  if (k < 0) throw new Error(`capture: unknown stage "${s}" (use ${STAGE_NAMES.join(', ')})`);
  return k;
}

/** How frames of a port are laid out (from the pipeline's Role). */
export const Link = {
  /** Ethernet frames (pod veth/TAP, underlay). */
  ETHERNET: 0,
  /** Bare IPv4 packets (TUN devices, raw IPv4 sockets). */
  IP: 1,
  /** VXLAN payloads from the UDP socket (VXLAN header, inner Ethernet). */
  VXLAN: 2,
  /** Matching only (never a port's layout): underlay Ethernet frames at the decap stage, matched
   * on the inner packet of VXLAN over IPv6 (Ethernet, IPv6, UDP, VXLAN, inner Ethernet, IPv6), and
   * of IPv4 VXLAN and IPIP (the underlay port takes those too: nft-tunnels.ts). */
  VXLAN6_UNDERLAY: 3,
} as const;

/** Bytes of outer headers in front of the inner Ethernet frame of VXLAN over IPv6 on the underlay
 * (Ethernet 14, IPv6 40 with UDP right after it, as pipeline6 accepts it, UDP 8, VXLAN 8). */
export const VXLAN6_OUTER = 14 + 40 + 8 + 8;

/** An underlay frame that is VXLAN over IPv6 (UDP to `port`, the VXLAN port, right after the fixed IPv6 header) with
 * room for an inner Ethernet header. */
function isVxlan6(b: Uint8Array, f: number, len: number, port: number): boolean {
  return len >= VXLAN6_OUTER + ETH_HLEN && b[f + 12] === 0x86 && b[f + 13] === 0xdd && (b[f + 14] >> 4) === 6 &&
    b[f + 20] === 17 && b[f + 56] === port >> 8 && b[f + 57] === (port & 255);
}

/**
 * One record: a 24-byte header, the interface name, the comment, the frame, padded to 4 bytes.
 *   0 u32 record length   4 u32 timestamp µs (high)   8 u32 timestamp µs (low)
 *  12 u16 name length    14 u16 comment length      16 u32 frame length   20 u32 original length
 */
export const RECORD_HEADER = 24;

export interface CaptureRecord {
  iface: string;
  comment: string;
  tsMicros: number;
  data: Uint8Array;
  origLen: number;
}

/** Decode the records of a chunk (client side). */
export function* readRecords(chunk: Uint8Array): Generator<CaptureRecord> {
  const dv = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const td = new TextDecoder();
  let at = 0;
  while (at + RECORD_HEADER <= chunk.length) {
    const len = dv.getUint32(at, true);
    if (len < RECORD_HEADER || at + len > chunk.length) throw new Error(`capture: corrupt record at byte ${at} of a ${chunk.length}-byte chunk`);
    const tsMicros = dv.getUint32(at + 4, true) * 2 ** 32 + dv.getUint32(at + 8, true);
    const nl = dv.getUint16(at + 12, true);
    const cl = dv.getUint16(at + 14, true);
    const dl = dv.getUint32(at + 16, true);
    const origLen = dv.getUint32(at + 20, true);
    let p = at + RECORD_HEADER;
    const iface = td.decode(chunk.subarray(p, p + nl));
    p += nl;
    const comment = td.decode(chunk.subarray(p, p + cl));
    p += cl;
    yield { iface, comment, tsMicros, data: chunk.subarray(p, p + dl), origLen };
    at += len;
  }
}

/** Records in a chunk, counted by walking the headers (for loss accounting). */
export function countRecords(chunk: Uint8Array): number {
  const dv = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  let n = 0;
  for (let at = 0; at + RECORD_HEADER <= chunk.length; n++) {
    const len = dv.getUint32(at, true);
    if (len < RECORD_HEADER) break;
    at += len;
  }
  return n;
}

/** Validation and tunnel drops happen before (or during) decapsulation: such a packet never got
 * to the decap stage. */
function failedBeforeDecap(reason: number, unknownTunnel: number, unsupported: number, truncated: number): boolean {
  return reason < DROP_REASON_COUNT || reason === unknownTunnel || reason === unsupported || reason === truncated;
}

export interface CaptureOptions {
  filter: TraceFilter;
  stage: number;
  /** Records to take at most (this engine alone). */
  count: number;
  /** Bytes of record buffer (default 1 MiB). */
  bufferBytes?: number;
  /** Bytes of each packet recorded at most (the rest counted in its original length). */
  snaplen?: number;
}

/** tcpdump's default snaplen (libpcap MAXIMUM_SNAPLEN): a whole 64 KiB super-frame fits. */
export const DEFAULT_SNAPLEN = 262144;

/** What the pipeline tells the tap about the ports of a batch. */
export interface CapturePorts {
  readonly portName: readonly string[];
  /** Link layout of a port (Link.*). */
  linkOf(port: number): number;
  /** The underlay port (VXLAN over IPv6 is decapsulated from its Ethernet frames); none if absent. */
  isUnderlay?(port: number): boolean;
  readonly nodeIp: number;
  /** Per descriptor of the batch, the port a frame held for a MAC (verdict HELD_VERDICT) is
   * routed to: the underlay (its neighbour's MAC), or a local pod's port (the pod's MAC). */
  readonly heldTo?: Int32Array;
  /** The addon's PacketIO.superRest: a super-frame's payload behind segment 0's (none: MemoryIO). */
  readonly superRest?: (desc: number, dst: Uint8Array, at: number, max: number, out: Uint32Array) => number;
}

/** The pipeline's verdict for a frame held for a MAC (pipeline.ts: an unresolved underlay
 * neighbour's, or a local pod's): routed, sent later (`outOfBatch` records it then, at tx). */
export const HELD_VERDICT = -3;

const UNKNOWN_TUNNEL_SOURCE = COUNTER_NAMES.indexOf('unknown_tunnel_source');
const UNSUPPORTED_ETHERTYPE = COUNTER_NAMES.indexOf('unsupported_ethertype');
const TRUNCATED = COUNTER_NAMES.indexOf('truncated');

/** One engine's capture: matching, copying and the bounded record buffer. */
export class CaptureTap {
  readonly filter: TraceFilter;
  readonly stage: number;
  readonly snaplen: number;
  private remaining: number;
  private buf: Uint8Array;
  private dv: DataView;
  private used = 0;
  /** Records refused because the buffer was full (the reader is slow). */
  lost = 0;
  /** Records taken. */
  taken = 0;
  /** The descriptors of the current batch that matched, and where their (inner) IPv4 header is. */
  private readonly matchedList: Uint16Array;
  private readonly ipAt: Int32Array;
  private nMatched = 0;
  /** drop/decap stages: the frame as it was before processing, kept until its fate is known. */
  private readonly scratch: Uint8Array;
  private readonly scratchLen: Uint16Array;
  /** drop stage: per descriptor, the reason a frame was turned into an ICMP error (ttl_expired,
   * frag_needed): recorded from its copy as a drop though it leaves as the error; 0: none. */
  private readonly errored: Uint16Array;
  private readonly names = new Map<string, Uint8Array>();
  private readonly comments: Uint8Array[] = [];
  private ts = 0;
  private readonly enc = new TextEncoder();
  /** The filter compiled per port layout (Link.*), on first use. */
  private readonly matchers: (BatchMatcher | undefined)[] = [];

  /** `vxlanPort`: the node's VXLAN UDP port (Felix's vxlanPort), how a tunnel frame is recognised and recorded. */
  constructor(opts: CaptureOptions, batch: number, private readonly vxlanPort: number = VXLAN_PORT) {
    this.filter = opts.filter;
    // Compile for every layout now: a filter that cannot compile fails at start, not mid-batch.
    for (const link of [Link.ETHERNET, Link.IP, Link.VXLAN, Link.VXLAN6_UNDERLAY]) this.matchers[link] = compileBatchMatcher(opts.filter, link, vxlanPort);
    this.stage = opts.stage;
    this.snaplen = Math.max(64, Math.min(DEFAULT_SNAPLEN, opts.snaplen ?? DEFAULT_SNAPLEN));
    this.remaining = Math.max(1, opts.count);
    this.buf = new Uint8Array(opts.bufferBytes ?? 1 << 20);
    this.dv = new DataView(this.buf.buffer);
    this.matchedList = new Uint16Array(batch);
    this.ipAt = new Int32Array(batch);
    const keepsCopies = opts.stage === Stage.DROP || opts.stage === Stage.DECAP;
    this.scratch = new Uint8Array(keepsCopies ? batch * (SLOT_SIZE + 64) : 0);
    this.scratchLen = new Uint16Array(batch);
    this.errored = new Uint16Array(batch);
  }

  /** The pipeline turned descriptor i of the batch into an ICMP error for `reason` (called only
   * while a capture runs). */
  noteError(i: number, reason: number): void {
    if (i < this.errored.length) this.errored[i] = reason;
  }

  /** One descriptor's place, length and match result, for frames matched outside a batch
   * (`outOfBatch`): the matchers take arrays. */
  private readonly oneSlot = new Uint32Array(1);
  private readonly oneOff = new Uint16Array(1);
  private readonly oneLen = new Uint16Array(1);
  private readonly oneList = new Uint16Array(1);
  private readonly oneIpAt = new Int32Array(1);
  /** The batch's pool and the addon's superRest, for a matched super-frame's payload. */
  private flags: Uint16Array | null = null;
  private superRest: CapturePorts['superRest'] = undefined;
  private readonly restOut = new Uint32Array(2);

  /** Taken all it was asked for. */
  get done(): boolean {
    return this.remaining <= 0;
  }

  /** Hand out what was recorded (a copy; the buffer is reused). */
  take(): Uint8Array | null {
    if (this.used === 0) return null;
    const out = this.buf.slice(0, this.used);
    this.used = 0;
    return out;
  }

  /** Before the pipeline touches the batch: match each frame; rx records now, drop/decap copies kept. */
  before(pool: FramePool, n: number, port: number, ports: CapturePorts): void {
    const b = pool.bytes;
    const lens = pool.len;
    const link = ports.linkOf(port);
    const list = this.matchedList;
    const ipAt = this.ipAt;
    const stage = this.stage;
    // decap on the underlay: VXLAN over IPv6, matched on its inner packet
    const decap6 = stage === Stage.DECAP && link === Link.ETHERNET && ports.isUnderlay?.(port) === true;
    const mlink = decap6 ? Link.VXLAN6_UNDERLAY : link;
    // The part every frame pays: find the header, compare a few fields (compiled per filter).
    const match = this.matchers[mlink] ?? (this.matchers[mlink] = compileBatchMatcher(this.filter, mlink, this.vxlanPort));
    const k = match(b, pool.slot, pool.off, lens, n, list, ipAt);
    this.nMatched = k;
    if (k === 0) return;
    this.flags = pool.flags;
    this.superRest = ports.superRest;
    this.ts = Math.round((performance.timeOrigin + performance.now()) * 1000);
    for (let j = 0; j < k && this.remaining > 0; j++) {
      const i = list[j];
      const ip = ipAt[j];
      const f = pool.start(i);
      const len = lens[i];
      this.scratchLen[i] = 0;
      this.errored[i] = 0;
      const peer = link === Link.VXLAN ? pool.addr[i] : 0;
      const sport = link === Link.VXLAN ? pool.aport[i] : 0;
      if (stage === Stage.RX) this.record(ports.portName[port], '', b, f, len, link, ports.nodeIp, peer, sport, i);
      else if (stage === Stage.DROP) this.keep(i, b, f, len, link, ports.nodeIp, peer, sport);
      else if (decap6) {
        if (isVxlan6(b, f, len, this.vxlanPort)) this.keep(i, b, f + VXLAN6_OUTER, len - VXLAN6_OUTER, Link.ETHERNET, 0, 0, 0);
        // IPv4 tunnels taken on the underlay port (engine: tunnels on the underlay): the matcher
        // found the inner IPv4 header behind the outer one; VXLAN keeps its inner Ethernet header
        else if (ip > f + ETH_HLEN) {
          if (b[f + ETH_HLEN + 9] === 17) this.keep(i, b, ip - ETH_HLEN, f + len - ip + ETH_HLEN, Link.ETHERNET, 0, 0, 0);
          else this.keep(i, b, ip, f + len - ip, Link.IP, 0, 0, 0);
        }
      } else if (stage === Stage.DECAP && ip >= 0) {
        if (link === Link.VXLAN && len >= 8 + ETH_HLEN) this.keep(i, b, f + 8, len - 8, Link.ETHERNET, 0, 0, 0);
        else if (link === Link.IP && b[f + 9] === 4) this.keep(i, b, ip, f + len - ip, Link.IP, 0, 0, 0);
      }
    }
  }

  /**
   * After the pipeline decided every frame (verdict per descriptor: an output port, or a negative
   * number; `dropVerdict` marks drops, with their reasons in `reasons`).
   */
  after(pool: FramePool, n: number, port: number, verdicts: Int32Array, reasons: Uint16Array, dropVerdict: number, ports: CapturePorts): void {
    const stage = this.stage;
    const b = pool.bytes;
    if (stage === Stage.RX) return;
    for (let j = 0; j < this.nMatched && this.remaining > 0; j++) {
      const i = this.matchedList[j];
      const o = verdicts[i];
      if (stage === Stage.DROP) {
        if (o === dropVerdict) this.recordKept(i, ports.portName[port], this.comment(reasons[i]));
        else if (this.errored[i] !== 0) this.recordKept(i, ports.portName[port], this.comment(this.errored[i]));
      } else if (stage === Stage.DECAP) {
        // decapsulated: sent on, or dropped after decapsulation (the underlay's other frames, left
        // to the host, never were tunnel traffic for us)
        const decapsulated = o >= 0 || (o === dropVerdict && !failedBeforeDecap(reasons[i], UNKNOWN_TUNNEL_SOURCE, UNSUPPORTED_ETHERTYPE, TRUNCATED));
        if (this.scratchLen[i] > 0 && decapsulated) this.recordKept(i, ports.portName[port], '');
      } else if (o >= 0 || (o === HELD_VERDICT && stage === Stage.ROUTE && ports.heldTo !== undefined)) {
        // routed; a held frame is recorded at route now (on the port it waits for), at tx when it leaves
        const to = o >= 0 ? o : ports.heldTo![i];
        const f = pool.start(i);
        const len = pool.len[i];
        const outLink = ports.linkOf(to);
        const ip = this.ipAt[j];
        // The routed packet is still where it was received (encapsulation and Ethernet rewrites
        // happen in front of it): it ends where the frame ends. Packets podway built instead (an
        // ICMP error) are taken from the frame itself.
        if (stage === Stage.ROUTE && ip >= f && ip + 20 <= f + len && ip + ((b[ip + 2] << 8) | b[ip + 3]) === f + len) {
          this.record(ports.portName[to], '', b, ip, f + len - ip, Link.IP, 0, 0, 0, i);
        } else {
          this.record(ports.portName[to], '', b, f, len, outLink === Link.VXLAN ? Link.IP : outLink, 0, 0, 0, i);
        }
      }
    }
  }

  /**
   * A frame the pipeline sends or drops outside a receive batch: the neighbour queue's (descriptor
   * d, an underlay Ethernet frame), sent when its neighbour answered (`reason` 0: the tx stage,
   * on interface `iface`, the underlay) or dropped when it failed or the hold limit passed (the
   * drop stage, with the reason as the comment, under the interface it came in on). The filter
   * looks at the pod's packet, as for the batch's frames: the inner one of VXLAN over IPv6.
   * Nothing is allocated unless the frame matches.
   */
  outOfBatch(pool: FramePool, d: number, iface: string, reason: number): void {
    if (this.remaining <= 0) return;
    if (reason === 0 ? this.stage !== Stage.TX : this.stage !== Stage.DROP) return;
    const b = pool.bytes;
    const f = pool.start(d);
    const len = pool.len[d];
    if (!this.matchesOne(b, pool.slot[d], pool.off[d], len, isVxlan6(b, f, len, this.vxlanPort) ? Link.VXLAN6_UNDERLAY : Link.ETHERNET)) return;
    this.ts = Math.round((performance.timeOrigin + performance.now()) * 1000);
    this.record(iface, reason === 0 ? '' : this.comment(reason), b, f, len, Link.ETHERNET, 0, 0, 0, -1);
  }

  /** Whether one frame (`len` bytes at slot/off of `bytes`, as a batch's descriptor) matches the
   * filter laid out as `mlink`: the batch matcher over a batch of one. */
  private matchesOne(bytes: Uint8Array, slot: number, off: number, len: number, mlink: number): boolean {
    const match = this.matchers[mlink] ?? (this.matchers[mlink] = compileBatchMatcher(this.filter, mlink, this.vxlanPort));
    this.oneSlot[0] = slot;
    this.oneOff[0] = off;
    this.oneLen[0] = len;
    return match(bytes, this.oneSlot, this.oneOff, this.oneLen, 1, this.oneList, this.oneIpAt) !== 0;
  }

  /**
   * A frame the output port's send dropped as it returned (descriptor d as it was handed to the
   * send: `tx_full`, the kernel refused it and the port's backlog had no room), at the drop stage
   * under that port with the reason as the comment; `link` is the port's layout (an IP-only
   * port's packet gets the pseudo Ethernet header; a VXLAN payload for the UDP socket its outer
   * IPv4/UDP headers from `nodeIp` to its destination). A super-frame is recorded as the
   * descriptor holds it (segment 0). Called only while a capture runs, for such frames only.
   */
  txDropped(pool: FramePool, d: number, iface: string, link: number, nodeIp: number, reason: number): void {
    if (this.remaining <= 0 || this.stage !== Stage.DROP) return;
    const b = pool.bytes;
    const f = pool.start(d);
    const len = pool.len[d];
    if (!this.matchesOne(b, pool.slot[d], pool.off[d], len, link === Link.ETHERNET && isVxlan6(b, f, len, this.vxlanPort) ? Link.VXLAN6_UNDERLAY : link)) return;
    this.ts = Math.round((performance.timeOrigin + performance.now()) * 1000);
    // (record's VXLAN outer header runs from `peer` to `nodeIp`: here from the node to the destination)
    if (link === Link.VXLAN) this.record(iface, this.comment(reason), b, f, len, link, pool.addr[d], nodeIp, this.vxlanPort, -1);
    else this.record(iface, this.comment(reason), b, f, len, link, 0, 0, 0, -1);
  }

  /**
   * Frames the output port's kernel refused and the addon dropped (PacketIO.takeRejected's records
   * in recs[0..n): [u16 original length][u16 bytes][bytes], laid out as the port sends them), at
   * the drop stage under that port with the reason as the comment. Read by the engine now and then
   * (not per batch), so their time is when it read them.
   */
  rejected(recs: Uint8Array, n: number, iface: string, link: number, reason: number): void {
    if (this.stage !== Stage.DROP) return;
    let at = 0;
    while (at + 4 <= n && this.remaining > 0) {
      const len = recs[at + 2] | (recs[at + 3] << 8);
      const f = at + 4;
      at = f + len;
      if (at > n) break;
      if (!this.matchesOne(recs, 0, f, len, link === Link.ETHERNET && isVxlan6(recs, f, len, this.vxlanPort) ? Link.VXLAN6_UNDERLAY : link)) continue;
      this.ts = Math.round((performance.timeOrigin + performance.now()) * 1000);
      this.record(iface, this.comment(reason), recs, f, len, link, 0, 0, 0, -1);
    }
  }

  private comment(reason: number): string {
    return reason > 0 ? `drop: ${COUNTER_NAMES[reason] ?? reason}` : 'drop';
  }

  /** Keep a copy of the frame (as an Ethernet frame) until its verdict is known. */
  private keep(i: number, b: Uint8Array, f: number, len: number, link: number, nodeIp: number, peer: number, sport: number): void {
    const at = i * (SLOT_SIZE + 64);
    const n = writeAsEthernet(this.scratch, at, b, f, len, link, nodeIp, peer, sport, this.vxlanPort);
    this.scratchLen[i] = n;
  }

  private recordKept(i: number, iface: string, comment: string): void {
    const at = i * (SLOT_SIZE + 64);
    this.record(iface, comment, this.scratch, at, this.scratchLen[i], Link.ETHERNET, 0, 0, 0, i);
  }

  private nameBytes(s: string): Uint8Array {
    let v = this.names.get(s);
    if (!v) {
      v = this.enc.encode(s);
      this.names.set(s, v);
    }
    return v;
  }

  /** Append one record (the frame converted to Ethernet; descriptor d's whole super-frame when it
   * is one), or count it lost when it does not fit. */
  private record(iface: string, comment: string, b: Uint8Array, f: number, len: number, link: number, nodeIp: number, peer: number, sport: number, d: number): void {
    const name = this.nameBytes(iface);
    const com = comment ? this.commentBytes(comment) : EMPTY;
    const dataMax = len + ETH_HLEN + 28;
    // a super-frame's payload behind segment 0's: at most 64 KiB more, within the snaplen
    const sup = d >= 0 && this.flags !== null && this.superRest !== undefined && (this.flags[d] & DescFlag.SUPER) !== 0;
    const restMax = sup ? Math.max(0, Math.min(SUPER_REST_MAX, this.snaplen - dataMax)) : 0;
    const need = (RECORD_HEADER + name.length + com.length + dataMax + restMax + 3) & ~3;
    if (this.used + need > this.buf.length) {
      this.lost++;
      return;
    }
    const at = this.used;
    let p = at + RECORD_HEADER;
    this.buf.set(name, p);
    p += name.length;
    this.buf.set(com, p);
    p += com.length;
    let dl = writeAsEthernet(this.buf, p, b, f, len, link, nodeIp, peer, sport, this.vxlanPort);
    let orig = dl;
    if (sup) {
      const out = this.restOut;
      const rest = this.superRest!(d, this.buf, p + dl, Math.min(restMax, Math.max(0, this.snaplen - dl)), out);
      if (rest > 0) {
        growToSuper(this.buf, p, dl, rest, out[0], out[1], this.vxlanPort);
        orig = dl + rest;
        dl = Math.min(orig, dl + Math.min(restMax, Math.max(0, this.snaplen - dl)));
      }
    }
    if (dl > this.snaplen) dl = this.snaplen;
    const total = (RECORD_HEADER + name.length + com.length + dl + 3) & ~3;
    const dv = this.dv;
    dv.setUint32(at, total, true);
    dv.setUint32(at + 4, Math.floor(this.ts / 2 ** 32), true);
    dv.setUint32(at + 8, this.ts >>> 0, true);
    dv.setUint16(at + 12, name.length, true);
    dv.setUint16(at + 14, com.length, true);
    dv.setUint32(at + 16, dl, true);
    dv.setUint32(at + 20, orig, true);
    this.used = at + total;
    this.taken++;
    this.remaining--;
  }

  private commentBytes(s: string): Uint8Array {
    const k = this.nameBytes(`\0${s}`);
    return k.subarray(1);
  }
}

const EMPTY = new Uint8Array(0);

/** A super-frame's payload beyond segment 0's: 64 KiB at most (native/rxsuper.h). */
const SUPER_REST_MAX = 65536;

function onesAdd(s: number, v: number): number {
  s += v;
  return (s & 0xffff) + (s >>> 16);
}

/** growToSuper's walk: each IP header on the way to TCP, and the VXLAN UDP header behind it (or -1). */
const SUPER_LEVELS = 3;
const superL3 = new Int32Array(SUPER_LEVELS);
const superUdp = new Int32Array(SUPER_LEVELS);

/**
 * The record at out[at..at+len) is segment 0 of a TCP super-frame (as an Ethernet frame: plain,
 * in VXLAN over IPv4 or IPv6, or in IP-in-IP), and `rest` more payload bytes (summing to
 * `restSum`, as if on an even offset) follow it: make its headers the whole super-packet's. Every
 * IPv4 total length and header checksum, IPv6 payload length and VXLAN UDP length grows by `rest`
 * (0 past 65,535), an outer UDP checksum over IPv4 becomes 0, the TCP header takes the
 * super-frame's FIN/PSH and its checksum is updated incrementally (length, flags, the payload
 * added). The header chain is walked first: nothing is changed unless it ends in a TCP header
 * inside the record (UDP to another port than `vxlanPort`, another protocol: the record stays segment 0's).
 */
export function growToSuper(out: Uint8Array, at: number, len: number, rest: number, tcpFlags: number, restSum: number, vxlanPort: number = VXLAN_PORT): void {
  const end = at + len;
  let l3 = at + ETH_HLEN;
  let n = 0;
  let tcp = -1;
  while (n < SUPER_LEVELS) {
    if (l3 + 40 > end) return;
    const v = out[l3] >> 4;
    let l4: number;
    let proto: number;
    if (v === 4) {
      const ihl = (out[l3] & 15) << 2;
      if (ihl < 20) return;
      l4 = l3 + ihl;
      proto = out[l3 + 9];
    } else if (v === 6) {
      l4 = l3 + 40;
      proto = out[l3 + 6];
    } else return;
    superL3[n] = l3;
    superUdp[n] = -1;
    n++;
    if (proto === 6) {
      if (l4 + 20 <= end) tcp = l4;
      break;
    }
    if (proto === 4 || proto === 41) { l3 = l4; continue; } // IP-in-IP: the inner IP header right behind
    // VXLAN: the inner Ethernet frame behind UDP (8) and VXLAN (8)
    if (proto !== 17 || l4 + 16 > end || ((out[l4 + 2] << 8) | out[l4 + 3]) !== vxlanPort) return;
    superUdp[n - 1] = l4;
    l3 = l4 + 16 + ETH_HLEN;
  }
  if (tcp < 0) return;
  let l4len = 0; // the TCP segment's length before
  for (let i = 0; i < n; i++) {
    const h = superL3[i];
    if (out[h] >> 4 === 4) {
      const ihl = (out[h] & 15) << 2;
      const tot = (out[h + 2] << 8) | out[h + 3];
      const nt = tot + rest > 0xffff ? 0 : tot + rest;
      out[h + 2] = nt >> 8; out[h + 3] = nt & 255;
      out[h + 10] = 0; out[h + 11] = 0;
      let sum = 0;
      for (let k = 0; k < ihl; k += 2) sum = onesAdd(sum, (out[h + k] << 8) | out[h + k + 1]);
      const c = ~sum & 0xffff;
      out[h + 10] = c >> 8; out[h + 11] = c & 255;
      l4len = tot - ihl;
    } else {
      const pl = (out[h + 4] << 8) | out[h + 5];
      const np = pl + rest > 0xffff ? 0 : pl + rest;
      out[h + 4] = np >> 8; out[h + 5] = np & 255;
      l4len = pl;
    }
    const u = superUdp[i];
    if (u >= 0) {
      const ul = (out[u + 4] << 8) | out[u + 5];
      const nu = ul + rest > 0xffff ? 0 : ul + rest;
      out[u + 4] = nu >> 8; out[u + 5] = nu & 255;
      if (out[h] >> 4 === 4) { out[u + 6] = 0; out[u + 7] = 0; }
    }
  }
  const l4 = tcp;
  let sum = ~((out[l4 + 16] << 8) | out[l4 + 17]) & 0xffff;
  // the pseudo header's length (IPv6: 32 bits)
  const nl = l4len + rest;
  sum = onesAdd(sum, ~(l4len & 0xffff) & 0xffff);
  sum = onesAdd(sum, ~(l4len >>> 16) & 0xffff);
  sum = onesAdd(sum, nl & 0xffff);
  sum = onesAdd(sum, nl >>> 16);
  const ow = (out[l4 + 12] << 8) | out[l4 + 13];
  out[l4 + 13] |= tcpFlags & 0x09; // FIN, PSH: segment 0 went without them
  sum = onesAdd(sum, ~ow & 0xffff);
  sum = onesAdd(sum, (out[l4 + 12] << 8) | out[l4 + 13]);
  // the payload behind segment 0's starts l4len bytes into the TCP segment
  sum = onesAdd(sum, (l4len & 1) === 0 ? restSum : ((restSum & 255) << 8) | (restSum >> 8));
  const c = ~sum & 0xffff;
  out[l4 + 16] = c >> 8; out[l4 + 17] = c & 255;
}

/**
 * Copy a frame to `out` at `at` as an Ethernet frame: as it is, behind a pseudo Ethernet header
 * (IP), or behind a pseudo Ethernet header and the outer IPv4/UDP headers it arrived in (VXLAN
 * payloads: from the tunnel peer's address and port to the node's VXLAN port, `dport`). Returns the bytes
 * written.
 */
function writeAsEthernet(out: Uint8Array, at: number, b: Uint8Array, f: number, len: number, link: number, nodeIp: number, peer: number, sport: number, dport: number): number {
  if (link === Link.ETHERNET) {
    out.set(b.subarray(f, f + len), at);
    return len;
  }
  out.fill(0, at, at + 12);
  out[at + 12] = 0x08;
  out[at + 13] = 0x00;
  let p = at + ETH_HLEN;
  if (link === Link.VXLAN) {
    const total = 28 + len;
    const h = p;
    out[h] = 0x45; out[h + 1] = 0; out[h + 2] = total >> 8; out[h + 3] = total & 255;
    out[h + 4] = 0; out[h + 5] = 0; out[h + 6] = 0x40; out[h + 7] = 0; out[h + 8] = 64; out[h + 9] = 17;
    out[h + 10] = 0; out[h + 11] = 0;
    out[h + 12] = peer >>> 24; out[h + 13] = (peer >>> 16) & 255; out[h + 14] = (peer >>> 8) & 255; out[h + 15] = peer & 255;
    out[h + 16] = nodeIp >>> 24; out[h + 17] = (nodeIp >>> 16) & 255; out[h + 18] = (nodeIp >>> 8) & 255; out[h + 19] = nodeIp & 255;
    let s = 0;
    for (let k = 0; k < 20; k += 2) s += (out[h + k] << 8) | out[h + k + 1];
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    const c = ~s & 0xffff;
    out[h + 10] = c >> 8; out[h + 11] = c & 255;
    const u = h + 20;
    const ul = 8 + len;
    out[u] = sport >> 8; out[u + 1] = sport & 255; out[u + 2] = dport >> 8; out[u + 3] = dport & 255;
    out[u + 4] = ul >> 8; out[u + 5] = ul & 255; out[u + 6] = 0; out[u + 7] = 0;
    p = u + 8;
  }
  out.set(b.subarray(f, f + len), p);
  return p + len - at;
}
