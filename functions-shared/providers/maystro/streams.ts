// Maystro data: what the orders list sends, how it maps to Tether's orders, and the walk cursor.
//
// "GET /api/stores/orders/?page=N → {"list":{"count", "next", "results":[…]}} (about 20 per
// page); filters external_order_id=, display_id=; no updated-since filter is known, so
// incremental sync walks pages newest-first and stops at the cursor." Pages are ordered by
// created_at, not by last change, so a walk cannot stop at "the last change we saw": an old order
// changes too (it gets its tracking number days later — "a sync that only looks at orders that
// already have a tracking number never sees new ones"). The cursor is therefore a watermark on
// created_at below which every order is final (see `nextWatermark`), and each run re-reads every
// order created since then.

import { z } from "zod";
import { parseStoredCursor, SYNC_OVERLAP_SECONDS } from "../cursor.ts";
import { maystroStatuses, statusFields } from "../order_status.ts";
import type { OrderRecord } from "../types.ts";

const PROVIDER = "maystro";

/** "Status codes (as client code cites them)": the status Tether stores is the name. */
export const STATUS_NAMES: Readonly<Record<number, string>> = {
  4: "created",
  5: "pickup_requested",
  6: "in_progress",
  8: "awaiting_transit",
  9: "in_transit_to_ship",
  10: "in_transit_for_return",
  11: "on_hold",
  12: "out_of_stock",
  15: "ready_to_ship",
  22: "assigned",
  31: "shipped",
  32: "alerted",
  41: "delivered",
  42: "postponed",
  50: "cancelled",
  51: "ready_to_return",
  52: "taken_by_store",
  53: "not_received",
};

/** Statuses after which Maystro changes nothing: 41 delivered, 50 cancelled, 52 taken by store. */
const FINAL_STATUSES: ReadonlySet<number> = new Set([41, 50, 52]);
/** Final without a tracking number: an order cancelled before it was shipped never gets one. */
const FINAL_UNTRACKED: ReadonlySet<number> = new Set([50]);

export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? `status_${code}`;
}

// ---------------------------------------------------------------------------------------------
// What the list sends (no documentation: tolerant where clients disagree)

/**
 * Django's timestamps: `2026-11-22T11:15:30.123456+01:00` (microseconds, an offset; a space in
 * place of the T is accepted too).
 */
const DJANGO_TIME =
  /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/;
const djangoTime = z.string().regex(DJANGO_TIME, "expected an ISO 8601 date-time with an offset");

/** A Django timestamp as ISO 8601 in UTC at millisecond precision (microseconds truncated). */
export function normalizeTime(text: string): string {
  const m = DJANGO_TIME.exec(text);
  if (!m) throw new Error(`not a Django timestamp: ${text}`);
  const millis = (m[3] ?? "").slice(0, 3).padEnd(3, "0");
  const zone = m[4] === "Z" ? "Z" : `${m[4]!.slice(0, 3)}:${m[4]!.slice(-2)}`;
  return new Date(`${m[1]}T${m[2]}.${millis}${zone}`).toISOString();
}

const integer = z.union([z.number().int(), z.string().regex(/^-?\d+$/, "expected an integer")]);

/** An identifier as clients see it: text (`id: string`), a number accepted and kept as text. */
const text = z.union([z.string(), z.number()]).transform(String);

/**
 * One order of the list. Only what places it and names it is required (its times, and an
 * identity); every other field is taken as it comes, so one odd row never fails a page. Ids are
 * text: the one client that types the order says `id: string` and that `instance_uuid` "is the
 * actual Maystro order ID" (MaystroService, code-index id 9906604906).
 */
export const orderSchema = z.looseObject({
  id: text.nullish(),
  instance_uuid: text.nullish(),
  display_id: text.nullish(),
  /** The carrier's tracking number where Maystro sends one; `display_id` otherwise (same client). */
  tracking_number: text.nullish(),
  external_order_id: text.nullish(),
  status: z.union([integer, z.string()]).nullish(),
  created_at: djangoTime,
  last_update: djangoTime,
  product_price: z.union([z.number(), z.string()]).nullish(),
}).refine(
  (o) => [o.external_order_id, o.instance_uuid, o.id].some((v) => v != null && v.trim() !== ""),
  "expected an external_order_id, an instance_uuid or an id",
);
export type Order = z.output<typeof orderSchema>;

export const pageSchema = z.object({
  list: z.object({
    count: z.number().int().optional(),
    next: z.string().nullish(),
    results: z.array(orderSchema),
  }),
});

// ---------------------------------------------------------------------------------------------
// Mapping

function present(value: string | null | undefined): string | null {
  return value == null || value.trim() === "" ? null : value;
}

/** `tracking_number || display_id`, as the client reads it (an empty one is none). */
function trackingNumber(o: Order): string | null {
  return present(o.tracking_number) ?? present(o.display_id);
}

/** The status code as a number; NaN when Maystro sends something else. */
function statusCode(o: Order): number {
  return o.status == null || o.status === "" ? NaN : Number(o.status);
}

/** The status code as the mapping's word ("41"); whatever else was sent, as sent; null if none. */
function statusWord(o: Order): string | null {
  const code = statusCode(o);
  if (Number.isInteger(code)) return String(code);
  return o.status == null || o.status === "" ? null : String(o.status);
}

/** Delivered, cancelled or returned, with a tracking number where one is due: nothing will change. */
export function isFinal(o: Order): boolean {
  const status = statusCode(o);
  if (!FINAL_STATUSES.has(status)) return false;
  return FINAL_UNTRACKED.has(status) || trackingNumber(o) !== null;
}

