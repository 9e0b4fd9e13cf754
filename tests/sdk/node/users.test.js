// User management through the official Node SDK (@descope/node-sdk 2.13.0): every
// `management.user` method of the brief, against a real idvault. Each test makes its own users
// with unique login ids, so tests do not depend on each other or on their order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useServer,
  makeClient,
  uid,
  uniqueEmail,
  uniquePhone,
  expectOk,
  expectError,
  mgmtFetch,
  sorted,
} from './harness.js';

/** @type {ReturnType<typeof makeClient>['management']} */
let m;
useServer(() => {
  m = makeClient().management;
});

/** Creates a user with the options form of `create` and returns the answered user. */
async function newUser(options = {}, loginId = `user-${uid()}`) {
  return expectOk(await m.user.create(loginId, options), `user.create(${loginId})`);
}

async function newRole(name = `role-${uid()}`, permissionNames) {
  expectOk(await m.role.create(name, `role ${name}`, permissionNames), `role.create(${name})`);
  return name;
}

async function newTenant(name = `Tenant ${uid()}`) {
  const id = `tenant-${uid()}`;
  expectOk(await m.tenant.createWithId(id, name), `tenant.createWithId(${id})`);
  return { id, name };
}

async function load(loginIdOrUserId) {
  return expectOk(await m.user.load(loginIdOrUserId), `user.load(${loginIdOrUserId})`);
}

async function searchLoginIds(request) {
  const data = expectOk(await m.user.search(request), `user.search(${JSON.stringify(request)})`);
  assert.ok(Array.isArray(data.users), 'search answers a users array');
  assert.equal(typeof data.total, 'number', 'search answers a numeric total');
  return sorted(data.users.map((u) => u.loginIds[0]));
}

function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

// ---------------------------------------------------------------------------------------------
// create / createTestUser / invite / batches

test('create (options form) stores every field and answers the user', async () => {
  const loginId = `create-${uid()}`;
  const extra = `alt-${uid()}`;
  const email = uniqueEmail('dana');
  const phone = uniquePhone();
  const app = `app-${uid()}`;
  const before = nowSeconds();
  const u = expectOk(
    await m.user.create(loginId, {
      email,
      phone,
      displayName: 'Dana Scully',
      givenName: 'Dana',
      middleName: 'Katherine',
      familyName: 'Scully',
      picture: 'https://example.com/dana.png',
      verifiedEmail: true,
      verifiedPhone: true,
      additionalLoginIds: [extra],
      ssoAppIds: [app],
    }),
  );
  assert.equal(typeof u.userId, 'string');
  assert.ok(u.userId.length > 0, 'userId is set');
  assert.deepEqual(u.loginIds, [loginId, extra]);
  assert.equal(u.email, email);
  assert.equal(u.phone, phone);
  assert.equal(u.name, 'Dana Scully');
  assert.equal(u.givenName, 'Dana');
  assert.equal(u.middleName, 'Katherine');
  assert.equal(u.familyName, 'Scully');
  assert.equal(u.picture, 'https://example.com/dana.png');
  assert.equal(u.verifiedEmail, true);
  assert.equal(u.verifiedPhone, true);
  assert.equal(u.status, 'enabled');
  assert.equal(u.test, false);
  assert.deepEqual(u.ssoAppIds, [app]);
  assert.ok(
    u.createdTime >= before - 5 && u.createdTime <= nowSeconds() + 5,
    `createdTime is in Unix seconds (got ${u.createdTime})`,
  );

  const loaded = await load(loginId);
  for (const key of ['userId', 'loginIds', 'email', 'phone', 'name', 'givenName', 'middleName']) {
    assert.deepEqual(loaded[key], u[key], `load answers the same ${key}`);
  }
  assert.equal((await load(extra)).userId, u.userId, 'an additional login id loads the user');
});

test("the user object has the fields of the SDK's UserResponse type", async () => {
  // core-js-sdk's UserResponse declares TOTP, SAML, SCIM, password (booleans) and OAuth (a map),
  // with those exact spellings, as hosted Descope answers them.
  const u = await newUser({ email: uniqueEmail(), verifiedEmail: true });
  for (const key of ['TOTP', 'SAML', 'SCIM', 'password']) {
    assert.equal(typeof u[key], 'boolean', `user.${key} is a boolean (keys: ${Object.keys(u)})`);
  }
  assert.equal(typeof u.OAuth, 'object', `user.OAuth is an object (keys: ${Object.keys(u)})`);
  assert.ok(Array.isArray(u.roleNames), 'roleNames is an array');
  assert.ok(Array.isArray(u.userTenants), 'userTenants is an array');
  assert.ok(Array.isArray(u.ssoAppIds), 'ssoAppIds is an array');
  assert.equal(typeof u.customAttributes, 'object');
  assert.equal(typeof u.status, 'string');
  assert.equal(typeof u.test, 'boolean');
  assert.equal(typeof u.createdTime, 'number');
});

