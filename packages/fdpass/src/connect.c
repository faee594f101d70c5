// fdpass-connect: the client end of the helper's socket, for the agent and guardctl only. It is an
// addon of its own so that the root helper, which only listens, does not load code it never runs
// (docs/decisions.md). Same conventions as fdpass.c: non-blocking, close-on-exec, errors thrown
// with .code set to the errno name.
#define NAPI_VERSION 8
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

// Throws errno e; closes fd first when fd >= 0.
static napi_value fail(napi_env env, int e, const char *what, int fd) {
  char text[256];
  const char *name = strerrorname_np(e);
  napi_value c, m, err;
  if (fd >= 0) close(fd);
  snprintf(text, sizeof text, "%s: %s (%s)", name ? name : "EUNKNOWN", strerror(e), what);
  if (napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &c) == napi_ok &&
      napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &m) == napi_ok &&
      napi_create_error(env, c, m, &err) == napi_ok)
    napi_throw(env, err);
  return NULL;
}

// connect(path): a connected SOCK_SEQPACKET socket. EAGAIN means the listen backlog is full.
static napi_value fp_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1, len = 0, got = 0;
  napi_value argv[1], v;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) != napi_ok || len == 0)
    return fail(env, EINVAL, "expected a non-empty string", -1);
  if (len >= sizeof sa.sun_path) return fail(env, ENAMETOOLONG, "path", -1);
  // An embedded NUL would connect to a shorter path than the one the caller named.
  if (napi_get_value_string_utf8(env, argv[0], sa.sun_path, sizeof sa.sun_path, &got) != napi_ok ||
      got != len || strlen(sa.sun_path) != len)
    return fail(env, EINVAL, "path contains NUL", -1);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(env, errno, "socket", -1);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return fail(env, errno, "connect", fd);
  return napi_create_int32(env, fd, &v) == napi_ok ? v : NULL;
}

// inotifyInit(): a new inotify instance (IN_NONBLOCK | IN_CLOEXEC) of the calling (agent) user, for
// the helper's `watch` to add watches to: charged to the agent's inotify limits, not root's.
static napi_value fp_inotify_init(napi_env env, napi_callback_info info) {
  napi_value v;
  (void)info;
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return fail(env, errno, "inotify_init1", -1);
  return napi_create_int32(env, fd, &v) == napi_ok ? v : NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn, init;
  if (napi_create_function(env, "connect", NAPI_AUTO_LENGTH, fp_connect, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "connect", fn) != napi_ok ||
      napi_create_function(env, "inotifyInit", NAPI_AUTO_LENGTH, fp_inotify_init, NULL, &init) !=
          napi_ok ||
      napi_set_named_property(env, exports, "inotifyInit", init) != napi_ok)
    return NULL;
  return exports;
}
