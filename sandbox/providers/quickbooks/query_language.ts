/**
 * The Intuit query language, as strictly as Intuit parses what clients send:
 * `SELECT * | COUNT(*) FROM <Entity> [WHERE <cond> [AND <cond>]…] [ORDERBY <field> [ASC|DESC][, …]]
 * [STARTPOSITION n] [MAXRESULTS n]`, with conditions on Id, MetaData.LastUpdatedTime,
 * MetaData.CreateTime, DocNumber, DisplayName and Active, and the operators =, <, >, <=, >=, !=
 * and IN. Keywords and field names are case-insensitive, string values are single-quoted.
 * (https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries)
 */
import type { Dataset } from "../../data.ts";
import { json } from "../../http.ts";
import {
  COMPANY_OFFSET_MINUTES,
  displayName,
  type EntityName,
  entityOf,
  offsetText,
  renderCustomer,
  renderTransaction,
  wholeSecond,
} from "./render.ts";

/** "MAXRESULTS ≤ 1000"; 100 when the query names none. */
const MAX_RESULTS = 1000;
const DEFAULT_MAX_RESULTS = 100;

/** One queryable record: the values conditions and ORDERBY see, and its rendering. */
interface Row {
  readonly fields: Readonly<Record<string, string | number | boolean>>;
  render(): Record<string, unknown>;
}

type FieldKind = "string" | "time" | "boolean";

/** The queryable properties of each entity (lower-cased; `Metadata.` and `MetaData.` alike). */
const FIELDS: Readonly<Record<EntityName, Readonly<Record<string, FieldKind>>>> = {
  Invoice: {
    id: "string",
    docnumber: "string",
    "metadata.lastupdatedtime": "time",
    "metadata.createtime": "time",
  },
  SalesReceipt: {
    id: "string",
    docnumber: "string",
    "metadata.lastupdatedtime": "time",
    "metadata.createtime": "time",
  },
  Customer: {
    id: "string",
    displayname: "string",
    active: "boolean",
    "metadata.lastupdatedtime": "time",
    "metadata.createtime": "time",
  },
};

function rowsOf(entity: EntityName, set: Dataset): Row[] {
  if (entity === "Customer") {
    return [...set.customers.values()].map((c) => ({
      fields: {
        id: String(c.seq),
        "metadata.lastupdatedtime": wholeSecond(c.updatedAt),
        "metadata.createtime": wholeSecond(c.createdAt),
        active: !c.deleted,
        displayname: displayName(c),
      },
      render: () => renderCustomer(c),
    }));
  }
  // The query endpoint returns live entities; deleted ones are visible through CDC only (cdc.ts).
  return [...set.orders.values()].filter((o) => !o.deleted && entityOf(o) === entity).map((o) => ({
    fields: {
      id: String(o.seq),
      "metadata.lastupdatedtime": wholeSecond(o.updatedAt),
      "metadata.createtime": wholeSecond(o.createdAt),
      docnumber: o.number,
    },
    render: () => renderTransaction(o, set),
  }));
}

type Literal = string | number | boolean;
type Operator = "=" | "!=" | "<" | ">" | "<=" | ">=" | "in";

interface Condition {
  field: string;
  op: Operator;
  values: Literal[];
}

interface Query {
  count: boolean;
  entity: string;
  where: Condition[];
  orderBy: { field: string; desc: boolean }[];
  start: number;
  max: number;
}

/** "parse": Intuit's 4000 "Error parsing query"; "validation": 4001 "Invalid query". */
export class QueryError extends Error {
  constructor(readonly kind: "parse" | "validation", detail: string) {
    super(detail);
  }
}

interface Token {
  kind: "string" | "symbol" | "word" | "number";
  text: string;
  column: number;
}

