// bench scale (see main.ts): many connections kept fresh by Tether's own schedules alone.
//
// 10,000 connections (2,000 per provider) against the in-process sandbox with 150 ms on every
// provider call, a steady trickle of changes at the providers, and nothing else driving the work
// but the pg_cron jobs Tether installs: sql/schedules.sql is applied where pg_cron lives and
// cron.job read back (then rolled back), and each simulated minute the bench runs the commands of
// the jobs whose schedule fires that minute (cron.job.command, verbatim) in the case's database,
// through one connection as pg_cron would. Those commands call the functions through pg_net (the
// stack's: the stand-in's worker or the real one), and a sync call that needs several invocations
// starts the others itself through the gateway, as on Supabase. pg_cron itself is not used because it lives in
// the stack's main database and Debian's pg_cron 1.4.2 ticks once a minute: a tick here is
// `--tick-seconds` of real time (60 by default: real time, what the reported run uses). A shorter
// tick is a development mode: sync intervals and token due times shrink with it, provider margins
// (adapter facts) do not, so its refresh figures are lenient.
//
// The world starts in a steady state, as if Tether had been running: each stream was last synced
// at a uniformly random point of its last interval, each token falls due (its expiry less its
// provider's margin) at a uniformly random point of its lifetime from now, each Maystro
// connection (no expiring token: a daily check) was last checked at a random point of the last day.
//
// Figures: `refresh_on_time_pct` is the share of refreshes that fell due during the run and were
// done before the token expired (within the provider's margin), `sync_on_time_pct` the share of
// stream syncs that fell due (last caught up + sync_interval) and were caught up within one more
// interval; a due item not yet done when the run ends counts once it is late. `max_lag_s` is the
// longest time from due to done (or to the run's end) of any sync or refresh.
// `pg_net_requests_per_tick` is the most pg_net requests one tick's commands queued;
// `peak_db_connections` the most client connections to the case's database seen in
// pg_stat_activity (sampled every second; the bench's own setup connections left out, the tick's
// "pg_cron" connection and the pg_net worker's counted); `failed_invocations` the invocations that
// did not end succeeded (tether.invocations) plus the ticks' pg_net calls that reached no function
// (no invocations row of their own: a sync call's siblings, which it started itself, are told
// apart by its result) plus the siblings a sync call failed to start; `pg_net_not_202` the calls
// pg_net did not record a 202 for (a timeout while the function still ran counts here, not as
// failed). `sibling_invocations` is how many sync invocations their first started (the fan-out in
// the function: jobs/sync.ts), `sibling_starts_failed` how many starts failed.
import type { Sql } from "../../functions-shared/db/client.ts";
import { connect } from "../../functions-shared/db/client.ts";
import { writeCredentials } from "../../functions-shared/db/credentials.ts";
import { adapterFor } from "../../functions-shared/providers/registry.ts";
import { type ProviderName, PROVIDERS } from "../../functions-shared/providers/types.ts";
import { testDeps } from "../local/harness.ts";
import { stackEnv, storeVaultSecrets } from "../local/harness.ts";
import { cronFires, tetherCronJobs } from "./cron.ts";
import { chunk, inParallel } from "./measure.ts";
import { type CaseResult, round } from "./report.ts";
import { type GatewayFigures, withBenchWorld } from "./world.ts";

export interface ScaleBench extends CaseResult, GatewayFigures {
  case: "scale";
  connections: number;
  refresh_on_time_pct: number;
  sync_on_time_pct: number;
  max_lag_s: number;
  pg_net_requests_per_tick: number;
  peak_db_connections: number;
  failed_invocations: number;
  /** pg_net calls whose answer it did not record as 202 (its 2 s timeout on a loaded machine). */
  pg_net_not_202: number;
  /** Sync invocations started by the invocation a pg_net call reached, not by pg_net. */
  sibling_invocations: number;
  /** Sibling starts that failed (counted in failed_invocations too). */
  sibling_starts_failed: number;
  simulated_minutes: number;
  tick_seconds: number;
  refreshes_due: number;
  syncs_due: number;
  sync_runs: number;
  failed_sync_runs: number;
  changes_made: number;
}

export interface ScaleOptions {
  /** Spread evenly over the five providers. */
  connections: number;
  /** Simulated minutes: ticks at minute 0 … minutes, then the work they started finishes. */
  minutes: number;
  /** Real seconds a simulated minute lasts (60: real time). */
  tickSeconds: number;
  latencyMs: number;
  /** Provider-side changes per connection per simulated hour. */
  changesPerHour: number;
}

