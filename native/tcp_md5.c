/* TCP-MD5 signatures (RFC 2385) for BGP sessions: node's net module cannot set TCP_MD5SIG, and an
 * outgoing connection needs the key before its SYN, so the addon creates and connects those
 * sockets itself and hands the connected fd to node.
 *
 * tcpMd5Sig(fd, peer, key)               key for `peer` on a socket (a listener: accepted
 *                                        connections inherit it); empty key removes it
 * tcpMd5Connect(peer, port, local, key[, ttl, minTtl])
 *                                        -> fd of a non-blocking socket whose connect is under
 *                                        way, bound to `local` (or null) and keyed for `peer`
 *                                        (an empty key: not keyed); with ttl > 0 its packets go
 *                                        with that TTL / hop limit and, with minTtl > 0, the
 *                                        peer's must arrive with at least minTtl (GTSM, RFC 5082:
 *                                        set before the SYN, so the handshake is checked too)
 * tcpTtlSecurity(fd, ttl, minTtl)        the same on a socket node made (a listener: its SYN-ACKs;
 *                                        an accepted connection); minTtl 0 leaves the minimum
 * tcpConnectResult(fd)                   -> true when connected, false while still connecting;
 *                                        throws the connect error (ECONNREFUSED, ...)
 * closeFd(fd)                            for a socket given up before node took it over
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <node_api.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "errors.h"

static int arg_string(napi_env env, napi_value v, char *buf, size_t len) {
  napi_valuetype t;
  size_t n;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return -1;
  if (napi_get_value_string_utf8(env, v, buf, len, &n) != napi_ok || n >= len - 1) return -1;
  return (int)n;
}

static int arg_int(napi_env env, napi_value v, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return -1;
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

/* `text` as a sockaddr of `family` (AF_INET6 maps an IPv4 text to ::ffff:a.b.c.d). */
static int make_addr(const char *text, int family, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct in_addr v4;
  if (family == AF_INET) {
    struct sockaddr_in *s = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, text, &s->sin_addr) != 1) return -1;
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    *len = sizeof *s;
    return 0;
  }
  struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET6, text, &s->sin6_addr) != 1) {
    if (inet_pton(AF_INET, text, &v4) != 1) return -1;
    s->sin6_addr.s6_addr[10] = 0xff;
    s->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s->sin6_addr.s6_addr[12], &v4, 4);
  }
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  *len = sizeof *s;
  return 0;
}

static int family_of_text(const char *text) {
  struct in6_addr a;
  return inet_pton(AF_INET6, text, &a) == 1 ? AF_INET6 : AF_INET;
}

static int set_key(int fd, int family, const char *peer, const char *key, size_t keylen) {
  struct tcp_md5sig sig;
  socklen_t len;
  memset(&sig, 0, sizeof sig);
  /* the kernel's sockaddr_storage twin: same size and layout */
  if (make_addr(peer, family, 0, (struct sockaddr_storage *)&sig.tcpm_addr, &len) < 0) return EINVAL;
  sig.tcpm_keylen = (uint16_t)keylen;
  memcpy(sig.tcpm_key, key, keylen);
  return setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof sig) < 0 ? errno : 0;
}

static napi_value tcp_md5_sig(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return throw_type(env, "tcpMd5Sig(fd, peer, key): three arguments");
  int32_t fd;
  char peer[64], key[TCP_MD5SIG_MAXKEYLEN + 2];
  if (arg_int(env, argv[0], &fd) < 0 || fd < 0) return throw_type(env, "tcpMd5Sig: fd must be a non-negative integer");
  if (arg_string(env, argv[1], peer, sizeof peer) < 0) return throw_type(env, "tcpMd5Sig: peer must be an IP address string");
  int keylen = arg_string(env, argv[2], key, sizeof key);
  if (keylen < 0) return throw_type(env, "tcpMd5Sig: key must be a string of at most 80 bytes");
  struct sockaddr_storage self;
  socklen_t slen = sizeof self;
  if (getsockname(fd, (struct sockaddr *)&self, &slen) < 0) return throw_errno(env, errno, "tcpMd5Sig: getsockname");
  int err = set_key(fd, self.ss_family, peer, key, (size_t)keylen);
  if (err) return throw_errno(env, err, "tcpMd5Sig: setsockopt(TCP_MD5SIG)");
  return NULL;
}

/* IP_TTL (and IPV6_UNICAST_HOPS on an IPv6 socket, whose IPv4-mapped connections use the IPv4
 * options) and, with min_ttl > 0, IP_MINTTL (IPV6_MINHOPCOUNT). 0 or an errno; `what` names the
 * option that failed. */
static int set_ttl_security(int fd, int family, int ttl, int min_ttl, const char **what) {
  if (ttl > 0 && setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) < 0) { *what = "setsockopt(IP_TTL)"; return errno; }
  if (min_ttl > 0 && setsockopt(fd, IPPROTO_IP, IP_MINTTL, &min_ttl, sizeof min_ttl) < 0) { *what = "setsockopt(IP_MINTTL)"; return errno; }
  if (family != AF_INET6) return 0;
  if (ttl > 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl) < 0) { *what = "setsockopt(IPV6_UNICAST_HOPS)"; return errno; }
#ifndef IPV6_MINHOPCOUNT
#define IPV6_MINHOPCOUNT 73
#endif
  if (min_ttl > 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, &min_ttl, sizeof min_ttl) < 0) { *what = "setsockopt(IPV6_MINHOPCOUNT)"; return errno; }
  return 0;
}

