// Big-endian (network order) loads and stores on a Uint8Array at an absolute offset. Small enough
// for V8 to inline; no allocation. Stores rely on Uint8Array's ToUint8 truncation (mod 256).

export function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

/** Unsigned 32-bit load (`>>> 0` so e.g. IPv4 addresses >= 128.0.0.0 stay positive). */
export function get32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export function set16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function set32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** Byte copy for short, non-overlapping (or forward-safe) header-sized ranges. For a few dozen
 * bytes a plain loop beats TypedArray.prototype.set / copyWithin, which pay a builtin call. */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, n: number): void {
  for (let i = 0; i < n; i++) dst[dstOff + i] = src[srcOff + i];
}

/** Off-path: hex string (no separators) of `len` bytes at `off`. */
export function toHex(b: Uint8Array, off = 0, len = b.length - off): string {
  let s = '';
  for (let i = 0; i < len; i++) s += b[off + i].toString(16).padStart(2, '0');
  return s;
}

/** Off-path: bytes of a hex string (whitespace ignored). */
export function fromHex(hex: string): Uint8Array {
  const h = hex.replace(/\s+/g, '');
  if (h.length % 2 !== 0 || /[^0-9a-fA-F]/.test(h)) throw new Error(`bad hex string: ${hex}`);
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(i * 2, 2), 16);
  return out;
}
