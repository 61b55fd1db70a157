#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, unit and end-to-end tests.
# Installs what the tests need first (Debian packages with apt-get, Python packages into .venv),
# so it also works on a machine that has only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use (none beyond the Rust toolchain and a C compiler yet; later
# suites add Prometheus, Alertmanager and an OAuth2 server here).
need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# promtool checks and unit-tests the generated Prometheus rules (alerts connector).
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# A real Prometheus Alertmanager for the alerting tests (Debian names the binary
# `prometheus-alertmanager`; upstream builds call it `alertmanager`).
if ! command -v prometheus-alertmanager >/dev/null 2>&1 && ! command -v alertmanager >/dev/null 2>&1; then
  need_apt+=(prometheus-alertmanager)
fi
# docker-compose (Debian's 1.29) checks docker-compose.yml with `docker-compose config` (tests/compose.rs).
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
# Headless Chromium loads the status page during the demo's scripted incident (tests/status_page.rs).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# Node.js and npm build the browser fixture (OpenTelemetry JavaScript SDK, tests/browser.rs).
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "missing: ${need_apt[*]} (install them, then re-run)" >&2
    exit 1
  fi
fi

# Python packages the tests use (real peers such as an OAuth2/OIDC server), into .venv.
if [ -f tests/requirements.txt ]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
  export AUTHWATCH_TEST_PYTHON="$PWD/.venv/bin/python"
fi

# The browser fixture: the OpenTelemetry JavaScript SDK from npm, bundled with esbuild.
if command -v npm >/dev/null 2>&1; then
  echo "== npm ci && npm run build (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
  # A certified OpenID provider (oidc-provider) for the authorization_code check's tests.
  echo "== npm ci (crates/authwatch-testkit/oidc)"
  (cd crates/authwatch-testkit/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi

# Builds for testing need no debugger information beyond line numbers (for backtraces), and no
# incremental cache: together they keep target/ at about a third of the size (a full run wrote
# 11 GiB with the defaults), which matters on CI machines with little free disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
echo "== disk: $(df -h . | awk 'NR==2 {print $4 " free on " $6}')"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
echo "== fuzz smoke: every cargo-fuzz target replays its corpus, then fuzzes briefly (scripts/fuzz.sh)"
SMOKE_SECONDS=${SMOKE_SECONDS:-10} bash scripts/fuzz.sh smoke
