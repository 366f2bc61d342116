// Client-side rate pacing (issue #4, "Rate pacing"): a model of one account's bucket at the
// provider, drained by each request's cost and refilled at the provider's restore rate. Readers
// `take()` before a request, which waits until the model says the cost is available, and
// `observe()` what the provider reports after it (Shopify `throttleStatus`, ShipHero credits), so
// in steady state no request is throttled. A throttle that happens anyway empties the model for
// the wait the provider asked (`backOff`).
//
// It measures real time (not the job's clock): rate limits are about wall-clock seconds.
//
// A pacer in memory sees only its own instance's calls, and every Edge Function runs in isolates
// of its own: deployed functions keep the model in a `BudgetStore` (Postgres,
// db/rate_budgets.ts), one per connection, so a sync, a backfill and the user's proxied calls
// draw from one budget. Its arithmetic is this file's, in SQL.

export interface BucketModel {
  capacity: number;
  restorePerSecond: number;
}

/**
 * The bucket that paces a window limit (at most `requests` in any `windowSeconds`, whether the
 * provider's windows are fixed or sliding): a small burst, refilled at the rate that keeps every
 * window within the limit (burst + rate × window = requests). A bucket as big as the window would
 * spend a whole window at once and then still refill: twice the limit in the first window.
 */
export function windowBucket(requests: number, windowSeconds: number): BucketModel {
  const burst = Math.max(1, Math.min(10, Math.floor(requests / 10)));
  return { capacity: burst, restorePerSecond: (requests - burst) / windowSeconds };
}

/** A bucket model kept outside the process, shared by every pacer of the same key. */
export interface BudgetStore {
  /**
   * Charges `cost` and returns the ms until the request's turn (0: now): requests go in the
   * order they asked, the level going below zero for those promised a turn.
   * `model` sizes a bucket the store does not hold yet; after that, the size a report gave wins.
   */
  take(key: string, cost: number, model: BucketModel, reserve: number): Promise<number>;
  /** What `observe`, `refund` and `backOff` change, applied to the shared model. */
  adjust(
    key: string,
    model: BucketModel,
    reserve: number,
    change: BudgetChange,
  ): Promise<void>;
}

/**
 * A correction: the level or bucket size a provider reported, a refund, a throttle's wait. One
 * that carries both a refund and a level gives the refund back first, then the level caps it.
 */
export interface BudgetChange {
  available?: number;
  capacity?: number;
  restorePerSecond?: number;
  refund?: number;
  backOffMs?: number;
}

export interface PacerOptions {
  /** Milliseconds, monotonic. Default performance.now. */
  clock?: () => number;
  /** Default setTimeout; tests may pass a fake. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Keep this share of the bucket in reserve for other clients of the same account. Default 0.1. */
  reserve?: number;
  /** Keep the model in this store under `key` (the connection), shared across instances. */
  shared?: { store: BudgetStore; key: string };
}

export class Pacer {
  #capacity: number;
  #restorePerSecond: number;
  #level: number;
  #at: number;
  #blockedUntil = 0;
  readonly #clock: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #reserve: number;
  readonly #shared: { store: BudgetStore; key: string } | undefined;
  /** The corrections sent to the shared store, in order; a take waits for them first. */
  #adjusted: Promise<void> = Promise.resolve();
  /** Total time spent waiting, for run records. */
  waitedMs = 0;

  constructor(model: BucketModel, opts: PacerOptions = {}) {
    this.#capacity = model.capacity;
    this.#restorePerSecond = model.restorePerSecond;
    this.#level = model.capacity;
    this.#clock = opts.clock ?? (() => performance.now());
    this.#sleep = opts.sleep ?? sleep;
    this.#reserve = opts.reserve ?? 0.1;
    this.#shared = opts.shared;
    this.#at = this.#clock();
  }

