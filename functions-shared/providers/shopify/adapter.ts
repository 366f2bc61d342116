// Shopify Admin API. Two kinds of offline token: legacy ones never expire (no refresh token;
// "refresh" only verifies), expiring ones live an hour and their refresh token (90 days) rotates on
// every refresh, with one live token per app and shop.

import { z } from "zod";
import {
  baseConfigShape,
  defineFacts,
  parseConfig,
  parseCredentials,
  requireCredential,
  seconds,
  token,
} from "../common.ts";
import { after, baseUrls, joinUrl, requestGraphql, requestJson, requireApp } from "../http.ts";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
  ProviderAdapter,
  TokenGrant,
} from "../types.ts";

const PROVIDER = "shopify";

export const configSchema = z.strictObject({
  shop: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*\.myshopify\.com$/, 'expected "<name>.myshopify.com"'),
  ...baseConfigShape,
});
export type ShopifyConfig = z.output<typeof configSchema>;

const credentialsShape = { access_token: token, refresh_token: token.optional() };
export const credentialsSchema = z.strictObject(credentialsShape);
const storedCredentials = z.object(credentialsShape);

export const facts = defineFacts({
  displayName: "Shopify",
  authMode: "oauth2",
  supportsRefresh: true, // expiring offline tokens only; legacy tokens are verified instead
  rotatesRefreshToken: true,
  refreshMarginSeconds: 15 * 60, // access tokens live 3600 s
  refreshTokenIdleSeconds: 90 * 24 * 3600, // 90 days, renewed by every refresh
  appEnv: { clientId: "SHOPIFY_CLIENT_ID", clientSecret: "SHOPIFY_CLIENT_SECRET" },
  defaultRetryAfterSeconds: 2,
  tokenPath: "/admin/oauth/access_token",
  apiVersion: "2025-10",
  graphqlPath: (apiVersion: string) => `/admin/api/${apiVersion}/graphql.json`,
  defaultAuthBaseUrl: (config: ShopifyConfig) => `https://${config.shop}`,
  defaultApiBaseUrl: (config: ShopifyConfig) => `https://${config.shop}`,
});

/** shopify-app-js `refresh-token.ts`: the fields used; `scope` is informational. */
export const refreshResponse = z.object({
  access_token: token,
  expires_in: seconds,
  refresh_token: token,
  refresh_token_expires_in: seconds,
  scope: z.string().optional(),
});

export const verifyData = z.object({ shop: z.looseObject({ name: z.string() }) });

function accessToken(creds: Credentials): string {
  return requireCredential(PROVIDER, creds, "access_token");
}

async function refresh(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<TokenGrant> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const creds = parseCredentials(PROVIDER, stored, storedCredentials);
  if (creds.refresh_token === undefined) {
    // A legacy offline token: nothing to renew, only check it still works.
    await verify(ctx, conn, stored);
    return {
      credentials: { access_token: creds.access_token },
      accessTokenExpiresAt: null,
      refreshTokenExpiresAt: null,
      refreshTokenRotated: false,
    };
  }
  const app = requireApp(ctx, PROVIDER, facts);
  const now = ctx.now();
  const { data } = await requestJson(ctx, {
    provider: PROVIDER,
    facts,
    endpoint: "token",
    what: "refresh response",
    method: "POST",
    url: joinUrl(baseUrls(facts, config).auth, facts.tokenPath),
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({
      client_id: app.clientId,
      client_secret: app.clientSecret,
      refresh_token: creds.refresh_token,
      grant_type: "refresh_token",
    }),
    secrets: [...Object.values(stored), app.clientSecret],
  }, refreshResponse);
  return {
    credentials: { access_token: data.access_token, refresh_token: data.refresh_token },
    accessTokenExpiresAt: after(now, data.expires_in),
    refreshTokenExpiresAt: after(now, data.refresh_token_expires_in),
    refreshTokenRotated: data.refresh_token !== creds.refresh_token,
  };
}

async function verify(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<void> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  await requestGraphql(ctx, {
    provider: PROVIDER,
    facts,
    endpoint: "api",
    what: "verify response",
    method: "POST",
    url: joinUrl(baseUrls(facts, config).api, facts.graphqlPath(facts.apiVersion)),
    headers: {
      "x-shopify-access-token": accessToken(stored),
      "content-type": "application/json",
      accept: "application/json",
    },
    body: JSON.stringify({ query: "{ shop { name } }" }),
    secrets: Object.values(stored),
  }, verifyData);
}

export const shopifyAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  accessToken,
} as const satisfies ProviderAdapter<typeof facts>;
