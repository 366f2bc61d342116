// ShipHero's orders reader against the ShipHero sandbox, started in-process: no database. Each
// test seeds an account's dataset, reads it page by page the way the sync job does (each page's
// cursor feeds the next call, until hasMore is false), changes it, reads again from the stored
// cursor, and compares what a store would hold (latest per external_id) with the sandbox's truth.

import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import { type SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";
import { shipheroAdapter } from "../functions-shared/providers/shiphero/adapter.ts";
import { Pacer } from "../functions-shared/providers/pacing.ts";
import {
  type AdapterContext,
  type ConnectionRef,
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

async function withAccount(fn: (world: World) => Promise<void>): Promise<void> {
  const server = await startSandbox({ port: 0 });
  try {
    const sb = new SandboxControl(server.url);
    const account = await sb.account("shiphero");
    const conn: ConnectionRef = {
      id: "00000000-0000-4000-8000-000000000001",
      provider: "shiphero",
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
  return `/data/shiphero/${encodeURIComponent(world.account.external_id)}/${action}`;
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

async function truth(world: World): Promise<TruthRecord[]> {
  return (await world.sb.call<{ records: TruthRecord[] }>("GET", dataPath(world, "orders")))
    .records;
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

function byId(records: readonly TruthRecord[]): TruthRecord[] {
  return [...records].sort((a, b) => a.external_id.localeCompare(b.external_id));
}

async function assertStoreMatchesTruth(world: World, store: Store<OrderRecord>): Promise<void> {
  const expected = byId(await truth(world));
  const actual = byId([...store.rows.values()].map(orderView));
  assert.equal(actual.length, expected.length, "number of orders stored");
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

const readOrders = shipheroAdapter.streams.orders;

Deno.test("shiphero orders: a full read and incremental reads match the truth, ties included", () =>
  withAccount(async (world) => {
    await world.sb.call("POST", dataPath(world, "seed"), {
      seed: 11,
      orders: 600,
      customers: 50,
      tracked_share: 0.4,
    });
    const store = new Store<OrderRecord>();
    await run(readOrders, world, store, { pageSize: 100 });
    await assertStoreMatchesTruth(world, store);

    for (let round = 0; round < 3; round++) {
      // Every change of a mutation has the same instant: far more ties than one page holds.
      await mutateTwice(world, 150);
      const cursors = await run(readOrders, world, store, { pageSize: 40 });
      assert.ok(
        cursors.some((cursor) => "after" in JSON.parse(cursor)),
        "a run of ties longer than a page continues with the Relay cursor",
      );
      await assertStoreMatchesTruth(world, store);
    }
    const record = [...store.rows.values()][0]!;
    assert.match(atob(record.external_id), /^Order:\d+$/);
    assert.match(record.remote_updated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    assert.match((record.raw as { updated_at: string }).updated_at, /^[\d-]+T[\d:]+$/);
    assert.ok([...store.rows.values()].some((r) => r.tracking_number !== null));
  }));

Deno.test("shiphero orders: a node missing updated_at is a bad_response naming the field", () =>
  withAccount(async (world) => {
    await world.sb.call("POST", dataPath(world, "seed"), { orders: 5 });
    await world.sb.fault({
      provider: "shiphero",
      endpoint: "api",
      kind: "missing_field",
      field: "data.orders.data.edges.0.node.updated_at",
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
      error.message.includes(
        'shiphero orders page: field "data.orders.data.edges[0].node.updated_at"',
      ),
      error.message,
    );
    assert.ok(!error.message.includes(world.account.credentials.access_token!));
  }));

Deno.test("shiphero with a pacer reads through a small credit bucket without one throttled request", () =>
  withAccount(async (world) => {
    const bucket = { capacity: 100, restorePerSecond: 150 };
    await world.sb.call("POST", "/config", {
      limits: {
        shiphero: { capacity: bucket.capacity, restore_per_second: bucket.restorePerSecond },
      },
    });
    await world.sb.call("POST", dataPath(world, "seed"), { orders: 250 });
    // ShipHero does not report the credits left: the pacer runs on the bucket model alone.
    const pacer = new Pacer(bucket);
    const store = new Store<OrderRecord>();
    await run(readOrders, world, store, { pageSize: 20, pacer });

    assert.equal(store.rows.size, 250);
    const { api } = await world.sb.call<ApiStats>("GET", "/stats");
    assert.equal(api.shiphero?.throttled, 0);
    assert.ok((api.shiphero?.requests ?? 0) >= 13);
    assert.ok(pacer.waitedMs > 0, "the pacer had to wait for credits");
  }));

Deno.test("shiphero without a pacer, running out of credits is rate_limited with ShipHero's wait", () =>
  withAccount(async (world) => {
    await world.sb.call("POST", "/config", {
      limits: { shiphero: { capacity: 30, restore_per_second: 1 } },
    });
    await world.sb.call("POST", dataPath(world, "seed"), { orders: 100 });
    const store = new Store<OrderRecord>();
    const error = await rejection(run(readOrders, world, store, { pageSize: 20 }));
    assert.equal(error.code, "rate_limited");
    assert.ok(error.message.includes("not enough credits"), error.message);
    // 21 credits required, 9 left, 1 credit per second: "Please try again in 12 seconds".
    assert.ok(
      error.retryAfterMs !== undefined && error.retryAfterMs >= 10_000 &&
        error.retryAfterMs <= 21_000,
      `retryAfterMs ${error.retryAfterMs}`,
    );
    assert.equal(store.rows.size, 20, "the first page was read");
    const { api } = await world.sb.call<ApiStats>("GET", "/stats");
    assert.equal(api.shiphero?.throttled, 1);
  }));

Deno.test("shiphero sandbox: ISODateTime without offset, Relay ids, and a date-only argument refused", () =>
  withAccount(async (world) => {
    await world.sb.call("POST", dataPath(world, "seed"), { orders: 3 });
    const ask = async (query: string) => {
      const res = await fetch(`${world.conn.config.api_base_url}/graphql`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${world.account.credentials.access_token}`,
        },
        body: JSON.stringify({ query }),
      });
      assert.equal(res.status, 200);
      return await res.json();
    };

    const ok = await ask(
      `{ orders(updated_from: "2000-01-01T00:00:00") { complexity data(first: 2) {
          edges { node { id legacy_id updated_at } } } } }`,
    );
    const node = ok.data.orders.data.edges[0].node;
    assert.equal(atob(node.id), `Order:${node.legacy_id}`);
    assert.match(node.updated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    assert.equal(ok.data.orders.complexity, 3);

    const dateOnly = await ask(
      `{ orders(updated_from: "2026-01-29") { data(first: 1) { edges { node { id } } } } }`,
    );
    assert.equal(dateOnly.data, undefined);
    assert.match(dateOnly.errors[0].message, /ISODateTime/);

    const unknown = await ask(`{ orders { data(first: 1) { edges { node { tracking } } } } }`);
    assert.equal(unknown.errors[0].message, "Cannot query field 'tracking' on type 'Order'.");
  }));
