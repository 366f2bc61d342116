// The one interface every provider adapter implements, and the one error type it throws.
//
// Adapters know nothing of Postgres or HTTP serving: everything they need (fetch, the clock, the
// app credentials) comes in through `AdapterContext`, and everything they learn goes back as a
// value (`TokenGrant`, `StreamPage`) or a `ProviderError`. The auth half (`refresh`, `verify`)
// and the data half (`streams`: one reader per stream the provider has) are below.

import type { z } from "zod";
import type { Pacer } from "./pacing.ts";

export const PROVIDERS = ["shiphero", "shopify", "lightspeed", "quickbooks", "maystro"] as const;
export type ProviderName = typeof PROVIDERS[number];

export function isProviderName(value: unknown): value is ProviderName {
  return typeof value === "string" && (PROVIDERS as readonly string[]).includes(value);
}

/** Stored secrets of one connection, under the providers' own field names (`refresh_token`, `api_token`, …). */
export type Credentials = Record<string, string>;

export interface ConnectionRef {
  id: string;
  provider: ProviderName;
  externalId: string;
  config: Record<string, unknown>;
}

export interface AppCredentials {
  clientId: string;
  clientSecret: string;
  /** The secret before a rotation (SHOPIFY_PREVIOUS_CLIENT_SECRET), still accepted on signatures. */
  previousClientSecret?: string;
}

export interface AdapterContext {
  fetch: typeof fetch;
  now: () => Date;
  /** The app's OAuth client for a provider (SHOPIFY_CLIENT_ID/SECRET, …), resolved by the caller. */
  app: (provider: ProviderName) => AppCredentials | undefined;
  /** Per request, headers and body included. Default 15000. */
  timeoutMs?: number;
  /** Aborts every request of the caller (e.g. when its time budget is spent); reported as "timeout". */
  signal?: AbortSignal;
  /** The connection's rate budget: readers wait on it before a request and correct it after. */
  pacer?: Pacer;
}

export interface TokenGrant {
  /** Fields to store: always the (new) access token; `refresh_token` only when the provider sent one. */
  credentials: Credentials;
  /** null = never expires (Shopify legacy offline tokens, Maystro). */
  accessTokenExpiresAt: Date | null;
  /** Rolling / idle / absolute expiry of the refresh token, as stated or implied; null = none known. */
  refreshTokenExpiresAt: Date | null;
  /** The provider issued a refresh token different from the one presented; store it before anything else. */
  refreshTokenRotated: boolean;
  /** QuickBooks: the hard maximum lifetime of the refresh token, when the provider sent it. */
  refreshTokenHardExpiresAt?: Date | null;
  /**
   * What an OAuth code exchange (or a first refresh) learned about the account, added to the
   * connection's config: Lightspeed's `retailer_id`, which its webhooks are routed by; Shopify's
   * `granted_scopes`, which its backfills check.
   */
  accountConfig?: Record<string, string>;
}

/** Applies a grant to the stored credentials: what the provider sent wins, the rest is kept. */
export function mergeCredentials(stored: Credentials, grant: TokenGrant): Credentials {
  return { ...stored, ...grant.credentials };
}

export type ProviderErrorCode =
  | "invalid_grant"
  | "unauthorized"
  | "rate_limited"
  | "server_error"
  | "timeout"
  | "network"
  | "bad_response"
  | "bad_request"
  | "misconfigured";

const RETRYABLE: ReadonlySet<ProviderErrorCode> = new Set([
  "rate_limited",
  "server_error",
  "timeout",
  "network",
  "bad_response",
]);

export type ProviderEndpoint = "token" | "api";

export interface ProviderErrorOptions {
  status?: number;
  retryAfterMs?: number;
  endpoint?: ProviderEndpoint;
  cause?: unknown;
}

/**
 * An expected failure talking to a provider. The message is safe to store and show: it never holds
 * a token, a secret or a raw response body (provider `error_description`s appear truncated).
 */
export class ProviderError extends Error {
  override readonly name = "ProviderError";
  readonly provider: ProviderName;
  readonly code: ProviderErrorCode;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly endpoint?: ProviderEndpoint;

