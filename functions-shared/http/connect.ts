// OAuth connect for Shopify, Lightspeed and QuickBooks, served by the `connect` function beside
// its JSON job:
//
//   GET /connect/<provider>/start?owner_id=<uuid>&name=<text>[&shop=<x>.myshopify.com]
//     Caller auth as every function (secret key or service_role JWT). Answers 302 to the
//     provider's authorize URL (also in the JSON body as `authorize_url`), with a `state` signed
//     for this provider and owner, valid 10 minutes. A backend calls it and sends the person's
//     browser to the URL.
//   GET /connect/<provider>/callback?code&state&…
//     Where the provider sends the person back (no caller auth: the signed state and, for
//     Shopify, the query's hmac are the proof). Verifies, spends the state's nonce once,
//     exchanges the code, stores the connection as `connect` does, and answers a small HTML page.
//     A bad, expired, replayed or foreign state is a 400 page in plain words; nothing is stored.
//
//   GET /connect/_key_ring
//     Caller auth. The key ring the functions hold: `{active_key_id, keys: [{id, fingerprint}]}`
//     (fingerprints, never keys), so `npm run tether -- rotate-key` can refuse to re-encrypt with
//     a key the functions could not decrypt.
//
// Every other request goes to the `connect` job (POST JSON).

import { spendNonce } from "../db/oauth_states.ts";
import type { Deps } from "../deps.ts";
import { connect, storeConnection } from "../jobs/connect.ts";
import { adapterContext } from "../jobs/tokens.ts";
import { signState, type StateClaims, StateRejected, verifyState } from "../oauth/state.ts";
import { OAuthFailure } from "../providers/oauth.ts";
import {
  adapterFor,
  isOAuthProvider,
  OAUTH_PROVIDERS,
  oauthOf,
  type OAuthProvider,
} from "../providers/registry.ts";
import { ProviderError, PROVIDERS } from "../providers/types.ts";
import { hasControlCharacter, NO_CONTROL_CHARACTERS } from "../validation.ts";
import { authenticated, createJobHandler, jsonError } from "./serve.ts";

const ROUTE = /^(?:\/functions\/v1)?\/connect\/([^/]+)\/(start|callback)\/?$/;
const KEY_RING_ROUTE = /^(?:\/functions\/v1)?\/connect\/_key_ring\/?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Routes `GET /connect/<provider>/start|callback` to OAuth, everything else to the job. */
export function createConnectHandler(deps: Deps): (req: Request) => Promise<Response> {
  const job = createJobHandler(connect, deps);
  const startRoute = authenticated(deps, (req) => {
    const [, provider = ""] = new URL(req.url).pathname.match(ROUTE) ?? [];
    return startOAuth(deps, provider, new URL(req.url).searchParams);
  });
  const keyRingRoute = authenticated(deps, () =>
    Promise.resolve(
      Response.json(
        { active_key_id: deps.vault.activeKeyId, keys: deps.vault.fingerprints },
        { headers: { "cache-control": "no-store" } },
      ),
    ));
  return async (req) => {
    const url = new URL(req.url);
    if (req.method === "GET" && KEY_RING_ROUTE.test(url.pathname)) return await keyRingRoute(req);
    const route = req.method === "GET" ? url.pathname.match(ROUTE) : null;
    if (!route) return await job(req);
    const [, provider = "", step] = route;
    if (step === "start") return await startRoute(req);
    return await callback(deps, provider, url.searchParams);
  };
}

// ---------------------------------------------------------------------------------------------
// start

function oauthSetup(deps: Deps, provider: OAuthProvider) {
  const app = deps.env.apps[provider];
  const { stateSecret, publicFunctionsUrl, baseUrls, scopes } = deps.env.oauth;
  const missing = [
    app
      ? undefined
      : `${provider.toUpperCase()}_CLIENT_ID / ${provider.toUpperCase()}_CLIENT_SECRET`,
    stateSecret ? undefined : "TETHER_OAUTH_STATE_SECRET",
    publicFunctionsUrl ? undefined : "TETHER_PUBLIC_FUNCTIONS_URL (or SUPABASE_URL)",
  ].filter((v): v is string => v !== undefined);
  if (!app || !stateSecret || !publicFunctionsUrl) return { missing };
  return {
    missing,
    app,
    stateSecret,
    redirectUri: `${publicFunctionsUrl}/connect/${provider}/callback`,
    baseUrl: baseUrls[provider],
    scopes: scopes[provider],
  };
}

