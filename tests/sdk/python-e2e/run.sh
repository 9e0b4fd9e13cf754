#!/usr/bin/env bash
# Runs the Descope Python SDK's own user-management e2e scenario against a fresh idvault, the way
# the SDK's e2e suite runs: configured only through DESCOPE_PROJECT_ID, DESCOPE_MANAGEMENT_KEY
# and DESCOPE_BASE_URI.
#
# The descope 2.16.1 sdist on PyPI carries no tests/ folder, so the scenario of the SDK
# repository's tests/e2e/management/test_user.py is reproduced in test_sdk_e2e_user_scenario.py
# (its docstring lists the OTP steps left out). Nothing of the SDK's code is kept in this repo:
# the SDK itself is installed from PyPI at the pinned version (requirements.txt).
#
# Usage: tests/sdk/python-e2e/run.sh [pytest arguments...]
# Environment:
#   IDVAULT_BIN  the idvault binary (default: target/debug/idvault, built with cargo if missing)
#   E2E_PYTHON   a Python that already has requirements.txt installed; by default a fresh
#                virtualenv is made in a temporary directory and requirements.txt installed in it
#   IDVAULT_TEST_BACKEND
#                sqlite (the default, also when unset): the server stores everything in SQLite in
#                its data directory. postgres: a fresh database idv_python_e2e_<hex> is created
#                with psql on IDVAULT_TEST_PG_ADMIN_URL and passed as --database-url; it is dropped
#                (WITH (FORCE)) once the server has stopped. Failing to create it fails the run
#                with psql's stderr; failing to drop it only warns.
#   IDVAULT_TEST_PG_ADMIN_URL
#                the database psql connects to for CREATE / DROP DATABASE
#                (default postgres://postgres@127.0.0.1:5432/test); the server's URL is this one
#                with the database replaced
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
START_TIMEOUT_SECONDS=30
PSQL_TIMEOUT_SECONDS=60
PG_SUITE=python_e2e

BACKEND="${IDVAULT_TEST_BACKEND:-sqlite}"
BACKEND="${BACKEND,,}"
case "$BACKEND" in
  sqlite | postgres) ;;
  *)
    echo "run.sh: IDVAULT_TEST_BACKEND=$BACKEND: expected sqlite (the default) or postgres" >&2
    exit 1
    ;;
esac
PG_ADMIN_URL="${IDVAULT_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/idvault-python-e2e.XXXXXX")"
SERVER_PID=""
PG_DATABASE=""  # set once this run has created its database

# Runs one SQL statement with psql on the admin database; psql's stderr goes to stdout of this
# function (its own stdout is dropped), so that callers can capture it.
pg_admin() {
  timeout "$PSQL_TIMEOUT_SECONDS" psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 -c "$1" 2>&1 >/dev/null
}

cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n "$PG_DATABASE" ]]; then
    local err
    if ! err="$(pg_admin "DROP DATABASE IF EXISTS $PG_DATABASE WITH (FORCE)")"; then
      echo "run.sh: warning: could not drop the test database $PG_DATABASE on $PG_ADMIN_URL: $err" >&2
      echo "run.sh: drop it by hand: DROP DATABASE IF EXISTS $PG_DATABASE WITH (FORCE)" >&2
    fi
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- idvault -----------------------------------------------------------------------------------
if [[ -z "${IDVAULT_BIN:-}" ]]; then
  IDVAULT_BIN="$REPO/target/debug/idvault"
  if [[ ! -x "$IDVAULT_BIN" ]]; then
    echo "run.sh: building idvault" >&2
    (cd "$REPO" && cargo build -p idvault)
  fi
fi
if [[ ! -x "$IDVAULT_BIN" ]]; then
  echo "run.sh: idvault binary not found at $IDVAULT_BIN" >&2
  exit 1
fi

# --- Python with the pinned SDK ----------------------------------------------------------------
if [[ -n "${E2E_PYTHON:-}" ]]; then
  PYTHON="$E2E_PYTHON"
else
  echo "run.sh: installing $HERE/requirements.txt into a fresh virtualenv" >&2
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  PYTHON="$WORK/venv/bin/python"
fi
"$PYTHON" -c 'import importlib.metadata as m, sys; v = m.version("descope"); sys.exit(0 if v == "2.16.1" else f"descope {v} installed, 2.16.1 expected")'

