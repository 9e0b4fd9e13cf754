// Self-test for the test OAuth server: starts server.js as a child process,
// drives the real oidc-provider endpoints and the /__test/* controls, asserts.
// Usage: node tests/oauth-server/selftest.js   (exit code 0 = all passed)

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
// oidc-provider's own JOSE library, installed with it (verifies id_tokens).
import * as jose from 'jose';

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(here, 'server.js');
const CLIENT = { id: 'idvault-test', secret: 'idvault-test-secret', auth: 'basic' };
const POST_CLIENT = { id: 'idvault-post', secret: 'idvault-post-secret', auth: 'post' };
const BASIC = `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`;

let passed = 0;
let failed = 0;
const children = new Set();
const stderrSources = [];

function check(name, cond, detail) {
  if (cond) {
    passed += 1;
    console.log(`ok - ${name}`);
  } else {
    failed += 1;
    console.log(`not ok - ${name}${detail === undefined ? '' : ` :: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
  }
  return cond;
}

function startServer({ args = ['--port', '0'], env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let resolved = false;
    // Generous: on a 2-core machine busy with a build, loading oidc-provider can take long.
    const timer = setTimeout(() => {
      if (!resolved) reject(new Error(`server did not start in time; stderr:\n${stderr}`));
    }, 120_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!resolved && stdout.includes('\n')) {
        resolved = true;
        clearTimeout(timer);
        const line = stdout.split('\n')[0];
        const m = /^oauth-server listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
        if (!m) {
          reject(new Error(`unexpected first stdout line: ${JSON.stringify(line)}`));
          return;
        }
        resolve({
          child,
          base: m[1],
          port: Number(m[2]),
          stdout: () => stdout,
          stderr: () => stderr,
          stop: () => new Promise((res) => {
            if (child.exitCode !== null) { res(child.exitCode); return; }
            child.once('exit', (code) => { children.delete(child); res(code); });
            child.kill('SIGTERM');
          }),
        });
      }
    });
    child.stderr.on('data', (d) => { stderr += d; });
    stderrSources.push(() => stderr);
    child.on('exit', (code) => {
      children.delete(child);
      if (!resolved) {
        clearTimeout(timer);
        reject(new Error(`server exited early (${code}); stderr:\n${stderr}`));
      }
    });
  });
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function makeApi(base) {
  async function control(method, p, body) {
    const res = await fetch(`${base}${p}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, json, text };
  }

  async function token(params, { auth = 'basic', signal, headers = {} } = {}) {
    const form = new URLSearchParams(params);
    const h = { 'content-type': 'application/x-www-form-urlencoded', ...headers };
    if (auth === 'basic') h.authorization = BASIC;
    if (auth === 'post') {
      form.set('client_id', POST_CLIENT.id);
      form.set('client_secret', POST_CLIENT.secret);
    }
    const started = Date.now();
    const res = await fetch(`${base}/token`, { method: 'POST', headers: h, body: form.toString(), signal });
    const buf = Buffer.from(await res.arrayBuffer());
    const text = buf.toString('utf8');
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return {
      status: res.status,
      contentType: res.headers.get('content-type') ?? '',
      bytes: buf.length,
      text,
      json,
      elapsed: Date.now() - started,
    };
  }

  const refresh = (rt, opts) => token({ grant_type: 'refresh_token', refresh_token: rt }, opts);
  const grant = async (body) => {
    const r = await control('POST', '/__test/grant', body);
    if (r.status !== 200) throw new Error(`/__test/grant failed: ${r.status} ${r.text}`);
    return r.json;
  };
  const stats = async () => (await control('GET', '/__test/stats')).json;
  const resetStats = () => control('POST', '/__test/stats/reset', {});
  const setMode = (mode, extra = {}) => control('POST', '/__test/mode', { mode, ...extra });
  const setDelay = (ms, phase) => control('POST', '/__test/delay', phase ? { ms, phase } : { ms });

  return { control, token, refresh, grant, stats, resetStats, setMode, setDelay };
}

// Minimal cookie-jar browser for the devInteractions login/consent forms.
function makeBrowser() {
  const jar = new Map();
  async function go(url, { method = 'GET', form } = {}) {
    const headers = {};
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, {
      method, headers, redirect: 'manual', body: form ? new URLSearchParams(form).toString() : undefined,
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const idx = pair.indexOf('=');
      const name = pair.slice(0, idx).trim();
      const value = pair.slice(idx + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]) < new Date());
      if (expired || value === '') jar.delete(name); else jar.set(name, value);
    }
    const text = await res.text();
    const location = res.headers.get('location');
    return { status: res.status, location: location ? new URL(location, url).href : null, text };
  }
  return { go };
}

function authorizeQuery({ redirectUri, scope, prompt, nonce, client = CLIENT }) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const state = crypto.randomBytes(8).toString('hex');
  const q = new URLSearchParams({
    client_id: client.id,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...(prompt ? { prompt } : {}),
    ...(nonce ? { nonce } : {}),
  });
  return { q, verifier, state };
}

// Follows login/consent interactions until the browser is sent to a URL for
// which `stop(url)` is true (default: the redirect_uri).
async function followInteractions(base, browser, r, accountId, stop) {
  const steps = [];
  for (let i = 0; i < 10 && r.location && !stop(r.location); i += 1) {
    const loc = r.location;
    steps.push(loc.replace(base, ''));
    const page = await browser.go(loc);
    if (page.status === 200 && /name="prompt" value="login"/.test(page.text)) {
      r = await browser.go(loc, { method: 'POST', form: { prompt: 'login', login: accountId, password: 'anything' } });
    } else if (page.status === 200 && /name="prompt" value="consent"/.test(page.text)) {
      r = await browser.go(loc, { method: 'POST', form: { prompt: 'consent' } });
    } else {
      r = page;
    }
  }
  return { r, steps };
}

async function authCodeFlow(base, api, {
  accountId, redirectUri, scope, prompt, nonce, client = CLIENT,
}) {
  const browser = makeBrowser();
  const { q, verifier, state } = authorizeQuery({ redirectUri, scope, prompt, nonce, client });
  const first = await browser.go(`${base}/auth?${q}`);
  const { r, steps } = await followInteractions(base, browser, first, accountId, (l) => l.startsWith(redirectUri));
  if (!r.location || !r.location.startsWith(redirectUri)) {
    throw new Error(`auth flow did not reach redirect_uri; last status ${r.status}, steps ${JSON.stringify(steps)}, body ${r.text.slice(0, 300)}`);
  }
  const cb = new URL(r.location);
  if (cb.searchParams.get('state') !== state) throw new Error('state mismatch');
  const code = cb.searchParams.get('code');
  if (!code) throw new Error(`no code in callback: ${r.location}`);
  const tok = await api.token({
    grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier,
  }, { auth: client.auth });
  return { tok, callback: cb, steps, state, nonce };
}

async function main() {
  // ------------------------------------------------------------------ server A
  const srv = await startServer();
  const { base } = srv;
  const api = makeApi(base);
  console.log(`# server A at ${base}`);

  // discovery
  {
    const res = await fetch(`${base}/.well-known/openid-configuration`);
    const d = await res.json();
    check('discovery: 200', res.status === 200, res.status);
    check('discovery: issuer', d.issuer === base, d.issuer);
    check('discovery: token_endpoint', d.token_endpoint === `${base}/token`, d.token_endpoint);
    check('discovery: authorization_endpoint', d.authorization_endpoint === `${base}/auth`, d.authorization_endpoint);
    check('discovery: userinfo_endpoint', d.userinfo_endpoint === `${base}/me`, d.userinfo_endpoint);
    check('discovery: jwks_uri', d.jwks_uri === `${base}/jwks`, d.jwks_uri);
    check('discovery: revocation_endpoint', d.revocation_endpoint === `${base}/token/revocation`, d.revocation_endpoint);
    check('discovery: scopes', ['openid', 'email', 'profile', 'offline_access'].every((s) => d.scopes_supported.includes(s)), d.scopes_supported);
    check('discovery: auth methods', ['client_secret_basic', 'client_secret_post'].every((m) => d.token_endpoint_auth_methods_supported.includes(m)), d.token_endpoint_auth_methods_supported);
    const jwks = await (await fetch(d.jwks_uri)).json();
    check('jwks: one RS256 key, public only', jwks.keys.length === 1 && jwks.keys[0].kty === 'RSA' && !('d' in jwks.keys[0]), jwks);
  }

  // mint + rotation + reuse detection
  await api.resetStats();
  const g1 = await api.grant({ accountId: 'alice' });
  check('grant: fields', ['access_token', 'refresh_token', 'expires_in', 'scope', 'grant_id', 'account_id'].every((k) => g1[k] !== undefined), g1);
  check('grant: defaults', g1.account_id === 'alice' && g1.scope === 'openid email offline_access' && g1.expires_in === 3600, g1);
  {
    const ui = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${g1.access_token}` } });
    const claims = await ui.json();
    check('userinfo with minted access token', ui.status === 200 && claims.sub === 'alice' && claims.email === 'alice@example.com' && claims.email_verified === true, claims);
  }
  const r1 = await api.refresh(g1.refresh_token);
  check('refresh: 200', r1.status === 200, r1.text);
  check('refresh: new access_token', r1.json?.access_token && r1.json.access_token !== g1.access_token, r1.json);
  check('refresh: rotated refresh_token', r1.json?.refresh_token && r1.json.refresh_token !== g1.refresh_token, r1.json);
  check('refresh: expires_in/token_type/scope', r1.json?.expires_in === 3600 && r1.json.token_type === 'Bearer' && r1.json.scope === 'openid email offline_access', r1.json);
  check('refresh: json content-type', /^application\/json/.test(r1.contentType), r1.contentType);
  const r2 = await api.refresh(r1.json.refresh_token);
  check('refresh of rotated token: 200 + another new refresh_token', r2.status === 200 && r2.json.refresh_token !== r1.json.refresh_token, r2.text);
  const reuse = await api.refresh(g1.refresh_token);
  check('reuse of old refresh token: invalid_grant', reuse.status === 400 && reuse.json?.error === 'invalid_grant', reuse.text);
  const afterReuse = await api.refresh(r2.json.refresh_token);
  check('reuse detection revoked the whole grant (latest refresh token dead too)', afterReuse.status === 400 && afterReuse.json?.error === 'invalid_grant', afterReuse.text);
  {
    const ui = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${r2.json.access_token}` } });
    check('reuse detection also revoked access tokens', ui.status === 401, ui.status);
  }
  {
    const s = await api.stats();
    check('stats: exact counts', s.token_requests === 4 && s.refresh_requests === 4, s);
    check('stats: last_refresh_tokens in order', JSON.stringify(s.last_refresh_tokens) === JSON.stringify([g1.refresh_token, r1.json.refresh_token, g1.refresh_token, r2.json.refresh_token]), s.last_refresh_tokens);
    check('stats: responses_by_status', s.responses_by_status['200'] === 2 && s.responses_by_status['400'] === 2, s.responses_by_status);
    check('stats: refresh_reuse_detected', s.refresh_reuse_detected === 1, s);
    check('stats: error details', s.errors.length === 2 && s.errors[0].error_detail === 'refresh token already used' && s.errors[1].error_detail === 'refresh token not found', s.errors);
  }
  await api.resetStats();
  {
    const s = await api.stats();
    check('stats reset', s.token_requests === 0 && s.refresh_requests === 0 && s.last_refresh_tokens.length === 0, s);
  }

  // client checks
  {
    const g = await api.grant({ accountId: 'bob', clientId: 'idvault-post', scope: 'openid profile offline_access' });
    check('grant for idvault-post', g.client_id === 'idvault-post' && g.scope === 'openid profile offline_access', g);
    const r = await api.refresh(g.refresh_token, { auth: 'post' });
    check('refresh with client_secret_post', r.status === 200 && r.json.refresh_token !== g.refresh_token, r.text);
    const wrongMethod = await api.refresh(r.json.refresh_token, { auth: 'basic' });
    check('idvault-test cannot use idvault-post token (invalid_grant)', wrongMethod.status === 400 && wrongMethod.json?.error === 'invalid_grant', wrongMethod.text);
    const g2 = await api.grant({ accountId: 'bob2' });
    const badSecret = await api.token({ grant_type: 'refresh_token', refresh_token: g2.refresh_token }, {
      auth: 'none', headers: { authorization: `Basic ${Buffer.from('idvault-test:wrong').toString('base64')}` },
    });
    check('wrong client secret: 401 invalid_client', badSecret.status === 401 && badSecret.json?.error === 'invalid_client', badSecret.text);
    const ok = await api.refresh(g2.refresh_token);
    check('failed client auth did not consume the refresh token', ok.status === 200, ok.text);
  }

  // revoke by grant and by account
  {
    const g = await api.grant({ accountId: 'carol' });
    const rv = await api.control('POST', '/__test/revoke', { grant_id: g.grant_id });
    check('revoke by grant_id', rv.status === 200 && rv.json.grant_ids[0] === g.grant_id && rv.json.tokens_removed === 2, rv.json);
    const r = await api.refresh(g.refresh_token);
    check('refresh after revoke: invalid_grant', r.status === 400 && r.json?.error === 'invalid_grant', r.text);
    const ui = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${g.access_token}` } });
    check('access token dead after revoke', ui.status === 401, ui.status);
    const again = await api.control('POST', '/__test/revoke', { grant_id: g.grant_id });
    check('revoke unknown grant: 404', again.status === 404, again.json);

    const d1 = await api.grant({ accountId: 'dave' });
    const d2 = await api.grant({ accountId: 'dave', scope: 'openid offline_access' });
    const e1 = await api.grant({ accountId: 'erin' });
    const rd1 = await api.refresh(d1.refresh_token); // rotated token must go too
    const ra = await api.control('POST', '/__test/revoke', { account_id: 'dave' });
    check('revoke by account_id: both grants', ra.status === 200 && ra.json.grant_ids.length === 2 && ra.json.grant_ids.includes(d1.grant_id) && ra.json.grant_ids.includes(d2.grant_id), ra.json);
    const x1 = await api.refresh(rd1.json.refresh_token);
    const x2 = await api.refresh(d2.refresh_token);
    check('account revoke: all of the account\'s refresh tokens invalid_grant', x1.json?.error === 'invalid_grant' && x2.json?.error === 'invalid_grant', [x1.text, x2.text]);
    const y = await api.refresh(e1.refresh_token);
    check('account revoke: other accounts untouched', y.status === 200, y.text);
    const bad = await api.control('POST', '/__test/revoke', {});
    check('revoke without ids: 400', bad.status === 400, bad.json);
  }

  // modes
  await api.resetStats();
  {
    const g = await api.grant({ accountId: 'modes' });
    let rt = g.refresh_token;

    let m = await api.setMode('error500');
    check('mode error500 set', m.status === 200 && m.json.mode === 'error500', m.json);
    let r = await api.refresh(rt);
    check('error500: 500 with JSON error', r.status === 500 && r.json?.error === 'server_error', r.text);

    await api.setMode('garbage');
    r = await api.refresh(rt);
    let parsed = true;
    try { JSON.parse(r.text); } catch { parsed = false; }
    check('garbage: 200 and body is not JSON', r.status === 200 && !parsed && r.bytes > 0, r.text);

    await api.setMode('huge');
    r = await api.refresh(rt);
    check('huge: 200 with 5 MiB body', r.status === 200 && r.bytes === 5 * 1024 * 1024, r.bytes);

    await api.setMode('huge', { chunked: true, bytes: 1024 * 1024 });
    r = await api.refresh(rt);
    check('huge chunked: 200 with 1 MiB body', r.status === 200 && r.bytes === 1024 * 1024, r.bytes);

    await api.setMode('hang');
    const hangStart = Date.now();
    const hung = api.refresh(rt, { signal: AbortSignal.timeout(1200) }).then(
      () => 'answered',
      (err) => err.name,
    );
    await new Promise((res) => { setTimeout(res, 400); });
    const cfg = await api.control('GET', '/__test/config');
    check('hang: request held open server-side', cfg.json.hung_requests === 1, cfg.json);
    const outcome = await hung;
    check('hang: no answer before client timeout', outcome === 'TimeoutError' && Date.now() - hangStart >= 1150, [outcome, Date.now() - hangStart]);
    await new Promise((res) => { setTimeout(res, 100); });
    const cfg2 = await api.control('GET', '/__test/config');
    check('hang: forgotten once the client disconnects', cfg2.json.hung_requests === 0, cfg2.json);
    const hung2 = api.refresh(rt).then(() => 'answered', (err) => err.name);
    await new Promise((res) => { setTimeout(res, 300); });
    const rel = await api.control('POST', '/__test/release_hung', {});
    check('release_hung: drops held connections', rel.json.released === 1 && (await hung2) === 'TypeError', rel.json);

    await api.setMode('normal');
    r = await api.refresh(rt);
    check('normal again: the refresh token was not consumed by the failure modes', r.status === 200, r.text);
    rt = r.json.refresh_token;

    await api.setMode('form');
    r = await api.refresh(rt);
    const formBody = new URLSearchParams(r.text);
    check('form: 200 application/x-www-form-urlencoded', r.status === 200 && /^application\/x-www-form-urlencoded/.test(r.contentType), r.contentType);
    check('form: body carries tokens', !!formBody.get('access_token') && !!formBody.get('refresh_token') && formBody.get('token_type') === 'Bearer' && formBody.get('expires_in') === '3600', r.text.slice(0, 200));
    rt = formBody.get('refresh_token');
    const formErr = await api.refresh('not-a-token');
    check('form: error responses stay JSON 400', formErr.status === 400 && formErr.json?.error === 'invalid_grant', formErr.text);

    await api.setMode('no_expires_in');
    r = await api.refresh(rt);
    check('no_expires_in: 200 JSON without expires_in', r.status === 200 && r.json && !('expires_in' in r.json) && !!r.json.refresh_token, r.text);
    rt = r.json.refresh_token;

    await api.setMode('form+no_expires_in');
    r = await api.refresh(rt);
    const fb = new URLSearchParams(r.text);
    check('form+no_expires_in: form body without expires_in', r.status === 200 && !!fb.get('refresh_token') && !fb.has('expires_in'), r.text.slice(0, 200));
    rt = fb.get('refresh_token');

    m = await api.setMode('error500', { times: 1 });
    r = await api.refresh(rt);
    const r2b = await api.refresh(rt);
    check('times=1: one 500 then back to normal', r.status === 500 && r2b.status === 200, [r.status, r2b.status]);
    rt = r2b.json.refresh_token;
    check('mode reverted to normal', (await api.control('GET', '/__test/mode')).json.mode === 'normal');

    const badMode = await api.setMode('bogus');
    check('unknown mode: 400', badMode.status === 400, badMode.json);

    // delay
    await api.setDelay(1000);
    r = await api.refresh(rt);
    check('delay 1000ms (before): response delayed, still valid', r.status === 200 && r.elapsed >= 990, r.elapsed);
    rt = r.json.refresh_token;
    await api.setDelay(1000, 'after');
    r = await api.refresh(rt);
    check('delay 1000ms (after): response delayed, still valid', r.status === 200 && r.elapsed >= 990, r.elapsed);
    rt = r.json.refresh_token;
    await api.setDelay(0);
    r = await api.refresh(rt);
    check('delay 0: off', r.status === 200 && r.elapsed < 800, r.elapsed);

    const s = await api.stats();
    // error500, garbage, huge, huge-chunked, hang, hang(released), normal, form, form-error,
    // no_expires_in, form+no_expires_in, times(500), times(200), delay-before, delay-after,
    // delay-0 = 16, all refresh grants
    check('stats: modes counted exactly', s.token_requests === 16 && s.refresh_requests === 16 && s.grant_types.refresh_token === 16, s);
  }

  // concurrency: two simultaneous refreshes with the same token
  await api.resetStats();
  {
    const g = await api.grant({ accountId: 'racer' });
    await api.setDelay(200);
    const [a, b] = await Promise.all([api.refresh(g.refresh_token), api.refresh(g.refresh_token)]);
    await api.setDelay(0);
    const oks = [a, b].filter((r) => r.status === 200);
    const bad = [a, b].filter((r) => r.status === 400 && r.json?.error === 'invalid_grant');
    check('concurrent double refresh: one 200, one invalid_grant', oks.length === 1 && bad.length === 1, [a.text, b.text]);
    if (oks.length === 1) {
      const follow = await api.refresh(oks[0].json.refresh_token);
      check('concurrent double refresh: the winner\'s new refresh token is dead (grant revoked)', follow.status === 400 && follow.json?.error === 'invalid_grant', follow.text);
    }
    const s = await api.stats();
    check('stats: concurrent requests counted', s.refresh_requests === 3 && s.refresh_reuse_detected === 1, s);
  }

  // expiry knobs
  {
    const g = await api.grant({ accountId: 'short', expires_in: 2 });
    check('grant expires_in override', g.expires_in === 2, g);
    const cfg = await api.control('POST', '/__test/config', { access_token_ttl: 77 });
    check('config access_token_ttl', cfg.status === 200 && cfg.json.access_token_ttl === 77, cfg.json);
    const r = await api.refresh(g.refresh_token);
    check('refreshed access token uses runtime TTL', r.json?.expires_in === 77, r.text);
    await api.control('POST', '/__test/config', { access_token_ttl: 3600 });
    const ge = await api.grant({ accountId: 'rt-expiring', refresh_expires_in: 1 });
    await new Promise((res) => { setTimeout(res, 1100); });
    const re = await api.refresh(ge.refresh_token);
    check('expired refresh token: invalid_grant', re.status === 400 && re.json?.error === 'invalid_grant', re.text);
  }

  // real authorization-code flow through devInteractions
  {
    const redirectUri = 'http://127.0.0.1/callback';
    const { tok, callback } = await authCodeFlow(base, api, {
      accountId: 'frank', redirectUri, scope: 'openid email offline_access', prompt: 'consent',
    });
    check('auth code flow (prompt=consent): callback has iss', callback.searchParams.get('iss') === base, callback.href);
    check('auth code flow (prompt=consent): tokens incl. refresh_token', tok.status === 200 && !!tok.json.access_token && !!tok.json.refresh_token && !!tok.json.id_token, tok.text);
    check('auth code flow (prompt=consent): offline_access granted', tok.json?.scope?.split(' ').includes('offline_access'), tok.json?.scope);
    const r = await api.refresh(tok.json.refresh_token);
    check('auth code flow: its refresh token refreshes + rotates', r.status === 200 && r.json.refresh_token !== tok.json.refresh_token, r.text);

    const noPrompt = await authCodeFlow(base, api, {
      accountId: 'gina', redirectUri, scope: 'openid email offline_access',
    });
    check('auth code flow (no prompt=consent): still gets a refresh_token', noPrompt.tok.status === 200 && !!noPrompt.tok.json.refresh_token, noPrompt.tok.text);
    check('auth code flow (no prompt=consent): offline_access silently dropped from scope', !noPrompt.tok.json?.scope?.split(' ').includes('offline_access'), noPrompt.tok.json?.scope);
    const r2 = await api.refresh(noPrompt.tok.json.refresh_token);
    check('auth code flow (no prompt=consent): refresh works', r2.status === 200, r2.text);

    const newUri = 'http://127.0.0.1:45678/oauth/callback';
    const q = new URLSearchParams({ client_id: CLIENT.id, response_type: 'code', redirect_uri: newUri, scope: 'openid' });
    const before = await fetch(`${base}/auth?${q}`, { redirect: 'manual' });
    check('unregistered redirect_uri rejected', before.status === 400, before.status);
    const add = await api.control('POST', '/__test/redirect_uris', { redirect_uris: [newUri] });
    check('runtime redirect_uris added', add.status === 200 && add.json.redirect_uris['idvault-test'].includes(newUri), add.json);
    check('runtime redirect_uris added to idvault-post too', add.json.redirect_uris['idvault-post']?.includes(newUri), add.json);
    const flow = await authCodeFlow(base, api, { accountId: 'hank', redirectUri: newUri, scope: 'openid email offline_access', prompt: 'consent' });
    check('auth code flow with runtime redirect_uri', flow.tok.status === 200 && !!flow.tok.json.refresh_token, flow.tok.text);
    const flowPost = await authCodeFlow(base, api, {
      accountId: 'hank2', redirectUri: newUri, scope: 'openid email offline_access', prompt: 'consent', client: POST_CLIENT,
    });
    check('auth code flow with runtime redirect_uri, idvault-post (client_secret_post)', flowPost.tok.status === 200 && !!flowPost.tok.json.refresh_token && !!flowPost.tok.json.id_token, flowPost.tok.text);

    const postOnlyUri = 'http://127.0.0.1:45679/only-post';
    const addOne = await api.control('POST', '/__test/redirect_uris', { redirect_uris: [postOnlyUri], client_id: 'idvault-post' });
    check('runtime redirect_uri for one client_id', addOne.status === 200 && addOne.json.redirect_uris['idvault-post'].includes(postOnlyUri) && !('idvault-test' in addOne.json.redirect_uris), addOne.json);
    const qPost = new URLSearchParams({ client_id: POST_CLIENT.id, response_type: 'code', redirect_uri: postOnlyUri, scope: 'openid' });
    const okPost = await fetch(`${base}/auth?${qPost}`, { redirect: 'manual' });
    check('client_id-scoped runtime redirect_uri accepted for idvault-post', okPost.status === 303 && /\/interaction\//.test(okPost.headers.get('location') ?? ''), [okPost.status, okPost.headers.get('location')]);
    qPost.set('client_id', CLIENT.id);
    const notTest = await fetch(`${base}/auth?${qPost}`, { redirect: 'manual' });
    check('client_id-scoped runtime redirect_uri still rejected for idvault-test', notTest.status === 400, notTest.status);
  }

  // revocation endpoint (RFC 7009) is enabled
  {
    const g = await api.grant({ accountId: 'ivan' });
    const res = await fetch(`${base}/token/revocation`, {
      method: 'POST',
      headers: { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: g.refresh_token, token_type_hint: 'refresh_token' }).toString(),
    });
    check('revocation endpoint: 200', res.status === 200, res.status);
    const r = await api.refresh(g.refresh_token);
    check('refresh after RFC 7009 revocation: invalid_grant', r.json?.error === 'invalid_grant', r.text);
    const s = await api.stats();
    check('revocation endpoint not counted as token request', s.grant_types['authorization_code'] === 4, s.grant_types);
  }

  // id_token fault injection (POST /token, grant_type=authorization_code only)
  {
    const jwks = jose.createRemoteJWKSet(new URL(`${base}/jwks`));
    const publicKey = (await (await fetch(`${base}/jwks`)).json()).keys[0];
    const redirectUri = 'http://127.0.0.1/callback';
    let n = 0;
    const codeFlow = (client = CLIENT) => {
      n += 1;
      return authCodeFlow(base, api, {
        accountId: `idt${n}`, redirectUri, scope: 'openid email offline_access', prompt: 'consent',
        nonce: crypto.randomBytes(12).toString('base64url'), client,
      });
    };
    const verifyOpts = { issuer: base, audience: CLIENT.id, algorithms: ['RS256'] };
    const errorCode = (p) => p.then(() => 'verified', (err) => err.code ?? String(err));
    const sigVerifies = (t) => errorCode(jose.compactVerify(t, jwks));

    // Baseline: the untouched id_token passes every check.
    const base0 = await codeFlow();
    const idt0 = base0.tok.json?.id_token;
    check('id_token baseline: present', base0.tok.status === 200 && typeof idt0 === 'string', base0.tok.text);
    const hdr0 = jose.decodeProtectedHeader(idt0);
    check('id_token baseline: header alg/kid are the /jwks key', hdr0.alg === 'RS256' && hdr0.kid === publicKey.kid, [hdr0, publicKey.kid]);
    const v0 = await jose.jwtVerify(idt0, jwks, verifyOpts).then((v) => v.payload, (err) => err);
    check('id_token baseline: verifies (signature, iss, aud, exp)', v0.sub === 'idt1' && v0.nonce === base0.nonce, v0);

    // The re-signed modes: one altered claim, a signature that still verifies.
    const cases = [
      ['idtoken_wrong_aud', (p) => p.aud === 'someone-else', 'ERR_JWT_CLAIM_VALIDATION_FAILED:aud'],
      ['idtoken_wrong_iss', (p) => p.iss === 'https://evil.example.com', 'ERR_JWT_CLAIM_VALIDATION_FAILED:iss'],
      ['idtoken_wrong_nonce', (p, f) => p.nonce === 'not-the-nonce' && f.nonce !== 'not-the-nonce', 'verified'],
      ['idtoken_expired', (p) => {
        const now = Math.floor(Date.now() / 1000);
        return Math.abs(p.exp - (now - 3600)) <= 5 && Math.abs(p.iat - (now - 7200)) <= 5;
      }, 'ERR_JWT_EXPIRED:exp'],
    ];
    for (const [name, altered, expectedJwtVerify] of cases) {
      const m = await api.setMode(name);
      check(`${name}: mode set`, m.status === 200 && m.json.mode === name && m.json.remaining === null, m.json);
      const f = await codeFlow();
      const t = f.tok.json?.id_token;
      check(`${name}: 200 with tokens and an id_token`, f.tok.status === 200 && !!f.tok.json.access_token && !!f.tok.json.refresh_token && typeof t === 'string', f.tok.text);
      const p = jose.decodeJwt(t);
      check(`${name}: claim altered`, altered(p, f), p);
      const others = {
        sub: p.sub === `idt${n}`,
        iss: name === 'idtoken_wrong_iss' || p.iss === base,
        aud: name === 'idtoken_wrong_aud' || p.aud === CLIENT.id,
        nonce: name === 'idtoken_wrong_nonce' || p.nonce === f.nonce,
        exp: name === 'idtoken_expired' || p.exp > Math.floor(Date.now() / 1000),
      };
      check(`${name}: other claims untouched`, Object.values(others).every(Boolean), [others, p]);
      const h = jose.decodeProtectedHeader(t);
      check(`${name}: same alg/kid header`, h.alg === hdr0.alg && h.kid === hdr0.kid, h);
      check(`${name}: signature verifies against /jwks`, (await sigVerifies(t)) === 'verified', await sigVerifies(t));
      const jv = await jose.jwtVerify(t, jwks, verifyOpts).then(() => 'verified', (err) => (err.claim ? `${err.code}:${err.claim}` : err.code));
      check(`${name}: jwtVerify(iss, aud, exp) gives ${expectedJwtVerify}`, jv === expectedJwtVerify, jv);
    }

    // Bad signature: header and claims intact, signature valid base64url but wrong.
    {
      await api.setMode('idtoken_bad_signature');
      const f = await codeFlow();
      const t = f.tok.json?.id_token;
      check('idtoken_bad_signature: 200 with an id_token', f.tok.status === 200 && typeof t === 'string', f.tok.text);
      const [, , sig] = t.split('.');
      check('idtoken_bad_signature: signature segment is canonical base64url of 256 bytes',
        /^[A-Za-z0-9_-]+$/.test(sig) && Buffer.from(sig, 'base64url').length === 256 && Buffer.from(sig, 'base64url').toString('base64url') === sig, sig);
      const p = jose.decodeJwt(t);
      check('idtoken_bad_signature: claims intact', p.iss === base && p.aud === CLIENT.id && p.nonce === f.nonce && p.sub === `idt${n}`, p);
      const h = jose.decodeProtectedHeader(t);
      check('idtoken_bad_signature: same alg/kid header', h.alg === hdr0.alg && h.kid === hdr0.kid, h);
      const sv = await sigVerifies(t);
      check('idtoken_bad_signature: signature does not verify', sv === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', sv);
    }

    // Modes stay in force; refresh_token grants are left alone.
    {
      await api.setMode('idtoken_wrong_aud');
      const f1 = await codeFlow(POST_CLIENT);
      check('idtoken mode applies to idvault-post (client_secret_post) too', f1.tok.status === 200 && jose.decodeJwt(f1.tok.json.id_token).aud === 'someone-else', f1.tok.text);
      const r = await api.refresh(f1.tok.json.refresh_token, { auth: 'post' });
      const rIdt = r.json?.id_token;
      check('idtoken mode: refresh_token grant untouched (id_token aud/signature fine)',
        r.status === 200 && typeof rIdt === 'string' && jose.decodeJwt(rIdt).aud === POST_CLIENT.id && (await sigVerifies(rIdt)) === 'verified', r.text);
      const f2 = await codeFlow();
      check('idtoken mode stays until changed', jose.decodeJwt(f2.tok.json.id_token).aud === 'someone-else', jose.decodeJwt(f2.tok.json.id_token));
    }
    {
      let m = await api.setMode('idtoken_wrong_iss', { times: 1 });
      check('idtoken mode with times=1 set', m.json.mode === 'idtoken_wrong_iss' && m.json.remaining === 1, m.json);
      const g = await api.grant({ accountId: 'idt-refresh' });
      const r = await api.refresh(g.refresh_token);
      m = await api.control('GET', '/__test/mode');
      check('times: refresh_token grant does not use up an idtoken mode', r.status === 200 && m.json.mode === 'idtoken_wrong_iss' && m.json.remaining === 1, [r.status, m.json]);
      const bad = await api.token({ grant_type: 'authorization_code', code: 'not-a-code', redirect_uri: redirectUri });
      m = await api.control('GET', '/__test/mode');
      check('times: a failed code exchange counts (error left as is)', bad.status === 400 && bad.json?.error === 'invalid_grant' && m.json.mode === 'normal', [bad.text, m.json]);
      await api.setMode('idtoken_wrong_iss', { times: 1 });
      const f1 = await codeFlow();
      const f2 = await codeFlow();
      check('times=1: one altered id_token, then normal',
        jose.decodeJwt(f1.tok.json.id_token).iss === 'https://evil.example.com' && jose.decodeJwt(f2.tok.json.id_token).iss === base, [jose.decodeJwt(f1.tok.json.id_token).iss, jose.decodeJwt(f2.tok.json.id_token).iss]);
    }
    {
      const combo = await api.setMode('form+idtoken_wrong_aud');
      check('idtoken modes cannot be combined with +', combo.status === 400, combo.json);
    }
  }

  // error_redirect: the authorization endpoint answers access_denied
  {
    const redirectUri = 'http://127.0.0.1/callback';
    const browser = makeBrowser();
    const nonce = crypto.randomBytes(12).toString('base64url');
    const { q, state } = authorizeQuery({
      redirectUri, scope: 'openid email offline_access', prompt: 'consent', nonce,
    });
    let m = await api.setMode('error_redirect');
    check('error_redirect: mode set', m.status === 200 && m.json.mode === 'error_redirect', m.json);
    const res = await fetch(`${base}/auth?${q}`, { redirect: 'manual' });
    const loc = new URL(res.headers.get('location') ?? 'http://invalid/');
    check('error_redirect: /auth answers 303 to the redirect_uri', res.status === 303 && `${loc.origin}${loc.pathname}` === redirectUri, [res.status, loc.href]);
    check('error_redirect: error=access_denied, error_description, state, iss; no code',
      loc.searchParams.get('error') === 'access_denied' && loc.searchParams.get('error_description') === 'denied by test'
      && loc.searchParams.get('state') === state && loc.searchParams.get('iss') === base && !loc.searchParams.has('code'), loc.href);
    check('error_redirect: no interaction cookies left behind', !res.headers.getSetCookie().some((c) => c.startsWith('_interaction')), res.headers.getSetCookie());

    // last_authorize: exactly what the client sent
    const la = await api.control('GET', '/__test/last_authorize');
    check('last_authorize: 200 with the query parameters of the last GET /auth', la.status === 200 && JSON.stringify(la.json) === JSON.stringify(Object.fromEntries(q)), [la.json, Object.fromEntries(q)]);
    check('last_authorize: PKCE, nonce, state, scope, prompt, redirect_uri',
      la.json.code_challenge_method === 'S256' && la.json.code_challenge === q.get('code_challenge') && la.json.nonce === nonce
      && la.json.state === state && la.json.scope === 'openid email offline_access' && la.json.prompt === 'consent'
      && la.json.redirect_uri === redirectUri, la.json);

    // invalid requests still get oidc-provider's own answer, and do not count
    await api.setMode('error_redirect', { times: 1 });
    const bad = new URLSearchParams(q);
    bad.set('redirect_uri', 'http://127.0.0.1/not-registered');
    const badRes = await fetch(`${base}/auth?${bad}`, { redirect: 'manual' });
    m = await api.control('GET', '/__test/mode');
    check('error_redirect: unregistered redirect_uri still rejected with 400, times not used up', badRes.status === 400 && m.json.mode === 'error_redirect' && m.json.remaining === 1, [badRes.status, m.json]);
    const la2 = await api.control('GET', '/__test/last_authorize');
    check('last_authorize: follows the most recent request', la2.json.redirect_uri === 'http://127.0.0.1/not-registered', la2.json);

    // POST /token is not affected by error_redirect
    const g = await api.grant({ accountId: 'denied-refresh' });
    const r = await api.refresh(g.refresh_token);
    m = await api.control('GET', '/__test/mode');
    check('error_redirect: POST /token unaffected and does not use up times', r.status === 200 && m.json.mode === 'error_redirect' && m.json.remaining === 1, [r.status, m.json]);

    // times=1 on a idvault-post request, then normal again
    const postQ = authorizeQuery({ redirectUri, scope: 'openid', client: POST_CLIENT, nonce: 'n' });
    const denied = await fetch(`${base}/auth?${postQ.q}`, { redirect: 'manual' });
    const dl = new URL(denied.headers.get('location') ?? 'http://invalid/');
    check('error_redirect (idvault-post): denied', denied.status === 303 && dl.searchParams.get('error') === 'access_denied' && dl.searchParams.get('state') === postQ.state, dl.href);
    const after = await fetch(`${base}/auth?${postQ.q}`, { redirect: 'manual' });
    check('error_redirect times=1: next /auth runs the real flow', after.status === 303 && /\/interaction\//.test(after.headers.get('location') ?? ''), [after.status, after.headers.get('location')]);

    // the continuation after the interaction (GET /auth/<uid>)
    const first = await browser.go(`${base}/auth?${q}`);
    const isResume = (l) => /^\/auth\/[^/]+$/.test(new URL(l).pathname);
    const { r: loggedIn } = await followInteractions(base, browser, first, 'denier', isResume);
    check('continuation: login finished, browser sent to /auth/<uid>', !!loggedIn.location && isResume(loggedIn.location), loggedIn.location);
    await api.setMode('error_redirect', { times: 1 });
    const resumed = await browser.go(loggedIn.location);
    const rl = new URL(resumed.location ?? 'http://invalid/');
    check('continuation: oidc-provider redirects with error=access_denied, description, state and iss',
      resumed.status === 303 && `${rl.origin}${rl.pathname}` === redirectUri && rl.searchParams.get('error') === 'access_denied'
      && rl.searchParams.get('error_description') === 'denied by test' && rl.searchParams.get('state') === state
      && rl.searchParams.get('iss') === base && !rl.searchParams.has('code'), [resumed.status, resumed.location, resumed.text.slice(0, 200)]);
    m = await api.control('GET', '/__test/mode');
    check('continuation: used up times=1', m.json.mode === 'normal', m.json);
    const ok = await authCodeFlow(base, api, { accountId: 'allowed', redirectUri, scope: 'openid', prompt: 'consent' });
    check('after error_redirect: the real flow issues a code again', ok.tok.status === 200 && !!ok.tok.json.id_token, ok.tok.text);

    // with a signed-in session oidc-provider would answer /auth with a code
    // straight away; error_redirect denies that too
    const sso = makeBrowser();
    const s1 = authorizeQuery({ redirectUri, scope: 'openid email', prompt: 'consent' });
    const { r: s1r } = await followInteractions(base, sso, await sso.go(`${base}/auth?${s1.q}`), 'sso', (l) => l.startsWith(redirectUri));
    const s2 = authorizeQuery({ redirectUri, scope: 'openid email' });
    const direct = await sso.go(`${base}/auth?${s2.q}`);
    check('signed-in session: /auth answers with a code at once (normal mode)', new URL(s1r.location).searchParams.has('code') && direct.status === 303 && new URL(direct.location).searchParams.has('code'), direct.location);
    await api.setMode('error_redirect', { times: 1 });
    const s3 = authorizeQuery({ redirectUri, scope: 'openid email' });
    const deniedSso = await sso.go(`${base}/auth?${s3.q}`);
    const dsl = new URL(deniedSso.location ?? 'http://invalid/');
    check('error_redirect: also denies a request that would get a code at once',
      deniedSso.status === 303 && dsl.searchParams.get('error') === 'access_denied' && dsl.searchParams.get('state') === s3.state && !dsl.searchParams.has('code'), deniedSso.location);
    check('error_redirect: mode used up', (await api.control('GET', '/__test/mode')).json.mode === 'normal');
  }

  const lines = srv.stdout().split('\n').filter((l) => l !== '');
  check('server A: exactly one stdout line', lines.length === 1, srv.stdout());
  check('server A: no internal errors on stderr', !/oauth-server:|server_error/.test(srv.stderr()), srv.stderr());
  await api.setMode('hang');
  const outstanding = api.refresh('whatever').then(() => 'answered', (err) => err.name);
  await new Promise((res) => { setTimeout(res, 300); });
  const code = await srv.stop();
  check('hung client gets a connection error on shutdown', (await outstanding) === 'TypeError');
  check('server A: clean exit on SIGTERM (with a hung request outstanding)', code === 0, code);

  // ------------------------------------------------------------------ server B: env knobs
  const port = await freePort();
  const extraUri = 'http://localhost:5555/oauth/cb';
  const srvB = await startServer({
    args: [],
    env: { PORT: String(port), ACCESS_TOKEN_TTL: '120', REDIRECT_URIS: ` ${extraUri} , http://127.0.0.1:6666/cb` },
  });
  console.log(`# server B at ${srvB.base}`);
  check('env PORT honoured', srvB.port === port, srvB.base);
  const apiB = makeApi(srvB.base);
  {
    const la = await apiB.control('GET', '/__test/last_authorize');
    check('last_authorize before any /auth: 404', la.status === 404, la);
    const g = await apiB.grant({ accountId: 'zoe' });
    check('env ACCESS_TOKEN_TTL at mint', g.expires_in === 120, g);
    const r = await apiB.refresh(g.refresh_token);
    check('env ACCESS_TOKEN_TTL at refresh', r.json?.expires_in === 120, r.text);
    const q = new URLSearchParams({ client_id: 'idvault-post', response_type: 'code', redirect_uri: extraUri, scope: 'openid' });
    const res = await fetch(`${srvB.base}/auth?${q}`, { redirect: 'manual' });
    check('env REDIRECT_URIS accepted at /auth', res.status === 303 && /\/interaction\//.test(res.headers.get('location') ?? ''), [res.status, res.headers.get('location')]);
    const la2 = await apiB.control('GET', '/__test/last_authorize');
    check('last_authorize after /auth', la2.status === 200 && JSON.stringify(la2.json) === JSON.stringify(Object.fromEntries(q)), la2.json);
  }
  check('server B: exactly one stdout line', srvB.stdout().split('\n').filter(Boolean).length === 1, srvB.stdout());
  await srvB.stop();
}

try {
  await main();
} catch (err) {
  failed += 1;
  console.log(`not ok - unexpected error: ${err.stack ?? err}`);
} finally {
  for (const c of children) c.kill('SIGKILL');
}
if (failed > 0) {
  for (const get of stderrSources) console.log(`# server stderr:\n${get().replace(/^/gm, '#   ')}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
