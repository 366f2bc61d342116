/**
 * Maystro Delivery (PROVIDERS.md "Maystro Delivery"), played under
 * `<url>/maystro` in place of https://backend.maystro-delivery.com.
 * "Auth: Authorization: Token <api_token>, a static key from the dashboard; no refresh."
 */
import { AccountBook, type BaseAccount, describeAccount, type IssuedToken } from "../accounts.ts";
import { authorization, json } from "../http.ts";
import type { ProviderSandbox } from "../provider.ts";

interface MaystroAccount extends BaseAccount {
  readonly apiToken: IssuedToken;
}

export function createMaystro(): ProviderSandbox {
  const book = new AccountBook<MaystroAccount>((n) => `maystro-${n}`);

  // Django REST Framework's TokenAuthentication answers.
  const unauthorized = (detail = "Invalid token.") =>
    json({ detail }, 401, { "www-authenticate": "Token" });

  return {
    name: "maystro",
    accounts: book,
    token: undefined,
    // No token endpoint: an invalid_grant fault can only hit the API, as a 401.
    invalidGrant: () => unauthorized(),
    unauthorized: () => unauthorized(),

    api: [{
      // "GET /api/stores/orders/?page=N → {"list":{"count", "next", "results":[…]}}".
      method: "GET",
      pattern: new URLPattern({ pathname: "/api/stores/orders{/}?" }),
      handle(req, _params, now) {
        const token = authorization(req, "Token");
        if (token === undefined) {
          return unauthorized("Authentication credentials were not provided.");
        }
        if (!book.live(token, "access", now)) return unauthorized();
        return json({ list: { count: 0, next: null, results: [] } });
      },
    }],

    createAccount(input, now) {
      const externalId = book.claimId(input.externalId);
      if (externalId === undefined) return undefined;
      const account = book.add({
        externalId,
        revoked: false,
        apiToken: book.issue(externalId, "access", "sb_maystro_", now, null),
      });
      return {
        external_id: externalId,
        credentials: { api_token: account.apiToken.value },
        config: {},
      };
    },

    inspect(externalId) {
      const a = book.get(externalId);
      return a && describeAccount(a, null, a.apiToken);
    },
  };
}
