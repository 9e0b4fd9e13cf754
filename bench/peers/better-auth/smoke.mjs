// End-to-end check of the peer as the harness uses it: seed a few users into a fresh directory,
// start server.mjs as a child process, wait for its `listening on` line, check every route's
// answer and error, stop it with SIGTERM. `npm test` runs it; it exits non-zero on any mismatch.
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = fileURLToPath(new URL(".", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "peer-smoke-"));
const db = join(dir, "peer.db");
const key = "Psmoke:smoke-key";
let server;

try {
  // 30 users, the first 20 with a google account: user 25 has none.
  execFileSync(process.execPath, [join(here, "seed.mjs"), "--db", db, "--users", "30", "--token-users", "20"], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  assert.throws(
    () => execFileSync(process.execPath, [join(here, "seed.mjs"), "--db", db, "--users", "1"], { stdio: "ignore" }),
    "a second seed into the same file is refused",
  );

  server = spawn(process.execPath, [join(here, "server.mjs"), "--db", db, "--port", "0"], {
    env: { ...process.env, PEER_KEY: key },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const base = await listeningUrl(server);
  const get = async (path, authorization = `Bearer ${key}`) => {
    const res = await fetch(base + path, { headers: { authorization } });
    return { status: res.status, body: await res.json() };
  };

  let r = await get("/user?loginId=user7%40example.com");
  assert.equal(r.status, 200);
  assert.equal(r.body.user.email, "user7@example.com");
  assert.equal(r.body.user.name, "Bench User 7");

  r = await get("/token?loginId=user7%40example.com&provider=google&withRefreshToken=false&forceRefresh=false");
  assert.equal(r.status, 200);
  assert.equal(r.body.accessToken, "bench-access-7");

  assert.equal((await get("/token?loginId=user25%40example.com&provider=google")).status, 404);
  assert.equal((await get("/token?loginId=user7%40example.com&provider=github")).status, 404);
  assert.equal((await get("/user?loginId=nobody%40example.com")).status, 404);
  assert.equal((await get("/user")).status, 400);
  assert.equal((await get("/user?loginId=user7%40example.com", "Bearer Psmoke:wrong-key")).status, 401);
  assert.equal((await get("/user?loginId=user7%40example.com", "")).status, 401);

  r = await get("/search?text=user2");
  assert.equal(r.status, 200);
  assert.equal(r.body.total, 11); // user2, user20..user29
  r = await get("/search?text=Bench%20User%201&field=name&limit=5");
  assert.equal(r.body.total, 11); // 1, 10..19
  assert.equal(r.body.users.length, 5);
  r = await get("/search?text=example.com");
  assert.equal(r.body.total, 30); // the admin is outside example.com
  assert.equal((await get("/search?text=x&field=role")).status, 400);

  console.log("peer smoke test: ok");
} finally {
  server?.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
}

function listeningUrl(child) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server printed no `listening on` line in 60 s")), 60_000);
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/^listening on (http:\/\/127\.0\.0\.1:\d+)$/m);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code} before listening`)));
  });
}
