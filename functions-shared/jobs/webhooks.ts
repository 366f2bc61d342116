// The webhooks function: `POST /webhooks/<provider>[/…]`. In a fixed order (ARCHITECTURE rule 7,
// STYLE "standard-webhooks"): POST only; the raw body, at most 1 MiB (413); the provider's
// signature on those bytes, in constant time (401 and nothing stored when it is missing, wrong,
// or no secret is configured); only then the body is parsed. Each event is recorded once in
// tether.webhook_events by its provider id; a repeat is acknowledged and not processed again.
// Processing goes through the sync's newer-wins upsert (or re-fetches what a notification names),
// so an older event arriving late changes nothing. A processing failure keeps the event as
// `failed`; `POST /webhooks/_sweep` (caller-authenticated, called by process_webhook_events())
// retries it with backoff.
//
// How each delivery is verified and routed to its connection:
// - shopify    /webhooks/shopify: X-Shopify-Hmac-Sha256 = base64 HMAC of the body with
//   SHOPIFY_CLIENT_SECRET or SHOPIFY_PREVIOUS_CLIENT_SECRET; X-Shopify-Shop-Domain → the
//   connection whose config.shop (or external id) is that domain; id X-Shopify-Webhook-Id.
// - shiphero   /webhooks/shiphero/<connection_id>: X-ShipHero-HMAC-SHA256 = base64 HMAC with the
//   connection's `webhook_secret` (the shared_signature_secret); id X-Shiphero-Message-ID.
// - quickbooks /webhooks/quickbooks: intuit-signature = base64 HMAC with
//   QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN; each event's realm (realmId / intuitaccountid) → the
//   connection with that external id; id = the CloudEvents id, or a hash of the entity change.
// - lightspeed /webhooks/lightspeed: X-Signature `signature=…,algorithm=HMAC-SHA256`, HMAC with
//   LIGHTSPEED_CLIENT_SECRET (hex by default); the form's `domain_prefix` → the connection with
//   that external id; id = SHA-256 of the body (Lightspeed sends none).
// - maystro    /webhooks/maystro/<connection_id>/<secret>: the secret compared in constant time
//   with the connection's `webhook_secret`; id = SHA-256 of the body; processing re-fetches.
import { z } from "zod";
import { type ConnectionRow, getConnection } from "../db/connections.ts";
import { readCredentials } from "../db/credentials.ts";
import { upsertRecords } from "../db/records.ts";
import {
  claimFailed,
  markFailed,
  markProcessed,
  recordEvent,
  type WebhookEventRow,
} from "../db/webhook_events.ts";
import { Deadline, type Deps } from "../deps.ts";
import { coerceError } from "../errors.ts";
import { authenticated, jsonError } from "../http/serve.ts";
import { fetchByExternalId } from "../providers/maystro/adapter.ts";
import { fetchEntities } from "../providers/quickbooks/adapter.ts";
import type { Entity } from "../providers/quickbooks/streams.ts";
import {
  customerSchema as lightspeedCustomer,
  saleSchema,
} from "../providers/lightspeed/streams.ts";
import {
  toCustomer as lightspeedToCustomer,
  toOrder as lightspeedToOrder,
} from "../providers/lightspeed/streams.ts";
import type { CustomerRecord, OrderRecord, ProviderName } from "../providers/types.ts";
import {
  MAX_BODY_BYTES,
  PayloadTooLarge,
  readRawBody,
  secretsEqual,
  sha256Hex,
  verifyHmac,
  WebhookRejected,
} from "../webhooks/verify.ts";
import { adapterContext, connectionRef, withAccessToken } from "./tokens.ts";

/** One event of a verified delivery, before it is recorded. */
interface IncomingEvent {
  eventId: string;
  topic: string;
  connection: ConnectionRow | undefined;
  /** Everything processing needs, kept so the sweep can process it again. */
  payload: Record<string, unknown>;
}

