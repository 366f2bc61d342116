// npm run bench [-- <case>…]: benchmarks against the local stack, each in its own database.
// Prints a table and writes bench/results.json (an array, one object per case; a run of some
// cases keeps the others' last results).
//
// refresh: 2,000 due connections across the four providers with a token endpoint, served by an
// in-process provider sandbox that answers every call after 100 ms. Several refresh-tokens
// invocations run at once, as when pg_cron and a person in the SQL editor both call
// refresh_tokens(), each with its own connection pool like a separate function instance, until
// nothing is due. The sandbox counts the token-endpoint calls: exactly one per connection.
//
// sync: 50,000 Shopify orders, no added latency and a rate budget too large to matter, synced
// through the served sync-orders function (its own process: its peak RSS and CPU time are read
// from /proc), called until it has caught up. Compared with the database's own limit (a bare
// batched INSERT … ON CONFLICT of the same rows from Deno, 250 a statement) and with what
// hand-built syncs do (one upsert statement per record).
//
// backfill: 100,000 Shopify orders over a 90-day range, re-read by the served backfill function
// from one start_backfill() call until it succeeds by itself: wall time, invocations, records per
// second and the function's peak RSS (which must stay flat, under 256 MB, whatever the range).
//
// webhooks: 2,000 signed Shopify `orders/updated` deliveries (several versions of 500 orders, 15 %
// of them repeated with the same webhook id), shuffled, sent 16 at a time to the served webhooks
// function: sustained verified deliveries per second, p50/p99 latency per delivery, and how many
// events were processed more than once (must be 0).
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startSandbox } from "../sandbox/server.ts";
import { connect } from "../functions-shared/db/client.ts";
import { writeCredentials } from "../functions-shared/db/credentials.ts";
import {
  RefreshTokensInput,
  type RefreshTokensResult,
  runRefreshTokens,
} from "../functions-shared/jobs/refresh_tokens.ts";
import type { SyncResult } from "../functions-shared/jobs/sync.ts";
import { runConnect } from "../functions-shared/jobs/connect.ts";
import {
  createTestDatabase,
  serveFunctionsFor,
  type TestDatabase,
  testDeps,
} from "../tests/helpers/stack.ts";
import { SandboxControl } from "../tests/helpers/sandbox.ts";
import { withStack } from "./local/stack.ts";

const ROOT = join(import.meta.dirname ?? ".", "..");
const RESULTS = join(ROOT, "bench", "results.json");

interface CaseResult {
  case: string;
  [figure: string]: unknown;
}

interface RefreshBench extends CaseResult {
  case: "refresh";
  connections: number;
  wall_s: number;
  refreshes_per_s: number;
  provider_calls_per_connection: number;
}

const REFRESH = {
  connections: 2_000,
  latencyMs: 100,
  /** Function invocations running at once. */
  invocations: 4,
  /** Workers per invocation (the job's default). */
  concurrency: 10,
  providers: ["shiphero", "shopify", "lightspeed", "quickbooks"] as const,
};

/** Runs `fn` over `items`, `width` at a time. */
async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: width }, lane));
}

