/*
 * Port kinds and the batched moves between the kernel and the frame pool.
 *
 * Receive writes each frame at (slot * slot_size + headroom) so JS can prepend outer headers in
 * place; send reads (slot * slot_size + off, len). One call moves a whole batch: recvmmsg/sendmmsg
 * for sockets, a TPACKET_V3 ring for AF_PACKET, and a read/write loop for TUN/TAP (a TUN/TAP fd has
 * no batch call: one packet per read or write is what the kernel offers without IFF_VNET_HDR).
 *
 * AF_PACKET ports use PACKET_VNET_HDR by default: a pod's veth (offloads on, as CNIs leave them)
 * hands over TSO/GSO super-frames of up to 64 KiB with partial checksums, and an underlay NIC can
 * hand over GRO'd ones. They are received whole with their virtio_net_hdr and cut into wire-size
 * segments in C (gso.c), so JS only ever sees frames that fit a slot, with complete checksums.
 */
#define _GNU_SOURCE
#include "ports.h"
#include "gso.h"
#include "gro.h"
#include "uso.h"
#include "rxsuper.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
#endif

/* Per-port scratch for recvmmsg/sendmmsg, allocated once at open: no allocation per batch. */
struct mmsg_scratch {
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH][2]; /* [vnet header,] frame */
  union {
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_ll ll;
  } names[MAX_BATCH];
  /* PACKET_AUXDATA control messages (AF_PACKET without ring): checksum status, true length */
  char cmsg[MAX_BATCH][CMSG_SPACE(sizeof(struct tpacket_auxdata))];
};

/* AF_PACKET without a ring, with a vnet header: frames are received whole (up to RX_BIG) into these
 * buffers, then copied or segmented into the pool. A super-frame whose segments did not all fit
 * the batch stays here (cur) until the next recv. */
#define RX_STAGE 16
struct rx_stage {
  uint32_t count, cur;          /* frames held, next to deliver */
  uint32_t len[RX_STAGE];       /* bytes received (vnet header included) */
  uint32_t wire[RX_STAGE];      /* the frame's whole length (vnet header included) */
  uint8_t pkttype[RX_STAGE];
  uint8_t vlan[RX_STAGE]; /* the kernel's auxdata said TP_STATUS_VLAN_VALID */
  uint8_t buf[RX_STAGE][RX_BIG];
};

/* Sent in front of every frame on a vnet-header socket: no offload asked, a plain frame. */
static struct virtio_net_hdr vnet_plain;

static int set_int(int fd, int level, int opt, int v) {
  return setsockopt(fd, level, opt, &v, sizeof v) < 0 ? -errno : 0;
}

static int alloc_scratch(struct port *p) {
  p->scratch = calloc(1, sizeof(struct mmsg_scratch));
  return p->scratch ? 0 : -ENOMEM;
}

static int fail(struct port *p, int err) {
  port_close(p);
  return err;
}

static void set_bufs(int fd, const struct open_opts *o) {
  /* As root the FORCE variants bypass net.core.{r,w}mem_max; fall back to the plain ones. */
  if (o->rcvbuf > 0 && set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, o->rcvbuf) < 0)
    set_int(fd, SOL_SOCKET, SO_RCVBUF, o->rcvbuf);
  if (o->sndbuf > 0 && set_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, o->sndbuf) < 0)
    set_int(fd, SOL_SOCKET, SO_SNDBUF, o->sndbuf);
}

/*
 * TAP/TUN devices shared between the process's forwarding threads (`podway run --workers N`). A
 * pod's TAP/TUN device is single-queue: one thread opens it (and alone reads it, so a flow's frames
 * stay in order); the others transmit to it through a dup of that thread's fd. The dup is made
 * under this lock and the owner leaves the list under it before closing, so a listed fd is always
 * the device's file, never a reused number. The addon is loaded once per process: this list is
 * shared by every thread's instance.
 */
#define SHARED_TUNTAP_MAX 1024
static struct shared_tuntap {
  int fd; /* 0 = free slot (fd 0 is never a TAP/TUN fd of ours) */
  int tap;
  char netns[256];
  char name[IFNAMSIZ];
} shared_tt[SHARED_TUNTAP_MAX];
static pthread_mutex_t shared_tt_lock = PTHREAD_MUTEX_INITIALIZER;

static int shared_tt_match(const struct shared_tuntap *e, const char *netns, const char *name) {
  return e->fd > 0 && strcmp(e->name, name) == 0 && strcmp(e->netns, netns) == 0;
}

static int shared_tt_add(int fd, int tap, const char *netns, const char *name) {
  if (strlen(netns) >= sizeof shared_tt[0].netns) return -ENAMETOOLONG;
  pthread_mutex_lock(&shared_tt_lock);
  int free_slot = -1, err = -ENOSPC;
  for (int i = 0; i < SHARED_TUNTAP_MAX; i++) {
    if (shared_tt_match(&shared_tt[i], netns, name)) { free_slot = i; break; } /* the newest open wins */
    if (free_slot < 0 && shared_tt[i].fd == 0) free_slot = i;
  }
  if (free_slot >= 0) {
    struct shared_tuntap *e = &shared_tt[free_slot];
    e->fd = fd;
    e->tap = tap;
    strcpy(e->netns, netns);
    strcpy(e->name, name);
    err = 0;
  }
  pthread_mutex_unlock(&shared_tt_lock);
  return err;
}

static void shared_tt_remove(int fd) {
  pthread_mutex_lock(&shared_tt_lock);
  for (int i = 0; i < SHARED_TUNTAP_MAX; i++) if (shared_tt[i].fd == fd) memset(&shared_tt[i], 0, sizeof shared_tt[i]);
  pthread_mutex_unlock(&shared_tt_lock);
}

/* A dup of the fd the owning thread listed for (netns, name), or -ENOENT when none is listed (not
 * open there yet, or gone), -EPROTOTYPE when it is the other kind. */
static int shared_tt_dup(int tap, const char *netns, const char *name) {
  int fd = -ENOENT;
  pthread_mutex_lock(&shared_tt_lock);
  for (int i = 0; i < SHARED_TUNTAP_MAX; i++) {
    if (!shared_tt_match(&shared_tt[i], netns, name)) continue;
    if (shared_tt[i].tap != tap) fd = -EPROTOTYPE;
    else {
      fd = fcntl(shared_tt[i].fd, F_DUPFD_CLOEXEC, 3);
      if (fd < 0) fd = -errno;
    }
    break;
  }
  pthread_mutex_unlock(&shared_tt_lock);
  return fd;
}

/* The MTU socket of a TAP/TUN port (struct port ctlfd), made in the thread's network namespace now,
 * the device's: the caller opens the port from inside it. */
static int open_ctl(struct port *p) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  p->ctlfd = fd;
  p->has_ctlfd = 1;
  return 0;
}

