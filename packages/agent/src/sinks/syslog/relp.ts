// RELP, rsyslog's Reliable Event Logging Protocol (https://www.rsyslog.com/doc/relp.html, librelp):
// frames are `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; the client opens a session with `open`
// (offers), sends each message as a `syslog` command, and the server answers every command with
// `rsp` and the same TXNR: `200 OK` once it has taken the message. TXNRs run 1 … 999999999 and
// wrap to 1. The server may end a session with `0 serverclose 0`.

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

/** Splits what a RELP server sends into frames, across chunk boundaries. */
export class RelpReader {
  private buf = '';

  /** Appends a chunk; returns the frames it completed. Throws RelpProtocolError on a malformed stream. */
  push(chunk: Buffer): RelpFrame[] {
    // Latin-1: one char a byte, so DATALEN counts chars; answers are ASCII anyway
    this.buf = this.buf === '' ? chunk.toString('latin1') : this.buf + chunk.toString('latin1');
    const b = this.buf;
    const out: RelpFrame[] = [];
    let at = 0;
    for (;;) {
      // TXNR: 1 to 9 digits, SP
      const txnrEnd = digits(b, at, 9);
      if (txnrEnd === -1) break; // incomplete
      if (txnrEnd < 0 || b.charCodeAt(txnrEnd) !== 0x20) throw this.bad(b.slice(at, at + 40));
      // COMMAND: 1 to 32 letters, SP
      let c = txnrEnd + 1;
      while (c < b.length && c - txnrEnd <= 33 && isLetter(b.charCodeAt(c))) c++;
      if (c >= b.length) {
        if (c - txnrEnd > 33) throw this.bad(b.slice(at, at + 40));
        break;
      }
      if (c === txnrEnd + 1 || b.charCodeAt(c) !== 0x20) throw this.bad(b.slice(at, c + 1));
      // DATALEN: 1 to 9 digits, then SP DATA LF, or LF when 0
      const lenEnd = digits(b, c + 1, 9);
      if (lenEnd === -1) break;
      if (lenEnd < 0) throw this.bad(b.slice(at, c + 12));
      // the numbers from their digits and `rsp` as a constant: an answer a message, a thousand a
      // batch, each was five short strings
      const len = decimal(b, c + 1, lenEnd);
      if (len > MAX_DATA) throw this.bad(`DATALEN ${len}`);
      const sep = b.charCodeAt(lenEnd);
      const txnr = decimal(b, at, txnrEnd);
      const command =
        c - txnrEnd === 4 &&
        b.charCodeAt(txnrEnd + 1) === 0x72 &&
        b.charCodeAt(txnrEnd + 2) === 0x73 &&
        b.charCodeAt(txnrEnd + 3) === 0x70
          ? 'rsp'
          : b.slice(txnrEnd + 1, c);
      if (len === 0) {
        if (sep !== 0x0a) throw this.bad(b.slice(at, lenEnd + 1));
        out.push({ txnr, command, data: '' });
        at = lenEnd + 1;
        continue;
      }
      if (sep !== 0x20) throw this.bad(b.slice(at, lenEnd + 1));
      const dataStart = lenEnd + 1;
      if (b.length < dataStart + len + 1) break;
      if (b.charCodeAt(dataStart + len) !== 0x0a)
        throw this.bad(`frame ${txnr} without its trailing LF`);
      out.push({ txnr, command, data: b.slice(dataStart, dataStart + len) });
      at = dataStart + len + 1;
    }
    this.buf = at === 0 ? b : b.slice(at);
    return out;
  }

  private bad(what: string): RelpProtocolError {
    return new RelpProtocolError(
      `the receiver does not speak RELP (got ${JSON.stringify(what.slice(0, 60))})`,
    );
  }
}

/** The end of 1 to `max` digits at p: -1 when the text ends first (incomplete), -2 when there
 *  are none or too many (not RELP). */
function digits(b: string, p: number, max: number): number {
  let k = p;
  while (k < b.length && k - p <= max) {
    const c = b.charCodeAt(k);
    if (c < 0x30 || c > 0x39) break;
    k++;
  }
  if (k - p > max) return -2;
  if (k >= b.length) return -1;
  return k === p ? -2 : k;
}

/** The value of the digits b[from, to) (at most nine: exact). */
function decimal(b: string, from: number, to: number): number {
  let n = 0;
  for (let k = from; k < to; k++) n = n * 10 + b.charCodeAt(k) - 0x30;
  return n;
}

function isLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** The status code of an `rsp` frame's data ("200 OK…" → 200), or -1. */
export function rspCode(data: string): number {
  if (data.length < 3) return -1;
  let code = 0;
  for (let k = 0; k < 3; k++) {
    const c = data.charCodeAt(k);
    if (c < 0x30 || c > 0x39) return -1;
    code = code * 10 + c - 0x30;
  }
  // exactly three digits, then SP, LF or the end
  const after = data.length === 3 ? 0x20 : data.charCodeAt(3);
  return after === 0x20 || after === 0x0a ? code : -1;
}
