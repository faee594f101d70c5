// A sandbox directory under /run (root-owned 0755 all the way up: the helper's StrictModes-style
// check refuses configs below /tmp), holding a copy of the built programs the test users can read.
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(__dirname, '..', '..');
export const distFiles = [
  'guard-helper.js',
  'guardctl.js',
  'guard-agent.js',
  'fdpass.node',
  'fdpass-connect.node',
  'journal.node',
] as const;
/** The built programs under test: <repo>/dist, or GUARD_TEST_DIST (e.g. an installed copy). */
export const distDir = process.env.GUARD_TEST_DIST || join(repoRoot, 'dist');
const fixtures = ['peer.cjs', 'swap.py', 'sendfds.py', 'force-gc.cjs', 'watch-peer.py'] as const;

export interface Owner {
  uid: number;
  gid: number;
}

export function distReady(): boolean {
  return distFiles.every((f) => existsSync(join(distDir, f)));
}

export class Sandbox {
  readonly dir: string;
  readonly code: string;

  constructor() {
    if (!distReady()) {
      throw new Error(
        `${distDir} is incomplete (${distFiles.join(', ')}): run \`npm run build\` in ${repoRoot} first`,
      );
    }
    this.dir = mkdtempSync('/run/guard-test-');
    chmodSync(this.dir, 0o755);
    this.code = this.mkdir('code');
    for (const f of distFiles) this.copyIn(join(distDir, f), f);
    for (const f of fixtures) this.copyIn(join(repoRoot, 'test', 'fixtures', f), f);
  }

  private copyIn(src: string, name: string): void {
    const dst = join(this.code, name);
    copyFileSync(src, dst);
    chownSync(dst, 0, 0);
    chmodSync(dst, 0o644);
  }

  get helperJs(): string {
    return join(this.code, 'guard-helper.js');
  }
  get guardctlJs(): string {
    return join(this.code, 'guardctl.js');
  }
  get agentJs(): string {
    return join(this.code, 'guard-agent.js');
  }
  get addon(): string {
    return join(this.code, 'fdpass.node');
  }
  get peerJs(): string {
    return join(this.code, 'peer.cjs');
  }
  get swapPy(): string {
    return join(this.code, 'swap.py');
  }
  get sendFdsPy(): string {
    return join(this.code, 'sendfds.py');
  }
  get watchPeerPy(): string {
    return join(this.code, 'watch-peer.py');
  }
  get forceGcJs(): string {
    return join(this.code, 'force-gc.cjs');
  }

  path(...rel: string[]): string {
    return join(this.dir, ...rel);
  }

  mkdir(rel: string, mode = 0o755, owner: Owner = { uid: 0, gid: 0 }): string {
    const p = this.path(rel);
    mkdirSync(p, { recursive: true });
    chownSync(p, owner.uid, owner.gid);
    chmodSync(p, mode);
    return p;
  }

  file(rel: string, content: string, mode = 0o644, owner: Owner = { uid: 0, gid: 0 }): string {
    const p = this.path(rel);
    writeFileSync(p, content);
    chownSync(p, owner.uid, owner.gid);
    chmodSync(p, mode);
    return p;
  }

  symlink(target: string, rel: string, owner: Owner = { uid: 0, gid: 0 }): string {
    const p = this.path(rel);
    symlinkSync(target, p);
    lchownSync(p, owner.uid, owner.gid);
    return p;
  }

  /** Writes a root-owned 0644 file atomically (a helper may be re-reading it on SIGHUP). */
  writeConfig(rel: string, text: string, mode = 0o644, owner: Owner = { uid: 0, gid: 0 }): string {
    const p = this.path(rel);
    const tmp = `${p}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    chownSync(tmp, owner.uid, owner.gid);
    chmodSync(tmp, mode);
    renameSync(tmp, p);
    return p;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
