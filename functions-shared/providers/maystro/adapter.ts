// Maystro Delivery. No public documentation: a static dashboard key (`Authorization: Token …`),
// no refresh. "Refresh" checks the key with one cheap call and returns it unchanged. Response
// schemas stay tolerant, since the facts come from client libraries, not from the provider.

import { z } from "zod";
import {
  baseConfigShape,
  defineFacts,
  parseConfig,
  parseCredentials,
  requireCredential,
  token,
} from "../common.ts";
import { baseUrls, joinUrl, requestJson } from "../http.ts";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
  ProviderAdapter,
  TokenGrant,
} from "../types.ts";

const PROVIDER = "maystro";

export const configSchema = z.strictObject({ ...baseConfigShape });
export type MaystroConfig = z.output<typeof configSchema>;

const credentialsShape = { api_token: token };
export const credentialsSchema = z.strictObject(credentialsShape);
const storedCredentials = z.object(credentialsShape);

export const facts = defineFacts({
  displayName: "Maystro",
  authMode: "api_token",
  supportsRefresh: false,
  rotatesRefreshToken: false,
  refreshMarginSeconds: 0,
  appEnv: null,
  defaultRetryAfterSeconds: 2,
  tokenPath: null,
  ordersPath: "/api/stores/orders/",
  defaultAuthBaseUrl: (_config: MaystroConfig) => "https://backend.maystro-delivery.com",
  defaultApiBaseUrl: (_config: MaystroConfig) => "https://backend.maystro-delivery.com",
});

/** `{"list": {"count", "next", "results": […]}}`, kept loose. */
export const verifyResponse = z.looseObject({
  list: z.looseObject({ results: z.array(z.unknown()) }),
});

function accessToken(creds: Credentials): string {
  return requireCredential(PROVIDER, creds, "api_token");
}

async function refresh(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<TokenGrant> {
  const creds = parseCredentials(PROVIDER, stored, storedCredentials);
  await verify(ctx, conn, stored);
  return {
    credentials: { api_token: creds.api_token },
    accessTokenExpiresAt: null,
    refreshTokenExpiresAt: null,
    refreshTokenRotated: false,
  };
}

async function verify(
  ctx: AdapterContext,
  conn: ConnectionRef,
  stored: Credentials,
): Promise<void> {
  const config = parseConfig(PROVIDER, conn, configSchema);
  const url = new URL(joinUrl(baseUrls(facts, config).api, facts.ordersPath));
  url.searchParams.set("page", "1");
  await requestJson(ctx, {
    provider: PROVIDER,
    facts,
    endpoint: "api",
    what: "verify response",
    method: "GET",
    url: url.toString(),
    headers: { authorization: `Token ${accessToken(stored)}`, accept: "application/json" },
    secrets: Object.values(stored),
  }, verifyResponse);
}

export const maystroAdapter = {
  provider: PROVIDER,
  facts,
  credentialsSchema,
  configSchema,
  refresh,
  verify,
  accessToken,
} as const satisfies ProviderAdapter<typeof facts>;
