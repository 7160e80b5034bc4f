/*
 * pktgen: the traffic generator and sink of the end-to-end benchmark (bench/e2e).
 *
 *   pktgen send IFNAME SRC_MAC DST_MAC SRC_IP DST_IP SIZE FLOWS PPS SECONDS
 *     Floods IPv4/UDP frames of SIZE bytes (Ethernet frame length, >= 60) out of IFNAME through
 *     AF_PACKET with sendmmsg batches (PACKET_QDISC_BYPASS), spreading FLOWS source ports. PPS = 0
 *     means as fast as possible; otherwise a token bucket holds the offered rate. Every frame
 *     carries a sequence number and a CLOCK_MONOTONIC send time (same clock in every namespace).
 *     IPv6 addresses (SRC_IP and DST_IP both IPv6) send IPv6/UDP frames instead, SIZE >= 78
 *     (14 + 40 + 8 + the 16-byte payload), each with its UDP checksum (mandatory over IPv6),
 *     updated per frame from a precomputed sum over the constant parts.
 *     Prints one JSON line: {"sent":N,"seconds":S,"cpu":C,"sys":Y} (C: its own CPU seconds, user +
 *     system; Y: system alone, which holds the receive work its sends run in its context: a veth's
 *     peer side; with PPS > 0 the token bucket spins in user time).
 *   pktgen sink PORT SECONDS [6]
 *     Receives UDP on PORT (any IPv4 address; with 6, any IPv6 address) with recvmmsg for SECONDS,
 *     counts datagrams and records one-way latency from the embedded timestamps. It counts a
 *     frame (received) only once per sequence number (a repeat is a dup), only when it was sent
 *     after the sink started (an earlier one, a previous sender's backlog drained late, is stale)
 *     and only when it arrived by the last send stamp it saw plus LATE_GRACE_MS (20 ms): a frame a
 *     forwarder's ring held past the end of sending is late, not delivered within the measured
 *     window (the caller divides by the sender's seconds). Start it, and wait until it is bound,
 *     before the sender starts.
 *     Prints {"received":N,"late":L,"dup":D,"stale":S,"p50us":..,"p99us":..,"cpu":C}
 *     (p50/p99 over every unique frame of the window, late ones included).
 *   pktgen rr-server tcp|udp PORT SECONDS
 *     Echoes every request back (UDP: each datagram; TCP: the byte stream, TCP_NODELAY, one
 *     connection at a time) for SECONDS at most.
 *   pktgen rr-client tcp|udp IP PORT SIZE RATE SECONDS [WINDOW [COUNT]]
 *     Request/response round trips of SIZE-byte requests (>= 16: sequence number and send time).
 *     RATE > 0: open loop, a request every 1/RATE s whatever the replies do (the latency a pod
 *     feels at that load). RATE = 0: closed loop with WINDOW (default 1) requests outstanding, as
 *     fast as the path answers (the maximum rate). COUNT > 0: no more than COUNT requests (the
 *     run ends early once they are answered), so a capture of the run has a known bound whatever
 *     the machine's speed. One thread, ppoll() with ns timeouts between sends. Prints {"sent":N,"received":N,"seconds":S,"rate":R,"p50us":..,"p99us":..,
 *     "p999us":..,"maxus":..} (rate: replies per second).
 *
 * Only ever sends to the addresses it is given (the benchmark's own namespaces).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAGIC 0x70647779u /* "pdwy" */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* This process's CPU time so far (user + system), seconds. */
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Its system time alone: the kernel work its calls ran (a rate-limited send spins in user space). */
static double sys_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int parse_mac(const char *s, uint8_t *m) {
  return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 ? 0 : -1;
}

/* One's-complement sum of big-endian 16-bit words, not folded (callers add more, then fold). */
static uint32_t sum16(const uint8_t *p, int len) {
  uint32_t s = 0;
  for (int i = 0; i + 1 < len; i += 2) s += (p[i] << 8) | p[i + 1];
  if (len & 1) s += p[len - 1] << 8;
  return s;
}

static uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

