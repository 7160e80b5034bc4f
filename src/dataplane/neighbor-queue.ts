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
 * Bounds: `perNeighbor` frames per neighbour (3 by default) and `capacity` in all. A frame that
 * finds its neighbour's share or the whole queue full is not held (the pipeline drops it, counted
 * `neighbor_queue_full`): the first packets of a flow are the ones kept, not the last as in the
 * kernel, whose full queue drops its oldest. A neighbour is named by its family (4: ARP, the IPv4
 * address as a signed 32-bit key; 6: NDP, Neighbors6's id; 1: a local pod whose MAC is unknown,
 * its port) and key.
 *
 * Time is counted in ticks (`age`, called by the engine's neighbour timer), not read from the
 * clock per packet: a frame held more than `maxTicks` ticks is dropped by `age` (a safety net:
 * the engine drops a neighbour's frames as soon as it turns FAILED, `take`).
 */
import { FramePool, SLOT_SHIFT } from './frame-pool';

/** Frames held per neighbour by default (the kernel's historic unres_qlen). */
export const NEIGHBOR_QUEUE_PER_NEIGHBOR = 3;
/** Frames held in all by default (one pool slot each: 64 x 2 KiB per worker). */
export const NEIGHBOR_QUEUE_TOTAL = 64;

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
  /** Arrival order, to release a neighbour's frames oldest first. */
  private readonly seq: Float64Array;
  private nextSeq = 0;
  private used = 0;
  private ticks = 0;
  /** Scratch for release: the places of one neighbour's frames. */
  private readonly picked: Int32Array;

  constructor(
    readonly pool: FramePool,
    /** The first descriptor the queue owns (its slot is slot[first], and so on). */
    readonly first: number,
    readonly capacity: number = NEIGHBOR_QUEUE_TOTAL,
    readonly perNeighbor: number = NEIGHBOR_QUEUE_PER_NEIGHBOR,
    /** Frames held longer than this many ticks are dropped by `age`. */
    readonly maxTicks: number = 5,
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
    this.seq = new Float64Array(capacity);
    this.picked = new Int32Array(Math.max(1, Math.min(perNeighbor, capacity)));
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

  /**
   * Copy descriptor d's frame (ready but for its destination MAC) into a free place for the
   * neighbour (family, key). False, and nothing kept, when the neighbour already has `perNeighbor`
   * frames held or the queue is full. No allocation: one scan of the places and one copy.
   */
  hold(d: number, family: number, key: number, inPort: number): boolean {
    key |= 0;
    if (this.used >= this.capacity) return false;
    let same = 0;
    let free = -1;
    for (let k = 0; k < this.capacity; k++) {
      const f = this.family[k];
      if (f === 0) {
        if (free < 0) free = k;
      } else if (f === family && this.key[k] === key) same++;
    }
    if (same >= this.perNeighbor || free < 0) return false;
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
    this.family[free] = family;
    this.key[free] = key;
    this.inPort[free] = inPort;
    this.heldAt[free] = this.ticks;
    this.seq[free] = this.nextSeq++;
    this.used++;
    return true;
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

  /** Places of (family, key)'s frames into `picked`, oldest first (at most perNeighbor of them). */
  private pick(family: number, key: number): number {
    key |= 0;
    const p = this.picked;
    let n = 0;
    for (let k = 0; k < this.capacity && n < p.length; k++) {
      if (this.family[k] !== family || this.key[k] !== key) continue;
      // insertion by arrival order (a handful of entries)
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