# --- PostgreSQL: a fresh database, so that idvault prints its first-start banner ---------------
GLOBAL_ARGS=(--data-dir "$WORK/data")
if [[ "$BACKEND" == postgres ]]; then
  # The admin URL with its database path replaced: scheme://authority/<name>[?query].
  if [[ ! "$PG_ADMIN_URL" =~ ^(postgres|postgresql)://([^/?#]+)(/[^?#]*)?(\?[^#]*)?$ ]]; then
    echo "run.sh: IDVAULT_TEST_PG_ADMIN_URL=$PG_ADMIN_URL is not a postgres:// URL" >&2
    exit 1
  fi
  pg_scheme="${BASH_REMATCH[1]}" pg_authority="${BASH_REMATCH[2]}" pg_query="${BASH_REMATCH[4]}"
  pg_name="idv_${PG_SUITE}_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  pg_url="$pg_scheme://$pg_authority/$pg_name$pg_query"
  if ! err="$(pg_admin "CREATE DATABASE $pg_name")"; then
    echo "run.sh: IDVAULT_TEST_BACKEND=postgres: CREATE DATABASE $pg_name on $PG_ADMIN_URL failed:" >&2
    echo "$err" >&2
    exit 1
  fi
  PG_DATABASE="$pg_name"
  GLOBAL_ARGS+=(--database-url "$pg_url")
fi

# --- Start idvault on a free port and a fresh data directory, read its banner ------------------
: >"$WORK/stdout.log"; : >"$WORK/stderr.log"  # exist before the server starts (polled below)
(
  unset IDVAULT_LISTEN IDVAULT_DATA_DIR IDVAULT_DATABASE_URL
  export NO_COLOR=1
  # The OAuth test server runs on 127.0.0.1 over http: allowed as a provider host.
  exec "$IDVAULT_BIN" "${GLOBAL_ARGS[@]}" serve --listen 127.0.0.1:0 --provider-allowed-hosts 127.0.0.1
) </dev/null >"$WORK/stdout.log" 2>"$WORK/stderr.log" &
SERVER_PID=$!

BASE_URI=""
deadline=$((SECONDS + START_TIMEOUT_SECONDS))
while [[ -z "$BASE_URI" ]]; do
  BASE_URI="$(sed -nE 's#^idvault listening on (http://127\.0\.0\.1:[0-9]+)[[:space:]]*$#\1#p' "$WORK/stdout.log" | head -n1)"
  [[ -n "$BASE_URI" ]] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null || (( SECONDS >= deadline )); then
    echo "run.sh: idvault did not print its listening line" >&2
    echo "--- stdout:" >&2; cat "$WORK/stdout.log" >&2
    echo "--- stderr:" >&2; cat "$WORK/stderr.log" >&2
    exit 1
  fi
  sleep 0.1
done
PROJECT_ID="$(sed -nE 's#^[[:space:]]*Project ID:[[:space:]]+(P[^[:space:]]+)[[:space:]]*$#\1#p' "$WORK/stdout.log" | head -n1)"
MANAGEMENT_KEY="$(sed -nE 's#^[[:space:]]*Management key:[[:space:]]+(idv_[^[:space:]]+)[[:space:]]*$#\1#p' "$WORK/stdout.log" | head -n1)"
if [[ -z "$PROJECT_ID" || -z "$MANAGEMENT_KEY" ]]; then
  echo "run.sh: idvault's first-start banner did not show a project id and a management key" >&2
  cat "$WORK/stdout.log" >&2
  exit 1
fi

# --- Run the scenario, configured only through the environment --------------------------------
export DESCOPE_PROJECT_ID="$PROJECT_ID"
export DESCOPE_MANAGEMENT_KEY="$MANAGEMENT_KEY"
export DESCOPE_BASE_URI="$BASE_URI"
unset DESCOPE_AUTH_MANAGEMENT_KEY

status=0
(cd "$HERE" && "$PYTHON" -m pytest -q -p no:cacheprovider test_sdk_e2e_user_scenario.py "$@") || status=$?
if (( status != 0 )); then
  echo "--- idvault stderr (last 50 lines):" >&2
  tail -n 50 "$WORK/stderr.log" >&2
fi
exit "$status"
