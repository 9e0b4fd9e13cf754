"""Fixtures for the Descope Python SDK conformance suite.

One idvault server is started per test session, on a free port and a fresh data directory; every
test talks to it through the official `descope` package. Tests use unique login ids (uuid) so
that they do not depend on each other or on their order. The server says where it listens, its
project and its first management key in its ready file (`serve --ready-file`); its console output
is kept only for failure messages.

Storage backend, chosen by IDVAULT_TEST_BACKEND:
  sqlite (default, also when unset)  the server keeps everything in SQLite in its data directory.
  postgres  a fresh database `idv_python_<hex>` is created with scripts/pg-test-db (on the server
            of IDVAULT_TEST_PG_ADMIN_URL, default postgres://postgres@127.0.0.1:5432/test) and
            passed as `--database-url`; it is dropped once the server has stopped.
            Failing to create it fails the session with the script's stderr; failing to drop it
            warns.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
import warnings
from pathlib import Path
from typing import Iterator, Optional

import pytest
from descope import DescopeClient

from idvault_sdk_helpers import IdvaultServer, log_dir, record_master_keys, record_secret, record_secrets_in

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "idvault"
PG_TEST_DB = REPO_ROOT / "scripts" / "pg-test-db"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
PG_TEST_DB_TIMEOUT_SECONDS = 90.0
PG_SUITE = "python"


def _backend() -> str:
    """The storage backend the server runs on: IDVAULT_TEST_BACKEND, `sqlite` when unset."""
    backend = os.environ.get("IDVAULT_TEST_BACKEND", "").strip().lower() or "sqlite"
    if backend not in ("sqlite", "postgres"):
        pytest.fail(
            f"IDVAULT_TEST_BACKEND={backend!r}: expected `sqlite` (the default) or `postgres`",
            pytrace=False,
        )
    return backend


def _pg_test_db(*args: str) -> subprocess.CompletedProcess:
    """Runs scripts/pg-test-db, the database helper every suite shares; raises OSError /
    TimeoutExpired."""
    return subprocess.run(
        [str(PG_TEST_DB), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=PG_TEST_DB_TIMEOUT_SECONDS,
    )


def _pg_create_database() -> tuple[str, str]:
    """Creates a fresh, empty database for one server (so that it creates its first project and
    key) and answers (name, database URL). Any failure fails the session loudly."""
    try:
        done = _pg_test_db("create", PG_SUITE)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.fail(f"IDVAULT_TEST_BACKEND=postgres: could not run {PG_TEST_DB}: {err}", pytrace=False)
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) != 2:
        pytest.fail(
            f"IDVAULT_TEST_BACKEND=postgres: `pg-test-db create {PG_SUITE}` failed "
            f"(exit code {done.returncode}):\n{done.stderr}{done.stdout}",
            pytrace=False,
        )
    return fields[0], fields[1]


def _pg_drop_database(name: str) -> None:
    """Drops a database made by _pg_create_database; a failure only warns."""
    try:
        done = _pg_test_db("drop", name)
    except (OSError, subprocess.TimeoutExpired) as err:
        problem = str(err)
    else:
        if done.returncode == 0:
            return
        problem = f"exit code {done.returncode}: {done.stderr.strip()}"
    warnings.warn(
        f"could not drop the test database {name} ({problem}); "
        f"drop it by hand: scripts/pg-test-db drop {name}",
        stacklevel=1,
    )


def _read_lines(stream, lines: "queue.Queue[Optional[str]]") -> None:
    """Moves a child's stdout into a queue, line by line, until it closes (then None).

    It keeps draining after start-up too, so the child never blocks on a full pipe."""
    try:
        for line in iter(stream.readline, ""):
            lines.put(line)
    finally:
        lines.put(None)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _dump_audit(ready: dict, path: Path) -> None:
    """Writes the audit records of the server's project to `path`, one a line, as the management
    search answers them, for scripts/scan-secrets (records are checked for secrets as the logs
    are). Runs before the server stops; records its writer still holds (the last ~100 ms) are not
    stored yet. Plain urllib, so that nothing here goes through the SDK's recorded requests. A
    failure is written beside it, never raised."""
    page_size = 1000
    lines = []
    try:
        for page in itertools.count():
            request = urllib.request.Request(
                f"{ready['url']}/v1/mgmt/audit/search",
                data=json.dumps({"limit": page_size, "page": page}).encode(),
                headers={
                    "Authorization": f"Bearer {ready['projectId']}:{ready['managementKey']}",
                    "Content-Type": "application/json",
                },
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as resp:
                audits = json.load(resp).get("audits") or []
            lines.extend(json.dumps(record) + "\n" for record in audits)
            if len(audits) < page_size:
                break
        path.write_text("".join(lines))
    except (OSError, ValueError) as err:
        path.with_name(path.name.replace("audit.jsonl", "audit-error.log")).write_text(f"audit dump failed: {err}\n")


def wait_for_ready_file(proc: subprocess.Popen, path: Path, timeout: float) -> Optional[dict]:
    """The JSON of idvault's ready file once it exists, or None if the server exits or takes
    longer than `timeout`. The server renames the file into place, so a file that exists is
    complete."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            pass
        if proc.poll() is not None or time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


