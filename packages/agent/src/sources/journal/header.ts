// The header of a journal file (systemd's journal-def.h, `struct Header`), read through a
// descriptor: whether journald archived the file, its sequence and its newest entry. Without
// libsystemd, so that guardctl can read it too.
import { readSync } from 'node:fs';

/** The header fields this reader looks at (systemd's journal-def.h, `struct Header`). */
export interface JournalHeader {
  /** 0 offline, 1 online (being written), 2 archived (rotated away: never written again). */
  state: number;
  seqnumId: string;
  entries: number;
  tailSeqnum: number;
  headRealtime: number;
  tailRealtime: number;
}

export const STATE_ARCHIVED = 2;
export const STATE_NAMES = ['offline', 'online', 'archived'];

const HEADER_BYTES = 208;
const headerBuf = Buffer.alloc(HEADER_BYTES);

/** Reads a journal file's header through its descriptor; null when it is not one (or too short). */
export function readHeader(fd: number): JournalHeader | null {
  let n: number;
  try {
    n = readSync(fd, headerBuf, 0, HEADER_BYTES, 0);
  } catch {
    return null;
  }
  if (n < HEADER_BYTES || headerBuf.toString('latin1', 0, 8) !== 'LPKSHHRH') return null;
  return {
    state: headerBuf[16]!,
    seqnumId: headerBuf.toString('hex', 72, 88),
    entries: Number(headerBuf.readBigUInt64LE(152)),
    tailSeqnum: Number(headerBuf.readBigUInt64LE(160)),
    headRealtime: Number(headerBuf.readBigUInt64LE(184)),
    tailRealtime: Number(headerBuf.readBigUInt64LE(192)),
  };
}
