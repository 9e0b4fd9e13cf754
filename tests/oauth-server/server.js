// Test OAuth 2.0 / OpenID Connect provider for idvault integration tests.
//
// Built on the real `oidc-provider` package (see package.json for the pinned
// version). Everything except the `/__test/*` control endpoints is served by
// `provider.callback()`; the token endpoint is wrapped so tests can count
// requests and inject failures (hang, 500, garbage, huge body, form-encoded
// answers, missing expires_in, delays, tampered id_tokens), and the
// authorization endpoint is wrapped so tests can see the last authorization
// request and make it answer access_denied.
//
// Usage: node server.js [--port N] [--exit-on-stdin-close]
//   env: PORT, ACCESS_TOKEN_TTL (s, default 3600), REFRESH_TOKEN_TTL
//        (s, default 86400), REDIRECT_URIS (comma-separated, added to both
//        clients), DEBUG=oidc-provider:* for library debug output on stderr.
//
// Stdout carries exactly one line once ready:
//   oauth-server listening on http://127.0.0.1:PORT
// Everything else (oidc-provider warnings and notices included) goes to stderr.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

// oidc-provider prints some notices with console.info (stdout). Keep stdout
// reserved for the single readiness line: route every console output to stderr.
// The library is imported dynamically below so this runs first.
for (const name of ['log', 'info', 'debug']) {
  console[name] = (...args) => console.error(...args);
}

let Provider;
let jose;
try {
  ({ default: Provider } = await import('oidc-provider'));
  // jose is oidc-provider's own JOSE library (installed with it); it re-signs
  // id_tokens for the idtoken_* modes.
  jose = await import('jose');
} catch (err) {
  process.stderr.write(`oauth-server: cannot load oidc-provider/jose (${err.message}); run \`npm ci\` in ${new URL('.', import.meta.url).pathname}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const out = { port: undefined, exitOnStdinClose: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--port') {
      out.port = argv[i + 1];
      i += 1;
    } else if (arg.startsWith('--port=')) {
      out.port = arg.slice('--port='.length);
    } else if (arg === '--exit-on-stdin-close') {
      out.exitOnStdinClose = true;
    } else if (arg === '--help' || arg === '-h') {
      process.stderr.write('usage: node server.js [--port N] [--exit-on-stdin-close]\n');
      process.exit(0);
    } else {
      process.stderr.write(`unknown argument: ${arg}\n`);
      process.exit(2);
    }
  }
  return out;
}

function positiveIntFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`${name} must be a positive integer (seconds), got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return n;
}

const args = parseArgs(process.argv.slice(2));
const portRaw = args.port ?? process.env.PORT ?? '0';
const PORT = Number(portRaw);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  process.stderr.write(`invalid port: ${JSON.stringify(portRaw)}\n`);
  process.exit(2);
}
const HOST = '127.0.0.1';

// Mutable at runtime through POST /__test/config.
const settings = {
  accessTokenTTL: positiveIntFromEnv('ACCESS_TOKEN_TTL', 3600),
  refreshTokenTTL: positiveIntFromEnv('REFRESH_TOKEN_TTL', 24 * 60 * 60),
};
const GRANT_TTL = 30 * 24 * 60 * 60; // must outlive every refresh token
const EXTRA_REDIRECT_URIS = (process.env.REDIRECT_URIS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

const TOKEN_PATH = '/token';
const AUTH_PATH = '/auth';

// ---------------------------------------------------------------- storage
//
// Unbounded in-memory adapter. oidc-provider's bundled MemoryAdapter is an LRU
// capped at 1000 entries, which silently evicts grants/tokens under a busy
// test (leading to spurious invalid_grant); this one only drops expired items.
// Semantics follow the adapter interface documented by oidc-provider
// (upsert/find/findByUid/findByUserCode/consume/destroy/revokeByGrantId).

const store = new Map(); // `${model}:${id}` -> { model, id, payload, expiresAt }

function epochTime() {
  return Math.floor(Date.now() / 1000);
}

function liveEntry(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry;
}

function* liveEntries(model) {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.expiresAt <= now) {
      store.delete(key);
    } else if (model === undefined || entry.model === model) {
      yield entry;
    }
  }
}

setInterval(() => {
  for (const _ of liveEntries()) { /* sweep expired */ }
}, 60_000).unref();

