/**
 * Lightspeed Retail X-Series (PROVIDERS.md "Lightspeed Retail"), played under
 * `<url>/lightspeed` in place of https://{domain_prefix}.retail.lightspeed.app.
 */
import {
  AccountBook,
  type BaseAccount,
  describeAccount,
  type IssuedToken,
  killNow,
} from "../accounts.ts";
import { bearerToken, FORM, json, mediaType } from "../http.ts";
import type { AppCredentials, ProviderSandbox } from "../provider.ts";

export interface LightspeedConfig {
  /** Access-token lifetime is UNCONFIRMED (604800, 86400 or 1800 s); default 86400. */
  accessTokenSeconds: number;
  /** "Refresh tokens die after a period of inactivity (30 days in practice)". */
  refreshIdleSeconds: number;
}

export const DEFAULT_LIGHTSPEED_CONFIG: Readonly<LightspeedConfig> = {
  accessTokenSeconds: 86_400,
  refreshIdleSeconds: 30 * 86_400,
};

const SCOPE = "sales:read customers:read products:read inventory:read outlets:read";
const CREDENTIAL_FIELDS = ["refresh_token", "client_id", "client_secret"];

interface LightspeedAccount extends BaseAccount {
  readonly domainPrefix: string;
  readonly outletId: string;
  /** The one live refresh token; the previous one was revoked when this was issued. */
  refresh: IssuedToken;
  /** Newest access token; older ones stay valid until they expire. */
  access: IssuedToken;
}

/** `config` is read on every request, so changes apply at once (idle is judged at use time). */
export function createLightspeed(
  app: AppCredentials,
  config: () => Readonly<LightspeedConfig>,
): ProviderSandbox {
  const book = new AccountBook<LightspeedAccount>((n) => `sandboxstore${n}`);

  const invalidRequest = (description: string) =>
    json({ error: "invalid_request", error_description: description }, 400);
  const invalidGrant = () =>
    json({
      error: "invalid_grant",
      error_description: "The refresh token is invalid, expired or revoked.",
    }, 400);
  const unauthorized = () =>
    json({
      error: "Unauthorized",
      error_description: "The access token is missing, invalid or expired.",
    }, 401);

  /** A refresh token unused for longer than the idle period is dead. */
  const idleDeadline = (token: IssuedToken) => token.issuedAt + config().refreshIdleSeconds * 1000;

  function refresh(form: URLSearchParams, now: number): Response {
    if (form.get("grant_type") !== "refresh_token") {
      return json({ error: "unsupported_grant_type" }, 400);
    }
    if (form.get("client_id") !== app.clientId || form.get("client_secret") !== app.clientSecret) {
      return json(
        { error: "invalid_client", error_description: "Unknown client or bad secret." },
        401,
      );
    }
    const hit = book.live(form.get("refresh_token") ?? undefined, "refresh", now);
    if (!hit || now >= idleDeadline(hit.token)) return invalidGrant();
    const account = hit.account;
    const { accessTokenSeconds } = config();
    // "Refresh tokens rotate: the old one is revoked as soon as a new one is issued".
    killNow(account.refresh);
    account.refresh = book.issue(account.externalId, "refresh", "sb_ls_rt_", now, null);
    account.access = book.issue(account.externalId, "access", "sb_ls_at_", now, accessTokenSeconds);
    return json({
      access_token: account.access.value,
      token_type: "Bearer",
      // "expires (unix time)", on the sandbox clock.
      expires: Math.floor(account.access.expiresAt! / 1000),
      expires_in: accessTokenSeconds,
      refresh_token: account.refresh.value,
      domain_prefix: account.domainPrefix,
      scope: SCOPE,
    });
  }

  return {
    name: "lightspeed",
    accounts: book,
    invalidGrant,
    unauthorized,

    // "POST /api/1.0/token, form-encoded refresh_token, client_id, client_secret,
    // grant_type=refresh_token (in the body, not the URL)".
    token: {
      path: "/api/1.0/token",
      async read(req) {
        const query = new URL(req.url).searchParams;
        if (CREDENTIAL_FIELDS.some((k) => query.has(k))) {
          return invalidRequest("Credentials must be sent in the form body, not in the URL.");
        }
        if (mediaType(req) !== FORM) {
          return invalidRequest(`Content-Type must be ${FORM}.`);
        }
        const form = new URLSearchParams(await req.text());
        return {
          refreshToken: form.get("refresh_token") ?? undefined,
          complete: (now) => refresh(form, now),
        };
      },
    },

    api: [{
      method: "GET",
      pattern: new URLPattern({ pathname: "/api/2.0/outlets" }),
      handle(req, _params, now) {
        const hit = book.live(bearerToken(req), "access", now);
        if (!hit) return unauthorized();
        return json({
          data: [{
            id: hit.account.outletId,
            name: "Main Outlet",
            time_zone: "Pacific/Auckland",
            deleted_at: null,
          }],
        });
      },
    }],

    createAccount(input, now) {
      const externalId = book.claimId(input.externalId);
      if (externalId === undefined) return undefined;
      const account = book.add({
        externalId,
        revoked: false,
        domainPrefix: externalId,
        outletId: crypto.randomUUID(),
        refresh: book.issue(externalId, "refresh", "sb_ls_rt_", now, null),
        access: book.issue(externalId, "access", "sb_ls_at_", now, config().accessTokenSeconds),
      });
      return {
        external_id: externalId,
        credentials: { refresh_token: account.refresh.value, access_token: account.access.value },
        config: { domain_prefix: account.domainPrefix },
      };
    },

    inspect(externalId) {
      const a = book.get(externalId);
      if (!a) return undefined;
      return describeAccount(a, a.refresh, a.access, idleDeadline(a.refresh));
    },
  };
}
