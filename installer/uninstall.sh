#!/bin/sh
# Stops guard and removes it; keeps /etc/guard, /var/lib/guard, /var/log/guard and the user
# unless --purge. Same options as install.sh (--root, --user, --dry-run, ...).
exec "$(dirname "$0")/install.sh" --uninstall "$@"