async function benchRefresh(log: (line: string) => void): Promise<RefreshBench> {
  const db = await createTestDatabase();
  const server = await startSandbox({ port: 0 });
  const sandbox = new SandboxControl(server.url);
  const pools: ReturnType<typeof connect>[] = [];
  try {
    await sandbox.call("POST", "/latency", { ms: REFRESH.latencyMs });
    const deps = await testDeps(db);

    log(`creating ${REFRESH.connections} sandbox accounts and due connections…`);
    const indexes = Array.from({ length: REFRESH.connections }, (_, i) => i);
    const dueAt = new Date(Date.now() - 60_000);
    await inParallel(chunk(indexes, 100), 4, async (part) => {
      const rows: { provider: string; external_id: string; name: string; config: object }[] = [];
      const credentials: Record<string, string>[] = [];
      for (const i of part) {
        const provider = REFRESH.providers[i % REFRESH.providers.length]!;
        const account = await sandbox.account(
          provider,
          provider === "shopify" ? "expiring" : undefined,
        );
        rows.push({
          provider,
          external_id: account.external_id,
          name: `bench ${provider} ${i}`,
          config: sandbox.configFor(account),
        });
        credentials.push(account.credentials);
      }
      await db.sql.begin(async (tx) => {
        const inserted = await tx<{ id: string; external_id: string; provider: string }[]>`
          insert into tether.connections (provider, external_id, name, config, token_expires_at)
          select r.provider, r.external_id, r.name, r.config, ${dueAt}
            from jsonb_to_recordset(${tx.json(rows as never)})
              as r(provider text, external_id text, name text, config jsonb)
          returning id, external_id, provider`;
        const ids = new Map(inserted.map((r) => [`${r.provider}/${r.external_id}`, r.id]));
        for (const [k, row] of rows.entries()) {
          const id = ids.get(`${row.provider}/${row.external_id}`)!;
          await writeCredentials(tx, deps.vault, id, credentials[k]!);
        }
      });
    });
    await sandbox.call("DELETE", "/stats");

    log(
      `refreshing: ${REFRESH.invocations} invocations × ${REFRESH.concurrency} workers, ` +
        `${REFRESH.latencyMs} ms per provider call…`,
    );
    const input = RefreshTokensInput.parse({});
    const totals = { refreshed: 0, failed: 0, reauth_required: 0, skipped: 0 };
    const started = performance.now();
    let rounds = 0;
    while (await neverRefreshed(db.sql) > 0) {
      if (++rounds > 10) throw new Error("connections are still due after 10 rounds");
      const results: RefreshTokensResult[] = await Promise.all(
        Array.from({ length: REFRESH.invocations }, () => {
          // Each invocation is its own function instance with its own pool (max 5, as deployed).
          const pool = connect(db.url, { name: "tether-refresh-tokens" });
          pools.push(pool);
          return runRefreshTokens({ ...deps, db: pool }, input, {
            concurrency: REFRESH.concurrency,
          });
        }),
      );
      for (const r of results) {
        totals.refreshed += r.refreshed;
        totals.failed += r.failed;
        totals.reauth_required += r.reauth_required;
        totals.skipped += r.skipped;
      }
    }
    const wallS = (performance.now() - started) / 1000;

    const stats = await sandbox.stats();
    const [state] = await db.sql<{ active: number; total: number }[]>`
      select count(*) filter (where status = 'active')::int as active, count(*)::int as total
        from tether.connections`;
    const problems: string[] = [];
    if (totals.refreshed !== REFRESH.connections) {
      problems.push(`refreshed ${totals.refreshed} of ${REFRESH.connections}`);
    }
    if (totals.failed + totals.reauth_required + totals.skipped > 0) {
      problems.push(`outcomes ${JSON.stringify(totals)}`);
    }
    if (state!.active !== state!.total) problems.push(`${state!.active}/${state!.total} active`);
    if (stats.refresh_calls !== REFRESH.connections || stats.unknown_token_refresh_calls !== 0) {
      problems.push(
        `sandbox saw ${stats.refresh_calls} refresh calls (+${stats.unknown_token_refresh_calls} unknown tokens)`,
      );
    }
    if (problems.length > 0) throw new Error(`refresh bench is wrong: ${problems.join("; ")}`);

    return {
      case: "refresh",
      connections: REFRESH.connections,
      wall_s: round(wallS, 2),
      refreshes_per_s: round(totals.refreshed / wallS, 1),
      provider_calls_per_connection: round(stats.refresh_calls / REFRESH.connections, 2),
    };
  } finally {
    await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
    await server.close();
    await db.drop();
  }
}

/**
 * A Shopify sandbox account with `orders` seeded orders, registered through connect, under a rate
 * budget too large to matter: the provider's limits are not what these cases measure.
 */
async function connectedShop(
  db: TestDatabase,
  sandbox: SandboxControl,
  o: { seed: number; orders: number; spreadDays: number },
) {
  await sandbox.call("POST", "/config", {
    limits: { shopify: { capacity: 1e9, restore_per_second: 1e9 } },
  });
  const account = await sandbox.account("shopify");
  await sandbox.call("POST", `/data/shopify/${account.external_id}/seed`, {
    seed: o.seed,
    orders: o.orders,
    customers: 0,
    spread_days: o.spreadDays,
  });
  const { connection_id } = await runConnect(await testDeps(db), {
    provider: "shopify",
    external_id: account.external_id,
    name: "bench shop",
    credentials: account.credentials,
    config: sandbox.configFor(account),
  });
  return { account, connection_id };
}

