/**
 * Shopify Admin API (PROVIDERS.md "Shopify Admin API"), played under
 * `<url>/shopify` in place of https://{shop}.myshopify.com. The host that
 * carried the request is replaced, so the shop is identified from the token.
 *
 * The GraphQL endpoint serves `shop`, `orders`, `customers` and `events`
 * (customer deletions) from the account's dataset, priced in query cost
 * against the shop's bucket in `world.limits`; see "Data" below.
 */
import {
  AccountBook,
  type BaseAccount,
  describeAccount,
  type IssuedToken,
  killNow,
} from "../accounts.ts";
import type {
  Change,
  Dataset,
  SandboxCustomer,
  SandboxOrder,
  StreamName,
  TruthRecord,
} from "../data.ts";
import { base64, hex, hmacSha256, type WebhookMessage } from "../webhooks.ts";
import { FORM, json, mediaType, stringFields } from "../http.ts";
import type { BucketSize } from "../limits.ts";
import type {
  AppCredentials,
  ProviderSandbox,
  SandboxWorld,
  ShopifyTokenKind,
} from "../provider.ts";
import {
  type ArgValue,
  type FieldNode,
  GraphqlFault,
  parseQuery,
  readGraphqlRequest,
  resolvePlans,
  rootFields,
  type Schema,
  validate,
} from "./graphql_lite.ts";
import { approveAuthorize, AuthorizationCodes } from "./oauth_codes.ts";

/** Expiring offline tokens: "access token 3600 s, refresh token 90 days". */
const ACCESS_SECONDS = 3600;
const REFRESH_SECONDS = 7_776_000;
const SCOPE = "read_orders,read_customers";

interface ShopifyAccount extends BaseAccount {
  readonly kind: ShopifyTokenKind;
  readonly shop: string;
  /** The one live access token ("only one expiring token is live per app and shop"). */
  access: IssuedToken;
  /** null for legacy offline tokens, which have no refresh token. */
  refresh: IssuedToken | null;
}

