// One request of the user's own code, forwarded to a provider's API as a connection (the `proxy`
// function): the connection's base URL, the adapter's auth header and API version; the caller's
// own credentials and the hop-by-hop headers are not passed on, either way. The answer comes back
// as the provider gave it; what to do about a 401, a 429 or a 5xx is the job's (jobs/proxy.ts).
import { baseUrls, DEFAULT_TIMEOUT_MS, joinUrl, parseRetryAfter, redact } from "./http.ts";
import {
  type AdapterContext,
  type ConnectionRef,
  type Credentials,
  type ProviderAdapter,
  ProviderError,
} from "./types.ts";

/** A caller's request, as the proxy function read it (no Request: jobs must not see one). */
export interface ProxyCall {
  method: string;
  /** The provider's path: `/api/2.1/products/abc`. */
  path: string;
  /** The query string without `?` (may be empty). */
  query: string;
  /** The caller's headers, by lower-case name. */
  headers: Record<string, string>;
  body: Uint8Array<ArrayBuffer> | null;
}

/** The provider's answer, passed back as it is. */
export interface ProxyAnswer {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array<ArrayBuffer>;
}

/**
 * Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1 and the ones a
 * `Connection` header names), and what authenticates either side: the caller's service key to
 * Tether, the provider's challenge and cookies to the caller.
 */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  // The body is read and sent again (decoded): its length and encoding are the new message's.
  "content-length",
  "content-encoding",
];
const CALLER_AUTH = ["authorization", "apikey", "cookie", "x-client-info"];
const PROVIDER_AUTH = ["set-cookie", "www-authenticate"];

/** The headers of `from` without hop-by-hop ones, `drop`, and what its `connection` names. */
function forwardable(from: Record<string, string>, drop: string[]): Record<string, string> {
  const named = (from["connection"] ?? "").split(",").map((h) => h.trim().toLowerCase());
  const skip = new Set([...HOP_BY_HOP, ...drop, ...named]);
  return Object.fromEntries(Object.entries(from).filter(([name]) => !skip.has(name)));
}

/** Methods that never change anything at the provider (RFC 9110 §9.2.1). */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Does the call change something at the provider? Every method but GET/HEAD/OPTIONS does, except
 * a POST to the provider's GraphQL endpoint whose operations are all queries.
 */
export function isWrite(adapter: ProviderAdapter, call: ProxyCall): boolean {
  if (SAFE_METHODS.has(call.method)) return false;
  if (call.method !== "POST" || !adapter.proxy.graphqlPath?.test(call.path)) return true;
  return !isGraphqlQuery(call.body);
}

/** A GraphQL body whose document holds no mutation (or subscription): a read. */
function isGraphqlQuery(body: Uint8Array | null): boolean {
  if (body === null) return false;
  let query: unknown;
  try {
    query = (JSON.parse(new TextDecoder().decode(body)) as { query?: unknown }).query;
  } catch {
    return false;
  }
  if (typeof query !== "string") return false;
  const text = query.replace(/#[^\n]*/g, "").replace(/"""[\s\S]*?"""|"(?:\\.|[^"\\])*"/g, '""');
  return !/(^|[\s}])(mutation|subscription)\b/.test(text);
}

/** Where the call goes: the connection's API base URL, the path with its version, the query. */
export function proxyTarget(adapter: ProviderAdapter, conn: ConnectionRef, call: ProxyCall): URL {
  const query = new URLSearchParams(call.query);
  const path = adapter.proxy.versioned?.(call.path, query, conn.config) ?? call.path;
  const url = new URL(joinUrl(baseUrls(adapter.facts, conn.config).api, path));
  url.search = query.toString();
  return url;
}

/**
 * Sends the call once as the connection and returns the provider's answer whatever its status.
 * A timeout or an unreachable provider is a ProviderError (`timeout`, `network`), whose message
 * never holds a credential.
 */
export async function forward(
  ctx: AdapterContext,
  adapter: ProviderAdapter,
  conn: ConnectionRef,
  creds: Credentials,
  call: ProxyCall,
): Promise<ProxyAnswer> {
  const url = proxyTarget(adapter, conn, call);
  const headers = {
    ...forwardable(call.headers, CALLER_AUTH),
    ...adapter.proxy.authHeaders(creds),
  };
  const timeoutMs = ctx.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const signal = AbortSignal.any([
    AbortSignal.timeout(timeoutMs),
    ...(ctx.signal ? [ctx.signal] : []),
  ]);
  try {
    const response = await ctx.fetch(url, {
      method: call.method,
      headers,
      body: call.body,
      redirect: "manual",
      signal,
    });
    const body = new Uint8Array(await response.arrayBuffer());
    return {
      status: response.status,
      headers: forwardable(Object.fromEntries(response.headers), PROVIDER_AUTH),
      body,
    };
  } catch (err) {
    const provider = adapter.provider;
    if (signal.aborted) {
      throw new ProviderError(
        provider,
        "timeout",
        `${provider} API (${url.host}) did not answer within ${timeoutMs} ms`,
        { endpoint: "api" },
      );
    }
    if (err instanceof TypeError) {
      throw new ProviderError(
        provider,
        "network",
        redact(
          `${provider} API at ${url.host} could not be reached: ${err.message}`,
          Object.values(creds),
        ),
        { endpoint: "api" },
      );
    }
    throw err;
  }
}

/** How long the answer asks the caller to wait (`Retry-After`), when it says. */
export function statedRetryAfterMs(answer: ProxyAnswer, now: Date): number | undefined {
  return parseRetryAfter(answer.headers["retry-after"], now);
}
