// Contract: every GraphQL document Tether sends to ShipHero validates (graphql-js) against
// ShipHero's published public-API schema, committed as SDL in tests/fixtures/shiphero/schema.graphql
// (provenance in its header). No network at test time.
import assert from "node:assert/strict";
import { buildSchema, type GraphQLSchema, parse, validate } from "graphql";
import * as adapter from "../functions-shared/providers/shiphero/adapter.ts";
import * as streams from "../functions-shared/providers/shiphero/streams.ts";

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
