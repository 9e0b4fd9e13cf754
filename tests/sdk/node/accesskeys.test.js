// Access keys through the official Node SDK (@descope/node-sdk 2.13.0): management.accessKey
// create/load/searchAll, and the exchange of a key for a session JWT (exchangeAccessKey, which
// validates it) that validateSession accepts, with the key's roles and tenants in its claims.
//
// What the SDK sends: accessKey.create posts /v1/mgmt/accesskey/create {name, expireTime,
// roleNames, keyTenants [{tenantId, roleNames}], userId, customClaims, description, permittedIps,
// customAttributes} and reads {key, cleartext}; load and searchAll read `key` / `keys`, whose
// keyTenants are {tenantId, roleNames, tenantName} as Descope answers them; update posts {id, name,
// description, roleNames, keyTenants, customClaims, permittedIps, customAttributes} (undefined ones
// left out: unchanged) and reads `key`. exchangeAccessKey posts /v1/auth/accesskey/exchange
// {loginOptions} with `Bearer <projectId>:<accessKey>` and verifies the `sessionJwt` against the
// keys at /v2/keys/<projectId>; the raw answer (accessKey.exchange) is core-js-sdk's
// ExchangeAccessKeyResponse {keyId, sessionJwt, expiration}: Descope's exchange has no refresh JWT.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, makeClient, uid, expectOk, expectError, recordSecret } from './harness.js';

/** @type {ReturnType<typeof makeClient>} */
let admin;
/** A machine's client: the project id, no management key. */
let machine;
useServer(() => {
  admin = makeClient();
  machine = makeClient({ managementKey: undefined });
});

async function createKey(name, ...rest) {
  const created = expectOk(await admin.management.accessKey.create(name, ...rest), `accessKey.create(${name})`);
  recordSecret('access key', created.cleartext);
  return created;
}

async function refused(cleartext) {
  await assert.rejects(machine.exchangeAccessKey(cleartext), /could not exchange access key/);
}

test('create, load, exchange and validateSession carry the roles and tenants', async () => {
  const tenantId = `t-${uid()}`;
  expectOk(await admin.management.tenant.createWithId(tenantId, `Tenant ${tenantId}`), 'tenant.createWithId');
  const permission = `read-${uid()}`;
  expectOk(await admin.management.permission.create(permission), 'permission.create');
  const role = `reader-${uid()}`;
  expectOk(await admin.management.role.create(role, '', [permission]), 'role.create');

  const created = await createKey(`svc-${uid()}`, 0, [role], [{ tenantId, roleNames: [role] }], undefined, {
    team: 'ops',
  });
  const keyId = created.key.id;
  assert.ok(created.cleartext.startsWith(`${keyId}.`));
  assert.equal(created.key.status, 'active');
  assert.deepEqual(created.key.roleNames, [role]);

  const loaded = expectOk(await admin.management.accessKey.load(keyId), 'accessKey.load');
  assert.equal(loaded.id, keyId);
  assert.deepEqual(loaded.keyTenants, [{ tenantId, roleNames: [role], tenantName: `Tenant ${tenantId}` }]);
  assert.ok(!JSON.stringify(loaded).includes(created.cleartext.slice(keyId.length + 1)), 'no secret on load');
  const found = expectOk(await admin.management.accessKey.searchAll([tenantId]), 'accessKey.searchAll');
  assert.deepEqual(
    found.map((k) => k.id),
    [keyId],
  );
  assert.equal(found[0].keyTenants[0].tenantName, `Tenant ${tenantId}`);

  const exchanged = await machine.exchangeAccessKey(created.cleartext);
  recordSecret('sessionJwt', exchanged.jwt);
  assert.equal(exchanged.token.sub, keyId);

  const validated = await machine.validateSession(exchanged.jwt);
  assert.equal(validated.token.sub, keyId);
  assert.deepEqual(validated.token.roles, [role]);
  assert.deepEqual(validated.token.permissions, [permission]);
  assert.deepEqual(validated.token.tenants, { [tenantId]: { roles: [role], permissions: [permission] } });
  assert.equal(validated.token.team, 'ops');
  assert.ok(machine.validateRoles(validated, [role]));
  assert.ok(machine.validatePermissions(validated, [permission]));
  assert.ok(machine.validateTenantRoles(validated, tenantId, [role]));
});

