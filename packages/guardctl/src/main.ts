// guardctl: the operator CLI. Each command is one entry in `commands`; `main` only dispatches.
import { closeSync, fstatSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { HelperClient, HelperConnectionError, HelperRefusal } from '@guard/protocol/client';
import { checkConfig } from '@guard/agent/src/config/check';
import { installPaths, InstallInfoError, loadInstall, type Install } from './install';
import {
  type JournalHeader,
  readHeader,
  STATE_NAMES,
} from '@guard/agent/src/sources/journal/header';
import { collectStatus, readAgentStatus, StatusAccessError } from './status/collect';
import { renderStatus } from './status/render';
import { classify, HEALTH_EXIT, statusJson } from './status/report';
import { decideOutput } from './table';
import { paintedLine, visible, visibleLines } from './terminal';
import { formatResult, runChecks } from './verify/checks';

// `guardctl status | head`: the reader went away; that is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    else throw e;
  });
}

export const DEFAULT_HELPER_SOCKET = '/run/guard/helper.sock';

/** Exit codes shared by every command. */
export const EXIT_OK = 0; // granted / healthy
export const EXIT_NO = 1; // refused / a check failed
export const EXIT_CANNOT_ASK = 2; // usage error, or the question could not be asked at all

export interface Io {
  stdout(line: string): void;
  stderr(line: string): void;
  /** A line of the coloured status table (terminal.ts paintedLine); stdout when absent. */
  painted?(line: string): void;
  env: NodeJS.ProcessEnv;
  /** stdout's terminal, when it is one: decides colours and widths (absent: piped) */
  tty?: { isTTY: boolean; columns: number | undefined };
  /** where install.json is looked for without --root (the installed bundle's own directory) */
  bundleDir?: string;
}

interface Command {
  usage: string;
  summary: string;
  /** Returns the exit code. Throws UsageError for bad arguments. */
  run(args: string[], io: Io): Promise<number>;
}

class UsageError extends Error {}

/** An error a person can act on: printed as `guardctl: <message>`, exit 2. */
class CannotAsk extends Error {}

const commands: Record<string, Command> = {
  probe: {
    usage: 'guardctl probe PATH [--socket S] [--json]',
    summary:
      'ask the running guard-helper to open PATH exactly as the agent would, and show its answer',
    run: probe,
  },
  status: {
    usage: 'guardctl status [--json] [--root DIR] [--status-socket S] [--helper-socket S]',
    summary: 'helper, agent, every source file and sink, audit; exit 0 healthy, 1 degraded, 2 down',
    run: status,
  },
  verify: {
    usage: 'guardctl verify [--root DIR] [--status-socket S]',
    summary:
      'check users, processes, owners and modes, config and code permissions, units: PASS/FAIL/SKIP per line',
    run: verify,
  },
  'check-config': {
    usage: 'guardctl check-config [FILE] [--root DIR]',
    summary:
      "validate a guard.conf with the agent's own schema (default ROOT/etc/guard/guard.conf)",
    run: checkConfigCommand,
  },
};

function helpText(): string {
  const width = Math.max(...Object.values(commands).map((c) => c.usage.length));
  return [
    'usage: guardctl COMMAND [ARGS]',
    '',
    'commands:',
    ...Object.values(commands).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`),
    '',
    'options:',
    `  --socket S  the helper's socket (default $GUARD_HELPER_SOCKET, else ${DEFAULT_HELPER_SOCKET})`,
    '  --json      print one JSON object on stdout instead of a sentence',
    '  --root DIR  an install under DIR (reads DIR/usr/lib/guard/install.json); default: the install',
    '              this guardctl belongs to, else / with user guard, groups guard and guard-audit',
    "  --status-socket S, --helper-socket S   the agent's status socket / the helper's socket",
    '  --help      show this help',
    '',
    'status, verify and check-config are read-only: they work for root and for members of the',
    "agent's group. status prints a coloured table on a terminal (NO_COLOR turns colours off,",
    'FORCE_COLOR=1 forces them), plain text when piped. verify exits 1 on any FAIL.',
    '',
    'probe exits 0 when the helper grants PATH, 1 when it refuses, 2 when it cannot be asked',
    '(the reason is printed on stderr, also with --json). Run probe as the agent user, e.g.',
    '`sudo -u guard guardctl probe /var/log/syslog`: the helper serves no one else.',
  ].join('\n');
}

