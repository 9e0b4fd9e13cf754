"""Fixtures for the Descope Python SDK conformance suite.

One idvault server is started per test session, on a free port and a fresh data directory; every
test talks to it through the official `descope` package. Tests use unique login ids (uuid) so
that they do not depend on each other or on their order.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
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

    data_dir = tmp_path_factory.mktemp("idvault-data")
    stderr_path = tmp_path_factory.mktemp("idvault-logs") / "stderr.log"
    stderr_file = open(stderr_path, "wb")
    env = dict(os.environ)
    env.pop("IDVAULT_LISTEN", None)
    env.pop("IDVAULT_DATA_DIR", None)
    env.setdefault("NO_COLOR", "1")

    proc = subprocess.Popen(
        [str(binary), "--data-dir", str(data_dir), "serve", "--listen", "127.0.0.1:0"],
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
