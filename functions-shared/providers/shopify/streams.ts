// Shopify's data half, wire format only: the GraphQL documents the readers send, zod schemas of
// what comes back, and the mapping to Tether's records. Requests and pacing live in adapter.ts.
//
// What Tether stores (and the sandbox's `truth()` states):
// - orders: external_id = the Order GID ("gid://shopify/Order/123"); order_number = `name`
//   ("#1001"); status = "CANCELLED" once `cancelledAt` is set, else `displayFulfillmentStatus`;
//   provider_fulfillment_status = `displayFulfillmentStatus`; financial_status and
//   fulfillment_status normalized from `displayFinancialStatus` / `displayFulfillmentStatus`
//   (order_status.ts), canceled_at = `cancelledAt`; tracking_number = the newest fulfillment's
//   first tracking number; remote_updated_at = `updatedAt`.
// - customers: external_id = the Customer GID; status "active" for every customer the `customers`
//   query returns; email = `defaultEmailAddress.emailAddress`, phone =
//   `defaultPhoneNumber.phoneNumber` (`Customer.email`/`phone` are deprecated: "Use
//   `defaultEmailAddress.emailAddress` instead"), first_name/last_name. Those four are protected
//   customer data: an app without Shopify's approval gets them null with one ACCESS_DENIED error
//   per field (PROTECTED_CUSTOMER_FIELDS); the rest is stored and the page names what was withheld. A deleted customer is no longer returned at all; its deletion is read from the
//   `events` connection (subject_type CUSTOMER, action destroy, kept a year) and stored as
//   status "inactive" with remote_updated_at = the event's time and raw = the event.

import { z } from "zod";
import { iso } from "../common.ts";
import { shopifyStatuses, statusFields } from "../order_status.ts";
import type { CustomerRecord, OrderRecord } from "../types.ts";

/** "first ≤ 250" per connection. */
export const MAX_PAGE_SIZE = 250;

/**
 * Shopify shows DateTime with whole seconds and compares search terms at that precision, so the
 * bounds are whole seconds too: `since` rounded down (`>=` still includes it), `until` rounded
 * down (a record shown at second S is at or before `until` exactly when S <= floor(until)).
 */