async function probe(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseOptions(args, {
    socket: { type: 'string' },
    json: { type: 'boolean' },
  });
  const path = positionals[0];
  if (path === undefined || positionals.length > 1)
    throw new UsageError('probe takes exactly one PATH');
  const socket =
    typeof values.socket === 'string'
      ? values.socket
      : io.env.GUARD_HELPER_SOCKET || DEFAULT_HELPER_SOCKET;
  const json = values.json === true;

  const client = await connectOrExplain(socket);
  let answer: { reply: { path: string; dev: string; ino: string; size: number }; fd: number };
  try {
    answer = await client.open(path);
  } catch (e) {
    if (e instanceof HelperRefusal && e.code !== 'peer') {
      io.stdout(
        visible(
          json
            ? JSON.stringify({ granted: false, code: e.code, message: e.message })
            : `refused: ${e.code}: ${e.message}`,
        ),
      );
      return EXIT_NO;
    }
    throw explainConversationError(e, socket);
  } finally {
    client.close();
  }

  const { reply, fd } = answer;
  let journal: JournalHeader | null;
  try {
    // The descriptor, not the reply, is what the agent would read: check it is the file named.
    const st = fstatSync(fd, { bigint: true });
    if (String(st.dev) !== reply.dev || String(st.ino) !== reply.ino) {
      throw new CannotAsk(
        `the helper's reply names dev ${reply.dev} ino ${reply.ino}, but the descriptor it sent ` +
          `is dev ${st.dev} ino ${st.ino}: report this as a guard-helper bug`,
      );
    }
    journal = readHeader(fd); // a journal file: what the agent's reader will find in it
  } finally {
    closeSync(fd);
  }
  const journalText = journal
    ? `; journal file, ${STATE_NAMES[journal.state] ?? `state ${journal.state}`}, ${journal.entries} entries`
    : '';
  io.stdout(
    json
      ? JSON.stringify({
          granted: true,
          path: reply.path,
          dev: reply.dev,
          ino: reply.ino,
          size: reply.size,
          ...(journal
            ? {
                journal: {
                  state: STATE_NAMES[journal.state] ?? journal.state,
                  entries: journal.entries,
                },
              }
            : {}),
        })
      : `granted: ${reply.path} (dev ${reply.dev}, ino ${reply.ino}, size ${reply.size} bytes${journalText})`,
  );
  return EXIT_OK;
}

const installOptions = {
  root: { type: 'string' },
  'status-socket': { type: 'string' },
  'helper-socket': { type: 'string' },
} as const;

const str = (v: string | boolean | undefined): string | undefined =>
  typeof v === 'string' ? v : undefined;

function installOf(values: { root?: string | boolean | undefined }, io: Io): Install {
  try {
    return loadInstall(str(values.root), io.bundleDir ?? __dirname);
  } catch (e) {
    if (e instanceof InstallInfoError) throw new CannotAsk(`${e.code}: ${e.message}`);
    throw e;
  }
}

async function status(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseOptions(args, {
    ...installOptions,
    json: { type: 'boolean' },
  });
  if (positionals.length) throw new UsageError('status takes no arguments');
  const install = installOf(values, io);
  const P = installPaths(install);
  let report;
  try {
    report = await collectStatus(
      {
        statusSocket: str(values['status-socket']) ?? P.statusSocket,
        helperSocket: str(values['helper-socket']) ?? P.helperSocket,
        helperPid: P.helperPid,
        defaultHelperSocket: P.helperSocket,
      },
      install,
    );
  } catch (e) {
    if (e instanceof StatusAccessError) throw new CannotAsk(`${e.code}: ${e.message}`);
    throw e;
  }
  const { health } = classify(report);
  if (values.json === true) io.stdout(JSON.stringify(statusJson(report), null, 2));
  else {
    const out = decideOutput(io.env, io.tty ?? { isTTY: false, columns: undefined });
    for (const line of renderStatus(report, out)) (io.painted ?? io.stdout)(line);
  }
  return HEALTH_EXIT[health];
}

async function verify(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseOptions(args, {
    ...installOptions,
    json: { type: 'boolean' },
  });
  if (positionals.length) throw new UsageError('verify takes no arguments');
  const install = installOf(values, io);
  const P = installPaths(install);
  let agentPid: number | null = null;
  try {
    agentPid = (
      await readAgentStatus(str(values['status-socket']) ?? P.statusSocket, install, 2000)
    ).agent.pid;
  } catch {
    /* the agent is then looked for in /proc; a missing agent is a FAIL line of its own */
  }
  const results = runChecks({ install, agentPidFromStatus: agentPid, selfPid: process.pid });
  const failed = results.filter((r) => r.verdict === 'FAIL').length;
  if (values.json === true) io.stdout(JSON.stringify({ install, failed, results }, null, 2));
  else {
    io.stdout(
      visible(
        `guard verify: ${install.root === '/' ? 'this host' : install.root} (user ${install.user}, group ${install.group}, audit group ${install.auditGroup}, init ${install.init}; from ${install.from})`,
      ),
    );
    for (const r of results) io.stdout(visible(formatResult(r)));
    io.stdout(
      `${results.length} checks: ${results.filter((r) => r.verdict === 'PASS').length} PASS, ${failed} FAIL, ${results.filter((r) => r.verdict === 'SKIP').length} SKIP`,
    );
  }
  return failed ? EXIT_NO : EXIT_OK;
}

async function checkConfigCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseOptions(args, { root: { type: 'string' } });
  if (positionals.length > 1) throw new UsageError('check-config takes at most one FILE');
  const file = positionals[0] ?? installPaths(installOf(values, io)).config;
  const r = checkConfig(file);
  for (const line of r.lines) (r.ok ? io.stdout : io.stderr)(visible(line));
  return r.ok ? EXIT_OK : EXIT_NO;
}

