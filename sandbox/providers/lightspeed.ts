/**
 * Lightspeed Retail X-Series (x-series-api.lightspeedhq.com), played under
 * `<url>/lightspeed` in place of https://{domain_prefix}.retail.lightspeed.app.
 *
 * Data: "GET /api/2.0/{sales|customers}?after=<version>&page_size=N →
 * {"data":[…], "version":{"min":…, "max":…}}; next page after=version.max;
 * stop on empty data". The dataset's change counter is exactly Lightspeed's
 * `version`. Every API request costs 1 from the retailer's bucket ("300 ×
 * registers + 50 requests per 5 minutes"); a refusal is a 429 with an HTTP-date
 * `Retry-After`, as Lightspeed (Vend) documents it.
 */
import {
  AccountBook,
  type BaseAccount,
  describeAccount,
  type IssuedToken,
  killNow,
} from "../accounts.ts";
import type { Dataset, SandboxCustomer, SandboxOrder, StreamName, TruthRecord } from "../data.ts";
import { hex, hmacSha256 } from "../webhooks.ts";
import { bearerToken, FORM, json, mediaType } from "../http.ts";
import type { ApiEndpoint, AppCredentials, ProviderSandbox, SandboxWorld } from "../provider.ts";
import { defineSandboxProvider, perChange } from "./define.ts";
import { z } from "zod";
import { AuthorizationCodes } from "./oauth_codes.ts";

export interface LightspeedConfig {
  /** Access-token lifetime is UNCONFIRMED (604800, 86400 or 1800 s); default 86400. */
  accessTokenSeconds: number;
  /** "Refresh tokens die after a period of inactivity (30 days in practice)". */
  refreshIdleSeconds: number;
}

export const DEFAULT_LIGHTSPEED_CONFIG: Readonly<LightspeedConfig> = {
  accessTokenSeconds: 86_400,
  refreshIdleSeconds: 30 * 86_400,
};

const SCOPE = "sales:read customers:read products:read inventory:read outlets:read";
const CREDENTIAL_FIELDS = ["refresh_token", "client_id", "client_secret"];

interface LightspeedAccount extends BaseAccount {
  readonly domainPrefix: string;
  readonly outletId: string;
  /** The retailer's id, which API 1.0 objects carry as `retailer_id`. */
  readonly retailerId: string;
  /** The one live refresh token; the previous one was revoked when this was issued. */
  refresh: IssuedToken;
  /** Newest access token; older ones stay valid until they expire. */
  access: IssuedToken;
}

/**
 * One product's stock at one outlet: the fields of X-Series' inventory records (Fivetran's
 * Lightspeed Retail X-Series schema, table `inventory`: product_id, outlet_id, current_amount,
 * reorder_point, reorder_amount, version).
 */
interface InventoryRecord {
  product_id: string;
  outlet_id: string;
  current_amount: number;
  reorder_point: number | null;
  reorder_amount: number | null;
  version: number;
}

/**
 * "PUT /api/2.1/products/{id}" with `{"details": {"inventory": [{"outlet_id", "current_amount",
 * "reorder_point"?, "reorder_amount"?}]}}` sets a product's count at an outlet
 * (x-series-api.lightspeedhq.com/docs/inventory_updates, "Direct update on the product").
 */
const inventoryUpdate = z.object({
  details: z.object({
    inventory: z.array(z.object({
      outlet_id: z.string().min(1),
      current_amount: z.number().int().optional(),
      reorder_point: z.number().int().optional(),
      reorder_amount: z.number().int().optional(),
    })).min(1),
  }),
});

/** UNCONFIRMED: the default and largest `page_size` of API 2.0 list endpoints. */
const DEFAULT_PAGE_SIZE = 1000;
const MAX_PAGE_SIZE = 10_000;

