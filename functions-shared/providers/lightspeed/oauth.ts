// Lightspeed Retail X-Series' authorization-code grant (x-series-api.lightspeedhq.com/docs/
// authorization and /docs/scopes): authorize at https://secure.retail.lightspeed.app/connect
// ?response_type=code&client_id&redirect_uri&state&scope; the callback carries code,
// domain_prefix, state; the code is exchanged with a form POST to
// https://{domain_prefix}.retail.lightspeed.app/api/1.0/token.
//
// `scope` is mandatory: "Starting 1 June 2026, all new OAuth authorization requests must include a
// scope parameter. Requests without the scope parameter will be declined." (changelog "2025-11
// Upcoming Mandatory Scope Parameter"). The scopes are space-delimited (docs/scopes: "&scope=
// products:read sales:read customers:read"); each endpoint's reference names its own.
import { after } from "../http.ts";
import { authorizeUrlOf, callbackParam } from "../oauth.ts";
import type { ProviderOAuth } from "../types.ts";
import { facts, refreshResponse, retailerIdOf, tokenClient } from "./adapter.ts";

const DOMAIN_PREFIX = /^[a-z0-9][a-z0-9-]*$/i;

/**
 * What Tether's reads need: `sales:read` (GET /api/2.0/sales) and `customers:read`
 * (GET /api/2.0/customers), both named on x-series-api.lightspeedhq.com/docs/scopes; and
 * `outlets:read` for the verify call (GET /api/2.0/outlets) and `retailer:read` for the retailer
 * id webhooks are routed by (GET /api/2.0/retailer), names seen in independent clients only.
 * Tether registers no webhooks itself (they are set up on the store), so it asks for no webhook
 * scope. LIGHTSPEED_SCOPES replaces the list (README, provider matrix).
 */
export const DEFAULT_SCOPES = "sales:read customers:read outlets:read retailer:read";

export const lightspeedOAuth: ProviderOAuth = {
  authorizeUrl: ({ app, redirectUri, state, baseUrl, scopes }) =>
    authorizeUrlOf(baseUrl ?? "https://secure.retail.lightspeed.app", "/connect", {
      response_type: "code",
      client_id: app.clientId,
      redirect_uri: redirectUri,
      state,
      scope: scopes ?? DEFAULT_SCOPES,
    }),

  callbackAccount(query) {
    const prefix = callbackParam(query, "domain_prefix", DOMAIN_PREFIX);
    return { externalId: prefix, config: { domain_prefix: prefix } };
  },

  async exchangeCode(ctx, { app, code, redirectUri, account, baseUrl }) {
    const base = baseUrl ?? facts.defaultAuthBaseUrl({ domain_prefix: account.externalId });
    const now = ctx.now();
    const token = tokenClient(ctx, base, [code, app.clientSecret]);
    const { data } = await token.postForm("code exchange response", facts.tokenPath, {
      code,
      client_id: app.clientId,
      client_secret: app.clientSecret,
      grant_type: "authorization_code",
      redirect_uri: redirectUri,
    }, refreshResponse);
    const credentials = { access_token: data.access_token, refresh_token: data.refresh_token };
    // The retailer id routes webhooks that leave out domain_prefix (./webhook.ts).
    const retailerId = await retailerIdOf(ctx, {
      domain_prefix: account.externalId,
      ...(baseUrl === undefined ? {} : { auth_base_url: baseUrl, api_base_url: baseUrl }),
    }, credentials);
    return {
      credentials,
      accessTokenExpiresAt: data.expires_in !== undefined
        ? after(now, data.expires_in)
        : new Date((data.expires as number) * 1000),
      refreshTokenExpiresAt: after(now, facts.refreshTokenIdleSeconds),
      refreshTokenRotated: true,
      ...(retailerId === undefined ? {} : { accountConfig: { retailer_id: retailerId } }),
    };
  },
};
