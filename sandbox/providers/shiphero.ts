/**
 * ShipHero (developer.shiphero.com), played under `<url>/shiphero` in place
 * of https://public-api.shiphero.com.
 *
 * The GraphQL endpoint serves `account` and `orders` from the account's
 * dataset, charged in credits against the account's bucket in `world.limits`;
 * see "Data" below.
 */
import { AccountBook, type BaseAccount, describeAccount, type IssuedToken } from "../accounts.ts";
import type { Change, Dataset, OrderStage, SandboxOrder, TruthRecord } from "../data.ts";
import { base64, hmacSha256 } from "../webhooks.ts";
import { bearerToken, json, readJsonObject } from "../http.ts";
import type { ProviderSandbox, SandboxWorld } from "../provider.ts";
import { defineSandboxProvider, perChange } from "./define.ts";
import {
  type ArgValue,
  type FieldNode,
  findField,
  GraphqlFault,
  parseQuery,
  readGraphqlRequest,
  resolvePlans,
  rootFields,
  type Schema,
  validate,
} from "./graphql_lite.ts";
import { randomHex } from "../tokens.ts";

/** "expires_in (2419200 = 28 days)". */
const ACCESS_SECONDS = 2_419_200;
const SCOPE = "openid profile offline_access";

interface ShipHeroAccount extends BaseAccount {
  /** "the refresh token is static while the account is active". */
  readonly refresh: IssuedToken;
  /** Newest access token; older ones stay valid until they expire. */
  access: IssuedToken;
  readonly accountId: string;
  /**
   * The `shared_signature_secret` of each registered webhook: `webhook_create` returns one per
   * Webhook object, so each type signs with its own.
   */
  readonly webhookSecrets: Readonly<Record<WebhookType, string>>;
}

/** The webhook types a Tether connection registers. */
const WEBHOOK_TYPES = ["Shipment Update", "Order Canceled"] as const;
type WebhookType = typeof WEBHOOK_TYPES[number];

/** Where a client keeps a type's secret: "Shipment Update" → `webhook_secret_shipment_update`. */
function secretField(type: WebhookType): string {
  return `webhook_secret_${type.toLowerCase().replace(/[^a-z0-9]+/g, "_")}`;
}

export function createShipHero(world: SandboxWorld): ProviderSandbox {
  const book = new AccountBook<ShipHeroAccount>((n) => `shiphero-${n}`);

  // Error body UNCONFIRMED; the issuer is Auth0, hence 403 invalid_grant.
  const invalidGrant = () =>
    json({ error: "invalid_grant", error_description: "Unknown or invalid refresh token." }, 403);
  const unauthorized = () =>
    json({ code: 401, Status: "Unauthorized", message: "Invalid or expired access token." }, 401);

  function refresh(refreshToken: string | undefined, now: number): Response {
    const hit = book.live(refreshToken, "refresh", now);
    if (!hit) return invalidGrant();
    const access = book.issue(hit.account.externalId, "access", "sb_sh_at_", now, ACCESS_SECONDS);
    hit.account.access = access;
    // "Response has exactly access_token, expires_in, scope, token_type — no refresh_token".
    return json({
      access_token: access.value,
      expires_in: ACCESS_SECONDS,
      scope: SCOPE,
      token_type: "Bearer",
    });
  }

  return defineSandboxProvider({
    name: "shiphero",
    world,
    book,
    invalidGrant,
    unauthorized,

    // "POST https://public-api.shiphero.com/auth/refresh, JSON body {"refresh_token": "..."}".
    token: {
      path: "/auth/refresh",
      async read(req) {
        const body = await readJsonObject(req);
        if (!body) {
          return json({
            error: "invalid_request",
            error_description: "Body must be a JSON object.",
          }, 400);
        }
        const refreshToken = typeof body.refresh_token === "string"
          ? body.refresh_token
          : undefined;
        return { refreshToken, complete: (now) => refresh(refreshToken, now) };
      },
    },

    api: [{
      // "POST https://public-api.shiphero.com/graphql, header Authorization: Bearer".
      method: "POST",
      pattern: new URLPattern({ pathname: "/graphql" }),
      async handle(req, _params, now) {
        const hit = book.live(bearerToken(req), "access", now);
        if (!hit) return unauthorized();
        return await serveGraphql(world, hit.account, req, now);
      },
    }],

    streams: ["orders"],
    customOrderStatuses: true,
    truth: (set, stream) => stream === "orders" ? truth(set) : [],

    webhooks: perChange(async ({ account, change }, opts) => {
      const body = webhookOf(change, `Sandbox ${account.externalId}`);
      if (!body) return undefined;
      const text = JSON.stringify(body);
      const id = crypto.randomUUID();
      const secret = opts.secret ?? account.webhookSecrets[body.webhook_type];
      return {
        id,
        body: text,
        headers: {
          "content-type": "application/json",
          "x-shiphero-hmac-sha256": base64(await hmacSha256(secret, text)),
          "x-shiphero-message-id": id,
        },
      };
    }),

    open: (externalId, now) => ({
      refresh: book.issue(externalId, "refresh", "sb_sh_rt_", now, null),
      access: book.issue(externalId, "access", "sb_sh_at_", now, ACCESS_SECONDS),
      accountId: btoa(`Account:${randomHex(4)}`),
      webhookSecrets: Object.fromEntries(
        WEBHOOK_TYPES.map((type) => [type, randomHex(24)]),
      ) as Record<WebhookType, string>,
    }),
    created: (account) => ({
      credentials: {
        refresh_token: account.refresh.value,
        access_token: account.access.value,
        ...Object.fromEntries(
          WEBHOOK_TYPES.map((type) => [secretField(type), account.webhookSecrets[type]]),
        ),
      },
      config: {},
    }),
    inspect: (account) => describeAccount(account, account.refresh, account.access),
  });
}