export function createShopify(app: AppCredentials, world: SandboxWorld): ProviderSandbox {
  const book = new AccountBook<ShopifyAccount>((n) => `sandbox-shop-${n}`);
  const codes = new AuthorizationCodes();

  // "Bad refresh token: 400 {"error":"invalid_grant",...}".
  const invalidGrant = () =>
    json({
      error: "invalid_grant",
      error_description: "The refresh token is invalid, expired, revoked or was already used.",
    }, 400);
  const unauthorized = () =>
    json(
      { errors: "[API] Invalid API key or access token (unrecognized login or wrong password)" },
      401,
    );

  function refresh(fields: Map<string, string>, now: number): Response {
    if (fields.get("grant_type") !== "refresh_token") {
      return json({
        error: "unsupported_grant_type",
        error_description: "grant_type must be refresh_token.",
      }, 400);
    }
    if (
      fields.get("client_id") !== app.clientId || fields.get("client_secret") !== app.clientSecret
    ) {
      return json({
        error: "invalid_client",
        error_description:
          "Client authentication failed: unknown client_id or wrong client_secret.",
      }, 401);
    }
    const hit = book.live(fields.get("refresh_token"), "refresh", now);
    // Legacy offline tokens cannot be refreshed.
    if (!hit || hit.account.kind !== "expiring") return invalidGrant();
    const account = hit.account;
    // "rotated on every refresh": the old refresh AND old access token die at once.
    killNow(account.access);
    if (account.refresh) killNow(account.refresh);
    account.access = book.issue(account.externalId, "access", "shpat_", now, ACCESS_SECONDS);
    account.refresh = book.issue(account.externalId, "refresh", "shprt_", now, REFRESH_SECONDS);
    return json({
      access_token: account.access.value,
      scope: SCOPE,
      expires_in: ACCESS_SECONDS,
      refresh_token: account.refresh.value,
      refresh_token_expires_in: REFRESH_SECONDS,
    });
  }

  // "POST https://{shop}/admin/oauth/access_token {client_id, client_secret, code}": the code from
  // the authorize redirect, once. An expiring account gets fresh tokens (the old ones die: one
  // live token per app and shop) with their lifetimes; a legacy one its permanent token.
  function exchange(fields: Map<string, string>, now: number): Response {
    if (
      fields.get("client_id") !== app.clientId || fields.get("client_secret") !== app.clientSecret
    ) {
      return json({
        error: "invalid_client",
        error_description:
          "Client authentication failed: unknown client_id or wrong client_secret.",
      }, 401);
    }
    const externalId = codes.redeem(fields.get("code"), fields.get("client_id"), null, now);
    const account = externalId === undefined ? undefined : book.get(externalId);
    if (!account || account.revoked) {
      return json({
        error: "invalid_grant",
        error_description: "The authorization code was not found or was already used.",
      }, 400);
    }
    if (account.kind === "legacy") {
      return json({ access_token: account.access.value, scope: SCOPE });
    }
    killNow(account.access);
    if (account.refresh) killNow(account.refresh);
    account.access = book.issue(account.externalId, "access", "shpat_", now, ACCESS_SECONDS);
    account.refresh = book.issue(account.externalId, "refresh", "shprt_", now, REFRESH_SECONDS);
    return json({
      access_token: account.access.value,
      scope: SCOPE,
      expires_in: ACCESS_SECONDS,
      refresh_token: account.refresh.value,
      refresh_token_expires_in: REFRESH_SECONDS,
    });
  }

  const self: ProviderSandbox = {
    name: "shopify",
    accounts: book,
    invalidGrant,
    unauthorized,

    // "POST https://{shop}.myshopify.com/admin/oauth/access_token, JSON {client_id, client_secret,
    // refresh_token, grant_type}". Form bodies are accepted too, as on Shopify's OAuth endpoint.
    token: {
      path: "/admin/oauth/access_token",
      async read(req) {
        const type = mediaType(req);
        let fields: Map<string, string> | undefined;
        try {
          if (type === "application/json") {
            const body: unknown = JSON.parse(await req.text());
            if (body !== null && typeof body === "object" && !Array.isArray(body)) {
              fields = stringFields(body as Record<string, unknown>);
            }
          } else if (type === FORM) {
            fields = new Map(new URLSearchParams(await req.text()));
          }
        } catch {
          fields = undefined;
        }
        if (!fields) {
          return json({
            error: "invalid_request",
            error_description: "Body must be a JSON object.",
          }, 400);
        }
        const body = fields;
        if (body.has("code") && !body.has("grant_type")) {
          return { refreshToken: undefined, complete: (now) => exchange(body, now) };
        }
        return { refreshToken: body.get("refresh_token"), complete: (now) => refresh(body, now) };
      },
    },

    api: [{
      // "GET https://{shop}/admin/oauth/authorize?client_id&scope&redirect_uri&state": the person
      // approves at once (oauth_codes.ts); back to redirect_uri with code, hmac, host, shop, state,
      // timestamp, signed as Shopify signs them.
      method: "GET",
      pattern: new URLPattern({ pathname: "/admin/oauth/authorize" }),
      handle(req, _params, now) {
        return approveAuthorize(req, now, {
          clientId: app.clientId,
          codes,
          account: (id) => book.get(id ?? self.createAccount({}, now)!.external_id),
          // Shopify signs its callback: HMAC-SHA256 hex of the sorted query, with the app secret.
          params: async (account, base) => {
            const params: Record<string, string> = {
              ...base,
              host: btoa(
                `admin.shopify.com/store/${account.shop.replace(/\.myshopify\.com$/, "")}`,
              ),
              shop: account.shop,
              timestamp: String(Math.floor(now / 1000)),
            };
            const sorted = Object.entries(params).sort(([a], [b]) => (a < b ? -1 : 1));
            const message = new URLSearchParams(sorted).toString();
            return { ...params, hmac: hex(await hmacSha256(app.clientSecret, message)) };
          },
        });
      },
    }, {
      // Header "X-Shopify-Access-Token"; GraphQL is the current Admin API.
      method: "POST",
      pattern: new URLPattern({ pathname: "/admin/api/:version/graphql.json" }),
      async handle(req, _params, now) {
        const hit = book.live(
          req.headers.get("x-shopify-access-token") ?? undefined,
          "access",
          now,
        );
        if (!hit) return unauthorized();
        return await serveGraphql(world, hit.account, req, now);
      },
    }],

    data: {
      streams: ["orders", "customers"],
      customersCanBeDeleted: true,
      truth: (externalId, stream) => truth(world.data.get("shopify", externalId), stream),
    },

    webhooks: {
      async build(items, opts) {
        const out: WebhookMessage[] = [];
        for (const { account, change } of items) {
          const shop = book.get(account)?.shop;
          if (!shop) continue;
          const rendered = webhookOf(change, world.data.get("shopify", account));
          const body = JSON.stringify(rendered.body);
          const id = crypto.randomUUID();
          out.push({
            id,
            body,
            headers: {
              "content-type": "application/json",
              "x-shopify-topic": rendered.topic,
              "x-shopify-hmac-sha256": base64(
                await hmacSha256(opts.secret ?? app.clientSecret, body),
              ),
              "x-shopify-shop-domain": shop,
              "x-shopify-webhook-id": id,
              "x-shopify-event-id": crypto.randomUUID(),
              "x-shopify-triggered-at": new Date(change.at).toISOString(),
              "x-shopify-api-version": "2026-01",
            },
          });
        }
        return out;
      },
    },

    createAccount(input, now) {
      const externalId = book.claimId(input.externalId);
      if (externalId === undefined) return undefined;
      const kind = input.kind ?? "expiring";
      const shop = externalId.endsWith(".myshopify.com")
        ? externalId
        : `${externalId}.myshopify.com`;
      const account = book.add({
        externalId,
        revoked: false,
        kind,
        shop,
        // "legacy offline tokens never expire (until uninstall)".
        access: book.issue(
          externalId,
          "access",
          "shpat_",
          now,
          kind === "legacy" ? null : ACCESS_SECONDS,
        ),
        refresh: kind === "legacy"
          ? null
          : book.issue(externalId, "refresh", "shprt_", now, REFRESH_SECONDS),
      });
      const credentials: Record<string, string> = { access_token: account.access.value };
      if (account.refresh) credentials.refresh_token = account.refresh.value;
      return { external_id: externalId, credentials, config: { shop } };
    },

    inspect(externalId) {
      const a = book.get(externalId);
      return a && describeAccount(a, a.refresh, a.access);
    },
  };
  return self;
}

