// The reference CRC32c (Castagnoli, reflected 0x82F63B78; RFC 4960 appendix B) the SCTP tests
// check the addon's table-driven completion against: bit by bit, as slow and plain as can be.
export function crc32cRef(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
