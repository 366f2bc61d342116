/**
 * QuickBooks Online, played under `<url>/quickbooks` in place of both
 * https://oauth.platform.intuit.com (token) and https://quickbooks.api.intuit.com (API)
 * (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/invoice).
 *
 * Data: `GET /v3/company/{realmId}/query?query=SELECT * FROM Invoice WHERE … ORDERBY …
 * STARTPOSITION n MAXRESULTS m`, in the query language of query_language.ts. Orders are Invoices
 * (variant "a") and SalesReceipts (variant "b"); every API request counts against the realm's
 * limit (sandbox/limits.ts: 500 requests in any minute, at most 10 in flight; the client's rule
 * is "429 → wait 60 s"). Intuit's 429 carries a ThrottleExceeded fault and no Retry-After header. The modules beside this one: auth.ts (tokens),
 * render.ts (entities and truth), notifications.ts (webhooks).
 */
import { AccountBook, describeAccount } from "../../accounts.ts";
import { bearerToken, json } from "../../http.ts";
import type { AppCredentials, ProviderSandbox, SandboxWorld } from "../../provider.ts";
import { defineSandboxProvider } from "../define.ts";
import { AuthorizationCodes } from "../oauth_codes.ts";
import {
  invalidGrant,
  newGrant,
  type QuickBooksAccount,
  quickBooksRevokeEndpoint,
  quickBooksTokenEndpoint,
} from "./auth.ts";
import { changeDataCapture } from "./cdc.ts";
import { notifications } from "./notifications.ts";
import { parseQuery, QueryError, queryFault, runQuery } from "./query_language.ts";
import { truth } from "./render.ts";

export function createQuickBooks(
  app: AppCredentials,
  world: SandboxWorld,
  verifierToken = "sandbox-quickbooks-verifier",
): ProviderSandbox {
  const book = new AccountBook<QuickBooksAccount>((n) => `9341${String(n).padStart(12, "0")}`);
  const codes = new AuthorizationCodes();

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

  /**
   * The account behind a bearer token, charged one request; or the 401 (bad token), 403 (token of
   * another realm) or 429 (realm over its limit) to answer instead.
   */
  function authorize(
    req: Request,
    params: Record<string, string | undefined>,
    now: number,
  ): QuickBooksAccount | Response {
    const hit = book.live(bearerToken(req), "access", now);
    if (!hit) return unauthorized();
    if (params.realm !== hit.account.realmId) {
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
    if (!world.limits.take("quickbooks", hit.account.externalId, 1, now).ok) return throttled(now);
    return hit.account;
  }

  /** Intuit's throttle answer; it names no wait ("429 → wait 60 s" is the client's rule). */
  function throttled(now: number): Response {
    return json({
      Fault: {
        Error: [{
          Message: "message=ThrottleExceeded; errorCode=003001; statusCode=429",
          Detail: "The request limit was reached.  Try again later",
          code: "3001",
        }],
        type: "SERVICE",
      },
      time: new Date(now).toISOString(),
    }, 429);
  }

  return defineSandboxProvider({
    name: "quickbooks",
    world,
    book,
    tooManyInFlight: throttled,
    invalidGrant,
    unauthorized,
    token: quickBooksTokenEndpoint(app, book, codes),

    // "GET https://appcenter.intuit.com/connect/oauth2?client_id&response_type=code&scope
    // &redirect_uri&state": back to redirect_uri with code, state and realmId.
    authorize: {
      pathname: "/connect/oauth2",
      clientId: app.clientId,
      codes,
      params: (account, base) => ({ ...base, realmId: account.realmId }),
    },

    api: [
      quickBooksRevokeEndpoint(app, book),
      {
        method: "GET",
        pattern: new URLPattern({ pathname: "/v3/company/:realm/companyinfo/:id" }),
        handle(req, params, now) {
          const account = authorize(req, params, now);
          if (account instanceof Response) return account;
          const realmId = account.realmId;
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
      },
      {
        method: "GET",
        pattern: new URLPattern({ pathname: "/v3/company/:realm/query" }),
        handle(req, params, now) {
          const account = authorize(req, params, now);
          if (account instanceof Response) return account;
          const text = new URL(req.url).searchParams.get("query") ?? "";
          try {
            const set = world.data.get("quickbooks", account.externalId);
            return json(runQuery(parseQuery(text), set, now));
          } catch (error) {
            if (error instanceof QueryError) return queryFault(error, now);
            throw error;
          }
        },
      },

      {
        method: "GET",
        pattern: new URLPattern({ pathname: "/v3/company/:realm/cdc" }),
        handle(req, params, now) {
          const account = authorize(req, params, now);
          if (account instanceof Response) return account;
          const set = world.data.get("quickbooks", account.externalId);
          return changeDataCapture(new URL(req.url).searchParams, set, now);
        },
      },
    ],

    streams: ["orders", "customers"],
    ordersCanBeDeleted: true,
    truth,
    webhooks: (deliveries, opts) => notifications(deliveries, opts, verifierToken),

    open: (externalId, now) => ({ realmId: externalId, ...newGrant(book, externalId, now) }),
    created: (account) => ({
      credentials: { refresh_token: account.refresh.value, access_token: account.access.value },
      config: { realm_id: account.realmId },
    }),
    inspect: (account) => describeAccount(account, account.refresh, account.access),
  });
}
