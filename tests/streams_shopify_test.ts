// Shopify's stream readers against the Shopify sandbox, started in-process: no database. Each test
// seeds an account's dataset, reads it page by page the way the sync job does (each page's cursor
// feeds the next call, until hasMore is false), changes it, reads again from the stored cursor,
// and compares what a store would hold (latest per external_id) with the sandbox's truth.

import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import { type SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";
import { shopifyAdapter } from "../functions-shared/providers/shopify/adapter.ts";
import { Pacer } from "../functions-shared/providers/pacing.ts";
import {
  type AdapterContext,
  type ConnectionRef,
  type CustomerRecord,
  type OrderRecord,
  ProviderError,
  type StreamReader,
} from "../functions-shared/providers/types.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

interface TruthRecord {
  external_id: string;
  updated_at: string;
  status: string;
  tracking_number?: string | null;
  order_number?: string | null;
}

interface ApiStats {
  api: Record<string, { requests: number; throttled: number }>;
}

interface World {
  sb: SandboxControl;
  account: SandboxAccount;
  conn: ConnectionRef;
}

async function withShop(fn: (world: World) => Promise<void>): Promise<void> {
  const server = await startSandbox({ port: 0 });
  try {
    const sb = new SandboxControl(server.url);
    const account = await sb.account("shopify");
    const conn: ConnectionRef = {
      id: "00000000-0000-4000-8000-000000000001",
      provider: "shopify",
      externalId: account.external_id,
      config: sb.configFor(account),
    };
    await fn({ sb, account, conn });
  } finally {
    await server.close();
  }
}

function context(pacer?: Pacer): AdapterContext {
  return { fetch, now: () => new Date(), app: () => undefined, ...(pacer ? { pacer } : {}) };
}

function dataPath(world: World, action: string): string {
  return `/data/shopify/${encodeURIComponent(world.account.external_id)}/${action}`;
}

/** What the sync job stores: the latest record per external_id (an older one never wins). */
class Store<R extends { external_id: string; remote_updated_at: string }> {
  readonly rows = new Map<string, R>();
  cursor: string | null = null;

  apply(records: readonly R[]): void {
    for (const record of records) {
      const held = this.rows.get(record.external_id);
      if (!held || Date.parse(record.remote_updated_at) >= Date.parse(held.remote_updated_at)) {
        this.rows.set(record.external_id, record);
      }
    }
  }
}

/** The provider's "now": the sandbox clock, which tests move forward. */
async function providerNow(world: World): Promise<Date> {
  return new Date((await world.sb.call<{ now: string }>("GET", "/clock")).now);
}

/** Changes at two instants a few seconds apart: a run then holds two groups of ties. */
async function mutateTwice(world: World, changes: number): Promise<void> {
  await world.sb.call("POST", dataPath(world, "mutate"), { changes });
  await world.sb.call("POST", "/clock", { advance_seconds: 3 });
  await world.sb.call("POST", dataPath(world, "mutate"), { changes });
}

/** One run: every page up to now, each from the previous page's cursor. Returns the cursors. */
async function run<R extends { external_id: string; remote_updated_at: string }>(
  reader: StreamReader<R>,
  world: World,
  store: Store<R>,
  opts: { pageSize: number; pacer?: Pacer },
): Promise<string[]> {
  const until = await providerNow(world);
  const cursors: string[] = [];
  for (let pages = 0; pages < 1000; pages++) {
    const page = await reader(context(opts.pacer), world.conn, world.account.credentials, {
      cursor: store.cursor,
      from: null,
      until,
      pageSize: opts.pageSize,
    });
    store.apply(page.records);
    store.cursor = page.cursor;
    cursors.push(page.cursor);
    if (!page.hasMore) return cursors;
  }
  throw new Error("the read did not finish within 1000 pages");
}

async function truth(world: World, stream: "orders" | "customers"): Promise<TruthRecord[]> {
  return (await world.sb.call<{ records: TruthRecord[] }>("GET", dataPath(world, stream))).records;
}

function orderView(r: OrderRecord): TruthRecord {
  return {
    external_id: r.external_id,
    updated_at: r.remote_updated_at,
    status: r.status ?? "",
    tracking_number: r.tracking_number,
    order_number: r.order_number,
  };
}

function customerView(r: CustomerRecord): TruthRecord {
  return { external_id: r.external_id, updated_at: r.remote_updated_at, status: r.status };
}

function byId(records: readonly TruthRecord[]): TruthRecord[] {
  return [...records].sort((a, b) => a.external_id.localeCompare(b.external_id));
}

async function assertStoreMatchesTruth(
  world: World,
  stream: "orders" | "customers",
  rows: readonly TruthRecord[],
): Promise<void> {
  const expected = byId(await truth(world, stream));
  const actual = byId(rows);
  assert.equal(actual.length, expected.length, `${stream}: number of records stored`);
  assert.deepEqual(actual, expected);
}

async function rejection(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the read to fail");
}

const readOrders = shopifyAdapter.streams.orders;
const readCustomers = shopifyAdapter.streams.customers;

// ---------------------------------------------------------------------------------------------
// Orders

Deno.test("shopify orders: a full read and incremental reads match the truth, ties included", () =>
  withShop(async (world) => {
    await world.sb.call("POST", dataPath(world, "seed"), {
      seed: 7,
      orders: 600,
      customers: 50,
      tracked_share: 0.4,
    });
    const store = new Store<OrderRecord>();
    await run(readOrders, world, store, { pageSize: 250 });
    await assertStoreMatchesTruth(world, "orders", [...store.rows.values()].map(orderView));

    for (let round = 0; round < 3; round++) {
      // Every change of a mutation has the same instant: far more ties than one page holds.
      await mutateTwice(world, 150);
      const cursors = await run(readOrders, world, store, { pageSize: 40 });
      assert.ok(
        cursors.some((cursor) => "after" in JSON.parse(cursor)),
        "a run of ties longer than a page continues with the Relay cursor",
      );
      await assertStoreMatchesTruth(world, "orders", [...store.rows.values()].map(orderView));
    }
    const record = [...store.rows.values()][0]!;
    assert.match(record.external_id, /^gid:\/\/shopify\/Order\/\d+$/);
    assert.match(record.remote_updated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    assert.match(record.total_price ?? "", /^\d+\.\d+$/);
  }));

Deno.test("shopify orders: a node missing updatedAt is a bad_response naming the field", () =>
  withShop(async (world) => {
    await world.sb.call("POST", dataPath(world, "seed"), { orders: 5 });
    await world.sb.fault({
      provider: "shopify",
      endpoint: "api",
      kind: "missing_field",
      field: "data.orders.edges.0.node.updatedAt",
    });
    const error = await rejection(
      readOrders(context(), world.conn, world.account.credentials, {
        cursor: null,
        from: null,
        until: await providerNow(world),
      }),
    );
    assert.equal(error.code, "bad_response");
    assert.ok(
      error.message.includes('shopify orders page: field "data.orders.edges[0].node.updatedAt"'),
      error.message,
    );
    assert.ok(!error.message.includes(world.account.credentials.access_token!));
  }));

// ---------------------------------------------------------------------------------------------
// Customers

Deno.test("shopify customers: deleted customers are read as inactive from deletion events", () =>
  withShop(async (world) => {
    await world.sb.call("POST", dataPath(world, "seed"), { seed: 3, customers: 300 });
    const store = new Store<CustomerRecord>();
    await run(readCustomers, world, store, { pageSize: 250 });
    await assertStoreMatchesTruth(world, "customers", [...store.rows.values()].map(customerView));

    for (let round = 0; round < 3; round++) {
      // Deletions of the later instant come in the first page, before the earlier instant's
      // customers are all read: the page must stop at what both connections have covered.
      await mutateTwice(world, 200);
      await run(readCustomers, world, store, { pageSize: 30 });
      await assertStoreMatchesTruth(
        world,
        "customers",
        [...store.rows.values()].map(customerView),
      );
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
// Rate limits

Deno.test("shopify with a pacer reads through a small bucket without one throttled request", () =>
  withShop(async (world) => {
    await world.sb.call("POST", "/config", {
      limits: { shopify: { capacity: 60, restore_per_second: 250 } },
    });
    await world.sb.call("POST", dataPath(world, "seed"), { orders: 300, customers: 100 });
    // The documented bucket; the first response's throttleStatus corrects it to the real one.
    const pacer = new Pacer(shopifyAdapter.facts.rateLimit);
    const orders = new Store<OrderRecord>();
    await run(readOrders, world, orders, { pageSize: 20, pacer });
    const customers = new Store<CustomerRecord>();
    await run(readCustomers, world, customers, { pageSize: 10, pacer });

    assert.equal(orders.rows.size, 300);
    assert.equal(customers.rows.size, 100);
    const { api } = await world.sb.call<ApiStats>("GET", "/stats");
    assert.equal(api.shopify?.throttled, 0);
    assert.ok((api.shopify?.requests ?? 0) >= 25);
    assert.ok(pacer.waitedMs > 0, "the pacer had to wait for the bucket");
  }));

Deno.test("shopify without a pacer, an empty bucket is rate_limited with the wait it implies", () =>
  withShop(async (world) => {
    await world.sb.call("POST", "/config", {
      limits: { shopify: { capacity: 30, restore_per_second: 1 } },
    });
    await world.sb.call("POST", dataPath(world, "seed"), { orders: 100 });
    const store = new Store<OrderRecord>();
    const error = await rejection(run(readOrders, world, store, { pageSize: 20 }));
    assert.equal(error.code, "rate_limited");
    assert.ok(error.message.includes("Throttled"), error.message);
    // 22 points requested, about 8 left, 1 point per second.
    assert.ok(
      error.retryAfterMs !== undefined && error.retryAfterMs >= 10_000 &&
        error.retryAfterMs <= 22_000,
      `retryAfterMs ${error.retryAfterMs}`,
    );
    assert.equal(store.rows.size, 20, "the first page was read");
    const { api } = await world.sb.call<ApiStats>("GET", "/stats");
    assert.equal(api.shopify?.throttled, 1);
  }));

// ---------------------------------------------------------------------------------------------
// The sandbox answers like Shopify

Deno.test("shopify sandbox: second-precision DateTime, GID ids, and GraphQL errors for what Shopify refuses", () =>
  withShop(async (world) => {
    await world.sb.call("POST", dataPath(world, "seed"), { orders: 3 });
    const url = `${world.conn.config.api_base_url}/admin/api/2025-10/graphql.json`;
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
