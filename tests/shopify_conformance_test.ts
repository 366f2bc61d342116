// Shopify as it really behaves (issue #12), end to end against a fresh database and the sandbox:
// an app without protected-customer-data approval still syncs its customers (the withheld fields
// are named in the run), a backfill older than 60 days without read_all_orders is refused with a
// reason instead of finishing empty, and webhooks trust only the signed body: a forged topic is
// refused, a genuine delivery replayed under a fresh id is not processed again, a time in the
// future is clamped to the receipt, and Shopify Events' lower-case headers are read as well.
import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import { runBackfill } from "../functions-shared/jobs/backfill.ts";
import { runConnect } from "../functions-shared/jobs/connect.ts";
import { runSync } from "../functions-shared/jobs/sync.ts";
import {
  createTestDatabase,
  serveFunctionsFor,
  type TestDatabase,
  testDeps,
  webhookEventsSettled,
} from "./helpers/stack.ts";
import { type SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";
import { hmacBase64 } from "../scripts/local/signing.ts";

const SECRET = "sandbox-shopify-secret";
const DAY = 86_400_000;

interface World {
  db: TestDatabase;
  sb: SandboxControl;
  deps: Awaited<ReturnType<typeof testDeps>>;
}

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  try {
    await fn({ db, sb: new SandboxControl(running.url), deps: await testDeps(db) });
  } finally {
    await running.close();
    await db.drop();
  }
}

/** A Shopify account with `options` (scopes, approval), seeded, connected through `connect`. */
async function shop(
  w: World,
  options: { scopes?: string; protected_customer_data?: boolean },
  seed: Record<string, unknown>,
): Promise<{ id: string; account: SandboxAccount }> {
  const account = await w.sb.call<SandboxAccount>("POST", "/accounts", {
    provider: "shopify",
    ...options,
  });
  await w.sb.call("POST", `/data/shopify/${account.external_id}/seed`, { seed: 5, ...seed });
  const result = await runConnect(w.deps, {
    provider: "shopify",
    external_id: account.external_id,
    name: account.external_id,
    credentials: account.credentials,
    config: w.sb.configFor(account),
  });
  return { id: result.connection_id, account };
}

// ---------------------------------------------------------------------------------------------
// Protected customer data

Deno.test("a customers sync without protected-data approval succeeds, stores the rest and names what was withheld", async () => {
  await withWorld(async (w) => {
    const unapproved = await shop(w, {}, { customers: 40 });
    const approved = await shop(w, { protected_customer_data: true }, { customers: 40 });
    for (const c of [unapproved, approved]) {
      await runSync(w.deps, "customers", { connection_id: c.id, force: true });
    }
    const runs = await w.db.sql<
      { connection_id: string; status: string; error: string | null; withheld: string[] | null }[]
    >`select connection_id, status, error, details->'withheld_fields' as withheld
        from tether.runs where kind = 'sync' and stream = 'customers'`;
    const run = (id: string) => runs.find((r) => r.connection_id === id)!;
    assert.equal(run(unapproved.id).status, "succeeded", run(unapproved.id).error ?? "");
    assert.deepEqual(run(unapproved.id).withheld, ["email", "first_name", "last_name", "phone"]);
    assert.equal(run(approved.id).status, "succeeded");
    assert.equal(run(approved.id).withheld, null, "nothing withheld from an approved app");

    const rows = await w.db.sql<
      { connection_id: string; n: number; named: number; emailed: number }[]
    >`select connection_id, count(*)::int as n,
             count(*) filter (where first_name is not null)::int as named,
             count(*) filter (where email is not null)::int as emailed
        from tether.customers group by connection_id`;
    const of = (id: string) => rows.find((r) => r.connection_id === id)!;
    assert.equal(of(unapproved.id).n, 40, "every customer is stored");
    assert.equal(of(unapproved.id).named + of(unapproved.id).emailed, 0, "withheld are null");
    assert.equal(of(approved.id).n, 40);
    assert.ok(of(approved.id).named > 0 && of(approved.id).emailed > 0, "approved: read");
  });
});

// ---------------------------------------------------------------------------------------------
// The 60-day order window

