// pg_cron's schedules as the scale bench replays them: the jobs Tether installs (sql/schedules.sql,
// read back from cron.job) and whether a five-field cron expression fires at a given minute.
// pg_cron evaluates schedules in GMT (citusdata/pg_cron README: "all times are in GMT"), so this
// does too.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import postgres from "postgres";
import { paths } from "../local/util.ts";

export interface CronJob {
  jobname: string;
  schedule: string;
  command: string;
}

/**
 * The tether-* jobs exactly as pg_cron holds them after sql/schedules.sql: the file is run in the
 * database where pg_cron lives and cron.job read back, in a transaction that is rolled back, so the
 * stack's own schedules are left as they were.
 */
export async function tetherCronJobs(cronDatabaseUrl: string): Promise<CronJob[]> {
  const file = await readFile(join(paths.root, "sql", "schedules.sql"), "utf8");
  const admin = postgres(cronDatabaseUrl, { max: 1, onnotice: () => {} });
  let jobs: CronJob[] = [];
  try {
    await admin.begin(async (tx) => {
      await tx.unsafe(file);
      jobs = await tx<CronJob[]>`
        select jobname, schedule, command from cron.job
         where jobname like 'tether-%' order by jobid`;
      throw new RolledBack();
    }).catch((err) => {
      if (!(err instanceof RolledBack)) throw err;
    });
  } finally {
    await admin.end();
  }
  if (jobs.length === 0) throw new Error("sql/schedules.sql installed no tether-* cron job");
  return jobs;
}

class RolledBack extends Error {}

/** Whether `schedule` (minute hour day-of-month month day-of-week) fires at `at` (GMT). */
export function cronFires(schedule: string, at: Date): boolean {
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== 5) throw new Error(`not a five-field cron schedule: ${schedule}`);
  const [minute, hour, dom, month, dow] = fields as [string, string, string, string, string];
  return fieldMatches(minute, at.getUTCMinutes(), 0, 59) &&
    fieldMatches(hour, at.getUTCHours(), 0, 23) &&
    fieldMatches(dom, at.getUTCDate(), 1, 31) &&
    fieldMatches(month, at.getUTCMonth() + 1, 1, 12) &&
    fieldMatches(dow, at.getUTCDay(), 0, 7, 7);
}

/** One field: `*`, `n`, `a-b`, each with an optional `/step`, comma-separated. */
function fieldMatches(field: string, value: number, min: number, max: number, alias?: number) {
  return field.split(",").some((part) => {
    const m = /^(\*|\d+(?:-\d+)?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new Error(`unsupported cron field ${JSON.stringify(field)}`);
    const [from, to] = m[1] === "*"
      ? [min, max]
      : m[1]!.split("-").map(Number) as [number, number?];
    const last = to ?? (m[2] === undefined ? from : max);
    const step = m[2] === undefined ? 1 : Number(m[2]);
    const hits = (v: number) => v >= from && v <= last && (v - from) % step === 0;
    return hits(value) || (alias !== undefined && value === 0 && hits(alias));
  });
}