  constructor(
    provider: ProviderName,
    code: ProviderErrorCode,
    message: string,
    options: ProviderErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.provider = provider;
    this.code = code;
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.endpoint !== undefined) this.endpoint = options.endpoint;
  }

  /** The provider rejected the credentials: a person must reconnect the account. */
  get reauthRequired(): boolean {
    return this.code === "invalid_grant";
  }

  /** Transient: try again later (after `retryAfterMs` when set). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      provider: this.provider,
      code: this.code,
      message: this.message,
      status: this.status,
      retryAfterMs: this.retryAfterMs,
      endpoint: this.endpoint,
    };
  }
}

/** Static data about a provider: what the code reads instead of hard-coding per provider. */
export interface ProviderFacts {
  /**
   * What a person does at the provider to end Tether's access when the adapter has no `revoke`
   * (or, with one, where else the grant shows); shown by disconnect.
   */
  readonly revocationHint: string;
  /** Human name used in messages ("Reconnect the Shopify account"). */
  readonly displayName: string;
  /** oauth2: access token renewed with a refresh token; api_token: one static key. */
  readonly authMode: "oauth2" | "api_token";
  /** The provider can renew an access token (Shopify: only for expiring offline tokens). */
  readonly supportsRefresh: boolean;
  /** Every refresh issues a new refresh token and revokes (or soon revokes) the old one. */
  readonly rotatesRefreshToken: boolean;
  /** Refresh this long before the access token expires. */
  readonly refreshMarginSeconds: number;
  /** The refresh token dies after this much inactivity, when the provider says so or practice shows it. */
  readonly refreshTokenIdleSeconds?: number;
  /** Env vars holding the app's OAuth client; null when refreshing needs no app credentials. */
  readonly appEnv: { readonly clientId: string; readonly clientSecret: string } | null;
  /** Wait this long after a 429 that carries no usable Retry-After. */
  readonly defaultRetryAfterSeconds: number;
  /** Documented path of the token endpoint, under the auth base URL; null without refresh. */
  readonly tokenPath: string | null;
  /** A backfill range is read as one window (the API filters by one bound only): Lightspeed, Maystro. */
  readonly backfillReadsWholeRange: boolean;
  /** Records per page: asked unless the caller says otherwise, and the most the provider allows. */
  readonly pageSize: { readonly default: number; readonly max: number };
  /** The provider's rate-limit bucket per account, in its own unit (query cost, credits, requests). */
  readonly rateLimit: { readonly capacity: number; readonly restorePerSecond: number };
  /** Scheme + host of the documented token endpoint for a connection's (validated) config. */
  defaultAuthBaseUrl(config: ProviderConfig): string;
  /** Scheme + host of the documented API for a connection's (validated) config. */
  defaultApiBaseUrl(config: ProviderConfig): string;
}

/** What every provider's config may hold; each adapter's `configSchema` adds its own fields. */
export interface ProviderConfig {
  auth_base_url?: string | undefined;
  api_base_url?: string | undefined;
  [field: string]: unknown;
}

export interface ProviderAdapter<Facts extends ProviderFacts = ProviderFacts> {
  readonly provider: ProviderName;
  readonly facts: Facts;
  /** What `connect` must be given, under the provider's own field names. */
  readonly credentialsSchema: z.ZodType;
  /** The connection's config: provider fields plus optional `auth_base_url` / `api_base_url`. */
  readonly configSchema: z.ZodType;
  /**
   * The connection's rate-limit bucket when its config may set one (ShipHero's `credit_bucket`);
   * `facts.rateLimit` otherwise.
   */
  rateLimitFor?(config: Record<string, unknown>): {
    readonly capacity: number;
    readonly restorePerSecond: number;
  };
  /**
   * Renews the access token. Providers without refresh (Maystro, Shopify legacy tokens) verify the
   * token instead and return it unchanged with a null expiry.
   */
  refresh(ctx: AdapterContext, conn: ConnectionRef, creds: Credentials): Promise<TokenGrant>;
  /** One cheap authenticated call; a rejected token is ProviderError "unauthorized". */
  verify(ctx: AdapterContext, conn: ConnectionRef, creds: Credentials): Promise<void>;
  /** The credential that authenticates API calls. */
  accessToken(creds: Credentials): string;
  /** How the user's own calls reach the API as a connection (the `tokens` and `proxy` functions). */
  readonly proxy: ProviderProxy;
  /** One reader per stream the provider has (ShipHero and Maystro have no customers). */
  readonly streams: StreamReaders;
  /** The provider's webhook receiver: verify, route, name, and process its deliveries. */
  readonly webhooks?: ProviderWebhooks;
  /** The provider's OAuth authorization-code flow, where it has one. */
  readonly oauth?: ProviderOAuth;
  /**
   * Ends the grant at the provider (disconnect): after it, no token of the connection works.
   * Absent where the provider documents no way to do so; the connection is then disconnected on
   * Tether's side only, and `revocationHint` says what a person does at the provider instead.
   */
  revoke?(ctx: AdapterContext, conn: ConnectionRef, creds: Credentials): Promise<void>;
  /**
   * Why the provider would not serve a backfill of `stream` from `rangeStart` for this connection
   * (Shopify without `read_all_orders`: no orders older than 60 days, and no error either), or
   * undefined when it would. The backfill job asks before reading and fails the backfill with
   * this reason instead of storing a silently empty range.
   */
  backfillRefusal?(
    ctx: AdapterContext,
    conn: ConnectionRef,
    creds: Credentials,
    req: { stream: StreamName; rangeStart: Date },
  ): Promise<string | undefined>;
}

