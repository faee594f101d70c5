// Typed face of the fdpass addon (docs/protocol.md, "The native addon"). Every call is synchronous and
// non-blocking; errors throw an Error whose `code` is the errno name (EAGAIN, ELOOP, …), ECTRUNC or ENOTREG.
import type { Addon, WatcherHandle } from './types';
export type * from './types';
export type Watcher = WatcherHandle;

const addon = require('../build/Release/fdpass.node') as Addon;

export const {
  listen,
  connect,
  accept,
  send,
  recv,
  peerCred,
  peerGroups,
  openNoFollow,
  hasOpenat2,
  close,
} = addon;
export const Watcher = addon.Watcher;
