// Text from people guard must not trust (file names matched by an allowed glob, the helper's
// messages about them) made visible: every character a terminal acts on, or that displays as
// something else, written as an escape. guardctl prints through it (guardctl/src/terminal.ts says
// why, with the table of escapes); the metrics' label values pass through it too.

const UNSAFE = /[\x00-\x1f\x7f-\x9f\p{Cf}\u2028\u2029]/gu;

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

function escapeOne(c: string): string {
  const code = c.charCodeAt(0);
  if (code < 0x20) return `\\x${hex(code, 2)}`;
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${hex(c.charCodeAt(i), 4)}`;
  return out;
}

/** `s` as one line of visible text: nothing in it is a control or an invisible character. */
export function visible(s: string): string {
  return s.replace(UNSAFE, escapeOne);
}
