// The incremental sync of one stream (orders or customers) for every due connection: the jobs of
// the sync-orders and sync-customers functions (docs/architecture.md rules 4, 5 and 8).
//
// Each worker claims a due (connection, stream) pair with SKIP LOCKED and a lease, then reads
// pages from the stored cursor up to the run's start. Every page is upserted (newer wins) together
// with its cursor in one statement, so a run that dies anywhere resumes from its last page with
// no gap and no duplicate. Requests are paced by the provider's rate budget; a throttle that
// happens anyway waits as asked and retries. When the time budget is spent the run stops taking
// pages; the next call continues from the checkpoint.
//
// Fan-out: when more streams are due than one invocation takes, sync_orders() / sync_customers()
// send one pg_net request asking for several invocations (`invocations`, counted in SQL:
// tether.invoke_sync). The invocation that receives it starts the others itself through
// deps.functions (the function's own URL, asynchronously: functions-shared/invoke.ts), each with
// the same input and one invocation, so a sibling never fans out again; it confirms each answered
// 202 and then does its own share. Every invocation claims its streams with SKIP LOCKED, so how
// the due streams fall between them does not matter, and a sibling that did not start leaves its
// share due for the next tick.
import { z } from "zod";
import { getConnection } from "../db/connections.ts";
import { upsertSyncPage } from "../db/records.ts";
import {
  claimDueStream,
  type ClaimedStream,
  ensureStreams,
  failStream,
  finishStream,
  leasedStreams,
  releaseStream,
  type SkippedStream,
  unsyncableConnections,
} from "../db/sync_cursors.ts";
import { Deadline, type Deps, type Job } from "../deps.ts";
import { coerceError, JobError } from "../errors.ts";
import { adapterFor } from "../providers/registry.ts";
import { type ProviderName, PROVIDERS, type StreamName } from "../providers/types.ts";
import { PageRun, readPages } from "./pipeline.ts";
import { LEASE_SECONDS } from "./tokens.ts";

/**
 * The most invocations one call may stand for: tether.sync_invocations_per_call() (8) with room to
 * raise it (tests/scale_test.ts holds it within this). It bounds what a caller holding the invoke
 * key, readable in pg_net's queue, can start with one request.
 */
export const SYNC_INVOCATIONS_MAX = 32;

export const SyncInput = z.strictObject({
  provider: z.enum(PROVIDERS).optional(),
  connection_id: z.uuid().optional(),
  /** Sync now even if synced within the connection's interval or backing off after a failure. */
  force: z.boolean().default(false),
  /**
   * Invocations this call stands for: this one and `invocations - 1` siblings it starts (what
   * tether.invoke_sync asks when many streams are due). Default 1; at most SYNC_INVOCATIONS_MAX.
   */
  invocations: z.int().min(1).max(SYNC_INVOCATIONS_MAX).optional(),
});
export type SyncInput = z.infer<typeof SyncInput>;

export interface StreamRunResult {
  connection_id: string;
  provider: string;
  stream: StreamName;
  run_id: string;
  status: "succeeded" | "failed";
  /** Read every change up to the run's start; false = stopped for the time budget, resumes next call. */
  caught_up: boolean;
  pages: number;
  added: number;
  updated: number;
  unchanged: number;
  error?: string;
}

/** What a call that stood for several invocations did to start the others. */
export interface SiblingStarts {
  /** Siblings asked for: `invocations - 1`. */
  asked: number;
  /** Their invocation ids (each answered 202). */
  started: string[];
  /** Why each of the others did not start; their share stays due for the next tick. */
  failed: string[];
}

export interface SyncResult {
  stream: StreamName;
  /** Only on a call with `invocations` above 1: the siblings it started before its own share. */
  siblings?: SiblingStarts;
  runs: StreamRunResult[];
  /** Connections that were not synced, and why (reauth_required, disabled, failing refresh). */
  skipped: SkippedStream[];
  duration_ms: number;
}

export interface SyncOptions {
  /** Pairs synced at once by one invocation. Default 4. */
  concurrency?: number;
  /** Records per page asked of the provider (each adapter clamps it). */
  pageSize?: number;
}

/** Providers whose adapter reads this stream. */
export function providersWith(stream: StreamName): ProviderName[] {
  return PROVIDERS.filter((p) => adapterFor(p).streams[stream] !== undefined);
}

