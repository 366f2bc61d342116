// Many connections on one project: a sync invocation stops once its streams' estimated CPU reaches
// the budget, a sync_orders() call starts as many invocations as its due streams need (a few at
// most), the schedule replay of the scale bench reads cron expressions as pg_cron does, and the
// scale bench runs at a tiny size and writes every key issue #16 names.
import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import { runSync, SyncInput } from "../functions-shared/jobs/sync.ts";
import { cronFires } from "../scripts/bench/cron.ts";
import { benchScale } from "../scripts/bench/scale.ts";
import {
  createTestDatabase,
  storeVaultSecrets,
  testDeps,
  withTestDatabase,
} from "./helpers/stack.ts";
import { SandboxControl } from "./helpers/sandbox.ts";
import { connectSeeded } from "./helpers/records.ts";

Deno.test("where the runtime cannot measure CPU, a sync stops taking streams once their estimated CPU reaches the budget, and the next continues", async () => {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  try {
    const sandbox = new SandboxControl(running.url);
    const deps = await testDeps(db);
    for (let i = 0; i < 5; i++) await connectSeeded(deps, sandbox, "maystro", { orders: 3 });
    // The tests' clock has no cpuMs(), as the Edge Runtime's Deno cannot tell: 40 ms a stream's
    // run against 100 ms stops an invocation after its third stream.
    assert.equal(deps.clock.cpuMs, undefined);
    const env = { ...deps.env, cpuBudgetMs: 100, cpuMsPerSyncRun: 40 };
    const once = async () =>
      (await runSync({ ...deps, env }, "orders", SyncInput.parse({}), { concurrency: 1 })).runs
        .length;
    assert.deepEqual([await once(), await once(), await once()], [3, 2, 0]);
  } finally {
    await running.close();
    await db.drop();
  }
});

Deno.test("the per-invocation count the SQL fan-out uses is the CPU budget over the per-stream estimate", async () => {
  await withTestDatabase(async (db) => {
    // The functions' own configuration, with no budget set: the defaults.
    const { env } = await testDeps(db);
    const [row] = await db.sql<{ n: number }[]>`select tether.sync_streams_per_invocation() as n`;
    assert.equal(row!.n, Math.floor(env.cpuBudgetMs / env.cpuMsPerSyncRun));
  });
});

Deno.test("sync_orders() asks pg_net for one invocation per 125 due streams, at least one and at most 8", async () => {
  await withTestDatabase(async (db) => {
    await storeVaultSecrets(db.sql, {
      functionsUrl: "http://127.0.0.1:9",
      invokeKey: "k".repeat(40),
    });
    const queued = async (call: () => Promise<unknown>) => {
      await db.sql`delete from net.http_request_queue`;
      await call();
      const [row] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from net.http_request_queue where url like '%/sync-orders'`;
      return row!.n;
    };
    const addConnections = (n: number, provider: string) =>
      db.sql`
        insert into tether.connections (provider, external_id, name)
        select ${provider}, ${provider} || '-' || g || '-' || gen_random_uuid(), 'c' || g
          from generate_series(1, ${n}) g`;
    const syncOrders = () => db.sql`select public.sync_orders()`;

    assert.equal(await queued(syncOrders), 1); // nothing due: still one call, as before
    await addConnections(251, "maystro");
    assert.equal(await queued(syncOrders), 3);
    // Synced within their interval: not due.
    await db.sql`
      insert into tether.sync_cursors (connection_id, stream, last_synced_at)
      select id, 'orders', now() from tether.connections`;
    assert.equal(await queued(syncOrders), 1);
    await addConnections(2_000, "shopify");
    assert.equal(await queued(syncOrders), 8);
    // One provider's: ShipHero has none due.
    assert.equal(await queued(() => db.sql`select public.sync_orders('shiphero')`), 1);
  });
});

Deno.test("the schedule replay reads cron expressions as pg_cron does (GMT)", () => {
  const at = (iso: string) => new Date(iso);
  assert.equal(cronFires("* * * * *", at("2026-12-07T04:07:00Z")), true);
  assert.equal(cronFires("*/5 * * * *", at("2026-12-07T04:05:00Z")), true);
  assert.equal(cronFires("*/5 * * * *", at("2026-12-07T04:07:00Z")), false);
  assert.equal(cronFires("2-59/5 * * * *", at("2026-12-07T04:07:00Z")), true);
  assert.equal(cronFires("2-59/5 * * * *", at("2026-12-07T04:05:00Z")), false);
  assert.equal(cronFires("17 3 * * *", at("2026-12-07T03:17:00Z")), true);
  assert.equal(cronFires("17 3 * * *", at("2026-12-07T04:17:00Z")), false);
  assert.equal(cronFires("0 0 * * 7", at("2026-12-06T00:00:00Z")), true); // a Sunday
});

Deno.test("the scale bench runs at a tiny size and writes every key of issue #16", async () => {
  const lines: string[] = [];
  const result = await benchScale((line) => lines.push(line), {
    connections: 5,
    minutes: 1,
    tickSeconds: 3,
    latencyMs: 0,
    changesPerHour: 60,
  });
  for (
    const key of [
      "connections",
      "refresh_on_time_pct",
      "sync_on_time_pct",
      "max_lag_s",
      "pg_net_requests_per_tick",
      "peak_db_connections",
      "max_cpu_ms_per_invocation",
      "failed_invocations",
    ]
  ) {
    assert.equal(typeof result[key], "number", `${key}: ${JSON.stringify(result[key])}`);
  }
  assert.equal(result.connections, 5);
  // Every minute each schedule that fires asks pg_net for something: the replay ran them.
  assert.ok(result.pg_net_requests_per_tick >= 1, lines.join("\n"));
  assert.equal(result.failed_invocations, 0, lines.join("\n"));
});
