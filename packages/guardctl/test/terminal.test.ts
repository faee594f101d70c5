// Every command's output leaves guardctl through one escaping boundary (src/terminal.ts): errors,
// usage, verify and check-config lines included, whatever the text came from (issue #12).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { main } from '../src/main';

const HOSTILE = '/tmp/x\x1b]0;PWNED\x07\x1b[2J\u009b31m\u202egol\n.conf';
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\p{Cf}\u2028\u2029]/u;

async function run(argv: string[]) {
  const lines: string[] = [];
  const code = await main(argv, {
    stdout: (l) => lines.push(l),
    stderr: (l) => lines.push(l),
    env: {},
  });
  return { code, text: lines.join('\n') };
}

describe('guardctl output boundary', () => {
  const shown = /\\x1b\]0;PWNED\\x07\\x1b\[2J\\u009b31m\\u202egol\\x0a\.conf/;
  const cases: Array<[string[], RegExp | null]> = [
    [['check-config', HOSTILE], shown],
    [['verify', '--root', HOSTILE], shown],
    [['status', '--root', HOSTILE], shown],
    [['probe', HOSTILE, '--socket', HOSTILE], shown],
    [['check-config', `--${HOSTILE}`], shown],
    // JSON-quoted by guardctl itself: its \u001b escapes, and ours for what JSON leaves raw
    [[HOSTILE], /\\u001b\]0;PWNED\\u0007\\u001b\[2J\\u009b31m\\u202egol\\n\.conf/],
    [['status', HOSTILE], null], // not repeated: "status takes no arguments"
  ];
  for (const [argv, expected] of cases) {
    it(`guardctl ${JSON.stringify(argv).slice(0, 40)}…: nothing raw`, async () => {
      const { code, text } = await run(argv);
      assert.notEqual(code, 0);
      assert.doesNotMatch(text, RAW, text);
      if (expected) assert.match(text, expected);
    });
  }
});
