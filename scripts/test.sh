#!/usr/bin/env bash
# Runs the whole test suite, twice over the storage backends:
#   1. Rust unit tests (every crate; the store contract suite on SQLite and on PostgreSQL included);
#   2. the integration suite (the real server over HTTP) and the conformance suites that drive a
#      real idvault with the official Descope SDKs (Python, the Python SDK's own e2e scenario,
#      Node) and a short schemathesis run over every API operation, first on SQLite, then again
#      on PostgreSQL, each server on its own fresh database.
# Installs what the suites need on first use: a Python virtual environment and npm packages, all
# pinned. PostgreSQL is expected at 127.0.0.1:5432 (IDVAULT_TEST_PG_ADMIN_URL); without it the
# PostgreSQL pass is skipped with a message, except in CI (CI set), where it is required.
#   3. the secret scan: every server of every suite logs at trace level into target/test-logs/,
#      the tests record there each secret they use (keys, tokens, client secrets, JWTs, master
#      keys), and scripts/scan-secrets fails the run if any log holds one.
# Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
export IDVAULT_TEST_PG_ADMIN_URL="${IDVAULT_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}"
mkdir -p target
# Where every test server's console output goes and the secrets used are recorded (read by the
# harnesses of all suites); fresh for each run, so that the scan covers this run only.
export IDVAULT_TEST_LOG_DIR="$PWD/target/test-logs"
rm -rf "$IDVAULT_TEST_LOG_DIR"
mkdir -p "$IDVAULT_TEST_LOG_DIR"
# The SDK suites' servers log as the Rust suite's do (LOG_FILTER in crates/idvault/tests/api/
# helpers.rs): idvault's crates at trace, dependencies at debug. Given to the SDK runs only: the
# Rust suite's one-shot CLI commands keep their default level.
SERVER_LOG_FILTER="debug,idvault=trace,idvault_api=trace,idvault_core=trace,idvault_crypto=trace,idvault_oauth=trace,idvault_store_sqlite=trace,idvault_store_postgres=trace"
total=0
add() { total=$(( total + ${1:-0} )); }

step "Rust: build"
cargo build --workspace --all-targets --locked

step "Node: the test OAuth server (oidc-provider, pinned in tests/oauth-server/package-lock.json)"
(cd tests/oauth-server && npm ci --no-audit --no-fund --loglevel=error)
node tests/oauth-server/selftest.js > target/oauth-selftest.log 2>&1 || { cat target/oauth-selftest.log; exit 1; }
tail -1 target/oauth-selftest.log

step "SDK suites: install (Python venv, npm packages)"
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/sdk/python/requirements.txt \
  -r tests/sdk/python-e2e/requirements.txt -r tests/api-fuzz/requirements.txt
(cd tests/sdk/node && npm ci --no-audit --no-fund --loglevel=error)
export IDVAULT_BIN="$PWD/target/debug/idvault"

step "Rust: unit tests and the integration suite on SQLite"
cargo test --workspace --locked 2>&1 | tee target/cargo-test.log
add "$(grep -Eo 'test result: ok\. [0-9]+ passed' target/cargo-test.log | awk '{s+=$4} END {print s+0}')"

# The SDK suites, on the backend named by IDVAULT_TEST_BACKEND.
sdk_suites() {
  local tag=$1
  step "Python SDK conformance ($tag)"
  IDVAULT_LOG="$SERVER_LOG_FILTER" "$venv/bin/python" -m pytest tests/sdk/python -q -p no:cacheprovider 2>&1 | tee "target/pytest-$tag.log"
  add "$(grep -Eo '[0-9]+ passed' "target/pytest-$tag.log" | tail -1 | awk '{print $1}')"

  step "The Descope Python SDK's own e2e user scenario, configured by DESCOPE_* only ($tag)"
  IDVAULT_LOG="$SERVER_LOG_FILTER" E2E_PYTHON="$PWD/$venv/bin/python" tests/sdk/python-e2e/run.sh -p no:cacheprovider 2>&1 | tee "target/e2e-$tag.log"
  add "$(grep -Eo '[0-9]+ passed' "target/e2e-$tag.log" | tail -1 | awk '{print $1}')"

  step "Node SDK conformance ($tag)"
  (cd tests/sdk/node && IDVAULT_LOG="$SERVER_LOG_FILTER" node --test) 2>&1 | tee "target/node-$tag.log"
  add "$(grep -Eo '^# pass [0-9]+' "target/node-$tag.log" | awk '{print $3}')"

  # The short run; scripts/fuzz-api is the long one. A fixed seed: the same cases every run, so a
  # failure here is reproducible (the long run, unseeded, is where new cases come from).
  step "API fuzzing: schemathesis over every operation of /openapi.json, short run ($tag)"
  "$venv/bin/python" tests/api-fuzz/fuzz_api.py --backend "$tag" --phases fuzzing,stateful --max-examples 3 \
    --seed 13 2>&1 | tee "target/fuzz-api-$tag.log"
  add "$(grep -Eo '[0-9]+ operations passed, 0 failed' "target/fuzz-api-$tag.log" | awk '{print $1}')"
}

export IDVAULT_TEST_BACKEND=sqlite
sdk_suites sqlite

if psql "$IDVAULT_TEST_PG_ADMIN_URL" -Atc 'SELECT 1' >/dev/null 2>&1; then
  export IDVAULT_TEST_BACKEND=postgres
  step "Rust: the integration suite on PostgreSQL"
  cargo test -p idvault --test api --locked 2>&1 | tee target/cargo-test-pg.log
  add "$(grep -Eo 'test result: ok\. [0-9]+ passed' target/cargo-test-pg.log | awk '{s+=$4} END {print s+0}')"
  sdk_suites postgres
  step "PostgreSQL: dropping the test databases"
  # Every suite drops its own databases; this catches what crashed or killed runs left behind.
  scripts/pg-test-db drop-all
elif [ -n "${CI:-}" ]; then
  echo "PostgreSQL is not reachable at $IDVAULT_TEST_PG_ADMIN_URL, and CI requires the PostgreSQL pass" >&2
  exit 1
else
  step "PostgreSQL pass skipped: PostgreSQL is not reachable at $IDVAULT_TEST_PG_ADMIN_URL"
fi

step "No secret in logs: every server log of this run, against every secret the tests recorded"
scripts/scan-secrets "$IDVAULT_TEST_LOG_DIR" 2>&1 | tee target/scan-secrets.log

step "Summary"
echo "$total passed, 0 failed"