/**
 * `GET /connect/<provider>/start` once the caller is authenticated: a 302 to the provider's
 * authorize URL (also in the body as `authorize_url`). The console calls it in-process for a
 * signed-in user, with `owner_id` set to that user.
 */
export async function startOAuth(
  deps: Deps,
  provider: string,
  query: URLSearchParams,
): Promise<Response> {
  if (!isOAuthProvider(provider)) {
    const known = (PROVIDERS as readonly string[]).includes(provider);
    return jsonError(
      "not_found",
      known
        ? `${provider} has no OAuth flow; register it with POST /connect`
        : `unknown provider "${provider}": OAuth is for ${OAUTH_PROVIDERS.join(", ")}`,
    );
  }
  const setup = oauthSetup(deps, provider);
  if (!setup.app) {
    return jsonError(
      "misconfigured",
      `OAuth is not configured: set ${setup.missing.join(", ")}`,
    );
  }
  const ownerId = query.get("owner_id") || null;
  if (ownerId !== null && !UUID.test(ownerId)) {
    return jsonError("invalid_query", "owner_id: expected a UUID");
  }
  const name = query.get("name")?.trim() || undefined;
  if (name !== undefined && name.length > 200) {
    return jsonError("invalid_query", "name: at most 200 characters");
  }
  if (name !== undefined && hasControlCharacter(name)) {
    return jsonError("invalid_query", `name: ${NO_CONTROL_CHARACTERS}`);
  }
  const oauth = oauthOf(provider);
  let account: string | undefined;
  if (oauth.accountAtStart) {
    const { param, pattern, form } = oauth.accountAtStart;
    account = query.get(param)?.trim().toLowerCase() || undefined;
    if (account === undefined || !pattern.test(account)) {
      return jsonError("invalid_query", `${param}: expected ${form}`);
    }
  }
  const { state } = await signState(setup.stateSecret, {
    provider,
    ownerId,
    ...(account === undefined ? {} : { account }),
    ...(name === undefined ? {} : { name }),
  }, deps.now());
  const location = oauth.authorizeUrl({
    app: setup.app,
    redirectUri: setup.redirectUri,
    state,
    baseUrl: setup.baseUrl,
    scopes: setup.scopes,
    ...(account === undefined ? {} : { account }),
  });
  return Response.json({ authorize_url: location }, {
    status: 302,
    headers: { location, "cache-control": "no-store" },
  });
}

// ---------------------------------------------------------------------------------------------
// callback

const START_AGAIN = "Start connecting again from the page that sent you here.";

const STATE_PAGES: Record<StateRejected["problem"], [string, string]> = {
  missing: ["This sign-in link is not valid", `It carries no state. ${START_AGAIN}`],
  invalid: ["This sign-in link is not valid", `Its state could not be verified. ${START_AGAIN}`],
  expired: ["This sign-in link has expired", `Links last 10 minutes. ${START_AGAIN}`],
  wrong_provider: [
    "This sign-in link is for another provider",
    `It was started for a different service than the one that answered. ${START_AGAIN}`,
  ],
};

