// ShipHero (GraphQL). The refresh token is static while the account is active: the refresh
// response carries only a new access token (28 days), so the stored refresh token is kept.
//
// Data: orders only, read in ascending `updated_at` with the time cursor (cursor.ts); the wire
// format and what is stored are in streams.ts. Responses report the `complexity` charged but not
// the credits left, so the pacer keeps its own model of the bucket (credits.ts: a documented
// default or the connection's `credit_bucket`): it reserves the expected complexity, gives back
// what the response says was not charged, and takes what a throttle reports (credits left, credits
// required, the wait) as the truth about the bucket.
//
// Webhooks (webhook.ts) are verified with one secret per webhook type: `webhook_create` returns a
// `shared_signature_secret` per Webhook object. They are stored as `webhook_secret_<type>` fields
// (`webhook_secret_shipment_update`, …); `connect` also takes them as `webhook_secrets: {"Shipment
// Update": "…"}`. A single `webhook_secret` (the earlier form) still verifies every type.

import { z } from "zod";
import { shipheroWebhooks, webhookSecretField } from "./webhook.ts";
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
import { readTimeCursor, timePage } from "../cursor.ts";
import { adapterHttp, after, baseUrls, type GraphqlError } from "../http.ts";
import { creditBucket, creditBucketConfig, creditThrottle, observedBucket } from "./credits.ts";
import {
  type AdapterContext,
  type ConnectionRef,
  type Credentials,
  type OrderRecord,
  type ProviderAdapter,
  ProviderError,
  type ReadRequest,
  type StreamPage,
  type TokenGrant,
} from "../types.ts";
import {
  DEFAULT_PAGE_SIZE,
  isoDateTime,
  MAX_PAGE_SIZE,
  notAscending,
  ORDERS_QUERY,
  ordersData,
  pageComplexity,
  SHIPMENT_ORDER_QUERY,
  shipmentOrderData,
  toOrderRecord,
} from "./streams.ts";

const PROVIDER = "shiphero";

export const configSchema = z.strictObject({
  ...baseConfigShape,
  /** The account's credit bucket, when it is not the default (credits.ts). */
  credit_bucket: creditBucketConfig.optional(),
});
export type ShipHeroConfig = z.output<typeof configSchema>;

const WEBHOOK_SECRET_FIELD = /^webhook_secret_[a-z0-9]+(?:_[a-z0-9]+)*$/;

const credentialsShape = {
  refresh_token: token,
  access_token: token.optional(),
  // The earlier single secret: verifies a delivery of any type.
  webhook_secret: token.optional(),
};

/**
 * What `connect` takes: the tokens, and the webhook secrets either as `webhook_secret_<type>`
 * fields or as `webhook_secrets: {"<webhook type>": "<shared_signature_secret>"}`; stored flat.
 */
export const credentialsSchema = z
  .object({ ...credentialsShape, webhook_secrets: z.record(z.string().min(1), token).optional() })
  .catchall(token)
  .superRefine((value, ctx) => {
    for (const field of Object.keys(value)) {
      if (field in credentialsShape || field === "webhook_secrets") continue;
      if (WEBHOOK_SECRET_FIELD.test(field)) continue;
      ctx.addIssue({
        code: "custom",
        path: [field],
        message:
          "unknown field: expected refresh_token, access_token, webhook_secret, webhook_secrets or webhook_secret_<webhook type>",
      });
    }
  })
  .transform(({ webhook_secrets, ...flat }) => {
    const out: Record<string, string> = { ...(flat as Record<string, string>) };
    for (const [type, secret] of Object.entries(webhook_secrets ?? {})) {
      out[webhookSecretField(type)] = secret;
    }
    return out;
  });
const credentials = credentialFields(PROVIDER, credentialsShape);

