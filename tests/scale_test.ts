// Many connections on one project: a sync invocation stops once its streams' estimated CPU reaches
// the budget, a sync_orders() call sends one pg_net request asking for as many invocations as its
// due streams need (a few at most) and the first starts the others, the schedule replay of the scale bench reads cron expressions as pg_cron does, and the
// scale bench runs at a tiny size and writes every key issue #16 names.
import assert from "node:assert/strict";
import { startSandbox } from "../sandbox/server.ts";
import {
  runSync,
  SYNC_INVOCATIONS_MAX,
  SyncInput,
  type SyncResult,
} from "../functions-shared/jobs/sync.ts";
import { CHAIN_CALLS_PER_MINUTE, functionInvoker } from "../functions-shared/invoke.ts";
import { cronFires } from "../scripts/bench/cron.ts";
import { benchScale } from "../scripts/bench/scale.ts";
import {
  createTestDatabase,
  eventually,
  invocationOf,
  localSecrets,
  serveFunctionsFor,
  storeVaultSecrets,
  type TestDatabase,
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

Deno.test("sync_orders() sends one pg_net request asking for one invocation per 125 due streams, at least one and at most 8", async () => {
  await withTestDatabase(async (db) => {
    await storeVaultSecrets(db.sql, {
      functionsUrl: "http://127.0.0.1:9",
      invokeKey: "k".repeat(40),
    });
    /** The bodies of the requests a call queued. */
    const queued = async (call: () => Promise<unknown>) => {
      await db.sql`delete from net.http_request_queue`;
      await call();
      return (await db.sql<{ url: string; body: Record<string, unknown> }[]>`
        select url, convert_from(body, 'UTF8')::jsonb as body from net.http_request_queue`)
        .map((r) => ({ to: r.url.replace(/^.*\//, ""), ...r.body }));
    };
    const addConnections = (n: number, provider: string) =>
      db.sql`
        insert into tether.connections (provider, external_id, name)
        select ${provider}, ${provider} || '-' || g || '-' || gen_random_uuid(), 'c' || g
          from generate_series(1, ${n}) g`;
    const syncOrders = () => db.sql`select public.sync_orders()`;
    const asking = (invocations: number, provider?: string) => [
      { to: "sync-orders", invocations, ...(provider && { provider }) },
    ];

    assert.deepEqual(await queued(syncOrders), asking(1)); // nothing due: still one call
    await addConnections(251, "maystro");
    assert.deepEqual(await queued(syncOrders), asking(3));
    // Synced within their interval: not due.
    await db.sql`
      insert into tether.sync_cursors (connection_id, stream, last_synced_at)
      select id, 'orders', now() from tether.connections`;
    assert.deepEqual(await queued(syncOrders), asking(1));
    await addConnections(2_000, "shopify");
    assert.deepEqual(await queued(syncOrders), asking(8));
    // One provider's: ShipHero has none due.
    assert.deepEqual(
      await queued(() => db.sql`select public.sync_orders('shiphero')`),
      asking(1, "shiphero"),
    );
  });
});

Deno.test("the invocations one call asks for stay within what the sync functions accept", async () => {
  await withTestDatabase(async (db) => {
    const [row] = await db.sql<{ n: number }[]>`select tether.sync_invocations_per_call() as n`;
    assert.ok(row!.n >= 1 && row!.n <= SYNC_INVOCATIONS_MAX, `${row!.n}`);
    assert.equal(SyncInput.safeParse({ invocations: SYNC_INVOCATIONS_MAX }).success, true);
    assert.equal(SyncInput.safeParse({ invocations: SYNC_INVOCATIONS_MAX + 1 }).success, false);
    assert.equal(SyncInput.safeParse({ invocations: 0 }).success, false);
  });
});

Deno.test("the siblings one call may start stay far within Supabase's function-to-function budget per request chain", () => {
  // Each tick's call is a chain of its own (pg_net starts it); its siblings start no one.
  assert.ok(SYNC_INVOCATIONS_MAX - 1 <= CHAIN_CALLS_PER_MINUTE / 100);
});

/** Makes one sync invocation count on `n` streams in this database (the fan-out's divisor). */
async function streamsPerInvocation(db: TestDatabase, n: number): Promise<void> {
  await db.sql.unsafe(`
    create or replace function tether.sync_streams_per_invocation() returns integer
    language sql immutable set search_path = '' as $$ select ${n} $$`);
}

Deno.test("through pg_net: one request, its invocation starts the others through the gateway, every due stream is synced once, and siblings do not fan out", async () => {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  const served = await serveFunctionsFor(db, ["sync-orders"]);
  try {
    const sandbox = new SandboxControl(running.url);
    const deps = await testDeps(db);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push((await connectSeeded(deps, sandbox, "maystro", { orders: 3 })).id);
    }
    await streamsPerInvocation(db, 2); // 6 due streams: 3 invocations
    await storeVaultSecrets(db.sql, served);

    const [{ id }] = await db.sql<[{ id: string }]>`select public.sync_orders()::text as id`;
    const first = await invocationOf<SyncResult>(db.sql, id);
    assert.equal(first.status, "succeeded", first.error ?? "");
    assert.equal(first.result.siblings?.asked, 2);
    assert.deepEqual(first.result.siblings?.failed, []);
    const siblings = first.result.siblings!.started;
    assert.equal(siblings.length, 2);

    const ended = await eventually("the siblings to end", async () => {
      const rows = await db.sql<{ id: string; status: string; result: SyncResult }[]>`
        select id, status, result from tether.invocations
         where id = any(${siblings}::uuid[]) and status <> 'running'`;
      return rows.length === siblings.length ? rows : undefined;
    }, 60_000);
    for (const sibling of ended) {
      assert.equal(sibling.status, "succeeded");
      assert.equal(sibling.result.siblings, undefined, "a sibling starts no one");
    }
    // pg_net carried one request; tether.invocations holds the three it stood for.
    const [counts] = await db.sql<[{ requests: number; invocations: number }]>`
      select (select count(*) from net._http_response)::int
               + (select count(*) from net.http_request_queue)::int as requests,
             (select count(*) from tether.invocations where function_name = 'sync-orders')::int
               as invocations`;
    assert.deepEqual({ ...counts }, { requests: 1, invocations: 3 });
    // Each due stream synced once, by whichever invocation claimed it.
    const runs = await db.sql<{ connection_id: string; status: string }[]>`
      select connection_id, status from tether.runs where kind = 'sync' and stream = 'orders'`;
    assert.deepEqual(runs.map((r) => r.connection_id).sort(), [...ids].sort());
    assert.ok(runs.every((r) => r.status === "succeeded"), JSON.stringify(runs));
    const byInvocation = [first.result, ...ended.map((e) => e.result)].map((r) => r.runs.length);
    assert.equal(byInvocation.reduce((a, b) => a + b), 6, `${byInvocation}`);
    const [due] = await db.sql<[{ n: number }]>`select tether.due_streams('orders')::int as n`;
    assert.equal(due.n, 0);
  } finally {
    await served.stop();
    await running.close();
    await db.drop();
  }
});

Deno.test("a call with the invoke key may ask for no more invocations than the bound", async () => {
  const db = await createTestDatabase();
  const served = await serveFunctionsFor(db, ["sync-orders"]);
  try {
    const res = await fetch(`${served.functionsUrl}/sync-orders`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-tether-invoke-key": served.invokeKey },
      body: JSON.stringify({ invocations: SYNC_INVOCATIONS_MAX + 1 }),
    });
    const body = await res.json();
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(body.message, /invocations/);
    assert.equal((await db.sql`select 1 from tether.invocations`).length, 0, "nothing started");

    // A start the function refuses says how, and not with what key.
    const deps = await testDeps(db);
    const wrongKey = `${served.invokeKey.slice(0, -1)}${
      served.invokeKey.endsWith("A") ? "B" : "A"
    }`;
    const refused = functionInvoker(
      {
        functionsUrl: served.functionsUrl,
        auth: { ...deps.env.auth, invokeKey: wrongKey },
      },
      globalThis.fetch,
    );
    await assert.rejects(refused.start("sync-orders", {}), (err: Error) => {
      assert.equal(err.message, "sync-orders answered 401 unauthorized");
      return true;
    });
  } finally {
    await served.stop();
    await db.drop();
  }
});

Deno.test("a sibling that does not start leaves its streams due, and the result and the log say so", async () => {
  const db = await createTestDatabase();
  const running = await startSandbox({ port: 0 });
  try {
    const sandbox = new SandboxControl(running.url);
    const deps = await testDeps(db);
    // The invoker a function builds, pointed where nothing listens: every start fails.
    deps.functions = functionInvoker(
      { ...deps.env, functionsUrl: "http://127.0.0.1:1/functions/v1" },
      globalThis.fetch,
    );
    for (let i = 0; i < 6; i++) await connectSeeded(deps, sandbox, "maystro", { orders: 3 });
    // The tests' clock has no cpuMs(): 50 ms a stream's run against 100 ms is 2 streams a call.
    const env = { ...deps.env, cpuBudgetMs: 100, cpuMsPerSyncRun: 50 };
    const result = await runSync({ ...deps, env }, "orders", SyncInput.parse({ invocations: 3 }), {
      concurrency: 1,
    });
    assert.equal(result.runs.length, 2, "its own share only");
    assert.equal(result.siblings?.asked, 2);
    assert.deepEqual(result.siblings?.started, []);
    assert.equal(result.siblings?.failed.length, 2);
    assert.match(result.siblings!.failed[0]!, /^sync-orders: TypeError/);
    const warned = deps.logLines.find((l) => /siblings did not start/.test(l));
    assert.ok(warned, deps.logLines.join("\n"));
    assert.match(warned, /"failed":2/);
    const secrets = await localSecrets();
    assert.equal(JSON.stringify(result).includes(secrets.invokeKey), false);
    assert.equal(deps.logLines.join("").includes(secrets.invokeKey), false);
    // The other four stay due: the next tick's call takes them.
    const [due] = await db.sql<[{ n: number }]>`select tether.due_streams('orders')::int as n`;
    assert.equal(due.n, 4);
  } finally {
    await running.close();
    await db.drop();
  }
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
