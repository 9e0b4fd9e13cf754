// Harness of the Node SDK conformance suite: starts one real idvault server per test file, on a
// free port and a fresh data directory, and hands out clients of the official
// `@descope/node-sdk` (pinned in package.json) that talk to it.
//
//   import { useServer, makeClient } from './harness.js';
//   let m;
//   useServer(() => { m = makeClient().management; });  // before()/after() hooks for this file
//   test('...', async () => { const client = makeClient(); ... });
//
// Every SDK call answers `{ ok, code, data, error }` (it never throws for an HTTP error): the
// helpers below assert on that shape and print the HTTP status and Descope error on failure, so
// that a failing test says at once whether the route is missing (404 E011404 / 405 E011405), the
// argument was refused (400 E011004...), or the behaviour is wrong.
//
// Storage backend, chosen by IDVAULT_TEST_BACKEND:
//   sqlite (default, also when unset)  the server keeps everything in SQLite in its data directory.
//   postgres  each server gets a fresh database `idv_node_<hex>`, created with scripts/pg-test-db
//             (on the server of IDVAULT_TEST_PG_ADMIN_URL, default
//             postgres://postgres@127.0.0.1:5432/test) and passed as `--database-url`; it is
//             dropped once the server has stopped. Failing to create it fails the file with the
//             script's stderr; failing to drop it warns.
//
// The server says where it listens, its project and its first management key in its ready file
// (`serve --ready-file`); its console output is kept only for failure messages.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, openSync, closeSync, readFileSync, appendFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import DescopeClient from '@descope/node-sdk';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, '..', '..', '..');
const DEFAULT_BIN = join(REPO_ROOT, 'target', 'debug', 'idvault');
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

const PG_TEST_DB = join(REPO_ROOT, 'scripts', 'pg-test-db');
const PG_TEST_DB_TIMEOUT_MS = 90_000;
const PG_SUITE = 'node';

// --- Secrets used, recorded for scripts/scan-secrets ------------------------------------------

/** The JSON fields that carry a secret (the same list as crates/idvault/tests/api/helpers.rs). */
const SECRET_FIELDS = new Set([
  'accessToken', 'refreshToken', 'access_token', 'refresh_token', 'id_token', 'clientSecret',
  'client_secret', 'apiKey', 'sessionJwt', 'refreshJwt', 'managementKey', 'code', 'cleartext',
]);

/**
 * $IDVAULT_TEST_LOG_DIR: where the servers' console output goes and the secrets used are
 * recorded (scripts/test.sh sets it; scripts/scan-secrets reads it). null when unset.
 */
function logDir() {
  const dir = process.env.IDVAULT_TEST_LOG_DIR;
  if (!dir) return null;
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Appends one secret to secrets.jsonl, one line in one append (never interleaved). */
export function recordSecret(kind, secret) {
  const dir = logDir();
  if (!dir || typeof secret !== 'string' || !secret) return;
  appendFileSync(join(dir, 'secrets.jsonl'), `${JSON.stringify({ kind, secret })}\n`, { mode: 0o600 });
}

/** Records every secret field of a JSON value, at any depth. */
export function recordSecretsIn(value) {
  if (Array.isArray(value)) {
    value.forEach(recordSecretsIn);
  } else if (value && typeof value === 'object') {
    for (const [name, item] of Object.entries(value)) {
      if (SECRET_FIELDS.has(name) && typeof item === 'string') recordSecret(name, item);
      else recordSecretsIn(item);
    }
  }
}

/** Records the keys of a data directory's master.key. */
function recordMasterKeys(dataDir) {
  let keyring;
  try {
    keyring = readFileSync(join(dataDir, 'master.key'), 'utf8');
  } catch {
    return;
  }
  // `#` comment lines; entries `<version>:<base64 key>` (or one bare key) separated by newlines,
  // commas or blanks.
  for (const line of keyring.split('\n')) {
    if (line.trimStart().startsWith('#')) continue;
    for (const entry of line.split(/[,\s]+/).filter(Boolean)) {
      recordSecret('master key', entry.slice(entry.indexOf(':') + 1));
    }
  }
}

// Every request of this process (the SDK's and mgmtFetch's) goes through the global fetch: its
// JSON bodies and answers are recorded on the way, when there is a log directory.
if (logDir() && typeof globalThis.fetch === 'function') {
  const originalFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    try {
      if (typeof init?.body === 'string') recordSecretsIn(JSON.parse(init.body));
    } catch {
      // not JSON: nothing to record
    }
    const resp = await originalFetch(input, init);
    resp
      .clone()
      .json()
      .then(recordSecretsIn, () => {});
    return resp;
  };
}

