// bench refresh (see main.ts): 2,000 due connections refreshed by concurrent invocations of the
// served refresh-tokens function.
import type { connect } from "../../functions-shared/db/client.ts";
import { writeCredentials } from "../../functions-shared/db/credentials.ts";
import type { RefreshTokensResult } from "../../functions-shared/jobs/refresh_tokens.ts";
import { testDeps } from "../local/harness.ts";
import { chunk, inParallel } from "./measure.ts";
import { type CaseResult, round } from "./report.ts";
import { type GatewayFigures, withBenchWorld } from "./world.ts";

export interface RefreshBench extends CaseResult, GatewayFigures {
  case: "refresh";
  connections: number;
  wall_s: number;
  refreshes_per_s: number;
  /** What the concurrency allows: invocations × refreshes each runs at once ÷ provider latency. */
  bound_per_s: number;
  /** refreshes_per_s as a share of bound_per_s, in % (target: at least 85). */
  bound_pct: number;
  provider_calls_per_connection: number;
  /**
   * The refresh-tokens worker's CPU time (/proc) per refresh: every invocation runs in that one
   * worker, one thread, so 1,000 ÷ this is the most refreshes a second it can do.
   */
  worker_cpu_ms_per_refresh: number;
}

const REFRESH = {
  connections: 2_000,
  latencyMs: 100,
  /** Function invocations running at once. */
  invocations: 4,
  /** Connections one invocation refreshes at once (runRefreshTokens' default concurrency). */
  perInvocation: 10,
  providers: ["shiphero", "shopify", "lightspeed", "quickbooks"] as const,
};

export async function benchRefresh(log: (line: string) => void): Promise<RefreshBench> {
  return await withBenchWorld<RefreshBench>(async ({ db, sandbox, serve }) => {
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
    const served = await serve(["refresh-tokens"]);

    log(
      `refreshing: ${REFRESH.invocations} invocations of refresh-tokens at a time, ` +
        `${REFRESH.latencyMs} ms per provider call…`,
    );
    const totals = { refreshed: 0, failed: 0, reauth_required: 0, skipped: 0 };
    await served.resetStats();
    const started = performance.now();
    let calls = 0;
    // As when pg_cron and a person in the SQL editor both call refresh_tokens(): invocations run
    // at once, in one worker (the platform may give each its own isolate); each lane calls again
    // as soon as its invocation ends (one ends when its CPU budget is spent), until one finds
    // nothing due.
    const lane = async () => {
      while (true) {
        if (++calls > 50) throw new Error("connections are still due after 50 invocations");
        const res = await fetch(`${served.functionsUrl}/refresh-tokens`, {
          method: "POST",
          headers: { apikey: served.secretKey, "content-type": "application/json" },
          body: "{}",
        });
        const body = await res.json();
        if (!res.ok) {
          throw new Error(`refresh-tokens answered ${res.status}: ${JSON.stringify(body)}`);
        }
        const r = body as RefreshTokensResult;
        totals.refreshed += r.refreshed;
        totals.failed += r.failed;
        totals.reauth_required += r.reauth_required;
        totals.skipped += r.skipped;
        if (r.refreshed + r.failed + r.reauth_required + r.skipped === 0) return;
      }
    };
    await Promise.all(Array.from({ length: REFRESH.invocations }, lane));
    const wallS = (performance.now() - started) / 1000;
    const workerCpuMs = (await served.stats())["refresh-tokens"]!.cpu_ms;
    const bound = (REFRESH.invocations * REFRESH.perInvocation) / (REFRESH.latencyMs / 1000);

    const stats = await sandbox.stats();
    const [state] = await db.sql<{ active: number; total: number }[]>`
      select count(*) filter (where status = 'active')::int as active, count(*)::int as total
        from tether.connections`;
    const problems: string[] = [];
    if (totals.refreshed !== REFRESH.connections) {
      problems.push(`refreshed ${totals.refreshed} of ${REFRESH.connections}`);
    }
    if (await neverRefreshed(db.sql) > 0) problems.push("connections are still due");
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
      bound_per_s: round(bound, 1),
      bound_pct: round((totals.refreshed / wallS / bound) * 100, 1),
      provider_calls_per_connection: round(stats.refresh_calls / REFRESH.connections, 2),
      worker_cpu_ms_per_refresh: round(workerCpuMs / totals.refreshed, 2),
    };
  });
}

async function neverRefreshed(sql: ReturnType<typeof connect>): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from tether.connections where last_token_refresh_at is null`;
  return row!.n;
}
