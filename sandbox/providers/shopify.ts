/**
 * Shopify Admin API (PROVIDERS.md "Shopify Admin API"), played under
 * `<url>/shopify` in place of https://{shop}.myshopify.com. The host that
 * carried the request is replaced, so the shop is identified from the token.
 */
import {
  AccountBook,
  type BaseAccount,
  describeAccount,
  type IssuedToken,
  killNow,
} from "../accounts.ts";
import { FORM, json, mediaType, stringFields } from "../http.ts";
import type { AppCredentials, ProviderSandbox, ShopifyTokenKind } from "../provider.ts";

/** Expiring offline tokens: "access token 3600 s, refresh token 90 days". */
const ACCESS_SECONDS = 3600;
const REFRESH_SECONDS = 7_776_000;
const SCOPE = "read_orders,read_customers";

interface ShopifyAccount extends BaseAccount {
  readonly kind: ShopifyTokenKind;
  readonly shop: string;
  /** The one live access token ("only one expiring token is live per app and shop"). */
  access: IssuedToken;
  /** null for legacy offline tokens, which have no refresh token. */
  refresh: IssuedToken | null;
}

export function createShopify(app: AppCredentials): ProviderSandbox {
  const book = new AccountBook<ShopifyAccount>((n) => `sandbox-shop-${n}`);

  // "Bad refresh token: 400 {"error":"invalid_grant",...}".
  const invalidGrant = () =>
    json({
      error: "invalid_grant",
      error_description: "The refresh token is invalid, expired, revoked or was already used.",
    }, 400);
  const unauthorized = () =>
    json(
      { errors: "[API] Invalid API key or access token (unrecognized login or wrong password)" },
      401,
    );

  function refresh(fields: Map<string, string>, now: number): Response {
    if (fields.get("grant_type") !== "refresh_token") {
      return json({
        error: "unsupported_grant_type",
        error_description: "grant_type must be refresh_token.",
      }, 400);
    }
    if (
      fields.get("client_id") !== app.clientId || fields.get("client_secret") !== app.clientSecret
    ) {
      return json({
        error: "invalid_client",
        error_description:
          "Client authentication failed: unknown client_id or wrong client_secret.",
      }, 401);
    }
    const hit = book.live(fields.get("refresh_token"), "refresh", now);
    // Legacy offline tokens cannot be refreshed.
    if (!hit || hit.account.kind !== "expiring") return invalidGrant();
    const account = hit.account;
    // "rotated on every refresh": the old refresh AND old access token die at once.
    killNow(account.access);
    if (account.refresh) killNow(account.refresh);
    account.access = book.issue(account.externalId, "access", "shpat_", now, ACCESS_SECONDS);
    account.refresh = book.issue(account.externalId, "refresh", "shprt_", now, REFRESH_SECONDS);
    return json({
      access_token: account.access.value,
      scope: SCOPE,
      expires_in: ACCESS_SECONDS,
      refresh_token: account.refresh.value,
      refresh_token_expires_in: REFRESH_SECONDS,
    });
  }

  return {
    name: "shopify",
    accounts: book,
    invalidGrant,
    unauthorized,

    // "POST https://{shop}.myshopify.com/admin/oauth/access_token, JSON {client_id, client_secret,
    // refresh_token, grant_type}". Form bodies are accepted too, as on Shopify's OAuth endpoint.
    token: {
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
        return { refreshToken: body.get("refresh_token"), complete: (now) => refresh(body, now) };
      },
    },

    api: [{
      // Header "X-Shopify-Access-Token"; GraphQL is the current Admin API.
      method: "POST",
      pattern: new URLPattern({ pathname: "/admin/api/:version/graphql.json" }),
      handle(req, _params, now) {
        const hit = book.live(
          req.headers.get("x-shopify-access-token") ?? undefined,
          "access",
          now,
        );
        if (!hit) return unauthorized();
        return json({
          data: {
            shop: { name: `Sandbox ${hit.account.externalId}`, myshopifyDomain: hit.account.shop },
          },
          // "every response carries extensions.cost{...}"; restore 100 points/s.
          extensions: {
            cost: {
              requestedQueryCost: 1,
              actualQueryCost: 1,
              throttleStatus: {
                maximumAvailable: 2000,
                currentlyAvailable: 1999,
                restoreRate: 100,
              },
            },
          },
        });
      },
    }],

    createAccount(input, now) {
      const externalId = book.claimId(input.externalId);
      if (externalId === undefined) return undefined;
      const kind = input.kind ?? "expiring";
      const shop = externalId.endsWith(".myshopify.com")
        ? externalId
        : `${externalId}.myshopify.com`;
      const account = book.add({
        externalId,
        revoked: false,
        kind,
        shop,
        // "legacy offline tokens never expire (until uninstall)".
        access: book.issue(
          externalId,
          "access",
          "shpat_",
          now,
          kind === "legacy" ? null : ACCESS_SECONDS,
        ),
        refresh: kind === "legacy"
          ? null
          : book.issue(externalId, "refresh", "shprt_", now, REFRESH_SECONDS),
      });
      const credentials: Record<string, string> = { access_token: account.access.value };
      if (account.refresh) credentials.refresh_token = account.refresh.value;
      return { external_id: externalId, credentials, config: { shop } };
    },

    inspect(externalId) {
      const a = book.get(externalId);
      return a && describeAccount(a, a.refresh, a.access);
    },
  };
}