interface SyncBench extends CaseResult {
  case: "sync";
  records: number;
  records_matching_truth: number;
  wall_s: number;
  invocations: number;
  records_per_s: number;
  bare_upsert_records_per_s: number;
  per_record_upsert_records_per_s: number;
  cpu_ms_per_page: number;
  peak_rss_mb: number;
}

const SYNC = { orders: 50_000, pageSize: 250, perRecordSample: 5_000 };

async function benchSync(log: (line: string) => void): Promise<SyncBench> {
  const db = await createTestDatabase();
  const server = await startSandbox({ port: 0 });
  const sandbox = new SandboxControl(server.url);
  let served: Awaited<ReturnType<typeof serveFunctionsFor>> | undefined;
  try {
    log(`seeding ${SYNC.orders} orders in the sandbox…`);
    const { connection_id, account } = await connectedShop(db, sandbox, {
      seed: 42,
      orders: SYNC.orders,
      spreadDays: 365,
    });
    served = await serveFunctionsFor(db, ["sync-orders"]);
    const pid = served.pids["sync-orders"]!;
    const secretKey = served.secretKey;
    const cpuBefore = await cpuMs(pid);

    log("syncing through the sync-orders function…");
    const started = performance.now();
    let invocations = 0;
    let pages = 0;
    while (true) {
      invocations++;
      const res = await fetch(`${served.functionsUrl}/sync-orders`, {
        method: "POST",
        headers: { apikey: secretKey, "content-type": "application/json" },
        body: JSON.stringify({ connection_id, force: true }),
      });
      const body = await res.json() as SyncResult;
      const run = body.runs[0];
      if (!res.ok || !run || run.status !== "succeeded") {
        throw new Error(`sync-orders failed: ${JSON.stringify(body)}`);
      }
      pages += run.pages;
      if (run.caught_up) break;
      if (invocations > 20) throw new Error("sync-orders has not caught up after 20 invocations");
    }
    const wallS = (performance.now() - started) / 1000;
    const cpu = (await cpuMs(pid)) - cpuBefore;
    const rssMb = await peakRssMb(pid);
    const records = await matchingTruth(db, sandbox, account.external_id, connection_id);
    if (records.stored !== SYNC.orders || records.matching !== SYNC.orders) {
      throw new Error(`sync bench is wrong: ${JSON.stringify(records)} of ${SYNC.orders}`);
    }

    log("bare batched upsert of the same rows…");
    const bare = await upsertRate(db, connection_id, "batched");
    log(`one upsert per record (${SYNC.perRecordSample} records)…`);
    const perRecord = await upsertRate(db, connection_id, "per-record");
    return {
      case: "sync",
      records: records.stored,
      records_matching_truth: records.matching,
      wall_s: round(wallS, 2),
      invocations,
      records_per_s: round(SYNC.orders / wallS, 0),
      bare_upsert_records_per_s: round(bare, 0),
      per_record_upsert_records_per_s: round(perRecord, 0),
      cpu_ms_per_page: round(cpu / pages, 2),
      peak_rss_mb: round(rssMb, 1),
    };
  } finally {
    await served?.stop();
    await server.close();
    await db.drop();
  }
}

interface BackfillBench extends CaseResult {
  case: "backfill";
  records: number;
  records_matching_truth: number;
  wall_s: number;
  invocations: number;
  records_per_s: number;
  peak_rss_mb: number;
}

const BACKFILL = { orders: 100_000, rangeDays: 90, budgetMs: 3_000 };

/**
 * backfill: 100,000 Shopify orders updated over 90 days, backfilled over the whole 90-day range by
 * the served backfill function (its own process, with a 3 s time budget so it continues itself
 * through pg_net several times, as a deployed one would over a larger range). Started with
 * start_backfill() in SQL; invocations are counted from the run records.
 */
