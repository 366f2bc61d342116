// QuickBooks Online (Intuit). Access tokens live an hour; the refresh token rolls (about 101 days
// from each refresh), the previous one dies 24 h after a new one is issued, and since 2025 it also
// has a hard maximum (5 years), reported when asked for with a request header. Orders (Invoice and
// SalesReceipt) and customers are read with the query endpoint (./streams.ts).

import { z } from "zod";
import { windowBucket } from "../pacing.ts";
import { quickbooksOAuth } from "./oauth.ts";
import { quickbooksWebhooks } from "./webhook.ts";
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
import { readTimeCursor, type TimeCursor, timePage } from "../cursor.ts";
import {
  adapterHttp,
  after,
  base64Utf8,
  baseUrls,
  type ProviderClient,
  requireApp,
} from "../http.ts";
import type {
  AdapterContext,
  AppCredentials,
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
  CDC_LOOKBACK_SECONDS,
  cdcDeletions,
  cdcResponseSchema,
  changesQuery,
  type Customer,
  customerSchema,
  type Entity,
  ORDER_ENTITIES,
  type OrdersCursor,
  queryResponseSchema,
  queryTime,
  readOrdersCursor,
  startPosition,
  toCustomer,
  toDeletedOrder,
  toOrder,
  type Transaction,
  transactionSchema,
} from "./streams.ts";

const PROVIDER = "quickbooks";

export const configSchema = z.strictObject({
  realm_id: z.string().regex(/^\d+$/, "expected the company's realm id (digits)"),
  ...baseConfigShape,
});
export type QuickBooksConfig = z.output<typeof configSchema>;

const credentials = credentialFields(PROVIDER, {
  refresh_token: token,
  access_token: token.optional(),
});
export const credentialsSchema = credentials.accepted;

export const facts = defineFacts({
  displayName: "QuickBooks",
  revocationHint:
    "The grant is revoked through Intuit's revoke endpoint; the company's admin also sees it under Apps > My apps in QuickBooks.",
  authMode: "oauth2",
  supportsRefresh: true,
  rotatesRefreshToken: true,
  refreshMarginSeconds: 15 * 60, // access tokens live 3600 s
  refreshTokenIdleSeconds: 8_726_400, // ~101 days, rolling; the response states the exact figure
  appEnv: { clientId: "QUICKBOOKS_CLIENT_ID", clientSecret: "QUICKBOOKS_CLIENT_SECRET" },
  defaultRetryAfterSeconds: 60,
  backfillReadsWholeRange: false,
  // "API calls are throttled at 500 requests per minute per realmId" and no more than 10 in flight
  // (blogs.intuit.com/2016/08/08/idg-concurrent-api-use-changes-coming-soon): paced as a window
  // (pacing.ts windowBucket), one request at a time per reader.
  rateLimit: windowBucket(500, 60),
  tokenPath: "/oauth2/v1/tokens/bearer",
  companyInfoPath: (realmId: string) =>
    `/v3/company/${encodeURIComponent(realmId)}/companyinfo/${encodeURIComponent(realmId)}`,
  queryPath: (realmId: string) => `/v3/company/${encodeURIComponent(realmId)}/query`,
  cdcPath: (realmId: string) => `/v3/company/${encodeURIComponent(realmId)}/cdc`,
  /**
   * Revocation is on another host than the token endpoint (intuit-oauth 4.2.5,
   * src/OAuthClient.js: `revokeEndpoint`); a connection's auth_base_url replaces both.
   */
  revokeBaseUrl: "https://developer.api.intuit.com",
  revokePath: "/v2/oauth2/tokens/revoke",
  /** Intuit requires minor version 75 or later since 2025. */
  minorVersion: "75",
  /** "MAXRESULTS 1000" is the most one query returns. */
  pageSize: { default: 500, max: 1000 },
  defaultAuthBaseUrl: (_config: QuickBooksConfig) => "https://oauth.platform.intuit.com",
  defaultApiBaseUrl: (_config: QuickBooksConfig) => "https://quickbooks.api.intuit.com",
});

/** intuit/oauth-jsclient mocks; the hard expiry only when asked for (and not always then). */
export const refreshResponse = z.object({
  access_token: token,
  refresh_token: token,
  expires_in: seconds,
  x_refresh_token_expires_in: seconds,
  x_refresh_token_hard_expires_in: seconds.optional(),
  token_type: z.string().optional(),
});

export const verifyResponse = z.looseObject({ CompanyInfo: z.looseObject({}) });

function accessToken(creds: Credentials): string {
  return requireCredential(PROVIDER, creds, "access_token", "refresh the connection first");
}

const clients = adapterHttp(PROVIDER, facts);

/** The company's API, as the connection's access token. */
function apiClient(ctx: AdapterContext, config: QuickBooksConfig, stored: Credentials) {
  return clients.api(ctx, config, authHeaders(stored), stored);
}

