// Normalized order statuses (functions-shared/providers/order_status.ts): every status word each
// provider's sandbox can produce — enumerated from the sandbox code, rendered by it and mapped by
// the adapter's own order mapping — lands on a documented value; Shopify's published enums have
// no value without a row; the README's table is the module's; and, against Postgres and the
// ShipHero sandbox, a word the mapping does not know is stored as unknown and counted in the run
// without failing it, while a status change reaches the change feed like any other field.
import assert from "node:assert/strict";
import { runSync } from "../functions-shared/jobs/sync.ts";
import * as lightspeed from "../functions-shared/providers/lightspeed/streams.ts";
import * as maystro from "../functions-shared/providers/maystro/streams.ts";
import {
  type NormalizedStatus,
  SHOPIFY_FINANCIAL,
  SHOPIFY_FULFILLMENT,
  STATUS_TABLES,
  type StatusTable,
  statusTableMarkdown,
} from "../functions-shared/providers/order_status.ts";
import * as quickbooks from "../functions-shared/providers/quickbooks/streams.ts";
import * as shiphero from "../functions-shared/providers/shiphero/streams.ts";
import * as shopify from "../functions-shared/providers/shopify/streams.ts";
import { shopifyWebhooks } from "../functions-shared/providers/shopify/webhook.ts";
import type { OrderRecord, ProviderName } from "../functions-shared/providers/types.ts";
import { Dataset, ORDER_STAGES, type OrderStage, type SandboxOrder } from "../sandbox/data.ts";
import { SALE_STATUS } from "../sandbox/providers/lightspeed.ts";
import { STATUS_CODE } from "../sandbox/providers/maystro.ts";
import {
  entityOf,
  renderDeleted,
  renderTransaction,
} from "../sandbox/providers/quickbooks/render.ts";
import { FULFILLMENT_STATUS } from "../sandbox/providers/shiphero.ts";
import { orderNode, webhookOf } from "../sandbox/providers/shopify/render.ts";
import { connectSeeded } from "./helpers/records.ts";
import { withWebhookWorld } from "./helpers/webhooks_world.ts";

const CREATED = Date.parse("2026-11-01T10:00:00Z");
const UPDATED = CREATED + 3_600_000;
const COLUMNS = ["financial_status", "fulfillment_status", "shipping_status"] as const;

/** A sandbox order at `stage`, tracked once it has shipped, as the sandbox's datasets hold one. */
function sandboxOrder(stage: OrderStage, variant: "a" | "b" = "a"): SandboxOrder {
  const shipped = stage === "shipped" || stage === "delivered";
  return {
    seq: 7,
    variant,
    number: "1007",
    reference: "T-1007",
    stage,
    trackingNumber: shipped ? "TRK7" : null,
    totalCents: 1250,
    currency: "USD",
    customerSeq: null,
    createdAt: CREATED,
    updatedAt: UPDATED,
    version: 3,
  };
}

/** The rows of the provider's tables a word is looked up in, by table. */
function tablesOf(provider: ProviderName): StatusTable[] {
  return STATUS_TABLES.filter((t) => t.provider === provider);
}

/**
 * The record's normalized values are documented: each comes from a row of one of the provider's
 * tables (never "unknown"), columns no table of the provider covers are null, and a canceled stage
 * has canceled_at.
 */
function assertDocumented(
  provider: ProviderName,
  words: Partial<Record<string, string | null>>,
  record: OrderRecord,
  stage: OrderStage,
) {
  const what = `${provider} ${JSON.stringify(words)} (${stage})`;
  assert.equal(record.unknown_statuses, undefined, `${what}: every word is known`);
  const tables = tablesOf(provider);
  for (const column of COLUMNS) {
    const table = tables.find((t) => t.columns.includes(column));
    if (!table) {
      assert.equal(record[column], null, `${what}: ${provider} has no ${column}`);
      continue;
    }
    const word = words[table.field];
    assert.ok(word != null, `${what}: the ${table.field} word`);
    assert.ok(Object.hasOwn(table.words, word), `${what}: ${word} is a row of ${table.field}`);
    assert.equal(record[column], table.words[word]![column], `${what}: ${column}`);
  }
  assert.equal(record.canceled_at !== null, stage === "cancelled", `${what}: canceled_at`);
}

