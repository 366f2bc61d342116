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

interface Keyed<T> extends Keyset {
  readonly record: T;
}

/**
 * A source's records in sort-key order (value, then id), kept per dataset until the dataset's next
 * write: every write bumps `Dataset.version`, and the sort keys are times and ids that only a
 * write changes. A source built for one request (the orders window) is simply sorted again.
 */
const SORTED = new WeakMap<Dataset, Map<unknown, { version: number; keyed: unknown[] }>>();

function sortedKeys<T>(
  source: Source<T>,
  sortKey: string,
  keyOf: (record: T) => number,
  set: Dataset,
): Keyed<T>[] {
  const shared = source === ORDERS || source === CUSTOMERS || source === EVENTS;
  let bySource = SORTED.get(set);
  if (!bySource) SORTED.set(set, bySource = new Map());
  const cacheKey = `${source.type}:${sortKey}`;
  const cached = shared ? bySource.get(cacheKey) : undefined;
  if (cached && cached.version === set.version) return cached.keyed as Keyed<T>[];
  const keyed = [...source.records(set)]
    .map((record) => ({ record, value: keyOf(record), id: source.id(record) }))
    .sort((a, b) => a.value - b.value || a.id - b.id);
  if (shared) bySource.set(cacheKey, { version: set.version, keyed });
  return keyed;
}

/** The index of the first key after `after` in `keyed` (its length if none): a binary search. */
function firstAfter(keyed: readonly Keyset[], after: Keyset): number {
  let low = 0;
  let high = keyed.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const k = keyed[mid]!;
    if (k.value > after.value || (k.value === after.value && k.id > after.id)) high = mid;
    else low = mid + 1;
  }
  return low;
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
      const keyed = sortedKeys(source, sortKey as string, keyOf, set);
      const matches = (k: Keyed<T>) => tests.every((test) => test(k.record));
      // The first key past the cursor, then the matching records from there on: a page costs
      // what it reads, not a filter and sort of the whole shop (a million orders in a bench).
      const from = after ? firstAfter(keyed, after) : 0;
      const page: Keyed<T>[] = [];
      let at = from;
      for (; at < keyed.length && page.length < size; at++) {
        if (matches(keyed[at]!)) page.push(keyed[at]!);
      }
      let hasNextPage = false;
      for (; at < keyed.length && !hasNextPage; at++) hasNextPage = matches(keyed[at]!);
      let hasPreviousPage = false;
      if (after) {
        for (let back = from - 1; back >= 0 && !hasPreviousPage; back--) {
          hasPreviousPage = matches(keyed[back]!);
        }
      }
      const edges = page.map((k) => ({
        cursor: encodeCursor(k),
        node: source.node(k.record, set),
      }));
      return {
        value: {
          edges,
          nodes: edges.map((edge) => edge.node),
          pageInfo: {
            hasNextPage,
            hasPreviousPage,
            startCursor: edges[0]?.cursor ?? null,
            endCursor: edges.at(-1)?.cursor ?? null,
          },
        },
        cost: 2 + page.length,
      };
    },
  };
}