int port_open_tuntap(struct port *p, const char *name, int tap, const struct open_opts *o) {
  memset(p, 0, sizeof *p);
  p->fd = -1;
  if (strlen(name) == 0 || strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
  p->kind = tap ? PORT_TAP : PORT_TUN;
  const char *netns = o->netns ? o->netns : "";
  int err;
  if (o->shared_tx) {
    int fd = shared_tt_dup(tap, netns, name);
    if (fd < 0) return fd;
    p->fd = fd;
    /* the device behind it still exists (a deleted one's file answers EBADFD) */
    struct ifreq chk;
    memset(&chk, 0, sizeof chk);
    if (ioctl(p->fd, TUNGETIFF, &chk) < 0) return fail(p, -errno);
    strncpy(p->name, name, sizeof p->name - 1);
    p->ifindex = (int)if_nametoindex(p->name);
    if ((err = open_ctl(p))) return fail(p, err);
    p->in_use = 1;
    return 0;
  }
  /* TUNSETIFF makes a device that does not exist: a pod's device is the CNI's to make, so a missing
   * one is reported (and retried by the caller), never replaced by an empty one of ours. */
  if (o->existing && if_nametoindex(name) == 0) return -ENODEV;
  p->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (p->fd < 0) return fail(p, -errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = (tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI | (o->multi_queue ? IFF_MULTI_QUEUE : 0);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(p->fd, TUNSETIFF, &ifr) < 0) return fail(p, -errno);
  if (o->persist && ioctl(p->fd, TUNSETPERSIST, 1) < 0) return fail(p, -errno);
  strncpy(p->name, ifr.ifr_name, sizeof p->name - 1);
  p->ifindex = (int)if_nametoindex(p->name);
  if ((err = open_ctl(p))) return fail(p, err);
  if (o->share) {
    err = shared_tt_add(p->fd, tap, netns, p->name);
    if (err) return fail(p, err);
    p->shared_owner = 1;
  }
  p->in_use = 1;
  return 0;
}

/* TPACKET_V3 blocks hold variable-size frames, up to a block (less its header): the default 256 KiB
 * blocks take a 64 KiB super-frame whole. tp_frame_size only sizes the kernel's bookkeeping. */
static int setup_ring_v3(struct port *p, const struct open_opts *o) {
  int err = set_int(p->fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3);
  if (err) return err;
  struct tpacket_req3 req;
  memset(&req, 0, sizeof req);
  req.tp_block_size = o->ring_block_size ? o->ring_block_size : (1u << 18);
  req.tp_block_nr = o->ring_blocks ? o->ring_blocks : 16;
  req.tp_frame_size = 2048;
  req.tp_frame_nr = (req.tp_block_size / req.tp_frame_size) * req.tp_block_nr;
  /* A block is handed to us when full or after this many ms: bounds the latency a quiet port adds. */
  req.tp_retire_blk_tov = 1;
  if (setsockopt(p->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) return -errno;
  p->ring_len = (size_t)req.tp_block_size * req.tp_block_nr;
  p->block_size = req.tp_block_size;
  p->block_nr = req.tp_block_nr;
  return 0;
}

static int setup_ring_v2(struct port *p, const struct open_opts *o) {
  int err = set_int(p->fd, SOL_PACKET, PACKET_VERSION, TPACKET_V2);
  if (err) return err;
  struct tpacket_req req;
  memset(&req, 0, sizeof req);
  /* 2048-byte frames hold a full 1514-byte Ethernet frame after the tpacket2 header. */
  req.tp_frame_size = 2048;
  req.tp_block_size = o->ring_block_size ? o->ring_block_size : (1u << 16);
  req.tp_block_nr = o->ring_blocks ? o->ring_blocks : 64;
  req.tp_frame_nr = (req.tp_block_size / req.tp_frame_size) * req.tp_block_nr;
  if (setsockopt(p->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) return -errno;
  p->ring_len = (size_t)req.tp_block_size * req.tp_block_nr;
  p->frame_size = req.tp_frame_size;
  p->frame_nr = req.tp_frame_nr;
  p->block_size = req.tp_block_size; /* (kept to set the same ring up again: port_ring_detach) */
  p->block_nr = req.tp_block_nr;
  return 0;
}

static int setup_ring(struct port *p, const struct open_opts *o) {
  p->ring_version = o->ring_version == 3 ? 3 : 2;
  int err = p->ring_version == 3 ? setup_ring_v3(p, o) : setup_ring_v2(p, o);
  if (err) return err;
  void *m = mmap(NULL, p->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, p->fd, 0);
  if (m == MAP_FAILED) m = mmap(NULL, p->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
  if (m == MAP_FAILED) return -errno;
  p->ring = m;
  return 0;
}

/* Everything of an AF_PACKET port that does not depend on its interface: the socket, its options and
 * its receive ring. Setting up the ring waits for an RCU grace period in the kernel
 * (packet_set_ring's synchronize_net: 8-15 ms on a busy 2-core machine), so this part can run ahead
 * of time on another thread (port_bind_packet finishes it). Touches nothing but *p. */
int port_prepare_packet(struct port *p, const struct open_opts *o) {
  memset(p, 0, sizeof *p);
  p->fd = -1;
  p->kind = PORT_PACKET;
  /* Protocol 0: nothing is queued before bind, so the filter and ring are in place first. */
  p->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd < 0) return fail(p, -errno);
  int err;
  if (o->ignore_outgoing && (err = set_int(p->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1))) return fail(p, err);
  if (o->qdisc_bypass && (err = set_int(p->fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1))) return fail(p, err);
  /* Before the ring: the kernel refuses PACKET_VNET_HDR once a ring exists. */
  if (o->vnet_hdr) {
    if ((err = set_int(p->fd, SOL_PACKET, PACKET_VNET_HDR, 1))) return fail(p, err);
    p->vnet_len = VNET_HDR_LEN;
    p->gro = o->gro;
    p->tx_gso = o->tx_gso ? TX_GSO_UDP | TX_GSO_TCP : 0;
    p->gso_min = o->gso_min;
  }
  if (o->bpf && o->bpf_len) {
    struct sock_fprog prog = { .len = (unsigned short)(o->bpf_len / sizeof(struct sock_filter)),
                               .filter = (struct sock_filter *)o->bpf };
    if (setsockopt(p->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) return fail(p, -errno);
  }
  struct open_opts bo = *o;
  /* A super-frame on the socket queue (no ring, or a V2 ring's copy of it) costs ~64 KiB of
   * receive buffer; the default (~208 KiB) would drop the third of a burst, and 4 MiB still cut
   * frames of 8 TCP streams from one pod while the thread sat in a long sendmmsg (native/README.md). */
  if (o->vnet_hdr && !bo.rcvbuf && (!o->ring || o->ring_version != 3)) bo.rcvbuf = 8 << 20;
  set_bufs(p->fd, &bo);
  if (o->ring) {
    if ((err = setup_ring(p, o))) return fail(p, err);
    if (p->vnet_len && p->ring_version == 2) {
      /* A V2 slot is 2 KiB: a bigger frame is cut in the ring and also queued whole on the socket
       * (TP_STATUS_COPY), from where recv_ring_v2 reads it. */
      if ((err = set_int(p->fd, SOL_PACKET, PACKET_COPY_THRESH, 1))) return fail(p, err);
      if (!(p->rx_big = malloc(RX_BIG))) return fail(p, -ENOMEM);
      p->copy_buf = p->rx_big;
      if (o->rx_super || o->rx_merge || o->rx_super_tcp) {
        /* a pod port's arena is smaller: one per pod, and 16 super-frames per recv is ~720 segments */
        p->arena_bufs = o->rx_super || o->rx_merge ? SUPER_BUFS : POD_SUPER_BUFS;
        if (!(p->arena = malloc((size_t)p->arena_bufs * RX_BIG))) return fail(p, -ENOMEM);
        p->rx_super = o->rx_super || o->rx_super_tcp;
        p->super_tunnel = o->rx_super;
        p->super_plain = o->rx_super_tcp;
        p->rx_merge = o->rx_merge;
        p->run_desc = -1;
      }
      p->scatter_rx = !o->no_scatter_rx;
    }
  } else if (p->vnet_len) {
    if (!(p->stage = malloc(sizeof *p->stage))) return fail(p, -ENOMEM);
    p->stage->count = p->stage->cur = 0;
    /* the VLAN tag the kernel took off a frame is only in the auxdata */
    if ((err = set_int(p->fd, SOL_PACKET, PACKET_AUXDATA, 1))) return fail(p, err);
  } else {
    if ((err = set_int(p->fd, SOL_PACKET, PACKET_AUXDATA, 1))) return fail(p, err);
    if ((err = alloc_scratch(p))) return fail(p, err);
  }
  /* Send path always uses sendmmsg from pool slots. */
  if (!p->scratch && (err = alloc_scratch(p))) return fail(p, err);
  if (o->tx_socket) {
    /* Protocol 0: the kernel registers no receive hook for it (nothing queued, no filter to run).
     * Sends get the same treatment as on the receiving socket: vnet header, qdisc bypass, sndbuf. */
    int t = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t < 0) return fail(p, -errno);
    p->txfd = t;
    p->has_txfd = 1;
    if (o->qdisc_bypass && (err = set_int(t, SOL_PACKET, PACKET_QDISC_BYPASS, 1))) return fail(p, err);
    if (o->vnet_hdr && (err = set_int(t, SOL_PACKET, PACKET_VNET_HDR, 1))) return fail(p, err);
    if (o->sndbuf > 0 && set_int(t, SOL_SOCKET, SO_SNDBUFFORCE, o->sndbuf) < 0) set_int(t, SOL_SOCKET, SO_SNDBUF, o->sndbuf);
  }
  return 0;
}

/* The device's MTU into p->mtu (0 when it cannot be read: then nothing is merged). */
static void read_mtu(struct port *p) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, p->name, sizeof ifr.ifr_name - 1);
  p->mtu = ioctl(p->fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0 ? (uint32_t)ifr.ifr_mtu : 0;
}

/* A member of a PACKET_FANOUT group reads every frame sent on the device by a socket outside the
 * group (the port's own transmit-only socket, tx_socket) as OUTGOING: PACKET_IGNORE_OUTGOING is per
 * socket and the group's shared hook does not look at it. So a fanout socket asked to ignore
 * outgoing frames gets a filter that drops them (pkttype 4) ahead of its own program, if any. Works
 * on every kernel; costs three instructions per received frame. */
static int attach_drop_outgoing(int fd, const struct open_opts *o) {
  size_t n = o->bpf && o->bpf_len ? o->bpf_len / sizeof(struct sock_filter) : 1;
  struct sock_filter *f = malloc((n + 3) * sizeof *f);
  if (!f) return -ENOMEM;
  f[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE));
  f[1] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 0, 1);
  f[2] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0);
  if (o->bpf && o->bpf_len) memcpy(f + 3, o->bpf, o->bpf_len);
  else f[3] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffffffffu);
  struct sock_fprog prog = { .len = (unsigned short)(n + 3), .filter = f };
  int err = setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0 ? -errno : 0;
  free(f);
  return err;
}

/* Bind a prepared AF_PACKET port to its interface (microseconds: the socket had no protocol hook). */
int port_bind_packet(struct port *p, const char *ifname, const struct open_opts *o) {
  int err;
  if (strlen(ifname) == 0 || strlen(ifname) >= IFNAMSIZ) return fail(p, -ENAMETOOLONG);
  p->ifindex = (int)if_nametoindex(ifname);
  if (!p->ifindex) return fail(p, -ENODEV);
  strncpy(p->name, ifname, sizeof p->name - 1);
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = p->ifindex;
  if (o->fanout_group > 0 && o->ignore_outgoing && (err = attach_drop_outgoing(p->fd, o))) return fail(p, err);
  if (bind(p->fd, (struct sockaddr *)&sll, sizeof sll) < 0) return fail(p, -errno);
  if (p->has_txfd) {
    sll.sll_protocol = 0;
    if (bind(p->txfd, (struct sockaddr *)&sll, sizeof sll) < 0) return fail(p, -errno);
  }
  if (p->tx_gso) read_mtu(p);
  if (o->fanout_group > 0) {
    int arg = ((o->fanout_group - 1) & 0xffff) | (PACKET_FANOUT_HASH << 16);
    /* The group's hook, not the member's, decides about sent frames: PACKET_IGNORE_OUTGOING is not
     * honoured there. The flag (Linux 4.20) makes the group skip them; every member of a group must
     * ask for the same flags, so an older kernel (or a group joined without it) gets EINVAL, and the
     * socket joins without it: the filter attached above drops them then. */
    if (o->ignore_outgoing) err = set_int(p->fd, SOL_PACKET, PACKET_FANOUT, arg | (PACKET_FANOUT_FLAG_IGNORE_OUTGOING << 16));
    if (!o->ignore_outgoing || err == -EINVAL) err = set_int(p->fd, SOL_PACKET, PACKET_FANOUT, arg);
    if (err) return fail(p, err);
  }
  p->in_use = 1;
  return 0;
}

int port_open_packet(struct port *p, const char *ifname, const struct open_opts *o) {
  /* A missing interface fails before the costly ring is set up. */
  if (strlen(ifname) == 0 || strlen(ifname) >= IFNAMSIZ) return -ENAMETOOLONG;
  if (!if_nametoindex(ifname)) return -ENODEV;
  int err = port_prepare_packet(p, o);
  return err ? err : port_bind_packet(p, ifname, o);
}

/* UDP over IPv6 (receive only: VXLAN datagrams the kernel reassembled from outer IPv6 fragments).
 * IPV6_FREEBIND: the node's address may still be tentative (DAD) or be added after the bind. */
static int open_udp6(struct port *p, const struct open_opts *o, uint16_t *bound_port) {
  p->fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd < 0) return fail(p, -errno);
  int err;
  if ((err = set_int(p->fd, IPPROTO_IPV6, IPV6_V6ONLY, 1))) return fail(p, err);
  if ((err = set_int(p->fd, IPPROTO_IPV6, IPV6_FREEBIND, 1))) return fail(p, err);
  if ((err = set_int(p->fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1))) return fail(p, err); /* the outer ECN field */
  if (o->reuseport && (err = set_int(p->fd, SOL_SOCKET, SO_REUSEPORT, 1))) return fail(p, err);
  set_bufs(p->fd, o);
  struct sockaddr_in6 sin6;
  memset(&sin6, 0, sizeof sin6);
  sin6.sin6_family = AF_INET6;
  memcpy(&sin6.sin6_addr, o->bind_addr6, 16);
  sin6.sin6_port = htons(o->bind_port);
  if (bind(p->fd, (struct sockaddr *)&sin6, sizeof sin6) < 0) return fail(p, -errno);
  socklen_t sl = sizeof sin6;
  if (getsockname(p->fd, (struct sockaddr *)&sin6, &sl) == 0) *bound_port = ntohs(sin6.sin6_port);
  if ((err = alloc_scratch(p))) return fail(p, err);
  p->udp6 = 1;
  p->in_use = 1;
  return 0;
}

int port_open_udp(struct port *p, const struct open_opts *o, uint16_t *bound_port) {
  memset(p, 0, sizeof *p);
  p->kind = PORT_UDP;
  if (o->udp6) return open_udp6(p, o, bound_port);
  p->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd < 0) return fail(p, -errno);
  int err;
  if (o->reuseport && (err = set_int(p->fd, SOL_SOCKET, SO_REUSEPORT, 1))) return fail(p, err);
  if ((err = set_int(p->fd, IPPROTO_IP, IP_RECVTOS, 1))) return fail(p, err); /* the outer ECN field */
  set_bufs(p->fd, o);
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(o->bind_addr);
  sin.sin_port = htons(o->bind_port);
  if (bind(p->fd, (struct sockaddr *)&sin, sizeof sin) < 0) return fail(p, -errno);
  socklen_t sl = sizeof sin;
  if (getsockname(p->fd, (struct sockaddr *)&sin, &sl) == 0) *bound_port = ntohs(sin.sin_port);
  if ((err = alloc_scratch(p))) return fail(p, err);
  p->in_use = 1;
  return 0;
}

/* A transmit-only socket takes nothing into its receive queue: a classic BPF filter that keeps
 * 0 bytes of every packet (checked before the queue, sk_filter). Returns 0 or -errno. */
static int drop_all_rx(int fd) {
  struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
  struct sock_fprog prog = { .len = 1, .filter = &drop };
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0 ? -errno : 0;
}

/* Transmit only: whole IPv6 packets handed to the node's own IPv6 routing (pod egress to node
 * addresses). IPPROTO_RAW implies the header is ours (IPV6_HDRINCL); each is sent to the
 * destination address in its own header (fill_msg). */
