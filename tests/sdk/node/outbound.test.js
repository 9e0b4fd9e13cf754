// Outbound applications (Descope's token vault) through the official Node SDK
// (@descope/node-sdk 2.13.0, `management.outboundApplication`): apps, user and tenant tokens,
// API keys, batch uploads (all or nothing), refresh at the real OAuth server of
// tests/oauth-server, deletes and listing, and the client SDK's `outbound.connect` reaching the
// connect route (the whole consent flow runs in the Rust suite, with a browser-like client).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { useServer, makeClient, uid, expectOk, expectError, mgmtFetch, REPO_ROOT } from './harness.js';

const APP_NOT_FOUND = 'E152101';
const TOKEN_NOT_FOUND = 'E152102';

/** @type {ReturnType<typeof makeClient>['management']} */
let m;
/** @type {ReturnType<typeof makeClient>['management']['outboundApplication']} */
let ob;
useServer(() => {
  m = makeClient().management;
  ob = m.outboundApplication;
});

const appId = (prefix) => `${prefix}-${uid()}`;

async function newUser() {
  return expectOk(await m.user.create(`ob-${uid()}@example.com`), 'user.create').userId;
}

async function newTenant() {
  const id = `t-${uid()}`;
  expectOk(await m.tenant.createWithId(id, `Tenant ${id}`, []), 'tenant.createWithId');
  return id;
}

/** The test OAuth server (oidc-provider), started on first use; answers its issuer URL. */
let oauth;
function oauthServer() {
  oauth ??= new Promise((resolve, reject) => {
    const child = spawn('node', [join(REPO_ROOT, 'tests', 'oauth-server', 'server.js'), '--port', '0', '--exit-on-stdin-close'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    after(() => child.kill());
    child.on('error', reject);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const found = /^oauth-server listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/.exec(line.trim());
      if (found) resolve(found[1]);
    });
  });
  return oauth;
}

