// The brute-force limit as the official Node SDK (@descope/node-sdk 2.13.0) reports it: after a
// client address has presented its budget of wrong management keys, idvault answers 429
// `E130429` with `Retry-After`, which the SDK (core-js-sdk) returns as `code: 429` and
// `error.retryAfter` (the header, in seconds). The SDK does not retry by itself.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, makeClient, server, uid, expectError } from './harness.js';

// A budget of 3 wrong credentials that refills one a minute: nothing refills during the test.
const BURST = 3;
useServer(undefined, ['--credential-failure-limit', '1', '--credential-failure-burst', String(BURST)]);

test('repeated wrong management keys get 429 E130429 with retryAfter, then the whole address waits', async () => {
  const key = server().managementKey;
  const wrong = key.slice(0, -1) + (key.at(-1) === 'A' ? 'B' : 'A');
  // Constructing the client starts its license handshake (in the background) with the wrong key.
  const bad = makeClient({ managementKey: wrong }).management;
  const results = [];
  for (let i = 0; i < BURST + 3 && results.at(-1)?.code !== 429; i += 1) {
    results.push(await bad.user.load(`someone-${uid()}`));
  }
  const codes = results.map((r) => r.code);
  const limited = results.at(-1);
  assert.equal(limited.code, 429, `never limited: ${codes}`);
  assert.ok(codes.slice(0, -1).every((c) => c === 401), `401 until the budget is spent: ${codes}`);
  // The handshake may have spent one of the budget's failures: at most BURST loads answered 401.
  assert.ok(codes.length <= BURST + 1, `${codes}`);
  expectError(limited, 'E130429', 429, 'load after the budget is spent');
  assert.equal(limited.error.errorDescription, 'Too many requests');
  assert.ok(Number.isInteger(limited.error.retryAfter), JSON.stringify(limited.error));
  assert.ok(limited.error.retryAfter >= 1 && limited.error.retryAfter <= 60, JSON.stringify(limited.error));

  // The SDK's other calls from this address are refused the same way, before any key check,
  // and so, while the address waits, is the right key from it (every client of this suite
  // connects from 127.0.0.1; other addresses are unaffected: see the API suite's brute_force.rs).
  expectError(await bad.user.search({}), 'E130429', 429, 'search while limited');
  const good = makeClient().management;
  const refused = expectError(await good.user.search({}), 'E130429', 429, 'the right key from the same address');
  assert.ok(refused.retryAfter >= 1, JSON.stringify(refused));
});
