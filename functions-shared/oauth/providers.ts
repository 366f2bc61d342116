// The OAuth authorization-code flow of each provider that has one, as data plus two small
// functions: where to send the person (`authorizeUrl`), and how to turn the callback's code into
// a grant (`exchange`). Facts from PROVIDERS.md and the providers' own docs:
//
// - Shopify: authorize https://{shop}/admin/oauth/authorize?client_id&scope&redirect_uri&state;
//   callback code, hmac, shop, state, timestamp, host; exchange POST
//   https://{shop}/admin/oauth/access_token JSON {client_id, client_secret, code, expiring: 1}.
// - QuickBooks: authorize https://appcenter.intuit.com/connect/oauth2?client_id&response_type=code
//   &scope=com.intuit.quickbooks.accounting&redirect_uri&state; callback code, state, realmId;
//   exchange POST https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer, Basic auth, form
//   grant_type=authorization_code&code&redirect_uri.
// - Lightspeed X-Series: authorize https://secure.retail.lightspeed.app/connect?response_type=code
//   &client_id&redirect_uri&state; callback code, domain_prefix, state; exchange POST
//   https://{domain_prefix}.retail.lightspeed.app/api/1.0/token form code, client_id,
//   client_secret, grant_type=authorization_code, redirect_uri.
//
// A base URL override (SHOPIFY_BASE_URL, …; the sandbox in tests) replaces scheme and host of all
// three endpoints, and is stored in the new connection's config so its refreshes and syncs go to
// the same place.

import { constantTimeEqual, decodeHex, hmacSha256 } from "../crypto.ts";
import { z } from "zod";
import { seconds, token } from "../providers/common.ts";
import { after, base64Utf8, joinUrl, requestJson } from "../providers/http.ts";
import { facts as lightspeedFacts } from "../providers/lightspeed/adapter.ts";
import { refreshResponse as lightspeedTokenResponse } from "../providers/lightspeed/adapter.ts";
import {
  facts as quickbooksFacts,
  refreshResponse as quickbooksTokenResponse,
} from "../providers/quickbooks/adapter.ts";
import { facts as shopifyFacts } from "../providers/shopify/adapter.ts";
import type { AdapterContext, AppCredentials, TokenGrant } from "../providers/types.ts";

export const OAUTH_PROVIDERS = ["shopify", "lightspeed", "quickbooks"] as const;
export type OAuthProvider = typeof OAUTH_PROVIDERS[number];

export function isOAuthProvider(value: string): value is OAuthProvider {
  return (OAUTH_PROVIDERS as readonly string[]).includes(value);
}

/** `<name>.myshopify.com`, as the Shopify adapter's config requires. */
export const SHOP_DOMAIN = /^[a-z0-9][a-z0-9-]*\.myshopify\.com$/;
const DOMAIN_PREFIX = /^[a-z0-9][a-z0-9-]*$/i;
const REALM_ID = /^\d+$/;

/** Shopify: the read scopes Tether's streams need. */
const SHOPIFY_SCOPES = "read_orders,read_customers";
const QUICKBOOKS_SCOPE = "com.intuit.quickbooks.accounting";

/** What the callback says about the account, beyond the code. */
export interface CallbackAccount {
  /** The connection's external id: the shop, the domain prefix, the realm id. */
  externalId: string;
  /** The connection's config (without base URLs). */
  config: Record<string, string>;
}

/** An OAuth flow's failure that is the caller's or the provider's, shown on the error page. */
export class OAuthFailure extends Error {
  override readonly name = "OAuthFailure";
}

/** Scheme + host (+ prefix) of the authorize endpoint. */
function authorizeBase(provider: OAuthProvider, override: string | undefined, shop?: string) {
  if (override !== undefined) return override;
  switch (provider) {
    case "shopify":
      return `https://${shop}`;
    case "lightspeed":
      return "https://secure.retail.lightspeed.app";
    case "quickbooks":
      return "https://appcenter.intuit.com";
  }
}

/** Scheme + host of the token endpoint for the account the callback named. */
function tokenBase(
  provider: OAuthProvider,
  override: string | undefined,
  account: CallbackAccount,
) {
  if (override !== undefined) return override;
  switch (provider) {
    case "shopify":
      return shopifyFacts.defaultAuthBaseUrl({ shop: account.config.shop! });
    case "lightspeed":
      return lightspeedFacts.defaultAuthBaseUrl({ domain_prefix: account.config.domain_prefix! });
    case "quickbooks":
      return quickbooksFacts.defaultAuthBaseUrl({ realm_id: account.config.realm_id! });
  }
}

export function authorizeUrl(
  provider: OAuthProvider,
  opts: {
    app: AppCredentials;
    redirectUri: string;
    state: string;
    baseUrl: string | undefined;
    shop?: string;
  },
): string {
  const base = authorizeBase(provider, opts.baseUrl, opts.shop);
  const paths = {
    shopify: "/admin/oauth/authorize",
    lightspeed: "/connect",
    quickbooks: "/connect/oauth2",
  };
  const url = new URL(joinUrl(base, paths[provider]));
  const q = url.searchParams;
  if (provider === "shopify") {
    q.set("client_id", opts.app.clientId);
    q.set("scope", SHOPIFY_SCOPES);
    q.set("redirect_uri", opts.redirectUri);
    q.set("state", opts.state);
  } else if (provider === "quickbooks") {
    q.set("client_id", opts.app.clientId);
    q.set("response_type", "code");
    q.set("scope", QUICKBOOKS_SCOPE);
    q.set("redirect_uri", opts.redirectUri);
    q.set("state", opts.state);
  } else {
    q.set("response_type", "code");
    q.set("client_id", opts.app.clientId);
    q.set("redirect_uri", opts.redirectUri);
    q.set("state", opts.state);
  }
  return url.toString();
}

