// tether.backfills and tether.backfill_records: creating a job (validated in SQL by
// tether.create_backfill, the same check start_backfill() makes), claiming it with a lease, the
// checkpoint written with each page, and the job's end: done, paused for the time budget (and
// continued through pg_net), failed with backoff, or stopped by a cancel.
import type { Sql, Tx } from "./client.ts";

export interface BackfillCheckpoint {
  window_start: string;
  window_end: string;
  cursor: string | null;
}

export interface BackfillRow {
  id: string;
  connection_id: string;
  stream: string;
  range_start: Date;
  range_end: Date;
  status: "pending" | "running" | "succeeded" | "failed" | "cancelled";
  checkpoint: Partial<BackfillCheckpoint>;
  window_seconds: number | null;
  windows_done: number;
  records_count: number;
  covered_until: Date | null;
  last_error: string | null;
  consecutive_failures: number;
}

/** Validates and creates a pending job; raises the SQL API's plain-words errors. */
export async function createBackfill(
  sql: Sql,
  b: { connection_id: string; stream: string; range_start: string; range_end: string },
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    select tether.create_backfill(${b.connection_id}, ${b.stream}, ${b.range_start},
                                  ${b.range_end}) as id`;
  return row!.id;
}

export async function getBackfill(sql: Sql | Tx, id: string): Promise<BackfillRow | undefined> {
  const [row] = await sql<BackfillRow[]>`select * from tether.backfills where id = ${id}`;
  return row;
}

/** Takes the job if it is pending or running and no live lease holds it. */
export async function claimBackfill(
  sql: Sql,
  o: { id: string; owner: string; now: Date; leaseSeconds: number },
): Promise<BackfillRow | undefined> {
  const [row] = await sql<BackfillRow[]>`
    with free as (
      select id from tether.backfills
       where id = ${o.id} and status in ('pending', 'running')
         and (lease_expires_at is null or lease_expires_at < ${o.now})
       for update skip locked
    )
    update tether.backfills b
       set status = 'running',
           lease_owner = ${o.owner},
           lease_expires_at = ${o.now}::timestamptz + make_interval(secs => ${o.leaseSeconds}),
           started_at = coalesce(b.started_at, ${o.now}),
           updated_at = now()
      from free
     where b.id = free.id
    returning b.*`;
  return row;
}

export type HoldState = "held" | "cancelled" | "lost";

/**
 * Inside a page's transaction: records what the page brought (once per backfill) and the new
 * checkpoint, and renews the lease — only while this worker holds the job and it is still
 * running. Otherwise says why not (a cancel, or another worker took over), and the caller rolls
 * the page back.
 */
export async function checkpointPage(
  tx: Tx,
  o: {
    id: string;
    owner: string;
    stream: string;
    externalIds: string[];
    checkpoint: BackfillCheckpoint;
    now: Date;
    leaseSeconds: number;
  },
): Promise<HoldState> {
  const rows = await tx<{ id: string }[]>`
    with held as (
      select id from tether.backfills
       where id = ${o.id} and lease_owner = ${o.owner} and status = 'running'
       for update
    ), linked as (
      insert into tether.backfill_records (backfill_id, stream, external_id)
      select held.id, ${o.stream}, e.external_id
        from held, jsonb_array_elements_text(${tx.json(o.externalIds)}) as e(external_id)
      on conflict do nothing
      returning 1
    )
    update tether.backfills b
       set checkpoint = ${tx.json(o.checkpoint as never)},
           records_count = b.records_count + (select count(*) from linked),
           consecutive_failures = 0,
           next_attempt_at = null,
           last_error = null,
           lease_expires_at = ${o.now}::timestamptz + make_interval(secs => ${o.leaseSeconds}),
           updated_at = now()
      from held
     where b.id = held.id
    returning b.id`;
  if (rows.length === 1) return "held";
  return await whyNotHeld(tx, o.id);
}

async function whyNotHeld(sql: Sql | Tx, id: string): Promise<HoldState> {
  const [row] = await sql<{ status: string }[]>`
    select status from tether.backfills where id = ${id}`;
  return row?.status === "cancelled" ? "cancelled" : "lost";
}

/** A window is done: the next starts at its end with no cursor, at the adapted size. */
export async function finishWindow(
  sql: Sql | Tx,
  o: {
    id: string;
    owner: string;
    coveredUntil: Date;
    next: BackfillCheckpoint | null;
    windowSeconds: number;
  },
): Promise<HoldState> {
  const rows = await sql`
    update tether.backfills
       set covered_until = ${o.coveredUntil},
           windows_done = windows_done + 1,
           window_seconds = ${o.windowSeconds},
           checkpoint = ${sql.json((o.next ?? {}) as never)},
           updated_at = now()
     where id = ${o.id} and lease_owner = ${o.owner} and status = 'running'
    returning 1`;
  return rows.length === 1 ? "held" : await whyNotHeld(sql, o.id);
}

/** Every window is done. */
export async function succeedBackfill(
  sql: Sql,
  o: { id: string; owner: string; now: Date },
): Promise<void> {
  await sql`
    update tether.backfills
       set status = 'succeeded', finished_at = ${o.now}, covered_until = range_end,
           lease_owner = null, lease_expires_at = null, last_error = null,
           consecutive_failures = 0, next_attempt_at = null, updated_at = now()
     where id = ${o.id} and lease_owner = ${o.owner} and status = 'running'`;
}

/**
 * The time budget is spent: release the lease and trigger the next invocation through pg_net, in
 * one transaction (docs/architecture.md rule 6). Returns false when the trigger could not be sent (Vault
 * not configured): the lease is released anyway and continue_backfills() picks the job up.
 */
export async function pauseAndContinue(
  sql: Sql,
  o: { id: string; owner: string },
): Promise<{ continued: boolean; error?: string }> {
  try {
    await sql.begin(async (tx) => {
      const rows = await tx`
        update tether.backfills set lease_owner = null, lease_expires_at = null, updated_at = now()
         where id = ${o.id} and lease_owner = ${o.owner} and status = 'running'
        returning 1`;
      if (rows.length === 1) {
        await tx`select tether.invoke_function('backfill',
                   jsonb_build_object('backfill_id', ${o.id}::uuid))`;
      }
    });
    return { continued: true };
  } catch (err) {
    await releaseLease(sql, o);
    return { continued: false, error: (err as Error).message };
  }
}

export async function releaseLease(sql: Sql, o: { id: string; owner: string }): Promise<void> {
  await sql`
    update tether.backfills set lease_owner = null, lease_expires_at = null, updated_at = now()
     where id = ${o.id} and lease_owner = ${o.owner}`;
}

/** Failures in a row before a job is given up as failed (each waits tether.backoff). */
export const MAX_BACKFILL_FAILURES = 10;

/**
 * The invocation failed: say why, keep the checkpoint, back off and release the lease;
 * continue_backfills() retries after next_attempt_at. After MAX_BACKFILL_FAILURES in a row, failed.
 */
export async function failBackfill(
  sql: Sql,
  o: {
    id: string;
    owner: string;
    now: Date;
    error: string;
    retryAfterMs?: number;
    /** Fails the job at once: trying again cannot help (the provider refuses the range). */
    final?: boolean;
  },
): Promise<void> {
  const final = o.final ?? false;
  await sql`
    update tether.backfills
       set consecutive_failures = consecutive_failures + 1,
           status = case when ${final} or consecutive_failures + 1 >= ${MAX_BACKFILL_FAILURES}
                         then 'failed' else status end,
           finished_at = case when ${final} or consecutive_failures + 1 >= ${MAX_BACKFILL_FAILURES}
                              then ${o.now}::timestamptz end,
           next_attempt_at = ${o.now}::timestamptz + tether.backoff(consecutive_failures + 1,
             make_interval(secs => ${(o.retryAfterMs ?? 0) / 1000})),
           last_error = ${o.error},
           lease_owner = null,
           lease_expires_at = null,
           updated_at = now()
     where id = ${o.id} and lease_owner = ${o.owner}`;
}