/**
 * What the `proxy` function needs to forward a caller's request to the provider's API as a
 * connection, and what `tokens` tells a caller about sending the token itself. The base URL is
 * the connection's (`baseUrls`).
 */
export interface ProviderProxy {
  /**
   * How the access token is sent: `bearer` (`Authorization: Bearer <token>`), `token`
   * (`Authorization: Token <token>`), or the name of the header that carries it alone.
   */
  readonly tokenType: "bearer" | "token" | "x-shopify-access-token";
  /** The headers that authenticate one call with these credentials. */
  authHeaders(creds: Credentials): Record<string, string>;
  /**
   * What one proxied request is charged on the connection's pacer, in the bucket's unit (query
   * cost, credits, requests): the cost is unknown before the provider runs it, so a typical one.
   */
  readonly requestCost: number;
  /** The API version the connection's calls use, where the provider has one. */
  apiVersion?(config: Record<string, unknown>): string;
  /**
   * The path a call goes to, with the connection's API version where the caller left it out
   * (Shopify's unversioned Admin path); may add a query parameter (QuickBooks' minorversion).
   */
  versioned?(path: string, query: URLSearchParams, config: Record<string, unknown>): string;
  /** The GraphQL endpoint's paths: a POST there whose operation is not a mutation is a read. */
  readonly graphqlPath?: RegExp;
  /** Corrects the connection's pacer from what an answer's headers say of the bucket. */
  observe?(pacer: Pacer, headers: Headers): void;
}

// ---------------------------------------------------------------------------------------------
// OAuth: where to send the person, what the callback says, and how its code becomes a grant.

/** What the callback says about the account, beyond the code. */
export interface CallbackAccount {
  /** The connection's external id: the shop, the domain prefix, the realm id. */
  externalId: string;
  /** The connection's config (without base URLs). */
  config: Record<string, string>;
}

export interface OAuthEndpoints {
  app: AppCredentials;
  redirectUri: string;
  /** Replaces scheme and host of every endpoint (the sandbox in tests). */
  baseUrl: string | undefined;
  /** The operator's scope list (`<PROVIDER>_SCOPES`), where the provider reads one. */
  scopes?: string | undefined;
}

export interface ProviderOAuth {
  /**
   * A query parameter `start` needs to know the account before the person signs in (Shopify's
   * shop); the callback must then name the same account.
   */
  readonly accountAtStart?: {
    readonly param: string;
    readonly pattern: RegExp;
    readonly form: string;
  };
  authorizeUrl(opts: OAuthEndpoints & { state: string; account?: string }): string;
  /** The callback's own signature, where the provider signs it (Shopify's `hmac`). */
  verifyCallback?(query: URLSearchParams, app: AppCredentials, now: Date): Promise<boolean>;
  /** The account the callback names, validated; OAuthFailure when a parameter is missing or malformed. */
  callbackAccount(query: URLSearchParams): CallbackAccount;
  /** Exchanges the callback's code at the token endpoint; ProviderError on failure. */
  exchangeCode(
    ctx: AdapterContext,
    opts: OAuthEndpoints & { code: string; account: CallbackAccount },
  ): Promise<TokenGrant>;
}

