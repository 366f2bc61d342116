// The page pipeline that the sync and the backfill both run (docs/architecture.md rules 4, 5, 8).
//
// A run opens the connection's stream: a valid access token (refreshed once more if the provider
// answers 401), the connection's rate pacer, and retries within the run for throttles and
// transient failures. It reads pages one ahead of writing them, writes each page's records with
// its checkpoint atomically (one transaction, or one statement) (tried again when it loses a deadlock to a concurrent sync or
// webhook), counts what was written, and records itself, succeeded or failed, in tether.runs,
// even through a database outage. The jobs supply only what differs: where a read starts and how
// it continues, what a page's transaction checkpoints, and when to stop.
import type { Tx } from "../db/client.ts";
import { type UpsertCounts, upsertRecords } from "../db/records.ts";
import { failInterruptedRuns, finishRun, insertRun } from "../db/runs.ts";
import type { Deadline, Deps } from "../deps.ts";
import { CLASH_CODES, coerceError, describeInternal, JobError, pgErrorCode } from "../errors.ts";
import type { Pacer } from "../providers/pacing.ts";
import { adapterFor } from "../providers/registry.ts";
import { countUnknownStatuses } from "../providers/order_status.ts";
import {
  ProviderError,
  type ProviderFacts,
  type ReadRequest,
  type StreamName,
  type StreamPage,
  type StreamReader,
  type StreamRecords,
} from "../providers/types.ts";
import {
  adapterContext,
  ConnectionAccess,
  connectionRef,
  ConnectionUnavailable,
} from "./tokens.ts";

export type Page = StreamPage<StreamRecords[StreamName]>;

/** Provider failures worth another try within the run; the rest fail the run at once. */
const RETRY_IN_RUN = new Set(["rate_limited", "server_error", "timeout", "network"]);
const MAX_ATTEMPTS_PER_PAGE = 5;

/** What a run is: a sync of one connection's stream, or one invocation of a backfill. */
export type RunSpec =
  | { kind: "sync"; connectionId: string; stream: StreamName }
  | { kind: "backfill"; connectionId: string; stream: StreamName; backfillId: string };

/** An open stream: reads one page at a time (`pageSize`, the token and the retries are handled). */
export interface StreamSource {
  facts: ProviderFacts;
  /** Throttles met and waited out so far. */
  readonly throttles: number;
  read(at: Omit<ReadRequest, "pageSize">): Promise<Page>;
  /** Why the provider would not serve a backfill from `rangeStart` (the adapter's say), if so. */
  backfillRefusal(rangeStart: Date): Promise<string | undefined>;
}

/** Why a run failed, as recorded and returned. */
export interface Failure {
  message: string;
  /** The provider's error code, or "internal". */
  code: string;
  /** The provider failed (logged as a warning); otherwise the connection, the database or a bug. */
  byProvider: boolean;
  /** How long the provider asked us to wait, when it did. */
  retryAfterMs?: number;
}

export function classifyFailure(err: unknown): Failure {
  if (err instanceof ProviderError) {
    return {
      message: err.message,
      code: err.code,
      byProvider: true,
      retryAfterMs: err.retryAfterMs,
    };
  }
  const message = err instanceof ConnectionUnavailable || err instanceof JobError
    ? err.message
    : describeInternal(err);
  return { message, code: "internal", byProvider: false };
}

/** One run of pages: its tether.runs row and what it has written so far. */
export class PageRun {
  readonly counts: UpsertCounts = { added: 0, updated: 0, unchanged: 0 };
  pages = 0;
  provider = "unknown";
  /** Fields the provider withheld from the records written (`StreamPage.withheld`). */
  readonly withheld = new Set<string>();
  /** Order status words the mapping did not know, with how many records carried each. */
  readonly unknownStatuses = new Map<string, number>();
  #pacer: Pacer | undefined;
  #pacedBefore = 0;
  /** The run's deadline, charged with the CPU each written page is estimated to cost. */
  #deadline: Deadline | undefined;

  private constructor(
    private readonly deps: Deps,
    readonly spec: RunSpec,
    readonly id: string,
    readonly startedAt: Date,
  ) {}

  /** Opens the run's row, first failing the runs a worker that died left "running". */
  static async start(deps: Deps, spec: RunSpec): Promise<PageRun> {
    const startedAt = deps.now();
    await failInterruptedRuns(deps.db, spec, startedAt);
    const id = await insertRun(deps.db, {
      connection_id: spec.connectionId,
      kind: spec.kind,
      stream: spec.stream,
      backfill_id: spec.kind === "backfill" ? spec.backfillId : null,
      status: "running",
      started_at: startedAt,
    });
    return new PageRun(deps, spec, id, startedAt);
  }

  /** The connection's stream, read through its pacer with its credentials. */
  async open(deadline: Deadline, opts: { pageSize?: number } = {}): Promise<StreamSource> {
    const { stream } = this.spec;
    const access = await ConnectionAccess.open(this.deps, this.spec.connectionId);
    const connection = access.connection;
    this.provider = connection.provider;
    const adapter = adapterFor(connection.provider);
    const read = adapter.streams[stream] as StreamReader<StreamRecords[typeof stream]> | undefined;
    if (!read) throw new JobError("no_such_stream", `${this.provider} has no ${stream} stream`);
    const pacer = this.deps.pacers.for(
      connection.id,
      adapter.rateLimitFor?.(connection.config) ?? adapter.facts.rateLimit,
    );
    this.#pacer = pacer;
    this.#pacedBefore = pacer.waitedMs;
    this.#deadline = deadline;
    const ctx = { ...adapterContext(this.deps), pacer };
    const ref = connectionRef(connection);
    const source = {
      facts: adapter.facts,
      throttles: 0,
      read: (at: Omit<ReadRequest, "pageSize">) =>
        access.call((credentials) =>
          withRetries(
            pacer,
            deadline,
            () => read(ctx, ref, credentials, { ...at, pageSize: opts.pageSize }),
            (err) => {
              if (err.code === "rate_limited") source.throttles++;
            },
          )
        ),
      backfillRefusal: (rangeStart: Date) =>
        adapter.backfillRefusal === undefined
          ? Promise.resolve(undefined)
          : access.call((credentials) =>
            withRetries(
              pacer,
              deadline,
              () => adapter.backfillRefusal!(ctx, ref, credentials, { stream, rangeStart }),
            )
          ),
    };
    return source;
  }

