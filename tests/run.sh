#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's: installs the peer programs
# the tests run against (Debian packages, only those missing), then checks formatting and lints
# and runs every unit and integration test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Peers: promtool (prometheus), amtool (prometheus-alertmanager), the exporters we compare with, private PostgreSQL, PgBouncer and
# Redis servers started by the tests (postgresql, pgbouncer, redis-server, redis-tools),
# systemd-analyze (systemd), curl + openssl for the TLS test, and for notifications a real SMTP
# server (python3-aiosmtpd, run with Debian's /usr/bin/python3) and Alertmanager.
packages=(prometheus prometheus-node-exporter prometheus-postgres-exporter prometheus-redis-exporter
  prometheus-alertmanager postgresql pgbouncer redis-server redis-tools systemd curl openssl ca-certificates
  python3-aiosmtpd)
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

# Python peers: the OpenTelemetry SDK (a real OTLP client) and SciPy (the forecast's reference),
# pinned, in a virtualenv under target/ so nothing is installed system-wide.
pyenv=target/pyenv
python_packages=(opentelemetry-sdk==1.38.0 opentelemetry-exporter-otlp-proto-http==1.38.0 scipy==1.16.3)
if ! "$pyenv/bin/python" -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, scipy" 2>/dev/null; then
  echo "==> installing Python test packages into $pyenv"
  if ! python3 -m venv "$pyenv" 2>/dev/null; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get install -y -q --no-install-recommends python3-venv
    python3 -m venv "$pyenv"
  fi
  "$pyenv/bin/pip" install -q "${python_packages[@]}"
fi
export PRISMWATCH_TEST_PYTHON="$PWD/$pyenv/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "==> cargo test"
cargo test --locked
echo "==> all tests passed"
