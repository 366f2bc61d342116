// Lightspeed X-Series data: what API 2.0 sends for sales and customers, how it maps to Tether's
// records, and the version cursor.
//
// "GET /api/2.0/{sales|customers}?after=<version>&page_size=N → {"data":[…], "version":{"min":…,
// "max":…}}; next page after=version.max; stop on empty data. `version` is a monotonically
// increasing change counter, so it is the natural cursor." A change made while a run reads gets a
// higher version than any read so far, so the cursor can follow `version.max` to the end without
// skipping anything: there is no clock involved, and no overlap is needed.

import { z } from "zod";
import { parseStoredCursor } from "../cursor.ts";
import type { CustomerRecord, OrderRecord } from "../types.ts";

const PROVIDER = "lightspeed";

/** RFC 3339 with an offset, as API 2.0 writes every timestamp (`2026-11-22T10:15:30+00:00`). */
const timestamp = z.iso.datetime({ offset: true });
const version = z.number().int().nonnegative();

export const saleSchema = z.looseObject({
  id: z.string().min(1),
  invoice_number: z.string().nullish(),
  status: z.string().min(1),
  customer_id: z.string().nullish(),
  total_price: z.number().nullish(),
  sale_date: timestamp.nullish(),
  created_at: timestamp.nullish(),
  updated_at: timestamp,
  version,
});
export type Sale = z.output<typeof saleSchema>;

export const customerSchema = z.looseObject({
  id: z.string().min(1),
  first_name: z.string().nullish(),
  last_name: z.string().nullish(),
  email: z.string().nullish(),
  phone: z.string().nullish(),
  mobile: z.string().nullish(),
  updated_at: timestamp,
  deleted_at: timestamp.nullish(),
  version,
});
export type Customer = z.output<typeof customerSchema>;

/** One page of a version-paged list; `version` may be absent or null on the empty last page. */
export function pageSchema<S extends z.ZodType>(record: S) {
  return z.object({
    data: z.array(record),
    version: z.object({ min: version.nullish(), max: version.nullish() }).nullish(),
  });
}

// ---------------------------------------------------------------------------------------------
// Cursor

/**
 * `{"version": N}`: every change up to version N is stored. `from` is carried only through a
 * read that started from a date (a backfill): the list has no date filter, so such a read starts
 * at version 0 and drops records last updated before `from` on our side.
 */
const versionCursorSchema = z.strictObject({
  version,
  from: z.iso.datetime({ offset: true }).optional(),
});
export type VersionCursor = z.output<typeof versionCursorSchema>;

export function readVersionCursor(cursor: string | null, from: Date | null): VersionCursor {
  if (cursor === null) {
    return from === null ? { version: 0 } : { version: 0, from: from.toISOString() };
  }
  return parseStoredCursor(PROVIDER, versionCursorSchema, cursor);
}

/**
 * Where the next page starts: after `version.max` (or the newest record's version when the
 * response leaves it out); unchanged after the empty page that ends the read.
 */
export function nextVersionCursor(
  cursor: VersionCursor,
  records: readonly { version: number }[],
  pageMax: number | null | undefined,
): { cursor: VersionCursor; hasMore: boolean } {
  if (records.length === 0) return { cursor: { version: cursor.version }, hasMore: false };
  const newest = Math.max(pageMax ?? 0, ...records.map((r) => r.version));
  return { cursor: { ...cursor, version: Math.max(cursor.version, newest) }, hasMore: true };
}

/** Records of a read from a date keep only changes at or after it. */
export function changedSince<R extends { updated_at: string }>(
  records: R[],
  cursor: VersionCursor,
): R[] {
  if (cursor.from === undefined) return records;
  const from = Date.parse(cursor.from);
  return records.filter((r) => Date.parse(r.updated_at) >= from);
}

// ---------------------------------------------------------------------------------------------
// Mapping

function iso(text: string): string;
function iso(text: string | null | undefined): string | null;
function iso(text: string | null | undefined): string | null {
  return text === null || text === undefined ? null : new Date(text).toISOString();
}

/** A JSON number as exact decimal text: the digits as received, never rounded. */
function decimal(value: number | null | undefined): string | null {
  return value === null || value === undefined ? null : String(value);
}

function text(value: string | null | undefined): string | null {
  return value === null || value === undefined || value === "" ? null : value;
}

/**
 * A sale as an order. The status is the sale's own word (SAVED, CLOSED, ONACCOUNT, LAYBY,
 * VOIDED, AWAITING_DISPATCH, DISPATCHED_CLOSED, …). Sales carry no tracking number and no
 * currency (a retailer has one, outside the sale).
 */
export function toOrder(sale: Sale): OrderRecord {
  return {
    external_id: sale.id,
    order_number: text(sale.invoice_number),
    status: sale.status,
    fulfillment_status: null,
    tracking_number: null,
    total_price: decimal(sale.total_price),
    currency: null,
    customer_external_id: text(sale.customer_id),
    ordered_at: iso(sale.sale_date ?? sale.created_at),
    remote_updated_at: iso(sale.updated_at),
    raw: sale,
  };
}

/** A customer; one deleted at Lightspeed (`deleted_at` set) is inactive. */
export function toCustomer(customer: Customer): CustomerRecord {
  return {
    external_id: customer.id,
    email: text(customer.email),
    first_name: text(customer.first_name),
    last_name: text(customer.last_name),
    phone: text(customer.phone) ?? text(customer.mobile),
    status: customer.deleted_at ? "inactive" : "active",
    remote_updated_at: iso(customer.updated_at),
    raw: customer,
  };
}
