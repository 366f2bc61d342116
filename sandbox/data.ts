/**
 * The records behind every provider's data endpoints, in provider-neutral
 * terms: each account has a dataset of orders and customers, generated from a
 * seed (so a test can rebuild the same world) and changed over time through
 * the control API (`POST /_sandbox/data/...`), so tests know the truth.
 *
 * Provider modules render these records in their own wire format and say, in
 * `truth()`, what an adapter must store for each one. Timestamps are sandbox
 * clock milliseconds; `version` is a per-dataset change counter that grows on
 * every write (Lightspeed's `version` is exactly this).
 */

/** The neutral order lifecycle; each provider names these stages in its own words. */
export const ORDER_STAGES = ["open", "processing", "shipped", "delivered", "cancelled"] as const;
export type OrderStage = typeof ORDER_STAGES[number];

export interface SandboxOrder {
  /** 1, 2, 3…: a provider's numeric id (legacy_id, QuickBooks Id, Maystro id). */
  readonly seq: number;
  /** QuickBooks: which entity ("Invoice" or "SalesReceipt"); others ignore it. */
  readonly variant: "a" | "b";
  readonly number: string;
  /** Our (the shop's) order reference, as Maystro's `external_order_id`. */
  readonly reference: string;
  stage: OrderStage;
  /** Assigned by the carrier, possibly days after the order: null until then. */
  trackingNumber: string | null;
  /** Cents. */
  totalCents: number;
  readonly currency: string;
  customerSeq: number | null;
  /** Deleted at the provider (QuickBooks); the record stays here so truth can say so. */
  deleted?: boolean;
  /**
   * A status word the account's user gave the order (ShipHero's custom order statuses), shown
   * while the order waits for fulfillment; undefined for none.
   */
  customStatus?: string;
  readonly createdAt: number;
  updatedAt: number;
  version: number;
}

export interface SandboxCustomer {
  readonly seq: number;
  email: string;
  firstName: string;
  lastName: string;
  phone: string;
  /** Deleted at the provider (Shopify); the record stays here so truth can say so. */
  deleted: boolean;
  readonly createdAt: number;
  updatedAt: number;
  version: number;
}

export type StreamName = "orders" | "customers";

/** What a change did, in neutral words; providers name their webhook topics from it. */
export type ChangeKind = "created" | "updated" | "tracking" | "cancelled" | "deleted";

/**
 * One change to a record, kept for the webhook senders: a copy of the record as it was right
 * after the change. Changes to one record at one instant are folded into one (the provider
 * shows whole seconds, so two changes within one second could not be ordered by a receiver).
 */
export type Change =
  | { stream: "orders"; kind: ChangeKind; at: number; record: SandboxOrder }
  | { stream: "customers"; kind: ChangeKind; at: number; record: SandboxCustomer };

/** What a mutation did, for tests that want to know. */
export interface MutationSummary {
  orders_created: number;
  orders_updated: number;
  tracking_assigned: number;
  orders_cancelled: number;
  customers_created: number;
  customers_updated: number;
  customers_deleted: number;
}

export interface SeedOptions {
  orders: number;
  customers: number;
  /** Created (and last updated) times spread over this many days before now. */
  spreadDays: number;
  /** Share of seeded orders that already have a tracking number, 0…1. */
  trackedShare: number;
}

export interface MutateOptions {
  /** How many random changes to make, all stamped `now` (ties on purpose). */
  changes: number;
  /** Which kinds of change may happen; default all the provider supports. */
  customersCanBeDeleted: boolean;
}

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST = [
  "Amel",
  "Yacine",
  "Sara",
  "Karim",
  "Lina",
  "Omar",
  "Nadia",
  "Samir",
  "Ines",
  "Rafik",
];
const LAST = ["Benali", "Haddad", "Mansouri", "Saidi", "Brahimi", "Cherif", "Khelifi", "Zerrouki"];
const CURRENCIES = ["USD", "EUR", "DZD"] as const;

export class Dataset {
  readonly orders = new Map<number, SandboxOrder>();
  readonly customers = new Map<number, SandboxCustomer>();
  #version = 0;
  #random: () => number;
  #trackingSeq = 0;
  readonly #label: string;
  /** Changes not yet sent as webhooks, oldest first (see `takeChanges`). */
  #changes: Change[] = [];
  readonly #lastChange = new Map<string, number>();

  /** `label` makes numbers and emails unique across accounts ("ACME-1001"). */
  constructor(label: string, seed: number) {
    this.#label = label;
    this.#random = prng(seed);
  }

  get version(): number {
    return this.#version;
  }

