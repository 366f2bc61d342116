// QuickBooks Online stream readers against the sandbox: orders (Invoice, then SalesReceipt) and
// customers read by LastUpdatedTime converge on the sandbox's truth over rounds of random changes,
// including many changes stamped in one second across page boundaries; the sandbox's query
// language answers what the webhook issue will send and rejects what it cannot parse. Pacing,
// throttles (the documented 60 s) and bad pages: tests/streams_contract_test.ts.

import assert from "node:assert/strict";
import { quickbooksAdapter } from "../functions-shared/providers/quickbooks/adapter.ts";
import type { StreamName } from "../functions-shared/providers/types.ts";
import type { SandboxAccount, SandboxControl } from "./helpers/sandbox.ts";
import {
  assertMatchesTruth,
  context,
  mutate,
  pages,
  readAll,
  readerOf,
  seeded,
  setLimits,
  type Setup,
  store,
  type Stored,
  truthOf,
  withSandbox,
} from "./helpers/streams.ts";

const PROVIDER = "quickbooks";

// ---------------------------------------------------------------------------------------------
// Convergence

/** Every cursor a read stored, so a test can see which paths it took. */
async function readAllTracing(
  stream: StreamName,
  setup: Setup,
  cursor: string | null,
  pageSize: number,
  cursors: string[],
) {
  const read = { records: [] as Stored[], cursor: "", until: new Date() };
  const req = { until: read.until, pageSize };
  for await (const page of pages(readerOf(PROVIDER, stream), context(), setup, cursor, req)) {
    assert.ok(!page.hasMore || page.records.length > 0, "a page that says more has records");
    read.records.push(...page.records);
    read.cursor = page.cursor;
    cursors.push(page.cursor);
  }
  return read;
}

for (const stream of ["orders", "customers"] as const) {
  Deno.test(`quickbooks ${stream}: a full read and incremental reads after changes stamped in one second match the truth, ties across pages included`, async () => {
    await withSandbox(async (sb) => {
      await generousLimits(sb);
      const setup = await seeded(sb, PROVIDER, { orders: 300, customers: 250 });
      const stored = new Map<string, Stored>();
      const cursors: string[] = [];
      const first = await readAllTracing(stream, setup, null, 50, cursors);
      store(stored, first.records);
      await assertMatchesTruth(sb, setup.account, stream, stored, "after the first read");
      let cursor = first.cursor;

      for (let round = 1; round <= 4; round++) {
        // "mutate stamps all changes at one instant": 60 changes share one LastUpdatedTime second.
        await mutate(sb, setup.account, 60);
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
  await setLimits(sb, PROVIDER, { capacity: 10_000, restorePerSecond: 10_000 });
}

/**
 * A finished read's cursor never passes the run's start (docs/architecture.md rule 4); it stands at
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
    const setup = await seeded(sb, PROVIDER, { orders: 200, customers: 30 });
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
        await mutate(sb, setup.account, 10);
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
    const { account } = await seeded(sb, PROVIDER, { orders: 40, customers: 10 });
    const records = await truthOf(sb, account, "orders");
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
    const { account } = await seeded(sb, PROVIDER, { orders: 5, customers: 5 });
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
