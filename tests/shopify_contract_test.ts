// Shopify contract tests: what Tether sends and expects, checked against artifacts Shopify
// publishes, with no network at test time (tests/fixtures/shopify/SOURCE.md says where each comes
// from). The GraphQL documents are validated with graphql-js against the official Admin API
// introspection of the pinned version; the facts Tether models (protected fields, the 60-day
// order window, the status words, the scopes, the webhook headers) are read from the same
// artifacts, so a model that drifts from them fails here.
import assert from "node:assert/strict";
import {
  buildClientSchema,
  getNamedType,
  type GraphQLSchema,
  type GraphQLType,
  type IntrospectionQuery,
  parse,
  TypeInfo,
  validate,
  visit,
  visitWithTypeInfo,
} from "graphql";
import {
  ACCESS_SCOPES_QUERY,
  facts,
  shopifyAdapter,
  UNINSTALL_MUTATION,
  VERIFY_QUERY,
} from "../functions-shared/providers/shopify/adapter.ts";
import {
  CALLBACK_TOLERANCE_SECONDS,
  DEFAULT_SCOPES,
  verifyShopifyHmac,
} from "../functions-shared/providers/shopify/oauth.ts";
import {
  CUSTOMERS_QUERY,
  DISPLAY_FULFILLMENT_OF_REST,
  displayFulfillmentOfRest,
  ORDERS_QUERY,
  PROTECTED_CUSTOMER_FIELDS,
} from "../functions-shared/providers/shopify/streams.ts";
import {
  CLASSIC_HEADERS,
  EVENTS_HEADERS,
  shopifyWebhooks,
} from "../functions-shared/providers/shopify/webhook.ts";
import { ProviderError } from "../functions-shared/providers/types.ts";
import { SCHEMA as SANDBOX_SCHEMA } from "../sandbox/providers/shopify/schema.ts";
import { hmacBase64 as sign, hmacHex } from "../scripts/local/signing.ts";

const FIXTURES = new URL("./fixtures/shopify/", import.meta.url);

interface RawField {
  name: string;
  isDeprecated: boolean;
  deprecationReason: string | null;
  isProtected?: boolean;
}
interface RawType {
  name: string;
  description: string | null;
  fields: RawField[] | null;
  enumValues: { name: string }[] | null;
}
interface Introspection {
  data: IntrospectionQuery;
  offline_scopes: {
    items: { type: string; typeName: string; offlineScopes: string[] }[];
  };
}

async function gunzipJson<T>(name: string): Promise<T> {
  const file = await Deno.open(new URL(name, FIXTURES));
  const text = await new Response(file.readable.pipeThrough(new DecompressionStream("gzip")))
    .text();
  return JSON.parse(text) as T;
}

const introspection = await gunzipJson<Introspection>(`admin_${facts.apiVersion}.json.gz`);
const schema: GraphQLSchema = buildClientSchema(introspection.data);
const rawTypes = new Map(
  (introspection.data.__schema.types as unknown as RawType[]).map((t) => [t.name, t]),
);

function rawField(type: string, field: string): RawField {
  const found = rawTypes.get(type)?.fields?.find((f) => f.name === field);
  assert.ok(found, `${type}.${field} is in the ${facts.apiVersion} schema`);
  return found;
}

function enumValues(type: string): string[] {
  const values = rawTypes.get(type)?.enumValues;
  assert.ok(values, `${type} is an enum of the schema`);
  return values.map((v) => v.name);
}

/** Every document Tether sends to the Admin API. */
const DOCUMENTS: Record<string, string> = {
  orders: ORDERS_QUERY,
  customers: CUSTOMERS_QUERY,
  verify: VERIFY_QUERY,
  "access scopes": ACCESS_SCOPES_QUERY,
  uninstall: UNINSTALL_MUTATION,
};

