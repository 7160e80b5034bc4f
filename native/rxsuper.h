/*
 * Tunnel super-frames handed on whole (receive side of the underlay, towards pods).
 *
 * A kernel VXLAN node on a link with offloads on sends UDP-tunnel GSO super-frames: one outer
 * VXLAN/UDP/IP header in front of an inner TCP super-frame of up to 64 KiB. Cutting it into ~45
 * datagrams (gso.c) only for JS to route each and gro.c to merge them again towards the pod costs a
 * checksum pass per segment on each side and a JS pass per segment. Instead, on a port with
 * rx_super, such a frame becomes ONE descriptor: segment 0 written to the pool as the cut path
 * would write it (a complete datagram JS decapsulates, checks and routes like any other), flagged
 * DESC_F_SUPER, with d_segs (segments it stands for) and d_more (bytes they add); the rest stays in
 * the port's receive buffer (an arena of SUPER_BUFS buffers, valid until the port's next recv).
 * JS's decision for segment 0 is the decision for the whole super-frame.
 *
 * On send, a pod port with gro sends it as one TCPV4/TCPV6 GSO message: JS's headers (its MACs,
 * TTL) with the lengths of the whole, FIN/PSH of the super-frame, the partial checksum the pod
 * completes, gso_size the inner MSS, followed by the whole payload read from the arena. Any other
 * port, or a backlog, gets the segments cut from JS's headers (full checksums, as gso.c cuts).
 * When the descriptor no longer holds segment 0 as received (JS built an ICMP error in it, or its
 * receive buffer is gone), it is sent as it is and the other segments are counted in
 * tx_super_lost.
 */
#ifndef PODWAY_RXSUPER_H
#define PODWAY_RXSUPER_H

#include <stdint.h>
#include <linux/virtio_net.h>

#include "ports.h"
#include "gso.h"

/* Super-frames one recv call of a port can hand on whole (4 MiB of buffers): the call ends when
 * they are all in use and another super-frame comes. */
#define SUPER_BUFS 64
/* The same on a pod port (rx_super_tcp): one arena per pod, 1 MiB. */
#define POD_SUPER_BUFS 16
/* A pod's super-frame of more segments than this is cut on receive (a tiny gso_size): its
 * segments' headers are written per send into a per-thread scratch of SUPER_TX_SEGS. */
#define POD_SUPER_MAX_SEGS 128
/* Headers of a super-frame's descriptor after JS encapsulated it: outer Ethernet + IPv6 + UDP +
 * VXLAN + inner Ethernet + IP and TCP headers with options. */
#define SUPER_HDR_MAX (14 + 40 + 8 + 8 + 14 + 60 + 60)
/* Send (ports.c): segments of such super-frames one send call cuts into UDP GSO messages, and the
 * scratch each one's headers are written to. */
#define SUPER_TX_SEGS 1024
#define SUPER_SEG_HDR 208

struct super_ref {
  const struct port *src;  /* the receiving port */
  uint64_t epoch;          /* src->super_epoch of the recv that delivered it: stale once it moved */
  const uint8_t *payload;  /* the whole inner TCP payload, in src's arena */
  uint32_t payload_len;
  uint32_t mss;            /* inner gso_size */
  uint32_t nseg;
  uint32_t ihdrs;          /* inner IP + TCP header bytes */
  uint32_t seq;            /* inner TCP sequence number of segment 0 */
  uint8_t tcp_flags;       /* the super-frame's TCP flags (FIN, PSH belong on its last segment) */
  uint8_t v6;
};

/* Receive: a new recv call on p (fresh epoch, arena empty). */
void super_recv_begin(struct port *p);
/* Receive: the buffer the next socket copy of a super-frame is read into. */
uint8_t *super_copy_buf(struct port *p);
/* Receive (from rx_deliver, g planned OK, p->super_avail set): deliver the frame as one
 * DESC_F_SUPER descriptor at i when it is a VXLAN TCP super-frame of 2+ segments. 1 if done. */
int super_deliver(struct port *p, uint16_t port_id, struct pool *pl, uint32_t i, const uint8_t *frame,
                  const struct gso_plan *g, uint16_t flags);

/* Receive merge (rx_merge): with underlay offloads off, a kernel node's TCP stream arrives as one
 * VXLAN datagram per segment. A run of consecutive datagrams of one inner TCP flow in the ring
 * becomes one DESC_F_SUPER descriptor the same way: the first datagram as it is in the pool, the
 * payloads (the first's too) copied into an arena buffer, the rest of the ring frames released.
 * The rules are gro.c's (in-order, same headers, ids + 1, every payload the first's size but a
 * shorter last, PSH ends a run, 64 segments, 64 KiB), plus the outer headers: the same Ethernet
 * header, outer IPv4 (but id, length, checksum), UDP ports, VXLAN header and inner Ethernet
 * header, so JS's decision for the first applies to all. Every datagram's inner IPv4 header and
 * TCP checksums are verified before it joins (the pod trusts the merged frame's partial checksum).
 * Plain datagrams only (no GSO, no partial checksum); IPv4 outside and inside. */
/* Open a run on descriptor i (just delivered from a ring frame with vnet header vh), if its frame
 * may start one. */
