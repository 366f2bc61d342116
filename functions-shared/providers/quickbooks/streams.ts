// QuickBooks Online data: what the v3 query endpoint sends for Invoice, SalesReceipt and Customer,
// how it maps to Tether's records, the query text, and the orders cursor.
//
// "GET …/v3/company/{realmId}/query?query=SELECT * FROM Customer WHERE
// Metadata.LastUpdatedTime > '<ISO>' ORDERBY Metadata.LastUpdatedTime STARTPOSITION 1
// MAXRESULTS 1000". Every stream is read in ascending LastUpdatedTime with the shared time
// cursor (../cursor.ts): each page is a fresh query `>= since AND <= until`, and STARTPOSITION is
// the provider token used when a whole page shares one second.

import { z } from "zod";
import { iso } from "../common.ts";
import { parseStoredCursor, readTimeCursor, type TimeCursor } from "../cursor.ts";
import { quickbooksStatuses, statusFields } from "../order_status.ts";
import { type CustomerRecord, type OrderRecord, ProviderError } from "../types.ts";

const PROVIDER = "quickbooks";

/** QuickBooks times carry the company's offset and whole seconds: `2026-11-22T02:15:30-08:00`. */
const timestamp = z.iso.datetime({ offset: true });
const metaData = z.looseObject({ CreateTime: timestamp.optional(), LastUpdatedTime: timestamp });
const ref = z.looseObject({ value: z.string().min(1), name: z.string().optional() });

/** Invoice and SalesReceipt share the fields Tether reads. */
export const transactionSchema = z.looseObject({
  Id: z.string().min(1),
  DocNumber: z.string().optional(),
  TxnDate: z.string().optional(),
  TotalAmt: z.number().optional(),
  Balance: z.number().optional(),
  CurrencyRef: ref.optional(),
  CustomerRef: ref.optional(),
  TrackingNum: z.string().optional(),
  PrivateNote: z.string().optional(),
  MetaData: metaData,
});
export type Transaction = z.output<typeof transactionSchema>;

export const customerSchema = z.looseObject({
  Id: z.string().min(1),
  GivenName: z.string().optional(),
  FamilyName: z.string().optional(),
  DisplayName: z.string().optional(),
  PrimaryEmailAddr: z.looseObject({ Address: z.string().optional() }).optional(),
  PrimaryPhone: z.looseObject({ FreeFormNumber: z.string().optional() }).optional(),
  Active: z.boolean(),
  MetaData: metaData,
});
export type Customer = z.output<typeof customerSchema>;

export const ORDER_ENTITIES = ["Invoice", "SalesReceipt"] as const;
export type OrderEntity = typeof ORDER_ENTITIES[number];
export type Entity = OrderEntity | "Customer";

// ---------------------------------------------------------------------------------------------
// Change Data Capture: how deletions reach Tether
//
// The query endpoint returns live entities only; a deleted Invoice or SalesReceipt is visible
// through CDC (developer.intuit.com …/api/accounting/all-entities/changedatacapture): "GET
// /v3/company/{realmId}/cdc?entities=Invoice,SalesReceipt&changedSince=<date-time>" answers
// `{"CDCResponse":[{"QueryResponse":[{"Invoice":[…],"startPosition","maxResults"},
// {"SalesReceipt":[…]}]}],"time":…}`, each entity's changes in its own QueryResponse element;
// "Objects deleted within the look-back period are returned after active objects" as
// `{"status":"Deleted","domain":"QBO","Id":"979","MetaData":{"LastUpdatedTime":…}}`; "Look-back
// time can be up to 30 days"; "A given CDC request returns a maximum of 1000 objects".
// tests/fixtures/quickbooks/cdc_response.json is the published sample.

/** "Look-back time can be up to 30 days"; asked a minute short of it, so clocks may differ. */
export const CDC_LOOKBACK_SECONDS = 30 * 24 * 3600 - 60;

export const deletedEntitySchema = z.looseObject({
  Id: z.string().min(1),
  status: z.literal("Deleted"),
  MetaData: z.looseObject({ LastUpdatedTime: timestamp }),
});
export type DeletedEntity = z.output<typeof deletedEntitySchema>;

/** A CDC entity: a deleted one (Id, status, MetaData only), or a live one Tether reads elsewhere. */
const cdcEntity = z.union([deletedEntitySchema, z.looseObject({ Id: z.string().min(1) })]);

