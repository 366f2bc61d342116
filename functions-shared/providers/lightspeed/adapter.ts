// Lightspeed Retail (X-Series, formerly Vend). Refresh tokens rotate (the old one is revoked at
// once) and die after about 30 idle days; the access-token lifetime varies between sources, so it
// is always taken from the response. Sales (orders) and customers are read by version
// (./streams.ts).

import { z } from "zod";
import { lightspeedOAuth } from "./oauth.ts";
import { lightspeedWebhooks } from "./webhook.ts";
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
import { adapterHttp, after, baseUrls, requireApp } from "../http.ts";
import { ProviderError } from "../types.ts";
import { type Pacer, windowBucket } from "../pacing.ts";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
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
  /**
   * The store's retailer id (GET /api/2.0/retailer → data.id): how a webhook whose form leaves
   * out `domain_prefix` is routed, from the `retailer_id` its payload carries. Optional.
   */
  retailer_id: z.string().regex(/^[0-9a-f-]{8,64}$/i, "expected the retailer's id (a UUID)")
    .optional(),
  /**
   * How long an unused refresh token lives, in days. No Lightspeed page states it; 30
   * is what practice reports, and the default. A shorter value makes Tether renew sooner.
   */
  refresh_token_idle_days: z.number().int().min(1).max(365).optional(),
  /**
   * The API version in the data paths: "2.0" (default) or a date version ("2026-01"), which
   * Lightspeed introduced in 2026, each supported at least 12 months
   * (x-series-api.lightspeedhq.com/docs/versioning-strategy). No retirement date for 2.0 is
   * published, so 2.0 stays the default; a connection can move on its own.
   */
  api_version: z.string().regex(
    /^(2\.0|\d{4}-\d{2})$/,
    'expected "2.0" or a date version "YYYY-MM"',
  )
    .optional(),
  ...baseConfigShape,
});
export type LightspeedConfig = z.output<typeof configSchema>;

const credentials = credentialFields(PROVIDER, {
  refresh_token: token,
  access_token: token.optional(),
});
export const credentialsSchema = credentials.accepted;

/** The X-Series rate limiter's window: "based on a 5 minute (300 seconds) window". */
const RATE_WINDOW_SECONDS = 300;

export const facts = defineFacts({
  displayName: "Lightspeed",
  // X-Series documents no token revocation endpoint.
  revocationHint:
    "Lightspeed documents no way for an app to revoke its token: remove the app from the store's connected apps in Lightspeed Retail.",
  authMode: "oauth2",
  supportsRefresh: true,
  rotatesRefreshToken: true,
  // Lifetimes from 30 minutes to 7 days are reported; the margin must suit the shortest.
  refreshMarginSeconds: 10 * 60,
  refreshTokenIdleSeconds: 30 * 24 * 3600,
  appEnv: { clientId: "LIGHTSPEED_CLIENT_ID", clientSecret: "LIGHTSPEED_CLIENT_SECRET" },
  defaultRetryAfterSeconds: 2,
  backfillReadsWholeRange: true,
  // "300 x <number of registers> + 50 … a limit of 350 requests [for one register] … based on a
  // 5 minute (300 seconds) window" (x-series-api.lightspeedhq.com/docs/rate_limiting), paced as
  // a window (pacing.ts windowBucket); X-RateLimit-Limit gives a retailer's own figure.
  rateLimit: windowBucket(350, RATE_WINDOW_SECONDS),
  tokenPath: "/api/1.0/token",
  /** The API version of the data paths unless the connection's config names one. */
  defaultApiVersion: "2.0",
  verifyPath: (version: string) => `/api/${version}/outlets`,
  retailerPath: (version: string) => `/api/${version}/retailer`,
  salesPath: (version: string) => `/api/${version}/sales`,
  customersPath: (version: string) => `/api/${version}/customers`,
  /**
   * The documented maximum `page_size` is 200 (reported from x-series-api.lightspeedhq.com by an
   * independent client, glama.ai genvjacobc/lightspeed-x-mcp: "the documented max page_size is
   * 200", although larger pages are served); Tether stays within the documented limit.
   */
  pageSize: { default: 200, max: 200 },
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

/** The refresh token's idle lifetime: the connection's `refresh_token_idle_days`, or the fact. */
export function idleSeconds(config: { refresh_token_idle_days?: number | undefined }): number {
  return config.refresh_token_idle_days === undefined
    ? facts.refreshTokenIdleSeconds
    : config.refresh_token_idle_days * 86_400;
}

function accessToken(creds: Credentials): string {
  return requireCredential(PROVIDER, creds, "access_token", "refresh the connection first");
}

const clients = adapterHttp(PROVIDER, facts);

/** The store's API, as the connection's access token. */
function apiClient(ctx: AdapterContext, config: LightspeedConfig, stored: Credentials) {
  return clients.api(ctx, config, authHeaders(stored), stored);
}

/** "Authorization: Bearer <access_token>" (x-series-api.lightspeedhq.com/docs/authorization). */
function authHeaders(stored: Credentials): Record<string, string> {
  return { authorization: `Bearer ${accessToken(stored)}` };
}

/** The token endpoint (refresh, and the code exchange of ./oauth.ts). */
export const tokenClient = clients.token;

/** "GET /api/2.0/retailer" (changelog "2020-03 New Retailer API"): the store's own record. */
export const retailerResponse = z.looseObject({
  data: z.looseObject({ id: z.string().min(1) }),
});

/**
 * The store's retailer id, which API 1.0 webhook payloads carry as `retailer_id` (how a delivery
 * without `domain_prefix` is routed); undefined when the store does not answer it (a token without
 * the scope, an outage), since the connection works without it.
 */
export async function retailerIdOf(
  ctx: AdapterContext,
  config: LightspeedConfig,
  stored: Credentials,
): Promise<string | undefined> {
  try {
    const { data } = await apiClient(ctx, config, stored).get(
      "retailer response",
      facts.retailerPath(apiVersion(config)),
      retailerResponse,
    );
    return data.data.id;
  } catch (err) {
    if (err instanceof ProviderError) return undefined;
    throw err;
  }
}

async function refresh(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<TokenGrant> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const creds = credentials.parse(stored);
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
    refreshTokenExpiresAt: after(now, idleSeconds(config)),
    refreshTokenRotated: data.refresh_token !== creds.refresh_token,
  };
}

async function verify(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<void> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  await apiClient(ctx, config, stored).get(
    "verify response",
    facts.verifyPath(apiVersion(config)),
    verifyResponse,
  );
}

// ---------------------------------------------------------------------------------------------
// Streams

function apiVersion(config: LightspeedConfig): string {
  return config.api_version ?? facts.defaultApiVersion;
}

interface VersionedList<S extends z.ZodType, R> {
  stream: "orders" | "customers";
  path: (version: string) => string;
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
    list.path(apiVersion(config)),
    pageSchema(list.record),
    { after: String(cursor.version), page_size: String(pageSize), ...list.params },
  );
  observeRateLimit(ctx.pacer, headers);

  const records = data.data as z.output<S>[];
  const next = nextVersionCursor(cursor, records, data.version?.max);
  return {
    // One argument only: toOrder/toCustomer take an optional `raw` second, which Array.map would
    // fill with the record's index (raw = 0, 1, … made a same-second change look unchanged).
    records: changedSince(records, cursor).map((record) => list.map(record)),
    cursor: JSON.stringify(next.hasMore ? next.cursor : { version: next.cursor.version }),
    hasMore: next.hasMore,
  };
}

