/**
 * QuickBooks' renderings of the neutral dataset: Invoices (variant "a") and SalesReceipts
 * (variant "b") for orders, Customers, as the v3 API renders them, and the truth an adapter must
 * store.
 */
import type {
  Dataset,
  SandboxCustomer,
  SandboxOrder,
  StreamName,
  TruthRecord,
} from "../../data.ts";

/** The sandbox company keeps Pacific Standard Time all year; QuickBooks shows the company's offset. */
export const COMPANY_OFFSET_MINUTES = -8 * 60;

export type EntityName = "Invoice" | "SalesReceipt" | "Customer";

export function wholeSecond(epochMs: number): number {
  return Math.floor(epochMs / 1000) * 1000;
}

export function offsetText(minutes: number): string {
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${
    String(abs % 60).padStart(2, "0")
  }`;
}

/** `2026-11-22T02:15:30-08:00`: whole seconds, in the company's offset. */
export function companyTime(epochMs: number): string {
  const local = new Date(wholeSecond(epochMs) + COMPANY_OFFSET_MINUTES * 60_000);
  return local.toISOString().slice(0, 19) + offsetText(COMPANY_OFFSET_MINUTES);
}

function companyDate(epochMs: number): string {
  return companyTime(epochMs).slice(0, 10);
}

export function displayName(c: SandboxCustomer): string {
  // DisplayName is unique per company in QuickBooks.
  return `${c.firstName} ${c.lastName} ${c.seq}`;
}

export function entityOf(order: SandboxOrder): "Invoice" | "SalesReceipt" {
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

export function renderTransaction(order: SandboxOrder, set: Dataset): Record<string, unknown> {
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

export function renderCustomer(c: SandboxCustomer): Record<string, unknown> {
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

/**
 * A deleted Invoice or SalesReceipt as CDC returns it: "Objects deleted within the look-back
 * period are returned after active objects", with Id, status, domain and MetaData only
 * (developer.intuit.com …/all-entities/changedatacapture, sample object).
 */
export function renderDeleted(order: SandboxOrder): Record<string, unknown> {
  return {
    status: "Deleted",
    domain: "QBO",
    Id: String(order.seq),
    MetaData: { LastUpdatedTime: companyTime(order.updatedAt) },
  };
}

/**
 * What the adapter must store: `Invoice:<Id>` / `SalesReceipt:<Id>` and `<Id>`, whole seconds; a
 * deleted transaction stays, "Deleted", with nothing else known (number and tracking empty).
 */
export function truth(set: Dataset, stream: StreamName): TruthRecord[] {
  if (stream === "orders") {
    return [...set.orders.values()].map((o) => ({
      external_id: `${entityOf(o)}:${o.seq}`,
      updated_at: new Date(wholeSecond(o.updatedAt)).toISOString(),
      status: o.deleted ? "Deleted" : transactionState(o).status,
      tracking_number: o.deleted ? null : o.trackingNumber,
      order_number: o.deleted ? null : o.number,
    }));
  }
  return [...set.customers.values()].map((c) => ({
    external_id: String(c.seq),
    updated_at: new Date(wholeSecond(c.updatedAt)).toISOString(),
    status: c.deleted ? "inactive" : "active",
  }));
}