  /**
   * Writes a page's records and, in the same transaction, what `checkpoint` stores (it throws to
   * roll the page back); counts the page once committed.
   */
  async write(page: Page, checkpoint: (tx: Tx) => Promise<void>): Promise<void> {
    const { connectionId, stream } = this.spec;
    await this.writeAtomic(page, () =>
      this.deps.db.begin(async (tx) => {
        const counts = await upsertRecords(tx, stream, connectionId, page.records);
        await checkpoint(tx);
        return counts;
      }));
  }

  /**
   * Writes a page by `write`, which stores its records and its checkpoint atomically by itself (in
   * one statement: the sync's upsertSyncPage); counts the page once written.
   */
  async writeAtomic(page: Page, write: () => Promise<UpsertCounts>): Promise<void> {
    const { connectionId, stream } = this.spec;
    const written = await retryConflicts(this.deps, write);
    this.counts.added += written.added;
    this.counts.updated += written.updated;
    this.counts.unchanged += written.unchanged;
    this.pages++;
    this.#deadline?.charge(page.records.length * this.deps.env.cpuMsPerRecord);
    const unknown = countUnknownStatuses(page.records, this.unknownStatuses);
    if (unknown.length > 0) {
      this.deps.log.warn("order status words the mapping does not know; stored as unknown", {
        connection_id: connectionId,
        provider: this.provider,
        words: unknown,
      });
    }
    const fresh = (page.withheld ?? []).filter((field) => !this.withheld.has(field));
    for (const field of fresh) this.withheld.add(field);
    if (fresh.length > 0) {
      this.deps.log.warn("the provider withheld fields; they are stored as null", {
        connection_id: connectionId,
        provider: this.provider,
        stream,
        fields: fresh,
      });
    }
  }

  async succeed(details: Record<string, unknown>): Promise<void> {
    await this.#finish(null, details);
  }

  /**
   * Records the failure: `markFailed` writes the stream's or the backfill's own state, then the
   * run is closed as failed. Logged; never throws, even when the database is what failed.
   */
  async fail(
    err: unknown,
    what: string,
    markFailed: (failure: Failure) => Promise<void>,
    details: Record<string, unknown> = {},
  ): Promise<Failure> {
    const failure = classifyFailure(err);
    this.deps.log[failure.byProvider ? "warn" : "error"](what, {
      connection_id: this.spec.connectionId,
      ...(this.spec.kind === "backfill" ? { backfill_id: this.spec.backfillId } : {}),
      provider: this.provider,
      error: failure.message,
    });
    await recordFailure(this.deps, async () => {
      await markFailed(failure);
      await this.#finish(failure, details);
    });
    return failure;
  }

  /** What the job's result repeats of the run. */
  get summary() {
    return { run_id: this.id, provider: this.provider, pages: this.pages, ...this.counts };
  }

  async #finish(failure: Failure | null, details: Record<string, unknown>): Promise<void> {
    await finishRun(this.deps.db, this.id, {
      status: failure === null ? "succeeded" : "failed",
      finished_at: this.deps.now(),
      added_count: this.counts.added,
      updated_count: this.counts.updated,
      unchanged_count: this.counts.unchanged,
      error_count: failure === null ? 0 : 1,
      pages_count: this.pages,
      error: failure?.message ?? null,
      details: {
        provider: this.provider,
        ...(this.withheld.size > 0 ? { withheld_fields: [...this.withheld].sort() } : {}),
        ...(this.unknownStatuses.size > 0
          ? { unknown_statuses: Object.fromEntries([...this.unknownStatuses].sort()) }
          : {}),
        ...details,
        ...(failure === null ? {} : { code: failure.code }),
        paced_ms: Math.round((this.#pacer?.waitedMs ?? 0) - this.#pacedBefore),
      },
    });
  }
}

/**
 * Reads pages from `first` and writes each. The next page is read while this one is written (it
 * depends only on where this one ends); pages are written one after another. `next` says where
 * the page after this one starts, or undefined to stop after it. A page read ahead of a write that
 * failed is dropped, its own failure with it.
 */
export async function readPages<P>(first: P, steps: {
  read(at: P): Promise<Page>;
  next(page: Page, at: P): P | undefined;
  write(page: Page, at: P): Promise<void>;
}): Promise<void> {
  let at = first;
  let ahead: Promise<Page> | undefined = steps.read(at);
  try {
    while (ahead) {
      const page = await ahead;
      const following = steps.next(page, at);
      ahead = following === undefined ? undefined : steps.read(following);
      await steps.write(page, at);
      if (following !== undefined) at = following;
    }
  } finally {
    ahead?.catch(() => {});
  }
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

/**
 * Records a failure even when the database itself was what failed: a few tries a second apart.
 * If it is still unreachable, the run stays "running" until the next claim of the stream or the
 * backfill marks it failed (failInterruptedRuns) and resumes from the last checkpoint.
 */
async function recordFailure(deps: Deps, write: () => Promise<void>): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (attempt >= 5) {
        deps.log.error("could not record the failed run", { error: coerceError(err).message });
        return;
      }
      await deps.clock.sleep(1000);
    }
  }
}
