// Small helpers for the IPv6 cross-node tests.
import { createHash } from 'node:crypto';
export { parseIpv6Bytes, parseMac, toHex } from '../../src/packet';

/** Felix's IPv6 VTEP MAC for a node, computed here from scratch: 0x66 + sha1(name + "-v6")[0..5], as hex. */
export function deriveVtepMacBytes(node: string): string {
  return '66' + createHash('sha1').update(`${node}-v6`).digest('hex').slice(0, 10);
}
