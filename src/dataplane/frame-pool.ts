/**
 * The one frame pool of a process (or worker) and its descriptor arrays, in plain typed arrays: it
 * exists without the native addon, so the pipeline runs (and is unit-tested) in any Node process.
 * A PacketIO implementation is handed the pool once (`io.setPool(pool)`) and then moves frames
 * between its ports and the pool's slots.
 *
 * A frame is described by descriptor i: pool slot `slot[i]`, start `off[i]` inside the slot, length
 * `len[i]`, the port it came from or goes to, flags, and for UDP/raw sockets the peer address.
 * Receive writes frames at HEADROOM inside their slot, so outer headers can be prepended in place.
 * Send takes the descriptor indices listed in `txList[first .. first+count)`.
 */
import * as layout from '../packet/layout';

// Re-exported as plain values, never as `export { X } from` or `export { X }` of an import: tsc
// compiles those into getters defined over the `exports.X = void 0` it writes first, which turns
// this module's exports object into a dictionary, and then every `DescFlag.X` read on the
// forwarding path (several per frame) was a generic inline-cache call instead of a constant
// (test/dataplane/hot-exports.test.ts).
export const SLOT_SIZE = layout.SLOT_SIZE;
export const HEADROOM = layout.HEADROOM;
/** log2(SLOT_SIZE): slot index -> byte offset by a shift. */
export const SLOT_SHIFT = 11;

/** Descriptor flags set by receive (mirrors native/ports.h). */
export const DescFlag = {
  TRUNCATED: 0x1,
  CSUM_PARTIAL: 0x2,
  OUTGOING: 0x4,
  /** Segment 0 of a tunnel super-frame handed on whole (native/rxsuper.h): it stands for
   * `segs[i]` segments, the others adding `more[i]` bytes; where it is sent, they all go. */
  SUPER: 0x8,
  /** UDP ports: bits 4-5 hold the ECN field of the datagram's IP header (the addon asks for it
   * with IP_RECVTOS / IPV6_RECVTCLASS), for a VXLAN socket the outer header's (RFC 6040). */
  ECN_MASK: 0x30,
  ECN_SHIFT: 4,
} as const;

export class FramePool {
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly slot: Uint32Array;
  readonly off: Uint16Array;
  readonly len: Uint16Array;
  readonly port: Uint16Array;
  readonly flags: Uint16Array;
  readonly addr: Uint32Array;
  readonly aport: Uint16Array;
  readonly txList: Uint32Array;
  /** DescFlag.SUPER only: wire segments the descriptor stands for, and the bytes the others add
   * (as frames in the descriptor's current form: the pipeline keeps it so when it moves the frame). */
  readonly segs: Uint16Array;
  readonly more: Uint32Array;

  constructor(readonly slots: number, readonly descriptors = slots) {
    if (descriptors > slots) throw new Error(`FramePool: ${descriptors} descriptors need at least as many slots (${slots})`);
    if (1 << SLOT_SHIFT !== SLOT_SIZE) throw new Error('FramePool: SLOT_SHIFT does not match SLOT_SIZE');
    this.buffer = new ArrayBuffer(slots * SLOT_SIZE);
    this.bytes = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
    // Each array gets its own ArrayBuffer well above V8's on-heap limit, so its memory never moves
    // while C holds a pointer to it.
    const n = Math.max(descriptors, 64);
    this.slot = new Uint32Array(new ArrayBuffer(n * 4));
    this.off = new Uint16Array(new ArrayBuffer(n * 2));
    this.len = new Uint16Array(new ArrayBuffer(n * 2));
    this.port = new Uint16Array(new ArrayBuffer(n * 2));
    this.flags = new Uint16Array(new ArrayBuffer(n * 2));
    this.addr = new Uint32Array(new ArrayBuffer(n * 4));
    this.aport = new Uint16Array(new ArrayBuffer(n * 2));
    this.txList = new Uint32Array(new ArrayBuffer(n * 4));
    this.segs = new Uint16Array(new ArrayBuffer(n * 2));
    this.more = new Uint32Array(new ArrayBuffer(n * 4));
    for (let i = 0; i < n; i++) {
      this.slot[i] = i < slots ? i : 0;
      this.off[i] = HEADROOM;
    }
  }

  /** Byte offset of descriptor i's frame in the pool. */
  start(i: number): number {
    return (this.slot[i] << SLOT_SHIFT) + this.off[i];
  }
}
