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
  parseQuery,
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

function planRoot(field: FieldNode, account: { externalId: string; shop: string }): Plan {
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
    case "orders":
      return planConnection(ORDERS, field);
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

function graphqlError(fault: GraphqlFault): Response {
  return json({
    errors: [{
      message: fault.message,
      ...(fault.code ? { extensions: { code: fault.code } } : {}),
    }],
  });
}

export async function serveGraphql(
  world: SandboxWorld,
  account: { externalId: string; shop: string },
  req: Request,
  now: number,
): Promise<Response> {
  const body = await readGraphqlRequest(req);
  if (!body) return json({ errors: { query: "Required parameter missing or invalid" } }, 400);
  let plans: Plan[];
  try {
    const roots = rootFields(parseQuery(body.query, body.variables, "ruby"));
    validate(SCHEMA, "QueryRoot", roots, "ruby");
    plans = roots.map((field) => planRoot(field, account));
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
  return json({ data, extensions: costExtension(requested, actual, available, size) });
}
