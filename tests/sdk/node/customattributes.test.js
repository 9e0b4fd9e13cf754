// The custom-attribute schema of users through the official Node SDK (@descope/node-sdk 2.13.0):
// createCustomAttributes / getCustomAttributes / deleteCustomAttributes, and values checked
// against their attribute's type. The SDK sends `type` as a number: 1 string, 2 number,
// 3 boolean.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, makeClient, uid, expectOk, expectError } from './harness.js';

/** @type {ReturnType<typeof makeClient>['management']} */
let m;
useServer(() => {
  m = makeClient().management;
});

const STRING = 1;
const NUMBER = 2;
const BOOLEAN = 3;

/** Defines one attribute of each type, with unique names; answers the names. */
async function defineAttributes() {
  const names = { s: `nickname${uid()}`, n: `age${uid()}`, b: `vip${uid()}` };
  expectOk(
    await m.user.createCustomAttributes([
      { name: names.s, type: STRING, displayName: 'Nickname' },
      { name: names.n, type: NUMBER, displayName: 'Age' },
      { name: names.b, type: BOOLEAN, displayName: 'VIP' },
    ]),
    'createCustomAttributes',
  );
  return names;
}

async function schema() {
  const attrs = expectOk(await m.user.getCustomAttributes(), 'getCustomAttributes');
  assert.ok(Array.isArray(attrs), `getCustomAttributes answers an array, got ${JSON.stringify(attrs)}`);
  return attrs;
}

test('createCustomAttributes defines attributes, and getCustomAttributes lists them', async () => {
  const name = `dept${uid()}`;
  const created = expectOk(
    await m.user.createCustomAttributes([{ name, type: STRING, displayName: 'Department' }]),
    'createCustomAttributes',
  );
  assert.ok(Array.isArray(created), 'createCustomAttributes answers the attributes (data)');
  const mine = created.find((a) => a.name === name);
  assert.ok(mine, `the answer lists ${name}: ${JSON.stringify(created)}`);
  assert.equal(mine.type, STRING);
  assert.equal(mine.displayName, 'Department');

  const listed = (await schema()).find((a) => a.name === name);
  assert.ok(listed, 'getCustomAttributes lists it');
  assert.equal(listed.type, STRING);
  assert.equal(listed.displayName, 'Department');
});

test('each type keeps its number', async () => {
  const names = await defineAttributes();
  const attrs = await schema();
  assert.equal(attrs.find((a) => a.name === names.s)?.type, STRING);
  assert.equal(attrs.find((a) => a.name === names.n)?.type, NUMBER);
  assert.equal(attrs.find((a) => a.name === names.b)?.type, BOOLEAN);
});

test('deleteCustomAttributes removes attributes by name', async () => {
  const names = await defineAttributes();
  const left = expectOk(await m.user.deleteCustomAttributes([names.s, names.b]), 'delete');
  assert.ok(Array.isArray(left), 'deleteCustomAttributes answers the remaining attributes');
  const attrs = await schema();
  assert.equal(attrs.find((a) => a.name === names.s), undefined);
  assert.equal(attrs.find((a) => a.name === names.b), undefined);
  assert.ok(attrs.find((a) => a.name === names.n), 'the other attribute stays');
});

test('a user keeps typed custom attribute values', async () => {
  const names = await defineAttributes();
  const loginId = `ca-${uid()}`;
  const values = { [names.s]: 'Danny', [names.n]: 42, [names.b]: true };
  const u = expectOk(await m.user.create(loginId, { customAttributes: values }), 'user.create');
  assert.deepEqual(u.customAttributes, values);
  const loaded = expectOk(await m.user.load(loginId), 'user.load');
  assert.deepEqual(loaded.customAttributes, values);
  assert.equal(typeof loaded.customAttributes[names.n], 'number');
  assert.equal(typeof loaded.customAttributes[names.b], 'boolean');
});

test('a number attribute refuses a string value', async () => {
  const names = await defineAttributes();
  const loginId = `ca-bad-${uid()}`;
  expectError(
    await m.user.create(loginId, { customAttributes: { [names.n]: 'forty-two' } }),
    null,
    400,
    'create with a string for a number attribute',
  );
  expectError(await m.user.load(loginId), 'E112102', 400, 'the user was not created');

  const ok = `ca-ok-${uid()}`;
  expectOk(await m.user.create(ok, { customAttributes: { [names.n]: 1 } }), 'user.create');
  expectError(
    await m.user.updateCustomAttribute(ok, names.n, 'not a number'),
    null,
    400,
    'updateCustomAttribute with a string for a number attribute',
  );
  assert.equal(expectOk(await m.user.load(ok)).customAttributes[names.n], 1, 'value unchanged');
});

test('a boolean attribute refuses a string value', async () => {
  const names = await defineAttributes();
  const loginId = `ca-bool-${uid()}`;
  expectOk(await m.user.create(loginId, { customAttributes: { [names.b]: false } }), 'user.create');
  expectError(
    await m.user.updateCustomAttribute(loginId, names.b, 'yes'),
    null,
    400,
    'updateCustomAttribute with a string for a boolean attribute',
  );
  expectError(
    await m.user.patch(loginId, { customAttributes: { [names.b]: 'yes' } }),
    null,
    400,
    'patch with a string for a boolean attribute',
  );
  assert.equal(expectOk(await m.user.load(loginId)).customAttributes[names.b], false);
});

test('updateCustomAttribute sets values of each type', async () => {
  const names = await defineAttributes();
  const loginId = `ca-upd-${uid()}`;
  expectOk(await m.user.create(loginId, {}), 'user.create');
  expectOk(await m.user.updateCustomAttribute(loginId, names.s, 'Nick'), 'set string');
  expectOk(await m.user.updateCustomAttribute(loginId, names.n, 7), 'set number');
  const last = expectOk(await m.user.updateCustomAttribute(loginId, names.b, true), 'set boolean');
  assert.deepEqual(last.customAttributes, { [names.s]: 'Nick', [names.n]: 7, [names.b]: true });
});

test('search finds users by custom attribute values', async () => {
  const names = await defineAttributes();
  const a = `ca-s-${uid()}`;
  const b = `ca-s-${uid()}`;
  expectOk(await m.user.create(a, { customAttributes: { [names.s]: 'red', [names.n]: 1 } }));
  expectOk(await m.user.create(b, { customAttributes: { [names.s]: 'blue', [names.n]: 2 } }));
  const byString = expectOk(await m.user.search({ customAttributes: { [names.s]: 'blue' } }));
  assert.deepEqual(
    byString.users.map((u) => u.loginIds[0]),
    [b],
  );
  const byNumber = expectOk(await m.user.search({ customAttributes: { [names.n]: 1 } }));
  assert.deepEqual(
    byNumber.users.map((u) => u.loginIds[0]),
    [a],
  );
});
