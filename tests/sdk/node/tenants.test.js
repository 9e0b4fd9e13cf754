// Tenant management through the official Node SDK (@descope/node-sdk 2.13.0), and the tenant
// side of users (userTenants[].tenantName, removal on tenant deletion).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, makeClient, uid, expectOk, expectError, sorted } from './harness.js';

/** @type {ReturnType<typeof makeClient>['management']} */
let m;
useServer(() => {
  m = makeClient().management;
});

async function newTenantWithId(name = `Tenant ${uid()}`, domains) {
  const id = `tenant-${uid()}`;
  expectOk(await m.tenant.createWithId(id, name, domains), `tenant.createWithId(${id})`);
  return { id, name };
}

async function loadTenant(id) {
  return expectOk(await m.tenant.load(id), `tenant.load(${id})`);
}

async function loadUser(loginIdOrUserId) {
  return expectOk(await m.user.load(loginIdOrUserId), `user.load(${loginIdOrUserId})`);
}

test('create generates an id, and load answers the tenant', async () => {
  const name = `Acme ${uid()}`;
  const domain = `acme-${uid()}.example.com`;
  const before = Math.floor(Date.now() / 1000);
  const created = expectOk(await m.tenant.create(name, [domain]), 'tenant.create');
  assert.equal(typeof created.id, 'string');
  assert.ok(created.id.length > 0, 'create answers the new id');

  const t = await loadTenant(created.id);
  assert.equal(t.id, created.id);
  assert.equal(t.name, name);
  assert.deepEqual(t.selfProvisioningDomains, [domain]);
  assert.equal(typeof t.createdTime, 'number');
  assert.ok(
    t.createdTime >= before - 5 && t.createdTime <= Math.floor(Date.now() / 1000) + 5,
    `createdTime is in Unix seconds (got ${t.createdTime})`,
  );
});

test('createWithId uses the given id', async () => {
  const id = `my-tenant-${uid()}`;
  const name = `Custom ${uid()}`;
  expectOk(await m.tenant.createWithId(id, name, []), 'tenant.createWithId');
  const t = await loadTenant(id);
  assert.equal(t.id, id);
  assert.equal(t.name, name);
  assert.deepEqual(t.selfProvisioningDomains ?? [], []);
});

test('createWithId with an id already taken is refused', async () => {
  const t = await newTenantWithId();
  expectError(await m.tenant.createWithId(t.id, `Other ${uid()}`), null);
  assert.equal((await loadTenant(t.id)).name, t.name, 'the existing tenant is untouched');
});

test('create stores enforceSSO, disabled and custom attributes', async () => {
  const name = `Flags ${uid()}`;
  const created = expectOk(
    await m.tenant.create(name, [], { plan: 'gold', seats: 5 }, true, true),
    'tenant.create with flags',
  );
  const t = await loadTenant(created.id);
  assert.equal(t.enforceSSO, true);
  assert.equal(t.disabled, true);
  assert.deepEqual(t.customAttributes, { plan: 'gold', seats: 5 });
});

test('update replaces name, domains, attributes and flags', async () => {
  const t = await newTenantWithId(`Before ${uid()}`, [`before-${uid()}.example.com`]);
  const name = `After ${uid()}`;
  const domain = `after-${uid()}.example.com`;
  expectOk(await m.tenant.update(t.id, name, [domain], { plan: 'silver' }, true, false), 'update');
  const loaded = await loadTenant(t.id);
  assert.equal(loaded.name, name);
  assert.deepEqual(loaded.selfProvisioningDomains, [domain]);
  assert.deepEqual(loaded.customAttributes, { plan: 'silver' });
  assert.equal(loaded.enforceSSO, true);
  assert.equal(loaded.disabled ?? false, false);
});

test('update of an unknown tenant is refused', async () => {
  expectError(await m.tenant.update(`no-such-tenant-${uid()}`, 'Nobody'), null);
});

test('delete removes the tenant', async () => {
  const t = await newTenantWithId();
  expectOk(await m.tenant.delete(t.id), 'tenant.delete');
  expectError(await m.tenant.load(t.id), null, undefined, 'load after delete');
  const all = expectOk(await m.tenant.loadAll(), 'loadAll');
  assert.ok(!all.some((x) => x.id === t.id), 'loadAll no longer lists it');
});

test('load of an unknown tenant is refused', async () => {
  expectError(await m.tenant.load(`no-such-tenant-${uid()}`), null);
});