// ---------------------------------------------------------------------------
// Data: `account` and `orders` (developer.shiphero.com: "query orders(updated_from:, updated_to:,
// order_date_from:, order_date_to:, …) returns {request_id, complexity, data: {edges{node{…}},
// pageInfo{hasNextPage endCursor}}}; page with data(first: N, after: cursor)").
//
// ShipHero is a graphene (Python) server: ids are Relay global ids (base64 "Order:123"), Relay
// cursors are graphene's offsets (base64 "arrayconnection:N"), and ISODateTime values carry no
// offset ("2026-01-29T00:00:00", UTC). Tracking numbers live in
// `shipments { shipping_labels { tracking_number } }`.

/** UNCONFIRMED: ShipHero documents no page-size cap; the credit bucket is what limits a query. */
const DEFAULT_PAGE = 100;

/** graphene's default connection cursor: an offset into the result list. */
function offsetCursor(index: number): string {
  return btoa(`arrayconnection:${index}`);
}

function relayId(type: string, id: number): string {
  return btoa(`${type}:${id}`);
}

function shownMs(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/** ISODateTime as ShipHero renders it: UTC, whole seconds, no offset. */
function isoDateTime(ms: number): string {
  return new Date(shownMs(ms)).toISOString().slice(0, 19);
}

/** Neutral stages in ShipHero's fulfillment_status words. */
export const FULFILLMENT_STATUS: Readonly<Record<OrderStage, string>> = {
  open: "pending",
  processing: "pending",
  shipped: "fulfilled",
  delivered: "fulfilled",
  cancelled: "canceled",
};

/**
 * The order's fulfillment_status: a custom status replaces the system one ("Default", the API's
 * "pending") while the order waits; fulfilled and canceled are applied "automatically based on the
 * status of the line items" (software-help.shiphero.com "How to Use Order Statuses in ShipHero";
 * the API sets one with order_update_fulfillment_status, tests/fixtures/shiphero/schema.graphql).
 */
function fulfillmentStatus(order: SandboxOrder): string {
  const system = FULFILLMENT_STATUS[order.stage];
  return system === "pending" && order.customStatus !== undefined ? order.customStatus : system;
}

function orderNode(order: SandboxOrder, set: Dataset, shopName: string) {
  const customer = order.customerSeq === null ? undefined : set.customers.get(order.customerSeq);
  const id = relayId("Order", order.seq);
  const price = (order.totalCents / 100).toFixed(2);
  const tracking = order.trackingNumber;
  return {
    id,
    legacy_id: order.seq,
    order_number: order.number,
    partner_order_id: order.reference,
    shop_name: shopName,
    fulfillment_status: fulfillmentStatus(order),
    order_date: isoDateTime(order.createdAt),
    updated_at: isoDateTime(order.updatedAt),
    total_price: price,
    subtotal: price,
    total_tax: "0.00",
    currency: order.currency,
    email: customer?.email ?? null,
    tags: [],
    shipments: tracking === null ? [] : [{
      id: relayId("Shipment", order.seq),
      legacy_id: order.seq,
      order_id: id,
      created_date: isoDateTime(order.updatedAt),
      shipping_labels: [{
        id: relayId("ShippingLabel", order.seq),
        legacy_id: order.seq,
        tracking_number: tracking,
        carrier: "sandbox_post",
        shipping_name: "Sandbox Post",
        shipping_method: "ground",
        tracking_url: `https://track.sandbox.test/${tracking}`,
        status: "valid",
      }],
    }],
  };
}

/**
 * A change as ShipHero's webhook, for the two types Tether registers: "Shipment Update" (a label
 * with a tracking number was bought) and "Order Canceled". Other changes send nothing. The bodies
 * follow the official samples (developer.shiphero.com/webhooks/shipment-update-webhook and
 * …/order-canceled-webhook): a Shipment Update names the shipment, the warehouse and the order's
 * number and partner id, never the order's id; an Order Canceled names the order.
 */
function webhookOf(
  change: Change,
  shopName: string,
): ({ webhook_type: WebhookType } & Record<string, unknown>) | undefined {
  if (change.stream !== "orders") return undefined;
  const order = change.record;
  if (change.kind === "tracking" && order.trackingNumber !== null) {
    return {
      test: "0",
      webhook_type: "Shipment Update",
      fulfillment: {
        shipment_id: order.seq,
        shipment_uuid: relayId("Shipment", order.seq),
        warehouse: "Primary",
        warehouse_id: 76733,
        warehouse_uuid: relayId("Warehouse", 76733),
        webhook_type: "Shipment Update",
        partner_order_id: order.reference,
        order_number: order.number,
        tracking_number: order.trackingNumber,
        line_items: [],
        custom_tracking_url: "",
        package_number: 1,
        total_packages: 1,
        shipping_method: "ground",
        shipping_carrier: "sandbox_post",
      },
    };
  }
  if (change.kind === "cancelled") {
    return {
      order_number: order.number,
      partner_order_id: order.reference,
      "fulfillment-status": FULFILLMENT_STATUS.cancelled,
      order_id: order.seq,
      order_uuid: relayId("Order", order.seq),
      shop_name: shopName,
      shop_order_number: order.number,
      webhook_type: "Order Canceled",
    };
  }
  return undefined;
}

/**
 * What an adapter stores: external_id = the Relay id, status = fulfillment_status, order_number,
 * the tracking number of the shipping label, updated_at as shown (UTC, whole seconds).
 */
function truth(set: Dataset): TruthRecord[] {
  return [...set.orders.values()].map((order) => ({
    external_id: relayId("Order", order.seq),
    updated_at: new Date(shownMs(order.updatedAt)).toISOString(),
    status: fulfillmentStatus(order),
    tracking_number: order.trackingNumber,
    order_number: order.number,
  }));
}

// --- schema -----------------------------------------------------------------

const ORDERS_ARGS = ["updated_from", "updated_to", "order_date_from", "order_date_to"];

const SCHEMA: Schema = {
  Query: {
    fields: {
      account: "AccountQueryResult",
      orders: { type: "OrdersQueryResult", args: ORDERS_ARGS },
      shipment: { type: "ShipmentQueryResult", args: ["id"] },
    },
  },
  ShipmentQueryResult: {
    fields: { request_id: "String", complexity: "Int", data: "Shipment" },
  },
  AccountQueryResult: { fields: { request_id: "String", complexity: "Int", data: "Account" } },
  Account: { fields: { id: "String", legacy_id: "Int", email: "String", username: "String" } },
  OrdersQueryResult: {
    fields: {
      request_id: "String",
      complexity: "Int",
      data: { type: "OrderConnection", args: ["first", "after", "last", "before", "sort"] },
    },
  },
  OrderConnection: { fields: { pageInfo: "PageInfo", edges: "OrderEdge" } },
  OrderEdge: { fields: { node: "Order", cursor: "String" } },
  PageInfo: {
    fields: {
      hasNextPage: "Boolean",
      hasPreviousPage: "Boolean",
      startCursor: "String",
      endCursor: "String",
    },
  },
  Order: {
    fields: {
      id: "String",
      legacy_id: "Int",
      order_number: "String",
      partner_order_id: "String",
      shop_name: "String",
      fulfillment_status: "String",
      order_date: "ISODateTime",
      updated_at: "ISODateTime",
      total_price: "String",
      subtotal: "String",
      total_tax: "String",
      currency: "String",
      email: "String",
      tags: "[String]",
      shipments: "Shipment",
    },
  },
  Shipment: {
    fields: {
      id: "String",
      legacy_id: "Int",
      order_id: "String",
      created_date: "ISODateTime",
      shipping_labels: "ShippingLabel",
      order: "Order",
    },
  },
  ShippingLabel: {
    fields: {
      id: "String",
      legacy_id: "Int",
      tracking_number: "String",
      carrier: "String",
      shipping_name: "String",
      shipping_method: "String",
      tracking_url: "String",
      status: "String",
    },
  },
};

// --- plans ------------------------------------------------------------------

/** A root field checked and priced, ready to run once the credits are taken. */
interface Plan {
  readonly field: FieldNode;
  readonly type: string;
  readonly required: number;
  resolve(set: Dataset): { value: unknown; complexity: number };
}

const ISO_DATE_TIME =
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?$/;

/** An ISODateTime argument (no offset = UTC); a date alone is the classic mistake and an error. */
function dateTimeArg(field: FieldNode, name: string): number | undefined {
  const value = field.args.get(name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || !ISO_DATE_TIME.test(value)) {
    throw new GraphqlFault(
      `Argument '${name}' has invalid value ${
        JSON.stringify(value)
      }: Expected type 'ISODateTime', ` +
        `e.g. "2026-01-29T00:00:00".`,
    );
  }
  const hasOffset = /(?:Z|[+-]\d{2}:\d{2})$/.test(value);
  return Date.parse(hasOffset ? value : `${value}Z`);
}

function intArg(field: FieldNode, name: string): number | undefined {
  const value: ArgValue | undefined = field.args.get(name);
  if (value === undefined || value === null) return undefined;
  if (!Number.isInteger(value) || (value as number) < 0) {
    throw new GraphqlFault(
      `Argument '${name}' has invalid value ${JSON.stringify(value)}: Expected type 'Int'.`,
    );
  }
  return value as number;
}

function decodeOffset(after: ArgValue | undefined): number {
  if (after === undefined || after === null) return -1;
  try {
    const match = /^arrayconnection:(\d+)$/.exec(atob(String(after)));
    if (match) return Number(match[1]);
  } catch {
    // fall through
  }
  throw new GraphqlFault(`Invalid cursor ${JSON.stringify(after)}.`);
}

const SORTS: Readonly<Record<string, (order: SandboxOrder) => number>> = {
  updated_at: (order) => shownMs(order.updatedAt),
  order_date: (order) => shownMs(order.createdAt),
};

function planOrders(field: FieldNode, shopName: string): Plan {
  const window = {
    updatedFrom: dateTimeArg(field, "updated_from"),
    updatedTo: dateTimeArg(field, "updated_to"),
    orderDateFrom: dateTimeArg(field, "order_date_from"),
    orderDateTo: dateTimeArg(field, "order_date_to"),
  };
  const page = findField(field.selections, "data");
  if (page && ["last", "before"].some((arg) => (page.args.get(arg) ?? null) !== null)) {
    throw new GraphqlFault(
      "The sandbox paginates forward only: last and before are not supported.",
    );
  }
  const first = page ? intArg(page, "first") ?? DEFAULT_PAGE : 0;
  const afterIndex = decodeOffset(page?.args.get("after"));
  const sort = page?.args.get("sort") ?? null;
  if (sort !== null && (typeof sort !== "string" || !SORTS[sort])) {
    throw new GraphqlFault(
      `The sandbox sorts orders by ${Object.keys(SORTS).join(" or ")} (ascending); got ${
        JSON.stringify(sort)
      }.`,
    );
  }
  const keyOf = sort === null ? (order: SandboxOrder) => order.seq : SORTS[sort]!;
  const within = (ms: number, from?: number, to?: number) =>
    (from === undefined || shownMs(ms) >= from) && (to === undefined || shownMs(ms) <= to);

  return {
    field,
    type: "OrdersQueryResult",
    // Credits are priced on what the query asks for: the page size plus the query itself.
    required: first + 1,
    resolve(set) {
      const all = [...set.orders.values()]
        .filter((o) =>
          within(o.updatedAt, window.updatedFrom, window.updatedTo) &&
          within(o.createdAt, window.orderDateFrom, window.orderDateTo)
        )
        .sort((a, b) => keyOf(a) - keyOf(b) || a.seq - b.seq);
      const start = afterIndex + 1;
      const slice = all.slice(start, start + first);
      const edges = slice.map((order, i) => ({
        cursor: offsetCursor(start + i),
        node: orderNode(order, set, shopName),
      }));
      const complexity = slice.length + 1;
      return {
        value: {
          request_id: randomHex(12),
          complexity,
          data: {
            edges,
            pageInfo: {
              hasNextPage: start + first < all.length,
              hasPreviousPage: start > 0,
              startCursor: edges[0]?.cursor ?? null,
              endCursor: edges.at(-1)?.cursor ?? null,
            },
          },
        },
        complexity,
      };
    },
  };
}

/** `shipment(id)`: the order's one shipment (it exists once a label is bought), with its order. */
function planShipment(field: FieldNode, shopName: string): Plan {
  const id = field.args.get("id");
  let seq: number | undefined;
  try {
    const match = typeof id === "string" ? /^Shipment:(\d+)$/.exec(atob(id)) : null;
    if (match) seq = Number(match[1]);
  } catch {
    // not a Relay id: no such shipment
  }
  return {
    field,
    type: "ShipmentQueryResult",
    required: 2,
    resolve(set) {
      const order = seq === undefined ? undefined : set.orders.get(seq);
      const node = order && orderNode(order, set, shopName);
      const shipment = node?.shipments[0];
      return {
        value: {
          request_id: randomHex(12),
          complexity: 2,
          data: shipment ? { ...shipment, order: node } : null,
        },
        complexity: 2,
      };
    },
  };
}

function planRoot(field: FieldNode, account: ShipHeroAccount): Plan {
  const shopName = `Sandbox ${account.externalId}`;
  if (field.name === "orders") return planOrders(field, shopName);
  if (field.name === "shipment") return planShipment(field, shopName);
  return {
    field,
    type: "AccountQueryResult",
    required: 1,
    resolve: () => ({
      value: {
        request_id: randomHex(12),
        complexity: 1,
        data: {
          id: account.accountId,
          legacy_id: 1,
          email: `ops+${account.externalId}@sandbox.test`,
          username: account.externalId,
        },
      },
      complexity: 1,
    }),
  };
}

// --- the endpoint -------------------------------------------------------------

/**
 * Out of credits: a GraphQL error with code 30, in the words independent clients quote from real
 * responses ("There are not enough credits to perform the requested operation, which requires
 * 1301 credits, but there are only 263 left. In 18 seconds you will have enough credits to perform
 * the operation", ShipHeroCreditLimitTest.php) and the fields another client parses
 * (`required_credits`, `remaining_credits`, `time_remaining: "4 seconds"`, ShipHeroThrottleError).
 */
function notEnoughCredits(plans: Plan[], required: number, available: number, waitMs: number) {
  const left = Math.floor(available);
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  return json({
    errors: [{
      code: 30,
      message:
        `There are not enough credits to perform the requested operation, which requires ${required} credits, but there are only ${left} left. In ${seconds} seconds you will have enough credits to perform the operation`,
      operation: plans[0]?.field.name ?? "query",
      request_id: randomHex(12),
      required_credits: required,
      remaining_credits: left,
      time_remaining: `${seconds} seconds`,
    }],
    data: Object.fromEntries(plans.map((plan) => [plan.field.alias ?? plan.field.name, null])),
  });
}

async function serveGraphql(
  world: SandboxWorld,
  account: ShipHeroAccount,
  req: Request,
  now: number,
): Promise<Response> {
  const body = await readGraphqlRequest(req);
  if (!body) return json({ errors: [{ message: "Must provide query string." }] }, 400);
  let plans: Plan[];
  try {
    const roots = rootFields(parseQuery(body.query, body.variables, "graphene"));
    validate(SCHEMA, "Query", roots, "graphene");
    plans = roots.map((field) => planRoot(field, account));
  } catch (error) {
    if (error instanceof GraphqlFault) return json({ errors: [{ message: error.message }] });
    throw error;
  }

  const required = plans.reduce((sum, plan) => sum + plan.required, 0);
  const { capacity } = world.limits.size("shiphero");
  if (required > capacity) {
    return json({
      errors: [{
        message:
          `The requested operation requires ${required} credits, more than the ${capacity} the account can hold; ask for fewer records per page.`,
      }],
    });
  }
  const taken = world.limits.take("shiphero", account.externalId, required, now);
  if (!taken.ok) return notEnoughCredits(plans, required, taken.available, taken.waitMs);

  const set = world.data.get("shiphero", account.externalId);
  const { data, charged } = resolvePlans(SCHEMA, plans, set, (r) => r.complexity);
  // "every response reports complexity": the credits charged are the complexity reported.
  world.limits.refund("shiphero", account.externalId, required - charged, now);
  return json({ data });
}
