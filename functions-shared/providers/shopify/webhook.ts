// Shopify webhooks, /webhooks/shopify: X-Shopify-Hmac-Sha256 = base64 HMAC of the body with
// SHOPIFY_CLIENT_SECRET or SHOPIFY_PREVIOUS_CLIENT_SECRET; X-Shopify-Shop-Domain → the connection
// whose config.shop (or external id) is that domain; id X-Shopify-Webhook-Id.
import { z } from "zod";
import type { CustomerRecord, OrderRecord, ProviderWebhooks } from "../types.ts";
import { header, iso, parseJson, parseWith, sha256Hex, verifyHmac } from "../webhook.ts";

const shopifyHeaders = z.object({ topic: z.string().min(1), shop: z.string().min(1) });

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

function orderRecord(o: z.output<typeof shopifyOrder>): OrderRecord {
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

export const shopifyWebhooks: ProviderWebhooks = {
  async receive(sink, { headers, raw }) {
    const secrets = sink.secrets.shopify;
    if (secrets.length === 0) sink.misconfigured({ variable: "SHOPIFY_CLIENT_SECRET" });
    await verifyHmac(raw, header(headers, "x-shopify-hmac-sha256"), secrets, "base64", "shopify");
    const body = parseJson(raw);
    const h = parseWith(shopifyHeaders, {
      topic: header(headers, "x-shopify-topic") ?? undefined,
      shop: header(headers, "x-shopify-shop-domain") ?? undefined,
    }, "shopify headers");
    return [{
      eventId: header(headers, "x-shopify-webhook-id") ?? await sha256Hex(raw),
      topic: h.topic,
      connection: await sink.connectionByConfigOrExternalId("shop", h.shop),
      payload: { body, triggered_at: header(headers, "x-shopify-triggered-at") },
    }];
  },

  async process(sink, { topic, payload }) {
    const body = payload.body;
    if (topic === "orders/create" || topic === "orders/updated") {
      const order = parseWith(shopifyOrder, body, "shopify order");
      await sink.upsert("orders", [orderRecord(order)]);
    } else if (topic === "customers/create" || topic === "customers/update") {
      const c = parseWith(shopifyCustomer, body, "shopify customer");
      if (!c.updated_at) throw new Error("shopify customer: updated_at is missing");
      await sink.upsert("customers", [
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
      await sink.upsert("customers", [{
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
  },
};
