// Lightspeed Retail (X-Series, formerly Vend). Refresh tokens rotate (the old one is revoked at
// once) and die after about 30 idle days; the access-token lifetime varies between sources, so it
// is always taken from the response. Sales (orders) and customers are read by version
// (./streams.ts).

import { z } from "zod";
import { lightspeedOAuth } from "./oauth.ts";
import { lightspeedWebhooks } from "./webhook.ts";
import {
  baseConfigShape,
  defineFacts,
  pageSizeFor,
  parseConfig,
  parseCredentials,
  requireCredential,
  seconds,
  token,
} from "../common.ts";
import { adapterHttp, after, baseUrls, requireApp } from "../http.ts";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
  CustomerRecord,
  OrderRecord,
  ProviderAdapter,
  ReadRequest,
  StreamPage,
  TokenGrant,
} from "../types.ts";
import {
  changedSince,
  customerSchema,
  nextVersionCursor,
  pageSchema,
  readVersionCursor,
  saleSchema,
  toCustomer,
  toOrder,
} from "./streams.ts";

const PROVIDER = "lightspeed";

export const configSchema = z.strictObject({
  domain_prefix: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*$/i, "expected the store's domain prefix (letters, digits, -)"),
  ...baseConfigShape,
});
export type LightspeedConfig = z.output<typeof configSchema>;

const credentialsShape = { refresh_token: token, access_token: token.optional() };
export const credentialsSchema = z.strictObject(credentialsShape);
const storedCredentials = z.object(credentialsShape);

export const facts = defineFacts({
  displayName: "Lightspeed",
  authMode: "oauth2",
  supportsRefresh: true,
  rotatesRefreshToken: true,
  // Lifetimes from 30 minutes to 7 days are reported; the margin must suit the shortest.
  refreshMarginSeconds: 10 * 60,
  refreshTokenIdleSeconds: 30 * 24 * 3600,
  appEnv: { clientId: "LIGHTSPEED_CLIENT_ID", clientSecret: "LIGHTSPEED_CLIENT_SECRET" },
  defaultRetryAfterSeconds: 2,
  // "300 × registers + 50 requests per 5 minutes", one register
  backfillReadsWholeRange: true,
  rateLimit: { capacity: 350, restorePerSecond: 350 / 300 },
  tokenPath: "/api/1.0/token",
  verifyPath: "/api/2.0/outlets",
  salesPath: "/api/2.0/sales",
  customersPath: "/api/2.0/customers",
  /** Records per page unless the caller asks; the API's own limit is UNCONFIRMED, so stay modest. */
  pageSize: { default: 200, max: 1000 },
  defaultAuthBaseUrl: (config: LightspeedConfig) =>
    `https://${config.domain_prefix}.retail.lightspeed.app`,
  defaultApiBaseUrl: (config: LightspeedConfig) =>
    `https://${config.domain_prefix}.retail.lightspeed.app`,
});

/** `expires_in` is preferred; `expires` (unix seconds) is the fallback; one of them must be there. */
export const refreshResponse = z
  .object({
    access_token: token,
    refresh_token: token,
    expires_in: seconds.optional(),
    expires: z.number().positive().optional(),
    token_type: z.string().optional(),
    domain_prefix: z.string().optional(),
    scope: z.string().optional(),
  })
  .check((ctx) => {
    if (ctx.value.expires_in === undefined && ctx.value.expires === undefined) {
      ctx.issues.push({
        code: "custom",
        path: ["expires_in"],
        message: 'expected number (or "expires", unix seconds), received undefined',
        input: ctx.value,
      });
    }
  });

export const verifyResponse = z.looseObject({ data: z.array(z.unknown()) });

function accessToken(creds: Credentials): string {
  return requireCredential(PROVIDER, creds, "access_token", "refresh the connection first");
}

const clients = adapterHttp(PROVIDER, facts);

/** The store's API, as the connection's access token. */
function apiClient(ctx: AdapterContext, config: LightspeedConfig, stored: Credentials) {
  return clients.api(ctx, config, { authorization: `Bearer ${accessToken(stored)}` }, stored);
}

