// The backfill function's job: re-read one stream of one connection for the records last updated
// in a date range, across as many invocations as it takes (docs/architecture.md rules 4–6).
//
// A job is a tether.backfills row. An invocation claims it with a lease (SKIP LOCKED), then reads
// the range window by window with the provider's date filters, page by page from the checkpoint.
// Every page is upserted through the sync's newer-wins path together with the checkpoint and the
// list of what the backfill touched, in one transaction, so a worker killed anywhere resumes from
// its last page with no gap and no duplicate, and a sync or webhook writing the same records at
// the same time cannot be overwritten by an older version. Windows adapt: a slow or throttled
// window halves the next, a fast one doubles it. When the time budget is spent the invocation
// releases the lease and triggers the next one through pg_net in one transaction; if that is
// lost, continue_backfills() (every minute) picks the job up. A cancel is seen at the next page.
import { z } from "zod";
import {
  type BackfillCheckpoint,
  type BackfillRow,
  checkpointPage,
  claimBackfill,
  createBackfill,
  failBackfill,
  finishWindow,
  getBackfill,
  type HoldState,
  pauseAndContinue,
  succeedBackfill,
} from "../db/backfills.ts";
import { type UpsertCounts, upsertRecords } from "../db/records.ts";
import { failInterruptedRuns, finishRun, insertRun } from "../db/runs.ts";
import { Deadline, type Deps, type Job } from "../deps.ts";
import { CLASH_CODES, JobError, type JobErrorCode, pgErrorCode } from "../errors.ts";
import { type Pacer } from "../providers/pacing.ts";
import { adapterFor } from "../providers/registry.ts";
import {
  ProviderError,
  type StreamName,
  type StreamPage,
  type StreamReader,
  type StreamRecords,
  STREAMS,
} from "../providers/types.ts";
import { describeInternal, pacerFor, recordFailure, withRetries } from "./paging.ts";
import {
  adapterContext,
  connectionRef,
  ConnectionUnavailable,
  getAccessToken,
  LEASE_SECONDS,
} from "./tokens.ts";

const DATE_TIME_FORM = "expected an ISO 8601 date-time with an offset, like 2026-01-29T00:00:00Z";
const dateTime = z.iso.datetime({ offset: true, error: DATE_TIME_FORM });

const ById = z.strictObject({ backfill_id: z.uuid() });
const ByRange = z.strictObject({
  connection_id: z.uuid(),
  stream: z.enum(STREAMS),
  range_start: dateTime,
  range_end: dateTime,
});

/**
 * `{backfill_id}` continues a job; `{connection_id, stream, range_start, range_end}` creates one
 * (validated by the same SQL as start_backfill()) and works on it. The body's shape picks the
 * schema, so a bad field is named rather than reported as "matches neither".
 */
export const BackfillInput = z.unknown().transform((value, ctx) => {
  const schema = typeof value === "object" && value !== null && "backfill_id" in value
    ? ById
    : ByRange;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data as z.infer<typeof ById> | z.infer<typeof ByRange>;
  for (const issue of parsed.error.issues) {
    ctx.addIssue({ code: "custom", message: issue.message, path: issue.path, input: value });
  }
  return z.NEVER;
});
export type BackfillInput = z.output<typeof BackfillInput>;

export interface BackfillResult {
  backfill_id: string;
  /** The job's status after this invocation. */
  status: BackfillRow["status"];
  /** false: another invocation holds the job, or it had already ended; nothing was done. */
  claimed: boolean;
  /** The time budget was spent: the next invocation was triggered through pg_net. */
  continued: boolean;
  run_id?: string;
  pages: number;
  windows: number;
  added: number;
  updated: number;
  unchanged: number;
  percent: number;
  error?: string;
}

export interface BackfillOptions {
  /** Records per page asked of the provider (each adapter clamps it). */
  pageSize?: number;
}

