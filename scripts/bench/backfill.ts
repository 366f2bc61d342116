// bench backfill (see main.ts): 100,000 and 1,000,000 Shopify orders over 90 days through the
// served backfill function, which continues itself through pg_net.
import { type CaseResult, round } from "./report.ts";
import { type GatewayFigures, withBenchWorld } from "./world.ts";
import { storeVaultSecrets } from "../local/harness.ts";
import { connectedShop, matchingTruth } from "./shop.ts";

interface BackfillRun extends CaseResult, GatewayFigures {
  case: "backfill";
  records: number;
  records_matching_truth: number;
  wall_s: number;
  invocations: number;
  records_per_s: number;
}

export interface BackfillBench extends BackfillRun {
  /** The same over 1,000,000 orders (absent with --skip-1m). */
  backfill_1m?: BackfillRun;
  /** Its figures the table shows: records per second, peak RSS (MB), and that RSS against the
   * 100,000-order run's, in % (flat: within 10). */
  records_per_s_1m?: number;
  max_rss_mb_1m?: number;
  rss_1m_vs_100k_pct?: number;
}

const BACKFILL = { orders: 100_000, large: 1_000_000, rangeDays: 90, budgetMs: 3_000 };

/**
 * backfill: the 100,000-order run, then (unless `skip1m`: it takes minutes) the same over
 * 1,000,000 orders, whose peak memory must be the 100,000-order run's within 10 %: a backfill
 * holds a page at a time, whatever the range holds.
 */
export async function benchBackfill(
  log: (line: string) => void,
  opts: { skip1m?: boolean } = {},
): Promise<BackfillBench> {
  const base = await backfillRun(BACKFILL.orders, log);
  if (opts.skip1m) return base;
  const large = await backfillRun(BACKFILL.large, log);
  return {
    ...base,
    backfill_1m: large,
    records_per_s_1m: large.records_per_s,
    max_rss_mb_1m: large.max_rss_mb,
    rss_1m_vs_100k_pct: round((large.max_rss_mb / base.max_rss_mb - 1) * 100, 1),
  };
}

/**
 * `orders` Shopify orders updated over 90 days, backfilled over the whole 90-day range by
 * the served backfill function (its own process, with a 3 s time budget so it continues itself
 * through pg_net several times, as a deployed one would over a larger range). Started with
 * start_backfill() in SQL; invocations are counted from the run records.
 */
async function backfillRun(orders: number, log: (line: string) => void): Promise<BackfillRun> {
  return await withBenchWorld<BackfillRun>(async (world) => {
    const { db, sandbox, serve } = world;
    log(`seeding ${orders} orders over ${BACKFILL.rangeDays} days in the sandbox…`);
    const { connection_id, account } = await connectedShop(world, {
      seed: 43,
      orders,
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
      // Generous: on a loaded 2-core machine the 1,000,000-order run took over an hour.
      if (performance.now() - started > 4 * 3_600_000) throw new Error("backfill took over 4 h");
      await new Promise((r) => setTimeout(r, 250));
    }
    const wallS = (performance.now() - started) / 1000;
    const [runs] = await db.sql<{ n: number; failed: number }[]>`
      select count(*)::int as n, count(*) filter (where status = 'failed')::int as failed
        from tether.runs where backfill_id = ${id}`;
    const records = await matchingTruth(db, sandbox, account.external_id, connection_id);
    if (records.stored !== orders || records.matching !== orders) {
      throw new Error(`backfill bench is wrong: ${JSON.stringify(records)} of ${orders}`);
    }
    if (runs!.failed > 0) throw new Error(`${runs!.failed} backfill invocations failed`);
    return {
      case: "backfill",
      records: records.stored,
      records_matching_truth: records.matching,
      wall_s: round(wallS, 2),
      invocations: runs!.n,
      records_per_s: round(orders / wallS, 0),
    };
  });
}