export const facts = defineFacts({
  displayName: "ShipHero",
  // ShipHero's developer docs describe no revocation of a refresh token.
  revocationHint:
    "ShipHero documents no way for an app to revoke its refresh token: remove the developer token (or its API user) in ShipHero's developer settings.",
  authMode: "oauth2",
  supportsRefresh: true,
  rotatesRefreshToken: false,
  // Access tokens live 28 days; refresh well before, so a few failed days still leave room.
  refreshMarginSeconds: 3 * 24 * 3600,
  appEnv: null, // the refresh call takes the refresh token alone
  defaultRetryAfterSeconds: 2,
  backfillReadsWholeRange: false,
  // The default; a connection's `credit_bucket` replaces it (credits.ts, UNCONFIRMED).
  rateLimit: creditBucket({}),
  tokenPath: "/auth/refresh",
  graphqlPath: "/graphql",
  pageSize: { default: DEFAULT_PAGE_SIZE, max: MAX_PAGE_SIZE },
  defaultAuthBaseUrl: (_config: ShipHeroConfig) => "https://public-api.shiphero.com",
  defaultApiBaseUrl: (_config: ShipHeroConfig) => "https://public-api.shiphero.com",
});

/**
 * Exactly what ShipHero sends (access_token, expires_in, scope, token_type). No refresh_token: if
 * one ever appears it is taken as a rotation rather than dropped.
 */
export const refreshResponse = z.object({
  access_token: token,
  expires_in: seconds,
  scope: z.string().optional(),
  token_type: z.string().optional(),
  refresh_token: token.optional(),
});

export const VERIFY_QUERY = "query { account { request_id complexity data { id email } } }";

/** `data` of the cheap call; `errors` are handled by the GraphQL client (`requestGraphql`). */
export const verifyData = z.object({
  account: z.looseObject({
    request_id: z.string().optional(),
    complexity: z.number().optional(),
    data: z.looseObject({ id: z.string() }),
  }),
});

function accessToken(creds: Credentials): string {
  return requireCredential(PROVIDER, creds, "access_token", "refresh the connection first");
}

const clients = adapterHttp(PROVIDER, facts);

/** The GraphQL API, as the connection's access token. */
function apiClient(ctx: AdapterContext, config: ShipHeroConfig, stored: Credentials) {
  return clients.api(ctx, config, authHeaders(stored), stored);
}

/** "Authorization: Bearer <access_token>" (developers.shiphero.com, "Getting started"). */
function authHeaders(stored: Credentials): Record<string, string> {
  return { authorization: `Bearer ${accessToken(stored)}` };
}

/**
 * The refresh call presents the refresh token and nothing else, so a 401 or 403 from it can only
 * mean that token was refused, whatever the body says: reconnect (invalid_grant). No sample of
 * ShipHero's error body is known; an OAuth `invalid_grant` is already classified so.
 */
function refusedRefresh(error: unknown): unknown {
  if (
    error instanceof ProviderError && error.code === "unauthorized" &&
    (error.status === 401 || error.status === 403)
  ) {
    return new ProviderError(
      PROVIDER,
      "invalid_grant",
      `${error.message}; reconnect the ${facts.displayName} account`,
      { status: error.status, endpoint: "token" },
    );
  }
  return error;
}

async function refresh(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<TokenGrant> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const creds = credentials.parse(stored);
  const now = ctx.now();
  const { data } = await clients.token(ctx, baseUrls(facts, config).auth, Object.values(stored))
    .postJson("refresh response", facts.tokenPath, {
      refresh_token: creds.refresh_token,
    }, refreshResponse)
    .catch((error) => {
      throw refusedRefresh(error);
    });

  const rotated = data.refresh_token !== undefined && data.refresh_token !== creds.refresh_token;
  return {
    credentials: rotated
      ? { access_token: data.access_token, refresh_token: data.refresh_token as string }
      : { access_token: data.access_token },
    accessTokenExpiresAt: after(now, data.expires_in),
    refreshTokenExpiresAt: null,
    refreshTokenRotated: rotated,
  };
}

