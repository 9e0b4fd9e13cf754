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
//   postgres  each server gets a fresh database `idv_node_<hex>`, created with psql on the server
//             of IDVAULT_TEST_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/test) and
//             passed as `--database-url`; it is dropped (WITH (FORCE)) once the server has stopped.
//             Failing to create it fails the file with psql's stderr; failing to drop it warns.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, createWriteStream, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import DescopeClient from '@descope/node-sdk';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, '..', '..', '..');
const DEFAULT_BIN = join(REPO_ROOT, 'target', 'debug', 'idvault');
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

const LISTENING_RE = /^idvault listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/;
const PROJECT_ID_RE = /^\s*Project ID:\s+(P\S+)\s*$/;
const MGMT_KEY_RE = /^\s*Management key:\s+(idv_\S+)\s*$/;

const DEFAULT_PG_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/test';
const PSQL_TIMEOUT_MS = 60_000;
const PG_SUITE = 'node';

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

/** Runs one SQL statement with psql on the admin database; answers spawnSync's result. */
function psql(adminUrl, sql) {
  return spawnSync('psql', [adminUrl, '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: PSQL_TIMEOUT_MS,
  });
}

/** Why a psql run failed, or null when it succeeded. */
function psqlProblem(res) {
  if (res.error) return `could not run psql: ${res.error.message}`;
  if (res.status !== 0) {
    return `psql exit code ${res.status ?? `(signal ${res.signal})`}:\n${res.stderr}`;
  }
  return null;
}

/**
 * Creates a fresh, empty PostgreSQL database for one server (so that it prints its first-start
 * banner) and answers { adminUrl, name, url }. Throws with psql's stderr if that fails.
 */
function createPgDatabase() {
  const adminUrl = process.env.IDVAULT_TEST_PG_ADMIN_URL || DEFAULT_PG_ADMIN_URL;
  let url;
  try {
    url = new URL(adminUrl);
  } catch {
    url = null;
  }
  if (!url || !['postgres:', 'postgresql:'].includes(url.protocol) || !url.host) {
    throw new Error(`IDVAULT_TEST_PG_ADMIN_URL=${adminUrl} is not a postgres:// URL`);
  }
  const name = `idv_${PG_SUITE}_${randomBytes(8).toString('hex')}`;
  url.pathname = `/${name}`; // the admin URL with its database replaced (user, host, query kept)
  const problem = psqlProblem(psql(adminUrl, `CREATE DATABASE ${name}`));
  if (problem) {
    throw new Error(
      `IDVAULT_TEST_BACKEND=postgres: \`CREATE DATABASE ${name}\` on ${adminUrl} failed: ${problem}`,
    );
  }
  return { adminUrl, name, url: url.href };
}

/** Drops a database made by createPgDatabase; a failure only warns. */
function dropPgDatabase({ adminUrl, name }) {
  const problem = psqlProblem(psql(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  if (problem) {
    process.emitWarning(
      `could not drop the test database ${name} on ${adminUrl}: ${problem.trim()}\n` +
        `drop it by hand: DROP DATABASE IF EXISTS ${name} WITH (FORCE)`,
    );
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
 * Starts idvault and resolves once it printed its listening line, with the project id and
 * management key of the first-start banner. The caller must call stop().
 */
export async function startServer() {
  const bin = idvaultBinary();
  const pg = backend() === 'postgres' ? createPgDatabase() : null;
  const dataDir = mkdtempSync(join(tmpdir(), 'idvault-node-sdk-data-'));
  const logDir = mkdtempSync(join(tmpdir(), 'idvault-node-sdk-log-'));
  const stderrPath = join(logDir, 'stderr.log');
  const stderrFile = createWriteStream(stderrPath);
  const env = { ...process.env, NO_COLOR: '1' };
  delete env.IDVAULT_LISTEN;
  delete env.IDVAULT_DATA_DIR;
  delete env.IDVAULT_DATABASE_URL; // the backend is chosen by IDVAULT_TEST_BACKEND alone

  const globalArgs = ['--data-dir', dataDir];
  if (pg) globalArgs.push('--database-url', pg.url);
  let proc;
  try {
    // The OAuth test server runs on 127.0.0.1 over http: allowed as a provider host.
    proc = spawn(bin, [...globalArgs, 'serve', '--listen', '127.0.0.1:0', '--provider-allowed-hosts', '127.0.0.1'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    if (pg) dropPgDatabase(pg);
    throw err;
  }
  proc.stderr.pipe(stderrFile);
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
    rmSync(logDir, { recursive: true, force: true });
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

  const seen = [];
  let projectId;
  let managementKey;
  const baseUrl = await new Promise((res, rej) => {
    const lines = createInterface({ input: proc.stdout });
    const timer = setTimeout(
      () => rej(new Error(`idvault did not print its listening line within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    lines.on('line', (line) => {
      seen.push(line);
      let m;
      if ((m = PROJECT_ID_RE.exec(line))) projectId = m[1];
      else if ((m = MGMT_KEY_RE.exec(line))) managementKey = m[1];
      else if ((m = LISTENING_RE.exec(line))) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    // Keep draining stdout after start-up so the server never blocks on a full pipe.
    proc.stdout.resume();
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      rej(new Error(`idvault exited (code ${code}, signal ${signal}) before listening`));
    });
    proc.once('error', (err) => {
      clearTimeout(timer);
      rej(err);
    });
  }).catch(async (err) => {
    await kill(proc, exited);
    let stderr = '';
    try {
      stderr = readFileSync(stderrPath, 'utf8');
    } catch {
      /* none */
    }
    cleanup();
    throw new Error(`${err.message}\n--- stdout:\n${seen.join('\n')}\n--- stderr:\n${stderr}`);
  });

  if (!projectId || !managementKey) {
    await kill(proc, exited);
    cleanup();
    throw new Error(
      `idvault's first-start banner did not show a project id and a management key:\n${seen.join('\n')}`,
    );
  }

  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    if (!stderrFile.closed) {
      await new Promise((res) => {
        stderrFile.once('close', res);
        stderrFile.end();
      });
    }
    cleanup();
  };

  return { baseUrl, projectId, managementKey, dataDir, stop };
}

/**
 * Registers hooks that start one server before this file's tests and stop it after them.
 * `onReady`, if given, runs once the server listens (e.g. to make the file's client).
 */
export function useServer(onReady) {
  const handle = {};
  before(async () => {
    current = await startServer();
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
