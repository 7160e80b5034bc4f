/*
 * N-API surface of the podway I/O addon.
 *
 * JS registers one frame pool (an ArrayBuffer of fixed-size slots) and its descriptor typed arrays
 * once; afterwards every call passes only small integers (port id, first descriptor, count), so a
 * batch costs one N-API call. Readiness comes from uv_poll on each port's fd: one JS callback per
 * wake-up, which (poll's recvMax) already holds the first batch, received here; JS calls recv()
 * itself only while batches come full.
 *
 * State lives in per-instance data, so each worker_thread that loads the addon has its own pool and
 * ports.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "ports.h"
#include "gso.h"
#include "rxsuper.h"
#include "gro.h"
#include "uso.h"
#include "errors.h"

void tcp_md5_init(napi_env env, napi_value exports);
void notify_init(napi_env env, napi_value exports);

/* One per port that is watched: by JS for readability (poll()), and/or by the addon itself for
 * writability while the port has a transmit backlog (see port_send). */
struct poller {
  uv_poll_t handle;
  uv_poll_t whandle;   /* a port with a transmit-only socket (tx_socket): watches that fd for
                        * writability while a backlog waits (handle then watches readability only) */
  uv_timer_t retry;    /* backs off a backlog the kernel refuses although the fd polls writable */
  struct addon *a;
  napi_env env;
  napi_ref cb;         /* JS readiness callback; NULL while JS does not poll this port */
  uint32_t recv_max;   /* > 0: on readability the addon receives up to this many frames into
                        * descriptors [0, recv_max) first and hands JS the count (poll's recvMax) */
  int id;
  int events;          /* what the handle watches now: UV_READABLE, UV_WRITABLE */
  int has_w;           /* whandle is in use */
  int wevents;         /* what whandle watches now: UV_WRITABLE or 0 */
  int retry_armed;
  unsigned backoff_ms; /* the retry delay last used; 0 after a flush that made progress */
  int closing;         /* released: callbacks already queued for it return at once */
  int open_handles;    /* handles not yet closed by libuv; the struct is freed at 0 */
  struct teardown *td; /* released by the thread's teardown (addon_teardown): told of each close */
};

/* A thread's teardown while its ports are open (a worker thread that died of an uncaught
 * exception: nothing in JS closed them): its libuv handles are closed through an async cleanup
 * hook, which the thread's exit waits for (an open handle at the loop's close aborts the whole
 * process). The hook is removed once the last of them is closed. Apart from the addon's memory,
 * which the instance data finalizer may free before the closes complete. */
struct teardown {
  napi_async_cleanup_hook_handle hook;
  int pending; /* handles whose close callback has not run yet */
};

static void teardown_closed(struct teardown *td) {
  if (--td->pending > 0) return;
  napi_remove_async_cleanup_hook(td->hook);
  free(td);
}

#define MAX_SPARES 2
struct spare;

struct addon {
  /* pool.vxlan_port is the one place of this thread's VXLAN port (setVxlanPort): set before or
   * after the first setPool (the struct is zeroed until then), carried into each new pool. */
  struct pool pool;
  napi_ref pool_refs[11];
  int pool_set;
  struct port ports[MAX_PORTS];
  struct poller *pollers[MAX_PORTS];
  uint16_t bound_port[MAX_PORTS];
  struct port test_port; /* offloadDeliverForTest's port: its cursor and counters */
  /* AF_PACKET ports prepared ahead (preparePacket): socket and ring set up on a libuv worker
   * thread, so opening a pod's port is a bind, not an RCU grace period on the forwarding thread. */
  struct spare *spares[MAX_SPARES];
  int nspares, spares_pending;
  int closes_pending; /* ports handed to a worker thread to release (see close_port) */
  /* back-pressure (see "back-pressure" below) */
  napi_env env;
  int32_t rx_cur;        /* the port whose readiness callback is running (-1: none) */
  int rx_fed;            /* that callback sent to a port with hold_high */
  uint32_t nheld;        /* ports held now, all targets */
  uint32_t hold_rr;      /* where the next release starts scanning (rotates: fairness) */
  uv_timer_t *hold_timer; /* HOLD_CHECK_MS while a hold runs (allocated on the first hold, never freed) */
  int hold_timer_on;
};

struct spare {
  struct port port;
  struct open_opts opts;
  int err;
  napi_async_work work;
  struct addon *a;
};

/* ---- errors ------------------------------------------------------------------------------- */

/* throw_errno and throw_type: errors.c (shared with tcp_md5.c). */

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      const napi_extended_error_info *ei;                                                          \
      napi_get_last_error_info(env, &ei);                                                          \
      bool pending;                                                                                \
      napi_is_exception_pending(env, &pending);                                                    \
      if (!pending) napi_throw_error(env, "EINVAL", ei && ei->error_message ? ei->error_message : #call); \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

static struct addon *get_addon(napi_env env) {
  struct addon *a = NULL;
  napi_get_instance_data(env, (void **)&a);
  return a;
}

/* ---- argument helpers ------------------------------------------------------------------- */

static int arg_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

static struct port *arg_port(napi_env env, struct addon *a, napi_value v, uint32_t *id) {
  if (arg_u32(env, v, id) < 0 || *id >= MAX_PORTS || !a->ports[*id].in_use) {
    napi_throw_error(env, "EBADF", "no such open port");
    return NULL;
  }
  return &a->ports[*id];
}

/* The one argument of a per-port call: an open port's id. Throws (returns NULL) otherwise. */
static struct port *port_of_call(napi_env env, napi_callback_info info, uint32_t *id) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, "EINVAL", "expected a port id");
    return NULL;
  }
  return arg_port(env, get_addon(env), argv[0], id);
}

static int opt_u32(napi_env env, napi_value obj, const char *key, uint32_t dflt, uint32_t *out) {
  *out = dflt;
  napi_valuetype t;
  if (napi_typeof(env, obj, &t) != napi_ok || t != napi_object) return 0;
  bool has = false;
  napi_has_named_property(env, obj, key, &has);
  if (!has) return 0;
  napi_value v;
  napi_get_named_property(env, obj, key, &v);
  napi_typeof(env, v, &t);
  if (t == napi_undefined) return 0;
  if (t == napi_boolean) {
    bool b;
    napi_get_value_bool(env, v, &b);
    *out = b;
    return 0;
  }
  return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

static int arg_string(napi_env env, napi_value v, char *buf, size_t len) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, len, &n) != napi_ok) return -1;
  return n >= len - 1 ? -2 : 0;
}

static void *typed_data(napi_env env, napi_value v, napi_typedarray_type want, size_t *count) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  napi_typedarray_type t;
  size_t len, off;
  void *data;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &t, &len, &data, &ab, &off) != napi_ok || t != want) return NULL;
  *count = len;
  return data;
}

/* ---- pool ------------------------------------------------------------------------------- */

/* setPool(pool: ArrayBuffer, slotSize, headroom, slot: Uint32Array, off: Uint16Array,
 *         len: Uint16Array, port: Uint16Array, flags: Uint16Array, addr: Uint32Array,
 *         aport: Uint16Array, txlist: Uint32Array, segs: Uint16Array, more: Uint32Array) */
static napi_value set_pool(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 13;
  napi_value argv[13];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 13) return throw_type(env, "setPool expects 13 arguments");
  void *base;
  size_t bytes;
  bool isab;
  napi_is_arraybuffer(env, argv[0], &isab);
  if (!isab) return throw_type(env, "setPool: pool must be an ArrayBuffer");
  CHECK(napi_get_arraybuffer_info(env, argv[0], &base, &bytes));
  uint32_t slot_size, headroom;
  if (arg_u32(env, argv[1], &slot_size) || arg_u32(env, argv[2], &headroom)) return throw_type(env, "setPool: bad sizes");
  if (slot_size < 256 || slot_size > 65535 || headroom >= slot_size - 64) return throw_type(env, "setPool: slotSize must be 256..65535 and headroom leave room for a frame");
  /* an IPv6 UDP port's receive writes the sender's 16-byte address right before the frame (ports.c) */
  if (headroom < 16) return throw_type(env, "setPool: headroom must be at least 16 (IPv6 UDP receive writes the sender's address there)");
  size_t n[10] = { 0 };
  struct pool p;
  memset(&p, 0, sizeof p);
  p.d_slot = typed_data(env, argv[3], napi_uint32_array, &n[0]);
  p.d_off = typed_data(env, argv[4], napi_uint16_array, &n[1]);
  p.d_len = typed_data(env, argv[5], napi_uint16_array, &n[2]);
  p.d_port = typed_data(env, argv[6], napi_uint16_array, &n[3]);
  p.d_flags = typed_data(env, argv[7], napi_uint16_array, &n[4]);
  p.d_addr = typed_data(env, argv[8], napi_uint32_array, &n[5]);
  p.d_aport = typed_data(env, argv[9], napi_uint16_array, &n[6]);
  p.txlist = typed_data(env, argv[10], napi_uint32_array, &n[7]);
  p.d_segs = typed_data(env, argv[11], napi_uint16_array, &n[8]);
  p.d_more = typed_data(env, argv[12], napi_uint32_array, &n[9]);
  if (!p.d_slot || !p.d_off || !p.d_len || !p.d_port || !p.d_flags || !p.d_addr || !p.d_aport || !p.txlist || !p.d_segs || !p.d_more)
    return throw_type(env, "setPool: descriptor arrays have the wrong types");
  for (int k = 1; k < 7; k++)
    if (n[k] != n[0]) return throw_type(env, "setPool: descriptor arrays differ in length");
  if (n[8] != n[0] || n[9] != n[0]) return throw_type(env, "setPool: descriptor arrays differ in length");
  /* where each descriptor's super-frame rest is (rxsuper.h): C's own, one entry per descriptor */
  p.d_super = calloc(n[0] ? n[0] : 1, sizeof *p.d_super);
  if (!p.d_super) return throw_errno(env, ENOMEM, "setPool");
  p.base = base;
  p.size = bytes;
  p.slot_size = slot_size;
  p.headroom = headroom;
  p.nslots = (uint32_t)(bytes / slot_size);
  p.ndesc = (uint32_t)n[0];
  p.ntxlist = (uint32_t)n[7];
  /* Keep every array alive as long as the addon may write into it. The new references are all
   * made before the old ones go: if one fails, the old pool stays the one in use, its arrays (and
   * its super-frame table) still kept, and what was made for the new one is undone. */
  napi_value keep[11] = { argv[0], argv[3], argv[4], argv[5], argv[6], argv[7], argv[8], argv[9], argv[10], argv[11], argv[12] };
  napi_ref refs[11];
  for (int k = 0; k < 11; k++) {
    if (napi_create_reference(env, keep[k], 1, &refs[k]) != napi_ok) {
      while (k-- > 0) napi_delete_reference(env, refs[k]);
      free(p.d_super);
      return throw_errno(env, EINVAL, "setPool: napi_create_reference");
    }
  }
  for (int k = 0; k < 11 && a->pool_set; k++) napi_delete_reference(env, a->pool_refs[k]);
  struct super_ref *old_super = a->pool_set ? a->pool.d_super : NULL;
  memcpy(a->pool_refs, refs, sizeof refs);
  p.vxlan_port = a->pool.vxlan_port ? a->pool.vxlan_port : USO_VXLAN_PORT; /* setVxlanPort's, kept */
  a->pool = p;
  a->pool_set = 1;
  free(old_super);
  return NULL;
}

