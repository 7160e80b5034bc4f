/* Tunnel super-frames handed on whole: see rxsuper.h. */
#include "rxsuper.h"
#include "gro.h"

#include <string.h>

/* Recv calls of every rx_super port, numbered from 1: a ref's epoch never matches a closed port's
 * zeroed slot nor a later port in it. */
static uint64_t epochs;

void super_recv_begin(struct port *p) {
  p->super_epoch = __atomic_add_fetch(&epochs, 1, __ATOMIC_RELAXED);
  p->arena_used = 0;
}

uint8_t *super_copy_buf(struct port *p) {
  if (!p->rx_super || !p->arena || p->arena_used >= p->arena_bufs) return p->rx_big; /* (rx_merge alone has an arena too) */
  return p->arena + (size_t)p->arena_used * RX_BIG;
}

int super_deliver(struct port *p, uint16_t port_id, struct pool *pl, uint32_t i, const uint8_t *frame,
                  const struct gso_plan *g, uint16_t flags) {
  if (g->proto != 6 || g->nseg < 2) return 0;
  if (!pl->d_super || !pl->d_segs || !pl->d_more || g->nseg > 0xffff) return 0;
  if (g->tun) {
    if (!p->super_tunnel || !g->ol4) return 0; /* VXLAN only */
  } else {
    /* a pod's own TCP super-frame: data with ACK (PSH, ECN bits allowed); SYN, FIN, RST, URG go
     * cut, so JS sees every segment that changes a connection's state */
    if (!p->super_plain || g->nseg > POD_SUPER_MAX_SEGS) return 0;
    if ((frame[g->l4 + 13] & (uint8_t)~(TCP_PSH | TCP_CWR | 0x40)) != TCP_ACK) return 0;
  }
  uint32_t ihdrs = g->hdrs - g->l3;
  if (14 + ihdrs > GRO_HDR_MAX) return 0; /* the send side rewrites these headers in a scratch */
  uint32_t sl = gso_write_segment(frame, g, 0, rx_slot(pl, i)); /* fits: gso_plan_frame checked the slot */
  uint32_t more = (g->nseg - 1) * g->hdrs + (g->payload - g->mss);
  rx_desc(pl, i, port_id, sl, flags | DESC_F_SUPER);
  pl->d_segs[i] = (uint16_t)g->nseg;
  pl->d_more[i] = more;
  struct super_ref *r = &pl->d_super[i];
  r->src = p;
  r->epoch = p->super_epoch;
  r->payload = frame + g->hdrs;
  r->payload_len = g->payload;
  r->mss = g->mss;
  r->nseg = g->nseg;
  r->ihdrs = ihdrs;
  r->seq = rd32(frame + g->l4 + 4);
  r->tcp_flags = frame[g->l4 + 13];
  r->v6 = g->v6;
  p->st.rx_bytes += sl + more;
  p->st.rx_super_frames++;
  p->st.rx_super_segments += g->nseg;
  p->st.rx_packets += g->nseg - 1; /* the caller adds the descriptor itself */
  p->arena_used++;
  p->super_avail = NULL;
  return 1;
}

static inline const uint8_t *desc_frame(const struct pool *pl, uint32_t i) {
  return pl->base + (size_t)pl->d_slot[i] * pl->slot_size + pl->d_off[i];
}

const struct super_ref *super_check(const struct pool *pl, uint32_t i, uint32_t l3) {
  if (!pl->d_super) return NULL;
  const struct super_ref *r = &pl->d_super[i];
  if (!r->src || r->src->super_epoch != r->epoch || !r->src->arena) return NULL;
  const uint8_t *f = desc_frame(pl, i);
  uint32_t len = pl->d_len[i];
  if (len < l3 + r->ihdrs) return NULL;
  if (l3 == 14 && rd16(f + 12) != (r->v6 ? 0x86dd : 0x0800)) return NULL;
  const uint8_t *ip = f + l3;
  uint32_t ihl;
  if (r->v6) {
    if ((ip[0] >> 4) != 6 || ip[6] != 6 || rd16(ip + 4) != len - l3 - 40) return NULL;
    ihl = 40;
    if (r->ihdrs - 40 + r->payload_len > 0xffff) return NULL;
  } else {
    if ((ip[0] >> 4) != 4 || ip[9] != 6 || rd16(ip + 2) != len - l3 || (rd16(ip + 6) & 0x3fff)) return NULL;
    ihl = (uint32_t)(ip[0] & 15) * 4;
    if (r->ihdrs + r->payload_len > 0xffff) return NULL;
  }
  if (ihl < 20 || ihl + 20 > r->ihdrs || ihl + (uint32_t)(ip[ihl + 12] >> 4) * 4 != r->ihdrs) return NULL;
  uint32_t seg0 = r->payload_len < r->mss ? r->payload_len : r->mss;
  if (len - l3 - r->ihdrs != seg0 || rd32(ip + ihl + 4) != r->seq) return NULL;
  return r;
}

