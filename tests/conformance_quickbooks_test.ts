// QuickBooks Online against what Intuit publishes (issue #12): deleted invoices and sales
// receipts reach Tether through Change Data Capture (30-day look-back, `status: "Deleted"`) and
// through "Delete" notifications, and stay as "Deleted" rows; the sandbox's CDC answers in
// Intuit's shape; the published webhook bodies and token response (tests/fixtures/quickbooks/)
// run through the parsers; a notification's time is never taken later than its receipt; the
// authorize URL carries every parameter Intuit's client sends.
import assert from "node:assert/strict";
import { type WebhookWorld, withWebhookWorld } from "./helpers/webhooks_world.ts";
import { runConnect } from "../functions-shared/jobs/connect.ts";
import { quickbooksOAuth } from "../functions-shared/providers/quickbooks/oauth.ts";
import {
  facts,
  quickbooksAdapter,
  refreshResponse,
} from "../functions-shared/providers/quickbooks/adapter.ts";
import { Pacer } from "../functions-shared/providers/pacing.ts";
import {
  CDC_LOOKBACK_SECONDS,
  cdcDeletions,
  cdcResponseSchema,
} from "../functions-shared/providers/quickbooks/streams.ts";
import { webhookEventsSettled } from "./helpers/stack.ts";
import {
  apiStats,
  assertMatchesTruth,
  context,
  dataPath,
  pages,
  readAll,
  readerOf,
  seeded,
  setLimits,
  store,
  type Stored,
  truthOf,
  withSandbox,
} from "./helpers/streams.ts";
import { hmacBase64 } from "../scripts/local/signing.ts";

const VERIFIER = "sandbox-quickbooks-verifier";

async function fixture<T>(name: string): Promise<T> {
  return JSON.parse(
    await Deno.readTextFile(new URL(`./fixtures/quickbooks/${name}`, import.meta.url)),
  );
}

/** The numeric sequence of a sandbox order, from its `Invoice:<Id>` external id. */
function seqOf(externalId: string): number {
  return Number(externalId.split(":")[1]);
}

// ---------------------------------------------------------------------------------------------
// Change Data Capture

Deno.test("quickbooks orders: an invoice and a sales receipt deleted at QuickBooks become Deleted rows through CDC, never lost", async () => {
  await withSandbox(async (sb) => {
    await setLimits(sb, "quickbooks", { capacity: 100_000, restorePerSecond: 10_000 });
    const setup = await seeded(sb, "quickbooks", { orders: 60, customers: 10, spread_days: 20 });
    const stored = new Map<string, Stored>();
    const first = await readAll("orders", context(), setup, null);
    store(stored, first.records);
    await assertMatchesTruth(sb, setup.account, "orders", stored, "after the first read");

    const truth = await truthOf(sb, setup.account, "orders");
    const invoice = truth.find((t) => t.external_id.startsWith("Invoice:"))!;
    const receipt = truth.find((t) => t.external_id.startsWith("SalesReceipt:"))!;
    await sb.call("POST", "/clock", { advance_seconds: 5 });
    for (const gone of [invoice, receipt]) {
      await sb.call("POST", dataPath(setup.account, `orders/${seqOf(gone.external_id)}/delete`));
    }
    await sb.call("POST", "/clock", { advance_seconds: 5 });
    // The sync's `until` is the run's start: the sandbox's clock, as the sync job would see it.
    const until = new Date((await sb.call<{ now: string }>("GET", "/clock")).now);
    for await (
      const page of pages(readerOf("quickbooks", "orders"), context(), setup, first.cursor, {
        until,
        pageSize: 50,
      })
    ) store(stored, page.records);

    for (const gone of [invoice, receipt]) {
      const row = stored.get(gone.external_id)!;
      assert.equal(row.status, "Deleted", `${gone.external_id} is Deleted`);
      assert.ok(Date.parse(row.remote_updated_at) > Date.parse(gone.updated_at), "at its deletion");
    }
    await assertMatchesTruth(sb, setup.account, "orders", stored, "after the deletions");
  });
});

