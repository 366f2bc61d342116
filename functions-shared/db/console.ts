// What the web console reads, run as the person asking. A signed-in user's queries run the way
// PostgREST runs a Data API request: one transaction, read only for a read, the user's role set
// locally ("User Impersonation", docs.postgrest.org/en/v13/references/auth.html) and the verified
// JWT's claims in the transaction-scoped setting `request.jwt.claims`
// (docs.postgrest.org/en/v12/references/transactions.html), so auth.uid() is the user and the
// tables' RLS policies decide what the reads return (owner_id = auth.uid()). An operator (secret key or service_role JWT) reads as the
// functions' own role: everything. Nothing here reads credentials, configs or webhook payloads.
import type { Sql, Tx } from "./client.ts";

export type Viewer =
  | { kind: "operator" }
  | { kind: "user"; userId: string; claims: Record<string, unknown> };

/** Runs `work` in one transaction as the viewer: under RLS for a user. */
export async function asViewer<T>(
  sql: Sql,
  viewer: Viewer,
  work: (tx: Tx) => Promise<T>,
): Promise<T> {
  return await sql.begin(async (tx) => {
    if (viewer.kind === "user") {
      await tx`set transaction read only`;
      await tx`select set_config('role', 'authenticated', true),
                      set_config('request.jwt.claims', ${JSON.stringify(viewer.claims)}, true)`;
    }
    return await work(tx);
  }) as T;
}

export interface ConsoleConnection {
  id: string;
  provider: string;
  name: string;
  external_id: string;
  owner_id: string | null;
  status: string;
  token_expires_at: Date | null;
  last_token_refresh_at: Date | null;
  orders_last_synced_at: Date | null;
  customers_last_synced_at: Date | null;
  orders: number;
  customers: number;
  last_error: string | null;
  last_error_at: Date | null;
  next_attempt_at: Date | null;
  backfill_id: string | null;
  backfill_stream: string | null;
  backfill_status: string | null;
  backfill_percent: number | null;
  backfill_records_count: number | null;
}

const CONNECTION_COLUMNS = (tx: Tx) =>
  tx`h.id, h.provider, h.name, h.external_id, h.owner_id, h.status, h.token_expires_at,
     h.last_token_refresh_at, h.orders_last_synced_at, h.customers_last_synced_at,
     (select count(*) from public.tether_orders o where o.connection_id = h.id)::int as orders,
     (select count(*) from public.tether_customers c where c.connection_id = h.id)::int
       as customers,
     h.last_error, h.last_error_at, h.next_attempt_at, h.backfill_id, h.backfill_stream,
     h.backfill_status, h.backfill_percent::float8 as backfill_percent,
     h.backfill_records_count`;

/** Every connection the viewer may see, with its health (public.tether_connection_health). */
export async function listConnections(tx: Tx): Promise<ConsoleConnection[]> {
  return await tx<ConsoleConnection[]>`
    select ${CONNECTION_COLUMNS(tx)}
      from public.tether_connection_health h
     order by h.provider, h.name, h.id`;
}

/** One connection the viewer may see; undefined when RLS hides it or it does not exist. */
export async function visibleConnection(
  tx: Tx,
  id: string,
): Promise<ConsoleConnection | undefined> {
  const [row] = await tx<ConsoleConnection[]>`
    select ${CONNECTION_COLUMNS(tx)}
      from public.tether_connection_health h where h.id = ${id}`;
  return row;
}

export interface ConsoleRun {
  id: string;
  kind: string;
  stream: string | null;
  status: string;
  started_at: Date;
  finished_at: Date | null;
  added: number;
  updated: number;
  pages: number;
  error: string | null;
}

export interface ConsoleWebhookEvent {
  id: string;
  topic: string | null;
  status: string;
  attempts: number;
  received_at: Date;
  processed_at: Date | null;
  last_error: string | null;
}

