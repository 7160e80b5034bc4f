/* JS exceptions thrown from the addon's C files (addon.c, tcp_md5.c), one wording for all. */
#ifndef PODWAY_ERRORS_H
#define PODWAY_ERRORS_H
#include <node_api.h>

/* Throws Error "<what>: <strerror> (<ENAME>)" with code ENAME; err may be negative (-errno). */
napi_value throw_errno(napi_env env, int err, const char *what);
/* Throws TypeError `msg` with code EINVAL. */
napi_value throw_type(napi_env env, const char *msg);

#endif
