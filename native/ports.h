/*
 * podway native I/O: port kinds and batch moves between the kernel and the frame pool.
 *
 * This layer opens devices and sockets and copies frames between the kernel and pool slots in
 * batches. It makes no routing decision: which frame goes to which port is decided in JS.
 */
#ifndef PODWAY_PORTS_H
#define PODWAY_PORTS_H

#include <stdint.h>
#include <stddef.h>
#include <linux/if_packet.h>

enum port_kind {
  PORT_TAP = 1,   /* L2 device: Ethernet frames */
  PORT_TUN = 2,   /* L3 device: IP packets */
  PORT_PACKET = 3,/* AF_PACKET bound to one interface: Ethernet frames */
  PORT_UDP = 4,   /* UDP socket: datagram payloads, peer address in the descriptor */
  PORT_RAW = 5,   /* raw IPv4 socket for one protocol, or (raw6) an IPv6 IPPROTO_RAW socket: whole IP packets */
};

/* Descriptor flags written on receive. */
#define DESC_F_TRUNCATED 0x1   /* the frame did not fit its slot (it was cut; counted) */
#define DESC_F_CSUM_PARTIAL 0x2 /* AF_PACKET: L4 checksum not yet computed (TP_STATUS_CSUMNOTREADY) */
#define DESC_F_OUTGOING 0x4    /* AF_PACKET: the frame was sent by this host (PACKET_OUTGOING) */
#define DESC_F_SUPER 0x8       /* the frame is segment 0 of a tunnel super-frame whose other segments
                                  stay in the receiving port's buffer (rxsuper.h): d_segs, d_more */
#define DESC_F_ECN_SHIFT 4     /* UDP: bits 4-5 hold the ECN field of the datagram's IP header (IP_RECVTOS, */
#define DESC_F_ECN_MASK 0x30   /* IPV6_RECVTCLASS), which a VXLAN decapsulation needs (RFC 6040) */