Deno.test("Shopify: every value of the pinned displayFinancialStatus / displayFulfillmentStatus enums has a row, and nothing else does", async () => {
  const file = await Deno.open(
    new URL("./fixtures/shopify/admin_2026-10.json.gz", import.meta.url),
  );
  const introspection = JSON.parse(
    await new Response(file.readable.pipeThrough(new DecompressionStream("gzip"))).text(),
  ) as { data: { __schema: { types: { name: string; enumValues: { name: string }[] }[] } } };
  const values = (name: string) =>
    introspection.data.__schema.types.find((t) => t.name === name)!.enumValues.map((v) => v.name)
      .sort();
  assert.deepEqual(
    Object.keys(SHOPIFY_FINANCIAL.words).sort(),
    values("OrderDisplayFinancialStatus"),
  );
  assert.deepEqual(
    Object.keys(SHOPIFY_FULFILLMENT.words).sort(),
    values("OrderDisplayFulfillmentStatus"),
  );
  // Webhooks' REST financial_status words: OrderCreateFinancialStatus, which mirrors them.
  assert.deepEqual(values("OrderCreateFinancialStatus"), values("OrderDisplayFinancialStatus"));
});

Deno.test("every status word the sandboxes produce maps, through each adapter's order mapping, to a documented value", async () => {
  const set = new Dataset("t", 1);
  for (const stage of ORDER_STAGES) {
    const order = sandboxOrder(stage);

    // Shopify: the sync's GraphQL node, and the REST body of its webhook.
    const node = orderNode(order, set);
    const synced = shopify.toOrderRecord(shopify.orderNode.parse(node));
    assertDocumented(
      "shopify",
      {
        displayFinancialStatus: node.displayFinancialStatus,
        displayFulfillmentStatus: node.displayFulfillmentStatus,
      },
      synced,
      stage,
    );
    const upserts: OrderRecord[] = [];
    const hook = webhookOf({ stream: "orders", kind: "updated", at: UPDATED, record: order }, set);
    await shopifyWebhooks.process({
      upsert: (_stream, records) => {
        upserts.push(...records as OrderRecord[]);
        return Promise.resolve();
      },
      applyOrderFacts: () => Promise.reject(new Error("not used")),
      withAccessToken: () => Promise.reject(new Error("not used")),
    }, { topic: "ORDERS_UPDATED", payload: { body: hook.body }, receivedAt: new Date(UPDATED) });
    const fromHook = upserts[0]!;
    for (const column of COLUMNS) {
      assert.equal(fromHook[column], synced[column], `shopify ${stage}: webhook = sync ${column}`);
    }
    assert.equal(fromHook.canceled_at, synced.canceled_at, `shopify ${stage}: canceled_at`);

    // ShipHero: its fulfillment_status word for the stage.
    const word = FULFILLMENT_STATUS[stage];
    const shipped = shiphero.toOrderRecord(shiphero.orderNode.parse({
      id: "T3JkZXI6Nw==",
      order_number: "1007",
      fulfillment_status: word,
      order_date: "2026-11-01T10:00:00",
      updated_at: "2026-11-01T11:00:00",
      total_price: "12.50",
      shipments: [],
    }));
    assertDocumented("shiphero", { fulfillment_status: word }, shipped, stage);

    // Lightspeed: the sale's status.
    const sale = lightspeed.toOrder({
      id: "sale-7",
      status: SALE_STATUS[stage],
      updated_at: "2026-11-01T11:00:00+00:00",
    });
    assertDocumented("lightspeed", { status: SALE_STATUS[stage] }, sale, stage);

    // QuickBooks: an Invoice and a SalesReceipt at the stage, as the sandbox renders them.
    for (const variant of ["a", "b"] as const) {
      const o = sandboxOrder(stage, variant);
      const t = quickbooks.transactionSchema.parse(renderTransaction(o, set));
      const record = quickbooks.toOrder(entityOf(o), t);
      const state = t.PrivateNote === "Voided"
        ? "Voided"
        : t.Balance === 0
        ? "Balance = 0"
        : t.Balance === t.TotalAmt
        ? "Balance = TotalAmt"
        : "0 < Balance < TotalAmt";
      assertDocumented("quickbooks", { "Balance / TotalAmt": state }, record, stage);
    }

    // Maystro: the numeric status code.
    const code = STATUS_CODE[stage];
    const delivery = maystro.toOrder(maystro.orderSchema.parse({
      id: 7,
      external_order_id: "T-1007",
      status: code,
      created_at: "2026-11-01T11:00:00.123456+01:00",
      last_update: "2026-11-01T12:00:00.123456+01:00",
    }));
    assertDocumented("maystro", { status: String(code) }, delivery, stage);
  }
  // A deleted QuickBooks transaction (change data capture).
  const deleted = renderDeleted(sandboxOrder("open"));
  const gone = quickbooks.toDeletedOrder(
    "Invoice",
    String(deleted.Id),
    "2026-11-01T11:00:00Z",
    deleted,
  );
  assert.equal(gone.financial_status, "voided");
  assert.equal(gone.canceled_at, "2026-11-01T11:00:00.000Z");
});