test('create (legacy positional form) sends the same fields', async () => {
  const loginId = `legacy-${uid()}`;
  const email = uniqueEmail('legacy');
  const phone = uniquePhone();
  const u = expectOk(
    await m.user.create(
      loginId,
      email,
      phone,
      'Fox Mulder',
      undefined, // roles
      undefined, // userTenants
      undefined, // customAttributes
      'https://example.com/fox.png',
      true, // verifiedEmail
      false, // verifiedPhone
      'Fox',
      'William',
      'Mulder',
    ),
  );
  assert.deepEqual(u.loginIds, [loginId]);
  assert.equal(u.email, email);
  assert.equal(u.phone, phone);
  assert.equal(u.name, 'Fox Mulder');
  assert.equal(u.givenName, 'Fox');
  assert.equal(u.middleName, 'William');
  assert.equal(u.familyName, 'Mulder');
  assert.equal(u.picture, 'https://example.com/fox.png');
  assert.equal(u.verifiedEmail, true);
  assert.equal(u.verifiedPhone, false);
});

test('createTestUser makes a test user, found only by test-user searches', async () => {
  const loginId = `test-${uid()}`;
  const regular = await newUser({ displayName: 'Regular' });
  const t = expectOk(
    await m.user.createTestUser(loginId, { email: uniqueEmail('test'), displayName: 'Tess' }),
  );
  assert.equal(t.test, true);
  assert.equal(t.name, 'Tess');
  assert.equal((await load(loginId)).test, true);

  assert.deepEqual(await searchLoginIds({ loginIds: [loginId] }), [], 'excluded by default');
  assert.deepEqual(await searchLoginIds({ loginIds: [loginId], withTestUser: true }), [loginId]);
  assert.deepEqual(
    await searchLoginIds({ loginIds: [loginId, regular.loginIds[0]], testUsersOnly: true }),
    [loginId],
  );

  const found = expectOk(
    await m.user.searchTestUsers({ loginIds: [loginId, regular.loginIds[0]] }),
    'searchTestUsers',
  );
  assert.deepEqual(
    found.users.map((u) => u.loginIds[0]),
    [loginId],
  );
  assert.equal(found.total, 1);
});

test('invite creates an invited user', async () => {
  const loginId = uniqueEmail('invitee');
  const u = expectOk(
    await m.user.invite(loginId, {
      email: loginId,
      displayName: 'Invitee',
      inviteUrl: 'https://example.com/invite',
      sendMail: false,
    }),
  );
  assert.deepEqual(u.loginIds, [loginId]);
  assert.equal(u.email, loginId);
  assert.equal(u.status, 'invited');
  assert.equal((await load(loginId)).status, 'invited');
});

test('invite with the user id of an existing user re-invites that user', async () => {
  // SDK 2.13.0: "When loginIdOrUserId is a userId, the user must already exist — no new user is
  // created, and the invite is sent to the existing user."
  const email = uniqueEmail('reinvite');
  const u = await newUser({ email });
  const again = expectOk(await m.user.invite(u.userId, { email }), 'user.invite(userId)');
  assert.equal(again.userId, u.userId, 'the existing user is answered');
  assert.deepEqual(again.loginIds, u.loginIds, 'no login id was added');
  const found = expectOk(await m.user.search({ loginIds: [u.userId] }), 'search');
  assert.equal(found.total, 0, 'no user was created with the user id as its login id');
});

test('createBatch creates every user and reports them in createdUsers', async () => {
  const ids = [`batch-${uid()}`, `batch-${uid()}`, `batch-${uid()}`];
  const emails = ids.map(() => uniqueEmail('batch'));
  const data = expectOk(
    await m.user.createBatch([
      { loginIdOrUserId: ids[0], email: emails[0], displayName: 'Batch One', verifiedEmail: true },
      { loginId: ids[1], email: emails[1], phone: uniquePhone(), displayName: 'Batch Two' },
      { loginIdOrUserId: ids[2], email: emails[2], status: 'disabled' },
    ]),
  );
  assert.equal(data.createdUsers.length, 3, JSON.stringify(data));
  assert.deepEqual(data.failedUsers ?? [], []);
  assert.deepEqual(sorted(data.createdUsers.map((u) => u.loginIds[0])), sorted(ids));
  const one = await load(ids[0]);
  assert.equal(one.email, emails[0]);
  assert.equal(one.name, 'Batch One');
  assert.equal(one.verifiedEmail, true);
  assert.equal((await load(ids[1])).name, 'Batch Two');
  assert.equal((await load(ids[2])).status, 'disabled', 'the batch user type accepts a status');
});