static int port_open_raw6(struct port *p, const struct open_opts *o) {
  p->kind = PORT_RAW;
  p->raw6 = 1;
  p->fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (p->fd < 0) return fail(p, -errno);
  /* Nothing is read from it, yet an IPPROTO_RAW socket does receive: every IPv6 packet for one of
   * the node's addresses whose next header is 255 is queued on it (the kernel delivers a raw
   * socket the packets of its protocol number). Filtered out before the queue. */
  int err;
  if ((err = drop_all_rx(p->fd))) return fail(p, err);
  set_bufs(p->fd, o);
  if ((err = alloc_scratch(p))) return fail(p, err);
  p->in_use = 1;
  return 0;
}

int port_open_raw(struct port *p, const struct open_opts *o) {
  memset(p, 0, sizeof *p);
  if (o->raw6) return port_open_raw6(p, o);
  p->kind = PORT_RAW;
  if (o->proto <= 0 || o->proto > 255) return -EPROTONOSUPPORT;
  p->fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, o->proto);
  if (p->fd < 0) return fail(p, -errno);
  int err;
  /* We write the whole IPv4 header ourselves (the outer header of IPIP, built in place). */
  if ((err = set_int(p->fd, IPPROTO_IP, IP_HDRINCL, 1))) return fail(p, err);
  /* IPPROTO_RAW is the transmit-only port (tx4): it would receive every IPv4 packet of protocol
   * 255 for the node, and nothing reads it. */
  if (o->proto == IPPROTO_RAW && (err = drop_all_rx(p->fd))) return fail(p, err);
  set_bufs(p->fd, o);
  if (o->bind_addr) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(o->bind_addr);
    if (bind(p->fd, (struct sockaddr *)&sin, sizeof sin) < 0) return fail(p, -errno);
  }
  if ((err = alloc_scratch(p))) return fail(p, err);
  p->in_use = 1;
  return 0;
}

/* A drop-everything classic BPF filter: the socket stops taking frames at once (the old filter, if
 * any, is freed after a grace period by call_rcu, so nothing here waits). Best effort. */
void port_stop_rx(struct port *p) {
  if (p->kind != PORT_PACKET || p->fd < 0) return;
  struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
  struct sock_fprog prog = { .len = 1, .filter = &drop };
  (void)setsockopt(p->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
}

void port_close(struct port *p) {
  if (p->ring) munmap(p->ring, p->ring_len);
  if (p->shared_owner && p->fd >= 0) shared_tt_remove(p->fd); /* before the number can be reused */
  p->shared_owner = 0;
  if (p->fd >= 0) close(p->fd);
  if (p->has_txfd) close(p->txfd);
  p->has_txfd = 0;
  if (p->has_ctlfd) close(p->ctlfd);
  p->has_ctlfd = 0;
  free(p->scratch);
  free(p->txq); /* frames still waiting go with the port */
  free(p->rejected);
  p->rejected = NULL;
  free(p->rx_big);
  free(p->stage);
  free(p->arena);
  p->arena = NULL;
  p->copy_buf = NULL;
  p->rx_big = NULL;
  p->stage = NULL;
  p->ring = NULL;
  p->scratch = NULL;
  p->txq = NULL;
  p->fd = -1;
  p->in_use = 0;
}

static inline uint8_t *desc_rx_ptr(struct pool *pl, uint32_t i) {
  pl->d_off[i] = (uint16_t)pl->headroom;
  return pl->base + (size_t)pl->d_slot[i] * pl->slot_size + pl->headroom;
}

static inline int desc_ok(struct pool *pl, uint32_t i) {
  return i < pl->ndesc && pl->d_slot[i] < pl->nslots;
}

/* TPACKET_V2: frames in fixed slots; each is ours while TP_STATUS_USER is set. The socket polls
 * readable as soon as one frame is ready, so a quiet port adds no batching delay.
 *
 * With a vnet header, a frame bigger than a slot (a super-frame) is cut in the ring but flagged
 * TP_STATUS_COPY: the kernel queued it whole on the socket too, in ring order, and it is read from
 * there. A frame is released only once delivered whole: when the batch fills in the middle of a
 * super-frame, it stays (with its copy in rx_big) for the next call. At most `max` ring frames are
 * looked at per call, so frames dropped in C cannot keep the loop going. */
static inline uint64_t now_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* When this thread's last recv that returned frames ended (CLOCK_MONOTONIC ns; 0 = sampled). */
static __thread uint64_t last_rx_done;

/* Ask for the next ring frame's bytes while this one is worked on. The kernel wrote them in the
 * sender's softirq, often on the other CPU, so the first pass over a frame (rx-merge's checksum,
 * the copy into the pool) stalls on every cache line: 78% of rx-merge's checksum samples sat on
 * its load with 8 TCP streams (bench/README.md). Only a frame already ours is touched (a kernel-owned
 * slot may be being written), and only its header and the bytes in the slot. */
static inline void ring_v2_prefetch_next(const struct port *p) {
  unsigned nx = p->frame_cur + 1 == p->frame_nr ? 0 : p->frame_cur + 1;
  const struct tpacket2_hdr *h = (const struct tpacket2_hdr *)(p->ring + (size_t)nx * p->frame_size);
  if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) return;
  uint32_t at = h->tp_mac, len = h->tp_snaplen;
  if (at < p->vnet_len || at >= p->frame_size || len > p->frame_size - at) return;
  const uint8_t *f = (const uint8_t *)h + at - p->vnet_len; /* from its vnet header on */
  len += p->vnet_len;
  for (uint32_t o = 0; o < len; o += 64) __builtin_prefetch(f + o);
}

static int recv_ring_v2(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t max) {
  uint32_t n = 0;
  if (p->arena) super_recv_begin(p);
  /* frames merged into a run (rx_merge) make no descriptor but count as seen: one call takes at most
   * `max` ring frames either way (draining thousands in one call left the ring to overflow while
   * they went out: bench/README.md, rx-merge) */
  for (uint32_t seen = 0; n < max && seen < max; seen++) {
    struct tpacket2_hdr *h = (struct tpacket2_hdr *)(p->ring + (size_t)p->frame_cur * p->frame_size);
    uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (!(st & TP_STATUS_USER)) break;
    if (seen == 0 && h->tp_sec) { /* the kernel stamps frames with CLOCK_REALTIME */
      uint64_t stamp = (uint64_t)h->tp_sec * 1000000000u + h->tp_nsec, t = now_ns(CLOCK_REALTIME);
      if (t > stamp && t - stamp < 1000000000u) {
        p->st.rx_wait_ns += t - stamp;
        p->st.rx_wait_samples++;
      }
    }
    /* 802.1Q/802.1ad-tagged: the kernel moved the tag into the skb's metadata (the frame here reads
     * untagged); podway forwards no VLAN (a Calico node's kernel drops it without a VLAN device):
     * dropped before any merge or copy, counted (rx_vlan_tagged). A whole copy queued on the socket
     * (TP_STATUS_COPY) is taken off it so the next copy is the next frame's. */
    if (__builtin_expect(st & TP_STATUS_VLAN_VALID, 0)) {
      p->st.rx_vlan_tagged++;
      p->run_desc = -1;
      if ((st & TP_STATUS_COPY) && p->rx_big && !p->copy_ready) recv(p->fd, NULL, 0, MSG_DONTWAIT | MSG_TRUNC);
      goto next_frame;
    }
    const uint8_t *frame = (uint8_t *)h + h->tp_mac;
    uint32_t len = h->tp_snaplen, wire = h->tp_len;
    if (seen + 1 < max) ring_v2_prefetch_next(p);
    const struct virtio_net_hdr *vh = p->vnet_len ? (const struct virtio_net_hdr *)(frame - p->vnet_len) : NULL;
    uint16_t flags = 0;
    if (!p->vnet_len && (st & TP_STATUS_CSUMNOTREADY)) flags |= DESC_F_CSUM_PARTIAL;
    const struct sockaddr_ll *sll = (const struct sockaddr_ll *)((uint8_t *)h + TPACKET_ALIGN(sizeof(struct tpacket2_hdr)));
    if (sll->sll_pkttype == PACKET_OUTGOING) flags |= DESC_F_OUTGOING;
    if (st & TP_STATUS_COPY) {
      p->run_desc = -1; /* a run is of consecutive frames: this one's segments come between */
      /* every arena buffer holds a super-frame handed on in this call: the next copy waits for the
       * next call (cutting it instead would cost ~45 descriptors for what the next call takes in one) */
      if (p->rx_super && !p->copy_ready && p->arena_used >= p->arena_bufs && n > 0) break;
      struct gso_plan g;
      uint32_t nscat = 0, niov = 0;
      /* scatter receive (gso.h); not on an rx_super port, whose tunnel super-frames may go on whole */
      if (p->rx_big && !p->copy_ready && p->scatter_rx && !p->rx_super && vh)
        niov = rx_scatter_layout(p, pl, first + n, max - n, frame, len, wire, vh, p->rx_big, RX_BIG,
                                 (struct iovec *)((struct mmsg_scratch *)p->scratch)->iov, &g, &nscat);
      if (niov) {
        struct msghdr m = { .msg_iov = ((struct mmsg_scratch *)p->scratch)->iov[0], .msg_iovlen = niov };
        ssize_t r = recvmsg(p->fd, &m, MSG_DONTWAIT | MSG_TRUNC);
        if (r >= 0) {
          int done;
          n += rx_scatter_finish(p, port_id, pl, first + n, nscat, &g, p->rx_big, (uint32_t)r, flags, &done);
          if (!done) { /* the rest of the payload is in rx_big: delivered from there next call */
            p->copy_buf = p->rx_big;
            p->copy_wire = p->copy_len = (uint32_t)r;
            p->copy_ready = 1;
            break;
          }
          goto next_frame;
        }
        /* no copy after all (cannot happen with TP_STATUS_COPY): the cut frame, as below */
      } else if (p->rx_big && !p->copy_ready) {
        p->copy_buf = super_copy_buf(p); /* rx_big, or an arena buffer that outlives this call */
        struct iovec iov = { p->copy_buf, RX_BIG };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t r = recvmsg(p->fd, &m, MSG_DONTWAIT | MSG_TRUNC); /* MSG_TRUNC: returns the whole length */
        if (r >= (ssize_t)p->vnet_len) {
          p->copy_wire = (uint32_t)r;
          p->copy_len = r > RX_BIG ? RX_BIG : (uint32_t)r;
          p->copy_ready = 1;
        }
      }
      if (p->copy_ready) {
        vh = (const struct virtio_net_hdr *)p->copy_buf;
        frame = p->copy_buf + p->vnet_len;
        len = p->copy_len - p->vnet_len;
        wire = p->copy_wire - p->vnet_len;
        /* an arena buffer not handed on yet: the frame may go on whole (rxsuper.h) */
        if (p->copy_buf != p->rx_big && p->copy_buf == super_copy_buf(p)) p->super_avail = p->copy_buf;
      }
      /* else: no copy (the socket's buffer was full): delivered cut, flagged, counted */
    }
    int done = 1;
    /* a datagram that continues the run of the frame before it: its payload joins that descriptor */
    if (p->rx_merge && p->run_desc >= 0 && !(st & TP_STATUS_COPY) && merge_append(p, pl, frame, len, wire, vh, flags)) {
      /* joined: no descriptor of its own */
    } else {
      p->run_desc = -1;
      uint32_t before = n;
      n += rx_deliver(p, port_id, pl, first + n, max - n, frame, len, wire, vh, flags, &done);
      p->super_avail = NULL;
      if (!done) break; /* the rest of this super-frame goes out with the next call */
      if (p->rx_merge && n == before + 1 && !(st & TP_STATUS_COPY)) merge_open(p, pl, first + before, vh);
    }
  next_frame:
    p->copy_ready = 0;
    __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    p->frame_cur = (p->frame_cur + 1) % p->frame_nr;
  }
  p->run_desc = -1; /* a run never spans two calls: JS has its descriptor now */
  p->st.rx_packets += n;
  return (int)n;
}

