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

/** Bytes of a frame's header beyond which the stream is not RELP (TXNR 9 + command 32 + DATALEN 9). */
const MAX_HEADER = 64;
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
    this.buf += chunk.toString('latin1');
    const out: RelpFrame[] = [];
    let at = 0;
    for (;;) {
      const sp1 = this.buf.indexOf(' ', at);
      const sp2 = sp1 < 0 ? -1 : this.buf.indexOf(' ', sp1 + 1);
      if (sp2 < 0) {
        if (this.buf.length - at > MAX_HEADER) throw this.bad(this.buf.slice(at, at + 40));
        break;
      }
      // DATALEN ends at SP (data follows) or LF (no data)
      let end = sp2 + 1;
      while (end < this.buf.length && end - sp2 <= 10) {
        const c = this.buf.charCodeAt(end);
        if (c < 0x30 || c > 0x39) break;
        end++;
      }
      if (end >= this.buf.length) {
        if (end - sp2 > 10) throw this.bad(this.buf.slice(at, end));
        break;
      }
      const txnrText = this.buf.slice(at, sp1);
      const command = this.buf.slice(sp1 + 1, sp2);
      const lenText = this.buf.slice(sp2 + 1, end);
      if (
        !/^\d{1,9}$/.test(txnrText) ||
        !/^[A-Za-z]{1,32}$/.test(command) ||
        !/^\d{1,9}$/.test(lenText)
      )
        throw this.bad(this.buf.slice(at, end + 1));
      const len = Number(lenText);
      if (len > MAX_DATA) throw this.bad(`DATALEN ${len}`);
      const sep = this.buf.charCodeAt(end);
      let dataStart: number;
      if (len === 0) {
        if (sep !== 0x0a) throw this.bad(this.buf.slice(at, end + 1));
        out.push({ txnr: Number(txnrText), command, data: '' });
        at = end + 1;
        continue;
      }
      if (sep !== 0x20) throw this.bad(this.buf.slice(at, end + 1));
      dataStart = end + 1;
      if (this.buf.length < dataStart + len + 1) break;
      if (this.buf.charCodeAt(dataStart + len) !== 0x0a)
        throw this.bad(`frame ${txnrText} without its trailing LF`);
      out.push({
        txnr: Number(txnrText),
        command,
        data: this.buf.slice(dataStart, dataStart + len),
      });
      at = dataStart + len + 1;
    }
    this.buf = at === 0 ? this.buf : this.buf.slice(at);
    return out;
  }

  private bad(what: string): RelpProtocolError {
    return new RelpProtocolError(
      `the receiver does not speak RELP (got ${JSON.stringify(what.slice(0, 60))})`,
    );
  }
}

/** The status code of an `rsp` frame's data ("200 OK…" → 200), or -1. */
export function rspCode(data: string): number {
  const m = /^(\d{3})(?:[ \n]|$)/.exec(data);
  return m ? Number(m[1]) : -1;
}
