// npm run bench [-- <case>…]: benchmarks against the local stack, each in its own database.
// Prints a table and writes bench/results.json (an array, one object per case; a run of some
// cases keeps the others' last results).
//
// refresh: 2,000 due connections across the four providers with a token endpoint, served by an
// in-process provider sandbox that answers every call after 100 ms. Several refresh-tokens
// invocations run at once, as when pg_cron and a person in the SQL editor both call
// refresh_tokens(), each with its own connection pool like a separate function instance, until
// nothing is due. The sandbox counts the token-endpoint calls: exactly one per connection.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startSandbox } from "../sandbox/server.ts";
import { connect } from "../functions-shared/db/client.ts";
import { writeCredentials } from "../functions-shared/db/credentials.ts";
import {
  RefreshTokensInput,
  type RefreshTokensResult,
  runRefreshTokens,
} from "../functions-shared/jobs/refresh_tokens.ts";
import { createTestDatabase, testDeps } from "../tests/helpers/stack.ts";
import { SandboxControl } from "../tests/helpers/sandbox.ts";
import { withStack } from "./local/stack.ts";

const ROOT = join(import.meta.dirname ?? ".", "..");
const RESULTS = join(ROOT, "bench", "results.json");

interface CaseResult {
  case: string;
  [figure: string]: unknown;
}

interface RefreshBench extends CaseResult {
  case: "refresh";
  connections: number;
  wall_s: number;
  refreshes_per_s: number;
  provider_calls_per_connection: number;
}

const REFRESH = {
  connections: 2_000,
  latencyMs: 100,
  /** Function invocations running at once. */
  invocations: 4,
  /** Workers per invocation (the job's default). */
  concurrency: 10,
  providers: ["shiphero", "shopify", "lightspeed", "quickbooks"] as const,
};

/** Runs `fn` over `items`, `width` at a time. */
async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: width }, lane));
}

async function benchRefresh(log: (line: string) => void): Promise<RefreshBench> {
  const db = await createTestDatabase();
  const server = await startSandbox({ port: 0 });
  const sandbox = new SandboxControl(server.url);
  const pools: ReturnType<typeof connect>[] = [];
  try {
    await sandbox.call("POST", "/latency", { ms: REFRESH.latencyMs });
    const deps = await testDeps(db);

    log(`creating ${REFRESH.connections} sandbox accounts and due connections…`);
    const indexes = Array.from({ length: REFRESH.connections }, (_, i) => i);
    const dueAt = new Date(Date.now() - 60_000);
    await inParallel(chunk(indexes, 100), 4, async (part) => {
      const rows: { provider: string; external_id: string; name: string; config: object }[] = [];
      const credentials: Record<string, string>[] = [];
      for (const i of part) {
        const provider = REFRESH.providers[i % REFRESH.providers.length]!;
        const account = await sandbox.account(
          provider,
          provider === "shopify" ? "expiring" : undefined,
        );
        rows.push({
          provider,
          external_id: account.external_id,
          name: `bench ${provider} ${i}`,
          config: sandbox.configFor(account),
        });
        credentials.push(account.credentials);
      }
      await db.sql.begin(async (tx) => {
        const inserted = await tx<{ id: string; external_id: string; provider: string }[]>`
          insert into tether.connections (provider, external_id, name, config, token_expires_at)
          select r.provider, r.external_id, r.name, r.config, ${dueAt}
            from jsonb_to_recordset(${tx.json(rows as never)})
              as r(provider text, external_id text, name text, config jsonb)
          returning id, external_id, provider`;
        const ids = new Map(inserted.map((r) => [`${r.provider}/${r.external_id}`, r.id]));
        for (const [k, row] of rows.entries()) {
          const id = ids.get(`${row.provider}/${row.external_id}`)!;
          await writeCredentials(tx, deps.vault, id, credentials[k]!);
        }
      });
    });
    await sandbox.call("DELETE", "/stats");

    log(
      `refreshing: ${REFRESH.invocations} invocations × ${REFRESH.concurrency} workers, ` +
        `${REFRESH.latencyMs} ms per provider call…`,
    );
    const input = RefreshTokensInput.parse({});
    const totals = { refreshed: 0, failed: 0, reauth_required: 0, skipped: 0 };
    const started = performance.now();
    let rounds = 0;
    while (await neverRefreshed(db.sql) > 0) {
      if (++rounds > 10) throw new Error("connections are still due after 10 rounds");
      const results: RefreshTokensResult[] = await Promise.all(
        Array.from({ length: REFRESH.invocations }, () => {
          // Each invocation is its own function instance with its own pool (max 5, as deployed).
          const pool = connect(db.url, { name: "tether-refresh-tokens" });
          pools.push(pool);
          return runRefreshTokens({ ...deps, db: pool }, input, {
            concurrency: REFRESH.concurrency,
          });
        }),
      );
      for (const r of results) {
        totals.refreshed += r.refreshed;
        totals.failed += r.failed;
        totals.reauth_required += r.reauth_required;
        totals.skipped += r.skipped;
      }
    }
    const wallS = (performance.now() - started) / 1000;

    const stats = await sandbox.stats();
    const [state] = await db.sql<{ active: number; total: number }[]>`
      select count(*) filter (where status = 'active')::int as active, count(*)::int as total
        from tether.connections`;
    const problems: string[] = [];
    if (totals.refreshed !== REFRESH.connections) {
      problems.push(`refreshed ${totals.refreshed} of ${REFRESH.connections}`);
    }
    if (totals.failed + totals.reauth_required + totals.skipped > 0) {
      problems.push(`outcomes ${JSON.stringify(totals)}`);
    }
    if (state!.active !== state!.total) problems.push(`${state!.active}/${state!.total} active`);
    if (stats.refresh_calls !== REFRESH.connections || stats.unknown_token_refresh_calls !== 0) {
      problems.push(
        `sandbox saw ${stats.refresh_calls} refresh calls (+${stats.unknown_token_refresh_calls} unknown tokens)`,
      );
    }
    if (problems.length > 0) throw new Error(`refresh bench is wrong: ${problems.join("; ")}`);

    return {
      case: "refresh",
      connections: REFRESH.connections,
      wall_s: round(wallS, 2),
      refreshes_per_s: round(totals.refreshed / wallS, 1),
      provider_calls_per_connection: round(stats.refresh_calls / REFRESH.connections, 2),
    };
  } finally {
    await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
    await server.close();
    await db.drop();
  }
}

