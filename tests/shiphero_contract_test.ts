// Contract: every GraphQL document Tether sends to ShipHero validates (graphql-js) against
// ShipHero's published public-API schema, committed as SDL in tests/fixtures/shiphero/schema.graphql
// (provenance in its header). No network at test time.
import assert from "node:assert/strict";
import {
  buildSchema,
  getNamedType,
  getVariableValues,
  type GraphQLSchema,
  isInputObjectType,
  isObjectType,
  type OperationDefinitionNode,
  parse,
  validate,
} from "graphql";
import * as adapter from "../functions-shared/providers/shiphero/adapter.ts";
import * as streams from "../functions-shared/providers/shiphero/streams.ts";
import {
  customsValuesInput,
  ORDER_LINE_ITEMS_QUERY,
  SET_CUSTOMS_VALUES_MUTATION,
} from "../client/examples/customs_values.ts";
import {
  SCHEMA as SANDBOX_SCHEMA,
  UPDATE_LINE_ITEM_INPUT,
  UPDATE_LINE_ITEMS_INPUT,
} from "../sandbox/providers/shiphero.ts";

const FOLDER = new URL("../functions-shared/providers/shiphero/", import.meta.url);

function schema(): GraphQLSchema {
  const sdl = Deno.readTextFileSync(new URL("./fixtures/shiphero/schema.graphql", import.meta.url));
  return buildSchema(sdl);
}

/** Every exported `*_QUERY` document of the ShipHero provider. */
function documents(): [string, string][] {
  return [...Object.entries(adapter), ...Object.entries(streams)]
    .filter(([name, value]) => name.endsWith("_QUERY") && typeof value === "string")
    .map(([name, value]) => [name, value as string]);
}

function errorsOf(s: GraphQLSchema, document: string): string[] {
  return validate(s, parse(document)).map((e) => e.message);
}

Deno.test("every ShipHero GraphQL document validates against ShipHero's public schema", () => {
  const s = schema();
  const docs = documents();
  assert.deepEqual(docs.map(([name]) => name).sort(), [
    "ORDERS_QUERY",
    "SHIPMENT_ORDER_QUERY",
    "VERIFY_QUERY",
  ]);
  for (const [name, document] of docs) {
    assert.deepEqual(errorsOf(s, document), [], name);
  }
});

Deno.test("the ShipHero provider sends no GraphQL document the contract test does not see", () => {
  // Every document literal in the provider's source ("query …" / `query …`) is one of the
  // exported ones above: a new document cannot skip validation by staying private.
  let literals = 0;
  for (const entry of Deno.readDirSync(FOLDER)) {
    if (!entry.name.endsWith(".ts")) continue;
    const source = Deno.readTextFileSync(new URL(entry.name, FOLDER));
    literals += source.match(/["`](?:query|mutation)\b[\s\w($]/g)?.length ?? 0;
  }
  assert.equal(literals, documents().length);
});

Deno.test("the ShipHero schema is strict: the fields Tether once assumed are refused", () => {
  const s = schema();
  // The Shipment Update sample has no order_uuid, and neither has a Shipment.
  assert.match(
    errorsOf(s, 'query { shipment(id: "x") { data { order_uuid } } }').join(),
    /Cannot query field "order_uuid" on type "Shipment"/,
  );
  // `orders` has no `first` of its own: it pages inside `data`.
  assert.match(
    errorsOf(s, "query { orders(first: 2) { complexity } }").join(),
    /Unknown argument "first"/,
  );
  // The webhook secret is a field of each Webhook object webhook_create returns.
  assert.deepEqual(
    errorsOf(
      s,
      `mutation { webhook_create(data: {name: "Shipment Update", url: "https://x"}) {
        webhook { name shared_signature_secret } } }`,
    ),
    [],
  );
});

Deno.test("the customs-values example's documents and variables validate against ShipHero's schema", () => {
  const s = schema();
  assert.deepEqual(errorsOf(s, ORDER_LINE_ITEMS_QUERY), []);
  assert.deepEqual(errorsOf(s, SET_CUSTOMS_VALUES_MUTATION), []);
  const variables = (document: string, inputs: Record<string, unknown>) => {
    const op = parse(document).definitions[0] as OperationDefinitionNode;
    const coerced = getVariableValues(s, op.variableDefinitions ?? [], inputs);
    return "errors" in coerced ? coerced.errors!.map((e) => e.message) : [];
  };
  const items = [{ id: btoa("LineItem:10"), price: "12.50", customs_value: null }];
  assert.deepEqual(
    variables(SET_CUSTOMS_VALUES_MUTATION, { data: customsValuesInput(btoa("Order:1"), items) }),
    [],
  );
  assert.deepEqual(variables(ORDER_LINE_ITEMS_QUERY, { id: btoa("Order:1"), after: null }), []);
  // The check has teeth: a number where ShipHero takes a decimal string is refused.
  assert.match(
    variables(SET_CUSTOMS_VALUES_MUTATION, {
      data: { order_id: "x", line_items: [{ id: "y", customs_value: 12.5 }] },
    }).join(),
    /String cannot represent a non string value/,
  );
});

Deno.test("what the ShipHero sandbox serves is in ShipHero's schema: types, fields, arguments, inputs", () => {
  const s = schema();
  const missing: string[] = [];
  for (const [typeName, def] of Object.entries(SANDBOX_SCHEMA)) {
    const type = s.getType(typeName);
    if (!isObjectType(type)) {
      missing.push(typeName);
      continue;
    }
    for (const [fieldName, field] of Object.entries(def.fields)) {
      const real = type.getFields()[fieldName];
      if (!real) {
        missing.push(`${typeName}.${fieldName}`);
        continue;
      }
      const target = typeof field === "string" ? field : field.type;
      const named = getNamedType(real.type).name;
      if (target.replace(/[[\]]/g, "") !== named) {
        missing.push(`${typeName}.${fieldName}: ${named}`);
      }
      const args = typeof field === "string" ? [] : field.args ?? [];
      for (const arg of args) {
        if (!real.args.some((a) => a.name === arg)) {
          missing.push(`${typeName}.${fieldName}(${arg})`);
        }
      }
    }
  }
  // Known before this test: the sandbox renders a label's tracking_url, which the 2022 SDL does
  // not have (the current ShippingLabel page lists none either; LastMileLabel has one). No
  // document Tether sends asks for it.
  assert.deepEqual(missing, ["ShippingLabel.tracking_url"]);
  const inputFields = (name: string) => {
    const type = s.getType(name);
    assert.ok(isInputObjectType(type), name);
    return Object.keys(type.getFields());
  };
  assert.deepEqual([...UPDATE_LINE_ITEMS_INPUT], inputFields("UpdateLineItemsInput"));
  assert.deepEqual([...UPDATE_LINE_ITEM_INPUT], inputFields("UpdateLineItemInput"));
});
