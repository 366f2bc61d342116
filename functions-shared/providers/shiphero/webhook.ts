// ShipHero webhooks, /webhooks/shiphero/<connection_id>: X-ShipHero-HMAC-SHA256 = base64 HMAC with
// the connection's `webhook_secret` (the shared_signature_secret); id X-Shiphero-Message-ID.
import { z } from "zod";
import type { ProviderWebhooks } from "../types.ts";
import { header, parseJson, parseWith, sha256Hex, verifyHmac } from "../webhook.ts";

const orderNumber = z.union([z.string(), z.number()]).nullish();

export const shipheroWebhooks: ProviderWebhooks = {
  ack: { code: "200", Status: "Success" },

  async receive(sink, { headers, raw, path }) {
    const { connection, secret } = await sink.connectionInPath(path[0], "shiphero");
    await verifyHmac(
      raw,
      header(headers, "x-shiphero-hmac-sha256"),
      [secret],
      "base64",
      "shiphero",
    );
    const body = parseWith(
      z.looseObject({ webhook_type: z.string().min(1) }),
      parseJson(raw),
      "shiphero",
    );
    return [{
      eventId: header(headers, "x-shiphero-message-id") ?? await sha256Hex(raw),
      topic: body.webhook_type,
      connection,
      payload: { body },
    }];
  },

  async process(sink, { topic, payload }) {
    const body = payload.body as Record<string, unknown>;
    if (topic === "Shipment Update") {
      const f = parseWith(
        z.looseObject({
          fulfillment: z.looseObject({
            order_uuid: z.string().min(1),
            order_number: orderNumber,
            tracking_number: z.string().nullish(),
          }),
        }),
        body,
        "shiphero Shipment Update",
      ).fulfillment;
      await sink.applyOrderFacts({
        externalId: f.order_uuid,
        orderNumber: f.order_number == null ? null : String(f.order_number),
        trackingNumber: f.tracking_number ?? null,
        status: "fulfilled",
        raw: body,
      });
    } else if (topic === "Order Canceled") {
      const o = parseWith(
        z.looseObject({ order_uuid: z.string().min(1), order_number: orderNumber }),
        body,
        "shiphero Order Canceled",
      );
      await sink.applyOrderFacts({
        externalId: o.order_uuid,
        orderNumber: o.order_number == null ? null : String(o.order_number),
        trackingNumber: null,
        status: "canceled",
        raw: body,
      });
    }
  },
};
