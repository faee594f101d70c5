#!/usr/bin/env bash
# install.sh — installs, upgrades or removes guard on a Debian/Ubuntu (also RHEL-family, Alpine) host.
#
#   sudo installer/install.sh                 build if needed, install, start (systemd, OpenRC or direct)
#   sudo installer/install.sh --dry-run       print every action, change nothing
#   sudo installer/install.sh --uninstall     stop and remove guard; keep config, state, logs, user
#   sudo installer/install.sh --uninstall --purge    remove those too
#
# Options:
#   --root DIR          install under DIR instead of / (tests); paths in the config are rewritten
#   --user NAME         the agent's system user (default guard)
#   --group NAME        its primary group, the helper socket's group (default guard)
#   --audit-group NAME  the group that may read the audit trail; USER is a member (default guard-audit)
#   --init KIND         systemd | openrc | none | auto (default): systemd if /run/systemd/system
#                       exists, OpenRC if openrc-run and /run/openrc exist, else none (direct mode:
#                       both programs started here, unsupervised)
#   --no-start          install and register, start nothing
#   --with-auditd       install auditd with the host's package manager (apt, dnf/yum, zypper, apk)
#                       if it is missing, enable and start it, and load guard's audit rules
#                       persistently (/etc/audit/rules.d + augenrules). Without it and without
#                       auditd, guard ships no audit trail, and says so.
#   --no-build          use dist/ as it is (fail if incomplete) instead of rebuilding stale output
#   --dry-run           print every action and change nothing
#   --uninstall         stop and remove; with --purge also /etc/guard, /var/lib/guard,
#                       /var/log/guard, the audit rules, the user and the groups
#   --help              this text
#
# Safe to re-run: an existing guard.conf is never overwritten, the code is swapped in as a whole
# directory, and running programs are restarted, not duplicated. The layout and install.json are
# the shared contract read by `guardctl verify` (docs/operations.md).
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
# the layout (paths, owners, modes, names), shared with the packages: installer/layout.sh
# shellcheck source=installer/layout.sh
. "$REPO/installer/layout.sh"

ROOT=/ USER_NAME=$GUARD_USER GROUP=$GUARD_GROUP AUDIT_GROUP=$GUARD_AUDIT_GROUP INIT=auto
DRY_RUN=0 NO_START=0 NO_BUILD=0 UNINSTALL=0 PURGE=0 WITH_AUDITD=0
PROGRAMS=(guard-helper.js guard-agent.js guardctl.js fdpass.node fdpass-connect.node journal.node)

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

# Every change to the host goes through run: it prints the action, and under --dry-run only prints it.
run() {
  if [ "$1" = write_file ]; then
    printf '+ write %s (%s %s:%s)\n' "$5" "$2" "$3" "$4"
    if [ "$DRY_RUN" = 1 ]; then printf '%s\n' "$6" | sed 's/^/  | /'; fi
  else
    printf '+%s\n' "$(printf ' %q' "$@")"
  fi
  if [ "$DRY_RUN" = 1 ]; then return 0; fi
  "$@"
}

# write_file MODE OWNER GROUP PATH CONTENT: a temp file beside PATH, then renamed over it. Only ever
# used in root-owned directories (a user-owned one could swap the temp file for a symlink).
write_file() {
  local tmp
  tmp="$(dirname "$4")/.$(basename "$4").tmp.$$"
  rm -f "$tmp"
  (set -C; printf '%s\n' "$5" >"$tmp")
  chown "$2:$3" "$tmp"
  chmod "$1" "$tmp"
  mv -f "$tmp" "$4"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --user) USER_NAME=${2:?--user needs a name}; shift ;;
    --group) GROUP=${2:?--group needs a name}; shift ;;
    --audit-group) AUDIT_GROUP=${2:?--audit-group needs a name}; shift ;;
    --init) INIT=${2:?--init needs systemd, openrc, none or auto}; shift ;;
    --no-start) NO_START=1 ;;
    --with-auditd) WITH_AUDITD=1 ;;
    --no-build) NO_BUILD=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

