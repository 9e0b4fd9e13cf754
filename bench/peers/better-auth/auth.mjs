// The one better-auth configuration shared by seed.mjs and server.mjs, so that the schema the
// seed creates is exactly the one the server reads, and tokens the seed encrypts are the ones
// the server can decrypt.
import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { admin, bearer } from "better-auth/plugins";

// What the seed wrote beside the database (PATH.peer.json): counts, whether tokens are
// encrypted, the better-auth secret they are encrypted under, and the admin session that the
// admin-only list endpoint needs. Bench data only: nothing here protects anything real.
export function metaPath(dbPath) {
  return `${dbPath}.peer.json`;
}

export function openDatabase(dbPath) {
  const db = new Database(dbPath);
  // WAL, as idvault runs SQLite: readers never wait for the writer.
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  return db;
}

export function makeAuth(db, { secret, encryptTokens }) {
  return betterAuth({
    database: db,
    secret,
    baseURL: "http://127.0.0.1",
    // The token read goes through better-auth's own getAccessToken, which refuses an account
    // whose provider is not configured. The credentials are never used: seeded tokens expire
    // in the future, so no refresh (no network call) happens.
    socialProviders: {
      google: { clientId: "bench-client", clientSecret: "bench-client-secret" },
    },
    // idvault seals provider tokens at rest, so the fair comparison encrypts them here too
    // (better-auth: XChaCha20-Poly1305 under a key derived from the secret).
    account: { encryptOAuthTokens: encryptTokens },
    // admin: listUsers (text search with a total). bearer: the admin session is presented as
    // `Authorization: Bearer <session token>` to auth.api calls, as an admin tool would.
    plugins: [admin(), bearer()],
    // No telemetry, no rate limiting: the benchmark drives loopback as fast as it can.
    telemetry: { enabled: false },
    rateLimit: { enabled: false },
    logger: { level: "error" },
  });
}