test('deactivated, expired and IP-restricted keys are refused', async () => {
  const created = await createKey(`toggle-${uid()}`);
  const keyId = created.key.id;
  expectOk(await admin.management.accessKey.deactivate(keyId), 'accessKey.deactivate');
  await refused(created.cleartext);
  expectOk(await admin.management.accessKey.activate(keyId), 'accessKey.activate');
  assert.equal((await machine.exchangeAccessKey(created.cleartext)).token.sub, keyId);

  const expired = await createKey(`expired-${uid()}`, Math.floor(Date.now() / 1000) - 60);
  await refused(expired.cleartext);

  const far = await createKey(`far-${uid()}`, 0, [], [], undefined, undefined, undefined, ['10.0.0.0/8']);
  await refused(far.cleartext);
  const near = await createKey(`near-${uid()}`, 0, [], [], undefined, undefined, undefined, ['127.0.0.1/32']);
  assert.equal((await machine.exchangeAccessKey(near.cleartext)).token.sub, near.key.id);

  expectOk(await admin.management.accessKey.delete(keyId), 'accessKey.delete');
  await refused(created.cleartext);
  expectError(await admin.management.accessKey.load(keyId), 'E011406', 404);
});

test('update changes what it is given, and the exchange answers keyId, sessionJwt and expiration', async () => {
  const tenantId = `t-${uid()}`;
  expectOk(await admin.management.tenant.createWithId(tenantId, `Tenant ${tenantId}`), 'tenant.createWithId');
  const role = `r-${uid()}`;
  expectOk(await admin.management.role.create(role), 'role.create');
  const created = await createKey(`upd-${uid()}`, 0, [], [], undefined, { team: 'ops' }, 'first');
  const keyId = created.key.id;

  const updated = expectOk(
    await admin.management.accessKey.update(keyId, `upd2-${uid()}`, 'second', [role], [{ tenantId, roleNames: [] }]),
    'accessKey.update',
  );
  assert.equal(updated.description, 'second');
  assert.deepEqual(updated.roleNames, [role]);
  assert.deepEqual(updated.keyTenants, [{ tenantId, roleNames: [], tenantName: `Tenant ${tenantId}` }]);
  assert.deepEqual(updated.customClaims, { team: 'ops' }, 'not sent, unchanged');
  const again = expectOk(
    await admin.management.accessKey.update(keyId, updated.name, undefined, undefined, undefined, undefined, [
      '127.0.0.1',
    ]),
    'accessKey.update',
  );
  assert.deepEqual(again.permittedIps, ['127.0.0.1']);
  assert.equal(again.description, 'second', 'not sent, unchanged');
  assert.deepEqual(again.roleNames, [role]);

  const raw = expectOk(
    await machine.accessKey.exchange(created.cleartext, { customClaims: { job: 'nightly' }, selectedTenant: tenantId }),
    'accessKey.exchange',
  );
  recordSecret('sessionJwt', raw.sessionJwt);
  assert.deepEqual(Object.keys(raw).sort(), ['expiration', 'keyId', 'sessionJwt']);
  assert.equal(raw.keyId, keyId);
  const validated = await machine.validateSession(raw.sessionJwt);
  assert.equal(validated.token.exp, raw.expiration);
  assert.equal(validated.token.team, 'ops');
  assert.deepEqual(validated.token.nsec, { job: 'nightly' }, "the caller's claims, apart from the key's");
  assert.equal(validated.token.dct, tenantId);
});
