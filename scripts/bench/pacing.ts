// bench pacing (see main.ts): each provider's sync against its sandbox enforcing the provider's
// published rate limit (sandbox/limits.ts), and one Shopify connection whose two syncs and a
// stream of proxied calls share one budget (tether.rate_budgets).
//
// A run is `seconds` long (TETHER_BENCH_PACING_SECONDS, default 180): every provider at once, each
// with its own account, seeded with more records than the run can read at the limit, its sync
// function called again whenever an invocation ends, until the time is up or it caught up. The
// sandbox's usage of each account is sampled every second; `limit_use_pct` is the share of what
// the limit restored from the first request to the end that was used: the units charged (points,
// credits or requests) less what the bucket held at the start and no longer holds (its first
// burst says nothing of the pacing), over the limit's sustained rate (the restore rate; a window's
// requests over its length) times the time. A window limit is paced evenly (pacing.ts
// windowBucket): its units are counted as they are. `throttled` counts the account's throttled
// requests over the whole run.
import { TIME_BUDGET_MS } from "../../functions-shared/env.ts";
import type { SyncResult } from "../../functions-shared/jobs/sync.ts";
import type { ProviderName } from "../../functions-shared/providers/types.ts";
import type { Usage } from "../../sandbox/limits.ts";
import { type CaseResult, round } from "./report.ts";
import { type BenchWorld, type GatewayFigures, withBenchWorld } from "./world.ts";

/** One provider's (or the shared connection's) figures. */
export interface PacingFigures {
  limit: string;
  limit_use_pct: number;
  throttled: number;
  requests: number;
  /** Units (points, credits or requests) used per second of what the limit restored. */
  units_per_s: number;
  /** The limit's sustained maximum, in the same units. */
  limit_per_s: number;
  records: number;
  seconds: number;
  /** The part of the run measured: from the first request to the end. */
  measured_s: number;
}

export interface PacingBench extends CaseResult, GatewayFigures {
  case: "pacing";
  seconds: number;
  shopify_plan: string;
  pacing: Partial<Record<ProviderName, PacingFigures>> & { shared_connection: PacingFigures };
}

export interface PacingOptions {
  /** How long each sync runs at the limit (default 180). */
  seconds?: number;
  /** The providers measured one by one (default all; the shared connection always runs). */
  providers?: ProviderName[];
}

/** `--seconds 60 --providers shopify,maystro` (npm run bench -- pacing --seconds 60). */
export function pacingOptions(flags: Record<string, string>): PacingOptions {
  return {
    ...(flags.seconds ? { seconds: Number(flags.seconds) } : {}),
    ...(flags.providers ? { providers: flags.providers.split(",") as ProviderName[] } : {}),
  };
}

const PROVIDERS: ProviderName[] = ["shopify", "shiphero", "lightspeed", "quickbooks", "maystro"];

/**
 * About the records a second a sync reads at each provider's limit (a page's records over its
 * cost: Shopify and ShipHero charge about one unit a record, Lightspeed pages 200 records,
 * QuickBooks up to 500, Maystro 20), to seed enough for the run; QuickBooks' is capped (at its
 * limit a sync could read more than the database writes).
 */
const RECORDS_PER_S: Record<ProviderName, number> = {
  shopify: 100,
  shiphero: 60,
  lightspeed: 230,
  quickbooks: 400,
  maystro: 200,
};

/** Queried by the proxied stream: about 52 points each (2 + 50 nodes). */
const PROXIED_QUERY = "{ orders(first: 50) { edges { node { id } } } }";

/** Pause between proxied calls: a steady stream beside the two syncs. */
const PROXY_GAP_MS = 250;

export async function benchPacing(
  log: (line: string) => void,
  opts: PacingOptions = {},
): Promise<PacingBench> {
  const seconds = opts.seconds ?? Number(Deno.env.get("TETHER_BENCH_PACING_SECONDS") ?? 180);
  const only = Deno.env.get("TETHER_BENCH_PACING_PROVIDERS")?.split(",") as ProviderName[];
  const providers = opts.providers ?? only ?? PROVIDERS;
  return await withBenchWorld<PacingBench>(async (world) => {
    const { sandbox } = world;
    const shopifyPlan = "standard";
    await sandbox.call("POST", "/config", { shopify_plan: shopifyPlan });
    // An invocation ends within about a third of the run (the next call is not made past its end),
    // and within the most a worker about to be retired leaves it (TIME_BUDGET_MS.max).
    const budgetMs = Math.round(
      Math.min(TIME_BUDGET_MS.max, Math.max(5_000, (seconds * 1000) / 3)),
    );
    const served = await world.serve(["sync-orders", "sync-customers", "proxy"], {
      env: { TETHER_TIME_BUDGET_MS: String(budgetMs) },
    });
    const call = callers(served.functionsUrl, served.secretKey);

    log(`seeding and connecting ${providers.length} providers and a shared shop…`);
    const single = await Promise.all(providers.map(async (provider) => {
      const orders = Math.ceil(RECORDS_PER_S[provider] * seconds * 1.3) + 50;
      return await connected(world, provider, { orders, customers: 0 });
    }));
    const perStream = Math.ceil(RECORDS_PER_S.shopify * seconds * 0.8) + 50;
    const shared = await connected(world, "shopify", { orders: perStream, customers: perStream });

    log(`syncing for ${seconds} s at each provider's limit…`);
    const started = performance.now();
    const until = started + seconds * 1000;
    const results = await Promise.all([
      ...single.map((c) =>
        measured(world, c, [() => syncUntil(call, "orders", c.connection_id, until)])
      ),
      measured(world, shared, [
        () => syncUntil(call, "orders", shared.connection_id, until),
        () => syncUntil(call, "customers", shared.connection_id, until),
        () => proxyUntil(call, shared.connection_id, until),
      ]),
    ]);
    const pacing = Object.fromEntries([
      ...providers.map((p, i) => [p, results[i]!]),
      ["shared_connection", results[providers.length]!],
    ]) as PacingBench["pacing"];
    for (const [name, f] of Object.entries(pacing)) {
      log(`${name}: ${f.limit_use_pct} % of ${f.limit}, ${f.throttled} throttled`);
    }
    return { case: "pacing", seconds, shopify_plan: shopifyPlan, pacing };
  });
}

