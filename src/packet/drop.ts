// Drop reasons returned by validators and decapsulators instead of throwing. 0 is OK, so the hot
// path tests `if (r !== 0)`. Values are small consecutive integers so the engine can index a
// counter array (e.g. Float64Array(DROP_REASON_COUNT)) with them; DROP_NAMES labels the counters.

export const Drop = {
  OK: 0,
  /** Fewer bytes than the fixed header (or the header length field) needs. */
  TOO_SHORT: 1,
  /** Ethernet frame not carrying the expected ethertype (e.g. not IPv4). */
  BAD_ETHERTYPE: 2,
  /** IPv4 version field != 4. */
  BAD_VERSION: 3,
  /** IPv4 IHL < 5 (RFC 791) or header longer than the datagram's total length. */
  BAD_IHL: 4,
  /** IPv4 total length < 20. */
  BAD_TOTAL_LENGTH: 5,
  /** IPv4 header checksum does not verify (RFC 1071). */
  BAD_CHECKSUM: 6,
  /** A fragment where a whole datagram is required (we do not reassemble). */
  FRAGMENT: 7,
  /** IPv4 protocol is not the one required here (e.g. decap of a non-IPIP / non-UDP packet). */
  BAD_PROTOCOL: 8,
  /** UDP length < 8 or beyond the IP payload (RFC 768). */
  BAD_UDP_LENGTH: 9,
  /** UDP/TCP/ICMP checksum does not verify. */
  BAD_L4_CHECKSUM: 10,
  /** TCP data offset < 5 words or beyond the segment. */
  BAD_TCP_OFFSET: 11,
  /** VXLAN I flag not set (RFC 7348 section 5). */
  BAD_VXLAN_FLAGS: 12,
  /** UDP destination port is not the VXLAN port. */
  NOT_VXLAN: 13,
  /** VXLAN VNI differs from the expected one. */
  BAD_VNI: 14,
  /** ARP not Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4) or unknown opcode. */
  BAD_ARP: 15,
  /** IPv6 extension header cut short by the end of the packet, or with a length past it. */
  BAD_EXT_HEADER: 16,
  /** IPv6 extension header chain longer than podway walks (see IPV6_MAX_EXT_HEADERS). */
  EXT_CHAIN_TOO_LONG: 17,
  /** NDP message failing RFC 4861 validation: hop limit != 255, code != 0, too short, an option
   * of length 0 or past the end, or a source link-layer option where the source is unspecified. */
  BAD_NDP: 18,
  /** IPv4 with a source route option (LSRR 0x83, SSRR 0x89): dropped as the kernel drops it with
   * net.ipv4.conf.*.accept_source_route=0 (podway never follows the route; forwarding it would
   * hand the receiver a route chosen by the sender). Looked for only when the header has options. */
  SOURCE_ROUTE: 19,
  /** IPv4 options the kernel's ip_options_compile refuses (it drops the packet and answers
   * parameter problem): an option list whose lengths do not add up (a length below 2 or past the
   * header, a type byte with no length after it), a record route or timestamp whose length or
   * pointer is out of range, or a second one. Looked for only when the header has options. */
  BAD_IP_OPTIONS: 20,
} as const;

export type DropReason = (typeof Drop)[keyof typeof Drop];

/** Number of drop reasons, for sizing counter arrays. */
export const DROP_REASON_COUNT = Object.keys(Drop).length;

/** DROP_NAMES[reason] is the reason's name, e.g. DROP_NAMES[Drop.BAD_CHECKSUM] === 'BAD_CHECKSUM'. */
export const DROP_NAMES: readonly string[] = (() => {
  const names: string[] = new Array(DROP_REASON_COUNT).fill('');
  for (const [name, value] of Object.entries(Drop)) names[value] = name;
  return names;
})();
