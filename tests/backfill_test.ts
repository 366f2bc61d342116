// Backfills end to end, against the real local Postgres and the provider sandboxes: a job killed
// at ten random pages (mid-transaction included) ends with exactly the range's records and
// finishes by itself through pg_net; a backfill racing scheduled syncs and out-of-order webhook
// writes ends at the provider's latest; a cancel stops at the next page and keeps what was
// written; Postgres going away mid-job is resumed from the checkpoint; bad inputs are refused in
// plain words by SQL and by the function, creating nothing.
import assert from "node:assert/strict";
import { join } from "node:path";
import { startSandbox } from "../sandbox/server.ts";
import { backfill, runBackfill } from "../functions-shared/jobs/backfill.ts";
import { runSync } from "../functions-shared/jobs/sync.ts";
import type { Deps } from "../functions-shared/deps.ts";
import { createJobHandler } from "../functions-shared/http/serve.ts";
import type { ProviderName } from "../functions-shared/providers/types.ts";
import {
  createTestDatabase,
  eventually,
  localSecrets,
  serveFunctionsFor,
  storeVaultSecrets,
  type TestDatabase,
  testDeps,
  withDatabaseOutage,
} from "./helpers/stack.ts";
import { SandboxControl } from "./helpers/sandbox.ts";
import {
  assertSameRecords,
  type Conn,
  connectSeeded,
  stored,
  type StoredRecord,
  truth,
  type TruthRecord,
} from "./helpers/records.ts";

interface World {
  db: TestDatabase;
  sandbox: SandboxControl;
  deps: Deps & { logLines: string[] };
}

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  try {
    await new SandboxControl(running.url).call("POST", "/config", {
      limits: { shopify: { capacity: 1e9, restore_per_second: 1e9 } },
    });
    await fn({ db, sandbox: new SandboxControl(running.url), deps: await testDeps(db) });
  } finally {
    await running.close();
    await db.drop();
  }
}

function seededConnection(
  w: World,
  provider: ProviderName,
  seed: { orders: number; customers?: number; spread_days?: number },
): Promise<Conn> {
  return connectSeeded(w.deps, w.sandbox, provider, {
    seed: 11,
    orders: seed.orders,
    customers: seed.customers ?? 0,
    spread_days: seed.spread_days ?? 3,
    tracked_share: 0.5,
  });
}

/** The stored orders are exactly `expected`, each at its version there. */
function assertSame(actual: StoredRecord[], expected: TruthRecord[], label: string) {
  assertSameRecords(actual, expected, "orders", label);
}

/** Truth records last updated within [start, end] (the provider filters at whole seconds). */
function inRange(records: TruthRecord[], start: Date, end: Date): TruthRecord[] {
  const lo = Math.floor(start.getTime() / 1000) * 1000;
  const hi = Math.floor(end.getTime() / 1000) * 1000 + 999;
  return records.filter((r) => {
    const t = Date.parse(r.updated_at);
    return t >= lo && t <= hi;
  });
}

/** A range that ends on a whole second: `daysAgo` days back to `endMinutesAgo` minutes back. */
function range(startDaysAgo: number, endDaysAgo: number): { start: Date; end: Date } {
  const now = Math.floor(Date.now() / 1000) * 1000;
  return {
    start: new Date(now - startDaysAgo * 86_400_000),
    end: new Date(now - endDaysAgo * 86_400_000),
  };
}

async function createJob(w: World, conn: Conn, r: { start: Date; end: Date }): Promise<string> {
  const [row] = await w.db.sql<{ id: string }[]>`
    select tether.create_backfill(${conn.id}, 'orders', ${r.start}, ${r.end}) as id`;
  return row!.id;
}

interface JobRow {
  status: string;
  windows_done: number;
  records_count: number;
  covered_until: Date | null;
  checkpoint: Record<string, unknown>;
  last_error: string | null;
}

async function jobRow(w: World, id: string): Promise<JobRow> {
  const [row] = await w.db.sql<JobRow[]>`
    select status, windows_done, records_count, covered_until, checkpoint, last_error
      from tether.backfills where id = ${id}`;
  return row!;
}

async function linkedCount(w: World, id: string): Promise<number> {
  const [row] = await w.db.sql<{ n: number }[]>`
    select count(*)::int as n from tether.backfill_records where backfill_id = ${id}`;
  return row!.n;
}

async function requests(w: World, provider: ProviderName): Promise<number> {
  const stats = await w.sandbox.call<{ api: Record<string, { requests: number }> }>(
    "GET",
    "/stats",
  );
  return stats.api[provider]?.requests ?? 0;
}

// ---------------------------------------------------------------------------------------------

const WORKER = join(import.meta.dirname!, "helpers", "backfill_worker.ts");

