// What every adapter does the same way when it talks to a provider: fetch with a timeout, parse
// JSON, validate it with zod into errors that name the field, turn HTTP failures into
// `ProviderError` codes, and read `Retry-After`. Messages never carry tokens, secrets or raw bodies.

import { z } from "zod";
import { formatIssues, parseJsonText } from "../validation.ts";
import {
  type AdapterContext,
  type AppCredentials,
  type ProviderConfig,
  type ProviderEndpoint,
  ProviderError,
  type ProviderErrorCode,
  type ProviderFacts,
  type ProviderName,
} from "./types.ts";

export const DEFAULT_TIMEOUT_MS = 15_000;
/** Provider-supplied text (error_description, GraphQL messages) is cut to this many characters. */
const MAX_DETAIL_CHARS = 200;
/** Values shorter than this are not redacted (they would mangle ordinary words). */
const MIN_SECRET_CHARS = 6;

// ---------------------------------------------------------------------------------------------
// URLs

/** Appends a documented path to a base URL (`https://host` or `http://127.0.0.1:9/shopify`). */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, "") + (path.startsWith("/") ? path : `/${path}`);
}

/** The connection's `auth_base_url` / `api_base_url` when set, else the documented hosts. */
export function baseUrls(
  facts: ProviderFacts,
  config: ProviderConfig,
): { auth: string; api: string } {
  return {
    auth: config.auth_base_url ?? facts.defaultAuthBaseUrl(config),
    api: config.api_base_url ?? facts.defaultApiBaseUrl(config),
  };
}

// ---------------------------------------------------------------------------------------------
// Safe messages

/** Replaces every occurrence of each secret with `[redacted]`. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret === undefined || secret.length < MIN_SECRET_CHARS) continue;
    out = out.split(secret).join("[redacted]");
  }
  return out;
}

function truncate(text: string, max = MAX_DETAIL_CHARS): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
}

/**
 * Parses `value` with `schema`, or throws a ProviderError with `code` whose message names the
 * provider, what was parsed and each failing field: `shiphero refresh response: field
 * "access_token": expected string, received undefined`.
 */
export function parseWith<S extends z.ZodType>(
  provider: ProviderName,
  code: ProviderErrorCode,
  what: string,
  schema: S,
  value: unknown,
  options: {
    secrets?: readonly (string | undefined)[];
    status?: number;
    endpoint?: ProviderEndpoint;
  } = {},
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const message = redact(
    `${provider} ${what}: ${formatIssues(result.error.issues)}`,
    options.secrets ?? [],
  );
  throw new ProviderError(provider, code, message, {
    status: options.status,
    endpoint: options.endpoint,
  });
}

// ---------------------------------------------------------------------------------------------
// App credentials

/** The app's OAuth client, or "misconfigured" naming the env vars to set. */
export function requireApp(
  ctx: AdapterContext,
  provider: ProviderName,
  facts: ProviderFacts,
): AppCredentials {
  const app = ctx.app(provider);
  if (app !== undefined && app.clientId !== "" && app.clientSecret !== "") return app;
  throw new ProviderError(
    provider,
    "misconfigured",
    `${provider} app credentials are not set: set ${envNames(facts)}`,
  );
}

function envNames(facts: ProviderFacts): string {
  return facts.appEnv === null
    ? "the app's client id and secret"
    : `${facts.appEnv.clientId} and ${facts.appEnv.clientSecret}`;
}

// ---------------------------------------------------------------------------------------------
// Retry-After

/** Milliseconds to wait from a `Retry-After` value (delta seconds or HTTP date); undefined if unusable. */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.ceil(Number(text) * 1000);
  // An HTTP date always names a weekday or a month; a bare or negative number is not a date.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now.getTime());
}

// ---------------------------------------------------------------------------------------------
// Requests

export interface JsonRequest {
  provider: ProviderName;
  facts: ProviderFacts;
  endpoint: ProviderEndpoint;
  /** Names the parsed body in messages: "refresh response", "verify response". */
  what: string;
  method: "GET" | "POST";
  url: string;
  headers?: Record<string, string>;
  body?: string | URLSearchParams;
  /** Values that must never appear in a message (tokens, client secret, Basic header). */
  secrets: readonly (string | undefined)[];
}

export interface JsonResponse<T> {
  data: T;
  status: number;
  headers: Headers;
}

function endpointLabel(provider: ProviderName, endpoint: ProviderEndpoint): string {
  return endpoint === "token" ? `${provider} token endpoint` : `${provider} API`;
}

