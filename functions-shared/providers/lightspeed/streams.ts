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
import { iso, isoOrNull } from "../common.ts";
import { lightspeedStatuses, statusFields } from "../order_status.ts";
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

/** A customer's fields, in the times of the API that sends it (2.0 lists, 1.0 webhooks). */
function customerFields<T extends z.ZodType>(time: T) {
  return {
    id: z.string().min(1),
    first_name: z.string().nullish(),
    last_name: z.string().nullish(),
    email: z.string().nullish(),
    phone: z.string().nullish(),
    mobile: z.string().nullish(),
    updated_at: time,
    deleted_at: time.nullish(),
  };
}

export const customerSchema = z.looseObject({ ...customerFields(timestamp), version });
export type Customer = z.output<typeof customerSchema>;

// ---------------------------------------------------------------------------------------------
// Webhook payloads: API 1.0 objects
//
// "The payload objects you'll find in webhook requests are the same as those you'll receive from
// API 1.0. So, for example, the product webhook should give you a product payload that's the same
// as if you requested /api/1.0/product/{id}." (x-series-api.lightspeedhq.com/docs/webhooks).
// API 1.0 writes times as "2017-12-06 04:53:17" (no offset; read as UTC), has no `version`, and
// may write amounts as strings; tests/fixtures/lightspeed/ holds the published examples.

/** "2017-12-06 04:53:17" (API 1.0, UTC) or RFC 3339, as ISO 8601 UTC; an issue otherwise. */
const v1Timestamp = z.string().transform((text, ctx) => {
  const v1 = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})$/.exec(text);
  const ms = v1 ? Date.parse(`${v1[1]}T${v1[2]}Z`) : Date.parse(text);
  if (Number.isNaN(ms) || (!v1 && !/[zZ]|[+-]\d{2}:?\d{2}$/.test(text))) {
    ctx.issues.push({
      code: "custom",
      message: 'expected an API 1.0 time ("2017-12-06 04:53:17") or RFC 3339 with an offset',
      input: text,
    });
    return z.NEVER;
  }
  return new Date(ms).toISOString();
});
const v1Amount = z.union([z.number(), z.string().regex(/^-?\d+(\.\d+)?$/)]);

export const webhookSaleSchema = z.looseObject({
  id: z.string().min(1),
  invoice_number: z.union([z.string(), z.number()]).nullish(),
  status: z.string().min(1),
  customer_id: z.string().nullish(),
  total_price: v1Amount.nullish(),
  sale_date: v1Timestamp.nullish(),
  created_at: v1Timestamp.nullish(),
  updated_at: v1Timestamp,
});

export const webhookCustomerSchema = z.looseObject(customerFields(v1Timestamp));

/**
 * What a webhook payload is, from its own (signed) fields: a sale carries its lines and register
 * (`register_sale_products`, `register_id`), a customer its `customer_code`; null when neither.
 */
export function payloadKind(body: unknown): "sale" | "customer" | null {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return null;
  if ("register_sale_products" in body || "register_id" in body) return "sale";
  if ("customer_code" in body) return "customer";
  return null;
}

/** The retailer a payload names: its own `retailer_id`, or its customer's. */
export function payloadRetailer(body: unknown): string | null {
  const of = (value: unknown) =>
    typeof value === "object" && value !== null && "retailer_id" in value &&
      typeof value.retailer_id === "string" && value.retailer_id !== ""
      ? value.retailer_id
      : null;
  if (typeof body !== "object" || body === null) return null;
  return of(body) ?? ("customer" in body ? of(body.customer) : null);
}

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

/** A JSON number (or API 1.0's decimal text) as exact decimal text, never rounded. */
function decimal(value: number | string | null | undefined): string | null {
  return value === null || value === undefined ? null : String(value);
}

function text(value: string | null | undefined): string | null {
  return value === null || value === undefined || value === "" ? null : value;
}

/** What mapping reads of a sale, whether API 2.0 (sync) or API 1.0 (webhook, times made ISO). */
export interface SaleFields {
  id: string;
  invoice_number?: string | number | null | undefined;
  status: string;
  customer_id?: string | null | undefined;
  total_price?: number | string | null | undefined;
  sale_date?: string | null | undefined;
  created_at?: string | null | undefined;
  updated_at: string;
}

/** What mapping reads of a customer, API 2.0 or API 1.0. */
export interface CustomerFields {
  id: string;
  first_name?: string | null | undefined;
  last_name?: string | null | undefined;
  email?: string | null | undefined;
  phone?: string | null | undefined;
  mobile?: string | null | undefined;
  updated_at: string;
  deleted_at?: string | null | undefined;
}

/**
 * A sale as an order. The status is the sale's own word (SAVED, CLOSED, ONACCOUNT, LAYBY,
 * VOIDED, AWAITING_DISPATCH, DISPATCHED_CLOSED, …). Sales carry no tracking number and no
 * currency (a retailer has one, outside the sale).
 */
export function toOrder(sale: SaleFields, raw: unknown = sale): OrderRecord {
  return {
    external_id: sale.id,
    order_number: sale.invoice_number === null || sale.invoice_number === undefined
      ? null
      : text(String(sale.invoice_number)),
    status: sale.status,
    provider_fulfillment_status: null,
    ...statusFields(lightspeedStatuses(sale.status), { updatedAt: iso(sale.updated_at) }),
    tracking_number: null,
    total_price: decimal(sale.total_price),
    currency: null,
    customer_external_id: text(sale.customer_id),
    ordered_at: isoOrNull(sale.sale_date ?? sale.created_at),
    remote_updated_at: iso(sale.updated_at),
    raw,
  };
}

/** A customer; one deleted at Lightspeed (`deleted_at` set) is inactive. */
export function toCustomer(customer: CustomerFields, raw: unknown = customer): CustomerRecord {
  return {
    external_id: customer.id,
    email: text(customer.email),
    first_name: text(customer.first_name),
    last_name: text(customer.last_name),
    phone: text(customer.phone) ?? text(customer.mobile),
    status: customer.deleted_at ? "inactive" : "active",
    remote_updated_at: iso(customer.updated_at),
    raw,
  };
}