Deno.test("every Maystro code the adapter names has a row, under the same name", () => {
  const table = tablesOf("maystro")[0]!;
  assert.deepEqual(Object.keys(table.words).sort(), Object.keys(maystro.STATUS_NAMES).sort());
  for (const [code, name] of Object.entries(maystro.STATUS_NAMES)) {
    assert.ok(table.words[code]!.note!.startsWith(`${name} · `), `${code}: ${name}`);
  }
});

Deno.test("a word no table knows is unknown in the columns its table covers, and reported", async () => {
  const record = shopify.toOrderRecord(shopify.orderNode.parse({
    ...orderNode(sandboxOrder("open"), new Dataset("t", 1)),
    displayFinancialStatus: "PAID_IN_KIND",
  }));
  assert.equal(record.financial_status, "unknown");
  assert.equal(record.fulfillment_status, "unfulfilled", "the other word still maps");
  assert.equal(record.shipping_status, null);
  assert.deepEqual(record.unknown_statuses, ["PAID_IN_KIND"]);
  // A webhook's REST word no table knows: the order is still stored, the word kept.
  const stored: OrderRecord[] = [];
  const order = sandboxOrder("open");
  const set = new Dataset("t", 1);
  const body = webhookOf({ stream: "orders", kind: "updated", at: UPDATED, record: order }, set)
    .body as Record<string, unknown>;
  await shopifyWebhooks.process({
    upsert: (_stream, records) => {
      stored.push(...records as OrderRecord[]);
      return Promise.resolve();
    },
    applyOrderFacts: () => Promise.reject(new Error("not used")),
    withAccessToken: () => Promise.reject(new Error("not used")),
  }, {
    topic: "ORDERS_UPDATED",
    payload: { body: { ...body, fulfillment_status: "shipped" } },
    receivedAt: new Date(UPDATED),
  });
  assert.equal(stored[0]!.provider_fulfillment_status, "shipped");
  assert.equal(stored[0]!.fulfillment_status, "unknown");
  assert.deepEqual(stored[0]!.unknown_statuses, ["shipped"]);

  const odd = quickbooks.toOrder(
    "Invoice",
    quickbooks.transactionSchema.parse({
      Id: "1",
      TotalAmt: 10,
      Balance: 12,
      MetaData: { LastUpdatedTime: "2026-11-01T03:00:00-08:00" },
    }),
  );
  assert.equal(odd.financial_status, "unknown", "a balance above the total is no known state");
  assert.deepEqual(odd.unknown_statuses, ["Balance > TotalAmt"]);
});

Deno.test("every row of a table sets exactly the columns its table covers", () => {
  for (const table of STATUS_TABLES) {
    for (const [word, row] of Object.entries(table.words)) {
      const set = COLUMNS.filter((c) => row[c] !== undefined);
      assert.deepEqual(set, [...table.columns].sort(), `${table.provider} ${word}`);
    }
  }
});

