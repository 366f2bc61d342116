/**
 * QuickBooks Online (PROVIDERS.md "QuickBooks Online"), played under
 * `<url>/quickbooks` in place of both https://oauth.platform.intuit.com (token)
 * and https://quickbooks.api.intuit.com (API).
 *
 * Data: `GET /v3/company/{realmId}/query?query=SELECT * FROM Invoice WHERE … ORDERBY …
 * STARTPOSITION n MAXRESULTS m`; the query language is parsed (below) as strictly as Intuit does
 * for what clients send: conditions joined by AND on Id, MetaData.LastUpdatedTime,
 * MetaData.CreateTime, DocNumber, DisplayName and Active, with =, <, >, <=, >=, != and IN;
 * SELECT COUNT(*) too.
 * Orders are Invoices (variant "a") and SalesReceipts (variant "b"); every API request costs 1
 * from the realm's bucket ("500 requests/min and 10/s per realm; 429 → wait 60 s"). Intuit's
 * 429 carries a ThrottleExceeded fault and no Retry-After header.
 */
import { AccountBook, type BaseAccount, describeAccount, type IssuedToken } from "../accounts.ts";
import { secondsUntil } from "../clock.ts";
import type {
  Change,
  Dataset,
  SandboxCustomer,
  SandboxOrder,
  StreamName,
  TruthRecord,
} from "../data.ts";
import { base64, hmacSha256, type WebhookMessage } from "../webhooks.ts";
import { basicCredentials, bearerToken, json, readForm } from "../http.ts";
import type { AppCredentials, ProviderSandbox, SandboxWorld } from "../provider.ts";
import { approveAuthorize, AuthorizationCodes } from "./oauth_codes.ts";

/** "expires_in (3600)". */
const ACCESS_SECONDS = 3600;
/** "x_refresh_token_expires_in (≈ 8726400 = 101 days, rolling)". */
const ROLLING_SECONDS = 8_726_400;
/** "the previous one stops working 24 h after a new one is issued". */
const GRACE_MS = 24 * 3600 * 1000;
/** "refresh tokens also have a hard maximum of 5 years". */
const HARD_YEARS = 5;

interface QuickBooksAccount extends BaseAccount {
  readonly realmId: string;
  /** Original grant + 5 years; no refresh token outlives it. */
  readonly hardExpiresAt: number;
  /** Newest refresh token; its predecessors keep working 24 h after their successor was issued. */
  refresh: IssuedToken;
  /** Newest access token; older ones stay valid until they expire. */
  access: IssuedToken;
}

function addYears(epochMs: number, years: number): number {
  const d = new Date(epochMs);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d.getTime();
}

// ---------------------------------------------------------------------------
// Entities, as the v3 API renders them

/** The sandbox company keeps Pacific Standard Time all year; QuickBooks shows the company's offset. */
const COMPANY_OFFSET_MINUTES = -8 * 60;
/** "MAXRESULTS ≤ 1000"; 100 when the query names none. */
const MAX_RESULTS = 1000;
const DEFAULT_MAX_RESULTS = 100;

type EntityName = "Invoice" | "SalesReceipt" | "Customer";

function wholeSecond(epochMs: number): number {
  return Math.floor(epochMs / 1000) * 1000;
}

