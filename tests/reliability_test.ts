// Bad input is refused clearly and nothing is stored (issue #17; the reliability probe's H2, M2,
// M3, L1, L2, L3, L4, I2 and I3), against the real local Postgres and the provider sandboxes:
// backfill ranges that are infinite or older than any provider, text Postgres cannot hold, tokens
// and base URLs beyond their limits, oversized bodies, a stream held by a dead worker's lease, and
// errors that would name the database host or echo a huge argument.
import assert from "node:assert/strict";
import { backfill, EARLIEST_BACKFILL_START } from "../functions-shared/jobs/backfill.ts";
import { runSync, syncOrders } from "../functions-shared/jobs/sync.ts";
import { connect as connectDb } from "../functions-shared/db/client.ts";
import type { Deps } from "../functions-shared/deps.ts";
import { createConnectHandler } from "../functions-shared/http/connect.ts";
import {
  createJobHandler,
  type Handler,
  MAX_JOB_BODY_BYTES,
} from "../functions-shared/http/serve.ts";
import { createWebhookHandler } from "../functions-shared/http/webhooks.ts";
import { LIMITS } from "../functions-shared/providers/common.ts";
import { connectSeeded } from "./helpers/records.ts";
import { localSecrets } from "./helpers/stack.ts";
import { newAccount, sweep, withWorld, type World } from "./helpers/refresh_world.ts";
import { readCredentials, writeCredentials } from "../functions-shared/db/credentials.ts";
import { generateKeyRingEntry, TokenVault } from "../functions-shared/vault.ts";

async function call(
  handler: Handler,
  path: string,
  body: BodyInit,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: { error?: string; message?: string } }> {
  const secrets = await localSecrets();
  const res = await handler(
    new Request(`http://local${path}`, {
      method: "POST",
      headers: { apikey: secrets.secretKey, "content-type": "application/json", ...headers },
      body,
    }),
  );
  const text = await res.text();
  return { status: res.status, body: text === "" ? {} : JSON.parse(text) };
}

async function counts(w: World) {
  const [r] = await w.db.sql<
    { connections: number; credentials: number; backfills: number; runs: number }[]
  >`
    select (select count(*)::int from tether.connections) as connections,
           (select count(*)::int from tether.credentials) as credentials,
           (select count(*)::int from tether.backfills) as backfills,
           (select count(*)::int from tether.runs) as runs`;
  return r!;
}

function seeded(w: World) {
  return connectSeeded(w.deps, w.sandbox, "shopify", {
    seed: 3,
    orders: 5,
    customers: 0,
    spread_days: 2,
    tracked_share: 0,
  });
}

Deno.test("start_backfill refuses infinite and pre-provider bounds naming the argument, and stores nothing", async () => {
  await withWorld(async (w) => {
    const shop = await seeded(w);
    const before = await counts(w);
    const cases: [string, string, string][] = [
      ["-infinity", "2018-01-01T00:00:00Z", "range_start"],
      ["2018-01-01T00:00:00Z", "infinity", "range_end"],
      ["0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", "range_start"],
      ["1999-12-31T23:59:59Z", "2018-01-01T00:00:00Z", "range_start"],
    ];
    for (const [start, end, named] of cases) {
      await assert.rejects(
        w.db.sql`select public.start_backfill(${shop.id}, 'orders', ${start}::text::timestamptz,
                                              ${end}::text::timestamptz)`,
        (err: Error & { hint?: string; code?: string }) => {
          assert.match(
            err.message,
            new RegExp(`^${named} .* must be a time on or after 2000-01-01`),
          );
          assert.equal(err.code, "22023", start);
          assert.ok(err.hint, `${start}: a hint`);
          return true;
        },
        `${start} … ${end}`,
      );
    }
    assert.deepEqual(await counts(w), before);
    // The code's bound is the SQL's.
    const [row] = await w.db.sql<{ earliest: Date }[]>`
      select tether.backfill_earliest_start() as earliest`;
    assert.equal(row!.earliest.toISOString(), new Date(EARLIEST_BACKFILL_START).toISOString());
  });
});

Deno.test("one backfill row with an infinite range cannot break tether.connection_health", async () => {
  await withWorld(async (w) => {
    const shop = await seeded(w);
    // A row a past version let in (the constraint that now forbids it is not valid for old rows).
    await w.db.sql`alter table tether.backfills drop constraint range_is_finite`;
    await w.db.sql`
      insert into tether.backfills (connection_id, stream, range_start, range_end, status)
      values (${shop.id}, 'orders', '-infinity', '2018-01-01Z', 'pending')`;
    const rows = await w.db.sql<{ id: string; backfill_status: string; percent: number | null }[]>`
      select id, backfill_status, backfill_percent as percent from tether.connection_health`;
    assert.deepEqual(rows.map((r) => [r.id, r.backfill_status, r.percent]), [
      [shop.id, "pending", null],
    ]);
  });
});