/* setVxlanPort(port: 1..65535): the VXLAN UDP destination port this thread's C paths take for VXLAN
 * (Felix's vxlanPort; 4789 until called): the receive merge and USO delivery (rxsuper.c), the
 * transmit USO merge (uso.c) and a tunnel super-frame's cut. Called once, when the engine starts,
 * not per packet or batch; kept over a later setPool. */
static napi_value set_vxlan_port(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t port = 0;
  if (argc != 1 || arg_u32(env, argv[0], &port) || port == 0 || port > 65535) return throw_type(env, "setVxlanPort(port: 1..65535)");
  a->pool.vxlan_port = (uint16_t)port; /* a pool not set yet: setPool takes it from here */
  return NULL;
}

/* ---- open / close ----------------------------------------------------------------------- */

static int free_port_id(struct addon *a) {
  for (int i = 0; i < MAX_PORTS; i++)
    if (!a->ports[i].in_use) return i;
  return -1;
}

static napi_value ret_u32(napi_env env, uint32_t v) {
  napi_value r;
  napi_create_uint32(env, v, &r);
  return r;
}

/* Switch this thread into the network namespace at `path`; *home gets the fd to come back with.
 * Returns 0 with a JS error thrown on failure. */
static int netns_enter(napi_env env, const char *path, int *home) {
  int home_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (home_ns < 0 || target < 0) {
    int e = errno;
    if (home_ns >= 0) close(home_ns);
    if (target >= 0) close(target);
    char what[320];
    snprintf(what, sizeof what, "open network namespace %s", path);
    throw_errno(env, e, what);
    return 0;
  }
  int r = setns(target, CLONE_NEWNET);
  int e = errno;
  close(target);
  if (r < 0) {
    close(home_ns);
    char what[320];
    snprintf(what, sizeof what, "enter network namespace %s", path);
    throw_errno(env, e, what);
    return 0;
  }
  *home = home_ns;
  return 1;
}

static void netns_leave(int home_ns) {
  if (home_ns < 0) return;
  if (setns(home_ns, CLONE_NEWNET) < 0) abort(); /* cannot continue in the wrong namespace */
  close(home_ns);
}

/* Not a port kind: open_common parses the options and prepares a spare packet port. */
#define PREPARE_PACKET 100

/* A spare is used only for options it was prepared with (fanout is set at bind, so it may differ). */
static int spare_fits(const struct open_opts *s, const struct open_opts *o) {
  return o->bpf_len == 0 && s->ring == o->ring && s->ring_version == o->ring_version && s->ring_blocks == o->ring_blocks &&
         s->ring_block_size == o->ring_block_size && s->ignore_outgoing == o->ignore_outgoing &&
         s->qdisc_bypass == o->qdisc_bypass && s->vnet_hdr == o->vnet_hdr && s->gro == o->gro && s->tx_gso == o->tx_gso &&
         s->no_scatter_rx == o->no_scatter_rx && s->rx_super == o->rx_super && s->rx_merge == o->rx_merge && s->rx_super_tcp == o->rx_super_tcp && s->gso_min == o->gso_min && s->tx_socket == o->tx_socket && s->rcvbuf == o->rcvbuf && s->sndbuf == o->sndbuf;
}

static int take_spare(struct addon *a, const struct open_opts *o, struct port *p) {
  for (int i = 0; i < a->nspares; i++) {
    struct spare *s = a->spares[i];
    if (!spare_fits(&s->opts, o)) continue;
    *p = s->port;
    free(s);
    a->spares[i] = a->spares[--a->nspares];
    return 1;
  }
  return 0;
}

static void spare_execute(napi_env env, void *data) {
  (void)env;
  struct spare *s = data;
  s->err = port_prepare_packet(&s->port, &s->opts);
}

static void release_async(napi_env env, struct addon *a, struct port *p);
static void ring_job_orphan(struct port *p);

static void spare_complete(napi_env env, napi_status status, void *data) {
  struct spare *s = data;
  struct addon *a = s->a;
  a->spares_pending--;
  napi_delete_async_work(env, s->work);
  if (status == napi_ok && s->err == 0 && a->nspares < MAX_SPARES) {
    a->spares[a->nspares++] = s;
    return;
  }
  if (s->err == 0) release_async(env, a, &s->port);
  free(s);
}

/* Queue the preparation of a spare for these options; false when none is needed or possible. */
static napi_value prepare_spare(napi_env env, struct addon *a, const struct open_opts *o) {
  napi_value res;
  bool queued = false;
  if (o->ring && o->bpf_len == 0 && a->nspares + a->spares_pending < MAX_SPARES) {
    struct spare *s = calloc(1, sizeof *s);
    if (s) {
      s->opts = *o;
      s->opts.bpf = NULL;
      s->opts.fanout_group = 0;
      s->a = a;
      napi_value name;
      napi_create_string_utf8(env, "podway:preparePacket", NAPI_AUTO_LENGTH, &name);
      if (napi_create_async_work(env, NULL, name, spare_execute, spare_complete, s, &s->work) == napi_ok &&
          napi_queue_async_work(env, s->work) == napi_ok) {
        a->spares_pending++;
        queued = true;
      } else {
        free(s);
      }
    }
  }
  napi_get_boolean(env, queued, &res);
  return res;
}

static napi_value open_common(napi_env env, napi_callback_info info, int kind) {
  struct addon *a = get_addon(env);
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[64] = "";
  napi_value opts = argc > 1 ? argv[1] : NULL;
  if (kind == PORT_UDP || kind == PORT_RAW || kind == PREPARE_PACKET) opts = argc > 0 ? argv[0] : NULL;
  else if (argc < 1 || arg_string(env, argv[0], name, sizeof name) != 0)
    return throw_type(env, "open: interface name must be a string shorter than 16 bytes");
  struct open_opts o;
  memset(&o, 0, sizeof o);
  uint32_t v, hold_high = 0, hold_low = 0;
  int hold_rx = 0;
  if (opts) {
    if (opt_u32(env, opts, "multiQueue", 0, &v)) return throw_type(env, "multiQueue: boolean");
    o.multi_queue = (int)v;
    if (opt_u32(env, opts, "persist", 0, &v)) return throw_type(env, "persist: boolean");
    o.persist = (int)v;
    if (opt_u32(env, opts, "existing", 0, &v)) return throw_type(env, "existing: boolean");
    o.existing = (int)v;
    if (opt_u32(env, opts, "share", 0, &v)) return throw_type(env, "share: boolean");
    o.share = (int)v;
    if (opt_u32(env, opts, "sharedTx", 0, &v)) return throw_type(env, "sharedTx: boolean");
    o.shared_tx = (int)v;
    if (opt_u32(env, opts, "ring", 1, &v)) return throw_type(env, "ring: boolean");
    o.ring = (int)v;
    if (opt_u32(env, opts, "ringVersion", 2, &v) || (v != 2 && v != 3)) return throw_type(env, "ringVersion: 2 or 3");
    o.ring_version = (int)v;
    if (opt_u32(env, opts, "ringBlocks", 0, &v)) return throw_type(env, "ringBlocks: number");
    o.ring_blocks = v;
    if (opt_u32(env, opts, "ringBlockSize", 0, &v)) return throw_type(env, "ringBlockSize: number");
    o.ring_block_size = v;
    if (opt_u32(env, opts, "fanoutGroup", 0, &v)) return throw_type(env, "fanoutGroup: number");
    o.fanout_group = (int)v;
    if (opt_u32(env, opts, "ignoreOutgoing", 1, &v)) return throw_type(env, "ignoreOutgoing: boolean");
    o.ignore_outgoing = (int)v;
    if (opt_u32(env, opts, "qdiscBypass", 0, &v)) return throw_type(env, "qdiscBypass: boolean");
    o.qdisc_bypass = (int)v;
    if (opt_u32(env, opts, "addr", 0, &v)) return throw_type(env, "addr: IPv4 as uint32");
    o.bind_addr = v;
    if (opt_u32(env, opts, "port", 0, &v) || v > 65535) return throw_type(env, "port: 0..65535");
    o.bind_port = (uint16_t)v;
    if (opt_u32(env, opts, "proto", 0, &v)) return throw_type(env, "proto: 1..255");
    o.proto = (int)v;
    if (opt_u32(env, opts, "rcvbuf", 0, &v)) return throw_type(env, "rcvbuf: bytes");
    o.rcvbuf = (int)v;
    if (opt_u32(env, opts, "sndbuf", 0, &v)) return throw_type(env, "sndbuf: bytes");
    o.sndbuf = (int)v;
    if (opt_u32(env, opts, "reuseport", 0, &v)) return throw_type(env, "reuseport: boolean");
    o.reuseport = (int)v;
    if (opt_u32(env, opts, "ipv6", 0, &v)) return throw_type(env, "ipv6: boolean");
    o.raw6 = (int)v;
    if (opt_u32(env, opts, "vnetHdr", 1, &v)) return throw_type(env, "vnetHdr: boolean");
    o.vnet_hdr = (int)v;
    if (opt_u32(env, opts, "gro", 0, &v)) return throw_type(env, "gro: boolean");
    o.gro = (int)v;
    if (opt_u32(env, opts, "txGso", 0, &v)) return throw_type(env, "txGso: boolean");
    o.tx_gso = (int)v;
    if (opt_u32(env, opts, "rxSuper", 0, &v)) return throw_type(env, "rxSuper: boolean");
    o.rx_super = (int)v;
    if (opt_u32(env, opts, "scatterRx", 1, &v)) return throw_type(env, "scatterRx: boolean");
    o.no_scatter_rx = !v;
    if (opt_u32(env, opts, "rxMerge", 0, &v)) return throw_type(env, "rxMerge: boolean");
    o.rx_merge = (int)v;
    if (opt_u32(env, opts, "rxSuperTcp", 0, &v)) return throw_type(env, "rxSuperTcp: boolean");
    o.rx_super_tcp = (int)v;
    if (opt_u32(env, opts, "gsoMin", 0, &v) || v > 65535) return throw_type(env, "gsoMin: 0..65535 bytes");
    o.gso_min = v;
    if (opt_u32(env, opts, "txSocket", 0, &v)) return throw_type(env, "txSocket: boolean");
    o.tx_socket = (int)v;
    if (opt_u32(env, opts, "txHoldHigh", 0, &hold_high) || hold_high > TXQ_MAX_FRAMES) return throw_type(env, "txHoldHigh: 0..16384 frames");
    if (opt_u32(env, opts, "txHoldLow", hold_high / 4, &hold_low) || hold_low > hold_high) return throw_type(env, "txHoldLow: 0..txHoldHigh frames");
    if (opt_u32(env, opts, "holdRx", 0, &v)) return throw_type(env, "holdRx: boolean");
    hold_rx = (int)v;
    bool has = false;
    napi_has_named_property(env, opts, "bpf", &has);
    if (has) {
      napi_value b;
      napi_get_named_property(env, opts, "bpf", &b);
      size_t cnt = 0;
      void *d = typed_data(env, b, napi_uint8_array, &cnt);
      if (!d || cnt % 8 != 0 || cnt == 0) return throw_type(env, "bpf: Uint8Array of 8-byte sock_filter instructions");
      o.bpf = d;
      o.bpf_len = cnt;
    }
    has = false;
    napi_has_named_property(env, opts, "addr6", &has);
    if (has) {
      napi_value b;
      napi_get_named_property(env, opts, "addr6", &b);
      size_t cnt = 0;
      void *d = typed_data(env, b, napi_uint8_array, &cnt);
      if (!d || cnt != 16) return throw_type(env, "addr6: Uint8Array of the 16 bytes of an IPv6 address");
      memcpy(o.bind_addr6, d, 16);
      o.udp6 = 1;
    }
  } else {
    o.ring = 1;
    o.ignore_outgoing = 1;
    o.vnet_hdr = 1;
  }
  char netns[256] = "";
  if (opts) {
    bool has = false;
    napi_has_named_property(env, opts, "netns", &has);
    if (has) {
      napi_value ns;
      napi_get_named_property(env, opts, "netns", &ns);
      if (arg_string(env, ns, netns, sizeof netns) != 0) return throw_type(env, "netns: a path such as /run/netns/NAME");
    }
  }
  /* Spares are made in this process's own namespace, for interfaces there. */
  if (kind == PREPARE_PACKET) {
    if (netns[0]) return throw_type(env, "preparePacket: netns is not supported");
    return prepare_spare(env, a, &o);
  }
  int id = free_port_id(a);
  if (id < 0) return throw_errno(env, EMFILE, "open: too many ports");
  /* Open inside another network namespace: switch this thread there, open, switch back. A socket or
   * device fd stays in the namespace it was created in, so the process can serve many namespaces. */
  int home_ns = -1;
  if (netns[0] && !netns_enter(env, netns, &home_ns)) return NULL;
  struct port *p = &a->ports[id];
  int err;
  uint16_t bport = 0;
  char what[96];
  switch (kind) {
  case PORT_TAP:
  case PORT_TUN:
    o.netns = netns;
    err = port_open_tuntap(p, name, kind == PORT_TAP, &o);
    if (o.shared_tx)
      snprintf(what, sizeof what, "%s %s: share the fd its owning thread opened", kind == PORT_TAP ? "tap" : "tun", name);
    else
      snprintf(what, sizeof what, "open %s %s", kind == PORT_TAP ? "tap" : "tun", name);
    break;
  case PORT_PACKET:
    if (!netns[0] && take_spare(a, &o, p)) err = port_bind_packet(p, name, &o);
    else err = port_open_packet(p, name, &o);
    snprintf(what, sizeof what, "open packet socket on %s", name);
    break;
  case PORT_UDP:
    err = port_open_udp(p, &o, &bport);
    if (o.udp6) {
      char a6[INET6_ADDRSTRLEN] = "";
      inet_ntop(AF_INET6, o.bind_addr6, a6, sizeof a6);
      snprintf(what, sizeof what, "open udp [%s]:%u", a6, o.bind_port);
    } else {
      snprintf(what, sizeof what, "open udp %u.%u.%u.%u:%u", o.bind_addr >> 24, (o.bind_addr >> 16) & 255,
               (o.bind_addr >> 8) & 255, o.bind_addr & 255, o.bind_port);
    }
    break;
  default:
    err = port_open_raw(p, &o);
    if (o.raw6) snprintf(what, sizeof what, "open raw ipv6 socket (IPPROTO_RAW)");
    else snprintf(what, sizeof what, "open raw ipv4 socket for protocol %d", o.proto);
    break;
  }
  netns_leave(home_ns);
  if (err) return throw_errno(env, err, what);
  a->bound_port[id] = bport;
  p->hold_high = hold_high;
  p->hold_low = hold_low;
  p->hold_rx = hold_rx;
  return ret_u32(env, (uint32_t)id);
}

