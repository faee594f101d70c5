// Direct mode only (no systemd, no OpenRC): starts guard-helper detached, as install.sh's child.
//   node start-helper.cjs LOG GID PIDFILE COMMAND [ARGS...]
// LOG sits in the agent user's log directory but is written by root, so it is opened without
// following a symlink and refused unless it is a root-owned regular file with one link (else the
// agent user could point root's writes at any file). The helper gets a session of its own
// (detached: setsid), a clean environment, / as working directory; its pid goes to PIDFILE.
'use strict';
const fs = require('node:fs');
const { spawn } = require('node:child_process');

const [log, gid, pidfile, ...cmd] = process.argv.slice(2);
const c = fs.constants;
const fd = fs.openSync(
  log,
  c.O_WRONLY | c.O_APPEND | c.O_CREAT | c.O_NOFOLLOW | c.O_NONBLOCK | c.O_NOCTTY,
  0o640,
);
const st = fs.fstatSync(fd);
if (!st.isFile() || st.uid !== 0 || st.nlink !== 1) {
  console.error(`${log} is not a root-owned regular file with one link: refusing to write to it`);
  process.exit(1);
}
fs.fchownSync(fd, 0, Number(gid));
fs.fchmodSync(fd, 0o640);
const child = spawn(cmd[0], cmd.slice(1), {
  detached: true,
  cwd: '/',
  stdio: ['ignore', fd, fd],
  env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
});
fs.writeFileSync(`${pidfile}.new`, `${child.pid}\n`, { mode: 0o644 });
fs.renameSync(`${pidfile}.new`, pidfile);
child.unref();
process.exit(0);
