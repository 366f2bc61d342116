// ShipHero's and Maystro's parsers run on what the providers (or, for Maystro, the only
// independent clients there are) publish: the samples transcribed in tests/fixtures/<provider>/
// with their sources. No network and no database: these pin the models to the sources.
import assert from "node:assert/strict";
import {
  configSchema,
  credentialsSchema,
  shipheroAdapter,
} from "../functions-shared/providers/shiphero/adapter.ts";
import {
  creditThrottle,
  DEFAULT_CREDIT_BUCKET,
  durationMs,
  observedBucket,
} from "../functions-shared/providers/shiphero/credits.ts";
import { orderCanceled, shipmentUpdate } from "../functions-shared/providers/shiphero/webhook.ts";
import { maystroEvent } from "../functions-shared/providers/maystro/webhook.ts";
import {
  notNewestFirst,
  pageSchema,
  toOrder,
} from "../functions-shared/providers/maystro/streams.ts";
import { notAscending } from "../functions-shared/providers/shiphero/streams.ts";
import { BadPayload } from "../functions-shared/providers/webhook.ts";

function fixture<T = Record<string, unknown>>(path: string): T {
  return JSON.parse(
    Deno.readTextFileSync(new URL(`./fixtures/${path}`, import.meta.url)),
  ) as T;
}

// --- ShipHero -------------------------------------------------------------------------------

Deno.test("shiphero: the official Shipment Update sample parses: the shipment, no order id needed", () => {
  const { body } = fixture<{ body: unknown }>("shiphero/shipment_update.json");
  const f = shipmentUpdate.parse(body).fulfillment;
  assert.equal(f.shipment_uuid, "U2hpcG1lbnQ6MzE1NTE4MDQy");
  assert.equal(atob(f.shipment_uuid), "Shipment:315518042");
  assert.equal(f.tracking_number, "15619819718");
  assert.equal(f.order_number, "test-track-url");
  assert.equal("order_uuid" in (body as { fulfillment: object }).fulfillment, false);
});

Deno.test("shiphero: the official Order Canceled sample parses and the ack is the one it shows", () => {
  const { body, response } = fixture<{ body: unknown; response: unknown }>(
    "shiphero/order_canceled.json",
  );
  const o = orderCanceled.parse(body);
  assert.equal(o.order_uuid, "T3JkZXI6Mzg5MTE4NzE3");
  assert.equal(atob(o.order_uuid), "Order:389118717");
  assert.equal(o.order_number, "9035013-2");
  assert.deepEqual(shipheroAdapter.webhooks.ack, response);
});

Deno.test("shiphero: the real throttle message gives the wait, the credits left and required", () => {
  const t = fixture<{
    message: string;
    parsed: { required: number; left: number; wait_seconds: number };
    time_remaining: Record<string, number>;
  }>("shiphero/throttle.json");
  assert.deepEqual(creditThrottle([{ message: t.message }]), {
    required: t.parsed.required,
    left: t.parsed.left,
    waitMs: t.parsed.wait_seconds * 1000,
  });
  for (const [text, ms] of Object.entries(t.time_remaining)) assert.equal(durationMs(text), ms);
  // The fields, where present, win over the words; code 30 alone marks a throttle.
  assert.deepEqual(
    creditThrottle([{
      message: "Throttled",
      code: 30,
      required_credits: 500,
      remaining_credits: 100,
      time_remaining: "55 minutes",
    } as never]),
    { required: 500, left: 100, waitMs: 3_300_000 },
  );
  assert.equal(creditThrottle([{ message: "Cannot query field 'x' on type 'Order'." }]), undefined);
});

Deno.test("shiphero: a throttle corrects the bucket model (left, capacity ≥ required, rate)", () => {
  const t = fixture<{ message: string }>("shiphero/throttle.json");
  const throttle = creditThrottle([{ message: t.message }])!;
  // 1301 credits required: the bucket holds at least that; (1301 − 263) / 18 s ≈ 57.7 credits/s.
  const seen = observedBucket(throttle, { capacity: 1001, restorePerSecond: 15 })!;
  assert.equal(seen.available, 263);
  assert.equal(seen.capacity, 1301);
  assert.ok(Math.abs(seen.restorePerSecond! - 1038 / 18) < 1e-9);
  // The default model already holds 1301: capacity is left alone.
  assert.equal(observedBucket(throttle, DEFAULT_CREDIT_BUCKET)!.capacity, undefined);
  // A wait too short to measure (whole seconds) says nothing about the rate.
  assert.equal(
    observedBucket({ required: 21, left: 9, waitMs: 2000 }, DEFAULT_CREDIT_BUCKET)!
      .restorePerSecond,
    undefined,
  );
});

Deno.test("shiphero: the credit bucket is the documented default unless the connection sets one", () => {
  assert.deepEqual(shipheroAdapter.facts.rateLimit, { capacity: 4004, restorePerSecond: 60 });
  assert.deepEqual(shipheroAdapter.rateLimitFor({}), shipheroAdapter.facts.rateLimit);
  assert.deepEqual(
    shipheroAdapter.rateLimitFor({ credit_bucket: { capacity: 1001, restore_per_second: 15 } }),
    { capacity: 1001, restorePerSecond: 15 },
  );
  const bad = configSchema.safeParse({ credit_bucket: { capacity: 0, restore_per_second: 15 } });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error!.issues[0]!.path, ["credit_bucket", "capacity"]);
});

