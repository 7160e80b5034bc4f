/**
 * Packets waiting for an underlay neighbour's MAC, as the kernel keeps them on an INCOMPLETE
 * neighbour entry (its arp_queue, bounded by unres_qlen: 3 packets per neighbour in the kernels
 * before 3.3). Without it the first packet of a flow to a next hop still being resolved (a pod's
 * TCP SYN or DNS query just after a route appeared) is lost, and the sender retries a second later.
 *
 * A held frame is copied into a descriptor and pool slot of its own, reserved for the queue when
 * the pool is made (`first` .. `first + capacity`): nothing is allocated per packet, and the
 * receive descriptors [0, batch) are free again at the next receive, whatever stays held. The
 * frame is copied ready to send but for its destination MAC (source MAC, EtherType and any
 * encapsulation are written before it is held); `release` writes the MAC the neighbour table took
 * and lists the frames, oldest first, for one send call.
 *
 * A TCP super-frame handed on whole (DescFlag.SUPER, native/rxsuper.h: up to 64 KiB, one
 * descriptor for up to 128 segments) is held whole, as the kernel holds one GSO skb on the entry:
 * cut once, by the addon (`superCut`), into its segments, each in a place of its own, exactly as
 * the send side would have cut it (full checksums, ids + k), so that when released they leave as
 * they would have without the wait (and the send side merges them into a GSO message again where
 * it merges any run of segments). Its receive buffer is reused by the next receive, so it cannot
 * wait as one descriptor.
 *
 * Bounds: `perNeighbor` packets per neighbour (3 by default; a super-frame is one packet, as its
 * skb is one in the kernel's queue), `perNeighborBytes` bytes per neighbour (212,992 by default, the kernel's default
 * unres_qlen_bytes: two whole 64 KiB super-frames, ~68-71 KiB each with their segments' headers), and
 * `capacity` places (frames, one pool slot each; a super-frame takes one per segment) in all. A
 * packet that finds its neighbour's share or the whole queue full is not held (the pipeline drops
 * it, every segment of a super-frame counted `neighbor_queue_full`; a super-frame that could never
 * fit whole, more segments than `capacity` or bytes than `perNeighborBytes`, has its segment 0 held
 * alone when its neighbour holds nothing yet, as before super-frames were held whole): the first packets of a flow
 * are the ones kept, not the last as in the kernel, whose full queue drops its oldest. A neighbour is named by its family (4: ARP, the IPv4
 * address as a signed 32-bit key; 6: NDP, Neighbors6's id; 1: a local pod whose MAC is unknown,
 * its port) and key.
 *
 * Time is counted in ticks (`age`, called by the engine's neighbour timer), not read from the
 * clock per packet: a frame held more than `maxTicks` ticks is dropped by `age` (a safety net:
 * the engine drops a neighbour's frames as soon as it turns FAILED, `take`).
 */
import { FramePool, SLOT_SHIFT } from './frame-pool';
import { NEIGHBOR_QUEUE_BYTES, NEIGHBOR_QUEUE_PER_NEIGHBOR, NEIGHBOR_QUEUE_TOTAL } from './neighbor-queue-limits';


export const FAMILY_V4 = 4;
export const FAMILY_V6 = 6;
/** A local L2 pod (veth or TAP) whose MAC podway does not know yet (an endpoint that states none,
 * and a pod that has sent nothing): keyed by its port, released when the pod answers the ARP
 * request podway sends it (pipeline.ts holdForPod). */
export const FAMILY_POD = 1;

export class NeighborQueue {
  /** Per held place k (descriptor first + k): the family (0: free), key, port it came in on, and
   * the tick it was held at. */
  private readonly family: Uint8Array;
  private readonly key: Int32Array;
  private readonly inPort: Int32Array;
  private readonly heldAt: Float64Array;
  /** 1 for the first (or only) frame of a held packet: a super-frame's other segments are 0. */
  private readonly lead: Uint8Array;
  /** Arrival order, to release a neighbour's frames oldest first. */
  private readonly seq: Float64Array;
  private nextSeq = 0;
  private used = 0;
  private ticks = 0;
  /** Scratch for release: the places of one neighbour's frames. */
  private readonly picked: Int32Array;
  /** Scratch for holdSuper: the descriptors a super-frame is cut into. */
  private readonly places: Uint32Array;
  /** The addon's cut (PacketIO.superCut); without it a super-frame cannot be held whole. */
  superCut: ((desc: number, l3: number, places: Uint32Array, n: number) => number) | undefined = undefined;

