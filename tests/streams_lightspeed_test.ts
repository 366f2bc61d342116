// Lightspeed X-Series stream readers against the sandbox: sales and customers read by version
// converge on the sandbox's truth over rounds of random changes. Pacing, throttles and bad pages:
// tests/streams_contract_test.ts.

import assert from "node:assert/strict";
import { lightspeedAdapter } from "../functions-shared/providers/lightspeed/adapter.ts";
import {
  assertMatchesTruth,
  context,
  mutate,
  readAll,
  seeded,
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