# The shared server's tests present many wrong management keys from one address (127.0.0.1) on
# purpose; with the default brute-force budget (10, then one every 6 s) they would be refused
# with 429 depending on their order and speed. The limit stays on, with a burst no run of this
# suite reaches; test_sdk_brute_force.py tests it on a server of its own with a small budget.
SHARED_SERVER_ARGS = ["--credential-failure-burst", "100000"]


@pytest.fixture(scope="session")
def idvault_server(tmp_path_factory) -> Iterator[IdvaultServer]:
    yield from start_idvault(tmp_path_factory, SHARED_SERVER_ARGS)


@pytest.fixture(scope="module")
def own_idvault_server(request, tmp_path_factory) -> Iterator[IdvaultServer]:
    """A server for one test module, started with the `serve` arguments in its SERVE_ARGS (for a
    setting under test that would disturb the shared server's tests)."""
    yield from start_idvault(tmp_path_factory, list(request.module.SERVE_ARGS))


def start_idvault(tmp_path_factory, serve_args: list[str]) -> Iterator[IdvaultServer]:
    """Starts an idvault server with extra `serve` arguments on the chosen backend, yields it once
    it is ready and stops it (and drops its database) afterwards. For fixtures."""
    binary = Path(os.environ.get("IDVAULT_BIN", str(DEFAULT_BIN)))
    if not binary.is_file():
        pytest.fail(
            f"idvault binary not found at {binary}: build it with `cargo build` "
            "or point IDVAULT_BIN at it",
            pytrace=False,
        )

    backend = _backend()
    data_dir = tmp_path_factory.mktemp("idvault-data")
    run_dir = tmp_path_factory.mktemp("idvault-run")
    env = dict(os.environ)
    env.pop("IDVAULT_LISTEN", None)
    env.pop("IDVAULT_DATA_DIR", None)
    env.pop("IDVAULT_DATABASE_URL", None)  # the backend is chosen by IDVAULT_TEST_BACKEND alone
    env.pop("IDVAULT_READY_FILE", None)
    env.setdefault("NO_COLOR", "1")

    global_args = ["--data-dir", str(data_dir)]
    pg_database = None
    if backend == "postgres":
        pg_database, database_url = _pg_create_database()
        global_args += ["--database-url", database_url]
    try:
        yield from _run_server(binary, global_args, serve_args, data_dir, run_dir, env, backend)
    finally:
        # Runs once the server has stopped, also when it failed to start.
        if pg_database is not None:
            _pg_drop_database(pg_database)


