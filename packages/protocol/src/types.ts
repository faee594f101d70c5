// The helper <-> client message types (docs/protocol.md). Declarations only: nothing here runs.

export type ErrorCode =
  | 'bad_request'
  | 'unknown_op'
  | 'too_large'
  | 'bad_path'
  | 'not_allowed'
  | 'deny_listed'
  | 'audit_group'
  | 'not_found'
  | 'symlink'
  | 'mount'
  | 'not_regular'
  | 'hard_link'
  | 'moved'
  | 'io'
  | 'peer'
  | 'version'
  | 'reloaded'
  // watch only:
  | 'limit'
  | 'rate'
  | 'unsupported';

export interface HelloRequest {
  op: 'hello';
  version: number;
}
export interface ListRequest {
  op: 'list';
  source: string;
  /** the previous reply's `next` */
  cursor?: string;
}
export interface OpenRequest {
  op: 'open';
  path: string;
  /** false: the checks and the identity only, no descriptor sent, the grant not logged (`stat`) */
  descriptor?: false;
}
export interface WatchRequest {
  op: 'watch';
  source: string;
}
export type Request = HelloRequest | ListRequest | OpenRequest | WatchRequest;
export type Op = Request['op'];

export interface HelloReply {
  ok: true;
  op: 'hello';
  version: number;
  policy: string;
  uid: number;
  audit: boolean;
  /** which resolver the helper opens files with */
  open_path: 'openat2' | 'walk';
}
export interface ListReply {
  ok: true;
  op: 'list';
  source: string;
  files: string[];
  /** rotated generations of names the source matches (file sources only) */
  generations: string[];
  /** more names follow: ask again with this as `cursor` */
  next?: string;
  /** the walk hit the helper's hard limit of directory entries read: names may be missing */
  truncated?: boolean;
}
/** Reply to `open` (sent with the descriptor); dev and ino are decimal strings. */
export interface FileReply {
  ok: true;
  op: 'open';
  path: string;
  dev: string;
  ino: string;
  size: number;
}
/** One inotify watch of a `watch` reply: `wd` is what the instance's events carry. */
export interface Watch {
  wd: number;
  dir: string;
}
/** Reply to `watch`, sent with the inotify instance's descriptor (docs/protocol.md). */
export interface WatchReply {
  ok: true;
  op: 'watch';
  source: string;
  watches: Watch[];
}
export interface Refusal {
  ok: false;
  op: Op | null;
  error: ErrorCode;
  message: string;
}
export type Reply = HelloReply | ListReply | FileReply | WatchReply | Refusal;