Deno.test("backfill of 20,000 orders killed at ten random pages (mid-transaction included) ends with exactly the range's records and finishes on its own", async () => {
  await withWorld(async (w) => {
    const conn = await seededConnection(w, "shopify", { orders: 20_000, spread_days: 4 });
    const r = range(3.5, 0.5);
    const id = await createJob(w, conn, r);
    // Every page's transaction takes a while, so a kill often lands inside one.
    await w.db.sql.unsafe(`
      create function public.slow_page() returns trigger language plpgsql as $$
      begin perform pg_sleep(0.15); return null; end $$;
      create trigger slow_page after insert on tether.backfill_records
        for each statement execute function public.slow_page();`);
    await w.sandbox.call("POST", "/latency", { ms: 30 });
    let midTransaction = 0;
    for (let kill = 0; kill < 10; kill++) {
      const before = await requests(w, "shopify");
      const storedBefore = (await jobRow(w, id)).records_count;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", WORKER],
        env: { TETHER_TEST_DB_URL: w.db.url, TETHER_TEST_BACKFILL: id },
        stdout: "null",
        stderr: "null",
      }).spawn();
      // Odd kills: while a page's transaction is open; even ones: after a random page count, once
      // at least one page of this worker has committed (pages are read ahead of their commit).
      const pagesIn = 1 + Math.floor(Math.random() * 4);
      await eventually(`kill point ${kill}`, async () => {
        if (kill % 2 === 1) {
          const [open] = await w.db.sql<{ n: number }[]>`
            select count(*)::int as n from pg_stat_activity
             where application_name = 'tether-backfill-worker' and xact_start is not null
               and query ilike '%backfill_records%'`;
          if (open!.n > 0) return true;
        } else if (
          await requests(w, "shopify") >= before + pagesIn &&
          (await jobRow(w, id)).records_count > storedBefore
        ) return true;
        return undefined;
      }, 30_000);
      const [open] = await w.db.sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
         where application_name = 'tether-backfill-worker' and xact_start is not null`;
      child.kill("SIGKILL");
      await child.status;
      if (open!.n > 0) midTransaction++;
      // The killed worker's backends go away (its open transaction rolled back), then its lease
      // lapses.
      await eventually("the killed worker's sessions to end", async () => {
        const [left] = await w.db.sql<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
           where application_name = 'tether-backfill-worker'`;
        return left!.n === 0 ? true : undefined;
      }, 10_000);
      await w.db.sql`update tether.backfills set lease_expires_at = now() - interval '1 second'
                      where id = ${id} and lease_owner is not null`;
    }
    assert.ok(midTransaction >= 3, `kills inside a page transaction: ${midTransaction}`);
    const afterKills = await jobRow(w, id);
    assert.equal(afterKills.status, "running", "the kills left it unfinished");
    assert.ok(afterKills.records_count > 0, "the killed workers stored pages");

    // Now let it finish by itself: continue_backfills() (as pg_cron would) triggers the served
    // function, whose 1 s budget makes it continue itself through pg_net.
    await w.db.sql`drop trigger slow_page on tether.backfill_records`;
    // 50 ms a page keeps the pages left (at least 50 of 80) well over the 1 s budget.
    await w.sandbox.call("POST", "/latency", { ms: 50 });
    const served = await serveFunctionsFor(w.db, ["backfill"], {
      env: { TETHER_TIME_BUDGET_MS: "1000" },
    });
    try {
      await storeVaultSecrets(w.db.sql, served);
      const [picked] = await w.db.sql<{ n: number }[]>`select public.continue_backfills() as n`;
      assert.equal(picked!.n, 1);
      await eventually("the backfill to succeed", async () => {
        const row = await jobRow(w, id);
        return row.status === "succeeded" ? true : undefined;
      }, 90_000);
    } finally {
      await served.stop();
    }

    const expected = inRange(await truth(w.sandbox, conn, "orders"), r.start, r.end);
    assert.ok(expected.length > 10_000, `most orders are in the range (${expected.length})`);
    assertSame(await stored(w.db.sql, conn, "orders"), expected, "after ten kills");
    const done = await jobRow(w, id);
    assert.equal(done.records_count, expected.length, "records_count");
    assert.equal(await linkedCount(w, id), expected.length, "backfill_records");
    assert.equal(done.covered_until?.getTime(), r.end.getTime());
    const runs = await w.db.sql<{ status: string; outcome: string | null; error: string | null }[]>`
      select status, details->>'outcome' as outcome, error from tether.runs
       where backfill_id = ${id} order by id`;
    assert.equal(runs.filter((x) => /interrupted/.test(x.error ?? "")).length, 10);
    assert.ok(
      runs.filter((x) => x.outcome === "continued").length >= 1,
      `it continued itself at least once: ${JSON.stringify(runs.slice(10))}`,
    );
    assert.equal(runs.at(-1)!.outcome, "done");
    const [health] = await w.db.sql<{ backfill_id: string | null }[]>`
      select backfill_id from tether.connection_health where id = ${conn.id}`;
    assert.equal(health!.backfill_id, null, "no backfill in progress any more");
  });
});

