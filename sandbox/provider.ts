/**
 * The one interface every provider sandbox implements. The server owns the
 * cross-cutting parts (latency, faults, stats, routing); a provider module
 * owns its accounts, tokens and wire formats.
 */
import type { AccountBook, BaseAccount } from "./accounts.ts";
import type { DataRegistry, StreamName, TruthRecord } from "./data.ts";
import type { RateLimits } from "./limits.ts";
import type { WebhookSender } from "./webhooks.ts";

export const PROVIDERS = ["shiphero", "shopify", "lightspeed", "quickbooks", "maystro"] as const;
export type ProviderName = typeof PROVIDERS[number];

/** Providers whose token endpoint authenticates the app (client id + secret). */
export type AppProvider = "shopify" | "lightspeed" | "quickbooks";

export interface AppCredentials {
  clientId: string;
  clientSecret: string;
}

export type ShopifyTokenKind = "legacy" | "expiring";

export interface AccountInput {
  externalId?: string;
  /** Shopify only. */
  kind?: ShopifyTokenKind;
  /** Shopify only: the scopes the shop granted the app (default read_orders,read_all_orders,read_customers). */
  scopes?: string;
  /** Shopify only: the app is approved for protected customer data (default false). */
  protectedCustomerData?: boolean;
}

export interface CreatedAccount {
  external_id: string;
  /** In the provider's own field names. */
  credentials: Record<string, string>;
  /** Where the provider's account id lives (shop, domain_prefix, realm_id). */
  config: Record<string, string>;
}

/** An account's newest tokens and their expiries (epoch ms; null = never / none). */
export interface AccountSnapshot {
  refreshToken: string | null;
  accessToken: string | null;
  refreshExpiresAt: number | null;
  accessExpiresAt: number | null;
  revoked: boolean;
}

/** A token request that has been read but not yet acted on. */
export interface TokenAttempt {
  /** The refresh token presented, if any (for stats). */
  readonly refreshToken: string | undefined;
  /**
   * Checks credentials and rotates tokens. Synchronous on purpose: two
   * concurrent refreshes with the same token cannot interleave, so exactly one
   * of them wins a rotation.
   */
  complete(now: number): Response;
}

export interface TokenEndpoint {
  /** Path below the provider prefix, e.g. "/auth/refresh". */
  readonly path: string;
  /** Reads the request; a Response means it was malformed and is answered as is. */
  read(req: Request): Promise<TokenAttempt | Response>;
}

export interface ApiEndpoint {
  readonly method: "GET" | "POST" | "PUT";
  /** Matched against the path below the provider prefix. */
  readonly pattern: URLPattern;
  handle(
    req: Request,
    params: Record<string, string | undefined>,
    now: number,
  ): Response | Promise<Response>;
}

/** What every provider module shares: the accounts' datasets and their rate limits. */
export interface SandboxWorld {
  readonly data: DataRegistry;
  readonly limits: RateLimits;
}

/** A provider's data half: which streams it serves and what an adapter must store from them. */
export interface ProviderData {
  readonly streams: readonly StreamName[];
  /** Shopify only: a deleted customer (stored by Tether as inactive). */
  readonly customersCanBeDeleted: boolean;
  /** QuickBooks: an order can be deleted (POST /_sandbox/data/…/orders/<seq>/delete). */
  readonly ordersCanBeDeleted: boolean;
  /** ShipHero: an order can be given a custom status (POST /_sandbox/data/…/orders/<seq>/status). */
  readonly customOrderStatuses: boolean;
  /** Every record of an account's stream, as the adapter must store it. */
  truth(externalId: string, stream: StreamName): TruthRecord[];
}

export interface ProviderSandbox {
  readonly name: ProviderName;
  readonly token: TokenEndpoint | undefined;
  readonly api: readonly ApiEndpoint[];
  /** undefined when the requested external id is taken. */
  createAccount(input: AccountInput, now: number): CreatedAccount | undefined;
  /** Revocation and token ownership, the same for every provider (sandbox/accounts.ts). */
  readonly accounts: Pick<AccountBook<BaseAccount>, "revoke" | "ownerOf">;
  inspect(externalId: string): AccountSnapshot | undefined;
  /** The token endpoint's invalid_grant answer (also served by the invalid_grant fault). */
  invalidGrant(): Response;
  /** The API's bad-token answer (served by the invalid_grant fault on "api"). */
  unauthorized(): Response;
  readonly data: ProviderData;
  /** Renders the account's changes as the provider's signed webhook deliveries. */
  readonly webhooks: WebhookSender;
}
