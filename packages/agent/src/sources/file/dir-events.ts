// The kernel's word on what changed in a source's directories: an inotify instance guard-helper
// made, with watches on the source's allowed directories only, handed over as a descriptor (the
// helper's `watch` op, docs/protocol.md). The agent reads events from it; it cannot add watches
// (it has no path access to root-only directories anyway). Events name entries, never contents.
import { closeSync, readSync } from 'node:fs';
import * as fdpass from '@guard/fdpass';

export const IN_MODIFY = 0x2;
export const IN_ATTRIB = 0x4;
export const IN_CLOSE_WRITE = 0x8;
export const IN_MOVED_FROM = 0x40;
export const IN_MOVED_TO = 0x80;
export const IN_CREATE = 0x100;
export const IN_DELETE = 0x200;
export const IN_DELETE_SELF = 0x400;
export const IN_MOVE_SELF = 0x800;
export const IN_UNMOUNT = 0x2000;
export const IN_Q_OVERFLOW = 0x4000;
export const IN_IGNORED = 0x8000;
export const IN_ISDIR = 0x40000000;

/** One `struct inotify_event`: its name without the NUL padding ('' for the directory itself). */
export interface InotifyEvent {
  wd: number;
  mask: number;
  cookie: number;
  name: string;
}

/** The fixed part of `struct inotify_event`: wd i32, mask u32, cookie u32, len u32. */
const HEADER = 16;

/**
 * The events in buf[0, n) (what one read(2) returned: whole events only, as the kernel never splits
 * one). A length that runs past the end is the kernel's contract broken: thrown, never guessed at.
 */
export function parseInotifyEvents(buf: Buffer, n: number): InotifyEvent[] {
  const out: InotifyEvent[] = [];
  for (let p = 0; p < n;) {
    if (p + HEADER > n) throw new Error(`inotify: ${n - p} bytes left, less than an event header`);
    const len = buf.readUInt32LE(p + 12);
    const end = p + HEADER + len;
    if (end > n) throw new Error(`inotify: an event's name runs ${end - n} bytes past the read`);
    let stop = p + HEADER;
    while (stop < end && buf[stop] !== 0) stop++;
    out.push({
      wd: buf.readInt32LE(p),
      mask: buf.readUInt32LE(p + 4),
      cookie: buf.readUInt32LE(p + 8),
      name: buf.toString('utf8', p + HEADER, stop),
    });
    p = end;
  }
  return out;
}

/** What a source is told: a change to `dir/name`, or that events were lost or the watches changed. */
export type DirChange =
  | { kind: 'entry'; path: string; mask: number }
  /** The queue overflowed: events were lost, everything must be looked at again. */
  | { kind: 'overflow' }
  /** A watched directory went away or a directory appeared: the watch set must be asked for again. */
  | { kind: 'rewatch'; why: string };

/** Room for many events per read (one needs at least 16 + NAME_MAX + 1 bytes). */
const READ_BYTES = 64 * 1024;

/** Reads one inotify descriptor as it becomes readable; owns the descriptor. */
export class DirWatch {
  private readonly dirs = new Map<number, string>();
  private readonly watcher: fdpass.Watcher;
  private readonly buf = Buffer.allocUnsafe(READ_BYTES);
  private closed = false;
  /** Events delivered so far (status). */
  events = 0;

  constructor(
    private readonly fd: number,
    watches: { wd: number; dir: string }[],
    private readonly onChange: (c: DirChange) => void,
    private readonly onError: (e: Error) => void,
  ) {
    for (const w of watches) this.dirs.set(w.wd, w.dir);
    this.watcher = new fdpass.Watcher(fd, (status) => {
      if (status < 0) this.fail(new Error(`polling the inotify descriptor failed (${status})`));
      else this.drain();
    });
    this.watcher.start(true, false);
  }

  get directories(): number {
    return this.dirs.size;
  }

  /** Reads until the kernel has nothing more (EAGAIN: the descriptor is non-blocking). */
  drain(): void {
    while (!this.closed) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, READ_BYTES, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return;
        return this.fail(e as Error);
      }
      if (n === 0) return;
      let events: InotifyEvent[];
      try {
        events = parseInotifyEvents(this.buf, n);
      } catch (e) {
        return this.fail(e as Error);
      }
      for (const ev of events) this.route(ev);
    }
  }

  private route(ev: InotifyEvent): void {
    this.events++;
    if (ev.mask & IN_Q_OVERFLOW) return this.onChange({ kind: 'overflow' });
    const dir = this.dirs.get(ev.wd);
    if (ev.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
      this.dirs.delete(ev.wd);
      return this.onChange({ kind: 'rewatch', why: `${dir ?? 'a watched directory'} went away` });
    }
    if (dir === undefined || ev.name === '') return;
    if (ev.mask & IN_ISDIR) {
      if (ev.mask & (IN_CREATE | IN_MOVED_TO))
        this.onChange({ kind: 'rewatch', why: `directory ${dir}/${ev.name} appeared` });
      return;
    }
    this.onChange({
      kind: 'entry',
      path: dir === '/' ? `/${ev.name}` : `${dir}/${ev.name}`,
      mask: ev.mask,
    });
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.close();
    this.onError(e);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.close(); // the Watcher first, then its descriptor
    closeSync(this.fd);
  }
}