Deno.test("a backfill racing scheduled syncs and out-of-order webhook writes ends at the provider's latest", async () => {
  await withWorld(async (w) => {
    const conn = await seededConnection(w, "shopify", { orders: 3_000, spread_days: 3 });
    const sync = () => runSync(w.deps, "orders", { connection_id: conn.id, force: true });
    assert.equal((await sync()).runs[0]!.status, "succeeded");
    // What webhooks delivered earlier, replayed late and out of order below.
    await w.db.sql`create table public.stale as select * from tether.orders`;
    await w.sandbox.call("POST", "/latency", { ms: 20 });
    const r = range(3.5, 0);
    const id = await createJob(w, conn, r);
    const job = runBackfill(w.deps, { backfill_id: id }, { pageSize: 50 });
    let done = false;
    job.finally(() => done = true).catch(() => {});
    let rounds = 0;
    while (!done || rounds < 3) {
      rounds++;
      await w.sandbox.call("POST", `/data/shopify/${conn.externalId}/mutate`, { changes: 80 });
      const [res] = await Promise.all([
        sync(),
        w.db.sql`select tether.upsert_orders(${conn.id}, (
                   select jsonb_agg(to_jsonb(s)) from (
                     select * from public.stale order by random() limit 300) s))`,
      ]);
      assert.equal(res.runs[0]?.status ?? "succeeded", "succeeded");
    }
    const result = await job;
    assert.equal(result.status, "succeeded", result.error);
    // The changes made after the backfill's range reach Tether by the next scheduled sync.
    assert.equal((await sync()).runs[0]!.status, "succeeded");
    assertSame(
      await stored(w.db.sql, conn, "orders"),
      await truth(w.sandbox, conn, "orders"),
      "after the race",
    );
  });
});

Deno.test("cancel_backfill stops the job at its next page and leaves everything written intact", async () => {
  await withWorld(async (w) => {
    const conn = await seededConnection(w, "shopify", { orders: 3_000, spread_days: 3 });
    await w.sandbox.call("POST", "/latency", { ms: 100 });
    const id = await createJob(w, conn, range(3.5, 0));
    const job = runBackfill(w.deps, { backfill_id: id }, { pageSize: 50 });
    await eventually("a few pages", async () => {
      const row = await jobRow(w, id);
      return row.records_count >= 150 ? true : undefined;
    }, 30_000);
    const [cancel] = await w.db.sql<{ s: string }[]>`select public.cancel_backfill(${id}) as s`;
    assert.equal(cancel!.s, "cancelled");
    const pagesAtCancel = Math.ceil((await linkedCount(w, id)) / 50);
    const result = await job;
    assert.equal(result.status, "cancelled");
    assert.ok(result.pages <= pagesAtCancel + 1, `stopped at the next page (${result.pages})`);
    const kept = await stored(w.db.sql, conn, "orders");
    assert.ok(kept.length > 0 && kept.length < 3_000, `kept ${kept.length}`);
    assert.equal(await linkedCount(w, id), kept.length, "what it wrote is all listed");
    const row = await jobRow(w, id);
    assert.equal(row.status, "cancelled");
    assert.equal(row.records_count, kept.length);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(
      (await stored(w.db.sql, conn, "orders")).length,
      kept.length,
      "nothing written after",
    );
    // A cancelled job is not picked up again.
    const again = await runBackfill(w.deps, { backfill_id: id });
    assert.equal(again.claimed, false);
    const [repeat] = await w.db.sql<{ s: string }[]>`select public.cancel_backfill(${id}) as s`;
    assert.equal(repeat!.s, "cancelled");
  });
});

