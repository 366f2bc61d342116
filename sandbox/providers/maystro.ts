/**
 * Maystro Delivery (as independent Maystro clients use it), played under
 * `<url>/maystro` in place of https://backend.maystro-delivery.com.
 * "Auth: Authorization: Token <api_token>, a static key from the dashboard; no refresh."
 *
 * Data: "GET /api/stores/orders/?page=N → {"list":{"count", "next", "results":[…]}} (about 20
 * per page); filters external_order_id=, display_id=; no updated-since filter". Orders come
 * newest first (by created_at), as Django REST Framework pages them: a page past the end is a
 * 404 "Invalid page.". Timestamps are Django's: microseconds and the Algiers offset (+01:00).
 *
 * As independent client code reads an order (MaystroService, code-index id 9906604906): `id` is
 * text and `instance_uuid` is "the actual Maystro order ID"; the tracking number is
 * `tracking_number || display_id`. Both fields occur here: some orders carry it in
 * `tracking_number` (no `display_id`), the others in `display_id` only, empty until the carrier
 * assigns one, so an adapter reading only one of them disagrees with the truth.
 */
import { AccountBook, type BaseAccount, describeAccount, type IssuedToken } from "../accounts.ts";
import type { Dataset, OrderStage, SandboxOrder, TruthRecord } from "../data.ts";
import { authorization, json } from "../http.ts";
import type { ProviderSandbox, SandboxWorld } from "../provider.ts";
import { randomHex } from "../tokens.ts";
import { defineSandboxProvider, perChange } from "./define.ts";

interface MaystroAccount extends BaseAccount {
  readonly apiToken: IssuedToken;
  /** No signature scheme is known: the receiver's URL carries this per-connection secret. */
  readonly webhookSecret: string;
}

/** "about 20 per page". */
const PAGE_SIZE = 20;
/** Algeria keeps UTC+1 all year. */
const ALGIERS_OFFSET_MINUTES = 60;

/** The Maystro status code for each neutral stage ("4 created, 6 in progress, 31 shipped, …"). */
export const STATUS_CODE: Readonly<Record<OrderStage, number>> = {
  open: 4,
  processing: 6,
  shipped: 31,
  delivered: 41,
  cancelled: 50,
};

/** "Status codes (as client code cites them)", by name: what an adapter stores as the status. */
const STATUS_NAME: Readonly<Record<number, string>> = {
  4: "created",
  6: "in_progress",
  31: "shipped",
  41: "delivered",
  50: "cancelled",
};

const WILAYAS = ["Alger", "Oran", "Constantine", "Blida", "Sétif", "Annaba", "Tlemcen", "Béjaïa"];

/** An order as Maystro holds it: the neutral order in Maystro's terms. */
interface MaystroOrder {
  readonly id: number;
  /** Where the tracking number is rendered: `tracking_number` (true) or `display_id`. */
  readonly inTrackingField: boolean;
  /** The tracking number, "" or null (both are seen) until the carrier assigns one. */
  readonly tracking: string | null;
  readonly externalOrderId: string;
  readonly status: number;
  readonly createdAt: number;
  readonly lastUpdate: number;
  readonly deliveredAt: number | null;
  readonly customerName: string;
  readonly customerPhone: string;
  readonly wilaya: string;
  readonly productPrice: number;
}

/**
 * Maystro's side of a dataset order. A final order (delivered or returned with a tracking
 * number, or cancelled) does not change at Maystro any more: the parcel is done. The neutral
 * dataset may still touch it (a price edit), so an order's view is frozen the first time it is
 * seen final; what the API shows and what truth() says then agree for good.
 */
class MaystroView {
  readonly #frozen = new WeakMap<Dataset, Map<number, MaystroOrder>>();

  of(set: Dataset, order: SandboxOrder): MaystroOrder {
    let frozen = this.#frozen.get(set);
    if (!frozen) this.#frozen.set(set, frozen = new Map());
    const kept = frozen.get(order.seq);
    if (kept) return kept;
    const view = toMaystro(set, order);
    if (isFinal(view)) frozen.set(order.seq, view);
    return view;
  }
}

function toMaystro(set: Dataset, order: SandboxOrder): MaystroOrder {
  const customer = order.customerSeq === null ? undefined : set.customers.get(order.customerSeq);
  const status = STATUS_CODE[order.stage];
  return {
    id: order.seq,
    inTrackingField: order.variant === "a",
    tracking: order.trackingNumber ?? (order.variant === "a" ? null : ""),
    externalOrderId: order.reference,
    status,
    createdAt: order.createdAt,
    lastUpdate: order.updatedAt,
    deliveredAt: status === 41 ? order.updatedAt : null,
    customerName: customer ? `${customer.firstName} ${customer.lastName}` : "Client comptoir",
    customerPhone: customer?.phone ?? "",
    wilaya: WILAYAS[order.seq % WILAYAS.length]!,
    productPrice: Math.round(order.totalCents / 100),
  };
}

function isFinal(o: MaystroOrder): boolean {
  return o.status === 50 || (o.status === 41 && o.tracking !== null && o.tracking !== "");
}

/**
 * Django's rendering: `2026-11-22T11:15:30.123456+01:00`. The sandbox clock has milliseconds;
 * the last three digits of the microseconds are filler (a client must truncate, not round).
 */
function djangoTime(epochMs: number, filler: number): string {
  const local = new Date(epochMs + ALGIERS_OFFSET_MINUTES * 60_000).toISOString().slice(0, 23);
  return `${local}${String(filler % 1000).padStart(3, "0")}+01:00`;
}