static napi_value open_tap(napi_env env, napi_callback_info info) { return open_common(env, info, PORT_TAP); }
static napi_value open_tun(napi_env env, napi_callback_info info) { return open_common(env, info, PORT_TUN); }
static napi_value open_packet(napi_env env, napi_callback_info info) { return open_common(env, info, PORT_PACKET); }
static napi_value open_udp(napi_env env, napi_callback_info info) { return open_common(env, info, PORT_UDP); }
static napi_value open_raw(napi_env env, napi_callback_info info) { return open_common(env, info, PORT_RAW); }
static napi_value prepare_packet(napi_env env, napi_callback_info info) { return open_common(env, info, PREPARE_PACKET); }

/* ---- pollers: JS readability and the addon's own backlog flushing -------------------------
 *
 * A port's backlog (frames the kernel refused, see port_send) is flushed from here: the handle
 * watches UV_WRITABLE as well while the backlog is non-empty, and on_poll sends from it in C. JS's
 * callback runs only for readability; a port JS never polls (a transmit-only raw socket) gets a
 * writable-only poller while it has a backlog. If the fd polls writable but the kernel still refuses
 * (ENOBUFS: a full qdisc or device queue does not block the socket), POLLOUT would fire again at
 * once, so the flush then waits on a timer instead (1 ms, doubling to 64 ms while nothing moves). */

#define RETRY_MAX_MS 64

static void on_poll(uv_poll_t *h, int status, int events);
static void on_retry(uv_timer_t *t);

static void poller_handle_closed(uv_handle_t *h) {
  struct poller *pl = h->data;
  struct teardown *td = pl->td;
  if (--pl->open_handles == 0) free(pl);
  if (td) teardown_closed(td);
}

static void poller_drop_js(napi_env env, struct poller *pl) {
  if (!pl->cb) return;
  napi_delete_reference(env, pl->cb);
  pl->cb = NULL;
}

/* Stop and detach a port's poller. uv_close is asynchronous: the memory is freed when libuv has
 * closed both handles, so an on_poll running for it right now (JS closed the port from its own
 * callback) still reads valid memory and sees `closing`. */
static void poller_release(napi_env env, struct addon *a, uint32_t id) {
  struct poller *pl = a->pollers[id];
  if (!pl) return;
  a->pollers[id] = NULL;
  pl->closing = 1;
  poller_drop_js(env, pl);
  uv_poll_stop(&pl->handle);
  uv_timer_stop(&pl->retry);
  uv_close((uv_handle_t *)&pl->handle, poller_handle_closed);
  uv_close((uv_handle_t *)&pl->retry, poller_handle_closed);
  if (pl->has_w) {
    uv_poll_stop(&pl->whandle);
    uv_close((uv_handle_t *)&pl->whandle, poller_handle_closed);
  }
}

/* The port's poller, made (watching nothing yet) if it has none. Returns NULL with *err (libuv). */
static struct poller *poller_get(napi_env env, struct addon *a, uint32_t id, int *err) {
  if (a->pollers[id]) return a->pollers[id];
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    *err = UV_EINVAL;
    return NULL;
  }
  struct poller *pl = calloc(1, sizeof *pl);
  if (!pl) {
    *err = UV_ENOMEM;
    return NULL;
  }
  int r = uv_poll_init(loop, &pl->handle, a->ports[id].fd);
  if (r) {
    free(pl);
    *err = r;
    return NULL;
  }
  if (a->ports[id].has_txfd) {
    r = uv_poll_init(loop, &pl->whandle, a->ports[id].txfd);
    if (r) {
      /* handle is initialized: libuv must close it before the memory goes */
      pl->open_handles = 1;
      pl->closing = 1;
      uv_close((uv_handle_t *)&pl->handle, poller_handle_closed);
      *err = r;
      return NULL;
    }
    pl->whandle.data = pl;
    pl->has_w = 1;
  }
  uv_timer_init(loop, &pl->retry);
  pl->handle.data = pl;
  pl->retry.data = pl;
  pl->open_handles = 2 + pl->has_w;
  pl->a = a;
  pl->env = env;
  pl->id = (int)id;
  a->pollers[id] = pl;
  return pl;
}

/* Make the handle watch what is wanted now: readable while JS polls, writable while a backlog waits
 * and no retry timer is armed. A poller wanted for nothing is released. Returns 0 or a libuv error. */
static int poller_sync(napi_env env, struct addon *a, uint32_t id) {
  struct poller *pl = a->pollers[id];
  if (!pl) return 0;
  int backlog = port_backlog(&a->ports[id]) > 0;
  if (!backlog && pl->retry_armed) {
    uv_timer_stop(&pl->retry);
    pl->retry_armed = 0;
  }
  if (!backlog) pl->backoff_ms = 0;
  /* a port whose ring is being set up again has nothing to read: its socket would poll readable
   * with the frames queued meanwhile (discarded when the ring is back) */
  int reading = pl->cb && !a->ports[id].rearming && !a->ports[id].held_on;
  int writing = backlog && !pl->retry_armed ? UV_WRITABLE : 0;
  if (!reading && !writing && !pl->retry_armed && !pl->cb) {
    poller_release(env, a, id);
    return 0;
  }
  if (pl->has_w && writing != pl->wevents) {
    int r = writing ? uv_poll_start(&pl->whandle, writing, on_poll) : uv_poll_stop(&pl->whandle);
    if (r) return r;
    pl->wevents = writing;
  }
  int want = (reading ? UV_READABLE : 0) | (pl->has_w ? 0 : writing);
  if (want == pl->events) return 0;
  int r = want ? uv_poll_start(&pl->handle, want, on_poll) : uv_poll_stop(&pl->handle);
  if (r == 0) pl->events = want;
  return r;
}

/* After port_send left frames in the backlog: make sure something will flush it. If no handle can
 * be had, the backlog is discarded and counted (tx_errors) rather than left waiting forever. */
static void backlog_watch(napi_env env, struct addon *a, uint32_t id) {
  int err = 0;
  struct poller *pl = poller_get(env, a, id, &err);
  if (pl) err = poller_sync(env, a, id);
  if (err) {
    port_drop_backlog(&a->ports[id], -err);
    poller_sync(env, a, id);
  }
}

static void arm_retry(struct poller *pl) {
  pl->backoff_ms = pl->backoff_ms ? pl->backoff_ms * 2 : 1;
  if (pl->backoff_ms > RETRY_MAX_MS) pl->backoff_ms = RETRY_MAX_MS;
  pl->retry_armed = 1;
  uv_timer_start(&pl->retry, on_retry, pl->backoff_ms, 0);
}

static void hold_release_check(struct addon *a, uint32_t tid);

/* Send from the backlog; when the kernel took nothing although we were told there is room, back
 * off on the timer. Then watch whatever is wanted now (this may release the poller), and resume
 * the ports held back on this one once its backlog is down to its low-water mark. */
static void flush_backlog(struct poller *pl) {
  struct addon *a = pl->a;
  uint32_t id = (uint32_t)pl->id;
  struct port *p = &a->ports[id];
  uint32_t moved = port_flush(p);
  if (moved) pl->backoff_ms = 0;
  if (!moved && port_backlog(p)) arm_retry(pl);
  if (poller_sync(pl->env, a, id)) {
    port_drop_backlog(p, EIO);
    poller_sync(pl->env, a, id);
  }
  hold_release_check(a, id);
}

static void on_retry(uv_timer_t *t) {
  struct poller *pl = t->data;
  if (pl->closing) return;
  pl->retry_armed = 0;
  flush_backlog(pl);
}