/** A sale's status word for each neutral stage (X-Series sale statuses). */
export const SALE_STATUS = {
  open: "SAVED",
  processing: "AWAITING_DISPATCH",
  shipped: "DISPATCHED_CLOSED",
  delivered: "CLOSED",
  cancelled: "VOIDED",
} as const;

/**
 * "2.0", or a date version ("2026-01"): Lightspeed moves from semantic versions to date versions
 * in the path, `GET /api/2026-01/products`, each supported at least 12 months
 * (x-series-api.lightspeedhq.com/docs/versioning-strategy); the sandbox serves the same lists
 * under both.
 */
const API_VERSIONS = "2\\.0|\\d{4}-\\d{2}";

/** UUID-like ids, as X-Series uses, derived from the dataset's sequence numbers. */
const saleId = (seq: number) => `0af7b240-aba4-11ef-f6d3-${seq.toString(16).padStart(12, "0")}`;
const customerId = (seq: number) => `06bf537b-c77f-11ef-e7a1-${seq.toString(16).padStart(12, "0")}`;

/** API 2.0 timestamps: RFC 3339 in UTC with a `+00:00` offset, whole seconds. */
function lightspeedTime(epochMs: number): string {
  return new Date(wholeSecond(epochMs)).toISOString().replace(".000Z", "+00:00");
}

function wholeSecond(epochMs: number): number {
  return Math.floor(epochMs / 1000) * 1000;
}

function renderSale(order: SandboxOrder): Record<string, unknown> {
  return {
    id: saleId(order.seq),
    invoice_number: order.number,
    status: SALE_STATUS[order.stage],
    customer_id: order.customerSeq === null ? null : customerId(order.customerSeq),
    total_price: order.totalCents / 100,
    total_tax: 0,
    note: "",
    sale_date: lightspeedTime(order.createdAt),
    created_at: lightspeedTime(order.createdAt),
    updated_at: lightspeedTime(order.updatedAt),
    deleted_at: null,
    version: order.version,
  };
}

/** API 1.0 timestamps: "2017-12-06 04:53:17", UTC without an offset, whole seconds. */
function v1Time(epochMs: number): string {
  return new Date(wholeSecond(epochMs)).toISOString().slice(0, 19).replace("T", " ");
}

/**
 * A customer as API 1.0 renders it, and so as a `customer.update` webhook carries it: the
 * published example (x-series-api.lightspeedhq.com "Webhooks - Example Payloads";
 * tests/fixtures/lightspeed/customer.update.json) has `retailer_id`, `customer_code`, 1.0 times
 * and amounts as text, and no `version`.
 */
function renderCustomerV1(customer: SandboxCustomer, retailerId: string): Record<string, unknown> {
  return {
    id: customerId(customer.seq),
    retailer_id: retailerId,
    customer_code: `${customer.firstName}-${customer.seq}`.toUpperCase(),
    first_name: customer.firstName,
    last_name: customer.lastName,
    email: customer.email,
    phone: customer.phone,
    mobile: "",
    balance: "0.000",
    updated_at: v1Time(customer.updatedAt),
    created_at: v1Time(customer.createdAt),
    deleted_at: customer.deleted ? v1Time(customer.updatedAt) : null,
  };
}

/**
 * A sale as API 1.0 renders it (a `sale.update` webhook): its register and lines, 1.0 times, no
 * `version`, and the sale's customer embedded (which names the retailer); a sale without a
 * customer names no retailer.
 */
function renderSaleV1(
  order: SandboxOrder,
  set: Dataset,
  retailerId: string,
  registerId: string,
): Record<string, unknown> {
  const customer = order.customerSeq === null ? undefined : set.customers.get(order.customerSeq);
  return {
    id: saleId(order.seq),
    register_id: registerId,
    customer_id: customer ? customerId(customer.seq) : "",
    ...(customer ? { customer: renderCustomerV1(customer, retailerId) } : {}),
    user_name: "admin",
    sale_date: v1Time(order.createdAt),
    created_at: v1Time(order.createdAt),
    updated_at: v1Time(order.updatedAt),
    total_price: order.totalCents / 100,
    total_tax: 0,
    status: SALE_STATUS[order.stage],
    invoice_number: order.number,
    note: "",
    register_sale_products: [],
    register_sale_payments: [],
  };
}