const SHIPHERO_ACK = { code: "200", Status: "Success" };
const uuid = z.uuid();

// ---------------------------------------------------------------------------------------------
// HTTP

export function createWebhookHandler(deps: Deps): (req: Request) => Promise<Response> {
  const sweep = authenticated(deps, async (req) => {
    const body = await req.json().catch(() => ({}));
    const force = typeof body === "object" && body !== null &&
      (body as { force?: unknown }).force === true;
    try {
      return Response.json(await sweepWebhookEvents(deps, { force }));
    } catch (err) {
      return jsonError("job_failed", coerceError(err).message);
    }
  });
  return async (req) => {
    if (req.method !== "POST") return jsonError("method_not_allowed", "use POST");
    const parts = new URL(req.url).pathname.split("/").filter((p) => p !== "");
    // The gateway forwards /webhooks/<provider>/…; tolerate a bare /<provider>/… as well.
    if (parts[0] === "webhooks") parts.shift();
    const [head, ...rest] = parts;
    if (head === "_sweep") return await sweep(req);
    if (!isReceiver(head)) {
      return jsonError(
        "not_found",
        "POST /webhooks/<provider>: shopify, shiphero, quickbooks, lightspeed, maystro",
      );
    }
    let raw: Uint8Array;
    try {
      raw = await readRawBody(req, MAX_BODY_BYTES);
    } catch (err) {
      if (err instanceof PayloadTooLarge) return jsonError("payload_too_large", err.message);
      throw err;
    }
    let events: IncomingEvent[];
    try {
      events = await RECEIVERS[head](deps, req.headers, raw, rest);
    } catch (err) {
      if (err instanceof WebhookRejected) {
        deps.log.warn("webhook rejected", { provider: head, reason: err.message });
        return jsonError("unauthorized", "the webhook could not be verified");
      }
      if (err instanceof BadPayload) return jsonError("invalid_body", err.message);
      const error = coerceError(err);
      deps.log.error("webhook receive failed", { provider: head, error: error.message });
      return jsonError("receive_failed", "the webhook could not be recorded; retry");
    }
    let processed = 0;
    let duplicates = 0;
    let ignored = 0;
    let failed = 0;
    for (const event of events) {
      const active = event.connection && event.connection.status !== "disabled";
      const row = await recordEvent(deps.db, {
        provider: head,
        event_id: event.eventId,
        connection_id: event.connection?.id ?? null,
        topic: event.topic,
        status: active ? "received" : "ignored",
        payload: event.payload,
      });
      if (!row) duplicates++;
      else if (!active) ignored++;
      else if (await processRow(deps, row)) processed++;
      else failed++;
    }
    if (head === "shiphero") return Response.json(SHIPHERO_ACK);
    return Response.json({ received: events.length, processed, duplicates, ignored, failed });
  };
}

class BadPayload extends Error {
  override readonly name = "BadPayload";
}

type Receiver = (
  deps: Deps,
  headers: Headers,
  raw: Uint8Array,
  rest: string[],
) => Promise<IncomingEvent[]>;

function isReceiver(name: string | undefined): name is ProviderName {
  return name !== undefined && Object.hasOwn(RECEIVERS, name);
}

function parseJson(raw: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(raw));
  } catch {
    throw new BadPayload("the body is not JSON");
  }
}

function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BadPayload(`${what}: ${issue?.path.join(".") || "body"}: ${issue?.message}`);
  }
  return parsed.data;
}

async function connectionByExternalId(
  deps: Deps,
  provider: ProviderName,
  externalId: string,
): Promise<ConnectionRow | undefined> {
  const [row] = await deps.db<ConnectionRow[]>`
    select * from tether.connections where provider = ${provider} and external_id = ${externalId}`;
  return row;
}

