/*
 * Software segmentation of TSO/GSO super-frames and completion of partial checksums, for frames an
 * AF_PACKET socket received with a virtio_net_hdr (see gso.h).
 *
 * The rules follow what the kernel's own software GSO does (inet_gso_segment, tcp_gso_segment,
 * __udp_gso_segment), so a pod sees on the wire what its kernel would have sent without offloads:
 *   IPv4: every segment repeats the header (options too); total length per segment; the id of
 *         segment k is the super-frame's id + k; header checksum recomputed.
 *   IPv6: every segment repeats the fixed header; payload length per segment (ipv6_gso_segment).
 *         Only TCP or UDP right after the fixed header: a super-frame with extension headers, or
 *         a BIG TCP one (payload length 0, hop-by-hop jumbo), is not segmented (counted dropped).
 *   TCP:  sequence number advanced by the payload before the segment; FIN and PSH only on the last
 *         segment, CWR only on the first; checksum computed in full (pseudo-header + segment).
 *   UDP (USO): length per segment; checksum in full, 0 sent as 0xffff.
 * The super-frame's own L4 checksum field (a partial sum, or garbage) is never trusted: every
 * checksum is computed over the bytes actually sent.
 */
#include "gso.h"
#include "rxsuper.h"

#include <string.h>
#include <sys/uio.h>

/* Store ~sum in memory order (the sum is in memory order already). */
static inline void put_csum(uint8_t *at, uint16_t c) { memcpy(at, &c, 2); }

/* TCP/UDP checksum over pseudo-header + [l4, l4 + l4len); the field must be zero. */
static uint16_t l4_csum(const uint8_t *ip, const uint8_t *l4, uint32_t l4len, uint8_t proto, int v6) {
  return (uint16_t)~csum_fold(csum_add(l4, l4len, pseudo_sum(ip, v6, proto, l4len)));
}

/* CRC32c (Castagnoli, reflected polynomial 0x82F63B78: RFC 4960 appendix B, RFC 3720 B.4), the
 * SCTP checksum: one byte per step through this table (generated from the polynomial; no
 * allocation, no state). */
