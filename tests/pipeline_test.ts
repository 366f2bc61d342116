// The whole pipeline, from SQL to an Edge Function and back: refresh_tokens()
// reads the functions URL and key from Vault, queues a pg_net request, the
// worker sends it after commit to the served refresh-tokens function, and its
// answer lands in net._http_response. Plus the function's caller auth and body
// checks over plain HTTP, and one real pg_cron job reaching a function.
import assert from "node:assert/strict";
import postgres from "postgres";
import { importJWK, type JWK, SignJWT } from "jose";
import { writeCredentials } from "../functions-shared/db/credentials.ts";
import {
  createTestDatabase,
  eventually,
  invocationOf,
  localSecrets,
  serveFunctionsFor,
  stackEnv,
  storeVaultSecrets,
  type TestDatabase,
  testDeps,
} from "./helpers/stack.ts";

interface ResponseRow {
  status_code: number | null;
  content_type: string | null;
  content: string | null;
  error_msg: string | null;
}

async function responseFor(db: TestDatabase, id: string, timeoutMs = 30_000) {
  return await eventually(`the pg_net response to request ${id}`, async () => {
    const [row] = await db.sql<ResponseRow[]>`
      select status_code, content_type, content, error_msg
        from net._http_response where id = ${id}`;
    return row;
  }, timeoutMs);
}

/** A key that differs from `key` in its last character only. */
function lastCharChanged(key: string): string {
  return key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
}

/**
 * A ShipHero connection whose access token expired an hour ago, with a stored refresh token and
 * a token endpoint on a closed port: a refresh of it is attempted and fails as a network error.
 */
async function seedDueConnection(db: TestDatabase): Promise<string> {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const closedPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const [row] = await db.sql<{ id: string }[]>`
    insert into tether.connections (provider, external_id, name, config, token_expires_at)
    values ('shiphero', 'acct-1', 'Warehouse', ${
    db.sql.json({ auth_base_url: `http://127.0.0.1:${closedPort}` })
  }, now() - interval '1 hour')
    returning id`;
  const deps = await testDeps(db);
  await db.sql.begin((tx) =>
    writeCredentials(tx, deps.vault, row!.id, { refresh_token: "rt-1", access_token: "at-1" })
  );
  return row!.id;
}

interface ConnectionState {
  status: string;
  consecutive_failures: number;
  lease_owner: string | null;
  last_error: string | null;
  backoff_s: number | null;
  runs: string[];
}

async function connectionState(db: TestDatabase, id: string): Promise<ConnectionState> {
  const [row] = await db.sql<ConnectionState[]>`
    select status, consecutive_failures, lease_owner, last_error,
           extract(epoch from next_attempt_at - last_error_at)::int as backoff_s,
           array(select kind || ':' || status from tether.runs where connection_id = c.id
                  order by id) as runs
      from tether.connections c where id = ${id}`;
  return row!;
}

Deno.test("refresh_tokens() reaches the refresh-tokens function through Vault and pg_net", async () => {
  const db = await createTestDatabase();
  const functions = await serveFunctionsFor(db, ["refresh-tokens"]);
  try {
    const id = await seedDueConnection(db);
    await storeVaultSecrets(db.sql, functions);
    // An invocation whose worker died long ago (still "running") is closed by the next one.
    const [{ lost }] = await db.sql<[{ lost: string }]>`
      insert into tether.invocations (function_name, accepted_at)
      values ('refresh-tokens', now() - interval '1 hour') returning id::text as lost`;
    const [{ request_id, called }] = await db.sql<[{ request_id: string; called: Date }]>`
      select public.refresh_tokens()::text as request_id, clock_timestamp() as called`;
    const invocation = await invocationOf<Record<string, number>>(db.sql, request_id);
    // The function answered before it worked: pg_net's call lasted well under a second.
    const answeredMs = invocation.response.created.getTime() - called.getTime();
    assert.ok(answeredMs < 1000, `pg_net's call lasted ${answeredMs} ms`);
    assert.equal(invocation.status, "succeeded", invocation.error ?? "");
    const { duration_ms, ...counts } = invocation.result;
    assert.deepEqual(counts, { refreshed: 0, failed: 1, reauth_required: 0, skipped: 0 });
    assert.equal(typeof duration_ms, "number");
    const [closed] = await db.sql`select status, error from tether.invocations where id = ${lost}`;
    assert.deepEqual({ ...closed }, {
      status: "failed",
      error: "interrupted: the worker ended before the work did",
    });
    const state = await connectionState(db, id);
    assert.match(
      state.last_error ?? "",
      /shiphero token endpoint at 127\.0\.0\.1:\d+ could not be reached/,
    );
    assert.deepEqual({ ...state, last_error: "…" }, {
      status: "error",
      consecutive_failures: 1,
      lease_owner: null,
      last_error: "…",
      backoff_s: 30,
      runs: ["refresh:failed"],
    });
    // The worker took the request off the queue.
    const [queued] = await db.sql`select count(*)::int as n from net.http_request_queue`;
    assert.equal(queued!.n, 0);
  } finally {
    await functions.stop();
    await db.drop();
  }
});