Deno.test("quickbooks orders: CDC is asked at most 30 days back; a window older than that asks nothing", async () => {
  await withSandbox(async (sb) => {
    await setLimits(sb, "quickbooks", { capacity: 100_000, restorePerSecond: 10_000 });
    const setup = await seeded(sb, "quickbooks", { orders: 20, customers: 5, spread_days: 90 });
    const reader = readerOf("quickbooks", "orders");
    const now = Date.now();
    /** Reads [from, until] to the end, as a backfill window does; the requests it took. */
    const readWindow = async (from: Date, until: Date) => {
      const before = (await apiStats(sb, "quickbooks")).requests;
      let cursor: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page = await reader(context(), setup.conn, setup.account.credentials, {
          cursor,
          from: cursor === null ? from : null,
          until,
          pageSize: 1000,
        });
        cursor = page.cursor;
        if (!page.hasMore) break;
      }
      assert.equal(JSON.parse(cursor!).reading, "Invoice", "the read went round to the start");
      return (await apiStats(sb, "quickbooks")).requests - before;
    };
    // 90 days back: the sandbox answers a changedSince older than 30 days with a 400 (as Intuit
    // limits the look-back), so this succeeds only because the adapter moved it up. Invoices,
    // sales receipts, CDC: three requests.
    assert.equal(await readWindow(new Date(now - 90 * 86_400_000), new Date(now)), 3);
    // A window that ended 40 days ago: nothing CDC can still see, so it is not asked.
    assert.equal(
      await readWindow(new Date(now - 60 * 86_400_000), new Date(now - 40 * 86_400_000)),
      2,
    );
    assert.ok(CDC_LOOKBACK_SECONDS <= 30 * 86_400, "never more than Intuit's 30 days");
  });
});

Deno.test("quickbooks orders: CDC's changedSince is chosen after the pacer's wait, so a throttle's 60 s back-off cannot push it out of the 30 days", async () => {
  await withSandbox(async (sb) => {
    await setLimits(sb, "quickbooks", { capacity: 100_000, restorePerSecond: 10_000 });
    const setup = await seeded(sb, "quickbooks", { orders: 20, customers: 5, spread_days: 90 });
    // One time for the job and the sandbox: the pacer's waits move both, without waiting.
    let offsetMs = 0;
    const pacer = new Pacer(facts.rateLimit, {
      clock: () => performance.now() + offsetMs,
      sleep: async (ms) => {
        offsetMs += ms;
        await sb.call("POST", "/clock", { advance_seconds: ms / 1000 });
      },
    });
    const ctx = context({ pacer, now: () => new Date(Date.now() + offsetMs) });
    // A first read at its deletions phase (nothing stored yet: CDC's whole look-back), right after
    // a 429, whose wait (facts.defaultRetryAfterSeconds) the pacer holds the next request for.
    const start = { since: null };
    const cursor = JSON.stringify({
      reading: "Deleted",
      Invoice: start,
      SalesReceipt: start,
      Deleted: start,
    });
    pacer.backOff(facts.defaultRetryAfterSeconds * 1000);
    const page = await readerOf("quickbooks", "orders")(
      ctx,
      setup.conn,
      setup.account.credentials,
      {
        cursor,
        from: null,
        until: ctx.now(),
        pageSize: 50,
      },
    );
    assert.ok(
      offsetMs > (facts.defaultRetryAfterSeconds - 1) * 1000,
      `the pacer waited (${offsetMs} ms)`,
    );
    assert.equal(JSON.parse(page.cursor).reading, "Invoice", "CDC answered; the read went round");
  });
});

Deno.test("quickbooks sandbox: CDC answers in Intuit's shape, deleted objects after live ones with Id, status and MetaData only, and refuses more than 30 days back", async () => {
  await withSandbox(async (sb) => {
    const setup = await seeded(sb, "quickbooks", { orders: 10, customers: 3, spread_days: 5 });
    const truth = await truthOf(sb, setup.account, "orders");
    const invoice = truth.find((t) => t.external_id.startsWith("Invoice:"))!;
    await sb.call("POST", dataPath(setup.account, `orders/${seqOf(invoice.external_id)}/delete`));
    const realm = setup.account.external_id;
    const cdc = (changedSince: string) =>
      fetch(
        `${sb.url}/quickbooks/v3/company/${realm}/cdc?entities=Invoice,SalesReceipt&changedSince=${
          encodeURIComponent(changedSince)
        }&minorversion=75`,
        { headers: { authorization: `Bearer ${setup.account.credentials.access_token}` } },
      );
    const res = await cdc(new Date(Date.now() - 10 * 86_400_000).toISOString());
    assert.equal(res.status, 200);
    const body = await res.json();
    // The published shape parses with the adapter's own schema.
    const parsed = cdcResponseSchema.parse(body);
    const invoices = body.CDCResponse[0].QueryResponse[0].Invoice as Record<string, unknown>[];
    const last = invoices[invoices.length - 1]!;
    assert.deepEqual(Object.keys(last).sort(), ["Id", "MetaData", "domain", "status"]);
    assert.equal(last.status, "Deleted");
    assert.equal(invoices.filter((e) => e.status === "Deleted").length, 1, "deleted ones last");
    assert.deepEqual(cdcDeletions(parsed).deleted.map((d) => `${d.entity}:${d.record.Id}`), [
      invoice.external_id,
    ]);

    const old = await cdc(new Date(Date.now() - 31 * 86_400_000).toISOString());
    assert.equal(old.status, 400);
    assert.equal((await old.json()).Fault.type, "ValidationFault");
  });
});