async function benchBackfill(log: (line: string) => void): Promise<BackfillBench> {
  const db = await createTestDatabase();
  const server = await startSandbox({ port: 0 });
  const sandbox = new SandboxControl(server.url);
  let served: Awaited<ReturnType<typeof serveFunctionsFor>> | undefined;
  try {
    log(`seeding ${BACKFILL.orders} orders over ${BACKFILL.rangeDays} days in the sandbox…`);
    const { connection_id, account } = await connectedShop(db, sandbox, {
      seed: 43,
      orders: BACKFILL.orders,
      spreadDays: BACKFILL.rangeDays - 1,
    });
    served = await serveFunctionsFor(db, ["backfill"], {
      env: { TETHER_TIME_BUDGET_MS: String(BACKFILL.budgetMs) },
    });
    const pid = served.pids["backfill"]!;
    await db.sql`select vault.create_secret(${served.functionsUrl}, 'tether_functions_url')`;
    await db.sql`select vault.create_secret(${served.secretKey}, 'tether_service_key')`;

    log(`backfilling ${BACKFILL.rangeDays} days through the backfill function…`);
    const started = performance.now();
    const [job] = await db.sql<{ id: string }[]>`
      select public.start_backfill(${connection_id}, 'orders',
        now() - make_interval(days => ${BACKFILL.rangeDays}), now()) as id`;
    const id = job!.id;
    let peak = 0;
    while (true) {
      peak = Math.max(peak, await peakRssMb(pid));
      const [row] = await db.sql<{ status: string; last_error: string | null }[]>`
        select status, last_error from tether.backfills where id = ${id}`;
      if (row!.status === "succeeded") break;
      if (row!.status !== "pending" && row!.status !== "running") {
        throw new Error(`backfill ended ${row!.status}: ${row!.last_error}`);
      }
      if (performance.now() - started > 600_000) throw new Error("backfill took over 10 min");
      await new Promise((r) => setTimeout(r, 250));
    }
    const wallS = (performance.now() - started) / 1000;
    peak = Math.max(peak, await peakRssMb(pid));
    const [runs] = await db.sql<{ n: number; failed: number }[]>`
      select count(*)::int as n, count(*) filter (where status = 'failed')::int as failed
        from tether.runs where backfill_id = ${id}`;
    const records = await matchingTruth(db, sandbox, account.external_id, connection_id);
    if (records.stored !== BACKFILL.orders || records.matching !== BACKFILL.orders) {
      throw new Error(`backfill bench is wrong: ${JSON.stringify(records)} of ${BACKFILL.orders}`);
    }
    if (runs!.failed > 0) throw new Error(`${runs!.failed} backfill invocations failed`);
    return {
      case: "backfill",
      records: records.stored,
      records_matching_truth: records.matching,
      wall_s: round(wallS, 2),
      invocations: runs!.n,
      records_per_s: round(BACKFILL.orders / wallS, 0),
      peak_rss_mb: round(peak, 1),
    };
  } finally {
    await served?.stop();
    await server.close();
    await db.drop();
  }
}

/** Stored orders, and how many equal the sandbox's truth (id, update time, status, tracking). */
async function matchingTruth(
  db: TestDatabase,
  sandbox: SandboxControl,
  externalId: string,
  connectionId: string,
) {
  const { records } = await sandbox.call<{
    records: {
      external_id: string;
      updated_at: string;
      status: string;
      tracking_number: string | null;
    }[];
  }>("GET", `/data/shopify/${externalId}/orders`);
  const truth = new Map(records.map((r) => [r.external_id, r]));
  const rows = await db.sql<
    {
      external_id: string;
      remote_updated_at: Date;
      status: string;
      tracking_number: string | null;
    }[]
  >`select external_id, remote_updated_at, status, tracking_number from tether.orders
     where connection_id = ${connectionId}`;
  const matching = rows.filter((row) => {
    const want = truth.get(row.external_id);
    return want !== undefined && want.updated_at === row.remote_updated_at.toISOString() &&
      want.status === row.status && (want.tracking_number ?? null) === row.tracking_number;
  }).length;
  return { stored: rows.length, matching };
}

/**
 * Records per second upserting the synced rows into a copy of tether.orders: 250 a statement
 * (the database's own limit for this path), or one statement each (a sample).
 */
