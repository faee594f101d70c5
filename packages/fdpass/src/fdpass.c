// fdpass: the only code in guard that touches a socket carrying descriptors (docs/protocol.md, "The
// native addon"). Audited root surface, read top to bottom: errors, arguments, sockets, send/recv,
// peer credentials, openNoFollow, inotify, Watcher, module. Every call is non-blocking; errors
// throw an Error whose .code is the errno name.
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define PATH_CAP 4096       // docs/protocol.md: a path is 1 to 4095 bytes
#define RECV_CAP (1 << 20)  // largest maxBytes recv accepts
#define CTL_FDS 8           // control room for a few extra descriptors, so we see (and close) them

// ---- errors -------------------------------------------------------------------------------

static napi_value throw_code(napi_env env, const char *code, const char *detail) {
  char text[256];
  napi_value c, m, err;
  snprintf(text, sizeof text, "%s: %s", code, detail);
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c) != napi_ok ||
      napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &m) != napi_ok ||
      napi_create_error(env, c, m, &err) != napi_ok)
    return NULL;
  napi_throw(env, err);
  return NULL;
}

// Throws errno e; closes fd first when fd >= 0 (callers pass the descriptor they must not leak).
static napi_value fail(napi_env env, int e, const char *what, int fd) {
  char detail[200];
  const char *name = strerrorname_np(e);
  if (fd >= 0) close(fd);
  snprintf(detail, sizeof detail, "%s (%s)", strerror(e), what);
  return throw_code(env, name ? name : "EUNKNOWN", detail);
}

// ---- arguments ----------------------------------------------------------------------------

#define ARGS(n)       \
  size_t argc = (n);  \
  napi_value argv[n]; \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL

static bool is_missing(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) != napi_ok || t == napi_undefined || t == napi_null;
}

// A fractional or out-of-range number must not wrap around to some other descriptor.
static bool get_int(napi_env env, napi_value v, int32_t lo, int32_t hi, int32_t *out) {
  double d;
  bool ok =
      napi_get_value_double(env, v, &d) == napi_ok && d >= lo && d <= hi && d == (double)(int32_t)d;
  if (ok)
    *out = (int32_t)d;
  else
    fail(env, EINVAL, "expected an integer argument in range", -1);
  return ok;
}

static bool get_fd(napi_env env, napi_value v, int32_t *out) {
  return get_int(env, v, 0, INT32_MAX, out);
}

static bool get_bool(napi_env env, napi_value v, bool *out) {
  bool ok = napi_get_value_bool(env, v, out) == napi_ok;
  if (!ok) fail(env, EINVAL, "expected a boolean argument", -1);
  return ok;
}

static bool get_str(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t len = 0, got = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len == 0)
    return fail(env, EINVAL, "expected a non-empty string", -1), false;
  if (len >= cap) return fail(env, ENAMETOOLONG, "path", -1), false;
  // An embedded NUL would make the kernel use a shorter path than the one the caller checked.
  if (napi_get_value_string_utf8(env, v, buf, cap, &got) != napi_ok || got != len ||
      strlen(buf) != len)
    return fail(env, EINVAL, "path contains NUL", -1), false;
  return true;
}

static napi_value make_int(napi_env env, int32_t n) {
  napi_value v;
  return napi_create_int32(env, n, &v) != napi_ok ? NULL : v;
}
static napi_value make_bool(napi_env env, bool b) {
  napi_value v;
  return napi_get_boolean(env, b, &v) != napi_ok ? NULL : v;
}

static bool set_int(napi_env env, napi_value obj, const char *name, int64_t n) {
  napi_value v;
  return napi_create_int64(env, n, &v) == napi_ok &&
         napi_set_named_property(env, obj, name, v) == napi_ok;
}

// ---- sockets ------------------------------------------------------------------------------

// A listening SOCK_SEQPACKET socket; the caller decides whether to unlink first. The client end
// (connect) is in connect.c, an addon only the agent and guardctl load.
static napi_value fp_listen(napi_env env, napi_callback_info info) {
  ARGS(2);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int32_t backlog = 128;
  if (!get_str(env, argv[0], sa.sun_path, sizeof sa.sun_path)) return NULL;
  if (!is_missing(env, argv[1]) && !get_int(env, argv[1], 1, 4096, &backlog)) return NULL;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(env, errno, "socket", -1);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return fail(env, errno, "bind", fd);
  if (listen(fd, backlog) < 0) return fail(env, errno, "listen", fd);
  return make_int(env, fd);
}

