#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's: installs the peer programs
# the tests run against (Debian packages, only those missing), then checks formatting and lints
# and runs every unit and integration test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Peers: promtool (prometheus), the exporters we compare with, private PostgreSQL, PgBouncer and
# Redis servers started by the tests (postgresql, pgbouncer, redis-server, redis-tools),
# systemd-analyze (systemd), and curl + openssl for the TLS test.
packages=(prometheus prometheus-node-exporter prometheus-postgres-exporter prometheus-redis-exporter
  postgresql pgbouncer redis-server redis-tools systemd curl openssl ca-certificates)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  # Try the cached package lists first; refresh them only if that fails.
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "==> cargo test"
cargo test --locked
echo "==> all tests passed"
