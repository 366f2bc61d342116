// Disconnect against the local Postgres and the provider sandboxes: the grant ends at the provider
// where it can (QuickBooks' revoke endpoint, Shopify's appUninstall), the credentials go, the
// records stay or go as asked, no sweep calls the connection again, and `connect` brings it back.
// A revocation the provider cannot do right now changes nothing.
import assert from "node:assert/strict";
import { runDisconnect } from "../functions-shared/jobs/disconnect.ts";
import { httpStatus, JobError } from "../functions-shared/errors.ts";
import { runConnect } from "../functions-shared/jobs/connect.ts";
import type { ProviderName } from "../functions-shared/providers/types.ts";
import {
  type Conn,
  connectNew,
  hideTokens,
  makeDue,
  NOTHING,
  outcomes,
  row,
  sweep,
  withWorld,
  type World,
} from "./helpers/refresh_world.ts";
import { invocationOf, serveFunctionsFor, storeVaultSecrets } from "./helpers/stack.ts";
import { withWebhookWorld } from "./helpers/webhooks_world.ts";
import { connectSeeded } from "./helpers/records.ts";
import { INVOKE_KEY_HEADER } from "../functions-shared/auth.ts";

/** One stored order, so that "records kept" and "records deleted" can be told apart. */
async function storeOrder(w: World, conn: Conn): Promise<void> {
  await w.db.sql`select * from tether.upsert_orders(${conn.id}, ${
    w.db.sql.json([{ external_id: "o-1", remote_updated_at: "2026-12-01T00:00:00Z", raw: {} }])
  })`;
}

async function counts(w: World, conn: Conn) {
  const [r] = await w.db.sql<{ connections: number; credentials: number; orders: number }[]>`
    select (select count(*)::int from tether.connections where id = ${conn.id}) as connections,
           (select count(*)::int from tether.credentials where connection_id = ${conn.id})
             as credentials,
           (select count(*)::int from tether.orders where connection_id = ${conn.id}) as orders`;
  return r!;
}

Deno.test("disconnect ends the grant at QuickBooks and Shopify, deletes the credentials, keeps the records, and no sweep calls the connection again", async () => {
  await withWorld(async (w) => {
    for (const provider of ["quickbooks", "shopify"] as const) {
      const conn = await connectNew(
        w,
        provider,
        provider === "shopify" ? { kind: "expiring" } : {},
      );
      await storeOrder(w, conn);
      assert.equal((await w.sandbox.inspect(provider, conn.externalId)).revoked, false);

      const result = await runDisconnect(w.deps, {
        connection_id: conn.id,
        delete_records: false,
        revoke: true,
      });
      assert.equal(result.revocation, "revoked", provider);
      assert.equal(result.records, "kept");
      assert.equal(
        (await w.sandbox.inspect(provider, conn.externalId)).revoked,
        true,
        `${provider}: every token of the grant is dead at the provider`,
      );
      assert.deepEqual(await counts(w, conn), { connections: 1, credentials: 0, orders: 1 });
      const after = await row(w, conn);
      assert.equal(after.status, "disabled");
      assert.match(after.last_error ?? "", /disconnected \(revoked\)/);
      assert.ok(!hideTokens(w, JSON.stringify(result)).includes("<token>"), "no token answered");
    }
    // Due or not, a disabled connection is not refreshed: the sandbox sees no refresh at all.
    await makeDue(w);
    const before = await w.sandbox.stats();
    assert.deepEqual(outcomes(await sweep(w.deps)), NOTHING);
    assert.deepEqual((await w.sandbox.stats()).refresh_calls, before.refresh_calls);
  });
});

Deno.test("where the provider documents no revocation, disconnect says what to do there; delete_records removes the connection and its records; connect brings a kept one back", async () => {
  await withWorld(async (w) => {
    const providers: ProviderName[] = ["maystro", "shiphero", "lightspeed"];
    for (const provider of providers) {
      const conn = await connectNew(w, provider);
      await storeOrder(w, conn);
      const result = await runDisconnect(w.deps, {
        connection_id: conn.id,
        delete_records: provider === "shiphero",
        revoke: true,
      });
      assert.equal(result.revocation, "not_supported", provider);
      assert.ok(result.hint.length > 40, `${provider}: a hint to act at the provider`);
      assert.equal((await w.sandbox.inspect(provider, conn.externalId)).revoked, false);
      if (provider === "shiphero") {
        assert.equal(result.records, "deleted");
        assert.deepEqual(await counts(w, conn), { connections: 0, credentials: 0, orders: 0 });
      } else {
        assert.deepEqual(await counts(w, conn), { connections: 1, credentials: 0, orders: 1 });
      }
    }

    // Maystro's key still works at Maystro: connecting it again makes the same row active.
    const [maystro] = await w.db.sql<{ id: string; external_id: string }[]>`
      select id, external_id from tether.connections where provider = 'maystro'`;
    const account = await w.sandbox.inspect("maystro", maystro!.external_id);
    assert.equal(account.revoked, false);
  });
});

