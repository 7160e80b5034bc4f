/*
 * Receive offloads in software: frames an AF_PACKET socket hands over with a virtio_net_hdr
 * (PACKET_VNET_HDR) are delivered to the pool as plain wire frames. A TSO/GSO super-frame (up to
 * 64 KiB, one TCP or UDP header for many segments) is cut into segments of gso_size payload bytes,
 * each in its own descriptor with complete headers and checksums; a frame whose L4 checksum was left
 * to "hardware" (NEEDS_CSUM) gets it completed. Nothing is allocated per frame.
 */
#ifndef PODWAY_GSO_H
#define PODWAY_GSO_H

#include <stdint.h>
#include <linux/virtio_net.h>

#include "ports.h"
#include "csum.h"

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5 /* GSO frame, UDP payload split in gso_size pieces (USO) */
#endif

#define VNET_HDR_LEN ((uint32_t)sizeof(struct virtio_net_hdr))

/* How a super-frame is cut (offsets from the start of the Ethernet frame). */
struct gso_plan {
  uint32_t l3;      /* IPv4 header */
  uint32_t l4;      /* TCP or UDP header */
  uint32_t hdrs;    /* first payload byte: every segment repeats frame[0, hdrs) */
  uint32_t payload; /* payload bytes in the super-frame */
  uint32_t mss;     /* payload bytes per segment (gso_size) */
  uint32_t nseg;    /* segments it makes */
  uint8_t proto;    /* 6 (TCP) or 17 (UDP) */
  uint8_t v6;       /* 1: IPv6 header (payload length per segment, no id, no header checksum) */
  /* A tunnel super-frame (the kernel's SKB_GSO_UDP_TUNNEL or SKB_GSO_IPXIP4 under a TCP/UDP GSO
   * type): l3..hdrs above are the inner headers, and every segment also repeats the outer IP
   * header at ol3 (IPv4: total length, id + k, header checksum per segment; IPv6: payload length)
   * and, for VXLAN, the outer UDP header at ol4 (length per segment; checksum 0 over IPv4, computed
   * over IPv6). tun = 0: not a tunnel. ol3 is 0 when the frame is an IP packet (a raw or TUN
   * port's frame: the send side cuts those too). */
  uint8_t tun;
  uint32_t ol3;
  uint32_t ol4;     /* 0: IPIP (no outer UDP) */
  uint8_t ov6;      /* the outer header is IPv6 (payload length per segment, UDP checksum computed) */
};

enum gso_verdict {
  GSO_OK = 0,
  GSO_BAD = -1,         /* metadata or headers inconsistent: drop, count rx_gso_bad */
  GSO_UNSUPPORTED = -2, /* well formed but not segmented here (VLAN, IPv6 extension headers, UFO, segment > slot) */
  GSO_BAD_CSUM = -3,    /* NEEDS_CSUM offsets that do not name the L4 header's checksum: drop, count rx_bad_csum */
};

/* A pod port's limits on GSO frames (open option gsoMin, set by the engine on veth pod ports only):
 * a pod can write a GSO frame with gso_size 1, which would be cut into one segment per payload
 * byte (64 KiB in, 65,535 frames out). Such a frame is bad (rx_gso_bad):
 * - TCP (TCPV4, TCPV6): a gso_size below the floor, before any planning. The engine uses 88,
 *   Linux's TCP_MIN_MSS, the smallest MSS a socket may ask for (TCP_MAXSEG); Linux advertises at
 *   least net.ipv4.route.min_adv_mss (256). A pod's own TCP builds its GSO frames at its path MSS,
 *   so it goes below 88 only toward a peer that advertises less (Linux caps a peer's MSS at
 *   net.ipv4.tcp_min_snd_mss, 48, and its options come off that: the kernel's TCP_MIN_GSO_SIZE is
 *   8): such a connection's super-frames are dropped, its single segments pass.
 * - UDP (UDP_L4, a UDP_SEGMENT send): no floor (small datagrams are a legitimate use: the kernel
 *   takes any gso_size), but more than POD_UDP_GSO_MAX_SEGS segments, the kernel's own limit on a
 *   UDP_SEGMENT send (UDP_MAX_SEGMENTS), after planning.
 * The underlay has neither limit: the kernel's GRO merges a flow's small segments into a frame
 * whose gso_size is their size, any size. */
#define POD_UDP_GSO_MAX_SEGS 128

/* Check a GSO frame and plan its segments; a segment must fit `cap` bytes. */
int gso_plan_frame(const uint8_t *f, uint32_t len, const struct virtio_net_hdr *vh, uint32_t cap,
                   struct gso_plan *g);
/* The pod port limits above: a TCP gso_size under the floor (gso_min 0: no limit) ... */
static inline int gso_tcp_below_floor(uint32_t gso_min, const struct virtio_net_hdr *h) {
  unsigned type = h->gso_type & (unsigned)~VIRTIO_NET_HDR_GSO_ECN;
  return type != VIRTIO_NET_HDR_GSO_UDP_L4 && h->gso_size < gso_min;
}
/* ... and a planned UDP frame of more segments than a UDP_SEGMENT send can make. */
static inline int gso_udp_too_many(uint32_t gso_min, const struct gso_plan *g) {
  return gso_min != 0 && g->proto == 17 && g->nseg > POD_UDP_GSO_MAX_SEGS;
}
/* Payload bytes of segment k (k < nseg). */
static inline uint32_t gso_seg_len(const struct gso_plan *g, uint32_t k) {
  uint32_t off = k * g->mss;
  return g->payload - off < g->mss ? g->payload - off : g->mss;
}
/* Write segment k of the plan to dst (complete headers, checksums); returns its length. */
uint32_t gso_write_segment(const uint8_t *f, const struct gso_plan *g, uint32_t k, uint8_t *dst);
/* The same with the headers at f (f[0, g->hdrs): the offsets of the plan) and the payload elsewhere
 * (pay: the whole super-frame's payload). */
