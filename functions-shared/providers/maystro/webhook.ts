// Maystro webhooks, /webhooks/maystro/<connection_id>/<secret>: Maystro signs nothing, so the
// secret in the URL is compared in constant time with the connection's `webhook_secret`; the event
// id is the SHA-256 of the body; processing re-fetches the order the body names, so what is written
// is Maystro's current record, never the body's word.
//
// Maystro publishes no webhook documentation. The bodies known from independent clients, all
// accepted (tests/fixtures/maystro/):
// - nested: `{"event": "OrderStatusChanged", "payload": {"external_order_id", "status",
//   "display_id_order"}}` (MaystroService.processWebhook, code-index id 9906604906);
// - a push envelope whose `message.data` is that JSON in base64 (moh4git/MaystroWebhook
//   src/MaystroWebhook.php: `json_decode(base64_decode($item))` for `message.data`);
// - flat: `{"event"?, "external_order_id", …}` (Tether's first reading, kept).
import { z } from "zod";
import type {
  AdapterContext,
  ConnectionRef,
  Credentials,
  OrderRecord,
  ProviderWebhooks,
} from "../types.ts";
import {
  BadPayload,
  parseJson,
  parsePayload,
  secretsEqual,
  sha256Hex,
  WebhookRejected,
} from "../webhook.ts";

const reference = z.union([z.string().min(1), z.number()]).transform(String);
const flat = z.looseObject({ event: z.string().optional(), external_order_id: reference });
const nested = z.looseObject({ event: z.string().optional(), payload: flat });
const envelope = z.looseObject({ message: z.looseObject({ data: z.string().min(1) }) });

/** The event a body (of any known form) carries: its name and the order reference it names. */
export function maystroEvent(body: unknown): { event: string; externalOrderId: string } {
  const wrapped = envelope.safeParse(body);
  const inner = wrapped.success ? decodeData(wrapped.data.message.data) : body;
  const asNested = nested.safeParse(inner);
  if (asNested.success) {
    const { event, payload } = asNested.data;
    return {
      event: event ?? payload.event ?? "OrderStatusChanged",
      externalOrderId: payload.external_order_id,
    };
  }
  const asFlat = parsePayload(flat, inner, wrapped.success ? "maystro message.data" : "maystro");
  return { event: asFlat.event ?? "OrderStatusChanged", externalOrderId: asFlat.external_order_id };
}

/** `message.data`: base64 of UTF-8 JSON. */
function decodeData(data: string): unknown {
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(data.trim()), (c) => c.charCodeAt(0));
  } catch {
    throw new BadPayload("maystro: message.data is not base64");
  }
  try {
    return parseJson(bytes);
  } catch {
    throw new BadPayload("maystro: message.data is not base64 of JSON");
  }
}

/** Reads the orders with an `external_order_id` (adapter.ts `fetchByExternalId`). */
export type OrderLookup = (
  ctx: AdapterContext,
  conn: ConnectionRef,
  creds: Credentials,
  externalOrderId: string,
) => Promise<OrderRecord[]>;

/** The receiver; the adapter gives it its lookup (so this module needs no adapter). */
export const maystroWebhooks = (fetchByExternalId: OrderLookup): ProviderWebhooks => ({
  async receive(sink, { raw, path }) {
    const { connection, secrets } = await sink.connectionInPath(path[0], "maystro");
    const secret = secrets.webhook_secret;
    if (secret === undefined) throw new WebhookRejected("maystro: no webhook_secret is configured");
    if (!(await secretsEqual(path[1] ?? "", secret))) {
      throw new WebhookRejected("maystro: the secret in the URL does not match");
    }
    const body = parseJson(raw);
    const { event } = maystroEvent(body);
    return [{ eventId: await sha256Hex(raw), topic: event, connection, payload: { body } }];
  },

  async process(sink, { payload }) {
    const { externalOrderId } = maystroEvent(payload.body);
    const records = await sink.withAccessToken((ctx, conn, creds) =>
      fetchByExternalId(ctx, conn, creds, externalOrderId)
    );
    await sink.upsert("orders", records);
  },
});
