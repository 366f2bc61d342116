// The pg_net worker for one scratch database (a test's or a benchmark's), whichever pg_net the
// stack runs (stack.env's TETHER_PGNET):
// - the stand-in: a scripts/local/net_worker.ts of its own, one per database, in parallel;
// - the real pg_net: its one background worker serves the one database named by
//   pg_net.database_name (supabase/pg_net src/worker.c: BackgroundWorkerInitializeConnection with
//   that setting, read again by net.worker_restart()), `postgres` on the stack. So it is pointed
//   at this database for the time being (ALTER SYSTEM, restart, wait until it is connected there),
//   and back at `postgres` afterwards. A cluster-wide advisory lock makes the databases that want
//   it take turns, whatever process asks: with the real pg_net, what goes through the worker runs
//   one database at a time.
import postgres from "postgres";
import { type NetWorker, startNetWorker } from "./net_worker.ts";
import type { PgNetMode } from "./postgres.ts";

/** The advisory lock key of "the real pg_net worker serves my database" (any constant). */
const REAL_WORKER_LOCK = 7_424_365_001;

export interface NetWorkerTarget {
  /** The scratch database's name and URL. */
  name: string;
  url: string;
}

export interface NetWorkerForOptions {
  /** The stack's main database, where the real worker lives between scratch databases. */
  adminUrl: string;
  /** How long to wait for the real worker while other databases hold it. */
  waitMs?: number;
  log?: (line: string) => void;
  /** The stand-in's idle poll. */
  pollMs?: number;
}

export async function netWorkerFor(
  target: NetWorkerTarget,
  mode: PgNetMode,
  opts: NetWorkerForOptions,
): Promise<NetWorker> {
  if (mode === "standin") {
    return await startNetWorker({ databaseUrl: target.url, log: opts.log, pollMs: opts.pollMs });
  }
  return await followWith(target, opts);
}

/** Points the real pg_net worker at `target` until stop(), holding the lock meanwhile. */
async function followWith(target: NetWorkerTarget, opts: NetWorkerForOptions): Promise<NetWorker> {
  // One connection holds the session lock for the whole time; it also runs the ALTER SYSTEMs.
  const admin = postgres(opts.adminUrl, { max: 1, onnotice: () => {} });
  try {
    await takeLock(admin, opts.waitMs ?? 15 * 60_000);
    await pointWorkerAt(admin, target.name);
  } catch (err) {
    await admin.end({ timeout: 2 });
    throw err;
  }
  opts.log?.(`net: the real pg_net worker serves ${target.name}`);
  return {
    async stop() {
      try {
        await admin.unsafe("alter system reset pg_net.database_name");
        await admin`select net.worker_restart()`;
      } finally {
        await admin.end({ timeout: 2 });
      }
    },
  };
}

async function takeLock(admin: postgres.Sql, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (true) {
    const [{ locked }] = await admin<[{ locked: boolean }]>`
      select pg_try_advisory_lock(${REAL_WORKER_LOCK}) as locked`;
    if (locked) return;
    if (Date.now() > deadline) {
      throw new Error(
        `the real pg_net worker was busy with other databases for ${waitMs / 1000} s ` +
          `(with the real pg_net, databases take turns; is one process holding two at once?)`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function pointWorkerAt(admin: postgres.Sql, database: string): Promise<void> {
  // ALTER SYSTEM takes no bind parameters; the name is ours (test_<hex>), quoted all the same.
  const literal = `'${database.replaceAll("'", "''")}'`;
  await admin.unsafe(`alter system set pg_net.database_name = ${literal}`);
  await admin`select net.worker_restart()`;
  const deadline = Date.now() + 30_000;
  while (true) {
    const [row] = await admin`
      select 1 from pg_stat_activity
       where backend_type ilike 'pg_net%worker' and datname = ${database}`;
    if (row) return;
    if (Date.now() > deadline) {
      throw new Error(`the real pg_net worker did not connect to ${database} within 30 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