/* The headers of descriptor i with the super-frame's FIN/PSH (segment 0 went without them). */
static uint32_t template_hdr(const struct pool *pl, uint32_t i, const struct super_ref *r, uint32_t l3, uint8_t *hdr,
                             uint32_t *ihl) {
  uint32_t hl = l3 + r->ihdrs;
  memcpy(hdr, desc_frame(pl, i), hl);
  *ihl = r->v6 ? 40 : (uint32_t)(hdr[l3] & 15) * 4;
  hdr[l3 + *ihl + 13] |= r->tcp_flags & (TCP_FIN | TCP_PSH);
  return hl;
}

uint32_t super_header(const struct pool *pl, uint32_t i, const struct super_ref *r, uint32_t l3, uint8_t *hdr,
                      struct virtio_net_hdr *vh) {
  uint32_t ihl, hl = template_hdr(pl, i, r, l3, hdr, &ihl);
  uint8_t *ip = hdr + l3, *th = ip + ihl;
  uint32_t l4len = r->ihdrs - ihl + r->payload_len;
  ip_set_l4len(ip, ihl, r->v6, l4len);
  uint16_t pc = csum_fold(pseudo_sum(ip, r->v6, 6, l4len)); /* the partial checksum the pod completes (csum.h) */
  memcpy(th + 16, &pc, 2);
  uint8_t type = r->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
  if (th[13] & TCP_CWR) type |= VIRTIO_NET_HDR_GSO_ECN; /* as tcp_gro_complete marks it */
  vnet_hdr_partial(vh, type, hl, r->mss, l3 + ihl, 16);
  return hl;
}

void super_cut_plan(const struct pool *pl, uint32_t i, const struct super_ref *r, uint32_t l3, uint8_t *hdr,
                    struct gso_plan *g) {
  uint32_t ihl, hl = template_hdr(pl, i, r, l3, hdr, &ihl);
  memset(g, 0, sizeof *g);
  g->l3 = l3;
  g->l4 = l3 + ihl;
  g->hdrs = hl;
  g->payload = r->payload_len;
  g->mss = r->mss;
  g->nseg = r->nseg;
  g->proto = 6;
  g->v6 = r->v6;
}

const struct super_ref *super_check_encap(const struct pool *pl, uint32_t i, uint32_t ol3, struct super_encap *e) {
  const uint8_t *f = desc_frame(pl, i);
  uint32_t len = pl->d_len[i];
  if (len < ol3 + 40) return NULL;
  const uint8_t *o = f + ol3;
  /* the outer version: the Ethernet type in front (ol3 = 14), else the IP header's own (an IP
   * packet for a raw or TUN port) */
  uint16_t et = ol3 ? rd16(f + 12) : (o[0] >> 4) == 4 ? 0x0800 : (o[0] >> 4) == 6 ? 0x86dd : 0;
  e->ov6 = 0;
  if (et == 0x0800) {
    uint32_t ohl = (uint32_t)(o[0] & 15) * 4;
    if ((o[0] >> 4) != 4 || ohl < 20 || rd16(o + 2) != len - ol3 || (rd16(o + 6) & 0x3fff)) return NULL;
    if (o[9] == 4) { /* IPIP: IPv4 inside */
      e->ol4 = 0;
      e->l3 = ol3 + ohl;
      const struct super_ref *r = super_check(pl, i, e->l3);
      return r && !r->v6 ? r : NULL;
    }
    if (o[9] != 17 || ohl != 20) return NULL;
    e->ol4 = ol3 + 20;
  } else if (et == 0x86dd) {
    if ((o[0] >> 4) != 6 || o[6] != 17 || rd16(o + 4) != len - ol3 - 40) return NULL;
    e->ol4 = ol3 + 40;
    e->ov6 = 1;
  } else {
    return NULL;
  }
  const uint8_t *u = f + e->ol4;
  e->l3 = e->ol4 + 8 + 8 + 14;
  if (len < e->l3 + 20 || rd16(u + 2) != pl->vxlan_port || rd16(u + 4) != len - e->ol4 || !(u[8] & 0x08)) return NULL;
  const struct super_ref *r = super_check(pl, i, e->l3);
  if (!r || rd16(f + e->l3 - 2) != (r->v6 ? 0x86dd : 0x0800)) return NULL;
  return r;
}

