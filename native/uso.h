/*
 * Transmit GSO on the underlay for VXLAN: consecutive VXLAN datagrams of one outer flow in a send
 * batch (same outer Ethernet, IP and UDP headers but for lengths, IPv4 id and checksums; equal UDP
 * payload sizes but a shorter last one) go to the kernel as ONE message: a virtio_net_hdr with
 * gso_type UDP_L4 (UDP segmentation offload, USO), the first datagram's outer headers with the
 * lengths of the whole, then every datagram's UDP payload read in place from the pool. The kernel
 * carries it as one skb and cuts it at the device (in software when the device cannot), into the
 * same datagrams: the kernel's own path for a super-frame leaving through a tunnel.
 */
#ifndef PODWAY_USO_H
#define PODWAY_USO_H

#include <stdint.h>
#include <linux/virtio_net.h>

/* Datagrams one message may carry. Linux caps a UDP GSO skb at UDP_MAX_SEGMENTS: 64 before 6.2
 * (include/linux/udp.h), 128 since; 64 is safe on both, and 64 KiB of 1400-byte VXLAN datagrams is
 * 46 of them. */
#define USO_MAX_SEGS 64
/* Outer headers a merged message starts with: Ethernet + IPv6 + UDP (IPv4 + UDP is shorter). */
#define USO_HDR_MAX (14 + 40 + 8)
/* The default VXLAN UDP destination port (IANA, and Calico's default vxlanPort). Only VXLAN is
 * merged: its outer UDP checksum is podway's own (0 over IPv4), and the inner frame carries its own
 * checksums. The port in use is the pool's (pool.vxlan_port, Felix's vxlanPort), given to uso_span. */
#define USO_VXLAN_PORT 4789

struct uso_merge {
  uint32_t count;   /* datagrams merged (1 = sent as it is) */
  uint32_t l4;      /* UDP header offset: 34 (IPv4) or 54 (IPv6) */
  uint32_t mss;     /* UDP payload bytes of every datagram but the last (gso_size) */
  uint32_t payload; /* UDP payload bytes in all */
  uint8_t v6;
};

/* How many frames from f[0] merge into one UDP GSO message (at least 1). A frame that is not a
 * VXLAN datagram of f[0]'s outer flow (see uso.c), is larger than f[0]'s, or whose IP length is
 * over `mtu` (the device's: a datagram the kernel would refuse on its own must still be refused),
 * ends the run. lens are the frames' lengths in the pool; vxlan_port is the VXLAN UDP destination
 * port in use (0: USO_VXLAN_PORT). */
uint32_t uso_span(const uint8_t *const *f, const uint32_t *lens, uint32_t n, uint32_t mtu, uint16_t vxlan_port, struct uso_merge *m);
/* UDP payload of frame f (a member of a run planned by uso_span): start offset and length. */
uint32_t uso_payload(const uint8_t *f, const struct uso_merge *m, uint32_t *len);
/* Outer headers of the merged message (from the run's first frame, lengths and the partial UDP
 * checksum for the whole) into hdr (m->l4 + 8 bytes), and its virtio_net_hdr. */
void uso_write_header(const uint8_t *first, const struct uso_merge *m, uint8_t *hdr, struct virtio_net_hdr *vh);

#endif