# --- checks ----------------------------------------------------------------------------------------
[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || die "--purge goes with --uninstall"
case "$INIT" in systemd|openrc|none|auto) ;; *) die "--init must be systemd, openrc, none or auto" ;; esac
for n in "$USER_NAME" "$GROUP" "$AUDIT_GROUP"; do
  [[ "$n" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "'$n' is not a valid user or group name"
done
[[ "$ROOT" = /* ]] || die "--root must be an absolute path"
ROOT=$(realpath -m "$ROOT" 2>/dev/null || printf %s "$ROOT")
[[ "$ROOT" =~ ^[A-Za-z0-9._/-]+$ ]] || die "--root may hold only letters, digits and . _ / -"
R=${ROOT%/}   # "" for /, so "$R/etc/guard" is always the right path

if [ "$(id -u)" -ne 0 ]; then
  if [ "$DRY_RUN" = 1 ]; then warn "not root: a real run needs root (sudo)"; else die "run as root: sudo $0 $*"; fi
fi

LIB="$R$GUARD_LIB"
CONF_DIR="$R$GUARD_CONF_DIR" CONF="$R$GUARD_CONF"
STATE="$R$GUARD_STATE" LOGS="$R$GUARD_LOGS" METRICS="$R$GUARD_METRICS"
RUN_DIR="$R$GUARD_RUN" AGENT_RUN="$R$GUARD_AGENT_RUN"
HELPER_SOCK="$R$GUARD_HELPER_SOCK" AGENT_SOCK="$R$GUARD_AGENT_SOCK"
HELPER_PID="$R$GUARD_HELPER_PID" AGENT_PID="$R$GUARD_AGENT_PID"
UNITS="$R$GUARD_UNIT_DIR" INITD="$R$GUARD_INITD"
RULES="$R$GUARD_AUDIT_RULES"
HELPER_LOG="$R$GUARD_OPENRC_HELPER_LOG"   # OpenRC's supervise-daemon output of the helper

systemd_runs() { [ -d /run/systemd/system ]; }
openrc_runs() { command -v openrc-run >/dev/null 2>&1 && [ -d /run/openrc ]; }
auditd_runs() { command -v auditctl >/dev/null 2>&1 && auditctl -s 2>/dev/null | grep -Eq '^pid [1-9]'; }
# init systems are told about units only for a real install (ROOT /) on a host that runs them
manage_systemd() { [ "$ROOT" = / ] && systemd_runs; }
manage_openrc() { [ "$ROOT" = / ] && openrc_runs; }
user_exists() { getent passwd "$1" >/dev/null; }
group_exists() { getent group "$1" >/dev/null; }

# Is PID the program SCRIPT (…/guard-agent.js) running as UID? A pid file alone is never trusted:
# the agent's one sits in a directory the agent user can write.
is_ours() {
  local pid=$1 script=$2 uid=$3
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$script" || return 1
  [ "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" = "$uid" ]
}

# Stops the direct-mode process named by PIDFILE if it really is ours; removes the pid file.
stop_pidfile() {
  local name=$1 pidfile=$2 script=$3 uid=$4 pid
  [ -f "$pidfile" ] || return 0
  pid=$(head -c 32 "$pidfile" | tr -cd 0-9)
  if [ -n "$pid" ] && [ -n "$uid" ] && is_ours "$pid" "$script" "$uid"; then
    run kill -TERM "$pid"
    if [ "$DRY_RUN" = 0 ]; then
      for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      if [ -d "/proc/$pid" ]; then run kill -KILL "$pid"; fi
    fi
  else
    say "$name: pid file $pidfile names no running $name (stale); removing it"
  fi
  run rm -f "$pidfile"
}

stop_direct() {
  local uid
  uid=$(id -u "$USER_NAME" 2>/dev/null || true)
  stop_pidfile guard-agent "$AGENT_PID" "$LIB/guard-agent.js" "$uid"
  stop_pidfile guard-helper "$HELPER_PID" "$LIB/guard-helper.js" 0
}

stop_services() {
  if [ -f "$UNITS/guard-agent.service" ] || [ -f "$UNITS/guard-helper.service" ]; then
    if manage_systemd; then run systemctl disable --now guard-agent.service guard-helper.service || true
    else say "systemd is not running here (or --root): no units to stop"; fi
  fi
  if [ -f "$INITD/guard-agent" ] || [ -f "$INITD/guard-helper" ]; then
    if manage_openrc; then
      run rc-service guard-agent stop || true
      run rc-service guard-helper stop || true
      run rc-update del guard-agent default || true
      run rc-update del guard-helper default || true
    else say "OpenRC is not running here (or --root): no services to stop"; fi
  fi
  stop_direct
}

# Removes the directories install.sh may have created under a test ROOT, when they are empty.
prune_root() {
  local d
  [ "$ROOT" != / ] || return 0
  for d in usr/lib usr/sbin usr/bin usr etc/systemd/system etc/systemd etc/init.d etc/audit/rules.d etc/audit \
           etc var/lib var/log var run; do
    if [ -d "$R/$d" ]; then run rmdir --ignore-fail-on-non-empty "$R/$d"; fi
  done
}

# --- uninstall -------------------------------------------------------------------------------------
if [ "$UNINSTALL" = 1 ]; then
  step "Stopping guard"
  stop_services
  step "Removing code, wrappers, services and runtime directories"
  for f in "$UNITS/guard-helper.service" "$UNITS/guard-agent.service" "$UNITS/guard-helper.socket" \
           "$INITD/guard-helper" "$INITD/guard-agent" \
           "$R/usr/sbin/guard-helper" "$R/usr/sbin/guard-agent" "$R/usr/bin/guardctl"; do
    if [ -e "$f" ] || [ -L "$f" ]; then run rm -f "$f"; fi
  done
  if manage_systemd; then run systemctl daemon-reload; fi
  for d in "$LIB" "$RUN_DIR"; do if [ -e "$d" ]; then run rm -rf "$d"; fi; done
  if [ "$PURGE" = 1 ]; then
    step "Purging configuration, state, logs, audit rules, user and groups"
    for d in "$CONF_DIR" "$STATE" "$LOGS" "$METRICS"; do if [ -e "$d" ]; then run rm -rf "$d"; fi; done
    for f in "$HELPER_LOG" "$HELPER_LOG".[0-9]*; do if [ -f "$f" ]; then run rm -f "$f"; fi; done
    if [ "$ROOT" = / ] && command -v auditctl >/dev/null 2>&1 && auditctl -l 2>/dev/null | grep -q 'guard-'; then
      # exactly the rules keyed guard-…, nothing of the host's own
      run bash "$REPO/audit-rules/unload.sh" || true
    fi
    if [ -f "$RULES" ]; then
      run rm -f "$RULES"
      if [ "$ROOT" = / ] && command -v augenrules >/dev/null 2>&1; then run augenrules || true; fi
    fi
    # the directories only if empty: auditd's package owns them where it is installed
    for d in "$(dirname "$RULES")" "$(dirname "$(dirname "$RULES")")"; do
      if [ -d "$d" ]; then run rmdir --ignore-fail-on-non-empty "$d"; fi
    done
    if [ "$ROOT" = / ] && command -v auditctl >/dev/null 2>&1; then
      say "kept: auditd itself (a package of the host; remove it with the package manager if guard installed it)"
    fi
    if user_exists "$USER_NAME"; then
      if command -v userdel >/dev/null 2>&1; then run userdel "$USER_NAME"; else run deluser "$USER_NAME"; fi
    fi
    for g in "$AUDIT_GROUP" "$GROUP"; do
      if ! group_exists "$g"; then continue; fi   # userdel may have removed the user's own group
      if command -v groupdel >/dev/null 2>&1; then run groupdel "$g"; else run delgroup "$g"; fi
    done
  else
    say "kept: $CONF_DIR, $STATE, $LOGS, $METRICS$([ -f "$HELPER_LOG" ] && printf ', %s' "$HELPER_LOG"), user $USER_NAME, groups $GROUP and $AUDIT_GROUP (--purge removes them)"
  fi
  prune_root
  step "guard is uninstalled"
  if [ "$DRY_RUN" = 1 ]; then say "(dry run: nothing was changed)"; fi
  exit 0
fi

# --- install: preflight ----------------------------------------------------------------------------
step "Checking the host"
NODE=${NODE:-$(command -v node || true)}
if [ -z "$NODE" ] || ! NODE_MAJOR=$("$NODE" -p 'process.versions.node.split(".")[0]' 2>/dev/null) \
   || [ "$NODE_MAJOR" -lt 20 ]; then
  die "guard needs Node.js 20 or later (found: ${NODE:-none}${NODE_MAJOR:+, v$NODE_MAJOR}). Install it, then re-run:
  Debian/Ubuntu:  NodeSource (https://github.com/nodesource/distributions): nodejs 20 or 22,
                  or Debian 13 / Ubuntu 24.10 and later: apt-get install nodejs npm
  RHEL 9/Fedora:  dnf module install nodejs:20   (or dnf install nodejs on Fedora)
  Alpine 3.19+:   apk add nodejs npm
  or set NODE=/path/to/node for a Node installed elsewhere."
fi
say "node: $NODE (v$("$NODE" -p process.versions.node))"
VERSION=$("$NODE" -p "require('$REPO/package.json').version")

if [ "$INIT" = auto ]; then
  if systemd_runs; then INIT=systemd; elif openrc_runs; then INIT=openrc; else INIT=none; fi
  say "init: $INIT (detected: $(systemd_runs && echo 'systemd is PID 1' || { openrc_runs && echo 'OpenRC runs'; } || echo 'neither systemd nor OpenRC runs here'))"
else
  say "init: $INIT (from --init)"
fi
if [ "$INIT" = openrc ]; then
  command -v setpriv >/dev/null 2>&1 || die "the OpenRC scripts start guard through setpriv (Debian/Ubuntu: util-linux; Alpine: apk add setpriv)"
fi
if [ "$INIT" = none ]; then
  for t in setpriv setsid; do
    command -v "$t" >/dev/null 2>&1 || die "direct mode needs $t (Debian/Ubuntu/RHEL: util-linux; Alpine: apk add setpriv util-linux-misc)"
  done
fi
NOLOGIN=$(for s in /usr/sbin/nologin /sbin/nologin /usr/bin/nologin /bin/false; do [ -x "$s" ] && echo "$s" && break; done)

# --- build -----------------------------------------------------------------------------------------
step "Building ($REPO)"
stale=""
for f in "${PROGRAMS[@]}"; do [ -f "$REPO/dist/$f" ] || stale="dist/$f is missing"; done
if [ -z "$stale" ]; then
  # shellcheck disable=SC2012 # four fixed file names
  oldest=$(cd "$REPO/dist" && ls -tr "${PROGRAMS[@]}" | head -1)
  # -print -quit, not | head -1: under pipefail find's SIGPIPE would end the installer (exit 141)
  newer=$(find "$REPO/packages" -path '*/node_modules' -prune -o -path '*/build' -prune -o \
            -path '*/src/generated' -prune -o \( -path '*/src/*' -o -name binding.gyp -o \
            -name package.json \) -type f -newer "$REPO/dist/$oldest" -print -quit 2>/dev/null)
  if [ -z "$newer" ]; then
    for f in "$REPO/scripts/build.mjs" "$REPO/package-lock.json"; do
      if [ "$f" -nt "$REPO/dist/$oldest" ]; then newer=$f; fi
    done
  fi
  if [ -n "$newer" ]; then stale="${newer#"$REPO"/} is newer than dist/$oldest"; fi
fi
if [ -z "$stale" ]; then
  say "dist/ is up to date"
elif [ "$NO_BUILD" = 1 ]; then
  for f in "${PROGRAMS[@]}"; do [ -f "$REPO/dist/$f" ] || die "--no-build, but dist/$f is missing: run npm run build"; done
  warn "$stale; installing dist/ as it is (--no-build)"
else
  say "building: $stale"
  command -v npm >/dev/null 2>&1 || die "building needs npm (it comes with Node.js; on Debian/Alpine: the npm package)"
  missing=()
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  if [ "${#missing[@]}" -gt 0 ]; then
    say "the native addon needs a C toolchain; installing ${missing[*]}"
    if command -v apt-get >/dev/null 2>&1; then
      run apt-get update -qq
      run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ make python3
    elif command -v dnf >/dev/null 2>&1; then run dnf install -y gcc-c++ make python3
    elif command -v apk >/dev/null 2>&1; then run apk add --no-cache g++ make python3 linux-headers
    else die "install ${missing[*]} and re-run"; fi
  fi
  # Node's headers for node-gyp: beside this node when it has them (Debian's and the official
  # tarball's layout), else node-gyp downloads them for this version.
  node_prefix=$(dirname "$(dirname "$(readlink -f "$NODE")")")
  if [ -f "$node_prefix/include/node/node_api.h" ]; then export npm_config_nodedir="$node_prefix"; fi
  if [ ! -d "$REPO/node_modules" ] || [ "$REPO/package-lock.json" -nt "$REPO/node_modules/.package-lock.json" ]; then
    # --ignore-scripts: no dependency is built here (node-pty is for the tests only); guard's own
    # addon is built by the build script below
    run npm --prefix "$REPO" ci --no-audit --no-fund --ignore-scripts
  fi
  run npm --prefix "$REPO" run build
fi

# --- user and groups -------------------------------------------------------------------------------
step "User $USER_NAME, groups $GROUP and $AUDIT_GROUP"
for g in "$GROUP" "$AUDIT_GROUP"; do
  if group_exists "$g"; then say "group $g exists"
  elif command -v groupadd >/dev/null 2>&1; then run groupadd --system "$g"
  else run addgroup -S "$g"; fi
done
if user_exists "$USER_NAME"; then
  say "user $USER_NAME exists"
  [ "$(id -gn "$USER_NAME")" = "$GROUP" ] || die "user $USER_NAME exists with primary group $(id -gn "$USER_NAME"), not $GROUP (the helper socket's group is the agent's primary group): fix it or pass --group $(id -gn "$USER_NAME")"
  case "$(getent passwd "$USER_NAME" | cut -d: -f7)" in
    */nologin|*/false) ;;
    *) warn "user $USER_NAME has a login shell; guard expects a no-login system user" ;;
  esac
  if id -nG "$USER_NAME" | tr ' ' '\n' | grep -qxF "$AUDIT_GROUP"; then say "$USER_NAME is in $AUDIT_GROUP"
  elif command -v usermod >/dev/null 2>&1; then run usermod -a -G "$AUDIT_GROUP" "$USER_NAME"
  else run addgroup "$USER_NAME" "$AUDIT_GROUP"; fi
elif command -v useradd >/dev/null 2>&1; then
  run useradd --system --no-create-home --home-dir "$GUARD_HOME" --shell "$NOLOGIN" \
    --gid "$GROUP" -G "$AUDIT_GROUP" --comment "$GUARD_COMMENT" "$USER_NAME"
else
  run adduser -S -D -H -h /nonexistent -s /sbin/nologin -G "$GROUP" -g "guard log agent" "$USER_NAME"
  run addgroup "$USER_NAME" "$AUDIT_GROUP"
fi

# --- directories -----------------------------------------------------------------------------------
step "Directories"
if [ ! -d "$ROOT" ]; then run install -d -o root -g root -m 0755 "$ROOT"; fi
# parents: created root-owned 0755 when missing, never changed when present (they are the host's)
for d in usr usr/lib usr/sbin usr/bin etc var var/lib var/log run; do
  if [ ! -d "$R/$d" ]; then run install -d -o root -g root -m 0755 "$R/$d"; fi
done
while read -r d o g m; do
  [ -n "$d" ] || continue
  if [ "$o" = user ]; then o=$USER_NAME; fi
  if [ "$g" = group ]; then g=$GROUP; fi
  run install -d -o "$o" -g "$g" -m "$m" "$R$d"
done <<<"$GUARD_DIRS"

# --- code ------------------------------------------------------------------------------------------
step "Code ($LIB) and wrappers"
# Written into a new directory and renamed into place: a crash never leaves a half-written helper.
NEW="$R/usr/lib/.guard.new.$$" OLD="$R/usr/lib/.guard.old.$$"
trap 'if [ "$DRY_RUN" = 0 ]; then rm -rf "$NEW"; fi' EXIT
run install -d -o root -g root -m 0755 "$NEW"
for f in "${PROGRAMS[@]}"; do run install -o root -g root -m 0644 "$REPO/dist/$f" "$NEW/$f"; done
run write_file 0644 root root "$NEW/install.json" "{\"version\": \"$VERSION\", \"root\": \"$ROOT\", \"user\": \"$USER_NAME\", \"group\": \"$GROUP\", \"auditGroup\": \"$AUDIT_GROUP\", \"node\": \"$NODE\", \"init\": \"$INIT\", \"installedAt\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}"
had_lib=0
if [ -e "$LIB" ]; then had_lib=1; run mv -T "$LIB" "$OLD"; fi
run mv -T "$NEW" "$LIB"
if [ "$had_lib" = 1 ]; then run rm -rf "$OLD"; fi
# Node's options are the systemd units' (read from their ExecStart=, so there is one place to change
# them): the helper without a JIT (less to attack as root), the agent with its memory settings
# (docs/performance.md).
unit_node_opts() {
  local o
  o=$(sed -n "s|^ExecStart=/usr/bin/node \(.*\) /usr/lib/guard/$1\.js .*|\1|p" "$REPO/systemd/$1.service")
  case $o in *[!A-Za-z0-9=.\ -]*) die "unexpected node options in $REPO/systemd/$1.service: $o" ;; esac
  if [ -n "$o" ]; then printf '%s ' "$o"; fi
}
for w in $GUARD_WRAPPERS; do
  case $w in
    sbin/guard-helper) opts=$(unit_node_opts guard-helper) ;;
    sbin/guard-agent) opts=$(unit_node_opts guard-agent) ;;
    *) opts='' ;;
  esac
  run write_file 0755 root root "$R/usr/$w" "#!/bin/sh
