/**
 * Rate limits as the providers publish them, one limit per account (per shop, realm, retailer)
 * and provider, each in the provider's own kind:
 *
 * - `bucket` (Shopify, ShipHero, Maystro): drained by each request's cost (Shopify's query cost,
 *   ShipHero's credits, 1 a request for Maystro), refilled continuously at `restorePerSecond`.
 * - `fixed_window` (Lightspeed X-Series): at most `capacity` requests in a window of
 *   `capacity / restorePerSecond` seconds that starts with its first request; then none until it
 *   resets.
 * - `sliding_window` (QuickBooks): at most `capacity` requests in any `capacity /
 *   restorePerSecond` seconds.
 *
 * Every size is settable through `POST /_sandbox/config {"limits": {...}}` so tests can make them
 * small (a window's length follows from the two figures), and Shopify's by plan
 * (`{"shopify_plan": "plus"}`). QuickBooks also limits the requests of one realm in flight at
 * once (`MAX_CONCURRENT`).
 *
 * What each account spent (requests, throttled requests, units: points, credits or requests) is
 * counted here: a test of pacing asserts that nothing was throttled, and the pacing bench divides
 * the units by what the limit allows.
 */

export interface BucketSize {
  /** Most the bucket holds, or a window's requests (points, credits or requests). */
  capacity: number;
  /** Refill per second, or the window's requests over its length. */
  restorePerSecond: number;
}

export type LimitKind = "bucket" | "fixed_window" | "sliding_window";

/**
 * Shopify's GraphQL Admin API restore rate by plan ("Standard 100 points/second, Advanced Shopify
 * 200, Shopify Plus 1000, Shopify for enterprise (Commerce Components) 2000": the table of
 * shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits). The bucket size is not on that page:
 * Standard responses report `maximumAvailable: 2000` (the adapter's facts), 20 seconds of restore,
 * the same ratio as the page's earlier figures (1,000 points, 50/s); the other plans' buckets are
 * taken at that ratio (UNCONFIRMED). Every response's throttleStatus tells the client the real
 * figures, so the adapter follows whatever a shop reports.
 */
export const SHOPIFY_PLANS = {
  standard: { capacity: 2_000, restorePerSecond: 100 },
  advanced: { capacity: 4_000, restorePerSecond: 200 },
  plus: { capacity: 20_000, restorePerSecond: 1_000 },
  enterprise: { capacity: 40_000, restorePerSecond: 2_000 },
} as const satisfies Record<string, BucketSize>;
export type ShopifyPlan = keyof typeof SHOPIFY_PLANS;

/** The providers' published rate limits: their kind, size and source. */
export const PUBLISHED_LIMITS: Readonly<Record<string, { kind: LimitKind } & BucketSize>> = {
  // The Standard plan (the switch: `shopify_plan`); see SHOPIFY_PLANS.
  shopify: { kind: "bucket", ...SHOPIFY_PLANS.standard },
  // ShipHero: "4004 credits, restored at 60 credits per second; no operation can exceed 4004"
  // (the figures clients see in throttle messages, and API Commons' ShipHero rate-limit profile,
  // api-evangelist/shiphero rate-limits/shiphero-rate-limits.yml). ShipHero's own older post says
  // 1001 credits at 15/s (community.shiphero.com/t/…/188): the adapter corrects its model from
  // every throttle either way (functions-shared/providers/shiphero/credits.ts).
  shiphero: { kind: "bucket", capacity: 4004, restorePerSecond: 60 },
  // Lightspeed X-Series: "300 x <number of registers> + 50 … for a store with a single register
  // … 350 requests. The rate limiter is currently based on a 5 minute (300 seconds) window";
  // past it "you'll be unable to make any more API requests … until the limiter resets"
  // (x-series-api.lightspeedhq.com/docs/rate_limiting): a fixed window, one register.
  lightspeed: { kind: "fixed_window", capacity: 350, restorePerSecond: 350 / 300 },
  // QuickBooks Online: "API calls are throttled at 500 requests per minute per realmId" and
  // "Applications cannot make more than 10 [concurrent] API requests to the same realmId"
  // (blogs.intuit.com/2016/08/08/idg-concurrent-api-use-changes-coming-soon). Intuit does not say
  // how the minute is counted: a sliding window, the stricter reading (a client within it is
  // within a fixed one too).
  quickbooks: { kind: "sliding_window", capacity: 500, restorePerSecond: 500 / 60 },
  // Maystro: no published rate limit was found (neither its API pages nor the independent clients
  // the provider audit read name one): a configurable default, UNCONFIRMED, 60 requests refilled
  // at 10 a second, answered as Django REST framework throttles (providers/maystro.ts).
  maystro: { kind: "bucket", capacity: 60, restorePerSecond: 10 },
};