  seed(opts: SeedOptions, now: number): void {
    const spreadMs = opts.spreadDays * 86_400_000;
    // Oldest first, so versions grow with time as they would have.
    const times = (n: number) =>
      Array.from({ length: n }, () => now - Math.floor(this.#random() * spreadMs)).sort((a, b) =>
        a - b
      );
    for (const at of times(opts.customers)) this.#addCustomer(at);
    for (const at of times(opts.orders)) {
      const order = this.#addOrder(at);
      if (this.#random() < opts.trackedShare) {
        order.trackingNumber = this.#newTracking();
        order.stage = this.#pick(["shipped", "delivered"] as const);
      }
    }
    // Seeded records are history: no webhooks for them.
    this.#changes = [];
    this.#lastChange.clear();
  }

  /** The changes made since the last call, oldest first; the senders render them as webhooks. */
  takeChanges(): Change[] {
    const taken = this.#changes;
    this.#changes = [];
    this.#lastChange.clear();
    return taken;
  }

  #log(change: Change): void {
    const key = `${change.stream}:${change.record.seq}`;
    const at = this.#lastChange.get(key);
    const last = at === undefined ? undefined : this.#changes[at];
    if (last && Math.floor(last.at / 1000) === Math.floor(change.at / 1000)) {
      // Same record, same second: one change, the newer state (a creation stays a creation).
      this.#changes[at!] = { ...change, kind: last.kind === "created" ? "created" : change.kind };
      return;
    }
    this.#lastChange.set(key, this.#changes.length);
    this.#changes.push(change);
  }