Deno.test("with a wrong invoke key in Vault the function answers 401 and does nothing", async () => {
  const db = await createTestDatabase();
  const functions = await serveFunctionsFor(db, ["refresh-tokens"]);
  try {
    const id = await seedDueConnection(db);
    await storeVaultSecrets(db.sql, {
      functionsUrl: functions.functionsUrl,
      invokeKey: lastCharChanged(functions.invokeKey),
    });
    const [{ request_id }] = await db.sql<[{ request_id: string }]>`
      select public.refresh_shiphero_tokens()::text as request_id`;
    const response = await responseFor(db, request_id);
    assert.equal(response.status_code, 401);
    assert.deepEqual(JSON.parse(response.content!), {
      error: "unauthorized",
      message: "wrong invoke key",
    });
    assert.deepEqual(await connectionState(db, id), {
      status: "active",
      consecutive_failures: 0,
      lease_owner: null,
      last_error: null,
      backoff_s: null,
      runs: [],
    });
  } finally {
    await functions.stop();
    await db.drop();
  }
});

Deno.test("without the Vault secrets refresh_tokens() raises an error naming the missing secret", async () => {
  const db = await createTestDatabase();
  try {
    const noUrl = await db.sql`select public.refresh_tokens()`.catch((e) => e);
    assert.ok(noUrl instanceof postgres.PostgresError);
    assert.equal(noUrl.message, "Tether is not configured: Vault has no tether_functions_url");
    await db
      .sql`select vault.create_secret('http://127.0.0.1:1/functions/v1', 'tether_functions_url')`;
    const noKey = await db.sql`select public.refresh_tokens('shopify')`.catch((e) => e);
    assert.ok(noKey instanceof postgres.PostgresError);
    assert.equal(noKey.message, "Tether is not configured: Vault has no tether_invoke_key");
    assert.match(
      noKey.hint ?? "",
      /select vault\.create_secret\('<.*TETHER_INVOKE_KEY.*>', 'tether_invoke_key'\)/,
    );
    // The service key of Tether before the invoke key is not read any more.
    await db.sql`select vault.create_secret(${
      (await localSecrets()).secretKey
    }, 'tether_service_key')`;
    const stillNoKey = await db.sql`select public.sync_orders()`.catch((e) => e);
    assert.equal(stillNoKey.message, "Tether is not configured: Vault has no tether_invoke_key");
    const [queued] = await db.sql`select count(*)::int as n from net.http_request_queue`;
    assert.equal(queued!.n, 0);
  } finally {
    await db.drop();
  }
});