const struct super_ref *super_cut_plan_any(const struct pool *pl, uint32_t i, uint32_t l3, uint8_t *hdr,
                                           struct gso_plan *g) {
  /* l3: where the frame's IP header starts (14 behind Ethernet, 0 for a raw or TUN port); a super-
   * frame JS put in a tunnel has its outer IP header there and its own further in */
  struct super_encap e;
  const struct super_ref *r = super_check(pl, i, l3);
  if (r) {
    super_cut_plan(pl, i, r, l3, hdr, g);
    return r;
  }
  if (!(r = super_check_encap(pl, i, l3, &e))) return NULL;
  super_cut_plan(pl, i, r, e.l3, hdr, g);
  g->tun = 1; /* outer lengths, id + k (IPv4), UDP length and checksum per segment */
  g->ol3 = l3;
  g->ol4 = e.ol4;
  g->ov6 = e.ov6;
  return r;
}

/* ---- receive merge (rx_merge) ------------------------------------------------------------------ */

#define OUTER 50  /* outer Ethernet + IPv4 (no options) + UDP + VXLAN */
#define INNER_IP (OUTER + 14)

/* The inner IPv4 header (v4) and TCP checksum of one datagram's inner packet at ip (l3len bytes);
 * rx_merge (IPv4, no options: ihl 20) and rx_super both check with it. */
static int inner_checksums_ok(const uint8_t *ip, uint32_t l3len, uint32_t ihl, int v6) {
  if (!v6 && csum_fold(csum_add(ip, 20, 0)) != 0xffff) return 0;
  uint32_t l4len = l3len - ihl;
  return csum_fold(csum_add(ip + ihl, l4len, pseudo_sum(ip, v6, 6, l4len))) == 0xffff;
}

void merge_open(struct port *p, struct pool *pl, uint32_t i, const struct virtio_net_hdr *vh) {
  if (!pl->d_super || !pl->d_segs || !pl->d_more || p->arena_used >= p->arena_bufs) return;
  if (vh && (vh->flags || vh->gso_type)) return;
  if (pl->d_flags[i] & (DESC_F_TRUNCATED | DESC_F_OUTGOING | DESC_F_SUPER)) return;
  const uint8_t *f = desc_frame(pl, i);
  uint32_t len = pl->d_len[i];
  if (len < INNER_IP + 40 || rd16(f + 12) != 0x0800) return;
  const uint8_t *o = f + 14, *ip = f + INNER_IP;
  if (o[0] != 0x45 || o[9] != 17 || (rd16(o + 6) & 0x3fff) || rd16(o + 2) != len - 14) return;
  if (rd16(o + 22) != pl->vxlan_port || rd16(o + 24) != len - 34 || !(o[28] & 0x08)) return;
  if (rd16(f + OUTER + 12) != 0x0800) return;
  if (ip[0] != 0x45 || ip[9] != 6 || (rd16(ip + 6) & 0x3fff) || rd16(ip + 2) != len - INNER_IP) return;
  uint32_t doff = (uint32_t)(ip[32] >> 4) * 4;
  if (doff < 20 || INNER_IP + 20 + doff >= len || 14 + 20 + doff > GRO_HDR_MAX) return;
  if (ip[33] != TCP_ACK) return; /* data with ACK only; PSH would end the run at once */
  struct super_ref *r = &pl->d_super[i];
  r->src = p;
  r->epoch = p->super_epoch;
  r->payload = NULL; /* until a second datagram joins: a run of one stays a plain descriptor */
  r->ihdrs = 20 + doff;
  r->mss = len - INNER_IP - r->ihdrs;
  r->payload_len = r->mss;
  r->nseg = 1;
  r->seq = rd32(ip + 24);
  r->tcp_flags = ip[33];
  r->v6 = 0;
  p->run_desc = (int32_t)i;
  p->run_hdrs = INNER_IP + r->ihdrs;
}