class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    store.set(this.key(id), {
      model: this.model,
      id,
      payload: structuredClone(payload),
      expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity,
    });
  }

  async find(id) {
    const entry = liveEntry(this.key(id));
    return entry ? structuredClone(entry.payload) : undefined;
  }

  async findByUid(uid) {
    for (const entry of liveEntries(this.model)) {
      if (entry.payload.uid === uid) return structuredClone(entry.payload);
    }
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const entry of liveEntries(this.model)) {
      if (entry.payload.userCode === userCode) return structuredClone(entry.payload);
    }
    return undefined;
  }

  async consume(id) {
    const entry = liveEntry(this.key(id));
    if (entry) entry.payload.consumed = epochTime();
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const entry of liveEntries(this.model)) {
      if (entry.payload.grantId === grantId) store.delete(this.key(entry.id));
    }
  }
}

// Removes a grant and every artifact (any model) that references it.
function destroyGrantEverywhere(grantId) {
  let removed = 0;
  for (const [key, entry] of store) {
    if ((entry.model === 'Grant' && entry.id === grantId) || entry.payload.grantId === grantId) {
      store.delete(key);
      if (entry.model !== 'Grant') removed += 1;
    }
  }
  return removed;
}

// ---------------------------------------------------------------- accounts

// Per-account claim overrides set by POST /__test/account: {email?, email_verified?}; an
// email_verified of null leaves the claim out.
const accountOverrides = new Map();

async function findAccount(_ctx, id) {
  if (typeof id !== 'string' || id.length === 0) return undefined;
  return {
    accountId: id,
    async claims() {
      const claims = {
        sub: id,
        email: `${id}@example.com`,
        email_verified: true,
        name: `Test User ${id}`,
      };
      const override = accountOverrides.get(id) || {};
      if (typeof override.email === 'string') claims.email = override.email;
      if (override.email_verified === null) delete claims.email_verified;
      else if (typeof override.email_verified === 'boolean') claims.email_verified = override.email_verified;
      return claims;
    },
  };
}

function setAccount(body) {
  if (typeof body.accountId !== 'string' || body.accountId.length === 0) {
    return [400, { error: 'invalid_request', error_description: 'accountId is required' }];
  }
  if (body.email !== undefined && typeof body.email !== 'string') {
    return [400, { error: 'invalid_request', error_description: 'email must be a string' }];
  }
  if (body.email_verified !== undefined && body.email_verified !== null && typeof body.email_verified !== 'boolean') {
    return [400, { error: 'invalid_request', error_description: 'email_verified must be a boolean or null' }];
  }
  const override = {};
  if (body.email !== undefined) override.email = body.email;
  if (body.email_verified !== undefined) override.email_verified = body.email_verified;
  accountOverrides.set(body.accountId, override);
  return [200, { accountId: body.accountId, ...override }];
}

// ---------------------------------------------------------------- test state

const MAX_LIST = 1000;

function freshStats() {
  return {
    token_requests: 0,
    refresh_requests: 0,
    last_refresh_tokens: [],
    grant_types: {},
    responses_by_status: {},
    refresh_reuse_detected: 0,
    errors: [],
  };
}
let stats = freshStats();

function pushCapped(list, item) {
  list.push(item);
  if (list.length > MAX_LIST) list.splice(0, list.length - MAX_LIST);
}

// Token-endpoint modes: apply to every POST /token.
const TERMINAL_MODES = new Set(['hang', 'error500', 'garbage', 'huge']);
const FILTER_MODES = new Set(['form', 'no_expires_in']);
// id_token modes: apply only to POST /token with grant_type=authorization_code
// and alter the id_token of a successful (200) answer.
const IDTOKEN_MODES = new Set([
  'idtoken_wrong_aud',
  'idtoken_wrong_iss',
  'idtoken_wrong_nonce',
  'idtoken_bad_signature',
  'idtoken_expired',
]);
// Authorization-endpoint modes: apply only to GET /auth and GET /auth/<uid>.
const AUTH_MODES = new Set(['error_redirect']);
const HUGE_DEFAULT_BYTES = 5 * 1024 * 1024;

const WRONG_AUD = 'someone-else';
const WRONG_ISS = 'https://evil.example.com';
const WRONG_NONCE = 'not-the-nonce';
const DENIED_DESCRIPTION = 'denied by test';