/** The token endpoint (refresh, and the code exchange of ./oauth.ts). */
export const tokenClient = clients.token;

async function refresh(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<TokenGrant> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const creds = parseCredentials(PROVIDER, stored, storedCredentials);
  const app = requireApp(ctx, PROVIDER, facts);
  const now = ctx.now();
  const token = tokenClient(ctx, baseUrls(facts, config).auth, [
    ...Object.values(stored),
    app.clientSecret,
  ]);
  const { data } = await token.postForm("refresh response", facts.tokenPath, {
    refresh_token: creds.refresh_token,
    client_id: app.clientId,
    client_secret: app.clientSecret,
    grant_type: "refresh_token",
  }, refreshResponse);
  const accessTokenExpiresAt = data.expires_in !== undefined
    ? after(now, data.expires_in)
    : new Date((data.expires as number) * 1000);
  return {
    credentials: { access_token: data.access_token, refresh_token: data.refresh_token },
    accessTokenExpiresAt,
    refreshTokenExpiresAt: after(now, facts.refreshTokenIdleSeconds),
    refreshTokenRotated: data.refresh_token !== creds.refresh_token,
  };
}

async function verify(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<void> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  await apiClient(ctx, config, stored).get("verify response", facts.verifyPath, verifyResponse);
}

// ---------------------------------------------------------------------------------------------
// Streams

interface VersionedList<S extends z.ZodType, R> {
  stream: "orders" | "customers";
  path: string;
  record: S;
  map: (record: z.output<S>) => R;
  /** Extra query parameters. */
  params?: Record<string, string>;
}

/** One page of a version-paged list, read after the cursor's version. */
async function readVersioned<S extends z.ZodType<{ version: number; updated_at: string }>, R>(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  req: ReadRequest,
  list: VersionedList<S, R>,
): Promise<StreamPage<R>> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const cursor = readVersionCursor(req.cursor, req.from);
  const pageSize = pageSizeFor(facts, req.pageSize);
  await ctx.pacer?.take(1, ctx.signal);
  const { data, headers } = await apiClient(ctx, config, stored).get(
    `${list.stream} page`,
    list.path,
    pageSchema(list.record),
    { after: String(cursor.version), page_size: String(pageSize), ...list.params },
  );
  observeRateLimit(ctx, headers);

  const records = data.data as z.output<S>[];
  const next = nextVersionCursor(cursor, records, data.version?.max);
  return {
    records: changedSince(records, cursor).map(list.map),
    cursor: JSON.stringify(next.hasMore ? next.cursor : { version: next.cursor.version }),
    hasMore: next.hasMore,
  };
}

/**
 * X-Series is reported to send `X-RateLimit-Limit` / `X-RateLimit-Remaining` (UNCONFIRMED); when
 * it does, the pacer's model follows them.
 */
function observeRateLimit(ctx: AdapterContext, headers: Headers): void {
  const remaining = Number(headers.get("x-ratelimit-remaining") ?? Number.NaN);
  const limit = Number(headers.get("x-ratelimit-limit") ?? Number.NaN);
  if (!Number.isFinite(remaining)) return;
  ctx.pacer?.observe({
    available: remaining,
    ...(Number.isFinite(limit) && limit > 0 ? { capacity: limit } : {}),
  });
}

/** Sales, oldest change first. */
function readOrders(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  req: ReadRequest,
): Promise<StreamPage<OrderRecord>> {
  return readVersioned(ctx, conn, stored, req, {
    stream: "orders",
    path: facts.salesPath,
    record: saleSchema,
    map: toOrder,
  });
}

/** Customers, oldest change first; deleted ones too, so that a deletion reaches Tether. */
function readCustomers(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  req: ReadRequest,
): Promise<StreamPage<CustomerRecord>> {
  return readVersioned(ctx, conn, stored, req, {
    stream: "customers",
    path: facts.customersPath,
    record: customerSchema,
    map: toCustomer,
    params: { deleted: "true" },
  });
}

export const lightspeedAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  accessToken,
  streams: { orders: readOrders, customers: readCustomers },
  webhooks: lightspeedWebhooks,
  oauth: lightspeedOAuth,
} as const satisfies ProviderAdapter<typeof facts>;
