// `npm run tether -- schedules [show|pause|resume] [job]`: Tether's pg_cron jobs (sql/schedules.sql),
// read and switched with SQL on cron.job (pg_cron ≥ 1.4: cron.alter_job).
import type { Sql } from "../../functions-shared/db/client.ts";
import { CliError, printResult, table, type Target, UsageError, withDb } from "./common.ts";
import { oneLine } from "./health.ts";

export const SCHEDULES_HELP = "schedules [show|pause|resume] [<job>] [--json]\n" +
  "  Tether's pg_cron jobs with their last run (show, the default); pause or resume one job\n" +
  "  (e.g. sync-orders or tether-sync-orders) or, with no job, all of them.";

export interface JobRow {
  jobid: number;
  jobname: string;
  schedule: string;
  active: boolean;
  command: string;
  last_run_at: Date | null;
  last_status: string | null;
  last_message: string | null;
}

/** Tether's pg_cron jobs with their last run; undefined when pg_cron is not in this database. */
export async function tetherJobs(sql: Sql): Promise<JobRow[] | undefined> {
  const [has] = await sql<{ ok: boolean }[]>`
    select to_regclass('cron.job') is not null as ok`;
  if (!has?.ok) return undefined;
  return await sql<JobRow[]>`
    select j.jobid::int as jobid, j.jobname, j.schedule, j.active, j.command,
           d.start_time as last_run_at, d.status as last_status, d.return_message as last_message
      from cron.job j
      left join lateral (
        select start_time, status, return_message from cron.job_run_details r
         where r.jobid = j.jobid order by r.start_time desc limit 1
      ) d on true
     where j.jobname like 'tether-%'
     order by j.jobname`;
}

async function jobs(sql: Sql): Promise<JobRow[]> {
  const rows = await tetherJobs(sql);
  if (rows === undefined) {
    throw new CliError(
      "pg_cron is not in this database: the schedules live in the database pg_cron runs in " +
        "(cron.database_name, `postgres` on Supabase); point DATABASE_URL at it",
    );
  }
  return rows;
}

export async function schedulesCommand(t: Target, args: string[], json: boolean): Promise<void> {
  const [sub = "show", name, ...extra] = args;
  if (!["show", "pause", "resume"].includes(sub)) {
    throw new UsageError(`unknown schedules command "${sub}": show, pause or resume`);
  }
  if (extra.length > 0 || (sub === "show" && name)) {
    throw new UsageError(`usage: npm run tether -- ${SCHEDULES_HELP}`);
  }
  await withDb(t, async (sql) => {
    let rows = await jobs(sql);
    if (rows.length === 0) {
      throw new CliError(
        'no Tether schedules in pg_cron: install them with `psql "$DATABASE_URL" -f sql/schedules.sql`',
      );
    }
    if (sub !== "show") {
      const wanted = name ? (name.startsWith("tether-") ? name : `tether-${name}`) : undefined;
      const targets = wanted ? rows.filter((r) => r.jobname === wanted) : rows;
      if (targets.length === 0) {
        throw new UsageError(
          `no schedule "${name}": one of ${
            rows.map((r) => r.jobname.replace(/^tether-/, "")).join(", ")
          }`,
        );
      }
      const active = sub === "resume";
      for (const job of targets) {
        await sql`select cron.alter_job(${job.jobid}::bigint, active := ${active})`;
      }
      rows = await jobs(sql);
    }
    printResult(json, rows, () =>
      table(rows.map((r) => ({
        job: r.jobname,
        schedule: r.schedule,
        active: r.active ? "yes" : "PAUSED",
        "last run": r.last_run_at,
        "last status": r.last_status,
        message: r.last_message ? oneLine(r.last_message, 50) : null,
      }))));
  });
}