/** QuickBooks: "more than 10 concurrent … API requests to the same realmId will get a 429". */
export const MAX_CONCURRENT: Readonly<Record<string, number>> = { quickbooks: 10 };

export const DEFAULT_LIMITS: Readonly<Record<string, BucketSize>> = Object.fromEntries(
  Object.entries(PUBLISHED_LIMITS).map((
    [p, { capacity, restorePerSecond }],
  ) => [p, { capacity, restorePerSecond }]),
);

export interface TakeResult {
  ok: boolean;
  /** What is left after this request (or what was there, when refused). */
  available: number;
  /** When refused: how long until `cost` is available. */
  waitMs: number;
}

/** One account's limit, of one of the three kinds. */
interface Limit {
  take(cost: number, now: number): TakeResult;
  /** Gives back the difference when the real cost was lower than what was reserved. */
  refund(points: number, now: number): void;
  level(now: number): number;
}

class Bucket implements Limit {
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

  refund(points: number, now: number): void {
    this.#level = Math.min(this.size().capacity, this.level(now) + points);
  }
}

const windowMs = ({ capacity, restorePerSecond }: BucketSize) =>
  (capacity / restorePerSecond) * 1000;

/** `capacity` requests from a window's first request until it resets, `windowMs` later. */
class FixedWindow implements Limit {
  #start = Number.NEGATIVE_INFINITY;
  #used = 0;

  constructor(readonly size: () => BucketSize) {}

