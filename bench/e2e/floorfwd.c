/*
 * floorfwd: the least a userspace VXLAN forwarder can do for podway's hop, in C, one thread: the
 * floor any userspace forwarder on this machine stands on (bench/README.md, "The floor").
 *
 *   floorfwd POD_IF POD_MAC UNDERLAY_IF NODE_IP PEER_IP PEER_MAC VTEP_MAC PEER_VTEP_MAC [options]
 *
 * Pod -> underlay: a TPACKET_V2 ring with PACKET_VNET_HDR on POD_IF (as podway's pod ports: the
 * frame is handed over on the first one, partial checksums completed here), every IPv4 frame
 * wrapped in Ethernet/IPv4/UDP 4789/VXLAN VNI 4096 (inner MACs VTEP_MAC -> PEER_VTEP_MAC, TTL - 1)
 * and sent with sendmmsg on an AF_PACKET socket bound to UNDERLAY_IF (outer MACs: UNDERLAY_IF's
 * own -> PEER_MAC). ARP requests from the pod are answered with POD_IF's MAC (podway answers them
 * too). TCP/IPv4 super-frames (the pod's TSO: a busy connection's small writes merged) are cut
 * into MSS segments here, as podway's gso.c does; other GSO types are dropped (counted). The ring's
 * slots are 68 KiB so a super-frame arrives whole (podway uses 2 KiB slots and PACKET_COPY_THRESH;
 * for the small frames of a round trip both are the same one ring slot).
 * Underlay -> pod: a UDP socket on NODE_IP:4789, recvmmsg, VXLAN header stripped, inner Ethernet
 * rewritten (POD_IF's MAC -> POD_MAC), TTL - 1, sendmmsg on an AF_PACKET socket bound to POD_IF.
 * Nothing is routed: the bench points it at one pod and one peer node.
 *
 * The loop: poll() on both fds, blocking (timeout 1 s), then drain each in batches of up to 64.
 *
 * Options (what might shorten the wake-up; the bench compares them, bench/README.md):
 *   --fifo N       SCHED_FIFO priority N for the thread
 *   --cpu N        pin the thread to CPU N
 *   --slack NS     PR_SET_TIMERSLACK (ns)
 *   --busy-poll US SO_BUSY_POLL on the UDP socket (it acts only where the socket's frames came
 *                  through a NAPI context: a veth with GRO on, not the backlog of a plain veth)
 *
 * On SIGTERM/SIGINT it prints {"toUnderlay":N,"toPod":N,"arp":N,"dropped":N} and exits.
 * Only ever sends to the pod and peer it is given (the benchmark's own namespaces).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 2048             /* a transmit buffer: one MTU-sized frame */
#define RING_FRAME (17 * 4096) /* a ring slot: a 64 KiB TCP super-frame fits whole */
#define FRAMES 128
#define VNI 4096
#define OUTER (14 + 20 + 8 + 8)
#define VNET_LEN ((int)sizeof(struct virtio_net_hdr))

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static int parse_mac(const char *s, uint8_t *m) {
  return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 ? 0 : -1;
}

static int if_mac(int fd, const char *ifname, uint8_t *mac) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) return -1;
  memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
  return 0;
}

static int packet_socket(const char *ifname, int *ifindex) {
  int fd = socket(AF_PACKET, SOCK_RAW, 0); /* blocking: a full send buffer waits, nothing is dropped */
  if (fd < 0) return -1;
  *ifindex = (int)if_nametoindex(ifname);
  struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = *ifindex };
  if (!*ifindex || bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { close(fd); return -1; }
  return fd;
}

