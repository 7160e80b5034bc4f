// Frame pool layout shared with the native I/O addon (native/). All frames live in ONE ArrayBuffer
// cut into fixed-size slots; a packet is just a byte offset into that buffer.
//
//   slot i: [i*SLOT_SIZE .................................................. (i+1)*SLOT_SIZE)
//           |<-- HEADROOM -->|<-- frame as received (Ethernet first) ------------>|
//
// The headroom lets the dataplane prepend outer headers in place by moving the frame's start
// offset backwards instead of copying the payload.

/** Bytes per slot in the frame pool. */
export const SLOT_SIZE = 2048;
/** Offset of a received frame inside its slot. Must cover the largest prepend (VXLAN: 50 bytes,
 * ICMP error built in place: 28 bytes) with room to spare, and keep frames 2-byte aligned. */
export const HEADROOM = 128;
/** Largest frame a slot can hold once the headroom is reserved. */
export const MAX_FRAME_LEN = SLOT_SIZE - HEADROOM;

export const ETH_HLEN = 14;
export const IPV4_MIN_HLEN = 20;
export const UDP_HLEN = 8;
export const VXLAN_HLEN = 8;
/** Outer Ethernet + IPv4 + UDP + VXLAN (RFC 7348 section 5). */
export const VXLAN_OVERHEAD = ETH_HLEN + IPV4_MIN_HLEN + UDP_HLEN + VXLAN_HLEN; // 50
/** Outer IPv4 header for IP-in-IP (RFC 2003). */
export const IPIP_OVERHEAD = IPV4_MIN_HLEN; // 20

/** Offset of the frame start of slot `i` (where the addon writes a received frame). */
export function slotFrameOffset(i: number): number {
  return i * SLOT_SIZE + HEADROOM;
}

/** Offset of `off` inside its slot: how much room is left in front of it for prepending. */
export function headroomOf(off: number): number {
  return off & (SLOT_SIZE - 1);
}
