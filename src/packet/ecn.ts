// ECN through the tunnels (RFC 6040), the way Linux's ip_tunnel / vxlan do it (include/net/
// inet_ecn.h: INET_ECN_encapsulate on transmit, INET_ECN_decapsulate on receive).
//
// The ECN field is the low 2 bits of the IPv4 TOS byte / the IPv6 traffic class:
//   00 Not-ECT   01 ECT(1)   10 ECT(0)   11 CE
//
// Encapsulation: the outer ECN field is the inner one, except that CE becomes ECT(0) (RFC 6040
// section 4.1, "normal mode": a router marking the outer header can still say CE, and a CE
// already inside stays inside).
//
// Decapsulation (RFC 6040 section 4.2, figure 4), outer (columns) against inner (rows):
//
//            | Not-ECT  ECT(0)   ECT(1)   CE
//   Not-ECT  | Not-ECT  Not-ECT  Not-ECT  drop
//   ECT(0)   | ECT(0)   ECT(0)   ECT(1)   CE
//   ECT(1)   | ECT(1)   ECT(1)   ECT(1)   CE
//   CE       | CE       CE       CE       CE
//
// Only the inner ECN field changes (to CE, or ECT(0) to ECT(1)); an IPv4 inner header checksum
// is updated incrementally (RFC 1624), an IPv6 header has none and the transport checksums do
// not cover the traffic class. Outer CE over a Not-ECT inner packet is dropped: the congestion
// signal cannot be passed on to a transport that does not understand it (the kernel counts it
// in the device's rx_frame_errors; podway in `tunnel_ecn_not_ect`).

import { csumReplace16 } from './checksum';

export const ECN_NOT_ECT = 0;
export const ECN_ECT_1 = 1;
export const ECN_ECT_0 = 2;
export const ECN_CE = 3;

/** For traces: the field's values by name. */
export const ECN_NAMES: readonly string[] = ['not-ect', 'ect(1)', 'ect(0)', 'ce'];

/** ecnDecapsulate's verdicts (the kernel's __INET_ECN_decapsulate return values). */
export const ECN_DECAP_OK = 0;
/** Forwarded unchanged, but an ECT outer over a Not-ECT inner: something on the path is broken
 * (the kernel logs it when its log_ecn_error parameter is set). */
export const ECN_DECAP_SUSPECT = 1;
/** Outer CE over a Not-ECT inner packet: must be dropped. */
export const ECN_DECAP_DROP = 2;

/** The outer ECN field for an inner one: CE -> ECT(0), the others copied. */
export function ecnEncapsulate(innerEcn: number): number {
  const e = innerEcn & 3;
  return e === ECN_CE ? ECN_ECT_0 : e;
}

/**
 * The ECN field of the packet inside an Ethernet frame at `eth` (IPv4: the TOS byte's low bits,
 * IPv6: the traffic class's), 0 for any other type (as the kernel's ip_tunnel_get_dsfield).
 * Reads bytes eth+12 .. eth+15: the caller's frame holds at least the Ethernet header and 2 more.
 */
export function innerEcnOfFrame(b: Uint8Array, eth: number): number {
  const t0 = b[eth + 12];
  const t1 = b[eth + 13];
  if (t0 === 0x08 && t1 === 0x00) return b[eth + 15] & 3;
  if (t0 === 0x86 && t1 === 0xdd) return (b[eth + 15] >>> 4) & 3;
  return 0;
}

/**
 * RFC 6040 decapsulation of the inner IPv4 header at `ip` (validated) for an outer ECN field
 * `outerEcn`: sets the inner to CE (outer CE) or ECT(0) to ECT(1) (outer ECT(1)), the header
 * checksum updated incrementally. Returns ECN_DECAP_OK, ECN_DECAP_SUSPECT (unchanged) or
 * ECN_DECAP_DROP (unchanged; the caller drops it).
 */
export function ecnDecapsulateIpv4(b: Uint8Array, ip: number, outerEcn: number): number {
  const tos = b[ip + 1];
  const inner = tos & 3;
  const outer = outerEcn & 3;
  if (inner === ECN_NOT_ECT) return outer === ECN_NOT_ECT ? ECN_DECAP_OK : outer === ECN_CE ? ECN_DECAP_DROP : ECN_DECAP_SUSPECT;
  let nt: number;
  if (outer === ECN_CE) nt = tos | ECN_CE;
  else if (outer === ECN_ECT_1 && inner === ECN_ECT_0) nt = (tos & 0xfc) | ECN_ECT_1;
  else return ECN_DECAP_OK;
  if (nt === tos) return ECN_DECAP_OK;
  b[ip + 1] = nt;
  // word 0 is version/IHL and TOS
  const c = csumReplace16((b[ip + 10] << 8) | b[ip + 11], (b[ip] << 8) | tos, (b[ip] << 8) | nt);
  b[ip + 10] = c >>> 8;
  b[ip + 11] = c;
  return ECN_DECAP_OK;
}

/** ecnDecapsulateIpv4 for an inner IPv6 header at `ip` (no header checksum to update). */
export function ecnDecapsulateIpv6(b: Uint8Array, ip: number, outerEcn: number): number {
  const v = b[ip + 1];
  const inner = (v >>> 4) & 3;
  const outer = outerEcn & 3;
  if (inner === ECN_NOT_ECT) return outer === ECN_NOT_ECT ? ECN_DECAP_OK : outer === ECN_CE ? ECN_DECAP_DROP : ECN_DECAP_SUSPECT;
  if (outer === ECN_CE) b[ip + 1] = v | 0x30;
  else if (outer === ECN_ECT_1 && inner === ECN_ECT_0) b[ip + 1] = (v & 0xcf) | 0x10;
  return ECN_DECAP_OK;
}

/** The ECN field of an outer IPv4 header at `ip`. */
export function ipv4EcnAt(b: Uint8Array, ip: number): number {
  return b[ip + 1] & 3;
}
/** The ECN field of an outer IPv6 header at `ip`. */
export function ipv6EcnAt(b: Uint8Array, ip: number): number {
  return (b[ip + 1] >>> 4) & 3;
}

/** The trace line of a decapsulation's ECN step (the pipelines' `podway trace` stage). */
export function ecnDecapText(outerEcn: number, before: number, after: number, result: number): string {
  return `ecn: outer ${ECN_NAMES[outerEcn]}, inner ${ECN_NAMES[before]}${after !== before ? ' -> ' + ECN_NAMES[after] : ''}${result === ECN_DECAP_DROP ? ': dropped (RFC 6040)' : ''}`;
}