/**
 * Under IDVAULT_TEST_LOG_DIR: writes the audit records of the server's project to `path`, one a
 * line, as the management search answers them, for scripts/scan-secrets (records are checked for
 * secrets as the logs are). Called before the server stops; records its writer still holds (the
 * last ~100 ms) are not stored yet. A failure is written beside it, never thrown.
 */
async function dumpAudit(ready, path) {
  if (!logDir()) return;
  const PAGE = 1000;
  try {
    const lines = [];
    for (let page = 0; ; page += 1) {
      const resp = await fetch(`${ready.url}/v1/mgmt/audit/search`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${ready.projectId}:${ready.managementKey}`,
          'Content-Type': 'application/json',
        },
        body: JSON.stringify({ limit: PAGE, page }),
      });
      const text = await resp.text();
      if (!resp.ok) throw new Error(`HTTP ${resp.status}: ${text}`);
      const audits = JSON.parse(text).audits ?? [];
      for (const record of audits) lines.push(`${JSON.stringify(record)}\n`);
      if (audits.length < PAGE) break;
    }
    writeFileSync(path, lines.join(''));
  } catch (err) {
    writeFileSync(path.replace(/audit\.jsonl$/, 'audit-error.log'), `audit dump failed: ${err.message}\n`);
  }
}

/** The server of the current test file (set by useServer's before hook). */
let current = null;

/** Path of the idvault binary: $IDVAULT_BIN, or the debug build (built here if missing). */
function idvaultBinary() {
  if (process.env.IDVAULT_BIN) {
    const bin = resolve(process.env.IDVAULT_BIN);
    if (!existsSync(bin)) throw new Error(`IDVAULT_BIN=${bin} does not exist`);
    return bin;
  }
  if (!existsSync(DEFAULT_BIN)) {
    execFileSync('cargo', ['build', '-p', 'idvault'], { cwd: REPO_ROOT, stdio: 'inherit' });
  }
  return DEFAULT_BIN;
}

/** The storage backend the servers run on: $IDVAULT_TEST_BACKEND, `sqlite` when unset. */
function backend() {
  const value = (process.env.IDVAULT_TEST_BACKEND ?? '').trim().toLowerCase() || 'sqlite';
  if (value !== 'sqlite' && value !== 'postgres') {
    throw new Error(
      `IDVAULT_TEST_BACKEND=${JSON.stringify(value)}: expected \`sqlite\` (the default) or \`postgres\``,
    );
  }
  return value;
}

/** Runs scripts/pg-test-db, the database helper every suite shares; answers spawnSync's result. */
function pgTestDb(...args) {
  return spawnSync(PG_TEST_DB, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: PG_TEST_DB_TIMEOUT_MS,
  });
}

/** Why a pg-test-db run failed, or null when it succeeded. */
function pgTestDbProblem(res) {
  if (res.error) return `could not run ${PG_TEST_DB}: ${res.error.message}`;
  if (res.status !== 0) {
    return `exit code ${res.status ?? `(signal ${res.signal})`}:\n${res.stderr}`;
  }
  return null;
}

/**
 * Creates a fresh, empty PostgreSQL database for one server (so that it creates its first
 * project and key) and answers { name, url }. Throws with the script's stderr if that fails.
 */
function createPgDatabase() {
  const res = pgTestDb('create', PG_SUITE);
  const problem = pgTestDbProblem(res);
  const fields = problem ? [] : res.stdout.trim().split(/\s+/);
  if (problem || fields.length !== 2) {
    throw new Error(
      `IDVAULT_TEST_BACKEND=postgres: \`pg-test-db create ${PG_SUITE}\` failed: ${problem ?? res.stdout}`,
    );
  }
  return { name: fields[0], url: fields[1] };
}

/** Drops a database made by createPgDatabase; a failure only warns. */
function dropPgDatabase({ name }) {
  const problem = pgTestDbProblem(pgTestDb('drop', name));
  if (problem) {
    process.emitWarning(
      `could not drop the test database ${name}: ${problem.trim()}\n` +
        `drop it by hand: scripts/pg-test-db drop ${name}`,
    );
  }
}

/**
 * The JSON of idvault's ready file once it exists. Rejects when the server exits first or takes
 * longer than `timeoutMs`. The server renames the file into place, so a file that exists is
 * complete.
 */
