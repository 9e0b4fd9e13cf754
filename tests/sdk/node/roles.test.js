// Role management through the official Node SDK (@descope/node-sdk 2.13.0), and how roles show
// on users: the permissions they grant, renames and deletions.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, makeClient, uid, expectOk, expectError, sorted } from './harness.js';

/** @type {ReturnType<typeof makeClient>['management']} */
let m;
useServer(() => {
  m = makeClient().management;
});

async function newPermission(name = `perm-${uid()}`) {
  expectOk(await m.permission.create(name, `permission ${name}`), `permission.create(${name})`);
  return name;
}

async function newRole(name = `role-${uid()}`, permissionNames = [], tenantId) {
  expectOk(
    await m.role.create(name, `role ${name}`, permissionNames, tenantId),
    `role.create(${name})`,
  );
  return name;
}

async function newTenant() {
  const id = `tenant-${uid()}`;
  expectOk(await m.tenant.createWithId(id, `Tenant ${id}`), `tenant.createWithId(${id})`);
  return id;
}

async function allRoles() {
  const roles = expectOk(await m.role.loadAll(), 'role.loadAll');
  assert.ok(Array.isArray(roles), 'loadAll answers an array');
  return roles;
}

async function findRole(name, tenantId) {
  return (await allRoles()).find((r) => r.name === name && (r.tenantId || undefined) === tenantId);
}

async function loadUser(loginIdOrUserId) {
  return expectOk(await m.user.load(loginIdOrUserId), `user.load(${loginIdOrUserId})`);
}

test('create then loadAll answers the role with its description and permissions', async () => {
  const p = await newPermission();
  const name = `role-${uid()}`;
  expectOk(await m.role.create(name, 'Can do things', [p]), 'role.create');
  const r = await findRole(name);
  assert.ok(r, `loadAll lists ${name}`);
  assert.equal(r.description, 'Can do things');
  assert.deepEqual(r.permissionNames, [p]);
  assert.equal(typeof r.createdTime, 'number');
  assert.ok(!r.tenantId, 'a project-level role has no tenantId');
});

test('creating a role whose name is taken is refused', async () => {
  const name = await newRole();
  expectError(await m.role.create(name, 'again'), null);
});

test('a role can be scoped to a tenant', async () => {
  const t = await newTenant();
  const name = `tenant-role-${uid()}`;
  expectOk(await m.role.create(name, 'tenant scoped', [], t), 'role.create in tenant');
  const r = await findRole(name, t);
  assert.ok(r, 'loadAll lists the tenant role');
  assert.equal(r.tenantId, t);
});

test('update renames the role and replaces description and permissions', async () => {
  const [p1, p2] = [await newPermission(), await newPermission()];
  const name = await newRole(undefined, [p1]);
  const newName = `renamed-${uid()}`;
  expectOk(await m.role.update(name, newName, 'new description', [p2]), 'role.update');
  assert.equal(await findRole(name), undefined, 'the old name is gone');
  const r = await findRole(newName);
  assert.ok(r, 'the new name is listed');
  assert.equal(r.description, 'new description');
  assert.deepEqual(r.permissionNames, [p2]);
});

test('update of an unknown role is refused', async () => {
  expectError(await m.role.update(`no-such-role-${uid()}`, `x-${uid()}`), null);
});

test('delete removes the role', async () => {
  const name = await newRole();
  expectOk(await m.role.delete(name), 'role.delete');
  assert.equal(await findRole(name), undefined);
});

test('updateWithId and deleteWithId address a role by the id loadAll answers', async () => {
  const name = await newRole();
  const r = await findRole(name);
  assert.ok(r, 'loadAll lists the role');
  assert.equal(typeof r.id, 'string', 'loadAll answers the role id');
  const newName = `by-id-${uid()}`;
  expectOk(await m.role.updateWithId(r.id, newName, 'by id'), 'role.updateWithId');
  const renamed = await findRole(newName);
  assert.equal(renamed?.id, r.id, 'renaming keeps the id');
  assert.equal(renamed.description, 'by id');
  expectOk(await m.role.deleteWithId(r.id), 'role.deleteWithId');
  assert.equal(await findRole(newName), undefined);
});

