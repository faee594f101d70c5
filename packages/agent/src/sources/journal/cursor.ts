// libsystemd's cursors, `s=SEQNUM_ID;i=SEQNUM;b=BOOT_ID;m=MONOTONIC;t=REALTIME;x=XOR_HASH` (hex),
// read as data: the event id comes from s and i, a gap is a jump in i within one s.

export interface Cursor {
  /** The seqnum id (128-bit hex): one sequence of seqnums, shared by a journal's files. */
  s: string;
  /** The entry's seqnum within s. */
  i: number;
  b: string;
  m: string;
  /** Realtime (µs since the epoch). */
  t: number;
  x: string;
}

/** The parts of a cursor, or null when it is not one. */
export function parseCursor(text: string): Cursor | null {
  const parts = new Map<string, string>();
  for (const kv of text.split(';')) {
    const eq = kv.indexOf('=');
    if (eq <= 0) return null;
    parts.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  const s = parts.get('s');
  const i = parts.get('i');
  const t = parts.get('t');
  if (!s || !i || !t || !/^[0-9a-f]+$/.test(i) || !/^[0-9a-f]+$/.test(t)) return null;
  return {
    s,
    i: parseInt(i, 16),
    b: parts.get('b') ?? '',
    m: parts.get('m') ?? '',
    t: parseInt(t, 16),
    x: parts.get('x') ?? '',
  };
}

/**
 * True when two cursors name the same entry. The seqnum alone is not enough: journald's flush from
 * /run to /var gives the persistent copy of an entry a new seqnum id, keeping its boot id,
 * timestamps and hash — so a copy found again after a flush is the same entry, not a new one.
 */
export function sameEntry(a: Cursor, b: Cursor): boolean {
  if (a.s === b.s) return a.i === b.i;
  return a.b === b.b && a.m === b.m && a.t === b.t && a.x === b.x;
}

/**
 * Entries lost between the saved entry and the one a resume landed on: the seqnums skipped within
 * one sequence (0 when none). null when the two are in different sequences and nothing can be
 * counted (journald started a new sequence).
 */
export function seqnumGap(saved: Cursor, landing: Cursor): number | null {
  if (saved.s !== landing.s) return null;
  return Math.max(0, landing.i - saved.i - 1);
}
