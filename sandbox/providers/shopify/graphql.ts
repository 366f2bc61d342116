/**
 * The GraphQL endpoint: a query parsed and validated against the schema, priced in query cost
 * ("every response carries extensions.cost{…}") and paid from the shop's bucket in `world.limits`
 * before it runs.
 */
import { json } from "../../http.ts";
import type { BucketSize } from "../../limits.ts";
import type { SandboxWorld } from "../../provider.ts";
import {
  type FieldNode,
  GraphqlFault,
  parseOperation,
  readGraphqlRequest,
  resolvePlans,
  rootFields,
  validate,
} from "../graphql_lite.ts";
import { CUSTOMERS, EVENTS, ORDERS, type Plan, planConnection } from "./connections.ts";
import { gid } from "./render.ts";
import { SCHEMA } from "./schema.ts";

/** "Query cost is N, which exceeds the single query max cost limit (1000)." */
const MAX_QUERY_COST = 1000;
const RATE_LIMIT_DOCS = "https://shopify.dev/api/usage/rate-limits";

/** What the endpoint needs of the shop's account (auth.ts `ShopifyAccount`). */
interface ShopAccount {
  externalId: string;
  shop: string;
  scopes: string;
  protectedCustomerData: boolean;
}

/**
 * "Only the last 60 days' worth of orders from a store are accessible from the `Order` object by
 * default … request access to all orders … the `read_all_orders` … scopes" (the `Order`
 * description of the Admin 2025-10 … 2026-10 introspections). Older orders are simply not there: no error.
 */
export const ORDERS_WINDOW_DAYS = 60;

function grants(account: ShopAccount, scope: string): boolean {
  return account.scopes.split(",").map((s) => s.trim()).includes(scope);
}

function planRoot(field: FieldNode, account: ShopAccount, now: number): Plan {
  if (field.name === "currentAppInstallation") {
    return {
      field,
      type: "AppInstallation",
      requested: 1,
      resolve: () => ({
        value: {
          id: gid("AppInstallation", 1),
          accessScopes: account.scopes.split(",").map((handle) => ({
            handle: handle.trim(),
            description: null,
          })),
        },
        cost: 1,
      }),
    };
  }
  if (field.name === "shop") {
    return {
      field,
      type: "Shop",
      requested: 1,
      resolve: () => ({
        value: {
          id: gid("Shop", 1),
          name: `Sandbox ${account.externalId}`,
          myshopifyDomain: account.shop,
          email: `owner@${account.shop}`,
        },
        cost: 1,
      }),
    };
  }
  switch (field.name) {
    case "orders": {
      if (grants(account, "read_all_orders")) return planConnection(ORDERS, field);
      const oldest = now - ORDERS_WINDOW_DAYS * 86_400_000;
      return planConnection({
        ...ORDERS,
        records: (set) => [...ORDERS.records(set)].filter((order) => order.createdAt >= oldest),
      }, field);
    }
    case "customers":
      return planConnection(CUSTOMERS, field);
    default: // "events": validate() admits no other root field
      return planConnection(EVENTS, field);
  }
}

/** "every response carries extensions.cost{…}". */
function costExtension(
  requested: number,
  actual: number | null,
  available: number,
  size: BucketSize,
) {
  return {
    cost: {
      requestedQueryCost: requested,
      actualQueryCost: actual,
      throttleStatus: {
        maximumAvailable: size.capacity,
        currentlyAvailable: Math.floor(available),
        restoreRate: size.restorePerSecond,
      },
    },
  };
}

/**
 * Protected customer data, as Shopify answers an app without approval: each protected field of
 * every customer node null, with one error per field (shopify.dev docs/apps/launch/
 * protected-customer-data, "GraphQL Admin API request with unapproved fields"): "This app is not
 * approved to use the email field…", `path` to the field, `extensions.code` ACCESS_DENIED. A
 * non-null protected field (`emailAddress`, `phoneNumber`) nulls its parent object.
 */
const PROTECTED: readonly (readonly [string] | readonly [string, string])[] = [
  ["email"],
  ["phone"],
  ["firstName"],
  ["lastName"],
  ["displayName"],
  ["defaultEmailAddress", "emailAddress"],
  ["defaultPhoneNumber", "phoneNumber"],
];
const CUSTOMER_DATA_DOCS = "https://partners.shopify.com/1/apps/1/customer_data";

