// Real syslog receivers for system tests: rsyslogd (imtcp, imtcp over TLS with gtls, imrelp, imrelp
// over TLS) and syslog-ng (its syslog() source, IETF framing, plain or TLS), each a private process
// with its own config, work directory and pid file on a 127.0.0.1 port of its own, writing what it
// receives to a file the test reads. Never the host's syslog daemon. Also the test PKI: a CA, a
// server and a client certificate, a second CA nobody trusts, and an expired server certificate.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { makeClientCert, makeTestCa, type TestCa } from './https-receiver';
import { killPid, sleep, start } from './proc';

/** Where test/run-all.sh unpacks syslog-ng (it conflicts with the rsyslog package, so it is not installed). */
export const SYSLOG_NG_ROOT = '/var/cache/guard-test/syslog-ng';

export interface SyslogPki extends TestCa {
  caKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: trusting only it must refuse the receiver. */
  otherCa: string;
  /** Signed by the test CA, valid from 2020-01-01 to 2020-01-02. */
  expiredCert: string;
  expiredKey: string;
}

const ssl = (...args: string[]): void => {
  execFileSync('openssl', args, { stdio: 'pipe' });
};

/** The test PKI in dir (EC P-256, as makeTestCa). */
export function makeSyslogPki(dir: string): SyslogPki {
  const ca = makeTestCa(dir);
  const f = (n: string) => join(dir, n);
  const key = (name: string): void =>
    ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name));
  makeClientCert(dir, ca, 'guard-agent');
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=some other CA',
    '-keyout',
    f('other-ca.key'),
    '-out',
    f('other-ca.pem'),
  );
  // An expired certificate: `openssl ca` takes explicit start and end dates in the past.
  key('expired.key');
  ssl('req', '-new', '-key', f('expired.key'), '-subj', '/CN=127.0.0.1', '-out', f('expired.csr'));
  writeFileSync(f('index.txt'), '');
  writeFileSync(f('serial'), '1000\n');
  writeFileSync(
    f('ca.cnf'),
    [
      '[ca]',
      'default_ca = test',
      '[test]',
      `database = ${f('index.txt')}`,
      `serial = ${f('serial')}`,
      `new_certs_dir = ${dir}`,
      'default_md = sha256',
      'policy = any',
      'copy_extensions = none',
      'x509_extensions = server',
      '[any]',
      'commonName = supplied',
      '[server]',
      'subjectAltName = IP:127.0.0.1,DNS:localhost',
      'extendedKeyUsage = serverAuth',
      '',
    ].join('\n'),
  );
  ssl(
    'ca',
    '-batch',
    '-config',
    f('ca.cnf'),
    '-cert',
    ca.caCert,
    '-keyfile',
    f('ca.key'),
    '-startdate',
    '20200101000000Z',
    '-enddate',
    '20200102000000Z',
    '-in',
    f('expired.csr'),
    '-out',
    f('expired.pem'),
    '-notext',
  );
  return {
    ...ca,
    caKey: f('ca.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    otherCa: f('other-ca.pem'),
    expiredCert: f('expired.pem'),
    expiredKey: f('expired.key'),
  };
}

/** A port nobody listens on now (bound to 127.0.0.1:0 and released); start() retries on a clash. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export type ReceiverKind = 'tcp' | 'tls' | 'relp' | 'relp-tls';

export interface ReceiverOptions {
  kind: ReceiverKind;
  /** a directory of its own: config, pid file, work directory, the output file */
  dir: string;
  /** TLS: the receiver's certificate and key (default the PKI's server pair) */
  cert?: string;
  key?: string;
  pki?: SyslogPki;
  /** TLS: require a client certificate signed by the PKI's CA */
  mutual?: boolean;
}

/** A syslog daemon run by the test. `lines()` is what it wrote, one received message a line. */
abstract class DaemonReceiver {
  port = 0;
  proc: ChildProcess | null = null;
  stderr = '';
  readonly out: string;

  constructor(readonly opts: ReceiverOptions) {
    this.out = join(opts.dir, 'received.log');
  }

  protected abstract command(): [string, string[], NodeJS.ProcessEnv?];
  protected abstract config(): void;

