// Error answers as the official Node SDK (@descope/node-sdk 2.13.0) reports them: `ok: false`,
// `code` (the HTTP status) and `error.errorCode` (Descope's code).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, makeClient, server, uid, expectOk, expectError } from './harness.js';

/** @type {ReturnType<typeof makeClient>['management']} */
let m;
useServer(() => {
  m = makeClient().management;
});

test('a wrong management key is refused with HTTP 401', async () => {
  const bad = makeClient({ managementKey: 'idv_notakey.notasecret' }).management;
  const err = expectError(await bad.user.load(`someone-${uid()}`), null, 401, 'load with a bad key');
  assert.equal(typeof err.errorDescription, 'string');
  expectError(await bad.user.create(`someone-${uid()}`, {}), null, 401, 'create with a bad key');
  expectError(await bad.user.search({}), null, 401, 'search with a bad key');
});

test('a management key with one character changed is refused with HTTP 401', async () => {
  const key = server().managementKey;
  const last = key.at(-1);
  const tampered = key.slice(0, -1) + (last === 'A' ? 'B' : 'A');
  const bad = makeClient({ managementKey: tampered }).management;
  expectError(await bad.user.search({}), null, 401);
});

test('no management key at all is refused with HTTP 401', async () => {
  const anon = makeClient({ managementKey: undefined }).management;
  expectError(await anon.user.search({}), null, 401);
});

test("the right key under another project id is refused with HTTP 401", async () => {
  const bad = makeClient({ projectId: 'P2aaaaaaaaaaaaaaaaaaaaaaaaaa' }).management;
  expectError(await bad.user.search({}), null, 401);
});

test('an unknown user is E112102 for load, loadByUserId and the updates', async () => {
  const nobody = `nobody-${uid()}`;
  expectError(await m.user.load(nobody), 'E112102', 400, 'load');
  expectError(await m.user.loadByUserId(`U${uid()}`), 'E112102', 400, 'loadByUserId');
  expectError(await m.user.update(nobody, { displayName: 'x' }), 'E112102', 400, 'update');
  expectError(await m.user.patch(nobody, { displayName: 'x' }), 'E112102', 400, 'patch');
  expectError(await m.user.deactivate(nobody), 'E112102', 400, 'deactivate');
  expectError(await m.user.updateEmail(nobody, 'x@example.com', true), 'E112102', 400, 'updateEmail');
});

test('creating a user whose login id is taken is E062107', async () => {
  const loginId = `dup-${uid()}`;
  expectOk(await m.user.create(loginId, {}), 'first create');
  expectError(await m.user.create(loginId, {}), 'E062107', undefined, 'second create');
  expectError(await m.user.createTestUser(loginId, {}), 'E062107', undefined, 'createTestUser');
});

test("an additional login id that is another user's login id is E062107", async () => {
  const a = `dup-a-${uid()}`;
  expectOk(await m.user.create(a, {}), 'create a');
  expectError(
    await m.user.create(`dup-b-${uid()}`, { additionalLoginIds: [a] }),
    'E062107',
    undefined,
    'create with a taken additional login id',
  );
});

test('a provider token that was never stored is E112103', async () => {
  const loginId = `pt-${uid()}`;
  expectOk(await m.user.create(loginId, {}), 'create');
  expectError(await m.user.getProviderToken(loginId, 'google'), 'E112103', 404);
});

test('a create without a login id is refused as a bad request', async () => {
  expectError(await m.user.create('', {}), null, 400);
});
