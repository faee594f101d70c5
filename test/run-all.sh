#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian/Ubuntu host and runs every test.
# Needs root: the system tests start guard-helper as root and create throwaway users.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "run as root: sudo bash test/run-all.sh" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in auditd util-linux passwd g++ make python3 openssl systemd libseccomp2 clang-format debootstrap systemd-container dpkg-dev rpm lintian logrotate xz-utils bzip2 zstd lz4 gcc librdkafka-dev python3-prometheus-client; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Syslog receivers for test/syslog-sink.test.ts: rsyslog with its TLS and RELP modules, and
# syslog-ng. The two packages conflict (both are a system-log-daemon): rsyslog is installed,
# syslog-ng-core is unpacked beside it (its libraries from apt). Neither may run as the host's
# logger: a daemon the package scripts started is stopped by its pid file and disabled.
sneed=()
for pkg in rsyslog rsyslog-gnutls rsyslog-relp libivykis0 libnet1 libpcre3 libjson-c5 libwrap0 libglib2.0-0; do
  dpkg -s "$pkg" >/dev/null 2>&1 || sneed+=("$pkg")
done
if [ "${#sneed[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${sneed[@]}" >/dev/null
  if [ -s /run/rsyslogd.pid ] && grep -qs rsyslogd "/proc/$(cat /run/rsyslogd.pid)/comm"; then
    kill "$(cat /run/rsyslogd.pid)"
  fi
  if [ -d /run/systemd/system ]; then systemctl disable --now rsyslog.service >/dev/null 2>&1 || true
  else update-rc.d rsyslog disable >/dev/null 2>&1 || true; fi
fi
sng=/var/cache/guard-test/syslog-ng
if [ ! -x "$sng/usr/sbin/syslog-ng" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download syslog-ng-core >/dev/null 2>&1 || { apt-get update -qq && apt-get download syslog-ng-core >/dev/null; })
  mkdir -p "$sng.new" && dpkg -x "$tmp"/syslog-ng-core_*.deb "$sng.new"
  rm -rf "$sng" && mv "$sng.new" "$sng" && rm -rf "$tmp"
fi
# promtool and node_exporter for test/agent-metrics.test.ts: unpacked from Debian's packages into a
# cache, not installed (prometheus-node-exporter's scripts would start it on the fixed port 9100;
# the test runs it on 127.0.0.1 and a free port). Only the two programs are kept.
prom=/var/cache/guard-test/prometheus
if [ ! -x "$prom/promtool" ] || [ ! -x "$prom/prometheus-node-exporter" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download prometheus prometheus-node-exporter >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus prometheus-node-exporter >/dev/null; })
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/x"; done
  mkdir -p "$prom.new" && cp "$tmp/x/usr/bin/promtool" "$tmp/x/usr/bin/prometheus-node-exporter" "$prom.new/"
  rm -rf "$prom" && mv "$prom.new" "$prom" && rm -rf "$tmp"
fi
# the Debian 12 root file systems test/real-init.test.ts boots (systemd, OpenRC): built once per
# machine outside the repository (/var/cache/guard-test), in parallel, while npm ci runs
pids=()
for kind in systemd openrc; do bash test/containers/rootfs.sh "$kind" >/dev/null & pids+=($!); done
npm ci --no-audit --no-fund
for p in "${pids[@]}"; do wait "$p"; done
npm test