/** A connection named in the path, with its per-connection webhook secret; rejected otherwise. */
async function pathConnection(
  deps: Deps,
  id: string | undefined,
  what: string,
): Promise<{ connection: ConnectionRow; secret: string }> {
  if (!id || !uuid.safeParse(id).success) {
    throw new WebhookRejected(`${what}: no connection in the URL`);
  }
  const connection = await getConnection(deps.db, id);
  if (!connection) throw new WebhookRejected(`${what}: unknown connection`);
  const { values } = await readCredentials(deps.db, deps.vault, connection.id);
  const secret = values.webhook_secret;
  if (!secret) {
    deps.log.error("webhook secret is not configured", {
      provider: connection.provider,
      connection_id: id,
    });
    throw new WebhookRejected(`${what}: no webhook secret is configured for the connection`);
  }
  return { connection, secret };
}

function misconfigured(deps: Deps, provider: string, variable: string, secrets: readonly string[]) {
  if (secrets.length === 0) {
    deps.log.error("webhook secret is not configured", { provider, variable });
  }
}

// ---------------------------------------------------------------------------------------------
// Receivers: verify, then parse, then name the events

const shopifyHeaders = z.object({
  topic: z.string().min(1),
  shop: z.string().min(1),
});

const RECEIVERS: Record<ProviderName, Receiver> = {
  async shopify(deps, headers, raw) {
    const secrets = deps.env.webhooks.shopify;
    misconfigured(deps, "shopify", "SHOPIFY_CLIENT_SECRET", secrets);
    await verifyHmac(raw, headers.get("x-shopify-hmac-sha256"), secrets, "base64", "shopify");
    const body = parseJson(raw);
    const h = parseWith(shopifyHeaders, {
      topic: headers.get("x-shopify-topic") ?? undefined,
      shop: headers.get("x-shopify-shop-domain") ?? undefined,
    }, "shopify headers");
    const [connection] = await deps.db<ConnectionRow[]>`
      select * from tether.connections
       where provider = 'shopify' and (config ->> 'shop' = ${h.shop} or external_id = ${h.shop})
       limit 1`;
    return [{
      eventId: headers.get("x-shopify-webhook-id") ?? await sha256Hex(raw),
      topic: h.topic,
      connection,
      payload: { body, triggered_at: headers.get("x-shopify-triggered-at") },
    }];
  },

  async shiphero(deps, headers, raw, rest) {
    const { connection, secret } = await pathConnection(deps, rest[0], "shiphero");
    await verifyHmac(raw, headers.get("x-shiphero-hmac-sha256"), [secret], "base64", "shiphero");
    const body = parseWith(
      z.looseObject({ webhook_type: z.string().min(1) }),
      parseJson(raw),
      "shiphero",
    );
    return [{
      eventId: headers.get("x-shiphero-message-id") ?? await sha256Hex(raw),
      topic: body.webhook_type,
      connection,
      payload: { body },
    }];
  },

  async quickbooks(deps, headers, raw) {
    const secrets = deps.env.webhooks.quickbooks;
    misconfigured(deps, "quickbooks", "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN", secrets);
    await verifyHmac(raw, headers.get("intuit-signature"), secrets, "base64", "quickbooks");
    const body = parseWith(quickbooksBody, parseJson(raw), "quickbooks");
    const named: { eventId: string; realm: string; entity: string; id: string; topic: string }[] =
      [];
    if (Array.isArray(body)) {
      for (const e of body) {
        const entity = /^qbo\.([a-z]+)\./.exec(e.type)?.[1] ?? "";
        named.push({
          eventId: e.id,
          realm: e.intuitaccountid,
          entity,
          id: e.intuitentityid,
          topic: e.type,
        });
      }
    } else {
      for (const n of body.eventNotifications) {
        for (const e of n.dataChangeEvent.entities) {
          named.push({
            // No event id in the legacy body: the change itself, hashed.
            eventId: `legacy:${await sha256Hex(
              JSON.stringify([n.realmId, e.name, e.id, e.operation, e.lastUpdated ?? null]),
            )}`,
            realm: n.realmId,
            entity: e.name.toLowerCase(),
            id: e.id,
            topic: `${e.name}.${e.operation}`,
          });
        }
      }
    }
    const connections = new Map<string, ConnectionRow | undefined>();
    const events: IncomingEvent[] = [];
    for (const n of named) {
      if (!connections.has(n.realm)) {
        connections.set(n.realm, await connectionByExternalId(deps, "quickbooks", n.realm));
      }
      events.push({
        eventId: n.eventId,
        topic: n.topic,
        connection: connections.get(n.realm),
        payload: { realm_id: n.realm, entity: n.entity, id: n.id },
      });
    }
    return events;
  },

  async lightspeed(deps, headers, raw) {
    const secrets = deps.env.webhooks.lightspeed;
    misconfigured(deps, "lightspeed", "LIGHTSPEED_CLIENT_SECRET", secrets);
    const header = headers.get("x-signature");
    const signature = header === null
      ? null
      : /(?:^|,)\s*signature=([^,]+)/.exec(header)?.[1] ?? "";
    await verifyHmac(raw, signature, secrets, deps.env.webhooks.lightspeedEncoding, "lightspeed");
    const form = new URLSearchParams(new TextDecoder().decode(raw));
    const type = form.get("type");
    const domainPrefix = form.get("domain_prefix");
    if (!type || !domainPrefix) {
      throw new BadPayload("lightspeed: type and domain_prefix are required");
    }
    let payload: unknown;
    try {
      payload = JSON.parse(form.get("payload") ?? "");
    } catch {
      throw new BadPayload("lightspeed: payload must be JSON");
    }
    return [{
      eventId: await sha256Hex(raw),
      topic: type,
      connection: await connectionByExternalId(deps, "lightspeed", domainPrefix),
      payload: { body: payload, domain_prefix: domainPrefix },
    }];
  },

  async maystro(deps, _headers, raw, rest) {
    const { connection, secret } = await pathConnection(deps, rest[0], "maystro");
    if (!(await secretsEqual(rest[1] ?? "", secret))) {
      throw new WebhookRejected("maystro: the secret in the URL does not match");
    }
    const body = parseWith(maystroBody, parseJson(raw), "maystro");
    return [{
      eventId: await sha256Hex(raw),
      topic: body.event ?? "OrderStatusChanged",
      connection,
      payload: { body },
    }];
  },
};