// ---------------------------------------------------------------------------------------------
// Webhooks: what a provider's receiver is given (never Postgres, never a Request) and returns.

/** Request headers by lower-case name. */
export type WebhookHeaders = Readonly<Record<string, string>>;

/** A connection as a receiver sees it. */
export interface WebhookConnection {
  readonly id: string;
  readonly status: string;
}

/** App-level webhook secrets (per-connection ones come through `connectionInPath`). */
export interface WebhookAppSecrets {
  readonly shopify: readonly string[];
  readonly quickbooks: readonly string[];
  readonly lightspeed: readonly string[];
  readonly lightspeedEncoding: "base64" | "hex";
}

/** What receiving needs from the job: secrets and connection lookups. */
export interface WebhookReceiveSink<C extends WebhookConnection = WebhookConnection> {
  readonly secrets: WebhookAppSecrets;
  /** Logs that a secret is not configured (never the secret). */
  misconfigured(fields: Record<string, unknown>): void;
  /** The provider's connection with that external id. */
  connectionByExternalId(externalId: string): Promise<C | undefined>;
  /** The provider's connection whose config[key] or external id is `value`. */
  connectionByConfigOrExternalId(key: string, value: string): Promise<C | undefined>;
  /**
   * The connection named in the URL and its webhook secrets: every stored credential field named
   * `webhook_secret` or `webhook_secret_<kind>` (ShipHero keeps one per webhook type), by field
   * name, never empty; WebhookRejected otherwise.
   */
  connectionInPath(
    id: string | undefined,
    what: string,
  ): Promise<{ connection: C; secrets: Readonly<Record<string, string>> }>;
}

/** One event of a verified delivery, before it is recorded. */
export interface IncomingEvent<C extends WebhookConnection = WebhookConnection> {
  eventId: string;
  topic: string;
  connection: C | undefined;
  /** Everything processing needs, kept so the sweep can process it again. */
  payload: Record<string, unknown>;
}

/** What processing needs from the job: the newer-wins sinks and the connection's token. */
export interface WebhookProcessSink {
  upsert<S extends StreamName>(stream: S, records: StreamRecords[S][]): Promise<void>;
  /** Applies order facts a notification states (tether.apply_order_facts). */
  applyOrderFacts(facts: {
    externalId: string;
    orderNumber: string | null;
    trackingNumber: string | null;
    /** The provider's word, and its normalized values (order_status.ts). */
    status: "fulfilled" | "canceled";
    fulfillmentStatus: FulfillmentStatus | null;
    shippingStatus: ShippingStatus | null;
    /** ISO 8601 with offset. */
    canceledAt: string | null;
    raw: unknown;
  }): Promise<void>;
  /** Calls `fn` with a fresh access token of the event's connection. */
  withAccessToken<T>(
    fn: (ctx: AdapterContext, conn: ConnectionRef, creds: Credentials) => Promise<T>,
  ): Promise<T>;
}

export interface ProviderWebhooks {
  /** Verifies the raw bytes (WebhookRejected), then parses (BadPayload) and names the events. */
  receive<C extends WebhookConnection>(
    sink: WebhookReceiveSink<C>,
    delivery: { headers: WebhookHeaders; raw: Uint8Array; path: readonly string[] },
  ): Promise<IncomingEvent<C>[]>;
  /**
   * Processes one recorded event from its stored topic and payload only. What it writes comes
   * from the signed body (or a re-fetch), never from unsigned headers; `receivedAt` bounds any
   * time it takes from the body (a time in the future is clamped to it).
   */
  process(
    sink: WebhookProcessSink,
    event: { topic: string; payload: Record<string, unknown>; receivedAt: Date },
  ): Promise<void>;
  /** The body answered to a delivery instead of the counts (ShipHero's acknowledgement). */
  readonly ack?: Readonly<Record<string, string>>;
}

// ---------------------------------------------------------------------------------------------
// The data half: streams of orders and customers, read page by page from a cursor.

export const STREAMS = ["orders", "customers"] as const;
export type StreamName = typeof STREAMS[number];

