// The audit trail through the official Node SDK (@descope/node-sdk 2.13.0, `management.audit`):
// `createEvent`, then `search` finds it; a provider-token read (the token stored with idvault's
// PUT extension, read with `user.getProviderToken`) is found by user, login id, action and time
// window; `searchAll` answers the total.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { useServer, makeClient, uid, uniqueEmail, expectOk, mgmtFetch } from './harness.js';

/** @type {ReturnType<typeof makeClient>['management']} */
let m;
useServer(() => {
  m = makeClient().management;
});

/** Records are written by the server's background writer within ~100 ms: poll briefly. */
async function searchUntil(options, found) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const audits = expectOk(await m.audit.search(options), 'audit.search');
    if (found(audits) || Date.now() >= deadline) return audits;
    await sleep(50);
  }
}

test('createEvent, then search finds it', async () => {
  const action = `pencil.created.${uid()}`;
  expectOk(
    await m.audit.createEvent({
      action,
      type: 'warn',
      actorId: 'actor-9',
      tenantId: 'tenant-9',
      userId: 'user-9',
      data: { pencil: 'blue' },
    }),
    'audit.createEvent',
  );
  const audits = await searchUntil({ actions: [action] }, (a) => a.length > 0);
  assert.equal(audits.length, 1, JSON.stringify(audits));
  const [record] = audits;
  assert.equal(record.action, action);
  assert.equal(record.userId, 'user-9');
  assert.deepEqual(record.tenants, ['tenant-9']);
  assert.equal(record.data.pencil, 'blue');
  assert.equal(typeof record.occurred, 'number');
  assert.ok(Math.abs(record.occurred - Date.now()) < 5 * 60_000, `occurred ${record.occurred}`);
  assert.deepEqual(record.loginIds, []);
  assert.equal(record.remoteAddress, '127.0.0.1');
  assert.equal(record.actorId, 'actor-9', 'idvault extension, kept by the SDK');

  assert.equal(expectOk(await m.audit.search({ actions: [action], tenants: ['tenant-9'] })).length, 1);
  assert.equal(expectOk(await m.audit.search({ actions: [action], tenants: ['nope'] })).length, 0);
  assert.equal(expectOk(await m.audit.search({ actions: [action], text: 'PENCIL' })).length, 1);
});

test('a provider-token read is found by user, login id, action and time window', async () => {
  const loginId = uniqueEmail('audit');
  const user = expectOk(await m.user.create(loginId), 'user.create');
  const stored = await mgmtFetch('PUT', '/v1/mgmt/user/provider/token', {
    loginId,
    provider: 'google',
    providerUserId: 'g-audit',
    accessToken: 'at-audit-secret',
    refreshToken: 'rt-audit-secret',
  });
  assert.equal(stored.status, 200, JSON.stringify(stored.body));
  const from = Date.now() - 1000;
  const token = expectOk(await m.user.getProviderToken(loginId, 'google', { withRefreshToken: true }));
  assert.equal(token.refreshToken, 'rt-audit-secret');
  const to = Date.now() + 1000;

  const reads = await searchUntil(
    { userIds: [user.userId], actions: ['ProviderTokenRead'], from, to },
    (a) => a.length > 0,
  );
  assert.equal(reads.length, 1, JSON.stringify(reads));
  assert.equal(reads[0].userId, user.userId);
  assert.deepEqual(reads[0].loginIds, [loginId]);
  assert.equal(reads[0].data.provider, 'google');
  assert.ok(!JSON.stringify(reads).includes('audit-secret'), 'no token in a record');

  assert.equal(expectOk(await m.audit.search({ loginIds: [loginId], actions: ['ProviderTokenRead'] })).length, 1);
  assert.equal(
    expectOk(await m.audit.search({ userIds: [user.userId], actions: ['ProviderTokenRead'], to: from })).length,
    0,
    'a window that ends before the read',
  );
  const all = expectOk(await m.audit.searchAll({ userIds: [user.userId] }), 'audit.searchAll');
  assert.equal(all.total, all.audits.length);
  const actions = new Set(all.audits.map((a) => a.action));
  for (const a of ['UserCreated', 'ProviderTokenUploaded', 'ProviderTokenRead']) assert.ok(actions.has(a), a);
});
