// Shopify Admin API. Two kinds of offline token: legacy ones never expire (no refresh token;
// "refresh" only verifies), expiring ones live an hour and their refresh token (90 days) rotates on
// every refresh, with one live token per app and shop.
//
// Data: orders and customers through the GraphQL Admin API ("REST is legacy since 2024-10"), read
// in ascending `updatedAt` with the time cursor (cursor.ts); the wire format and what is stored
// are in streams.ts. Every response reports the cost bucket (`extensions.cost.throttleStatus`),
// which corrects the connection's pacer after each request.

import { z } from "zod";
import { shopifyOAuth } from "./oauth.ts";
import { shopifyWebhooks } from "./webhook.ts";
import {
  baseConfigShape,
  credentialFields,
  defineFacts,
  pageSizeFor,
  parseConfig,
  requireCredential,
  seconds,
  token,
} from "../common.ts";
import { parseStoredCursor, readTimeCursor, timePage } from "../cursor.ts";
import { adapterHttp, after, baseUrls, type FieldPath, requireApp } from "../http.ts";
import {
  type AdapterContext,
  type ConnectionRef,
  type Credentials,
  type CustomerRecord,
  type OrderRecord,
  type ProviderAdapter,
  ProviderError,
  type ReadRequest,
  type StreamPage,
  type TokenGrant,
} from "../types.ts";
import {
  connectionCost,
  CUSTOMERS_QUERY,
  customersData,
  DEFAULT_DELETION_ACTION,
  deletionsQuery,
  isOrdersData,
  MAX_PAGE_SIZE,
  mergeCustomerPage,
  ORDERS_QUERY,
  ordersData,
  pairToken,
  timeWindow,
  toOrderRecord,
  withheldColumn,
} from "./streams.ts";

const PROVIDER = "shopify";

export const configSchema = z.strictObject({
  shop: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*\.myshopify\.com$/, 'expected "<name>.myshopify.com"'),
  /** The scopes Shopify granted (the code exchange's `scope`), comma-separated; not a secret. */
  granted_scopes: z.string().optional(),
  /** The `action` of a customer deletion in `events` (streams.ts DEFAULT_DELETION_ACTION). */
  customer_deletion_action: z.string().regex(/^[a-z_]+$/, "expected a word like destroy")
    .optional(),
  ...baseConfigShape,
});
export type ShopifyConfig = z.output<typeof configSchema>;

const credentials = credentialFields(PROVIDER, {
  access_token: token,
  refresh_token: token.optional(),
});
export const credentialsSchema = credentials.accepted;

export const facts = defineFacts({
  displayName: "Shopify",
  revocationHint:
    "Revoking a Shopify grant uninstalls the app from the shop (appUninstall); the shop's webhooks to the app end with it.",
  authMode: "oauth2",
  supportsRefresh: true, // expiring offline tokens only; legacy tokens are verified instead
  rotatesRefreshToken: true,
  refreshMarginSeconds: 15 * 60, // access tokens live 3600 s
  refreshTokenIdleSeconds: 90 * 24 * 3600, // 90 days, renewed by every refresh
  appEnv: { clientId: "SHOPIFY_CLIENT_ID", clientSecret: "SHOPIFY_CLIENT_SECRET" },
  defaultRetryAfterSeconds: 2,
  // "restore 100 points/s"; current plans hold 2000 points (older: 1000, restore 50)
  backfillReadsWholeRange: false,
  rateLimit: { capacity: 2000, restorePerSecond: 100 },
  tokenPath: "/admin/oauth/access_token",
  // Shopify supports a version for at least 12 months and falls forward past it
  // (shopify.dev/docs/api/usage/versioning): 2025-10 was past that by 2026-12; 2026-10 is the
  // newest stable release in @shopify/dev-mcp 1.16.0 (tests/fixtures/shopify/SOURCE.md).
  apiVersion: "2026-10",
  // "first ≤ 250" per connection; the default reads as much as a page allows.
  pageSize: { default: MAX_PAGE_SIZE, max: MAX_PAGE_SIZE },
  graphqlPath: (apiVersion: string) => `/admin/api/${apiVersion}/graphql.json`,
  /**
   * The `Order` description (Admin 2025-10 … 2026-10 introspection): "Only the last 60 days' worth of orders
   * from a store are accessible from the `Order` object by default. If you want to access older
   * records, then you need to request access to all orders … add the `read_all_orders` … scopes."
   * Older orders are simply absent, with no error.
   */
  ordersWindow: { days: 60, unlessScope: "read_all_orders" },
  defaultAuthBaseUrl: (config: ShopifyConfig) => `https://${config.shop}`,
  defaultApiBaseUrl: (config: ShopifyConfig) => `https://${config.shop}`,
});

