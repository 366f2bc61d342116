// Webhooks end to end: the sandboxes deliver real signed webhooks (duplicated, shuffled, retried)
// to the served `webhooks` function over HTTP, against a fresh database per test. Each event is
// stored once and processed once, the rows converge on the newest state whatever the order,
// every unproven delivery is rejected with nothing stored, and a failed event is retried by the
// sweep that process_webhook_events() triggers. A delivery is answered once its events are
// recorded and they are processed after the answer, so the tests wait for the events to leave
// `received` (webhookEventsSettled) before they look at what a delivery did.
import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import { runConnect } from "../functions-shared/jobs/connect.ts";
import type { ProviderName, StreamName } from "../functions-shared/providers/types.ts";
import {
  createTestDatabase,
  eventually,
  serveFunctionsFor,
  storeVaultSecrets,
  type TestDatabase,
  testDeps,
  webhookEventsSettled,
} from "./helpers/stack.ts";
import { type SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";
import { hmacBase64, hmacHex } from "../scripts/local/signing.ts";

const SHOPIFY_SECRET = "sandbox-shopify-secret";

interface World {
  db: TestDatabase;
  sandbox: SandboxControl;
  deps: Awaited<ReturnType<typeof testDeps>>;
  served: Awaited<ReturnType<typeof serveFunctionsFor>>;
  hooks: string;
}

interface Conn {
  id: string;
  provider: ProviderName;
  account: SandboxAccount;
}

async function withWorld(
  fn: (w: World) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  const served = await serveFunctionsFor(db, ["webhooks"], { env });
  try {
    const deps = await testDeps(db);
    const sandbox = new SandboxControl(running.url);
    // Webhook re-fetches are not paced: give the sandboxes room for a burst of them.
    await sandbox.call("POST", "/config", {
      limits: {
        quickbooks: { capacity: 100_000, restore_per_second: 10_000 },
        maystro: { capacity: 100_000, restore_per_second: 10_000 },
      },
    });
    await fn({ db, sandbox, deps, served, hooks: `${served.functionsUrl}/webhooks` });
  } finally {
    await served.stop();
    await running.close();
    await db.drop();
  }
}

async function connection(
  w: World,
  provider: ProviderName,
  seed = { orders: 30, customers: 30 },
): Promise<Conn> {
  const account = await w.sandbox.account(provider);
  await w.sandbox.call("POST", `/data/${provider}/${account.external_id}/seed`, {
    seed: 3,
    ...seed,
  });
  const result = await runConnect(w.deps, {
    provider,
    external_id: account.external_id,
    name: `${provider} ${account.external_id}`,
    credentials: account.credentials,
    config: w.sandbox.configFor(account),
  });
  return { id: result.connection_id, provider, account };
}

function urlFor(w: World, c: Conn): string {
  if (c.provider === "shiphero") return `${w.hooks}/shiphero/${c.id}`;
  if (c.provider === "maystro") {
    return `${w.hooks}/maystro/${c.id}/${c.account.credentials.webhook_secret}`;
  }
  return `${w.hooks}/${c.provider}`;
}

interface DeliverResult {
  changes: number;
  messages: number;
  sent: number;
  duplicates: number;
  failed: number;
  deliveries: { status: number }[];
}

/** The sandbox sends the changes as signed deliveries; answered, not yet processed. */
function send(
  w: World,
  conns: Conn[],
  extra: Record<string, unknown> = {},
): Promise<DeliverResult> {
  return w.sandbox.call("POST", "/webhooks/deliver", {
    provider: conns[0]!.provider,
    accounts: conns.map((c) => c.account.external_id),
    url: urlFor(w, conns[0]!),
    ...extra,
  });
}

/** Sends the changes and waits until their events are processed (or failed). */
async function deliver(
  w: World,
  conns: Conn[],
  extra: Record<string, unknown> = {},
): Promise<DeliverResult> {
  const result = await send(w, conns, extra);
  await webhookEventsSettled(w.db);
  return result;
}

async function mutate(w: World, c: Conn, changes: number): Promise<void> {
  await w.sandbox.call("POST", `/data/${c.provider}/${c.account.external_id}/mutate`, { changes });
}

interface Truth {
  external_id: string;
  updated_at: string;
  status: string;
  tracking_number?: string | null;
}

async function truthOf(w: World, c: Conn, stream: StreamName): Promise<Map<string, Truth>> {
  const body = await w.sandbox.call<{ records: Truth[] }>(
    "GET",
    `/data/${c.provider}/${c.account.external_id}/${stream}`,
  );
  return new Map(body.records.map((r) => [r.external_id, r]));
}

/** Every stored row of the connection equals the sandbox's newest state of that record. */
async function assertRowsAreNewest(
  w: World,
  c: Conn,
  stream: StreamName,
  opts: { timeAndAll?: boolean } = {},
): Promise<number> {
  const truth = await truthOf(w, c, stream);
  const rows = stream === "orders"
    ? await w.db.sql<
      { external_id: string; status: string; tracking_number: string | null; t: Date | null }[]
    >`select external_id, status, tracking_number, remote_updated_at as t from tether.orders
       where connection_id = ${c.id}`
    : await w.db.sql<
      { external_id: string; status: string; tracking_number: null; t: Date | null }[]
    >`select external_id, status, null as tracking_number, remote_updated_at as t
        from tether.customers where connection_id = ${c.id}`;
  for (const row of rows) {
    const want = truth.get(row.external_id);
    assert.ok(want, `${c.provider} ${stream} ${row.external_id} is not in the sandbox`);
    const label = `${c.provider} ${stream} ${row.external_id}`;
    assert.equal(row.status, want.status, `${label}: status`);
    if (stream === "orders") {
      assert.equal(row.tracking_number, want.tracking_number ?? null, `${label}: tracking`);
    }
    // A Shopify customers/delete body carries no time: the deletion is stored at its receipt
    // (the X-Shopify-Triggered-At header is unsigned, issue #12), not at the sandbox's time.
    const deletedAtReceipt = c.provider === "shopify" && want.status === "inactive";
    if (opts.timeAndAll !== false && !deletedAtReceipt) {
      assert.equal(
        Math.floor(row.t!.getTime() / 1000),
        Math.floor(Date.parse(want.updated_at) / 1000),
        `${label}: remote_updated_at`,
      );
    }
  }
  return rows.length;
}

async function eventCounts(w: World) {
  return await w.db.sql<
    { provider: string; rows: number; processed: number; other: number; max_attempts: number }[]
  >`
    select provider, count(*)::int as rows,
           count(*) filter (where status = 'processed')::int as processed,
           count(*) filter (where status <> 'processed')::int as other,
           max(attempts)::int as max_attempts
      from tether.webhook_events group by provider order by provider`;
}

// ---------------------------------------------------------------------------------------------

Deno.test("1,000 deliveries across providers, 30 % duplicated and shuffled: each event stored once, rows equal the newest state", async () => {
  await withWorld(async (w) => {
    const shopify = await connection(w, "shopify");
    const lightspeed = await connection(w, "lightspeed");
    const quickbooks = await connection(w, "quickbooks");
    const shiphero = await connection(w, "shiphero", { orders: 60, customers: 10 });
    const maystro = await connection(w, "maystro");
    // The rounds below move the providers' clock 100 s on; it starts an hour behind ours, so
    // the records' times stay before their receipt (a receiver clamps later ones to it).
    await w.sandbox.call("POST", "/clock", { advance_seconds: -3600 });
    const perRound: [Conn, number][] = [
      [shopify, 20],
      [lightspeed, 15],
      [quickbooks, 5],
      [shiphero, 10],
      [maystro, 5],
    ];
    // 20 rounds of changes, a few seconds apart, so one record has many versions in flight. They
    // are made in the past: a receiver clamps a body's time to the delivery's receipt (a time in
    // the future is a forgery or a skewed clock), so the provider's clock must not run ahead.
    await w.sandbox.call("POST", "/clock", { advance_seconds: -150 });
    for (let round = 0; round < 20; round++) {
      for (const [c, n] of perRound) await mutate(w, c, n);
      await w.sandbox.call("POST", "/clock", { advance_seconds: 5 });
    }
    let sent = 0;
    let duplicates = 0;
    const messages: Record<string, number> = {};
    for (const [c] of perRound) {
      const r = await deliver(w, [c], { duplicate_share: 0.3, shuffle: true, seed: 11 });
      assert.equal(r.failed, 0, `${c.provider}: every delivery acknowledged`);
      sent += r.sent;
      duplicates += r.duplicates;
      messages[c.provider] = r.messages;
      if (c.provider === "quickbooks") messages.quickbooks_events = r.changes;
    }
    assert.ok(sent >= 1000, `sent ${sent} deliveries`);
    assert.ok(duplicates >= sent * 0.15, `${duplicates} duplicates`);

    const counts = new Map((await eventCounts(w)).map((r) => [r.provider, r]));
    for (const provider of ["shopify", "lightspeed", "shiphero"]) {
      assert.equal(counts.get(provider)?.rows, messages[provider], `${provider}: stored once`);
    }
    assert.equal(counts.get("quickbooks")?.rows, messages.quickbooks_events);
    assert.ok((counts.get("maystro")?.rows ?? 0) > 0);
    for (const [provider, c] of counts) {
      assert.equal(c.other, 0, `${provider}: every event processed`);
      assert.equal(c.max_attempts, 1, `${provider}: no event processed twice`);
    }

    assert.ok(await assertRowsAreNewest(w, shopify, "orders") > 50);
    assert.ok(await assertRowsAreNewest(w, shopify, "customers") > 20);
    assert.ok(await assertRowsAreNewest(w, lightspeed, "orders") > 20);
    assert.ok(await assertRowsAreNewest(w, lightspeed, "customers") > 10);
    assert.ok(
      await assertRowsAreNewest(w, quickbooks, "orders") +
          await assertRowsAreNewest(w, quickbooks, "customers") > 10,
    );
    assert.ok(await assertRowsAreNewest(w, maystro, "orders") > 5);
    // ShipHero's webhooks carry facts without the order's time: status and tracking must match.
    assert.ok(await assertRowsAreNewest(w, shiphero, "orders", { timeAndAll: false }) > 5);
  });
});

// --- rejection: a valid fixture, then exactly one thing changed per case ---------------------

async function shopifyFixture(shop: string, secret = SHOPIFY_SECRET, id = crypto.randomUUID()) {
  const body = JSON.stringify({
    id: 1,
    admin_graphql_api_id: "gid://shopify/Customer/1",
    email: "a@example.com",
    first_name: "A",
    last_name: "B",
    phone: null,
    updated_at: "2026-11-22T10:00:00Z",
  });
  return {
    body,
    headers: {
      "content-type": "application/json",
      "x-shopify-topic": "customers/update",
      "x-shopify-shop-domain": shop,
      "x-shopify-webhook-id": id,
      "x-shopify-hmac-sha256": await hmac(secret, body, "base64"),
    } as Record<string, string>,
  };
}

async function post(url: string, headers: Record<string, string>, body: string | Uint8Array) {
  const res = await fetch(url, { method: "POST", headers, body: body as BodyInit });
  await res.body?.cancel();
  return res.status;
}

Deno.test("tampered, unsigned, wrong-secret, truncated and oversized deliveries are rejected and store nothing", async () => {
  await withWorld(async (w) => {
    const shopify = await connection(w, "shopify", { orders: 1, customers: 1 });
    const shiphero = await connection(w, "shiphero", { orders: 1, customers: 0 });
    const maystro = await connection(w, "maystro", { orders: 1, customers: 0 });
    const shop = shopify.account.config.shop!;
    const url = `${w.hooks}/shopify`;
    const rejected: [string, number][] = [];
    const send = async (what: string, headers: Record<string, string>, body: string) =>
      rejected.push([what, await post(url, headers, body)]);

    let f = await shopifyFixture(shop);
    await send("tampered body", f.headers, f.body.replace('"A"', '"X"'));
    f = await shopifyFixture(shop);
    const { "x-shopify-hmac-sha256": _sig, ...unsigned } = f.headers;
    await send("unsigned", unsigned, f.body);
    f = await shopifyFixture(shop, "not-the-secret");
    await send("wrong secret", f.headers, f.body);
    f = await shopifyFixture(shop);
    await send("truncated body", f.headers, f.body.slice(0, -10));
    f = await shopifyFixture(shop);
    await send(
      "signature of another body",
      { ...f.headers, "x-shopify-hmac-sha256": "AAAA" },
      f.body,
    );
    const big = JSON.stringify({ admin_graphql_api_id: "x", pad: "x".repeat(1024 * 1024) });
    rejected.push([
      "oversized",
      await post(url, {
        ...f.headers,
        "x-shopify-hmac-sha256": await hmac(SHOPIFY_SECRET, big, "base64"),
      }, big),
    ]);

    // The other providers: wrong secret / missing header / wrong path secret.
    const qbBody = JSON.stringify([{
      id: "e1",
      type: "qbo.customer.updated.v1",
      intuitentityid: "1",
      intuitaccountid: "1",
    }]);
    rejected.push([
      "quickbooks wrong token",
      await post(`${w.hooks}/quickbooks`, {
        "intuit-signature": await hmac("wrong", qbBody, "base64"),
      }, qbBody),
    ]);
    rejected.push(["quickbooks unsigned", await post(`${w.hooks}/quickbooks`, {}, qbBody)]);
    const lsBody = "type=sale.update&domain_prefix=x&payload=%7B%7D";
    rejected.push([
      "lightspeed wrong secret",
      await post(`${w.hooks}/lightspeed`, {
        "x-signature": `signature=${await hmac("wrong", lsBody, "hex")},algorithm=HMAC-SHA256`,
      }, lsBody),
    ]);
    const shBody = JSON.stringify({ webhook_type: "Order Canceled", order_uuid: "T3JkZXI6MQ==" });
    rejected.push([
      "shiphero wrong secret",
      await post(`${w.hooks}/shiphero/${shiphero.id}`, {
        "x-shiphero-hmac-sha256": await hmac("wrong", shBody, "base64"),
        "x-shiphero-message-id": "m1",
      }, shBody),
    ]);
    rejected.push([
      "shiphero unknown connection",
      await post(`${w.hooks}/shiphero/${crypto.randomUUID()}`, {
        "x-shiphero-hmac-sha256": await hmac(
          shiphero.account.credentials.webhook_secret_order_canceled!,
          shBody,
          "base64",
        ),
      }, shBody),
    ]);
    const myBody = JSON.stringify({ event: "OrderStatusChanged", external_order_id: "X-1" });
    rejected.push([
      "maystro wrong path secret",
      await post(`${w.hooks}/maystro/${maystro.id}/not-the-secret`, {}, myBody),
    ]);
    rejected.push([
      "maystro no secret",
      await post(`${w.hooks}/maystro/${maystro.id}`, {}, myBody),
    ]);

    for (const [what, status] of rejected) {
      assert.equal(status, what === "oversized" ? 413 : 401, what);
    }
    const [{ n }] = await w.db
      .sql`select count(*)::int as n from tether.webhook_events` as never as [
        { n: number },
      ];
    assert.equal(n, 0, "nothing stored");
    const [{ c }] = await w.db.sql`select count(*)::int as c from tether.customers` as never as [
      { c: number },
    ];
    assert.equal(c, 0);

    // The untouched fixture is accepted: the rejections were for the one thing changed.
    f = await shopifyFixture(shop);
    assert.equal(await post(url, f.headers, f.body), 200);
    assert.equal(await post(url, f.headers, f.body), 200, "a repeat is acknowledged");
    await webhookEventsSettled(w.db);
    const events = await w.db.sql`select status, attempts from tether.webhook_events`;
    assert.deepEqual(events.map((e) => [e.status, e.attempts]), [["processed", 1]]);
  });
});

Deno.test("Shopify secret rotation: the previous secret verifies during the window, not after", async () => {
  await withWorld(async (w) => {
    const shopify = await connection(w, "shopify", { orders: 1, customers: 1 });
    const shop = shopify.account.config.shop!;
    const old = await shopifyFixture(shop, SHOPIFY_SECRET);
    const fresh = await shopifyFixture(shop, "the-new-secret");
    assert.equal(await post(`${w.hooks}/shopify`, old.headers, old.body), 200, "old, during");
    assert.equal(await post(`${w.hooks}/shopify`, fresh.headers, fresh.body), 200, "new, during");
  }, { SHOPIFY_CLIENT_SECRET: "the-new-secret", SHOPIFY_PREVIOUS_CLIENT_SECRET: SHOPIFY_SECRET });

  await withWorld(async (w) => {
    const shopify = await connection(w, "shopify", { orders: 1, customers: 1 });
    const shop = shopify.account.config.shop!;
    const old = await shopifyFixture(shop, SHOPIFY_SECRET);
    const fresh = await shopifyFixture(shop, "the-new-secret");
    assert.equal(await post(`${w.hooks}/shopify`, old.headers, old.body), 401, "old, after");
    assert.equal(await post(`${w.hooks}/shopify`, fresh.headers, fresh.body), 200, "new, after");
    const [{ n }] = await w.db
      .sql`select count(*)::int as n from tether.webhook_events` as never as [
        { n: number },
      ];
    assert.equal(n, 1);
  }, { SHOPIFY_CLIENT_SECRET: "the-new-secret", SHOPIFY_CLIENT_ID: "sandbox-shopify-client" });
});

Deno.test("a QuickBooks CloudEvents delivery spanning two realms updates both connections", async () => {
  await withWorld(async (w) => {
    const a = await connection(w, "quickbooks", { orders: 10, customers: 10 });
    const b = await connection(w, "quickbooks", { orders: 10, customers: 10 });
    await mutate(w, a, 3);
    await mutate(w, b, 3);
    const r = await deliver(w, [a, b], { shuffle: false });
    assert.equal(r.messages, 1, "one delivery");
    assert.equal(r.failed, 0);
    const rows = await w.db.sql<{ connection_id: string; n: number }[]>`
      select connection_id, count(*)::int as n from tether.webhook_events
       where status = 'processed' group by connection_id`;
    assert.deepEqual(new Set(rows.map((r) => r.connection_id)), new Set([a.id, b.id]));
    for (const c of [a, b]) {
      const n = await assertRowsAreNewest(w, c, "orders") +
        await assertRowsAreNewest(w, c, "customers");
      assert.ok(n >= 1, `realm ${c.account.external_id} updated`);
    }
  });
});

Deno.test("a delivery for an unknown connection is acknowledged and recorded as ignored", async () => {
  await withWorld(async (w) => {
    const f = await shopifyFixture("nobody.myshopify.com");
    assert.equal(await post(`${w.hooks}/shopify`, f.headers, f.body), 200);
    const rows = await w.db.sql`select status, connection_id from tether.webhook_events`;
    assert.deepEqual(rows.map((r) => [r.status, r.connection_id]), [["ignored", null]]);
  });
});

Deno.test("a processing failure is kept as failed and the sweep from process_webhook_events() processes it", async () => {
  await withWorld(async (w) => {
    const qb = await connection(w, "quickbooks", { orders: 5, customers: 5 });
    await mutate(w, qb, 2);
    await w.sandbox.fault({ provider: "quickbooks", endpoint: "api", kind: "5xx", count: 0 });
    const r = await deliver(w, [qb]);
    assert.equal(r.failed, 0, "acknowledged although processing failed");
    const failed = await w.db.sql<
      { status: string; attempts: number; last_error: string; due: boolean }[]
    >`select status, attempts, last_error, next_attempt_at > now() as due
        from tether.webhook_events`;
    assert.ok(failed.length >= 1);
    for (const e of failed) {
      assert.equal(e.status, "failed");
      assert.equal(e.attempts, 1);
      assert.match(e.last_error, /503|server/i);
      assert.equal(e.due, true, "retried later, with backoff");
    }
    await w.sandbox.call("DELETE", "/faults");
    // The backoff has passed; the schedule's call reaches the function through pg_net.
    await w.db.sql`update tether.webhook_events set next_attempt_at = now()`;
    await storeVaultSecrets(w.db.sql, w.served);
    await w.db.sql`select public.process_webhook_events()`;
    await eventually("the sweep to process the failed events", async () => {
      const [row] = await w.db.sql<{ left: number }[]>`
        select count(*)::int as left from tether.webhook_events where status <> 'processed'`;
      return row!.left === 0 ? true : undefined;
    }, 20_000);
    const done = await w.db.sql`select attempts from tether.webhook_events`;
    assert.ok(done.every((e) => e.attempts === 2));
    assert.ok(
      await assertRowsAreNewest(w, qb, "orders") + await assertRowsAreNewest(w, qb, "customers") >=
        1,
    );
  });
});

/** QuickBooks API requests the sandbox has served (a held one counts when its answer goes). */
async function quickbooksServed(w: World): Promise<number> {
  const stats = await w.sandbox.call<{ api: Record<string, { requests: number }> }>(
    "GET",
    "/stats",
  );
  return stats.api.quickbooks?.requests ?? 0;
}

async function webhookEvents(w: World) {
  const rows = await w.db.sql<{ status: string; attempts: number }[]>`
    select status, attempts from tether.webhook_events order by id`;
  return rows.map((e) => [e.status, e.attempts]);
}

Deno.test("a QuickBooks delivery is answered while its re-fetch is held 2 s, and processed after the answer", async () => {
  await withWorld(async (w) => {
    const qb = await connection(w, "quickbooks", { orders: 5, customers: 5 });
    await mutate(w, qb, 1);
    const servedBefore = await quickbooksServed(w);
    await w.sandbox.fault({
      provider: "quickbooks",
      endpoint: "api",
      kind: "slow",
      delay_ms: 2_000,
      count: 0,
    });
    const r = await send(w, [qb], { format: "legacy" });
    assert.deepEqual([r.messages, r.failed], [1, 0], "one delivery, answered 200");
    // In this order: the event was still received after the answer, and the re-fetch that
    // processing needs was not served even later. The answer did not wait for the provider.
    assert.deepEqual(await webhookEvents(w), [["received", 0]], "recorded, not yet processed");
    assert.equal(await quickbooksServed(w), servedBefore, "the re-fetch was still held");

    await webhookEventsSettled(w.db);
    assert.deepEqual(await webhookEvents(w), [["processed", 1]], "processed after the answer");
    assert.ok(await quickbooksServed(w) > servedBefore, "through the re-fetch");
    assert.ok(
      await assertRowsAreNewest(w, qb, "orders") + await assertRowsAreNewest(w, qb, "customers") >=
        1,
    );
  });
});

Deno.test("processing cut off by the worker's death leaves the event received; the sweep finishes it once its lease has passed", async () => {
  await withWorld(async (w) => {
    const qb = await connection(w, "quickbooks", { orders: 5, customers: 5 });
    await mutate(w, qb, 1);
    // The re-fetch hangs; once the sandbox holds it, the worker processing the event is killed.
    await w.sandbox.fault({ provider: "quickbooks", endpoint: "api", kind: "hang", count: 1 });
    const r = await send(w, [qb], { format: "legacy" });
    assert.deepEqual([r.messages, r.failed], [1, 0]);
    await eventually("the re-fetch to be held by the sandbox", async () => {
      const { faults } = await w.sandbox.call<{ faults: unknown[] }>("GET", "/faults");
      return faults.length === 0 ? true : undefined;
    });
    const dead = w.served.pids.webhooks!;
    Deno.kill(dead, "SIGKILL");
    await eventually("the function server to start a new worker", async () => {
      if (w.served.pids.webhooks === dead) return undefined;
      const health = await (await fetch(`${w.served.url}/health`)).json();
      return health.functions.webhooks === "up" ? true : undefined;
    });
    assert.deepEqual(await webhookEvents(w), [["received", 0]], "cut off mid-way");

    // While its lease holds, its receiver may be at work: even a forced sweep leaves it.
    const early = await fetch(`${w.hooks}/_sweep`, {
      method: "POST",
      headers: { apikey: w.served.secretKey, "content-type": "application/json" },
      body: JSON.stringify({ force: true }),
    });
    assert.deepEqual(await early.json(), { claimed: 0, processed: 0, ignored: 0, failed: 0 });
    assert.deepEqual(await webhookEvents(w), [["received", 0]]);

    // The lease has passed; the schedule's call reaches the function through pg_net.
    await w.db.sql`update tether.webhook_events set next_attempt_at = now()`;
    await storeVaultSecrets(w.db.sql, w.served);
    await w.db.sql`select public.process_webhook_events()`;
    await eventually("the sweep to process the cut-off event", async () => {
      const events = await webhookEvents(w);
      return events[0]?.[0] === "processed" ? events : undefined;
    }, 20_000);
    assert.deepEqual(await webhookEvents(w), [["processed", 1]], "processed once, by the sweep");
    assert.ok(
      await assertRowsAreNewest(w, qb, "orders") + await assertRowsAreNewest(w, qb, "customers") >=
        1,
    );
  });
});

Deno.test("a malformed _sweep body is a 400 naming the field, and nothing is swept", async () => {
  await withWorld(async (w) => {
    await w.db.sql`insert into tether.webhook_events
                     (provider, event_id, status, attempts, next_attempt_at, payload)
                   values ('shopify', 'e1', 'failed', 1, now() - interval '1 hour', '{}')`;
    const sweep = async (body: string) => {
      const res = await fetch(`${w.hooks}/_sweep`, {
        method: "POST",
        headers: { apikey: w.served.secretKey, "content-type": "application/json" },
        body,
      });
      return { status: res.status, json: await res.json() };
    };
    assert.deepEqual(await sweep('{"force": "yes"}'), {
      status: 400,
      json: { error: "invalid_body", message: 'field "force": expected boolean, received string' },
    });
    assert.deepEqual(await sweep("{force: true"), {
      status: 400,
      json: { error: "invalid_body", message: "the request body must be JSON" },
    });
    const rows = await w.db.sql`select status, attempts from tether.webhook_events`;
    assert.deepEqual(rows.map((r) => [r.status, r.attempts]), [["failed", 1]], "not swept");
  });
});

for (const provider of ["shopify", "shiphero", "lightspeed", "quickbooks", "maystro"] as const) {
  Deno.test(`a ${provider} delivery is verified, recorded and processed`, async () => {
    await withWorld(async (w) => {
      const c = await connection(w, provider, { orders: 10, customers: 10 });
      await mutate(w, c, 12);
      const r = await deliver(w, [c], { format: provider === "quickbooks" ? "legacy" : undefined });
      assert.ok(r.messages >= 1, "something was sent");
      assert.equal(r.failed, 0);
      const counts = await eventCounts(w);
      assert.equal(counts[0]?.other, 0, "all processed");
      const streams: StreamName[] = provider === "shiphero" || provider === "maystro"
        ? ["orders"]
        : ["orders", "customers"];
      let n = 0;
      for (const s of streams) {
        n += await assertRowsAreNewest(w, c, s, { timeAndAll: provider !== "shiphero" });
      }
      assert.ok(n >= 1);
    });
  });
}

// --- ShipHero and Maystro as they really deliver (issue #12) ---------------------------------

function fixtureBody(path: string): Record<string, unknown> {
  const text = Deno.readTextFileSync(new URL(`./fixtures/${path}`, import.meta.url));
  return structuredClone(JSON.parse(text).body);
}

async function postShipHero(w: World, c: Conn, secret: string, body: string, messageId: string) {
  const res = await fetch(urlFor(w, c), {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-shiphero-hmac-sha256": await hmac(secret, body, "base64"),
      "x-shiphero-message-id": messageId,
    },
    body,
  });
  const json = await res.json();
  await webhookEventsSettled(w.db);
  return { status: res.status, json };
}

