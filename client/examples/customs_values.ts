// Sets the customs value of every line item of each new ShipHero order: reads Tether's change
// feed, picks the orders ShipHero connections created, and calls ShipHero's GraphQL API through
// Tether's proxy (auth, pacing and token refresh are Tether's): `order(id)` for the line items,
// then `order_update_line_items` with `customs_value`, "a decimal value used for customs"
// (developer.shiphero.com/schema/types/update-line-item-input.html).
//
// At least once, and safe so: the feed may hand a change out again (a run that died before its
// acknowledgement, a lease that ran out), so an order is read before it is written and only line
// items without a customs value are set; an order already done costs one read and no write. Runs
// at the same time never get the same change: the feed leases each batch to one reader.
import { changeFeed, type SqlTag, type TetherChange, type TetherClient } from "../mod.ts";

/** The feed consumer: its position is kept by Tether under this name. */
export const CONSUMER = "shiphero-customs-values";

export const ORDER_LINE_ITEMS_QUERY = `query OrderLineItems($id: String!, $after: String) {
  order(id: $id) {
    data {
      line_items(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor }
        edges { node { id price customs_value } }
      }
    }
  }
}`;

export const SET_CUSTOMS_VALUES_MUTATION = `mutation SetCustoms($data: UpdateLineItemsInput!) {
  order_update_line_items(data: $data) { request_id }
}`;

export interface LineItem {
  id: string;
  /** The unit price, a decimal string. */
  price: string;
  customs_value: string | null;
}

/** Your rule for a line item's declared value. Here: the unit price it sold for. */
export function customsValueOf(item: LineItem): string {
  return item.price;
}

/** The mutation's `data` (ShipHero's UpdateLineItemsInput): each line item's new customs value. */
export function customsValuesInput(orderId: string, items: LineItem[]) {
  return {
    order_id: orderId,
    line_items: items.map((item) => ({ id: item.id, customs_value: customsValueOf(item) })),
  };
}

export interface Handled {
  /** Changes read from the feed (and acknowledged). */
  read: number;
  /** New ShipHero orders among them whose line items were written. */
  orders: number;
  /** Line items given a customs value. */
  line_items: number;
}

/**
 * One batch of the feed: up to `max` changes (keep it small enough to finish well within the Edge
 * Function's wall clock: two ShipHero calls per new order). Acknowledges what it handled; on a
 * failure, what came before it, and throws (the rest is handed out again once its lease ends).
 */
export async function setCustomsValues(
  tether: TetherClient,
  sql: SqlTag,
  max = 25,
): Promise<Handled> {
  const feed = changeFeed(sql, CONSUMER);
  const batch = await feed.read(max);
  const shiphero = await shipHeroConnections(sql, batch);
  const newOrder = (change: TetherChange) =>
    change.op === "created" && change.stream === "orders" && shiphero.has(change.connection_id);
  const handled: Handled = { read: batch.length, orders: 0, line_items: 0 };
  let done: TetherChange | undefined;
  try {
    for (const change of batch) {
      if (newOrder(change)) {
        const set = await setOrderCustomsValues(tether, change.connection_id, change.record_id);
        if (set > 0) handled.orders++;
        handled.line_items += set;
      }
      done = change;
    }
  } finally {
    if (done) await feed.ack(done);
  }
  return handled;
}

/** The ids of the ShipHero connections (only they are read, when the batch has changes). */
async function shipHeroConnections(sql: SqlTag, batch: TetherChange[]): Promise<Set<string>> {
  if (batch.length === 0) return new Set();
  const rows = await sql`select id::text as id from tether.connections where provider = 'shiphero'`;
  return new Set(rows.map((row) => (row as { id: string }).id));
}

/** Sets the customs value of the order's line items that have none; returns how many it set. */
async function setOrderCustomsValues(
  tether: TetherClient,
  connectionId: string,
  orderId: string,
): Promise<number> {
  const missing: LineItem[] = [];
  let after: string | null = null;
  do {
    const page: LineItemPage = await lineItems(tether, connectionId, orderId, after);
    missing.push(...page.edges.map((edge) => edge.node).filter((item) => !item.customs_value));
    after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
  } while (after !== null);
  if (missing.length === 0) return 0;
  await shipHero(tether, connectionId, SET_CUSTOMS_VALUES_MUTATION, {
    data: customsValuesInput(orderId, missing),
  });
  return missing.length;
}

interface LineItemPage {
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { node: LineItem }[];
}

/** A page of the order's line items (100 at a time: ShipHero charges for what it returns). */
async function lineItems(
  tether: TetherClient,
  connectionId: string,
  orderId: string,
  after: string | null,
): Promise<LineItemPage> {
  const { order } = await shipHero<{ order: { data: { line_items: LineItemPage } | null } }>(
    tether,
    connectionId,
    ORDER_LINE_ITEMS_QUERY,
    { id: orderId, after },
  );
  if (!order.data) throw new Error(`ShipHero has no order ${orderId}`);
  return order.data.line_items;
}

/**
 * One GraphQL call to ShipHero through Tether's proxy. ShipHero answers its refusals (out of
 * credits included) with HTTP 200 and `errors`; Tether's own refusals carry `tether-error`.
 */
async function shipHero<Data>(
  tether: TetherClient,
  connectionId: string,
  query: string,
  variables: object,
): Promise<Data> {
  const res = await tether.proxy(connectionId, "/graphql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json().catch(() => undefined);
  const refusal = res.headers.get("tether-error") ?? body?.errors?.[0]?.message;
  if (!res.ok || refusal || !body?.data) {
    throw new Error(`ShipHero call failed (HTTP ${res.status}): ${refusal ?? "no data"}`);
  }
  return body.data as Data;
}