export interface ConsoleBackfill {
  id: string;
  stream: string;
  range_start: Date;
  range_end: Date;
  status: string;
  windows_done: number;
  records_count: number;
  percent: number | null;
  last_error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

export interface ConnectionActivity {
  runs: ConsoleRun[];
  webhook_events: ConsoleWebhookEvent[];
  backfills: ConsoleBackfill[];
  /** Failed runs, newest first: the error history. */
  errors: ConsoleRun[];
}

/** A connection's recent runs, webhook events, backfills and failures, as the viewer may see. */
export async function connectionActivity(
  tx: Tx,
  id: string,
  limit = 20,
): Promise<ConnectionActivity> {
  const runColumns = tx`r.id::text as id, r.kind, r.stream, r.status, r.started_at,
    r.finished_at, r.added_count as added, r.updated_count as updated, r.pages_count as pages,
    r.error`;
  const runs = await tx<ConsoleRun[]>`
    select ${runColumns} from public.tether_runs r where r.connection_id = ${id}
     order by r.started_at desc, r.id desc limit ${limit}`;
  const errors = await tx<ConsoleRun[]>`
    select ${runColumns} from public.tether_runs r
     where r.connection_id = ${id} and r.status = 'failed'
     order by r.started_at desc, r.id desc limit ${limit}`;
  const webhook_events = await tx<ConsoleWebhookEvent[]>`
    select w.id::text as id, w.topic, w.status, w.attempts, w.received_at, w.processed_at,
           w.last_error
      from tether.webhook_events w where w.connection_id = ${id}
     order by w.received_at desc, w.id desc limit ${limit}`;
  const backfills = await tx<ConsoleBackfill[]>`
    select b.id, b.stream, b.range_start, b.range_end, b.status, b.windows_done, b.records_count,
           case when b.status = 'succeeded' then 100.0
                when b.range_end <= b.range_start then null
                else round(100.0 * extract(epoch from (coalesce(b.covered_until, b.range_start)
                       - b.range_start)) / extract(epoch from (b.range_end - b.range_start)), 1)
           end::float8 as percent,
           b.last_error, b.created_at, b.finished_at
      from public.tether_backfills b where b.connection_id = ${id}
     order by b.created_at desc limit ${limit}`;
  return { runs, webhook_events, backfills, errors };
}

/** The backfill's connection when the viewer may see the backfill; undefined otherwise. */
export async function visibleBackfill(
  tx: Tx,
  id: string,
): Promise<{ connection_id: string } | undefined> {
  const [row] = await tx<{ connection_id: string }[]>`
    select b.connection_id from public.tether_backfills b where b.id = ${id}`;
  return row;
}

/** Who owns the connection of this provider and account, if it exists (any owner). */
export async function ownerOfAccount(
  sql: Sql,
  provider: string,
  externalId: string,
): Promise<{ owner_id: string | null } | undefined> {
  const [row] = await sql<{ owner_id: string | null }[]>`
    select owner_id from tether.connections
     where provider = ${provider} and external_id = ${externalId}`;
  return row;
}

/** public.start_backfill(): validates, creates the job and triggers the backfill function. */
export async function startBackfillSql(
  sql: Sql,
  b: { connection_id: string; stream: string; range_start: string; range_end: string },
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    select public.start_backfill(${b.connection_id}, ${b.stream}, ${b.range_start},
                                 ${b.range_end}) as id`;
  return row!.id;
}

/** public.cancel_backfill(): the job's status after the call ('cancelled' or how it ended). */
export async function cancelBackfillSql(sql: Sql, id: string): Promise<string> {
  const [row] = await sql<{ status: string }[]>`select public.cancel_backfill(${id}) as status`;
  return row!.status;
}

/** public.disconnect_connection(): records the request and calls the disconnect function. */
export async function disconnectSql(
  sql: Sql,
  d: { connection_id: string; delete_records: boolean; revoke: boolean },
): Promise<string> {
  const [row] = await sql<{ request_id: string }[]>`
    select public.disconnect_connection(${d.connection_id}, ${d.delete_records}, ${d.revoke})::text
           as request_id`;
  return row!.request_id;
}
