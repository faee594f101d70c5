// Typed face of the journal addon (packages/journal/src/journal.c): sd-journal over descriptors the
// helper opened. Every call but readAsync is synchronous and runs on the JS thread; errors throw an
// Error whose `code` is ENOLIBSYSTEMD (libsystemd.so.0 missing), ECLOSED, EBUSY (a readAsync in
// flight), or `E<errno>`.

/** An open sd_journal over a set of journal files. */
export type JournalHandle = { readonly __journal: unique symbol };

/** Bytes of one cursor slot in read()'s cursor buffer. */
export const CURSOR_STRIDE = 160;

/** Bits of meta[3k + 2]. */
export const BIT_SLOW = 1; // the event's JSON differs from its text (escapes, non-ASCII)
export const BIT_FLAGS = 2; // the event carries flags
export const BIT_SECRET = 4; // a value holds one of open()'s trigger words (any case)

export interface JournalAddon {
  /** Opens the files behind `fds`; from then on they are the handle's (close() closes them). When it
   *  throws they are still the caller's. `lists`: include units, exclude units, include
   *  identifiers, exclude identifiers. `tail` is what every event line ends with. An entry whose
   *  values' JSON text holds one of `triggers` (ASCII, compared in any case) gets BIT_SECRET. */
  open(
    fds: number[],
    tail: string,
    maxValueBytes: number,
    lists: string[][],
    triggers: readonly string[],
  ): JournalHandle;
  seekHead(h: JournalHandle): void;
  /** On the last entry (read() goes on after it); its cursor, or null when there is none. */
  seekTail(h: JournalHandle): string | null;
  /** Just before the entry at or after `cursor`; returns that entry's cursor, or null. */
  seekCursor(h: JournalHandle, cursor: string): string | null;
  /** Steps over the next entry. */
  skipOne(h: JournalHandle): void;
  /** [count, filtered, atEnd, need]: see journal.c. */
  read(
    h: JournalHandle,
    out: Buffer,
    sizes: Float64Array,
    meta: Int32Array,
    cursors: Buffer,
    maxEntries: number,
  ): [number, number, boolean, number];
  /** read() on a thread of libuv's pool; `done` gets the same result, or the Error read() would
   *  throw. Until then the buffers are the thread's, and every call on the handle but close()
   *  throws EBUSY; close() closes when the read ends. */
  readAsync(
    h: JournalHandle,
    out: Buffer,
    sizes: Float64Array,
    meta: Int32Array,
    cursors: Buffer,
    maxEntries: number,
    done: (err: Error | null, r?: [number, number, boolean, number]) => void,
  ): void;
  close(h: JournalHandle): void;
  /** A close-on-exec copy of a descriptor. */
  dup(fd: number): number;
  /** null when libsystemd.so.0 loads, else why not. */
  unavailable(): string | null;
  /** For tests of the encoding, no journal needed: an encoder with open()'s options; `cache`
   *  false encodes every field afresh (the reference the cached path is compared with). */
  encoder(
    tail: string,
    maxValueBytes: number,
    lists: string[][],
    triggers: readonly string[],
    cache: boolean,
  ): JournalEncoder;
  /** One entry (`NAME=value` fields) as read() would write it: [line, message start, message end,
   *  bits], or null when the lists leave it out. */
  encodeEntry(
    e: JournalEncoder,
    cursor: string,
    fields: Buffer[],
  ): [Buffer, number, number, number] | null;
}

/** An encoder of journal entries without a journal (JournalAddon.encoder). */
export type JournalEncoder = { readonly __encoder: unique symbol };

let loaded: JournalAddon | null = null;

/** The addon, loaded at the first use: an agent with no journal source never loads it (and an
 *  install without journal.node still runs its file sources). Throws when it cannot be loaded. */
export function journalAddon(): JournalAddon {
  loaded ??= require('../build/Release/journal.node') as JournalAddon;
  return loaded;
}