/** The account the callback names, validated; an OAuthFailure when a parameter is missing or malformed. */
export function callbackAccount(provider: OAuthProvider, query: URLSearchParams): CallbackAccount {
  const param = (name: string, pattern: RegExp) => {
    const value = query.get(name);
    if (value === null || value === "") {
      throw new OAuthFailure(`the provider's answer has no ${name}`);
    }
    if (!pattern.test(value)) {
      throw new OAuthFailure(`the provider's answer has a malformed ${name}`);
    }
    return value;
  };
  switch (provider) {
    case "shopify": {
      const shop = param("shop", SHOP_DOMAIN);
      return { externalId: shop, config: { shop } };
    }
    case "lightspeed": {
      const prefix = param("domain_prefix", DOMAIN_PREFIX);
      return { externalId: prefix, config: { domain_prefix: prefix } };
    }
    case "quickbooks": {
      const realm = param("realmId", REALM_ID);
      return { externalId: realm, config: { realm_id: realm } };
    }
  }
}

/** shopify-app-js `access-token` answers: expiring offline tokens carry the refresh fields. */
const shopifyTokenResponse = z.object({
  access_token: token,
  scope: z.string().optional(),
  expires_in: seconds.optional(),
  refresh_token: token.optional(),
  refresh_token_expires_in: seconds.optional(),
});

/** Exchanges the callback's code at the provider's token endpoint; ProviderError on failure. */
export async function exchangeCode(
  ctx: AdapterContext,
  provider: OAuthProvider,
  opts: {
    app: AppCredentials;
    code: string;
    redirectUri: string;
    account: CallbackAccount;
    baseUrl: string | undefined;
  },
): Promise<TokenGrant> {
  const { app, code, redirectUri } = opts;
  const base = tokenBase(provider, opts.baseUrl, opts.account);
  const now = ctx.now();
  const secrets = [code, app.clientSecret];
  if (provider === "shopify") {
    const { data } = await requestJson(ctx, {
      provider,
      facts: shopifyFacts,
      endpoint: "token",
      what: "code exchange response",
      method: "POST",
      url: joinUrl(base, shopifyFacts.tokenPath),
      headers: { "content-type": "application/json", accept: "application/json" },
      // `expiring: 1` asks for an expiring offline token with a refresh token.
      body: JSON.stringify({
        client_id: app.clientId,
        client_secret: app.clientSecret,
        code,
        expiring: 1,
      }),
      secrets,
    }, shopifyTokenResponse);
    const credentials: Record<string, string> = { access_token: data.access_token };
    if (data.refresh_token !== undefined) credentials.refresh_token = data.refresh_token;
    return {
      credentials,
      accessTokenExpiresAt: data.expires_in === undefined ? null : after(now, data.expires_in),
      refreshTokenExpiresAt: data.refresh_token_expires_in === undefined
        ? null
        : after(now, data.refresh_token_expires_in),
      refreshTokenRotated: data.refresh_token !== undefined,
    };
  }
  if (provider === "quickbooks") {
    const basic = `Basic ${base64Utf8(`${app.clientId}:${app.clientSecret}`)}`;
    const { data } = await requestJson(ctx, {
      provider,
      facts: quickbooksFacts,
      endpoint: "token",
      what: "code exchange response",
      method: "POST",
      url: joinUrl(base, quickbooksFacts.tokenPath),
      headers: {
        authorization: basic,
        "content-type": "application/x-www-form-urlencoded",
        accept: "application/json",
      },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: redirectUri,
      }),
      secrets: [...secrets, basic],
    }, quickbooksTokenResponse);
    return {
      credentials: { access_token: data.access_token, refresh_token: data.refresh_token },
      accessTokenExpiresAt: after(now, data.expires_in),
      refreshTokenExpiresAt: after(now, data.x_refresh_token_expires_in),
      refreshTokenRotated: true,
    };
  }
  const { data } = await requestJson(ctx, {
    provider,
    facts: lightspeedFacts,
    endpoint: "token",
    what: "code exchange response",
    method: "POST",
    url: joinUrl(base, lightspeedFacts.tokenPath),
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams({
      code,
      client_id: app.clientId,
      client_secret: app.clientSecret,
      grant_type: "authorization_code",
      redirect_uri: redirectUri,
    }),
    secrets,
  }, lightspeedTokenResponse);
  return {
    credentials: { access_token: data.access_token, refresh_token: data.refresh_token },
    accessTokenExpiresAt: data.expires_in !== undefined
      ? after(now, data.expires_in)
      : new Date((data.expires as number) * 1000),
    refreshTokenExpiresAt: after(now, lightspeedFacts.refreshTokenIdleSeconds),
    refreshTokenRotated: true,
  };
}

// ---------------------------------------------------------------------------------------------
// Shopify's callback signature

/**
 * Shopify signs the callback's query: HMAC-SHA256 (hex, with the app's client secret) of every
 * parameter but `hmac` and `signature`, decoded, sorted by name and re-encoded. True when one of
 * `secrets` (current, then previous during a rotation) matches; compared in constant time.
 */
export async function verifyShopifyHmac(
  query: URLSearchParams,
  secrets: readonly string[],
): Promise<boolean> {
  const presented = decodeHex(query.get("hmac") ?? "");
  if (presented === undefined || presented.length !== 32) return false;
  const pairs = [...query.entries()]
    .filter(([k]) => k !== "hmac" && k !== "signature")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const message = new URLSearchParams(pairs).toString();
  let matches = false;
  for (const secret of secrets) {
    matches = constantTimeEqual(await hmacSha256(secret, message), presented) || matches;
  }
  return matches;
}
