#!/usr/bin/env python3
"""Fuzzes the whole HTTP API of a fresh idvault with schemathesis, from the document it serves.

One server is started on a free port with a fresh data directory (and, on PostgreSQL, a fresh
database made by scripts/pg-test-db and dropped afterwards). schemathesis reads its
/openapi.json and sends generated requests, valid and invalid, to every operation, with the
server's first management key (`Authorization: Bearer <projectId>:<key>`). Every answer is
checked for:
  - not_a_server_error: no 5xx answer;
  - status_code_conformance: the status is one the document lists for that operation;
  - content_type_conformance: the content type is the one the document lists;
  - response_schema_conformance: the body matches the documented schema for that status.
The run fails on any failed check, any case left without an answer, and any error of
schemathesis itself.

The per-address rate limit of the auth routes is turned off (`--auth-rate-limit 0`): with it,
most auth requests of a run would stop at the 429 and never reach a handler.

Prints, at the end: operations tested, cases sent, answers by status class, and the failures by
check, then `fuzz-api (<backend>): N operations passed, N failed`.

Usage (scripts/fuzz-api and scripts/test.sh call it with the virtualenv's Python):
  fuzz_api.py [--backend sqlite|postgres] [--max-examples N] [--phases LIST] [--seed N]
              [--workers N] [--report-dir DIR]
Environment: IDVAULT_BIN (default target/debug/idvault), IDVAULT_TEST_PG_ADMIN_URL (read by
scripts/pg-test-db).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PG_TEST_DB = REPO / "scripts" / "pg-test-db"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def fail(message: str) -> None:
    print(f"fuzz-api: {message}", file=sys.stderr)
    sys.exit(1)


def pg_test_db(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PG_TEST_DB), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90
    )


def start_server(binary: Path, global_args: list[str], work: Path) -> tuple[subprocess.Popen, dict]:
    ready_path = work / "ready.json"
    log = open(work / "server.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDVAULT_")}
    env["NO_COLOR"] = "1"
    proc = subprocess.Popen(
        [str(binary), *global_args, "serve", "--listen", "127.0.0.1:0", "--ready-file", str(ready_path),
         "--auth-rate-limit", "0"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            return proc, json.loads(ready_path.read_text())
        except FileNotFoundError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            fail(f"idvault did not start:\n{(work / 'server.log').read_text(errors='replace')}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Summary:
    """What a run sent and what came back, read from schemathesis's NDJSON event log."""

    def __init__(self, events: Path) -> None:
        self.operations = 0
        self.tested: set[str] = set()
        self.cases: dict[str, int] = {}  # case id -> HTTP status (0: no answer)
        self.failures: collections.Counter = collections.Counter()  # (check, operation) -> cases
        self.errors: list[str] = []
        with events.open() as lines:
            for line in lines:
                event = json.loads(line)
                if "LoadingFinished" in event:
                    self.operations = event["LoadingFinished"]["statistic"]["operations"]["selected"]
                elif "ScenarioFinished" in event:
                    self._scenario(event["ScenarioFinished"])
                elif "NonFatalError" in event:
                    error = event["NonFatalError"]
                    value = error.get("value") or {}
                    self.errors.append(f"{error.get('label', '?')}: {value.get('type')}: {value.get('message')}")
                elif "FatalError" in event:
                    self.errors.append(f"fatal: {event['FatalError']}")

    def _scenario(self, scenario: dict) -> None:
        recorder = scenario.get("recorder") or {}
        label = recorder.get("label", "?")
        for case_id, interaction in (recorder.get("interactions") or {}).items():
            response = interaction.get("response") or {}
            self.cases[case_id] = response.get("status_code") or 0
            # The stateful phase reports its sequences under one label of its own.
            if label != "Stateful tests":
                self.tested.add(label)
        for case_id, checks in (recorder.get("checks") or {}).items():
            for check in checks:
                if check.get("status") == "failure":
                    self.failures[(check.get("name", "?"), label)] += 1

    def by_class(self) -> collections.Counter:
        return collections.Counter(f"{str(code)[0]}xx" if code else "no answer" for code in self.cases.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--max-examples", type=int, default=30, help="cases per operation in the fuzzing phase")
    # `examples` is left out: the document has no examples to send.
    parser.add_argument("--phases", default="coverage,fuzzing,stateful")
    parser.add_argument("--seed", type=int, default=None, help="for a reproducible run")
    parser.add_argument("--workers", default="1", help="schemathesis workers (threads); 1 by default: CPython 3.11.7 can fail with a SystemError when two of them parse source at once")
    parser.add_argument("--report-dir", type=Path, default=None, help="keep the reports there")
    args = parser.parse_args()

    binary = Path(os.environ.get("IDVAULT_BIN", REPO / "target" / "debug" / "idvault"))
    if not binary.is_file():
        fail(f"no idvault binary at {binary}: build it with `cargo build -p idvault` or set IDVAULT_BIN")
    schemathesis = Path(sys.executable).parent / "schemathesis"
    if not schemathesis.is_file():
        fail(f"schemathesis is not installed beside {sys.executable}: pip install -r tests/api-fuzz/requirements.txt")

    work = Path(tempfile.mkdtemp(prefix="idvault-fuzz-api."))
    reports = args.report_dir or work / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    global_args = ["--data-dir", str(work / "data")]
    database = None
    if args.backend == "postgres":
        done = pg_test_db("create", "fuzz_api")
        fields = done.stdout.split()
        if done.returncode != 0 or len(fields) != 2:
            fail(f"`pg-test-db create fuzz_api` failed:\n{done.stderr}{done.stdout}")
        database, url = fields
        global_args += ["--database-url", url]
    proc = None
    try:
        proc, ready = start_server(binary, global_args, work)
        if ready.get("backend") != args.backend:
            fail(f"idvault runs on {ready.get('backend')}, not {args.backend}")
        command = [
            str(schemathesis), "run", f"{ready['url']}/openapi.json",
            "--header", f"Authorization: Bearer {ready['projectId']}:{ready['managementKey']}",
            "--checks", CHECKS,
            "--phases", args.phases,
            "--max-examples", str(args.max_examples),
            "--workers", args.workers,
            "--continue-on-failure",
            "--generation-database", "none",
            "--suppress-health-check", "all",
            "--request-timeout", "30",
            "--report", "ndjson",
            "--report-dir", str(reports),
            "--output-sanitize", "true",
            "--no-color",
        ]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        print(f"fuzz-api: {args.backend}, phases {args.phases}, {args.max_examples} examples per operation",
              flush=True)
        started = time.monotonic()
        run = subprocess.run(command, stdin=subprocess.DEVNULL, cwd=work)
        elapsed = time.monotonic() - started
        summary = Summary(next(reports.glob("*.ndjson")))
        classes = summary.by_class()
        print(f"\nfuzz-api ({args.backend}): {summary.operations} operations, {len(summary.tested)} tested with "
              f"{len(summary.cases)} cases in {elapsed:.0f} s; answers "
              + ", ".join(f"{k}: {v}" for k, v in sorted(classes.items())))
        print(f"fuzz-api ({args.backend}): {classes.get('5xx', 0)} answers 5xx, "
              f"{sum(summary.failures.values())} cases failing a check, {len(summary.errors)} errors")
        for (check, label), count in sorted(summary.failures.items()):
            print(f"  {check}: {label} ({count} cases)")
        for error in summary.errors:
            print(f"  error: {error}")
        failing_operations = {label for (_, label) in summary.failures}
        failed = len(failing_operations) + len(summary.errors)
        # A case without an answer (the server hung up or timed out) fails the run too.
        if classes.get("5xx", 0) or classes.get("no answer", 0) or failed or run.returncode != 0 or not summary.cases:
            print(f"fuzz-api: the server's log and the reports are in {work}", file=sys.stderr)
            print(f"fuzz-api ({args.backend}): {len(summary.tested) - len(failing_operations)} operations passed, "
                  f"{max(failed, 1)} failed")
            sys.exit(1)
        print(f"fuzz-api ({args.backend}): {len(summary.tested)} operations passed, 0 failed")
    finally:
        if proc is not None:
            stop(proc)
        if database is not None:
            dropped = pg_test_db("drop", database)
            if dropped.returncode != 0:
                print(f"fuzz-api: could not drop {database}: {dropped.stderr.strip()}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