test('search filters by roleNames, roleNameLike, permissionNames and tenantIds', async () => {
  const marker = uid();
  const p = await newPermission();
  const t = await newTenant();
  const a = await newRole(`alpha-${marker}`, [p]);
  const b = await newRole(`beta-${marker}`);
  const c = await newRole(`gamma-${marker}`, [], t);

  const names = (roles) => sorted(roles.map((r) => r.name));
  assert.deepEqual(names(expectOk(await m.role.search({ roleNames: [a] }), 'by roleNames')), [a]);
  assert.deepEqual(
    names(expectOk(await m.role.search({ roleNameLike: `BETA-${marker}` }), 'by roleNameLike')),
    [b],
    'roleNameLike is a case-insensitive substring match',
  );
  assert.deepEqual(
    names(expectOk(await m.role.search({ permissionNames: [p] }), 'by permissionNames')),
    [a],
  );
  assert.deepEqual(
    names(expectOk(await m.role.search({ tenantIds: [t] }), 'by tenantIds')),
    [c],
  );
  assert.deepEqual(
    names(
      expectOk(
        await m.role.search({ tenantIds: [t], roleNameLike: marker, includeProjectRoles: true }),
        'tenant and project roles',
      ),
    ),
    sorted([a, b, c]),
  );
});

test("a user's roles grant their permissions, shown in userTenants[].permissions", async () => {
  const [p1, p2, p3] = [await newPermission(), await newPermission(), await newPermission()];
  const r1 = await newRole(undefined, [p1, p2]);
  const r2 = await newRole(undefined, [p3]);
  const t = await newTenant();
  const loginId = `perm-user-${uid()}`;
  const u = expectOk(
    await m.user.create(loginId, { roles: [r2], userTenants: [{ tenantId: t, roleNames: [r1] }] }),
    'user.create',
  );
  const ut = u.userTenants.find((x) => x.tenantId === t);
  assert.ok(ut, 'the user is in the tenant');
  assert.deepEqual(ut.roleNames, [r1]);
  assert.deepEqual(sorted(ut.permissions), sorted([p1, p2]));
  const loaded = (await loadUser(loginId)).userTenants.find((x) => x.tenantId === t);
  assert.deepEqual(sorted(loaded.permissions), sorted([p1, p2]));

  // A change of the role's permissions shows on the user.
  expectOk(await m.role.update(r1, r1, 'now one permission', [p3]), 'role.update');
  const after = (await loadUser(loginId)).userTenants.find((x) => x.tenantId === t);
  assert.deepEqual(after.permissions, [p3]);
});

test('renaming a role renames it on its users', async () => {
  const r = await newRole();
  const t = await newTenant();
  const loginId = `rename-${uid()}`;
  expectOk(
    await m.user.create(loginId, { roles: [r], userTenants: [{ tenantId: t, roleNames: [r] }] }),
  );
  const newName = `renamed-${uid()}`;
  expectOk(await m.role.update(r, newName), 'role.update');
  const u = await loadUser(loginId);
  assert.deepEqual(u.roleNames, [newName]);
  assert.deepEqual(u.userTenants.find((x) => x.tenantId === t).roleNames, [newName]);
});

test('deleting a role removes it from its users', async () => {
  const [keep, gone] = [await newRole(), await newRole()];
  const t = await newTenant();
  const loginId = `role-del-${uid()}`;
  expectOk(
    await m.user.create(loginId, {
      roles: [keep, gone],
      userTenants: [{ tenantId: t, roleNames: [gone, keep] }],
    }),
  );
  expectOk(await m.role.delete(gone), 'role.delete');
  const u = await loadUser(loginId);
  assert.deepEqual(u.roleNames, [keep]);
  assert.deepEqual(u.userTenants.find((x) => x.tenantId === t).roleNames, [keep]);
  const found = expectOk(await m.user.search({ roles: [gone] }), 'search deleted role');
  assert.equal(found.total, 0);
});
