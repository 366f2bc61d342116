/**
 * The query root's connections, as the GraphQL Admin API pages them: "customers(first: 250, after:,
 * query: "updated_at:>'<ISO>'") and orders(…) the same way, Relay pageInfo{hasNextPage endCursor}".
 * Cursors are keysets (base64 of {last_id, last_value}, the shape of Shopify's own), so rows never
 * shift between pages. A deleted customer is gone from `customers`; its deletion is told by the
 * `events` connection (subject_type:CUSTOMER, action:destroy), which is what an adapter must read
 * to mark it inactive.
 */
import type { Dataset, SandboxCustomer, SandboxOrder } from "../../data.ts";
import { type ArgValue, type FieldNode, GraphqlFault } from "../graphql_lite.ts";
import { customerNode, deletionEventNode, EVENT_ID_BASE, orderNode, shownMs } from "./render.ts";
import { invalidArgument } from "./schema.ts";
import { type Filter, parseSearch } from "./search.ts";

/** Per connection, as Shopify allows. */
const MAX_PAGE = 250;

/** One connection of the query root: its records, sort keys and search fields. */
interface Source<T> {
  readonly type: string;
  readonly sortKeyType: string;
  records(set: Dataset): Iterable<T>;
  id(record: T): number;
  readonly sortKeys: Readonly<Record<string, (record: T) => number>>;
  readonly filters: Readonly<Record<string, Filter<T>>>;
  node(record: T, set: Dataset): unknown;
}

export const ORDERS: Source<SandboxOrder> = {
  type: "OrderConnection",
  sortKeyType: "OrderSortKeys",
  records: (set) => set.orders.values(),
  id: (order) => order.seq,
  sortKeys: {
    ID: (order) => order.seq,
    UPDATED_AT: (order) => shownMs(order.updatedAt),
    CREATED_AT: (order) => shownMs(order.createdAt),
    PROCESSED_AT: (order) => shownMs(order.createdAt),
  },
  filters: {
    updated_at: { kind: "time", get: (order) => order.updatedAt },
    created_at: { kind: "time", get: (order) => order.createdAt },
  },
  node: orderNode,
};

export const CUSTOMERS: Source<SandboxCustomer> = {
  type: "CustomerConnection",
  sortKeyType: "CustomerSortKeys",
  // A deleted customer is simply not returned.
  records: (set) => [...set.customers.values()].filter((customer) => !customer.deleted),
  id: (customer) => customer.seq,
  sortKeys: {
    ID: (customer) => customer.seq,
    UPDATED_AT: (customer) => shownMs(customer.updatedAt),
    CREATED_AT: (customer) => shownMs(customer.createdAt),
  },
  filters: {
    updated_at: { kind: "time", get: (customer) => customer.updatedAt },
    created_at: { kind: "time", get: (customer) => customer.createdAt },
  },
  node: (customer) => customerNode(customer),
};

/** The only events the sandbox keeps: customer deletions. */
export const EVENTS: Source<SandboxCustomer> = {
  type: "EventConnection",
  sortKeyType: "EventSortKeys",
  records: (set) => [...set.customers.values()].filter((customer) => customer.deleted),
  id: (customer) => EVENT_ID_BASE + customer.seq,
  sortKeys: {
    ID: (customer) => EVENT_ID_BASE + customer.seq,
    CREATED_AT: (customer) => shownMs(customer.updatedAt),
  },
  filters: {
    created_at: { kind: "time", get: (customer) => customer.updatedAt },
    subject_type: { kind: "word", get: () => "CUSTOMER" },
    action: { kind: "word", get: () => "destroy" },
  },
  node: (customer) => deletionEventNode(customer),
};

/** A root field checked and priced, ready to run once the bucket has paid for it. */
export interface Plan {
  readonly field: FieldNode;
  readonly type: string;
  readonly requested: number;
  resolve(set: Dataset): { value: unknown; cost: number };
}

interface Keyset {
  readonly value: number;
  readonly id: number;
}

function encodeCursor(key: Keyset): string {
  return btoa(JSON.stringify({ last_id: key.id, last_value: String(key.value) }));
}

function decodeCursor(after: ArgValue | undefined): Keyset | undefined {
  if (after === undefined || after === null) return undefined;
  try {
    const parsed: unknown = JSON.parse(atob(String(after)));
    const { last_id, last_value } = parsed as Record<string, unknown>;
    const value = Number(last_value);
    if (Number.isInteger(last_id) && Number.isFinite(value)) {
      return { id: last_id as number, value };
    }
  } catch {
    // fall through
  }
  throw new GraphqlFault(
    `Invalid cursor for current pagination: ${String(after)}`,
    "invalidCursor",
  );
}

export function planConnection<T>(source: Source<T>, field: FieldNode): Plan {
  const { args, name } = field;
  if (["last", "before"].some((arg) => (args.get(arg) ?? null) !== null) || args.get("reverse")) {
    throw new GraphqlFault(
      "The sandbox paginates forward only: last, before and reverse are not supported",
    );
  }
  const first = args.get("first");
  if (first === undefined || first === null) {
    throw new GraphqlFault("you must provide one of first or last");
  }
  if (!Number.isInteger(first) || (first as number) < 0) {
    throw invalidArgument(name, "first", first, "Int");
  }
  if ((first as number) > MAX_PAGE) {
    throw new GraphqlFault(
      `Requested count (${first}) for connection '${name}' exceeds the maximum page size of ${MAX_PAGE}`,
      "maxPageSizeExceeded",
    );
  }
  const sortKey = args.get("sortKey") ?? "ID";
  const keyOf = typeof sortKey === "string" ? source.sortKeys[sortKey] : undefined;
  if (!keyOf) throw invalidArgument(name, "sortKey", sortKey, source.sortKeyType);
  const tests = parseSearch(args.get("query"), source.filters);
  const after = decodeCursor(args.get("after"));
  const size = first as number;

  return {
    field,
    type: source.type,
    requested: 2 + size,
    resolve(set) {
      const keyed = [...source.records(set)]
        .filter((record) => tests.every((test) => test(record)))
        .map((record) => ({ record, value: keyOf(record), id: source.id(record) }))
        .sort((a, b) => a.value - b.value || a.id - b.id);
      let start = 0;
      if (after) {
        start = keyed.findIndex((k) =>
          k.value > after.value || (k.value === after.value && k.id > after.id)
        );
        if (start < 0) start = keyed.length;
      }
      const page = keyed.slice(start, start + size);
      const edges = page.map((k) => ({
        cursor: encodeCursor(k),
        node: source.node(k.record, set),
      }));
      return {
        value: {
          edges,
          nodes: edges.map((edge) => edge.node),
          pageInfo: {
            hasNextPage: start + size < keyed.length,
            hasPreviousPage: start > 0,
            startCursor: edges[0]?.cursor ?? null,
            endCursor: edges.at(-1)?.cursor ?? null,
          },
        },
        cost: 2 + page.length,
      };
    },
  };
}