/* Counters kept per port; read by JS off the hot path. */
struct port_stats {
  uint64_t rx_packets, rx_bytes, rx_truncated, rx_kernel_drops;
  uint64_t tx_packets, tx_bytes, tx_dropped_full, tx_errors;
  uint64_t tx_retries; /* times the kernel refused frames (a send or a backlog flush hit a full queue) */
  uint64_t tx_queued;  /* frames copied into the transmit backlog */
  uint64_t tx_backlog_grown; /* times a full backlog was doubled (TXQ_FRAMES .. TXQ_MAX_FRAMES) */
  uint64_t rx_calls, tx_calls;
  /* receive offloads (ports with a vnet header, see gso.h) */
  uint64_t rx_gso_frames;     /* super-frames cut into segments */
  uint64_t rx_gso_segments;   /* descriptors those made */
  uint64_t rx_gso_bad;        /* dropped: offload metadata or headers inconsistent (GSO lengths,
                                 sizes, types; not the checksum offsets: rx_bad_csum) */
  uint64_t rx_bad_csum;       /* dropped: a partial checksum (NEEDS_CSUM) whose csum_start/csum_offset
                                 lie outside the frame, or, on a GSO frame, do not name its L4
                                 header's checksum field (they point into other headers or the payload) */
  uint64_t rx_gso_dropped;    /* dropped: well formed but not segmented here (IPv6 GSO, UFO,
                                 VLAN-tagged, a segment larger than a slot) */
  uint64_t rx_csum_completed; /* frames whose partial L4 checksum was completed in C */
  /* tunnel super-frames handed on whole (rxsuper.h) */
  uint64_t rx_super_frames;   /* received as one descriptor (DESC_F_SUPER) instead of cut */
  uint64_t rx_super_segments; /* segments they carry (counted in rx_packets too) */
  uint64_t rx_merge_frames;   /* runs of plain VXLAN TCP datagrams merged on receive (rx_merge) */
  uint64_t rx_merge_segments; /* datagrams those runs carry (counted in rx_packets too) */
  uint64_t tx_super_uso;      /* a pod's super-frames sent in VXLAN as UDP GSO messages built on send */
  uint64_t tx_super_frames;   /* sent to a pod as one GSO message (counted in tx_gro_frames too) */
  uint64_t tx_super_cut;      /* cut into segments on send instead (port without gro, backlog) */
  uint64_t tx_super_lost;     /* segments not sent: the descriptor no longer held segment 0 of its
                                 super-frame (JS turned it into something else) or its buffer was
                                 gone; segment 0 itself went as JS left it */
  uint64_t rx_scatter_frames; /* super-frames read straight into their pool slots (scatter_rx) */
  /* transmit coalescing towards pods (gro.h) */
  uint64_t tx_gro_frames;     /* super-frames sent */
  uint64_t tx_gro_segments;   /* frames they carried (counted in tx_packets too) */
  /* transmit GSO on the underlay (uso.h; gro.h for TCP): super-frames the kernel segments */
  uint64_t tx_gso_frames;     /* merged messages sent */
  uint64_t tx_gso_segments;   /* frames they carried (counted in tx_packets too) */
  uint64_t tx_gso_rejected;   /* merged messages the kernel rejected on their own: their frames
                                 and the rest of the batch went out one by one */
  /* where a forwarded frame's time goes (one sample per batch, a clock read each: see README) */
  uint64_t rx_wait_ns, rx_wait_samples; /* V2 ring: kernel receive timestamp of a batch's first
                                           frame to the recv that takes it (wake-up + queueing) */
  uint64_t js_ns, js_samples;           /* end of the thread's last recv to this port's send */
  uint64_t tx_ns, tx_syscalls;          /* time inside sendmmsg (incl. the softirq work it runs) */
  uint64_t rx_vlan_tagged;    /* AF_PACKET: dropped, 802.1Q/802.1ad-tagged (the kernel's TP_STATUS_VLAN_VALID:
                                 it moved the tag into metadata); podway forwards no VLAN */
  uint64_t rx_ring_stalls;    /* TPACKET_V2 ring found wedged by the kernel and set up again
                                 (port_ring_wedged; native/README.md) */
  /* frames the kernel refused for themselves and podway dropped (counted in tx_errors too): at once
   * (EMSGSIZE, ENETUNREACH, ...), or ENOBUFS at the head of the backlog past TX_HEAD_TRIES retries
   * and TX_HEAD_MS (a frame the device drops every time, e.g. bigger than a veth peer's MTU) */
  uint64_t tx_rejected;
  uint64_t tx_head_dropped;   /* of those, the ones dropped from the head of the backlog */
  uint64_t tx_too_big;        /* of those, the ones refused at once with EMSGSIZE (bigger than the
                                 device's MTU: the engine reads the MTU again and answers them) */
  /* frames the backlog held when it was discarded (counted in tx_errors too): the socket failed
   * (a poll error: device gone or down), no handle could watch it, or the port closed */
  uint64_t tx_backlog_dropped;
  /* receive drops no descriptor shows: */
  uint64_t rx_short;          /* a staged AF_PACKET message shorter than its vnet header (the kernel
                                 always writes one: not expected) */
  uint64_t rx_read_failed;    /* TUN/TAP: a read failed for one packet (EFAULT/EINVAL, how older
                                 kernels answer a packet longer than the slot): that packet is gone
                                 (counted in rx_truncated too, as before) */
  /* back-pressure (addon.c, native/README.md) */
  uint64_t rx_held;           /* a port with hold_rx: times it was held back (not read) because the
                                 port its last batch fed had a backlog over its high-water mark */
  uint64_t rx_held_ns;        /* how long in all (a hold still running counts from when it began) */
  uint64_t tx_hold_stalls;    /* a port with hold_high: times it gave its holds up because nothing
                                 left it for HOLD_STALL_MS (a dead link must not starve its feeders) */
};

/* Back-pressure (the marks are the engine's: engine.ts HOLD_HIGH/HOLD_LOW, given per port): a hold
 * is given up when the port sent nothing for HOLD_STALL_MS (checked every HOLD_CHECK_MS while a
 * hold runs). */
#define HOLD_STALL_MS TX_HEAD_MS
#define HOLD_CHECK_MS 50

/* A frame the kernel keeps refusing with ENOBUFS at the head of the backlog is dropped after this
 * many flushes and this much time since the first (a full queue drains within that: back-pressure
 * stays lossless; a frame the device drops every time no longer blocks the ones behind it). */
#define TX_HEAD_TRIES 6
#define TX_HEAD_MS 200

/* Copies of the last frames counted in tx_rejected, for `podway capture --stage drop`
 * (port_take_rejected): allocated on a port's first rejection, the oldest overwritten. */
