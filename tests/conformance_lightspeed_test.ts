// Lightspeed Retail X-Series against what Lightspeed publishes (issue #12): the authorize URL
// carries the mandatory `scope` (declined without it since 2026-06-01) and the sandbox declines
// it too; a webhook is routed and verified with only the guaranteed `payload` form field and
// parsed as the API 1.0 object it is (the published examples in tests/fixtures/lightspeed/); a
// body's time is never taken later than its receipt, a `type` that disagrees with the body is
// refused; reads stay within the documented page size and follow a connection's date version.
import assert from "node:assert/strict";
import { type WebhookWorld, withWebhookWorld } from "./helpers/webhooks_world.ts";
import { runConnect } from "../functions-shared/jobs/connect.ts";
import { DEFAULT_SCOPES, lightspeedOAuth } from "../functions-shared/providers/lightspeed/oauth.ts";
import { lightspeedAdapter } from "../functions-shared/providers/lightspeed/adapter.ts";
import { createTestDatabase, serveFunctionsFor, webhookEventsSettled } from "./helpers/stack.ts";
import {
  assertMatchesTruth,
  context,
  readAll,
  seeded,
  store,
  type Stored,
  withSandbox,
} from "./helpers/streams.ts";
import { hmacHex } from "../scripts/local/signing.ts";

const CLIENT_ID = "sandbox-lightspeed-client";
const SECRET = "sandbox-lightspeed-secret";

async function fixture(name: string): Promise<Record<string, unknown>> {
  const text = await Deno.readTextFile(new URL(`./fixtures/lightspeed/${name}`, import.meta.url));
  return JSON.parse(text).payload;
}

// ---------------------------------------------------------------------------------------------
// OAuth

Deno.test("lightspeed: the authorize URL carries every parameter the docs require, scope included", () => {
  const authorize = (scopes?: string) =>
    new URL(lightspeedOAuth.authorizeUrl({
      app: { clientId: "cid", clientSecret: "secret" },
      redirectUri: "https://example.com/cb",
      state: "st",
      baseUrl: undefined,
      scopes,
    }));
  const url = authorize();
  assert.equal(url.origin + url.pathname, "https://secure.retail.lightspeed.app/connect");
  // x-series-api.lightspeedhq.com/docs/authorization and /docs/scopes.
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    response_type: "code",
    client_id: "cid",
    redirect_uri: "https://example.com/cb",
    state: "st",
    scope: DEFAULT_SCOPES,
  });
  const scopes = url.searchParams.get("scope")!.split(" ");
  for (const needed of ["sales:read", "customers:read"]) assert.ok(scopes.includes(needed));
  // Space-delimited, written %20 as the docs' example does.
  assert.match(url.search, /scope=sales%3Aread%20customers%3Aread/);
  assert.equal(authorize("sales:read").searchParams.get("scope"), "sales:read", "configurable");
});

Deno.test("lightspeed sandbox: an authorize request without scope is declined, one with it is approved", async () => {
  await withSandbox(async (sb) => {
    const ask = async (extra: Record<string, string>) => {
      const q = new URLSearchParams({
        response_type: "code",
        client_id: CLIENT_ID,
        redirect_uri: "https://example.com/cb",
        state: "st",
        ...extra,
      });
      const res = await fetch(`${sb.url}/lightspeed/connect?${q}`, { redirect: "manual" });
      return { status: res.status, body: await res.text(), location: res.headers.get("location") };
    };
    const without = await ask({});
    assert.equal(without.status, 400);
    assert.match(without.body, /scope/);
    const withScope = await ask({ scope: DEFAULT_SCOPES });
    assert.equal(withScope.status, 302);
    assert.ok(new URL(withScope.location!).searchParams.get("code"));
  });
});

Deno.test("lightspeed: the connect function's authorize URL asks the default scopes, or LIGHTSPEED_SCOPES", async () => {
  const db = await createTestDatabase();
  try {
    const scopeOf = async (env: Record<string, string>) => {
      const served = await serveFunctionsFor(db, ["connect"], {
        env: {
          TETHER_OAUTH_STATE_SECRET: "a-state-secret-of-at-least-32-characters!",
          TETHER_PUBLIC_FUNCTIONS_URL: "https://example.supabase.co/functions/v1",
          ...env,
        },
      });
      try {
        const res = await fetch(`${served.functionsUrl}/connect/lightspeed/start`, {
          headers: { apikey: served.secretKey },
          redirect: "manual",
        });
        await res.body?.cancel();
        assert.equal(res.status, 302);
        return new URL(res.headers.get("location")!).searchParams.get("scope");
      } finally {
        await served.stop();
      }
    };
    assert.equal(await scopeOf({}), DEFAULT_SCOPES);
    assert.equal(
      await scopeOf({ LIGHTSPEED_SCOPES: " sales:read   customers:read webhooks " }),
      "sales:read customers:read webhooks",
    );
  } finally {
    await db.drop();
  }
});

