// The change feed (tether.changes, read_changes, ack_changes), against the real local Postgres,
// the provider sandboxes and the served webhooks function: sync, backfill and webhooks racing on
// the same records while two consumers read with concurrent readers, one killed mid-batch and one
// leaving its lease to expire; a change committed later with a lower insert number is not skipped;
// no-op writes append nothing; a deleted customer appends `inactive`; webhook facts append only
// the fields they changed; retention prunes only what every consumer acknowledged.
import assert from "node:assert/strict";
import { type WebhookWorld, withWebhookWorld } from "./helpers/webhooks_world.ts";
import { connect, type Sql } from "../functions-shared/db/client.ts";
import { runBackfill } from "../functions-shared/jobs/backfill.ts";
import { runSync } from "../functions-shared/jobs/sync.ts";
import type { StreamName } from "../functions-shared/providers/types.ts";
import { createTestDatabase, eventually } from "./helpers/stack.ts";
import { type Conn, connectSeeded, truth } from "./helpers/records.ts";

type World = WebhookWorld;

const withWorld = (fn: (w: World) => Promise<void>) =>
  withWebhookWorld(fn, { shopify: { capacity: 1e9, restorePerSecond: 1e9 } });

interface Change {
  id: string;
  connection_id: string;
  stream: StreamName;
  record_id: string;
  op: string;
  fields: Record<string, unknown>;
  lease: string;
}

function read(sql: Sql, consumer: string, max = 50, leaseFor = "5 minutes") {
  return sql<Change[]>`
    select id::text, connection_id, stream, record_id, op, fields, lease
      from tether.read_changes(${consumer}, ${max}, ${leaseFor}::interval)`;
}

