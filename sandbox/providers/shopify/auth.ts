/**
 * Shopify's token endpoint and its answers: "POST https://{shop}.myshopify.com/admin/oauth/
 * access_token" with the app's client id and secret, for a refresh (`grant_type=refresh_token`)
 * or for the code of the authorize redirect. Expiring offline tokens rotate on every refresh;
 * legacy offline tokens never expire and cannot be refreshed.
 */
import { type AccountBook, type BaseAccount, type IssuedToken, killNow } from "../../accounts.ts";
import { FORM, json, mediaType, stringFields } from "../../http.ts";
import type { AppCredentials, ShopifyTokenKind, TokenEndpoint } from "../../provider.ts";
import type { AuthorizationCodes } from "../oauth_codes.ts";

/** Expiring offline tokens: "access token 3600 s, refresh token 90 days". */
const ACCESS_SECONDS = 3600;
const REFRESH_SECONDS = 7_776_000;
/** What a shop grants unless the account says otherwise: everything Tether asks for. */
export const DEFAULT_SCOPES = "read_orders,read_all_orders,read_customers";

export interface ShopifyAccount extends BaseAccount {
  readonly kind: ShopifyTokenKind;
  readonly shop: string;
  /** The scopes granted, comma-separated: what the token endpoint reports as `scope`. */
  readonly scopes: string;
  /**
   * Approved for protected customer data: without it the customers' names, emails and phones are
   * null with an ACCESS_DENIED error each (shopify.dev docs/apps/launch/protected-customer-data).
   */
  readonly protectedCustomerData: boolean;
  /** The one live access token ("only one expiring token is live per app and shop"). */
  access: IssuedToken;
  /** null for legacy offline tokens, which have no refresh token. */
  refresh: IssuedToken | null;
}

/** An expiring account's tokens, issued together. */
function issueExpiring(book: AccountBook<ShopifyAccount>, externalId: string, now: number) {
  return {
    access: book.issue(externalId, "access", "shpat_", now, ACCESS_SECONDS),
    refresh: book.issue(externalId, "refresh", "shprt_", now, REFRESH_SECONDS),
  };
}

/** A new account's tokens: "legacy offline tokens never expire (until uninstall)" and come alone. */
export function issueTokens(
  book: AccountBook<ShopifyAccount>,
  externalId: string,
  kind: ShopifyTokenKind,
  now: number,
): Pick<ShopifyAccount, "access" | "refresh"> {
  if (kind === "expiring") return issueExpiring(book, externalId, now);
  return { access: book.issue(externalId, "access", "shpat_", now, null), refresh: null };
}

// "Bad refresh token: 400 {"error":"invalid_grant",...}".
export const invalidGrant = () =>
  json({
    error: "invalid_grant",
    error_description: "The refresh token is invalid, expired, revoked or was already used.",
  }, 400);

export const unauthorized = () =>
  json(
    { errors: "[API] Invalid API key or access token (unrecognized login or wrong password)" },
    401,
  );

export function shopifyTokenEndpoint(
  app: AppCredentials,
  book: AccountBook<ShopifyAccount>,
  codes: AuthorizationCodes,
): TokenEndpoint {
  /** Both grants authenticate the app first (the refresh only once its grant type is right). */
  function unknownClient(fields: Map<string, string>): Response | undefined {
    if (
      fields.get("client_id") === app.clientId && fields.get("client_secret") === app.clientSecret
    ) return undefined;
    return json({
      error: "invalid_client",
      error_description: "Client authentication failed: unknown client_id or wrong client_secret.",
    }, 401);
  }

  /** "rotated on every refresh": the old refresh AND old access token die at once. */
  function rotate(account: ShopifyAccount, now: number): Response {
    killNow(account.access);
    if (account.refresh) killNow(account.refresh);
    const { access, refresh } = issueExpiring(book, account.externalId, now);
    account.access = access;
    account.refresh = refresh;
    return json({
      access_token: access.value,
      scope: account.scopes,
      expires_in: ACCESS_SECONDS,
      refresh_token: refresh.value,
      refresh_token_expires_in: REFRESH_SECONDS,
    });
  }

  function refresh(fields: Map<string, string>, now: number): Response {
    if (fields.get("grant_type") !== "refresh_token") {
      return json({
        error: "unsupported_grant_type",
        error_description: "grant_type must be refresh_token.",
      }, 400);
    }
    const refused = unknownClient(fields);
    if (refused) return refused;
    const hit = book.live(fields.get("refresh_token"), "refresh", now);
    // Legacy offline tokens cannot be refreshed.
    if (!hit || hit.account.kind !== "expiring") return invalidGrant();
    return rotate(hit.account, now);
  }

  // "POST https://{shop}/admin/oauth/access_token {client_id, client_secret, code}": the code from
  // the authorize redirect, once. An expiring account gets fresh tokens (the old ones die: one
  // live token per app and shop) with their lifetimes; a legacy one its permanent token.
  function exchange(fields: Map<string, string>, now: number): Response {
    const refused = unknownClient(fields);
    if (refused) return refused;
    const externalId = codes.redeem(fields.get("code"), fields.get("client_id"), null, now);
    const account = externalId === undefined ? undefined : book.get(externalId);
    if (!account || account.revoked) {
      return json({
        error: "invalid_grant",
        error_description: "The authorization code was not found or was already used.",
      }, 400);
    }
    if (account.kind === "legacy") {
      return json({ access_token: account.access.value, scope: account.scopes });
    }
    return rotate(account, now);
  }

  // "POST https://{shop}.myshopify.com/admin/oauth/access_token, JSON {client_id, client_secret,
  // refresh_token, grant_type}". Form bodies are accepted too, as on Shopify's OAuth endpoint.
  return {
    path: "/admin/oauth/access_token",
    async read(req) {
      const type = mediaType(req);
      let fields: Map<string, string> | undefined;
      try {
        if (type === "application/json") {
          const body: unknown = JSON.parse(await req.text());
          if (body !== null && typeof body === "object" && !Array.isArray(body)) {
            fields = stringFields(body as Record<string, unknown>);
          }
        } else if (type === FORM) {
          fields = new Map(new URLSearchParams(await req.text()));
        }
      } catch {
        fields = undefined;
      }
      if (!fields) {
        return json({
          error: "invalid_request",
          error_description: "Body must be a JSON object.",
        }, 400);
      }
      const body = fields;
      if (body.has("code") && !body.has("grant_type")) {
        return { refreshToken: undefined, complete: (now) => exchange(body, now) };
      }
      return { refreshToken: body.get("refresh_token"), complete: (now) => refresh(body, now) };
    },
  };
}