uint32_t gso_write_segment_from(const uint8_t *f, const uint8_t *pay, const struct gso_plan *g, uint32_t k, uint8_t *dst);
/* The same when segment k's payload is already at dst + hdrs (scatter receive): only f[0, hdrs)
 * is read; the headers are written in front of the payload and the checksums computed over it. */
uint32_t gso_write_headers(const uint8_t *f, const struct gso_plan *g, uint32_t k, uint8_t *dst);
/* The same with segment k's payload at pay instead of behind the headers (NULL: behind them): only
 * dst[0, hdrs) is written, the checksums summed over the headers there and the payload at pay. */
uint32_t gso_write_headers_pay(const uint8_t *f, const struct gso_plan *g, uint32_t k, uint8_t *dst, const uint8_t *pay);
/* Complete a partial checksum in place: the 16-bit field at csum_start + csum_offset holds the
 * folded pseudo-header sum; it becomes the checksum of [csum_start, len) (0 written as 0xffff, as
 * the kernel's skb_checksum_help does). SCTP (protocol 132, csum_offset 8: the kernel's
 * csum_not_inet) gets the CRC32c of [csum_start, len) in its 32-bit field instead (as
 * skb_crc32c_csum_help). Returns 0, or -1 when the offsets do not name a TCP, UDP or SCTP
 * checksum: outside the frame, into the Ethernet or IP header, not the L4 header's checksum field
 * (gso.c csum_offsets_ok; counted rx_bad_csum by the caller). */
int csum_complete_partial(uint8_t *f, uint32_t len, uint32_t csum_start, uint32_t csum_offset);

/* Receive into descriptor i (shared with rxsuper.c): rx_slot points it at its slot's headroom and
 * returns where its frame goes; rx_desc writes its metadata, len bytes from port_id with the
 * DESC_F_* flags (no sender address). */
static inline uint8_t *rx_slot(struct pool *pl, uint32_t i) {
  pl->d_off[i] = (uint16_t)pl->headroom;
  return pl->base + (size_t)pl->d_slot[i] * pl->slot_size + pl->headroom;
}
static inline void rx_desc(struct pool *pl, uint32_t i, uint16_t port_id, uint32_t len, uint16_t flags) {
  pl->d_len[i] = (uint16_t)len;
  pl->d_port[i] = port_id;
  pl->d_flags[i] = flags;
  pl->d_addr[i] = 0;
  pl->d_aport[i] = 0;
}

/* Deliver one received frame into descriptors [first, first + room) (room >= 1). vh is NULL when
 * the socket has no vnet header; `flags` are the DESC_F_* the caller already knows (OUTGOING, and
 * CSUM_PARTIAL without a vnet header). wire_len > len means the kernel cut the frame. Returns the
 * descriptors written (0 when the frame was dropped, counted). *done is 0 when a super-frame's
 * segments did not all fit: the caller keeps the frame and calls again with it; p->gso_next says
 * which segment comes next. Adds rx_bytes and the offload counters, not rx_packets. */
uint32_t rx_deliver(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t room,
                    const uint8_t *frame, uint32_t len, uint32_t wire_len,
                    const struct virtio_net_hdr *vh, uint16_t flags, int *done);

/*
 * Scatter receive (a TPACKET_V2 ring with PACKET_COPY_THRESH: the ring slot keeps a super-frame's
 * first ~2 KiB, its whole copy waits on the socket queue). The segments are planned from the ring
 * slot's head, and the copy is read with one recvmsg whose iovecs put each segment's payload
 * straight where it belongs in its pool slot (after the headers gso_write_headers writes there),
 * so the payload is copied once (by the kernel) instead of twice.
 *
 * rx_scatter_layout: plan from `head` (`have` bytes of the frame, its whole length `len`, vh the
 * ring's vnet header) and fill iov: [0] the vnet header and headers into big[0, vnet_len + hdrs),
 * then the payloads of the segments that fit descriptors [first, first + room), then the rest of
 * the payload at its own place in big (so a super-frame whose segments do not all fit this batch is
 * finished from big by rx_deliver, as a copy read whole would be). Returns the iovecs, 0 when the
 * frame is not for scatter (not GSO, malformed, too big for big, head too short): the caller reads
 * the copy whole and rx_deliver decides as before (drops counted there). *nscat: segments
 * scattered. At most SCATTER_MAX_IOV iovecs.
 *
 * rx_scatter_finish: after recvmsg returned `got` (MSG_TRUNC: the copy's whole length, vnet header
 * included), check the copy is the frame that was planned (its own vnet header and headers make the
 * same plan: else nothing is delivered and it counts in rx_gso_bad), then write the headers of the
 * scattered segments. Returns the descriptors written; *done and p->gso_next as rx_deliver's.
 */
#define SCATTER_MAX_IOV 1024 /* the kernel's UIO_MAXIOV */
#define SCATTER_HEAD_MIN 256 /* ring head bytes needed: every header gso_plan_frame reads lies in them */
struct iovec;
uint32_t rx_scatter_layout(const struct port *p, struct pool *pl, uint32_t first, uint32_t room,
                           const uint8_t *head, uint32_t have, uint32_t len, const struct virtio_net_hdr *vh,
                           uint8_t *big, uint32_t big_cap, struct iovec *iov, struct gso_plan *g, uint32_t *nscat);
uint32_t rx_scatter_finish(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t nscat,
                           const struct gso_plan *g, const uint8_t *big, uint32_t got, uint16_t flags, int *done);

#endif
