// Byte helpers for the native tests: big-endian reads/writes and the one's-complement sum,
// written independently of src/packet so the native code is checked against a separate reference.

export const rd16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
export const rd32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
export function wr16(b: Uint8Array, o: number, v: number): void { b[o] = (v >>> 8) & 255; b[o + 1] = v & 255; }
export function wr32(b: Uint8Array, o: number, v: number): void { wr16(b, o, v >>> 16); wr16(b, o + 2, v & 0xffff); }

/** Unfolded sum of the 16-bit big-endian words of b[off, off+len), added to `acc`. */
export function sum16(b: Uint8Array, off: number, len: number, acc = 0): number {
  for (let i = 0; i + 1 < len; i += 2) acc += (b[off + i] << 8) | b[off + i + 1];
  if (len & 1) acc += b[off + len - 1] << 8;
  return acc;
}

/** Folds a sum to 16 bits (end-around carry). */
export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}