test('createBatch reports a duplicate in failedUsers and still creates the others', async () => {
  const taken = await newUser({ displayName: 'Already here' });
  const fresh = [`batch-ok-${uid()}`, `batch-ok-${uid()}`];
  const data = expectOk(
    await m.user.createBatch([
      { loginIdOrUserId: fresh[0] },
      { loginIdOrUserId: taken.loginIds[0], displayName: 'Duplicate' },
      { loginIdOrUserId: fresh[1] },
    ]),
  );
  assert.deepEqual(sorted(data.createdUsers.map((u) => u.loginIds[0])), sorted(fresh));
  assert.equal(data.failedUsers.length, 1, JSON.stringify(data.failedUsers));
  assert.equal(typeof data.failedUsers[0].failure, 'string');
  assert.ok(data.failedUsers[0].failure.length > 0, 'the failure says why');
  assert.deepEqual(data.failedUsers[0].user.loginIds, [taken.loginIds[0]]);
  await load(fresh[0]);
  await load(fresh[1]);
  assert.equal((await load(taken.loginIds[0])).name, 'Already here', 'the existing user is untouched');
});

test('inviteBatch creates invited users', async () => {
  const ids = [uniqueEmail('ib'), uniqueEmail('ib')];
  const data = expectOk(
    await m.user.inviteBatch(
      ids.map((id) => ({ loginIdOrUserId: id, email: id })),
      'https://example.com/invite',
      false,
      false,
    ),
  );
  assert.deepEqual(sorted(data.createdUsers.map((u) => u.loginIds[0])), sorted(ids));
  assert.deepEqual(data.failedUsers ?? [], []);
  for (const id of ids) assert.equal((await load(id)).status, 'invited');
});

// ---------------------------------------------------------------------------------------------
// load

test('load and loadByUserId find a user by login id or by user id', async () => {
  const u = await newUser({ displayName: 'Loadable' });
  const byLogin = await load(u.loginIds[0]);
  assert.equal(byLogin.userId, u.userId);
  const byId = expectOk(await m.user.loadByUserId(u.userId));
  assert.deepEqual(byId.loginIds, u.loginIds);
  assert.equal(byId.name, 'Loadable');
  // load() takes a loginIdOrUserId.
  assert.deepEqual((await load(u.userId)).loginIds, u.loginIds);
});

test('loadUsers answers the users of the given ids and skips unknown ones', async () => {
  const a = await newUser({ displayName: 'A' });
  const b = await newUser({ displayName: 'B' });
  const users = expectOk(await m.user.loadUsers([a.userId, 'U-no-such-user', b.userId]));
  assert.deepEqual(sorted(users.map((u) => u.userId)), sorted([a.userId, b.userId]));
});

test('loadUsers leaves out disabled users unless includeInvalidUsers is set', async () => {
  const ids = [`lu-${uid()}`, `lu-${uid()}`];
  const created = expectOk(
    await m.user.createBatch([
      { loginIdOrUserId: ids[0], status: 'enabled' },
      { loginIdOrUserId: ids[1], status: 'disabled' },
    ]),
  );
  const [a, b] = ids.map((id) => created.createdUsers.find((u) => u.loginIds[0] === id));
  assert.equal(b.status, 'disabled');
  const valid = expectOk(await m.user.loadUsers([a.userId, b.userId]));
  assert.deepEqual(
    valid.map((u) => u.userId),
    [a.userId],
    'a disabled user is left out by default',
  );
  const all = expectOk(await m.user.loadUsers([a.userId, b.userId], true));
  assert.deepEqual(sorted(all.map((u) => u.userId)), sorted([a.userId, b.userId]));
});

// ---------------------------------------------------------------------------------------------
// search

test('search by loginIds and by userIds', async () => {
  const [a, b, c] = [await newUser(), await newUser(), await newUser()];
  assert.deepEqual(
    await searchLoginIds({ loginIds: [a.loginIds[0], b.loginIds[0]] }),
    sorted([a.loginIds[0], b.loginIds[0]]),
  );
  const data = expectOk(await m.user.search({ userIds: [c.userId] }));
  assert.deepEqual(
    data.users.map((u) => u.userId),
    [c.userId],
  );
  assert.equal(data.total, 1);
});

test('search by emails (case-insensitive) and by phones', async () => {
  const email = uniqueEmail('Mixed');
  const phone = uniquePhone();
  const a = await newUser({ email });
  const b = await newUser({ phone });
  assert.deepEqual(await searchLoginIds({ emails: [email.toUpperCase()] }), [a.loginIds[0]]);
  assert.deepEqual(await searchLoginIds({ phones: [phone] }), [b.loginIds[0]]);
});