/* ---- back-pressure: holding back the ports that feed a long backlog ----------------------
 *
 * A port opened with txHoldHigh (the engine's underlay) is a target: while its backlog holds more
 * than hold_high frames, the ports that feed it are not read (held back), until it is down to
 * hold_low. A port opened with holdRx (a pod's, the host's TUN) is a source: a readiness callback
 * of it that sent to a target marks it as feeding that target (feeds; a callback that sent to
 * none clears it). Decided per batch, never per frame: before a source is read (the addon's first
 * receive of a wake-up, and each recv JS makes while it drains the port), hold_check looks at the
 * backlog of the target it feeds; over hold_high, the source is held: its handle stops watching
 * readability (the kernel keeps its frames in the port's ring or device queue, and drops and
 * counts what does not fit: rxKernelDrops for a ring), and recv returns 0. Other ports go on: the
 * target's own receive side, sources that fed no target in their last batch.
 *
 * Release: when a flush (or a send) leaves the target's backlog at hold_low or less, every port
 * held on it is watched again, in an order that rotates from one release to the next (a first
 * woken source's batch can take the backlog over hold_high again, holding the others before they
 * read: rotating who goes first keeps that fair between sources). A target whose backlog does not
 * move would hold its feeders for good (a dead link: the backlog drains only as fast as the
 * tx_rejected rule drops its head, or not at all while the socket stays full): a timer flushes
 * each target every HOLD_CHECK_MS while any port is held (a full socket polls writable only once
 * half its buffer is free, so the flush there finds room sooner), and a target that sent no frame
 * for HOLD_STALL_MS gives its holds up (tx_hold_stalls) and holds nobody until a frame leaves it
 * again; its feeders'
 * frames then meet the backlog as before (queued while there is room, else tx_full). Closing a
 * source ends its hold; closing a target releases its feeders. */

static inline uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hold_timer_fire(uv_timer_t *t);

/* Source `id` is read again (its hold ended): counted, and its handle watches readability. */
static void hold_end(struct addon *a, uint32_t id, uint64_t now) {
  struct port *s = &a->ports[id];
  if (!s->held_on) return;
  struct port *t = &a->ports[s->held_on - 1];
  if (t->nheld) t->nheld--;
  if (a->nheld) a->nheld--;
  s->st.rx_held_ns += now - s->held_t0;
  s->held_on = 0;
  if (a->pollers[id]) poller_sync(a->env, a, id);
}

/* Release every port held on target `tid`, starting the scan where the last release stopped. */
static void hold_release_all(struct addon *a, uint32_t tid) {
  uint64_t now = mono_ns();
  uint32_t first = MAX_PORTS;
  for (uint32_t j = 0; j < MAX_PORTS && a->ports[tid].nheld; j++) {
    uint32_t k = (a->hold_rr + j) % MAX_PORTS;
    if (a->ports[k].held_on != tid + 1) continue;
    if (first == MAX_PORTS) first = k;
    hold_end(a, k, now);
  }
  a->ports[tid].nheld = 0;
  if (first != MAX_PORTS) a->hold_rr = (first + 1) % MAX_PORTS;
}

static void hold_release_check(struct addon *a, uint32_t tid) {
  struct port *t = &a->ports[tid];
  if (t->nheld && port_backlog(t) <= t->hold_low) hold_release_all(a, tid);
}

static void hold_timer_arm(struct addon *a) {
  if (a->hold_timer_on) return;
  if (!a->hold_timer) {
    uv_loop_t *loop;
    if (napi_get_uv_event_loop(a->env, &loop) != napi_ok) return;
    uv_timer_t *t = malloc(sizeof *t);
    if (!t) return;
    uv_timer_init(loop, t);
    uv_unref((uv_handle_t *)t);
    t->data = a;
    a->hold_timer = t;
  }
  if (uv_timer_start(a->hold_timer, hold_timer_fire, HOLD_CHECK_MS, HOLD_CHECK_MS) == 0) a->hold_timer_on = 1;
}

/* Every HOLD_CHECK_MS while a hold runs: each target's backlog is flushed, and one whose frames
 * stopped leaving gives its holds up. */
static void hold_timer_fire(uv_timer_t *tm) {
  struct addon *a = tm->data;
  if (!a) return;
  uint64_t now = mono_ns();
  for (uint32_t id = 0; id < MAX_PORTS && a->nheld; id++) {
    struct port *t = &a->ports[id];
    if (!t->nheld) continue;
    if (!t->in_use || port_backlog(t) <= t->hold_low) {
      hold_release_all(a, id);
      continue;
    }
    /* Try the backlog now: a full socket buffer polls writable only once half of it is free (the
     * kernel's write-space rule), seconds at a slow rate with a deep qdisc, while it takes frames
     * as soon as any room is free; what it takes here is the progress looked for below (and may
     * bring the backlog down to the low-water mark: flush_backlog releases the holds then). */
    struct poller *pl = a->pollers[id];
    if (pl && !pl->closing) flush_backlog(pl);
    if (!t->nheld) continue;
    if (t->st.tx_packets != t->hold_tx_seen) {
      t->hold_tx_seen = t->st.tx_packets;
      t->hold_seen_at = now;
    } else if (now - t->hold_seen_at >= (uint64_t)HOLD_STALL_MS * 1000000u) {
      t->hold_stalled = 1;
      t->st.tx_hold_stalls++;
      hold_release_all(a, id);
    }
  }
  if (!a->nheld) {
    uv_timer_stop(tm);
    a->hold_timer_on = 0;
  }
}

/* Before source `id` is read: 1 when it must not be (held now, or from now on). */
static int hold_check(struct addon *a, uint32_t id) {
  struct port *s = &a->ports[id];
  if (s->held_on) return 1;
  if (!s->feeds) return 0;
  uint32_t tid = s->feeds - 1;
  struct port *t = &a->ports[tid];
  if (!t->in_use || !t->hold_high) {
    s->feeds = 0;
    return 0;
  }
  if (port_backlog(t) <= t->hold_high) return 0;
  if (t->hold_stalled) {
    if (t->st.tx_packets == t->hold_tx_seen) return 0; /* still nothing leaves it */
    t->hold_stalled = 0;
  }
  uint64_t now = mono_ns();
  s->held_on = tid + 1;
  s->held_t0 = now;
  s->st.rx_held++;
  if (t->nheld++ == 0) {
    t->hold_tx_seen = t->st.tx_packets;
    t->hold_seen_at = now;
  }
  a->nheld++;
  hold_timer_arm(a);
  if (a->pollers[id]) poller_sync(a->env, a, id);
  return 1;
}

/* A send on target `tid` made by the callback of the port being read: that port feeds it. */
static inline void hold_note_send(struct addon *a, uint32_t tid) {
  int32_t src = a->rx_cur;
  if (src < 0 || (uint32_t)src == tid || !a->ports[src].hold_rx) return;
  a->ports[src].feeds = tid + 1;
  a->rx_fed = 1;
}

/* Port `id` is closing: end its hold, and release the ports held on it. */
static void hold_forget(struct addon *a, uint32_t id) {
  struct port *p = &a->ports[id];
  if (p->held_on) hold_end(a, id, mono_ns());
  if (p->nheld) hold_release_all(a, id);
  p->feeds = 0;
}

/* ---- close: AF_PACKET ports are released on a libuv worker thread ---------------------------
 *
 * Releasing an AF_PACKET socket waits in the kernel for an RCU grace period (packet_release calls
 * synchronize_net; ~30 ms on this VM under load), which on the forwarding thread stalls every other
 * pod. So close() takes the port out of the table at once (poller closed, which also removes the fd
 * from libuv's epoll set; id free for reuse; recv/send/stats on the id throw EBADF; the backlog is
 * dropped with it; a drop-all filter stops the kernel filling its ring) and hands the port's own
 * resources, moved into a heap copy, to a worker thread (napi async work: uv_queue_work), which
 * closes the fd, unmaps the ring and frees the buffers. The copy holds no pointer into the pool or
 * the table, so a new port in the same slot, a new pool, or the addon's teardown cannot race it.
 *
 * Exit with closes pending: the queued work keeps the event loop alive, so a normal exit (and a
 * worker_thread's teardown, which drains queued work before the addon is finalized) waits for the
 * fds to close; process.exit() does not wait, and the kernel closes them with the process. */
struct closing {
  struct port port;
  napi_async_work work;
  struct addon *a;
  int done; /* execute ran (set on the worker, read in complete after libuv's hand-back) */
};

static void closing_execute(napi_env env, void *data) {
  (void)env;
  struct closing *c = data;
  port_close(&c->port);
  c->done = 1;
}

static void closing_complete(napi_env env, napi_status status, void *data) {
  (void)status;
  struct closing *c = data;
  if (!c->done) port_close(&c->port); /* cancelled before it ran: release here */
  c->a->closes_pending--;
  napi_delete_async_work(env, c->work);
  free(c);
}

/* Move p's resources to a worker thread to release; p is left closed and empty either way (if no
 * work can be queued, it is released here, synchronously). */
static void release_async(napi_env env, struct addon *a, struct port *p) {
  struct closing *c = calloc(1, sizeof *c);
  if (c) {
    c->port = *p;
    c->a = a;
    napi_value name;
    napi_create_string_utf8(env, "podway:closePort", NAPI_AUTO_LENGTH, &name);
    if (napi_create_async_work(env, NULL, name, closing_execute, closing_complete, c, &c->work) == napi_ok) {
      if (napi_queue_async_work(env, c->work) == napi_ok) {
        a->closes_pending++;
        memset(p, 0, sizeof *p);
        p->fd = -1;
        return;
      }
      napi_delete_async_work(env, c->work);
    }
    free(c);
  }
  port_close(p);
}

static napi_value close_port(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 1;
  napi_value argv[1];
  uint32_t id;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (arg_u32(env, argv[0], &id) < 0 || id >= MAX_PORTS) return throw_type(env, "close: port id");
  struct port *p = &a->ports[id];
  if (!p->in_use) return NULL; /* closing twice is harmless */
  hold_forget(a, id);
  poller_release(env, a, id);
  a->bound_port[id] = 0;
  if (p->kind != PORT_PACKET) {
    /* TAP/TUN (a non-persistent device goes with its fd, and callers expect it gone), UDP, raw:
     * closed here, as before. */
    port_close(p); /* frees the backlog too */
    return NULL;
  }
  port_drop_backlog(p, 0); /* its frames go with the port, never flushed later */
  port_stop_rx(p);
  if (p->rearm_job) ring_job_orphan(p);
  release_async(env, a, p);
  return NULL;
}

/* pendingCloses() -> ports whose release on a worker thread has not completed yet. */
static napi_value pending_closes(napi_env env, napi_callback_info info) {
  (void)info;
  return ret_u32(env, (uint32_t)get_addon(env)->closes_pending);
}

/* ---- batch moves ------------------------------------------------------------------------ */

/* recv(port, first, max) -> frames received into descriptors [first, first+n)
 * send(port, first, count) -> frames accepted (sent now, or queued in the port's backlog when the
 *   kernel is full; never blocks); sends descriptors txlist[first .. first+count) */