  constructor(
    readonly pool: FramePool,
    /** The first descriptor the queue owns (its slot is slot[first], and so on). */
    readonly first: number,
    readonly capacity: number = NEIGHBOR_QUEUE_TOTAL,
    readonly perNeighbor: number = NEIGHBOR_QUEUE_PER_NEIGHBOR,
    /** Frames held longer than this many ticks are dropped by `age`. */
    readonly maxTicks: number = 5,
    /** Bytes held per neighbour at most. */
    readonly perNeighborBytes: number = NEIGHBOR_QUEUE_BYTES,
  ) {
    if (capacity < 0 || perNeighbor < 0) throw new Error('NeighborQueue: negative bound');
    if (first < 0 || first + capacity > pool.descriptors || first + capacity > pool.slots) {
      throw new Error(`NeighborQueue: descriptors ${first}..${first + capacity} are not in the pool (${pool.descriptors} descriptors, ${pool.slots} slots)`);
    }
    for (let k = 0; k < capacity; k++) {
      if (pool.slot[first + k] !== first + k) throw new Error('NeighborQueue: its descriptors must own their slots');
    }
    this.family = new Uint8Array(capacity);
    this.key = new Int32Array(capacity);
    this.inPort = new Int32Array(capacity);
    this.heldAt = new Float64Array(capacity);
    this.lead = new Uint8Array(capacity);
    this.seq = new Float64Array(capacity);
    this.picked = new Int32Array(Math.max(1, capacity));
    this.places = new Uint32Array(Math.max(1, capacity));
  }

  /** Frames held now. */
  get size(): number {
    return this.used;
  }

  /** Frames held for one neighbour. */
  count(family: number, key: number): number {
    key |= 0;
    let n = 0;
    for (let k = 0; k < this.capacity; k++) if (this.family[k] === family && this.key[k] === key) n++;
    return n;
  }

  /** Bytes held for one neighbour. */
  bytes(family: number, key: number): number {
    key |= 0;
    let n = 0;
    for (let k = 0; k < this.capacity; k++) if (this.family[k] === family && this.key[k] === key) n += this.pool.len[this.first + k];
    return n;
  }

  /** Room for a packet of `frames` frames and `bytes` bytes for (family, key): the index of the
   * first free place, or -1 (its packets or bytes, or the queue, full). One scan of the places. */
  private room(family: number, key: number, frames: number, bytes: number): number {
    if (this.used + frames > this.capacity) return -1;
    let packets = 0;
    let held = 0;
    let free = -1;
    for (let k = 0; k < this.capacity; k++) {
      const f = this.family[k];
      if (f === 0) {
        if (free < 0) free = k;
      } else if (f === family && this.key[k] === key) {
        packets += this.lead[k];
        held += this.pool.len[this.first + k];
      }
    }
    if (packets >= this.perNeighbor || held + bytes > this.perNeighborBytes) return -1;
    return free;
  }

  /**
   * Copy descriptor d's frame (ready but for its destination MAC) into a free place for the
   * neighbour (family, key). False, and nothing kept, when the neighbour already has `perNeighbor`
   * packets or `perNeighborBytes` bytes held or the queue is full. No allocation: one scan of the
   * places and one copy.
   */
  hold(d: number, family: number, key: number, inPort: number): boolean {
    key |= 0;
    const free = this.room(family, key, 1, this.pool.len[d]);
    if (free < 0) return false;
    const pool = this.pool;
    const q = this.first + free;
    const len = pool.len[d];
    const src = pool.start(d);
    // The same offset inside the slot: the frame keeps its headroom (and stays inside its slot).
    pool.off[q] = pool.off[d];
    pool.bytes.copyWithin((pool.slot[q] << SLOT_SHIFT) + pool.off[q], src, src + len);
    pool.len[q] = len;
    pool.flags[q] = 0;
    pool.addr[q] = 0;
    pool.aport[q] = 0;
    pool.segs[q] = 1;
    pool.more[q] = 0;
    this.occupy(free, family, key, inPort, 1);
    this.used++;
    return true;
  }

  /** Place p now holds a packet for (family, key): `lead` 1 for a packet's first (or only) frame. */
  private occupy(p: number, family: number, key: number, inPort: number, lead: number): void {
    this.family[p] = family;
    this.key[p] = key;
    this.inPort[p] = inPort;
    this.heldAt[p] = this.ticks;
    this.lead[p] = lead;
    this.seq[p] = this.nextSeq++;
  }

