// Types of the fdpass addon's exports (docs/protocol.md, "The native addon"). Declarations only.
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}
export interface Received {
  data: Buffer;
  fd: number /* -1: none */;
  truncated: boolean; /* MSG_TRUNC */
  /** Descriptors that came with the packet beyond those kept: closed unread by the addon. */
  closed: number;
}
export interface FdpassError extends Error {
  code: string;
}
export interface WatcherHandle {
  start(readable: boolean, writable: boolean): void;
  stop(): void;
  /** Idempotent. The Watcher does not own its descriptor: close the Watcher first, then the descriptor. */
  close(): void;
}
/** status: 0, or a negative libuv errno (UV_EBADF, …) when polling failed. */
export type OnEvent = (status: number, readable: boolean, writable: boolean) => void;

export interface Addon {
  listen(path: string, backlog?: number): number;
  accept(listenFd: number): number;
  send(fd: number, data: Buffer, passFd?: number): boolean;
  recv(fd: number, maxBytes: number, maxFds: 0 | 1): Received | null;
  peerCred(fd: number): PeerCred;
  peerGroups(fd: number): number[];
  /**
   * root: length of the allowed root's path ('' for /), below which no component may cross a mount;
   * the path's own length when the path is an allowed root itself. A regular file comes back open
   * read-only; a directory, FIFO, device or socket as its O_PATH descriptor (never opened for
   * reading: fstat it to tell which); a symlink anywhere is ELOOP. walk: use the component walk.
   */
  openNoFollow(path: string, root: number, walk?: boolean): number;
  /**
   * Adds the watch guard's `watch` op defines (docs/protocol.md) on the directory open as `dirFd`
   * (through /proc/self/fd, never a path) to the inotify instance `inotifyFd` (EINVAL if it is not
   * one); returns the watch descriptor.
   */
  addWatch(inotifyFd: number, dirFd: number): number;
  hasOpenat2(): boolean;
  close(fd: number): void;
  Watcher: new (fd: number, onEvent: OnEvent) => WatcherHandle;
}