Deno.test("Postgres going away mid-backfill: the invocation fails readably, the next resumes from the checkpoint", async () => {
  await withWorld(async (w) => {
    const conn = await seededConnection(w, "shopify", { orders: 2_000, spread_days: 3 });
    const r = range(3.5, 0);
    const id = await createJob(w, conn, r);
    await withDatabaseOutage(w.db, w.deps, { urlPart: "/graphql", atRequest: 6 }, async (
      deps,
      outageOver,
    ) => {
      const first = await runBackfill(deps, { backfill_id: id }, { pageSize: 100 });
      await outageOver();
      assert.match(first.error ?? "", /^database: /);
      assert.ok(first.pages >= 3, `pages stored before the outage: ${first.pages}`);
      const mid = await jobRow(w, id);
      assert.equal(mid.status, "running");
      assert.match(mid.last_error ?? "", /^database: /);
      assert.ok(mid.checkpoint.window_start, "a checkpoint is kept");
      const keptBefore = (await stored(w.db.sql, conn, "orders")).length;
      assert.equal(await linkedCount(w, id), keptBefore);

      const second = await runBackfill(w.deps, { backfill_id: id }, { pageSize: 100 });
      assert.equal(second.status, "succeeded", second.error);
      assert.ok(second.added > 0 && second.added <= 2_000 - keptBefore + 100);
      assert.ok(second.added + keptBefore >= 2_000 - 100);
      const expected = inRange(await truth(w.sandbox, conn, "orders"), r.start, r.end);
      assertSame(await stored(w.db.sql, conn, "orders"), expected, "after resuming");
      assert.equal(await linkedCount(w, id), expected.length);
      const runs = await w.db.sql<{ status: string }[]>`
        select status from tether.runs where backfill_id = ${id} order by id`;
      assert.deepEqual(runs.map((x) => x.status), ["failed", "succeeded"]);
    });
  });
});

Deno.test("bad backfill requests are refused in plain words, by SQL and by the function, and create nothing", async () => {
  await withWorld(async (w) => {
    const shop = await seededConnection(w, "shopify", { orders: 10 });
    const shiphero = await seededConnection(w, "shiphero", { orders: 10 });
    const { start, end } = range(3, 1);
    const running = await createJob(w, shop, { start, end });
    const future = new Date(Date.now() + 86_400_000);
    const cases: {
      name: string;
      args: [string, string, Date, Date];
      sql: RegExp;
      status: number;
    }[] = [
      {
        name: "unknown connection",
        args: ["00000000-0000-4000-8000-000000000000", "orders", start, end],
        sql: /unknown connection/,
        status: 404,
      },
      {
        name: "a stream the provider does not have",
        args: [shiphero.id, "customers", start, end],
        sql: /shiphero has no customers stream/,
        status: 400,
      },
      {
        name: "range_start >= range_end",
        args: [shop.id, "customers", end, start],
        sql: /range_start .* must be before range_end/,
        status: 400,
      },
      {
        name: "a range that ends in the future",
        args: [shop.id, "customers", start, future],
        sql: /is in the future/,
        status: 400,
      },
      {
        name: "overlapping a running backfill",
        args: [shop.id, "orders", new Date(start.getTime() + 3_600_000), end],
        sql: new RegExp(`backfill ${running} .* overlaps`),
        status: 409,
      },
    ];
    const count = async () => {
      const [row] = await w.db.sql<
        { n: number }[]
      >`select count(*)::int as n from tether.backfills`;
      return row!.n;
    };
    const secrets = await localSecrets();
    const handler = createJobHandler(backfill, w.deps);
    const post = async (body: unknown) => {
      const res = await handler(
        new Request("http://local/backfill", {
          method: "POST",
          headers: { apikey: secrets.secretKey, "content-type": "application/json" },
          body: JSON.stringify(body),
        }),
      );
      return { status: res.status, body: await res.json() as { message: string } };
    };
    for (const c of cases) {
      await assert.rejects(
        w.db.sql`select public.start_backfill(${c.args[0]}, ${c.args[1]}, ${c.args[2]},
                                              ${c.args[3]})`,
        (err: Error & { hint?: string }) => {
          assert.match(err.message, c.sql, c.name);
          assert.ok(err.hint, `${c.name}: a hint`);
          return true;
        },
      );
      const res = await post({
        connection_id: c.args[0],
        stream: c.args[1],
        range_start: c.args[2].toISOString(),
        range_end: c.args[3].toISOString(),
      });
      assert.equal(res.status, c.status, `${c.name}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.message, c.sql, c.name);
      assert.equal(await count(), 1, `${c.name}: nothing created`);
    }
    for (
      const [field, value] of [
        ["range_start", "2026-01-29"],
        ["range_end", "2026-01-31T23:59:59"],
      ] as const
    ) {
      const res = await post({
        connection_id: shop.id,
        stream: "orders",
        range_start: "2026-01-29T00:00:00Z",
        range_end: "2026-01-31T23:59:59Z",
        [field]: value,
      });
      assert.equal(res.status, 400);
      assert.match(res.body.message, new RegExp(`${field}.*ISO 8601 .* like 2026-01-29T00:00:00Z`));
    }
    const bad = await post({ backfill_id: "not-a-uuid" });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /backfill_id/);
    const unknown = await post({ backfill_id: "00000000-0000-4000-8000-000000000000" });
    assert.equal(unknown.status, 404);
    assert.equal(await count(), 1);
    await assert.rejects(
      w.db.sql`select public.cancel_backfill('00000000-0000-4000-8000-000000000000')`,
      /unknown backfill/,
    );
  });
});