#define TXREJ_KEEP 8
#define TXREJ_BYTES 2048
struct tx_rejected_copies {
  uint32_t count, next;
  uint16_t len[TXREJ_KEEP], orig[TXREJ_KEEP];
  uint8_t data[TXREJ_KEEP][TXREJ_BYTES];
};

/* Transmit backlog: frames the kernel refused (full socket or device queue), copied out of the pool
 * and sent later, in order, when the fd polls writable. Allocated the first time a port is refused
 * and freed when it drains, so idle and uncongested ports cost nothing. */
#define TXQ_FRAMES 256
/* ... grown (doubled) when a send finds it full, up to this many entries (32 MiB of 2 KiB slots):
 * a batch of 256 pod super-frames cut into ~45 segments each (IPIP) is 11,520 frames. */
#define TXQ_MAX_FRAMES 16384
struct tx_backlog;
struct rx_stage;
struct super_ref;

struct port {
  int in_use;
  int kind;
  int shared_owner;   /* TAP/TUN opened with share: its fd is listed for other threads until close */
  int udp6;           /* UDP: an IPv6 socket (receive: the peer address before the frame, see recv_mmsg) */
  int raw6;           /* raw: an IPv6 IPPROTO_RAW socket (send: to the packet's own destination) */
  int fd;
  /* AF_PACKET with tx_socket: frames are sent through this second socket, bound to the device with
   * protocol 0 (it receives nothing, is in no epoll set but while it has a backlog), so the kernel
   * freeing each sent skb finds no waiter to wake (native/README.md). has_txfd = 0: fd sends. */
  int has_txfd;
  int txfd;
  /* TAP/TUN: a datagram socket made in the device's network namespace when the port was opened (a
   * pod's, often not ours), through which linkMtus asks the device's MTU (the tun fd answers no
   * SIOCGIFMTU, and a socket of ours would look the ifindex up in our namespace). 0: none. */
  int has_ctlfd;
  int ctlfd;
  int ifindex;
  char name[32];
  /* PACKET_MMAP receive ring (AF_PACKET with ring=1): TPACKET_V2 (per-frame, wakes per frame) or
   * TPACKET_V3 (variable-size frames in blocks, wakes per block or after 1 ms) */
  uint8_t *ring;
  size_t ring_len;
  int ring_version;
  unsigned frame_size, frame_nr, frame_cur;
  unsigned block_size, block_nr, block_cur;
  /* position inside the current user-owned block when a batch filled up mid-block */
  unsigned pkt_left;
  uint8_t *pkt_next;
  int last_errno; /* last send error other than EAGAIN, for diagnostics */
  int refused_errno; /* why the kernel last refused frames (EAGAIN, ENOBUFS; sendmmsg returning 0: EAGAIN) */
  uint32_t head_tries; /* flushes the backlog's head frame has been refused with ENOBUFS (0: none yet) */
  uint64_t head_t0;    /* CLOCK_MONOTONIC ns of the first of them */
  uint32_t tx_toobig_len; /* the shortest frame dropped past those retries (0: none, or a frame at
                             least that long was accepted since): a head frame at least that long
                             refused with ENOBUFS is dropped on its first refusal */
  struct tx_rejected_copies *rejected; /* NULL until the port's first rejection */
  void *scratch;  /* mmsghdr/iovec/address arrays for one batch, allocated at open */
  /* AF_PACKET with PACKET_VNET_HDR: every frame received comes after a struct virtio_net_hdr, and
   * every frame sent is preceded by one (all zero: a plain frame). 0 = no vnet header. */
  uint32_t vnet_len;
  int gro;            /* vnet header: coalesce TCP segments of a flow into super-frames on send */
  int tx_gso;         /* vnet header: TX_GSO_* kinds of runs sent as one GSO message (underlay) */
  uint32_t mtu;       /* the device's MTU (tx_gso ports, re-read now and then): no merged datagram
                         may be one the kernel would have refused alone */
  uint32_t gso_next;  /* next segment of the super-frame being delivered (0 = none in progress) */
  /* TPACKET_V2: a frame too big for a ring slot is also queued whole on the socket
   * (PACKET_COPY_THRESH, TP_STATUS_COPY); it is read into this buffer (RX_BIG bytes) */
  uint8_t *rx_big;
  uint32_t copy_len, copy_wire; /* bytes in rx_big (vnet header included) and the frame's length */
  int copy_ready;               /* copy_buf holds the copy of the ring frame at frame_cur */
  uint8_t *copy_buf;            /* where that copy was read: rx_big or an arena buffer */
  int scatter_rx;               /* read a super-frame's copy straight into its segments' slots (gso.h) */
  struct rx_stage *stage;       /* no ring, vnet header: frames received whole, then delivered */
  /* rx_super (V2 ring with a vnet header): tunnel super-frames' copies are read into these
   * SUPER_BUFS buffers of RX_BIG bytes instead of rx_big, so a super-frame handed to JS as one
   * descriptor stays readable until this port's next recv (rxsuper.h) */
  int rx_super;
  int super_tunnel;             /* rx_super: VXLAN tunnel super-frames (the underlay) */
  int super_plain;              /* rx_super: a pod's plain TCP super-frames (rx_super_tcp) */
  uint32_t gso_min;             /* open_opts.gso_min: smaller gso_size counts rx_gso_bad (gso.c) */
  uint8_t *arena;
  uint32_t arena_bufs;          /* buffers in the arena (SUPER_BUFS, or POD_SUPER_BUFS on a pod port) */
  uint32_t arena_used;          /* buffers holding a super-frame handed on in this recv call */
  uint8_t *super_avail;         /* the buffer the frame being delivered lies in, when claimable */
  uint64_t super_epoch;         /* this recv call's number (rxsuper.c): refs of older calls are stale */
  int rx_merge;                 /* merge runs of plain VXLAN TCP datagrams on receive (rxsuper.h) */
  int32_t run_desc;             /* descriptor of the run open in this recv call, -1 = none */
  uint32_t run_hdrs;            /* its header bytes (outer + VXLAN + inner Ethernet, IP, TCP) */
  /* port_check_ring: what the last check saw, and how many checks in a row looked wedged */
  uint64_t chk_drops, chk_rx;
  unsigned chk_cur, chk_wedged;
  int rearming;  /* its ring is being set up again (port_ring_detach .. port_ring_attach) */
  int ring_err;  /* setting it up again failed (-errno): the port receives nothing */
  void *rearm_job; /* addon.c: the work doing it, while rearming */
  struct tx_backlog *txq; /* NULL unless frames are waiting for room in the kernel */
  /* back-pressure (addon.c): as a target (hold_high > 0), the ports it holds now and whether it
   * gave holds up (stalled: nothing left it for HOLD_STALL_MS, until it sends again); as a source
   * (hold_rx), the target its last batch sent to and the one it is held on (port id + 1, 0: none) */
  uint32_t hold_high, hold_low;
  uint32_t nheld;
  int hold_stalled;
  uint64_t hold_tx_seen;  /* tx_packets when last looked at (the timer), or when given up */
  uint64_t hold_seen_at;  /* CLOCK_MONOTONIC ns of the last time tx_packets was seen moving */
  int hold_rx;
  uint32_t feeds, held_on;
  uint64_t held_t0;       /* CLOCK_MONOTONIC ns the current hold began */
  struct port_stats st;
};