exec '$NODE' $opts'$LIB/${w#*/}.js' \"\$@\""
done

# --- configuration ---------------------------------------------------------------------------------
step "Configuration ($CONF)"
if [ -e "$CONF" ] || [ -L "$CONF" ]; then
  say "$CONF exists: kept as it is (the shipped example is $REPO/packages/agent/guard.conf.example)"
else
  # the example, with the names and (under --root) the paths of this install
  conf=$(awk -v root="$R" -v user="$USER_NAME" -v audit="$AUDIT_GROUP" '
    /^\[/ { section = $0 }
    section == "[agent]" && /^user *=/ { $0 = "user = " user }
    section == "[helper]" && /^audit_group *=/ { $0 = "audit_group = " audit }
    root != "" && /^[a-z_]+ *= *\/(run|var\/lib)\/guard/ { sub(/= */, "= " root) }
    { print }' "$REPO/packages/agent/guard.conf.example")
  run write_file 0640 root "$GROUP" "$CONF" "$conf"
fi

# --- audit trail -----------------------------------------------------------------------------------
step "Audit trail"
auditd_installed() { command -v auditctl >/dev/null 2>&1 && command -v ausyscall >/dev/null 2>&1; }
AUDIT_SUMMARY=""
if [ "$WITH_AUDITD" = 1 ] && [ "$ROOT" != / ]; then
  warn "--with-auditd is ignored with --root: it installs and starts auditd on the live system"
elif [ "$WITH_AUDITD" = 1 ]; then
  # the kernel refuses auditd outside the initial PID namespace: a container cannot run it
  AUDITD_HINT=""
  if [ "$(readlink /proc/1/ns/pid 2>/dev/null)" != "$(readlink /proc/self/ns/pid 2>/dev/null)" ] || \
     { [ -r /proc/1/environ ] && tr '\0' '\n' </proc/1/environ 2>/dev/null | grep -q '^container='; }; then
    AUDITD_HINT=" (this looks like a container: the kernel accepts auditd only in the host's initial PID namespace)"
  fi
  if auditd_installed; then say "auditd is installed"
  else
    say "installing auditd (--with-auditd)"
    if command -v apt-get >/dev/null 2>&1; then
      run apt-get update -qq
      run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends auditd
    elif command -v dnf >/dev/null 2>&1; then run dnf install -y audit
    elif command -v yum >/dev/null 2>&1; then run yum install -y audit
    elif command -v zypper >/dev/null 2>&1; then run zypper --non-interactive install audit
    elif command -v apk >/dev/null 2>&1; then run apk add --no-cache audit
    else die "--with-auditd: no apt-get, dnf, yum, zypper or apk here: install auditd (package audit or auditd) and re-run"; fi
  fi
  if [ "$DRY_RUN" = 0 ]; then auditd_installed || die "--with-auditd: auditctl and ausyscall are still missing after installing auditd"; fi
  case "$INIT" in
    systemd) if manage_systemd; then
        run systemctl enable auditd.service
        auditd_runs || run systemctl start auditd.service || warn "auditd did not start: see systemctl status auditd$AUDITD_HINT"
      fi ;;
    openrc) if manage_openrc; then
        run rc-update add auditd default
        auditd_runs || run rc-service auditd start || warn "auditd did not start: see rc-service auditd status$AUDITD_HINT"
      fi ;;
    none) auditd_runs || warn "no init system here: start auditd yourself (auditd), it is installed" ;;
  esac
