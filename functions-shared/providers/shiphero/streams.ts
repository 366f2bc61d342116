// ShipHero's data half, wire format only: the GraphQL document the orders reader sends, the zod
// schema of what comes back, and the mapping to Tether's records. Requests and pacing live in
// adapter.ts. ShipHero has no customers stream.
//
// What Tether stores (and the sandbox's `truth()` states), per order: external_id = `id` (the
// Relay id, base64 "Order:123"; `legacy_id` stays in raw); order_number = `order_number`;
// status = provider_fulfillment_status = `fulfillment_status` ("pending", "fulfilled", "canceled",
// or an account's custom status); the normalized fulfillment_status and canceled_at from it
// (order_status.ts);
// tracking_number = the newest shipment's first shipping label with a tracking number;
// remote_updated_at = `updated_at`; ordered_at = `order_date`.
//
// ShipHero's Relay cursors are graphene offsets (base64 "arrayconnection:N"), not keysets. The
// reader passes one only to continue a run of records sharing one `updated_at` second longer than
// a page; if one of those records changes during that read it leaves the window and the rows
// behind it shift by one, so one unchanged record of the run can be skipped until it changes
// again. Every other page starts a fresh query from `since`, where offsets cannot drift.

import { z } from "zod";
import { shipheroStatuses, statusFields } from "../order_status.ts";
import type { OrderRecord } from "../types.ts";

/**
 * ShipHero states no page-size cap (UNCONFIRMED); the credit bucket is what limits a query, and a
 * page of 100 costs about 101 of the 4004 credits.
 */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 100;

/** Credits a page is expected to cost: ShipHero prices the records asked for plus the query. */
export function pageComplexity(first: number): number {
  return first + 1;
}

/**
 * "Dates are ISODateTime (2026-01-29T00:00:00); date-only strings are the classic mistake."
 * ShipHero shows whole seconds in UTC without an offset, so bounds are sent the same way: `since`
 * rounded down (still included by `updated_from`), `until` rounded down (a record shown at second
 * S is at or before `until` exactly when S <= floor(until)). `updated_to` is taken as inclusive
 * (UNCONFIRMED); were it exclusive, a record of the last second is read by the next run's overlap.
 */
export function isoDateTime(at: Date | string): string {
  const ms = typeof at === "string" ? Date.parse(at) : at.getTime();
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19);
}

/** ShipHero times carry no offset and are UTC; an offset, if one ever appears, is honoured. */
export function fromIsoDateTime(value: string): string {
  const hasOffset = /(?:Z|[+-]\d{2}:?\d{2})$/.test(value);
  return new Date(hasOffset ? value : `${value}Z`).toISOString();
}

/** The fields of an order Tether reads, in every document that reads one. */
const ORDER_FIELDS = `id legacy_id order_number partner_order_id shop_name fulfillment_status
          order_date updated_at total_price tags
          shipments { id shipping_labels { tracking_number } }`;

export const ORDERS_QUERY = `query TetherOrders(
  $updatedFrom: ISODateTime, $updatedTo: ISODateTime, $first: Int, $after: String
) {
  orders(updated_from: $updatedFrom, updated_to: $updatedTo) {
    request_id
    complexity
    data(first: $first, after: $after, sort: "updated_at") {
      pageInfo { hasNextPage endCursor }
      edges {
        node {
          ${ORDER_FIELDS}
        }
      }
    }
  }
}`;

const dateTime = z
  .string()
  .regex(
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/,
    "expected an ISODateTime such as 2026-01-29T00:00:00",
  );

export const orderNode = z.looseObject({
  id: z.string().min(1),
  order_number: z.string().nullable(),
  fulfillment_status: z.string().nullable(),
  order_date: dateTime.nullable(),
  updated_at: dateTime,
  total_price: z.union([z.string(), z.number()]).nullable(),
  shipments: z
    .array(
      z.looseObject({
        shipping_labels: z
          .array(z.looseObject({ tracking_number: z.string().nullable() }))
          .nullable(),
      }).nullable(),
    )
    .nullable(),
});
export type OrderNode = z.output<typeof orderNode>;

export const ordersData = z.object({
  orders: z.object({
    request_id: z.string().optional(),
    complexity: z.number().nonnegative(),
    data: z.object({
      pageInfo: z.object({ hasNextPage: z.boolean(), endCursor: z.string().nullable() }),
      edges: z.array(z.object({ node: orderNode })),
    }),
  }),
});

/**
 * A Shipment Update names the shipment (`fulfillment.shipment_uuid`), not the order: the order is
 * read through the shipment (`shipment(id) { data { order } }` in ShipHero's public schema).
 */
export const SHIPMENT_ORDER_QUERY = `query TetherShipmentOrder($id: String) {
  shipment(id: $id) {
    request_id
    complexity
    data {
      id
      order_id
      order {
        ${ORDER_FIELDS}
      }
    }
  }
}`;

export const shipmentOrderData = z.object({
  shipment: z.object({
    request_id: z.string().optional(),
    complexity: z.number().nonnegative().optional(),
    data: z.looseObject({ order: orderNode.nullish() }).nullable(),
  }).nullable(),
});

/**
 * Why a page is not oldest change first, or undefined when it is. No source states what
 * `sort: "updated_at"` does (the argument exists; its direction is not documented); the time
 * cursor needs ascending pages, since it moves to a page's newest record. A page out of order is
 * refused rather than read, which would skip every older record behind it.
 */
export function notAscending(records: readonly OrderRecord[]): string | undefined {
  for (let i = 1; i < records.length; i++) {
    const [before, at] = [records[i - 1]!.remote_updated_at, records[i]!.remote_updated_at];
    if (Date.parse(at) < Date.parse(before)) {
      return `shiphero orders page: not oldest change first (record ${i} updated ${at}, record ${
        i - 1
      } ${before}); sort: "updated_at" is taken as ascending`;
    }
  }
  return undefined;
}

/** The newest shipment's first label with a tracking number. */
function trackingNumber(node: OrderNode): string | null {
  for (const shipment of [...(node.shipments ?? [])].reverse()) {
    const number = shipment?.shipping_labels?.find((label) => label.tracking_number)
      ?.tracking_number;
    if (number) return number;
  }
  return null;
}

export function toOrderRecord(node: OrderNode): OrderRecord {
  return {
    external_id: node.id,
    order_number: node.order_number,
    status: node.fulfillment_status,
    provider_fulfillment_status: node.fulfillment_status,
    ...statusFields(shipheroStatuses(node.fulfillment_status), {
      updatedAt: fromIsoDateTime(node.updated_at),
    }),
    tracking_number: trackingNumber(node),
    total_price: node.total_price === null ? null : String(node.total_price),
    currency: null,
    customer_external_id: null,
    ordered_at: node.order_date === null ? null : fromIsoDateTime(node.order_date),
    remote_updated_at: fromIsoDateTime(node.updated_at),
    raw: node,
  };
}