/**
 * An order, matched on `external_order_id` (our order reference). One created in Maystro's
 * dashboard has none; it is kept under `id:<instance_uuid>` (else `id:<id>`), Maystro's own id as
 * text, so it can never collide with ours.
 */
export function toOrder(o: Order): OrderRecord {
  const reference = present(o.external_order_id);
  const code = statusCode(o);
  return {
    external_id: reference ?? `id:${present(o.instance_uuid) ?? present(o.id)}`,
    order_number: reference,
    status: Number.isInteger(code) ? statusName(code) : `status_${o.status ?? "none"}`,
    provider_fulfillment_status: null,
    ...statusFields(maystroStatuses(statusWord(o)), {
      updatedAt: normalizeTime(o.last_update),
    }),
    tracking_number: trackingNumber(o),
    total_price: o.product_price === null || o.product_price === undefined
      ? null
      : String(o.product_price),
    // Maystro delivers in Algeria only; prices are in dinars.
    currency: "DZD",
    customer_external_id: null,
    ordered_at: normalizeTime(o.created_at),
    remote_updated_at: normalizeTime(o.last_update),
    raw: o,
  };
}

// ---------------------------------------------------------------------------------------------
// The walk cursor
//
// At rest: `{"watermark": ISO | null}`: every order created before the watermark is final (or
// older than the lookback), so a walk newest-first may stop at the first page that reaches it;
// null = never walked, read the whole history. Mid-walk: `{"watermark", "page", "oldest_open",
// "newest"}`: the next page to read and what the pages so far showed. Orders are only ever added
// at the front, so resuming at page N may see some orders again but never skips one.

const instant = z.iso.datetime({ offset: true });
const walkCursorSchema = z.strictObject({
  watermark: instant.nullable(),
  page: z.number().int().min(1).optional(),
  oldest_open: instant.nullable().optional(),
  newest: instant.nullable().optional(),
});

export interface WalkCursor {
  watermark: string | null;
  page: number;
  /** created_at of the oldest order seen (at or after the watermark) that is not final. */
  oldest_open: string | null;
  /** created_at of the newest order seen (at or after the watermark). */
  newest: string | null;
}

/**
 * The stored cursor, or the start of a walk. A read from a date (`from`) also re-reads orders
 * created up to the lookback before it, since any of those may have changed after `from`.
 */
export function readWalkCursor(
  cursor: string | null,
  from: Date | null,
  lookbackDays: number,
): WalkCursor {
  if (cursor === null) {
    const watermark = from === null
      ? null
      : new Date(from.getTime() - lookbackDays * 86_400_000).toISOString();
    return { watermark, page: 1, oldest_open: null, newest: null };
  }
  const parsed = parseStoredCursor(PROVIDER, walkCursorSchema, cursor);
  return {
    watermark: parsed.watermark,
    page: parsed.page ?? 1,
    oldest_open: parsed.oldest_open ?? null,
    newest: parsed.newest ?? null,
  };
}

/** The walk so far, after one more page of orders (all at or after the watermark). */
export function walkOn(walk: WalkCursor, orders: readonly Order[]): WalkCursor {
  let { oldest_open, newest } = walk;
  for (const o of orders) {
    const created = normalizeTime(o.created_at);
    if (newest === null || created > newest) newest = created;
    if (!isFinal(o) && (oldest_open === null || created < oldest_open)) oldest_open = created;
  }
  return { ...walk, page: walk.page + 1, oldest_open, newest };
}

/** Orders created at or after the watermark: the ones a walk reads. */
export function sinceWatermark(walk: WalkCursor, orders: Order[]): Order[] {
  if (walk.watermark === null) return orders;
  const mark = Date.parse(walk.watermark);
  return orders.filter((o) => Date.parse(normalizeTime(o.created_at)) >= mark);
}

/**
 * The watermark after a complete walk: the created_at of the oldest order that is not final yet,
 * so it keeps being re-read until it has its tracking number and a final status, but never more
 * than `lookbackDays` back (an order open that long is abandoned); with every order final, the
 * newest one seen minus the clock-skew overlap. Never later than `until` minus the overlap
 * (docs/architecture.md rule 4).
 */
export function nextWatermark(walk: WalkCursor, until: Date, lookbackDays: number): string {
  const overlapMs = SYNC_OVERLAP_SECONDS * 1000;
  let mark = until.getTime() - overlapMs;
  if (walk.newest !== null) mark = Math.min(mark, Date.parse(walk.newest) - overlapMs);
  if (walk.oldest_open !== null) {
    const floor = until.getTime() - lookbackDays * 86_400_000;
    mark = Math.min(mark, Math.max(Date.parse(walk.oldest_open), floor));
  }
  return new Date(mark).toISOString();
}

/**
 * Why a page is not newest first by created_at, or undefined when it is. The walk assumes it
 * (no source documents the list's order): it stops at the first page that reaches the watermark,
 * so an ascending list would end every walk on page 1. A page out of order is refused instead.
 */
export function notNewestFirst(orders: readonly Order[]): string | undefined {
  for (let i = 1; i < orders.length; i++) {
    const [before, at] = [orders[i - 1]!.created_at, orders[i]!.created_at];
    if (Date.parse(normalizeTime(at)) > Date.parse(normalizeTime(before))) {
      return `maystro orders page: not newest first (order ${i} created ${at}, order ${
        i - 1
      } ${before}); the walk takes the list as newest first`;
    }
  }
  return undefined;
}

/** This page reached the watermark: an order on it was created before it. */
export function reachedWatermark(walk: WalkCursor, orders: readonly Order[]): boolean {
  if (walk.watermark === null) return false;
  const mark = Date.parse(walk.watermark);
  return orders.some((o) => Date.parse(normalizeTime(o.created_at)) < mark);
}
