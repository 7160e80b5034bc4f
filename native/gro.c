/*
 * Software GRO towards pods (see gro.h). The rules are the kernel's (tcp_gro_receive,
 * inet_gro_receive, ipv6_gro_receive), kept strict where in doubt; a frame that breaks one is
 * simply sent on its own:
 *   - IPv4 without options, not a fragment, TCP; same Ethernet header, addresses, ports, TOS, TTL,
 *     DF; IPv4 ids incrementing by one (as Linux senders make them; stricter than the kernel, which
 *     also takes fixed ids with DF, so that segmenting the merged frame gives back the inputs);
 *   - or IPv6 with TCP as the next header (no extension headers, no jumbogram); same Ethernet
 *     header, addresses, ports, traffic class and flow label (the header's first word), hop limit;
 *   - TCP: same header except the sequence number and checksum (ack, window, options equal), only
 *     ACK set, PSH allowed on the last segment (it ends the run), sequence numbers contiguous;
 *   - every segment has gso_size (the first one's) payload bytes, except a shorter last one (it ends
 *     the run); at most GRO_MAX_SEGS segments and 65535 bytes of IPv4 total length (of IPv6
 *     payload length);
 *   - IPv4 header and TCP checksums verified: the merged frame carries a partial checksum the pod
 *     trusts, so a corrupted segment must never be hidden inside it (it goes alone, the pod drops it).
 * The merged frame: the first segment's headers with the total length (IPv4 total length and header
 * checksum, or IPv6 payload length), PSH (when the last had it) and, in the TCP checksum field, the
 * folded pseudo-header sum over the whole TCP length (VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start at
 * the TCP header, offset 16; gso_type TCPV4 or TCPV6).
 */
#include "gro.h"
#include "gso.h"

#include <string.h>

/* A frame's TCP/IP layout, when it is a candidate at all. */
struct seg {
  uint32_t l3;      /* IP header bytes: 20 (IPv4) or 40 (IPv6) */
  uint32_t hdrs;    /* 14 + l3 + TCP header */
  uint32_t payload; /* TCP payload bytes (from the IP length field; Ethernet padding ignored) */
  uint8_t flags;    /* TCP flags */
};

/* TCP length (header + payload) the IP header of frame f gives, l3 its IP header length. */
static inline uint32_t l4_len(const uint8_t *f, uint32_t l3) {
  return l3 == 40 ? rd16(f + 18) : (uint32_t)rd16(f + 16) - 20;
}

static int candidate(const uint8_t *f, uint32_t len, struct seg *s) {
  if (len < 14 + 20 + 20) return 0;
  const uint8_t *ip = f + 14;
  uint16_t et = rd16(f + 12);
  uint32_t l3, l4;
  if (et == 0x0800) {
    if (ip[0] != 0x45 || ip[9] != 6) return 0;     /* IPv4, no options, TCP */
    if (rd16(ip + 6) & 0x3fff) return 0;           /* a fragment */
    uint32_t tot = rd16(ip + 2);
    if (tot < 20 || tot > len - 14) return 0;
    l3 = 20;
    l4 = tot - 20;
  } else if (et == 0x86dd) {
    if (len < 14 + 40 + 20 || (ip[0] >> 4) != 6 || ip[6] != 6) return 0; /* IPv6, TCP next: no extension headers */
    l4 = rd16(ip + 4);                             /* 0 (a jumbogram) fails the TCP length check */
    if (40 + l4 > len - 14) return 0;
    l3 = 40;
  } else {
    return 0;
  }
  if (l4 < 20) return 0;
  uint32_t thl = (uint32_t)(ip[l3 + 12] >> 4) * 4;
  if (thl < 20 || thl > l4) return 0;
  uint8_t fl = ip[l3 + 13];
  if ((fl & ~TCP_PSH) != TCP_ACK) return 0;        /* data segments: ACK, maybe PSH, nothing else */
  if (l4 == thl) return 0;                         /* a pure ACK carries nothing to merge */
  s->l3 = l3;
  s->hdrs = 14 + l3 + thl;
  s->payload = l4 - thl;
  s->flags = fl;
  return 1;
}

static int checksums_ok(const uint8_t *f, const struct seg *s) {
  const uint8_t *ip = f + 14;
  if (s->l3 == 20 && csum_fold(csum_add(ip, 20, 0)) != 0xffff) return 0;
  uint32_t l4len = s->hdrs - 14 - s->l3 + s->payload;
  return csum_fold(csum_add(ip + s->l3, l4len, pseudo_sum(ip, s->l3 == 40, 6, l4len))) == 0xffff;
}

