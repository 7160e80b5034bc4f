/*
 * What every offload path reads and writes in headers alike: big-endian fields, TCP flags, one's
 * complement checksums and the header fix-ups, for segmentation (gso.c, per segment) and for the
 * send side's super-frames handed to a kernel whole (gro.c towards a pod, uso.c on the underlay,
 * rxsuper.c for a super-frame received whole). The sums are taken in memory order (RFC 1071: the
 * host's byte order, stored back unswapped). All static inline: gso.c's per-segment path must not
 * pay a call (the addon is built -fPIC, where an exported function is not inlined even in the file
 * that defines it).
 */
#ifndef PODWAY_CSUM_H
#define PODWAY_CSUM_H

#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/virtio_net.h>

/* Big-endian (network order) header fields. */
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

/* The sum of [p, p+len) as 16-bit words in memory order added to acc, accumulated in 64 bits. Word
 * boundaries are counted from p, so every range summed into one checksum starts on an even offset
 * (len may be odd only for the last range of a checksum). */
static inline uint64_t csum_add(const uint8_t *p, uint32_t len, uint64_t acc) {
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    acc += (uint32_t)w;
    acc += w >> 32;
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    acc += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    acc += w;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint8_t last[2] = { p[0], 0 }; /* an odd last byte is the high byte of a zero-padded word */
    uint16_t w;
    memcpy(&w, last, 2);
    acc += w;
  }
  return acc;
}

/* The sum folded to 16 bits. */
static inline uint16_t csum_fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)acc;
}

/* The IPv4 header checksum of the ihl bytes at ip, written into it. */
static inline void ipv4_header_csum(uint8_t *ip, uint32_t ihl) {
  ip[10] = ip[11] = 0;
  uint16_t c = (uint16_t)~csum_fold(csum_add(ip, ihl, 0));
  memcpy(ip + 10, &c, 2);
}

/* The IP header at ip (IPv4: ihl bytes; IPv6: 40, no extension headers) made to carry l4len bytes
 * behind it: IPv4 total length and header checksum (the id and every other field already final),
 * IPv6 payload length. */
static inline void ip_set_l4len(uint8_t *ip, uint32_t ihl, int v6, uint32_t l4len) {
  if (v6) {
    wr16(ip + 4, (uint16_t)l4len);
  } else {
    wr16(ip + 2, (uint16_t)(ihl + l4len));
    ipv4_header_csum(ip, ihl);
  }
}

/* Unfolded sum of the TCP/UDP pseudo-header of the IPv4 or IPv6 header at ip, for protocol proto
 * and l4len bytes of L4 header + payload. The IPv6 pseudo-header's 32-bit length and next header sum
 * the same as IPv4's 16-bit ones below 64 KiB. */
static inline uint64_t pseudo_sum(const uint8_t *ip, int v6, uint8_t proto, uint32_t l4len) {
  uint64_t acc = v6 ? csum_add(ip + 8, 32, 0) : csum_add(ip + 12, 8, 0); /* source and destination */
  acc += htons(proto);
  acc += htons((uint16_t)l4len);
  return acc;
}

/* The virtio_net_hdr of a super-frame handed to a kernel whole: the L4 checksum at csum_start +
 * csum_offset left partial (it holds the folded pseudo-header sum, not complemented: what
 * tcp_v4_send_check, tcp_v6_send_check and udp_send_skb leave), cut into gso_size pieces of payload
 * behind hdr_len header bytes. */
static inline void vnet_hdr_partial(struct virtio_net_hdr *vh, uint8_t gso_type, uint32_t hdr_len,
                                    uint32_t gso_size, uint32_t csum_start, uint32_t csum_offset) {
  memset(vh, 0, sizeof *vh);
  vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vh->gso_type = gso_type;
  vh->hdr_len = (uint16_t)hdr_len;
  vh->gso_size = (uint16_t)gso_size;
  vh->csum_start = (uint16_t)csum_start;
  vh->csum_offset = (uint16_t)csum_offset;
}

#endif