test('search by text matches name, email and login id', async () => {
  const marker = uid();
  const a = await newUser({ displayName: `Named ${marker}` });
  const b = await newUser({ email: `mail-${marker}@example.com` });
  const c = await newUser({}, `login-${marker}`);
  assert.deepEqual(
    await searchLoginIds({ text: marker }),
    sorted([a.loginIds[0], b.loginIds[0], c.loginIds[0]]),
  );
  assert.deepEqual(await searchLoginIds({ text: `named ${marker}`.toUpperCase() }), [a.loginIds[0]]);
});

test('search text is literal: % and _ are not wildcards', async () => {
  const marker = uid();
  const u = await newUser({ displayName: `${marker}-abc-zz` });
  assert.deepEqual(await searchLoginIds({ text: `${marker}-abc` }), [u.loginIds[0]]);
  assert.deepEqual(await searchLoginIds({ text: `${marker}%zz` }), []);
  assert.deepEqual(await searchLoginIds({ text: `${marker}_abc` }), []);
});

test('search by statuses', async () => {
  const ids = [`st-${uid()}`, `st-${uid()}`];
  expectOk(
    await m.user.createBatch([
      { loginIdOrUserId: ids[0], status: 'enabled' },
      { loginIdOrUserId: ids[1], status: 'disabled' },
    ]),
  );
  assert.deepEqual(await searchLoginIds({ loginIds: ids, statuses: ['disabled'] }), [ids[1]]);
  assert.deepEqual(await searchLoginIds({ loginIds: ids, statuses: ['enabled'] }), [ids[0]]);
  assert.deepEqual(
    await searchLoginIds({ loginIds: ids, statuses: ['enabled', 'disabled'] }),
    sorted(ids),
  );
});

test('search by tenantIds', async () => {
  const t = await newTenant();
  const a = await newUser({ userTenants: [{ tenantId: t.id, roleNames: [] }] });
  const b = await newUser();
  assert.deepEqual(await searchLoginIds({ tenantIds: [t.id] }), [a.loginIds[0]]);
  assert.deepEqual(
    await searchLoginIds({ tenantIds: [t.id], loginIds: [b.loginIds[0]] }),
    [],
    'filters combine with AND',
  );
});

test('search by roles (sent as roleNames)', async () => {
  const role = await newRole();
  const a = await newUser({ roles: [role] });
  const b = await newUser();
  assert.deepEqual(await searchLoginIds({ roles: [role] }), [a.loginIds[0]]);
  assert.deepEqual(await searchLoginIds({ roles: [role], loginIds: [b.loginIds[0]] }), []);
});

test('search by customAttributes', async () => {
  const attr = `color${uid()}`;
  expectOk(
    await m.user.createCustomAttributes([{ name: attr, type: 1, displayName: 'Color' }]),
    'createCustomAttributes',
  );
  const a = await newUser({ customAttributes: { [attr]: 'blue' } });
  await newUser({ customAttributes: { [attr]: 'red' } });
  assert.deepEqual(await searchLoginIds({ customAttributes: { [attr]: 'blue' } }), [a.loginIds[0]]);
});

test('search by ssoAppIds', async () => {
  const app = `app-${uid()}`;
  const a = await newUser({ ssoAppIds: [app] });
  await newUser({ ssoAppIds: [`app-${uid()}`] });
  assert.deepEqual(await searchLoginIds({ ssoAppIds: [app] }), [a.loginIds[0]]);
});

test('search with sort orders the users', async () => {
  const marker = uid();
  const ids = [];
  for (const letter of ['b', 'c', 'a']) {
    ids.push(
      (await newUser({ email: `${letter}-${marker}@example.com`, displayName: `S ${marker}` }))
        .loginIds[0],
    );
  }
  const asc = expectOk(
    await m.user.search({ text: marker, sort: [{ field: 'email', desc: false }] }),
  );
  assert.deepEqual(
    asc.users.map((u) => u.email[0]),
    ['a', 'b', 'c'],
  );
  const desc = expectOk(await m.user.search({ text: marker, sort: [{ field: 'email', desc: true }] }));
  assert.deepEqual(
    desc.users.map((u) => u.email[0]),
    ['c', 'b', 'a'],
  );
});

