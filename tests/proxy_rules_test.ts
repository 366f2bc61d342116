// The proxy's pure rules (functions-shared/providers/proxy.ts): which calls are writes (never
// sent again after the provider may have acted), and where a call goes, with the connection's
// API version where the caller left it out.
import assert from "node:assert/strict";
import { isWrite, type ProxyCall, proxyTarget } from "../functions-shared/providers/proxy.ts";
import { adapters } from "../functions-shared/providers/registry.ts";
import type { ConnectionRef } from "../functions-shared/providers/types.ts";

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

function call(method: string, path: string, body: unknown = null, query = ""): ProxyCall {
  return { method, path, query, headers: {}, body: body === null ? null : json(body) };
}

Deno.test("writes: every method but GET/HEAD/OPTIONS, except GraphQL queries", () => {
  const { lightspeed, shopify, shiphero } = adapters;
  const cases: [typeof lightspeed | typeof shopify | typeof shiphero, ProxyCall, boolean][] = [
    [lightspeed, call("GET", "/api/2.0/outlets"), false],
    [lightspeed, call("HEAD", "/api/2.0/outlets"), false],
    [lightspeed, call("PUT", "/api/2.1/products/1", { details: {} }), true],
    [lightspeed, call("POST", "/api/2.0/customers", { first_name: "A" }), true],
    [lightspeed, call("PATCH", "/api/2.0/customers/1", {}), true],
    [lightspeed, call("DELETE", "/api/2.0/customers/1"), true],
    [
      shopify,
      call("POST", "/admin/api/2026-10/graphql.json", { query: "{ shop { name } }" }),
      false,
    ],
    [
      shopify,
      call("POST", "/admin/api/2026-10/graphql.json", {
        query: "query Orders { orders(first: 5) { nodes { id } } }",
      }),
      false,
    ],
    [
      shopify,
      call("POST", "/admin/api/2026-10/graphql.json", {
        query: 'mutation { orderUpdate(input: {id: "gid://shopify/Order/1"}) { order { id } } }',
      }),
      true,
    ],
    // A mutation named in a string or a comment is not one; one after a query is.
    [
      shiphero,
      call("POST", "/graphql", {
        query: '# mutation\n{ orders(search: "mutation { x }") { data { id } } }',
      }),
      false,
    ],
    [shiphero, call("POST", "/graphql", { query: "query A { a } mutation B { b }" }), true],
    [shiphero, call("POST", "/graphql", "not json"), true],
    [shiphero, call("POST", "/graphql"), true],
    // A POST elsewhere than the GraphQL endpoint is a write whatever it holds.
    [shopify, call("POST", "/admin/api/2026-10/orders.json", { query: "{ a }" }), true],
  ];
  for (const [adapter, c, write] of cases) {
    assert.equal(isWrite(adapter, c), write, `${adapter.provider} ${c.method} ${c.path}`);
  }
});

Deno.test("targets: the connection's base URL, and the API version the caller left out", () => {
  const ref = (provider: ConnectionRef["provider"], config: Record<string, unknown>) =>
    ({ id: "c", provider, externalId: "x", config }) satisfies ConnectionRef;
  const target = (
    provider: keyof typeof adapters,
    config: Record<string, unknown>,
    c: ProxyCall,
  ) => proxyTarget(adapters[provider], ref(provider, config), c).toString();

  const shop = { shop: "demo.myshopify.com" };
  assert.equal(
    target("shopify", shop, call("POST", "/admin/api/graphql.json")),
    "https://demo.myshopify.com/admin/api/2026-10/graphql.json",
  );
  assert.equal(
    target("shopify", shop, call("GET", "/admin/api/2025-07/shop.json")),
    "https://demo.myshopify.com/admin/api/2025-07/shop.json",
    "a version the caller names is kept",
  );
  assert.equal(
    target(
      "quickbooks",
      { realm_id: "123" },
      call("GET", "/v3/company/123/query", null, "query=x"),
    ),
    "https://quickbooks.api.intuit.com/v3/company/123/query?query=x&minorversion=75",
  );
  assert.equal(
    target(
      "quickbooks",
      { realm_id: "123" },
      call("GET", "/v3/company/123/query", null, "minorversion=70"),
    ),
    "https://quickbooks.api.intuit.com/v3/company/123/query?minorversion=70",
  );
  assert.equal(
    target("lightspeed", { domain_prefix: "store", api_base_url: "http://127.0.0.1:9/ls" }, {
      ...call("GET", "/api/2.0/outlets", null, "page_size=5"),
    }),
    "http://127.0.0.1:9/ls/api/2.0/outlets?page_size=5",
  );
});
