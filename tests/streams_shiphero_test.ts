// ShipHero's orders reader against the ShipHero sandbox, started in-process: no database. Each
// test seeds an account's dataset, reads it page by page the way the sync job does (each page's
// cursor feeds the next call, until hasMore is false), changes it, reads again from the stored
// cursor, and compares what a store would hold (latest per external_id) with the sandbox's truth.

import assert from "node:assert/strict";
import { shipheroAdapter } from "../functions-shared/providers/shiphero/adapter.ts";
import { Pacer } from "../functions-shared/providers/pacing.ts";
import type { OrderRecord } from "../functions-shared/providers/types.ts";
import {
  assertOrdersConvergeThroughTies,
  rejection,
  seed,
  setLimits,
  StreamStore,
  syncRun,
  withAccount,
} from "./helpers/streams.ts";

const PROVIDER = "shiphero";
const readOrders = shipheroAdapter.streams.orders;

Deno.test("shiphero orders: a full read and incremental reads match the truth, ties included", () =>
  withAccount(PROVIDER, async (world) => {
    const store = await assertOrdersConvergeThroughTies(world, readOrders, {
      seed: 11,
      pageSize: 100,
    });
    const record = [...store.rows.values()][0]!;
    assert.match(atob(record.external_id), /^Order:\d+$/);
    assert.match(record.remote_updated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    assert.match((record.raw as { updated_at: string }).updated_at, /^[\d-]+T[\d:]+$/);
    assert.ok([...store.rows.values()].some((r) => r.tracking_number !== null));
  }));

Deno.test("shiphero sandbox: ISODateTime without offset, Relay ids, and a date-only argument refused", () =>
  withAccount(PROVIDER, async (world) => {
    await seed(world.sb, world.account, { orders: 3 });
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

Deno.test("shiphero: a throttle teaches the pacer the bucket ShipHero reports (credits left, restore rate)", () =>
  withAccount(PROVIDER, async (world) => {
    // The account's real bucket is far smaller than the model's default.
    await setLimits(world.sb, PROVIDER, { capacity: 30, restorePerSecond: 1 });
    await seed(world.sb, world.account, { orders: 100 });
    const pacer = new Pacer(shipheroAdapter.facts.rateLimit);
    assert.deepEqual(pacer.model, { capacity: 4004, restorePerSecond: 60 });
    const store = new StreamStore<OrderRecord>();
    const error = await rejection(syncRun(readOrders, world, store, { pageSize: 20, pacer }));
    assert.equal(error.code, "rate_limited");
    assert.equal(error.retryAfterMs, 12_000, "In 12 seconds you will have enough credits");
    // "requires 21 credits, but there are only 9 left", 12 s: 1 credit per second.
    assert.deepEqual(pacer.model, { capacity: 4004, restorePerSecond: 1 });
    assert.ok(pacer.available >= 9 && pacer.available < 10, `available ${pacer.available}`);
  }));