/* TPACKET_V3: walk user-owned blocks, copying frames into pool slots (one memcpy in C; the frame
 * then has headroom in front of it for in-place encapsulation, which the ring cannot offer). A
 * super-frame is whole in its block; when its segments do not all fit the batch, the position stays
 * on it and the block is kept until the next call. */
static int recv_ring_v3(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t max) {
  uint32_t n = 0;
  for (uint32_t seen = 0; n < max && seen < max;) {
    struct tpacket_block_desc *bd = (struct tpacket_block_desc *)(p->ring + (size_t)p->block_cur * p->block_size);
    if (p->pkt_left == 0) {
      if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
      p->pkt_left = bd->hdr.bh1.num_pkts;
      p->pkt_next = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
      if (p->pkt_left == 0) goto release;
    }
    {
      struct tpacket3_hdr *h = (struct tpacket3_hdr *)p->pkt_next;
      if (__builtin_expect(h->tp_status & TP_STATUS_VLAN_VALID, 0)) { /* dropped, as in recv_ring_v2 */
        p->st.rx_vlan_tagged++;
        seen++;
        p->pkt_left--;
        p->pkt_next = h->tp_next_offset ? (uint8_t *)h + h->tp_next_offset : NULL;
        if (p->pkt_left) continue;
        goto release;
      }
      const uint8_t *frame = (uint8_t *)h + h->tp_mac;
      const struct virtio_net_hdr *vh = p->vnet_len ? (const struct virtio_net_hdr *)(frame - p->vnet_len) : NULL;
      uint16_t flags = 0;
      if (!p->vnet_len && (h->tp_status & TP_STATUS_CSUMNOTREADY)) flags |= DESC_F_CSUM_PARTIAL;
      const struct sockaddr_ll *sll = (const struct sockaddr_ll *)((uint8_t *)h + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
      if (sll->sll_pkttype == PACKET_OUTGOING) flags |= DESC_F_OUTGOING;
      int done;
      n += rx_deliver(p, port_id, pl, first + n, max - n, frame, h->tp_snaplen, h->tp_len, vh, flags, &done);
      seen++;
      if (!done) break; /* keep this frame (and its block) for the next call */
      p->pkt_left--;
      p->pkt_next = h->tp_next_offset ? (uint8_t *)h + h->tp_next_offset : NULL;
      if (p->pkt_left) continue;
    }
  release:
    __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    p->block_cur = (p->block_cur + 1) % p->block_nr;
  }
  p->st.rx_packets += n;
  return (int)n;
}

/* AF_PACKET without a ring, with a vnet header: recvmmsg up to RX_STAGE whole frames into the
 * port's stage, then copy or segment them into the pool. A super-frame left half-delivered when the
 * batch filled stays staged for the next call. */

/* Message k of a recvmmsg batch: one iovec of `len` bytes at `buf`, room for the peer address. */
static struct msghdr *rx_msg(struct mmsg_scratch *s, uint32_t k, void *buf, size_t len) {
  s->iov[k][0].iov_base = buf;
  s->iov[k][0].iov_len = len;
  struct msghdr *m = &s->msgs[k].msg_hdr;
  memset(m, 0, sizeof *m);
  m->msg_iov = s->iov[k];
  m->msg_iovlen = 1;
  m->msg_name = &s->names[k];
  m->msg_namelen = sizeof s->names[k];
  return m;
}

/* Whether a received message's PACKET_AUXDATA says the kernel took an 802.1Q/802.1ad tag off it. */
static int aux_vlan(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
      struct tpacket_auxdata aux;
      memcpy(&aux, CMSG_DATA(c), sizeof aux);
      return (aux.tp_status & TP_STATUS_VLAN_VALID) != 0;
    }
  }
  return 0;
}

static int recv_staged(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t max) {
  struct rx_stage *sg = p->stage;
  struct mmsg_scratch *s = p->scratch;
  uint32_t n = 0, seen = 0;
  while (n < max && seen < max) {
    if (sg->cur == sg->count) {
      for (uint32_t k = 0; k < RX_STAGE; k++) {
        struct msghdr *m = rx_msg(s, k, sg->buf[k], RX_BIG);
        m->msg_control = s->cmsg[k];
        m->msg_controllen = sizeof s->cmsg[k];
      }
      int r = recvmmsg(p->fd, s->msgs, RX_STAGE, MSG_DONTWAIT | MSG_TRUNC, NULL);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || n) break;
        return -errno;
      }
      if (r == 0) break;
      for (int k = 0; k < r; k++) {
        uint32_t got = s->msgs[k].msg_len;
        sg->wire[k] = got;
        sg->len[k] = got > RX_BIG ? RX_BIG : got;
        sg->pkttype[k] = s->names[k].ll.sll_pkttype;
        sg->vlan[k] = aux_vlan(&s->msgs[k].msg_hdr);
      }
      sg->count = (uint32_t)r;
      sg->cur = 0;
    }
    uint32_t k = sg->cur;
    if (sg->vlan[k]) { /* 802.1Q-tagged: dropped, as in recv_ring_v2 */
      p->st.rx_vlan_tagged++;
      sg->cur++;
      seen++;
      continue;
    }
    if (sg->len[k] < p->vnet_len) { /* not expected (the kernel always writes the header): dropped, counted */
      p->st.rx_short++;
      sg->cur++;
      seen++;
      continue;
    }
    uint16_t flags = sg->pkttype[k] == PACKET_OUTGOING ? DESC_F_OUTGOING : 0;
    int done;
    n += rx_deliver(p, port_id, pl, first + n, max - n, sg->buf[k] + p->vnet_len, sg->len[k] - p->vnet_len,
                    sg->wire[k] - p->vnet_len, (const struct virtio_net_hdr *)sg->buf[k], flags, &done);
    seen++;
    if (!done) break;
    sg->cur++;
  }
  p->st.rx_packets += n;
  return (int)n;
}

/* The ECN field of a UDP datagram's IP header (IP_RECVTOS / IPV6_RECVTCLASS, set at open) as
 * descriptor flag bits: a VXLAN decapsulation needs the outer one (RFC 6040), which the socket
 * otherwise strips. */
static uint16_t udp_ecn_flags(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS && c->cmsg_len >= CMSG_LEN(1))
      return (uint16_t)((CMSG_DATA(c)[0] & 3) << DESC_F_ECN_SHIFT);
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int tc;
      memcpy(&tc, CMSG_DATA(c), sizeof tc);
      return (uint16_t)((tc & 3) << DESC_F_ECN_SHIFT);
    }
  }
  return 0;
}

static int recv_mmsg(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t max) {
  struct mmsg_scratch *s = p->scratch;
  uint32_t cap = pl->slot_size - pl->headroom;
  for (uint32_t k = 0; k < max; k++) {
    uint32_t i = first + k;
    struct msghdr *m = rx_msg(s, k, desc_rx_ptr(pl, i), cap);
    if (p->kind == PORT_PACKET || p->kind == PORT_UDP) {
      m->msg_control = s->cmsg[k];
      m->msg_controllen = sizeof s->cmsg[k];
    }
  }
  int r = recvmmsg(p->fd, s->msgs, max, MSG_DONTWAIT, NULL);
  if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
  uint32_t out = 0; /* descriptors kept: a dropped frame's slot goes to the end of the batch */
  for (int k = 0; k < r; k++) {
    uint32_t i = first + out;
    struct msghdr *m = &s->msgs[k].msg_hdr;
    uint32_t len = s->msgs[k].msg_len;
    uint16_t flags = 0;
    if (len > cap) len = cap;
    if (m->msg_flags & MSG_TRUNC) flags |= DESC_F_TRUNCATED;
    if (p->kind == PORT_UDP) flags |= udp_ecn_flags(m);
    if (p->kind == PORT_PACKET) {
      int vlan = 0;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
          struct tpacket_auxdata aux;
          memcpy(&aux, CMSG_DATA(c), sizeof aux);
          if (aux.tp_status & TP_STATUS_CSUMNOTREADY) flags |= DESC_F_CSUM_PARTIAL;
          if (aux.tp_snaplen < aux.tp_len) flags |= DESC_F_TRUNCATED;
          vlan = (aux.tp_status & TP_STATUS_VLAN_VALID) != 0;
        }
      }
      if (__builtin_expect(vlan, 0)) { /* 802.1Q-tagged: dropped, as in recv_ring_v2 */
        p->st.rx_vlan_tagged++;
        continue;
      }
      if (s->names[k].ll.sll_pkttype == PACKET_OUTGOING) flags |= DESC_F_OUTGOING;
      pl->d_addr[i] = 0;
      pl->d_aport[i] = 0;
    } else if (p->udp6) {
      /* The peer's 16-byte address goes into the 16 bytes of headroom before the datagram (the
       * descriptor's addr holds 32 bits): JS reads it at frame start - 16 (native/README.md). */
      memcpy(desc_rx_ptr(pl, i) - 16, &s->names[k].in6.sin6_addr, 16);
      pl->d_addr[i] = 0;
      pl->d_aport[i] = ntohs(s->names[k].in6.sin6_port);
    } else {
      pl->d_addr[i] = ntohl(s->names[k].in.sin_addr.s_addr);
      pl->d_aport[i] = ntohs(s->names[k].in.sin_port);
    }
    if (i != first + (uint32_t)k) { /* frames were dropped before it: its slot moves up to descriptor i */
      uint32_t j = first + (uint32_t)k, sl = pl->d_slot[i];
      pl->d_slot[i] = pl->d_slot[j];
      pl->d_slot[j] = sl;
    }
    pl->d_len[i] = (uint16_t)len;
    pl->d_port[i] = port_id;
    pl->d_flags[i] = flags;
    if (flags & DESC_F_TRUNCATED) p->st.rx_truncated++;
    p->st.rx_bytes += len;
    out++;
  }
  p->st.rx_packets += out;
  return (int)out;
}

/* TUN/TAP: one read per packet (the fd has no batch call without IFF_VNET_HDR).
 *
 * A packet longer than the slot: what the kernel does depends on its version. Checked on 6.18
 * (tun_put_user -> skb_copy_datagram_iter, which stops quietly when the buffer is full): read()
 * returns the bytes copied, i.e. exactly the buffer size, and the rest of the packet is discarded;
 * a 2028-byte packet read into 1000 bytes returns 1000. Some kernels instead return the whole packet
 * length (more than was copied), and old ones fail the read with EFAULT or EINVAL and drop the
 * packet. So a read of exactly the slot capacity cannot tell a packet that fitted from one that was
 * cut. We read with a second, one-byte iovec behind the slot: a packet that fits never reaches it,
 * so any result above the capacity means the packet was cut (flagged, counted, length clamped), and
 * an EFAULT/EINVAL is counted as truncated too and in rx_read_failed (that packet is gone, no
 * descriptor shows it: the engine counts it under the drop reason read_failed; the next read goes on). */
static int recv_fd_loop(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t max) {
  uint32_t n = 0;
  uint32_t cap = pl->slot_size - pl->headroom;
  uint8_t spill;
  uint32_t cut = 0; /* packets the kernel failed outright: bounded, so this loop always ends */
  while (n < max) {
    uint32_t i = first + n;
    struct iovec iov[2] = { { desc_rx_ptr(pl, i), cap }, { &spill, 1 } };
    ssize_t r = readv(p->fd, iov, 2);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      if ((errno == EFAULT || errno == EINVAL) && cut++ < max) { /* that packet is gone: counted */
        p->st.rx_truncated++;
        p->st.rx_read_failed++;
        continue;
      }
      if (n) break; /* report the error on the next call; deliver what we have */
      return -errno;
    }
    uint16_t flags = 0;
    uint32_t len = (uint32_t)r;
    if (len > cap) {
      len = cap;
      flags |= DESC_F_TRUNCATED;
      p->st.rx_truncated++;
    }
    pl->d_len[i] = (uint16_t)len;
    pl->d_port[i] = port_id;
    pl->d_flags[i] = flags;
    p->st.rx_bytes += len;
    n++;
  }
  p->st.rx_packets += n;
  return (int)n;
}