void merge_open(struct port *p, struct pool *pl, uint32_t i, const struct virtio_net_hdr *vh);
/* Add this ring frame to the open run; 1 when it joined (its ring frame may be released). */
int merge_append(struct port *p, struct pool *pl, const uint8_t *frame, uint32_t len, uint32_t wire,
                 const struct virtio_net_hdr *vh, uint16_t flags);

/* Receive (from rx_deliver, as super_deliver; both rx_super and rx_merge on): a podway peer sends a
 * run of VXLAN datagrams as one UDP GSO message (uso.c), which a veth underlay with offloads on
 * hands over whole (GSO_UDP_L4). When every datagram in it is VXLAN (the pool's vxlan_port, 4789 by default; I flag) carrying
 * the next in-order TCP segment of one inner flow, with the rules of merge_append (same VXLAN and
 * inner Ethernet header, inner IPv4 but id + k, length and checksum / IPv6 but payload length, TCP
 * ports and data offset, seq in order, ACK with or without PSH, equal payloads but a shorter last,
 * inner checksums verified), it is delivered as groups that end at each PSH, before a datagram
 * whose ACK number, window or options differ from its group's first (as GRO flushes on both) and
 * at the end, one descriptor each from i on (at most `room`): a group of 2+ datagrams one
 * DESC_F_SUPER descriptor (its first datagram as gso.c cuts it, the inner payloads moved together
 * in the frame's arena buffer), a group of one the datagram as gso.c cuts it. Returns the
 * descriptors written; 0 (nothing qualifies, no group of 2+, or too little room) leaves the frame
 * unchanged for the cut path. SUPER groups count in rx_merge_frames / rx_merge_segments. */
uint32_t super_deliver_uso(struct port *p, uint16_t port_id, struct pool *pl, uint32_t i, uint32_t room,
                           const uint8_t *frame, const struct gso_plan *g, uint16_t flags);

/* Send: descriptor i (DESC_F_SUPER) is segment 0 of a live super-frame inside a tunnel JS put
 * around it (a pod's super-frame encapsulated for another node), its outer IP header at ol3 (14:
 * behind Ethernet; 0: an IP packet for a raw port such as tx4): VXLAN (outer IPv4
 * without options and not a fragment, or IPv6 with UDP next; UDP to the pool's vxlan_port with the VXLAN I flag;
 * outer lengths exactly the frame's) or IPIP (outer IPv4, protocol 4). l3: the inner IP header;
 * ol4: the outer UDP header (0: IPIP); ov6: the outer header is IPv6. */
struct super_encap {
  uint32_t l3, ol4;
  uint8_t ov6;
};
const struct super_ref *super_check_encap(const struct pool *pl, uint32_t i, uint32_t ol3, struct super_encap *e);
/* Send, cut path: super_check at l3, or super_check_encap with the outer header at l3, then the plan to cut it from
 * hdr (SUPER_HDR_MAX bytes): segment k is gso_write_segment_from(hdr, r->payload, g, k, dst), with
 * the outer headers per segment as gso.c writes a tunnel super-frame's. NULL: not live. */
const struct super_ref *super_cut_plan_any(const struct pool *pl, uint32_t i, uint32_t l3, uint8_t *hdr,
                                           struct gso_plan *g);

/* Send: descriptor i (DESC_F_SUPER) still holds segment 0 of a live super-frame, its IP header at
 * l3 (14: Ethernet in front, 0: an IP packet). */
const struct super_ref *super_check(const struct pool *pl, uint32_t i, uint32_t l3);
/* Send: the whole super-frame's headers (hdr: l3 + ihdrs bytes, returned) and virtio_net_hdr. */
uint32_t super_header(const struct pool *pl, uint32_t i, const struct super_ref *r, uint32_t l3, uint8_t *hdr,
                      struct virtio_net_hdr *vh);
/* Send: how to cut it into its segments from descriptor i's headers, which go to hdr (l3 + ihdrs
 * <= SUPER_HDR_MAX bytes, with the super-frame's FIN/PSH): segment k is then
 * gso_write_segment_from(hdr, r->payload, g, k, dst). Made once per super-frame. */
void super_cut_plan(const struct pool *pl, uint32_t i, const struct super_ref *r, uint32_t l3, uint8_t *hdr,
                    struct gso_plan *g);

/* A super-frame JS holds (the neighbour queue) or captures, outside the send path. */
/* Cut descriptor i's live super-frame (its IP header, or a tunnel's outer one, at l3: 14 behind
 * Ethernet) into descriptors dst[0..nseg): segment k written as the send side's cut path writes it
 * (super_cut_plan_any, gso_write_segment_from: full checksums, id + k, seq + offset, FIN/PSH on the
 * last) at dst[k]'s slot and offset, d_len set, d_flags cleared. Returns nseg; 0 (nothing written)
 * when i is not a live super-frame, n < nseg, or a segment would not fit its slot. */
uint32_t super_cut_into(struct pool *pl, uint32_t i, uint32_t l3, const uint32_t *dst, uint32_t n);
/* The payload of descriptor i's live super-frame behind segment 0's: its first max bytes copied to
 * dst, the super-frame's TCP flags, and the ones'-complement sum of all of it (network order, as
 * if it began on an even offset). Returns its length, -1 when i is not a live super-frame. */
int64_t super_rest(const struct pool *pl, uint32_t i, uint8_t *dst, uint32_t max, uint8_t *tcp_flags, uint16_t *sum);

#endif
