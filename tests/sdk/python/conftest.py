"""Fixtures for the Descope Python SDK conformance suite.

One idvault server is started per test session, on a free port and a fresh data directory; every
test talks to it through the official `descope` package. Tests use unique login ids (uuid) so
that they do not depend on each other or on their order.

Storage backend, chosen by IDVAULT_TEST_BACKEND:
  sqlite (default, also when unset)  the server keeps everything in SQLite in its data directory.
  postgres  a fresh database `idv_python_<hex>` is created with psql on the server given by
            IDVAULT_TEST_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/test) and
            passed as `--database-url`; it is dropped (WITH (FORCE)) once the server has stopped.
            Failing to create it fails the session with psql's stderr; failing to drop it warns.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid
import warnings
from pathlib import Path
from typing import Iterator, Optional

import pytest
from descope import DescopeClient

from idvault_sdk_helpers import IdvaultServer

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "idvault"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0

LISTENING_RE = re.compile(r"^idvault listening on (http://127\.0\.0\.1:\d+)\s*$")
PROJECT_ID_RE = re.compile(r"^\s*Project ID:\s+(P\S+)\s*$")
MGMT_KEY_RE = re.compile(r"^\s*Management key:\s+(idv_\S+)\s*$")

DEFAULT_PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/test"
PSQL_TIMEOUT_SECONDS = 60.0
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


def _pg_admin_url() -> str:
    return os.environ.get("IDVAULT_TEST_PG_ADMIN_URL") or DEFAULT_PG_ADMIN_URL


def _pg_database_url(admin_url: str, name: str) -> str:
    """The admin URL with its database path replaced by `name` (user, host, port, query kept)."""
    parts = urllib.parse.urlsplit(admin_url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.netloc:
        pytest.fail(
            f"IDVAULT_TEST_PG_ADMIN_URL={admin_url!r} is not a postgres:// URL", pytrace=False
        )
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _psql(admin_url: str, sql: str) -> subprocess.CompletedProcess:
    """Runs one SQL statement with psql on the admin database; raises OSError / TimeoutExpired."""
    return subprocess.run(
        ["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-c", sql],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=PSQL_TIMEOUT_SECONDS,
    )


def _pg_create_database(admin_url: str) -> tuple[str, str]:
    """Creates a fresh, empty database for one server (so that it prints its first-start banner)
    and answers (name, database URL). Any failure fails the session loudly, with psql's stderr."""
    name = f"idv_{PG_SUITE}_{secrets.token_hex(8)}"
    url = _pg_database_url(admin_url, name)
    try:
        done = _psql(admin_url, f"CREATE DATABASE {name}")
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.fail(
            f"IDVAULT_TEST_BACKEND=postgres: could not run psql to create database {name} "
            f"on {admin_url}: {err}",
            pytrace=False,
        )
    if done.returncode != 0:
        pytest.fail(
            f"IDVAULT_TEST_BACKEND=postgres: `CREATE DATABASE {name}` on {admin_url} failed "
            f"(psql exit code {done.returncode}):\n{done.stderr}",
            pytrace=False,
        )
    return name, url


def _pg_drop_database(admin_url: str, name: str) -> None:
    """Drops a database made by _pg_create_database; a failure only warns."""
    try:
        done = _psql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except (OSError, subprocess.TimeoutExpired) as err:
        problem = str(err)
    else:
        if done.returncode == 0:
            return
        problem = f"psql exit code {done.returncode}: {done.stderr.strip()}"
    warnings.warn(
        f"could not drop the test database {name} on {admin_url} ({problem}); "
        f"drop it by hand: DROP DATABASE IF EXISTS {name} WITH (FORCE)",
        stacklevel=1,
    )


def _read_lines(stream, lines: "queue.Queue[Optional[str]]") -> None:
    """Moves the server's stdout into a queue, line by line, until it closes (then None).

    It keeps draining after start-up too, so the server never blocks on a full pipe."""
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


@pytest.fixture(scope="session")
def idvault_server(tmp_path_factory) -> Iterator[IdvaultServer]:
    binary = Path(os.environ.get("IDVAULT_BIN", str(DEFAULT_BIN)))
    if not binary.is_file():
        pytest.fail(
            f"idvault binary not found at {binary}: build it with `cargo build` "
            "or point IDVAULT_BIN at it",
            pytrace=False,
        )

    backend = _backend()
    data_dir = tmp_path_factory.mktemp("idvault-data")
    stderr_path = tmp_path_factory.mktemp("idvault-logs") / "stderr.log"
    env = dict(os.environ)
    env.pop("IDVAULT_LISTEN", None)
    env.pop("IDVAULT_DATA_DIR", None)
    env.pop("IDVAULT_DATABASE_URL", None)  # the backend is chosen by IDVAULT_TEST_BACKEND alone
    env.setdefault("NO_COLOR", "1")

    global_args = ["--data-dir", str(data_dir)]
    pg_admin_url = pg_database = None
    if backend == "postgres":
        pg_admin_url = _pg_admin_url()
        pg_database, database_url = _pg_create_database(pg_admin_url)
        global_args += ["--database-url", database_url]
    try:
        yield from _run_server(binary, global_args, data_dir, stderr_path, env)
    finally:
        # Runs once the server has stopped, also when it failed to start.
        if pg_database is not None:
            _pg_drop_database(pg_admin_url, pg_database)


def _run_server(
    binary: Path, global_args: list[str], data_dir: Path, stderr_path: Path, env: dict
) -> Iterator[IdvaultServer]:
    """Starts `idvault <global_args> serve`, yields it once it listens, stops it afterwards."""
    stderr_file = open(stderr_path, "wb")
    proc = subprocess.Popen(
        # The OAuth test server runs on 127.0.0.1 over http: allowed as a provider host.
        [str(binary), *global_args, "serve", "--listen", "127.0.0.1:0",
         "--provider-allowed-hosts", "127.0.0.1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
        bufsize=1,
        env=env,
    )
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()

    stdout_seen: list[str] = []
    project_id = management_key = base_url = None
    stdout_closed = False
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while base_url is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:  # stdout closed: the server exited
            stdout_closed = True
            break
        stdout_seen.append(line)
        if m := PROJECT_ID_RE.match(line):
            project_id = m.group(1)
        elif m := MGMT_KEY_RE.match(line):
            management_key = m.group(1)
        elif m := LISTENING_RE.match(line):
            base_url = m.group(1)

    def failure(reason: str) -> str:
        _stop(proc)
        stderr_file.close()
        stderr = stderr_path.read_text(errors="replace")
        return (
            f"{reason}\n--- idvault exit code: {proc.returncode}\n"
            f"--- stdout:\n{''.join(stdout_seen)}\n--- stderr:\n{stderr}"
        )

    if base_url is None:
        if stdout_closed:
            reason = "idvault exited before printing its listening line"
        else:
            reason = f"idvault did not print its listening line within {START_TIMEOUT_SECONDS:.0f} s"
        pytest.fail(failure(reason), pytrace=False)
    if project_id is None or management_key is None:
        reason = "idvault's first-start banner did not show a project id and a management key"
        pytest.fail(failure(reason), pytrace=False)

    try:
        yield IdvaultServer(
            base_url=base_url,
            project_id=project_id,
            management_key=management_key,
            data_dir=data_dir,
        )
    finally:
        _stop(proc)
        reader.join(timeout=5)
        stderr_file.close()


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
