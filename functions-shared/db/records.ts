// tether.orders and tether.customers: one newer-wins upsert statement per page
// (tether.upsert_orders / tether.upsert_customers, see the sync migration).
import type { Sql, Tx } from "./client.ts";
import type { StreamName, StreamRecords, WebhookProcessSink } from "../providers/types.ts";

export interface UpsertCounts {
  added: number;
  updated: number;
  unchanged: number;
}

/**
 * Writes a page of records for one connection. A record that appears twice in the page is written
 * once, its newest version (a provider may list a record again when it changed mid-read).
 */
export async function upsertRecords<S extends StreamName>(
  sql: Sql | Tx,
  stream: S,
  connectionId: string,
  records: readonly StreamRecords[S][],
): Promise<UpsertCounts> {
  if (records.length === 0) return { added: 0, updated: 0, unchanged: 0 };
  const newest = newestPerRecord(records);
  const payload = sql.json(newest as never);
  const [counts] = stream === "orders"
    ? await sql<
      UpsertCounts[]
    >`select * from tether.upsert_orders(${connectionId}, ${payload})`
    : await sql<UpsertCounts[]>`
        select * from tether.upsert_customers(${connectionId}, ${payload})`;
  return withDuplicates(counts!, records.length, newest.length);
}

/**
 * A sync page in one statement: its records upserted (as upsertRecords) and the stream's cursor
 * moved, only while `owner` holds the stream's lease: two round trips (postgres.js describes an
 * unprepared statement, then runs it) where BEGIN, the upsert, the checkpoint and COMMIT took six.
 * Undefined, with nothing written, when the lease is lost.
 */
export async function upsertSyncPage<S extends StreamName>(
  sql: Sql,
  key: { connectionId: string; stream: S; owner: string },
  records: readonly StreamRecords[S][],
  checkpoint: { cursor: string; now: Date; leaseSeconds: number },
): Promise<UpsertCounts | undefined> {
  const newest = newestPerRecord(records);
  const payload = sql.json(newest as never);
  const upsert = key.stream === "orders" ? sql`tether.upsert_orders` : sql`tether.upsert_customers`;
  // The cursor's update runs first: the records are written only if it found the lease held.
  const [row] = await sql<(UpsertCounts & { held: boolean })[]>`
    with held as (
      update tether.sync_cursors
         set cursor = ${checkpoint.cursor},
             lease_expires_at = ${checkpoint.now}::timestamptz
                                + make_interval(secs => ${checkpoint.leaseSeconds}),
             updated_at = now()
       where connection_id = ${key.connectionId} and stream = ${key.stream}
         and lease_owner = ${key.owner}
      returning 1
    )
    select w.added, w.updated, w.unchanged, exists (select from held) as held
      from ${upsert}(${key.connectionId},
                     case when exists (select from held) then ${payload} else '[]'::jsonb end) w`;
  if (!row!.held) return undefined;
  return withDuplicates(row!, records.length, newest.length);
}

/** The newest version of each record of a page, by remote_updated_at. */
function newestPerRecord<R extends { external_id: string; remote_updated_at: string }>(
  records: readonly R[],
): R[] {
  const newest = new Map<string, R>();
  for (const record of records) {
    const seen = newest.get(record.external_id);
    if (!seen || Date.parse(record.remote_updated_at) >= Date.parse(seen.remote_updated_at)) {
      newest.set(record.external_id, record);
    }
  }
  return [...newest.values()];
}

/** Duplicates within the page count as unchanged: they were not written twice. */
function withDuplicates(counts: UpsertCounts, listed: number, written: number): UpsertCounts {
  return {
    added: counts.added,
    updated: counts.updated,
    unchanged: counts.unchanged + listed - written,
  };
}

/** Applies order facts a notification states, newer-wins (tether.apply_order_facts). */
export async function applyOrderFacts(
  sql: Sql | Tx,
  connectionId: string,
  f: Parameters<WebhookProcessSink["applyOrderFacts"]>[0],
): Promise<void> {
  await sql`select tether.apply_order_facts(${connectionId}, ${f.externalId},
    ${f.orderNumber}, ${f.trackingNumber}, ${f.status}, ${f.fulfillmentStatus},
    ${f.shippingStatus}, ${f.canceledAt}, ${sql.json(f.raw as never)})`;
}
