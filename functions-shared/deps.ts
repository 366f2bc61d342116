// What a job is given: every outside-world dependency, passed in so tests control it. A job is
// `run(deps, input)`; it knows nothing of HTTP (functions-shared/http/ frames it).
import process from "node:process";
import type { z } from "zod";
import { connect, type Sql } from "./db/client.ts";
import type { TetherEnv } from "./env.ts";
import { type FunctionInvoker, functionInvoker } from "./invoke.ts";
import { createLogger, type Logger } from "./log.ts";
import { PacerCache } from "./providers/pacing.ts";
import { postgresBudgets } from "./db/rate_budgets.ts";
import { TokenVault } from "./vault.ts";

/**
 * Time that passes, as opposed to the date on a row. Budgets, backoff waits and elapsed times
 * are measured on it, so a test can run a 150 s budget in milliseconds with `manualClock`.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale; only differences mean anything. */
  monotonicMs(): number;
  sleep(ms: number): Promise<void>;
  /**
   * CPU time this process has spent, in ms (only differences mean anything), or undefined where
   * the runtime cannot tell: the Edge Runtime stops a request past 2 s of CPU, so jobs budget it.
   */
  cpuMs?(): number | undefined;
}

/** The process's CPU time from node:process, where the runtime really measures it. */
function processCpuMs(): number | undefined {
  try {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  } catch {
    return undefined;
  }
}

/**
 * Supabase's Edge Runtime stubs cpuUsage (supabase/edge-runtime ext/node/polyfills/process.ts:
 * a warning and zeros on every call), so it is asked once: a process that has run this far has
 * spent CPU, and zeros mean the runtime cannot tell. There the wall-clock budget is what holds.
 */
const cpuMeasured = (processCpuMs() ?? 0) > 0;

export const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  cpuMs: cpuMeasured ? processCpuMs : () => undefined,
};

export interface Deps {
  db: Sql;
  vault: TokenVault;
  fetch: typeof fetch;
  /** The calendar time written to rows and compared with token expiries. */
  now: () => Date;
  clock: Clock;
  env: TetherEnv;
  log: Logger;
  /**
   * Each connection's rate pacer, kept for the life of the function instance; in deployed
   * functions its model lives in tether.rate_budgets, shared by every instance.
   */
  pacers: PacerCache;
  /** Starts invocations of the project's own functions (a sync's siblings: jobs/sync.ts). */
  functions: FunctionInvoker;
}

export interface Job<I, O> {
  name: string;
  input: z.ZodType<I>;
  run(deps: Deps, input: I): Promise<O>;
  /**
   * The result holds a credential (`tokens`): always answered to the caller directly, never kept
   * in tether.invocations, never cached.
   */
  secretResult?: boolean;
  /**
   * What a call with the invoke key may ask, when less than `input`: the key travels in pg_net's
   * queue, which every database role can read, so a job whose work cannot be undone takes from it
   * only a request the service-role SQL API recorded first. Anything else is a 401 saying
   * `viaInvokeKeyRefusal`.
   */
  viaInvokeKey?: z.ZodType;
  viaInvokeKeyRefusal?: string;
}

/**
 * When a job stops taking new work: a point on `clock`, and (where the clock can tell) an amount
 * of CPU time, whichever comes first (docs/architecture.md rule 5).
 */
export class Deadline {
  readonly #clock: Clock;
  readonly #at: number;
  readonly #cpuAt: number | undefined;
  readonly #cpuBudgetMs: number | undefined;
  #charged = 0;

  constructor(clock: Clock, budgetMs: number, cpuBudgetMs?: number) {
    this.#clock = clock;
    this.#at = clock.monotonicMs() + budgetMs;
    this.#cpuBudgetMs = cpuBudgetMs;
    const cpu = cpuBudgetMs === undefined ? undefined : clock.cpuMs?.();
    this.#cpuAt = cpu === undefined ? undefined : cpu + (cpuBudgetMs as number);
  }

  /**
   * CPU time the work is estimated to have cost (records written × a per-record cost), which
   * counts against the CPU budget where the clock cannot measure CPU (the Edge Runtime).
   */
  charge(cpuMs: number): void {
    this.#charged += cpuMs;
  }

  /** Wall-clock time left: what a wait may take. */
  get remainingMs(): number {
    return this.#at - this.#clock.monotonicMs();
  }

  get passed(): boolean {
    if (this.remainingMs <= 0) return true;
    if (this.#cpuBudgetMs === undefined) return false;
    if (this.#cpuAt === undefined) return this.#charged >= this.#cpuBudgetMs;
    return (this.#clock.cpuMs?.() ?? 0) >= this.#cpuAt;
  }

  /** Would a wait of `ms` end after the deadline? */
  exceededBy(ms: number): boolean {
    return ms > this.remainingMs;
  }
}

/** Builds the dependencies of a deployed (or locally served) function. */
export async function createDeps(
  env: TetherEnv,
  opts: { name: string; log?: Logger },
): Promise<Deps> {
  const db = connect(env.databaseUrl, { max: env.dbPoolSize, name: `tether-${opts.name}` });
  return {
    db,
    vault: await TokenVault.fromKeyRing(env.tokenKeyRing),
    fetch: globalThis.fetch,
    now: () => new Date(),
    clock: systemClock,
    env,
    log: opts.log ?? createLogger(opts.name),
    // Every function instance paces a connection with the one budget kept in Postgres.
    pacers: new PacerCache(1000, postgresBudgets(db)),
    functions: functionInvoker(env, globalThis.fetch),
  };
}