/** A stable UUID for an order: Maystro's `instance_uuid`. */
function instanceUuid(id: number): string {
  return `6d61792d-0000-4000-8000-${id.toString(16).padStart(12, "0")}`;
}

function render(o: MaystroOrder): Record<string, unknown> {
  const filler = (o.id * 379) % 1000;
  const tracking = o.inTrackingField
    ? { tracking_number: o.tracking, display_id: null }
    : { display_id: o.tracking };
  return {
    id: String(o.id),
    instance_uuid: instanceUuid(o.id),
    ...tracking,
    external_order_id: o.externalOrderId,
    status: o.status,
    created_at: djangoTime(o.createdAt, filler),
    last_update: djangoTime(o.lastUpdate, filler),
    delivered_at: o.deliveredAt === null ? null : djangoTime(o.deliveredAt, filler),
    customer_name: o.customerName,
    customer_phone: o.customerPhone,
    wilaya: o.wilaya,
    commune: o.wilaya,
    product_price: o.productPrice,
  };
}

/** What the adapter must store: matched on external_order_id, status by name, ms precision. */
function truthOf(o: MaystroOrder): TruthRecord {
  return {
    external_id: o.externalOrderId,
    updated_at: new Date(o.lastUpdate).toISOString(),
    status: STATUS_NAME[o.status] ?? `status_${o.status}`,
    tracking_number: o.tracking === "" ? null : o.tracking,
    order_number: o.externalOrderId,
  };
}

/** Newest first by created_at, then by id (newer orders have higher ids). */
function newestFirst(a: MaystroOrder, b: MaystroOrder): number {
  return b.createdAt - a.createdAt || b.id - a.id;
}

export function createMaystro(world: SandboxWorld): ProviderSandbox {
  const book = new AccountBook<MaystroAccount>((n) => `maystro-${n}`);
  const views = new MaystroView();

  // Django REST Framework's TokenAuthentication answers.
  const unauthorized = (detail = "Invalid token.") =>
    json({ detail }, 401, { "www-authenticate": "Token" });

  const ordersOf = (set: Dataset): MaystroOrder[] =>
    [...set.orders.values()].map((o) => views.of(set, o));

  function list(req: Request, account: MaystroAccount): Response {
    const url = new URL(req.url);
    const query = url.searchParams;
    const pageText = query.get("page") ?? "1";
    // DRF ignores a filter given as an empty value.
    const external = query.get("external_order_id") || undefined;
    const display = query.get("display_id") || undefined;
    const matches = ordersOf(world.data.get("maystro", account.externalId))
      .filter((o) => external === undefined || o.externalOrderId === external)
      .filter((o) => display === undefined || (!o.inTrackingField && o.tracking === display))
      .sort(newestFirst);
    const pages = Math.max(1, Math.ceil(matches.length / PAGE_SIZE));
    const page = /^\d+$/.test(pageText) ? Number(pageText) : 0;
    if (page < 1 || page > pages) return json({ detail: "Invalid page." }, 404);
    const link = (n: number) => {
      const next = new URL(url);
      next.searchParams.set("page", String(n));
      return next.toString();
    };
    // The documented shape: {"list": {"count", "next", "results"}}.
    return json({
      list: {
        count: matches.length,
        next: page < pages ? link(page + 1) : null,
        results: matches.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE).map(render),
      },
    });
  }

  return defineSandboxProvider({
    name: "maystro",
    world,
    book,
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
        const hit = book.live(token, "access", now);
        if (!hit) return unauthorized();
        const taken = world.limits.take("maystro", hit.account.externalId, 1, now);
        if (!taken.ok) {
          // DRF's throttling answer.
          const seconds = Math.max(1, Math.ceil(taken.waitMs / 1000));
          return json(
            { detail: `Request was throttled. Expected available in ${seconds} seconds.` },
            429,
            { "retry-after": String(seconds) },
          );
        }
        return list(req, hit.account);
      },
    }],

    streams: ["orders"],
    truth: (set, stream) => stream === "orders" ? ordersOf(set).map(truthOf) : [],

    // "an `OrderStatusChanged` event with `external_order_id`, `status`, `display_id_order`",
    // nested under `payload` (MaystroService.processWebhook), or that JSON base64-encoded in a
    // push envelope's `message.data` (moh4git/MaystroWebhook), or flat; unsigned. The secret
    // lives in the URL the receiver registered (the caller's `url`).
    webhooks: perChange(({ account, change }, opts) => {
      if (change.stream !== "orders") return undefined;
      const view = toMaystro(world.data.get("maystro", account.externalId), change.record);
      const fields = {
        external_order_id: view.externalOrderId,
        status: view.status,
        display_id_order: view.tracking,
      };
      const event = { event: "OrderStatusChanged", payload: fields };
      const body = opts.format === "flat"
        ? { event: "OrderStatusChanged", ...fields }
        : opts.format === "pubsub"
        ? {
          message: {
            data: btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(event)))),
            messageId: randomHex(8),
            publishTime: new Date(view.lastUpdate).toISOString(),
          },
          subscription: "projects/maystro/subscriptions/store-webhooks",
        }
        : event;
      return {
        id: `${view.externalOrderId}:${view.status}`,
        body: JSON.stringify(body),
        headers: { "content-type": "application/json" },
      };
    }),

    open: (externalId, now) => ({
      apiToken: book.issue(externalId, "access", "sb_maystro_", now, null),
      webhookSecret: randomHex(24),
    }),
    created: (account) => ({
      credentials: { api_token: account.apiToken.value, webhook_secret: account.webhookSecret },
      config: {},
    }),
    inspect: (account) => describeAccount(account, null, account.apiToken),
  });
}