export const SCALE_DEFAULTS: ScaleOptions = {
  connections: 10_000,
  minutes: 15,
  tickSeconds: 60,
  latencyMs: 150,
  changesPerHour: 1,
};

/** `--connections N --minutes M --tick-seconds S --latency-ms L --changes-per-hour C`. */
export function scaleOptions(flags: Record<string, string>): ScaleOptions {
  const names: Record<string, keyof ScaleOptions> = {
    connections: "connections",
    minutes: "minutes",
    "tick-seconds": "tickSeconds",
    "latency-ms": "latencyMs",
    "changes-per-hour": "changesPerHour",
  };
  const opts = { ...SCALE_DEFAULTS };
  for (const [flag, value] of Object.entries(flags)) {
    const key = names[flag];
    const n = Number(value);
    if (key === undefined) throw new Error(`bench scale: unknown flag --${flag}`);
    if (!Number.isFinite(n) || n < 0 || (key !== "changesPerHour" && !Number.isInteger(n))) {
      throw new Error(`bench scale: --${flag} must be a non-negative number`);
    }
    opts[key] = n;
  }
  if (opts.connections < PROVIDERS.length || opts.minutes < 1 || opts.tickSeconds < 1) {
    throw new Error("bench scale: at least 5 connections, 1 minute and 1 s a tick");
  }
  return opts;
}

/** What the bench remembers of each connection's starting point, to judge lateness after. */
interface Seeded {
  id: string;
  provider: ProviderName;
  /** When its refresh falls due (null: not within the run). */
  refreshDueAt: number | null;
  expiresAt: number | null;
  /** Per stream: when it was last caught up. */
  syncedAt: Partial<Record<string, number>>;
}

const HOUR = 3_600_000;
/** Access-token lifetimes the sandboxes give (ShipHero 28 days, Lightspeed's default 1 day). */
const TOKEN_LIFETIME_MS: Record<ProviderName, number | null> = {
  shiphero: 28 * 24 * HOUR,
  shopify: HOUR,
  lightspeed: 24 * HOUR,
  quickbooks: HOUR,
  maystro: null,
};
const SYNC_INTERVAL_MS = 10 * 60_000;

