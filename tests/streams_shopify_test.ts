// Shopify's stream readers against the Shopify sandbox, started in-process: no database. Each test
// seeds an account's dataset, reads it page by page the way the sync job does (each page's cursor
// feeds the next call, until hasMore is false), changes it, reads again from the stored cursor,
// and compares what a store would hold (latest per external_id) with the sandbox's truth.

import assert from "node:assert/strict";
import { shopifyAdapter } from "../functions-shared/providers/shopify/adapter.ts";
import { isOrdersData, ordersData } from "../functions-shared/providers/shopify/streams.ts";
import type { CustomerRecord, OrderRecord } from "../functions-shared/providers/types.ts";
import {
  assertOrdersConvergeThroughTies,
  assertStoreEqualsTruth,
  context,
  mutateTwice,
  sandboxNow,
  seed,
  StreamStore,
  syncRun,
  withAccount,
  type World,
} from "./helpers/streams.ts";

const PROVIDER = "shopify";
const readOrders = shopifyAdapter.streams.orders;
const readCustomers = shopifyAdapter.streams.customers;

// ---------------------------------------------------------------------------------------------
// Orders

Deno.test("shopify orders: a full read and incremental reads match the truth, ties included", () =>
  withAccount(PROVIDER, async (world) => {
    const store = await assertOrdersConvergeThroughTies(world, readOrders, {
      seed: 7,
      pageSize: 250,
    });
    const record = [...store.rows.values()][0]!;
    assert.match(record.external_id, /^gid:\/\/shopify\/Order\/\d+$/);
    assert.match(record.remote_updated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    assert.match(record.total_price ?? "", /^\d+\.\d+$/);
  }));

// ---------------------------------------------------------------------------------------------
// Customers

Deno.test("shopify customers: deleted customers are read as inactive from deletion events", () =>
  withAccount(PROVIDER, async (world) => {
    await seed(world.sb, world.account, { seed: 3, customers: 300 });
    const store = new StreamStore<CustomerRecord>();
    await syncRun(readCustomers, world, store, { pageSize: 250 });
    await assertStoreEqualsTruth(world, "customers", store);

    for (let round = 0; round < 3; round++) {
      // Deletions of the later instant come in the first page, before the earlier instant's
      // customers are all read: the page must stop at what both connections have covered.
      await mutateTwice(world.sb, world.account, 200);
      await syncRun(readCustomers, world, store, { pageSize: 30 });
      await assertStoreEqualsTruth(world, "customers", store);
    }
    const inactive = [...store.rows.values()].filter((r) => r.status === "inactive");
    assert.ok(inactive.length > 0, "the mutations deleted some customers");
    for (const record of inactive) {
      assert.match(record.external_id, /^gid:\/\/shopify\/Customer\/\d+$/);
      const event = record.raw as { action: string; subjectType: string };
      assert.equal(event.action, "destroy");
      assert.equal(event.subjectType, "CUSTOMER");
    }
  }));

// ---------------------------------------------------------------------------------------------
// The sandbox answers like Shopify

Deno.test("shopify sandbox: second-precision DateTime, GID ids, and GraphQL errors for what Shopify refuses", () =>
  withAccount(PROVIDER, async (world) => {
    await seed(world.sb, world.account, { orders: 3 });
    const url = `${world.conn.config.api_base_url}/admin/api/2026-10/graphql.json`;
    const ask = async (query: string) => {
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-shopify-access-token": world.account.credentials.access_token!,
        },
        body: JSON.stringify({ query }),
      });
      assert.equal(res.status, 200);
      return await res.json();
    };

    const ok = await ask("{ orders(first: 2, sortKey: UPDATED_AT) { nodes { id updatedAt } } }");
    assert.equal(ok.data.orders.nodes.length, 2);
    assert.match(ok.data.orders.nodes[0].id, /^gid:\/\/shopify\/Order\/\d+$/);
    assert.match(ok.data.orders.nodes[0].updatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(Object.keys(ok.data.orders.nodes[0]), ["id", "updatedAt"]);
    assert.equal(ok.extensions.cost.requestedQueryCost, 4);
    assert.equal(ok.extensions.cost.actualQueryCost, 4);

    const tooMany = await ask("{ orders(first: 251) { nodes { id } } }");
    assert.equal(tooMany.data, undefined);
    assert.match(tooMany.errors[0].message, /250/);

    const unknown = await ask("{ orders(first: 1) { nodes { id trackingNumber } } }");
    assert.equal(unknown.errors[0].message, "Field 'trackingNumber' doesn't exist on type 'Order'");

    const deleted = await ask(
      '{ customers(first: 1, query: "updated_at:>=2026-01-01 OR state:DISABLED") { nodes { id } } }',
    );
    assert.ok(deleted.errors[0].message.includes("AND"), deleted.errors[0].message);
  }));