async function waitForReadyFile(proc, path, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = null;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    if (text !== null) return JSON.parse(text);
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(
        `idvault exited (code ${proc.exitCode}, signal ${proc.signalCode}) before writing its ready file`,
      );
    }
    if (Date.now() >= deadline) {
      throw new Error(`idvault did not write its ready file within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

/** SIGKILLs a child that is still running and waits for it (a child that never spawned has no exit). */
async function kill(proc, exited) {
  if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGKILL');
    await exited;
  }
}

/**
 * Starts idvault and resolves once it has written its ready file, with the project id and
 * management key it created. `serveArgs` are added to `serve` (e.g. a limit under test). The
 * caller must call stop().
 */
export async function startServer(serveArgs = []) {
  const bin = idvaultBinary();
  const expectedBackend = backend();
  const pg = expectedBackend === 'postgres' ? createPgDatabase() : null;
  const dataDir = mkdtempSync(join(tmpdir(), 'idvault-node-sdk-data-'));
  const runDir = mkdtempSync(join(tmpdir(), 'idvault-node-sdk-run-'));
  const readyPath = join(runDir, 'ready.json');
  // Under IDVAULT_TEST_LOG_DIR the console output is kept there for scripts/scan-secrets.
  const logs = logDir() ?? runDir;
  const run = randomUUID().slice(0, 12);
  const stdoutPath = join(logs, `node-${run}.stdout.log`);
  const stderrPath = join(logs, `node-${run}.stderr.log`);
  const env = { ...process.env, NO_COLOR: '1' };
  delete env.IDVAULT_LISTEN;
  delete env.IDVAULT_DATA_DIR;
  delete env.IDVAULT_DATABASE_URL; // the backend is chosen by IDVAULT_TEST_BACKEND alone
  delete env.IDVAULT_READY_FILE;

  const globalArgs = ['--data-dir', dataDir];
  if (pg) globalArgs.push('--database-url', pg.url);
  // The console goes to files (kept for failure messages): the child never blocks on a pipe.
  const stdoutFd = openSync(stdoutPath, 'w');
  const stderrFd = openSync(stderrPath, 'w');
  let proc;
  try {
    // The OAuth test server runs on 127.0.0.1 over http: allowed as a provider host.
    proc = spawn(
      bin,
      [...globalArgs, 'serve', '--listen', '127.0.0.1:0', '--provider-allowed-hosts', '127.0.0.1',
        '--ready-file', readyPath, ...serveArgs],
      { env, stdio: ['ignore', stdoutFd, stderrFd] },
    );
  } catch (err) {
    if (pg) dropPgDatabase(pg);
    throw err;
  } finally {
    // The child has its own copies.
    closeSync(stdoutFd);
    closeSync(stderrFd);
  }
  // Called once the server has exited (or never started).
  let cleanedUp = false;
  const cleanup = () => {
    if (cleanedUp) return;
    cleanedUp = true;
    process.off('exit', onExit);
    if (process.env.IDVAULT_KEEP_DATA) {
      if (pg) process.stderr.write(`IDVAULT_KEEP_DATA: keeping database ${pg.name}\n`);
      return;
    }
    if (pg) dropPgDatabase(pg);
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  };
  // Safety net for a test process that exits (process.exit(), a crash) without stop() having
  // run: kill the server and still drop its database.
  const onExit = () => {
    if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
    }
    cleanup();
  };
  process.once('exit', onExit);
  const exited = new Promise((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  const spawnFailed = new Promise((_, rej) => proc.once('error', rej));
  spawnFailed.catch(() => {}); // an 'error' after start-up is not this function's business

  const fail = async (message) => {
    await kill(proc, exited);
    const read = (path) => {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return '';
      }
    };
    const stdout = read(stdoutPath);
    const stderr = read(stderrPath);
    cleanup();
    throw new Error(`${message}\n--- stdout:\n${stdout}\n--- stderr:\n${stderr}`);
  };

  let ready;
  try {
    ready = await Promise.race([waitForReadyFile(proc, readyPath, START_TIMEOUT_MS), spawnFailed]);
  } catch (err) {
    return fail(err.message);
  }
  if (!ready.projectId || !ready.managementKey) {
    return fail(`idvault's ready file names no project id and management key: ${JSON.stringify(ready)}`);
  }
  if (ready.backend !== expectedBackend) {
    return fail(`idvault runs on ${ready.backend}, not ${expectedBackend}`);
  }

  recordSecret('management key', ready.managementKey);
  recordMasterKeys(dataDir);

  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      await dumpAudit(ready, join(logs, `node-${run}.audit.jsonl`));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    cleanup();
  };

  return {
    baseUrl: ready.url,
    projectId: ready.projectId,
    managementKey: ready.managementKey,
    dataDir,
    stop,
  };
}

/**
 * Registers hooks that start one server before this file's tests and stop it after them.
 * `onReady`, if given, runs once the server listens (e.g. to make the file's client);
 * `serveArgs` are added to its `serve` command.
 */
