// Maystro order reader against the sandbox: walking the newest-first list down to a watermark
// converges on the sandbox's truth over rounds of random changes, and orders first read without a
// tracking number get it later (never filtering on having one); a walk stopped mid-way resumes at
// its page and skips nothing while orders are added at the front; orders open longer than the
// lookback stop being re-read; the list's filters work. Pacing, throttles and bad pages:
// tests/streams_contract_test.ts.

import assert from "node:assert/strict";
import { maystroAdapter } from "../functions-shared/providers/maystro/adapter.ts";
import { normalizeTime } from "../functions-shared/providers/maystro/streams.ts";
import { SYNC_OVERLAP_SECONDS } from "../functions-shared/providers/cursor.ts";
import type { SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";
import {
  assertMatchesTruth,
  context,
  mutate,
  readAll,
  seeded,
  type SeedOptions,
  setLimits,
  type Setup,
  store,
  type Stored,
  truthOf,
  withSandbox,
} from "./helpers/streams.ts";

const PROVIDER = "maystro";

/** An account seeded with 30% of its orders tracked unless `seed` says otherwise. */
function seededMaystro(sb: SandboxControl, seed: SeedOptions): Promise<Setup> {
  return seeded(sb, PROVIDER, { tracked_share: 0.3, ...seed });
}

/** Maystro's default bucket (60, +10/s) is smaller than these unpaced tests' bursts. */
async function generousLimits(sb: SandboxControl): Promise<void> {
  await setLimits(sb, PROVIDER, { capacity: 10_000, restorePerSecond: 10_000 });
}

// ---------------------------------------------------------------------------------------------
// Convergence

Deno.test("maystro orders: full and incremental walks after random changes match the truth; orders read untracked get their tracking number later", async () => {
  await withSandbox(async (sb) => {
    await generousLimits(sb);
    const setup = await seededMaystro(sb, { orders: 300, customers: 100 });
    const stored = new Map<string, Stored>();
    const first = await readAll("orders", context(), setup, null);
    assert.ok(first.pages >= 15, `the whole list was walked (${first.pages} pages)`);
    store(stored, first.records);
    await assertMatchesTruth(sb, setup.account, "orders", stored, "after the first walk");
    const untracked = new Set(
      [...stored.values()].filter((r) => r.tracking_number === null).map((r) => r.external_id),
    );
    assert.ok(
      untracked.size > 50,
      `many orders start without a tracking number (${untracked.size})`,
    );
    let cursor = first.cursor;

    let assigned = 0;
    for (let round = 1; round <= 5; round++) {
      assigned += (await mutate(sb, setup.account, 60)).tracking_assigned;
      const next = await readAll("orders", context(), setup, cursor);
      store(stored, next.records);
      await assertMatchesTruth(sb, setup.account, "orders", stored, `after round ${round}`);
      cursor = next.cursor;
      const watermark = Date.parse(JSON.parse(cursor).watermark);
      assert.ok(
        watermark <= next.until.getTime() - SYNC_OVERLAP_SECONDS * 1000,
        "the watermark is never later than until minus the overlap",
      );
    }
    const filledLater = [...untracked].filter((id) => stored.get(id)?.tracking_number !== null);
    assert.ok(assigned > 0, "the carrier assigned tracking numbers");
    assert.ok(filledLater.length > 0, "orders first read untracked were filled in later");
  });
});

Deno.test("maystro orders: a walk stopped mid-way resumes at its page and skips nothing while new orders arrive at the front", async () => {
  await withSandbox(async (sb) => {
    await generousLimits(sb);
    const setup = await seededMaystro(sb, { orders: 200, customers: 50 });
    const before = await truthOf(sb, setup.account, "orders");
    const stored = new Map<string, Stored>();
    let cursor: string | null = null;
    let pages = 0;
    let arrived = 0;
    for (; pages < 100; pages++) {
      const page = await maystroAdapter.streams.orders(
        context(),
        setup.conn,
        setup.account.credentials,
        { cursor, from: null, until: new Date() },
      );
      store(stored, page.records);
      cursor = page.cursor;
      if (!page.hasMore) break;
      // Stopped after each page; meanwhile new orders push every page further back.
      arrived += (await mutate(sb, setup.account, 12)).orders_created;
      assert.equal(JSON.parse(cursor).page, pages + 2, "the cursor names the next page");
    }
    assert.ok(arrived > 20, `more than a page of orders arrived mid-walk (${arrived})`);
    for (const r of before) {
      assert.ok(stored.has(r.external_id), `${r.external_id} was not skipped`);
    }
    store(stored, (await readAll("orders", context(), setup, cursor)).records);
    await assertMatchesTruth(sb, setup.account, "orders", stored, "after the resumed walks");
  });
});

Deno.test("maystro orders: orders open longer than the lookback stop being re-read, so a later walk is shorter", async () => {
  await withSandbox(async (sb) => {
    await generousLimits(sb);
    // 400 orders over 200 days, most of them never finished.
    const setup = await seededMaystro(sb, { orders: 400, customers: 20, spread_days: 200 });
    const first = await readAll("orders", context(), setup, null);
    const second = await readAll("orders", context(), setup, first.cursor);
    assert.equal(first.pages, 20);
    assert.ok(second.pages < first.pages / 2, `the second walk read ${second.pages} pages`);
    const watermark = Date.parse(JSON.parse(first.cursor).watermark);
    const floor = first.until.getTime() - maystroAdapter.facts.openOrderLookbackDays * 86_400_000;
    assert.equal(watermark, floor, "the watermark is held at the lookback");
  });
});

// ---------------------------------------------------------------------------------------------
// The sandbox's list

async function list(sb: SandboxControl, account: SandboxAccount, params: Record<string, string>) {
  const url = new URL(`${sb.url}/maystro/api/stores/orders/`);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const res = await fetch(url, {
    headers: { authorization: `Token ${account.credentials.api_token}` },
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("maystro sandbox: newest first, 20 a page, filters by external_order_id and display_id, 404 past the end", async () => {
  await withSandbox(async (sb) => {
    const { account } = await seededMaystro(sb, { orders: 45, customers: 10, tracked_share: 0.5 });
    const page1 = await list(sb, account, { page: "1" });
    assert.equal(page1.body.list.count, 45);
    assert.equal(page1.body.list.results.length, 20);
    assert.match(page1.body.list.next, /page=2/);
    const created = page1.body.list.results.map((o: { created_at: string }) =>
      Date.parse(normalizeTime(o.created_at))
    );
    assert.deepEqual(created, [...created].sort((a, b) => b - a), "newest first");
    assert.match(page1.body.list.results[0].created_at, /\.\d{6}\+01:00$/, "Django's format");

    const page3 = await list(sb, account, { page: "3" });
    assert.equal(page3.body.list.results.length, 5);
    assert.equal(page3.body.list.next, null);
    assert.equal((await list(sb, account, { page: "4" })).status, 404);

    // Ids as clients type them: `id` text, `instance_uuid` the order's own id.
    for (const o of page1.body.list.results) {
      assert.equal(typeof o.id, "string");
      assert.match(o.instance_uuid, /^[0-9a-f-]{36}$/);
    }
    type Row = { id: string; display_id?: string | null; tracking_number?: string | null };
    const all: Row[] = [
      ...page1.body.list.results,
      ...page3.body.list.results,
      ...(await list(sb, account, { page: "2" })).body.list.results,
    ];
    // The tracking number comes in `tracking_number` for some orders and in `display_id` for others.
    assert.ok(all.some((o) => o.tracking_number), "some carry tracking_number");
    const tracked = all.find((o) => o.display_id) as Row & { external_order_id: string };
    assert.ok(tracked, "some carry display_id");
    const byRef = await list(sb, account, { external_order_id: tracked.external_order_id });
    assert.deepEqual(byRef.body.list.results.map((o: Row) => o.id), [tracked.id]);
    const byTracking = await list(sb, account, { display_id: tracked.display_id! });
    assert.deepEqual(byTracking.body.list.results.map((o: Row) => o.id), [tracked.id]);
  });
});

// ---------------------------------------------------------------------------------------------
// Rate limits and bad pages

Deno.test("maystro: Django timestamps are normalised to ISO UTC, microseconds truncated", () => {
  assert.equal(normalizeTime("2026-11-22T11:15:30.123456+01:00"), "2026-11-22T10:15:30.123Z");
  assert.equal(normalizeTime("2026-11-22T11:15:30.999999+01:00"), "2026-11-22T10:15:30.999Z");
  assert.equal(normalizeTime("2026-11-22 11:15:30+0100"), "2026-11-22T10:15:30.000Z");
  assert.equal(normalizeTime("2026-11-22T10:15:30Z"), "2026-11-22T10:15:30.000Z");
});
