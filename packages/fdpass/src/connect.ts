// The client end of the helper's socket (connect.c), for the agent and guardctl: a separate addon so
// that the root helper, which only listens, never loads it (docs/decisions.md).
const addon = require('../build/Release/fdpass-connect.node') as {
  /** A connected, non-blocking, close-on-exec SOCK_SEQPACKET socket; EAGAIN: backlog full. */
  connect(path: string): number;
  /** A new inotify instance of this process's user, IN_NONBLOCK | IN_CLOEXEC (for `watch`). */
  inotifyInit(): number;
};

export const { connect, inotifyInit } = addon;
