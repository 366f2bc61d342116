/**
 * QuickBooks Online (PROVIDERS.md "QuickBooks Online"), played under
 * `<url>/quickbooks` in place of both https://oauth.platform.intuit.com (token)
 * and https://quickbooks.api.intuit.com (API).
 */
import { AccountBook, type BaseAccount, describeAccount, type IssuedToken } from "../accounts.ts";
import { secondsUntil } from "../clock.ts";
import { basicCredentials, bearerToken, json, readForm } from "../http.ts";
import type { AppCredentials, ProviderSandbox } from "../provider.ts";

/** "expires_in (3600)". */
const ACCESS_SECONDS = 3600;
/** "x_refresh_token_expires_in (≈ 8726400 = 101 days, rolling)". */
const ROLLING_SECONDS = 8_726_400;
/** "the previous one stops working 24 h after a new one is issued". */
const GRACE_MS = 24 * 3600 * 1000;
/** "refresh tokens also have a hard maximum of 5 years". */
const HARD_YEARS = 5;

interface QuickBooksAccount extends BaseAccount {
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

export function createQuickBooks(app: AppCredentials): ProviderSandbox {
  const book = new AccountBook<QuickBooksAccount>((n) => `9341${String(n).padStart(12, "0")}`);

  // "Bad token: 400 {"error":"invalid_grant","error_description":"Token invalid"}".
  const invalidGrant = () =>
    json({ error: "invalid_grant", error_description: "Token invalid" }, 400);
  // Intuit's gateway answers a bad bearer token with a lower-case `fault`.
  const unauthorized = () =>
    json(
      {
        fault: {
          error: [{
            message: "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            detail: "Token expired or invalid",
            code: "3200",
          }],
          type: "AUTHENTICATION",
        },
        time: new Date().toISOString(),
      },
      401,
      { "www-authenticate": 'Bearer realm="Intuit", error="invalid_token"' },
    );

  function issueRefresh(account: { externalId: string; hardExpiresAt: number }, now: number) {
    const token = book.issue(account.externalId, "refresh", "sb_qb_rt_", now, ROLLING_SECONDS);
    token.expiresAt = Math.min(token.expiresAt!, account.hardExpiresAt);
    return token;
  }

  function refresh(form: URLSearchParams, req: Request, now: number): Response {
    const client = basicCredentials(req);
    if (!client || client.id !== app.clientId || client.secret !== app.clientSecret) {
      return json({ error: "invalid_client" }, 401);
    }
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
      account.refresh = issueRefresh(account, now);
    }
    // A predecessor still inside its grace gets a fresh access token and the CURRENT newest
    // refresh token (no further rotation), so a client that lost the rotated token recovers it
    // and two racing refreshes end up holding the same refresh token.
    account.access = book.issue(account.externalId, "access", "sb_qb_at_", now, ACCESS_SECONDS);
    const body: Record<string, unknown> = {
      token_type: "bearer",
      expires_in: ACCESS_SECONDS,
      refresh_token: account.refresh.value,
      x_refresh_token_expires_in: secondsUntil(account.refresh.expiresAt!, now),
      access_token: account.access.value,
    };
    // "x_refresh_token_hard_expires_in when the request sends x-include-refresh-token-hard-expires-in: true".
    if (req.headers.get("x-include-refresh-token-hard-expires-in")?.toLowerCase() === "true") {
      body.x_refresh_token_hard_expires_in = secondsUntil(account.hardExpiresAt, now);
    }
    return json(body);
  }

  return {
    name: "quickbooks",
    accounts: book,
    invalidGrant,
    unauthorized,

    // "POST /oauth2/v1/tokens/bearer, Authorization: Basic base64(client_id:client_secret),
    // form body grant_type=refresh_token&refresh_token=…".
    token: {
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
    },

    api: [{
      method: "GET",
      pattern: new URLPattern({ pathname: "/v3/company/:realm/companyinfo/:id" }),
      handle(req, params, now) {
        const hit = book.live(bearerToken(req), "access", now);
        if (!hit) return unauthorized();
        const realmId = hit.account.realmId;
        if (params.realm !== realmId) {
          // A token is good for its own realm only.
          return json({
            Fault: {
              Error: [{
                Message: "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                Detail: "The token is not authorized for this company.",
                code: "003100",
              }],
              type: "SecurityFault",
            },
            time: new Date(now).toISOString(),
          }, 403);
        }
        return json({
          CompanyInfo: {
            CompanyName: `Sandbox Company ${realmId}`,
            LegalName: `Sandbox Company ${realmId} LLC`,
            Country: "US",
            domain: "QBO",
            sparse: false,
            Id: "1",
            SyncToken: "0",
          },
          time: new Date(now).toISOString(),
        });
      },
    }],

    createAccount(input, now) {
      const externalId = book.claimId(input.externalId);
      if (externalId === undefined) return undefined;
      const hardExpiresAt = addYears(now, HARD_YEARS);
      const account = book.add({
        externalId,
        revoked: false,
        realmId: externalId,
        hardExpiresAt,
        refresh: issueRefresh({ externalId, hardExpiresAt }, now),
        access: book.issue(externalId, "access", "sb_qb_at_", now, ACCESS_SECONDS),
      });
      return {
        external_id: externalId,
        credentials: { refresh_token: account.refresh.value, access_token: account.access.value },
        config: { realm_id: account.realmId },
      };
    },

    inspect(externalId) {
      const a = book.get(externalId);
      return a && describeAccount(a, a.refresh, a.access);
    },
  };
}
