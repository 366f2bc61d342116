/**
 * Just enough GraphQL for the sandboxes of the GraphQL providers (Shopify,
 * ShipHero): parses one query operation (variables, aliases, arguments, inline
 * fragments), checks its selections against a small schema, and renders a
 * resolved value with exactly the selected fields, as a real server would.
 *
 * Mutations are parsed by `parseOperation` for a server that serves some (Shopify's
 * appUninstall, ShipHero's order_update_line_items); anything else (named
 * fragments, directives, block strings) is answered with a GraphQL error, like
 * an unknown field: an adapter that sends what the sandbox does not understand
 * finds out in its tests, not in production. Messages follow each server's library: graphql-ruby for Shopify
 * ("ruby"), graphql-core / graphene for ShipHero ("graphene").
 */

export type Dialect = "ruby" | "graphene";

/** A query the server refuses: answered HTTP 200 with `errors`. */
export class GraphqlFault extends Error {
  override readonly name = "GraphqlFault";
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

/** An argument value after variables are substituted (enums are plain strings). */
export type ArgValue = string | number | boolean | null | ArgValue[] | { [key: string]: ArgValue };

export interface FieldNode {
  readonly kind: "field";
  readonly alias: string | undefined;
  readonly name: string;
  readonly args: ReadonlyMap<string, ArgValue>;
  readonly selections: readonly Selection[] | undefined;
}

export interface InlineFragment {
  readonly kind: "inline";
  /** undefined: `... { }` without a type condition. */
  readonly on: string | undefined;
  readonly selections: readonly Selection[];
}

export type Selection = FieldNode | InlineFragment;

// ---------------------------------------------------------------------------
// Lexer

type Token =
  | { kind: "punct"; value: string }
  | { kind: "name"; value: string }
  | { kind: "number"; value: number; integer: boolean }
  | { kind: "string"; value: string }
  | { kind: "eof"; value: "" };

const IGNORED = /(?:[\s,\uFEFF]+|#[^\n\r]*)+/y;
const PUNCT = /\.\.\.|[!$():=@[\]{}|&]/y;
const NAME = /[_A-Za-z][_0-9A-Za-z]*/y;
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\\n\r]|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*"/y;

function lex(source: string, dialect: Dialect): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = at;
    const m = re.exec(source);
    if (!m) return undefined;
    at = re.lastIndex;
    return m[0];
  };
  while (true) {
    match(IGNORED);
    if (at >= source.length) break;
    if (source.startsWith('"""', at)) {
      throw syntaxError(dialect, "block strings are not supported by the sandbox");
    }
    let text: string | undefined;
    if ((text = match(PUNCT)) !== undefined) tokens.push({ kind: "punct", value: text });
    else if ((text = match(NAME)) !== undefined) tokens.push({ kind: "name", value: text });
    else if ((text = match(NUMBER)) !== undefined) {
      tokens.push({ kind: "number", value: Number(text), integer: !/[.eE]/.test(text) });
    } else if ((text = match(STRING)) !== undefined) {
      tokens.push({ kind: "string", value: JSON.parse(text) as string });
    } else {
      throw syntaxError(dialect, `unexpected character ${JSON.stringify(source[at])}`);
    }
  }
  tokens.push({ kind: "eof", value: "" });
  return tokens;
}

function syntaxError(dialect: Dialect, detail: string): GraphqlFault {
  return dialect === "ruby"
    ? new GraphqlFault(`Parse error: ${detail}`, "parseError")
    : new GraphqlFault(`Syntax Error: ${detail}.`);
}

// ---------------------------------------------------------------------------
// Parser

interface VariableDef {
  readonly type: string;
  readonly nonNull: boolean;
  readonly defaultValue: ArgValue | undefined;
}

/** Parses a single query operation; `variables` fill in `$name` references. */
export function parseQuery(
  source: string,
  variables: Readonly<Record<string, unknown>>,
  dialect: Dialect,
): readonly Selection[] {
  const op = parseOperation(source, variables, dialect);
  if (op.kind === "mutation") {
    throw new GraphqlFault("The sandbox serves queries only, not mutations");
  }
  return op.selections;
}

/**
 * A single query or mutation operation. `inputObjects` names the schema's input object types,
 * whose variables are JSON objects (their fields are the resolver's to check).
 */
export function parseOperation(
  source: string,
  variables: Readonly<Record<string, unknown>>,
  dialect: Dialect,
  inputObjects: ReadonlySet<string> = new Set(),
): { kind: "query" | "mutation"; selections: readonly Selection[] } {
  return new Parser(lex(source, dialect), variables, dialect, inputObjects).document();
}

