// Lightspeed X-Series stream readers against the sandbox: sales and customers read by version
// converge on the sandbox's truth over rounds of random changes, a small rate budget is paced
// without a throttle, a throttle without a pacer is "rate_limited", and a record missing a field
// fails the page naming it.

import assert from "node:assert/strict";
import { lightspeedAdapter } from "../functions-shared/providers/lightspeed/adapter.ts";
import { Pacer } from "../functions-shared/providers/pacing.ts";
import {
  apiStats,
  assertMatchesTruth,
  context,
  mutate,
  readAll,
  rejection,
  seeded,
  setLimits,
  store,
  type Stored,
  truthOf,
  withSandbox,
} from "./helpers/streams.ts";

const PROVIDER = "lightspeed";

// ---------------------------------------------------------------------------------------------
// Convergence

for (const stream of ["orders", "customers"] as const) {
  Deno.test(`lightspeed ${stream}: a full read and incremental reads by version after random changes match the truth`, async () => {
    await withSandbox(async (sb) => {
      const setup = await seeded(sb, PROVIDER, { orders: 300, customers: 250 });
      const stored = new Map<string, Stored>();
      const first = await readAll(stream, context(), setup, null);
      assert.ok(first.pages > 5, `several pages (${first.pages})`);
      store(stored, first.records);
      await assertMatchesTruth(sb, setup.account, stream, stored, "after the first read");
      // `raw` is the record as Lightspeed sent it (a same-second change differs only there).
      for (const r of first.records) {
        const raw = r.raw as { id?: unknown; version?: unknown };
        assert.deepEqual(
          [raw.id, typeof raw.version],
          [r.external_id, "number"],
          "raw is the record",
        );
      }
      let cursor = first.cursor;

      for (let round = 1; round <= 4; round++) {
        await mutate(sb, setup.account, 60);
        const next = await readAll(stream, context(), setup, cursor, 20);
        // A version cursor is exact: a round reads each changed record once, nothing else.
        assert.ok(next.records.length <= 60, `round ${round} read ${next.records.length}`);
        assert.equal(
          new Set(next.records.map((r) => r.external_id)).size,
          next.records.length,
          `round ${round}: no record read twice`,
        );
        store(stored, next.records);
        await assertMatchesTruth(sb, setup.account, stream, stored, `after round ${round}`);
        cursor = next.cursor;
      }

      // Caught up: reading again returns nothing and keeps the cursor.
      const idle = await readAll(stream, context(), setup, cursor);
      assert.deepEqual([idle.records.length, idle.cursor], [0, cursor]);
    });
  });
}

Deno.test("lightspeed sales: a read from a date (no cursor) starts at version 0 and keeps changes since that date", async () => {
  await withSandbox(async (sb) => {
    const setup = await seeded(sb, PROVIDER, { orders: 200, customers: 20 });
    const from = new Date(Date.now() - 10 * 86_400_000);
    const records: Stored[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 100; i++) {
      const page = await lightspeedAdapter.streams.orders(
        context(),
        setup.conn,
        setup.account.credentials,
        { cursor, from, until: new Date(), pageSize: 50 },
      );
      records.push(...page.records);
      cursor = page.cursor;
      if (!page.hasMore) break;
    }
    const truth = await truthOf(sb, setup.account, "orders");
    const expected = truth.filter((r) => Date.parse(r.updated_at) >= from.getTime());
    assert.ok(expected.length > 0 && expected.length < truth.length, "the date splits the sales");
    assert.deepEqual(
      records.map((r) => r.external_id).sort(),
      expected.map((r) => r.external_id).sort(),
    );
    assert.deepEqual(
      Object.keys(JSON.parse(cursor!)),
      ["version"],
      "the final cursor is a version",
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Rate limits and bad pages

Deno.test("lightspeed: a small request budget is paced with no throttled request", async () => {
  await withSandbox(async (sb) => {
    const bucket = { capacity: 3, restorePerSecond: 6 };
    await setLimits(sb, PROVIDER, bucket);
    const setup = await seeded(sb, PROVIDER, { orders: 300, customers: 0 });
    const pacer = new Pacer(bucket);
    const stored = new Map<string, Stored>();
    store(stored, (await readAll("orders", context({ pacer }), setup, null)).records);
    const stats = await apiStats(sb, PROVIDER);
    assert.ok(stats.requests >= 7, `it took ${stats.requests} requests`);
    assert.equal(stats.throttled, 0, "none was throttled");
    await assertMatchesTruth(sb, setup.account, "orders", stored, "paced");
  });
});

Deno.test("lightspeed: without a pacer a tiny budget gives rate_limited with the wait from Retry-After", async () => {
  await withSandbox(async (sb) => {
    await setLimits(sb, PROVIDER, { capacity: 1, restorePerSecond: 0.05 });
    const setup = await seeded(sb, PROVIDER, { orders: 100, customers: 0 });
    const error = await rejection(
      readAll("orders", context(), setup, null, 10),
      "expected a throttle",
    );
    assert.equal(error.code, "rate_limited");
    // An HTTP date about 20 s ahead (1 request at 0.05/s).
    assert.ok(
      error.retryAfterMs !== undefined && error.retryAfterMs > 10_000 &&
        error.retryAfterMs <= 21_000,
      `retryAfterMs ${error.retryAfterMs}`,
    );
    assert.ok(error.retryable);
  });
});

Deno.test("lightspeed: a sale missing updated_at fails the page as bad_response naming the field", async () => {
  await withSandbox(async (sb) => {
    const setup = await seeded(sb, PROVIDER, { orders: 30, customers: 0 });
    await sb.fault({
      provider: PROVIDER,
      endpoint: "api",
      kind: "missing_field",
      field: "data.3.updated_at",
    });
    const error = await rejection(readAll("orders", context(), setup, null), "expected a bad page");
    assert.equal(error.code, "bad_response");
    assert.match(error.message, /lightspeed orders page: field "data(\[3\]|\.3)\.updated_at"/);
    for (const secret of Object.values(setup.account.credentials)) {
      assert.ok(!error.message.includes(secret), "no token in the message");
    }
  });
});