  /** Starts the daemon (on the same port after a kill, else on a fresh one) and waits until it listens. */
  async start(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.port === 0 || attempt > 0) this.port = await freePort();
      this.config();
      const [cmd, args] = this.command();
      const p = start(cmd, args);
      this.proc = p;
      this.stderr = '';
      p.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
      p.stdout?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && p.exitCode === null && !(await accepts(this.port)))
        await sleep(50);
      if (p.exitCode === null && (await accepts(this.port))) return;
      killPid(p.pid, 'SIGKILL');
      if (attempt >= 2 || !/in use|bind/i.test(this.stderr))
        throw new Error(
          `${cmd} did not start listening on ${this.port}: ${this.stderr.slice(-2000)}`,
        );
    }
  }

  /** kill -9 (a crash), waiting until the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    killPid(p.pid, signal);
    await gone;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  lines(): string[] {
    if (!existsSync(this.out)) return [];
    return readFileSync(this.out, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
  }
}

/** rsyslogd 8 with one input; direct queues, so a message is in the output file before it is answered (RELP). */
export class Rsyslog extends DaemonReceiver {
  protected command(): [string, string[]] {
    return [
      '/usr/sbin/rsyslogd',
      ['-n', '-f', join(this.opts.dir, 'rsyslog.conf'), '-i', join(this.opts.dir, 'rsyslogd.pid')],
    ];
  }

  protected config(): void {
    const { kind, dir, pki } = this.opts;
    const cert = this.opts.cert ?? pki?.serverCert;
    const key = this.opts.key ?? pki?.serverKey;
    const auth = this.opts.mutual ? 'x509/certvalid' : 'anon';
    const lines = [
      `global(workDirectory="${dir}" maxMessageSize="128k")`,
      'main_queue(queue.type="Direct")',
      'template(name="t" type="string" string="%pri% %timereported:::date-rfc3339% %hostname% %app-name% %procid% %msgid% %structured-data% %msg%\\n")',
    ];
    if (kind === 'tcp' || kind === 'tls') {
      if (kind === 'tls')
        lines.push(
          `global(defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="${pki!.caCert}" defaultNetstreamDriverCertFile="${cert}" defaultNetstreamDriverKeyFile="${key}")`,
          `module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="${auth}")`,
        );
      else lines.push('module(load="imtcp")');
      lines.push(`input(type="imtcp" address="127.0.0.1" port="${this.port}" ruleset="r")`);
    } else {
      lines.push('module(load="imrelp")');
      const tls =
        kind === 'relp-tls'
          ? ` tls="on" tls.cacert="${pki!.caCert}" tls.mycert="${cert}" tls.myprivkey="${key}"${this.opts.mutual ? ' tls.authmode="certvalid"' : ''}`
          : '';
      lines.push(`input(type="imrelp" address="127.0.0.1" port="${this.port}" ruleset="r"${tls})`);
    }
    lines.push(
      'ruleset(name="r") {',
      `  action(type="omfile" file="${this.out}" template="t" asyncWriting="off" flushOnTXEnd="on")`,
      '}',
      '',
    );
    writeFileSync(join(dir, 'rsyslog.conf'), lines.join('\n'));
  }
}

/** syslog-ng 3.38 from the unpacked package, its syslog() source (RFC 5424, octet counting). */
export class SyslogNg extends DaemonReceiver {
  static available(): boolean {
    return existsSync(join(SYSLOG_NG_ROOT, 'usr/sbin/syslog-ng'));
  }

  protected command(): [string, string[]] {
    const d = this.opts.dir;
    // LD_LIBRARY_PATH through env(1): proc.start() gives every child the same clean environment.
    return [
      '/usr/bin/env',
      [
        `LD_LIBRARY_PATH=${SYSLOG_NG_ROOT}/usr/lib/syslog-ng`,
        join(SYSLOG_NG_ROOT, 'usr/sbin/syslog-ng'),
        '-F',
        `--module-path=${SYSLOG_NG_ROOT}/usr/lib/syslog-ng/3.38`,
        '-f',
        join(d, 'syslog-ng.conf'),
        '-R',
        join(d, 'persist'),
        '-p',
        join(d, 'syslog-ng.pid'),
        '-c',
        join(d, 'syslog-ng.ctl'),
      ],
    ];
  }

  protected config(): void {
    const { kind, dir, pki } = this.opts;
    if (kind !== 'tcp' && kind !== 'tls') throw new Error('syslog-ng speaks no RELP');
    const tls =
      kind === 'tls'
        ? ` transport(tls) tls(key-file("${this.opts.key ?? pki!.serverKey}") cert-file("${this.opts.cert ?? pki!.serverCert}") ca-file("${pki!.caCert}") peer-verify(${this.opts.mutual ? 'required-trusted' : 'optional-untrusted'}))`
        : ' transport(tcp)';
    writeFileSync(
      join(dir, 'syslog-ng.conf'),
      [
        '@version: 3.38',
        'options { keep-hostname(yes); keep-timestamp(yes); frac-digits(3); log-msg-size(131072); };',
        `source s { syslog(ip(127.0.0.1) port(${this.port})${tls} max-connections(10)); };`,
        `destination d { file("${this.out}" template("$PRI $ISODATE $HOST $PROGRAM $PID $MSGID $SDATA $MSG\\n")); };`,
        'log { source(s); destination(d); };',
        '',
      ].join('\n'),
    );
  }
}
