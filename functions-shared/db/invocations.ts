// tether.invocations: one row per asynchronous function call, answered 202 and worked after.
import type { Sql } from "./client.ts";

/**
 * An invocation still running this long after it was accepted lost its worker: the platform's
 * longest wall clock is 400 s (supabase.com/docs/guides/functions/limits).
 */
const ABANDONED_AFTER = "10 minutes";

/** Records a new invocation; closes, as interrupted, those whose worker died before they ended. */
export async function openInvocation(sql: Sql, functionName: string, at: Date): Promise<string> {
  await sql`
    update tether.invocations
       set status = 'failed', finished_at = ${at},
           error = 'interrupted: the worker ended before the work did'
     where status = 'running' and accepted_at < ${at}::timestamptz - ${ABANDONED_AFTER}::interval`;
  const [row] = await sql<{ id: string }[]>`
    insert into tether.invocations (function_name, accepted_at)
    values (${functionName}, ${at})
    returning id`;
  return row!.id;
}

export type InvocationOutcome =
  | { status: "succeeded"; finishedAt: Date; result: unknown }
  | { status: "failed"; finishedAt: Date; error: string };

export async function closeInvocation(
  sql: Sql,
  id: string,
  outcome: InvocationOutcome,
): Promise<void> {
  const result = outcome.status === "succeeded" ? outcome.result ?? null : null;
  await sql`
    update tether.invocations
       set status = ${outcome.status},
           finished_at = greatest(${outcome.finishedAt}, accepted_at),
           result = ${result === null ? null : sql.json(result as never)},
           error = ${outcome.status === "failed" ? outcome.error : null}
     where id = ${id}`;
}