/** shopify-app-js `refresh-token.ts`: the fields used; `scope` is informational. */
export const refreshResponse = z.object({
  access_token: token,
  expires_in: seconds,
  refresh_token: token,
  refresh_token_expires_in: seconds,
  scope: z.string().optional(),
});

export const VERIFY_QUERY = "{ shop { name } }";
export const verifyData = z.object({ shop: z.looseObject({ name: z.string() }) });

function accessToken(creds: Credentials): string {
  return requireCredential(PROVIDER, creds, "access_token");
}

const clients = adapterHttp(PROVIDER, facts);

/** The Admin API, as the connection's access token. */
function apiClient(ctx: AdapterContext, config: ShopifyConfig, stored: Credentials) {
  return clients.api(ctx, config, authHeaders(stored), stored);
}

/** "X-Shopify-Access-Token: <token>" on every Admin API call (shopify.dev "Authentication"). */
function authHeaders(stored: Credentials): Record<string, string> {
  return { "x-shopify-access-token": accessToken(stored) };
}

/** An Admin API path without its version: `/admin/api/graphql.json`, `/admin/api/orders.json`. */
const UNVERSIONED_ADMIN = /^\/admin\/api\/(?!\d{4}-\d{2}\/|unstable\/)/;

/** The shop's token endpoint (refresh, and the code exchange of ./oauth.ts). */
export const tokenClient = clients.token;

async function refresh(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<TokenGrant> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const creds = credentials.parse(stored);
  if (creds.refresh_token === undefined) {
    // A legacy offline token: nothing to renew, only check it still works.
    await verify(ctx, conn, stored);
    return {
      credentials: { access_token: creds.access_token },
      accessTokenExpiresAt: null,
      refreshTokenExpiresAt: null,
      refreshTokenRotated: false,
    };
  }
  const app = requireApp(ctx, PROVIDER, facts);
  const now = ctx.now();
  const { data } = await tokenClient(ctx, baseUrls(facts, config).auth, [
    ...Object.values(stored),
    app.clientSecret,
  ]).postJson("refresh response", facts.tokenPath, {
    client_id: app.clientId,
    client_secret: app.clientSecret,
    refresh_token: creds.refresh_token,
    grant_type: "refresh_token",
  }, refreshResponse);
  return {
    credentials: { access_token: data.access_token, refresh_token: data.refresh_token },
    accessTokenExpiresAt: after(now, data.expires_in),
    refreshTokenExpiresAt: after(now, data.refresh_token_expires_in),
    refreshTokenRotated: data.refresh_token !== creds.refresh_token,
    ...(data.scope === undefined ? {} : { accountConfig: { granted_scopes: data.scope } }),
  };
}

/**
 * "appUninstall: Uninstalls an App from a shop. Apps use this mutation to uninstall themselves"
 * (Admin GraphQL 2026-10): the only way Shopify documents to end an app's access to a shop, after
 * which every token of the grant is unusable (shopify.dev, "Uninstall a Shopify app with an API
 * request"). Irreversible: a later connect is a new install.
 */
export const UNINSTALL_MUTATION = `mutation TetherDisconnect {
  appUninstall { app { id } userErrors { field message code } }
}`;

const uninstallData = z.object({
  appUninstall: z.object({
    userErrors: z.array(z.object({ message: z.string(), code: z.string().nullish() })),
  }),
});

async function revoke(ctx: AdapterContext, conn: ConnectionRef, stored: Credentials) {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const { data } = await apiClient(ctx, config, stored).graphql(
    "uninstall response",
    facts.graphqlPath(facts.apiVersion),
    { query: UNINSTALL_MUTATION },
    uninstallData,
  );
  const refused = data.appUninstall.userErrors[0];
  if (refused) {
    throw new ProviderError(
      PROVIDER,
      "bad_request",
      `shopify appUninstall refused: ${refused.message}`,
    );
  }
}

async function verify(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<void> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  await apiClient(ctx, config, stored).graphql(
    "verify response",
    facts.graphqlPath(facts.apiVersion),
    { query: VERIFY_QUERY },
    verifyData,
  );
}

// ---------------------------------------------------------------------------------------------
// The data half

