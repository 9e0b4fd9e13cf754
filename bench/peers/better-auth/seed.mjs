// Seeds a better-auth SQLite database with the same users and provider tokens as
// `idvault-bench seed`: user i has email `user{i}@example.com` and name `Bench User {i}`; users
// 0..M-1 have a `google` account (accountId `g{i}`) holding access token `bench-access-{i}` and
// refresh token `bench-refresh-{i}`, encrypted at rest by better-auth's own function.
//
//   node seed.mjs --db PATH --users N [--token-users M] [--plain-tokens] [--via-api]
//
// Default path: better-auth's own migration creates the schema, then prepared inserts in one
// transaction fill it (the product has no bulk import; its per-user API is timed by --via-api).
// --via-api: every user and account goes through better-auth's internal adapter (createUser,
// linkAccount: what its admin createUser and OAuth sign-in call), to extrapolate that cost.
// Writes PATH.peer.json for server.mjs. Refuses an existing PATH (a seed starts empty).
import { existsSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { getMigrations } from "better-auth/db/migration";
import { setTokenUtil } from "better-auth/oauth2";
import { makeAuth, metaPath, openDatabase } from "./auth.mjs";

const { values: args } = parseArgs({
  options: {
    db: { type: "string" },
    users: { type: "string" },
    "token-users": { type: "string" },
    "plain-tokens": { type: "boolean", default: false },
    "via-api": { type: "boolean", default: false },
  },
});
if (!args.db || !args.users) {
  console.error("usage: node seed.mjs --db PATH --users N [--token-users M] [--plain-tokens] [--via-api]");
  process.exit(2);
}
const users = parseCount(args.users, "--users");
const tokenUsers = Math.min(users, args["token-users"] === undefined ? users : parseCount(args["token-users"], "--token-users"));
const encryptTokens = !args["plain-tokens"];
if (existsSync(args.db)) {
  console.error(`${args.db} exists; a seed starts from an empty database`);
  process.exit(2);
}

function parseCount(text, flag) {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`${flag} wants a whole number, got ${text}`);
    process.exit(2);
  }
  return n;
}

// The secret tokens are encrypted under; server.mjs reads it back from PATH.peer.json.
const secret = randomBytes(32).toString("hex");
const db = openDatabase(args.db);
const auth = makeAuth(db, { secret, encryptTokens });
const ctx = await auth.$context;

const started = performance.now();
const migrations = await getMigrations(auth.options);
await migrations.runMigrations();
const schemaSeconds = (performance.now() - started) / 1000;

// Far in the future, so that getAccessToken never tries a refresh (a call to Google) during a
// benchmark run, however long after the seed it happens.
const expiresAt = new Date(Date.now() + 365 * 24 * 3600 * 1000);
// The admin that text search (the admin plugin's listUsers) needs a session for. Its email is
// outside example.com, so a search for `example.com` counts exactly the N bench users.
const ADMIN_EMAIL = "admin@bench.invalid";

const fillStarted = performance.now();
if (args["via-api"]) {
  await seedThroughApi();
} else {
  await seedDirect();
}
const fillSeconds = (performance.now() - fillStarted) / 1000;
const admin = await ctx.internalAdapter.createUser({ email: ADMIN_EMAIL, name: "Bench Admin", emailVerified: true, role: "admin" });
db.pragma("wal_checkpoint(TRUNCATE)");
db.close();

writeFileSync(
  metaPath(args.db),
  JSON.stringify(
    {
      users,
      token_users: tokenUsers,
      provider: "google",
      encrypt_oauth_tokens: encryptTokens,
      better_auth_secret: secret,
      admin_user_id: admin.id,
      seeded_via: args["via-api"] ? "better-auth internal adapter (createUser, linkAccount)" : "direct prepared inserts",
      schema_seconds: schemaSeconds,
      fill_seconds: fillSeconds,
    },
    null,
    2,
  ) + "\n",
);
console.log(
  `seeded ${users} users, ${tokenUsers} google accounts (tokens ${encryptTokens ? "encrypted" : "plain"}) ` +
    `in ${fillSeconds.toFixed(1)} s (${Math.round(users / Math.max(fillSeconds, 1e-9))} users/s); schema ${schemaSeconds.toFixed(2)} s`,
);

// Rows exactly as better-auth's kysely adapter writes them on SQLite (checked against a row it
// wrote itself): dates as ISO text, booleans as 0/1, role "user" and banned 0 from the admin
// plugin's defaults. Tokens are encrypted by better-auth's own setTokenUtil.
async function seedDirect() {
  const insertUser = db.prepare(
    `INSERT INTO "user" (id, name, email, emailVerified, image, createdAt, updatedAt, role, banned)
     VALUES (?, ?, ?, 1, NULL, ?, ?, 'user', 0)`,
  );
  const insertAccount = db.prepare(
    `INSERT INTO account (id, accountId, providerId, userId, accessToken, refreshToken,
       accessTokenExpiresAt, scope, createdAt, updatedAt)
     VALUES (?, ?, 'google', ?, ?, ?, ?, 'openid,email', ?, ?)`,
  );
  const now = new Date().toISOString();
  const expires = expiresAt.toISOString();
  // Encryption is async (WebCrypto digest of the secret), inserts are synchronous: encrypt a
  // chunk, then insert it, all inside one transaction opened by hand across the awaits.
  const CHUNK = 10_000;
  db.exec("BEGIN");
  for (let start = 0; start < users; start += CHUNK) {
    const end = Math.min(users, start + CHUNK);
    const tokens = await Promise.all(
      range(start, Math.min(end, tokenUsers)).map(async (i) => [
        await setTokenUtil(`bench-access-${i}`, ctx),
        await setTokenUtil(`bench-refresh-${i}`, ctx),
      ]),
    );
    for (let i = start; i < end; i++) {
      insertUser.run(`Ubench${i}`, `Bench User ${i}`, `user${i}@example.com`, now, now);
      if (i < tokenUsers) {
        const [access, refresh] = tokens[i - start];
        insertAccount.run(`Abench${i}`, `g${i}`, `Ubench${i}`, access, refresh, expires, now, now);
      }
    }
    progress(end);
  }
  db.exec("COMMIT");
}

// One user (and account) at a time through better-auth's own adapter, as its admin createUser
// and its OAuth callback store them: each is its own small transaction.
async function seedThroughApi() {
  for (let i = 0; i < users; i++) {
    const user = await ctx.internalAdapter.createUser({
      email: `user${i}@example.com`,
      name: `Bench User ${i}`,
      emailVerified: true,
    });
    if (i < tokenUsers) {
      await ctx.internalAdapter.linkAccount({
        userId: user.id,
        providerId: "google",
        accountId: `g${i}`,
        accessToken: await setTokenUtil(`bench-access-${i}`, ctx),
        refreshToken: await setTokenUtil(`bench-refresh-${i}`, ctx),
        accessTokenExpiresAt: expiresAt,
        scope: "openid,email",
      });
    }
    if ((i + 1) % 10_000 === 0) progress(i + 1);
  }
}

function range(start, end) {
  const out = [];
  for (let i = start; i < end; i++) out.push(i);
  return out;
}

function progress(done) {
  if (done % 100_000 === 0 || done === users) {
    const s = (performance.now() - fillStarted) / 1000;
    console.error(`  ${done} users, ${s.toFixed(1)} s`);
  }
}
