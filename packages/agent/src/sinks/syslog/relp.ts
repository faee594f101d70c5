// RELP, rsyslog's Reliable Event Logging Protocol (https://www.rsyslog.com/doc/relp.html, librelp):
// frames are `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; the client opens a session with `open`
// (offers), sends each message as a `syslog` command, and the server answers every command with
// `rsp` and the same TXNR: `200 OK` once it has taken the message. TXNRs run 1 … 999999999 and
// wrap to 1. The server may end a session with `0 serverclose 0`.

import { digitsValue } from '../core/byte-writer';

export const RELP_MAX_TXNR = 999_999_999;
/** The offers guard makes: version 0 (the one librelp speaks) and the one command it uses. */
export const RELP_OFFERS = 'relp_version=0\nrelp_software=guard\ncommands=syslog';

export function nextTxnr(t: number): number {
  return t >= RELP_MAX_TXNR ? 1 : t + 1;
}

/** One frame, DATALEN counted in UTF-8 bytes. */
export function relpFrame(txnr: number, command: string, data: string, dataBytes?: number): string {
  const n = dataBytes ?? Buffer.byteLength(data);
  return n === 0 ? `${txnr} ${command} 0\n` : `${txnr} ${command} ${n} ${data}\n`;
}

export interface RelpFrame {
  txnr: number;
  command: string;
  /** The data, as Latin-1 (byte-for-byte); answers are ASCII. */
  data: string;
}

/** A server's answer is short; a frame longer than this is not one. */
const MAX_DATA = 64 * 1024;

export class RelpProtocolError extends Error {
  readonly code = 'GUARD_RELP_PROTOCOL';
}

/**
 * The messages a RELP session sent and has not all answered, oldest first, as a ring of `size`
 * (a power of two) positions: [head, tail) hold consecutive TXNRs from `headTxnr` on, each with
 * what it was (a batch and a message of it); answers may come in any order, head moves past
 * answered positions only. No object or map entry per message.
 */
export class RelpWindow<T> {
  /** The last TXNR used on the session (the open handshake's is 1). */
  txnr = 0;
  /** Messages sent and not answered. */
  unanswered = 0;
  /** What answer() found: the item and index the answered message was sent with. */
  item: T | null = null;
  index = -1;
  private readonly items: (T | null)[];
  private readonly indexes: Int32Array;
  private readonly mask: number;
  private head = 0;
  private tail = 0;
  private headTxnr = 0;

  constructor(readonly size: number) {
    if (size < 1 || (size & (size - 1)) !== 0) throw new RangeError('size: a power of two');
    this.items = new Array<T | null>(size).fill(null);
    this.indexes = new Int32Array(size);
    this.mask = size - 1;
  }

  /** Positions taken: the oldest unanswered message and all sent after it (at most size). */
  get inFlight(): number {
    return this.tail - this.head;
  }

  /** Records message `index` of `item` as sent with the next TXNR, which it returns. The caller
   *  keeps inFlight below size. */
  sent(item: T, index: number): number {
    if (this.tail - this.head >= this.size) throw new RangeError('RELP window full');
    this.txnr = nextTxnr(this.txnr);
    if (this.head === this.tail) this.headTxnr = this.txnr;
    const slot = this.tail & this.mask;
    this.items[slot] = item;
    this.indexes[slot] = index;
    this.tail++;
    this.unanswered++;
    return this.txnr;
  }

  /** An answer to `txnr`: false when no message sent and unanswered has it; else true, with
   *  `item` and `index` set to what it answered. */
  answer(txnr: number): boolean {
    if (txnr < 1 || txnr > RELP_MAX_TXNR) return false;
    let d = txnr - this.headTxnr;
    if (d < 0) d += RELP_MAX_TXNR; // TXNRs wrap from 999,999,999 to 1
    if (d >= this.tail - this.head) return false;
    const slot = (this.head + d) & this.mask;
    const item = this.items[slot]!;
    if (item === null) return false; // answered already
    this.item = item;
    this.index = this.indexes[slot]!;
    this.items[slot] = null;
    this.unanswered--;
    while (this.head < this.tail && this.items[this.head & this.mask] === null) {
      this.head++;
      this.headTxnr = nextTxnr(this.headTxnr);
    }
    return true;
  }

  /** Forgets every message (the session died). */
  clear(): void {
    this.items.fill(null);
    this.head = this.tail;
    this.unanswered = 0;
    this.item = null;
  }
}

/** Called for each frame: its data is `data[from, to)` (valid during the call only). */
export type RelpFrameHandler = (
  txnr: number,
  command: string,
  data: Buffer,
  from: number,
  to: number,
) => void;

const RSP = 'rsp';

