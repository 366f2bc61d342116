// ShipHero (GraphQL). The refresh token is static while the account is active: the refresh
// response carries only a new access token (28 days), so the stored refresh token is kept.
//
// Data: orders only, read in ascending `updated_at` with the time cursor (cursor.ts); the wire
// format and what is stored are in streams.ts. Responses report the `complexity` charged but not
// the credits left, so the pacer keeps its own model of the bucket (facts.rateLimit): it reserves
// the expected complexity and gives back what the response says was not charged.

import { z } from "zod";
import { shipheroWebhooks } from "./webhook.ts";
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
import { readTimeCursor, timePage } from "../cursor.ts";
import { adapterHttp, after, baseUrls } from "../http.ts";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
  OrderRecord,
  ProviderAdapter,
  ReadRequest,
  StreamPage,
  TokenGrant,
} from "../types.ts";
import {
  DEFAULT_PAGE_SIZE,
  isoDateTime,
  MAX_PAGE_SIZE,
  ORDERS_QUERY,
  ordersData,
  pageComplexity,
  toOrderRecord,
} from "./streams.ts";

const PROVIDER = "shiphero";

export const configSchema = z.strictObject({ ...baseConfigShape });
export type ShipHeroConfig = z.output<typeof configSchema>;

const credentialsShape = {
  refresh_token: token,
  access_token: token.optional(),
  // The `shared_signature_secret` webhook_create returned: verifies this connection's webhooks.
  webhook_secret: token.optional(),
};
export const credentialsSchema = z.strictObject(credentialsShape);
const storedCredentials = z.object(credentialsShape);

export const facts = defineFacts({
  displayName: "ShipHero",
  authMode: "oauth2",
  supportsRefresh: true,
  rotatesRefreshToken: false,
  // Access tokens live 28 days; refresh well before, so a few failed days still leave room.
  refreshMarginSeconds: 3 * 24 * 3600,
  appEnv: null, // the refresh call takes the refresh token alone
  defaultRetryAfterSeconds: 2,
  // "4004 credits, +60/s" (older: 1001, +15/s), UNCONFIRMED
  backfillReadsWholeRange: false,
  rateLimit: { capacity: 4004, restorePerSecond: 60 },
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

const VERIFY_QUERY = "query { account { request_id complexity data { id email } } }";

/** `data` of the cheap call; `errors` are handled by `requestGraphql`. */
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
  return clients.api(ctx, config, { authorization: `Bearer ${accessToken(stored)}` }, stored);
}

async function refresh(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<TokenGrant> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const creds = parseCredentials(PROVIDER, stored, storedCredentials);
  const now = ctx.now();
  const { data } = await clients.token(ctx, baseUrls(facts, config).auth, Object.values(stored))
    .postJson("refresh response", facts.tokenPath, {
      refresh_token: creds.refresh_token,
    }, refreshResponse);

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
 * Orders changed in [since, until], oldest change first. Out of credits, ShipHero answers "not
 * enough credits … try again in N seconds", which requestGraphql turns into "rate_limited".
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
  const { data } = await apiClient(ctx, config, stored).graphql("orders page", facts.graphqlPath, {
    query: ORDERS_QUERY,
    variables: {
      updatedFrom: cursor.since === null ? null : isoDateTime(cursor.since),
      updatedTo: isoDateTime(req.until),
      first,
      after: cursor.after ?? null,
    },
  }, ordersData);
  // Charged what the response reports, not what was reserved.
  ctx.pacer?.refund(estimate - data.orders.complexity);
  const { edges, pageInfo } = data.orders.data;
  return timePage(edges.map((edge) => toOrderRecord(edge.node)), {
    cursor,
    until: req.until,
    nextToken: pageInfo.endCursor,
    hasMore: pageInfo.hasNextPage,
  });
}

export const shipheroAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  accessToken,
  streams: { orders: readOrders },
  webhooks: shipheroWebhooks,
} as const satisfies ProviderAdapter<typeof facts>;
