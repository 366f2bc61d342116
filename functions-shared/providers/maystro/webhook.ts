// Maystro webhooks, /webhooks/maystro/<connection_id>/<secret>: the secret compared in constant
// time with the connection's `webhook_secret`; id = SHA-256 of the body; processing re-fetches.
import { z } from "zod";
import type { ProviderWebhooks } from "../types.ts";
import { parseJson, parseWith, secretsEqual, sha256Hex, WebhookRejected } from "../webhook.ts";
import { fetchByExternalId } from "./adapter.ts";

const maystroBody = z.looseObject({
  event: z.string().optional(),
  external_order_id: z.string().min(1),
});

export const maystroWebhooks: ProviderWebhooks = {
  async receive(sink, { raw, path }) {
    const { connection, secret } = await sink.connectionInPath(path[0], "maystro");
    if (!(await secretsEqual(path[1] ?? "", secret))) {
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

  async process(sink, { payload }) {
    const body = parseWith(maystroBody, payload.body, "maystro");
    const records = await sink.withAccessToken((ctx, conn, creds) =>
      fetchByExternalId(ctx, conn, creds, body.external_order_id)
    );
    await sink.upsert("orders", records);
  },
};