async function upsertRate(
  db: TestDatabase,
  connectionId: string,
  mode: "batched" | "per-record",
): Promise<number> {
  const table = `bench_${mode === "batched" ? "bare" : "single"}`;
  await db.sql.unsafe(`create table ${table} (like tether.orders including all)`);
  const rows = await db.sql`
    select connection_id, external_id, order_number, status, fulfillment_status, tracking_number,
           total_price, currency, customer_external_id, ordered_at, remote_updated_at, raw
      from tether.orders where connection_id = ${connectionId} order by id
     ${mode === "per-record" ? db.sql`limit ${SYNC.perRecordSample}` : db.sql``}`;
  const pool = connect(db.url, { max: 1, name: "tether-bench" });
  try {
    const upsert = (batch: readonly Record<string, unknown>[]) =>
      pool`insert into ${pool(table)} ${pool(batch as Record<string, unknown>[])}
           on conflict (connection_id, external_id) do update
              set status = excluded.status, tracking_number = excluded.tracking_number,
                  remote_updated_at = excluded.remote_updated_at, raw = excluded.raw
            where excluded.remote_updated_at > ${pool(table)}.remote_updated_at`;
    const started = performance.now();
    if (mode === "batched") {
      for (const batch of chunk([...rows], SYNC.pageSize)) await upsert(batch);
    } else {
      for (const row of rows) await upsert([row]);
    }
    return rows.length / ((performance.now() - started) / 1000);
  } finally {
    await pool.end();
  }
}

/** User + system CPU time of a process, from /proc/<pid>/stat (clock ticks of 10 ms). */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Peak resident set size of a process, from VmHWM in /proc/<pid>/status. */
async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

