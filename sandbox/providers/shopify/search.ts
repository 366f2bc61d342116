import { type ArgValue, GraphqlFault } from "../graphql_lite.ts";
import { shownMs } from "./render.ts";
import { invalidArgument } from "./schema.ts";

/** A searchable field of a connection: a time compared with >=, <=, > or <, or a word matched. */
export type Filter<T> =
  | { readonly kind: "time"; readonly get: (record: T) => number }
  | { readonly kind: "word"; readonly get: (record: T) => string };

const SEARCH_TERM =
  /\s*(?:(AND)(?=\s|$)|([a-z_]+):(>=|<=|>|<)?(?:'([^']*)'|"([^"]*)"|([^\s'"()]+)))/y;
const SEARCH_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/**
 * Shopify's search syntax, the part the sandbox serves: `field:value` terms joined with AND, time
 * fields with a comparator (`updated_at:>='2026-11-22T10:15:30Z'`). Anything else is refused
 * rather than silently ignored.
 */
export function parseSearch<T>(
  query: ArgValue | undefined,
  filters: Readonly<Record<string, Filter<T>>>,
): ((record: T) => boolean)[] {
  if (query === undefined || query === null) return [];
  if (typeof query !== "string") throw invalidArgument("query", "query", query, "String");
  const tests: ((record: T) => boolean)[] = [];
  const text = query.trim();
  let at = 0;
  while (at < text.length) {
    SEARCH_TERM.lastIndex = at;
    const match = SEARCH_TERM.exec(text);
    if (!match) {
      throw new GraphqlFault(
        `The sandbox's search supports only field:value terms joined with AND; cannot read ${
          JSON.stringify(text.slice(at))
        }`,
      );
    }
    at = SEARCH_TERM.lastIndex;
    if (match[1]) continue;
    const [, , name = "", op = "", quoted1, quoted2, bare] = match;
    const value = quoted1 ?? quoted2 ?? bare ?? "";
    const filter = filters[name];
    if (!filter) {
      throw new GraphqlFault(
        `The sandbox cannot search by ${name}; it supports ${Object.keys(filters).join(", ")}`,
      );
    }
    tests.push(searchTest(filter, name, op, value));
  }
  return tests;
}

function searchTest<T>(
  filter: Filter<T>,
  name: string,
  op: string,
  value: string,
): (record: T) => boolean {
  if (filter.kind === "word") {
    if (op !== "") throw new GraphqlFault(`${name} takes no comparator`);
    return (record) => filter.get(record).toLowerCase() === value.toLowerCase();
  }
  if (!SEARCH_TIME.test(value) || op === "") {
    throw new GraphqlFault(
      `${name} needs a comparator and an ISO 8601 time, e.g. ${name}:>='2026-11-22T10:15:30Z'`,
    );
  }
  const bound = Date.parse(value.length === 10 ? `${value}T00:00:00Z` : value);
  const compare = {
    ">=": (ms: number) => ms >= bound,
    "<=": (ms: number) => ms <= bound,
    ">": (ms: number) => ms > bound,
    "<": (ms: number) => ms < bound,
  }[op]!;
  return (record) => compare(shownMs(filter.get(record)));
}