// ---------------------------------------------------------------------------------------------
// What the real Shopify withholds (issue #12), as the sandbox plays it

/** A Shopify account created with `options` (scopes, approval) and a connection to it. */
async function shopWith(
  world: World,
  options: { scopes?: string; protected_customer_data?: boolean },
): Promise<World> {
  const account = await world.sb.call<World["account"]>("POST", "/accounts", {
    provider: PROVIDER,
    ...options,
  });
  const conn = {
    ...world.conn,
    externalId: account.external_id,
    config: world.sb.configFor(account),
  };
  return { ...world, account, conn };
}

Deno.test("shopify customers without protected-data approval: nulls and a withheld list, not a failure", () =>
  withAccount(PROVIDER, async (world) => {
    const approved = await shopWith(world, { protected_customer_data: true });
    for (const w of [world, approved]) await seed(w.sb, w.account, { seed: 4, customers: 60 });
    const read = async (w: World) =>
      await readCustomers(context(), w.conn, w.account.credentials, {
        cursor: null,
        from: null,
        until: await sandboxNow(w.sb),
        pageSize: 250,
      });
    const denied = await read(world);
    assert.equal(denied.records.length, 60);
    assert.deepEqual(denied.withheld, ["email", "first_name", "last_name", "phone"]);
    assert.ok(denied.records.every((r) => r.email === null && r.first_name === null));
    const open = await read(approved);
    assert.equal(open.withheld, undefined);
    assert.ok(open.records.some((r) => r.email !== null && r.first_name !== null));
  }));

Deno.test("shopify orders older than 60 days are absent without read_all_orders, and the backfill says so", () =>
  withAccount(PROVIDER, async (full) => {
    const limited = await shopWith(full, { scopes: "read_orders,read_customers" });
    for (const w of [full, limited]) {
      await seed(w.sb, w.account, { seed: 9, orders: 150, spread_days: 150 });
    }
    const now = await sandboxNow(full.sb);
    const windowStart = now.getTime() - 60 * 86_400_000;
    const everything = new StreamStore<OrderRecord>();
    await syncRun(readOrders, full, everything, { pageSize: 250 });
    const visible = new StreamStore<OrderRecord>();
    await syncRun(readOrders, limited, visible, { pageSize: 250 });
    assert.equal(everything.rows.size, 150);
    const recent = [...everything.rows.values()].filter((o) =>
      Date.parse(o.ordered_at!) >= windowStart + 60_000
    );
    assert.ok(
      visible.rows.size < 150 && visible.rows.size >= recent.length,
      `${visible.rows.size}`,
    );
    assert.ok(
      [...visible.rows.values()].every((o) => Date.parse(o.ordered_at!) >= windowStart - 60_000),
      "nothing older than the window, and no error either",
    );

    // The adapter knows it: asked live (no stored scopes), then from the stored ones.
    const refusal = shopifyAdapter.backfillRefusal;
    const old = { stream: "orders" as const, rangeStart: new Date(windowStart - 86_400_000) };
    const creds = limited.account.credentials;
    assert.match(
      (await refusal(context(), limited.conn, creds, old)) ?? "",
      /lacks the read_all_orders scope/,
    );
    assert.equal(await refusal(context(), full.conn, full.account.credentials, old), undefined);
    const stored = {
      ...full.conn,
      config: { ...full.conn.config, granted_scopes: "read_orders,read_customers" },
    };
    assert.match(
      (await refusal(context(), stored, full.account.credentials, old)) ?? "",
      /read_all_orders/,
    );
    const fresh = { stream: "orders" as const, rangeStart: new Date(windowStart + 86_400_000) };
    assert.equal(await refusal(context(), limited.conn, creds, fresh), undefined);
    assert.equal(
      await refusal(context(), limited.conn, creds, { ...old, stream: "customers" }),
      undefined,
    );
  }));