/**
 * Sends one request and returns its JSON body validated by `schema`. Every failure is a
 * ProviderError: HTTP status classes, timeout, network, a body that is not JSON, or a body that
 * does not match the schema (the message names the field).
 */
export async function requestJson<S extends z.ZodType>(
  ctx: AdapterContext,
  req: JsonRequest,
  schema: S,
): Promise<JsonResponse<z.output<S>>> {
  const { status, headers, text } = await send(ctx, req);
  const label = endpointLabel(req.provider, req.endpoint);
  if (status < 200 || status > 299) {
    throw classifyHttpError(req, status, headers, text, ctx.now());
  }
  // An empty body reads as null: a schema that expects nothing (a revocation's 200) accepts it.
  const json = text === "" ? null : parseJsonText(text);
  if (json === undefined) {
    const type = headers.get("content-type");
    throw new ProviderError(
      req.provider,
      "bad_response",
      `${label} returned a body that is not JSON (HTTP ${status}${
        type ? `, ${truncate(type, 60)}` : ""
      })`,
      { status, endpoint: req.endpoint },
    );
  }
  const data = parseWith(req.provider, "bad_response", req.what, schema, json, {
    secrets: req.secrets,
    status,
    endpoint: req.endpoint,
  });
  return { data, status, headers };
}

async function send(
  ctx: AdapterContext,
  req: JsonRequest,
): Promise<{ status: number; headers: Headers; text: string }> {
  const timeoutMs = ctx.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const label = endpointLabel(req.provider, req.endpoint);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeoutMarker()), timeoutMs);
  const onCallerAbort = () => controller.abort(ctx.signal?.reason);
  if (ctx.signal?.aborted) onCallerAbort();
  ctx.signal?.addEventListener("abort", onCallerAbort, { once: true });
  try {
    const response = await ctx.fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal: controller.signal,
      redirect: "manual",
    });
    // The timeout covers the body too: a server that sends headers and then stalls is a timeout.
    const text = await response.text();
    return { status: response.status, headers: response.headers, text };
  } catch (error) {
    if (controller.signal.aborted) {
      const byTimer = controller.signal.reason instanceof TimeoutMarker;
      throw new ProviderError(
        req.provider,
        "timeout",
        byTimer
          ? `${label} (${hostOf(req.url)}) did not answer within ${timeoutMs} ms`
          : `${label} request was aborted by the caller`,
        { endpoint: req.endpoint },
      );
    }
    if (error instanceof TypeError) {
      throw new ProviderError(
        req.provider,
        "network",
        redact(
          `${label} at ${hostOf(req.url)} could not be reached: ${truncate(error.message)}`,
          req.secrets,
        ),
        { endpoint: req.endpoint },
      );
    }
    throw error;
  } finally {
    clearTimeout(timer);
    ctx.signal?.removeEventListener("abort", onCallerAbort);
  }
}

/** The host a request went to (what an operator checks first when it cannot be reached). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "an invalid URL";
  }
}

class TimeoutMarker extends Error {
  override readonly name = "TimeoutError";
}

/**
 * The parts of an error body worth showing: the OAuth `error` code and the first human-readable
 * description (`error_description`, `message`, `detail`, `errors`, Intuit's `fault.error[]`).
 * Never the raw body.
 */
function errorDetail(json: unknown): { error?: string; text?: string } {
  if (!isRecord(json)) return {};
  const error = typeof json.error === "string" ? json.error : undefined;
  const fault = json.fault ?? json.Fault;
  const faultErrors = isRecord(fault) ? fault.error ?? fault.Error : undefined;
  const description = [
    json.error_description,
    json.message,
    json.detail,
    json.errors,
    faultErrors,
  ].map(describe).find((text) => text !== undefined);
  const text = [error, description].filter((part) => part !== undefined).join(": ");
  return { error, text: text === "" ? undefined : text };
}