export async function benchScale(
  log: (line: string) => void,
  opts: ScaleOptions = SCALE_DEFAULTS,
): Promise<ScaleBench> {
  return await withBenchWorld<ScaleBench>(async ({ db, sandbox, serve }) => {
    const speed = 60 / opts.tickSeconds;
    const minuteMs = opts.tickSeconds * 1000;
    const intervalMs = SYNC_INTERVAL_MS / speed;
    const jobs = await tetherCronJobs((await stackEnv()).DATABASE_URL);
    log(`schedules: ${jobs.map((j) => `${j.jobname} '${j.schedule}'`).join(", ")}`);

    log(`creating ${opts.connections} sandbox accounts and connections…`);
    const planned = Date.now();
    const seeded = await seedConnections(db.sql, sandbox, opts.connections, {
      start: planned,
      speed,
      intervalMs,
      vault: (await testDeps(db)).vault,
    });
    const accounts = seeded.accounts;
    // The run starts now: every seeded time moves by how long the setup took.
    const start = Date.now() + 2_000;
    await shiftSeeded(db.sql, seeded.rows, start - planned);
    const served = await serve([
      "refresh-tokens",
      "sync-orders",
      "sync-customers",
      "webhooks",
      "backfill",
    ]);
    await storeVaultSecrets(db.sql, served);
    await sandbox.call("POST", "/latency", { ms: opts.latencyMs });
    await sandbox.call("DELETE", "/stats");

    // pg_cron's own connection: it runs each job's command on a connection of its own.
    const cron = connect(db.url, { max: 1, name: "pg_cron" });
    const sampler = connect(db.url, { max: 1, name: "tether-bench-sampler" });
    let peakConnections = 0;
    let changesMade = 0;
    let running = true;
    const sampling = (async () => {
      while (running) {
        const [row] = await sampler<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
           where datname = current_database() and backend_type = 'client backend'
             and application_name not in ('tether-test', 'tether-bench-sampler')`;
        peakConnections = Math.max(peakConnections, row!.n);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    // A steady trickle of changes at the providers, spread over the accounts.
    const changesPerSecond = opts.connections * opts.changesPerHour * speed / 3600;
    const trickle = (async () => {
      let owed = 0;
      while (running) {
        owed += changesPerSecond / 4;
        const now = Math.floor(owed);
        owed -= now;
        await Promise.all(Array.from({ length: now }, async () => {
          const a = accounts[Math.floor(Math.random() * accounts.length)]!;
          await sandbox.call("POST", `/data/${a.provider}/${a.external_id}/mutate`, { changes: 1 });
          changesMade++;
        }));
        await new Promise((r) => setTimeout(r, 250));
      }
    })();

    const perTick: number[] = [];
    const delay = start - Date.now();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    log(
      `${opts.minutes} simulated minutes, a tick every ${opts.tickSeconds} s, ` +
        `${opts.latencyMs} ms a provider call, ${round(changesPerSecond, 2)} changes/s…`,
    );
    // Simulated time starts on a minute boundary, as pg_cron's ticks do.
    const simStart = Math.floor(Date.now() / 60_000) * 60_000;
    for (let minute = 0; minute <= opts.minutes; minute++) {
      const due = start + minute * minuteMs - Date.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      const at = new Date(simStart + minute * 60_000);
      const [{ before }] = await cron<[{ before: string }]>`
        select coalesce(greatest((select max(id) from net.http_request_queue),
                                 (select max(id) from net._http_response)), 0)::text as before`;
      const fired: string[] = [];
      for (const job of jobs.filter((j) => cronFires(j.schedule, at))) {
        await cron.unsafe(job.command);
        fired.push(job.jobname.replace(/^tether-/, ""));
      }
      const [{ n }] = await cron<[{ n: number }]>`
        select count(*)::int as n from (
          select id from net.http_request_queue where id > ${before}::bigint
          union select id from net._http_response where id > ${before}::bigint) q`;
      perTick.push(n);
      log(`minute ${minute}: ${fired.join(", ") || "nothing"} → ${n} pg_net requests`);
    }
    const endedAt = Date.now();
    await waitForInvocations(db.sql, 170_000);
    running = false;
    await Promise.all([sampling, trickle]);
    await cron.end();
    await sampler.end();

    for (const f of await invocationSummary(db.sql)) {
      log(
        `${f.function_name} ${f.status}: ${f.n} invocations, at most ${
          f.most ?? 0
        } streams or refreshes in one`,
      );
    }
    const lateness = await judge(db.sql, seeded.rows, { startedAt: start, endedAt, intervalMs });
    // A call that reached its function is an invocations row (recorded before the 202); one that
    // did not is a pg_net request without a row. A sync call's siblings are rows too, started by
    // the call itself: its result counts them, started and failed.
    const [calls] = await db.sql<
      {
        unfinished: number;
        reached: number;
        unanswered: number;
        siblings: number;
        siblings_failed: number;
      }[]
    >`
      select (select count(*) from tether.invocations where status <> 'succeeded')::int
               as unfinished,
             (select count(*) from tether.invocations)::int as reached,
             (select count(*) from net._http_response
               where status_code is distinct from 202)::int as unanswered,
             coalesce(sum(jsonb_array_length(result->'siblings'->'started')), 0)::int as siblings,
             coalesce(sum(jsonb_array_length(result->'siblings'->'failed')), 0)::int
               as siblings_failed
        from tether.invocations`;
    const requested = perTick.reduce((a, b) => a + b, 0);
    const reachedByPgNet = calls!.reached - calls!.siblings;
    return {
      case: "scale",
      connections: opts.connections,
      refresh_on_time_pct: lateness.refreshOnTimePct,
      sync_on_time_pct: lateness.syncOnTimePct,
      max_lag_s: lateness.maxLagS,
      pg_net_requests_per_tick: Math.max(...perTick),
      peak_db_connections: peakConnections,
      failed_invocations: calls!.unfinished + Math.max(0, requested - reachedByPgNet) +
        calls!.siblings_failed,
      pg_net_not_202: calls!.unanswered,
      sibling_invocations: calls!.siblings,
      sibling_starts_failed: calls!.siblings_failed,
      simulated_minutes: opts.minutes,
      tick_seconds: opts.tickSeconds,
      refreshes_due: lateness.refreshesDue,
      syncs_due: lateness.syncsDue,
      sync_runs: lateness.syncRuns,
      failed_sync_runs: lateness.failedSyncRuns,
      changes_made: changesMade,
    };
  });
}

/** Sandbox accounts and their connections, written straight to the database in a steady state. */
async function seedConnections(
  sql: Sql,
  sandbox: Parameters<Parameters<typeof withBenchWorld>[0]>[0]["sandbox"],
  count: number,
  o: {
    start: number;
    speed: number;
    intervalMs: number;
    vault: Awaited<ReturnType<typeof testDeps>>["vault"];
  },
) {
  const rows: Seeded[] = [];
  const accounts: { provider: ProviderName; external_id: string }[] = [];
  const indexes = Array.from({ length: count }, (_, i) => i);
  await inParallel(chunk(indexes, 100), 4, async (part) => {
    const batch: {
      provider: ProviderName;
      external_id: string;
      name: string;
      config: object;
      token_expires_at: string | null;
      last_token_refresh_at: string;
      sync_interval_ms: number;
      credentials: Record<string, string>;
      seed: Seeded;
    }[] = [];
    for (const i of part) {
      const provider = PROVIDERS[i % PROVIDERS.length]!;
      const account = await sandbox.account(
        provider,
        provider === "shopify" ? "expiring" : undefined,
      );
      const lifetime = TOKEN_LIFETIME_MS[provider];
      const margin = adapterFor(provider).facts.refreshMarginSeconds * 1000;
      const refreshDueAt = lifetime === null ? null : o.start + Math.random() * lifetime / o.speed;
      const expiresAt = refreshDueAt === null ? null : refreshDueAt + margin;
      const streams = adapterFor(provider).streams;
      const syncedAt = Object.fromEntries(
        Object.keys(streams).map((s) => [s, o.start - Math.random() * o.intervalMs]),
      );
      const seed: Seeded = { id: "", provider, refreshDueAt, expiresAt, syncedAt };
      batch.push({
        provider,
        external_id: account.external_id,
        name: `scale ${provider} ${i}`,
        config: sandbox.configFor(account),
        token_expires_at: expiresAt === null ? null : new Date(expiresAt).toISOString(),
        // Maystro's daily check: last done at a random point of the last day.
        last_token_refresh_at: new Date(o.start - Math.random() * 24 * HOUR / o.speed)
          .toISOString(),
        sync_interval_ms: o.intervalMs,
        credentials: account.credentials,
        seed,
      });
      accounts.push({ provider, external_id: account.external_id });
    }
    await sql.begin(async (tx) => {
      const inserted = await tx<{ id: string; external_id: string; provider: string }[]>`
        insert into tether.connections
          (provider, external_id, name, config, token_expires_at, last_token_refresh_at, sync_interval)
        select r.provider, r.external_id, r.name, r.config, r.token_expires_at,
               r.last_token_refresh_at, make_interval(secs => r.sync_interval_ms / 1000.0)
          from jsonb_to_recordset(${
        tx.json(batch.map(({ credentials: _, seed: __, ...r }) => r) as never)
      })
            as r(provider text, external_id text, name text, config jsonb,
                 token_expires_at timestamptz, last_token_refresh_at timestamptz,
                 sync_interval_ms double precision)
        returning id, external_id, provider`;
      const ids = new Map(inserted.map((r) => [`${r.provider}/${r.external_id}`, r.id]));
      const cursors: { connection_id: string; stream: string; last_synced_at: string }[] = [];
      for (const b of batch) {
        const id = ids.get(`${b.provider}/${b.external_id}`)!;
        b.seed.id = id;
        await writeCredentials(tx, o.vault, id, b.credentials);
        for (const [stream, at] of Object.entries(b.seed.syncedAt)) {
          cursors.push({ connection_id: id, stream, last_synced_at: new Date(at!).toISOString() });
        }
        rows.push(b.seed);
      }
      await tx`
        insert into tether.sync_cursors (connection_id, stream, last_synced_at)
        select r.connection_id, r.stream, r.last_synced_at
          from jsonb_to_recordset(${tx.json(cursors as never)})
            as r(connection_id uuid, stream text, last_synced_at timestamptz)`;
    });
  });
  return { rows, accounts };
}

/** Moves every seeded time by `ms`, in the database and in what the bench remembers. */
async function shiftSeeded(sql: Sql, rows: Seeded[], ms: number): Promise<void> {
  const by = `${ms / 1000} seconds`;
  await sql`
    update tether.connections
       set token_expires_at = token_expires_at + ${by}::interval,
           last_token_refresh_at = last_token_refresh_at + ${by}::interval`;
  await sql`update tether.sync_cursors set last_synced_at = last_synced_at + ${by}::interval`;
  for (const row of rows) {
    if (row.refreshDueAt !== null) row.refreshDueAt += ms;
    if (row.expiresAt !== null) row.expiresAt += ms;
    for (const stream of Object.keys(row.syncedAt)) {
      row.syncedAt[stream] = row.syncedAt[stream]! + ms;
    }
  }
}

/** Waits until every invocation the ticks started has ended (or the timeout). */
async function waitForInvocations(sql: Sql, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const [row] = await sql<{ n: number }[]>`
      select ((select count(*) from tether.invocations where status = 'running')
            + (select count(*) from net.http_request_queue))::int as n`;
    if (row!.n === 0) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Per function and outcome: how many invocations, and the most work one did. */
async function invocationSummary(sql: Sql) {
  return await sql<{ function_name: string; status: string; n: number; most: number | null }[]>`
    select function_name, status, count(*)::int as n,
           max(coalesce(jsonb_array_length(result->'runs'), (result->>'refreshed')::int))::int
             as most
      from tether.invocations group by 1, 2 order by 1, 2`;
}

/** How late each refresh and each stream sync that fell due during the run was done. */
async function judge(
  sql: Sql,
  seeded: Seeded[],
  o: { startedAt: number; endedAt: number; intervalMs: number },
) {
  const refreshed = new Map(
    (await sql<{ id: string; at: Date | null }[]>`
      select id, last_token_refresh_at as at from tether.connections`).map((r) => [r.id, r.at]),
  );
  const runs = await sql<
    {
      connection_id: string;
      stream: string;
      started_at: Date;
      finished_at: Date | null;
      status: string;
      caught_up: boolean | null;
    }[]
  >`select connection_id, stream, started_at, finished_at, status,
           (details->>'caught_up')::boolean as caught_up
      from tether.runs where kind = 'sync' order by started_at`;
  const runsOf = Map.groupBy(runs, (r) => `${r.connection_id}/${r.stream}`);
  let maxLagMs = 0;
  const count = { refreshDue: 0, refreshOnTime: 0, syncDue: 0, syncOnTime: 0 };
  for (const s of seeded) {
    if (s.refreshDueAt !== null && s.expiresAt !== null && s.refreshDueAt <= o.endedAt) {
      const at = refreshed.get(s.id)?.getTime();
      // Seeded refresh times are all before the run: a later one is the run's refresh.
      const done = at !== undefined && at > o.startedAt ? at : undefined;
      // Not done yet and still within its margin: neither on time nor late.
      if (done !== undefined || s.expiresAt <= o.endedAt) {
        count.refreshDue++;
        if (done !== undefined && done <= s.expiresAt) count.refreshOnTime++;
        maxLagMs = Math.max(maxLagMs, (done ?? o.endedAt) - s.refreshDueAt);
      }
    }
    for (const [stream, syncedAt] of Object.entries(s.syncedAt)) {
      let due = syncedAt! + o.intervalMs;
      for (const run of runsOf.get(`${s.id}/${stream}`) ?? []) {
        if (run.status !== "succeeded" || !run.caught_up || !run.finished_at) continue;
        const lag = run.finished_at.getTime() - due;
        count.syncDue++;
        if (lag <= o.intervalMs) count.syncOnTime++;
        maxLagMs = Math.max(maxLagMs, lag);
        due = run.started_at.getTime() + o.intervalMs;
      }
      if (due <= o.endedAt && o.endedAt - due > o.intervalMs) {
        count.syncDue++;
        maxLagMs = Math.max(maxLagMs, o.endedAt - due);
      }
    }
  }
  const pct = (n: number, of: number) => of === 0 ? 100 : round(100 * n / of, 2);
  return {
    refreshOnTimePct: pct(count.refreshOnTime, count.refreshDue),
    syncOnTimePct: pct(count.syncOnTime, count.syncDue),
    maxLagS: round(Math.max(0, maxLagMs) / 1000, 1),
    refreshesDue: count.refreshDue,
    syncsDue: count.syncDue,
    syncRuns: runs.length,
    failedSyncRuns: runs.filter((r) => r.status === "failed").length,
  };
}