/** A sandbox order of the connection (its Relay id and truth), tracked or not, or any. */
async function shipheroOrder(w: World, c: Conn, tracked?: boolean) {
  const truth = [...(await truthOf(w, c, "orders")).values()];
  const order = truth.find((t) => tracked === undefined || (t.tracking_number != null) === tracked);
  assert.ok(order, "the sandbox holds such an order");
  const seq = atob(order.external_id).split(":")[1]!;
  return { ...order, seq };
}

async function storedOrder(w: World, c: Conn, externalId: string) {
  const [row] = await w.db.sql<
    { status: string; tracking_number: string | null; t: Date | null }[]
  >`select status, tracking_number, remote_updated_at as t from tether.orders
     where connection_id = ${c.id} and external_id = ${externalId}`;
  return row;
}

Deno.test("shiphero: each webhook type verifies only with its own secret; the earlier single secret verifies every type", async () => {
  await withWorld(async (w) => {
    const c = await connection(w, "shiphero", { orders: 5, customers: 0 });
    const creds = c.account.credentials;
    const order = await shipheroOrder(w, c);
    const canceled = fixtureBody("shiphero/order_canceled.json");
    canceled.order_uuid = order.external_id;
    const body = JSON.stringify(canceled);

    const other = await postShipHero(w, c, creds.webhook_secret_shipment_update!, body, "m-1");
    assert.equal(other.status, 401, "signed with the Shipment Update webhook's secret");
    const stored = await w.db.sql`select 1 from tether.webhook_events`;
    assert.equal(stored.length, 0, "nothing stored");

    const own = await postShipHero(w, c, creds.webhook_secret_order_canceled!, body, "m-2");
    assert.deepEqual(own, { status: 200, json: { code: "200", Message: "Success" } });
    assert.equal((await storedOrder(w, c, order.external_id))?.status, "canceled");

    // Reconnected with one secret for every type (the earlier form): both types verify with it.
    await runConnect(w.deps, {
      provider: "shiphero",
      external_id: c.account.external_id,
      name: "legacy",
      credentials: { refresh_token: creds.refresh_token!, webhook_secret: "one-secret-for-all" },
      config: w.sandbox.configFor(c.account),
    });
    const legacy = await postShipHero(w, c, "one-secret-for-all", body + " ", "m-3");
    assert.equal(legacy.status, 200);
    const stale = await postShipHero(w, c, creds.webhook_secret_order_canceled!, body, "m-4");
    assert.equal(stale.status, 401, "the replaced per-type secret no longer verifies");
  });
});