/**
 * Splits what a RELP server sends into frames, across chunk boundaries. It reads the bytes as they
 * came (an answer a message, a thousand a batch: no string, object or copy per answer); only the
 * bytes of a frame cut by a chunk's end are kept for the next chunk.
 */
export class RelpReader {
  private rest: Buffer | null = null;

  /** Hands each frame the chunk completed to `onFrame`. Throws RelpProtocolError on a malformed
   *  stream (the frames before it were handed over). */
  read(chunk: Buffer, onFrame: RelpFrameHandler): void {
    const b = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = null;
    const n = b.length;
    let at = 0;
    while (at < n) {
      // TXNR: 1 to 9 digits, SP
      const txnrEnd = digits(b, at, 9);
      if (txnrEnd === -1) break; // incomplete
      if (txnrEnd < 0 || b[txnrEnd] !== 0x20) throw bad(b, at, at + 40);
      // COMMAND: 1 to 32 letters, SP
      let c = txnrEnd + 1;
      while (c < n && c - txnrEnd <= 33 && isLetter(b[c]!)) c++;
      if (c >= n) {
        if (c - txnrEnd > 33) throw bad(b, at, at + 40);
        break;
      }
      if (c === txnrEnd + 1 || b[c] !== 0x20) throw bad(b, at, c + 1);
      // DATALEN: 1 to 9 digits, then SP DATA LF, or LF when 0
      const lenEnd = digits(b, c + 1, 9);
      if (lenEnd === -1) break;
      if (lenEnd < 0) throw bad(b, at, c + 12);
      const len = digitsValue(b, c + 1, lenEnd);
      if (len > MAX_DATA) throw new RelpProtocolError(notRelp(`DATALEN ${len}`));
      const sep = b[lenEnd];
      const dataStart = lenEnd + 1;
      if (len === 0) {
        if (sep !== 0x0a) throw bad(b, at, lenEnd + 1);
      } else {
        if (sep !== 0x20) throw bad(b, at, lenEnd + 1);
        if (n < dataStart + len + 1) break;
        if (b[dataStart + len] !== 0x0a)
          throw new RelpProtocolError(
            notRelp(`frame ${digitsValue(b, at, txnrEnd)} without its trailing LF`),
          );
      }
      onFrame(
        digitsValue(b, at, txnrEnd),
        command(b, txnrEnd + 1, c),
        b,
        dataStart,
        dataStart + len,
      );
      at = len === 0 ? dataStart : dataStart + len + 1;
    }
    if (at < n) this.rest = Buffer.from(b.subarray(at));
  }

  /** The frames a chunk completed, each with its data as a string (tests; the sink reads in place). */
  push(chunk: Buffer): RelpFrame[] {
    const out: RelpFrame[] = [];
    this.read(chunk, (txnr, command, data, from, to) =>
      out.push({ txnr, command, data: data.toString('latin1', from, to) }),
    );
    return out;
  }
}

/** `rsp` (an answer a message) as a constant, no string made; another command as its letters. */
function command(b: Buffer, from: number, to: number): string {
  if (to - from === 3 && b[from] === 0x72 && b[from + 1] === 0x73 && b[from + 2] === 0x70)
    return RSP;
  return b.toString('latin1', from, to);
}

function notRelp(what: string): string {
  return `the receiver does not speak RELP (got ${JSON.stringify(what.slice(0, 60))})`;
}

function bad(b: Buffer, from: number, to: number): RelpProtocolError {
  return new RelpProtocolError(notRelp(b.toString('latin1', from, Math.min(to, b.length))));
}

/** The end of 1 to `max` digits at p: -1 when the bytes end first (incomplete), -2 when there
 *  are none or too many (not RELP). */
function digits(b: Buffer, p: number, max: number): number {
  let k = p;
  while (k < b.length && k - p <= max) {
    const c = b[k]!;
    if (c < 0x30 || c > 0x39) break;
    k++;
  }
  if (k - p > max) return -2;
  if (k >= b.length) return -1;
  return k === p ? -2 : k;
}

function isLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** The status code of an `rsp` frame's data b[from, to) ("200 OK…" → 200), or -1. */
export function rspCodeAt(b: Buffer, from: number, to: number): number {
  if (to - from < 3) return -1;
  let code = 0;
  for (let k = from; k < from + 3; k++) {
    const c = b[k]!;
    if (c < 0x30 || c > 0x39) return -1;
    code = code * 10 + c - 0x30;
  }
  // exactly three digits, then SP, LF or the end
  const after = to - from === 3 ? 0x20 : b[from + 3];
  return after === 0x20 || after === 0x0a ? code : -1;
}

/** The status code of an `rsp` frame's data ("200 OK…" → 200), or -1. */
export function rspCode(data: string): number {
  return rspCodeAt(Buffer.from(data, 'latin1'), 0, data.length);
}