function renderCustomer(customer: SandboxCustomer): Record<string, unknown> {
  return {
    id: customerId(customer.seq),
    customer_code: `${customer.firstName}-${customer.seq}`.toUpperCase(),
    first_name: customer.firstName,
    last_name: customer.lastName,
    email: customer.email,
    phone: customer.phone,
    mobile: null,
    created_at: lightspeedTime(customer.createdAt),
    updated_at: lightspeedTime(customer.updatedAt),
    deleted_at: customer.deleted ? lightspeedTime(customer.updatedAt) : null,
    version: customer.version,
  };
}

/** What the adapter must store: the sale's own status word, no tracking number (X-Series has none). */
function truth(set: Dataset, stream: StreamName): TruthRecord[] {
  if (stream === "orders") {
    return [...set.orders.values()].map((o) => ({
      external_id: saleId(o.seq),
      updated_at: new Date(wholeSecond(o.updatedAt)).toISOString(),
      status: SALE_STATUS[o.stage],
      tracking_number: null,
      order_number: o.number,
    }));
  }
  return [...set.customers.values()].map((c) => ({
    external_id: customerId(c.seq),
    updated_at: new Date(wholeSecond(c.updatedAt)).toISOString(),
    status: c.deleted ? "inactive" : "active",
  }));
}