/* The frame pool and descriptor arrays, registered once from JS (typed arrays kept alive by refs). */
struct pool {
  uint8_t *base;
  size_t size;
  uint32_t slot_size, headroom, nslots;
  /* descriptors: index i describes one frame */
  uint32_t *d_slot;   /* pool slot index */
  uint16_t *d_off;    /* frame start inside the slot */
  uint16_t *d_len;    /* frame length */
  uint16_t *d_port;   /* port id it came from / goes to */
  uint16_t *d_flags;  /* DESC_F_* */
  uint32_t *d_addr;   /* UDP/raw: peer IPv4 address, host byte order */
  uint16_t *d_aport;  /* UDP: peer port */
  uint32_t ndesc;
  uint16_t *d_segs;   /* DESC_F_SUPER: wire segments the descriptor stands for */
  uint32_t *d_more;   /* DESC_F_SUPER: bytes those other segments add (JS keeps it current) */
  struct super_ref *d_super; /* DESC_F_SUPER: where the rest is (C only, ndesc entries) */
  uint32_t *txlist;   /* descriptor indices to send, filled by JS per output port */
  uint32_t ntxlist;
  /* The VXLAN UDP destination port (Felix's vxlanPort; 4789 by default): what the receive merge
   * (rx_merge, rx_super's USO path), the transmit USO merge and a tunnel super-frame's cut take for
   * VXLAN. Set once per thread (setVxlanPort) before its ports open; never per packet. */
  uint16_t vxlan_port;
};

