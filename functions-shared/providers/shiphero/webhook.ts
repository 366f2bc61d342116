// ShipHero webhooks, /webhooks/shiphero/<connection_id>: X-ShipHero-HMAC-SHA256 = base64
// HMAC-SHA256 of the raw body with the `shared_signature_secret` of the webhook that sent it.
// `webhook_create` returns one per Webhook object, so each type registered has its own secret,
// stored as `webhook_secret_<type>` (adapter.ts); a delivery verifies only with its own type's
// secret (or with the earlier single `webhook_secret`, which stands for every type).
//
// Only the signed body decides anything. X-Shiphero-Message-ID is not signed: a captured delivery
// replayed with a fresh one is the same delivery, so the event id is the SHA-256 of the body (the
// header is kept in the payload for tracing). The bodies carry no time. A Shipment Update names the
// shipment, not the order (developer.shiphero.com/webhooks/shipment-update-webhook; no
// `order_uuid`), so the order is read fresh through the shipment and upserted newer-wins like a
// sync page; an Order Canceled names the order (`order_uuid`) and cancels it (a forward-only fact).
// Both bodies are transcribed in tests/fixtures/shiphero/.
import { z } from "zod";
import { shipheroStatuses } from "../order_status.ts";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
  OrderRecord,
  ProviderWebhooks,
} from "../types.ts";
import {
  header,
  matchingSecrets,
  parseJson,
  parsePayload,
  sha256Hex,
  WebhookRejected,
} from "../webhook.ts";

/** Where a webhook type's `shared_signature_secret` is stored: "Shipment Update" → `webhook_secret_shipment_update`. */
export function webhookSecretField(type: string): string {
  const slug = type.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  return `webhook_secret_${slug}`;
}

/** Reads the order a shipment belongs to (adapter.ts `fetchShipmentOrder`). */
export type ShipmentOrderReader = (
  ctx: AdapterContext,
  conn: ConnectionRef,
  creds: Credentials,
  shipmentId: string,
) => Promise<OrderRecord | null>;

const orderNumber = z.union([z.string(), z.number()]).nullish();

/** The single secret of the earlier form: verifies a delivery of any type. */
const ANY_TYPE_SECRET = "webhook_secret";

export const shipmentUpdate = z.looseObject({
  fulfillment: z.looseObject({
    shipment_uuid: z.string().min(1),
    order_number: orderNumber,
    tracking_number: z.string().nullish(),
  }),
});

export const orderCanceled = z.looseObject({
  order_uuid: z.string().min(1),
  order_number: orderNumber,
});

/** The receiver; the adapter gives it its shipment reader (so this module needs no adapter). */
export const shipheroWebhooks = (fetchShipmentOrder: ShipmentOrderReader): ProviderWebhooks => ({
  // The acknowledgement the webhook pages show ("Response: {"code": "200", "Message": "Success"}",
  // developer.shiphero.com/webhooks and …/order-canceled-webhook).
  ack: { code: "200", Message: "Success" },

  async receive(sink, { headers, raw, path }) {
    const { connection, secrets } = await sink.connectionInPath(path[0], "shiphero");
    const fields = Object.keys(secrets);
    const signedWith = (await matchingSecrets(
      raw,
      header(headers, "x-shiphero-hmac-sha256"),
      fields.map((field) => secrets[field]!),
      "base64",
      "shiphero",
    )).map((i) => fields[i]!);
    const body = parsePayload(
      z.looseObject({ webhook_type: z.string().min(1) }),
      parseJson(raw),
      "shiphero",
    );
    const own = webhookSecretField(body.webhook_type);
    if (!signedWith.some((field) => field === own || field === ANY_TYPE_SECRET)) {
      throw new WebhookRejected(
        `shiphero: a ${body.webhook_type} delivery must be signed with ${own}`,
      );
    }
    return [{
      eventId: await sha256Hex(raw),
      topic: body.webhook_type,
      connection,
      payload: { body, message_id: header(headers, "x-shiphero-message-id") },
    }];
  },

  async process(sink, { topic, payload, receivedAt }) {
    const body = payload.body as Record<string, unknown>;
    if (topic === "Shipment Update") {
      const f = parsePayload(shipmentUpdate, body, "shiphero Shipment Update").fulfillment;
      const order = await sink.withAccessToken((ctx, conn, creds) =>
        fetchShipmentOrder(ctx, conn, creds, f.shipment_uuid)
      );
      // A shipment ShipHero no longer knows: nothing to write; the sync reconciles.
      if (order) await sink.upsert("orders", [order]);
    } else if (topic === "Order Canceled") {
      const o = parsePayload(orderCanceled, body, "shiphero Order Canceled");
      const canceled = shipheroStatuses("canceled");
      await sink.applyOrderFacts({
        externalId: o.order_uuid,
        orderNumber: o.order_number == null ? null : String(o.order_number),
        trackingNumber: null,
        status: "canceled",
        fulfillmentStatus: canceled.fulfillment_status,
        shippingStatus: canceled.shipping_status,
        // The body carries no time: the delivery's arrival bounds the cancellation.
        canceledAt: receivedAt.toISOString(),
        raw: body,
      });
    }
  },
});