static napi_value batch_move(napi_env env, napi_callback_info info, int is_send) {
  struct addon *a = get_addon(env);
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t id, first, n;
  struct port *p = arg_port(env, a, argv[0], &id);
  if (!p) return NULL;
  if (!a->pool_set) return throw_type(env, "setPool first");
  if (arg_u32(env, argv[1], &first) || arg_u32(env, argv[2], &n)) return throw_type(env, is_send ? "send(port, first, count)" : "recv(port, first, max)");
  /* a source held back (or to be, its target's backlog over the high-water mark) reads nothing */
  if (!is_send && p->hold_rx && hold_check(a, id)) return ret_u32(env, 0);
  int r = is_send ? port_send(p, &a->pool, first, n) : port_recv(p, (uint16_t)id, &a->pool, first, n);
  if (r < 0) return throw_errno(env, r, p->name[0] ? p->name : (is_send ? "send" : "recv"));
  if (is_send && port_backlog(p)) backlog_watch(env, a, id);
  if (is_send && p->hold_high) {
    if (n) hold_note_send(a, id);
    if (p->nheld) hold_release_check(a, id);
  }
  return ret_u32(env, (uint32_t)r);
}

static napi_value recv_batch(napi_env env, napi_callback_info info) { return batch_move(env, info, 0); }
static napi_value send_batch(napi_env env, napi_callback_info info) { return batch_move(env, info, 1); }

/* ---- info and counters ------------------------------------------------------------------ */

static void set_num(napi_env env, napi_value obj, const char *k, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, obj, k, x);
}

static napi_value port_stats(napi_env env, napi_callback_info info) {
  uint32_t id;
  struct port *p = port_of_call(env, info, &id);
  if (!p) return NULL;
  uint64_t kd = 0;
  port_kernel_drops(p, &kd);
  napi_value o;
  napi_create_object(env, &o);
  set_num(env, o, "rxPackets", (double)p->st.rx_packets);
  set_num(env, o, "rxBytes", (double)p->st.rx_bytes);
  set_num(env, o, "rxTruncated", (double)p->st.rx_truncated);
  set_num(env, o, "rxKernelDrops", (double)p->st.rx_kernel_drops);
  set_num(env, o, "rxCalls", (double)p->st.rx_calls);
  set_num(env, o, "txPackets", (double)p->st.tx_packets);
  set_num(env, o, "txBytes", (double)p->st.tx_bytes);
  set_num(env, o, "txRetries", (double)p->st.tx_retries);
  set_num(env, o, "txQueued", (double)p->st.tx_queued);
  set_num(env, o, "txBacklog", (double)port_backlog(p));
  set_num(env, o, "txBacklogGrown", (double)p->st.tx_backlog_grown);
  set_num(env, o, "txDroppedFull", (double)p->st.tx_dropped_full);
  set_num(env, o, "txErrors", (double)p->st.tx_errors);
  set_num(env, o, "txRejected", (double)p->st.tx_rejected);
  set_num(env, o, "txTooBig", (double)p->st.tx_too_big);
  set_num(env, o, "txHeadDropped", (double)p->st.tx_head_dropped);
  set_num(env, o, "txBacklogDropped", (double)p->st.tx_backlog_dropped);
  set_num(env, o, "rxReadFailed", (double)p->st.rx_read_failed);
  set_num(env, o, "txTooBigLen", (double)p->tx_toobig_len);
  set_num(env, o, "txCalls", (double)p->st.tx_calls);
  if (p->hold_rx) {
    set_num(env, o, "rxHeld", (double)p->st.rx_held);
    set_num(env, o, "rxHeldNs", (double)(p->st.rx_held_ns + (p->held_on ? mono_ns() - p->held_t0 : 0)));
    if (p->held_on) set_num(env, o, "rxHeldNow", 1);
  }
  if (p->hold_high) {
    set_num(env, o, "txHoldStalls", (double)p->st.tx_hold_stalls);
    if (p->nheld) set_num(env, o, "txHolding", (double)p->nheld);
  }
  set_num(env, o, "rxWaitNs", (double)p->st.rx_wait_ns);
  set_num(env, o, "rxWaitSamples", (double)p->st.rx_wait_samples);
  set_num(env, o, "jsNs", (double)p->st.js_ns);
  set_num(env, o, "jsSamples", (double)p->st.js_samples);
  set_num(env, o, "txSyscallNs", (double)p->st.tx_ns);
  set_num(env, o, "txSyscalls", (double)p->st.tx_syscalls);
  if (p->kind == PORT_PACKET) {
    set_num(env, o, "rxGsoFrames", (double)p->st.rx_gso_frames);
    set_num(env, o, "rxGsoSegments", (double)p->st.rx_gso_segments);
    set_num(env, o, "rxGsoBad", (double)p->st.rx_gso_bad);
    set_num(env, o, "rxGsoDropped", (double)p->st.rx_gso_dropped);
    set_num(env, o, "rxBadCsum", (double)p->st.rx_bad_csum);
    set_num(env, o, "rxShort", (double)p->st.rx_short);
    set_num(env, o, "rxCsumCompleted", (double)p->st.rx_csum_completed);
    set_num(env, o, "rxScatterFrames", (double)p->st.rx_scatter_frames);
    set_num(env, o, "rxRingStalls", (double)p->st.rx_ring_stalls);
    set_num(env, o, "rxVlanTagged", (double)p->st.rx_vlan_tagged);
    if (p->rearming && !p->ring_err) set_num(env, o, "rxRingRearming", 1);
    set_num(env, o, "txGroFrames", (double)p->st.tx_gro_frames);
    set_num(env, o, "txGroSegments", (double)p->st.tx_gro_segments);
    set_num(env, o, "txGsoFrames", (double)p->st.tx_gso_frames);
    set_num(env, o, "txGsoSegments", (double)p->st.tx_gso_segments);
    set_num(env, o, "txGsoRejected", (double)p->st.tx_gso_rejected);
    set_num(env, o, "rxSuperFrames", (double)p->st.rx_super_frames);
    set_num(env, o, "rxSuperSegments", (double)p->st.rx_super_segments);
    set_num(env, o, "txSuperUso", (double)p->st.tx_super_uso);
    set_num(env, o, "txSuperFrames", (double)p->st.tx_super_frames);
    set_num(env, o, "rxMergeFrames", (double)p->st.rx_merge_frames);
    set_num(env, o, "rxMergeSegments", (double)p->st.rx_merge_segments);
  }
  /* any port can get a super-frame to send (cut for it, or not sendable as one) */
  set_num(env, o, "txSuperCut", (double)p->st.tx_super_cut);
  set_num(env, o, "txSuperLost", (double)p->st.tx_super_lost);
  if (p->last_errno) {
    napi_value s;
    const char *nm = strerrorname_np(p->last_errno);
    napi_create_string_utf8(env, nm ? nm : "E?", NAPI_AUTO_LENGTH, &s);
    napi_set_named_property(env, o, "lastError", s);
  }
  return o;
}

/* ---- wedged TPACKET_V2 rings: set up again on a libuv worker thread ----------------------
 *
 * checkRing(port, checks = 2) -> true when the port's TPACKET_V2 ring was found wedged by the
 * kernel (`checks` calls in a row, port_ring_wedged) and is being set up again. Called off the hot
 * path, on a timer. Setting a ring up again waits for two RCU grace periods (20-30 ms here), so,
 * like a close, it runs on a worker thread: the port keeps its id, fd and poller, stops being
 * watched for reading and receives nothing (recv returns 0) until the work's completion puts the
 * new ring in place, back on this thread, and watches it again. A close meanwhile leaves the fd
 * and the new ring to the work, which releases them when it completes (ring_job_orphan). Throws
 * when a previous attempt failed (the port then receives nothing: close it). */
struct ring_job {
  struct ring_rearm r;
  napi_async_work work;
  struct addon *a;
  uint32_t id;
  int orphaned; /* the port was closed meanwhile: r.fd and r.ring are the job's to release */
  int done;     /* execute ran (set on the worker, read in complete after libuv's hand-back) */
};

static void ring_job_execute(napi_env env, void *data) {
  (void)env;
  struct ring_job *j = data;
  ring_rearm_run(&j->r);
  j->done = 1;
}

static void ring_job_complete(napi_env env, napi_status status, void *data) {
  (void)status;
  struct ring_job *j = data;
  struct addon *a = j->a;
  if (!j->done) ring_rearm_run(&j->r); /* cancelled before it ran: do it here */
  if (j->orphaned) {
    struct port gone;
    memset(&gone, 0, sizeof gone);
    gone.kind = PORT_PACKET;
    gone.in_use = 1;
    gone.fd = j->r.fd;
    gone.ring = j->r.ring;
    gone.ring_len = j->r.ring_len;
    release_async(env, a, &gone);
  } else {
    struct port *p = &a->ports[j->id];
    p->rearm_job = NULL;
    port_ring_attach(p, &j->r);
    poller_sync(env, a, j->id); /* watched for reading again (or not: ring_err) */
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

/* close_port on a port whose ring is being set up: its fd and ring become the job's. */
static void ring_job_orphan(struct port *p) {
  struct ring_job *j = p->rearm_job;
  j->orphaned = 1;
  p->rearm_job = NULL;
  p->fd = -1;
  p->ring = NULL;
}

/* check_ring's work for one port: 1 when its ring was found wedged and is being set up again, 0
 * when not, -errno when setting it up again failed (now or before: ring_err). */
#define RING_ERR(p) ((p)->ring_err < 0 ? (p)->ring_err : -(p)->ring_err) /* (ports.c stores -errno) */
static int ring_check_one(napi_env env, struct addon *a, uint32_t id, uint32_t checks) {
  struct port *p = &a->ports[id];
  if (p->ring_err) return RING_ERR(p);
  if (port_ring_wedged(p, checks) != 1) return 0;
  struct ring_job *j = calloc(1, sizeof *j);
  if (j) {
    j->a = a;
    j->id = id;
    napi_value name;
    napi_create_string_utf8(env, "podway:rearmRing", NAPI_AUTO_LENGTH, &name);
    if (napi_create_async_work(env, NULL, name, ring_job_execute, ring_job_complete, j, &j->work) == napi_ok) {
      port_ring_detach(p, &j->r);
      if (napi_queue_async_work(env, j->work) == napi_ok) {
        p->rearm_job = j;
        poller_sync(env, a, id);
        return 1;
      }
      napi_delete_async_work(env, j->work);
      /* no worker: here, on this thread */
      ring_rearm_run(&j->r);
      port_ring_attach(p, &j->r);
      free(j);
      return p->ring_err ? RING_ERR(p) : 1;
    }
    free(j);
  }
  struct ring_rearm r;
  port_ring_detach(p, &r);
  ring_rearm_run(&r);
  port_ring_attach(p, &r);
  return p->ring_err ? RING_ERR(p) : 1;
}

static napi_value check_ring(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, "EINVAL", "expected a port id");
    return NULL;
  }
  uint32_t id, checks = 2;
  struct port *p = arg_port(env, a, argv[0], &id);
  if (!p) return NULL;
  if (argc > 1 && arg_u32(env, argv[1], &checks) < 0) return throw_type(env, "checkRing(port, checks)");
  int r = ring_check_one(env, a, id, checks);
  if (r < 0) return throw_errno(env, r, "checkRing: setting the ring up again");
  napi_value yes;
  napi_get_boolean(env, r == 1, &yes);
  return yes;
}

/* checkRings(checks, out: Uint32Array) -> n: checkRing for every open AF_PACKET port in one call
 * (the engine's ring timer: a getsockopt per port here, no JS per port). out[0..n) gets the ids of
 * the ports whose ring was found wedged and is being set up again, and, with RING_FAILED (bit 31)
 * set, of those whose ring could not be set up again (checkRing on that port throws the error).
 * Stops when out is full (the rest are looked at on the next call). */
