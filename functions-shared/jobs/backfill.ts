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
import { type Clock, Deadline, type Deps, type Job } from "../deps.ts";
import { JobError, type JobErrorCode, pgErrorCode } from "../errors.ts";
import { ProviderError, type ProviderName, type StreamName, STREAMS } from "../providers/types.ts";
import { PageRun, readPages, type StreamSource } from "./pipeline.ts";
import { LEASE_SECONDS } from "./tokens.ts";

const DATE_TIME_FORM = "expected an ISO 8601 date-time with an offset, like 2026-01-29T00:00:00Z";
/**
 * The earliest range_start a backfill accepts: before any provider could hold a record. Equal to
 * tether.backfill_earliest_start() in SQL (tests/reliability_test.ts).
 */
export const EARLIEST_BACKFILL_START = "2000-01-01T00:00:00Z";
const dateTime = z.iso.datetime({ offset: true, error: DATE_TIME_FORM }).refine(
  (value) => Date.parse(value) >= Date.parse(EARLIEST_BACKFILL_START),
  `expected a time on or after ${EARLIEST_BACKFILL_START}: no provider holds records from before then`,
);

const ById = z.strictObject({ backfill_id: z.uuid() });
export const ByRange = z.strictObject({
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
export const BACKFILL_REFUSALS: Record<string, JobErrorCode> = {
  P0002: "unknown_connection",
  "22023": "invalid_backfill",
  "23P01": "backfill_overlaps",
};

/** The provider would not serve the range (the adapter's `backfillRefusal`): fail at once. */
class Refused extends ProviderError {}

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
  const deadline = new Deadline(deps.clock, deps.env.timeBudgetMs, deps.env.cpuBudgetMs);
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

/**
 * The windows of one backfill, one after another from where it stopped: each as long as
 * nextWindowSeconds says after the one before, or the whole range when the provider's reader gains
 * nothing from date windows (its facts say why).
 */
class Windows {
  seconds: number;
  readonly #wholeRange: boolean;
  #startedMs = 0;
  #throttlesBefore = 0;

  constructor(
    private readonly job: BackfillRow,
    private readonly source: StreamSource,
    private readonly clock: Clock,
  ) {
    this.seconds = job.window_seconds ?? WINDOW.startSeconds;
    this.#wholeRange = source.facts.backfillReadsWholeRange;
  }

  /** The window the job stopped in, or the first one after what it has covered. */
  first(): BackfillCheckpoint {
    const { window_start, window_end, cursor } = this.job.checkpoint;
    if (window_start && window_end) return { window_start, window_end, cursor: cursor ?? null };
    return this.from(this.job.covered_until ?? this.job.range_start);
  }

  /** Starts timing a window. */
  begin(): void {
    this.#startedMs = this.clock.monotonicMs();
    this.#throttlesBefore = this.source.throttles;
  }

  /** `done` was read to its end: the window after it, sized by how this one went; null at the end. */
  after(done: BackfillCheckpoint): BackfillCheckpoint | null {
    this.seconds = nextWindowSeconds({
      current: this.seconds,
      elapsedMs: this.clock.monotonicMs() - this.#startedMs,
      throttled: this.source.throttles > this.#throttlesBefore,
    });
    const end = new Date(done.window_end);
    return end.getTime() >= this.job.range_end.getTime() ? null : this.from(end);
  }

  from(start: Date): BackfillCheckpoint {
    const rangeEnd = this.job.range_end.getTime();
    const end = this.#wholeRange
      ? rangeEnd
      : Math.min(start.getTime() + this.seconds * 1000, rangeEnd);
    return {
      window_start: start.toISOString(),
      window_end: new Date(end).toISOString(),
      cursor: null,
    };
  }
}

async function work(
  deps: Deps,
  job: BackfillRow,
  owner: string,
  deadline: Deadline,
  opts: BackfillOptions,
): Promise<BackfillResult> {
  const stream = job.stream as StreamName;
  const run = await PageRun.start(deps, {
    kind: "backfill",
    connectionId: job.connection_id,
    stream,
    backfillId: job.id,
  });
  let windowsDone = 0;
  let coveredUntil = job.covered_until;
  const result = (
    status: BackfillRow["status"],
    extra: Partial<BackfillResult> = {},
  ): BackfillResult => {
    const { run_id, pages, added, updated, unchanged } = run.summary;
    return {
      backfill_id: job.id,
      status,
      claimed: true,
      continued: false,
      run_id,
      pages,
      windows: windowsDone,
      added,
      updated,
      unchanged,
      percent: status === "succeeded" ? 100 : percentOf(job, coveredUntil),
      ...extra,
    };
  };

  try {
    const source = await run.open(deadline, { pageSize: opts.pageSize });
    // A range the provider would answer as empty without saying so is refused, never "done".
    const refusal = await source.backfillRefusal(job.range_start);
    if (refusal !== undefined) {
      throw new Refused(run.provider as ProviderName, "misconfigured", refusal);
    }
    const windows = new Windows(job, source, deps.clock);
    let window: BackfillCheckpoint | null = windows.first();
    while (true) {
      windows.begin();
      // What follows this window once it is read to its end (null: the range is covered).
      let following = undefined as BackfillCheckpoint | null | undefined;
      await readPages(window, {
        read: (at) =>
          source.read({
            cursor: at.cursor,
            from: new Date(at.window_start),
            until: new Date(at.window_end),
          }),
        next: (page, at) =>
          page.hasMore && !deadline.passed ? { ...at, cursor: page.cursor } : undefined,
        write: async (page, at) => {
          const last = !page.hasMore;
          if (last) following = windows.after(at);
          await run.write(page, async (tx) => {
            let held = await checkpointPage(tx, {
              id: job.id,
              owner,
              stream,
              externalIds: [...new Set(page.records.map((r) => r.external_id))],
              checkpoint: { ...at, cursor: page.cursor },
              now: deps.now(),
              leaseSeconds: LEASE_SECONDS,
            });
            if (held === "held" && last) {
              held = await finishWindow(tx, {
                id: job.id,
                owner,
                coveredUntil: new Date(at.window_end),
                next: following ?? null,
                windowSeconds: windows.seconds,
              });
            }
            // Cancelled, or taken over: this page is rolled back; what was stored stays.
            if (held !== "held") throw new Stop(held);
          });
          if (last) {
            windowsDone++;
            coveredUntil = new Date(at.window_end);
          }
        },
      });
      // Out of time within this window: it is continued from its checkpoint.
      if (following === undefined) break;
      window = following;
      if (window === null || deadline.passed) break;
    }
    if (window === null) {
      await succeedBackfill(deps.db, { id: job.id, owner, now: deps.now() });
      await run.succeed({ windows: windowsDone, outcome: "done" });
      deps.log.info("backfill done", {
        backfill_id: job.id,
        pages: run.pages,
        windows: windowsDone,
      });
      return result("succeeded");
    }
    const paused = await pauseAndContinue(deps.db, { id: job.id, owner });
    await run.succeed({
      windows: windowsDone,
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
  } catch (err) {
    if (err instanceof Stop) {
      await run.succeed({ windows: windowsDone, outcome: err.why });
      const row = await getBackfill(deps.db, job.id);
      return result(row?.status ?? "cancelled", { error: err.message });
    }
    const failure = await run.fail(
      err,
      "backfill invocation failed",
      (f) =>
        failBackfill(deps.db, {
          id: job.id,
          owner,
          now: deps.now(),
          error: f.message,
          retryAfterMs: f.retryAfterMs,
          final: err instanceof Refused,
        }),
      { windows: windowsDone },
    );
    const row = await getBackfill(deps.db, job.id).catch(() => undefined);
    return result(row?.status ?? "running", { error: failure.message });
  }
}

export const backfill: Job<BackfillInput, BackfillResult> = {
  name: "backfill",
  input: BackfillInput,
  run: (deps, input) => runBackfill(deps, input),
};
