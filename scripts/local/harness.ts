// The local stack as tests and benchmarks use it (`npm run stack:up`, which `npm test` and
// `npm run bench` run first): scratch databases cloned from the migrated template, so each user
// works on its own state; the dependencies a function would build, pointed at one of them; and
// the functions served against one, with the pg_net worker for it (the stand-in's, or the real
// one pointed at it: scripts/local/pg_net_worker.ts).
import postgres from "postgres";
import { startFunctions } from "./functions.ts";
import type { NetWorker } from "./net_worker.ts";
import { netWorkerFor } from "./pg_net_worker.ts";
import { loadOrCreateSecrets } from "./secrets.ts";
import { functionEnv, readStackEnv, type StackInfo } from "./stack.ts";
import { connect, type Sql } from "../../functions-shared/db/client.ts";
import { createLogger } from "../../functions-shared/log.ts";
import { type Deps, systemClock } from "../../functions-shared/deps.ts";
import { PacerCache } from "../../functions-shared/providers/pacing.ts";
import { readEnv } from "../../functions-shared/env.ts";
import { TokenVault } from "../../functions-shared/vault.ts";
import { functionInvoker } from "../../functions-shared/invoke.ts";
import { freePort } from "./util.ts";

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

/**
 * Waits until no webhook event of the database is `received`: the webhooks function answers once
 * a delivery's events are recorded and processes them after the answer (docs/architecture.md
 * "Webhooks: answer first"), so what a delivery did shows once its events have left `received`.
 */
export async function webhookEventsSettled(
  db: Pick<TestDatabase, "sql">,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const [row] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from tether.webhook_events where status = 'received'`;
    if (row!.n === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`${row!.n} webhook event(s) still received after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
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
    // Test files run in parallel in one process, whose CPU time is shared: jobs run in a test are
    // held to wall time only (the CPU budget has its own tests, on a clock that says what it costs).
    clock: { monotonicMs: systemClock.monotonicMs, sleep: systemClock.sleep },
    env,
    log: createLogger("test", (line) => logLines.push(line)),
    pacers: new PacerCache(),
    functions: functionInvoker(env, globalThis.fetch),
    logLines,
    ...rest,
  };
}

/**
 * A pg_net worker sending what `db` queues, whichever pg_net the stack runs; stop() when done.
 * With the real pg_net, databases take turns for its one worker.
 */
export async function netWorkerForDatabase(
  db: TestDatabase,
  opts: { log?: (line: string) => void } = {},
): Promise<NetWorker> {
  const env = await stackEnv();
  return await netWorkerFor(db, env.TETHER_PGNET ?? "standin", {
    adminUrl: env.DATABASE_URL,
    log: opts.log,
    pollMs: 100,
  });
}

/**
 * Stores, in a database's Vault, the functions URL and the invoke key the SQL API sends them
 * (tether_functions_url, tether_invoke_key): what `npm run deploy` stores on a project.
 */
export async function storeVaultSecrets(
  sql: Sql,
  served: { functionsUrl: string; invokeKey: string },
): Promise<void> {
  await sql`select vault.create_secret(${served.functionsUrl}, 'tether_functions_url')`;
  await sql`select vault.create_secret(${served.invokeKey}, 'tether_invoke_key')`;
}

/** The functions served against a test database, with the pg_net worker for it; `env` adds to theirs. */
export async function serveFunctionsFor(
  db: TestDatabase,
  names?: string[],
  opts: { env?: Record<string, string>; port?: number } = {},
) {
  const secrets = await loadOrCreateSecrets();
  const logLines: string[] = [];
  const log = (line: string) => logLines.push(line);
  // SUPABASE_URL is the gateway itself, as on Supabase: a function can call the others there.
  const port = opts.port || freePort();
  const functions = await startFunctions({
    port,
    names,
    env: {
      ...functionEnv(secrets, { databaseUrl: db.url, supabaseUrl: `http://127.0.0.1:${port}` }),
      ...opts.env,
    },
    jwks: secrets.jwks,
    log,
  });
  let net: NetWorker;
  try {
    net = await netWorkerForDatabase(db, { log });
  } catch (err) {
    await functions.stop();
    throw err;
  }
  return {
    ...functions,
    secretKey: secrets.secretKey,
    /** What the SQL API sends (store it as Vault's tether_invoke_key); the job functions accept it. */
    invokeKey: secrets.invokeKey,
    logLines,
    async stop() {
      await net.stop();
      await functions.stop();
    },
  };
}
