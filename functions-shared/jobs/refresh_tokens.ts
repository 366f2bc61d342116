// The refresh-tokens job: claims due connections (SKIP LOCKED + lease) and
// refreshes them with bounded concurrency until its time budget is spent.
import { z } from "zod";
import { claimDueForRefresh, releaseLease } from "../db/connections.ts";
import { Deadline, type Deps, type Job } from "../deps.ts";
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
  const startedMs = deps.clock.monotonicMs();
  const deadline = new Deadline(deps.clock, deps.env.timeBudgetMs, deps.env.cpuBudgetMs);
  const owner = `refresh-tokens:${crypto.randomUUID()}`;
  const result: RefreshTokensResult = {
    refreshed: 0,
    failed: 0,
    reauth_required: 0,
    skipped: 0,
    duration_ms: 0,
  };
  // Each connection at most once per invocation: one whose lifetime is shorter
  // than its margin waits for the next invocation instead of looping here.
  const seen = new Set<string>();
  const worker = async () => {
    while (!deadline.passed) {
      const [row] = await claimDueForRefresh(deps.db, {
        owner,
        now: deps.now(),
        leaseSeconds: LEASE_SECONDS,
        limit: 1,
        policies: refreshPolicies,
        provider: input.provider,
        connectionId: input.connection_id,
        force: input.force,
        exclude: [...seen],
      });
      if (!row) return;
      if (seen.has(row.id)) {
        // This claim was sent with an older `exclude`, and a worker of this invocation has
        // handled the row (and released it) since: give it back rather than refresh it twice.
        await releaseLease(deps.db, row.id, owner);
        continue;
      }
      seen.add(row.id);
      result[await refreshClaimed(deps, row, owner)]++;
      // Where the runtime cannot measure CPU (the Edge Runtime), each refresh counts an estimate.
      deadline.charge(deps.env.cpuMsPerRefresh);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  result.duration_ms = Math.round(deps.clock.monotonicMs() - startedMs);
  deps.log.info("refresh-tokens done", result);
  return result;
}

export const refreshTokens: Job<RefreshTokensInput, RefreshTokensResult> = {
  name: "refresh-tokens",
  input: RefreshTokensInput,
  run: (deps, input) => runRefreshTokens(deps, input),
};