function describe(value: unknown): string | undefined {
  if (typeof value === "string") return value === "" ? undefined : value;
  if (!Array.isArray(value)) return undefined;
  const texts = value
    .map((item) => {
      if (typeof item === "string") return item;
      if (!isRecord(item)) return undefined;
      const text = item.message ?? item.Message ?? item.detail ?? item.Detail;
      return typeof text === "string" ? text : undefined;
    })
    .filter((text): text is string => text !== undefined && text !== "");
  return texts.length === 0 ? undefined : texts.join("; ");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Turns a non-2xx response into a ProviderError (the providers' documented error bodies). */
export function classifyHttpError(
  req: Pick<JsonRequest, "provider" | "facts" | "endpoint" | "secrets">,
  status: number,
  headers: Headers,
  bodyText: string,
  now: Date,
): ProviderError {
  const { provider, facts, endpoint } = req;
  const label = endpointLabel(provider, endpoint);
  const json = parseJsonText(bodyText);
  const detail = json === undefined ? {} : errorDetail(json);
  const shown = detail.text === undefined ? "" : `: ${truncate(detail.text)}`;
  const make = (code: ProviderErrorCode, message: string, retryAfterMs?: number) =>
    new ProviderError(provider, code, redact(message, req.secrets), {
      status,
      endpoint,
      retryAfterMs,
    });

  if ((status === 400 || status === 401 || status === 403) && detail.error === "invalid_grant") {
    return make(
      "invalid_grant",
      `${provider} rejected the refresh token (HTTP ${status}${shown}); reconnect the ${facts.displayName} account`,
    );
  }
  if (
    (status === 400 || status === 401 || status === 403) &&
    (detail.error === "invalid_client" || detail.error === "unauthorized_client")
  ) {
    return make(
      "misconfigured",
      `${provider} rejected the app credentials (HTTP ${status}${shown}); check ${envNames(facts)}`,
    );
  }
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(headers.get("retry-after"), now) ??
      facts.defaultRetryAfterSeconds * 1000;
    return make(
      "rate_limited",
      `${label} is rate limiting (HTTP 429${shown}); retry after ${
        Math.ceil(retryAfterMs / 1000)
      } s`,
      retryAfterMs,
    );
  }
  if (status >= 500) return make("server_error", `${label} failed with HTTP ${status}${shown}`);
  if (status === 408) return make("timeout", `${label} timed out (HTTP 408${shown})`);
  if (status === 401 || status === 403) {
    return make(
      "unauthorized",
      endpoint === "api"
        ? `${provider} rejected the access token (HTTP ${status}${shown}); it was revoked, expired or lacks a scope`
        : `${label} refused the request (HTTP ${status}${shown})`,
    );
  }
  if (status >= 300 && status < 400) {
    return make(
      "bad_response",
      `${label} answered with a redirect (HTTP ${status}); check the base URL`,
    );
  }
  return make("bad_request", `${label} rejected the request (HTTP ${status}${shown})`);
}

// ---------------------------------------------------------------------------------------------
// GraphQL

export interface GraphqlError {
  message?: string | undefined;
  extensions?: { code?: unknown } | undefined;
  code?: unknown;
  path?: readonly (string | number)[] | undefined;
}

/** A GraphQL error path: `customers.edges.0.node.firstName`. */
export type FieldPath = readonly (string | number)[];

/**
 * The errors of a response that are field-level access denials the caller accepts (see
 * `GraphqlOptions.acceptDenied`): `extensions.code` "ACCESS_DENIED" with a `path` the caller
 * names. Everything else stays an error.
 */
export function splitDenied(
  errors: readonly GraphqlError[] | undefined,
  acceptDenied: ((path: FieldPath) => boolean) | undefined,
): { denied: FieldPath[]; rest: GraphqlError[] } {
  const denied: FieldPath[] = [];
  const rest: GraphqlError[] = [];
  for (const error of errors ?? []) {
    const path = error.path;
    if (
      acceptDenied !== undefined && error.extensions?.code === "ACCESS_DENIED" &&
      path !== undefined && path.length > 0 && acceptDenied(path)
    ) denied.push(path);
    else rest.push(error);
  }
  return { denied, rest };
}

/**
 * GraphQL answers HTTP 200 with `errors` for throttling (Shopify `THROTTLED`, ShipHero "There are
 * not enough credits …") and for failed queries; both become ProviderErrors. The wait is the one
 * the caller read from the response (`GraphqlOptions.inspect`), else the provider's default.
 */
export function throwOnGraphqlErrors(
  req: Pick<JsonRequest, "provider" | "facts" | "secrets">,
  errors: readonly GraphqlError[] | undefined,
  /** The wait a throttle implies when the caller knows better than the message (Shopify's bucket). */
  throttleWaitMs?: number,
): void {
  if (errors === undefined || errors.length === 0) return;
  const messages = errors.map((e) => e.message ?? "").filter((m) => m !== "");
  const joined = truncate(messages.join("; ") || "unnamed error");
  const throttled = errors.some((e) =>
    e.extensions?.code === "THROTTLED" || /throttl|not enough credits/i.test(e.message ?? "")
  );
  if (throttled) {
    const retryAfterMs = throttleWaitMs ?? req.facts.defaultRetryAfterSeconds * 1000;
    throw new ProviderError(
      req.provider,
      "rate_limited",
      redact(`${req.provider} API is throttling (${joined})`, req.secrets),
      { status: 200, endpoint: "api", retryAfterMs },
    );
  }
  throw new ProviderError(
    req.provider,
    "bad_response",
    redact(`${req.provider} API returned GraphQL errors: ${joined}`, req.secrets),
    { status: 200, endpoint: "api" },
  );
}

const graphqlEnvelope = z.object({
  data: z.unknown().optional(),
  errors: z
    .array(
      z.looseObject({
        message: z.string().optional(),
        extensions: z.looseObject({ code: z.unknown().optional() }).optional(),
        path: z.array(z.union([z.string(), z.number()])).optional(),
      }),
    )
    .optional(),
  extensions: z.record(z.string(), z.unknown()).optional(),
});

export interface GraphqlOptions {
  /**
   * Sees the response's `extensions` (Shopify's cost report) and `errors` (ShipHero's credits
   * report) before any error is thrown; returns the wait a throttle implies when they say it.
   */
  inspect?: (
    extensions: Record<string, unknown> | undefined,
    errors: readonly GraphqlError[] | undefined,
  ) => number | undefined;
  /**
   * The one kind of GraphQL error a caller may accept instead of failing: a field the app is not
   * allowed to read, answered with the field null and an error `{path, extensions: {code:
   * "ACCESS_DENIED"}}` beside the data (Shopify's protected customer data for an app without
   * approval). Only errors with that code and a path this function accepts are accepted; they
   * are returned as `denied`, and any other error is thrown as before.
   */
  acceptDenied?: (path: FieldPath) => boolean;
  /**
   * A check that accepts exactly what `dataSchema` accepts, without zod's copy of the data (a
   * large page's hot path): data it accepts is returned as parsed; the rest goes through the
   * schema, whose message names the field.
   */
  accepts?: (data: unknown) => boolean;
}

export interface GraphqlResponse<T> extends JsonResponse<T> {
  /** The paths of the fields withheld by accepted ACCESS_DENIED errors (null in `data`). */
  denied: FieldPath[];
}

/**
 * A GraphQL call: HTTP handled as `requestJson`, then `extensions` shown to `inspect`, then
 * `errors` thrown (`throwOnGraphqlErrors`) but for the access denials `acceptDenied` accepts,
 * then `data` validated by `dataSchema` (messages name the
 * field as `data.…`).
 */
/**
 * `data` is wrapped so that messages name the field from the top: `field "data.shop.name"`. One
 * wrapper per schema, kept: zod compiles an object schema on its first parse, which cost more than
 * the parse of a 250-order page when a fresh wrapper was built for every request.
 */
const WRAPPED = new WeakMap<z.ZodType, z.ZodType>();
function wrappedData<S extends z.ZodType>(dataSchema: S): z.ZodType<{ data: z.output<S> }> {
  let wrapped = WRAPPED.get(dataSchema);
  if (!wrapped) WRAPPED.set(dataSchema, wrapped = z.object({ data: dataSchema }));
  return wrapped as unknown as z.ZodType<{ data: z.output<S> }>;
}

export async function requestGraphql<S extends z.ZodType>(
  ctx: AdapterContext,
  req: JsonRequest,
  dataSchema: S,
  options: GraphqlOptions = {},
): Promise<GraphqlResponse<z.output<S>>> {
  const response = await requestJson(ctx, req, graphqlEnvelope);
  const throttleWaitMs = options.inspect?.(response.data.extensions, response.data.errors);
  const { denied, rest } = splitDenied(response.data.errors, options.acceptDenied);
  throwOnGraphqlErrors(req, rest, throttleWaitMs);
  if (options.accepts?.(response.data.data)) {
    return { ...response, data: response.data.data as z.output<S>, denied };
  }
  const wrapped = wrappedData(dataSchema);
  const parsed = parseWith(
    req.provider,
    "bad_response",
    req.what,
    wrapped,
    { data: response.data.data },
    { secrets: req.secrets, status: response.status, endpoint: req.endpoint },
  );
  return { ...response, data: parsed.data, denied };
}

// ---------------------------------------------------------------------------------------------
// The adapter's client: the envelope written once

/** What every request to one endpoint of one connection shares. */
export interface ClientSpec {
  provider: ProviderName;
  facts: ProviderFacts;
  endpoint: ProviderEndpoint;
  /** The base URL the request paths are appended to (see `joinUrl`). */
  baseUrl: string;
  /** Sent with every request: authorization, accept, API version. */
  headers: Record<string, string>;
  /** Values that must never appear in a message (tokens, client secret, Basic header). */
  secrets: readonly (string | undefined)[];
}

/**
 * Requests to one endpoint of one connection. `what` names the parsed body in messages ("refresh
 * response", "orders page"); every answer is validated by its schema (requestJson, requestGraphql).
 */
export interface ProviderClient {
  get<S extends z.ZodType>(
    what: string,
    path: string,
    schema: S,
    query?: Record<string, string>,
  ): Promise<JsonResponse<z.output<S>>>;
  postForm<S extends z.ZodType>(
    what: string,
    path: string,
    fields: Record<string, string>,
    schema: S,
  ): Promise<JsonResponse<z.output<S>>>;
  postJson<S extends z.ZodType>(
    what: string,
    path: string,
    body: unknown,
    schema: S,
  ): Promise<JsonResponse<z.output<S>>>;
  graphql<S extends z.ZodType>(
    what: string,
    path: string,
    request: { query: string; variables?: Record<string, unknown> },
    dataSchema: S,
    options?: GraphqlOptions,
  ): Promise<GraphqlResponse<z.output<S>>>;
}

export function providerClient(ctx: AdapterContext, spec: ClientSpec): ProviderClient {
  const url = (path: string, query: Record<string, string> = {}) => {
    const target = new URL(joinUrl(spec.baseUrl, path));
    for (const [name, value] of Object.entries(query)) target.searchParams.set(name, value);
    return target.toString();
  };
  const request = (
    what: string,
    method: "GET" | "POST",
    target: string,
    extra: { contentType?: string; body?: string | URLSearchParams } = {},
  ): JsonRequest => ({
    provider: spec.provider,
    facts: spec.facts,
    endpoint: spec.endpoint,
    what,
    method,
    url: target,
    headers: extra.contentType === undefined
      ? spec.headers
      : { ...spec.headers, "content-type": extra.contentType },
    body: extra.body,
    secrets: spec.secrets,
  });
  return {
    get: (what, path, schema, query) =>
      requestJson(ctx, request(what, "GET", url(path, query)), schema),
    postForm: (what, path, fields, schema) =>
      requestJson(
        ctx,
        request(what, "POST", url(path), {
          contentType: "application/x-www-form-urlencoded",
          body: new URLSearchParams(fields),
        }),
        schema,
      ),
    postJson: (what, path, body, schema) =>
      requestJson(
        ctx,
        request(what, "POST", url(path), {
          contentType: "application/json",
          body: JSON.stringify(body),
        }),
        schema,
      ),
    graphql: (what, path, body, dataSchema, options) =>
      requestGraphql(
        ctx,
        request(what, "POST", url(path), {
          contentType: "application/json",
          body: JSON.stringify(body),
        }),
        dataSchema,
        options,
      ),
  };
}

/**
 * The two clients every adapter builds, bound to its provider and facts: `api`, the provider's API
 * as one connection (the config's base URL, the auth header, the stored credentials never shown),
 * and `token`, the token endpoint at a base URL (refresh, and the OAuth code exchange).
 */
export function adapterHttp(provider: ProviderName, facts: ProviderFacts) {
  return {
    api: (
      ctx: AdapterContext,
      config: ProviderConfig,
      auth: Record<string, string>,
      stored: Readonly<Record<string, string>>,
    ): ProviderClient =>
      providerClient(ctx, {
        provider,
        facts,
        endpoint: "api",
        baseUrl: baseUrls(facts, config).api,
        headers: { ...auth, accept: "application/json" },
        secrets: Object.values(stored),
      }),
    token: (
      ctx: AdapterContext,
      baseUrl: string,
      secrets: readonly (string | undefined)[],
      headers: Record<string, string> = {},
    ): ProviderClient =>
      providerClient(ctx, {
        provider,
        facts,
        endpoint: "token",
        baseUrl,
        headers: { ...headers, accept: "application/json" },
        secrets,
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers shared by adapters

/** `now + seconds`. */
export function after(now: Date, seconds: number): Date {
  return new Date(now.getTime() + seconds * 1000);
}

/** Base64 of a UTF-8 string (HTTP Basic credentials). */
export function base64Utf8(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}
