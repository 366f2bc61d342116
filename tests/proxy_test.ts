// The `proxy` function (issue #14 item 2), served as on Supabase against the local Postgres and
// the provider sandboxes: the provider's answer as it is, the auth header and API version set,
// one forced refresh after a 401, throttles waited out, writes never retried after the provider
// may have acted, and one rate budget shared with a sync running in another function.
import assert from "node:assert/strict";
import { connectSeeded } from "./helpers/records.ts";
import { connectNew, storedCredentials } from "./helpers/refresh_world.ts";
import { leakedTokens, type UserCodeWorld, withUserCodeWorld } from "./helpers/user_code.ts";

interface ApiStats {
  api: Record<string, { requests: number; throttled: number }>;
}

async function apiCalls(w: UserCodeWorld, provider: string) {
  const { api } = await w.sandbox.call<ApiStats>("GET", "/stats");
  return api[provider] ?? { requests: 0, throttled: 0 };
}

function putStock(outletId: string, amount: number): RequestInit {
  return {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      details: { inventory: [{ outlet_id: outletId, current_amount: amount }] },
    }),
  };
}

async function inventory(w: UserCodeWorld, connectionId: string, productId: string) {
  const res = await w.tether.proxy(connectionId, `/api/2.0/products/${productId}/inventory`);
  assert.equal(res.status, 200);
  const { data } = await res.json();
  return data.map((r: Record<string, unknown>) => ({
    amount: r.current_amount,
    version: r.version,
  }));
}

Deno.test("proxy: the provider's answer as it is, with the connection's auth and API version", async () => {
  await withUserCodeWorld(async (w) => {
    const conn = await connectNew(w, "lightspeed");
    await storedCredentials(w, conn);
    const res = await w.tether.proxy(conn.id, "/api/2.0/outlets?page_size=5", {
      headers: { "x-caller-header": "kept", cookie: "session=caller" },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.ok(res.headers.get("x-ratelimit-remaining") !== null, "the provider's headers pass");
    const body = await res.json();
    assert.equal(body.data.length, 1);
    assert.equal(typeof body.data[0].id, "string");

    // Shopify: an unversioned Admin path gets the version Tether uses; the token its header.
    const shop = await connectNew(w, "shopify");
    const graphql = await w.tether.proxy(shop.id, "/admin/api/graphql.json", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "{ shop { name } }" }),
    });
    assert.equal(graphql.status, 200);
    assert.equal(typeof (await graphql.json()).data.shop.name, "string");

    // Tether's own refusals say so.
    const unknown = await w.tether.proxy(crypto.randomUUID(), "/api/2.0/outlets");
    assert.deepEqual([unknown.status, unknown.headers.get("tether-error")], [
      404,
      "unknown_connection",
    ]);
    await unknown.body?.cancel();
  });
});

Deno.test("proxy: a 401 is refreshed and retried once; a second 401 is the provider's answer", async () => {
  await withUserCodeWorld(async (w) => {
    const conn = await connectNew(w, "lightspeed");
    await storedCredentials(w, conn);
    const refreshes = await w.sandbox.refreshCalls("lightspeed", conn.externalId);

    await w.sandbox.fault({ provider: "lightspeed", endpoint: "api", kind: "unauthorized" });
    const cured = await w.tether.proxy(conn.id, "/api/2.0/outlets");
    assert.equal(cured.status, 200);
    await cured.body?.cancel();
    assert.equal(await w.sandbox.refreshCalls("lightspeed", conn.externalId), refreshes + 1);
    await storedCredentials(w, conn);

    await w.sandbox.fault({
      provider: "lightspeed",
      endpoint: "api",
      kind: "unauthorized",
      count: 2,
    });
    const before = await apiCalls(w, "lightspeed");
    const refused = await w.tether.proxy(conn.id, "/api/2.0/outlets");
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("tether-error"), null, "the provider's 401, passed on");
    assert.equal(refused.headers.get("www-authenticate"), null);
    const text = await refused.text();
    assert.match(text, /access token/);
    assert.equal(await w.sandbox.refreshCalls("lightspeed", conn.externalId), refreshes + 2);
    // Faults answer before the API counts a request: two sends, both refused, nothing more.
    assert.deepEqual(await apiCalls(w, "lightspeed"), before);
    await storedCredentials(w, conn);

    // Revoked at the provider: the 401's forced refresh meets invalid_grant, and Tether says
    // what a person must do.
    await w.sandbox.revoke("lightspeed", conn.externalId);
    const revoked = await w.tether.proxy(conn.id, "/api/2.0/outlets");
    assert.deepEqual([revoked.status, revoked.headers.get("tether-error")], [
      409,
      "reauth_required",
    ]);
    const explained = await revoked.text();
    assert.match(explained, /reconnect the account/);
    assert.deepEqual(leakedTokens(w, text + explained + w.functionLog.join("\n")), []);
  });
});