int merge_append(struct port *p, struct pool *pl, const uint8_t *frame, uint32_t len, uint32_t wire,
                 const struct virtio_net_hdr *vh, uint16_t flags) {
  uint32_t i = (uint32_t)p->run_desc, H = p->run_hdrs;
  struct super_ref *r = &pl->d_super[i];
  if (flags || len != wire || (vh && (vh->flags || vh->gso_type))) return 0;
  if (r->nseg >= GRO_MAX_SEGS || r->payload_len % r->mss || (r->tcp_flags & TCP_PSH)) return 0;
  if (len <= H || len - H > r->mss || r->ihdrs + r->payload_len + (len - H) > 0xffff) return 0;
  const uint8_t *f0 = desc_frame(pl, i);
  const uint8_t *o0 = f0 + 14, *o = frame + 14, *a = f0 + INNER_IP, *b = frame + INNER_IP;
  /* outer: Ethernet, IPv4 but id/length/checksum, UDP ports and length, VXLAN, inner Ethernet */
  if (memcmp(f0, frame, 14) || memcmp(o0, o, 2) || memcmp(o0 + 6, o + 6, 4) || memcmp(o0 + 12, o + 12, 12)) return 0;
  if (rd16(o + 2) != len - 14 || rd16(o + 24) != len - 34 || memcmp(o0 + 28, o + 28, 8 + 14)) return 0;
  /* inner IPv4: all but id (+ k), length and checksum; TCP: all but seq and checksum, PSH allowed */
  if (memcmp(a, b, 2) || memcmp(a + 6, b + 6, 4) || memcmp(a + 12, b + 12, 8)) return 0;
  if (rd16(b + 2) != len - INNER_IP || rd16(b + 4) != (uint16_t)(rd16(a + 4) + r->nseg)) return 0;
  if (memcmp(a + 20, b + 20, 4) || rd32(b + 24) != r->seq + r->payload_len) return 0;
  if (memcmp(a + 28, b + 28, 5) || (b[33] & ~TCP_PSH) != TCP_ACK || memcmp(a + 34, b + 34, 2)) return 0;
  if (memcmp(a + 40, b + 40, r->ihdrs - 40)) return 0; /* options */
  uint8_t *buf = (uint8_t *)r->payload;
  if (r->nseg == 1) { /* the second datagram: the run becomes a super-frame */
    if (p->arena_used >= p->arena_bufs) return 0;
    if (!inner_checksums_ok(a, pl->d_len[i] - INNER_IP, 20, 0)) {
      p->run_desc = -1; /* its first segment goes alone, the pod judges it */
      return 0;
    }
  }
  if (!inner_checksums_ok(b, len - INNER_IP, 20, 0)) return 0; /* before any copy */
  if (r->nseg == 1) {
    buf = p->arena + (size_t)p->arena_used * RX_BIG;
    memcpy(buf, f0 + H, r->mss);
  }
  memcpy(buf + r->payload_len, frame + H, len - H);
  if (r->nseg == 1) {
    p->arena_used++;
    r->payload = buf;
    pl->d_flags[i] |= DESC_F_SUPER;
    pl->d_more[i] = 0;
    p->st.rx_merge_frames++;
    p->st.rx_merge_segments++;
  }
  r->nseg++;
  r->payload_len += len - H;
  r->tcp_flags |= b[33] & TCP_PSH;
  pl->d_segs[i] = (uint16_t)r->nseg;
  pl->d_more[i] += len;
  p->st.rx_merge_segments++;
  p->st.rx_packets++;
  p->st.rx_bytes += len;
  return 1;
}

/* ---- a podway peer's UDP GSO message of VXLAN datagrams (rx_super and rx_merge) ------------------ */

/* Descriptor i: datagrams [s, e] of the message (e > s: one SUPER descriptor, payloads moved
 * together behind datagram s's own; e == s: the datagram as gso.c cuts it). */
