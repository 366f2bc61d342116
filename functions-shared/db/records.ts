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
  const newest = new Map<string, StreamRecords[S]>();
  for (const record of records) {
    const seen = newest.get(record.external_id);
    if (!seen || Date.parse(record.remote_updated_at) >= Date.parse(seen.remote_updated_at)) {
      newest.set(record.external_id, record);
    }
  }
  const payload = sql.json([...newest.values()] as never);
  const [counts] = stream === "orders"
    ? await sql<
      UpsertCounts[]
    >`select * from tether.upsert_orders(${connectionId}, ${payload})`
    : await sql<UpsertCounts[]>`
        select * from tether.upsert_customers(${connectionId}, ${payload})`;
  // Duplicates within the page count as unchanged: they were not written twice.
  return { ...counts!, unchanged: counts!.unchanged + records.length - newest.size };
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