/**
 * "X-RateLimit-Limit (… the limit based on your request)" and "X-RateLimit-Remaining (… how much
 * you have left until you reach your limit)", in every JSON response
 * (x-series-api.lightspeedhq.com/docs/rate_limiting): the limit sizes the pacer's window model
 * (a retailer with more registers has more), and what is left of the window caps the level
 * without being it (a fresh window's 350 is not a burst the pacer may spend at once).
 */
function observeRateLimit(pacer: Pacer | undefined, headers: Headers): void {
  const remaining = Number(headers.get("x-ratelimit-remaining") ?? Number.NaN);
  const limit = Number(headers.get("x-ratelimit-limit") ?? Number.NaN);
  if (!Number.isFinite(remaining)) return;
  pacer?.observe({
    available: remaining,
    bound: true,
    ...(Number.isFinite(limit) && limit > 0 ? windowBucket(limit, RATE_WINDOW_SECONDS) : {}),
  });
}

/** A reader of one version-paged list, oldest change first (the adapter's `streams`). */
function versioned<S extends z.ZodType<{ version: number; updated_at: string }>, R>(
  list: VersionedList<S, R>,
) {
  return (ctx: AdapterContext, conn: ConnectionRef, stored: Credentials, req: ReadRequest) =>
    readVersioned(ctx, conn, stored, req, list);
}

export const lightspeedAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  accessToken,
  proxy: {
    tokenType: "bearer",
    authHeaders,
    // The bucket counts requests.
    requestCost: 1,
    // Each endpoint names its version in the path (/api/2.0/sales, /api/2.1/products/{id}): the
    // caller's path is sent as it is; the connection's data version is reported to the caller.
    apiVersion: (config) => apiVersion(config as LightspeedConfig),
    observe: (pacer, headers) => observeRateLimit(pacer, headers),
  },
  streams: {
    /** Sales. */
    orders: versioned({
      stream: "orders",
      path: facts.salesPath,
      record: saleSchema,
      map: toOrder,
    }),
    /** Customers; deleted ones too, so that a deletion reaches Tether. */
    customers: versioned({
      stream: "customers",
      path: facts.customersPath,
      record: customerSchema,
      map: toCustomer,
      // "deleted: true = include deleted records (default: active only)", as an independent
      // client reads the list endpoints' reference (glama.ai usefulapi lightspeed-x-series
      // list_customers).
      params: { deleted: "true" },
    }),
  },
  webhooks: lightspeedWebhooks,
  oauth: lightspeedOAuth,
} as const satisfies ProviderAdapter<typeof facts>;
