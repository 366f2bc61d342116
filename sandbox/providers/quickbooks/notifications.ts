/**
 * QuickBooks webhooks: "intuit-signature = base64(HMAC-SHA256(raw body, the app's verifier
 * token))"; the CloudEvents array by default, the legacy `eventNotifications` body on request.
 * Ids only, never data (https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks).
 */
import type { Change } from "../../data.ts";
import {
  base64,
  hmacSha256,
  type WebhookBuildOptions,
  type WebhookMessage,
} from "../../webhooks.ts";
import type { Delivery } from "../define.ts";
import type { QuickBooksAccount } from "./auth.ts";
import { type EntityName, entityOf, wholeSecond } from "./render.ts";

const PAST: Readonly<Record<string, string>> = {
  Create: "created",
  Update: "updated",
  Delete: "deleted",
  Void: "voided",
};

/** Events per delivery: Intuit batches the changes of a short window, across realms. */
const EVENTS_PER_DELIVERY = 10;

/** The entity and id a change is about, as a notification names them. */
function notified(change: Change): { name: EntityName; id: string; operation: string } {
  const operation = change.kind === "created"
    ? "Create"
    : change.kind === "deleted"
    ? "Delete"
    : change.kind === "cancelled"
    ? "Void"
    : "Update";
  if (change.stream === "orders") {
    return { name: entityOf(change.record), id: String(change.record.seq), operation };
  }
  return { name: "Customer", id: String(change.record.seq), operation };
}

export async function notifications(
  deliveries: Delivery<QuickBooksAccount>[],
  opts: WebhookBuildOptions,
  verifierToken: string,
): Promise<WebhookMessage[]> {
  const events = deliveries.map(({ account, change }) => ({
    realmId: account.realmId,
    change,
    entity: notified(change),
  }));
  const out: WebhookMessage[] = [];
  for (let i = 0; i < events.length; i += EVENTS_PER_DELIVERY) {
    const batch = events.slice(i, i + EVENTS_PER_DELIVERY);
    let body: string;
    let id: string;
    if (opts.format === "legacy") {
      const realms = [...new Set(batch.map((e) => e.realmId))];
      body = JSON.stringify({
        eventNotifications: realms.map((realmId) => ({
          realmId,
          dataChangeEvent: {
            entities: batch.filter((e) => e.realmId === realmId).map((e) => ({
              name: e.entity.name,
              id: e.entity.id,
              operation: e.entity.operation,
              lastUpdated: new Date(wholeSecond(e.change.at)).toISOString(),
            })),
          },
        })),
      });
      id = `legacy:${i / EVENTS_PER_DELIVERY}`;
    } else {
      const cloud = batch.map((e) => ({
        specversion: "1.0",
        id: crypto.randomUUID(),
        source: "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
        type: `qbo.${e.entity.name.toLowerCase()}.${PAST[e.entity.operation]}.v1`,
        datacontenttype: "application/json",
        time: new Date(wholeSecond(e.change.at)).toISOString(),
        intuitentityid: e.entity.id,
        intuitaccountid: e.realmId,
        data: {},
      }));
      body = JSON.stringify(cloud);
      id = cloud.map((e) => e.id).join(",");
    }
    out.push({
      id,
      body,
      headers: {
        "content-type": "application/json",
        "intuit-signature": base64(await hmacSha256(opts.secret ?? verifierToken, body)),
      },
    });
  }
  return out;
}