export async function runSync(
  deps: Deps,
  stream: StreamName,
  input: SyncInput,
  opts: SyncOptions = {},
): Promise<SyncResult> {
  const startedMs = deps.clock.monotonicMs();
  const deadline = new Deadline(deps.clock, deps.env.timeBudgetMs, deps.env.cpuBudgetMs);
  const providers = providersWith(stream);
  await checkTarget(deps, stream, input, providers);
  const owner = `sync-${stream}:${crypto.randomUUID()}`;
  await ensureStreams(deps.db, { stream, providers });
  const asked = (input.invocations ?? 1) - 1;
  const siblings = asked > 0 ? await startSiblings(deps, stream, input, asked) : undefined;
  const result: SyncResult = {
    stream,
    ...(siblings && { siblings }),
    runs: [],
    skipped: await unsyncableConnections(deps.db, {
      providers,
      provider: input.provider,
      connectionId: input.connection_id,
    }),
    duration_ms: 0,
  };
  const taken: string[] = [];
  const worker = async () => {
    while (!deadline.passed) {
      const claimed = await claimDueStream(deps.db, {
        stream,
        owner,
        now: deps.now(),
        leaseSeconds: LEASE_SECONDS,
        providers,
        provider: input.provider,
        connectionId: input.connection_id,
        force: input.force,
        exclude: taken,
      });
      if (!claimed) return;
      if (taken.includes(claimed.connection_id)) {
        // This claim was sent with an older `exclude`, and another worker of this invocation has
        // synced the pair (and released it) since: give it back rather than sync it twice.
        await releaseStream(deps.db, { connectionId: claimed.connection_id, stream, owner });
        continue;
      }
      taken.push(claimed.connection_id);
      result.runs.push(await syncClaimed(deps, stream, claimed, owner, { deadline, ...opts }));
      // Where the runtime cannot measure CPU (the Edge Runtime), each stream's run counts an
      // estimate besides its records: many small streams spend the budget too.
      deadline.charge(deps.env.cpuMsPerSyncRun);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));
  // Held by another worker (in progress, or dead until its lease lapses): say so, not nothing.
  result.skipped.push(
    ...(await leasedStreams(deps.db, {
      stream,
      providers,
      provider: input.provider,
      connectionId: input.connection_id,
      owner,
      now: deps.now(),
    })).filter((s) => !taken.includes(s.connection_id)),
  );
  result.duration_ms = Math.round(deps.clock.monotonicMs() - startedMs);
  deps.log.info(`sync-${stream} done`, {
    runs: result.runs.length,
    failed: result.runs.filter((r) => r.status === "failed").length,
    skipped: result.skipped.length,
    duration_ms: result.duration_ms,
  });
  return result;
}

/**
 * Starts `count` invocations of this sync function with the same input and one invocation each,
 * all at once, and waits for each to answer 202 (or fail to). A failed start is logged and
 * reported, never thrown: the streams it would have taken stay due.
 */
async function startSiblings(
  deps: Deps,
  stream: StreamName,
  input: SyncInput,
  count: number,
): Promise<SiblingStarts> {
  const { invocations: _, ...body } = input; // one invocation each: a sibling never fans out
  const starts = await Promise.allSettled(
    Array.from({ length: count }, () => deps.functions.start(`sync-${stream}`, body)),
  );
  const siblings: SiblingStarts = { asked: count, started: [], failed: [] };
  for (const start of starts) {
    if (start.status === "fulfilled") siblings.started.push(start.value);
    else siblings.failed.push(coerceError(start.reason).message);
  }
  const figures = { asked: count, started: siblings.started.length };
  if (siblings.failed.length === 0) deps.log.info(`sync-${stream} started its siblings`, figures);
  else {
    deps.log.warn(`sync-${stream}: siblings did not start; their streams stay due`, {
      ...figures,
      failed: siblings.failed.length,
      error: siblings.failed[0],
    });
  }
  return siblings;
}

/** A named connection must exist and have the stream: a clear 404 / 400 otherwise. */
async function checkTarget(
  deps: Deps,
  stream: StreamName,
  input: SyncInput,
  providers: ProviderName[],
): Promise<void> {
  if (input.connection_id === undefined) return;
  const row = await getConnection(deps.db, input.connection_id);
  if (!row) {
    throw new JobError("unknown_connection", `no connection ${input.connection_id}`);
  }
  if (!(providers as string[]).includes(row.provider)) {
    throw new JobError(
      "no_such_stream",
      `${row.provider} has no ${stream} stream; streams with ${stream}: ${providers.join(", ")}`,
    );
  }
}

/** Syncs one claimed pair and records everything; never throws for provider or data failures. */
export async function syncClaimed(
  deps: Deps,
  stream: StreamName,
  claimed: ClaimedStream,
  owner: string,
  opts: SyncOptions & { deadline: Deadline },
): Promise<StreamRunResult> {
  const key = { connectionId: claimed.connection_id, stream, owner };
  const run = await PageRun.start(deps, { kind: "sync", connectionId: key.connectionId, stream });
  const result = (status: StreamRunResult["status"], caughtUp: boolean) => ({
    connection_id: claimed.connection_id,
    stream,
    status,
    caught_up: caughtUp,
    ...run.summary,
  });
  let caughtUp = false;
  try {
    const source = await run.open(opts.deadline, { pageSize: opts.pageSize });
    await readPages(claimed.cursor, {
      read: (cursor) => source.read({ cursor, from: null, until: run.startedAt }),
      next: (page) => page.hasMore && !opts.deadline.passed ? page.cursor : undefined,
      write: async (page) => {
        await run.writeAtomic(page, async () => {
          const written = await upsertSyncPage(deps.db, key, page.records, {
            cursor: page.cursor,
            now: deps.now(),
            leaseSeconds: LEASE_SECONDS,
          });
          // Another worker took the pair over (our lease lapsed): nothing of the page was written.
          if (!written) throw new Error("lost the lease on this stream to another worker");
          return written;
        });
        caughtUp = !page.hasMore;
      },
    });
    await finishStream(deps.db, key, { caughtUpAt: caughtUp ? run.startedAt : null });
    await run.succeed({ caught_up: caughtUp });
    return result("succeeded", caughtUp);
  } catch (err) {
    const failure = await run.fail(
      err,
      `sync of ${stream} failed`,
      (f) =>
        failStream(deps.db, key, {
          now: deps.now(),
          error: f.message,
          retryAfterMs: f.retryAfterMs,
        }),
      { caught_up: false },
    );
    return { ...result("failed", false), error: failure.message };
  }
}

function syncJob(stream: StreamName): Job<SyncInput, SyncResult> {
  return {
    name: `sync-${stream}`,
    input: SyncInput,
    run: (deps, input) => runSync(deps, stream, input),
  };
}

export const syncOrders = syncJob("orders");
export const syncCustomers = syncJob("customers");
