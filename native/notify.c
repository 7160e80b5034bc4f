/* sd_notify(3) for `podway run` under systemd (src/cli/sd-notify.ts): one datagram to the
 * AF_UNIX socket systemd names in $NOTIFY_SOCKET ("READY=1", "STATUS=...", "WATCHDOG=1",
 * "STOPPING=1"). Node's dgram has no AF_UNIX datagram sockets, and libsystemd is no dependency
 * of podway: the protocol is one sendto() on a SOCK_DGRAM socket, done here.
 *
 * sdNotify(path, text)  path: a filesystem path ("/run/systemd/notify") or an abstract-namespace
 *                       name written with a leading '@' (sent with a leading NUL byte, as
 *                       libsystemd does); text: the datagram. Returns undefined; throws errno's
 *                       text (ENOENT, ECONNREFUSED, EAGAIN, ...) or a TypeError for a bad path.
 *
 * Not on the packet path: called on state changes and by the watchdog timer (seconds apart).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "errors.h"

static napi_value sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype t0 = napi_undefined, t1 = napi_undefined;
  if (argc >= 2) {
    napi_typeof(env, argv[0], &t0);
    napi_typeof(env, argv[1], &t1);
  }
  struct sockaddr_un sa;
  char path[sizeof sa.sun_path + 1];
  size_t plen = 0;
  if (t0 != napi_string || t1 != napi_string || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok)
    return throw_type(env, "sdNotify(path, text): path and text must be strings");
  if (plen == 0 || plen >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
    return throw_type(env, "sdNotify: NOTIFY_SOCKET must be an absolute path or an @abstract name shorter than 108 bytes");
  size_t tlen = 0;
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &tlen) != napi_ok) return throw_type(env, "sdNotify: text must be a string");
  char *text = malloc(tlen + 1);
  if (!text) return throw_errno(env, ENOMEM, "sdNotify");
  napi_get_value_string_utf8(env, argv[1], text, tlen + 1, &tlen);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, plen);
  if (path[0] == '@') sa.sun_path[0] = '\0'; /* abstract namespace: no trailing NUL counted */
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '@' ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    free(text);
    return throw_errno(env, e, "sdNotify: socket");
  }
  /* MSG_DONTWAIT: a full receive queue (systemd busy) must not block the event loop */
  ssize_t n = sendto(fd, text, tlen, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, salen);
  int e = errno;
  close(fd);
  free(text);
  if (n < 0) return throw_errno(env, e, "sdNotify: sendto");
  return NULL;
}

void notify_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "sdNotify", NULL, sd_notify, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
