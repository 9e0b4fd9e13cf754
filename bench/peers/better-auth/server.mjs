// A plain Node HTTP server answering the benchmark's reads through better-auth, over a database
// written by seed.mjs. It does per request what a better-auth application backend would do for a
// trusted server-side caller, nothing more:
//
//   GET /user?loginId=EMAIL                 -> 200 {"user": {...}}
//   GET /token?loginId=EMAIL&provider=P     -> 200 {"accessToken": ..., "accessTokenExpiresAt": ..., "scopes": [...]}
//   GET /search?text=T[&field=email|name][&limit=L] -> 200 {"users": [...], "total": N}
//
// Every request carries `Authorization: Bearer <key>`, compared in constant time with the key
// given by --key or PEER_KEY, as idvault checks its management key. Extra query parameters are
// ignored (the harness's token script also sends withRefreshToken and forceRefresh).
//
//   PEER_KEY=secret node server.mjs --db PATH [--port 0] [--user-via adapter|admin]
//
// Prints exactly `listening on http://127.0.0.1:PORT` on stdout once it accepts connections.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { timingSafeEqual } from "node:crypto";
import { parseArgs } from "node:util";
import { makeAuth, metaPath, openDatabase } from "./auth.mjs";

const { values: args } = parseArgs({
  options: {
    db: { type: "string" },
    port: { type: "string", default: "0" },
    key: { type: "string" },
    "user-via": { type: "string", default: "adapter" },
  },
});
const key = args.key ?? process.env.PEER_KEY;
if (!args.db || !key) {
  console.error("usage: PEER_KEY=secret node server.mjs --db PATH [--port 0] [--user-via adapter|admin]");
  process.exit(2);
}
if (!["adapter", "admin"].includes(args["user-via"])) {
  console.error("--user-via is adapter or admin");
  process.exit(2);
}
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port wants 0..65535, got ${args.port}`);
  process.exit(2);
}

const meta = JSON.parse(readFileSync(metaPath(args.db), "utf8"));
const db = openDatabase(args.db);
const auth = makeAuth(db, { secret: meta.better_auth_secret, encryptTokens: meta.encrypt_oauth_tokens });
const ctx = await auth.$context;

// The admin plugin's endpoints (listUsers) want an admin session, as they would from an admin
// tool: one is opened at start and presented through the bearer plugin on those calls only.
const adminSession = await ctx.internalAdapter.createSession(meta.admin_user_id);
const adminHeaders = new Headers({ authorization: `Bearer ${adminSession.token}` });

const expectedAuthorization = Buffer.from(`Bearer ${key}`);

function authorized(req) {
  const given = Buffer.from(req.headers.authorization ?? "");
  // timingSafeEqual needs equal lengths; the length of the header is not the secret.
  return given.length === expectedAuthorization.length && timingSafeEqual(given, expectedAuthorization);
}

function send(res, status, body) {
  const json = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(json) });
  res.end(json);
}

// The user by login id (= email). `adapter`: better-auth's own lookup by email (the one its
// sign-in uses), no session work. `admin`: the admin plugin's listUsers filtered on the email,
// which also validates the admin session and counts the matches on every call.
async function loadUser(email) {
  if (args["user-via"] === "admin") {
    const found = await auth.api.listUsers({
      query: { filterField: "email", filterOperator: "eq", filterValue: email.toLowerCase(), limit: 1 },
      headers: adminHeaders,
    });
    return found.users[0] ?? null;
  }
  const found = await ctx.internalAdapter.findUserByEmail(email);
  return found?.user ?? null;
}

// getAccessToken (1.7) selects the account by better-auth's own account id, so the app first
// finds the user with its accounts (one joined query), then asks for a valid token: called
// server-side with the userId and no headers, it trusts the caller, re-reads the accounts,
// refreshes only if expired (seeded tokens are not), and decrypts.
async function loadToken(email, provider) {
  const found = await ctx.internalAdapter.findUserByEmail(email, { includeAccounts: true });
  const account = found?.accounts.find((a) => a.providerId === provider);
  if (!account) return null;
  return auth.api.getAccessToken({ body: { accountId: account.id, userId: found.user.id } });
}

async function search(text, field, limit) {
  return auth.api.listUsers({
    query: { searchValue: text, searchField: field, searchOperator: "contains", limit },
    headers: adminHeaders,
  });
}

async function handle(req, res) {
  if (!authorized(req)) return send(res, 401, { error: "unauthorized" });
  if (req.method !== "GET") return send(res, 405, { error: "method not allowed" });
  const url = new URL(req.url, "http://peer");
  const q = url.searchParams;
  switch (url.pathname) {
    case "/user": {
      const loginId = q.get("loginId");
      if (!loginId) return send(res, 400, { error: "loginId is required" });
      const user = await loadUser(loginId);
      return user ? send(res, 200, { user }) : send(res, 404, { error: "user not found" });
    }
    case "/token": {
      const loginId = q.get("loginId");
      const provider = q.get("provider");
      if (!loginId || !provider) return send(res, 400, { error: "loginId and provider are required" });
      const token = await loadToken(loginId, provider);
      return token ? send(res, 200, token) : send(res, 404, { error: "no token for this user and provider" });
    }
    case "/search": {
      const text = q.get("text");
      const field = q.get("field") ?? "email";
      const limit = Number(q.get("limit") ?? "100");
      if (!text) return send(res, 400, { error: "text is required" });
      if (!["email", "name"].includes(field)) return send(res, 400, { error: "field is email or name" });
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return send(res, 400, { error: "limit is 1..1000" });
      const found = await search(text, field, limit);
      return send(res, 200, { users: found.users, total: found.total });
    }
    default:
      return send(res, 404, { error: "no such route" });
  }
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    // better-auth's APIError carries its HTTP status; anything else is this server's fault.
    const status = Number.isInteger(err?.statusCode) ? err.statusCode : 500;
    console.error(`${req.method} ${req.url?.split("?")[0]}: ${err?.message ?? err}`);
    send(res, status, { error: status === 500 ? "internal error" : err.message });
  });
});
// wrk keeps its 64 connections open for the whole run; Node's default 5 s keep-alive would
// close idle ones between the warm-up and the measured run.
server.keepAliveTimeout = 120_000;
server.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    db.close();
    process.exit(0);
  });
}