static const uint32_t crc32c_table[256] = {
  0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu,
  0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
  0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu,
  0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
  0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
  0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
  0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
  0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
  0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu,
  0x1642ae59u, 0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
  0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu,
  0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
  0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu,
  0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
  0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
  0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
  0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu,
  0x4767748au, 0xb50cf789u, 0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
  0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu,
  0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
  0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
  0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
  0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u,
  0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
  0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
  0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
  0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u, 0x502036a5u,
  0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
  0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u,
  0x0e330a81u, 0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
  0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u,
  0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
  0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u,
  0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
  0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
  0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
  0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u,
  0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
  0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u,
  0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
  0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u,
  0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
  0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

/* CRC32c (Castagnoli) of p[0..len) continuing `crc` (0 to start): RFC 3720 B.4's vectors.
 * Static: csum_complete_partial is its one caller (it inlines). */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, uint32_t len) {
  crc = ~crc;
  for (uint32_t i = 0; i < len; i++) crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* What a plain frame's NEEDS_CSUM offsets name (csum_offsets_ok). */
enum { CSUM_BAD = 0, CSUM_INET = 1, CSUM_SCTP = 2 };

/* Whether a plain frame's NEEDS_CSUM offsets name an L4 checksum the kernel offloads: inside the
 * frame, csum_offset TCP's (16) or UDP's (6), and csum_start the TCP/UDP header right behind the
 * IPv4/IPv6 header, or, behind another protocol (IPIP, GRE, IPv6 extension headers) or inside a UDP
 * datagram that carries a tunnel (VXLAN: an inner header at least 8 + 8 + 14 + 20 bytes in), past
 * that header. Never into the Ethernet or IP header, another part of the L4 header or the payload
 * (a pod's kernel takes those: it checks only that they lie in the frame). Not IP: the frame bound
 * only (the pipeline drops what it does not forward). SCTP (protocol 132) right behind the IP
 * header with csum_offset 8, its CRC32c field (a veth offers SCTP CRC offload: NETIF_F_SCTP_CRC), is
 * CSUM_SCTP (any other offsets into SCTP lie: CSUM_BAD); the others CSUM_INET, or CSUM_BAD. */
static int csum_offsets_ok(const uint8_t *f, uint32_t len, uint32_t start, uint32_t off) {
  if (start >= len || off > len - start || len - start - off < 2) return 0;
  if (len < 14) return 1;
  uint16_t et = rd16(f + 12);
  uint32_t l4;
  uint8_t proto;
  if (et == 0x0800 && len >= 34) {
    l4 = 14 + (uint32_t)(f[14] & 15) * 4;
    proto = f[23];
  } else if (et == 0x86dd && len >= 54) {
    l4 = 54;
    proto = f[20];
  } else {
    return 1;
  }
  if (proto == 132) return start == l4 && off == 8 && len - start >= 12 ? CSUM_SCTP : CSUM_BAD;
  if (off != 16 && off != 6) return 0;
  if (start < l4) return 0;
  if (proto == 6) return start == l4 && off == 16;
  if (proto == 17) return start == l4 ? off == 6 : start >= l4 + 8 + 8 + 14 + 20;
  return 1;
}

int csum_complete_partial(uint8_t *f, uint32_t len, uint32_t csum_start, uint32_t csum_offset) {
  int kind = csum_offsets_ok(f, len, csum_start, csum_offset);
  if (kind == CSUM_BAD) return -1;
  if (kind == CSUM_SCTP) {
    /* RFC 4960 6.8: the CRC32c of the whole SCTP packet with the field zeroed, stored least
     * significant byte first (as the kernel's sctp_compute_cksum: cpu_to_le32). */
    uint8_t *field = f + csum_start + 8;
    memset(field, 0, 4);
    uint32_t c = crc32c(0, f + csum_start, len - csum_start);
    field[0] = (uint8_t)c;
    field[1] = (uint8_t)(c >> 8);
    field[2] = (uint8_t)(c >> 16);
    field[3] = (uint8_t)(c >> 24);
    return 0;
  }
  /* The field holds the folded pseudo-header sum; summing over it adds it in. */
  uint16_t c = (uint16_t)~csum_fold(csum_add(f + csum_start, len - csum_start, 0));
  if (c == 0) c = 0xffff;
  put_csum(f + csum_start + csum_offset, c);
  return 0;
}

/* The L4 header at l4 (TCP or UDP), its end into *hdrs and its checksum's offset into *csum_at. */
static int l4_bounds(const uint8_t *f, uint32_t len, uint32_t l4, uint8_t proto, uint32_t *hdrs, uint32_t *csum_at) {
  if (proto == 6) {
    if (l4 + 20 > len) return GSO_BAD;
    uint32_t doff = (uint32_t)(f[l4 + 12] >> 4) * 4;
    if (doff < 20 || l4 + doff > len) return GSO_BAD;
    *hdrs = l4 + doff;
    *csum_at = 16;
  } else {
    if (l4 + 8 > len) return GSO_BAD;
    *hdrs = l4 + 8;
    *csum_at = 6;
  }
  return GSO_OK;
}

/* Segment count and the slot check, once l3/l4/hdrs/payload/proto are known. */
static int plan_segments(struct gso_plan *g, const struct virtio_net_hdr *vh, uint32_t cap) {
  g->mss = vh->gso_size;
  /* A payload of at most gso_size is one segment: the kernel sends such a frame unchanged. */
  g->nseg = g->payload == 0 ? 1 : (g->payload + g->mss - 1) / g->mss;
  uint32_t biggest = g->hdrs + (g->payload < g->mss ? g->payload : g->mss);
  if (biggest > cap) return GSO_UNSUPPORTED;
  return GSO_OK;
}

/* The L4 part both address families share: bounds of the TCP/UDP header at l4, the virtio
 * checksum hint checked against it, then the plan filled and segmented. */
static int plan_l4(const uint8_t *f, uint32_t len, const struct virtio_net_hdr *vh, uint32_t cap,
                   uint32_t l3, uint32_t l4, uint8_t proto, uint8_t v6, struct gso_plan *g) {
  uint32_t hdrs, csum_at;
  if (l4_bounds(f, len, l4, proto, &hdrs, &csum_at) != GSO_OK) return GSO_BAD;
  /* csum_start/offset, when given, must name this L4 checksum (we compute it ourselves anyway):
   * offsets into another header or the payload are bad_partial_csum, not gso_bad */
  if ((vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && (vh->csum_start != l4 || vh->csum_offset != csum_at)) return GSO_BAD_CSUM;
  g->l3 = l3;
  g->l4 = l4;
  g->hdrs = hdrs;
  g->payload = len - hdrs;
  g->proto = proto;
  g->v6 = v6;
  return plan_segments(g, vh, cap);
}

/* IPv4 header at l3 whose total length runs to the end of the frame, not a fragment: its length
 * (IHL) into *ihl, or GSO_BAD. */
static int ipv4_whole(const uint8_t *f, uint32_t len, uint32_t l3, uint32_t *ihl) {
  if (len < l3 + 20) return GSO_BAD;
  const uint8_t *ip = f + l3;
  uint32_t h = (uint32_t)(ip[0] & 15) * 4;
  if ((ip[0] >> 4) != 4 || h < 20 || l3 + h > len) return GSO_BAD;
  if (rd16(ip + 2) != len - l3) return GSO_BAD;
  if (rd16(ip + 6) & 0x3fff) return GSO_BAD; /* a fragment cannot be a super-frame */
  *ihl = h;
  return GSO_OK;
}

/* IPv6 header at l3 whose payload runs to the end of the frame: GSO_OK, or GSO_BAD. */
static int ipv6_whole(const uint8_t *f, uint32_t len, uint32_t l3) {
  if (len < l3 + 40 || (f[l3] >> 4) != 6) return GSO_BAD;
  return rd16(f + l3 + 4) == len - l3 - 40 ? GSO_OK : GSO_BAD;
}

/* An extension header before the L4 one: well formed, not segmented here. */
static int ipv6_ext(uint8_t nh) {
  return nh == 0 || nh == 43 || nh == 44 || nh == 60 || nh == 51 || nh == 135 || nh == 139 || nh == 140;
}

/*
 * A tunnel super-frame: the outer IP header's protocol is not the GSO type's (or, for UDP GSO,
 * csum_start points past the outer UDP header). The kernel builds such a vnet header for a VXLAN
 * (SKB_GSO_UDP_TUNNEL) or IP-in-IP (SKB_GSO_IPXIP4) GSO skb, e.g. a kernel node's vxlan.calico
 * sending over a veth with its offloads on: gso_type says the inner L4 (TCPV4, TCPV6, UDP_L4),
 * gso_size the inner segment size, csum_start the inner L4 header. That metadata, not a guess,
 * locates the inner headers: the inner IP header must end exactly at csum_start, right after the
 * outer IPv4 header (IPIP, protocol 4) or after outer UDP + VXLAN (8) + inner Ethernet (14)
 * (protocol 17, over IPv4 or IPv6). Other tunnels (GRE, Geneve options, IP in IPv6) are well formed
 * but not segmented here. `ohl`: the outer IP header's length; `ov6`: it is IPv6.
 */
static int gso_plan_tunnel(const uint8_t *f, uint32_t len, const struct virtio_net_hdr *vh, unsigned type,
                           uint32_t cap, uint32_t ohl, uint8_t ov6, uint8_t outer, uint8_t proto, struct gso_plan *g) {
  const uint32_t ol3 = 14;
  if (!(vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) return GSO_BAD;
  /* at the outer L4 header: the protocol is not the GSO type's (bad); before it: into the outer
   * Ethernet or IP header, no L4 header at all (bad_partial_csum) */
  if (vh->csum_start == ol3 + ohl) return GSO_BAD;
  if (vh->csum_start < ol3 + ohl) return GSO_BAD_CSUM;
  if (outer != 17 && (outer != 4 || ov6)) return GSO_UNSUPPORTED;
  uint32_t ol4 = 0, l3 = ol3 + ohl;
  uint8_t v6 = 0;
  if (outer == 17) {
    ol4 = l3;
    l3 = ol4 + 8 + 8 + 14;
  }
  /* before the first byte an inner L4 header could start at: into the outer UDP, VXLAN, inner
   * Ethernet or inner IP header (a UDP frame's csum_start pointed past its UDP header, with no
   * tunnel there): no L4 header, bad_partial_csum */
  if (vh->csum_start < l3 + 20) return GSO_BAD_CSUM;
  if (outer == 17) {
    if (len < l3 || rd16(f + ol4 + 4) != len - ol4) return GSO_BAD;
    uint16_t et = rd16(f + l3 - 2); /* the inner Ethernet header's type */
    if (et == 0x86dd) v6 = 1;
    else if (et != 0x0800) return GSO_UNSUPPORTED;
  }
  if ((type == VIRTIO_NET_HDR_GSO_TCPV4 && v6) || (type == VIRTIO_NET_HDR_GSO_TCPV6 && !v6)) return GSO_BAD;
  uint32_t l4;
  if (v6) {
    if (ipv6_whole(f, len, l3) != GSO_OK) return GSO_BAD;
    if (f[l3 + 6] != proto) return ipv6_ext(f[l3 + 6]) ? GSO_UNSUPPORTED : GSO_BAD;
    l4 = l3 + 40;
  } else {
    uint32_t ihl;
    if (ipv4_whole(f, len, l3, &ihl) != GSO_OK || f[l3 + 9] != proto) return GSO_BAD;
    l4 = l3 + ihl;
  }
  if (l4 != vh->csum_start) return GSO_BAD_CSUM; /* the inner L4 header is elsewhere */
  int v = plan_l4(f, len, vh, cap, l3, l4, proto, v6, g);
  g->tun = 1;
  g->ol3 = ol3;
  g->ol4 = ol4;
  g->ov6 = ov6;
  return v;
}

/* csum_start past the L4 header right behind the outer IP header: the frame is a tunnel. */
static inline int past_outer_l4(const struct virtio_net_hdr *vh, uint32_t l4) {
  return (vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && vh->csum_start > l4;
}

static int gso_plan_v6(const uint8_t *f, uint32_t len, const struct virtio_net_hdr *vh, unsigned type,
                       uint32_t cap, uint8_t proto, struct gso_plan *g) {
  const uint32_t l3 = 14, l4 = l3 + 40;
  if (len < l4) return GSO_BAD;
  const uint8_t *ip = f + l3;
  if ((ip[0] >> 4) != 6) return GSO_BAD;
  uint32_t plen = rd16(ip + 4);
  if (plen == 0 && len - l4 > 0xffff) return GSO_UNSUPPORTED; /* BIG TCP (hop-by-hop jumbo) */
  if (plen != len - l4) return GSO_BAD;
  uint8_t nh = ip[6];
  /* VXLAN over IPv6 (UDP GSO over UDP is a tunnel only when csum_start is past the outer UDP) */
  if (nh == 17 && (proto != 17 || past_outer_l4(vh, l4))) return gso_plan_tunnel(f, len, vh, type, cap, 40, 1, nh, proto, g);
  if (nh != proto) return ipv6_ext(nh) ? GSO_UNSUPPORTED : GSO_BAD;
  if (type == VIRTIO_NET_HDR_GSO_TCPV4) return GSO_BAD; /* TCPV4 over IPv6 */
  return plan_l4(f, len, vh, cap, l3, l4, proto, 1, g);
}

int gso_plan_frame(const uint8_t *f, uint32_t len, const struct virtio_net_hdr *vh, uint32_t cap,
                   struct gso_plan *g) {
  g->ol3 = g->ol4 = 0;
  g->ov6 = g->tun = 0;
  unsigned type = vh->gso_type & (unsigned)~VIRTIO_NET_HDR_GSO_ECN;
  if (type == VIRTIO_NET_HDR_GSO_UDP) return GSO_UNSUPPORTED;
  if (type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6 && type != VIRTIO_NET_HDR_GSO_UDP_L4) return GSO_BAD;
  if (vh->gso_size == 0 || vh->hdr_len > len || len < 14) return GSO_BAD;
  uint16_t ethertype = rd16(f + 12);
  /* A VLAN tag in front: well formed, but podway forwards none. */
  if (ethertype == 0x8100 || ethertype == 0x88a8) return GSO_UNSUPPORTED;
  uint8_t proto = type == VIRTIO_NET_HDR_GSO_UDP_L4 ? 17 : 6;
  if (ethertype == 0x86dd) return gso_plan_v6(f, len, vh, type, cap, proto, g);
  if (ethertype != 0x0800) return GSO_BAD;
  const uint32_t l3 = 14;
  if (len >= l3 + 4 && rd16(f + l3 + 2) == 0 && len - l3 > 0xffff && (f[l3] >> 4) == 4) return GSO_UNSUPPORTED; /* BIG TCP (total length 0) */
  uint32_t ihl;
  if (ipv4_whole(f, len, l3, &ihl) != GSO_OK) return GSO_BAD;
  uint8_t outer = f[l3 + 9];
  if (outer != proto || (proto == 17 && past_outer_l4(vh, l3 + ihl)))
    return gso_plan_tunnel(f, len, vh, type, cap, ihl, 0, outer, proto, g);
  if (type == VIRTIO_NET_HDR_GSO_TCPV6) return GSO_BAD; /* TCPV6 over IPv4 */
  return plan_l4(f, len, vh, cap, l3, l3 + ihl, proto, 0, g);
}

uint32_t gso_write_segment(const uint8_t *f, const struct gso_plan *g, uint32_t k, uint8_t *dst) {
  return gso_write_segment_from(f, f + g->hdrs, g, k, dst);
}

uint32_t gso_write_segment_from(const uint8_t *f, const uint8_t *pay, const struct gso_plan *g, uint32_t k, uint8_t *dst) {
  uint32_t off = k * g->mss;
  memcpy(dst + g->hdrs, pay + off, gso_seg_len(g, k));
  return gso_write_headers(f, g, k, dst);
}

uint32_t gso_write_headers(const uint8_t *f, const struct gso_plan *g, uint32_t k, uint8_t *dst) {
  return gso_write_headers_pay(f, g, k, dst, NULL);
}

uint32_t gso_write_headers_pay(const uint8_t *f, const struct gso_plan *g, uint32_t k, uint8_t *dst, const uint8_t *pay) {
  uint32_t off = k * g->mss;
  uint32_t seg = gso_seg_len(g, k);
  memcpy(dst, f, g->hdrs);
  uint8_t *ip = dst + g->l3;
  uint32_t ihl = g->l4 - g->l3;
  uint32_t l4len = g->hdrs - g->l4 + seg;
  if (!g->v6) wr16(ip + 4, (uint16_t)(rd16(f + g->l3 + 4) + k)); /* IPv4 id */
  ip_set_l4len(ip, ihl, g->v6, l4len); /* IPv6: payload length, no extension headers (gso_plan_v6) */
  uint8_t *l4 = dst + g->l4;
  if (g->proto == 6) {
    wr32(l4 + 4, rd32(f + g->l4 + 4) + off);
    uint8_t fl = l4[13];
    if (k + 1 < g->nseg) fl &= (uint8_t)~(TCP_FIN | TCP_PSH); /* last segment only */
    if (k > 0) fl &= (uint8_t)~TCP_CWR;                         /* first segment only */
    l4[13] = fl;
    l4[16] = l4[17] = 0;
    if (pay) { /* the TCP header (a multiple of 4 bytes) here, the payload elsewhere: sums concatenate */
      uint32_t th = g->hdrs - g->l4;
      put_csum(l4 + 16, (uint16_t)~csum_fold(csum_add(pay, seg, csum_add(l4, th, pseudo_sum(ip, g->v6, 6, l4len)))));
    } else {
      put_csum(l4 + 16, l4_csum(ip, l4, l4len, 6, g->v6));
    }
  } else {
    wr16(l4 + 4, (uint16_t)l4len);
    l4[6] = l4[7] = 0;
    uint16_t c = pay ? (uint16_t)~csum_fold(csum_add(pay, seg, csum_add(l4, g->hdrs - g->l4, pseudo_sum(ip, g->v6, 17, l4len))))
                     : l4_csum(ip, l4, l4len, 17, g->v6);
    put_csum(l4 + 6, c ? c : 0xffff); /* 0 means "no checksum" in UDP */
  }
  uint32_t total = g->hdrs + seg;
  if (g->tun) { /* the outer headers, as the kernel's tunnel GSO writes them per segment */
    uint8_t *o = dst + g->ol3;
    uint32_t ohl = g->ov6 ? 40 : (uint32_t)(o[0] & 15) * 4;
    if (!g->ov6) wr16(o + 4, (uint16_t)(rd16(f + g->ol3 + 4) + k));
    ip_set_l4len(o, ohl, g->ov6, total - g->ol3 - ohl);
    if (g->ol4) {
      uint8_t *u = dst + g->ol4;
      wr16(u + 4, (uint16_t)(total - g->ol4));
      u[6] = u[7] = 0;
      /* Over IPv4 checksum 0 (none: the receiver decapsulates it at once); over IPv6 0 is not
       * allowed, so the full checksum, summed over the finished segment. */
      if (g->ov6) {
        uint32_t ul = total - g->ol4; /* headers from u on: 8 + 8 + 14 + inner IP and TCP, even */
        uint16_t c = pay ? (uint16_t)~csum_fold(csum_add(pay, seg, csum_add(u, g->hdrs - g->ol4, pseudo_sum(o, 1, 17, ul))))
                         : l4_csum(o, u, ul, 17, 1);
        put_csum(u + 6, c ? c : 0xffff);
      }
    }
  }
  return total;
}

/* ---- delivery into the pool ------------------------------------------------------------------ */

/* One frame into one descriptor as it is; cut to the slot (flagged, counted) if it does not fit or
 * the kernel already cut it. */
static uint32_t deliver_copy(struct port *p, uint16_t port_id, struct pool *pl, uint32_t i,
                             const uint8_t *frame, uint32_t len, uint32_t wire_len, uint16_t flags) {
  uint32_t cap = pl->slot_size - pl->headroom;
  if (len > cap) {
    len = cap;
    flags |= DESC_F_TRUNCATED;
  }
  if (len < wire_len) flags |= DESC_F_TRUNCATED;
  memcpy(rx_slot(pl, i), frame, len);
  rx_desc(pl, i, port_id, len, flags);
  if (flags & DESC_F_TRUNCATED) p->st.rx_truncated++;
  p->st.rx_bytes += len;
  return 1;
}

uint32_t rx_deliver(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t room,
                    const uint8_t *frame, uint32_t len, uint32_t wire_len,
                    const struct virtio_net_hdr *vh, uint16_t flags, int *done) {
  *done = 1;
  if (!vh) return deliver_copy(p, port_id, pl, first, frame, len, wire_len, flags);
  /* The vnet header says what the checksum state is; JS never has to complete one from here. */
  flags &= (uint16_t)~DESC_F_CSUM_PARTIAL;
  uint32_t cap = pl->slot_size - pl->headroom;
  struct virtio_net_hdr h;
  memcpy(&h, vh, sizeof h); /* the ring is shared memory: read the header once */
  if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
    if (len < wire_len || len > cap) return deliver_copy(p, port_id, pl, first, frame, len, wire_len, flags);
    uint8_t *dst = rx_slot(pl, first);
    memcpy(dst, frame, len);
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      if (csum_complete_partial(dst, len, h.csum_start, h.csum_offset) < 0) {
        p->st.rx_bad_csum++; /* its offsets lie outside the frame */
        return 0;
      }
      p->st.rx_csum_completed++;
    }
    rx_desc(pl, first, port_id, len, flags);
    p->st.rx_bytes += len;
    return 1;
  }
  if (gso_tcp_below_floor(p->gso_min, &h)) { /* a pod's tiny TCP gso_size: thousands of segments from one frame (gso.h) */
    p->gso_next = 0;
    p->st.rx_gso_bad++;
    return 0;
  }
  if (len < wire_len) { /* a cut super-frame cannot be segmented: delivered flagged, as any cut frame */
    p->gso_next = 0;
    return deliver_copy(p, port_id, pl, first, frame, len, wire_len, flags);
  }
  struct gso_plan g;
  int v = gso_plan_frame(frame, len, &h, cap, &g);
  if (v == GSO_OK && gso_udp_too_many(p->gso_min, &g)) v = GSO_BAD; /* a pod's UDP GSO over the kernel's segment limit */
  if (v != GSO_OK) {
    p->gso_next = 0;
    if (v == GSO_BAD) p->st.rx_gso_bad++;
    else if (v == GSO_BAD_CSUM) p->st.rx_bad_csum++;
    else p->st.rx_gso_dropped++;
    return 0;
  }
  /* A tunnel TCP super-frame, or a peer's UDP GSO run of VXLAN TCP datagrams, in a buffer that
   * outlives this call: one descriptor (rxsuper.h). */
  if (p->super_avail && p->gso_next == 0) {
    if (super_deliver(p, port_id, pl, first, frame, &g, flags)) return 1;
    uint32_t m = super_deliver_uso(p, port_id, pl, first, room, frame, &g, flags);
    if (m) return m;
  }
  uint32_t k = p->gso_next, n = 0;
  if (k >= g.nseg) k = 0; /* cannot happen for the same frame; never index past the plan */
  for (; k < g.nseg && n < room; k++, n++) {
    uint32_t i = first + n;
    uint32_t sl = gso_write_segment(frame, &g, k, rx_slot(pl, i));
    rx_desc(pl, i, port_id, sl, flags);
    p->st.rx_bytes += sl;
  }
  p->st.rx_gso_segments += n;
  if (k < g.nseg) {
    p->gso_next = k;
    *done = 0;
  } else {
    p->gso_next = 0;
    p->st.rx_gso_frames++;
  }
  return n;
}

/* ---- scatter receive (see gso.h) --------------------------------------------------------------- */

uint32_t rx_scatter_layout(const struct port *p, struct pool *pl, uint32_t first, uint32_t room,
                           const uint8_t *head, uint32_t have, uint32_t len, const struct virtio_net_hdr *vh,
                           uint8_t *big, uint32_t big_cap, struct iovec *iov, struct gso_plan *g, uint32_t *nscat) {
  struct virtio_net_hdr h;
  memcpy(&h, vh, sizeof h); /* the ring is shared memory: read the header once */
  if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE || have < SCATTER_HEAD_MIN || room == 0) return 0;
  if (gso_tcp_below_floor(p->gso_min, &h)) return 0; /* read whole: rx_deliver drops and counts it */
  if (len > big_cap - p->vnet_len) return 0; /* too long for big: read whole (cut) and handled as before */
  memset(g, 0, sizeof *g);
  if (gso_plan_frame(head, len, &h, pl->slot_size - pl->headroom, g) != GSO_OK || g->hdrs > have) return 0;
  if (gso_udp_too_many(p->gso_min, g)) return 0; /* read whole: rx_deliver drops and counts it */
  uint32_t s = g->nseg < room ? g->nseg : room;
  if (s > SCATTER_MAX_IOV - 2) s = SCATTER_MAX_IOV - 2;
  uint32_t n = 0;
  iov[n++] = (struct iovec){ big, p->vnet_len + g->hdrs };
  for (uint32_t k = 0; k < s; k++)
    iov[n++] = (struct iovec){ rx_slot(pl, first + k) + g->hdrs, gso_seg_len(g, k) };
  uint32_t at = s * g->mss; /* payload bytes scattered */
  if (at < g->payload) iov[n++] = (struct iovec){ big + p->vnet_len + g->hdrs + at, g->payload - at };
  *nscat = s;
  return n;
}

uint32_t rx_scatter_finish(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t nscat,
                           const struct gso_plan *g, const uint8_t *big, uint32_t got, uint16_t flags, int *done) {
  *done = 1;
  p->gso_next = 0;
  flags &= (uint16_t)~DESC_F_CSUM_PARTIAL;
  struct gso_plan again;
  memset(&again, 0, sizeof again);
  struct virtio_net_hdr h;
  memcpy(&h, big, sizeof h);
  const uint8_t *f = big + p->vnet_len;
  /* The copy's own headers: only [0, hdrs) of f was written, so they are planned with the copy's
   * length only when they all arrived. */
  if (got < p->vnet_len + g->hdrs || gso_plan_frame(f, got - p->vnet_len, &h, pl->slot_size - pl->headroom, &again) != GSO_OK ||
      memcmp(&again, g, sizeof again) != 0) {
    p->st.rx_gso_bad++;
    return 0;
  }
  for (uint32_t k = 0; k < nscat; k++) {
    uint32_t i = first + k;
    uint32_t sl = gso_write_headers(f, g, k, pl->base + (size_t)pl->d_slot[i] * pl->slot_size + pl->headroom);
    rx_desc(pl, i, port_id, sl, flags);
    p->st.rx_bytes += sl;
  }
  p->st.rx_gso_segments += nscat;
  p->st.rx_scatter_frames++;
  if (nscat < g->nseg) {
    p->gso_next = nscat;
    *done = 0;
  } else {
    p->st.rx_gso_frames++;
  }
  return nscat;
}