async function oauthControl(issuer, path, body) {
  const resp = await fetch(`${issuer}/__test/${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return resp.json();
}

test('apps: create, by template, load, list, update and delete; the secret is never answered', async () => {
  const id = appId('crm');
  const created = expectOk(
    await ob.createApplication({
      id,
      name: `CRM ${id}`,
      description: 'test',
      clientSecret: 'node-secret-value',
      clientId: 'cid',
      authorizationUrl: 'https://crm.example.com/authorize',
      authorizationUrlParams: [{ key: 'audience', value: 'api' }],
      tokenUrl: 'https://crm.example.com/token',
      defaultScopes: ['read'],
      pkce: true,
      useDcr: true,
      dcrUrl: 'https://mcp.example.com/register',
      defaultRedirectUrl: 'https://api.example.com/v1/outbound/oauth/callback',
    }),
    'createApplication',
  );
  assert.equal(created.id, id);
  assert.equal(created.useDcr, true);
  assert.deepEqual(created.authorizationUrlParams, [{ key: 'audience', value: 'api' }]);
  assert.ok(!JSON.stringify(created).includes('node-secret-value'));

  const generated = expectOk(await ob.createApplication({ name: `Generated ${id}`, description: 'test', clientSecret: 'shhh..' }));
  assert.ok(generated.id);

  const byTemplate = expectOk(
    await ob.createApplicationByTemplate({
      templateId: 'hubspot',
      id: `hub-${id}`,
      clientId: 'client-id',
      clientSecret: 'shhh..',
      tenantId: 'tenant789',
      overrides: { name: `HubSpot ${id}`, defaultScopes: ['crm.objects.contacts.read'], pkce: true },
    }),
    'createApplicationByTemplate',
  );
  assert.equal(byTemplate.tokenUrl, 'https://api.hubapi.com/oauth/v1/token');
  assert.deepEqual(byTemplate.defaultScopes, ['crm.objects.contacts.read']);
  const google = expectOk(await ob.createApplicationByTemplate({ templateId: 'google' }));
  assert.equal(google.tokenUrl, 'https://oauth2.googleapis.com/token');
  // A second `google` by template: the name (the template id) is taken.
  expectError(await ob.createApplicationByTemplate({ templateId: 'google' }), 'E011409', 409);

  assert.equal(expectOk(await ob.loadApplication(id)).name, `CRM ${id}`);
  const all = expectOk(await ob.loadAllApplications());
  const ids = new Set(all.map((a) => a.id));
  for (const want of [id, generated.id, `hub-${id}`, google.id]) assert.ok(ids.has(want), want);

  const updated = expectOk(
    await ob.updateApplication({ id, name: `Renamed ${id}`, logo: 'https://example.com/logo.png', description: 'desc', clientSecret: 'shhh..' }),
    'updateApplication',
  );
  assert.equal(updated.name, `Renamed ${id}`);
  assert.equal(updated.logo, 'https://example.com/logo.png');
  assert.equal(updated.tokenUrl, '', 'update overrides as is');

  assert.deepEqual(expectOk(await ob.deleteApplication(id)), {});
  expectError(await ob.loadApplication(id), APP_NOT_FOUND, 404);
});

test('user tokens: by scopes, latest, per tenant, deletes and apps with a user token', async () => {
  const app = appId('docs');
  expectOk(await ob.createApplication({ id: app, name: `Docs ${app}` }));
  const userId = await newUser();
  const tenantId = await newTenant();

  assert.deepEqual(expectOk(await ob.uploadUserToken({ appId: app, userId, accessToken: 'read-only', scopes: ['read'] })), {});
  expectOk(
    await ob.uploadUserToken({
      appId: app,
      userId,
      accessToken: 'read-write',
      refreshToken: 'rw-refresh',
      accessTokenExpiry: Math.floor(Date.now() / 1000) + 3600,
      scopes: ['read', 'write'],
      grantedBy: 'admin',
    }),
  );
  expectOk(await ob.uploadUserToken({ appId: app, userId, tenantId, accessToken: 'tenant-scoped', scopes: ['read'] }));

  const rw = expectOk(await ob.fetchTokenByScopes(app, userId, ['write']), 'fetchTokenByScopes');
  assert.equal(rw.accessToken, 'read-write');
  assert.equal(rw.hasRefreshToken, true);
  assert.equal(rw.refreshToken, undefined);
  assert.equal(rw.appId, app);
  assert.equal(rw.userId, userId);
  assert.equal(rw.grantedBy, 'admin');
  const withRefresh = expectOk(await ob.fetchTokenByScopes(app, userId, ['read', 'write'], { withRefreshToken: true }));
  assert.equal(withRefresh.refreshToken, 'rw-refresh');
  const scoped = expectOk(await ob.fetchTokenByScopes(app, userId, ['read'], undefined, tenantId));
  assert.equal(scoped.tenantId, tenantId);
  assert.equal(expectOk(await ob.fetchToken(app, userId)).accessToken, 'tenant-scoped');
  assert.equal(expectOk(await ob.fetchToken(app, userId, tenantId)).id, scoped.id);
  expectError(await ob.fetchTokenByScopes(app, userId, ['admin']), TOKEN_NOT_FOUND, 404);

  assert.deepEqual(expectOk(await ob.listAppsWithUserToken(userId)), [app]);
  assert.deepEqual(expectOk(await ob.listAppsWithUserToken(userId, tenantId)), [app]);

  assert.deepEqual(expectOk(await ob.deleteTokenById(scoped.id)), {});
  expectError(await ob.fetchToken(app, userId, tenantId), TOKEN_NOT_FOUND, 404);
  // Node sends the absent user id as the text "undefined": all of the app's user tokens go.
  assert.deepEqual(expectOk(await ob.deleteUserTokens(app)), {});
  expectError(await ob.fetchToken(app, userId), TOKEN_NOT_FOUND, 404);
  expectOk(await ob.uploadUserToken({ appId: app, userId, accessToken: 'again' }));
  expectOk(await ob.deleteUserTokens(undefined, userId));
  assert.deepEqual(expectOk(await ob.listAppsWithUserToken(userId)), []);
});

test('tenant tokens and API keys', async () => {
  const app = appId('org');
  const keys = appId('keys');
  expectOk(await ob.createApplication({ id: app, name: `Org ${app}` }));
  // API-key apps are idvault's `appType` extension: the SDK passes unknown fields through.
  expectOk(await ob.createApplication({ id: keys, name: `Keys ${keys}`, appType: 'apikey' }));
  const tenantId = await newTenant();
  const userId = await newUser();

  assert.deepEqual(expectOk(await ob.uploadTenantToken({ appId: app, tenantId, accessToken: 'org-token', scopes: ['read'] })), {});
  const org = expectOk(await ob.fetchTenantTokenByScopes(app, tenantId, ['read'], { withRefreshToken: true, forceRefresh: false }));
  assert.equal(org.accessToken, 'org-token');
  assert.equal(org.tenantId, tenantId);
  assert.equal(expectOk(await ob.fetchTenantToken(app, tenantId)).id, org.id);
  expectError(await ob.fetchTenantToken(app, 'no-such-tenant'), TOKEN_NOT_FOUND, 404);

  assert.deepEqual(expectOk(await ob.uploadUserApiKey(keys, userId, 'sk-user', tenantId)), {});
  assert.deepEqual(expectOk(await ob.uploadTenantApiKey(keys, tenantId, 'sk-tenant')), {});
  const key = expectOk(await ob.fetchToken(keys, userId, tenantId));
  assert.equal(key.accessToken, 'sk-user');
  assert.equal(key.hasRefreshToken, false);
  assert.equal(expectOk(await ob.fetchTenantToken(keys, tenantId)).accessToken, 'sk-tenant');
  expectError(await ob.uploadUserApiKey(app, userId, 'sk'), 'E011004', 400);
});

test('refresh at a real OAuth server: refresh-only upload, forceRefresh, verifyRefresh, invalid_grant', async () => {
  const issuer = await oauthServer();
  const app = appId('acme');
  expectOk(
    await ob.createApplication({
      id: app,
      name: `Acme ${app}`,
      clientId: 'idvault-test',
      clientSecret: 'idvault-test-secret',
      discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    }),
  );
  const login = `ref-${uid()}`;
  const userId = expectOk(await m.user.create(login)).userId;
  const grant = await oauthControl(issuer, 'grant', { accountId: login });

  expectOk(await ob.uploadUserToken({ appId: app, userId, refreshToken: grant.refresh_token, scopes: ['openid'] }));
  const first = expectOk(await ob.fetchToken(app, userId, undefined, { withRefreshToken: true }));
  assert.ok(first.accessToken && first.accessToken !== grant.access_token, 'the first fetch refreshed');
  assert.notEqual(first.refreshToken, grant.refresh_token, 'rotation followed');
  const forced = expectOk(await ob.fetchTokenByScopes(app, userId, ['openid'], { forceRefresh: true }));
  assert.notEqual(forced.accessToken, first.accessToken);

  const other = await oauthControl(issuer, 'grant', { accountId: `${login}-2` });
  expectOk(await ob.uploadUserToken({ appId: app, userId, refreshToken: other.refresh_token, scopes: ['email'], verifyRefresh: true }));
  assert.notEqual(expectOk(await ob.fetchTokenByScopes(app, userId, ['email'])).accessToken, other.access_token);
  expectError(
    await ob.uploadUserToken({ appId: app, userId, refreshToken: 'not-a-grant', scopes: ['x'], verifyRefresh: true }),
    'E112105',
    409,
  );
  expectError(await ob.fetchTokenByScopes(app, userId, ['x']), TOKEN_NOT_FOUND, 404);

  await oauthControl(issuer, 'revoke', { account_id: login });
  expectError(await ob.fetchTokenByScopes(app, userId, ['openid'], { forceRefresh: true }), 'E112105', 409);
  assert.deepEqual(expectOk(await ob.listAppsWithUserToken(userId)), [app], 'the email token is still valid');
});

test('batch uploads: all written, or failures and nothing written', async () => {
  const app = appId('batch');
  expectOk(await ob.createApplication({ id: app, name: `Batch ${app}` }));
  const users = [await newUser(), await newUser()];
  const tenantId = await newTenant();

  const written = expectOk(
    await ob.batchUploadUserTokens(users.map((userId, i) => ({ appId: app, userId, accessToken: `a${i}`, refreshToken: `r${i}`, scopes: ['read'] }))),
  );
  assert.deepEqual(written, { failures: [] });
  assert.equal(expectOk(await ob.fetchTokenByScopes(app, users[1], ['read'])).accessToken, 'a1');

  const refused = expectOk(
    await ob.batchUploadUserTokens([
      { appId: app, userId: users[0], accessToken: 'changed', scopes: ['read'] },
      { appId: app, userId: 'U-nobody-here', accessToken: 'x' },
      { appId: app, userId: users[1] },
    ]),
  );
  assert.deepEqual(
    refused.failures.map((f) => [f.userId, f.errorCode]).sort(),
    [[users[1], 'E011002'], ['U-nobody-here', 'E112102']].sort(),
  );
  assert.ok(refused.failures.every((f) => f.appId === app && f.reason));
  assert.equal(expectOk(await ob.fetchToken(app, users[0])).accessToken, 'a0', 'nothing of the batch was written');

  assert.deepEqual(expectOk(await ob.batchUploadTenantTokens([{ appId: app, tenantId, accessToken: 't1' }])), { failures: [] });
  assert.equal(expectOk(await ob.fetchTenantToken(app, tenantId)).accessToken, 't1');
  const tenantFailures = expectOk(await ob.batchUploadTenantTokens([{ appId: appId('ghost'), tenantId, accessToken: 't' }])).failures;
  assert.equal(tenantFailures.length, 1);
  assert.equal(tenantFailures[0].errorCode, APP_NOT_FOUND);
  assert.equal(tenantFailures[0].tenantId, tenantId);
});

test('outbound.connect reaches the connect route and needs a live session', async () => {
  const app = appId('connect');
  expectOk(await ob.createApplication({ id: app, name: `Connect ${app}` }));
  const client = makeClient();
  expectError(await client.outbound.connect(app, { redirectUrl: 'https://app.example/cb', scopes: ['read'] }, 'not.a.jwt'), 'E061001', 401);
});

test('errors are Descope errors', async () => {
  expectError(await ob.fetchToken('no-such-app', 'U1'), APP_NOT_FOUND, 404);
  expectError(await ob.createApplication({ id: 'Not Valid', name: 'x' }), 'E011004', 400);
  const raw = await mgmtFetch('DELETE', '/v1/mgmt/outbound/user/tokens?appId=undefined&userId=undefined');
  assert.equal(raw.status, 400);
  assert.equal(raw.body.errorCode, 'E011002');
});