Deno.test("quickbooks: the published CDC sample parses, and its deleted object is read as a deletion", async () => {
  const sample = await fixture<{ response: Record<string, unknown> }>("cdc_response.json");
  const parsed = cdcResponseSchema.parse(sample.response);
  assert.deepEqual(cdcDeletions(parsed), { deleted: [], objects: 0 }, "Estimates are not orders");
  // The same answer for an Invoice: Intuit's deleted object, unchanged, under an order entity.
  const asInvoice = JSON.parse(JSON.stringify(sample.response).replace('"Estimate"', '"Invoice"'));
  const { deleted, objects } = cdcDeletions(cdcResponseSchema.parse(asInvoice));
  assert.equal(objects, 3);
  assert.deepEqual(deleted.map((d) => [d.entity, d.record.Id, d.record.MetaData.LastUpdatedTime]), [
    ["Invoice", "979", "2015-12-23T12:55:50-08:00"],
  ]);
});

// ---------------------------------------------------------------------------------------------
// Webhooks

/** QuickBooks re-fetches each notified entity: a bucket wide enough for bulk deliveries. */
const withWebhooks = (fn: (w: WebhookWorld) => Promise<void>) =>
  withWebhookWorld(fn, { quickbooks: { capacity: 100_000, restorePerSecond: 10_000 } });

async function quickbooksConnection(w: WebhookWorld) {
  const account = await w.sandbox.account("quickbooks");
  await w.sandbox.call("POST", dataPath(account, "seed"), { seed: 5, orders: 12, customers: 4 });
  const result = await runConnect(w.deps, {
    provider: "quickbooks",
    external_id: account.external_id,
    name: "qb",
    credentials: account.credentials,
    config: w.sandbox.configFor(account),
  });
  return { id: result.connection_id, account };
}

async function post(url: string, body: string, secret = VERIFIER): Promise<number> {
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "intuit-signature": await hmacBase64(secret, body),
    },
    body,
  });
  await res.body?.cancel();
  return res.status;
}

for (const format of ["legacy", "cloudevents"] as const) {
  Deno.test(`quickbooks ${format} webhooks: a stored invoice deleted at QuickBooks becomes Deleted, not a live row forever`, async () => {
    await withWebhooks(async (w) => {
      const c = await quickbooksConnection(w);
      // The clock of the sandbox a little behind ours: notification times are clamped to receipt.
      await w.sandbox.call("POST", "/clock", { advance_seconds: -60 });
      const truth = await truthOf(w.sandbox, c.account, "orders");
      const invoice = truth.find((t) => t.external_id.startsWith("Invoice:"))!;
      const seq = seqOf(invoice.external_id);
      // First the invoice changes (stored from the re-fetch), then it is deleted.
      await w.sandbox.call("POST", dataPath(c.account, "mutate"), { changes: 3 });
      const deliver = async () => {
        const report = await w.sandbox.call<{ failed: number }>("POST", "/webhooks/deliver", {
          provider: "quickbooks",
          accounts: [c.account.external_id],
          url: `${w.hooks}/quickbooks`,
          format,
        });
        await webhookEventsSettled(w.db);
        return report;
      };
      assert.equal((await deliver()).failed, 0);
      await w.sandbox.call("POST", "/clock", { advance_seconds: 2 });
      await w.sandbox.call("POST", dataPath(c.account, `orders/${seq}/delete`));
      assert.equal((await deliver()).failed, 0);

      const [row] = await w.db.sql<{ status: string; t: Date }[]>`
        select status, remote_updated_at as t from tether.orders
         where connection_id = ${c.id} and external_id = ${invoice.external_id}`;
      assert.ok(row, "the row is there");
      assert.equal(row.status, "Deleted");
      const want = (await truthOf(w.sandbox, c.account, "orders"))
        .find((t) => t.external_id === invoice.external_id)!;
      assert.equal(want.status, "Deleted");
      assert.equal(row.t.toISOString(), want.updated_at, "at the deletion's own time");
      const events = await w.db.sql`select status from tether.webhook_events`;
      assert.ok(events.every((e) => e.status === "processed"));
    });
  });
}