static int port_recv_kind(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t max);

int port_recv(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t max) {
  if (max > MAX_BATCH) max = MAX_BATCH;
  if (first > pl->ndesc || max > pl->ndesc - first) return -ERANGE;
  for (uint32_t k = 0; k < max; k++)
    if (!desc_ok(pl, first + k)) return -ERANGE;
  p->st.rx_calls++;
  int r = port_recv_kind(p, port_id, pl, first, max);
  if (r > 0) last_rx_done = now_ns(CLOCK_MONOTONIC);
  return r;
}

static int port_recv_kind(struct port *p, uint16_t port_id, struct pool *pl, uint32_t first, uint32_t max) {
  switch (p->kind) {
  case PORT_TAP:
  case PORT_TUN:
    return recv_fd_loop(p, port_id, pl, first, max);
  case PORT_PACKET:
    if (p->rearming) return 0; /* its ring is being set up again on another thread */
    if (p->stage) return recv_staged(p, port_id, pl, first, max);
    if (!p->ring) return recv_mmsg(p, port_id, pl, first, max);
    return p->ring_version == 3 ? recv_ring_v3(p, port_id, pl, first, max) : recv_ring_v2(p, port_id, pl, first, max);
  default:
    return recv_mmsg(p, port_id, pl, first, max);
  }
}

/* ---- transmit: send what the kernel takes now, queue the rest behind a backlog ----------------
 *
 * Sending never blocks: the caller is Node's event loop, which forwards for every port. When the
 * kernel refuses frames (EAGAIN/EWOULDBLOCK: the socket's send buffer is full; ENOBUFS: the qdisc or
 * device queue dropped it, so it was not delivered; sendmmsg returning 0), the frames not taken are
 * copied into the port's backlog and port_send returns at once. The addon watches the fd for
 * POLLOUT while a backlog exists and calls port_flush when it is writable. */

struct tx_backlog {
  uint32_t head, count; /* FIFO in a ring of `cap` entries */
  uint32_t cap;         /* TXQ_FRAMES at first, doubled as needed up to TXQ_MAX_FRAMES (txq_grow) */
  uint32_t frame_cap;   /* bytes an entry holds: the pool's slot size when the backlog formed */
  uint16_t *len;
  uint16_t *aport; /* UDP: peer port */
  uint32_t *addr;  /* UDP/raw: peer IPv4, host order */
  uint8_t *data;   /* cap * frame_cap */
};

static inline uint32_t txq_pos(const struct tx_backlog *q, uint32_t k) {
  return (q->head + k) % q->cap;
}

static inline uint8_t *txq_data(struct tx_backlog *q, uint32_t pos) {
  return q->data + (size_t)pos * q->frame_cap;
}

/* One allocation: the header, the three arrays, then the frames. */
static struct tx_backlog *txq_alloc(uint32_t cap, uint32_t frame_cap) {
  size_t meta = (sizeof(struct tx_backlog) + (size_t)cap * (2 + 2 + 4) + 63) & ~(size_t)63;
  struct tx_backlog *q = malloc(meta + (size_t)cap * frame_cap);
  if (!q) return NULL;
  q->head = q->count = 0;
  q->cap = cap;
  q->frame_cap = frame_cap;
  q->addr = (uint32_t *)(q + 1);
  q->len = (uint16_t *)(q->addr + cap);
  q->aport = q->len + cap;
  q->data = (uint8_t *)q + meta;
  return q;
}

/* A full backlog: make room for `want` more entries (doubling, at most TXQ_MAX_FRAMES in all),
 * its entries moved in order to the new ring. Returns 0 when it cannot grow (at the bound, or no
 * memory: the caller drops and counts). */
static int txq_grow(struct port *p, uint32_t want) {
  struct tx_backlog *q = p->txq;
  if (q->cap >= TXQ_MAX_FRAMES) return 0;
  uint32_t cap = q->cap;
  while (cap < TXQ_MAX_FRAMES && cap - q->count < want) cap *= 2;
  if (cap > TXQ_MAX_FRAMES) cap = TXQ_MAX_FRAMES;
  struct tx_backlog *n = txq_alloc(cap, q->frame_cap);
  if (!n) return 0;
  for (uint32_t k = 0; k < q->count; k++) {
    uint32_t pos = txq_pos(q, k);
    memcpy(txq_data(n, k), txq_data(q, pos), q->len[pos]);
    n->len[k] = q->len[pos];
    n->aport[k] = q->aport[pos];
    n->addr[k] = q->addr[pos];
  }
  n->count = q->count;
  free(q);
  p->txq = n;
  p->st.tx_backlog_grown++;
  return 1;
}

static int refused(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS;
}

/* Copy txlist[first .. first+count) behind the backlog. Returns frames queued; the ones that do not
 * fit (backlog full, or no memory for one) are counted in tx_dropped_full. */
static uint32_t txq_append(struct port *p, struct pool *pl, uint32_t first, uint32_t count, uint32_t skip) {
  struct tx_backlog *q = p->txq;
  if (!q) {
    q = txq_alloc(TXQ_FRAMES, pl->slot_size);
    if (!q) {
      p->st.tx_dropped_full += count;
      return 0;
    }
    p->txq = q;
    p->head_tries = 0;
  }
  uint32_t queued = 0;
  /* where the IP header of a frame for this port starts: TUN and raw ports take IP packets */
  uint32_t l3 = p->kind == PORT_TUN || p->kind == PORT_RAW ? 0 : 14;
  for (uint32_t k = 0; k < count; k++) {
    uint32_t i = pl->txlist[first + k];
    if (pl->d_flags[i] & DESC_F_SUPER) {
      /* a super-frame handed on whole (rxsuper.h): its segments, cut from JS's headers (and the
       * tunnel JS put around them); from segment `skip` on for the first frame, whose earlier
       * segments a send already took */
      uint8_t hdr[SUPER_HDR_MAX];
      struct gso_plan g;
      const struct super_ref *r = super_cut_plan_any(pl, i, l3, hdr, &g); /* once: the loop writes the backlog */
      if (r && g.hdrs + r->mss <= q->frame_cap) {
        p->st.tx_super_cut++;
        uint32_t s0 = k == 0 ? skip : 0;
        if (q->cap - q->count < r->nseg - s0 && txq_grow(p, r->nseg - s0)) q = p->txq;
        for (uint32_t s = s0; s < r->nseg; s++) {
          if (q->count == q->cap) {
            p->st.tx_dropped_full += r->nseg - s;
            break;
          }
          uint32_t pos = txq_pos(q, q->count);
          q->len[pos] = (uint16_t)gso_write_segment_from(hdr, r->payload, &g, s, txq_data(q, pos));
          q->addr[pos] = pl->d_addr[i];
          q->aport[pos] = pl->d_aport[i];
          q->count++;
          queued++;
        }
        continue;
      }
      p->st.tx_super_lost += pl->d_segs ? pl->d_segs[i] - 1u : 0;
    }
    /* (a frame longer than an entry can only come after setPool grew the slots mid-backlog) */
    if (q->count == q->cap && txq_grow(p, count - k)) q = p->txq;
    if (q->count == q->cap || pl->d_len[i] > q->frame_cap) {
      p->st.tx_dropped_full++;
      continue;
    }
    uint32_t pos = txq_pos(q, q->count);
    memcpy(txq_data(q, pos), pl->base + (size_t)pl->d_slot[i] * pl->slot_size + pl->d_off[i], pl->d_len[i]);
    q->len[pos] = pl->d_len[i];
    q->addr[pos] = pl->d_addr[i];
    q->aport[pos] = pl->d_aport[i];
    q->count++;
    queued++;
  }
  p->st.tx_queued += queued;
  if (q->count == 0) { /* nothing fitted a fresh backlog: do not keep an empty one */
    free(q);
    p->txq = NULL;
  }
  return queued;
}

static void txq_pop(struct port *p, uint32_t n) {
  struct tx_backlog *q = p->txq;
  q->head = txq_pos(q, n);
  q->count -= n;
  if (q->count == 0) {
    free(q);
    p->txq = NULL;
  }
}

uint32_t port_backlog(const struct port *p) {
  return p->txq ? p->txq->count : 0;
}

void port_drop_backlog(struct port *p, int err) {
  if (!p->txq) return;
  p->st.tx_errors += p->txq->count;
  p->st.tx_backlog_dropped += p->txq->count;
  p->last_errno = err;
  free(p->txq);
  p->txq = NULL;
}

/* A frame the kernel refused for itself, dropped: counted (tx_rejected, and `weight` frames for a
 * merged message) and a copy kept for capture (the first TXREJ_BYTES bytes; allocated once). */
static void note_rejected_n(struct port *p, const uint8_t *buf, uint32_t len, uint32_t orig, uint32_t weight) {
  p->st.tx_rejected += weight;
  struct tx_rejected_copies *c = p->rejected;
  if (!c && !(c = p->rejected = calloc(1, sizeof *c))) return;
  uint32_t k = c->next;
  if (len > TXREJ_BYTES) len = TXREJ_BYTES;
  memcpy(c->data[k], buf, len);
  c->len[k] = (uint16_t)len;
  c->orig[k] = (uint16_t)(orig > 0xffff ? 0xffff : orig);
  c->next = (k + 1) % TXREJ_KEEP;
  if (c->count < TXREJ_KEEP) c->count++;
}

static void note_rejected(struct port *p, const uint8_t *buf, uint32_t len, uint32_t orig) {
  note_rejected_n(p, buf, len, orig, 1);
}

/* The same for a message as sendmmsg had it: its iovecs gathered, the vnet header left out. */
static void note_rejected_msg(struct port *p, const struct msghdr *m, uint32_t weight) {
  uint8_t tmp[TXREJ_BYTES];
  uint32_t n = 0, total = 0, skip = p->vnet_len;
  for (size_t v = 0; v < m->msg_iovlen; v++) {
    const uint8_t *b = m->msg_iov[v].iov_base;
    uint32_t l = (uint32_t)m->msg_iov[v].iov_len;
    if (skip) {
      uint32_t s = skip < l ? skip : l;
      b += s;
      l -= s;
      skip -= s;
    }
    total += l;
    uint32_t c = l < TXREJ_BYTES - n ? l : TXREJ_BYTES - n;
    if (c) memcpy(tmp + n, b, c);
    n += c;
  }
  note_rejected_n(p, tmp, n, total, weight);
}

uint32_t port_take_rejected(struct port *p, uint8_t *dst, uint32_t max) {
  struct tx_rejected_copies *c = p->rejected;
  if (!c || !c->count) return 0;
  uint32_t at = 0;
  for (uint32_t j = 0; j < c->count; j++) {
    uint32_t k = (c->next + TXREJ_KEEP - c->count + j) % TXREJ_KEEP;
    uint32_t l = c->len[k];
    if (at + 4 + l > max) break;
    dst[at] = (uint8_t)c->orig[k];
    dst[at + 1] = (uint8_t)(c->orig[k] >> 8);
    dst[at + 2] = (uint8_t)l;
    dst[at + 3] = (uint8_t)(l >> 8);
    memcpy(dst + at + 4, c->data[k], l);
    at += 4 + l;
  }
  c->count = 0;
  return at;
}

