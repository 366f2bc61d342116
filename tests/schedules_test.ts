// sql/schedules.sql and the daily housekeeping it schedules.
import assert from "node:assert/strict";
import { join } from "node:path";
import postgres from "postgres";
import { paths } from "../scripts/local/util.ts";
import { createTestDatabase, stackEnv } from "./helpers/stack.ts";

Deno.test("the migrations enable pg_cron (pg_catalog), pg_net (extensions) and Vault, as Supabase documents", async () => {
  // The local stack no longer runs `create extension pg_cron` itself: in the main database (its
  // cron.database_name) the migrations did; a test database (cloned from the template, where
  // pg_cron cannot live) has pg_net and Vault from them too.
  const env = await stackEnv();
  const main = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  const db = await createTestDatabase();
  // (Vault's own objects are in schema vault wherever the extension is registered.)
  const where = (sql: postgres.Sql) =>
    sql<{ extname: string; schema: string }[]>`
      select extname, case when extname = 'supabase_vault' then 'vault'
                           else extnamespace::regnamespace::text end as schema
        from pg_extension
       where extname in ('pg_cron', 'pg_net', 'supabase_vault') order by extname`;
  try {
    assert.deepEqual((await where(main)).map((r) => [r.extname, r.schema]), [
      ["pg_cron", "pg_catalog"],
      ["pg_net", "extensions"],
      ["supabase_vault", "vault"],
    ]);
    assert.deepEqual((await where(db.sql)).map((r) => [r.extname, r.schema]), [
      ["pg_net", "extensions"],
      ["supabase_vault", "vault"],
    ]);
  } finally {
    await main.end();
    await db.drop();
  }
});

Deno.test("schedules.sql is idempotent: applied twice, each tether job exists once", async () => {
  // pg_cron lives in the stack's main database; this is the same file npm start applies.
  const env = await stackEnv();
  const sql = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const file = join(paths.root, "sql", "schedules.sql");
    await sql.file(file);
    await sql.file(file);
    const jobs = await sql<{ jobname: string; schedule: string; command: string }[]>`
      select jobname, schedule, command from cron.job
       where jobname like 'tether-%' order by jobname`;
    assert.deepEqual(jobs.map((j) => [j.jobname, j.schedule]), [
      ["tether-cleanup", "17 3 * * *"],
      ["tether-continue-backfills", "* * * * *"],
      ["tether-deliver-notifications", "* * * * *"],
      ["tether-process-webhook-events", "* * * * *"],
      ["tether-refresh-tokens", "* * * * *"],
      ["tether-sync-customers", "* * * * *"],
      ["tether-sync-orders", "* * * * *"],
    ]);
    assert.match(jobs[0]!.command, /tether\.cleanup\(\), tether\.cleanup_notifications\(\)/);
    assert.match(jobs[1]!.command, /public\.continue_backfills\(\)/);
    assert.match(jobs[2]!.command, /tether\.deliver_notifications\(\)/);
    assert.match(jobs[3]!.command, /public\.process_webhook_events\(\)/);
    assert.match(jobs[4]!.command, /public\.refresh_tokens\(\)/);
    assert.match(jobs[5]!.command, /public\.sync_customers\(\)/);
    assert.match(jobs[6]!.command, /public\.sync_orders\(\)/);
  } finally {
    await sql.end();
  }
});

