// Shopify webhooks, /webhooks/shopify. Two deliveries carry the same contract under different
// header names (@shopify/shopify-api 13.1.0 `lib/types.mjs`: `ShopifyHeader` and
// `ShopifyEventsHeader`; `lib/webhooks/validate.mjs` tells them apart by which HMAC header is
// present): classic webhooks `X-Shopify-Hmac-Sha256`, `X-Shopify-Topic`, `X-Shopify-Shop-Domain`,
// `X-Shopify-Webhook-Id`, `X-Shopify-Triggered-At`, `X-Shopify-Event-Id`; Shopify Events
// `shopify-hmac-sha256`, `shopify-topic`, `shopify-shop-domain`, `shopify-webhook-id`,
// `shopify-triggered-at`, `shopify-event-id`. The HMAC is base64 of HMAC-SHA256 of the raw body
// with SHOPIFY_CLIENT_SECRET or SHOPIFY_PREVIOUS_CLIENT_SECRET.
//
// Shopify signs the body only, so the headers may route and label a delivery, never decide what
// is written (issue #12, "Webhooks trust only what is signed"):
// - the shop domain finds the connection (a forged one finds nothing it can write: the body's
//   HMAC is the app's, and the body's records are that shop's);
// - the topic must agree with the body: an order topic needs an Order GID, a customer topic a
//   Customer GID, customers/delete a body without the live customer's timestamps (Shopify sends
//   little more than the ids), customers/create|update a body with `updated_at`; else 400;
// - record times come from the body (`updated_at`), never later than the receipt; a deletion,
//   whose body has no time, takes the receipt time; X-Shopify-Triggered-At is kept as a label;
// - the event id is the SHA-256 of the signed body (with the topic): a genuine delivery replayed
//   under a fresh X-Shopify-Webhook-Id is the same event and is not processed again.
import { z } from "zod";
import type { CustomerRecord, OrderRecord, ProviderWebhooks, WebhookHeaders } from "../types.ts";
import {
  BadPayload,
  header,
  notAfter,
  parseJson,
  parsePayload,
  sha256Hex,
  verifyHmac,
} from "../webhook.ts";
import { shopifyStatuses, statusFields } from "../order_status.ts";
import { displayFulfillmentOfRest } from "./streams.ts";

/** The header names of one delivery type, lower-case as they arrive. */
interface HeaderNames {
  hmac: string;
  topic: string;
  shop: string;
  webhookId: string;
  eventId: string;
  triggeredAt: string;
}

export const CLASSIC_HEADERS: HeaderNames = {
  hmac: "x-shopify-hmac-sha256",
  topic: "x-shopify-topic",
  shop: "x-shopify-shop-domain",
  webhookId: "x-shopify-webhook-id",
  eventId: "x-shopify-event-id",
  triggeredAt: "x-shopify-triggered-at",
};

export const EVENTS_HEADERS: HeaderNames = {
  hmac: "shopify-hmac-sha256",
  topic: "shopify-topic",
  shop: "shopify-shop-domain",
  webhookId: "shopify-webhook-id",
  eventId: "shopify-event-id",
  triggeredAt: "shopify-triggered-at",
};

/** As the library decides: an Events HMAC header makes it an Events delivery. */
function headerNamesOf(headers: WebhookHeaders): HeaderNames {
  return header(headers, EVENTS_HEADERS.hmac) !== null ? EVENTS_HEADERS : CLASSIC_HEADERS;
}

/** A topic in one form whatever its spelling: "orders/create", "ORDERS_CREATE" → "ORDERS_CREATE". */
export function topicKey(topic: string): string {
  return topic.toUpperCase().replace(/[/.]/g, "_");
}

const shopifyHeaders = z.object({ topic: z.string().min(1), shop: z.string().min(1) });

const gidOf = (type: string) =>
  z.string().regex(new RegExp(`^gid://shopify/${type}/\\d+$`), `expected a ${type} GID`);

const shopifyOrder = z.looseObject({
  admin_graphql_api_id: gidOf("Order"),
  name: z.string().nullish(),
  created_at: z.string().nullish(),
  updated_at: z.string().min(1),
  cancelled_at: z.string().nullish(),
  fulfillment_status: z.string().nullish(),
  financial_status: z.string().nullish(),
  total_price: z.string().nullish(),
  currency: z.string().nullish(),
  customer: z.looseObject({ admin_graphql_api_id: z.string().optional() }).nullish(),
  fulfillments: z.array(z.looseObject({
    tracking_number: z.string().nullish(),
    tracking_numbers: z.array(z.string()).nullish(),
  })).nullish(),
});

const shopifyCustomer = z.looseObject({
  admin_graphql_api_id: gidOf("Customer"),
  email: z.string().nullish(),
  first_name: z.string().nullish(),
  last_name: z.string().nullish(),
  phone: z.string().nullish(),
  updated_at: z.string().min(1, "updated_at is missing"),
});

/**
 * customers/delete: the customer's ids and little else. A body carrying the live customer's
 * timestamps is a customers/create|update body under a forged topic.
 */
