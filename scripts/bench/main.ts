// npm run bench [-- <case>…]: benchmarks against the local stack, each in its own database.
// Prints a table and writes bench/results.json (an array, one object per case; a run of some
// cases keeps the others' last results). Every case runs its functions through the local gateway,
// under the Edge Runtime's limits, and reports what the gateway measured of its invocations
// (./world.ts): max_cpu_ms_per_invocation (Supabase ends an invocation past 2,000 ms), the function
// it was measured on, max_rss_mb, gateway_invocations, limit_kills, and by_function in the file.
//
// refresh: 2,000 due connections across the four providers with a token endpoint, served by an
// in-process provider sandbox that answers every call after 100 ms. The served refresh-tokens
// function is invoked four at a time, as when pg_cron and a person in the SQL editor both call
// refresh_tokens(), until nothing is due. The sandbox counts the token-endpoint calls: exactly one
// per connection.
//
// sync: 50,000 Shopify orders, no added latency and a rate budget too large to matter, synced
// through the served sync-orders function (its CPU time per page is read from /proc), called
// until it has caught up. Compared with the database's own limit (a bare batched INSERT … ON
// CONFLICT of the same rows from Deno, 250 a statement) and with what hand-built syncs do (one
// upsert statement per record).
//
// backfill: 100,000 Shopify orders over a 90-day range, re-read by the served backfill function
// from one start_backfill() call until it succeeds by itself: wall time, invocations, records per
// second; then the same with 1,000,000 orders (`backfill_1m`, minutes; `--skip-1m` leaves it out):
// its peak RSS must stay flat, within 10 % of the first run's and under 256 MB.
//
// webhooks: 2,000 signed Shopify `orders/updated` deliveries (several versions of 500 orders, 15 %
// of them repeated with the same webhook id), shuffled, sent 16 at a time to the served webhooks
// function: sustained verified deliveries per second, p50/p99 latency per delivery, and how many
// events were processed more than once (must be 0). Then 200 signed QuickBooks notifications, 8 at
// a time, whose processing re-fetches each entity: the answer's p50/p99 while the sandbox holds
// every re-fetch 2 s (`qb_answer_p99_ms`, target under 100 ms: the answer must not wait for the
// provider), beside the same with re-fetches at full speed (`qb_answer_p99_ms_unheld`, what the
// machine gives); every event must still end processed.
//
// pacing: each provider's sync for TETHER_BENCH_PACING_SECONDS (default 180) against its sandbox
// enforcing the provider's published rate limit (sandbox/limits.ts; Shopify on the Standard plan),
// all at once, plus one Shopify connection whose orders and customers syncs and a stream of
// proxied calls share one budget: per provider (and `shared_connection`) `limit_use_pct`, the
// share of what the limit restored during the run that was used (target >= 90), and `throttled`
// requests (target 0) (./pacing.ts).
//
// feed: 100,000 Shopify orders synced through the served sync-orders function with the change
// feed's triggers off and on, alternately, three times each, each in a fresh database; the last
// sync's 100,000 changes read and acknowledged by 4 concurrent readers of one consumer: changes
// per second, and the median sync records per second with the feed on and off (the feed must cost
// under 15 %).
//
// scale: 10,000 connections (2,000 per provider) at 150 ms a provider call, kept fresh for 15
// simulated minutes by Tether's own pg_cron schedules through pg_net alone (./scale.ts): on-time
// shares of refreshes and syncs, the longest lag, pg_net requests per tick, peak database
// connections, failed invocations. `npm run bench -- scale --connections 500 --minutes 5` is a
// smaller run (flags: --connections, --minutes, --tick-seconds, --latency-ms, --changes-per-hour).
import { withStack } from "../local/stack.ts";
import { benchBackfill } from "./backfill.ts";
import { benchFeed } from "./feed.ts";
import { benchPacing, pacingOptions } from "./pacing.ts";
import { benchRefresh } from "./refresh.ts";
import { type CaseResult, printTable, RESULTS, writeResults } from "./report.ts";
import { benchScale, scaleOptions } from "./scale.ts";
import { benchSync } from "./sync.ts";
import { benchWebhooks } from "./webhooks.ts";

type Flags = Record<string, string>;
const CASES: Record<string, (log: (line: string) => void, flags: Flags) => Promise<CaseResult>> = {
  refresh: benchRefresh,
  sync: benchSync,
  // `--skip-1m` (last, it takes no value) leaves out the 1,000,000-order run.
  backfill: (log, flags) => benchBackfill(log, { skip1m: "skip-1m" in flags }),
  webhooks: benchWebhooks,
  feed: benchFeed,
  pacing: (log, flags) => benchPacing(log, pacingOptions(flags)),
  scale: (log, flags) => benchScale(log, scaleOptions(flags)),
};

// Case names, then `--name value` flags for the cases that take them (scale).
const names = Deno.args.filter((arg, i) =>
  !arg.startsWith("--") && !Deno.args[i - 1]?.startsWith("--")
);
const flags: Flags = {};
Deno.args.forEach((arg, i) => {
  if (arg.startsWith("--")) flags[arg.slice(2)] = Deno.args[i + 1] ?? "";
});
const wanted = names.length > 0 ? names : Object.keys(CASES);
const unknown = wanted.filter((name) => !(name in CASES));
if (unknown.length > 0) {
  console.error(
    `bench: unknown case ${unknown.join(", ")} (one of ${Object.keys(CASES).join(", ")})`,
  );
  Deno.exit(2);
}
const results: CaseResult[] = [];
await withStack(async () => {
  for (const name of wanted) {
    console.log(`bench ${name}`);
    results.push(await CASES[name]!((line) => console.log(`  ${line}`), flags));
  }
});
console.log();
printTable(results);
await writeResults(results);
console.log(`\nwrote ${RESULTS}`);
