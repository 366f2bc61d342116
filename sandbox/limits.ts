/**
 * Rate limits as the providers enforce them: one bucket per account (per shop,
 * realm, retailer), drained by each request's cost and refilled continuously.
 * Shopify and ShipHero charge query cost / credits; Lightspeed, QuickBooks and
 * Maystro charge 1 per request. Sizes are settable through
 * `POST /_sandbox/config {"limits": {...}}` so tests can make them small.
 *
 * API counters (requests served, requests throttled) per provider are kept here
 * too: a test of pacing asserts that nothing was throttled.
 */

export interface BucketSize {
  /** Most the bucket holds (points, credits or requests). */
  capacity: number;
  /** Refill per second. */
  restorePerSecond: number;
}

/** The providers' published rate limits (see each provider's facts in functions-shared/providers/). */
export const DEFAULT_LIMITS: Readonly<Record<string, BucketSize>> = {
  // "restore 100 points/s on standard plans"; the bucket of current plans is 2000 points.
  shopify: { capacity: 2000, restorePerSecond: 100 },
  // "Current figures seen in clients: 4004 credits, +60/s".
  shiphero: { capacity: 4004, restorePerSecond: 60 },
  // "300 × registers + 50 requests per 5 minutes" with one register: 350 per 300 s.
  lightspeed: { capacity: 350, restorePerSecond: 350 / 300 },
  // "500 requests/min and 10/s per realm": a burst of 10, refilled at 500/min.
  quickbooks: { capacity: 10, restorePerSecond: 500 / 60 },
  // Unknown; generous, so it only matters when a test shrinks it.
  maystro: { capacity: 60, restorePerSecond: 10 },
};

export interface TakeResult {
  ok: boolean;
  /** What is left after this request (or what was there, when refused). */
  available: number;
  /** When refused: how long until `cost` is available. */
  waitMs: number;
}

class Bucket {
  #level: number;
  #at: number;

  constructor(readonly size: () => BucketSize, now: number) {
    this.#level = size().capacity;
    this.#at = now;
  }

  level(now: number): number {
    const { capacity, restorePerSecond } = this.size();
    const elapsed = Math.max(0, now - this.#at) / 1000;
    this.#level = Math.min(capacity, this.#level + elapsed * restorePerSecond);
    this.#at = Math.max(this.#at, now);
    return this.#level;
  }

  take(cost: number, now: number): TakeResult {
    const level = this.level(now);
    if (level >= cost) {
      this.#level = level - cost;
      return { ok: true, available: this.#level, waitMs: 0 };
    }
    const { restorePerSecond } = this.size();
    return {
      ok: false,
      available: level,
      waitMs: Math.ceil(((cost - level) / restorePerSecond) * 1000),
    };
  }

  /** Gives back the difference when the real cost was lower than what was reserved. */
  refund(points: number, now: number): void {
    this.#level = Math.min(this.size().capacity, this.level(now) + points);
  }
}

export class RateLimits {
  readonly #sizes = new Map<string, BucketSize>();
  readonly #buckets = new Map<string, Bucket>();
  readonly #calls = new Map<string, { requests: number; throttled: number }>();

  size(provider: string): BucketSize {
    return this.#sizes.get(provider) ?? DEFAULT_LIMITS[provider] ?? DEFAULT_LIMITS.maystro!;
  }

  /** Changes a provider's bucket; existing buckets keep their level, capped at the new size. */
  configure(
    provider: string,
    size: { capacity?: number | undefined; restorePerSecond?: number | undefined },
  ): BucketSize {
    const current = this.size(provider);
    const next = {
      capacity: size.capacity ?? current.capacity,
      restorePerSecond: size.restorePerSecond ?? current.restorePerSecond,
    };
    this.#sizes.set(provider, next);
    return next;
  }

  /** Charges `cost` to an account's bucket and counts the request. */
  take(provider: string, account: string, cost: number, now: number): TakeResult {
    const result = this.#bucket(provider, account, now).take(cost, now);
    const counts = this.#counts(provider);
    counts.requests++;
    if (!result.ok) counts.throttled++;
    return result;
  }

  refund(provider: string, account: string, points: number, now: number): void {
    this.#bucket(provider, account, now).refund(points, now);
  }

  level(provider: string, account: string, now: number): number {
    return this.#bucket(provider, account, now).level(now);
  }

  stats(): Record<string, { requests: number; throttled: number }> {
    return Object.fromEntries([...this.#calls].map(([p, c]) => [p, { ...c }]));
  }

  resetStats(): void {
    this.#calls.clear();
  }

  #bucket(provider: string, account: string, now: number): Bucket {
    const key = `${provider}/${account}`;
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      bucket = new Bucket(() => this.size(provider), now);
      this.#buckets.set(key, bucket);
    }
    return bucket;
  }

  #counts(provider: string) {
    let c = this.#calls.get(provider);
    if (!c) {
      c = { requests: 0, throttled: 0 };
      this.#calls.set(provider, c);
    }
    return c;
  }
}
