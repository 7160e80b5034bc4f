/*
 * Transmit GSO for VXLAN on the underlay (see uso.h). The rules, so that the datagrams the kernel
 * cuts from a merged message are the ones podway would have sent one by one:
 *   - Ethernet + IPv4 without options, not a fragment (or IPv6 with UDP right after its header),
 *     UDP to the VXLAN port, a VXLAN header with the I flag; the IP and UDP lengths agree with
 *     each other and fit the frame;
 *   - every datagram of the run has the first one's Ethernet header, IPv4 version/IHL, TOS, flags
 *     (DF), TTL, protocol and addresses (IPv6: version, traffic class, flow label, next header, hop
 *     limit, addresses), UDP ports; IP total/payload length, IPv4 id and header checksum, UDP
 *     length and checksum may differ (they are the per-datagram fields the kernel rewrites);
 *   - every UDP payload has the first one's size (gso_size), but a shorter last one (it ends the
 *     run); at most USO_MAX_SEGS datagrams and 65535 bytes of IPv4 total length or IPv6 payload;
 *     each datagram within the device MTU the port saw at open;
 *   - a non-zero UDP checksum (always, over IPv6) is verified: the kernel computes a fresh one over
 *     the bytes, so a datagram whose checksum is wrong must not have it mended by merging (it goes
 *     alone and the receiver drops it, as it would have). IPv4 VXLAN from podway carries 0 (no
 *     checksum, as Linux's vxlan sends it); after merging it gets a valid one.
 * What the kernel writes per datagram (__udp_gso_segment, inet_gso_segment / ipv6_gso_segment):
 * IP total length (payload length), the IPv4 id = the first datagram's id + k, the IPv4 header
 * checksum, UDP length, and the full UDP checksum (0 computed is sent as 0xffff). Everything else
 * is copied from the merged message's headers and payloads, i.e. from the pool frames.
 */
#include "uso.h"
#include "gso.h"

#include <string.h>

/* A frame's outer layout, when it is a VXLAN datagram at all. */
struct dgram {
  uint32_t l4;      /* UDP header offset */
  uint32_t payload; /* UDP payload bytes (VXLAN header + inner frame) */
  uint32_t l3len;   /* IPv4 total length or IPv6 40 + payload length: what the MTU bounds */
  uint8_t v6;
};

static int candidate(const uint8_t *f, uint32_t len, uint16_t vport, struct dgram *d) {
  if (len < 14) return 0;
  uint16_t et = rd16(f + 12);
  const uint8_t *ip = f + 14;
  uint32_t ulen;
  if (et == 0x0800) {
    if (len < 14 + 20 + 8 + 8) return 0;
    if (ip[0] != 0x45 || ip[9] != 17) return 0;    /* IPv4, no options, UDP */
    if (rd16(ip + 6) & 0x3fff) return 0;            /* a fragment */
    uint32_t tot = rd16(ip + 2);
    if (tot > len - 14 || tot < 20 + 8 + 8) return 0;
    ulen = rd16(ip + 24);
    if (ulen != tot - 20) return 0;
    d->l4 = 34;
    d->l3len = tot;
    d->v6 = 0;
  } else if (et == 0x86dd) {
    if (len < 14 + 40 + 8 + 8) return 0;
    if ((ip[0] >> 4) != 6 || ip[6] != 17) return 0; /* IPv6, UDP right after the fixed header */
    uint32_t plen = rd16(ip + 4);
    if (40 + plen > len - 14 || plen < 8 + 8) return 0;
    ulen = rd16(ip + 44);
    if (ulen != plen) return 0;
    d->l4 = 54;
    d->l3len = 40 + plen;
    d->v6 = 1;
  } else {
    return 0;
  }
  const uint8_t *uh = f + d->l4;
  if (rd16(uh + 2) != vport) return 0;
  if (!(uh[8] & 0x08)) return 0; /* VXLAN I flag: a VNI follows */
  d->payload = ulen - 8;
  return 1;
}

