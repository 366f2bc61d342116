// Lightspeed webhooks, /webhooks/lightspeed: X-Signature `signature=…,algorithm=HMAC-SHA256`, HMAC
// with LIGHTSPEED_CLIENT_SECRET (hex by default); the form's `domain_prefix` → the connection with
// that external id; id = SHA-256 of the body (Lightspeed sends none).
import type { ProviderWebhooks } from "../types.ts";
import { BadPayload, header, parseWith, sha256Hex, verifyHmac } from "../webhook.ts";
import { customerSchema, saleSchema, toCustomer, toOrder } from "./streams.ts";

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
      connection: await sink.connectionByExternalId(domainPrefix),
      payload: { body: payload, domain_prefix: domainPrefix },
    }];
  },

  async process(sink, { topic, payload }) {
    if (topic === "sale.update") {
      const sale = parseWith(saleSchema, payload.body, "lightspeed sale");
      await sink.upsert("orders", [toOrder(sale)]);
    } else if (topic === "customer.update") {
      const c = parseWith(customerSchema, payload.body, "lightspeed customer");
      await sink.upsert("customers", [toCustomer(c)]);
    }
  },
};
