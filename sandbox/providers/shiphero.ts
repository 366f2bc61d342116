/**
 * ShipHero (PROVIDERS.md "ShipHero"), played under `<url>/shiphero` in place
 * of https://public-api.shiphero.com.
 */
import { AccountBook, type BaseAccount, describeAccount, type IssuedToken } from "../accounts.ts";
import { bearerToken, json, readJsonObject } from "../http.ts";
import type { ProviderSandbox } from "../provider.ts";
import { randomHex } from "../tokens.ts";

/** "expires_in (2419200 = 28 days)". */
const ACCESS_SECONDS = 2_419_200;
const SCOPE = "openid profile offline_access";

interface ShipHeroAccount extends BaseAccount {
  /** "the refresh token is static while the account is active". */
  readonly refresh: IssuedToken;
  /** Newest access token; older ones stay valid until they expire. */
  access: IssuedToken;
  readonly accountId: string;
}

export function createShipHero(): ProviderSandbox {
  const book = new AccountBook<ShipHeroAccount>((n) => `shiphero-${n}`);

  // Error body UNCONFIRMED; the issuer is Auth0, hence 403 invalid_grant.
  const invalidGrant = () =>
    json({ error: "invalid_grant", error_description: "Unknown or invalid refresh token." }, 403);
  const unauthorized = () =>
    json({ code: 401, Status: "Unauthorized", message: "Invalid or expired access token." }, 401);

  function refresh(refreshToken: string | undefined, now: number): Response {
    const hit = book.live(refreshToken, "refresh", now);
    if (!hit) return invalidGrant();
    const access = book.issue(hit.account.externalId, "access", "sb_sh_at_", now, ACCESS_SECONDS);
    hit.account.access = access;
    // "Response has exactly access_token, expires_in, scope, token_type — no refresh_token".
    return json({
      access_token: access.value,
      expires_in: ACCESS_SECONDS,
      scope: SCOPE,
      token_type: "Bearer",
    });
  }

  return {
    name: "shiphero",
    accounts: book,
    invalidGrant,
    unauthorized,

    // "POST https://public-api.shiphero.com/auth/refresh, JSON body {"refresh_token": "..."}".
    token: {
      path: "/auth/refresh",
      async read(req) {
        const body = await readJsonObject(req);
        if (!body) {
          return json({
            error: "invalid_request",
            error_description: "Body must be a JSON object.",
          }, 400);
        }
        const refreshToken = typeof body.refresh_token === "string"
          ? body.refresh_token
          : undefined;
        return { refreshToken, complete: (now) => refresh(refreshToken, now) };
      },
    },

    api: [{
      // "POST https://public-api.shiphero.com/graphql, header Authorization: Bearer".
      method: "POST",
      pattern: new URLPattern({ pathname: "/graphql" }),
      handle(req, _params, now) {
        const hit = book.live(bearerToken(req), "access", now);
        if (!hit) return unauthorized();
        // Every response reports request_id and complexity.
        return json({
          data: {
            account: {
              request_id: randomHex(12),
              complexity: 1,
              data: {
                id: hit.account.accountId,
                email: `ops+${hit.account.externalId}@sandbox.test`,
              },
            },
          },
        });
      },
    }],

    createAccount(input, now) {
      const externalId = book.claimId(input.externalId);
      if (externalId === undefined) return undefined;
      const account = book.add({
        externalId,
        revoked: false,
        refresh: book.issue(externalId, "refresh", "sb_sh_rt_", now, null),
        access: book.issue(externalId, "access", "sb_sh_at_", now, ACCESS_SECONDS),
        accountId: btoa(`Account:${randomHex(4)}`),
      });
      return {
        external_id: externalId,
        credentials: { refresh_token: account.refresh.value, access_token: account.access.value },
        config: {},
      };
    },

    inspect(externalId) {
      const a = book.get(externalId);
      return a && describeAccount(a, a.refresh, a.access);
    },
  };
}