  #logOrder(order: SandboxOrder, kind: ChangeKind): void {
    this.#log({ stream: "orders", kind, at: order.updatedAt, record: { ...order } });
  }

  #logCustomer(customer: SandboxCustomer, kind: ChangeKind): void {
    this.#log({ stream: "customers", kind, at: customer.updatedAt, record: { ...customer } });
  }

  /** Random changes at `now`: new orders and customers, updates, late tracking numbers, deletions. */
  mutate(opts: MutateOptions, now: number): MutationSummary {
    const summary: MutationSummary = {
      orders_created: 0,
      orders_updated: 0,
      tracking_assigned: 0,
      orders_cancelled: 0,
      customers_created: 0,
      customers_updated: 0,
      customers_deleted: 0,
    };
    for (let i = 0; i < opts.changes; i++) {
      const roll = this.#random();
      if (roll < 0.25 || this.orders.size === 0) {
        this.#logOrder(this.#addOrder(now), "created");
        summary.orders_created++;
      } else if (roll < 0.45) {
        const order = this.#pickOrder((o) => o.trackingNumber === null && o.stage !== "cancelled");
        if (order) {
          order.trackingNumber = this.#newTracking();
          order.stage = "shipped";
          this.#touch(order, now);
          this.#logOrder(order, "tracking");
          summary.tracking_assigned++;
        }
      } else if (roll < 0.6) {
        const order = this.#pickOrder((o) => o.stage !== "cancelled");
        if (order) {
          order.stage = this.#next(order.stage);
          order.totalCents += Math.floor(this.#random() * 500);
          this.#touch(order, now);
          this.#logOrder(order, "updated");
          summary.orders_updated++;
        }
      } else if (roll < 0.65) {
        const order = this.#pickOrder((o) => o.stage === "open" || o.stage === "processing");
        if (order) {
          order.stage = "cancelled";
          this.#touch(order, now);
          this.#logOrder(order, "cancelled");
          summary.orders_cancelled++;
        }
      } else if (roll < 0.8 || this.customers.size === 0) {
        this.#logCustomer(this.#addCustomer(now), "created");
        summary.customers_created++;
      } else if (roll < 0.95 || !opts.customersCanBeDeleted) {
        const customer = this.#pickCustomer();
        if (customer) {
          customer.phone = this.#phone();
          customer.email =
            `${customer.firstName}.${customer.seq}.${this.#version}@${this.#label}.example`
              .toLowerCase();
          this.#touch(customer, now);
          this.#logCustomer(customer, "updated");
          summary.customers_updated++;
        }
      } else {
        const customer = this.#pickCustomer();
        if (customer) {
          customer.deleted = true;
          this.#touch(customer, now);
          this.#logCustomer(customer, "deleted");
          summary.customers_deleted++;
        }
      }
    }
    return summary;
  }

  /**
   * An order another system handed to this account at `now`, under its own `number` and
   * `reference` (a store's order sent to a fulfillment provider: ShipHero keeps the store's
   * reference as `partner_order_id`, Maystro as `external_order_id`); a change of kind "created".
   */
  receiveOrder(number: string, reference: string, now: number): SandboxOrder {
    const order = this.#addOrder(now, { number, reference });
    this.#logOrder(order, "created");
    return order;
  }

  /**
   * Moves order `seq` to `stage` at `now` (shipping gives it a tracking number if it has none);
   * a change of kind "tracking" when it got one, else "cancelled" or "updated". Undefined when
   * there is no such order.
   */
  moveOrder(seq: number, stage: OrderStage, now: number): SandboxOrder | undefined {
    const order = this.orders.get(seq);
    if (!order || order.deleted) return undefined;
    const tracked = (stage === "shipped" || stage === "delivered") && order.trackingNumber === null;
    if (tracked) order.trackingNumber = this.#newTracking();
    order.stage = stage;
    this.#touch(order, now);
    this.#logOrder(order, tracked ? "tracking" : stage === "cancelled" ? "cancelled" : "updated");
    return order;
  }

  /** Deletes order `seq` at `now` (a change of kind "deleted"); false when there is none left. */
  deleteOrder(seq: number, now: number): boolean {
    const order = this.orders.get(seq);
    if (!order || order.deleted) return false;
    order.deleted = true;
    this.#touch(order, now);
    this.#logOrder(order, "deleted");
    return true;
  }

  /** Gives order `seq` a custom status word at `now` (an update); false when there is no such order. */
  setCustomStatus(seq: number, word: string, now: number): boolean {
    const order = this.orders.get(seq);
    if (!order || order.deleted) return false;
    order.customStatus = word;
    this.#touch(order, now);
    this.#logOrder(order, "updated");
    return true;
  }

  /** Records changed after `version`, oldest change first (Lightspeed's `after=`). */
  changedAfter<T extends SandboxOrder | SandboxCustomer>(
    records: Iterable<T>,
    version: number,
  ): T[] {
    return [...records].filter((r) => r.version > version).sort((a, b) => a.version - b.version);
  }

  #touch(record: { updatedAt: number; version: number }, now: number): void {
    // Never backwards, even when a test moved the clock back.
    record.updatedAt = Math.max(now, record.updatedAt);
    record.version = ++this.#version;
  }

  #addOrder(at: number, names?: { number: string; reference: string }): SandboxOrder {
    const seq = this.orders.size + 1;
    const customers = [...this.customers.values()].filter((c) => !c.deleted);
    const order: SandboxOrder = {
      seq,
      variant: this.#random() < 0.7 ? "a" : "b",
      number: names?.number ?? `${1000 + seq}`,
      reference: names?.reference ?? `${this.#label.toUpperCase()}-${1000 + seq}`,
      stage: "open",
      trackingNumber: null,
      totalCents: 500 + Math.floor(this.#random() * 50_000),
      currency: this.#pick(CURRENCIES),
      customerSeq: customers.length === 0 ? null : this.#pick(customers).seq,
      createdAt: at,
      updatedAt: at,
      version: ++this.#version,
    };
    this.orders.set(seq, order);
    return order;
  }

  #addCustomer(at: number): SandboxCustomer {
    const seq = this.customers.size + 1;
    const firstName = this.#pick(FIRST);
    const customer: SandboxCustomer = {
      seq,
      firstName,
      lastName: this.#pick(LAST),
      email: `${firstName}.${seq}@${this.#label}.example`.toLowerCase(),
      phone: this.#phone(),
      deleted: false,
      createdAt: at,
      updatedAt: at,
      version: ++this.#version,
    };
    this.customers.set(seq, customer);
    return customer;
  }

  #next(stage: OrderStage): OrderStage {
    const i = ORDER_STAGES.indexOf(stage);
    return i < 3 ? ORDER_STAGES[i + 1]! : stage;
  }

  #newTracking(): string {
    return `TRK${String(++this.#trackingSeq).padStart(8, "0")}`;
  }

  #phone(): string {
    return `+2135${String(Math.floor(this.#random() * 1e8)).padStart(8, "0")}`;
  }

  #pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#random() * items.length)]!;
  }

  #pickOrder(ok: (o: SandboxOrder) => boolean): SandboxOrder | undefined {
    return this.#pickFrom(this.orders, (o) => !o.deleted && ok(o));
  }

  #pickCustomer(): SandboxCustomer | undefined {
    return this.#pickFrom(this.customers, (c) => !c.deleted);
  }

  /** A random record that passes `ok`: a few random probes, then a scan. */
  #pickFrom<T>(map: Map<number, T>, ok: (r: T) => boolean): T | undefined {
    if (map.size === 0) return undefined;
    for (let i = 0; i < 8; i++) {
      const r = map.get(1 + Math.floor(this.#random() * map.size));
      if (r && ok(r)) return r;
    }
    const all = [...map.values()].filter(ok);
    return all.length === 0 ? undefined : this.#pick(all);
  }
}

/** What an adapter must store for one record: the test compares these with tether.orders/customers. */
export interface TruthRecord {
  external_id: string;
  updated_at: string;
  status: string;
  tracking_number?: string | null;
  order_number?: string | null;
}

/** Every account's dataset, created on first use. */
export class DataRegistry {
  readonly #sets = new Map<string, Dataset>();

  get(provider: string, externalId: string): Dataset {
    const key = `${provider}/${externalId}`;
    let set = this.#sets.get(key);
    if (!set) {
      set = new Dataset(externalId.replace(/[^A-Za-z0-9]/g, "").slice(0, 12) || "shop", hash(key));
      this.#sets.set(key, set);
    }
    return set;
  }

  /** Starts an account's dataset over from `seed`. */
  reset(provider: string, externalId: string, seed: number): Dataset {
    const set = new Dataset(externalId.replace(/[^A-Za-z0-9]/g, "").slice(0, 12) || "shop", seed);
    this.#sets.set(`${provider}/${externalId}`, set);
    return set;
  }
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}
