// Lightspeed Retail (X-Series, formerly Vend). Refresh tokens rotate (the old one is revoked at
// once) and die after about 30 idle days; the access-token lifetime varies between sources, so it
// is always taken from the response.

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
import { after, baseUrls, joinUrl, requestJson, requireApp } from "../http.ts";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
  ProviderAdapter,
  TokenGrant,
} from "../types.ts";

const PROVIDER = "lightspeed";

export const configSchema = z.strictObject({
  domain_prefix: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*$/i, "expected the store's domain prefix (letters, digits, -)"),
  ...baseConfigShape,
});
export type LightspeedConfig = z.output<typeof configSchema>;

const credentialsShape = { refresh_token: token, access_token: token.optional() };
export const credentialsSchema = z.strictObject(credentialsShape);
const storedCredentials = z.object(credentialsShape);

export const facts = defineFacts({
  displayName: "Lightspeed",
  authMode: "oauth2",
  supportsRefresh: true,
  rotatesRefreshToken: true,
  // Lifetimes from 30 minutes to 7 days are reported; the margin must suit the shortest.
  refreshMarginSeconds: 10 * 60,
  refreshTokenIdleSeconds: 30 * 24 * 3600,
  appEnv: { clientId: "LIGHTSPEED_CLIENT_ID", clientSecret: "LIGHTSPEED_CLIENT_SECRET" },
  defaultRetryAfterSeconds: 2,
  tokenPath: "/api/1.0/token",
  verifyPath: "/api/2.0/outlets",
  defaultAuthBaseUrl: (config: LightspeedConfig) =>
    `https://${config.domain_prefix}.retail.lightspeed.app`,
  defaultApiBaseUrl: (config: LightspeedConfig) =>
    `https://${config.domain_prefix}.retail.lightspeed.app`,
});

/** `expires_in` is preferred; `expires` (unix seconds) is the fallback; one of them must be there. */
export const refreshResponse = z
  .object({
    access_token: token,
    refresh_token: token,
    expires_in: seconds.optional(),
    expires: z.number().positive().optional(),
    token_type: z.string().optional(),
    domain_prefix: z.string().optional(),
    scope: z.string().optional(),
  })
  .check((ctx) => {
    if (ctx.value.expires_in === undefined && ctx.value.expires === undefined) {
      ctx.issues.push({
        code: "custom",
        path: ["expires_in"],
        message: 'expected number (or "expires", unix seconds), received undefined',
        input: ctx.value,
      });
    }
  });

export const verifyResponse = z.looseObject({ data: z.array(z.unknown()) });

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
  const now = ctx.now();
  const { data } = await requestJson(ctx, {
    provider: PROVIDER,
    facts,
    endpoint: "token",
    what: "refresh response",
    method: "POST",
    url: joinUrl(baseUrls(facts, config).auth, facts.tokenPath),
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
    },
    body: new URLSearchParams({
      refresh_token: creds.refresh_token,
      client_id: app.clientId,
      client_secret: app.clientSecret,
      grant_type: "refresh_token",
    }),
    secrets: [...Object.values(stored), app.clientSecret],
  }, refreshResponse);
  const accessTokenExpiresAt = data.expires_in !== undefined
    ? after(now, data.expires_in)
    : new Date((data.expires as number) * 1000);
  return {
    credentials: { access_token: data.access_token, refresh_token: data.refresh_token },
    accessTokenExpiresAt,
    refreshTokenExpiresAt: after(now, facts.refreshTokenIdleSeconds),
    refreshTokenRotated: data.refresh_token !== creds.refresh_token,
  };
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
    url: joinUrl(baseUrls(facts, config).api, facts.verifyPath),
    headers: { authorization: `Bearer ${accessToken(stored)}`, accept: "application/json" },
    secrets: Object.values(stored),
  }, verifyResponse);
}

export const lightspeedAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  accessToken,
} as const satisfies ProviderAdapter<typeof facts>;
