// ShipHero (GraphQL). The refresh token is static while the account is active: the refresh
// response carries only a new access token (28 days), so the stored refresh token is kept.

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
import { after, baseUrls, joinUrl, requestGraphql, requestJson } from "../http.ts";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
  ProviderAdapter,
  TokenGrant,
} from "../types.ts";

const PROVIDER = "shiphero";

export const configSchema = z.strictObject({ ...baseConfigShape });
export type ShipHeroConfig = z.output<typeof configSchema>;

const credentialsShape = { refresh_token: token, access_token: token.optional() };
export const credentialsSchema = z.strictObject(credentialsShape);
const storedCredentials = z.object(credentialsShape);

export const facts = defineFacts({
  displayName: "ShipHero",
  authMode: "oauth2",
  supportsRefresh: true,
  rotatesRefreshToken: false,
  // Access tokens live 28 days; refresh well before, so a few failed days still leave room.
  refreshMarginSeconds: 3 * 24 * 3600,
  appEnv: null, // the refresh call takes the refresh token alone
  defaultRetryAfterSeconds: 2,
  tokenPath: "/auth/refresh",
  graphqlPath: "/graphql",
  defaultAuthBaseUrl: (_config: ShipHeroConfig) => "https://public-api.shiphero.com",
  defaultApiBaseUrl: (_config: ShipHeroConfig) => "https://public-api.shiphero.com",
});

/**
 * Exactly what ShipHero sends (access_token, expires_in, scope, token_type). No refresh_token: if
 * one ever appears it is taken as a rotation rather than dropped.
 */
export const refreshResponse = z.object({
  access_token: token,
  expires_in: seconds,
  scope: z.string().optional(),
  token_type: z.string().optional(),
  refresh_token: token.optional(),
});

const VERIFY_QUERY = "query { account { request_id complexity data { id email } } }";

/** `data` of the cheap call; `errors` are handled by `requestGraphql`. */
export const verifyData = z.object({
  account: z.looseObject({
    request_id: z.string().optional(),
    complexity: z.number().optional(),
    data: z.looseObject({ id: z.string() }),
  }),
});

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
  const now = ctx.now();
  const { data } = await requestJson(ctx, {
    provider: PROVIDER,
    facts,
    endpoint: "token",
    what: "refresh response",
    method: "POST",
    url: joinUrl(baseUrls(facts, config).auth, facts.tokenPath),
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ refresh_token: creds.refresh_token }),
    secrets: Object.values(stored),
  }, refreshResponse);

  const rotated = data.refresh_token !== undefined && data.refresh_token !== creds.refresh_token;
  return {
    credentials: rotated
      ? { access_token: data.access_token, refresh_token: data.refresh_token as string }
      : { access_token: data.access_token },
    accessTokenExpiresAt: after(now, data.expires_in),
    refreshTokenExpiresAt: null,
    refreshTokenRotated: rotated,
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
    url: joinUrl(baseUrls(facts, config).api, facts.graphqlPath),
    headers: {
      authorization: `Bearer ${accessToken(stored)}`,
      "content-type": "application/json",
      accept: "application/json",
    },
    body: JSON.stringify({ query: VERIFY_QUERY }),
    secrets: Object.values(stored),
  }, verifyData);
}

export const shipheroAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  accessToken,
} as const satisfies ProviderAdapter<typeof facts>;
