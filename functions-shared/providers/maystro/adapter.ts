// Maystro Delivery. No public documentation: a static dashboard key (`Authorization: Token …`),
// no refresh. "Refresh" checks the key with one cheap call and returns it unchanged. Response
// schemas stay tolerant, since the facts come from client libraries, not from the provider. Orders
// are read by walking the list newest first down to a watermark (./streams.ts).

import { z } from "zod";
import { maystroWebhooks } from "./webhook.ts";
import {
  baseConfigShape,
  credentialFields,
  defineFacts,
  parseConfig,
  requireCredential,
  token,
} from "../common.ts";
import { adapterHttp } from "../http.ts";
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
  nextWatermark,
  notNewestFirst,
  pageSchema,
  reachedWatermark,
  readWalkCursor,
  sinceWatermark,
  toOrder,
  walkOn,
} from "./streams.ts";

const PROVIDER = "maystro";

export const configSchema = z.strictObject({ ...baseConfigShape });
export type MaystroConfig = z.output<typeof configSchema>;

const credentials = credentialFields(PROVIDER, {
  api_token: token,
  // The secret in this connection's webhook URL (Maystro signs nothing).
  webhook_secret: token.optional(),
});
export const credentialsSchema = credentials.accepted;

export const facts = defineFacts({
  displayName: "Maystro",
  revocationHint:
    "Maystro's API key is static: generate a new one in the Maystro dashboard to end the old key's access.",
  authMode: "api_token",
  supportsRefresh: false,
  rotatesRefreshToken: false,
  refreshMarginSeconds: 0,
  appEnv: null,
  defaultRetryAfterSeconds: 2,
  // not documented: a conservative guess
  backfillReadsWholeRange: true,
  rateLimit: { capacity: 60, restorePerSecond: 10 },
  /** The list pages at about 20 records and takes no page size. */
  pageSize: { default: 20, max: 20 },
  tokenPath: null,
  ordersPath: "/api/stores/orders/",
  /**
   * Orders still open this long after they were created are no longer re-read by every run (the
   * walk's watermark never goes further back); a webhook or a backfill still updates them.
   */
  openOrderLookbackDays: 60,
  defaultAuthBaseUrl: (_config: MaystroConfig) => "https://backend.maystro-delivery.com",
  defaultApiBaseUrl: (_config: MaystroConfig) => "https://backend.maystro-delivery.com",
});

/** `{"list": {"count", "next", "results": […]}}`, kept loose. */
export const verifyResponse = z.looseObject({
  list: z.looseObject({ results: z.array(z.unknown()) }),
});

function accessToken(creds: Credentials): string {
  return requireCredential(PROVIDER, creds, "api_token");
}

const clients = adapterHttp(PROVIDER, facts);

/** "Authorization: Token <api_token>", the dashboard key (see the top of this file). */
function authHeaders(stored: Credentials): Record<string, string> {
  return { authorization: `Token ${accessToken(stored)}` };
}

/** `GET /api/stores/orders/?…` as the connection's token: the one endpoint Tether reads. */
async function listOrders<S extends z.ZodType>(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  what: string,
  query: Record<string, string>,
  schema: S,
): Promise<z.output<S>> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const api = clients.api(ctx, config, authHeaders(stored), stored);
  const { data } = await api.get(what, facts.ordersPath, schema, query);
  return data;
}

async function refresh(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<TokenGrant> {
  const creds = credentials.parse(stored);
  await verify(ctx, conn, stored);
  return {
    credentials: { api_token: creds.api_token },
    accessTokenExpiresAt: null,
    refreshTokenExpiresAt: null,
    refreshTokenRotated: false,
  };
}

async function verify(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<void> {
  await listOrders(ctx, conn, stored, "verify response", { page: "1" }, verifyResponse);
}

// ---------------------------------------------------------------------------------------------
// Streams

/** One page of the list, newest first; a page past the end is empty (DRF answers 404). */
async function fetchPage(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  page: number,
) {
  await ctx.pacer?.take(1, ctx.signal);
  try {
    const data = await listOrders(
      ctx,
      conn,
      stored,
      "orders page",
      { page: String(page) },
      pageSchema,
    );
    return data.list;
  } catch (error) {
    // Pages only grow at the back, so this happens only if orders were removed meanwhile.
    if (error instanceof ProviderError && error.status === 404 && page > 1) {
      return { next: null, results: [] };
    }
    throw error;
  }
}

/**
 * Orders, walked newest first from page 1 (or where a stopped walk left off) until a page
 * reaches the watermark or the list ends. Maystro's page size is its own (about 20), so
 * `pageSize` is not used.
 */
async function readOrders(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  req: ReadRequest,
): Promise<StreamPage<OrderRecord>> {
  const lookback = facts.openOrderLookbackDays;
  const walk = readWalkCursor(req.cursor, req.from, lookback);
  const list = await fetchPage(ctx, conn, stored, walk.page);
  const disorder = notNewestFirst(list.results);
  if (disorder) {
    throw new ProviderError(PROVIDER, "bad_response", disorder, { status: 200, endpoint: "api" });
  }
  const orders = sinceWatermark(walk, list.results);
  const next = walkOn(walk, orders);
  const records = orders.map(toOrder);
  const done = list.next === null || list.next === undefined || list.results.length === 0 ||
    reachedWatermark(walk, list.results);
  if (!done) return { records, cursor: JSON.stringify(next), hasMore: true };
  return {
    records,
    cursor: JSON.stringify({ watermark: nextWatermark(next, req.until, lookback) }),
    hasMore: false,
  };
}

export const maystroAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  accessToken,
  // The bucket counts requests.
  proxy: { tokenType: "token", authHeaders, requestCost: 1 },
  streams: { orders: readOrders },
  webhooks: maystroWebhooks(fetchByExternalId),
} as const satisfies ProviderAdapter<typeof facts>;

/** The orders with this `external_order_id` (a webhook names one; Maystro's filter finds it). */
export async function fetchByExternalId(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  externalOrderId: string,
): Promise<OrderRecord[]> {
  const data = await listOrders(ctx, conn, stored, "order by external_order_id", {
    external_order_id: externalOrderId,
  }, pageSchema);
  return data.list.results.filter((o) => o.external_order_id === externalOrderId).map(toOrder);
}