Deno.test("a backfill older than 60 days without read_all_orders is refused at once, saying why; with it, old orders arrive", async () => {
  await withWorld(async (w) => {
    const seed = { orders: 120, spread_days: 150 };
    const limited = await shop(w, { scopes: "read_orders,read_customers" }, seed);
    const full = await shop(w, {}, seed);
    // The scopes Shopify granted are kept in the connection's config.
    const configs = await w.db.sql<{ id: string; scopes: string | null }[]>`
      select id, config->>'granted_scopes' as scopes from tether.connections`;
    assert.equal(configs.find((c) => c.id === limited.id)?.scopes, "read_orders,read_customers");
    assert.match(configs.find((c) => c.id === full.id)?.scopes ?? "", /read_all_orders/);

    const now = Date.now();
    const range = {
      stream: "orders" as const,
      range_start: new Date(now - 100 * DAY).toISOString(),
      range_end: new Date(now).toISOString(),
    };
    const refused = await runBackfill(w.deps, { connection_id: limited.id, ...range });
    assert.equal(refused.status, "failed", "failed at once, not retried");
    assert.match(refused.error ?? "", /read_all_orders/);
    assert.match(refused.error ?? "", /60 days/);
    const [row] = await w.db.sql<{ status: string; last_error: string }[]>`
      select status, last_error from tether.backfills where connection_id = ${limited.id}`;
    assert.equal(row?.status, "failed");
    assert.match(row?.last_error ?? "", /read_all_orders/);

    // Within the window the same connection backfills.
    const recent = await runBackfill(w.deps, {
      connection_id: limited.id,
      stream: "orders",
      range_start: new Date(now - 30 * DAY).toISOString(),
      range_end: new Date(now).toISOString(),
    });
    assert.equal(recent.status, "succeeded", recent.error);

    // With read_all_orders, the whole range arrives, orders created 60+ days ago included.
    const done = await runBackfill(w.deps, { connection_id: full.id, ...range });
    assert.equal(done.status, "succeeded", done.error);
    const [old] = await w.db.sql<{ n: number }[]>`
      select count(*)::int as n from tether.orders
       where connection_id = ${full.id} and ordered_at < ${new Date(now - 61 * DAY)}`;
    assert.ok((old?.n ?? 0) > 0, "orders older than 60 days were backfilled");
  });
});

// ---------------------------------------------------------------------------------------------
// Webhooks trust only what is signed

async function withWebhooks(
  fn: (w: World & { url: string; shopDomain: string; connId: string }) => Promise<void>,
): Promise<void> {
  await withWorld(async (w) => {
    const served = await serveFunctionsFor(w.db, ["webhooks"]);
    try {
      const c = await shop(w, {}, { orders: 5, customers: 5 });
      await fn({
        ...w,
        url: `${served.functionsUrl}/webhooks/shopify`,
        shopDomain: c.account.config.shop!,
        connId: c.id,
      });
    } finally {
      await served.stop();
    }
  });
}

async function send(
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return { status: res.status, json: await res.json() };
}

function classic(topic: string, shopDomain: string, signature: string, extra = {}) {
  return {
    "x-shopify-topic": topic,
    "x-shopify-shop-domain": shopDomain,
    "x-shopify-hmac-sha256": signature,
    "x-shopify-webhook-id": crypto.randomUUID(),
    "x-shopify-api-version": "2026-10",
    ...extra,
  };
}

const customerBody = (updatedAt: string) =>
  JSON.stringify({
    id: 777,
    admin_graphql_api_id: "gid://shopify/Customer/777",
    first_name: "Ada",
    last_name: "L",
    email: "ada@example.com",
    phone: null,
    state: "enabled",
    created_at: "2025-11-01T10:00:00-05:00",
    updated_at: updatedAt,
  });

Deno.test("a genuine customers/update replayed as customers/delete with a 2099 Triggered-At is refused and changes nothing", async () => {
  await withWebhooks(async (w) => {
    const body = customerBody("2025-11-30T10:00:00-05:00");
    const signature = await hmacBase64(SECRET, body);
    const genuine = await send(w.url, body, classic("customers/update", w.shopDomain, signature));
    assert.equal(genuine.status, 200);
    await webhookEventsSettled(w.db);
    const forged = await send(
      w.url,
      body,
      classic("customers/delete", w.shopDomain, signature, {
        "x-shopify-triggered-at": "2099-01-01T00:00:00Z",
      }),
    );
    assert.equal(forged.status, 400, JSON.stringify(forged.json));
    assert.match(String(forged.json.message), /customers\/delete body: updated_at/);
    const rows = await w.db.sql<{ status: string; t: Date }[]>`
      select status, remote_updated_at as t from tether.customers
       where external_id = 'gid://shopify/Customer/777'`;
    assert.deepEqual(rows.map((r) => [r.status, r.t.toISOString()]), [[
      "active",
      "2025-11-30T15:00:00.000Z",
    ]]);
    const [events] = await w.db.sql<{ n: number }[]>`
      select count(*)::int as n from tether.webhook_events`;
    assert.equal(events?.n, 1, "the forgery is not recorded");
  });
});

