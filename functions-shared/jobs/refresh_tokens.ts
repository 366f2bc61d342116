// The refresh-tokens job: claims due connections (SKIP LOCKED + lease) and
// refreshes them with bounded concurrency until its time budget is spent.
import { z } from "zod";
import { claimDueForRefresh } from "../db/connections.ts";
import type { Deps, Job } from "../platform.ts";
import { PROVIDERS } from "../providers/types.ts";
import { LEASE_SECONDS, refreshClaimed, type RefreshOutcome, refreshPolicies } from "./tokens.ts";

export const RefreshTokensInput = z.strictObject({
  provider: z.enum(PROVIDERS).optional(),
  connection_id: z.uuid().optional(),
  force: z.boolean().default(false),
});
export type RefreshTokensInput = z.infer<typeof RefreshTokensInput>;

export type RefreshTokensResult = Record<RefreshOutcome, number> & { duration_ms: number };

export async function runRefreshTokens(
  deps: Deps,
  input: RefreshTokensInput,
  opts: { concurrency?: number } = {},
): Promise<RefreshTokensResult> {
  const concurrency = opts.concurrency ?? 10;
  const startedMs = Date.now();
  const deadline = startedMs + deps.env.timeBudgetMs;
  const owner = `refresh-tokens:${crypto.randomUUID()}`;
  const result: RefreshTokensResult = {
    refreshed: 0,
    failed: 0,
    reauth_required: 0,
    skipped: 0,
    duration_ms: 0,
  };
  const seen = new Set<string>();
  while (Date.now() < deadline) {
    const batch = await claimDueForRefresh(deps.db, {
      owner,
      now: deps.now(),
      leaseSeconds: LEASE_SECONDS,
      limit: concurrency,
      policies: refreshPolicies,
      provider: input.provider,
      connectionId: input.connection_id,
      force: input.force,
    });
    // A connection refreshed in this invocation and due again at once (a lifetime shorter
    // than its margin) waits for the next invocation rather than looping here.
    const fresh = batch.filter((row) => !seen.has(row.id));
    for (const row of batch) seen.add(row.id);
    if (fresh.length === 0) {
      for (const row of batch) {
        await deps.db`update tether.connections set lease_owner = null, lease_expires_at = null
                       where id = ${row.id} and lease_owner = ${owner}`;
      }
      break;
    }
    const outcomes = await Promise.all(fresh.map((row) => refreshClaimed(deps, row, owner)));
    for (const outcome of outcomes) result[outcome]++;
    if (input.force) break; // force covers each matching connection once
  }
  result.duration_ms = Date.now() - startedMs;
  deps.log.info("refresh-tokens done", result);
  return result;
}

export const refreshTokens: Job<RefreshTokensInput, RefreshTokensResult> = {
  name: "refresh-tokens",
  input: RefreshTokensInput,
  run: (deps, input) => runRefreshTokens(deps, input),
};