export function searchTime(at: Date | string): string {
  const ms = typeof at === "string" ? Date.parse(at) : at.getTime();
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/** `updated_at:>='…' AND updated_at:<='…'` (no lower bound when reading the whole history). */
export function timeWindow(field: string, since: string | null, until: Date): string {
  const upper = `${field}:<='${searchTime(until)}'`;
  return since === null ? upper : `${field}:>='${searchTime(since)}' AND ${upper}`;
}

/** Costs as Shopify prices a connection: 2 + `first` points requested (cost of each node: 1). */
export function connectionCost(first: number): number {
  return 2 + first;
}

// ---------------------------------------------------------------------------------------------
// Orders

export const ORDERS_QUERY = `query TetherOrders($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    edges {
      node {
        id name createdAt updatedAt cancelledAt displayFinancialStatus displayFulfillmentStatus
        totalPriceSet { shopMoney { amount currencyCode } }
        customer { id }
        fulfillments(first: 10) { trackingInfo(first: 5) { number } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}`;

const dateTime = z.iso.datetime({ offset: true });
const pageInfo = z.object({ hasNextPage: z.boolean(), endCursor: z.string().nullable() });
const DECIMAL = /^-?\d+(\.\d+)?$/;
const money = z.looseObject({
  amount: z.string().regex(DECIMAL, "expected a decimal string"),
  currencyCode: z.string(),
});

export const orderNode = z.looseObject({
  id: z.string().min(1),
  name: z.string(),
  createdAt: dateTime,
  updatedAt: dateTime,
  cancelledAt: dateTime.nullable(),
  displayFinancialStatus: z.string().nullable(),
  displayFulfillmentStatus: z.string(),
  totalPriceSet: z.looseObject({ shopMoney: money }),
  customer: z.looseObject({ id: z.string() }).nullable(),
  fulfillments: z.array(
    z.looseObject({
      trackingInfo: z.array(z.looseObject({ number: z.string().nullable() })),
    }),
  ),
});
export type OrderNode = z.output<typeof orderNode>;

export const ordersData = z.object({
  orders: z.object({ edges: z.array(z.object({ node: orderNode })), pageInfo }),
});

/**
 * Whether `ordersData` accepts a page, without building zod's copy of it: a page is 250 orders of
 * a dozen fields, and zod's parse and its copies (then collected) were a tenth of a sync page's
 * CPU. Accepts exactly what the schema accepts (tests/streams_shopify_test.ts holds the two
 * together on every field); a page it refuses goes through the schema, whose message names the
 * field. Unknown keys are kept, as the loose schemas keep them.
 */
export function isOrdersData(value: unknown): value is z.output<typeof ordersData> {
  if (!isObject(value) || !isObject(value.orders)) return false;
  const { edges, pageInfo } = value.orders;
  return Array.isArray(edges) && all(edges, (edge) => isObject(edge) && isOrderNode(edge.node)) &&
    isObject(pageInfo) && typeof pageInfo.hasNextPage === "boolean" &&
    isStringOrNull(pageInfo.endCursor);
}

const DATE_TIME: RegExp = dateTime._zod.pattern;

function isOrderNode(node: unknown): boolean {
  if (!isObject(node)) return false;
  const { totalPriceSet, customer, fulfillments } = node;
  return typeof node.id === "string" && node.id.length > 0 && typeof node.name === "string" &&
    isDateTime(node.createdAt) && isDateTime(node.updatedAt) &&
    (node.cancelledAt === null || isDateTime(node.cancelledAt)) &&
    isStringOrNull(node.displayFinancialStatus) &&
    typeof node.displayFulfillmentStatus === "string" &&
    isObject(totalPriceSet) && isObject(totalPriceSet.shopMoney) &&
    typeof totalPriceSet.shopMoney.amount === "string" &&
    DECIMAL.test(totalPriceSet.shopMoney.amount) &&
    typeof totalPriceSet.shopMoney.currencyCode === "string" &&
    (customer === null || (isObject(customer) && typeof customer.id === "string")) &&
    Array.isArray(fulfillments) &&
    all(
      fulfillments,
      (fulfillment) =>
        isObject(fulfillment) && Array.isArray(fulfillment.trackingInfo) &&
        all(fulfillment.trackingInfo, (info) => isObject(info) && isStringOrNull(info.number)),
    );
}

/** Every item holds, holes included (`every` skips them; the schema reads them as undefined). */
function all(items: unknown[], holds: (item: unknown) => boolean): boolean {
  for (let i = 0; i < items.length; i++) if (!holds(items[i])) return false;
  return true;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isStringOrNull(value: unknown): boolean {
  return value === null || typeof value === "string";
}

function isDateTime(value: unknown): boolean {
  return typeof value === "string" && DATE_TIME.test(value);
}

/**
 * REST `fulfillment_status` (webhook bodies) in the GraphQL `OrderDisplayFulfillmentStatus` words
 * the sync stores. REST knows four states ("fulfilled", "partial", "restocked", and null for none
 * fulfilled: the words of the Admin API's `OrderCreateFulfillmentStatus` enum, which mirrors
 * them); null covers every display state without a fulfilled item (UNFULFILLED, but also ON_HOLD,
 * SCHEDULED, IN_PROGRESS…, which REST does not tell apart), so it maps to UNFULFILLED. Checked
 * against the pinned version's introspection by tests/shopify_contract_test.ts.
 */
export const DISPLAY_FULFILLMENT_OF_REST: Readonly<Record<string, string>> = {
  fulfilled: "FULFILLED",
  partial: "PARTIALLY_FULFILLED",
  restocked: "RESTOCKED",
};

/**
 * A webhook order's `fulfillment_status` as the sync would show it. A word REST is not known to
 * send is kept as sent: the status mapping stores it as unknown and counts it, and the order is
 * still stored (an unknown word never fails processing).
 */
export function displayFulfillmentOfRest(status: string | null | undefined): string {
  if (status === null || status === undefined) return "UNFULFILLED";
  return DISPLAY_FULFILLMENT_OF_REST[status] ?? status;
}

/** The newest fulfillment that has a tracking number, its first number. */
function trackingNumber(node: OrderNode): string | null {
  for (const fulfillment of [...node.fulfillments].reverse()) {
    const number = fulfillment.trackingInfo.find((info) => info.number)?.number;
    if (number) return number;
  }
  return null;
}

export function toOrderRecord(node: OrderNode): OrderRecord {
  return {
    external_id: node.id,
    order_number: node.name,
    status: node.cancelledAt !== null ? "CANCELLED" : node.displayFulfillmentStatus,
    provider_fulfillment_status: node.displayFulfillmentStatus,
    ...statusFields(shopifyStatuses(node.displayFinancialStatus, node.displayFulfillmentStatus), {
      canceledAt: node.cancelledAt === null ? null : iso(node.cancelledAt),
      updatedAt: iso(node.updatedAt),
    }),
    tracking_number: trackingNumber(node),
    total_price: node.totalPriceSet.shopMoney.amount,
    currency: node.totalPriceSet.shopMoney.currencyCode,
    customer_external_id: node.customer?.id ?? null,
    ordered_at: iso(node.createdAt),
    remote_updated_at: iso(node.updatedAt),
    raw: node,
  };
}

// ---------------------------------------------------------------------------------------------
// Customers and their deletions, read together in one request (two root fields)

export const CUSTOMERS_QUERY = `query TetherCustomers(
  $first: Int!, $after: String, $query: String!, $deletionsAfter: String, $deletionsQuery: String!
) {
  customers(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    edges {
      cursor
      node {
        id firstName lastName state createdAt updatedAt
        defaultEmailAddress { emailAddress }
        defaultPhoneNumber { phoneNumber }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
  deletions: events(
    first: $first, after: $deletionsAfter, sortKey: CREATED_AT, query: $deletionsQuery
  ) {
    edges {
      cursor
      node { id action createdAt message ... on BasicEvent { subjectId subjectType } }
    }
    pageInfo { hasNextPage endCursor }
  }
}`;

/**
 * The `action` of the event Shopify keeps for a deleted customer. The `events` query documents the
 * `action` filter ("The action that occured", example `action:create`) but no source lists the
 * word a customer deletion carries; "destroy" is Shopify's word for a deleted subject, and a
 * connection can name another in `config.customer_deletion_action` (the customers/delete webhook
 * reports deletions either way).
 */
export const DEFAULT_DELETION_ACTION = "destroy";

/** The `events` search for customer deletions in the window. */
export function deletionsQuery(
  since: string | null,
  until: Date,
  action = DEFAULT_DELETION_ACTION,
): string {
  return `subject_type:CUSTOMER AND action:${action} AND ${timeWindow("created_at", since, until)}`;
}

/**
 * The protected customer data Tether selects (the introspection's `isProtected` fields), by their
 * path under the customer node, with the column each fills. Without approval Shopify answers each
 * null with an error `{path: ["customers","edges",<i>,"node",…], extensions: {code:
 * "ACCESS_DENIED", …}}` ("This app is not approved to use the email field"; shopify.dev
 * docs/apps/launch/protected-customer-data, "GraphQL Admin API request with unapproved fields";
 * the error shape as MONEI/Shopify-api-node's test of it, commit a2179ac, carries it).
 * `emailAddress` and `phoneNumber` are non-null in their objects, so the object itself may be the
 * null one.
 */
export const PROTECTED_CUSTOMER_FIELDS: Readonly<Record<string, keyof CustomerRecord>> = {
  firstName: "first_name",
  lastName: "last_name",
  "defaultEmailAddress.emailAddress": "email",
  "defaultPhoneNumber.phoneNumber": "phone",
};

/** The column a denied path withholds, when it is a protected field of a customer node. */
export function withheldColumn(path: readonly (string | number)[]): string | undefined {
  const [root, edges, index, node, ...field] = path;
  if (root !== "customers" || edges !== "edges" || node !== "node") return undefined;
  if (!/^\d+$/.test(String(index))) return undefined;
  return PROTECTED_CUSTOMER_FIELDS[field.join(".")];
}

export const customerNode = z.looseObject({
  id: z.string().min(1),
  firstName: z.string().nullable(),
  lastName: z.string().nullable(),
  defaultEmailAddress: z.looseObject({ emailAddress: z.string().nullable() }).nullable(),
  defaultPhoneNumber: z.looseObject({ phoneNumber: z.string().nullable() }).nullable(),
  updatedAt: dateTime,
});
export type CustomerNode = z.output<typeof customerNode>;

export const deletionNode = z.looseObject({
  id: z.string().min(1),
  action: z.string(),
  createdAt: dateTime,
  subjectId: z.string().min(1),
  subjectType: z.string(),
});
export type DeletionNode = z.output<typeof deletionNode>;

export const customersData = z.object({
  customers: z.object({
    edges: z.array(z.object({ cursor: z.string(), node: customerNode })),
    pageInfo,
  }),
  deletions: z.object({
    edges: z.array(z.object({ cursor: z.string(), node: deletionNode })),
    pageInfo,
  }),
});
export type CustomersData = z.output<typeof customersData>;

export function toCustomerRecord(node: CustomerNode): CustomerRecord {
  return {
    external_id: node.id,
    email: node.defaultEmailAddress?.emailAddress ?? null,
    first_name: node.firstName,
    last_name: node.lastName,
    phone: node.defaultPhoneNumber?.phoneNumber ?? null,
    status: "active",
    remote_updated_at: iso(node.updatedAt),
    raw: node,
  };
}

/** "A deleted customer becomes inactive, not a deleted row." */
export function toDeletedCustomerRecord(event: DeletionNode): CustomerRecord {
  return {
    external_id: event.subjectId,
    email: null,
    first_name: null,
    last_name: null,
    phone: null,
    status: "inactive",
    remote_updated_at: iso(event.createdAt),
    raw: event,
  };
}

/**
 * Where each of the two connections continues within one query (the cursor's `after`, stored as
 * JSON text): both are read from the same `since`, so a run of ties continues in both.
 */
export const pairToken = z.strictObject({
  customers: z.string().min(1).optional(),
  deletions: z.string().min(1).optional(),
});
export type PairToken = z.output<typeof pairToken>;

/**
 * One page of customers out of the two connections, both ascending in time. A connection that
 * has more is complete only up to its last record's time, so the page keeps what lies at or
 * before the earlier of those (the horizon): every change before the page's newest time is then
 * in the page, which is what the time cursor needs. The token continues each connection after
 * the last edge kept from it.
 */
export function mergeCustomerPage(
  data: CustomersData,
  previous: PairToken,
  deletionAction = DEFAULT_DELETION_ACTION,
): {
  records: CustomerRecord[];
  nextToken: string;
  hasMore: boolean;
} {
  const customers = data.customers.edges.map((edge) => ({
    cursor: edge.cursor,
    record: toCustomerRecord(edge.node),
  }));
  const deletions = data.deletions.edges
    .filter((edge) => edge.node.subjectType === "CUSTOMER" && edge.node.action === deletionAction)
    .map((edge) => ({ cursor: edge.cursor, record: toDeletedCustomerRecord(edge.node) }));
  // The filter above may drop edges; the connection's own last edge still bounds its horizon.
  const lastDeletion = data.deletions.edges.at(-1);

  let horizon = Number.POSITIVE_INFINITY;
  const lastCustomer = customers.at(-1);
  if (data.customers.pageInfo.hasNextPage && lastCustomer) {
    horizon = Math.min(horizon, Date.parse(lastCustomer.record.remote_updated_at));
  }
  if (data.deletions.pageInfo.hasNextPage && lastDeletion) {
    horizon = Math.min(horizon, Date.parse(lastDeletion.node.createdAt));
  }
  const upToHorizon = (item: { record: CustomerRecord }) =>
    Date.parse(item.record.remote_updated_at) <= horizon;
  const keptCustomers = customers.filter(upToHorizon);
  const keptDeletions = deletions.filter(upToHorizon);
  const keptDeletionEdges = data.deletions.edges.filter((edge) =>
    Date.parse(edge.node.createdAt) <= horizon
  );

  const next: PairToken = {
    ...previous,
    ...(keptCustomers.length > 0 ? { customers: keptCustomers.at(-1)!.cursor } : {}),
    ...(keptDeletionEdges.length > 0 ? { deletions: keptDeletionEdges.at(-1)!.cursor } : {}),
  };
  const records = [...keptCustomers, ...keptDeletions]
    .map((item) => item.record)
    .sort((a, b) => Date.parse(a.remote_updated_at) - Date.parse(b.remote_updated_at));
  return {
    records,
    nextToken: JSON.stringify(next),
    hasMore: data.customers.pageInfo.hasNextPage || data.deletions.pageInfo.hasNextPage,
  };
}