async function verify(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<void> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  await apiClient(ctx, config, stored).graphql(
    "verify response",
    facts.graphqlPath,
    { query: VERIFY_QUERY },
    verifyData,
  );
}

// ---------------------------------------------------------------------------------------------
// The data half

/**
 * A throttle's report corrects the pacer (credits left, at least the credits required, the restore
 * rate) and gives the wait ShipHero asked for; requestGraphql turns it into "rate_limited".
 */
function observeThrottle(
  ctx: AdapterContext,
  errors: readonly GraphqlError[] | undefined,
): number | undefined {
  const throttle = creditThrottle(errors);
  if (throttle === undefined) return undefined;
  const seen = ctx.pacer && observedBucket(throttle, ctx.pacer.model);
  if (seen) ctx.pacer!.observe(seen);
  return throttle.waitMs;
}

/** The pacer's bucket for a connection: its `credit_bucket`, else the default. */
function rateLimitFor(config: Record<string, unknown>) {
  const parsed = configSchema.safeParse(config);
  return parsed.success ? creditBucket(parsed.data) : facts.rateLimit;
}

/**
 * Orders changed in [since, until], oldest change first. Out of credits, ShipHero answers "There
 * are not enough credits … In N seconds you will have enough credits …" (observeThrottle).
 */
async function readOrders(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  req: ReadRequest,
): Promise<StreamPage<OrderRecord>> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const cursor = readTimeCursor(PROVIDER, req.cursor, req.from);
  const first = pageSizeFor(facts, req.pageSize);
  const estimate = pageComplexity(first);
  await ctx.pacer?.take(estimate, ctx.signal);
  const { data } = await apiClient(ctx, config, stored).graphql(
    "orders page",
    facts.graphqlPath,
    {
      query: ORDERS_QUERY,
      variables: {
        updatedFrom: cursor.since === null ? null : isoDateTime(cursor.since),
        updatedTo: isoDateTime(req.until),
        first,
        after: cursor.after ?? null,
      },
    },
    ordersData,
    { inspect: (_extensions, errors) => observeThrottle(ctx, errors) },
  );
  // Charged what the response reports, not what was reserved.
  ctx.pacer?.refund(estimate - data.orders.complexity);
  const { edges, pageInfo } = data.orders.data;
  const records = edges.map((edge) => toOrderRecord(edge.node));
  const disorder = notAscending(records);
  if (disorder) {
    throw new ProviderError(PROVIDER, "bad_response", disorder, { status: 200, endpoint: "api" });
  }
  return timePage(records, {
    cursor,
    until: req.until,
    nextToken: pageInfo.endCursor,
    hasMore: pageInfo.hasNextPage,
  });
}

/**
 * The order a shipment belongs to, read fresh (a Shipment Update names the shipment, not the
 * order); null when ShipHero no longer knows the shipment.
 */
export async function fetchShipmentOrder(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  shipmentId: string,
): Promise<OrderRecord | null> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const { data } = await apiClient(ctx, config, stored).graphql(
    "shipment's order",
    facts.graphqlPath,
    { query: SHIPMENT_ORDER_QUERY, variables: { id: shipmentId } },
    shipmentOrderData,
    { inspect: (_extensions, errors) => observeThrottle(ctx, errors) },
  );
  const order = data.shipment?.data?.order;
  return order ? toOrderRecord(order) : null;
}

export const shipheroAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  rateLimitFor,
  refresh,
  verify,
  accessToken,
  proxy: {
    tokenType: "bearer",
    authHeaders,
    // A proxied query's complexity is unknown before ShipHero runs it: charged as a medium one
    // (the orders page Tether reads is estimated the same way, then corrected by its report).
    requestCost: 100,
    graphqlPath: /^\/graphql\/?$/,
  },
  streams: { orders: readOrders },
  webhooks: shipheroWebhooks(fetchShipmentOrder),
} as const satisfies ProviderAdapter<typeof facts>;
