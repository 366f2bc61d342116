// bench sync (see main.ts): 50,000 Shopify orders through the served sync-orders function,
// compared with a bare batched upsert of the same rows (upsertRate says what it includes) and with
// one upsert per record.
import { connect } from "../../functions-shared/db/client.ts";
import type { SyncResult } from "../../functions-shared/jobs/sync.ts";
import type { TestDatabase } from "../local/harness.ts";
import { chunk } from "./measure.ts";
import { type CaseResult, round } from "./report.ts";
import { type GatewayFigures, withBenchWorld } from "./world.ts";
import { connectedShop, matchingTruth } from "./shop.ts";

export interface SyncBench extends CaseResult, GatewayFigures {
  case: "sync";
  records: number;
  records_matching_truth: number;
  wall_s: number;
  invocations: number;
  records_per_s: number;
  bare_upsert_records_per_s: number;
  /** records_per_s as a share of bare_upsert_records_per_s, in % (target: at least 80). */
  bare_pct: number;
  per_record_upsert_records_per_s: number;
  cpu_ms_per_page: number;
}

const SYNC = { orders: 50_000, pageSize: 250, perRecordSample: 5_000 };

export async function benchSync(log: (line: string) => void): Promise<SyncBench> {
  return await withBenchWorld<SyncBench>(async (world) => {
    const { db, sandbox, serve } = world;
    log(`seeding ${SYNC.orders} orders in the sandbox…`);
    const { connection_id, account } = await connectedShop(world, {
      seed: 42,
      orders: SYNC.orders,
      spreadDays: 365,
    });
    const served = await serve(["sync-orders"]);
    const secretKey = served.secretKey;
    await served.resetStats();

    log("syncing through the sync-orders function…");
    const started = performance.now();
    let invocations = 0;
    let pages = 0;
    while (true) {
      invocations++;
      const res = await fetch(`${served.functionsUrl}/sync-orders`, {
        method: "POST",
        headers: { apikey: secretKey, "content-type": "application/json" },
        body: JSON.stringify({ connection_id, force: true }),
      });
      const body = await res.json() as SyncResult;
      const run = res.ok ? body.runs[0] : undefined;
      if (!run || run.status !== "succeeded") {
        throw new Error(`sync-orders failed: ${JSON.stringify(body)}`);
      }
      pages += run.pages;
      if (run.caught_up) break;
      if (invocations > 20) throw new Error("sync-orders has not caught up after 20 invocations");
    }
    const wallS = (performance.now() - started) / 1000;
    const cpu = (await served.stats())["sync-orders"]!.cpu_ms;
    const records = await matchingTruth(db, sandbox, account.external_id, connection_id);
    if (records.stored !== SYNC.orders || records.matching !== SYNC.orders) {
      throw new Error(`sync bench is wrong: ${JSON.stringify(records)} of ${SYNC.orders}`);
    }

    log("bare batched upsert of the same rows…");
    const bare = await upsertRate(db, connection_id, "batched");
    log(`one upsert per record (${SYNC.perRecordSample} records)…`);
    const perRecord = await upsertRate(db, connection_id, "per-record");
    return {
      case: "sync",
      records: records.stored,
      records_matching_truth: records.matching,
      wall_s: round(wallS, 2),
      invocations,
      records_per_s: round(SYNC.orders / wallS, 0),
      bare_upsert_records_per_s: round(bare, 0),
      bare_pct: round((SYNC.orders / wallS / bare) * 100, 1),
      per_record_upsert_records_per_s: round(perRecord, 0),
      cpu_ms_per_page: round(cpu / pages, 2),
    };
  });
}

/**
 * Records per second writing the synced rows with the database alone: 250 a statement (a sync
 * page), or one statement each (a sample). Honest about what the sync pays, so that the ratio
 * measures Tether's own overhead: the same rows, bound as parameters, into a table made like
 * tether.orders (its indexes, constraints, defaults and foreign key) with the same change-feed
 * triggers (appending to tether.changes), by the statement tether.upsert_orders runs (every
 * column set, newer wins). Not included: reading the provider, the cursor checkpoint,
 * BEGIN/COMMIT, the rate budget.
 */
async function upsertRate(
  db: TestDatabase,
  connectionId: string,
  mode: "batched" | "per-record",
): Promise<number> {
  const table = `bench_${mode === "batched" ? "bare" : "single"}`;
  await db.sql.unsafe(`
    create table tether.${table} (like tether.orders including all);
    alter table tether.${table} add foreign key (connection_id)
      references tether.connections (id) on delete cascade;
    create trigger ${table}_append_created after insert on tether.${table}
      referencing new table as created_rows
      for each statement execute function tether.append_created_changes('orders');
    create trigger ${table}_append_updated after update on tether.${table}
      referencing old table as updated_old new table as updated_new
      for each statement execute function tether.append_updated_changes('orders');`);
  // The record's columns as the table has them (bookkeeping aside): what a page writes.
  const columns = (await db.sql<{ name: string }[]>`
    select column_name as name from information_schema.columns
     where table_schema = 'tether' and table_name = 'orders'
       and column_name not in ('id', 'first_seen_at', 'updated_at')
     order by ordinal_position`).map((c) => c.name);
  // Names from the catalog, quoted: the statements are built from them as text.
  const list = columns.map((c) => `"${c}"`).join(", ");
  const set = columns
    .filter((c) => c !== "connection_id" && c !== "external_id")
    .map((c) => `"${c}" = excluded."${c}"`)
    .join(", ");
  const rows = await db.sql.unsafe(
    `select ${list} from tether.orders where connection_id = $1 order by id
      ${mode === "per-record" ? `limit ${SYNC.perRecordSample}` : ""}`,
    [connectionId],
  );
  const pool = connect(db.url, { max: 1, name: "tether-bench" });
  try {
    // No alias after the table: postgres.js reads the keyword before a helper to render it.
    const target = pool(`tether.${table}`);
    const upsert = (batch: readonly Record<string, unknown>[]) =>
      pool`insert into ${target} ${pool(batch as Record<string, unknown>[])}
           on conflict (connection_id, external_id) do update
              set ${pool.unsafe(set)}, updated_at = now()
            where ${target}.remote_updated_at is null
               or excluded.remote_updated_at > ${target}.remote_updated_at
               or (excluded.remote_updated_at = ${target}.remote_updated_at
                   and excluded.raw is distinct from ${target}.raw)`;
    const started = performance.now();
    if (mode === "batched") {
      for (const batch of chunk([...rows], SYNC.pageSize)) await upsert(batch);
    } else {
      for (const row of rows) await upsert([row]);
    }
    return rows.length / ((performance.now() - started) / 1000);
  } finally {
    await pool.end();
  }
}