class Parser {
  #at = 0;
  readonly #defs = new Map<string, VariableDef>();

  constructor(
    readonly tokens: Token[],
    readonly variables: Readonly<Record<string, unknown>>,
    readonly dialect: Dialect,
    readonly inputObjects: ReadonlySet<string>,
  ) {}

  document(): { kind: "query" | "mutation"; selections: readonly Selection[] } {
    const head = this.#peek();
    let selections: readonly Selection[];
    let kind: "query" | "mutation" = "query";
    if (head.kind === "punct" && head.value === "{") {
      selections = this.#selectionSet();
    } else if (head.kind === "name" && (head.value === "query" || head.value === "mutation")) {
      kind = head.value;
      this.#next();
      if (this.#peek().kind === "name") this.#next();
      if (this.#isPunct("(")) this.#variableDefinitions();
      selections = this.#selectionSet();
    } else if (head.kind === "name" && head.value === "subscription") {
      throw new GraphqlFault("The sandbox serves queries only, not subscriptions");
    } else if (head.kind === "name" && head.value === "fragment") {
      throw new GraphqlFault("Fragment definitions are not supported by the sandbox");
    } else {
      throw this.#unexpected();
    }
    if (this.#peek().kind !== "eof") {
      throw new GraphqlFault("The sandbox serves exactly one operation per request");
    }
    return { kind, selections };
  }

  #variableDefinitions(): void {
    this.#expect("(");
    while (!this.#isPunct(")")) {
      this.#expect("$");
      const name = this.#name();
      this.#expect(":");
      const { type, nonNull } = this.#type();
      let defaultValue: ArgValue | undefined;
      if (this.#isPunct("=")) {
        this.#next();
        defaultValue = this.#value(true);
      }
      this.#defs.set(name, { type, nonNull, defaultValue });
    }
    this.#expect(")");
  }

  #type(): { type: string; nonNull: boolean } {
    let type: string;
    if (this.#isPunct("[")) {
      this.#next();
      type = `[${this.#type().type}]`;
      this.#expect("]");
    } else {
      type = this.#name();
    }
    const nonNull = this.#isPunct("!");
    if (nonNull) this.#next();
    return { type, nonNull };
  }

  #selectionSet(): Selection[] {
    this.#expect("{");
    const out: Selection[] = [];
    while (!this.#isPunct("}")) out.push(this.#selection());
    this.#expect("}");
    if (out.length === 0) throw this.#unexpected();
    return out;
  }

  #selection(): Selection {
    if (this.#isPunct("...")) {
      this.#next();
      const head = this.#peek();
      if (head.kind === "name" && head.value === "on") {
        this.#next();
        const on = this.#name();
        return { kind: "inline", on, selections: this.#selectionSet() };
      }
      if (this.#isPunct("{")) {
        return { kind: "inline", on: undefined, selections: this.#selectionSet() };
      }
      throw new GraphqlFault("Fragment spreads are not supported by the sandbox");
    }
    let name = this.#name();
    let alias: string | undefined;
    if (this.#isPunct(":")) {
      this.#next();
      alias = name;
      name = this.#name();
    }
    const args = new Map<string, ArgValue>();
    if (this.#isPunct("(")) {
      this.#next();
      while (!this.#isPunct(")")) {
        const arg = this.#name();
        this.#expect(":");
        args.set(arg, this.#value(false));
      }
      this.#expect(")");
    }
    if (this.#isPunct("@")) throw new GraphqlFault("Directives are not supported by the sandbox");
    const selections = this.#isPunct("{") ? this.#selectionSet() : undefined;
    return { kind: "field", alias, name, args, selections };
  }

  #value(constant: boolean): ArgValue {
    const token = this.#next();
    if (token.kind === "punct" && token.value === "$" && !constant) return this.#variable();
    if (token.kind === "number" || token.kind === "string") return token.value;
    if (token.kind === "name") {
      if (token.value === "true") return true;
      if (token.value === "false") return false;
      if (token.value === "null") return null;
      return token.value; // an enum value
    }
    if (token.kind === "punct" && token.value === "[") {
      const list: ArgValue[] = [];
      while (!this.#isPunct("]")) list.push(this.#value(constant));
      this.#next();
      return list;
    }
    if (token.kind === "punct" && token.value === "{") {
      const object: Record<string, ArgValue> = {};
      while (!this.#isPunct("}")) {
        const key = this.#name();
        this.#expect(":");
        object[key] = this.#value(constant);
      }
      this.#next();
      return object;
    }
    throw this.#unexpected(token);
  }

  #variable(): ArgValue {
    const name = this.#name();
    const def = this.#defs.get(name);
    if (!def) {
      throw new GraphqlFault(
        this.dialect === "ruby"
          ? `Variable $${name} is used by anonymous query but not declared`
          : `Variable '$${name}' is not defined.`,
        "variableNotDefined",
      );
    }
    const given = Object.hasOwn(this.variables, name) ? this.variables[name] : undefined;
    const value = given === undefined ? def.defaultValue ?? null : given;
    if (value === null && def.nonNull) {
      throw new GraphqlFault(
        this.dialect === "ruby"
          ? `Variable $${name} of type ${def.type}! was provided invalid value`
          : `Variable '$${name}' of required type '${def.type}!' was not provided.`,
        "variableMismatch",
      );
    }
    if (value !== null && !fitsType(value, def.type, this.inputObjects)) {
      throw new GraphqlFault(
        this.dialect === "ruby"
          ? `Variable $${name} of type ${def.type}${
            def.nonNull ? "!" : ""
          } was provided invalid value`
          : `Variable '$${name}' got invalid value ${
            JSON.stringify(value)
          }; Expected type '${def.type}'.`,
        "variableMismatch",
      );
    }
    return value as ArgValue;
  }

  #peek(): Token {
    return this.tokens[this.#at]!;
  }

  #next(): Token {
    const token = this.tokens[this.#at]!;
    if (token.kind !== "eof") this.#at++;
    return token;
  }

  #isPunct(value: string): boolean {
    const token = this.#peek();
    return token.kind === "punct" && token.value === value;
  }

  #expect(value: string): void {
    const token = this.#next();
    if (token.kind !== "punct" || token.value !== value) throw this.#unexpected(token);
  }