const quickbooksBody = z.union([
  z.array(z.looseObject({
    id: z.string().min(1),
    type: z.string().min(1),
    time: z.string().optional(),
    intuitentityid: z.string().min(1),
    intuitaccountid: z.string().min(1),
  })),
  z.looseObject({
    eventNotifications: z.array(z.looseObject({
      realmId: z.string().min(1),
      dataChangeEvent: z.looseObject({
        entities: z.array(z.looseObject({
          name: z.string().min(1),
          id: z.string().min(1),
          operation: z.string().min(1),
          lastUpdated: z.string().optional(),
        })),
      }),
    })),
  }),
]);

const maystroBody = z.looseObject({
  event: z.string().optional(),
  external_order_id: z.string().min(1),
});

// ---------------------------------------------------------------------------------------------
// Processing (from the stored row only, so the sweep does exactly what the receiver did)

/** Processes one recorded event; true when processed, false when it failed (kept for the sweep). */
async function processRow(deps: Deps, row: WebhookEventRow): Promise<boolean> {
  try {
    await processEvent(deps, row);
    await markProcessed(deps.db, row.id);
    return true;
  } catch (err) {
    const error = coerceError(err);
    deps.log.warn("webhook processing failed", {
      provider: row.provider,
      event_id: row.event_id,
      error: error.message,
    });
    await markFailed(deps.db, row.id, error.message);
    return false;
  }
}