function offsetText(minutes: number): string {
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${
    String(abs % 60).padStart(2, "0")
  }`;
}

/** `2026-11-22T02:15:30-08:00`: whole seconds, in the company's offset. */
function companyTime(epochMs: number): string {
  const local = new Date(wholeSecond(epochMs) + COMPANY_OFFSET_MINUTES * 60_000);
  return local.toISOString().slice(0, 19) + offsetText(COMPANY_OFFSET_MINUTES);
}

function companyDate(epochMs: number): string {
  return companyTime(epochMs).slice(0, 10);
}

function displayName(c: SandboxCustomer): string {
  // DisplayName is unique per company in QuickBooks.
  return `${c.firstName} ${c.lastName} ${c.seq}`;
}

function entityOf(order: SandboxOrder): "Invoice" | "SalesReceipt" {
  return order.variant === "a" ? "Invoice" : "SalesReceipt";
}

/**
 * A voided transaction keeps its number with zero amounts and "Voided" in its memo; a sales
 * receipt is paid when it is made; an invoice is paid on delivery here.
 */
function transactionState(order: SandboxOrder): { status: string; total: number; balance: number } {
  const total = order.totalCents / 100;
  if (order.stage === "cancelled") return { status: "Voided", total: 0, balance: 0 };
  if (entityOf(order) === "SalesReceipt" || order.stage === "delivered") {
    return { status: "Paid", total, balance: 0 };
  }
  return { status: "Open", total, balance: total };
}

function renderTransaction(order: SandboxOrder, set: Dataset): Record<string, unknown> {
  const state = transactionState(order);
  const customer = order.customerSeq === null ? undefined : set.customers.get(order.customerSeq);
  const out: Record<string, unknown> = {
    Id: String(order.seq),
    SyncToken: String(order.version),
    domain: "QBO",
    sparse: false,
    DocNumber: order.number,
    TxnDate: companyDate(order.createdAt),
    CurrencyRef: { value: order.currency },
    TotalAmt: state.total,
    Balance: state.balance,
    MetaData: {
      CreateTime: companyTime(order.createdAt),
      LastUpdatedTime: companyTime(order.updatedAt),
    },
  };
  // QuickBooks leaves out fields that have no value.
  if (customer) out.CustomerRef = { value: String(customer.seq), name: displayName(customer) };
  if (order.trackingNumber !== null) out.TrackingNum = order.trackingNumber;
  if (state.status === "Voided") out.PrivateNote = "Voided";
  return out;
}

function renderCustomer(c: SandboxCustomer): Record<string, unknown> {
  return {
    Id: String(c.seq),
    SyncToken: String(c.version),
    domain: "QBO",
    sparse: false,
    GivenName: c.firstName,
    FamilyName: c.lastName,
    DisplayName: displayName(c),
    PrimaryEmailAddr: { Address: c.email },
    PrimaryPhone: { FreeFormNumber: c.phone },
    // Deleting a customer in QuickBooks makes it inactive.
    Active: !c.deleted,
    Balance: 0,
    MetaData: { CreateTime: companyTime(c.createdAt), LastUpdatedTime: companyTime(c.updatedAt) },
  };
}

/** What the adapter must store: `Invoice:<Id>` / `SalesReceipt:<Id>` and `<Id>`, whole seconds. */
function truth(set: Dataset, stream: StreamName): TruthRecord[] {
  if (stream === "orders") {
    return [...set.orders.values()].map((o) => ({
      external_id: `${entityOf(o)}:${o.seq}`,
      updated_at: new Date(wholeSecond(o.updatedAt)).toISOString(),
      status: transactionState(o).status,
      tracking_number: o.trackingNumber,
      order_number: o.number,
    }));
  }
  return [...set.customers.values()].map((c) => ({
    external_id: String(c.seq),
    updated_at: new Date(wholeSecond(c.updatedAt)).toISOString(),
    status: c.deleted ? "inactive" : "active",
  }));
}

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
  return [...set.orders.values()].filter((o) => entityOf(o) === entity).map((o) => ({
    fields: {
      id: String(o.seq),
      "metadata.lastupdatedtime": wholeSecond(o.updatedAt),
      "metadata.createtime": wholeSecond(o.createdAt),
      docnumber: o.number,
    },
    render: () => renderTransaction(o, set),
  }));
}

// ---------------------------------------------------------------------------
// The query language: SELECT * | COUNT(*) FROM <Entity> [WHERE <cond> [AND <cond>]…]
// [ORDERBY <field> [ASC|DESC][, …]] [STARTPOSITION n] [MAXRESULTS n]; keywords and field
// names are case-insensitive, string values are single-quoted.

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
class QueryError extends Error {
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

function parseQuery(text: string): Query {
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
function parseTimeValue(value: Literal, field: string): number {
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

function runQuery(q: Query, set: Dataset, now: number): Record<string, unknown> {
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
function queryFault(error: QueryError, now: number): Response {
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

export function createQuickBooks(
  app: AppCredentials,
  world: SandboxWorld,
  verifierToken = "sandbox-quickbooks-verifier",
): ProviderSandbox {
  const book = new AccountBook<QuickBooksAccount>((n) => `9341${String(n).padStart(12, "0")}`);
  const codes = new AuthorizationCodes();

  // "Bad token: 400 {"error":"invalid_grant","error_description":"Token invalid"}".
  const invalidGrant = () =>
    json({ error: "invalid_grant", error_description: "Token invalid" }, 400);
  // Intuit's gateway answers a bad bearer token with a lower-case `fault`.
  const unauthorized = () =>
    json(
      {
        fault: {
          error: [{
            message: "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            detail: "Token expired or invalid",
            code: "3200",
          }],
          type: "AUTHENTICATION",
        },
        time: new Date().toISOString(),
      },
      401,
      { "www-authenticate": 'Bearer realm="Intuit", error="invalid_token"' },
    );

  function issueRefresh(account: { externalId: string; hardExpiresAt: number }, now: number) {
    const token = book.issue(account.externalId, "refresh", "sb_qb_rt_", now, ROLLING_SECONDS);
    token.expiresAt = Math.min(token.expiresAt!, account.hardExpiresAt);
    return token;
  }

  // "POST /oauth2/v1/tokens/bearer, Basic auth, form grant_type=authorization_code&code
  // &redirect_uri": the code once, for a new refresh token (and access token) of the realm.
  function exchange(form: URLSearchParams, clientId: string, now: number): Response {
    const externalId = codes.redeem(
      form.get("code") ?? undefined,
      clientId,
      form.get("redirect_uri") ?? undefined,
      now,
    );
    const account = externalId === undefined ? undefined : book.get(externalId);
    if (!account || account.revoked) return invalidGrant();
    account.refresh = issueRefresh(account, now);
    account.access = book.issue(account.externalId, "access", "sb_qb_at_", now, ACCESS_SECONDS);
    return json({
      token_type: "bearer",
      expires_in: ACCESS_SECONDS,
      refresh_token: account.refresh.value,
      x_refresh_token_expires_in: secondsUntil(account.refresh.expiresAt!, now),
      access_token: account.access.value,
    });
  }

  function refresh(form: URLSearchParams, req: Request, now: number): Response {
    const client = basicCredentials(req);
    if (!client || client.id !== app.clientId || client.secret !== app.clientSecret) {
      return json({ error: "invalid_client" }, 401);
    }
    if (form.get("grant_type") === "authorization_code") return exchange(form, client.id, now);
    if (form.get("grant_type") !== "refresh_token") {
      return json({ error: "unsupported_grant_type" }, 400);
    }
    // Dead = past its rolling expiry, its hard expiry, or 24 h past its successor's issue.
    const hit = book.live(form.get("refresh_token") ?? undefined, "refresh", now);
    if (!hit) return invalidGrant();
    const account = hit.account;
    if (hit.token === account.refresh) {
      // "rotates on every refresh": the presented token gets 24 h of grace.
      hit.token.diesAt = now + GRACE_MS;
      account.refresh = issueRefresh(account, now);
    }
    // A predecessor still inside its grace gets a fresh access token and the CURRENT newest
    // refresh token (no further rotation), so a client that lost the rotated token recovers it
    // and two racing refreshes end up holding the same refresh token.
    account.access = book.issue(account.externalId, "access", "sb_qb_at_", now, ACCESS_SECONDS);
    const body: Record<string, unknown> = {
      token_type: "bearer",
      expires_in: ACCESS_SECONDS,
      refresh_token: account.refresh.value,
      x_refresh_token_expires_in: secondsUntil(account.refresh.expiresAt!, now),
      access_token: account.access.value,
    };
    // "x_refresh_token_hard_expires_in when the request sends x-include-refresh-token-hard-expires-in: true".
    if (req.headers.get("x-include-refresh-token-hard-expires-in")?.toLowerCase() === "true") {
      body.x_refresh_token_hard_expires_in = secondsUntil(account.hardExpiresAt, now);
    }
    return json(body);
  }

  /**
   * The account behind a bearer token, charged one request; or the 401 (bad token), 403 (token of
   * another realm) or 429 (realm over its limit) to answer instead.
   */
  function authorize(
    req: Request,
    params: Record<string, string | undefined>,
    now: number,
  ): QuickBooksAccount | Response {
    const hit = book.live(bearerToken(req), "access", now);
    if (!hit) return unauthorized();
    if (params.realm !== hit.account.realmId) {
      // A token is good for its own realm only.
      return json({
        Fault: {
          Error: [{
            Message: "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
            Detail: "The token is not authorized for this company.",
            code: "003100",
          }],
          type: "SecurityFault",
        },
        time: new Date(now).toISOString(),
      }, 403);
    }
    if (!world.limits.take("quickbooks", hit.account.externalId, 1, now).ok) {
      // Intuit's throttle answer; it names no wait ("429 → wait 60 s" is the client's rule).
      return json({
        Fault: {
          Error: [{
            Message: "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            Detail: "The request limit was reached.  Try again later",
            code: "3001",
          }],
          type: "SERVICE",
        },
        time: new Date(now).toISOString(),
      }, 429);
    }
    return hit.account;
  }

  const self: ProviderSandbox = {
    name: "quickbooks",
    accounts: book,
    invalidGrant,
    unauthorized,

    // "POST /oauth2/v1/tokens/bearer, Authorization: Basic base64(client_id:client_secret),
    // form body grant_type=refresh_token&refresh_token=…".
    token: {
      path: "/oauth2/v1/tokens/bearer",
      async read(req) {
        const form = await readForm(req);
        if (!form) {
          return json({
            error: "invalid_request",
            error_description: "Content-Type must be application/x-www-form-urlencoded.",
          }, 400);
        }
        return {
          refreshToken: form.get("refresh_token") ?? undefined,
          complete: (now) => refresh(form, req, now),
        };
      },
    },

    api: [
      {
        // "GET https://appcenter.intuit.com/connect/oauth2?client_id&response_type=code&scope
        // &redirect_uri&state": the person approves at once (oauth_codes.ts); back to
        // redirect_uri with code, state and realmId.
        method: "GET",
        pattern: new URLPattern({ pathname: "/connect/oauth2" }),
        handle(req, _params, now) {
          return approveAuthorize(req, now, {
            clientId: app.clientId,
            codes,
            account: (id) => book.get(id ?? self.createAccount({}, now)!.external_id),
            params: (account, base) => ({ ...base, realmId: account.realmId }),
          });
        },
      },
      {
        method: "GET",
        pattern: new URLPattern({ pathname: "/v3/company/:realm/companyinfo/:id" }),
        handle(req, params, now) {
          const account = authorize(req, params, now);
          if (account instanceof Response) return account;
          const realmId = account.realmId;
          return json({
            CompanyInfo: {
              CompanyName: `Sandbox Company ${realmId}`,
              LegalName: `Sandbox Company ${realmId} LLC`,
              Country: "US",
              domain: "QBO",
              sparse: false,
              Id: "1",
              SyncToken: "0",
            },
            time: new Date(now).toISOString(),
          });
        },
      },
      {
        method: "GET",
        pattern: new URLPattern({ pathname: "/v3/company/:realm/query" }),
        handle(req, params, now) {
          const account = authorize(req, params, now);
          if (account instanceof Response) return account;
          const text = new URL(req.url).searchParams.get("query") ?? "";
          try {
            const set = world.data.get("quickbooks", account.externalId);
            return json(runQuery(parseQuery(text), set, now));
          } catch (error) {
            if (error instanceof QueryError) return queryFault(error, now);
            throw error;
          }
        },
      },
    ],

    data: {
      streams: ["orders", "customers"],
      customersCanBeDeleted: false,
      truth: (externalId, stream) => truth(world.data.get("quickbooks", externalId), stream),
    },

    // "intuit-signature = base64(HMAC-SHA256(raw body, the app's verifier token))"; the CloudEvents
    // array by default, the legacy `eventNotifications` body on request. Ids only, never data.
    webhooks: {
      async build(items, opts) {
        const events = items.flatMap(({ account, change }) => {
          const a = book.get(account);
          return a ? [{ realmId: a.realmId, change, entity: notified(change) }] : [];
        });
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
      },
    },

    createAccount(input, now) {
      const externalId = book.claimId(input.externalId);
      if (externalId === undefined) return undefined;
      const hardExpiresAt = addYears(now, HARD_YEARS);
      const account = book.add({
        externalId,
        revoked: false,
        realmId: externalId,
        hardExpiresAt,
        refresh: issueRefresh({ externalId, hardExpiresAt }, now),
        access: book.issue(externalId, "access", "sb_qb_at_", now, ACCESS_SECONDS),
      });
      return {
        external_id: externalId,
        credentials: { refresh_token: account.refresh.value, access_token: account.access.value },
        config: { realm_id: account.realmId },
      };
    },

    inspect(externalId) {
      const a = book.get(externalId);
      return a && describeAccount(a, a.refresh, a.access);
    },
  };
  return self;
}