function normalMode() {
  return { names: ['normal'], remaining: null, hugeBytes: HUGE_DEFAULT_BYTES };
}

// mode: { names: string[] , remaining: number|null, hugeBytes, hugeChunked }
let mode = normalMode();
let delay = { ms: 0, phase: 'before' };

function parseMode(body) {
  const raw = body?.mode;
  if (typeof raw !== 'string' || raw === '') throw new Error('"mode" must be a non-empty string');
  const names = raw.split('+').map((s) => s.trim());
  for (const name of names) {
    if (name !== 'normal' && !TERMINAL_MODES.has(name) && !FILTER_MODES.has(name)
      && !IDTOKEN_MODES.has(name) && !AUTH_MODES.has(name)) {
      throw new Error(`unknown mode ${JSON.stringify(name)}`);
    }
  }
  if (names.length > 1 && names.some((n) => !FILTER_MODES.has(n))) {
    throw new Error('only "form" and "no_expires_in" can be combined with "+"');
  }
  let remaining = null;
  if (body.times !== undefined && body.times !== null) {
    if (!Number.isInteger(body.times) || body.times <= 0) throw new Error('"times" must be a positive integer');
    remaining = body.times;
  }
  let hugeBytes = HUGE_DEFAULT_BYTES;
  if (body.bytes !== undefined) {
    if (!Number.isInteger(body.bytes) || body.bytes < 128) throw new Error('"bytes" must be an integer >= 128');
    hugeBytes = body.bytes;
  }
  const hugeChunked = body.chunked === true;
  return {
    names: names.includes('normal') ? ['normal'] : names, remaining, hugeBytes, hugeChunked,
  };
}

function modeDescription() {
  return {
    mode: mode.names.join('+'),
    remaining: mode.remaining,
    ...(mode.names.includes('huge') ? { bytes: mode.hugeBytes, chunked: !!mode.hugeChunked } : {}),
  };
}

// Which requests a mode applies to; only those count against `times`.
//   request: { kind: 'token', grantType } or { kind: 'auth' }
function modeApplies(m, request) {
  const name = m.names[0];
  if (AUTH_MODES.has(name)) return request.kind === 'auth';
  if (IDTOKEN_MODES.has(name)) return request.kind === 'token' && request.grantType === 'authorization_code';
  return request.kind === 'token'; // normal, terminal and filter modes: every POST /token
}

// Uses up one application of a `times`-limited mode, if it is still the
// current one.
function consumeMode(m) {
  if (m !== mode || m.remaining === null) return;
  m.remaining -= 1;
  if (m.remaining <= 0) mode = normalMode();
}

// Returns the mode that applies to the current request (and consumes one use
// of a `times`-limited mode), or `normal` if the current mode is not for this
// kind of request.
function takeMode(request) {
  const current = mode;
  if (!modeApplies(current, request)) return normalMode();
  consumeMode(current);
  return current;
}

// Query parameters of the most recent GET /auth (for GET /__test/last_authorize).
let lastAuthorize = null;

function recordAuthorize(searchParams) {
  const params = {};
  for (const [k, v] of searchParams) {
    if (!Object.hasOwn(params, k)) params[k] = v;
    else if (Array.isArray(params[k])) params[k].push(v);
    else params[k] = [params[k], v];
  }
  lastAuthorize = params;
}

const hungResponses = new Set();

// ---------------------------------------------------------------- http helpers

function sendJson(res, status, obj) {
  const body = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': body.length,
    'cache-control': 'no-store',
  });
  res.end(body);
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => {
      if (!failed) {
        failed = true;
        reject(err);
      }
    });
  });
}