Deno.test("shiphero: the official Shipment Update sample (no order id) stores the shipment's order as ShipHero has it", async () => {
  await withWorld(async (w) => {
    const c = await connection(w, "shiphero", { orders: 10, customers: 0 });
    const order = await shipheroOrder(w, c, true);
    const update = fixtureBody("shiphero/shipment_update.json");
    const f = update.fulfillment as Record<string, unknown>;
    f.shipment_id = Number(order.seq);
    f.shipment_uuid = btoa(`Shipment:${order.seq}`);
    f.tracking_number = order.tracking_number;
    const body = JSON.stringify(update);
    const res = await postShipHero(
      w,
      c,
      c.account.credentials.webhook_secret_shipment_update!,
      body,
      "m-1",
    );
    assert.deepEqual(res, { status: 200, json: { code: "200", Message: "Success" } });
    const [event] = await w.db.sql`select status, topic, last_error from tether.webhook_events`;
    assert.deepEqual([event!.status, event!.topic], ["processed", "Shipment Update"]);
    const row = await storedOrder(w, c, order.external_id);
    assert.ok(row, "the order is stored under its Relay id");
    assert.equal(row.tracking_number, order.tracking_number);
    assert.equal(row.status, order.status);
    // The time is ShipHero's (a re-read), not the delivery's.
    assert.equal(row.t?.toISOString(), order.updated_at);
  });
});

