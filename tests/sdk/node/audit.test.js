// The audit trail through the official Node SDK (@descope/node-sdk 2.13.0, `management.audit`):
// `createEvent`, then `search` finds it; a provider-token read (the token stored with idvault's
// PUT extension, read with `user.getProviderToken`) is found by user, login id, action and time
// window; `searchAll` answers the total; role and permission changes, access key changes and a
// refused exchange (`LoginFailed`) are found with `search({actions})`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { useServer, makeClient, uid, uniqueEmail, expectOk, mgmtFetch, recordSecret } from './harness.js';

/** @type {ReturnType<typeof makeClient>['management']} */
let m;
/** A client without a management key, as a machine exchanging an access key has. */
let machine;
useServer(() => {
  m = makeClient().management;
  machine = makeClient({ managementKey: undefined });
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

test('role and permission changes are found by action', async () => {
  const id = uid();
  const permission = `perm-${id}`;
  const role = `role-${id}`;
  expectOk(await m.permission.create(permission), 'permission.create');
  expectOk(await m.role.create(role, '', [permission]), 'role.create');
  expectOk(await m.role.update(role, `${role}-2`, '', []), 'role.update');
  expectOk(await m.role.delete(`${role}-2`), 'role.delete');
  expectOk(await m.permission.delete(permission), 'permission.delete');

  const actions = ['PermissionCreated', 'RoleCreated', 'RoleModified', 'RoleDeleted', 'PermissionDeleted'];
  const found = await searchUntil({ actions, text: id }, (a) => a.length >= actions.length);
  assert.deepEqual(
    found.map((a) => a.action),
    [...actions].reverse(),
    JSON.stringify(found),
  );
  const modified = found.find((a) => a.action === 'RoleModified');
  assert.equal(modified.data.name, role);
  assert.equal(modified.data.newName, `${role}-2`);
  assert.equal(modified.actorId.length > 0, true, 'the management key');
});

test('access key changes and a refused exchange are found by action, without the key', async () => {
  const created = expectOk(await m.accessKey.create(`audit-${uid()}`, 0), 'accessKey.create');
  recordSecret('access key', created.cleartext);
  const keyId = created.key.id;
  expectOk(await m.accessKey.deactivate(keyId), 'accessKey.deactivate');
  await assert.rejects(machine.exchangeAccessKey(created.cleartext), /could not exchange access key/);
  expectOk(await m.accessKey.delete(keyId), 'accessKey.delete');

  const actions = ['AccessKeyCreated', 'AccessKeyModified', 'LoginFailed', 'AccessKeyDeleted'];
  const found = await searchUntil({ actions, text: keyId }, (a) => a.length >= actions.length);
  assert.deepEqual(
    found.map((a) => a.action),
    [...actions].reverse(),
    JSON.stringify(found),
  );
  const failed = found.find((a) => a.action === 'LoginFailed');
  assert.equal(failed.data.keyId, keyId);
  assert.equal(failed.data.error_message, 'the access key is deactivated');
  assert.equal(found.find((a) => a.action === 'AccessKeyModified').data.change, 'deactivate');
  assert.ok(!JSON.stringify(found).includes(created.cleartext.slice(keyId.length + 1)), 'no key secret');
});
