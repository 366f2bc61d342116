// QuickBooks Online (Intuit). Access tokens live an hour; the refresh token rolls (about 101 days
// from each refresh), the previous one dies 24 h after a new one is issued, and since 2025 it also
// has a hard maximum (5 years), reported when asked for with a request header.

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
import { after, base64Utf8, baseUrls, joinUrl, requestJson, requireApp } from "../http.ts";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
  ProviderAdapter,
  TokenGrant,
} from "../types.ts";

const PROVIDER = "quickbooks";

export const configSchema = z.strictObject({
  realm_id: z.string().regex(/^\d+$/, "expected the company's realm id (digits)"),
  ...baseConfigShape,
});
export type QuickBooksConfig = z.output<typeof configSchema>;

const credentialsShape = { refresh_token: token, access_token: token.optional() };
export const credentialsSchema = z.strictObject(credentialsShape);
const storedCredentials = z.object(credentialsShape);

export const facts = defineFacts({
  displayName: "QuickBooks",
  authMode: "oauth2",
  supportsRefresh: true,
  rotatesRefreshToken: true,
  refreshMarginSeconds: 15 * 60, // access tokens live 3600 s
  refreshTokenIdleSeconds: 8_726_400, // ~101 days, rolling; the response states the exact figure
  appEnv: { clientId: "QUICKBOOKS_CLIENT_ID", clientSecret: "QUICKBOOKS_CLIENT_SECRET" },
  defaultRetryAfterSeconds: 60,
  tokenPath: "/oauth2/v1/tokens/bearer",
  companyInfoPath: (realmId: string) =>
    `/v3/company/${encodeURIComponent(realmId)}/companyinfo/${encodeURIComponent(realmId)}`,
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

async function refresh(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<TokenGrant> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const creds = parseCredentials(PROVIDER, stored, storedCredentials);
  const app = requireApp(ctx, PROVIDER, facts);
  const basic = base64Utf8(`${app.clientId}:${app.clientSecret}`);
  const now = ctx.now();
  const { data } = await requestJson(ctx, {
    provider: PROVIDER,
    facts,
    endpoint: "token",
    what: "refresh response",
    method: "POST",
    url: joinUrl(baseUrls(facts, config).auth, facts.tokenPath),
    headers: {
      authorization: `Basic ${basic}`,
      accept: "application/json",
      "content-type": "application/x-www-form-urlencoded",
      "x-include-refresh-token-hard-expires-in": "true",
    },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: creds.refresh_token }),
    secrets: [...Object.values(stored), app.clientSecret, basic],
  }, refreshResponse);
  const grant: TokenGrant = {
    // Always keep the newest refresh token, even when it equals the one sent.
    credentials: { access_token: data.access_token, refresh_token: data.refresh_token },
    accessTokenExpiresAt: after(now, data.expires_in),
    refreshTokenExpiresAt: after(now, data.x_refresh_token_expires_in),
    refreshTokenRotated: data.refresh_token !== creds.refresh_token,
  };
  if (data.x_refresh_token_hard_expires_in !== undefined) {
    grant.refreshTokenHardExpiresAt = after(now, data.x_refresh_token_hard_expires_in);
  }
  return grant;
}

async function verify(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<void> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  await requestJson(ctx, {
    provider: PROVIDER,
    facts,
    endpoint: "api",
    what: "verify response",
    method: "GET",
    url: joinUrl(baseUrls(facts, config).api, facts.companyInfoPath(config.realm_id)),
    headers: { authorization: `Bearer ${accessToken(stored)}`, accept: "application/json" },
    secrets: Object.values(stored),
  }, verifyResponse);
}

export const quickbooksAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  accessToken,
} as const satisfies ProviderAdapter<typeof facts>;