static void uso_group(struct port *p, uint16_t port_id, struct pool *pl, uint32_t i, const uint8_t *frame,
                      const struct gso_plan *g, uint16_t flags, uint8_t *d0, uint32_t H, uint32_t ihdrs, uint8_t v6,
                      uint32_t s, uint32_t e) {
  uint32_t sl = gso_write_segment(frame, g, s, rx_slot(pl, i)); /* fits: gso_plan_frame checked the slot */
  rx_desc(pl, i, port_id, sl, e == s ? flags : flags | DESC_F_SUPER);
  p->st.rx_bytes += sl;
  if (e == s) {
    p->st.rx_gso_segments++;
    return;
  }
  uint32_t imss = g->mss - H, nseg = e - s + 1, payload = 0, more = 0;
  uint8_t *ds = d0 + (size_t)s * g->mss, *pay = ds + H;
  uint32_t tcp = H - ihdrs + (v6 ? 40u : 20u); /* TCP header's offset in a datagram */
  uint8_t last_flags = d0[(size_t)e * g->mss + tcp + 13]; /* before the move */
  for (uint32_t k = s; k <= e; k++) {
    uint32_t L = gso_seg_len(g, k);
    if (k > s) {
      memmove(pay + payload, d0 + (size_t)k * g->mss + H, L - H);
      more += g->hdrs + L;
    }
    payload += L - H;
  }
  pl->d_segs[i] = (uint16_t)nseg;
  pl->d_more[i] = more;
  struct super_ref *r = &pl->d_super[i];
  r->src = p;
  r->epoch = p->super_epoch;
  r->payload = pay;
  r->payload_len = payload;
  r->mss = imss;
  r->nseg = nseg;
  r->ihdrs = ihdrs;
  r->seq = rd32(ds + tcp + 4);
  r->tcp_flags = last_flags;
  r->v6 = v6;
  p->st.rx_bytes += more;
  p->st.rx_merge_frames++;
  p->st.rx_merge_segments += nseg;
  p->st.rx_packets += nseg - 1; /* the caller adds the descriptor itself */
}

uint32_t super_deliver_uso(struct port *p, uint16_t port_id, struct pool *pl, uint32_t i, uint32_t room,
                           const uint8_t *frame, const struct gso_plan *g, uint16_t flags) {
  if (!p->rx_merge || !p->super_avail || g->tun || g->proto != 17 || g->nseg < 2 || g->nseg > GRO_MAX_SEGS) return 0;
  if (!pl->d_super || !pl->d_segs || !pl->d_more) return 0;
  if (frame < p->super_avail || frame + g->hdrs + g->payload > p->super_avail + RX_BIG) return 0;
  if (rd16(frame + g->l4 + 2) != pl->vxlan_port) return 0;
  uint8_t *d0 = p->super_avail + (frame - p->super_avail) + g->hdrs; /* the VXLAN header of datagram 0 */
  const uint32_t V = 8 + 14;                                          /* VXLAN + inner Ethernet */
  if (g->mss < V + 40 || !(d0[0] & 0x08)) return 0;
  const uint8_t *ip = d0 + V;
  uint32_t ihl;
  uint8_t v6;
  uint16_t et = rd16(d0 + 8 + 12);
  if (et == 0x0800) {
    if (ip[0] != 0x45 || ip[9] != 6 || (rd16(ip + 6) & 0x3fff)) return 0;
    ihl = 20;
    v6 = 0;
  } else if (et == 0x86dd) {
    if ((ip[0] >> 4) != 6 || ip[6] != 6 || g->mss < V + 60) return 0;
    ihl = 40;
    v6 = 1;
  } else {
    return 0;
  }
  const uint8_t *t = ip + ihl;
  uint32_t doff = (uint32_t)(t[12] >> 4) * 4, H = V + ihl + doff, ihdrs = ihl + doff;
  if (doff < 20 || H >= g->mss || 14 + ihdrs > GRO_HDR_MAX) return 0;
  uint32_t last = gso_seg_len(g, g->nseg - 1), imss = g->mss - H;
  if (last <= H) return 0;
  uint32_t total = (g->nseg - 1) * imss + (last - H);
  if (ihdrs + total > 0xffff) return 0;
  uint32_t seq0 = rd32(t + 4), groups = 0;
  uint64_t ends = 0; /* bit k: a group ends after datagram k (nseg <= GRO_MAX_SEGS = 64) */
  const uint8_t *tg = t; /* the TCP header of the current group's first datagram */
  /* Every datagram checked before anything moves: a message that does not qualify is left to the
   * cut path as it came. A group ends after a datagram with PSH (GRO flushes on PSH) and before one
   * whose ACK number, window or options (timestamps) differ from its group's first one (GRO
   * flushes on those too): each group is one descriptor carrying its first datagram's headers, so
   * only a group must agree in them. The message spans the sender's TSO super-frames, each ending
   * in PSH with a TSval or TSecr of its own: compared across the message, most of those that
   * crossed a millisecond were cut (bench/README.md, rx-merge). Flow, sequence and IPv4 id run
   * through the whole message. */
  for (uint32_t k = 0; k < g->nseg; k++) {
    const uint8_t *d = d0 + (size_t)k * g->mss, *b = d + V, *tb = b + ihl;
    uint32_t L = gso_seg_len(g, k);
    if (k > 0) {
      if (memcmp(d0, d, V)) return 0;
      if (v6) {
        if (memcmp(ip, b, 4) || memcmp(ip + 6, b + 6, 34)) return 0;
      } else if (memcmp(ip, b, 2) || memcmp(ip + 6, b + 6, 4) || memcmp(ip + 12, b + 12, 8) ||
                 rd16(b + 4) != (uint16_t)(rd16(ip + 4) + k)) {
        return 0;
      }
      if (memcmp(t, tb, 4) || rd32(tb + 4) != seq0 + k * imss || t[12] != tb[12]) return 0;
      if (!(ends >> (k - 1) & 1) &&
          (memcmp(tg + 8, tb + 8, 4) || memcmp(tg + 14, tb + 14, 2) || memcmp(tg + 18, tb + 18, doff - 18))) {
        ends |= 1ull << (k - 1);
        groups++;
      }
      if (ends >> (k - 1) & 1) tg = tb;
    }
    if (v6 ? rd16(b + 4) != L - V - 40 : rd16(b + 2) != L - V) return 0;
    if ((tb[13] & (uint8_t)~TCP_PSH) != TCP_ACK) return 0;
    if (!inner_checksums_ok(b, L - V, ihl, v6)) return 0;
    if ((tb[13] & TCP_PSH) || k + 1 == g->nseg) {
      ends |= 1ull << k;
      groups++;
    }
  }
  if (groups > room || groups == g->nseg) return 0; /* (nothing merged: the cut path) */
  uint32_t n = 0, s = 0;
  for (uint32_t k = 0; k < g->nseg; k++) {
    if (!(ends >> k & 1)) continue;
    uso_group(p, port_id, pl, i + n++, frame, g, flags, d0, H, ihdrs, v6, s, k);
    s = k + 1;
  }
  p->arena_used++;
  p->super_avail = NULL;
  return n;
}