/* One write to a TUN/TAP fd (no batch call exists for them). Returns 1 when the frame is dealt with
 * (written, or rejected on its own and counted in tx_errors), 0 when the kernel refused it. */
static int xmit_fd_one(struct port *p, const uint8_t *buf, uint32_t len) {
  for (;;) {
    ssize_t r = write(p->fd, buf, len);
    if (r >= 0) {
      p->st.tx_packets++;
      p->st.tx_bytes += (uint64_t)r;
      if (p->tx_toobig_len && len >= p->tx_toobig_len) p->tx_toobig_len = 0;
      return 1;
    }
    if (errno == EINTR) continue;
    if (refused(errno)) {
      p->refused_errno = errno;
      p->st.tx_retries++;
      return 0;
    }
    p->st.tx_errors++;
    p->last_errno = errno;
    if (errno == EMSGSIZE) p->st.tx_too_big++;
    note_rejected(p, buf, len, len);
    return 1;
  }
}

/* The kernel took msgs[0 .. n): one plain frame (not a GSO message, which a veth takes whatever
 * its peer's MTU) at least tx_toobig_len long means frames that long pass again (the peer's MTU
 * went up): forget the length. Looked at only while one is remembered. */
static void toobig_sent(struct port *p, const struct mmsghdr *msgs, uint32_t n, const uint32_t *weight) {
  for (uint32_t k = 0; k < n; k++) {
    if (weight && weight[k] != 1) continue;
    if (msgs[k].msg_len - p->vnet_len >= p->tx_toobig_len) {
      p->tx_toobig_len = 0;
      return;
    }
  }
}

/* sendmmsg msgs[0 .. count) in as few calls as the kernel allows. Returns how many are dealt with
 * (sent, or rejected on their own: EMSGSIZE, ENETUNREACH... counted in tx_errors); fewer than count
 * means the kernel refused msgs[returned] and everything after it. weight (NULL: 1 each) is the
 * frames each message carries. With `rejected`, a message of several frames that fails on its own
 * is not counted: the call stops there and *rejected says why (the caller sends those frames one by
 * one); *rejected stays 0 otherwise. */
static uint32_t xmit_mmsg(struct port *p, struct mmsghdr *msgs, uint32_t count, const uint32_t *weight, int *rejected) {
  uint32_t done = 0;
  while (done < count) {
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    int r = sendmmsg(port_txfd(p), msgs + done, count - done, MSG_DONTWAIT);
    p->st.tx_ns += now_ns(CLOCK_MONOTONIC) - t0;
    p->st.tx_syscalls++;
    if (r > 0) {
      for (int k = 0; k < r; k++) p->st.tx_bytes += msgs[done + k].msg_len - p->vnet_len;
      if (weight)
        for (int k = 0; k < r; k++) p->st.tx_packets += weight[done + k];
      else
        p->st.tx_packets += (uint32_t)r;
      if (p->tx_toobig_len) toobig_sent(p, msgs + done, (uint32_t)r, weight ? weight + done : NULL);
      done += (uint32_t)r;
      continue;
    }
    if (r == 0 || refused(errno)) { /* 0 taken and no error: the queue is full all the same */
      p->refused_errno = r == 0 ? EAGAIN : errno;
      p->st.tx_retries++;
      break;
    }
    if (errno == EINTR) continue;
    if (rejected && weight && weight[done] > 1) {
      *rejected = errno;
      break;
    }
    /* The message at `done` failed on its own: count it and go on with the next. */
    p->st.tx_errors += weight ? weight[done] : 1;
    p->last_errno = errno;
    if (errno == EMSGSIZE) p->st.tx_too_big += weight ? weight[done] : 1;
    note_rejected_msg(p, &msgs[done].msg_hdr, weight ? weight[done] : 1);
    done++;
  }
  return done;
}

static void fill_msg(struct port *p, struct mmsg_scratch *s, uint32_t k, void *buf, uint32_t len,
                     uint32_t addr, uint16_t aport) {
  struct iovec *iov = s->iov[k];
  struct msghdr *m = &s->msgs[k].msg_hdr;
  memset(m, 0, sizeof *m);
  m->msg_iov = iov;
  m->msg_iovlen = 1;
  if (p->vnet_len) { /* a vnet-header socket reads one in front of every frame it sends */
    iov->iov_base = &vnet_plain;
    iov->iov_len = p->vnet_len;
    iov++;
    m->msg_iovlen = 2;
  }
  iov->iov_base = buf;
  iov->iov_len = len;
  if (p->raw6) {
    /* the packet's own destination (bytes 24..39 of its header); a runt gets :: and fails alone */
    struct sockaddr_in6 *sin6 = &s->names[k].in6;
    memset(sin6, 0, sizeof *sin6);
    sin6->sin6_family = AF_INET6;
    if (len >= 40) memcpy(&sin6->sin6_addr, (const uint8_t *)buf + 24, 16);
    m->msg_name = sin6;
    m->msg_namelen = sizeof *sin6;
  } else if (p->kind == PORT_UDP || p->kind == PORT_RAW) {
    struct sockaddr_in *sin = &s->names[k].in;
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(addr);
    sin->sin_port = p->kind == PORT_UDP ? htons(aport) : 0;
    m->msg_name = sin;
    m->msg_namelen = sizeof *sin;
  }
}

/* Per-thread scratch for coalescing (one per worker thread; a send runs to completion on it). */
struct gro_scratch {
  const uint8_t *f[MAX_BATCH];
  uint32_t len[MAX_BATCH];
  uint32_t start[MAX_BATCH];  /* message m begins at frame start[m] */
  uint32_t frames[MAX_BATCH]; /* and carries that many frames */
  uint32_t weight[MAX_BATCH]; /* wire segments it carries (a super-frame stands for several) */
  uint8_t kind[MAX_BATCH];    /* 0: a frame as it is; TX_GSO_UDP or TX_GSO_TCP: merged */
  uint32_t seg0[MAX_BATCH];   /* a message of a super-frame cut on send: its first segment */
  struct virtio_net_hdr vh[MAX_BATCH];
  uint8_t hdr[MAX_BATCH][GRO_HDR_MAX > USO_HDR_MAX ? GRO_HDR_MAX : USO_HDR_MAX];
  struct iovec iov[MAX_BATCH * 2 + MAX_BATCH + SUPER_TX_SEGS * 2];
  /* per-segment headers of super-frames cut into UDP GSO messages (send_super_uso) */
  uint8_t seghdr[SUPER_TX_SEGS][SUPER_SEG_HDR];
};
static __thread struct gro_scratch *gro_tls;

/* A pod's super-frame JS encapsulated in VXLAN for another node (rxsuper.h), on a tx_gso port: its
 * segments go out as UDP GSO messages built here, as uso.c would have merged them had they come one
 * per descriptor: per message the outer headers with the lengths of the whole (IPv4 id = segment
 * 0's + the message's first segment, as the cut path numbers them), then per segment its VXLAN,
 * inner Ethernet, IP and TCP headers (written per segment into seghdr: ids + k, lengths, seq, the
 * super-frame's FIN/PSH on the last, the full TCP checksum) and its payload read in place from the
 * receive arena. A message holds at most USO_MAX_SEGS datagrams and 65,535 bytes of outer IPv4
 * total length (IPv6 payload length), every datagram the first one's size but a shorter last. The
 * last message of a super-frame stays open for the next descriptor: a super-frame of the same outer
 * flow right behind it (one TCP stream) continues it, as uso_span merged runs across super-frames
 * (without that, one stream's 45-segment super-frames went as 44 + 1 datagrams, two messages each).
 * A message of one datagram goes as a plain frame, its outer lengths and checksums written here. */
struct uso_open {
  int32_t m;         /* the open message, -1: none */
  uint32_t c, pay;   /* datagrams in it, UDP payload bytes */
  uint32_t dsize;    /* UDP payload of each datagram but a shorter last (gso_size) */
  uint32_t ol4;      /* outer UDP header offset */
  uint8_t v6, full;  /* outer IPv6; every datagram so far dsize bytes (another may follow) */
};

/* Outer headers a and b (Ethernet, IP, UDP) of one outer flow, but for lengths, IPv4 id, checksums. */
static int uso_same_outer(const uint8_t *a, const uint8_t *b, uint32_t ol4, int v6) {
  if (memcmp(a, b, 14)) return 0;
  const uint8_t *x = a + 14, *y = b + 14;
  if (v6) {
    if (memcmp(x, y, 4) || memcmp(x + 6, y + 6, 34)) return 0;
  } else if (memcmp(x, y, 2) || memcmp(x + 6, y + 6, 4) || memcmp(x + 12, y + 12, 8)) {
    return 0;
  }
  return memcmp(a + ol4, b + ol4, 4) == 0;
}

/* Close the open message: its outer lengths and vnet header (GSO for 2+ datagrams). */
static void uso_close(struct port *p, struct gro_scratch *g, struct mmsg_scratch *s, struct uso_open *o) {
  if (o->m < 0) return;
  uint32_t m = (uint32_t)o->m;
  uint8_t *oh = g->hdr[m], *ip = oh + 14, *uh = oh + o->ol4;
  ip_set_l4len(ip, o->v6 ? 40 : 20, o->v6, 8 + o->pay);
  wr16(uh + 4, (uint16_t)(8 + o->pay));
  uh[6] = uh[7] = 0;
  struct msghdr *mh = &s->msgs[m].msg_hdr;
  if (o->c > 1) {
    uint16_t pc = csum_fold(pseudo_sum(ip, o->v6, 17, 8 + o->pay)); /* as uso_write_header */
    memcpy(uh + 6, &pc, 2);
    vnet_hdr_partial(&g->vh[m], VIRTIO_NET_HDR_GSO_UDP_L4, o->ol4 + 8, o->dsize, o->ol4, 6);
    mh->msg_iov[0].iov_base = &g->vh[m];
    g->kind[m] = TX_GSO_UDP;
  } else {
    if (o->v6) { /* over IPv4 a VXLAN datagram goes without a UDP checksum, as podway sends it */
      const struct iovec *v = mh->msg_iov;
      uint64_t sum = csum_add(v[3].iov_base, (uint32_t)v[3].iov_len, csum_add(v[2].iov_base, (uint32_t)v[2].iov_len, 0));
      uint16_t cs = (uint16_t)~csum_fold(csum_add(uh, 8, sum + pseudo_sum(ip, 1, 17, 8 + o->pay)));
      if (cs == 0) cs = 0xffff;
      memcpy(uh + 6, &cs, 2);
    }
    mh->msg_iov[0].iov_base = &vnet_plain;
    g->kind[m] = 0;
  }
  g->weight[m] = o->c;
  (void)p;
  o->m = -1;
}

/* Returns the messages opened for descriptor i (0 when it only continued the open one), with
 * g->iov[*niov], g->seghdr[*nseg] and message *nm on updated; 0 also when it does not qualify (not
 * VXLAN, a datagram over the MTU: *took stays 0), -1 when the scratch has no room for it (send what
 * is built, then come back). */
