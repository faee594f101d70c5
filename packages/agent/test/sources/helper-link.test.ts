// The agent's link to guard-helper says hello on connect; a helper that does not speak its protocol
// version is a clear error in the link's lastError (what `guardctl status` shows), not a retry loop
// of unexplained failures. The helper here answers as guard-helper does (docs/protocol.md, hello).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as fdpass from '@guard/fdpass';
import { PROTOCOL_VERSION } from '@guard/protocol/wire';
import { HelperLink } from '../../src/sources/helper-link';
import { captureLogger } from '../sinks/fixtures';

/** A helper speaking protocol version `version`: it refuses every other hello with `version`. */
function helperSpeaking(path: string, version: number): () => void {
  const lfd = fdpass.listen(path);
  const fds = [lfd];
  const watchers: fdpass.Watcher[] = [];
  const listener = new fdpass.Watcher(lfd, () => {
    for (let fd = fdpass.accept(lfd); fd >= 0; fd = fdpass.accept(lfd)) {
      const conn = fd;
      fds.push(conn);
      const w = new fdpass.Watcher(conn, () => {
        const m = fdpass.recv(conn, 4096, 0);
        if (!m || m.data.length === 0) return w.stop();
        const req = JSON.parse(m.data.toString()) as { op: string; version: number };
        const message = `the client speaks protocol version ${req.version}, this helper ${version}`;
        fdpass.send(
          conn,
          Buffer.from(JSON.stringify({ ok: false, op: 'hello', error: 'version', message })),
        );
      });
      w.start(true, false);
      watchers.push(w);
    }
  });
  listener.start(true, false);
  return () => {
    for (const w of [listener, ...watchers]) w.close();
    for (const fd of fds) fdpass.close(fd);
  };
}

describe('HelperLink', () => {
  const dir = mkdtempSync(join(tmpdir(), 'guard-link-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reports a helper of another protocol version in lastError, naming both versions', async () => {
    const socket = join(dir, 'helper.sock');
    const stop = helperSpeaking(socket, PROTOCOL_VERSION + 1);
    const { logger } = captureLogger();
    const link = new HelperLink(socket, logger);
    try {
      await assert.rejects(link.call((c) => c.listAll('app')));
      assert.equal(link.connected, false);
      assert.equal(
        link.lastError,
        `cannot connect to ${socket}: version: the client speaks protocol version ${PROTOCOL_VERSION}, this helper ${PROTOCOL_VERSION + 1}`,
      );
    } finally {
      link.close();
      stop();
    }
  });
});