/** "Authorization: Bearer <access_token>" (Intuit "OAuth 2.0": calling the API). */
function authHeaders(stored: Credentials): Record<string, string> {
  return { authorization: `Bearer ${accessToken(stored)}` };
}

/**
 * The token endpoint (refresh, and the code exchange of ./oauth.ts): Basic auth with the app's
 * client, and the opt-in header that reports the refresh token's hard expiry.
 */
export function tokenClient(
  ctx: AdapterContext,
  authBaseUrl: string,
  app: AppCredentials,
  secrets: readonly (string | undefined)[],
) {
  const basic = `Basic ${base64Utf8(`${app.clientId}:${app.clientSecret}`)}`;
  return clients.token(ctx, authBaseUrl, [...secrets, app.clientSecret, basic], {
    authorization: basic,
    "x-include-refresh-token-hard-expires-in": "true",
  });
}

/** A token endpoint answer as a grant; the hard expiry only when it was reported. */
export function grantOf(
  data: z.output<typeof refreshResponse>,
  now: Date,
  sent?: string,
): TokenGrant {
  const grant: TokenGrant = {
    // Always keep the newest refresh token, even when it equals the one sent.
    credentials: { access_token: data.access_token, refresh_token: data.refresh_token },
    accessTokenExpiresAt: after(now, data.expires_in),
    refreshTokenExpiresAt: after(now, data.x_refresh_token_expires_in),
    refreshTokenRotated: data.refresh_token !== sent,
  };
  if (data.x_refresh_token_hard_expires_in !== undefined) {
    grant.refreshTokenHardExpiresAt = after(now, data.x_refresh_token_hard_expires_in);
  }
  return grant;
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
  const token = tokenClient(ctx, baseUrls(facts, config).auth, app, Object.values(stored));
  const { data } = await token.postForm("refresh response", facts.tokenPath, {
    grant_type: "refresh_token",
    refresh_token: creds.refresh_token,
  }, refreshResponse);
  return grantOf(data, now, creds.refresh_token);
}

/**
 * Ends the grant: "POST /v2/oauth2/tokens/revoke", Basic auth, `{"token": <refresh token>}`
 * (intuit-oauth 4.2.5 `revoke`); the answer's body, if any, says nothing Tether needs.
 */
async function revoke(ctx: AdapterContext, conn: ConnectionRef, stored: Credentials) {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const creds = credentials.parse(stored);
  const app = requireApp(ctx, PROVIDER, facts);
  await tokenClient(ctx, config.auth_base_url ?? facts.revokeBaseUrl, app, Object.values(stored))
    .postJson("revoke response", facts.revokePath, { token: creds.refresh_token }, z.unknown());
}

async function verify(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<void> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  await apiClient(ctx, config, stored).get(
    "verify response",
    facts.companyInfoPath(config.realm_id),
    verifyResponse,
  );
}

// ---------------------------------------------------------------------------------------------
// Streams

/** `GET …/query?query=<statement>&minorversion=…`: one statement of Intuit's query language. */
async function runQuery<S extends z.ZodType>(
  api: ProviderClient,
  config: QuickBooksConfig,
  what: string,
  statement: string,
  schema: S,
): Promise<z.output<S>> {
  const { data } = await api.get(what, facts.queryPath(config.realm_id), schema, {
    query: statement,
    minorversion: facts.minorVersion,
  });
  return data;
}

/** One query page: the entity's changes after the time cursor, oldest first. */
async function queryChanges<S extends z.ZodType, R extends { remote_updated_at: string }>(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  req: ReadRequest,
  read: { entity: Entity; cursor: TimeCursor; record: S; map: (record: z.output<S>) => R },
): Promise<StreamPage<R>> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const max = pageSizeFor(facts, req.pageSize);
  const start = startPosition(read.cursor);
  const query = changesQuery(read.entity, { since: read.cursor.since, until: req.until }, {
    start,
    max,
  });
  await ctx.pacer?.take(1, ctx.signal);
  const data = await runQuery(
    apiClient(ctx, config, stored),
    config,
    `${read.entity === "Customer" ? "customers" : "orders"} page`,
    query,
    queryResponseSchema(read.entity, read.record),
  );

  const rows = (data.QueryResponse[read.entity] ?? []) as z.output<S>[];
  // A short page is the last one: QuickBooks reports no total.
  return timePage(rows.map(read.map), {
    cursor: read.cursor,
    until: req.until,
    nextToken: String(start + rows.length),
    hasMore: rows.length === max,
  });
}

/**
 * The Invoices and SalesReceipts deleted in (since, until], from one CDC call. CDC looks back 30
 * days at most, from the provider's now: an older `since` is moved up to that (deletions before it
 * can no longer be seen), and a window that ends before it (an old backfill window) asks nothing.
 * A deletion after `until` waits for the next run, so the cursor never passes the run's start.
 */
