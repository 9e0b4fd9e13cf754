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
#                with scripts/pg-test-db and passed as --database-url; it is dropped once the
#                server has stopped. Failing to create it fails the run with the script's stderr;
#                failing to drop it only warns.
#   IDVAULT_TEST_PG_ADMIN_URL
#                read by scripts/pg-test-db: the database it connects to for CREATE / DROP
#                DATABASE (default postgres://postgres@127.0.0.1:5432/test)
# The server's URL, project and management key come from its ready file (serve --ready-file);
# its console output is shown only when something fails.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
START_TIMEOUT_SECONDS=30
PG_SUITE=python_e2e
PG_TEST_DB="$REPO/scripts/pg-test-db"

BACKEND="${IDVAULT_TEST_BACKEND:-sqlite}"
BACKEND="${BACKEND,,}"
case "$BACKEND" in
  sqlite | postgres) ;;
  *)
    echo "run.sh: IDVAULT_TEST_BACKEND=$BACKEND: expected sqlite (the default) or postgres" >&2
    exit 1
    ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/idvault-python-e2e.XXXXXX")"
SERVER_PID=""
PG_DATABASE=""  # set once this run has created its database

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
    if ! "$PG_TEST_DB" drop "$PG_DATABASE"; then
      echo "run.sh: warning: could not drop the test database $PG_DATABASE" >&2
      echo "run.sh: drop it by hand: scripts/pg-test-db drop $PG_DATABASE" >&2
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

# --- PostgreSQL: a fresh database, so that idvault creates its first project and key ----------
GLOBAL_ARGS=(--data-dir "$WORK/data")
if [[ "$BACKEND" == postgres ]]; then
  if ! created="$("$PG_TEST_DB" create "$PG_SUITE")"; then
    echo "run.sh: IDVAULT_TEST_BACKEND=postgres: pg-test-db create $PG_SUITE failed (its error is above)" >&2
    exit 1
  fi
  read -r PG_DATABASE pg_url <<<"$created"
  GLOBAL_ARGS+=(--database-url "$pg_url")
fi

# --- Start idvault on a free port and a fresh data directory, wait for its ready file ---------
READY="$WORK/ready.json"
# Under IDVAULT_TEST_LOG_DIR the console output is kept there for scripts/scan-secrets.
LOGS="$WORK"
if [[ -n "${IDVAULT_TEST_LOG_DIR:-}" ]]; then
  mkdir -p "$IDVAULT_TEST_LOG_DIR"
  LOGS="$IDVAULT_TEST_LOG_DIR"
fi
RUN_ID="python-e2e-$$-$RANDOM"
STDOUT_LOG="$LOGS/$RUN_ID.stdout.log"
STDERR_LOG="$LOGS/$RUN_ID.stderr.log"
(
  unset IDVAULT_LISTEN IDVAULT_DATA_DIR IDVAULT_DATABASE_URL IDVAULT_READY_FILE
  export NO_COLOR=1
  # The OAuth test server runs on 127.0.0.1 over http: allowed as a provider host.
  exec "$IDVAULT_BIN" "${GLOBAL_ARGS[@]}" serve --listen 127.0.0.1:0 --provider-allowed-hosts 127.0.0.1 \
    --ready-file "$READY"
) </dev/null >"$STDOUT_LOG" 2>"$STDERR_LOG" &
SERVER_PID=$!

server_output() {
  echo "--- stdout:" >&2; cat "$STDOUT_LOG" >&2
  echo "--- stderr:" >&2; cat "$STDERR_LOG" >&2
}

deadline=$((SECONDS + START_TIMEOUT_SECONDS))
# The server renames the file into place: once it exists, it is complete.
until [[ -f "$READY" ]]; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null || (( SECONDS >= deadline )); then
    echo "run.sh: idvault did not write its ready file" >&2
    server_output
    exit 1
  fi
  sleep 0.1
done
# JSON is read with the Python that runs the scenario (no jq needed): one field per line.
if ! { read -r BASE_URI; read -r PROJECT_ID; read -r MANAGEMENT_KEY; read -r READY_BACKEND; } < <(
  "$PYTHON" -c 'import json, sys
ready = json.load(open(sys.argv[1]))
for field in ("url", "projectId", "managementKey", "backend"):
    print(ready.get(field) or "")' "$READY"
); then
  echo "run.sh: could not read idvault's ready file $READY" >&2
  server_output
  exit 1
fi
if [[ -z "$BASE_URI" || -z "$PROJECT_ID" || -z "$MANAGEMENT_KEY" ]]; then
  echo "run.sh: idvault's ready file names no url, project id and management key" >&2
  server_output
  exit 1
fi
if [[ "$READY_BACKEND" != "$BACKEND" ]]; then
  echo "run.sh: idvault runs on $READY_BACKEND, not $BACKEND" >&2
  server_output
  exit 1
fi

# --- The secrets this run uses (its management key, its master key), for scripts/scan-secrets --
if [[ -n "${IDVAULT_TEST_LOG_DIR:-}" ]]; then
  "$PYTHON" -c 'import json, pathlib, sys
log_dir, data_dir, key = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
secrets = [("management key", key)]
keyring = data_dir / "master.key"
if keyring.exists():
    for line in keyring.read_text().splitlines():
        if not line.lstrip().startswith("#"):
            secrets += [("master key", e.split(":", 1)[-1]) for e in line.replace(",", " ").split()]
with open(log_dir / "secrets.jsonl", "a") as out:
    for kind, secret in secrets:
        out.write(json.dumps({"kind": kind, "secret": secret}) + "\n")' "$IDVAULT_TEST_LOG_DIR" "$WORK/data" "$MANAGEMENT_KEY"
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
  tail -n 50 "$STDERR_LOG" >&2
fi
exit "$status"