/* ---- a super-frame held or captured (JS: the neighbour queue, `podway capture`) ---------------- */

uint32_t super_cut_into(struct pool *pl, uint32_t i, uint32_t l3, const uint32_t *dst, uint32_t n) {
  if (i >= pl->ndesc || !(pl->d_flags[i] & DESC_F_SUPER)) return 0;
  uint8_t hdr[SUPER_HDR_MAX];
  struct gso_plan g;
  const struct super_ref *r = super_cut_plan_any(pl, i, l3, hdr, &g);
  if (!r || r->nseg == 0 || r->nseg > n) return 0;
  /* every place checked before anything is written: all or nothing */
  for (uint32_t k = 0; k < r->nseg; k++) {
    uint32_t q = dst[k];
    if (q >= pl->ndesc || q == i || pl->d_slot[q] >= pl->nslots) return 0;
    if ((uint32_t)pl->d_off[q] + g.hdrs + gso_seg_len(&g, k) > pl->slot_size) return 0;
  }
  for (uint32_t k = 0; k < r->nseg; k++) {
    uint32_t q = dst[k];
    uint8_t *to = pl->base + (size_t)pl->d_slot[q] * pl->slot_size + pl->d_off[q];
    pl->d_len[q] = (uint16_t)gso_write_segment_from(hdr, r->payload, &g, k, to);
    pl->d_flags[q] = 0;
    if (pl->d_segs) pl->d_segs[q] = 1;
    if (pl->d_more) pl->d_more[q] = 0;
  }
  return r->nseg;
}

int64_t super_rest(const struct pool *pl, uint32_t i, uint8_t *dst, uint32_t max, uint8_t *tcp_flags, uint16_t *sum) {
  if (i >= pl->ndesc || !pl->d_super || !(pl->d_flags[i] & DESC_F_SUPER)) return -1;
  const struct super_ref *r = &pl->d_super[i];
  if (!r->src || r->src->super_epoch != r->epoch || !r->src->arena || !r->payload) return -1;
  if (r->payload_len <= r->mss) return -1;
  uint32_t rest = r->payload_len - r->mss;
  const uint8_t *from = r->payload + r->mss;
  memcpy(dst, from, rest < max ? rest : max);
  *tcp_flags = r->tcp_flags;
  /* in network byte order, as if the rest began on an even offset */
  uint16_t s = csum_fold(csum_add(from, rest, 0));
  *sum = (uint16_t)((s >> 8) | (s << 8));
  return rest;
}