test('search by creation and modification time bounds (epoch milliseconds)', async () => {
  const t0 = Date.now();
  const u = await newUser();
  const t1 = Date.now();
  const id = u.loginIds[0];
  const hour = 3_600_000;
  assert.deepEqual(
    await searchLoginIds({ loginIds: [id], fromCreatedTime: t0 - 5000, toCreatedTime: t1 + 5000 }),
    [id],
  );
  assert.deepEqual(await searchLoginIds({ loginIds: [id], fromCreatedTime: t1 + hour }), []);
  assert.deepEqual(await searchLoginIds({ loginIds: [id], toCreatedTime: t0 - hour }), []);
  assert.deepEqual(
    await searchLoginIds({ loginIds: [id], fromModifiedTime: t0 - 5000, toModifiedTime: t1 + 5000 }),
    [id],
  );
  assert.deepEqual(await searchLoginIds({ loginIds: [id], fromModifiedTime: t1 + hour }), []);
  assert.deepEqual(await searchLoginIds({ loginIds: [id], toModifiedTime: t0 - hour }), []);
});

test('search by tenantRoleNames and tenantRoleIds', async () => {
  const t = await newTenant();
  const r1 = await newRole();
  const r2 = await newRole();
  const only1 = await newUser({ userTenants: [{ tenantId: t.id, roleNames: [r1] }] });
  const only2 = await newUser({ userTenants: [{ tenantId: t.id, roleNames: [r2] }] });
  const both = await newUser({ userTenants: [{ tenantId: t.id, roleNames: [r1, r2] }] });
  await newUser({ roles: [r1] }); // r1 at project level, not in the tenant

  assert.deepEqual(
    await searchLoginIds({ tenantRoleNames: { [t.id]: { values: [r1] } } }),
    sorted([only1.loginIds[0], both.loginIds[0]]),
  );
  assert.deepEqual(
    await searchLoginIds({ tenantRoleNames: { [t.id]: { values: [r1, r2], and: true } } }),
    [both.loginIds[0]],
  );

  const roles = expectOk(await m.role.loadAll(), 'role.loadAll');
  const id2 = roles.find((r) => r.name === r2)?.id;
  assert.ok(id2, `role ${r2} has an id in loadAll`);
  assert.deepEqual(
    await searchLoginIds({ tenantRoleIds: { [t.id]: { values: [id2] } } }),
    sorted([only2.loginIds[0], both.loginIds[0]]),
  );
});

test('search by verifiedEmail and verifiedPhone', async () => {
  const a = await newUser({
    email: uniqueEmail(),
    verifiedEmail: true,
    phone: uniquePhone(),
    verifiedPhone: false,
  });
  const b = await newUser({
    email: uniqueEmail(),
    verifiedEmail: false,
    phone: uniquePhone(),
    verifiedPhone: true,
  });
  const ids = [a.loginIds[0], b.loginIds[0]];
  assert.deepEqual(await searchLoginIds({ loginIds: ids, verifiedEmail: true }), [ids[0]]);
  assert.deepEqual(await searchLoginIds({ loginIds: ids, verifiedEmail: false }), [ids[1]]);
  assert.deepEqual(await searchLoginIds({ loginIds: ids, verifiedPhone: true }), [ids[1]]);
});

test('search pages with limit and page, and total counts every match', async () => {
  const marker = uid();
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await newUser({ displayName: `Pager ${marker} ${i}` })).loginIds[0]);
  const seen = [];
  for (const [page, size] of [
    [0, 2],
    [1, 2],
    [2, 1],
  ]) {
    const data = expectOk(await m.user.search({ text: marker, limit: 2, page }));
    assert.equal(data.users.length, size, `page ${page}`);
    assert.equal(data.total, 5, `total on page ${page}`);
    seen.push(...data.users.map((u) => u.loginIds[0]));
  }
  assert.deepEqual(sorted(seen), sorted(ids), 'the pages cover every user once');
});

test('searchAll (deprecated positional form) filters by emails', async () => {
  const email = uniqueEmail('sa');
  const u = await newUser({ email });
  const users = expectOk(
    await m.user.searchAll(undefined, undefined, 10, 0, false, false, undefined, undefined, [email]),
  );
  assert.deepEqual(
    users.map((x) => x.userId),
    [u.userId],
  );
});

// ---------------------------------------------------------------------------------------------
// update / patch

test('update replaces the whole user: fields left out are cleared', async () => {
  const u = await newUser({
    email: uniqueEmail(),
    phone: uniquePhone(),
    displayName: 'Before',
    givenName: 'Given',
    picture: 'https://example.com/before.png',
    verifiedEmail: true,
  });
  const newEmail = uniqueEmail('after');
  const updated = expectOk(
    await m.user.update(u.loginIds[0], { email: newEmail, displayName: 'After', verifiedEmail: true }),
  );
  assert.equal(updated.userId, u.userId);
  assert.equal(updated.email, newEmail);
  assert.equal(updated.name, 'After');
  assert.equal(updated.phone, '', 'phone was not given, so it is cleared');
  assert.equal(updated.givenName, '', 'givenName was not given, so it is cleared');
  assert.equal(updated.picture, '', 'picture was not given, so it is cleared');
  const loaded = await load(u.loginIds[0]);
  assert.equal(loaded.email, newEmail);
  assert.equal(loaded.phone, '');
  // update takes a loginIdOrUserId.
  expectOk(await m.user.update(u.userId, { displayName: 'By id' }), 'update by user id');
  assert.equal((await load(u.loginIds[0])).name, 'By id');
});