static uint32_t sum16(const uint8_t *p, int len, uint32_t s) {
  for (int i = 0; i + 1 < len; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (len & 1) s += (uint32_t)p[len - 1] << 8;
  return s;
}

static uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

/* TTL - 1 with the header checksum updated incrementally (RFC 1624); 0 when the TTL runs out. */
static int ttl_dec(uint8_t *ip) {
  if (ip[8] <= 1) return 0;
  ip[8]--;
  uint32_t c = (uint32_t)(ip[10] << 8 | ip[11]) + 0x100;
  c = (c & 0xffff) + (c >> 16);
  ip[10] = (uint8_t)(c >> 8);
  ip[11] = (uint8_t)c;
  return 1;
}

/* One pod frame (len bytes, Ethernet) into `o` as VXLAN towards the peer; vh: its L4 checksum
 * is partial (completed here). Returns 1 when o holds a frame to send, 0 when dropped (TTL). */
static int encap(uint8_t *o, struct iovec *iov, const uint8_t *f, uint32_t len, const struct virtio_net_hdr *vh,
                 const uint8_t *peer_vtep, const uint8_t *vtep_mac, uint16_t *ipid) {
  uint8_t *inner = o + OUTER;
  memcpy(inner + 12, f + 12, len - 12);
  memcpy(inner, peer_vtep, 6);
  memcpy(inner + 6, vtep_mac, 6);
  if (vh && vh->csum_start + vh->csum_offset + 2u <= len) {
    /* the pod left its L4 checksum to "hardware": the sum from csum_start to the end */
    uint8_t *c = inner + vh->csum_start + vh->csum_offset;
    uint16_t seed = (uint16_t)(c[0] << 8 | c[1]);
    c[0] = c[1] = 0;
    uint16_t s = (uint16_t)~fold(sum16(inner + vh->csum_start, (int)len - vh->csum_start, seed));
    c[0] = (uint8_t)(s >> 8);
    c[1] = (uint8_t)s;
  }
  if (!ttl_dec(inner + 14)) return 0;
  uint8_t *ip = o + 14, *udph = ip + 20;
  uint32_t tot = len + 20 + 8 + 8;
  ip[2] = (uint8_t)(tot >> 8); ip[3] = (uint8_t)tot;
  ip[4] = (uint8_t)(*ipid >> 8); ip[5] = (uint8_t)*ipid;
  (*ipid)++;
  ip[10] = ip[11] = 0;
  uint16_t ck = (uint16_t)~fold(sum16(ip, 20, 0));
  ip[10] = (uint8_t)(ck >> 8); ip[11] = (uint8_t)ck;
  /* source port from the inner addresses and ports, as the kernel spreads flows */
  uint16_t sp = (uint16_t)(0xc000 | (fold(sum16(inner + 26, 12, 0)) & 0x3fff));
  udph[0] = (uint8_t)(sp >> 8); udph[1] = (uint8_t)sp;
  udph[4] = (uint8_t)((len + 16) >> 8); udph[5] = (uint8_t)(len + 16);
  udph[6] = udph[7] = 0;
  iov->iov_len = OUTER + len;
  return 1;
}

static void flush_under(int fd, struct mmsghdr *m, int n, uint64_t *sent, uint64_t *dropped) {
  int s = sendmmsg(fd, m, (unsigned)n, 0);
  if (s > 0) *sent += (uint64_t)s;
  if (s < n) *dropped += (uint64_t)(n - (s > 0 ? s : 0));
}

int main(int argc, char **argv) {
  if (argc < 9) {
    fprintf(stderr, "usage: floorfwd POD_IF POD_MAC UNDERLAY_IF NODE_IP PEER_IP PEER_MAC VTEP_MAC PEER_VTEP_MAC [--fifo N] [--cpu N] [--slack NS] [--busy-poll US]\n");
    return 2;
  }
  uint8_t pod_mac[6], peer_mac[6], vtep_mac[6], peer_vtep[6], gw_mac[6], node_mac[6];
  struct in_addr node_ip, peer_ip;
  if (parse_mac(argv[2], pod_mac) || parse_mac(argv[6], peer_mac) || parse_mac(argv[7], vtep_mac) ||
      parse_mac(argv[8], peer_vtep) || !inet_aton(argv[4], &node_ip) || !inet_aton(argv[5], &peer_ip)) {
    fprintf(stderr, "floorfwd: bad MAC or IPv4 address\n");
    return 2;
  }
  int fifo = 0, cpu = -1, busy = 0;
  long slack = -1;
  for (int i = 9; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--fifo")) fifo = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--cpu")) cpu = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--slack")) slack = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--busy-poll")) busy = atoi(argv[i + 1]);
    else { fprintf(stderr, "floorfwd: unknown option %s\n", argv[i]); return 2; }
  }
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0) perror("sched_setaffinity");
  }
  if (fifo > 0) {
    struct sched_param sp = { .sched_priority = fifo };
    if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) perror("sched_setscheduler");
  }
  if (slack >= 0 && prctl(PR_SET_TIMERSLACK, (unsigned long)(slack ? slack : 1), 0, 0, 0) < 0) perror("prctl");

  /* pod side: the receive ring (vnet header, outgoing frames ignored) and a plain transmit socket */
  int pod_ifindex, under_ifindex, one = 1;
  int rx = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, 0);
  if (rx < 0) { perror("socket"); return 1; }
  setsockopt(rx, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  if (setsockopt(rx, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) { perror("PACKET_VNET_HDR"); return 1; }
  int v2 = TPACKET_V2;
  if (setsockopt(rx, SOL_PACKET, PACKET_VERSION, &v2, sizeof v2) < 0) { perror("PACKET_VERSION"); return 1; }
  struct tpacket_req req = { .tp_block_size = RING_FRAME, .tp_block_nr = FRAMES, .tp_frame_size = RING_FRAME, .tp_frame_nr = FRAMES };
  if (setsockopt(rx, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) { perror("PACKET_RX_RING"); return 1; }
  uint8_t *ring = mmap(NULL, (size_t)RING_FRAME * FRAMES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, rx, 0);
  if (ring == MAP_FAILED) ring = mmap(NULL, (size_t)RING_FRAME * FRAMES, PROT_READ | PROT_WRITE, MAP_SHARED, rx, 0);
  if (ring == MAP_FAILED) { perror("mmap"); return 1; }
  pod_ifindex = (int)if_nametoindex(argv[1]);
  struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = pod_ifindex };
  if (!pod_ifindex || bind(rx, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind pod ring"); return 1; }
  int pod_tx = packet_socket(argv[1], &pod_ifindex);
  int under_tx = packet_socket(argv[3], &under_ifindex);
  if (pod_tx < 0 || under_tx < 0) { perror("packet socket"); return 1; }
  if (if_mac(pod_tx, argv[1], gw_mac) || if_mac(under_tx, argv[3], node_mac)) { perror("SIOCGIFHWADDR"); return 1; }

  /* underlay side: VXLAN arrives on a UDP socket, as podway's does */
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(4789), .sin_addr = node_ip };
  if (udp < 0 || bind(udp, (struct sockaddr *)&sin, sizeof sin) < 0) { perror("bind udp 4789"); return 1; }
  if (busy > 0 && setsockopt(udp, SOL_SOCKET, SO_BUSY_POLL, &busy, sizeof busy) < 0) perror("SO_BUSY_POLL");

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);

  static uint8_t out[BATCH][OUTER + SLOT]; /* encapsulated frames towards the underlay */
  static uint8_t in[BATCH][SLOT];          /* VXLAN datagrams from the underlay */
  struct iovec oiov[BATCH], iiov[BATCH], piov[BATCH];
  struct mmsghdr omsg[BATCH], imsg[BATCH], pmsg[BATCH];
  memset(omsg, 0, sizeof omsg);
  memset(imsg, 0, sizeof imsg);
  memset(pmsg, 0, sizeof pmsg);
  for (int k = 0; k < BATCH; k++) {
    uint8_t *o = out[k];
    memcpy(o, peer_mac, 6);
    memcpy(o + 6, node_mac, 6);
    o[12] = 0x08; o[13] = 0x00;
    uint8_t *ip = o + 14;
    ip[0] = 0x45; ip[6] = 0x40; ip[8] = 64; ip[9] = 17;
    memcpy(ip + 12, &node_ip, 4);
    memcpy(ip + 16, &peer_ip, 4);
    uint8_t *udph = ip + 20;
    udph[2] = 4789 >> 8; udph[3] = 4789 & 255;
    uint8_t *vx = udph + 8;
    vx[0] = 0x08; vx[4] = VNI >> 16; vx[5] = (VNI >> 8) & 255; vx[6] = VNI & 255;
    oiov[k].iov_base = o;
    omsg[k].msg_hdr.msg_iov = &oiov[k];
    omsg[k].msg_hdr.msg_iovlen = 1;
    iiov[k] = (struct iovec){ in[k], SLOT };
    imsg[k].msg_hdr.msg_iov = &iiov[k];
    imsg[k].msg_hdr.msg_iovlen = 1;
    pmsg[k].msg_hdr.msg_iov = &piov[k];
    pmsg[k].msg_hdr.msg_iovlen = 1;
  }
  uint16_t ipid = 0;
  uint64_t to_under = 0, to_pod = 0, arps = 0, dropped = 0;
  uint32_t cur = 0;
  struct pollfd pfd[2] = { { .fd = rx, .events = POLLIN }, { .fd = udp, .events = POLLIN } };
  while (!stop) {
    int pr = poll(pfd, 2, 1000);
    if (pr < 0 && errno != EINTR) { perror("poll"); break; }
    /* pod -> underlay: everything the ring holds, 64 frames per sendmmsg */
    for (;;) {
      int n = 0;
      while (n < BATCH) {
        struct tpacket2_hdr *h = (struct tpacket2_hdr *)(ring + (size_t)cur * RING_FRAME);
        if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
        uint8_t *f = (uint8_t *)h + h->tp_mac;
        const struct virtio_net_hdr *vh = (const struct virtio_net_hdr *)(f - VNET_LEN);
        uint32_t len = h->tp_snaplen;
        if (len >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[20] == 0 && f[21] == 1 && memcmp(f + 28, f + 38, 4)) {
          /* ARP request: answer "target is at POD_IF's MAC" */
          uint8_t r[42];
          memcpy(r, f + 6, 6);
          memcpy(r + 6, gw_mac, 6);
          memcpy(r + 12, f + 12, 8);
          r[20] = 0;
          r[21] = 2;
          memcpy(r + 22, gw_mac, 6);
          memcpy(r + 28, f + 38, 4);
          memcpy(r + 32, f + 22, 10);
          if (send(pod_tx, r, sizeof r, 0) == sizeof r) arps++;
        } else if (len >= 34 && len == h->tp_len && f[12] == 0x08 && f[13] == 0x00 && (f[14] >> 4) == 4) {
          uint32_t ihl = (f[14] & 15) * 4u, doff = len >= 14 + ihl + 13 ? (f[14 + ihl + 12] >> 4) * 4u : 0;
          uint32_t hl = 14 + ihl + doff, seg = vh->gso_size;
          if (vh->gso_type == VIRTIO_NET_HDR_GSO_NONE && len + OUTER <= sizeof out[0]) {
            n += encap(out[n], &oiov[n], f, len, vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM ? vh : NULL, peer_vtep, vtep_mac, &ipid);
          } else if ((vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV4 && f[14 + 9] == 6 && doff >= 20 &&
                     hl < len && seg > 0 && hl + seg <= SLOT) {
            /* the kernel's tcp_gso_segment, as podway's gso.c: headers repeated, IPv4 length and
             * id, TCP seq per segment, FIN/PSH on the last only, CWR on the first only */
            static uint8_t sf[SLOT];
            uint32_t pay = len - hl, seq0 = (uint32_t)f[hl - doff + 4] << 24 | f[hl - doff + 5] << 16 | f[hl - doff + 6] << 8 | f[hl - doff + 7];
            uint16_t id0 = (uint16_t)(f[18] << 8 | f[19]);
            for (uint32_t off = 0, k = 0; off < pay; off += seg, k++) {
              uint32_t chunk = pay - off < seg ? pay - off : seg;
              memcpy(sf, f, hl);
              memcpy(sf + hl, f + hl + off, chunk);
              uint8_t *ip = sf + 14, *tcp = ip + ihl;
              uint32_t tot = ihl + doff + chunk, sq = seq0 + off;
              ip[2] = (uint8_t)(tot >> 8); ip[3] = (uint8_t)tot;
              ip[4] = (uint8_t)((id0 + k) >> 8); ip[5] = (uint8_t)(id0 + k);
              ip[10] = ip[11] = 0;
              uint16_t ic = (uint16_t)~fold(sum16(ip, (int)ihl, 0));
              ip[10] = (uint8_t)(ic >> 8); ip[11] = (uint8_t)ic;
              tcp[4] = (uint8_t)(sq >> 24); tcp[5] = (uint8_t)(sq >> 16); tcp[6] = (uint8_t)(sq >> 8); tcp[7] = (uint8_t)sq;
              if (off + chunk < pay) tcp[13] &= (uint8_t)~0x09; /* FIN, PSH */
              if (k > 0) tcp[13] &= (uint8_t)~0x80;             /* CWR */
              tcp[16] = tcp[17] = 0;
              uint32_t ps = sum16(ip + 12, 8, 0) + 6 + doff + chunk;
              uint16_t tc = (uint16_t)~fold(sum16(tcp, (int)(doff + chunk), ps));
              tcp[16] = (uint8_t)(tc >> 8); tcp[17] = (uint8_t)tc;
              n += encap(out[n], &oiov[n], sf, hl + chunk, NULL, peer_vtep, vtep_mac, &ipid);
              if (n == BATCH) { flush_under(under_tx, omsg, n, &to_under, &dropped); n = 0; }
            }
          } else dropped++;
        } else dropped++;
        __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        cur = (cur + 1) % FRAMES;
      }
      if (n == 0) break;
      flush_under(under_tx, omsg, n, &to_under, &dropped);
      if (n < BATCH) break;
    }
    /* underlay -> pod */
    for (;;) {
      int r = recvmmsg(udp, imsg, BATCH, MSG_DONTWAIT, NULL);
      if (r <= 0) break;
      int n = 0;
      for (int k = 0; k < r; k++) {
        uint8_t *v = in[k];
        uint32_t len = imsg[k].msg_len;
        if (len < 8 + 34 || !(v[0] & 0x08) || (uint32_t)(v[4] << 16 | v[5] << 8 | v[6]) != VNI || v[8 + 12] != 0x08 || v[8 + 13] != 0x00 ||
            !ttl_dec(v + 8 + 14)) { dropped++; continue; }
        uint8_t *f = v + 8;
        memcpy(f, pod_mac, 6);
        memcpy(f + 6, gw_mac, 6);
        piov[n] = (struct iovec){ f, len - 8 };
        n++;
      }
      if (n) {
        int s = sendmmsg(pod_tx, pmsg, (unsigned)n, 0);
        if (s > 0) to_pod += (uint64_t)s;
        if (s < n) dropped += (uint64_t)(n - (s > 0 ? s : 0));
      }
      if (r < BATCH) break;
    }
  }
  printf("{\"toUnderlay\":%llu,\"toPod\":%llu,\"arp\":%llu,\"dropped\":%llu}\n", (unsigned long long)to_under,
         (unsigned long long)to_pod, (unsigned long long)arps, (unsigned long long)dropped);
  return 0;
}
