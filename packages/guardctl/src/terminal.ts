// Everything guardctl prints passes through here. Much of it comes from people guardctl must not
// trust: file names matched by an allowed glob (anyone who can create a file in /var/log/app can
// choose one), the helper's and the agent's messages about them, process names, config values.
// Written raw, such text drives the operator's terminal: `ESC ] 0;…BEL` retitles the window,
// `ESC [2J` clears the screen, the 8-bit CSI U+009B does the same in one character, and a bidi
// override (U+202E) makes `gol.exe` display as `exe.log`. So every character a terminal acts on or
// that displays as something else is written as an escape instead:
//
//   C0 controls (TAB, LF and CR included) →  \xHH      (ESC → \x1b, as guard-agent escapes lines)
//   DEL and the C1 controls U+0080–U+009F →  \u007f, \u009b, …
//   format characters (Unicode Cf: bidi    →  \u202e, \u200b, … (a character beyond U+FFFF as its
//   controls, zero-width characters, …)      two UTF-16 units: \udb40\udc01)
//   and U+2028, U+2029
//
// The \u forms are JSON's own: `--json` output stays valid JSON and decodes to the same text.
// (packages/agent/src/status/visible.ts: the metrics' label values use the same.)
import { visible } from '@guard/agent/src/status/visible';

export { visible };

/** Text of several lines (a help text, pretty-printed JSON): each line made visible, '\n' kept. */
export function visibleLines(s: string): string {
  return s.split('\n').map(visible).join('\n');
}

/** guardctl's own colours: SGR sequences, and nothing else, are what it writes raw. */
const SGR = /\x1b\[[0-9;]*m/g;

/**
 * A line of the coloured status table: its cells were made visible before they were painted, so
 * the only escapes left are guardctl's own SGR codes. Checked rather than trusted: a line with any
 * other raw control is written with its colours escaped too.
 */
export function paintedLine(line: string): string {
  const text = line.replace(SGR, '');
  return visible(text) === text ? line : visible(line);
}