async function readDeletions(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  req: ReadRequest,
  cursor: TimeCursor,
): Promise<StreamPage<OrderRecord>> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const sinceNow = () => {
    const oldest = ctx.now().getTime() - CDC_LOOKBACK_SECONDS * 1000;
    return Math.max(oldest, cursor.since === null ? oldest : Date.parse(cursor.since));
  };
  const done = (records: OrderRecord[]) =>
    timePage(records, { cursor, until: req.until, nextToken: null, hasMore: false });
  if (sinceNow() >= req.until.getTime()) return done([]);

  await ctx.pacer?.take(1, ctx.signal);
  // `changedSince` is chosen after the pacer's wait, which can be a throttle's 60 s back-off: one
  // chosen before it at the edge of the look-back would be out of it when QuickBooks reads it.
  const since = sinceNow();
  if (since >= req.until.getTime()) return done([]);
  const { data } = await apiClient(ctx, config, stored).get(
    "orders deletions (CDC)",
    facts.cdcPath(config.realm_id),
    cdcResponseSchema,
    {
      entities: ORDER_ENTITIES.join(","),
      changedSince: queryTime(new Date(since)),
      minorversion: facts.minorVersion,
    },
  );
  const until = req.until.getTime();
  const records = cdcDeletions(data).deleted
    .filter(({ record }) => Date.parse(record.MetaData.LastUpdatedTime) <= until)
    .map(({ entity, record }) =>
      toDeletedOrder(entity, record.Id, record.MetaData.LastUpdatedTime, record)
    );
  return done(records);
}

/**
 * Invoices to the end, then sales receipts, then the deletions of both (see the orders cursor in
 * ./streams.ts). When a phase ends on an empty page, the same call goes on to the next phase, so a
 * page that says "more" always has records.
 */
async function readOrders(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  req: ReadRequest,
): Promise<StreamPage<OrderRecord>> {
  let cursor: OrdersCursor = readOrdersCursor(req.cursor, req.from);
  while (true) {
    const phase = cursor.reading;
    if (phase === "Deleted") {
      const page = await readDeletions(ctx, conn, stored, req, cursor.Deleted);
      const Deleted = readTimeCursor(PROVIDER, page.cursor, null);
      return { ...page, cursor: JSON.stringify({ ...cursor, Deleted, reading: "Invoice" }) };
    }
    const page = await queryChanges(ctx, conn, stored, req, {
      entity: phase,
      cursor: cursor[phase],
      record: transactionSchema,
      map: (t: Transaction) => toOrder(phase, t),
    });
    const next: OrdersCursor = { ...cursor, [phase]: readTimeCursor(PROVIDER, page.cursor, null) };
    if (page.hasMore) return { ...page, cursor: JSON.stringify(next) };
    cursor = { ...next, reading: phase === "Invoice" ? "SalesReceipt" : "Deleted" };
    if (page.records.length > 0) return { ...page, cursor: JSON.stringify(cursor), hasMore: true };
  }
}

/** Customers, inactive ones included. */
function readCustomers(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  req: ReadRequest,
): Promise<StreamPage<CustomerRecord>> {
  return queryChanges(ctx, conn, stored, req, {
    entity: "Customer",
    cursor: readTimeCursor(PROVIDER, req.cursor, req.from),
    record: customerSchema,
    map: (c: Customer) => toCustomer(c),
  });
}

export const quickbooksAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  revoke,
  accessToken,
  proxy: {
    tokenType: "bearer",
    authHeaders,
    // The bucket counts requests ("500 requests/min and 10/s per realm").
    requestCost: 1,
    apiVersion: () => facts.minorVersion,
    // Every call names its minor version; without one Intuit answers with its oldest behaviour
    // (the base version), so a call that names none gets the one Tether's own calls use.
    versioned: (path, query) => {
      if (!query.has("minorversion")) query.set("minorversion", facts.minorVersion);
      return path;
    },
  },
  streams: { orders: readOrders, customers: readCustomers },
  webhooks: quickbooksWebhooks,
  oauth: quickbooksOAuth,
} as const satisfies ProviderAdapter<typeof facts>;

/**
 * The named entities, fetched by id (webhook notifications carry ids only):
 * `SELECT * FROM <Entity> WHERE Id IN ('1','2')`. Ids that no longer exist are simply absent.
 */
export async function fetchEntities(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
  entity: Entity,
  ids: readonly string[],
): Promise<OrderRecord[] | CustomerRecord[]> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const safe = ids.filter((id) => /^\d+$/.test(id));
  if (safe.length === 0) return [];
  const record = entity === "Customer" ? customerSchema : transactionSchema;
  const data = await runQuery(
    apiClient(ctx, config, stored),
    config,
    `${entity} by id`,
    `SELECT * FROM ${entity} WHERE Id IN (${safe.map((id) => `'${id}'`).join(",")})`,
    queryResponseSchema(entity, record),
  );
  const rows = data.QueryResponse[entity] ?? [];
  if (entity === "Customer") return (rows as Customer[]).map(toCustomer);
  return (rows as Transaction[]).map((t) => toOrder(entity, t));
}
