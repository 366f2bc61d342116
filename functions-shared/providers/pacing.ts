// Client-side rate pacing (issue #4, "Rate pacing"): a model of one account's bucket at the
// provider, drained by each request's cost and refilled at the provider's restore rate. Readers
// `take()` before a request, which waits until the model says the cost is available, and
// `observe()` what the provider reports after it (Shopify `throttleStatus`, ShipHero credits), so
// in steady state no request is throttled. A throttle that happens anyway empties the model for
// the wait the provider asked (`backOff`).
//
// It measures real time (not the job's clock): rate limits are about wall-clock seconds.

export interface BucketModel {
  capacity: number;
  restorePerSecond: number;
}

export interface PacerOptions {
  /** Milliseconds, monotonic. Default performance.now. */
  clock?: () => number;
  /** Default setTimeout; tests may pass a fake. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Keep this share of the bucket in reserve for other clients of the same account. Default 0.1. */
  reserve?: number;
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
  /** Total time spent waiting, for run records. */
  waitedMs = 0;

  constructor(model: BucketModel, opts: PacerOptions = {}) {
    this.#capacity = model.capacity;
    this.#restorePerSecond = model.restorePerSecond;
    this.#level = model.capacity;
    this.#clock = opts.clock ?? (() => performance.now());
    this.#sleep = opts.sleep ?? sleep;
    this.#reserve = opts.reserve ?? 0.1;
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

  /** Waits until `cost` is available by the model (and any back-off has passed), then charges it. */
  async take(cost: number, signal?: AbortSignal): Promise<void> {
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

  /** Corrects the model from what the provider reported after a request. */
  observe(report: { available: number; capacity?: number; restorePerSecond?: number }): void {
    if (report.capacity !== undefined && report.capacity > 0) this.#capacity = report.capacity;
    if (report.restorePerSecond !== undefined && report.restorePerSecond > 0) {
      this.#restorePerSecond = report.restorePerSecond;
    }
    this.#level = Math.max(0, Math.min(this.#capacity, report.available));
    this.#at = this.#clock();
  }

  /** Gives back what a request did not cost after all (reserved 100, charged 12). */
  refund(points: number): void {
    this.#refill();
    this.#level = Math.min(this.#capacity, this.#level + Math.max(0, points));
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

  constructor(max = 1000) {
    this.#max = max;
  }

  for(connectionId: string, model: BucketModel): Pacer {
    const pacer = this.#pacers.get(connectionId) ?? new Pacer(model);
    this.#pacers.delete(connectionId);
    this.#pacers.set(connectionId, pacer);
    if (this.#pacers.size > this.#max) this.#pacers.delete(this.#pacers.keys().next().value!);
    return pacer;
  }
}