test('patch changes only the given fields', async () => {
  const email = uniqueEmail();
  const phone = uniquePhone();
  const u = await newUser({ email, phone, displayName: 'Patchy', verifiedEmail: true });
  const patched = expectOk(
    await m.user.patch(u.loginIds[0], { givenName: 'Pat', status: 'disabled' }),
  );
  assert.equal(patched.givenName, 'Pat');
  assert.equal(patched.status, 'disabled');
  assert.equal(patched.email, email);
  assert.equal(patched.phone, phone);
  assert.equal(patched.name, 'Patchy');
  const loaded = await load(u.userId);
  assert.equal(loaded.givenName, 'Pat');
  assert.equal(loaded.email, email);
  assert.equal(loaded.verifiedEmail, true);
});

test('patchBatch patches each user and reports the unknown ones in failedUsers', async () => {
  const a = await newUser({ displayName: 'A' });
  const b = await newUser({ displayName: 'B' });
  const phone = uniquePhone();
  const missing = `missing-${uid()}`;
  const data = expectOk(
    await m.user.patchBatch([
      { loginIdOrUserId: a.loginIds[0], displayName: 'A2' },
      { loginIdOrUserId: b.userId, phone },
      { loginIdOrUserId: missing, displayName: 'Nobody' },
    ]),
  );
  assert.deepEqual(sorted(data.patchedUsers.map((u) => u.userId)), sorted([a.userId, b.userId]));
  assert.equal(data.failedUsers.length, 1, JSON.stringify(data.failedUsers));
  assert.ok(data.failedUsers[0].failure.length > 0);
  assert.equal((await load(a.userId)).name, 'A2');
  const lb = await load(b.userId);
  assert.equal(lb.phone, phone);
  assert.equal(lb.name, 'B', 'patch keeps the other fields');
});

// ---------------------------------------------------------------------------------------------
// delete

test('delete removes the user; deleting again is not an error', async () => {
  const u = await newUser();
  expectOk(await m.user.delete(u.loginIds[0]), 'delete');
  expectError(await m.user.load(u.loginIds[0]), 'E112102', 400, 'load after delete');
  expectOk(await m.user.delete(u.loginIds[0]), 'delete again');
});

test('delete takes a user id too, and deleteByUserId deletes by user id', async () => {
  const a = await newUser();
  const b = await newUser();
  expectOk(await m.user.delete(a.userId), 'delete(userId)');
  expectError(await m.user.loadByUserId(a.userId), 'E112102', 400);
  expectOk(await m.user.deleteByUserId(b.userId), 'deleteByUserId');
  expectError(await m.user.loadByUserId(b.userId), 'E112102', 400);
});

test('deleteAllTestUsers removes the test users and keeps the others', async () => {
  const regular = await newUser();
  const testId = `t-${uid()}`;
  expectOk(await m.user.createTestUser(testId, {}));
  expectOk(await m.user.deleteAllTestUsers(), 'deleteAllTestUsers');
  expectError(await m.user.load(testId), 'E112102', 400);
  await load(regular.userId);
  const left = expectOk(await m.user.searchTestUsers({}));
  assert.equal(left.total, 0);
});

// ---------------------------------------------------------------------------------------------
// single-field updates

test('deactivate and activate change the status', async () => {
  const u = await newUser({ email: uniqueEmail(), verifiedEmail: true });
  assert.equal(u.status, 'enabled');
  assert.equal(expectOk(await m.user.deactivate(u.loginIds[0])).status, 'disabled');
  assert.equal((await load(u.userId)).status, 'disabled');
  assert.equal(expectOk(await m.user.activate(u.userId)).status, 'enabled');
  assert.equal((await load(u.userId)).status, 'enabled');
});

test('updateLoginId renames the login id; the old one no longer loads', async () => {
  const u = await newUser();
  const newId = `renamed-${uid()}`;
  const updated = expectOk(await m.user.updateLoginId(u.loginIds[0], newId));
  assert.deepEqual(updated.loginIds, [newId]);
  assert.equal((await load(newId)).userId, u.userId);
  expectError(await m.user.load(u.loginIds[0]), 'E112102', 400);
});