export const cdcResponseSchema = z.object({
  CDCResponse: z.array(z.object({
    QueryResponse: z.array(z.looseObject({
      Invoice: z.array(cdcEntity).optional(),
      SalesReceipt: z.array(cdcEntity).optional(),
    })).optional(),
  })),
});

/** The deletions of a CDC answer, per order entity, and how many objects it held in all. */
export function cdcDeletions(
  data: z.output<typeof cdcResponseSchema>,
): { deleted: { entity: OrderEntity; record: DeletedEntity }[]; objects: number } {
  const deleted: { entity: OrderEntity; record: DeletedEntity }[] = [];
  let objects = 0;
  for (const response of data.CDCResponse) {
    for (const query of response.QueryResponse ?? []) {
      for (const entity of ORDER_ENTITIES) {
        for (const e of query[entity] ?? []) {
          objects++;
          if ("status" in e && e.status === "Deleted") {
            deleted.push({ entity, record: e as DeletedEntity });
          }
        }
      }
    }
  }
  return { deleted, objects };
}

/**
 * `{"QueryResponse": {"<Entity>": […], "startPosition", "maxResults"}}`; QuickBooks sends an
 * empty `QueryResponse` when nothing matches.
 */
export function queryResponseSchema<S extends z.ZodType>(entity: Entity, record: S) {
  return z.object({
    QueryResponse: z.object({ [entity]: z.array(record).optional() }),
  });
}

// ---------------------------------------------------------------------------------------------
// Query text

/**
 * A time as the query language takes it: whole seconds with an explicit offset. Rounding down
 * only widens `>= since` and `<= until` to the whole second LastUpdatedTime has anyway.
 */
export function queryTime(at: Date | string): string {
  const ms = typeof at === "string" ? Date.parse(at) : at.getTime();
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "+00:00");
}

/**
 * One page of an entity's changes in (since, until], oldest first. Customers include inactive
 * ones (QuickBooks' "deleted"), which a plain query leaves out.
 */
export function changesQuery(
  entity: Entity,
  window: { since: string | null; until: Date },
  page: { start: number; max: number },
): string {
  const where = [
    ...(entity === "Customer" ? ["Active IN (true, false)"] : []),
    ...(window.since === null ? [] : [`Metadata.LastUpdatedTime >= '${queryTime(window.since)}'`]),
    `Metadata.LastUpdatedTime <= '${queryTime(window.until)}'`,
  ];
  return `SELECT * FROM ${entity} WHERE ${where.join(" AND ")} ORDERBY Metadata.LastUpdatedTime` +
    ` STARTPOSITION ${page.start} MAXRESULTS ${page.max}`;
}

/** The STARTPOSITION a time cursor's `after` token names (1 without one). */
export function startPosition(cursor: TimeCursor): number {
  if (cursor.after === undefined) return 1;
  if (/^[1-9]\d*$/.test(cursor.after)) return Number(cursor.after);
  throw new ProviderError(
    PROVIDER,
    "misconfigured",
    'quickbooks stored sync cursor: field "after": expected a STARTPOSITION (a positive integer)',
  );
}

// ---------------------------------------------------------------------------------------------
// The orders cursor
//
// Orders are two entities, each read with its own time cursor, and their deletions. A read takes
// Invoice to the end, then SalesReceipt, then the deletions of both (one CDC call), then stops:
// `{"reading": "SalesReceipt", "Invoice": {"since": …}, "SalesReceipt": {"since": …, "after": …},
// "Deleted": {"since": …}}`. Each cursor only ever covers what was stored for it, so none can skip
// changes of another; when the read is done all stand at `until` minus the overlap (or where they
// were, if later) and `reading` is back at Invoice for the next run. A cursor stored before
// deletions were read has no `Deleted`: it starts where the invoices stand.

export const ORDER_PHASES = [...ORDER_ENTITIES, "Deleted"] as const;
export type OrderPhase = typeof ORDER_PHASES[number];

const ordersCursorSchema = z.strictObject({
  reading: z.enum(ORDER_PHASES),
  Invoice: z.unknown(),
  SalesReceipt: z.unknown(),
  Deleted: z.unknown().optional(),
});

export interface OrdersCursor {
  reading: OrderPhase;
  Invoice: TimeCursor;
  SalesReceipt: TimeCursor;
  Deleted: TimeCursor;
}

