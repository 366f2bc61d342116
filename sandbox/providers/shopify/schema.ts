/** The part of the GraphQL Admin API schema the sandbox serves (graphql_lite.ts validates against it). */
import { GraphqlFault, type Schema } from "../graphql_lite.ts";

const CONNECTION_ARGS = ["first", "after", "last", "before", "query", "sortKey", "reverse"];
const PAGE_INFO = { type: "PageInfo" };
const EVENT_FIELDS = {
  id: "ID",
  action: "String",
  createdAt: "DateTime",
  message: "FormattedString",
  appTitle: "String",
  attributeToApp: "Boolean",
  attributeToUser: "Boolean",
  criticalAlert: "Boolean",
};

function connectionTypes(node: string): Schema {
  return {
    [`${node}Connection`]: {
      fields: { edges: `${node}Edge`, nodes: node, pageInfo: PAGE_INFO },
    },
    [`${node}Edge`]: { fields: { cursor: "String", node } },
  };
}

export const SCHEMA: Schema = {
  QueryRoot: {
    fields: {
      shop: "Shop",
      orders: { type: "OrderConnection", args: CONNECTION_ARGS },
      customers: { type: "CustomerConnection", args: CONNECTION_ARGS },
      events: { type: "EventConnection", args: CONNECTION_ARGS },
      currentAppInstallation: "AppInstallation",
    },
  },
  // "appUninstall: Uninstalls an App from a shop. Apps use this mutation to uninstall themselves"
  // (the Mutation type of the Admin 2026-10 introspection, tests/fixtures/shopify/).
  Mutation: { fields: { appUninstall: "AppUninstallPayload" } },
  AppUninstallPayload: { fields: { app: "App", userErrors: "AppUninstallAppUninstallError" } },
  App: { fields: { id: "ID" } },
  AppUninstallAppUninstallError: {
    fields: { field: "String", message: "String", code: "AppUninstallAppUninstallErrorCode" },
  },
  AppInstallation: { fields: { id: "ID", accessScopes: "AccessScope" } },
  AccessScope: { fields: { handle: "String", description: "String" } },
  Shop: { fields: { id: "ID", name: "String", myshopifyDomain: "String", email: "String" } },
  PageInfo: {
    fields: {
      hasNextPage: "Boolean",
      hasPreviousPage: "Boolean",
      startCursor: "String",
      endCursor: "String",
    },
  },
  ...connectionTypes("Order"),
  Order: {
    fields: {
      id: "ID",
      name: "String",
      email: "String",
      createdAt: "DateTime",
      processedAt: "DateTime",
      updatedAt: "DateTime",
      cancelledAt: "DateTime",
      closed: "Boolean",
      displayFinancialStatus: "OrderDisplayFinancialStatus",
      displayFulfillmentStatus: "OrderDisplayFulfillmentStatus",
      currencyCode: "CurrencyCode",
      totalPriceSet: "MoneyBag",
      customer: "Customer",
      fulfillments: { type: "Fulfillment", args: ["first"] },
    },
  },
  MoneyBag: { fields: { shopMoney: "MoneyV2", presentmentMoney: "MoneyV2" } },
  MoneyV2: { fields: { amount: "Decimal", currencyCode: "CurrencyCode" } },
  Fulfillment: {
    fields: {
      id: "ID",
      status: "FulfillmentStatus",
      createdAt: "DateTime",
      trackingInfo: { type: "FulfillmentTrackingInfo", args: ["first"] },
    },
  },
  FulfillmentTrackingInfo: { fields: { number: "String", company: "String", url: "URL" } },
  ...connectionTypes("Customer"),
  Customer: {
    fields: {
      id: "ID",
      email: "String",
      firstName: "String",
      lastName: "String",
      displayName: "String",
      phone: "String",
      defaultEmailAddress: "CustomerEmailAddress",
      defaultPhoneNumber: "CustomerPhoneNumber",
      state: "CustomerState",
      createdAt: "DateTime",
      updatedAt: "DateTime",
    },
  },
  CustomerEmailAddress: { fields: { emailAddress: "String" } },
  CustomerPhoneNumber: { fields: { phoneNumber: "String" } },
  ...connectionTypes("Event"),
  Event: { fields: EVENT_FIELDS, possibleTypes: ["BasicEvent", "CommentEvent"] },
  BasicEvent: {
    fields: { ...EVENT_FIELDS, subjectId: "ID", subjectType: "EventSubjectType" },
  },
  CommentEvent: { fields: { ...EVENT_FIELDS, rawMessage: "String" } },
};

/** graphql-ruby's answer to an argument whose value does not fit its type. */
export function invalidArgument(
  field: string,
  arg: string,
  value: unknown,
  type: string,
): GraphqlFault {
  return new GraphqlFault(
    `Argument '${arg}' on Field '${field}' has an invalid value (${
      JSON.stringify(value)
    }). Expected type '${type}'.`,
    "argumentLiteralsIncompatible",
  );
}