static napi_value fp_accept(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t lfd;
  if (!get_fd(env, argv[0], &lfd)) return NULL;
  int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return make_int(env, -1);
  return fd < 0 ? fail(env, errno, "accept4", -1) : make_int(env, fd);
}

// ---- send / recv --------------------------------------------------------------------------

static napi_value fp_send(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t fd, pass = -1;
  void *data;
  size_t len;
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl = {
      .h = {.cmsg_len = CMSG_LEN(sizeof(int)), .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS}};
  if (!get_fd(env, argv[0], &fd)) return NULL;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok)
    return fail(env, EINVAL, "send: data must be a Buffer", -1);
  if (!is_missing(env, argv[2]) && !get_fd(env, argv[2], &pass)) return NULL;
  if (len == 0)
    return fail(env, EINVAL, "send: empty packet", -1);  // the peer would read it as end-of-stream
  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (pass >= 0) {  // at most one descriptor per message, by construction
    memcpy(CMSG_DATA(&ctl.h), &pass, sizeof pass);
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
  }
  ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return make_bool(env, false);
  if (n < 0) return fail(env, errno, "sendmsg", -1);
  return (size_t)n == len ? make_bool(env, true) : fail(env, EMSGSIZE, "sendmsg: short packet", -1);
}

// Walks every SCM_RIGHTS descriptor the kernel installed: keeps the first when keep, closes the
// rest and counts them in *closed (a peer sending more than it should is told to the caller).
static int take_fds(struct msghdr *msg, bool keep, int32_t *closed) {
  int kept = -1, fd;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
      continue;
    size_t room = (size_t)((char *)msg->msg_control + msg->msg_controllen - (char *)CMSG_DATA(c));
    size_t bytes = c->cmsg_len - CMSG_LEN(0);
    if (bytes > room) bytes = room;  // never read past the control buffer, whatever cmsg_len says
    for (size_t i = 0; i + sizeof(int) <= bytes; i += sizeof(int)) {
      memcpy(&fd, CMSG_DATA(c) + i, sizeof(int));
      if (keep && kept < 0) {
        kept = fd;
      } else {
        close(fd);  // a peer stuffing extra descriptors must not fill our descriptor table
        (*closed)++;
      }
    }
  }
  return kept;
}

static napi_value fp_recv(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t fd, max_bytes, max_fds;
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * CTL_FDS)];
  } ctl;
  napi_value obj, buf, v;
  if (!get_fd(env, argv[0], &fd) || !get_int(env, argv[1], 1, RECV_CAP, &max_bytes) ||
      !get_int(env, argv[2], 0, 1, &max_fds))
    return NULL;
  char *data = malloc((size_t)max_bytes);
  if (!data) return fail(env, ENOMEM, "recv", -1);
  struct iovec iov = {.iov_base = data, .iov_len = (size_t)max_bytes};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  int e = errno;
  if (n < 0) {
    free(data);
    if (e == EAGAIN || e == EWOULDBLOCK) return napi_get_null(env, &v) == napi_ok ? v : NULL;
    return fail(env, e, "recvmsg", -1);
  }
  // MSG_CTRUNC: the kernel dropped descriptors it could not fit; fail closed and keep none.
  // n == 0 reads as end-of-stream, so a descriptor riding on it would be ignored and leak: close
  // it.
  bool ctrunc = (msg.msg_flags & MSG_CTRUNC) != 0;
  int32_t closed = 0;
  int kept = take_fds(&msg, max_fds > 0 && n > 0 && !ctrunc, &closed);
  bool ok = !ctrunc && napi_create_object(env, &obj) == napi_ok &&
            napi_create_buffer_copy(env, (size_t)n, data, NULL, &buf) == napi_ok &&
            napi_set_named_property(env, obj, "data", buf) == napi_ok &&
            set_int(env, obj, "fd", kept) && set_int(env, obj, "closed", closed) &&
            napi_get_boolean(env, (msg.msg_flags & MSG_TRUNC) != 0, &v) == napi_ok &&
            napi_set_named_property(env, obj, "truncated", v) == napi_ok;
  free(data);
  if (ctrunc)
    return throw_code(env, "ECTRUNC", "control data truncated, every received descriptor closed");
  if (!ok && kept >= 0) close(kept);  // never leak a descriptor the caller cannot see
  return ok ? obj : NULL;
}

// ---- peer credentials ---------------------------------------------------------------------

