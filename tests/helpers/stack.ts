// Test access to the local stack (`npm run stack:up`, which `npm test` runs
// first). Every test file gets its own database cloned from the migrated
// template, so files run in parallel without sharing mutable state. The
// databases, deps and served functions live in scripts/local/harness.ts, which
// the benchmarks share; this adds what only tests need.
import { connect } from "../../functions-shared/db/client.ts";
import type { Clock, Deps } from "../../functions-shared/deps.ts";
import { stackEnv, type TestDatabase } from "../../scripts/local/harness.ts";
import { freePort, paths } from "../../scripts/local/util.ts";

export {
  createTestDatabase,
  netWorkerForDatabase,
  serveFunctionsFor,
  stackEnv,
  storeVaultSecrets,
  type TestDatabase,
  testDeps,
  webhookEventsSettled,
  withTestDatabase,
} from "../../scripts/local/harness.ts";
export { loadOrCreateSecrets as localSecrets } from "../../scripts/local/secrets.ts";

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

export interface InvocationOutcome<R> {
  /** pg_net's record of the call: the function's 202 and the id it answered with. */
  response: { status_code: number | null; content: string | null; created: Date };
  status: "succeeded" | "failed";
  result: R;
  error: string | null;
}

/**
 * Follows a call of the SQL API through pg_net: the function must have answered 202 with an
 * invocation id (it works after answering), and that invocation must have ended; returns both.
 */
export async function invocationOf<R>(
  sql: TestDatabase["sql"],
  requestId: string | number,
  timeoutMs = 60_000,
): Promise<InvocationOutcome<R>> {
  const response = await eventually(`the pg_net response to request ${requestId}`, async () => {
    const [r] = await sql<InvocationOutcome<R>["response"][]>`
      select status_code, content, created from net._http_response where id = ${requestId}`;
    return r;
  }, timeoutMs);
  if (response.status_code !== 202) {
    throw new Error(`request ${requestId} answered ${response.status_code}: ${response.content}`);
  }
  const { invocation_id } = JSON.parse(response.content ?? "{}") as { invocation_id?: string };
  if (typeof invocation_id !== "string") {
    throw new Error(`request ${requestId}'s 202 carries no invocation_id: ${response.content}`);
  }
  const ended = await eventually(`invocation ${invocation_id} to end`, async () => {
    const [r] = await sql<{ status: string; result: R; error: string | null }[]>`
      select status, result, error from tether.invocations where id = ${invocation_id}`;
    return r && r.status !== "running" ? r : undefined;
  }, timeoutMs);
  return {
    response,
    status: ended.status as "succeeded" | "failed",
    result: ended.result,
    error: ended.error,
  };
}

/**
 * Runs `fn` with dependencies whose database goes away mid-run: when the provider is asked for
 * the `atRequest`-th URL containing `urlPart`, the job's own connections are cut (before that
 * request is answered) and new ones are refused for `forMs` (from the main database: a database
 * cannot refuse connections to itself). `fn` gets the deps and a function that waits for the
 * outage to be over.
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
        const cut = (async () => {
          await allowConnections(false);
          await admin`select pg_terminate_backend(pid) from pg_stat_activity
                       where application_name = ${appName}`;
        })();
        outage = (async () => {
          await cut;
          await new Promise((r) => setTimeout(r, at.forMs ?? 1500));
          await allowConnections(true);
        })();
        // This request is answered only once the cut has landed: otherwise a fast job outran the
        // admin's ALTER DATABASE and terminate (tens of ms on a busy machine) and finished first.
        return cut.then(() => fetch(input, init));
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

/** What a script run in a subprocess left: its exit code and its output. */
export interface ScriptRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a Deno script of the project in a subprocess, as a person would from a shell, with nothing
 * on stdin; `clearEnv` starts it from `env` alone instead of this process's environment.
 */
export async function runScript(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<ScriptRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: opts.cwd ?? paths.root,
    env: opts.env,
    clearEnv: opts.clearEnv ?? false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/**
 * Runs one of the stack's scripts (`stack.ts up`, `start.ts --once`) as a newcomer would, with a
 * private state directory and free ports, so it never touches the stack the tests run on. `env`
 * adds to or replaces the defaults (a taken port, TETHER_PGNET).
 */
export function runWithPrivateStack(
  script: string,
  args: string[],
  state: string,
  env: Record<string, string> = {},
): Promise<ScriptRun> {
  return runScript([`scripts/${script}`, ...args], {
    env: {
      TETHER_STATE_DIR: state,
      TETHER_PG_PORT: String(freePort()),
      TETHER_FUNCTIONS_PORT: String(freePort()),
      TETHER_SANDBOX_PORT: String(freePort()),
      NO_COLOR: "1",
      ...env,
    },
  });
}
