// Whole-frame validation for the forwarding fast path.

import { Drop, DropReason } from './drop';
import { ETHERTYPE_IPV4 } from './ethernet';
import { validateIpv4 } from './ipv4';
import { ETH_HLEN } from './layout';

/**
 * Ethernet + IPv4 validation of the frame at [off, off+len) in one call (no VLAN tags: pod veths
 * never carry them). On OK the IPv4 header at off+14 passed validateIpv4 with len-14 bytes.
 */
export function validateEthIpv4(b: Uint8Array, off: number, len: number): DropReason {
  if (len < ETH_HLEN) return Drop.TOO_SHORT;
  if (((b[off + 12] << 8) | b[off + 13]) !== ETHERTYPE_IPV4) return Drop.BAD_ETHERTYPE;
  return validateIpv4(b, off + ETH_HLEN, len - ETH_HLEN);
}
