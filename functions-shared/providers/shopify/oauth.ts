// Shopify's authorization-code grant (shopify.dev "Authorization code grant"): authorize at
// https://{shop}/admin/oauth/authorize?client_id&scope&redirect_uri&state; the callback carries
// code, hmac, shop, state, timestamp, host; the code is exchanged with a JSON POST to
// https://{shop}/admin/oauth/access_token {client_id, client_secret, code, expiring: 1}.
import { z } from "zod";
import { constantTimeEqual, decodeHex, hmacSha256 } from "../../crypto.ts";
import { seconds, token } from "../common.ts";
import { after } from "../http.ts";
import { authorizeUrlOf, callbackParam } from "../oauth.ts";
import type { AppCredentials, ProviderOAuth } from "../types.ts";
import { facts, tokenClient } from "./adapter.ts";

/** `<name>.myshopify.com`, as the adapter's config requires. */
export const SHOP_DOMAIN = /^[a-z0-9][a-z0-9-]*\.myshopify\.com$/;

/** The read scopes Tether's streams need. */
const SCOPES = "read_orders,read_customers";

/** shopify-app-js `access-token` answers: expiring offline tokens carry the refresh fields. */
const tokenResponse = z.object({
  access_token: token,
  scope: z.string().optional(),
  expires_in: seconds.optional(),
  refresh_token: token.optional(),
  refresh_token_expires_in: seconds.optional(),
});

/**
 * Shopify signs the callback's query: HMAC-SHA256 (hex, with the app's client secret) of every
 * parameter but `hmac` and `signature`, decoded, sorted by name and re-encoded. True when the
 * current or the previous secret matches; compared in constant time.
 */
export async function verifyShopifyHmac(
  query: URLSearchParams,
  app: AppCredentials,
): Promise<boolean> {
  const presented = decodeHex(query.get("hmac") ?? "");
  if (presented === undefined || presented.length !== 32) return false;
  const pairs = [...query.entries()]
    .filter(([k]) => k !== "hmac" && k !== "signature")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const message = new URLSearchParams(pairs).toString();
  let matches = false;
  for (const secret of [app.clientSecret, app.previousClientSecret]) {
    if (secret === undefined) continue;
    matches = constantTimeEqual(await hmacSha256(secret, message), presented) || matches;
  }
  return matches;
}

export const shopifyOAuth: ProviderOAuth = {
  accountAtStart: { param: "shop", pattern: SHOP_DOMAIN, form: '"<name>.myshopify.com"' },

  authorizeUrl: ({ app, redirectUri, state, baseUrl, account }) =>
    authorizeUrlOf(baseUrl ?? `https://${account}`, "/admin/oauth/authorize", {
      client_id: app.clientId,
      scope: SCOPES,
      redirect_uri: redirectUri,
      state,
    }),

  verifyCallback: verifyShopifyHmac,

  callbackAccount(query) {
    const shop = callbackParam(query, "shop", SHOP_DOMAIN);
    return { externalId: shop, config: { shop } };
  },

  async exchangeCode(ctx, { app, code, account, baseUrl }) {
    const base = baseUrl ?? facts.defaultAuthBaseUrl({ shop: account.externalId });
    const now = ctx.now();
    // `expiring: 1` asks for an expiring offline token with a refresh token.
    const { data } = await tokenClient(ctx, base, [code, app.clientSecret]).postJson(
      "code exchange response",
      facts.tokenPath,
      { client_id: app.clientId, client_secret: app.clientSecret, code, expiring: 1 },
      tokenResponse,
    );
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
  },
};
