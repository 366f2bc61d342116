// bench feed (see main.ts): 100,000 Shopify orders synced through the served sync-orders function
// with the change feed off and on, alternately, three times each, each sync in a fresh database,
// and the medians compared (the machine is shared: one off/on pair alone gave anything from -6 %
// to +42 %); the last "on" sync's 100,000 changes are then read and acknowledged by 4 concurrent
// readers of one consumer.
import { connect } from "../../functions-shared/db/client.ts";
import type { SyncResult } from "../../functions-shared/jobs/sync.ts";
import type { TestDatabase } from "../local/harness.ts";
import { type CaseResult, round } from "./report.ts";
import { type BenchWorld, type GatewayFigures, withBenchWorld } from "./world.ts";
import { connectedShop } from "./shop.ts";

export interface FeedBench extends CaseResult, GatewayFigures {
  case: "feed";
  changes: number;
  changes_per_s: number;
  sync_records_per_s_feed_on: number;
  sync_records_per_s_feed_off: number;
  /** How much of the sync's throughput the feed costs: 1 - on / off. */
  feed_cost_share: number;
}

const FEED = { orders: 100_000, readers: 4, batch: 500, pairs: 3 };

export async function benchFeed(log: (line: string) => void): Promise<FeedBench> {
  const rates = { off: [] as number[], on: [] as number[] };
  const syncRate = async (on: boolean) =>
    (await withBenchWorld<SyncRun>(async (w) => {
      log(`feed ${on ? "on" : "off"}: seeding and syncing ${FEED.orders} orders…`);
      await setFeed(w.db, on);
      return { case: "feed", records_per_s: (await syncAll(w)).recordsPerS };
    })).records_per_s;
  for (let pair = 1; pair <= FEED.pairs; pair++) {
    rates.off.push(await syncRate(false));
    // The last "on" sync is the one whose changes are read below.
    if (pair < FEED.pairs) rates.on.push(await syncRate(true));
  }
  return await withBenchWorld<FeedBench>(async (w) => {
    log(`feed on: seeding and syncing ${FEED.orders} orders…`);
    rates.on.push((await syncAll(w)).recordsPerS);
    const on = median(rates.on);
    const off = median(rates.off);
    log(`sync records/s, feed off: ${rates.off.map(Math.round)}; on: ${rates.on.map(Math.round)}`);
    const [counted] = await w.db.sql<{ n: number }[]>`
      select count(*)::int as n from tether.changes`;
    const n = counted!.n;
    if (n !== FEED.orders) throw new Error(`feed bench: ${n} changes, not ${FEED.orders}`);
    log(`${FEED.readers} readers of one consumer, ${FEED.batch} a batch…`);
    const started = performance.now();
    const counts = await Promise.all(
      Array.from({ length: FEED.readers }, () => readAll(w.db, "bench")),
    );
    const wallS = (performance.now() - started) / 1000;
    const read = counts.reduce((a, b) => a + b, 0);
    const [consumer] = await w.db.sql<{ through: number }[]>`
      select acked_through::int as through from tether.change_consumers where consumer = 'bench'`;
    const through = consumer!.through;
    if (read !== n || through !== n) {
      throw new Error(`feed bench: read ${read}, acknowledged through ${through}, of ${n}`);
    }
    return {
      case: "feed",
      changes: n,
      changes_per_s: round(n / wallS, 0),
      sync_records_per_s_feed_on: round(on, 0),
      sync_records_per_s_feed_off: round(off, 0),
      feed_cost_share: round(1 - on / off, 3),
    };
  });
}

/** One of the syncs that only measure the rate. */
interface SyncRun extends CaseResult, GatewayFigures {
  case: "feed";
  records_per_s: number;
}

/** The middle value (of an odd count): one sync slowed or sped by the shared machine moves it least. */
function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

/** The feed's triggers on tether.orders, disabled for the "off" runs. */
async function setFeed(db: TestDatabase, on: boolean): Promise<void> {
  const verb = on ? "enable" : "disable";
  for (const trigger of ["orders_append_created", "orders_append_updated"]) {
    await db.sql.unsafe(`alter table tether.orders ${verb} trigger ${trigger}`);
  }
}

/** Seeds the shop and calls the served sync-orders function until it has caught up. */
async function syncAll(world: BenchWorld) {
  const { connection_id } = await connectedShop(world, {
    seed: 44,
    orders: FEED.orders,
    spreadDays: 365,
  });
  const served = await world.serve(["sync-orders"]);
  const started = performance.now();
  for (let invocation = 1;; invocation++) {
    const res = await fetch(`${served.functionsUrl}/sync-orders`, {
      method: "POST",
      headers: { apikey: served.secretKey, "content-type": "application/json" },
      body: JSON.stringify({ connection_id, force: true }),
    });
    const body = await res.json() as SyncResult;
    const run = res.ok ? body.runs[0] : undefined;
    if (!run || run.status !== "succeeded") {
      throw new Error(`sync-orders failed: ${JSON.stringify(body)}`);
    }
    if (run.caught_up) break;
    if (invocation > 40) throw new Error("sync-orders has not caught up after 40 invocations");
  }
  return { recordsPerS: FEED.orders / ((performance.now() - started) / 1000) };
}

/** One reader: reads and acknowledges batches until the consumer has nothing left for it. */
async function readAll(db: TestDatabase, consumer: string): Promise<number> {
  const sql = connect(db.url, { max: 1, name: "tether-bench-reader" });
  let read = 0;
  try {
    while (true) {
      const batch = await sql<{ id: string; lease: string }[]>`
        select id::text, lease from tether.read_changes(${consumer}, ${FEED.batch})`;
      if (batch.length === 0) {
        const [state] = await sql<{ left: boolean }[]>`
          select exists (select 1 from tether.changes c
                          where c.id is null
                             or c.id > (select acked_through from tether.change_consumers
                                         where consumer = ${consumer})) as left`;
        if (!state!.left) return read;
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      await sql`select tether.ack_changes(${consumer}, ${batch.at(-1)!.id}, ${batch[0]!.lease})`;
      read += batch.length;
    }
  } finally {
    await sql.end();
  }
}