async function callback(deps: Deps, provider: string, query: URLSearchParams): Promise<Response> {
  if (!isOAuthProvider(provider)) {
    return page(404, "Not found", "There is no OAuth sign-in for this provider.");
  }
  const setup = oauthSetup(deps, provider);
  if (!setup.app) {
    deps.log.error("oauth callback: not configured", { provider, missing: setup.missing });
    return page(
      500,
      "Tether is not configured",
      `OAuth is not configured on this Tether (missing: ${
        setup.missing.join(", ")
      }). Nothing was stored.`,
    );
  }
  const display = adapterFor(provider).facts.displayName;
  const error = query.get("error");
  if (error !== null) {
    const code = /^[a-z_]{1,60}$/.test(error) ? ` (${error})` : "";
    return page(
      400,
      "Access was not granted",
      `${display} did not grant access${code}. Nothing was stored. ${START_AGAIN}`,
    );
  }
  const oauth = oauthOf(provider);
  if (oauth.verifyCallback && !(await oauth.verifyCallback(query, setup.app, deps.now()))) {
    deps.log.warn("oauth callback: bad signature", { provider });
    return page(
      400,
      "This answer could not be verified",
      `Its ${display} signature is wrong. Nothing was stored. ${START_AGAIN}`,
    );
  }
  let state: StateClaims;
  try {
    state = await verifyState(setup.stateSecret, query.get("state"), provider, deps.now());
  } catch (err) {
    if (!(err instanceof StateRejected)) throw err;
    deps.log.warn("oauth callback: state rejected", { provider, problem: err.problem });
    const [title, text] = STATE_PAGES[err.problem];
    return page(400, title, text);
  }
  const code = query.get("code");
  if (code === null || code === "") {
    return page(400, "This sign-in link is not valid", `It carries no code. ${START_AGAIN}`);
  }
  let account;
  try {
    account = oauth.callbackAccount(query);
  } catch (err) {
    if (!(err instanceof OAuthFailure)) throw err;
    return page(
      400,
      "This sign-in link is not valid",
      `${capitalise(err.message)}. ${START_AGAIN}`,
    );
  }
  if (state.account !== undefined && account.externalId !== state.account) {
    return page(
      400,
      "This answer is for another account",
      `${display} answered for a different account than the one you started with. ${START_AGAIN}`,
    );
  }
  // Spend the nonce before anything else happens: a second callback with this state is refused.
  if (!(await spendNonce(deps.db, { ...state, provider }))) {
    deps.log.warn("oauth callback: state replayed", { provider });
    return page(400, "This sign-in link was already used", `Each link works once. ${START_AGAIN}`);
  }
  const started = deps.now();
  let grant;
  try {
    grant = await oauth.exchangeCode(adapterContext(deps), {
      app: setup.app,
      code,
      redirectUri: setup.redirectUri,
      account,
      baseUrl: setup.baseUrl,
    });
  } catch (err) {
    if (!(err instanceof ProviderError)) throw err;
    deps.log.warn("oauth callback: code exchange failed", { provider, error: err.message });
    if (err.retryable) {
      return page(
        502,
        `${display} is not answering`,
        `${display} could not finish the sign-in (${err.message}). Nothing was stored. ${START_AGAIN}`,
      );
    }
    return page(
      400,
      "The sign-in was refused",
      `${display} refused the sign-in code (${err.message}). Nothing was stored. ${START_AGAIN}`,
    );
  }
  const adapter = adapterFor(provider);
  const config = adapter.configSchema.safeParse({
    ...account.config,
    ...grant.accountConfig,
    ...(setup.baseUrl === undefined
      ? {}
      : { auth_base_url: setup.baseUrl, api_base_url: setup.baseUrl }),
  });
  const credentials = adapter.credentialsSchema.safeParse(grant.credentials);
  if (!config.success || !credentials.success) {
    deps.log.error("oauth callback: the grant does not fit the adapter's schemas", { provider });
    return page(
      500,
      "Could not store the connection",
      `${display} answered in an unexpected shape. Nothing was stored.`,
    );
  }
  const stored = await storeConnection(deps, {
    provider,
    external_id: account.externalId,
    name: state.name ?? account.externalId,
    owner_id: state.ownerId,
    config: config.data as Record<string, unknown>,
    credentials: credentials.data as Record<string, string>,
    grant,
    started,
    via: "oauth",
  });
  return page(
    200,
    `${display} is connected`,
    `The ${display} account “${stored.name}” is connected to Tether and stays in sync. You can close this window.`,
  );
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A small HTML page; the callback's URL (with the code) is never sent on as a referrer. */
function page(status: number, title: string, text: string): Response {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}</style>
</head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>
`;
  return new Response(html, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "referrer-policy": "no-referrer",
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
    },
  });
}