static napi_value tcp_ttl_security(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return throw_type(env, "tcpTtlSecurity(fd, ttl, minTtl): three arguments");
  int32_t fd, ttl, min_ttl;
  if (arg_int(env, argv[0], &fd) < 0 || fd < 0) return throw_type(env, "tcpTtlSecurity: fd must be a non-negative integer");
  if (arg_int(env, argv[1], &ttl) < 0 || ttl < 0 || ttl > 255) return throw_type(env, "tcpTtlSecurity: ttl must be 0..255");
  if (arg_int(env, argv[2], &min_ttl) < 0 || min_ttl < 0 || min_ttl > 255) return throw_type(env, "tcpTtlSecurity: minTtl must be 0..255");
  struct sockaddr_storage self;
  socklen_t slen = sizeof self;
  if (getsockname(fd, (struct sockaddr *)&self, &slen) < 0) return throw_errno(env, errno, "tcpTtlSecurity: getsockname");
  const char *what = "";
  int err = set_ttl_security(fd, self.ss_family, ttl, min_ttl, &what);
  if (err) return throw_errno(env, err, what);
  return NULL;
}

static napi_value tcp_md5_connect(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return throw_type(env, "tcpMd5Connect(peer, port, local, key[, ttl, minTtl]): four to six arguments");
  char peer[64], local[64], key[TCP_MD5SIG_MAXKEYLEN + 2];
  int32_t port;
  if (arg_string(env, argv[0], peer, sizeof peer) < 0) return throw_type(env, "tcpMd5Connect: peer must be an IP address string");
  if (arg_int(env, argv[1], &port) < 0 || port <= 0 || port > 65535) return throw_type(env, "tcpMd5Connect: port must be 1..65535");
  napi_valuetype lt;
  napi_typeof(env, argv[2], &lt);
  int has_local = lt == napi_string;
  if (has_local && arg_string(env, argv[2], local, sizeof local) < 0) return throw_type(env, "tcpMd5Connect: local must be an IP address string or null");
  int keylen = arg_string(env, argv[3], key, sizeof key);
  if (keylen < 0) return throw_type(env, "tcpMd5Connect: key must be a string of at most 80 bytes");
  int32_t ttl = 0, min_ttl = 0;
  if (argc >= 5 && (arg_int(env, argv[4], &ttl) < 0 || ttl < 0 || ttl > 255)) return throw_type(env, "tcpMd5Connect: ttl must be 0..255");
  if (argc >= 6 && (arg_int(env, argv[5], &min_ttl) < 0 || min_ttl < 0 || min_ttl > 255)) return throw_type(env, "tcpMd5Connect: minTtl must be 0..255");
  int family = family_of_text(peer);
  struct sockaddr_storage to, from;
  socklen_t tolen, fromlen;
  if (make_addr(peer, family, port, &to, &tolen) < 0) return throw_type(env, "tcpMd5Connect: peer is not an IP address");
  if (has_local && make_addr(local, family, 0, &from, &fromlen) < 0) return throw_type(env, "tcpMd5Connect: local is not an address of the peer's family");
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "tcpMd5Connect: socket");
  int err = 0;
  const char *what = "";
  if (has_local && bind(fd, (struct sockaddr *)&from, fromlen) < 0) { err = errno; what = "tcpMd5Connect: bind"; }
  if (!err && keylen > 0 && (err = set_key(fd, family, peer, key, (size_t)keylen))) what = "tcpMd5Connect: setsockopt(TCP_MD5SIG)";
  if (!err && (ttl > 0 || min_ttl > 0)) err = set_ttl_security(fd, family, ttl, min_ttl, &what);
  if (!err && connect(fd, (struct sockaddr *)&to, tolen) < 0 && errno != EINPROGRESS) { err = errno; what = "tcpMd5Connect: connect"; }
  if (err) {
    close(fd);
    return throw_errno(env, err, what);
  }
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

/* The single argument of a call taking just an fd (tcpConnectResult, closeFd): 0 when it is a
 * non-negative integer, -1 otherwise (the caller throws with its own name). */
static int arg_only_fd(napi_env env, napi_callback_info info, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || arg_int(env, argv[0], fd) < 0 || *fd < 0)
    return -1;
  return 0;
}

static napi_value tcp_connect_result(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (arg_only_fd(env, info, &fd) < 0) return throw_type(env, "tcpConnectResult(fd): fd must be a non-negative integer");
  struct pollfd p = { .fd = fd, .events = POLLOUT };
  int n = poll(&p, 1, 0);
  if (n < 0) return throw_errno(env, errno, "tcpConnectResult: poll");
  napi_value r;
  if (n == 0) {
    napi_get_boolean(env, false, &r);
    return r;
  }
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) return throw_errno(env, errno, "tcpConnectResult: getsockopt(SO_ERROR)");
  if (soerr) return throw_errno(env, soerr, "connect");
  napi_get_boolean(env, true, &r);
  return r;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (arg_only_fd(env, info, &fd) < 0) return throw_type(env, "closeFd(fd): fd must be a non-negative integer");
  close(fd);
  return NULL;
}

void tcp_md5_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "tcpMd5Sig", NULL, tcp_md5_sig, NULL, NULL, NULL, napi_default, NULL },
    { "tcpMd5Connect", NULL, tcp_md5_connect, NULL, NULL, NULL, napi_default, NULL },
    { "tcpTtlSecurity", NULL, tcp_ttl_security, NULL, NULL, NULL, napi_default, NULL },
    { "tcpConnectResult", NULL, tcp_connect_result, NULL, NULL, NULL, napi_default, NULL },
    { "closeFd", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