fi
if [ ! -f "$REPO/audit-rules/50-guard.rules.in" ]; then
  AUDIT_SUMMARY="off: this version ships no audit rules"
elif ! auditd_installed && [ "$DRY_RUN" = 0 -o "$WITH_AUDITD" = 0 ]; then
  # the truth, plainly: nothing is installed or loaded, and there is no audit trail to ship
  say "auditd is not installed: the audit trail is OFF (no kernel audit rules, no /var/log/audit/audit.log),"
  say "so guard ships system logs only. To turn it on: re-run install.sh with --with-auditd."
  AUDIT_SUMMARY="OFF: auditd is not installed (re-run install.sh --with-auditd to turn it on)"
else
  # Generated for this host by audit-rules/load.sh: watches only on paths that exist, syscalls only
  # those this auditctl knows, guard's own uid excluded. Written to rules.d, where augenrules (and
  # auditd's own start) load it at every boot; loaded now one rule at a time, each rejected line
  # reported, when this is the live system and auditd runs.
  if [ ! -d "$(dirname "$RULES")" ]; then run install -d -o root -g root -m 0750 "$(dirname "$RULES")"; fi
  load=(bash "$REPO/audit-rules/load.sh" --out "$RULES" --guard-uid "$(id -u "$USER_NAME" 2>/dev/null || echo 0)")
  live=1
  if [ "$ROOT" != / ]; then say "not loading them: --root $ROOT is not the live system"; load+=(--check-only); live=0
  elif ! auditd_runs; then say "auditd is installed but not running: the rules load when it starts (from $RULES)"; load+=(--check-only); live=0
  fi
  set +e; out=$(run "${load[@]}" "$REPO/audit-rules/50-guard.rules.in"); rc=$?; set -e
  printf '%s\n' "$out"
  loaded=$(printf '%s\n' "$out" | tail -n 1)   # load.sh's "N rules loaded, M rejected, K skipped"
  if [ "$rc" = 0 ] && [ "$live" = 1 ]; then AUDIT_SUMMARY="on: $loaded"
  elif [ "$rc" = 0 ]; then AUDIT_SUMMARY="rules in $RULES, not loaded now (auditd is not running here)"
  elif [ "$rc" = 1 ] && [ "$live" = 1 ]; then
    warn "some audit rules were rejected by auditctl (each reported above); the others are loaded"
    AUDIT_SUMMARY="on, with rejected rules: $loaded"
  elif [ "$live" = 1 ]; then
    warn "audit-rules/load.sh could not load the rules (reported above); they load at the next auditd start"
    AUDIT_SUMMARY="rules in $RULES, NOT loaded now (see the warning above)"
  else
    die "audit-rules/load.sh could not generate $RULES (reported above)"
  fi
  if [ -e "$RULES" ] || [ "$DRY_RUN" = 1 ]; then run chown root:root "$RULES"; run chmod 0640 "$RULES"; fi
  # /etc/audit/audit.rules is what auditd loads at boot: regenerate it from rules.d
  if [ "$ROOT" = / ] && command -v augenrules >/dev/null 2>&1; then run augenrules || warn "augenrules failed: $RULES loads at the next auditd start only if augenrules succeeds"; fi