/* Largest frame received whole: a 64 KiB GSO super-frame (the kernel's default gso_max_size) with
 * its Ethernet header, after the vnet header. */
#define RX_BIG (65536 + 512)

#define MAX_PORTS 1024
#define MAX_BATCH 1024

struct open_opts {
  int multi_queue;       /* TAP/TUN: IFF_MULTI_QUEUE */
  int persist;           /* TAP/TUN: TUNSETPERSIST after create */
  int existing;          /* TAP/TUN: attach to an existing device only (-ENODEV when there is none) */
  int ring;              /* AF_PACKET: PACKET_MMAP receive ring (else recvmmsg) */
  int ring_version;      /* AF_PACKET: 2 (default) or 3 */
  unsigned ring_blocks;  /* AF_PACKET: number of ring blocks */
  unsigned ring_block_size;
  int fanout_group;      /* AF_PACKET: PACKET_FANOUT group id + 1 (0 = none) */
  int ignore_outgoing;   /* AF_PACKET: PACKET_IGNORE_OUTGOING */
  int qdisc_bypass;      /* AF_PACKET: PACKET_QDISC_BYPASS (transmit straight to the driver) */
  const void *bpf;       /* AF_PACKET: classic BPF program (struct sock_filter[]) */
  size_t bpf_len;        /* bytes */
  uint32_t bind_addr;    /* UDP/raw: local IPv4 (host order), 0 = any */
  int udp6;              /* UDP: an IPv6 socket (IPV6_V6ONLY, IPV6_FREEBIND) bound to bind_addr6 */
  uint8_t bind_addr6[16]; /* UDP with udp6: local IPv6 address */
  uint16_t bind_port;    /* UDP */
  int proto;             /* raw: IP protocol number */
  int raw6;              /* raw: an IPv6 IPPROTO_RAW socket (whole IPv6 packets, sent to their own
                            destination address; proto and bind_addr are not used) */
  int rcvbuf, sndbuf;    /* socket buffer sizes in bytes (0 = leave) */
  int reuseport;         /* UDP: SO_REUSEPORT */
  int vnet_hdr;          /* AF_PACKET: PACKET_VNET_HDR (receive offloaded frames whole, see gso.h) */
  int gro;               /* AF_PACKET with vnet_hdr: send TCP runs as super-frames (gro.h) */
  int tx_gso;            /* AF_PACKET with vnet_hdr: send VXLAN and TCP runs as GSO messages (uso.h) */
  int rx_super;          /* AF_PACKET, V2 ring, vnet_hdr: hand tunnel TCP super-frames on whole (rxsuper.h) */
  int no_scatter_rx;     /* AF_PACKET V2 ring with vnet_hdr: read super-frames whole into a buffer,
                            then copy them into the pool (the path before scatter receive) */
  int rx_merge;          /* AF_PACKET, V2 ring, vnet_hdr: merge runs of VXLAN TCP datagrams on receive (rxsuper.h) */
  int rx_super_tcp;      /* AF_PACKET, V2 ring, vnet_hdr: hand a pod's TCP super-frames on whole (rxsuper.h) */
  uint32_t gso_min;      /* AF_PACKET with vnet_hdr: a GSO frame whose gso_size is below this is bad
                            (rx_gso_bad; a pod port: POD_GSO_MIN, see gso.h); 0 = any size */
  int tx_socket;         /* AF_PACKET: send through a second socket of the port's own that receives nothing */
  int share;             /* TAP/TUN: offer this port's fd to the process's other threads (shared_tx) */
  int shared_tx;         /* TAP/TUN: no device open of our own: a dup of the fd another thread shares */
  const char *netns;     /* TAP/TUN with share/shared_tx: the namespace path the device was opened in ("" = ours) */
};

/* port.tx_gso: which runs are merged (a kind the kernel rejected is turned off) */
#define TX_GSO_UDP 1 /* VXLAN datagrams of one outer flow: UDP_L4 (uso.h) */
#define TX_GSO_TCP 2 /* TCP segments of one flow (direct routing): TCPV4 or TCPV6 (gro.h) */
#define TX_SUPER 4   /* (message kind only) a tunnel super-frame handed on whole (rxsuper.h) */