/** Window sizes: the first, and the bounds of halving and doubling. */
export const WINDOW = {
  startSeconds: 86_400,
  minSeconds: 3_600,
  maxSeconds: 30 * 86_400,
  /** A window that takes longer than this (or is throttled) halves the next one. */
  slowMs: 20_000,
  /** A window done faster than this doubles the next one. */
  fastMs: 5_000,
};

/**
 * The next window's size after one is done: halved when it was throttled or slower than
 * WINDOW.slowMs, doubled when faster than WINDOW.fastMs, within WINDOW.minSeconds–maxSeconds.
 */
export function nextWindowSeconds(
  w: { current: number; elapsedMs: number; throttled: boolean },
): number {
  if (w.throttled || w.elapsedMs > WINDOW.slowMs) {
    return Math.max(WINDOW.minSeconds, Math.floor(w.current / 2));
  }
  if (w.elapsedMs < WINDOW.fastMs) return Math.min(WINDOW.maxSeconds, w.current * 2);
  return w.current;
}

/** What create_backfill()'s refusals (by SQLSTATE) mean to the caller. */
const BACKFILL_REFUSALS: Record<string, JobErrorCode> = {
  P0002: "unknown_connection",
  "22023": "invalid_backfill",
  "23P01": "backfill_overlaps",
};

type Page = StreamPage<StreamRecords[StreamName]>;

class Stop extends Error {
  constructor(readonly why: Exclude<HoldState, "held">) {
    super(
      why === "cancelled" ? "cancelled" : "lost the lease on this backfill to another worker",
    );
  }
}

export async function runBackfill(
  deps: Deps,
  input: BackfillInput,
  opts: BackfillOptions = {},
): Promise<BackfillResult> {
  const deadline = new Deadline(deps.clock, deps.env.timeBudgetMs);
  const id = "backfill_id" in input ? input.backfill_id : await create(deps, input);
  const owner = `backfill:${crypto.randomUUID()}`;
  const claimed = await claimBackfill(deps.db, {
    id,
    owner,
    now: deps.now(),
    leaseSeconds: LEASE_SECONDS,
  });
  if (!claimed) {
    const row = await getBackfill(deps.db, id);
    if (!row) throw new JobError("unknown_backfill", `no backfill ${id}`);
    return {
      ...emptyResult(id, row),
      error: row.status === "pending" || row.status === "running"
        ? "another invocation holds this backfill (its lease is live); nothing done"
        : `the backfill has already ended (${row.status}); nothing done`,
    };
  }
  return await work(deps, claimed, owner, deadline, opts);
}

async function create(deps: Deps, input: z.infer<typeof ByRange>): Promise<string> {
  try {
    return await createBackfill(deps.db, input);
  } catch (err) {
    const e = err as { message?: string; hint?: string };
    const message = `${e.message}${e.hint ? ` (${e.hint})` : ""}`;
    const code = BACKFILL_REFUSALS[pgErrorCode(err) ?? ""];
    if (code) throw new JobError(code, message);
    throw err;
  }
}

function emptyResult(id: string, row: BackfillRow): BackfillResult {
  return {
    backfill_id: id,
    status: row.status,
    claimed: false,
    continued: false,
    pages: 0,
    windows: 0,
    added: 0,
    updated: 0,
    unchanged: 0,
    percent: percentOf(row, row.covered_until),
  };
}

function percentOf(row: BackfillRow, coveredUntil: Date | null): number {
  const span = row.range_end.getTime() - row.range_start.getTime();
  const done = (coveredUntil ?? row.range_start).getTime() - row.range_start.getTime();
  return Math.round((1000 * done) / span) / 10;
}

