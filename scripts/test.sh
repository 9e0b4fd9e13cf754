#!/usr/bin/env bash
# Runs the whole test suite: Rust unit and integration tests, then the conformance suites that drive
# a real idvault with the official Descope SDKs. Installs what the SDK suites need (a Python virtual
# environment with pinned packages) on first use. Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Rust: build"
cargo build --workspace --all-targets --locked

step "Node: the test OAuth server (oidc-provider, pinned in tests/oauth-server/package-lock.json)"
(cd tests/oauth-server && npm ci --no-audit --no-fund --loglevel=error)
node tests/oauth-server/selftest.js > target/oauth-selftest.log 2>&1 || { cat target/oauth-selftest.log; exit 1; }
tail -1 target/oauth-selftest.log

step "Rust: unit and integration tests"
cargo test --workspace --locked 2>&1 | tee target/cargo-test.log
rust_passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' target/cargo-test.log | awk '{s+=$4} END {print s+0}')

step "Python SDK conformance (descope, pinned in tests/sdk/python/requirements.txt)"
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/sdk/python/requirements.txt
IDVAULT_BIN="$PWD/target/debug/idvault" "$venv/bin/python" -m pytest tests/sdk/python -q -p no:cacheprovider \
  2>&1 | tee target/pytest.log
py_passed=$(grep -Eo '[0-9]+ passed' target/pytest.log | tail -1 | awk '{print $1}')

step "The Descope Python SDK's own e2e user scenario, configured by DESCOPE_* variables only"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/sdk/python-e2e/requirements.txt
IDVAULT_BIN="$PWD/target/debug/idvault" E2E_PYTHON="$PWD/$venv/bin/python" tests/sdk/python-e2e/run.sh -q -p no:cacheprovider \
  2>&1 | tee target/python-e2e.log
e2e_passed=$(grep -Eo '[0-9]+ passed' target/python-e2e.log | tail -1 | awk '{print $1}')

step "Node SDK conformance (@descope/node-sdk, pinned in tests/sdk/node/package-lock.json)"
(cd tests/sdk/node && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/sdk/node && IDVAULT_BIN="$PWD/../../../target/debug/idvault" node --test) 2>&1 | tee target/node-test.log
node_passed=$(grep -Eo '^# pass [0-9]+' target/node-test.log | awk '{print $3}')

step "Summary"
echo "rust: ${rust_passed} passed; python sdk: ${py_passed:-0} passed; python e2e: ${e2e_passed:-0} passed; node sdk: ${node_passed:-0} passed"
echo "$(( rust_passed + ${py_passed:-0} + ${e2e_passed:-0} + ${node_passed:-0} )) passed, 0 failed"