async function ack(sql: Sql, consumer: string, batch: Change[]): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select tether.ack_changes(${consumer}, ${batch.at(-1)!.id}, ${batch[0]!.lease}) as n`;
  return row!.n;
}

/** Changes of the feed in id order, published first (as a reader's call would). */
async function feed(sql: Sql, connectionId: string): Promise<Change[]> {
  await sql`select tether.publish_changes(1000000)`;
  return await sql<Change[]>`
    select id::text, connection_id, stream, record_id, op, fields, null as lease, seq::text, at
      from tether.changes c where connection_id = ${connectionId} order by c.id`;
}

async function deliverWebhooks(w: World, conn: Conn, seed: number): Promise<void> {
  await w.sandbox.call("POST", "/webhooks/deliver", {
    provider: conn.provider,
    accounts: [conn.externalId],
    url: `${w.hooks}/${conn.provider}`,
    duplicate_share: 0.2,
    shuffle: true,
    seed,
  });
  await eventually("the webhook events to be processed", async () => {
    const [row] = await w.db.sql<{ n: number }[]>`
      select count(*)::int as n from tether.webhook_events where status <> 'processed'`;
    return row!.n === 0 ? true : undefined;
  }, 30_000);
}

/**
 * A reader of `consumer` on its own connection: reads batches, processes them (appends them to
 * `seen`) and acknowledges them, until `done()` says the consumer has caught up.
 */
async function reader(url: string, consumer: string, seen: Change[], done: () => boolean) {
  const sql = connect(url, { max: 1, name: `feed-reader-${consumer}` });
  try {
    while (true) {
      const batch = await read(sql, consumer);
      if (batch.length === 0) {
        if (done() && await caughtUp(sql, consumer)) return;
        await new Promise((r) => setTimeout(r, 25));
        continue;
      }
      seen.push(...batch);
      assert.equal(await ack(sql, consumer, batch), batch.length, "the whole batch is acked");
    }
  } finally {
    await sql.end();
  }
}

async function caughtUp(sql: Sql, consumer: string): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`
    select (select acked_through from tether.change_consumers where consumer = ${consumer})
             = (select last_id from tether.change_feed)
       and not exists (select 1 from tether.changes where id is null) as ok`;
  return row!.ok;
}

/** Reads one batch in a transaction and has its connection killed before it commits. */
async function killedMidBatch(w: World, consumer: string): Promise<number> {
  const victim = connect(w.db.url, { max: 1, name: "feed-reader-killed" });
  let got = 0;
  try {
    await victim.begin(async (tx) => {
      const [me] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const pid = me!.pid;
      got = (await read(tx as unknown as Sql, consumer)).length;
      await w.db.sql`select pg_terminate_backend(${pid})`;
      await tx`select 1`;
    });
    assert.fail("the killed reader's transaction must not commit");
  } catch (error) {
    assert.doesNotMatch(String(error), /must not commit/);
  } finally {
    await victim.end({ timeout: 1 }).catch(() => {});
  }
  return got;
}

function withoutNulls(value: unknown): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value as object).filter(([, v]) => v !== null));
}

type Rec = Record<string, unknown>;

/** Every stored record of a connection, by "stream/external_id", bookkeeping columns left out. */
async function storedRecords(sql: Sql, connectionId: string): Promise<Map<string, Rec>> {
  const rows = await sql<{ key: string; row: Rec }[]>`
    select 'orders/' || external_id as key,
           to_jsonb(r) - array['id', 'connection_id', 'external_id', 'first_seen_at',
                               'updated_at'] as row
      from tether.orders r where connection_id = ${connectionId}
    union all
    select 'customers/' || external_id,
           to_jsonb(r) - array['id', 'connection_id', 'external_id', 'first_seen_at', 'updated_at']
      from tether.customers r where connection_id = ${connectionId}`;
  return new Map(rows.map(({ key, row }) => [key, { ...row, raw: withoutNulls(row.raw) }]));
}

/**
 * Applies changes, in id order, to the records as they were (`from`): a created record starts
 * empty (its change carries {}), every other change sets the fields it names, raw by top-level key.
 */
function fold(from: Map<string, Rec>, changes: Change[]): Map<string, Rec> {
  const records = new Map(from);
  for (const c of changes) {
    const key = `${c.stream}/${c.record_id}`;
    const was = records.get(key);
    if (c.op === "created") {
      assert.equal(was, undefined, `${key} is created once`);
      assert.deepEqual(c.fields, {});
    } else assert.ok(was, `${key}: ${c.op} before created`);
    const { raw, ...rest } = c.fields;
    const next: Rec = { ...was, ...rest };
    if (raw !== undefined) next.raw = withoutNulls({ ...(was?.raw as object), ...(raw as object) });
    records.set(key, next);
  }
  return records;
}

Deno.test("sync, backfill and webhooks racing: two consumers see every change once, in order per record, and the feed folds to the provider's truth", async () => {
  await withWorld(async (w) => {
    const conn = await connectSeeded(w.deps, w.sandbox, "shopify", {
      seed: 21,
      orders: 600,
      customers: 200,
      spread_days: 3,
      tracked_share: 0.5,
    });
    const consumers = ["pack-orders", "crm-export"];
    const seen: Record<string, Change[]> = { "pack-orders": [], "crm-export": [] };
    let writersDone = false;
    let readers: Promise<void>[] = [];
    const sync = (stream: StreamName) =>
      runSync(w.deps, stream, { connection_id: conn.id, force: true });
    // The records before the race, and the feed's position then.
    await sync("orders");
    await sync("customers");
    const before = await storedRecords(w.db.sql, conn.id);
    const mark = (await feed(w.db.sql, conn.id)).length;

    await w.sandbox.call("POST", "/latency", { ms: 10 });
    const now = Math.floor(Date.now() / 1000) * 1000;
    const [job] = await w.db.sql<{ id: string }[]>`
      select tether.create_backfill(${conn.id}, 'orders', ${new Date(now - 3.5 * 86_400_000)},
                                    ${new Date(now)}) as id`;
    const backfill = runBackfill(w.deps, { backfill_id: job!.id }, { pageSize: 50 });
    let killed = 0;
    let expired = 0;
    for (let round = 1; round <= 4; round++) {
      await w.sandbox.call("POST", `/data/shopify/${conn.externalId}/mutate`, { changes: 60 });
      await Promise.all([sync("orders"), sync("customers"), deliverWebhooks(w, conn, round)]);
      if (round > 1) continue;
      // One reader of each consumer fails with its first batch: one is killed before it commits,
      // the other never acknowledges (its lease runs out). Then the racing readers start.
      killed = await killedMidBatch(w, "pack-orders");
      expired = (await read(w.db.sql, "crm-export", 50, "1 second")).length;
      readers = consumers.flatMap((consumer) =>
        [1, 2].map(() => reader(w.db.url, consumer, seen[consumer]!, () => writersDone))
      );
    }
    assert.equal((await backfill).status, "succeeded");
    for (const stream of ["orders", "customers"] as const) {
      assert.equal((await sync(stream)).runs[0]!.status, "succeeded");
    }
    writersDone = true;
    await Promise.all(readers);
    assert.ok(killed > 0, "the killed reader had a batch");
    assert.ok(expired > 0, "the expiring reader had a batch");

    const all = await feed(w.db.sql, conn.id);
    assert.ok(all.length > 800, `a feed of the whole race (${all.length})`);
    for (const consumer of consumers) {
      const got = seen[consumer]!;
      assert.deepEqual(
        got.map((c) => c.id).sort(),
        all.map((c) => c.id).sort(),
        `${consumer}: every change exactly once`,
      );
      const last = new Map<string, number>();
      for (const c of got) {
        const key = `${c.stream}/${c.record_id}`;
        assert.ok((last.get(key) ?? 0) < Number(c.id), `${consumer}: ${key} in order`);
        last.set(key, Number(c.id));
      }
    }

    // The records before the race, changed as the feed says, are what is stored (a record
    // created in the race: the fields its changes name); and what is stored is the truth.
    const stored = await storedRecords(w.db.sql, conn.id);
    const folded = fold(before, all.slice(mark));
    assert.deepEqual([...folded.keys()].sort(), [...stored.keys()].sort(), "the same records");
    for (const [key, row] of stored) {
      const told = folded.get(key)!;
      if (before.has(key)) assert.deepEqual(told, row, `${key}: the feed`);
      else {
        for (const [field, value] of Object.entries(told)) {
          if (field === "raw") {
            for (const [k, v] of Object.entries(value as Rec)) {
              assert.deepEqual(v, (row.raw as Rec)[k], `${key}: raw.${k}`);
            }
          } else assert.deepEqual(value, row[field], `${key}: ${field}`);
        }
      }
    }
    for (const stream of ["orders", "customers"] as const) {
      const records = await truth(w.sandbox, conn, stream);
      assert.equal(
        [...stored.keys()].filter((k) => k.startsWith(`${stream}/`)).length,
        records.length,
        `${stream}: every record is stored`,
      );
      for (const t of records) {
        const key = `${stream}/${t.external_id}`;
        const row = stored.get(key)!;
        assert.equal(row.status, t.status, `${key}: status`);
        if (stream === "orders") {
          assert.equal(row.tracking_number, t.tracking_number ?? null, `${key}: tracking`);
          assert.equal(
            new Date(row.remote_updated_at as string).toISOString(),
            t.updated_at,
            `${key}: updated at`,
          );
        }
      }
    }
    const created = all.slice(mark).filter((c) => c.op === "created").length;
    assert.ok(created > 0 && created < all.length - mark, "the race created and changed records");
    assert.ok(all.some((c) => c.op === "inactive"), "customers deleted in the race");
  });
});

Deno.test("a change committed after a later-inserted one is not skipped: ids follow commit order", async () => {
  await withWorld(async (w) => {
    const conn = await connectSeeded(w.deps, w.sandbox, "shopify", {
      seed: 5,
      orders: 0,
      customers: 0,
      spread_days: 1,
      tracked_share: 0,
    });
    const order = (id: string) => ({
      external_id: id,
      status: "open",
      remote_updated_at: "2026-01-01T00:00:00Z",
      raw: { id },
    });
    const slow = connect(w.db.url, { max: 1, name: "feed-slow-writer" });
    try {
      let release!: () => void;
      const held = new Promise<void>((r) => release = r);
      let inserted!: () => void;
      const insertedFirst = new Promise<void>((r) => inserted = r);
      // Inserts its change first (lower seq), commits last.
      const writer = slow.begin(async (tx) => {
        await tx`select * from tether.upsert_orders(${conn.id}, ${tx.json([order("early")])})`;
        inserted();
        await held;
      });
      await insertedFirst;
      await w.db.sql`select * from tether.upsert_orders(${conn.id}, ${
        w.db.sql.json([order("late")])
      })`;
      const first = await read(w.db.sql, "c");
      assert.deepEqual(first.map((c) => c.record_id), ["late"]);
      assert.equal(await ack(w.db.sql, "c", first), 1);
      release();
      await writer;
      const second = await read(w.db.sql, "c");
      assert.deepEqual(second.map((c) => c.record_id), ["early"], "not skipped");
      assert.ok(Number(second[0]!.id) > Number(first[0]!.id), "a higher id than the one acked");
      assert.equal(await ack(w.db.sql, "c", second), 1);
      assert.equal((await read(w.db.sql, "c")).length, 0);
    } finally {
      await slow.end();
    }
  });
});

Deno.test("concurrent readers of one consumer never share a change nor a record, and an expired lease is handed out again", async () => {
  await withWorld(async (w) => {
    const conn = await connectSeeded(w.deps, w.sandbox, "shopify", {
      seed: 6,
      orders: 0,
      customers: 0,
      spread_days: 1,
      tracked_share: 0,
    });
    const page = (version: number) =>
      Array.from({ length: 20 }, (_, i) => ({
        external_id: `o${i}`,
        status: `v${version}`,
        remote_updated_at: new Date(Date.UTC(2026, 0, 1, 0, version)).toISOString(),
        raw: { version },
      }));
    for (const v of [1, 2]) {
      await w.db.sql`select * from tether.upsert_orders(${conn.id}, ${w.db.sql.json(page(v))})`;
    }
    const a = await read(w.db.sql, "c", 15, "1 second");
    const b = await read(w.db.sql, "c", 100);
    const ids = (x: Change[]) => new Set(x.map((c) => c.id));
    assert.equal(a.length, 15);
    assert.equal([...ids(a)].filter((id) => ids(b).has(id)).length, 0, "no change shared");
    const recordsOfA = new Set(a.map((c) => c.record_id));
    assert.ok(b.every((c) => !recordsOfA.has(c.record_id)), "no record of A's in B's batch");
    assert.equal(b.length, 10, "B gets the five records A holds nothing of, both versions");
    assert.equal(await ack(w.db.sql, "c", b), 10);
    await new Promise((r) => setTimeout(r, 1100));
    const again = await read(w.db.sql, "c", 100);
    assert.deepEqual(
      again.filter((c) => ids(a).has(c.id)).map((c) => c.id).sort(),
      a.map((c) => c.id).sort(),
      "A's expired batch is handed out again",
    );
    assert.equal(again.length, 30, "and the later changes of those records, in order");
    // A's late acknowledgement of its expired lease acknowledges nothing of the new one.
    assert.equal(await ack(w.db.sql, "c", a), 0);
    assert.equal(await ack(w.db.sql, "c", again), 30);
    assert.equal((await read(w.db.sql, "c")).length, 0);
  });
});

Deno.test("a write that changes nothing appends nothing; a deleted customer appends inactive; cleanup prunes only what every consumer acknowledged", async () => {
  await withWorld(async (w) => {
    const conn = await connectSeeded(w.deps, w.sandbox, "shopify", {
      seed: 8,
      orders: 40,
      customers: 40,
      spread_days: 2,
      tracked_share: 0.5,
    });
    const sync = (stream: StreamName) =>
      runSync(w.deps, stream, { connection_id: conn.id, force: true });
    await sync("orders");
    await sync("customers");
    const first = await feed(w.db.sql, conn.id);
    const before = first.length;
    assert.equal(before, 80, "one created change per record");
    const known = new Set(first.map((c) => c.record_id));
    // The same records again, by sync and by a backfill of their range: nothing new.
    await sync("orders");
    await sync("customers");
    const [job] = await w.db.sql<{ id: string }[]>`
      select tether.create_backfill(${conn.id}, 'orders', now() - interval '3 days', now()) as id`;
    assert.equal((await runBackfill(w.deps, { backfill_id: job!.id })).status, "succeeded");
    await w.db.sql`select tether.apply_order_facts(${conn.id}, external_id, null, tracking_number,
                                                   null, null, null, null, '{}') from tether.orders`;
    assert.equal((await feed(w.db.sql, conn.id)).length, before, "no-op writes append nothing");

    // Customers deleted at the provider: the sync brings them as inactive.
    let deleted = 0;
    while (deleted === 0) {
      const s = await w.sandbox.call<{ customers_deleted: number }>(
        "POST",
        `/data/shopify/${conn.externalId}/mutate`,
        { changes: 20 },
      );
      deleted += s.customers_deleted;
    }
    await sync("customers");
    const inactive = (await feed(w.db.sql, conn.id)).filter((c) => c.op === "inactive");
    const gone = (await truth(w.sandbox, conn, "customers"))
      .filter((t) => t.status === "inactive" && known.has(t.external_id));
    assert.ok(gone.length > 0, "a customer Tether had was deleted");
    assert.deepEqual(
      inactive.map((c) => c.record_id).sort(),
      gone.map((t) => t.external_id).sort(),
      "one inactive change per customer deleted at the provider",
    );
    for (const c of inactive) assert.equal(c.fields.status, "inactive");

    // Retention: changes older than changes_keep (7 days) that every consumer acknowledged.
    await w.db.sql`update tether.changes set at = at - interval '8 days'`;
    await w.db.sql`select * from tether.upsert_orders(${conn.id}, ${
      w.db.sql.json([{ external_id: "fresh", status: "open", raw: {} }])
    })`;
    const old = (await feed(w.db.sql, conn.id)).length - 1;
    const cleanup = async () =>
      (await w.db.sql<{ c: { changes: number } }[]>`select tether.cleanup() as c`)[0]!.c.changes;
    const a = await read(w.db.sql, "a", 10_000);
    assert.equal(await ack(w.db.sql, "a", a), old + 1);
    const b = await read(w.db.sql, "b", 10_000);
    assert.equal(await cleanup(), 0, "b acknowledged nothing yet");
    assert.equal(await ack(w.db.sql, "b", b.slice(0, 10)), 10);
    assert.equal(await cleanup(), 10, "what both acknowledged");
    assert.equal(await ack(w.db.sql, "b", b.slice(10)), old + 1 - 10);
    assert.equal(await cleanup(), old - 10, "all but the fresh change");
    assert.deepEqual((await feed(w.db.sql, conn.id)).map((c) => c.record_id), ["fresh"]);
  });
});

Deno.test("webhook facts (ShipHero Shipment Update, Order Canceled) append updated with only the fields they changed", async () => {
  await withWorld(async (w) => {
    const conn = await connectSeeded(w.deps, w.sandbox, "shiphero", {
      seed: 9,
      orders: 40,
      customers: 0,
      spread_days: 2,
      tracked_share: 0,
    });
    assert.equal(
      (await runSync(w.deps, "orders", { connection_id: conn.id, force: true })).runs[0]!.status,
      "succeeded",
    );
    const mark = (await feed(w.db.sql, conn.id)).length;
    const known = new Set((await feed(w.db.sql, conn.id)).map((c) => c.record_id));
    await w.sandbox.call("POST", `/data/shiphero/${conn.externalId}/mutate`, { changes: 150 });
    const sent = await w.sandbox.call<{ changes: number }>("POST", "/webhooks/deliver", {
      provider: "shiphero",
      accounts: [conn.externalId],
      url: `${w.hooks}/shiphero/${conn.id}`,
    });
    assert.ok(sent.changes > 0);
    await eventually("the webhook events to be processed", async () => {
      const [row] = await w.db.sql<{ n: number; done: number }[]>`
        select count(*)::int as n, count(*) filter (where status = 'processed')::int as done
          from tether.webhook_events`;
      return row!.n > 0 && row!.n === row!.done ? true : undefined;
    }, 30_000);
    // Order Canceled is a forward-only fact (tether.apply_order_facts); Shipment Update re-reads
    // the whole order, like a sync page.
    const canceled = new Set(
      (await truth(w.sandbox, conn, "orders")).filter((t) => t.status === "canceled")
        .map((t) => t.external_id),
    );
    const facts = (await feed(w.db.sql, conn.id)).slice(mark)
      .filter((c) => known.has(c.record_id) && canceled.has(c.record_id));
    assert.ok(facts.length > 0, "orders Tether had were canceled by webhook");
    for (const c of facts) {
      assert.equal(c.op, "updated");
      // Its normalized fulfillment_status stays unfulfilled; canceled_at is the arrival's time.
      const { canceled_at, ...words } = c.fields;
      assert.deepEqual(words, { status: "canceled", provider_fulfillment_status: "canceled" });
      assert.ok(!Number.isNaN(Date.parse(String(canceled_at))), `canceled_at: ${canceled_at}`);
    }
  });
});

Deno.test("the feed is service_role's only: RLS on its tables, its functions refused to anon and authenticated", async () => {
  const db = await createTestDatabase();
  try {
    const tables = ["changes", "change_feed", "change_consumers", "change_leases"];
    const rls = await db.sql<{ relname: string; relrowsecurity: boolean }[]>`
      select relname, relrowsecurity from pg_class
       where relnamespace = 'tether'::regnamespace and relname = any(${tables})`;
    assert.deepEqual(
      rls.filter((r) => r.relrowsecurity).map((r) => r.relname).sort(),
      tables.sort(),
    );
    const calls = [
      "select * from tether.read_changes('x')",
      "select tether.ack_changes('x', 1)",
      "select * from public.tether_read_changes('x')",
      "select public.tether_ack_changes('x', 1)",
      "select * from tether.changes",
    ];
    for (const role of ["anon", "authenticated", "service_role"]) {
      for (const call of calls) {
        const outcome = await db.sql.begin(async (tx) => {
          await tx.unsafe(`set local role ${role}`);
          await tx.unsafe(call);
        }).then(() => "ok", (e) => e.code as string);
        if (role === "service_role") {
          assert.ok(
            outcome === "ok" || (call.includes("ack") && outcome === "P0001"),
            `${role}: ${call} → ${outcome}`,
          );
        } else assert.equal(outcome, "42501", `${role}: ${call}`);
      }
    }
  } finally {
    await db.drop();
  }
});

Deno.test("the README's Edge Function that reads the feed with postgres.js runs as written", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const block = readme.split("<!-- feed-example: postgres.js")[1]?.match(/```ts\n([\s\S]*?)```/)
    ?.[1];
  assert.ok(block, "the README has the example");
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const dir = new URL("../.tether/examples/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  const file = new URL(`feed_${port}.ts`, dir);
  // The one change: a port of the test's choosing instead of Deno.serve's default.
  await Deno.writeTextFile(
    file,
    block.replace("Deno.serve(", `Deno.serve({ hostname: "127.0.0.1", port: ${port} }, `),
  );
  const db = await createTestDatabase();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file.pathname],
    env: { SUPABASE_DB_URL: db.url },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const [conn] = await db.sql<{ id: string }[]>`
      insert into tether.connections (provider, external_id, name)
      values ('shopify', 'readme', 'readme') returning id`;
    const orders = ["a", "b", "c"].map((id) => ({ external_id: id, status: "open", raw: { id } }));
    await db.sql`select * from tether.upsert_orders(${conn!.id}, ${db.sql.json(orders)})`;
    const call = () =>
      eventually("the example function to answer", async () => {
        try {
          return await (await fetch(`http://127.0.0.1:${port}/`, { method: "POST" })).json();
        } catch {
          return undefined;
        }
      }, 30_000);
    assert.deepEqual(await call(), { read: 3, packed: 3 });
    assert.deepEqual(await call(), { read: 0, packed: 0 }, "acknowledged: never again");
    const [row] = await db.sql<{ through: number }[]>`
      select acked_through::int as through from tether.change_consumers
       where consumer = 'pack-new-orders'`;
    assert.equal(row!.through, 3);
  } finally {
    child.kill();
    await child.stderr.cancel();
    await child.status;
    await Deno.remove(file).catch(() => {});
    await db.drop();
  }
});

Deno.test("an order deleted at the provider (QuickBooks) appends deleted", async () => {
  await withWorld(async (w) => {
    const conn = await connectSeeded(w.deps, w.sandbox, "quickbooks", {
      seed: 12,
      orders: 10,
      customers: 0,
      spread_days: 1,
      tracked_share: 0,
    });
    const sync = () => runSync(w.deps, "orders", { connection_id: conn.id, force: true });
    assert.equal((await sync()).runs[0]!.status, "succeeded");
    const mark = (await feed(w.db.sql, conn.id)).length;
    await w.sandbox.call("POST", `/data/quickbooks/${conn.externalId}/orders/3/delete`);
    assert.equal((await sync()).runs[0]!.status, "succeeded");
    const after = (await feed(w.db.sql, conn.id)).slice(mark);
    const gone = (await truth(w.sandbox, conn, "orders")).filter((t) => t.status === "Deleted");
    assert.equal(gone.length, 1);
    assert.deepEqual(after.map((c) => [c.op, c.record_id]), [["deleted", gone[0]!.external_id]]);
  });
});