static int send_super_uso(struct port *p, struct pool *pl, uint32_t i, struct gro_scratch *g, struct mmsg_scratch *s,
                          uint32_t *nm, uint32_t *niov, uint32_t *nseg, uint32_t k, struct uso_open *o, int *took) {
  *took = 0;
  struct super_encap e;
  const struct super_ref *r = super_check_encap(pl, i, 14, &e);
  if (!r || !e.ol4) return 0;
  uint8_t th[SUPER_HDR_MAX];
  struct gso_plan sp;
  super_cut_plan(pl, i, r, e.l3, th, &sp); /* inner headers only: ol3 stays 0, the outer ones are built here */
  uint32_t u0 = e.ol4 + 8;            /* the UDP payload (VXLAN header) starts here */
  uint32_t per = sp.hdrs - u0;        /* per datagram: VXLAN + inner Ethernet + IP + TCP headers */
  uint32_t fixed = e.ov6 ? 8 : 28;    /* outer IPv4 total length / IPv6 payload length beyond the UDP payloads */
  if ((e.ov6 ? 48 : 28) + per + r->mss > p->mtu) return 0; /* each datagram as it would go alone */
  if (r->nseg > SUPER_TX_SEGS - *nseg || *niov + 4 * r->nseg > sizeof g->iov / sizeof g->iov[0] ||
      *nm + r->nseg > MAX_BATCH)
    return *nm ? -1 : 0; /* (with nothing built yet it never fits: cut) */
  *took = 1;
  /* the open message continues with this super-frame when it is of the same outer flow and size */
  if (o->m >= 0 && !(o->full && o->v6 == e.ov6 && o->ol4 == e.ol4 && o->dsize == per + r->mss &&
                     uso_same_outer(g->hdr[o->m], th, e.ol4, e.ov6)))
    uso_close(p, g, s, o);
  int opened = 0;
  for (uint32_t sk = 0; sk < r->nseg; sk++) {
    uint32_t sl = gso_seg_len(&sp, sk), d = per + sl;
    if (o->m >= 0 && (!o->full || o->c >= USO_MAX_SEGS || fixed + o->pay + d > 0xffff)) uso_close(p, g, s, o);
    if (o->m < 0) { /* a new message: the outer headers of this super-frame, id of this segment */
      uint32_t m = (*nm)++;
      struct msghdr *mh = &s->msgs[m].msg_hdr;
      memset(mh, 0, sizeof *mh);
      mh->msg_iov = &g->iov[*niov];
      uint8_t *oh = g->hdr[m];
      memcpy(oh, th, u0);
      if (!e.ov6) wr16(oh + 14 + 4, (uint16_t)(rd16(th + 14 + 4) + sk));
      g->iov[(*niov)++] = (struct iovec){ &vnet_plain, p->vnet_len }; /* (uso_close picks the header) */
      g->iov[(*niov)++] = (struct iovec){ oh, u0 };
      g->start[m] = k;
      g->frames[m] = 1;
      g->seg0[m] = sk;
      *o = (struct uso_open){ .m = (int32_t)m, .c = 0, .pay = 0, .dsize = per + r->mss, .ol4 = e.ol4, .v6 = e.ov6, .full = 1 };
      opened++;
    }
    const uint8_t *pp = r->payload + (size_t)sk * r->mss;
    uint8_t *sh = g->seghdr[(*nseg)++];
    gso_write_headers_pay(th, &sp, sk, sh, pp);
    g->iov[(*niov)++] = (struct iovec){ sh + u0, per };
    g->iov[(*niov)++] = (struct iovec){ (void *)pp, sl };
    struct msghdr *mh = &s->msgs[o->m].msg_hdr;
    mh->msg_iovlen = (size_t)(&g->iov[*niov] - mh->msg_iov);
    o->c++;
    o->pay += d;
    if (d != o->dsize) o->full = 0; /* a shorter datagram ends the message */
  }
  p->st.tx_super_uso++;
  return opened;
}

/* Send straight from the pool, one message per frame. Returns the index of the first frame the
 * kernel refused (count when none was). */
static uint32_t send_plain(struct port *p, struct pool *pl, uint32_t first, uint32_t count) {
  struct mmsg_scratch *s = p->scratch;
  for (uint32_t k = 0; k < count; k++) {
    uint32_t i = pl->txlist[first + k];
    fill_msg(p, s, k, pl->base + (size_t)pl->d_slot[i] * pl->slot_size + pl->d_off[i], pl->d_len[i],
             pl->d_addr[i], pl->d_aport[i]);
  }
  return xmit_mmsg(p, s->msgs, count, NULL, NULL);
}

/* How often (send calls) a tx_gso port re-reads its device's MTU. */
#define MTU_REREAD_CALLS 4096

/* Send with runs merged: on a pod port (gro), one TCP flow's segments as a GRO super-frame; on an
 * underlay port (tx_gso), one outer flow's VXLAN datagrams as a UDP GSO message (uso.h) and one
 * TCP flow's segments as a TCP GSO one. One message per run, its headers rewritten in the scratch,
 * the payloads read in place from the pool. Returns the index of the first frame the kernel
 * refused (count when none was); frames from there on go to the backlog unmerged, in order. When
 * the kernel rejects a merged message on its own, its frames and the rest of the batch are sent
 * one by one (after EINVAL, the kernel does not take that GSO type: the port stops merging it). */
static uint32_t send_coalesced(struct port *p, struct pool *pl, uint32_t first, uint32_t count, int has_super,
                               int *again, uint32_t *skip) {
  struct gro_scratch *g = gro_tls ? gro_tls : (gro_tls = malloc(sizeof *gro_tls));
  struct mmsg_scratch *s = p->scratch;
  *again = 0;
  *skip = 0;
  if (!g) return UINT32_MAX;
  if (p->tx_gso && p->st.tx_calls % MTU_REREAD_CALLS == 0) read_mtu(p);
  for (uint32_t k = 0; k < count; k++) {
    uint32_t i = pl->txlist[first + k];
    g->f[k] = pl->base + (size_t)pl->d_slot[i] * pl->slot_size + pl->d_off[i];
    g->len[k] = pl->d_len[i];
  }
  uint32_t nm = 0, niov = 0, nseg = 0, built = count;
  struct uso_open uo = { .m = -1 };
  for (uint32_t k = 0; k < count;) {
    /* every message array holds MAX_BATCH (and sendmmsg takes no more): a super-frame may open two
     * messages for one descriptor (send_super_uso), so frames can outnumber the room left. Send what
     * is built; the caller comes back for frame k (the open message is closed below). */
    if (nm >= MAX_BATCH) {
      built = k;
      *again = 1;
      break;
    }
    if (uo.m >= 0 && !(pl->d_flags[pl->txlist[first + k]] & DESC_F_SUPER)) uso_close(p, g, s, &uo);
    uint32_t c = 1;
    struct msghdr *mh = &s->msgs[nm].msg_hdr;
    memset(mh, 0, sizeof *mh);
    mh->msg_iov = &g->iov[niov];
    g->kind[nm] = 0;
    g->weight[nm] = 1;
    g->seg0[nm] = 0;
    /* frames from k a run may take: a super-frame (rxsuper.h) is a message of its own */
    uint32_t lim = count - k;
    if (has_super) {
      uint32_t i = pl->txlist[first + k];
      if (pl->d_flags[i] & DESC_F_SUPER) {
        if (!p->gro && (p->tx_gso & TX_GSO_UDP)) { /* the underlay: a pod's super-frame in VXLAN */
          int took, b = send_super_uso(p, pl, i, g, s, &nm, &niov, &nseg, k, &uo, &took);
          if (b < 0) { /* no room left in this call's scratch: send what is built, come back for it */
            built = k;
            *again = 1;
            break;
          }
          if (took) {
            k++;
            continue;
          }
        }
        uso_close(p, g, s, &uo);
        const struct super_ref *r = p->gro || (p->tx_gso & TX_GSO_TCP) ? super_check(pl, i, 14) : NULL;
        /* underlay, direct routing: one TCP GSO message when every segment is within the MTU */
        if (r && !p->gro && r->ihdrs + r->mss > p->mtu) r = NULL;
        if (!r && !p->gro) {
          uint8_t th[SUPER_HDR_MAX];
          struct gso_plan tg;
          if (super_cut_plan_any(pl, i, 14, th, &tg)) { /* live, but no message of its own (IPIP, MTU): cut */
            built = k;
            break;
          } /* else not live: sent as it is below (tx_super_lost) */
        }
        if (r) {
          uint32_t hl = super_header(pl, i, r, 14, g->hdr[nm], &g->vh[nm]);
          g->iov[niov++] = (struct iovec){ &g->vh[nm], p->vnet_len };
          g->iov[niov++] = (struct iovec){ g->hdr[nm], hl };
          g->iov[niov++] = (struct iovec){ (void *)r->payload, r->payload_len };
          g->kind[nm] = TX_SUPER;
          g->weight[nm] = r->nseg;
        } else {
          p->st.tx_super_lost += pl->d_segs[i] - 1u;
          g->iov[niov++] = (struct iovec){ &vnet_plain, p->vnet_len };
          g->iov[niov++] = (struct iovec){ (void *)g->f[k], g->len[k] };
        }
        mh->msg_iovlen = (size_t)(&g->iov[niov] - mh->msg_iov);
        g->start[nm] = k;
        g->frames[nm] = 1;
        nm++;
        k++;
        continue;
      }
      for (lim = 1; lim < count - k && !(pl->d_flags[pl->txlist[first + k + lim]] & DESC_F_SUPER); lim++) {}
    }
    if (p->tx_gso & TX_GSO_UDP) {
      struct uso_merge u;
      c = uso_span(g->f + k, g->len + k, lim, p->mtu, pl->vxlan_port, &u);
      if (c > 1) {
        uso_write_header(g->f[k], &u, g->hdr[nm], &g->vh[nm]);
        g->iov[niov++] = (struct iovec){ &g->vh[nm], p->vnet_len };
        g->iov[niov++] = (struct iovec){ g->hdr[nm], u.l4 + 8 };
        for (uint32_t j = 0; j < c; j++) {
          uint32_t plen, at = uso_payload(g->f[k + j], &u, &plen);
          g->iov[niov++] = (struct iovec){ (void *)(g->f[k + j] + at), plen };
        }
        g->kind[nm] = TX_GSO_UDP;
      }
    }
    if (c == 1 && (p->gro || (p->tx_gso & TX_GSO_TCP))) {
      struct gro_merge m;
      c = gro_span(g->f + k, g->len + k, lim, &m);
      /* underlay: every segment within the device MTU, as it would have had to be alone */
      if (c > 1 && !p->gro && m.hdrs - 14 + m.mss > p->mtu) c = 1;
      if (c > 1) {
        gro_write_header(g->f[k], &m, g->hdr[nm], &g->vh[nm]);
        g->iov[niov++] = (struct iovec){ &g->vh[nm], p->vnet_len };
        g->iov[niov++] = (struct iovec){ g->hdr[nm], m.hdrs };
        for (uint32_t j = 0; j < c; j++) {
          uint32_t plen, at = gro_payload(g->f[k + j], &m, &plen);
          g->iov[niov++] = (struct iovec){ (void *)(g->f[k + j] + at), plen };
        }
        g->kind[nm] = TX_GSO_TCP;
      }
    }
    if (c == 1) {
      g->iov[niov++] = (struct iovec){ &vnet_plain, p->vnet_len };
      g->iov[niov++] = (struct iovec){ (void *)g->f[k], g->len[k] };
    }
    mh->msg_iovlen = (size_t)(&g->iov[niov] - mh->msg_iov);
    g->start[nm] = k;
    g->frames[nm] = c;
    if (c > 1) g->weight[nm] = c;
    nm++;
    k += c;
  }
  uso_close(p, g, s, &uo);
  int rejected = 0;
  uint32_t done = nm ? xmit_mmsg(p, s->msgs, nm, g->weight, &rejected) : 0;
  for (uint32_t m = 0; m < done; m++) {
    if (!g->kind[m]) continue;
    if (g->kind[m] == TX_SUPER) {
      p->st.tx_super_frames++;
      if (p->gro) {
        p->st.tx_gro_frames++;
        p->st.tx_gro_segments += g->weight[m];
      } else {
        p->st.tx_gso_frames++;
        p->st.tx_gso_segments += g->weight[m];
      }
    } else if (g->kind[m] == TX_GSO_TCP && p->gro) {
      p->st.tx_gro_frames++;
      p->st.tx_gro_segments += g->frames[m];
    } else {
      p->st.tx_gso_frames++;
      p->st.tx_gso_segments += g->weight[m]; /* (a run's frames, or a super-frame's datagrams) */
    }
  }
  if (done < nm) {
    *again = 0;
    *skip = g->seg0[done]; /* a super-frame whose first messages went: the backlog cuts the rest */
  }
  if (done < nm && rejected) {
    p->st.tx_gso_rejected++;
    p->last_errno = rejected;
    if (rejected == EINVAL) {
      if ((g->kind[done] == TX_GSO_TCP || g->kind[done] == TX_SUPER) && p->gro) p->gro = 0;
      else if (g->kind[done] == TX_SUPER) p->tx_gso &= ~TX_GSO_TCP;
      else p->tx_gso &= ~g->kind[done];
    }
    uint32_t at = g->start[done];
    /* super-frames among the rest are cut into the backlog by the caller (txq_append) */
    if (has_super) return at;
    return at + send_plain(p, pl, first + at, count - at);
  }
  return done < nm ? g->start[done] : built;
}