const shopifyOrder = z.looseObject({
  admin_graphql_api_id: z.string().min(1),
  name: z.string().nullish(),
  created_at: z.string().nullish(),
  updated_at: z.string().min(1),
  cancelled_at: z.string().nullish(),
  fulfillment_status: z.string().nullish(),
  total_price: z.string().nullish(),
  currency: z.string().nullish(),
  customer: z.looseObject({ admin_graphql_api_id: z.string().optional() }).nullish(),
  fulfillments: z.array(z.looseObject({
    tracking_number: z.string().nullish(),
    tracking_numbers: z.array(z.string()).nullish(),
  })).nullish(),
});

const shopifyCustomer = z.looseObject({
  admin_graphql_api_id: z.string().min(1),
  email: z.string().nullish(),
  first_name: z.string().nullish(),
  last_name: z.string().nullish(),
  phone: z.string().nullish(),
  updated_at: z.string().nullish(),
});

/** REST fulfillment_status in the words the GraphQL sync stores (displayFulfillmentStatus). */
function displayFulfillment(status: string | null | undefined): string {
  if (!status) return "UNFULFILLED";
  return status === "partial" ? "PARTIALLY_FULFILLED" : status.toUpperCase();
}

function iso(text: string): string {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new Error(`not a timestamp: ${text}`);
  return new Date(ms).toISOString();
}

function shopifyOrderRecord(o: z.output<typeof shopifyOrder>): OrderRecord {
  const fulfillment = displayFulfillment(o.fulfillment_status);
  let tracking: string | null = null;
  for (const f of [...(o.fulfillments ?? [])].reverse()) {
    tracking = f.tracking_number ?? f.tracking_numbers?.[0] ?? null;
    if (tracking) break;
  }
  return {
    external_id: o.admin_graphql_api_id,
    order_number: o.name ?? null,
    status: o.cancelled_at ? "CANCELLED" : fulfillment,
    fulfillment_status: fulfillment,
    tracking_number: tracking,
    total_price: o.total_price ?? null,
    currency: o.currency ?? null,
    customer_external_id: o.customer?.admin_graphql_api_id ?? null,
    ordered_at: o.created_at ? iso(o.created_at) : null,
    remote_updated_at: iso(o.updated_at),
    raw: o,
  };
}

