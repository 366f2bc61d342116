/**
 * QuickBooks' Change Data Capture, "GET /v3/company/{realmId}/cdc?entities=<E1,E2>&changedSince=
 * <date-time>" (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/
 * changedatacapture): every object of the named entities changed since then, "grouped by type and
 * then in order of last updated time within the group. Objects deleted within the look-back
 * period are returned after active objects" with Id, status "Deleted", domain and MetaData only;
 * "Look-back time can be up to 30 days"; "A given CDC request returns a maximum of 1000 objects".
 * The answer is `{"CDCResponse":[{"QueryResponse":[{"<Entity>":[…],"startPosition":1,
 * "maxResults":n}, …]}],"time":…}`, one QueryResponse element per entity.
 */
import type { Dataset } from "../../data.ts";
import { json } from "../../http.ts";
import { parseTimeValue, QueryError, queryFault } from "./query_language.ts";
import {
  type EntityName,
  entityOf,
  renderCustomer,
  renderDeleted,
  renderTransaction,
  wholeSecond,
} from "./render.ts";

const LOOKBACK_MS = 30 * 24 * 3600 * 1000;
const MAX_OBJECTS = 1000;
const ENTITIES: Readonly<Record<string, EntityName>> = {
  invoice: "Invoice",
  salesreceipt: "SalesReceipt",
  customer: "Customer",
};

interface Changed {
  at: number;
  deleted: boolean;
  render(): Record<string, unknown>;
}

function changedOf(entity: EntityName, set: Dataset, since: number): Changed[] {
  const rows: Changed[] = entity === "Customer"
    ? [...set.customers.values()].map((c) => ({
      at: wholeSecond(c.updatedAt),
      deleted: false, // a QuickBooks customer is made inactive, never deleted
      render: () => renderCustomer(c),
    }))
    : [...set.orders.values()].filter((o) => entityOf(o) === entity).map((o) => ({
      at: wholeSecond(o.updatedAt),
      deleted: o.deleted === true,
      render: () => (o.deleted ? renderDeleted(o) : renderTransaction(o, set)),
    }));
  return rows.filter((r) => r.at >= since).sort((a, b) =>
    Number(a.deleted) - Number(b.deleted) || a.at - b.at
  );
}

/** The CDC answer for `query`, or Intuit's 400 fault for a request it will not run. */
export function changeDataCapture(query: URLSearchParams, set: Dataset, now: number): Response {
  try {
    const names = (query.get("entities") ?? "").split(",").map((n) => n.trim()).filter(Boolean);
    if (names.length === 0) throw new QueryError("validation", "entities is required");
    const entities = names.map((n) => {
      const entity = ENTITIES[n.toLowerCase()];
      if (!entity) throw new QueryError("validation", `Unsupported entity ${n}`);
      return entity;
    });
    const text = query.get("changedSince");
    if (!text) throw new QueryError("validation", "changedSince is required");
    const since = parseTimeValue(text, "changedSince");
    // UNCONFIRMED wording: Intuit documents the 30-day limit, not the fault it answers.
    if (since < now - LOOKBACK_MS) {
      throw new QueryError("validation", "changedSince must be within the last 30 days");
    }
    let left = MAX_OBJECTS;
    const responses = entities.map((entity) => {
      const rows = changedOf(entity, set, since).slice(0, Math.max(0, left));
      left -= rows.length;
      if (rows.length === 0) return {};
      return { [entity]: rows.map((r) => r.render()), startPosition: 1, maxResults: rows.length };
    });
    return json({
      CDCResponse: [{ QueryResponse: responses }],
      time: new Date(now).toISOString(),
    });
  } catch (error) {
    if (error instanceof QueryError) return queryFault(error, now);
    throw error;
  }
}