  /**
   * Descriptor d, a live TCP super-frame of `segs` segments and `bytes` bytes in all (its
   * Ethernet frame ready but for the destination MAC, its IP header, or its tunnel's outer one,
   * at offset 14), held whole for (family, key): cut into `segs` free places, each segment as the
   * send side would cut it. Returns `segs`; 0 when the neighbour's share or the queue has no room
   * for all of it (nothing held: the caller drops it whole); -1 when it cannot be cut (no addon,
   * or no longer a live super-frame) or could never fit whole (more segments than the queue's
   * places or bytes than the neighbour's budget) while the neighbour holds nothing yet: the caller
   * holds segment 0 as a plain frame.
   */
  holdSuper(d: number, family: number, key: number, inPort: number, segs: number, bytes: number): number {
    key |= 0;
    const cut = this.superCut;
    if (cut === undefined || segs < 2) return -1;
    let k = this.room(family, key, segs, bytes);
    if (k < 0) return (segs > this.capacity || bytes > this.perNeighborBytes) && this.count(family, key) === 0 ? -1 : 0;
    const pool = this.pool;
    const places = this.places;
    for (let j = 0; j < segs; k++) {
      if (this.family[k] !== 0) continue;
      const q = this.first + k;
      pool.off[q] = pool.off[d]; // the same headroom as the frame (each segment is shorter)
      places[j++] = q;
    }
    if (cut(d, 14, places, segs) !== segs) return -1;
    for (let j = 0; j < segs; j++) {
      const q = places[j];
      pool.addr[q] = 0;
      pool.aport[q] = 0;
      this.occupy(q - this.first, family, key, inPort, j === 0 ? 1 : 0);
    }
    this.used += segs;
    return segs;
  }

  /**
   * The frames held for (family, key), oldest first: their destination MAC set to the 6 bytes at
   * mac[macOff], their descriptors written to pool.txList[at..], and their places freed (send them
   * before the next `hold`). Returns how many.
   */
  release(family: number, key: number, mac: Uint8Array, macOff: number, at: number, srcMac: Uint8Array): number {
    const n = this.pick(family, key);
    const pool = this.pool;
    for (let j = 0; j < n; j++) {
      const k = this.picked[j];
      const q = this.first + k;
      const f = pool.start(q);
      for (let b = 0; b < 6; b++) pool.bytes[f + b] = mac[macOff + b];
      // The source too: the node may have moved to another underlay interface while it was held.
      for (let b = 0; b < 6; b++) pool.bytes[f + 6 + b] = srcMac[b];
      pool.txList[at + j] = q;
      this.free(k);
    }
    return n;
  }

  /** Drop every frame held for (family, key) (the neighbour failed): `dropped(descriptor, inPort)`
   * is told of each before its place is freed. Returns how many. */
  take(family: number, key: number, dropped: (d: number, inPort: number) => void): number {
    key |= 0;
    let n = 0;
    for (let k = 0; k < this.capacity; k++) {
      if (this.family[k] !== family || this.key[k] !== key) continue;
      dropped(this.first + k, this.inPort[k]);
      this.free(k);
      n++;
    }
    return n;
  }

  /** One tick passed: frames held more than `maxTicks` ticks are dropped (`dropped` told of each). */
  age(dropped: (d: number, inPort: number) => void): number {
    this.ticks++;
    if (this.used === 0) return 0;
    let n = 0;
    for (let k = 0; k < this.capacity; k++) {
      if (this.family[k] === 0 || this.ticks - this.heldAt[k] <= this.maxTicks) continue;
      dropped(this.first + k, this.inPort[k]);
      this.free(k);
      n++;
    }
    return n;
  }

  /** The neighbours with frames held now (family, key pairs), for the engine's timer. */
  neighbors(): Array<{ family: number; key: number }> {
    const out: Array<{ family: number; key: number }> = [];
    for (let k = 0; k < this.capacity; k++) {
      const f = this.family[k];
      if (f !== 0 && !out.some((o) => o.family === f && o.key === this.key[k])) out.push({ family: f, key: this.key[k] });
    }
    return out;
  }

  /** Places of (family, key)'s frames into `picked`, oldest first. */
  private pick(family: number, key: number): number {
    key |= 0;
    const p = this.picked;
    let n = 0;
    for (let k = 0; k < this.capacity && n < p.length; k++) {
      if (this.family[k] !== family || this.key[k] !== key) continue;
      // insertion by arrival order (a handful of packets; a super-frame's segments come in order)
      let j = n++;
      while (j > 0 && this.seq[p[j - 1]] > this.seq[k]) {
        p[j] = p[j - 1];
        j--;
      }
      p[j] = k;
    }
    return n;
  }

  private free(k: number): void {
    this.family[k] = 0;
    this.used--;
  }
}