function isLoopback(address) {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// Lets oidc-provider (koa) write its response into a buffer; `finish(status,
// headers, body)` then decides what really goes out. Koa only uses
// statusCode/setHeader/write/end on a plain request, but writeHead is covered
// too.
function captureResponse(res, finish) {
  const chunks = [];
  const original = { write: res.write, end: res.end, writeHead: res.writeHead };

  res.writeHead = function writeHead(status, ...rest) {
    res.statusCode = status;
    const headers = rest.find((r) => r && typeof r === 'object');
    if (headers && !Array.isArray(headers)) {
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    }
    return res;
  };
  res.write = function write(chunk, encoding, cb) {
    if (typeof encoding === 'function') { cb = encoding; encoding = undefined; }
    if (chunk !== undefined && chunk !== null) {
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
    }
    if (cb) process.nextTick(cb);
    return true;
  };
  res.end = function end(chunk, encoding, cb) {
    if (typeof chunk === 'function') { cb = chunk; chunk = undefined; }
    if (typeof encoding === 'function') { cb = encoding; encoding = undefined; }
    if (chunk !== undefined && chunk !== null) {
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
    }
    res.write = original.write;
    res.end = original.end;
    res.writeHead = original.writeHead;
    Promise.resolve()
      .then(() => finish(Buffer.concat(chunks)))
      .then((body) => {
        if (res.destroyed) return;
        if (body !== undefined) {
          res.setHeader('content-length', body.length);
          res.end(body, cb);
        } else {
          res.end(cb);
        }
      })
      .catch((err) => {
        process.stderr.write(`oauth-server: response rewrite failed: ${err.stack}\n`);
        if (!res.headersSent) {
          res.statusCode = 500;
          res.removeHeader('content-length');
        }
        res.end();
      });
    return res;
  };
}

function isJsonResponse(res) {
  return /^application\/json\b/i.test(String(res.getHeader('content-type') ?? ''));
}

// ---------------------------------------------------------------- provider

let provider;
let providerCallback;
// The provider's private signing JWK and its imported form (for re-signing
// tampered id_tokens with the real key).
let signingJwk;
let signingKeyPromise;

function buildProvider(issuer) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = {
    ...privateKey.export({ format: 'jwk' }),
    kid: crypto.randomBytes(8).toString('hex'),
    alg: 'RS256',
    use: 'sig',
  };
  signingJwk = signingKey;
  signingKeyPromise = jose.importJWK(signingKey, signingKey.alg);
  signingKeyPromise.catch(() => {}); // reported when used

  const redirectUris = ['http://127.0.0.1/callback', ...EXTRA_REDIRECT_URIS];
  const commonClient = {
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: [...new Set(redirectUris)],
    response_types: ['code'],
  };

  const p = new Provider(issuer, {
    adapter: TestAdapter,
    clients: [
      {
        ...commonClient,
        client_id: 'idvault-test',
        client_secret: 'idvault-test-secret',
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        ...commonClient,
        client_id: 'idvault-post',
        client_secret: 'idvault-post-secret',
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    findAccount,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    // Exact expiry handling (default tolerance is 15 s).
    clockTolerance: 0,
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true, allowedPolicy: async () => true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      userinfo: { enabled: true },
    },
    rotateRefreshToken: true,
    // Default only issues refresh tokens when the grant has offline_access,
    // and the authorization endpoint silently drops offline_access unless
    // prompt=consent is present. Issue one whenever the client may use it.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Default binds tokens without offline_access to the browser session.
    expiresWithSession: async () => false,
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? settings.accessTokenTTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: () => settings.refreshTokenTTL,
      Grant: GRANT_TTL,
      Interaction: 3600,
      Session: 24 * 60 * 60,
      ClientCredentials: 600,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
      PreAuthorizedCode: 600,
    },
  });

  p.on('grant.error', (_ctx, err) => {
    if (err?.error_detail === 'refresh token already used') stats.refresh_reuse_detected += 1;
    pushCapped(stats.errors, {
      error: err?.error ?? String(err?.message ?? err),
      error_description: err?.error_description,
      error_detail: err?.error_detail,
    });
  });
  p.on('server_error', (_ctx, err) => {
    process.stderr.write(`oauth-server: oidc-provider server_error: ${err?.stack ?? err}\n`);
  });

  return p;
}

// ---------------------------------------------------------------- /__test/*

