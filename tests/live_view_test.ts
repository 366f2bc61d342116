// The live view of `npm start` and the judgement of `--once` (issue #17): the connections' table
// fits 80 and 120 columns with `last error` always visible, and one line each summarises the
// pg_cron schedules (failing jobs) and the webhook events (received, processed, failed), read
// with SQL from the real stack and test databases.
import assert from "node:assert/strict";
import postgres from "postgres";
import type { HealthRow } from "../scripts/cli/health.ts";
import {
  activityProblems,
  scheduleLine,
  scheduleSummary,
  webhookLine,
  webhookSummary,
} from "../scripts/cli/activity.ts";
import { render, renderTable } from "../scripts/local/live_view.ts";
import { stackEnv, withTestDatabase } from "./helpers/stack.ts";

function row(over: Partial<HealthRow>): HealthRow {
  const now = Date.now();
  return {
    id: crypto.randomUUID(),
    provider: "shopify",
    name: "Demo Shopify",
    external_id: "demo",
    status: "active",
    token_expires_at: new Date(now + 86_000_000),
    last_token_refresh_at: new Date(now - 15_000),
    orders_last_synced_at: new Date(now - 15_000),
    customers_last_synced_at: new Date(now - 15_000),
    orders: 1300,
    customers: 150,
    backfill_id: crypto.randomUUID(),
    backfill_stream: "orders",
    backfill_status: "running",
    backfill_percent: "52.0",
    backfill_records_count: 8400,
    last_error: null,
    next_attempt_at: null,
    ...over,
  };
}

const ROWS = [
  row({}),
  row({
    provider: "quickbooks",
    name: "Demo QuickBooks",
    status: "reauth_required",
    last_error: "quickbooks rejected the refresh token (invalid_grant): reconnect the account",
  }),
  row({ provider: "maystro", name: "Demo Maystro", token_expires_at: null, backfill_id: null }),
];

Deno.test("the live view's table fits 80 and 120 columns and always shows the last error", () => {
  const full = renderTable(ROWS);
  assert.ok(full.split("\n")[0]!.length > 120, "the full table is wider than 120 columns");
  for (const width of [80, 120]) {
    const lines = renderTable(ROWS, Date.now(), width).split("\n");
    for (const line of lines) assert.ok(line.length <= width, `${width}: ${line.length}: ${line}`);
    assert.match(lines[0]!, /^provider\s+name\s+status\s+.*last error$/, `${width}: header`);
    const qb = lines.find((l) => l.startsWith("quickbooks"))!;
    assert.match(qb, /reauth_required\s+.*quickbooks rejected the refresh/, `${width}: ${qb}`);
  }
  // At 120 there is room for more than at 80: the sync columns stay.
  assert.match(renderTable(ROWS, Date.now(), 120), /orders synced/);
  // The whole screen on a terminal: nothing cut but the header lines, the summaries first.
  const screen = render(
    { header: ["Tether on the local stack"], rows: ROWS, footer: ["Schedules: x", "Webhooks: y"] },
    { tty: true, columns: 80 },
  );
  assert.match(screen, /quickbooks .*rejected the refresh/);
  assert.match(screen, /Schedules: x/);
});

Deno.test("schedules: a failing pg_cron job is one line in the view and a problem for --once", async () => {
  const stack = await stackEnv();
  const admin = postgres(stack.DATABASE_URL, { max: 1, onnotice: () => {} });
  const marker = `probe-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const [job] = await admin<{ jobid: number }[]>`
      select jobid::int as jobid from cron.job where jobname = 'tether-cleanup'`;
    assert.ok(job, "the stack's schedules are installed");
    const healthy = await scheduleSummary(admin as never);
    assert.ok(healthy.total >= 5, `${healthy.total} jobs`);
    // The last run of one job failed (as every job did when plpgsql.so broke under the cluster).
    await admin`
      insert into cron.job_run_details (jobid, runid, job_pid, database, username, command,
                                        status, return_message, start_time, end_time)
      values (${job!.jobid}, nextval('cron.runid_seq'), 0, 'postgres', 'postgres', 'select 1',
              'failed', ${`ERROR: could not load library plpgsql.so ${marker}`},
              now() + interval '1 hour', now() + interval '1 hour')`;
    const failing = await scheduleSummary(admin as never);
    const line = scheduleLine(failing);
    assert.match(line, new RegExp(`^Schedules: 1 of ${failing.total} FAILING.*tether-cleanup`));
    assert.match(line, new RegExp(marker));
    const problems = activityProblems(failing, {
      minutes: 60,
      received: 0,
      processed: 0,
      ignored: 0,
      failed: 0,
      pending: 0,
      lastFailure: null,
    });
    assert.deepEqual(problems.length, 1);
    assert.match(problems[0]!, /schedule tether-cleanup failed: .*plpgsql/);
  } finally {
    await admin`delete from cron.job_run_details where return_message like ${`%${marker}`}`;
    await admin.end();
  }
});

Deno.test("webhook events: received, processed, failed in one line, and failures are a problem for --once", async () => {
  await withTestDatabase(async (db) => {
    const quiet = await webhookSummary(db.sql);
    assert.equal(
      webhookLine(quiet),
      "Webhooks, last 60 min: 0 received, 0 processed, 0 ignored, 0 failed, 0 pending",
    );
    await db.sql`
      insert into tether.webhook_events (provider, event_id, status, last_error, received_at)
      values ('shopify', 'a', 'processed', null, now()),
             ('shopify', 'b', 'processed', null, now()),
             ('lightspeed', 'c', 'ignored', null, now()),
             ('maystro', 'd', 'failed', 'the event has no connection', now()),
             ('maystro', 'e', 'received', null, now()),
             ('maystro', 'old', 'failed', 'long ago', now() - interval '2 hours')`;
    const summary = await webhookSummary(db.sql);
    assert.match(
      webhookLine(summary),
      /^Webhooks, last 60 min: 5 received, 2 processed, 1 ignored, 1 failed, 1 pending; last failure just now \(maystro\): the event has no connection$/,
    );
    const problems = activityProblems(
      { available: true, total: 5, paused: 0, failing: [] },
      summary,
    );
    assert.deepEqual(problems, [
      "webhooks: 1 event(s) failed in the last 60 min (last: the event has no connection)",
    ]);
  });
});