  #name(): string {
    const token = this.#next();
    if (token.kind !== "name") throw this.#unexpected(token);
    return token.value;
  }

  #unexpected(token: Token = this.#peek()): GraphqlFault {
    const shown = token.kind === "eof" ? "end of document" : JSON.stringify(String(token.value));
    return syntaxError(this.dialect, `unexpected ${shown}`);
  }
}

/** Built-in scalars are checked; input objects are objects; custom scalars and enums strings. */
function fitsType(value: unknown, type: string, inputObjects: ReadonlySet<string>): boolean {
  if (type.startsWith("[")) return Array.isArray(value);
  if (inputObjects.has(type)) {
    return typeof value === "object" && value !== null && !Array.isArray(value);
  }
  switch (type) {
    case "Int":
      return Number.isInteger(value);
    case "Float":
      return typeof value === "number";
    case "Boolean":
      return typeof value === "boolean";
    default:
      return typeof value === "string";
  }
}

// ---------------------------------------------------------------------------
// Schema checks and rendering

export interface FieldDef {
  /** An object type of the schema, or a scalar name. */
  readonly type: string;
  readonly args?: readonly string[];
}

export interface TypeDef {
  readonly fields: Readonly<Record<string, string | FieldDef>>;
  /** Interfaces: the object types an inline fragment may name. */
  readonly possibleTypes?: readonly string[];
}

export type Schema = Readonly<Record<string, TypeDef>>;

function fieldDef(schema: Schema, type: string, field: string): FieldDef | undefined {
  const def = schema[type]?.fields[field];
  return typeof def === "string" ? { type: def } : def;
}

/** Checks every selected field and argument against `schema`, from the type `type`. */
export function validate(
  schema: Schema,
  type: string,
  selections: readonly Selection[],
  dialect: Dialect,
): void {
  for (const sel of selections) {
    if (sel.kind === "inline") {
      const on = sel.on ?? type;
      if (on !== type && !schema[type]?.possibleTypes?.includes(on)) {
        throw new GraphqlFault(
          dialect === "ruby"
            ? `Fragment on ${on} can't be spread inside ${type}`
            : `Fragment cannot be spread here as objects of type '${type}' can never be of type '${on}'.`,
          "fragmentSpreadTypeMismatch",
        );
      }
      validate(schema, on, sel.selections, dialect);
      continue;
    }
    if (sel.name === "__typename") {
      if (sel.selections) throw selectionOnScalar(dialect, sel.name, "String");
      continue;
    }
    const def = fieldDef(schema, type, sel.name);
    if (!def) {
      throw new GraphqlFault(
        dialect === "ruby"
          ? `Field '${sel.name}' doesn't exist on type '${type}'`
          : `Cannot query field '${sel.name}' on type '${type}'.`,
        "undefinedField",
      );
    }
    for (const arg of sel.args.keys()) {
      if (!def.args?.includes(arg)) {
        throw new GraphqlFault(
          dialect === "ruby"
            ? `Field '${sel.name}' doesn't accept argument '${arg}'`
            : `Unknown argument '${arg}' on field '${type}.${sel.name}'.`,
          "argumentNotAccepted",
        );
      }
    }
    const isObject = schema[def.type] !== undefined;
    if (isObject && !sel.selections) {
      throw new GraphqlFault(
        dialect === "ruby"
          ? `Field must have selections (field '${sel.name}' returns ${def.type} but has no selections. Did you mean '${sel.name} { ... }'?)`
          : `Field '${sel.name}' of type '${def.type}' must have a selection of subfields. Did you mean '${sel.name} { ... }'?`,
        "selectionMismatch",
      );
    }
    if (!isObject && sel.selections) throw selectionOnScalar(dialect, sel.name, def.type);
    if (isObject) validate(schema, def.type, sel.selections!, dialect);
  }
}

