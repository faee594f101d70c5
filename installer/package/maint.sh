# shellcheck shell=bash
# installer/package/maint.sh — what the packages' maintainer scripts do: the steps of
# installer/install.sh for files a package manager has already put in place, and nothing more.
# scripts/package.mjs copies installer/layout.sh and this file into every maintainer script of the
# .deb and the .rpm and into the tarball's setup.sh (a maintainer script must stand alone: postrm
# runs after the package's files are gone), followed by one call of guard_configure, guard_stop,
# guard_removed or guard_purge.

say() { printf 'guard: %s\n' "$*"; }

guard_init() {
  if [ -d /run/systemd/system ]; then echo systemd
  elif command -v openrc-run >/dev/null 2>&1 && [ -d /run/openrc ]; then echo openrc
  else echo none; fi
}
guard_auditd_runs() { command -v auditctl >/dev/null 2>&1 && auditctl -s 2>/dev/null | grep -Eq '^pid [1-9]'; }

# The user and groups, as install.sh makes them; an existing user is kept (and put in the audit group).
guard_accounts() {
  local g nologin
  for g in "$GUARD_GROUP" "$GUARD_AUDIT_GROUP"; do
    getent group "$g" >/dev/null || groupadd --system "$g"
  done
  if getent passwd "$GUARD_USER" >/dev/null; then
    if [ "$(id -gn "$GUARD_USER")" != "$GUARD_GROUP" ]; then
      say "user $GUARD_USER exists with primary group $(id -gn "$GUARD_USER"), not $GUARD_GROUP (the helper socket's group): fix it, then reconfigure" >&2
      return 1
    fi
    id -nG "$GUARD_USER" | tr ' ' '\n' | grep -qxF "$GUARD_AUDIT_GROUP" || usermod -a -G "$GUARD_AUDIT_GROUP" "$GUARD_USER"
  else
    for nologin in /usr/sbin/nologin /sbin/nologin /bin/false; do [ -x "$nologin" ] && break; done
    useradd --system --no-create-home --home-dir "$GUARD_HOME" --shell "$nologin" \
      --gid "$GUARD_GROUP" -G "$GUARD_AUDIT_GROUP" --comment "$GUARD_COMMENT" "$GUARD_USER"
  fi
}

# The directories of layout.sh with their owners and modes; the config file readable by the group.
guard_dirs() {
  local d o g m
  while read -r d o g m; do
    [ -n "$d" ] || continue
    if [ "$o" = user ]; then o=$GUARD_USER; fi
    if [ "$g" = group ]; then g=$GUARD_GROUP; fi
    install -d -o "$o" -g "$g" -m "$m" "$d"
  done <<<"$GUARD_DIRS"
  # The package ships the example as a conffile, root:root 0640 (the group does not exist when it
  # is unpacked); give it to the group once. An administrator's own owner or mode is left alone.
  if [ -f "$GUARD_CONF" ] && [ ! -L "$GUARD_CONF" ] && [ "$(stat -c %u:%g "$GUARD_CONF")" = 0:0 ]; then
    chgrp "$GUARD_GROUP" "$GUARD_CONF"
  fi
}

# Generated for this host by load.sh, as install.sh does; loaded only when auditd runs.
guard_audit_rules() {
  local load=(bash "$GUARD_SHARE/audit-rules/load.sh" --out "$GUARD_AUDIT_RULES" --guard-uid "$(id -u "$GUARD_USER")")
  if ! command -v ausyscall >/dev/null 2>&1 || [ ! -d "$(dirname "$GUARD_AUDIT_RULES")" ]; then
    say "audit rules: auditd is not installed, so none are installed (after installing auditd, reconfigure guard: dpkg-reconfigure guard, or reinstall)"
    return 0
  fi
  if ! guard_auditd_runs; then
    say "audit rules: auditd is not running: they load when it starts (from $GUARD_AUDIT_RULES)"
    load+=(--check-only)
  fi
  "${load[@]}" "$GUARD_SHARE/audit-rules/50-guard.rules.in" >/dev/null || say "audit rules: some were rejected (reported above); the others are loaded"
  if [ -e "$GUARD_AUDIT_RULES" ]; then chown root:root "$GUARD_AUDIT_RULES" && chmod 0640 "$GUARD_AUDIT_RULES"; fi
}