Deno.test("the refresh-tokens function checks its caller and its body over HTTP", async (t) => {
  const db = await createTestDatabase();
  const functions = await serveFunctionsFor(db, ["refresh-tokens"]);
  const secrets = await localSecrets();
  const url = `${functions.functionsUrl}/refresh-tokens`;
  const post = async (headers: Record<string, string>, body = "{}", method = "POST") => {
    const res = await fetch(url, {
      method,
      headers: { "content-type": "application/json", ...headers },
      body: method === "GET" ? undefined : body,
    });
    return { status: res.status, type: res.headers.get("content-type"), json: await res.json() };
  };
  const jwt = async (role: string, jwk: JWK = secrets.jwtPrivateJwk) =>
    await new SignJWT({ role })
      .setProtectedHeader({ alg: "ES256", kid: jwk.kid!, typ: "JWT" })
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(await importJWK(jwk, "ES256"));
  const zeroCounts = { refreshed: 0, failed: 0, reauth_required: 0, skipped: 0 };
  try {
    await t.step("no credentials → 401 JSON", async () => {
      const res = await post({});
      assert.equal(res.status, 401);
      assert.equal(res.type, "application/json");
      assert.equal(res.json.error, "unauthorized");
      assert.match(res.json.message, /^missing credentials/);
    });
    await t.step("a key differing in its last character → 401", async () => {
      const res = await post({ apikey: lastCharChanged(secrets.secretKey) });
      assert.deepEqual([res.status, res.json], [401, {
        error: "unauthorized",
        message: "unknown API key",
      }]);
      const bearer = await post({ authorization: `Bearer ${lastCharChanged(secrets.secretKey)}` });
      assert.equal(bearer.status, 401);
    });
    await t.step("the secret key → 200 with the job's counts", async () => {
      const res = await post({ apikey: secrets.secretKey });
      assert.equal(res.status, 200);
      const { duration_ms: _, ...counts } = res.json;
      assert.deepEqual(counts, zeroCounts);
    });
    await t.step("a valid ES256 service_role JWT → 200", async () => {
      const res = await post({ authorization: `Bearer ${await jwt("service_role")}` });
      assert.equal(res.status, 200);
      const { duration_ms: _, ...counts } = res.json;
      assert.deepEqual(counts, zeroCounts);
    });
    await t.step("an authenticated-role JWT → 401", async () => {
      const res = await post({ authorization: `Bearer ${await jwt("authenticated")}` });
      assert.deepEqual([res.status, res.json], [401, {
        error: "unauthorized",
        message: "wrong role: a service_role token is required",
      }]);
    });
    await t.step("a service_role JWT signed by another key with the same kid → 401", async () => {
      const { generateKeyPair, exportJWK } = await import("jose");
      const { privateKey } = await generateKeyPair("ES256", { extractable: true });
      const forged = { ...(await exportJWK(privateKey)), kid: secrets.jwtPrivateJwk.kid };
      const res = await post({ authorization: `Bearer ${await jwt("service_role", forged)}` });
      assert.equal(res.status, 401);
      assert.equal(res.json.error, "unauthorized");
    });
    await t.step('{"provider":"nope"} → 400 naming provider', async () => {
      const res = await post({ apikey: secrets.secretKey }, '{"provider":"nope"}');
      assert.equal(res.status, 400);
      assert.equal(res.json.error, "invalid_body");
      assert.match(res.json.message, /^field "provider": /);
    });
    await t.step("a body that is not JSON → 400", async () => {
      const res = await post({ apikey: secrets.secretKey }, "provider=shopify");
      assert.deepEqual([res.status, res.json], [400, {
        error: "invalid_body",
        message: "the request body must be JSON",
      }]);
    });
    await t.step("GET → 405", async () => {
      const res = await post({ apikey: secrets.secretKey }, "", "GET");
      assert.deepEqual([res.status, res.json], [405, {
        error: "method_not_allowed",
        message: "use POST",
      }]);
    });
    const [runs] = await db.sql`select count(*)::int as n from tether.runs`;
    assert.equal(runs!.n, 0);
    // No presented or configured key ever reaches the function's log.
    const logs = functions.logLines.join("\n");
    assert.equal(logs.includes(secrets.secretKey), false);
    assert.equal(logs.includes(secrets.secretKey.slice(0, -1)), false);
  } finally {
    await functions.stop();
    await db.drop();
  }
});

Deno.test({
  name: "a real pg_cron job fires and reaches the refresh-tokens function (slow: up to 70 s)",
  async fn() {
    const db = await createTestDatabase();
    const functions = await serveFunctionsFor(db, ["refresh-tokens"]);
    const env = await stackEnv();
    const main = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
    const jobName = `tether_test_${db.name}`;
    let jobId: string | undefined;
    try {
      await storeVaultSecrets(db.sql, functions);
      const [job] = await main<[{ jobid: string }]>`
        select cron.schedule_in_database(${jobName}, '* * * * *', 'select refresh_tokens()',
                                         ${db.name})::text as jobid`;
      jobId = job.jobid;
      const row = await eventually("the cron-fired refresh-tokens call's answer", async () => {
        const [r] = await db.sql<{ id: string }[]>`select id::text from net._http_response limit 1`;
        return r;
      }, 66_000);
      const invocation = await invocationOf<Record<string, number>>(db.sql, row.id);
      assert.equal(invocation.status, "succeeded", invocation.error ?? "");
      const { duration_ms: _, ...counts } = invocation.result;
      assert.deepEqual(counts, { refreshed: 0, failed: 0, reauth_required: 0, skipped: 0 });
      const run = await eventually("the cron run record", async () => {
        const [r] = await main`
          select status, return_message from cron.job_run_details
           where jobid = ${jobId!} and status in ('succeeded', 'failed') limit 1`;
        return r;
      });
      assert.deepEqual({ ...run }, { status: "succeeded", return_message: "SELECT 1" });
    } finally {
      if (jobId !== undefined) await main`select cron.unschedule(${jobId}::bigint)`;
      await main`delete from cron.job_run_details where jobid = ${jobId ?? "0"}::bigint`;
      await main.end();
      await functions.stop();
      await db.drop();
    }
  },
});
