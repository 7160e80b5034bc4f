// MAC address helpers, including the VXLAN VTEP MAC that Calico derives for each node.
import { createHash } from 'node:crypto';

const MAC_TEXT = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** True for "aa:bb:cc:dd:ee:ff" (either case). Calico also stores MACs in this form. */
export function isMacText(text: string): boolean {
  return MAC_TEXT.test(text);
}

/** Lower-cases a MAC so that comparisons and diffs are not fooled by case. */
export function normalizeMac(text: string): string {
  return text.toLowerCase();
}

/** "aa:bb:cc:dd:ee:ff" -> 6 bytes, for writing Ethernet headers. Throws on malformed input. */
export function macToBytes(text: string): Uint8Array {
  if (!isMacText(text)) throw new Error(`not a MAC address: ${JSON.stringify(text)}`);
  return Uint8Array.from(text.split(':'), (h) => parseInt(h, 16));
}

/**
 * The VTEP MAC Felix uses when Node.spec.vxlanTunnelMACAddr is unset: the byte 0x66 (ASCII "f")
 * followed by the first 5 bytes of sha1(nodename); for IPv6 the name hashed is nodename + "-v6".
 * Same as felix/calc/vxlan_resolver.go vtepMACForHost, so podway and Felix nodes agree on MACs.
 * The result has the locally-administered bit set (0x66 = 0b01100110) and is unicast.
 */
export function deriveVtepMac(nodeName: string, ipVersion: 4 | 6 = 4): string {
  const hashed = ipVersion === 6 ? `${nodeName}-v6` : nodeName;
  const sha = createHash('sha1').update(hashed, 'utf8').digest();
  const bytes = [0x66, ...sha.subarray(0, 5)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
