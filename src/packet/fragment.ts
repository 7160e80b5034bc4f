/**
 * IPv4 fragmentation as a Linux router does it to a forwarded packet without DF that is bigger
 * than its output device's MTU (net/ipv4/ip_output.c, ip_do_fragment's slow path):
 *
 * - every fragment keeps the original header's length (ihl): options whose copy flag (RFC 791, the
 *   option type's top bit) is clear stay in the first fragment only and are overwritten with NOOP
 *   (1) in the others (ip_options_fragment), the copied ones (security, source routes) are in all;
 * - each fragment but the last carries (mtu - ihl) & ~7 bytes of data (offsets in 8-byte units),
 *   the last what remains;
 * - the id, TOS, TTL, protocol and addresses are the original's; MF is set on every fragment but
 *   the last, and on the last too when the original was itself a non-last fragment; offsets count
 *   from the original's own offset (a fragment fragmented again);
 * - each header's checksum is computed once, over the finished header.
 *
 * A packet that cannot be fragmented so (DF set, or an MTU that leaves fewer than 8 data bytes
 * after the header: the kernel's ip_do_fragment fails with -EINVAL) is the caller's to drop.
 * No allocation: fragments are written where the caller says (pool slots).
 */
import { ipv4FillChecksum } from './ipv4';

/** IP option types (RFC 791): end of options, no operation. */
const IPOPT_END = 0;
const IPOPT_NOOP = 1;

/** Data bytes per fragment (but the last) for a header of `hl` bytes under `mtu`: (mtu - hl)
 * rounded down to 8; 0 when fewer than 8 (cannot be fragmented under that MTU). */
export function ipv4FragmentData(mtu: number, hl: number): number {
  const d = (mtu - hl) & ~7;
  return d >= 8 ? d : 0;
}

/** How many fragments the IPv4 packet at b[ip] (total length and ihl from its header) becomes under
 * `mtu`: 1 when it fits, 0 when it cannot be fragmented under that MTU (ipv4FragmentData 0). */
export function ipv4FragmentCount(b: Uint8Array, ip: number, mtu: number): number {
  const total = (b[ip + 2] << 8) | b[ip + 3];
  if (total <= mtu) return 1;
  const hl = (b[ip] & 15) << 2;
  const per = ipv4FragmentData(mtu, hl);
  if (per === 0) return 0;
  return Math.ceil((total - hl) / per);
}

/**
 * Writes fragment k (k >= 1) of the IPv4 packet at b[ip] under `mtu` at b[at] (a region that must
 * not overlap the original): its header (non-copied options turned into NOOP), then its slice of
 * the data. The original is not changed. Returns the fragment's length. The caller checked
 * ipv4FragmentCount(b, ip, mtu) > k.
 */
export function ipv4WriteFragment(b: Uint8Array, ip: number, mtu: number, k: number, at: number): number {
  const hl = (b[ip] & 15) << 2;
  const total = (b[ip + 2] << 8) | b[ip + 3];
  const per = ipv4FragmentData(mtu, hl);
  const data = total - hl;
  const from = k * per;
  const len = Math.min(per, data - from);
  b.copyWithin(at, ip, ip + hl);
  if (hl > 20) noopUncopiedOptions(b, at + 20, at + hl);
  b.copyWithin(at + hl, ip + hl + from, ip + hl + from + len);
  const last = from + len >= data;
  setFragmentFields(b, at, hl + len, b[ip + 6], b[ip + 7], from, last);
  return hl + len;
}

/**
 * Makes the IPv4 packet at b[ip] its own first fragment under `mtu`, in place: total length cut
 * to the header and the first slice of data, MF set, the checksum computed again (its options all
 * kept, as the kernel's first fragment keeps them). Write the other fragments (ipv4WriteFragment)
 * first: they read the data this one no longer covers. Returns the first fragment's length.
 */
export function ipv4MakeFirstFragment(b: Uint8Array, ip: number, mtu: number): number {
  const hl = (b[ip] & 15) << 2;
  const len = hl + ipv4FragmentData(mtu, hl);
  setFragmentFields(b, ip, len, b[ip + 6], b[ip + 7], 0, false);
  return len;
}

/** Total length, MF and offset of a fragment whose data starts `from` bytes into the original's
 * (flags/offset bytes f6, f7), then its header checksum. */
function setFragmentFields(b: Uint8Array, at: number, len: number, f6: number, f7: number, from: number, last: boolean): void {
  const origOff = ((f6 & 0x1f) << 8) | f7;
  const origMf = (f6 & 0x20) !== 0;
  const off = origOff + (from >>> 3);
  // DF is clear (the caller fragments only such packets); the reserved bit is kept as it came
  const flags = (f6 & 0xc0) | (!last || origMf ? 0x20 : 0);
  b[at + 2] = len >>> 8;
  b[at + 3] = len & 255;
  b[at + 6] = flags | ((off >>> 8) & 0x1f);
  b[at + 7] = off & 255;
  ipv4FillChecksum(b, at);
}

/** ip_options_fragment: every option in [o, end) whose copy flag is clear becomes NOOPs (END and
 * what follows it stay; a malformed length stops the walk, as the kernel's). */
function noopUncopiedOptions(b: Uint8Array, o: number, end: number): void {
  while (o < end) {
    const t = b[o];
    if (t === IPOPT_END) return;
    if (t === IPOPT_NOOP) { o++; continue; }
    if (o + 1 >= end) return;
    const l = b[o + 1];
    if (l < 2 || o + l > end) return;
    if ((t & 0x80) === 0) b.fill(IPOPT_NOOP, o, o + l);
    o += l;
  }
}
