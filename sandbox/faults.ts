/**
 * Fault switches: queued per (provider, endpoint), served first-in first-out
 * to the next matching requests.
 *
 * Error faults (5xx, hang, 429, invalid_grant, unauthorized) answer instead of the provider,
 * so the presented token is NOT consumed or rotated. `5xx_after_acting` lets the provider do
 * the work and then answers 500 instead of its answer. The 200 faults
 * (malformed_json, missing_field) corrupt the provider's real answer, so the
 * refresh DID happen (tokens rotated), as when a good response is garbled on
 * the way back.
 */

export const FAULT_KINDS = [
  "5xx",
  "hang",
  "429",
  "malformed_json",
  "missing_field",
  "invalid_grant",
  // The provider's own 401 on either endpoint (for ShipHero's token endpoint: no OAuth `error`).
  "unauthorized",
  // The provider carries the request out, then answers 500 (its answer lost to an internal error
  // after the write): what makes a blind retry of a write do it twice.
  "5xx_after_acting",
  // The provider's real answer, held `delay_ms` first (a slow API, e.g. a 2 s QuickBooks read).
  "slow",
] as const;
export type FaultKind = typeof FAULT_KINDS[number];

export const ENDPOINTS = ["token", "api"] as const;
export type Endpoint = typeof ENDPOINTS[number];

/** Longest a "hang" holds a request before giving up itself. */
export const HANG_MAX_MS = 60_000;

export interface Fault {
  readonly provider: string;
  readonly endpoint: Endpoint;
  readonly kind: FaultKind;
  /** Requests still to hit; Infinity = until cleared. */
  remaining: number;
  readonly retryAfterSeconds: number;
  /** For missing_field: a top-level key or dotted path; undefined = the endpoint's default. */
  readonly field: string | undefined;
  /** For slow: how long the answer is held. */
  readonly delayMs: number;
}

export class FaultQueue {
  readonly #queues = new Map<string, Fault[]>();

  add(fault: Fault): void {
    const key = `${fault.provider}/${fault.endpoint}`;
    const queue = this.#queues.get(key);
    if (queue) queue.push(fault);
    else this.#queues.set(key, [fault]);
  }

  /** The fault for the next request to this endpoint, if any (consumes one count). */
  take(provider: string, endpoint: Endpoint): Fault | undefined {
    const key = `${provider}/${endpoint}`;
    const queue = this.#queues.get(key);
    const fault = queue?.[0];
    if (!queue || !fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) {
      queue.shift();
      if (queue.length === 0) this.#queues.delete(key);
    }
    return fault;
  }

  list(): Fault[] {
    return [...this.#queues.values()].flat();
  }

  clear(): number {
    const n = this.list().length;
    this.#queues.clear();
    return n;
  }
}

/** What `5xx_after_acting` answers once the provider has acted. */
export function internalServerError(): Response {
  return new Response(
    JSON.stringify({ error: "internal_error", message: "An internal error occurred." }),
    { status: 500, headers: { "content-type": "application/json" } },
  );
}

/** A gateway's 503: deliberately not JSON. */
export function serviceUnavailable(): Response {
  return new Response(
    "<html><head><title>503 Service Temporarily Unavailable</title></head>" +
      "<body><h1>503 Service Temporarily Unavailable</h1></body></html>",
    { status: 503, headers: { "content-type": "text/html" } },
  );
}

export function tooManyRequests(retryAfterSeconds: number): Response {
  return new Response(
    JSON.stringify({ error: "rate_limited", error_description: "Too many requests." }),
    {
      status: 429,
      headers: { "content-type": "application/json", "retry-after": String(retryAfterSeconds) },
    },
  );
}

/**
 * Holds a request without answering until the sandbox closes or HANG_MAX_MS
 * passes (then a 504). It does not watch `request.signal`: in Deno.serve's
 * legacy mode that signal also fires on every successful response (and warns).
 */
export function hang(signal: AbortSignal, maxMs = HANG_MAX_MS): Promise<Response> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve(new Response("gateway timeout", { status: 504 }));
    };
    const timer = setTimeout(done, maxMs);
    if (signal.aborted) done();
    else signal.addEventListener("abort", done, { once: true });
  });
}

/** The real 200 body, cut in half: never parses. */
export async function truncated(res: Response): Promise<Response> {
  const text = await res.text();
  return new Response(text.slice(0, Math.max(1, Math.floor(text.length / 2))), {
    status: res.status,
    headers: res.headers,
  });
}

/**
 * The real 200 body without `field` (dotted paths reach into objects). With no
 * field asked for: "access_token" on token endpoints, else the first top-level key.
 */
export async function withoutField(
  res: Response,
  endpoint: Endpoint,
  field: string | undefined,
): Promise<Response> {
  const body: unknown = await res.json();
  if (body !== null && typeof body === "object") {
    const path = (field ?? (endpoint === "token" ? "access_token" : Object.keys(body)[0] ?? ""))
      .split(".");
    const last = path.pop()!;
    let target: unknown = body;
    for (const key of path) {
      target = target !== null && typeof target === "object"
        ? (target as Record<string, unknown>)[key]
        : undefined;
    }
    if (target !== null && typeof target === "object") {
      delete (target as Record<string, unknown>)[last];
    }
  }
  return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
}