// ---------------------------------------------------------------------------
// Data: the GraphQL Admin API's `shop`, `orders`, `customers` and `events`.
//
// "customers(first: 250, after:, query: "updated_at:>'<ISO>'") and orders(…) the same way, Relay
// pageInfo{hasNextPage endCursor}". Cursors are keysets (base64 of {last_id, last_value}, the shape
// of Shopify's own), so rows never shift between pages. A deleted customer is gone from
// `customers`; its deletion is told by the `events` connection (subject_type:CUSTOMER,
// action:destroy), which is what an adapter must read to mark it inactive.

/** Per connection, as Shopify allows. */
const MAX_PAGE = 250;
/** "Query cost is N, which exceeds the single query max cost limit (1000)." */
const MAX_QUERY_COST = 1000;
const RATE_LIMIT_DOCS = "https://shopify.dev/api/usage/rate-limits";
/** Event ids are large numbers on Shopify; these stay clear of order and customer ids. */
const EVENT_ID_BASE = 90_000_000;

/** DateTime values have second precision ("2026-11-22T10:15:30Z"); filters compare what is shown. */
function shownMs(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

function dateTime(ms: number): string {
  return new Date(shownMs(ms)).toISOString().replace(".000Z", "Z");
}

function gid(type: string, id: number): string {
  return `gid://shopify/${type}/${id}`;
}

/** The Decimal scalar as Shopify renders it: "12.5", "12.0", "12.34". */
function decimal(cents: number): string {
  const text = (cents / 100).toFixed(2);
  return text.endsWith("0") ? text.slice(0, -1) : text;
}

function orderName(order: SandboxOrder): string {
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

function customerNode(customer: SandboxCustomer) {
  return {
    id: gid("Customer", customer.seq),
    email: customer.email,
    firstName: customer.firstName,
    lastName: customer.lastName,
    displayName: `${customer.firstName} ${customer.lastName}`,
    phone: customer.phone,
    state: "ENABLED",
    createdAt: dateTime(customer.createdAt),
    updatedAt: dateTime(customer.updatedAt),
  };
}

function orderNode(order: SandboxOrder, set: Dataset) {
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
function deletionEventNode(customer: SandboxCustomer) {
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
 * the ids; the deletion's time is the `X-Shopify-Triggered-At` header).
 */
function webhookOf(change: Change, set: Dataset): { topic: string; body: unknown } {
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

function truth(set: Dataset, stream: StreamName): TruthRecord[] {
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

// --- schema -----------------------------------------------------------------

const CONNECTION_ARGS = ["first", "after", "last", "before", "query", "sortKey", "reverse"];
const PAGE_INFO = { type: "PageInfo" };
const EVENT_FIELDS = {
  id: "ID",
  action: "String",
  createdAt: "DateTime",
  message: "FormattedString",
  appTitle: "String",
  attributeToApp: "Boolean",
  attributeToUser: "Boolean",
  criticalAlert: "Boolean",
};

function connectionTypes(node: string): Schema {
  return {
    [`${node}Connection`]: {
      fields: { edges: `${node}Edge`, nodes: node, pageInfo: PAGE_INFO },
    },
    [`${node}Edge`]: { fields: { cursor: "String", node } },
  };
}

const SCHEMA: Schema = {
  QueryRoot: {
    fields: {
      shop: "Shop",
      orders: { type: "OrderConnection", args: CONNECTION_ARGS },
      customers: { type: "CustomerConnection", args: CONNECTION_ARGS },
      events: { type: "EventConnection", args: CONNECTION_ARGS },
    },
  },
  Shop: { fields: { id: "ID", name: "String", myshopifyDomain: "String", email: "String" } },
  PageInfo: {
    fields: {
      hasNextPage: "Boolean",
      hasPreviousPage: "Boolean",
      startCursor: "String",
      endCursor: "String",
    },
  },
  ...connectionTypes("Order"),
  Order: {
    fields: {
      id: "ID",
      name: "String",
      email: "String",
      createdAt: "DateTime",
      processedAt: "DateTime",
      updatedAt: "DateTime",
      cancelledAt: "DateTime",
      closed: "Boolean",
      displayFinancialStatus: "OrderDisplayFinancialStatus",
      displayFulfillmentStatus: "OrderDisplayFulfillmentStatus",
      currencyCode: "CurrencyCode",
      totalPriceSet: "MoneyBag",
      customer: "Customer",
      fulfillments: { type: "Fulfillment", args: ["first"] },
    },
  },
  MoneyBag: { fields: { shopMoney: "MoneyV2", presentmentMoney: "MoneyV2" } },
  MoneyV2: { fields: { amount: "Decimal", currencyCode: "CurrencyCode" } },
  Fulfillment: {
    fields: {
      id: "ID",
      status: "FulfillmentStatus",
      createdAt: "DateTime",
      trackingInfo: { type: "FulfillmentTrackingInfo", args: ["first"] },
    },
  },
  FulfillmentTrackingInfo: { fields: { number: "String", company: "String", url: "URL" } },
  ...connectionTypes("Customer"),
  Customer: {
    fields: {
      id: "ID",
      email: "String",
      firstName: "String",
      lastName: "String",
      displayName: "String",
      phone: "String",
      state: "CustomerState",
      createdAt: "DateTime",
      updatedAt: "DateTime",
    },
  },
  ...connectionTypes("Event"),
  Event: { fields: EVENT_FIELDS, possibleTypes: ["BasicEvent", "CommentEvent"] },
  BasicEvent: {
    fields: { ...EVENT_FIELDS, subjectId: "ID", subjectType: "EventSubjectType" },
  },
  CommentEvent: { fields: { ...EVENT_FIELDS, rawMessage: "String" } },
};

// --- connections --------------------------------------------------------------

type Filter<T> =
  | { readonly kind: "time"; readonly get: (record: T) => number }
  | { readonly kind: "word"; readonly get: (record: T) => string };

/** One connection of the query root: its records, sort keys and search fields. */
interface Source<T> {
  readonly type: string;
  readonly sortKeyType: string;
  records(set: Dataset): Iterable<T>;
  id(record: T): number;
  readonly sortKeys: Readonly<Record<string, (record: T) => number>>;
  readonly filters: Readonly<Record<string, Filter<T>>>;
  node(record: T, set: Dataset): unknown;
}

const ORDERS: Source<SandboxOrder> = {
  type: "OrderConnection",
  sortKeyType: "OrderSortKeys",
  records: (set) => set.orders.values(),
  id: (order) => order.seq,
  sortKeys: {
    ID: (order) => order.seq,
    UPDATED_AT: (order) => shownMs(order.updatedAt),
    CREATED_AT: (order) => shownMs(order.createdAt),
    PROCESSED_AT: (order) => shownMs(order.createdAt),
  },
  filters: {
    updated_at: { kind: "time", get: (order) => order.updatedAt },
    created_at: { kind: "time", get: (order) => order.createdAt },
  },
  node: orderNode,
};

const CUSTOMERS: Source<SandboxCustomer> = {
  type: "CustomerConnection",
  sortKeyType: "CustomerSortKeys",
  // A deleted customer is simply not returned.
  records: (set) => [...set.customers.values()].filter((customer) => !customer.deleted),
  id: (customer) => customer.seq,
  sortKeys: {
    ID: (customer) => customer.seq,
    UPDATED_AT: (customer) => shownMs(customer.updatedAt),
    CREATED_AT: (customer) => shownMs(customer.createdAt),
  },
  filters: {
    updated_at: { kind: "time", get: (customer) => customer.updatedAt },
    created_at: { kind: "time", get: (customer) => customer.createdAt },
  },
  node: (customer) => customerNode(customer),
};

/** The only events the sandbox keeps: customer deletions. */
const EVENTS: Source<SandboxCustomer> = {
  type: "EventConnection",
  sortKeyType: "EventSortKeys",
  records: (set) => [...set.customers.values()].filter((customer) => customer.deleted),
  id: (customer) => EVENT_ID_BASE + customer.seq,
  sortKeys: {
    ID: (customer) => EVENT_ID_BASE + customer.seq,
    CREATED_AT: (customer) => shownMs(customer.updatedAt),
  },
  filters: {
    created_at: { kind: "time", get: (customer) => customer.updatedAt },
    subject_type: { kind: "word", get: () => "CUSTOMER" },
    action: { kind: "word", get: () => "destroy" },
  },
  node: (customer) => deletionEventNode(customer),
};

/** A root field checked and priced, ready to run once the bucket has paid for it. */
interface Plan {
  readonly field: FieldNode;
  readonly type: string;
  readonly requested: number;
  resolve(set: Dataset): { value: unknown; cost: number };
}

interface Keyset {
  readonly value: number;
  readonly id: number;
}

function encodeCursor(key: Keyset): string {
  return btoa(JSON.stringify({ last_id: key.id, last_value: String(key.value) }));
}

function decodeCursor(after: ArgValue | undefined): Keyset | undefined {
  if (after === undefined || after === null) return undefined;
  try {
    const parsed: unknown = JSON.parse(atob(String(after)));
    const { last_id, last_value } = parsed as Record<string, unknown>;
    const value = Number(last_value);
    if (Number.isInteger(last_id) && Number.isFinite(value)) {
      return { id: last_id as number, value };
    }
  } catch {
    // fall through
  }
  throw new GraphqlFault(
    `Invalid cursor for current pagination: ${String(after)}`,
    "invalidCursor",
  );
}

function invalidArgument(field: string, arg: string, value: unknown, type: string): GraphqlFault {
  return new GraphqlFault(
    `Argument '${arg}' on Field '${field}' has an invalid value (${
      JSON.stringify(value)
    }). Expected type '${type}'.`,
    "argumentLiteralsIncompatible",
  );
}

function planConnection<T>(source: Source<T>, field: FieldNode): Plan {
  const { args, name } = field;
  if (["last", "before"].some((arg) => (args.get(arg) ?? null) !== null) || args.get("reverse")) {
    throw new GraphqlFault(
      "The sandbox paginates forward only: last, before and reverse are not supported",
    );
  }
  const first = args.get("first");
  if (first === undefined || first === null) {
    throw new GraphqlFault("you must provide one of first or last");
  }
  if (!Number.isInteger(first) || (first as number) < 0) {
    throw invalidArgument(name, "first", first, "Int");
  }
  if ((first as number) > MAX_PAGE) {
    throw new GraphqlFault(
      `Requested count (${first}) for connection '${name}' exceeds the maximum page size of ${MAX_PAGE}`,
      "maxPageSizeExceeded",
    );
  }
  const sortKey = args.get("sortKey") ?? "ID";
  const keyOf = typeof sortKey === "string" ? source.sortKeys[sortKey] : undefined;
  if (!keyOf) throw invalidArgument(name, "sortKey", sortKey, source.sortKeyType);
  const tests = parseSearch(args.get("query"), source.filters);
  const after = decodeCursor(args.get("after"));
  const size = first as number;

  return {
    field,
    type: source.type,
    requested: 2 + size,
    resolve(set) {
      const keyed = [...source.records(set)]
        .filter((record) => tests.every((test) => test(record)))
        .map((record) => ({ record, value: keyOf(record), id: source.id(record) }))
        .sort((a, b) => a.value - b.value || a.id - b.id);
      let start = 0;
      if (after) {
        start = keyed.findIndex((k) =>
          k.value > after.value || (k.value === after.value && k.id > after.id)
        );
        if (start < 0) start = keyed.length;
      }
      const page = keyed.slice(start, start + size);
      const edges = page.map((k) => ({
        cursor: encodeCursor(k),
        node: source.node(k.record, set),
      }));
      return {
        value: {
          edges,
          nodes: edges.map((edge) => edge.node),
          pageInfo: {
            hasNextPage: start + size < keyed.length,
            hasPreviousPage: start > 0,
            startCursor: edges[0]?.cursor ?? null,
            endCursor: edges.at(-1)?.cursor ?? null,
          },
        },
        cost: 2 + page.length,
      };
    },
  };
}

// --- search syntax ------------------------------------------------------------

const SEARCH_TERM =
  /\s*(?:(AND)(?=\s|$)|([a-z_]+):(>=|<=|>|<)?(?:'([^']*)'|"([^"]*)"|([^\s'"()]+)))/y;
const SEARCH_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/**
 * Shopify's search syntax, the part the sandbox serves: `field:value` terms joined with AND, time
 * fields with a comparator (`updated_at:>='2026-11-22T10:15:30Z'`). Anything else is refused
 * rather than silently ignored.
 */
function parseSearch<T>(
  query: ArgValue | undefined,
  filters: Readonly<Record<string, Filter<T>>>,
): ((record: T) => boolean)[] {
  if (query === undefined || query === null) return [];
  if (typeof query !== "string") throw invalidArgument("query", "query", query, "String");
  const tests: ((record: T) => boolean)[] = [];
  const text = query.trim();
  let at = 0;
  while (at < text.length) {
    SEARCH_TERM.lastIndex = at;
    const match = SEARCH_TERM.exec(text);
    if (!match) {
      throw new GraphqlFault(
        `The sandbox's search supports only field:value terms joined with AND; cannot read ${
          JSON.stringify(text.slice(at))
        }`,
      );
    }
    at = SEARCH_TERM.lastIndex;
    if (match[1]) continue;
    const [, , name = "", op = "", quoted1, quoted2, bare] = match;
    const value = quoted1 ?? quoted2 ?? bare ?? "";
    const filter = filters[name];
    if (!filter) {
      throw new GraphqlFault(
        `The sandbox cannot search by ${name}; it supports ${Object.keys(filters).join(", ")}`,
      );
    }
    tests.push(searchTest(filter, name, op, value));
  }
  return tests;
}

function searchTest<T>(
  filter: Filter<T>,
  name: string,
  op: string,
  value: string,
): (record: T) => boolean {
  if (filter.kind === "word") {
    if (op !== "") throw new GraphqlFault(`${name} takes no comparator`);
    return (record) => filter.get(record).toLowerCase() === value.toLowerCase();
  }
  if (!SEARCH_TIME.test(value) || op === "") {
    throw new GraphqlFault(
      `${name} needs a comparator and an ISO 8601 time, e.g. ${name}:>='2026-11-22T10:15:30Z'`,
    );
  }
  const bound = Date.parse(value.length === 10 ? `${value}T00:00:00Z` : value);
  const compare = {
    ">=": (ms: number) => ms >= bound,
    "<=": (ms: number) => ms <= bound,
    ">": (ms: number) => ms > bound,
    "<": (ms: number) => ms < bound,
  }[op]!;
  return (record) => compare(shownMs(filter.get(record)));
}

// --- the endpoint -------------------------------------------------------------

function planRoot(field: FieldNode, account: { externalId: string; shop: string }): Plan {
  if (field.name === "shop") {
    return {
      field,
      type: "Shop",
      requested: 1,
      resolve: () => ({
        value: {
          id: gid("Shop", 1),
          name: `Sandbox ${account.externalId}`,
          myshopifyDomain: account.shop,
          email: `owner@${account.shop}`,
        },
        cost: 1,
      }),
    };
  }
  switch (field.name) {
    case "orders":
      return planConnection(ORDERS, field);
    case "customers":
      return planConnection(CUSTOMERS, field);
    default: // "events": validate() admits no other root field
      return planConnection(EVENTS, field);
  }
}

/** "every response carries extensions.cost{…}". */
function costExtension(
  requested: number,
  actual: number | null,
  available: number,
  size: BucketSize,
) {
  return {
    cost: {
      requestedQueryCost: requested,
      actualQueryCost: actual,
      throttleStatus: {
        maximumAvailable: size.capacity,
        currentlyAvailable: Math.floor(available),
        restoreRate: size.restorePerSecond,
      },
    },
  };
}

function graphqlError(fault: GraphqlFault): Response {
  return json({
    errors: [{
      message: fault.message,
      ...(fault.code ? { extensions: { code: fault.code } } : {}),
    }],
  });
}

async function serveGraphql(
  world: SandboxWorld,
  account: { externalId: string; shop: string },
  req: Request,
  now: number,
): Promise<Response> {
  const body = await readGraphqlRequest(req);
  if (!body) return json({ errors: { query: "Required parameter missing or invalid" } }, 400);
  let plans: Plan[];
  try {
    const roots = rootFields(parseQuery(body.query, body.variables, "ruby"));
    validate(SCHEMA, "QueryRoot", roots, "ruby");
    plans = roots.map((field) => planRoot(field, account));
  } catch (error) {
    if (error instanceof GraphqlFault) return graphqlError(error);
    throw error;
  }

  const size = world.limits.size("shopify");
  const requested = plans.reduce((sum, plan) => sum + plan.requested, 0);
  const maxCost = Math.min(MAX_QUERY_COST, size.capacity);
  if (requested > maxCost) {
    return json({
      errors: [{
        message:
          `Query cost is ${requested}, which exceeds the single query max cost limit (${maxCost}).\n\nSee ${RATE_LIMIT_DOCS} for more information on how to reduce the cost of your query.`,
        extensions: { code: "MAX_COST_EXCEEDED", cost: requested, maxCost },
      }],
    });
  }
  // "A throttled query is HTTP 200 with errors:[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]".
  const taken = world.limits.take("shopify", account.externalId, requested, now);
  if (!taken.ok) {
    return json({
      errors: [{
        message: "Throttled",
        extensions: { code: "THROTTLED", documentation: RATE_LIMIT_DOCS },
      }],
      extensions: costExtension(requested, null, taken.available, size),
    });
  }

  const set = world.data.get("shopify", account.externalId);
  const { data, charged: actual } = resolvePlans(SCHEMA, plans, set, (r) => r.cost);
  // What was reserved but not used (fewer nodes than `first`) goes back to the bucket.
  world.limits.refund("shopify", account.externalId, requested - actual, now);
  const available = world.limits.level("shopify", account.externalId, now);
  return json({ data, extensions: costExtension(requested, actual, available, size) });
}
