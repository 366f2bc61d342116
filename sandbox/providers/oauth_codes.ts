/**
 * The authorization-code half of OAuth, shared by the Shopify, Lightspeed and QuickBooks
 * sandboxes: an authorize endpoint that plays a person who approves at once, and the codes it
 * hands out (single-use, 10 minutes, bound to the client id and the redirect URI).
 *
 * `GET <authorize path>?client_id&redirect_uri&state[&account=<external id>]` answers 302 to
 * `redirect_uri` with `code`, `state` and the provider's own parameters (`shop` + `hmac`,
 * `domain_prefix`, `realmId`). `account` picks an existing sandbox account (a test that must know
 * the account in advance); without it a new account is created, as a person connecting a fresh
 * store would. `deny=1` plays a person who refuses (`error=access_denied`).
 */
import { json } from "../http.ts";
import { randomToken } from "../tokens.ts";

/** "Authorization codes expire after 10 minutes" (Intuit; Shopify and Lightspeed are similar). */
const CODE_LIFETIME_MS = 10 * 60 * 1000;

interface IssuedCode {
  readonly externalId: string;
  readonly clientId: string;
  readonly redirectUri: string;
  readonly expiresAt: number;
}

export class AuthorizationCodes {
  readonly #codes = new Map<string, IssuedCode>();

  issue(externalId: string, clientId: string, redirectUri: string, now: number): string {
    const code = randomToken("sb_code_");
    this.#codes.set(code, {
      externalId,
      clientId,
      redirectUri,
      expiresAt: now + CODE_LIFETIME_MS,
    });
    return code;
  }

  /**
   * Spends a code: its account when it is live and was issued to this client (and, when given,
   * this redirect URI); undefined otherwise (invalid_grant). A code works once, even on failure.
   */
  redeem(
    code: string | undefined,
    clientId: string | undefined,
    redirectUri: string | undefined | null,
    now: number,
  ): string | undefined {
    if (code === undefined) return undefined;
    const issued = this.#codes.get(code);
    this.#codes.delete(code);
    if (!issued || now >= issued.expiresAt || issued.clientId !== clientId) return undefined;
    if (redirectUri !== null && issued.redirectUri !== redirectUri) return undefined;
    return issued.externalId;
  }
}

export interface AuthorizeRequest {
  clientId: string;
  redirectUri: URL;
  state: string;
  /** The `account` parameter, when the caller picked one. */
  account: string | undefined;
  deny: boolean;
}

/** Reads the authorize query; a Response (400) when the client or redirect URI is wrong. */
export function readAuthorize(req: Request, expectedClientId: string): AuthorizeRequest | Response {
  const query = new URL(req.url).searchParams;
  const clientId = query.get("client_id");
  if (clientId !== expectedClientId) {
    return json({ error: "invalid_client", error_description: "Unknown client_id." }, 400);
  }
  let redirectUri: URL;
  try {
    redirectUri = new URL(query.get("redirect_uri") ?? "");
  } catch {
    return json({ error: "invalid_request", error_description: "redirect_uri is required." }, 400);
  }
  if (redirectUri.protocol !== "https:" && redirectUri.protocol !== "http:") {
    return json(
      { error: "invalid_request", error_description: "redirect_uri must be http(s)." },
      400,
    );
  }
  return {
    clientId,
    redirectUri,
    state: query.get("state") ?? "",
    account: query.get("account") ?? undefined,
    deny: query.get("deny") === "1",
  };
}

/** The 302 back to the app with `params` added to its redirect URI. */
export function redirectBack(redirectUri: URL, params: Record<string, string>): Response {
  const url = new URL(redirectUri);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return new Response(null, { status: 302, headers: { location: url.toString() } });
}

const noSuchAccount = (id: string) =>
  json({ error: "not_found", message: `No sandbox account ${id}` }, 404);

/**
 * The authorize endpoint every sandbox plays: the person approves at once (or refuses, with
 * `deny=1`), for the account named by `account=` or a new one, and is sent back to the app's
 * redirect URI with a code, the state and the provider's own parameters.
 */
export async function approveAuthorize<A extends { externalId: string }>(
  req: Request,
  now: number,
  o: {
    clientId: string;
    codes: AuthorizationCodes;
    /** The named account, or a new one when none is named; undefined when the name is unknown. */
    account: (requested: string | undefined) => A | undefined;
    /** What the provider adds besides `code` and `state` (realmId, domain_prefix, shop…). */
    params: (
      account: A,
      base: Record<string, string>,
    ) => Record<string, string> | Promise<Record<string, string>>;
  },
): Promise<Response> {
  const ask = readAuthorize(req, o.clientId);
  if (ask instanceof Response) return ask;
  if (ask.deny) return redirectBack(ask.redirectUri, { error: "access_denied", state: ask.state });
  const account = o.account(ask.account);
  if (!account) return noSuchAccount(ask.account ?? "");
  const base = {
    code: o.codes.issue(account.externalId, ask.clientId, ask.redirectUri.toString(), now),
    state: ask.state,
  };
  return redirectBack(ask.redirectUri, await o.params(account, base));
}