/* Each returns 0 or -errno; on success *p is filled. */
int port_open_tuntap(struct port *p, const char *name, int tap, const struct open_opts *o);
int port_open_packet(struct port *p, const char *ifname, const struct open_opts *o);
/* port_open_packet in two steps: prepare (socket, options, ring; no interface) then bind. */
int port_prepare_packet(struct port *p, const struct open_opts *o);
int port_bind_packet(struct port *p, const char *ifname, const struct open_opts *o);
int port_open_udp(struct port *p, const struct open_opts *o, uint16_t *bound_port);
int port_open_raw(struct port *p, const struct open_opts *o);
/* Release everything the port holds (fd, ring mapping, buffers, backlog). Touches only the port
 * itself, never the pool, so it may run on another thread once the port is out of the table. An
 * AF_PACKET socket with a ring waits here for an RCU grace period (tens of ms, see addon.c). */
void port_close(struct port *p);
/* AF_PACKET: attach a filter that drops every frame, so the kernel stops filling the ring of a
 * port whose close is still pending. Never blocks; other kinds: nothing. */
void port_stop_rx(struct port *p);

/* Receive up to max frames into descriptors [first, first+max). Returns count or -errno. */
int port_recv(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t max);
/* Send the descriptors listed in txlist[first .. first+count) without blocking. Returns the frames
 * accepted: sent now, or copied into the port's backlog when the kernel refused them (and behind a
 * backlog that already exists, so order is kept). Frames the backlog has no room for are counted in
 * tx_dropped_full, frames the kernel rejects on their own (EMSGSIZE, ENETUNREACH...) in tx_errors.
 * Negative (-errno) only for a bad argument: a count over MAX_BATCH or a descriptor out of range. */
int port_send(struct port *p, struct pool *pl, uint32_t first, uint32_t count);
/* The fd frames are sent on: the port's own, or its transmit-only socket (tx_socket). */
static inline int port_txfd(const struct port *p) { return p->has_txfd ? p->txfd : p->fd; }
/* Frames waiting in the backlog (0 when there is none). */
uint32_t port_backlog(const struct port *p);
/* Send from the backlog until it is empty or the kernel refuses again; frees it once empty.
 * Returns the frames taken off the backlog (sent, or failed on their own); 0 = refused at once. */
uint32_t port_flush(struct port *p);
/* Copy the kept copies of rejected frames (tx_rejected, oldest first) into dst as records
 * [u16 original length][u16 bytes kept][bytes], and forget them. Returns the bytes written; records
 * that do not fit are forgotten too. */
uint32_t port_take_rejected(struct port *p, uint8_t *dst, uint32_t max);
/* Discard the backlog, counting its frames as tx_errors with this errno (the fd failed). */
void port_drop_backlog(struct port *p, int err);
/* AF_PACKET: drops the kernel counted because our socket queue or ring was full (accumulated). */
int port_kernel_drops(struct port *p, uint64_t *drops);
/* AF_PACKET with a TPACKET_V2 ring: called now and then (not per batch). The kernel can wedge such
 * a ring for good (a frame whose vnet header it cannot build leaves the head slot claimed,
 * native/README.md): then every frame is dropped and counted while the slot we wait on stays
 * kernel-owned. Returns 1 (and counts rx_ring_stalls) when `checks` calls in a row saw drops rise,
 * nothing received and that slot empty; else 0 (other ports, or a ring being set up again: 0). */
int port_ring_wedged(struct port *p, unsigned checks);

/* Setting a wedged ring up again, in three steps so the slow one (two RCU grace periods) can run
 * on a worker thread: detach (the port keeps its fd, stops receiving: port_recv returns 0), run
 * (touches only *r: unmap, free the ring, the same ring again, map, discard what the socket
 * queued meanwhile), attach (back on the port's thread: the new ring, slot 0; on failure the port
 * gets a drop-all filter, ring_err, and stays receiving nothing). */
struct ring_rearm {
  int fd;
  uint8_t *ring;
  size_t ring_len;
  unsigned block_size, block_nr;
  int err;              /* 0 or -errno */
  uint64_t discarded;   /* frames queued on the socket while it had no ring (counted as kernel drops) */
};
void port_ring_detach(struct port *p, struct ring_rearm *r);
int ring_rearm_run(struct ring_rearm *r);
void port_ring_attach(struct port *p, const struct ring_rearm *r);

#endif
