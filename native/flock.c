/* flock(2) for the CNI plugin's host-wide IPAM lock (src/cni/flock-lock.ts): node has no flock,
 * and a lock the kernel holds is released by the kernel when its holder dies, whatever PID
 * namespace it ran in (a lock file naming its holder's PID cannot be judged from another one).
 *
 * flockTry(fd, mode)   mode "ex" | "sh" | "un"; never blocks (LOCK_NB): true when done, false
 *                      when another open file description holds a conflicting lock (EWOULDBLOCK);
 *                      throws errno's text otherwise (EBADF, ENOLCK, ...)
 *
 * Waiting is JS's (a poll paced by inotify and a timer): a blocking flock would hold a thread that
 * only a signal can interrupt, and the wait must end at a deadline or when `podway run` stops.
 *
 * An addon of its own (podway_flock.node, 16 kB), not a function of podway_native.node: every
 * plugin process loads it, and loading the dataplane's addon cost several times as much (see
 * native/README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <string.h>
#include <sys/file.h>
#include "errors.h"

static napi_value flock_try(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype t0 = napi_undefined, t1 = napi_undefined;
  if (argc >= 2) {
    napi_typeof(env, argv[0], &t0);
    napi_typeof(env, argv[1], &t1);
  }
  int32_t fd = -1;
  char mode[4] = "";
  size_t n = 0;
  if (t0 != napi_number || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || t1 != napi_string ||
      napi_get_value_string_utf8(env, argv[1], mode, sizeof mode, &n) != napi_ok)
    return throw_type(env, "flockTry(fd, mode): fd must be a non-negative integer, mode \"ex\", \"sh\" or \"un\"");
  int op;
  if (strcmp(mode, "ex") == 0) op = LOCK_EX;
  else if (strcmp(mode, "sh") == 0) op = LOCK_SH;
  else if (strcmp(mode, "un") == 0) op = LOCK_UN;
  else return throw_type(env, "flockTry(fd, mode): mode must be \"ex\", \"sh\" or \"un\"");
  int r;
  do r = flock(fd, op | LOCK_NB); while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EWOULDBLOCK) return throw_errno(env, errno, "flock");
  napi_value out;
  napi_get_boolean(env, r == 0, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "flockTry", NULL, flock_try, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
