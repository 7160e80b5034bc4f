/* See errors.h. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include "errors.h"

napi_value throw_errno(napi_env env, int err, const char *what) {
  if (err < 0) err = -err;
  const char *name = strerrorname_np(err);
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, strerror(err), name ? name : "E?");
  napi_throw_error(env, name ? name : "EUNKNOWN", msg);
  return NULL;
}

napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}