async function processEvent(deps: Deps, row: WebhookEventRow): Promise<void> {
  const connectionId = row.connection_id;
  if (!connectionId) throw new Error("the event has no connection");
  const payload = row.payload as Record<string, unknown>;
  const topic = row.topic ?? "";
  switch (row.provider) {
    case "shopify": {
      const body = payload.body;
      if (topic === "orders/create" || topic === "orders/updated") {
        const order = parseWith(shopifyOrder, body, "shopify order");
        await upsertRecords(deps.db, "orders", connectionId, [shopifyOrderRecord(order)]);
      } else if (topic === "customers/create" || topic === "customers/update") {
        const c = parseWith(shopifyCustomer, body, "shopify customer");
        if (!c.updated_at) throw new Error("shopify customer: updated_at is missing");
        await upsertRecords(deps.db, "customers", connectionId, [
          {
            external_id: c.admin_graphql_api_id,
            email: c.email ?? null,
            first_name: c.first_name ?? null,
            last_name: c.last_name ?? null,
            phone: c.phone ?? null,
            status: "active",
            remote_updated_at: iso(c.updated_at),
            raw: c,
          } satisfies CustomerRecord,
        ]);
      } else if (topic === "customers/delete") {
        const c = parseWith(shopifyCustomer, body, "shopify customer");
        const at = payload.triggered_at;
        if (typeof at !== "string") {
          throw new Error("customers/delete: X-Shopify-Triggered-At is missing");
        }
        // The deletion's own time: later than any update before it.
        await upsertRecords(deps.db, "customers", connectionId, [{
          external_id: c.admin_graphql_api_id,
          email: null,
          first_name: null,
          last_name: null,
          phone: null,
          status: "inactive",
          remote_updated_at: iso(at),
          raw: c,
        }]);
      }
      // Other topics are recorded and processed as nothing to do.
      return;
    }
    case "shiphero": {
      const body = payload.body as Record<string, unknown>;
      if (topic === "Shipment Update") {
        const f = parseWith(
          z.looseObject({
            fulfillment: z.looseObject({
              order_uuid: z.string().min(1),
              order_number: z.union([z.string(), z.number()]).nullish(),
              tracking_number: z.string().nullish(),
            }),
          }),
          body,
          "shiphero Shipment Update",
        ).fulfillment;
        await deps.db`select tether.apply_order_facts(${connectionId}, ${f.order_uuid},
          ${f.order_number == null ? null : String(f.order_number)}, ${f.tracking_number ?? null},
          'fulfilled', ${deps.db.json(body as never)})`;
      } else if (topic === "Order Canceled") {
        const o = parseWith(
          z.looseObject({
            order_uuid: z.string().min(1),
            order_number: z.union([z.string(), z.number()]).nullish(),
          }),
          body,
          "shiphero Order Canceled",
        );
        await deps.db`select tether.apply_order_facts(${connectionId}, ${o.order_uuid},
          ${o.order_number == null ? null : String(o.order_number)}, ${null},
          'canceled', ${deps.db.json(body as never)})`;
      }
      return;
    }
    case "quickbooks": {
      const entity = QB_ENTITIES[String(payload.entity)];
      if (!entity) return; // an entity Tether does not store
      const id = String(payload.id);
      const records = await withAccessToken(
        deps,
        connectionId,
        (creds, conn) =>
          fetchEntities(adapterContext(deps), connectionRef(conn), creds, entity, [id]),
      );
      if (entity === "Customer") {
        await upsertRecords(deps.db, "customers", connectionId, records as CustomerRecord[]);
      } else {
        await upsertRecords(deps.db, "orders", connectionId, records as OrderRecord[]);
      }
      return;
    }
    case "lightspeed": {
      if (topic === "sale.update") {
        const sale = parseWith(saleSchema, payload.body, "lightspeed sale");
        await upsertRecords(deps.db, "orders", connectionId, [lightspeedToOrder(sale)]);
      } else if (topic === "customer.update") {
        const c = parseWith(lightspeedCustomer, payload.body, "lightspeed customer");
        await upsertRecords(deps.db, "customers", connectionId, [lightspeedToCustomer(c)]);
      }
      return;
    }
    case "maystro": {
      const body = parseWith(maystroBody, payload.body, "maystro");
      const records = await withAccessToken(
        deps,
        connectionId,
        (creds, conn) =>
          fetchByExternalId(
            adapterContext(deps),
            connectionRef(conn),
            creds,
            body.external_order_id,
          ),
      );
      await upsertRecords(deps.db, "orders", connectionId, records);
      return;
    }
    default:
      throw new Error(`unknown provider ${row.provider}`);
  }
}

const QB_ENTITIES: Record<string, Entity> = {
  invoice: "Invoice",
  salesreceipt: "SalesReceipt",
  customer: "Customer",
};

// ---------------------------------------------------------------------------------------------
// The sweep

export interface SweepResult {
  claimed: number;
  processed: number;
  failed: number;
}

/** Processes failed events whose retry time has come (all failed ones with `force`). */
export async function sweepWebhookEvents(
  deps: Deps,
  opts: { force?: boolean; limit?: number } = {},
): Promise<SweepResult> {
  const deadline = new Deadline(deps.clock, deps.env.timeBudgetMs);
  const result: SweepResult = { claimed: 0, processed: 0, failed: 0 };
  while (!deadline.passed) {
    const rows = await claimFailed(deps.db, {
      limit: opts.limit ?? 50,
      leaseSeconds: 300,
      force: opts.force ?? false,
    });
    if (rows.length === 0) break;
    result.claimed += rows.length;
    for (const row of rows) {
      if (await processRow(deps, row)) result.processed++;
      else result.failed++;
    }
    // Forced: one pass, so an event that fails again is not retried in a loop.
    if (opts.force) break;
  }
  return result;
}
