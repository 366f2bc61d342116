// Test access to the local stack (`npm run stack:up`, which `npm test` runs
// first). Every test file gets its own database cloned from the migrated
// template, so files run in parallel without sharing mutable state.
import postgres from "postgres";
import { startFunctions } from "../../scripts/local/functions.ts";
import { startNetWorker } from "../../scripts/local/net_worker.ts";
import { loadOrCreateSecrets } from "../../scripts/local/secrets.ts";
import { functionEnv, readStackEnv, type StackInfo } from "../../scripts/local/stack.ts";
import { connect, type Sql } from "../../functions-shared/db/client.ts";
import { createLogger } from "../../functions-shared/log.ts";
import { type Clock, type Deps, systemClock } from "../../functions-shared/deps.ts";
import { readEnv } from "../../functions-shared/env.ts";
import { TokenVault } from "../../functions-shared/vault.ts";

export { loadOrCreateSecrets as localSecrets };

let stack: Promise<StackInfo> | undefined;
export function stackEnv(): Promise<StackInfo> {
  stack ??= readStackEnv();
  return stack;
}

export interface TestDatabase {
  name: string;
  url: string;
  sql: Sql;
  drop(): Promise<void>;
}

/** A fresh database with every migration applied, dropped by `drop()`. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const env = await stackEnv();
  const name = `test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name} template ${env.TETHER_TEMPLATE_DATABASE}`);
  } finally {
    await admin.end();
  }
  const url = env.DATABASE_URL.replace(/\/[^/]+$/, `/${name}`);
  const sql = connect(url, { max: 10, name: "tether-test" });
  return {
    name,
    url,
    sql,
    async drop() {
      await sql.end({ timeout: 5 });
      const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Runs `fn` with a fresh test database, dropped afterwards whatever happens. */
export async function withTestDatabase<T>(fn: (db: TestDatabase) => Promise<T>): Promise<T> {
  const db = await createTestDatabase();
  try {
    return await fn(db);
  } finally {
    await db.drop();
  }
}

/** A settable clock for jobs: starts at `start`, moves only when told. */
export function fixedClock(start = new Date()) {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    advance(seconds: number) {
      now += seconds * 1000;
    },
    set(date: Date) {
      now = date.getTime();
    },
  };
}

/**
 * A `Clock` for jobs that moves only when told (or when a job sleeps on it): time budgets and
 * backoff waits run in no real time. `advance(ms)` is what a slow provider would cost.
 */
export function manualClock(): Clock & { advance(ms: number): void } {
  let ms = 0;
  return {
    monotonicMs: () => ms,
    sleep: (wait) => {
      ms += wait;
      return Promise.resolve();
    },
    advance(wait) {
      ms += wait;
    },
  };
}

/** The dependencies a function would build, pointed at a test database; log lines are kept. */
export async function testDeps(
  db: TestDatabase,
  overrides: Partial<Deps> & { env?: Record<string, string> } = {},
): Promise<Deps & { logLines: string[] }> {
  const secrets = await loadOrCreateSecrets();
  const stack = await stackEnv();
  const env = readEnv((name) =>
    ({
      ...functionEnv(secrets, { databaseUrl: db.url, supabaseUrl: stack.SUPABASE_URL }),
      ...overrides.env,
    })[name]
  );
  const logLines: string[] = [];
  const { env: _ignored, ...rest } = overrides;
  return {
    db: db.sql,
    vault: await TokenVault.fromKeyRing(env.tokenKeyRing),
    fetch: globalThis.fetch,
    now: () => new Date(),
    clock: systemClock,
    env,
    log: createLogger("test", (line) => logLines.push(line)),
    logLines,
    ...rest,
  };
}

/** The functions served against a test database, with the pg_net worker for it; `env` adds to theirs. */
export async function serveFunctionsFor(
  db: TestDatabase,
  names?: string[],
  opts: { env?: Record<string, string> } = {},
) {
  const secrets = await loadOrCreateSecrets();
  const logLines: string[] = [];
  const log = (line: string) => logLines.push(line);
  const functions = await startFunctions({
    port: 0,
    names,
    env: {
      ...functionEnv(secrets, { databaseUrl: db.url, supabaseUrl: "http://127.0.0.1:1" }),
      ...opts.env,
    },
    jwks: secrets.jwks,
    log,
  });
  const net = await startNetWorker({ databaseUrl: db.url, log, pollMs: 100 });
  return {
    ...functions,
    secretKey: secrets.secretKey,
    logLines,
    async stop() {
      await net.stop();
      await functions.stop();
    },
  };
}

/** Polls until `probe` returns a value other than undefined. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Runs `fn` with dependencies whose database goes away mid-run: when the provider is asked for
 * the `atRequest`-th URL containing `urlPart`, the job's own connections are cut and new ones are
 * refused for `forMs` (from the main database: a database cannot refuse connections to itself).
 * `fn` gets the deps and a function that waits for the outage to be over.
 */
export async function withDatabaseOutage<T>(
  db: TestDatabase,
  base: Deps,
  at: { urlPart: string; atRequest: number; forMs?: number },
  fn: (deps: Deps, outageOver: () => Promise<void>) => Promise<T>,
): Promise<T> {
  const appName = `tether-outage-${crypto.randomUUID().slice(0, 8)}`;
  const victim = connect(db.url, { max: 2, name: appName });
  const admin = connect((await stackEnv()).DATABASE_URL, { max: 1, name: "tether-test-admin" });
  const allowConnections = (allow: boolean) =>
    admin.unsafe(`alter database ${db.name} allow_connections ${allow}`);
  let outage: Promise<void> | undefined;
  let requests = 0;
  const deps: Deps = {
    ...base,
    db: victim,
    fetch: (input, init) => {
      if (String(input).includes(at.urlPart) && ++requests === at.atRequest) {
        outage = (async () => {
          await allowConnections(false);
          await admin`select pg_terminate_backend(pid) from pg_stat_activity
                       where application_name = ${appName}`;
          await new Promise((r) => setTimeout(r, at.forMs ?? 1500));
          await allowConnections(true);
        })();
      }
      return fetch(input, init);
    },
  };
  try {
    return await fn(deps, async () => await outage);
  } finally {
    await outage?.catch(() => {});
    await allowConnections(true);
    await admin.end();
    await victim.end({ timeout: 1 });
  }
}
