// Tether from the user's own code: a typed client for the `tokens` and `proxy` functions, for a
// Supabase Edge Function or any server with fetch (Deno, Node 18+, Bun), and the change feed's
// read and acknowledge over your Postgres connection (`changeFeed`). It imports nothing: copy it
// into your project, or import it from your Tether checkout. It must hold a secret key, so it runs
// on a server only, never in a browser.
//
//   const tether = createTetherClient({
//     url: Deno.env.get("SUPABASE_URL")! + "/functions/v1",
//     serviceKey: Deno.env.get("TETHER_SERVICE_KEY")!,
//   });
//   const { access_token, config } = await tether.getAccessToken(connectionId);
//   const res = await tether.proxy(connectionId, "/api/2.0/outlets");

export interface TetherClientOptions {
  /** The functions' base URL: `https://<ref>.supabase.co/functions/v1`. */
  url: string;
  /** A secret API key (`sb_secret_…`) or a service_role JWT: what Tether's functions accept. */
  serviceKey: string;
  /** Default globalThis.fetch. */
  fetch?: typeof fetch;
}

/** A valid access token of a connection, and what a caller needs to use it. */
export interface TetherToken {
  provider: "shiphero" | "shopify" | "lightspeed" | "quickbooks" | "maystro";
  access_token: string;
  /**
   * How to send it: `bearer` (`Authorization: Bearer <token>`), `token`
   * (`Authorization: Token <token>`), or the header that carries it (`x-shopify-access-token`).
   */
  token_type: "bearer" | "token" | "x-shopify-access-token";
  /** ISO 8601, or null for a token that does not expire. */
  expires_at: string | null;
  /**
   * The connection's non-secret facts: `shop`, `domain_prefix`, `realm_id`, … as the provider
   * needs them, `api_base_url` (where its calls go) and `api_version` where the provider has one.
   */
  config: { api_base_url: string; api_version?: string; [field: string]: unknown };
}

/** A refusal by Tether itself (not the provider's answer): `code` is Tether's error code. */
export class TetherError extends Error {
  override readonly name = "TetherError";
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export interface TetherClient {
  /**
   * A valid access token of the connection, refreshed first when it is about to expire (one
   * refresh however many callers ask at once). Throws TetherError: `unknown_connection` (404),
   * `reauth_required` (409: a person must reconnect the account), `provider_unavailable` (502).
   */
  getAccessToken(connectionId: string): Promise<TetherToken>;
  /**
   * Sends a request to the provider's API as the connection: `path` is the provider's own
   * (`/api/2.1/products/<id>`, `/admin/api/graphql.json`, `/graphql`), auth and API version are
   * set, the connection's rate budget is respected, a 401 is refreshed and retried once, 429s
   * (and 5xx of reads) are retried after the provider's Retry-After. The provider's answer is
   * returned as it is; Tether's own refusals carry the header `tether-error`.
   */
  proxy(connectionId: string, path: string, init?: RequestInit): Promise<Response>;
}

export function createTetherClient(options: TetherClientOptions): TetherClient {
  const base = options.url.replace(/\/+$/, "");
  const send = options.fetch ?? globalThis.fetch;
  const auth = (headers?: HeadersInit) => {
    const merged = new Headers(headers);
    merged.set("apikey", options.serviceKey);
    merged.set("authorization", `Bearer ${options.serviceKey}`);
    return merged;
  };
  return {
    async getAccessToken(connectionId) {
      const res = await send(`${base}/tokens`, {
        method: "POST",
        headers: auth({ "content-type": "application/json" }),
        body: JSON.stringify({ connection_id: connectionId }),
      });
      const body = await res.json().catch(() => undefined) as
        | (TetherToken & { error?: string; message?: string })
        | undefined;
      if (!res.ok || body === undefined) {
        throw new TetherError(
          res.status,
          body?.error ?? "bad_response",
          body?.message ?? `tokens answered HTTP ${res.status}`,
        );
      }
      return body;
    },
    proxy(connectionId, path, init = {}) {
      const target = `${base}/proxy/${encodeURIComponent(connectionId)}${
        path.startsWith("/") ? path : `/${path}`
      }`;
      return send(target, { ...init, headers: auth(init.headers) });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The change feed (`tether.read_changes` / `tether.ack_changes`), read over a Postgres
// connection: Supabase gives every function `SUPABASE_DB_URL`.

/** One change of the feed, as `read_changes` hands it out. */
export interface TetherChange {
  /** The feed position (a bigint, as text). */
  id: string;
  connection_id: string;
  stream: "orders" | "customers";
  /** The provider's id of the record (`external_id` in `tether.orders` / `tether.customers`). */
  record_id: string;
  op: "created" | "updated" | "deleted" | "inactive";
  /** `{}` for `created`; otherwise the changed fields' new values. */
  fields: Record<string, unknown>;
  at: Date;
  /** The batch this change was handed out in: acknowledge with it. */
  lease: string;
}

/**
 * A tagged-template query function: postgres.js's `sql` (`postgres(url, { prepare: false })`)
 * is one. Values are sent as parameters, never spliced into the text.
 */
export type SqlTag = (
  strings: TemplateStringsArray,
  ...values: (string | number)[]
) => PromiseLike<readonly object[]>;

export interface ChangeFeed {
  /**
   * The next changes of the consumer (at most `max`), leased to this caller until acknowledged
   * or until the lease (5 minutes) runs out: no other reader of the consumer gets them meanwhile.
   */
  read(max?: number): Promise<TetherChange[]>;
  /**
   * Acknowledges the changes of `upTo`'s batch up to and including it: they are never handed
   * out again. Returns how many; 0 when the lease ran out and the batch went to another reader.
   */
  ack(upTo: TetherChange): Promise<number>;
}

/** The feed as one consumer (a name of your choosing) reads it. */
export function changeFeed(sql: SqlTag, consumer: string): ChangeFeed {
  return {
    async read(max = 100) {
      return await sql`
        select id::text as id, connection_id::text as connection_id, stream, record_id, op,
               fields, at, lease::text as lease
          from tether.read_changes(${consumer}, ${max})` as TetherChange[];
    },
    async ack(upTo) {
      const [row] = await sql`
        select tether.ack_changes(${consumer}, ${upTo.id}::bigint, ${upTo.lease}::uuid) as acked`;
      return (row as { acked: number }).acked;
    },
  };
}