async function mintGrant(body) {
  const accountId = body.accountId ?? body.account_id;
  if (typeof accountId !== 'string' || accountId === '') {
    return [400, { error: 'invalid_request', error_description: '"accountId" (string) is required' }];
  }
  const clientId = body.clientId ?? body.client_id ?? 'idvault-test';
  const scope = body.scope ?? 'openid email offline_access';
  if (typeof scope !== 'string' || scope.trim() === '') {
    return [400, { error: 'invalid_request', error_description: '"scope" must be a non-empty string' }];
  }
  const optionalTtl = (name) => {
    const v = body[name];
    if (v === undefined || v === null) return undefined;
    if (!Number.isInteger(v) || v <= 0) throw new Error(`"${name}" must be a positive integer`);
    return v;
  };
  let accessTtl;
  let refreshTtl;
  try {
    accessTtl = optionalTtl('expires_in');
    refreshTtl = optionalTtl('refresh_expires_in');
  } catch (err) {
    return [400, { error: 'invalid_request', error_description: err.message }];
  }

  const client = await provider.Client.find(clientId);
  if (!client) return [400, { error: 'invalid_client', error_description: `unknown client ${clientId}` }];
  const scopes = [...new Set(scope.split(' ').filter(Boolean))];

  const grant = new provider.Grant({ accountId, clientId });
  grant.addOIDCScope(scopes.join(' '));
  const grantId = await grant.save();

  const authTime = epochTime();
  const at = new provider.AccessToken({
    accountId,
    client,
    grantId,
    gty: 'authorization_code',
    scope: grant.getOIDCScopeFiltered(new Set(scopes)),
    ...(accessTtl ? { expiresIn: accessTtl } : {}),
  });
  const accessToken = await at.save();

  const rt = new provider.RefreshToken({
    accountId,
    authTime,
    client,
    grantId,
    gty: 'authorization_code',
    rotations: 0,
    scope: scopes.join(' '),
    ...(refreshTtl ? { expiresIn: refreshTtl } : {}),
  });
  const refreshToken = await rt.save();

  return [200, {
    access_token: accessToken,
    refresh_token: refreshToken,
    token_type: 'Bearer',
    expires_in: at.expiration,
    refresh_expires_in: rt.expiration,
    scope: at.scope,
    grant_id: grantId,
    account_id: accountId,
    client_id: clientId,
  }];
}

function revoke(body) {
  const grantId = body.grant_id ?? body.grantId;
  const accountId = body.account_id ?? body.accountId;
  if (typeof grantId !== 'string' && typeof accountId !== 'string') {
    return [400, { error: 'invalid_request', error_description: '"grant_id" or "account_id" (string) is required' }];
  }
  const grantIds = new Set();
  if (typeof grantId === 'string') {
    // Tokens can outlive a grant record only in theory; look at both.
    for (const entry of liveEntries()) {
      if ((entry.model === 'Grant' && entry.id === grantId) || entry.payload.grantId === grantId) {
        grantIds.add(grantId);
        break;
      }
    }
  } else {
    for (const entry of liveEntries()) {
      if (entry.payload.accountId === accountId) {
        grantIds.add(entry.model === 'Grant' ? entry.id : entry.payload.grantId);
      }
    }
    grantIds.delete(undefined);
  }
  if (grantIds.size === 0) {
    return [404, { error: 'not_found', error_description: 'no grant matched' }];
  }
  let tokensRemoved = 0;
  for (const id of grantIds) tokensRemoved += destroyGrantEverywhere(id);
  return [200, { revoked: true, grant_ids: [...grantIds], tokens_removed: tokensRemoved }];
}

function setDelay(body) {
  const ms = body?.ms;
  if (!Number.isInteger(ms) || ms < 0) return [400, { error: 'invalid_request', error_description: '"ms" must be an integer >= 0' }];
  const phase = body.phase ?? 'before';
  if (phase !== 'before' && phase !== 'after') {
    return [400, { error: 'invalid_request', error_description: '"phase" must be "before" or "after"' }];
  }
  delay = { ms, phase };
  return [200, { ...delay }];
}

async function addRedirectUris(body) {
  const clientIds = body.client_id ? [body.client_id] : ['idvault-test', 'idvault-post'];
  const uris = body.redirect_uris;
  if (!Array.isArray(uris) || uris.length === 0 || uris.some((u) => typeof u !== 'string' || !URL.canParse(u))) {
    return [400, { error: 'invalid_request', error_description: '"redirect_uris" must be a non-empty array of absolute URLs' }];
  }
  const out = {};
  for (const id of clientIds) {
    const client = await provider.Client.find(id);
    if (!client) return [400, { error: 'invalid_client', error_description: `unknown client ${id}` }];
    for (const uri of uris) {
      if (!client.redirectUris.includes(uri)) client.redirectUris.push(uri);
    }
    out[id] = [...client.redirectUris];
  }
  return [200, { redirect_uris: out }];
}

