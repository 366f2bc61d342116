/**
 * Intuit's OAuth 2.0 token endpoint, "POST /oauth2/v1/tokens/bearer" with the app's client id and
 * secret as Basic auth and a form body, for a refresh (`grant_type=refresh_token`) or for the code
 * of the authorize redirect (`grant_type=authorization_code`)
 * (https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0).
 * Refresh tokens roll: each refresh issues a new one, and the one presented keeps working 24 h.
 */
import type { AccountBook, BaseAccount, IssuedToken } from "../../accounts.ts";
import { secondsUntil } from "../../clock.ts";
import { basicCredentials, json, readForm, readJsonObject } from "../../http.ts";
import type { ApiEndpoint, AppCredentials, TokenEndpoint } from "../../provider.ts";
import type { AuthorizationCodes } from "../oauth_codes.ts";

/** "expires_in (3600)". */
const ACCESS_SECONDS = 3600;
/** "x_refresh_token_expires_in (≈ 8726400 = 101 days, rolling)". */
const ROLLING_SECONDS = 8_726_400;
/** "the previous one stops working 24 h after a new one is issued". */
const GRACE_MS = 24 * 3600 * 1000;
/** "refresh tokens also have a hard maximum of 5 years". */
const HARD_YEARS = 5;

export interface QuickBooksAccount extends BaseAccount {
  readonly realmId: string;
  /** Original grant + 5 years; no refresh token outlives it. */
  readonly hardExpiresAt: number;
  /** Newest refresh token; its predecessors keep working 24 h after their successor was issued. */
  refresh: IssuedToken;
  /** Newest access token; older ones stay valid until they expire. */
  access: IssuedToken;
}

function addYears(epochMs: number, years: number): number {
  const d = new Date(epochMs);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d.getTime();
}

// "Bad token: 400 {"error":"invalid_grant","error_description":"Token invalid"}".
export const invalidGrant = () =>
  json({ error: "invalid_grant", error_description: "Token invalid" }, 400);

/** A new refresh token of the account: rolling, but never past the grant's hard expiry. */
function issueRefresh(
  book: AccountBook<QuickBooksAccount>,
  account: { externalId: string; hardExpiresAt: number },
  now: number,
): IssuedToken {
  const token = book.issue(account.externalId, "refresh", "sb_qb_rt_", now, ROLLING_SECONDS);
  token.expiresAt = Math.min(token.expiresAt!, account.hardExpiresAt);
  return token;
}

function issueAccess(
  book: AccountBook<QuickBooksAccount>,
  externalId: string,
  now: number,
): IssuedToken {
  return book.issue(externalId, "access", "sb_qb_at_", now, ACCESS_SECONDS);
}

/** A new realm's grant and its first tokens; the 5-year hard expiry runs from now. */
export function newGrant(
  book: AccountBook<QuickBooksAccount>,
  externalId: string,
  now: number,
): Pick<QuickBooksAccount, "hardExpiresAt" | "refresh" | "access"> {
  const hardExpiresAt = addYears(now, HARD_YEARS);
  return {
    hardExpiresAt,
    refresh: issueRefresh(book, { externalId, hardExpiresAt }, now),
    access: issueAccess(book, externalId, now),
  };
}

