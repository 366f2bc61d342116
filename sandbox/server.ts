/**
 * The provider sandbox server: one loopback HTTP server playing every provider
 * under `<url>/<provider>` (so a connection's base URL is `<url>/<provider>`),
 * plus a control API under `<url>/_sandbox`. Each startSandbox() has its own
 * state, so tests can run several in one process.
 *
 * The sandbox never imports project code, and project code never imports it.
 */
import { z } from "zod";
import { isoOrNull, SandboxClock } from "./clock.ts";
import {
  type Endpoint,
  ENDPOINTS,
  FAULT_KINDS,
  FaultQueue,
  hang,
  internalServerError,
  serviceUnavailable,
  tooManyRequests,
  truncated,
  withoutField,
} from "./faults.ts";
import type { Fault } from "./faults.ts";
import { bearerToken, json, sleep } from "./http.ts";
import {
  type AppCredentials,
  type AppProvider,
  PROVIDERS,
  type ProviderSandbox,
} from "./provider.ts";
import {
  createLightspeed,
  DEFAULT_LIGHTSPEED_CONFIG,
  type LightspeedConfig,
} from "./providers/lightspeed.ts";
import { createMaystro } from "./providers/maystro.ts";
import { createQuickBooks } from "./providers/quickbooks/index.ts";
import { createShipHero } from "./providers/shiphero.ts";
import { createShopify } from "./providers/shopify/index.ts";
import { RefreshStats } from "./stats.ts";
import { DataRegistry, ORDER_STAGES } from "./data.ts";
import { type BucketSize, RateLimits, SHOPIFY_PLANS, type ShopifyPlan } from "./limits.ts";
import { fingerprint } from "./tokens.ts";
import { deliver } from "./webhooks.ts";

export interface SandboxOptions {
  /** 0 (the default) = any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  hostname?: string;
  /** App credentials the token endpoints accept; defaults `sandbox-<provider>-client` / `-secret`. */
  apps?: Partial<Record<AppProvider, AppCredentials>>;
  /** Delay before every provider response (not the control API). */
  latencyMs?: number;
  /** The QuickBooks app's webhook verifier token; default `sandbox-quickbooks-verifier`. */
  quickbooksVerifierToken?: string;
  /** Lightspeed's UNCONFIRMED lifetimes; also settable with POST /_sandbox/config. */
  lightspeed?: Partial<LightspeedConfig>;
}

export interface RunningSandbox {
  url: string;
  /** Ends held (hanging) requests and stops the server. */
  close(): Promise<void>;
}

export const DEFAULT_APPS: Readonly<Record<AppProvider, AppCredentials>> = {
  shopify: { clientId: "sandbox-shopify-client", clientSecret: "sandbox-shopify-secret" },
  lightspeed: { clientId: "sandbox-lightspeed-client", clientSecret: "sandbox-lightspeed-secret" },
  quickbooks: { clientId: "sandbox-quickbooks-client", clientSecret: "sandbox-quickbooks-secret" },
};

