// The invoke key (README "Security model", issue #13 item 10): pg_net keeps each queued request,
// headers included, in net.http_request_queue, which the extension grants to PUBLIC
// (supabase/pg_net sql/pg_net.sql; the stand-in grants the same, tests/schema_test.ts). So what
// the SQL API sends must be a key that starts Tether's jobs and opens nothing else: the functions
// pg_cron reaches accept it, `connect` and every Supabase API refuse it, and the service key never
// passes through pg_net.
import assert from "node:assert/strict";
import {
  createTestDatabase,
  invocationOf,
  localSecrets,
  serveFunctionsFor,
  storeVaultSecrets,
} from "./helpers/stack.ts";

/** A key that differs from `key` in its last character only. */
function lastCharChanged(key: string): string {
  return key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
}

Deno.test("pg_net's queue, readable by every role, carries the invoke key and no Supabase key", async () => {
  const db = await createTestDatabase();
  const secrets = await localSecrets();
  try {
    // No pg_net worker serves this database: the requests stay queued, as they wait on Supabase.
    await storeVaultSecrets(db.sql, {
      functionsUrl: "http://127.0.0.1:1/functions/v1",
      invokeKey: secrets.invokeKey,
    });
    await db.sql`select public.refresh_tokens(), public.sync_orders(), public.sync_customers(),
                        public.process_webhook_events()`;
    const queued = await db.sql.begin(async (tx) => {
      await tx`set local role anon`;
      return await tx<{ url: string; headers: Record<string, string> }[]>`
        select url, headers from net.http_request_queue order by id`;
    });
    assert.deepEqual(queued.map((r) => r.url.replace(/^.*\/functions\/v1\//, "")), [
      "refresh-tokens",
      "sync-orders",
      "sync-customers",
      "webhooks/_sweep",
    ]);
    for (const { headers } of queued) {
      assert.deepEqual(headers, {
        "Content-Type": "application/json",
        "x-tether-invoke-key": secrets.invokeKey,
        Prefer: "respond-async",
      });
    }
    const readable = JSON.stringify(queued);
    assert.equal(readable.includes(secrets.secretKey), false, "the service key is not queued");
    assert.equal(readable.includes(secrets.jwtSecret), false);
  } finally {
    await db.drop();
  }
});

Deno.test("each function pg_cron reaches takes the invoke key; connect refuses it", async (t) => {
  const db = await createTestDatabase();
  const functions = await serveFunctionsFor(db);
  const secrets = await localSecrets();
  const call = async (
    path: string,
    headers: Record<string, string>,
    init: { method?: string; body?: string } = {},
  ) => {
    const res = await fetch(`${functions.functionsUrl}/${path}`, {
      method: init.method ?? "POST",
      headers: { "content-type": "application/json", ...headers },
      body: init.method === "GET" ? undefined : init.body ?? "{}",
    });
    return { status: res.status, json: await res.json() };
  };
  const invoke = { "x-tether-invoke-key": secrets.invokeKey };
  try {
    await t.step("refresh-tokens, sync-orders, sync-customers, webhooks/_sweep → 200", async () => {
      for (const path of ["refresh-tokens", "sync-orders", "sync-customers", "webhooks/_sweep"]) {
        const res = await call(path, invoke);
        assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.json)}`);
      }
    });
    await t.step("backfill → past auth, to the job (an unknown backfill is a 404)", async () => {
      const res = await call("backfill", invoke, {
        body: JSON.stringify({ backfill_id: crypto.randomUUID() }),
      });
      assert.equal(res.status, 404, JSON.stringify(res.json));
      assert.equal(res.json.error, "unknown_backfill");
    });
    await t.step("through pg_net, as pg_cron calls: 202, then the job's result", async () => {
      await storeVaultSecrets(db.sql, functions);
      const [{ id }] = await db.sql<[{ id: string }]>`select public.sync_orders()::text as id`;
      const invocation = await invocationOf(db.sql, id);
      assert.equal(invocation.status, "succeeded", invocation.error ?? "");
      // pg_net's record of the answer holds no key either.
      const [leaked] = await db.sql<[{ n: number }]>`
        select count(*)::int as n from net._http_response
         where strpos(coalesce(headers::text, '') || coalesce(content, ''), ${secrets.invokeKey}) > 0
            or strpos(coalesce(headers::text, '') || coalesce(content, ''), ${secrets.secretKey}) > 0`;
      assert.equal(leaked.n, 0);
    });
    const refused = {
      error: "unauthorized",
      message: "the invoke key is not accepted here: send a secret API key or a service_role JWT",
    };
    await t.step("connect → 401, its job and its routes alike", async () => {
      assert.deepEqual(await call("connect", invoke), { status: 401, json: refused });
      assert.deepEqual(await call("connect/_key_ring", invoke, { method: "GET" }), {
        status: 401,
        json: refused,
      });
      const start = await call("connect/shopify/start?shop=x.myshopify.com", invoke, {
        method: "GET",
      });
      assert.deepEqual(start, { status: 401, json: refused });
      // Beside the service key too: a request carrying the invoke key is judged by it alone.
      const both = await call("connect", { ...invoke, apikey: secrets.secretKey });
      assert.deepEqual(both, { status: 401, json: refused });
    });
    await t.step("a wrong invoke key → 401, nothing done", async () => {
      for (const key of [lastCharChanged(secrets.invokeKey), secrets.secretKey]) {
        const res = await call("sync-orders", { "x-tether-invoke-key": key });
        assert.deepEqual(res, {
          status: 401,
          json: { error: "unauthorized", message: "wrong invoke key" },
        });
      }
    });
    await t.step("the invoke key is no API key: as apikey or bearer → 401", async () => {
      const asApiKey: Record<string, string>[] = [
        { apikey: secrets.invokeKey },
        { authorization: `Bearer ${secrets.invokeKey}` },
      ];
      for (const headers of asApiKey) {
        const res = await call("sync-orders", headers);
        assert.equal(res.status, 401, JSON.stringify(res.json));
      }
    });
    await t.step("the service key keeps working for people (CLI, dashboard)", async () => {
      assert.equal((await call("sync-orders", { apikey: secrets.secretKey })).status, 200);
      const keyRing = await call("connect/_key_ring", { apikey: secrets.secretKey }, {
        method: "GET",
      });
      assert.equal(keyRing.status, 200);
    });
    const logs = functions.logLines.join("\n");
    assert.equal(logs.includes(secrets.invokeKey), false);
    assert.equal(logs.includes(secrets.invokeKey.slice(0, -1)), false);
  } finally {
    await functions.stop();
    await db.drop();
  }
});