static napi_value fp_peer_cred(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  struct ucred uc;
  socklen_t len = sizeof uc;
  napi_value obj;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
    return fail(env, errno, "SO_PEERCRED", -1);
  if (len != sizeof uc) return fail(env, EPROTO, "SO_PEERCRED length", -1);
  bool ok = napi_create_object(env, &obj) == napi_ok && set_int(env, obj, "pid", uc.pid) &&
            set_int(env, obj, "uid", uc.uid) && set_int(env, obj, "gid", uc.gid);
  return ok ? obj : NULL;
}

static napi_value fp_peer_groups(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  socklen_t cap = NGROUPS_MAX * sizeof(gid_t), len = cap;  // room for the most groups Linux allows
  napi_value arr, v;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  gid_t *g = malloc(cap);
  if (!g) return fail(env, ENOMEM, "SO_PEERGROUPS", -1);
  int r = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len), e = errno;
  bool ok =
      r == 0 && len <= cap && len % sizeof(gid_t) == 0 && napi_create_array(env, &arr) == napi_ok;
  for (size_t i = 0; ok && i < len / sizeof(gid_t); i++)
    ok = napi_create_uint32(env, g[i], &v) == napi_ok &&
         napi_set_element(env, arr, (uint32_t)i, v) == napi_ok;
  free(g);
  if (r < 0) return fail(env, e, "SO_PEERGROUPS", -1);
  return ok ? arr : fail(env, EPROTO, "SO_PEERGROUPS length", -1);
}

// ---- openNoFollow -------------------------------------------------------------------------

// Absolute, no empty, "." or ".." component: ".." could climb out of the directory the allow-list
// matched.
static bool normalised(const char *p) {
  if (p[0] != '/') return false;
  if (p[1] == '\0') return true;  // "/" itself
  for (const char *s = p + 1;; s = strchrnul(s, '/') + 1) {
    size_t n = (size_t)(strchrnul(s, '/') - s);
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
    if (s[n] == '\0') return true;
  }
}

static long openat2_at(int dir, const char *path, unsigned long long resolve) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                         .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | resolve};
  return syscall(SYS_openat2, dir, path, &how, sizeof how);
}

// The allowed root (the first `root` bytes of path), then the rest from its descriptor with
// RESOLVE_NO_XDEV: no component below the root may be on another mount.
static int open_openat2(char *path, size_t root) {
  path[root] = '\0';
  long dir = openat2_at(AT_FDCWD, root ? path : "/", 0), fd = -1;
  path[root] = '/';
  if (dir >= 0) fd = openat2_at((int)dir, path + root + 1, RESOLVE_NO_XDEV);
  int e = errno;
  if (dir >= 0) close((int)dir);
  return fd < 0 ? -e : (int)fd;
}

// One component at a time from /, O_NOFOLLOW on each: a symlinked directory anywhere on the way
// is refused, and every component below the allowed root must be on the root's mount (STATX_MNT_ID
// tells bind mounts of the same file system apart, which st_dev does not).
static int open_walk(char *path, size_t root) {
  struct statx sx;
  int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), fd, e;
  if (dir < 0) return -errno;
  if (statx(dir, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) < 0) return e = errno, close(dir), -e;
  __u64 mnt = sx.stx_mnt_id;  // of /: the root's own, once the walk reaches it
  for (char *s = path + 1;; s++) {
    char *end = strchrnul(s, '/');
    bool last = *end == '\0';
    *end = '\0';
    fd = openat(dir, s, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    e = errno;
    close(dir);
    if (fd < 0) return -e;
    e = statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_MNT_ID, &sx) < 0 ? errno
        : (size_t)(s - path) > root && sx.stx_mnt_id != mnt              ? EXDEV
        : last                                                           ? 0
        : S_ISLNK(sx.stx_mode)                                           ? ELOOP
        : !S_ISDIR(sx.stx_mode)                                          ? ENOTDIR
                                                                         : 0;
    if (e) return close(fd), -e;
    if (last) return fd;
    if ((size_t)(end - path) == root) mnt = sx.stx_mnt_id;
    dir = fd;
    s = end;
  }
}