Deno.test("shiphero: connect takes one secret per webhook type, as fields or as webhook_secrets", () => {
  assert.deepEqual(
    credentialsSchema.parse({
      refresh_token: "rt",
      webhook_secrets: { "Shipment Update": "s1", "Order Canceled": "s2" },
      webhook_secret_po_update: "s3",
    }),
    {
      refresh_token: "rt",
      webhook_secret_shipment_update: "s1",
      webhook_secret_order_canceled: "s2",
      webhook_secret_po_update: "s3",
    },
  );
  // The earlier single secret still connects.
  assert.deepEqual(credentialsSchema.parse({ refresh_token: "rt", webhook_secret: "s" }), {
    refresh_token: "rt",
    webhook_secret: "s",
  });
  const unknown = credentialsSchema.safeParse({ refresh_token: "rt", webhook_secert: "s" });
  assert.equal(unknown.success, false);
  assert.deepEqual(unknown.error!.issues[0]!.path, ["webhook_secert"]);
  const empty = credentialsSchema.safeParse({
    refresh_token: "rt",
    webhook_secrets: { "Shipment Update": "" },
  });
  assert.equal(empty.success, false);
});

// --- Maystro --------------------------------------------------------------------------------

Deno.test("maystro: the nested body and the base64 message.data envelope name the same order", () => {
  const nested = fixture<{ body: unknown }>("maystro/webhook_nested.json").body;
  const pubsub = fixture<{ body: unknown }>("maystro/webhook_pubsub.json").body;
  const want = { event: "OrderStatusChanged", externalOrderId: "CMD-1042" };
  assert.deepEqual(maystroEvent(nested), want);
  assert.deepEqual(maystroEvent(pubsub), want);
  // The flat form Tether first assumed still works.
  assert.deepEqual(maystroEvent({ external_order_id: "CMD-1042" }), want);
  // Neither form: a 400 naming the field.
  assert.throws(
    () => maystroEvent({ event: "OrderStatusChanged", payload: { status: 41 } }),
    (e) => e instanceof BadPayload && /external_order_id/.test(e.message),
  );
  assert.throws(
    () => maystroEvent({ message: { data: "%%%" } }),
    (e) => e instanceof BadPayload && /message\.data/.test(e.message),
  );
});

Deno.test("maystro: ids are text, odd rows keep their page, tracking is tracking_number || display_id", () => {
  const time = "2026-11-22T11:15:30.123456+01:00";
  const page = pageSchema.parse({
    list: {
      count: 4,
      next: null,
      results: [
        {
          id: "a3f9c2",
          instance_uuid: "6d61792d-0000-4000-8000-00000000002a",
          external_order_id: "CMD-1",
          status: 31,
          tracking_number: "YAL-889",
          display_id: "D-1",
          created_at: time,
          last_update: time,
        },
        {
          id: 7,
          external_order_id: "CMD-2",
          status: "41",
          display_id: 445,
          created_at: time,
          last_update: time,
        },
        { instance_uuid: "u-3", status: "lost", created_at: time, last_update: time },
        {
          id: null,
          external_order_id: "CMD-4",
          status: null,
          tracking_number: "",
          display_id: "",
          created_at: time,
          last_update: time,
        },
      ],
    },
  });
  const records = page.list.results.map(toOrder);
  assert.deepEqual(
    records.map((r) => [r.external_id, r.status, r.tracking_number]),
    [
      ["CMD-1", "shipped", "YAL-889"],
      ["CMD-2", "delivered", "445"],
      ["id:u-3", "status_lost", null],
      ["CMD-4", "status_none", null],
    ],
  );
  // A row with no identity at all is refused, naming what is missing.
  const none = pageSchema.safeParse({
    list: { results: [{ status: 4, created_at: time, last_update: time }] },
  });
  assert.equal(none.success, false);
  assert.match(none.error!.issues[0]!.message, /external_order_id, an instance_uuid or an id/);
});

Deno.test("a page out of the order a cursor relies on is refused, not read wrongly", () => {
  const at = (t: string) => ({ remote_updated_at: t }) as never;
  assert.equal(notAscending([at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")]), undefined);
  assert.match(
    notAscending([at("2026-01-02T00:00:00Z"), at("2026-01-01T00:00:00Z")])!,
    /shiphero orders page: not oldest change first \(record 1/,
  );
  const created = (t: string) => ({ created_at: t }) as never;
  assert.equal(
    notNewestFirst([
      created("2026-11-22T11:15:30.123456+01:00"),
      created("2026-11-22T11:15:30.123999+01:00"),
      created("2026-11-21T09:00:00.000000+01:00"),
    ]),
    undefined,
  );
  assert.match(
    notNewestFirst([
      created("2026-11-21T09:00:00.000000+01:00"),
      created("2026-11-22T11:15:30.123456+01:00"),
    ])!,
    /maystro orders page: not newest first \(order 1/,
  );
});