export function useServer(onReady, serveArgs = []) {
  const handle = {};
  before(async () => {
    current = await startServer(serveArgs);
    Object.assign(handle, current);
    if (onReady) await onReady(current);
  });
  after(async () => {
    if (current) await current.stop();
    current = null;
  });
  return handle;
}

/** The running server of this file. */
export function server() {
  if (!current) throw new Error('no idvault server: call useServer() at the top of the test file');
  return current;
}

const CALL = Symbol('sdk call');

/**
 * Wraps `client.management` so that each response remembers which SDK method produced it (for
 * failure messages). The calls themselves go to the SDK unchanged.
 */
function labelled(management) {
  return new Proxy(management, {
    get(target, ns) {
      const group = target[ns];
      if (!group || typeof group !== 'object') return group;
      return new Proxy(group, {
        get(g, name) {
          const fn = g[name];
          if (typeof fn !== 'function') return fn;
          return (...args) => {
            const out = fn.apply(g, args);
            if (!out || typeof out.then !== 'function') return out;
            return out.then((resp) => {
              if (resp && typeof resp === 'object') {
                Object.defineProperty(resp, CALL, { value: `${String(ns)}.${String(name)}` });
              }
              return resp;
            });
          };
        },
      });
    },
  });
}

/** A real DescopeClient pointed at this file's server; `overrides` replace any argument. */
export function makeClient(overrides = {}) {
  const s = server();
  const client = DescopeClient({
    projectId: s.projectId,
    managementKey: s.managementKey,
    baseUrl: s.baseUrl,
    ...overrides,
  });
  return Object.assign(Object.create(Object.getPrototypeOf(client)), client, {
    management: labelled(client.management),
  });
}

/** A fresh, unique suffix for ids, names and login ids. */
export function uid() {
  return randomUUID().replace(/-/g, '').slice(0, 16);
}

/** A unique email address. */
export function uniqueEmail(prefix = 'user') {
  return `${prefix}-${uid()}@example.com`;
}

/** A unique E.164 phone number (+1 555 and 7 random digits). */
export function uniquePhone() {
  const digits = String(Math.floor(Math.random() * 1e7)).padStart(7, '0');
  return `+1555${digits}`;
}

function describeResponse(resp) {
  if (!resp || typeof resp !== 'object') return `not an SDK response: ${String(resp)}`;
  const err = resp.error
    ? `${resp.error.errorCode} (${resp.error.errorDescription}): ${resp.error.errorMessage ?? ''}`
    : 'no error body';
  return `HTTP ${resp.code} ${err}`;
}

/** Asserts an SDK response succeeded and returns its data. */
export function expectOk(resp, what) {
  what ??= resp?.[CALL] ?? 'SDK call';
  assert.ok(resp && resp.ok === true, `${what} failed: ${describeResponse(resp)}`);
  return resp.data;
}

/**
 * Asserts an SDK response failed with the given Descope errorCode (and HTTP status when given).
 * `errorCode` may be null to only require a well-formed Descope error.
 */
export function expectError(resp, errorCode, status, what) {
  what ??= resp?.[CALL] ?? 'SDK call';
  assert.ok(resp && typeof resp === 'object', `${what}: not an SDK response`);
  assert.equal(
    resp.ok,
    false,
    `${what} was expected to fail${errorCode ? ` with ${errorCode}` : ''} but succeeded: ${JSON.stringify(resp.data)}`,
  );
  assert.ok(resp.error, `${what}: failure without a Descope error body (${describeResponse(resp)})`);
  assert.match(
    String(resp.error.errorCode),
    /^E\d{6}$/,
    `${what}: errorCode is not a Descope code (${describeResponse(resp)})`,
  );
  if (errorCode) {
    assert.equal(resp.error.errorCode, errorCode, `${what}: wrong error (${describeResponse(resp)})`);
  } else {
    // Any refusal will do, but not "no such route" / "method not allowed": that is no answer.
    assert.ok(
      !['E011404', 'E011405'].includes(resp.error.errorCode),
      `${what}: the route is not implemented (${describeResponse(resp)})`,
    );
  }
  if (status !== undefined && status !== null) {
    assert.equal(resp.code, status, `${what}: wrong HTTP status (${describeResponse(resp)})`);
  }
  return resp.error;
}

/**
 * Raw HTTP call to a management endpoint with the management key, for idvault extensions the SDK
 * has no method for (e.g. storing provider tokens). Answers { status, body }.
 */
export async function mgmtFetch(method, path, body) {
  const s = server();
  const resp = await fetch(`${s.baseUrl}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${s.projectId}:${s.managementKey}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: resp.status, body: parsed };
}

/** Sorted copy, for order-insensitive comparison of string lists. */
export function sorted(list) {
  return [...(list ?? [])].sort();
}