async function connectOrExplain(socket: string): Promise<HelperClient> {
  try {
    return await HelperClient.connect(socket);
  } catch (e) {
    // connect says hello: the helper may refuse this user (peer) or this version there
    if (e instanceof HelperRefusal || e instanceof HelperConnectionError)
      throw explainConversationError(e, socket);
    const code = (e as { code?: unknown }).code;
    const why: Record<string, string> = {
      ENOENT:
        'no such socket (is guard-helper running? `systemctl status guard-helper`; or pass --socket)',
      EACCES: 'permission denied (run as the agent user, e.g. `sudo -u guard guardctl ...`)',
      EPERM: 'permission denied (run as the agent user, e.g. `sudo -u guard guardctl ...`)',
      ECONNREFUSED:
        'connection refused (the socket exists but no helper listens on it: restart guard-helper)',
      EAGAIN:
        'the helper is not accepting connections (its backlog stayed full for 2 s): try again',
      ENOTSOCK: 'not a socket (check --socket / GUARD_HELPER_SOCKET)',
      ENOTDIR: 'a component of the path is not a directory (check --socket / GUARD_HELPER_SOCKET)',
      EPROTOTYPE: 'not a SOCK_SEQPACKET socket (is this the guard-helper socket?)',
    };
    // connect(2) says ECONNREFUSED for a path that is not a socket at all: tell the two apart.
    const notSocket = code === 'ECONNREFUSED' && !isSocket(socket);
    const reason = notSocket
      ? why.ENOTSOCK
      : typeof code === 'string'
        ? (why[code] ?? `${code} (${(e as Error).message})`)
        : String(e);
    throw new CannotAsk(`cannot connect to ${socket}: ${reason}`);
  }
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return true; // cannot tell: keep the connect error as it is
  }
}

function explainConversationError(e: unknown, socket: string): Error {
  if (e instanceof HelperRefusal && e.code === 'version')
    return new CannotAsk(`the helper refused this guardctl's protocol version: ${e.message}`);
  if (e instanceof HelperRefusal) {
    // code 'peer': we connected, but are not the agent user
    return new CannotAsk(
      `the helper at ${socket} refused this user (uid ${process.getuid?.() ?? '?'}): ${e.message} ` +
        '(run as the agent user, e.g. `sudo -u guard guardctl probe PATH`)',
    );
  }
  if (e instanceof HelperConnectionError) {
    const why: Record<string, string> = {
      helper_closed:
        'the helper closed the connection before answering (check its log: `journalctl -u guard-helper`)',
      helper_protocol: `the helper sent a reply this guardctl does not understand (${e.message}); are guardctl and guard-helper the same version?`,
      request_too_large: `${e.message}: the agent could not ask for this path either`,
      client_closed: e.message,
    };
    return new CannotAsk(why[e.code] ?? e.message);
  }
  return e instanceof Error ? e : new Error(String(e));
}

type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

function parseOptions(args: string[], options: OptionSpec) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Runs guardctl with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout)(helpText());
    return name === undefined ? EXIT_CANNOT_ASK : EXIT_OK;
  }
  const command = Object.prototype.hasOwnProperty.call(commands, name) ? commands[name] : undefined;
  if (!command) {
    io.stderr(
      visibleLines(`guardctl: unknown command ${visible(JSON.stringify(name))}\n\n${helpText()}`),
    );
    return EXIT_CANNOT_ASK;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(`usage: ${command.usage}\n  ${command.summary}`);
    return EXIT_OK;
  }
  // Every line leaves through `safe`: whatever a command prints, no control character, C1 or bidi
  // control reaches the terminal raw (terminal.ts); single-line messages that carry someone
  // else's text are made visible where they are written, so their '\n' cannot start a line.
  const safe: Io = {
    ...io,
    stdout: (line) => io.stdout(visibleLines(line)),
    stderr: (line) => io.stderr(visibleLines(line)),
    painted: (line) => io.stdout(paintedLine(line)),
  };
  try {
    return await command.run(rest, safe);
  } catch (e) {
    if (e instanceof UsageError) {
      safe.stderr(`guardctl ${name}: ${visible(e.message)}\nusage: ${command.usage}`);
      return EXIT_CANNOT_ASK;
    }
    if (e instanceof CannotAsk) {
      safe.stderr(`guardctl ${name}: ${visible(e.message)}`);
      return EXIT_CANNOT_ASK;
    }
    throw e;
  }
}

if (require.main === module) {
  const io: Io = {
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
    env: process.env,
    tty: { isTTY: process.stdout.isTTY === true, columns: process.stdout.columns },
    bundleDir: __dirname,
  };
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(
        `guardctl: internal error: ${visibleLines(e instanceof Error ? (e.stack ?? e.message) : String(e))}\n`,
      );
      process.exitCode = EXIT_CANNOT_ASK;
    },
  );
}