export function readOrdersCursor(cursor: string | null, from: Date | null): OrdersCursor {
  if (cursor === null) {
    const start = readTimeCursor(PROVIDER, null, from);
    return { reading: "Invoice", Invoice: start, SalesReceipt: start, Deleted: start };
  }
  const parsed = parseStoredCursor(PROVIDER, ordersCursorSchema, cursor);
  const invoice = readTimeCursor(PROVIDER, JSON.stringify(parsed.Invoice ?? null), null);
  return {
    reading: parsed.reading,
    Invoice: invoice,
    SalesReceipt: readTimeCursor(PROVIDER, JSON.stringify(parsed.SalesReceipt ?? null), null),
    Deleted: parsed.Deleted === undefined
      ? { since: invoice.since }
      : readTimeCursor(PROVIDER, JSON.stringify(parsed.Deleted), null),
  };
}

// ---------------------------------------------------------------------------------------------
// Mapping

function text(value: string | undefined): string | null {
  return value === undefined || value === "" ? null : value;
}

/**
 * QuickBooks has no order status; Tether names the transaction's state: "Voided" (QuickBooks
 * voids by zeroing the amounts and writing "Voided" in the memo), "Open" (a balance is due),
 * else "Paid" (a sales receipt is paid when made).
 */
export function transactionStatus(t: Transaction): string {
  if (isVoided(t)) return "Voided";
  return (t.Balance ?? 0) > 0 ? "Open" : "Paid";
}

function isVoided(t: Transaction): boolean {
  return t.TotalAmt === 0 && /^voided\b/i.test(t.PrivateNote ?? "");
}

/** An Invoice or SalesReceipt as an order, `Invoice:<Id>` / `SalesReceipt:<Id>`. */
export function toOrder(entity: OrderEntity, t: Transaction): OrderRecord {
  return {
    external_id: `${entity}:${t.Id}`,
    order_number: text(t.DocNumber),
    status: transactionStatus(t),
    provider_fulfillment_status: null,
    ...statusFields(
      quickbooksStatuses({ voided: isVoided(t), total: t.TotalAmt, balance: t.Balance }),
      { updatedAt: iso(t.MetaData.LastUpdatedTime) },
    ),
    tracking_number: text(t.TrackingNum),
    // A JSON number as exact decimal text: the digits as received, never rounded.
    total_price: t.TotalAmt === undefined ? null : String(t.TotalAmt),
    currency: t.CurrencyRef?.value ?? null,
    customer_external_id: t.CustomerRef?.value ?? null,
    ordered_at: t.MetaData.CreateTime === undefined ? null : iso(t.MetaData.CreateTime),
    remote_updated_at: iso(t.MetaData.LastUpdatedTime),
    raw: t,
  };
}

/**
 * A deleted Invoice or SalesReceipt, as CDC (or a "Delete" notification) states it: the row stays,
 * "Deleted", at the deletion's time. QuickBooks states nothing else about it any more (CDC's
 * deleted objects carry only Id, status and MetaData), so the other fields are left empty and
 * `raw` holds what was stated.
 */
export function toDeletedOrder(
  entity: OrderEntity,
  id: string,
  deletedAt: string,
  raw: unknown,
): OrderRecord {
  return {
    external_id: `${entity}:${id}`,
    order_number: null,
    status: DELETED,
    provider_fulfillment_status: null,
    ...statusFields(quickbooksStatuses({ deleted: true }), { updatedAt: iso(deletedAt) }),
    tracking_number: null,
    total_price: null,
    currency: null,
    customer_external_id: null,
    ordered_at: null,
    remote_updated_at: iso(deletedAt),
    raw,
  };
}

/** The status of an order deleted at QuickBooks. */
export const DELETED = "Deleted";

/** A customer, `<Id>`; an inactive one (QuickBooks' deletion) is "inactive". */
export function toCustomer(c: Customer): CustomerRecord {
  return {
    external_id: c.Id,
    email: text(c.PrimaryEmailAddr?.Address),
    first_name: text(c.GivenName),
    last_name: text(c.FamilyName),
    phone: text(c.PrimaryPhone?.FreeFormNumber),
    status: c.Active ? "active" : "inactive",
    remote_updated_at: iso(c.MetaData.LastUpdatedTime),
    raw: c,
  };
}
