// QuickBooks Online's authorization-code grant (Intuit "OAuth 2.0" docs): authorize at
// https://appcenter.intuit.com/connect/oauth2?client_id&response_type=code
// &scope=com.intuit.quickbooks.accounting&redirect_uri&state; the callback carries code, state,
// realmId; the code is exchanged at https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer with
// Basic auth and the form grant_type=authorization_code&code&redirect_uri (./adapter.ts tokenClient).
import { authorizeUrlOf, callbackParam } from "../oauth.ts";
import type { ProviderOAuth } from "../types.ts";
import { facts, grantOf, refreshResponse, tokenClient } from "./adapter.ts";

const SCOPE = "com.intuit.quickbooks.accounting";
const REALM_ID = /^\d+$/;

export const quickbooksOAuth: ProviderOAuth = {
  authorizeUrl: ({ app, redirectUri, state, baseUrl }) =>
    authorizeUrlOf(baseUrl ?? "https://appcenter.intuit.com", "/connect/oauth2", {
      client_id: app.clientId,
      response_type: "code",
      scope: SCOPE,
      redirect_uri: redirectUri,
      state,
    }),

  callbackAccount(query) {
    const realm = callbackParam(query, "realmId", REALM_ID);
    return { externalId: realm, config: { realm_id: realm } };
  },

  async exchangeCode(ctx, { app, code, redirectUri, account, baseUrl }) {
    const base = baseUrl ?? facts.defaultAuthBaseUrl({ realm_id: account.externalId });
    const now = ctx.now();
    const { data } = await tokenClient(ctx, base, app, [code]).postForm(
      "code exchange response",
      facts.tokenPath,
      { grant_type: "authorization_code", code, redirect_uri: redirectUri },
      refreshResponse,
    );
    return grantOf(data, now);
  },
};
