// sql/schedules.sql and the daily housekeeping it schedules.
import assert from "node:assert/strict";
import { join } from "node:path";
import postgres from "postgres";
import { paths } from "../scripts/local/util.ts";
import { createTestDatabase, stackEnv } from "./helpers/stack.ts";

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
      ["tether-process-webhook-events", "* * * * *"],
      ["tether-refresh-tokens", "*/5 * * * *"],
      ["tether-sync-customers", "2-59/5 * * * *"],
      ["tether-sync-orders", "*/5 * * * *"],
    ]);
    assert.match(jobs[1]!.command, /public\.continue_backfills\(\)/);
    assert.match(jobs[2]!.command, /public\.process_webhook_events\(\)/);
    assert.match(jobs[3]!.command, /public\.refresh_tokens\(\)/);
    assert.match(jobs[4]!.command, /public\.sync_customers\(\)/);
    assert.match(jobs[5]!.command, /public\.sync_orders\(\)/);
  } finally {
    await sql.end();
  }
});

Deno.test("schedules.sql applied again keeps a paused job paused and every job's id (its run history)", async () => {
  const env = await stackEnv();
  const sql = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  const file = join(paths.root, "sql", "schedules.sql");
  const ids = async () =>
    Object.fromEntries(
      (await sql<{ jobname: string; jobid: number; active: boolean }[]>`
        select jobname, jobid::int as jobid, active from cron.job
         where jobname like 'tether-%'`).map((j) => [j.jobname, [j.jobid, j.active]]),
    );
  // Not tether-cleanup, which the CLI's schedules test pauses and resumes at the same time.
  try {
    await sql.file(file);
    await sql`select cron.alter_job(jobid, active := false) from cron.job
               where jobname = 'tether-process-webhook-events'`;
    const before = await ids();
    await sql.file(file);
    assert.deepEqual(await ids(), before);
    assert.equal(before["tether-process-webhook-events"]![1], false);
  } finally {
    await sql`select cron.alter_job(jobid, active := true) from cron.job
               where jobname = 'tether-process-webhook-events'`;
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
