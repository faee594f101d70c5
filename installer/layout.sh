# shellcheck shell=sh disable=SC2034 # sourced: the variables are read by whoever sources it
# installer/layout.sh — where guard's files go, and whose they are. The ONE description of the
# layout: installer/install.sh sources it (from a clone), scripts/package.mjs builds the .deb, .rpm
# and tarball from it, and their maintainer scripts carry a copy of it. POSIX sh, no commands:
# only assignments. Paths are for ROOT /; install.sh puts its --root in front of them.

# The accounts (install.sh: --user, --group, --audit-group; the packages use these).
GUARD_USER=guard
GUARD_GROUP=guard
GUARD_AUDIT_GROUP=guard-audit
GUARD_HOME=/nonexistent
GUARD_COMMENT="guard log agent"

# The code: the bundles (dist/*.js), their addons (*.node) and install.json, root:root 0644 in a
# root:root 0755 directory. The packages add their own Node runtime there, root:root 0755.
GUARD_LIB=/usr/lib/guard
GUARD_RUNTIME=/usr/lib/guard/node
# Wrappers (root:root 0755): "#!/bin/sh / exec NODE OPTIONS GUARD_LIB/PROGRAM.js "$@"".
GUARD_SBIN=/usr/sbin
GUARD_BIN=/usr/bin
GUARD_WRAPPERS="sbin/guard-helper sbin/guard-agent bin/guardctl"

# Configuration and what the programs write.
GUARD_CONF_DIR=/etc/guard
GUARD_CONF=/etc/guard/guard.conf
GUARD_STATE=/var/lib/guard
# [metrics] textfile goes here when an operator turns it on: readable by node_exporter (another
# user), unlike GUARD_STATE; the agent's unit lets it write here (ReadWritePaths=).
GUARD_METRICS=/var/lib/guard-metrics
GUARD_LOGS=/var/log/guard
GUARD_RUN=/run/guard
GUARD_AGENT_RUN=/run/guard/agent
GUARD_HELPER_SOCK=/run/guard/helper.sock
GUARD_AGENT_SOCK=/run/guard/agent/agent.sock
GUARD_HELPER_PID=/run/guard/helper.pid
GUARD_AGENT_PID=/run/guard/agent/agent.pid
# written as root by OpenRC's supervise-daemon (not in GUARD_LOGS, which the agent user owns)
GUARD_OPENRC_HELPER_LOG=/var/log/guard-helper.log

# The directories guard owns: PATH OWNER GROUP MODE, one a line. OWNER and GROUP are roles: root,
# user (GUARD_USER), group (GUARD_GROUP).
GUARD_DIRS="
/etc/guard root group 0750
/var/lib/guard user group 0750
/var/lib/guard-metrics user group 0755
/var/log/guard user group 0750
/run/guard root group 0750
/run/guard/agent user group 0750
"

# Services. install.sh writes units to GUARD_UNIT_DIR (the administrator's place); the packages
# ship them in the distribution's unit directory. OpenRC scripts go to GUARD_INITD.
GUARD_SERVICES="guard-helper guard-agent"
GUARD_UNIT_DIR=/etc/systemd/system
GUARD_DEB_UNIT_DIR=/lib/systemd/system
GUARD_RPM_UNIT_DIR=/usr/lib/systemd/system
GUARD_INITD=/etc/init.d

# Audit rules: generated from GUARD_SHARE/audit-rules/50-guard.rules.in (the packages) or
# audit-rules/ (a clone) by load.sh, root:root 0640.
GUARD_AUDIT_RULES=/etc/audit/rules.d/50-guard.rules
# The packages' read-only data: the audit rule template and its scripts, the example config.
GUARD_SHARE=/usr/share/guard
