#!/usr/bin/env bash
# Removes exactly the loaded audit rules whose key starts with guard- and nothing else.
#
#   unload.sh [--dry-run]
#
# Reads `auditctl -l`; for each rule whose key (-k KEY for a watch, -F key=KEY for a syscall rule)
# starts with guard-, deletes it with the same arguments: `-a …` becomes `auditctl -d …`, `-w …`
# becomes `auditctl -W …`. Rules with other keys or none, and the control settings, are untouched.
# It does not touch /etc/audit/rules.d (the installer removes 50-guard.rules on purge).
# Exit status: 0 when every guard- rule was removed (or there was none), 1 otherwise, 2 on error.
set -uo pipefail
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
command -v auditctl >/dev/null 2>&1 || { echo "unload.sh: auditctl not found" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "unload.sh: needs root" >&2; exit 2; }
if ! list=$(auditctl -l 2>&1); then echo "unload.sh: auditctl -l failed: $list" >&2; exit 2; fi
if auditctl -s 2>/dev/null | grep -q '^enabled 2'; then
  echo "unload.sh: the audit rules are locked (enabled 2) until reboot: nothing can be removed" >&2; exit 2
fi

removed=0 failed=0
while IFS= read -r line; do
  read -r -a w <<<"$line"
  [ ${#w[@]} -gt 0 ] || continue
  key="" i=0
  while [ $i -lt ${#w[@]} ]; do
    case "${w[$i]}" in
      -k) key=${w[$((i + 1))]:-}; i=$((i + 1)) ;;
      -F) case "${w[$((i + 1))]:-}" in key=*) key=${w[$((i + 1))]#key=} ;; esac; i=$((i + 1)) ;;
    esac
    i=$((i + 1))
  done
  [[ "$key" == guard-* ]] || continue
  case "${w[0]}" in
    -a) args=(-d "${w[@]:1}") ;;
    -w) args=(-W "${w[@]:1}") ;;
    *) echo "unload.sh: cannot delete this rule form: $line" >&2; failed=$((failed + 1)); continue ;;
  esac
  if [ "$DRY" = 1 ]; then echo "would run: auditctl ${args[*]}"; removed=$((removed + 1)); continue; fi
  if msg=$(auditctl "${args[@]}" 2>&1); then removed=$((removed + 1))
  else failed=$((failed + 1)); echo "unload.sh: auditctl ${args[*]}: $(tr '\n' ' ' <<<"$msg")" >&2
  fi
done <<<"$list"
if [ "$DRY" = 1 ]; then echo "$removed guard rules would be removed"; else echo "$removed guard rules removed, $failed failed"; fi
[ "$failed" = 0 ]