interface Connected {
  provider: ProviderName;
  external_id: string;
  connection_id: string;
}

async function connected(
  { sandbox, connect }: BenchWorld,
  provider: ProviderName,
  seed: { orders: number; customers: number },
): Promise<Connected> {
  const account = await sandbox.account(provider);
  await sandbox.call(
    "POST",
    `/data/${provider}/${encodeURIComponent(account.external_id)}/seed`,
    { seed: 7, ...seed, spread_days: 365 },
  );
  const { connection_id } = await connect({
    provider,
    external_id: account.external_id,
    name: `pacing ${provider}`,
    credentials: account.credentials,
    config: sandbox.configFor(account),
  });
  return { provider, external_id: account.external_id, connection_id };
}

/**
 * Runs `loads` together while sampling the account's usage; the sustained rate over the last two
 * thirds of the time they ran, against the limit's.
 */
async function measured(
  { sandbox, db }: BenchWorld,
  c: Connected,
  loads: (() => Promise<void>)[],
): Promise<PacingFigures> {
  const usage = () =>
    sandbox.call<Usage & { level: number }>(
      "GET",
      `/usage/${c.provider}/${encodeURIComponent(c.external_id)}`,
    );
  const samples: { at: number; usage: Usage & { level: number } }[] = [];
  const sample = async () => samples.push({ at: performance.now(), usage: await usage() });
  let running = true;
  const sampler = (async () => {
    while (running) {
      await sample();
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  const started = performance.now();
  try {
    await Promise.all(loads.map((load) => load()));
  } finally {
    running = false;
    await sampler;
  }
  await sample();
  const ended = samples.at(-1)!;
  const { limits } = await sandbox.call<{
    limits: Record<string, { kind: string; capacity: number; restore_per_second: number }>;
  }>("GET", "/config");
  const limit = limits[c.provider]!;
  const from = samples.find((s) => s.usage.requests > 0) ?? samples[0]!;
  const seconds = (ended.at - from.at) / 1000;
  const drawn = limit.kind === "bucket" ? from.usage.level - ended.usage.level : 0;
  const used = ended.usage.units - from.usage.units - drawn;
  const unitsPerS = seconds > 0 ? used / seconds : 0;
  const [{ records }] = await db.sql<[{ records: number }]>`
    select (select count(*) from tether.orders where connection_id = ${c.connection_id})::int +
           (select count(*) from tether.customers where connection_id = ${c.connection_id})::int
           as records`;
  return {
    limit: `${limit.kind} ${round(limit.capacity, 2)} @ ${round(limit.restore_per_second, 3)}/s`,
    limit_use_pct: round((unitsPerS / limit.restore_per_second) * 100, 1),
    throttled: ended.usage.throttled,
    requests: ended.usage.requests,
    units_per_s: round(unitsPerS, 2),
    limit_per_s: round(limit.restore_per_second, 3),
    records,
    seconds: round((ended.at - started) / 1000, 1),
    measured_s: round(seconds, 1),
  };
}

function callers(functionsUrl: string, secretKey: string) {
  return (path: string, init: RequestInit = {}) =>
    fetch(`${functionsUrl}/${path}`, {
      ...init,
      headers: { apikey: secretKey, "content-type": "application/json", ...init.headers },
    });
}
type Call = ReturnType<typeof callers>;

/** Calls the stream's sync function again and again until `until` or it has caught up. */
async function syncUntil(
  call: Call,
  stream: "orders" | "customers",
  connectionId: string,
  until: number,
): Promise<void> {
  while (performance.now() < until) {
    const res = await call(`sync-${stream}`, {
      method: "POST",
      body: JSON.stringify({ connection_id: connectionId, force: true }),
    });
    const body = await res.json() as SyncResult;
    // An invocation whose budget passed before it claimed the stream has no run: call again.
    if (res.ok && body.runs.length === 0) continue;
    const run = res.ok ? body.runs[0] : undefined;
    if (!run || run.status !== "succeeded") {
      throw new Error(`sync-${stream} failed: ${JSON.stringify(body)}`);
    }
    if (run.caught_up) return;
  }
}

/** The user's own calls through the proxy function, one after another, until `until`. */
async function proxyUntil(call: Call, connectionId: string, until: number): Promise<void> {
  while (performance.now() < until) {
    const res = await call(`proxy/${connectionId}/admin/api/graphql.json`, {
      method: "POST",
      body: JSON.stringify({ query: PROXIED_QUERY }),
    });
    const body = await res.text();
    if (!res.ok) throw new Error(`proxy answered ${res.status}: ${body.slice(0, 200)}`);
    await new Promise((resolve) => setTimeout(resolve, PROXY_GAP_MS));
  }
}