Deno.test("a revocation the provider cannot do now changes nothing; a token it already rejects counts as ended", async () => {
  await withWorld(async (w) => {
    const qb = await connectNew(w, "quickbooks");
    await w.sandbox.fault({ provider: "quickbooks", endpoint: "api", kind: "5xx" });
    let caught: unknown;
    try {
      await runDisconnect(w.deps, { connection_id: qb.id, delete_records: false, revoke: true });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof JobError, String(caught));
    assert.equal(caught.code, "provider_unavailable");
    assert.equal(httpStatus(caught.code), 502);
    assert.match(caught.message, /nothing was changed/);
    assert.ok(!hideTokens(w, caught.message).includes("<token>"));
    assert.equal((await row(w, qb)).status, "active");
    assert.equal((await counts(w, qb)).credentials > 0, true, "credentials kept");

    // Shopify's grant already gone (the shop uninstalled the app): its 401 means nothing is left.
    const shop = await connectNew(w, "shopify");
    await w.sandbox.revoke("shopify", shop.externalId);
    const gone = await runDisconnect(w.deps, {
      connection_id: shop.id,
      delete_records: false,
      revoke: true,
    });
    assert.equal(gone.revocation, "already_invalid");
    assert.equal((await row(w, shop)).status, "disabled");

    const unknown = crypto.randomUUID();
    await assert.rejects(
      runDisconnect(w.deps, { connection_id: unknown, delete_records: false, revoke: true }),
      (err: JobError) => err.code === "unknown_connection" && err.message.includes(unknown),
    );
  });
});

Deno.test("disconnect_connection() in SQL reaches the disconnect function through pg_net", async () => {
  await withWorld(async (w) => {
    const served = await serveFunctionsFor(w.db, ["disconnect"]);
    try {
      const sql = w.db.sql;
      await storeVaultSecrets(sql, served);
      const conn = await connectNew(w, "quickbooks");
      await storeOrder(w, conn);

      // The invoke key sits in pg_net's queue, readable by every role: with it, the function
      // carries out only a disconnect recorded in SQL, never one named in the body.
      const direct = await fetch(`${served.functionsUrl}/disconnect`, {
        method: "POST",
        headers: { "content-type": "application/json", [INVOKE_KEY_HEADER]: served.invokeKey },
        body: JSON.stringify({ connection_id: conn.id }),
      });
      assert.equal(direct.status, 401);
      assert.match((await direct.json()).message, /only carries out a disconnect recorded/);
      assert.equal((await row(w, conn)).status, "active");

      const [req] = await sql<{ id: string }[]>`
        select public.disconnect_connection(${conn.id}::uuid, delete_records => true) as id`;
      const done = await invocationOf<{ revocation: string; records: string }>(sql, req!.id);
      assert.equal(done.status, "succeeded", hideTokens(w, done.error ?? ""));
      assert.deepEqual([done.result.revocation, done.result.records], ["revoked", "deleted"]);
      assert.deepEqual(await counts(w, conn), { connections: 0, credentials: 0, orders: 0 });

      await assert.rejects(
        sql`select public.disconnect_connection(${crypto.randomUUID()}::uuid)`,
        /unknown connection/,
      );
      const requests = await sql`select 1 from tether.disconnect_requests`;
      assert.equal(requests.length, 0, "the request is gone once done");
    } finally {
      await served.stop();
    }
  }, { realClock: true });
});

Deno.test("connect after disconnect makes the kept connection active again with the new credentials", async () => {
  await withWorld(async (w) => {
    const conn = await connectNew(w, "maystro");
    await runDisconnect(w.deps, { connection_id: conn.id, delete_records: false, revoke: true });
    const account = await w.sandbox.inspect("maystro", conn.externalId);
    assert.equal(account.revoked, false);
    const fresh = await w.sandbox.account("maystro");
    const again = await runConnect(w.deps, {
      provider: "maystro",
      external_id: conn.externalId,
      name: "again",
      credentials: fresh.credentials,
      config: w.sandbox.configFor(fresh),
    });
    assert.equal(again.connection_id, conn.id, "the same row, with its records");
    assert.equal((await row(w, conn)).status, "active");
  });
});

Deno.test("webhooks for a disconnected connection are recorded as ignored and write nothing", async () => {
  await withWebhookWorld(async (w) => {
    const conn = await connectSeeded(w.deps, w.sandbox, "shopify", { orders: 5, customers: 0 });
    await runDisconnect(w.deps, { connection_id: conn.id, delete_records: false, revoke: false });
    // Changes at the shop after the disconnect, delivered as Shopify signs them.
    await w.sandbox.call("POST", `/data/shopify/${conn.externalId}/mutate`, { changes: 5 });
    const sent = await w.sandbox.call<{ sent: number; failed: number }>(
      "POST",
      "/webhooks/deliver",
      {
        provider: "shopify",
        accounts: [conn.externalId],
        url: `${w.hooks}/shopify`,
      },
    );
    assert.ok(sent.sent > 0, "the shop sent deliveries");
    assert.equal(sent.failed, 0, "each answered 2xx: a genuine delivery is acknowledged");
    const events = await w.db.sql<{ status: string }[]>`
      select status from tether.webhook_events where connection_id = ${conn.id}`;
    assert.ok(events.length > 0, "recorded");
    assert.deepEqual([...new Set(events.map((e) => e.status))], ["ignored"]);
    const [{ n }] = await w.db.sql<[{ n: number }]>`
      select count(*)::int as n from tether.orders where connection_id = ${conn.id}`;
    assert.equal(n, 0, "nothing written for a disabled connection");
  }, { shopify: { capacity: 1e9, restorePerSecond: 1e9 } });
});
