/*
 * Transmit-side coalescing towards pods (software GRO): consecutive in-order TCP segments (over
 * IPv4 or IPv6) of one flow in a batch bound for one pod port are sent as one super-frame with a
 * virtio_net_hdr (gso_type TCPV4 or TCPV6, gso_size, partial checksum), as the kernel's GRO would
 * hand them to the pod, so the pod's stack handles one large packet instead of dozens. The pool frames are not touched: the
 * merged frame is a rewritten copy of the first segment's headers followed by every segment's
 * payload, in place, as an iovec list.
 */
#ifndef PODWAY_GRO_H
#define PODWAY_GRO_H

#include <stdint.h>
#include <linux/virtio_net.h>

/* Segments one super-frame may hold (a pod's 64 KiB at a 1448-byte MSS is 45). */
#define GRO_MAX_SEGS 64
/* Bytes of Ethernet + IP (IPv4 without options, or IPv6 without extension headers) + TCP (with
 * options) headers a merged frame starts with. */
#define GRO_HDR_MAX (14 + 40 + 60)

struct gro_merge {
  uint32_t count;   /* frames merged (1 = sent as it is) */
  uint32_t l3;      /* IP header bytes: 20 (IPv4, gso_type TCPV4) or 40 (IPv6, TCPV6) */
  uint32_t hdrs;    /* header bytes of every segment (Ethernet + IP + TCP) */
  uint32_t mss;     /* payload bytes of every segment but the last */
  uint32_t payload; /* payload bytes in all */
  uint8_t psh;      /* the last segment carried PSH */
};

/* How many frames from f[0] merge into one super-frame (at least 1). Frames that are not plain
 * TCP/IPv4 or TCP/IPv6 data segments with valid checksums, or do not follow f[0]'s flow in order
 * with the same headers, end the run. lens are the frames' lengths in the pool. */
uint32_t gro_span(const uint8_t *const *f, const uint32_t *lens, uint32_t n, struct gro_merge *m);
/* Payload of frame f (a member of a run planned by gro_span): start offset and length. */
uint32_t gro_payload(const uint8_t *f, const struct gro_merge *m, uint32_t *len);
/* Headers of the super-frame (from the run's first frame, lengths and checksums for the whole run)
 * into hdr (m->hdrs bytes), and its virtio_net_hdr. */
void gro_write_header(const uint8_t *first, const struct gro_merge *m, uint8_t *hdr, struct virtio_net_hdr *vh);

#endif
