// Fresh credentials for the user's own code (the `tokens` function, issue #14): a valid access
// token of one connection, refreshed on demand inside the provider's margin with the same
// single-flight claim as the refresh sweep (getAccessToken), and the non-secret facts a caller
// needs to use it. The answer holds a token: it is never logged, never stored in a run or an
// invocation record (the job is `secretResult`).
import { z } from "zod";
import type { ConnectionRow } from "../db/connections.ts";
import type { Deps, Job } from "../deps.ts";
import { JobError } from "../errors.ts";
import { baseUrls } from "../providers/http.ts";
import { adapterFor } from "../providers/registry.ts";
import type { Credentials, ProviderAdapter } from "../providers/types.ts";
import { ConnectionUnavailable, getAccessToken } from "./tokens.ts";

/** A valid token of the connection, or the JobError that tells the caller what to do. */
export async function openConnection(
  deps: Deps,
  connectionId: string,
  opts: { force?: boolean } = {},
): Promise<{ token: string; credentials: Credentials; connection: ConnectionRow }> {
  try {
    return await getAccessToken(deps, connectionId, opts);
  } catch (err) {
    if (!(err instanceof ConnectionUnavailable)) throw err;
    switch (err.reason) {
      case "unknown":
        throw new JobError("unknown_connection", err.message);
      case "reauth_required":
        throw new JobError(
          "reauth_required",
          `${err.message}. A person must reconnect the account: connect with new credentials, or the OAuth flow`,
        );
      case "disabled":
        throw new JobError(
          "connection_disabled",
          `${err.message}. Enable it (status 'active') or connect it again`,
        );
      default:
        throw new JobError("provider_unavailable", `${err.message}; try again later`);
    }
  }
}

/**
 * The connection's facts a caller may see: its config without the base URLs Tether was given,
 * the API base URL its calls go to, and the API version Tether's own calls use. Config holds no
 * secret (credentials live in tether.credentials, encrypted); a base URL never holds user info
 * (providers/common.ts `baseUrl`).
 */
export function publicConfig(
  adapter: ProviderAdapter,
  config: Record<string, unknown>,
): Record<string, unknown> {
  const { auth_base_url: _auth, api_base_url: _api, ...facts } = config;
  const version = adapter.proxy.apiVersion?.(config);
  return {
    ...facts,
    api_base_url: baseUrls(adapter.facts, config).api,
    ...(version === undefined ? {} : { api_version: version }),
  };
}

export const TokensInput = z.strictObject({
  connection_id: z.uuid("expected the connection's id (a UUID)"),
});
export type TokensInput = z.output<typeof TokensInput>;

export interface TokenAnswer {
  provider: string;
  access_token: string;
  /** How to send it (ProviderProxy.tokenType): bearer, token, or the header that carries it. */
  token_type: string;
  /** ISO 8601; null when the token does not expire. */
  expires_at: string | null;
  config: Record<string, unknown>;
}

export async function runTokens(deps: Deps, input: TokensInput): Promise<TokenAnswer> {
  const { token, connection } = await openConnection(deps, input.connection_id);
  const adapter = adapterFor(connection.provider);
  return {
    provider: connection.provider,
    access_token: token,
    token_type: adapter.proxy.tokenType,
    expires_at: connection.token_expires_at?.toISOString() ?? null,
    config: publicConfig(adapter, connection.config),
  };
}

export const tokens: Job<TokensInput, TokenAnswer> = {
  name: "tokens",
  input: TokensInput,
  run: runTokens,
  secretResult: true,
};