const TOKEN =
  /\s*(?:'((?:[^'\\]|\\.)*)'|(<=|>=|!=|<>|=|<|>|\(|\)|,|\*)|([A-Za-z_][\w.]*)|(-?\d+(?:\.\d+)?))/y;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  while (text.slice(pos).trim() !== "") {
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(text);
    if (!m) {
      const at = pos + (text.slice(pos).length - text.slice(pos).trimStart().length);
      throw new QueryError("parse", `Encountered "${text.slice(at, at + 12)}" at column ${at + 1}`);
    }
    const column = m.index + m[0].length - m[0].trimStart().length + 1;
    if (m[1] !== undefined) {
      tokens.push({ kind: "string", text: m[1].replace(/\\(.)/g, "$1"), column });
    } else if (m[2] !== undefined) tokens.push({ kind: "symbol", text: m[2], column });
    else if (m[3] !== undefined) tokens.push({ kind: "word", text: m[3], column });
    else tokens.push({ kind: "number", text: m[4]!, column });
    pos = TOKEN.lastIndex;
  }
  return tokens;
}

class Parser {
  #i = 0;
  constructor(readonly tokens: Token[]) {}

  get done(): boolean {
    return this.#i >= this.tokens.length;
  }

  /** Consumes the next token when it is `word` (case-insensitive) or the symbol `word`. */
  accept(word: string): boolean {
    const t = this.tokens[this.#i];
    if (!t || (t.kind !== "word" && t.kind !== "symbol")) return false;
    if (t.text.toLowerCase() !== word.toLowerCase()) return false;
    this.#i++;
    return true;
  }

  expect(word: string): void {
    if (!this.accept(word)) this.fail(`"${word.toUpperCase()}"`);
  }

  take(kind: Token["kind"], what: string): Token {
    const t = this.tokens[this.#i];
    if (!t || t.kind !== kind) this.fail(what);
    this.#i++;
    return t;
  }

  literal(): Literal {
    const t = this.tokens[this.#i];
    if (t?.kind === "string") return this.take("string", "").text;
    if (t?.kind === "number") return Number(this.take("number", "").text);
    if (this.accept("true")) return true;
    if (this.accept("false")) return false;
    this.fail("a value");
  }

  fail(expected: string): never {
    const t = this.tokens[this.#i];
    const found = t ? `"${t.text}" at column ${t.column}` : "<EOF>";
    throw new QueryError("parse", `Encountered ${found}. Was expecting ${expected}`);
  }
}

const OPERATORS: ReadonlySet<string> = new Set(["=", "!=", "<>", "<", ">", "<=", ">="]);

function parseCondition(p: Parser): Condition {
  const field = p.take("word", "a property name").text;
  if (p.accept("in")) {
    p.expect("(");
    const values = [p.literal()];
    while (p.accept(",")) values.push(p.literal());
    p.expect(")");
    return { field, op: "in", values };
  }
  const op = nextOperator(p);
  return { field, op, values: [p.literal()] };
}

function nextOperator(p: Parser): Operator {
  for (const op of OPERATORS) {
    if (p.accept(op)) return op === "<>" ? "!=" : op as Operator;
  }
  p.fail("an operator");
}

export function parseQuery(text: string): Query {
  const p = new Parser(tokenize(text));
  p.expect("select");
  let count = false;
  if (p.accept("count")) {
    p.expect("(");
    p.expect("*");
    p.expect(")");
    count = true;
  } else p.expect("*");
  p.expect("from");
  const entity = p.take("word", "an entity name").text;
  const where: Condition[] = [];
  if (p.accept("where")) {
    do where.push(parseCondition(p)); while (p.accept("and"));
  }
  const orderBy: Query["orderBy"] = [];
  if (p.accept("orderby")) {
    do {
      const field = p.take("word", "a property name").text;
      const desc = p.accept("desc");
      if (!desc) p.accept("asc");
      orderBy.push({ field, desc });
    } while (p.accept(","));
  }
  const start = p.accept("startposition") ? Number(p.take("number", "a number").text) : 1;
  const max = p.accept("maxresults")
    ? Number(p.take("number", "a number").text)
    : DEFAULT_MAX_RESULTS;
  if (!p.done) p.fail("<EOF>");
  return { count, entity, where, orderBy, start, max };
}

/** A date-time value: ISO 8601, offset optional (then the company's), or a bare date. */
export function parseTimeValue(value: Literal, field: string): number {
  const m = typeof value === "string"
    ? /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}:\d{2}(?:\.\d+)?)(Z|[+-]\d{2}:\d{2})?)?$/.exec(value)
    : null;
  const at = m
    ? Date.parse(`${m[1]}T${m[2] ?? "00:00:00"}${m[3] ?? offsetText(COMPANY_OFFSET_MINUTES)}`)
    : Number.NaN;
  if (Number.isNaN(at)) {
    throw new QueryError("validation", `invalid date-time value ${String(value)} for ${field}`);
  }
  return at;
}

function compare(a: string | number | boolean, b: string | number | boolean): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "string" && typeof b === "string" && /^\d+$/.test(a) && /^\d+$/.test(b)) {
    return Number(a) - Number(b);
  }
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