export function quickBooksTokenEndpoint(
  app: AppCredentials,
  book: AccountBook<QuickBooksAccount>,
  codes: AuthorizationCodes,
): TokenEndpoint {
  /** The answer to both grants: a fresh access token and the account's newest refresh token. */
  function tokens(account: QuickBooksAccount, now: number): Record<string, unknown> {
    account.access = issueAccess(book, account.externalId, now);
    return {
      token_type: "bearer",
      expires_in: ACCESS_SECONDS,
      refresh_token: account.refresh.value,
      x_refresh_token_expires_in: secondsUntil(account.refresh.expiresAt!, now),
      access_token: account.access.value,
    };
  }

  // "POST /oauth2/v1/tokens/bearer, Basic auth, form grant_type=authorization_code&code
  // &redirect_uri": the code once, for a new refresh token (and access token) of the realm.
  function exchange(form: URLSearchParams, clientId: string, now: number): Response {
    const externalId = codes.redeem(
      form.get("code") ?? undefined,
      clientId,
      form.get("redirect_uri") ?? undefined,
      now,
    );
    const account = externalId === undefined ? undefined : book.get(externalId);
    if (!account || account.revoked) return invalidGrant();
    account.refresh = issueRefresh(book, account, now);
    return json(tokens(account, now));
  }

  function refresh(form: URLSearchParams, req: Request, now: number): Response {
    const client = basicCredentials(req);
    if (!client || client.id !== app.clientId || client.secret !== app.clientSecret) {
      return json({ error: "invalid_client" }, 401);
    }
    if (form.get("grant_type") === "authorization_code") return exchange(form, client.id, now);
    if (form.get("grant_type") !== "refresh_token") {
      return json({ error: "unsupported_grant_type" }, 400);
    }
    // Dead = past its rolling expiry, its hard expiry, or 24 h past its successor's issue.
    const hit = book.live(form.get("refresh_token") ?? undefined, "refresh", now);
    if (!hit) return invalidGrant();
    const account = hit.account;
    if (hit.token === account.refresh) {
      // "rotates on every refresh": the presented token gets 24 h of grace.
      hit.token.diesAt = now + GRACE_MS;
      account.refresh = issueRefresh(book, account, now);
    }
    // A predecessor still inside its grace gets a fresh access token and the CURRENT newest
    // refresh token (no further rotation), so a client that lost the rotated token recovers it
    // and two racing refreshes end up holding the same refresh token.
    const body = tokens(account, now);
    // "x_refresh_token_hard_expires_in when the request sends x-include-refresh-token-hard-expires-in: true".
    if (req.headers.get("x-include-refresh-token-hard-expires-in")?.toLowerCase() === "true") {
      body.x_refresh_token_hard_expires_in = secondsUntil(account.hardExpiresAt, now);
    }
    return json(body);
  }

  // "POST /oauth2/v1/tokens/bearer, Authorization: Basic base64(client_id:client_secret),
  // form body grant_type=refresh_token&refresh_token=…".
  return {
    path: "/oauth2/v1/tokens/bearer",
    async read(req) {
      const form = await readForm(req);
      if (!form) {
        return json({
          error: "invalid_request",
          error_description: "Content-Type must be application/x-www-form-urlencoded.",
        }, 400);
      }
      return {
        refreshToken: form.get("refresh_token") ?? undefined,
        complete: (now) => refresh(form, req, now),
      };
    },
  };
}

/**
 * Intuit's revocation endpoint, "POST https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
 * with the app's Basic auth and a JSON body `{"token": <access or refresh token>}` (intuit-oauth
 * 4.2.5, src/OAuthClient.js `revoke`; played here under the sandbox's QuickBooks prefix). Revoking
 * either token ends the grant: every token of the realm stops working. As RFC 7009 §2.2 says, a
 * token that is unknown or already invalid is answered 200 as well, with an empty body.
 */
export function quickBooksRevokeEndpoint(
  app: AppCredentials,
  book: AccountBook<QuickBooksAccount>,
): ApiEndpoint {
  return {
    method: "POST",
    pattern: new URLPattern({ pathname: "/v2/oauth2/tokens/revoke" }),
    async handle(req) {
      const client = basicCredentials(req);
      if (!client || client.id !== app.clientId || client.secret !== app.clientSecret) {
        return json({ error: "invalid_client" }, 401);
      }
      const body = await readJsonObject(req);
      if (!body || typeof body.token !== "string" || body.token === "") {
        return json({ error: "invalid_request", error_description: "token is required" }, 400);
      }
      const owner = book.ownerOf(body.token);
      if (owner !== undefined) book.revoke(owner);
      return new Response(null, { status: 200 });
    },
  };
}
