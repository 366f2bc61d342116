// tether.runs: one row per refresh, sync run, backfill slice or webhook batch.
import type { Sql, Tx } from "./client.ts";

export interface RunRecord {
  connection_id: string | null;
  kind: "refresh" | "sync" | "backfill" | "webhook";
  stream?: string | null;
  backfill_id?: string | null;
  status: "running" | "succeeded" | "failed" | "skipped";
  started_at: Date;
  finished_at?: Date | null;
  added_count?: number;
  updated_count?: number;
  unchanged_count?: number;
  error_count?: number;
  pages_count?: number;
  error?: string | null;
  details?: Record<string, unknown>;
}

export async function insertRun(sql: Sql | Tx, r: RunRecord): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into tether.runs (connection_id, kind, stream, backfill_id, status, started_at,
      finished_at, added_count, updated_count, unchanged_count, error_count, pages_count,
      error, details)
    values (${r.connection_id}, ${r.kind}, ${r.stream ?? null}, ${r.backfill_id ?? null},
      ${r.status}, ${r.started_at}, ${r.finished_at ?? null}, ${r.added_count ?? 0},
      ${r.updated_count ?? 0}, ${r.unchanged_count ?? 0}, ${r.error_count ?? 0},
      ${r.pages_count ?? 0}, ${r.error ?? null}, ${sql.json((r.details ?? {}) as never)})
    returning id`;
  return row!.id;
}

export interface RunOutcome {
  status: "succeeded" | "failed";
  finished_at: Date;
  added_count: number;
  updated_count: number;
  unchanged_count: number;
  error_count: number;
  pages_count: number;
  error: string | null;
  details: Record<string, unknown>;
}

/** Closes a run opened with status "running". */
export async function finishRun(sql: Sql | Tx, id: string, o: RunOutcome): Promise<void> {
  await sql`
    update tether.runs
       set status = ${o.status}, finished_at = greatest(${o.finished_at}, started_at),
           added_count = ${o.added_count}, updated_count = ${o.updated_count},
           unchanged_count = ${o.unchanged_count}, error_count = ${o.error_count},
           pages_count = ${o.pages_count}, error = ${o.error},
           details = details || ${sql.json(o.details as never)}
     where id = ${id}`;
}

/**
 * Runs of a sync stream or of a backfill still marked running belong to a worker that died (the
 * caller holds the lease now): they failed.
 */
export async function failInterruptedRuns(
  sql: Sql,
  key:
    | { kind: "sync"; connectionId: string; stream: string }
    | { kind: "backfill"; backfillId: string },
  now: Date,
): Promise<number> {
  const rows = await sql`
    update tether.runs
       set status = 'failed', finished_at = greatest(${now}, started_at),
           error = 'interrupted: the worker stopped before finishing (its lease expired); the next run resumed from the last checkpoint'
     where kind = ${key.kind} and status = 'running'
       and ${
    key.kind === "sync"
      ? sql`connection_id = ${key.connectionId} and stream = ${key.stream}`
      : sql`backfill_id = ${key.backfillId}`
  }
    returning 1`;
  return rows.length;
}
