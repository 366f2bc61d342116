// bench backfill (see main.ts): 100,000 Shopify orders over 90 days through the served backfill
// function, which continues itself through pg_net.
import { type CaseResult, round } from "./report.ts";
import { type GatewayFigures, withBenchWorld } from "./world.ts";
import { storeVaultSecrets } from "../local/harness.ts";
import { connectedShop, matchingTruth } from "./shop.ts";

export interface BackfillBench extends CaseResult, GatewayFigures {
  case: "backfill";
  records: number;
  records_matching_truth: number;
  wall_s: number;
  invocations: number;
  records_per_s: number;
}

const BACKFILL = { orders: 100_000, rangeDays: 90, budgetMs: 3_000 };

/**
 * backfill: 100,000 Shopify orders updated over 90 days, backfilled over the whole 90-day range by
 * the served backfill function (its own process, with a 3 s time budget so it continues itself
 * through pg_net several times, as a deployed one would over a larger range). Started with
 * start_backfill() in SQL; invocations are counted from the run records.
 */
export async function benchBackfill(log: (line: string) => void): Promise<BackfillBench> {
  return await withBenchWorld<BackfillBench>(async (world) => {
    const { db, sandbox, serve } = world;
    log(`seeding ${BACKFILL.orders} orders over ${BACKFILL.rangeDays} days in the sandbox…`);
    const { connection_id, account } = await connectedShop(world, {
      seed: 43,
      orders: BACKFILL.orders,
      spreadDays: BACKFILL.rangeDays - 1,
    });
    const served = await serve(["backfill"], {
      env: { TETHER_TIME_BUDGET_MS: String(BACKFILL.budgetMs) },
    });
    await storeVaultSecrets(db.sql, served);

    log(`backfilling ${BACKFILL.rangeDays} days through the backfill function…`);
    const started = performance.now();
    const [job] = await db.sql<{ id: string }[]>`
      select public.start_backfill(${connection_id}, 'orders',
        now() - make_interval(days => ${BACKFILL.rangeDays}), now()) as id`;
    const id = job!.id;
    while (true) {
      const [row] = await db.sql<{ status: string; last_error: string | null }[]>`
        select status, last_error from tether.backfills where id = ${id}`;
      if (row!.status === "succeeded") break;
      if (row!.status !== "pending" && row!.status !== "running") {
        throw new Error(`backfill ended ${row!.status}: ${row!.last_error}`);
      }
      if (performance.now() - started > 600_000) throw new Error("backfill took over 10 min");
      await new Promise((r) => setTimeout(r, 250));
    }
    const wallS = (performance.now() - started) / 1000;
    const [runs] = await db.sql<{ n: number; failed: number }[]>`
      select count(*)::int as n, count(*) filter (where status = 'failed')::int as failed
        from tether.runs where backfill_id = ${id}`;
    const records = await matchingTruth(db, sandbox, account.external_id, connection_id);
    if (records.stored !== BACKFILL.orders || records.matching !== BACKFILL.orders) {
      throw new Error(`backfill bench is wrong: ${JSON.stringify(records)} of ${BACKFILL.orders}`);
    }
    if (runs!.failed > 0) throw new Error(`${runs!.failed} backfill invocations failed`);
    return {
      case: "backfill",
      records: records.stored,
      records_matching_truth: records.matching,
      wall_s: round(wallS, 2),
      invocations: runs!.n,
      records_per_s: round(BACKFILL.orders / wallS, 0),
    };
  });
}