Deno.test("shiphero: a genuine delivery replayed with a fresh X-Shiphero-Message-ID is not processed again", async () => {
  await withWorld(async (w) => {
    const c = await connection(w, "shiphero", { orders: 5, customers: 0 });
    const order = await shipheroOrder(w, c);
    const canceled = fixtureBody("shiphero/order_canceled.json");
    canceled.order_uuid = order.external_id;
    const body = JSON.stringify(canceled);
    // One secret for every type (the earlier form), so that only the replay is under test.
    const secret = "one-secret-for-all";
    await runConnect(w.deps, {
      provider: "shiphero",
      external_id: c.account.external_id,
      name: "replay",
      credentials: { refresh_token: c.account.credentials.refresh_token!, webhook_secret: secret },
      config: w.sandbox.configFor(c.account),
    });
    assert.equal((await postShipHero(w, c, secret, body, "first-id")).status, 200);
    assert.equal((await postShipHero(w, c, secret, body, "fresh-id")).status, 200, "acknowledged");
    const events = await w.db.sql`select status, attempts, payload from tether.webhook_events`;
    assert.equal(events.length, 1, "the same signed body is the same event");
    assert.deepEqual([events[0]!.status, events[0]!.attempts], ["processed", 1]);
    assert.equal(events[0]!.payload.message_id, "first-id");
  });
});