/* Send straight from the pool. Returns the index of the first frame the kernel refused (count when
 * none was). */
static uint32_t send_direct(struct port *p, struct pool *pl, uint32_t first, uint32_t count, int has_super,
                            uint32_t *skip) {
  *skip = 0;
  if (p->kind == PORT_TAP || p->kind == PORT_TUN) {
    for (uint32_t k = 0; k < count; k++) {
      uint32_t i = pl->txlist[first + k];
      if (!xmit_fd_one(p, pl->base + (size_t)pl->d_slot[i] * pl->slot_size + pl->d_off[i], pl->d_len[i])) return k;
    }
    return count;
  }
  if ((p->gro || p->tx_gso) && (count > 1 || has_super)) {
    uint32_t k = 0;
    for (;;) {
      int again;
      uint32_t r = send_coalesced(p, pl, first + k, count - k, has_super, &again, skip);
      if (r == UINT32_MAX) {
        if (has_super) return k; /* no scratch: the rest to the backlog, super-frames cut there */
        break;
      }
      k += r;
      if (!again || r == 0 || k >= count) return k;
    }
    return k + send_plain(p, pl, first + k, count - k);
  }
  return send_plain(p, pl, first, count);
}

/* After a flush that left frames in the backlog: the kernel refused its head frame. EAGAIN (full
 * socket buffer) waits for room as long as it takes. ENOBUFS means the device dropped that very
 * frame: a full queue, which drains (a later try takes it), or a frame it drops every time (a veth
 * whose peer's MTU is smaller than the frame: veth_xmit drops it, NET_XMIT_DROP). Retried forever,
 * that one frame would stop every frame behind it; so after TX_HEAD_TRIES flushes and TX_HEAD_MS
 * it is dropped and counted (tx_rejected, tx_head_dropped, tx_errors), as a router drops what its
 * device refuses and sends the next. Its length is remembered (the shortest so dropped): a later
 * head frame at least that long refused with ENOBUFS is dropped at its first refusal, so a stream
 * of such frames does not hold the port ~255 ms each (the retries run 1, 2, 4 .. 64 ms) while
 * everything behind waits and overflows; a frame that long taken by the kernel forgets it
 * (toobig_sent). Returns the frames taken off (0 or 1). */
static uint32_t head_refused(struct port *p, uint32_t moved) {
  struct tx_backlog *q = p->txq;
  if (!q) return 0;
  if (p->refused_errno != ENOBUFS) {
    p->head_tries = 0;
    return 0;
  }
  uint32_t pos = txq_pos(q, 0);
  uint32_t len = q->len[pos];
  if (moved || p->head_tries == 0) { /* a new head: its first refusal */
    if (!p->tx_toobig_len || len < p->tx_toobig_len) {
      p->head_tries = 1;
      p->head_t0 = now_ns(CLOCK_MONOTONIC);
      return 0;
    }
  } else if (++p->head_tries < TX_HEAD_TRIES || now_ns(CLOCK_MONOTONIC) - p->head_t0 < (uint64_t)TX_HEAD_MS * 1000000u) {
    return 0;
  }
  if (!p->tx_toobig_len || len < p->tx_toobig_len) p->tx_toobig_len = len;
  const uint8_t *f = txq_data(q, pos);
  note_rejected(p, f, len, len);
  p->st.tx_head_dropped++;
  p->st.tx_errors++;
  p->last_errno = ENOBUFS;
  p->head_tries = 0;
  txq_pop(p, 1);
  return 1;
}

uint32_t port_flush(struct port *p) {
  struct tx_backlog *q = p->txq;
  if (!q) return 0;
  uint32_t n = q->count, done = 0;
  if (p->kind == PORT_TAP || p->kind == PORT_TUN) {
    while (done < n && xmit_fd_one(p, txq_data(q, txq_pos(q, done)), q->len[txq_pos(q, done)])) done++;
  } else {
    /* a grown backlog holds more than one sendmmsg's scratch: MAX_BATCH at a time while the
     * kernel takes them all */
    struct mmsg_scratch *s = p->scratch;
    while (done < n) {
      uint32_t c = n - done < MAX_BATCH ? n - done : MAX_BATCH;
      for (uint32_t k = 0; k < c; k++) {
        uint32_t pos = txq_pos(q, done + k);
        fill_msg(p, s, k, txq_data(q, pos), q->len[pos], q->addr[pos], q->aport[pos]);
      }
      uint32_t took = xmit_mmsg(p, s->msgs, c, NULL, NULL);
      done += took;
      if (took < c) break;
    }
  }
  if (done) txq_pop(p, done);
  return done + head_refused(p, done);
}

int port_send(struct port *p, struct pool *pl, uint32_t first, uint32_t count) {
  if (count > MAX_BATCH) return -E2BIG;
  if (first > pl->ntxlist || count > pl->ntxlist - first) return -ERANGE;
  int has_super = 0;
  for (uint32_t k = 0; k < count; k++) {
    uint32_t i = pl->txlist[first + k];
    if (!desc_ok(pl, i)) return -ERANGE;
    if ((uint32_t)pl->d_off[i] + pl->d_len[i] > pl->slot_size) return -ERANGE;
    has_super |= pl->d_flags[i] & DESC_F_SUPER;
  }
  if (has_super && !pl->d_super) has_super = 0; /* (no pool that could have made one) */
  if (count == 0) return 0;
  p->st.tx_calls++;
  if (last_rx_done) {
    p->st.js_ns += now_ns(CLOCK_MONOTONIC) - last_rx_done;
    p->st.js_samples++;
    last_rx_done = 0;
  }
  uint64_t sent_before = p->st.tx_packets;
  /* Behind an existing backlog nothing is sent ahead of it: frames would be reordered. A
   * super-frame (rxsuper.h) goes whole only to a pod port with gro; for any other port it is cut
   * into segments in the backlog, sent from there at once. */
  int cut = has_super && !((p->gro || p->tx_gso) && p->vnet_len && p->kind == PORT_PACKET);
  uint32_t skip = 0;
  uint32_t k = p->txq || cut ? 0 : send_direct(p, pl, first, count, has_super, &skip);
  uint64_t sent = p->st.tx_packets - sent_before;
  uint32_t queued = k < count ? txq_append(p, pl, first + k, count - k, skip) : 0;
  if (queued && has_super) port_flush(p);
  return (int)(sent + queued);
}

int port_kernel_drops(struct port *p, uint64_t *drops) {
  if (p->kind != PORT_PACKET) return 0;
  /* Reading PACKET_STATISTICS resets the kernel's counters, so accumulate. */
  struct tpacket_stats_v3 st3;
  socklen_t sl = sizeof st3;
  memset(&st3, 0, sizeof st3);
  if (getsockopt(p->fd, SOL_PACKET, PACKET_STATISTICS, &st3, &sl) < 0) return -errno;
  p->st.rx_kernel_drops += st3.tp_drops;
  *drops = p->st.rx_kernel_drops;
  return 0;
}

/* A TPACKET_V2 ring the kernel wedged (6.18, native/README.md): tpacket_rcv set the head slot's
 * rx_owner_map bit, failed to build the vnet header and left without clearing it or moving the
 * head, so every later frame finds the bit set and is dropped. Nothing we can write to the ring
 * clears it; only a new ring does (packet_set_ring allocates a zeroed map and restarts at slot 0). */
int port_ring_wedged(struct port *p, unsigned checks) {
  if (p->kind != PORT_PACKET || !p->ring || p->rearming || p->ring_version != 2) return 0;
  uint64_t drops = 0;
  if (port_kernel_drops(p, &drops) < 0) return 0;
  const struct tpacket2_hdr *h = (const struct tpacket2_hdr *)(p->ring + (size_t)p->frame_cur * p->frame_size);
  int slot_empty = !(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER);
  /* A full ring drops too, but then the slot we wait on is ours; a healthy empty ring drops nothing. */
  /* Nothing received: no descriptor delivered and the read position where it was (frames dropped
   * in C deliver nothing but do move it). */
  int wedged = drops > p->chk_drops && p->st.rx_packets == p->chk_rx && p->frame_cur == p->chk_cur && slot_empty;
  p->chk_drops = drops;
  p->chk_rx = p->st.rx_packets;
  p->chk_cur = p->frame_cur;
  p->chk_wedged = wedged ? p->chk_wedged + 1 : 0;
  if (p->chk_wedged < (checks ? checks : 1)) return 0;
  p->chk_wedged = 0;
  p->st.rx_ring_stalls++;
  return 1;
}

void port_ring_detach(struct port *p, struct ring_rearm *r) {
  r->fd = p->fd;
  r->ring = p->ring;
  r->ring_len = p->ring_len;
  r->block_size = p->block_size;
  r->block_nr = p->block_nr;
  r->err = 0;
  r->discarded = 0;
  p->ring = NULL;
  p->rearming = 1;
  p->copy_ready = 0;
  p->gso_next = 0;
}

int ring_rearm_run(struct ring_rearm *r) {
  /* the kernel refuses to free a ring that is still mapped */
  munmap(r->ring, r->ring_len);
  r->ring = NULL;
  struct tpacket_req req;
  memset(&req, 0, sizeof req);
  if (setsockopt(r->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) return r->err = -errno;
  req.tp_frame_size = 2048;
  req.tp_block_size = r->block_size;
  req.tp_block_nr = r->block_nr;
  req.tp_frame_nr = (req.tp_block_size / req.tp_frame_size) * req.tp_block_nr;
  if (setsockopt(r->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) return r->err = -errno;
  void *m = mmap(NULL, r->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, r->fd, 0);
  if (m == MAP_FAILED) m = mmap(NULL, r->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
  if (m == MAP_FAILED) return r->err = -errno;
  r->ring = m;
  /* Without a ring the kernel queued frames on the socket (packet_rcv); a TP_STATUS_COPY slot of
   * the new ring would take one of those for its copy. Drop them (bounded: the queue holds what
   * the receive buffer allows). A copy queued for a slot of the new ring may go too: that frame is
   * then delivered cut and flagged, as when the socket buffer was full. */
  for (int k = 0; k < 4096; k++) {
    char b;
    struct iovec iov = { &b, 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (recvmsg(r->fd, &msg, MSG_DONTWAIT | MSG_TRUNC) < 0) break;
    r->discarded++;
  }
  return 0;
}

void port_ring_attach(struct port *p, const struct ring_rearm *r) {
  p->st.rx_kernel_drops += r->discarded;
  if (r->err) {
    port_stop_rx(p); /* (no ring: the kernel would queue every frame on the socket) */
    p->ring_err = r->err;
    return; /* rearming stays set: the port receives nothing */
  }
  p->ring = r->ring;
  p->frame_cur = 0;
  p->copy_ready = 0;
  p->gso_next = 0;
  p->rearming = 0;
}