// ---------------------------------------------------------------------------------------------
// Reads

Deno.test("lightspeed: a read asks at most the documented 200 per page and follows a connection's date version", async () => {
  await withSandbox(async (sb) => {
    const setup = await seeded(sb, "lightspeed", { orders: 450, customers: 5 });
    const dated = { ...setup, conn: { ...setup.conn, config: { ...setup.conn.config } } };
    dated.conn.config.api_version = "2026-01";
    const stored = new Map<string, Stored>();
    const read = await readAll("orders", context(), dated, null, 1000);
    store(stored, read.records);
    // 450 records at 200 a page: three pages of records and the empty one that ends the read.
    assert.equal(read.pages, 4);
    await assertMatchesTruth(sb, setup.account, "orders", stored, "read by date version");
  });
});

Deno.test("lightspeed: the refresh token's idle lifetime is 30 days unless the connection says otherwise", async () => {
  await withSandbox(async (sb) => {
    const setup = await seeded(sb, "lightspeed", { orders: 1, customers: 1 });
    const ctx = context({
      app: () => ({ clientId: CLIENT_ID, clientSecret: SECRET }),
    });
    const now = Date.now();
    const days = async (config: Record<string, unknown>) => {
      const account = await sb.account("lightspeed");
      const conn = {
        ...setup.conn,
        externalId: account.external_id,
        config: {
          ...sb.configFor(account),
          ...config,
        },
      };
      const grant = await lightspeedAdapter.refresh(ctx, conn, account.credentials);
      return Math.round((grant.refreshTokenExpiresAt!.getTime() - now) / 86_400_000);
    };
    assert.equal(await days({}), 30);
    assert.equal(await days({ refresh_token_idle_days: 10 }), 10);
  });
});

// ---------------------------------------------------------------------------------------------
// Webhooks

const withWebhooks = (fn: (w: WebhookWorld) => Promise<void>) => withWebhookWorld(fn);

/** A Lightspeed connection whose config names `retailerId` (or the sandbox's own retailer). */
async function lightspeedConnection(w: WebhookWorld, retailerId?: string) {
  const account = await w.sandbox.account("lightspeed");
  await w.sandbox.call("POST", `/data/lightspeed/${account.external_id}/seed`, {
    seed: 4,
    orders: 10,
    customers: 10,
  });
  const config = w.sandbox.configFor(account);
  if (retailerId !== undefined) config.retailer_id = retailerId;
  const result = await runConnect(w.deps, {
    provider: "lightspeed",
    external_id: account.external_id,
    name: "ls",
    credentials: account.credentials,
    config,
  });
  return { id: result.connection_id, account };
}

/**
 * A signed form delivery of `payload` with exactly the `extra` form fields, its events processed
 * (after the answer) by the time this returns.
 */
async function send(w: WebhookWorld, payload: unknown, extra: Record<string, string> = {}) {
  const body = new URLSearchParams({ ...extra, payload: JSON.stringify(payload) }).toString();
  const res = await fetch(`${w.hooks}/lightspeed`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-signature": `signature=${await hmacHex(SECRET, body)},algorithm=HMAC-SHA256`,
    },
    body,
  });
  const answer = { status: res.status, body: await res.text() };
  await webhookEventsSettled(w.db);
  return answer;
}

Deno.test("lightspeed webhooks: the published customer.update, with no form field but payload, is routed by its retailer_id and stored from the API 1.0 object", async () => {
  await withWebhooks(async (w) => {
    const customer = await fixture("customer.update.json");
    const c = await lightspeedConnection(w, String(customer.retailer_id));
    const res = await send(w, customer);
    assert.equal(res.status, 200, res.body);
    const id = String(customer.id);
    const [row] = await w.db.sql<
      {
        first_name: string;
        last_name: string;
        phone: string;
        email: string | null;
        status: string;
        t: Date;
      }[]
    >`select first_name, last_name, phone, email, status, remote_updated_at as t
        from tether.customers where connection_id = ${c.id} and external_id = ${id}`;
    assert.ok(row, "stored for the retailer's connection");
    assert.deepEqual(
      { ...row, t: row.t.toISOString() },
      {
        first_name: "John",
        last_name: "Watson",
        phone: "021111111",
        email: null,
        status: "active",
        // "2017-12-06 04:53:17": API 1.0, no offset, read as UTC.
        t: "2017-12-06T04:53:17.000Z",
      },
    );
    // The same signed body again: one event.
    assert.equal((await send(w, customer)).status, 200);
    const events = await w.db.sql`select topic, status from tether.webhook_events`;
    assert.deepEqual(events.map((e) => [e.topic, e.status]), [["customer.update", "processed"]]);
  });
});