const deletedCustomer = z.looseObject({
  admin_graphql_api_id: gidOf("Customer"),
  updated_at: z.undefined({ error: "a customers/delete body has no updated_at" }).optional(),
  created_at: z.undefined({ error: "a customers/delete body has no created_at" }).optional(),
});

/** What each topic Tether processes expects of its body (the rest are recorded, not processed). */
const BODY_OF_TOPIC: Readonly<Record<string, z.ZodType>> = {
  ORDERS_CREATE: shopifyOrder,
  ORDERS_UPDATED: shopifyOrder,
  CUSTOMERS_CREATE: shopifyCustomer,
  CUSTOMERS_UPDATE: shopifyCustomer,
  CUSTOMERS_DELETE: deletedCustomer,
};

function orderRecord(o: z.output<typeof shopifyOrder>, receivedAt: Date): OrderRecord {
  const fulfillment = displayFulfillmentOfRest(o.fulfillment_status);
  let tracking: string | null = null;
  for (const f of [...(o.fulfillments ?? [])].reverse()) {
    tracking = f.tracking_number ?? f.tracking_numbers?.[0] ?? null;
    if (tracking) break;
  }
  return {
    external_id: o.admin_graphql_api_id,
    order_number: o.name ?? null,
    status: o.cancelled_at ? "CANCELLED" : fulfillment,
    provider_fulfillment_status: fulfillment,
    // REST's financial_status words are the GraphQL display words in lower case.
    ...statusFields(shopifyStatuses(o.financial_status?.toUpperCase() ?? null, fulfillment), {
      canceledAt: o.cancelled_at ? notAfter(o.cancelled_at, receivedAt) : null,
      updatedAt: notAfter(o.updated_at, receivedAt),
    }),
    tracking_number: tracking,
    total_price: o.total_price ?? null,
    currency: o.currency ?? null,
    customer_external_id: o.customer?.admin_graphql_api_id ?? null,
    ordered_at: o.created_at ? notAfter(o.created_at, receivedAt) : null,
    remote_updated_at: notAfter(o.updated_at, receivedAt),
    raw: o,
  };
}

export const shopifyWebhooks: ProviderWebhooks = {
  async receive(sink, { headers, raw }) {
    const secrets = sink.secrets.shopify;
    if (secrets.length === 0) sink.misconfigured({ variable: "SHOPIFY_CLIENT_SECRET" });
    const names = headerNamesOf(headers);
    await verifyHmac(raw, header(headers, names.hmac), secrets, "base64", "shopify");
    const body = parseJson(raw);
    const h = parsePayload(shopifyHeaders, {
      topic: header(headers, names.topic) ?? undefined,
      shop: header(headers, names.shop) ?? undefined,
    }, `shopify headers (${names.topic}, ${names.shop})`);
    // The topic is unsigned: a body that is not what it names is refused before it is recorded.
    const schema = BODY_OF_TOPIC[topicKey(h.topic)];
    if (schema !== undefined) parsePayload(schema, body, `shopify ${h.topic} body`);
    return [{
      eventId: `${topicKey(h.topic)}:${await sha256Hex(raw)}`,
      topic: h.topic,
      connection: await sink.connectionByConfigOrExternalId("shop", h.shop),
      // Labels only: nothing below decides what is written.
      payload: {
        body,
        webhook_id: header(headers, names.webhookId),
        event_id: header(headers, names.eventId),
        triggered_at: header(headers, names.triggeredAt),
      },
    }];
  },

  async process(sink, { topic, payload, receivedAt }) {
    const body = payload.body;
    const key = topicKey(topic);
    const schema = BODY_OF_TOPIC[key];
    if (schema === undefined) return; // Other topics are recorded and processed as nothing to do.
    if (key === "ORDERS_CREATE" || key === "ORDERS_UPDATED") {
      const order = parsePayload(shopifyOrder, body, "shopify order");
      await sink.upsert("orders", [orderRecord(order, receivedAt)]);
    } else if (key === "CUSTOMERS_CREATE" || key === "CUSTOMERS_UPDATE") {
      const c = parsePayload(shopifyCustomer, body, "shopify customer");
      await sink.upsert("customers", [
        {
          external_id: c.admin_graphql_api_id,
          email: c.email ?? null,
          first_name: c.first_name ?? null,
          last_name: c.last_name ?? null,
          phone: c.phone ?? null,
          status: "active",
          remote_updated_at: notAfter(c.updated_at, receivedAt),
          raw: c,
        } satisfies CustomerRecord,
      ]);
    } else if (key === "CUSTOMERS_DELETE") {
      const c = parsePayload(deletedCustomer, body, "shopify customers/delete body");
      // The body carries no time; the deletion happened by the time it was received.
      await sink.upsert("customers", [{
        external_id: c.admin_graphql_api_id,
        email: null,
        first_name: null,
        last_name: null,
        phone: null,
        status: "inactive",
        remote_updated_at: receivedAt.toISOString(),
        raw: c,
      }]);
    } else {
      throw new BadPayload(`shopify ${topic}: no processing for this topic`);
    }
  },
};