/* A datagram's UDP checksum: 0 (none, IPv4 only) or one that verifies. */
static int checksum_ok(const uint8_t *f, const struct dgram *d) {
  const uint8_t *ip = f + 14, *uh = f + d->l4;
  if (!d->v6 && csum_fold(csum_add(ip, 20, 0)) != 0xffff) return 0; /* IPv4 header checksum */
  if (uh[6] == 0 && uh[7] == 0) return !d->v6;
  uint32_t ulen = d->payload + 8;
  return csum_fold(csum_add(uh, ulen, pseudo_sum(ip, d->v6, 17, ulen))) == 0xffff;
}

/* Same outer flow and headers as a (all but the per-datagram fields)? */
static int same_flow(const uint8_t *a, const uint8_t *b, const struct dgram *d) {
  if (memcmp(a, b, 14) != 0) return 0; /* Ethernet header */
  const uint8_t *ia = a + 14, *ib = b + 14;
  if (d->v6) {
    if (memcmp(ia, ib, 4) != 0) return 0;       /* version, traffic class, flow label */
    if (memcmp(ia + 6, ib + 6, 34) != 0) return 0; /* next header, hop limit, addresses */
  } else {
    if (memcmp(ia, ib, 2) != 0) return 0;       /* version/IHL, TOS */
    if (memcmp(ia + 6, ib + 6, 4) != 0) return 0; /* flags + fragment offset, TTL, protocol */
    if (memcmp(ia + 12, ib + 12, 8) != 0) return 0; /* addresses */
  }
  return memcmp(a + d->l4, b + d->l4, 4) == 0;  /* UDP ports */
}

uint32_t uso_span(const uint8_t *const *f, const uint32_t *lens, uint32_t n, uint32_t mtu, uint16_t vxlan_port, struct uso_merge *m) {
  struct dgram d0, cur;
  const uint16_t vport = vxlan_port ? vxlan_port : USO_VXLAN_PORT;
  m->count = 1;
  if (n < 2 || !candidate(f[0], lens[0], vport, &d0) || d0.l3len > mtu) return 1;
  m->l4 = d0.l4;
  m->v6 = d0.v6;
  m->mss = d0.payload;
  m->payload = d0.payload;
  /* IPv4 total length or IPv6 payload length of the merged message: UDP + payloads (+ IPv4 header) */
  uint32_t fixed = d0.v6 ? 8 : 28;
  int first_checked = 0;
  uint32_t k = 1;
  for (; k < n && k < USO_MAX_SEGS; k++) {
    if (!candidate(f[k], lens[k], vport, &cur) || cur.v6 != d0.v6) break;
    if (cur.payload > m->mss || cur.payload == 0) break;
    if (fixed + m->payload + cur.payload > 0xffff) break;
    if (!same_flow(f[0], f[k], &d0)) break;
    if (!first_checked) {
      if (!checksum_ok(f[0], &d0)) return 1;
      first_checked = 1;
    }
    if (!checksum_ok(f[k], &cur)) break;
    m->payload += cur.payload;
    if (cur.payload < m->mss) {
      k++;
      break;
    }
  }
  m->count = k;
  return k;
}

uint32_t uso_payload(const uint8_t *f, const struct uso_merge *m, uint32_t *len) {
  *len = (uint32_t)rd16(f + m->l4 + 4) - 8;
  return m->l4 + 8;
}

void uso_write_header(const uint8_t *first, const struct uso_merge *m, uint8_t *hdr, struct virtio_net_hdr *vh) {
  memcpy(hdr, first, m->l4 + 8);
  uint8_t *ip = hdr + 14, *uh = hdr + m->l4;
  uint32_t ulen = 8 + m->payload;
  ip_set_l4len(ip, 20, m->v6, ulen); /* IPv4 without options (candidate) */
  wr16(uh + 4, (uint16_t)ulen);
  /* The partial checksum over the whole UDP length (csum.h); the kernel adjusts it per datagram. */
  uint16_t pc = csum_fold(pseudo_sum(ip, m->v6, 17, ulen));
  memcpy(uh + 6, &pc, 2);
  vnet_hdr_partial(vh, VIRTIO_NET_HDR_GSO_UDP_L4, m->l4 + 8, m->mss, m->l4, 6);
}