/** `Type.field` of every field a document selects, with its path under the root (aliases as named). */
function selectedFields(document: string): { coordinate: string; path: string[] }[] {
  const info = new TypeInfo(schema);
  const out: { coordinate: string; path: string[] }[] = [];
  const stack: string[] = [];
  visit(
    parse(document),
    visitWithTypeInfo(info, {
      Field: {
        enter(node) {
          stack.push(node.alias?.value ?? node.name.value);
          const parent = info.getParentType();
          if (parent) {
            out.push({ coordinate: `${parent.name}.${node.name.value}`, path: [...stack] });
          }
        },
        leave() {
          stack.pop();
        },
      },
    }),
  );
  return out;
}

Deno.test(`every Shopify document validates against the official Admin ${facts.apiVersion} schema`, () => {
  for (const [name, document] of Object.entries(DOCUMENTS)) {
    const errors = validate(schema, parse(document));
    assert.deepEqual(errors.map((e) => e.message), [], `${name}: validation errors`);
  }
  // The check can fail: the field Tether used to select wrongly is refused.
  const wrong = validate(schema, parse("{ orders(first: 1) { nodes { trackingNumber } } }"));
  assert.equal(wrong.length, 1);
});

Deno.test("no Shopify document selects a deprecated field", () => {
  for (const [name, document] of Object.entries(DOCUMENTS)) {
    for (const { coordinate } of selectedFields(document)) {
      const [type, field] = coordinate.split(".") as [string, string];
      const raw = rawField(type, field);
      assert.equal(raw.isDeprecated, false, `${name}: ${coordinate}: ${raw.deprecationReason}`);
    }
  }
  // What the audit found: Customer.email/phone are deprecated in favour of what Tether reads now.
  assert.match(rawField("Customer", "email").deprecationReason ?? "", /defaultEmailAddress/);
  assert.match(rawField("Customer", "phone").deprecationReason ?? "", /defaultPhoneNumber/);
});

Deno.test("every protected field Tether selects is one it handles when withheld, and only those", () => {
  const handled = new Set(Object.keys(PROTECTED_CUSTOMER_FIELDS));
  const seen = new Set<string>();
  for (const [name, document] of Object.entries(DOCUMENTS)) {
    for (const { coordinate, path } of selectedFields(document)) {
      const [type, field] = coordinate.split(".") as [string, string];
      if (!rawField(type, field).isProtected) continue;
      assert.equal(name, "customers", `${coordinate} is protected and selected by ${name}`);
      // customers > edges > node > …
      assert.deepEqual(path.slice(0, 3), ["customers", "edges", "node"], coordinate);
      const under = path.slice(3).join(".");
      assert.ok(handled.has(under), `${under} (${coordinate}) is protected but not handled`);
      seen.add(under);
    }
  }
  assert.deepEqual([...seen].sort(), [...handled].sort(), "every handled field is selected");
});

Deno.test("the 60-day order window and its scope are the Order type's own description", () => {
  const description = rawTypes.get("Order")?.description ?? "";
  assert.match(description, new RegExp(`last ${facts.ordersWindow.days} days`));
  assert.ok(description.includes(facts.ordersWindow.unlessScope), description);
});

Deno.test("REST fulfillment_status words map onto the GraphQL display enum", () => {
  const display = new Set(enumValues("OrderDisplayFulfillmentStatus"));
  // The REST words are the ones the Admin API's OrderCreateFulfillmentStatus mirrors (+ null).
  const rest = enumValues("OrderCreateFulfillmentStatus").map((v) => v.toLowerCase()).sort();
  assert.deepEqual(Object.keys(DISPLAY_FULFILLMENT_OF_REST).sort(), rest);
  for (const word of [...rest, null]) {
    const mapped = displayFulfillmentOfRest(word);
    assert.ok(display.has(mapped), `${word} → ${mapped} is an OrderDisplayFulfillmentStatus`);
  }
  assert.equal(displayFulfillmentOfRest(null), "UNFULFILLED");
  assert.equal(displayFulfillmentOfRest("shipped"), "shipped", "kept as sent, mapped as unknown");
});

