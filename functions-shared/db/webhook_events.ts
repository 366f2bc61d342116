// tether.webhook_events: every verified delivery's events, once per provider event id. A repeat
// inserts nothing (and is not processed again). A `received` event is processed after the answer,
// within a lease (next_attempt_at); one whose processing was cut off (its worker killed) is taken
// by the sweep when the lease has passed, and a failed event is retried by the sweep after
// tether.backoff.
import type { Sql } from "./client.ts";

export type WebhookStatus = "received" | "processed" | "ignored" | "failed";

export interface WebhookEventRow {
  id: string;
  provider: string;
  event_id: string;
  connection_id: string | null;
  topic: string | null;
  status: WebhookStatus;
  payload: unknown;
  attempts: number;
  /** When the delivery was received: the latest time its processing may write. */
  received_at: Date;
}

export interface NewWebhookEvent {
  provider: string;
  event_id: string;
  connection_id: string | null;
  topic: string | null;
  status: "received" | "ignored";
  payload: unknown;
  received_at: Date;
}

/**
 * How long the processing of an event may hold it (from its receipt, or from a sweep's claim)
 * before the sweep takes it as cut off. Well over what a worker can live: a job stops taking work
 * at its time budget (at most 140 s) and the Edge Runtime ends a background task at 150 s (free
 * plan) or 400 s (paid plans), supabase.com/docs/guides/functions/background-tasks; an event's
 * own processing is one or two provider calls, each under their own timeout.
 */
export const PROCESSING_LEASE_SECONDS = 300;

/**
 * Inserts the event unless its id was seen before; the row when new, undefined for a repeat. A
 * `received` event is leased to its receiver for PROCESSING_LEASE_SECONDS.
 */
export async function recordEvent(
  sql: Sql,
  e: NewWebhookEvent,
): Promise<WebhookEventRow | undefined> {
  const [row] = await sql<WebhookEventRow[]>`
    insert into tether.webhook_events (provider, event_id, connection_id, topic, status, payload,
                                       received_at, processed_at, next_attempt_at)
    values (${e.provider}, ${e.event_id}, ${e.connection_id}, ${e.topic}, ${e.status},
            ${sql.json(e.payload as never)}, ${e.received_at},
            ${e.status === "ignored" ? e.received_at : null},
            ${
    e.status === "received" ? sql`now() + make_interval(secs => ${PROCESSING_LEASE_SECONDS})` : null
  })
    on conflict (provider, event_id) do nothing
    returning id::text, provider, event_id, connection_id, topic, status, payload, attempts,
              received_at`;
  return row;
}

export async function markProcessed(sql: Sql, id: string): Promise<void> {
  await sql`
    update tether.webhook_events
       set status = 'processed', attempts = attempts + 1, processed_at = now(),
           next_attempt_at = null, last_error = null
     where id = ${id}`;
}

/** An event nothing can process any more (its connection is gone): kept, with the reason. */
export async function markIgnored(sql: Sql, id: string, reason: string): Promise<void> {
  await sql`
    update tether.webhook_events
       set status = 'ignored', attempts = attempts + 1, processed_at = now(),
           next_attempt_at = null, last_error = ${reason}
     where id = ${id}`;
}

export async function markFailed(sql: Sql, id: string, error: string): Promise<void> {
  await sql`
    update tether.webhook_events
       set status = 'failed', attempts = attempts + 1,
           next_attempt_at = now() + tether.backoff(attempts + 1),
           last_error = ${error.slice(0, 1000)}
     where id = ${id}`;
}

/**
 * Claims the events the sweep must process, with SKIP LOCKED: failed ones whose retry time has
 * come (any failed one with `force`), and received ones whose processing lease has passed (their
 * receiver was cut off; `force` does not take one still leased, whose receiver may be at work).
 * The claim pushes next_attempt_at out by PROCESSING_LEASE_SECONDS so a concurrent sweep skips
 * them.
 */
export async function claimDue(
  sql: Sql,
  o: { limit: number; force?: boolean },
): Promise<WebhookEventRow[]> {
  return await sql<WebhookEventRow[]>`
    with due as (
      select id from tether.webhook_events
       where (status = 'failed'
              and (${o.force ?? false} or coalesce(next_attempt_at, '-infinity') <= now()))
          or (status = 'received' and coalesce(next_attempt_at, '-infinity') <= now())
       order by next_attempt_at nulls first, id
       limit ${o.limit}
       for update skip locked
    )
    update tether.webhook_events e
       set next_attempt_at = now() + make_interval(secs => ${PROCESSING_LEASE_SECONDS})
      from due
     where e.id = due.id
    returning e.id::text, e.provider, e.event_id, e.connection_id, e.topic, e.status, e.payload,
              e.attempts, e.received_at`;
}
