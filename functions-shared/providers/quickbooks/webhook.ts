// QuickBooks webhooks, /webhooks/quickbooks: intuit-signature = base64 HMAC with
// QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN; each event's realm (realmId / intuitaccountid) → the
// connection with that external id; id = the CloudEvents id, or a hash of the entity change, both
// inside the signed body. Bodies: the CloudEvents array (intuit/QuickBooks-V3-PHP-SDK
// src/WebhooksService/WebhooksCloudEvent.php: specversion, id, source, type
// "qbo.<entity>.<created|updated|deleted|voided|…>.v1", datacontenttype, time, intuitentityid,
// intuitaccountid, data) or the legacy `eventNotifications[].dataChangeEvent.entities[]`
// (EventNotification.php, DataChangeEvent.php, Entity.php: name, id, operation Create / Update /
// Delete / Merge / Void / Emailed, lastUpdated); tests/fixtures/quickbooks/ holds both.
//
// A notification carries ids only. Processing re-fetches the entity, except for a deletion: a
// deleted Invoice or SalesReceipt can no longer be fetched, so the signed notification itself
// makes the row "Deleted", at the notification's own time (never later than its receipt). A
// "Void" notification makes the re-fetched transaction "Voided", whatever its amounts say.
import { z } from "zod";
import type { CustomerRecord, OrderRecord, ProviderWebhooks } from "../types.ts";
import { header, notAfter, parseJson, parsePayload, sha256Hex, verifyHmac } from "../webhook.ts";
import { fetchEntities } from "./adapter.ts";
import { type Entity, toDeletedOrder } from "./streams.ts";

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

/** The operation, in the legacy body's words, of a CloudEvents type's past-tense verb. */
const OPERATIONS: Record<string, string> = {
  created: "Create",
  updated: "Update",
  deleted: "Delete",
  merged: "Merge",
  voided: "Void",
  emailed: "Emailed",
};

export const quickbooksWebhooks: ProviderWebhooks = {
  async receive(sink, { headers, raw }) {
    const secrets = sink.secrets.quickbooks;
    if (secrets.length === 0) sink.misconfigured({ variable: "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN" });
    await verifyHmac(raw, header(headers, "intuit-signature"), secrets, "base64", "quickbooks");
    const body = parsePayload(quickbooksBody, parseJson(raw), "quickbooks");
    const named: {
      eventId: string;
      realm: string;
      entity: string;
      id: string;
      topic: string;
      operation: string | null;
      at: string | null;
    }[] = [];
    if (Array.isArray(body)) {
      for (const e of body) {
        const [, entity = "", verb = ""] = /^qbo\.([a-z]+)\.([a-z]+)\./.exec(e.type) ?? [];
        named.push({
          eventId: e.id,
          realm: e.intuitaccountid,
          entity,
          id: e.intuitentityid,
          topic: e.type,
          operation: OPERATIONS[verb] ?? null,
          at: e.time ?? null,
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
            operation: e.operation,
            at: e.lastUpdated ?? null,
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
        payload: {
          realm_id: n.realm,
          entity: n.entity,
          id: n.id,
          operation: n.operation,
          at: n.at,
        },
      });
    }
    return events;
  },

  async process(sink, { payload, receivedAt }) {
    const entity = QB_ENTITIES[String(payload.entity)];
    if (!entity) return; // an entity Tether does not store
    const id = String(payload.id);
    const operation = typeof payload.operation === "string" ? payload.operation : null;
    if (operation === "Delete" && entity !== "Customer") {
      // Gone at QuickBooks: nothing to re-fetch. The time is the signed body's, clamped.
      const at = typeof payload.at === "string" && !Number.isNaN(Date.parse(payload.at))
        ? notAfter(payload.at, receivedAt)
        : receivedAt.toISOString();
      await sink.upsert("orders", [toDeletedOrder(entity, id, at, { notification: payload })]);
      return;
    }
    const records = await sink.withAccessToken((ctx, conn, creds) =>
      fetchEntities(ctx, conn, creds, entity, [id])
    );
    if (entity === "Customer") {
      await sink.upsert("customers", records as CustomerRecord[]);
      return;
    }
    const orders = records as OrderRecord[];
    // A Void notification states what the amounts only suggest (streams.ts transactionStatus).
    if (operation === "Void") { for (const order of orders) order.status = "Voided"; }
    await sink.upsert("orders", orders);
  },
};