function setConfig(body) {
  for (const [key, field] of [['access_token_ttl', 'accessTokenTTL'], ['refresh_token_ttl', 'refreshTokenTTL']]) {
    if (body[key] === undefined) continue;
    if (!Number.isInteger(body[key]) || body[key] <= 0) {
      return [400, { error: 'invalid_request', error_description: `"${key}" must be a positive integer` }];
    }
    settings[field] = body[key];
  }
  return [200, currentConfig()];
}

function currentConfig() {
  return {
    issuer: provider.issuer,
    token_endpoint: `${provider.issuer}${TOKEN_PATH}`,
    access_token_ttl: settings.accessTokenTTL,
    refresh_token_ttl: settings.refreshTokenTTL,
    ...modeDescription(),
    delay: { ...delay },
    hung_requests: hungResponses.size,
  };
}

async function handleTest(req, res, pathname) {
  if (!isLoopback(req.socket.remoteAddress)) {
    sendJson(res, 403, { error: 'forbidden', error_description: 'test control endpoints are loopback-only' });
    return;
  }
  let body = {};
  if (req.method === 'POST') {
    const raw = await readBody(req, 1024 * 1024);
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        sendJson(res, 400, { error: 'invalid_request', error_description: 'body must be JSON' });
        return;
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        sendJson(res, 400, { error: 'invalid_request', error_description: 'body must be a JSON object' });
        return;
      }
    }
  }
  const route = `${req.method} ${pathname}`;
  let result;
  switch (route) {
    case 'POST /__test/grant':
      result = await mintGrant(body);
      break;
    case 'POST /__test/account':
      result = setAccount(body);
      break;
    case 'POST /__test/revoke':
      result = revoke(body);
      break;
    case 'GET /__test/stats':
      result = [200, stats];
      break;
    case 'POST /__test/stats/reset':
      stats = freshStats();
      result = [200, stats];
      break;
    case 'GET /__test/mode':
      result = [200, modeDescription()];
      break;
    case 'POST /__test/mode':
      try {
        mode = parseMode(body);
        result = [200, modeDescription()];
      } catch (err) {
        result = [400, { error: 'invalid_request', error_description: err.message }];
      }
      break;
    case 'GET /__test/delay':
      result = [200, { ...delay }];
      break;
    case 'POST /__test/delay':
      result = setDelay(body);
      break;
    case 'GET /__test/last_authorize':
      result = lastAuthorize
        ? [200, lastAuthorize]
        : [404, { error: 'not_found', error_description: 'no GET /auth request seen yet' }];
      break;
    case 'GET /__test/config':
      result = [200, currentConfig()];
      break;
    case 'POST /__test/config':
      result = setConfig(body);
      break;
    case 'POST /__test/redirect_uris':
      result = await addRedirectUris(body);
      break;
    case 'POST /__test/release_hung': {
      const n = hungResponses.size;
      for (const r of hungResponses) r.destroy();
      hungResponses.clear();
      result = [200, { released: n }];
      break;
    }
    default:
      result = [404, { error: 'not_found', error_description: `no test endpoint ${route}` }];
  }
  sendJson(res, result[0], result[1]);
}

// ---------------------------------------------------------------- /token wrapper

// Returns the id_token altered as the idtoken_* mode `name` says. Claim
// changes are re-signed with the provider's own key and original protected
// header (same alg and kid), so they verify against /jwks.
async function tamperIdToken(name, idToken) {
  const parts = idToken.split('.');
  if (parts.length !== 3) throw new Error('id_token is not a compact JWS');
  if (name === 'idtoken_bad_signature') {
    // Flip every bit of one byte in the middle of the signature: the segment
    // stays canonical base64url of the same length but no longer verifies.
    // (Editing the last character could touch only padding bits.)
    const sig = Buffer.from(parts[2], 'base64url');
    sig[sig.length >> 1] ^= 0xff;
    return `${parts[0]}.${parts[1]}.${sig.toString('base64url')}`;
  }
  const header = jose.decodeProtectedHeader(idToken);
  if (header.kid !== signingJwk.kid || header.alg !== signingJwk.alg) {
    throw new Error(`id_token header ${JSON.stringify(header)} does not match the signing key`);
  }
  const payload = jose.decodeJwt(idToken);
  switch (name) {
    case 'idtoken_wrong_aud':
      payload.aud = WRONG_AUD;
      break;
    case 'idtoken_wrong_iss':
      payload.iss = WRONG_ISS;
      break;
    case 'idtoken_wrong_nonce':
      payload.nonce = WRONG_NONCE;
      break;
    case 'idtoken_expired': {
      const now = epochTime();
      payload.exp = now - 3600;
      payload.iat = now - 7200;
      break;
    }
    default:
      throw new Error(`not an id_token mode: ${name}`);
  }
  return new jose.CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(await signingKeyPromise);
}

