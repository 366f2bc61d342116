// Lightspeed Retail X-Series' authorization-code grant (x-series-api.lightspeedhq.com
// "OAuth"): authorize at https://secure.retail.lightspeed.app/connect?response_type=code
// &client_id&redirect_uri&state; the callback carries code, domain_prefix, state; the code is
// exchanged with a form POST to https://{domain_prefix}.retail.lightspeed.app/api/1.0/token.
import { after } from "../http.ts";
import { authorizeUrlOf, callbackParam } from "../oauth.ts";
import type { ProviderOAuth } from "../types.ts";
import { facts, refreshResponse, tokenClient } from "./adapter.ts";

const DOMAIN_PREFIX = /^[a-z0-9][a-z0-9-]*$/i;

export const lightspeedOAuth: ProviderOAuth = {
  authorizeUrl: ({ app, redirectUri, state, baseUrl }) =>
    authorizeUrlOf(baseUrl ?? "https://secure.retail.lightspeed.app", "/connect", {
      response_type: "code",
      client_id: app.clientId,
      redirect_uri: redirectUri,
      state,
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
    return {
      credentials: { access_token: data.access_token, refresh_token: data.refresh_token },
      accessTokenExpiresAt: data.expires_in !== undefined
        ? after(now, data.expires_in)
        : new Date((data.expires as number) * 1000),
      refreshTokenExpiresAt: after(now, facts.refreshTokenIdleSeconds),
      refreshTokenRotated: true,
    };
  },
};