function withholdProtected(data: Record<string, unknown>, errors: unknown[]): void {
  const customers = data.customers as { edges?: { node?: Record<string, unknown> }[] } | undefined;
  for (const [index, edge] of (customers?.edges ?? []).entries()) {
    const node = edge.node;
    if (!node) continue;
    for (const path of PROTECTED) {
      const [first, second] = path;
      if (!(first in node)) continue; // not selected
      if (second === undefined) {
        node[first] = null;
      } else {
        const holder = node[first] as Record<string, unknown> | null;
        if (holder === null || !(second in holder)) continue; // nothing resolved, no error
        node[first] = null;
      }
      const field = path.at(-1)!;
      errors.push({
        message:
          `This app is not approved to use the ${field} field. See ${CUSTOMER_DATA_DOCS} for more details.`,
        path: ["customers", "edges", index, "node", ...path],
        extensions: {
          code: "ACCESS_DENIED",
          documentation: CUSTOMER_DATA_DOCS,
          requiredAccess: `Shopify approval is required before using the ${field} field.`,
        },
      });
    }
  }
}

function graphqlError(fault: GraphqlFault): Response {
  return json({
    errors: [{
      message: fault.message,
      ...(fault.code ? { extensions: { code: fault.code } } : {}),
    }],
  });
}

/**
 * The one mutation served, appUninstall: "Uninstalls an App from a shop … Shopify automatically
 * performs cleanup tasks" and "If an app is uninstalled …, the access tokens will become
 * unusable" (shopify.dev, "Uninstall a Shopify app with an API request"). It is charged 10
 * points, the default cost of a mutation in the "Cost calculation" table of
 * shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits (read from memory of that table: the
 * copy searched here stops before its Mutation row; a real response's actualQueryCost corrects
 * the adapter's pacer either way).
 */
function planMutation(field: FieldNode, uninstall: () => void): Plan {
  return {
    field,
    type: "AppUninstallPayload",
    requested: 10,
    resolve: () => {
      uninstall();
      return { value: { app: { id: gid("App", 1) }, userErrors: [] }, cost: 10 };
    },
  };
}

export async function serveGraphql(
  world: SandboxWorld,
  account: ShopAccount,
  req: Request,
  now: number,
  uninstall: () => void,
): Promise<Response> {
  const body = await readGraphqlRequest(req);
  if (!body) return json({ errors: { query: "Required parameter missing or invalid" } }, 400);
  let plans: Plan[];
  try {
    const op = parseOperation(body.query, body.variables, "ruby");
    const roots = rootFields(op.selections);
    validate(SCHEMA, op.kind === "mutation" ? "Mutation" : "QueryRoot", roots, "ruby");
    plans = roots.map((field) =>
      op.kind === "mutation" ? planMutation(field, uninstall) : planRoot(field, account, now)
    );
  } catch (error) {
    if (error instanceof GraphqlFault) return graphqlError(error);
    throw error;
  }

  const size = world.limits.size("shopify");
  const requested = plans.reduce((sum, plan) => sum + plan.requested, 0);
  const maxCost = Math.min(MAX_QUERY_COST, size.capacity);
  if (requested > maxCost) {
    return json({
      errors: [{
        message:
          `Query cost is ${requested}, which exceeds the single query max cost limit (${maxCost}).\n\nSee ${RATE_LIMIT_DOCS} for more information on how to reduce the cost of your query.`,
        extensions: { code: "MAX_COST_EXCEEDED", cost: requested, maxCost },
      }],
    });
  }
  // "A throttled query is HTTP 200 with errors:[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]".
  const taken = world.limits.take("shopify", account.externalId, requested, now);
  if (!taken.ok) {
    return json({
      errors: [{
        message: "Throttled",
        extensions: { code: "THROTTLED", documentation: RATE_LIMIT_DOCS },
      }],
      extensions: costExtension(requested, null, taken.available, size),
    });
  }

  const set = world.data.get("shopify", account.externalId);
  const { data, charged: actual } = resolvePlans(SCHEMA, plans, set, (r) => r.cost);
  // What was reserved but not used (fewer nodes than `first`) goes back to the bucket.
  world.limits.refund("shopify", account.externalId, requested - actual, now);
  const available = world.limits.level("shopify", account.externalId, now);
  const errors: unknown[] = [];
  if (!account.protectedCustomerData) withholdProtected(data, errors);
  return json({
    data,
    ...(errors.length > 0 ? { errors } : {}),
    extensions: costExtension(requested, actual, available, size),
  });
}
