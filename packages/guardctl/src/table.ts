// Tables for a person: columns fitted to the terminal (long cells cut in the middle with `…`, so a
// path keeps its start and its file name, and no row ever wraps), colours only on a terminal.
// Piped output is the same table, plain and untruncated, so `grep` and `awk` see whole paths.
// Every cell is made visible (terminal.ts) first, on a terminal and piped alike.
import { visible } from './terminal';

/** ANSI SGR codes guardctl uses; `paint` emits them only when colour is on. */
export const SGR = {
  bold: '1',
  dim: '2',
  red: '31',
  green: '32',
  yellow: '33',
  cyan: '36',
} as const;
export type Style = keyof typeof SGR;

export interface Output {
  /** colour on: stdout is a terminal (or FORCE_COLOR) and NO_COLOR is unset */
  color: boolean;
  /** fit to this many columns; null = piped: never truncate */
  columns: number | null;
}

/**
 * Colour only on a terminal. FORCE_COLOR (anything but '0' or empty) forces it on, as in
 * supports-color; otherwise a non-empty NO_COLOR (no-color.org) turns it off.
 */
export function decideOutput(
  env: NodeJS.ProcessEnv,
  tty: { isTTY: boolean; columns: number | undefined },
): Output {
  const force = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0';
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  const color = force || (!noColor && tty.isTTY);
  return { color, columns: tty.isTTY ? (tty.columns && tty.columns > 0 ? tty.columns : 80) : null };
}

export function paint(out: Output, style: Style | Style[] | null, text: string): string {
  text = visible(text); // no-op on the text renderTable and fitLine give it
  if (!out.color || style === null || text === '') return text;
  const codes = (Array.isArray(style) ? style : [style]).map((s) => SGR[s]).join(';');
  return `\x1b[${codes}m${text}\x1b[0m`;
}

const ANSI = /\x1b\[[0-9;]*m/g;
export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

/** Printed width: one column per code point (guard's paths and messages are what it gets; wide CJK glyphs are not measured). */
export function width(s: string): number {
  let n = 0;
  for (const _ of stripAnsi(s)) n++;
  return n;
}

/** `s` cut to `w` columns by replacing its middle with `…`: `/var/log/…/auth.log`. */
export function truncateMiddle(s: string, w: number): string {
  const chars = Array.from(s);
  if (chars.length <= w) return s;
  if (w <= 0) return '';
  if (w === 1) return '…';
  const keep = w - 1;
  const head = Math.ceil(keep / 2);
  const tail = keep - head;
  return (
    chars.slice(0, head).join('') +
    '…' +
    (tail > 0 ? chars.slice(chars.length - tail).join('') : '')
  );
}

export interface Column {
  header: string;
  /** never cut below this many columns (the header's width by default) */
  min?: number;
  align?: 'left' | 'right';
}

export interface Cell {
  text: string;
  style?: Style | Style[] | null;
}

const GAP = 2;

/**
 * Widths that fit `columns`: start from the widest cell of each column, then take one column at a
 * time from whichever column is widest above its minimum until the row fits; if the minimums
 * themselves do not fit, cut below them (the last resort is one column each).
 */
export function fitWidths(natural: number[], mins: number[], columns: number | null): number[] {
  const w = [...natural];
  if (columns === null) return w;
  const total = () => w.reduce((a, b) => a + b, 0) + GAP * Math.max(0, w.length - 1);
  for (const floor of [mins.map((m, i) => Math.min(m, natural[i]!)), w.map(() => 1)]) {
    while (total() > columns) {
      let pick = -1;
      for (let i = 0; i < w.length; i++) {
        if (w[i]! > floor[i]! && (pick < 0 || w[i]! - floor[i]! > w[pick]! - floor[pick]!))
          pick = i;
      }
      if (pick < 0) break;
      w[pick]! -= 1;
    }
  }
  return w;
}

/** Renders rows under a bold header line; returns the lines (no trailing newline). */
export function renderTable(columns: Column[], rows: Cell[][], out: Output): string[] {
  // Escaped before measuring and cutting: a file name's ESC is \x1b, four columns, never raw.
  rows = rows.map((r) => r.map((c) => ({ ...c, text: visible(c.text) })));
  const natural = columns.map((c, i) =>
    Math.max(width(c.header), ...rows.map((r) => width(r[i]?.text ?? ''))),
  );
  const mins = columns.map((c) => c.min ?? width(c.header));
  const w = fitWidths(natural, mins, out.columns);
  const last = columns.length - 1;
  const line = (cells: Cell[], header: boolean): string => {
    const parts = columns.map((c, i) => {
      const cell = cells[i] ?? { text: '' };
      const text = truncateMiddle(cell.text, w[i]!);
      // pad before painting, so escape codes never count as width; the last column is not padded
      const pad = i === last ? '' : ' '.repeat(w[i]! - width(text));
      const painted = paint(out, header ? 'bold' : (cell.style ?? null), text);
      return c.align === 'right' ? pad + painted : painted + pad;
    });
    return parts.join(' '.repeat(GAP)).replace(/\s+$/, '');
  };
  return [
    line(
      columns.map((c) => ({ text: c.header })),
      true,
    ),
    ...rows.map((r) => line(r, false)),
  ];
}

/** A line of free text on a terminal: cut in the middle to the width, never wrapped. */
export function fitLine(text: string, out: Output): string {
  text = visible(text);
  return out.columns === null ? text : truncateMiddle(text, out.columns);
}