Deno.test("schedules.sql rerun keeps a paused job paused, with its jobid and its run history", async () => {
  // Before: every rerun unscheduled and scheduled again, so a paused job came back active under a
  // new jobid and its cron.job_run_details rows no longer joined to it (#13).
  const env = await stackEnv();
  const sql = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  const file = join(paths.root, "sql", "schedules.sql");
  // Not tether-cleanup, which the CLI's schedules test pauses and resumes at the same time.
  const job = "tether-process-webhook-events";
  try {
    await sql.file(file);
    const [before] = await sql<{ jobid: string }[]>`
      select jobid::text from cron.job where jobname = ${job}`;
    assert.ok(before);
    await sql`select cron.alter_job(${before.jobid}::bigint, active := false)`;
    // A run pg_cron recorded for it (what the README's cron-history join reads).
    const [run] = await sql<{ runid: string }[]>`
      insert into cron.job_run_details (jobid, runid, job_pid, database, username, command, status,
                                        return_message, start_time, end_time)
      values (${before.jobid}::bigint, nextval('cron.runid_seq'), 0, 'postgres', 'postgres',
              'select 1', 'succeeded', '1 row', now(), now())
      returning runid::text`;
    try {
      await sql.file(file);
      await sql.file(file);
      const [after] = await sql<{ jobid: string; active: boolean; history: number }[]>`
        select j.jobid::text, j.active,
               (select count(*)::int from cron.job_run_details d
                 where d.jobid = j.jobid and d.runid = ${run!.runid}::bigint) as history
          from cron.job j where j.jobname = ${job}`;
      assert.deepEqual({ ...after }, { jobid: before.jobid, active: false, history: 1 });
    } finally {
      await sql`delete from cron.job_run_details where runid = ${run!.runid}::bigint`;
      await sql`select cron.alter_job(${before.jobid}::bigint, active := true)`;
    }
  } finally {
    await sql.end();
  }
});

Deno.test("schedules.sql retires a tether job it no longer schedules and leaves others' jobs alone", async () => {
  const env = await stackEnv();
  const sql = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await sql`select cron.schedule('tether-retired-test', '0 0 1 1 *', 'select 1')`;
    await sql`select cron.schedule('user-nightly-test', '0 0 1 1 *', 'select 1')`;
    await sql.file(join(paths.root, "sql", "schedules.sql"));
    const names = (await sql<{ jobname: string }[]>`
      select jobname from cron.job where jobname in ('tether-retired-test', 'user-nightly-test')`)
      .map((r) => r.jobname);
    assert.deepEqual(names, ["user-nightly-test"]);
  } finally {
    await sql`select cron.unschedule(jobid) from cron.job
               where jobname in ('tether-retired-test', 'user-nightly-test')`;
    await sql.end();
  }
});

Deno.test("cleanup deletes runs and pg_net responses older than the retention, keeps the rest", async () => {
  const db = await createTestDatabase();
  try {
    const { sql } = db;
    await sql`insert into tether.runs (kind, status, started_at, finished_at)
              values ('refresh', 'succeeded', now() - interval '20 days', now() - interval '20 days'),
                     ('refresh', 'succeeded', now() - interval '1 day', now() - interval '1 day')`;
    await sql`insert into net._http_response (id, status_code, created)
              values (1, 200, now() - interval '15 days'), (2, 200, now())`;
    await sql`insert into tether.invocations (function_name, accepted_at)
              values ('sync-orders', now() - interval '15 days'), ('sync-orders', now())`;
    const [result] = await sql`select tether.cleanup() as cleanup`;
    assert.deepEqual(result?.cleanup, {
      runs: 1,
      invocations: 1,
      http_responses: 1,
      cron_job_run_details: 0,
      changes: 0,
    });
    const [left] = await sql`select (select count(*)::int from tether.runs) as runs,
                                    (select count(*)::int from tether.invocations) as invocations,
                                    (select count(*)::int from net._http_response) as responses`;
    assert.deepEqual({ ...left }, { runs: 1, invocations: 1, responses: 1 });
  } finally {
    await db.drop();
  }
});

Deno.test("backoff doubles from 30 s, caps at 6 h, and never undercuts Retry-After", async () => {
  const db = await createTestDatabase();
  try {
    const rows = await db.sql<{ n: number; s: number }[]>`
      select n, extract(epoch from tether.backoff(n))::int as s
        from unnest(array[1, 2, 3, 10, 11, 40]) as n`;
    assert.deepEqual(rows.map((r) => r.s), [30, 60, 120, 15_360, 6 * 3600, 6 * 3600]);
    const [withRetryAfter] = await db.sql`
      select extract(epoch from tether.backoff(1, interval '120 seconds'))::int as s`;
    assert.equal(withRetryAfter?.s, 120);
  } finally {
    await db.drop();
  }
});