Deno.test("a genuine delivery replayed under a fresh X-Shopify-Webhook-Id is a duplicate, not processed again", async () => {
  await withWebhooks(async (w) => {
    const body = customerBody("2025-11-30T10:00:00-05:00");
    const signature = await hmacBase64(SECRET, body);
    // The answer counts what was recorded: processing comes after it.
    const first = await send(w.url, body, classic("customers/update", w.shopDomain, signature));
    assert.equal(first.json.accepted, 1);
    const replay = await send(w.url, body, classic("customers/update", w.shopDomain, signature));
    assert.equal(replay.status, 200);
    assert.equal(replay.json.duplicates, 1, JSON.stringify(replay.json));
    assert.equal(replay.json.accepted, 0);
    await webhookEventsSettled(w.db);
    const [events] = await w.db.sql<{ n: number; attempts: number }[]>`
      select count(*)::int as n, max(attempts)::int as attempts from tether.webhook_events`;
    assert.deepEqual([events?.n, events?.attempts], [1, 1]);
  });
});

Deno.test("record times come from the signed body and never lie in the future; a deletion takes its receipt time", async () => {
  await withWebhooks(async (w) => {
    const before = Date.now();
    const future = customerBody("2099-01-01T00:00:00Z");
    const r = await send(
      w.url,
      future,
      classic("customers/update", w.shopDomain, await hmacBase64(SECRET, future)),
    );
    assert.equal(r.json.accepted, 1);
    await webhookEventsSettled(w.db);
    const [row] = await w.db.sql<{ t: Date }[]>`
      select remote_updated_at as t from tether.customers
       where external_id = 'gid://shopify/Customer/777'`;
    assert.ok(row!.t.getTime() >= before - 1000 && row!.t.getTime() <= Date.now(), "clamped");

    // customers/delete carries no time: the receipt's, whatever X-Shopify-Triggered-At says.
    const deletion = JSON.stringify({
      id: 778,
      phone: null,
      addresses: [],
      tax_exemptions: [],
      admin_graphql_api_id: "gid://shopify/Customer/778",
    });
    const d = await send(
      w.url,
      deletion,
      classic("customers/delete", w.shopDomain, await hmacBase64(SECRET, deletion), {
        "x-shopify-triggered-at": "2099-01-01T00:00:00Z",
      }),
    );
    assert.equal(d.json.accepted, 1, JSON.stringify(d.json));
    await webhookEventsSettled(w.db);
    const [gone] = await w.db.sql<{ status: string; t: Date }[]>`
      select status, remote_updated_at as t from tether.customers
       where external_id = 'gid://shopify/Customer/778'`;
    assert.equal(gone?.status, "inactive");
    assert.ok(gone!.t.getTime() <= Date.now(), "not frozen until 2099");
  });
});

Deno.test("an order topic on a customer body (or the reverse) is refused", async () => {
  await withWebhooks(async (w) => {
    const body = customerBody("2025-11-30T10:00:00-05:00");
    const r = await send(
      w.url,
      body,
      classic("orders/updated", w.shopDomain, await hmacBase64(SECRET, body)),
    );
    assert.equal(r.status, 400);
    assert.match(String(r.json.message), /admin_graphql_api_id: expected a Order GID/);
    const [events] = await w.db.sql<{ n: number }[]>`
      select count(*)::int as n from tether.webhook_events`;
    assert.equal(events?.n, 0);
  });
});

Deno.test("Shopify Events deliveries (lower-case shopify-* headers) are verified and processed", async () => {
  await withWorld(async (w) => {
    const served = await serveFunctionsFor(w.db, ["webhooks"]);
    try {
      const c = await shop(w, {}, { orders: 10, customers: 10 });
      await w.sb.call("POST", `/data/shopify/${c.account.external_id}/mutate`, { changes: 12 });
      const report = await w.sb.call<{ messages: number; failed: number }>(
        "POST",
        "/webhooks/deliver",
        {
          provider: "shopify",
          accounts: [c.account.external_id],
          url: `${served.functionsUrl}/webhooks/shopify`,
          header_style: "events",
        },
      );
      assert.ok(report.messages > 0);
      assert.equal(report.failed, 0, "every Events delivery accepted");
      await webhookEventsSettled(w.db);
      const [events] = await w.db.sql<{ n: number; processed: number }[]>`
        select count(*)::int as n, count(*) filter (where status = 'processed')::int as processed
          from tether.webhook_events`;
      assert.ok((events?.n ?? 0) > 0);
      assert.equal(events?.processed, events?.n, "all processed");
    } finally {
      await served.stop();
    }
  });
});