fi
say "audit trail: $AUDIT_SUMMARY"

# --- services --------------------------------------------------------------------------------------
step "Services ($INIT)"
# the init scripts name the default user, groups and paths; rewrite them for this install
localise() {
  sed -e "s|^guard_root=.*|guard_root=\"$R\"|" -e "s|^guard_user=.*|guard_user=\"$USER_NAME\"|" \
      -e "s|^guard_group=.*|guard_group=\"$GROUP\"|" -e "s|^User=guard\$|User=$USER_NAME|" \
      -e "s|^Group=guard\$|Group=$GROUP|" "$1"
}
SUPERVISION=""
case "$INIT" in
  systemd)
    units=()
    for u in "$REPO"/systemd/*.service; do [ -f "$u" ] && units+=("$u"); done
    [ "${#units[@]}" -gt 0 ] || die "--init systemd, but $REPO/systemd/ has no unit files yet"
    if [ ! -d "$UNITS" ]; then run install -d -o root -g root -m 0755 "$UNITS"; fi
    for u in "${units[@]}"; do run write_file 0644 root root "$UNITS/$(basename "$u")" "$(localise "$u")"; done
    if manage_systemd; then
      run systemctl daemon-reload
      run systemctl enable guard-helper.service guard-agent.service
      stop_direct   # a direct-mode pair from an earlier install would hold the sockets
      if [ "$NO_START" = 0 ]; then run systemctl restart guard-helper.service guard-agent.service; fi
      SUPERVISION="systemd (Restart=, journald: journalctl -u guard-helper -u guard-agent)"
    else
      warn "units installed in $UNITS, but not registered: systemd is not PID 1 here or --root is set"
      SUPERVISION="nothing: units installed, not registered"
    fi ;;
  openrc)
    if [ ! -d "$INITD" ]; then run install -d -o root -g root -m 0755 "$INITD"; fi
    for s in guard-helper guard-agent; do run write_file 0755 root root "$INITD/$s" "$(localise "$REPO/installer/openrc/$s")"; done
    if manage_openrc; then
      run rc-update add guard-helper default
      run rc-update add guard-agent default
      stop_direct
      # in this order: a helper restart would restart a started agent itself, in the background,
      # and a second rc-service call on the agent then collides with it ("Call to flock failed")
      if [ "$NO_START" = 0 ]; then
        run rc-service guard-agent stop || true
        run rc-service guard-helper restart
        run rc-service guard-agent start
      fi
      SUPERVISION="OpenRC supervise-daemon (respawns; logs in /var/log/guard-helper.log and $LOGS/agent.log)"
    else
      warn "scripts installed in $INITD, but not registered: OpenRC is not running here or --root is set"
      SUPERVISION="nothing: scripts installed, not registered"
    fi ;;
  none)
    say "neither systemd nor OpenRC runs here: starting both programs directly (no supervisor:"
    say "nothing restarts them if they exit, nothing starts them at boot; re-run install.sh to restart)"
    stop_direct
    SUPERVISION="nothing (direct mode): pid files $HELPER_PID and $AGENT_PID"
    if [ "$NO_START" = 0 ]; then
      if [ -S "$HELPER_SOCK" ]; then run rm -f "$HELPER_SOCK"; fi
      # installer/start-helper.cjs: setsid, clean environment, and the log opened safely (root
      # writes it inside the agent user's directory). Capabilities: only CAP_DAC_READ_SEARCH (read
      # the logs) and CAP_CHOWN (give its socket to GROUP) stay in the bounding set, as under OpenRC.
      run "$NODE" "$REPO/installer/start-helper.cjs" "$LOGS/helper.log" "$(getent group "$GROUP" | cut -d: -f3)" "$HELPER_PID" \
        setpriv --bounding-set=-all,+chown,+dac_read_search --inh-caps=-all --no-new-privs -- "$R/usr/sbin/guard-helper" --config "$CONF" --socket "$HELPER_SOCK"
      if [ "$DRY_RUN" = 0 ]; then
        hpid=$(cat "$HELPER_PID")
        for _ in $(seq 1 100); do
          if [ -S "$HELPER_SOCK" ] || ! [ -d "/proc/$hpid" ]; then break; fi
          sleep 0.1
        done
        if ! [ -S "$HELPER_SOCK" ] || ! is_ours "$hpid" "$LIB/guard-helper.js" 0; then
          tail -n 5 "$LOGS/helper.log" >&2 || true
          die "guard-helper did not start (its log: $LOGS/helper.log)"
        fi
        say "guard-helper running as root, pid $hpid, listening on $HELPER_SOCK"
      fi
      # The agent as USER with its groups, no capabilities (bounding set empty, nothing inheritable),
      # no_new_privs, in a session of its own; it opens its own log and writes its own pid file as USER.
      if [ -S "$AGENT_SOCK" ]; then run rm -f "$AGENT_SOCK"; fi
      # shellcheck disable=SC2016 # expanded by the agent's own sh
      agent_sh='umask 027; echo $$ >"$3"; exec "$0" --config "$1" >>"$2" 2>&1 </dev/null'
      run env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 setsid --fork \
        setpriv --reuid="$USER_NAME" --regid="$GROUP" --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- \
        /bin/sh -c "$agent_sh" "$R/usr/sbin/guard-agent" "$CONF" "$LOGS/agent.log" "$AGENT_PID"
      if [ "$DRY_RUN" = 0 ]; then
        auid=$(id -u "$USER_NAME") apid=""
        for _ in $(seq 1 200); do
          apid=$(head -c 32 "$AGENT_PID" 2>/dev/null | tr -cd 0-9 || true)
          if [ -S "$AGENT_SOCK" ] || { [ -n "$apid" ] && ! [ -d "/proc/$apid" ]; }; then break; fi
          sleep 0.1
        done
        if ! [ -S "$AGENT_SOCK" ] || [ -z "$apid" ] || ! is_ours "$apid" "$LIB/guard-agent.js" "$auid"; then
          tail -n 5 "$LOGS/agent.log" >&2 || true
          die "guard-agent did not start (its log: $LOGS/agent.log)"
        fi
        say "guard-agent running as $USER_NAME, pid $apid, status on $AGENT_SOCK"
      fi
    fi ;;
esac
trap - EXIT

# --- summary ---------------------------------------------------------------------------------------
step "Done"
if [ "$NO_START" = 1 ]; then say "installed; nothing started (--no-start)"
else say "runs:        guard-helper (root) and guard-agent ($USER_NAME, groups $GROUP,$AUDIT_GROUP, no capabilities)"; fi
say "supervised:  by $SUPERVISION"
say "events:      $STATE/out/events.ndjson (the default file sink; edit $CONF to ship elsewhere)"
say "audit trail: $AUDIT_SUMMARY"
say "check:       $R/usr/bin/guardctl status"
if [ "$DRY_RUN" = 1 ]; then say "(dry run: nothing was changed)"; fi
