// Typed face of the fdpass addon (docs/protocol.md, "The native addon"). Every call is synchronous and
// non-blocking; errors throw an Error whose `code` is the errno name (EAGAIN, ELOOP, …) or ECTRUNC.
// The client end, connect, is `@guard/fdpass/connect`: the root helper does not load it.
import type { Addon, WatcherHandle } from './types';
export type * from './types';
export type Watcher = WatcherHandle;

const addon = require('../build/Release/fdpass.node') as Addon;

export const {
  listen,
  accept,
  send,
  recv,
  peerCred,
  peerGroups,
  openNoFollow,
  hasOpenat2,
  addWatch,
  close,
} = addon;
export const Watcher = addon.Watcher;
