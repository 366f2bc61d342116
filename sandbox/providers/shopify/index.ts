/**
 * Shopify Admin API, played under `<url>/shopify` in place of https://{shop}.myshopify.com
 * (https://shopify.dev/docs/api/admin-graphql). The host that carried the request is replaced,
 * so the shop is identified from the token.
 *
 * The GraphQL endpoint (graphql.ts) serves `shop`, `orders`, `customers` and `events` (customer
 * deletions) from the account's dataset, priced in query cost against the shop's bucket in
 * `world.limits`. The modules beside this one: auth.ts (tokens), render.ts (nodes, webhook bodies,
 * truth), schema.ts, connections.ts (keyset paging), search.ts (the search syntax).
 */
import { AccountBook, describeAccount } from "../../accounts.ts";
import type { AppCredentials, ProviderSandbox, SandboxWorld } from "../../provider.ts";
import { base64, hex, hmacSha256 } from "../../webhooks.ts";
import { defineSandboxProvider, perChange } from "../define.ts";
import { AuthorizationCodes } from "../oauth_codes.ts";
import {
  DEFAULT_SCOPES,
  invalidGrant,
  issueTokens,
  type ShopifyAccount,
  shopifyTokenEndpoint,
  unauthorized,
} from "./auth.ts";
import { serveGraphql } from "./graphql.ts";
import { truth, webhookOf } from "./render.ts";

export function createShopify(app: AppCredentials, world: SandboxWorld): ProviderSandbox {
  const book = new AccountBook<ShopifyAccount>((n) => `sandbox-shop-${n}`);
  const codes = new AuthorizationCodes();

  return defineSandboxProvider({
    name: "shopify",
    world,
    book,
    invalidGrant,
    unauthorized,
    token: shopifyTokenEndpoint(app, book, codes),

    // "GET https://{shop}/admin/oauth/authorize?client_id&scope&redirect_uri&state": back to
    // redirect_uri with code, hmac, host, shop, state, timestamp, signed as Shopify signs them.
    authorize: {
      pathname: "/admin/oauth/authorize",
      clientId: app.clientId,
      codes,
      // Shopify signs its callback: HMAC-SHA256 hex of the sorted query, with the app secret.
      params: async (account, base, now) => {
        const params: Record<string, string> = {
          ...base,
          host: btoa(`admin.shopify.com/store/${account.shop.replace(/\.myshopify\.com$/, "")}`),
          shop: account.shop,
          timestamp: String(Math.floor(now / 1000)),
        };
        const sorted = Object.entries(params).sort(([a], [b]) => (a < b ? -1 : 1));
        const message = new URLSearchParams(sorted).toString();
        return { ...params, hmac: hex(await hmacSha256(app.clientSecret, message)) };
      },
    },

    api: [{
      // Header "X-Shopify-Access-Token"; GraphQL is the current Admin API.
      method: "POST",
      pattern: new URLPattern({ pathname: "/admin/api/:version/graphql.json" }),
      async handle(req, _params, now) {
        const hit = book.live(
          req.headers.get("x-shopify-access-token") ?? undefined,
          "access",
          now,
        );
        if (!hit) return unauthorized();
        const shop = hit.account.externalId;
        return await serveGraphql(world, hit.account, req, now, () => book.revoke(shop));
      },
    }],

    streams: ["orders", "customers"],
    customersCanBeDeleted: true,
    truth,

    webhooks: perChange(async ({ account, change }, opts) => {
      const rendered = webhookOf(change, world.data.get("shopify", account.externalId));
      const body = JSON.stringify(rendered.body);
      const id = crypto.randomUUID();
      // Classic webhooks carry X-Shopify-*; Shopify Events deliveries the same in lower-case
      // shopify-* (@shopify/shopify-api `ShopifyHeader`, `ShopifyEventsHeader`).
      const prefix = opts.headerStyle === "events" ? "shopify-" : "x-shopify-";
      return {
        id,
        body,
        headers: {
          "content-type": "application/json",
          [`${prefix}topic`]: rendered.topic,
          [`${prefix}hmac-sha256`]: base64(
            await hmacSha256(opts.secret ?? app.clientSecret, body),
          ),
          [`${prefix}shop-domain`]: account.shop,
          [`${prefix}webhook-id`]: id,
          [`${prefix}event-id`]: crypto.randomUUID(),
          [`${prefix}triggered-at`]: new Date(change.at).toISOString(),
          [`${prefix}api-version`]: "2026-10",
        },
      };
    }),

    open: (externalId, now, input) => {
      const kind = input.kind ?? "expiring";
      return {
        kind,
        shop: externalId.endsWith(".myshopify.com") ? externalId : `${externalId}.myshopify.com`,
        scopes: input.scopes ?? DEFAULT_SCOPES,
        protectedCustomerData: input.protectedCustomerData ?? false,
        ...issueTokens(book, externalId, kind, now),
      };
    },
    created: (account) => {
      const credentials: Record<string, string> = { access_token: account.access.value };
      if (account.refresh) credentials.refresh_token = account.refresh.value;
      return { credentials, config: { shop: account.shop } };
    },
    inspect: (account) => describeAccount(account, account.refresh, account.access),
  });
}