static uint16_t csum(const uint8_t *p, int len) {
  uint32_t s = 0;
  for (int i = 0; i + 1 < len; i += 2) s += (p[i] << 8) | p[i + 1];
  if (len & 1) s += p[len - 1] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

struct payload {
  uint32_t magic;
  uint32_t seq;
  uint64_t t_ns;
};

static int do_send(int argc, char **argv) {
  if (argc != 11) {
    fprintf(stderr, "usage: pktgen send IFNAME SRC_MAC DST_MAC SRC_IP DST_IP SIZE FLOWS PPS SECONDS\n");
    return 2;
  }
  const char *ifname = argv[2];
  uint8_t smac[6], dmac[6];
  struct in_addr sip, dip;
  struct in6_addr sip6, dip6;
  int v6 = strchr(argv[5], ':') != NULL;
  int ipok = v6 ? inet_pton(AF_INET6, argv[5], &sip6) == 1 && inet_pton(AF_INET6, argv[6], &dip6) == 1
                : inet_aton(argv[5], &sip) && inet_aton(argv[6], &dip);
  if (parse_mac(argv[3], smac) || parse_mac(argv[4], dmac) || !ipok) {
    fprintf(stderr, "pktgen: bad MAC or IP (SRC_IP and DST_IP: both IPv4 or both IPv6)\n");
    return 2;
  }
  int size = atoi(argv[7]), flows = atoi(argv[8]);
  double pps = atof(argv[9]), seconds = atof(argv[10]);
  int minsize = v6 ? 14 + 40 + 8 + (int)sizeof(struct payload) : 60;
  if (size < minsize || size > 1514 || flows < 1 || flows > 65535 || seconds <= 0 || seconds > 600) {
    fprintf(stderr, "pktgen: size %d..1514 (%s), flows 1..65535, seconds 0..600\n", minsize, v6 ? "IPv6" : "IPv4");
    return 2;
  }
  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) { perror("socket"); return 1; }
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
  struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifname), .sll_halen = 6 };
  if (!sll.sll_ifindex) { fprintf(stderr, "pktgen: no interface %s\n", ifname); return 1; }
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind"); return 1; }

  static uint8_t frames[BATCH][1514];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  int iplen = size - 14, iphl = v6 ? 40 : 20, udplen = iplen - iphl;
  /* IPv6: the UDP checksum's sum over everything but the source port and the payload's first 16
   * bytes (the rest of the payload is zeros): the pseudo-header, the destination port, the length. */
  uint32_t udp6_base = 0;
  for (int k = 0; k < BATCH; k++) {
    uint8_t *f = frames[k];
    memset(f, 0, sizeof frames[k]);
    memcpy(f, dmac, 6);
    memcpy(f + 6, smac, 6);
    uint8_t *ip = f + 14;
    if (v6) {
      f[12] = 0x86; f[13] = 0xdd;
      ip[0] = 0x60; ip[4] = udplen >> 8; ip[5] = udplen & 255; ip[6] = 17; ip[7] = 64;
      memcpy(ip + 8, &sip6, 16);
      memcpy(ip + 24, &dip6, 16);
    } else {
      f[12] = 0x08; f[13] = 0x00;
      ip[0] = 0x45; ip[2] = iplen >> 8; ip[3] = iplen & 255; ip[6] = 0x40; ip[8] = 64; ip[9] = 17;
      memcpy(ip + 12, &sip, 4);
      memcpy(ip + 16, &dip, 4);
    }
    uint8_t *udp = ip + iphl;
    udp[2] = 0x23; udp[3] = 0x29; /* dst port 9001 */
    udp[4] = udplen >> 8; udp[5] = udplen & 255;
    iov[k].iov_base = f;
    iov[k].iov_len = (size_t)size;
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  if (v6) {
    uint8_t *ip = frames[0] + 14;
    udp6_base = sum16(ip + 8, 32) + (uint32_t)udplen + 17 /* pseudo-header */ + 9001 + (uint32_t)udplen /* UDP header */;
  }
  uint32_t seq = 0;
  uint64_t sent = 0;
  double start = now(), end = start + seconds, t = start;
  double credit = 0, last = start;
  while ((t = now()) < end) {
    int n = BATCH;
    if (pps > 0) {
      credit += (t - last) * pps;
      last = t;
      if (credit > BATCH * 4) credit = BATCH * 4;
      if (credit < 1) { struct timespec ts = { 0, 20000 }; nanosleep(&ts, NULL); continue; }
      n = credit < BATCH ? (int)credit : BATCH;
    }
    uint64_t tns = (uint64_t)(t * 1e9);
    for (int k = 0; k < n; k++) {
      uint8_t *ip = frames[k] + 14;
      uint8_t *udp = ip + iphl;
      uint16_t sport = (uint16_t)(10000 + (seq % (uint32_t)flows));
      udp[0] = sport >> 8; udp[1] = sport & 255;
      struct payload pl = { htonl(MAGIC), htonl(seq), tns };
      if (udplen >= 8 + (int)sizeof pl) memcpy(udp + 8, &pl, sizeof pl);
      if (v6) {
        uint16_t c = (uint16_t)~fold(udp6_base + sport + sum16(udp + 8, (int)sizeof pl));
        if (c == 0) c = 0xffff; /* 0 means "no checksum", forbidden over IPv6 */
        udp[6] = c >> 8; udp[7] = c & 255;
      } else {
        ip[4] = (seq >> 8) & 255; ip[5] = seq & 255;
        ip[10] = ip[11] = 0;
        uint16_t c = csum(ip, 20);
        ip[10] = c >> 8; ip[11] = c & 255;
        udp[6] = udp[7] = 0; /* UDP checksum 0: allowed over IPv4 */
      }
      seq++;
    }
    int r = sendmmsg(fd, msgs, n, 0);
    if (r > 0) { sent += (uint64_t)r; if (pps > 0) credit -= r; }
    else if (r < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINTR) { perror("sendmmsg"); break; }
  }
  printf("{\"sent\":%llu,\"seconds\":%.3f,\"cpu\":%.4f,\"sys\":%.4f}\n", (unsigned long long)sent, now() - start, cpu_seconds(), sys_seconds());
  return 0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* A frame arriving later than this after the last send stamp the sink saw is late (not counted). */
#define LATE_GRACE_MS 20

static int do_sink(int argc, char **argv) {
  if (argc != 4 && !(argc == 5 && strcmp(argv[4], "6") == 0)) {
    fprintf(stderr, "usage: pktgen sink PORT SECONDS [6]\n");
    return 2;
  }
  int port = atoi(argv[2]);
  double seconds = atof(argv[3]);
  if (port < 1 || port > 65535 || !(seconds > 0) || seconds > 700) {
    fprintf(stderr, "pktgen: sink port 1..65535, seconds 0..700\n");
    return 2;
  }
  int v6 = argc == 5, one_int = 1;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  int rcvbuf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_ANY_INIT };
  int b = v6 ? bind(fd, (struct sockaddr *)&sin6, sizeof sin6) : bind(fd, (struct sockaddr *)&sin, sizeof sin);
  if (b < 0) { perror("bind"); return 1; }
  struct timeval tv = { 0, 100000 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  /* when each frame reached the socket (the kernel's stamp, CLOCK_REALTIME): whether it is late
   * must not depend on when this process got the CPU to read it */
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one_int, sizeof one_int);
  static uint8_t bufs[BATCH][2048];
  static uint8_t ctls[BATCH][CMSG_SPACE(sizeof(struct timespec))];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int k = 0; k < BATCH; k++) {
    iov[k].iov_base = bufs[k];
    iov[k].iov_len = sizeof bufs[k];
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  /* CLOCK_REALTIME - CLOCK_MONOTONIC, to put the kernel's stamps on the senders' clock */
  struct timespec rt, mt;
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_MONOTONIC, &mt);
  int64_t rt_minus_mono = ((int64_t)rt.tv_sec - mt.tv_sec) * 1000000000LL + (rt.tv_nsec - mt.tv_nsec);
  size_t cap = 1 << 20, nl = 0;
  uint32_t *lat = malloc(cap * sizeof *lat);
  /* the sequence numbers seen (one bit each, grown as they come) and the unique frames per
   * millisecond of arrival since the start (the last bin holds everything later) */
  size_t seen_bytes = 1 << 16;
  uint8_t *seen = calloc(seen_bytes, 1);
  size_t nbins = (size_t)(seconds * 1000) + 2;
  uint64_t *bins = calloc(nbins, sizeof *bins);
  if (!lat || !seen || !bins) { fprintf(stderr, "pktgen: out of memory\n"); return 1; }
  uint64_t unique = 0, dup = 0, stale = 0, max_sent_ns = 0;
  double t0 = now(), end = t0 + seconds;
  uint64_t start_ns = (uint64_t)(t0 * 1e9);
  while (now() < end) {
    for (int k = 0; k < BATCH; k++) {
      msgs[k].msg_hdr.msg_control = ctls[k];
      msgs[k].msg_hdr.msg_controllen = sizeof ctls[k];
    }
    int r = recvmmsg(fd, msgs, BATCH, 0, NULL);
    if (r <= 0) continue;
    uint64_t tns = (uint64_t)(now() * 1e9);
    for (int k = 0; k < r; k++) {
      /* arrival: the kernel's stamp when there is one, else now */
      uint64_t arr = tns;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[k].msg_hdr); c; c = CMSG_NXTHDR(&msgs[k].msg_hdr, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          struct timespec ts;
          memcpy(&ts, CMSG_DATA(c), sizeof ts);
          int64_t a = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - rt_minus_mono;
          if (a > 0 && (uint64_t)a <= tns) arr = (uint64_t)a;
        }
      }
      size_t bin = arr > start_ns ? (size_t)((arr - start_ns) / 1000000) : 0;
      if (bin >= nbins) bin = nbins - 1;
      struct payload pl;
      if (msgs[k].msg_len < sizeof pl) continue;
      memcpy(&pl, bufs[k], sizeof pl);
      if (ntohl(pl.magic) != MAGIC) continue;
      if (pl.t_ns < start_ns) { stale++; continue; }
      uint32_t seq = ntohl(pl.seq);
      size_t byte = seq >> 3;
      if (byte >= seen_bytes) {
        size_t nb = seen_bytes;
        while (nb <= byte) nb *= 2;
        uint8_t *g = realloc(seen, nb);
        if (!g) { fprintf(stderr, "pktgen: out of memory\n"); return 1; }
        memset(g + seen_bytes, 0, nb - seen_bytes);
        seen = g;
        seen_bytes = nb;
      }
      uint8_t bit = (uint8_t)(1u << (seq & 7));
      if (seen[byte] & bit) { dup++; continue; }
      seen[byte] |= bit;
      unique++;
      bins[bin]++;
      if (pl.t_ns > max_sent_ns) max_sent_ns = pl.t_ns;
      /* sample every latency until the buffer is full (read by this process, as before) */
      if (nl < cap && tns >= pl.t_ns) lat[nl++] = (uint32_t)((tns - pl.t_ns) / 1000);
    }
  }
  /* on time: arrived in a millisecond bin that starts by the last send stamp + the grace */
  uint64_t received = 0;
  if (unique) {
    uint64_t cutoff_ms = (max_sent_ns - start_ns) / 1000000 + LATE_GRACE_MS;
    for (size_t i = 0; i < nbins - 1 && i <= cutoff_ms; i++) received += bins[i];
  }
  double p50 = -1, p99 = -1;
  if (nl) {
    qsort(lat, nl, sizeof *lat, cmp_u32);
    p50 = lat[nl / 2];
    p99 = lat[(size_t)(nl * 0.99)];
  }
  printf("{\"received\":%llu,\"late\":%llu,\"dup\":%llu,\"stale\":%llu,\"p50us\":%.0f,\"p99us\":%.0f,\"cpu\":%.4f}\n",
         (unsigned long long)received, (unsigned long long)(unique - received), (unsigned long long)dup,
         (unsigned long long)stale, p50, p99, cpu_seconds());
  return 0;
}

