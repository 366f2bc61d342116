// What happens outside any one connection, read with SQL: the pg_cron schedules (is one failing?)
// and the webhook events (received, processed, failed). One line each for the live view of
// `npm start` and `--once`, which also judges them; the rows for `npm run tether -- webhooks`.
import type { Sql } from "../../functions-shared/db/client.ts";
import { oneLine, relative } from "./health.ts";
import { tetherJobs } from "./schedules.ts";

export interface ScheduleSummary {
  /** false: pg_cron is not in this database. */
  available: boolean;
  total: number;
  paused: number;
  /** Jobs whose last run failed, with its message. */
  failing: { job: string; at: Date; message: string }[];
}

export async function scheduleSummary(sql: Sql): Promise<ScheduleSummary> {
  const rows = await tetherJobs(sql);
  if (rows === undefined) return { available: false, total: 0, paused: 0, failing: [] };
  return {
    available: true,
    total: rows.length,
    paused: rows.filter((r) => !r.active).length,
    failing: rows.filter((r) => r.last_status === "failed" && r.last_run_at !== null)
      .map((r) => ({ job: r.jobname, at: r.last_run_at!, message: r.last_message ?? "" })),
  };
}

export interface WebhookSummary {
  /** The window, in minutes, the counts cover. */
  minutes: number;
  received: number;
  processed: number;
  ignored: number;
  failed: number;
  /** Stored, not processed yet. */
  pending: number;
  lastFailure: { provider: string; at: Date; error: string } | null;
}

export async function webhookSummary(sql: Sql, minutes = 60): Promise<WebhookSummary> {
  const [row] = await sql<(Omit<WebhookSummary, "lastFailure" | "minutes">)[]>`
    select count(*)::int as received,
           count(*) filter (where status = 'processed')::int as processed,
           count(*) filter (where status = 'ignored')::int as ignored,
           count(*) filter (where status = 'failed')::int as failed,
           count(*) filter (where status = 'received')::int as pending
      from tether.webhook_events
     where received_at >= now() - make_interval(mins => ${minutes})`;
  const [last] = await sql<{ provider: string; at: Date; error: string }[]>`
    select provider, received_at as at, coalesce(last_error, '') as error
      from tether.webhook_events
     where status = 'failed' and received_at >= now() - make_interval(mins => ${minutes})
     order by received_at desc limit 1`;
  return { minutes, ...row!, lastFailure: last ?? null };
}

/** `Schedules: 5 pg_cron jobs, all succeeding` or `Schedules: 2 of 5 FAILING: …`. */
export function scheduleLine(s: ScheduleSummary, now = Date.now()): string {
  if (!s.available) return "Schedules: pg_cron is not in this database";
  if (s.total === 0) return "Schedules: none installed (psql -f sql/schedules.sql)";
  const paused = s.paused > 0 ? `, ${s.paused} paused` : "";
  if (s.failing.length === 0) return `Schedules: ${s.total} pg_cron jobs, none failing${paused}`;
  const first = s.failing[0]!;
  return `Schedules: ${s.failing.length} of ${s.total} FAILING${paused}; ${first.job} ` +
    `${relative(first.at, now)}: ${oneLine(first.message)}`;
}

/** `Webhooks, last 60 min: 24 received, 22 processed, 1 ignored, 1 failed, 0 pending; …`. */
export function webhookLine(w: WebhookSummary, now = Date.now()): string {
  const counts = `${w.received} received, ${w.processed} processed, ${w.ignored} ignored, ` +
    `${w.failed} failed, ${w.pending} pending`;
  const last = w.lastFailure
    ? `; last failure ${relative(w.lastFailure.at, now)} (${w.lastFailure.provider}): ${
      oneLine(w.lastFailure.error)
    }`
    : "";
  return `Webhooks, last ${w.minutes} min: ${counts}${last}`;
}

/** What `--once` counts as unhealthy outside the connections. */
export function activityProblems(s: ScheduleSummary, w: WebhookSummary): string[] {
  const out = s.failing.map((f) => `schedule ${f.job} failed: ${oneLine(f.message)}`);
  if (w.failed > 0) {
    out.push(
      `webhooks: ${w.failed} event(s) failed in the last ${w.minutes} min` +
        (w.lastFailure ? ` (last: ${oneLine(w.lastFailure.error)})` : ""),
    );
  }
  return out;
}

export interface WebhookEventRow {
  id: string;
  provider: string;
  connection_id: string | null;
  name: string | null;
  topic: string | null;
  event_id: string;
  status: string;
  attempts: number;
  received_at: Date;
  processed_at: Date | null;
  next_attempt_at: Date | null;
  last_error: string | null;
}

/** Recent webhook events, newest first (`npm run tether -- webhooks`). Payloads never shown. */
export async function webhookEvents(
  sql: Sql,
  f: {
    provider?: string;
    connection?: string;
    status?: string;
    topic?: string;
    sinceMinutes?: number;
    limit: number;
  },
): Promise<WebhookEventRow[]> {
  return await sql<WebhookEventRow[]>`
    select e.id::text as id, e.provider, e.connection_id, c.name, e.topic, e.event_id, e.status,
           e.attempts, e.received_at, e.processed_at, e.next_attempt_at, e.last_error
      from tether.webhook_events e
      left join tether.connections c on c.id = e.connection_id
     where (${f.provider ?? null}::text is null or e.provider = ${f.provider ?? null})
       and (${f.connection ?? null}::uuid is null or e.connection_id = ${f.connection ?? null})
       and (${f.status ?? null}::text is null or e.status = ${f.status ?? null})
       and (${f.topic ?? null}::text is null or e.topic = ${f.topic ?? null})
       and (${f.sinceMinutes ?? null}::int is null
            or e.received_at >= now() - make_interval(mins => ${f.sinceMinutes ?? 0}))
     order by e.received_at desc, e.id desc
     limit ${f.limit}`;
}