for (const format of ["nested", "pubsub", "flat"] as const) {
  Deno.test(`maystro: ${format} deliveries are accepted and processed`, async () => {
    await withWorld(async (w) => {
      const c = await connection(w, "maystro", { orders: 10, customers: 0 });
      await mutate(w, c, 12);
      const r = await deliver(w, [c], { format });
      assert.ok(r.messages >= 1);
      assert.equal(r.failed, 0);
      const counts = await eventCounts(w);
      assert.equal(counts[0]?.other, 0, "all processed");
      assert.ok(await assertRowsAreNewest(w, c, "orders") >= 1);
    });
  });
}

Deno.test("maystro: the client-published bodies (nested, base64 message.data) reach the order they name", async () => {
  await withWorld(async (w) => {
    const c = await connection(w, "maystro", { orders: 5, customers: 0 });
    const [order] = (await truthOf(w, c, "orders")).values();
    const nested = fixtureBody("maystro/webhook_nested.json");
    (nested.payload as Record<string, unknown>).external_order_id = order!.external_id;
    const pubsub = fixtureBody("maystro/webhook_pubsub.json");
    const message = pubsub.message as Record<string, unknown>;
    const inner = JSON.parse(atob(message.data as string));
    inner.payload.external_order_id = order!.external_id;
    inner.payload.status = 31;
    message.data = btoa(JSON.stringify(inner));
    for (const body of [nested, pubsub]) {
      const status = await post(
        urlFor(w, c),
        { "content-type": "application/json" },
        JSON.stringify(body),
      );
      assert.equal(status, 200);
    }
    await webhookEventsSettled(w.db);
    const events = await w.db.sql`select status, topic from tether.webhook_events`;
    assert.deepEqual(events.map((e) => [e.status, e.topic]), [
      ["processed", "OrderStatusChanged"],
      ["processed", "OrderStatusChanged"],
    ]);
    assert.equal(await assertRowsAreNewest(w, c, "orders"), 1);
  });
});

/** A provider's HMAC of `body`, as it would sign it. */
function hmac(secret: string, body: string, encoding: "base64" | "hex"): Promise<string> {
  return encoding === "hex" ? hmacHex(secret, body) : hmacBase64(secret, body);
}