Deno.test("the backfill function refuses year 0000, 0001 and pre-provider ranges with a 400 naming the field", async () => {
  await withWorld(async (w) => {
    const shop = await seeded(w);
    const handler = createJobHandler(backfill, w.deps);
    const before = await counts(w);
    for (
      const [field, start, end] of [
        ["range_start", "0000-01-01T00:00:00Z", "2019-01-02T00:00:00Z"],
        ["range_start", "0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"],
        ["range_end", "2019-01-01T00:00:00Z", "0001-01-02T00:00:00Z"],
        ["range_start", "1999-06-01T00:00:00+02:00", "2019-01-02T00:00:00Z"],
      ] as const
    ) {
      const res = await call(
        handler,
        "/backfill",
        JSON.stringify({
          connection_id: shop.id,
          stream: "orders",
          range_start: start,
          range_end: end,
        }),
      );
      assert.equal(res.status, 400, `${start}…${end}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, "invalid_body");
      assert.match(res.body.message!, new RegExp(`field "${field}": .*on or after 2000-01-01`));
    }
    assert.deepEqual(await counts(w), before);
  });
});

Deno.test("connect refuses NUL and control characters, oversized tokens and base URLs with a 400 naming the field", async () => {
  await withWorld(async (w) => {
    const handler = createConnectHandler(w.deps);
    const maystro = await newAccount(w, "maystro");
    const good = {
      provider: "maystro",
      external_id: maystro.external_id,
      name: "Maystro",
      credentials: maystro.credentials,
      config: w.sandbox.configFor(maystro),
    };
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["NUL in name", { ...good, name: "a\u0000b" }, /field "name": .*U\+0000/],
      ["NUL in external_id", { ...good, external_id: "x\u0000" }, /field "external_id": .*U\+0000/],
      [
        "NUL in a credential",
        { ...good, credentials: { ...good.credentials, api_token: "t\u0000" } },
        /field "credentials\.api_token": .*U\+0000/,
      ],
      [
        "NUL in a config key",
        { ...good, config: { ...good.config, "x\u0000": 1 } },
        /field "config\.x\\u0000": .*U\+0000/,
      ],
      ["a tab in name", { ...good, name: "a\tb" }, /field "name": must not contain control/],
      [
        "a newline in a token",
        { ...good, credentials: { ...good.credentials, api_token: "abc\r\nX-Evil: 1" } },
        /field "credentials\.api_token": must not contain control/,
      ],
      [
        "an oversized token",
        {
          ...good,
          credentials: { ...good.credentials, api_token: "t".repeat(LIMITS.tokenChars + 1) },
        },
        /field "credentials\.api_token": expected at most 8192 characters/,
      ],
      [
        "a control character in api_base_url",
        { ...good, config: { ...good.config, api_base_url: `${w.sandbox.url}/maystro\u0001` } },
        /field "config\.api_base_url": expected a URL without spaces or control characters/,
      ],
      [
        "an oversized api_base_url",
        {
          ...good,
          config: { api_base_url: `${w.sandbox.url}/${"m".repeat(LIMITS.baseUrlChars)}` },
        },
        /field "config\.api_base_url": expected at most 2048 characters/,
      ],
    ];
    for (const [name, body, message] of cases) {
      const res = await call(handler, "/connect", JSON.stringify(body));
      assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body).slice(0, 300)}`);
      assert.equal(res.body.error, "invalid_body", name);
      assert.match(res.body.message!, message, name);
    }
    // The OAuth start route's name, too (a query's %00 decodes to U+0000).
    const secrets = await localSecrets();
    const start = await handler(
      new Request("http://local/connect/quickbooks/start?name=a%00b", {
        headers: { apikey: secrets.secretKey },
      }),
    );
    const startBody = await start.json() as { message: string };
    // Not configured for OAuth in tests is a 500 misconfigured before the name is read; a
    // configured one refuses the name. Either way nothing is a database error.
    assert.ok([400, 500].includes(start.status), JSON.stringify(startBody));
    assert.doesNotMatch(startBody.message, /invalid byte sequence|0x00/);
    assert.deepEqual(await counts(w), { connections: 0, credentials: 0, backfills: 0, runs: 0 });
    // The control: the same body without the bad field connects.
    const ok = await call(handler, "/connect", JSON.stringify(good));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});

Deno.test("every job body is capped before it is read: 413, and a huge streamed body is not read to its end", async () => {
  await withWorld(async (w) => {
    const handler = createJobHandler(syncOrders, w.deps);
    // Declared too large.
    const declared = await call(handler, "/sync-orders", "{}", {
      "content-length": String(MAX_JOB_BODY_BYTES + 1),
    });
    assert.equal(declared.status, 413, JSON.stringify(declared.body));
    assert.equal(declared.body.error, "payload_too_large");
    // Streamed with no length: 64 MB offered in 64 KiB chunks; reading stops past the cap.
    let pulled = 0;
    const chunk = new TextEncoder().encode(" ".repeat(64 * 1024));
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled++ >= 1024) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const streamed = await call(handler, "/sync-orders", stream);
    assert.equal(streamed.status, 413, JSON.stringify(streamed.body));
    assert.ok(pulled < 10, `read ${pulled} chunks of 64 KiB before refusing`);
    // The control: a normal body still works.
    const ok = await call(handler, "/sync-orders", JSON.stringify({ force: false }));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});

Deno.test("the webhook sweep's body is validated like every other: 400 naming the field", async () => {
  await withWorld(async (w) => {
    const handler = createWebhookHandler(w.deps);
    for (
      const [body, message] of [
        ["not json", /must be JSON/],
        ["[]", /expected object/],
        [`{"force":"yes"}`, /field "force"/],
        [`{"forse":true}`, /forse/],
      ] as const
    ) {
      const res = await call(handler, "/webhooks/_sweep", body);
      assert.equal(res.status, 400, `${body}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.message!, message, body);
    }
    const ok = await call(handler, "/webhooks/_sweep", `{"force":true}`);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});

Deno.test("a forced sync of a stream a dead worker's lease holds says why it did nothing", async () => {
  await withWorld(async (w) => {
    const shop = await seeded(w);
    const until = new Date(w.deps.now().getTime() + 120_000);
    await w.db.sql`
      insert into tether.sync_cursors (connection_id, stream, lease_owner, lease_expires_at)
      values (${shop.id}, 'orders', 'sync-orders:dead-worker', ${until})
      on conflict (connection_id, stream) do update
        set lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at`;
    const result = await runSync(w.deps, "orders", { connection_id: shop.id, force: true });
    assert.deepEqual(result.runs, []);
    assert.equal(result.skipped.length, 1, JSON.stringify(result.skipped));
    assert.equal(result.skipped[0]!.connection_id, shop.id);
    assert.match(
      result.skipped[0]!.reason,
      new RegExp(`another worker holds this stream until ${until.toISOString().slice(0, 19)}Z`),
    );
    // Once the lease has lapsed, the same call syncs it.
    await w.db.sql`
      update tether.sync_cursors set lease_expires_at = ${new Date(w.deps.now().getTime() - 1000)}
       where connection_id = ${shop.id} and stream = 'orders'`;
    const after = await runSync(w.deps, "orders", { connection_id: shop.id, force: true });
    assert.deepEqual(after.runs.map((r) => r.status), ["succeeded"]);
    assert.equal(after.skipped.length, 0, JSON.stringify(after.skipped));
  });
});

Deno.test("errors never name the database host or echo a 100 KB argument back", async () => {
  await withWorld(async (w) => {
    // A function whose database is unreachable: a 500 that says so, without host and port.
    const dead = connectDb("postgres://postgres:x@127.0.0.1:9/postgres", {
      max: 1,
      name: "tether-dead",
    });
    try {
      const deps: Deps = { ...w.deps, db: dead };
      const res = await call(createJobHandler(syncOrders, deps), "/sync-orders", "{}");
      assert.equal(res.status, 500);
      assert.match(res.body.message!, /the database could not be reached \(ECONNREFUSED\)/);
      assert.doesNotMatch(res.body.message!, /127\.0\.0\.1|:9\b/);
    } finally {
      await dead.end({ timeout: 1 });
    }
    // The SQL API quotes a bad argument cut short.
    const huge = "x".repeat(100_000);
    await assert.rejects(w.db.sql`select refresh_tokens(${huge})`, (err: Error) => {
      assert.match(err.message, /unknown provider "x{40}… \(100000 characters\)"/);
      assert.ok(err.message.length < 200, `${err.message.length} characters`);
      return true;
    });
    const shop = await seeded(w);
    await assert.rejects(
      w.db.sql`select start_backfill(${shop.id}, ${huge}, now() - interval '2 days', now())`,
      (err: Error) => {
        assert.ok(err.message.length < 200, `${err.message.length} characters`);
        return true;
      },
    );
  });
});

Deno.test("a credential no key can decrypt puts its connection in reauth_required naming the missing key, never error retried forever", async () => {
  await withWorld(async (w) => {
    const shop = await seeded(w);
    // Its credentials re-encrypted with a key the functions do not hold (a rotation gone wrong).
    const foreign = await TokenVault.fromKeyRing(generateKeyRingEntry("k7"));
    const plain = await readCredentials(w.db.sql, w.deps.vault, shop.id);
    await w.db.sql.begin((tx) =>
      writeCredentials(tx, foreign, shop.id, plain.values, { replace: true })
    );
    // The sync reads a fresh token: it cannot, and the connection says why.
    const synced = await runSync(w.deps, "orders", { connection_id: shop.id, force: true });
    assert.equal(synced.runs[0]?.status, "failed");
    const [row] = await w.db.sql<{ status: string; last_error: string }[]>`
      select status, last_error from tether.connections where id = ${shop.id}`;
    assert.equal(row!.status, "reauth_required");
    assert.match(row!.last_error, /key "k7", which is not in the key ring \(has: k1\)/);
    // Not retried: the next sweeps leave it alone, and a sync lists it as skipped.
    assert.equal((await sweep(w.deps, { force: true })).failed, 0);
    const skipped = await runSync(w.deps, "orders", { connection_id: shop.id, force: true });
    assert.deepEqual(skipped.runs, []);
    assert.match(skipped.skipped[0]!.reason, /reconnect it/);
  });
});