Deno.test("proxy: throttles are waited out for reads and writes; a write the provider acted on is never sent again", async () => {
  await withUserCodeWorld(async (w) => {
    const conn = await connectNew(w, "lightspeed");
    await storedCredentials(w, conn);
    const { data: outlets } = await (await w.tether.proxy(conn.id, "/api/2.0/outlets")).json();
    const outletId = outlets[0].id as string;
    const productId = crypto.randomUUID();
    const path = `/api/2.1/products/${productId}`;

    // A read refused with 429 (Retry-After 1 s), then a 5xx: sent again each time.
    await w.sandbox.fault({ provider: "lightspeed", endpoint: "api", kind: "429", retry_after: 1 });
    await w.sandbox.fault({ provider: "lightspeed", endpoint: "api", kind: "5xx" });
    const read = await w.tether.proxy(conn.id, "/api/2.0/outlets");
    assert.equal(read.status, 200);
    await read.body?.cancel();

    // A write refused with 429 was not carried out: sent again, and done once.
    await w.sandbox.fault({ provider: "lightspeed", endpoint: "api", kind: "429", retry_after: 1 });
    const throttled = await w.tether.proxy(conn.id, path, putStock(outletId, 5));
    assert.equal(throttled.status, 200);
    await throttled.body?.cancel();
    assert.deepEqual(await inventory(w, conn.id, productId), [{ amount: 5, version: 1 }]);

    // A write the provider carried out and then answered 500: the 500 goes back, and the write
    // is not sent again (one request reached the provider, one change was made).
    await w.sandbox.fault({ provider: "lightspeed", endpoint: "api", kind: "5xx_after_acting" });
    const before = await apiCalls(w, "lightspeed");
    const failed = await w.tether.proxy(conn.id, path, putStock(outletId, 9));
    assert.equal(failed.status, 500);
    assert.equal(failed.headers.get("tether-error"), null, "the provider's 500, passed on");
    await failed.body?.cancel();
    assert.equal((await apiCalls(w, "lightspeed")).requests, before.requests + 1);
    assert.deepEqual(await inventory(w, conn.id, productId), [{ amount: 9, version: 2 }]);

    // So is a write that met a plain 5xx: the provider may have acted before failing.
    await w.sandbox.fault({ provider: "lightspeed", endpoint: "api", kind: "5xx" });
    const unavailable = await w.tether.proxy(conn.id, path, putStock(outletId, 11));
    assert.equal(unavailable.status, 503);
    await unavailable.body?.cancel();
    assert.deepEqual(await inventory(w, conn.id, productId), [{ amount: 9, version: 2 }]);
  });
});

Deno.test("proxy: calls paced with a sync running in another function are never throttled", async () => {
  await withUserCodeWorld(async (w) => {
    // QuickBooks reports nothing of its budget ("500 requests/min and 10/s per realm", the
    // sandbox's bucket and the adapter's facts alike): only a budget shared by the sync-orders
    // and proxy instances keeps their calls from adding up past it.
    const conn = await connectSeeded(w.deps, w.sandbox, "quickbooks", { orders: 3000 });
    const realm = conn.externalId;
    await new Promise((resolve) => setTimeout(resolve, 1500)); // connect's calls refilled
    await w.sandbox.call("DELETE", "/stats");

    const sync = fetch(`${w.functionsUrl}/sync-orders`, {
      method: "POST",
      headers: { apikey: w.secretKey, "content-type": "application/json" },
      body: JSON.stringify({ connection_id: conn.id, force: true }),
    }).then(async (res) => ({ status: res.status, body: await res.json() }));
    const proxied: number[] = [];
    const calls = (async () => {
      for (let i = 0; i < 20; i++) {
        const res = await w.tether.proxy(conn.id, `/v3/company/${realm}/companyinfo/${realm}`);
        proxied.push(res.status);
        await res.body?.cancel();
      }
    })();
    const [synced] = await Promise.all([sync, calls]);

    assert.equal(synced.status, 200, JSON.stringify(synced.body));
    const [{ orders }] = await w.db.sql<[{ orders: number }]>`
      select count(*)::int as orders from tether.orders where connection_id = ${conn.id}`;
    assert.equal(orders, 3000);
    assert.deepEqual(proxied, Array(20).fill(200));
    const stats = await apiCalls(w, "quickbooks");
    assert.ok(stats.requests >= 20 + 6, `${stats.requests} requests reached the provider`);
    assert.equal(stats.throttled, 0, "no request was throttled");
  }, ["tokens", "proxy", "sync-orders"]);
});