// A regular file comes back open read-only; anything else but a symlink (a directory to list or
// watch; a FIFO, device or socket for the caller to refuse) as the O_PATH descriptor itself, never
// opened for reading: no hang, no side effect. The caller tells them apart by fstat.
static napi_value fp_open_no_follow(napi_env env, napi_callback_info info) {
  ARGS(3);
  char path[PATH_CAP], proc[64];
  int32_t root;
  bool walk = false;
  struct stat st;
  if (!get_str(env, argv[0], path, sizeof path) || !get_int(env, argv[1], 0, PATH_CAP, &root))
    return NULL;
  if (!is_missing(env, argv[2]) && !get_bool(env, argv[2], &walk)) return NULL;
  // root at the path's end: the path is an allowed root itself, which only the walk opens (openat2
  // would have nothing left to resolve with RESOLVE_NO_XDEV)
  if (!normalised(path) || (size_t)root > strlen(path) || (path[root] != '/' && path[root] != '\0'))
    return fail(env, EINVAL, "openNoFollow: path not absolute and normalised below its root", -1);
  int fd = walk || path[root] == '\0' ? -ENOSYS : open_openat2(path, (size_t)root);
  if (fd == -ENOSYS) walk = true, fd = open_walk(path, (size_t)root);
  if (fd < 0) return fail(env, -fd, walk ? "openNoFollow walk" : "openat2", -1);
  if (fstat(fd, &st) < 0) return fail(env, errno, "fstat", fd);
  if (S_ISLNK(st.st_mode)) return fail(env, ELOOP, "openNoFollow: symlink", fd);
  if (!S_ISREG(st.st_mode)) return make_int(env, fd);
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  int rfd = open(
      proc, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);  // never O_NOATIME: needs CAP_FOWNER
  if (rfd < 0) return fail(env, errno, "reopen via /proc/self/fd", fd);
  close(fd);
  return make_int(env, rfd);
}

static napi_value fp_has_openat2(napi_env env, napi_callback_info info) {
  static int has = -1;  // probed once: ENOSYS before Linux 5.6, and under systemd 252's filter
  (void)info;
  if (has < 0) {
    long fd = openat2_at(AT_FDCWD, "/", 0);
    has = fd >= 0 || errno != ENOSYS;
    if (fd >= 0) close((int)fd);
  }
  return make_bool(env, has);
}

static napi_value fp_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  if (close(fd) < 0 && errno != EINTR)
    return fail(env, errno, "close", -1);  // Linux: closed even on EINTR
  return NULL;
}

// ---- inotify ------------------------------------------------------------------------------

// Added to the agent's own instance (EINVAL if ifd is anything else), so that the instance, its
// watches and its queue are charged to the agent, never to root; through the descriptor of the
// directory openNoFollow opened, never by its path: a directory swapped for a symlink after the
// open cannot redirect the watch.
static napi_value fp_add_watch(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t ifd, dir;
  char proc[64];
  if (!get_fd(env, argv[0], &ifd) || !get_fd(env, argv[1], &dir)) return NULL;
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", dir);
  int wd = inotify_add_watch(ifd, proc,
                             IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |
                                 IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                                 IN_ONLYDIR | IN_EXCL_UNLINK);
  return wd < 0 ? fail(env, errno, "inotify_add_watch", -1) : make_int(env, wd);
}

// ---- Watcher: a libuv poll handle owned by the addon ------------------------------------
// Freed only when both uv_close's callback and the finalizer have run, whichever comes last.

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;  // strong until close(): polling keeps the callback alive, not the Watcher
  napi_async_context async;
  bool closing, handle_closed, finalized;
} watcher;

static void watcher_on_closed(uv_handle_t *h) {
  watcher *w = h->data;
  w->handle_closed = true;
  if (w->finalized) free(w);
}

static void watcher_close(watcher *w) {
  if (w->closing) return;
  w->closing = true;
  if (w->callback) napi_delete_reference(w->env, w->callback);
  if (w->async) napi_async_destroy(w->env, w->async);
  uv_close((uv_handle_t *)&w->poll, watcher_on_closed);  // also stops polling
}

static void watcher_finalize(napi_env env, void *data, void *hint) {
  watcher *w = data;
  (void)env, (void)hint;
  w->finalized = true;
  watcher_close(w);  // collected while still polling: stop and close it here
  if (w->handle_closed) free(w);
}

static void watcher_on_poll(uv_poll_t *h, int status, int events) {
  watcher *w = h->data;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_value cb, global, argv[3], result, exc;
  if (w->closing || napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb &&
      napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, status, &argv[0]) == napi_ok &&
      napi_get_boolean(env, (events & UV_READABLE) != 0, &argv[1]) == napi_ok &&
      napi_get_boolean(env, (events & UV_WRITABLE) != 0, &argv[2]) == napi_ok &&
      napi_make_callback(env, w->async, global, cb, 3, argv, &result) == napi_pending_exception &&
      napi_get_and_clear_last_exception(env, &exc) == napi_ok)
    napi_fatal_exception(env, exc);  // no JS frame below us: report it as uncaught
  napi_close_handle_scope(env, scope);
}