/* ---- request/response ------------------------------------------------------------------------ */

struct rr_msg {
  uint32_t magic;
  uint32_t seq;
  uint64_t t_ns;
};

static int rr_socket(const char *proto) {
  if (strcmp(proto, "tcp") == 0) return socket(AF_INET, SOCK_STREAM, 0);
  if (strcmp(proto, "udp") == 0) return socket(AF_INET, SOCK_DGRAM, 0);
  return -1;
}

static int do_rr_server(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: pktgen rr-server tcp|udp PORT SECONDS\n");
    return 2;
  }
  int tcp = strcmp(argv[2], "tcp") == 0;
  int fd = rr_socket(argv[2]);
  if (fd < 0) { fprintf(stderr, "pktgen: proto tcp or udp\n"); return 2; }
  double end = now() + atof(argv[4]);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3])) };
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) { perror("bind"); return 1; }
  if (tcp && listen(fd, 4) < 0) { perror("listen"); return 1; }
  static uint8_t buf[65536];
  int conn = -1;
  while (now() < end) {
    struct pollfd pfd = { .fd = conn >= 0 ? conn : fd, .events = POLLIN };
    if (poll(&pfd, 1, 100) <= 0) continue;
    if (!tcp) {
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      ssize_t r = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
      if (r > 0) sendto(fd, buf, (size_t)r, 0, (struct sockaddr *)&from, fl);
    } else if (conn < 0) {
      conn = accept(fd, NULL, NULL);
      if (conn >= 0) setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    } else {
      ssize_t r = recv(conn, buf, sizeof buf, 0);
      if (r <= 0) { close(conn); conn = -1; continue; }
      for (ssize_t off = 0; off < r;) {
        ssize_t w = send(conn, buf + off, (size_t)(r - off), MSG_NOSIGNAL);
        if (w <= 0) break;
        off += w;
      }
    }
  }
  if (conn >= 0) close(conn);
  return 0;
}