test('loadAll lists every tenant with its name', async () => {
  const a = await newTenantWithId();
  const b = await newTenantWithId();
  const all = expectOk(await m.tenant.loadAll(), 'loadAll');
  assert.ok(Array.isArray(all));
  for (const t of [a, b]) {
    const found = all.find((x) => x.id === t.id);
    assert.ok(found, `loadAll lists ${t.id}`);
    assert.equal(found.name, t.name);
  }
});

test('searchAll filters by ids, names, self-provisioning domains and custom attributes', async () => {
  const domain = `search-${uid()}.example.com`;
  const a = await newTenantWithId(`Search A ${uid()}`, [domain]);
  const b = await newTenantWithId(`Search B ${uid()}`);
  const attrValue = `v-${uid()}`;
  const c = expectOk(await m.tenant.create(`Search C ${uid()}`, [], { label: attrValue }), 'create C');

  const ids = (list) => sorted(list.map((t) => t.id));
  assert.deepEqual(ids(expectOk(await m.tenant.searchAll([a.id, b.id]), 'by ids')), sorted([a.id, b.id]));
  assert.deepEqual(ids(expectOk(await m.tenant.searchAll(undefined, [b.name]), 'by names')), [b.id]);
  assert.deepEqual(
    ids(expectOk(await m.tenant.searchAll(undefined, undefined, [domain]), 'by domains')),
    [a.id],
  );
  assert.deepEqual(
    ids(
      expectOk(
        await m.tenant.searchAll(undefined, undefined, undefined, { label: attrValue }),
        'by custom attributes',
      ),
    ),
    [c.id],
  );
  assert.deepEqual(
    ids(expectOk(await m.tenant.searchAll([a.id], [b.name]), 'ids AND names')),
    [],
    'filters combine with AND',
  );
});

test("a user's userTenants carry the tenant's current name", async () => {
  const t = await newTenantWithId(`Named ${uid()}`);
  const loginId = `member-${uid()}`;
  const u = expectOk(
    await m.user.create(loginId, { userTenants: [{ tenantId: t.id, roleNames: [] }] }),
    'user.create',
  );
  assert.equal(u.userTenants.length, 1);
  assert.equal(u.userTenants[0].tenantId, t.id);
  assert.equal(u.userTenants[0].tenantName, t.name);
  assert.equal((await loadUser(loginId)).userTenants[0].tenantName, t.name);

  const renamed = `Renamed ${uid()}`;
  expectOk(await m.tenant.update(t.id, renamed), 'tenant.update');
  assert.equal((await loadUser(loginId)).userTenants[0].tenantName, renamed);
});

test('a user cannot be put in a tenant that does not exist', async () => {
  const loginId = `orphan-${uid()}`;
  expectError(
    await m.user.create(loginId, { userTenants: [{ tenantId: `no-such-tenant-${uid()}`, roleNames: [] }] }),
    null,
  );
  expectError(await m.user.load(loginId), 'E112102', 400, 'the user was not created');
});

test('deleting a tenant removes it from its users', async () => {
  const t = await newTenantWithId();
  const other = await newTenantWithId();
  const loginId = `member-${uid()}`;
  expectOk(
    await m.user.create(loginId, {
      userTenants: [
        { tenantId: t.id, roleNames: [] },
        { tenantId: other.id, roleNames: [] },
      ],
    }),
  );
  expectOk(await m.tenant.delete(t.id), 'tenant.delete');
  const u = await loadUser(loginId);
  assert.deepEqual(
    u.userTenants.map((x) => x.tenantId),
    [other.id],
  );
  const found = expectOk(await m.user.search({ tenantIds: [t.id] }), 'search deleted tenant');
  assert.equal(found.total, 0);
});

test('delete with cascade also deletes the users that belonged only to that tenant', async () => {
  const t = await newTenantWithId();
  const other = await newTenantWithId();
  const onlyHere = `only-${uid()}`;
  const alsoElsewhere = `also-${uid()}`;
  expectOk(await m.user.create(onlyHere, { userTenants: [{ tenantId: t.id, roleNames: [] }] }));
  expectOk(
    await m.user.create(alsoElsewhere, {
      userTenants: [
        { tenantId: t.id, roleNames: [] },
        { tenantId: other.id, roleNames: [] },
      ],
    }),
  );
  expectOk(await m.tenant.delete(t.id, true), 'tenant.delete cascade');
  expectError(await m.user.load(onlyHere), 'E112102', 400, 'user only in the tenant is deleted');
  assert.deepEqual(
    (await loadUser(alsoElsewhere)).userTenants.map((x) => x.tenantId),
    [other.id],
  );
});