Deno.test("shopify customer deletions are searched by the configured event action (default destroy)", () =>
  withAccount(PROVIDER, async (world) => {
    await seed(world.sb, world.account, { seed: 3, customers: 100 });
    await mutateTwice(world.sb, world.account, 80);
    const inactive = async (config: Record<string, unknown>) => {
      const store = new StreamStore<CustomerRecord>();
      await syncRun(readCustomers, { ...world, conn: { ...world.conn, config } }, store, {
        pageSize: 250,
      });
      return [...store.rows.values()].filter((r) => r.status === "inactive").length;
    };
    const byDefault = await inactive(world.conn.config);
    assert.ok(byDefault > 0, "the sandbox's deletions are read with action:destroy");
    assert.equal(
      await inactive({ ...world.conn.config, customer_deletion_action: "destroy" }),
      byDefault,
    );
    assert.equal(
      await inactive({ ...world.conn.config, customer_deletion_action: "removed" }),
      0,
      "another word finds other events",
    );
  }));

// ---------------------------------------------------------------------------------------------
// The orders page's check (isOrdersData) against its schema (ordersData)

Deno.test("shopify orders page: the cheap check accepts exactly what the schema accepts, field by field", () => {
  const order = (id: number, extra: Record<string, unknown> = {}) => ({
    id: `gid://shopify/Order/${id}`,
    name: `#${1000 + id}`,
    createdAt: "2026-02-28T23:59:59Z",
    updatedAt: "2026-03-01T00:00:00.123+01:00",
    cancelledAt: null,
    displayFinancialStatus: "PAID",
    displayFulfillmentStatus: "FULFILLED",
    totalPriceSet: { shopMoney: { amount: "-12.50", currencyCode: "EUR", extra: 1 } },
    customer: { id: "gid://shopify/Customer/7" },
    fulfillments: [{ trackingInfo: [{ number: null }, { number: "1Z999" }] }],
    ...extra,
  });
  const page = () => ({
    orders: {
      edges: [
        { node: order(1) },
        {
          node: order(2, {
            customer: null,
            cancelledAt: "2024-02-29T10:00:00Z",
            displayFinancialStatus: null,
            fulfillments: [],
            unknownField: { kept: true },
          }),
        },
      ],
      pageInfo: { hasNextPage: true, endCursor: "abc" },
    },
  });
  const bad: unknown[] = [
    undefined,
    null,
    "",
    "x",
    0,
    1.5,
    true,
    [],
    {},
    "2026-02-30T00:00:00Z",
    "2025-02-29T00:00:00Z",
    "2026-03-01 00:00:00Z",
    "2026-03-01T00:00:00",
    "1.2.3",
    "12.",
  ];
  // Every path of the valid page, each set to every value above (or deleted).
  const paths: (string | number)[][] = [];
  const walk = (value: unknown, path: (string | number)[]) => {
    if (path.length > 0) paths.push(path);
    if (typeof value === "object" && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        walk(item, [...path, Array.isArray(value) ? Number(key) : key]);
      }
    }
  };
  walk(page(), []);
  let refused = 0;
  const agree = (value: unknown, what: string) => {
    const schema = ordersData.safeParse(value).success;
    assert.equal(isOrdersData(value), schema, `${what}: the schema says ${schema}`);
    if (!schema) refused++;
  };
  agree(page(), "the valid page");
  for (const value of [undefined, null, [], "x"]) agree(value, `the page as ${String(value)}`);
  for (const path of paths) {
    for (const replacement of [...bad, "delete"]) {
      const changed = page() as Record<string | number, unknown>;
      let parent = changed;
      for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
      const last = path[path.length - 1]!;
      if (replacement === "delete") delete parent[last];
      else parent[last] = replacement;
      agree(changed, `${path.join(".")} = ${JSON.stringify(replacement) ?? "undefined"}`);
    }
  }
  assert.ok(refused > paths.length, `the schema refused ${refused} of the changed pages`);
});
