// Permission management through the official Node SDK (@descope/node-sdk 2.13.0), and how
// permission changes show on roles and users.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, makeClient, uid, expectOk, expectError } from './harness.js';

/** @type {ReturnType<typeof makeClient>['management']} */
let m;
useServer(() => {
  m = makeClient().management;
});

async function allPermissions() {
  const perms = expectOk(await m.permission.loadAll(), 'permission.loadAll');
  assert.ok(Array.isArray(perms), 'loadAll answers an array');
  return perms;
}

async function findPermission(name) {
  return (await allPermissions()).find((p) => p.name === name);
}

async function findRole(name) {
  const roles = expectOk(await m.role.loadAll(), 'role.loadAll');
  return roles.find((r) => r.name === name);
}

test('create then loadAll answers the permission', async () => {
  const name = `perm-${uid()}`;
  expectOk(await m.permission.create(name, 'Read the reports'), 'permission.create');
  const p = await findPermission(name);
  assert.ok(p, `loadAll lists ${name}`);
  assert.equal(p.description, 'Read the reports');
  assert.equal(p.systemDefault, false);
});

test('create without a description', async () => {
  const name = `perm-${uid()}`;
  expectOk(await m.permission.create(name), 'permission.create');
  const p = await findPermission(name);
  assert.ok(p, `loadAll lists ${name}`);
  assert.equal(p.description ?? '', '');
});

test('creating a permission whose name is taken is refused', async () => {
  const name = `perm-${uid()}`;
  expectOk(await m.permission.create(name), 'permission.create');
  expectError(await m.permission.create(name, 'again'), null);
});

test('update renames the permission and replaces its description', async () => {
  const name = `perm-${uid()}`;
  expectOk(await m.permission.create(name, 'old'), 'permission.create');
  const newName = `perm-renamed-${uid()}`;
  expectOk(await m.permission.update(name, newName, 'new'), 'permission.update');
  assert.equal(await findPermission(name), undefined, 'the old name is gone');
  const p = await findPermission(newName);
  assert.ok(p, 'the new name is listed');
  assert.equal(p.description, 'new');
});

test('update of an unknown permission is refused', async () => {
  expectError(await m.permission.update(`no-such-perm-${uid()}`, `x-${uid()}`), null);
});

test('delete removes the permission', async () => {
  const name = `perm-${uid()}`;
  expectOk(await m.permission.create(name), 'permission.create');
  expectOk(await m.permission.delete(name), 'permission.delete');
  assert.equal(await findPermission(name), undefined);
});

test('a role cannot grant a permission that does not exist', async () => {
  const role = `role-${uid()}`;
  expectError(await m.role.create(role, 'bad', [`no-such-perm-${uid()}`]), null);
  assert.equal(await findRole(role), undefined, 'the role was not created');
});

test('renaming a permission renames it in the roles that grant it and on users', async () => {
  const perm = `perm-${uid()}`;
  expectOk(await m.permission.create(perm), 'permission.create');
  const role = `role-${uid()}`;
  expectOk(await m.role.create(role, '', [perm]), 'role.create');
  const tenant = `tenant-${uid()}`;
  expectOk(await m.tenant.createWithId(tenant, `T ${tenant}`), 'tenant.createWithId');
  const loginId = `u-${uid()}`;
  expectOk(await m.user.create(loginId, { userTenants: [{ tenantId: tenant, roleNames: [role] }] }));

  const renamed = `perm-renamed-${uid()}`;
  expectOk(await m.permission.update(perm, renamed), 'permission.update');
  assert.deepEqual((await findRole(role)).permissionNames, [renamed]);
  const u = expectOk(await m.user.load(loginId), 'user.load');
  assert.deepEqual(u.userTenants.find((x) => x.tenantId === tenant).permissions, [renamed]);
});

test('deleting a permission removes it from roles and from users', async () => {
  const [keep, gone] = [`perm-keep-${uid()}`, `perm-gone-${uid()}`];
  expectOk(await m.permission.create(keep), 'permission.create keep');
  expectOk(await m.permission.create(gone), 'permission.create gone');
  const role = `role-${uid()}`;
  expectOk(await m.role.create(role, '', [keep, gone]), 'role.create');
  const tenant = `tenant-${uid()}`;
  expectOk(await m.tenant.createWithId(tenant, `T ${tenant}`), 'tenant.createWithId');
  const loginId = `u-${uid()}`;
  expectOk(await m.user.create(loginId, { userTenants: [{ tenantId: tenant, roleNames: [role] }] }));

  expectOk(await m.permission.delete(gone), 'permission.delete');
  assert.deepEqual((await findRole(role)).permissionNames, [keep]);
  const u = expectOk(await m.user.load(loginId), 'user.load');
  assert.deepEqual(u.userTenants.find((x) => x.tenantId === tenant).permissions, [keep]);
});