/**
 * The normalized order statuses (tether.orders' check constraints): the provider words mapped
 * onto them live in order_status.ts; a word the mapping does not know is "unknown".
 */
export const FINANCIAL_STATUSES = [
  "pending",
  "authorized",
  "paid",
  "partially_paid",
  "refunded",
  "partially_refunded",
  "voided",
  "unknown",
] as const;
export type FinancialStatus = typeof FINANCIAL_STATUSES[number];
export const FULFILLMENT_STATUSES = [
  "unfulfilled",
  "partial",
  "fulfilled",
  "restocked",
  "on_hold",
  "unknown",
] as const;
export type FulfillmentStatus = typeof FULFILLMENT_STATUSES[number];
export const SHIPPING_STATUSES = [
  "pending",
  "in_transit",
  "out_for_delivery",
  "delivered",
  "failed_attempt",
  "returned",
  "canceled",
  "unknown",
] as const;
export type ShippingStatus = typeof SHIPPING_STATUSES[number];

/** One order as Tether stores it (tether.orders); `raw` is the provider's record as received. */
export interface OrderRecord {
  external_id: string;
  order_number: string | null;
  /** The provider's own status word (ShipHero fulfillment status, Maystro status name, …). */
  status: string | null;
  /** The provider's own fulfillment word (Shopify displayFulfillmentStatus, ShipHero's), if any. */
  provider_fulfillment_status: string | null;
  /** Normalized (one vocabulary across providers); null where the concept does not apply. */
  financial_status: FinancialStatus | null;
  fulfillment_status: FulfillmentStatus | null;
  /** A carrier's; null for stores and books. */
  shipping_status: ShippingStatus | null;
  /**
   * ISO 8601 with offset: the provider's own cancellation time where it has one (Shopify), else
   * the record's last update while it is canceled (order_status.ts `canceled` words).
   */
  canceled_at: string | null;
  tracking_number: string | null;
  /** Decimal text, exact ("12.50"). */
  total_price: string | null;
  currency: string | null;
  customer_external_id: string | null;
  /** ISO 8601 with offset. */
  ordered_at: string | null;
  /** ISO 8601 with offset: the provider's last change. An older one never overwrites a newer one. */
  remote_updated_at: string;
  raw: unknown;
  /**
   * Not a column: the provider's status words the mapping (order_status.ts) did not know, whose
   * normalized fields are "unknown". The jobs count them in the run's `details.unknown_statuses`.
   */
  unknown_statuses?: readonly string[];
}

/** One customer as Tether stores it (tether.customers). Deleted at the provider = inactive. */
export interface CustomerRecord {
  external_id: string;
  email: string | null;
  first_name: string | null;
  last_name: string | null;
  phone: string | null;
  status: "active" | "inactive";
  remote_updated_at: string;
  raw: unknown;
}

export interface StreamRecords {
  orders: OrderRecord;
  customers: CustomerRecord;
}

export interface ReadRequest {
  /**
   * Where the previous page (or run) stopped: adapter-defined JSON text, stored by the job with
   * that page's records. null = start at `from`.
   */
  cursor: string | null;
  /** With no cursor: changes at or after this instant; null = the whole history. */
  from: Date | null;
  /** Changes up to this instant: the run's start, or a backfill window's end. */
  until: Date;
  /** Records per page; the adapter clamps it to what the provider allows. */
  pageSize?: number;
}

export interface StreamPage<R> {
  records: R[];
  /**
   * Where the next read continues; the job stores it in the same transaction as `records`. When
   * `hasMore` is false it is where the next run starts, never later than `until` minus
   * SYNC_OVERLAP_SECONDS (docs/architecture.md rule 4).
   */
  cursor: string;
  /** false once the read has caught up with `until`. */
  hasMore: boolean;
  /**
   * Fields of this page's records the provider withheld (stored as null), in Tether's column
   * names: Shopify's protected customer data for an app without approval. The run records them
   * in `details.withheld_fields`.
   */
  withheld?: readonly string[];
}

export type StreamReader<R> = (
  ctx: AdapterContext,
  conn: ConnectionRef,
  creds: Credentials,
  req: ReadRequest,
) => Promise<StreamPage<R>>;

export type StreamReaders = { readonly [S in StreamName]?: StreamReader<StreamRecords[S]> };