static napi_value watcher_new(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self, target = NULL, name;
  napi_valuetype t;
  uv_loop_t *loop;
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok ||
      napi_get_new_target(env, info, &target) != napi_ok || !target)
    return fail(env, EINVAL, "Watcher must be called with new", -1);
  if (!get_fd(env, argv[0], &fd)) return NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return fail(env, EINVAL, "Watcher: onEvent must be a function", -1);
  if (napi_get_uv_event_loop(env, &loop) != napi_ok)
    return fail(env, EIO, "napi_get_uv_event_loop", -1);
  watcher *w = calloc(1, sizeof *w);
  if (!w) return fail(env, ENOMEM, "Watcher", -1);
  int err = uv_poll_init(loop, &w->poll, fd);
  if (err) return free(w), throw_code(env, uv_err_name(err), uv_strerror(err));
  w->poll.data = w;
  w->env = env;
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_create_string_utf8(env, "fdpass.Watcher", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, self, name, &w->async) != napi_ok ||
      napi_wrap(env, self, w, watcher_finalize, NULL, NULL) != napi_ok) {
    w->finalized = true;  // no finalizer will come: the close callback frees it
    watcher_close(w);
    return fail(env, EIO, "Watcher: Node-API setup failed", -1);
  }
  return self;
}

static watcher *watcher_this(napi_env env, napi_callback_info info, napi_value *argv, size_t n) {
  napi_value self;
  watcher *w = NULL;
  if (napi_get_cb_info(env, info, &n, argv, &self, NULL) != napi_ok ||
      napi_unwrap(env, self, (void **)&w) != napi_ok || !w)
    fail(env, EINVAL, "not a Watcher", -1);
  return w;
}

static napi_value watcher_start(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool r, wr;
  watcher *w = watcher_this(env, info, argv, 2);
  if (!w || !get_bool(env, argv[0], &r) || !get_bool(env, argv[1], &wr)) return NULL;
  if (w->closing) return fail(env, EBADF, "Watcher is closed", -1);
  int err =
      uv_poll_start(&w->poll, (r ? UV_READABLE : 0) | (wr ? UV_WRITABLE : 0), watcher_on_poll);
  return err ? throw_code(env, uv_err_name(err), uv_strerror(err)) : NULL;
}

static napi_value watcher_stop(napi_env env, napi_callback_info info) {
  watcher *w = watcher_this(env, info, NULL, 0);
  if (w && !w->closing) uv_poll_stop(&w->poll);
  return NULL;
}

static napi_value watcher_close_js(napi_env env, napi_callback_info info) {
  watcher *w = watcher_this(env, info, NULL, 0);
  if (w) watcher_close(w);  // idempotent
  return NULL;
}

// ---- module -------------------------------------------------------------------------------

#define FN(name, fn, attr) \
  { name, NULL, fn, NULL, NULL, NULL, attr, NULL }

static napi_value init(napi_env env, napi_value exports) {
  napi_value cls;
  napi_property_descriptor methods[] = {FN("start", watcher_start, napi_default_method),
                                        FN("stop", watcher_stop, napi_default_method),
                                        FN("close", watcher_close_js, napi_default_method)};
  if (napi_define_class(env, "Watcher", NAPI_AUTO_LENGTH, watcher_new, NULL, 3, methods, &cls) !=
      napi_ok)
    return NULL;
  napi_property_descriptor fns[] = {
      FN("listen", fp_listen, napi_enumerable),
      FN("accept", fp_accept, napi_enumerable),
      FN("send", fp_send, napi_enumerable),
      FN("recv", fp_recv, napi_enumerable),
      FN("peerCred", fp_peer_cred, napi_enumerable),
      FN("peerGroups", fp_peer_groups, napi_enumerable),
      FN("openNoFollow", fp_open_no_follow, napi_enumerable),
      FN("hasOpenat2", fp_has_openat2, napi_enumerable),
      FN("addWatch", fp_add_watch, napi_enumerable),
      FN("close", fp_close, napi_enumerable),
      {"Watcher", NULL, NULL, NULL, NULL, cls, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) == napi_ok ? exports
                                                                                          : NULL;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
