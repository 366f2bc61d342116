// The refresh-tokens job: claims due connections in batches (SKIP LOCKED + lease) and
// refreshes them with bounded concurrency until its time budget is spent.
import { z } from "zod";
import { claimDueForRefresh, type ConnectionRow, releaseLease } from "../db/connections.ts";
import { readSealedCredentials, type SealedCredentials } from "../db/credentials.ts";
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
  // Due connections are claimed a batch at a time, as many as there are workers, in one statement
  // (SKIP LOCKED and a lease, as one at a time), and their credentials read in one more: two
  // round trips per batch instead of two per connection. One claim is in flight at a time, sent
  // with every connection this invocation has claimed in `exclude`: each connection at most once
  // per invocation (one whose lifetime is shorter than its margin waits for the next invocation
  // instead of looping here).
  const seen = new Set<string>();
  const queue: { row: ConnectionRow; sealed: SealedCredentials }[] = [];
  let claiming: Promise<void> | undefined;
  let drained = false;
  const claimBatch = async () => {
    const rows = await claimDueForRefresh(deps.db, {
      owner,
      now: deps.now(),
      leaseSeconds: LEASE_SECONDS,
      limit: concurrency,
      policies: refreshPolicies,
      provider: input.provider,
      connectionId: input.connection_id,
      force: input.force,
      exclude: [...seen],
    });
    if (rows.length === 0) drained = true;
    for (const row of rows) seen.add(row.id);
    const sealed = await readSealedCredentials(deps.db, rows.map((row) => row.id));
    for (const row of rows) queue.push({ row, sealed: sealed.get(row.id)! });
  };
  let lastClaim = Promise.resolve();
  const claim = () => {
    if (!claiming) {
      claiming = lastClaim = claimBatch().finally(() => {
        claiming = undefined;
      });
      // Awaited by the workers, or at the end: they see its error; never unhandled meanwhile.
      claiming.catch(() => {});
    }
    return claiming;
  };
  const next = async () => {
    while (queue.length === 0 && !drained && !deadline.passed) await claim();
    if (deadline.passed) return undefined;
    const claimed = queue.shift();
    // The batch's last row handed out: the next batch is claimed while this one's refreshes wait
    // for the provider, not after.
    if (queue.length === 0 && !drained) claim();
    return claimed;
  };
  const worker = async () => {
    for (let claimed = await next(); claimed; claimed = await next()) {
      result[await refreshClaimed(deps, claimed.row, owner, claimed.sealed)]++;
      // Where the runtime cannot measure CPU (the Edge Runtime), each refresh counts an estimate.
      deadline.charge(deps.env.cpuMsPerRefresh);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await lastClaim;
  // Claimed, but the budget was spent first: free for the next invocation now, not in 2 minutes.
  for (const { row } of queue.splice(0)) await releaseLease(deps.db, row.id, owner);
  result.duration_ms = Math.round(deps.clock.monotonicMs() - startedMs);
  deps.log.info("refresh-tokens done", result);
  return result;
}

export const refreshTokens: Job<RefreshTokensInput, RefreshTokensResult> = {
  name: "refresh-tokens",
  input: RefreshTokensInput,
  run: (deps, input) => runRefreshTokens(deps, input),
};
