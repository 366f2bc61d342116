// Normalized order statuses: every provider's status words mapped onto one vocabulary
// (tether.orders' financial_status, fulfillment_status, shipping_status), in this one place. The
// adapters call the functions at the bottom from their order mapping (sync, backfill and webhook
// paths alike); the README's table is rendered from STATUS_TABLES (tests/order_status_test.ts
// fails when they differ).
//
// A table covers some of the three columns; the others are null for that provider (a store has
// no shipping status, a carrier no payment state). A word a table does not know maps to
// "unknown" in the columns it covers and is reported in `unknown_statuses`, which the jobs count
// in the run record: an unknown word never fails a sync.

import type {
  FinancialStatus,
  FulfillmentStatus,
  OrderRecord,
  ProviderName,
  ShippingStatus,
  StreamName,
  StreamRecords,
} from "./types.ts";

export interface NormalizedStatus {
  financial_status: FinancialStatus | null;
  fulfillment_status: FulfillmentStatus | null;
  shipping_status: ShippingStatus | null;
}

type Column = keyof NormalizedStatus;

/** What one provider word means. `canceled`: the word says the order was canceled (or voided). */
export interface StatusRow {
  financial_status?: FinancialStatus;
  fulfillment_status?: FulfillmentStatus;
  shipping_status?: ShippingStatus;
  canceled?: boolean;
  /** Where the meaning is Tether's reading rather than the source's words. */
  note?: string;
}

export interface StatusTable {
  provider: ProviderName;
  /** The provider's field the words come from. */
  field: string;
  /** The normalized columns this table sets (every row sets each of them). */
  columns: readonly Column[];
  /** Where the words and their meanings are published. */
  source: string;
  words: Readonly<Record<string, StatusRow>>;
}

// ---------------------------------------------------------------------------------------------
// The tables

/**
 * Shopify's `Order.displayFinancialStatus` (REST webhooks: `financial_status`, the same words in
 * lower case: the Admin API's OrderCreateFinancialStatus mirrors them). Every value of the pinned
 * version's enum has a row (tests/order_status_test.ts reads the introspection).
 */
export const SHOPIFY_FINANCIAL: StatusTable = {
  provider: "shopify",
  field: "displayFinancialStatus",
  columns: ["financial_status"],
  source:
    "Admin GraphQL `OrderDisplayFinancialStatus` (tests/fixtures/shopify/admin_2026-10.json.gz)",
  words: {
    PENDING: { financial_status: "pending" },
    AUTHORIZED: { financial_status: "authorized" },
    PAID: { financial_status: "paid" },
    PARTIALLY_PAID: { financial_status: "partially_paid" },
    REFUNDED: { financial_status: "refunded" },
    PARTIALLY_REFUNDED: { financial_status: "partially_refunded" },
    VOIDED: { financial_status: "voided" },
    EXPIRED: {
      financial_status: "voided",
      note: "an authorization not captured before the provider's deadline: nothing will be paid",
    },
  },
};

/** Shopify's `Order.displayFulfillmentStatus` (webhooks' REST words are mapped onto it first). */
export const SHOPIFY_FULFILLMENT: StatusTable = {
  provider: "shopify",
  field: "displayFulfillmentStatus",
  columns: ["fulfillment_status"],
  source:
    "Admin GraphQL `OrderDisplayFulfillmentStatus` (tests/fixtures/shopify/admin_2026-10.json.gz)",
  words: {
    UNFULFILLED: { fulfillment_status: "unfulfilled" },
    OPEN: { fulfillment_status: "unfulfilled" },
    SCHEDULED: { fulfillment_status: "unfulfilled" },
    PENDING_FULFILLMENT: { fulfillment_status: "unfulfilled" },
    IN_PROGRESS: {
      fulfillment_status: "unfulfilled",
      note: "fulfillment requested from the fulfillment service, nothing shipped yet",
    },
    REQUEST_DECLINED: { fulfillment_status: "unfulfilled" },
    ON_HOLD: { fulfillment_status: "on_hold" },
    PARTIALLY_FULFILLED: { fulfillment_status: "partial" },
    FULFILLED: { fulfillment_status: "fulfilled" },
    FULFILLMENT_NOT_REQUIRED: {
      fulfillment_status: "fulfilled",
      note: "no items to fulfill: nothing is left to ship",
    },
    RESTOCKED: { fulfillment_status: "restocked" },
  },
};