#define RING_FAILED 0x80000000u
static napi_value check_rings(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t checks;
  size_t cap = 0;
  uint32_t *out = argc >= 2 ? typed_data(env, argv[1], napi_uint32_array, &cap) : NULL;
  if (argc < 2 || arg_u32(env, argv[0], &checks) < 0 || !out) return throw_type(env, "checkRings(checks, out: Uint32Array)");
  uint32_t n = 0;
  for (uint32_t id = 0; id < MAX_PORTS && n < cap; id++) {
    struct port *p = &a->ports[id];
    if (!p->in_use || p->kind != PORT_PACKET) continue;
    int r = ring_check_one(env, a, id, checks);
    if (r == 1) out[n++] = id;
    else if (r < 0) out[n++] = id | RING_FAILED;
  }
  return ret_u32(env, n);
}

/* txRejectedAll(out: Float64Array): out[id] = the port's tx_rejected (stats().txRejected) for every
 * open port id < out.length (others untouched): the engine's per-tick look for refusals, one call
 * instead of a stats() object per port. */
static napi_value tx_rejected_all(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t cap = 0;
  double *out = argc >= 1 ? typed_data(env, argv[0], napi_float64_array, &cap) : NULL;
  if (!out) return throw_type(env, "txRejectedAll(out: Float64Array)");
  for (uint32_t id = 0; id < MAX_PORTS && id < cap; id++)
    if (a->ports[id].in_use) out[id] = (double)a->ports[id].st.tx_rejected;
  return NULL;
}

/* nativeDropsAll(out: Float64Array) -> stride: for every open port id with (id + 1) * stride <=
 * out.length, out[id * stride + k] = its count of the k-th drop the addon makes as it reads or
 * sends (no descriptor reaches JS), in this order, the names stats() gives them: rxVlanTagged,
 * rxGsoBad, rxGsoDropped, rxBadCsum, rxShort, rxReadFailed, txBacklogDropped (others untouched).
 * The engine's once-a-second look for them (checkNativeDrops), one call instead of a stats()
 * object and a PACKET_STATISTICS getsockopt per port: counters only, read as they are (the
 * kernel's drops are read by stats() as before). */
#define NATIVE_DROPS_STRIDE 7
static napi_value native_drops_all(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t cap = 0;
  double *out = argc >= 1 ? typed_data(env, argv[0], napi_float64_array, &cap) : NULL;
  if (!out) return throw_type(env, "nativeDropsAll(out: Float64Array)");
  for (uint32_t id = 0; id < MAX_PORTS && ((size_t)id + 1) * NATIVE_DROPS_STRIDE <= cap; id++) {
    const struct port *p = &a->ports[id];
    if (!p->in_use) continue;
    double *o = out + (size_t)id * NATIVE_DROPS_STRIDE;
    o[0] = (double)p->st.rx_vlan_tagged;
    o[1] = (double)p->st.rx_gso_bad;
    o[2] = (double)p->st.rx_gso_dropped;
    o[3] = (double)p->st.rx_bad_csum;
    o[4] = (double)p->st.rx_short;
    o[5] = (double)p->st.rx_read_failed;
    o[6] = (double)p->st.tx_backlog_dropped;
  }
  return ret_u32(env, NATIVE_DROPS_STRIDE);
}

/* The MTU of the device port `p` is on: an AF_PACKET port's interface, or a TAP/TUN port's device
 * in the namespace it was opened in (through its ctlfd); 0 when unknown (the device gone). Two
 * ioctls: the ifindex's name, that name's MTU. -1: not a port on a device. */
static int64_t port_link_mtu(const struct port *p) {
  int fd = p->kind == PORT_PACKET ? p->fd : (p->kind == PORT_TAP || p->kind == PORT_TUN) && p->has_ctlfd ? p->ctlfd : -1;
  if (!p->in_use || fd < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_ifindex = p->ifindex;
  if (p->ifindex <= 0 || ioctl(fd, SIOCGIFNAME, &ifr) < 0 || ioctl(fd, SIOCGIFMTU, &ifr) < 0) return 0;
  return ifr.ifr_mtu > 0 ? ifr.ifr_mtu : 0;
}

/* linkMtus(out: Uint32Array): out[id] = port_link_mtu for every port on a device with id <
 * out.length (others untouched), instead of a sysfs file read from JS each. */
static napi_value link_mtus(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t cap = 0;
  uint32_t *out = argc >= 1 ? typed_data(env, argv[0], napi_uint32_array, &cap) : NULL;
  if (!out) return throw_type(env, "linkMtus(out: Uint32Array)");
  for (uint32_t id = 0; id < MAX_PORTS && id < cap; id++) {
    int64_t mtu = port_link_mtu(&a->ports[id]);
    if (mtu >= 0) out[id] = (uint32_t)mtu;
  }
  return NULL;
}

/* linkMtu(port) -> port_link_mtu of that one port, 0 for a port on no device. */
static napi_value link_mtu(napi_env env, napi_callback_info info) {
  uint32_t id;
  struct port *p = port_of_call(env, info, &id);
  if (!p) return NULL;
  int64_t mtu = port_link_mtu(p);
  return ret_u32(env, mtu > 0 ? (uint32_t)mtu : 0);
}

static napi_value port_info(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  uint32_t id;
  struct port *p = port_of_call(env, info, &id);
  if (!p) return NULL;
  static const char *kinds[] = { "?", "tap", "tun", "packet", "udp", "raw" };
  napi_value o, s;
  napi_create_object(env, &o);
  napi_create_string_utf8(env, kinds[p->kind], NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, o, "kind", s);
  napi_create_string_utf8(env, p->name, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, o, "name", s);
  set_num(env, o, "fd", p->fd);
  set_num(env, o, "ifindex", p->ifindex);
  set_num(env, o, "boundPort", a->bound_port[id]);
  set_num(env, o, "ring", p->ring || p->rearming ? p->ring_version : 0);
  set_num(env, o, "vnetHdr", p->vnet_len ? 1 : 0);
  return o;
}

/* ---- readiness -------------------------------------------------------------------------- */

/* One JS call per wake-up. With recv_max the first batch is received here, so JS gets the frame
 * count (or -errno) and makes no recv call of its own unless that batch was full.
 *
 * napi_call_function, not napi_make_callback: make_callback wraps every call in node's callback
 * scope (async-hooks context push and pop, then a nextTick and microtask drain), which the
 * forwarding path needs none of and which costs most when the caches are cold, i.e. on every
 * wake-up at a low packet rate (bench/README.md, "Podway's own work per wake-up"). Ticks and
 * microtasks the callback queues still run in this loop iteration: node's check phase
 * (CheckImmediate) opens and closes such a scope on every iteration. */
static void call_js(struct poller *pl, int status) {
  napi_env env = pl->env;
  struct addon *a = pl->a;
  uint32_t id = (uint32_t)pl->id;
  if (status == 0 && pl->recv_max) {
    /* a source held back is not read, and JS is not called (back-pressure, above) */
    if (a->ports[id].hold_rx && hold_check(a, id)) return;
    status = a->pool_set ? port_recv(&a->ports[id], (uint16_t)id, &a->pool, 0, pl->recv_max) : -EINVAL;
  }
  a->rx_cur = (int32_t)id;
  a->rx_fed = 0;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, args[2], result;
  napi_get_reference_value(env, pl->cb, &cb);
  napi_get_undefined(env, &recv);
  napi_create_uint32(env, (uint32_t)pl->id, &args[0]);
  napi_create_int32(env, status, &args[1]);
  napi_call_function(env, recv, cb, 2, args, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
  /* a batch that sent to no target: the port feeds none now (JS may have closed it meanwhile) */
  if (!a->rx_fed && a->ports[id].in_use) a->ports[id].feeds = 0;
  a->rx_cur = -1;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct poller *pl = h->data;
  if (pl->closing) return;
  if (status < 0) {
    /* libuv has stopped the handle: the fd polled POLLERR, which libuv reports as UV_EBADF
     * whatever the cause. For a socket that is mostly a pending socket error, not a failed fd: an
     * AF_PACKET socket bound to a device that is down (a veth attached before `ip link set up`) or
     * whose device went down or away gets ENETDOWN. Nothing on a ring port's receive path reads
     * it, so it would stay pending and every later poll of this healthy fd would fail at once with
     * EBADF for good. Read it (SO_ERROR clears it) and hand JS that error instead: polling the
     * port again then works, and frames flow once the device is up. */
    int wside = h == &pl->whandle; /* the transmit-only socket's handle */
    if (status == UV_EBADF) {
      int soerr = 0;
      socklen_t len = sizeof soerr;
      struct port *p = &pl->a->ports[pl->id];
      if (getsockopt(wside ? p->txfd : p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr > 0) status = -soerr;
    }
    /* Frames still queued for it are counted as errors; JS hears of it if it polls this port
     * (an error of the transmit-only socket drops the backlog only: JS reads the other fd). */
    if (wside) {
      pl->wevents = 0;
      port_drop_backlog(&pl->a->ports[pl->id], -status);
      poller_sync(pl->env, pl->a, (uint32_t)pl->id);
      return;
    }
    pl->events = 0;
    if (!pl->has_w) port_drop_backlog(&pl->a->ports[pl->id], -status);
    if (pl->cb) call_js(pl, status);
    else poller_sync(pl->env, pl->a, (uint32_t)pl->id);
    return;
  }
  if (events & UV_WRITABLE) flush_backlog(pl); /* may release pl when JS does not poll the port */
  /* JS is woken for readability only, never for a writable-only wake-up. */
  if ((events & UV_READABLE) && !pl->closing && pl->cb) call_js(pl, 0);
}

/* poll(port, callback(portId, status), recvMax?) starts readiness notification (a second call
 * replaces the callback); unpoll(port) stops it. Neither disturbs the flushing of a transmit
 * backlog. status < 0 is a poll error (-errno). With recvMax (1..MAX_BATCH, at most the pool's
 * descriptors), each readable wake-up first receives up to recvMax frames into descriptors
 * [0, recvMax) as recv(port, 0, recvMax) would, and status is the count (0: nothing was there)
 * or recv's -errno. */
static napi_value start_poll(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 3;
  napi_value argv[3];
  uint32_t id, recv_max = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct port *p = arg_port(env, a, argv[0], &id);
  if (!p) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return throw_type(env, "poll: callback must be a function");
  if (argc >= 3) {
    napi_typeof(env, argv[2], &t);
    if (t != napi_undefined && (arg_u32(env, argv[2], &recv_max) || recv_max == 0 || recv_max > MAX_BATCH))
      return throw_type(env, "poll: recvMax must be 1..MAX_BATCH");
    if (recv_max && (!a->pool_set || recv_max > a->pool.ndesc)) return throw_type(env, "poll: recvMax needs a pool with that many descriptors");
  }
  int err = 0;
  struct poller *pl = poller_get(env, a, id, &err);
  if (!pl) return throw_errno(env, -err, "uv_poll_init");
  poller_drop_js(env, pl);
  if (napi_create_reference(env, argv[1], 1, &pl->cb) != napi_ok) {
    poller_sync(env, a, id);
    return throw_errno(env, EINVAL, "poll: napi_create_reference");
  }
  pl->recv_max = recv_max;
  err = poller_sync(env, a, id);
  if (err) {
    poller_drop_js(env, pl);
    poller_sync(env, a, id);
    return throw_errno(env, -err, "uv_poll_start");
  }
  return NULL;
}

static napi_value stop_poll(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 1;
  napi_value argv[1];
  uint32_t id;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (arg_u32(env, argv[0], &id) < 0 || id >= MAX_PORTS) return throw_type(env, "unpoll: port id");
  struct poller *pl = a->pollers[id];
  if (!pl) return NULL;
  poller_drop_js(env, pl);
  poller_sync(env, a, id); /* keeps watching for writability while a backlog waits */
  return NULL;
}

/* ---- control socket peer -------------------------------------------------------------- */

/* peerCred(fd) -> { pid, uid, gid } of the process at the other end of a connected AF_UNIX socket,
 * as the kernel recorded them at connect() (SO_PEERCRED). The control server checks the uid on
 * every accepted connection; the peer cannot forge these, unlike anything it could send. */
static napi_value peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t = napi_undefined;
  if (argc >= 1) CHECK(napi_typeof(env, argv[0], &t));
  int32_t fd = -1;
  if (t != napi_number || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "peerCred(fd): fd must be a non-negative integer");
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return throw_errno(env, errno, "peerCred: getsockopt(SO_PEERCRED)");
  napi_value o;
  CHECK(napi_create_object(env, &o));
  set_num(env, o, "pid", (double)cred.pid);
  set_num(env, o, "uid", (double)cred.uid);
  set_num(env, o, "gid", (double)cred.gid);
  return o;
}

/* setSchedSlice(ns) -> the slice the kernel now holds for the CALLING thread (ns)
 *
 * EEVDF's per-task slice (sched_setattr's sched_runtime for SCHED_OTHER, Linux 6.12+; the kernel
 * clamps it to 0.1-100 ms): a forwarding thread that runs a few µs per wake-up and sleeps in
 * between asks for a short one, so that on waking its virtual deadline comes before that of a task
 * which has been running (a pod's process, a compiler) and it is picked without waiting out that
 * task's slice, as the kernel's own forwarding (softirq) never waits. Policy and nice stay as
 * they are. 0 gives the default slice back. Throws with errno's text where the kernel refuses
 * (older kernels ignore sched_runtime for SCHED_OTHER: the answer then shows the slice unchanged). */
struct pw_sched_attr {
  uint32_t size, sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime, sched_deadline, sched_period;
  uint32_t sched_util_min, sched_util_max;
};

static napi_value set_sched_slice(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double ns = -1;
  napi_valuetype t = napi_undefined;
  if (argc >= 1) CHECK(napi_typeof(env, argv[0], &t));
  if (t != napi_number || napi_get_value_double(env, argv[0], &ns) != napi_ok || !(ns >= 0 && ns <= 100e6))
    return throw_type(env, "setSchedSlice(ns): ns must be 0..100000000");
  struct pw_sched_attr a;
  memset(&a, 0, sizeof a);
  if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) < 0) return throw_errno(env, errno, "setSchedSlice: sched_getattr");
  if (a.sched_policy != 0 /* SCHED_OTHER */ && a.sched_policy != 3 /* SCHED_BATCH */)
    return throw_type(env, "setSchedSlice: the thread is not SCHED_OTHER/SCHED_BATCH");
  a.size = sizeof a;
  a.sched_flags = 0;
  a.sched_runtime = (uint64_t)ns;
  if (syscall(SYS_sched_setattr, 0, &a, 0) < 0) return throw_errno(env, errno, "setSchedSlice: sched_setattr");
  memset(&a, 0, sizeof a);
  if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) < 0) return throw_errno(env, errno, "setSchedSlice: sched_getattr");
  napi_value v;
  CHECK(napi_create_double(env, (double)a.sched_runtime, &v));
  return v;
}