static int do_rr_client(int argc, char **argv) {
  if (argc < 8 || argc > 10) {
    fprintf(stderr, "usage: pktgen rr-client tcp|udp IP PORT SIZE RATE SECONDS [WINDOW [COUNT]]\n");
    return 2;
  }
  int tcp = strcmp(argv[2], "tcp") == 0;
  int fd = rr_socket(argv[2]);
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[4])) };
  int size = atoi(argv[5]), window = argc >= 9 ? atoi(argv[8]) : 1;
  double rate = atof(argv[6]), seconds = atof(argv[7]);
  long long count = argc == 10 ? atoll(argv[9]) : 0; /* 0: as many as SECONDS allows */
  if (fd < 0 || !inet_aton(argv[3], &sin.sin_addr) || size < (int)sizeof(struct rr_msg) || size > 1400 || rate < 0 || seconds <= 0 || seconds > 600 || window < 1 || window > 1024 || count < 0 || count > (1 << 22)) {
    fprintf(stderr, "pktgen: tcp|udp, an IPv4 address, size 16..1400, rate >= 0, seconds 0..600, window 1..1024, count 0..4194304\n");
    return 2;
  }
  int one = 1;
  if (tcp) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) { perror("connect"); return 1; }
  size_t cap = 1 << 22, nl = 0;
  uint32_t *lat = malloc(cap * sizeof *lat); /* round trips in ns */
  /* PKTGEN_RR_TRACE=FILE: each reply's request time (ns from the start), round trip (ns) and
   * sequence number, one line each, written after the run (bench/e2e/rr-tail.ts reads it to find
   * the tail's episodes, and with --legs matches each request to its frames in two captures) */
  const char *trace_path = getenv("PKTGEN_RR_TRACE");
  uint64_t *sent_at = trace_path ? malloc(cap * sizeof *sent_at) : NULL;
  uint32_t *seq_at = trace_path ? malloc(cap * sizeof *seq_at) : NULL;
  uint64_t start_ns = (uint64_t)(now() * 1e9);
  static uint8_t req[1400], in[65536 + 1400];
  memset(req, 0xa5, sizeof req);
  size_t have = 0; /* TCP: bytes of a partial reply kept at the front of in[] */
  uint64_t sent = 0, received = 0;
  int outstanding = 0;
  double start = now(), end = start + seconds, next = start, last_rx = start;
  double drain_end = 0;
  for (;;) {
    double t = now();
    if ((t >= end || (count && sent >= (uint64_t)count)) && drain_end == 0) drain_end = t + 0.2; /* replies still in flight */
    if (drain_end && (t >= drain_end || received >= sent)) break;
    if (!drain_end) {
      int burst = 0;
      while (burst < 64 && (!count || sent < (uint64_t)count) && (rate > 0 ? next <= t : outstanding < window)) {
        struct rr_msg m = { MAGIC, (uint32_t)sent, (uint64_t)(now() * 1e9) };
        memcpy(req, &m, sizeof m);
        ssize_t w = send(fd, req, (size_t)size, MSG_NOSIGNAL);
        if (w != size) { if (tcp && w > 0) { fprintf(stderr, "pktgen: short TCP send\n"); return 1; } break; }
        sent++;
        outstanding++;
        burst++;
        if (rate > 0) next += 1.0 / rate;
      }
    }
    double wait = drain_end ? drain_end - t : rate > 0 ? next - now() : 0.1;
    if (!drain_end && wait > end - t) wait = end - t;
    if (wait < 0) wait = 0;
    struct timespec ts = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int pr = ppoll(&pfd, 1, &ts, NULL);
    if (pr <= 0) {
      /* closed loop over UDP: a lost reply must not stall the window for good */
      if (rate == 0 && !tcp && now() - last_rx > 0.1) outstanding = 0;
      continue;
    }
    for (;;) {
      ssize_t r = recv(fd, in + have, tcp ? sizeof in - have : (size_t)size, MSG_DONTWAIT);
      if (r <= 0) break;
      uint64_t tns = (uint64_t)(now() * 1e9);
      last_rx = now();
      size_t total = have + (size_t)r, off = 0;
      if (!tcp) total = (size_t)r == (size_t)size ? (size_t)size : 0;
      for (; off + (size_t)size <= total; off += (size_t)size) {
        struct rr_msg m;
        memcpy(&m, in + off, sizeof m);
        if (m.magic != MAGIC) continue;
        received++;
        if (outstanding > 0) outstanding--;
        if (nl < cap && tns >= m.t_ns) {
          if (sent_at) sent_at[nl] = m.t_ns - start_ns;
          if (seq_at) seq_at[nl] = m.seq;
          lat[nl++] = (uint32_t)((tns - m.t_ns) > 0xffffffffu ? 0xffffffffu : tns - m.t_ns);
        }
      }
      if (tcp) {
        have = total - off;
        if (have) memmove(in, in + off, have);
      }
    }
  }
  double took = now() - start;
  double p50 = -1, p99 = -1, p999 = -1, mx = -1;
  if (trace_path && sent_at && seq_at) {
    FILE *tf = fopen(trace_path, "w");
    if (!tf) { perror(trace_path); return 1; }
    for (size_t i = 0; i < nl; i++) fprintf(tf, "%llu %u %u\n", (unsigned long long)sent_at[i], lat[i], seq_at[i]);
    fclose(tf);
  }
  /* p99 over the requests SENT, one without a reply counted as slower than any: -1 when over 1%
   * got none. The percentiles above are over replies only, where a dropped UDP request is no sample */
  double p99sent = -1;
  if (nl) {
    qsort(lat, nl, sizeof *lat, cmp_u32);
    p50 = lat[nl / 2] / 1e3;
    p99 = lat[(size_t)(nl * 0.99)] / 1e3;
    p999 = lat[(size_t)(nl * 0.999)] / 1e3;
    mx = lat[nl - 1] / 1e3;
    size_t k = (size_t)(sent * 0.99);
    if (k < nl) p99sent = lat[k] / 1e3;
  }
  printf("{\"sent\":%llu,\"received\":%llu,\"seconds\":%.3f,\"rate\":%.0f,\"p50us\":%.1f,\"p99us\":%.1f,\"p999us\":%.1f,\"maxus\":%.1f,\"p99sentus\":%.1f}\n",
         (unsigned long long)sent, (unsigned long long)received, took, received / (took < seconds ? took : seconds), p50, p99, p999, mx, p99sent);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "send") == 0) return do_send(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "sink") == 0) return do_sink(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "rr-server") == 0) return do_rr_server(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "rr-client") == 0) return do_rr_client(argc, argv);
  fprintf(stderr, "usage: pktgen send|sink|rr-server|rr-client ...\n");
  return 2;
}