async function neverRefreshed(sql: ReturnType<typeof connect>): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from tether.connections where last_token_refresh_at is null`;
  return row!.n;
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function printTable(results: CaseResult[]): void {
  const keys = [...new Set(results.flatMap((r) => Object.keys(r)))];
  const cells = [keys, ...results.map((r) => keys.map((k) => formatCell(k, r[k])))];
  const widths = keys.map((_, c) => Math.max(...cells.map((row) => String(row[c]).length)));
  const line = (row: unknown[]) =>
    row.map((v, c) => String(v).padEnd(widths[c]!)).join("  ").trimEnd();
  console.log(line(keys));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of cells.slice(1)) console.log(line(row));
}

/** Counts as they are; times and rates with two decimals (1.00 provider calls per connection). */
function formatCell(key: string, value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "number" && (!Number.isInteger(value) || /_s$|_per_/.test(key))) {
    return value.toFixed(2);
  }
  return String(value);
}

async function writeResults(results: CaseResult[]): Promise<void> {
  let previous: CaseResult[] = [];
  if (existsSync(RESULTS)) {
    try {
      const parsed: unknown = JSON.parse(await readFile(RESULTS, "utf8"));
      if (Array.isArray(parsed)) previous = parsed as CaseResult[];
    } catch {
      previous = [];
    }
  }
  const fresh = new Set(results.map((r) => r.case));
  const merged = [...previous.filter((r) => !fresh.has(r.case)), ...results];
  await mkdir(join(ROOT, "bench"), { recursive: true });
  await writeFile(RESULTS, JSON.stringify(merged, null, 2) + "\n");
}

interface WebhooksBench extends CaseResult {
  case: "webhooks";
  deliveries: number;
  deliveries_per_s: number;
  p50_ms: number;
  p99_ms: number;
  duplicates_processed: number;
}

const WEBHOOKS = { deliveries: 2_000, orders: 500, duplicateShare: 0.15, concurrency: 16 };

async function benchWebhooks(log: (line: string) => void): Promise<WebhooksBench> {
  const db = await createTestDatabase();
  const server = await startSandbox({ port: 0 });
  const sandbox = new SandboxControl(server.url);
  let served: Awaited<ReturnType<typeof serveFunctionsFor>> | undefined;
  try {
    const account = await sandbox.account("shopify");
    const deps = await testDeps(db);
    await runConnect(deps, {
      provider: "shopify",
      external_id: account.external_id,
      name: "bench shop",
      credentials: account.credentials,
      config: sandbox.configFor(account),
    });
    served = await serveFunctionsFor(db, ["webhooks"]);
    const secret = deps.env.apps.shopify!.clientSecret;
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const distinct = Math.round(WEBHOOKS.deliveries / (1 + WEBHOOKS.duplicateShare));
    log(`signing ${distinct} deliveries (+ ${WEBHOOKS.deliveries - distinct} repeats)…`);
    const base = Date.parse("2026-11-01T00:00:00Z");
    const messages: { headers: Record<string, string>; body: string }[] = [];
    for (let i = 0; i < distinct; i++) {
      const seq = 1 + (i % WEBHOOKS.orders);
      const version = Math.floor(i / WEBHOOKS.orders);
      const body = JSON.stringify({
        id: seq,
        admin_graphql_api_id: `gid://shopify/Order/${seq}`,
        name: `#${1000 + seq}`,
        created_at: new Date(base).toISOString(),
        updated_at: new Date(base + version * 60_000).toISOString(),
        cancelled_at: null,
        fulfillment_status: version > 1 ? "fulfilled" : null,
        total_price: `${10 + version}.00`,
        currency: "USD",
        customer: null,
        fulfillments: version > 1 ? [{ tracking_number: `TRK${seq}` }] : [],
      });
      const mac = new Uint8Array(
        await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body)),
      );
      messages.push({
        body,
        headers: {
          "content-type": "application/json",
          "x-shopify-topic": "orders/updated",
          "x-shopify-shop-domain": account.config.shop!,
          "x-shopify-webhook-id": crypto.randomUUID(),
          "x-shopify-hmac-sha256": btoa(String.fromCharCode(...mac)),
        },
      });
    }
    const queue = [...messages];
    while (queue.length < WEBHOOKS.deliveries) {
      queue.push(messages[Math.floor(Math.random() * messages.length)]!);
    }
    for (let i = queue.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [queue[i], queue[j]] = [queue[j]!, queue[i]!];
    }
    const url = `${served.functionsUrl}/webhooks/shopify`;
    // Warm up the function's connection pool outside the measurement.
    await (await fetch(url, { method: "POST", body: "{}" })).body?.cancel();

    log(`delivering ${queue.length}, ${WEBHOOKS.concurrency} at a time…`);
    const latencies: number[] = [];
    const started = performance.now();
    await inParallel(queue, WEBHOOKS.concurrency, async (m) => {
      const t = performance.now();
      const res = await fetch(url, { method: "POST", headers: m.headers, body: m.body });
      await res.body?.cancel();
      latencies.push(performance.now() - t);
      if (res.status !== 200) throw new Error(`webhooks answered ${res.status}`);
    });
    const wallS = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
    const [counts] = await db.sql<{ rows: number; processed: number; extra: number }[]>`
      select count(*)::int as rows,
             count(*) filter (where status = 'processed')::int as processed,
             coalesce(sum(attempts - 1) filter (where attempts > 1), 0)::int as extra
        from tether.webhook_events`;
    if (counts!.rows !== distinct || counts!.processed !== distinct) {
      throw new Error(`webhooks bench is wrong: ${JSON.stringify(counts)} of ${distinct} events`);
    }
    return {
      case: "webhooks",
      deliveries: queue.length,
      deliveries_per_s: round(queue.length / wallS, 0),
      p50_ms: round(pct(0.5), 1),
      p99_ms: round(pct(0.99), 1),
      duplicates_processed: counts!.extra + (counts!.processed - distinct),
    };
  } finally {
    await served?.stop();
    await server.close();
    await db.drop();
  }
}

const CASES: Record<string, (log: (line: string) => void) => Promise<CaseResult>> = {
  refresh: benchRefresh,
  sync: benchSync,
  backfill: benchBackfill,
  webhooks: benchWebhooks,
};

const wanted = Deno.args.length > 0 ? Deno.args : Object.keys(CASES);
const unknown = wanted.filter((name) => !(name in CASES));
if (unknown.length > 0) {
  console.error(
    `bench: unknown case ${unknown.join(", ")} (one of ${Object.keys(CASES).join(", ")})`,
  );
  Deno.exit(2);
}
const results: CaseResult[] = [];
await withStack(async () => {
  for (const name of wanted) {
    console.log(`bench ${name}`);
    results.push(await CASES[name]!((line) => console.log(`  ${line}`)));
  }
});
console.log();
printTable(results);
await writeResults(results);
console.log(`\nwrote ${RESULTS}`);