/* ---- for tests only ---------------------------------------------------------------------------
 *
 * offloadDeliverForTest(frame: Uint8Array, vnetHdr: Uint8Array | null, first, max, resume[, gsoMin])
 *   -> { n, done, gsoFrames, gsoSegments, gsoBad, gsoDropped, csumCompleted, truncated }
 * runs the receive path's delivery (rx_deliver, the code every AF_PACKET recv uses) on a frame
 * given from JS, as if a vnet-header socket had received it, into descriptors [first, first+max)
 * of the registered pool. Counters are cumulative. `resume` false forgets a half-delivered
 * super-frame first. It makes no syscall: malformed metadata the kernel would refuse to build can
 * be fed to the segmenter.
 *
 * vnetTapForTest(name, netnsPath) -> fd of a new TAP device with IFF_VNET_HDR in that namespace: a
 * write of (virtio_net_hdr, frame) to it makes the device *receive* the frame as the kernel builds
 * it from that header (a GSO super-frame, a partial checksum), which AF_PACKET sockets on the
 * device then see. The device goes away when the fd is closed. */

/* ---- a super-frame held or captured (rxsuper.h) -------------------------------------------- */

/* superCut(desc, l3, places: Uint32Array, n) -> segments written into descriptors places[0..),
 * 0 when desc is not a live super-frame, n is too small or a segment does not fit its slot
 * (the neighbour queue holds a super-frame as its segments). */
static napi_value super_cut(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!a->pool_set) return throw_type(env, "setPool first");
  uint32_t i, l3, n;
  size_t cnt = 0;
  const uint32_t *places = argc == 4 ? typed_data(env, argv[2], napi_uint32_array, &cnt) : NULL;
  if (argc != 4 || !places || arg_u32(env, argv[0], &i) || arg_u32(env, argv[1], &l3) || arg_u32(env, argv[3], &n) || n > cnt || l3 > 14)
    return throw_type(env, "superCut(desc, l3, places: Uint32Array, n)");
  return ret_u32(env, super_cut_into(&a->pool, i, l3, places, n));
}

/* superRest(desc, dst: Uint8Array, at, max, out: Uint32Array(2)) -> bytes of desc's super-frame's
 * payload behind segment 0's (the first max copied to dst[at..]), -1 when it is not a live
 * super-frame; out[0] its TCP flags, out[1] the ones'-complement sum of those bytes (podway capture). */
/* takeRejected(port, dst: Uint8Array) -> bytes written: copies of the frames the kernel refused and
 * podway dropped (tx_rejected) since the last call, as records [u16 original length LE][u16 bytes
 * LE][bytes]; for `podway capture --stage drop` (called now and then, not per batch). */
static napi_value take_rejected(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t id;
  struct port *p = argc == 2 ? arg_port(env, a, argv[0], &id) : NULL;
  if (!p) return argc == 2 ? NULL : throw_type(env, "takeRejected(port, dst: Uint8Array)");
  size_t dlen = 0;
  uint8_t *dst = typed_data(env, argv[1], napi_uint8_array, &dlen);
  if (!dst) return throw_type(env, "takeRejected(port, dst: Uint8Array)");
  return ret_u32(env, port_take_rejected(p, dst, dlen > UINT32_MAX ? UINT32_MAX : (uint32_t)dlen));
}

static napi_value super_rest_js(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!a->pool_set) return throw_type(env, "setPool first");
  uint32_t i, at, max;
  size_t dlen = 0, olen = 0;
  uint8_t *dst = argc == 5 ? typed_data(env, argv[1], napi_uint8_array, &dlen) : NULL;
  uint32_t *out = argc == 5 ? typed_data(env, argv[4], napi_uint32_array, &olen) : NULL;
  if (!dst || !out || olen < 2 || arg_u32(env, argv[0], &i) || arg_u32(env, argv[2], &at) || arg_u32(env, argv[3], &max) || at > dlen || max > dlen - at)
    return throw_type(env, "superRest(desc, dst: Uint8Array, at, max, out: Uint32Array(2))");
  uint8_t fl = 0;
  uint16_t sum = 0;
  int64_t r = super_rest(&a->pool, i, dst + at, max, &fl, &sum);
  out[0] = fl;
  out[1] = sum;
  napi_value v;
  napi_create_double(env, (double)r, &v);
  return v;
}

static napi_value offload_deliver_for_test(napi_env env, napi_callback_info info) {
  struct addon *a = get_addon(env);
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5 && argc != 6) return throw_type(env, "offloadDeliverForTest(frame, vnetHdr, first, max, resume[, gsoMin])");
  if (!a->pool_set) return throw_type(env, "setPool first");
  size_t flen = 0, vlen = 0;
  const uint8_t *frame = typed_data(env, argv[0], napi_uint8_array, &flen);
  if (!frame || flen == 0) return throw_type(env, "frame: non-empty Uint8Array");
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  const struct virtio_net_hdr *vh = NULL;
  if (t != napi_null) {
    vh = typed_data(env, argv[1], napi_uint8_array, &vlen);
    if (!vh || vlen != VNET_HDR_LEN) return throw_type(env, "vnetHdr: null or a 10-byte Uint8Array");
  }
  uint32_t first, max;
  bool resume = false;
  if (arg_u32(env, argv[2], &first) || arg_u32(env, argv[3], &max) || napi_get_value_bool(env, argv[4], &resume) != napi_ok)
    return throw_type(env, "offloadDeliverForTest(frame, vnetHdr, first, max, resume)");
  struct pool *pl = &a->pool;
  if (max == 0 || max > MAX_BATCH || first > pl->ndesc || max > pl->ndesc - first) return throw_errno(env, ERANGE, "offloadDeliverForTest");
  for (uint32_t k = 0; k < max; k++)
    if (pl->d_slot[first + k] >= pl->nslots) return throw_errno(env, ERANGE, "offloadDeliverForTest");
  uint32_t gso_min = 0;
  if (argc == 6 && arg_u32(env, argv[5], &gso_min)) return throw_type(env, "gsoMin: bytes");
  struct port *p = &a->test_port;
  p->kind = PORT_PACKET;
  p->vnet_len = VNET_HDR_LEN;
  p->gso_min = gso_min;
  if (!resume) p->gso_next = 0;
  int done = 1;
  uint32_t n = rx_deliver(p, 0, pl, first, max, frame, (uint32_t)flen, (uint32_t)flen, vh, 0, &done);
  p->st.rx_packets += n;
  napi_value o;
  napi_create_object(env, &o);
  set_num(env, o, "n", n);
  set_num(env, o, "done", done);
  set_num(env, o, "gsoFrames", (double)p->st.rx_gso_frames);
  set_num(env, o, "gsoSegments", (double)p->st.rx_gso_segments);
  set_num(env, o, "gsoBad", (double)p->st.rx_gso_bad);
  set_num(env, o, "gsoDropped", (double)p->st.rx_gso_dropped);
  set_num(env, o, "badCsum", (double)p->st.rx_bad_csum);
  set_num(env, o, "csumCompleted", (double)p->st.rx_csum_completed);
  set_num(env, o, "truncated", (double)p->st.rx_truncated);
  return o;
}

/* groCoalesceForTest(frames: Uint8Array[]) -> [{ frames, frame, vnetHdr }] runs the transmit
 * coalescing (gro_span, gro_write_header: the code a pod port's send uses) on frames given from
 * JS, as if they were one batch for one port, and returns what each message would carry: the
 * number of input frames, the bytes after the vnet header (the merged frame, or the frame itself),
 * and the vnet header (null for a frame sent on its own). No syscall.
 * usoCoalesceForTest(frames, mtu, vxlanPort = 4789) does the same with the underlay's VXLAN merging
 * (uso_span, uso_write_header), `mtu` standing for the device's. */