def _run_server(
    binary: Path,
    global_args: list[str],
    serve_args: list[str],
    data_dir: Path,
    run_dir: Path,
    env: dict,
    backend: str,
) -> Iterator[IdvaultServer]:
    """Starts `idvault <global_args> serve <serve_args>`, yields it once it is ready, stops it
    afterwards."""
    ready_path = run_dir / "ready.json"
    # Under IDVAULT_TEST_LOG_DIR the console output is kept for scripts/scan-secrets.
    logs = log_dir() or run_dir
    run = uuid.uuid4().hex[:12]
    stdout_path = logs / f"python-{run}.stdout.log"
    stderr_path = logs / f"python-{run}.stderr.log"
    with open(stdout_path, "wb") as stdout_file, open(stderr_path, "wb") as stderr_file:
        proc = subprocess.Popen(
            # The OAuth test server runs on 127.0.0.1 over http: allowed as a provider host.
            [str(binary), *global_args, "serve", "--listen", "127.0.0.1:0",
             "--provider-allowed-hosts", "127.0.0.1", "--ready-file", str(ready_path), *serve_args],
            stdin=subprocess.DEVNULL,
            stdout=stdout_file,
            stderr=stderr_file,
            env=env,
        )
    ready = wait_for_ready_file(proc, ready_path, START_TIMEOUT_SECONDS)

    def failure(reason: str) -> str:
        _stop(proc)
        return (
            f"{reason}\n--- idvault exit code: {proc.returncode}\n"
            f"--- stdout:\n{stdout_path.read_text(errors='replace')}\n"
            f"--- stderr:\n{stderr_path.read_text(errors='replace')}"
        )

    if ready is None:
        if proc.poll() is not None:
            reason = "idvault exited before writing its ready file"
        else:
            reason = f"idvault did not write its ready file within {START_TIMEOUT_SECONDS:.0f} s"
        pytest.fail(failure(reason), pytrace=False)
    if not ready.get("projectId") or not ready.get("managementKey"):
        reason = f"idvault's ready file names no project id and management key: {ready}"
        pytest.fail(failure(reason), pytrace=False)
    if ready.get("backend") != backend:
        pytest.fail(failure(f"idvault runs on {ready.get('backend')}, not {backend}"), pytrace=False)

    record_secret("management key", ready["managementKey"])
    record_master_keys(data_dir)
    try:
        yield IdvaultServer(
            base_url=ready["url"],
            project_id=ready["projectId"],
            management_key=ready["managementKey"],
            data_dir=data_dir,
        )
    finally:
        if log_dir() and proc.poll() is None:
            _dump_audit(ready, logs / f"python-{run}.audit.jsonl")
        _stop(proc)


@pytest.fixture(scope="session", autouse=True)
def record_sdk_secrets() -> Iterator[None]:
    """Records the secrets every request sends and every answer carries, for scripts/scan-secrets;
    does nothing without IDVAULT_TEST_LOG_DIR. The SDK (and put_provider_token) talk through
    httpx, whose module functions all go through `httpx.Client.request`."""
    if log_dir() is None:
        yield
        return
    import httpx

    original = httpx.Client.request

    def request(self, method, url, *args, **kwargs):
        record_secrets_in(kwargs.get("json"))
        auth = dict(kwargs.get("headers") or {}).get("Authorization", "")
        if auth.startswith("Bearer ") and ":" in auth:
            record_secret("authorization", auth.split(":", 1)[1])
        response = original(self, method, url, *args, **kwargs)
        try:
            record_secrets_in(response.json())
        except ValueError:
            pass
        return response

    httpx.Client.request = request
    try:
        yield
    finally:
        httpx.Client.request = original


@pytest.fixture(scope="session")
def client(idvault_server: IdvaultServer) -> DescopeClient:
    return DescopeClient(
        project_id=idvault_server.project_id,
        management_key=idvault_server.management_key,
        base_url=idvault_server.base_url,
    )


@pytest.fixture
def uid() -> str:
    """A fresh unique suffix for login ids, tenant ids, role names of one test."""
    return uuid.uuid4().hex



OAUTH_LISTENING_RE = re.compile(r"^oauth-server listening on (http://127\.0\.0\.1:\d+)\s*$")


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[str]:
    """The real OAuth server (oidc-provider, tests/oauth-server) for refresh tests; yields its
    issuer URL. `npm ci` must have run in tests/oauth-server (scripts/test.sh does)."""
    script = REPO_ROOT / "tests" / "oauth-server" / "server.js"
    if not (script.parent / "node_modules" / "oidc-provider").exists():
        pytest.fail(f"run `npm ci` in {script.parent} first (scripts/test.sh does)")
    proc = subprocess.Popen(
        ["node", str(script), "--port", "0", "--exit-on-stdin-close"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    issuer = None
    while issuer is None:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            _stop(proc)
            pytest.fail("the OAuth test server did not start")
        match = OAUTH_LISTENING_RE.match(line.strip())
        if match:
            issuer = match.group(1)
    try:
        yield issuer
    finally:
        _stop(proc)
