// Typed face of the fdpass addon (docs/protocol.md, "The native addon"). Every call is synchronous and
// non-blocking; errors throw an Error whose `code` is the errno name (EAGAIN, ELOOP, …), ECTRUNC or ENOTREG.
export interface PeerCred { pid: number; uid: number; gid: number }
export interface Received { data: Buffer; fd: number /* -1: none */; truncated: boolean /* MSG_TRUNC */ }
export type FileType = 'fifo' | 'chr' | 'blk' | 'dir' | 'sock' | 'unknown';
export interface FdpassError extends Error { code: string; fileType?: FileType }
export interface Watcher {
  start(readable: boolean, writable: boolean): void;
  stop(): void;
  /** Idempotent. The Watcher does not own its descriptor: close the Watcher first, then the descriptor. */
  close(): void;
}
/** status: 0, or a negative libuv errno (UV_EBADF, …) when polling failed. */
export type OnEvent = (status: number, readable: boolean, writable: boolean) => void;

interface Addon {
  listen(path: string, backlog?: number): number;
  connect(path: string): number;
  accept(listenFd: number): number;
  send(fd: number, data: Buffer, passFd?: number): boolean;
  recv(fd: number, maxBytes: number, maxFds: 0 | 1): Received | null;
  peerCred(fd: number): PeerCred;
  peerGroups(fd: number): number[];
  openNoFollow(path: string, walk?: boolean): number;
  hasOpenat2(): boolean;
  close(fd: number): void;
  Watcher: new (fd: number, onEvent: OnEvent) => Watcher;
}

const addon = require('../build/Release/fdpass.node') as Addon;

export const { listen, connect, accept, send, recv, peerCred, peerGroups, openNoFollow, hasOpenat2, close } = addon;
export const Watcher = addon.Watcher;