static napi_value coalesce_for_test(napi_env env, napi_callback_info info, int uso) {
  const char *what = uso ? "usoCoalesceForTest" : "groCoalesceForTest";
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool isarr = false;
  uint32_t mtu = 0, vport = USO_VXLAN_PORT;
  if (argc < 1 || napi_is_array(env, argv[0], &isarr) != napi_ok || !isarr ||
      (uso && (argc < 2 || argc > 3 || napi_get_value_uint32(env, argv[1], &mtu) != napi_ok ||
               (argc == 3 && (napi_get_value_uint32(env, argv[2], &vport) != napi_ok || vport == 0 || vport > 65535)))))
    return throw_type(env, uso ? "usoCoalesceForTest(frames: Uint8Array[], mtu: number, vxlanPort?: 1..65535)" : "groCoalesceForTest(frames: Uint8Array[])");
  uint32_t n = 0;
  napi_get_array_length(env, argv[0], &n);
  if (n == 0 || n > MAX_BATCH) return throw_errno(env, ERANGE, what);
  static const uint8_t *f[MAX_BATCH];
  static uint32_t lens[MAX_BATCH];
  for (uint32_t k = 0; k < n; k++) {
    napi_value e;
    size_t len = 0;
    napi_get_element(env, argv[0], k, &e);
    f[k] = typed_data(env, e, napi_uint8_array, &len);
    if (!f[k] || len == 0 || len > 0xffff) return throw_type(env, "coalesce: each frame a non-empty Uint8Array");
    lens[k] = (uint32_t)len;
  }
  napi_value out;
  napi_create_array(env, &out);
  uint32_t nm = 0;
  for (uint32_t k = 0; k < n;) {
    struct gro_merge m;
    struct uso_merge u;
    uint32_t c = uso ? uso_span(f + k, lens + k, n - k, mtu, (uint16_t)vport, &u) : gro_span(f + k, lens + k, n - k, &m);
    napi_value o, buf, vbuf, ab;
    napi_create_object(env, &o);
    set_num(env, o, "frames", c);
    void *data;
    if (c == 1) {
      napi_create_arraybuffer(env, lens[k], &data, &ab);
      memcpy(data, f[k], lens[k]);
      napi_create_typedarray(env, napi_uint8_array, lens[k], ab, 0, &buf);
      napi_get_null(env, &vbuf);
    } else {
      size_t hdrs = uso ? u.l4 + 8 : m.hdrs;
      size_t total = hdrs + (uso ? u.payload : m.payload);
      napi_create_arraybuffer(env, total, &data, &ab);
      struct virtio_net_hdr vh;
      if (uso) uso_write_header(f[k], &u, data, &vh);
      else gro_write_header(f[k], &m, data, &vh);
      size_t at = hdrs;
      for (uint32_t j = 0; j < c; j++) {
        uint32_t plen, off = uso ? uso_payload(f[k + j], &u, &plen) : gro_payload(f[k + j], &m, &plen);
        memcpy((uint8_t *)data + at, f[k + j] + off, plen);
        at += plen;
      }
      napi_create_typedarray(env, napi_uint8_array, total, ab, 0, &buf);
      void *vd;
      napi_value vab;
      napi_create_arraybuffer(env, sizeof vh, &vd, &vab);
      memcpy(vd, &vh, sizeof vh);
      napi_create_typedarray(env, napi_uint8_array, sizeof vh, vab, 0, &vbuf);
    }
    napi_set_named_property(env, o, "frame", buf);
    napi_set_named_property(env, o, "vnetHdr", vbuf);
    napi_set_element(env, out, nm++, o);
    k += c;
  }
  return out;
}

static napi_value gro_coalesce_for_test(napi_env env, napi_callback_info info) { return coalesce_for_test(env, info, 0); }
static napi_value uso_coalesce_for_test(napi_env env, napi_callback_info info) { return coalesce_for_test(env, info, 1); }

static napi_value vnet_tap_for_test(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[64], netns[256];
  if (argc != 2 || arg_string(env, argv[0], name, sizeof name) != 0 || strlen(name) >= IFNAMSIZ ||
      arg_string(env, argv[1], netns, sizeof netns) != 0)
    return throw_type(env, "vnetTapForTest(name, netnsPath)");
  int home = -1;
  if (!netns_enter(env, netns, &home)) return NULL;
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    memcpy(ifr.ifr_name, name, strlen(name) + 1); /* shorter than IFNAMSIZ: checked above */
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      err = errno;
      close(fd);
      fd = -1;
    }
  }
  netns_leave(home);
  if (fd < 0) return throw_errno(env, err, "vnetTapForTest");
  return ret_u32(env, (uint32_t)fd);
}

/* ---- module ----------------------------------------------------------------------------- */

static void hold_timer_closed(uv_handle_t *h) {
  struct teardown *td = h->data;
  free(h);
  teardown_closed(td);
}

/* The thread ends (addon_teardown above): every poller's handles and the hold timer are closed
 * here, no JS touched (the references go with the env); the ports themselves (fds, rings) are
 * closed by addon_finalize, which runs after this hook has started. */
static void addon_teardown(napi_async_cleanup_hook_handle hook, void *arg) {
  struct addon *a = arg;
  struct teardown *td = calloc(1, sizeof *td);
  if (!td) { /* nothing to wait on then: the closes below still run, unwaited */
    napi_remove_async_cleanup_hook(hook);
  } else {
    td->hook = hook;
    td->pending = 1; /* this function's own, released at its end */
  }
  for (int i = 0; i < MAX_PORTS; i++) {
    struct poller *pl = a->pollers[i];
    if (!pl) continue;
    a->pollers[i] = NULL;
    pl->closing = 1;
    pl->cb = NULL;
    pl->td = td;
    if (td) td->pending += 2 + pl->has_w;
    uv_poll_stop(&pl->handle);
    uv_timer_stop(&pl->retry);
    uv_close((uv_handle_t *)&pl->handle, poller_handle_closed);
    uv_close((uv_handle_t *)&pl->retry, poller_handle_closed);
    if (pl->has_w) {
      uv_poll_stop(&pl->whandle);
      uv_close((uv_handle_t *)&pl->whandle, poller_handle_closed);
    }
  }
  if (a->hold_timer && td) {
    uv_timer_stop(a->hold_timer);
    a->hold_timer->data = td;
    td->pending++;
    uv_close((uv_handle_t *)a->hold_timer, hold_timer_closed);
    a->hold_timer = NULL;
    a->hold_timer_on = 0;
  }
  if (td) teardown_closed(td);
}

static void addon_finalize(napi_env env, void *data, void *hint) {
  struct addon *a = data;
  if (a->hold_timer) { /* (its handle is closed by the loop teardown, as the pollers') */
    uv_timer_stop(a->hold_timer);
    a->hold_timer->data = NULL;
  }
  for (int i = 0; i < MAX_PORTS; i++) {
    if (a->pollers[i]) {
      a->pollers[i]->closing = 1;
      uv_poll_stop(&a->pollers[i]->handle);
      uv_timer_stop(&a->pollers[i]->retry);
      /* handles are closed by the loop teardown; the memory goes with the process or worker */
    }
    /* a ring being set up again on a worker: its fd and ring are the job's (as in close_port) */
    if (a->ports[i].in_use && a->ports[i].rearm_job) ring_job_orphan(&a->ports[i]);
    if (a->ports[i].in_use) port_close(&a->ports[i]);
  }
  for (int i = 0; i < a->nspares; i++) {
    port_close(&a->spares[i]->port);
    free(a->spares[i]);
  }
  if (a->pool_set) free(a->pool.d_super);
  free(a);
}

static napi_value init(napi_env env, napi_value exports) {
  struct addon *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  for (int i = 0; i < MAX_PORTS; i++) a->ports[i].fd = -1;
  a->env = env;
  a->rx_cur = -1;
  napi_set_instance_data(env, a, addon_finalize, NULL);
  /* added after the env's own cleanup (which runs the finalizer): run before it */
  napi_add_async_cleanup_hook(env, addon_teardown, a, NULL);
  napi_property_descriptor props[] = {
    { "setPool", NULL, set_pool, NULL, NULL, NULL, napi_default, NULL },
    { "openTap", NULL, open_tap, NULL, NULL, NULL, napi_default, NULL },
    { "openTun", NULL, open_tun, NULL, NULL, NULL, napi_default, NULL },
    { "openPacket", NULL, open_packet, NULL, NULL, NULL, napi_default, NULL },
    { "openUdp", NULL, open_udp, NULL, NULL, NULL, napi_default, NULL },
    { "openRaw", NULL, open_raw, NULL, NULL, NULL, napi_default, NULL },
    { "preparePacket", NULL, prepare_packet, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, close_port, NULL, NULL, NULL, napi_default, NULL },
    { "pendingCloses", NULL, pending_closes, NULL, NULL, NULL, napi_default, NULL },
    { "recv", NULL, recv_batch, NULL, NULL, NULL, napi_default, NULL },
    { "send", NULL, send_batch, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, port_stats, NULL, NULL, NULL, napi_default, NULL },
    { "checkRing", NULL, check_ring, NULL, NULL, NULL, napi_default, NULL },
    { "checkRings", NULL, check_rings, NULL, NULL, NULL, napi_default, NULL },
    { "txRejectedAll", NULL, tx_rejected_all, NULL, NULL, NULL, napi_default, NULL },
    { "linkMtus", NULL, link_mtus, NULL, NULL, NULL, napi_default, NULL },
    { "nativeDropsAll", NULL, native_drops_all, NULL, NULL, NULL, napi_default, NULL },
    { "linkMtu", NULL, link_mtu, NULL, NULL, NULL, napi_default, NULL },
    { "info", NULL, port_info, NULL, NULL, NULL, napi_default, NULL },
    { "poll", NULL, start_poll, NULL, NULL, NULL, napi_default, NULL },
    { "unpoll", NULL, stop_poll, NULL, NULL, NULL, napi_default, NULL },
    { "peerCred", NULL, peer_cred, NULL, NULL, NULL, napi_default, NULL },
    { "setSchedSlice", NULL, set_sched_slice, NULL, NULL, NULL, napi_default, NULL },
    { "superCut", NULL, super_cut, NULL, NULL, NULL, napi_default, NULL },
    { "setVxlanPort", NULL, set_vxlan_port, NULL, NULL, NULL, napi_default, NULL },
    { "takeRejected", NULL, take_rejected, NULL, NULL, NULL, napi_default, NULL },
    { "superRest", NULL, super_rest_js, NULL, NULL, NULL, napi_default, NULL },
    { "offloadDeliverForTest", NULL, offload_deliver_for_test, NULL, NULL, NULL, napi_default, NULL },
    { "groCoalesceForTest", NULL, gro_coalesce_for_test, NULL, NULL, NULL, napi_default, NULL },
    { "usoCoalesceForTest", NULL, uso_coalesce_for_test, NULL, NULL, NULL, napi_default, NULL },
    { "vnetTapForTest", NULL, vnet_tap_for_test, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  tcp_md5_init(env, exports); /* tcp_md5.c: TCP-MD5 sockets for BGP sessions */
  notify_init(env, exports); /* notify.c: sd_notify for systemd's Type=notify */
  napi_value v;
  napi_create_uint32(env, MAX_BATCH, &v);
  napi_set_named_property(env, exports, "MAX_BATCH", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