async function neverRefreshed(sql: ReturnType<typeof connect>): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from tether.connections where last_token_refresh_at is null`;
  return row!.n;
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function printTable(results: CaseResult[]): void {
  const keys = [...new Set(results.flatMap((r) => Object.keys(r)))];
  const cells = [keys, ...results.map((r) => keys.map((k) => formatCell(k, r[k])))];
  const widths = keys.map((_, c) => Math.max(...cells.map((row) => String(row[c]).length)));
  const line = (row: unknown[]) =>
    row.map((v, c) => String(v).padEnd(widths[c]!)).join("  ").trimEnd();
  console.log(line(keys));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of cells.slice(1)) console.log(line(row));
}

/** Counts as they are; times and rates with two decimals (1.00 provider calls per connection). */
function formatCell(key: string, value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "number" && (!Number.isInteger(value) || /_s$|_per_/.test(key))) {
    return value.toFixed(2);
  }
  return String(value);
}

async function writeResults(results: CaseResult[]): Promise<void> {
  let previous: CaseResult[] = [];
  if (existsSync(RESULTS)) {
    try {
      const parsed: unknown = JSON.parse(await readFile(RESULTS, "utf8"));
      if (Array.isArray(parsed)) previous = parsed as CaseResult[];
    } catch {
      previous = [];
    }
  }
  const fresh = new Set(results.map((r) => r.case));
  const merged = [...previous.filter((r) => !fresh.has(r.case)), ...results];
  await mkdir(join(ROOT, "bench"), { recursive: true });
  await writeFile(RESULTS, JSON.stringify(merged, null, 2) + "\n");
}

const CASES: Record<string, (log: (line: string) => void) => Promise<CaseResult>> = {
  refresh: benchRefresh,
};

const wanted = Deno.args.length > 0 ? Deno.args : Object.keys(CASES);
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
    results.push(await CASES[name]!((line) => console.log(`  ${line}`)));
  }
});
console.log();
printTable(results);
await writeResults(results);
console.log(`\nwrote ${RESULTS}`);