/** The property's kind, or "Invalid query" when the entity has no such queryable property. */
function fieldKind(entity: EntityName, field: string): FieldKind {
  const kind = FIELDS[entity][field.toLowerCase()];
  if (!kind) throw new QueryError("validation", `property '${field}' is not queryable`);
  return kind;
}

/** The condition as a predicate on rows; a value of the wrong type is rejected. */
function predicate(entity: EntityName, cond: Condition): (row: Row) => boolean {
  const key = cond.field.toLowerCase();
  const kind = fieldKind(entity, cond.field);
  const values = cond.values.map((v): string | number | boolean => {
    if (kind === "time") return parseTimeValue(v, cond.field);
    if (kind === "boolean" && typeof v !== "boolean") {
      throw new QueryError("validation", `expected true or false for ${cond.field}`);
    }
    return kind === "string" ? String(v) : v;
  });
  const test = (c: number) => {
    switch (cond.op) {
      case "=":
      case "in":
        return c === 0;
      case "!=":
        return c !== 0;
      case "<":
        return c < 0;
      case ">":
        return c > 0;
      case "<=":
        return c <= 0;
      case ">=":
        return c >= 0;
    }
  };
  return (row) => values.some((v) => test(compare(row.fields[key]!, v)));
}

const ENTITIES: Readonly<Record<string, EntityName>> = {
  invoice: "Invoice",
  salesreceipt: "SalesReceipt",
  customer: "Customer",
};

export function runQuery(q: Query, set: Dataset, now: number): Record<string, unknown> {
  const entity = ENTITIES[q.entity.toLowerCase()];
  if (!entity) throw new QueryError("validation", `Unsupported entity ${q.entity}`);
  if (q.max > MAX_RESULTS) {
    throw new QueryError("validation", `value ${q.max} is too large. Max allowed value is 1000`);
  }
  if (q.start < 1 || q.max < 1) {
    throw new QueryError("validation", "STARTPOSITION and MAXRESULTS must be at least 1");
  }
  const tests = q.where.map((c) => predicate(entity, c));
  // Customer queries return active customers only, unless a condition names Active.
  if (entity === "Customer" && !q.where.some((c) => c.field.toLowerCase() === "active")) {
    tests.push((row) => row.fields.active === true);
  }
  const order = q.orderBy.map((o) => {
    fieldKind(entity, o.field);
    return { key: o.field.toLowerCase(), sign: o.desc ? -1 : 1 };
  });
  const rows = rowsOf(entity, set).filter((row) => tests.every((t) => t(row))).sort((a, b) => {
    for (const { key, sign } of order) {
      const c = compare(a.fields[key]!, b.fields[key]!);
      if (c !== 0) return sign * c;
    }
    return compare(a.fields.id!, b.fields.id!);
  });
  const time = new Date(now).toISOString();
  if (q.count) return { QueryResponse: { totalCount: rows.length }, time };
  const page = rows.slice(q.start - 1, q.start - 1 + q.max);
  if (page.length === 0) return { QueryResponse: {}, time };
  return {
    QueryResponse: {
      [entity]: page.map((r) => r.render()),
      startPosition: q.start,
      maxResults: page.length,
    },
    time,
  };
}

/** Intuit's 400 for a query it cannot parse (4000) or will not run (4001). */
export function queryFault(error: QueryError, now: number): Response {
  const [message, prefix, code] = error.kind === "parse"
    ? ["Error parsing query", "QueryParserError", "4000"]
    : ["Invalid query", "QueryValidationError", "4001"];
  return json({
    Fault: {
      Error: [{ Message: message, Detail: `${prefix}: ${error.message}`, code }],
      type: "ValidationFault",
    },
    time: new Date(now).toISOString(),
  }, 400);
}