Deno.test("quickbooks webhooks: a Delete notification claiming a time in 2099 is stored at its receipt, so it cannot freeze the row", async () => {
  await withWebhooks(async (w) => {
    const c = await quickbooksConnection(w);
    const before = Date.now();
    const body = JSON.stringify({
      eventNotifications: [{
        realmId: c.account.external_id,
        dataChangeEvent: {
          entities: [{
            name: "Invoice",
            id: "7",
            operation: "Delete",
            lastUpdated: "2099-01-01T00:00:00-0700",
          }],
        },
      }],
    });
    assert.equal(await post(`${w.hooks}/quickbooks`, body), 200);
    await webhookEventsSettled(w.db);
    const [row] = await w.db.sql<{ status: string; t: Date }[]>`
      select status, remote_updated_at as t from tether.orders where external_id = 'Invoice:7'`;
    assert.equal(row!.status, "Deleted");
    assert.ok(row!.t.getTime() <= Date.now() && row!.t.getTime() >= before - 1000, "clamped");
  });
});

Deno.test("quickbooks: the published webhook bodies (legacy and CloudEvents) run through the receiver", async () => {
  await withWebhooks(async (w) => {
    const legacy = await fixture<{ body: unknown }>("webhook_legacy.json");
    const cloud = await fixture<{ body: unknown }>("webhook_cloudevents.json");
    assert.equal(await post(`${w.hooks}/quickbooks`, JSON.stringify(legacy.body)), 200);
    assert.equal(await post(`${w.hooks}/quickbooks`, JSON.stringify(cloud.body)), 200);
    const rows = await w.db.sql<{ topic: string; event_id: string; status: string }[]>`
      select topic, event_id, status from tether.webhook_events order by topic`;
    // Realms nobody connected: recorded once each, and ignored.
    assert.deepEqual(rows.map((r) => [r.topic, r.status]), [
      ["Customer.Create", "ignored"],
      ["Vendor.Create", "ignored"],
      ["qbo.invoice.updated.v1", "ignored"],
    ]);
    assert.equal(rows[2]!.event_id, "88cd52a6-ff1d-4f4d-8b5d-cc2d5f4a8b01");
    assert.ok(rows[0]!.event_id.startsWith("legacy:"));
    // Signed with another token: refused, nothing more stored.
    assert.equal(await post(`${w.hooks}/quickbooks`, JSON.stringify(cloud.body), "wrong"), 401);
    const [count] = await w.db.sql<{ n: number }[]>`
      select count(*)::int as n from tether.webhook_events`;
    assert.equal(count!.n, 3);
  });
});

// ---------------------------------------------------------------------------------------------
// OAuth

Deno.test("quickbooks: the published token response parses, and the authorize URL carries every parameter Intuit's client sends", async () => {
  const token = await fixture<{ response: unknown }>("token_response.json");
  const parsed = refreshResponse.parse(token.response);
  assert.equal(parsed.expires_in, 3600);
  assert.equal(parsed.x_refresh_token_expires_in, 8726400);

  // intuit-oauth's authorizeUri: client_id, response_type=code, scope, redirect_uri, state.
  const url = new URL(quickbooksOAuth.authorizeUrl({
    app: { clientId: "cid", clientSecret: "secret" },
    redirectUri: "https://example.com/cb",
    state: "st",
    baseUrl: undefined,
  }));
  assert.equal(url.origin + url.pathname, "https://appcenter.intuit.com/connect/oauth2");
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    client_id: "cid",
    response_type: "code",
    scope: "com.intuit.quickbooks.accounting",
    redirect_uri: "https://example.com/cb",
    state: "st",
  });
});

Deno.test("quickbooks: disconnect's revocation is the request Intuit's own client sends", async () => {
  // intuit-oauth 4.2.5, src/OAuthClient.js `revoke`: POST https://developer.api.intuit.com/v2/
  // oauth2/tokens/revoke, Authorization: Basic base64(client_id:client_secret), a JSON body
  // {"token": …}. The adapter runs on a transport that records the request and answers 200.
  const sent: { url: string; method: string; headers: Headers; body: string }[] = [];
  const recording: typeof fetch = async (input, init) => {
    const req = new Request(input, init);
    sent.push({ url: req.url, method: req.method, headers: req.headers, body: await req.text() });
    return new Response(null, { status: 200 });
  };
  await quickbooksAdapter.revoke(
    {
      fetch: recording,
      now: () => new Date(),
      app: () => ({ clientId: "cid", clientSecret: "secret" }),
    },
    {
      id: crypto.randomUUID(),
      provider: "quickbooks",
      externalId: "9341",
      config: { realm_id: "9341" },
    },
    { refresh_token: "rt-1", access_token: "at-1" },
  );
  assert.equal(sent.length, 1);
  const [req] = sent;
  assert.equal(req!.url, "https://developer.api.intuit.com/v2/oauth2/tokens/revoke");
  assert.equal(req!.method, "POST");
  assert.equal(req!.headers.get("authorization"), `Basic ${btoa("cid:secret")}`);
  assert.match(req!.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(JSON.parse(req!.body), { token: "rt-1" });
});
