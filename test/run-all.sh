#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian/Ubuntu host and runs every test.
# Needs root: the system tests start guard-helper as root and create throwaway users.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "run as root: sudo bash test/run-all.sh" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in auditd util-linux passwd g++ make python3 openssl systemd libseccomp2 clang-format gcc librdkafka-dev; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
npm ci --no-audit --no-fund
npm test