/**
 * ShipHero's `Order.fulfillment_status`, a String: the system statuses (an account may add custom
 * ones, which land as unknown).
 */
export const SHIPHERO_FULFILLMENT: StatusTable = {
  provider: "shiphero",
  field: "fulfillment_status",
  columns: ["fulfillment_status"],
  source:
    'software-help.shiphero.com "How to Use Order Statuses" (system statuses Default, Unfulfilled, Canceled, Fulfilled; custom statuses) and community.shiphero.com/t/753 (API words default, pending, unfulfilled, fulfilled, canceled)',
  words: {
    pending: { fulfillment_status: "unfulfilled" },
    default: { fulfillment_status: "unfulfilled" },
    unfulfilled: { fulfillment_status: "unfulfilled" },
    fulfilled: { fulfillment_status: "fulfilled" },
    canceled: { fulfillment_status: "unfulfilled", canceled: true },
  },
};

/** Lightspeed X-Series `sale.status` (the legacy status, still sent beside `state`). */
export const LIGHTSPEED_SALE: StatusTable = {
  provider: "lightspeed",
  field: "status",
  columns: ["financial_status", "fulfillment_status"],
  source:
    'x-series-api.lightspeedhq.com/docs/sales_statuses, /docs/sales_states_and_attributes and changelog 2020-02 "New Sales Fulfilment Statuses"',
  words: {
    SAVED: { financial_status: "pending", fulfillment_status: "unfulfilled" },
    OPEN: { financial_status: "pending", fulfillment_status: "unfulfilled" },
    CLOSED: { financial_status: "paid", fulfillment_status: "fulfilled" },
    ONACCOUNT: {
      financial_status: "pending",
      fulfillment_status: "fulfilled",
      note: "goods left the store, not paid in full",
    },
    ONACCOUNT_CLOSED: { financial_status: "paid", fulfillment_status: "fulfilled" },
    LAYBY: { financial_status: "pending", fulfillment_status: "unfulfilled" },
    LAYBY_CLOSED: { financial_status: "paid", fulfillment_status: "fulfilled" },
    AWAITING_DISPATCH: {
      financial_status: "paid",
      fulfillment_status: "unfulfilled",
      note: '"typically a sale received from e-commerce", paid at checkout',
    },
    DISPATCHED_CLOSED: { financial_status: "paid", fulfillment_status: "fulfilled" },
    AWAITING_PICKUP: {
      financial_status: "paid",
      fulfillment_status: "unfulfilled",
      note: '"typically a sale received from e-commerce", paid at checkout',
    },
    PICKED_UP_CLOSED: { financial_status: "paid", fulfillment_status: "fulfilled" },
    SERVICE: { financial_status: "pending", fulfillment_status: "unfulfilled" },
    SERVICE_CLOSED: { financial_status: "paid", fulfillment_status: "fulfilled" },
    VOIDED: { financial_status: "voided", fulfillment_status: "unfulfilled", canceled: true },
  },
};

/**
 * QuickBooks has no order status: an Invoice's or SalesReceipt's state is read from `Balance`
 * against `TotalAmt`, a void (amounts zeroed, "Voided" in the memo) and a deletion (CDC).
 */
export const QUICKBOOKS_BALANCE: StatusTable = {
  provider: "quickbooks",
  field: "Balance / TotalAmt",
  columns: ["financial_status"],
  source:
    'developer.intuit.com Invoice / SalesReceipt `Balance` against `TotalAmt` (QuickBooks Online help, "How does balance due work on invoices": a partial payment leaves the remaining amount, a full one $0), a void (amounts zeroed, "Voided" memo) and change data capture (`status: Deleted`)',
  words: {
    "Balance = 0": { financial_status: "paid" },
    "0 < Balance < TotalAmt": { financial_status: "partially_paid" },
    "Balance = TotalAmt": { financial_status: "pending" },
    Voided: { financial_status: "voided", canceled: true },
    Deleted: {
      financial_status: "voided",
      canceled: true,
      note: "the transaction no longer counts",
    },
  },
};

