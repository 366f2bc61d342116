// QuickBooks webhooks, /webhooks/quickbooks: intuit-signature = base64 HMAC with
// QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN; each event's realm (realmId / intuitaccountid) → the
// connection with that external id; id = the CloudEvents id, or a hash of the entity change.
import { z } from "zod";
import type { CustomerRecord, OrderRecord, ProviderWebhooks } from "../types.ts";
import { header, parseJson, parseWith, sha256Hex, verifyHmac } from "../webhook.ts";
import { fetchEntities } from "./adapter.ts";
import type { Entity } from "./streams.ts";

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

const QB_ENTITIES: Record<string, Entity> = {
  invoice: "Invoice",
  salesreceipt: "SalesReceipt",
  customer: "Customer",
};

export const quickbooksWebhooks: ProviderWebhooks = {
  async receive(sink, { headers, raw }) {
    const secrets = sink.secrets.quickbooks;
    if (secrets.length === 0) sink.misconfigured({ variable: "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN" });
    await verifyHmac(raw, header(headers, "intuit-signature"), secrets, "base64", "quickbooks");
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
    // One lookup per realm, in the order the events name them.
    const connections = new Map<string, ReturnType<typeof sink.connectionByExternalId>>();
    const events = [];
    for (const n of named) {
      if (!connections.has(n.realm)) {
        const found = sink.connectionByExternalId(n.realm);
        await found;
        connections.set(n.realm, found);
      }
      events.push({
        eventId: n.eventId,
        topic: n.topic,
        connection: await connections.get(n.realm)!,
        payload: { realm_id: n.realm, entity: n.entity, id: n.id },
      });
    }
    return events;
  },

  async process(sink, { payload }) {
    const entity = QB_ENTITIES[String(payload.entity)];
    if (!entity) return; // an entity Tether does not store
    const id = String(payload.id);
    const records = await sink.withAccessToken((ctx, conn, creds) =>
      fetchEntities(ctx, conn, creds, entity, [id])
    );
    if (entity === "Customer") await sink.upsert("customers", records as CustomerRecord[]);
    else await sink.upsert("orders", records as OrderRecord[]);
  },
};