# Enables and (re)starts both services under the init system that runs; says which.
guard_services() {
  local s
  case "$(guard_init)" in
    systemd)
      systemctl daemon-reload
      # shellcheck disable=SC2086 # two names
      systemctl enable $GUARD_SERVICES
      # shellcheck disable=SC2086
      systemctl restart $GUARD_SERVICES
      say "systemd: $GUARD_SERVICES enabled and (re)started (journalctl -u guard-helper -u guard-agent)" ;;
    openrc)
      for s in $GUARD_SERVICES; do
        install -o root -g root -m 0755 "$GUARD_SHARE/openrc/$s" "$GUARD_INITD/$s"
        rc-update add "$s" default >/dev/null
      done
      for s in $GUARD_SERVICES; do rc-service "$s" restart; done
      say "OpenRC: $GUARD_SERVICES added to the default runlevel and (re)started" ;;
    none)
      say "neither systemd nor OpenRC runs here (a container?): nothing was started or enabled."
      say "Start both by hand (docs/operations.md): $GUARD_SBIN/guard-helper as root, then $GUARD_SBIN/guard-agent as $GUARD_USER" ;;
  esac
}

guard_configure() {
  guard_accounts
  guard_dirs
  guard_audit_rules
  guard_services
  say "installed: check with guardctl status and guardctl verify; events go to $GUARD_STATE/out/events.ndjson by default"
}

# Before the code goes away: stop and disable both services.
guard_stop() {
  local s
  case "$(guard_init)" in
    systemd)
      # shellcheck disable=SC2086
      systemctl disable --now $GUARD_SERVICES || true ;;
    openrc)
      for s in $GUARD_SERVICES; do
        if [ -f "$GUARD_INITD/$s" ]; then
          rc-service "$s" stop || true
          rc-update del "$s" default >/dev/null 2>&1 || true
        fi
      done ;;
  esac
  say "stopped: $GUARD_SERVICES"
}

# After the code is gone: what install.sh --uninstall also removes. Config, state, logs, the audit
# rules, the user and the groups stay (purge removes them).
guard_removed() {
  local s
  for s in $GUARD_SERVICES; do rm -f "$GUARD_INITD/$s"; done
  if [ "$(guard_init)" = systemd ]; then systemctl daemon-reload || true; fi
  rm -rf "$GUARD_RUN"
  say "removed; kept $GUARD_CONF_DIR, $GUARD_STATE, $GUARD_LOGS, $GUARD_METRICS, user $GUARD_USER and groups $GUARD_GROUP, $GUARD_AUDIT_GROUP (purge removes them)"
}

# Everything else guard made: nothing of it is left.
guard_purge() {
  local g
  rm -rf "$GUARD_CONF_DIR" "$GUARD_STATE" "$GUARD_LOGS" "$GUARD_METRICS" "$GUARD_RUN" "$GUARD_OPENRC_HELPER_LOG"
  if [ -f "$GUARD_AUDIT_RULES" ]; then
    # exactly the loaded rules keyed guard-… (audit-rules/unload.sh, copied in), nothing of the host's
    if guard_auditd_runs; then guard_unload_rules || true; fi
    rm -f "$GUARD_AUDIT_RULES"
    if command -v augenrules >/dev/null 2>&1; then augenrules >/dev/null 2>&1 || true; fi
  fi
  if getent passwd "$GUARD_USER" >/dev/null; then userdel "$GUARD_USER"; fi
  for g in "$GUARD_AUDIT_GROUP" "$GUARD_GROUP"; do
    if getent group "$g" >/dev/null; then groupdel "$g"; fi
  done
  say "purged: config, state, logs, audit rules, user and groups"
}