/** "extensions.cost{requestedQueryCost, actualQueryCost, throttleStatus{…}}". */
const queryCost = z.object({
  requestedQueryCost: z.number(),
  actualQueryCost: z.number().nullable(),
  throttleStatus: z.object({
    maximumAvailable: z.number(),
    currentlyAvailable: z.number(),
    restoreRate: z.number(),
  }),
});

interface Query {
  /** Names the page in messages: "orders page". */
  what: string;
  query: string;
  variables: Record<string, unknown>;
  /** Points to reserve before sending: what Shopify will request for the query. */
  estimatedCost: number;
}

/**
 * One paced GraphQL call: reserve the estimated cost, send, correct the pacer from the reported
 * bucket, then throw GraphQL errors (THROTTLED = "rate_limited" with the wait the bucket implies)
 * and validate `data` (messages name the field: `data.orders.edges[3].node.updatedAt`).
 */
async function query<S extends z.ZodType>(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  q: Query,
  dataSchema: S,
  acceptDenied?: (path: FieldPath) => boolean,
  accepts?: (data: unknown) => boolean,
): Promise<{ data: z.output<S>; denied: FieldPath[] }> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  await ctx.pacer?.take(q.estimatedCost, ctx.signal);
  const { data, denied } = await apiClient(ctx, config, stored).graphql(
    q.what,
    facts.graphqlPath(facts.apiVersion),
    { query: q.query, variables: q.variables },
    dataSchema,
    {
      inspect: (extensions) => observeCost(ctx, extensions?.cost, q.estimatedCost),
      acceptDenied,
      accepts,
    },
  );
  return { data, denied };
}

/**
 * Corrects the pacer from the reported bucket, and returns how long a throttled query must wait:
 * the distance from the bucket to the query's cost at the restore rate. What was reserved beyond
 * the query's `actualQueryCost` (none of it when throttled: null) is given back first: the
 * requested cost is only reserved, the actual one charged (shopify.dev/docs/apps/build/apis/
 * graphql-admin/rate-limits), and a shared budget, which a report can only lower, would otherwise
 * keep the difference charged (a customers page reserves twice its connection's cost).
 */
function observeCost(ctx: AdapterContext, report: unknown, reserved: number): number | undefined {
  const cost = queryCost.safeParse(report);
  if (!cost.success) return undefined;
  const { currentlyAvailable, maximumAvailable, restoreRate } = cost.data.throttleStatus;
  ctx.pacer?.observe({
    available: currentlyAvailable,
    capacity: maximumAvailable,
    restorePerSecond: restoreRate,
    refund: Math.max(0, reserved - (cost.data.actualQueryCost ?? 0)),
  });
  if (restoreRate <= 0) return undefined;
  const missing = Math.max(0, cost.data.requestedQueryCost - currentlyAvailable);
  return Math.max(1, Math.ceil((missing / restoreRate) * 1000));
}

/** Orders changed in [since, until], oldest change first. */
async function readOrders(
  ctx: AdapterContext,
  conn: ConnectionRef,
  creds: Credentials,
  req: ReadRequest,
): Promise<StreamPage<OrderRecord>> {
  const cursor = readTimeCursor(PROVIDER, req.cursor, req.from);
  const first = pageSizeFor(facts, req.pageSize);
  const { data } = await query(
    ctx,
    conn,
    creds,
    {
      what: "orders page",
      query: ORDERS_QUERY,
      variables: {
        first,
        after: cursor.after ?? null,
        query: timeWindow("updated_at", cursor.since, req.until),
      },
      estimatedCost: connectionCost(first),
    },
    ordersData,
    undefined,
    isOrdersData,
  );
  const { edges, pageInfo } = data.orders;
  return timePage(edges.map((edge) => toOrderRecord(edge.node)), {
    cursor,
    until: req.until,
    nextToken: pageInfo.endCursor,
    hasMore: pageInfo.hasNextPage,
  });
}

/**
 * Customers changed in [since, until] and customers deleted in it (inactive), oldest first. Both
 * connections go in one request; `after` holds where each continues within a run of ties.
 */