async function work(
  deps: Deps,
  job: BackfillRow,
  owner: string,
  deadline: Deadline,
  opts: BackfillOptions,
): Promise<BackfillResult> {
  const stream = job.stream as StreamName;
  const started = deps.now();
  await failInterruptedRuns(deps.db, { kind: "backfill", backfillId: job.id }, started);
  const runId = await insertRun(deps.db, {
    connection_id: job.connection_id,
    kind: "backfill",
    stream,
    backfill_id: job.id,
    status: "running",
    started_at: started,
  });
  const counts: UpsertCounts = { added: 0, updated: 0, unchanged: 0 };
  let pages = 0;
  let windows = 0;
  let provider = "unknown";
  let coveredUntil = job.covered_until;
  let pacer: Pacer | undefined;
  const result = (
    status: BackfillRow["status"],
    extra: Partial<BackfillResult> = {},
  ): BackfillResult => ({
    backfill_id: job.id,
    status,
    claimed: true,
    continued: false,
    run_id: runId,
    pages,
    windows,
    ...counts,
    percent: status === "succeeded" ? 100 : percentOf(job, coveredUntil),
    ...extra,
  });
  const finish = async (
    status: "succeeded" | "failed",
    outcome: Record<string, unknown>,
    error: string | null = null,
  ) => {
    await finishRun(deps.db, runId, {
      status,
      finished_at: deps.now(),
      added_count: counts.added,
      updated_count: counts.updated,
      unchanged_count: counts.unchanged,
      error_count: error === null ? 0 : 1,
      pages_count: pages,
      error,
      details: { provider, windows, paced_ms: Math.round(pacer?.waitedMs ?? 0), ...outcome },
    });
  };

  try {
    const { connection, credentials } = await getAccessToken(deps, job.connection_id);
    provider = connection.provider;
    const adapter = adapterFor(provider);
    const read = adapter.streams[stream] as StreamReader<StreamRecords[typeof stream]> | undefined;
    if (!read) throw new JobError("no_such_stream", `${provider} has no ${stream} stream`);
    const paced = pacerFor(connection.id, adapter.facts.rateLimit);
    pacer = paced;
    const ctx = { ...adapterContext(deps), pacer: paced };
    let creds = credentials;
    let refreshed = false;
    let throttled = false;
    const fetchPage = async (window: BackfillCheckpoint): Promise<Page> => {
      const readPage = () =>
        read(ctx, connectionRef(connection), creds, {
          cursor: window.cursor,
          from: new Date(window.window_start),
          until: new Date(window.window_end),
          pageSize: opts.pageSize,
        });
      const onRetry = (err: ProviderError) => {
        if (err.code === "rate_limited") throttled = true;
      };
      try {
        return await withRetries(paced, deadline, readPage, onRetry);
      } catch (err) {
        // An access token revoked or expired early: refresh once and read the page again.
        if (!(err instanceof ProviderError) || err.code !== "unauthorized" || refreshed) throw err;
        refreshed = true;
        creds = (await getAccessToken(deps, job.connection_id, { force: true })).credentials;
        return await withRetries(paced, deadline, readPage, onRetry);
      }
    };

    // Readers that gain nothing from date windows read the whole range as one (the facts say why).
    const oneWindow = adapter.facts.backfillReadsWholeRange;
    let windowSeconds = job.window_seconds ?? WINDOW.startSeconds;
    const windowFrom = (start: Date): BackfillCheckpoint => {
      const end = oneWindow
        ? job.range_end
        : new Date(Math.min(start.getTime() + windowSeconds * 1000, job.range_end.getTime()));
      return { window_start: start.toISOString(), window_end: end.toISOString(), cursor: null };
    };
    let window: BackfillCheckpoint = job.checkpoint.window_start && job.checkpoint.window_end
      ? {
        window_start: job.checkpoint.window_start,
        window_end: job.checkpoint.window_end,
        cursor: job.checkpoint.cursor ?? null,
      }
      : windowFrom(coveredUntil ?? job.range_start);

    while (true) {
      const windowStartedMs = deps.clock.monotonicMs();
      throttled = false;
      let windowDone = false;
      let next: Promise<Page> | undefined = fetchPage(window);
      try {
        while (next) {
          const page: Page = await next;
          const outOfTime = deadline.passed;
          const cursor = page.cursor;
          next = page.hasMore && !outOfTime ? fetchPage({ ...window, cursor }) : undefined;
          const end = new Date(window.window_end);
          const last = !page.hasMore;
          let following: BackfillCheckpoint | null = null;
          if (last) {
            const elapsed = deps.clock.monotonicMs() - windowStartedMs;
            windowSeconds = nextWindowSeconds({
              current: windowSeconds,
              elapsedMs: elapsed,
              throttled,
            });
            following = end.getTime() >= job.range_end.getTime() ? null : windowFrom(end);
          }
          const written = await retryConflicts(deps, () =>
            deps.db.begin(async (tx) => {
              const pageCounts = await upsertRecords(tx, stream, job.connection_id, page.records);
              let held = await checkpointPage(tx, {
                id: job.id,
                owner,
                stream,
                externalIds: [...new Set(page.records.map((r) => r.external_id))],
                checkpoint: { ...window, cursor },
                now: deps.now(),
                leaseSeconds: LEASE_SECONDS,
              });
              if (held === "held" && last) {
                held = await finishWindow(tx, {
                  id: job.id,
                  owner,
                  coveredUntil: end,
                  next: following,
                  windowSeconds,
                });
              }
              // Cancelled, or taken over: this page is rolled back; what was stored stays.
              if (held !== "held") throw new Stop(held);
              return pageCounts;
            }));
          counts.added += written.added;
          counts.updated += written.updated;
          counts.unchanged += written.unchanged;
          pages++;
          window = { ...window, cursor };
          if (last) {
            windowDone = true;
            windows++;
            coveredUntil = end;
            if (following) window = following;
          }
        }
      } finally {
        // A page read ahead of a failed or stopped write is dropped (its failure, if any, with it).
        next?.catch(() => {});
      }
      if (windowDone && coveredUntil!.getTime() >= job.range_end.getTime()) {
        await succeedBackfill(deps.db, { id: job.id, owner, now: deps.now() });
        await finish("succeeded", { outcome: "done" });
        deps.log.info("backfill done", { backfill_id: job.id, pages, windows });
        return result("succeeded");
      }
      if (deadline.passed) {
        const paused = await pauseAndContinue(deps.db, { id: job.id, owner });
        await finish("succeeded", {
          outcome: paused.continued ? "continued" : "paused",
          ...(paused.error ? { continue_error: paused.error } : {}),
        });
        if (!paused.continued) {
          deps.log.warn("backfill paused; continue_backfills() will pick it up", {
            backfill_id: job.id,
            error: paused.error,
          });
        }
        return result("running", { continued: paused.continued, error: paused.error });
      }
    }
  } catch (err) {
    if (err instanceof Stop) {
      await finish("succeeded", { outcome: err.why });
      const row = await getBackfill(deps.db, job.id);
      return result(row?.status ?? "cancelled", { error: err.message });
    }
    const known = err instanceof ProviderError;
    const message = known || err instanceof ConnectionUnavailable || err instanceof JobError
      ? err.message
      : describeInternal(err);
    deps.log[known ? "warn" : "error"]("backfill invocation failed", {
      backfill_id: job.id,
      provider,
      error: message,
    });
    await recordFailure(deps, async () => {
      await failBackfill(deps.db, {
        id: job.id,
        owner,
        now: deps.now(),
        error: message,
        retryAfterMs: known ? err.retryAfterMs : undefined,
      });
      await finish("failed", { code: known ? err.code : "internal" }, message);
    });
    const row = await getBackfill(deps.db, job.id).catch(() => undefined);
    return result(row?.status ?? "running", { error: message });
  }
}

/**
 * A page transaction that lost a deadlock or serialization conflict to a concurrent writer
 * (sync, webhook) is simply tried again: it changed nothing.
 */
async function retryConflicts<T>(deps: Deps, write: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (!CLASH_CODES.has(pgErrorCode(err) ?? "") || attempt >= 3) throw err;
      await deps.clock.sleep(50 * attempt);
    }
  }
}

export const backfill: Job<BackfillInput, BackfillResult> = {
  name: "backfill",
  input: BackfillInput,
  run: (deps, input) => runBackfill(deps, input),
};