  #roll(now: number): void {
    if (now >= this.#start + windowMs(this.size())) {
      this.#start = now;
      this.#used = 0;
    }
  }

  level(now: number): number {
    if (now >= this.#start + windowMs(this.size())) return this.size().capacity;
    return this.size().capacity - this.#used;
  }

  take(cost: number, now: number): TakeResult {
    this.#roll(now);
    const { capacity } = this.size();
    if (this.#used + cost <= capacity) {
      this.#used += cost;
      return { ok: true, available: capacity - this.#used, waitMs: 0 };
    }
    const waitMs = Math.max(1, Math.ceil(this.#start + windowMs(this.size()) - now));
    return { ok: false, available: capacity - this.#used, waitMs };
  }

  refund(points: number, _now: number): void {
    this.#used = Math.max(0, this.#used - points);
  }
}

/** At most `capacity` requests in any `windowMs`: a log of what was charged when. */
class SlidingWindow implements Limit {
  readonly #log: { at: number; cost: number }[] = [];
  #used = 0;

  constructor(readonly size: () => BucketSize) {}

  #expire(now: number): void {
    const since = now - windowMs(this.size());
    while (this.#log.length > 0 && this.#log[0]!.at <= since) this.#used -= this.#log.shift()!.cost;
  }

  level(now: number): number {
    this.#expire(now);
    return this.size().capacity - this.#used;
  }

  take(cost: number, now: number): TakeResult {
    const available = this.level(now);
    if (cost <= available) {
      this.#log.push({ at: now, cost });
      this.#used += cost;
      return { ok: true, available: available - cost, waitMs: 0 };
    }
    // The wait until enough of the oldest requests leave the window.
    let freed = available;
    let until = now;
    for (const entry of this.#log) {
      freed += entry.cost;
      until = entry.at + windowMs(this.size());
      if (freed >= cost) break;
    }
    return { ok: false, available, waitMs: Math.max(1, Math.ceil(until - now)) };
  }

  refund(points: number, _now: number): void {
    const last = this.#log.at(-1);
    if (!last) return;
    const back = Math.min(points, last.cost);
    last.cost -= back;
    this.#used -= back;
  }
}

/** What one account (or a provider, summed) spent. */
export interface Usage {
  requests: number;
  throttled: number;
  /** Points, credits or requests charged, refunds deducted. */
  units: number;
}

export class RateLimits {
  readonly #sizes = new Map<string, BucketSize>();
  readonly #limits = new Map<string, Limit>();
  readonly #calls = new Map<string, Usage>();
  readonly #accounts = new Map<string, Usage>();
  readonly #inFlight = new Map<string, number>();

  size(provider: string): BucketSize {
    return this.#sizes.get(provider) ?? DEFAULT_LIMITS[provider] ?? DEFAULT_LIMITS.maystro!;
  }

  kind(provider: string): LimitKind {
    return PUBLISHED_LIMITS[provider]?.kind ?? "bucket";
  }

  /** Changes a provider's limit; existing accounts keep what they spent, capped at the new size. */
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

  /** Shopify's limit for a plan (SHOPIFY_PLANS). */
  shopifyPlan(plan: ShopifyPlan): BucketSize {
    return this.configure("shopify", SHOPIFY_PLANS[plan]);
  }

  /** Charges `cost` to an account's limit and counts the request. */
  take(provider: string, account: string, cost: number, now: number): TakeResult {
    const result = this.#limit(provider, account, now).take(cost, now);
    this.count(provider, account, { requests: 1, throttled: result.ok ? 0 : 1 });
    if (result.ok) this.count(provider, account, { units: cost });
    return result;
  }

  refund(provider: string, account: string, points: number, now: number): void {
    this.#limit(provider, account, now).refund(points, now);
    this.count(provider, account, { units: -points });
  }

  level(provider: string, account: string, now: number): number {
    return this.#limit(provider, account, now).level(now);
  }

  /**
   * A request of `key` (QuickBooks: the token, one app and realm) starts: false when as many as
   * the provider allows are in flight already. Every true is ended by `leave`.
   */
  enter(provider: string, key: string): boolean {
    const max = MAX_CONCURRENT[provider];
    if (max === undefined) return true;
    const k = `${provider}/${key}`;
    const now = this.#inFlight.get(k) ?? 0;
    if (now >= max) return false;
    this.#inFlight.set(k, now + 1);
    return true;
  }

  leave(provider: string, key: string): void {
    const k = `${provider}/${key}`;
    const now = (this.#inFlight.get(k) ?? 1) - 1;
    if (now <= 0) this.#inFlight.delete(k);
    else this.#inFlight.set(k, now);
  }

  /** Adds to a provider's and an account's counts (a refusal for concurrency included). */
  count(provider: string, account: string, add: Partial<Usage>): void {
    for (
      const usage of [
        this.#usage(this.#calls, provider),
        this.#usage(this.#accounts, `${provider}/${account}`),
      ]
    ) {
      usage.requests += add.requests ?? 0;
      usage.throttled += add.throttled ?? 0;
      usage.units += add.units ?? 0;
    }
  }

  /** Per provider: requests and throttled requests. */
  stats(): Record<string, { requests: number; throttled: number }> {
    return Object.fromEntries(
      [...this.#calls].map(([p, c]) => [p, { requests: c.requests, throttled: c.throttled }]),
    );
  }

  /** What one account spent. */
  usage(provider: string, account: string): Usage {
    return {
      ...(this.#accounts.get(`${provider}/${account}`) ?? { requests: 0, throttled: 0, units: 0 }),
    };
  }

  resetStats(): void {
    this.#calls.clear();
    this.#accounts.clear();
  }

  #usage(map: Map<string, Usage>, key: string): Usage {
    let u = map.get(key);
    if (!u) {
      u = { requests: 0, throttled: 0, units: 0 };
      map.set(key, u);
    }
    return u;
  }

  #limit(provider: string, account: string, now: number): Limit {
    const key = `${provider}/${account}`;
    let limit = this.#limits.get(key);
    if (!limit) {
      const size = () => this.size(provider);
      const kind = this.kind(provider);
      limit = kind === "fixed_window"
        ? new FixedWindow(size)
        : kind === "sliding_window"
        ? new SlidingWindow(size)
        : new Bucket(size, now);
      this.#limits.set(key, limit);
    }
    return limit;
  }
}