test("updateLoginId to another user's login id is refused", async () => {
  const a = await newUser();
  const b = await newUser();
  expectError(await m.user.updateLoginId(a.loginIds[0], b.loginIds[0]), null);
  assert.deepEqual((await load(a.userId)).loginIds, a.loginIds);
});

test('updateEmail and updatePhone set the value and its verified flag', async () => {
  const u = await newUser();
  const email = uniqueEmail('upd');
  const phone = uniquePhone();
  const e = expectOk(await m.user.updateEmail(u.loginIds[0], email, true));
  assert.equal(e.email, email);
  assert.equal(e.verifiedEmail, true);
  const p = expectOk(await m.user.updatePhone(u.userId, phone, false));
  assert.equal(p.phone, phone);
  assert.equal(p.verifiedPhone, false);
  const loaded = await load(u.userId);
  assert.equal(loaded.email, email);
  assert.equal(loaded.verifiedEmail, true);
  assert.equal(loaded.phone, phone);
});

test('updateDisplayName sets the display, given, middle and family names', async () => {
  const u = await newUser({ displayName: 'Old' });
  const r = expectOk(await m.user.updateDisplayName(u.loginIds[0], 'New Name', 'New', 'M', 'Name'));
  assert.equal(r.name, 'New Name');
  assert.equal(r.givenName, 'New');
  assert.equal(r.middleName, 'M');
  assert.equal(r.familyName, 'Name');
  assert.equal((await load(u.userId)).name, 'New Name');
});

test('updatePicture sets the picture', async () => {
  const u = await newUser();
  const r = expectOk(await m.user.updatePicture(u.loginIds[0], 'https://example.com/new.png'));
  assert.equal(r.picture, 'https://example.com/new.png');
  assert.equal((await load(u.userId)).picture, 'https://example.com/new.png');
});

test('updateCustomAttribute sets one attribute and keeps the others', async () => {
  const s = `nick${uid()}`;
  const n = `age${uid()}`;
  expectOk(
    await m.user.createCustomAttributes([
      { name: s, type: 1, displayName: 'Nick' },
      { name: n, type: 2, displayName: 'Age' },
    ]),
    'createCustomAttributes',
  );
  const u = await newUser({ customAttributes: { [s]: 'old', [n]: 30 } });
  const r = expectOk(await m.user.updateCustomAttribute(u.loginIds[0], s, 'new'));
  assert.equal(r.customAttributes[s], 'new');
  assert.equal(r.customAttributes[n], 30);
  assert.equal((await load(u.userId)).customAttributes[s], 'new');
});

// ---------------------------------------------------------------------------------------------
// roles, tenants, SSO apps

test('setRoles, addRoles and removeRoles manage project-level roles', async () => {
  const [r1, r2, r3] = [await newRole(), await newRole(), await newRole()];
  const u = await newUser({ roles: [r1] });
  assert.deepEqual(u.roleNames, [r1]);
  const added = expectOk(await m.user.addRoles(u.loginIds[0], [r2]), 'addRoles');
  assert.deepEqual(sorted(added.roleNames), sorted([r1, r2]));
  const set = expectOk(await m.user.setRoles(u.userId, [r3]), 'setRoles');
  assert.deepEqual(set.roleNames, [r3]);
  const removed = expectOk(await m.user.removeRoles(u.loginIds[0], [r3]), 'removeRoles');
  assert.deepEqual(removed.roleNames, []);
  assert.deepEqual((await load(u.userId)).roleNames, []);
});

test('assigning a role that does not exist is refused', async () => {
  const u = await newUser();
  expectError(await m.user.addRoles(u.loginIds[0], [`no-such-role-${uid()}`]), null);
  assert.deepEqual((await load(u.userId)).roleNames, []);
});

test('addTenant and removeTenant manage tenant membership', async () => {
  const t = await newTenant();
  const u = await newUser();
  const added = expectOk(await m.user.addTenant(u.loginIds[0], t.id), 'addTenant');
  assert.equal(added.userTenants.length, 1);
  assert.equal(added.userTenants[0].tenantId, t.id);
  assert.equal(added.userTenants[0].tenantName, t.name);
  assert.deepEqual(added.userTenants[0].roleNames ?? [], []);
  const removed = expectOk(await m.user.removeTenant(u.userId, t.id), 'removeTenant');
  assert.deepEqual(removed.userTenants, []);
  assert.deepEqual((await load(u.userId)).userTenants, []);
});