/** A non-negative integer query parameter, its default when absent, or undefined when malformed. */
function intParam(query: URLSearchParams, name: string, fallback: number): number | undefined {
  const text = query.get(name);
  if (text === null || text === "") return fallback;
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/** `config` is read on every request, so changes apply at once (idle is judged at use time). */
export function createLightspeed(
  app: AppCredentials,
  config: () => Readonly<LightspeedConfig>,
  world: SandboxWorld,
): ProviderSandbox {
  const book = new AccountBook<LightspeedAccount>((n) => `sandboxstore${n}`);
  const codes = new AuthorizationCodes();
  /** Inventory records by retailer, then `<product_id>/<outlet_id>`, as the writes left them. */
  const inventory = new Map<string, Map<string, InventoryRecord>>();
  const inventoryOf = (account: LightspeedAccount) => {
    let records = inventory.get(account.externalId);
    if (!records) inventory.set(account.externalId, records = new Map());
    return records;
  };

  const invalidRequest = (description: string) =>
    json({ error: "invalid_request", error_description: description }, 400);
  const invalidGrant = () =>
    json({
      error: "invalid_grant",
      error_description: "The refresh token is invalid, expired or revoked.",
    }, 400);
  const unauthorized = () =>
    json({
      error: "Unauthorized",
      error_description: "The access token is missing, invalid or expired.",
    }, 401);

  /** A refresh token unused for longer than the idle period is dead. */
  const idleDeadline = (token: IssuedToken) => token.issuedAt + config().refreshIdleSeconds * 1000;

  const knownClient = (form: URLSearchParams) =>
    form.get("client_id") === app.clientId && form.get("client_secret") === app.clientSecret;
  const invalidClient = () =>
    json({ error: "invalid_client", error_description: "Unknown client or bad secret." }, 401);

  const issueRefresh = (externalId: string, now: number) =>
    book.issue(externalId, "refresh", "sb_ls_rt_", now, null);
  const issueAccess = (externalId: string, now: number) =>
    book.issue(externalId, "access", "sb_ls_at_", now, config().accessTokenSeconds);

  /** "Refresh tokens rotate: the old one is revoked as soon as a new one is issued". */
  function rotate(account: LightspeedAccount, now: number): Response {
    killNow(account.refresh);
    account.refresh = issueRefresh(account.externalId, now);
    account.access = issueAccess(account.externalId, now);
    return json({
      access_token: account.access.value,
      token_type: "Bearer",
      // "expires (unix time)", on the sandbox clock.
      expires: Math.floor(account.access.expiresAt! / 1000),
      expires_in: config().accessTokenSeconds,
      refresh_token: account.refresh.value,
      domain_prefix: account.domainPrefix,
      scope: SCOPE,
    });
  }

  // "POST https://{domain_prefix}.retail.lightspeed.app/api/1.0/token, form code, client_id,
  // client_secret, grant_type=authorization_code, redirect_uri": the code once, for fresh tokens.
  function exchange(form: URLSearchParams, now: number): Response {
    if (!knownClient(form)) return invalidClient();
    const externalId = codes.redeem(
      form.get("code") ?? undefined,
      form.get("client_id") ?? undefined,
      form.get("redirect_uri") ?? undefined,
      now,
    );
    const account = externalId === undefined ? undefined : book.get(externalId);
    if (!account || account.revoked) {
      return json({
        error: "invalid_grant",
        error_description: "The authorization code is invalid, expired or was already used.",
      }, 400);
    }
    return rotate(account, now);
  }

  function refresh(form: URLSearchParams, now: number): Response {
    if (form.get("grant_type") === "authorization_code") return exchange(form, now);
    if (form.get("grant_type") !== "refresh_token") {
      return json({ error: "unsupported_grant_type" }, 400);
    }
    if (!knownClient(form)) return invalidClient();
    const hit = book.live(form.get("refresh_token") ?? undefined, "refresh", now);
    if (!hit || now >= idleDeadline(hit.token)) return invalidGrant();
    return rotate(hit.account, now);
  }

  /**
   * Charges one request to the retailer's bucket: the rate-limit headers to send, or the 429.
   * X-RateLimit-Limit / -Remaining are what X-Series is reported to send (UNCONFIRMED).
   */
  function charge(account: LightspeedAccount, now: number): Record<string, string> | Response {
    const taken = world.limits.take("lightspeed", account.externalId, 1, now);
    const headers = {
      "x-ratelimit-limit": String(world.limits.size("lightspeed").capacity),
      "x-ratelimit-remaining": String(Math.floor(taken.available)),
    };
    if (taken.ok) return headers;
    // "For the header, Vend uses an 'HTTP date' format (RFC1123)"; rounded up to whole seconds.
    const retryAt = Math.ceil((now + taken.waitMs) / 1000) * 1000;
    return json(
      { error: "Too Many Requests", message: "Rate limiting enforced" },
      429,
      { ...headers, "retry-after": new Date(retryAt).toUTCString() },
    );
  }

  /**
   * A version-paged list: records changed after `after`, oldest change first, `page_size` of
   * them; deleted ones only with `deleted=true`.
   */
  function versionedList<T extends SandboxOrder | SandboxCustomer>(
    pathname: string,
    records: (set: Dataset) => Iterable<T>,
    render: (record: T) => Record<string, unknown>,
  ): ApiEndpoint {
    return {
      method: "GET",
      pattern: new URLPattern({ pathname }),
      handle(req, _params, now) {
        const hit = book.live(bearerToken(req), "access", now);
        if (!hit) return unauthorized();
        const limit = charge(hit.account, now);
        if (limit instanceof Response) return limit;
        const query = new URL(req.url).searchParams;
        const after = intParam(query, "after", 0);
        const pageSize = intParam(query, "page_size", DEFAULT_PAGE_SIZE);
        if (after === undefined || pageSize === undefined || pageSize < 1) {
          return json({
            error: "Bad Request",
            message: "after and page_size must be non-negative integers (page_size at least 1)",
          }, 400);
        }
        const withDeleted = query.get("deleted") === "true";
        const set = world.data.get("lightspeed", hit.account.externalId);
        const page = set.changedAfter(records(set), after)
          .filter((r) => withDeleted || !("deleted" in r && r.deleted))
          .slice(0, Math.min(pageSize, MAX_PAGE_SIZE));
        const version = page.length === 0
          ? { min: null, max: null }
          : { min: page[0]!.version, max: page[page.length - 1]!.version };
        return json({ data: page.map(render), version }, 200, limit);
      },
    };
  }

  return defineSandboxProvider({
    name: "lightspeed",
    world,
    book,
    invalidGrant,
    unauthorized,

    // "POST /api/1.0/token, form-encoded refresh_token, client_id, client_secret,
    // grant_type=refresh_token (in the body, not the URL)".
    token: {
      path: "/api/1.0/token",
      async read(req) {
        const query = new URL(req.url).searchParams;
        if (CREDENTIAL_FIELDS.some((k) => query.has(k))) {
          return invalidRequest("Credentials must be sent in the form body, not in the URL.");
        }
        if (mediaType(req) !== FORM) {
          return invalidRequest(`Content-Type must be ${FORM}.`);
        }
        const form = new URLSearchParams(await req.text());
        return {
          refreshToken: form.get("refresh_token") ?? undefined,
          complete: (now) => refresh(form, now),
        };
      },
    },

    // "GET https://secure.retail.lightspeed.app/connect?response_type=code&client_id
    // &redirect_uri&state&scope": back to redirect_uri with code, domain_prefix and state.
    // "Starting 1 June 2026, all new OAuth authorization requests must include a scope parameter.
    // Requests without the scope parameter will be declined." (x-series-api.lightspeedhq.com
    // changelog, "2025-11 Upcoming Mandatory Scope Parameter").
    authorize: {
      pathname: "/connect",
      clientId: app.clientId,
      codes,
      requiredParams: ["scope"],
      params: (account, base) => ({ ...base, domain_prefix: account.domainPrefix }),
    },

    api: [
      {
        method: "GET",
        pattern: new URLPattern({ pathname: `/api/:version(${API_VERSIONS})/outlets` }),
        handle(req, _params, now) {
          const hit = book.live(bearerToken(req), "access", now);
          if (!hit) return unauthorized();
          const limit = charge(hit.account, now);
          if (limit instanceof Response) return limit;
          return json(
            {
              data: [{
                id: hit.account.outletId,
                name: "Main Outlet",
                time_zone: "Pacific/Auckland",
                deleted_at: null,
              }],
            },
            200,
            limit,
          );
        },
      },
      // "2020-03 New Retailer API": GET /api/2.0/retailer, the retailer's own record.
      {
        method: "GET",
        pattern: new URLPattern({ pathname: `/api/:version(${API_VERSIONS})/retailer` }),
        handle(req, _params, now) {
          const hit = book.live(bearerToken(req), "access", now);
          if (!hit) return unauthorized();
          const limit = charge(hit.account, now);
          if (limit instanceof Response) return limit;
          return json(
            {
              data: {
                id: hit.account.retailerId,
                name: `Sandbox store ${hit.account.domainPrefix}`,
                domain_prefix: hit.account.domainPrefix,
              },
            },
            200,
            limit,
          );
        },
      },
      // Stock writes (see inventoryUpdate). The sandbox has no product catalog: any product id is
      // taken to exist, and its inventory records are what the writes left.
      {
        method: "PUT",
        pattern: new URLPattern({ pathname: "/api/2.1/products/:id" }),
        async handle(req, params, now) {
          const hit = book.live(bearerToken(req), "access", now);
          if (!hit) return unauthorized();
          const limit = charge(hit.account, now);
          if (limit instanceof Response) return limit;
          const parsed = inventoryUpdate.safeParse(await req.json().catch(() => undefined));
          if (!parsed.success) {
            return json({ error: "Bad Request", message: z.prettifyError(parsed.error) }, 400);
          }
          const productId = params.id!;
          const records = inventoryOf(hit.account);
          for (const update of parsed.data.details.inventory) {
            const key = `${productId}/${update.outlet_id}`;
            const before = records.get(key);
            records.set(key, {
              product_id: productId,
              outlet_id: update.outlet_id,
              current_amount: update.current_amount ?? before?.current_amount ?? 0,
              reorder_point: update.reorder_point ?? before?.reorder_point ?? null,
              reorder_amount: update.reorder_amount ?? before?.reorder_amount ?? null,
              version: (before?.version ?? 0) + 1,
            });
          }
          // UNCONFIRMED: the answer's shape; the product's id is what callers read back.
          return json({ data: { id: productId } }, 200, limit);
        },
      },
      // "GET /api/2.0/products/{product_id}/inventory": the product's inventory records.
      {
        method: "GET",
        pattern: new URLPattern({ pathname: "/api/2.0/products/:id/inventory" }),
        handle(req, params, now) {
          const hit = book.live(bearerToken(req), "access", now);
          if (!hit) return unauthorized();
          const limit = charge(hit.account, now);
          if (limit instanceof Response) return limit;
          const data = [...inventoryOf(hit.account).values()]
            .filter((record) => record.product_id === params.id)
            .map((record) => ({
              id: `${record.product_id}:${record.outlet_id}`,
              ...record,
              inventory_level: record.current_amount,
            }));
          return json({ data }, 200, limit);
        },
      },
      versionedList(
        `/api/:version(${API_VERSIONS})/sales`,
        (set) => set.orders.values(),
        renderSale,
      ),
      versionedList(
        `/api/:version(${API_VERSIONS})/customers`,
        (set) => set.customers.values(),
        renderCustomer,
      ),
    ],

    streams: ["orders", "customers"],
    truth,

    // "When an event happens and triggers a webhook, we'll send a POST request … in the UTF-8
    // charset, and application/x-www-form-urlencoded encoding. The POST body will include a field
    // named payload … Other form fields (such as environment or domain_prefix) may be present but
    // are not guaranteed to be. The payload objects … are the same as those you'll receive from
    // API 1.0" (x-series-api.lightspeedhq.com/docs/webhooks). So the sandbox sends `payload` only,
    // an API 1.0 object; a receiver must find the retailer in it. Signed `X-Signature:
    // signature=<hex HMAC-SHA256 of the raw body with the client secret>,algorithm=HMAC-SHA256`
    // (UNCONFIRMED: no official page documents the signature).
    webhooks: perChange(async ({ account, change }, opts) => {
      const type = change.stream === "orders" ? "sale.update" : "customer.update";
      const set = world.data.get("lightspeed", account.externalId);
      const payload = change.stream === "orders"
        ? renderSaleV1(change.record, set, account.retailerId, account.outletId)
        : renderCustomerV1(change.record, account.retailerId);
      const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
      const signature = hex(await hmacSha256(opts.secret ?? app.clientSecret, body));
      return {
        id: `${type}:${String(payload.id)}:${change.record.version}`,
        body,
        headers: {
          "content-type": FORM,
          "x-signature": `signature=${signature},algorithm=HMAC-SHA256`,
        },
      };
    }),

    open: (externalId, now) => ({
      domainPrefix: externalId,
      outletId: crypto.randomUUID(),
      retailerId: crypto.randomUUID(),
      refresh: issueRefresh(externalId, now),
      access: issueAccess(externalId, now),
    }),
    created: (account) => ({
      credentials: { refresh_token: account.refresh.value, access_token: account.access.value },
      // An operator who wants webhooks routed without `domain_prefix` sets retailer_id.
      config: { domain_prefix: account.domainPrefix, retailer_id: account.retailerId },
    }),
    inspect: (account) =>
      describeAccount(account, account.refresh, account.access, idleDeadline(account.refresh)),
  });
}
