// tether.invocations: one row per asynchronous function call, answered 202 and worked after.
import type { Sql } from "./client.ts";

export async function openInvocation(sql: Sql, functionName: string, at: Date): Promise<string> {
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