/** A markdown table's rows as trimmed cells (separator rows left out), whatever the padding. */
function cells(markdown: string): string[][] {
  return markdown.split("\n").filter((line) => line.startsWith("|") && !/^\|[\s:|-]+\|$/.test(line))
    .map((line) => line.slice(1, -1).split(" | ").map((c) => c.trim()));
}

Deno.test("the README's status table is the mapping's", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const start = "<!-- order-status-table:start -->";
  const end = "<!-- order-status-table:end -->";
  assert.ok(readme.includes(start) && readme.includes(end), "the README marks the table");
  const inReadme = readme.slice(readme.indexOf(start) + start.length, readme.indexOf(end));
  assert.deepEqual(
    cells(inReadme),
    cells(statusTableMarkdown()),
    `README.md's table differs from order_status.ts; between the markers put:\n${statusTableMarkdown()}`,
  );
});

interface StoredStatus extends NormalizedStatus {
  external_id: string;
  status: string;
  provider_fulfillment_status: string | null;
  canceled_at: Date | null;
}

Deno.test("ShipHero: a custom status lands as unknown, counted in the run, which succeeds; a status change reaches the change feed", async () => {
  await withWebhookWorld(async (w) => {
    const conn = await connectSeeded(w.deps, w.sandbox, "shiphero", {
      seed: 5,
      orders: 12,
      customers: 0,
      spread_days: 2,
      tracked_share: 0,
    });
    const sync = async () => {
      const result = await runSync(w.deps, "orders", { connection_id: conn.id, force: true });
      assert.equal(result.runs[0]!.status, "succeeded");
    };
    await sync();
    const stored = () =>
      w.db.sql<StoredStatus[]>`
        select external_id, status, provider_fulfillment_status, financial_status,
               fulfillment_status, shipping_status, canceled_at
          from tether.orders where connection_id = ${conn.id} order by external_id`;
    const before = await stored();
    assert.equal(before.length, 12);
    assert.ok(before.every((o) => o.fulfillment_status === "unfulfilled"), "pending → unfulfilled");
    assert.ok(before.every((o) => o.financial_status === null && o.shipping_status === null));

    // "Rush Orders" on two pending orders: ShipHero shows the custom status instead of pending.
    for (const seq of [2, 5]) {
      await w.sandbox.call("POST", `/data/shiphero/${conn.externalId}/orders/${seq}/status`, {
        word: "Rush Orders",
      });
    }
    await w.db.sql`select tether.publish_changes(1000000)`;
    const [mark] = await w.db.sql<{ id: string }[]>`
      select coalesce(max(id), 0)::text as id from tether.changes`;
    await sync();

    const [run] = await w.db.sql<{ status: string; details: Record<string, unknown> }[]>`
      select status, details from tether.runs
       where connection_id = ${conn.id} and kind = 'sync' order by id desc limit 1`;
    assert.equal(run!.status, "succeeded");
    assert.deepEqual(run!.details.unknown_statuses, { "Rush Orders": 2 });
    const rush = (await stored()).filter((o) => o.status === "Rush Orders");
    assert.equal(rush.length, 2);
    for (const o of rush) {
      assert.equal(o.provider_fulfillment_status, "Rush Orders");
      assert.equal(o.fulfillment_status, "unknown");
    }

    await w.db.sql`select tether.publish_changes(1000000)`;
    const changes = await w.db.sql<
      { record_id: string; op: string; fields: Record<string, unknown> }[]
    >`
      select record_id, op, fields from tether.changes
       where connection_id = ${conn.id} and id > ${mark!.id}::bigint order by id`;
    assert.deepEqual(changes.map((c) => c.record_id).sort(), rush.map((o) => o.external_id));
    for (const c of changes) {
      assert.equal(c.op, "updated");
      assert.equal(c.fields.status, "Rush Orders");
      assert.equal(c.fields.provider_fulfillment_status, "Rush Orders");
      assert.equal(c.fields.fulfillment_status, "unknown");
    }
  });
});