export async function startSandbox(opts: SandboxOptions = {}): Promise<RunningSandbox> {
  const closing = new AbortController();
  const handler = createSandboxHandler(opts, closing.signal);
  const hostname = opts.hostname ?? "127.0.0.1";
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({ port: opts.port ?? 0, hostname, onListen: resolve }, handler);
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${addr.port}`,
    close() {
      closed ??= (async () => {
        closing.abort();
        await server.shutdown();
      })();
      return closed;
    },
  };
}

/** The whole sandbox as a fetch handler; `closing` releases held requests. */
export function createSandboxHandler(
  opts: SandboxOptions,
  closing: AbortSignal,
): (req: Request) => Promise<Response> {
  const clock = new SandboxClock();
  const faults = new FaultQueue();
  const stats = new RefreshStats();
  const settings = {
    latencyMs: opts.latencyMs ?? 0,
    lightspeed: { ...DEFAULT_LIGHTSPEED_CONFIG, ...opts.lightspeed },
  };
  const app = (p: AppProvider) => opts.apps?.[p] ?? DEFAULT_APPS[p];
  const world = { data: new DataRegistry(), limits: new RateLimits() };
  const providers = new Map<string, ProviderSandbox>(
    [
      createShipHero(world),
      createShopify(app("shopify"), world),
      createLightspeed(app("lightspeed"), () => settings.lightspeed, world),
      createQuickBooks(app("quickbooks"), world, opts.quickbooksVerifierToken),
      createMaystro(world),
    ].map((p) => [p.name, p]),
  );

  /** The fault's own answer, or undefined when the provider must answer (200 faults). */
  function errorAnswer(fault: Fault, provider: ProviderSandbox) {
    switch (fault.kind) {
      case "5xx":
        return serviceUnavailable();
      case "429":
        return tooManyRequests(fault.retryAfterSeconds);
      case "hang":
        return hang(closing);
      case "invalid_grant":
        return fault.endpoint === "token" ? provider.invalidGrant() : provider.unauthorized();
      case "unauthorized":
        return provider.unauthorized();
      default:
        return undefined;
    }
  }

  /** The provider's answer as the fault changes it: later (slow) or garbled (200 faults). */
  async function corrupt(fault: Fault | undefined, res: Response): Promise<Response> {
    if (!fault || !res.ok) return res;
    if (fault.kind === "malformed_json") return await truncated(res);
    if (fault.kind === "missing_field") return await withoutField(res, fault.endpoint, fault.field);
    return res;
  }

  /**
   * A provider that limits an account's requests in flight (QuickBooks) counts each API request
   * from its arrival to its answer, the provider's latency included; one too many is throttled.
   */
  async function serveProvider(
    provider: ProviderSandbox,
    req: Request,
    path: string,
  ): Promise<Response> {
    const token = provider.tooManyInFlight && path !== provider.token?.path
      ? bearerToken(req)
      : undefined;
    const account = token === undefined ? undefined : provider.accounts.ownerOf(token);
    if (account === undefined) return await serveRequest(provider, req, path);
    if (!world.limits.enter(provider.name, account)) {
      world.limits.count(provider.name, account, { requests: 1, throttled: 1 });
      return provider.tooManyInFlight!(clock.now());
    }
    try {
      return await serveRequest(provider, req, path);
    } finally {
      world.limits.leave(provider.name, account);
    }
  }

  async function serveRequest(
    provider: ProviderSandbox,
    req: Request,
    path: string,
  ): Promise<Response> {
    await sleep(settings.latencyMs, closing);

    const token = provider.token;
    if (token && req.method === "POST" && path === token.path) {
      const attempt = await token.read(req);
      if (attempt instanceof Response) return attempt;
      if (attempt.refreshToken !== undefined) {
        const owner = provider.accounts.ownerOf(attempt.refreshToken);
        stats.record(
          owner === undefined ? undefined : `${provider.name}/${owner}`,
          await fingerprint(attempt.refreshToken),
        );
      }
      const fault = faults.take(provider.name, "token");
      const early = fault && errorAnswer(fault, provider);
      if (early) return await early;
      if (fault?.kind === "slow") await sleep(fault.delayMs, closing);
      return await corrupt(fault, attempt.complete(clock.now()));
    }

    for (const api of provider.api) {
      if (req.method !== api.method) continue;
      const match = api.pattern.exec({ pathname: path });
      if (!match) continue;
      const fault = faults.take(provider.name, "api");
      const early = fault && errorAnswer(fault, provider);
      if (early) return await early;
      // Held before the provider handles it: a slow request is served (and counted) at its end.
      if (fault?.kind === "slow") await sleep(fault.delayMs, closing);
      const answer = await api.handle(req, match.pathname.groups, clock.now());
      if (fault?.kind === "5xx_after_acting") return internalServerError();
      return await corrupt(fault, answer);
    }
    return notFound(req);
  }

  const control = controlRoutes({ clock, faults, stats, settings, providers, world });

  return async (req) => {
    try {
      const { pathname } = new URL(req.url);
      const slash = pathname.indexOf("/", 1);
      const head = slash < 0 ? pathname.slice(1) : pathname.slice(1, slash);
      const rest = slash < 0 ? "/" : pathname.slice(slash);
      if (head === "_sandbox") {
        for (const route of control) {
          if (req.method !== route.method) continue;
          const match = route.pattern.exec({ pathname: rest });
          if (match) return await route.handle(req, match.pathname.groups);
        }
        return notFound(req);
      }
      const provider = providers.get(head);
      return provider ? await serveProvider(provider, req, rest) : notFound(req);
    } catch (err) {
      // A bug in the sandbox, not a provider behaviour: say so loudly.
      console.error("sandbox: unhandled error", err);
      return json({ error: "sandbox_bug", message: String(err) }, 500);
    }
  };
}

function notFound(req: Request): Response {
  return json({
    error: "not_found",
    message: `No route for ${req.method} ${new URL(req.url).pathname}`,
  }, 404);
}

// ---------------------------------------------------------------------------
// Control API (`/_sandbox/...`), JSON in and out.

interface ControlState {
  clock: SandboxClock;
  faults: FaultQueue;
  stats: RefreshStats;
  settings: { latencyMs: number; lightspeed: LightspeedConfig };
  providers: Map<string, ProviderSandbox>;
  world: { data: DataRegistry; limits: RateLimits };
}

interface ControlRoute {
  method: "GET" | "POST" | "DELETE";
  pattern: URLPattern;
  handle(
    req: Request,
    params: Record<string, string | undefined>,
  ): Response | Promise<Response>;
}

const providerName = z.enum(PROVIDERS);
/** External ids travel in URL paths and keys: keep them path-safe. */
const externalId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "must be path-safe");

const createAccountBody = z.object({
  provider: providerName,
  external_id: externalId.optional(),
  kind: z.enum(["legacy", "expiring"]).optional(),
  /** Shopify: the scopes the shop granted (default read_orders,read_all_orders,read_customers). */
  scopes: z.string().optional(),
  /** Shopify: approved for protected customer data (default false: names, emails, phones denied). */
  protected_customer_data: z.boolean().optional(),
}).refine(
  (b) =>
    b.provider === "shopify" ||
    (b.kind === undefined && b.scopes === undefined && b.protected_customer_data === undefined),
  { message: "kind, scopes and protected_customer_data are for shopify accounts only" },
);

const clockBody = z.union([
  z.object({ advance_seconds: z.number().finite() }).strict(),
  z.object({ set: z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be an ISO date") })
    .strict(),
]);

const faultBody = z.object({
  provider: providerName,
  endpoint: z.enum(ENDPOINTS).default("token"),
  kind: z.enum(FAULT_KINDS),
  count: z.number().int().default(1),
  retry_after: z.number().nonnegative().default(2),
  field: z.string().min(1).optional(),
  /** For slow: how long each answer is held. */
  delay_ms: z.number().int().min(0).max(60_000).default(2_000),
});

const latencyBody = z.object({ ms: z.number().int().min(0).max(60_000) });

const bucketBody = z.object({
  capacity: z.number().positive().optional(),
  restore_per_second: z.number().positive().optional(),
}).strict();

const configBody = z.object({
  lightspeed: z.object({
    access_token_seconds: z.number().int().positive().optional(),
    refresh_idle_seconds: z.number().int().positive().optional(),
  }).optional(),
  limits: z.partialRecord(providerName, bucketBody).optional(),
  /** Shopify's limit as on this plan (SHOPIFY_PLANS); `limits.shopify` after it still applies. */
  shopify_plan: z.enum(Object.keys(SHOPIFY_PLANS) as [ShopifyPlan, ...ShopifyPlan[]]).optional(),
});

const seedBody = z.object({
  seed: z.number().int().nonnegative().default(1),
  orders: z.number().int().min(0).max(1_000_000).default(0),
  customers: z.number().int().min(0).max(1_000_000).default(0),
  spread_days: z.number().positive().max(3650).default(30),
  tracked_share: z.number().min(0).max(1).default(0.5),
}).strict();

const mutateBody = z.object({ changes: z.number().int().min(1).max(100_000) }).strict();
const customStatusBody = z.object({ word: z.string().min(1).max(100) }).strict();

/** A store's order handed to this (fulfillment) account, under the store's number and reference. */
const receiveOrderBody = z.object({
  number: z.string().min(1).max(100),
  reference: z.string().min(1).max(100),
}).strict();

const moveOrderBody = z.object({ stage: z.enum(ORDER_STAGES) }).strict();

const deliverBody = z.object({
  provider: providerName,
  /** The accounts whose changes since the last delivery are sent (QuickBooks batches across them). */
  accounts: z.array(externalId).min(1),
  /** The receiver, e.g. <functions>/webhooks/shopify or …/webhooks/maystro/<connection>/<secret>. */
  url: z.url(),
  duplicate_share: z.number().min(0).max(1).default(0),
  shuffle: z.boolean().default(true),
  seed: z.number().int().nonnegative().default(1),
  /** Sign with this secret instead of the real one (a wrong-secret delivery). */
  secret: z.string().min(1).optional(),
  format: z.enum(["cloudevents", "legacy", "nested", "pubsub", "flat"]).optional(),
  /** Shopify: "events" sends Shopify Events' lower-case shopify-* headers. */
  header_style: z.enum(["classic", "events"]).optional(),
  attempts: z.number().int().min(1).max(10).default(3),
  retry_delay_ms: z.number().int().min(0).max(60_000).default(100),
  concurrency: z.number().int().min(1).max(64).default(8),
}).strict();

async function parseBody<T>(req: Request, schema: z.ZodType<T>): Promise<T | Response> {
  let raw: unknown;
  try {
    raw = JSON.parse(await req.text());
  } catch {
    return json({ error: "invalid_request", message: "Body must be JSON." }, 400);
  }
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  return json({ error: "invalid_request", message: z.prettifyError(parsed.error) }, 400);
}

function route(
  method: ControlRoute["method"],
  pathname: string,
  handle: ControlRoute["handle"],
): ControlRoute {
  return { method, pattern: new URLPattern({ pathname }), handle };
}

function decodeSegment(segment: string | undefined): string {
  try {
    return decodeURIComponent(segment ?? "");
  } catch {
    return "";
  }
}

function describeFault(f: Fault) {
  return {
    provider: f.provider,
    endpoint: f.endpoint,
    kind: f.kind,
    remaining: Number.isFinite(f.remaining) ? f.remaining : null,
    retry_after: f.retryAfterSeconds,
    field: f.field ?? null,
    delay_ms: f.delayMs,
  };
}

function controlRoutes(s: ControlState): ControlRoute[] {
  const now = () => ({ now: isoOrNull(s.clock.now()) });
  const configView = () => ({
    latency_ms: s.settings.latencyMs,
    lightspeed: {
      access_token_seconds: s.settings.lightspeed.accessTokenSeconds,
      refresh_idle_seconds: s.settings.lightspeed.refreshIdleSeconds,
    },
    limits: Object.fromEntries(PROVIDERS.map((p) => {
      const size: BucketSize = s.world.limits.size(p);
      return [p, {
        kind: s.world.limits.kind(p),
        capacity: size.capacity,
        restore_per_second: size.restorePerSecond,
      }];
    })),
  });
  const statsView = () => ({ ...s.stats.snapshot(), api: s.world.limits.stats() });
  const account = (params: Record<string, string | undefined>) => {
    const provider = s.providers.get(decodeSegment(params.provider));
    const id = decodeSegment(params.id);
    return provider && { provider, id };
  };
  const noAccount = (params: Record<string, string | undefined>) =>
    json({
      error: "not_found",
      message: `No account ${decodeSegment(params.provider)}/${decodeSegment(params.id)}`,
    }, 404);

  return [
    route("GET", "/health", () => json({ ok: true })),

    route("POST", "/accounts", async (req) => {
      const body = await parseBody(req, createAccountBody);
      if (body instanceof Response) return body;
      const provider = s.providers.get(body.provider)!;
      const created = provider.createAccount(
        {
          externalId: body.external_id,
          kind: body.kind,
          scopes: body.scopes,
          protectedCustomerData: body.protected_customer_data,
        },
        s.clock.now(),
      );
      if (!created) {
        return json({
          error: "conflict",
          message: `${body.provider}/${body.external_id} already exists`,
        }, 409);
      }
      if (provider.token) s.stats.register(`${provider.name}/${created.external_id}`);
      return json({ provider: provider.name, ...created }, 201);
    }),

    route("GET", "/accounts/:provider/:id", async (_req, params) => {
      const found = account(params);
      const snap = found?.provider.inspect(found.id);
      if (!snap) return noAccount(params);
      return json({
        live_refresh_token_fingerprint: snap.refreshToken && await fingerprint(snap.refreshToken),
        live_access_token_fingerprint: snap.accessToken && await fingerprint(snap.accessToken),
        refresh_token_expires_at: isoOrNull(snap.refreshExpiresAt),
        access_token_expires_at: isoOrNull(snap.accessExpiresAt),
        revoked: snap.revoked,
      });
    }),

    // All tokens of the account die: invalid_grant / 401 from then on.
    route("POST", "/accounts/:provider/:id/revoke", (_req, params) => {
      const found = account(params);
      if (!found?.provider.accounts.revoke(found.id)) return noAccount(params);
      return json({ provider: found.provider.name, external_id: found.id, revoked: true });
    }),

    route("GET", "/clock", () => json(now())),
    route("POST", "/clock", async (req) => {
      const body = await parseBody(req, clockBody);
      if (body instanceof Response) return body;
      if ("advance_seconds" in body) s.clock.advance(body.advance_seconds);
      else s.clock.set(Date.parse(body.set));
      return json(now());
    }),

    route("GET", "/faults", () => json({ faults: s.faults.list().map(describeFault) })),
    route("POST", "/faults", async (req) => {
      const body = await parseBody(req, faultBody);
      if (body instanceof Response) return body;
      if (body.endpoint === "token" && !s.providers.get(body.provider)!.token) {
        return json({
          error: "invalid_request",
          message: `${body.provider} has no token endpoint; use endpoint "api"`,
        }, 400);
      }
      const fault: Fault = {
        provider: body.provider,
        endpoint: body.endpoint as Endpoint,
        kind: body.kind,
        remaining: body.count > 0 ? body.count : Number.POSITIVE_INFINITY,
        retryAfterSeconds: body.retry_after,
        field: body.field,
        delayMs: body.delay_ms,
      };
      s.faults.add(fault);
      return json({ queued: describeFault(fault) }, 201);
    }),
    route("DELETE", "/faults", () => json({ cleared: s.faults.clear() })),

    route("GET", "/latency", () => json({ ms: s.settings.latencyMs })),
    route("POST", "/latency", async (req) => {
      const body = await parseBody(req, latencyBody);
      if (body instanceof Response) return body;
      s.settings.latencyMs = body.ms;
      return json({ ms: body.ms });
    }),

    route("GET", "/stats", () => json(statsView())),
    route("DELETE", "/stats", () => {
      s.stats.reset();
      s.world.limits.resetStats();
      return json(statsView());
    }),

    // What one account spent of its rate limit (requests, throttled requests, units charged) and
    // what is left of it now (`level`: a bucket's content, a window's remaining requests).
    route("GET", "/usage/:provider/:id", (_req, params) => {
      const found = account(params);
      if (!found?.provider.inspect(found.id)) return noAccount(params);
      const { name } = found.provider;
      return json({
        ...s.world.limits.usage(name, found.id),
        level: s.world.limits.level(name, found.id, s.clock.now()),
      });
    }),

    // Datasets: seed an account's orders and customers, change them, read the truth.
    route("POST", "/data/:provider/:id/seed", async (req, params) => {
      const found = account(params);
      if (!found?.provider.inspect(found.id)) return noAccount(params);
      const body = await parseBody(req, seedBody);
      if (body instanceof Response) return body;
      const set = s.world.data.reset(found.provider.name, found.id, body.seed);
      set.seed({
        orders: found.provider.data.streams.includes("orders") ? body.orders : 0,
        customers: body.customers,
        spreadDays: body.spread_days,
        trackedShare: body.tracked_share,
      }, s.clock.now());
      return json({ orders: set.orders.size, customers: set.customers.size, version: set.version });
    }),
    route("POST", "/data/:provider/:id/mutate", async (req, params) => {
      const found = account(params);
      if (!found?.provider.inspect(found.id)) return noAccount(params);
      const body = await parseBody(req, mutateBody);
      if (body instanceof Response) return body;
      const set = s.world.data.get(found.provider.name, found.id);
      const summary = set.mutate({
        changes: body.changes,
        customersCanBeDeleted: found.provider.data.customersCanBeDeleted,
      }, s.clock.now());
      return json({ ...summary, version: set.version });
    }),
    // Orders across providers: a store's order arrives at a fulfillment account, then ships.
    route("POST", "/data/:provider/:id/orders", async (req, params) => {
      const found = account(params);
      if (!found?.provider.inspect(found.id)) return noAccount(params);
      if (!found.provider.data.streams.includes("orders")) {
        return json(
          { error: "invalid_request", message: `${found.provider.name} has no orders` },
          400,
        );
      }
      const body = await parseBody(req, receiveOrderBody);
      if (body instanceof Response) return body;
      const set = s.world.data.get(found.provider.name, found.id);
      const order = set.receiveOrder(body.number, body.reference, s.clock.now());
      return json({ seq: order.seq, version: set.version }, 201);
    }),
    route("POST", "/data/:provider/:id/orders/:seq/stage", async (req, params) => {
      const found = account(params);
      if (!found?.provider.inspect(found.id)) return noAccount(params);
      const body = await parseBody(req, moveOrderBody);
      if (body instanceof Response) return body;
      const set = s.world.data.get(found.provider.name, found.id);
      const order = set.moveOrder(Number(params.seq), body.stage, s.clock.now());
      if (!order) return json({ error: "not_found", message: `No live order ${params.seq}` }, 404);
      return json({
        seq: order.seq,
        stage: order.stage,
        tracking_number: order.trackingNumber,
        version: set.version,
      });
    }),
    // An order deleted at the provider, for providers whose orders can be (QuickBooks).
    route("POST", "/data/:provider/:id/orders/:seq/delete", (_req, params) => {
      const found = account(params);
      if (!found?.provider.inspect(found.id)) return noAccount(params);
      if (!found.provider.data.ordersCanBeDeleted) {
        return json({
          error: "invalid_request",
          message: `${found.provider.name} orders cannot be deleted`,
        }, 400);
      }
      const set = s.world.data.get(found.provider.name, found.id);
      if (!set.deleteOrder(Number(params.seq), s.clock.now())) {
        return json({ error: "not_found", message: `No live order ${params.seq}` }, 404);
      }
      return json({ deleted: Number(params.seq), version: set.version });
    }),
    // What API callers wrote beyond the streams' records (ShipHero: customs values).
    route("GET", "/data/:provider/:id/written", (_req, params) => {
      const found = account(params);
      if (!found?.provider.inspect(found.id)) return noAccount(params);
      const written = found.provider.data.written;
      if (!written) {
        return json({
          error: "not_found",
          message: `${found.provider.name} takes no writes the sandbox records`,
        }, 404);
      }
      return json({ records: written(found.id) });
    }),
    // A custom status word on an order, for providers whose accounts can name their own.
    route("POST", "/data/:provider/:id/orders/:seq/status", async (req, params) => {
      const found = account(params);
      if (!found?.provider.inspect(found.id)) return noAccount(params);
      if (!found.provider.data.customOrderStatuses) {
        return json({
          error: "invalid_request",
          message: `${found.provider.name} orders have no custom statuses`,
        }, 400);
      }
      const body = await parseBody(req, customStatusBody);
      if (body instanceof Response) return body;
      const set = s.world.data.get(found.provider.name, found.id);
      if (!set.setCustomStatus(Number(params.seq), body.word, s.clock.now())) {
        return json({ error: "not_found", message: `No live order ${params.seq}` }, 404);
      }
      return json({ seq: Number(params.seq), word: body.word, version: set.version });
    }),
    route("GET", "/data/:provider/:id/:stream", (_req, params) => {
      const found = account(params);
      if (!found?.provider.inspect(found.id)) return noAccount(params);
      const stream = params.stream === "orders" || params.stream === "customers"
        ? params.stream
        : undefined;
      if (!stream || !found.provider.data.streams.includes(stream)) {
        return json({
          error: "not_found",
          message: `${found.provider.name} has no ${params.stream} stream; it has ${
            found.provider.data.streams.join(", ") || "none"
          }`,
        }, 404);
      }
      return json({ records: found.provider.data.truth(found.id, stream) });
    }),

    // Webhooks: the accounts' changes since the last delivery, as the provider's signed
    // deliveries, sent to `url` with duplicates, shuffled, retried on non-2xx.
    route("POST", "/webhooks/deliver", async (req) => {
      const body = await parseBody(req, deliverBody);
      if (body instanceof Response) return body;
      const provider = s.providers.get(body.provider)!;
      for (const id of body.accounts) {
        if (!provider.inspect(id)) {
          return json({ error: "not_found", message: `No account ${body.provider}/${id}` }, 404);
        }
      }
      const items = body.accounts.flatMap((account) =>
        s.world.data.get(provider.name, account).takeChanges().map((change) => ({
          account,
          change,
        }))
      );
      const messages = await provider.webhooks.build(items, {
        secret: body.secret,
        format: body.format,
        headerStyle: body.header_style,
      });
      const reports = await deliver(messages, {
        url: body.url,
        duplicateShare: body.duplicate_share,
        shuffle: body.shuffle,
        seed: body.seed,
        attempts: body.attempts,
        retryDelayMs: body.retry_delay_ms,
        concurrency: body.concurrency,
      });
      return json({
        changes: items.length,
        messages: messages.length,
        sent: reports.length,
        duplicates: reports.filter((r) => r.duplicate).length,
        failed: reports.filter((r) => r.status < 200 || r.status >= 300).length,
        // Which records the deliveries named, for comparing with the truth.
        records: items.map(({ account, change }) => ({
          account,
          stream: change.stream,
          kind: change.kind,
          seq: change.record.seq,
        })),
        deliveries: reports,
      });
    }),

    route("GET", "/config", () => json(configView())),
    route("POST", "/config", async (req) => {
      const body = await parseBody(req, configBody);
      if (body instanceof Response) return body;
      if (body.shopify_plan !== undefined) s.world.limits.shopifyPlan(body.shopify_plan);
      for (const [provider, size] of Object.entries(body.limits ?? {})) {
        s.world.limits.configure(provider, {
          capacity: size.capacity,
          restorePerSecond: size.restore_per_second,
        });
      }
      const ls = body.lightspeed;
      if (ls?.access_token_seconds !== undefined) {
        s.settings.lightspeed.accessTokenSeconds = ls.access_token_seconds;
      }
      if (ls?.refresh_idle_seconds !== undefined) {
        s.settings.lightspeed.refreshIdleSeconds = ls.refresh_idle_seconds;
      }
      return json(configView());
    }),
  ];
}
