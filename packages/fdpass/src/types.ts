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
export type FileType = 'fifo' | 'chr' | 'blk' | 'dir' | 'sock' | 'unknown';
export interface FdpassError extends Error {
  code: string;
  fileType?: FileType;
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
  connect(path: string): number;
  accept(listenFd: number): number;
  send(fd: number, data: Buffer, passFd?: number): boolean;
  recv(fd: number, maxBytes: number, maxFds: 0 | 1): Received | null;
  peerCred(fd: number): PeerCred;
  peerGroups(fd: number): number[];
  /** root: length of the allowed root's path ('' for /), below which no component may cross a mount. */
  openNoFollow(path: string, root: number, walk?: boolean): number;
  hasOpenat2(): boolean;
  close(fd: number): void;
  Watcher: new (fd: number, onEvent: OnEvent) => WatcherHandle;
}
