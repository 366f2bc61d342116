// Lightspeed X-Series stream readers against the sandbox: sales and customers read by version
// converge on the sandbox's truth over rounds of random changes, a small rate budget is paced
// without a throttle, a throttle without a pacer is "rate_limited", and a record missing a field
// fails the page naming it.

import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import { type SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";
import { lightspeedAdapter } from "../functions-shared/providers/lightspeed/adapter.ts";
import { Pacer } from "../functions-shared/providers/pacing.ts";
import {
  type AdapterContext,
  type ConnectionRef,
  ProviderError,
  type StreamName,
  type StreamReader,
} from "../functions-shared/providers/types.ts";

const PROVIDER = "lightspeed";

interface Stored {
  external_id: string;
  remote_updated_at: string;
  status: string | null;
  tracking_number?: string | null;
  order_number?: string | null;
}

interface TruthRecord {
  external_id: string;
  updated_at: string;
  status: string;
  tracking_number?: string | null;
  order_number?: string | null;
}

async function withSandbox(fn: (sb: SandboxControl) => Promise<void>): Promise<void> {
  const server = await startSandbox({ port: 0 });
  try {
    await fn(new SandboxControl(server.url));
  } finally {
    await server.close();
  }
}

function context(overrides: Partial<AdapterContext> = {}): AdapterContext {
  return { fetch, now: () => new Date(), app: () => undefined, ...overrides };
}

async function seeded(
  sb: SandboxControl,
  seed: { orders: number; customers: number; seed?: number },
): Promise<{ account: SandboxAccount; conn: ConnectionRef }> {
  const account = await sb.account(PROVIDER);
  await sb.call("POST", `/data/${PROVIDER}/${account.external_id}/seed`, {
    seed: seed.seed ?? 11,
    orders: seed.orders,
    customers: seed.customers,
    spread_days: 30,
  });
  const conn = {
    id: crypto.randomUUID(),
    provider: PROVIDER,
    externalId: account.external_id,
    config: sb.configFor(account),
  } as const;
  return { account, conn };
}

function readerOf(stream: StreamName): StreamReader<Stored> {
  const reader = lightspeedAdapter.streams[stream];
  return reader as StreamReader<Stored>;
}

/** Reads pages from `cursor` until the reader says it has caught up; the job's loop, minus SQL. */
async function readAll(
  stream: StreamName,
  ctx: AdapterContext,
  setup: { account: SandboxAccount; conn: ConnectionRef },
  cursor: string | null,
  pageSize = 50,
): Promise<{ records: Stored[]; cursor: string; pages: number }> {
  const records: Stored[] = [];
  const until = new Date();
  for (let pages = 1; pages < 1000; pages++) {
    const page = await readerOf(stream)(ctx, setup.conn, setup.account.credentials, {
      cursor,
      from: null,
      until,
      pageSize,
    });
    records.push(...page.records);
    cursor = page.cursor;
    if (!page.hasMore) return { records, cursor, pages };
  }
  throw new Error("the read never caught up");
}

/** Newer remote updates win, as the upsert does. */
function store(into: Map<string, Stored>, records: Stored[]): void {
  for (const r of records) {
    const have = into.get(r.external_id);
    if (!have || Date.parse(r.remote_updated_at) >= Date.parse(have.remote_updated_at)) {
      into.set(r.external_id, r);
    }
  }
}

async function assertMatchesTruth(
  sb: SandboxControl,
  account: SandboxAccount,
  stream: StreamName,
  stored: Map<string, Stored>,
  when: string,
): Promise<void> {
  const { records } = await sb.call<{ records: TruthRecord[] }>(
    "GET",
    `/data/${PROVIDER}/${account.external_id}/${stream}`,
  );
  assert.equal(stored.size, records.length, `${stream} ${when}: record count`);
  for (const want of records) {
    const got = stored.get(want.external_id);
    assert.ok(got, `${stream} ${when}: ${want.external_id} was never read`);
    assert.equal(
      got.remote_updated_at,
      want.updated_at,
      `${when}: updated_at of ${want.external_id}`,
    );
    assert.equal(got.status, want.status, `${when}: status of ${want.external_id}`);
    if (stream === "orders") {
      assert.equal(got.tracking_number, want.tracking_number ?? null, `${when}: tracking number`);
      assert.equal(got.order_number, want.order_number ?? null, `${when}: order number`);
    }
  }
}

async function apiStats(sb: SandboxControl) {
  const stats = await sb.call<{ api: Record<string, { requests: number; throttled: number }> }>(
    "GET",
    "/stats",
  );
  return stats.api[PROVIDER] ?? { requests: 0, throttled: 0 };
}

// ---------------------------------------------------------------------------------------------
// Convergence

for (const stream of ["orders", "customers"] as const) {
  Deno.test(`lightspeed ${stream}: a full read and incremental reads by version after random changes match the truth`, async () => {
    await withSandbox(async (sb) => {
      const setup = await seeded(sb, { orders: 300, customers: 250 });
      const stored = new Map<string, Stored>();
      const first = await readAll(stream, context(), setup, null);
      assert.ok(first.pages > 5, `several pages (${first.pages})`);
      store(stored, first.records);
      await assertMatchesTruth(sb, setup.account, stream, stored, "after the first read");
      let cursor = first.cursor;

      for (let round = 1; round <= 4; round++) {
        await sb.call("POST", `/data/${PROVIDER}/${setup.account.external_id}/mutate`, {
          changes: 60,
        });
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
    const setup = await seeded(sb, { orders: 200, customers: 20 });
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
    const { records: truth } = await sb.call<{ records: TruthRecord[] }>(
      "GET",
      `/data/${PROVIDER}/${setup.account.external_id}/orders`,
    );
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
    await sb.call("POST", "/config", {
      limits: {
        lightspeed: { capacity: bucket.capacity, restore_per_second: bucket.restorePerSecond },
      },
    });
    const setup = await seeded(sb, { orders: 300, customers: 0 });
    const pacer = new Pacer(bucket);
    const stored = new Map<string, Stored>();
    store(stored, (await readAll("orders", context({ pacer }), setup, null)).records);
    const stats = await apiStats(sb);
    assert.ok(stats.requests >= 7, `it took ${stats.requests} requests`);
    assert.equal(stats.throttled, 0, "none was throttled");
    await assertMatchesTruth(sb, setup.account, "orders", stored, "paced");
  });
});

Deno.test("lightspeed: without a pacer a tiny budget gives rate_limited with the wait from Retry-After", async () => {
  await withSandbox(async (sb) => {
    await sb.call("POST", "/config", {
      limits: { lightspeed: { capacity: 1, restore_per_second: 0.05 } },
    });
    const setup = await seeded(sb, { orders: 100, customers: 0 });
    const error = await readAll("orders", context(), setup, null, 10).then(
      () => assert.fail("expected a throttle"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ProviderError, String(error));
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
    const setup = await seeded(sb, { orders: 30, customers: 0 });
    await sb.fault({
      provider: PROVIDER,
      endpoint: "api",
      kind: "missing_field",
      field: "data.3.updated_at",
    });
    const error = await readAll("orders", context(), setup, null).then(
      () => assert.fail("expected a bad page"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ProviderError, String(error));
    assert.equal(error.code, "bad_response");
    assert.match(error.message, /lightspeed orders page: field "data(\[3\]|\.3)\.updated_at"/);
    for (const secret of Object.values(setup.account.credentials)) {
      assert.ok(!error.message.includes(secret), "no token in the message");
    }
  });
});