Deno.test("the Shopify sandbox serves only types and fields the real schema has", () => {
  for (const [type, spec] of Object.entries(SANDBOX_SCHEMA)) {
    const real = schema.getType(type);
    assert.ok(real, `the sandbox's ${type} is a type of the real schema`);
    const realFields: Record<string, { type: GraphQLType }> = "getFields" in real
      ? real.getFields()
      : {};
    for (const [field, target] of Object.entries(spec.fields)) {
      const realField = realFields[field];
      assert.ok(realField, `${type}.${field} exists`);
      const named = getNamedType(realField.type);
      const want = typeof target === "string" ? target : target.type;
      assert.equal(named.name, want, `${type}.${field} is a ${named.name}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// OAuth

Deno.test("the authorize URL carries every parameter Shopify's authorization code grant requires", () => {
  // shopify.dev "Authorization code grant", step 3: https://{shop}.myshopify.com/admin/oauth/
  // authorize?client_id={client_id}&scope={scopes}&redirect_uri={redirect_uri}&state={nonce}
  // (grant_options[] only for online tokens, which Tether does not use).
  const app = { clientId: "client-1", clientSecret: "secret-1" };
  const url = new URL(shopifyAdapter.oauth.authorizeUrl({
    app,
    redirectUri: "https://tether.example/functions/v1/connect/shopify/callback",
    state: "nonce-1",
    baseUrl: undefined,
    account: "demo.myshopify.com",
  }));
  assert.equal(url.origin, "https://demo.myshopify.com");
  assert.equal(url.pathname, "/admin/oauth/authorize");
  assert.equal(url.searchParams.get("client_id"), "client-1");
  assert.equal(
    url.searchParams.get("redirect_uri"),
    "https://tether.example/functions/v1/connect/shopify/callback",
  );
  assert.equal(url.searchParams.get("state"), "nonce-1");
  assert.equal(url.searchParams.has("grant_options[]"), false, "offline token");
  const scopes = (url.searchParams.get("scope") ?? "").split(",");
  // What the types Tether reads require (the introspection's offline_scopes), and the window's scope.
  for (const typeName of ["Order", "Customer"]) {
    const need = introspection.offline_scopes.items.find((i) =>
      i.type === "type" && i.typeName === typeName
    );
    assert.ok(need, `${typeName} names its scopes`);
    assert.ok(need.offlineScopes.some((s) => scopes.includes(s)), `${typeName}: ${scopes}`);
  }
  assert.ok(scopes.includes(facts.ordersWindow.unlessScope), "read_all_orders is asked for");
  assert.equal(scopes.join(","), DEFAULT_SCOPES);
  // SHOPIFY_SCOPES replaces the list.
  const custom = new URL(shopifyAdapter.oauth.authorizeUrl({
    app,
    scopes: "read_orders,read_customers",
    redirectUri: "https://x.example/cb",
    state: "s",
    baseUrl: undefined,
    account: "demo.myshopify.com",
  }));
  assert.equal(custom.searchParams.get("scope"), "read_orders,read_customers");
});

Deno.test("the OAuth callback's signature is checked as the official library checks it, timestamp window included", async () => {
  const app = { clientId: "client-1", clientSecret: "secret-1" };
  const now = new Date("2025-12-01T12:00:00Z");
  const signed = async (timestamp: number) => {
    const params: Record<string, string> = {
      code: "0907a61c0c8d55e99db179b68161bc00",
      host: btoa("admin.shopify.com/store/demo"),
      shop: "demo.myshopify.com",
      state: "nonce-1",
      timestamp: String(timestamp),
    };
    // hex HMAC-SHA256 of the sorted query without hmac (hmac-validator.mjs stringifyQueryForAdmin).
    const message = new URLSearchParams(Object.entries(params).sort()).toString();
    const hmac = await hmacHex(app.clientSecret, message);
    return new URLSearchParams({ ...params, hmac });
  };
  const at = now.getTime() / 1000;
  assert.equal(await verifyShopifyHmac(await signed(at - 30), app, now), true);
  assert.equal(
    await verifyShopifyHmac(await signed(at - CALLBACK_TOLERANCE_SECONDS - 1), app, now),
    false,
    "a callback older than 90 s is refused",
  );
  assert.equal(
    await verifyShopifyHmac(await signed(at + CALLBACK_TOLERANCE_SECONDS + 1), app, now),
    false,
    "and one from the future",
  );
  const tampered = await signed(at);
  tampered.set("shop", "other.myshopify.com");
  assert.equal(await verifyShopifyHmac(tampered, app, now), false);
});

// ---------------------------------------------------------------------------------------------
// Protected customer data, as Shopify answers it

async function fixture<T>(name: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(new URL(name, FIXTURES))) as T;
}

const conn = {
  id: "00000000-0000-0000-0000-000000000001",
  provider: "shopify" as const,
  externalId: "demo.myshopify.com",
  config: { shop: "demo.myshopify.com", api_base_url: "https://demo.myshopify.com" },
};

/** The adapter's real request, answered with the published response instead of the network. */
function answering(body: unknown) {
  return {
    fetch: () => Promise.resolve(Response.json(body)),
    now: () => new Date("2025-12-01T00:00:00Z"),
    app: () => undefined,
  };
}

Deno.test("a customers page without protected-data approval stores what is allowed and names what was withheld", async () => {
  const { response } = await fixture<{ response: Record<string, unknown> }>(
    "protected_customer_data_response.json",
  );
  const page = await shopifyAdapter.streams.customers(
    answering(response),
    conn,
    { access_token: "shpat_test_token" },
    { cursor: null, from: null, until: new Date("2025-12-01T00:00:00Z") },
  );
  assert.equal(page.records.length, 1);
  const [record] = page.records;
  assert.equal(record!.external_id, "gid://shopify/Customer/1");
  assert.equal(record!.status, "active");
  assert.deepEqual(
    [record!.email, record!.first_name, record!.last_name, record!.phone],
    [null, null, null, null],
  );
  assert.deepEqual(page.withheld, ["email", "first_name", "last_name", "phone"]);

  // Narrow: an ACCESS_DENIED anywhere else (a missing scope) still fails the read.
  const errors = [{
    message: "Access denied for customers field. Required access: `read_customers` access scope.",
    path: ["customers"],
    extensions: { code: "ACCESS_DENIED" },
  }];
  await assert.rejects(
    shopifyAdapter.streams.customers(
      answering({ ...response, errors }),
      conn,
      { access_token: "shpat_test_token" },
      { cursor: null, from: null, until: new Date("2025-12-01T00:00:00Z") },
    ),
    (err) => err instanceof ProviderError && /Access denied for customers/.test(err.message),
  );
});

// ---------------------------------------------------------------------------------------------
// Webhook headers, both delivery types

Deno.test("webhooks are read under both published header sets (X-Shopify-* and Events' shopify-*)", async () => {
  const published = await fixture<Record<"classic" | "events", Record<string, string>>>(
    "webhook_headers.json",
  );
  // What the receiver reads is exactly what the library names (HTTP header names arrive lower-case).
  for (
    const [style, names] of [["classic", CLASSIC_HEADERS], ["events", EVENTS_HEADERS]] as const
  ) {
    const want = published[style];
    assert.equal(names.hmac, want.hmac!.toLowerCase(), `${style} hmac`);
    assert.equal(names.topic, want.topic!.toLowerCase(), `${style} topic`);
    assert.equal(names.shop, want.domain!.toLowerCase(), `${style} domain`);
    assert.equal(names.webhookId, want.webhookId!.toLowerCase(), `${style} webhook id`);
    assert.equal(names.triggeredAt, want.triggeredAt!.toLowerCase(), `${style} triggered at`);
    assert.equal(names.eventId, want.eventId!.toLowerCase(), `${style} event id`);
  }

  const body = JSON.stringify({
    id: 1,
    admin_graphql_api_id: "gid://shopify/Customer/1",
    first_name: "A",
    updated_at: "2025-11-30T10:00:00-05:00",
  });
  const received = [];
  for (const style of ["classic", "events"] as const) {
    const names = published[style];
    const headers: Record<string, string> = {
      [names.hmac!.toLowerCase()]: await sign("app-secret", body),
      [names.topic!.toLowerCase()]: "customers/update",
      [names.domain!.toLowerCase()]: "demo.myshopify.com",
      [names.webhookId!.toLowerCase()]: crypto.randomUUID(),
      [names.apiVersion!.toLowerCase()]: facts.apiVersion,
    };
    const events = await shopifyWebhooks.receive({
      secrets: {
        shopify: ["app-secret"],
        quickbooks: [],
        lightspeed: [],
        lightspeedEncoding: "hex",
      },
      misconfigured: () => {},
      connectionByExternalId: () => Promise.resolve(undefined),
      connectionByConfigOrExternalId: (key, value) =>
        Promise.resolve(
          key === "shop" && value === "demo.myshopify.com"
            ? { id: conn.id, status: "active" }
            : undefined,
        ),
      connectionInPath: () => Promise.reject(new Error("not used")),
    }, { headers, raw: new TextEncoder().encode(body), path: [] });
    assert.equal(events.length, 1, style);
    assert.equal(events[0]!.connection?.id, conn.id, `${style}: routed by the shop domain`);
    assert.equal(events[0]!.topic, "customers/update");
    received.push(events[0]!.eventId);
  }
  assert.equal(
    received[0],
    received[1],
    "the same signed body is the same event, whatever its headers",
  );
});

Deno.test("published REST order and customer bodies are parsed and mapped as the sync would store them", async () => {
  const samples = await fixture<Record<string, Record<string, unknown>>>("webhook_bodies.json");
  const upserts: { stream: string; records: Record<string, unknown>[] }[] = [];
  const sink = {
    upsert: (stream: string, records: unknown[]) => {
      upserts.push({ stream, records: records as Record<string, unknown>[] });
      return Promise.resolve();
    },
    applyOrderFacts: () => Promise.reject(new Error("not used")),
    withAccessToken: () => Promise.reject(new Error("not used")),
  };
  const receivedAt = new Date("2025-12-01T00:00:00Z");
  for (const topic of ["orders/updated", "customers/update"]) {
    await shopifyWebhooks.process(sink as never, {
      topic,
      payload: { body: samples[topic] },
      receivedAt,
    });
  }
  const [order, customer] = upserts;
  assert.equal(order?.stream, "orders");
  const o = order!.records[0]!;
  assert.equal(o.external_id, "gid://shopify/Order/450789469");
  assert.equal(o.order_number, "#1001");
  assert.equal(o.status, "UNFULFILLED", "REST null → the GraphQL enum word");
  assert.equal(o.provider_fulfillment_status, "UNFULFILLED");
  assert.equal(o.tracking_number, "1Z2345");
  assert.equal(o.total_price, "598.94");
  assert.equal(o.currency, "USD");
  assert.equal(o.customer_external_id, "gid://shopify/Customer/207119551");
  assert.equal(o.ordered_at, "2008-01-10T16:00:00.000Z");
  assert.equal(o.remote_updated_at, "2008-01-10T16:00:00.000Z");
  // REST financial_status words are the display enum's, in lower case (kept in raw on both paths).
  const financial = String(samples["orders/updated"]!.financial_status).toUpperCase();
  assert.ok(enumValues("OrderDisplayFinancialStatus").includes(financial), financial);

  assert.equal(customer?.stream, "customers");
  const c = customer!.records[0]!;
  assert.deepEqual(
    [c.external_id, c.email, c.first_name, c.last_name, c.phone, c.status, c.remote_updated_at],
    [
      "gid://shopify/Customer/207119551",
      "bob.norman@mail.example.com",
      "Bob",
      "Norman",
      "+16136120707",
      "active",
      "2023-10-03T17:35:01.000Z",
    ],
  );
});