Deno.test("lightspeed webhooks: a 1.0 sale with only payload and domain_prefix is routed by domain_prefix; a type that disagrees with the body is refused", async () => {
  await withWebhooks(async (w) => {
    const sale = await fixture("sale.update.json");
    // The fixture's retailer is not this connection's: only the form's domain_prefix routes it.
    const c = await lightspeedConnection(w);
    const prefix = c.account.external_id;
    const wrongType = await send(w, sale, { domain_prefix: prefix, type: "customer.update" });
    assert.equal(wrongType.status, 400, "a customer.update whose body is a sale");
    assert.match(wrongType.body, /disagrees/);
    const res = await send(w, sale, { domain_prefix: prefix });
    assert.equal(res.status, 200, res.body);
    const id = String(sale.id);
    const [row] = await w.db.sql<
      { order_number: string; status: string; total_price: string; t: Date; ordered: Date }[]
    >`select order_number, status, total_price::text as total_price, remote_updated_at as t,
             ordered_at as ordered
        from tether.orders where connection_id = ${c.id} and external_id = ${id}`;
    assert.ok(row);
    assert.deepEqual(
      {
        ...row,
        t: row.t.toISOString(),
        ordered: row.ordered.toISOString(),
      },
      {
        order_number: "25",
        status: "CLOSED",
        total_price: "4248.16",
        t: "2010-10-15T05:40:02.000Z",
        ordered: "2010-10-15T05:39:15.000Z",
      },
    );
  });
});

Deno.test("lightspeed webhooks: a body claiming an update in 2099 is stored at its receipt, so a genuine later update still wins", async () => {
  await withWebhooks(async (w) => {
    const customer = await fixture("customer.update.json");
    const c = await lightspeedConnection(w, String(customer.retailer_id));
    const before = Date.now();
    const forged = { ...customer, first_name: "Frozen", updated_at: "2099-01-01 00:00:00" };
    assert.equal((await send(w, forged)).status, 200);
    const read = async () =>
      (await w.db.sql<{ first_name: string; t: Date }[]>`
        select first_name, remote_updated_at as t from tether.customers
         where connection_id = ${c.id}`)[0]!;
    const frozen = await read();
    assert.equal(frozen.first_name, "Frozen");
    assert.ok(frozen.t.getTime() <= Date.now() && frozen.t.getTime() >= before - 1000, "clamped");
    await new Promise((r) => setTimeout(r, 1100));
    const later = new Date().toISOString().slice(0, 19).replace("T", " ");
    const genuine = { ...customer, first_name: "Thawed", updated_at: later };
    assert.equal((await send(w, genuine)).status, 200);
    assert.equal((await read()).first_name, "Thawed", "the later update was not frozen out");
  });
});

Deno.test("lightspeed webhooks: a form without payload is refused; a payload naming no known retailer is kept as ignored", async () => {
  await withWebhooks(async (w) => {
    await lightspeedConnection(w);
    const body = "type=sale.update&domain_prefix=x";
    const res = await fetch(`${w.hooks}/lightspeed`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-signature": `signature=${await hmacHex(SECRET, body)},algorithm=HMAC-SHA256`,
      },
      body,
    });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /payload/);
    const customer = await fixture("customer.update.json");
    assert.equal((await send(w, { ...customer, retailer_id: crypto.randomUUID() })).status, 200);
    const events = await w.db.sql`select status, connection_id from tether.webhook_events`;
    assert.deepEqual(events.map((e) => [e.status, e.connection_id]), [["ignored", null]]);
  });
});

Deno.test("lightspeed sandbox: deliveries carry only the payload form field, an API 1.0 object without version", async () => {
  await withWebhooks(async (w) => {
    const c = await lightspeedConnection(w);
    await w.sandbox.call("POST", "/clock", { advance_seconds: -30 });
    await w.sandbox.call("POST", `/data/lightspeed/${c.account.external_id}/mutate`, {
      changes: 10,
    });
    // Capture what the sandbox sends by delivering to a listener of our own.
    const seen: string[] = [];
    const listener = Deno.serve({ port: 0, onListen: () => {} }, async (req) => {
      seen.push(await req.text());
      return new Response(null, { status: 204 });
    });
    try {
      const r = await w.sandbox.call<{ failed: number }>("POST", "/webhooks/deliver", {
        provider: "lightspeed",
        accounts: [c.account.external_id],
        url: `http://127.0.0.1:${listener.addr.port}/`,
        shuffle: false,
      });
      assert.equal(r.failed, 0);
    } finally {
      await listener.shutdown();
    }
    assert.ok(seen.length >= 1);
    for (const body of seen) {
      const form = new URLSearchParams(body);
      assert.deepEqual([...form.keys()], ["payload"]);
      const payload = JSON.parse(form.get("payload")!);
      assert.equal("version" in payload, false);
      assert.match(payload.updated_at, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    }
  });
});