test('setTenantRoles, addTenantRoles and removeTenantRoles manage roles inside a tenant', async () => {
  const t = await newTenant();
  const [r1, r2] = [await newRole(), await newRole()];
  const u = await newUser({ roles: [r1] });
  expectOk(await m.user.addTenant(u.loginIds[0], t.id), 'addTenant');
  const tenantRoles = (user) => sorted(user.userTenants.find((x) => x.tenantId === t.id)?.roleNames);

  const a = expectOk(await m.user.addTenantRoles(u.loginIds[0], t.id, [r1]), 'addTenantRoles');
  assert.deepEqual(tenantRoles(a), [r1]);
  const b = expectOk(await m.user.addTenantRoles(u.userId, t.id, [r2]), 'addTenantRoles');
  assert.deepEqual(tenantRoles(b), sorted([r1, r2]));
  const c = expectOk(await m.user.setTenantRoles(u.loginIds[0], t.id, [r2]), 'setTenantRoles');
  assert.deepEqual(tenantRoles(c), [r2]);
  const d = expectOk(await m.user.removeTenantRoles(u.loginIds[0], t.id, [r2]), 'removeTenantRoles');
  assert.deepEqual(tenantRoles(d), []);
  assert.deepEqual(d.roleNames, [r1], 'project-level roles are untouched');
});

test('addSSOapps, setSSOapps and removeSSOapps manage the SSO app ids', async () => {
  const [a1, a2, a3] = [`app-${uid()}`, `app-${uid()}`, `app-${uid()}`];
  const u = await newUser();
  const added = expectOk(await m.user.addSSOapps(u.loginIds[0], [a1, a2]), 'addSSOapps');
  assert.deepEqual(sorted(added.ssoAppIds), sorted([a1, a2]));
  const set = expectOk(await m.user.setSSOapps(u.userId, [a3]), 'setSSOapps');
  assert.deepEqual(set.ssoAppIds, [a3]);
  const removed = expectOk(await m.user.removeSSOapps(u.loginIds[0], [a3]), 'removeSSOapps');
  assert.deepEqual(removed.ssoAppIds, []);
  assert.deepEqual((await load(u.userId)).ssoAppIds, []);
});

// ---------------------------------------------------------------------------------------------
// logout, history, provider tokens

test('logoutUser and logoutUserByUserId succeed for a known user and fail for an unknown one', async () => {
  const u = await newUser();
  expectOk(await m.user.logoutUser(u.loginIds[0]), 'logoutUser');
  expectOk(await m.user.logoutUserByUserId(u.userId), 'logoutUserByUserId');
  expectError(await m.user.logoutUser(`nobody-${uid()}`), 'E112102', 400);
});

test('history answers an array of login records (none for a user who never signed in)', async () => {
  const u = await newUser();
  const history = expectOk(await m.user.history([u.userId]), 'history');
  assert.ok(Array.isArray(history), `history answers an array, got ${JSON.stringify(history)}`);
  assert.deepEqual(history, []);
});

test('getProviderToken answers a stored token, with the refresh token only when asked', async () => {
  const u = await newUser({ email: uniqueEmail() });
  const expiration = nowSeconds() + 3600;
  const stored = await mgmtFetch('PUT', '/v1/mgmt/user/provider/token', {
    loginId: u.loginIds[0],
    provider: 'google',
    providerUserId: 'google-123',
    accessToken: 'at-value',
    refreshToken: 'rt-value',
    expiration,
    scopes: ['openid', 'email'],
  });
  assert.equal(stored.status, 200, JSON.stringify(stored.body));

  const token = expectOk(await m.user.getProviderToken(u.loginIds[0], 'google'));
  assert.equal(token.provider, 'google');
  assert.equal(token.providerUserId, 'google-123');
  assert.equal(token.accessToken, 'at-value');
  assert.equal(token.expiration, expiration);
  assert.deepEqual(token.scopes, ['openid', 'email']);
  assert.ok(!token.refreshToken, 'no refresh token unless withRefreshToken');

  const withRefresh = expectOk(
    await m.user.getProviderToken(u.loginIds[0], 'google', { withRefreshToken: true }),
  );
  assert.equal(withRefresh.refreshToken, 'rt-value');
  assert.equal(withRefresh.accessToken, 'at-value');

  expectError(await m.user.getProviderToken(u.loginIds[0], 'github'), 'E112103', 404);
});

test('deleting a user deletes its provider tokens', async () => {
  const loginId = `pt-del-${uid()}`;
  await newUser({}, loginId);
  const stored = await mgmtFetch('PUT', '/v1/mgmt/user/provider/token', {
    loginId,
    provider: 'google',
    providerUserId: 'google-del',
    accessToken: 'at-del',
    expiration: nowSeconds() + 3600,
  });
  assert.equal(stored.status, 200, JSON.stringify(stored.body));
  expectOk(await m.user.getProviderToken(loginId, 'google'));
  expectOk(await m.user.delete(loginId), 'delete');
  await newUser({}, loginId); // a new user under the same login id
  expectError(await m.user.getProviderToken(loginId, 'google'), 'E112103', 404);
});