async function readCustomers(
  ctx: AdapterContext,
  conn: ConnectionRef,
  creds: Credentials,
  req: ReadRequest,
): Promise<StreamPage<CustomerRecord>> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const deletionAction = config.customer_deletion_action ?? DEFAULT_DELETION_ACTION;
  const cursor = readTimeCursor(PROVIDER, req.cursor, req.from);
  const previous = cursor.after === undefined
    ? {}
    : parseStoredCursor(PROVIDER, pairToken, cursor.after);
  const first = pageSizeFor(facts, req.pageSize);
  const { data, denied } = await query(
    ctx,
    conn,
    creds,
    {
      what: "customers page",
      query: CUSTOMERS_QUERY,
      variables: {
        first,
        after: previous.customers ?? null,
        query: timeWindow("updated_at", cursor.since, req.until),
        deletionsAfter: previous.deletions ?? null,
        deletionsQuery: deletionsQuery(cursor.since, req.until, deletionAction),
      },
      estimatedCost: 2 * connectionCost(first),
    },
    customersData,
    (path) => withheldColumn(path) !== undefined,
  );
  const page = mergeCustomerPage(data, previous, deletionAction);
  const withheld = [...new Set(denied.map((path) => withheldColumn(path)!))].sort();
  return {
    ...timePage(page.records, {
      cursor,
      until: req.until,
      nextToken: page.nextToken,
      hasMore: page.hasMore,
    }),
    ...(withheld.length > 0 ? { withheld } : {}),
  };
}

/** The scopes the app holds on the shop, as Shopify reports them. */
export const ACCESS_SCOPES_QUERY = "{ currentAppInstallation { accessScopes { handle } } }";

export const accessScopesData = z.object({
  currentAppInstallation: z.object({
    accessScopes: z.array(z.looseObject({ handle: z.string() })),
  }),
});

/**
 * The scopes the connection holds: the ones the code exchange granted (config.granted_scopes),
 * else (a connection made with a pasted token, or before they were stored) Shopify's own answer.
 */
async function grantedScopes(
  ctx: AdapterContext,
  conn: ConnectionRef,
  creds: Credentials,
): Promise<string[]> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  if (config.granted_scopes !== undefined) return splitScopes(config.granted_scopes);
  const { data } = await query(ctx, conn, creds, {
    what: "access scopes",
    query: ACCESS_SCOPES_QUERY,
    variables: {},
    estimatedCost: 1,
  }, accessScopesData);
  return data.currentAppInstallation.accessScopes.map((scope) => scope.handle);
}

export function splitScopes(text: string): string[] {
  return text.split(",").map((scope) => scope.trim()).filter((scope) => scope !== "");
}

/**
 * Orders older than the window are absent without `read_all_orders` (facts.ordersWindow), so a
 * backfill of orders starting before it is refused rather than "done" with nothing.
 */
async function backfillRefusal(
  ctx: AdapterContext,
  conn: ConnectionRef,
  creds: Credentials,
  req: { stream: string; rangeStart: Date },
): Promise<string | undefined> {
  if (req.stream !== "orders") return undefined;
  const { days, unlessScope } = facts.ordersWindow;
  const windowStart = new Date(ctx.now().getTime() - days * 86_400_000);
  if (req.rangeStart.getTime() >= windowStart.getTime()) return undefined;
  if ((await grantedScopes(ctx, conn, creds)).includes(unlessScope)) return undefined;
  return `shopify: the connection lacks the ${unlessScope} scope, so Shopify returns only the ` +
    `orders of the last ${days} days (no error, just nothing older); the range starts ` +
    `${req.rangeStart.toISOString()}, before ${windowStart.toISOString()}. Reconnect with ` +
    `${unlessScope} granted (it needs Shopify's approval for public apps), or start the range ` +
    `after ${windowStart.toISOString()}`;
}

export const shopifyAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  revoke,
  accessToken,
  proxy: {
    tokenType: "x-shopify-access-token",
    authHeaders,
    // A query's cost is known only once Shopify runs it (extensions.cost): charged as a medium
    // one of the 2000-point bucket.
    requestCost: 50,
    apiVersion: () => facts.apiVersion,
    // An unversioned Admin path would get Shopify's oldest supported version
    // (shopify.dev/docs/api/usage/versioning): it gets the one Tether's own calls use.
    versioned: (path) =>
      UNVERSIONED_ADMIN.test(path)
        ? path.replace("/admin/api/", `/admin/api/${facts.apiVersion}/`)
        : path,
    graphqlPath: /^\/admin\/api\/[^/]+\/graphql\.json$/,
  },
  streams: { orders: readOrders, customers: readCustomers },
  webhooks: shopifyWebhooks,
  oauth: shopifyOAuth,
  backfillRefusal,
} as const satisfies ProviderAdapter<typeof facts>;
