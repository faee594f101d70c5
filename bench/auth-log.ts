// A deterministic auth.log as Debian 12's rsyslog writes it (RFC 3339 timestamps with microseconds):
// sshd logins and failures, sudo commands, CRON sessions and systemd-logind sessions, mixed in
// roughly the proportions of a busy internet-facing host. Same seed, same bytes.
import { closeSync, openSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';

/** mulberry32: small, fast, and the same sequence on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const USERS = ['alice', 'bob', 'carol', 'deploy', 'ansible', 'backup'];
const UIDS: Record<string, number> = {
  alice: 1000,
  bob: 1001,
  carol: 1002,
  deploy: 1100,
  ansible: 1101,
  backup: 34,
};
const INVALID = [
  'admin',
  'test',
  'oracle',
  'ubuntu',
  'guest',
  'pi',
  'user',
  'ftpuser',
  'postgres',
  'git',
  'support',
  'debian',
];
const SUDO = [
  '/usr/bin/apt update',
  '/usr/bin/apt upgrade -y',
  '/usr/bin/systemctl restart nginx',
  '/usr/bin/journalctl -u sshd -n 100',
  '/usr/bin/tail -f /var/log/syslog',
  '/usr/sbin/reboot',
  '/usr/bin/docker ps',
  '/usr/bin/cat /etc/shadow',
];
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export class AuthLogGenerator {
  private readonly r: () => number;
  private clockMs: number;
  private session = 40;
  private readonly keys: Record<string, string> = {};

  constructor(seed = 0x6a7d, startMs = Date.UTC(2026, 10, 24, 9, 5, 1)) {
    this.r = prng(seed);
    this.clockMs = startMs;
    for (const u of USERS) {
      let fp = '';
      for (let i = 0; i < 43; i++) fp += B64[this.int(64)];
      this.keys[u] = `${this.pick(['ED25519', 'ED25519', 'RSA', 'ECDSA'])} SHA256:${fp}`;
    }
  }

  private int(n: number): number {
    return Math.floor(this.r() * n);
  }
  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  private internalIp(): string {
    return `10.${1 + this.int(4)}.${this.int(256)}.${1 + this.int(254)}`;
  }
  private publicIp(): string {
    return `${this.pick([45, 103, 185, 193, 203, 218])}.${this.int(256)}.${this.int(256)}.${1 + this.int(254)}`;
  }
  private port(): number {
    return 32768 + this.int(28000);
  }

  /** RFC 3339 with microseconds, as rsyslog's RSYSLOG_FileFormat writes it. */
  static timestamp(ms: number, micros: number): string {
    return `${new Date(ms).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}+00:00`;
  }

  /** The message part (after "host "), without a timestamp. */
  message(): string {
    const x = this.r();
    const pid = 1000 + this.int(64000);
    if (x < 0.5) {
      const y = this.r();
      if (y < 0.35)
        return `sshd[${pid}]: Failed password for invalid user ${this.pick(INVALID)} from ${this.publicIp()} port ${this.port()} ssh2`;
      if (y < 0.5)
        return `sshd[${pid}]: Invalid user ${this.pick(INVALID)} from ${this.publicIp()} port ${this.port()}`;
      if (y < 0.6)
        return `sshd[${pid}]: Failed password for root from ${this.publicIp()} port ${this.port()} ssh2`;
      if (y < 0.72)
        return `sshd[${pid}]: Connection closed by authenticating user root ${this.publicIp()} port ${this.port()} [preauth]`;
      if (y < 0.8)
        return `sshd[${pid}]: Received disconnect from ${this.publicIp()} port ${this.port()}:11: Bye Bye [preauth]`;
      const u = this.pick(USERS);
      if (y < 0.88)
        return `sshd[${pid}]: Accepted publickey for ${u} from ${this.internalIp()} port ${this.port()} ssh2: ${this.keys[u]}`;
      if (y < 0.94)
        return `sshd[${pid}]: pam_unix(sshd:session): session opened for user ${u}(uid=${UIDS[u]}) by (uid=0)`;
      return `sshd[${pid}]: pam_unix(sshd:session): session closed for user ${u}`;
    }
    if (x < 0.75) {
      return this.r() < 0.5
        ? `CRON[${pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)`
        : `CRON[${pid}]: pam_unix(cron:session): session closed for user root`;
    }
    if (x < 0.85) {
      const u = this.pick(USERS.slice(0, 4));
      const y = this.r();
      if (y < 0.5)
        return `sudo:    ${u} : TTY=pts/${this.int(6)} ; PWD=/home/${u} ; USER=root ; COMMAND=${this.pick(SUDO)}`;
      if (y < 0.75)
        return `sudo: pam_unix(sudo:session): session opened for user root(uid=0) by ${u}(uid=${UIDS[u]})`;
      return 'sudo: pam_unix(sudo:session): session closed for user root';
    }
    const y = this.r();
    const u = this.pick(USERS);
    if (y < 0.4) return `systemd-logind[612]: New session ${++this.session} of user ${u}.`;
    if (y < 0.7)
      return `systemd-logind[612]: Session ${this.session - this.int(5)} logged out. Waiting for processes to exit.`;
    return `systemd-logind[612]: Removed session ${this.session - this.int(5)}.`;
  }

  /** One line with the generator's own advancing clock (no newline). */
  line(): string {
    this.clockMs += this.int(40);
    return `${AuthLogGenerator.timestamp(this.clockMs, this.int(1000))} web-01 ${this.message()}`;
  }
}

/** Writes `lines` lines to `path` (created 0600); returns its size and SHA-256. */
export function writeAuthLog(
  path: string,
  lines: number,
  seed?: number,
): { bytes: number; sha256: string } {
  const g = new AuthLogGenerator(seed);
  const hash = createHash('sha256');
  const fd = openSync(path, 'wx', 0o600);
  let bytes = 0;
  try {
    for (let done = 0; done < lines;) {
      const n = Math.min(10_000, lines - done);
      let chunk = '';
      for (let i = 0; i < n; i++) chunk += g.line() + '\n';
      const buf = Buffer.from(chunk);
      hash.update(buf);
      for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
      bytes += buf.length;
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return { bytes, sha256: hash.digest('hex') };
}
