#!/usr/bin/env bash
# rootfs.sh KIND — builds (once per machine) the cached Debian 12 root file system that the
# container tests boot, and prints its path. KIND: systemd (systemd 252 as PID 1) or openrc
# (sysvinit + OpenRC 0.45). The cache lives OUTSIDE the repository, in
# ${GUARD_ROOTFS_CACHE:-/var/cache/guard-test}/rootfs-KIND-bookworm, and is rebuilt when it is
# missing or when the recipe changed (the stamp hashes RECIPE, the package lists and the mirror:
# bump RECIPE when changing anything else below). Tests never boot the
# cache itself: test/lib/container.ts boots a throwaway overlay on top of it.
#
# The base holds no Node.js (branch packages installs guard's .deb into a stock system): tests that
# need Node copy the host's Node 20 into their throwaway copy. It does hold what a user's build
# needs (g++ make python3, which install.sh would otherwise apt-get at every boot).
set -euo pipefail
{ # parsed whole before it runs: editing this file cannot break a build in progress
KIND=${1:?usage: rootfs.sh systemd|openrc}
CACHE=${GUARD_ROOTFS_CACHE:-/var/cache/guard-test}
SUITE=bookworm
COMMON=dbus,procps,ca-certificates,passwd,login,util-linux,iproute2,less,g++,make,python3,xz-utils
case "$KIND" in
  systemd) INCLUDE="systemd,systemd-sysv,libpam-systemd,$COMMON" ;;
  # debootstrap resolves "sysv-rc | file-rc | openrc" to sysv-rc, which conflicts with openrc:
  # the init is installed afterwards with apt, which resolves it properly
  openrc) INCLUDE="$COMMON"; LATER="sysvinit-core openrc initscripts" ;;
  *) echo "rootfs.sh: KIND must be systemd or openrc" >&2; exit 2 ;;
esac
DIR="$CACHE/rootfs-$KIND-$SUITE"
RECIPE=1
MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
STAMP="$(printf '%s\n' "$RECIPE" "$INCLUDE" "${EXCLUDE:-}" ${LATER:+"$LATER"} "$MIRROR" | sha256sum | cut -c1-16)"
if [ -f "$DIR/.guard-stamp" ] && [ "$(cat "$DIR/.guard-stamp")" = "$STAMP" ]; then echo "$DIR"; exit 0; fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock-$KIND"
flock 9   # one builder per kind; the others wait, then find it built
if [ -f "$DIR/.guard-stamp" ] && [ "$(cat "$DIR/.guard-stamp")" = "$STAMP" ]; then echo "$DIR"; exit 0; fi
for t in debootstrap systemd-nspawn; do
  command -v "$t" >/dev/null || { echo "rootfs.sh: $t is missing (apt-get install debootstrap systemd-container)" >&2; exit 1; }
done
NEW="$CACHE/.new-$KIND-$$"
# debootstrap mounts /proc (and more) inside the tree: never rm -rf a tree with mounts in it
unmount_new() { awk -v d="$NEW" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done; }
cleanup() { unmount_new; rm -rf --one-file-system "$NEW"; }
trap 'cleanup; exit 1' INT TERM
trap 'if [ -d "$NEW" ]; then cleanup; fi' EXIT
echo "rootfs.sh: building $DIR from $MIRROR (a few minutes, once per machine)" >&2
debootstrap --variant=minbase --include="$INCLUDE" ${EXCLUDE:+--exclude="$EXCLUDE"} "$SUITE" "$NEW" "$MIRROR" >"$CACHE/build-$KIND.log" 2>&1 || {
  tail -20 "$CACHE/build-$KIND.log" >&2; exit 1; }
unmount_new
# the host's CAs (registry traffic goes through a TLS-inspecting proxy here)
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$NEW/usr/local/share/ca-certificates/"
  chroot "$NEW" update-ca-certificates >/dev/null 2>&1
fi
cat >"$NEW/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
SRC
if [ -n "${LATER:-}" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$NEW/usr/sbin/policy-rc.d"; chmod 0755 "$NEW/usr/sbin/policy-rc.d"
  mount -t proc proc "$NEW/proc"
  # shellcheck disable=SC2086 # a list of package names
  { chroot "$NEW" apt-get update -qq && DEBIAN_FRONTEND=noninteractive chroot "$NEW" apt-get install -y -qq --no-install-recommends $LATER; } \
    >>"$CACHE/build-$KIND.log" 2>&1 || { tail -20 "$CACHE/build-$KIND.log" >&2; exit 1; }
  unmount_new
  rm -f "$NEW/usr/sbin/policy-rc.d"
fi
echo "guard-$KIND" >"$NEW/etc/hostname"
: >"$NEW/etc/machine-id"   # a fresh one at every first boot of a copy
rm -f "$NEW/var/lib/dbus/machine-id"
chroot "$NEW" apt-get clean
if [ "$KIND" = systemd ]; then
  # no getty on the container's console, no waiting for a network nobody configures
  chroot "$NEW" systemctl mask console-getty.service getty@tty1.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true
else
  # sysvinit: no gettys (nspawn has no ttys to give them); OpenRC runs the runlevels
  sed -i 's/^\([0-9]:[0-9]*:respawn:.*getty.*\)/#\1/' "$NEW/etc/inittab"
fi
echo "$STAMP" >"$NEW/.guard-stamp"
rm -rf "$DIR"
mv -T "$NEW" "$DIR"
echo "$DIR"
exit 0
}
