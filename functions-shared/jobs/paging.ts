// What every job that reads pages from a provider shares (the sync and the backfill): a rate
// pacer per connection, retries within a run for transient provider failures, failure records
// that survive a database outage, and messages for failures that are not the provider's.
import type { Deadline, Deps } from "../deps.ts";
import { coerceError, pgErrorCode } from "../errors.ts";
import { type BucketModel, Pacer } from "../providers/pacing.ts";
import { ProviderError } from "../providers/types.ts";

/** Provider failures worth another try within the run; the rest fail the run at once. */
const RETRY_IN_RUN = new Set(["rate_limited", "server_error", "timeout", "network"]);
const MAX_ATTEMPTS_PER_PAGE = 5;

/**
 * One pacer per connection for the life of the function instance, so back-to-back runs share
 * what the previous one spent (QuickBooks says nothing about its budget, and a fresh model would
 * assume a full bucket). Kept small: the oldest is forgotten first.
 */
const pacers = new Map<string, Pacer>();
const MAX_PACERS = 1000;

export function pacerFor(connectionId: string, model: BucketModel): Pacer {
  let pacer = pacers.get(connectionId);
  if (pacer) pacers.delete(connectionId);
  else pacer = new Pacer(model);
  pacers.set(connectionId, pacer);
  if (pacers.size > MAX_PACERS) pacers.delete(pacers.keys().next().value!);
  return pacer;
}

/** A failure that is neither the provider's nor the connection's: the database, or a bug. */
export function describeInternal(err: unknown): string {
  const error = coerceError(err);
  const code = pgErrorCode(error);
  const fromDatabase = error.name === "PostgresError" ||
    (code !== undefined && /^(E[A-Z]+|CONNECT(ION)?_[A-Z_]+)$/.test(code));
  return `${fromDatabase ? "database" : "internal error"}: ${error.message}`;
}

/**
 * Throttles, 5xx, timeouts and network errors get a few more tries within the run, waiting what
 * the provider asked (or 1 s, 2 s, 4 s…); the pacer holds every request of the connection back
 * meanwhile.
 */
export async function withRetries<T>(
  pacer: Pacer,
  deadline: Deadline,
  call: () => Promise<T>,
  onRetry?: (err: ProviderError) => void,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (
        !(err instanceof ProviderError) || !RETRY_IN_RUN.has(err.code) ||
        attempt >= MAX_ATTEMPTS_PER_PAGE
      ) throw err;
      const waitMs = err.retryAfterMs ?? 1000 * 2 ** (attempt - 1);
      if (deadline.exceededBy(waitMs)) throw err;
      onRetry?.(err);
      pacer.backOff(waitMs);
    }
  }
}

/**
 * Records a failure even when the database itself was what failed: a few tries a second apart.
 * If it is still unreachable, the run stays "running" until the next claim of the pair marks it
 * failed (failInterruptedRuns) and resumes from the last checkpoint.
 */
export async function recordFailure(deps: Deps, write: () => Promise<void>): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (attempt >= 5) {
        deps.log.error("could not record the failed run", {
          error: coerceError(err).message,
        });
        return;
      }
      await deps.clock.sleep(1000);
    }
  }
}