  /** The bucket the model assumes now (as constructed, or as `observe` corrected it). */
  get model(): BucketModel {
    return { capacity: this.#capacity, restorePerSecond: this.#restorePerSecond };
  }

  /** What the model holds now. */
  get available(): number {
    this.#refill();
    return this.#level;
  }

  /**
   * Waits until `cost` is available by the model (and any back-off has passed), then charges it.
   * With a shared store the request is charged at once and told its turn: requests of every
   * instance go in the order they asked, so a dear one is never overtaken for ever by cheap ones.
   */
  async take(cost: number, signal?: AbortSignal): Promise<void> {
    if (this.#shared === undefined) return await this.#takeLocal(cost, signal);
    const { store, key } = this.#shared;
    await this.#adjusted;
    let waitMs: number;
    try {
      waitMs = await store.take(key, cost, this.model, this.#reserve);
    } catch {
      // The store is out of reach (a database blip): this instance's model paces this call,
      // and the provider's own throttle remains the backstop.
      return await this.#takeLocal(cost, signal);
    }
    this.#refill();
    this.#level -= Math.min(cost, this.#capacity);
    if (waitMs <= 0) return;
    this.waitedMs += waitMs;
    await this.#sleep(waitMs, signal);
    if (signal?.aborted) {
      // Its turn was charged: give it back for the requests after it.
      this.refund(cost);
      signal.throwIfAborted();
    }
  }

  async #takeLocal(cost: number, signal?: AbortSignal): Promise<void> {
    // A request dearer than the whole bucket can only wait for a full one.
    const need = Math.min(cost, this.#capacity);
    while (true) {
      this.#refill();
      const now = this.#clock();
      const reserve = this.#capacity * this.#reserve;
      const missing = need + Math.min(reserve, this.#capacity - need) - this.#level;
      const waitMs = Math.max(
        this.#blockedUntil - now,
        missing > 0 ? (missing / this.#restorePerSecond) * 1000 : 0,
      );
      if (waitMs <= 0) {
        this.#level -= need;
        return;
      }
      this.waitedMs += waitMs;
      await this.#sleep(Math.ceil(waitMs), signal);
      signal?.throwIfAborted();
    }
  }

  /**
   * Corrects the model from what the provider reported after a request. `bound`: the report is
   * a window's remaining count (Lightspeed), which caps the level but is not it. `refund`: what
   * the request did not cost after all (as `refund`), given back before the report caps the
   * level, in the same correction: a sync page sends the shared store one statement, not two.
   */
  observe(
    report: {
      available: number;
      capacity?: number;
      restorePerSecond?: number;
      bound?: boolean;
      refund?: number;
    },
  ): void {
    this.#refill();
    if (report.capacity !== undefined && report.capacity > 0) this.#capacity = report.capacity;
    if (report.restorePerSecond !== undefined && report.restorePerSecond > 0) {
      this.#restorePerSecond = report.restorePerSecond;
    }
    const refunded = Math.min(this.#capacity, this.#level + Math.max(0, report.refund ?? 0));
    const level = report.bound ? Math.min(refunded, report.available) : report.available;
    this.#level = Math.max(0, Math.min(this.#capacity, level));
    this.#at = this.#clock();
    this.#adjust({
      available: this.#level,
      capacity: report.capacity,
      restorePerSecond: report.restorePerSecond,
      ...(report.refund === undefined ? {} : { refund: report.refund }),
    });
  }

  /** Gives back what a request did not cost after all (reserved 100, charged 12). */
  refund(points: number): void {
    this.#refill();
    this.#level = Math.min(this.#capacity, this.#level + Math.max(0, points));
    this.#adjust({ refund: points });
  }

  /**
   * The provider throttled anyway: nothing goes for `ms` (its Retry-After), and then the model
   * assumes only enough for one small request, since the bucket was evidently emptier than it
   * thought.
   */
  backOff(ms: number): void {
    this.#refill();
    this.#level = Math.min(this.#level, this.#capacity * this.#reserve + 1);
    this.#at = this.#clock();
    this.#blockedUntil = Math.max(this.#blockedUntil, this.#at + ms);
    this.#adjust({ backOffMs: ms });
  }

  /** Resolves once the corrections made so far have reached the shared store. */
  settled(): Promise<void> {
    return this.#adjusted;
  }

  /** Sends a correction to the shared store (in order; a failed one is this instance's only). */
  #adjust(change: BudgetChange): void {
    const shared = this.#shared;
    if (shared === undefined) return;
    const model = this.model;
    this.#adjusted = this.#adjusted
      .then(() => shared.store.adjust(shared.key, model, this.#reserve, change))
      .catch(() => {});
  }

  #refill(): void {
    const now = this.#clock();
    const elapsed = Math.max(0, now - this.#at) / 1000;
    this.#level = Math.min(this.#capacity, this.#level + elapsed * this.#restorePerSecond);
    this.#at = now;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * One pacer per connection for the life of a function instance, so back-to-back runs share what
 * the previous one spent (QuickBooks says nothing about its budget, and a fresh model would assume
 * a full bucket). Kept small: the connection used longest ago is forgotten first.
 */
export class PacerCache {
  readonly #pacers = new Map<string, Pacer>();
  readonly #max: number;
  readonly #store: BudgetStore | undefined;

  /** With a `store`, every pacer keeps its connection's model there (shared across instances). */
  constructor(max = 1000, store?: BudgetStore) {
    this.#max = max;
    this.#store = store;
  }

  for(connectionId: string, model: BucketModel): Pacer {
    const shared = this.#store && { store: this.#store, key: connectionId };
    const pacer = this.#pacers.get(connectionId) ?? new Pacer(model, { shared });
    this.#pacers.delete(connectionId);
    this.#pacers.set(connectionId, pacer);
    if (this.#pacers.size > this.#max) this.#pacers.delete(this.#pacers.keys().next().value!);
    return pacer;
  }
}
