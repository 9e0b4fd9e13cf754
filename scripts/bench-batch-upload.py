#!/usr/bin/env python3
"""Times one outbound batch upload of N user tokens (a migration) against a real idvault server.

Not a test: it prints a figure for docs/benchmarks.md. It starts `idvault serve` on a fresh data
directory (SQLite, or PostgreSQL with --database-url), creates an app and N users (batches of
1,000, not timed), then times a single POST of N tokens to
/v1/mgmt/outbound/app/user/oauthtoken/batch/upload and reads a few back.

    scripts/bench-batch-upload.py --bin target/debug/idvault --tokens 100000
    scripts/bench-batch-upload.py --bin target/debug/idvault --database-url postgres://...

Say which build the binary is (debug or release) with the figure.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def call(base, auth, path, body):
    data = json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method="POST")
    req.add_header("Authorization", auth)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=3600) as resp:
            return json.loads(resp.read() or b"{}"), len(data)
    except urllib.error.HTTPError as e:
        sys.exit(f"{path}: HTTP {e.code}: {e.read()[:500]!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/debug/idvault")
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--database-url", default=None, help="PostgreSQL database (empty); default SQLite")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "data")
        ready = os.path.join(tmp, "ready.json")
        cmd = [args.bin, "--data-dir", data_dir]
        if args.database_url:
            cmd += ["--database-url", args.database_url]
        cmd += ["serve", "--listen", "127.0.0.1:0", "--ready-file", ready]
        env = dict(os.environ)
        env.setdefault("IDVAULT_LOG", "warn")
        env.pop("IDVAULT_MASTER_KEY", None)
        server = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while not os.path.exists(ready):
                if server.poll() is not None or time.time() > deadline:
                    sys.exit("the server did not start")
                time.sleep(0.1)
            with open(ready) as f:
                info = json.load(f)
            base, auth = info["url"], f"Bearer {info['projectId']}:{info['managementKey']}"

            call(base, auth, "/v1/mgmt/outbound/app/create", {"id": "crm", "name": "CRM"})
            user_ids = []
            for start in range(0, args.tokens, 1000):
                users = [{"loginId": f"bench{i}"} for i in range(start, min(args.tokens, start + 1000))]
                out, _ = call(base, auth, "/v1/mgmt/user/create/batch", {"users": users})
                user_ids += [u["userId"] for u in out["createdUsers"]]
            tokens = [
                {
                    "appId": "crm",
                    "userId": u,
                    "accessToken": f"ya29.access-{i}-" + "a" * 120,
                    "refreshToken": f"1//refresh-{i}-" + "r" * 60,
                    "accessTokenExpiry": 4_000_000_000,
                    "scopes": ["contacts.read", "calendar.read"],
                    "grantedBy": "migration",
                }
                for i, u in enumerate(user_ids)
            ]

            started = time.perf_counter()
            out, size = call(base, auth, "/v1/mgmt/outbound/app/user/oauthtoken/batch/upload", {"tokens": tokens})
            elapsed = time.perf_counter() - started
            if out.get("failures"):
                sys.exit(f"failures: {out['failures'][:5]}")
            for i in (0, len(user_ids) // 2, len(user_ids) - 1):
                got, _ = call(
                    base, auth, "/v1/mgmt/outbound/app/user/token/latest", {"appId": "crm", "userId": user_ids[i]}
                )
                assert got["token"]["accessToken"] == tokens[i]["accessToken"], got
            backend = "postgres" if args.database_url else "sqlite"
            print(
                f"{len(tokens)} tokens ({size / 1048576:.1f} MiB body) in {elapsed:.2f} s: "
                f"{len(tokens) / elapsed:,.0f} tokens/s ({backend}, {os.cpu_count()} cores, binary {args.bin})"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