/* Does b follow a (the run's previous frame) in the same flow, with the same headers? */
static int follows(const uint8_t *a, const struct seg *sa, const uint8_t *b, const struct seg *sb, uint32_t k,
                   const uint8_t *first) {
  if (sb->hdrs != sa->hdrs || sb->l3 != sa->l3) return 0;
  if (memcmp(a, b, 14) != 0) return 0;                       /* Ethernet header */
  const uint8_t *ia = a + 14, *ib = b + 14;
  if (sa->l3 == 20) {
    if (ia[1] != ib[1] || ia[8] != ib[8]) return 0;          /* TOS, TTL */
    if ((ia[6] & 0x40) != (ib[6] & 0x40)) return 0;          /* DF */
    if (memcmp(ia + 12, ib + 12, 8) != 0) return 0;          /* addresses */
    uint16_t id0 = rd16(first + 18), idb = rd16(ib + 4);
    if (idb != (uint16_t)(id0 + k)) return 0; /* the pod may resegment: ids must come back the same */
  } else {
    if (memcmp(ia, ib, 4) != 0) return 0;                    /* version, traffic class, flow label */
    if (ia[7] != ib[7]) return 0;                            /* hop limit */
    if (memcmp(ia + 8, ib + 8, 32) != 0) return 0;           /* addresses */
  }
  const uint8_t *ta = ia + sa->l3, *tb = ib + sa->l3;
  if (memcmp(ta, tb, 4) != 0) return 0;                      /* ports */
  if (rd32(tb + 4) != rd32(ta + 4) + sa->payload) return 0;  /* contiguous */
  if (memcmp(ta + 8, tb + 8, 6) != 0) return 0;              /* ack, data offset, flags (PSH aside) */
  if (memcmp(ta + 14, tb + 14, 2) != 0) return 0;            /* window */
  if (memcmp(ta + 20, tb + 20, sa->hdrs - 14 - sa->l3 - 20) != 0) return 0; /* options */
  return 1;
}

uint32_t gro_span(const uint8_t *const *f, const uint32_t *lens, uint32_t n, struct gro_merge *m) {
  struct seg s0, prev, cur;
  m->count = 1;
  m->psh = 0;
  if (n < 2 || !candidate(f[0], lens[0], &s0)) return 1;
  m->l3 = s0.l3;
  m->hdrs = s0.hdrs;
  m->mss = s0.payload;
  m->payload = s0.payload;
  m->psh = (s0.flags & TCP_PSH) != 0;
  if (m->psh) return 1; /* PSH ends a run: nothing may follow it */
  /* bytes besides the payload in the length field that must hold the whole run: IPv4 total
   * length (IPv4 + TCP headers), or IPv6 payload length (TCP header) */
  uint32_t len_over = (s0.l3 == 20 ? 20 : 0) + (s0.hdrs - 14 - s0.l3);
  prev = s0;
  int first_checked = 0;
  uint32_t k = 1;
  for (; k < n && k < GRO_MAX_SEGS; k++) {
    /* ACK without PSH in ta[13] and tb[13] equal is checked by follows() through the flags byte,
     * so compare with PSH masked: build cur, then mask. */
    if (!candidate(f[k], lens[k], &cur)) break;
    if (cur.payload > m->mss) break;
    if (len_over + m->payload + cur.payload > 0xffff) break;
    uint8_t saved_psh = cur.flags & TCP_PSH;
    if (!follows(f[k - 1], &prev, f[k], &cur, k, f[0])) {
      /* follows() compares the flags byte: a PSH on f[k] alone differs from f[k-1]'s ACK */
      if (!saved_psh) break;
      /* PSH on this one: compare again as if it were not set (headers must match otherwise) */
      uint8_t tmp[GRO_HDR_MAX];
      memcpy(tmp, f[k], cur.hdrs);
      tmp[14 + cur.l3 + 13] &= (uint8_t)~TCP_PSH;
      if (!follows(f[k - 1], &prev, tmp, &cur, k, f[0])) break;
    }
    if (!first_checked) {
      if (!checksums_ok(f[0], &s0)) return 1;
      first_checked = 1;
    }
    if (!checksums_ok(f[k], &cur)) break;
    m->payload += cur.payload;
    prev = cur;
    if (saved_psh) {
      m->psh = 1;
      k++;
      break;
    }
    if (cur.payload < m->mss) {
      k++;
      break;
    }
  }
  m->count = k;
  if (k == 1) m->psh = 0;
  return k;
}

uint32_t gro_payload(const uint8_t *f, const struct gro_merge *m, uint32_t *len) {
  *len = l4_len(f, m->l3) - (m->hdrs - 14 - m->l3);
  return m->hdrs;
}

void gro_write_header(const uint8_t *first, const struct gro_merge *m, uint8_t *hdr, struct virtio_net_hdr *vh) {
  memcpy(hdr, first, m->hdrs);
  uint8_t *ip = hdr + 14, *th = ip + m->l3;
  uint32_t l4len = m->hdrs - 14 - m->l3 + m->payload;
  int v6 = m->l3 == 40;
  ip_set_l4len(ip, m->l3, v6, l4len);
  if (m->psh) th[13] |= TCP_PSH;
  uint16_t pc = csum_fold(pseudo_sum(ip, v6, 6, l4len)); /* the partial checksum (csum.h) */
  memcpy(th + 16, &pc, 2);
  vnet_hdr_partial(vh, v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4, m->hdrs, m->mss, 14 + m->l3, 16);
}