async function rewriteSuccess(flags, res, body) {
  if (res.statusCode !== 200 || !isJsonResponse(res)) return body;
  let obj;
  try {
    obj = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  const idTokenMode = [...flags].find((n) => IDTOKEN_MODES.has(n));
  if (idTokenMode && typeof obj.id_token === 'string') {
    obj.id_token = await tamperIdToken(idTokenMode, obj.id_token);
  }
  if (flags.has('no_expires_in')) delete obj.expires_in;
  if (flags.has('form')) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(obj)) {
      params.append(k, typeof v === 'string' ? v : JSON.stringify(v));
    }
    res.setHeader('content-type', 'application/x-www-form-urlencoded; charset=utf-8');
    return Buffer.from(params.toString());
  }
  return Buffer.from(JSON.stringify(obj));
}

function hugeBody(bytes) {
  const head = '{"access_token":"huge-response-token","token_type":"Bearer","expires_in":3600,"padding":"';
  const tail = '"}';
  const pad = Math.max(0, bytes - head.length - tail.length);
  return Buffer.from(head + 'x'.repeat(pad) + tail);
}

async function handleToken(req, res) {
  const raw = await readBody(req, 1024 * 1024);

  stats.token_requests += 1;
  let grantType;
  if (/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) {
    const params = new URLSearchParams(raw.toString('utf8'));
    grantType = params.get('grant_type') ?? undefined;
    if (grantType === 'refresh_token') {
      stats.refresh_requests += 1;
      pushCapped(stats.last_refresh_tokens, params.get('refresh_token'));
    }
  }
  const gtKey = grantType ?? '(none)';
  stats.grant_types[gtKey] = (stats.grant_types[gtKey] ?? 0) + 1;
  res.on('finish', () => {
    const k = String(res.statusCode);
    stats.responses_by_status[k] = (stats.responses_by_status[k] ?? 0) + 1;
  });

  const active = takeMode({ kind: 'token', grantType });
  const { ms, phase } = delay;
  if (ms > 0 && phase === 'before') await sleep(ms);

  const names = new Set(active.names);
  if (names.has('hang')) {
    hungResponses.add(res);
    res.on('close', () => hungResponses.delete(res));
    return; // never answer; the socket stays open until the client gives up
  }
  if (names.has('error500')) {
    if (ms > 0 && phase === 'after') await sleep(ms);
    sendJson(res, 500, { error: 'server_error', error_description: 'test-induced 500 (mode error500)' });
    return;
  }
  if (names.has('garbage')) {
    if (ms > 0 && phase === 'after') await sleep(ms);
    const body = Buffer.from('<html><body>502 Bad Gateway</body></html> this is not JSON {{{');
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
    return;
  }
  if (names.has('huge')) {
    if (ms > 0 && phase === 'after') await sleep(ms);
    const body = hugeBody(active.hugeBytes);
    if (!active.hugeChunked) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
      return;
    }
    // No content-length: the client only learns the size while reading.
    res.writeHead(200, { 'content-type': 'application/json' });
    for (let off = 0; off < body.length && !res.destroyed; off += 64 * 1024) {
      if (!res.write(body.subarray(off, off + 64 * 1024))) {
        await new Promise((resolve) => {
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
    }
    if (!res.destroyed) res.end();
    return;
  }

  const rewrite = names.has('form') || names.has('no_expires_in')
    || active.names.some((n) => IDTOKEN_MODES.has(n));
  if (rewrite || (ms > 0 && phase === 'after')) {
    captureResponse(res, async (body) => {
      const out = rewrite ? await rewriteSuccess(names, res, body) : body;
      if (ms > 0 && phase === 'after') await sleep(ms);
      return out;
    });
  }

  // The body has been consumed; oidc-provider's body parser falls back to
  // req.body when the stream is no longer readable.
  req.body = raw;
  providerCallback(req, res);
}

// ---------------------------------------------------------------- /auth wrapper
//
// error_redirect: the end-user "denies" the request. oidc-provider still
// validates GET /auth first (client, redirect_uri, parameters), so invalid
// requests get its usual error answer; only an accepted request (one it would
// send to the login/consent interaction, or straight back with a code) is
// answered 303 to redirect_uri with error=access_denied instead.

function deniedRedirect(params) {
  const target = new URL(params.get('redirect_uri'));
  target.searchParams.append('error', 'access_denied');
  target.searchParams.append('error_description', DENIED_DESCRIPTION);
  if (params.has('state')) target.searchParams.append('state', params.get('state'));
  target.searchParams.append('iss', provider.issuer);
  return target.href;
}

function handleAuthorize(req, res, url) {
  recordAuthorize(url.searchParams);
  const active = mode;
  if (modeApplies(active, { kind: 'auth' })) {
    captureResponse(res, async (body) => {
      const location = res.getHeader('location');
      if (![302, 303].includes(res.statusCode) || typeof location !== 'string') return body;
      const target = new URL(location, provider.issuer);
      const interaction = target.origin === new URL(provider.issuer).origin
        && /^\/interaction\/[^/]+$/.exec(target.pathname);
      const codeIssued = target.searchParams.has('code') && !target.searchParams.has('error');
      if (!interaction && !codeIssued) return body; // an error answer: leave it
      consumeMode(active);
      if (interaction) {
        // Drop the interaction it just created, and its cookies.
        const uid = decodeURIComponent(target.pathname.slice('/interaction/'.length));
        await (await provider.Interaction.find(uid))?.destroy();
        const cookies = [res.getHeader('set-cookie') ?? []].flat()
          .filter((c) => !/^\s*_interaction/.test(String(c)));
        if (cookies.length) res.setHeader('set-cookie', cookies); else res.removeHeader('set-cookie');
      }
      const href = deniedRedirect(url.searchParams);
      res.statusCode = 303;
      res.setHeader('location', href);
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      return Buffer.from(`Redirecting to ${href}.`);
    });
  }
  providerCallback(req, res);
}

// The continuation after the interaction (GET /auth/<uid>): record the denial
// as the interaction's result, the way a login/consent page would, and let
// oidc-provider answer it (303 to redirect_uri with error=access_denied,
// error_description, state and iss).
async function handleResume(req, res, uid) {
  const active = mode;
  if (modeApplies(active, { kind: 'auth' })) {
    const interaction = await provider.Interaction.find(uid);
    if (interaction) {
      interaction.result = { error: 'access_denied', error_description: DENIED_DESCRIPTION };
      await interaction.save(Math.max(1, interaction.exp - epochTime()));
      consumeMode(active);
    }
  }
  providerCallback(req, res);
}

// ---------------------------------------------------------------- server

async function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  const { pathname } = url;
  if (pathname === '/__test' || pathname.startsWith('/__test/')) {
    await handleTest(req, res, pathname);
    return;
  }
  if (req.method === 'POST' && pathname === TOKEN_PATH) {
    await handleToken(req, res);
    return;
  }
  if (req.method === 'GET' && pathname === AUTH_PATH) {
    handleAuthorize(req, res, url);
    return;
  }
  const resume = req.method === 'GET' && new RegExp(`^${AUTH_PATH}/([^/]+)$`).exec(pathname);
  if (resume) {
    let uid;
    try {
      uid = decodeURIComponent(resume[1]);
    } catch {
      uid = undefined; // malformed: oidc-provider answers it
    }
    if (uid !== undefined) {
      await handleResume(req, res, uid);
      return;
    }
  }
  providerCallback(req, res);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`oauth-server: ${req.method} ${req.url} failed: ${err.stack ?? err}\n`);
    if (!res.headersSent && !res.destroyed) {
      sendJson(res, err.status ?? 500, { error: 'server_error', error_description: String(err.message ?? err) });
    } else {
      res.destroy();
    }
  });
});
server.keepAliveTimeout = 5_000;

server.on('error', (err) => {
  process.stderr.write(`oauth-server: ${err.stack ?? err}\n`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  const issuer = `http://${HOST}:${port}`;
  provider = buildProvider(issuer);
  providerCallback = provider.callback();
  process.stdout.write(`oauth-server listening on ${issuer}\n`);
});

function shutdown() {
  for (const r of hungResponses) r.destroy();
  hungResponses.clear();
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (args.exitOnStdinClose) {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.resume();
}
