// Lightspeed webhooks, /webhooks/lightspeed (x-series-api.lightspeedhq.com/docs/webhooks): a
// form-encoded POST whose only guaranteed field is `payload`, "a JSON-encoded object with details
// of the object that caused the hooked event. Other form fields (such as environment or
// domain_prefix) may be present but are not guaranteed to be." The payload is the API 1.0 object.
//
// - Signature: X-Signature `signature=…,algorithm=HMAC-SHA256`, HMAC of the raw body with
//   LIGHTSPEED_CLIENT_SECRET (hex by default; LIGHTSPEED_WEBHOOK_SIGNATURE_ENCODING). Not in any
//   official page, hence configurable.
// - Routing: the form's `domain_prefix` when present (the connection with that external id); else
//   the payload's `retailer_id` (or its customer's), matched with a connection's
//   `config.retailer_id`. Neither: recorded as ignored (kept, never processed).
// - Topic: the payload's own shape (a sale or a customer); the form's `type`, when present, must
//   agree with it (a delivery whose type disagrees with its body is refused).
// - Id: SHA-256 of the signed body (Lightspeed sends none).
// - Processing: the 1.0 object mapped onto the sync's newer-wins records; its `updated_at` is the
//   record's time, never later than the delivery's receipt.
import type { ProviderWebhooks, WebhookConnection, WebhookReceiveSink } from "../types.ts";
import { BadPayload, header, notAfter, parsePayload, sha256Hex, verifyHmac } from "../webhook.ts";
import {
  payloadKind,
  payloadRetailer,
  toCustomer,
  toOrder,
  webhookCustomerSchema,
  webhookSaleSchema,
} from "./streams.ts";

const TOPIC = { sale: "sale.update", customer: "customer.update" } as const;

async function route<C extends WebhookConnection>(
  sink: WebhookReceiveSink<C>,
  domainPrefix: string | null,
  retailerId: string | null,
): Promise<C | undefined> {
  if (domainPrefix) return await sink.connectionByExternalId(domainPrefix);
  if (retailerId) return await sink.connectionByConfigOrExternalId("retailer_id", retailerId);
  return undefined;
}

export const lightspeedWebhooks: ProviderWebhooks = {
  async receive(sink, { headers, raw }) {
    const secrets = sink.secrets.lightspeed;
    if (secrets.length === 0) sink.misconfigured({ variable: "LIGHTSPEED_CLIENT_SECRET" });
    const signatureHeader = header(headers, "x-signature");
    const signature = signatureHeader === null
      ? null
      : /(?:^|,)\s*signature=([^,]+)/.exec(signatureHeader)?.[1] ?? "";
    await verifyHmac(raw, signature, secrets, sink.secrets.lightspeedEncoding, "lightspeed");
    const form = new URLSearchParams(new TextDecoder().decode(raw));
    const text = form.get("payload");
    if (text === null) throw new BadPayload("lightspeed: the form has no payload field");
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new BadPayload("lightspeed: payload must be JSON");
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new BadPayload("lightspeed: payload must be a JSON object");
    }
    const kind = payloadKind(body);
    const type = form.get("type") || null;
    if (type !== null && kind !== null && type !== TOPIC[kind]) {
      throw new BadPayload(`lightspeed: type ${type} disagrees with the payload, a ${kind}`);
    }
    const domainPrefix = form.get("domain_prefix") || null;
    const retailerId = payloadRetailer(body);
    return [{
      eventId: await sha256Hex(raw),
      topic: kind === null ? (type ?? "unknown") : TOPIC[kind],
      connection: await route(sink, domainPrefix, retailerId),
      payload: { body, domain_prefix: domainPrefix, retailer_id: retailerId },
    }];
  },

  async process(sink, { topic, payload, receivedAt }) {
    if (topic === TOPIC.sale) {
      const sale = parsePayload(webhookSaleSchema, payload.body, "lightspeed sale");
      const order = toOrder(sale, payload.body);
      order.remote_updated_at = notAfter(order.remote_updated_at, receivedAt);
      await sink.upsert("orders", [order]);
    } else if (topic === TOPIC.customer) {
      const c = parsePayload(webhookCustomerSchema, payload.body, "lightspeed customer");
      const customer = toCustomer(c, payload.body);
      customer.remote_updated_at = notAfter(customer.remote_updated_at, receivedAt);
      await sink.upsert("customers", [customer]);
    }
  },
};
