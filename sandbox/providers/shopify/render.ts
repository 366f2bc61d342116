/**
 * Shopify's renderings of the neutral dataset: GraphQL Admin API nodes (`Order`, `Customer`, the
 * `BasicEvent` of a deleted customer), REST webhook bodies, and the truth an adapter must store.
 */
import type {
  Change,
  Dataset,
  SandboxCustomer,
  SandboxOrder,
  StreamName,
  TruthRecord,
} from "../../data.ts";

/** Event ids are large numbers on Shopify; these stay clear of order and customer ids. */
export const EVENT_ID_BASE = 90_000_000;

/** DateTime values have second precision ("2026-11-22T10:15:30Z"); filters compare what is shown. */
export function shownMs(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

export function dateTime(ms: number): string {
  return new Date(shownMs(ms)).toISOString().replace(".000Z", "Z");
}

export function gid(type: string, id: number): string {
  return `gid://shopify/${type}/${id}`;
}

/** The Decimal scalar as Shopify renders it: "12.5", "12.0", "12.34". */
function decimal(cents: number): string {
  const text = (cents / 100).toFixed(2);
  return text.endsWith("0") ? text.slice(0, -1) : text;
}

export function orderName(order: SandboxOrder): string {
  return `#${order.number}`;
}

/** Neutral stages in Shopify's words: nothing shipped = UNFULFILLED, shipped or delivered = FULFILLED. */
function displayFulfillmentStatus(order: SandboxOrder): string {
  return order.stage === "shipped" || order.stage === "delivered" ? "FULFILLED" : "UNFULFILLED";
}

/** What an adapter stores as the order's status: CANCELLED once `cancelledAt` is set. */
function orderStatus(order: SandboxOrder): string {
  return order.stage === "cancelled" ? "CANCELLED" : displayFulfillmentStatus(order);
}

export function customerNode(customer: SandboxCustomer) {
  return {
    id: gid("Customer", customer.seq),
    email: customer.email,
    firstName: customer.firstName,
    lastName: customer.lastName,
    displayName: `${customer.firstName} ${customer.lastName}`,
    phone: customer.phone,
    // The current fields (`email` and `phone` are deprecated in their favour).
    defaultEmailAddress: customer.email === null ? null : { emailAddress: customer.email },
    defaultPhoneNumber: customer.phone === null ? null : { phoneNumber: customer.phone },
    state: "ENABLED",
    createdAt: dateTime(customer.createdAt),
    updatedAt: dateTime(customer.updatedAt),
  };
}

export function orderNode(order: SandboxOrder, set: Dataset) {
  const customer = order.customerSeq === null ? undefined : set.customers.get(order.customerSeq);
  const money = { amount: decimal(order.totalCents), currencyCode: order.currency };
  const fulfilled = displayFulfillmentStatus(order) === "FULFILLED";
  const tracking = order.trackingNumber;
  return {
    id: gid("Order", order.seq),
    name: orderName(order),
    email: customer?.email ?? null,
    createdAt: dateTime(order.createdAt),
    processedAt: dateTime(order.createdAt),
    updatedAt: dateTime(order.updatedAt),
    // Cancelled orders are never changed again in the sandbox, so the last change is the cancel.
    cancelledAt: order.stage === "cancelled" ? dateTime(order.updatedAt) : null,
    closed: order.stage === "delivered" || order.stage === "cancelled",
    displayFinancialStatus: "PAID",
    displayFulfillmentStatus: displayFulfillmentStatus(order),
    currencyCode: order.currency,
    totalPriceSet: { shopMoney: money, presentmentMoney: money },
    customer: customer && !customer.deleted ? customerNode(customer) : null,
    fulfillments: fulfilled || tracking !== null
      ? [{
        id: gid("Fulfillment", order.seq),
        status: "SUCCESS",
        createdAt: dateTime(order.updatedAt),
        trackingInfo: tracking === null ? [] : [{
          number: tracking,
          company: "Sandbox Post",
          url: `https://track.sandbox.test/${tracking}`,
        }],
      }]
      : [],
  };
}

/** The `events` entry Shopify keeps for a deleted customer. */
export function deletionEventNode(customer: SandboxCustomer) {
  return {
    __typename: "BasicEvent",
    id: gid("BasicEvent", EVENT_ID_BASE + customer.seq),
    action: "destroy",
    createdAt: dateTime(customer.updatedAt),
    message: `Customer ${customer.firstName} ${customer.lastName} was deleted.`,
    appTitle: null,
    attributeToApp: false,
    attributeToUser: true,
    criticalAlert: false,
    subjectId: gid("Customer", customer.seq),
    subjectType: "CUSTOMER",
  };
}

/**
 * A change as Shopify's webhook (REST JSON, snake_case): `orders/create`, `orders/updated`,
 * `customers/create`, `customers/update`, `customers/delete` (whose body holds little more than
 * the ids and no time; the unsigned `X-Shopify-Triggered-At` header says when).
 */
export function webhookOf(change: Change, set: Dataset): { topic: string; body: unknown } {
  if (change.stream === "orders") {
    const order = change.record;
    const customer = order.customerSeq === null ? undefined : set.customers.get(order.customerSeq);
    const tracking = order.trackingNumber;
    const fulfilled = displayFulfillmentStatus(order) === "FULFILLED";
    return {
      topic: change.kind === "created" ? "orders/create" : "orders/updated",
      body: {
        id: order.seq,
        admin_graphql_api_id: gid("Order", order.seq),
        name: orderName(order),
        order_number: Number(order.number),
        email: customer?.email ?? null,
        created_at: dateTime(order.createdAt),
        updated_at: dateTime(order.updatedAt),
        cancelled_at: order.stage === "cancelled" ? dateTime(order.updatedAt) : null,
        financial_status: "paid",
        fulfillment_status: fulfilled ? "fulfilled" : null,
        currency: order.currency,
        total_price: (order.totalCents / 100).toFixed(2),
        customer: customer && !customer.deleted
          ? { id: customer.seq, admin_graphql_api_id: gid("Customer", customer.seq) }
          : null,
        fulfillments: fulfilled || tracking !== null
          ? [{
            id: order.seq,
            status: "success",
            tracking_number: tracking,
            tracking_numbers: tracking === null ? [] : [tracking],
          }]
          : [],
      },
    };
  }
  const c = change.record;
  if (change.kind === "deleted") {
    return {
      topic: "customers/delete",
      body: {
        id: c.seq,
        admin_graphql_api_id: gid("Customer", c.seq),
        phone: null,
        addresses: [],
        tax_exemptions: [],
      },
    };
  }
  return {
    topic: change.kind === "created" ? "customers/create" : "customers/update",
    body: {
      id: c.seq,
      admin_graphql_api_id: gid("Customer", c.seq),
      email: c.email,
      first_name: c.firstName,
      last_name: c.lastName,
      phone: c.phone,
      state: "enabled",
      created_at: dateTime(c.createdAt),
      updated_at: dateTime(c.updatedAt),
    },
  };
}

export function truth(set: Dataset, stream: StreamName): TruthRecord[] {
  const at = (ms: number) => new Date(shownMs(ms)).toISOString();
  if (stream === "orders") {
    return [...set.orders.values()].map((order) => ({
      external_id: gid("Order", order.seq),
      updated_at: at(order.updatedAt),
      status: orderStatus(order),
      tracking_number: order.trackingNumber,
      order_number: orderName(order),
    }));
  }
  // A deleted customer's last change is its deletion (nothing touches it afterwards).
  return [...set.customers.values()].map((customer) => ({
    external_id: gid("Customer", customer.seq),
    updated_at: at(customer.updatedAt),
    status: customer.deleted ? "inactive" : "active",
  }));
}
