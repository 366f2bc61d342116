// QuickBooks Online stream readers against the sandbox: orders (Invoice, then SalesReceipt) and
// customers read by LastUpdatedTime converge on the sandbox's truth over rounds of random changes,
// including many changes stamped in one second across page boundaries; the sandbox's query
// language answers what the webhook issue will send and rejects what it cannot parse; a small
// rate budget is paced without a throttle; a throttle without a pacer waits the documented 60 s;
// and a record missing a field fails the page naming it.

import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import { type SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";
import { quickbooksAdapter } from "../functions-shared/providers/quickbooks/adapter.ts";
import { Pacer } from "../functions-shared/providers/pacing.ts";
import {
  type AdapterContext,
  type ConnectionRef,
  ProviderError,
  type StreamName,
  type StreamReader,
} from "../functions-shared/providers/types.ts";

const PROVIDER = "quickbooks";

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
  const reader = quickbooksAdapter.streams[stream];
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

/** Every cursor a read stored, so a test can see which paths it took. */
async function readAllTracing(
  stream: StreamName,
  setup: { account: SandboxAccount; conn: ConnectionRef },
  cursor: string | null,
  pageSize: number,
  cursors: string[],
) {
  const records: Stored[] = [];
  const until = new Date();
  for (let pages = 1; pages < 1000; pages++) {
    const page = await readerOf(stream)(context(), setup.conn, setup.account.credentials, {
      cursor,
      from: null,
      until,
      pageSize,
    });
    assert.ok(!page.hasMore || page.records.length > 0, "a page that says more has records");
    records.push(...page.records);
    cursor = page.cursor;
    cursors.push(cursor);
    if (!page.hasMore) return { records, cursor, until };
  }
  throw new Error("the read never caught up");
}

for (const stream of ["orders", "customers"] as const) {
  Deno.test(`quickbooks ${stream}: a full read and incremental reads after changes stamped in one second match the truth, ties across pages included`, async () => {
    await withSandbox(async (sb) => {
      await generousLimits(sb);
      const setup = await seeded(sb, { orders: 300, customers: 250 });
      const stored = new Map<string, Stored>();
      const cursors: string[] = [];
      const first = await readAllTracing(stream, setup, null, 50, cursors);
      store(stored, first.records);
      await assertMatchesTruth(sb, setup.account, stream, stored, "after the first read");
      let cursor = first.cursor;

      for (let round = 1; round <= 4; round++) {
        // "mutate stamps all changes at one instant": 60 changes share one LastUpdatedTime second.
        await sb.call("POST", `/data/${PROVIDER}/${setup.account.external_id}/mutate`, {
          changes: 60,
        });
        const next = await readAllTracing(stream, setup, cursor, 7, cursors);
        store(stored, next.records);
        await assertMatchesTruth(sb, setup.account, stream, stored, `after round ${round}`);
        cursor = next.cursor;
        assertRestingCursor(stream, cursor, next.until);
      }
      // Pages of 7 inside a second shared by dozens of records went on by STARTPOSITION.
      assert.ok(cursors.some((c) => c.includes('"after"')), "the tie path was taken");
    });
  });
}

/**
 * Real QuickBooks allows 10 requests a second; these tests read faster than that without a pacer
 * (pacing has its own test below).
 */
async function generousLimits(sb: SandboxControl): Promise<void> {
  await sb.call("POST", "/config", {
    limits: { quickbooks: { capacity: 10_000, restore_per_second: 10_000 } },
  });
}

/**
 * A finished read's cursor never passes the run's start (ARCHITECTURE rule 4); it stands at
 * `until` minus the overlap unless the read had already moved `since` later than that (timePage
 * keeps the later one).
 */
function assertRestingCursor(stream: StreamName, cursor: string, until: Date): void {
  const end = until.getTime();
  const parsed = JSON.parse(cursor);
  const sinces = stream === "orders"
    ? [parsed.Invoice.since, parsed.SalesReceipt.since]
    : [parsed.since];
  if (stream === "orders") {
    assert.equal(parsed.reading, "Invoice", "the next run starts at Invoice");
  }
  for (const since of sinces) {
    assert.ok(Date.parse(since) <= end, `since ${since} is not past until`);
  }
}

Deno.test("quickbooks orders: a read stopped after any page resumes from its cursor with no gap", async () => {
  await withSandbox(async (sb) => {
    await generousLimits(sb);
    const setup = await seeded(sb, { orders: 200, customers: 30 });
    const stored = new Map<string, Stored>();
    let cursor: string | null = null;
    // One page per "run", a mutation between runs, as a job stopped by its time budget would see.
    for (let run = 0; run < 200; run++) {
      const page = await quickbooksAdapter.streams.orders(
        context(),
        setup.conn,
        setup.account.credentials,
        { cursor, from: null, until: new Date(), pageSize: 25 },
      );
      store(stored, page.records);
      cursor = page.cursor;
      if (run % 3 === 0) {
        await sb.call("POST", `/data/${PROVIDER}/${setup.account.external_id}/mutate`, {
          changes: 10,
        });
      }
      if (!page.hasMore && run > 12) break;
    }
    store(stored, (await readAll("orders", context(), setup, cursor)).records);
    await assertMatchesTruth(sb, setup.account, "orders", stored, "after stop-and-go reads");
  });
});

// ---------------------------------------------------------------------------------------------
// The sandbox's query language

async function query(sb: SandboxControl, account: SandboxAccount, text: string) {
  const url = new URL(`${sb.url}/quickbooks/v3/company/${account.config.realm_id}/query`);
  url.searchParams.set("query", text);
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${account.credentials.access_token}` },
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("quickbooks sandbox: Id = and Id IN fetch named entities; Active and COUNT(*) are understood", async () => {
  await withSandbox(async (sb) => {
    const { account } = await seeded(sb, { orders: 40, customers: 10 });
    const { records } = await sb.call<{ records: TruthRecord[] }>(
      "GET",
      `/data/${PROVIDER}/${account.external_id}/orders`,
    );
    const invoiceIds = records.filter((r) => r.external_id.startsWith("Invoice:"))
      .map((r) => r.external_id.slice("Invoice:".length)).slice(0, 2);
    const named = await query(
      sb,
      account,
      `select * from Invoice where Id in ('${invoiceIds[0]}', '${invoiceIds[1]}')`,
    );
    assert.equal(named.status, 200);
    assert.deepEqual(named.body.QueryResponse.Invoice.map((i: { Id: string }) => i.Id), invoiceIds);
    const one = await query(sb, account, `SELECT * FROM Customer WHERE Id = '3'`);
    assert.equal(one.body.QueryResponse.Customer[0].Id, "3");
    assert.match(one.body.QueryResponse.Customer[0].MetaData.LastUpdatedTime, /-08:00$/);
    const none = await query(sb, account, `SELECT * FROM Customer WHERE Id = '999'`);
    assert.deepEqual(none.body.QueryResponse, {});
    const count = await query(sb, account, "SELECT COUNT(*) FROM Customer");
    assert.equal(count.body.QueryResponse.totalCount, 10);
    const all = await query(
      sb,
      account,
      "SELECT COUNT(*) FROM Customer WHERE Active IN (true, false)",
    );
    assert.equal(all.body.QueryResponse.totalCount, 10);
    const inactive = await query(sb, account, "select * from Customer where Active = false");
    assert.deepEqual(inactive.body.QueryResponse, {}, "no customer was deactivated");
  });
});

Deno.test("quickbooks sandbox: a query it cannot parse gets Intuit's 400 fault", async () => {
  await withSandbox(async (sb) => {
    const { account } = await seeded(sb, { orders: 5, customers: 5 });
    for (
      const text of [
        "SELECT * FROM Invoice WHERE",
        "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime >> '2026-01-01'",
        "SELEKT * FROM Invoice",
        "SELECT * FROM Invoice MAXRESULTS",
      ]
    ) {
      const res = await query(sb, account, text);
      assert.equal(res.status, 400, text);
      assert.equal(res.body.Fault.type, "ValidationFault", text);
      assert.equal(res.body.Fault.Error[0].code, "4000", text);
      assert.equal(res.body.Fault.Error[0].Message, "Error parsing query", text);
      assert.match(res.body.Fault.Error[0].Detail, /^QueryParserError: /, text);
    }
    const tooMany = await query(sb, account, "SELECT * FROM Invoice MAXRESULTS 1001");
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.Fault.Error[0].code, "4001");
    const badField = await query(sb, account, "SELECT * FROM Invoice WHERE Colour = 'red'");
    assert.match(badField.body.Fault.Error[0].Detail, /not queryable/);
  });
});

// ---------------------------------------------------------------------------------------------
// Rate limits and bad pages

Deno.test("quickbooks: a small request budget is paced with no throttled request", async () => {
  await withSandbox(async (sb) => {
    const bucket = { capacity: 3, restorePerSecond: 8 };
    await sb.call("POST", "/config", {
      limits: {
        quickbooks: { capacity: bucket.capacity, restore_per_second: bucket.restorePerSecond },
      },
    });
    const setup = await seeded(sb, { orders: 300, customers: 0 });
    const pacer = new Pacer(bucket);
    const stored = new Map<string, Stored>();
    store(stored, (await readAll("orders", context({ pacer }), setup, null, 30)).records);
    const stats = await apiStats(sb);
    assert.ok(stats.requests >= 10, `it took ${stats.requests} requests`);
    assert.equal(stats.throttled, 0, "none was throttled");
    await assertMatchesTruth(sb, setup.account, "orders", stored, "paced");
  });
});

Deno.test("quickbooks: without a pacer a tiny budget gives rate_limited, waiting the documented 60 s", async () => {
  await withSandbox(async (sb) => {
    await sb.call("POST", "/config", {
      limits: { quickbooks: { capacity: 1, restore_per_second: 0.05 } },
    });
    const setup = await seeded(sb, { orders: 0, customers: 100 });
    const error = await readAll("customers", context(), setup, null, 10).then(
      () => assert.fail("expected a throttle"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ProviderError, String(error));
    assert.equal(error.code, "rate_limited");
    assert.equal(error.retryAfterMs, 60_000, "no Retry-After: the adapter's default");
    assert.match(error.message, /ThrottleExceeded/);
  });
});

Deno.test("quickbooks: an invoice missing MetaData fails the page as bad_response naming the field", async () => {
  await withSandbox(async (sb) => {
    const setup = await seeded(sb, { orders: 30, customers: 0 });
    await sb.fault({
      provider: PROVIDER,
      endpoint: "api",
      kind: "missing_field",
      field: "QueryResponse.Invoice.2.MetaData",
    });
    const error = await readAll("orders", context(), setup, null).then(
      () => assert.fail("expected a bad page"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ProviderError, String(error));
    assert.equal(error.code, "bad_response");
    assert.match(
      error.message,
      /quickbooks orders page: field "QueryResponse\.Invoice(\[2\]|\.2)\.MetaData"/,
    );
    for (const secret of Object.values(setup.account.credentials)) {
      assert.ok(!error.message.includes(secret), "no token in the message");
    }
  });
});