/**
 * Maystro's numeric `status` (the name Tether stores, and the French label Maystro's dashboard
 * shows). Maystro publishes no documentation: the codes and labels are those independent client
 * code quotes "from Maystro API documentation" (MaystroService, code-index id 9906604906; see
 * ../shared/findings/provider_audit.md M-7).
 */
export const MAYSTRO_STATUS: StatusTable = {
  provider: "maystro",
  field: "status",
  columns: ["shipping_status"],
  source: "MaystroService STATUS_MAPPING (client code, code-index id 9906604906; no official docs)",
  words: {
    "4": { shipping_status: "pending", note: "created · CRÉÉ" },
    "5": { shipping_status: "pending", note: "pickup_requested · DEMANDE DE RAMASSAGE" },
    "6": { shipping_status: "pending", note: "in_progress · EN COURS" },
    "8": { shipping_status: "pending", note: "awaiting_transit · EN ATTENTE DE TRANSIT" },
    "9": { shipping_status: "in_transit", note: "in_transit_to_ship · EN TRANSIT POUR EXPÉDITION" },
    "10": { shipping_status: "returned", note: "in_transit_for_return · EN TRANSIT POUR RETOUR" },
    "11": { shipping_status: "pending", note: "on_hold · EN ATTENTE" },
    "12": { shipping_status: "pending", note: "out_of_stock · EN RUPTURE DE STOCK" },
    "15": { shipping_status: "pending", note: "ready_to_ship · PRÊT À EXPÉDIER" },
    "22": { shipping_status: "in_transit", note: "assigned · ASSIGNÉ (to a courier)" },
    "31": { shipping_status: "in_transit", note: "shipped · EXPÉDIÉ" },
    "32": { shipping_status: "failed_attempt", note: "alerted · ALERTÉ (`alert_reason`)" },
    "41": { shipping_status: "delivered", note: "delivered · LIVRÉ" },
    "42": { shipping_status: "failed_attempt", note: "postponed · REPORTÉ (`postponed_to`)" },
    "50": { shipping_status: "canceled", canceled: true, note: "cancelled · ANNULÉ" },
    "51": { shipping_status: "returned", note: "ready_to_return · PRÊT À RETOURNER" },
    "52": { shipping_status: "returned", note: "taken_by_store · PRIS PAR LE MAGASIN" },
    "53": { shipping_status: "returned", note: "not_received · NON REÇU" },
  },
};

export const STATUS_TABLES: readonly StatusTable[] = [
  SHOPIFY_FINANCIAL,
  SHOPIFY_FULFILLMENT,
  SHIPHERO_FULFILLMENT,
  LIGHTSPEED_SALE,
  QUICKBOOKS_BALANCE,
  MAYSTRO_STATUS,
];

// ---------------------------------------------------------------------------------------------
// Looking words up

/** What the words say: the normalized statuses, whether canceled, and the words no table knew. */
export type OrderStatus =
  & NormalizedStatus
  & Pick<OrderRecord, "unknown_statuses">
  & { canceled: boolean };

/**
 * An order's status fields (spread into its OrderRecord). canceled_at is the provider's own
 * cancellation time where it has one (Shopify), else the record's last update while its word
 * says canceled: the cancellation's time for records a cancellation ends (Maystro's 50, a voided
 * Lightspeed sale or QuickBooks transaction), a later time if the provider still changes them.
 */
export function statusFields(
  s: OrderStatus,
  times: { canceledAt?: string | null; updatedAt: string },
): Pick<
  OrderRecord,
  "financial_status" | "fulfillment_status" | "shipping_status" | "canceled_at" | "unknown_statuses"
> {
  return {
    financial_status: s.financial_status,
    fulfillment_status: s.fulfillment_status,
    shipping_status: s.shipping_status,
    canceled_at: times.canceledAt ?? (s.canceled ? times.updatedAt : null),
    ...(s.unknown_statuses ? { unknown_statuses: s.unknown_statuses } : {}),
  };
}

