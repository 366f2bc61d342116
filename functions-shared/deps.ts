// What a job is given: every outside-world dependency, passed in so tests control it. A job is
// `run(deps, input)`; it knows nothing of HTTP (functions-shared/http/ frames it).
import process from "node:process";
import type { z } from "zod";
import { connect, type Sql } from "./db/client.ts";
import type { TetherEnv } from "./env.ts";
import { createLogger, type Logger } from "./log.ts";
import { PacerCache } from "./providers/pacing.ts";
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

export const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  cpuMs: processCpuMs,
};

/** node:process's cpuUsage (user + system), where the runtime provides it. */
function processCpuMs(): number | undefined {
  try {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  } catch {
    return undefined;
  }
}

export interface Deps {
  db: Sql;
  vault: TokenVault;
  fetch: typeof fetch;
  /** The calendar time written to rows and compared with token expiries. */
  now: () => Date;
  clock: Clock;
  env: TetherEnv;
  log: Logger;
  /** Each connection's rate pacer, kept for the life of the function instance. */
  pacers: PacerCache;
}

export interface Job<I, O> {
  name: string;
  input: z.ZodType<I>;
  run(deps: Deps, input: I): Promise<O>;
}

/**
 * When a job stops taking new work: a point on `clock`, and (where the clock can tell) an amount
 * of CPU time, whichever comes first (docs/architecture.md rule 5).
 */
export class Deadline {
  readonly #clock: Clock;
  readonly #at: number;
  readonly #cpuAt: number | undefined;

  constructor(clock: Clock, budgetMs: number, cpuBudgetMs?: number) {
    this.#clock = clock;
    this.#at = clock.monotonicMs() + budgetMs;
    const cpu = cpuBudgetMs === undefined ? undefined : clock.cpuMs?.();
    this.#cpuAt = cpu === undefined ? undefined : cpu + (cpuBudgetMs as number);
  }

  /** Wall-clock time left: what a wait may take. */
  get remainingMs(): number {
    return this.#at - this.#clock.monotonicMs();
  }

  get passed(): boolean {
    if (this.remainingMs <= 0) return true;
    const cpu = this.#cpuAt === undefined ? undefined : this.#clock.cpuMs?.();
    return cpu !== undefined && cpu >= (this.#cpuAt as number);
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
  return {
    db: connect(env.databaseUrl, { name: `tether-${opts.name}` }),
    vault: await TokenVault.fromKeyRing(env.tokenKeyRing),
    fetch: globalThis.fetch,
    now: () => new Date(),
    clock: systemClock,
    env,
    log: opts.log ?? createLogger(opts.name),
    pacers: new PacerCache(),
  };
}