function selectionOnScalar(dialect: Dialect, field: string, type: string): GraphqlFault {
  return new GraphqlFault(
    dialect === "ruby"
      ? `Selections can't be made on scalars (field '${field}' returns ${type} but has selections)`
      : `Field '${field}' must not have a selection since type '${type}' has no subfields.`,
    "selectionMismatch",
  );
}

/**
 * The selected part of a resolved value (plain objects and arrays), keyed by alias. Objects may
 * carry `__typename` (interfaces: the concrete type, for `... on Type`).
 */
export function render(
  schema: Schema,
  type: string,
  value: unknown,
  selections: readonly Selection[],
): unknown {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map((item) => render(schema, type, item, selections));
  const object = value as Record<string, unknown>;
  const concrete = typeof object.__typename === "string" ? object.__typename : type;
  const out: Record<string, unknown> = {};
  for (const sel of selections) {
    if (sel.kind === "inline") {
      if (sel.on === undefined || sel.on === type || sel.on === concrete) {
        Object.assign(out, render(schema, sel.on ?? type, object, sel.selections));
      }
      continue;
    }
    const key = sel.alias ?? sel.name;
    if (sel.name === "__typename") {
      out[key] = concrete;
      continue;
    }
    const field = object[sel.name];
    const def = fieldDef(schema, concrete, sel.name) ?? fieldDef(schema, type, sel.name);
    out[key] = sel.selections && def
      ? render(schema, def.type, field, sel.selections)
      : field ?? null;
  }
  return out;
}

/**
 * Resolves each planned root field against `source` and renders what the query selected, keyed
 * by alias; `charge` is what each resolution costs the caller (query cost, credits), summed.
 */
export function resolvePlans<S, R extends { value: unknown }>(
  schema: Schema,
  plans: readonly { field: FieldNode; type: string; resolve(source: S): R }[],
  source: S,
  charge: (resolved: R) => number,
): { data: Record<string, unknown>; charged: number } {
  const data: Record<string, unknown> = {};
  let charged = 0;
  for (const plan of plans) {
    const resolved = plan.resolve(source);
    charged += charge(resolved);
    data[plan.field.alias ?? plan.field.name] = render(
      schema,
      plan.type,
      resolved.value,
      plan.field.selections ?? [],
    );
  }
  return { data, charged };
}

/** The root fields of a query; an inline fragment at the root is not served. */
export function rootFields(selections: readonly Selection[]): FieldNode[] {
  return selections.map((sel) => {
    if (sel.kind === "field") return sel;
    throw new GraphqlFault("Inline fragments on the query root are not supported by the sandbox");
  });
}

/** The first selected field named `name` (aliases aside), for arguments of nested connections. */
export function findField(
  selections: readonly Selection[] | undefined,
  name: string,
): FieldNode | undefined {
  for (const sel of selections ?? []) {
    if (sel.kind === "field" && sel.name === name) return sel;
    if (sel.kind === "inline") {
      const found = findField(sel.selections, name);
      if (found) return found;
    }
  }
  return undefined;
}

/** `{query, variables}` of a GraphQL POST (JSON or `application/graphql`); undefined if unusable. */
export async function readGraphqlRequest(
  req: Request,
): Promise<{ query: string; variables: Record<string, unknown> } | undefined> {
  const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const text = await req.text();
  if (type === "application/graphql") return { query: text, variables: {} };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) return undefined;
  const { query, variables } = body as Record<string, unknown>;
  if (typeof query !== "string" || query.trim() === "") return undefined;
  if (variables === undefined || variables === null) return { query, variables: {} };
  if (typeof variables !== "object" || Array.isArray(variables)) return undefined;
  return { query, variables: variables as Record<string, unknown> };
}