const NONE: NormalizedStatus = {
  financial_status: null,
  fulfillment_status: null,
  shipping_status: null,
};

/**
 * Looks each word up in its table. A null word leaves the table's columns null (the provider
 * states nothing); a word the table lacks sets them to "unknown" and is reported.
 */
export function lookUp(...pairs: [StatusTable, string | null][]): OrderStatus {
  const out: OrderStatus = { ...NONE, canceled: false };
  const unknown: string[] = [];
  for (const [table, word] of pairs) {
    if (word === null) continue;
    const row = Object.hasOwn(table.words, word) ? table.words[word] : undefined;
    if (row === undefined) unknown.push(word);
    for (const column of table.columns) {
      (out as Record<Column, string | null>)[column] = row?.[column] ?? "unknown";
    }
    if (row?.canceled) out.canceled = true;
  }
  if (unknown.length > 0) out.unknown_statuses = unknown;
  return out;
}

/** Shopify: the financial and fulfillment display words (GraphQL's, upper case). */
export function shopifyStatuses(financial: string | null, fulfillment: string | null) {
  return lookUp([SHOPIFY_FINANCIAL, financial], [SHOPIFY_FULFILLMENT, fulfillment]);
}

export function shipheroStatuses(fulfillmentStatus: string | null) {
  return lookUp([SHIPHERO_FULFILLMENT, fulfillmentStatus]);
}

export function lightspeedStatuses(saleStatus: string | null) {
  return lookUp([LIGHTSPEED_SALE, saleStatus]);
}

/** QuickBooks: a transaction's state from its amounts (a void or a deletion says more). */
export function quickbooksStatuses(t: {
  voided?: boolean;
  deleted?: boolean;
  total?: number | undefined;
  balance?: number | undefined;
}) {
  return lookUp([QUICKBOOKS_BALANCE, quickbooksState(t)]);
}

function quickbooksState(t: Parameters<typeof quickbooksStatuses>[0]): string {
  if (t.deleted) return "Deleted";
  if (t.voided) return "Voided";
  const balance = t.balance ?? 0;
  const total = t.total ?? 0;
  if (balance === 0) return "Balance = 0";
  if (balance > 0 && balance < total) return "0 < Balance < TotalAmt";
  if (balance > 0 && balance === total) return "Balance = TotalAmt";
  // Not a state the mapping knows (named without amounts, so the run's counts stay few).
  return balance < 0 ? "Balance < 0" : "Balance > TotalAmt";
}

/** Maystro: the numeric status code as text ("41"). */
export function maystroStatuses(code: string | null) {
  return lookUp([MAYSTRO_STATUS, code]);
}

// ---------------------------------------------------------------------------------------------
// The README table

function cell(value: string | undefined, covered: boolean): string {
  return covered ? `\`${value}\`` : "—";
}

/** The mapping as the README shows it: one row per provider word, the source on a table's first. */
export function statusTableMarkdown(): string {
  const lines = [
    "| provider (field) | word | `financial_status` | `fulfillment_status` | `shipping_status` | `canceled_at` set | source |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const table of STATUS_TABLES) {
    Object.entries(table.words).forEach(([word, row], i) => {
      const note = row.note ? ` (${row.note})` : "";
      const cells = [
        i === 0 ? `${table.provider} \`${table.field}\`` : "",
        `\`${word}\`${note}`,
        ...(["financial_status", "fulfillment_status", "shipping_status"] as const).map((c) =>
          cell(row[c], table.columns.includes(c))
        ),
        row.canceled ? "yes" : "",
        i === 0 ? table.source : "",
      ];
      lines.push(`| ${cells.join(" | ")} |`);
    });
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Counting what the mapping did not know

/** Adds each record's unknown status words to `counts`; returns the words seen for the first time. */
export function countUnknownStatuses(
  records: readonly StreamRecords[StreamName][],
  counts: Map<string, number>,
): string[] {
  const fresh: string[] = [];
  for (const record of records) {
    const words = "unknown_statuses" in record ? record.unknown_statuses : undefined;
    for (const word of words ?? []) {
      if (!counts.has(word)) fresh.push(word);
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  }
  return fresh;
}
